/* GGUF -> IR lowering for the llama and qwen2 architectures. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

#define BAD(...) mica_diag_set(d, MICA_ERR_INVALID, __VA_ARGS__)

static bool get_int(const mica_gguf_t *f, const char *arch, const char *suffix, int64_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return mica_gguf_get_i64(f, key, out);
}

static bool get_float(const mica_gguf_t *f, const char *arch, const char *suffix, double *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return mica_gguf_get_f64(f, key, out);
}

mica_status_t mica_model_config_from_gguf(const mica_gguf_t *f, mica_model_config_t *cfg,
                                          mica_diag_t *d)
{
    memset(cfg, 0, sizeof *cfg);
    mica_gguf_str_t arch;
    if (!mica_gguf_get_str(f, "general.architecture", &arch))
        return BAD("no general.architecture in the metadata");
    if (arch.len >= sizeof cfg->arch_name)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "unsupported architecture (name of %llu bytes)",
                             (unsigned long long)arch.len);
    memcpy(cfg->arch_name, arch.ptr, arch.len);
    cfg->arch_name[arch.len] = 0;
    const char *a = cfg->arch_name;
    if (!strcmp(a, "llama")) {
        cfg->arch = MICA_ARCH_LLAMA;
        cfg->rope_mode = 0;
    } else if (!strcmp(a, "qwen2")) {
        cfg->arch = MICA_ARCH_QWEN2;
        cfg->rope_mode = 2;
    } else {
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "unsupported architecture '%s' (supported: llama, qwen2)", a);
    }

    static const struct {
        const char *key;
        size_t off;
    } required[] = {
        {"embedding_length", offsetof(mica_model_config_t, n_embd)},
        {"block_count", offsetof(mica_model_config_t, n_layer)},
        {"feed_forward_length", offsetof(mica_model_config_t, n_ff)},
        {"attention.head_count", offsetof(mica_model_config_t, n_head)},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        int64_t *dst = (int64_t *)((char *)cfg + required[i].off);
        if (!get_int(f, a, required[i].key, dst))
            return BAD("missing or non-integer %s.%s", a, required[i].key);
        if (*dst < 1 || *dst > (1 << 20))
            return BAD("%s.%s = %lld is out of range", a, required[i].key, (long long)*dst);
    }
    if (!get_int(f, a, "attention.head_count_kv", &cfg->n_head_kv))
        cfg->n_head_kv = cfg->n_head;
    if (cfg->n_head_kv < 1 || cfg->n_head % cfg->n_head_kv != 0)
        return BAD("%lld heads are not a multiple of %lld kv heads", (long long)cfg->n_head,
                   (long long)cfg->n_head_kv);
    cfg->head_dim = cfg->n_embd / cfg->n_head;
    int64_t key_len, val_len;
    if (get_int(f, a, "attention.key_length", &key_len))
        cfg->head_dim = key_len;
    if (get_int(f, a, "attention.value_length", &val_len) && val_len != cfg->head_dim)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "value length %lld != key length %lld",
                             (long long)val_len, (long long)cfg->head_dim);
    if (cfg->head_dim < 2 || cfg->head_dim > 4096 || cfg->head_dim % 2)
        return BAD("head dim %lld is not an even number in [2, 4096]", (long long)cfg->head_dim);
    if (!get_int(f, a, "context_length", &cfg->n_ctx))
        cfg->n_ctx = 0;
    if (!get_float(f, a, "attention.layer_norm_rms_epsilon", &cfg->norm_eps))
        return BAD("missing %s.attention.layer_norm_rms_epsilon", a);
    if (!(cfg->norm_eps > 0 && cfg->norm_eps < 1))
        return BAD("rms norm epsilon %g is out of range", cfg->norm_eps);
    if (!get_float(f, a, "rope.freq_base", &cfg->rope_theta))
        cfg->rope_theta = 10000.0;
    if (!(cfg->rope_theta > 1))
        return BAD("rope.freq_base %g is out of range", cfg->rope_theta);
    if (!get_int(f, a, "rope.dimension_count", &cfg->rope_dims))
        cfg->rope_dims = cfg->head_dim;
    if (cfg->rope_dims < 2 || cfg->rope_dims > cfg->head_dim || cfg->rope_dims % 2)
        return BAD("rope.dimension_count %lld is out of range", (long long)cfg->rope_dims);
    cfg->rope_freq_scale = 1.0;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    mica_gguf_str_t scaling;
    if (mica_gguf_get_str(f, key, &scaling) && !mica_gguf_str_eq(scaling, "none")) {
        if (!mica_gguf_str_eq(scaling, "linear"))
            return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "unsupported rope scaling '%.*s'",
                                 (int)(scaling.len > 32 ? 32 : scaling.len), scaling.ptr);
        double factor;
        if (!get_float(f, a, "rope.scaling.factor", &factor) || !(factor > 0))
            return BAD("linear rope scaling without a positive factor");
        cfg->rope_freq_scale = 1.0 / factor;
    } else {
        double factor;
        if (get_float(f, a, "rope.scale_linear", &factor) && factor > 0)
            cfg->rope_freq_scale = 1.0 / factor;
    }
    if (mica_gguf_find_tensor(f, "rope_freqs.weight"))
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "rope frequency factors (rope_freqs.weight) are not supported yet");

    const mica_gguf_tensor_t *emb = mica_gguf_find_tensor(f, "token_embd.weight");
    if (!emb || emb->n_dims != 2)
        return BAD("missing 2-D tensor token_embd.weight");
    cfg->n_vocab = emb->ne[1];
    cfg->tied_output = mica_gguf_find_tensor(f, "output.weight") == NULL;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */

