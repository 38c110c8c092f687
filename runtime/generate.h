/* The generation loop, over an abstract model: feed a prompt, then sample a
 * token from the last logits, stream its text, run it, and so on until a
 * count, an end-of-generation token or the caller says stop.
 *
 * The model is one callback, "run these tokens after what you have cached
 * and give me the last row of logits", so the same loop drives the
 * reference path on the host (tools/session.c) and the compiled model on
 * the device (runtime/mica.c). The generator allocates one buffer at init
 * (a token's bytes) and nothing per token.
 *
 * A token that was sampled and handed to the caller but not yet run (the
 * last one of a generate call) is kept as pending: the next feed or
 * generate runs it first, so the model's cache ends up holding exactly the
 * text that was printed. An end-of-generation token is neither printed nor
 * kept.
 */
#ifndef MICA_GENERATE_H
#define MICA_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "sampler.h"
#include "tokenizer.h"

/* Runs tokens[0..n) (n >= 1) after what the model has cached and points
 * *out_logits at the last token's logits, n_vocab floats owned by the
 * model and valid until its next call. On failure the cache is as it was. */
typedef mica_status_t (*mica_generate_eval_fn)(void *ctx, const int32_t *tokens, int32_t n,
                                               const float **out_logits, mica_diag_t *d);

/* Receives the text of each generated token as it is decoded: piece[0..len)
 * (whole UTF-8 characters; len may be 0 when a character is still
 * incomplete or the token prints nothing), borrowed for the call. At the end
 * of a generate call any held-back bytes come with token MICA_TOKEN_NULL.
 * Returns nonzero to stop after this token. */
typedef int (*mica_generate_piece_fn)(const char *piece, size_t len, int32_t token, void *user);

/* What one generate call did. */
typedef struct mica_generate_stats {
    int64_t n_gen;        /* tokens handed to the piece callback */
    double t_gen;         /* seconds in the call */
    bool stopped_at_eog;  /* an end-of-generation token ended it */
    bool stopped_by_user; /* the piece callback asked to stop */
} mica_generate_stats_t;

/* Caller-owned state of the loop. Fields are private to generate.c. */
typedef struct mica_generator {
    mica_generate_eval_fn eval;
    void *eval_ctx;
    const mica_tokenizer_t *tok; /* borrowed */
    mica_sampler_t *sampler;     /* borrowed */
    char *buf;                   /* owned: one token's bytes */
    size_t cap;
    const float *logits; /* the model's last row; NULL when nothing was run yet */
    int32_t pending;     /* printed but not run, or MICA_TOKEN_NULL */
} mica_generator_t;

/* Sets g up over a tokenizer, a sampler (both borrowed: they must outlive
 * g) and the model's eval callback. Fails only when out of memory. */
mica_status_t mica_generator_init(mica_generator_t *g, const mica_tokenizer_t *tok,
                                  mica_sampler_t *sampler, mica_generate_eval_fn eval,
                                  void *eval_ctx, mica_diag_t *d);
/* Frees the buffer; g may be initialised again. */
void mica_generator_deinit(mica_generator_t *g);

/* Forgets the pending token and the logits (the caller resets the model's
 * cache and the sampler). */
void mica_generator_reset(mica_generator_t *g);

/* Forgets the pending token and continues from logits (a row the model
 * owns, valid until its next call): for a caller that ran the model itself
 * (all rows of a prompt for a tool, say). */
void mica_generator_continue_from(mica_generator_t *g, const float *logits);

/* Runs the pending token, then tokens[0..n) in one eval call, recording
 * them as recent for the sampler's repetition penalty. n == 0 runs only the
 * pending token. */
mica_status_t mica_generator_feed(mica_generator_t *g, const int32_t *tokens, size_t n,
                                  mica_diag_t *d);

/* mica_generator_run flags. */
enum {
    MICA_GENERATE_IGNORE_EOS = 1u << 0, /* end-of-generation tokens do not stop it */
};

/* Samples up to n_gen tokens (after running the pending one), handing each
 * one's text to piece(…, user) and running it, except that the last one is
 * left pending. Fails with MICA_ERR_INVALID when nothing was fed yet, or
 * with the eval or piece writer's status. stats may be NULL. */
mica_status_t mica_generator_run(mica_generator_t *g, int32_t n_gen, uint32_t flags,
                                 mica_generate_piece_fn piece, void *user,
                                 mica_generate_stats_t *stats, mica_diag_t *d);

/* The pending token, or MICA_TOKEN_NULL. */
int32_t mica_generator_pending(const mica_generator_t *g);

/* Seconds on a monotonic clock. */
double mica_generate_now(void);

#endif
