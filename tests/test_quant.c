/* f16/bf16 conversions and block dequantization.
 *
 * Oracles: (1) conversions against values computed in double with ldexp /
 * frexp / rint, never by bit tricks; (2) every block type against a
 * per-element formula written here (element index -> bits), over seeded
 * random blocks, and a few hand-built blocks with known values; (3) the
 * golden models: the same random weights stored as f32 and as each block
 * type by llama.cpp, so dequant(TYPE) must sit within that type's
 * quantization error of the f32 weights (a swapped nibble or mis-packed
 * scale is orders of magnitude worse).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* Reference conversions (double arithmetic)                                  */

/* Value of half h, from its fields by ldexp. */
static double ref_half_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp(1024.0 + m, e - 25);
    return s ? -v : v;
}

/* Nearest representable value with `bits` significant bits, exponent at
 * least emin (subnormals below it) and largest finite exponent emax;
 * ties to even. Returns the encoded value (sign handled by the caller) as
 * fields: *out_e biased by bias, *out_m without the implicit bit. Returns
 * false if it rounds to infinity. */
static bool ref_round(double a, int bits, int emin, int emax, int *out_e, int *out_m)
{
    int ex;
    frexp(a, &ex); /* a = f * 2^ex, f in [0.5, 1) */
    int e = ex - 1;
    if (a == 0.0 || e < emin)
        e = emin;
    /* q = a in units of the last place at exponent e */
    double q = rint(ldexp(a, bits - 1 - e));
    if (q >= ldexp(1.0, bits)) { /* rounded up to the next binade */
        q /= 2;
        e++;
    }
    if (e > emax)
        return false;
    bool normal = q >= ldexp(1.0, bits - 1);
    *out_e = normal ? e : emin - 1;
    *out_m = (int)(normal ? q - ldexp(1.0, bits - 1) : q);
    return true;
}

static uint16_t ref_f32_to_f16(float f)
{
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isinf(f))
        return sign | 0x7c00;
    int e, m;
    if (!ref_round(a, 11, -14, 15, &e, &m))
        return sign | 0x7c00;
    return (uint16_t)(sign | (e + 15) << 10 | m);
}

static uint16_t ref_f32_to_bf16(float f)
{
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isinf(f))
        return sign | 0x7f80;
    int e, m;
    if (!ref_round(a, 8, -126, 127, &e, &m))
        return sign | 0x7f80;
    return (uint16_t)(sign | (e + 127) << 7 | m);
}

static float from_bits(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static bool is_half_nan(uint16_t h)
{
    return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
}

static bool is_bf16_nan(uint16_t h)
{
    return (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
}

Test(quant, f16_to_f32_exact_for_all_halves)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float got = mica_f16_to_f32((uint16_t)h);
        double ref = ref_half_value((uint16_t)h);
        if (is_half_nan((uint16_t)h)) {
            cr_assert(isnan(got), "half %04x should be nan", h);
            cr_assert_eq(signbit(got) != 0, (h & 0x8000) != 0);
        } else {
            cr_assert((double)got == ref, "half %04x: got %a, want %a", h, (double)got, ref);
            cr_assert_eq(signbit(got) != 0, (h & 0x8000) != 0, "half %04x sign", h);
        }
    }
}

Test(quant, f16_round_trip_for_all_halves)
{
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t back = mica_f32_to_f16(mica_f16_to_f32((uint16_t)h));
        if (is_half_nan((uint16_t)h))
            cr_assert(is_half_nan(back) && (back & 0x8000) == (h & 0x8000), "nan %04x -> %04x", h,
                      back);
        else
            cr_assert_eq(back, h, "half %04x -> %04x", h, back);
    }
}

