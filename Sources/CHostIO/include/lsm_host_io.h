#ifndef LSM_HOST_IO_H
#define LSM_HOST_IO_H

/// Host file calls Swift's Glibc module does not expose (they need _GNU_SOURCE).

/// Starts write-back of the dirty pages of `[offset, offset + nbytes)` of `fd` (the whole file
/// when `nbytes` is 0) without waiting for it: sync_file_range(SYNC_FILE_RANGE_WRITE).
/// Returns 0, or -1 with errno set.
int lsm_start_writeback(int fd, long long offset, long long nbytes);

/// Opens `path` read-only with O_DIRECT (reads bypass the page cache: offsets, lengths and
/// buffers aligned to the device's logical block). Returns the descriptor, or -1 with errno set
/// (EINVAL: the filesystem does not support O_DIRECT, e.g. tmpfs).
int lsm_open_direct(const char *path);

#endif