typedef struct builder {
    const mica_gguf_t *f;
    mica_graph_t *g;
    mica_diag_t *d;
    mica_status_t status; /* first tensor error */
} builder_t;

/* Weight node for tensor `name`, which must have the given IR shape
 * (outermost first). Records an error and returns -1 otherwise. */
static int32_t weight(builder_t *b, const char *name, int32_t rank, int64_t d0, int64_t d1)
{
    if (b->status != MICA_OK)
        return -1;
    const mica_gguf_tensor_t *t = mica_gguf_find_tensor(b->f, name);
    if (!t) {
        b->status = mica_diag_set(b->d, MICA_ERR_INVALID, "missing tensor %s", name);
        return -1;
    }
    int64_t want[2] = {d0, d1};
    int64_t have_ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
    bool ok = t->n_dims == rank || (t->n_dims >= rank && have_ne[rank] == 1);
    for (int32_t i = 0; ok && i < rank; i++)
        ok = have_ne[i] == want[rank - 1 - i];
    if (!ok) {
        b->status = mica_diag_set(b->d, MICA_ERR_INVALID,
                                  "tensor %s has shape [%lld, %lld] (GGUF order), expected [%lld, %lld]",
                                  name, (long long)t->ne[0], (long long)t->ne[1],
                                  (long long)(rank == 2 ? d1 : d0), (long long)(rank == 2 ? d0 : 1));
        return -1;
    }
    if (rank == 1 && !mica_dtype_is_float(t->dtype)) {
        b->status = mica_diag_set(b->d, MICA_ERR_UNSUPPORTED, "tensor %s: %s vectors are not supported",
                                  name, mica_dtype_name(t->dtype));
        return -1;
    }
    mica_type_t ty = mica_type_make(t->dtype, rank, want);
    int32_t id = mica_build_weight(b->g, name, ty, t->data, t->nbytes);
    if (id < 0) {
        b->status = mica_diag_set(b->d, b->g->error.code ? b->g->error.code : MICA_ERR_INVALID,
                                  "tensor %s: %s", name, b->g->error.msg);
    }
    return id;
}

static int32_t layer_weight(builder_t *b, int64_t layer, const char *what, int32_t rank,
                            int64_t d0, int64_t d1)
{
    char name[96];
    snprintf(name, sizeof name, "blk.%lld.%s", (long long)layer, what);
    return weight(b, name, rank, d0, d1);
}