Test(quant, f32_to_f16_rounds_to_nearest_even)
{
    /* Every midpoint between neighbouring halves (ties), and the floats
     * just either side of it. */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double lo = ref_half_value((uint16_t)h);
        double hi = h + 1 < 0x7c00 ? ref_half_value((uint16_t)(h + 1)) : 65536.0;
        float mid = (float)((lo + hi) / 2); /* exact: 12 significant bits */
        cr_assert((double)mid == (lo + hi) / 2);
        const float xs[5] = {(float)lo, mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY),
                             (float)lo * -1.0f};
        for (int k = 0; k < 5; k++) {
            for (int s = 0; s < 2; s++) {
                float x = s ? -xs[k] : xs[k];
                cr_assert_eq(mica_f32_to_f16(x), ref_f32_to_f16(x), "%a -> %04x, want %04x",
                             (double)x, mica_f32_to_f16(x), ref_f32_to_f16(x));
            }
        }
    }
    /* Seeded random bit patterns over the whole float range. */
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 16);
    for (int i = 0; i < 2000000; i++) {
        float x = from_bits((uint32_t)mica_test_rng_next(&r));
        uint16_t got = mica_f32_to_f16(x);
        if (isnan(x)) {
            cr_assert(is_half_nan(got), "nan %08x -> %04x", to_bits(x), got);
            continue;
        }
        cr_assert_eq(got, ref_f32_to_f16(x), "%a -> %04x, want %04x", (double)x, got,
                     ref_f32_to_f16(x));
    }
    /* Specials. */
    cr_assert_eq(mica_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(mica_f32_to_f16(65519.996f), 0x7bff);
    cr_assert_eq(mica_f32_to_f16(65520.0f), 0x7c00);
    cr_assert_eq(mica_f32_to_f16(-INFINITY), 0xfc00);
    cr_assert_eq(mica_f32_to_f16(-0.0f), 0x8000);
    cr_assert_eq(mica_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);                   /* tie -> even 0 */
    cr_assert_eq(mica_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)), 0x0001); /* just above */
    cr_assert_eq(mica_f32_to_f16(ldexpf(3.0f, -25)), 0x0002);                   /* tie -> even 2 */
    cr_assert_eq(mica_f32_to_f16(ldexpf(1023.5f, -24)), 0x0400); /* subnormal rounds up to normal */
    cr_assert(is_half_nan(mica_f32_to_f16(NAN)));
    cr_assert(is_half_nan(mica_f32_to_f16(from_bits(0x7f800001u)))); /* payload only in low bits */
}

Test(quant, bf16_conversions)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mica_bf16_to_f32((uint16_t)h);
        cr_assert_eq(to_bits(f), h << 16);
        uint16_t back = mica_f32_to_bf16(f);
        if (is_bf16_nan((uint16_t)h))
            cr_assert(is_bf16_nan(back), "nan %04x -> %04x", h, back);
        else
            cr_assert_eq(back, h, "bf16 %04x -> %04x", h, back);
    }
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 17);
    for (int i = 0; i < 2000000; i++) {
        uint32_t bits = (uint32_t)mica_test_rng_next(&r);
        if (i % 4 == 0) /* force exact ties and near-ties too */
            bits = (bits & 0xffff0000u) | (0x8000u + (uint32_t)(i % 3) - 1u);
        float x = from_bits(bits);
        uint16_t got = mica_f32_to_bf16(x);
        if (isnan(x)) {
            cr_assert(is_bf16_nan(got), "nan %08x -> %04x", bits, got);
            continue;
        }
        cr_assert_eq(got, ref_f32_to_bf16(x), "%08x -> %04x, want %04x", bits, got,
                     ref_f32_to_bf16(x));
    }
    cr_assert_eq(mica_f32_to_bf16(from_bits(0x7f7fffffu)), 0x7f80); /* max float rounds to inf */
    cr_assert(is_bf16_nan(mica_f32_to_bf16(from_bits(0x7f800001u))));
}

/* ------------------------------------------------------------------------ */
/* Per-element oracles                                                       */

static double h16(const uint8_t *p)
{
    return ref_half_value((uint16_t)(p[0] | p[1] << 8));
}

/* Low / high nibble. */
static int nib(uint8_t b, int high)
{
    return high ? b >> 4 : b & 15;
}

/* Element i of one block of type t, computed straight from the format
 * description. */
