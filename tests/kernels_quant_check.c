/* Checks of the quantized kernel families (codegen/kernels/fam_quant.py):
 * qgemm_u4, qgemv_u4, qgemm_i8, qgemv_i8, act_quant, rms_act_quant.
 *
 * Plain C, no Criterion: a program on its own (main below), which the
 * aarch64 stage cross-compiles with kernels_neon.c, kernels_dotprod.c and
 * kernels_i8mm.c (add -DMICA_KQ_WITH_SCALAR and kernels_scalar.c for the
 * scalar variants there) and runs under qemu; tests/test_kernels_quant.c
 * includes it with MICA_KQ_CHECK_NO_MAIN and runs the same checks.
 *
 * Every variant in kernel_list.inc of these families whose ISA is compiled
 * in and runs on this CPU is compared with plain loops written here (the
 * weights packed here from the layout's formula, the result computed in
 * double), over seeded random shapes: N below, at and above the tile, K of
 * one and of many groups, agroup and wgroup in both orders, m = 1 and
 * remainders of the row block, empty ranges, sub-ranges whose union is the
 * whole (bit-identical to the one-call result), nothing written outside
 * the range.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mica_kernels.h"

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

typedef void (*kq_fn_t)(void);
typedef void (*kq_qmm_fn)(const int8_t *xq, const float *xs, const uint8_t *wq, const uint16_t *ws,
                          const uint16_t *wm, float *y, int64_t ldy, int32_t m0, int32_t m1,
                          int32_t n0, int32_t n1, int32_t n, int32_t k, int32_t agroup,
                          int32_t wgroup);
typedef void (*kq_aq_fn)(const float *x, int64_t ldx, int8_t *xq, float *xs, int32_t m0, int32_t m1,
                         int32_t k, int32_t group);
typedef void (*kq_rms_fn)(const float *x, int64_t ldx, const float *w, float eps, float *y,
                          int64_t ldy, int32_t m0, int32_t m1, int32_t n);
typedef void (*kq_raq_fn)(const float *x, int64_t ldx, const float *w, float eps, int8_t *xq,
                          float *xs, int32_t m0, int32_t m1, int32_t k, int32_t group);

typedef struct kq_variant {
    const char *family, *name, *isa, *params;
    kq_fn_t fn;
} kq_variant_t;

/* Which ISAs' files are linked in: the host's x86 ones, or the aarch64 ones. */
#define KQ_KEEP(...) __VA_ARGS__
#define KQ_DROP(...)
#if defined(__x86_64__)
#define KQ_IF_scalar KQ_KEEP
#define KQ_IF_avx2 KQ_KEEP
#define KQ_IF_avx512vnni KQ_KEEP
#define KQ_IF_neon KQ_DROP
#define KQ_IF_dotprod KQ_DROP
#define KQ_IF_i8mm KQ_DROP
#elif defined(__aarch64__)
#ifdef MICA_KQ_WITH_SCALAR
#define KQ_IF_scalar KQ_KEEP
#else
#define KQ_IF_scalar KQ_DROP
#endif
#define KQ_IF_avx2 KQ_DROP
#define KQ_IF_avx512vnni KQ_DROP
#define KQ_IF_neon KQ_KEEP
#define KQ_IF_dotprod KQ_KEEP
#define KQ_IF_i8mm KQ_KEEP
#else
#define KQ_IF_scalar KQ_KEEP
#define KQ_IF_avx2 KQ_DROP
#define KQ_IF_avx512vnni KQ_DROP
#define KQ_IF_neon KQ_DROP
#define KQ_IF_dotprod KQ_DROP
#define KQ_IF_i8mm KQ_DROP
#endif

static const kq_variant_t kq_variants[] = {
#define MICA_KERNEL(fam, name, isa, params)                                                        \
    KQ_IF_##isa({#fam, #name, #isa, params, (kq_fn_t)name}, )
#include "kernel_list.inc"
#undef MICA_KERNEL
};
static const int kq_n_variants = (int)(sizeof kq_variants / sizeof kq_variants[0]);

#ifndef MICA_KQ_ISA_RUNS_EXTERNAL
/* Whether this CPU executes code of the ISA (the test file brings its own,
 * from runtime/target.h). */
