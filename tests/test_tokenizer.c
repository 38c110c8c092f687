/* The tokenizer: llama.cpp's ids for the golden strings (vocabularies read
 * from the golden GGUF files), hand-worked merges on small vocabularies,
 * pre-tokenizer splits worked out from the regexes, special tokens,
 * decoding and streaming, and robustness (bad UTF-8, 1 MB inputs). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "gguf_write.h"
#include "test_run.h"
#include "test_support.h"
#include "tok_internal.h"
#include "tokenizer.h"
#include "vocab.h"

/* ---- helpers ---- */

typedef struct gguf_tok {
    mica_gguf_t *file;
    mica_vocab_t vocab;
    mica_tokenizer_t *tok;
} gguf_tok_t;

static gguf_tok_t load_gguf(const char *name)
{
    gguf_tok_t g = {0};
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden(name), &g.file, &d), MICA_OK, "%s: %s", name,
                 d.msg);
    cr_assert_eq(mica_vocab_from_gguf_meta(mica_gguf_meta(g.file), &g.vocab, &d), MICA_OK, "%s: %s", name, d.msg);
    cr_assert_eq(mica_tokenizer_create(&g.vocab.desc, &g.tok, &d), MICA_OK, "%s: %s", name, d.msg);
    return g;
}

static void unload(gguf_tok_t *g)
{
    mica_tokenizer_release(g->tok);
    mica_vocab_deinit(&g->vocab);
    mica_gguf_close(g->file);
}

/* Encodes into a fresh array (*out_n ids); asserts success. */
static int32_t *enc(const mica_tokenizer_t *t, const char *s, size_t len, uint32_t flags,
                    size_t *out_n)
{
    mica_diag_t d = {0};
    size_t n = 0;
    mica_status_t st = mica_tokenizer_encode(t, s, len, flags, NULL, 0, &n, &d);
    cr_assert(st == MICA_OK || st == MICA_ERR_RANGE, "%s", d.msg);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t n2 = 0;
    cr_assert_eq(mica_tokenizer_encode(t, s, len, flags, ids, n, &n2, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(n2, n);
    *out_n = n;
    return ids;
}

static void expect_ids(const mica_tokenizer_t *t, const char *s, uint32_t flags,
                       const int32_t *want, size_t n_want)
{
    size_t n;
    int32_t *ids = enc(t, s, strlen(s), flags, &n);
    cr_expect_eq(n, n_want, "'%s': %zu ids, want %zu", s, n, n_want);
    for (size_t i = 0; i < n && i < n_want; i++)
        cr_expect_eq(ids[i], want[i], "'%s': id %zu is %d, want %d", s, i, ids[i], want[i]);
    free(ids);
}

#define EXPECT_IDS(t, s, flags, ...)                                                               \
    do {                                                                                           \
        const int32_t want_[] = {__VA_ARGS__};                                                     \
        expect_ids(t, s, flags, want_, sizeof want_ / sizeof want_[0]);                            \
    } while (0)

/* Decodes into a fresh NUL-terminated string (length in *out_len). */
static char *dec(const mica_tokenizer_t *t, const int32_t *ids, size_t n, uint32_t flags,
                 size_t *out_len)
{
    mica_diag_t d = {0};
    size_t len = 0;
    mica_status_t st = mica_tokenizer_decode(t, ids, n, flags, NULL, 0, &len, &d);
    cr_assert(st == MICA_OK || st == MICA_ERR_RANGE, "%s", d.msg);
    char *s = malloc(len + 1);
    size_t len2 = 0;
    cr_assert_eq(mica_tokenizer_decode(t, ids, n, flags, s, len, &len2, &d), MICA_OK, "%s", d.msg);
    s[len2] = 0;
    *out_len = len2;
    return s;
}

/* ---- golden: llama.cpp's ids ---- */

/* Splits the .inp into strings (separated by "\n__ggml_vocab_test__\n", as
 * llama.cpp's test-tokenizer-0 reads it) and the .out into lines. */
typedef struct golden {
    char *inp, *out;
    const char *str[128];
    size_t len[128];
    char *line[128];
    size_t n;
} golden_t;

static golden_t read_golden(const char *base)
{
    golden_t g = {0};
    char name[256];
    size_t inp_len, out_len;
    snprintf(name, sizeof name, "tokenizer/%s.inp", base);
    g.inp = mica_test_read_file(mica_test_golden(name), &inp_len);
    cr_assert(g.inp, "cannot read %s", name);
    snprintf(name, sizeof name, "tokenizer/%s.out", base);
    g.out = mica_test_read_file(mica_test_golden(name), &out_len);
    cr_assert(g.out, "cannot read %s", name);
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = g.inp, *end = g.inp + inp_len;
    while (p < end) {
        const char *q = strstr(p, sep);
        if (!q)
            q = end;
        cr_assert(g.n < 128);
        g.str[g.n] = p;
        g.len[g.n] = (size_t)(q - p);
        g.n++;
        p = q == end ? end : q + strlen(sep);
    }
    size_t n_lines = 0;
    for (char *l = g.out; l < g.out + out_len;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = 0;
        cr_assert(n_lines < 128);
        g.line[n_lines++] = l;
        l = nl ? nl + 1 : g.out + out_len;
    }
    cr_assert_eq(n_lines, g.n, "%s: %zu strings but %zu result lines", base, g.n, n_lines);
    return g;
}

static void free_golden(golden_t *g)
{
    free(g->inp);
    free(g->out);
}

static void golden_check(const char *model, const char *base)
{
    gguf_tok_t m = load_gguf(model);
    golden_t g = read_golden(base);
    size_t matched = 0;
    for (size_t i = 0; i < g.n; i++) {
        int32_t want[1024];
        size_t n_want = 0;
        for (char *p = g.line[i]; *p;) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p)
                break;
            cr_assert(n_want < 1024);
            want[n_want++] = (int32_t)v;
            p = e;
        }
        size_t n;
        int32_t *ids = enc(m.tok, g.str[i], g.len[i], 0, &n);
        bool ok = n == n_want && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
        if (ok) {
            matched++;
        } else {
            char got[8192];
            size_t k = 0;
            for (size_t j = 0; j < n && k < sizeof got - 16; j++)
                k += (size_t)snprintf(got + k, sizeof got - k, " %d", ids[j]);
            got[k] = 0;
            cr_log_error("%s string %zu '%.*s':\n  got %s\n want %s", base, i, (int)g.len[i],
                         g.str[i], got, g.line[i]);
        }
        free(ids);
    }
    cr_log_info("%s: %zu of %zu golden strings match llama.cpp", base, matched, g.n);
    fprintf(stderr, "tokenizer golden %s: %zu of %zu match\n", base, matched, g.n);
    cr_expect_eq(matched, g.n, "%s: %zu of %zu golden strings match", base, matched, g.n);
    free_golden(&g);
    unload(&m);
}

Test(tokenizer_golden, llama_spm_matches_llama_cpp)
{
    golden_check("llama-tiny.f32.gguf", "llama-spm");
}

Test(tokenizer_golden, gpt2_matches_llama_cpp)
{
    golden_check("qwen2-tiny.f32.gguf", "gpt-2");
}