static double oracle(mica_dtype_t t, const uint8_t *b, int i)
{
    switch (t) {
    case MICA_DTYPE_Q4_0:
        return h16(b) * (nib(b[2 + i % 16], i >= 16) - 8);
    case MICA_DTYPE_Q4_1:
        return h16(b) * nib(b[4 + i % 16], i >= 16) + h16(b + 2);
    case MICA_DTYPE_Q5_0:
    case MICA_DTYPE_Q5_1: {
        int off = t == MICA_DTYPE_Q5_0 ? 2 : 4; /* qh after d (and m) */
        int hb = (b[off + i / 8] >> (i % 8)) & 1;
        int q = nib(b[off + 4 + i % 16], i >= 16) + 16 * hb;
        return t == MICA_DTYPE_Q5_0 ? h16(b) * (q - 16) : h16(b) * q + h16(b + 2);
    }
    case MICA_DTYPE_Q8_0:
        return h16(b) * (int8_t)b[2 + i];
    case MICA_DTYPE_Q2_K: {
        int half = i / 128, s = (i % 128) / 32, l = i % 32;
        int q = (b[16 + 32 * half + l] >> (2 * s)) & 3;
        uint8_t sm = b[i / 16];
        return h16(b + 80) * (sm & 15) * q - h16(b + 82) * (sm >> 4);
    }
    case MICA_DTYPE_Q3_K: {
        int half = i / 128, s = (i % 128) / 32, l = i % 32;
        int q = (b[32 + 32 * half + l] >> (2 * s)) & 3;
        int high = (b[l] >> (4 * half + s)) & 1;
        int g = i / 16; /* 16 scales of 6 bits: 4 low bits + 2 high bits */
        int lo = nib(b[96 + g % 8], g >= 8);
        int hi = (b[96 + 8 + g % 4] >> (2 * (g / 4))) & 3;
        return h16(b + 108) * ((lo + 16 * hi) - 32) * (q + 4 * high - 4);
    }
    case MICA_DTYPE_Q4_K:
    case MICA_DTYPE_Q5_K: {
        int g = i / 32, c = i / 64, high = (i % 64) >= 32, l = i % 32;
        const uint8_t *s = b + 4;
        int sc = g < 4 ? s[g] % 64 : nib(s[g + 4], 0) + 16 * (s[g - 4] / 64);
        int mn = g < 4 ? s[g + 4] % 64 : nib(s[g + 4], 1) + 16 * (s[g] / 64);
        int q;
        if (t == MICA_DTYPE_Q4_K)
            q = nib(b[16 + 32 * c + l], high);
        else
            q = nib(b[48 + 32 * c + l], high) + 16 * ((b[16 + l] >> g) & 1);
        return h16(b) * sc * q - h16(b + 2) * mn;
    }
    case MICA_DTYPE_Q6_K: {
        int h = i / 128, k = (i % 128) / 32, l = i % 32;
        int lo = nib(b[64 * h + 32 * (k % 2) + l], k >= 2);
        int hi = (b[128 + 32 * h + l] >> (2 * k)) & 3;
        int sc = (int8_t)b[192 + 8 * h + 2 * k + l / 16];
        return h16(b + 208) * sc * (lo + 16 * hi - 32);
    }
    default:
        return NAN;
    }
}

/* Offsets of the f16 fields of each block type (-1 = none). */
static void f16_fields(mica_dtype_t t, int out[2])
{
    out[0] = out[1] = -1;
    switch (t) {
    case MICA_DTYPE_Q4_0:
    case MICA_DTYPE_Q5_0:
    case MICA_DTYPE_Q8_0:
        out[0] = 0;
        break;
    case MICA_DTYPE_Q4_1:
    case MICA_DTYPE_Q5_1:
    case MICA_DTYPE_Q4_K:
    case MICA_DTYPE_Q5_K:
        out[0] = 0, out[1] = 2;
        break;
    case MICA_DTYPE_Q2_K:
        out[0] = 80, out[1] = 82;
        break;
    case MICA_DTYPE_Q3_K:
        out[0] = 108;
        break;
    case MICA_DTYPE_Q6_K:
        out[0] = 208;
        break;
    default:
        break;
    }
}

static const mica_dtype_t block_types[] = {
    MICA_DTYPE_Q4_0, MICA_DTYPE_Q4_1, MICA_DTYPE_Q5_0, MICA_DTYPE_Q5_1, MICA_DTYPE_Q8_0,
    MICA_DTYPE_Q2_K, MICA_DTYPE_Q3_K, MICA_DTYPE_Q4_K, MICA_DTYPE_Q5_K, MICA_DTYPE_Q6_K,
};

