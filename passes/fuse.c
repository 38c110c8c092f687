/* Pass "fuse" (see fuse.h). Two walks of the rewriter, each linear in the
 * graph (plus the bytes of the merged weights, copied once per program):
 *
 *  1. Merge: SwiGLU patterns are found on the input graph with its use
 *     lists. At the gate matmul the walk emits the merged weight and the
 *     merged matmul (both take the gate matmul's origin), the up matmul and
 *     the silu are dropped, and the mul becomes swiglu (its own origin).
 *     Wg and Wu go once nothing reads them.
 *  2. Annotate: epilogue, prologue and softmax decisions are made in graph
 *     order on the merged graph (a node's producer is decided before it, so
 *     chains such as matmul -> bias -> rope end at one matmul), then every
 *     node is copied with its flags and note.
 */
#include "fuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "const_store.h"
#include "rewrite.h"

enum { NOTE_MAX = 160, NAME_MAX_BYTES = 128 };

static const char SKIP_NOTE[] = "swiglu: gate and up not merged (no constant store for the "
                                "weights' bytes)";

static int32_t n_uses(const mica_uses_t *u, int32_t v)
{
    int32_t n = 0;
    mica_uses_of(u, v, &n);
    return n;
}

/* Appends text to a note buffer of NOTE_MAX bytes (cut if it does not fit). */
static void note_add(char *note, const char *fmt, int64_t v)
{
    size_t len = strlen(note);
    if (len + 1 < NOTE_MAX)
        snprintf(note + len, NOTE_MAX - len, fmt, (long long)v);
}

/* ------------------------------------------------------------------------ */
/* 1. merging gate and up                                                    */

typedef struct pattern {
    int32_t gate_mm, up_mm, silu, mul; /* old ids */
    int32_t wg, wu;                    /* old ids of the weights */
    bool merge;                        /* false: left alone (no constant store) */
} pattern_t;

typedef enum role { ROLE_NONE = 0, ROLE_GATE_MM, ROLE_DROP, ROLE_MUL } role_t;

typedef struct merge {
    const mica_graph_t *old;
    mica_const_store_t *consts;
    uint8_t *role;     /* [old nodes] role_t */
    int32_t *pat;      /* [old nodes] pattern index of a node with a role */
    bool *merged_w;    /* [old nodes] weight some merge read */
    bool *removable;   /* [cap_new] new ids of those weights */
    int32_t cap_new;
    pattern_t *pats;
    int32_t n_pats;
} merge_t;

/* The matched pattern at mul node m, or false. Sets *out when matched. */
static bool match_swiglu(const mica_graph_t *g, const mica_uses_t *u, const mica_node_t *m,
                         pattern_t *out)
{
    if (m->op != MICA_OP_MUL || m->inputs[0].has_view || m->inputs[1].has_view)
        return false;
    for (int order = 0; order < 2; order++) {
        const mica_node_t *s = g->nodes[m->inputs[order].value];
        const mica_node_t *up = g->nodes[m->inputs[1 - order].value];
        if (s->op != MICA_OP_SILU || s->inputs[0].has_view || up->op != MICA_OP_MATMUL)
            continue;
        const mica_node_t *gate = g->nodes[s->inputs[0].value];
        if (gate->op != MICA_OP_MATMUL || gate == up)
            continue;
        if (n_uses(u, gate->id) != 1 || n_uses(u, s->id) != 1 || n_uses(u, up->id) != 1)
            continue;
        if (!mica_operand_equal(&gate->inputs[0], &up->inputs[0]))
            continue;
        const mica_node_t *wg = g->nodes[gate->inputs[1].value];
        const mica_node_t *wu = g->nodes[up->inputs[1].value];
        if (wg->op != MICA_OP_WEIGHT || wu->op != MICA_OP_WEIGHT || gate->inputs[1].has_view ||
            up->inputs[1].has_view)
            continue;
        if (wg->type.dtype != wu->type.dtype || wg->type.rank != 2 || wu->type.rank != 2 ||
            wg->type.shape[0] != wu->type.shape[0] || wg->type.shape[1] != wu->type.shape[1] ||
            wg->type.layout.kind != MICA_LAYOUT_ROW_MAJOR ||
            wu->type.layout.kind != MICA_LAYOUT_ROW_MAJOR)
            continue;
        if (!mica_type_equal(&m->type, &gate->type) || !mica_type_equal(&m->type, &up->type))
            continue;
        /* bytes: both bound, each exactly its rows, or both unbound */
        int64_t row = mica_dtype_row_bytes(wg->type.dtype, wg->type.shape[1]);
        uint64_t want = (uint64_t)(row * wg->type.shape[0]);
        if ((wg->data == NULL) != (wu->data == NULL))
            continue;
        if (wg->data && (row <= 0 || wg->nbytes != want || wu->nbytes != want))
            continue;
        out->gate_mm = gate->id;
        out->up_mm = up->id;
        out->silu = s->id;
        out->mul = m->id;
        out->wg = wg->id;
        out->wu = wu->id;
        return true;
    }
    return false;
}

