/* Use lists and the rewriter (see rewrite.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rewrite.h"

/* ------------------------------------------------------------------------ */
/* use lists                                                                 */

mica_status_t mica_uses_build(const mica_graph_t *g, mica_arena_t *arena, mica_uses_t *out,
                              mica_diag_t *d)
{
    memset(out, 0, sizeof *out);
    int32_t n = g->n_nodes;
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const mica_node_t *nd = g->nodes[i];
        for (int32_t k = 0; k < nd->n_inputs; k++)
            if (nd->inputs[k].value < 0 || nd->inputs[k].value >= i)
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "%%%d: operand %d (%%%d) is not defined before it", i, k,
                                     nd->inputs[k].value);
        total += nd->n_inputs;
    }
    if (total > INT32_MAX)
        return mica_diag_set(d, MICA_ERR_NOMEM, "%lld operands are too many for use lists",
                             (long long)total);
    int32_t *start = mica_arena_alloc(arena, (size_t)(n + 1) * sizeof *start);
    int32_t *fill = mica_arena_alloc(arena, (size_t)(n + 1) * sizeof *fill);
    mica_use_t *use = mica_arena_alloc(arena, (size_t)(total ? total : 1) * sizeof *use);
    if (!start || !fill || !use)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory building use lists");
    /* count, prefix sums, then place: readers come out in id order */
    for (int32_t i = 0; i < n; i++)
        for (int32_t k = 0; k < g->nodes[i]->n_inputs; k++)
            start[g->nodes[i]->inputs[k].value + 1]++;
    for (int32_t v = 0; v < n; v++)
        start[v + 1] += start[v];
    memcpy(fill, start, (size_t)(n + 1) * sizeof *fill);
    for (int32_t i = 0; i < n; i++)
        for (int32_t k = 0; k < g->nodes[i]->n_inputs; k++)
            use[fill[g->nodes[i]->inputs[k].value]++] = (mica_use_t){i, k};
    out->n_values = n;
    out->start = start;
    out->use = use;
    return MICA_OK;
}

const mica_use_t *mica_uses_of(const mica_uses_t *u, int32_t v, int32_t *out_count)
{
    *out_count = 0;
    if (!u->start || v < 0 || v >= u->n_values || u->start[v] == u->start[v + 1])
        return NULL;
    *out_count = u->start[v + 1] - u->start[v];
    return u->use + u->start[v];
}

/* ------------------------------------------------------------------------ */
/* the rewriter                                                              */

struct mica_rewriter {
    const mica_graph_t *old;
    mica_graph_t *ng;
    mica_operand_t *map; /* [old->n_nodes]; value -1 = not mapped */
    int32_t cur;         /* old node being visited */
    int32_t last;        /* last id appended while visiting cur, or -1 */
    bool replaced;       /* cur was mapped by a replace call */
    mica_operand_t *ops; /* scratch operands of mica_rewrite_copy */
    int32_t cap_ops;
    mica_status_t status; /* first failure (sticky) */
    mica_diag_t *d;
};

static const char *op_name(const mica_node_t *n)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    return info ? info->name : "?";
}

/* Records the first failure, naming the node being visited. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static mica_status_t rw_fail(mica_rewriter_t *rw, mica_status_t code, const char *fmt, ...)
{
    if (rw->status == MICA_OK) {
        char what[MICA_DIAG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        rw->status = code;
        mica_diag_set(rw->d, code, "%%%d (%s): %s", rw->cur, op_name(rw->old->nodes[rw->cur]),
                      what);
    }
    return rw->status;
}

const mica_graph_t *mica_rewrite_old(const mica_rewriter_t *rw)
{
    return rw->old;
}

const mica_graph_t *mica_rewrite_new(const mica_rewriter_t *rw)
{
    return rw->ng;
}

const mica_operand_t *mica_rewrite_lookup(const mica_rewriter_t *rw, int32_t v)
{
    if (v < 0 || v >= rw->old->n_nodes || rw->map[v].value < 0)
        return NULL;
    return &rw->map[v];
}

mica_status_t mica_rewrite_remap(mica_rewriter_t *rw, const mica_operand_t *o,
                                 mica_operand_t *out_operand)
{
    if (o->value < 0 || o->value >= rw->cur)
        return rw_fail(rw, MICA_ERR_INVALID, "operand %%%d is not defined before it", o->value);
    const mica_operand_t *m = &rw->map[o->value];
    if (m->value < 0)
        return rw_fail(rw, MICA_ERR_INVALID, "reads %%%d, which the rewrite removed", o->value);
    if (m->has_view && o->has_view)
        return rw_fail(rw, MICA_ERR_UNSUPPORTED,
                       "reads %%%d through a view, and %%%d became a view itself", o->value,
                       o->value);
    if (m->has_view) {
        *out_operand = *m;
    } else {
        *out_operand = *o;
        out_operand->value = m->value;
    }
    return MICA_OK;
}

/* Appends n (operands in new ids) and gives it the visited node's origin. */
static int32_t append(mica_rewriter_t *rw, const mica_node_t *n, bool infer)
{
    if (rw->status != MICA_OK)
        return -1;
    int32_t id = mica_graph_append(rw->ng, n, infer);
    if (id < 0) {
        rw_fail(rw, rw->ng->error.code ? rw->ng->error.code : MICA_ERR_INVALID, "rebuilding: %s",
                rw->ng->error.msg);
        return -1;
    }
    rw->ng->nodes[id]->origin = rw->old->nodes[rw->cur]->origin;
    rw->last = id;
    return id;
}

