/* Malformed files, table-driven: each case edits the bytes of a golden
 * model (or another file mica opens) in one way a damaged or hostile file
 * could be wrong, writes the result, runs `mica` on it as a user would and
 * expects exit status 1 and exactly one line on stderr that names the file
 * (and, where the case says, the problem). The GGUF layout is located by a
 * reader written here from the format's documentation (GGUF v3: header,
 * key/value metadata, tensor infos, aligned data), not by mica's reader.
 * Nothing here is committed as a binary: every file is made at run time. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_run.h"
#include "test_support.h"

static char tmpdir[] = "/tmp/mica-malformed-XXXXXX";
static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
}
static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}
TestSuite(malformed, .init = setup, .fini = teardown, .timeout = 600);

/* ------------------------------------------------------------------------ */
/* a GGUF file and where its parts are                                       */

enum { MAX_KV = 64, MAX_TENSORS = 64 };

typedef struct buf {
    uint8_t *p;
    size_t n;
} buf_t;

typedef struct kv_at {
    char key[128];
    size_t start;     /* the key's length field */
    size_t type_at;   /* the u32 value type */
    size_t value_at;  /* the value (for arrays: the element type) */
    size_t end;       /* one past the value */
    uint32_t type;
} kv_at_t;

typedef struct tensor_at {
    char name[96];
    size_t start;    /* the name's length field */
    size_t dims_at;  /* u32 n_dims */
    size_t ne_at;    /* u64 ne[n_dims] */
    size_t type_at;  /* u32 ggml type */
    size_t off_at;   /* u64 offset */
    uint32_t n_dims, type;
    uint64_t ne[4], offset;
} tensor_at_t;

typedef struct layout {
    uint64_t n_tensors, n_kv;
    kv_at_t kv[MAX_KV];
    tensor_at_t t[MAX_TENSORS];
    size_t infos_end;  /* one past the last tensor info */
    size_t data_start; /* infos_end rounded up to the alignment (32 here) */
} layout_t;

static uint32_t rd32(const buf_t *b, size_t at)
{
    uint32_t v;
    cr_assert_leq(at + 4, b->n);
    memcpy(&v, b->p + at, 4);
    return v;
}
static uint64_t rd64(const buf_t *b, size_t at)
{
    uint64_t v;
    cr_assert_leq(at + 8, b->n);
    memcpy(&v, b->p + at, 8);
    return v;
}
static void wr32(buf_t *b, size_t at, uint32_t v)
{
    memcpy(b->p + at, &v, 4);
}
static void wr64(buf_t *b, size_t at, uint64_t v)
{
    memcpy(b->p + at, &v, 8);
}

