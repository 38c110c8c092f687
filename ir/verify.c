/* The graph verifier: the guard that runs after every pass, so it must
 * survive any malformed graph (NULL arrays, negative counts, operand ids
 * out of range) and say which node is wrong. Every message starts with
 * "%N (op): " or "%N: ", which the parser maps back to a line.
 *
 * Per node: id == index, known op, arity, operands defined earlier, sane
 * view ranks, attributes present, regions only on rasters, a well-formed
 * layout, the stored type equal to mica_node_infer_type's (which also
 * checks views and regions against their tensors), and for rasters of at
 * most VERIFY_BITMAP_MAX output elements, that no element is written
 * twice; the origin annotation is not negative. Then for the graph: input
 * names are distinct, and so are output names.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "layout_index.h"
#include "text_internal.h"

/* Largest raster output (elements) whose regions are checked for overlap. */
#define VERIFY_BITMAP_MAX ((int64_t)1 << 24)

#define BAD(...) mica_diag_set(d, MICA_ERR_INVALID, __VA_ARGS__)

/* Writes s quoted, with non-printables escaped and cut to fit buf. */
static void format_name(const char *s, char *buf, size_t size)
{
    size_t w = 0;
    buf[w++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c && w + 8 < size; c++)
        w += mica_text_escape_byte(*c, buf + w);
    buf[w++] = '"';
    buf[w] = 0;
}

/* Checks the type fields mica_node_infer_type cannot see on computed ops. */
static mica_status_t check_stored_type(int32_t id, const char *op, const mica_type_t *t,
                                       mica_diag_t *d)
{
    if (t->rank < 0 || t->rank > MICA_MAX_RANK)
        return BAD("%%%d (%s): type has rank %d", id, op, t->rank);
    if (t->layout.kind != MICA_LAYOUT_ROW_MAJOR && t->layout.kind != MICA_LAYOUT_PACKED)
        return MICA_OK; /* mica_node_infer_type names an unknown kind */
    mica_diag_t why = {0};
    mica_status_t s = mica_layout_check(t, &why);
    if (s != MICA_OK)
        return mica_diag_set(d, s, "%%%d (%s): %s", id, op, why.msg);
    return MICA_OK;
}

/* Walk over the destination addresses of one region, last dim fastest. */
typedef struct dst_walk {
    const mica_region_t *r;
    int64_t idx[MICA_MAX_RANK];
    int64_t addr; /* current destination element */
    bool done;
} dst_walk_t;

static void walk_start(dst_walk_t *w, const mica_region_t *r)
{
    memset(w, 0, sizeof *w);
    w->r = r;
    w->addr = r->dst.offset;
}

static void walk_next(dst_walk_t *w)
{
    const mica_region_t *r = w->r;
    int32_t k = r->rank - 1;
    while (k >= 0 && w->idx[k] + 1 >= r->size[k]) {
        w->addr -= w->idx[k] * r->dst.stride[k];
        w->idx[k] = 0;
        k--;
    }
    if (k < 0) {
        w->done = true;
        return;
    }
    w->idx[k]++;
    w->addr += r->dst.stride[k];
}

/* Checks that the regions of raster n (already checked to lie inside the
 * output) write every element at most once. A bitmap of the output marks
 * what is written; the walk stops at the first element written twice, so
 * it takes at most numel + 1 steps. *bits / *cap is a reusable buffer. */
