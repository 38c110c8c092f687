/* Token sampling from a row of logits: greedy, or a chain of filters and a
 * draw from a seeded generator.
 *
 * The chain is llama.cpp's default order, so its option names mean the same
 * here: penalties over the last repeat_last_n tokens, then top-k, then top-p
 * and min-p on the probabilities at temperature 1, then the temperature on
 * what is left, then the draw. Temperature <= 0 is greedy: the argmax of the
 * penalised logits.
 *
 * The sampler allocates its scratch once at create (a few arrays of n_vocab
 * entries) and nothing per token. Results depend only on the logits, the
 * settings, the seed and the order of calls: the same inputs give the same
 * tokens on any machine and thread count.
 */
#ifndef MICA_SAMPLER_H
#define MICA_SAMPLER_H

#include <stdint.h>

#include "diag.h"

typedef struct mica_sampler_params {
    float temperature;      /* <= 0: greedy (argmax, lowest id on ties) */
    int32_t top_k;          /* <= 0: all tokens */
    float top_p;            /* in (0, 1]: keep the likeliest tokens until their
                               probabilities sum to top_p; 1 keeps all */
    float repeat_penalty;   /* 1 = off; > 1 discourages recent tokens: a recent
                               token's logit is divided by it when positive,
                               multiplied when not */
    int32_t repeat_last_n;  /* how many recent tokens the penalties see; 0 = none */
    uint64_t seed;
    float min_p;            /* in [0, 1]: drop tokens whose probability is below
                               min_p times the likeliest one's; 0 keeps all */
    float presence_penalty;  /* subtracted once from a token seen in the window; 0 = off */
    float frequency_penalty; /* subtracted per time a token was seen there; 0 = off */
} mica_sampler_params_t;

/* Defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0 (off), no
 * penalties (repeat 1, presence 0, frequency 0; repeat_last_n 64), seed 42. */
mica_sampler_params_t mica_sampler_params_default(void);

typedef struct mica_sampler mica_sampler_t;

/* Creates a sampler for n_vocab logits (caller releases). Fails with
 * MICA_ERR_INVALID on a bad setting (temperature not a number, top_p
 * outside (0, 1], min_p outside [0, 1], repeat penalty <= 0, presence or
 * frequency penalty not finite, repeat_last_n outside [0, 2^20], n_vocab
 * < 1), naming the setting. */
mica_status_t mica_sampler_create(int32_t n_vocab, const mica_sampler_params_t *p,
                                  mica_sampler_t **out_sampler, mica_diag_t *d);
void mica_sampler_release(mica_sampler_t *s);

/* Picks the next token from logits[n_vocab] (not modified) and records it
 * as recent for the penalties. */
int32_t mica_sampler_sample(mica_sampler_t *s, const float *logits);

/* Runs the chain on logits[n_vocab] without drawing or recording anything
 * and returns how many candidates are kept (>= 1). *out_ids and *out_probs
 * (either may be NULL) receive the kept tokens, likeliest first (lowest id
 * on ties), and their probabilities at the temperature, summing to 1; both
 * point into the sampler's scratch, valid until its next call. Greedy keeps
 * one token with probability 1. */
int32_t mica_sampler_candidates(mica_sampler_t *s, const float *logits, const int32_t **out_ids,
                                const double **out_probs);

/* Writes to out[n_vocab] the logits after the penalties of the recent
 * tokens (out may not alias logits). */
void mica_sampler_penalize(const mica_sampler_t *s, const float *logits, float *out);

/* Records a token as recent without sampling (e.g. the prompt). Ids
 * outside the vocabulary are ignored. */
void mica_sampler_accept(mica_sampler_t *s, int32_t token);

/* Forgets recent tokens and reseeds (a new conversation). */
void mica_sampler_reset(mica_sampler_t *s);

/* Index of the largest logit, lowest id on ties. */
int32_t mica_sampler_argmax(const float *logits, int32_t n_vocab);

#endif
