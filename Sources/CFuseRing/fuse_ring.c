#define _GNU_SOURCE
#include "lsm_fuse_ring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The FUSE-over-io_uring ABI (include/uapi/linux/fuse.h, protocol 7.42); this machine's
 * <linux/fuse.h> predates it. */
enum {
    URING_IN_OUT_HEADER_SZ = 128,
    URING_OP_IN_OUT_SZ = 128,
    CMD_REGISTER = 1,           /* FUSE_IO_URING_CMD_REGISTER */
    CMD_COMMIT_AND_FETCH = 2,   /* FUSE_IO_URING_CMD_COMMIT_AND_FETCH */
    IN_HEADER_SIZE = 40,        /* struct fuse_in_header */
    OUT_HEADER_SIZE = 16,       /* struct fuse_out_header */
    SQE_SIZE = 128,             /* IORING_SETUP_SQE128: the command needs 24 of its 80 bytes */
    RING_ENTRIES = 4,           /* at most two in flight: the entry's command and the stop poll */
    PAGE = 4096,
    HUGE_PAGE = 2 << 20,   /* x86-64 PMD size */
};

struct ring_ent_in_out {        /* struct fuse_uring_ent_in_out */
    uint64_t flags;
    uint64_t commit_id;         /* the request's unique id; echoed in the commit */
    uint32_t payload_sz;        /* bytes of payload: request data in, reply arguments out */
    uint32_t padding;
    uint64_t reserved;
};

struct req_header {             /* struct fuse_uring_req_header: iov[0] of the entry */
    char in_out[URING_IN_OUT_HEADER_SZ];  /* fuse_in_header in, fuse_out_header out */
    char op_in[URING_OP_IN_OUT_SZ];       /* the request's first argument (the opcode's struct) */
    struct ring_ent_in_out ent;
};

