/* The interpreter of the reference backend: runs the nodes of a graph in
 * order, holding one value per node and freeing it after its last use.
 *
 * Before a node runs, its type is checked again with the shape rules
 * (mica_node_infer_type), so kernels can trust shapes, attributes, views
 * and region bounds; what only the data can break (ids) the kernels check.
 * Weights are not copied when defined: matmul, embedding, qmatmul and
 * wmatmul read their weight rows straight from the node's bytes, and any other reader gets the whole
 * weight dequantized once, kept until its last use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout_index.h"
#include "quant.h"
#include "ref.h"
#include "ref_internal.h"

struct mica_ref_outputs {
    int32_t count;
    mica_ref_tensor_t *tensors; /* [count]; names and data owned */
};

/* The value of one node while the graph runs. */
typedef struct slot {
    void *data;       /* [numel] 4-byte elements, or NULL (not yet / no longer held) */
    bool owned;       /* data is freed by the interpreter */
    int32_t last_use; /* index of the last node reading it (own index if none) */
} slot_t;

typedef struct run {
    const mica_graph_t *g;
    const mica_ref_tensor_t *states; /* [n_states] persistent tensors, written in place */
    int32_t n_states;
    const int64_t *offsets; /* [n_nodes] planned arena offsets (bytes, -1 = none), or NULL */
    unsigned char *arena;   /* the planned arena, when offsets is set */
    slot_t *slots;            /* [n_nodes] */
    mica_ref_outputs_t *outs; /* filled in graph order */
} run_t;

/* ------------------------------------------------------------------------ */
/* outputs                                                                   */

int32_t mica_ref_outputs_count(const mica_ref_outputs_t *o)
{
    return o ? o->count : 0;
}

const mica_ref_tensor_t *mica_ref_outputs_at(const mica_ref_outputs_t *o, int32_t i)
{
    return (o && i >= 0 && i < o->count) ? &o->tensors[i] : NULL;
}

const mica_ref_tensor_t *mica_ref_outputs_find(const mica_ref_outputs_t *o, const char *name)
{
    if (!o || !name)
        return NULL;
    for (int32_t i = 0; i < o->count; i++)
        if (strcmp(o->tensors[i].name, name) == 0)
            return &o->tensors[i];
    return NULL;
}

void mica_ref_outputs_release(mica_ref_outputs_t *o)
{
    if (!o)
        return;
    for (int32_t i = 0; i < o->count; i++) {
        free((char *)o->tensors[i].name);
        free(o->tensors[i].data);
    }
    free(o->tensors);
    free(o);
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* "f32[2,3]" into buf. */
static const char *type_str(const mica_type_t *t, char *buf, size_t cap)
{
    const char *dn = mica_dtype_name(t->dtype);
    int len = snprintf(buf, cap, "%s[", dn ? dn : "?");
    for (int32_t k = 0; k < t->rank && len > 0 && (size_t)len < cap; k++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%lld", k ? "," : "",
                        (long long)t->shape[k]);
    if (len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, "]");
    return buf;
}

static void *alloc_elems(int64_t count, mica_diag_t *d)
{
    void *p = malloc((size_t)(count > 0 ? count : 1) * 4);
    if (!p)
        mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %lld values", (long long)count);
    return p;
}

/* Rounds float values to dtype (f16/bf16); other dtypes are left alone. */
static void round_to_dtype(float *v, int64_t count, mica_dtype_t dtype)
{
    if (dtype == MICA_DTYPE_F16)
        for (int64_t i = 0; i < count; i++)
            v[i] = mica_f16_to_f32(mica_f32_to_f16(v[i]));
    else if (dtype == MICA_DTYPE_BF16)
        for (int64_t i = 0; i < count; i++)
            v[i] = mica_bf16_to_f32(mica_f32_to_bf16(v[i]));
}

/* Storage for node n's value: its planned place in the arena, or a new
 * buffer of count elements that the slot owns. */
static void *value_storage(run_t *r, const mica_node_t *n, int64_t count, bool *out_owned,
                           mica_diag_t *d)
{
    if (r->offsets && r->offsets[n->id] >= 0) {
        *out_owned = false;
        return r->arena + r->offsets[n->id];
    }
    *out_owned = true;
    return alloc_elems(count, d);
}

static void slot_drop(slot_t *s)
{
    if (s->owned)
        free(s->data);
    s->data = NULL;
    s->owned = false;
}

/* ------------------------------------------------------------------------ */
/* graph boundary                                                            */

static mica_status_t run_input(run_t *r, const mica_node_t *n, const mica_ref_tensor_t *inputs,
                               int32_t n_inputs, mica_diag_t *d)
{
    const char *name = mica_node_name(n);
    const mica_ref_tensor_t *b = NULL;
    for (int32_t k = 0; k < n_inputs && !b; k++)
        if (inputs[k].name && strcmp(inputs[k].name, name) == 0)
            b = &inputs[k];
    if (!b)
        return mica_diag_set(d, MICA_ERR_INVALID, "input '%s' is not bound", name);
    if (!mica_type_equal(&b->type, &n->type)) {
        char have[96], want[96];
        return mica_diag_set(d, MICA_ERR_INVALID, "input '%s' is bound as %s, declared %s", name,
                             type_str(&b->type, have, sizeof have),
                             type_str(&n->type, want, sizeof want));
    }
    if (!b->data)
        return mica_diag_set(d, MICA_ERR_INVALID, "input '%s' is bound without data", name);
    if (n->type.layout.kind != MICA_LAYOUT_ROW_MAJOR)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "input '%s' has a packed layout", name);
    slot_t *s = &r->slots[n->id];
    mica_dtype_t dt = n->type.dtype;
    if ((dt == MICA_DTYPE_F32 || dt == MICA_DTYPE_I32) && !r->offsets) {
        s->data = b->data; /* only read, during this call */
        s->owned = false;
        return MICA_OK;
    }
    if (dt != MICA_DTYPE_F32 && dt != MICA_DTYPE_I32 && dt != MICA_DTYPE_F16 &&
        dt != MICA_DTYPE_BF16)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "input '%s' has dtype %s (want f32, f16, "
                             "bf16 or i32)", name, mica_dtype_name(dt));
    int64_t count = mica_type_numel(&n->type);
    if (!(s->data = value_storage(r, n, count, &s->owned, d)))
        return MICA_ERR_NOMEM;
    memcpy(s->data, b->data, (size_t)count * 4);
    round_to_dtype(s->data, count, dt);
    return MICA_OK;
}

