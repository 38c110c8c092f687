/* Tokenizer object: create (one allocation), lookups, special tokens,
 * encode driver, decode and streaming decode. The two algorithms live in
 * tok_spm.c and tok_bpe.c; the merge loop they share is here. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- pre-tokenizer names ---- */

typedef struct pre_def {
    const char *name;
    mica_tok_split_t stages[MICA_TOK_MAX_STAGES];
    int n_stages;
    bool ignore_merges;
    bool clean_spaces;
} pre_def_t;

#define S_GPT2 MICA_TOK_SPLIT_GPT2
#define S_LLAMA3 MICA_TOK_SPLIT_LLAMA3
#define S_QWEN2 MICA_TOK_SPLIT_QWEN2

/* The names llama.cpp gives these regex sets, with its per-name settings. */
static const pre_def_t PRE_DEFS[] = {
    {"default",
     {MICA_TOK_SPLIT_PUNCT, S_GPT2, MICA_TOK_SPLIT_DIGITS, MICA_TOK_SPLIT_ASCII_DIGIT3},
     4,
     false,
     true},
    {"gpt-2", {S_GPT2}, 1, false, true},
    {"roberta-bpe", {S_GPT2}, 1, false, true},
    {"phi-2", {S_GPT2}, 1, false, true},
    {"gigachat", {S_GPT2}, 1, false, true},
    {"a.x-4.0", {S_GPT2}, 1, false, true},
    {"mellum", {S_GPT2}, 1, false, true},
    {"exaone4", {S_GPT2}, 1, false, true},
    {"mpt", {S_GPT2}, 1, false, true},
    {"olmo", {S_GPT2}, 1, false, true},
    {"jais", {S_GPT2}, 1, false, true},
    {"trillion", {S_GPT2}, 1, false, false},
    {"granite-docling", {S_GPT2}, 1, false, false},
    {"llama3", {S_LLAMA3}, 1, true, true},
    {"llama-v3", {S_LLAMA3}, 1, true, true},
    {"llama-bpe", {S_LLAMA3}, 1, true, true},
    {"falcon3", {S_LLAMA3}, 1, true, true},
    {"falcon-h1", {S_LLAMA3}, 1, true, true},
    {"pixtral", {S_LLAMA3}, 1, true, true},
    {"midm-2.0", {S_LLAMA3}, 1, true, true},
    {"lfm2", {S_LLAMA3}, 1, true, true},
    {"dbrx", {S_LLAMA3}, 1, false, true},
    {"smaug-bpe", {S_LLAMA3}, 1, false, true},
    {"qwen2", {S_QWEN2}, 1, false, false},
    {"deepseek-r1-qwen", {S_QWEN2}, 1, false, false},
    {"hunyuan", {S_QWEN2}, 1, false, false},
    {"megrez", {S_QWEN2}, 1, false, true},
    {"stablelm2", {S_QWEN2}, 1, false, true},
    {"falcon", {MICA_TOK_SPLIT_PUNCT_TICK, S_GPT2, MICA_TOK_SPLIT_ASCII_DIGIT3}, 3, false, true},
    {"deepseek-llm",
     {MICA_TOK_SPLIT_NEWLINE, MICA_TOK_SPLIT_DS_LETTERS, MICA_TOK_SPLIT_DS_PUNCTS,
      MICA_TOK_SPLIT_TRAILING_SPACE, MICA_TOK_SPLIT_CJK, MICA_TOK_SPLIT_DIGITS},
     6,
     false,
     false},
    {"deepseek-coder",
     {MICA_TOK_SPLIT_NEWLINE, MICA_TOK_SPLIT_SPACE_LETTERS, MICA_TOK_SPLIT_SPACE_PUNCTS,
      MICA_TOK_SPLIT_CJK, MICA_TOK_SPLIT_DIGIT},
     5,
     false,
     false},
    {"smollm", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, false},
    {"command-r", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, false},
    {"starcoder", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, true},
    {"refact", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, true},
    {"codeshell", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, true},
    {"exaone", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, true},
    {"minerva-7b", {MICA_TOK_SPLIT_DIGIT, S_GPT2}, 2, false, true},
};

static const pre_def_t *find_pre(mica_vocab_str_t name)
{
    if (name.len == 0)
        return &PRE_DEFS[0];
    for (size_t i = 0; i < sizeof PRE_DEFS / sizeof PRE_DEFS[0]; i++)
        if (strlen(PRE_DEFS[i].name) == name.len &&
            memcmp(PRE_DEFS[i].name, name.ptr, name.len) == 0)
            return &PRE_DEFS[i];
    return NULL;
}

/* Texts llama.cpp treats as end of generation; it makes them control tokens. */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>",    "<|im_end|>",      "<|end|>",    "<end_of_turn>",
    "<|endoftext|>", "<|end_of_text|>", "<|eom_id|>", "<EOT>",
};

/* ---- hashing ---- */

