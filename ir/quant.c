/* Dequantization of GGUF block formats (ir/quant.h); f16/bf16 conversion
 * is runtime/half.c. Blocks are read byte by byte; offsets below are in
 * bytes from the start of a block. Arithmetic is float, in the order ggml's
 * reference dequantizers use, so results agree with llama.cpp bit for bit.
 */
#include <inttypes.h>
#include <string.h>

#include "quant.h"

/* ------------------------------------------------------------------------ */
/* Block formats                                                             */

static uint16_t rd_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static float rd_f16(const uint8_t *p)
{
    return mica_f16_to_f32(rd_u16(p));
}

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Q4_0, 18 bytes: f16 d @0, qs[16] @2. Element j < 16 is the low nibble of
 * qs[j], element j + 16 its high nibble; x = d * (q - 8). */
static void deq_q4_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0xf) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1, 20 bytes: f16 d @0, f16 m @2, qs[16] @4; x = d * q + m. */
static void deq_q4_1(const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0xf) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

/* Q5_0, 22 bytes: f16 d @0, u32 qh @2 (bit j = 5th bit of element j),
 * qs[16] @6 (nibbles as Q4_0); x = d * (q - 16). */
static void deq_q5_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    uint32_t qh = rd_u32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int q0 = (int)((qs[j] & 0xfu) | ((qh >> j) & 1u) << 4);
        int q1 = (int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4);
        y[j] = (float)(q0 - 16) * d;
        y[j + 16] = (float)(q1 - 16) * d;
    }
}

/* Q5_1, 24 bytes: f16 d @0, f16 m @2, u32 qh @4, qs[16] @8; x = d * q + m. */
static void deq_q5_1(const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh = rd_u32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        unsigned q0 = (qs[j] & 0xfu) | ((qh >> j) & 1u) << 4;
        unsigned q1 = (qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4;
        y[j] = (float)q0 * d + m;
        y[j + 16] = (float)q1 * d + m;
    }
}

/* Q8_0, 34 bytes: f16 d @0, int8 qs[32] @2; x = d * q. */
static void deq_q8_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q2_K, 84 bytes: scales[16] @0 (low nibble scale, high nibble min, one per
 * 16 elements), qs[64] @16 (2-bit), f16 d @80, f16 dmin @82.
 * Each 128-element half uses 32 bytes of qs: bit pair s (0..3) of byte l
 * is element 32*s + l of that half. x = d * scale * q - dmin * min. */
static void deq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *qs = b + 16;
    float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    int is = 0;
    for (int half = 0; half < 2; half++) {
        const uint8_t *q = qs + 32 * half;
        for (int shift = 0; shift < 8; shift += 2) {
            for (int g = 0; g < 2; g++) {
                float dl = d * (float)(sc[is] & 0xf);
                float ml = dmin * (float)(sc[is] >> 4);
                is++;
                for (int l = 0; l < 16; l++)
                    *y++ = dl * (float)((q[16 * g + l] >> shift) & 3) - ml;
            }
        }
    }
}

/* Q3_K, 110 bytes: hmask[32] @0, qs[64] @32 (low 2 bits, laid out as
 * Q2_K), scales[12] @96 (16 6-bit scales biased by 32), f16 d @108.
 * Bit (4*half + s) of hmask[l] is the high bit of element 128*half + 32*s + l;
 * a clear high bit subtracts 4. x = d * (scale - 32) * q. */
static void deq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
    float d = rd_f16(b + 108);
    int scale[16];
    /* Low 4 bits: bytes 0..7, low nibbles for scales 0..7, high for 8..15.
     * High 2 bits: bytes 8..11, bit pair i/4 of byte 8 + i%4. */
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? (s[i] & 0xf) : (s[i - 8] >> 4);
        int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
        scale[i] = (lo | hi << 4) - 32;
    }
    int is = 0;
    unsigned bit = 1;
    for (int half = 0; half < 2; half++) {
        const uint8_t *q = qs + 32 * half;
        for (int shift = 0; shift < 8; shift += 2) {
            for (int g = 0; g < 2; g++) {
                float dl = d * (float)scale[is++];
                for (int l = 16 * g; l < 16 * g + 16; l++) {
                    int v = ((q[l] >> shift) & 3) - ((hm[l] & bit) ? 0 : 4);
                    *y++ = dl * (float)v;
                }
            }
            bit <<= 1;
        }
    }
}