Test(quant, random_blocks_match_element_oracle)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 42);
    for (size_t ti = 0; ti < sizeof block_types / sizeof block_types[0]; ti++) {
        mica_dtype_t t = block_types[ti];
        int64_t be = mica_dtype_block_elems(t), bb = mica_dtype_block_bytes(t);
        const int nblocks = 7;
        uint8_t *src = malloc((size_t)(bb * nblocks));
        float *dst = malloc(sizeof(float) * (size_t)(be * nblocks));
        int fields[2];
        f16_fields(t, fields);
        for (int rep = 0; rep < 40; rep++) {
            for (int64_t k = 0; k < bb * nblocks; k++)
                src[k] = (uint8_t)mica_test_rng_next(&r);
            for (int bl = 0; bl < nblocks; bl++) {
                for (int f = 0; f < 2; f++) {
                    if (fields[f] < 0)
                        continue;
                    /* finite f16 of either sign, exponent field 1..29 (rep 0: subnormal) */
                    uint16_t h = (uint16_t)(mica_test_rng_next(&r) & 0x83ff);
                    if (rep > 0)
                        h |= (uint16_t)mica_test_rng_range(&r, 1, 29) << 10;
                    src[bl * bb + fields[f]] = (uint8_t)h;
                    src[bl * bb + fields[f] + 1] = (uint8_t)(h >> 8);
                }
            }
            mica_diag_t d = {0};
            cr_assert_eq(mica_dequantize_row(t, src, dst, be * nblocks, &d), MICA_OK, "%s", d.msg);
            for (int bl = 0; bl < nblocks; bl++) {
                for (int i = 0; i < be; i++) {
                    double ref = oracle(t, src + bl * bb, i);
                    double got = dst[bl * be + i];
                    cr_assert(fabs(got - ref) <= ldexp(fabs(ref), -23),
                              "%s block %d element %d: got %.9g, want %.9g", mica_dtype_name(t), bl,
                              i, got, ref);
                }
            }
        }
        free(src);
        free(dst);
    }
}

/* ------------------------------------------------------------------------ */
/* Hand-built blocks                                                         */

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = mica_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void deq(mica_dtype_t t, const uint8_t *src, float *dst, int64_t n)
{
    mica_diag_t d = {0};
    cr_assert_eq(mica_dequantize_row(t, src, dst, n, &d), MICA_OK, "%s", d.msg);
}

Test(quant, q4_0_known_block)
{
    /* d = 1; qs[j] low nibble j, high nibble 15 - j: elements 0..15 are
     * j - 8, elements 16..31 are 7 - j. */
    uint8_t b[18];
    put_f16(b, 1.0f);
    for (int j = 0; j < 16; j++)
        b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float y[32];
    deq(MICA_DTYPE_Q4_0, b, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], (float)(j - 8), "element %d = %g", j, y[j]);
        cr_assert_eq(y[16 + j], (float)(7 - j), "element %d = %g", 16 + j, y[16 + j]);
    }
}

Test(quant, q4_1_q5_known_blocks)
{
    uint8_t b[24];
    float y[32];
    put_f16(b, 0.5f);
    put_f16(b + 2, -1.25f);
    for (int j = 0; j < 16; j++)
        b[4 + j] = (uint8_t)(j | (15 - j) << 4);
    deq(MICA_DTYPE_Q4_1, b, y, 32);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], 0.5f * (float)j - 1.25f);
        cr_assert_eq(y[16 + j], 0.5f * (float)(15 - j) - 1.25f);
    }

    /* Q5_0: d = 2, qh = 0xA5C30F96 (bit i = fifth bit of element i). */
    const uint32_t qh = 0xA5C30F96u;
    put_f16(b, 2.0f);
    for (int k = 0; k < 4; k++)
        b[2 + k] = (uint8_t)(qh >> (8 * k));
    for (int j = 0; j < 16; j++)
        b[6 + j] = (uint8_t)((3 * j) % 16 | j << 4);
    deq(MICA_DTYPE_Q5_0, b, y, 32);
    for (int i = 0; i < 32; i++) {
        int low = i < 16 ? (3 * i) % 16 : i - 16;
        int q = low + (int)((qh >> i) & 1) * 16;
        cr_assert_eq(y[i], 2.0f * (float)(q - 16), "q5_0 element %d = %g", i, y[i]);
    }

    /* Q5_1 on the same quants with d = 0.25, m = 3. */
    put_f16(b, 0.25f);
    put_f16(b + 2, 3.0f);
    for (int k = 0; k < 4; k++)
        b[4 + k] = (uint8_t)(qh >> (8 * k));
    for (int j = 0; j < 16; j++)
        b[8 + j] = (uint8_t)((3 * j) % 16 | j << 4);
    deq(MICA_DTYPE_Q5_1, b, y, 32);
    for (int i = 0; i < 32; i++) {
        int low = i < 16 ? (3 * i) % 16 : i - 16;
        int q = low + (int)((qh >> i) & 1) * 16;
        cr_assert_eq(y[i], 0.25f * (float)q + 3.0f, "q5_1 element %d = %g", i, y[i]);
    }
}

