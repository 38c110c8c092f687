/* Checks of the float kernel families (codegen/kernels/fam_float.py:
 * rms_norm, add, mul, swiglu, rope, softmax, attention_kv) for every
 * generated variant this machine can run, against plain loops written here
 * in double precision (rope and attention_kv with the formulas of
 * backends/ref/ref_compute.c), over seeded random shapes with the edges:
 * sizes below, at and above the vector width and the unrolls, one row,
 * empty ranges, strided rows, and every range split bit-identical to the
 * whole range. Padding between rows and everything outside the range must
 * stay untouched; cache rows beyond the keys a query sees hold NaN, so a
 * kernel that reads them fails.
 *
 * Two drivers share these checks: main() below (plain C, for the aarch64
 * cross build), and tests/test_kernels_float.c (Criterion), which defines
 * KFC_NO_MAIN and includes this file. The cross build, K = the generated
 * kernel directory, each ISA file with isa.py's cflags:
 *   CC="aarch64-linux-gnu-gcc -std=c11 -O2 -fno-math-errno -IK"
 *   $CC -c K/kernels_scalar.c; $CC -march=armv8-a -c K/kernels_neon.c
 *   $CC -march=armv8.2-a+dotprod+fp16 -c K/kernels_dotprod.c
 *   $CC -march=armv8.6-a+dotprod+i8mm+fp16 -c K/kernels_i8mm.c
 *   $CC -D_DEFAULT_SOURCE kernels_float_check.c kernels_*.o -lm -o check
 *   QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static -cpu max ./check
 * It prints one line per variant and a summary, and exits 0 when every
 * variant it ran passed. Standalone, the variants of this
 * architecture's ISAs are weak references: one whose file is not linked is
 * reported ("not linked") and counted in the summary line, not run. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mica_kernels.h"

/* ------------------------------------------------------------------------ */
/* the variants, from the generated list                                     */

typedef void (*kfc_any_fn)(void);

typedef struct kfc_variant {
    const char *family, *name, *isa, *params;
    kfc_any_fn fn; /* NULL: not linked into this program */
} kfc_variant_t;

#define KFC_STR_(x) #x
#define KFC_STR(x) KFC_STR_(x)

/* Which ISAs' variants this architecture can link: KFC_ON_<isa>(...) is its
 * arguments or nothing. A new ISA in isa.py needs a line here on each architecture. */
#if defined(__x86_64__)
#define KFC_ON_scalar(...) __VA_ARGS__
#define KFC_ON_avx2(...) __VA_ARGS__
#define KFC_ON_avx512vnni(...) __VA_ARGS__
#define KFC_ON_neon(...)
#define KFC_ON_dotprod(...)
#define KFC_ON_i8mm(...)
#elif defined(__aarch64__)
#define KFC_ON_scalar(...) __VA_ARGS__
#define KFC_ON_avx2(...)
#define KFC_ON_avx512vnni(...)
#define KFC_ON_neon(...) __VA_ARGS__
#define KFC_ON_dotprod(...) __VA_ARGS__
#define KFC_ON_i8mm(...) __VA_ARGS__
#else
#define KFC_ON_scalar(...) __VA_ARGS__
#define KFC_ON_avx2(...)
#define KFC_ON_avx512vnni(...)
#define KFC_ON_neon(...)
#define KFC_ON_dotprod(...)
#define KFC_ON_i8mm(...)
#endif

/* Standalone, the variants are weak references (a missing ISA file is
 * reported, not a link error); the Criterion driver, which links the host
 * library (an archive, whose members weak references would not pull in),
 * references them strongly. */
#ifndef KFC_NO_MAIN
#define MICA_KERNEL(family, name, isa, params) KFC_ON_##isa(_Pragma(KFC_STR(weak name)))
#include "kernel_list.inc"
#undef MICA_KERNEL
#endif

static const kfc_variant_t kfc_variants[] = {
#define MICA_KERNEL(family, name, isa, params)                                                     \
    KFC_ON_##isa({#family, #name, #isa, params, (kfc_any_fn)name}, )
#include "kernel_list.inc"
#undef MICA_KERNEL
    {NULL, NULL, NULL, NULL, NULL},
};

/* Every variant of every ISA, names only. */
static const kfc_variant_t kfc_all_variants[] = {
#define MICA_KERNEL(family, name, isa, params) {#family, #name, #isa, params, NULL},
#include "kernel_list.inc"
#undef MICA_KERNEL
    {NULL, NULL, NULL, NULL, NULL},
};

static const char *const kfc_families[] = {"rms_norm", "add",     "mul",         "swiglu",
                                           "rope",     "softmax", "attention_kv"};
