#include "schedule.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Granule of a cols split without a target tile, and of an elementwise
 * cols split (16 f32 = one 64-byte line). */
#define SPLIT_COLS_GRANULE 8
#define SPLIT_ELEMWISE_GRANULE 16
/* Ops per attention score for the softmax: max, subtract, exp, sum, divide. */
#define SOFTMAX_OPS 5
/* f32 peak = int8 peak / FLOAT_PEAK_DIVISOR (see schedule.h). */
#define FLOAT_PEAK_DIVISOR 4.0
/* Nodes the summary names. */
#define SUMMARY_TOP_NODES 5

/* ------------------------------------------------------------------------ */
/* cost                                                                      */

/* Stored bytes of numel elements of dtype t (whole blocks), -1 if t has no size. */
static int64_t elems_bytes(mica_dtype_t t, int64_t numel)
{
    int64_t be = mica_dtype_block_elems(t), bb = mica_dtype_block_bytes(t);
    if (be < 1 || bb < 1)
        return -1;
    return (numel + be - 1) / be * bb;
}

static int64_t type_bytes(const mica_type_t *t)
{
    return elems_bytes(t->dtype, mica_type_numel(t));
}

static bool is_matmul_like(mica_op_t op)
{
    const mica_op_info_t *info = mica_op_info(op);
    return info && info->name && strstr(info->name, "matmul") != NULL;
}

/* Index of n's 2-D weight operand [N, K] with N the output's channels, or -1. */
static int32_t weight_operand(const mica_graph_t *g, const mica_node_t *n)
{
    int64_t channels = n->type.rank ? n->type.shape[n->type.rank - 1] : 1;
    for (int32_t k = 0; k < n->n_inputs; k++) {
        const mica_node_t *w = mica_graph_node(g, n->inputs[k].value);
        if (w && w->op == MICA_OP_WEIGHT && w->type.rank == 2 && w->type.shape[0] == channels)
            return k;
    }
    return -1;
}

/* Float ops per output element of an elementwise-like op (schedule.h). */
static int64_t ops_per_element(mica_op_t op)
{
    switch (op) {
    case MICA_OP_SILU: return 3;
    case MICA_OP_GELU: return 8;
    case MICA_OP_SOFTMAX: return SOFTMAX_OPS;
    case MICA_OP_RMS_NORM: return 4;
    case MICA_OP_ROPE: return 4;
    default: return 1; /* add, mul, scale, convert, embedding, ops of later passes */
    }
}

#define COST_FAIL(...) mica_diag_set(d, MICA_ERR_UNSUPPORTED, __VA_ARGS__)