static void roundtrip_check(const char *model, const char *base, uint32_t dflags)
{
    gguf_tok_t m = load_gguf(model);
    golden_t g = read_golden(base);
    for (size_t i = 0; i < g.n; i++) {
        size_t n, len;
        int32_t *ids = enc(m.tok, g.str[i], g.len[i], 0, &n);
        char *s = dec(m.tok, ids, n, dflags, &len);
        cr_expect(len == g.len[i] && memcmp(s, g.str[i], len) == 0,
                  "%s string %zu: '%.*s' came back '%s'", base, i, (int)g.len[i], g.str[i], s);
        /* the same through the stream, one token at a time */
        mica_tokenizer_stream_t st;
        mica_tokenizer_stream_init(&st, dflags);
        size_t cap = mica_tokenizer_max_piece_len(m.tok) + 4, total = 0;
        char *acc = malloc(len + 8), *buf = malloc(cap);
        for (size_t j = 0; j < n; j++) {
            size_t k;
            mica_diag_t d = {0};
            cr_assert_eq(mica_tokenizer_stream_push(m.tok, &st, ids[j], buf, cap, &k, &d), MICA_OK,
                         "%s", d.msg);
            cr_assert(total + k <= len);
            memcpy(acc + total, buf, k);
            total += k;
        }
        char tail[4];
        size_t k = mica_tokenizer_stream_flush(&st, tail);
        cr_assert(total + k <= len + 8);
        memcpy(acc + total, tail, k);
        total += k;
        cr_expect(total == len && memcmp(acc, s, len) == 0, "%s string %zu: stream differs", base,
                  i);
        free(acc);
        free(buf);
        free(s);
        free(ids);
    }
    free_golden(&g);
    unload(&m);
}

Test(tokenizer_golden, llama_spm_decode_roundtrips)
{
    roundtrip_check("llama-tiny.f32.gguf", "llama-spm", MICA_TOKENIZER_DECODE_STRIP_SPACE);
}

Test(tokenizer_golden, gpt2_decode_roundtrips)
{
    roundtrip_check("qwen2-tiny.f32.gguf", "gpt-2", 0);
}

Test(tokenizer_golden, vocab_from_gguf_reads_the_metadata)
{
    gguf_tok_t l = load_gguf("llama-tiny.f32.gguf");
    cr_expect_eq(mica_tokenizer_kind(l.tok), MICA_VOCAB_SPM);
    cr_expect_eq(mica_tokenizer_n_tokens(l.tok), 32000u);
    cr_expect_eq(mica_tokenizer_bos(l.tok), 1);
    cr_expect_eq(mica_tokenizer_eos(l.tok), 2);
    cr_expect_eq(mica_tokenizer_unk(l.tok), 0);
    cr_expect(mica_tokenizer_add_bos(l.tok));
    cr_expect(!mica_tokenizer_add_eos(l.tok));
    cr_expect(l.vocab.desc.add_space_prefix);
    cr_expect_eq(mica_tokenizer_token_type(l.tok, 3), MICA_TOKEN_TYPE_BYTE);
    cr_expect(mica_tokenizer_is_eog(l.tok, 2));
    cr_expect(!mica_tokenizer_is_eog(l.tok, 1));
    unload(&l);

    gguf_tok_t q = load_gguf("qwen2-tiny.f32.gguf");
    cr_expect_eq(mica_tokenizer_kind(q.tok), MICA_VOCAB_BPE);
    cr_expect_eq(mica_tokenizer_n_tokens(q.tok), 50257u);
    cr_expect_eq(q.vocab.desc.n_merges, 50000u);
    cr_expect_eq(mica_tokenizer_bos(q.tok), 50256);
    cr_expect(!mica_tokenizer_add_bos(q.tok));
    size_t n;
    const char *s = mica_tokenizer_token_text(q.tok, 50256, &n);
    cr_expect(n == 13 && memcmp(s, "<|endoftext|>", 13) == 0);
    cr_expect(mica_tokenizer_is_eog(q.tok, 50256));
    unload(&q);
}

/* ---- special tokens, BOS/EOS, capacity (golden vocabularies) ---- */

Test(tokenizer_golden, parse_special_cuts_out_control_tokens)
{
    gguf_tok_t q = load_gguf("qwen2-tiny.f32.gguf");
    const char *s = "a<|endoftext|>b";
    size_t n_plain, n_a, n_b;
    int32_t *plain = enc(q.tok, s, strlen(s), 0, &n_plain);
    int32_t *a = enc(q.tok, "a", 1, 0, &n_a);
    int32_t *b = enc(q.tok, "b", 1, 0, &n_b);
    cr_assert_eq(n_a, 1);
    cr_assert_eq(n_b, 1);
    for (size_t i = 0; i < n_plain; i++)
        cr_expect_neq(plain[i], 50256, "control token matched without PARSE_SPECIAL");
    cr_expect_gt(n_plain, 3);
    EXPECT_IDS(q.tok, s, MICA_TOKENIZER_PARSE_SPECIAL, a[0], 50256, b[0]);
    /* decoding prints control tokens only when asked */
    const int32_t ids[3] = {a[0], 50256, b[0]};
    size_t len;
    char *t1 = dec(q.tok, ids, 3, 0, &len);
    cr_expect_str_eq(t1, "ab");
    char *t2 = dec(q.tok, ids, 3, MICA_TOKENIZER_DECODE_SPECIAL, &len);
    cr_expect_str_eq(t2, s);
    free(t1);
    free(t2);
    free(plain);
    free(a);
    free(b);
    unload(&q);

    /* SPM: text after a special token gets the prefix space again */
    gguf_tok_t l = load_gguf("llama-tiny.f32.gguf");
    size_t n_hi, n_all;
    int32_t *hi = enc(l.tok, "Hi", 2, 0, &n_hi);
    int32_t *all = enc(l.tok, "<s>Hi", 5, MICA_TOKENIZER_PARSE_SPECIAL, &n_all);
    cr_assert_eq(n_all, n_hi + 1);
    cr_expect_eq(all[0], 1);
    cr_expect(memcmp(all + 1, hi, n_hi * sizeof *hi) == 0);
    free(hi);
    free(all);
    unload(&l);
}

Test(tokenizer_golden, bos_eos_flags)
{
    gguf_tok_t l = load_gguf("llama-tiny.f32.gguf");
    size_t n0, n1, n2, n3;
    int32_t *plain = enc(l.tok, "Hello world", 11, 0, &n0);
    int32_t *both =
        enc(l.tok, "Hello world", 11, MICA_TOKENIZER_ADD_BOS | MICA_TOKENIZER_ADD_EOS, &n1);
    int32_t *model = enc(l.tok, "Hello world", 11, MICA_TOKENIZER_ADD_SPECIAL, &n2);
    int32_t *empty = enc(l.tok, "", 0, MICA_TOKENIZER_ADD_SPECIAL, &n3);
    cr_assert_eq(n1, n0 + 2);
    cr_expect_eq(both[0], 1);
    cr_expect_eq(both[n1 - 1], 2);
    cr_expect(memcmp(both + 1, plain, n0 * sizeof *plain) == 0);
    cr_assert_eq(n2, n0 + 1); /* the model adds BOS, not EOS */
    cr_expect_eq(model[0], 1);
    cr_assert_eq(n3, 1);
    cr_expect_eq(empty[0], 1);
    /* the space the prefix put in survives a BOS unless stripped */
    size_t len;
    char *s1 = dec(l.tok, model, n2, 0, &len);
    cr_expect_str_eq(s1, " Hello world");
    char *s2 = dec(l.tok, model, n2, MICA_TOKENIZER_DECODE_STRIP_SPACE, &len);
    cr_expect_str_eq(s2, "Hello world");
    free(s1);
    free(s2);
    free(plain);
    free(both);
    free(model);
    free(empty);
    unload(&l);
}