/* Bytes of one value of type t at `at` (arrays whole), per the format. */
static size_t value_size(const buf_t *b, uint32_t t, size_t at)
{
    static const size_t fixed[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    cr_assert_lt(t, 13u, "value type %u", t);
    if (t == 8)
        return 8 + (size_t)rd64(b, at);
    if (t == 9) {
        uint32_t et = rd32(b, at);
        uint64_t n = rd64(b, at + 4);
        size_t s = 12;
        for (uint64_t i = 0; i < n; i++)
            s += value_size(b, et, at + s);
        return s;
    }
    return fixed[t];
}

static layout_t locate(const buf_t *b)
{
    layout_t L;
    memset(&L, 0, sizeof L);
    cr_assert(b->n > 24 && !memcmp(b->p, "GGUF", 4) && rd32(b, 4) == 3);
    L.n_tensors = rd64(b, 8);
    L.n_kv = rd64(b, 16);
    cr_assert(L.n_kv <= MAX_KV && L.n_tensors <= MAX_TENSORS);
    size_t at = 24;
    for (uint64_t i = 0; i < L.n_kv; i++) {
        kv_at_t *k = &L.kv[i];
        k->start = at;
        uint64_t len = rd64(b, at);
        snprintf(k->key, sizeof k->key, "%.*s", (int)len, (const char *)b->p + at + 8);
        k->type_at = at + 8 + len;
        k->type = rd32(b, k->type_at);
        k->value_at = k->type_at + 4;
        k->end = k->value_at + value_size(b, k->type, k->value_at);
        at = k->end;
    }
    for (uint64_t i = 0; i < L.n_tensors; i++) {
        tensor_at_t *t = &L.t[i];
        t->start = at;
        uint64_t len = rd64(b, at);
        snprintf(t->name, sizeof t->name, "%.*s", (int)len, (const char *)b->p + at + 8);
        t->dims_at = at + 8 + len;
        t->n_dims = rd32(b, t->dims_at);
        t->ne_at = t->dims_at + 4;
        for (uint32_t k = 0; k < t->n_dims; k++)
            t->ne[k] = rd64(b, t->ne_at + 8 * k);
        t->type_at = t->ne_at + 8 * t->n_dims;
        t->type = rd32(b, t->type_at);
        t->off_at = t->type_at + 4;
        t->offset = rd64(b, t->off_at);
        at = t->off_at + 8;
    }
    L.infos_end = at;
    L.data_start = (at + 31) & ~(size_t)31;
    return L;
}

static const kv_at_t *kv_find(const layout_t *L, const char *key)
{
    for (uint64_t i = 0; i < L->n_kv; i++)
        if (!strcmp(L->kv[i].key, key))
            return &L->kv[i];
    cr_assert_fail("no key %s", key);
    return NULL;
}

static const tensor_at_t *tensor_find(const layout_t *L, const char *name)
{
    for (uint64_t i = 0; i < L->n_tensors; i++)
        if (!strcmp(L->t[i].name, name))
            return &L->t[i];
    cr_assert_fail("no tensor %s", name);
    return NULL;
}

/* Replaces bytes [a, b) of the metadata (before the data section) with
 * rep[0..n) and moves the data section to the next multiple of 32, as a
 * writer would: the result is the same file with that one change. */
static void splice(buf_t *f, const layout_t *L, size_t a, size_t b, const void *rep, size_t n)
{
    cr_assert(a <= b && b <= L->infos_end);
    size_t infos_end = L->infos_end - (b - a) + n, data = (infos_end + 31) & ~(size_t)31;
    size_t data_len = f->n - L->data_start;
    uint8_t *p = calloc(data + data_len, 1);
    cr_assert(p);
    memcpy(p, f->p, a);
    memcpy(p + a, rep, n);
    memcpy(p + a + n, f->p + b, L->infos_end - b);
    memcpy(p + data, f->p + L->data_start, data_len);
    free(f->p);
    f->p = p;
    f->n = data + data_len;
}

/* Appends one metadata entry (a u32 value) to the metadata. */
static void add_u32_kv(buf_t *f, const layout_t *L, const char *key, uint32_t type, uint32_t v)
{
    size_t kl = strlen(key), n = 8 + kl + 4 + 4;
    uint8_t e[256];
    uint64_t len = kl;
    memcpy(e, &len, 8);
    memcpy(e + 8, key, kl);
    memcpy(e + 8 + kl, &type, 4);
    memcpy(e + 12 + kl, &v, 4);
    size_t at = L->kv[L->n_kv - 1].end;
    splice(f, L, at, at, e, n);
    wr64(f, 16, L->n_kv + 1);
}

/* ------------------------------------------------------------------------ */
/* the cases                                                                 */

typedef void (*edit_fn)(buf_t *f, const layout_t *L);

#define EDIT(name) static void name(buf_t *f, const layout_t *L)

EDIT(empty) { (void)L; f->n = 0; }
EDIT(cut_in_magic) { (void)L; f->n = 3; }
EDIT(cut_after_magic) { (void)L; f->n = 4; }
EDIT(cut_after_version) { (void)L; f->n = 8; }
EDIT(cut_after_tensor_count) { (void)L; f->n = 16; }
EDIT(cut_after_header) { (void)L; f->n = 24; }
EDIT(cut_in_a_key) { f->n = L->kv[3].start + 10; }
EDIT(cut_before_a_value) { f->n = L->kv[3].value_at; }
EDIT(cut_in_the_vocabulary) { const kv_at_t *k = kv_find(L, "tokenizer.ggml.tokens"); f->n = (k->value_at + k->end) / 2; }
EDIT(cut_at_tensor_infos) { f->n = L->t[0].start; }
EDIT(cut_in_tensor_infos) { f->n = L->t[L->n_tensors / 2].dims_at + 2; }
EDIT(cut_at_data) { f->n = L->data_start; }
EDIT(cut_in_last_tensor) { (void)L; f->n -= 1; }
EDIT(wrong_magic) { (void)L; memcpy(f->p, "GGML", 4); }
EDIT(version_1) { (void)L; wr32(f, 4, 1); }
EDIT(version_4) { (void)L; wr32(f, 4, 4); }
EDIT(absurd_tensor_count) { (void)L; wr64(f, 8, UINT64_C(1) << 61); }
EDIT(absurd_kv_count) { (void)L; wr64(f, 16, UINT64_C(1) << 62); }
EDIT(absurd_key_length) { wr64(f, L->kv[2].start, UINT64_MAX - 4); }
EDIT(absurd_string_length) { wr64(f, kv_find(L, "general.architecture")->value_at, UINT64_C(1) << 40); }
EDIT(absurd_array_length) { wr64(f, kv_find(L, "tokenizer.ggml.tokens")->value_at + 4, UINT64_C(1) << 59); }
EDIT(unknown_value_type) { wr32(f, kv_find(L, "general.name")->type_at, 13); }
EDIT(bool_of_two) { const kv_at_t *k = kv_find(L, "tokenizer.ggml.add_bos_token"); f->p[k->value_at] = 2; }
EDIT(duplicate_key)
{
    const kv_at_t *a = kv_find(L, "llama.block_count"), *b = kv_find(L, "general.file_type");
    /* both keys have the same length: rename one to the other */
    cr_assert_eq(rd64(f, a->start), rd64(f, b->start));
    memcpy(f->p + b->start + 8, f->p + a->start + 8, rd64(f, a->start));
}
EDIT(bad_alignment) { add_u32_kv(f, L, "general.alignment", 4, 48); }
EDIT(too_many_dims) { wr32(f, L->t[1].dims_at, 5); }
EDIT(zero_dims) { wr32(f, L->t[1].dims_at, 0); }
EDIT(dims_product_overflows) { const tensor_at_t *t = tensor_find(L, "output.weight"); wr64(f, t->ne_at + 8, UINT64_C(1) << 60); }
EDIT(negative_dim) { const tensor_at_t *t = tensor_find(L, "output.weight"); wr64(f, t->ne_at + 8, UINT64_MAX); }
EDIT(unknown_tensor_type) { wr32(f, tensor_find(L, "blk.0.attn_q.weight")->type_at, 99); }
EDIT(offset_past_the_end) { wr64(f, tensor_find(L, "blk.1.ffn_up.weight")->off_at, (uint64_t)f->n * 2 & ~UINT64_C(31)); }
EDIT(offset_misaligned) { const tensor_at_t *t = tensor_find(L, "blk.0.attn_q.weight"); wr64(f, t->off_at, t->offset + 4); }
EDIT(overlapping_tensors)
{
    /* attn_q and attn_output are both [64, 64]: point one at the other */
    const tensor_at_t *q = tensor_find(L, "blk.0.attn_q.weight"), *o = tensor_find(L, "blk.0.attn_output.weight");
    wr64(f, q->off_at, o->offset);
}
EDIT(duplicate_tensor_name)
{
    const tensor_at_t *a = tensor_find(L, "blk.0.attn_k.weight"), *b = tensor_find(L, "blk.0.attn_v.weight");
    memcpy(f->p + b->start + 8, f->p + a->start + 8, rd64(f, a->start));
}
/* The first block's f16 scale d of a Q4_0 tensor (block: d, 16 bytes). */
static size_t first_scale(const layout_t *L, const char *name)
{
    const tensor_at_t *t = tensor_find(L, name);
    cr_assert_eq(t->type, 2u, "%s is not Q4_0", name);
    return L->data_start + t->offset;
}
EDIT(nan_scale) { size_t at = first_scale(L, "blk.0.ffn_down.weight") + 18 * 7; f->p[at] = 0x00; f->p[at + 1] = 0x7e; }
EDIT(infinite_scale) { size_t at = first_scale(L, "output.weight") + 18 * 1000; f->p[at] = 0x00; f->p[at + 1] = 0x7c; }
EDIT(nan_norm_weight)
{
    const tensor_at_t *t = tensor_find(L, "blk.1.attn_norm.weight");
    cr_assert_eq(t->type, 0u);
    float nan = NAN;
    memcpy(f->p + L->data_start + t->offset + 4 * 5, &nan, 4);
}
EDIT(shape_disagrees_with_metadata) { wr32(f, kv_find(L, "llama.embedding_length")->value_at, 96); }
EDIT(wrong_tensor_shape) { const tensor_at_t *t = tensor_find(L, "blk.0.attn_k.weight"); wr64(f, t->ne_at + 8, 16); }
EDIT(missing_tensor) { const tensor_at_t *t = tensor_find(L, "blk.1.ffn_gate.weight"); f->p[t->start + 8] = 'X'; }
EDIT(zero_heads) { wr32(f, kv_find(L, "llama.attention.head_count")->value_at, 0); }
EDIT(heads_do_not_divide) { wr32(f, kv_find(L, "llama.attention.head_count")->value_at, 3); }
EDIT(absurd_layer_count) { wr32(f, kv_find(L, "llama.block_count")->value_at, 1000000000); }
EDIT(unknown_architecture) { const kv_at_t *k = kv_find(L, "general.architecture"); memcpy(f->p + k->value_at + 8, "mamba", 5); }
EDIT(unknown_tokenizer_model) { const kv_at_t *k = kv_find(L, "tokenizer.ggml.model"); memcpy(f->p + k->value_at + 8, "bertx", 5); }
EDIT(no_tokens)
{
    /* the token list emptied: count 0 and its strings gone */
    const kv_at_t *k = kv_find(L, "tokenizer.ggml.tokens");
    uint8_t head[12];
    memcpy(head, f->p + k->value_at, 4);
    memset(head + 4, 0, 8);
    splice(f, L, k->value_at, k->end, head, sizeof head);
}
EDIT(token_types_as_floats) { wr32(f, kv_find(L, "tokenizer.ggml.token_type")->value_at, 6); }
/* Offset of the text of string i of the string array entry k. */
static size_t array_str(const buf_t *f, const kv_at_t *k, uint64_t i, uint64_t *out_len)
{
    size_t at = k->value_at + 12;
    for (uint64_t j = 0; j < i; j++)
        at += 8 + (size_t)rd64(f, at);
    *out_len = rd64(f, at);
    return at + 8;
}
EDIT(duplicate_token)
{
    /* tokens 5 and 6 of the SentencePiece vocabulary are "<0x02>" and "<0x03>" */
    const kv_at_t *k = kv_find(L, "tokenizer.ggml.tokens");
    uint64_t n5, n6;
    size_t a = array_str(f, k, 5, &n5), b = array_str(f, k, 6, &n6);
    cr_assert(n5 == 6 && n6 == 6 && !memcmp(f->p + a, "<0x02>", 6) && !memcmp(f->p + b, "<0x03>", 6));
    memcpy(f->p + b, f->p + a, 6);
}
EDIT(merge_names_unknown_tokens)
{
    /* the first merge "Ġ t": its right part becomes a byte no token is */
    const kv_at_t *k = kv_find(L, "tokenizer.ggml.merges");
    uint64_t n;
    size_t at = array_str(f, k, 0, &n);
    cr_assert(n == 4 && !memcmp(f->p + at, "\xc4\xa0 t", 4));
    f->p[at + 3] = 0x7f;
}
EDIT(merge_without_a_space)
{
    const kv_at_t *k = kv_find(L, "tokenizer.ggml.merges");
    uint64_t n;
    size_t at = array_str(f, k, 1, &n);
    cr_assert(n == 4 && f->p[at + 2] == ' ');
    f->p[at + 2] = 'x';
}

static const char *const LLAMA = "llama-tiny.q4_0.gguf", *const QWEN = "qwen2-tiny.q4_0.gguf";

static const struct {
    const char *name;
    const char *base;
    edit_fn edit;
    const char *needle; /* a word the one line must hold besides the file name */
} CASES[] = {
    {"empty", LLAMA, empty, "GGUF"},
    {"cut-in-magic", LLAMA, cut_in_magic, "GGUF"},
    {"cut-after-magic", LLAMA, cut_after_magic, "truncated"},
    {"cut-after-version", LLAMA, cut_after_version, "truncated"},
    {"cut-after-tensor-count", LLAMA, cut_after_tensor_count, "truncated"},
    {"cut-after-header", LLAMA, cut_after_header, "truncated"},
    {"cut-in-a-key", LLAMA, cut_in_a_key, "truncated"},
    {"cut-before-a-value", LLAMA, cut_before_a_value, "truncated"},
    {"cut-in-the-vocabulary", LLAMA, cut_in_the_vocabulary, "truncated"},
    {"cut-at-tensor-infos", LLAMA, cut_at_tensor_infos, "truncated"},
    {"cut-in-tensor-infos", LLAMA, cut_in_tensor_infos, "truncated"},
    {"cut-at-data", LLAMA, cut_at_data, "truncated"},
    {"cut-in-last-tensor", LLAMA, cut_in_last_tensor, "truncated"},
    {"wrong-magic", LLAMA, wrong_magic, "GGUF"},
    {"version-1", LLAMA, version_1, "version 1"},
    {"version-4", LLAMA, version_4, "version 4"},
    {"absurd-tensor-count", LLAMA, absurd_tensor_count, "tensor"},
    {"absurd-kv-count", LLAMA, absurd_kv_count, "metadata"},
    {"absurd-key-length", LLAMA, absurd_key_length, "key"},
    {"absurd-string-length", LLAMA, absurd_string_length, "general.architecture"},
    {"absurd-array-length", LLAMA, absurd_array_length, "tokenizer.ggml.tokens"},
    {"unknown-value-type", LLAMA, unknown_value_type, "general.name"},
    {"bool-of-two", LLAMA, bool_of_two, "tokenizer.ggml.add_bos_token"},
    {"duplicate-key", LLAMA, duplicate_key, "llama.block_count"},
    {"bad-alignment", LLAMA, bad_alignment, "general.alignment"},
    {"too-many-dims", LLAMA, too_many_dims, "dim"},
    {"zero-dims", LLAMA, zero_dims, "dim"},
    {"dims-product-overflows", LLAMA, dims_product_overflows, "output.weight"},
    {"negative-dim", LLAMA, negative_dim, "output.weight"},
    {"unknown-tensor-type", LLAMA, unknown_tensor_type, "blk.0.attn_q.weight"},
    {"offset-past-the-end", LLAMA, offset_past_the_end, "blk.1.ffn_up.weight"},
    {"offset-misaligned", LLAMA, offset_misaligned, "blk.0.attn_q.weight"},
    {"overlapping-tensors", LLAMA, overlapping_tensors, "overlap"},
    {"duplicate-tensor-name", LLAMA, duplicate_tensor_name, "blk.0.attn_k.weight"},
    {"nan-scale", LLAMA, nan_scale, "blk.0.ffn_down.weight"},
    {"infinite-scale", LLAMA, infinite_scale, "output.weight"},
    {"nan-norm-weight", LLAMA, nan_norm_weight, "blk.1.attn_norm.weight"},
    {"shape-disagrees-with-metadata", LLAMA, shape_disagrees_with_metadata, "token_embd.weight"},
    {"wrong-tensor-shape", LLAMA, wrong_tensor_shape, "blk.0.attn_k.weight"},
    {"missing-tensor", LLAMA, missing_tensor, "blk.1.ffn_gate.weight"},
    {"zero-heads", LLAMA, zero_heads, "head_count"},
    {"heads-do-not-divide", LLAMA, heads_do_not_divide, ": 3 heads are not a multiple of 2 kv heads"},
    {"absurd-layer-count", LLAMA, absurd_layer_count, "llama.block_count"},
    {"unknown-architecture", LLAMA, unknown_architecture, "mamba"},
    {"unknown-tokenizer-model", LLAMA, unknown_tokenizer_model, "bertx"},
    {"no-tokens", LLAMA, no_tokens, "tokens"},
    {"token-types-as-floats", LLAMA, token_types_as_floats, "tokenizer.ggml.token_type"},
    {"duplicate-token", LLAMA, duplicate_token, "<0x02>"},
    {"merge-names-unknown-tokens", QWEN, merge_names_unknown_tokens, "merge 0"},
    {"merge-without-a-space", QWEN, merge_without_a_space, "merge 1"},
};

static buf_t read_golden(const char *name)
{
    buf_t b;
    b.p = (uint8_t *)mica_test_read_file(mica_test_golden(name), &b.n);
    cr_assert_not_null(b.p, "cannot read %s", name);
    return b;
}

static void write_buf(const char *path, const buf_t *b)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(b->p, 1, b->n, f), b->n);
    cr_assert_eq(fclose(f), 0);
}