/* "blk.N.ffn_gate.weight" -> "blk.N.ffn_gate_up.weight"; any other name
 * gets ".gate_up" appended. */
static void merged_name(const char *gate, char *out, size_t cap)
{
    static const char tail[] = "gate.weight";
    size_t n = strlen(gate), t = sizeof tail - 1;
    if (n >= t && strcmp(gate + n - t, tail) == 0)
        snprintf(out, cap, "%.*sgate_up.weight", (int)(n - t), gate);
    else
        snprintf(out, cap, "%s.gate_up", gate);
}

/* The merged bytes of pattern p: found in the store (made for an earlier
 * graph of the program) or added to it. */
static mica_status_t merged_bytes(merge_t *m, const pattern_t *p, const void **out_data,
                                  uint64_t *out_nbytes, mica_diag_t *d)
{
    const mica_node_t *wg = m->old->nodes[p->wg], *wu = m->old->nodes[p->wu];
    uint64_t total = wg->nbytes + wu->nbytes, have = 0;
    unsigned char *blob = mica_const_store_find(m->consts, wg->data, MICA_FUSE_GATE_UP_TAG, &have);
    if (blob) {
        if (have != total || memcmp(blob, wg->data, wg->nbytes) != 0 ||
            memcmp(blob + wg->nbytes, wu->data, wu->nbytes) != 0)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "%%%d: the constant store holds another gate+up merge of '%s'",
                                 p->gate_mm, mica_node_name(wg));
    } else {
        void *dst = NULL;
        MICA_TRY(mica_const_store_add(m->consts, wg->data, MICA_FUSE_GATE_UP_TAG, total, &dst, d));
        memcpy(dst, wg->data, wg->nbytes);
        memcpy((unsigned char *)dst + wg->nbytes, wu->data, wu->nbytes);
        blob = dst;
    }
    *out_data = blob;
    *out_nbytes = total;
    return MICA_OK;
}