static mica_status_t check_disjoint(int32_t id, const mica_node_t *n, uint8_t **bits, size_t *cap,
                                    mica_diag_t *d)
{
    int64_t numel = mica_type_numel(&n->type);
    if (numel > VERIFY_BITMAP_MAX || n->n_regions == 0)
        return MICA_OK;
    size_t nbytes = (size_t)(numel + 7) / 8;
    if (*cap < nbytes) {
        uint8_t *b = realloc(*bits, nbytes);
        if (!b)
            return mica_diag_set(d, MICA_ERR_NOMEM, "%%%d (raster): out of memory", id);
        *bits = b;
        *cap = nbytes;
    }
    memset(*bits, 0, nbytes);
    uint8_t *bm = *bits;
    for (int32_t r = 0; r < n->n_regions; r++) {
        dst_walk_t w;
        for (walk_start(&w, &n->regions[r]); !w.done; walk_next(&w)) {
            uint8_t mask = (uint8_t)(1u << (w.addr & 7));
            if (!(bm[w.addr >> 3] & mask)) {
                bm[w.addr >> 3] |= mask;
                continue;
            }
            /* Earlier regions are disjoint and repeat-free, so together
             * they have at most numel elements: scanning them is cheap. */
            for (int32_t q = 0; q < r; q++) {
                dst_walk_t v;
                for (walk_start(&v, &n->regions[q]); !v.done; walk_next(&v))
                    if (v.addr == w.addr)
                        return BAD("%%%d (raster): regions %d and %d both write element %lld",
                                   id, q, r, (long long)w.addr);
            }
            return BAD("%%%d (raster): region %d writes element %lld twice", id, r,
                       (long long)w.addr);
        }
    }
    return MICA_OK;
}

static mica_status_t verify_node(const mica_graph_t *g, int32_t i, uint8_t **bits, size_t *cap,
                                 mica_diag_t *d)
{
    const mica_node_t *n = g->nodes[i];
    if (!n)
        return BAD("%%%d: node is missing", i);
    if (n->id != i)
        return BAD("%%%d: node has id %d", i, n->id);
    const mica_op_info_t *info = mica_op_info(n->op);
    if (!info)
        return BAD("%%%d: unknown op %d", i, (int)n->op);
    const char *op = info->name;
    if (n->n_inputs < 0)
        return BAD("%%%d (%s): negative operand count %d", i, op, n->n_inputs);
    if (info->n_inputs >= 0 && n->n_inputs != info->n_inputs)
        return BAD("%%%d (%s): takes %d operands, has %d", i, op, info->n_inputs, n->n_inputs);
    if (info->n_inputs < 0 && n->n_inputs < 1)
        return BAD("%%%d (%s): takes at least one operand", i, op);
    if (n->n_inputs > 0 && !n->inputs)
        return BAD("%%%d (%s): operand array is missing", i, op);
    for (int32_t k = 0; k < n->n_inputs; k++) {
        const mica_operand_t *o = &n->inputs[k];
        if (o->value < 0 || o->value >= i)
            return BAD("%%%d (%s): operand %d (%%%d) is not defined before it", i, op, k,
                       o->value);
        if (o->has_view && (o->view_rank < 0 || o->view_rank > MICA_MAX_RANK))
            return BAD("%%%d (%s): operand %d has a view of rank %d", i, op, k, o->view_rank);
    }
    for (int32_t k = 0; k < info->n_attrs; k++) {
        const mica_attr_t *a = &n->attrs[k];
        const char *name = info->attr_names[k];
        switch (info->attr_kinds[k]) {
        case MICA_ATTR_STRING:
            if (!a->s)
                return BAD("%%%d (%s): attribute %s is missing", i, op, name);
            break;
        case MICA_ATTR_INTS:
            if (a->n < 0)
                return BAD("%%%d (%s): attribute %s has %d entries", i, op, name, a->n);
            if (a->n > 0 && !a->v)
                return BAD("%%%d (%s): attribute %s has %d entries and no values", i, op, name,
                           a->n);
            break;
        case MICA_ATTR_REGIONS:
            if (n->n_regions < 0)
                return BAD("%%%d (%s): negative region count %d", i, op, n->n_regions);
            if (n->n_regions > 0 && !n->regions)
                return BAD("%%%d (%s): %d regions and no region list", i, op, n->n_regions);
            break;
        default:
            break;
        }
    }
    if (n->origin < 0)
        return BAD("%%%d (%s): origin %d is negative", i, op, n->origin);
    const mica_node_sched_t *sc = &n->sched;
    if (sc->has_mem && (sc->mem_offset < 0 || sc->mem_offset % 64 != 0))
        return BAD("%%%d (%s): arena offset %lld is not 64-byte aligned", i, op,
                   (long long)sc->mem_offset);
    if (sc->n_parts < 0 || sc->n_parts > MICA_MAX_PARTS ||
        (unsigned)sc->split_axis > MICA_SPLIT_COLS)
        return BAD("%%%d (%s): bad split (%d parts)", i, op, sc->n_parts);
    if (sc->n_parts > 0) {
        const mica_type_t *t = &n->type;
        int64_t last = t->rank ? t->shape[t->rank - 1] : 1, want = 1;
        if (sc->split_axis == MICA_SPLIT_COLS)
            want = last;
        else if (sc->split_axis == MICA_SPLIT_ROWS)
            want = mica_type_numel(t) / last;
        int64_t sum = 0;
        for (int32_t k = 0; k < sc->n_parts; k++) {
            if (sc->parts[k] < 0 || sc->parts[k] > INT64_MAX / 2 - sum)
                return BAD("%%%d (%s): split part %d is %lld", i, op, k, (long long)sc->parts[k]);
            sum += sc->parts[k];
        }
        static const char *const axes[3] = {"none", "rows", "cols"};
        if (sum != want)
            return BAD("%%%d (%s): split parts sum to %lld, the %s axis has %lld", i, op,
                       (long long)sum, axes[sc->split_axis], (long long)want);
    }
    if (n->op != MICA_OP_RASTER && n->n_regions != 0)
        return BAD("%%%d (%s): carries regions but is not a raster", i, op);
    MICA_TRY(check_stored_type(i, op, &n->type, d));

    mica_diag_t why = {0};
    mica_type_t t;
    mica_status_t s = mica_node_infer_type(g, n, &t, &why);
    if (s != MICA_OK)
        return mica_diag_set(d, s, "%%%d (%s): %s", i, op, mica_text_strip_op(why.msg, op));
    if (!mica_type_equal(&t, &n->type)) {
        char have[96], want[96];
        mica_text_format_type(&n->type, have, sizeof have);
        mica_text_format_type(&t, want, sizeof want);
        return BAD("%%%d (%s): type is %s, but the operands give %s", i, op, have, want);
    }
    if (n->op == MICA_OP_RASTER)
        MICA_TRY(check_disjoint(i, n, bits, cap, d));
    return MICA_OK;
}

