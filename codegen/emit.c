#include "emit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "half.h"
#include "memplan.h"
#include "rewrite.h"

extern char **environ;

/* ------------------------------------------------------------------------ */
/* the generated kernels                                                     */

typedef struct kernel_entry {
    const char *family, *name, *isa;
} kernel_entry_t;

static const kernel_entry_t kernels[] = {
#define MICA_KERNEL(family, name, isa, params) {#family, #name, #isa},
#include "kernel_list.inc"
#undef MICA_KERNEL
    {NULL, NULL, NULL},
};

typedef struct source_entry {
    const char *name, *text;
} source_entry_t;

static const source_entry_t sources[] = {
#include "kernel_sources.inc"
    {NULL, NULL},
};

static const char *kernel_name(const char *family, const char *isa)
{
    for (size_t i = 0; kernels[i].name; i++)
        if (!strcmp(kernels[i].family, family) && !strcmp(kernels[i].isa, isa))
            return kernels[i].name;
    return NULL;
}

static const char *source_text(const char *name)
{
    for (size_t i = 0; sources[i].name; i++)
        if (!strcmp(sources[i].name, name))
            return sources[i].text;
    return NULL;
}

/* target tile -> kernel ISA, as codegen/kernels/isa.py TILE_ISA */
static const struct {
    const char *tile, *isa;
    int32_t hp, lp;
} tile_isa[] = {
    {"scalar", "scalar", 8, 4},         {"avx2", "avx2", 8, 4}, {"avxvnni", "avx2", 8, 4},
    {"avx512vnni", "avx512vnni", 64, 4}, {"neon", "neon", 8, 4}, {"sdot", "dotprod", 8, 4},
    {"i8mm", "i8mm", 8, 8},
};

mica_status_t mica_emit_kernel_isa(const mica_target_t *t, const char **out_isa, mica_diag_t *d)
{
    if (t->arch == MICA_TARGET_ARCH_OPENCL)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "target %s is a GPU: OpenCL code generation is not built yet",
                             t->name);
    for (size_t i = 0; i < sizeof tile_isa / sizeof tile_isa[0]; i++)
        if (!strcmp(tile_isa[i].tile, t->tile.name)) {
            *out_isa = tile_isa[i].isa;
            return MICA_OK;
        }
    return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "target %s: no kernels for tile '%s'", t->name,
                         t->tile.name);
}

/* ------------------------------------------------------------------------ */
/* emission state                                                            */

typedef struct emit {
    const mica_emit_request_t *req;
    const mica_graph_t *g;
    int graph;          /* 0 prefill, 1 decode */
    const char *gname;  /* "prefill" / "decode" */
    int64_t chunk;      /* static rows of a token-major value: chunk or 1 */
    const char *isa;
    mica_uses_t uses;
    bool *skip;         /* [n_nodes] emitted by another node (fusion) */
    int32_t n_ops;      /* scheduled ops emitted so far */
    FILE *body;         /* the run function's statements */
    FILE *tasks;        /* task functions */
    FILE *table;        /* mica_abi_op_t initializers */
    mica_diag_t *d;
} emit_t;

static mica_status_t unsupported(emit_t *e, const mica_node_t *n, const char *why)
{
    return mica_diag_set(e->d, MICA_ERR_UNSUPPORTED, "codegen (%s, %s graph): %%%d %s: %s", e->isa,
                         e->gname, n->id, mica_op_info(n->op)->name, why);
}

static int64_t elem_bytes(mica_dtype_t t)
{
    switch (t) {
    case MICA_DTYPE_F32:
    case MICA_DTYPE_I32:
        return 4;
    case MICA_DTYPE_F16:
    case MICA_DTYPE_BF16:
        return 2;
    case MICA_DTYPE_I8:
        return 1;
    default:
        return 0;
    }
}

static uint64_t weight_offset(emit_t *e, const char *name, bool *found)
{
    for (int64_t k = 0; k < e->req->n_weights; k++)
        if (!strcmp(e->req->weights[k].name, name)) {
            *found = true;
            return e->req->weights[k].offset;
        }
    *found = false;
    return 0;
}

/* Index of state NAME in the prefill graph's state order. */
static int32_t state_index(emit_t *e, const char *name)
{
    const mica_graph_t *g = e->req->program->prefill;
    int32_t k = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == MICA_OP_STATE) {
            if (!strcmp(mica_node_name(g->nodes[i]), name))
                return k;
            k++;
        }
    return -1;
}

/* The C expression of the byte address of value v (no view). */
static mica_status_t value_addr(emit_t *e, int32_t v, char *buf, size_t cap)
{
    const mica_node_t *n = e->g->nodes[v];
    if (n->op == MICA_OP_WEIGHT) {
        bool found;
        uint64_t off = weight_offset(e, mica_node_name(n), &found);
        if (!found)
            return unsupported(e, n, "weight not in weights.bin");
        snprintf(buf, cap, "(W + %" PRIu64 ")", off);
        return MICA_OK;
    }
    if (n->op == MICA_OP_STATE) {
        int32_t s = state_index(e, mica_node_name(n));
        if (s < 0)
            return unsupported(e, n, "state not in the prefill graph");
        snprintf(buf, cap, "S[%d]", s);
        return MICA_OK;
    }
    if (n->op == MICA_OP_KV_STORE)
        return value_addr(e, n->inputs[0].value, buf, cap);
    if (!n->sched.has_mem)
        return unsupported(e, n, "value has no arena memory");
    snprintf(buf, cap, "(A + %" PRId64 ")", n->sched.mem_offset);
    return MICA_OK;
}

/* Address of an operand (with its view offset), cast to ctype. */
static mica_status_t operand_addr(emit_t *e, const mica_operand_t *o, const char *ctype, char *buf,
                                  size_t cap)
{
    char base[112];
    MICA_TRY(value_addr(e, o->value, base, sizeof base));
    const mica_node_t *v = e->g->nodes[o->value];
    int64_t off = 0;
    if (o->has_view) {
        int64_t eb = elem_bytes(v->type.dtype);
        if (!eb)
            return unsupported(e, v, "a view of a packed or block-typed value");
        off = o->view.offset * eb;
    }
    if (off)
        snprintf(buf, cap, "((%s)(%s + %" PRId64 "))", ctype, base, off);
    else
        snprintf(buf, cap, "((%s)%s)", ctype, base);
    return MICA_OK;
}

/* An operand as a matrix [rows, cols] with row stride ld (elements) and
 * contiguous rows. */