/* x [T, n] @ W^T (+ bias) */
static int32_t linear(builder_t *b, int32_t x, int64_t layer, const char *w, const char *bias,
                      int64_t n_out, int64_t n_in)
{
    int32_t y = mica_build_binary(b->g, MICA_OP_MATMUL, x, layer_weight(b, layer, w, 2, n_out, n_in));
    if (bias)
        y = mica_build_binary(b->g, MICA_OP_ADD, y, layer_weight(b, layer, bias, 1, n_out, 0));
    return y;
}

/* The body of both builders. capacity > 0 builds the static form (KV cache
 * as state of that many tokens, run-time lengths); else the step form for
 * n_past cached tokens. */
static mica_status_t build(const mica_gguf_t *f, const mica_model_config_t *cfg, int64_t n_tokens,
                           int64_t n_past, int64_t capacity, bool all_logits,
                           mica_graph_t **out_graph, mica_diag_t *d)
{
    mica_graph_t *g;
    if (mica_graph_create(&g) != MICA_OK)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    builder_t b = {f, g, d, MICA_OK};
    const int64_t T = n_tokens, D = cfg->n_embd, H = cfg->n_head, Hkv = cfg->n_head_kv;
    const int64_t Dh = cfg->head_dim, F = cfg->n_ff, V = cfg->n_vocab;
    const bool bias = cfg->arch == MICA_ARCH_QWEN2;
    const double kq_scale = 1.0 / sqrt((double)Dh);

    const bool is_static = capacity > 0;
    int32_t tokens = mica_build_input(g, "tokens", mica_type_make(MICA_DTYPE_I32, 1, &T));
    int32_t pos = mica_build_input(g, "pos", mica_type_make(MICA_DTYPE_I32, 1, &T));
    int32_t p0 = -1, count = -1;
    if (is_static) {
        p0 = mica_build_input(g, "n_past", mica_type_make(MICA_DTYPE_I32, 0, NULL));
        count = mica_build_input(g, "n_tokens", mica_type_make(MICA_DTYPE_I32, 0, NULL));
    }
    int32_t emb = weight(&b, "token_embd.weight", 2, V, D);
    int32_t x = mica_build_binary(g, MICA_OP_EMBEDDING, emb, tokens);

    for (int64_t l = 0; l < cfg->n_layer && b.status == MICA_OK; l++) {
        char name[64];
        int32_t h = mica_build_rms_norm(g, x, layer_weight(&b, l, "attn_norm.weight", 1, D, 0),
                                        cfg->norm_eps);
        int32_t q = linear(&b, h, l, "attn_q.weight", bias ? "attn_q.bias" : NULL, H * Dh, D);
        int32_t k = linear(&b, h, l, "attn_k.weight", bias ? "attn_k.bias" : NULL, Hkv * Dh, D);
        int32_t v = linear(&b, h, l, "attn_v.weight", bias ? "attn_v.bias" : NULL, Hkv * Dh, D);
        const int64_t q_shape[3] = {T, H, Dh}, kv_shape[3] = {T, Hkv, Dh};
        q = mica_build_reshape(g, q, 3, q_shape);
        k = mica_build_reshape(g, k, 3, kv_shape);
        v = mica_build_reshape(g, v, 3, kv_shape);
        q = mica_build_rope(g, q, pos, cfg->rope_mode, cfg->rope_dims, cfg->rope_theta,
                            cfg->rope_freq_scale);
        k = mica_build_rope(g, k, pos, cfg->rope_mode, cfg->rope_dims, cfg->rope_theta,
                            cfg->rope_freq_scale);
        int32_t att;
        if (is_static) {
            const int64_t cache_shape[3] = {Hkv, capacity, Dh};
            mica_type_t ct = mica_type_make(MICA_DTYPE_F32, 3, cache_shape);
            snprintf(name, sizeof name, "k_cache.%lld", (long long)l);
            int32_t ks = mica_build_kv_store(g, mica_build_state(g, name, ct), k, p0, count);
            snprintf(name, sizeof name, "v_cache.%lld", (long long)l);
            int32_t vs = mica_build_kv_store(g, mica_build_state(g, name, ct), v, p0, count);
            att = mica_build_attention_kv(g, q, ks, vs, p0, count, kq_scale);
        } else {
            snprintf(name, sizeof name, "k_new.%lld", (long long)l);
            mica_build_output(g, name, k);
            snprintf(name, sizeof name, "v_new.%lld", (long long)l);
            mica_build_output(g, name, v);
            if (n_past > 0) {
                const int64_t cache_shape[3] = {n_past, Hkv, Dh};
                mica_type_t ct = mica_type_make(MICA_DTYPE_F32, 3, cache_shape);
                snprintf(name, sizeof name, "k_cache.%lld", (long long)l);
                int32_t kk[2] = {mica_build_input(g, name, ct), k};
                snprintf(name, sizeof name, "v_cache.%lld", (long long)l);
                int32_t vv[2] = {mica_build_input(g, name, ct), v};
                k = mica_build_concat(g, 2, kk, 0);
                v = mica_build_concat(g, 2, vv, 0);
            }
            att = mica_build_attention(g, q, k, v, kq_scale);
        }
        const int64_t merged[2] = {T, H * Dh};
        att = mica_build_reshape(g, att, 2, merged);
        x = mica_build_binary(g, MICA_OP_ADD, x, linear(&b, att, l, "attn_output.weight", NULL, D, H * Dh));

        h = mica_build_rms_norm(g, x, layer_weight(&b, l, "ffn_norm.weight", 1, D, 0), cfg->norm_eps);
        int32_t gate = linear(&b, h, l, "ffn_gate.weight", NULL, F, D);
        int32_t up = linear(&b, h, l, "ffn_up.weight", NULL, F, D);
        int32_t act = mica_build_binary(g, MICA_OP_MUL, mica_build_unary(g, MICA_OP_SILU, gate), up);
        x = mica_build_binary(g, MICA_OP_ADD, x, linear(&b, act, l, "ffn_down.weight", NULL, D, F));
    }
    if (!all_logits && T > 1 && !is_static) {
        const int64_t starts[2] = {T - 1, 0}, ends[2] = {T, D};
        x = mica_build_slice(g, x, starts, ends, NULL);
    }
    x = mica_build_rms_norm(g, x, weight(&b, "output_norm.weight", 1, D, 0), cfg->norm_eps);
    int32_t head = cfg->tied_output ? emb : weight(&b, "output.weight", 2, V, D);
    mica_build_output(g, "logits", mica_build_binary(g, MICA_OP_MATMUL, x, head));

    if (b.status == MICA_OK && g->error.code != MICA_OK)
        b.status = mica_diag_set(d, g->error.code, "building the graph: %s", g->error.msg);
    if (b.status != MICA_OK) {
        mica_graph_release(g);
        return b.status;
    }
    *out_graph = g;
    return MICA_OK;
}

mica_status_t mica_model_build(const mica_gguf_t *f, const mica_model_config_t *cfg,
                               int64_t n_tokens, int64_t n_past, bool all_logits,
                               mica_graph_t **out_graph, mica_diag_t *d)
{
    if (n_tokens < 1 || n_past < 0 || n_tokens > (1 << 24) || n_past > (1 << 24))
        return BAD("cannot build a step of %lld tokens after %lld", (long long)n_tokens,
                   (long long)n_past);
    return build(f, cfg, n_tokens, n_past, 0, all_logits, out_graph, d);
}

mica_status_t mica_model_build_static(const mica_gguf_t *f, const mica_model_config_t *cfg,
                                      int64_t n_tokens, int64_t capacity,
                                      mica_graph_t **out_graph, mica_diag_t *d)
{
    if (n_tokens < 1 || capacity < n_tokens || capacity > (1 << 24))
        return BAD("cannot build a static graph of %lld tokens over a cache of %lld",
                   (long long)n_tokens, (long long)capacity);
    return build(f, cfg, n_tokens, 0, capacity, true, out_graph, d);
}
