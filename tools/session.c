#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vocab.h"

double mica_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mica_status_t mica_cli_session_open(mica_cli_session_t *s, const char *path, const char *after,
                                    bool need_tokenizer, mica_diag_t *d)
{
    memset(s, 0, sizeof *s);
    if (mica_artifact_is_dir(path)) {
        if (after && strcmp(after, "import") != 0)
            return mica_diag_set(d, MICA_ERR_INVALID, "an artifact is already compiled (no --after)");
        MICA_TRY(mica_artifact_open(path, &s->artifact, d));
        mica_status_t st = mica_ref_program_create(s->artifact->program, &s->program, d);
        if (st != MICA_OK) {
            mica_cli_session_close(s);
            return st;
        }
        s->meta = s->artifact->tokenizer;
        s->n_vocab = (int32_t)s->artifact->program->cfg.n_vocab;
    } else {
        MICA_TRY(mica_ref_model_open(path, after, &s->model, d));
        s->meta = mica_ref_model_gguf(s->model);
        s->n_vocab = (int32_t)mica_ref_model_config(s->model)->n_vocab;
    }
    mica_status_t st = MICA_OK;
    if (need_tokenizer) {
        mica_vocab_t vocab;
        st = mica_vocab_from_gguf(s->meta, &vocab, d);
        if (st == MICA_OK) {
            st = mica_tokenizer_create(&vocab.desc, &s->tok, d);
            mica_vocab_deinit(&vocab);
        }
        if (st == MICA_OK && mica_tokenizer_n_tokens(s->tok) > (uint32_t)s->n_vocab)
            st = mica_diag_set(d, MICA_ERR_INVALID, "tokenizer has %u tokens, the model %d",
                               mica_tokenizer_n_tokens(s->tok), s->n_vocab);
    }
    if (st == MICA_OK && !(s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits)))
        st = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    if (st != MICA_OK)
        mica_cli_session_close(s);
    return st;
}

void mica_cli_session_close(mica_cli_session_t *s)
{
    mica_tokenizer_release(s->tok);
    mica_ref_model_close(s->model);
    mica_ref_program_release(s->program);
    mica_artifact_close(s->artifact);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

mica_status_t mica_cli_session_eval(mica_cli_session_t *s, const int32_t *tokens, int32_t n,
                                    bool all_logits, float *out_logits, mica_diag_t *d)
{
    if (s->program)
        return mica_ref_program_eval(s->program, tokens, n, all_logits, out_logits, d);
    return mica_ref_model_eval(s->model, tokens, n, all_logits, out_logits, d);
}

int64_t mica_cli_session_n_past(const mica_cli_session_t *s)
{
    return s->program ? mica_ref_program_n_past(s->program) : mica_ref_model_n_past(s->model);
}

void mica_cli_session_reset(mica_cli_session_t *s)
{
    if (s->program)
        mica_ref_program_reset(s->program);
    else
        mica_ref_model_reset(s->model);
}

mica_status_t mica_cli_tokenize(const mica_cli_session_t *s, const char *text, size_t len,
                                uint32_t flags, int32_t **out_ids, size_t *out_n, mica_diag_t *d)
{
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    mica_status_t st = mica_tokenizer_encode(s->tok, text, len, flags, ids, cap, &n, d);
    if (st == MICA_ERR_RANGE && n > cap) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (!more) {
            free(ids);
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        }
        ids = more;
        st = mica_tokenizer_encode(s->tok, text, len, flags, ids, n, &n, d);
    }
    if (st != MICA_OK) {
        free(ids);
        return st;
    }
    *out_ids = ids;
    *out_n = n;
    return MICA_OK;
}

static mica_status_t put(const char *buf, size_t n, FILE *out, FILE *copy, mica_diag_t *d)
{
    if (n && (fwrite(buf, 1, n, out) != n || (copy && fwrite(buf, 1, n, copy) != n)))
        return mica_diag_set(d, MICA_ERR_IO, "cannot write the generated text");
    fflush(out);
    return MICA_OK;
}

mica_status_t mica_cli_generate(mica_cli_session_t *s, const int32_t *prompt, size_t n,
                                int32_t n_gen, mica_sampler_t *sampler, bool ignore_eos,
                                bool feed_last, FILE *out, FILE *copy, mica_cli_timing_t *timing,
                                mica_diag_t *d)
{
    memset(timing, 0, sizeof *timing);
    timing->stopped_at_eog = false;
    if (n == 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "empty prompt");
    for (size_t i = 0; i < n; i++)
        mica_sampler_accept(sampler, prompt[i]);
    double t0 = mica_cli_now();
    MICA_TRY(mica_cli_session_eval(s, prompt, (int32_t)n, false, s->logits, d));
    double t1 = mica_cli_now();
    timing->n_prompt = (int64_t)n;
    timing->t_prompt = t1 - t0;

    size_t cap = mica_tokenizer_max_piece_len(s->tok) + 8;
    char *buf = malloc(cap);
    if (!buf)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    mica_tokenizer_stream_t stream;
    mica_tokenizer_stream_init(&stream, 0);
    mica_status_t st = MICA_OK;
    for (int32_t i = 0; i < n_gen && st == MICA_OK; i++) {
        int32_t tok = mica_sampler_sample(sampler, s->logits);
        if (!ignore_eos && mica_tokenizer_is_eog(s->tok, tok)) {
            timing->stopped_at_eog = true;
            break;
        }
        size_t nb = 0;
        st = mica_tokenizer_stream_push(s->tok, &stream, tok, buf, cap, &nb, d);
        if (st == MICA_OK)
            st = put(buf, nb, out, copy, d);
        timing->n_gen++;
        if (st == MICA_OK && (i + 1 < n_gen || feed_last))
            st = mica_cli_session_eval(s, &tok, 1, false, s->logits, d);
    }
    char tail[4];
    size_t nt = mica_tokenizer_stream_flush(&stream, tail);
    if (st == MICA_OK)
        st = put(tail, nt, out, copy, d);
    free(buf);
    timing->t_gen = mica_cli_now() - t1;
    return st;
}
