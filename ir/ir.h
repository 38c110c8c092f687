/* mica IR: element types, tensor types, views and regions, the op table, and
 * graphs of SSA values built in an arena.
 *
 * A graph is a list of nodes in topological order; node i defines value %i.
 * Every node produces exactly one tensor whose type (dtype + shape + layout)
 * is stored on the node. Everything a graph points at (nodes, operand
 * arrays, attribute lists, strings, regions) lives in the graph's arena and
 * is freed by mica_graph_release(). Weight bytes are NOT owned: a weight
 * node points into a mapped model file that must outlive the graph.
 */
#ifndef MICA_IR_H
#define MICA_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

#define MICA_MAX_RANK 6  /* tensors and regions */
#define MICA_MAX_ATTRS 4 /* attributes per op */

/* ------------------------------------------------------------------------ */
/* Element types                                                             */

typedef enum mica_dtype {
#define MICA_DTYPE(ID, name, be, bb, summary) MICA_DTYPE_##ID,
#include "dtypes.def"
#undef MICA_DTYPE
    MICA_DTYPE_COUNT
} mica_dtype_t;

/* Spelling in IR text ("f32"), or NULL for an out-of-range value. */
const char *mica_dtype_name(mica_dtype_t t);
/* Parses a spelling; returns MICA_DTYPE_COUNT if unknown. */
mica_dtype_t mica_dtype_from_name(const char *name, size_t len);
/* Elements per storage block and bytes per block. */
int64_t mica_dtype_block_elems(mica_dtype_t t);
int64_t mica_dtype_block_bytes(mica_dtype_t t);
/* True for f32/f16/bf16. */
bool mica_dtype_is_float(mica_dtype_t t);
/* True for the GGUF block formats (q4_0 ... q6_k). */
bool mica_dtype_is_block_quant(mica_dtype_t t);
/* Bytes of one row of n elements; 0 if n is not a multiple of the block. */
int64_t mica_dtype_row_bytes(mica_dtype_t t, int64_t n);

/* ------------------------------------------------------------------------ */
/* Tensor types                                                              */

typedef enum mica_layout_kind {
    MICA_LAYOUT_ROW_MAJOR = 0, /* contiguous, last dim fastest */
    MICA_LAYOUT_PACKED = 1,    /* weights packed [h/hp, l/lp, hp, lp] */
} mica_layout_kind_t;

/* Where two u4 elements of a tiled type sit in one byte (ir/layout_index.h). */
typedef enum mica_layout_nibbles {
    MICA_LAYOUT_NIBBLES_NONE = 0,   /* not u4, or not tiled */
    MICA_LAYOUT_NIBBLES_HALVES = 1, /* byte i of a tile: element i low, i + hp*lp/2 high */
} mica_layout_nibbles_t;

/* A tensor's physical order. PACKED with pad_n == 0 is the generic form
 * (tile sizes only, element order not defined: nothing reads it); with
 * pad_n > 0 it is the tiled order of ir/layout_index.h, which spells it out. */
typedef struct mica_layout {
    mica_layout_kind_t kind;
    int32_t ep, hp, lp; /* tile sizes when kind == PACKED, else 0 */
    int64_t pad_n, pad_k; /* tiled: N rounded up to hp, K up to lp (elements); else 0 */
    mica_layout_nibbles_t nibbles; /* tiled u4: HALVES; else NONE */
} mica_layout_t;

/* The type of a value. Shapes are outermost-first; a row-major tensor has
 * strides derived from the shape (mica_type_strides). */
typedef struct mica_type {
    mica_dtype_t dtype;
    int32_t rank;                  /* 0 .. MICA_MAX_RANK; 0 = scalar */
    int64_t shape[MICA_MAX_RANK];  /* each >= 1 */
    mica_layout_t layout;
} mica_type_t;

