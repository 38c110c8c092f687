/* Fuzz target: the tokenizer on arbitrary bytes, for both vocabulary kinds
 * (the golden models' SentencePiece and GPT-2 byte-level BPE vocabularies).
 * The first byte chooses the vocabulary and flags, the rest is the text.
 * Checks, beyond not crashing:
 *   - byte-level BPE without special parsing is lossless on valid UTF-8:
 *     decoding the ids gives the text back byte for byte (invalid UTF-8
 *     becomes U+FFFD, as in llama.cpp);
 *   - streaming decode, token by token plus the final flush, gives the same
 *     bytes as decoding the whole list at once;
 *   - the same bytes read as token ids decode, or fail with a message when
 *     an id is outside the vocabulary. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_targets.h"
#include "gguf.h"
#include "tokenizer.h"
#include "vocab.h"

#ifndef MICA_GOLDEN_DIR
#error "MICA_GOLDEN_DIR must name ../shared/golden"
#endif

typedef struct loaded {
    mica_gguf_t *file;
    mica_vocab_t vocab;
    mica_tokenizer_t *tok;
} loaded_t;

/* Loaded once per process and kept (reachable, so not a leak). */
static loaded_t vocabs[2];

static const mica_tokenizer_t *tokenizer(int kind)
{
    static const char *const files[2] = {MICA_GOLDEN_DIR "/llama-tiny.q4_0.gguf",
                                         MICA_GOLDEN_DIR "/qwen2-tiny.q4_0.gguf"};
    loaded_t *l = &vocabs[kind];
    if (!l->tok) {
        mica_diag_t d = {0};
        if (mica_gguf_open(files[kind], &l->file, &d) != MICA_OK ||
            mica_vocab_from_gguf_meta(mica_gguf_meta(l->file), &l->vocab, &d) != MICA_OK ||
            mica_tokenizer_create(&l->vocab.desc, &l->tok, &d) != MICA_OK) {
            fprintf(stderr, "%s: %s\n", files[kind], d.msg);
            abort();
        }
    }
    return l->tok;
}

/* True if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code
 * points past U+10FFFF). */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return false;
        uint32_t cp = k == 1 ? c : c & (0x7f >> k);
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k;
    }
    return true;
}

/* Whole decode of ids[0..n) against a token-by-token stream of them. */
static void decode_both_ways(const mica_tokenizer_t *tok, const int32_t *ids, size_t n,
                             uint32_t flags, char *whole, size_t cap, size_t *out_len)
{
    mica_diag_t d = {0};
    size_t len = 0;
    mica_status_t s = mica_tokenizer_decode(tok, ids, n, flags, whole, cap, &len, &d);
    MICA_FUZZ_CHECK(s == MICA_OK, "decode of valid ids: %s", d.msg);
    size_t piece_cap = mica_tokenizer_max_piece_len(tok) + 4;
    char *streamed = malloc(len + 4), *piece = malloc(piece_cap);
    MICA_FUZZ_CHECK(streamed && piece, "out of memory");
    mica_tokenizer_stream_t st;
    mica_tokenizer_stream_init(&st, flags);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t got = 0;
        s = mica_tokenizer_stream_push(tok, &st, ids[i], piece, piece_cap, &got, &d);
        MICA_FUZZ_CHECK(s == MICA_OK, "stream push of id %d: %s", ids[i], d.msg);
        MICA_FUZZ_CHECK(at + got <= len, "the stream emits more than the whole decode");
        memcpy(streamed + at, piece, got);
        at += got;
    }
    char tail[4];
    size_t nt = mica_tokenizer_stream_flush(&st, tail);
    MICA_FUZZ_CHECK(at + nt == len, "stream gives %zu bytes, whole decode %zu", at + nt, len);
    memcpy(streamed + at, tail, nt);
    MICA_FUZZ_CHECK(memcmp(streamed, whole, len) == 0, "stream and whole decode differ");
    free(streamed);
    free(piece);
    *out_len = len;
}

