/* Per-op shape rules: the type each node must have, from its operands and
 * attributes. Used by the builder (to fill the type) and by the verifier
 * (to check it). Every rule rejects bad input with a message. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ir.h"
#include "layout_index.h"

#define BAD(...) mica_diag_set(d, MICA_ERR_INVALID, __VA_ARGS__)

static mica_status_t check_type(const mica_type_t *t, const char *what, mica_diag_t *d)
{
    if ((unsigned)t->dtype >= MICA_DTYPE_COUNT)
        return BAD("%s has an invalid dtype", what);
    if (t->rank < 0 || t->rank > MICA_MAX_RANK)
        return BAD("%s has rank %d (at most %d)", what, t->rank, MICA_MAX_RANK);
    int64_t numel = 1;
    for (int32_t i = 0; i < t->rank; i++) {
        if (t->shape[i] < 1)
            return BAD("%s has dim %d of size %lld (sizes must be >= 1)", what, i,
                       (long long)t->shape[i]);
        if (t->shape[i] > INT64_MAX / 16 / numel)
            return BAD("%s has more elements than fit in 64 bits", what);
        numel *= t->shape[i];
    }
    if (mica_dtype_block_elems(t->dtype) > 1) {
        if (t->rank < 1 || t->shape[t->rank - 1] % mica_dtype_block_elems(t->dtype) != 0)
            return BAD("%s: last dim is not a multiple of the %s block (%lld)", what,
                       mica_dtype_name(t->dtype), (long long)mica_dtype_block_elems(t->dtype));
    }
    if (t->layout.kind != MICA_LAYOUT_ROW_MAJOR && t->layout.kind != MICA_LAYOUT_PACKED)
        return BAD("%s has an invalid layout", what);
    return MICA_OK;
}

static mica_status_t check_view(int32_t rank, const int64_t *shape, const mica_view_t *v,
                                int64_t limit, const char *what, mica_diag_t *d)
{
    if (v->offset < 0)
        return BAD("%s has a negative offset", what);
    int64_t hi = v->offset;
    for (int32_t i = 0; i < rank; i++) {
        if (v->stride[i] < 0)
            return BAD("%s has a negative stride", what);
        if (v->stride[i] > 0 && shape[i] - 1 > (INT64_MAX - hi) / v->stride[i])
            return BAD("%s overflows", what);
        hi += (shape[i] - 1) * v->stride[i];
    }
    if (hi >= limit)
        return BAD("%s reaches element %lld of a tensor of %lld", what, (long long)hi,
                   (long long)limit);
    return MICA_OK;
}

static bool is_float(const mica_type_t *t)
{
    return mica_dtype_is_float(t->dtype);
}

/* numpy broadcasting of a and b into out. */
static mica_status_t broadcast_shapes(const mica_type_t *a, const mica_type_t *b,
                                      mica_type_t *out, mica_diag_t *d)
{
    int32_t r = a->rank > b->rank ? a->rank : b->rank;
    *out = *a;
    out->rank = r;
    for (int32_t i = 0; i < r; i++) {
        int32_t ia = i - (r - a->rank), ib = i - (r - b->rank);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return BAD("shapes do not broadcast: dim %d is %lld and %lld", i, (long long)sa,
                       (long long)sb);
        out->shape[i] = sa > sb ? sa : sb;
    }
    return MICA_OK;
}

/* A group size that splits rows of k elements into whole groups (at most
 * 65536, so a group's integer dot product fits in 32 bits). */
static mica_status_t check_group(int64_t k, int64_t group, const char *what, mica_diag_t *d)
{
    if (group < 1 || group > 65536 || k % group != 0)
        return BAD("%s: group %lld does not divide the row of %lld", what, (long long)group,
                   (long long)k);
    return MICA_OK;
}

