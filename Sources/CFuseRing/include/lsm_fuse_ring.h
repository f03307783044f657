#ifndef LSM_FUSE_RING_H
#define LSM_FUSE_RING_H
/* FUSE over io_uring (Linux >= 6.14, fs/fuse/dev_uring.c), the transport libfuse >= 3.18 offers
 * and libfuse 3.14 lacks. The kernel keeps one request queue per possible CPU and hands a
 * request to the queue of the CPU its caller runs on; each lsmfs ring worker is a thread pinned
 * to one CPU with its own io_uring holding one registered ring entry of that CPU's queue. A
 * request and its reply then wake threads on the caller's own CPU instead of a /dev/fuse reader
 * somewhere else (on this machine's VM a cross-CPU wakeup costs more than serving a request).
 * See docs/fuse-io-uring.md. */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Serves one request laid out as /dev/fuse would deliver it (fuse_in_header, the opcode's
 * argument struct, then its data; `len` bytes). It must reply (through the session's writev,
 * which calls lsm_fuse_ring_reply) before it returns. */
typedef void (*lsm_fuse_ring_handler)(void *ctx, void *request, size_t len);

struct lsm_fuse_ring;

/* Starts `per_queue` workers for each online CPU (one for a possible CPU that is offline) on
 * the initialized FUSE connection behind `fuse_fd`, each registering one entry whose payload
 * buffer holds `payload_size` bytes (at least the kernel's max(8 KiB, max_write, max_pages *
 * page size)). Returns NULL with errno set when a ring cannot be set up; then, if any ring
 * could, a register the kernel refuses turns the connection's io_uring off (requests go to
 * /dev/fuse instead of waiting for a ring that never becomes ready). */
struct lsm_fuse_ring *lsm_fuse_ring_start(int fuse_fd, unsigned per_queue, size_t payload_size,
                                          lsm_fuse_ring_handler handler, void *ctx);

/* Asks every worker to stop (between requests), joins them and frees the rings. */
void lsm_fuse_ring_stop(struct lsm_fuse_ring *ring);

/* 0 when this process can create an io_uring with 128-byte SQEs, else -errno. */
int lsm_fuse_ring_probe(void);

/* Number of possible CPUs (the kernel's queue count). */
unsigned lsm_fuse_ring_queue_count(void);

/* Requests served through the ring so far, and workers whose ring ended with an error. */
uint64_t lsm_fuse_ring_served(const struct lsm_fuse_ring *ring);
int lsm_fuse_ring_first_error(const struct lsm_fuse_ring *ring);

/* Whether the calling thread is a ring worker serving a request. */
int lsm_fuse_ring_in_worker(void);

/* When the calling thread is a ring worker serving a request it has not replied to: the
 * entry's payload buffer (its size in *capacity), where the reply's data goes. A reply whose
 * data is written there first and then sent (its iovec pointing at this buffer) is not copied
 * again. The request's own arguments lie before it (a READ has no payload of its own); for a
 * request with a payload (WRITE's data) the buffer holds that payload until it is overwritten.
 * NULL otherwise. */
void *lsm_fuse_ring_reply_buffer(size_t *capacity);

/* Called from the session's writev: when the calling thread is a ring worker serving the
 * request whose reply this is (fuse_out_header.unique in the first 16 bytes), stores the reply
 * in the ring entry and returns its length; otherwise returns -1 and touches nothing (the
 * caller writes to /dev/fuse: notifications, replies on other threads). */
ssize_t lsm_fuse_ring_reply(const struct iovec *iov, int count);

#ifdef __cplusplus
}
#endif
#endif
