/* Dequantization of the storage formats of ir/dtypes.def to float32.
 *
 * Rows are n elements in one dtype; n must be a multiple of the dtype's
 * block (mica_dtype_block_elems). The block layouts are GGUF's (ggml's
 * block_q4_0, ..., block_q6_K), read byte by byte so the code does not
 * depend on host struct packing or endianness beyond little-endian f16.
 */
#ifndef MICA_QUANT_H
#define MICA_QUANT_H

#include <stdint.h>

#include "diag.h"
#include "half.h" /* f16/bf16 conversion, from the runtime */
#include "ir.h"

/* Dequantizes n elements from src (mica_dtype_row_bytes(t, n) bytes) into
 * dst. Fails (MICA_ERR_UNSUPPORTED / INVALID) for i32/i8/i4 or a bad n. */
mica_status_t mica_dequantize_row(mica_dtype_t t, const void *src, float *dst, int64_t n,
                                  mica_diag_t *d);

/* Dequantizes one row of n elements of a group-quantized weight (the
 * quantize pass's form, ops.def qmatmul/wmatmul): q holds the row in qt
 * (u4: n/2 bytes, element 2i in the low nibble of byte i; i8: n bytes),
 * scales and mins n/group little-endian f16 values each, and
 *   dst[k] = f32(f32(s[k/group] * q[k]) + m[k/group]).
 * Fails for another qt, n or group < 1, group not dividing n, or odd n for u4. */
mica_status_t mica_dequantize_group_row(mica_dtype_t qt, const void *q, const void *scales,
                                        const void *mins, int64_t group, float *dst, int64_t n,
                                        mica_diag_t *d);

#endif