Test(quant, q8_0_known_block)
{
    uint8_t b[34];
    put_f16(b, 0.25f);
    for (int j = 0; j < 32; j++)
        b[2 + j] = (uint8_t)(int8_t)(j * 8 - 128);
    float y[32];
    deq(MICA_DTYPE_Q8_0, b, y, 32);
    for (int j = 0; j < 32; j++)
        cr_assert_eq(y[j], 0.25f * (float)(j * 8 - 128));
}

/* A quant pattern in [0, mod) that does not repeat with period 16, 32 or
 * 64, so a block half or quarter read from the wrong place shows. */
static int pat(int i, int mod)
{
    return (int)((37u * (unsigned)i + 11u * (unsigned)(i >> 5) + (unsigned)(i * i) % 7u) %
                 (unsigned)mod);
}

/* Packs 8 6-bit scales and mins into the 12 bytes of Q4_K/Q5_K (the
 * encoder's direction: the low 6 bits of the first four go straight into
 * bytes 0..7; the last four are split into nibbles in bytes 8..11 and two
 * high bits in the top of bytes 0..7). */
static void pack_k4_scales(uint8_t s[12], const int sc[8], const int mn[8])
{
    memset(s, 0, 12);
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)sc[j];
        s[j + 4] = (uint8_t)mn[j];
    }
    for (int j = 4; j < 8; j++) {
        s[j + 4] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
        s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
        s[j] |= (uint8_t)((mn[j] >> 4) << 6);
    }
}

Test(quant, q4_k_q5_k_known_blocks)
{
    int sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = 63 - 5 * j; /* 63, 58, ..., 28: high bits set for all */
        mn[j] = 7 * j + 3;  /* 3 .. 52 */
    }
    uint8_t b[176];
    float y[256];

    memset(b, 0, sizeof b);
    put_f16(b, 1.0f);
    put_f16(b + 2, 0.5f);
    pack_k4_scales(b + 4, sc, mn);
    for (int i = 0; i < 256; i++) { /* element i = 64c + 32*high + l */
        int c = i / 64, high = (i % 64) / 32, l = i % 32, q = pat(i, 16);
        b[16 + 32 * c + l] |= (uint8_t)(q << (4 * high));
    }
    deq(MICA_DTYPE_Q4_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        float want = (float)(sc[i / 32] * pat(i, 16)) - 0.5f * (float)mn[i / 32];
        cr_assert_eq(y[i], want, "q4_k element %d = %g, want %g", i, y[i], want);
    }

    memset(b, 0, sizeof b);
    put_f16(b, 1.0f);
    put_f16(b + 2, 0.5f);
    pack_k4_scales(b + 4, sc, mn);
    for (int i = 0; i < 256; i++) { /* q = 5 bits: low nibble in qs, fifth bit in qh */
        int c = i / 64, high = (i % 64) / 32, l = i % 32, q = pat(i, 32);
        b[48 + 32 * c + l] |= (uint8_t)((q & 15) << (4 * high));
        b[16 + l] |= (uint8_t)((q >> 4) << (i / 32));
    }
    deq(MICA_DTYPE_Q5_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        float want = (float)(sc[i / 32] * pat(i, 32)) - 0.5f * (float)mn[i / 32];
        cr_assert_eq(y[i], want, "q5_k element %d = %g, want %g", i, y[i], want);
    }
}

