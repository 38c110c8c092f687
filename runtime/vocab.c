/* GGUF tokenizer metadata -> mica_vocab_desc_t (runtime/vocab.h). */
#include "vocab.h"

#include <stdlib.h>
#include <string.h>

#define KEY(s) "tokenizer.ggml." s

/* Pre-tokenizer names for which llama.cpp turns add_bos on by default. */
static const char *const PRE_ADDS_BOS[] = {
    "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
};

static bool str_is(mica_gguf_str_t s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (mica_gguf_str_eq(s, names[i]))
            return true;
    return false;
}

/* An array key of `elem` type (or either of two), at least `min` long. */
static mica_status_t find_array(const mica_gguf_meta_t *m, const char *key, mica_gguf_type_t elem,
                                mica_gguf_type_t elem2, uint64_t min, const mica_gguf_kv_t **out,
                                mica_diag_t *d)
{
    const mica_gguf_kv_t *kv = mica_gguf_meta_find(m, key);
    *out = kv;
    if (!kv)
        return MICA_OK;
    if (kv->type != MICA_GGUF_ARRAY || (kv->elem_type != elem && kv->elem_type != elem2))
        return mica_diag_set(d, MICA_ERR_INVALID, "%s has the wrong type", key);
    if (kv->count < min)
        return mica_diag_set(d, MICA_ERR_INVALID, "%s has %llu entries for %llu tokens", key,
                             (unsigned long long)kv->count, (unsigned long long)min);
    return MICA_OK;
}

/* Special id from `key` if present and inside the vocabulary, else `def`
 * (itself dropped when outside), as llama.cpp. */
static int32_t special_id(const mica_gguf_meta_t *m, const char *key, int64_t def, uint32_t n)
{
    uint64_t v;
    if (mica_gguf_meta_get_u64(m, key, &v) && v < n)
        return (int32_t)v;
    return def >= 0 && def < (int64_t)n ? (int32_t)def : MICA_TOKEN_NULL;
}

static void get_flag(const mica_gguf_meta_t *m, const char *key, bool *v)
{
    bool b;
    if (mica_gguf_meta_get_bool(m, key, &b))
        *v = b;
}

