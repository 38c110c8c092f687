/* Quantization of float32 rows into GGUF storage formats: the inverse of
 * ir/quant.h for the types a model file is commonly written in.
 *
 * The block math is that of ggml's reference quantizers
 * (quantize_row_*_ref), so a row encoded here is byte for byte what
 * llama.cpp writes for the same floats:
 *   Q8_0  d = amax / 127,            q = round(x / d)
 *   Q4_0  d = max / -8 (max: the value of largest magnitude, with its sign),
 *                                    q = min(15, (int)(x / d + 8.5))
 *   Q4_1  d = (max - min) / 15, m = min,
 *                                    q = min(15, (int)((x - min) / d + 0.5))
 * Scales are computed in float and stored as f16; the division uses the
 * float scale (1/d), as ggml does, not the rounded f16 one.
 */
#ifndef MICA_QUANT_ENCODE_H
#define MICA_QUANT_ENCODE_H

#include <stdint.h>

#include "diag.h"
#include "ir.h"

/* Encodes n floats from src into out_dst (mica_dtype_row_bytes(t, n)
 * bytes, caller-owned). t is one of F32, F16, Q8_0, Q4_0, Q4_1. Fails with
 * MICA_ERR_UNSUPPORTED for other types, MICA_ERR_INVALID for a NULL
 * pointer, an n that is not a positive multiple of the block, or a value
 * that is not finite (named by index). */
mica_status_t mica_quant_encode_row(mica_dtype_t t, const float *src, int64_t n, void *out_dst,
                                    mica_diag_t *d);

/* True for the types mica_quant_encode_row writes. */
bool mica_quant_encode_supported(mica_dtype_t t);

#endif