mica_status_t mica_schedule_node_cost(const mica_graph_t *g, const mica_node_t *n,
                                      mica_node_sched_t *out, mica_diag_t *d)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    if (!info || info->category == MICA_OP_CATEGORY_BOUNDARY)
        return MICA_OK;
    int64_t numel = mica_type_numel(&n->type);
    int64_t rd = 0, wr = type_bytes(&n->type), iops = 0, fops = 0;
    if (wr < 0)
        return COST_FAIL("%%%d (%s): a %s value has no size", n->id, info->name,
                         mica_dtype_name(n->type.dtype));
    mica_type_t in[MICA_MAX_RANK]; /* the first operands' types, as the op sees them */
    for (int32_t k = 0; k < n->n_inputs; k++) {
        mica_type_t t = mica_operand_type(g, &n->inputs[k]);
        if (k < MICA_MAX_RANK)
            in[k] = t;
        int64_t b = type_bytes(&t);
        if (b < 0)
            return COST_FAIL("%%%d (%s): operand %d of type %s has no size", n->id, info->name,
                             k, mica_dtype_name(t.dtype));
        rd += b;
    }

    if (is_matmul_like(n->op) && n->n_inputs >= 2) {
        int64_t k_dim = in[0].rank ? in[0].shape[in[0].rank - 1] : 1;
        int64_t ops = 2 * numel * k_dim;
        if (in[0].dtype == MICA_DTYPE_I8 || in[0].dtype == MICA_DTYPE_I4)
            iops = ops;
        else
            fops = ops;
    } else if ((n->op == MICA_OP_ATTENTION || n->op == MICA_OP_ATTENTION_KV) &&
               n->n_inputs >= 3 && in[0].rank == 3 && in[1].rank == 3) {
        /* q [T, Hq, D]; keys [S, Hkv, D] (attention) or [Hkv, C, D] (the
         * cache of attention_kv, taken as full) */
        int64_t t_rows = in[0].shape[0], hq = in[0].shape[1], dim = in[0].shape[2];
        int64_t s = n->op == MICA_OP_ATTENTION ? in[1].shape[0] : in[1].shape[1];
        int64_t scores = t_rows * hq * s;
        fops = 2 * 2 * scores * dim + SOFTMAX_OPS * scores;
    } else if (n->op == MICA_OP_EMBEDDING && n->n_inputs == 2 && in[0].rank == 2) {
        int64_t rows = mica_type_numel(&in[1]);
        rd = rows * elems_bytes(in[0].dtype, in[0].shape[1]) + type_bytes(&in[1]);
        fops = numel;
    } else if (n->op == MICA_OP_KV_STORE && n->n_inputs == 4) {
        rd = type_bytes(&in[1]) + type_bytes(&in[2]) + type_bytes(&in[3]);
        wr = elems_bytes(n->type.dtype, mica_type_numel(&in[1]));
    } else if (n->op == MICA_OP_RASTER) {
        rd = 0;
        for (int32_t r = 0; n->regions && r < n->n_regions; r++) {
            const mica_region_t *re = &n->regions[r];
            if (re->input < 0 || re->input >= n->n_inputs)
                continue;
            int64_t cnt = 1;
            for (int32_t k = 0; k < re->rank; k++)
                cnt *= re->size[k];
            const mica_node_t *src = mica_graph_node(g, n->inputs[re->input].value);
            rd += elems_bytes(src ? src->type.dtype : n->type.dtype, cnt);
            if (re->index_input >= 0 && re->index_dim >= 0 && re->index_dim < re->rank)
                rd += elems_bytes(MICA_DTYPE_I32, re->size[re->index_dim]);
        }
    } else if (info->category == MICA_OP_CATEGORY_MOVEMENT || n->op == MICA_OP_KV_STORE) {
        /* data movement before the geometry pass: bytes only */
    } else {
        fops = numel * ops_per_element(n->op);
    }
    out->has_cost = true;
    out->bytes_read = rd;
    out->bytes_written = wr;
    out->int_ops = iops;
    out->float_ops = fops;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* split                                                                     */

static bool is_pointwise(mica_op_t op)
{
    return op == MICA_OP_ADD || op == MICA_OP_MUL || op == MICA_OP_SCALE ||
           op == MICA_OP_CONVERT || op == MICA_OP_SILU || op == MICA_OP_GELU;
}

mica_status_t mica_schedule_node_split(const mica_graph_t *g, const mica_node_t *n,
                                       const mica_target_t *t, mica_node_sched_t *out,
                                       mica_diag_t *d)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    out->split_axis = MICA_SPLIT_NONE;
    out->n_parts = 0;
    memset(out->parts, 0, sizeof out->parts);
    if (!info || info->category == MICA_OP_CATEGORY_BOUNDARY)
        return MICA_OK;
    int32_t cores = mica_target_core_count(t);
    if (cores > MICA_MAX_PARTS)
        cores = MICA_MAX_PARTS;
    int64_t numel = mica_type_numel(&n->type);
    int64_t cols = n->type.rank ? n->type.shape[n->type.rank - 1] : 1;
    int64_t rows = numel / cols;

    mica_split_axis_t axis = MICA_SPLIT_NONE;
    int64_t granule = 1;
    if (n->op == MICA_OP_ATTENTION || n->op == MICA_OP_ATTENTION_KV) {
        axis = MICA_SPLIT_ROWS; /* (token, head) pairs: the heads when T = 1 */
    } else if (n->op == MICA_OP_KV_STORE) {
        axis = MICA_SPLIT_NONE;
    } else if (is_matmul_like(n->op)) {
        if (rows >= cores) {
            axis = MICA_SPLIT_ROWS;
        } else {
            axis = MICA_SPLIT_COLS;
            /* output channels are the weight's rows, packed hp at a time */
            granule = weight_operand(g, n) >= 0 && t->tile.hp > 0 ? t->tile.hp
                                                                   : SPLIT_COLS_GRANULE;
        }
    } else if (numel < MICA_SCHEDULE_TINY_ELEMS) {
        axis = MICA_SPLIT_NONE;
    } else if (rows >= cores) {
        axis = MICA_SPLIT_ROWS;
    } else if (is_pointwise(n->op)) {
        axis = MICA_SPLIT_COLS;
        granule = SPLIT_ELEMWISE_GRANULE;
    } else if (rows >= 2) {
        axis = MICA_SPLIT_ROWS;
    }

    if (axis == MICA_SPLIT_NONE) {
        out->n_parts = 1;
        out->parts[0] = 1;
        return MICA_OK;
    }
    int32_t n_parts = 0;
    MICA_TRY(mica_target_split(t, axis == MICA_SPLIT_ROWS ? rows : cols, granule, MICA_MAX_PARTS,
                               out->parts, &n_parts, d));
    out->split_axis = axis;
    out->n_parts = n_parts;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* time                                                                      */