/* Number of elements (product of the shape; 1 for a scalar). */
int64_t mica_type_numel(const mica_type_t *t);
/* Row-major element strides of t into out_strides[0 .. rank-1]. */
void mica_type_strides(const mica_type_t *t, int64_t *out_strides);
/* Equal dtype, rank, shape and layout. */
bool mica_type_equal(const mica_type_t *a, const mica_type_t *b);
/* Convenience constructor of a row-major type. */
mica_type_t mica_type_make(mica_dtype_t dtype, int32_t rank, const int64_t *shape);

/* ------------------------------------------------------------------------ */
/* Views and regions (region-based geometric computation)                    */

/* A strided window: element offset plus one stride per dim (in elements,
 * each >= 0). The sizes come from whoever holds the view. */
typedef struct mica_view {
    int64_t offset;
    int64_t stride[MICA_MAX_RANK];
} mica_view_t;

/* One copy rectangle of a raster op: for every index i in [0, size),
 *   y[dst.offset + sum_d i_d * dst.stride[d]] =
 *       in[input][src.offset + sum_d i_d * src.stride[d]]
 * When index_input >= 0 (a gather region) the source coordinate along dim
 * index_dim is not i_d but ids[i_d], read from the i32 operand index_input
 * (flat, contiguous):
 *   src address = src.offset + sum_{d != index_dim} i_d * src.stride[d]
 *                             + ids[i_index_dim] * src.stride[index_dim]
 * Addresses are flat element offsets into the row-major operand / output.
 * The regions of one raster write disjoint elements of y; elements no
 * region writes are zero. */
typedef struct mica_region {
    int32_t input;       /* operand index of the source */
    int32_t index_input; /* operand index of i32 ids, or -1 */
    int32_t index_dim;   /* dim read through ids (when index_input >= 0) */
    int32_t rank;        /* 1 .. MICA_MAX_RANK */
    int64_t size[MICA_MAX_RANK];
    mica_view_t src;
    mica_view_t dst;
} mica_region_t;

/* ------------------------------------------------------------------------ */
/* Ops                                                                       */

typedef enum mica_op {
#define MICA_OP(ID, name, cat, nin, attrs, strided, summary) MICA_OP_##ID,
#include "ops.def"
#undef MICA_OP
    MICA_OP_COUNT
} mica_op_t;

typedef enum mica_attr_kind {
    MICA_ATTR_INT = 'i',
    MICA_ATTR_FLOAT = 'f',
    MICA_ATTR_STRING = 's',
    MICA_ATTR_INTS = 'I',
    MICA_ATTR_REGIONS = 'R',
} mica_attr_kind_t;

/* What an op is for (ops.def's category column). */
typedef enum mica_op_category {
    MICA_OP_CATEGORY_BOUNDARY = 0, /* graph interface: input, weight, output, state */
    MICA_OP_CATEGORY_COMPUTE = 1,  /* computes a new value from its operands */
    MICA_OP_CATEGORY_STATE = 2,    /* reads or writes a persistent tensor in place */
    MICA_OP_CATEGORY_MOVEMENT = 3, /* data movement (raster after the geometry pass) */
} mica_op_category_t;

/* Static facts about one op, from ops.def. */
typedef struct mica_op_info {
    const char *name;
    mica_op_category_t category;
    int32_t n_inputs; /* -1 = one or more */
    int32_t n_attrs;
    const char *attr_names[MICA_MAX_ATTRS];
    mica_attr_kind_t attr_kinds[MICA_MAX_ATTRS];
    uint32_t strided_mask; /* operands readable through a view */
    const char *summary;
} mica_op_info_t;

/* Table entry for op (never NULL for op < MICA_OP_COUNT). */
const mica_op_info_t *mica_op_info(mica_op_t op);
/* Parses a spelling; returns MICA_OP_COUNT if unknown. */
mica_op_t mica_op_from_name(const char *name, size_t len);
/* True for reshape/transpose/slice/concat/broadcast/gather. */
bool mica_op_is_data_movement(mica_op_t op);

