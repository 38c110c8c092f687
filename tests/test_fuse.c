/* The fuse pass (passes/fuse.h).
 *
 * Oracles: the same static program without the pass (fold-regions only)
 * and the exact float64 logits of ../shared/golden; the model file's own
 * tensor bytes for the merged weight; plain loops for the swiglu kernel;
 * the model's config for how many fusions a layer must get; hand-written
 * graphs whose fusions are illegal. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse.h"
#include "passes.h"
#include "program.h"
#include "quant.h"
#include "ref.h"
#include "ref_program.h"
#include "rewrite.h"
#include "test_model.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* The program of `file` run through the pipeline up to `after`. */
static mica_program_t *program_open(const mica_gguf_t *f, const mica_model_config_t *cfg,
                                    const char *after)
{
    mica_diag_t d = {0};
    mica_program_t *p = NULL;
    cr_assert_eq(mica_program_build(f, cfg, 5, 40, &p, &d), MICA_OK, "%s", d.msg);
    mica_pass_ctx_t ctx;
    cr_assert_eq(mica_pass_ctx_init(&ctx, NULL, NULL, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_pipeline_run_program(&ctx, p, after, true, &d), MICA_OK, "%s", d.msg);
    cr_assert_null(ctx.consts, "the context keeps no pointer into the program");
    mica_pass_ctx_deinit(&ctx);
    return p;
}

/* Logits of all ids: prefill in chunks (all rows) into batch, then one
 * decode call per token into step. */
static void program_eval(const mica_program_t *p, const int32_t *ids, size_t n, size_t V,
                         float *batch, float *step)
{
    mica_diag_t d = {0};
    mica_ref_program_t *r = NULL;
    cr_assert_eq(mica_ref_program_create(p, &r, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_program_eval(r, ids, (int32_t)n, true, batch, &d), MICA_OK, "%s", d.msg);
    mica_ref_program_reset(r);
    for (size_t t = 0; t < n; t++)
        cr_assert_eq(mica_ref_program_eval(r, &ids[t], 1, false, step + t * V, &d), MICA_OK, "%s",
                     d.msg);
    mica_ref_program_release(r);
}

static const mica_node_t *find_weight(const mica_graph_t *g, const char *name)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == MICA_OP_WEIGHT && strcmp(mica_node_name(g->nodes[i]), name) == 0)
            return g->nodes[i];
    return NULL;
}

/* What a layer of cfg's architecture must get (from its structure, not
 * from the pass): per layer one gate+up merge with its swiglu epilogue, q
 * and k ropes, two residual adds, two rms_norm prologues, one attention;
 * qwen2 adds three bias epilogues; the output norm is one more prologue. */
static void expect_counts(const mica_graph_t *g, const mica_model_config_t *cfg,
                          const char *what)
{
    mica_fuse_stats_t s;
    mica_fuse_stats_count(g, &s);
    int32_t L = (int32_t)cfg->n_layer;
    int32_t bias = cfg->arch == MICA_ARCH_QWEN2 ? 3 * L : 0;
    cr_expect_eq(s.gate_up_merged, L, "%s: %d merges", what, s.gate_up_merged);
    cr_expect_eq(s.gate_up_skipped, 0, "%s", what);
    cr_expect_eq(s.epilogue_swiglu, L, "%s: %d swiglu epilogues", what, s.epilogue_swiglu);
    cr_expect_eq(s.epilogue_rope, 2 * L, "%s: %d rope epilogues", what, s.epilogue_rope);
    cr_expect_eq(s.epilogue_residual, 2 * L, "%s: %d residual epilogues", what,
                 s.epilogue_residual);
    cr_expect_eq(s.epilogue_bias, bias, "%s: %d bias epilogues", what, s.epilogue_bias);
    cr_expect_eq(s.prologue_rms_norm, 2 * L + 1, "%s: %d prologues", what, s.prologue_rms_norm);
    cr_expect_eq(s.softmax, L, "%s: %d attention nodes", what, s.softmax);
    cr_log_info("%s: merged %d, epilogues bias %d residual %d rope %d swiglu %d, prologues %d, "
                "softmax %d", what, s.gate_up_merged, s.epilogue_bias, s.epilogue_residual,
                s.epilogue_rope, s.epilogue_swiglu, s.prologue_rms_norm, s.softmax);
}

