/* Checks of the data and float-matmul kernel families (codegen/kernels/
 * fam_data.py: embedding_*, copy, kv_store, sgemm_f32/f16, wgemm_u4/i8)
 * for every variant in the generated kernel_list.inc whose ISA this CPU
 * runs, against plain loops written here.
 *
 * Oracles: embedding rows are encoded here from chosen quants and scales
 * (GGUF block layouts), so the expected value is the format's formula on
 * known numbers; matmuls are double-precision loops over an independently
 * packed weight (the index formula of ir/layout_index.h, spelled out
 * here); copies and stores are index loops over distinct bytes. Each
 * kernel also runs over random sub-ranges whose union is the whole, which
 * must give the same bits, and over empty ranges, which must write
 * nothing.
 *
 * A plain C program (no Criterion), so the aarch64 stage can build it with
 * the generated aarch64 variants and run it under qemu:
 *
 *   K=build/release/codegen/kernels
 *   aarch64-linux-gnu-gcc -std=c11 -O2 -I$K tests/kernels_data_check.c \
 *       $K/kernels_neon.c $K/kernels_dotprod.c $K/kernels_i8mm.c -static -o kdc
 *   (each kernels_<isa>.c with its ISA's flags: see codegen/kernels/isa.py)
 *   qemu-aarch64-static -cpu max ./kdc
 *
 * On x86-64 link kernels_scalar/avx2/avx512vnni.c; on aarch64 the scalar
 * variants join with -DKD_WITH_SCALAR and kernels_scalar.c. Exit status 0
 * when every check passes. tests/test_kernels_data.c includes this file
 * with KD_NO_MAIN and adds ir/quant.c and ir/layout_index.c as oracles.
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mica_kernels.h"

/* ------------------------------------------------------------------------ */
/* The variants of this architecture, from the generated list              */

typedef void (*kd_fn)(void);

typedef struct kd_variant {
    const char *family, *name, *isa, *params;
    kd_fn fn;
} kd_variant_t;

#define KD_ENTRY(fam, name, isa, params) {#fam, #name, #isa, params, (kd_fn)name},
#define KD_NONE(fam, name, isa, params)
#if defined(__x86_64__)
#define KD_ISA_scalar KD_ENTRY
#define KD_ISA_avx2 KD_ENTRY
#define KD_ISA_avx512vnni KD_ENTRY
#define KD_ISA_neon KD_NONE
#define KD_ISA_dotprod KD_NONE
#define KD_ISA_i8mm KD_NONE
#elif defined(__aarch64__)
#ifdef KD_WITH_SCALAR
#define KD_ISA_scalar KD_ENTRY
#else
#define KD_ISA_scalar KD_NONE
#endif
#define KD_ISA_avx2 KD_NONE
#define KD_ISA_avx512vnni KD_NONE
#define KD_ISA_neon KD_ENTRY
#define KD_ISA_dotprod KD_ENTRY
#define KD_ISA_i8mm KD_ENTRY
#else
#define KD_ISA_scalar KD_ENTRY
#define KD_ISA_avx2 KD_NONE
#define KD_ISA_avx512vnni KD_NONE
#define KD_ISA_neon KD_NONE
#define KD_ISA_dotprod KD_NONE
#define KD_ISA_i8mm KD_NONE
#endif
#define MICA_KERNEL(fam, name, isa, params) KD_ISA_##isa(fam, name, isa, params)

static const kd_variant_t kd_variants[] = {
#include "kernel_list.inc"
    {NULL, NULL, NULL, NULL, NULL},
};

/* The families this file checks. */
static const char *const kd_families[] = {
    "embedding_f32", "embedding_f16",  "embedding_bf16", "embedding_q8_0", "embedding_q4_0",
    "embedding_q4_1", "embedding_q5_0", "embedding_q5_1", "embedding_q4_k", "embedding_q6_k",
    "copy",           "kv_store",       "sgemm_f32",      "sgemm_f16",      "wgemm_u4",
    "wgemm_i8",       NULL,
};

/* Whether this CPU runs code of the named ISA (defined below for the
 * program, by the Criterion test for itself). */
static int kd_isa_runs(const char *isa);

typedef void (*kd_embedding_fn)(const uint8_t *table, int64_t row_bytes, const int32_t *ids,
                                float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t d);
typedef void (*kd_copy_fn)(const uint8_t *src, uint8_t *dst, int32_t elem_bytes,
                           const int32_t *size, const int64_t *sstride, const int64_t *dstride,
                           int32_t rank, int32_t r0, int32_t r1);
typedef void (*kd_kv_store_fn)(float *cache, int32_t cap, int32_t d, const float *x, int64_t sxt,
                               int64_t sxh, int32_t hkv, int32_t p0, int32_t n);
typedef void (*kd_sgemm_fn)(const float *x, int64_t ldx, const void *w, float *y, int64_t ldy,
                            int32_t m0, int32_t m1, int32_t n0, int32_t n1, int32_t k);
typedef void (*kd_wgemm_fn)(const float *x, int64_t ldx, const uint8_t *wq, const uint16_t *ws,
                            const uint16_t *wm, float *y, int64_t ldy, int32_t m0, int32_t m1,
                            int32_t n0, int32_t n1, int32_t n, int32_t k, int32_t group);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

typedef struct kd_rng {
    uint64_t s;
} kd_rng_t;

