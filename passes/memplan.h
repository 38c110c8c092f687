/* Static memory planning: one activation arena per graph, every value that
 * needs memory at a fixed byte offset, chosen from value lifetimes so that
 * values alive at the same time never share bytes.
 *
 * What takes arena memory: every value but weights (constant store or the
 * model file), states (persistent, allocated by the runtime) and the values
 * that alias another's memory: kv_store (its state) and output (its
 * operand). Inputs are in the arena: the runtime writes them there before
 * a call; outputs' operands stay alive to the end, where the runtime reads
 * them.
 *
 * Lifetimes are node indices in execution (graph) order: a value is alive
 * from the node that defines it (node 0 for inputs, which the runtime
 * writes before the call) through its last reader. Placement is
 * greedy by size (largest first, at the lowest offset free over its whole
 * lifetime), every offset aligned to MICA_MEMPLAN_ALIGN.
 */
#ifndef MICA_MEMPLAN_H
#define MICA_MEMPLAN_H

#include <stdint.h>

#include "ir.h"
#include "passes.h"

#define MICA_MEMPLAN_ALIGN 64 /* bytes: a cache line, and AVX-512 loads */

/* How big an element is: as the device stores it (f32 4, f16 2, i8 1,
 * i32 4 bytes), or as the ref backend holds every value (4 bytes). */
typedef enum mica_memplan_sizes {
    MICA_MEMPLAN_DEVICE = 0,
    MICA_MEMPLAN_REF = 1,
} mica_memplan_sizes_t;

typedef struct mica_memplan {
    int32_t n_values;    /* == the graph's node count */
    int64_t *offset;     /* [n_values] byte offset in the arena, -1 = no arena memory */
    int64_t *size;       /* [n_values] bytes (0 = no arena memory) */
    int32_t *first;      /* [n_values] node that defines the value */
    int32_t *last;       /* [n_values] last node that needs it (n_nodes for outputs) */
    int64_t arena_bytes; /* size of the arena, a multiple of MICA_MEMPLAN_ALIGN */
} mica_memplan_t;

/* Plans g. The caller owns the plan (mica_memplan_release). Fails on an
 * element type a value cannot be stored in, or out of memory. */
mica_status_t mica_memplan_compute(const mica_graph_t *g, mica_memplan_sizes_t sizes,
                                   mica_memplan_t **out_plan, mica_diag_t *d);

/* The checker, independent of how the plan was made: recomputes every
 * value's size and lifetime from g and proves that offsets are aligned,
 * inside the arena, and that no two values alive at the same node share a
 * byte. Fails naming the first two values that collide. */
mica_status_t mica_memplan_check(const mica_graph_t *g, mica_memplan_sizes_t sizes,
                                 const mica_memplan_t *plan, mica_diag_t *d);

/* Frees the plan; NULL is fine. */
void mica_memplan_release(mica_memplan_t *plan);

/* The `memplan` pass: plans *g for the device, checks the plan and records
 * each value's offset in its node (sched.has_mem, sched.mem_offset), which
 * prints as "mem=OFFSET". The graph itself is not rewritten. */
mica_status_t mica_pass_memplan_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

/* Arena bytes a graph's recorded offsets need (0 before memplan ran). */
int64_t mica_memplan_arena_bytes(const mica_graph_t *g);

#endif