/* ------------------------------------------------------------------------ */
/* the static program with and without fuse                                  */

static void check_model(const char *model, const char *type)
{
    char file[128], ids_name[128], exact_name[128];
    snprintf(file, sizeof file, "%s.%s.gguf", model, type);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    snprintf(exact_name, sizeof exact_name, "%s.%s.exact.f32", model, type);
    int32_t ids[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64);
    cr_assert_eq(n, 16);
    mica_test_model_t mf;
    mica_test_model_open(&mf, mica_test_golden(file));
    const size_t V = (size_t)mf.cfg.n_vocab;

    mica_program_t *plain = program_open(mf.f, &mf.cfg, "fold-regions");
    mica_program_t *fused = program_open(mf.f, &mf.cfg, "fuse");
    expect_counts(fused->prefill, &mf.cfg, file);
    expect_counts(fused->decode, &mf.cfg, file);

    /* one merged blob per layer: decode reused what prefill made */
    cr_expect_eq(mica_const_store_count(fused->consts), mf.cfg.n_layer, "%s: %lld blobs", file,
                 (long long)mica_const_store_count(fused->consts));
    for (int64_t l = 0; l < mf.cfg.n_layer; l++) {
        char name[64];
        snprintf(name, sizeof name, "blk.%lld.ffn_gate_up.weight", (long long)l);
        const mica_node_t *a = find_weight(fused->prefill, name);
        const mica_node_t *b = find_weight(fused->decode, name);
        cr_assert(a && b, "%s: no %s in both graphs", file, name);
        cr_expect_eq(a->data, b->data, "%s: decode's %s is a second copy", file, name);
        snprintf(name, sizeof name, "blk.%lld.ffn_gate.weight", (long long)l);
        cr_expect_null(find_weight(fused->prefill, name), "%s: %s is still there", file, name);
    }

    float *pb = malloc(n * V * sizeof *pb), *ps = malloc(n * V * sizeof *ps);
    float *fb = malloc(n * V * sizeof *fb), *fs = malloc(n * V * sizeof *fs);
    cr_assert(pb && ps && fb && fs);
    program_eval(plain, ids, n, V, pb, ps);
    program_eval(fused, ids, n, V, fb, fs);
    double e_batch = mica_test_max_abs_diff(fb, pb, n * V), e_step = mica_test_max_abs_diff(fs, ps, n * V);
    cr_log_info("%s: fused vs unfused max |diff| prefill %.3g decode %.3g", file, e_batch, e_step);
    cr_expect(e_batch <= 1e-6, "%s: prefill differs by %g", file, e_batch);
    cr_expect(e_step <= 1e-6, "%s: decode differs by %g", file, e_step);

    size_t exact_len;
    float *exact = (float *)mica_test_read_file(mica_test_golden(exact_name), &exact_len);
    cr_assert(exact && exact_len == n * V * sizeof(float), "%s", exact_name);
    double e_exact = mica_test_nmse(fb, exact, n * V), e_exact_step = mica_test_nmse(fs, exact, n * V);
    cr_log_info("%s: fused NMSE vs exact: prefill %.3g decode %.3g", file, e_exact, e_exact_step);
    cr_expect(e_exact <= 1e-10, "%s: prefill NMSE vs exact %g", file, e_exact);
    cr_expect(e_exact_step <= 1e-10, "%s: decode NMSE vs exact %g", file, e_exact_step);

    free(exact);
    free(pb);
    free(ps);
    free(fb);
    free(fs);
    mica_program_release(plain);
    mica_program_release(fused);
    mica_test_model_close(&mf);
}

