/* SentencePiece BPE, as llama.cpp's llm_tokenizer_spm: the text (spaces as
 * U+2581) starts as one symbol per UTF-8 character; the adjacent pair whose
 * concatenation is the token with the highest score (leftmost on ties)
 * merges first, until no pair is a token. A final symbol that is no token
 * becomes byte tokens (<0xXX>), or unk when the vocabulary lacks those. */
#include <string.h>

#include "tok_internal.h"

typedef struct spm_sym {
    uint32_t off, n;    /* bytes of the escaped text; n = 0 once merged away */
    int32_t prev, next; /* neighbours, -1 at the ends */
} spm_sym_t;

enum { SLOT_TEXT = 0, SLOT_SYMS = 1, SLOT_HEAP = 2 };

/* Queue key: higher score first, then the leftmost pair. The score's bits
 * are mapped to an unsigned order (-0 counted as +0, as float compares). */
static uint64_t pair_key(float score, int32_t left)
{
    if (score == 0.0f)
        score = 0.0f;
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending with score */
    return ((uint64_t)~u << 32) | (uint32_t)left;
}

/* Queues (left, right) if their concatenation is a token. */
static bool try_bigram(const mica_tokenizer_t *t, const char *text, const spm_sym_t *sym,
                       int32_t left, int32_t right, mica_tok_heap_t *h, bool sift)
{
    if (left < 0 || right < 0)
        return true;
    size_t n = (size_t)sym[left].n + sym[right].n;
    int32_t id = mica_tok_lookup(t, text + sym[left].off, n);
    if (id == MICA_TOKEN_NULL)
        return true;
    mica_tok_pair_t p = {pair_key(t->scores[id], left), right, (uint32_t)n};
    return mica_tok_heap_push(h, p, sift);
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

static bool is_space_sym(const char *e, const spm_sym_t *y)
{
    return y->n == 3 && memcmp(e + y->off, "\xe2\x96\x81", 3) == 0;
}

/* Runs the merges over symbols lo..hi-1 (linked here). */
static bool merge_segment(const mica_tokenizer_t *t, const char *e, spm_sym_t *sym, int32_t lo,
                          int32_t hi, mica_tok_scratch_t *s)
{
    for (int32_t i = lo; i < hi; i++) {
        sym[i].prev = i - 1 >= lo ? i - 1 : -1;
        sym[i].next = i + 1 < hi ? i + 1 : -1;
    }
    mica_tok_heap_t h = {s, SLOT_HEAP, 0};
    for (int32_t i = lo + 1; i < hi; i++)
        if (!try_bigram(t, e, sym, i - 1, i, &h, false))
            return false;
    mica_tok_heap_build(&h);
    while (h.n) {
        mica_tok_pair_t b = mica_tok_heap_pop(&h);
        int32_t left = (int32_t)(uint32_t)b.key;
        spm_sym_t *l = &sym[left], *r = &sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* one side changed since this pair was queued */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = left;
        if (!try_bigram(t, e, sym, l->prev, left, &h, true) ||
            !try_bigram(t, e, sym, left, l->next, &h, true))
            return false;
    }
    return true;
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

    /* one symbol per character (length from the lead byte, cut at the end) */
    if (!mica_tok_grow(s, SLOT_SYMS, (n + 1) * sizeof(spm_sym_t)))
        return false;
    spm_sym_t *sym = s->buf[SLOT_SYMS];
    int32_t n_sym = 0;
    for (size_t off = 0; off < n;) {
        size_t l = mica_tok_utf8_len((uint8_t)e[off]);
        if (l > n - off)
            l = n - off;
        sym[n_sym++] = (spm_sym_t){(uint32_t)off, (uint32_t)l, -1, -1};
        off += l;
    }

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
        if (!merge_segment(t, e, sym, lo, hi, s))
            return false;
        for (int32_t i = lo; i != -1; i = sym[i].next)
            emit_symbol(t, e + sym[i].off, sym[i].n, out);
        lo = hi;
    }
    return true;
}