/* Capacity of core p of t (cores in cluster order). */
static double core_capacity(const mica_target_t *t, int32_t p)
{
    for (int c = 0; c < t->n_clusters && c < MICA_TARGET_MAX_CLUSTERS; c++) {
        if (p < t->clusters[c].count)
            return t->clusters[c].capacity;
        p -= t->clusters[c].count;
    }
    return t->n_clusters > 0 ? t->clusters[t->n_clusters - 1].capacity : 1.0;
}

/* The two roofline terms of sc on t, seconds. */
static void roofline(const mica_target_t *t, const mica_node_sched_t *sc, double *out_mem,
                     double *out_compute)
{
    double bytes = (double)sc->bytes_read + (double)sc->bytes_written;
    *out_mem = t->bandwidth_gbs > 0 ? bytes / (t->bandwidth_gbs * 1e9) : 0.0;
    double int_peak = t->int8_gops * 1e9, float_peak = int_peak / FLOAT_PEAK_DIVISOR;
    double compute = 0.0;
    int64_t total = 0;
    for (int32_t p = 0; p < sc->n_parts; p++)
        total += sc->parts[p];
    int32_t n_parts = sc->n_parts > 0 && total > 0 ? sc->n_parts : 1;
    for (int32_t p = 0; p < n_parts && int_peak > 0; p++) {
        double share = sc->n_parts > 0 && total > 0 ? (double)sc->parts[p] / (double)total : 1.0;
        if (share <= 0)
            continue;
        double cap = core_capacity(t, p);
        double tp = share * ((double)sc->int_ops / (int_peak * cap) +
                             (double)sc->float_ops / (float_peak * cap));
        if (tp > compute)
            compute = tp;
    }
    *out_compute = compute;
}

int64_t mica_schedule_time_ns(const mica_target_t *t, const mica_node_sched_t *sc)
{
    if (!sc->has_cost)
        return 0;
    double mem, compute;
    roofline(t, sc, &mem, &compute);
    double s = mem > compute ? mem : compute;
    return (int64_t)ceil(s * 1e9 - 1e-6); /* exact values stay exact */
}

/* ------------------------------------------------------------------------ */
/* the pass                                                                  */

mica_status_t mica_schedule_graph(mica_graph_t *g, const mica_target_t *t, mica_diag_t *d)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        mica_node_t *n = g->nodes[i];
        mica_node_sched_t sc = n->sched;
        MICA_TRY(mica_schedule_node_split(g, n, t, &sc, d));
        MICA_TRY(mica_schedule_node_cost(g, n, &sc, d));
        sc.time_ns = mica_schedule_time_ns(t, &sc);
        n->sched = sc;
    }
    return MICA_OK;
}

mica_status_t mica_pass_schedule_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    if (ctx->target)
        return mica_schedule_graph(*g, ctx->target, ctx->diag);
    mica_target_t t;
    MICA_TRY(mica_target_find(MICA_SCHEDULE_DEFAULT_TARGET, &t, ctx->diag));
    return mica_schedule_graph(*g, &t, ctx->diag);
}

int64_t mica_schedule_total_ns(const mica_graph_t *g)
{
    int64_t total = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->sched.has_cost)
            total += g->nodes[i]->sched.time_ns;
    return total;
}

/* ------------------------------------------------------------------------ */
/* summary                                                                   */

/* ns as "850 ns", "12.3 us", "4.56 ms" or "1.23 s". */
static void fmt_time(char *buf, size_t cap, double ns)
{
    if (ns < 1e3)
        snprintf(buf, cap, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, cap, "%.3g us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.3g ms", ns / 1e6);
    else
        snprintf(buf, cap, "%.3g s", ns / 1e9);
}

