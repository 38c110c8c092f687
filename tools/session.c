#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"
#include "mica_internal.h"
#include "vocab.h"

double mica_cli_now(void)
{
    return mica_generate_now();
}

bool mica_cli_backend_parse(const char *s, mica_cli_backend_t *out)
{
    if (!strcmp(s, "cpu"))
        *out = MICA_CLI_BACKEND_CPU;
    else if (!strcmp(s, "ref"))
        *out = MICA_CLI_BACKEND_REF;
    else
        return false;
    return true;
}

/* An error of the public API as a diagnostic. */
static mica_status_t from_api(const mica_error_t *e, mica_diag_t *d)
{
    return mica_diag_set(d, (mica_status_t)e->status, "%s", e->message);
}

/* True when the artifact's manifest lists a model object. */
static bool has_object(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = !strncmp(line, "file model.so ", 14);
    fclose(f);
    return found;
}

/* The artifact's model object through the runtime, as an app runs it. */
static mica_status_t open_compiled(mica_cli_session_t *s, const char *path,
                                   const mica_cli_open_t *o, mica_diag_t *d)
{
    MICA_TRY(mica_model_open_diag(path, &s->compiled, d));
    mica_session_params_t p = mica_session_params_default();
    p.n_threads = o->threads > 0 ? o->threads : 1;
    mica_error_t err;
    if (mica_session_create(s->compiled, &p, &s->session, &err) != MICA_STATUS_OK)
        return from_api(&err, d);
    s->tok = mica_model_tokenizer(s->compiled);
    s->chat_template = mica_model_chat_template(s->compiled, &s->chat_template_len);
    s->n_vocab = mica_model_n_vocab(s->compiled);
    s->threads = p.n_threads;
    if (!(s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits)))
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    return MICA_OK;
}

/* A GGUF, or the artifact's program, on the ref backend. */
static mica_status_t open_ref(mica_cli_session_t *s, const char *path, const mica_cli_open_t *o,
                              mica_diag_t *d)
{
    const mica_gguf_t *meta;
    if (mica_artifact_is_dir(path)) {
        if (o->after && strcmp(o->after, "import") != 0)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "an artifact is already compiled (no --after)");
        MICA_TRY(mica_artifact_open(path, &s->artifact, d));
        MICA_TRY(mica_ref_program_create(s->artifact->program, &s->program, d));
        meta = s->artifact->tokenizer;
        s->n_vocab = (int32_t)s->artifact->program->cfg.n_vocab;
    } else {
        MICA_TRY(mica_ref_model_open(path, o->after, &s->model, d));
        meta = mica_ref_model_gguf(s->model);
        s->n_vocab = (int32_t)mica_ref_model_config(s->model)->n_vocab;
    }
    mica_gguf_str_t tmpl;
    if (mica_gguf_get_str(meta, "tokenizer.chat_template", &tmpl)) {
        s->chat_template = tmpl.ptr;
        s->chat_template_len = (size_t)tmpl.len;
    }
    if (o->need_tokenizer) {
        mica_vocab_t vocab;
        MICA_TRY(mica_vocab_from_gguf_meta(mica_gguf_meta(meta), &vocab, d));
        mica_status_t st = mica_tokenizer_create(&vocab.desc, &s->tok_owned, d);
        mica_vocab_deinit(&vocab);
        MICA_TRY(st);
        s->tok = s->tok_owned;
        if (mica_tokenizer_n_tokens(s->tok) > (uint32_t)s->n_vocab)
            return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer has %u tokens, the model %d",
                                 mica_tokenizer_n_tokens(s->tok), s->n_vocab);
    }
    if (!(s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits)))
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    return MICA_OK;
}

mica_status_t mica_cli_session_open(mica_cli_session_t *s, const char *path,
                                    const mica_cli_open_t *o, mica_diag_t *d)
{
    memset(s, 0, sizeof *s);
    bool dir = mica_artifact_is_dir(path);
    mica_status_t st;
    if (dir && o->after && strcmp(o->after, "import") != 0)
        st = mica_diag_set(d, MICA_ERR_INVALID, "an artifact is already compiled (no --after)");
    else if (dir && (o->backend == MICA_CLI_BACKEND_CPU ||
                     (o->backend == MICA_CLI_BACKEND_AUTO && has_object(path))))
        st = open_compiled(s, path, o, d);
    else if (!dir && o->backend == MICA_CLI_BACKEND_CPU)
        st = mica_diag_set(d, MICA_ERR_INVALID,
                           "--backend cpu runs a compiled artifact (mica compile), not a GGUF");
    else
        st = open_ref(s, path, o, d);
    if (st != MICA_OK)
        mica_cli_session_close(s);
    return st;
}

