/* The public C API (runtime/mica.h) over the device loader
 * (runtime/device.h), the CPU executor (backends/cpu/exec.h), the sampler
 * and the generation loop (runtime/generate.h). */
#include "mica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "device.h"
#include "exec.h"
#include "generate.h"
#include "mica_internal.h"
#include "pool.h"
#include "sampler.h"

struct mica_model {
    mica_device_model_t *dm;
};

struct mica_session {
    const mica_model_t *model;
    mica_device_state_t mem;
    mica_cpu_pool_t *pool;
    mica_cpu_exec_t exec;
    mica_sampler_t *sampler;
    mica_generator_t gen;
    const float *last; /* the last row run, in the arena */
    mica_cpu_profile_t profile;
    uint64_t *profile_ns; /* [prefill.n_ops + decode.n_ops], NULL until enabled */
};

/* Copies d into *out (if any) and returns its status. */
static int fail(const mica_diag_t *d, mica_error_t *out)
{
    if (out) {
        out->status = (int)d->code;
        snprintf(out->message, sizeof out->message, "%s", d->msg);
    }
    return (int)d->code;
}

static int ok(mica_error_t *out)
{
    if (out) {
        out->status = MICA_STATUS_OK;
        out->message[0] = 0;
    }
    return MICA_STATUS_OK;
}

/* ------------------------------------------------------------------------ */
/* models                                                                    */

mica_status_t mica_model_open_diag(const char *path, mica_model_t **out_model, mica_diag_t *d)
{
    *out_model = NULL;
    mica_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    mica_status_t s = mica_device_model_open(path, &m->dm, d);
    if (s != MICA_OK) {
        free(m);
        return s;
    }
    *out_model = m;
    return MICA_OK;
}

int mica_model_open(const char *path, mica_model_t **out_model, mica_error_t *out_error)
{
    mica_diag_t d = {0};
    if (mica_model_open_diag(path, out_model, &d) == MICA_OK)
        return ok(out_error);
    mica_diag_prefix(&d, "%s", path);
    return fail(&d, out_error);
}

const mica_tokenizer_t *mica_model_tokenizer(const mica_model_t *model)
{
    return model->dm->tokenizer;
}

const char *mica_model_chat_template(const mica_model_t *model, size_t *out_len)
{
    *out_len = model->dm->chat_template_len;
    return model->dm->chat_template;
}

void mica_model_release(mica_model_t *model)
{
    if (!model)
        return;
    mica_device_model_release(model->dm);
    free(model);
}

int32_t mica_model_n_vocab(const mica_model_t *model)
{
    return model->dm->n_vocab;
}

int32_t mica_model_context(const mica_model_t *model)
{
    return model->dm->context;
}

const char *mica_model_target(const mica_model_t *model)
{
    return model->dm->target;
}

static uint32_t tokenizer_flags(uint32_t flags)
{
    return (flags & MICA_TOKENIZE_ADD_SPECIAL ? MICA_TOKENIZER_ADD_SPECIAL : 0) |
           (flags & MICA_TOKENIZE_PARSE_SPECIAL ? MICA_TOKENIZER_PARSE_SPECIAL : 0);
}

int mica_model_tokenize(const mica_model_t *model, const char *text, size_t len, uint32_t flags,
                        int32_t *out_tokens, size_t capacity, size_t *out_n,
                        mica_error_t *out_error)
{
    mica_diag_t d = {0};
    if (mica_tokenizer_encode(model->dm->tokenizer, text, len, tokenizer_flags(flags), out_tokens,
                              capacity, out_n, &d) != MICA_OK)
        return fail(&d, out_error);
    return ok(out_error);
}

int mica_model_detokenize(const mica_model_t *model, const int32_t *tokens, size_t n,
                          char *out_text, size_t capacity, size_t *out_len, mica_error_t *out_error)
{
    mica_diag_t d = {0};
    if (mica_tokenizer_decode(model->dm->tokenizer, tokens, n, 0, out_text, capacity, out_len,
                              &d) != MICA_OK)
        return fail(&d, out_error);
    return ok(out_error);
}

/* The text of token id into buf[cap] with a NUL; "" for no token or a
 * text that does not fit. */
static const char *token_text(const mica_tokenizer_t *tok, int32_t id, char *buf, size_t cap)
{
    size_t n = 0;
    const char *t = id >= 0 ? mica_tokenizer_token_text(tok, id, &n) : NULL;
    if (!t || n >= cap)
        n = 0;
    else
        memcpy(buf, t, n);
    buf[n] = 0;
    return buf;
}

