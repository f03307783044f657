// Hardware CRC32C (SSE4.2 `crc32` instruction) behind LSMCommon.CRC32C.
// Same function as LSMCommon.CRC32C.software (Castagnoli, reflected 0x82F63B78, pre/post inverted).
#ifndef LSM_CRC32C_H
#define LSM_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// 1 when this CPU has the CRC32C instruction (x86-64 SSE4.2), else 0.
int lsm_crc32c_hw_available(void);
/// Extends `crc` (an earlier result, or 0) over `n` bytes. Call only when
/// lsm_crc32c_hw_available() returned 1.
uint32_t lsm_crc32c_hw_extend(uint32_t crc, const void *data, size_t n);
/// The crc32-instruction path alone (three-way interleaved), without the folding path
/// lsm_crc32c_hw_extend takes for long buffers on CPUs with AVX-512 VPCLMULQDQ (tests).
uint32_t lsm_crc32c_hw3_extend(uint32_t crc, const void *data, size_t n);
/// 1 when lsm_crc32c_hw_extend folds long buffers with VPCLMULQDQ, else 0.
int lsm_crc32c_fold_available(void);

#endif