static mica_status_t as_matrix(emit_t *e, const mica_node_t *n, const mica_operand_t *o,
                               int64_t *rows, int64_t *cols, int64_t *ld)
{
    mica_type_t t = mica_operand_type(e->g, o);
    *cols = t.rank ? t.shape[t.rank - 1] : 1;
    *rows = mica_type_numel(&t) / *cols;
    *ld = *cols;
    if (!o->has_view)
        return MICA_OK;
    const int r = o->view_rank;
    if (r >= 1 && o->view.stride[r - 1] != 1 && o->view_shape[r - 1] > 1)
        return unsupported(e, n, "an operand view whose last dim is strided");
    if (r >= 2) {
        *ld = o->view.stride[r - 2];
        for (int k = r - 3; k >= 0; k--)
            if (o->view_shape[k] > 1 && o->view.stride[k] != o->view.stride[k + 1] * o->view_shape[k + 1])
                return unsupported(e, n, "an operand view whose rows are not evenly strided");
    }
    return MICA_OK;
}

/* [T, H, D] operand strides (t, h) with D contiguous. */
static mica_status_t as_thd(emit_t *e, const mica_node_t *n, const mica_operand_t *o, int64_t *st,
                            int64_t *sh)
{
    mica_type_t t = mica_operand_type(e->g, o);
    if (t.rank != 3)
        return unsupported(e, n, "expects a [T, H, D] operand");
    if (!o->has_view) {
        *st = t.shape[1] * t.shape[2];
        *sh = t.shape[2];
        return MICA_OK;
    }
    if (o->view.stride[2] != 1)
        return unsupported(e, n, "a [T, H, D] view with strided D");
    *st = o->view.stride[0];
    *sh = o->view.stride[1];
    return MICA_OK;
}

/* The rows of value n valid in a call: a C expression. Token-major values
 * of prefill (first dim == chunk) have n_tokens * (rows / chunk). */
static void rows_expr(emit_t *e, const mica_node_t *n, int64_t rows, char *buf, size_t cap)
{
    if (e->graph == 0 && e->chunk > 1 && n->type.rank >= 1 && n->type.shape[0] == e->chunk &&
        rows % e->chunk == 0)
        snprintf(buf, cap, "((int64_t)r->n_tokens * %" PRId64 ")", rows / e->chunk);
    else
        snprintf(buf, cap, "((int64_t)%" PRId64 ")", rows);
}

/* Opens a task function for node n and emits its range prologue: lo/hi
 * over rows (ROWS split, scaled to the valid rows) and c0/c1 over columns
 * (COLS split, static). Returns the number of parts the call runs. */
static int32_t task_open(emit_t *e, const mica_node_t *n, int64_t rows, int64_t cols,
                         bool cols_ok)
{
    FILE *f = e->tasks;
    const mica_node_sched_t *s = &n->sched;
    char rv[160];
    rows_expr(e, n, rows, rv, sizeof rv);
    fprintf(f, "\nstatic void %s_%d(void *ctx, uint32_t part)\n{\n", e->gname, n->id);
    fprintf(f, "    const run_t *r = ctx;\n    uint8_t *A = r->A;\n    const uint8_t *W = r->W;\n"
               "    uint8_t *const *S = r->S;\n    (void)A; (void)W; (void)S;\n");
    fprintf(f, "    const int64_t rv = %s;\n", rv);
    int32_t parts = 1;
    mica_split_axis_t axis = s->split_axis;
    if (axis == MICA_SPLIT_COLS && !cols_ok)
        axis = MICA_SPLIT_NONE;
    if (axis != MICA_SPLIT_NONE && s->n_parts > 1) {
        parts = s->n_parts;
        fprintf(f, "    static const int64_t cum[%d] = {0", parts + 1);
        int64_t c = 0;
        for (int32_t p = 0; p < parts; p++) {
            c += s->parts[p];
            fprintf(f, ", %" PRId64, c);
        }
        fprintf(f, "};\n");
    }
    if (axis == MICA_SPLIT_ROWS && parts > 1) {
        fprintf(f, "    const int32_t lo = (int32_t)(cum[part] * rv / %" PRId64
                   "), hi = (int32_t)(cum[part + 1] * rv / %" PRId64 ");\n",
                rows, rows);
        fprintf(f, "    const int32_t c0 = 0, c1 = %" PRId64 ";\n", cols);
    } else if (axis == MICA_SPLIT_COLS && parts > 1) {
        fprintf(f, "    const int32_t lo = 0, hi = (int32_t)rv;\n");
        fprintf(f, "    const int32_t c0 = (int32_t)cum[part], c1 = (int32_t)cum[part + 1];\n");
    } else {
        fprintf(f, "    const int32_t lo = 0, hi = (int32_t)rv;\n");
        fprintf(f, "    const int32_t c0 = 0, c1 = %" PRId64 ";\n", cols);
        fprintf(f, "    (void)part;\n");
    }
    fprintf(f, "    (void)lo; (void)hi; (void)c0; (void)c1;\n");
    return parts;
}

static void task_close(emit_t *e) { fprintf(e->tasks, "}\n"); }

/* The run function's call of node n's task, and its profile entry. */
static bool is_head(emit_t *e, const mica_node_t *n);

static void task_call(emit_t *e, const mica_node_t *n, int32_t parts, const char *kernel)
{
    int32_t i = e->n_ops++;
    FILE *b = e->body;
    fprintf(b, "    if (env->trace) env->trace(env->trace_ctx, %d, %d, 1);\n", e->graph, i);
    /* the head of a prompt chunk whose logits nobody reads (logits_all < 0)
     * is skipped; its time then counts as zero in a profile */
    const char *guard = is_head(e, n) ? "if (r.logits_all >= 0) " : "";
    if (parts > 1)
        fprintf(b, "    %senv->parallel_for(env->pool, %d, %s_%d, &r);\n", guard, parts, e->gname,
                n->id);
    else
        fprintf(b, "    %s%s_%d(&r, 0);\n", guard, e->gname, n->id);
    fprintf(b, "    if (env->trace) env->trace(env->trace_ctx, %d, %d, 0);\n", e->graph, i);
    char shape[160] = "";
    size_t at = 0;
    for (int32_t k = 0; k < n->type.rank && at < sizeof shape - 24; k++)
        at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%" PRId64, k ? "," : "",
                               n->type.shape[k]);
    const mica_node_sched_t *s = &n->sched;
    fprintf(e->table, "    {\"%%%d %s %s[%s]\", \"%s\", %" PRId64 "u, %" PRId64 "u, %.1f, %d},\n",
            n->id, mica_op_info(n->op)->name, mica_dtype_name(n->type.dtype), shape, kernel,
            s->bytes_read + s->bytes_written, s->int_ops + s->float_ops, (double)s->time_ns,
            parts);
}

/* ------------------------------------------------------------------------ */
/* one op                                                                    */

static mica_status_t need_kernel(emit_t *e, const mica_node_t *n, const char *family,
                                 const char **out)
{
    const char *k = kernel_name(family, e->isa);
    *out = k ? k : "";
    if (!k) {
        char why[160];
        snprintf(why, sizeof why, "no generated kernel %s for %s", family, e->isa);
        return unsupported(e, n, why);
    }
    return MICA_OK;
}

