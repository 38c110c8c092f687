/* Data movement of the reference backend, executed directly on the
 * unoptimised IR (reshape, transpose, slice, concat, broadcast, gather),
 * the raster op that the geometry pass lowers them to, and operand views.
 *
 * Every value is 4-byte elements (float32 or int32), so one element copy
 * serves both; it goes through memcpy to stay clear of type punning. Each
 * op walks its output (or region) index by index and computes the source
 * address from the definition, nothing cleverer; transpose, slice and
 * broadcast state theirs as a strided view of the input. */
#include <stdint.h>
#include <string.h>

#include "ref_internal.h"

_Static_assert(sizeof(float) == 4 && sizeof(int32_t) == 4, "values are 4-byte elements");

#define ELEM 4 /* bytes per value element */

static void copy_elem(void *y, int64_t yi, const void *x, int64_t xi)
{
    memcpy((unsigned char *)y + yi * ELEM, (const unsigned char *)x + xi * ELEM, ELEM);
}

bool mica_ref_index_next(int64_t *idx, const int64_t *shape, int32_t rank)
{
    for (int32_t d = rank - 1; d >= 0; d--) {
        if (++idx[d] < shape[d])
            return true;
        idx[d] = 0;
    }
    return false;
}

const void *mica_ref_arg_data(const mica_ref_arg_t *a)
{
    return a->i ? (const void *)a->i : (const void *)a->f;
}

void mica_ref_view_copy(const void *src, int32_t rank, const int64_t *shape,
                        const mica_view_t *view, void *dst)
{
    int64_t idx[MICA_MAX_RANK] = {0};
    int64_t i = 0;
    do {
        int64_t at = view->offset;
        for (int32_t d = 0; d < rank; d++)
            at += idx[d] * view->stride[d];
        copy_elem(dst, i++, src, at);
    } while (mica_ref_index_next(idx, shape, rank));
}

mica_status_t mica_ref_reshape(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d)
{
    memcpy(y, mica_ref_arg_data(&args[0]), (size_t)mica_type_numel(&n->type) * ELEM);
    return MICA_OK;
}

mica_status_t mica_ref_transpose(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d)
{
    const mica_type_t *tx = &args[0].type;
    const int64_t *perm = mica_attr_transpose_perm(n)->v; /* y dim k is x dim perm[k] */
    int64_t xs[MICA_MAX_RANK];
    mica_type_strides(tx, xs);
    mica_view_t v = {0};
    for (int32_t k = 0; k < n->type.rank; k++)
        v.stride[k] = xs[perm[k]];
    mica_ref_view_copy(mica_ref_arg_data(&args[0]), n->type.rank, n->type.shape, &v, y);
    return MICA_OK;
}

mica_status_t mica_ref_slice(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                             mica_diag_t *d)
{
    const int64_t *starts = mica_attr_slice_starts(n)->v;
    const int64_t *steps = mica_attr_slice_steps(n)->v;
    int64_t xs[MICA_MAX_RANK];
    mica_type_strides(&args[0].type, xs);
    mica_view_t v = {0};
    for (int32_t k = 0; k < n->type.rank; k++) {
        v.offset += starts[k] * xs[k];
        v.stride[k] = steps[k] * xs[k];
    }
    mica_ref_view_copy(mica_ref_arg_data(&args[0]), n->type.rank, n->type.shape, &v, y);
    return MICA_OK;
}

mica_status_t mica_ref_concat(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d)
{
    int64_t axis = mica_attr_concat_axis(n);
    int64_t ys[MICA_MAX_RANK];
    mica_type_strides(&n->type, ys);
    int64_t base = 0; /* where operand k starts along axis */
    for (int32_t k = 0; k < n->n_inputs; k++) {
        const mica_type_t *t = &args[k].type;
        const void *x = mica_ref_arg_data(&args[k]);
        int64_t idx[MICA_MAX_RANK] = {0};
        int64_t i = 0;
        do {
            int64_t at = base * ys[axis];
            for (int32_t dd = 0; dd < t->rank; dd++)
                at += idx[dd] * ys[dd];
            copy_elem(y, at, x, i++);
        } while (mica_ref_index_next(idx, t->shape, t->rank));
        base += t->shape[axis];
    }
    return MICA_OK;
}