uint32_t mica_tok_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h ^ (h >> 15);
}

static uint32_t merge_hash(const char *s, size_t n, size_t split)
{
    return mica_tok_hash(s, n) ^ ((uint32_t)split * 0x9E3779B1u);
}

/* Slot of the token table where the search for s[0..n) ends: the one
 * holding that token, or the empty one where it would go. */
static uint32_t token_slot(const mica_tokenizer_t *t, const char *s, size_t n)
{
    uint32_t i = mica_tok_hash(s, n) & t->tok_mask;
    for (;;) {
        uint32_t slot = t->tok_slots[i];
        if (slot == 0)
            return i;
        uint32_t id = slot - 1;
        if (t->tok_off[id + 1] - t->tok_off[id] == n &&
            memcmp(t->tok_text + t->tok_off[id], s, n) == 0)
            return i;
        i = (i + 1) & t->tok_mask;
    }
}

/* The same for the merge table and the pair s[0..split) + s[split..n). */
static uint32_t merge_slot(const mica_tokenizer_t *t, const char *s, size_t n, size_t split)
{
    uint32_t i = merge_hash(s, n, split) & t->merge_mask;
    for (;;) {
        uint32_t slot = t->merge_slots[i];
        if (slot == 0)
            return i;
        uint32_t r = slot - 1;
        if (t->merge_split[r] == split && t->merge_off[r + 1] - t->merge_off[r] == n &&
            memcmp(t->merge_text + t->merge_off[r], s, n) == 0)
            return i;
        i = (i + 1) & t->merge_mask;
    }
}

int32_t mica_tok_lookup(const mica_tokenizer_t *t, const char *s, size_t n)
{
    if (n == 0 || n > t->max_token_len)
        return MICA_TOKEN_NULL;
    uint32_t slot = t->tok_slots[token_slot(t, s, n)];
    return slot ? (int32_t)(slot - 1) : MICA_TOKEN_NULL;
}

int32_t mica_tok_merge_rank(const mica_tokenizer_t *t, const char *s, size_t n, size_t split)
{
    if (t->n_merges == 0 || n > t->max_merge_len)
        return -1;
    uint32_t slot = t->merge_slots[merge_slot(t, s, n, split)];
    return slot ? (int32_t)(slot - 1) : -1;
}

/* ---- create ---- */

/* Reserves `bytes` at `align` in a layout being measured. */
static size_t take(size_t *total, size_t bytes, size_t align)
{
    size_t at = (*total + align - 1) & ~(align - 1);
    *total = at + bytes;
    return at;
}

static uint32_t table_size(uint32_t n)
{
    uint32_t cap = 16;
    while (cap < 2 * (uint64_t)n)
        cap *= 2;
    return cap;
}

/* Position of the ' ' that splits a merge, searched from index 1 as
 * llama.cpp does; len when there is none. */
static size_t merge_space(mica_vocab_str_t m)
{
    for (size_t i = 1; i < m.len; i++)
        if (m.ptr[i] == ' ')
            return i;
    return m.len;
}

static bool is_special_type(int32_t ty)
{
    return ty == MICA_TOKEN_TYPE_CONTROL || ty == MICA_TOKEN_TYPE_USER_DEFINED ||
           ty == MICA_TOKEN_TYPE_UNKNOWN;
}

static bool eog_text(const char *s, size_t n)
{
    for (size_t i = 0; i < sizeof EOG_TEXTS / sizeof EOG_TEXTS[0]; i++)
        if (strlen(EOG_TEXTS[i]) == n && memcmp(EOG_TEXTS[i], s, n) == 0)
            return true;
    return false;
}

static bool id_ok(int32_t id, uint32_t n)
{
    return id == MICA_TOKEN_NULL || (id >= 0 && (uint32_t)id < n);
}

