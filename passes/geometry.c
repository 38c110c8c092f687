/* Pass "geometry": every data-movement op becomes a raster op whose regions
 * read the op's operands (region-based geometric computation).
 *
 *   reshape    one region, the flat copy
 *   transpose  one region over the output, source strides permuted
 *   slice      one region, source offset at the starts, strides * steps
 *   concat     one region per operand, destination offset along the axis
 *   broadcast  one region, source stride 0 on the expanded dims
 *   gather     one gather region reading dim `axis` through the ids operand
 *
 * The graph is rebuilt with mica_rewrite_run: other ops are copied with
 * their operand ids remapped (views kept); ids, origins and annotations do
 * not change. Regions are canonical (mica_region_canonicalize).
 */
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "region.h"
#include "rewrite.h"

/* Room for the regions of one node (one per operand), reused. */
typedef struct geometry_scratch {
    mica_region_t *regions;
    int32_t cap;
} geometry_scratch_t;

static mica_region_t region_init(int32_t input, int32_t rank, const int64_t *size)
{
    mica_region_t r;
    memset(&r, 0, sizeof r);
    r.input = input;
    r.index_input = -1;
    r.rank = rank > 0 ? rank : 1;
    for (int32_t d = 0; d < MICA_MAX_RANK; d++)
        r.size[d] = d < rank ? size[d] : 1;
    return r;
}

/* Writes the regions of data-movement node n (of graph g) to `regions`,
 * which has room for one per operand, and their count to *out_n. */
static mica_status_t lower(const mica_graph_t *g, const mica_node_t *n, mica_region_t *regions,
                           int32_t *out_n, mica_diag_t *d)
{
    const mica_type_t *y = &n->type;
    mica_type_t x = mica_operand_type(g, &n->inputs[0]);
    int64_t ys[MICA_MAX_RANK], xs[MICA_MAX_RANK];
    mica_type_strides(y, ys);
    mica_type_strides(&x, xs);
    mica_region_t r = region_init(0, y->rank, y->shape);
    for (int32_t k = 0; k < y->rank; k++)
        r.dst.stride[k] = ys[k];
    *out_n = 1;
    switch (n->op) {
    case MICA_OP_RESHAPE: {
        int64_t numel = mica_type_numel(y);
        r = region_init(0, 1, &numel);
        r.src.stride[0] = 1;
        r.dst.stride[0] = 1;
        break;
    }
    case MICA_OP_TRANSPOSE: {
        const int64_t *perm = mica_attr_transpose_perm(n)->v;
        for (int32_t k = 0; k < y->rank; k++)
            r.src.stride[k] = xs[perm[k]];
        break;
    }
    case MICA_OP_SLICE: {
        const int64_t *st = mica_attr_slice_starts(n)->v;
        const int64_t *sp = mica_attr_slice_steps(n)->v;
        for (int32_t k = 0; k < y->rank; k++) {
            r.src.offset += st[k] * xs[k];
            /* a dim of one element never moves by its stride, and a step
             * past the dim's end (allowed there) must not overflow it */
            r.src.stride[k] = y->shape[k] == 1 ? xs[k] : xs[k] * sp[k];
        }
        break;
    }
    case MICA_OP_BROADCAST: {
        int32_t lead = y->rank - x.rank;
        for (int32_t k = 0; k < y->rank; k++) {
            int32_t xk = k - lead;
            r.src.stride[k] = (xk >= 0 && x.shape[xk] == y->shape[k]) ? xs[xk] : 0;
        }
        break;
    }
    case MICA_OP_GATHER: {
        r.index_input = 1;
        r.index_dim = (int32_t)mica_attr_gather_axis(n);
        for (int32_t k = 0; k < y->rank; k++)
            r.src.stride[k] = xs[k];
        break;
    }
    case MICA_OP_CONCAT: {
        int32_t axis = (int32_t)mica_attr_concat_axis(n);
        int64_t at = 0;
        for (int32_t i = 0; i < n->n_inputs; i++) {
            mica_type_t u = mica_operand_type(g, &n->inputs[i]);
            int64_t us[MICA_MAX_RANK];
            mica_type_strides(&u, us);
            mica_region_t c = region_init(i, u.rank, u.shape);
            c.dst.offset = at * ys[axis];
            for (int32_t k = 0; k < u.rank; k++) {
                c.src.stride[k] = us[k];
                c.dst.stride[k] = ys[k];
            }
            at += u.shape[axis];
            mica_region_canonicalize(&c);
            regions[i] = c;
        }
        *out_n = n->n_inputs;
        return MICA_OK;
    }
    default:
        return mica_diag_set(d, MICA_ERR_INVALID, "%%%d: %s is not data movement", n->id,
                             mica_op_info(n->op)->name);
    }
    mica_region_canonicalize(&r);
    regions[0] = r;
    return MICA_OK;
}

/* Rejects what a raster cannot copy: block-quantized or packed data. */
static mica_status_t check_movable(const mica_graph_t *g, const mica_node_t *n, mica_diag_t *d)
{
    int32_t n_data = n->op == MICA_OP_GATHER ? 1 : n->n_inputs;
    for (int32_t i = 0; i < n_data; i++) {
        const mica_node_t *src = mica_graph_node(g, n->inputs[i].value);
        if (!src)
            return mica_diag_set(d, MICA_ERR_INVALID, "%%%d: operand %d is undefined", n->id, i);
        if (n->inputs[i].has_view)
            return mica_diag_set(d, MICA_ERR_INVALID, "%%%d: %s reads operand %d through a view",
                                 n->id, mica_op_info(n->op)->name, i);
        if (mica_dtype_block_elems(src->type.dtype) != 1)
            return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                                 "%%%d: %s of %s data cannot be lowered to regions", n->id,
                                 mica_op_info(n->op)->name, mica_dtype_name(src->type.dtype));
        if (src->type.layout.kind != MICA_LAYOUT_ROW_MAJOR)
            return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                                 "%%%d: %s of packed data cannot be lowered to regions", n->id,
                                 mica_op_info(n->op)->name);
    }
    return MICA_OK;
}

/* The rewrite's visit: a data-movement node becomes a raster over the same
 * operands (and keeps the node's flags and note); anything else is copied. */
static mica_status_t visit(mica_rewriter_t *rw, const mica_node_t *n, void *user, mica_diag_t *d)
{
    geometry_scratch_t *sc = user;
    if (!mica_op_is_data_movement(n->op))
        return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
    const mica_graph_t *old = mica_rewrite_old(rw);
    if (n->n_inputs > sc->cap) {
        mica_region_t *r = realloc(sc->regions, (size_t)n->n_inputs * sizeof *r);
        if (!r)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        sc->regions = r;
        sc->cap = n->n_inputs;
    }
    int32_t nr = 0;
    MICA_TRY(check_movable(old, n, d));
    MICA_TRY(lower(old, n, sc->regions, &nr, d));
    mica_node_t c;
    memset(&c, 0, sizeof c);
    c.op = MICA_OP_RASTER;
    c.type = n->type;
    c.n_inputs = n->n_inputs;
    c.inputs = n->inputs; /* old ids: mica_rewrite_copy maps them */
    c.n_regions = nr;
    c.regions = sc->regions;
    c.flags = n->flags;
    c.note = n->note;
    return mica_rewrite_copy(rw, &c) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

mica_status_t mica_pass_geometry_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    geometry_scratch_t sc = {NULL, 0};
    const mica_rewrite_spec_t spec = {visit, NULL, &sc};
    mica_status_t s = mica_rewrite_run(g, &spec, ctx->diag);
    free(sc.regions);
    return s;
}
