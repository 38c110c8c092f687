/* The sampler against hand-computed distributions. */
#include <criterion/criterion.h>
#include <math.h>

#include "sampler.h"

static mica_sampler_t *make(int32_t n, float temp, int32_t top_k, float top_p, float pen,
                            uint64_t seed)
{
    mica_sampler_params_t p = mica_sampler_params_default();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.repeat_penalty = pen;
    p.seed = seed;
    mica_sampler_t *s = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_sampler_create(n, &p, &s, &d), MICA_OK, "%s", d.msg);
    return s;
}

Test(sampler, greedy_is_argmax_lowest_id_on_ties)
{
    const float logits[6] = {0.5f, 3.0f, -1.0f, 3.0f, 2.9f, 0.0f};
    mica_sampler_t *s = make(6, 0.0f, 40, 0.95f, 1.0f, 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(mica_sampler_sample(s, logits), 1);
    cr_assert_eq(mica_sampler_argmax(logits, 6), 1);
    mica_sampler_release(s);
}

Test(sampler, temperature_matches_softmax_frequencies)
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

Test(sampler, repetition_penalty_changes_greedy_choice)
{
    const float logits[3] = {2.0f, 1.9f, -5.0f};
    mica_sampler_t *s = make(3, 0.0f, 0, 1.0f, 1.5f, 1);
    mica_sampler_accept(s, 0);
    /* 2.0 / 1.5 = 1.33 < 1.9 */
    cr_assert_eq(mica_sampler_sample(s, logits), 1);
    mica_sampler_reset(s);
    cr_assert_eq(mica_sampler_sample(s, logits), 0);
    mica_sampler_release(s);
}

Test(sampler, same_seed_same_tokens)
{
    float logits[100];
    for (int i = 0; i < 100; i++)
        logits[i] = sinf((float)i);
    mica_sampler_t *a = make(100, 0.9f, 20, 0.9f, 1.1f, 1234), *b = make(100, 0.9f, 20, 0.9f, 1.1f, 1234);
    for (int i = 0; i < 200; i++)
        cr_assert_eq(mica_sampler_sample(a, logits), mica_sampler_sample(b, logits));
    mica_sampler_release(a);
    mica_sampler_release(b);
}

Test(sampler, bad_settings_are_refused)
{
    mica_sampler_params_t p = mica_sampler_params_default();
    mica_sampler_t *s = NULL;
    mica_diag_t d = {0};
    p.top_p = 0.0f;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    cr_assert(strstr(d.msg, "top-p"));
    p = mica_sampler_params_default();
    p.repeat_penalty = 0.0f;
    cr_assert_neq(mica_sampler_create(10, &p, &s, &d), MICA_OK);
    p = mica_sampler_params_default();
    cr_assert_neq(mica_sampler_create(0, &p, &s, &d), MICA_OK);
}
