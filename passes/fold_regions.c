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
 * A raster that a graph output reads stays materialized. Work happens on a
 * malloc'd copy of the nodes; the result is a new graph.
 */
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "region.h"

enum { FOLD_REGION_BUDGET = 64 };

/* A node being rewritten; inputs and regions are malloc'd copies. */
typedef struct wnode {
    const mica_node_t *orig; /* in the old graph: attributes, data, type */
    int32_t n_inputs;
    mica_operand_t *inputs;
    int32_t n_regions;
    mica_region_t *regions;
    bool dead;
} wnode_t;

typedef struct work {
    const mica_graph_t *g;
    int32_t n;
    wnode_t *nodes;
    int32_t *uses; /* live readers per node (phase 4) */
} work_t;

static bool is_raster(const work_t *w, int32_t v)
{
    return !w->nodes[v].dead && w->nodes[v].orig->op == MICA_OP_RASTER;
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

/* Rewrites the regions of raster r that read slot k (a raster p) to read
 * p's sources. MICA_ERR_UNSUPPORTED leaves r as it was. */
static mica_status_t compose_through(work_t *w, wnode_t *r, int32_t k)
{
    const wnode_t *p = &w->nodes[r->inputs[k].value];
    int32_t per_region = p->n_regions > 0 ? p->n_regions : 1;
    int64_t x_numel = mica_type_numel(&p->orig->type);
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

/* Composes every raster through the rasters it reads, to a fixpoint. */
static mica_status_t compose_all(work_t *w, mica_diag_t *d)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (int32_t i = 0; i < w->n; i++) {
            wnode_t *r = &w->nodes[i];
            if (!is_raster(w, i))
                continue;
            /* each success replaces reads of a raster by reads of earlier
             * values, so this terminates */
            for (int32_t k = 0; k < r->n_inputs; k++) {
                int32_t v = r->inputs[k].value;
                bool read = false;
                for (int32_t j = 0; j < r->n_regions && !read; j++)
                    read = r->regions[j].input == k;
                if (!read || r->inputs[k].has_view || !is_raster(w, v))
                    continue;
                mica_status_t s = compose_through(w, r, k);
                if (s == MICA_ERR_UNSUPPORTED)
                    continue;
                if (s == MICA_ERR_NOMEM)
                    return mica_diag_set(d, s, "%%%d: out of memory composing regions", i);
                if (s != MICA_OK)
                    return mica_diag_set(d, s, "%%%d: a region reading %%%d is malformed", i, v);
                changed = true;
                k = -1; /* the operand list changed: start over */
            }
        }
    }
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* 2-3. identity copies and views                                            */

/* True if some live node reads value v through an output op. */
static bool read_by_output(const work_t *w, int32_t v)
{
    for (int32_t i = v + 1; i < w->n; i++) {
        const wnode_t *u = &w->nodes[i];
        if (u->dead || u->orig->op != MICA_OP_OUTPUT)
            continue;
        for (int32_t k = 0; k < u->n_inputs; k++)
            if (u->inputs[k].value == v)
                return true;
    }
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

static bool is_identity(const work_t *w, const wnode_t *r)
{
    if (r->n_regions != 1 || r->regions[0].index_input >= 0)
        return false;
    const mica_node_t *src = w->nodes[r->inputs[r->regions[0].input].value].orig;
    if (!mica_type_equal(&src->type, &r->orig->type))
        return false;
    mica_region_t c = r->regions[0];
    mica_region_canonicalize(&c);
    int64_t numel = mica_type_numel(&r->orig->type);
    return c.rank == 1 && c.size[0] == numel && c.src.offset == 0 && c.dst.offset == 0 &&
           (numel == 1 || (c.src.stride[0] == 1 && c.dst.stride[0] == 1));
}

/* Every live reader of v reads it through a strided operand without a view. */
static bool all_readers_strided(const work_t *w, int32_t v)
{
    bool any = false;
    for (int32_t i = v + 1; i < w->n; i++) {
        const wnode_t *u = &w->nodes[i];
        if (u->dead)
            continue;
        uint32_t mask = mica_op_info(u->orig->op)->strided_mask;
        for (int32_t k = 0; k < u->n_inputs; k++) {
            if (u->inputs[k].value != v)
                continue;
            if (u->inputs[k].has_view || !(mask & (1u << k)))
                return false;
            any = true;
        }
    }
    return any;
}

/* One sweep of phases 2 and 3; true if an operand was rewritten. */
static bool fold_views(work_t *w)
{
    bool changed = false;
    for (int32_t v = 0; v < w->n; v++) {
        wnode_t *r = &w->nodes[v];
        if (!is_raster(w, v) || r->n_regions != 1 || read_by_output(w, v))
            continue;
        int32_t src = r->inputs[r->regions[0].input].value;
        mica_operand_t with;
        memset(&with, 0, sizeof with);
        with.value = src;
        if (!is_identity(w, r)) {
            const mica_type_t *t = &r->orig->type;
            const mica_node_t *s = w->nodes[src].orig;
            if (t->rank < 1 || s->type.layout.kind != MICA_LAYOUT_ROW_MAJOR ||
                !all_readers_strided(w, v) || !region_as_view(&r->regions[0], t, &with.view))
                continue;
            with.has_view = true;
            with.view_rank = t->rank;
            memcpy(with.view_shape, t->shape, sizeof with.view_shape);
        }
        for (int32_t i = v + 1; i < w->n; i++) {
            wnode_t *u = &w->nodes[i];
            if (u->dead)
                continue;
            for (int32_t k = 0; k < u->n_inputs; k++) {
                if (u->inputs[k].value != v)
                    continue;
                if (with.has_view)
                    u->inputs[k] = with;
                else
                    u->inputs[k].value = src; /* same type: any view it had still fits */
                changed = true;
            }
        }
    }
    return changed;
}

/* ------------------------------------------------------------------------ */
/* 4. dead rasters and the rebuild                                           */

static void remove_dead_rasters(work_t *w)
{
    memset(w->uses, 0, (size_t)w->n * sizeof *w->uses);
    for (int32_t i = 0; i < w->n; i++)
        for (int32_t k = 0; !w->nodes[i].dead && k < w->nodes[i].n_inputs; k++)
            w->uses[w->nodes[i].inputs[k].value]++;
    for (int32_t i = w->n - 1; i >= 0; i--) {
        wnode_t *r = &w->nodes[i];
        if (!is_raster(w, i) || w->uses[i] > 0)
            continue;
        r->dead = true;
        for (int32_t k = 0; k < r->n_inputs; k++)
            w->uses[r->inputs[k].value]--;
    }
}

static mica_status_t rebuild(work_t *w, mica_graph_t **out, mica_diag_t *d)
{
    mica_graph_t *ng = NULL;
    int32_t *remap = malloc((size_t)(w->n ? w->n : 1) * sizeof *remap);
    mica_status_t s = MICA_OK;
    if (!remap || mica_graph_create(&ng) != MICA_OK) {
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < w->n; i++) {
        wnode_t *u = &w->nodes[i];
        remap[i] = -1;
        if (u->dead)
            continue;
        for (int32_t k = 0; k < u->n_inputs; k++)
            u->inputs[k].value = remap[u->inputs[k].value];
        mica_node_t c = *u->orig;
        c.n_inputs = u->n_inputs;
        c.inputs = u->inputs;
        c.n_regions = u->n_regions;
        c.regions = u->regions;
        remap[i] = mica_graph_append(ng, &c, false);
        if (remap[i] < 0) {
            s = mica_diag_set(d, ng->error.code ? ng->error.code : MICA_ERR_INVALID,
                              "rebuilding %%%d (%s): %s", i, mica_op_info(c.op)->name,
                              ng->error.msg);
            goto done;
        }
    }
    *out = ng;
    ng = NULL;
done:
    mica_graph_release(ng);
    free(remap);
    return s;
}

static void work_free(work_t *w)
{
    for (int32_t i = 0; w->nodes && i < w->n; i++) {
        free(w->nodes[i].inputs);
        free(w->nodes[i].regions);
    }
    free(w->nodes);
    free(w->uses);
}

static mica_status_t work_load(work_t *w, const mica_graph_t *g, mica_diag_t *d)
{
    memset(w, 0, sizeof *w);
    w->g = g;
    w->n = g->n_nodes;
    size_t n = (size_t)(g->n_nodes ? g->n_nodes : 1);
    w->nodes = calloc(n, sizeof *w->nodes);
    w->uses = calloc(n, sizeof *w->uses);
    if (!w->nodes || !w->uses)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *nd = g->nodes[i];
        wnode_t *u = &w->nodes[i];
        u->orig = nd;
        u->n_inputs = nd->n_inputs;
        u->n_regions = nd->op == MICA_OP_RASTER ? nd->n_regions : 0;
        u->inputs = malloc((size_t)(nd->n_inputs ? nd->n_inputs : 1) * sizeof *u->inputs);
        u->regions = malloc((size_t)(u->n_regions ? u->n_regions : 1) * sizeof *u->regions);
        if (!u->inputs || !u->regions)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        for (int32_t k = 0; k < nd->n_inputs; k++) {
            if (nd->inputs[k].value < 0 || nd->inputs[k].value >= i)
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "%%%d: operand %d (%%%d) is not defined before it", i, k,
                                     nd->inputs[k].value);
            u->inputs[k] = nd->inputs[k];
        }
        for (int32_t r = 0; r < u->n_regions; r++) {
            const mica_region_t *rg = &nd->regions[r];
            if (rg->input < 0 || rg->input >= nd->n_inputs || rg->index_input >= nd->n_inputs)
                return mica_diag_set(d, MICA_ERR_INVALID, "%%%d: region %d reads a missing operand",
                                     i, r);
            u->regions[r] = *rg;
        }
    }
    return MICA_OK;
}

mica_status_t mica_pass_fold_regions(mica_graph_t **g, mica_diag_t *d)
{
    work_t w;
    mica_graph_t *ng = NULL;
    mica_status_t s = work_load(&w, *g, d);
    if (s == MICA_OK)
        s = compose_all(&w, d);
    if (s == MICA_OK) {
        while (fold_views(&w))
            continue;
        remove_dead_rasters(&w);
        s = rebuild(&w, &ng, d);
    }
    work_free(&w);
    if (s != MICA_OK)
        return s;
    mica_graph_release(*g);
    *g = ng;
    return MICA_OK;
}