mica_status_t mica_tokenizer_create(const mica_vocab_desc_t *desc, mica_tokenizer_t **out_tok,
                                    mica_diag_t *d)
{
    if (!desc || !out_tok)
        return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer: NULL argument");
    *out_tok = NULL;
    const mica_vocab_desc_t *v = desc;
    if (v->kind != MICA_VOCAB_SPM && v->kind != MICA_VOCAB_BPE)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "tokenizer: unknown vocabulary kind %d",
                             (int)v->kind);
    if (v->n_tokens == 0 || !v->tokens)
        return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer: no tokens");
    if (v->n_tokens > (1u << 30) || v->n_merges > (1u << 30))
        return mica_diag_set(d, MICA_ERR_RANGE, "tokenizer: %u tokens / %u merges is too many",
                             v->n_tokens, v->n_merges);
    if (v->n_merges && !v->merges)
        return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer: %u merges but no merge array",
                             v->n_merges);
    if (!id_ok(v->bos_id, v->n_tokens) || !id_ok(v->eos_id, v->n_tokens) ||
        !id_ok(v->unk_id, v->n_tokens) || !id_ok(v->pad_id, v->n_tokens))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "tokenizer: special id outside the vocabulary of %u (bos %d eos %d "
                             "unk %d pad %d)",
                             v->n_tokens, v->bos_id, v->eos_id, v->unk_id, v->pad_id);
    const pre_def_t *pre = NULL;
    if (v->kind == MICA_VOCAB_BPE) {
        if (v->pre.len && !v->pre.ptr)
            return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer: NULL pre-tokenizer name");
        pre = find_pre(v->pre);
        if (!pre)
            return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "tokenizer: unknown pre-tokenizer '%.*s'",
                                 (int)(v->pre.len > 64 ? 64 : v->pre.len), v->pre.ptr);
    }

    /* measure */
    uint64_t text_total = 0, merge_total = 0, special_total = 0;
    size_t max_len = 0, max_merge = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        mica_vocab_str_t s = v->tokens[i];
        if (s.len && !s.ptr)
            return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer: token %u has no text", i);
        text_total += s.len;
        if (s.len > max_len)
            max_len = s.len;
        int32_t ty = v->types ? v->types[i] : MICA_TOKEN_TYPE_NORMAL;
        if (is_special_type(ty) || eog_text(s.ptr, s.len))
            special_total += s.len;
    }
    for (uint32_t i = 0; i < v->n_merges; i++) {
        mica_vocab_str_t m = v->merges[i];
        if (m.len && !m.ptr)
            return mica_diag_set(d, MICA_ERR_INVALID, "tokenizer: merge %u has no text", i);
        size_t sp = merge_space(m);
        size_t n = sp < m.len ? m.len - 1 : 0;
        merge_total += n;
        if (n > max_merge)
            max_merge = n;
    }
    if (text_total >= UINT32_MAX || merge_total >= UINT32_MAX || special_total >= UINT32_MAX / 2)
        return mica_diag_set(d, MICA_ERR_RANGE, "tokenizer: vocabulary text too large");

    uint32_t tok_cap = table_size(v->n_tokens);
    uint32_t merge_cap = v->n_merges ? table_size(v->n_merges) : 0;
    uint32_t n_trie_max = 1 + (uint32_t)special_total;
    size_t total = 0;
    take(&total, sizeof(mica_tokenizer_t), 16);
    size_t o_off = take(&total, ((size_t)v->n_tokens + 1) * sizeof(uint32_t), 4);
    size_t o_scores = take(&total, (size_t)v->n_tokens * sizeof(float), 4);
    size_t o_slots = take(&total, (size_t)tok_cap * sizeof(uint32_t), 4);
    size_t o_moff = take(&total, ((size_t)v->n_merges + 1) * sizeof(uint32_t), 4);
    size_t o_msplit = take(&total, (size_t)v->n_merges * sizeof(uint32_t), 4);
    size_t o_mslots = take(&total, (size_t)merge_cap * sizeof(uint32_t), 4);
    size_t o_trie = take(&total, (size_t)n_trie_max * sizeof(mica_tok_trie_node_t), 8);
    size_t o_types = take(&total, v->n_tokens, 1);
    size_t o_text = take(&total, (size_t)text_total, 1);
    size_t o_mtext = take(&total, (size_t)merge_total, 1);

    uint8_t *mem = calloc(1, total ? total : 1);
    if (!mem)
        return mica_diag_set(d, MICA_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", total);
    mica_tokenizer_t *t = (mica_tokenizer_t *)mem;
    uint32_t *tok_off = (uint32_t *)(mem + o_off);
    float *scores = (float *)(mem + o_scores);
    uint32_t *slots = (uint32_t *)(mem + o_slots);
    uint32_t *moff = (uint32_t *)(mem + o_moff);
    uint32_t *msplit = (uint32_t *)(mem + o_msplit);
    uint32_t *mslots = (uint32_t *)(mem + o_mslots);
    mica_tok_trie_node_t *trie = (mica_tok_trie_node_t *)(mem + o_trie);
    uint8_t *types = mem + o_types;
    char *text = (char *)(mem + o_text);
    char *mtext = (char *)(mem + o_mtext);

    t->kind = v->kind;
    t->n_tokens = v->n_tokens;
    t->bos_id = v->bos_id;
    t->eos_id = v->eos_id;
    t->unk_id = v->unk_id;
    t->pad_id = v->pad_id;
    t->add_bos = v->add_bos;
    t->add_eos = v->add_eos;
    t->add_space_prefix = v->kind == MICA_VOCAB_SPM && v->add_space_prefix;
    if (pre) {
        memcpy(t->stages, pre->stages, sizeof t->stages);
        t->n_stages = pre->n_stages;
        t->ignore_merges = pre->ignore_merges;
        t->clean_spaces = pre->clean_spaces;
    }
    t->tok_off = tok_off;
    t->tok_text = text;
    t->scores = scores;
    t->types = types;
    t->tok_slots = slots;
    t->tok_mask = tok_cap - 1;
    t->max_token_len = max_len;
    t->n_merges = v->n_merges;
    t->merge_off = moff;
    t->merge_split = msplit;
    t->merge_text = mtext;
    t->merge_slots = mslots;
    t->merge_mask = merge_cap ? merge_cap - 1 : 0;
    t->max_merge_len = max_merge;
    t->trie = trie;

    /* tokens and the text -> id table */
    uint32_t at = 0;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        mica_vocab_str_t s = v->tokens[i];
        tok_off[i] = at;
        if (s.len)
            memcpy(text + at, s.ptr, s.len);
        at += (uint32_t)s.len;
        scores[i] = v->scores ? v->scores[i] : 0.0f;
        int32_t ty = v->types ? v->types[i] : MICA_TOKEN_TYPE_NORMAL;
        types[i] =
            (uint8_t)(ty >= 0 && ty <= MICA_TOKEN_TYPE_BYTE ? ty : MICA_TOKEN_TYPE_UNDEFINED);
        if (s.len && eog_text(s.ptr, s.len)) {
            types[i] = MICA_TOKEN_TYPE_CONTROL;
            if (t->n_eog < MICA_TOK_MAX_EOG)
                t->eog[t->n_eog++] = (int32_t)i;
        }
    }
    tok_off[v->n_tokens] = at;
    if (t->eos_id != MICA_TOKEN_NULL && t->n_eog < MICA_TOK_MAX_EOG)
        t->eog[t->n_eog++] = t->eos_id;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        size_t n = tok_off[i + 1] - tok_off[i];
        if (n == 0)
            continue; /* an empty token can never be matched */
        const char *s = text + tok_off[i];
        uint32_t h = token_slot(t, s, n);
        if (slots[h]) {
            mica_status_t st = mica_diag_set(d, MICA_ERR_INVALID,
                                             "tokenizer: duplicate token '%.*s' (ids %u and %u)",
                                             (int)(n > 64 ? 64 : n), s, slots[h] - 1, i);
            free(mem);
            return st;
        }
        slots[h] = i + 1;
    }

    /* SPM: may the text be merged run by run of U+2581 (see spm_word_split)?
     * Not if some token has U+2581 right after another character (parsed
     * as the encoder splits characters). */
    t->spm_word_split = t->kind == MICA_VOCAB_SPM;
    for (uint32_t i = 0; t->spm_word_split && i < v->n_tokens; i++) {
        const uint8_t *s = (const uint8_t *)text + tok_off[i];
        size_t n = tok_off[i + 1] - tok_off[i];
        bool prev_space = true;
        for (size_t k = 0; k < n;) {
            size_t l = mica_tok_utf8_len(s[k]);
            if (l > n - k)
                l = n - k;
            bool space = l == 3 && memcmp(s + k, "\xe2\x96\x81", 3) == 0;
            if (space && !prev_space && k > 0)
                t->spm_word_split = false;
            prev_space = space;
            k += l;
        }
    }

    /* merges */
    at = 0;
    for (uint32_t r = 0; r < v->n_merges; r++) {
        mica_vocab_str_t m = v->merges[r];
        size_t sp = merge_space(m);
        moff[r] = at;
        if (sp >= m.len) { /* llama.cpp keeps it as a ("", "") pair that never matches */
            mica_status_t st = mica_diag_set(d, MICA_ERR_INVALID,
                                             "tokenizer: merge %u ('%.*s') has no space between "
                                             "its two tokens",
                                             r, (int)(m.len > 64 ? 64 : m.len), m.ptr);
            free(mem);
            return st;
        }
        memcpy(mtext + at, m.ptr, sp);
        memcpy(mtext + at + sp, m.ptr + sp + 1, m.len - sp - 1);
        msplit[r] = (uint32_t)sp;
        size_t n = m.len - 1;
        const char *s = mtext + at;
        /* both halves and their join must be tokens: a merge that names
         * anything else is a damaged vocabulary, not one to encode with */
        const struct {
            const char *p;
            size_t n;
        } parts[3] = {{s, sp}, {s + sp, n - sp}, {s, n}};
        for (int k = 0; k < 3; k++) {
            if (parts[k].n && slots[token_slot(t, parts[k].p, parts[k].n)])
                continue;
            mica_status_t st = mica_diag_set(
                d, MICA_ERR_INVALID, "tokenizer: merge %u ('%.*s') names '%.*s', which is not a token",
                r, (int)(m.len > 64 ? 64 : m.len), m.ptr, (int)(parts[k].n > 64 ? 64 : parts[k].n),
                parts[k].p);
            free(mem);
            return st;
        }
        at += (uint32_t)n;
        uint32_t h = merge_slot(t, s, n, sp);
        if (!mslots[h]) /* a repeated pair keeps the first (lowest) rank */
            mslots[h] = r + 1;
    }
    moff[v->n_merges] = at;

    /* bytes: GPT-2 map, and byte -> token */
    for (int b = 0, extra = 0; b < 256; b++) {
        bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        t->byte_cp[b] = (uint16_t)(self ? b : 256 + extra++);
        t->cp_byte[t->byte_cp[b]] = (uint8_t)b;
    }
    for (int b = 0; b < 256; b++) {
        char buf[8];
        int32_t id;
        if (t->kind == MICA_VOCAB_SPM) {
            static const char hex[] = "0123456789ABCDEF";
            const char hb[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
            id = mica_tok_lookup(t, hb, 6);
            if (id == MICA_TOKEN_NULL) {
                buf[0] = (char)b;
                id = mica_tok_lookup(t, buf, 1);
            }
        } else {
            size_t n = mica_tok_utf8_encode(t->byte_cp[b], (uint8_t *)buf);
            id = mica_tok_lookup(t, buf, n);
        }
        t->byte_token[b] = id;
    }

    /* special-token trie */
    uint32_t n_trie = 1;
    trie[0].token = MICA_TOKEN_NULL;
    for (uint32_t i = 0; i < v->n_tokens; i++) {
        size_t n = tok_off[i + 1] - tok_off[i];
        if (n == 0 || !is_special_type(types[i]))
            continue;
        const uint8_t *s = (const uint8_t *)text + tok_off[i];
        uint32_t node = t->root_child[s[0]];
        if (!node) {
            node = n_trie++;
            trie[node] = (mica_tok_trie_node_t){0, 0, MICA_TOKEN_NULL, s[0]};
            t->root_child[s[0]] = node;
        }
        for (size_t k = 1; k < n; k++) {
            uint32_t c = trie[node].child;
            while (c && trie[c].byte != s[k])
                c = trie[c].sibling;
            if (!c) {
                c = n_trie++;
                trie[c] = (mica_tok_trie_node_t){0, trie[node].child, MICA_TOKEN_NULL, s[k]};
                trie[node].child = c;
            }
            node = c;
        }
        trie[node].token = (int32_t)i;
    }
    t->n_trie = n_trie;

    *out_tok = t;
    return MICA_OK;
}

