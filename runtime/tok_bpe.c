/* Byte-level BPE, as llama.cpp's llm_tokenizer_bpe: the text is decoded to
 * code points (bad bytes as U+FFFD), split into pieces by the
 * pre-tokenizer's regexes (written out by hand below, with the quirks of
 * llama.cpp's hand-written gpt2/llama3 splitters and of its std::regex
 * fallback for the others), each piece's UTF-8 bytes are mapped to GPT-2's
 * printable characters, and the adjacent pair with the lowest merge rank
 * (leftmost on ties) merges first. */
#include <string.h>

#include "tok_internal.h"

enum {
    SLOT_CPS = 0,     /* uint32 code points of the run */
    SLOT_FLAGS = 1,   /* uint16 class flags */
    SLOT_PIECE_A = 2, /* uint32 piece lengths, ping */
    SLOT_PIECE_B = 3, /* pong */
    SLOT_WORD = 4,    /* bytes of one byte-encoded piece */
    SLOT_SYMS = 5,
    SLOT_HEAP = 6,
};

#define WS MICA_TOK_U_WHITESPACE
#define LETTER MICA_TOK_U_LETTER
#define NUMBER MICA_TOK_U_NUMBER
#define OOR 0xFFFFFFFFu /* code point past the end of the piece */

/* ---- pre-tokenizer ---- */

typedef struct splitter {
    const uint32_t *cp;
    const uint16_t *fl;
    size_t end;  /* one past the piece being split */
    size_t prev; /* end of the last piece emitted */
    uint32_t *out;
    size_t n_out;
} splitter_t;

static uint32_t cpt(const splitter_t *s, size_t p)
{
    return p < s->end ? s->cp[p] : OOR;
}

/* Flags, 0 past the end (every code point inside has a class bit). */
static uint16_t flg(const splitter_t *s, size_t p)
{
    return p < s->end ? s->fl[p] : 0;
}

/* Ends a piece at `end` (nothing if empty). */
static void add(splitter_t *s, size_t end)
{
    if (end > s->prev)
        s->out[s->n_out++] = (uint32_t)(end - s->prev);
    s->prev = end;
}