/* A state node's value is the caller's buffer itself: kv_store writes it. */
static mica_status_t run_state(run_t *r, const mica_node_t *n, mica_diag_t *d)
{
    const char *name = mica_node_name(n);
    const mica_ref_tensor_t *b = NULL;
    for (int32_t k = 0; k < r->n_states && !b; k++)
        if (r->states[k].name && strcmp(r->states[k].name, name) == 0)
            b = &r->states[k];
    if (!b || !b->data)
        return mica_diag_set(d, MICA_ERR_INVALID, "state '%s' is not bound", name);
    if (b->type.dtype == MICA_DTYPE_I32 || !mica_type_equal(&b->type, &n->type)) {
        char have[96], want[96];
        return mica_diag_set(d, MICA_ERR_INVALID, "state '%s' is bound as %s, declared %s", name,
                             type_str(&b->type, have, sizeof have),
                             type_str(&n->type, want, sizeof want));
    }
    r->slots[n->id].data = b->data;
    r->slots[n->id].owned = false;
    return MICA_OK;
}

static mica_status_t check_weight(const mica_node_t *n, mica_diag_t *d)
{
    const char *name = mica_node_name(n);
    if (!n->data || n->nbytes == 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "weight '%s' has no data", name);
    /* tiled u4 / i8 / f16 weights are read as qmatmul / wmatmul operands
     * (ref_compute.c, through mica_layout_offset); weight_values refuses
     * them anywhere else */
    const bool tiled = mica_layout_is_tiled(&n->type) &&
                       (n->type.dtype == MICA_DTYPE_U4 || n->type.dtype == MICA_DTYPE_I8 ||
                        n->type.dtype == MICA_DTYPE_F16);
    if (n->type.layout.kind != MICA_LAYOUT_ROW_MAJOR && !tiled)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "weight '%s' is packed (ep=%d hp=%d lp=%d); the ref backend reads "
                             "row-major weights only",
                             name, n->type.layout.ep, n->type.layout.hp, n->type.layout.lp);
    return MICA_OK;
}