mica_status_t mica_ref_broadcast(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d)
{
    const mica_type_t *tx = &args[0].type;
    int32_t lead = n->type.rank - tx->rank; /* output dims x lacks, in front */
    int64_t xs[MICA_MAX_RANK];
    mica_type_strides(tx, xs);
    mica_view_t v = {0}; /* stride 0 along the dims x lacks or has as 1 */
    for (int32_t k = 0; k < tx->rank; k++)
        if (tx->shape[k] != 1)
            v.stride[k + lead] = xs[k];
    mica_ref_view_copy(mica_ref_arg_data(&args[0]), n->type.rank, n->type.shape, &v, y);
    return MICA_OK;
}

mica_status_t mica_ref_gather(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d)
{
    int64_t axis = mica_attr_gather_axis(n);
    const mica_type_t *tx = &args[0].type;
    const int32_t *ids = args[1].i; /* flat */
    int64_t n_ids = mica_type_numel(&args[1].type);
    for (int64_t j = 0; j < n_ids; j++)
        if (ids[j] < 0 || ids[j] >= tx->shape[axis])
            return mica_diag_set(d, MICA_ERR_RANGE, "id %d out of range [0, %lld)", (int)ids[j],
                                 (long long)tx->shape[axis]);
    int64_t xs[MICA_MAX_RANK];
    mica_type_strides(tx, xs);
    const void *x = mica_ref_arg_data(&args[0]);
    int64_t idx[MICA_MAX_RANK] = {0};
    int64_t i = 0;
    do {
        int64_t at = 0;
        for (int32_t k = 0; k < tx->rank; k++)
            at += (k == axis ? ids[idx[k]] : idx[k]) * xs[k];
        copy_elem(y, i++, x, at);
    } while (mica_ref_index_next(idx, n->type.shape, n->type.rank));
    return MICA_OK;
}

/* Checks the ids of gather region r (number ri) against its source of
 * src_numel elements: an id is valid when every address it selects is. */
static mica_status_t check_region_ids(const mica_region_t *r, int32_t ri, const int32_t *ids,
                                      int64_t src_numel, mica_diag_t *d)
{
    int64_t top = r->src.offset; /* highest address with the index dim at 0 */
    for (int32_t k = 0; k < r->rank; k++)
        if (k != r->index_dim)
            top += (r->size[k] - 1) * r->src.stride[k];
    int64_t stride = r->src.stride[r->index_dim];
    /* ids in [0, limit) keep every address below src_numel; with stride 0
     * the id does not move the address and any id >= 0 will do */
    int64_t limit = stride == 0 ? (int64_t)INT32_MAX + 1
                    : top < src_numel ? (src_numel - 1 - top) / stride + 1 : 0;
    for (int64_t j = 0; j < r->size[r->index_dim]; j++)
        if (ids[j] < 0 || ids[j] >= limit)
            return mica_diag_set(d, MICA_ERR_RANGE, "region %d: id %d out of range [0, %lld)", ri,
                                 (int)ids[j], (long long)limit);
    return MICA_OK;
}

mica_status_t mica_ref_raster(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d)
{
    memset(y, 0, (size_t)mica_type_numel(&n->type) * ELEM);
    for (int32_t ri = 0; ri < n->n_regions; ri++) {
        const mica_region_t *r = &n->regions[ri];
        const void *x = mica_ref_arg_data(&args[r->input]);
        const int32_t *ids = r->index_input >= 0 ? args[r->index_input].i : NULL;
        if (ids)
            MICA_TRY(check_region_ids(r, ri, ids, mica_type_numel(&args[r->input].type), d));
        int64_t idx[MICA_MAX_RANK] = {0};
        do {
            int64_t src = r->src.offset, dst = r->dst.offset;
            for (int32_t k = 0; k < r->rank; k++) {
                int64_t at = (ids && k == r->index_dim) ? ids[idx[k]] : idx[k];
                src += at * r->src.stride[k];
                dst += idx[k] * r->dst.stride[k];
            }
            copy_elem(y, dst, x, src);
        } while (mica_ref_index_next(idx, r->size, r->rank));
    }
    return MICA_OK;
}