Test(fuse_program, llama_f32) { check_model("llama-tiny", "f32"); }
Test(fuse_program, llama_f16) { check_model("llama-tiny", "f16"); }
Test(fuse_program, llama_q8_0) { check_model("llama-tiny", "q8_0"); }
Test(fuse_program, llama_q4_0) { check_model("llama-tiny", "q4_0"); }
Test(fuse_program, llama_q4_1) { check_model("llama-tiny", "q4_1"); }
Test(fuse_program, qwen2_f32) { check_model("qwen2-tiny", "f32"); }
Test(fuse_program, qwen2_f16) { check_model("qwen2-tiny", "f16"); }
Test(fuse_program, qwen2_q8_0) { check_model("qwen2-tiny", "q8_0"); }
Test(fuse_program, qwen2_q4_0) { check_model("qwen2-tiny", "q4_0"); }
Test(fuse_program, qwen2_q4_1) { check_model("qwen2-tiny", "q4_1"); }

/* ------------------------------------------------------------------------ */
/* the merged weight, against the model file                                 */

static void check_rows(const char *file)
{
    mica_test_model_t mf;
    mica_test_model_open(&mf, mica_test_golden(file));
    mica_program_t *p = program_open(mf.f, &mf.cfg, "fuse");
    for (int64_t l = 0; l < mf.cfg.n_layer; l++) {
        char gn[64], un[64], mn[64];
        snprintf(gn, sizeof gn, "blk.%lld.ffn_gate.weight", (long long)l);
        snprintf(un, sizeof un, "blk.%lld.ffn_up.weight", (long long)l);
        snprintf(mn, sizeof mn, "blk.%lld.ffn_gate_up.weight", (long long)l);
        const mica_gguf_tensor_t *tg = mica_gguf_find_tensor(mf.f, gn);
        const mica_gguf_tensor_t *tu = mica_gguf_find_tensor(mf.f, un);
        const mica_node_t *w = find_weight(p->prefill, mn);
        cr_assert(tg && tu && w, "%s: %s", file, mn);
        int64_t F = tg->ne[1], K = tg->ne[0];
        cr_assert_eq(w->type.dtype, tg->dtype);
        cr_assert_eq(w->type.rank, 2);
        cr_assert_eq(w->type.shape[0], 2 * F);
        cr_assert_eq(w->type.shape[1], K);
        int64_t row = mica_dtype_row_bytes(tg->dtype, K);
        cr_assert_gt(row, 0);
        cr_assert_eq(w->nbytes, (uint64_t)(2 * F * row));
        cr_assert_eq((uintptr_t)w->data % MICA_CONST_STORE_ALIGN, 0);
        const unsigned char *m = w->data;
        for (int64_t r = 0; r < F; r++) {
            cr_assert_eq(memcmp(m + r * row, tg->data + r * row, (size_t)row), 0,
                         "%s: %s row %lld is not gate row %lld", file, mn, (long long)r,
                         (long long)r);
            cr_assert_eq(memcmp(m + (F + r) * row, tu->data + r * row, (size_t)row), 0,
                         "%s: %s row %lld is not up row %lld", file, mn, (long long)(F + r),
                         (long long)r);
        }
    }
    mica_program_release(p);
    mica_test_model_close(&mf);
}

Test(fuse_weights, merged_rows_equal_the_file_rows)
{
    static const char *const files[] = {"llama-tiny.f32.gguf", "llama-tiny.q4_0.gguf",
                                        "llama-tiny.q4_1.gguf", "qwen2-tiny.f16.gguf",
                                        "qwen2-tiny.q8_0.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        check_rows(files[i]);
}

/* ------------------------------------------------------------------------ */
/* refusals and the constant store, on small built graphs                    */

#define TY2(dt, a, b) mica_type_make(MICA_DTYPE_##dt, 2, (const int64_t[]){a, b})

/* Runs the pass alone on *g with the store (NULL = none). */
static void run_fuse(mica_graph_t **g, mica_const_store_t *consts)
{
    mica_diag_t d = {0};
    mica_pass_ctx_t ctx;
    cr_assert_eq(mica_pass_ctx_init(&ctx, NULL, NULL, &d), MICA_OK, "%s", d.msg);
    ctx.consts = consts;
    cr_assert_eq(mica_pass_fuse_run(&ctx, g), MICA_OK, "%s", d.msg);
    mica_pass_ctx_deinit(&ctx);
    cr_assert_eq(mica_graph_verify(*g, &d), MICA_OK, "%s", d.msg);
}

static const mica_node_t *first_op(const mica_graph_t *g, mica_op_t op)
{
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == op)
            return g->nodes[i];
    return NULL;
}