/* Exit 1 and exactly one stderr line holding path and needle. */
static void expect_refused(const char *what, const mica_test_result_t *r, const char *path,
                           const char *needle)
{
    size_t len = strlen(r->err);
    bool one_line = len > 0 && r->err[len - 1] == '\n' && !memchr(r->err, '\n', len - 1);
    cr_log_info("%s: %s", what, r->err);
    cr_expect_eq(r->status, 1, "%s: exit %d (signal %d), stderr: %s", what, r->status, r->signal,
                 r->err);
    cr_expect(one_line, "%s: stderr is not one line: \"%s\"", what, r->err);
    cr_expect(strstr(r->err, path), "%s: stderr does not name the file: \"%s\"", what, r->err);
    cr_expect(strstr(r->err, needle), "%s: stderr does not say \"%s\": \"%s\"", what, needle,
              r->err);
}

Test(malformed, every_damaged_gguf_is_refused_in_one_line)
{
    buf_t bases[2] = {read_golden(LLAMA), read_golden(QWEN)};
    layout_t *layouts = malloc(2 * sizeof *layouts);
    cr_assert(layouts);
    layouts[0] = locate(&bases[0]);
    layouts[1] = locate(&bases[1]);
    size_t n_cases = sizeof CASES / sizeof CASES[0];
    cr_assert_geq(n_cases, 30);
    for (size_t i = 0; i < n_cases; i++) {
        int which = CASES[i].base == QWEN;
        buf_t f = {malloc(bases[which].n), bases[which].n};
        cr_assert(f.p);
        memcpy(f.p, bases[which].p, f.n);
        CASES[i].edit(&f, &layouts[which]);
        char name[96];
        snprintf(name, sizeof name, "%s.gguf", CASES[i].name);
        const char *path = mica_test_path(tmpdir, name);
        write_buf(path, &f);
        free(f.p);
        /* the program's own peak memory, measured the same way just before
         * (a child's ru_maxrss also counts what it held as a fork of this
         * test before the exec): a run refused before any file is read */
        mica_test_result_t r0 = mica_test_mica(tmpdir, "run", mica_test_path(tmpdir, "none.gguf"),
                                               "-p", "Hello", NULL);
        cr_assert_eq(r0.status, 1, "%s", r0.err);
        const long base_kib = r0.max_rss_kib;
        mica_test_result_free(&r0);
        mica_test_result_t r =
            mica_test_mica(tmpdir, "run", path, "-p", "Hello", "-n", "2", "--temp", "0", NULL);
        expect_refused(CASES[i].name, &r, path, CASES[i].needle);
        /* a hostile count or size never sizes an allocation: the refusal's
         * peak memory is the program's own, 8 MiB of slack and at most four
         * times the file */
        cr_expect_leq(r.max_rss_kib, base_kib + 8192 + 4 * (long)(bases[which].n / 1024),
                      "%s: peak RSS %ld KiB (a refusal before reading: %ld) for a file of %zu KiB",
                      CASES[i].name, r.max_rss_kib, base_kib, bases[which].n / 1024);
        mica_test_result_free(&r);
        remove(path);
    }
    free(layouts);
    free(bases[0].p);
    free(bases[1].p);
}