Test(tokenizer_golden, buffer_too_small_reports_the_count)
{
    gguf_tok_t q = load_gguf("qwen2-tiny.f32.gguf");
    const char *s = "Hello world, this is a test of the capacity check.";
    size_t n;
    int32_t *full = enc(q.tok, s, strlen(s), 0, &n);
    cr_assert_gt(n, 4);
    int32_t small[3] = {-7, -7, -7};
    size_t need = 0;
    mica_diag_t d = {0};
    cr_expect_eq(mica_tokenizer_encode(q.tok, s, strlen(s), 0, small, 2, &need, &d),
                 MICA_ERR_RANGE);
    cr_expect_eq(need, n);
    cr_expect_eq(small[0], full[0]);
    cr_expect_eq(small[1], full[1]);
    cr_expect_eq(small[2], -7, "wrote past the capacity");
    cr_expect(strstr(d.msg, "do not fit") != NULL, "%s", d.msg);
    /* decode too */
    char out[4];
    size_t len = 0;
    cr_expect_eq(mica_tokenizer_decode(q.tok, full, n, 0, out, sizeof out, &len, &d),
                 MICA_ERR_RANGE);
    cr_expect_eq(len, strlen(s));
    cr_expect_eq(
        mica_tokenizer_decode(q.tok, (const int32_t[]){60000}, 1, 0, out, sizeof out, &len, &d),
        MICA_ERR_INVALID);
    free(full);
    unload(&q);
}

Test(tokenizer_golden, clean_spaces_as_llama_cpp)
{
    gguf_tok_t q = load_gguf("qwen2-tiny.f32.gguf");
    const char *s = "Hello , world 's fine ! ok";
    size_t n, len;
    int32_t *ids = enc(q.tok, s, strlen(s), 0, &n);
    char *raw = dec(q.tok, ids, n, 0, &len);
    cr_expect_str_eq(raw, s);
    char *clean = dec(q.tok, ids, n, MICA_TOKENIZER_DECODE_CLEAN_SPACES, &len);
    cr_expect_str_eq(clean, "Hello, world's fine! ok");
    free(raw);
    free(clean);
    free(ids);
    unload(&q);
}

/* The default real model (smollm pre-tokenizer), when tools/test.sh has
 * fetched it: digits one by one, chat tokens, round trips. */
Test(tokenizer_golden, smollm2_vocabulary)
{
    const char *path = getenv("MICA_DEFAULT_MODEL");
    cr_assert(path && *path,
              "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh and export its path");
    gguf_tok_t m = {0};
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(path, &m.file, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_vocab_from_gguf_meta(mica_gguf_meta(m.file), &m.vocab, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_tokenizer_create(&m.vocab.desc, &m.tok, &d), MICA_OK, "%s", d.msg);
    /* digits are split one by one, and each digit is a token */
    size_t n;
    int32_t *ids = enc(m.tok, "2024", 4, 0, &n);
    cr_expect_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = mica_tokenizer_token_text(m.tok, ids[i], &len);
        cr_expect(len == 1 && s[0] == "2024"[i]);
    }
    free(ids);
    const char *chat = "<|im_start|>user\nHi<|im_end|>";
    ids = enc(m.tok, chat, strlen(chat), MICA_TOKENIZER_PARSE_SPECIAL, &n);
    cr_assert_geq(n, 4);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(ids[n - 1], 2);
    cr_expect(mica_tokenizer_is_eog(m.tok, 2));
    free(ids);
    golden_t g = read_golden("gpt-2");
    for (size_t i = 0; i < g.n; i++) {
        size_t len;
        ids = enc(m.tok, g.str[i], g.len[i], 0, &n);
        char *s = dec(m.tok, ids, n, 0, &len);
        cr_expect(len == g.len[i] && memcmp(s, g.str[i], len) == 0, "string %zu did not round-trip",
                  i);
        free(s);
        free(ids);
    }
    free_golden(&g);
    unload(&m);
}

/* ---- robustness ---- */

/* CPU seconds of this process: the bound below is on the tokenizer's work
 * (no quadratic case), which wall time on a shared, loaded machine is not. */
static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#if defined(__SANITIZE_ADDRESS__)
#define TIME_LIMIT 15.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TIME_LIMIT 15.0
#endif
#endif
#ifndef TIME_LIMIT
#define TIME_LIMIT 1.0
#endif

static void big_input(const char *model, bool ascii_words)
{
    gguf_tok_t m = load_gguf(model);
    size_t len = 1u << 20;
    char *s = malloc(len);
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 1234);
    for (size_t i = 0; i < len; i++) {
        if (ascii_words) {
            int64_t k = mica_test_rng_range(&r, 0, 7);
            s[i] = k == 0 ? ' ' : (char)('a' + mica_test_rng_range(&r, 0, 25));
        } else {
            s[i] = (char)mica_test_rng_next(&r);
        }
    }
    size_t n = 0, cap = len + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    mica_diag_t d = {0};
    double t0 = seconds();
    cr_assert_eq(mica_tokenizer_encode(m.tok, s, len, 0, ids, cap, &n, &d), MICA_OK, "%s", d.msg);
    double dt = seconds() - t0;
    cr_log_info("%s: 1 MiB %s -> %zu tokens in %.3f s", model,
                ascii_words ? "words" : "random bytes", n, dt);
    cr_expect_lt(dt, TIME_LIMIT, "%s: 1 MiB took %.3f s", model, dt);
    cr_expect_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert(ids[i] >= 0 && (uint32_t)ids[i] < mica_tokenizer_n_tokens(m.tok));
    if (ascii_words) {
        size_t out_len;
        char *back = dec(m.tok, ids, n, MICA_TOKENIZER_DECODE_STRIP_SPACE, &out_len);
        cr_expect(out_len == len && memcmp(back, s, len) == 0, "%s: 1 MiB did not round-trip",
                  model);
        free(back);
    }
    free(ids);
    free(s);
    unload(&m);
}

Test(tokenizer_robust, one_mib_random_bytes_spm)
{
    big_input("llama-tiny.f32.gguf", false);
}

Test(tokenizer_robust, one_mib_random_bytes_bpe)
{
    big_input("qwen2-tiny.f32.gguf", false);
}

Test(tokenizer_robust, one_mib_words_spm)
{
    big_input("llama-tiny.f32.gguf", true);
}

Test(tokenizer_robust, one_mib_words_bpe)
{
    big_input("qwen2-tiny.f32.gguf", true);
}

