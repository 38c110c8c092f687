/* Pass "fold-regions": removes data movement that needs no memory of its own.
 *
 *  1. Compose: a raster reading another raster's value reads the producer's
 *     sources directly (mica_region_compose), when every region reading
 *     that operand composes exactly, each into at most as many regions as
 *     the producer has (no fragmentation beyond the producer's own split)
 *     and the raster keeps at most FOLD_REGION_BUDGET regions. Repeated
 *     until nothing changes, so chains of any length collapse.
 *  2. Identity: a raster copying the whole of a value of its own type is
 *     replaced by that value.
 *  3. Views: a raster with one region that writes its whole output in
 *     row-major order and reads with one stride per output dim is folded
 *     into its consumers' loads when every consumer reads it through an
 *     operand marked strided in ops.def.
 *  4. Rasters nobody reads any more are removed.
 *
 * A raster that a graph output reads stays materialized.
 *
 * Two walks of mica_rewrite_run, each linear in the graph (plus the region
 * algebra per raster): the first composes each raster, in order, through
 * the already composed rasters it reads in the new graph (so one walk
 * reaches the fixpoint: a raster's producers are final when it is
 * visited); the second decides phases 2-3 per raster from the use lists
 * of the composed graph and replaces the raster by its source or a view of
 * it, then drops rasters nobody reads (phase 4). Rasters that lost their
 * readers in the first walk are kept until the second one ends, so they
 * still count as readers there (as when the phases ran in place).
 */
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "region.h"
#include "rewrite.h"

enum { FOLD_REGION_BUDGET = 64 };

/* A raster being composed: malloc'd operands (values of the new graph)
 * and regions. */
typedef struct wnode {
    int32_t n_inputs;
    mica_operand_t *inputs;
    int32_t n_regions;
    mica_region_t *regions;
} wnode_t;

static bool is_raster(const mica_graph_t *g, int32_t v)
{
    return g->nodes[v]->op == MICA_OP_RASTER;
}

/* ------------------------------------------------------------------------ */
/* 1. composition                                                            */

/* Slot of value v (read without a view) in ops, appending it if absent;
 * -1 when out of memory. */
static int32_t slot_of(mica_operand_t **ops, int32_t *n, int32_t *cap, int32_t v)
{
    for (int32_t i = 0; i < *n; i++)
        if ((*ops)[i].value == v && !(*ops)[i].has_view)
            return i;
    if (*n == *cap) {
        int32_t c = *cap ? *cap * 2 : 8;
        mica_operand_t *o = realloc(*ops, (size_t)c * sizeof *o);
        if (!o)
            return -1;
        *ops = o;
        *cap = c;
    }
    memset(&(*ops)[*n], 0, sizeof **ops);
    (*ops)[*n].value = v;
    return (*n)++;
}

/* Drops operand slots no region reads and merges slots of one value. */
static mica_status_t compact_operands(wnode_t *r)
{
    int32_t *map = malloc((size_t)r->n_inputs * sizeof *map);
    bool *used = calloc((size_t)r->n_inputs, sizeof *used);
    mica_operand_t *ops = NULL;
    int32_t n = 0, cap = 0;
    mica_status_t s = MICA_ERR_NOMEM;
    if (!map || !used)
        goto done;
    for (int32_t i = 0; i < r->n_regions; i++) {
        used[r->regions[i].input] = true;
        if (r->regions[i].index_input >= 0)
            used[r->regions[i].index_input] = true;
    }
    for (int32_t k = 0; k < r->n_inputs; k++) {
        map[k] = -1;
        if (used[k] && (map[k] = slot_of(&ops, &n, &cap, r->inputs[k].value)) < 0)
            goto done;
    }
    for (int32_t i = 0; i < r->n_regions; i++) {
        r->regions[i].input = map[r->regions[i].input];
        if (r->regions[i].index_input >= 0)
            r->regions[i].index_input = map[r->regions[i].index_input];
    }
    free(r->inputs);
    r->inputs = ops;
    r->n_inputs = n;
    ops = NULL;
    s = MICA_OK;
done:
    free(map);
    free(used);
    free(ops);
    return s;
}

