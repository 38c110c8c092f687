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
    cand_t *cands;  /* [n_vocab] scratch */
    double *probs;  /* [n_vocab] scratch */
    int32_t *recent; /* ring of the last repeat_last_n tokens */
    int32_t n_recent, recent_head;
};

mica_sampler_params_t mica_sampler_params_default(void)
{
    mica_sampler_params_t p = {0.8f, 40, 0.95f, 1.0f, 64, 42, 0.0f};
    return p;
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
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return mica_diag_set(d, MICA_ERR_INVALID, "top-p must be in (0, 1], got %g", p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return mica_diag_set(d, MICA_ERR_INVALID, "min-p must be in [0, 1], got %g", p->min_p);
    if (!(p->repeat_penalty > 0.0f))
        return mica_diag_set(d, MICA_ERR_INVALID, "repeat penalty must be > 0, got %g",
                             p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
        return mica_diag_set(d, MICA_ERR_INVALID, "repeat-last-n %d is out of range",
                             p->repeat_last_n);
    if (!(p->temperature == p->temperature))
        return mica_diag_set(d, MICA_ERR_INVALID, "temperature is not a number");
    mica_sampler_t *s = calloc(1, sizeof *s);
    if (!s)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    s->recent = malloc((size_t)(p->repeat_last_n ? p->repeat_last_n : 1) * sizeof *s->recent);
    if (!s->cands || !s->probs || !s->recent) {
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
    free(s->recent);
    free(s);
}

void mica_sampler_reset(mica_sampler_t *s)
{
    s->rng = s->p.seed;
    s->n_recent = 0;
    s->recent_head = 0;
}

void mica_sampler_accept(mica_sampler_t *s, int32_t token)
{
    int32_t cap = s->p.repeat_last_n;
    if (cap <= 0)
        return;
    s->recent[s->recent_head] = token;
    s->recent_head = (s->recent_head + 1) % cap;
    if (s->n_recent < cap)
        s->n_recent++;
}

int32_t mica_sampler_argmax(const float *logits, int32_t n_vocab)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

/* Descending by logit, ascending id on ties: a total order, so the result
 * does not depend on the sort algorithm. */
static int cand_cmp(const void *pa, const void *pb)
{
    const cand_t *a = pa, *b = pb;
    if (a->logit != b->logit)
        return a->logit > b->logit ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static bool cand_before(const cand_t *a, const cand_t *b)
{
    return cand_cmp(a, b) < 0;
}

/* Restores the min-heap c[0..k) (root = worst kept candidate) below j. */
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

/* Moves the k best candidates of c[0..n) to c[0..k) (unordered): O(n log k). */
static void select_top_k(cand_t *c, int32_t n, int32_t k)
{
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cand_before(&c[i], &c[0])) {
            c[0] = c[i];
            sift_down(c, k, 0);
        }
    }
}

int32_t mica_sampler_sample(mica_sampler_t *s, const float *logits)
{
    const int32_t n = s->n_vocab;
    cand_t *c = s->cands;
    for (int32_t i = 0; i < n; i++) {
        c[i].logit = logits[i];
        c[i].id = i;
    }
    if (s->p.repeat_penalty != 1.0f) {
        for (int32_t r = 0; r < s->n_recent; r++) {
            int32_t t = s->recent[r];
            if (t < 0 || t >= n || c[t].id < 0)
                continue;
            float v = logits[t];
            c[t].logit = v > 0 ? v / s->p.repeat_penalty : v * s->p.repeat_penalty;
            c[t].id = -1 - t; /* penalised once even if repeated; restored below */
        }
        for (int32_t r = 0; r < s->n_recent; r++) {
            int32_t t = s->recent[r];
            if (t >= 0 && t < n && c[t].id < 0)
                c[t].id = t;
        }
    }
    int32_t tok;
    if (s->p.temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        tok = c[best].id;
    } else {
        int32_t m = n;
        if (s->p.top_k > 0 && s->p.top_k < n) {
            select_top_k(c, n, s->p.top_k);
            m = s->p.top_k;
        }
        qsort(c, (size_t)m, sizeof *c, cand_cmp);
        double sum = 0, inv_t = 1.0 / s->p.temperature;
        for (int32_t i = 0; i < m; i++) {
            s->probs[i] = exp(((double)c[i].logit - (double)c[0].logit) * inv_t);
            sum += s->probs[i];
        }
        int32_t keep = m;
        if (s->p.top_p < 1.0f) {
            double cum = 0;
            for (int32_t i = 0; i < m; i++) {
                cum += s->probs[i] / sum;
                if (cum >= s->p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        if (s->p.min_p > 0.0f) {
            /* probs[0] is the likeliest (exp(0) = 1): keep probs[i] >= min_p */
            int32_t k = 1;
            while (k < keep && s->probs[k] >= (double)s->p.min_p)
                k++;
            keep = k;
        }
        double total = 0;
        for (int32_t i = 0; i < keep; i++)
            total += s->probs[i];
        double u = (double)(splitmix(&s->rng) >> 11) / 9007199254740992.0 * total;
        tok = c[keep - 1].id;
        for (int32_t i = 0; i < keep; i++) {
            u -= s->probs[i];
            if (u < 0) {
                tok = c[i].id;
                break;
            }
        }
    }
    mica_sampler_accept(s, tok);
    return tok;
}
