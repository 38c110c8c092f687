/* The compiler's pass pipeline: an ordered list of named graph rewrites.
 *
 * Each pass takes ownership of *g and replaces it with the rewritten graph
 * (releasing the old one), or leaves *g untouched and returns an error.
 * `mica dump --after NAME` runs the pipeline up to and including NAME.
 */
#ifndef MICA_PASSES_H
#define MICA_PASSES_H

#include <stdbool.h>

#include "ir.h"

typedef mica_status_t (*mica_pass_fn)(mica_graph_t **g, mica_diag_t *d);

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

/* Runs the pipeline on *g from the first pass through `after` (NULL = all).
 * With verify (always in debug builds), mica_graph_verify runs after every
 * pass and a failure names the pass. Unknown names fail listing the known ones. */
mica_status_t mica_pipeline_run(mica_graph_t **g, const char *after, bool verify, mica_diag_t *d);

/* Lowers every data-movement op (reshape, transpose, slice, concat,
 * broadcast, gather) to a raster op whose regions read the op's operands. */
mica_status_t mica_pass_geometry(mica_graph_t **g, mica_diag_t *d);

/* Composes chains of rasters into the fewest regions (exact or not at all)
 * and folds single-region rasters into consumers that read strided input. */
mica_status_t mica_pass_fold_regions(mica_graph_t **g, mica_diag_t *d);

#endif