/* The whole weight as values: int32 for i32, else float32, dequantized. */
static mica_status_t weight_values(const mica_node_t *n, void **out, mica_diag_t *d)
{
    const mica_type_t *t = &n->type;
    if (t->layout.kind != MICA_LAYOUT_ROW_MAJOR)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "weight '%s' is packed; only qmatmul and "
                             "wmatmul read packed weights", mica_node_name(n));
    int64_t count = mica_type_numel(t);
    void *v = alloc_elems(count, d);
    if (!v)
        return MICA_ERR_NOMEM;
    if (t->dtype == MICA_DTYPE_F32 || t->dtype == MICA_DTYPE_I32) {
        memcpy(v, n->data, (size_t)count * 4); /* little-endian host */
        *out = v;
        return MICA_OK;
    }
    mica_ref_arg_t a = {.type = *t, .bytes = n->data};
    int64_t len = t->rank ? t->shape[t->rank - 1] : 1;
    a.type.rank = 2; /* [rows, len] for mica_ref_arg_row */
    a.type.shape[0] = count / len;
    a.type.shape[1] = len;
    for (int64_t row = 0; row < count / len; row++) {
        mica_status_t s = mica_ref_arg_row(&a, row, (float *)v + row * len, d);
        if (s != MICA_OK) {
            free(v);
            mica_diag_prefix(d, "weight '%s'", mica_node_name(n));
            return s;
        }
    }
    *out = v;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* operands                                                                  */

/* Makes operand k of n available as args[k]. Weight rows of matmul and
 * embedding stay bytes; everything else becomes values, with a view copied
 * into a buffer recorded in *scratch (freed by the caller). */
static mica_status_t operand_get(run_t *r, const mica_node_t *n, int32_t k, mica_ref_arg_t *arg,
                                 void **scratch, mica_diag_t *d)
{
    const mica_operand_t *o = &n->inputs[k];
    const mica_node_t *src = r->g->nodes[o->value];
    slot_t *s = &r->slots[o->value];
    memset(arg, 0, sizeof *arg);
    arg->type = mica_operand_type(r->g, o);
    bool rows = (n->op == MICA_OP_MATMUL && k == 1) || (n->op == MICA_OP_EMBEDDING && k == 0) ||
                (n->op == MICA_OP_QMATMUL && k >= 2) || (n->op == MICA_OP_WMATMUL && k >= 1);
    if (rows && src->op == MICA_OP_WEIGHT && !o->has_view) {
        arg->bytes = src->data;
        return MICA_OK;
    }
    if (!s->data) {
        if (src->op != MICA_OP_WEIGHT)
            return mica_diag_set(d, MICA_ERR_INVALID, "operand %%%d has no value", o->value);
        MICA_TRY(weight_values(src, &s->data, d));
        s->owned = true;
    }
    const void *data = s->data;
    if (o->has_view) {
        void *v = alloc_elems(mica_type_numel(&arg->type), d);
        if (!v)
            return MICA_ERR_NOMEM;
        mica_ref_view_copy(data, o->view_rank, o->view_shape, &o->view, v);
        *scratch = v;
        data = v;
    }
    if (arg->type.dtype == MICA_DTYPE_I32)
        arg->i = data;
    else
        arg->f = data;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* nodes                                                                     */

/* The kernel of every op the interpreter does not run itself (boundary
 * ops), indexed by op. */
static const mica_ref_kernel_fn ref_kernels[MICA_OP_COUNT] = {
    [MICA_OP_EMBEDDING] = mica_ref_embedding,
    [MICA_OP_MATMUL] = mica_ref_matmul,
    [MICA_OP_ADD] = mica_ref_add,
    [MICA_OP_MUL] = mica_ref_mul,
    [MICA_OP_SCALE] = mica_ref_scale,
    [MICA_OP_CONVERT] = mica_ref_convert,
    [MICA_OP_RMS_NORM] = mica_ref_rms_norm,
    [MICA_OP_ROPE] = mica_ref_rope,
    [MICA_OP_SOFTMAX] = mica_ref_softmax,
    [MICA_OP_SILU] = mica_ref_silu,
    [MICA_OP_GELU] = mica_ref_gelu,
    [MICA_OP_ATTENTION] = mica_ref_attention,
    [MICA_OP_ACT_SCALE] = mica_ref_act_scale,
    [MICA_OP_ACT_QUANT] = mica_ref_act_quant,
    [MICA_OP_QMATMUL] = mica_ref_qmatmul,
    [MICA_OP_WMATMUL] = mica_ref_wmatmul,
    [MICA_OP_SWIGLU] = mica_ref_swiglu,
    [MICA_OP_KV_STORE] = mica_ref_kv_store,
    [MICA_OP_ATTENTION_KV] = mica_ref_attention_kv,
    [MICA_OP_RESHAPE] = mica_ref_reshape,
    [MICA_OP_TRANSPOSE] = mica_ref_transpose,
    [MICA_OP_SLICE] = mica_ref_slice,
    [MICA_OP_CONCAT] = mica_ref_concat,
    [MICA_OP_BROADCAST] = mica_ref_broadcast,
    [MICA_OP_GATHER] = mica_ref_gather,
    [MICA_OP_RASTER] = mica_ref_raster,
};

static mica_ref_kernel_fn kernel_for(mica_op_t op)
{
    return (unsigned)op < MICA_OP_COUNT ? ref_kernels[op] : NULL;
}

bool mica_ref_op_supported(mica_op_t op)
{
    const mica_op_info_t *info = mica_op_info(op);
    return info && (info->category == MICA_OP_CATEGORY_BOUNDARY || kernel_for(op) != NULL);
}

/* Runs a node that computes a value from its operands (every op but input,
 * weight and output) into its slot. */
static mica_status_t run_kernel(run_t *r, const mica_node_t *n, mica_diag_t *d)
{
    mica_ref_kernel_fn fn = kernel_for(n->op);
    if (!fn)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "the ref backend cannot run this op");
    int32_t count = n->n_inputs;
    mica_ref_arg_t *args = calloc((size_t)count, sizeof *args); /* [n_inputs] */
    void **scratch = calloc((size_t)count, sizeof *scratch);    /* [n_inputs] view copies */
    void *y = NULL;
    mica_status_t s = MICA_OK;
    if (!args || !scratch) {
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %d operands", count);
        goto done;
    }
    for (int32_t k = 0; k < count && s == MICA_OK; k++)
        s = operand_get(r, n, k, &args[k], &scratch[k], d);
    if (s != MICA_OK)
        goto done;
    if (n->op == MICA_OP_KV_STORE) {
        /* In place: the result is the state operand's own buffer, and the
         * kernel rounds what it writes to the cache dtype. */
        void *cache = r->slots[n->inputs[0].value].data;
        if ((s = fn(n, args, cache, d)) != MICA_OK)
            goto done;
        r->slots[n->id].data = cache;
        r->slots[n->id].owned = false;
        goto done;
    }
    int64_t numel = mica_type_numel(&n->type);
    bool owned;
    if (!(y = value_storage(r, n, numel, &owned, d))) {
        s = MICA_ERR_NOMEM;
        goto done;
    }
    if ((s = fn(n, args, y, d)) != MICA_OK) {
        if (!owned)
            y = NULL;
        goto done;
    }
    if (!mica_op_is_data_movement(n->op) && n->op != MICA_OP_RASTER)
        round_to_dtype(y, numel, n->type.dtype);
    r->slots[n->id].data = y;
    r->slots[n->id].owned = owned;
    y = NULL;
done:
    if (scratch)
        for (int32_t k = 0; k < count; k++)
            free(scratch[k]);
    free(scratch);
    free(args);
    free(y);
    return s;
}

