#include "sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float logit;
    int32_t id;
} cand_t;

struct mica_sampler {
    mica_sampler_params_t p;
    int32_t n_vocab;
    uint64_t rng;
    cand_t *cands;   /* [n_vocab] scratch */
    double *probs;   /* [n_vocab] scratch: the kept candidates' probabilities */
    int32_t *ids;    /* [n_vocab] scratch: the kept candidates' ids */
    int32_t *count;  /* [n_vocab]: times each token occurs in the ring */
    int32_t *recent; /* ring of the last repeat_last_n tokens */
    int32_t n_recent, recent_head;
};

mica_sampler_params_t mica_sampler_params_default(void)
{
    return (mica_sampler_params_t){.temperature = 0.8f,
                                   .top_k = 40,
                                   .top_p = 0.95f,
                                   .repeat_penalty = 1.0f,
                                   .repeat_last_n = 64,
                                   .seed = 42,
                                   .min_p = 0.0f,
                                   .presence_penalty = 0.0f,
                                   .frequency_penalty = 0.0f};
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

mica_status_t mica_sampler_create(int32_t n_vocab, const mica_sampler_params_t *p,
                                  mica_sampler_t **out_sampler, mica_diag_t *d)
{
    if (n_vocab < 1)
        return mica_diag_set(d, MICA_ERR_INVALID, "sampler: vocabulary of %d tokens", n_vocab);
    if (!(p->temperature == p->temperature))
        return mica_diag_set(d, MICA_ERR_INVALID, "temperature is not a number");
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return mica_diag_set(d, MICA_ERR_INVALID, "top-p must be in (0, 1], got %g", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return mica_diag_set(d, MICA_ERR_INVALID, "min-p must be in [0, 1], got %g", p->min_p);
    if (!(p->repeat_penalty > 0.0f) || !isfinite(p->repeat_penalty))
        return mica_diag_set(d, MICA_ERR_INVALID, "repeat penalty must be > 0, got %g",
                             p->repeat_penalty);
    if (!isfinite(p->presence_penalty))
        return mica_diag_set(d, MICA_ERR_INVALID, "presence penalty must be finite, got %g",
                             p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return mica_diag_set(d, MICA_ERR_INVALID, "frequency penalty must be finite, got %g",
                             p->frequency_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
        return mica_diag_set(d, MICA_ERR_INVALID, "repeat-last-n %d is out of [0, %d]",
                             p->repeat_last_n, 1 << 20);
    mica_sampler_t *s = calloc(1, sizeof *s);
    if (!s)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    s->ids = malloc((size_t)n_vocab * sizeof *s->ids);
    s->count = calloc((size_t)n_vocab, sizeof *s->count);
    s->recent = malloc((size_t)(p->repeat_last_n ? p->repeat_last_n : 1) * sizeof *s->recent);
    if (!s->cands || !s->probs || !s->ids || !s->count || !s->recent) {
        mica_sampler_release(s);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    mica_sampler_reset(s);
    *out_sampler = s;
    return MICA_OK;
}

void mica_sampler_release(mica_sampler_t *s)
{
    if (!s)
        return;
    free(s->cands);
    free(s->probs);
    free(s->ids);
    free(s->count);
    free(s->recent);
    free(s);
}

void mica_sampler_reset(mica_sampler_t *s)
{
    s->rng = s->p.seed;
    for (int32_t r = 0; r < s->n_recent; r++)
        s->count[s->recent[r]] = 0;
    s->n_recent = 0;
    s->recent_head = 0;
}

void mica_sampler_accept(mica_sampler_t *s, int32_t token)
{
    int32_t cap = s->p.repeat_last_n;
    if (cap <= 0 || token < 0 || token >= s->n_vocab)
        return;
    if (s->n_recent == cap)
        s->count[s->recent[s->recent_head]]--; /* the oldest leaves the window */
    else
        s->n_recent++;
    s->recent[s->recent_head] = token;
    s->count[token]++;
    s->recent_head = (s->recent_head + 1) % cap;
}

int32_t mica_sampler_argmax(const float *logits, int32_t n_vocab)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static bool penalties_on(const mica_sampler_t *s)
{
    return s->n_recent > 0 && (s->p.repeat_penalty != 1.0f || s->p.presence_penalty != 0.0f ||
                               s->p.frequency_penalty != 0.0f);
}

/* The penalised logit of a token seen n >= 1 times in the window. A
 * function of the original logit, so applying it once per occurrence in the
 * ring gives the same value as once per token. */
static float penalized(const mica_sampler_t *s, float logit, int32_t n)
{
    float v = logit > 0 ? logit / s->p.repeat_penalty : logit * s->p.repeat_penalty;
    return v - (float)n * s->p.frequency_penalty - s->p.presence_penalty;
}

void mica_sampler_penalize(const mica_sampler_t *s, const float *logits, float *out)
{
    memcpy(out, logits, (size_t)s->n_vocab * sizeof *out);
    if (!penalties_on(s))
        return;
    for (int32_t r = 0; r < s->n_recent; r++) {
        int32_t t = s->recent[r];
        out[t] = penalized(s, logits[t], s->count[t]);
    }
}

/* Descending by logit, ascending id on ties: a total order, so the result
 * does not depend on the sort algorithm. */
static bool cand_before(const cand_t *a, const cand_t *b)
{
    if (a->logit != b->logit)
        return a->logit > b->logit;
    return a->id < b->id;
}

/* Restores the heap c[0..k) (root = the worst candidate) below j. */
static void sift_down(cand_t *c, int32_t k, int32_t j)
{
    for (;;) {
        int32_t l = 2 * j + 1, r = l + 1, w = j;
        if (l < k && cand_before(&c[w], &c[l]))
            w = l;
        if (r < k && cand_before(&c[w], &c[r]))
            w = r;
        if (w == j)
            return;
        cand_t t = c[j];
        c[j] = c[w];
        c[w] = t;
        j = w;
    }
}

static void heapify(cand_t *c, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_down(c, k, i);
}

/* Moves the k best candidates of c[0..n) to c[0..k) as a heap: O(n log k). */
static void select_top_k(cand_t *c, int32_t n, int32_t k)
{
    heapify(c, k);
    for (int32_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    }
}

/* Sorts the heap c[0..k) best first, in place (glibc's qsort may allocate). */
static void heap_sort(cand_t *c, int32_t k)
{
    for (int32_t end = k - 1; end > 0; end--) {
        cand_t t = c[0];
        c[0] = c[end];
        c[end] = t;
        sift_down(c, end, 0);
    }
}

int32_t mica_sampler_candidates(mica_sampler_t *s, const float *logits, const int32_t **out_ids,
                                const double **out_probs)
{
    const int32_t n = s->n_vocab;
    cand_t *c = s->cands;
    for (int32_t i = 0; i < n; i++) {
        c[i].logit = logits[i];
        c[i].id = i;
    }
    if (penalties_on(s))
        for (int32_t r = 0; r < s->n_recent; r++) {
            int32_t t = s->recent[r];
            c[t].logit = penalized(s, logits[t], s->count[t]);
        }
    int32_t keep;
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        c[0] = c[best];
        s->probs[0] = 1.0;
        keep = 1;
    } else {
        int32_t m = n;
        if (s->p.top_k > 0 && s->p.top_k < n) {
            select_top_k(c, n, s->p.top_k);
            m = s->p.top_k;
        } else {
            heapify(c, m);
        }
        heap_sort(c, m);
        /* probabilities at temperature 1, relative to the likeliest (1) */
        double sum = 0;
        for (int32_t i = 0; i < m; i++) {
            s->probs[i] = exp((double)c[i].logit - (double)c[0].logit);
            sum += s->probs[i];
        }
        keep = m;
        if (s->p.top_p < 1.0f) {
            double cum = 0;
            for (int32_t i = 0; i < m; i++) {
                cum += s->probs[i] / sum;
                if (cum >= (double)s->p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        if (s->p.min_p > 0.0f) {
            int32_t k = 1;
            while (k < keep && s->probs[k] >= (double)s->p.min_p)
                k++;
            keep = k;
        }
        /* the temperature on what is left */
        double total = 0, inv_t = 1.0 / (double)s->p.temperature;
        for (int32_t i = 0; i < keep; i++) {
            s->probs[i] = exp(((double)c[i].logit - (double)c[0].logit) * inv_t);
            total += s->probs[i];
        }
        for (int32_t i = 0; i < keep; i++)
            s->probs[i] /= total;
    }
    for (int32_t i = 0; i < keep; i++)
        s->ids[i] = c[i].id;
    if (out_ids)
        *out_ids = s->ids;
    if (out_probs)
        *out_probs = s->probs;
    return keep;
}

int32_t mica_sampler_sample(mica_sampler_t *s, const float *logits)
{
    int32_t keep = mica_sampler_candidates(s, logits, NULL, NULL);
    int32_t tok = s->ids[keep - 1];
    if (keep > 1) {
        double u = (double)(splitmix(&s->rng) >> 11) / 9007199254740992.0;
        for (int32_t i = 0; i < keep; i++) {
            u -= s->probs[i];
            if (u < 0) {
                tok = s->ids[i];
                break;
            }
        }
    } else {
        tok = s->ids[0];
    }
    mica_sampler_accept(s, tok);
    return tok;
}