static int kq_isa_runs(const char *isa)
{
    if (strcmp(isa, "scalar") == 0)
        return 1;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(isa, "avx512vnni") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#elif defined(__aarch64__)
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (strcmp(isa, "neon") == 0)
        return (hw & (1ul << 1)) != 0; /* HWCAP_ASIMD */
    if (strcmp(isa, "dotprod") == 0)
        return (hw & (1ul << 20)) != 0 && (hw & (1ul << 10)) != 0; /* ASIMDDP, ASIMDHP */
    if (strcmp(isa, "i8mm") == 0)
        return (hw2 & (1ul << 13)) != 0 && (hw & (1ul << 20)) != 0; /* HWCAP2_I8MM */
#endif
    return 0;
}
#else
static int kq_isa_runs(const char *isa);
#endif

/* ---- seeded random numbers (splitmix64) ---- */

typedef struct kq_rng {
    uint64_t s;
} kq_rng_t;

static uint64_t kq_next(kq_rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi] */
static int32_t kq_range(kq_rng_t *r, int32_t lo, int32_t hi)
{
    return lo + (int32_t)(kq_next(r) % (uint64_t)(hi - lo + 1));
}

/* uniform in [-1, 1) */
static float kq_float(kq_rng_t *r)
{
    return (float)((double)(kq_next(r) >> 40) / (double)(1ull << 23) - 1.0);
}

/* ---- independent half conversion (normal values, zero and subnormals) ---- */