/* s must be f32 [.., K/group] beside x [.., K]. */
static mica_status_t check_scales(const mica_type_t *x, const mica_type_t *s, int64_t group,
                                  const char *what, mica_diag_t *d)
{
    bool ok = s->dtype == MICA_DTYPE_F32 && s->rank == x->rank;
    for (int32_t i = 0; ok && i < x->rank; i++)
        ok = s->shape[i] == (i == x->rank - 1 ? x->shape[i] / group : x->shape[i]);
    if (!ok)
        return BAD("%s must be f32 of the input's shape with the last dim %lld / %lld", what,
                   (long long)x->shape[x->rank - 1], (long long)group);
    return MICA_OK;
}

/* A quantized weight: q u4|i8 [N, K] and f16 scales and mins [N, K/group]. */
static mica_status_t check_qweight(const mica_type_t *q, const mica_type_t *s,
                                   const mica_type_t *m, int64_t k, int64_t group,
                                   const char *what, mica_diag_t *d)
{
    if ((q->dtype != MICA_DTYPE_U4 && q->dtype != MICA_DTYPE_I8) || q->rank != 2)
        return BAD("%s weight must be u4 or i8 [N, K]", what);
    if (q->shape[1] != k)
        return BAD("%s: input has K=%lld, weight has K=%lld", what, (long long)k,
                   (long long)q->shape[1]);
    MICA_TRY(check_group(k, group, what, d));
    const mica_type_t *sm[2] = {s, m};
    for (int i = 0; i < 2; i++)
        if (sm[i]->dtype != MICA_DTYPE_F16 || sm[i]->rank != 2 || sm[i]->shape[0] != q->shape[0] ||
            sm[i]->shape[1] != k / group)
            return BAD("%s weight %s must be f16 [%lld, %lld]", what, i ? "mins" : "scales",
                       (long long)q->shape[0], (long long)(k / group));
    /* all three row-major, or all tiled (ir/layout_index.h) for one tile: the
     * weight by (ep, hp, lp), its scales and mins by (ep, hp, 1) */
    if (q->layout.kind == MICA_LAYOUT_ROW_MAJOR && s->layout.kind == MICA_LAYOUT_ROW_MAJOR &&
        m->layout.kind == MICA_LAYOUT_ROW_MAJOR)
        return MICA_OK;
    if (!mica_layout_is_tiled(q))
        return BAD("%s: a packed weight must be tiled (packed(..) tiles[..])", what);
    for (int i = 0; i < 2; i++)
        if (!mica_layout_is_tiled(sm[i]) || sm[i]->layout.ep != q->layout.ep ||
            sm[i]->layout.hp != q->layout.hp || sm[i]->layout.lp != 1)
            return BAD("%s: weight packed(%d,%d,%d) needs its %s tiled as packed(%d,%d,1)", what,
                       q->layout.ep, q->layout.hp, q->layout.lp, i ? "mins" : "scales",
                       q->layout.ep, q->layout.hp);
    return MICA_OK;
}