/* Copies the operand of output node n into the next output tensor; the
 * node's own value (should anything read it) borrows that copy. */
static mica_status_t run_output(run_t *r, const mica_node_t *n, mica_diag_t *d)
{
    mica_ref_arg_t arg;
    void *scratch = NULL;
    MICA_TRY(operand_get(r, n, 0, &arg, &scratch, d));
    int64_t count = mica_type_numel(&n->type);
    const char *name = mica_node_name(n);
    mica_ref_tensor_t *t = &r->outs->tensors[r->outs->count];
    void *data = alloc_elems(count, d);
    char *copy = malloc(strlen(name) + 1);
    if (!data || !copy) {
        free(scratch);
        free(data);
        free(copy);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for output '%s'", name);
    }
    memcpy(data, mica_ref_arg_data(&arg), (size_t)count * 4);
    free(scratch);
    memcpy(copy, name, strlen(name) + 1);
    t->name = copy;
    t->type = n->type;
    t->data = data;
    r->outs->count++;
    r->slots[n->id].data = data;
    r->slots[n->id].owned = false;
    return MICA_OK;
}

static mica_status_t run_node(run_t *r, const mica_node_t *n, const mica_ref_tensor_t *inputs,
                              int32_t n_inputs, mica_diag_t *d)
{
    mica_type_t t;
    MICA_TRY(mica_node_infer_type(r->g, n, &t, d));
    if (!mica_type_equal(&t, &n->type)) {
        char have[96], want[96];
        return mica_diag_set(d, MICA_ERR_INVALID, "stored type %s differs from the inferred %s",
                             type_str(&n->type, have, sizeof have), type_str(&t, want, sizeof want));
    }
    switch (n->op) {
    case MICA_OP_INPUT:
        return run_input(r, n, inputs, n_inputs, d);
    case MICA_OP_WEIGHT:
        return check_weight(n, d); /* values made on first use */
    case MICA_OP_STATE:
        return run_state(r, n, d);
    case MICA_OP_OUTPUT:
        return run_output(r, n, d);
    default:
        return run_kernel(r, n, d);
    }
}

