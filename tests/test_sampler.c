/* The sampler against plain-loop references: which candidates each filter
 * keeps, what the penalties do to the logits, the draw's frequencies, the
 * seed, and greedy = argmax. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

static mica_sampler_params_t params(float temp, int32_t top_k, float top_p, float min_p)
{
    mica_sampler_params_t p = mica_sampler_params_default();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    return p;
}

static mica_sampler_t *make_p(int32_t n, const mica_sampler_params_t *p)
{
    mica_sampler_t *s = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_sampler_create(n, p, &s, &d), MICA_OK, "%s", d.msg);
    return s;
}

static mica_sampler_t *make(int32_t n, float temp, int32_t top_k, float top_p, float pen,
                            uint64_t seed)
{
    mica_sampler_params_t p = params(temp, top_k, top_p, 0.0f);
    p.repeat_penalty = pen;
    p.seed = seed;
    return make_p(n, &p);
}

/* xorshift, independent of the sampler's generator */
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Logits in [-8, 8) in steps of 1/4, so that ties happen. */
static void random_logits(float *l, int n, uint32_t *seed)
{
    for (int i = 0; i < n; i++)
        l[i] = (float)((int)(rnd(seed) % 64) - 32) * 0.25f;
}

/* ---- plain-loop references ---- */

