/* The static program (ir/program.h) on the ref backend against two
 * oracles: the exact float64 logits of ../shared/golden and the per-step
 * path (backends/ref/ref_model.h), which rebuilds each step's graph with the
 * cache joined by concat. The program instead keeps its KV cache as state,
 * writes it with kv_store and reads it with attention_kv up to run-time
 * lengths, so it must reproduce both without rebuilding anything. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "program.h"
#include "ref_model.h"
#include "ref_program.h"
#include "test_model.h"
#include "test_support.h"

/* A golden program (tests/support/test_model.h) and its ref runner. */
typedef struct fixture {
    mica_test_model_t m;
    mica_ref_program_t *r;
} fixture_t;

static void fixture_open(fixture_t *x, const char *file, int64_t chunk, int64_t n_ctx,
                         const char *after)
{
    mica_diag_t d = {0};
    x->r = NULL;
    mica_test_program_open(&x->m, mica_test_golden(file), chunk, n_ctx, after);
    cr_assert_eq(mica_ref_program_create(x->m.p, &x->r, &d), MICA_OK, "%s", d.msg);
}

static void fixture_close(fixture_t *x)
{
    mica_ref_program_release(x->r);
    mica_test_model_close(&x->m);
}

/* All 16 golden ids in prefill chunks of 5 (5+5+5+1: the last chunk is
 * mostly padding) against `exact`, then one token at a time through the
 * decode graph against the per-step oracle. */
static void check_program(const char *model, const char *type, const char *after)
{
    char file[128], ids_name[128], exact_name[128];
    snprintf(file, sizeof file, "%s.%s.gguf", model, type);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    snprintf(exact_name, sizeof exact_name, "%s.%s.exact.f32", model, type);
    int32_t ids[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64);
    cr_assert_eq(n, 16);
    fixture_t x;
    fixture_open(&x, file, 5, 40, after);
    const size_t V = (size_t)x.m.cfg.n_vocab;
    size_t exact_len;
    float *exact = (float *)mica_test_read_file(mica_test_golden(exact_name), &exact_len);
    cr_assert(exact && exact_len == n * V * sizeof(float), "%s", exact_name);

    float *batch = malloc(n * V * sizeof *batch), *step = malloc(n * V * sizeof *step);
    float *oracle = malloc(n * V * sizeof *oracle);
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_program_eval(x.r, ids, (int32_t)n, true, batch, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_program_n_past(x.r), (int64_t)n);
    double e_exact = mica_test_nmse(batch, exact, n * V);
    cr_log_info("%s: static prefill NMSE vs exact %.3g", file, e_exact);
    cr_expect(e_exact <= 1e-10, "%s: prefill NMSE vs exact %g", file, e_exact);

    mica_ref_model_t *m = NULL;
    cr_assert_eq(mica_ref_model_open(mica_test_golden(file), NULL, &m, &d), MICA_OK, "%s", d.msg);
    mica_ref_program_reset(x.r);
    for (size_t t = 0; t < n; t++) {
        cr_assert_eq(mica_ref_program_eval(x.r, &ids[t], 1, false, step + t * V, &d), MICA_OK,
                     "%s", d.msg);
        cr_assert_eq(mica_ref_model_eval(m, &ids[t], 1, false, oracle + t * V, &d), MICA_OK, "%s",
                     d.msg);
    }
    double e_step = mica_test_max_abs_diff(step, oracle, n * V);
    cr_expect(e_step <= 1e-5, "%s: decode differs from the per-step oracle by %g", file, e_step);
    double e_batch = mica_test_max_abs_diff(step, batch, n * V);
    cr_expect(e_batch <= 1e-4, "%s: decode differs from prefill by %g", file, e_batch);
    mica_ref_model_close(m);
    free(batch);
    free(step);
    free(oracle);
    free(exact);
    fixture_close(&x);
}