int mica_model_format_chat(const mica_model_t *model, const mica_message_t *messages, size_t n,
                           int add_assistant, char *out_text, size_t capacity, size_t *out_len,
                           mica_error_t *out_error)
{
    mica_diag_t d = {0};
    mica_chat_template_t t;
    char bos[128], eos[128];
    if (mica_chat_detect(model->dm->chat_template, model->dm->chat_template_len, &t, &d) !=
        MICA_OK)
        return fail(&d, out_error);
    const mica_tokenizer_t *tok = model->dm->tokenizer;
    t.bos = token_text(tok, mica_tokenizer_bos(tok), bos, sizeof bos);
    t.eos = token_text(tok, mica_tokenizer_eos(tok), eos, sizeof eos);
    mica_chat_message_t *msgs = malloc((n ? n : 1) * sizeof *msgs);
    if (!msgs) {
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        return fail(&d, out_error);
    }
    for (size_t i = 0; i < n; i++)
        msgs[i] = (mica_chat_message_t){messages[i].role, messages[i].content};
    mica_status_t s = mica_chat_render(&t, msgs, n, add_assistant, out_text, capacity, out_len, &d);
    free(msgs);
    return s == MICA_OK ? ok(out_error) : fail(&d, out_error);
}

/* ------------------------------------------------------------------------ */
/* sessions                                                                  */

mica_session_params_t mica_session_params_default(void)
{
    mica_sampler_params_t sp = mica_sampler_params_default();
    return (mica_session_params_t){.n_threads = 1,
                                   .temperature = sp.temperature,
                                   .top_k = sp.top_k,
                                   .top_p = sp.top_p,
                                   .min_p = sp.min_p,
                                   .repeat_penalty = sp.repeat_penalty,
                                   .repeat_last_n = sp.repeat_last_n,
                                   .seed = sp.seed,
                                   .presence_penalty = sp.presence_penalty,
                                   .frequency_penalty = sp.frequency_penalty};
}

/* Tokens n after n_past must be in the vocabulary and fit the context. */
static mica_status_t check_tokens(const mica_session_t *s, const int32_t *tokens, size_t n,
                                  mica_diag_t *d)
{
    const mica_device_model_t *dm = s->model->dm;
    if (n == 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "no tokens");
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= dm->n_vocab)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "token id %d is outside the vocabulary [0, %d)", tokens[i],
                                 dm->n_vocab);
    if (n > (size_t)(dm->context - s->exec.n_past))
        return mica_diag_set(d, MICA_ERR_RANGE,
                             "the context is full: %d tokens cached and %zu more do not fit in %d",
                             s->exec.n_past, n, dm->context);
    return MICA_OK;
}

/* Runs tokens through the model; rows (n * n_vocab) when every row is
 * wanted. */
static mica_status_t run_tokens(mica_session_t *s, const int32_t *tokens, size_t n, float *rows,
                                mica_diag_t *d)
{
    MICA_TRY(check_tokens(s, tokens, n, d));
    const float *last = NULL;
    if (mica_cpu_exec_run(&s->exec, tokens, (int32_t)n, rows, &last) != MICA_CPU_EXEC_OK)
        return mica_diag_set(d, MICA_ERR_INVALID, "model.so refused to run %zu tokens after %d", n,
                             s->exec.n_past);
    s->last = last;
    return MICA_OK;
}

/* mica_generate_eval_fn over a session. */
static mica_status_t eval_last(void *ctx, const int32_t *tokens, int32_t n,
                               const float **out_logits, mica_diag_t *d)
{
    mica_session_t *s = ctx;
    MICA_TRY(run_tokens(s, tokens, (size_t)n, NULL, d));
    *out_logits = s->last;
    return MICA_OK;
}

static long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

