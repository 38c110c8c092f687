/* The reference backend: plain scalar C that interprets an IR graph, op by
 * op, in float32 with float64 accumulation in reductions. It is the oracle
 * for every other path: obviously correct, not fast.
 *
 * Values of float dtypes are held as float32 (f16/bf16 values rounded to
 * their dtype), i32 values as int32. Weights are read from the bytes their
 * node points at (any dtype of ir/dtypes.def, dequantized on use).
 */
#ifndef MICA_REF_H
#define MICA_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

/* A named tensor: an input to bind or an output produced. `data` holds
 * numel(type) float32 values for float dtypes or int32 values for i32. */
typedef struct mica_ref_tensor {
    const char *name;
    mica_type_t type;
    void *data;
} mica_ref_tensor_t;

typedef struct mica_ref_outputs mica_ref_outputs_t;

/* True if the backend runs op: boundary ops by the interpreter itself,
 * every other op through its entry in the kernel table. */
bool mica_ref_op_supported(mica_op_t op);

/* Runs g. Every input node must be bound by name in `inputs` (types must
 * match; the data is only read during the call). On success *out_outputs
 * holds every output node's value (release with mica_ref_outputs_release).
 * Fails with a message on unbound inputs, ids out of range, weights without
 * data, or an op the backend cannot run. */
mica_status_t mica_ref_execute(const mica_graph_t *g, const mica_ref_tensor_t *inputs,
                               int32_t n_inputs, mica_ref_outputs_t **out_outputs,
                               mica_diag_t *d);

/* The same with persistent state: every state node is bound by name in
 * `states` (same type; data holds numel float32 values, rounded to the
 * state's dtype) and kv_store nodes write into that data in place. */
mica_status_t mica_ref_execute_stateful(const mica_graph_t *g, const mica_ref_tensor_t *inputs,
                                        int32_t n_inputs, const mica_ref_tensor_t *states,
                                        int32_t n_states, mica_ref_outputs_t **out_outputs,
                                        mica_diag_t *d);

/* The same in a planned arena: every node with offsets[id] >= 0 keeps its
 * value (numel 4-byte elements) at arena + offsets[id] bytes, inputs are
 * copied there, and nothing else is allocated for values. The plan must
 * be valid for g in 4-byte elements (passes/memplan.h, MICA_MEMPLAN_REF). */
mica_status_t mica_ref_execute_planned(const mica_graph_t *g, const mica_ref_tensor_t *inputs,
                                       int32_t n_inputs, const mica_ref_tensor_t *states,
                                       int32_t n_states, const int64_t *offsets, void *arena,
                                       mica_ref_outputs_t **out_outputs, mica_diag_t *d);

int32_t mica_ref_outputs_count(const mica_ref_outputs_t *o);
/* Output by index (graph order) or by name (NULL if absent). Owned by o. */
const mica_ref_tensor_t *mica_ref_outputs_at(const mica_ref_outputs_t *o, int32_t i);
const mica_ref_tensor_t *mica_ref_outputs_find(const mica_ref_outputs_t *o, const char *name);
void mica_ref_outputs_release(mica_ref_outputs_t *o);

#endif