Test(quant, q6_k_known_block)
{
    uint8_t b[210];
    memset(b, 0, sizeof b);
    for (int k = 0; k < 16; k++)
        b[192 + k] = (uint8_t)(int8_t)(k - 8);
    put_f16(b + 208, 0.5f);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32, q = pat(i, 64);
        b[64 * h + 32 * (k & 1) + l] |= (uint8_t)((q & 15) << (k >= 2 ? 4 : 0));
        b[128 + 32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
    }
    float y[256];
    deq(MICA_DTYPE_Q6_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        float want = 0.5f * (float)((i / 16) - 8) * (float)(pat(i, 64) - 32);
        cr_assert_eq(y[i], want, "q6_k element %d = %g, want %g", i, y[i], want);
    }
}

Test(quant, q2_k_q3_k_known_blocks)
{
    uint8_t b[110];
    float y[256];

    /* Q2_K: scale g = g % 16 in the low nibble, min 15 - g in the high. */
    memset(b, 0, 84);
    for (int g = 0; g < 16; g++)
        b[g] = (uint8_t)(g | (15 - g) << 4);
    put_f16(b + 80, 0.5f);
    put_f16(b + 82, 0.25f);
    for (int i = 0; i < 256; i++) {
        int half = i / 128, s = (i % 128) / 32, l = i % 32, q = pat(i, 4);
        b[16 + 32 * half + l] |= (uint8_t)(q << (2 * s));
    }
    deq(MICA_DTYPE_Q2_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        int g = i / 16;
        float want = 0.5f * (float)g * (float)pat(i, 4) - 0.25f * (float)(15 - g);
        cr_assert_eq(y[i], want, "q2_k element %d = %g, want %g", i, y[i], want);
    }

    /* Q3_K: scale g stored as 4g + 1 (6 bits, biased by 32); q has 3 bits,
     * the third in hmask, and the value is q - 4. */
    memset(b, 0, sizeof b);
    for (int g = 0; g < 16; g++) {
        int raw = 4 * g + 1;
        b[96 + g % 8] |= (uint8_t)((raw & 15) << (g >= 8 ? 4 : 0));
        b[104 + g % 4] |= (uint8_t)((raw >> 4) << (2 * (g / 4)));
    }
    put_f16(b + 108, 0.125f);
    for (int i = 0; i < 256; i++) {
        int half = i / 128, s = (i % 128) / 32, l = i % 32, q = pat(i, 8);
        b[32 + 32 * half + l] |= (uint8_t)((q & 3) << (2 * s));
        if (q & 4)
            b[l] |= (uint8_t)(1u << (4 * half + s));
    }
    deq(MICA_DTYPE_Q3_K, b, y, 256);
    for (int i = 0; i < 256; i++) {
        int g = i / 16;
        float want = 0.125f * (float)(4 * g + 1 - 32) * (float)(pat(i, 8) - 4);
        cr_assert_eq(y[i], want, "q3_k element %d = %g, want %g", i, y[i], want);
    }
}

Test(quant, plain_float_rows)
{
    const float x[4] = {1.5f, -0.0f, 65504.0f, 3.0e-8f};
    uint8_t f32b[16], f16b[8], bf16b[8];
    for (int i = 0; i < 4; i++) {
        uint32_t u = to_bits(x[i]);
        for (int k = 0; k < 4; k++)
            f32b[4 * i + k] = (uint8_t)(u >> (8 * k));
        put_f16(f16b + 2 * i, x[i]);
        uint16_t bf = mica_f32_to_bf16(x[i]);
        bf16b[2 * i] = (uint8_t)bf;
        bf16b[2 * i + 1] = (uint8_t)(bf >> 8);
    }
    float y[4];
    deq(MICA_DTYPE_F32, f32b, y, 4);
    cr_assert_eq(memcmp(y, x, sizeof x), 0);
    deq(MICA_DTYPE_F16, f16b, y, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(y[i], mica_f16_to_f32(mica_f32_to_f16(x[i])));
    deq(MICA_DTYPE_BF16, bf16b, y, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(y[i], mica_bf16_to_f32(mica_f32_to_bf16(x[i])));
}

Test(quant, bad_arguments_fail_with_a_message)
{
    uint8_t b[64] = {0};
    float y[64];
    mica_diag_t d = {0};
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_Q4_0, b, y, 33, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "33") != NULL, "%s", d.msg);
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_Q4_0, b, y, -32, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_I32, b, y, 4, &d), MICA_ERR_UNSUPPORTED);
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_I8, b, y, 4, &d), MICA_ERR_UNSUPPORTED);
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_I4, b, y, 4, &d), MICA_ERR_UNSUPPORTED);
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_COUNT, b, y, 4, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_Q6_K, b, y, 0, &d), MICA_OK);
}

