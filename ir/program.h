/* A compiled program: the two static graphs of one model that share the
 * KV cache as state.
 *
 *   prefill  up to `chunk` new tokens per call
 *   decode   one new token per call
 *
 * Both come from mica_model_build_static (ir/model.h) with the same cache
 * capacity `n_ctx`, so their state nodes (k_cache.L, v_cache.L) have equal
 * names and types: a runner allocates each state once and binds it to
 * whichever graph runs. Shapes are static; the lengths of a call (tokens
 * already cached, tokens in this call) are the i32 scalar inputs n_past and
 * n_tokens.
 */
#ifndef MICA_PROGRAM_H
#define MICA_PROGRAM_H

#include <stdint.h>

#include "const_store.h"
#include "ir.h"
#include "model.h"

typedef struct mica_program {
    mica_model_config_t cfg;
    int64_t n_ctx;         /* KV cache capacity, tokens */
    int64_t chunk;         /* prefill tokens per call */
    mica_graph_t *prefill; /* owned; tokens i32[chunk] */
    mica_graph_t *decode;  /* owned; tokens i32[1] */
    mica_const_store_t *consts; /* owned; constants passes made (quantized weights), which
                                   weight nodes of both graphs point into: released last */
} mica_program_t;

/* Builds both graphs of the model in f (which must outlive the program:
 * weight nodes point into its mapping) and an empty constant store.
 * 1 <= chunk <= n_ctx. The caller
 * releases the program with mica_program_release. */
mica_status_t mica_program_build(const mica_gguf_t *f, const mica_model_config_t *cfg,
                                 int64_t chunk, int64_t n_ctx, mica_program_t **out_program,
                                 mica_diag_t *d);

/* Frees both graphs, then the constant store, and the program; NULL is fine. */
void mica_program_release(mica_program_t *p);

#endif