/* ------------------------------------------------------------------------ */
/* other files mica opens: IR text, prompt files, artifacts                  */

static void write_bytes(const char *path, const void *p, size_t n)
{
    buf_t b = {(uint8_t *)p, n};
    write_buf(path, &b);
}

Test(malformed, bad_ir_text_and_prompt_files_are_refused_in_one_line)
{
    static const struct {
        const char *name, *text;
        size_t len; /* 0: strlen */
        const char *needle;
    } ir[] = {
        {"binary.ir", "\x7f" "ELF\x02\x01\x01\x00\x00\xff\xfe", 12, "1:1"},
        {"nul.ir", "# mica ir 1\n%0 = input() {name=\"x\0\"} : f32[4]\n", 44, "2:"},
        {"empty.ir", "", 0, "mica ir"},
        {"huge-dim.ir", "# mica ir 1\n%0 = input() {name=\"x\"} : f32[9223372036854775807,4]\n", 0, "2:"},
        {"dims-overflow.ir", "# mica ir 1\n%0 = input() {name=\"x\"} : f32[4294967296,4294967296]\n", 0, "2:"},
        {"huge-number.ir", "# mica ir 1\n%0 = input() {name=\"x\"} : f32[99999999999999999999999]\n", 0, "2:"},
        {"negative-id.ir", "# mica ir 1\n%-1 = input() {name=\"x\"} : f32[4]\n", 0, "2:"},
        {"huge-id.ir", "# mica ir 1\n%0 = input() {name=\"x\"} : f32[4]\n%99999999999 = silu(%0) : f32[4]\n", 0, "3:"},
        {"rank-9.ir", "# mica ir 1\n%0 = input() {name=\"x\"} : f32[1,1,1,1,1,1,1,1,1]\n", 0, "2:"},
    };
    for (size_t i = 0; i < sizeof ir / sizeof ir[0]; i++) {
        const char *path = mica_test_path(tmpdir, ir[i].name);
        write_bytes(path, ir[i].text, ir[i].len ? ir[i].len : strlen(ir[i].text));
        mica_test_result_t r = mica_test_mica(tmpdir, "dump", path, NULL);
        expect_refused(ir[i].name, &r, path, ir[i].needle);
        mica_test_result_free(&r);
    }
    /* a prompt file that is not one */
    const char *model = mica_test_golden(LLAMA);
    const char *missing = mica_test_path(tmpdir, "no-such-prompt.txt");
    mica_test_result_t r = mica_test_mica(tmpdir, "tokenize", model, "-f", missing, NULL);
    expect_refused("missing prompt file", &r, missing, "no-such-prompt.txt");
    mica_test_result_free(&r);
    r = mica_test_mica(tmpdir, "tokenize", model, "-f", tmpdir, NULL);
    expect_refused("a directory as the prompt file", &r, tmpdir, tmpdir);
    mica_test_result_free(&r);
}

