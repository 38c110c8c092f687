/* End to end on the reference path against ../shared/golden: logits of a
 * batch prefill against the exact float64 forward, decoding through the KV
 * cache against the batch, greedy continuations against llama.cpp's, and
 * the geometry passes leaving the logits unchanged. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref_model.h"
#include "test_model.h"
#include "test_support.h"

static mica_ref_model_t *open_model(const char *file, const char *after)
{
    mica_ref_model_t *m = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_model_open(mica_test_golden(file), after, &m, &d), MICA_OK, "%s: %s", file,
                 d.msg);
    return m;
}

/* model = "llama-tiny", type = "q4_0": logits of all 16 ids in one batch
 * against MODEL.TYPE.exact.f32, then one token at a time through the cache
 * against the batch. */
static void check_logits(const char *dir, const char *model, const char *type)
{
    char file[256], ids_name[256], exact_name[256];
    snprintf(file, sizeof file, "%s%s.%s.gguf", dir, model, type);
    snprintf(ids_name, sizeof ids_name, "%s%s.ids", dir, model);
    snprintf(exact_name, sizeof exact_name, "%s%s.%s.exact.f32", dir, model, type);
    int32_t ids[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64);
    cr_assert_eq(n, 16);

    mica_ref_model_t *m = open_model(file, NULL);
    const size_t V = (size_t)mica_ref_model_config(m)->n_vocab;
    size_t exact_len;
    float *exact = (float *)mica_test_read_file(mica_test_golden(exact_name), &exact_len);
    cr_assert(exact, "cannot read %s", exact_name);
    cr_assert_eq(exact_len, n * V * sizeof(float), "%s: %zu bytes for %zu x %zu logits", exact_name,
                 exact_len, n, V);

    float *batch = malloc(n * V * sizeof *batch), *step = malloc(n * V * sizeof *step);
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_model_eval(m, ids, (int32_t)n, true, batch, &d), MICA_OK, "%s", d.msg);
    double err = mica_test_max_abs_diff(batch, exact, n * V);
    cr_log_info("%s: batch max |diff| vs exact = %.3g", file, err);
    cr_expect(err <= 1e-3, "%s: batch logits differ from exact by %g", file, err);

    mica_ref_model_reset(m);
    for (size_t t = 0; t < n; t++)
        cr_assert_eq(mica_ref_model_eval(m, &ids[t], 1, false, step + t * V, &d), MICA_OK, "%s",
                     d.msg);
    double cache_err = mica_test_max_abs_diff(step, batch, n * V);
    cr_expect(cache_err <= 1e-4, "%s: decoding through the KV cache differs from the batch by %g",
              file, cache_err);

    free(batch);
    free(step);
    free(exact);
    mica_ref_model_close(m);
}

#define LOGITS_TEST(model, type, dir, cname) \
    Test(golden_logits, cname) { check_logits(dir, model, type); }

LOGITS_TEST("llama-tiny", "f32", "", llama_f32)
LOGITS_TEST("llama-tiny", "f16", "", llama_f16)
LOGITS_TEST("llama-tiny", "q8_0", "", llama_q8_0)
LOGITS_TEST("llama-tiny", "q4_0", "", llama_q4_0)
LOGITS_TEST("llama-tiny", "q4_1", "", llama_q4_1)
LOGITS_TEST("qwen2-tiny", "f32", "", qwen2_f32)
LOGITS_TEST("qwen2-tiny", "f16", "", qwen2_f16)
LOGITS_TEST("qwen2-tiny", "q8_0", "", qwen2_q8_0)
LOGITS_TEST("qwen2-tiny", "q4_0", "", qwen2_q4_0)
LOGITS_TEST("qwen2-tiny", "q4_1", "", qwen2_q4_1)
LOGITS_TEST("zoo", "f32", "zoo/", zoo_f32)
LOGITS_TEST("zoo", "bf16", "zoo/", zoo_bf16)
LOGITS_TEST("zoo", "q5_0", "zoo/", zoo_q5_0)
LOGITS_TEST("zoo", "q5_1", "zoo/", zoo_q5_1)
LOGITS_TEST("zoo", "q2_k", "zoo/", zoo_q2_k)
LOGITS_TEST("zoo", "q3_k", "zoo/", zoo_q3_k)
LOGITS_TEST("zoo", "q4_k", "zoo/", zoo_q4_k)
LOGITS_TEST("zoo", "q5_k", "zoo/", zoo_q5_k)
LOGITS_TEST("zoo", "q6_k", "zoo/", zoo_q6_k)
LOGITS_TEST("zoo", "q4_k_m", "zoo/", zoo_q4_k_m)

