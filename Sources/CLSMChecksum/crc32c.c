#include "lsm_crc32c.h"
#include <string.h>

#if defined(__x86_64__)
int lsm_crc32c_hw_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") ? 1 : 0;
}

__attribute__((target("sse4.2")))
uint32_t lsm_crc32c_hw_extend(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = (uint32_t)~crc;
    while (n > 0 && ((uintptr_t)p & 7) != 0) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8; n -= 8;
    }
    while (n > 0) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
    return ~(uint32_t)c;
}
#else
int lsm_crc32c_hw_available(void) { return 0; }
uint32_t lsm_crc32c_hw_extend(uint32_t crc, const void *data, size_t n) { (void)data; (void)n; return crc; }
#endif