void mica_tokenizer_release(mica_tokenizer_t *tok)
{
    free(tok);
}

/* ---- scratch ---- */

bool mica_tok_grow(mica_tok_scratch_t *s, int slot, size_t bytes)
{
    if (s->cap[slot] >= bytes)
        return true;
    size_t cap = s->cap[slot] ? s->cap[slot] : 256;
    while (cap < bytes) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    void *p = realloc(s->buf[slot], cap);
    if (!p)
        return false;
    s->buf[slot] = p;
    s->cap[slot] = cap;
    return true;
}

void mica_tok_scratch_free(mica_tok_scratch_t *s)
{
    for (int i = 0; i < 8; i++) {
        free(s->buf[i]);
        s->buf[i] = NULL;
        s->cap[i] = 0;
    }
}

/* ---- merge loop ---- */

int32_t mica_tok_split_chars(const char *s, size_t n, mica_tok_sym_t *sym)
{
    int32_t n_sym = 0;
    for (size_t off = 0; off < n;) {
        size_t l = mica_tok_utf8_len((uint8_t)s[off]);
        if (l > n - off)
            l = n - off;
        sym[n_sym++] = (mica_tok_sym_t){(uint32_t)off, (uint32_t)l, -1, -1};
        off += l;
    }
    return n_sym;
}

