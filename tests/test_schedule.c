/* The schedule pass (passes/schedule.h): splits in proportion to core
 * capacity, costs against hand arithmetic from the shapes and dtype sizes,
 * roofline times against bytes / bandwidth and ops / peak computed here
 * from the target's declared numbers, and the pass only annotating: the
 * static program computes the same logits on ref before and after it. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "program.h"
#include "ref_program.h"
#include "schedule.h"
#include "target.h"
#include "test_support.h"

static mica_target_t target(const char *name)
{
    mica_target_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_find(name, &t, &d), MICA_OK, "%s", d.msg);
    return t;
}

static mica_graph_t *parse(const char *text)
{
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_parse(text, strlen(text), &g, &d), MICA_OK, "%s", d.msg);
    return g;
}

static void schedule(mica_graph_t *g, const mica_target_t *t)
{
    mica_diag_t d = {0};
    cr_assert_eq(mica_schedule_graph(g, t, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
}

/* x [rows, 64] times a q8_0 weight [384, 64]. */
static mica_graph_t *matmul_graph(int rows)
{
    char text[512];
    snprintf(text, sizeof text,
             "# mica ir 1\n"
             "%%0 = input() {name=\"x\"} : f32[%d,64]\n"
             "%%1 = weight() {name=\"w\"} : q8_0[384,64]\n"
             "%%2 = matmul(%%0, %%1) : f32[%d,384]\n"
             "%%3 = output(%%2) {name=\"y\"} : f32[%d,384]\n",
             rows, rows, rows);
    return parse(text);
}

/* A copy of x86-avx2 with two cores of capacity 1.0 and two of 0.5. */
static mica_target_t big_little(void)
{
    mica_target_t t = target("x86-avx2");
    t.n_clusters = 2;
    t.clusters[0].count = 2;
    t.clusters[0].capacity = 1.0f;
    t.clusters[1] = t.clusters[0];
    t.clusters[1].capacity = 0.5f;
    cr_assert_eq(t.tile.hp, 8);
    return t;
}

Test(schedule, fast_cores_get_twice_the_work)
{
    mica_target_t t = big_little();
    /* decode: one row, 384 channels = 48 tiles of 8 over weights 2+2+1+1 */
    mica_graph_t *g = matmul_graph(1);
    schedule(g, &t);
    const mica_node_sched_t *sc = &g->nodes[2]->sched;
    cr_assert_eq(sc->split_axis, MICA_SPLIT_COLS);
    cr_assert_eq(sc->n_parts, 4);
    cr_assert_eq(sc->parts[0], 128);
    cr_assert_eq(sc->parts[1], 128);
    cr_assert_eq(sc->parts[2], 64);
    cr_assert_eq(sc->parts[3], 64);
    mica_graph_release(g);
    /* prefill: 60 rows */
    g = matmul_graph(60);
    schedule(g, &t);
    sc = &g->nodes[2]->sched;
    cr_assert_eq(sc->split_axis, MICA_SPLIT_ROWS);
    cr_assert_eq(sc->n_parts, 4);
    cr_assert(sc->parts[0] == 20 && sc->parts[1] == 20 && sc->parts[2] == 10 && sc->parts[3] == 10,
              "rows %lld %lld %lld %lld", (long long)sc->parts[0], (long long)sc->parts[1],
              (long long)sc->parts[2], (long long)sc->parts[3]);
    /* the slowest part is any of them: 20 rows at 1.0 or 10 at 0.5 */
    double ops = 2.0 * 60 * 384 * 64, peak = t.int8_gops * 1e9 / 4;
    double want = ceil(ops * 20 / 60 / peak * 1e9);
    double mem = ceil((60 * 64 * 4 + 384 * 2 * 34 + 60 * 384 * 4) / (t.bandwidth_gbs * 1e9) * 1e9);
    cr_assert_leq(fabs((double)sc->time_ns - fmax(want, mem)), 1.0, "%lld", (long long)sc->time_ns);
    mica_graph_release(g);
}