static double kq_half(uint16_t h)
{
    const int e = (h >> 10) & 0x1f, man = h & 0x3ff;
    const double v = e == 0 ? ldexp((double)man, -24) : ldexp(1024.0 + man, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* a random normal f16 of magnitude in [2^lo, 2^(hi+1)), sign as asked
 * (sign 0: random) */
static uint16_t kq_rand_half(kq_rng_t *r, int lo, int hi, int sign)
{
    const uint16_t e = (uint16_t)(kq_range(r, lo, hi) + 15), man = (uint16_t)kq_range(r, 0, 1023);
    const int neg = sign ? sign < 0 : (int)(kq_next(r) & 1);
    return (uint16_t)((neg ? 0x8000 : 0) | (e << 10) | man);
}

/* ---- parameters of a variant ---- */

static int32_t kq_param(const char *params, const char *key)
{
    const size_t n = strlen(key);
    for (const char *p = params; p && *p;) {
        if (strncmp(p, key, n) == 0 && p[n] == '=')
            return (int32_t)atoi(p + n + 1);
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return 0;
}

static int kq_fail(const kq_variant_t *v, const char *what, long a, long b, long c, long d)
{
    fprintf(stderr, "FAIL %s: %s (%ld %ld %ld %ld)\n", v->name, what, a, b, c, d);
    return 1;
}

/* ---- quantized matmul ---- */

typedef struct kq_qmm_case {
    int32_t m, n, k, ag, wg, hp, lp, u4;
    int sym; /* a symmetric source: mins -8 s (u4) or 0 (i8), passed as wm = ws */
    int64_t ldy;
    int8_t *q;           /* [n, k] logical weight values */
    uint8_t *wq;         /* packed */
    uint16_t *ws, *wm;   /* packed [pad_n / hp][k / wg][hp] */
    double *sd, *md;     /* [n, k / wg] logical scales, mins */
    int8_t *xq;          /* [m, k] */
    float *xs;           /* [m, k / ag] */
    double *ref, *bound; /* [m, n]: expected and sum of |terms| */
} kq_qmm_case_t;

static void kq_qmm_free(kq_qmm_case_t *c)
{
    free(c->q);
    free(c->wq);
    free(c->ws);
    free(c->wm);
    free(c->sd);
    free(c->md);
    free(c->xq);
    free(c->xs);
    free(c->ref);
    free(c->bound);
}

/* Packs the logical weights by the layout's formula (ir/layout_index.h)
 * and computes the expected y in double. */
static int kq_qmm_make(kq_qmm_case_t *c, kq_rng_t *r, int zero_mins)
{
    const int32_t pad_n = (c->n + c->hp - 1) / c->hp * c->hp, nkw = c->k / c->wg,
                  nka = c->k / c->ag;
    const int64_t elems = (int64_t)pad_n * c->k;
    c->q = calloc((size_t)elems, 1);
    c->wq = calloc((size_t)elems, 1);
    c->ws = calloc((size_t)pad_n * nkw, sizeof *c->ws);
    c->wm = calloc((size_t)pad_n * nkw, sizeof *c->wm);
    c->sd = calloc((size_t)c->n * nkw, sizeof *c->sd);
    c->md = calloc((size_t)c->n * nkw, sizeof *c->md);
    c->xq = calloc((size_t)c->m * c->k, 1);
    c->xs = calloc((size_t)c->m * nka, sizeof *c->xs);
    c->ref = calloc((size_t)c->m * c->n, sizeof *c->ref);
    c->bound = calloc((size_t)c->m * c->n, sizeof *c->bound);
    if (!c->q || !c->wq || !c->ws || !c->wm || !c->sd || !c->md || !c->xq || !c->xs || !c->ref ||
        !c->bound)
        return 1;
    const int extreme = kq_range(r, 0, 3) == 0; /* every value at its bound */
    for (int32_t i = 0; i < c->n; i++)
        for (int32_t k = 0; k < c->k; k++) {
            int32_t v = c->u4 ? kq_range(r, 0, 15) : kq_range(r, -128, 127);
            if (extreme)
                v = c->u4 ? 15 : ((k & 1) ? -128 : 127);
            c->q[(int64_t)i * c->k + k] = (int8_t)v;
        }
    for (int32_t i = 0; i < c->n; i++)
        for (int32_t j = 0; j < nkw; j++) {
            const uint16_t s = kq_rand_half(r, -9, -3, 1);
            uint16_t mn = zero_mins ? 0 : kq_rand_half(r, -8, -1, c->u4 ? -1 : 0);
            if (c->sym) /* u4: -8 s, the exponent 3 up and the sign set (s is normal, < 2^-2) */
                mn = c->u4 ? (uint16_t)(0x8000 | (s + (3 << 10))) : 0;
            const int64_t at = ((int64_t)(i / c->hp) * nkw + j) * c->hp + i % c->hp;
            c->ws[at] = s;
            c->wm[at] = mn;
            c->sd[(int64_t)i * nkw + j] = kq_half(s);
            c->md[(int64_t)i * nkw + j] = kq_half(mn);
        }
    /* P[n/hp][k/lp][n%hp][k%lp]; u4: tile element e in byte e % half,
     * high nibble when e >= half */
    const int32_t tile = c->hp * c->lp, half = tile / 2;
    for (int32_t i = 0; i < c->n; i++)
        for (int32_t k = 0; k < c->k; k++) {
            const int64_t t = (int64_t)(i / c->hp) * (c->k / c->lp) + k / c->lp;
            const int32_t e = (i % c->hp) * c->lp + k % c->lp;
            const uint8_t v = (uint8_t)c->q[(int64_t)i * c->k + k];
            if (c->u4)
                c->wq[t * half + e % half] |= (uint8_t)(e >= half ? v << 4 : v);
            else
                c->wq[t * tile + e] = v;
        }
    for (int64_t i = 0; i < (int64_t)c->m * c->k; i++)
        c->xq[i] = (int8_t)(extreme ? ((i % 3) ? 127 : -127) : kq_range(r, -127, 127));
    for (int64_t i = 0; i < (int64_t)c->m * nka; i++)
        c->xs[i] = kq_range(r, 0, 9) == 0
                       ? 0.0f
                       : (float)ldexp(0.5 + 0.5 * fabs(kq_float(r)), -kq_range(r, 2, 8));
    const int32_t b = c->ag < c->wg ? c->ag : c->wg;
    for (int32_t m = 0; m < c->m; m++)
        for (int32_t i = 0; i < c->n; i++) {
            double acc = 0.0, bnd = 0.0;
            for (int32_t k0 = 0; k0 < c->k; k0 += b) {
                int64_t dot = 0, sum = 0;
                for (int32_t k = k0; k < k0 + b; k++) {
                    dot += (int64_t)c->q[(int64_t)i * c->k + k] * c->xq[(int64_t)m * c->k + k];
                    sum += c->xq[(int64_t)m * c->k + k];
                }
                const double sa = c->xs[(int64_t)m * nka + k0 / c->ag];
                const double s = c->sd[(int64_t)i * nkw + k0 / c->wg];
                const double mn = c->md[(int64_t)i * nkw + k0 / c->wg];
                acc += sa * (s * (double)dot + mn * (double)sum);
                bnd += fabs(sa) * (fabs(s * (double)dot) + fabs(mn * (double)sum));
            }
            c->ref[(int64_t)m * c->n + i] = acc;
            c->bound[(int64_t)m * c->n + i] = bnd;
        }
    return 0;
}

/* Runs fn over [m0, m1) x [n0, n1) in random pieces (n cut at multiples of
 * hp) into y (rows of ldy floats). */
static void kq_qmm_pieces(kq_qmm_fn fn, const kq_qmm_case_t *c, kq_rng_t *r, float *y, int32_t m0,
                          int32_t m1, int32_t n0, int32_t n1)
{
    int32_t a = m0;
    while (a < m1) {
        const int32_t b = a + kq_range(r, 1, m1 - a);
        int32_t p = n0;
        while (p < n1) {
            const int32_t tiles = (n1 - p + c->hp - 1) / c->hp;
            int32_t q = p + kq_range(r, 1, tiles) * c->hp;
            if (q > n1)
                q = n1;
            fn(c->xq, c->xs, c->wq, c->ws, c->sym ? c->ws : c->wm, y, c->ldy, a, b, p, q, c->n, c->k, c->ag, c->wg);
            p = q;
        }
        a = b;
    }
}

static int kq_check_qmm_case(const kq_variant_t *v, kq_qmm_case_t *c, kq_rng_t *r)
{
    kq_qmm_fn fn = (kq_qmm_fn)v->fn;
    const int64_t ny = (int64_t)c->m * c->ldy;
    float *y = malloc((size_t)ny * sizeof *y), *y2 = malloc((size_t)ny * sizeof *y2);
    int bad = 0;
    if (!y || !y2) {
        free(y);
        free(y2);
        return kq_fail(v, "out of memory", 0, 0, 0, 0);
    }
    const float sentinel = 12345.5f;
    for (int64_t i = 0; i < ny; i++)
        y[i] = y2[i] = sentinel;
    /* empty ranges write nothing */
    fn(c->xq, c->xs, c->wq, c->ws, c->sym ? c->ws : c->wm, y, c->ldy, 0, 0, 0, c->n, c->n, c->k, c->ag, c->wg);
    fn(c->xq, c->xs, c->wq, c->ws, c->sym ? c->ws : c->wm, y, c->ldy, 0, c->m, 0, 0, c->n, c->k, c->ag, c->wg);
    /* the whole range in one call */
    fn(c->xq, c->xs, c->wq, c->ws, c->sym ? c->ws : c->wm, y, c->ldy, 0, c->m, 0, c->n, c->n, c->k, c->ag, c->wg);
    const int32_t b = c->ag < c->wg ? c->ag : c->wg;
    const double tol = ldexp((double)(c->k / b + 8), -22);
    for (int32_t m = 0; m < c->m && bad < 4; m++)
        for (int64_t j = 0; j < c->ldy && bad < 4; j++) {
            const float got = y[(int64_t)m * c->ldy + j];
            if (j >= c->n) {
                if (got != sentinel)
                    bad += kq_fail(v, "wrote past n1 (m, j, n, k)", m, (long)j, c->n, c->k);
                continue;
            }
            const double want = c->ref[(int64_t)m * c->n + j];
            const double lim = tol * c->bound[(int64_t)m * c->n + j] + 1e-30;
            if (!(fabs((double)got - want) <= lim)) {
                fprintf(stderr, "  got %.9g want %.9g (lim %.3g) ag %d wg %d m %d\n", got, want,
                        lim, c->ag, c->wg, c->m);
                bad += kq_fail(v, "value (m, n, N, K)", m, (long)j, c->n, c->k);
            }
        }
    /* random pieces, and a sub-range of both dims, bit-identical */
    kq_qmm_pieces(fn, c, r, y2, 0, c->m, 0, c->n);
    if (memcmp(y, y2, (size_t)ny * sizeof *y) != 0)
        bad += kq_fail(v, "pieces differ from one call (M, N, K, ag)", c->m, c->n, c->k, c->ag);
    for (int64_t i = 0; i < ny; i++)
        y2[i] = sentinel;
    const int32_t tiles = (c->n + c->hp - 1) / c->hp;
    const int32_t sm0 = kq_range(r, 0, c->m - 1), sm1 = kq_range(r, sm0 + 1, c->m);
    const int32_t st0 = kq_range(r, 0, tiles - 1), st1 = kq_range(r, st0 + 1, tiles);
    const int32_t sn0 = st0 * c->hp, sn1 = st1 * c->hp < c->n ? st1 * c->hp : c->n;
    kq_qmm_pieces(fn, c, r, y2, sm0, sm1, sn0, sn1);
    for (int32_t m = 0; m < c->m; m++)
        for (int64_t j = 0; j < c->ldy; j++) {
            const int in = m >= sm0 && m < sm1 && j >= sn0 && j < sn1;
            const float got = y2[(int64_t)m * c->ldy + j],
                        want = in ? y[(int64_t)m * c->ldy + j] : sentinel;
            if (memcmp(&got, &want, sizeof got) != 0 && bad < 8)
                bad += kq_fail(v, "sub-range (m, j, range m0, n0)", m, (long)j, sm0, sn0);
        }
    free(y);
    free(y2);
    return bad;
}

/* Groups that are multiples of lp: lp, 2 lp, 8, 16, ..., 128. */
static int32_t kq_pick_group(kq_rng_t *r, int32_t lp)
{
    static const int32_t g[] = {8, 16, 32, 32, 32, 64, 128};
    const int32_t pick = kq_range(r, 0, 8);
    int32_t v = pick == 7 ? lp : pick == 8 ? 2 * lp : g[pick];
    return v < lp ? lp : v;
}

static int kq_check_qmm(const kq_variant_t *v, int u4, uint64_t seed, int cases)
{
    const int32_t hp = kq_param(v->params, "hp"), lp = kq_param(v->params, "lp");
    const int32_t ep = kq_param(v->params, "ep") > 0 ? kq_param(v->params, "ep") : 1;
    if (hp < 1 || lp < 1)
        return kq_fail(v, "params lack hp/lp", hp, lp, 0, 0);
    kq_rng_t r = {seed};
    int bad = 0;
    for (int it = 0; it < cases && !bad; it++) {
        kq_qmm_case_t c;
        memset(&c, 0, sizeof c);
        c.hp = hp;
        c.lp = lp;
        c.u4 = u4;
        c.ag = kq_pick_group(&r, lp);
        c.wg = kq_pick_group(&r, lp);
        if (c.ag % c.wg != 0 && c.wg % c.ag != 0)
            c.wg = c.ag;
        const int32_t big = c.ag > c.wg ? c.ag : c.wg;
        /* N: below, at, above one tile and several tiles */
        static const int32_t nmul[] = {0, 1, 1, 2, 3};
        const int32_t pick = kq_range(&r, 0, 4);
        c.n = pick == 0 ? kq_range(&r, 1, hp) : nmul[pick] * hp + kq_range(&r, -1, 1);
        if (c.n < 1)
            c.n = 1;
        int32_t kmax = 1536 / big;
        if (kmax < 1)
            kmax = 1;
        if (kmax > 12)
            kmax = 12;
        c.k = big * kq_range(&r, 1, kmax);
        c.m = it % 4 == 0 ? 1 : kq_range(&r, 1, 3 * ep + 2);
        /* once, a K of more blocks of 8 than the kernels' stack buffer of
         * mins factors ("cm" floats) holds for one row (the inline path),
         * on few rows and columns */
        const int32_t cmcap = kq_param(v->params, "cm");
        if (it == 7 && cmcap > 0) {
            c.ag = c.wg = 8;
            c.k = 8 * (cmcap + 1);
            c.m = kq_range(&r, 1, ep + 1);
            c.n = kq_range(&r, 1, hp + 1);
        }
        c.sym = kq_range(&r, 0, 2) == 0;
        c.ldy = c.n + kq_range(&r, 0, 5);
        if (kq_qmm_make(&c, &r, !u4 && (c.sym || kq_range(&r, 0, 1)))) {
            kq_qmm_free(&c);
            return kq_fail(v, "out of memory", 0, 0, 0, 0);
        }
        bad += kq_check_qmm_case(v, &c, &r);
        kq_qmm_free(&c);
    }
    return bad;
}

/* ---- activation quantization ---- */

/* The expected scale and value, in double as mica_ref_act_scale/act_quant. */
static float kq_ref_scale(const double *x, int32_t group)
{
    double mx = 0.0;
    for (int32_t i = 0; i < group; i++)
        if (fabs(x[i]) > mx)
            mx = fabs(x[i]);
    return (float)(mx / 127.0);
}

static double kq_ref_quant(double x, float s)
{
    double v = s != 0.0f ? round(x / (double)s) : 0.0;
    if (isnan(v))
        v = 0.0;
    return v < -127.0 ? -127.0 : v > 127.0 ? 127.0 : v;
}

/* A row of k with the awkward cases: zero groups, exact ties (a group whose
 * max is 127 has scale 1, so h + 0.5 is a tie), NaN, infinity, subnormal
 * groups, very large values, values an ulp from a tie of an awkward scale. */
static void kq_fill_row(kq_rng_t *r, float *x, int32_t k, int32_t group, int specials)
{
    for (int32_t j = 0; j < k / group; j++) {
        float *g = x + (int64_t)j * group;
        const int kind = specials ? kq_range(r, 0, 9) : 0;
        const float mag = (float)ldexp(1.0, kq_range(r, -6, 6));
        for (int32_t i = 0; i < group; i++)
            g[i] = kq_float(r) * mag;
        if (kind == 1) {
            memset(g, 0, (size_t)group * sizeof *g);
        } else if (kind == 2) {
            for (int32_t i = 0; i < group; i++)
                g[i] = (float)kq_range(r, -127, 126) + 0.5f;
            g[kq_range(r, 0, group - 1)] = 127.0f;
        } else if (kind == 3) {
            g[kq_range(r, 0, group - 1)] = NAN;
        } else if (kind == 4) {
            g[kq_range(r, 0, group - 1)] = kq_range(r, 0, 1) ? INFINITY : -INFINITY;
        } else if (kind == 5) {
            for (int32_t i = 0; i < group; i++)
                g[i] = (float)ldexp(kq_float(r), -140);
        } else if (kind == 6) {
            for (int32_t i = 0; i < group; i++)
                g[i] = kq_float(r) * 1e30f;
        } else if (kind == 7 || kind == 8) {
            /* within an ulp of the half-integers of an awkward scale: the
             * max fixes s = f32(max / 127), the rest sit at f32((n + 1/2) s)
             * nudged one ulp either way or not at all (8: s subnormal) */
            const int im = kq_range(r, 0, group - 1);
            g[im] = (float)(127.0 * (0.5 + 0.5 * fabs((double)kq_float(r)))) *
                    (kind == 7 ? mag : 0x1p-140f);
            const float sc = (float)((double)g[im] / 127.0);
            for (int32_t i = 0; i < group; i++) {
                if (i == im)
                    continue;
                float t = (float)(((double)kq_range(r, -127, 126) + 0.5) * (double)sc);
                const int nudge = kq_range(r, 0, 2);
                if (nudge)
                    t = nextafterf(t, nudge == 1 ? INFINITY : -INFINITY);
                g[i] = fabsf(t) <= g[im] ? t : g[im];
            }
        }
    }
}

static int kq_check_act_quant(const kq_variant_t *v, uint64_t seed, int cases)
{
    kq_aq_fn fn = (kq_aq_fn)v->fn;
    kq_rng_t r = {seed};
    int bad = 0;
    for (int it = 0; it < cases && !bad; it++) {
        const int32_t group = kq_pick_group(&r, kq_range(&r, 0, 1) ? 4 : 8);
        const int32_t k = group * kq_range(&r, 1, 1536 / group < 20 ? 1536 / group : 20);
        const int32_t m = it % 3 == 0 ? 1 : kq_range(&r, 1, 9);
        const int64_t ldx = k + kq_range(&r, 0, 7);
        const int32_t ng = k / group;
        float *x = malloc((size_t)(m * ldx) * sizeof *x),
              *xs = malloc((size_t)(m * ng) * sizeof *xs);
        float *xs2 = malloc((size_t)(m * ng) * sizeof *xs2);
        double *row = malloc((size_t)k * sizeof *row);
        int8_t *xq = malloc((size_t)(m * k)), *xq2 = malloc((size_t)(m * k));
        if (!x || !xs || !xs2 || !row || !xq || !xq2) {
            bad += kq_fail(v, "out of memory", 0, 0, 0, 0);
        } else {
            for (int32_t i = 0; i < m; i++)
                kq_fill_row(&r, x + i * ldx, k, group, 1);
            memset(xq, 0x55, (size_t)(m * k));
            memcpy(xq2, xq, (size_t)(m * k));
            for (int64_t i = 0; i < (int64_t)m * ng; i++)
                xs[i] = xs2[i] = -1.0f;
            fn(x, ldx, xq, xs, 0, 0, k, group);
            if (xq[0] != 0x55 || xs[0] != -1.0f)
                bad += kq_fail(v, "empty range wrote", k, group, 0, 0);
            fn(x, ldx, xq, xs, 0, m, k, group);
            for (int32_t i = 0; i < m && !bad; i++) {
                for (int32_t e = 0; e < k; e++)
                    row[e] = x[i * ldx + e];
                for (int32_t j = 0; j < ng && !bad; j++) {
                    const float s = kq_ref_scale(row + j * group, group), got = xs[i * ng + j];
                    if (memcmp(&s, &got, sizeof s) != 0)
                        bad += kq_fail(v, "scale (row, group, k, g)", i, j, k, group);
                    for (int32_t e = j * group; e < (j + 1) * group && !bad; e++)
                        if ((double)xq[i * k + e] != kq_ref_quant(row[e], s)) {
                            fprintf(stderr, "  x %.9g s %.9g got %d\n", row[e], s, xq[i * k + e]);
                            bad += kq_fail(v, "value (row, elem, k, g)", i, e, k, group);
                        }
                }
            }
            for (int32_t a = 0; a < m;) {
                const int32_t b = a + kq_range(&r, 1, m - a);
                fn(x, ldx, xq2, xs2, a, b, k, group);
                a = b;
            }
            if (memcmp(xq, xq2, (size_t)(m * k)) || memcmp(xs, xs2, (size_t)(m * ng) * sizeof *xs))
                bad += kq_fail(v, "pieces differ", m, k, group, 0);
        }
        free(x);
        free(xs);
        free(xs2);
        free(row);
        free(xq);
        free(xq2);
    }
    return bad;
}

/* The variant of family on isa, or NULL. */
static const kq_variant_t *kq_find(const char *family, const char *isa)
{
    for (int i = 0; i < kq_n_variants; i++)
        if (strcmp(kq_variants[i].family, family) == 0 && strcmp(kq_variants[i].isa, isa) == 0)
            return &kq_variants[i];
    return NULL;
}

/* rms_norm then act_quant: the scales within f32 rounding of the double
 * normalisation (the kernel's sum of squares is f32), every value within
 * half a step (plus that rounding) of the normalised value over the
 * kernel's scale. */
static int kq_check_rms_act_quant(const kq_variant_t *v, uint64_t seed, int cases)
{
    kq_raq_fn fn = (kq_raq_fn)v->fn;
    kq_rng_t r = {seed};
    int bad = 0;
    for (int it = 0; it < cases && !bad; it++) {
        const int32_t group = kq_pick_group(&r, kq_range(&r, 0, 1) ? 4 : 8);
        const int32_t k = group * kq_range(&r, 1, 2048 / group < 24 ? 2048 / group : 24) +
                          (kq_range(&r, 0, 1) ? 0 : 0);
        const int32_t m = it % 3 == 0 ? 1 : kq_range(&r, 1, 9);
        const int64_t ldx = k + kq_range(&r, 0, 7);
        const int32_t ng = k / group;
        const float eps = kq_range(&r, 0, 1) ? 1e-5f : 1e-6f;
        float *x = malloc((size_t)(m * ldx) * sizeof *x), *w = malloc((size_t)k * sizeof *w);
        float *xs = malloc((size_t)(m * ng) * sizeof *xs),
              *xs2 = malloc((size_t)(m * ng) * sizeof *xs2);
        double *row = malloc((size_t)k * sizeof *row);
        int8_t *xq = malloc((size_t)(m * k)), *xq2 = malloc((size_t)(m * k));
        if (!x || !w || !xs || !xs2 || !row || !xq || !xq2) {
            bad += kq_fail(v, "out of memory", 0, 0, 0, 0);
        } else {
            for (int32_t i = 0; i < m; i++)
                kq_fill_row(&r, x + i * ldx, k, group, 0);
            for (int32_t e = 0; e < k; e++)
                w[e] = kq_range(&r, 0, 15) == 0 ? 0.0f : kq_float(&r) * 2.0f;
            fn(x, ldx, w, eps, xq, xs, 0, m, k, group);
            const double tol = 4.0 * ldexp((double)(k / 8 + 8), -24);
            for (int32_t i = 0; i < m && !bad; i++) {
                double ss = 0.0;
                for (int32_t e = 0; e < k; e++)
                    ss += (double)x[i * ldx + e] * (double)x[i * ldx + e];
                const double inv = 1.0 / sqrt(ss / (double)k + (double)eps);
                for (int32_t e = 0; e < k; e++)
                    row[e] = (double)x[i * ldx + e] * inv * (double)w[e];
                for (int32_t j = 0; j < ng && !bad; j++) {
                    double mx = 0.0;
                    for (int32_t e = j * group; e < (j + 1) * group; e++)
                        mx = fabs(row[e]) > mx ? fabs(row[e]) : mx;
                    const double s = xs[i * ng + j];
                    if (!(fabs(s - mx / 127.0) <= tol * mx / 127.0 + 1e-38))
                        bad += kq_fail(v, "scale (row, group, k, g)", i, j, k, group);
                    for (int32_t e = j * group; e < (j + 1) * group && !bad; e++) {
                        const double want = s != 0.0 ? row[e] / s : 0.0;
                        const double lo = want < -127.0 ? -127.0 : want > 127.0 ? 127.0 : want;
                        if (!(fabs((double)xq[i * k + e] - lo) <= 0.5 + 127.0 * tol + 1e-9)) {
                            fprintf(stderr, "  want %.9g got %d\n", lo, xq[i * k + e]);
                            bad += kq_fail(v, "value (row, elem, k, g)", i, e, k, group);
                        }
                    }
                }
            }
            for (int32_t a = 0; a < m;) {
                const int32_t b = a + kq_range(&r, 1, m - a);
                fn(x, ldx, w, eps, xq2, xs2, a, b, k, group);
                a = b;
            }
            if (memcmp(xq, xq2, (size_t)(m * k)) || memcmp(xs, xs2, (size_t)(m * ng) * sizeof *xs))
                bad += kq_fail(v, "pieces differ", m, k, group, 0);
            /* bit-identical to this ISA's rms_norm followed by its act_quant,
             * where the float families are built in */
            const kq_variant_t *vn = kq_find("rms_norm", v->isa),
                               *va = kq_find("act_quant", v->isa);
            float *yn = vn && va ? malloc((size_t)(m * k) * sizeof *yn) : NULL;
            if (yn) {
                ((kq_rms_fn)vn->fn)(x, ldx, w, eps, yn, k, 0, m, k);
                ((kq_aq_fn)va->fn)(yn, k, xq2, xs2, 0, m, k, group);
                if (memcmp(xq, xq2, (size_t)(m * k)) ||
                    memcmp(xs, xs2, (size_t)(m * ng) * sizeof *xs))
                    bad += kq_fail(v, "differs from rms_norm + act_quant", m, k, group, 0);
                free(yn);
            }
        }
        free(x);
        free(w);
        free(xs);
        free(xs2);
        free(row);
        free(xq);
        free(xq2);
    }
    return bad;
}

/* ---- driver ---- */

/* Checks every runnable variant of family; *out_ran counts them. Returns
 * the number of variants that failed. */
static int kq_check_family(const char *family, int cases, int *out_ran)
{
    int bad = 0, ran = 0;
    for (int i = 0; i < kq_n_variants; i++) {
        const kq_variant_t *v = &kq_variants[i];
        if (strcmp(v->family, family) != 0 || !kq_isa_runs(v->isa))
            continue;
        const uint64_t seed = 0x6b71u + (uint64_t)i * 7919u;
        int b = 0;
        if (strcmp(family, "qgemm_u4") == 0 || strcmp(family, "qgemv_u4") == 0)
            b = kq_check_qmm(v, 1, seed, cases);
        else if (strcmp(family, "qgemm_i8") == 0 || strcmp(family, "qgemv_i8") == 0)
            b = kq_check_qmm(v, 0, seed, cases);
        else if (strcmp(family, "act_quant") == 0)
            b = kq_check_act_quant(v, seed, cases);
        else if (strcmp(family, "rms_act_quant") == 0)
            b = kq_check_rms_act_quant(v, seed, cases);
        else
            b = kq_fail(v, "unknown family", 0, 0, 0, 0);
        ran++;
        bad += b != 0;
        fprintf(stderr, "%s %s\n", b ? "FAIL" : "ok  ", v->name);
    }
    *out_ran = ran;
    return bad;
}

static const char *const kq_families[] = {"qgemm_u4", "qgemv_u4",  "qgemm_i8",
                                          "qgemv_i8", "act_quant", "rms_act_quant"};

#ifndef MICA_KQ_CHECK_NO_MAIN
int main(int argc, char **argv)
{
    const int cases = argc > 1 ? atoi(argv[1]) : 60;
    int bad = 0, ran = 0;
    for (size_t f = 0; f < sizeof kq_families / sizeof kq_families[0]; f++) {
        int n = 0;
        bad += kq_check_family(kq_families[f], cases, &n);
        if (n == 0) {
            fprintf(stderr, "FAIL %s: no variant runs here\n", kq_families[f]);
            bad++;
        }
        ran += n;
    }
    printf("%d passed, %d failed\n", ran - bad > 0 ? ran - bad : 0, bad);
    return bad ? 1 : 0;
}
#endif