/* ------------------------------------------------------------------------ */
/* Golden models: dequant(TYPE) against the f32 weights                      */

static mica_gguf_t *open_golden(const char *name)
{
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden(name), &f, &d), MICA_OK, "%s: %s", name, d.msg);
    return f;
}

/* The f32 tensor's element i, read straight from the file's bytes. */
static double f32_at(const mica_gguf_tensor_t *t, int64_t i)
{
    const uint8_t *p = t->data + 4 * i;
    return from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* NMSE bound per dtype: about 1.5 x the NMSE measured on the golden files
 * (printed with --verbose). */
static double nmse_bound(mica_dtype_t t)
{
    switch (t) {
    case MICA_DTYPE_F16:
        return 7e-8; /* measured 4.0e-8 .. 4.5e-8 */
    case MICA_DTYPE_BF16:
        return 4e-6; /* 2.7e-6 .. 2.8e-6 */
    case MICA_DTYPE_Q8_0:
        return 4.5e-5; /* 2.5e-5 .. 3.0e-5 */
    case MICA_DTYPE_Q6_K:
        return 4.7e-4; /* 3.1e-4 .. 3.2e-4 */
    case MICA_DTYPE_Q5_0:
        return 2.7e-3; /* 1.8e-3 */
    case MICA_DTYPE_Q5_1:
        return 2.2e-3; /* 1.4e-3 */
    case MICA_DTYPE_Q5_K:
        return 2.0e-3; /* 1.3e-3 */
    case MICA_DTYPE_Q4_0:
        return 1.2e-2; /* 6.7e-3 .. 8.1e-3 */
    case MICA_DTYPE_Q4_1:
        return 9.5e-3; /* 5.6e-3 .. 6.4e-3 */
    case MICA_DTYPE_Q4_K:
        return 7.7e-3; /* 5.1e-3 */
    case MICA_DTYPE_Q3_K:
        return 3.4e-2; /* 2.3e-2 */
    case MICA_DTYPE_Q2_K:
        return 0.13; /* 8.7e-2 .. 8.8e-2 */
    default:
        return 0.0;
    }
}

/* For every non-f32 tensor of `qname`, the NMSE of its dequantized values
 * against the same tensor in `fname` must be below the type's bound.
 * Returns how many tensors were compared. */
static int compare_to_f32(const char *qname, const char *fname)
{
    mica_gguf_t *q = open_golden(qname), *f = open_golden(fname);
    int compared = 0;
    for (uint64_t k = 0; k < mica_gguf_tensor_count(q); k++) {
        const mica_gguf_tensor_t *tq = mica_gguf_tensor_at(q, k);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)tq->name.len, tq->name.ptr);
        const mica_gguf_tensor_t *tf = mica_gguf_find_tensor(f, name);
        cr_assert(tf != NULL, "%s: no %s in %s", qname, name, fname);
        cr_assert_eq(tf->dtype, MICA_DTYPE_F32);
        cr_assert(memcmp(tq->ne, tf->ne, sizeof tq->ne) == 0, "%s: shape of %s", qname, name);
        if (tq->dtype == MICA_DTYPE_F32)
            continue;
        int64_t ne0 = tq->ne[0], rows = tq->ne[1] * tq->ne[2] * tq->ne[3];
        int64_t rb = mica_dtype_row_bytes(tq->dtype, ne0);
        float *y = malloc(sizeof(float) * (size_t)ne0);
        double err = 0, ref = 0;
        for (int64_t r = 0; r < rows; r++) {
            mica_diag_t d = {0};
            cr_assert_eq(mica_dequantize_row(tq->dtype, tq->data + r * rb, y, ne0, &d), MICA_OK,
                         "%s", d.msg);
            for (int64_t i = 0; i < ne0; i++) {
                double a = f32_at(tf, r * ne0 + i);
                err += (y[i] - a) * (y[i] - a);
                ref += a * a;
            }
        }
        free(y);
        double nmse = err / ref;
        cr_log_info("nmse %-22s %-28s %-5s %.3e", qname, name, mica_dtype_name(tq->dtype), nmse);
        cr_assert(nmse < nmse_bound(tq->dtype), "%s %s (%s): nmse %.3e above %.1e", qname, name,
                  mica_dtype_name(tq->dtype), nmse, nmse_bound(tq->dtype));
        compared++;
    }
    mica_gguf_close(q);
    mica_gguf_close(f);
    return compared;
}