int mica_session_create(const mica_model_t *model, const mica_session_params_t *params,
                        mica_session_t **out_session, mica_error_t *out_error)
{
    *out_session = NULL;
    mica_diag_t d = {0};
    if (params->n_threads < 0 || params->n_threads > (int32_t)MICA_CPU_POOL_MAX_THREADS) {
        mica_diag_set(&d, MICA_ERR_INVALID, "n_threads %d is not in [1, %u]", params->n_threads,
                      MICA_CPU_POOL_MAX_THREADS);
        return fail(&d, out_error);
    }
    if (!(params->min_p >= 0.0f && params->min_p <= 1.0f)) {
        mica_diag_set(&d, MICA_ERR_INVALID, "min_p must be in [0, 1], got %g", params->min_p);
        return fail(&d, out_error);
    }
    mica_session_t *s = calloc(1, sizeof *s);
    if (!s) {
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        return fail(&d, out_error);
    }
    s->model = model;
    mica_sampler_params_t sp = {.temperature = params->temperature,
                                .top_k = params->top_k,
                                .top_p = params->top_p,
                                .repeat_penalty = params->repeat_penalty,
                                .repeat_last_n = params->repeat_last_n,
                                .seed = params->seed,
                                .min_p = params->min_p,
                                .presence_penalty = params->presence_penalty,
                                .frequency_penalty = params->frequency_penalty};
    mica_status_t st = mica_sampler_create(model->dm->n_vocab, &sp, &s->sampler, &d);
    uint32_t threads = params->n_threads ? (uint32_t)params->n_threads : (uint32_t)online_cpus();
    if (threads > MICA_CPU_POOL_MAX_THREADS)
        threads = MICA_CPU_POOL_MAX_THREADS;
    if (st == MICA_OK && mica_cpu_pool_create(threads, &s->pool) != 0)
        st = mica_diag_set(&d, MICA_ERR_NOMEM, "cannot start %u threads", threads);
    if (st == MICA_OK)
        st = mica_device_state_init(&s->mem, model->dm, &d);
    if (st == MICA_OK) {
        mica_cpu_exec_init(&s->exec, model->dm->abi, model->dm->weights.ptr, s->mem.arena,
                           s->mem.states, s->pool);
        st = mica_generator_init(&s->gen, model->dm->tokenizer, s->sampler, eval_last, s, &d);
    }
    if (st != MICA_OK) {
        mica_session_release(s);
        return fail(&d, out_error);
    }
    *out_session = s;
    return ok(out_error);
}

void mica_session_release(mica_session_t *s)
{
    if (!s)
        return;
    mica_generator_deinit(&s->gen);
    mica_cpu_pool_release(s->pool);
    mica_device_state_deinit(&s->mem);
    mica_sampler_release(s->sampler);
    free(s->profile_ns);
    free(s);
}

/* check_tokens, counting the pending token that runs first. */
static mica_status_t check_room(const mica_session_t *s, const int32_t *tokens, size_t n,
                                mica_diag_t *d)
{
    MICA_TRY(check_tokens(s, tokens, n, d));
    int32_t context = s->model->dm->context;
    if (mica_generator_pending(&s->gen) != MICA_TOKEN_NULL &&
        (int64_t)s->exec.n_past + 1 + (int64_t)n > (int64_t)context)
        return mica_diag_set(d, MICA_ERR_RANGE,
                             "the context is full: %d tokens cached, the last generated one and "
                             "%zu more do not fit in %d",
                             s->exec.n_past, n, context);
    return MICA_OK;
}

int mica_session_append_tokens(mica_session_t *s, const int32_t *tokens, size_t n,
                               mica_error_t *out_error)
{
    mica_diag_t d = {0};
    /* checked before the pending token runs, so a refusal changes nothing */
    if ((n > 0 && check_room(s, tokens, n, &d) != MICA_OK) ||
        mica_generator_feed(&s->gen, tokens, n, &d) != MICA_OK)
        return fail(&d, out_error);
    return ok(out_error);
}

int mica_session_append_text(mica_session_t *s, const char *text, size_t len, uint32_t flags,
                             mica_error_t *out_error)
{
    mica_diag_t d = {0};
    const mica_tokenizer_t *tok = s->model->dm->tokenizer;
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        return fail(&d, out_error);
    }
    mica_status_t st =
        mica_tokenizer_encode(tok, text, len, tokenizer_flags(flags), ids, cap, &n, &d);
    if (st == MICA_ERR_RANGE && n > cap) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        st = more ? MICA_OK : mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        if (more) {
            ids = more;
            st = mica_tokenizer_encode(tok, text, len, tokenizer_flags(flags), ids, n, &n, &d);
        }
    }
    int rc = st == MICA_OK ? mica_session_append_tokens(s, ids, n, out_error) : fail(&d, out_error);
    free(ids);
    return rc;
}

/* The user's callback, counting what it was given. */
typedef struct forward {
    mica_token_callback_t callback;
    void *user;
} forward_t;