/* One attribute value; which member is live follows the op's spec. */
typedef struct mica_attr {
    int64_t i;                     /* kind i */
    double f;                      /* kind f */
    const char *s;                 /* kind s (arena, NUL-terminated) */
    int32_t n;                     /* kind I: count */
    const int64_t *v;              /* kind I: values (arena) */
} mica_attr_t;

/* ------------------------------------------------------------------------ */
/* Nodes and graphs                                                          */

/* An operand: a value, optionally read through a strided view. A view is
 * set only by fold-regions, on operands the op marks as strided: the op
 * then sees a tensor of shape view_shape whose element i is
 * value[view.offset + sum_d i_d * view.stride[d]]. */
typedef struct mica_operand {
    int32_t value; /* node id */
    bool has_view;
    int32_t view_rank;
    int64_t view_shape[MICA_MAX_RANK];
    mica_view_t view;
} mica_operand_t;

#define MICA_MAX_PARTS 16 /* cores one op is split across */

/* How an op's work is split across cores (the schedule pass). */
typedef enum mica_split_axis {
    MICA_SPLIT_NONE = 0, /* not split: one core runs it */
    MICA_SPLIT_ROWS = 1, /* along the sequence (rows of the output) */
    MICA_SPLIT_COLS = 2, /* along output channels (the last dim) */
} mica_split_axis_t;

/* What the memplan and schedule passes decided for one node; printed and
 * parsed as annotations (see ir/print.c). All zero when not decided. */
typedef struct mica_node_sched {
    bool has_mem;        /* memplan gave the value arena memory */
    int64_t mem_offset;  /* bytes from the arena start, MICA_MEMPLAN_ALIGN-aligned */
    mica_split_axis_t split_axis;
    int32_t n_parts;               /* 0 when not scheduled */
    int64_t parts[MICA_MAX_PARTS]; /* items (rows or channels) per core, in the
                                      target's core order, summing to the axis size */
    bool has_cost;
    int64_t bytes_read;    /* operands and weights, bytes */
    int64_t bytes_written; /* the result, bytes */
    int64_t int_ops;       /* integer multiply-adds counted as 2 ops */
    int64_t float_ops;     /* float operations */
    int64_t time_ns;       /* roofline time on the target: max(bytes / bandwidth,
                              ops / peak) of the slowest part, nanoseconds */
} mica_node_sched_t;

typedef struct mica_node {
    int32_t id; /* == its index in the graph */
    mica_op_t op;
    mica_type_t type; /* of the value it defines */
    int32_t n_inputs;
    mica_operand_t *inputs; /* arena */
    mica_attr_t attrs[MICA_MAX_ATTRS];
    int32_t n_regions;      /* raster only */
    mica_region_t *regions; /* arena */
    const void *data;       /* weight only: bytes in the model file, not owned */
    uint64_t nbytes;        /* weight only: size of data (0 when not bound) */
    /* Annotations that survive passes. origin is the id, at import, of the
     * node this one derives from (== id at import; a rewrite keeps it when
     * it copies or replaces a node, and nodes a pass makes take the origin
     * of the node they replace), so a later pass or a person can tie a node
     * back to the model. flags and note are what a pass decided about the
     * node, for later passes and the dump: flags a bit set (bits are
     * assigned by the passes that set them; 0 = none), note a short text
     * such as "fused: rms_norm" (arena string, or NULL). */
    int32_t origin;
    uint32_t flags;
    const char *note;
    mica_node_sched_t sched; /* memplan and schedule decisions (zero: none) */
} mica_node_t;

typedef struct mica_arena mica_arena_t;

typedef struct mica_graph {
    mica_arena_t *arena;
    int32_t n_nodes;
    int32_t cap_nodes;
    mica_node_t **nodes; /* nodes[i]->id == i; topological order */
    mica_diag_t error;   /* first builder error (sticky), code 0 if none */
    struct mica_const_store *consts; /* a reference to the store the weights made by
                                        passes point into, or NULL (ir/const_store.h);
                                        released with the graph, carried by rewrites */
} mica_graph_t;

