/* The data and float-matmul kernel families (codegen/kernels/fam_data.py),
 * every variant of this machine's ISAs from the generated kernel list.
 *
 * The checks themselves are those of tests/kernels_data_check.c (the plain
 * C program the aarch64 stage runs under qemu), included here: embedding
 * rows encoded from chosen values, matmuls against double loops over an
 * independently packed weight, copies and stores against index loops, each
 * over seeded random shapes with the edges, sub-ranges whose union is the
 * whole and empty ranges. On top of them, two oracles of the project:
 * ir/quant.c (mica_dequantize_row) for the embedding of random blocks, and
 * ir/layout_index.c (mica_layout_offset) for the packing the wgemm check
 * builds. Variants whose ISA this CPU lacks (runtime/target.h) are
 * skipped and counted in the log.
 */
#define KD_NO_MAIN
#include "kernels_data_check.c"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "layout_index.h"
#include "quant.h"
#include "target.h"
#include "test_support.h"

/* Features each kernel ISA needs (codegen/kernels/isa.py), by the names of
 * runtime/target.h. */
static const struct {
    const char *isa;
    const char *features[7];
} kd_isa_features[] = {
    {"scalar", {NULL}},
    {"avx2", {"avx2", "fma", "f16c", NULL}},
    {"avx512vnni", {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni", NULL}},
    {"neon", {"neon", NULL}},
    {"dotprod", {"neon", "dotprod", "fp16", NULL}},
    {"i8mm", {"neon", "dotprod", "i8mm", "fp16", NULL}},
};

static int kd_isa_runs(const char *isa)
{
    mica_target_t host;
    mica_diag_t d = {0};
    if (mica_target_detect_host(&host, &d) != MICA_OK)
        return !strcmp(isa, "scalar");
    for (size_t i = 0; i < sizeof kd_isa_features / sizeof kd_isa_features[0]; i++) {
        if (strcmp(kd_isa_features[i].isa, isa) != 0)
            continue;
        for (const char *const *f = kd_isa_features[i].features; *f; f++) {
            int present = 0;
            for (int b = 0; b < MICA_TARGET_FEATURE_COUNT; b++) {
                const char *name = mica_target_feature_name((mica_target_feature_t)b);
                if (name && !strcmp(name, *f))
                    present = (host.features & MICA_TARGET_FEATURE_BIT(b)) != 0;
            }
            if (!present)
                return 0;
        }
        return 1;
    }
    return 0;
}

static void kd_run_family(const char *family)
{
    int run = 0, skipped = 0;
    const int fails = kd_check_family(family, &run, &skipped);
    cr_log_info("%s: %d variants checked, %d skipped (ISA absent on this CPU)", family, run,
                skipped);
    cr_expect_gt(run, 0, "no variant of %s runs here", family);
    cr_expect_eq(fails, 0, "%s: %d failed checks (see stderr)", family, fails);
}

/* ------------------------------------------------------------------------ */
/* The families, through the shared checks                                   */

Test(kernels_data, embedding_f32) { kd_run_family("embedding_f32"); }
Test(kernels_data, embedding_f16) { kd_run_family("embedding_f16"); }
Test(kernels_data, embedding_bf16) { kd_run_family("embedding_bf16"); }
Test(kernels_data, embedding_q8_0) { kd_run_family("embedding_q8_0"); }
Test(kernels_data, embedding_q4_0) { kd_run_family("embedding_q4_0"); }
Test(kernels_data, embedding_q4_1) { kd_run_family("embedding_q4_1"); }
Test(kernels_data, embedding_q5_0) { kd_run_family("embedding_q5_0"); }
Test(kernels_data, embedding_q5_1) { kd_run_family("embedding_q5_1"); }
Test(kernels_data, embedding_q4_k) { kd_run_family("embedding_q4_k"); }
Test(kernels_data, embedding_q6_k) { kd_run_family("embedding_q6_k"); }
Test(kernels_data, copy) { kd_run_family("copy"); }
Test(kernels_data, kv_store) { kd_run_family("kv_store"); }
Test(kernels_data, sgemm_f32) { kd_run_family("sgemm_f32"); }
Test(kernels_data, sgemm_f16) { kd_run_family("sgemm_f16"); }

/* Every packed weight the wgemm check builds, read back through the
 * project's index function, holds the logical values. */
static void kd_layout_check(kd_tally_t *t, int u4, int32_t hp, int32_t lp, int32_t N, int32_t K,
                            const uint8_t *wq, const uint8_t *q)
{
    mica_type_t ty;
    mica_diag_t d = {0};
    if (mica_layout_tiled_type(u4 ? MICA_DTYPE_U4 : MICA_DTYPE_I8, N, K, 0, hp, lp, &ty, &d) !=
        MICA_OK) {
        kd_fail(t, "layout: %s", d.msg);
        return;
    }
    for (int32_t n = 0; n < N; n++)
        for (int32_t k = 0; k < K; k++) {
            int32_t shift;
            const int64_t at = mica_layout_offset(&ty, n, k, &shift);
            const unsigned v = u4 ? (wq[at] >> shift) & 15u : wq[at];
            if (v != q[(int64_t)n * K + k]) {
                kd_fail(t, "layout: packed (%d, %d) of [%d, %d] tile %dx%d reads %u, is %u", n, k,
                        N, K, hp, lp, v, q[(int64_t)n * K + k]);
                return;
            }
        }
}

Test(kernels_data, wgemm_u4)
{
    kd_layout_hook = kd_layout_check;
    kd_run_family("wgemm_u4");
}

Test(kernels_data, wgemm_i8)
{
    kd_layout_hook = kd_layout_check;
    kd_run_family("wgemm_i8");
}

/* ------------------------------------------------------------------------ */
/* Embedding against ir/quant.c                                              */

/* Random block bytes for dtype t whose f16 / f32 fields are finite (NaN
 * payloads are not part of the contract). */
static void kd_random_block(mica_dtype_t t, mica_test_rng_t *r, uint8_t *b, int64_t bb)
{
    for (int64_t i = 0; i < bb; i++)
        b[i] = (uint8_t)mica_test_rng_next(r);
    int f16_at[2] = {-1, -1};
    switch (t) {
    case MICA_DTYPE_F32: {
        const float v = mica_test_rng_float(r) * 1e3f;
        memcpy(b, &v, 4);
        return;
    }
    case MICA_DTYPE_F16:
        if (((b[1] >> 2) & 31) == 31)
            b[1] ^= 0x40; /* exponent 31 (inf/nan) becomes 15 */
        return;
    case MICA_DTYPE_BF16:
        if ((((b[1] & 0x7f) << 1) | (b[0] >> 7)) == 0xff)
            b[1] ^= 0x40;
        return;
    case MICA_DTYPE_Q8_0:
    case MICA_DTYPE_Q4_0:
    case MICA_DTYPE_Q5_0:
        f16_at[0] = 0;
        break;
    case MICA_DTYPE_Q4_1:
    case MICA_DTYPE_Q5_1:
    case MICA_DTYPE_Q4_K:
        f16_at[0] = 0;
        f16_at[1] = 2;
        break;
    case MICA_DTYPE_Q6_K:
        f16_at[0] = 208;
        break;
    default:
        return;
    }
    for (int i = 0; i < 2; i++)
        if (f16_at[i] >= 0 && ((b[f16_at[i] + 1] >> 2) & 31) == 31)
            b[f16_at[i] + 1] ^= 0x40;
}

Test(kernels_data, embedding_matches_quant_c)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 0x716b6632);
    int checked = 0;
    for (const kd_variant_t *v = kd_variants; v->family; v++) {
        if (strncmp(v->family, "embedding_", 10) != 0 || !kd_isa_runs(v->isa))
            continue;
        const char *tn = v->family + 10;
        const mica_dtype_t t = mica_dtype_from_name(tn, strlen(tn));
        cr_assert_neq(t, MICA_DTYPE_COUNT, "%s: no dtype %s", v->name, tn);
        const int64_t be = mica_dtype_block_elems(t), bb = mica_dtype_block_bytes(t);
        cr_expect_eq(kd_param(v->params, "block"), be, "%s: params %s", v->name, v->params);
        cr_expect_eq(kd_param(v->params, "bytes"), bb, "%s: params %s", v->name, v->params);
        const kd_embedding_fn fn = (kd_embedding_fn)v->fn;
        for (int trial = 0; trial < 20; trial++) {
            const int32_t blocks = (int32_t)mica_test_rng_range(&r, 1, be == 1 ? 300 : 9);
            const int32_t d = (int32_t)(blocks * be), rows = 5, T = 7;
            const int64_t row_bytes = mica_dtype_row_bytes(t, d);
            uint8_t *table = malloc((size_t)(rows * row_bytes));
            float *y = malloc(sizeof(float) * (size_t)(T * d));
            float *want = malloc(sizeof(float) * (size_t)d);
            cr_assert(table && y && want);
            for (int64_t i = 0; i < rows * (row_bytes / bb); i++)
                kd_random_block(t, &r, table + i * bb, bb);
            int32_t ids[7];
            for (int m = 0; m < T; m++)
                ids[m] = (int32_t)mica_test_rng_range(&r, 0, rows - 1);
            fn(table, row_bytes, ids, y, d, 0, T, d);
            for (int m = 0; m < T; m++) {
                mica_diag_t dg = {0};
                cr_assert_eq(mica_dequantize_row(t, table + ids[m] * row_bytes, want, d, &dg),
                             MICA_OK, "%s", dg.msg);
                for (int32_t i = 0; i < d; i++)
                    cr_assert(kd_same_bits(y[m * d + i], want[i]),
                              "%s: row %d elem %d: %.9g, quant.c %.9g", v->name, m, i,
                              (double)y[m * d + i], (double)want[i]);
            }
            free(table);
            free(y);
            free(want);
        }
        checked++;
    }
    cr_expect_gt(checked, 0);
}