/* ------------------------------------------------------------------------ */
/* execution                                                                 */

mica_status_t mica_ref_execute(const mica_graph_t *g, const mica_ref_tensor_t *inputs,
                               int32_t n_inputs, mica_ref_outputs_t **out_outputs,
                               mica_diag_t *d)
{
    return mica_ref_execute_stateful(g, inputs, n_inputs, NULL, 0, out_outputs, d);
}

mica_status_t mica_ref_execute_stateful(const mica_graph_t *g, const mica_ref_tensor_t *inputs,
                                        int32_t n_inputs, const mica_ref_tensor_t *states,
                                        int32_t n_states, mica_ref_outputs_t **out_outputs,
                                        mica_diag_t *d)
{
    return mica_ref_execute_planned(g, inputs, n_inputs, states, n_states, NULL, NULL,
                                    out_outputs, d);
}

mica_status_t mica_ref_execute_planned(const mica_graph_t *g, const mica_ref_tensor_t *inputs,
                                       int32_t n_inputs, const mica_ref_tensor_t *states,
                                       int32_t n_states, const int64_t *offsets, void *arena,
                                       mica_ref_outputs_t **out_outputs, mica_diag_t *d)
{
    if (out_outputs)
        *out_outputs = NULL;
    if (!g || !out_outputs || (n_inputs > 0 && !inputs) || n_inputs < 0 ||
        (n_states > 0 && !states) || n_states < 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "ref: bad arguments");
    int32_t nn = g->n_nodes;
    if (offsets && !arena)
        return mica_diag_set(d, MICA_ERR_INVALID, "ref: a memory plan without an arena");
    run_t r = {.g = g, .states = states, .n_states = n_states, .offsets = offsets, .arena = arena};
    mica_status_t s = MICA_OK;
    r.slots = calloc((size_t)(nn > 0 ? nn : 1), sizeof *r.slots);
    r.outs = calloc(1, sizeof *r.outs);
    int32_t n_out = 0;
    for (int32_t i = 0; i < nn; i++)
        n_out += g->nodes[i] && g->nodes[i]->op == MICA_OP_OUTPUT;
    if (r.outs)
        r.outs->tensors = calloc((size_t)(n_out > 0 ? n_out : 1), sizeof *r.outs->tensors);
    if (!r.slots || !r.outs || !r.outs->tensors) {
        s = mica_diag_set(d, MICA_ERR_NOMEM, "ref: out of memory for %d nodes", nn);
        goto done;
    }
    for (int32_t i = 0; i < nn; i++) {
        const mica_node_t *n = g->nodes[i];
        if (!n || n->id != i) {
            s = mica_diag_set(d, MICA_ERR_INVALID, "%%%d: node id does not match its place", i);
            goto done;
        }
        r.slots[i].last_use = i;
        for (int32_t k = 0; k < n->n_inputs; k++) {
            int32_t v = n->inputs ? n->inputs[k].value : -1;
            if (v < 0 || v >= i) {
                s = mica_diag_set(d, MICA_ERR_INVALID, "%%%d: operand %d is not defined before it",
                                  i, k);
                goto done;
            }
            r.slots[v].last_use = i;
        }
    }
    for (int32_t i = 0; i < nn; i++) {
        const mica_node_t *n = g->nodes[i];
        s = run_node(&r, n, inputs, n_inputs, d);
        if (s != MICA_OK) {
            const mica_op_info_t *info = mica_op_info(n->op);
            mica_diag_prefix(d, "%%%d (%s)", i, info ? info->name : "?");
            goto done;
        }
        for (int32_t k = 0; k < n->n_inputs; k++)
            if (r.slots[n->inputs[k].value].last_use == i)
                slot_drop(&r.slots[n->inputs[k].value]);
        if (r.slots[i].last_use == i)
            slot_drop(&r.slots[i]);
    }
    *out_outputs = r.outs;
    r.outs = NULL;
done:
    if (r.slots)
        for (int32_t i = 0; i < nn; i++)
            slot_drop(&r.slots[i]);
    free(r.slots);
    mica_ref_outputs_release(r.outs);
    return s;
}
