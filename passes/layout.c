/* The layout pass (passes/layout.h). */
#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout_index.h"
#include "rewrite.h"

/* Operand index of the first of the three weight operands (q, s, m) of a
 * quantized matmul, or -1 for any other op. */
static int32_t qweight_first(mica_op_t op)
{
    return op == MICA_OP_QMATMUL ? 2 : op == MICA_OP_WMATMUL ? 1 : -1;
}

typedef struct ctx {
    const mica_graph_t *old;
    const mica_target_tile_t *tile;
    mica_const_store_t *store;
    mica_diag_t *d;
    mica_layout_stats_t st;
    bool *packable;     /* [old nodes]: a quantized matmul that reads packed weights */
    uint8_t *need;      /* [old nodes]: weight read packed (1) and / or row-major (2) */
    int32_t *packed_id; /* [old nodes]: the packed twin in the new graph, or -1 */
    bool *dropme;       /* [cap_new]: new node is a row-major twin that may go */
    int32_t cap_new;
    char tag[MICA_CONST_STORE_TAG_MAX];
} ctx_t;

/* Weight node w can be packed as part kind (0 = q, 1 = s or m) of a triple. */
static bool packable_weight(const ctx_t *c, const mica_node_t *w, int part)
{
    if (w->op != MICA_OP_WEIGHT || w->type.rank != 2 ||
        w->type.layout.kind != MICA_LAYOUT_ROW_MAJOR)
        return false;
    mica_dtype_t dt = w->type.dtype;
    if (part == 0) {
        if (dt == MICA_DTYPE_U4)
            return ((int64_t)c->tile->hp * c->tile->lp) % 2 == 0;
        return dt == MICA_DTYPE_I8;
    }
    return dt == MICA_DTYPE_F16;
}

static bool packable_matmul(const ctx_t *c, const mica_node_t *n)
{
    int32_t f = qweight_first(n->op);
    if (f < 0 || n->n_inputs < f + 3)
        return false;
    for (int i = 0; i < 3; i++) {
        const mica_operand_t *o = &n->inputs[f + i];
        if (o->has_view || !packable_weight(c, c->old->nodes[o->value], i ? 1 : 0))
            return false;
    }
    return true;
}

/* Packs the row-major bytes src of type rt into dst (zeroed, of type pt),
 * element by element through mica_layout_offset. */
static void pack_bytes(const mica_type_t *rt, const void *src, const mica_type_t *pt, void *dst)
{
    const uint8_t *s = src;
    uint8_t *o = dst;
    const bool nib = rt->dtype == MICA_DTYPE_U4;
    const size_t es = nib ? 0 : (size_t)mica_dtype_block_bytes(rt->dtype);
    for (int64_t r = 0; r < rt->shape[0]; r++)
        for (int64_t k = 0; k < rt->shape[1]; k++) {
            int32_t ss, ds;
            int64_t so = mica_layout_offset(rt, r, k, &ss), dof = mica_layout_offset(pt, r, k, &ds);
            if (nib)
                o[dof] = (uint8_t)(o[dof] | (((s[so] >> ss) & 0xfu) << ds));
            else
                memcpy(o + dof, s + so, es);
        }
}

/* Appends the packed twin of old weight w (part 0 = q, 1 = scales / mins). */
static int32_t emit_packed(ctx_t *c, mica_rewriter_t *rw, const mica_node_t *w, int part)
{
    const mica_target_tile_t *t = c->tile;
    mica_type_t pt;
    if (mica_layout_tiled_type(w->type.dtype, w->type.shape[0], w->type.shape[1], t->ep, t->hp,
                               part ? 1 : t->lp, &pt, c->d) != MICA_OK) {
        mica_diag_prefix(c->d, "weight %s", mica_node_name(w));
        return -1;
    }
    const uint64_t plain = mica_layout_nbytes(&w->type), bytes = mica_layout_nbytes(&pt);
    void *blob = NULL;
    if (w->data) {
        if (w->nbytes != plain) {
            mica_diag_set(c->d, MICA_ERR_INVALID, "weight %s has %llu bytes, its type %llu",
                          mica_node_name(w), (unsigned long long)w->nbytes,
                          (unsigned long long)plain);
            return -1;
        }
        if (!c->store) {
            mica_diag_set(c->d, MICA_ERR_INVALID, "layout: bound weights and no constant store");
            return -1;
        }
        uint64_t have = 0;
        blob = mica_const_store_find(c->store, w->data, c->tag, &have);
        if (blob && have != bytes) {
            mica_diag_set(c->d, MICA_ERR_INVALID,
                          "weight %s: the stored %s copy has %llu bytes, not %llu",
                          mica_node_name(w), c->tag, (unsigned long long)have,
                          (unsigned long long)bytes);
            return -1;
        }
        if (blob) {
            c->st.n_shared++;
        } else {
            if (mica_const_store_add(c->store, w->data, c->tag, bytes, &blob, c->d) != MICA_OK)
                return -1;
            pack_bytes(&w->type, w->data, &pt, blob);
            c->st.n_packed++;
        }
        c->st.bytes_plain += plain;
        c->st.bytes_packed += bytes;
    }
    char note[256];
    snprintf(note, sizeof note, "%s%spacked for %s", w->note ? w->note : "", w->note ? "; " : "",
             t->name);
    mica_node_t nd = *w;
    nd.type = pt;
    nd.data = blob;
    nd.nbytes = blob ? bytes : 0;
    nd.note = note;
    c->st.n_weights++;
    return mica_rewrite_emit(rw, &nd, false);
}