/* Rewrites the regions of raster r that read slot k (raster p of graph g)
 * to read p's sources. MICA_ERR_UNSUPPORTED leaves r as it was. */
static mica_status_t compose_through(const mica_graph_t *g, wnode_t *r, int32_t k)
{
    const mica_node_t *p = g->nodes[r->inputs[k].value];
    int32_t per_region = p->n_regions > 0 ? p->n_regions : 1;
    int64_t x_numel = mica_type_numel(&p->type);
    mica_region_t *regs = malloc((size_t)FOLD_REGION_BUDGET * sizeof *regs);
    mica_region_t *tmp = malloc((size_t)per_region * sizeof *tmp);
    mica_operand_t *ops = malloc((size_t)r->n_inputs * sizeof *ops);
    int32_t n = 0, n_ops = r->n_inputs, cap_ops = r->n_inputs;
    mica_status_t s = MICA_ERR_NOMEM;
    if (!regs || !tmp || !ops)
        goto done;
    memcpy(ops, r->inputs, (size_t)r->n_inputs * sizeof *ops);
    for (int32_t i = 0; i < r->n_regions; i++) {
        const mica_region_t *b = &r->regions[i];
        if (b->input != k) {
            s = MICA_ERR_UNSUPPORTED;
            if (n == FOLD_REGION_BUDGET)
                goto done;
            regs[n++] = *b;
            continue;
        }
        /* see mica_region_compose: whose ids a result reads */
        bool b_gathers = b->index_input >= 0 && b->src.stride[b->index_dim] != 0;
        int32_t got = 0;
        int32_t room = FOLD_REGION_BUDGET - n < per_region ? FOLD_REGION_BUDGET - n : per_region;
        s = room < 1 ? MICA_ERR_UNSUPPORTED
                     : mica_region_compose(b, p->regions, p->n_regions, x_numel, tmp, room, &got);
        if (s != MICA_OK)
            goto done;
        for (int32_t j = 0; j < got; j++) {
            mica_region_t c = tmp[j];
            s = MICA_ERR_NOMEM;
            if ((c.input = slot_of(&ops, &n_ops, &cap_ops, p->inputs[c.input].value)) < 0)
                goto done;
            if (c.index_input >= 0 && b_gathers)
                c.index_input = b->index_input; /* b's own ids, a slot of r */
            else if (c.index_input >= 0 &&
                     (c.index_input =
                          slot_of(&ops, &n_ops, &cap_ops, p->inputs[c.index_input].value)) < 0)
                goto done;
            regs[n++] = c;
        }
    }
    mica_region_t *keep = realloc(r->regions, (size_t)(n ? n : 1) * sizeof *keep);
    s = MICA_ERR_NOMEM;
    if (!keep)
        goto done;
    memcpy(keep, regs, (size_t)n * sizeof *keep);
    r->regions = keep;
    r->n_regions = n;
    free(r->inputs);
    r->inputs = ops;
    r->n_inputs = n_ops;
    ops = NULL;
    s = compact_operands(r);
done:
    free(regs);
    free(tmp);
    free(ops);
    return s;
}

/* Composes raster r (operands in graph g) through the rasters of g it
 * reads, until nothing changes; `id` names it in messages. */
static mica_status_t compose_raster(const mica_graph_t *g, wnode_t *r, int32_t id, mica_diag_t *d)
{
    /* each success replaces reads of a raster by reads of earlier values,
     * so this terminates */
    for (int32_t k = 0; k < r->n_inputs; k++) {
        int32_t v = r->inputs[k].value;
        bool read = false;
        for (int32_t j = 0; j < r->n_regions && !read; j++)
            read = r->regions[j].input == k;
        if (!read || r->inputs[k].has_view || !is_raster(g, v))
            continue;
        mica_status_t s = compose_through(g, r, k);
        if (s == MICA_ERR_UNSUPPORTED)
            continue;
        if (s == MICA_ERR_NOMEM)
            return mica_diag_set(d, s, "%%%d: out of memory composing regions", id);
        if (s != MICA_OK)
            return mica_diag_set(d, s, "%%%d: a region reading %%%d is malformed", id, v);
        k = -1; /* the operand list changed: start over */
    }
    return MICA_OK;
}