Test(tokenizer_robust, invalid_utf8_does_not_crash)
{
    gguf_tok_t l = load_gguf("llama-tiny.f32.gguf");
    gguf_tok_t q = load_gguf("qwen2-tiny.f32.gguf");
    static const char *const cases[] = {
        "\xff",         "\xc3",
        "\xc3(",        "\xe2\x82",
        "\xf0\x9f\x98", "\xed\xa0\x80",
        "\xc0\x80",     "\xf7\xbf\xbf\xbf",
        "a\x80\x80z",   "\xf8\x88\x80\x80\x80",
        " \xfe ",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *s = cases[i];
        size_t n, len;
        int32_t *ids = enc(l.tok, s, strlen(s), 0, &n);
        /* SPM keeps the bytes, except where a bad lead byte swallows the
         * U+2581 that a following space became (llama.cpp does the same) */
        char *back = dec(l.tok, ids, n, MICA_TOKENIZER_DECODE_STRIP_SPACE, &len);
        if (!strchr(s, ' '))
            cr_expect(len == strlen(s) && memcmp(back, s, len) == 0,
                      "spm case %zu did not round-trip", i);
        free(back);
        free(ids);
        ids = enc(q.tok, s, strlen(s), 0, &n);
        cr_expect_gt(n, 0);
        free(ids);
    }
    /* byte-level BPE reads a bad byte as U+FFFD, as llama.cpp */
    size_t n, len;
    int32_t *ids = enc(q.tok, "\xff", 1, 0, &n);
    char *back = dec(q.tok, ids, n, 0, &len);
    cr_expect_str_eq(back, "\xef\xbf\xbd");
    free(back);
    free(ids);
    /* random short strings, with special parsing on */
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 99);
    char buf[64];
    int32_t out[256];
    for (int it = 0; it < 3000; it++) {
        size_t k = (size_t)mica_test_rng_range(&r, 0, 63);
        for (size_t j = 0; j < k; j++)
            buf[j] = (char)mica_test_rng_next(&r);
        mica_diag_t d = {0};
        cr_assert_eq(
            mica_tokenizer_encode(l.tok, buf, k, MICA_TOKENIZER_PARSE_SPECIAL, out, 256, &n, &d),
            MICA_OK);
        cr_assert_eq(
            mica_tokenizer_encode(q.tok, buf, k, MICA_TOKENIZER_PARSE_SPECIAL, out, 256, &n, &d),
            MICA_OK);
    }
    unload(&l);
    unload(&q);
}

/* Random ids: the stream's pieces (plus the flush) add up to the whole decode. */
static void stream_random(const char *model)
{
    gguf_tok_t m = load_gguf(model);
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 5);
    uint32_t nv = mica_tokenizer_n_tokens(m.tok);
    size_t cap = mica_tokenizer_max_piece_len(m.tok) + 4;
    char *buf = malloc(cap);
    for (int it = 0; it < 300; it++) {
        int32_t ids[40];
        size_t n = (size_t)mica_test_rng_range(&r, 1, 40);
        for (size_t i = 0; i < n; i++) /* favour byte tokens (low ids in both vocabularies) */
            ids[i] =
                (int32_t)mica_test_rng_range(&r, 0, mica_test_rng_range(&r, 0, 1) ? 300 : nv - 1);
        uint32_t flags = (uint32_t)mica_test_rng_range(&r, 0, 3);
        size_t len;
        char *whole = dec(m.tok, ids, n, flags, &len);
        char *acc = malloc(len + 4);
        size_t total = 0;
        mica_tokenizer_stream_t st;
        mica_tokenizer_stream_init(&st, flags);
        for (size_t i = 0; i < n; i++) {
            size_t k;
            mica_diag_t d = {0};
            cr_assert_eq(mica_tokenizer_stream_push(m.tok, &st, ids[i], buf, cap, &k, &d), MICA_OK,
                         "%s", d.msg);
            cr_assert_leq(total + k, len);
            memcpy(acc + total, buf, k);
            total += k;
        }
        char tail[4];
        size_t k = mica_tokenizer_stream_flush(&st, tail);
        cr_assert_leq(total + k, len);
        memcpy(acc + total, tail, k);
        total += k;
        cr_expect(total == len && memcmp(acc, whole, len) == 0, "%s: stream differs from decode",
                  model);
        free(acc);
        free(whole);
    }
    free(buf);
    unload(&m);
}

Test(tokenizer_golden, stream_adds_up_to_decode)
{
    stream_random("llama-tiny.f32.gguf");
    stream_random("qwen2-tiny.f32.gguf");
}

/* ---- hand-made vocabularies ---- */

/* GPT-2's byte -> character map, written from its definition: the printable
 * ranges ! .. ~, ¡ .. ¬, ® .. ÿ stand for themselves, the other bytes for
 * U+0100, U+0101, ... in byte order. */
static uint32_t gpt2_char(int b)
{
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF)))
            n++;
    bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    return self ? (uint32_t)b : 256u + (uint32_t)n;
}

typedef struct mini {
    char text[400][16];
    mica_vocab_str_t tok[400];
    float score[400];
    int32_t type[400];
    mica_vocab_str_t merge[16];
    uint32_t n, n_merges;
} mini_t;

static int32_t mini_add(mini_t *m, const char *s, float score, int32_t type)
{
    cr_assert(m->n < 400);
    snprintf(m->text[m->n], 16, "%s", s);
    m->tok[m->n] = (mica_vocab_str_t){m->text[m->n], strlen(s)};
    m->score[m->n] = score;
    m->type[m->n] = type;
    return (int32_t)m->n++;
}

/* SPM: <unk> <s> </s>, the 256 byte tokens (ids 3..258), then pieces. */
enum {
    SPM_SPACE = 259,
    SPM_H,
    SPM_E,
    SPM_L,
    SPM_O,
    SPM_HE,
    SPM_LL,
    SPM_EL,
    SPM_LO,
    SPM_SP_HE,
    SPM_HELL,
    SPM_LLO,
    SPM_SP_HELLO,
    SPM_UD
};

static mica_tokenizer_t *mini_spm(mini_t *m, bool byte_tokens)
{
    memset(m, 0, sizeof *m);
    mini_add(m, "<unk>", 0, MICA_TOKEN_TYPE_UNKNOWN);
    mini_add(m, "<s>", 0, MICA_TOKEN_TYPE_CONTROL);
    mini_add(m, "</s>", 0, MICA_TOKEN_TYPE_CONTROL);
    for (int b = 0; b < 256; b++) {
        char h[16];
        snprintf(h, sizeof h, byte_tokens ? "<0x%02X>" : "<unused%02X>", b);
        mini_add(m, h, 0, byte_tokens ? MICA_TOKEN_TYPE_BYTE : MICA_TOKEN_TYPE_UNUSED);
    }
    mini_add(m, "\xe2\x96\x81", -10, 1);
    mini_add(m, "h", -10, 1);
    mini_add(m, "e", -10, 1);
    mini_add(m, "l", -10, 1);
    mini_add(m, "o", -10, 1);
    mini_add(m, "he", -3, 1);
    mini_add(m, "ll", -1, 1);
    mini_add(m, "el", -2, 1);
    mini_add(m, "lo", -4, 1);
    mini_add(m, "\xe2\x96\x81he", -5, 1);
    mini_add(m, "hell", -6, 1);
    mini_add(m, "llo", -0.5f, 1);
    mini_add(m, "\xe2\x96\x81hello", -7, 1);
    mini_add(m, "<ud>", 0, MICA_TOKEN_TYPE_USER_DEFINED);
    mica_vocab_desc_t v = {
        .kind = MICA_VOCAB_SPM,
        .n_tokens = m->n,
        .tokens = m->tok,
        .scores = m->score,
        .types = m->type,
        .bos_id = 1,
        .eos_id = 2,
        .unk_id = 0,
        .pad_id = MICA_TOKEN_NULL,
        .add_bos = true,
        .add_space_prefix = true,
    };
    mica_tokenizer_t *t = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_tokenizer_create(&v, &t, &d), MICA_OK, "%s", d.msg);
    return t;
}

