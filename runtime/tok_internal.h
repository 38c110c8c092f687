/* Tokenizer internals shared by runtime/tokenizer.c, tok_spm.c, tok_bpe.c,
 * tok_unicode.c and the generated unicode_tables.c. Not part of the API. */
#ifndef MICA_TOK_INTERNAL_H
#define MICA_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- Unicode classes (values shared with codegen/gen_unicode.py) ---- */

enum {
    MICA_TOK_U_UNDEFINED = 0x001,  /* unassigned (and > U+10FFFF) */
    MICA_TOK_U_NUMBER = 0x002,     /* \p{N} */
    MICA_TOK_U_LETTER = 0x004,     /* \p{L} */
    MICA_TOK_U_SEPARATOR = 0x008,  /* \p{Z} */
    MICA_TOK_U_MARK = 0x010,       /* \p{M} */
    MICA_TOK_U_PUNCT = 0x020,      /* \p{P} */
    MICA_TOK_U_SYMBOL = 0x040,     /* \p{S} */
    MICA_TOK_U_CONTROL = 0x080,    /* \p{C} except unassigned */
    MICA_TOK_U_WHITESPACE = 0x100, /* White_Space property */
};

/* Generated (build tree, codegen/gen_unicode.py). */
extern const char mica_tok_unicode_version[];
extern const uint32_t mica_tok_uclass_ranges[]; /* (start << 9) | flags, sorted */
extern const size_t mica_tok_uclass_range_count;
extern const uint16_t mica_tok_uclass_ascii[128];

/* Class flags of a code point (MICA_TOK_U_*). */
uint16_t mica_tok_uclass(uint32_t cp);

/* Byte length of the UTF-8 sequence a lead byte announces, from its high
 * nibble only (1 for continuation bytes), as llama.cpp's unicode_len_utf8. */
static inline size_t mica_tok_utf8_len(uint8_t lead)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

/* Decodes the code point at s[0..n) (n >= 1) as llama.cpp does: a bad or
 * truncated sequence gives U+FFFD and consumes one byte; overlong forms and
 * surrogates are accepted; F5..F7 leads give values above U+10FFFF.
 * *adv receives the bytes consumed. */
uint32_t mica_tok_utf8_decode(const uint8_t *s, size_t n, size_t *adv);

/* Writes cp as UTF-8 (1..4 bytes; values above U+10FFFF keep the 4-byte
 * form, masked) and returns the length. */
size_t mica_tok_utf8_encode(uint32_t cp, uint8_t out[4]);

/* ---- the tokenizer object ---- */

/* Pre-tokenizer stages (each splits the pieces of the previous one). */
typedef enum mica_tok_split {
    MICA_TOK_SPLIT_GPT2,   /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
                            */
    MICA_TOK_SPLIT_LLAMA3, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                              ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    MICA_TOK_SPLIT_QWEN2,  /* the same with \p{N} for \p{N}{1,3} */
    MICA_TOK_SPLIT_DIGIT,  /* \p{N} */
    MICA_TOK_SPLIT_DIGITS, /* \p{N}+ */
    MICA_TOK_SPLIT_ASCII_DIGIT3,   /* [0-9][0-9][0-9] */
    MICA_TOK_SPLIT_PUNCT,          /* [\p{P}\$\+<=>\^~\|]+ */
    MICA_TOK_SPLIT_PUNCT_TICK,     /* [\p{P}\$\+<=>\^~\|`]+ (falcon) */
    MICA_TOK_SPLIT_NEWLINE,        /* [\r\n] */
    MICA_TOK_SPLIT_SPACE_LETTERS,  /* \s?\p{L}+ */
    MICA_TOK_SPLIT_SPACE_PUNCTS,   /* \s?\p{P}+ */
    MICA_TOK_SPLIT_CJK,            /* [\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+ */
    MICA_TOK_SPLIT_DS_LETTERS,     /* \s?[A-Za-z...]+: DeepSeek LLM's cased-letter list */
    MICA_TOK_SPLIT_DS_PUNCTS,      /* \s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}
                                      \x{2018}-\x{201F}\x{3000}-\x{3002}]+ */
    MICA_TOK_SPLIT_TRAILING_SPACE, /* \s+$ */
} mica_tok_split_t;

/* Longest text one encode call takes: keeps every byte offset of the
 * byte-encoded pieces (up to 8 bytes per input byte) within 32 bits. */
#define MICA_TOK_MAX_TEXT (256u << 20)

#define MICA_TOK_MAX_STAGES 6
#define MICA_TOK_MAX_EOG 8