Test(schedule, sd8gen3_split_is_proportional)
{
    mica_target_t t = target("sd8gen3");
    mica_graph_t *g = matmul_graph(1);
    schedule(g, &t);
    const mica_node_sched_t *sc = &g->nodes[2]->sched;
    cr_assert_eq(sc->split_axis, MICA_SPLIT_COLS);
    cr_assert_eq(sc->n_parts, 8);
    /* capacities of the 8 cores read from the target, fastest first */
    double cap[8], sum = 0;
    int p = 0;
    for (int c = 0; c < t.n_clusters; c++)
        for (int k = 0; k < t.clusters[c].count; k++)
            sum += cap[p++] = t.clusters[c].capacity;
    cr_assert_eq(p, 8);
    int64_t total = 0;
    for (int k = 0; k < 8; k++) {
        double share = 384.0 * cap[k] / sum;
        cr_assert_leq(fabs((double)sc->parts[k] - share), (double)t.tile.hp,
                      "core %d: %lld for a share of %.1f", k, (long long)sc->parts[k], share);
        cr_assert_eq(sc->parts[k] % t.tile.hp, 0);
        if (k > 0 && cap[k] <= cap[k - 1])
            cr_assert_leq(sc->parts[k], sc->parts[k - 1] + t.tile.hp, "core %d beats a faster one", k);
        total += sc->parts[k];
    }
    cr_assert_eq(total, 384);
    cr_assert_gt(sc->parts[0], sc->parts[7] * 2, "the prime core beats an efficiency core");
    /* all 8 parts print and parse back */
    char *text = mica_graph_print(g);
    mica_graph_t *h = parse(text);
    cr_assert_eq(h->nodes[2]->sched.n_parts, 8);
    cr_assert_eq(memcmp(h->nodes[2]->sched.parts, sc->parts, sizeof sc->parts), 0);
    char *again = mica_graph_print(h);
    cr_assert_str_eq(again, text);
    free(text);
    free(again);
    mica_graph_release(h);
    mica_graph_release(g);
}

Test(schedule, costs_of_a_matmul_and_an_add_by_hand)
{
    const char *text = "# mica ir 1\n"
                       "%0 = input() {name=\"x\"} : f32[3,64]\n"
                       "%1 = weight() {name=\"w\"} : q4_1[96,64]\n"
                       "%2 = matmul(%0, %1) : f32[3,96]\n"
                       "%3 = input() {name=\"b\"} : f32[96]\n"
                       "%4 = add(%2, %3) : f32[3,96]\n"
                       "%5 = output(%4) {name=\"y\"} : f32[3,96]\n";
    mica_graph_t *g = parse(text);
    mica_target_t t = target("rpi5");
    schedule(g, &t);
    const mica_node_sched_t *mm = &g->nodes[2]->sched, *add = &g->nodes[4]->sched;
    /* q4_1: 20 bytes per 32 weights */
    cr_assert_eq(mm->bytes_read, 3 * 64 * 4 + 96 * 64 / 32 * 20);
    cr_assert_eq(mm->bytes_written, 3 * 96 * 4);
    cr_assert_eq(mm->float_ops, 2 * 3 * 96 * 64);
    cr_assert_eq(mm->int_ops, 0);
    cr_assert_eq(add->bytes_read, 3 * 96 * 4 + 96 * 4);
    cr_assert_eq(add->bytes_written, 3 * 96 * 4);
    cr_assert_eq(add->float_ops, 3 * 96);
    /* 288 elements: tiny, one core */
    cr_assert_eq(add->split_axis, MICA_SPLIT_NONE);
    cr_assert(add->n_parts == 1 && add->parts[0] == 1);
    /* the boundary ops carry nothing */
    cr_assert(!g->nodes[0]->sched.has_cost && g->nodes[0]->sched.n_parts == 0);
    cr_assert(!g->nodes[5]->sched.has_cost);
    cr_assert_eq(mica_schedule_total_ns(g), mm->time_ns + add->time_ns);
    char *s = mica_schedule_summary(g, &t);
    cr_assert_not_null(s);
    cr_assert(strncmp(s, "# schedule: total ", 18) == 0, "%s", s);
    cr_assert(strstr(s, "1 matmul") && strstr(s, "1 add") && strstr(s, "on rpi5"), "%s", s);
    free(s);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* SmolLM2                                                                   */

typedef struct smol {
    mica_gguf_t *f;
    mica_model_config_t cfg;
    mica_program_t *p;
} smol_t;

static void smol_open(smol_t *x, int64_t chunk)
{
    const char *path = getenv("MICA_DEFAULT_MODEL");
    cr_assert(path && *path, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh");
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(path, &x->f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_config_from_gguf(x->f, &x->cfg, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_program_build(x->f, &x->cfg, chunk, 512, &x->p, &d), MICA_OK, "%s", d.msg);
}

static void smol_close(smol_t *x)
{
    mica_program_release(x->p);
    mica_gguf_close(x->f);
}

/* The matmul-like op reading weight NAME (matmul: operand 1; qmatmul:
 * operand 2, the integer weights). */
static const mica_node_t *matmul_of(const mica_graph_t *g, const char *name)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        int32_t k = n->op == MICA_OP_MATMUL ? 1 : n->op == MICA_OP_QMATMUL ? 2 : -1;
        if (k < 0)
            continue;
        const mica_node_t *w = g->nodes[n->inputs[k].value];
        if (w->op == MICA_OP_WEIGHT && !strcmp(mica_node_name(w), name))
            return n;
    }
    cr_assert_fail("no matmul reads %s", name);
    return NULL;
}

static void check_every_part_sums(const mica_graph_t *g)
{
    int scheduled = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        const mica_node_sched_t *sc = &n->sched;
        bool boundary = mica_op_info(n->op)->category == MICA_OP_CATEGORY_BOUNDARY;
        cr_assert_eq(sc->n_parts > 0, !boundary, "%%%d", i);
        cr_assert_eq(sc->has_cost, !boundary, "%%%d", i);
        if (boundary)
            continue;
        int64_t numel = 1;
        for (int32_t k = 0; k < n->type.rank; k++)
            numel *= n->type.shape[k];
        int64_t last = n->type.rank ? n->type.shape[n->type.rank - 1] : 1;
        int64_t want = sc->split_axis == MICA_SPLIT_ROWS   ? numel / last
                       : sc->split_axis == MICA_SPLIT_COLS ? last
                                                           : 1;
        int64_t sum = 0;
        for (int32_t k = 0; k < sc->n_parts; k++) {
            cr_assert_geq(sc->parts[k], 0);
            sum += sc->parts[k];
        }
        cr_assert_eq(sum, want, "%%%d: parts sum to %lld of %lld", i, (long long)sum,
                     (long long)want);
        cr_assert_gt(sc->time_ns, 0, "%%%d", i);
        scheduled++;
    }
    cr_assert_gt(scheduled, 500);
}