/* Index of the first largest value. */
static int ref_argmax(const float *l, int n)
{
    int best = 0;
    for (int i = 0; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

/* The logits after the penalties of the last `last_n` entries of hist. */
static void ref_penalize(const float *l, int n, const int32_t *hist, int n_hist, int last_n,
                         float rp, float presence, float frequency, float *out)
{
    int from = n_hist > last_n ? n_hist - last_n : 0;
    for (int t = 0; t < n; t++) {
        int c = 0;
        for (int h = from; h < n_hist; h++)
            c += hist[h] == t;
        out[t] = l[t];
        if (c > 0) {
            float v = l[t] > 0 ? l[t] / rp : l[t] * rp;
            out[t] = v - (float)c * frequency - presence;
        }
    }
}

/* The kept candidates of logits l (already penalised), likeliest first,
 * lowest id on ties, with their probabilities at the temperature; by
 * selection sort and the definitions of top-k, top-p and min-p. */
static int ref_candidates(const float *l, int n, const mica_sampler_params_t *p, int32_t *ids,
                          double *probs)
{
    char *used = calloc((size_t)n, 1);
    int m = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    for (int r = 0; r < m; r++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!used[i] && (best < 0 || l[i] > l[best]))
                best = i;
        used[best] = 1;
        ids[r] = best;
    }
    free(used);
    if (p->temperature <= 0) {
        probs[0] = 1;
        return 1;
    }
    double sum = 0;
    for (int r = 0; r < m; r++)
        sum += exp((double)l[ids[r]] - (double)l[ids[0]]);
    int keep = m;
    if (p->top_p < 1) {
        double cum = 0;
        for (int r = 0; r < m; r++) {
            cum += exp((double)l[ids[r]] - (double)l[ids[0]]) / sum;
            if (cum >= (double)p->top_p) {
                keep = r + 1;
                break;
            }
        }
    }
    /* min-p: p_r >= min_p * p_0, at temperature 1 */
    int k = 1;
    while (k < keep && exp((double)l[ids[k]] - (double)l[ids[0]]) >= (double)p->min_p)
        k++;
    keep = k;
    double total = 0;
    for (int r = 0; r < keep; r++)
        total += exp(((double)l[ids[r]] - (double)l[ids[0]]) / (double)p->temperature);
    for (int r = 0; r < keep; r++)
        probs[r] = exp(((double)l[ids[r]] - (double)l[ids[0]]) / (double)p->temperature) / total;
    return keep;
}

static void check_candidates(mica_sampler_t *s, const float *raw, const float *penalized, int n,
                             const mica_sampler_params_t *p, const char *what)
{
    int32_t want_ids[512];
    double want_p[512];
    int want = ref_candidates(penalized, n, p, want_ids, want_p);
    const int32_t *ids;
    const double *probs;
    int got = mica_sampler_candidates(s, raw, &ids, &probs);
    cr_assert_eq(got, want, "%s (k %d p %g min-p %g T %g): kept %d, expected %d", what, p->top_k,
                 p->top_p, p->min_p, p->temperature, got, want);
    for (int r = 0; r < want; r++) {
        cr_assert_eq(ids[r], want_ids[r], "%s: candidate %d is %d, expected %d", what, r, ids[r],
                     want_ids[r]);
        cr_assert(fabs(probs[r] - want_p[r]) <= 1e-12 + 1e-9 * want_p[r],
                  "%s: p[%d] = %.17g, expected %.17g", what, r, probs[r], want_p[r]);
    }
}

/* ---- tests ---- */

Test(sampler, greedy_is_argmax_lowest_id_on_ties)
{
    const float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, 0.0f};
    mica_sampler_t *s = make(6, 0.0f, 40, 0.95f, 1.0f, 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(mica_sampler_sample(s, logits), 1);
    cr_assert_eq(mica_sampler_argmax(logits, 6), 1);
    mica_sampler_release(s);
}

Test(sampler, temperature_zero_equals_argmax_on_random_rows)
{
    enum { N = 1000 };
    static float l[N];
    uint32_t seed = 99;
    mica_sampler_params_t p = params(0.0f, 5, 0.5f, 0.3f); /* filters do not matter */
    mica_sampler_t *s = make_p(N, &p);
    for (int row = 0; row < 100; row++) {
        random_logits(l, N, &seed);
        int want = ref_argmax(l, N);
        cr_assert_eq(mica_sampler_sample(s, l), want, "row %d", row);
        cr_assert_eq(mica_sampler_argmax(l, N), want, "row %d", row);
    }
    mica_sampler_release(s);
}

Test(sampler, filters_keep_exactly_the_reference_candidates)
{
    enum { N = 300 };
    static float l[N];
    const int32_t ks[] = {0, 1, 7, 40, 299, 300, 1000};
    const float ps[] = {1.0f, 0.95f, 0.5f, 0.05f};
    const float mins[] = {0.0f, 0.05f, 0.3f, 1.0f};
    const float temps[] = {1.0f, 0.7f, 1.8f};
    uint32_t seed = 12345;
    int checked = 0;
    for (int row = 0; row < 6; row++) {
        random_logits(l, N, &seed);
        for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++)
            for (size_t b = 0; b < sizeof ps / sizeof ps[0]; b++)
                for (size_t c = 0; c < sizeof mins / sizeof mins[0]; c++)
                    for (size_t e = 0; e < sizeof temps / sizeof temps[0]; e++) {
                        mica_sampler_params_t p = params(temps[e], ks[a], ps[b], mins[c]);
                        mica_sampler_t *s = make_p(N, &p);
                        check_candidates(s, l, l, N, &p, "filters");
                        mica_sampler_release(s);
                        checked++;
                    }
    }
    cr_assert_eq(checked, 6 * 7 * 4 * 4 * 3);
}

Test(sampler, top_k_and_top_p_cut_the_tail)
{
    const float logits[5] = {1.0f, 5.0f, 4.0f, 0.0f, 4.5f};
    mica_sampler_t *k2 = make(5, 1.0f, 2, 1.0f, 1.0f, 3);
    for (int i = 0; i < 2000; i++) {
        int32_t t = mica_sampler_sample(k2, logits);
        cr_assert(t == 1 || t == 4, "top-k 2 drew %d", t);
    }
    mica_sampler_release(k2);
    /* p(1) = e^5 / (e^5 + e^4.5 + e^4 + e + 1) ~ 0.50: top-p 0.4 keeps only it */
    mica_sampler_t *p = make(5, 1.0f, 0, 0.4f, 1.0f, 3);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(mica_sampler_sample(p, logits), 1);
    mica_sampler_release(p);
}