/* Arena: bump allocator; everything is freed together. */
mica_status_t mica_arena_create(mica_arena_t **out_arena);
void mica_arena_release(mica_arena_t *a);
/* 16-byte aligned, zeroed; NULL on overflow or out of memory. */
void *mica_arena_alloc(mica_arena_t *a, size_t bytes);
/* Copies a string (len bytes, NUL added) into the arena. */
char *mica_arena_strndup(mica_arena_t *a, const char *s, size_t len);

/* Creates an empty graph (owned by the caller: mica_graph_release). */
mica_status_t mica_graph_create(mica_graph_t **out_graph);
/* Frees the graph and its arena; NULL is fine. */
void mica_graph_release(mica_graph_t *g);

/* Appends a copy of *n (id ignored) and returns its id, or -1 on error.
 * Operands, strings, lists, regions and the note are copied into g's
 * arena; flags are kept and origin is set to the new id (an appended node
 * is its own origin; the parser and ir/rewrite.h set it afterwards). If
 * infer is true the output type is computed from the operands and
 * attributes (n->type is ignored); otherwise n->type is kept as given.
 * Any error (bad operand id, shape mismatch, ...) is recorded in g->error
 * (the first one sticks) and -1 is returned; an operand id of -1 fails
 * quietly, so a chain of builder calls can be checked once at the end. */
int32_t mica_graph_append(mica_graph_t *g, const mica_node_t *n, bool infer);

/* Index of attribute `name` in op's spec, or -1 (for the text parser;
 * code addresses attributes through op_attrs.h, below). */
int32_t mica_op_attr_index(mica_op_t op, const char *name);
/* Attribute accessors by name; abort() if the op has no such attribute
 * (a programming error, not bad input). Slow: for tests and tools only. */
int64_t mica_node_attr_i(const mica_node_t *n, const char *name);
double mica_node_attr_f(const mica_node_t *n, const char *name);
const char *mica_node_attr_s(const mica_node_t *n, const char *name);
const int64_t *mica_node_attr_ints(const mica_node_t *n, const char *name, int32_t *out_count);

/* The NAME attribute of a boundary node (input, weight, output, state). */
const char *mica_node_name(const mica_node_t *n);

/* Attribute indices MICA_ATTR_<OP>_<NAME> and typed accessors
 * mica_attr_<op>_<name>(n), generated from ops.def by codegen/gen_ops.py. */
#include "op_attrs.h"

/* Node by id, or NULL when out of range. */
mica_node_t *mica_graph_node(const mica_graph_t *g, int32_t id);
/* Same value read the same way (no view, or the same view). */
bool mica_operand_equal(const mica_operand_t *a, const mica_operand_t *b);
/* The type an operand presents to its op: the view shape when it has a
 * view, else the value's type. */
mica_type_t mica_operand_type(const mica_graph_t *g, const mica_operand_t *o);

/* ------------------------------------------------------------------------ */
/* Builder helpers: one call per op, output type inferred. They return the
 * new value id or -1 (see mica_graph_append).                               */

int32_t mica_build_input(mica_graph_t *g, const char *name, mica_type_t type);
int32_t mica_build_weight(mica_graph_t *g, const char *name, mica_type_t type,
                          const void *data, uint64_t nbytes);
int32_t mica_build_output(mica_graph_t *g, const char *name, int32_t x);
/* Persistent tensor NAME (a KV cache [Hkv, C, D]) of the given type. */
int32_t mica_build_state(mica_graph_t *g, const char *name, mica_type_t type);
/* Writes rows x[t] (t < count) into the state `cache` at positions p0 + t;
 * p0 and count are i32 scalars read at run time. Yields the cache. */
int32_t mica_build_kv_store(mica_graph_t *g, int32_t cache, int32_t x, int32_t p0, int32_t count);
/* Causal attention of q [T, Hq, D] over kv_store results k, v [Hkv, C, D]
 * up to position p0 + t for query t < count (later rows are 0). */