#define ZOO_TEST(type, n_quant)                                                                    \
    Test(quant, zoo_##type##_close_to_f32)                                                         \
    {                                                                                              \
        cr_assert_eq(compare_to_f32("zoo/zoo." #type ".gguf", "zoo/zoo.f32.gguf"), n_quant);       \
    }

ZOO_TEST(bf16, 9)
ZOO_TEST(q5_0, 9)
ZOO_TEST(q5_1, 9)
ZOO_TEST(q2_k, 9)
ZOO_TEST(q3_k, 9)
ZOO_TEST(q4_k, 9)
ZOO_TEST(q5_k, 9)
ZOO_TEST(q6_k, 9)
ZOO_TEST(q4_k_m, 9)

#define TINY_TEST(id, model, type, n_quant)                                                        \
    Test(quant, id##_##type##_close_to_f32)                                                        \
    {                                                                                              \
        cr_assert_eq(compare_to_f32(model "." #type ".gguf", model ".f32.gguf"), n_quant);         \
    }

TINY_TEST(llama_tiny, "llama-tiny", f16, 16)
TINY_TEST(llama_tiny, "llama-tiny", q8_0, 16)
TINY_TEST(llama_tiny, "llama-tiny", q4_0, 16)
TINY_TEST(llama_tiny, "llama-tiny", q4_1, 16)
TINY_TEST(qwen2_tiny, "qwen2-tiny", f16, 15)
TINY_TEST(qwen2_tiny, "qwen2-tiny", q8_0, 15)
TINY_TEST(qwen2_tiny, "qwen2-tiny", q4_0, 15)
TINY_TEST(qwen2_tiny, "qwen2-tiny", q4_1, 15)

/* The f16 / bf16 files were converted from the f32 weights with
 * round-to-nearest-even, so every stored half must be exactly the rounding
 * of the f32 value. */
static void check_exact_rounding(const char *hname, const char *fname)
{
    mica_gguf_t *h = open_golden(hname), *f = open_golden(fname);
    int checked = 0;
    for (uint64_t k = 0; k < mica_gguf_tensor_count(h); k++) {
        const mica_gguf_tensor_t *th = mica_gguf_tensor_at(h, k);
        if (th->dtype != MICA_DTYPE_F16 && th->dtype != MICA_DTYPE_BF16)
            continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)th->name.len, th->name.ptr);
        const mica_gguf_tensor_t *tf = mica_gguf_find_tensor(f, name);
        cr_assert(tf != NULL && tf->dtype == MICA_DTYPE_F32, "%s", name);
        int64_t n = (int64_t)(th->nbytes / 2);
        for (int64_t i = 0; i < n; i++) {
            uint16_t stored = (uint16_t)(th->data[2 * i] | th->data[2 * i + 1] << 8);
            float x = (float)f32_at(tf, i);
            uint16_t want = th->dtype == MICA_DTYPE_F16 ? mica_f32_to_f16(x) : mica_f32_to_bf16(x);
            cr_assert_eq(stored, want, "%s %s[%lld]: stored %04x, %a rounds to %04x", hname, name,
                         (long long)i, stored, (double)x, want);
        }
        checked++;
    }
    cr_assert_gt(checked, 0);
    mica_gguf_close(h);
    mica_gguf_close(f);
}

Test(quant, golden_f16_is_rounded_f32)
{
    check_exact_rounding("llama-tiny.f16.gguf", "llama-tiny.f32.gguf");
    check_exact_rounding("qwen2-tiny.f16.gguf", "qwen2-tiny.f32.gguf");
}

Test(quant, golden_bf16_is_rounded_f32)
{
    check_exact_rounding("zoo/zoo.bf16.gguf", "zoo/zoo.f32.gguf");
}
