/* The schedule pass: how each op's work is split across the target's cores,
 * what it costs, and how long the roofline model says it takes.
 *
 * Split. Every op that is not a graph boundary (input, weight, output,
 * state) gets a split of its output (mica_node_sched_t):
 *   - rows (the sequence, all dims but the last) when the output has at
 *     least as many rows as the target has cores (a prefill chunk);
 *   - else, for a matmul-like op (its name contains "matmul": matmul and the
 *     quantized matmuls of later passes) cols: output channels N of its 2-D
 *     weight [N, K], in units of the target tile's hp (8 without a tile);
 *   - attention and attention_kv always split rows of their [T, Hq, D]
 *     output, i.e. (token, head) pairs: for decode (T = 1) that is the heads;
 *   - pure elementwise ops (add, mul, scale, convert, silu, gelu) with few
 *     rows split cols in units of 16 (a 64-byte line of f32);
 *   - none (one part on the fastest core) for ops of fewer than
 *     MICA_SCHEDULE_TINY_ELEMS output elements (matmul-like and attention
 *     ops excepted), for kv_store (a small copy into the cache, whose output
 *     rows are the cache's, not the work's), and for single-row ops that
 *     reduce along the last dim (rms_norm, softmax, rope, ...).
 * Parts come from mica_target_split: proportional to core capacity, in the
 * target's core order (fastest cluster first), up to MICA_MAX_PARTS cores.
 *
 * Cost (mica_schedule_node_cost):
 *   bytes read     each operand at its dtype's stored size (GGUF blocks,
 *                  i8/i4 plus whatever scale operands an op has), as the op
 *                  sees it (a view's shape); an operand named twice counts
 *                  twice. Exceptions: embedding reads only the T table rows
 *                  it gathers; kv_store reads x, p0 and n but not the cache;
 *                  a raster reads the elements its regions copy (plus gather
 *                  ids); attention_kv reads the whole cache, as if it were
 *                  full (the last position of the context: an upper bound).
 *   bytes written  the output; kv_store only the rows it stores.
 *   int / float ops  2 per multiply-add for matmul-like ops (integer when
 *                  the activation operand 0 is i8 or i4, else float) and for
 *                  attention's two products (q.k and p.v over the whole
 *                  cache, plus 5 per score for the softmax). Elementwise work
 *                  counts per output element every arithmetic operation and
 *                  every transcendental function as 1: add, mul, scale,
 *                  convert, embedding (the dequantization) 1; silu 3
 *                  (exp, add, divide); softmax 5 (max, subtract, exp, sum,
 *                  divide); rms_norm 4 (square, sum, scale, times w); rope 4
 *                  (3 for the rotation, 1 for sin/cos per pair); gelu 8.
 *                  Movement ops and kv_store: 0.
 *
 * Time (mica_schedule_time_ns): roofline max(bytes / bandwidth, ops / peak)
 * of the slowest part. Part p runs on core p with its share
 * parts[p] / axis of the ops, at peak = int8_gops x capacity GOP/s for
 * integer ops and a quarter of it for float ops (targets declare no float
 * peak: an int8 dot product does 4 multiply-adds per 32-bit lane where an
 * f32 FMA does 1). DRAM bandwidth is shared: the part moves its share of
 * the bytes at the same share of the chip's bandwidth, so the memory term
 * is bytes_read + bytes_written over the whole chip's bandwidth whatever
 * the split. The GPU of a target is not modelled. Rounded up to whole
 * nanoseconds.
 */
#ifndef MICA_SCHEDULE_H
#define MICA_SCHEDULE_H

#include <stdint.h>

#include "ir.h"
#include "passes.h"
#include "target.h"

/* The target the pass schedules for when the context has none (the
 * default pipeline, the golden tests): a declared one, so that results do
 * not depend on the machine. `mica dump` passes the host (or -t) instead. */
#define MICA_SCHEDULE_DEFAULT_TARGET "x86-avx2"

/* Output elements below which an elementwise op runs on one core. */
#define MICA_SCHEDULE_TINY_ELEMS 4096

/* Fills out's bytes_read, bytes_written, int_ops, float_ops and has_cost
 * for node n of g (see above); other fields are left alone. Boundary ops
 * cost nothing (has_cost stays false). Fails on a dtype without a size. */
mica_status_t mica_schedule_node_cost(const mica_graph_t *g, const mica_node_t *n,
                                      mica_node_sched_t *out, mica_diag_t *d);

/* Chooses n's split on target t (see above) into out's split_axis,
 * n_parts and parts; boundary ops get none (n_parts 0). Fails if the
 * target cannot be split over (no cores). */
mica_status_t mica_schedule_node_split(const mica_graph_t *g, const mica_node_t *n,
                                       const mica_target_t *t, mica_node_sched_t *out,
                                       mica_diag_t *d);

/* Roofline time in nanoseconds (rounded up) of a node whose cost and split
 * are in sc, on t. 0 when sc has no cost. */
int64_t mica_schedule_time_ns(const mica_target_t *t, const mica_node_sched_t *sc);

/* Splits, costs and times every node of g on t, in place (the graph is not
 * rebuilt; memplan's annotations stay). */
mica_status_t mica_schedule_graph(mica_graph_t *g, const mica_target_t *t, mica_diag_t *d);

/* The `schedule` pass: mica_schedule_graph on ctx->target, or on
 * MICA_SCHEDULE_DEFAULT_TARGET when the context has none. */
mica_status_t mica_pass_schedule_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

/* Sum of the predicted times of g's nodes, nanoseconds (0 before the pass). */
int64_t mica_schedule_total_ns(const mica_graph_t *g);

/* What the annotations predict, as IR comment lines ("# schedule: ...",
 * each ending in a newline, so the text still parses after a graph): the
 * total, the time per op kind (largest first) and the slowest nodes, with
 * their shares of the total. With t (may be NULL) it names the target and
 * how much of the time is memory-bound. NULL when g has no cost
 * annotations or out of memory; else malloc'd, the caller frees it. */
char *mica_schedule_summary(const mica_graph_t *g, const mica_target_t *t);

#endif
