/* Tables generated from dtypes.def / ops.def, the arena, and the graph
 * builder. */
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "const_store.h"
#include "ir.h"
#include "rewrite.h"

/* ------------------------------------------------------------------------ */
/* dtypes                                                                    */

static const struct {
    const char *name;
    int64_t block_elems, block_bytes;
} dtype_table[MICA_DTYPE_COUNT] = {
#define MICA_DTYPE(ID, name, be, bb, summary) {name, be, bb},
#include "dtypes.def"
#undef MICA_DTYPE
};

const char *mica_dtype_name(mica_dtype_t t)
{
    return (unsigned)t < MICA_DTYPE_COUNT ? dtype_table[t].name : NULL;
}

mica_dtype_t mica_dtype_from_name(const char *name, size_t len)
{
    for (int i = 0; i < MICA_DTYPE_COUNT; i++)
        if (strlen(dtype_table[i].name) == len && memcmp(dtype_table[i].name, name, len) == 0)
            return (mica_dtype_t)i;
    return MICA_DTYPE_COUNT;
}

int64_t mica_dtype_block_elems(mica_dtype_t t)
{
    return (unsigned)t < MICA_DTYPE_COUNT ? dtype_table[t].block_elems : 0;
}

int64_t mica_dtype_block_bytes(mica_dtype_t t)
{
    return (unsigned)t < MICA_DTYPE_COUNT ? dtype_table[t].block_bytes : 0;
}

bool mica_dtype_is_float(mica_dtype_t t)
{
    return t == MICA_DTYPE_F32 || t == MICA_DTYPE_F16 || t == MICA_DTYPE_BF16;
}

bool mica_dtype_is_block_quant(mica_dtype_t t)
{
    return t >= MICA_DTYPE_Q4_0 && t < MICA_DTYPE_COUNT;
}

int64_t mica_dtype_row_bytes(mica_dtype_t t, int64_t n)
{
    int64_t be = mica_dtype_block_elems(t);
    if (be <= 0 || n < 0 || n % be != 0)
        return 0;
    int64_t blocks = n / be;
    if (blocks > INT64_MAX / mica_dtype_block_bytes(t))
        return 0;
    return blocks * mica_dtype_block_bytes(t);
}

/* ------------------------------------------------------------------------ */
/* types                                                                     */

int64_t mica_type_numel(const mica_type_t *t)
{
    int64_t n = 1;
    for (int32_t d = 0; d < t->rank; d++)
        n *= t->shape[d];
    return n;
}

void mica_type_strides(const mica_type_t *t, int64_t *out_strides)
{
    int64_t s = 1;
    for (int32_t d = t->rank - 1; d >= 0; d--) {
        out_strides[d] = s;
        s *= t->shape[d];
    }
}

bool mica_type_equal(const mica_type_t *a, const mica_type_t *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank || a->layout.kind != b->layout.kind ||
        a->layout.ep != b->layout.ep || a->layout.hp != b->layout.hp ||
        a->layout.lp != b->layout.lp || a->layout.pad_n != b->layout.pad_n ||
        a->layout.pad_k != b->layout.pad_k || a->layout.nibbles != b->layout.nibbles)
        return false;
    for (int32_t d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d])
            return false;
    return true;
}

mica_type_t mica_type_make(mica_dtype_t dtype, int32_t rank, const int64_t *shape)
{
    mica_type_t t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.rank = rank;
    for (int32_t d = 0; d < rank && d < MICA_MAX_RANK; d++)
        t.shape[d] = shape[d];
    return t;
}

/* ------------------------------------------------------------------------ */
/* ops                                                                       */

