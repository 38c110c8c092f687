/* A GGUF model run on the reference backend, one step at a time, with a
 * float32 KV cache: the slow, exact path that every compiled path is
 * checked against (`mica run MODEL.gguf`).
 *
 * Each step builds the IR of that step (ir/model.h) for the current cache
 * length, optionally runs the compiler pipeline on it, and interprets it.
 */
#ifndef MICA_REF_MODEL_H
#define MICA_REF_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"

typedef struct mica_ref_model mica_ref_model_t;

/* Opens and maps the GGUF at path and reads its config. The model owns the
 * mapping (mica_ref_model_close). `after` names the last pipeline pass to
 * run on each step's graph before interpreting it (NULL or "import": none). */
mica_status_t mica_ref_model_open(const char *path, const char *after,
                                  mica_ref_model_t **out_model, mica_diag_t *d);
void mica_ref_model_close(mica_ref_model_t *m);

const mica_model_config_t *mica_ref_model_config(const mica_ref_model_t *m);
const mica_gguf_t *mica_ref_model_gguf(const mica_ref_model_t *m);

/* Tokens already in the KV cache. */
int64_t mica_ref_model_n_past(const mica_ref_model_t *m);
/* Empties the KV cache. */
void mica_ref_model_reset(mica_ref_model_t *m);

/* Runs n tokens at positions n_past .. n_past+n-1 and appends their keys
 * and values to the cache. Writes logits to out_logits: [n][n_vocab] rows
 * when all_logits, else the last token's [n_vocab]. Fails (cache left as
 * it was) on ids outside the vocabulary or a context past the model's. */
mica_status_t mica_ref_model_eval(mica_ref_model_t *m, const int32_t *tokens, int32_t n,
                                  bool all_logits, float *out_logits, mica_diag_t *d);

#endif