/* One node of the byte trie of special tokens (control, user-defined,
 * unknown). Children are a sibling list, except the root's, which are
 * indexed by byte in root_child. */
typedef struct mica_tok_trie_node {
    uint32_t child;   /* first child node, 0 = none */
    uint32_t sibling; /* next sibling node, 0 = none */
    int32_t token;    /* token ending here, or MICA_TOKEN_NULL */
    uint8_t byte;
} mica_tok_trie_node_t;

struct mica_tokenizer {
    mica_vocab_kind_t kind;
    uint32_t n_tokens;
    int32_t bos_id, eos_id, unk_id, pad_id;
    bool add_bos, add_eos, add_space_prefix;

    /* pre-tokenizer (BPE) */
    mica_tok_split_t stages[MICA_TOK_MAX_STAGES];
    int n_stages;
    bool ignore_merges; /* a piece that is a whole token skips merging (llama3) */
    bool clean_spaces;  /* decode clean-up wanted (MICA_TOKENIZER_DECODE_CLEAN_SPACES) */
    /* SPM: no token has a U+2581 right after a character that is not U+2581,
     * so no merge crosses the start of a run of U+2581 and each such
     * segment can be merged on its own */
    bool spm_word_split;

    /* tokens: text of id i is text[off[i] .. off[i+1]) */
    const uint32_t *tok_off; /* [n_tokens + 1] */
    const char *tok_text;
    const float *scores;  /* [n_tokens] */
    const uint8_t *types; /* [n_tokens] mica_token_type_t */
    size_t max_token_len;
    /* text -> id, open addressing; slot = id + 1, 0 = empty */
    const uint32_t *tok_slots;
    uint32_t tok_mask;

    /* merges (BPE): merge r is left+right = mtext[moff[r] .. moff[r+1]),
     * left being its first msplit[r] bytes */
    uint32_t n_merges;
    const uint32_t *merge_off;   /* [n_merges + 1] */
    const uint32_t *merge_split; /* [n_merges] */
    const char *merge_text;
    size_t max_merge_len;
    const uint32_t *merge_slots; /* slot = rank + 1 */
    uint32_t merge_mask;

    /* byte -> token: SPM <0xXX> (or the byte itself), BPE the GPT-2 character */
    int32_t byte_token[256];
    /* GPT-2 byte <-> code point map */
    uint16_t byte_cp[256];
    uint8_t cp_byte[324]; /* code point (< 324) -> byte; valid where byte_cp maps back */

    /* special-token trie */
    const mica_tok_trie_node_t *trie; /* [n_trie], node 0 is the root */
    uint32_t n_trie;
    uint32_t root_child[256];

    int32_t eog[MICA_TOK_MAX_EOG];
    int n_eog;
};

/* Id of the token whose text is s[0..n), or MICA_TOKEN_NULL. */
int32_t mica_tok_lookup(const mica_tokenizer_t *t, const char *s, size_t n);
/* Rank of merging left (s[0..split)) with right (s[split..n)), or -1. */
int32_t mica_tok_merge_rank(const mica_tokenizer_t *t, const char *s, size_t n, size_t split);
uint32_t mica_tok_hash(const char *s, size_t n);

/* ---- encoding: growable scratch and the output sink ---- */

typedef struct mica_tok_out {
    int32_t *ids;
    size_t cap;
    size_t n; /* counts past cap */
} mica_tok_out_t;

static inline void mica_tok_emit(mica_tok_out_t *o, int32_t id)
{
    if (o->n < o->cap)
        o->ids[o->n] = id;
    o->n++;
}

/* Scratch buffers one encode call reuses across its pieces; freed at the
 * end of the call. Each grows by mica_tok_grow. */
typedef struct mica_tok_scratch {
    void *buf[8];
    size_t cap[8]; /* bytes */
} mica_tok_scratch_t;

/* Makes scratch buffer `slot` hold at least `bytes`; false on no memory. */
bool mica_tok_grow(mica_tok_scratch_t *s, int slot, size_t bytes);
void mica_tok_scratch_free(mica_tok_scratch_t *s);

/* ---- the merge queue (both algorithms) ---- */

/* A pair of adjacent symbols that could merge. The smallest key pops first;
 * its low 32 bits are the left symbol's index, so ties go to the leftmost
 * pair. */
typedef struct mica_tok_pair {
    uint64_t key;
    int32_t right;
    uint32_t size; /* bytes of left + right when queued: stale once changed */
} mica_tok_pair_t;