static const char *const kfc_isas[] = {"scalar", "avx2", "avx512vnni", "neon", "dotprod", "i8mm"};
#define KFC_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef void (*kfc_rms_fn)(const float *, int64_t, const float *, float, float *, int64_t, int32_t,
                           int32_t, int32_t);
typedef void (*kfc_bin_fn)(const float *, int64_t, const float *, int64_t, float *, int64_t,
                           int32_t, int32_t, int32_t);
typedef void (*kfc_swiglu_fn)(const float *, int64_t, float *, int64_t, int32_t, int32_t, int32_t);
typedef void (*kfc_rope_fn)(const float *, int64_t, int64_t, const int32_t *, float *, int64_t,
                            int64_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float,
                            float);
typedef void (*kfc_softmax_fn)(const float *, int64_t, float *, int64_t, int32_t, int32_t, int32_t);
typedef void (*kfc_attn_fn)(const float *, int64_t, int64_t, const float *, const float *, int32_t,
                            float *, int64_t, int64_t, int32_t, int32_t, int32_t, int32_t, int32_t,
                            int32_t, float);

/* ------------------------------------------------------------------------ */
/* state, random numbers, buffers                                            */

typedef struct kfc {
    uint64_t rng;
    const char *variant; /* being checked */
    int64_t checks;      /* values compared */
    int not_linked;      /* variants of this architecture absent from the program */
    int failures;        /* values out of tolerance, writes out of place, ... */
    double worst;        /* largest error / tolerance seen (<= 1 passes) */
} kfc_t;

static void kfc_fail(kfc_t *c, const char *fmt, ...)
{
    if (c->failures++ < 20) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL %s: ", c->variant);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
}

static uint64_t kfc_next(kfc_t *c)
{
    uint64_t z = (c->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static int32_t kfc_int(kfc_t *c, int32_t lo, int32_t hi)
{
    return lo + (int32_t)(kfc_next(c) % (uint64_t)(hi - lo + 1));
}

/* Uniform float in [-1, 1). */
static float kfc_unit(kfc_t *c)
{
    return (float)((double)(kfc_next(c) >> 40) * (1.0 / 8388608.0) - 1.0);
}

static const uint32_t KFC_SENTINEL = 0x7fa5a5a5u; /* a NaN no kernel computes */

static float *kfc_alloc(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "kernels_float_check: out of memory\n");
        exit(2);
    }
    return p;
}

static void kfc_fill_sentinel(float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(&p[i], &KFC_SENTINEL, sizeof KFC_SENTINEL);
}

static int kfc_is_sentinel(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof b);
    return b == KFC_SENTINEL;
}

static void kfc_fill_nan(float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = NAN;
}

/* n values in [-mag, mag). */
static void kfc_fill(kfc_t *c, float *p, int64_t n, float mag)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = kfc_unit(c) * mag;
}

/* The same n floats, bit for bit (NaNs included). */
static int kfc_same_bits(const float *a, const float *b, int64_t n, int64_t *at)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) {
            *at = i;
            return 0;
        }
    return 1;
}

/* One value against the reference: |got - want| <= tol (NaN fails). */
static void kfc_expect(kfc_t *c, double got, double want, double tol, const char *what, int64_t row,
                       int64_t i)
{
    c->checks++;
    double err = fabs(got - want);
    if (!(err <= tol)) {
        kfc_fail(c, "%s row %lld elem %lld: got %.9g want %.9g (err %.3g > tol %.3g)", what,
                 (long long)row, (long long)i, got, want, err, tol);
        return;
    }
    if (tol > 0 && err / tol > c->worst)
        c->worst = err / tol;
}

/* A kernel call over rows [r0, r1) writing into y; the family's checker
 * binds the other arguments through ctx. */
typedef void (*kfc_call_fn)(const void *ctx, float *y, int32_t r0, int32_t r1);

/* Runs [0, rows) into want (one call), then the same as three calls
 * [0, a), [a, b), [b, rows) plus an empty one, on a copy of `init`, and
 * requires the two results bit-identical over all `len` floats of the
 * output buffer. Then [a, b) alone and [0, a) + [b, rows) alone, each on
 * the all-sentinel `init`: every float must be written by at most one of
 * them (so no call writes outside its range, even the right value), and
 * an empty range writes nothing. */
