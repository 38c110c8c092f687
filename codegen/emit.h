/* The per-model C emitter and the build of the model object.
 *
 * mica_emit_model_c writes model.c for a scheduled program: the prefill and
 * decode graphs as straight-line calls of generated kernels (codegen/
 * gen_kernels.py) with shapes, arena and weight offsets and the plan's
 * thread splits baked in, and the entry table of backends/cpu/mica_abi.h.
 * mica_emit_build writes the kernel sources beside it and builds model.so
 * with the target's C compiler: position independent, -nostdlib, one
 * exported symbol, no DT_NEEDED.
 */
#ifndef MICA_EMIT_H
#define MICA_EMIT_H

#include <stdint.h>
#include <stdio.h>

#include "program.h"
#include "target.h"

/* Where one weight lives in weights.bin. */
typedef struct mica_emit_weight {
    const char *name;
    uint64_t offset;
} mica_emit_weight_t;

typedef struct mica_emit_request {
    const mica_program_t *program; /* after the whole pipeline (memplan, schedule) */
    const mica_target_t *target;
    const mica_emit_weight_t *weights;
    int64_t n_weights;
    uint64_t weights_bytes;    /* size of weights.bin */
    uint64_t weights_checksum; /* its FNV-1a 64, as in the manifest */
    const char *model_name;    /* for the banner */
    const char *quant;
} mica_emit_request_t;

/* The kernel ISA (codegen/kernels/isa.py name) for target t's tile, or
 * MICA_ERR_UNSUPPORTED for a target without CPU kernels (opencl). */
mica_status_t mica_emit_kernel_isa(const mica_target_t *t, const char **out_isa, mica_diag_t *d);

/* Bytes of weights graph g has that its kernels never read: the mins of
 * quantized matmuls whose source was symmetric (Q4_0, Q8_0), for which
 * model.c passes the scales as the mins. memory.weights minus this is what
 * one run of g reads. */
uint64_t mica_emit_unread_bytes(const mica_graph_t *g);

/* Writes model.c for req to out. Ops or operand layouts the kernels do not
 * cover fail with MICA_ERR_UNSUPPORTED naming the op. */
mica_status_t mica_emit_model_c(const mica_emit_request_t *req, FILE *out, mica_diag_t *d);

/* Writes mica_abi.h, mica_kernels.h and kernels_<isa>.c into dir (beside
 * model.c), then runs the target's compiler to build dir/model.so; the
 * compiler's output goes to dir/build.log. Fails with MICA_ERR_IO naming
 * the compiler and the first line of its complaint. */
mica_status_t mica_emit_build(const char *dir, const mica_target_t *t, mica_diag_t *d);

#endif