/* Walk 1: a raster is composed through the (final) rasters it reads in the
 * new graph; anything else is copied. */
static mica_status_t compose_visit(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                                   mica_diag_t *d)
{
    (void)user;
    if (n->op != MICA_OP_RASTER)
        return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
    for (int32_t r = 0; r < n->n_regions; r++) {
        const mica_region_t *rg = &n->regions[r];
        if (rg->input < 0 || rg->input >= n->n_inputs || rg->index_input >= n->n_inputs)
            return mica_diag_set(d, MICA_ERR_INVALID, "%%%d: region %d reads a missing operand",
                                 n->id, r);
    }
    wnode_t w;
    w.n_inputs = n->n_inputs;
    w.n_regions = n->n_regions;
    w.inputs = malloc((size_t)(n->n_inputs ? n->n_inputs : 1) * sizeof *w.inputs);
    w.regions = malloc((size_t)(n->n_regions ? n->n_regions : 1) * sizeof *w.regions);
    mica_status_t s = MICA_OK;
    if (!w.inputs || !w.regions)
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int32_t k = 0; s == MICA_OK && k < n->n_inputs; k++)
        s = mica_rewrite_remap(rw, &n->inputs[k], &w.inputs[k]);
    if (s == MICA_OK) {
        if (n->n_regions > 0)
            memcpy(w.regions, n->regions, (size_t)n->n_regions * sizeof *w.regions);
        s = compose_raster(mica_rewrite_new(rw), &w, n->id, d);
    }
    if (s == MICA_OK) {
        mica_node_t c = *n;
        c.n_inputs = w.n_inputs;
        c.inputs = w.inputs;
        c.n_regions = w.n_regions;
        c.regions = w.regions;
        if (mica_rewrite_emit(rw, &c, false) < 0)
            s = MICA_ERR_INVALID;
    }
    free(w.inputs);
    free(w.regions);
    return s;
}

/* ------------------------------------------------------------------------ */
/* 2-3. identity copies and views                                            */

/* True if an output op reads value v. */
static bool read_by_output(const mica_graph_t *g, const mica_uses_t *uses, int32_t v)
{
    int32_t n = 0;
    const mica_use_t *u = mica_uses_of(uses, v, &n);
    for (int32_t i = 0; i < n; i++)
        if (g->nodes[u[i].node]->op == MICA_OP_OUTPUT)
            return true;
    return false;
}

/* The view that reads, for every element of type t in row-major order,
 * what region rg writes there; false if rg does not write all of t in
 * row-major order with one source stride per dim of t. */
static bool region_as_view(const mica_region_t *rg, const mica_type_t *t, mica_view_t *out)
{
    mica_region_t r = *rg;
    mica_region_canonicalize(&r);
    if (r.index_input >= 0 || r.dst.offset != 0 || mica_region_numel(&r) != mica_type_numel(t))
        return false;
    int64_t expect = 1;
    for (int32_t d = r.rank - 1; d >= 0; d--) {
        if (r.size[d] == 1)
            continue;
        if (r.dst.stride[d] != expect)
            return false;
        expect *= r.size[d];
    }
    int64_t os[MICA_MAX_RANK];
    mica_type_strides(t, os);
    memset(out, 0, sizeof *out);
    out->offset = r.src.offset;
    for (int32_t k = 0; k < t->rank; k++) {
        if (t->shape[k] == 1)
            continue;
        int32_t hit = -1;
        for (int32_t d = 0; d < r.rank && hit < 0; d++)
            if (r.size[d] > 1 && r.dst.stride[d] <= os[k] && os[k] < r.dst.stride[d] * r.size[d])
                hit = d;
        if (hit < 0 || os[k] % r.dst.stride[hit] != 0 ||
            os[k] * t->shape[k] > r.dst.stride[hit] * r.size[hit])
            return false;
        out->stride[k] = r.src.stride[hit] * (os[k] / r.dst.stride[hit]);
    }
    return true;
}