static void kfc_split_check(kfc_t *c, kfc_call_fn call, const void *ctx, int32_t rows,
                            const float *init, const float *want, int64_t len)
{
    float *y = kfc_alloc(len), *y2 = kfc_alloc(len);
    memcpy(y, init, (size_t)len * sizeof *y);
    int32_t a = kfc_int(c, 0, rows), b = kfc_int(c, a, rows), e = kfc_int(c, 0, rows);
    call(ctx, y, e, e);
    call(ctx, y, 0, a);
    call(ctx, y, b, rows);
    call(ctx, y, a, b);
    int64_t at = 0;
    if (!kfc_same_bits(y, want, len, &at))
        kfc_fail(c, "split [0,%d) [%d,%d) [%d,%d) of %d rows differs from one call at float %lld",
                 a, a, b, b, rows, rows, (long long)at);
    memcpy(y, init, (size_t)len * sizeof *y);
    memcpy(y2, init, (size_t)len * sizeof *y2);
    call(ctx, y, a, b);
    call(ctx, y2, 0, a);
    call(ctx, y2, b, rows);
    for (int64_t i = 0; i < len; i++)
        if (!kfc_is_sentinel(y[i]) && !kfc_is_sentinel(y2[i])) {
            kfc_fail(c, "rows [%d,%d) and the rest of %d rows both wrote float %lld", a, b, rows,
                     (long long)i);
            break;
        }
    memcpy(y, init, (size_t)len * sizeof *y);
    call(ctx, y, e, e);
    if (!kfc_same_bits(y, init, len, &at))
        kfc_fail(c, "empty range [%d,%d) wrote float %lld", e, e, (long long)at);
    free(y);
    free(y2);
}

/* Rows of n floats at stride ld in y[len]: the floats between and after
 * them must still be the sentinel. */
static void kfc_expect_padding(kfc_t *c, const float *y, int32_t rows, int64_t ld, int32_t n,
                               int64_t len)
{
    for (int64_t i = 0; i < len; i++) {
        int64_t r = i / ld, col = i % ld;
        int inside = r < rows && col < n;
        if (!inside && !kfc_is_sentinel(y[i])) {
            kfc_fail(c, "wrote float %lld outside the rows", (long long)i);
            return;
        }
    }
}

static const int32_t kfc_lengths[] = {1,   2,   3,   4,   5,    7,    8,    9,    15,  16,  17,
                                      23,  31,  32,  33,  47,   63,   64,   65,   127, 128, 129,
                                      255, 256, 257, 576, 1000, 1536, 2048, 4099, 8192};

/* ------------------------------------------------------------------------ */
/* rms_norm                                                                  */

typedef struct kfc_rms_ctx {
    kfc_rms_fn fn;
    const float *x, *w;
    int64_t ldx, ldy;
    float eps;
    int32_t n;
} kfc_rms_ctx_t;

static void kfc_rms_call(const void *ctx, float *y, int32_t r0, int32_t r1)
{
    const kfc_rms_ctx_t *k = ctx;
    k->fn(k->x, k->ldx, k->w, k->eps, y, k->ldy, r0, r1, k->n);
}

static void kfc_check_rms_norm(kfc_t *c, kfc_any_fn fn)
{
    for (int li = 0; li < KFC_COUNT(kfc_lengths); li++) {
        int32_t n = kfc_lengths[li], rows = kfc_int(c, 2, n > 2000 ? 2 : 5);
        int64_t ldx = n + kfc_int(c, 0, 3), ldy = n + kfc_int(c, 0, 3);
        int64_t lx = (rows - 1) * ldx + n, ly = rows * ldy;
        float *x = kfc_alloc(lx), *w = kfc_alloc(n), *y = kfc_alloc(ly), *init = kfc_alloc(ly);
        for (int32_t r = 0; r < rows; r++) {
            float mag = powf(10.0f, (float)kfc_int(c, -3, 3));
            kfc_fill(c, x + r * ldx, n, mag);
            if (r == 1) /* equal squares: f32 sums drift the most */
                for (int32_t i = 0; i < n; i++)
                    x[r * ldx + i] = 0.7f * mag;
        }
        kfc_fill(c, w, n, 2.0f);
        kfc_fill_sentinel(init, ly);
        float eps = li % 2 ? 1e-5f : 1e-6f;
        kfc_rms_ctx_t k = {(kfc_rms_fn)fn, x, w, ldx, ldy, eps, n};
        memcpy(y, init, (size_t)ly * sizeof *y);
        kfc_rms_call(&k, y, 0, rows);
        kfc_expect_padding(c, y, rows, ldy, n, ly);
        for (int32_t r = 0; r < rows; r++) {
            const float *xr = x + r * ldx;
            double ss = 0.0;
            for (int32_t i = 0; i < n; i++)
                ss += (double)xr[i] * (double)xr[i];
            double inv = 1.0 / sqrt(ss / (double)n + (double)eps);
            for (int32_t i = 0; i < n; i++) {
                double want = (double)xr[i] * inv * (double)w[i];
                kfc_expect(c, y[r * ldy + i], want, 1e-6 * fabs(want) + 1e-30, "rms_norm", r, i);
            }
        }
        kfc_split_check(c, kfc_rms_call, &k, rows, init, y, ly);
        free(x);
        free(w);
        free(y);
        free(init);
    }
}