Test(tokenizer_spm, merges_by_highest_score)
{
    mini_t m;
    mica_tokenizer_t *t = mini_spm(&m, true);
    /* ll(-1), llo(-0.5), he(-3), ▁he(-5), ▁hello(-7) */
    EXPECT_IDS(t, "hello", 0, SPM_SP_HELLO);
    /* ll, he, then ▁he(-5) wins over hell(-6) and leaves ll alone */
    EXPECT_IDS(t, "hell", 0, SPM_SP_HE, SPM_LL);
    /* two equal "ll" pairs: the leftmost merges */
    EXPECT_IDS(t, "lll", 0, SPM_SPACE, SPM_LL, SPM_L);
    /* spaces are U+2581; é has no piece: its bytes */
    EXPECT_IDS(t, "h é", 0, SPM_SPACE, SPM_H, SPM_SPACE, 3 + 0xC3, 3 + 0xA9);
    /* user-defined tokens are cut out even without PARSE_SPECIAL, control ones are not */
    EXPECT_IDS(t, "h<ud>h", 0, SPM_SPACE, SPM_H, SPM_UD, SPM_SPACE, SPM_H);
    EXPECT_IDS(t, "<s>", 0, SPM_SPACE, 3 + '<', 3 + 's', 3 + '>');
    EXPECT_IDS(t, "<s>", MICA_TOKENIZER_PARSE_SPECIAL, 1);
    EXPECT_IDS(t, "", MICA_TOKENIZER_ADD_SPECIAL, 1);
    mica_tokenizer_release(t);

    /* without byte tokens a piece that is no token becomes <unk> per byte */
    t = mini_spm(&m, false);
    EXPECT_IDS(t, "hé", 0, SPM_SPACE, SPM_H, 0, 0);
    mica_tokenizer_release(t);
}

Test(tokenizer_spm, stream_holds_partial_characters)
{
    mini_t m;
    mica_tokenizer_t *t = mini_spm(&m, true);
    /* "h😀": the emoji falls back to four byte tokens */
    const char *s = "h\xf0\x9f\x98\x80";
    size_t n;
    int32_t *ids = enc(t, s, strlen(s), 0, &n);
    cr_assert_eq(n, 6);
    mica_tokenizer_stream_t st;
    mica_tokenizer_stream_init(&st, MICA_TOKENIZER_DECODE_STRIP_SPACE);
    char buf[64];
    size_t k;
    mica_diag_t d = {0};
    size_t want_len[6] = {0, 1, 0,
                          0, 0, 4}; /* ▁ stripped, h, then nothing until the emoji is whole */
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(mica_tokenizer_stream_push(t, &st, ids[i], buf, sizeof buf, &k, &d), MICA_OK,
                     "%s", d.msg);
        cr_expect_eq(k, want_len[i], "token %zu gave %zu bytes", i, k);
        if (i == 5)
            cr_expect(memcmp(buf, "\xf0\x9f\x98\x80", 4) == 0);
    }
    cr_expect_eq(mica_tokenizer_stream_flush(&st, buf), 0);
    /* a character cut off at the end comes out on flush; too small a buffer consumes nothing */
    mica_tokenizer_stream_init(&st, 0);
    cr_assert_eq(mica_tokenizer_stream_push(t, &st, 3 + 0xE2, buf, sizeof buf, &k, &d), MICA_OK);
    cr_expect_eq(k, 0);
    cr_expect_eq(mica_tokenizer_stream_push(t, &st, SPM_SP_HELLO, buf, 3, &k, &d), MICA_ERR_RANGE);
    cr_expect_eq(k, 7); /* the held byte and " hello" */
    /* ▁hello cannot continue U+2xxx: the held byte goes out as it is */
    cr_assert_eq(mica_tokenizer_stream_push(t, &st, SPM_SP_HELLO, buf, sizeof buf, &k, &d),
                 MICA_OK);
    cr_expect(k == 7 && memcmp(buf, "\xe2 hello", 7) == 0);
    cr_assert_eq(mica_tokenizer_stream_push(t, &st, 3 + 0xE2, buf, sizeof buf, &k, &d), MICA_OK);
    cr_assert_eq(mica_tokenizer_stream_push(t, &st, 3 + 0x82, buf, sizeof buf, &k, &d), MICA_OK);
    cr_expect_eq(k, 0);
    cr_expect_eq(mica_tokenizer_stream_flush(&st, buf), 2);
    cr_expect(memcmp(buf, "\xe2\x82", 2) == 0);
    free(ids);
    mica_tokenizer_release(t);
}

Test(tokenizer_spm, token_across_a_space_disables_segmenting)
{
    mini_t m;
    memset(&m, 0, sizeof m);
    mini_add(&m, "<unk>", 0, MICA_TOKEN_TYPE_UNKNOWN);
    int32_t sp = mini_add(&m, "\xe2\x96\x81", -10, 1);
    mini_add(&m, "x", -10, 1);
    mini_add(&m, "y", -10, 1);
    mini_add(&m, "\xe2\x96\x81y", -1, 1);
    int32_t xy = mini_add(&m, "x\xe2\x96\x81y", -0.5f, 1);
    mica_vocab_desc_t v = {
        .kind = MICA_VOCAB_SPM,
        .n_tokens = m.n,
        .tokens = m.tok,
        .scores = m.score,
        .types = m.type,
        .bos_id = MICA_TOKEN_NULL,
        .eos_id = MICA_TOKEN_NULL,
        .unk_id = 0,
        .pad_id = MICA_TOKEN_NULL,
        .add_space_prefix = true,
    };
    mica_tokenizer_t *t = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_tokenizer_create(&v, &t, &d), MICA_OK, "%s", d.msg);
    cr_expect(!t->spm_word_split);
    /* ▁y (-1), then x▁y (-0.5) across the space */
    EXPECT_IDS(t, "x y", 0, sp, xy);
    mica_tokenizer_release(t);
}

/* Merging run by run of U+2581 must give what one queue over the whole
 * text gives (llama.cpp's way), on text built to stress the boundaries. */
Test(tokenizer_spm, segmenting_matches_one_queue)
{
    gguf_tok_t l = load_gguf("llama-tiny.f32.gguf");
    cr_assert(l.tok->spm_word_split);
    static const char *const parts[] = {
        " ",   "  ",    "\xe2\x96\x81", "the",  "ing",  "a",
        "\n",  "\t",    "\xc3\xa9",     "\xf0", "\xe2", "\x96",
        "12",  "Hello", "\xe4\xb8\x80", ".",    "'s",   "\xf0\x9f\xa6\x99",
        "<s>",
    };
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 7);
    char buf[512];
    int32_t a[1024], b[1024];
    for (int it = 0; it < 3000; it++) {
        size_t len = 0, k = (size_t)mica_test_rng_range(&r, 0, 40);
        for (size_t j = 0; j < k; j++) {
            const char *p = parts[mica_test_rng_range(&r, 0, sizeof parts / sizeof parts[0] - 1)];
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        size_t na, nb;
        mica_diag_t d = {0};
        l.tok->spm_word_split = true;
        cr_assert_eq(mica_tokenizer_encode(l.tok, buf, len, 0, a, 1024, &na, &d), MICA_OK, "%s",
                     d.msg);
        l.tok->spm_word_split = false;
        cr_assert_eq(mica_tokenizer_encode(l.tok, buf, len, 0, b, 1024, &nb, &d), MICA_OK, "%s",
                     d.msg);
        cr_assert(na == nb && memcmp(a, b, na * sizeof *a) == 0,
                  "'%.*s': segmented encoding differs", (int)len, buf);
    }
    unload(&l);
}

/* BPE: ids 0..255 are the byte characters (id = byte), then merges. */
enum { BPE_HE = 256, BPE_LL, BPE_HELL, BPE_SP_H, BPE_HELLO, BPE_EOT, BPE_TOOL, BPE_HEL, BPE_TOOLX };

