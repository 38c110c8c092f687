/* What `mica run`, `chat`, `tokenize` and `perplexity` share: a model
 * opened for generation with its tokenizer, and the generation loop (the
 * runtime's, runtime/generate.h). The model is a GGUF on the per-step
 * reference path, or a compiled artifact directory: by default its model
 * object through the runtime (runtime/mica.h, what an app on the device
 * runs), with --backend ref its static program on the ref backend. */
#ifndef MICA_TOOLS_SESSION_H
#define MICA_TOOLS_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "artifact.h"
#include "mica.h"
#include "ref_model.h"
#include "ref_program.h"
#include "sampler.h"
#include "tokenizer.h"

/* Which engine runs an artifact. */
typedef enum mica_cli_backend {
    MICA_CLI_BACKEND_AUTO = 0, /* the model object; the ref program when there is none */
    MICA_CLI_BACKEND_CPU = 1,  /* the model object through the runtime */
    MICA_CLI_BACKEND_REF = 2,  /* the artifact's program on the ref backend */
} mica_cli_backend_t;

/* "cpu" / "ref" -> *out; false for anything else. */
bool mica_cli_backend_parse(const char *s, mica_cli_backend_t *out);

/* How to open. */
typedef struct mica_cli_open {
    const char *after;          /* as mica_ref_model_open (GGUF only), or NULL */
    bool need_tokenizer;        /* build the tokenizer (a GGUF or the ref program) */
    mica_cli_backend_t backend; /* for an artifact */
    int32_t threads;            /* for the model object */
} mica_cli_open_t;

typedef struct mica_cli_session {
    mica_ref_model_t *model;     /* a GGUF, or NULL */
    mica_artifact_t *artifact;   /* an artifact on the ref backend, or NULL */
    mica_ref_program_t *program; /* its program on the ref backend */
    mica_model_t *compiled;      /* an artifact's model object, or NULL */
    mica_session_t *session;     /* the runtime session running it */
    int32_t threads;             /* the session's threads (1 on the ref paths) */
    const mica_tokenizer_t *tok; /* owned by tok_owned or by compiled */
    mica_tokenizer_t *tok_owned;
    const char *chat_template; /* tokenizer.chat_template (chat_template_len bytes), or NULL */
    size_t chat_template_len;
    int32_t n_vocab;
    float *logits; /* [n_vocab]: the last row, for callers that want a copy */
} mica_cli_session_t;

/* Opens path (a GGUF model or an artifact directory) and its tokenizer.
 * On failure d names the problem (not the file). */
mica_status_t mica_cli_session_open(mica_cli_session_t *s, const char *path,
                                    const mica_cli_open_t *o, mica_diag_t *d);
void mica_cli_session_close(mica_cli_session_t *s);

/* Runs n tokens after what is cached: out_logits receives every row
 * ([n][n_vocab]) when all_logits, else the last one. */
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