static uint32_t lower_ascii(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's 't 're 've 'm 'll 'd at pos (ASCII case folded with `fold`): length
 * matched, or 0. */
static size_t contraction(const splitter_t *s, size_t pos, bool fold)
{
    if (s->cp[pos] != '\'' || pos + 1 >= s->end)
        return 0;
    uint32_t c1 = s->cp[pos + 1];
    if (fold)
        c1 = lower_ascii(c1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
        return 2;
    if (pos + 2 >= s->end)
        return 0;
    uint32_t c2 = s->cp[pos + 2];
    if (fold)
        c2 = lower_ascii(c2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at pos, where nws whitespace code points start, or one
 * code point of anything else when nws is 0: returns the piece's end. */
static size_t split_space(splitter_t *s, size_t pos, size_t nws)
{
    if (nws > 1 && pos + nws < s->end) /* \s+(?!\S): leave the last one */
        pos += nws - 1;
    else if (nws > 0)
        pos += nws;
    else
        pos++;
    add(s, pos);
    return pos;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(splitter_t *s, size_t pos)
{
    while (pos < s->end) {
        uint32_t c = s->cp[pos];
        uint16_t f = s->fl[pos];
        size_t m = contraction(s, pos, false);
        if (m) {
            pos += m;
            add(s, pos);
            continue;
        }
        uint16_t f2 = c == ' ' ? flg(s, pos + 1) : f;
        if (f2 & LETTER) {
            pos += c == ' ';
            while (f2 & LETTER)
                f2 = flg(s, ++pos);
            add(s, pos);
            continue;
        }
        if (f2 & NUMBER) {
            pos += c == ' ';
            while (f2 & NUMBER)
                f2 = flg(s, ++pos);
            add(s, pos);
            continue;
        }
        if (!(f2 & (WS | LETTER | NUMBER)) && f2) {
            pos += c == ' ';
            while (!(f2 & (WS | LETTER | NUMBER)) && f2)
                f2 = flg(s, ++pos);
            add(s, pos);
            continue;
        }
        size_t nws = 0;
        while (flg(s, pos + nws) & WS)
            nws++;
        pos = split_space(s, pos, nws);
    }
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,ndig}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * ndig 3 is llama3 (llama.cpp's hand-written splitter); ndig 1 is qwen2,
 * which llama.cpp runs through std::regex: the same pieces, since within a
 * piece every code point has a class. */
static void split_llama3(splitter_t *s, size_t pos, size_t ndig)
{
    while (pos < s->end) {
        uint32_t c = s->cp[pos];
        uint16_t f = s->fl[pos];
        size_t m = contraction(s, pos, true);
        if (m) {
            pos += m;
            add(s, pos);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & NUMBER))) {
            if ((f & LETTER) || (flg(s, pos + 1) & LETTER)) {
                pos++;
                while (flg(s, pos) & LETTER)
                    pos++;
                add(s, pos);
                continue;
            }
        }
        if (f & NUMBER) {
            size_t ini = pos;
            while (flg(s, pos) & NUMBER) {
                if (++pos - ini >= ndig) {
                    add(s, pos);
                    ini = pos;
                }
            }
            add(s, pos);
            continue;
        }
        uint16_t f2 = c == ' ' ? flg(s, pos + 1) : f;
        if (!(f2 & (WS | LETTER | NUMBER)) && f) {
            pos += c == ' ';
            while (!(f2 & (WS | LETTER | NUMBER)) && f2)
                f2 = flg(s, ++pos);
            uint32_t c2 = cpt(s, pos);
            while (c2 == '\r' || c2 == '\n')
                c2 = cpt(s, ++pos);
            add(s, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (flg(s, pos + nws) & WS) {
            uint32_t c2 = cpt(s, pos + nws);
            if (c2 == '\r' || c2 == '\n')
                last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) { /* \s*[\r\n]+ */
            pos = last_rn;
            add(s, pos);
            continue;
        }
        pos = split_space(s, pos, nws);
    }
}

/* \p{N} (each_digit) or \p{N}+: digit pieces, and the text between them. */
static void split_digits(splitter_t *s, size_t pos, bool each_digit)
{
    while (pos < s->end) {
        if (s->fl[pos] & NUMBER) {
            pos++;
            while (!each_digit && pos < s->end && (s->fl[pos] & NUMBER))
                pos++;
        } else {
            while (pos < s->end && !(s->fl[pos] & NUMBER))
                pos++;
        }
        add(s, pos);
    }
}

static bool ascii_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}

/* [0-9][0-9][0-9], matched left to right; the text between is a piece. */
static void split_ascii_digit3(splitter_t *s, size_t pos)
{
    while (pos < s->end) {
        if (pos + 3 <= s->end && ascii_digit(s->cp[pos]) && ascii_digit(s->cp[pos + 1]) &&
            ascii_digit(s->cp[pos + 2])) {
            add(s, pos);
            pos += 3;
            add(s, pos);
        } else {
            pos++;
        }
    }
    add(s, pos);
}

/* [\p{P}\$\+<=>\^~\|]: llama.cpp runs this on text where code points below
 * 128 stand for themselves (ASCII punctuation and the listed symbols, so
 * every ASCII mark but '`') and others for their class. */
static bool punct_class(uint32_t c, uint16_t f)
{
    if (c < 128)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x5F) ||
               (c >= 0x7B && c <= 0x7E);
    return (f & MICA_TOK_U_PUNCT) && !(f & WS);
}

static void split_punct(splitter_t *s, size_t pos)
{
    while (pos < s->end) {
        bool p = punct_class(s->cp[pos], s->fl[pos]);
        while (pos < s->end && punct_class(s->cp[pos], s->fl[pos]) == p)
            pos++;
        add(s, pos);
    }
}

/* ---- the pre-tokenizers llama.cpp runs through std::regex ----
 *
 * Every \s in them matches White_Space: llama.cpp hands the regex a text
 * in which code points above 127 that are White_Space stand as U+000B and
 * \s (C locale) matches exactly the ASCII White_Space. A class therefore
 * never holds a non-ASCII White_Space code point, even when its ranges
 * cover one (U+3000 below). \p{L} and \p{P} match the ASCII letters /
 * punctuation and the code points above 127 of that category. */

typedef struct cp_range {
    uint32_t lo, hi; /* inclusive */
} cp_range_t;

static bool in_ranges(const cp_range_t *r, size_t n, uint32_t c)
{
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].lo && c <= r[i].hi)
            return true;
    return false;
}

/* The letter list of DeepSeek LLM's pre-tokenizer (its tokenizer.json,
 * the same in llama.cpp): cased letters of some scripts, as ranges. */
static const cp_range_t DS_LETTERS[] = {
    {0x0041, 0x005A},   {0x0061, 0x007A},   {0x00B5, 0x00B5},   {0x00C0, 0x00D6},
    {0x00D8, 0x00F6},   {0x00F8, 0x01BA},   {0x01BC, 0x01BF},   {0x01C4, 0x0293},
    {0x0295, 0x02AF},   {0x0370, 0x0373},   {0x0376, 0x0377},   {0x037B, 0x037D},
    {0x037F, 0x037F},   {0x0386, 0x0386},   {0x0388, 0x038A},   {0x038C, 0x038C},
    {0x038E, 0x03A1},   {0x03A3, 0x03F5},   {0x03F7, 0x0481},   {0x048A, 0x052F},
    {0x0531, 0x0556},   {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

/* Its punctuation list: ASCII marks and letters but no digits, fullwidth
 * forms, quotation marks, U+3000..U+3002. */
static const cp_range_t DS_PUNCTS[] = {
    {0x0021, 0x002F}, {0x003A, 0x007E}, {0xFF01, 0xFF0F},
    {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
};

/* [\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}] (deepseek). */
static const cp_range_t CJK[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The classes these splitters take. */
typedef enum cls {
    CLS_LETTER,     /* \p{L} */
    CLS_PUNCT,      /* \p{P} */
    CLS_PUNCT_TICK, /* [\p{P}\$\+<=>\^~\|`] */
    CLS_DS_LETTER,
    CLS_DS_PUNCT,
    CLS_CJK,
} cls_t;

static bool in_class(cls_t k, uint32_t c, uint16_t f)
{
    if (c > 0x7F && (f & WS))
        return false;
    switch (k) {
    case CLS_LETTER:
        return c < 128 ? (c | 32) >= 'a' && (c | 32) <= 'z' : (f & LETTER) != 0;
    case CLS_PUNCT:
        if (c < 128)
            return (c >= 0x21 && c <= 0x23) || (c >= 0x25 && c <= 0x2A) ||
                   (c >= 0x2C && c <= 0x2F) || c == 0x3A || c == 0x3B || c == 0x3F || c == 0x40 ||
                   (c >= 0x5B && c <= 0x5D) || c == 0x5F || c == 0x7B || c == 0x7D;
        return (f & MICA_TOK_U_PUNCT) != 0;
    case CLS_PUNCT_TICK:
        if (c < 128)
            return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) ||
                   (c >= 0x5B && c <= 0x60) || (c >= 0x7B && c <= 0x7E);
        return (f & MICA_TOK_U_PUNCT) != 0;
    case CLS_DS_LETTER:
        return in_ranges(DS_LETTERS, N_OF(DS_LETTERS), c);
    case CLS_DS_PUNCT:
        return in_ranges(DS_PUNCTS, N_OF(DS_PUNCTS), c);
    case CLS_CJK:
        return in_ranges(CJK, N_OF(CJK), c);
    }
    return false;
}

static bool cls_at(const splitter_t *s, cls_t k, size_t p)
{
    return p < s->end && in_class(k, s->cp[p], s->fl[p]);
}

/* C+: runs of the class and the text between them. */
static void split_runs(splitter_t *s, size_t pos, cls_t k)
{
    while (pos < s->end) {
        bool in = cls_at(s, k, pos);
        while (pos < s->end && cls_at(s, k, pos) == in)
            pos++;
        add(s, pos);
    }
}

/* \s?C+, matched leftmost: a White_Space code point joins the run that
 * follows it. */
static void split_space_runs(splitter_t *s, size_t pos, cls_t k)
{
    while (pos < s->end) {
        size_t at = pos;
        if ((s->fl[pos] & WS) && cls_at(s, k, pos + 1))
            pos++;
        else if (!cls_at(s, k, pos)) {
            pos++;
            continue;
        }
        while (cls_at(s, k, pos))
            pos++;
        add(s, at);
        add(s, pos);
    }
    add(s, pos);
}

/* [\r\n]: each CR and LF on its own. */
static void split_newline(splitter_t *s, size_t pos)
{
    for (; pos < s->end; pos++) {
        if (s->cp[pos] == '\r' || s->cp[pos] == '\n') {
            add(s, pos);
            add(s, pos + 1);
        }
    }
    add(s, pos);
}

/* \s+$: the White_Space the piece ends with. */
static void split_trailing_space(splitter_t *s, size_t pos)
{
    size_t q = s->end;
    while (q > pos && (s->fl[q - 1] & WS))
        q--;
    add(s, q);
    add(s, s->end);
}

int64_t mica_tok_pretokenize(const mica_tokenizer_t *t, const uint32_t *cps, const uint16_t *fl,
                             size_t n, mica_tok_scratch_t *s, int slot_a, int slot_b,
                             const uint32_t **pieces)
{
    size_t bytes = (n ? n : 1) * sizeof(uint32_t);
    if (!mica_tok_grow(s, slot_a, bytes) || !mica_tok_grow(s, slot_b, bytes))
        return -1;
    uint32_t *in = s->buf[slot_a], *out = s->buf[slot_b];
    size_t n_in = 0;
    if (n)
        in[n_in++] = (uint32_t)n;
    for (int k = 0; k < t->n_stages; k++) {
        splitter_t sp = {cps, fl, 0, 0, out, 0};
        size_t start = 0;
        for (size_t i = 0; i < n_in; i++) {
            sp.end = start + in[i];
            sp.prev = start;
            switch (t->stages[k]) {
            case MICA_TOK_SPLIT_GPT2:
                split_gpt2(&sp, start);
                break;
            case MICA_TOK_SPLIT_LLAMA3:
                split_llama3(&sp, start, 3);
                break;
            case MICA_TOK_SPLIT_QWEN2:
                split_llama3(&sp, start, 1);
                break;
            case MICA_TOK_SPLIT_DIGIT:
                split_digits(&sp, start, true);
                break;
            case MICA_TOK_SPLIT_DIGITS:
                split_digits(&sp, start, false);
                break;
            case MICA_TOK_SPLIT_ASCII_DIGIT3:
                split_ascii_digit3(&sp, start);
                break;
            case MICA_TOK_SPLIT_PUNCT:
                split_punct(&sp, start);
                break;
            case MICA_TOK_SPLIT_PUNCT_TICK:
                split_runs(&sp, start, CLS_PUNCT_TICK);
                break;
            case MICA_TOK_SPLIT_NEWLINE:
                split_newline(&sp, start);
                break;
            case MICA_TOK_SPLIT_SPACE_LETTERS:
                split_space_runs(&sp, start, CLS_LETTER);
                break;
            case MICA_TOK_SPLIT_SPACE_PUNCTS:
                split_space_runs(&sp, start, CLS_PUNCT);
                break;
            case MICA_TOK_SPLIT_CJK:
                split_runs(&sp, start, CLS_CJK);
                break;
            case MICA_TOK_SPLIT_DS_LETTERS:
                split_space_runs(&sp, start, CLS_DS_LETTER);
                break;
            case MICA_TOK_SPLIT_DS_PUNCTS:
                split_space_runs(&sp, start, CLS_DS_PUNCT);
                break;
            case MICA_TOK_SPLIT_TRAILING_SPACE:
                split_trailing_space(&sp, start);
                break;
            }
            add(&sp, sp.end); /* defensive: a splitter always ends at the end */
            start = sp.end;
        }
        uint32_t *tmp = in;
        in = out;
        out = tmp;
        n_in = sp.n_out;
    }
    *pieces = in;
    return (int64_t)n_in;
}

/* ---- BPE over one piece ---- */

/* A pair merges if it is a merge of the vocabulary; the lower its rank,
 * the sooner. */
static bool pair_rank(const mica_tokenizer_t *t, const char *s, size_t n, size_t split,
                      uint32_t *out)
{
    int32_t rank = mica_tok_merge_rank(t, s, n, split);
    if (rank < 0)
        return false;
    *out = (uint32_t)rank;
    return true;
}

static bool bpe_word(const mica_tokenizer_t *t, const char *w, size_t n, mica_tok_scratch_t *s,
                     mica_tok_out_t *out)
{
    if (t->ignore_merges) {
        int32_t id = mica_tok_lookup(t, w, n);
        if (id != MICA_TOKEN_NULL) {
            mica_tok_emit(out, id);
            return true;
        }
    }
    if (!mica_tok_grow(s, SLOT_SYMS, n * sizeof(mica_tok_sym_t)))
        return false;
    mica_tok_sym_t *sym = s->buf[SLOT_SYMS];
    int32_t n_sym = mica_tok_split_chars(w, n, sym);
    if (!mica_tok_merge(t, w, sym, 0, n_sym, pair_rank, s, SLOT_HEAP))
        return false;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        const char *p = w + sym[i].off;
        int32_t id = mica_tok_lookup(t, p, sym[i].n);
        if (id != MICA_TOKEN_NULL) {
            mica_tok_emit(out, id);
            continue;
        }
        for (uint32_t j = 0; j < sym[i].n; j++) { /* as llama.cpp: each byte, if a token */
            id = mica_tok_lookup(t, p + j, 1);
            if (id != MICA_TOKEN_NULL)
                mica_tok_emit(out, id);
        }
    }
    return true;
}

bool mica_tok_bpe_encode(const mica_tokenizer_t *t, const char *text, size_t len,
                         mica_tok_scratch_t *s, mica_tok_out_t *out)
{
    if (!mica_tok_grow(s, SLOT_CPS, (len + 1) * sizeof(uint32_t)) ||
        !mica_tok_grow(s, SLOT_FLAGS, (len + 1) * sizeof(uint16_t)))
        return false;
    uint32_t *cps = s->buf[SLOT_CPS];
    uint16_t *fl = s->buf[SLOT_FLAGS];
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t adv;
        uint32_t c = mica_tok_utf8_decode((const uint8_t *)text + i, len - i, &adv);
        cps[n] = c;
        fl[n] = mica_tok_uclass(c);
        n++;
        i += adv;
    }
    const uint32_t *pieces;
    int64_t n_pieces = mica_tok_pretokenize(t, cps, fl, n, s, SLOT_PIECE_A, SLOT_PIECE_B, &pieces);
    if (n_pieces < 0)
        return false;

    size_t start = 0;
    for (int64_t k = 0; k < n_pieces; k++) {
        size_t m = pieces[k];
        if (!mica_tok_grow(s, SLOT_WORD, m * 8))
            return false;
        char *w = s->buf[SLOT_WORD];
        size_t wn = 0;
        for (size_t i = start; i < start + m; i++) {
            uint8_t u8[4];
            size_t nb = mica_tok_utf8_encode(cps[i], u8);
            for (size_t j = 0; j < nb; j++)
                wn += mica_tok_utf8_encode(t->byte_cp[u8[j]], (uint8_t *)w + wn);
        }
        if (!bpe_word(t, w, wn, s, out))
            return false;
        start += m;
    }
    return true;
}
