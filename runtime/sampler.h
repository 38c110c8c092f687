/* Token sampling from a row of logits: greedy, or temperature with top-k,
 * top-p and a repetition penalty, from a seeded generator.
 *
 * The sampler allocates its scratch once at create (n_vocab entries) and
 * nothing per token. Results depend only on the logits, the settings, the
 * seed and the order of calls: the same inputs give the same tokens on any
 * machine and thread count.
 */
#ifndef MICA_SAMPLER_H
#define MICA_SAMPLER_H

#include <stdint.h>

#include "diag.h"

typedef struct mica_sampler_params {
    float temperature;        /* <= 0: greedy (argmax, lowest id on ties) */
    int32_t top_k;            /* <= 0: all tokens */
    float top_p;              /* in (0, 1]; 1 keeps all */
    float repeat_penalty;     /* 1 = off; > 1 discourages recent tokens */
    int32_t repeat_last_n;    /* how many recent tokens the penalty sees */
    uint64_t seed;
    float min_p; /* in [0, 1]: after top-p, drop tokens whose probability is below
                    min_p times the likeliest one's; 0 keeps all */
} mica_sampler_params_t;

/* Defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0 (off), no
 * repetition penalty (repeat_last_n 64), seed 42. */
mica_sampler_params_t mica_sampler_params_default(void);

typedef struct mica_sampler mica_sampler_t;

/* Creates a sampler for n_vocab logits (caller releases). Fails on a bad
 * setting (top_p outside (0, 1], min_p outside [0, 1], penalty <= 0,
 * n_vocab < 1). */
mica_status_t mica_sampler_create(int32_t n_vocab, const mica_sampler_params_t *p,
                                  mica_sampler_t **out_sampler, mica_diag_t *d);
void mica_sampler_release(mica_sampler_t *s);

/* Picks the next token from logits[n_vocab] (not modified) and records it
 * as recent for the repetition penalty. */
int32_t mica_sampler_sample(mica_sampler_t *s, const float *logits);

/* Records a token as recent without sampling (e.g. the prompt). */
void mica_sampler_accept(mica_sampler_t *s, int32_t token);

/* Forgets recent tokens and reseeds (a new conversation). */
void mica_sampler_reset(mica_sampler_t *s);

/* Index of the largest logit, lowest id on ties. */
int32_t mica_sampler_argmax(const float *logits, int32_t n_vocab);

#endif