static mica_tokenizer_t *mini_bpe(mini_t *m, const char *pre)
{
    memset(m, 0, sizeof *m);
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t k = mica_tok_utf8_encode(gpt2_char(b), u);
        char s[8] = {0};
        memcpy(s, u, k);
        mini_add(m, s, 0, 1);
    }
    mini_add(m, "he", 0, 1);
    mini_add(m, "ll", 0, 1);
    mini_add(m, "hell", 0, 1);
    mini_add(m, "\xc4\xa0h", 0, 1); /* Ġh */
    mini_add(m, "hello", 0, 1);
    mini_add(m, "<|eot|>", 0, MICA_TOKEN_TYPE_CONTROL);
    mini_add(m, "<tool>", 0, MICA_TOKEN_TYPE_USER_DEFINED);
    mini_add(m, "hel", 0, 1);
    mini_add(m, "<tool>x", 0, MICA_TOKEN_TYPE_CONTROL);
    static const char *const merges[] = {"h e", "l l", "he ll", "\xc4\xa0 h", "hell o"};
    for (int i = 0; i < 5; i++)
        m->merge[i] = (mica_vocab_str_t){merges[i], strlen(merges[i])};
    m->n_merges = 5;
    mica_vocab_desc_t v = {
        .kind = MICA_VOCAB_BPE,
        .n_tokens = m->n,
        .tokens = m->tok,
        .types = m->type,
        .n_merges = m->n_merges,
        .merges = m->merge,
        .pre = {pre, strlen(pre)},
        .bos_id = BPE_EOT,
        .eos_id = BPE_EOT,
        .unk_id = MICA_TOKEN_NULL,
        .pad_id = MICA_TOKEN_NULL,
    };
    mica_tokenizer_t *t = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_tokenizer_create(&v, &t, &d), MICA_OK, "%s", d.msg);
    return t;
}

Test(tokenizer_bpe, merges_by_rank)
{
    mini_t m;
    mica_tokenizer_t *t = mini_bpe(&m, "gpt-2");
    EXPECT_IDS(t, "hello", 0, BPE_HELLO);
    /* Ġ h would merge (rank 3) but he (0), ll (1), hell (2) come first */
    EXPECT_IDS(t, " hello", 0, ' ', BPE_HELLO);
    EXPECT_IDS(t, " h", 0, BPE_SP_H);
    /* equal ranks: the leftmost pair merges */
    EXPECT_IDS(t, "lll", 0, BPE_LL, 'l');
    /* "hel" is a token but no merge makes it, unless the pre-tokenizer ignores merges */
    EXPECT_IDS(t, "hel", 0, BPE_HE, 'l');
    /* bytes outside the printable ranges */
    EXPECT_IDS(t, "\n\t", 0, '\n', '\t');
    mica_tokenizer_release(t);

    t = mini_bpe(&m, "llama-bpe");
    EXPECT_IDS(t, "hel", 0, BPE_HEL);
    mica_tokenizer_release(t);
}

Test(tokenizer_bpe, special_tokens_longest_match)
{
    mini_t m;
    mica_tokenizer_t *t = mini_bpe(&m, "gpt-2");
    /* user-defined: always; control: only with PARSE_SPECIAL, and then the
     * longer "<tool>x" wins over "<tool>" */
    EXPECT_IDS(t, "a<tool>b", 0, 'a', BPE_TOOL, 'b');
    EXPECT_IDS(t, "<tool>x", 0, BPE_TOOL, 'x');
    EXPECT_IDS(t, "<tool>x", MICA_TOKENIZER_PARSE_SPECIAL, BPE_TOOLX);
    EXPECT_IDS(t, "<|eot|><|eot|>", MICA_TOKENIZER_PARSE_SPECIAL, BPE_EOT, BPE_EOT);
    EXPECT_IDS(t, "<tool", MICA_TOKENIZER_PARSE_SPECIAL, '<', 't', 'o', 'o', 'l');
    mica_tokenizer_release(t);
}

Test(tokenizer_bpe, stream_holds_partial_characters)
{
    mini_t m;
    mica_tokenizer_t *t = mini_bpe(&m, "gpt-2");
    /* é and 🦙 have no merged tokens: one token per byte */
    const char *s = "\xc3\xa9\xf0\x9f\xa6\x99";
    size_t n;
    int32_t *ids = enc(t, s, strlen(s), 0, &n);
    cr_assert_eq(n, 6);
    mica_tokenizer_stream_t st;
    mica_tokenizer_stream_init(&st, 0);
    char buf[32];
    size_t k;
    mica_diag_t d = {0};
    size_t want_len[6] = {0, 2, 0, 0, 0, 4};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(mica_tokenizer_stream_push(t, &st, ids[i], buf, sizeof buf, &k, &d), MICA_OK);
        cr_expect_eq(k, want_len[i], "token %zu gave %zu bytes", i, k);
    }
    free(ids);
    mica_tokenizer_release(t);
}

Test(tokenizer_bpe, unknown_pre_tokenizer_is_refused)
{
    mini_t m;
    memset(&m, 0, sizeof m);
    mini_add(&m, "a", 0, 1);
    mica_vocab_desc_t v = {
        .kind = MICA_VOCAB_BPE,
        .n_tokens = 1,
        .tokens = m.tok,
        .pre = {"no-such-pre", 11},
        .bos_id = MICA_TOKEN_NULL,
        .eos_id = MICA_TOKEN_NULL,
        .unk_id = MICA_TOKEN_NULL,
        .pad_id = MICA_TOKEN_NULL,
    };
    mica_tokenizer_t *t = NULL;
    mica_diag_t d = {0};
    cr_expect_eq(mica_tokenizer_create(&v, &t, &d), MICA_ERR_UNSUPPORTED);
    cr_expect_null(t);
    cr_expect(strstr(d.msg, "'no-such-pre'") != NULL, "%s", d.msg);
    /* empty name = default, as llama.cpp */
    v.pre = (mica_vocab_str_t){"", 0};
    cr_expect_eq(mica_tokenizer_create(&v, &t, &d), MICA_OK, "%s", d.msg);
    mica_tokenizer_release(t);
    /* other inconsistencies */
    v.bos_id = 5;
    cr_expect_eq(mica_tokenizer_create(&v, &t, &d), MICA_ERR_INVALID);
    v.bos_id = MICA_TOKEN_NULL;
    mica_vocab_str_t two[2] = {{"a", 1}, {"a", 1}};
    v.tokens = two;
    v.n_tokens = 2;
    cr_expect_eq(mica_tokenizer_create(&v, &t, &d), MICA_ERR_INVALID);
    cr_expect(strstr(d.msg, "duplicate") != NULL, "%s", d.msg);
    /* a vocabulary without BOS refuses ADD_BOS */
    v.n_tokens = 1;
    cr_assert_eq(mica_tokenizer_create(&v, &t, &d), MICA_OK, "%s", d.msg);
    size_t n;
    int32_t id;
    cr_expect_eq(mica_tokenizer_encode(t, "a", 1, MICA_TOKENIZER_ADD_BOS, &id, 1, &n, &d),
                 MICA_ERR_INVALID);
    mica_tokenizer_release(t);
}

/* ---- pre-tokenizer splits, worked out from the regexes ---- */

