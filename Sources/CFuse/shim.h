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

/* fuse_session_loop_mt is a macro in libfuse >= 3.12; Swift cannot call macros. */
static inline int lsmfs_session_loop_mt(struct fuse_session *se, int clone_fd, unsigned max_idle) {
    struct fuse_loop_config *cfg = fuse_loop_cfg_create();
    if (!cfg) return -1;
    fuse_loop_cfg_set_clone_fd(cfg, clone_fd);
    fuse_loop_cfg_set_max_threads(cfg, 16);
    fuse_loop_cfg_set_idle_threads(cfg, max_idle);
    int r = fuse_session_loop_mt(se, cfg);
    fuse_loop_cfg_destroy(cfg);
    return r;
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