void mica_cli_session_close(mica_cli_session_t *s)
{
    mica_session_release(s->session);
    mica_model_release(s->compiled);
    mica_tokenizer_release(s->tok_owned);
    mica_ref_model_close(s->model);
    mica_ref_program_release(s->program);
    mica_artifact_close(s->artifact);
    free(s->logits);
    memset(s, 0, sizeof *s);
}

mica_status_t mica_cli_session_eval(mica_cli_session_t *s, const int32_t *tokens, int32_t n,
                                    bool all_logits, float *out_logits, mica_diag_t *d)
{
    if (s->session) {
        mica_error_t err;
        if (mica_session_eval(s->session, tokens, (size_t)n, all_logits ? out_logits : NULL,
                              &err) != MICA_STATUS_OK)
            return from_api(&err, d);
        if (!all_logits)
            memcpy(out_logits, mica_session_logits(s->session),
                   (size_t)s->n_vocab * sizeof *out_logits);
        return MICA_OK;
    }
    if (s->program)
        return mica_ref_program_eval(s->program, tokens, n, all_logits, out_logits, d);
    return mica_ref_model_eval(s->model, tokens, n, all_logits, out_logits, d);
}

int64_t mica_cli_session_n_past(const mica_cli_session_t *s)
{
    if (s->session)
        return mica_session_n_past(s->session);
    return s->program ? mica_ref_program_n_past(s->program) : mica_ref_model_n_past(s->model);
}

void mica_cli_session_reset(mica_cli_session_t *s)
{
    if (s->session)
        mica_session_reset(s->session);
    else if (s->program)
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

/* Where the generated text goes: out and, if not NULL, copy. */
typedef struct sink {
    FILE *out, *copy;
    mica_status_t status;
    mica_diag_t *d;
} sink_t;

static int put(const char *buf, size_t n, int32_t token, void *user)
{
    (void)token;
    sink_t *k = user;
    if (n && (fwrite(buf, 1, n, k->out) != n || (k->copy && fwrite(buf, 1, n, k->copy) != n))) {
        k->status = mica_diag_set(k->d, MICA_ERR_IO, "cannot write the generated text");
        return 1;
    }
    fflush(k->out);
    return 0;
}

static mica_status_t eval_last(void *ctx, const int32_t *tokens, int32_t n,
                               const float **out_logits, mica_diag_t *d)
{
    mica_cli_session_t *s = ctx;
    if (s->session) {
        /* the row stays in the session's arena: no copy per token */
        mica_error_t err;
        if (mica_session_eval(s->session, tokens, (size_t)n, NULL, &err) != MICA_STATUS_OK)
            return from_api(&err, d);
        *out_logits = mica_session_logits(s->session);
        return MICA_OK;
    }
    MICA_TRY(mica_cli_session_eval(s, tokens, n, false, s->logits, d));
    *out_logits = s->logits;
    return MICA_OK;
}

mica_status_t mica_cli_generate(mica_cli_session_t *s, const int32_t *prompt, size_t n,
                                int32_t n_gen, mica_sampler_t *sampler, bool ignore_eos,
                                bool feed_last, FILE *out, FILE *copy, mica_cli_timing_t *timing,
                                mica_diag_t *d)
{
    memset(timing, 0, sizeof *timing);
    if (n == 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "empty prompt");
    mica_generator_t g;
    MICA_TRY(mica_generator_init(&g, s->tok, sampler, eval_last, s, d));
    double t0 = mica_generate_now();
    mica_status_t st = mica_generator_feed(&g, prompt, n, d);
    timing->n_prompt = (int64_t)n;
    timing->t_prompt = mica_generate_now() - t0;
    sink_t sink = {out, copy, MICA_OK, d};
    mica_generate_stats_t gs = {0};
    if (st == MICA_OK)
        st = mica_generator_run(&g, n_gen, ignore_eos ? MICA_GENERATE_IGNORE_EOS : 0, put, &sink,
                                &gs, d);
    if (st == MICA_OK)
        st = sink.status;
    if (st == MICA_OK && feed_last)
        st = mica_generator_feed(&g, NULL, 0, d);
    timing->n_gen = gs.n_gen;
    timing->t_gen = gs.t_gen;
    timing->stopped_at_eog = gs.stopped_at_eog;
    mica_generator_deinit(&g);
    return st;
}