static mica_status_t mark_drop(ctx_t *c, int32_t id)
{
    if (id >= c->cap_new) {
        int32_t cap = c->cap_new * 2 > id + 1 ? c->cap_new * 2 : id + 1;
        bool *p = realloc(c->dropme, (size_t)cap * sizeof *p);
        if (!p)
            return mica_diag_set(c->d, MICA_ERR_NOMEM, "out of memory");
        memset(p + c->cap_new, 0, (size_t)(cap - c->cap_new) * sizeof *p);
        c->dropme = p;
        c->cap_new = cap;
    }
    c->dropme[id] = true;
    return MICA_OK;
}

static mica_status_t visit(mica_rewriter_t *rw, const mica_node_t *n, void *user, mica_diag_t *d)
{
    (void)d;
    ctx_t *c = user;
    if (n->op == MICA_OP_STATE && n->type.rank == 3) {
        mica_node_t nd = *n;
        nd.note = MICA_LAYOUT_KV_NOTE;
        return mica_rewrite_copy(rw, &nd) < 0 ? c->d->code : MICA_OK;
    }
    if (n->op == MICA_OP_WEIGHT && (c->need[n->id] & 1)) {
        /* which part: a packed reader reads it at q (0) or s / m (1) */
        int part = n->type.dtype == MICA_DTYPE_F16 ? 1 : 0;
        int32_t plain = -1;
        if (c->need[n->id] & 2) {
            if ((plain = mica_rewrite_copy(rw, n)) < 0)
                return c->d->code;
        }
        int32_t p = emit_packed(c, rw, n, part);
        if (p < 0)
            return c->d->code ? c->d->code : MICA_ERR_INVALID;
        c->packed_id[n->id] = p;
        if (plain >= 0) {
            MICA_TRY(mark_drop(c, plain));
            return mica_rewrite_replace(rw, plain);
        }
        return MICA_OK;
    }
    if (!c->packable[n->id])
        return mica_rewrite_copy(rw, n) < 0 ? c->d->code : MICA_OK;
    mica_operand_t in[8];
    const int32_t f = qweight_first(n->op);
    for (int32_t i = 0; i < n->n_inputs && i < 8; i++) {
        if (i >= f && i < f + 3) {
            memset(&in[i], 0, sizeof in[i]);
            in[i].value = c->packed_id[n->inputs[i].value];
        } else {
            MICA_TRY(mica_rewrite_remap(rw, &n->inputs[i], &in[i]));
        }
    }
    mica_node_t nd = *n;
    nd.inputs = in;
    c->st.n_matmuls++;
    return mica_rewrite_emit(rw, &nd, true) < 0 ? c->d->code : MICA_OK;
}

static bool removable(const mica_node_t *n, void *user)
{
    const ctx_t *c = user;
    return n->id < c->cap_new && c->dropme[n->id];
}