/* The f32 greedy continuation of the 16 ids equals llama.cpp's. */
static void check_greedy(const char *dir, const char *model)
{
    char file[256], ids_name[256], greedy_name[256];
    snprintf(file, sizeof file, "%s%s.f32.gguf", dir, model);
    snprintf(ids_name, sizeof ids_name, "%s%s.ids", dir, model);
    snprintf(greedy_name, sizeof greedy_name, "%s%s.f32.greedy.txt", dir, model);
    int32_t ids[64], want[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64), n_want = mica_test_read_ids(greedy_name, want, 64);
    cr_assert(n_want >= 1);
    mica_ref_model_t *m = open_model(file, NULL);
    const int32_t V = (int32_t)mica_ref_model_config(m)->n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_model_eval(m, ids, (int32_t)n, false, logits, &d), MICA_OK, "%s", d.msg);
    for (size_t i = 0; i < n_want; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (logits[v] > logits[best])
                best = v;
        cr_assert_eq(best, want[i], "%s: greedy token %zu is %d, llama.cpp's is %d", file, i, best,
                     want[i]);
        cr_assert_eq(mica_ref_model_eval(m, &best, 1, false, logits, &d), MICA_OK, "%s", d.msg);
    }
    free(logits);
    mica_ref_model_close(m);
}

Test(golden_greedy, llama_f32) { check_greedy("", "llama-tiny"); }
Test(golden_greedy, qwen2_f32) { check_greedy("", "qwen2-tiny"); }
Test(golden_greedy, zoo_f32) { check_greedy("zoo/", "zoo"); }

/* Interpreting the graph after geometry + fold-regions gives the logits of
 * the unoptimised graph: the passes only move data, exactly. Checked for a
 * batch and for decode steps that join the KV cache. */
static void check_passes(const char *file)
{
    int32_t ids[8] = {1, 5, 9, 200, 31, 7, 2, 99};
    mica_ref_model_t *a = open_model(file, NULL), *b = open_model(file, "fold-regions");
    const size_t V = (size_t)mica_ref_model_config(a)->n_vocab;
    float *la = malloc(6 * V * sizeof *la), *lb = malloc(6 * V * sizeof *lb);
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_model_eval(a, ids, 6, true, la, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_model_eval(b, ids, 6, true, lb, &d), MICA_OK, "%s", d.msg);
    cr_expect_eq(mica_test_max_abs_diff(la, lb, 6 * V), 0.0, "%s: prefill differs after fold-regions", file);
    for (int t = 6; t < 8; t++) {
        cr_assert_eq(mica_ref_model_eval(a, &ids[t], 1, false, la, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_ref_model_eval(b, &ids[t], 1, false, lb, &d), MICA_OK, "%s", d.msg);
        cr_expect_eq(mica_test_max_abs_diff(la, lb, V), 0.0, "%s: decode step %d differs after fold-regions",
                     file, t);
    }
    free(la);
    free(lb);
    mica_ref_model_close(a);
    mica_ref_model_close(b);
}

Test(golden_passes, llama_q4_0) { check_passes("llama-tiny.q4_0.gguf"); }
Test(golden_passes, qwen2_f32) { check_passes("qwen2-tiny.f32.gguf"); }

#include "model.h"
#include "passes.h"

static void count_ops(const mica_graph_t *g, int *movement, int *raster)
{
    *movement = *raster = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        *movement += mica_op_is_data_movement(g->nodes[i]->op);
        *raster += g->nodes[i]->op == MICA_OP_RASTER;
    }
}

/* A decode step of qwen2-tiny: geometry leaves no data-movement op, and
 * fold-regions leaves fewer rasters than geometry made. */
Test(golden_passes, model_graph_is_lowered_and_folded)
{
    mica_gguf_t *f = NULL;
    mica_model_config_t cfg;
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden("qwen2-tiny.q8_0.gguf"), &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_config_from_gguf(f, &cfg, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_build(f, &cfg, 1, 7, false, &g, &d), MICA_OK, "%s", d.msg);
    int mv, rs;
    count_ops(g, &mv, &rs);
    cr_assert(mv >= 4 * cfg.n_layer, "import: only %d data-movement ops", mv);
    cr_assert_eq(rs, 0);
    cr_assert_eq(mica_pipeline_run(&g, "geometry", true, &d), MICA_OK, "%s", d.msg);
    int rs_geometry;
    count_ops(g, &mv, &rs_geometry);
    cr_assert_eq(mv, 0, "geometry left %d data-movement ops", mv);
    cr_assert_gt(rs_geometry, 0);
    cr_assert_eq(mica_pipeline_run(&g, "fold-regions", true, &d), MICA_OK, "%s", d.msg);
    int rs_fold;
    count_ops(g, &mv, &rs_fold);
    cr_log_info("qwen2-tiny decode step: %d rasters after geometry, %d after fold-regions",
                rs_geometry, rs_fold);
    cr_assert_lt(rs_fold, rs_geometry);
    mica_graph_release(g);
    mica_gguf_close(f);
}