static uint64_t kd_next(kd_rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t kd_range(kd_rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(kd_next(r) % (uint64_t)(hi - lo + 1));
}

/* Uniform in [-1, 1). */
static float kd_float(kd_rng_t *r)
{
    return (float)((double)(kd_next(r) >> 40) / (double)(1ull << 23) - 1.0);
}

static void *kd_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "kernels_data_check: out of memory for %zu bytes\n", n);
        exit(2);
    }
    return p;
}

/* Value of the half h, from its fields (not by bit moves). */
static float kd_f16_value(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    const double v = e == 0 ? ldexp((double)m, -24) : ldexp(1.0 + m / 1024.0, e - 15);
    return (float)((h & 0x8000u) ? -v : v);
}

/* The half nearest to v (|v| < 65504), by search over the finite halves. */
static uint16_t kd_f16_of(double v)
{
    uint16_t best = 0;
    double err = INFINITY;
    const double a = fabs(v);
    int lo = 0, hi = 0x7bff; /* finite halves are ordered by their bits */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (kd_f16_value((uint16_t)mid) < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int c = lo > 0 ? lo - 1 : 0; c <= lo && c <= 0x7bff; c++) {
        double e = fabs(kd_f16_value((uint16_t)c) - a);
        if (e < err) {
            err = e;
            best = (uint16_t)c;
        }
    }
    return (uint16_t)(best | (v < 0 ? 0x8000u : 0u));
}

/* A random finite half of moderate size: 2^-14 .. 2^4 in magnitude, both
 * signs, or (rarely) a subnormal or zero. */
static uint16_t kd_rand_f16(kd_rng_t *r)
{
    const int64_t pick = kd_range(r, 0, 31);
    uint16_t h;
    if (pick == 0)
        h = (uint16_t)kd_range(r, 0, 1023); /* zero or subnormal */
    else
        h = (uint16_t)(kd_range(r, 1, 19) << 10 | kd_range(r, 0, 1023));
    return (uint16_t)(h | (kd_range(r, 0, 1) ? 0x8000u : 0u));
}