typedef struct named {
    const char *name;
    int32_t id;
} named_t;

static int named_cmp(const void *a, const void *b)
{
    const named_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* Checks that the nodes of op `op` have distinct names; on a clash names
 * the latest-defined node of the earliest clash (in id order). */
static mica_status_t check_names(const mica_graph_t *g, mica_op_t op, mica_diag_t *d)
{
    named_t *v = malloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *v);
    if (!v)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory verifying names");
    size_t n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == op)
            v[n++] = (named_t){g->nodes[i]->attrs[0].s, i};
    qsort(v, n, sizeof *v, named_cmp);
    int32_t bad = -1, first = -1;
    for (size_t k = 1; k < n; k++)
        if (strcmp(v[k - 1].name, v[k].name) == 0 && (bad < 0 || v[k].id < bad)) {
            bad = v[k].id;
            first = v[k - 1].id;
        }
    free(v);
    if (bad < 0)
        return MICA_OK;
    char name[80];
    format_name(g->nodes[bad]->attrs[0].s, name, sizeof name);
    return BAD("%%%d (%s): name %s is already used by %%%d", bad, mica_op_info(op)->name, name,
               first);
}

mica_status_t mica_graph_verify(const mica_graph_t *g, mica_diag_t *d)
{
    if (!g)
        return BAD("no graph");
    if (g->n_nodes < 0)
        return BAD("graph has %d nodes", g->n_nodes);
    if (g->n_nodes > 0 && !g->nodes)
        return BAD("graph has %d nodes and no node array", g->n_nodes);
    uint8_t *bits = NULL;
    size_t cap = 0;
    mica_status_t s = MICA_OK;
    for (int32_t i = 0; i < g->n_nodes && s == MICA_OK; i++)
        s = verify_node(g, i, &bits, &cap, d);
    free(bits);
    if (s == MICA_OK)
        s = check_names(g, MICA_OP_INPUT, d);
    if (s == MICA_OK)
        s = check_names(g, MICA_OP_OUTPUT, d);
    if (s == MICA_OK)
        s = check_names(g, MICA_OP_STATE, d);
    return s;
}