/* Scale and min j (0..7) of a Q4_K/Q5_K block, 6 bits each in 12 bytes:
 * j < 4: scale = s[j] & 63, min = s[j+4] & 63; j >= 4: the low 4 bits come
 * from the nibbles of s[j+4] and the high 2 bits from the tops of s[j-4]
 * (scale) and s[j] (min). */
static void scale_min_k4(int j, const uint8_t *s, float *out_scale, float *out_min)
{
    int sc, m;
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xf) | (s[j - 4] >> 6) << 4;
        m = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
    *out_scale = (float)sc;
    *out_min = (float)m;
}

/* The 256 elements of a Q4_K or Q5_K block b, whose nibbles are at qs and,
 * for Q5_K, fifth bits at qh (NULL for Q4_K). Each 64 elements use 32
 * bytes of qs: low nibbles first, then high nibbles, each 32 with its own
 * scale/min; bit (2c) of qh[l] tops the low nibble of chunk c, bit (2c+1)
 * the high one. x = d * scale * q - dmin * min. */
static void deq_k4(const uint8_t *b, const uint8_t *qh, const uint8_t *qs, float *y)
{
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *s = b + 4;
    for (int c = 0; c < 4; c++) {
        float sc0, m0, sc1, m1;
        scale_min_k4(2 * c, s, &sc0, &m0);
        scale_min_k4(2 * c + 1, s, &sc1, &m1);
        float d0 = d * sc0, dm0 = dmin * m0, d1 = d * sc1, dm1 = dmin * m1;
        const uint8_t *q = qs + 32 * c;
        unsigned u0 = 1u << (2 * c), u1 = 2u << (2 * c);
        for (int l = 0; l < 32; l++)
            *y++ = d0 * (float)((q[l] & 0xf) + (qh && (qh[l] & u0) ? 16 : 0)) - dm0;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((q[l] >> 4) + (qh && (qh[l] & u1) ? 16 : 0)) - dm1;
    }
}

/* Q4_K, 144 bytes: f16 d @0, f16 dmin @2, scales[12] @4, qs[128] @16. */
static void deq_q4_k(const uint8_t *b, float *y)
{
    deq_k4(b, NULL, b + 16, y);
}

/* Q5_K, 176 bytes: f16 d @0, f16 dmin @2, scales[12] @4, qh[32] @16,
 * qs[128] @48. */
static void deq_q5_k(const uint8_t *b, float *y)
{
    deq_k4(b, b + 16, b + 48, y);
}

/* Q6_K, 210 bytes: ql[128] @0 (low 4 bits), qh[64] @128 (high 2 bits),
 * int8 scales[16] @192 (one per 16 elements), f16 d @208.
 * Per 128-element half h, quarter k (0..3), l (0..31): low bits are the
 * (k < 2 ? low : high) nibble of ql[64h + 32(k&1) + l], high bits the bit
 * pair k of qh[32h + l]; x = d * scale * (q - 32). */