static void kd_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static int kd_param(const char *params, const char *key)
{
    const size_t n = strlen(key);
    for (const char *p = params; p && *p;) {
        if (strncmp(p, key, n) == 0 && p[n] == '=')
            return atoi(p + n + 1);
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return -1;
}

static int kd_same_bits(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* A pattern no kernel writes: a NaN with a payload. */
static float kd_sentinel(void)
{
    const uint32_t bits = 0x7fc0dead;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void kd_fill_sentinel(float *p, size_t n)
{
    const float s = kd_sentinel();
    for (size_t i = 0; i < n; i++)
        p[i] = s;
}

#define KD_MAX_REPORTS 8

/* Failure accounting of one variant: the first few are printed. */
typedef struct kd_tally {
    const kd_variant_t *v;
    int fails;
} kd_tally_t;

static void kd_fail(kd_tally_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void kd_fail(kd_tally_t *t, const char *fmt, ...)
{
    if (t->fails++ < KD_MAX_REPORTS) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL %s (%s): ", t->v->name, t->v->family);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

/* Random cut points: c[0] = lo < c[1] < ... < c[n] = hi (n >= 1), interior
 * cuts at multiples of step from lo; returns n. */
static int kd_cuts(kd_rng_t *r, int32_t lo, int32_t hi, int32_t step, int32_t *c, int max_parts)
{
    int n = 0;
    c[n++] = lo;
    int want = (int)kd_range(r, 1, max_parts);
    for (int i = 1; i < want; i++) {
        int32_t units = (hi - lo) / step;
        if (units < 1)
            break;
        int32_t at = lo + step * (int32_t)kd_range(r, 0, units);
        if (at > c[n - 1] && at < hi)
            c[n++] = at;
    }
    c[n] = hi;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Embedding: blocks encoded here from chosen values                        */

/* Writes one block of format fam (the suffix after "embedding_") at b from
 * random quants and scales and the values it stands for at x. */
static int kd_encode_block(const char *t, kd_rng_t *r, uint8_t *b, float *x)
{
    if (!strcmp(t, "f32")) {
        float v = kd_float(r) * 4.0f;
        memcpy(b, &v, 4);
        x[0] = v;
    } else if (!strcmp(t, "f16")) {
        uint16_t h = kd_rand_f16(r);
        kd_put_u16(b, h);
        x[0] = kd_f16_value(h);
    } else if (!strcmp(t, "bf16")) {
        /* sign, 8-bit exponent 100..154, 7-bit mantissa */
        const int s = (int)kd_range(r, 0, 1), e = (int)kd_range(r, 100, 154);
        const int m = (int)kd_range(r, 0, 127);
        kd_put_u16(b, (uint16_t)(s << 15 | e << 7 | m));
        const double v = ldexp(1.0 + m / 128.0, e - 127);
        x[0] = (float)(s ? -v : v);
    } else if (!strcmp(t, "q8_0")) {
        uint16_t dh = kd_rand_f16(r);
        const float d = kd_f16_value(dh);
        kd_put_u16(b, dh);
        for (int j = 0; j < 32; j++) {
            int q = (int)kd_range(r, -128, 127);
            b[2 + j] = (uint8_t)(int8_t)q;
            x[j] = (float)q * d;
        }
    } else if (!strcmp(t, "q4_0") || !strcmp(t, "q4_1") || !strcmp(t, "q5_0") ||
               !strcmp(t, "q5_1")) {
        const int five = t[1] == '5', with_min = t[3] == '1';
        const uint16_t dh = kd_rand_f16(r), mh = kd_rand_f16(r);
        const float d = kd_f16_value(dh), mn = kd_f16_value(mh);
        kd_put_u16(b, dh);
        if (with_min)
            kd_put_u16(b + 2, mh);
        uint8_t *qh = b + (with_min ? 4 : 2), *qs = qh + (five ? 4 : 0);
        uint32_t hb = 0;
        memset(qs, 0, 16);
        for (int j = 0; j < 32; j++) {
            const int q = (int)kd_range(r, 0, five ? 31 : 15);
            qs[j % 16] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
            hb |= (uint32_t)(q >> 4) << j;
            const int off = five ? 16 : 8;
            x[j] = with_min ? (float)q * d + mn : (float)(q - off) * d;
        }
        if (five)
            for (int i = 0; i < 4; i++)
                qh[i] = (uint8_t)(hb >> (8 * i));
    } else if (!strcmp(t, "q4_k")) {
        const uint16_t dh = kd_rand_f16(r), mh = kd_rand_f16(r);
        const float d = kd_f16_value(dh), dmin = kd_f16_value(mh);
        int sc[8], mn[8];
        kd_put_u16(b, dh);
        kd_put_u16(b + 2, mh);
        uint8_t *s = b + 4, *qs = b + 16;
        memset(s, 0, 12);
        for (int j = 0; j < 8; j++) {
            sc[j] = (int)kd_range(r, 0, 63);
            mn[j] = (int)kd_range(r, 0, 63);
            if (j < 4) {
                s[j] |= (uint8_t)sc[j];
                s[j + 4] |= (uint8_t)mn[j];
            } else { /* low nibbles in s[j+4], top bits over s[j-4] and s[j] */
                s[j + 4] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
                s[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
                s[j] |= (uint8_t)((mn[j] >> 4) << 6);
            }
        }
        memset(qs, 0, 128);
        for (int e = 0; e < 256; e++) {
            const int sub = e / 32, c = sub / 2, l = e % 32, q = (int)kd_range(r, 0, 15);
            qs[32 * c + l] |= (uint8_t)(q << (sub % 2 ? 4 : 0));
            x[e] = d * (float)sc[sub] * (float)q - dmin * (float)mn[sub];
        }
    } else if (!strcmp(t, "q6_k")) {
        const uint16_t dh = kd_rand_f16(r);
        const float d = kd_f16_value(dh);
        int8_t sc[16];
        uint8_t *ql = b, *qh = b + 128;
        memset(b, 0, 192);
        for (int g = 0; g < 16; g++) {
            sc[g] = (int8_t)kd_range(r, -128, 127);
            b[192 + g] = (uint8_t)sc[g];
        }
        kd_put_u16(b + 208, dh);
        for (int e = 0; e < 256; e++) {
            const int h = e / 128, c = (e % 128) / 32, l = e % 32, q = (int)kd_range(r, 0, 63);
            ql[64 * h + 32 * (c & 1) + l] |= (uint8_t)((q & 15) << (c < 2 ? 0 : 4));
            qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * c));
            x[e] = d * (float)sc[e / 16] * (float)(q - 32);
        }
    } else {
        return -1;
    }
    return 0;
}

static int kd_check_embedding(const kd_variant_t *v, kd_rng_t *rng)
{
    kd_tally_t t = {v, 0};
    const char *ty = v->family + strlen("embedding_");
    const int be = kd_param(v->params, "block"), bb = kd_param(v->params, "bytes");
    if (be < 1 || bb < 1) {
        kd_fail(&t, "params \"%s\" lack block/bytes", v->params);
        return t.fails;
    }
    const kd_embedding_fn fn = (kd_embedding_fn)v->fn;
    for (int trial = 0; trial < 12; trial++) {
        const int32_t blocks = (int32_t)kd_range(rng, 1, be == 1 ? 70 : 5);
        const int32_t d = blocks * be, rows = (int32_t)kd_range(rng, 1, 6);
        const int32_t T = (int32_t)kd_range(rng, 1, 9);
        const int64_t row_bytes = (int64_t)blocks * bb, ldy = d + kd_range(rng, 0, 3);
        uint8_t *table = kd_alloc((size_t)(rows * row_bytes) + 1);
        float *vals = kd_alloc(sizeof(float) * (size_t)(rows * d));
        int32_t *ids = kd_alloc(sizeof(int32_t) * (size_t)T);
        float *y = kd_alloc(sizeof(float) * (size_t)(T * ldy));
        float *y2 = kd_alloc(sizeof(float) * (size_t)(T * ldy));
        uint8_t *tb = table + (trial & 1); /* an odd table start on every other trial */
        for (int32_t rr = 0; rr < rows; rr++)
            for (int32_t bi = 0; bi < blocks; bi++)
                if (kd_encode_block(ty, rng, tb + rr * row_bytes + (int64_t)bi * bb,
                                    vals + (int64_t)rr * d + (int64_t)bi * be)) {
                    kd_fail(&t, "no encoder for %s", ty);
                    goto next;
                }
        for (int32_t m = 0; m < T; m++)
            ids[m] = (int32_t)kd_range(rng, 0, rows - 1);
        kd_fill_sentinel(y, (size_t)(T * ldy));
        fn(tb, row_bytes, ids, y, ldy, 0, T, d);
        for (int32_t m = 0; m < T; m++)
            for (int32_t i = 0; i < ldy; i++) {
                const float want = i < d ? vals[(int64_t)ids[m] * d + i] : kd_sentinel();
                if (!kd_same_bits(y[m * ldy + i], want)) {
                    kd_fail(&t, "d=%d row %d (id %d) elem %d: got %.9g want %.9g", d, m, ids[m],
                            i, (double)y[m * ldy + i], (double)want);
                    goto next;
                }
            }
        /* sub-ranges and an empty one give the same rows */
        kd_fill_sentinel(y2, (size_t)(T * ldy));
        int32_t cuts[8];
        const int parts = kd_cuts(rng, 0, T, 1, cuts, 4);
        for (int p = 0; p < parts; p++)
            fn(tb, row_bytes, ids, y2, ldy, cuts[p], cuts[p + 1], d);
        fn(tb, row_bytes, ids, y2, ldy, T / 2, T / 2, d);
        if (memcmp(y, y2, sizeof(float) * (size_t)(T * ldy)) != 0)
            kd_fail(&t, "d=%d T=%d: a split into %d ranges differs from the whole", d, T, parts);
    next:
        free(table);
        free(vals);
        free(ids);
        free(y);
        free(y2);
    }
    return t.fails;
}

/* ------------------------------------------------------------------------ */
/* copy                                                                      */

static int kd_check_copy(const kd_variant_t *v, kd_rng_t *rng)
{
    kd_tally_t t = {v, 0};
    const kd_copy_fn fn = (kd_copy_fn)v->fn;
    for (int trial = 0; trial < 400; trial++) {
        const int32_t rank = (int32_t)kd_range(rng, 1, 4);
        const int32_t ebs[3] = {1, 2, 4};
        const int32_t eb = ebs[kd_range(rng, 0, 2)];
        int32_t size[4];
        int64_t ss[4], ds[4];
        for (int i = 0; i < rank; i++)
            size[i] = (int32_t)kd_range(rng, 1, rank == 1 ? 40 : 7);
        /* Each side's strides: a permutation of the dims, each dim padded
         * by 0..2 elements, or (source only) a broadcast dim. */
        for (int side = 0; side < 2; side++) {
            int64_t *st = side ? ds : ss;
            int perm[4] = {0, 1, 2, 3};
            const int64_t mode = kd_range(rng, 0, 3); /* 0, 1: contiguous row-major */
            if (mode == 3)
                for (int i = rank - 1; i > 0; i--) {
                    int j = (int)kd_range(rng, 0, i), tmp = perm[i];
                    perm[i] = perm[j];
                    perm[j] = tmp;
                }
            int64_t stride = 1;
            for (int i = rank - 1; i >= 0; i--) {
                const int d = perm[i];
                st[d] = stride;
                stride *= size[d] + (mode >= 2 ? kd_range(rng, 0, 2) : 0);
            }
            if (!side && mode == 2 && rank > 1)
                st[kd_range(rng, 0, rank - 1)] = 0;
        }
        int64_t sextent = 1, dextent = 1;
        for (int i = 0; i < rank; i++) {
            sextent += (int64_t)(size[i] - 1) * ss[i];
            dextent += (int64_t)(size[i] - 1) * ds[i];
        }
        const size_t sbytes = (size_t)(sextent * eb), dbytes = (size_t)(dextent * eb) + 16;
        uint8_t *src = kd_alloc(sbytes + 1), *dst = kd_alloc(dbytes), *want = kd_alloc(dbytes);
        uint8_t *dst2 = kd_alloc(dbytes);
        uint8_t *s1 = src + (trial & 1); /* odd addresses too */
        for (size_t i = 0; i < sbytes; i++)
            s1[i] = (uint8_t)(i * 131 + 7);
        memset(want, 0xa5, dbytes);
        int32_t idx[4] = {0, 0, 0, 0};
        for (;;) { /* every element, by index */
            int64_t so = 0, dof = 0;
            for (int i = 0; i < rank; i++) {
                so += idx[i] * ss[i];
                dof += idx[i] * ds[i];
            }
            memcpy(want + 8 + dof * eb, s1 + so * eb, (size_t)eb);
            int i = rank - 1;
            while (i >= 0 && ++idx[i] == size[i])
                idx[i--] = 0;
            if (i < 0)
                break;
        }
        memset(dst, 0xa5, dbytes);
        fn(s1, dst + 8, eb, size, ss, ds, rank, 0, size[0]);
        if (memcmp(dst, want, dbytes) != 0)
            kd_fail(&t, "rank %d eb %d sizes %d,%d,%d,%d: wrong bytes", rank, eb, size[0],
                    rank > 1 ? size[1] : 1, rank > 2 ? size[2] : 1, rank > 3 ? size[3] : 1);
        memset(dst2, 0xa5, dbytes);
        int32_t cuts[8];
        const int parts = kd_cuts(rng, 0, size[0], 1, cuts, 4);
        for (int p = 0; p < parts; p++)
            fn(s1, dst2 + 8, eb, size, ss, ds, rank, cuts[p], cuts[p + 1]);
        fn(s1, dst2 + 8, eb, size, ss, ds, rank, size[0], size[0]);
        if (memcmp(dst2, want, dbytes) != 0)
            kd_fail(&t, "rank %d eb %d: a split into %d ranges differs", rank, eb, parts);
        free(src);
        free(dst);
        free(dst2);
        free(want);
    }
    return t.fails;
}

/* ------------------------------------------------------------------------ */
/* kv_store                                                                  */

static int kd_check_kv_store(const kd_variant_t *v, kd_rng_t *rng)
{
    kd_tally_t t = {v, 0};
    const kd_kv_store_fn fn = (kd_kv_store_fn)v->fn;
    for (int trial = 0; trial < 60; trial++) {
        const int32_t hkv = (int32_t)kd_range(rng, 1, 4), d = (int32_t)kd_range(rng, 1, 40);
        const int32_t cap = (int32_t)kd_range(rng, 1, 20), n = (int32_t)kd_range(rng, 1, cap);
        const int32_t p0 = (int32_t)kd_range(rng, 0, cap - n);
        /* x rows [n][hkv][d] inside a wider row (e.g. fused q|k|v) */
        const int64_t sxh = d + kd_range(rng, 0, 2) * d;
        const int64_t sxt = sxh * hkv + kd_range(rng, 0, 5);
        const size_t xn = (size_t)(sxt * n), cn = (size_t)hkv * cap * d;
        float *x = kd_alloc(sizeof(float) * xn), *c = kd_alloc(sizeof(float) * cn);
        float *want = kd_alloc(sizeof(float) * cn);
        for (size_t i = 0; i < xn; i++)
            x[i] = (float)i + 0.5f;
        for (size_t i = 0; i < cn; i++)
            c[i] = want[i] = -(float)i;
        for (int32_t tt = 0; tt < n; tt++)
            for (int32_t g = 0; g < hkv; g++)
                for (int32_t i = 0; i < d; i++)
                    want[((int64_t)g * cap + p0 + tt) * d + i] = x[tt * sxt + g * sxh + i];
        fn(c, cap, d, x, sxt, sxh, hkv, p0, n);
        if (memcmp(c, want, sizeof(float) * cn) != 0)
            kd_fail(&t, "hkv %d cap %d d %d p0 %d n %d: wrong cache", hkv, cap, d, p0, n);
        fn(c, cap, d, x, sxt, sxh, hkv, p0, 0);
        if (memcmp(c, want, sizeof(float) * cn) != 0)
            kd_fail(&t, "n = 0 wrote into the cache");
        free(x);
        free(c);
        free(want);
    }
    return t.fails;
}

/* ------------------------------------------------------------------------ */
/* Matmul ranges                                                             */

/* Calls one range of a matmul under test (ctx holds its operands). */
typedef void (*kd_range_fn)(void *ctx, float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n0,
                            int32_t n1);

/* Runs the whole [0,M) x [0,N) into y (ldy, sentinel padded) and checks it
 * against want with tolerance tol[m*N + j] (0: exactly); then random
 * splits (n cuts at multiples of nstep) and empty ranges must reproduce
 * the same bits and touch nothing else. */
static void kd_check_ranges(kd_tally_t *t, kd_rng_t *rng, kd_range_fn call, void *ctx, int32_t M,
                            int32_t N, int32_t nstep, const double *want, const double *tol,
                            const char *what)
{
    const int64_t ldy = N + kd_range(rng, 0, 3);
    const size_t ny = (size_t)(M * ldy);
    float *y = kd_alloc(sizeof(float) * ny), *y2 = kd_alloc(sizeof(float) * ny);
    kd_fill_sentinel(y, ny);
    call(ctx, y, ldy, 0, M, 0, N);
    int bad = 0;
    for (int32_t m = 0; m < M && !bad; m++)
        for (int32_t j = 0; j < ldy && !bad; j++) {
            const float got = y[m * ldy + j];
            if (j >= N) {
                if (!kd_same_bits(got, kd_sentinel())) {
                    kd_fail(t, "%s: wrote y[%d, %d] past n = %d", what, m, j, N);
                    bad = 1;
                }
                continue;
            }
            const double w = want[(int64_t)m * N + j], e = tol[(int64_t)m * N + j];
            if (!(fabs((double)got - w) <= e)) {
                kd_fail(t, "%s: y[%d, %d] = %.9g, want %.9g (tolerance %.3g)", what, m, j,
                        (double)got, w, e);
                bad = 1;
            }
        }
    int32_t mc[8], nc[8];
    const int mp = kd_cuts(rng, 0, M, 1, mc, 3), np = kd_cuts(rng, 0, N, nstep, nc, 3);
    kd_fill_sentinel(y2, ny);
    for (int a = 0; a < mp; a++)
        for (int b = 0; b < np; b++)
            call(ctx, y2, ldy, mc[a], mc[a + 1], nc[b], nc[b + 1]);
    call(ctx, y2, ldy, M / 2, M / 2, 0, N);
    call(ctx, y2, ldy, 0, M, nc[np - 1], nc[np - 1]);
    if (memcmp(y, y2, sizeof(float) * ny) != 0)
        kd_fail(t, "%s: %d x %d ranges differ from the whole", what, mp, np);
    /* one inner block alone writes only itself */
    kd_fill_sentinel(y2, ny);
    const int a = (int)kd_range(rng, 0, mp - 1), b = (int)kd_range(rng, 0, np - 1);
    call(ctx, y2, ldy, mc[a], mc[a + 1], nc[b], nc[b + 1]);
    for (int32_t m = 0; m < M; m++)
        for (int32_t j = 0; j < ldy; j++) {
            const int inside = m >= mc[a] && m < mc[a + 1] && j >= nc[b] && j < nc[b + 1];
            const float w = inside ? y[m * ldy + j] : kd_sentinel();
            if (!kd_same_bits(y2[m * ldy + j], w)) {
                kd_fail(t, "%s: range [%d,%d) x [%d,%d) alone: y[%d, %d] wrong", what, mc[a],
                        mc[a + 1], nc[b], nc[b + 1], m, j);
                m = M;
                break;
            }
        }
    free(y);
    free(y2);
}

/* ------------------------------------------------------------------------ */
/* sgemm                                                                     */

typedef struct kd_sgemm_ctx {
    kd_sgemm_fn fn;
    const float *x;
    int64_t ldx;
    const void *w;
    int32_t k;
} kd_sgemm_ctx_t;

static void kd_sgemm_call(void *ctx, float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n0,
                          int32_t n1)
{
    const kd_sgemm_ctx_t *c = ctx;
    c->fn(c->x, c->ldx, c->w, y, ldy, m0, m1, n0, n1, c->k);
}

static const int32_t kd_sg_m[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 13};
static const int32_t kd_sg_n[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33};
static const int32_t kd_sg_k[] = {1,  2,  3,  4,  5,  7,  8,  9,   15,  16,  17,
                                  31, 32, 33, 63, 64, 65, 100, 255, 256, 257, 1000};

#define KD_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int kd_check_sgemm(const kd_variant_t *v, kd_rng_t *rng)
{
    kd_tally_t t = {v, 0};
    const int f16 = !strcmp(v->family, "sgemm_f16");
    for (int trial = 0; trial < 90; trial++) {
        int32_t M = kd_sg_m[kd_range(rng, 0, KD_COUNT(kd_sg_m) - 1)];
        int32_t N = kd_sg_n[kd_range(rng, 0, KD_COUNT(kd_sg_n) - 1)];
        int32_t K = kd_sg_k[kd_range(rng, 0, KD_COUNT(kd_sg_k) - 1)];
        if (trial == 0) { /* weight rows over several cache blocks */
            M = 11;
            N = 300;
            K = 700;
        }
        const int exact = trial % 2 == 0; /* dyadic values: every sum exact */
        const int64_t ldx = K + kd_range(rng, 0, 2);
        float *xb = kd_alloc(sizeof(float) * (size_t)(M * ldx));
        uint8_t *wb = kd_alloc((size_t)N * K * (f16 ? 2 : 4) + 1);
        uint8_t *w = wb + (f16 && (trial & 2) ? 1 : 0); /* f16 rows at odd addresses too */
        float *wv = kd_alloc(sizeof(float) * (size_t)N * K);
        double *want = kd_alloc(sizeof(double) * (size_t)(M * N));
        double *tol = kd_alloc(sizeof(double) * (size_t)(M * N));
        for (int64_t i = 0; i < M * ldx; i++)
            xb[i] = exact ? (float)kd_range(rng, -8, 8) / 8.0f : kd_float(rng);
        for (int64_t i = 0; i < (int64_t)N * K; i++) {
            const float a = exact ? (float)kd_range(rng, -8, 8) / 16.0f : kd_float(rng);
            if (f16) {
                const uint16_t h = kd_f16_of(a);
                kd_put_u16(w + 2 * i, h);
                wv[i] = kd_f16_value(h);
            } else {
                memcpy(w + 4 * i, &a, 4);
                wv[i] = a;
            }
        }
        for (int32_t m = 0; m < M; m++)
            for (int32_t j = 0; j < N; j++) {
                double s = 0.0, sa = 0.0;
                for (int32_t i = 0; i < K; i++) {
                    const double p = (double)xb[m * ldx + i] * (double)wv[(int64_t)j * K + i];
                    s += p;
                    sa += fabs(p);
                }
                want[m * N + j] = s;
                /* any order of f32 sums: within K ulps of the sum of |terms| */
                tol[m * N + j] = exact ? 0.0 : (double)(K + 1) * FLT_EPSILON * sa + 1e-30;
            }
        kd_sgemm_ctx_t c = {(kd_sgemm_fn)v->fn, xb, ldx, w, K};
        char what[96];
        snprintf(what, sizeof what, "M=%d N=%d K=%d %s", M, N, K, exact ? "exact" : "random");
        kd_check_ranges(&t, rng, kd_sgemm_call, &c, M, N, 1, want, tol, what);
        free(xb);
        free(wb);
        free(wv);
        free(want);
        free(tol);
    }
    return t.fails;
}

/* ------------------------------------------------------------------------ */
/* wgemm                                                                     */

/* Byte of element (n, k) of a tiled [pad_n, K] weight, and its nibble
 * shift for u4 (ir/layout_index.h, spelled out): tile (n/hp, k/lp), index
 * w = (n%hp)*lp + k%lp within it; u4 tiles are hp*lp/2 bytes, element w
 * in the low nibble of byte w when w < hp*lp/2, else the high nibble of
 * byte w - hp*lp/2. */
static int64_t kd_tiled_byte(int u4, int32_t hp, int32_t lp, int32_t K, int32_t n, int32_t k,
                             int *shift)
{
    const int64_t tile = (int64_t)hp * lp, ti = (int64_t)(n / hp) * (K / lp) + k / lp;
    const int64_t w = (int64_t)(n % hp) * lp + k % lp;
    *shift = 0;
    if (!u4)
        return ti * tile + w;
    if (w >= tile / 2) {
        *shift = 4;
        return ti * (tile / 2) + w - tile / 2;
    }
    return ti * (tile / 2) + w;
}

/* Group scales / mins index of (n, g): [pad_n/hp][K/group][hp]. */
static int64_t kd_scale_index(int32_t hp, int32_t ng, int32_t n, int32_t g)
{
    return ((int64_t)(n / hp) * ng + g) * hp + n % hp;
}

typedef struct kd_wgemm_ctx {
    kd_wgemm_fn fn;
    const float *x;
    int64_t ldx;
    const uint8_t *wq;
    const uint16_t *ws, *wm;
    int32_t n, k, group;
} kd_wgemm_ctx_t;

static void kd_wgemm_call(void *ctx, float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n0,
                          int32_t n1)
{
    const kd_wgemm_ctx_t *c = ctx;
    c->fn(c->x, c->ldx, c->wq, c->ws, c->wm, y, ldy, m0, m1, n0, n1, c->n, c->k, c->group);
}

/* Hook for the Criterion test: checks a packed weight against its own
 * oracle of the layout. NULL in the program. */
typedef void (*kd_layout_hook_fn)(kd_tally_t *t, int u4, int32_t hp, int32_t lp, int32_t N,
                                  int32_t K, const uint8_t *wq, const uint8_t *q);
static kd_layout_hook_fn kd_layout_hook;

static int kd_check_wgemm(const kd_variant_t *v, kd_rng_t *rng)
{
    kd_tally_t t = {v, 0};
    const int u4 = !strcmp(v->family, "wgemm_u4");
    const int32_t hp = kd_param(v->params, "hp"), lp = kd_param(v->params, "lp");
    if (hp < 1 || lp < 1 || (u4 && hp * lp % 2)) {
        kd_fail(&t, "params \"%s\" lack a usable hp/lp", v->params);
        return t.fails;
    }
    const int32_t ns[] = {1, hp - 1, hp, hp + 1, 2 * hp, 2 * hp + 3, 3 * hp + 5, 5 * hp - 1};
    const int32_t ms[] = {1, 2, 3, 5, 6, 7, 12, 13};
    const int32_t gmul[] = {1, 2, 8, 16, 32};
    const int32_t kmul[] = {1, 2, 3, 5};
    for (int trial = 0; trial < 48; trial++) {
        const int32_t pick = ns[kd_range(rng, 0, KD_COUNT(ns) - 1)];
        const int32_t N = pick > 0 ? pick : 1;
        const int32_t M = ms[kd_range(rng, 0, KD_COUNT(ms) - 1)];
        int32_t G = lp * gmul[kd_range(rng, 0, KD_COUNT(gmul) - 1)];
        int32_t K = G * kmul[kd_range(rng, 0, KD_COUNT(kmul) - 1)];
        if (trial == 0) { /* several panels along k, groups across panel edges */
            G = 3 * lp;
            K = 37 * G;
        }
        const int exact = trial % 2 == 0;
        const int32_t pad_n = (N + hp - 1) / hp * hp, ng = K / G;
        const int64_t ldx = K + kd_range(rng, 0, 2);
        const size_t wbytes = (size_t)pad_n * K / (u4 ? 2 : 1), nsc = (size_t)pad_n * ng;
        float *x = kd_alloc(sizeof(float) * (size_t)(M * ldx));
        uint8_t *q = kd_alloc((size_t)N * K), *wq = kd_alloc(wbytes);
        uint8_t *sb = kd_alloc(2 * nsc + 1), *mb = kd_alloc(2 * nsc + 1);
        uint8_t *s1 = sb + (trial & 1), *m1 = mb + (trial & 1); /* odd addresses too */
        float *sv = kd_alloc(sizeof(float) * (size_t)N * ng), *mv = kd_alloc(sizeof(float) * (size_t)N * ng);
        double *want = kd_alloc(sizeof(double) * (size_t)(M * N));
        double *tol = kd_alloc(sizeof(double) * (size_t)(M * N));
        memset(wq, 0, wbytes);
        memset(s1, 0, 2 * nsc);
        memset(m1, 0, 2 * nsc);
        for (int64_t i = 0; i < M * ldx; i++)
            x[i] = exact ? (float)kd_range(rng, -4, 4) / 8.0f : kd_float(rng);
        for (int32_t n = 0; n < N; n++) {
            for (int32_t g = 0; g < ng; g++) {
                const uint16_t sh = exact ? kd_f16_of(kd_range(rng, -8, 8) / 64.0) : kd_rand_f16(rng);
                const uint16_t mh = exact ? kd_f16_of(kd_range(rng, -8, 8) / 64.0)
                                          : (kd_range(rng, 0, 3) ? kd_rand_f16(rng) : 0);
                const int64_t si = kd_scale_index(hp, ng, n, g);
                kd_put_u16(s1 + 2 * si, sh);
                kd_put_u16(m1 + 2 * si, mh);
                sv[(int64_t)n * ng + g] = kd_f16_value(sh);
                mv[(int64_t)n * ng + g] = kd_f16_value(mh);
            }
            for (int32_t k = 0; k < K; k++) {
                const int qv = u4 ? (int)kd_range(rng, 0, 15) : (int)kd_range(rng, -128, 127);
                int shift;
                const int64_t at = kd_tiled_byte(u4, hp, lp, K, n, k, &shift);
                q[(int64_t)n * K + k] = (uint8_t)qv;
                wq[at] |= (uint8_t)(u4 ? qv << shift : qv);
            }
        }
        if (kd_layout_hook)
            kd_layout_hook(&t, u4, hp, lp, N, K, wq, q);
        for (int32_t m = 0; m < M; m++)
            for (int32_t n = 0; n < N; n++) {
                double s = 0.0, sa = 0.0;
                for (int32_t k = 0; k < K; k++) {
                    const int qv = u4 ? (int)q[(int64_t)n * K + k] : (int)(int8_t)q[(int64_t)n * K + k];
                    const float wdq = sv[(int64_t)n * ng + k / G] * (float)qv + mv[(int64_t)n * ng + k / G];
                    const double p = (double)x[m * ldx + k] * (double)wdq;
                    s += p;
                    sa += fabs(p);
                }
                want[m * N + n] = s;
                tol[m * N + n] = exact ? 0.0 : (double)(K + 1) * FLT_EPSILON * sa + 1e-30;
            }
        kd_wgemm_ctx_t c = {(kd_wgemm_fn)v->fn, x, ldx, wq, (const uint16_t *)(const void *)s1,
                            (const uint16_t *)(const void *)m1, N, K, G};
        char what[96];
        snprintf(what, sizeof what, "M=%d N=%d K=%d group=%d %s", M, N, K, G,
                 exact ? "exact" : "random");
        kd_check_ranges(&t, rng, kd_wgemm_call, &c, M, N, hp, want, tol, what);
        free(x);
        free(q);
        free(wq);
        free(sb);
        free(mb);
        free(sv);
        free(mv);
        free(want);
        free(tol);
    }
    return t.fails;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

/* Checks one variant; returns its failures. */
static int kd_check_variant(const kd_variant_t *v, uint64_t seed)
{
    kd_rng_t rng = {seed};
    if (!strncmp(v->family, "embedding_", 10))
        return kd_check_embedding(v, &rng);
    if (!strcmp(v->family, "copy"))
        return kd_check_copy(v, &rng);
    if (!strcmp(v->family, "kv_store"))
        return kd_check_kv_store(v, &rng);
    if (!strncmp(v->family, "sgemm_", 6))
        return kd_check_sgemm(v, &rng);
    if (!strncmp(v->family, "wgemm_", 6))
        return kd_check_wgemm(v, &rng);
    fprintf(stderr, "FAIL %s: no check for family %s\n", v->name, v->family);
    return 1;
}

/* Checks every variant of family that this CPU runs; *out_run counts them,
 * *out_skipped those of ISAs it lacks. Returns the failures, plus one for
 * each ISA compiled in that lacks the family. */
static int kd_check_family(const char *family, int *out_run, int *out_skipped)
{
    int fails = 0, run = 0, skipped = 0;
    for (const kd_variant_t *v = kd_variants; v->family; v++) {
        if (strcmp(v->family, family) != 0)
            continue;
        if (!kd_isa_runs(v->isa)) {
            skipped++;
            continue;
        }
        run++;
        fails += kd_check_variant(v, 0x6b6632u ^ (uint64_t)strlen(v->name) * 0x9e37u);
    }
    /* every ISA present in the list provides the family */
    for (const kd_variant_t *v = kd_variants; v->family; v++) {
        int has = 0;
        for (const kd_variant_t *u = kd_variants; u->family; u++)
            has |= !strcmp(u->isa, v->isa) && !strcmp(u->family, family);
        if (!has) {
            fprintf(stderr, "FAIL ISA %s has no variant of %s\n", v->isa, family);
            fails++;
            break;
        }
    }
    *out_run = run;
    *out_skipped = skipped;
    return fails;
}

#ifndef KD_NO_MAIN
#if defined(__x86_64__)
#include <cpuid.h>

static int kd_isa_runs(const char *isa)
{
    unsigned a, b, c, d, lo = 0, hi = 0;
    if (!strcmp(isa, "scalar"))
        return 1;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
        return 0;
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    const int avx2 = fma && f16c && avx && ((b >> 5) & 1) && (lo & 6) == 6;
    if (!strcmp(isa, "avx2"))
        return avx2;
    if (!strcmp(isa, "avx512vnni"))
        return avx2 && ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1) && ((c >> 11) & 1) &&
               (lo & 0xe6) == 0xe6;
    return 0;
}
#elif defined(__aarch64__)
#include <sys/auxv.h>

static int kd_isa_runs(const char *isa)
{
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    const int asimd = (hw >> 1) & 1, dp = (hw >> 20) & 1, hp = (hw >> 10) & 1;
    const int i8mm = (hw2 >> 13) & 1;
    if (!strcmp(isa, "scalar"))
        return 1;
    if (!strcmp(isa, "neon"))
        return asimd;
    if (!strcmp(isa, "dotprod"))
        return asimd && dp && hp;
    if (!strcmp(isa, "i8mm"))
        return asimd && dp && hp && i8mm;
    return 0;
}
#else
static int kd_isa_runs(const char *isa)
{
    return !strcmp(isa, "scalar");
}
#endif

int main(void)
{
    int fails = 0, run = 0, skipped = 0;
    for (int f = 0; kd_families[f]; f++) {
        int r = 0, s = 0;
        const int ff = kd_check_family(kd_families[f], &r, &s);
        printf("%-16s %d variants checked, %d skipped (ISA absent), %d failures\n",
               kd_families[f], r, s, ff);
        fails += ff;
        run += r;
        skipped += s;
        if (r == 0) {
            printf("FAIL no variant of %s ran\n", kd_families[f]);
            fails++;
        }
    }
    printf("%s: %d variants checked, %d skipped, %d failures\n", fails ? "FAILED" : "passed", run,
           skipped, fails);
    return fails ? 1 : 0;
}
#endif