#define ADDR(o, ctype, buf) MICA_TRY(operand_addr(e, (o), (ctype), (buf), sizeof(buf)))
#define VADDR(v, buf) MICA_TRY(value_addr(e, (v), (buf), sizeof(buf)))

/* Bytes of a value in the arena (device sizes, as memplan counts them). */
static int64_t value_bytes(const mica_type_t *t)
{
    int64_t eb = elem_bytes(t->dtype);
    return mica_type_numel(t) * (eb ? eb : 4);
}

static bool is_head(emit_t *e, const mica_node_t *n)
{
    int32_t nu = 0;
    const mica_use_t *u = mica_uses_of(&e->uses, n->id, &nu);
    return e->graph == 0 && nu == 1 && e->g->nodes[u[0].node]->op == MICA_OP_OUTPUT;
}

/* Does writing [off, off+len) between nodes a (exclusive) and b (inclusive)
 * clobber nothing: no value defined there overlaps it? */
static bool range_free(emit_t *e, int32_t a, int32_t b, int64_t off, int64_t len, int32_t except)
{
    for (int32_t j = a + 1; j <= b; j++) {
        const mica_node_t *m = e->g->nodes[j];
        if (!m->sched.has_mem || j == except)
            continue;
        int64_t mo = m->sched.mem_offset, ml = value_bytes(&m->type);
        if (mo < off + len && off < mo + ml)
            return false;
    }
    return true;
}

/* The rms_norm whose output only act_scale/act_quant of the same x read
 * and whose input is still intact at act_quant n: fused into n. */
static const mica_node_t *fusable_norm(emit_t *e, const mica_node_t *n)
{
    const mica_node_t *norm = e->g->nodes[n->inputs[0].value];
    if (norm->op != MICA_OP_RMS_NORM || n->inputs[0].has_view)
        return NULL;
    int32_t nu = 0;
    const mica_use_t *u = mica_uses_of(&e->uses, norm->id, &nu);
    for (int32_t k = 0; k < nu; k++) {
        const mica_node_t *c = e->g->nodes[u[k].node];
        if ((c->op != MICA_OP_ACT_SCALE && c->op != MICA_OP_ACT_QUANT) ||
            !mica_operand_equal(&c->inputs[0], &n->inputs[0]))
            return NULL;
    }
    const mica_node_t *xv = e->g->nodes[norm->inputs[0].value];
    if (xv->op == MICA_OP_WEIGHT)
        return norm;
    if (!xv->sched.has_mem)
        return NULL;
    return range_free(e, norm->id, n->id, xv->sched.mem_offset, value_bytes(&xv->type), -1)
               ? norm
               : NULL;
}

/* act_scale(x) + act_quant(x, s): one kernel at the act_quant, with the
 * rms_norm that feeds x fused in front when nothing else reads it. */
static mica_status_t emit_act_quant(emit_t *e, const mica_node_t *n)
{
    const mica_node_t *sc = e->g->nodes[n->inputs[1].value];
    if (sc->op != MICA_OP_ACT_SCALE || !mica_operand_equal(&sc->inputs[0], &n->inputs[0]))
        return unsupported(e, n, "its scales are not act_scale of the same x");
    int32_t nu = 0;
    const mica_use_t *u = mica_uses_of(&e->uses, sc->id, &nu);
    for (int32_t k = 0; k < nu; k++)
        if (u[k].node < n->id)
            return unsupported(e, n, "its scales are read before it");
    int64_t rows, k_dim, ldx;
    MICA_TRY(as_matrix(e, n, &n->inputs[0], &rows, &k_dim, &ldx));
    const int64_t group = mica_attr_act_quant_group(n);
    char xs[160], xq[96];
    VADDR(sc->id, xs);
    VADDR(n->id, xq);

    const mica_node_t *norm = fusable_norm(e, n);
    const bool fuse = norm != NULL;
    const char *kn;
    int32_t parts;
    if (fuse) {
        MICA_TRY(need_kernel(e, n, "rms_act_quant", &kn));
        int64_t r2, c2, ldn;
        MICA_TRY(as_matrix(e, norm, &norm->inputs[0], &r2, &c2, &ldn));
        char x[160], w[96];
        ADDR(&norm->inputs[0], "const float *", x);
        ADDR(&norm->inputs[1], "const float *", w);
        parts = task_open(e, n, rows, k_dim, false);
        fprintf(e->tasks,
                "    %s(%s, %" PRId64 ", %s, %.9ef, (int8_t *)%s, (float *)%s, lo, hi, %" PRId64
                ", %" PRId64 ");\n",
                kn, x, ldn, w, mica_attr_rms_norm_eps(norm), xq, xs, k_dim, group);
        e->skip[norm->id] = true;
    } else {
        MICA_TRY(need_kernel(e, n, "act_quant", &kn));
        char x[160];
        ADDR(&n->inputs[0], "const float *", x);
        parts = task_open(e, n, rows, k_dim, false);
        fprintf(e->tasks,
                "    %s(%s, %" PRId64 ", (int8_t *)%s, (float *)%s, lo, hi, %" PRId64 ", %" PRId64
                ");\n",
                kn, x, ldx, xq, xs, k_dim, group);
    }
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

/* The row range of a matmul-like op: the head of prefill computes one row
 * (split over columns) unless every row's logits are asked for. */
static void head_range(emit_t *e, const mica_node_t *n, int64_t n_dim, int32_t granule,
                       int32_t *parts)
{
    if (!is_head(e, n))
        return;
    int32_t np = *parts > 1 ? *parts : 1;
    fprintf(e->tasks, "    int32_t m0 = lo, m1 = hi, n0 = c0, n1 = c1;\n");
    fprintf(e->tasks, "    if (!r->logits_all) {\n        static const int32_t hc[%d] = {0", np + 1);
    int64_t blocks = (n_dim + granule - 1) / granule;
    for (int32_t p = 1; p <= np; p++) {
        int64_t c = blocks * p / np * granule;
        fprintf(e->tasks, ", %" PRId64, c > n_dim ? n_dim : c);
    }
    fprintf(e->tasks, "};\n        m0 = r->n_tokens - 1;\n        m1 = r->n_tokens;\n"
                      "        n0 = hc[part];\n        n1 = hc[part + 1];\n    }\n");
    (void)parts;
}

/* Whether the packed mins of a quantized weight are those of a symmetric
 * source, -8 s for u4 (Q4_0's zero point) or 0 for i8 (Q8_0), for every
 * group, padding included: the kernels then take the scales as the mins
 * (wm == ws) and never read the mins, a ninth of a u4 weight's bytes. */
static bool symmetric_mins(const mica_node_t *ws, const mica_node_t *wm, bool u4)
{
    if (!ws->data || !wm->data || ws->nbytes != wm->nbytes || ws->nbytes % 2 != 0 ||
        ws->type.dtype != MICA_DTYPE_F16 || wm->type.dtype != MICA_DTYPE_F16)
        return false;
    const uint8_t *sp = ws->data, *mp = wm->data;
    for (uint64_t i = 0; i < ws->nbytes; i += 2) {
        const uint16_t sb = (uint16_t)(sp[i] | sp[i + 1] << 8), mb = (uint16_t)(mp[i] | mp[i + 1] << 8);
        const float s = mica_f16_to_f32(sb), m = mica_f16_to_f32(mb);
        if (m != (u4 ? -8.0f * s : 0.0f))
            return false;
    }
    return true;
}

uint64_t mica_emit_unread_bytes(const mica_graph_t *g)
{
    uint64_t bytes = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        if (!n || n->op != MICA_OP_QMATMUL)
            continue;
        const mica_node_t *wq = g->nodes[n->inputs[2].value], *ws = g->nodes[n->inputs[3].value],
                          *wm = g->nodes[n->inputs[4].value];
        if (wq->type.layout.pad_n > 0 &&
            symmetric_mins(ws, wm, wq->type.dtype == MICA_DTYPE_U4))
            bytes += wm->nbytes;
    }
    return bytes;
}