/* ------------------------------------------------------------------------ */
/* add, mul                                                                  */

typedef struct kfc_bin_ctx {
    kfc_bin_fn fn;
    const float *a, *b;
    int64_t lda, ldb, ldy;
    int32_t n;
} kfc_bin_ctx_t;

static void kfc_bin_call(const void *ctx, float *y, int32_t r0, int32_t r1)
{
    const kfc_bin_ctx_t *k = ctx;
    k->fn(k->a, k->lda, k->b, k->ldb, y, k->ldy, r0, r1, k->n);
}

static void kfc_check_binary(kfc_t *c, kfc_any_fn fn, int is_mul)
{
    for (int li = 0; li < KFC_COUNT(kfc_lengths); li++)
        for (int bcast = 0; bcast < 2; bcast++) {
            int32_t n = kfc_lengths[li], rows = kfc_int(c, 1, 5);
            int64_t lda = n + kfc_int(c, 0, 3), ldb = bcast ? 0 : n + kfc_int(c, 0, 3);
            int64_t ldy = n + kfc_int(c, 0, 3);
            int64_t la = (rows - 1) * lda + n, lb = (rows - 1) * ldb + n, ly = rows * ldy;
            float *a = kfc_alloc(la), *b = kfc_alloc(lb), *y = kfc_alloc(ly), *init = kfc_alloc(ly);
            kfc_fill(c, a, la, 100.0f);
            kfc_fill(c, b, lb, 100.0f);
            kfc_fill_sentinel(init, ly);
            kfc_bin_ctx_t k = {(kfc_bin_fn)fn, a, b, lda, ldb, ldy, n};
            memcpy(y, init, (size_t)ly * sizeof *y);
            kfc_bin_call(&k, y, 0, rows);
            kfc_expect_padding(c, y, rows, ldy, n, ly);
            for (int32_t r = 0; r < rows; r++)
                for (int32_t i = 0; i < n; i++) {
                    float av = a[r * lda + i], bv = b[r * ldb + i];
                    float want = is_mul ? av * bv : av + bv; /* one IEEE rounding: exact */
                    kfc_expect(c, y[r * ldy + i], want, 0.0, is_mul ? "mul" : "add", r, i);
                }
            kfc_split_check(c, kfc_bin_call, &k, rows, init, y, ly);
            free(a);
            free(b);
            free(y);
            free(init);
        }
}

/* ------------------------------------------------------------------------ */
/* swiglu                                                                    */

typedef struct kfc_swiglu_ctx {
    kfc_swiglu_fn fn;
    const float *x;
    int64_t ldx, ldy;
    int32_t f;
} kfc_swiglu_ctx_t;

static void kfc_swiglu_call(const void *ctx, float *y, int32_t r0, int32_t r1)
{
    const kfc_swiglu_ctx_t *k = ctx;
    k->fn(k->x, k->ldx, y, k->ldy, r0, r1, k->f);
}

static void kfc_check_swiglu(kfc_t *c, kfc_any_fn fn)
{
    for (int li = 0; li < KFC_COUNT(kfc_lengths); li++) {
        int32_t f = kfc_lengths[li], rows = kfc_int(c, 1, 4);
        int64_t ldx = 2 * (int64_t)f + kfc_int(c, 0, 3), ldy = f + kfc_int(c, 0, 3);
        int64_t lx = (rows - 1) * ldx + 2 * f, ly = rows * ldy;
        float *x = kfc_alloc(lx), *y = kfc_alloc(ly), *init = kfc_alloc(ly);
        kfc_fill(c, x, lx, 12.0f);
        /* the clamps of exp: gates far out on both sides */
        static const float far[] = {-120.0f, -88.5f, -87.0f, -30.0f, 30.0f, 87.5f, 89.0f, 150.0f};
        for (int i = 0; i < KFC_COUNT(far) && i < f; i++)
            x[(rows - 1) * ldx + (i * 7) % f] = far[i];
        kfc_fill_sentinel(init, ly);
        kfc_swiglu_ctx_t k = {(kfc_swiglu_fn)fn, x, ldx, ldy, f};
        memcpy(y, init, (size_t)ly * sizeof *y);
        kfc_swiglu_call(&k, y, 0, rows);
        kfc_expect_padding(c, y, rows, ldy, f, ly);
        for (int32_t r = 0; r < rows; r++)
            for (int32_t i = 0; i < f; i++) {
                double g = x[r * ldx + i], u = x[r * ldx + f + i];
                double want = g / (1.0 + exp(-g)) * u;
                kfc_expect(c, y[r * ldy + i], want, 1e-6 * fabs(want) + 1e-30 * fabs(u), "swiglu",
                           r, i);
            }
        kfc_split_check(c, kfc_swiglu_call, &k, rows, init, y, ly);
        free(x);
        free(y);
        free(init);
    }
}

