#include "ref_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "ref.h"

struct mica_ref_model {
    mica_gguf_t *file;
    mica_model_config_t cfg;
    char after[32];
    int64_t n_past, cap;  /* tokens cached, capacity in tokens */
    float **k, **v;       /* per layer [cap, n_head_kv, head_dim] */
};

mica_status_t mica_ref_model_open(const char *path, const char *after,
                                  mica_ref_model_t **out_model, mica_diag_t *d)
{
    if (after && strcmp(after, "import") != 0 && !mica_pass_find(after))
        return mica_diag_set(d, MICA_ERR_INVALID, "unknown pass '%s'", after);
    mica_ref_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    if (after)
        snprintf(m->after, sizeof m->after, "%s", after);
    mica_status_t s = mica_gguf_open(path, &m->file, d);
    if (s == MICA_OK)
        s = mica_model_config_from_gguf(m->file, &m->cfg, d);
    if (s == MICA_OK) {
        m->k = calloc((size_t)m->cfg.n_layer, sizeof *m->k);
        m->v = calloc((size_t)m->cfg.n_layer, sizeof *m->v);
        if (!m->k || !m->v)
            s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    if (s != MICA_OK) {
        mica_ref_model_close(m);
        return s;
    }
    *out_model = m;
    return MICA_OK;
}

void mica_ref_model_close(mica_ref_model_t *m)
{
    if (!m)
        return;
    for (int64_t l = 0; m->k && l < m->cfg.n_layer; l++) {
        free(m->k[l]);
        free(m->v[l]);
    }
    free(m->k);
    free(m->v);
    mica_gguf_close(m->file);
    free(m);
}

const mica_model_config_t *mica_ref_model_config(const mica_ref_model_t *m)
{
    return &m->cfg;
}

const mica_gguf_t *mica_ref_model_gguf(const mica_ref_model_t *m)
{
    return m->file;
}

int64_t mica_ref_model_n_past(const mica_ref_model_t *m)
{
    return m->n_past;
}

void mica_ref_model_reset(mica_ref_model_t *m)
{
    m->n_past = 0;
}

/* Makes room for `need` cached tokens in every layer. */
static mica_status_t reserve(mica_ref_model_t *m, int64_t need, mica_diag_t *d)
{
    if (need <= m->cap)
        return MICA_OK;
    int64_t cap = m->cap ? m->cap : 64;
    while (cap < need)
        cap *= 2;
    size_t row = (size_t)(m->cfg.n_head_kv * m->cfg.head_dim) * sizeof(float);
    for (int64_t l = 0; l < m->cfg.n_layer; l++) {
        float *k = realloc(m->k[l], (size_t)cap * row);
        if (k)
            m->k[l] = k;
        float *v = realloc(m->v[l], (size_t)cap * row);
        if (v)
            m->v[l] = v;
        if (!k || !v)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a KV cache of %lld tokens",
                                 (long long)cap);
    }
    m->cap = cap;
    return MICA_OK;
}

mica_status_t mica_ref_model_eval(mica_ref_model_t *m, const int32_t *tokens, int32_t n,
                                  bool all_logits, float *out_logits, mica_diag_t *d)
{
    const mica_model_config_t *c = &m->cfg;
    if (n < 1)
        return mica_diag_set(d, MICA_ERR_INVALID, "no tokens to evaluate");
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab)
            return mica_diag_set(d, MICA_ERR_RANGE, "token id %d is outside the vocabulary [0, %lld)",
                                 tokens[i], (long long)c->n_vocab);
    if (c->n_ctx > 0 && m->n_past + n > c->n_ctx)
        return mica_diag_set(d, MICA_ERR_RANGE, "%lld tokens exceed the model's context of %lld",
                             (long long)(m->n_past + n), (long long)c->n_ctx);
    MICA_TRY(reserve(m, m->n_past + n, d));

    mica_graph_t *g = NULL;
    MICA_TRY(mica_model_build(m->file, c, n, m->n_past, all_logits, &g, d));
    mica_status_t s = MICA_OK;
    if (m->after[0] && strcmp(m->after, "import") != 0)
        s = mica_pipeline_run(&g, m->after, false, d);

    const int64_t L = c->n_layer, P = m->n_past;
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    mica_ref_tensor_t *in = calloc((size_t)(2 + 2 * L), sizeof *in);
    char (*names)[32] = calloc((size_t)(2 * L), sizeof *names);
    mica_ref_outputs_t *out = NULL;
    if (s == MICA_OK && (!pos || !in || !names))
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    if (s == MICA_OK) {
        int64_t nn = n;
        for (int32_t i = 0; i < n; i++)
            pos[i] = (int32_t)(P + i);
        in[0] = (mica_ref_tensor_t){"tokens", mica_type_make(MICA_DTYPE_I32, 1, &nn), (void *)tokens};
        in[1] = (mica_ref_tensor_t){"pos", mica_type_make(MICA_DTYPE_I32, 1, &nn), pos};
        int32_t n_in = 2;
        if (P > 0) {
            const int64_t shape[3] = {P, c->n_head_kv, c->head_dim};
            for (int64_t l = 0; l < L; l++) {
                snprintf(names[2 * l], sizeof names[0], "k_cache.%lld", (long long)l);
                snprintf(names[2 * l + 1], sizeof names[0], "v_cache.%lld", (long long)l);
                in[n_in++] = (mica_ref_tensor_t){names[2 * l], mica_type_make(MICA_DTYPE_F32, 3, shape), m->k[l]};
                in[n_in++] = (mica_ref_tensor_t){names[2 * l + 1], mica_type_make(MICA_DTYPE_F32, 3, shape), m->v[l]};
            }
        }
        s = mica_ref_execute(g, in, n_in, &out, d);
    }
    if (s == MICA_OK) {
        size_t row = (size_t)(c->n_head_kv * c->head_dim);
        for (int64_t l = 0; l < L && s == MICA_OK; l++) {
            char kn[32], vn[32];
            snprintf(kn, sizeof kn, "k_new.%lld", (long long)l);
            snprintf(vn, sizeof vn, "v_new.%lld", (long long)l);
            const mica_ref_tensor_t *k = mica_ref_outputs_find(out, kn);
            const mica_ref_tensor_t *v = mica_ref_outputs_find(out, vn);
            if (!k || !v) {
                s = mica_diag_set(d, MICA_ERR_INVALID, "step graph has no output %s", kn);
                break;
            }
            memcpy(m->k[l] + (size_t)P * row, k->data, (size_t)n * row * sizeof(float));
            memcpy(m->v[l] + (size_t)P * row, v->data, (size_t)n * row * sizeof(float));
        }
        const mica_ref_tensor_t *lg = mica_ref_outputs_find(out, "logits");
        if (s == MICA_OK && !lg)
            s = mica_diag_set(d, MICA_ERR_INVALID, "step graph has no logits output");
        if (s == MICA_OK) {
            size_t rows = all_logits ? (size_t)n : 1;
            const float *src = (const float *)lg->data + (mica_type_numel(&lg->type) / c->n_vocab - (int64_t)rows) * c->n_vocab;
            memcpy(out_logits, src, rows * (size_t)c->n_vocab * sizeof(float));
            m->n_past += n;
        }
    }
    mica_ref_outputs_release(out);
    free(pos);
    free(in);
    free(names);
    mica_graph_release(g);
    return s;
}