static bool is_identity(const mica_graph_t *g, const mica_node_t *r)
{
    if (r->n_regions != 1 || r->regions[0].index_input >= 0)
        return false;
    const mica_node_t *src = g->nodes[r->inputs[r->regions[0].input].value];
    if (!mica_type_equal(&src->type, &r->type))
        return false;
    mica_region_t c = r->regions[0];
    mica_region_canonicalize(&c);
    int64_t numel = mica_type_numel(&r->type);
    return c.rank == 1 && c.size[0] == numel && c.src.offset == 0 && c.dst.offset == 0 &&
           (numel == 1 || (c.src.stride[0] == 1 && c.dst.stride[0] == 1));
}

/* Every reader of v reads it through a strided operand without a view. */
static bool all_readers_strided(const mica_graph_t *g, const mica_uses_t *uses, int32_t v)
{
    int32_t n = 0;
    const mica_use_t *u = mica_uses_of(uses, v, &n);
    for (int32_t i = 0; i < n; i++) {
        const mica_node_t *reader = g->nodes[u[i].node];
        uint32_t mask = mica_op_info(reader->op)->strided_mask;
        int32_t k = u[i].operand;
        if (reader->inputs[k].has_view || k >= 32 || !(mask & (1u << k)))
            return false;
    }
    return n > 0;
}

/* Walk 2 (phases 2-3): a single-region raster no output reads becomes its
 * source (an identity copy) or a view of it that every reader takes;
 * anything else is copied. Readers of a raster are later in the graph, so
 * when v is visited they still read it as the first walk left them. */
static mica_status_t view_visit(mica_rewriter_t *rw, const mica_node_t *r, void *user,
                                mica_diag_t *d)
{
    (void)d;
    const mica_uses_t *uses = user;
    const mica_graph_t *g = mica_rewrite_old(rw);
    int32_t v = r->id;
    if (r->op != MICA_OP_RASTER || r->n_regions != 1 || read_by_output(g, uses, v))
        return mica_rewrite_copy(rw, r) < 0 ? MICA_ERR_INVALID : MICA_OK;
    int32_t src = r->inputs[r->regions[0].input].value;
    const mica_operand_t *m = mica_rewrite_lookup(rw, src);
    if (m && !m->has_view) {
        if (is_identity(g, r))
            return mica_rewrite_replace(rw, m->value); /* same type: any view still fits */
        const mica_type_t *t = &r->type;
        mica_operand_t with;
        memset(&with, 0, sizeof with);
        with.value = m->value;
        if (t->rank >= 1 && g->nodes[src]->type.layout.kind == MICA_LAYOUT_ROW_MAJOR &&
            all_readers_strided(g, uses, v) && region_as_view(&r->regions[0], t, &with.view)) {
            with.has_view = true;
            with.view_rank = t->rank;
            memcpy(with.view_shape, t->shape, sizeof with.view_shape);
            return mica_rewrite_replace_view(rw, &with);
        }
    }
    return mica_rewrite_copy(rw, r) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

/* Phase 4: rasters nobody reads go. */
static bool raster_removable(const mica_node_t *n, void *user)
{
    (void)user;
    return n->op == MICA_OP_RASTER;
}

mica_status_t mica_pass_fold_regions_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    mica_diag_t *d = ctx->diag;
    const mica_rewrite_spec_t compose = {compose_visit, NULL, NULL};
    mica_graph_t *mid = NULL;
    MICA_TRY(mica_rewrite_build(*g, &compose, &mid, d));
    mica_uses_t uses;
    mica_status_t s = mica_uses_build(mid, ctx->scratch, &uses, d);
    if (s == MICA_OK) {
        const mica_rewrite_spec_t views = {view_visit, raster_removable, &uses};
        s = mica_rewrite_run(&mid, &views, d);
    }
    if (s != MICA_OK) {
        mica_graph_release(mid);
        return s;
    }
    mica_graph_release(*g);
    *g = mid;
    return MICA_OK;
}
