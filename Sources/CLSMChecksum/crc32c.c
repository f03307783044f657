#include "lsm_crc32c.h"
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
int lsm_crc32c_hw_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

/* Three-way interleaved CRC32C after Mark Adler's crc32c.c (zlib license): the crc32
   instruction has a throughput of one per cycle but a latency of three, so three independent
   streams over consecutive blocks run about three times faster than one; the partial CRCs are
   then combined by shifting the first over the others' length of zeros (a GF(2) matrix applied
   byte-wise through four 256-entry tables per block size). */
#define CRC32C_POLY 0x82f63b78u
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    while (vec) { if (vec & 1) sum ^= *mat; vec >>= 1; mat++; }
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat) {
    for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends `len` (a power of two) zero bytes to a CRC. */
static void zeros_op(uint32_t *even, size_t len) {
    uint32_t odd[32];
    odd[0] = CRC32C_POLY;             /* one zero bit */
    uint32_t row = 1;
    for (int n = 1; n < 32; n++) { odd[n] = row; row <<= 1; }
    gf2_square(even, odd);            /* two zero bits */
    gf2_square(odd, even);            /* four zero bits */
    do {
        gf2_square(even, odd);        /* one zero byte, then 4, 16, ... */
        len >>= 1;
        if (len == 0) return;
        gf2_square(odd, even);        /* 2, 8, 32, ... zero bytes */
        len >>= 1;
    } while (len);
    for (int n = 0; n < 32; n++) even[n] = odd[n];
}

static void zeros_tables(uint32_t zeros[][256], size_t len) {
    uint32_t op[32];
    zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++) {
        zeros[0][n] = gf2_times(op, n);
        zeros[1][n] = gf2_times(op, n << 8);
        zeros[2][n] = gf2_times(op, n << 16);
        zeros[3][n] = gf2_times(op, n << 24);
    }
}

static uint32_t shift(uint32_t zeros[][256], uint32_t crc) {
    return zeros[0][crc & 0xff] ^ zeros[1][(crc >> 8) & 0xff] ^ zeros[2][(crc >> 16) & 0xff] ^ zeros[3][crc >> 24];
}

static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
static uint32_t long_zeros[4][256];
static uint32_t short_zeros[4][256];
static void init_tables(void) {
    zeros_tables(long_zeros, LONG_BLOCK);
    zeros_tables(short_zeros, SHORT_BLOCK);
}

__attribute__((target("sse4.2")))
static inline uint64_t crc_u64(uint64_t c, const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_ia32_crc32di(c, v);
}

/* Three streams over blocks of `block` bytes at a time while 3 × block bytes remain. */
#define THREE_WAY(block, zeros)                                                     \
    while (n >= 3 * (block)) {                                                      \
        uint64_t c1 = 0, c2 = 0;                                                    \
        const unsigned char *end = p + (block);                                     \
        do {                                                                        \
            c = crc_u64(c, p); c1 = crc_u64(c1, p + (block)); c2 = crc_u64(c2, p + 2 * (block)); \
            p += 8;                                                                 \
        } while (p < end);                                                          \
        c = shift(zeros, (uint32_t)c) ^ c1;                                         \
        c = shift(zeros, (uint32_t)c) ^ c2;                                         \
        p += 2 * (block);                                                           \
        n -= 3 * (block);                                                           \
    }

__attribute__((target("sse4.2")))
uint32_t lsm_crc32c_hw_extend(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = (uint32_t)~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
    if (n >= 3 * SHORT_BLOCK) {
        pthread_once(&tables_once, init_tables);
        THREE_WAY(LONG_BLOCK, long_zeros)
        THREE_WAY(SHORT_BLOCK, short_zeros)
    }
    while (n >= 8) { c = crc_u64(c, p); p += 8; n -= 8; }
    while (n > 0) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
    return ~(uint32_t)c;
}
#else
int lsm_crc32c_hw_available(void) { return 0; }
uint32_t lsm_crc32c_hw_extend(uint32_t crc, const void *data, size_t n) { (void)data; (void)n; return crc; }
#endif
