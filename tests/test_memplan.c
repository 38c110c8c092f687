/* The static memory plan (passes/memplan.h): its checker on every golden
 * model and SmolLM2, the checker catching broken plans, the plan against a
 * lower bound, and the ref runner allocating exactly what the plan says. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memplan.h"
#include "passes.h"
#include "program.h"
#include "ref_program.h"
#include "test_model.h"
#include "test_support.h"

/* The most bytes alive at any one node, computed by plain loops: no plan
 * can use less arena than that. */
static int64_t live_lower_bound(const mica_graph_t *g, const mica_memplan_t *p)
{
    int64_t best = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        int64_t sum = 0;
        for (int32_t v = 0; v < g->n_nodes; v++)
            if (p->size[v] > 0 && p->first[v] <= i && i <= p->last[v])
                sum += p->size[v];
        best = sum > best ? sum : best;
    }
    return best;
}

static void check_plans(const char *path, int64_t chunk, int64_t n_ctx)
{
    mica_test_model_t x;
    mica_test_program_open(&x, path, chunk, n_ctx, "fold-regions");
    const mica_graph_t *gs[2] = {x.p->prefill, x.p->decode};
    const char *names[2] = {"prefill", "decode"};
    for (int k = 0; k < 2; k++) {
        mica_memplan_t *plan = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_memplan_compute(gs[k], MICA_MEMPLAN_DEVICE, &plan, &d), MICA_OK, "%s",
                     d.msg);
        cr_assert_eq(mica_memplan_check(gs[k], MICA_MEMPLAN_DEVICE, plan, &d), MICA_OK, "%s %s: %s",
                     path, names[k], d.msg);
        int64_t lb = live_lower_bound(gs[k], plan);
        cr_log_info("%s %s: arena %lld bytes, lower bound %lld (%.2fx), %d values", path, names[k],
                    (long long)plan->arena_bytes, (long long)lb, (double)plan->arena_bytes / (double)lb,
                    plan->n_values);
        cr_expect_geq(plan->arena_bytes, lb);
        cr_expect_leq(plan->arena_bytes, 2 * lb, "%s %s: arena %lld is over twice the live peak %lld",
                      path, names[k], (long long)plan->arena_bytes, (long long)lb);
        mica_memplan_release(plan);
    }
    mica_test_model_close(&x);
}

Test(memplan, golden_models)
{
    const char *files[] = {"llama-tiny.f32.gguf", "llama-tiny.q4_0.gguf", "qwen2-tiny.f16.gguf",
                           "qwen2-tiny.q8_0.gguf", "zoo/zoo.q4_k_m.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        check_plans(mica_test_golden(files[i]), 8, 64);
}

Test(memplan, smollm2)
{
    const char *path = getenv("MICA_DEFAULT_MODEL");
    cr_assert(path && *path, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh and export its path");
    check_plans(path, 32, 512);
}

/* Breaking a valid plan in each way the checker must notice. */
Test(memplan, checker_catches_broken_plans)
{
    mica_test_model_t x;
    mica_test_program_open(&x, mica_test_golden("qwen2-tiny.q4_1.gguf"), 4, 16, "fold-regions");
    const mica_graph_t *g = x.p->prefill;
    mica_memplan_t *plan = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_memplan_compute(g, MICA_MEMPLAN_DEVICE, &plan, &d), MICA_OK, "%s", d.msg);
    /* two values alive at once: a node's output and its first arena operand */
    int32_t a = -1, b = -1;
    for (int32_t i = 0; i < g->n_nodes && a < 0; i++)
        for (int32_t k = 0; k < g->nodes[i]->n_inputs; k++) {
            int32_t v = g->nodes[i]->inputs[k].value;
            if (plan->size[i] > 0 && plan->size[v] > 0) {
                a = v;
                b = i;
                break;
            }
        }
    cr_assert(a >= 0);
    int64_t keep = plan->offset[b];
    plan->offset[b] = plan->offset[a];
    cr_assert_neq(mica_memplan_check(g, MICA_MEMPLAN_DEVICE, plan, &d), MICA_OK);
    cr_assert(strstr(d.msg, "share bytes"), "%s", d.msg);
    plan->offset[b] = keep + 4;
    cr_assert_neq(mica_memplan_check(g, MICA_MEMPLAN_DEVICE, plan, &d), MICA_OK);
    cr_assert(strstr(d.msg, "unaligned or outside"), "%s", d.msg);
    plan->offset[b] = plan->arena_bytes;
    cr_assert_neq(mica_memplan_check(g, MICA_MEMPLAN_DEVICE, plan, &d), MICA_OK);
    plan->offset[b] = keep;
    cr_assert_eq(mica_memplan_check(g, MICA_MEMPLAN_DEVICE, plan, &d), MICA_OK, "%s", d.msg);
    /* a 4-byte-element plan is not a device plan (f16 values are smaller) */
    int32_t w = -1;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == MICA_OP_WEIGHT)
            w = i;
    plan->offset[w] = 0;
    cr_assert_neq(mica_memplan_check(g, MICA_MEMPLAN_DEVICE, plan, &d), MICA_OK);
    cr_assert(strstr(d.msg, "needs no memory"), "%s", d.msg);
    mica_memplan_release(plan);
    mica_test_model_close(&x);
}

/* The ref runner allocates one arena of exactly the larger plan, and the
 * plans it used pass the checker in its 4-byte elements. */
Test(memplan, ref_runner_allocates_the_plan)
{
    mica_test_model_t x;
    mica_test_program_open(&x, mica_test_golden("llama-tiny.q8_0.gguf"), 8, 32, "fold-regions");
    int64_t want = 0;
    const mica_graph_t *gs[2] = {x.p->prefill, x.p->decode};
    mica_diag_t d = {0};
    for (int k = 0; k < 2; k++) {
        mica_memplan_t *plan = NULL;
        cr_assert_eq(mica_memplan_compute(gs[k], MICA_MEMPLAN_REF, &plan, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_memplan_check(gs[k], MICA_MEMPLAN_REF, plan, &d), MICA_OK, "%s", d.msg);
        want = plan->arena_bytes > want ? plan->arena_bytes : want;
        mica_memplan_release(plan);
    }
    mica_ref_program_t *r = NULL;
    cr_assert_eq(mica_ref_program_create(x.p, &r, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_program_arena_bytes(r), (uint64_t)want);
    /* and the KV cache state: 2 layers x (k, v) x [2, 32, 16] floats */
    cr_assert_eq(mica_ref_program_state_bytes(r),
                 (uint64_t)(x.cfg.n_layer * 2 * x.cfg.n_head_kv * 32 * x.cfg.head_dim * 4));
    mica_ref_program_release(r);
    mica_test_model_close(&x);
}