/* add(matmul(x, w), b) -> "y", and with also_raw the matmul -> "raw". */
static mica_graph_t *bias_graph(bool also_raw)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int32_t x = mica_build_input(g, "x", TY2(F32, 2, 8));
    int32_t w = mica_build_weight(g, "w", TY2(F32, 8, 8), NULL, 0);
    int32_t b = mica_build_weight(g, "b", mica_type_make(MICA_DTYPE_F32, 1, (int64_t[]){8}), NULL,
                                  0);
    int32_t m = mica_build_binary(g, MICA_OP_MATMUL, x, w);
    mica_build_output(g, "y", mica_build_binary(g, MICA_OP_ADD, m, b));
    if (also_raw)
        mica_build_output(g, "raw", m);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    return g;
}

Test(fuse_refuse, epilogue_needs_the_only_reader)
{
    for (int raw = 0; raw < 2; raw++) {
        mica_graph_t *g = bias_graph(raw);
        run_fuse(&g, NULL);
        const mica_node_t *add = first_op(g, MICA_OP_ADD);
        cr_assert_not_null(add);
        if (raw) {
            cr_expect_eq(add->flags & MICA_FUSE_EPILOGUE, 0, "matmul with two readers fused");
            cr_expect_null(add->note);
        } else {
            cr_expect_neq(add->flags & MICA_FUSE_EPILOGUE, 0, "bias after a lone matmul not fused");
            const mica_node_t *mm = first_op(g, MICA_OP_MATMUL);
            char want[64];
            snprintf(want, sizeof want, "epilogue of @%d (bias)", mm->origin);
            cr_expect(add->note && strcmp(add->note, want) == 0, "note '%s', want '%s'",
                      add->note ? add->note : "(none)", want);
        }
        mica_graph_release(g);
    }
}

/* A feed-forward block over bound weights: gate (dtype dg) and up (du)
 * [F, K] with the bytes given, x [T, K] -> "y" = mul(silu(x Wg^T), x Wu^T). */
static mica_graph_t *ffn_graph(mica_dtype_t dg, mica_dtype_t du, const void *bg, uint64_t ng,
                               const void *bu, uint64_t nu, int64_t F, int64_t K)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, (int64_t[]){3, K}));
    int32_t wg = mica_build_weight(g, "blk.7.ffn_gate.weight",
                                   mica_type_make(dg, 2, (int64_t[]){F, K}), bg, ng);
    int32_t wu = mica_build_weight(g, "blk.7.ffn_up.weight",
                                   mica_type_make(du, 2, (int64_t[]){F, K}), bu, nu);
    int32_t gate = mica_build_binary(g, MICA_OP_MATMUL, x, wg);
    int32_t up = mica_build_binary(g, MICA_OP_MATMUL, x, wu);
    int32_t act = mica_build_binary(g, MICA_OP_MUL, mica_build_unary(g, MICA_OP_SILU, gate), up);
    mica_build_output(g, "y", act);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    return g;
}

static float *random_floats(int64_t n, uint64_t seed)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, seed);
    float *v = malloc((size_t)n * sizeof *v);
    cr_assert_not_null(v);
    for (int64_t i = 0; i < n; i++)
        v[i] = mica_test_rng_float(&r);
    return v;
}