mica_status_t mica_pass_layout(const mica_target_tile_t *tile, mica_const_store_t *store,
                               mica_graph_t **g, mica_layout_stats_t *out_stats, mica_diag_t *d)
{
    if (!g || !*g)
        return mica_diag_set(d, MICA_ERR_INVALID, "layout: no graph");
    if (tile && (tile->ep < 0 || tile->hp < 1 || tile->lp < 1 || tile->hp > 4096 ||
                 tile->lp > 4096))
        return mica_diag_set(d, MICA_ERR_INVALID, "layout: bad tile (%d,%d,%d)", tile->ep,
                             tile->hp, tile->lp);
    if (store && (*g)->consts && (*g)->consts != store)
        return mica_diag_set(d, MICA_ERR_INVALID, "layout: the graph points into another store");
    const mica_graph_t *old = *g;
    const size_t nn = (size_t)(old->n_nodes ? old->n_nodes : 1);
    ctx_t c = {.old = old, .tile = tile, .store = store, .d = d};
    c.packable = calloc(nn, sizeof *c.packable);
    c.need = calloc(nn, sizeof *c.need);
    c.packed_id = malloc(nn * sizeof *c.packed_id);
    c.cap_new = (int32_t)nn + 16;
    c.dropme = calloc((size_t)c.cap_new, sizeof *c.dropme);
    mica_status_t s = MICA_OK;
    if (!c.packable || !c.need || !c.packed_id || !c.dropme) {
        s = mica_diag_set(d, MICA_ERR_NOMEM, "layout: out of memory");
        goto done;
    }
    if (tile)
        snprintf(c.tag, sizeof c.tag, "tile.%d.%d.%d", tile->ep, tile->hp, tile->lp);
    bool any_bound = false;
    for (int32_t i = 0; i < old->n_nodes; i++) {
        const mica_node_t *n = old->nodes[i];
        c.packed_id[i] = -1;
        c.packable[i] = tile && packable_matmul(&c, n);
        /* what each weight's readers need of it, from its readers' side:
         * one pass over the operands, so linear in the graph */
        const int32_t f = c.packable[i] ? qweight_first(n->op) : -1;
        for (int32_t k = 0; k < n->n_inputs; k++) {
            const int32_t v = n->inputs[k].value;
            if (old->nodes[v]->op != MICA_OP_WEIGHT)
                continue;
            const bool packed = f >= 0 && k >= f && k < f + 3;
            c.need[v] |= packed ? 1 : 2;
            any_bound |= packed && old->nodes[v]->data != NULL;
        }
    }
    if (any_bound && !store) {
        s = mica_diag_set(d, MICA_ERR_INVALID, "layout: bound weights to pack and no store");
        goto done;
    }
    if (store && any_bound && !(*g)->consts)
        (*g)->consts = mica_const_store_retain(store); /* carried into the new graph */
    const mica_rewrite_spec_t spec = {visit, removable, &c};
    s = mica_rewrite_run(g, &spec, d);
    if (s != MICA_OK)
        mica_diag_prefix(d, "layout");
    else if (out_stats)
        *out_stats = c.st;
done:
    free(c.packable);
    free(c.need);
    free(c.packed_id);
    free(c.dropme);
    return s;
}

bool mica_layout_target_tile(const mica_target_t *t, mica_target_tile_t *out)
{
    memset(out, 0, sizeof *out);
    mica_target_t def;
    if (!t) {
        mica_diag_t d = {0};
        if (mica_target_find(MICA_LAYOUT_DEFAULT_TARGET, &def, &d) != MICA_OK)
            return false; /* the table always has it (tests/test_layout.c checks) */
        t = &def;
    }
    if (t->arch == MICA_TARGET_ARCH_OPENCL || t->tile.hp < 1 || t->tile.lp < 1)
        return false;
    *out = t->tile;
    return true;
}

mica_status_t mica_pass_layout_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    mica_target_tile_t tile;
    const bool pack = mica_layout_target_tile(ctx->target, &tile);
    mica_const_store_t *store = ctx->consts ? ctx->consts : (*g)->consts;
    bool made = false;
    if (!store && pack) {
        /* a store only when there are bound weights to pack */
        bool bound = false;
        for (int32_t i = 0; i < (*g)->n_nodes && !bound; i++) {
            const mica_node_t *n = (*g)->nodes[i];
            bound = qweight_first(n->op) >= 0 && n->n_inputs >= qweight_first(n->op) + 3 &&
                    (*g)->nodes[n->inputs[qweight_first(n->op)].value]->data != NULL;
        }
        if (bound) {
            MICA_TRY(mica_const_store_create(&store, ctx->diag));
            made = true;
        }
    }
    mica_status_t s = mica_pass_layout(pack ? &tile : NULL, store, g, NULL, ctx->diag);
    if (made)
        mica_const_store_release(store); /* the graph holds its own reference, if it kept any */
    return s;
}
