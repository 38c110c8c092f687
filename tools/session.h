/* What `mica run`, `chat`, `tokenize` and `perplexity` share: a model
 * opened for generation with its tokenizer, and the generation loop. The
 * model is a GGUF on the per-step reference path, or a compiled artifact
 * directory whose static program runs on the ref backend. */
#ifndef MICA_TOOLS_SESSION_H
#define MICA_TOOLS_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "artifact.h"
#include "ref_model.h"
#include "ref_program.h"
#include "sampler.h"
#include "tokenizer.h"

typedef struct mica_cli_session {
    mica_ref_model_t *model;       /* a GGUF, or NULL */
    mica_artifact_t *artifact;     /* an artifact, or NULL */
    mica_ref_program_t *program;   /* its program on the ref backend */
    const mica_gguf_t *meta;       /* where the tokenizer and chat template are */
    mica_tokenizer_t *tok;
    int32_t n_vocab;
    float *logits; /* [n_vocab] last row */
} mica_cli_session_t;

/* Opens path (a GGUF model or an artifact directory) and its tokenizer.
 * `after` as in mica_ref_model_open (GGUF only: an artifact is already
 * compiled). On failure d names the problem (not the file). */
mica_status_t mica_cli_session_open(mica_cli_session_t *s, const char *path, const char *after,
                                    bool need_tokenizer, mica_diag_t *d);
void mica_cli_session_close(mica_cli_session_t *s);

/* Runs n tokens after what is cached (logits as mica_ref_model_eval). */
mica_status_t mica_cli_session_eval(mica_cli_session_t *s, const int32_t *tokens, int32_t n,
                                    bool all_logits, float *out_logits, mica_diag_t *d);
/* Tokens cached, and emptying the cache. */
int64_t mica_cli_session_n_past(const mica_cli_session_t *s);
void mica_cli_session_reset(mica_cli_session_t *s);

/* Tokenizes text (flags as mica_tokenizer_encode) into a malloc'd array. */
mica_status_t mica_cli_tokenize(const mica_cli_session_t *s, const char *text, size_t len,
                                uint32_t flags, int32_t **out_ids, size_t *out_n, mica_diag_t *d);

/* Statistics of one generate call. */
typedef struct mica_cli_timing {
    int64_t n_prompt, n_gen;
    double t_prompt, t_gen; /* seconds */
    bool stopped_at_eog;    /* an end-of-generation token ended it */
} mica_cli_timing_t;

/* Feeds prompt[0..n) (after what is cached) and then samples up to n_gen
 * tokens, streaming their text to out, stopping at an end-of-generation
 * token (neither printed nor cached) unless ignore_eos. With feed_last the
 * last printed token is also run, so the cache holds everything printed
 * (a chat goes on from there). The text also goes to `copy` if not NULL. */
mica_status_t mica_cli_generate(mica_cli_session_t *s, const int32_t *prompt, size_t n,
                                int32_t n_gen, mica_sampler_t *sampler, bool ignore_eos,
                                bool feed_last, FILE *out, FILE *copy, mica_cli_timing_t *timing,
                                mica_diag_t *d);

/* Seconds on a monotonic clock. */
double mica_cli_now(void);

#endif