/* FNV-1a 64, the artifact's checksum as DESIGN.md and runtime/checksum.h
 * document it, written out here. */
static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * UINT64_C(0x100000001b3);
    return h;
}

/* The manifest of dir with every line starting with `prefix` replaced by
 * `line` (NULL: removed). */
static void manifest_edit(const char *dir, const char *prefix, const char *line)
{
    const char *path = mica_test_path(dir, "manifest");
    size_t n = 0;
    char *text = mica_test_read_file(path, &n);
    cr_assert(text);
    char *out = malloc(n + 512);
    cr_assert(out);
    size_t at = 0;
    for (char *l = text; *l;) {
        char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) + 1 : strlen(l);
        if (strncmp(l, prefix, strlen(prefix)) != 0) {
            memcpy(out + at, l, len), at += len;
        } else if (line) {
            at += (size_t)sprintf(out + at, "%s\n", line);
        }
        l += len;
    }
    write_bytes(path, out, at);
    free(out);
    free(text);
}

/* Replaces dir/name by its first `keep` bytes, with the manifest's size
 * and checksum made to match (so the loader gets past the checksum). */
static void truncate_with_checksum(const char *dir, const char *name, size_t keep)
{
    const char *path = mica_test_path(dir, name);
    size_t n = 0;
    char *bytes = mica_test_read_file(path, &n);
    cr_assert(bytes && keep <= n);
    write_bytes(path, bytes, keep);
    char prefix[64], line[160];
    snprintf(prefix, sizeof prefix, "file %s ", name);
    snprintf(line, sizeof line, "file %s %zu %016llx", name, keep,
             (unsigned long long)fnv1a64((const uint8_t *)bytes, keep));
    manifest_edit(dir, prefix, line);
    free(bytes);
}