int32_t mica_build_attention_kv(mica_graph_t *g, int32_t q, int32_t k, int32_t v, int32_t p0,
                                int32_t count, double scale);
int32_t mica_build_unary(mica_graph_t *g, mica_op_t op, int32_t x); /* softmax, silu, gelu */
int32_t mica_build_binary(mica_graph_t *g, mica_op_t op, int32_t a, int32_t b); /* add, mul, matmul, embedding */
int32_t mica_build_scale(mica_graph_t *g, int32_t x, double s);
int32_t mica_build_convert(mica_graph_t *g, int32_t x, mica_dtype_t to);
int32_t mica_build_rms_norm(mica_graph_t *g, int32_t x, int32_t w, double eps);
int32_t mica_build_rope(mica_graph_t *g, int32_t x, int32_t pos, int64_t mode, int64_t dims,
                        double theta, double scale);
int32_t mica_build_attention(mica_graph_t *g, int32_t q, int32_t k, int32_t v, double scale);
int32_t mica_build_reshape(mica_graph_t *g, int32_t x, int32_t rank, const int64_t *shape);
int32_t mica_build_transpose(mica_graph_t *g, int32_t x, const int64_t *perm);
int32_t mica_build_slice(mica_graph_t *g, int32_t x, const int64_t *starts, const int64_t *ends,
                         const int64_t *steps);
int32_t mica_build_concat(mica_graph_t *g, int32_t n, const int32_t *xs, int64_t axis);
int32_t mica_build_broadcast(mica_graph_t *g, int32_t x, int32_t rank, const int64_t *shape);
int32_t mica_build_gather(mica_graph_t *g, int32_t x, int32_t ids, int64_t axis);
/* Raster over operands xs producing `type` (row-major) from the regions. */
int32_t mica_build_raster(mica_graph_t *g, int32_t n, const int32_t *xs, mica_type_t type,
                          int32_t n_regions, const mica_region_t *regions);

/* ------------------------------------------------------------------------ */
/* Checking, text, pictures                                                  */

/* Computes the type node n must have from its operands and attributes
 * (the per-op shape rules). Fails with a message on a mismatch. */
mica_status_t mica_node_infer_type(const mica_graph_t *g, const mica_node_t *n,
                                   mica_type_t *out_type, mica_diag_t *d);

/* Checks every invariant: ids, operand ids defined earlier, arity,
 * attributes, inferred type == stored type, regions inside their tensors
 * and (for small rasters) disjoint, views inside their values. Messages
 * name the value ("%12: ..."). */
mica_status_t mica_graph_verify(const mica_graph_t *g, mica_diag_t *d);

/* Writes the graph as text: a header line, then one node per line,
 *   %N = opname(%a, %b) {attr=value, ...} : dtype[d0,d1]
 * followed by " !{origin=O, flags=0xF, note="..."}" with only the
 * annotations that differ from the defaults (origin == N, no flags, no
 * note), and nothing when none does.
 * The output parses back (mica_graph_parse) to a graph that prints the same
 * bytes. Returns a malloc'd NUL-terminated string (caller frees) or NULL. */
char *mica_graph_print(const mica_graph_t *g);

/* Parses IR text into a new graph (caller releases). Errors name the place
 * as "LINE:COL: what is wrong". The result is verified. */
mica_status_t mica_graph_parse(const char *text, size_t len, mica_graph_t **out_graph,
                               mica_diag_t *d);

/* Graphviz DOT of the graph; malloc'd string (caller frees) or NULL. */
char *mica_graph_dot(const mica_graph_t *g);

/* Removes nodes no output depends on and renumbers the rest (order kept;
 * inputs and outputs always stay; origins, flags and notes are kept).
 * Replaces *g with the new graph (the old one is released). */
mica_status_t mica_graph_prune(mica_graph_t **g, mica_diag_t *d);

#endif
