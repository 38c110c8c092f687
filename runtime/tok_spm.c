/* SentencePiece BPE, as llama.cpp's llm_tokenizer_spm: the text (spaces as
 * U+2581) starts as one symbol per UTF-8 character; the adjacent pair whose
 * concatenation is the token with the highest score (leftmost on ties)
 * merges first, until no pair is a token. A final symbol that is no token
 * becomes byte tokens (<0xXX>), or unk when the vocabulary lacks those. */
#include <string.h>

#include "tok_internal.h"

enum { SLOT_TEXT = 0, SLOT_SYMS = 1, SLOT_HEAP = 2 };

/* A pair merges if its concatenation is a token; the higher the token's
 * score, the sooner. The score's bits are mapped to an unsigned order (-0
 * counted as +0, as float compares), then inverted. */
static bool pair_rank(const mica_tokenizer_t *t, const char *s, size_t n, size_t split,
                      uint32_t *out)
{
    int32_t id = mica_tok_lookup(t, s, n);
    if (id == MICA_TOKEN_NULL)
        return false;
    float score = t->scores[id];
    if (score == 0.0f)
        score = 0.0f;
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending with score */
    *out = ~u;
    return true;
}

static void emit_symbol(const mica_tokenizer_t *t, const char *s, size_t n, mica_tok_out_t *out)
{
    int32_t id = mica_tok_lookup(t, s, n);
    if (id != MICA_TOKEN_NULL) {
        mica_tok_emit(out, id);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        int32_t b = t->byte_token[(uint8_t)s[j]];
        if (b == MICA_TOKEN_NULL)
            b = t->unk_id;
        if (b != MICA_TOKEN_NULL)
            mica_tok_emit(out, b);
    }
}

static bool is_space_sym(const char *e, const mica_tok_sym_t *y)
{
    return y->n == 3 && memcmp(e + y->off, "\xe2\x96\x81", 3) == 0;
}

bool mica_tok_spm_encode(const mica_tokenizer_t *t, const char *text, size_t len, bool prefix_space,
                         mica_tok_scratch_t *s, mica_tok_out_t *out)
{
    /* escape: ' ' -> U+2581 (3 bytes), with the prefix space */
    size_t cap = 3 * (len + 1);
    if (!mica_tok_grow(s, SLOT_TEXT, cap))
        return false;
    char *e = s->buf[SLOT_TEXT];
    size_t n = 0;
    for (size_t i = 0; i <= len; i++) {
        char c;
        if (i == 0) {
            if (!prefix_space)
                continue;
            c = ' ';
        } else {
            c = text[i - 1];
        }
        if (c == ' ') {
            e[n++] = (char)0xE2;
            e[n++] = (char)0x96;
            e[n++] = (char)0x81;
        } else {
            e[n++] = c;
        }
    }
    if (n == 0)
        return true;

    if (!mica_tok_grow(s, SLOT_SYMS, (n + 1) * sizeof(mica_tok_sym_t)))
        return false;
    mica_tok_sym_t *sym = s->buf[SLOT_SYMS];
    int32_t n_sym = mica_tok_split_chars(e, n, sym);

    /* Merge segment by segment when no token can span a segment boundary
     * (see spm_word_split): the same result as one queue over the whole
     * text, with a small queue that stays in cache. */
    for (int32_t lo = 0; lo < n_sym;) {
        int32_t hi = lo + 1;
        if (t->spm_word_split)
            while (hi < n_sym && !(is_space_sym(e, &sym[hi]) && !is_space_sym(e, &sym[hi - 1])))
                hi++;
        else
            hi = n_sym;
        if (!mica_tok_merge(t, e, sym, lo, hi, pair_rank, s, SLOT_HEAP))
            return false;
        for (int32_t i = lo; i != -1; i = sym[i].next)
            emit_symbol(t, e + sym[i].off, sym[i].n, out);
        lo = hi;
    }
    return true;
}