/* At the gate matmul: the merged weight, then matmul(h, Wgu). */
static mica_status_t emit_merged_matmul(mica_rewriter_t *rw, merge_t *m, const pattern_t *p,
                                        mica_diag_t *d)
{
    const mica_graph_t *g = m->old;
    const mica_node_t *gate = g->nodes[p->gate_mm], *up = g->nodes[p->up_mm];
    const mica_node_t *wg = g->nodes[p->wg];
    mica_node_t w;
    memset(&w, 0, sizeof w);
    w.op = MICA_OP_WEIGHT;
    w.type = wg->type;
    w.type.shape[0] *= 2;
    char name[NAME_MAX_BYTES];
    merged_name(mica_node_name(wg), name, sizeof name);
    w.attrs[MICA_ATTR_WEIGHT_NAME].s = name;
    if (wg->data)
        MICA_TRY(merged_bytes(m, p, &w.data, &w.nbytes, d));
    int32_t wid = mica_rewrite_emit(rw, &w, false);
    if (wid < 0)
        return MICA_ERR_INVALID;

    mica_node_t mm;
    memset(&mm, 0, sizeof mm);
    mica_operand_t ops[2];
    MICA_TRY(mica_rewrite_remap(rw, &gate->inputs[0], &ops[0]));
    memset(&ops[1], 0, sizeof ops[1]);
    ops[1].value = wid;
    mm.op = MICA_OP_MATMUL;
    mm.n_inputs = 2;
    mm.inputs = ops;
    char note[NOTE_MAX] = "";
    note_add(note, "gate @%lld", gate->origin);
    note_add(note, " and up @%lld merged", up->origin);
    mm.note = note;
    return mica_rewrite_emit(rw, &mm, true) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

static mica_status_t merge_visit(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                                 mica_diag_t *d)
{
    merge_t *m = user;
    const pattern_t *p = m->role[n->id] != ROLE_NONE ? &m->pats[m->pat[n->id]] : NULL;
    if (p && !p->merge) {
        if (n->id != p->mul)
            return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
        mica_node_t c = *n;
        c.note = SKIP_NOTE;
        return mica_rewrite_copy(rw, &c) < 0 ? MICA_ERR_INVALID : MICA_OK;
    }
    switch ((role_t)m->role[n->id]) {
    case ROLE_GATE_MM:
        return emit_merged_matmul(rw, m, p, d);
    case ROLE_DROP:
        return MICA_OK; /* up matmul and silu: only the swiglu read them */
    case ROLE_MUL: {
        const mica_operand_t *y = mica_rewrite_lookup(rw, p->gate_mm);
        if (!y)
            return mica_diag_set(d, MICA_ERR_INVALID, "%%%d: the merged matmul is missing",
                                 n->id);
        mica_node_t sw;
        memset(&sw, 0, sizeof sw);
        sw.op = MICA_OP_SWIGLU;
        sw.n_inputs = 1;
        sw.inputs = (mica_operand_t *)y;
        sw.flags = n->flags;
        sw.note = n->note;
        return mica_rewrite_emit(rw, &sw, true) < 0 ? MICA_ERR_INVALID : MICA_OK;
    }
    case ROLE_NONE:
        break;
    }
    int32_t id = mica_rewrite_copy(rw, n);
    if (id < 0)
        return MICA_ERR_INVALID;
    if (m->merged_w[n->id] && id < m->cap_new)
        m->removable[id] = true;
    return MICA_OK;
}

static bool merged_weight_removable(const mica_node_t *n, void *user)
{
    const merge_t *m = user;
    return n->id < m->cap_new && m->removable[n->id];
}

/* Walk 1 into *out (g untouched). */
static mica_status_t merge_gate_up(mica_pass_ctx_t *ctx, const mica_graph_t *g,
                                   mica_graph_t **out, mica_diag_t *d)
{
    mica_uses_t uses;
    MICA_TRY(mica_uses_build(g, ctx->scratch, &uses, d));
    merge_t m;
    memset(&m, 0, sizeof m);
    m.old = g;
    m.consts = ctx->consts;
    size_t n = (size_t)(g->n_nodes ? g->n_nodes : 1);
    m.cap_new = g->n_nodes; /* each merge replaces 4 nodes by 3 */
    m.role = mica_arena_alloc(ctx->scratch, n);
    m.pat = mica_arena_alloc(ctx->scratch, n * sizeof *m.pat);
    m.merged_w = mica_arena_alloc(ctx->scratch, n * sizeof *m.merged_w);
    m.removable = mica_arena_alloc(ctx->scratch, n * sizeof *m.removable);
    m.pats = mica_arena_alloc(ctx->scratch, n * sizeof *m.pats);
    if (!m.role || !m.pat || !m.merged_w || !m.removable || !m.pats)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        pattern_t p;
        if (!match_swiglu(g, &uses, g->nodes[i], &p))
            continue;
        p.merge = g->nodes[p.wg]->data == NULL || ctx->consts != NULL;
        int32_t k = m.n_pats++;
        m.pats[k] = p;
        const int32_t members[4] = {p.gate_mm, p.up_mm, p.silu, p.mul};
        const role_t roles[4] = {ROLE_GATE_MM, ROLE_DROP, ROLE_DROP, ROLE_MUL};
        for (int j = 0; j < 4; j++) {
            m.role[members[j]] = (uint8_t)roles[j];
            m.pat[members[j]] = k;
        }
        if (p.merge)
            m.merged_w[p.wg] = m.merged_w[p.wu] = true;
    }
    const mica_rewrite_spec_t spec = {merge_visit, merged_weight_removable, &m};
    return mica_rewrite_build(g, &spec, out, d);
}

/* ------------------------------------------------------------------------ */
/* 2. annotations                                                            */

typedef struct annot {
    int32_t *root;      /* [nodes] the matmul whose kernel computes the node, or -1 */
    uint32_t *flags;    /* [nodes] flags to add */
    const char **note;  /* [nodes] note to add (scratch), or NULL */
} annot_t;

/* Operand o of a value of type pt reads it row by row in row-major order:
 * no view, or a view that only reshapes it (offset 0, row-major strides,
 * same element count) and whose dims after the first make up one row of
 * pt (so the reader's [i, ...] is the producer's row i). */
