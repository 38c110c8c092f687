/* The compiler's pass pipeline: an ordered list of named graph rewrites,
 * and the context every pass runs in.
 *
 * Each pass takes ownership of *g and replaces it with the rewritten graph
 * (releasing the old one), or leaves *g untouched and returns an error
 * (message in ctx->diag). Passes rebuild graphs with ir/rewrite.h, which
 * keeps every node's origin, so a later pass can rely on what an earlier
 * one decided (flags and note on the node).
 * `mica dump --after NAME` runs the pipeline up to and including NAME.
 */
#ifndef MICA_PASSES_H
#define MICA_PASSES_H

#include <stdbool.h>
#include <stdint.h>

#include "const_store.h"
#include "ir.h"
#include "program.h"

/* A compile target (ISA features, cores, caches); defined by the targets
 * module. Passes see it only through the context. */
struct mica_target;

/* What `mica compile` was asked for. Zero / NULL fields mean "choose":
 * mica_compile_options_init writes the defaults. */
typedef struct mica_compile_options {
    const char *quant;      /* "w4a8" (default), "w8a8", "w4a16", "w8a16", "f16", "f32";
                               not owned, must outlive the context */
    int32_t group;          /* quantization group in elements; 0 = per tensor (32 for
                               GGUF Q4_0/Q4_1/Q8_0, else 64) */
    int64_t context;        /* KV cache capacity in tokens; 0 = the model's trained
                               length capped by the memory budget */
    int32_t prefill_chunk;  /* tokens per prefill call; 0 = the target's choice */
    const char *head_quant; /* LM head: "auto" (default: the source's width), "int8" or "int4"; not owned */
} mica_compile_options_t;

/* Writes the defaults into *o. */
void mica_compile_options_init(mica_compile_options_t *o);

/* Everything a pass may read besides the graph. The caller owns the
 * struct; mica_pass_ctx_init / _deinit manage the scratch arena. */
typedef struct mica_pass_ctx {
    const struct mica_target *target; /* not owned; NULL until targets exist */
    mica_compile_options_t options;
    mica_arena_t *scratch; /* owned: per-pass memory, emptied before every pass
                              the pipeline runs; never holds graph nodes */
    mica_diag_t *diag;     /* where a pass writes its error; not owned */
    mica_const_store_t *consts; /* not owned; where passes put the constants they make
                                   (merged and quantized weights); it must outlive the
                                   graphs. NULL (the default): a pass skips rewrites that
                                   need new constant bytes */
} mica_pass_ctx_t;

/* Sets up ctx for target (may be NULL) and *options (NULL = defaults,
 * copied), with a fresh scratch arena; errors go to d. Out of memory is
 * the only failure. */
mica_status_t mica_pass_ctx_init(mica_pass_ctx_t *ctx, const struct mica_target *target,
                                 const mica_compile_options_t *options, mica_diag_t *d);
/* Frees the scratch arena; ctx may then be initialised again. */
void mica_pass_ctx_deinit(mica_pass_ctx_t *ctx);
/* Empties the scratch arena (everything allocated from it is gone). */
mica_status_t mica_pass_ctx_scratch_reset(mica_pass_ctx_t *ctx);

typedef mica_status_t (*mica_pass_fn)(mica_pass_ctx_t *ctx, mica_graph_t **g);

typedef struct mica_pass {
    const char *name;    /* as given to --after */
    mica_pass_fn run;    /* NULL for "import", which happens before the pipeline */
    const char *summary; /* one line */
} mica_pass_t;

/* Number of passes and the i-th in pipeline order. */
int mica_pass_count(void);
const mica_pass_t *mica_pass_at(int i);
/* Pass by name, or NULL. */
const mica_pass_t *mica_pass_find(const char *name);

/* Runs the pipeline on *g from the first pass through `after` (NULL = all)
 * in context ctx, whose diag is set to d. The scratch arena is emptied
 * before each pass. With verify (always in debug builds), mica_graph_verify
 * runs after every pass and a failure names the pass. Unknown names fail
 * listing the known ones (g may then be NULL). */
mica_status_t mica_pipeline_run_ctx(mica_pass_ctx_t *ctx, mica_graph_t **g, const char *after,
                                    bool verify, mica_diag_t *d);

/* Runs the pipeline through `after` on both graphs of program p (prefill,
 * then decode) with ctx->consts = p->consts, so constants a pass makes for
 * prefill live in the program's store and decode reuses them (passes find
 * them by key and tag). On failure the message names the graph; a graph
 * may then be half through the pipeline (release the program). */
mica_status_t mica_pipeline_run_program(mica_pass_ctx_t *ctx, mica_program_t *p,
                                        const char *after, bool verify, mica_diag_t *d);

/* mica_pipeline_run_ctx in a default context (no target, default options). */
mica_status_t mica_pipeline_run(mica_graph_t **g, const char *after, bool verify, mica_diag_t *d);

/* Lowers every data-movement op (reshape, transpose, slice, concat,
 * broadcast, gather) to a raster op whose regions read the op's operands. */
mica_status_t mica_pass_geometry_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

/* Composes chains of rasters into the fewest regions (exact or not at all)
 * and folds single-region rasters into consumers that read strided input. */
mica_status_t mica_pass_fold_regions_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

/* Operator fusion (passes/fuse.h): gate and up merged into one matmul with
 * a swiglu epilogue, and fusion annotations (flags and notes). */
mica_status_t mica_pass_fuse_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

/* The two passes above in a default context, errors in d. */
mica_status_t mica_pass_geometry(mica_graph_t **g, mica_diag_t *d);
mica_status_t mica_pass_fold_regions(mica_graph_t **g, mica_diag_t *d);

#endif