/* Runs g on x [3, K] and returns "y" (malloc'd, count floats). */
static float *run_y(const mica_graph_t *g, float *x, int64_t K, int64_t count)
{
    mica_ref_tensor_t in = {"x", mica_type_make(MICA_DTYPE_F32, 2, (int64_t[]){3, K}), x};
    mica_ref_outputs_t *o = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_execute(g, &in, 1, &o, &d), MICA_OK, "%s", d.msg);
    const mica_ref_tensor_t *y = mica_ref_outputs_find(o, "y");
    cr_assert(y && mica_type_numel(&y->type) == count);
    float *out = malloc((size_t)count * sizeof *out);
    memcpy(out, y->data, (size_t)count * sizeof *out);
    mica_ref_outputs_release(o);
    return out;
}

Test(fuse_refuse, gate_and_up_of_different_dtypes_stay_apart)
{
    const int64_t F = 6, K = 8;
    float *wg = random_floats(F * K, 1), *wu = random_floats(F * K, 2);
    uint16_t wu16[48];
    for (int i = 0; i < 48; i++)
        wu16[i] = mica_f32_to_f16(wu[i]);
    mica_const_store_t *store = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_const_store_create(&store, &d), MICA_OK);
    mica_graph_t *g = ffn_graph(MICA_DTYPE_F32, MICA_DTYPE_F16, wg, sizeof(float) * 48, wu16,
                                sizeof wu16, F, K);
    run_fuse(&g, store);
    cr_expect_null(first_op(g, MICA_OP_SWIGLU), "f32 gate and f16 up were merged");
    cr_expect_not_null(first_op(g, MICA_OP_SILU));
    cr_expect_eq(mica_const_store_count(store), 0);
    mica_graph_release(g);
    mica_const_store_release(store);
    free(wg);
    free(wu);
}

/* Without a store bound weights are not merged (the mul says why); with
 * one they are, the result is bit for bit the same, and a second graph of
 * the same weights reuses the blob. */
Test(fuse_store, merge_needs_a_store_and_reuses_it)
{
    const int64_t F = 6, K = 8;
    float *wg = random_floats(F * K, 3), *wu = random_floats(F * K, 4), *x = random_floats(3 * K, 5);
    const uint64_t nb = sizeof(float) * (uint64_t)(F * K);

    mica_graph_t *g0 = ffn_graph(MICA_DTYPE_F32, MICA_DTYPE_F32, wg, nb, wu, nb, F, K);
    float *want = run_y(g0, x, K, 3 * F);
    run_fuse(&g0, NULL);
    cr_expect_null(first_op(g0, MICA_OP_SWIGLU), "merged without a store");
    const mica_node_t *mul = first_op(g0, MICA_OP_MUL);
    cr_assert_not_null(mul);
    cr_expect(mul->note && strstr(mul->note, "not merged"), "note: %s",
              mul->note ? mul->note : "(none)");
    mica_graph_release(g0);

    mica_const_store_t *store = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_const_store_create(&store, &d), MICA_OK);
    const void *first = NULL;
    for (int round = 0; round < 2; round++) {
        mica_graph_t *g = ffn_graph(MICA_DTYPE_F32, MICA_DTYPE_F32, wg, nb, wu, nb, F, K);
        run_fuse(&g, store);
        const mica_node_t *sw = first_op(g, MICA_OP_SWIGLU);
        cr_assert_not_null(sw, "round %d: not merged", round);
        cr_expect_neq(sw->flags & MICA_FUSE_EPILOGUE, 0);
        cr_expect_null(first_op(g, MICA_OP_SILU));
        const mica_node_t *w = find_weight(g, "blk.7.ffn_gate_up.weight");
        cr_assert_not_null(w);
        cr_expect_null(find_weight(g, "blk.7.ffn_gate.weight"));
        cr_assert_eq(w->nbytes, 2 * nb);
        cr_expect_eq(memcmp(w->data, wg, nb), 0);
        cr_expect_eq(memcmp((const char *)w->data + nb, wu, nb), 0);
        if (round == 0)
            first = w->data;
        else
            cr_expect_eq(w->data, first, "the second graph made its own copy");
        cr_expect_eq(mica_const_store_count(store), 1);
        float *got = run_y(g, x, K, 3 * F);
        for (int64_t i = 0; i < 3 * F; i++)
            cr_expect_eq(memcmp(&got[i], &want[i], sizeof(float)), 0, "y[%lld] = %.9g, want %.9g",
                         (long long)i, (double)got[i], (double)want[i]);
        free(got);
        mica_graph_release(g);
    }
    mica_const_store_release(store);
    free(want);
    free(wg);
    free(wu);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* the swiglu op                                                             */