/* Queues (left, right) if they merge: key rank, then left for the ties. */
static bool queue_pair(const mica_tokenizer_t *t, const char *text, const mica_tok_sym_t *sym,
                       int32_t left, int32_t right, mica_tok_rank_fn rank, mica_tok_heap_t *h,
                       bool sift)
{
    if (left < 0 || right < 0)
        return true;
    size_t n = (size_t)sym[left].n + sym[right].n;
    uint32_t r;
    if (!rank(t, text + sym[left].off, n, sym[left].n, &r))
        return true;
    mica_tok_pair_t p = {((uint64_t)r << 32) | (uint32_t)left, right, (uint32_t)n};
    return mica_tok_heap_push(h, p, sift);
}

bool mica_tok_merge(const mica_tokenizer_t *t, const char *text, mica_tok_sym_t *sym, int32_t lo,
                    int32_t hi, mica_tok_rank_fn rank, mica_tok_scratch_t *s, int heap_slot)
{
    for (int32_t i = lo; i < hi; i++) {
        sym[i].prev = i - 1 >= lo ? i - 1 : -1;
        sym[i].next = i + 1 < hi ? i + 1 : -1;
    }
    mica_tok_heap_t h = {s, heap_slot, 0};
    for (int32_t i = lo + 1; i < hi; i++)
        if (!queue_pair(t, text, sym, i - 1, i, rank, &h, false))
            return false;
    mica_tok_heap_build(&h);
    while (h.n) {
        mica_tok_pair_t b = mica_tok_heap_pop(&h);
        int32_t left = (int32_t)(uint32_t)b.key;
        mica_tok_sym_t *l = &sym[left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* one side changed since this pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = left;
        if (!queue_pair(t, text, sym, l->prev, left, rank, &h, true) ||
            !queue_pair(t, text, sym, left, l->next, rank, &h, true))
            return false;
    }
    return true;
}

/* ---- encode ---- */

/* Longest special token starting at s[0..n) that may be cut out here:
 * user-defined always, control/unknown with parse_special. */
static size_t special_at(const mica_tokenizer_t *t, const uint8_t *s, size_t n, bool parse_special,
                         int32_t *out_id)
{
    uint32_t node = t->root_child[s[0]];
    size_t best = 0;
    for (size_t i = 1; node; i++) {
        int32_t id = t->trie[node].token;
        if (id != MICA_TOKEN_NULL &&
            (parse_special || t->types[id] == MICA_TOKEN_TYPE_USER_DEFINED)) {
            best = i;
            *out_id = id;
        }
        if (i >= n)
            break;
        uint32_t c = t->trie[node].child;
        while (c && t->trie[c].byte != s[i])
            c = t->trie[c].sibling;
        node = c;
    }
    return best;
}

static bool encode_run(const mica_tokenizer_t *t, const char *s, size_t n, bool prefix_space,
                       mica_tok_scratch_t *sc, mica_tok_out_t *out)
{
    if (t->kind == MICA_VOCAB_SPM)
        return mica_tok_spm_encode(t, s, n, prefix_space, sc, out);
    return mica_tok_bpe_encode(t, s, n, sc, out);
}

mica_status_t mica_tokenizer_encode(const mica_tokenizer_t *tok, const char *text, size_t len,
                                    uint32_t flags, int32_t *ids, size_t cap, size_t *out_n,
                                    mica_diag_t *d)
{
    if (!tok || !out_n || (len && !text) || (cap && !ids))
        return mica_diag_set(d, MICA_ERR_INVALID, "tokenize: NULL argument");
    *out_n = 0;
    if (len > MICA_TOK_MAX_TEXT)
        return mica_diag_set(d, MICA_ERR_RANGE,
                             "tokenize: text of %zu bytes is over the 256 MiB limit", len);
    bool bos =
        (flags & MICA_TOKENIZER_ADD_BOS) || ((flags & MICA_TOKENIZER_ADD_SPECIAL) && tok->add_bos);
    bool eos =
        (flags & MICA_TOKENIZER_ADD_EOS) || ((flags & MICA_TOKENIZER_ADD_SPECIAL) && tok->add_eos);
    if (bos && tok->bos_id == MICA_TOKEN_NULL)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "tokenize: BOS requested but the vocabulary has none");
    if (eos && tok->eos_id == MICA_TOKEN_NULL)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "tokenize: EOS requested but the vocabulary has none");

    mica_tok_out_t out = {ids, cap, 0};
    mica_tok_scratch_t sc = {{0}, {0}};
    bool ok = true;
    if (bos)
        mica_tok_emit(&out, tok->bos_id);

    bool parse_special = (flags & MICA_TOKENIZER_PARSE_SPECIAL) != 0;
    bool any_special = tok->n_trie > 1;
    const uint8_t *u = (const uint8_t *)text;
    size_t run = 0;           /* start of the plain text not yet encoded */
    bool prev_special = true; /* SPM: a space goes before text that follows a special token */
    for (size_t i = 0; any_special && i < len && ok; i++) {
        if (!tok->root_child[u[i]])
            continue;
        int32_t id = MICA_TOKEN_NULL;
        size_t m = special_at(tok, u + i, len - i, parse_special, &id);
        if (!m)
            continue;
        if (i > run) {
            ok = encode_run(tok, text + run, i - run, tok->add_space_prefix && prev_special, &sc,
                            &out);
            prev_special = false;
        }
        mica_tok_emit(&out, id);
        prev_special = true;
        run = i + m;
        i += m - 1;
    }
    if (ok && len > run)
        ok = encode_run(tok, text + run, len - run, tok->add_space_prefix && prev_special, &sc,
                        &out);
    mica_tok_scratch_free(&sc);
    if (!ok)
        return mica_diag_set(d, MICA_ERR_NOMEM, "tokenize: out of memory for %zu bytes of text",
                             len);
    if (eos)
        mica_tok_emit(&out, tok->eos_id);

    *out_n = out.n;
    if (out.n > cap)
        return mica_diag_set(d, MICA_ERR_RANGE, "tokenize: %zu tokens do not fit in %zu", out.n,
                             cap);
    return MICA_OK;
}