mica_status_t mica_node_infer_type(const mica_graph_t *g, const mica_node_t *n,
                                   mica_type_t *out_type, mica_diag_t *d)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    if (!info)
        return BAD("unknown op %d", (int)n->op);
    if (info->n_inputs >= 0 && n->n_inputs != info->n_inputs)
        return BAD("%s takes %d operands, got %d", info->name, info->n_inputs, n->n_inputs);
    if (info->n_inputs < 0 && n->n_inputs < 1)
        return BAD("%s takes at least one operand", info->name);
    if (n->n_inputs > 0 && !n->inputs)
        return BAD("%s has no operand array", info->name);

    mica_type_t in[8];
    for (int32_t i = 0; i < n->n_inputs; i++) {
        const mica_operand_t *o = &n->inputs[i];
        if (o->value < 0 || o->value >= n->id || !mica_graph_node(g, o->value))
            return BAD("operand %d (%%%d) is not defined before this node", i, o->value);
        const mica_node_t *src = mica_graph_node(g, o->value);
        if (o->has_view) {
            if (!(info->strided_mask & (1u << i)))
                return BAD("%s cannot read operand %d through a view", info->name, i);
            if (src->type.layout.kind != MICA_LAYOUT_ROW_MAJOR)
                return BAD("operand %d: a view of a packed tensor", i);
            mica_type_t vt = mica_operand_type(g, o);
            MICA_TRY(check_type(&vt, "view", d));
            char what[48];
            snprintf(what, sizeof what, "view of operand %d", i);
            MICA_TRY(check_view(o->view_rank, o->view_shape, &o->view, mica_type_numel(&src->type),
                                what, d));
        }
        if (i < 8)
            in[i] = mica_operand_type(g, o);
    }
    for (int32_t i = 0; i < info->n_attrs; i++) {
        const mica_attr_t *a = &n->attrs[i];
        if (info->attr_kinds[i] == MICA_ATTR_STRING && !a->s)
            return BAD("%s: attribute %s is missing", info->name, info->attr_names[i]);
        if (info->attr_kinds[i] == MICA_ATTR_INTS && (a->n < 0 || (a->n > 0 && !a->v)))
            return BAD("%s: attribute %s is malformed", info->name, info->attr_names[i]);
    }

    mica_type_t t = n->type; /* declared ops keep it */
    switch (n->op) {
    case MICA_OP_INPUT:
    case MICA_OP_WEIGHT:
    case MICA_OP_STATE:
        MICA_TRY(check_type(&t, info->name, d));
        if (n->op == MICA_OP_WEIGHT && n->data) {
            int64_t rows = t.rank ? mica_type_numel(&t) / t.shape[t.rank - 1] : 1;
            int64_t rb = mica_dtype_row_bytes(t.dtype, t.rank ? t.shape[t.rank - 1] : 1);
            if (t.layout.kind == MICA_LAYOUT_ROW_MAJOR && (rb == 0 || (uint64_t)(rb * rows) > n->nbytes))
                return BAD("weight data is %llu bytes, smaller than its type needs",
                           (unsigned long long)n->nbytes);
            if (mica_layout_is_tiled(&t) && n->nbytes != mica_layout_nbytes(&t))
                return BAD("weight data is %llu bytes, its tiles (padding included) are %llu",
                           (unsigned long long)n->nbytes,
                           (unsigned long long)mica_layout_nbytes(&t));
        }
        break;
    case MICA_OP_OUTPUT:
        t = in[0];
        break;
    case MICA_OP_EMBEDDING:
        if (in[0].rank != 2)
            return BAD("embedding table must be [V, D], got rank %d", in[0].rank);
        if (in[1].dtype != MICA_DTYPE_I32 || in[1].rank < 1 || in[1].rank >= MICA_MAX_RANK)
            return BAD("embedding ids must be i32 of rank 1..%d", MICA_MAX_RANK - 1);
        t = in[1];
        t.dtype = MICA_DTYPE_F32;
        t.shape[t.rank++] = in[0].shape[1];
        break;
    case MICA_OP_MATMUL:
        if (!is_float(&in[0]) || in[0].rank < 1)
            return BAD("matmul input must be float of rank >= 1");
        if (in[1].rank != 2)
            return BAD("matmul weight must be [N, K], got rank %d", in[1].rank);
        if (in[1].dtype == MICA_DTYPE_I32)
            return BAD("matmul weight cannot be i32");
        if (in[0].shape[in[0].rank - 1] != in[1].shape[1])
            return BAD("matmul: input has K=%lld, weight has K=%lld",
                       (long long)in[0].shape[in[0].rank - 1], (long long)in[1].shape[1]);
        t = in[0];
        t.dtype = MICA_DTYPE_F32;
        t.shape[t.rank - 1] = in[1].shape[0];
        break;
    case MICA_OP_ADD:
    case MICA_OP_MUL:
        if (!is_float(&in[0]) || in[0].dtype != in[1].dtype)
            return BAD("%s needs two float operands of one dtype", info->name);
        MICA_TRY(broadcast_shapes(&in[0], &in[1], &t, d));
        break;
    case MICA_OP_SCALE:
    case MICA_OP_SILU:
    case MICA_OP_GELU:
    case MICA_OP_SOFTMAX:
        if (!is_float(&in[0]))
            return BAD("%s needs a float operand", info->name);
        if (n->op == MICA_OP_SOFTMAX && in[0].rank < 1)
            return BAD("softmax needs rank >= 1");
        t = in[0];
        break;
    case MICA_OP_SWIGLU:
        if (!is_float(&in[0]) || in[0].rank < 1 || in[0].shape[in[0].rank - 1] % 2 != 0)
            return BAD("swiglu needs a float operand whose last dim is even");
        t = in[0];
        t.shape[t.rank - 1] /= 2;
        break;
    case MICA_OP_CONVERT:
        if (!is_float(&in[0]) || !mica_dtype_is_float(t.dtype))
            return BAD("convert is between float dtypes only");
        {
            mica_dtype_t to = t.dtype;
            t = in[0];
            t.dtype = to;
        }
        break;
    case MICA_OP_RMS_NORM:
        if (!is_float(&in[0]) || in[0].rank < 1)
            return BAD("rms_norm input must be float of rank >= 1");
        if (!is_float(&in[1]) || in[1].rank != 1 || in[1].shape[0] != in[0].shape[in[0].rank - 1])
            return BAD("rms_norm weight must be [%lld]", (long long)in[0].shape[in[0].rank - 1]);
        t = in[0];
        break;
    case MICA_OP_ROPE: {
        if (!is_float(&in[0]) || in[0].rank != 3)
            return BAD("rope input must be float [T, H, D]");
        if (in[1].dtype != MICA_DTYPE_I32 || in[1].rank != 1 || in[1].shape[0] != in[0].shape[0])
            return BAD("rope positions must be i32 [%lld]", (long long)in[0].shape[0]);
        int64_t mode = mica_attr_rope_mode(n), dims = mica_attr_rope_dims(n);
        if (mode != 0 && mode != 2)
            return BAD("rope mode must be 0 (pairs) or 2 (neox), got %lld", (long long)mode);
        if (dims < 2 || dims % 2 || dims > in[0].shape[2])
            return BAD("rope dims must be even and in [2, %lld], got %lld",
                       (long long)in[0].shape[2], (long long)dims);
        t = in[0];
        break;
    }
    case MICA_OP_ATTENTION:
        for (int i = 0; i < 3; i++)
            if (!is_float(&in[i]) || in[i].rank != 3)
                return BAD("attention operand %d must be float [T, H, D]", i);
        if (in[1].shape[0] != in[2].shape[0] || in[1].shape[1] != in[2].shape[1] ||
            in[1].shape[2] != in[2].shape[2])
            return BAD("attention: k and v shapes differ");
        if (in[0].shape[2] != in[1].shape[2])
            return BAD("attention: q head dim %lld != k head dim %lld", (long long)in[0].shape[2],
                       (long long)in[1].shape[2]);
        if (in[0].shape[1] % in[1].shape[1] != 0)
            return BAD("attention: %lld query heads are not a multiple of %lld kv heads",
                       (long long)in[0].shape[1], (long long)in[1].shape[1]);
        if (in[1].shape[0] < in[0].shape[0])
            return BAD("attention: %lld keys for %lld queries", (long long)in[1].shape[0],
                       (long long)in[0].shape[0]);
        t = in[0];
        break;
    case MICA_OP_ACT_SCALE: {
        int64_t gr = mica_attr_act_scale_group(n);
        if (!is_float(&in[0]) || in[0].rank < 1)
            return BAD("act_scale input must be float of rank >= 1");
        MICA_TRY(check_group(in[0].shape[in[0].rank - 1], gr, "act_scale", d));
        t = in[0];
        t.dtype = MICA_DTYPE_F32;
        t.shape[t.rank - 1] /= gr;
        break;
    }
    case MICA_OP_ACT_QUANT: {
        int64_t gr = mica_attr_act_quant_group(n);
        if (!is_float(&in[0]) || in[0].rank < 1)
            return BAD("act_quant input must be float of rank >= 1");
        MICA_TRY(check_group(in[0].shape[in[0].rank - 1], gr, "act_quant", d));
        MICA_TRY(check_scales(&in[0], &in[1], gr, "act_quant scales", d));
        t = in[0];
        t.dtype = MICA_DTYPE_I8;
        break;
    }
    case MICA_OP_QMATMUL: {
        int64_t ag = mica_attr_qmatmul_agroup(n), wg = mica_attr_qmatmul_wgroup(n);
        if (in[0].dtype != MICA_DTYPE_I8 || in[0].rank < 1)
            return BAD("qmatmul activations must be i8 of rank >= 1");
        int64_t k = in[0].shape[in[0].rank - 1];
        MICA_TRY(check_group(k, ag, "qmatmul activations", d));
        MICA_TRY(check_scales(&in[0], &in[1], ag, "qmatmul activation scales", d));
        MICA_TRY(check_qweight(&in[2], &in[3], &in[4], k, wg, "qmatmul", d));
        if (ag % wg != 0 && wg % ag != 0)
            return BAD("qmatmul: activation group %lld and weight group %lld do not divide one "
                       "another", (long long)ag, (long long)wg);
        t = in[0];
        t.dtype = MICA_DTYPE_F32;
        t.shape[t.rank - 1] = in[2].shape[0];
        break;
    }
    case MICA_OP_WMATMUL: {
        if (!is_float(&in[0]) || in[0].rank < 1)
            return BAD("wmatmul input must be float of rank >= 1");
        MICA_TRY(check_qweight(&in[1], &in[2], &in[3], in[0].shape[in[0].rank - 1],
                               mica_attr_wmatmul_group(n), "wmatmul", d));
        t = in[0];
        t.dtype = MICA_DTYPE_F32;
        t.shape[t.rank - 1] = in[1].shape[0];
        break;
    }
    case MICA_OP_KV_STORE: {
        const mica_node_t *cache = mica_graph_node(g, n->inputs[0].value);
        if (cache->op != MICA_OP_STATE || n->inputs[0].has_view)
            return BAD("kv_store writes into a state, and operand 0 is a %s",
                       mica_op_info(cache->op)->name);
        if (!is_float(&in[0]) || in[0].rank != 3 || !is_float(&in[1]) || in[1].rank != 3)
            return BAD("kv_store needs a float cache [Hkv, C, D] and float rows [T, Hkv, D]");
        if (in[1].shape[1] != in[0].shape[0] || in[1].shape[2] != in[0].shape[2])
            return BAD("kv_store: rows [%lld, %lld, %lld] do not fit a cache [%lld, %lld, %lld]",
                       (long long)in[1].shape[0], (long long)in[1].shape[1],
                       (long long)in[1].shape[2], (long long)in[0].shape[0],
                       (long long)in[0].shape[1], (long long)in[0].shape[2]);
        if (in[1].shape[0] > in[0].shape[1])
            return BAD("kv_store: %lld rows for a cache of %lld", (long long)in[1].shape[0],
                       (long long)in[0].shape[1]);
        for (int i = 2; i < 4; i++)
            if (in[i].dtype != MICA_DTYPE_I32 || in[i].rank != 0)
                return BAD("kv_store operand %d must be an i32 scalar", i);
        t = in[0];
        break;
    }
    case MICA_OP_ATTENTION_KV:
        for (int i = 1; i < 3; i++) {
            const mica_node_t *src = mica_graph_node(g, n->inputs[i].value);
            if (src->op != MICA_OP_KV_STORE || n->inputs[i].has_view)
                return BAD("attention_kv operand %d must be a kv_store result", i);
        }
        if (!is_float(&in[0]) || in[0].rank != 3)
            return BAD("attention_kv query must be float [T, Hq, D]");
        if (!is_float(&in[1]) || !is_float(&in[2]) || in[1].rank != 3 || in[2].rank != 3 ||
            memcmp(in[1].shape, in[2].shape, 3 * sizeof in[1].shape[0]) != 0)
            return BAD("attention_kv: k and v caches differ in shape");
        if (in[0].shape[2] != in[1].shape[2])
            return BAD("attention_kv: q head dim %lld != cache head dim %lld",
                       (long long)in[0].shape[2], (long long)in[1].shape[2]);
        if (in[0].shape[1] % in[1].shape[0] != 0)
            return BAD("attention_kv: %lld query heads are not a multiple of %lld kv heads",
                       (long long)in[0].shape[1], (long long)in[1].shape[0]);
        if (in[0].shape[0] > in[1].shape[1])
            return BAD("attention_kv: %lld queries for a cache of %lld", (long long)in[0].shape[0],
                       (long long)in[1].shape[1]);
        for (int i = 3; i < 5; i++)
            if (in[i].dtype != MICA_DTYPE_I32 || in[i].rank != 0)
                return BAD("attention_kv operand %d must be an i32 scalar", i);
        t = in[0];
        t.dtype = MICA_DTYPE_F32;
        break;
    case MICA_OP_RESHAPE:
        MICA_TRY(check_type(&t, "reshape result", d));
        if (t.dtype != in[0].dtype)
            return BAD("reshape changes the dtype");
        if (mica_type_numel(&t) != mica_type_numel(&in[0]))
            return BAD("reshape from %lld to %lld elements", (long long)mica_type_numel(&in[0]),
                       (long long)mica_type_numel(&t));
        break;
    case MICA_OP_TRANSPOSE: {
        const int64_t *perm = mica_attr_transpose_perm(n)->v;
        int32_t np = mica_attr_transpose_perm(n)->n;
        if (np != in[0].rank)
            return BAD("transpose perm has %d entries for rank %d", np, in[0].rank);
        bool seen[MICA_MAX_RANK] = {0};
        t = in[0];
        for (int32_t i = 0; i < np; i++) {
            if (perm[i] < 0 || perm[i] >= np || seen[perm[i]])
                return BAD("transpose perm is not a permutation of 0..%d", np - 1);
            seen[perm[i]] = true;
            t.shape[i] = in[0].shape[perm[i]];
        }
        break;
    }
    case MICA_OP_SLICE: {
        int32_t ns = mica_attr_slice_starts(n)->n, ne = mica_attr_slice_ends(n)->n;
        int32_t nt = mica_attr_slice_steps(n)->n;
        const int64_t *st = mica_attr_slice_starts(n)->v, *en = mica_attr_slice_ends(n)->v;
        const int64_t *sp = mica_attr_slice_steps(n)->v;
        if (ns != in[0].rank || ne != in[0].rank || nt != in[0].rank)
            return BAD("slice needs %d starts, ends and steps", in[0].rank);
        t = in[0];
        for (int32_t i = 0; i < ns; i++) {
            if (st[i] < 0 || st[i] >= en[i] || en[i] > in[0].shape[i] || sp[i] < 1)
                return BAD("slice dim %d: [%lld:%lld:%lld] is not inside [0, %lld)", i,
                           (long long)st[i], (long long)en[i], (long long)sp[i],
                           (long long)in[0].shape[i]);
            t.shape[i] = (en[i] - st[i] - 1) / sp[i] + 1; /* no overflow: en > st */
        }
        break;
    }
    case MICA_OP_CONCAT: {
        int64_t axis = mica_attr_concat_axis(n);
        t = in[0];
        if (axis < 0 || axis >= t.rank)
            return BAD("concat axis %lld out of range for rank %d", (long long)axis, t.rank);
        for (int32_t i = 1; i < n->n_inputs; i++) {
            mica_type_t u = mica_operand_type(g, &n->inputs[i]);
            if (u.dtype != t.dtype || u.rank != t.rank)
                return BAD("concat operand %d has another dtype or rank", i);
            for (int32_t k = 0; k < t.rank; k++)
                if (k != axis && u.shape[k] != in[0].shape[k])
                    return BAD("concat operand %d differs in dim %d", i, k);
            if (u.shape[axis] > INT64_MAX / 2 - t.shape[axis])
                return BAD("concat overflows");
            t.shape[axis] += u.shape[axis];
        }
        break;
    }
    case MICA_OP_BROADCAST:
        MICA_TRY(check_type(&t, "broadcast result", d));
        if (t.dtype != in[0].dtype || in[0].rank > t.rank)
            return BAD("broadcast must keep the dtype and not lower the rank");
        for (int32_t i = 0; i < in[0].rank; i++) {
            int64_t s = in[0].shape[i], o = t.shape[i + t.rank - in[0].rank];
            if (s != o && s != 1)
                return BAD("cannot broadcast dim %d of size %lld to %lld", i, (long long)s,
                           (long long)o);
        }
        break;
    case MICA_OP_GATHER: {
        int64_t axis = mica_attr_gather_axis(n);
        if (in[1].dtype != MICA_DTYPE_I32)
            return BAD("gather ids must be i32");
        if (axis < 0 || axis >= in[0].rank)
            return BAD("gather axis %lld out of range for rank %d", (long long)axis, in[0].rank);
        if (mica_dtype_is_block_quant(in[0].dtype))
            return BAD("gather of block-quantized data (use embedding)");
        t = in[0];
        t.shape[axis] = mica_type_numel(&in[1]);
        break;
    }
    case MICA_OP_RASTER: {
        MICA_TRY(check_type(&t, "raster result", d));
        if (t.layout.kind != MICA_LAYOUT_ROW_MAJOR)
            return BAD("raster result must be row-major");
        if (n->n_regions < 0 || (n->n_regions > 0 && !n->regions))
            return BAD("raster region list is malformed");
        int64_t numel = mica_type_numel(&t);
        for (int32_t r = 0; r < n->n_regions; r++) {
            const mica_region_t *rg = &n->regions[r];
            char what[64];
            if (rg->rank < 1 || rg->rank > MICA_MAX_RANK)
                return BAD("region %d has rank %d", r, rg->rank);
            for (int32_t k = 0; k < rg->rank; k++)
                if (rg->size[k] < 1)
                    return BAD("region %d has size %lld in dim %d", r, (long long)rg->size[k], k);
            if (rg->input < 0 || rg->input >= n->n_inputs)
                return BAD("region %d reads operand %d of %d", r, rg->input, n->n_inputs);
            mica_type_t src = mica_operand_type(g, &n->inputs[rg->input]);
            if (src.dtype != t.dtype)
                return BAD("region %d copies %s into %s", r, mica_dtype_name(src.dtype),
                           mica_dtype_name(t.dtype));
            if (mica_dtype_block_elems(t.dtype) != 1)
                return BAD("raster of block-quantized data");
            mica_region_t probe = *rg;
            if (rg->index_input >= 0) {
                if (rg->index_input >= n->n_inputs || rg->index_input == rg->input)
                    return BAD("region %d: index operand %d is invalid", r, rg->index_input);
                mica_type_t ids = mica_operand_type(g, &n->inputs[rg->index_input]);
                if (ids.dtype != MICA_DTYPE_I32)
                    return BAD("region %d: index operand is not i32", r);
                if (rg->index_dim < 0 || rg->index_dim >= rg->rank)
                    return BAD("region %d: index dim %d out of range", r, rg->index_dim);
                if (mica_type_numel(&ids) < rg->size[rg->index_dim])
                    return BAD("region %d: %lld ids for size %lld", r,
                               (long long)mica_type_numel(&ids), (long long)rg->size[rg->index_dim]);
                /* ids are checked against the source at run time; the rest of
                 * the view must fit for index 0. */
                probe.size[rg->index_dim] = 1;
            } else if (rg->index_input != -1) {
                return BAD("region %d: index operand %d is invalid", r, rg->index_input);
            }
            snprintf(what, sizeof what, "region %d source", r);
            MICA_TRY(check_view(rg->rank, probe.size, &rg->src, mica_type_numel(&src), what, d));
            snprintf(what, sizeof what, "region %d destination", r);
            MICA_TRY(check_view(rg->rank, rg->size, &rg->dst, numel, what, d));
        }
        break;
    }
    case MICA_OP_COUNT:
        return BAD("unknown op");
    }
    if (n->op != MICA_OP_INPUT && n->op != MICA_OP_WEIGHT && n->op != MICA_OP_STATE &&
        n->op != MICA_OP_RASTER)
        MICA_TRY(check_type(&t, "result", d));
    *out_type = t;
    return MICA_OK;
}