Test(program, llama_f32) { check_program("llama-tiny", "f32", NULL); }
Test(program, llama_q4_0) { check_program("llama-tiny", "q4_0", NULL); }
Test(program, llama_q8_0) { check_program("llama-tiny", "q8_0", NULL); }
Test(program, qwen2_f32) { check_program("qwen2-tiny", "f32", NULL); }
Test(program, qwen2_q4_1) { check_program("qwen2-tiny", "q4_1", NULL); }
Test(program, qwen2_f16_after_passes) { check_program("qwen2-tiny", "f16", "fold-regions"); }
Test(program, llama_q4_1_after_passes) { check_program("llama-tiny", "q4_1", "fold-regions"); }

/* Greedy continuation through prefill then decode equals llama.cpp's. */
static void check_greedy(const char *model)
{
    char file[128], ids_name[128], greedy_name[128];
    snprintf(file, sizeof file, "%s.f32.gguf", model);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    snprintf(greedy_name, sizeof greedy_name, "%s.f32.greedy.txt", model);
    int32_t ids[64], want[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64), n_want = mica_test_read_ids(greedy_name, want, 64);
    fixture_t x;
    fixture_open(&x, file, 8, 64, "fold-regions");
    const int32_t V = (int32_t)x.m.cfg.n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_program_eval(x.r, ids, (int32_t)n, false, logits, &d), MICA_OK, "%s",
                 d.msg);
    for (size_t i = 0; i < n_want; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (logits[v] > logits[best])
                best = v;
        cr_assert_eq(best, want[i], "%s: greedy token %zu is %d, llama.cpp's is %d", file, i, best,
                     want[i]);
        cr_assert_eq(mica_ref_program_eval(x.r, &best, 1, false, logits, &d), MICA_OK, "%s", d.msg);
    }
    free(logits);
    fixture_close(&x);
}

Test(program_greedy, llama_f32) { check_greedy("llama-tiny"); }
Test(program_greedy, qwen2_f32) { check_greedy("qwen2-tiny"); }

/* Overflowing the compiled context or a bad id fails and leaves the cache
 * as it was: the next call continues exactly where the last good one did. */
Test(program, errors_leave_the_cache_alone)
{
    fixture_t x;
    fixture_open(&x, "llama-tiny.q8_0.gguf", 4, 10, NULL);
    const size_t V = (size_t)x.m.cfg.n_vocab;
    int32_t ids[12] = {1, 5, 9, 200, 31, 7, 2, 99, 13, 14, 15, 16};
    float *a = malloc(V * sizeof *a), *b = malloc(V * sizeof *b);
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_program_eval(x.r, ids, 6, false, a, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_program_eval(x.r, ids, 5, false, a, &d), MICA_ERR_RANGE);
    cr_assert(strstr(d.msg, "context of 10"), "%s", d.msg);
    int32_t bad = (int32_t)V;
    cr_assert_eq(mica_ref_program_eval(x.r, &bad, 1, false, a, &d), MICA_ERR_RANGE);
    cr_assert_eq(mica_ref_program_n_past(x.r), 6);
    cr_assert_eq(mica_ref_program_eval(x.r, &ids[6], 1, false, a, &d), MICA_OK, "%s", d.msg);

    mica_ref_model_t *m = NULL;
    cr_assert_eq(mica_ref_model_open(mica_test_golden("llama-tiny.q8_0.gguf"), NULL, &m, &d),
                 MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_model_eval(m, ids, 7, false, b, &d), MICA_OK, "%s", d.msg);
    cr_expect(mica_test_max_abs_diff(a, b, V) <= 1e-4, "after the failed calls: %g", mica_test_max_abs_diff(a, b, V));
    mica_ref_model_close(m);
    free(a);
    free(b);
    fixture_close(&x);
}

/* Both graphs print as IR text that parses back to the same text, and the
 * shape rules reject a store into something that is not a state. */