/* ---- decode ---- */

/* Bytes written up to cap, counted past it. */
typedef struct sink {
    char *buf;
    size_t cap;
    size_t n;
    bool strip; /* drop the next byte if it is a space */
} sink_t;

static void put(sink_t *o, const void *p, size_t n)
{
    const char *c = p;
    if (n && o->strip) {
        o->strip = false;
        if (c[0] == ' ') {
            c++;
            n--;
        }
    }
    for (size_t i = 0; i < n; i++, o->n++)
        if (o->n < o->cap)
            o->buf[o->n] = c[i];
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The bytes of one token, as llama.cpp's token_to_piece. */
static void piece(const mica_tokenizer_t *t, int32_t id, uint32_t flags, bool lstrip, sink_t *o)
{
    const char *s = t->tok_text + t->tok_off[id];
    size_t n = t->tok_off[id + 1] - t->tok_off[id];
    o->strip = lstrip;
    switch (t->types[id]) {
    case MICA_TOKEN_TYPE_CONTROL:
    case MICA_TOKEN_TYPE_UNKNOWN:
        if (flags & MICA_TOKENIZER_DECODE_SPECIAL)
            put(o, s, n);
        break;
    case MICA_TOKEN_TYPE_USER_DEFINED:
        put(o, s, n);
        break;
    case MICA_TOKEN_TYPE_BYTE:
        if (n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && hexval(s[3]) >= 0 &&
            hexval(s[4]) >= 0) {
            char b = (char)(hexval(s[3]) * 16 + hexval(s[4]));
            put(o, &b, 1);
        } else {
            put(o, s, n);
        }
        break;
    case MICA_TOKEN_TYPE_NORMAL:
        if (t->kind == MICA_VOCAB_SPM) {
            size_t i = 0, start = 0;
            while (i < n) {
                if (i + 3 <= n && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 &&
                    (uint8_t)s[i + 2] == 0x81) {
                    put(o, s + start, i - start);
                    put(o, " ", 1);
                    i += 3;
                    start = i;
                } else {
                    i++;
                }
            }
            put(o, s + start, n - start);
        } else {
            for (size_t i = 0; i < n;) {
                size_t adv;
                uint32_t cp = mica_tok_utf8_decode((const uint8_t *)s + i, n - i, &adv);
                if (cp < 324 && t->byte_cp[t->cp_byte[cp]] == cp) {
                    char b = (char)t->cp_byte[cp];
                    put(o, &b, 1);
                } else {
                    put(o, s + i, adv); /* not a byte character: keep it as it is */
                }
                i += adv;
            }
        }
        break;
    default: /* unused, undefined: nothing, as llama.cpp */
        break;
    }
    o->strip = false;
}

/* llama.cpp's detokenize clean-up, in place over text[0..total). */
static size_t clean_spaces(char *text, size_t total)
{
    size_t total1 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < total1; ++i) {
        char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
            total--;
        text[total++] = x;
    }
    size_t total2 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < total2; ++i) {
        char x = text[i];
        if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
            total--;
            text[++i] = '\0';
        }
        text[total++] = x;
    }
    size_t total3 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < total3; ++i) {
        char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
            char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm') {
                total--;
            } else if (x1 != 't' && x1 != 'd' && i + 2 < total3) {
                char x2 = text[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e'))
                    total--;
            }
        }
        text[total++] = x;
    }
    return total;
}