static double pct(int64_t part, int64_t total)
{
    return total > 0 ? 100.0 * (double)part / (double)total : 0.0;
}

/* A growing string for the summary (ir/text_internal.h is not ours). */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf_t;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int need = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (need < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->n + (size_t)need < b->cap) {
            b->n += (size_t)need;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 512;
        while (cap < b->n + (size_t)need + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Name of the first weight operand of n, or NULL. */
static const char *weight_name(const mica_graph_t *g, const mica_node_t *n)
{
    for (int32_t k = 0; k < n->n_inputs; k++) {
        const mica_node_t *w = mica_graph_node(g, n->inputs[k].value);
        if (w && w->op == MICA_OP_WEIGHT)
            return mica_node_name(w);
    }
    return NULL;
}

char *mica_schedule_summary(const mica_graph_t *g, const mica_target_t *t)
{
    int64_t total = 0, mem_bound = 0;
    int32_t costed = 0;
    int64_t kind_ns[MICA_OP_COUNT] = {0};
    int32_t kind_n[MICA_OP_COUNT] = {0};
    int32_t top[SUMMARY_TOP_NODES];
    int32_t n_top = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        const mica_node_sched_t *sc = &n->sched;
        if (!sc->has_cost)
            continue;
        costed++;
        total += sc->time_ns;
        if ((unsigned)n->op < MICA_OP_COUNT) {
            kind_ns[n->op] += sc->time_ns;
            kind_n[n->op]++;
        }
        if (t) {
            double mem, compute;
            roofline(t, sc, &mem, &compute);
            if (mem >= compute)
                mem_bound += sc->time_ns;
        }
        /* keep the slowest nodes, slowest first (ties: the earlier node) */
        int32_t at = n_top;
        while (at > 0 && g->nodes[top[at - 1]]->sched.time_ns < sc->time_ns)
            at--;
        if (at < SUMMARY_TOP_NODES) {
            int32_t last = n_top < SUMMARY_TOP_NODES ? n_top : SUMMARY_TOP_NODES - 1;
            memmove(&top[at + 1], &top[at], (size_t)(last - at) * sizeof top[0]);
            top[at] = i;
            if (n_top < SUMMARY_TOP_NODES)
                n_top++;
        }
    }
    if (costed == 0)
        return NULL;

    sbuf_t b = {0};
    char tb[32];
    fmt_time(tb, sizeof tb, (double)total);
    sb_printf(&b, "# schedule: total %s predicted for %d ops", tb, costed);
    if (t)
        sb_printf(&b, " on %s (%d cores, %.4g GB/s, %.4g int8 GOP/s per core); %.0f%% of it "
                      "memory-bound",
                  t->name, mica_target_core_count(t), t->bandwidth_gbs, t->int8_gops,
                  pct(mem_bound, total));
    sb_printf(&b, "\n# schedule by op:");
    bool used[MICA_OP_COUNT] = {false};
    for (int k = 0; k < MICA_OP_COUNT; k++) {
        int best = -1;
        for (int o = 0; o < MICA_OP_COUNT; o++)
            if (!used[o] && kind_n[o] > 0 && (best < 0 || kind_ns[o] > kind_ns[best]))
                best = o;
        if (best < 0)
            break;
        used[best] = true;
        fmt_time(tb, sizeof tb, (double)kind_ns[best]);
        sb_printf(&b, "%s %d %s %s (%.1f%%)", k ? "," : "", kind_n[best],
                  mica_op_info((mica_op_t)best)->name, tb, pct(kind_ns[best], total));
    }
    sb_printf(&b, "\n# schedule slowest:");
    for (int32_t k = 0; k < n_top; k++) {
        const mica_node_t *n = g->nodes[top[k]];
        const char *w = weight_name(g, n);
        fmt_time(tb, sizeof tb, (double)n->sched.time_ns);
        sb_printf(&b, "%s %%%d %s%s%s%s %s (%.1f%%)", k ? "," : "", top[k],
                  mica_op_info(n->op)->name, w ? "(" : "", w ? w : "", w ? ")" : "", tb,
                  pct(n->sched.time_ns, total));
    }
    sb_printf(&b, "\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