static void deq_q6_k(const uint8_t *b, float *y)
{
    float d = rd_f16(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        const int8_t sc[8] = {
            (int8_t)b[192 + 8 * h + 0], (int8_t)b[192 + 8 * h + 1], (int8_t)b[192 + 8 * h + 2],
            (int8_t)b[192 + 8 * h + 3], (int8_t)b[192 + 8 * h + 4], (int8_t)b[192 + 8 * h + 5],
            (int8_t)b[192 + 8 * h + 6], (int8_t)b[192 + 8 * h + 7],
        };
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q0 = (int)((ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4) - 32;
            int q1 = (int)((ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4) - 32;
            int q2 = (int)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
            int q3 = (int)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
            y[l] = d * (float)sc[is + 0] * (float)q0;
            y[l + 32] = d * (float)sc[is + 2] * (float)q1;
            y[l + 64] = d * (float)sc[is + 4] * (float)q2;
            y[l + 96] = d * (float)sc[is + 6] * (float)q3;
        }
        y += 128;
    }
}

typedef void (*deq_block_fn)(const uint8_t *block, float *y);

mica_status_t mica_dequantize_row(mica_dtype_t t, const void *src, float *dst, int64_t n,
                                  mica_diag_t *d)
{
    if ((unsigned)t >= MICA_DTYPE_COUNT)
        return mica_diag_set(d, MICA_ERR_INVALID, "dequantize: unknown dtype %d", (int)t);
    if (n < 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "dequantize: negative row length %" PRId64, n);
    int64_t be = mica_dtype_block_elems(t);
    if (n % be != 0)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "dequantize: row length %" PRId64
                             " is not a multiple of the %s block size %" PRId64,
                             n, mica_dtype_name(t), be);
    const uint8_t *p = src;
    deq_block_fn fn = NULL;
    switch (t) {
    case MICA_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) {
            uint32_t bits = rd_u32(p + 4 * i);
            memcpy(&dst[i], &bits, sizeof bits);
        }
        return MICA_OK;
    case MICA_DTYPE_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = rd_f16(p + 2 * i);
        return MICA_OK;
    case MICA_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = mica_bf16_to_f32(rd_u16(p + 2 * i));
        return MICA_OK;
    case MICA_DTYPE_Q4_0:
        fn = deq_q4_0;
        break;
    case MICA_DTYPE_Q4_1:
        fn = deq_q4_1;
        break;
    case MICA_DTYPE_Q5_0:
        fn = deq_q5_0;
        break;
    case MICA_DTYPE_Q5_1:
        fn = deq_q5_1;
        break;
    case MICA_DTYPE_Q8_0:
        fn = deq_q8_0;
        break;
    case MICA_DTYPE_Q2_K:
        fn = deq_q2_k;
        break;
    case MICA_DTYPE_Q3_K:
        fn = deq_q3_k;
        break;
    case MICA_DTYPE_Q4_K:
        fn = deq_q4_k;
        break;
    case MICA_DTYPE_Q5_K:
        fn = deq_q5_k;
        break;
    case MICA_DTYPE_Q6_K:
        fn = deq_q6_k;
        break;
    default:
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "dequantize: %s is not a storage format",
                             mica_dtype_name(t));
    }
    int64_t bb = mica_dtype_block_bytes(t);
    for (int64_t i = 0; i < n / be; i++)
        fn(p + i * bb, dst + i * be);
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* Group-quantized rows (u4 / i8 with f16 scale and min per group)           */

mica_status_t mica_dequantize_group_row(mica_dtype_t qt, const void *q, const void *scales,
                                        const void *mins, int64_t group, float *dst, int64_t n,
                                        mica_diag_t *d)
{
    if (qt != MICA_DTYPE_U4 && qt != MICA_DTYPE_I8)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "group dequantize: %s is not u4 or i8",
                             mica_dtype_name(qt));
    if (n < 0 || group < 1 || n % group != 0 || (qt == MICA_DTYPE_U4 && n % 2 != 0))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "group dequantize: row of %" PRId64 " in groups of %" PRId64, n,
                             group);
    const uint8_t *qb = q, *sb = scales, *mb = mins;
    for (int64_t g = 0; g < n / group; g++) {
        float s = rd_f16(sb + 2 * g), m = rd_f16(mb + 2 * g);
        for (int64_t k = g * group; k < (g + 1) * group; k++) {
            int v = qt == MICA_DTYPE_I8 ? (int)(int8_t)qb[k] : (int)((qb[k / 2] >> (4 * (k & 1))) & 0xf);
            dst[k] = s * (float)v + m;
        }
    }
    return MICA_OK;
}