static mica_status_t check_id(const mica_tokenizer_t *t, int32_t id, mica_diag_t *d)
{
    if (id < 0 || (uint32_t)id >= t->n_tokens)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "detokenize: token id %d outside the vocabulary of %u", id,
                             t->n_tokens);
    return MICA_OK;
}

/* Appends the piece of token id (already checked). The first token not
 * BOS loses a leading space when flags ask for it; *started says whether
 * that token has come. */
static void put_token(const mica_tokenizer_t *t, int32_t id, uint32_t flags, bool *started,
                      sink_t *o)
{
    bool lstrip = false;
    if (!*started && id != t->bos_id) {
        *started = true;
        lstrip = (flags & MICA_TOKENIZER_DECODE_STRIP_SPACE) && t->add_space_prefix;
    }
    piece(t, id, flags, lstrip, o);
}

/* Fails, with the length needed in *out_len, if o ran past its buffer. */
static mica_status_t check_sink(const sink_t *o, size_t *out_len, mica_diag_t *d)
{
    if (o->n <= o->cap)
        return MICA_OK;
    *out_len = o->n;
    return mica_diag_set(d, MICA_ERR_RANGE, "detokenize: %zu bytes do not fit in %zu", o->n,
                         o->cap);
}

mica_status_t mica_tokenizer_decode(const mica_tokenizer_t *tok, const int32_t *ids, size_t n,
                                    uint32_t flags, char *out, size_t cap, size_t *out_len,
                                    mica_diag_t *d)
{
    if (!tok || !out_len || (n && !ids) || (cap && !out))
        return mica_diag_set(d, MICA_ERR_INVALID, "detokenize: NULL argument");
    *out_len = 0;
    sink_t o = {out, cap, 0, false};
    bool started = false;
    for (size_t i = 0; i < n; i++) {
        MICA_TRY(check_id(tok, ids[i], d));
        put_token(tok, ids[i], flags, &started, &o);
    }
    MICA_TRY(check_sink(&o, out_len, d));
    *out_len = o.n;
    if ((flags & MICA_TOKENIZER_DECODE_CLEAN_SPACES) && tok->clean_spaces)
        *out_len = clean_spaces(out, o.n);
    return MICA_OK;
}