Test(schedule_smollm, programs_parts_costs_and_roofline, .timeout = 120)
{
    smol_t x;
    mica_target_t t = target("x86-avx512vnni");
    smol_open(&x, t.prefill_chunk);
    mica_diag_t d = {0};
    mica_pass_ctx_t ctx;
    cr_assert_eq(mica_pass_ctx_init(&ctx, &t, NULL, &d), MICA_OK);
    cr_assert_eq(mica_pipeline_run_ctx(&ctx, &x.p->decode, "schedule", true, &d), MICA_OK, "%s",
                 d.msg);
    cr_assert_eq(mica_pipeline_run_ctx(&ctx, &x.p->prefill, "schedule", true, &d), MICA_OK, "%s",
                 d.msg);
    mica_pass_ctx_deinit(&ctx);
    check_every_part_sums(x.p->decode);
    check_every_part_sums(x.p->prefill);

    /* decode (w4a8, the default): the q projection reads the int8 row, its
     * scales per 32, the u4 weight and its f16 scales and mins: memory-bound */
    const int64_t D = x.cfg.n_embd, F = x.cfg.n_ff, T = x.p->chunk;
    const mica_node_t *q = matmul_of(x.p->decode, "blk.0.attn_q.weight.q");
    cr_assert_eq(x.p->decode->nodes[q->inputs[2].value]->type.dtype, MICA_DTYPE_U4);
    int64_t rd = D + D / 32 * 4 + D * D / 2 + 2 * (D * (D / 32) * 2), wr = D * 4;
    cr_assert_eq(q->sched.bytes_read, rd);
    cr_assert_eq(q->sched.bytes_written, wr);
    cr_assert_eq(q->sched.int_ops, 2 * D * D);
    cr_assert_eq(q->sched.float_ops, 0);
    cr_assert_eq(q->sched.split_axis, MICA_SPLIT_COLS);
    double mem_ns = (double)(rd + wr) / t.bandwidth_gbs; /* GB/s = bytes per ns */
    cr_assert_leq(fabs((double)q->sched.time_ns - ceil(mem_ns)), 1.0, "%lld vs %.1f",
                  (long long)q->sched.time_ns, mem_ns);

    /* prefill: the merged gate+up projection (fuse) over the chunk, rows
     * split evenly over 8 equal cores: integer ops of one part over one
     * core's int8 peak, compute-bound */
    const mica_node_t *gate = matmul_of(x.p->prefill, "blk.3.ffn_gate_up.weight.q");
    cr_assert_eq(gate->sched.split_axis, MICA_SPLIT_ROWS);
    cr_assert_eq(gate->sched.n_parts, 8);
    double ops = 2.0 * (double)T * (double)(2 * F) * (double)D;
    cr_assert_eq(gate->sched.int_ops, (int64_t)ops);
    double part_ns = ops * (double)gate->sched.parts[0] / (double)T / t.int8_gops;
    double gate_mem = (double)(gate->sched.bytes_read + gate->sched.bytes_written) / t.bandwidth_gbs;
    cr_assert_gt(part_ns, gate_mem, "this matmul should be compute-bound");
    cr_assert_leq(fabs((double)gate->sched.time_ns - ceil(part_ns)), 1.0, "%lld vs %.1f",
                  (long long)gate->sched.time_ns, part_ns);

    /* decode attention splits its heads */
    for (int32_t i = 0; i < x.p->decode->n_nodes; i++) {
        const mica_node_t *n = x.p->decode->nodes[i];
        if (n->op == MICA_OP_ATTENTION_KV) {
            cr_assert_eq(n->sched.split_axis, MICA_SPLIT_ROWS);
            int64_t busy = 0;
            for (int32_t k = 0; k < n->sched.n_parts; k++)
                busy += n->sched.parts[k] > 0;
            cr_assert_eq(busy, x.cfg.n_head < 8 ? x.cfg.n_head : 8);
        }
    }
    smol_close(&x);
}