Test(program, ir_text_round_trip)
{
    fixture_t x;
    fixture_open(&x, "qwen2-tiny.q8_0.gguf", 4, 16, "fold-regions");
    const mica_graph_t *gs[2] = {x.m.p->prefill, x.m.p->decode};
    for (int i = 0; i < 2; i++) {
        char *text = mica_graph_print(gs[i]);
        cr_assert(text);
        cr_assert(strstr(text, "= state() {name=\"k_cache.0\"} : f32[1,16,16]"), "%.400s", text);
        cr_assert(strstr(text, "= kv_store("));
        cr_assert(strstr(text, "= attention_kv("));
        cr_assert(!strstr(text, "= concat("));
        mica_graph_t *back = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_graph_parse(text, strlen(text), &back, &d), MICA_OK, "%s", d.msg);
        char *again = mica_graph_print(back);
        cr_assert_str_eq(again, text);
        free(again);
        free(text);
        mica_graph_release(back);
    }
    fixture_close(&x);

    const char *bad = "# mica ir 1\n"
                      "%0 = input() {name=\"c\"} : f32[1,4,2]\n"
                      "%1 = input() {name=\"x\"} : f32[1,1,2]\n"
                      "%2 = input() {name=\"p\"} : i32[]\n"
                      "%3 = kv_store(%0, %1, %2, %2) : f32[1,4,2]\n";
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_neq(mica_graph_parse(bad, strlen(bad), &g, &d), MICA_OK);
    cr_assert(strstr(d.msg, "writes into a state"), "%s", d.msg);
}

/* Every golden model file through the whole pipeline (fuse, quantize,
 * layout, memplan, schedule) in the default w4a8: every pass succeeds on
 * both graphs and the w4a8 program still runs a prefill and a decode step
 * to finite logits. The sanitizer build runs this over every file too. */
Test(program, every_golden_file_through_every_pass, .timeout = 300)
{
    const char *files[] = {"llama-tiny.f32.gguf",  "llama-tiny.f16.gguf",  "llama-tiny.q8_0.gguf",
                           "llama-tiny.q4_0.gguf", "llama-tiny.q4_1.gguf", "qwen2-tiny.f32.gguf",
                           "qwen2-tiny.f16.gguf",  "qwen2-tiny.q8_0.gguf", "qwen2-tiny.q4_0.gguf",
                           "qwen2-tiny.q4_1.gguf", "zoo/zoo.f32.gguf",     "zoo/zoo.bf16.gguf",
                           "zoo/zoo.q5_0.gguf",    "zoo/zoo.q5_1.gguf",    "zoo/zoo.q2_k.gguf",
                           "zoo/zoo.q3_k.gguf",    "zoo/zoo.q4_k.gguf",    "zoo/zoo.q5_k.gguf",
                           "zoo/zoo.q6_k.gguf",    "zoo/zoo.q4_k_m.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        mica_test_model_t x;
        mica_test_program_open(&x, mica_test_golden(files[i]), 4, 16, "schedule");
        mica_ref_program_t *r = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_ref_program_create(x.p, &r, &d), MICA_OK, "%s: %s", files[i], d.msg);
        const size_t V = (size_t)x.cfg.n_vocab;
        float *lg = malloc(V * sizeof *lg);
        int32_t ids[5] = {1, 2, 3, 4, 5};
        cr_assert_eq(mica_ref_program_eval(r, ids, 5, false, lg, &d), MICA_OK, "%s: %s", files[i],
                     d.msg);
        cr_assert_eq(mica_ref_program_eval(r, ids, 1, false, lg, &d), MICA_OK, "%s: %s", files[i],
                     d.msg);
        for (size_t v = 0; v < V; v++)
            cr_assert(isfinite(lg[v]), "%s: logit %zu is %g", files[i], v, (double)lg[v]);
        free(lg);
        mica_ref_program_release(r);
        mica_test_model_close(&x);
    }
}
