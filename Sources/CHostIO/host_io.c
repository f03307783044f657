#define _GNU_SOURCE
#include <fcntl.h>
#include "lsm_host_io.h"

int lsm_start_writeback(int fd, long long offset, long long nbytes) {
    return sync_file_range(fd, (off64_t)offset, (off64_t)nbytes, SYNC_FILE_RANGE_WRITE);
}

int lsm_open_direct(const char *path) {
    return open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
}