/* ------------------------------------------------------------------------ */
/* softmax                                                                   */

typedef struct kfc_softmax_ctx {
    kfc_softmax_fn fn;
    const float *x;
    int64_t ldx, ldy;
    int32_t n;
} kfc_softmax_ctx_t;

static void kfc_softmax_call(const void *ctx, float *y, int32_t r0, int32_t r1)
{
    const kfc_softmax_ctx_t *k = ctx;
    k->fn(k->x, k->ldx, y, k->ldy, r0, r1, k->n);
}

static void kfc_check_softmax(kfc_t *c, kfc_any_fn fn)
{
    for (int li = 0; li < KFC_COUNT(kfc_lengths); li++) {
        int32_t n = kfc_lengths[li], rows = kfc_int(c, 1, 5);
        int64_t ldx = n + kfc_int(c, 0, 3), ldy = n + kfc_int(c, 0, 3);
        int64_t lx = (rows - 1) * ldx + n, ly = rows * ldy;
        float *x = kfc_alloc(lx), *y = kfc_alloc(ly), *init = kfc_alloc(ly);
        for (int32_t r = 0; r < rows; r++) {
            static const float mags[] = {0.0f, 1.0f, 10.0f, 60.0f, 200.0f};
            kfc_fill(c, x + r * ldx, n, mags[r % KFC_COUNT(mags)]);
            x[r * ldx + (r * 5) % n] += 3.0f; /* moves the max, off lane 0 */
        }
        if (n > 1)
            x[(rows - 1) * ldx + 1] = -INFINITY; /* a masked score */
        kfc_fill_sentinel(init, ly);
        kfc_softmax_ctx_t k = {(kfc_softmax_fn)fn, x, ldx, ldy, n};
        memcpy(y, init, (size_t)ly * sizeof *y);
        kfc_softmax_call(&k, y, 0, rows);
        kfc_expect_padding(c, y, rows, ldy, n, ly);
        /* f32 sums of n terms, and x - max rounded in f32 before the exp:
         * e^(x - max) then carries a relative error up to 2^-24 |x - max| */
        double tol = 1e-6 * (2.0 + sqrt((double)n) / 16.0);
        for (int32_t r = 0; r < rows; r++) {
            const float *xr = x + r * ldx;
            double mx = -INFINITY, sum = 0.0;
            for (int32_t i = 0; i < n; i++)
                mx = xr[i] > mx ? xr[i] : mx;
            for (int32_t i = 0; i < n; i++)
                sum += exp((double)xr[i] - mx);
            for (int32_t i = 0; i < n; i++) {
                double want = exp((double)xr[i] - mx) / sum;
                double rel = tol + (isinf(xr[i]) ? 0.0 : ldexp(fabs((double)xr[i] - mx), -24));
                kfc_expect(c, y[r * ldy + i], want, rel * want + 1e-37, "softmax", r, i);
            }
        }
        kfc_split_check(c, kfc_softmax_call, &k, rows, init, y, ly);
        free(x);
        free(y);
        free(init);
    }
}

/* ------------------------------------------------------------------------ */
/* rope                                                                      */

typedef struct kfc_rope_ctx {
    kfc_rope_fn fn;
    const float *x;
    const int32_t *pos;
    int64_t sxt, sxh, syt, syh;
    int32_t heads, d, mode, dims;
    float theta, scale;
} kfc_rope_ctx_t;

static void kfc_rope_call(const void *ctx, float *y, int32_t r0, int32_t r1)
{
    const kfc_rope_ctx_t *k = ctx;
    k->fn(k->x, k->sxt, k->sxh, k->pos, y, k->syt, k->syh, r0, r1, k->heads, k->d, k->mode, k->dims,
          k->theta, k->scale);
}