/* ---- streaming decode ---- */

void mica_tokenizer_stream_init(mica_tokenizer_stream_t *s, uint32_t flags)
{
    memset(s, 0, sizeof *s);
    s->flags = flags;
}

/* Length of the incomplete-but-possible UTF-8 character at the end of
 * b[0..n): 0 when the text ends on a character boundary (or on bytes that
 * can never become a character). */
static size_t incomplete_tail(const uint8_t *b, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t c = b[n - k];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation: look further back */
        size_t need = c >= 0xC2 && c <= 0xDF   ? 2
                      : c >= 0xE0 && c <= 0xEF ? 3
                      : c >= 0xF0 && c <= 0xF4 ? 4
                                               : 0;
        if (need <= k)
            return 0;
        if (k >= 2) {
            /* the second byte's range for the leads that restrict it */
            uint8_t c1 = b[n - k + 1];
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) ||
                (c == 0xF4 && c1 > 0x8F))
                return 0;
        }
        return k;
    }
    return 0;
}

mica_status_t mica_tokenizer_stream_push(const mica_tokenizer_t *tok, mica_tokenizer_stream_t *s,
                                         int32_t id, char *out, size_t cap, size_t *out_len,
                                         mica_diag_t *d)
{
    if (!tok || !s || !out_len || (cap && !out))
        return mica_diag_set(d, MICA_ERR_INVALID, "detokenize: NULL argument");
    *out_len = 0;
    MICA_TRY(check_id(tok, id, d));
    bool started = s->started;
    sink_t o = {out, cap, 0, false};
    put(&o, s->pending, s->n_pending);
    put_token(tok, id, s->flags, &started, &o);
    MICA_TRY(check_sink(&o, out_len, d));
    s->started = started;
    size_t hold = incomplete_tail((const uint8_t *)out, o.n);
    s->n_pending = (uint8_t)hold;
    memcpy(s->pending, out + o.n - hold, hold);
    *out_len = o.n - hold;
    return MICA_OK;
}

size_t mica_tokenizer_stream_flush(mica_tokenizer_stream_t *s, char out[4])
{
    size_t n = s->n_pending;
    memcpy(out, s->pending, n);
    uint32_t flags = s->flags;
    mica_tokenizer_stream_init(s, flags);
    return n;
}

/* ---- facts ---- */

uint32_t mica_tokenizer_n_tokens(const mica_tokenizer_t *tok)
{
    return tok->n_tokens;
}

mica_vocab_kind_t mica_tokenizer_kind(const mica_tokenizer_t *tok)
{
    return tok->kind;
}

int32_t mica_tokenizer_bos(const mica_tokenizer_t *tok)
{
    return tok->bos_id;
}

int32_t mica_tokenizer_eos(const mica_tokenizer_t *tok)
{
    return tok->eos_id;
}

int32_t mica_tokenizer_unk(const mica_tokenizer_t *tok)
{
    return tok->unk_id;
}

int32_t mica_tokenizer_pad(const mica_tokenizer_t *tok)
{
    return tok->pad_id;
}

bool mica_tokenizer_add_bos(const mica_tokenizer_t *tok)
{
    return tok->add_bos;
}

bool mica_tokenizer_add_eos(const mica_tokenizer_t *tok)
{
    return tok->add_eos;
}

const char *mica_tokenizer_token_text(const mica_tokenizer_t *tok, int32_t id, size_t *out_len)
{
    if (id < 0 || (uint32_t)id >= tok->n_tokens) {
        if (out_len)
            *out_len = 0;
        return NULL;
    }
    if (out_len)
        *out_len = tok->tok_off[id + 1] - tok->tok_off[id];
    return tok->tok_text + tok->tok_off[id];
}

mica_token_type_t mica_tokenizer_token_type(const mica_tokenizer_t *tok, int32_t id)
{
    if (id < 0 || (uint32_t)id >= tok->n_tokens)
        return MICA_TOKEN_TYPE_UNDEFINED;
    return (mica_token_type_t)tok->types[id];
}

bool mica_tokenizer_is_eog(const mica_tokenizer_t *tok, int32_t id)
{
    if (id == MICA_TOKEN_NULL)
        return false;
    for (int i = 0; i < tok->n_eog; i++)
        if (tok->eog[i] == id)
            return true;
    return false;
}

size_t mica_tokenizer_max_piece_len(const mica_tokenizer_t *tok)
{
    return tok->max_token_len ? tok->max_token_len : 1;
}