/* Every half but the NaNs, through every embedding_f16 variant. */
Test(kernels_data, embedding_f16_every_half)
{
    const int32_t d = 0x10000 - 2 * 1023; /* 2 x 1023 NaN patterns left out */
    uint8_t *row = malloc((size_t)d * 2);
    float *y = malloc(sizeof(float) * (size_t)d), *want = malloc(sizeof(float) * (size_t)d);
    cr_assert(row && y && want);
    int32_t i = 0;
    for (uint32_t h = 0; h < 0x10000; h++)
        if (((h >> 10) & 31) != 31 || (h & 1023) == 0)
            kd_put_u16(row + 2 * i++, (uint16_t)h);
    cr_assert_eq(i, d);
    mica_diag_t dg = {0};
    cr_assert_eq(mica_dequantize_row(MICA_DTYPE_F16, row, want, d, &dg), MICA_OK);
    int checked = 0;
    for (const kd_variant_t *v = kd_variants; v->family; v++) {
        if (strcmp(v->family, "embedding_f16") != 0 || !kd_isa_runs(v->isa))
            continue;
        const int32_t id = 0;
        ((kd_embedding_fn)v->fn)(row, 2 * d, &id, y, d, 0, 1, d);
        for (int32_t j = 0; j < d; j++)
            cr_assert(kd_same_bits(y[j], want[j]), "%s: half 0x%04x gives %.9g, quant.c %.9g",
                      v->name, row[2 * j] | row[2 * j + 1] << 8, (double)y[j], (double)want[j]);
        checked++;
    }
    cr_expect_gt(checked, 0);
    free(row);
    free(y);
    free(want);
}