static void kfc_check_rope(kfc_t *c, kfc_any_fn fn)
{
    static const int32_t hds[] = {2, 4, 6, 7, 8, 16, 32, 62, 64, 65, 80, 96, 128, 130, 160, 256};
    static const float thetas[] = {10000.0f, 500000.0f, 1000000.0f, 10000.0f};
    static const float scales[] = {1.0f, 0.25f, 0.125f, 1.0f};
    for (int hi = 0; hi < KFC_COUNT(hds); hi++)
        for (int mode = 0; mode <= 2; mode += 2) {
            int32_t d = hds[hi], heads = kfc_int(c, 1, 9), toks = kfc_int(c, 1, 7);
            /* rotate all of d, or only part of it (the rest is copied) */
            int32_t dims = (hi % 3 == 2 && d >= 8) ? 2 * kfc_int(c, 1, d / 2 - 1) : d;
            if (hi % 5 == 4)
                dims = d - 1; /* odd: its last element is not in a pair and is copied */
            int64_t sxh = d + kfc_int(c, 0, 2), sxt = heads * sxh + kfc_int(c, 0, 3);
            int64_t syh = d + kfc_int(c, 0, 2), syt = heads * syh + kfc_int(c, 0, 3);
            int64_t lx = (toks - 1) * sxt + (heads - 1) * sxh + d, ly = toks * syt;
            int32_t rows = toks * heads;
            float *x = kfc_alloc(lx), *y = kfc_alloc(ly), *init = kfc_alloc(ly);
            int32_t *pos = malloc((size_t)toks * sizeof *pos);
            if (!pos)
                exit(2);
            kfc_fill(c, x, lx, 4.0f);
            for (int32_t t = 0; t < toks; t++)
                pos[t] = t == 0 ? 32767 - hi : kfc_int(c, 0, 32768);
            kfc_fill_sentinel(init, ly);
            kfc_rope_ctx_t k = {
                (kfc_rope_fn)fn, x, pos, sxt, sxh, syt, syh, heads, d, mode, dims, thetas[hi % 4],
                scales[hi % 4]};
            memcpy(y, init, (size_t)ly * sizeof *y);
            kfc_rope_call(&k, y, 0, rows);
            int32_t half = dims / 2;
            for (int32_t t = 0; t < toks; t++)
                for (int32_t h = 0; h < heads; h++) {
                    const float *xr = x + t * sxt + h * sxh;
                    const float *yr = y + t * syt + h * syh;
                    for (int32_t i = 0; i < half; i++) {
                        /* as mica_ref_rope */
                        double angle = (double)pos[t] * (double)k.scale *
                                       pow((double)k.theta, -2.0 * (double)i / (double)dims);
                        double cs = cos(angle), sn = sin(angle);
                        int32_t i0 = mode == 0 ? 2 * i : i, i1 = mode == 0 ? 2 * i + 1 : i + half;
                        double a = xr[i0], b = xr[i1], tol = 1e-6 * (fabs(a) + fabs(b)) + 1e-30;
                        kfc_expect(c, yr[i0], a * cs - b * sn, tol, "rope", t * heads + h, i0);
                        kfc_expect(c, yr[i1], a * sn + b * cs, tol, "rope", t * heads + h, i1);
                    }
                    for (int32_t i = 2 * half; i < d; i++)
                        kfc_expect(c, yr[i], xr[i], 0.0, "rope copy", t * heads + h, i);
                    for (int32_t i = d; i < (h + 1 < heads ? syh : syt - h * syh); i++)
                        if (!kfc_is_sentinel(yr[i]))
                            kfc_fail(c, "rope wrote past row %d at %d", t * heads + h, i);
                }
            kfc_split_check(c, kfc_rope_call, &k, rows, init, y, ly);
            free(x);
            free(y);
            free(init);
            free(pos);
        }
}

/* ------------------------------------------------------------------------ */
/* attention_kv                                                              */

typedef struct kfc_attn_ctx {
    kfc_attn_fn fn;
    const float *q, *kc, *vc;
    int64_t sqt, sqh, syt, syh;
    int32_t cap, hq, hkv, d, p0;
    float scale;
} kfc_attn_ctx_t;

static void kfc_attn_call(const void *ctx, float *y, int32_t r0, int32_t r1)
{
    const kfc_attn_ctx_t *k = ctx;
    k->fn(k->q, k->sqt, k->sqh, k->kc, k->vc, k->cap, y, k->syt, k->syh, r0, r1, k->hq, k->hkv,
          k->d, k->p0, k->scale);
}

/* Key layouts: random, scores rising along j (the max moves every block),
 * falling, and peaked (a large scale). */
enum { KFC_KEYS_RANDOM, KFC_KEYS_RISING, KFC_KEYS_FALLING, KFC_KEYS_PEAKED, KFC_KEYS_KINDS };