static bool reads_rows(const mica_operand_t *o, const mica_type_t *pt, bool need_row_dim0)
{
    if (!o->has_view)
        return true;
    if (o->view.offset != 0 || pt->rank < 1 || o->view_rank < 1)
        return false;
    int64_t expect = 1, numel = 1;
    for (int32_t d = o->view_rank - 1; d >= 0; d--) {
        if (o->view_shape[d] > 1 && o->view.stride[d] != expect)
            return false;
        expect *= o->view_shape[d];
        numel *= o->view_shape[d];
    }
    if (numel != mica_type_numel(pt))
        return false;
    return !need_row_dim0 || numel / o->view_shape[0] == pt->shape[pt->rank - 1];
}

/* The producer of operand k of n that n can be an epilogue of: a value
 * computed by a matmul kernel (root >= 0), read only by n, row by row, of
 * n's own shape (not broadcast). -1 if none. */
static int32_t epilogue_producer(const mica_graph_t *g, const mica_uses_t *u, const annot_t *a,
                                 const mica_node_t *n, int32_t k, bool need_row_dim0)
{
    const mica_operand_t *o = &n->inputs[k];
    const mica_node_t *p = g->nodes[o->value];
    if (a->root[p->id] < 0 || n_uses(u, p->id) != 1)
        return -1;
    if (!reads_rows(o, &p->type, need_row_dim0))
        return -1;
    mica_type_t seen = mica_operand_type(g, o);
    int64_t want = n->op == MICA_OP_SWIGLU ? 2 : 1;
    if (seen.rank != n->type.rank || mica_type_numel(&seen) != want * mica_type_numel(&n->type))
        return -1;
    return p->id;
}

static mica_status_t decide(mica_arena_t *scratch, const mica_graph_t *g, const mica_uses_t *u,
                            annot_t *a, const mica_node_t *n, mica_diag_t *d)
{
    char note[NOTE_MAX] = "";
    int32_t p = -1;
    const char *what = NULL;
    switch (n->op) {
    case MICA_OP_MATMUL:
        a->root[n->id] = n->id;
        return MICA_OK;
    case MICA_OP_ADD: {
        int32_t p0 = epilogue_producer(g, u, a, n, 0, false);
        int32_t p1 = epilogue_producer(g, u, a, n, 1, false);
        int32_t k = p1 > p0 ? 1 : 0; /* the later kernel: the other value is ready */
        p = k ? p1 : p0;
        if (p < 0)
            return MICA_OK;
        const mica_node_t *other = g->nodes[n->inputs[1 - k].value];
        what = other->op == MICA_OP_WEIGHT && other->type.rank == 1 ? "bias" : "residual add";
        break;
    }
    case MICA_OP_ROPE:
        p = epilogue_producer(g, u, a, n, 0, true);
        what = "rope";
        break;
    case MICA_OP_SWIGLU:
        p = epilogue_producer(g, u, a, n, 0, false);
        what = "swiglu";
        break;
    case MICA_OP_RMS_NORM: {
        int32_t count = 0;
        const mica_use_t *r = mica_uses_of(u, n->id, &count);
        for (int32_t i = 0; i < count; i++) {
            const mica_node_t *reader = g->nodes[r[i].node];
            if (reader->op != MICA_OP_MATMUL || r[i].operand != 0 || reader->inputs[0].has_view)
                return MICA_OK;
        }
        if (count == 0)
            return MICA_OK;
        snprintf(note, sizeof note, "prologue: into the activation quantization of");
        for (int32_t i = 0; i < count; i++)
            note_add(note, i ? ", @%lld" : " @%lld", g->nodes[r[i].node]->origin);
        a->flags[n->id] = MICA_FUSE_PROLOGUE;
        break;
    }
    case MICA_OP_ATTENTION:
    case MICA_OP_ATTENTION_KV:
        a->flags[n->id] = MICA_FUSE_SOFTMAX;
        snprintf(note, sizeof note, "softmax fused");
        break;
    default:
        return MICA_OK;
    }
    if (what) {
        if (p < 0)
            return MICA_OK;
        int32_t root = a->root[p];
        a->root[n->id] = root;
        a->flags[n->id] = MICA_FUSE_EPILOGUE;
        note_add(note, "epilogue of @%lld", g->nodes[root]->origin);
        size_t len = strlen(note);
        snprintf(note + len, sizeof note - len, " (%s)", what);
    }
    if (n->note && n->note[0]) {
        /* keep what an earlier pass (or pass 1) said, ours after it */
        char both[2 * NOTE_MAX];
        snprintf(both, sizeof both, "%s; %s", n->note, note);
        a->note[n->id] = mica_arena_strndup(scratch, both, strlen(both));
    } else {
        a->note[n->id] = mica_arena_strndup(scratch, note, strlen(note));
    }
    if (!a->note[n->id])
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    return MICA_OK;
}