/* ------------------------------------------------------------------------ */
/* the pass only annotates                                                   */

Test(schedule, ref_logits_unchanged_by_the_pass)
{
    const char *file = mica_test_golden("llama-tiny.q4_1.gguf");
    mica_diag_t d = {0};
    mica_gguf_t *f = NULL;
    mica_model_config_t cfg;
    cr_assert_eq(mica_gguf_open(file, &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_config_from_gguf(f, &cfg, &d), MICA_OK, "%s", d.msg);
    const int32_t ids[6] = {1, 5, 9, 2, 7, 3};
    const size_t V = (size_t)cfg.n_vocab;
    float *out[2];
    for (int run = 0; run < 2; run++) {
        mica_program_t *p = NULL;
        cr_assert_eq(mica_program_build(f, &cfg, 4, 16, &p, &d), MICA_OK, "%s", d.msg);
        const char *after = run ? "schedule" : "memplan";
        cr_assert_eq(mica_pipeline_run(&p->prefill, after, true, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_pipeline_run(&p->decode, after, true, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_schedule_total_ns(p->decode) > 0, run == 1);
        mica_ref_program_t *r = NULL;
        cr_assert_eq(mica_ref_program_create(p, &r, &d), MICA_OK, "%s", d.msg);
        out[run] = malloc(2 * V * sizeof(float));
        /* a prefill of 5 (chunks 4 + 1), then one decode step */
        cr_assert_eq(mica_ref_program_eval(r, ids, 5, false, out[run], &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_ref_program_eval(r, &ids[5], 1, false, out[run] + V, &d), MICA_OK, "%s",
                     d.msg);
        mica_ref_program_release(r);
        mica_program_release(p);
    }
    bool nonzero = false;
    for (size_t i = 0; i < 2 * V; i++)
        nonzero |= out[0][i] != 0.0f;
    cr_assert(nonzero);
    cr_assert_eq(memcmp(out[0], out[1], 2 * V * sizeof(float)), 0, "logits changed");
    free(out[0]);
    free(out[1]);
    mica_gguf_close(f);
}

Test(schedule, pass_without_a_target_uses_the_declared_default)
{
    mica_graph_t *a = matmul_graph(1), *b = matmul_graph(1);
    mica_diag_t d = {0};
    cr_assert_eq(mica_pipeline_run(&a, "schedule", true, &d), MICA_OK, "%s", d.msg);
    mica_target_t t = target(MICA_SCHEDULE_DEFAULT_TARGET);
    schedule(b, &t);
    char *ta = mica_graph_print(a), *tb = mica_graph_print(b);
    cr_assert(strstr(tb, "split=cols[96,96,96,96]"), "%s", tb); /* 4 equal cores */
    /* a's memplan offsets aside, the schedule annotations agree */
    cr_assert_eq(a->nodes[2]->sched.time_ns, b->nodes[2]->sched.time_ns);
    cr_assert_eq(memcmp(a->nodes[2]->sched.parts, b->nodes[2]->sched.parts,
                        sizeof a->nodes[2]->sched.parts),
                 0);
    free(ta);
    free(tb);
    mica_graph_release(a);
    mica_graph_release(b);
}