static int forward_piece(const char *piece, size_t len, int32_t token, void *user)
{
    forward_t *f = user;
    return f->callback(piece, len, token, f->user);
}

int mica_session_generate(mica_session_t *s, int32_t max_tokens, mica_token_callback_t callback,
                          void *user, int32_t *out_n_generated, mica_error_t *out_error)
{
    mica_diag_t d = {0};
    forward_t f = {callback, user};
    mica_generate_stats_t stats;
    mica_status_t st = mica_generator_run(&s->gen, max_tokens, 0, forward_piece, &f, &stats, &d);
    if (out_n_generated)
        *out_n_generated = (int32_t)stats.n_gen;
    return st == MICA_OK ? ok(out_error) : fail(&d, out_error);
}

void mica_session_reset(mica_session_t *s)
{
    mica_cpu_exec_reset(&s->exec);
    /* the KV pages stay: every position is written before attention reads
     * it (keys j <= n_past + t), and dropping them made the next prompt pay
     * a page fault per 4 KiB of cache it wrote (kv_store was 4 % of a
     * SmolLM2 prefill after each reset) */
    mica_generator_reset(&s->gen);
    mica_sampler_reset(s->sampler);
    s->last = NULL;
}

int32_t mica_session_n_past(const mica_session_t *s)
{
    return s->exec.n_past;
}

int mica_session_eval(mica_session_t *s, const int32_t *tokens, size_t n, float *out_logits,
                      mica_error_t *out_error)
{
    mica_diag_t d = {0};
    mica_status_t st = check_room(s, tokens, n, &d);
    if (st == MICA_OK)
        st = mica_generator_feed(&s->gen, NULL, 0, &d); /* the pending token, if any */
    if (st == MICA_OK)
        st = run_tokens(s, tokens, n, out_logits, &d);
    if (st != MICA_OK)
        return fail(&d, out_error);
    mica_generator_continue_from(&s->gen, s->last);
    return ok(out_error);
}

const float *mica_session_logits(const mica_session_t *s)
{
    return s->last;
}

int mica_session_profile_enable(mica_session_t *s, int enable, mica_error_t *out_error)
{
    mica_diag_t d = {0};
    if (!enable) {
        mica_cpu_exec_set_profile(&s->exec, NULL);
        return ok(out_error);
    }
    const mica_abi_model_t *a = s->model->dm->abi;
    size_t n = (size_t)a->prefill.n_ops + a->decode.n_ops;
    if (!s->profile_ns && !(s->profile_ns = malloc((n ? n : 1) * sizeof *s->profile_ns))) {
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        return fail(&d, out_error);
    }
    memset(s->profile_ns, 0, (n ? n : 1) * sizeof *s->profile_ns);
    s->profile = (mica_cpu_profile_t){.ns = {s->profile_ns, s->profile_ns + a->prefill.n_ops}};
    mica_cpu_exec_set_profile(&s->exec, &s->profile);
    return ok(out_error);
}

int mica_session_profile_op(const mica_session_t *s, int graph, uint32_t i,
                            mica_op_profile_t *out_op, uint32_t *out_n_ops, uint64_t *out_calls,
                            mica_error_t *out_error)
{
    mica_diag_t d = {0};
    const mica_abi_model_t *a = s->model->dm->abi;
    if (graph != 0 && graph != 1) {
        mica_diag_set(&d, MICA_ERR_RANGE, "graph %d is neither 0 (prefill) nor 1 (decode)", graph);
        return fail(&d, out_error);
    }
    const mica_abi_graph_t *g = graph ? &a->decode : &a->prefill;
    if (out_n_ops)
        *out_n_ops = g->n_ops;
    if (out_calls)
        *out_calls = s->profile_ns ? s->profile.calls[graph] : 0;
    if (!out_op)
        return ok(out_error);
    if (i >= g->n_ops) {
        mica_diag_set(&d, MICA_ERR_RANGE, "op %u of %u", i, g->n_ops);
        return fail(&d, out_error);
    }
    const mica_abi_op_t *op = &g->ops[i];
    *out_op = (mica_op_profile_t){op->label,
                                  op->kernel,
                                  op->bytes,
                                  op->ops,
                                  op->predicted_ns,
                                  op->n_parts,
                                  s->profile_ns ? s->profile.ns[graph][i] : 0};
    return ok(out_error);
}
