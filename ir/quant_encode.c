/* float32 -> GGUF block formats (ir/quant_encode.h). Blocks are written
 * byte by byte (f16 little-endian), the layout ir/quant.c reads. */
#include <math.h>
#include <string.h>

#include "quant.h"
#include "quant_encode.h"

#define QK 32 /* elements per Q4_0 / Q4_1 / Q8_0 block */

static void put_f16(uint8_t *p, float f)
{
    uint16_t h = mica_f32_to_f16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

/* Q8_0 block: f16 d, 32 x int8. */
static void encode_q8_0(const float *x, uint8_t *b)
{
    float amax = 0.0f;
    for (int j = 0; j < QK; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float dq = amax / 127.0f;
    float id = dq != 0.0f ? 1.0f / dq : 0.0f;
    put_f16(b, dq);
    for (int j = 0; j < QK; j++)
        b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* Q4_0 block: f16 d, 16 bytes; element j in the low nibble of byte j,
 * element j + 16 in the high nibble. */
static void encode_q4_0(const float *x, uint8_t *b)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    float dq = max / -8.0f;
    float id = dq != 0.0f ? 1.0f / dq : 0.0f;
    put_f16(b, dq);
    for (int j = 0; j < QK / 2; j++) {
        int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[j + QK / 2] * id + 8.5f);
        lo = lo < 15 ? lo : 15;
        hi = hi < 15 ? hi : 15;
        b[2 + j] = (uint8_t)(lo | hi << 4);
    }
}

/* Q4_1 block: f16 d, f16 m, 16 bytes, nibbles as Q4_0. */
static void encode_q4_1(const float *x, uint8_t *b)
{
    float min = x[0], max = x[0];
    for (int j = 1; j < QK; j++) {
        if (x[j] < min)
            min = x[j];
        if (x[j] > max)
            max = x[j];
    }
    float dq = (max - min) / 15.0f;
    float id = dq != 0.0f ? 1.0f / dq : 0.0f;
    put_f16(b, dq);
    put_f16(b + 2, min);
    for (int j = 0; j < QK / 2; j++) {
        int lo = (int)((x[j] - min) * id + 0.5f), hi = (int)((x[j + QK / 2] - min) * id + 0.5f);
        lo = lo < 15 ? lo : 15;
        hi = hi < 15 ? hi : 15;
        b[4 + j] = (uint8_t)(lo | hi << 4);
    }
}

bool mica_quant_encode_supported(mica_dtype_t t)
{
    return t == MICA_DTYPE_F32 || t == MICA_DTYPE_F16 || t == MICA_DTYPE_Q8_0 ||
           t == MICA_DTYPE_Q4_0 || t == MICA_DTYPE_Q4_1;
}

mica_status_t mica_quant_encode_row(mica_dtype_t t, const float *src, int64_t n, void *out_dst,
                                    mica_diag_t *d)
{
    if (!mica_quant_encode_supported(t))
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "cannot quantize to %s",
                             mica_dtype_name(t) ? mica_dtype_name(t) : "an unknown type");
    if (!src || !out_dst)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: NULL row");
    int64_t be = mica_dtype_block_elems(t);
    if (n <= 0 || n % be != 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: %lld elements are not a multiple of %lld",
                             (long long)n, (long long)be);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return mica_diag_set(d, MICA_ERR_INVALID, "quantize: element %lld is not finite",
                                 (long long)i);
    uint8_t *dst = out_dst;
    switch (t) {
    case MICA_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case MICA_DTYPE_F16:
        for (int64_t i = 0; i < n; i++)
            put_f16(dst + 2 * i, src[i]);
        break;
    case MICA_DTYPE_Q8_0:
        for (int64_t i = 0; i < n / QK; i++)
            encode_q8_0(src + i * QK, dst + i * 34);
        break;
    case MICA_DTYPE_Q4_0:
        for (int64_t i = 0; i < n / QK; i++)
            encode_q4_0(src + i * QK, dst + i * 18);
        break;
    case MICA_DTYPE_Q4_1:
        for (int64_t i = 0; i < n / QK; i++)
            encode_q4_1(src + i * QK, dst + i * 20);
        break;
    default:
        break;
    }
    return MICA_OK;
}