/* A 4-ary min-heap in a scratch slot (shallower and kinder to the cache
 * than a binary heap on the million-entry queues a 1 MB text makes). */
typedef struct mica_tok_heap {
    mica_tok_scratch_t *s;
    int slot;
    size_t n;
} mica_tok_heap_t;

/* Adds p; with `sift` false it only appends (mica_tok_heap_build must run
 * before the first pop). false on no memory. */
static inline bool mica_tok_heap_push(mica_tok_heap_t *h, mica_tok_pair_t p, bool sift)
{
    if (!mica_tok_grow(h->s, h->slot, (h->n + 1) * sizeof(mica_tok_pair_t)))
        return false;
    mica_tok_pair_t *a = h->s->buf[h->slot];
    size_t i = h->n++;
    while (sift && i > 0) {
        size_t up = (i - 1) / 4;
        if (a[up].key <= p.key)
            break;
        a[i] = a[up];
        i = up;
    }
    a[i] = p;
    return true;
}

static inline void mica_tok_heap_sift_down(mica_tok_pair_t *a, size_t n, size_t i,
                                           mica_tok_pair_t x)
{
    for (;;) {
        size_t c = 4 * i + 1, best = c;
        if (c >= n)
            break;
        size_t e = c + 4 < n ? c + 4 : n;
        for (size_t k = c + 1; k < e; k++)
            if (a[k].key < a[best].key)
                best = k;
        if (a[best].key >= x.key)
            break;
        a[i] = a[best];
        i = best;
    }
    a[i] = x;
}

static inline void mica_tok_heap_build(mica_tok_heap_t *h)
{
    mica_tok_pair_t *a = h->s->buf[h->slot];
    for (size_t i = h->n / 4 + 1; i-- > 0;)
        if (i < h->n)
            mica_tok_heap_sift_down(a, h->n, i, a[i]);
}

static inline mica_tok_pair_t mica_tok_heap_pop(mica_tok_heap_t *h)
{
    mica_tok_pair_t *a = h->s->buf[h->slot];
    mica_tok_pair_t top = a[0];
    h->n--;
    if (h->n)
        mica_tok_heap_sift_down(a, h->n, 0, a[h->n]);
    return top;
}

/* ---- the merge loop (both algorithms) ---- */

/* One symbol of the text being merged: bytes [off, off + n) of it (n = 0
 * once merged into its left neighbour), neighbours -1 at the ends. */
typedef struct mica_tok_sym {
    uint32_t off, n;
    int32_t prev, next;
} mica_tok_sym_t;

/* Splits s[0..n) into one symbol per UTF-8 character (length from the
 * lead byte, cut at the end) and returns their count; sym holds n. */
int32_t mica_tok_split_chars(const char *s, size_t n, mica_tok_sym_t *sym);

/* Priority of merging s[0..split) with s[split..n) into *out, the lower
 * the sooner; false if the two never merge. */
typedef bool (*mica_tok_rank_fn)(const mica_tokenizer_t *t, const char *s, size_t n, size_t split,
                                 uint32_t *out);

/* Links symbols lo..hi-1 of `text` into a list and merges adjacent pairs,
 * best rank first (leftmost on ties), until no pair merges; the result is
 * the list from lo. The queue lives in scratch slot `heap_slot`. false on
 * no memory. */
bool mica_tok_merge(const mica_tokenizer_t *t, const char *text, mica_tok_sym_t *sym, int32_t lo,
                    int32_t hi, mica_tok_rank_fn rank, mica_tok_scratch_t *s, int heap_slot);

/* Encodes one run of plain text (no special tokens in it). `prefix_space`
 * is the SPM rule "a space goes in front". false on no memory. */
bool mica_tok_spm_encode(const mica_tokenizer_t *t, const char *text, size_t len, bool prefix_space,
                         mica_tok_scratch_t *s, mica_tok_out_t *out);
bool mica_tok_bpe_encode(const mica_tokenizer_t *t, const char *text, size_t len,
                         mica_tok_scratch_t *s, mica_tok_out_t *out);

/* Pre-tokenizer: splits cps[0..n) (flags in fl) by the tokenizer's stages.
 * Writes piece lengths (in code points) to *pieces (scratch slots a, b) and
 * returns their count, or -1 on no memory. Exposed for tests of the split. */
int64_t mica_tok_pretokenize(const mica_tokenizer_t *t, const uint32_t *cps, const uint16_t *fl,
                             size_t n, mica_tok_scratch_t *s, int slot_a, int slot_b,
                             const uint32_t **pieces);

#endif