Test(sampler, min_p_is_relative_to_the_likeliest_at_temperature_one)
{
    /* probabilities relative to the top: 1, e^-1 = 0.37, e^-2 = 0.14, e^-3 = 0.05;
     * min-p 0.1 keeps three whatever the temperature */
    const float logits[4] = {-3.0f, 0.0f, -1.0f, -2.0f};
    for (float t = 0.5f; t < 4.0f; t *= 2) {
        mica_sampler_params_t p = params(t, 0, 1.0f, 0.1f);
        mica_sampler_t *s = make_p(4, &p);
        const int32_t *ids;
        cr_assert_eq(mica_sampler_candidates(s, logits, &ids, NULL), 3, "temperature %g", t);
        cr_assert(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
        mica_sampler_release(s);
    }
}

Test(sampler, penalties_change_exactly_the_window_tokens)
{
    enum { N = 200, H = 150 };
    static float l[N], got[N], want[N];
    int32_t hist[H];
    uint32_t seed = 777;
    const int lasts[] = {0, 1, 16, 64, 200};
    const float rps[] = {1.0f, 1.3f, 0.8f};
    const float pres[] = {0.0f, 0.5f, -0.25f};
    const float freqs[] = {0.0f, 0.2f};
    for (size_t a = 0; a < sizeof lasts / sizeof lasts[0]; a++)
        for (size_t b = 0; b < sizeof rps / sizeof rps[0]; b++)
            for (size_t c = 0; c < sizeof pres / sizeof pres[0]; c++)
                for (size_t e = 0; e < sizeof freqs / sizeof freqs[0]; e++) {
                    mica_sampler_params_t p = params(1.0f, 0, 1.0f, 0.0f);
                    p.repeat_last_n = lasts[a];
                    p.repeat_penalty = rps[b];
                    p.presence_penalty = pres[c];
                    p.frequency_penalty = freqs[e];
                    mica_sampler_t *s = make_p(N, &p);
                    random_logits(l, N, &seed);
                    /* a history with repeats: 150 tokens from 40 ids */
                    for (int h = 0; h < H; h++) {
                        hist[h] = (int32_t)(rnd(&seed) % 40) * 5;
                        mica_sampler_accept(s, hist[h]);
                    }
                    mica_sampler_penalize(s, l, got);
                    ref_penalize(l, N, hist, H, lasts[a], rps[b], pres[c], freqs[e], want);
                    for (int t = 0; t < N; t++)
                        cr_assert(got[t] == want[t],
                                  "last-n %d rp %g pres %g freq %g: token %d %g -> %g, expected %g",
                                  lasts[a], rps[b], pres[c], freqs[e], t, l[t], got[t], want[t]);
                    /* the chain sees the penalised logits */
                    check_candidates(s, l, want, N, &p, "penalised");
                    mica_sampler_release(s);
                }
}

Test(sampler, sampled_tokens_enter_the_window_and_reset_clears_it)
{
    const float logits[3] = {2.0f, 1.9f, -5.0f};
    mica_sampler_t *s = make(3, 0.0f, 0, 1.0f, 1.5f, 1);
    /* greedy picks 0, which is then penalised: 2.0 / 1.5 = 1.33 < 1.9 */
    cr_assert_eq(mica_sampler_sample(s, logits), 0);
    cr_assert_eq(mica_sampler_sample(s, logits), 1);
    mica_sampler_reset(s);
    cr_assert_eq(mica_sampler_sample(s, logits), 0);
    mica_sampler_release(s);

    /* presence and frequency: logit 3 seen twice, logit 2.5 not seen */
    mica_sampler_params_t p = params(0.0f, 0, 1.0f, 0.0f);
    p.frequency_penalty = 0.2f;
    p.presence_penalty = 0.05f;
    const float two[2] = {3.0f, 2.5f};
    mica_sampler_t *f = make_p(2, &p);
    mica_sampler_accept(f, 0);
    cr_assert_eq(mica_sampler_sample(f, two), 0); /* seen once: 3 - 0.2 - 0.05 = 2.75 */
    cr_assert_eq(mica_sampler_sample(f, two), 0); /* twice: 3 - 0.4 - 0.05 = 2.55 */
    cr_assert_eq(mica_sampler_sample(f, two), 1); /* three times: 2.35 < 2.5 */
    mica_sampler_release(f);
}

Test(sampler, draws_follow_the_candidate_probabilities)
{
    /* logits ln(1), ln(2), ln(3), ln(4) at temperature 1: p = k / 10 */
    const float logits[4] = {0.0f, logf(2.0f), logf(3.0f), logf(4.0f)};
    mica_sampler_t *s = make(4, 1.0f, 0, 1.0f, 1.0f, 7);
    int counts[4] = {0};
    const int n = 40000;
    for (int i = 0; i < n; i++)
        counts[mica_sampler_sample(s, logits)]++;
    for (int k = 0; k < 4; k++) {
        double expect = n * (k + 1) / 10.0, sd = sqrt(expect * (1 - (k + 1) / 10.0));
        cr_assert(fabs(counts[k] - expect) < 5 * sd, "token %d drawn %d times, expected %.0f", k,
                  counts[k], expect);
    }
    mica_sampler_release(s);
}

Test(sampler, temperature_two_squares_the_odds_ratio_root)
{
    /* at temperature 2, logits (0, ln 4) give odds 1 : 2 */
    const float logits[2] = {0.0f, logf(4.0f)};
    mica_sampler_t *s = make(2, 2.0f, 0, 1.0f, 1.0f, 11);
    int ones = 0;
    const int n = 30000;
    for (int i = 0; i < n; i++)
        ones += mica_sampler_sample(s, logits);
    double expect = n * 2.0 / 3.0, sd = sqrt(n * (2.0 / 3.0) * (1.0 / 3.0));
    cr_assert(fabs(ones - expect) < 5 * sd, "%d of %d", ones, n);
    mica_sampler_release(s);
}

Test(sampler, a_fixed_seed_gives_a_fixed_sequence)
{
    enum { N = 100, T = 300 };
    float logits[N];
    for (int i = 0; i < N; i++)
        logits[i] = sinf((float)i);
    mica_sampler_params_t p = params(0.9f, 20, 0.9f, 0.02f);
    p.repeat_penalty = 1.1f;
    p.seed = 1234;
    mica_sampler_t *a = make_p(N, &p), *b = make_p(N, &p);
    int32_t first[T];
    for (int i = 0; i < T; i++) {
        first[i] = mica_sampler_sample(a, logits);
        cr_assert_eq(first[i], mica_sampler_sample(b, logits), "draw %d", i);
    }
    mica_sampler_reset(a);
    for (int i = 0; i < T; i++)
        cr_assert_eq(mica_sampler_sample(a, logits), first[i], "draw %d after reset", i);
    p.seed = 1235;
    mica_sampler_t *c = make_p(N, &p);
    int same = 0;
    for (int i = 0; i < T; i++)
        same += mica_sampler_sample(c, logits) == first[i];
    cr_assert(same < T, "another seed gave the same %d draws", T);
    mica_sampler_release(a);
    mica_sampler_release(b);
    mica_sampler_release(c);
}

Test(sampler, bad_settings_are_refused)
{
    mica_sampler_params_t p = mica_sampler_params_default();
    mica_sampler_t *s = NULL;
    mica_diag_t d = {0};
    p.top_p = 0.0f;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "top-p"), "%s", d.msg);
    p = mica_sampler_params_default();
    p.min_p = 1.5f;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "min-p"), "%s", d.msg);
    p = mica_sampler_params_default();
    p.repeat_penalty = 0.0f;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "repeat penalty"), "%s", d.msg);
    p = mica_sampler_params_default();
    p.presence_penalty = INFINITY;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "presence penalty"), "%s", d.msg);
    p = mica_sampler_params_default();
    p.repeat_last_n = -1;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "repeat-last-n"), "%s", d.msg);
    p = mica_sampler_params_default();
    p.temperature = NAN;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "temperature"), "%s", d.msg);
    p = mica_sampler_params_default();
    cr_assert_neq(mica_sampler_create(0, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "vocabulary"), "%s", d.msg);
}