static mica_status_t annotate_visit(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                                    mica_diag_t *d)
{
    (void)d;
    const annot_t *a = user;
    if (!a->flags[n->id] && !a->note[n->id])
        return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
    mica_node_t c = *n;
    c.flags |= a->flags[n->id];
    if (a->note[n->id])
        c.note = a->note[n->id];
    return mica_rewrite_copy(rw, &c) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

static mica_status_t annotate(mica_pass_ctx_t *ctx, mica_graph_t **g, mica_diag_t *d)
{
    const mica_graph_t *gr = *g;
    mica_uses_t uses;
    MICA_TRY(mica_uses_build(gr, ctx->scratch, &uses, d));
    size_t n = (size_t)(gr->n_nodes ? gr->n_nodes : 1);
    annot_t a;
    a.root = mica_arena_alloc(ctx->scratch, n * sizeof *a.root);
    a.flags = mica_arena_alloc(ctx->scratch, n * sizeof *a.flags);
    a.note = mica_arena_alloc(ctx->scratch, n * sizeof *a.note);
    if (!a.root || !a.flags || !a.note)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < gr->n_nodes; i++)
        a.root[i] = -1;
    for (int32_t i = 0; i < gr->n_nodes; i++)
        MICA_TRY(decide(ctx->scratch, gr, &uses, &a, gr->nodes[i], d));
    const mica_rewrite_spec_t spec = {annotate_visit, NULL, &a};
    return mica_rewrite_run(g, &spec, d);
}

/* ------------------------------------------------------------------------ */

mica_status_t mica_pass_fuse_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    mica_diag_t *d = ctx->diag;
    mica_graph_t *mid = NULL;
    /* the context's store, else the one the graph already points into */
    mica_const_store_t *saved = ctx->consts;
    if (!ctx->consts)
        ctx->consts = (*g)->consts;
    if (ctx->consts && (*g)->consts && ctx->consts != (*g)->consts) {
        ctx->consts = saved;
        return mica_diag_set(d, MICA_ERR_INVALID, "fuse: the graph points into another store");
    }
    mica_status_t ms = merge_gate_up(ctx, *g, &mid, d);
    if (ms == MICA_OK && ctx->consts && !mid->consts)
        mid->consts = mica_const_store_retain(ctx->consts); /* its merged weights live there */
    ctx->consts = saved;
    MICA_TRY(ms);
    mica_status_t s = annotate(ctx, &mid, d);
    if (s != MICA_OK) {
        mica_graph_release(mid);
        return s;
    }
    mica_graph_release(*g);
    *g = mid;
    return MICA_OK;
}

void mica_fuse_stats_count(const mica_graph_t *g, mica_fuse_stats_t *out)
{
    memset(out, 0, sizeof *out);
    static const struct {
        const char *needle;
        size_t off;
    } kinds[] = {
        {"(bias)", offsetof(mica_fuse_stats_t, epilogue_bias)},
        {"(residual add)", offsetof(mica_fuse_stats_t, epilogue_residual)},
        {"(rope)", offsetof(mica_fuse_stats_t, epilogue_rope)},
        {"(swiglu)", offsetof(mica_fuse_stats_t, epilogue_swiglu)},
    };
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        const char *note = n->note ? n->note : "";
        if (n->op == MICA_OP_SWIGLU)
            out->gate_up_merged++;
        if (strstr(note, "gate and up not merged"))
            out->gate_up_skipped++;
        if (n->flags & MICA_FUSE_PROLOGUE)
            out->prologue_rms_norm++;
        if (n->flags & MICA_FUSE_SOFTMAX)
            out->softmax++;
        if (!(n->flags & MICA_FUSE_EPILOGUE))
            continue;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            if (strstr(note, kinds[k].needle))
                (*(int32_t *)((char *)out + kinds[k].off))++;
    }
}