static const struct {
    const char *name;
    mica_op_category_t category;
    int32_t n_inputs;
    uint32_t strided;
    const char *summary;
} op_decl[] = {
#define MICA_OP(ID, name, cat, nin, attrs, strided, summary) \
    {name, MICA_OP_CATEGORY_##cat, nin, strided, summary},
#include "ops.def"
#undef MICA_OP
};
static_assert(sizeof op_decl / sizeof op_decl[0] == MICA_OP_COUNT, "one entry per op");

static const struct {
    int32_t n;
    const char *names[MICA_MAX_ATTRS];
    char kinds[MICA_MAX_ATTRS];
} op_attr_decl[] = {MICA_OP_ATTR_TABLE};
static_assert(sizeof op_attr_decl / sizeof op_attr_decl[0] == MICA_OP_COUNT,
              "op_attrs.h is generated from the same ops.def");

static mica_op_info_t op_table[MICA_OP_COUNT];

static void op_table_init_once(void)
{
    static int done;
    if (done)
        return;
    for (int i = 0; i < MICA_OP_COUNT; i++) {
        mica_op_info_t *info = &op_table[i];
        info->name = op_decl[i].name;
        info->category = op_decl[i].category;
        info->n_inputs = op_decl[i].n_inputs;
        info->strided_mask = op_decl[i].strided;
        info->summary = op_decl[i].summary;
        info->n_attrs = op_attr_decl[i].n;
        for (int32_t k = 0; k < info->n_attrs; k++) {
            info->attr_names[k] = op_attr_decl[i].names[k];
            info->attr_kinds[k] = (mica_attr_kind_t)op_attr_decl[i].kinds[k];
        }
    }
    done = 1;
}

const mica_op_info_t *mica_op_info(mica_op_t op)
{
    op_table_init_once();
    return (unsigned)op < MICA_OP_COUNT ? &op_table[op] : NULL;
}

mica_op_t mica_op_from_name(const char *name, size_t len)
{
    for (int i = 0; i < MICA_OP_COUNT; i++)
        if (strlen(op_decl[i].name) == len && memcmp(op_decl[i].name, name, len) == 0)
            return (mica_op_t)i;
    return MICA_OP_COUNT;
}

bool mica_op_is_data_movement(mica_op_t op)
{
    return (unsigned)op < MICA_OP_COUNT && op_decl[op].category == MICA_OP_CATEGORY_MOVEMENT &&
           op != MICA_OP_RASTER;
}

const char *mica_node_name(const mica_node_t *n)
{
    assert((unsigned)n->op < MICA_OP_COUNT && op_decl[n->op].category == MICA_OP_CATEGORY_BOUNDARY);
    return n->attrs[0].s;
}

int32_t mica_op_attr_index(mica_op_t op, const char *name)
{
    const mica_op_info_t *info = mica_op_info(op);
    if (!info)
        return -1;
    for (int32_t i = 0; i < info->n_attrs; i++)
        if (strcmp(info->attr_names[i], name) == 0)
            return i;
    return -1;
}

static const mica_attr_t *node_attr(const mica_node_t *n, const char *name, char kind)
{
    int32_t i = mica_op_attr_index(n->op, name);
    if (i < 0 || (char)mica_op_info(n->op)->attr_kinds[i] != kind) {
        fprintf(stderr, "mica: internal error: op %s has no %c attribute '%s'\n",
                mica_op_info(n->op) ? mica_op_info(n->op)->name : "?", kind, name);
        abort();
    }
    return &n->attrs[i];
}

int64_t mica_node_attr_i(const mica_node_t *n, const char *name)
{
    return node_attr(n, name, 'i')->i;
}

double mica_node_attr_f(const mica_node_t *n, const char *name)
{
    return node_attr(n, name, 'f')->f;
}

const char *mica_node_attr_s(const mica_node_t *n, const char *name)
{
    return node_attr(n, name, 's')->s;
}

const int64_t *mica_node_attr_ints(const mica_node_t *n, const char *name, int32_t *out_count)
{
    const mica_attr_t *a = node_attr(n, name, 'I');
    if (out_count)
        *out_count = a->n;
    return a->v;
}

/* ------------------------------------------------------------------------ */
/* arena                                                                     */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_chunk_t;

struct mica_arena {
    arena_chunk_t *head;
};

mica_status_t mica_arena_create(mica_arena_t **out_arena)
{
    *out_arena = calloc(1, sizeof(mica_arena_t));
    return *out_arena ? MICA_OK : MICA_ERR_NOMEM;
}

void mica_arena_release(mica_arena_t *a)
{
    if (!a)
        return;
    arena_chunk_t *c = a->head;
    while (c) {
        arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void *mica_arena_alloc(mica_arena_t *a, size_t bytes)
{
    if (bytes > SIZE_MAX / 2)
        return NULL;
    size_t need = (bytes + 15) & ~(size_t)15;
    if (need == 0)
        need = 16;
    arena_chunk_t *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > 65536 ? need : 65536;
        c = malloc(sizeof(arena_chunk_t) + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += need;
    memset(p, 0, need);
    return p;
}

char *mica_arena_strndup(mica_arena_t *a, const char *s, size_t len)
{
    char *p = mica_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* graphs                                                                    */

mica_status_t mica_graph_create(mica_graph_t **out_graph)
{
    mica_graph_t *g = calloc(1, sizeof *g);
    if (!g)
        return MICA_ERR_NOMEM;
    if (mica_arena_create(&g->arena) != MICA_OK) {
        free(g);
        return MICA_ERR_NOMEM;
    }
    *out_graph = g;
    return MICA_OK;
}

void mica_graph_release(mica_graph_t *g)
{
    if (!g)
        return;
    mica_const_store_release(g->consts);
    mica_arena_release(g->arena);
    free(g->nodes);
    free(g);
}

mica_node_t *mica_graph_node(const mica_graph_t *g, int32_t id)
{
    return (id >= 0 && id < g->n_nodes) ? g->nodes[id] : NULL;
}

bool mica_operand_equal(const mica_operand_t *a, const mica_operand_t *b)
{
    if (a->value != b->value || a->has_view != b->has_view)
        return false;
    if (!a->has_view)
        return true;
    if (a->view_rank != b->view_rank || a->view.offset != b->view.offset)
        return false;
    for (int32_t d = 0; d < a->view_rank; d++)
        if (a->view_shape[d] != b->view_shape[d] || a->view.stride[d] != b->view.stride[d])
            return false;
    return true;
}

mica_type_t mica_operand_type(const mica_graph_t *g, const mica_operand_t *o)
{
    const mica_node_t *v = mica_graph_node(g, o->value);
    mica_type_t t;
    memset(&t, 0, sizeof t);
    if (v)
        t = v->type;
    if (o->has_view) {
        t.rank = o->view_rank;
        for (int32_t d = 0; d < o->view_rank; d++)
            t.shape[d] = o->view_shape[d];
        t.layout.kind = MICA_LAYOUT_ROW_MAJOR;
    }
    return t;
}

static int32_t fail(mica_graph_t *g, mica_status_t code, const char *msg)
{
    if (g->error.code == MICA_OK)
        mica_diag_set(&g->error, code, "%%%d: %s", g->n_nodes, msg);
    return -1;
}

int32_t mica_graph_append(mica_graph_t *g, const mica_node_t *n, bool infer)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    if (!info)
        return fail(g, MICA_ERR_INVALID, "unknown op");
    if (g->n_nodes == INT32_MAX)
        return fail(g, MICA_ERR_NOMEM, "too many nodes");
    for (int32_t i = 0; i < n->n_inputs; i++) {
        if (n->inputs[i].value == -1)
            return -1; /* an earlier builder call failed and said why */
    }
    if (g->n_nodes == g->cap_nodes) {
        int32_t cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        mica_node_t **nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return fail(g, MICA_ERR_NOMEM, "out of memory");
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    mica_node_t *c = mica_arena_alloc(g->arena, sizeof *c);
    if (!c)
        return fail(g, MICA_ERR_NOMEM, "out of memory");
    *c = *n;
    c->id = g->n_nodes;
    c->origin = c->id;
    if (n->note && !(c->note = mica_arena_strndup(g->arena, n->note, strlen(n->note))))
        return fail(g, MICA_ERR_NOMEM, "out of memory");
    if (n->n_inputs < 0)
        return fail(g, MICA_ERR_INVALID, "negative operand count");
    if (n->n_inputs > 0) {
        c->inputs = mica_arena_alloc(g->arena, (size_t)n->n_inputs * sizeof *c->inputs);
        if (!c->inputs)
            return fail(g, MICA_ERR_NOMEM, "out of memory");
        memcpy(c->inputs, n->inputs, (size_t)n->n_inputs * sizeof *c->inputs);
    } else {
        c->inputs = NULL;
    }
    for (int32_t i = 0; i < info->n_attrs; i++) {
        mica_attr_t *a = &c->attrs[i];
        if (info->attr_kinds[i] == MICA_ATTR_STRING && a->s) {
            a->s = mica_arena_strndup(g->arena, a->s, strlen(a->s));
            if (!a->s)
                return fail(g, MICA_ERR_NOMEM, "out of memory");
        }
        if (info->attr_kinds[i] == MICA_ATTR_INTS && a->n > 0) {
            int64_t *v = mica_arena_alloc(g->arena, (size_t)a->n * sizeof *v);
            if (!v)
                return fail(g, MICA_ERR_NOMEM, "out of memory");
            memcpy(v, a->v, (size_t)a->n * sizeof *v);
            a->v = v;
        }
    }
    if (n->n_regions > 0) {
        c->regions = mica_arena_alloc(g->arena, (size_t)n->n_regions * sizeof *c->regions);
        if (!c->regions)
            return fail(g, MICA_ERR_NOMEM, "out of memory");
        memcpy(c->regions, n->regions, (size_t)n->n_regions * sizeof *c->regions);
    } else {
        c->regions = NULL;
        c->n_regions = 0;
    }
    /* Declared-type ops (input, weight, reshape, broadcast, convert, raster)
     * have their declared type checked; all others get it computed. */
    mica_diag_t d = {0};
    mica_type_t t;
    mica_status_t s = mica_node_infer_type(g, c, &t, &d);
    if (s != MICA_OK)
        return fail(g, s, d.msg);
    if (infer)
        c->type = t;
    else if (!mica_type_equal(&t, &c->type))
        return fail(g, MICA_ERR_INVALID, "declared type differs from the inferred one");
    g->nodes[g->n_nodes] = c;
    return g->n_nodes++;
}

/* ------------------------------------------------------------------------ */
/* builder helpers                                                           */

static mica_node_t node_make(mica_op_t op)
{
    mica_node_t n;
    memset(&n, 0, sizeof n);
    n.op = op;
    return n;
}

static mica_operand_t operand(int32_t v)
{
    mica_operand_t o;
    memset(&o, 0, sizeof o);
    o.value = v;
    return o;
}

static int32_t append_with(mica_graph_t *g, mica_node_t *n, int32_t count, const int32_t *xs,
                           bool infer)
{
    mica_operand_t ops[64];
    mica_operand_t *in = ops;
    if (count > 64) {
        in = malloc((size_t)count * sizeof *in);
        if (!in)
            return fail(g, MICA_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < count; i++)
        in[i] = operand(xs[i]);
    n->n_inputs = count;
    n->inputs = in;
    int32_t id = mica_graph_append(g, n, infer);
    if (in != ops)
        free(in);
    return id;
}

int32_t mica_build_input(mica_graph_t *g, const char *name, mica_type_t type)
{
    mica_node_t n = node_make(MICA_OP_INPUT);
    n.attrs[0].s = name;
    n.type = type;
    return mica_graph_append(g, &n, false);
}

int32_t mica_build_weight(mica_graph_t *g, const char *name, mica_type_t type, const void *data,
                          uint64_t nbytes)
{
    mica_node_t n = node_make(MICA_OP_WEIGHT);
    n.attrs[0].s = name;
    n.type = type;
    n.data = data;
    n.nbytes = nbytes;
    return mica_graph_append(g, &n, false);
}

int32_t mica_build_state(mica_graph_t *g, const char *name, mica_type_t type)
{
    mica_node_t n = node_make(MICA_OP_STATE);
    n.attrs[0].s = name;
    n.type = type;
    return mica_graph_append(g, &n, false);
}

int32_t mica_build_kv_store(mica_graph_t *g, int32_t cache, int32_t x, int32_t p0, int32_t count)
{
    mica_node_t n = node_make(MICA_OP_KV_STORE);
    int32_t xs[4] = {cache, x, p0, count};
    return append_with(g, &n, 4, xs, true);
}

int32_t mica_build_attention_kv(mica_graph_t *g, int32_t q, int32_t k, int32_t v, int32_t p0,
                                int32_t count, double scale)
{
    mica_node_t n = node_make(MICA_OP_ATTENTION_KV);
    n.attrs[0].f = scale;
    int32_t xs[5] = {q, k, v, p0, count};
    return append_with(g, &n, 5, xs, true);
}

int32_t mica_build_output(mica_graph_t *g, const char *name, int32_t x)
{
    mica_node_t n = node_make(MICA_OP_OUTPUT);
    n.attrs[0].s = name;
    return append_with(g, &n, 1, &x, true);
}

int32_t mica_build_unary(mica_graph_t *g, mica_op_t op, int32_t x)
{
    mica_node_t n = node_make(op);
    return append_with(g, &n, 1, &x, true);
}

int32_t mica_build_binary(mica_graph_t *g, mica_op_t op, int32_t a, int32_t b)
{
    mica_node_t n = node_make(op);
    int32_t xs[2] = {a, b};
    return append_with(g, &n, 2, xs, true);
}

int32_t mica_build_scale(mica_graph_t *g, int32_t x, double s)
{
    mica_node_t n = node_make(MICA_OP_SCALE);
    n.attrs[0].f = s;
    return append_with(g, &n, 1, &x, true);
}

int32_t mica_build_convert(mica_graph_t *g, int32_t x, mica_dtype_t to)
{
    mica_node_t n = node_make(MICA_OP_CONVERT);
    const mica_node_t *src = mica_graph_node(g, x);
    if (!src)
        return x == -1 ? -1 : fail(g, MICA_ERR_INVALID, "convert of an undefined value");
    n.type = src->type;
    n.type.dtype = to;
    return append_with(g, &n, 1, &x, false);
}

int32_t mica_build_rms_norm(mica_graph_t *g, int32_t x, int32_t w, double eps)
{
    mica_node_t n = node_make(MICA_OP_RMS_NORM);
    n.attrs[0].f = eps;
    int32_t xs[2] = {x, w};
    return append_with(g, &n, 2, xs, true);
}

int32_t mica_build_rope(mica_graph_t *g, int32_t x, int32_t pos, int64_t mode, int64_t dims,
                        double theta, double scale)
{
    mica_node_t n = node_make(MICA_OP_ROPE);
    n.attrs[0].i = mode;
    n.attrs[1].i = dims;
    n.attrs[2].f = theta;
    n.attrs[3].f = scale;
    int32_t xs[2] = {x, pos};
    return append_with(g, &n, 2, xs, true);
}

int32_t mica_build_attention(mica_graph_t *g, int32_t q, int32_t k, int32_t v, double scale)
{
    mica_node_t n = node_make(MICA_OP_ATTENTION);
    n.attrs[0].f = scale;
    int32_t xs[3] = {q, k, v};
    return append_with(g, &n, 3, xs, true);
}

int32_t mica_build_reshape(mica_graph_t *g, int32_t x, int32_t rank, const int64_t *shape)
{
    mica_node_t n = node_make(MICA_OP_RESHAPE);
    const mica_node_t *src = mica_graph_node(g, x);
    if (!src)
        return x == -1 ? -1 : fail(g, MICA_ERR_INVALID, "reshape of an undefined value");
    if (rank < 0 || rank > MICA_MAX_RANK)
        return fail(g, MICA_ERR_INVALID, "reshape rank out of range");
    n.type = mica_type_make(src->type.dtype, rank, shape);
    return append_with(g, &n, 1, &x, false);
}

int32_t mica_build_transpose(mica_graph_t *g, int32_t x, const int64_t *perm)
{
    mica_node_t n = node_make(MICA_OP_TRANSPOSE);
    const mica_node_t *src = mica_graph_node(g, x);
    if (!src)
        return x == -1 ? -1 : fail(g, MICA_ERR_INVALID, "transpose of an undefined value");
    n.attrs[0].n = src->type.rank;
    n.attrs[0].v = perm;
    return append_with(g, &n, 1, &x, true);
}

int32_t mica_build_slice(mica_graph_t *g, int32_t x, const int64_t *starts, const int64_t *ends,
                         const int64_t *steps)
{
    mica_node_t n = node_make(MICA_OP_SLICE);
    const mica_node_t *src = mica_graph_node(g, x);
    if (!src)
        return x == -1 ? -1 : fail(g, MICA_ERR_INVALID, "slice of an undefined value");
    int64_t ones[MICA_MAX_RANK] = {1, 1, 1, 1, 1, 1};
    for (int32_t i = 0; i < 3; i++)
        n.attrs[i].n = src->type.rank;
    n.attrs[0].v = starts;
    n.attrs[1].v = ends;
    n.attrs[2].v = steps ? steps : ones;
    return append_with(g, &n, 1, &x, true);
}

int32_t mica_build_concat(mica_graph_t *g, int32_t count, const int32_t *xs, int64_t axis)
{
    mica_node_t n = node_make(MICA_OP_CONCAT);
    n.attrs[0].i = axis;
    return append_with(g, &n, count, xs, true);
}

int32_t mica_build_broadcast(mica_graph_t *g, int32_t x, int32_t rank, const int64_t *shape)
{
    mica_node_t n = node_make(MICA_OP_BROADCAST);
    const mica_node_t *src = mica_graph_node(g, x);
    if (!src)
        return x == -1 ? -1 : fail(g, MICA_ERR_INVALID, "broadcast of an undefined value");
    if (rank < 0 || rank > MICA_MAX_RANK)
        return fail(g, MICA_ERR_INVALID, "broadcast rank out of range");
    n.type = mica_type_make(src->type.dtype, rank, shape);
    return append_with(g, &n, 1, &x, false);
}

int32_t mica_build_gather(mica_graph_t *g, int32_t x, int32_t ids, int64_t axis)
{
    mica_node_t n = node_make(MICA_OP_GATHER);
    n.attrs[0].i = axis;
    int32_t xs[2] = {x, ids};
    return append_with(g, &n, 2, xs, true);
}

int32_t mica_build_raster(mica_graph_t *g, int32_t count, const int32_t *xs, mica_type_t type,
                          int32_t n_regions, const mica_region_t *regions)
{
    mica_node_t n = node_make(MICA_OP_RASTER);
    n.type = type;
    n.n_regions = n_regions;
    n.regions = (mica_region_t *)regions;
    return append_with(g, &n, count, xs, false);
}

/* ------------------------------------------------------------------------ */
/* pruning                                                                   */

/* Inputs and outputs are the interface: always kept. */
static bool prunable(const mica_node_t *n, void *user)
{
    (void)user;
    /* the interface, and stores that write state, stay even when unread */
    return n->op != MICA_OP_OUTPUT && n->op != MICA_OP_INPUT && n->op != MICA_OP_STATE &&
           n->op != MICA_OP_KV_STORE;
}

mica_status_t mica_graph_prune(mica_graph_t **g, mica_diag_t *d)
{
    const mica_rewrite_spec_t spec = {NULL, prunable, NULL};
    mica_status_t s = mica_rewrite_run(g, &spec, d);
    if (s != MICA_OK)
        mica_diag_prefix(d, "pruning");
    return s;
}