int32_t mica_rewrite_copy(mica_rewriter_t *rw, const mica_node_t *n)
{
    if (rw->status != MICA_OK)
        return -1;
    if (n->n_inputs > rw->cap_ops) {
        mica_operand_t *o = realloc(rw->ops, (size_t)n->n_inputs * sizeof *o);
        if (!o) {
            rw_fail(rw, MICA_ERR_NOMEM, "out of memory");
            return -1;
        }
        rw->ops = o;
        rw->cap_ops = n->n_inputs;
    }
    for (int32_t k = 0; k < n->n_inputs; k++)
        if (mica_rewrite_remap(rw, &n->inputs[k], &rw->ops[k]) != MICA_OK)
            return -1;
    mica_node_t c = *n;
    c.inputs = rw->ops;
    return append(rw, &c, false);
}

int32_t mica_rewrite_emit(mica_rewriter_t *rw, const mica_node_t *n, bool infer)
{
    return append(rw, n, infer);
}

mica_status_t mica_rewrite_replace_view(mica_rewriter_t *rw, const mica_operand_t *with)
{
    if (rw->status != MICA_OK)
        return rw->status;
    if (with->value < 0 || with->value >= rw->ng->n_nodes)
        return rw_fail(rw, MICA_ERR_INVALID, "replaced by %%%d, which is not in the new graph",
                       with->value);
    rw->map[rw->cur] = *with;
    rw->replaced = true;
    return MICA_OK;
}

mica_status_t mica_rewrite_replace(mica_rewriter_t *rw, int32_t v)
{
    mica_operand_t o;
    memset(&o, 0, sizeof o);
    o.value = v;
    return mica_rewrite_replace_view(rw, &o);
}

/* Removes the removable nodes nothing kept reads, in place: survivors move
 * down, their ids and operand values are renumbered (types, regions and
 * annotations do not change). */
static mica_status_t remove_dead(mica_graph_t *g, const mica_rewrite_spec_t *spec,
                                 mica_diag_t *d)
{
    int32_t n = g->n_nodes;
    bool *live = calloc((size_t)(n ? n : 1), sizeof *live);
    int32_t *renum = malloc((size_t)(n ? n : 1) * sizeof *renum);
    if (!live || !renum) {
        free(live);
        free(renum);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory removing dead nodes");
    }
    int32_t kept = 0;
    for (int32_t i = n - 1; i >= 0; i--) {
        const mica_node_t *nd = g->nodes[i];
        if (!live[i] && !spec->removable(nd, spec->user))
            live[i] = true;
        if (!live[i])
            continue;
        kept++;
        for (int32_t k = 0; k < nd->n_inputs; k++)
            live[nd->inputs[k].value] = true; /* < i: the builder checked */
    }
    if (kept < n) {
        int32_t j = 0;
        for (int32_t i = 0; i < n; i++) {
            renum[i] = -1;
            if (!live[i])
                continue;
            mica_node_t *nd = g->nodes[i];
            for (int32_t k = 0; k < nd->n_inputs; k++)
                nd->inputs[k].value = renum[nd->inputs[k].value];
            nd->id = j;
            renum[i] = j;
            g->nodes[j++] = nd;
        }
        g->n_nodes = j;
    }
    free(live);
    free(renum);
    return MICA_OK;
}

mica_status_t mica_rewrite_build(const mica_graph_t *old, const mica_rewrite_spec_t *spec,
                                 mica_graph_t **out_graph, mica_diag_t *d)
{
    *out_graph = NULL;
    mica_rewriter_t rw;
    memset(&rw, 0, sizeof rw);
    rw.old = old;
    rw.d = d;
    int32_t n = rw.old->n_nodes;
    rw.map = malloc((size_t)(n ? n : 1) * sizeof *rw.map);
    if (!rw.map || mica_graph_create(&rw.ng) != MICA_OK) {
        free(rw.map);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory rewriting the graph");
    }
    for (int32_t i = 0; i < n; i++) {
        memset(&rw.map[i], 0, sizeof rw.map[i]);
        rw.map[i].value = -1;
    }
    mica_status_t s = MICA_OK;
    for (int32_t i = 0; i < n && s == MICA_OK; i++) {
        const mica_node_t *nd = rw.old->nodes[i];
        rw.cur = i;
        rw.last = -1;
        rw.replaced = false;
        if (!nd) {
            rw.cur = 0;
            s = mica_diag_set(d, MICA_ERR_INVALID, "%%%d: node is missing", i);
            break;
        }
        if (spec->visit) {
            s = spec->visit(&rw, nd, spec->user, d);
            if (rw.status != MICA_OK)
                s = rw.status; /* a failed call said why */
        } else if (mica_rewrite_copy(&rw, nd) < 0) {
            s = rw.status;
        }
        if (s == MICA_OK && !rw.replaced && rw.last >= 0)
            rw.map[i].value = rw.last;
    }
    if (s == MICA_OK && spec->removable)
        s = remove_dead(rw.ng, spec, d);
    free(rw.map);
    free(rw.ops);
    if (s != MICA_OK) {
        mica_graph_release(rw.ng);
        return s;
    }
    *out_graph = rw.ng;
    return MICA_OK;
}

mica_status_t mica_rewrite_run(mica_graph_t **g, const mica_rewrite_spec_t *spec,
                               mica_diag_t *d)
{
    mica_graph_t *ng = NULL;
    MICA_TRY(mica_rewrite_build(*g, spec, &ng, d));
    mica_graph_release(*g);
    *g = ng;
    return MICA_OK;
}