mica_status_t mica_vocab_from_gguf_meta(const mica_gguf_meta_t *m, mica_vocab_t *out,
                                        mica_diag_t *d)
{
    memset(out, 0, sizeof *out);
    mica_vocab_desc_t *v = &out->desc;

    mica_gguf_str_t model;
    if (!mica_gguf_meta_get_str(m, KEY("model"), &model))
        return mica_diag_set(d, MICA_ERR_INVALID, "no " KEY("model") " string");
    if (mica_gguf_str_eq(model, "llama"))
        v->kind = MICA_VOCAB_SPM;
    else if (mica_gguf_str_eq(model, "gpt2"))
        v->kind = MICA_VOCAB_BPE;
    else
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "tokenizer model '%.*s' is not supported",
                             (int)(model.len > 64 ? 64 : model.len), model.ptr);

    const mica_gguf_kv_t *tokens, *scores, *types, *merges = NULL;
    MICA_TRY(find_array(m, KEY("tokens"), MICA_GGUF_STRING, MICA_GGUF_STRING, 0, &tokens, d));
    if (!tokens)
        return mica_diag_set(d, MICA_ERR_INVALID, "no " KEY("tokens") " array");
    if (tokens->count == 0 || tokens->count > (1u << 30))
        return mica_diag_set(d, MICA_ERR_INVALID, KEY("tokens") " has %llu entries",
                             (unsigned long long)tokens->count);
    uint32_t n = (uint32_t)tokens->count;
    MICA_TRY(find_array(m, KEY("scores"), MICA_GGUF_FLOAT32, MICA_GGUF_INT32, n, &scores, d));
    MICA_TRY(find_array(m, KEY("token_type"), MICA_GGUF_INT32, MICA_GGUF_INT32, n, &types, d));
    uint32_t n_merges = 0;
    if (v->kind == MICA_VOCAB_BPE) {
        MICA_TRY(find_array(m, KEY("merges"), MICA_GGUF_STRING, MICA_GGUF_STRING, 0, &merges, d));
        if (!merges)
            return mica_diag_set(d, MICA_ERR_INVALID, "no " KEY("merges") " array");
        if (merges->count > (1u << 30))
            return mica_diag_set(d, MICA_ERR_INVALID, KEY("merges") " has %llu entries",
                                 (unsigned long long)merges->count);
        n_merges = (uint32_t)merges->count;
    }

    size_t sz = (size_t)n * (sizeof(mica_vocab_str_t) + sizeof(float) + sizeof(int32_t)) +
                (size_t)n_merges * sizeof(mica_vocab_str_t);
    char *mem = malloc(sz ? sz : 1);
    if (!mem)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a vocabulary of %u tokens", n);
    mica_vocab_str_t *tok = (mica_vocab_str_t *)mem;
    mica_vocab_str_t *mrg = tok + n;
    float *sc = (float *)(mrg + n_merges);
    int32_t *ty = (int32_t *)(sc + n);
    out->mem = mem;

    for (uint32_t i = 0; i < n; i++) {
        mica_gguf_str_t s;
        if (!mica_gguf_array_str(tokens, i, &s))
            goto bad_tokens;
        tok[i] = (mica_vocab_str_t){s.ptr, (size_t)s.len};
        double x = 0.0;
        if (scores && !mica_gguf_array_f64(scores, i, &x))
            goto bad_tokens;
        sc[i] = (float)x;
        int64_t t = MICA_TOKEN_TYPE_NORMAL;
        if (types && !mica_gguf_array_i64(types, i, &t))
            goto bad_tokens;
        ty[i] = (int32_t)(t >= 0 && t <= MICA_TOKEN_TYPE_BYTE ? t : MICA_TOKEN_TYPE_UNDEFINED);
    }
    for (uint32_t i = 0; i < n_merges; i++) {
        mica_gguf_str_t s;
        if (!mica_gguf_array_str(merges, i, &s)) {
            mica_vocab_deinit(out);
            return mica_diag_set(d, MICA_ERR_INVALID, KEY("merges") " entry %u is unreadable", i);
        }
        mrg[i] = (mica_vocab_str_t){s.ptr, (size_t)s.len};
    }

    v->n_tokens = n;
    v->tokens = tok;
    v->scores = sc;
    v->types = ty;
    v->n_merges = n_merges;
    v->merges = n_merges ? mrg : NULL;
    mica_gguf_str_t pre = {"", 0};
    mica_gguf_meta_get_str(m, KEY("pre"), &pre);
    v->pre = (mica_vocab_str_t){pre.ptr, (size_t)pre.len};

    /* llama.cpp's defaults per model (its BPE default of 11 included) */
    bool spm = v->kind == MICA_VOCAB_SPM;
    v->bos_id = special_id(m, KEY("bos_token_id"), spm ? 1 : 11, n);
    v->eos_id = special_id(m, KEY("eos_token_id"), spm ? 2 : 11, n);
    v->unk_id = special_id(m, KEY("unknown_token_id"), spm ? 0 : -1, n);
    v->pad_id = special_id(m, KEY("padding_token_id"), -1, n);
    v->add_bos = spm || str_is(pre, PRE_ADDS_BOS, sizeof PRE_ADDS_BOS / sizeof PRE_ADDS_BOS[0]);
    v->add_eos = false;
    v->add_space_prefix = spm;
    get_flag(m, KEY("add_bos_token"), &v->add_bos);
    get_flag(m, KEY("add_eos_token"), &v->add_eos);
    get_flag(m, KEY("add_space_prefix"), &v->add_space_prefix);
    return MICA_OK;

bad_tokens:
    mica_vocab_deinit(out);
    return mica_diag_set(d, MICA_ERR_INVALID,
                         "unreadable tokenizer arrays (tokens/scores/token_type)");
}

void mica_vocab_deinit(mica_vocab_t *v)
{
    if (!v)
        return;
    free(v->mem);
    memset(v, 0, sizeof *v);
}