static mica_status_t emit_qmatmul(emit_t *e, const mica_node_t *n)
{
    const mica_node_t *wq = e->g->nodes[n->inputs[2].value];
    const bool u4 = wq->type.dtype == MICA_DTYPE_U4;
    if (!u4 && wq->type.dtype != MICA_DTYPE_I8)
        return unsupported(e, n, "weights neither u4 nor i8");
    if (wq->type.layout.pad_n <= 0)
        return unsupported(e, n, "weights not packed in the target's tile");
    const int64_t n_dim = wq->type.shape[0], k_dim = wq->type.shape[1];
    int64_t rows, cols, ldy;
    const mica_operand_t self = {.value = n->id};
    MICA_TRY(as_matrix(e, n, &self, &rows, &cols, &ldy));
    const bool gemv = rows == 1;
    char fam[32];
    snprintf(fam, sizeof fam, "%s_%s", gemv ? "qgemv" : "qgemm", u4 ? "u4" : "i8");
    const char *kn;
    MICA_TRY(need_kernel(e, n, fam, &kn));
    for (size_t i = 0; i < sizeof tile_isa / sizeof tile_isa[0]; i++)
        if (!strcmp(tile_isa[i].isa, e->isa) &&
            (wq->type.layout.hp != tile_isa[i].hp || wq->type.layout.lp != tile_isa[i].lp))
            return unsupported(e, n, "weights packed for another tile than the kernels read");
    char xq[160], xs[96], w[96], ws[96], wm[96], y[96];
    ADDR(&n->inputs[0], "const int8_t *", xq);
    ADDR(&n->inputs[1], "const float *", xs);
    ADDR(&n->inputs[2], "const uint8_t *", w);
    ADDR(&n->inputs[3], "const uint16_t *", ws);
    if (symmetric_mins(e->g->nodes[n->inputs[3].value], e->g->nodes[n->inputs[4].value], u4)) {
        snprintf(wm, sizeof wm, "%s", ws);
    } else {
        ADDR(&n->inputs[4], "const uint16_t *", wm);
    }
    VADDR(n->id, y);
    int32_t parts = task_open(e, n, rows, cols, true);
    if (is_head(e, n)) {
        head_range(e, n, n_dim, wq->type.layout.hp, &parts);
        fprintf(e->tasks, "    %s(%s, %s, %s, %s, %s, (float *)%s, %" PRId64
                          ", m0, m1, n0, n1, %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ");\n",
                kn, xq, xs, w, ws, wm, y, ldy, n_dim, k_dim, mica_attr_qmatmul_agroup(n),
                mica_attr_qmatmul_wgroup(n));
    } else {
        fprintf(e->tasks, "    %s(%s, %s, %s, %s, %s, (float *)%s, %" PRId64
                          ", lo, hi, c0, c1, %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ");\n",
                kn, xq, xs, w, ws, wm, y, ldy, n_dim, k_dim, mica_attr_qmatmul_agroup(n),
                mica_attr_qmatmul_wgroup(n));
    }
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_matmul(emit_t *e, const mica_node_t *n)
{
    const bool wq_op = n->op == MICA_OP_WMATMUL;
    const mica_node_t *w = e->g->nodes[n->inputs[1].value];
    const int64_t n_dim = w->type.shape[0], k_dim = w->type.shape[1];
    char fam[32];
    if (wq_op) {
        if (w->type.dtype != MICA_DTYPE_U4 && w->type.dtype != MICA_DTYPE_I8)
            return unsupported(e, n, "weights neither u4 nor i8");
        if (w->type.layout.pad_n <= 0)
            return unsupported(e, n, "weights not packed in the target's tile");
        snprintf(fam, sizeof fam, "wgemm_%s", w->type.dtype == MICA_DTYPE_U4 ? "u4" : "i8");
    } else {
        if ((w->type.dtype != MICA_DTYPE_F32 && w->type.dtype != MICA_DTYPE_F16) ||
            w->type.layout.kind != MICA_LAYOUT_ROW_MAJOR || n->inputs[1].has_view)
            return unsupported(e, n, "a matmul weight other than row-major f32 or f16");
        snprintf(fam, sizeof fam, "sgemm_%s", w->type.dtype == MICA_DTYPE_F16 ? "f16" : "f32");
    }
    const char *kn;
    MICA_TRY(need_kernel(e, n, fam, &kn));
    int64_t rows, k2, ldx, rows_y, cols, ldy;
    MICA_TRY(as_matrix(e, n, &n->inputs[0], &rows, &k2, &ldx));
    const mica_operand_t self = {.value = n->id};
    MICA_TRY(as_matrix(e, n, &self, &rows_y, &cols, &ldy));
    char x[160], wa[96], y[96];
    ADDR(&n->inputs[0], "const float *", x);
    VADDR(n->id, y);
    int32_t parts = task_open(e, n, rows_y, cols, true);
    const char *m0 = "lo", *m1 = "hi", *n0 = "c0", *n1 = "c1";
    if (is_head(e, n)) {
        head_range(e, n, n_dim, wq_op ? w->type.layout.hp : 8, &parts);
        m0 = "m0", m1 = "m1", n0 = "n0", n1 = "n1";
    }
    if (wq_op) {
        char ws[160], wm[96];
        ADDR(&n->inputs[1], "const uint8_t *", wa);
        ADDR(&n->inputs[2], "const uint16_t *", ws);
        ADDR(&n->inputs[3], "const uint16_t *", wm);
        fprintf(e->tasks, "    %s(%s, %" PRId64 ", %s, %s, %s, (float *)%s, %" PRId64
                          ", %s, %s, %s, %s, %" PRId64 ", %" PRId64 ", %" PRId64 ");\n",
                kn, x, ldx, wa, ws, wm, y, ldy, m0, m1, n0, n1, n_dim, k_dim,
                mica_attr_wmatmul_group(n));
    } else {
        ADDR(&n->inputs[1], "const void *", wa);
        fprintf(e->tasks, "    %s(%s, %" PRId64 ", %s, (float *)%s, %" PRId64
                          ", %s, %s, %s, %s, %" PRId64 ");\n",
                kn, x, ldx, wa, y, ldy, m0, m1, n0, n1, k_dim);
    }
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_rowwise(emit_t *e, const mica_node_t *n)
{
    int64_t rows, cols, ldy;
    const mica_operand_t self = {.value = n->id};
    MICA_TRY(as_matrix(e, n, &self, &rows, &cols, &ldy));
    char y[160];
    VADDR(n->id, y);
    const char *kn;
    int32_t parts;
    switch (n->op) {
    case MICA_OP_RMS_NORM: {
        MICA_TRY(need_kernel(e, n, "rms_norm", &kn));
        int64_t r, c, ldx;
        MICA_TRY(as_matrix(e, n, &n->inputs[0], &r, &c, &ldx));
        char x[160], w[96];
        ADDR(&n->inputs[0], "const float *", x);
        ADDR(&n->inputs[1], "const float *", w);
        parts = task_open(e, n, rows, cols, false);
        fprintf(e->tasks, "    %s(%s, %" PRId64 ", %s, %.9ef, (float *)%s, %" PRId64
                          ", lo, hi, %" PRId64 ");\n",
                kn, x, ldx, w, mica_attr_rms_norm_eps(n), y, ldy, cols);
        break;
    }
    case MICA_OP_ADD:
    case MICA_OP_MUL: {
        MICA_TRY(need_kernel(e, n, n->op == MICA_OP_ADD ? "add" : "mul", &kn));
        int64_t ra, ca, lda, rb, cb, ldb;
        MICA_TRY(as_matrix(e, n, &n->inputs[0], &ra, &ca, &lda));
        MICA_TRY(as_matrix(e, n, &n->inputs[1], &rb, &cb, &ldb));
        if (ca != cols || cb != cols || ra != rows || (rb != rows && rb != 1))
            return unsupported(e, n, "broadcasting other than one row of b");
        if (rb == 1 && rows > 1)
            ldb = 0;
        char a[160], b[96];
        ADDR(&n->inputs[0], "const float *", a);
        ADDR(&n->inputs[1], "const float *", b);
        parts = task_open(e, n, rows, cols, true);
        fprintf(e->tasks, "    %s(%s + c0, %" PRId64 ", %s + c0, %" PRId64 ", (float *)%s + c0, %" PRId64
                          ", lo, hi, c1 - c0);\n",
                kn, a, lda, b, ldb, y, ldy);
        break;
    }
    case MICA_OP_SWIGLU:
    case MICA_OP_SOFTMAX: { /* y row from one x row: same call shape */
        MICA_TRY(need_kernel(e, n, n->op == MICA_OP_SWIGLU ? "swiglu" : "softmax", &kn));
        int64_t r, c, ldx;
        MICA_TRY(as_matrix(e, n, &n->inputs[0], &r, &c, &ldx));
        char x[160];
        ADDR(&n->inputs[0], "const float *", x);
        parts = task_open(e, n, rows, cols, false);
        fprintf(e->tasks, "    %s(%s, %" PRId64 ", (float *)%s, %" PRId64 ", lo, hi, %" PRId64 ");\n",
                kn, x, ldx, y, ldy, cols);
        break;
    }
    default:
        return unsupported(e, n, "not a row-wise op");
    }
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_rope(emit_t *e, const mica_node_t *n)
{
    const char *kn;
    MICA_TRY(need_kernel(e, n, "rope", &kn));
    int64_t sxt, sxh, syt, syh;
    MICA_TRY(as_thd(e, n, &n->inputs[0], &sxt, &sxh));
    const mica_operand_t self = {.value = n->id};
    MICA_TRY(as_thd(e, n, &self, &syt, &syh));
    const int64_t heads = n->type.shape[1], dim = n->type.shape[2];
    const int64_t rows = n->type.shape[0] * heads;
    char x[160], pos[96], y[96];
    ADDR(&n->inputs[0], "const float *", x);
    ADDR(&n->inputs[1], "const int32_t *", pos);
    VADDR(n->id, y);
    int32_t parts = task_open(e, n, rows, dim, false);
    fprintf(e->tasks, "    %s(%s, %" PRId64 ", %" PRId64 ", %s, (float *)%s, %" PRId64 ", %" PRId64
                      ", lo, hi, %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 ", %.9ef, %.9ef);\n",
            kn, x, sxt, sxh, pos, y, syt, syh, heads, dim, mica_attr_rope_mode(n),
            mica_attr_rope_dims(n), mica_attr_rope_theta(n), mica_attr_rope_scale(n));
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_kv_store(emit_t *e, const mica_node_t *n)
{
    const char *kn;
    MICA_TRY(need_kernel(e, n, "kv_store", &kn));
    const mica_node_t *cache = e->g->nodes[n->inputs[0].value];
    if (cache->type.dtype != MICA_DTYPE_F32 || cache->type.rank != 3)
        return unsupported(e, n, "a KV cache other than f32 [Hkv, C, D]");
    int64_t sxt, sxh;
    MICA_TRY(as_thd(e, n, &n->inputs[1], &sxt, &sxh));
    char c[160], x[96];
    VADDR(cache->id, c);
    ADDR(&n->inputs[1], "const float *", x);
    int32_t parts = task_open(e, n, 1, 1, false);
    fprintf(e->tasks, "    %s((float *)%s, %" PRId64 ", %" PRId64 ", %s, %" PRId64 ", %" PRId64
                      ", %" PRId64 ", r->n_past, r->n_tokens);\n",
            kn, c, cache->type.shape[1], cache->type.shape[2], x, sxt, sxh, cache->type.shape[0]);
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_attention_kv(emit_t *e, const mica_node_t *n)
{
    const char *kn;
    MICA_TRY(need_kernel(e, n, "attention_kv", &kn));
    int64_t sqt, sqh, syt, syh;
    MICA_TRY(as_thd(e, n, &n->inputs[0], &sqt, &sqh));
    const mica_operand_t self = {.value = n->id};
    MICA_TRY(as_thd(e, n, &self, &syt, &syh));
    const mica_node_t *k = e->g->nodes[n->inputs[1].value];
    const mica_type_t kt = k->type;
    if (kt.dtype != MICA_DTYPE_F32 || n->inputs[1].has_view || n->inputs[2].has_view)
        return unsupported(e, n, "a KV cache other than f32 [Hkv, C, D]");
    const int64_t hq = n->type.shape[1], dim = n->type.shape[2];
    const int64_t rows = n->type.shape[0] * hq;
    char q[160], kc[96], vc[96], y[96];
    ADDR(&n->inputs[0], "const float *", q);
    VADDR(n->inputs[1].value, kc);
    VADDR(n->inputs[2].value, vc);
    VADDR(n->id, y);
    int32_t parts = task_open(e, n, rows, dim, false);
    fprintf(e->tasks, "    %s(%s, %" PRId64 ", %" PRId64 ", (const float *)%s, (const float *)%s, %" PRId64
                      ", (float *)%s, %" PRId64 ", %" PRId64 ", lo, hi, %" PRId64 ", %" PRId64
                      ", %" PRId64 ", r->n_past, %.9ef);\n",
            kn, q, sqt, sqh, kc, vc, kt.shape[1], y, syt, syh, hq, kt.shape[0], dim,
            mica_attr_attention_kv_scale(n));
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_embedding(emit_t *e, const mica_node_t *n)
{
    const mica_type_t tt = mica_operand_type(e->g, &n->inputs[0]);
    char fam[32];
    snprintf(fam, sizeof fam, "embedding_%s", mica_dtype_name(tt.dtype));
    const char *kn;
    MICA_TRY(need_kernel(e, n, fam, &kn));
    if (tt.layout.kind != MICA_LAYOUT_ROW_MAJOR || n->inputs[0].has_view)
        return unsupported(e, n, "a packed embedding table");
    const int64_t row_bytes = mica_dtype_row_bytes(tt.dtype, tt.shape[1]);
    int64_t rows, cols, ldy;
    const mica_operand_t self = {.value = n->id};
    MICA_TRY(as_matrix(e, n, &self, &rows, &cols, &ldy));
    char t[160], ids[96], y[96];
    ADDR(&n->inputs[0], "const uint8_t *", t);
    ADDR(&n->inputs[1], "const int32_t *", ids);
    VADDR(n->id, y);
    int32_t parts = task_open(e, n, rows, cols, false);
    fprintf(e->tasks, "    %s(%s, %" PRId64 ", %s, (float *)%s, %" PRId64 ", lo, hi, %" PRId64 ");\n",
            kn, t, row_bytes, ids, y, ldy, cols);
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_raster(emit_t *e, const mica_node_t *n)
{
    const char *kn;
    MICA_TRY(need_kernel(e, n, "copy", &kn));
    const int64_t eb = elem_bytes(n->type.dtype);
    if (!eb)
        return unsupported(e, n, "a raster of a packed or block type");
    int64_t covered = 0;
    for (int32_t k = 0; k < n->n_regions; k++) {
        const mica_region_t *rg = &n->regions[k];
        if (rg->index_input >= 0)
            return unsupported(e, n, "a gather region (the embedding op covers lookups)");
        if (rg->rank > 4)
            return unsupported(e, n, "a region of rank above 4");
        int64_t c = 1;
        for (int32_t d = 0; d < rg->rank; d++)
            c *= rg->size[d];
        covered += c;
    }
    char y[160];
    VADDR(n->id, y);
    int32_t parts = task_open(e, n, 1, 1, false);
    if (covered < mica_type_numel(&n->type))
        fprintf(e->tasks, "    memset(%s, 0, %" PRId64 ");\n", y, mica_type_numel(&n->type) * eb);
    for (int32_t k = 0; k < n->n_regions; k++) {
        const mica_region_t *rg = &n->regions[k];
        char src[160];
        VADDR(n->inputs[rg->input].value, src);
        fprintf(e->tasks, "    {\n        static const int32_t size[%d] = {", rg->rank);
        for (int32_t d = 0; d < rg->rank; d++)
            fprintf(e->tasks, "%s%" PRId64, d ? ", " : "", rg->size[d]);
        fprintf(e->tasks, "};\n        static const int64_t ss[%d] = {", rg->rank);
        for (int32_t d = 0; d < rg->rank; d++)
            fprintf(e->tasks, "%s%" PRId64, d ? ", " : "", rg->src.stride[d]);
        fprintf(e->tasks, "};\n        static const int64_t ds[%d] = {", rg->rank);
        for (int32_t d = 0; d < rg->rank; d++)
            fprintf(e->tasks, "%s%" PRId64, d ? ", " : "", rg->dst.stride[d]);
        fprintf(e->tasks, "};\n        %s((const uint8_t *)%s + %" PRId64 ", (uint8_t *)%s + %" PRId64
                          ", %" PRId64 ", size, ss, ds, %d, 0, %" PRId64 ");\n    }\n",
                kn, src, rg->src.offset * eb, y, rg->dst.offset * eb, eb, rg->rank, rg->size[0]);
    }
    task_close(e);
    task_call(e, n, parts, kn);
    return MICA_OK;
}

static mica_status_t emit_node(emit_t *e, const mica_node_t *n)
{
    if (e->skip[n->id])
        return MICA_OK;
    switch (n->op) {
    case MICA_OP_INPUT:
    case MICA_OP_WEIGHT:
    case MICA_OP_STATE:
    case MICA_OP_OUTPUT:
    case MICA_OP_ACT_SCALE: /* with its act_quant */
        return MICA_OK;
    case MICA_OP_ACT_QUANT:
        return emit_act_quant(e, n);
    case MICA_OP_QMATMUL:
        return emit_qmatmul(e, n);
    case MICA_OP_MATMUL:
    case MICA_OP_WMATMUL:
        return emit_matmul(e, n);
    case MICA_OP_RMS_NORM:
    case MICA_OP_ADD:
    case MICA_OP_MUL:
    case MICA_OP_SWIGLU:
    case MICA_OP_SOFTMAX:
        return emit_rowwise(e, n);
    case MICA_OP_ROPE:
        return emit_rope(e, n);
    case MICA_OP_KV_STORE:
        return emit_kv_store(e, n);
    case MICA_OP_ATTENTION_KV:
        return emit_attention_kv(e, n);
    case MICA_OP_EMBEDDING:
        return emit_embedding(e, n);
    case MICA_OP_RASTER:
        return emit_raster(e, n);
    default:
        return unsupported(e, n, "no kernel family for this op yet");
    }
}

/* The inputs of a call, written into the arena before the first op. */
static mica_status_t emit_inputs(emit_t *e)
{
    for (int32_t i = 0; i < e->g->n_nodes; i++) {
        const mica_node_t *n = e->g->nodes[i];
        if (n->op != MICA_OP_INPUT)
            continue;
        const char *name = mica_node_name(n);
        char a[160];
        VADDR(i, a);
        if (!strcmp(name, "tokens"))
            fprintf(e->body, "    memcpy(%s, args->tokens, (size_t)args->n_tokens * 4);\n", a);
        else if (!strcmp(name, "pos"))
            fprintf(e->body, "    for (int32_t t = 0; t < args->n_tokens; t++)\n"
                             "        ((int32_t *)%s)[t] = args->n_past + t;\n", a);
        else if (!strcmp(name, "n_past"))
            fprintf(e->body, "    *(int32_t *)%s = args->n_past;\n", a);
        else if (!strcmp(name, "n_tokens"))
            fprintf(e->body, "    *(int32_t *)%s = args->n_tokens;\n", a);
        else
            return unsupported(e, n, "an input the runtime does not provide");
    }
    return MICA_OK;
}

static mica_status_t logits_offset(const mica_graph_t *g, uint64_t *out, mica_diag_t *d)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        if (n->op == MICA_OP_OUTPUT && !strcmp(mica_node_name(n), "logits")) {
            const mica_node_t *v = g->nodes[n->inputs[0].value];
            if (!v->sched.has_mem || n->inputs[0].has_view || v->type.dtype != MICA_DTYPE_F32)
                return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                                     "codegen: the logits are not an f32 value in the arena");
            *out = (uint64_t)v->sched.mem_offset;
            return MICA_OK;
        }
    }
    return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "codegen: the graph has no logits output");
}

static char *take(FILE **f, char **buf)
{
    fclose(*f);
    *f = NULL;
    return *buf;
}

static mica_status_t emit_graph(const mica_emit_request_t *req, int graph, const char *isa,
                                FILE *out, mica_diag_t *d)
{
    const mica_program_t *p = req->program;
    emit_t e = {.req = req, .g = graph ? p->decode : p->prefill, .graph = graph,
                .gname = graph ? "decode" : "prefill", .chunk = graph ? 1 : p->chunk,
                .isa = isa, .d = d};
    char *bb = NULL, *tb = NULL, *ob = NULL;
    size_t bl = 0, tl = 0, ol = 0;
    mica_arena_t *arena = NULL;
    mica_status_t s = mica_arena_create(&arena);
    if (s != MICA_OK)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    e.body = open_memstream(&bb, &bl);
    e.tasks = open_memstream(&tb, &tl);
    e.table = open_memstream(&ob, &ol);
    e.skip = calloc((size_t)e.g->n_nodes, sizeof *e.skip);
    if (!e.body || !e.tasks || !e.table || !e.skip)
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    if (s == MICA_OK)
        s = mica_uses_build(e.g, arena, &e.uses, d);
    if (s == MICA_OK)
        s = emit_inputs(&e);
    /* first, the rms_norms fused into activation quantization */
    for (int32_t i = 0; i < e.g->n_nodes && s == MICA_OK; i++) {
        const mica_node_t *n = e.g->nodes[i];
        if (n->op == MICA_OP_ACT_QUANT) {
            const mica_node_t *norm = fusable_norm(&e, n);
            if (norm)
                e.skip[norm->id] = true;
        }
    }
    for (int32_t i = 0; i < e.g->n_nodes && s == MICA_OK; i++)
        s = emit_node(&e, e.g->nodes[i]);
    uint64_t lo = 0;
    if (s == MICA_OK)
        s = logits_offset(e.g, &lo, d);
    if (e.body)
        take(&e.body, &bb);
    if (e.tasks)
        take(&e.tasks, &tb);
    if (e.table)
        take(&e.table, &ob);
    if (s == MICA_OK) {
        fprintf(out, "\n/* ---- %s ---- */\n%s", e.gname, tb ? tb : "");
        fprintf(out, "\nstatic const mica_abi_op_t %s_ops[%d] = {\n%s};\n", e.gname,
                e.n_ops > 0 ? e.n_ops : 1, e.n_ops > 0 && ob ? ob : "    {0},\n");
        fprintf(out, "\nstatic int %s_run(const mica_abi_env_t *env, const mica_abi_args_t *args)\n{\n",
                e.gname);
        fprintf(out, "    if (args->n_tokens < 1 || args->n_tokens > %" PRId64
                     " || args->n_past < 0 || args->n_past > %" PRId64 " - args->n_tokens)\n"
                     "        return 1;\n",
                e.chunk, p->n_ctx);
        fprintf(out, "    for (int32_t t = 0; t < args->n_tokens; t++)\n"
                     "        if (args->tokens[t] < 0 || args->tokens[t] >= %" PRId64 ")\n"
                     "            return 1;\n",
                p->cfg.n_vocab);
        fprintf(out, "    run_t r = {env->arena, env->weights, env->states, args->n_tokens, "
                     "args->n_past, args->logits_all};\n"
                     "    uint8_t *A = env->arena;\n    (void)A;\n%s    return 0;\n}\n",
                bb ? bb : "");
        fprintf(out, "#define %s_LOGITS %" PRIu64 "u\n#define %s_NOPS %d\n", graph ? "DECODE" : "PREFILL",
                lo, graph ? "DECODE" : "PREFILL", e.n_ops);
    }
    free(bb);
    free(tb);
    free(ob);
    free(e.skip);
    mica_arena_release(arena);
    return s;
}

static uint64_t type_bytes(const mica_type_t *t)
{
    int64_t n = mica_type_numel(t), be = mica_dtype_block_elems(t->dtype);
    return (uint64_t)((n + be - 1) / be * mica_dtype_block_bytes(t->dtype));
}

mica_status_t mica_emit_model_c(const mica_emit_request_t *req, FILE *out, mica_diag_t *d)
{
    const char *isa = NULL;
    MICA_TRY(mica_emit_kernel_isa(req->target, &isa, d));
    const mica_program_t *p = req->program;
    char feats[256];
    mica_target_features_format(req->target->features, feats, sizeof feats);
    fprintf(out, "/* generated " "by mica compile (codegen/emit.c), do not edit: model %s, target %s, "
                 "quant %s, kernels %s, features %s */\n",
            req->model_name, req->target->name, req->quant, isa, feats[0] ? feats : "-");
    fprintf(out, "#include \"mica_abi.h\"\n#include \"mica_kernels.h\"\n\n"
                 "typedef struct run {\n    uint8_t *A;\n    const uint8_t *W;\n"
                 "    uint8_t *const *S;\n    int32_t n_tokens, n_past, logits_all;\n} run_t;\n");
    MICA_TRY(emit_graph(req, 0, isa, out, d));
    MICA_TRY(emit_graph(req, 1, isa, out, d));
    /* states, in prefill order; decode must name the same ones */
    fprintf(out, "\nstatic const mica_abi_state_t states[] = {\n");
    int32_t n_states = 0;
    for (int32_t i = 0; i < p->prefill->n_nodes; i++) {
        const mica_node_t *n = p->prefill->nodes[i];
        if (n->op == MICA_OP_STATE) {
            fprintf(out, "    {\"%s\", %" PRIu64 "u},\n", mica_node_name(n), type_bytes(&n->type));
            n_states++;
        }
    }
    if (!n_states)
        fprintf(out, "    {\"\", 0},\n");
    fprintf(out, "};\n");
    int64_t a = mica_memplan_arena_bytes(p->prefill), b = mica_memplan_arena_bytes(p->decode);
    fprintf(out,
            "\n__attribute__((visibility(\"default\"))) const mica_abi_model_t mica_model_entry = {\n"
            "    MICA_ABI_VERSION, sizeof(mica_abi_model_t), \"%s\", \"%s\", 0x%" PRIx64 "u,\n"
            "    0x%016" PRIx64 "u, %" PRIu64 "u, %" PRId64 "u, %d, states, %" PRId64 ", %" PRId64 ",\n"
            "    {prefill_run, %" PRId64 ", PREFILL_LOGITS, %" PRId64 ", PREFILL_NOPS, prefill_ops},\n"
            "    {decode_run, 1, DECODE_LOGITS, 1, DECODE_NOPS, decode_ops},\n};\n",
            req->target->name, mica_target_arch_name(req->target->cpu_arch), req->target->features,
            req->weights_checksum, req->weights_bytes, a > b ? a : b, n_states, p->cfg.n_vocab,
            p->n_ctx, p->chunk, p->chunk);
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* the build                                                                 */

static mica_status_t write_file(const char *dir, const char *name, const char *text, mica_diag_t *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return mica_diag_set(d, MICA_ERR_IO, "%s: %s", path, strerror(errno));
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok ? MICA_OK : mica_diag_set(d, MICA_ERR_IO, "%s: write failed", path);
}

/* Splits a flags string into argv words (no quoting: target cflags are
 * plain words). */
static int split_words(char *s, char **argv, int max)
{
    int n = 0;
    for (char *tok = strtok(s, " \t"); tok && n < max; tok = strtok(NULL, " \t"))
        argv[n++] = tok;
    return n;
}

/* Runs argv (argv[0] found on PATH) with stdout and stderr appended to
 * log; fails naming the compiler and the first error line of the log. */
static mica_status_t run_compiler(char *const *argv, const char *log, const char *what,
                                  mica_diag_t *d)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot run the target's compiler %s: %s", argv[0],
                             strerror(rc));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return mica_diag_set(d, MICA_ERR_IO, "waiting for %s: %s", argv[0], strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return MICA_OK;
    char first[256] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        while (fgets(first, sizeof first, f))
            if (strstr(first, "error"))
                break;
        fclose(f);
    }
    first[strcspn(first, "\n")] = 0;
    return mica_diag_set(d, MICA_ERR_IO, "%s failed building %s: %s", argv[0], what,
                         first[0] ? first : "see build.log");
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h ^ 0xff; /* separator */
}

