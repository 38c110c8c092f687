/* Internals of the reference backend, shared by its source files:
 *   ref.c           the interpreter (binding, operands, liveness, outputs)
 *   ref_compute.c   compute ops (embedding ... attention)
 *   ref_geometry.c  data movement, raster and operand views
 *
 * Every value is numel(type) 4-byte elements, row-major: int32 for i32,
 * float32 for every other dtype (f16/bf16 values rounded to their dtype).
 * Kernels get their operands already materialized (views applied, weights
 * dequantized, except the weight rows of matmul and embedding and the
 * weight operands of qmatmul and wmatmul, which stay bytes) and write
 * the whole output; they report bad data (ids out of range) as a status
 * with a message that the interpreter prefixes with "%N (op)".
 */
#ifndef MICA_REF_INTERNAL_H
#define MICA_REF_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

/* One operand as its op sees it. Exactly one of f / i / bytes is set. */
typedef struct mica_ref_arg {
    mica_type_t type;           /* the operand type (view shape for a view) */
    const float *f;             /* [numel(type)] when the dtype is not i32 */
    const int32_t *i;           /* [numel(type)] when the dtype is i32 */
    const unsigned char *bytes; /* weight storage in type.dtype, row-major,
                                   read row by row (matmul w, embedding table) */
} mica_ref_arg_t;

/* Element data of an f or i operand (NULL for a bytes operand). */
const void *mica_ref_arg_data(const mica_ref_arg_t *a);

/* Row r of a rank-2 operand ([rows, n]) as n float32 values in dst
 * (dequantized when the operand is weight bytes). */
mica_status_t mica_ref_arg_row(const mica_ref_arg_t *a, int64_t r, float *dst, mica_diag_t *d);

/* Advances idx (rank entries) to the next index of `shape` in row-major
 * order; returns false, with idx back at zeros, after the last one. */
bool mica_ref_index_next(int64_t *idx, const int64_t *shape, int32_t rank);

/* Copies the view (offset, strides over shape[rank]) of src into dst
 * ([numel(shape)] elements of 4 bytes). The view must lie inside src. */
void mica_ref_view_copy(const void *src, int32_t rank, const int64_t *shape,
                        const mica_view_t *view, void *dst);

/* Kernels: y is the node's output, [numel(n->type)] elements, any content
 * on entry. args[k] is operand k. */
typedef mica_status_t (*mica_ref_kernel_fn)(const mica_node_t *n, const mica_ref_arg_t *args,
                                             void *y, mica_diag_t *d);

mica_status_t mica_ref_embedding(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d);
mica_status_t mica_ref_matmul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d);
mica_status_t mica_ref_add(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                           mica_diag_t *d);
mica_status_t mica_ref_mul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                           mica_diag_t *d);
mica_status_t mica_ref_scale(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                             mica_diag_t *d);
mica_status_t mica_ref_convert(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d);
mica_status_t mica_ref_rms_norm(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                mica_diag_t *d);
mica_status_t mica_ref_rope(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                            mica_diag_t *d);
mica_status_t mica_ref_softmax(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d);
mica_status_t mica_ref_silu(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                            mica_diag_t *d);
mica_status_t mica_ref_gelu(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                            mica_diag_t *d);
mica_status_t mica_ref_attention(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d);
/* Quantized matmul: the i8 / u4 weight operands and their f16 scales and
 * mins arrive as weight bytes (or values, when not weights). */
mica_status_t mica_ref_act_scale(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d);
mica_status_t mica_ref_act_quant(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d);
mica_status_t mica_ref_qmatmul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d);
mica_status_t mica_ref_wmatmul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d);
/* swiglu: silu rounded to float, times the up half in float (bit for bit
 * what silu then mul compute). */
mica_status_t mica_ref_swiglu(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d);
mica_status_t mica_ref_kv_store(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d);
mica_status_t mica_ref_attention_kv(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                    mica_diag_t *d);

mica_status_t mica_ref_reshape(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d);
mica_status_t mica_ref_transpose(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d);
mica_status_t mica_ref_slice(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                             mica_diag_t *d);
mica_status_t mica_ref_concat(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d);
mica_status_t mica_ref_broadcast(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d);
mica_status_t mica_ref_gather(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d);
mica_status_t mica_ref_raster(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d);

#endif