struct cmd_req {                /* struct fuse_uring_cmd_req, in the SQE's command area */
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

enum { UD_ENTRY = 1, UD_STOP = 2 };

struct worker {
    struct lsm_fuse_ring *owner;
    pthread_t thread;
    int started;
    unsigned qid;
    int ring_fd;
    void *sq_map, *cq_map, *sqe_map;
    size_t sq_map_size, cq_map_size, sqe_map_size;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_cqe *cqes;
    char *sqes;
    /* The one ring entry: header page, then a page of room, then the payload buffer. A request
     * is rebuilt in /dev/fuse layout by copying its header and first argument right before
     * its payload, so WRITE data is never copied. */
    char *mem;
    size_t mem_size;
    struct req_header *hdr;
    char *payload;
    size_t payload_size;
    struct iovec reg_iov[2];
    uint64_t unique;            /* the request being served (0: none) */
    int replied;
};

struct lsm_fuse_ring {
    int fuse_fd;
    int stop_fd;
    unsigned nworkers;
    struct worker *workers;
    lsm_fuse_ring_handler handler;
    void *ctx;
    _Atomic uint64_t served;
    _Atomic int first_error;
};

static __thread struct worker *current_worker;

int lsm_fuse_ring_probe(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SQE128;
    int fd = (int)syscall(__NR_io_uring_setup, 1, &p);
    if (fd < 0) return -errno;
    close(fd);
    return 0;
}

unsigned lsm_fuse_ring_queue_count(void) {
    /* /sys/devices/system/cpu/possible: "0-1", "0", "0-3,8-11": the highest id + 1. */
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    if (!f) return (unsigned)sysconf(_SC_NPROCESSORS_CONF);
    char line[256];
    unsigned highest = 0;
    if (fgets(line, sizeof line, f)) {
        for (char *p = line; *p;) {
            if (*p >= '0' && *p <= '9') {
                unsigned v = (unsigned)strtoul(p, &p, 10);
                if (v > highest) highest = v;
            } else {
                p++;
            }
        }
    }
    fclose(f);
    return highest + 1;
}

/* Marks in `online[0..<n]` the CPUs listed in /sys/devices/system/cpu/online ("0-1",
 * "0,2-5"); all of them when the file cannot be read. */
static void read_online(unsigned char *online, unsigned n) {
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");
    char line[1024];
    if (!f || !fgets(line, sizeof line, f)) {
        memset(online, 1, n);
        if (f) fclose(f);
        return;
    }
    fclose(f);
    memset(online, 0, n);
    char *p = line;
    while (*p >= '0' && *p <= '9') {
        unsigned lo = (unsigned)strtoul(p, &p, 10), hi = lo;
        if (*p == '-') hi = (unsigned)strtoul(p + 1, &p, 10);
        for (unsigned c = lo; c <= hi && c < n; c++) online[c] = 1;
        if (*p == ',') p++;
    }
}

static int sys_setup(unsigned entries, struct io_uring_params *p) {
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags) {
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

static void unmap_ring(struct worker *w) {
    if (w->sqe_map) munmap(w->sqe_map, w->sqe_map_size);
    if (w->cq_map && w->cq_map != w->sq_map) munmap(w->cq_map, w->cq_map_size);
    if (w->sq_map) munmap(w->sq_map, w->sq_map_size);
    if (w->ring_fd >= 0) close(w->ring_fd);
    if (w->mem) munmap(w->mem, w->mem_size);
    w->sqe_map = w->cq_map = w->sq_map = NULL;
    w->mem = NULL;
    w->ring_fd = -1;
}

/* io_uring_setup and the three mappings (liburing's io_uring_queue_init, by hand). */
static int setup_ring(struct worker *w) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SQE128;
    int fd = sys_setup(RING_ENTRIES, &p);
    if (fd < 0) return -errno;
    w->ring_fd = fd;
    w->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    w->cq_map_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (w->cq_map_size > w->sq_map_size) w->sq_map_size = w->cq_map_size;
        w->cq_map_size = w->sq_map_size;
    }
    w->sq_map = mmap(NULL, w->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (w->sq_map == MAP_FAILED) { w->sq_map = NULL; return -errno; }
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        w->cq_map = w->sq_map;
    } else {
        w->cq_map = mmap(NULL, w->cq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
        if (w->cq_map == MAP_FAILED) { w->cq_map = NULL; return -errno; }
    }
    w->sqe_map_size = (size_t)p.sq_entries * SQE_SIZE;
    w->sqe_map = mmap(NULL, w->sqe_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (w->sqe_map == MAP_FAILED) { w->sqe_map = NULL; return -errno; }
    char *sq = w->sq_map, *cq = w->cq_map;
    w->sq_head = (unsigned *)(sq + p.sq_off.head);
    w->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    w->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    w->sq_array = (unsigned *)(sq + p.sq_off.array);
    w->cq_head = (unsigned *)(cq + p.cq_off.head);
    w->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    w->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    w->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    w->sqes = w->sqe_map;

    /* The payload starts on a huge-page boundary and is advised as huge pages: the kernel
     * pins it page by page at every commit (a READ reply of 256 KiB is 64 lookups), which a
     * huge page makes shorter. Two pages before it hold the entry's header and the room where
     * a request is rebuilt in /dev/fuse layout. The mapping is larger than what is touched. */
    size_t huge = HUGE_PAGE;
    size_t payload_span = (w->payload_size + huge - 1) / huge * huge;
    w->mem_size = 2 * PAGE + payload_span + huge;
    w->mem = mmap(NULL, w->mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->mem == MAP_FAILED) { w->mem = NULL; return -errno; }
    uintptr_t first = ((uintptr_t)w->mem + 2 * PAGE + huge - 1) / huge * huge;
    w->payload = (char *)first;
    w->hdr = (struct req_header *)(w->payload - 2 * PAGE);
    (void)madvise(w->payload, payload_span, MADV_HUGEPAGE);   /* advice: ignored where unsupported */
    w->reg_iov[0] = (struct iovec){ .iov_base = w->hdr, .iov_len = sizeof(struct req_header) };
    w->reg_iov[1] = (struct iovec){ .iov_base = w->payload, .iov_len = w->payload_size };
    return 0;
}

/* Fills the next SQE and publishes it (submitted at the next enter). */
static struct io_uring_sqe *next_sqe(struct worker *w) {
    unsigned tail = *w->sq_tail;
    unsigned head = __atomic_load_n(w->sq_head, __ATOMIC_ACQUIRE);
    if (tail - head > *w->sq_mask) return NULL;  /* full: cannot happen with two in flight */
    unsigned idx = tail & *w->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(w->sqes + (size_t)idx * SQE_SIZE);
    memset(sqe, 0, SQE_SIZE);
    return sqe;
}

static void publish_sqe(struct worker *w) {
    unsigned tail = *w->sq_tail;
    unsigned idx = tail & *w->sq_mask;
    w->sq_array[idx] = idx;
    __atomic_store_n(w->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

/* FUSE_IO_URING_CMD_REGISTER (iov: header, payload) or COMMIT_AND_FETCH of `commit_id`.
 * `bad` registers a too-short header on purpose: the kernel then turns the connection's
 * io_uring off and serves /dev/fuse (used when another worker could not be set up). */
static int queue_cmd(struct worker *w, unsigned op, uint64_t commit_id, int bad) {
    struct io_uring_sqe *sqe = next_sqe(w);
    if (!sqe) return -EBUSY;
    static struct iovec bad_iov[2];
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = w->owner->fuse_fd;
    sqe->cmd_op = op;
    if (op == CMD_REGISTER) {
        if (bad) {
            bad_iov[0] = (struct iovec){ .iov_base = w->hdr, .iov_len = 1 };
            bad_iov[1] = w->reg_iov[1];
            sqe->addr = (uint64_t)(uintptr_t)bad_iov;
        } else {
            sqe->addr = (uint64_t)(uintptr_t)w->reg_iov;
        }
        sqe->len = 2;
    }
    sqe->user_data = UD_ENTRY;
    struct cmd_req *cmd = (struct cmd_req *)sqe->cmd;
    cmd->commit_id = commit_id;
    cmd->qid = (uint16_t)w->qid;
    publish_sqe(w);
    return 0;
}

static int queue_stop_poll(struct worker *w) {
    struct io_uring_sqe *sqe = next_sqe(w);
    if (!sqe) return -EBUSY;
    sqe->opcode = IORING_OP_POLL_ADD;
    sqe->fd = w->owner->stop_fd;
    sqe->poll32_events = 0x001; /* POLLIN */
    sqe->user_data = UD_STOP;
    publish_sqe(w);
    return 0;
}

/* Submits what is queued and waits for at least one completion. */
static int enter(struct worker *w) {
    for (;;) {
        unsigned pending = *w->sq_tail - __atomic_load_n(w->sq_head, __ATOMIC_ACQUIRE);
        int r = sys_enter(w->ring_fd, pending, 1, IORING_ENTER_GETEVENTS);
        if (r >= 0) return 0;
        if (errno == EINTR || errno == EAGAIN || errno == EBUSY) {
            if (__atomic_load_n(w->cq_tail, __ATOMIC_ACQUIRE) != *w->cq_head) return 0;
            continue;
        }
        return -errno;
    }
}

int lsm_fuse_ring_in_worker(void) {
    return current_worker != NULL;
}

void *lsm_fuse_ring_reply_buffer(size_t *capacity) {
    struct worker *w = current_worker;
    if (!w || w->replied) return NULL;
    *capacity = w->payload_size;
    return w->payload;
}

ssize_t lsm_fuse_ring_reply(const struct iovec *iov, int count) {
    struct worker *w = current_worker;
    if (!w || w->replied || count < 1 || iov[0].iov_len < OUT_HEADER_SIZE) return -1;
    uint64_t unique;
    memcpy(&unique, (const char *)iov[0].iov_base + 8, sizeof unique);
    if (unique != w->unique) return -1;
    size_t total = 0;
    for (int i = 0; i < count; i++) total += iov[i].iov_len;
    if (total - OUT_HEADER_SIZE > w->payload_size) {
        errno = EINVAL;
        return -2;
    }
    memcpy(w->hdr->in_out, iov[0].iov_base, OUT_HEADER_SIZE);
    /* fuse_out_header first, the reply's arguments after it: in the payload, contiguous. */
    char *dst = w->payload;
    for (int i = 0; i < count; i++) {
        const char *src = iov[i].iov_base;
        size_t n = iov[i].iov_len;
        if (i == 0) { src += OUT_HEADER_SIZE; n -= OUT_HEADER_SIZE; }
        if (n && src != dst) memcpy(dst, src, n);   /* same place: written there in place */
        dst += n;
    }
    w->hdr->ent.payload_sz = (uint32_t)(total - OUT_HEADER_SIZE);
    w->replied = 1;
    return (ssize_t)total;
}

static void reply_error(struct worker *w, uint64_t unique, int error) {
    struct { uint32_t len; int32_t error; uint64_t unique; } oh = { OUT_HEADER_SIZE, -error, unique };
    memcpy(w->hdr->in_out, &oh, sizeof oh);
    w->hdr->ent.payload_sz = 0;
}

/* Serves the request now in the entry; queues its commit (which also fetches the next one). */
static int serve(struct worker *w) {
    struct lsm_fuse_ring *r = w->owner;
    uint32_t len;
    uint64_t unique;
    memcpy(&len, w->hdr->in_out, sizeof len);
    memcpy(&unique, w->hdr->in_out + 8, sizeof unique);
    uint32_t payload = w->hdr->ent.payload_sz;
    uint64_t commit_id = w->hdr->ent.commit_id;
    if (len < IN_HEADER_SIZE + (uint64_t)payload || len - IN_HEADER_SIZE - payload > URING_OP_IN_OUT_SZ
        || payload > w->payload_size) {
        fprintf(stderr, "lsmfs: fuse ring: malformed request (len %u, payload %u); replying EIO\n", len, payload);
        reply_error(w, unique, EIO);
        return queue_cmd(w, CMD_COMMIT_AND_FETCH, commit_id, 0);
    }
    uint32_t arg = len - IN_HEADER_SIZE - payload;
    char *start = w->payload - IN_HEADER_SIZE - arg;
    memcpy(start, w->hdr->in_out, IN_HEADER_SIZE);
    memcpy(start + IN_HEADER_SIZE, w->hdr->op_in, arg);
    w->unique = unique;
    w->replied = 0;
    current_worker = w;
    r->handler(r->ctx, start, len);
    current_worker = NULL;
    w->unique = 0;
    if (!w->replied) reply_error(w, unique, EIO);
    atomic_fetch_add_explicit(&r->served, 1, memory_order_relaxed);
    return queue_cmd(w, CMD_COMMIT_AND_FETCH, commit_id, 0);
}

static void note_error(struct lsm_fuse_ring *r, int err) {
    int expected = 0;
    atomic_compare_exchange_strong(&r->first_error, &expected, err);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    struct lsm_fuse_ring *r = w->owner;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->qid, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);  /* an offline CPU: unpinned */
    int err = queue_stop_poll(w);
    if (!err) err = queue_cmd(w, CMD_REGISTER, 0, 0);
    int registering = 1;
    while (!err) {
        err = enter(w);
        if (err) break;
        unsigned head = *w->cq_head;
        unsigned tail = __atomic_load_n(w->cq_tail, __ATOMIC_ACQUIRE);
        int stop = 0;
        for (; head != tail && !err && !stop; head++) {
            struct io_uring_cqe *cqe = &w->cqes[head & *w->cq_mask];
            uint64_t ud = cqe->user_data;
            int res = cqe->res;
            __atomic_store_n(w->cq_head, head + 1, __ATOMIC_RELEASE);
            if (ud == UD_STOP) { stop = 1; break; }
            if (res == -EAGAIN && registering) {
                /* The connection is not initialized yet: register again shortly. */
                usleep(1000);
                err = queue_cmd(w, CMD_REGISTER, 0, 0);
                continue;
            }
            if (res < 0) {
                /* ENOTCONN/ECANCELED/ECONNABORTED: unmounted or aborted. */
                if (res == -ENOTCONN || res == -ECANCELED || res == -ECONNABORTED) { stop = 1; break; }
                fprintf(stderr, "lsmfs: fuse ring queue %u: %s%s\n", w->qid, strerror(-res),
                        registering ? " (register refused)" : "; registering the entry again");
                note_error(r, -res);
                if (registering) { stop = 1; break; }
                /* A refused commit leaves the kernel's entry in user space: give the queue a new one. */
                registering = 1;
                err = queue_cmd(w, CMD_REGISTER, 0, 0);
                continue;
            }
            registering = 0;
            err = serve(w);
        }
        if (stop) {
            /* A commit queued before the stop in the same batch still goes out: its caller
             * gets its reply. */
            unsigned pending = *w->sq_tail - __atomic_load_n(w->sq_head, __ATOMIC_ACQUIRE);
            if (pending) (void)sys_enter(w->ring_fd, pending, 0, 0);
            break;
        }
    }
    if (err) {
        fprintf(stderr, "lsmfs: fuse ring queue %u stopped: %s\n", w->qid, strerror(-err));
        note_error(r, -err);
    }
    return NULL;
}

struct lsm_fuse_ring *lsm_fuse_ring_start(int fuse_fd, unsigned per_queue, size_t payload_size,
                                          lsm_fuse_ring_handler handler, void *ctx) {
    unsigned queues = lsm_fuse_ring_queue_count();
    if (per_queue == 0) per_queue = 1;
    struct lsm_fuse_ring *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->fuse_fd = fuse_fd;
    r->handler = handler;
    r->ctx = ctx;
    /* An offline CPU's queue (it may come online later) gets one worker. */
    unsigned char *online = malloc(queues);
    if (!online) { free(r); return NULL; }
    read_online(online, queues);
    r->nworkers = 0;
    for (unsigned q = 0; q < queues; q++) r->nworkers += online[q] ? per_queue : 1;
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    r->workers = calloc(r->nworkers, sizeof *r->workers);
    if (r->stop_fd < 0 || !r->workers) goto fail;
    payload_size = (payload_size + PAGE - 1) / PAGE * PAGE;
    for (unsigned i = 0; i < r->nworkers; i++) r->workers[i].ring_fd = -1;
    int err = 0;
    unsigned made = 0;
    unsigned qid = 0, of_queue = 0;
    for (; made < r->nworkers; made++) {
        struct worker *w = &r->workers[made];
        w->owner = r;
        w->qid = qid;
        if (++of_queue >= (online[qid] ? per_queue : 1)) { qid++; of_queue = 0; }
        w->payload_size = payload_size;
        err = setup_ring(w);
        /* Fault injection for the fallback test: the last ring "cannot be set up". */
        if (!err && made + 1 == r->nworkers && getenv("LSMFS_IO_URING_FAIL_SETUP")) err = -ENOMEM;
        if (err) { unmap_ring(w); break; }
    }
    free(online);
    online = NULL;
    if (err) {
        /* Turn the connection's io_uring off through a ring that works (a register the kernel
         * refuses does it), or requests would wait for a ring that never becomes ready. */
        if (made > 0) {
            struct worker *w = &r->workers[0];
            if (queue_cmd(w, CMD_REGISTER, 0, 1) == 0) (void)sys_enter(w->ring_fd, 1, 1, IORING_ENTER_GETEVENTS);
        }
        for (unsigned i = 0; i < r->nworkers; i++) unmap_ring(&r->workers[i]);
        errno = -err;
        goto fail;
    }
    for (unsigned i = 0; i < r->nworkers; i++) {
        struct worker *w = &r->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            /* The workers started so far register; this queue's entry never would. */
            if (queue_cmd(w, CMD_REGISTER, 0, 1) == 0) (void)sys_enter(w->ring_fd, 1, 1, IORING_ENTER_GETEVENTS);
            continue;
        }
        w->started = 1;
    }
    return r;
fail:
    free(online);
    if (r->stop_fd >= 0) close(r->stop_fd);
    free(r->workers);
    free(r);
    return NULL;
}

void lsm_fuse_ring_stop(struct lsm_fuse_ring *r) {
    if (!r) return;
    uint64_t one = 1;
    ssize_t n = write(r->stop_fd, &one, sizeof one);
    (void)n;
    for (unsigned i = 0; i < r->nworkers; i++) {
        if (r->workers[i].started) pthread_join(r->workers[i].thread, NULL);
    }
    for (unsigned i = 0; i < r->nworkers; i++) unmap_ring(&r->workers[i]);
    close(r->stop_fd);
    free(r->workers);
    free(r);
}

uint64_t lsm_fuse_ring_served(const struct lsm_fuse_ring *r) {
    return r ? atomic_load_explicit(&((struct lsm_fuse_ring *)r)->served, memory_order_relaxed) : 0;
}

int lsm_fuse_ring_first_error(const struct lsm_fuse_ring *r) {
    return r ? atomic_load_explicit(&((struct lsm_fuse_ring *)r)->first_error, memory_order_relaxed) : 0;
}