static void kfc_attn_case(kfc_t *c, kfc_any_fn fn, int32_t d, int32_t hq, int32_t hkv, int32_t toks,
                          int32_t p0, int kind)
{
    int32_t keys = p0 + toks, cap = keys + kfc_int(c, 0, 9);
    int64_t sqh = d + kfc_int(c, 0, 2), sqt = hq * sqh + kfc_int(c, 0, 3);
    int64_t syh = d + kfc_int(c, 0, 2), syt = hq * syh + kfc_int(c, 0, 3);
    int64_t lq = (toks - 1) * sqt + (hq - 1) * sqh + d, ly = toks * syt,
            lc = (int64_t)hkv * cap * d;
    int32_t rows = toks * hq, grp = hq / hkv;
    float *q = kfc_alloc(lq), *kc = kfc_alloc(lc), *vc = kfc_alloc(lc);
    float *y = kfc_alloc(ly), *init = kfc_alloc(ly);
    double *p = malloc((size_t)keys * sizeof *p), *acc = malloc((size_t)d * sizeof *acc);
    if (!p || !acc)
        exit(2);
    kfc_fill(c, q, lq, 1.0f);
    kfc_fill_nan(kc, lc); /* rows past the keys stay NaN: reading them shows */
    kfc_fill_nan(vc, lc);
    for (int32_t g = 0; g < hkv; g++)
        for (int32_t j = 0; j < keys; j++) {
            float *kr = kc + ((int64_t)g * cap + j) * d, *vr = vc + ((int64_t)g * cap + j) * d;
            kfc_fill(c, kr, d, 1.0f);
            kfc_fill(c, vr, d, 1.0f);
            if (kind == KFC_KEYS_RISING || kind == KFC_KEYS_FALLING) {
                /* along the first query of the group, growing (or shrinking) with j */
                const float *q0 = q + (g * grp) * sqh;
                float wgt = (float)(kind == KFC_KEYS_RISING ? j : keys - j) / (float)keys;
                for (int32_t i = 0; i < d; i++)
                    kr[i] = 0.2f * kr[i] + 3.0f * wgt * q0[i];
            }
        }
    float scale = 1.0f / sqrtf((float)d) * (kind == KFC_KEYS_PEAKED ? 8.0f : 1.0f);
    kfc_fill_sentinel(init, ly);
    kfc_attn_ctx_t k = {(kfc_attn_fn)fn, q, kc, vc, sqt, sqh, syt, syh, cap, hq, hkv, d, p0, scale};
    memcpy(y, init, (size_t)ly * sizeof *y);
    kfc_attn_call(&k, y, 0, rows);
    for (int32_t t = 0; t < toks; t++)
        for (int32_t h = 0; h < hq; h++) {
            /* as mica_ref_attention_kv: float64, exact softmax */
            const float *qt = q + t * sqt + h * sqh;
            const float *kh = kc + (int64_t)(h / grp) * cap * d,
                        *vh = vc + (int64_t)(h / grp) * cap * d;
            int32_t last = p0 + t;
            double mx = -INFINITY, sum = 0.0;
            for (int32_t j = 0; j <= last; j++) {
                double dot = 0.0;
                for (int32_t i = 0; i < d; i++)
                    dot += (double)qt[i] * (double)kh[(int64_t)j * d + i];
                p[j] = (double)scale * dot;
                mx = p[j] > mx ? p[j] : mx;
            }
            for (int32_t j = 0; j <= last; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            for (int32_t i = 0; i < d; i++)
                acc[i] = 0.0;
            for (int32_t j = 0; j <= last; j++)
                for (int32_t i = 0; i < d; i++)
                    acc[i] += p[j] / sum * (double)vh[(int64_t)j * d + i];
            /* f32 scores (d-long dots) and sums over last+1 keys; |v| < 1 */
            double tol = 1e-6 * (2.0 + sqrt((double)d) + sqrt((double)(last + 1)) / 4.0) *
                         (kind == KFC_KEYS_PEAKED ? 4.0 : 1.0);
            const float *yr = y + t * syt + h * syh;
            for (int32_t i = 0; i < d; i++)
                kfc_expect(c, yr[i], acc[i], tol, "attention_kv", t * hq + h, i);
            for (int32_t i = d; i < (h + 1 < hq ? syh : syt - h * syh); i++)
                if (!kfc_is_sentinel(yr[i]))
                    kfc_fail(c, "attention_kv wrote past row %d at %d", t * hq + h, i);
        }
    kfc_split_check(c, kfc_attn_call, &k, rows, init, y, ly);
    free(q);
    free(kc);
    free(vc);
    free(y);
    free(init);
    free(p);
    free(acc);
}

static void kfc_check_attention_kv(kfc_t *c, kfc_any_fn fn)
{
    static const int32_t dims[] = {1, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 48, 64, 80, 96, 128, 256};
    static const int32_t heads[][2] = {{1, 1}, {2, 1}, {4, 2}, {9, 3}, {8, 8}, {6, 1}};
    for (int di = 0; di < KFC_COUNT(dims); di++) {
        int32_t d = dims[di];
        const int32_t *hh = heads[di % KFC_COUNT(heads)];
        /* decode (one token), short and long prefill, past keys or none */
        kfc_attn_case(c, fn, d, hh[0], hh[1], 1, kfc_int(c, 0, 200), di % KFC_KEYS_KINDS);
        kfc_attn_case(c, fn, d, hh[0], hh[1], kfc_int(c, 2, 9), kfc_int(c, 0, 70),
                      (di + 1) % KFC_KEYS_KINDS);
        kfc_attn_case(c, fn, d, hh[0], hh[1], d <= 64 ? 64 : 17, di % 2 ? 0 : kfc_int(c, 1, 150),
                      (di + 2) % KFC_KEYS_KINDS);
    }
    /* the prefill shape of SmolLM2-135M with a long past: 64 queries, 9/3 heads */
    kfc_attn_case(c, fn, 64, 9, 3, 64, 700, KFC_KEYS_RANDOM);
    kfc_attn_case(c, fn, 64, 9, 3, 1, 2047, KFC_KEYS_RISING);
}

/* ------------------------------------------------------------------------ */
/* driving                                                                   */

/* Whether the running CPU has the ISA's features: the driver's answer. */
typedef int (*kfc_runs_fn)(const char *isa);

/* Checks every linked variant of `family` whose ISA runs; returns how many
 * variants it checked. Failures go to c->failures (and stderr). */
static int kfc_run_family(kfc_t *c, const char *family, kfc_runs_fn runs)
{
    int n = 0;
    for (const kfc_variant_t *v = kfc_variants; v->name; v++) {
        if (strcmp(v->family, family) != 0)
            continue;
        if (!v->fn) {
            fprintf(stderr, "kernels_float_check: %s not linked, not run\n", v->name);
            c->not_linked++;
            continue;
        }
        if (!runs(v->isa)) {
            fprintf(stderr, "kernels_float_check: %s needs a CPU feature this one lacks, not run\n",
                    v->name);
            continue;
        }
        int before = c->failures;
        c->variant = v->name;
        c->rng = UINT64_C(0x6b66310000000000) ^ (uint64_t)strlen(v->family);
        c->worst = 0.0;
        if (!strcmp(family, "rms_norm"))
            kfc_check_rms_norm(c, v->fn);
        else if (!strcmp(family, "add"))
            kfc_check_binary(c, v->fn, 0);
        else if (!strcmp(family, "mul"))
            kfc_check_binary(c, v->fn, 1);
        else if (!strcmp(family, "swiglu"))
            kfc_check_swiglu(c, v->fn);
        else if (!strcmp(family, "rope"))
            kfc_check_rope(c, v->fn);
        else if (!strcmp(family, "softmax"))
            kfc_check_softmax(c, v->fn);
        else if (!strcmp(family, "attention_kv"))
            kfc_check_attention_kv(c, v->fn);
        fprintf(stderr, "kernels_float_check: %-36s %s (worst error %.2f of tolerance)\n", v->name,
                c->failures == before ? "ok" : "FAILED", c->worst);
        n++;
    }
    return n;
}

/* Every family of this module, for every ISA of the generated list. Returns
 * the number of (family, ISA) pairs missing (each reported). */
static int kfc_missing_variants(void)
{
    int missing = 0;
    for (int f = 0; f < KFC_COUNT(kfc_families); f++)
        for (int i = 0; i < KFC_COUNT(kfc_isas); i++) {
            int found = 0;
            for (const kfc_variant_t *v = kfc_all_variants; v->name; v++)
                found += !strcmp(v->family, kfc_families[f]) && !strcmp(v->isa, kfc_isas[i]);
            if (found != 1) {
                fprintf(stderr, "kernels_float_check: %d variants of %s for %s, want 1\n", found,
                        kfc_families[f], kfc_isas[i]);
                missing++;
            }
        }
    return missing;
}

#ifndef KFC_NO_MAIN

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1UL << 1)
#endif
#ifndef HWCAP_ASIMDHP
#define HWCAP_ASIMDHP (1UL << 10)
#endif
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13)
#endif
#endif

static int kfc_cpu_runs(const char *isa)
{
    if (!strcmp(isa, "scalar"))
        return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!strcmp(isa, "avx2"))
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(isa, "avx512vnni"))
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#elif defined(__aarch64__) && defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    int neon = (hw & HWCAP_ASIMD) != 0;
    int dot = neon && (hw & HWCAP_ASIMDDP) && (hw & HWCAP_ASIMDHP);
    if (!strcmp(isa, "neon"))
        return neon;
    if (!strcmp(isa, "dotprod"))
        return dot;
    if (!strcmp(isa, "i8mm"))
        return dot && (hw2 & HWCAP2_I8MM);
#endif
    return 0;
}

int main(void)
{
    kfc_t c = {0};
    int variants = 0, missing = kfc_missing_variants();
    for (int f = 0; f < KFC_COUNT(kfc_families); f++)
        variants += kfc_run_family(&c, kfc_families[f], kfc_cpu_runs);
    printf("kernels_float_check: %d variants, %lld values checked, %d failures, %d missing, "
           "%d not linked\n",
           variants, (long long)c.checks, c.failures, missing, c.not_linked);
    return c.failures == 0 && missing == 0 && variants > 0 ? 0 : 1;
}

#endif
