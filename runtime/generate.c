/* The generation loop (runtime/generate.h). */
#include "generate.h"

#include <stdlib.h>
#include <time.h>

double mica_generate_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mica_status_t mica_generator_init(mica_generator_t *g, const mica_tokenizer_t *tok,
                                  mica_sampler_t *sampler, mica_generate_eval_fn eval,
                                  void *eval_ctx, mica_diag_t *d)
{
    g->eval = eval;
    g->eval_ctx = eval_ctx;
    g->tok = tok;
    g->sampler = sampler;
    g->cap = mica_tokenizer_max_piece_len(tok) + 8;
    g->buf = malloc(g->cap);
    g->logits = NULL;
    g->pending = MICA_TOKEN_NULL;
    if (!g->buf)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    return MICA_OK;
}

void mica_generator_deinit(mica_generator_t *g)
{
    free(g->buf);
    g->buf = NULL;
    g->cap = 0;
}

void mica_generator_reset(mica_generator_t *g)
{
    g->logits = NULL;
    g->pending = MICA_TOKEN_NULL;
}

void mica_generator_continue_from(mica_generator_t *g, const float *logits)
{
    g->logits = logits;
    g->pending = MICA_TOKEN_NULL;
}

int32_t mica_generator_pending(const mica_generator_t *g)
{
    return g->pending;
}

/* Runs the pending token, if any. */
static mica_status_t run_pending(mica_generator_t *g, mica_diag_t *d)
{
    if (g->pending == MICA_TOKEN_NULL)
        return MICA_OK;
    MICA_TRY(g->eval(g->eval_ctx, &g->pending, 1, &g->logits, d));
    g->pending = MICA_TOKEN_NULL;
    return MICA_OK;
}

mica_status_t mica_generator_feed(mica_generator_t *g, const int32_t *tokens, size_t n,
                                  mica_diag_t *d)
{
    if (n > INT32_MAX)
        return mica_diag_set(d, MICA_ERR_RANGE, "%zu tokens in one call", n);
    MICA_TRY(run_pending(g, d));
    if (n == 0)
        return MICA_OK;
    MICA_TRY(g->eval(g->eval_ctx, tokens, (int32_t)n, &g->logits, d));
    for (size_t i = 0; i < n; i++)
        mica_sampler_accept(g->sampler, tokens[i]);
    return MICA_OK;
}

mica_status_t mica_generator_run(mica_generator_t *g, int32_t n_gen, uint32_t flags,
                                 mica_generate_piece_fn piece, void *user,
                                 mica_generate_stats_t *stats, mica_diag_t *d)
{
    mica_generate_stats_t local;
    mica_generate_stats_t *st = stats ? stats : &local;
    *st = (mica_generate_stats_t){0};
    double t0 = mica_generate_now();
    MICA_TRY(run_pending(g, d));
    if (!g->logits)
        return mica_diag_set(d, MICA_ERR_INVALID, "nothing to continue: feed a prompt first");

    mica_tokenizer_stream_t stream;
    mica_tokenizer_stream_init(&stream, 0);
    mica_status_t s = MICA_OK;
    for (int32_t i = 0; i < n_gen && s == MICA_OK; i++) {
        int32_t tok = mica_sampler_sample(g->sampler, g->logits);
        if (!(flags & MICA_GENERATE_IGNORE_EOS) && mica_tokenizer_is_eog(g->tok, tok)) {
            st->stopped_at_eog = true;
            break;
        }
        size_t nb = 0;
        s = mica_tokenizer_stream_push(g->tok, &stream, tok, g->buf, g->cap, &nb, d);
        if (s != MICA_OK)
            break;
        st->n_gen++;
        g->pending = tok;
        if (piece(g->buf, nb, tok, user)) {
            st->stopped_by_user = true;
            break;
        }
        if (i + 1 < n_gen)
            s = run_pending(g, d);
    }
    char tail[4];
    size_t nt = mica_tokenizer_stream_flush(&stream, tail);
    if (nt && s == MICA_OK && piece(tail, nt, MICA_TOKEN_NULL, user))
        st->stopped_by_user = true;
    st->t_gen = mica_generate_now() - t0;
    return s;
}