Test(malformed, damaged_artifacts_are_refused_in_one_line)
{
    char good[700], dir[700]; /* mica_test_path's buffers rotate */
    snprintf(good, sizeof good, "%s/good", tmpdir);
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", mica_test_golden(QWEN), "-t", "host",
                                          "-q", "f32", "-c", "32", "-o", good, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    static const struct {
        const char *name;
        const char *prefix, *line; /* manifest edit, or NULL */
        const char *truncate;      /* file to cut in half (checksum fixed), or NULL */
        const char *remove;        /* file to delete, or NULL */
        const char *needle;
        bool device, host; /* refused by `mica run DIR` (the device runtime), by
                              `mica dump DIR` (the host's reader) */
    } cases[] = {
        {"not-an-artifact", "mica-artifact", "gguf 3", NULL, NULL, "manifest", true, true},
        {"format-version-2", "mica-artifact", "mica-artifact 2", NULL, NULL, "version 2", true, true},
        {"no-weights-line", "file weights.bin", NULL, NULL, NULL, "weights.bin", true, true},
        {"weights-size-wrong", "file weights.bin", "file weights.bin 12 0000000000000000", NULL, NULL, "weights.bin", true, true},
        {"file-outside-the-dir", "abi ", "abi 1\nfile ../manifest 1 0000000000000000", NULL, NULL, "../manifest", true, false},
        {"absurd-context", "context", "context 99999999999999", NULL, NULL, "context", true, false},
        {"no-target", "target", NULL, NULL, NULL, "target", true, true},
        {"foreign-arch", "arch", "arch riscv64", NULL, NULL, "riscv64", true, false},
        {"tokenizer-cut", NULL, NULL, "tokenizer.gguf", NULL, "tokenizer.gguf", true, true},
        {"weights-cut", NULL, NULL, "weights.bin", NULL, "weights.bin", true, true},
        {"decode-ir-cut", NULL, NULL, "decode.ir", NULL, "decode.ir", false, true},
        {"no-model-object", NULL, NULL, NULL, "model.so", "model.so", true, false},
        {"no-manifest", NULL, NULL, NULL, "manifest", "is a directory", true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", tmpdir, cases[i].name);
        char cmd[1500];
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", good, dir);
        cr_assert_eq(system(cmd), 0);
        if (cases[i].prefix)
            manifest_edit(dir, cases[i].prefix, cases[i].line);
        if (cases[i].truncate) {
            size_t n = 0;
            char *bytes = mica_test_read_file(mica_test_path(dir, cases[i].truncate), &n);
            free(bytes);
            truncate_with_checksum(dir, cases[i].truncate, n / 2);
        }
        if (cases[i].remove)
            cr_assert_eq(remove(mica_test_path(dir, cases[i].remove)), 0);
        if (cases[i].device) {
            r = mica_test_mica(tmpdir, "run", dir, "-p", "Hello", "-n", "2", "--temp", "0", NULL);
            expect_refused(cases[i].name, &r, dir, cases[i].needle);
            mica_test_result_free(&r);
        }
        if (cases[i].host) {
            r = mica_test_mica(tmpdir, "dump", dir, NULL);
            expect_refused(cases[i].name, &r, dir, cases[i].needle);
            mica_test_result_free(&r);
        }
        mica_test_tmpdir_remove(dir);
    }
}

/* ------------------------------------------------------------------------ */
/* no partial state                                                          */

/* A compile that runs out of disk (every file capped at a size, as a full
 * disk fails a write with EFBIG / ENOSPC) at several points: exit 1, one
 * line naming what could not be written, and nothing left beside the
 * output: no artifact and no temporary directory. */
Test(malformed, compile_on_a_full_disk_leaves_nothing)
{
    const char *model = mica_test_golden(QWEN);
    char out[700];
    snprintf(out, sizeof out, "%s/art", tmpdir);
    /* prefill.ir (~17 kB) or weights.bin (~15 MB in f32) is the first file
     * past each limit; the limit applies to the captured stderr too, so
     * none is below the size of the memory report */
    static const long limits[] = {1000, 16000, 200000, 4000000};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        mica_test_result_t r = mica_test_mica_fsize(tmpdir, limits[i], "compile", model, "-t",
                                                    "host", "-q", "f32", "-c", "32", "-o", out,
                                                    NULL);
        char what[64];
        snprintf(what, sizeof what, "file size limit %ld", limits[i]);
        cr_log_info("%s: %s", what, r.err);
        cr_expect_eq(r.status, 1, "%s: exit %d: %s", what, r.status, r.err);
        /* the memory report comes first; the failure is the last line */
        const char *last = r.err, *nl;
        while ((nl = strchr(last, '\n')) && nl[1])
            last = nl + 1;
        cr_expect(strstr(last, "File too large") || strstr(last, "No space"),
                  "%s: the last line does not say the disk is full: %s", what, r.err);
        cr_expect_eq(mica_test_dir_entries(tmpdir), 0, "%s: something is left beside the output",
                     what);
        mica_test_result_free(&r);
    }
}
