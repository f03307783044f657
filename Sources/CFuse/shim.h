#ifndef LSMFS_CFUSE_SHIM_H
#define LSMFS_CFUSE_SHIM_H
#define FUSE_USE_VERSION 35
#include <fuse3/fuse_lowlevel.h>
#include <fuse3/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <errno.h>
#include <string.h>

/* fuse_session_loop_mt is a macro in libfuse >= 3.12; Swift cannot call macros. With
 * FUSE_USE_VERSION 35 it expands to fuse_session_loop_mt_32, which reads its argument as the
 * old public struct (clone_fd, max_idle_threads): an opaque fuse_loop_cfg_create() config
 * passed there is misread (its version marker becomes clone_fd, its clone_fd max_idle_threads
 * = 0), so every request started a thread with its own /dev/fuse clone that exited again. */
static inline int lsmfs_session_loop_mt(struct fuse_session *se, int clone_fd, unsigned max_idle) {
    struct fuse_loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.clone_fd = clone_fd;
    cfg.max_idle_threads = max_idle;
    return fuse_session_loop_mt(se, &cfg);
}

/* fuse_session_new is a macro in some versions; wrap it. */
static inline struct fuse_session *lsmfs_session_new(struct fuse_args *args,
        const struct fuse_lowlevel_ops *op, size_t op_size, void *userdata) {
    return fuse_session_new(args, op, op_size, userdata);
}
/* ioctl is variadic, which Swift cannot call: `lsmfs gc` sends its request through this. */
#include <sys/ioctl.h>
static inline int lsmfs_ioctl_ptr(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}
#endif