/* The kernel object cache: $MICA_CACHE, else $XDG_CACHE_HOME/mica, else
 * ~/.cache/mica, then "kernels". Empty when none can be named. */
static void cache_dir(char *buf, size_t cap)
{
    const char *m = getenv("MICA_CACHE"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    buf[0] = 0;
    if (m && *m)
        snprintf(buf, cap, "%s/kernels", m);
    else if (x && *x)
        snprintf(buf, cap, "%s/mica/kernels", x);
    else if (h && *h)
        snprintf(buf, cap, "%s/.cache/mica/kernels", h);
}

static void mkdirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

mica_status_t mica_emit_build(const char *dir, const mica_target_t *t, mica_diag_t *d)
{
    const char *isa = NULL;
    MICA_TRY(mica_emit_kernel_isa(t, &isa, d));
    char kfile[64];
    snprintf(kfile, sizeof kfile, "kernels_%s.c", isa);
    const char *names[] = {"mica_abi.h", "mica_kernels.h", kfile};
    for (int i = 0; i < 3; i++) {
        const char *text = source_text(names[i]);
        if (!text)
            return mica_diag_set(d, MICA_ERR_INVALID, "codegen: no generated source %s", names[i]);
        MICA_TRY(write_file(dir, names[i], text, d));
    }
    char cflags[sizeof t->cflags];
    snprintf(cflags, sizeof cflags, "%s", t->cflags);
    char out_so[4096], model_c[4096], kern_c[4096], log[4096];
    snprintf(out_so, sizeof out_so, "%s/model.so", dir);
    snprintf(model_c, sizeof model_c, "%s/model.c", dir);
    snprintf(kern_c, sizeof kern_c, "%s/%s", dir, kfile);
    snprintf(log, sizeof log, "%s/build.log", dir);
    static char *const common[] = {"-std=c11", "-fPIC", "-fno-math-errno", "-fno-stack-protector",
                                   "-fvisibility=hidden", NULL};

    /* The kernels are the same for every model of a target: their object
     * is cached by compiler, flags and source, and built once. */
    char cdir[3000], kobj[4096] = "";
    cache_dir(cdir, sizeof cdir);
    if (cdir[0]) {
        uint64_t h = 0xcbf29ce484222325ull;
        h = fnv_str(h, t->cc);
        h = fnv_str(h, t->cflags);
        h = fnv_str(h, source_text(kfile));
        h = fnv_str(h, source_text("mica_kernels.h"));
        snprintf(kobj, sizeof kobj, "%s/%s-%016" PRIx64 ".o", cdir, isa, h);
        if (access(kobj, R_OK) != 0) {
            mkdirs(cdir);
            char tmp[4200];
            snprintf(tmp, sizeof tmp, "%s.tmp.%ld", kobj, (long)getpid());
            char *argv[64];
            int n = 0;
            argv[n++] = (char *)t->cc;
            char cf2[sizeof t->cflags];
            snprintf(cf2, sizeof cf2, "%s", t->cflags);
            n += split_words(cf2, argv + n, 24);
            for (int i = 0; common[i]; i++)
                argv[n++] = common[i];
            argv[n++] = "-c";
            argv[n++] = "-o";
            argv[n++] = tmp;
            argv[n++] = kern_c;
            argv[n] = NULL;
            mica_status_t s = run_compiler(argv, log, "the kernels", d);
            if (s == MICA_OK && rename(tmp, kobj) != 0)
                s = mica_diag_set(d, MICA_ERR_IO, "%s: %s", kobj, strerror(errno));
            if (s != MICA_OK) {
                unlink(tmp);
                return s;
            }
        }
    }
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)t->cc;
    n += split_words(cflags, argv + n, 24);
    for (int i = 0; common[i]; i++)
        argv[n++] = common[i];
    argv[n++] = "-shared";
    argv[n++] = "-nostdlib";
    argv[n++] = "-o";
    argv[n++] = out_so;
    argv[n++] = model_c;
    argv[n++] = kobj[0] ? kobj : kern_c;
    argv[n++] = "-lgcc";
    argv[n] = NULL;
    return run_compiler(argv, log, "model.so", d);
}