static void expect_split(const char *pre, const char *text, const char *const *want, size_t n_want)
{
    mini_t m;
    mica_tokenizer_t *t = mini_bpe(&m, pre);
    uint32_t cps[256];
    uint16_t fl[256];
    size_t n = 0, len = strlen(text);
    for (size_t i = 0; i < len;) {
        size_t adv;
        cps[n] = mica_tok_utf8_decode((const uint8_t *)text + i, len - i, &adv);
        fl[n] = mica_tok_uclass(cps[n]);
        n++;
        i += adv;
    }
    mica_tok_scratch_t s;
    memset(&s, 0, sizeof s);
    const uint32_t *pieces;
    int64_t k = mica_tok_pretokenize(t, cps, fl, n, &s, 0, 1, &pieces);
    cr_expect_eq(k, (int64_t)n_want, "%s '%s': %lld pieces, want %zu", pre, text, (long long)k,
                 n_want);
    /* compare piece texts (code point counts -> bytes) */
    size_t at_cp = 0, at_byte = 0;
    for (int64_t i = 0; i < k && (size_t)i < n_want; i++) {
        size_t bytes = 0;
        for (uint32_t j = 0; j < pieces[i]; j++) {
            uint8_t u[4];
            bytes += mica_tok_utf8_encode(cps[at_cp + j], u);
        }
        cr_expect(bytes == strlen(want[i]) && memcmp(text + at_byte, want[i], bytes) == 0,
                  "%s '%s': piece %lld is '%.*s', want '%s'", pre, text, (long long)i, (int)bytes,
                  text + at_byte, want[i]);
        at_cp += pieces[i];
        at_byte += bytes;
    }
    mica_tok_scratch_free(&s);
    mica_tokenizer_release(t);
}

#define EXPECT_SPLIT(pre, text, ...)                                                               \
    do {                                                                                           \
        const char *const want_[] = {__VA_ARGS__};                                                 \
        expect_split(pre, text, want_, sizeof want_ / sizeof want_[0]);                            \
    } while (0)

Test(tokenizer_pre, gpt2)
{
    EXPECT_SPLIT("gpt-2", "Hello world's  123 !!\n\n x", "Hello", " world", "'s", " ", " 123",
                 " !!", "\n\n", " x");
    EXPECT_SPLIT("gpt-2", "I'M", "I", "'", "M");
    EXPECT_SPLIT("gpt-2", "a  ", "a", "  ");
    EXPECT_SPLIT("gpt-2", "caf\xc3\xa9\xe2\x80\x94ok", "caf\xc3\xa9", "\xe2\x80\x94", "ok");
}

Test(tokenizer_pre, llama3)
{
    EXPECT_SPLIT("llama-bpe", "Hello world's  123 !!\n\n x", "Hello", " world", "'s", " ", " ",
                 "123", " !!\n\n", " x");
    EXPECT_SPLIT("llama-bpe", "I'M", "I", "'M");
    EXPECT_SPLIT("llama-bpe", "1234567", "123", "456", "7");
    EXPECT_SPLIT("llama-bpe", "a \n\t\n b", "a", " \n\t\n", " b");
    EXPECT_SPLIT("llama3", "(hi)", "(hi", ")");
}

Test(tokenizer_pre, qwen2_smollm_default)
{
    EXPECT_SPLIT("qwen2", "Hello world's  123 !!\n\n x", "Hello", " world", "'s", " ", " ", "1",
                 "2", "3", " !!\n\n", " x");
    EXPECT_SPLIT("smollm", "ab 12", "ab", " ", "1", "2");
    EXPECT_SPLIT("default", "a12345,b", "a", "123", "45", ",", "b");
    EXPECT_SPLIT("default", "x`y", "x", "`", "y");
}

Test(tokenizer_pre, deepseek_falcon)
{
    /* deepseek-llm: [\r\n], \s?LETTERS+, \s?PUNCTS+ (ASCII letters are in
     * its punctuation list, digits are not), \s+$, CJK+, \p{N}+ */
    EXPECT_SPLIT("deepseek-llm", "Hello world 123\n\tx", "Hello", " world", " ", "123", "\n",
                 "\tx");
    EXPECT_SPLIT("deepseek-llm", "\xc3\xa9\xe4\xb8\xad\xe6\x96\x87 12,", "\xc3\xa9",
                 "\xe4\xb8\xad\xe6\x96\x87", " ", "12", ",");
    EXPECT_SPLIT("deepseek-llm", "ab,  ", "ab", ",", "  ");
    EXPECT_SPLIT("deepseek-llm", "a\r\n\r", "a", "\r", "\n", "\r");
    /* U+00D7 (multiplication sign) is no letter of its list, U+00D8 is */
    EXPECT_SPLIT("deepseek-llm", "\xc3\x97\xc3\x98", "\xc3\x97", "\xc3\x98");
    /* deepseek-coder: [\r\n], \s?\p{L}+, \s?\p{P}+, CJK+, \p{N} */
    EXPECT_SPLIT("deepseek-coder", "Hi, 42 \xc3\xa9\n\xe4\xb8\xad", "Hi", ",", " ", "4", "2",
                 " \xc3\xa9", "\n", "\xe4\xb8\xad");
    EXPECT_SPLIT("deepseek-coder", "a$b", "a", "$", "b"); /* $ is a symbol, not \p{P} */
    EXPECT_SPLIT("deepseek-coder", "x\xe4\xb8\xad", "x", "\xe4\xb8\xad");
    /* falcon: [\p{P}\$\+<=>\^~\|`]+, gpt-2, [0-9]{3} */
    EXPECT_SPLIT("falcon", "x`y 1234", "x", "`", "y", " ", "123", "4");
    EXPECT_SPLIT("falcon", "a+=b", "a", "+=", "b");
}

/* ---- Unicode table ---- */

Test(tokenizer_unicode, generated_classes)
{
    /* pinned, whatever the build host's Python has */
    cr_expect_str_eq(mica_tokenizer_unicode_version(), "15.1.0");
    cr_expect(mica_tok_uclass(0x31350) & MICA_TOK_U_LETTER); /* CJK Ext. H, new in 15.0 */
    cr_expect(mica_tok_uclass(0x11F00) & MICA_TOK_U_MARK);   /* Kawi sign, new in 15.0 */
    cr_expect(mica_tok_uclass(0x2EBF0) & MICA_TOK_U_LETTER); /* CJK Ext. I, new in 15.1 */
    cr_expect_eq(mica_tok_uclass(0x2EE5E), MICA_TOK_U_UNDEFINED); /* just past it */
    cr_expect(mica_tok_uclass(0x3000) & MICA_TOK_U_WHITESPACE);
    cr_expect(!(mica_tok_uclass(0x200B) & MICA_TOK_U_WHITESPACE)); /* ZWSP: Cf, no space */
    cr_expect(mica_tok_uclass('a') & MICA_TOK_U_LETTER);
    cr_expect(mica_tok_uclass('7') & MICA_TOK_U_NUMBER);
    cr_expect(mica_tok_uclass(' ') & MICA_TOK_U_WHITESPACE);
    cr_expect(mica_tok_uclass('!') & MICA_TOK_U_PUNCT);
    cr_expect(mica_tok_uclass('$') & MICA_TOK_U_SYMBOL);
    cr_expect(mica_tok_uclass(0x00A0) & MICA_TOK_U_WHITESPACE);
    cr_expect(!(mica_tok_uclass(0x001C) & MICA_TOK_U_WHITESPACE));
    cr_expect(mica_tok_uclass(0x0301) & MICA_TOK_U_MARK);
    cr_expect(mica_tok_uclass(0x00BD) & MICA_TOK_U_NUMBER); /* ½ */
    cr_expect(mica_tok_uclass(0x4E00) & MICA_TOK_U_LETTER);
    cr_expect(mica_tok_uclass(0x1F999) & MICA_TOK_U_SYMBOL); /* 🦙 */
    cr_expect(mica_tok_uclass(0x200D) & MICA_TOK_U_CONTROL); /* ZWJ, Cf */
    cr_expect(mica_tok_uclass(0xE000) & MICA_TOK_U_CONTROL); /* private use */
    cr_expect_eq(mica_tok_uclass(0x0378), MICA_TOK_U_UNDEFINED);
    cr_expect_eq(mica_tok_uclass(0x10FFFF), MICA_TOK_U_UNDEFINED);
    cr_expect_eq(mica_tok_uclass(0x1FFFFF), MICA_TOK_U_UNDEFINED);
}