Test(fuse_swiglu, kernel_against_plain_loops)
{
    static const int64_t shapes[][3] = {{1, 1, 2}, {3, 1, 10}, {2, 3, 64}, {1, 4, 34}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *sh = shapes[s];
        int64_t F = sh[2] / 2, rows = sh[0] * sh[1], numel = rows * sh[2];
        float *x = random_floats(numel, 10 + s);
        for (int64_t i = 0; i < numel; i++)
            x[i] *= 8; /* reach silu's tails */
        mica_graph_t *g = NULL;
        cr_assert_eq(mica_graph_create(&g), MICA_OK);
        mica_type_t t = mica_type_make(MICA_DTYPE_F32, 3, sh);
        int32_t in = mica_build_input(g, "x", t);
        mica_build_output(g, "y", mica_build_unary(g, MICA_OP_SWIGLU, in));
        cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
        mica_ref_tensor_t b = {"x", t, x};
        mica_ref_outputs_t *o = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_ref_execute(g, &b, 1, &o, &d), MICA_OK, "%s", d.msg);
        const mica_ref_tensor_t *y = mica_ref_outputs_find(o, "y");
        cr_assert(y && y->type.rank == 3 && y->type.shape[0] == sh[0] &&
                  y->type.shape[1] == sh[1] && y->type.shape[2] == F);
        const float *got = y->data;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < F; i++) {
                double gt = x[r * 2 * F + i], up = x[r * 2 * F + F + i];
                double want = gt / (1.0 + exp(-gt)) * up;
                double err = fabs((double)got[r * F + i] - want);
                cr_expect(err <= 1e-6 * fmax(1.0, fabs(want)), "shape %zu row %lld i %lld: %.9g vs %.9g",
                          s, (long long)r, (long long)i, (double)got[r * F + i], want);
            }
        mica_ref_outputs_release(o);
        mica_graph_release(g);
        free(x);
    }
}

Test(fuse_swiglu, shape_rule)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int32_t odd = mica_build_input(g, "odd", TY2(F32, 2, 7));
    cr_expect_lt(mica_build_unary(g, MICA_OP_SWIGLU, odd), 0, "an odd last dim was accepted");
    cr_expect_neq(g->error.code, MICA_OK);
    mica_graph_release(g);
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int32_t ids = mica_build_input(g, "ids", TY2(I32, 2, 8));
    cr_expect_lt(mica_build_unary(g, MICA_OP_SWIGLU, ids), 0, "i32 was accepted");
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* SmolLM2-135M (MICA_DEFAULT_MODEL): the counts a llama layer must get      */

Test(fuse_smollm, every_layer_fused, .timeout = 120)
{
    const char *path = getenv("MICA_DEFAULT_MODEL");
    cr_assert(path && *path, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh and export "
                             "its path");
    mica_test_model_t mf;
    mica_test_model_open(&mf, path);
    mica_program_t *p = program_open(mf.f, &mf.cfg, "fuse");
    expect_counts(p->prefill, &mf.cfg, "SmolLM2 prefill");
    expect_counts(p->decode, &mf.cfg, "SmolLM2 decode");
    cr_expect_eq(mica_const_store_count(p->consts), mf.cfg.n_layer);
    cr_log_info("SmolLM2: %lld merged blobs, %llu bytes", (long long)mica_const_store_count(p->consts),
                (unsigned long long)mica_const_store_bytes(p->consts));
    mica_program_release(p);
    mica_test_model_close(&mf);
}