int mica_fuzz_tokenizer_one(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    const uint8_t mode = data[0];
    const int kind = mode & 1;
    const bool special = mode & 2;
    const uint32_t dflags = (mode & 4 ? MICA_TOKENIZER_DECODE_SPECIAL : 0) |
                            (mode & 8 ? MICA_TOKENIZER_DECODE_STRIP_SPACE : 0);
    const char *text = (const char *)data + 1;
    const size_t len = size - 1;
    const mica_tokenizer_t *tok = tokenizer(kind);
    mica_diag_t d = {0};

    /* a small guess first: a too-small buffer must report the size it needs */
    size_t cap = len / 2 + 1, n = 0;
    int32_t *ids = malloc((cap > len / 4 ? cap : len / 4 + 1) * sizeof *ids);
    MICA_FUZZ_CHECK(ids, "out of memory");
    const uint32_t eflags = special ? MICA_TOKENIZER_PARSE_SPECIAL : 0;
    mica_status_t s = mica_tokenizer_encode(tok, text, len, eflags, ids, cap, &n, &d);
    if (s == MICA_ERR_RANGE) {
        MICA_FUZZ_CHECK(n > cap, "range error with %zu of %zu ids", n, cap);
        /* each invalid byte can become U+FFFD, three byte tokens */
        MICA_FUZZ_CHECK(n <= 3 * len + 2, "%zu ids for %zu bytes", n, len);
        free(ids);
        cap = n > len / 4 ? n : len / 4 + 1;
        ids = malloc(cap * sizeof *ids);
        MICA_FUZZ_CHECK(ids, "out of memory");
        size_t again = 0;
        s = mica_tokenizer_encode(tok, text, len, eflags, ids, cap, &again, &d);
        MICA_FUZZ_CHECK(again == n, "second encode gives %zu ids, first said %zu", again, n);
    }
    MICA_FUZZ_CHECK(s == MICA_OK, "encode of %zu bytes: %s", len, d.msg);
    for (size_t i = 0; i < n; i++)
        MICA_FUZZ_CHECK(ids[i] >= 0 && (uint32_t)ids[i] < mica_tokenizer_n_tokens(tok),
                        "id %d outside the vocabulary", ids[i]);
    size_t out_cap = (mica_tokenizer_max_piece_len(tok) + 1) * (n + 1), out_len = 0;
    char *out = malloc(out_cap);
    MICA_FUZZ_CHECK(out, "out of memory");
    decode_both_ways(tok, ids, n, dflags, out, out_cap, &out_len);
    if (kind == 1 && !special && utf8_valid(data + 1, len))
        MICA_FUZZ_CHECK(out_len == len && memcmp(out, text, len) == 0,
                        "byte-level BPE round trip lost bytes (%zu -> %zu)", len, out_len);
    free(out);

    /* the same bytes as ids: each one decodes or is refused by message */
    size_t n_raw = len / 4;
    const uint32_t n_tok = mica_tokenizer_n_tokens(tok);
    bool all_valid = true;
    for (size_t i = 0; i < n_raw; i++) {
        int32_t id;
        memcpy(&id, text + 4 * i, 4);
        if (id % 8 != 0) /* mostly valid ids, some not */
            id = (int32_t)((uint32_t)id % n_tok);
        ids[i] = id;
        all_valid = all_valid && id >= 0 && (uint32_t)id < n_tok;
    }
    out_cap = (mica_tokenizer_max_piece_len(tok) + 1) * (n_raw + 1);
    out = malloc(out_cap);
    MICA_FUZZ_CHECK(out, "out of memory");
    if (all_valid) {
        decode_both_ways(tok, ids, n_raw, dflags, out, out_cap, &out_len);
    } else {
        s = mica_tokenizer_decode(tok, ids, n_raw, dflags, out, out_cap, &out_len, &d);
        MICA_FUZZ_CHECK(s == MICA_ERR_INVALID && d.msg[0], "an invalid id was decoded");
    }
    free(out);
    free(ids);
    return 0;
}

MICA_FUZZ_DEFINE_ENTRY(tokenizer)