/* ---- mica tokenize / detokenize on a vocabulary-only GGUF ---- */

static char cli_dir[] = "/tmp/mica-tok-cli-XXXXXX";

static void cli_setup(void)
{
    mica_test_tmpdir_make(cli_dir);
}

static void cli_teardown(void)
{
    mica_test_tmpdir_remove(cli_dir);
}

TestSuite(tokenizer_cli, .init = cli_setup, .fini = cli_teardown, .timeout = 120);

/* Writes cli_dir/name: the tokenizer keys of a golden model, no tensors,
 * an architecture no loader knows; `pre` replaces tokenizer.ggml.pre when
 * not NULL. Returns the path. */
static const char *write_vocab_only(const char *model, const char *name, const char *pre)
{
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden(model), &f, &d), MICA_OK, "%s", d.msg);
    const char *path = mica_test_path(cli_dir, name);
    mica_gguf_writer_t *w = NULL;
    cr_assert_eq(mica_gguf_writer_create(path, &w, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_gguf_writer_add_str(w, "general.architecture", "no-such-arch", &d), MICA_OK);
    for (uint64_t i = 0; i < mica_gguf_kv_count(f); i++) {
        const mica_gguf_kv_t *kv = mica_gguf_kv_at(f, i);
        if (kv->key.len <= 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0)
            continue;
        if (pre && mica_gguf_str_eq(kv->key, "tokenizer.ggml.pre"))
            continue;
        cr_assert_eq(mica_gguf_writer_add_kv(w, kv, &d), MICA_OK, "%s", d.msg);
    }
    if (pre)
        cr_assert_eq(mica_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_finish(w, &d), MICA_OK, "%s", d.msg);
    mica_gguf_writer_release(w);
    mica_gguf_close(f);
    return path;
}

#define cli(...) mica_test_mica(cli_dir, __VA_ARGS__)

Test(tokenizer_cli, vocab_only_gguf_tokenizes_in_every_mode)
{
    const char *v = write_vocab_only("qwen2-tiny.f32.gguf", "gpt2-vocab.gguf", NULL);
    /* first string of golden/tokenizer/gpt-2.inp and its ids in gpt-2.out */
    const char *text = "ied 4 \xc2\xbd months";
    mica_test_result_t r = cli("tokenize", v, "-p", text, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "798 604 25208 1933\n");
    mica_test_result_free(&r);
    r = cli("tokenize", v, "-p", text, "--ids", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "[798, 604, 25208, 1933]\n");
    mica_test_result_free(&r);
    /* GPT-2's pieces: "ied", " 4", " \xc2\xbd", " months" */
    r = cli("tokenize", v, "-p", text, "--pieces", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "   798 -> 'ied'\n   604 -> ' 4'\n 25208 -> ' \xc2\xbd'\n  1933 -> ' months'\n");
    mica_test_result_free(&r);
    r = cli("tokenize", v, "-p", text, "--ids", "--pieces", NULL);
    cr_expect_eq(r.status, 2);
    mica_test_expect_one_line(&r, "at most one of --ids and --pieces");
    mica_test_result_free(&r);
}

Test(tokenizer_cli, detokenize_inverts_tokenize)
{
    const char *v = write_vocab_only("qwen2-tiny.f32.gguf", "gpt2-vocab.gguf", NULL);
    mica_test_result_t r = cli("detokenize", v, "798,604,25208,1933", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "ied 4 \xc2\xbd months");
    mica_test_result_free(&r);
    /* the list form --ids prints; " ," stays (no clean-up) */
    r = cli("detokenize", v, "[15496, 837, 995]", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "Hello , world");
    mica_test_result_free(&r);
    /* an SPM vocabulary: the space put before the text is taken off again */
    const char *s = write_vocab_only("llama-tiny.f32.gguf", "spm-vocab.gguf", NULL);
    r = cli("tokenize", s, "-p", "Hello world", "--ids", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "[15043, 3186]\n"); /* llama-spm.out: "Hello world" */
    char ids[64];
    snprintf(ids, sizeof ids, "%.*s", (int)strcspn(r.out, "\n"), r.out);
    mica_test_result_free(&r);
    r = cli("detokenize", s, ids, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "Hello world");
    mica_test_result_free(&r);
    /* BOS prints nothing, or its text with --special: "<s>Hello", which
     * tokenizes back to 1,15043 with --special (the space is put in front
     * of the text after a special token) */
    r = cli("detokenize", s, "1,15043", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "Hello");
    mica_test_result_free(&r);
    r = cli("detokenize", s, "1,15043", "--special", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "<s>Hello");
    mica_test_result_free(&r);
    r = cli("tokenize", s, "-p", "<s>Hello", "--special", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "1 15043\n");
    mica_test_result_free(&r);
}

Test(tokenizer_cli, bad_input_is_named)
{
    const char *v = write_vocab_only("qwen2-tiny.f32.gguf", "gpt2-vocab.gguf", NULL);
    mica_test_result_t r = cli("detokenize", v, "1,50257", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "token id 50257 outside the vocabulary of 50257");
    mica_test_result_free(&r);
    r = cli("detokenize", v, "1,-3", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "token id -3 outside the vocabulary");
    mica_test_result_free(&r);
    r = cli("detokenize", v, "1,,2", NULL);
    cr_expect_eq(r.status, 2);
    mica_test_expect_one_line(&r, "id 2 of '1,,2' is not an integer");
    mica_test_result_free(&r);
    r = cli("detokenize", v, "[1, 2", NULL);
    cr_expect_eq(r.status, 2);
    mica_test_expect_one_line(&r, "no closing ']'");
    mica_test_result_free(&r);
    r = cli("detokenize", v, "99999999999", NULL);
    cr_expect_eq(r.status, 2);
    mica_test_expect_one_line(&r, "is not an integer");
    mica_test_result_free(&r);
    r = cli("detokenize", v, NULL);
    cr_expect_eq(r.status, 2);
    mica_test_expect_one_line(&r, "no ids given");
    mica_test_result_free(&r);
    /* an unknown pre-tokenizer is refused by name, in both commands */
    const char *u = write_vocab_only("qwen2-tiny.f32.gguf", "odd-pre.gguf", "no-such-pre");
    r = cli("tokenize", u, "-p", "x", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "unknown pre-tokenizer 'no-such-pre'");
    mica_test_result_free(&r);
    r = cli("detokenize", u, "1", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "unknown pre-tokenizer 'no-such-pre'");
    mica_test_result_free(&r);
    /* not a GGUF */
    r = cli("tokenize", mica_test_path(cli_dir, "missing.gguf"), "-p", "x", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "missing.gguf");
    mica_test_result_free(&r);
}
