/* The GGUF reader: the golden models read back with the values their
 * README states, and malformed files (written here byte by byte) are
 * refused with a one-line message, never a crash.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* A tiny GGUF writer                                                        */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        cr_assert(b->p != NULL);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_le(buf_t *b, uint64_t v, int bytes)
{
    uint8_t tmp[8];
    for (int i = 0; i < bytes; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    put(b, tmp, (size_t)bytes);
}

static void u8_(buf_t *b, uint8_t v)
{
    put_le(b, v, 1);
}
static void u16_(buf_t *b, uint16_t v)
{
    put_le(b, v, 2);
}
static void u32_(buf_t *b, uint32_t v)
{
    put_le(b, v, 4);
}
static void u64_(buf_t *b, uint64_t v)
{
    put_le(b, v, 8);
}

static void f32_(buf_t *b, float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    u32_(b, x);
}

static void f64_(buf_t *b, double f)
{
    uint64_t x;
    memcpy(&x, &f, 8);
    u64_(b, x);
}

static void str_(buf_t *b, const char *s)
{
    u64_(b, strlen(s));
    put(b, s, strlen(s));
}

static void header(buf_t *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    put(b, "GGUF", 4);
    u32_(b, version);
    u64_(b, n_tensors);
    u64_(b, n_kv);
}

/* Key and value type; the caller writes the value. */
static void key(buf_t *b, const char *k, uint32_t type)
{
    str_(b, k);
    u32_(b, type);
}

static void arr(buf_t *b, uint32_t elem_type, uint64_t count)
{
    u32_(b, elem_type);
    u64_(b, count);
}

static void tinfo(buf_t *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                  uint64_t offset)
{
    str_(b, name);
    u32_(b, n_dims);
    for (uint32_t i = 0; i < n_dims; i++)
        u64_(b, ne[i]);
    u32_(b, type);
    u64_(b, offset);
}

static void pad(buf_t *b, size_t align)
{
    while (b->n % align)
        u8_(b, 0);
}

static void zeros(buf_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        u8_(b, 0);
}

/* A valid v3 file exercising every value type, string arrays, nested
 * arrays, alignment 64 and two tensors; it ends exactly at the end of the
 * last tensor's data. */
static buf_t valid_file(void)
{
    buf_t b = {0};
    header(&b, 3, 2, 20);
    key(&b, "general.architecture", MICA_GGUF_STRING);
    str_(&b, "llama");
    key(&b, "general.alignment", MICA_GGUF_UINT32);
    u32_(&b, 64);
    key(&b, "t.u8", MICA_GGUF_UINT8);
    u8_(&b, 200);
    key(&b, "t.i8", MICA_GGUF_INT8);
    u8_(&b, (uint8_t)-100);
    key(&b, "t.u16", MICA_GGUF_UINT16);
    u16_(&b, 60000);
    key(&b, "t.i16", MICA_GGUF_INT16);
    u16_(&b, (uint16_t)-30000);
    key(&b, "t.u32", MICA_GGUF_UINT32);
    u32_(&b, 4000000000u);
    key(&b, "t.i32", MICA_GGUF_INT32);
    u32_(&b, (uint32_t)-2000000000);
    key(&b, "t.f32", MICA_GGUF_FLOAT32);
    f32_(&b, 0.5f);
    key(&b, "t.bool", MICA_GGUF_BOOL);
    u8_(&b, 1);
    key(&b, "t.u64", MICA_GGUF_UINT64);
    u64_(&b, 1ull << 63);
    key(&b, "t.i64", MICA_GGUF_INT64);
    u64_(&b, (uint64_t) - (1ll << 40));
    key(&b, "t.f64", MICA_GGUF_FLOAT64);
    f64_(&b, 1e100);
    key(&b, "t.strs", MICA_GGUF_ARRAY);
    arr(&b, MICA_GGUF_STRING, 3);
    str_(&b, "a");
    str_(&b, "");
    str_(&b, "hello");
    key(&b, "t.nested", MICA_GGUF_ARRAY); /* [["x", "yy"], [], ["zzz"]] */
    arr(&b, MICA_GGUF_ARRAY, 3);
    arr(&b, MICA_GGUF_STRING, 2);
    str_(&b, "x");
    str_(&b, "yy");
    arr(&b, MICA_GGUF_STRING, 0);
    arr(&b, MICA_GGUF_STRING, 1);
    str_(&b, "zzz");
    key(&b, "t.i16s", MICA_GGUF_ARRAY);
    arr(&b, MICA_GGUF_INT16, 3);
    u16_(&b, (uint16_t)-1);
    u16_(&b, 2);
    u16_(&b, (uint16_t)-3);
    key(&b, "t.deep", MICA_GGUF_ARRAY); /* [[[7, 8]]] as u8 */
    arr(&b, MICA_GGUF_ARRAY, 1);
    arr(&b, MICA_GGUF_ARRAY, 1);
    arr(&b, MICA_GGUF_UINT8, 2);
    u8_(&b, 7);
    u8_(&b, 8);
    key(&b, "t.f32s", MICA_GGUF_ARRAY);
    arr(&b, MICA_GGUF_FLOAT32, 2);
    f32_(&b, -1.5f);
    f32_(&b, 3.0f);
    key(&b, "t.empty", MICA_GGUF_ARRAY);
    arr(&b, MICA_GGUF_UINT64, 0);
    key(&b, "general.name", MICA_GGUF_STRING);
    str_(&b, "tiny");
    const uint64_t ne_w[2] = {4, 2}, ne_q[2] = {32, 3};
    tinfo(&b, "w", 2, ne_w, 0, 0);
    tinfo(&b, "blk.0.q", 2, ne_q, 2, 64);
    pad(&b, 64);
    for (int i = 0; i < 8; i++)
        f32_(&b, (float)i);
    zeros(&b, 32);
    zeros(&b, 54); /* 3 rows x 18 bytes of q4_0 */
    return b;
}

/* Opens a private copy of exactly n bytes (so a read past the end is an
 * ASan error, not a silent read of the caller's buffer). */
static mica_status_t open_copy(const uint8_t *p, size_t n, mica_gguf_t **f, mica_diag_t *d)
{
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    mica_status_t s = mica_gguf_open_memory(copy, n, f, d);
    if (s == MICA_OK) /* the tests that succeed do not look at the bytes again */
        mica_gguf_close(*f);
    free(copy);
    return s;
}

/* The bytes must be refused with `code` and a one-line message that
 * contains `needle`. */
static void expect_fail(const buf_t *b, mica_status_t code, const char *needle)
{
    mica_gguf_t *f = (mica_gguf_t *)&f; /* must be reset to NULL */
    mica_diag_t d = {0};
    mica_status_t s = open_copy(b->p, b->n, &f, &d);
    cr_assert_eq(s, code, "status %d (want %d): %s", s, code, d.msg);
    cr_assert_null(f);
    cr_assert(strstr(d.msg, needle) != NULL, "message '%s' lacks '%s'", d.msg, needle);
    cr_assert_null(strchr(d.msg, '\n'), "message has a newline: %s", d.msg);
    free(b->p);
}

/* ------------------------------------------------------------------------ */
/* A valid file read back                                                    */

Test(gguf, valid_file_reads_back)
{
    buf_t b = valid_file();
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open_memory(b.p, b.n, &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_gguf_version(f), 3);
    cr_assert_eq(mica_gguf_alignment(f), 64);
    cr_assert_eq(mica_gguf_kv_count(f), 20);
    cr_assert_eq(mica_gguf_data_offset(f) % 64, 0);

    mica_gguf_str_t s;
    cr_assert(mica_gguf_get_str(f, "general.architecture", &s) && mica_gguf_str_eq(s, "llama"));
    cr_assert(!mica_gguf_get_str(f, "t.u8", &s));
    cr_assert(!mica_gguf_get_str(f, "general.arch", &s));
    cr_assert_null(mica_gguf_find(f, "nope"));
    cr_assert_null(mica_gguf_find(f, ""));
    const mica_gguf_kv_t *kv = mica_gguf_find(f, "t.u32");
    cr_assert(kv && kv->type == MICA_GGUF_UINT32 && kv->nbytes == 4);
    cr_assert(mica_gguf_str_eq(mica_gguf_kv_at(f, 19)->key, "general.name"));
    cr_assert_null(mica_gguf_kv_at(f, 20));

    uint64_t u;
    int64_t i;
    double x;
    bool flag;
    cr_assert(mica_gguf_get_u64(f, "t.u8", &u) && u == 200);
    cr_assert(!mica_gguf_get_u64(f, "t.i8", &u), "negative into u64");
    cr_assert(mica_gguf_get_i64(f, "t.i8", &i) && i == -100);
    cr_assert(mica_gguf_get_u64(f, "t.u16", &u) && u == 60000);
    cr_assert(mica_gguf_get_i64(f, "t.i16", &i) && i == -30000);
    cr_assert(mica_gguf_get_u64(f, "t.u32", &u) && u == 4000000000u);
    cr_assert(mica_gguf_get_i64(f, "t.u32", &i) && i == 4000000000);
    cr_assert(mica_gguf_get_i64(f, "t.i32", &i) && i == -2000000000);
    cr_assert(mica_gguf_get_u64(f, "t.u64", &u) && u == 1ull << 63);
    cr_assert(!mica_gguf_get_i64(f, "t.u64", &i), "2^63 does not fit in i64");
    cr_assert(mica_gguf_get_i64(f, "t.i64", &i) && i == -(1ll << 40));
    cr_assert(mica_gguf_get_f64(f, "t.f32", &x) && x == 0.5);
    cr_assert(mica_gguf_get_f64(f, "t.f64", &x) && x == 1e100);
    cr_assert(!mica_gguf_get_f64(f, "t.u32", &x));
    cr_assert(!mica_gguf_get_u64(f, "t.f32", &u));
    cr_assert(!mica_gguf_get_u64(f, "t.bool", &u));
    cr_assert(mica_gguf_get_bool(f, "t.bool", &flag) && flag);
    cr_assert(!mica_gguf_get_bool(f, "t.u8", &flag));

    kv = mica_gguf_find(f, "t.strs");
    cr_assert(kv && kv->type == MICA_GGUF_ARRAY && kv->elem_type == MICA_GGUF_STRING &&
              kv->count == 3);
    cr_assert(mica_gguf_array_str(kv, 0, &s) && mica_gguf_str_eq(s, "a"));
    cr_assert(mica_gguf_array_str(kv, 1, &s) && s.len == 0);
    cr_assert(mica_gguf_array_str(kv, 2, &s) && mica_gguf_str_eq(s, "hello"));
    cr_assert(!mica_gguf_array_str(kv, 3, &s));
    cr_assert(!mica_gguf_array_i64(kv, 0, &i));
    cr_assert_eq(kv->nbytes, 3 * 8 + 6);

    kv = mica_gguf_find(f, "t.nested");
    cr_assert(kv && kv->elem_type == MICA_GGUF_ARRAY && kv->count == 3);
    cr_assert(!mica_gguf_array_str(kv, 0, &s));
    const mica_gguf_kv_t *in0 = mica_gguf_array_arr(kv, 0), *in1 = mica_gguf_array_arr(kv, 1),
                         *in2 = mica_gguf_array_arr(kv, 2);
    cr_assert(in0 && in1 && in2);
    cr_assert_null(mica_gguf_array_arr(kv, 3));
    cr_assert(in0->elem_type == MICA_GGUF_STRING && in0->count == 2 && in1->count == 0 &&
              in2->count == 1);
    cr_assert(mica_gguf_array_str(in0, 0, &s) && mica_gguf_str_eq(s, "x"));
    cr_assert(mica_gguf_array_str(in0, 1, &s) && mica_gguf_str_eq(s, "yy"));
    cr_assert(!mica_gguf_array_str(in1, 0, &s));
    cr_assert(mica_gguf_array_str(in2, 0, &s) && mica_gguf_str_eq(s, "zzz"));
    cr_assert_null(mica_gguf_array_arr(in0, 0));

    kv = mica_gguf_find(f, "t.i16s");
    cr_assert(mica_gguf_array_i64(kv, 0, &i) && i == -1);
    cr_assert(mica_gguf_array_i64(kv, 2, &i) && i == -3);
    cr_assert(mica_gguf_array_f64(kv, 1, &x) && x == 2.0);
    cr_assert(!mica_gguf_array_i64(kv, 3, &i));
    kv = mica_gguf_find(f, "t.f32s");
    cr_assert(mica_gguf_array_f64(kv, 0, &x) && x == -1.5);
    cr_assert(mica_gguf_array_f64(kv, 1, &x) && x == 3.0);
    cr_assert(!mica_gguf_array_i64(kv, 0, &i));
    kv = mica_gguf_find(f, "t.deep");
    const mica_gguf_kv_t *deep = mica_gguf_array_arr(mica_gguf_array_arr(kv, 0), 0);
    cr_assert(deep && deep->elem_type == MICA_GGUF_UINT8 && deep->count == 2);
    cr_assert(mica_gguf_array_i64(deep, 1, &i) && i == 8);
    kv = mica_gguf_find(f, "t.empty");
    cr_assert(kv && kv->count == 0 && kv->nbytes == 0 && !mica_gguf_array_i64(kv, 0, &i));

    cr_assert_eq(mica_gguf_tensor_count(f), 2);
    const mica_gguf_tensor_t *w = mica_gguf_find_tensor(f, "w"),
                             *q = mica_gguf_find_tensor(f, "blk.0.q");
    cr_assert(w && q);
    cr_assert_null(mica_gguf_find_tensor(f, "blk.0"));
    cr_assert_eq(mica_gguf_tensor_at(f, 1), q);
    cr_assert_null(mica_gguf_tensor_at(f, 2));
    cr_assert(w->dtype == MICA_DTYPE_F32 && w->n_dims == 2 && w->ne[0] == 4 && w->ne[1] == 2 &&
              w->ne[2] == 1 && w->ne[3] == 1 && w->nbytes == 32);
    cr_assert(q->dtype == MICA_DTYPE_Q4_0 && q->ggml_type == 2 && q->ne[0] == 32 && q->ne[1] == 3 &&
              q->nbytes == 54 && q->offset == 64);
    uint64_t size;
    const uint8_t *base = mica_gguf_bytes(f, &size);
    cr_assert_eq(base, b.p);
    cr_assert_eq(size, b.n);
    cr_assert_eq(w->data, base + mica_gguf_data_offset(f));
    cr_assert_eq(q->data, base + mica_gguf_data_offset(f) + 64);
    cr_assert_eq(q->data + q->nbytes, base + size);
    float third;
    memcpy(&third, w->data + 12, 4);
    cr_assert_eq(third, 3.0f);
    mica_gguf_close(f);
    free(b.p);
}

Test(gguf, version_2_is_read)
{
    buf_t b = valid_file();
    b.p[4] = 2;
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open_memory(b.p, b.n, &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_gguf_version(f), 2);
    mica_gguf_close(f);
    free(b.p);
}

Test(gguf, no_tensors_no_metadata)
{
    buf_t b = {0};
    header(&b, 3, 0, 0);
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open_memory(b.p, b.n, &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_gguf_kv_count(f), 0);
    cr_assert_eq(mica_gguf_tensor_count(f), 0);
    cr_assert_eq(mica_gguf_alignment(f), 32);
    cr_assert_null(mica_gguf_find(f, "general.architecture"));
    cr_assert_null(mica_gguf_find_tensor(f, "w"));
    mica_gguf_close(f);
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* Malformed files                                                           */

Test(gguf, truncated_at_every_byte)
{
    buf_t b = valid_file();
    for (size_t n = 0; n < b.n; n++) {
        mica_gguf_t *f = NULL;
        mica_diag_t d = {0};
        mica_status_t s = open_copy(b.p, n, &f, &d);
        cr_assert_eq(s, MICA_ERR_INVALID, "cut at %zu: status %d (%s)", n, s, d.msg);
        cr_assert_null(f);
        cr_assert(strncmp(d.msg, "truncated", 9) == 0, "cut at %zu: %s", n, d.msg);
        cr_assert_null(strchr(d.msg, '\n'));
    }
    free(b.p);
}

/* Touches every byte an accessor can hand out (ASan reports a stray one). */
static uint64_t walk_array(const mica_gguf_kv_t *kv)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < kv->count; i++) {
        mica_gguf_str_t s;
        double x;
        const mica_gguf_kv_t *in = mica_gguf_array_arr(kv, i);
        if (in)
            sum += walk_array(in);
        else if (mica_gguf_array_str(kv, i, &s))
            for (uint64_t k = 0; k < s.len; k++)
                sum += (unsigned char)s.ptr[k];
        else if (mica_gguf_array_f64(kv, i, &x))
            sum += x != 0;
    }
    return sum;
}

static uint64_t walk(const mica_gguf_t *f)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < mica_gguf_kv_count(f); i++) {
        const mica_gguf_kv_t *kv = mica_gguf_kv_at(f, i);
        for (uint64_t k = 0; k < kv->key.len; k++)
            sum += (unsigned char)kv->key.ptr[k];
        for (uint64_t k = 0; k < kv->nbytes; k++)
            sum += kv->data[k];
        if (kv->type == MICA_GGUF_ARRAY)
            sum += walk_array(kv);
    }
    for (uint64_t i = 0; i < mica_gguf_tensor_count(f); i++) {
        const mica_gguf_tensor_t *t = mica_gguf_tensor_at(f, i);
        sum += t->data[0] + t->data[t->nbytes - 1];
    }
    return sum;
}

Test(gguf, random_corruptions_never_crash)
{
    buf_t b = valid_file();
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 7);
    int opened = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        int flips = (int)mica_test_rng_range(&r, 1, 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)mica_test_rng_range(&r, 4, (int64_t)b.n - 1);
            copy[at] = (iter & 1) ? (uint8_t)mica_test_rng_next(&r)
                                  : copy[at] ^ (uint8_t)(1u << (iter % 8));
        }
        mica_gguf_t *f = NULL;
        mica_diag_t d = {0};
        if (mica_gguf_open_memory(copy, b.n, &f, &d) == MICA_OK) {
            walk(f);
            mica_gguf_close(f);
            opened++;
        } else {
            cr_assert_null(f);
            cr_assert(d.msg[0] != 0 && strchr(d.msg, '\n') == NULL, "%s", d.msg);
        }
        free(copy);
    }
    cr_log_info("%d of 20000 corrupted files still opened", opened);
    free(b.p);
}

Test(gguf, empty_and_null)
{
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open_memory(NULL, 0, &f, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "truncated") != NULL, "%s", d.msg);
    cr_assert_eq(mica_gguf_open_memory(NULL, 10, &f, &d), MICA_ERR_INVALID);
    cr_assert_null(f);
}

Test(gguf, wrong_magic)
{
    buf_t b = valid_file();
    memcpy(b.p, "GGML", 4);
    expect_fail(&b, MICA_ERR_INVALID, "not a GGUF file");
}

Test(gguf, version_1_is_refused_by_name)
{
    buf_t b = valid_file();
    b.p[4] = 1;
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "version 1");
}

Test(gguf, version_4_is_unknown)
{
    buf_t b = valid_file();
    b.p[4] = 4;
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "version 4");
}

Test(gguf, big_endian_is_named)
{
    buf_t b = valid_file();
    b.p[4] = 0;
    b.p[7] = 3;
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "big-endian");
}

Test(gguf, absurd_metadata_count)
{
    buf_t b = {0};
    header(&b, 3, 0, 1ull << 62);
    zeros(&b, 64);
    expect_fail(&b, MICA_ERR_INVALID, "4611686018427387904 metadata entries");
}

Test(gguf, absurd_tensor_count)
{
    buf_t b = {0};
    header(&b, 3, UINT64_MAX, 0);
    zeros(&b, 64);
    expect_fail(&b, MICA_ERR_INVALID, "tensor infos cannot fit");

    /* Fits the header's remainder, but not what is left after the metadata. */
    b = (buf_t){0};
    header(&b, 3, 2, 1);
    key(&b, "k", MICA_GGUF_STRING);
    str_(&b, "0123456789012345678901234567890123456789");
    zeros(&b, 40);
    expect_fail(&b, MICA_ERR_INVALID, "after the metadata");
}

Test(gguf, huge_key_length)
{
    buf_t b = {0};
    header(&b, 3, 0, 1);
    u64_(&b, 1ull << 63);
    zeros(&b, 32);
    expect_fail(&b, MICA_ERR_INVALID, "metadata 0 key");
}

Test(gguf, huge_string_value_length)
{
    buf_t b = {0};
    header(&b, 3, 0, 1);
    key(&b, "general.name", MICA_GGUF_STRING);
    u64_(&b, UINT64_MAX);
    zeros(&b, 32);
    expect_fail(&b, MICA_ERR_INVALID, "'general.name'");
}

Test(gguf, huge_array_counts)
{
    const uint32_t types[4] = {MICA_GGUF_UINT32, MICA_GGUF_FLOAT64, MICA_GGUF_STRING,
                               MICA_GGUF_ARRAY};
    const uint64_t counts[3] = {1ull << 62, UINT64_MAX, (1ull << 61) + 1};
    for (int t = 0; t < 4; t++) {
        for (int c = 0; c < 3; c++) {
            buf_t b = {0};
            header(&b, 3, 0, 1);
            key(&b, "tokenizer.ggml.tokens", MICA_GGUF_ARRAY);
            arr(&b, types[t], counts[c]);
            zeros(&b, 100);
            expect_fail(&b, MICA_ERR_INVALID, "array of");
        }
    }
}

Test(gguf, huge_string_inside_array)
{
    buf_t b = {0};
    header(&b, 3, 0, 1);
    key(&b, "tokenizer.ggml.tokens", MICA_GGUF_ARRAY);
    arr(&b, MICA_GGUF_STRING, 3);
    str_(&b, "ok");
    u64_(&b, 1ull << 63);
    zeros(&b, 30);
    expect_fail(&b, MICA_ERR_INVALID, "string 1");
}

Test(gguf, unknown_value_types)
{
    buf_t b = {0};
    header(&b, 3, 0, 1);
    key(&b, "x", 13);
    zeros(&b, 16);
    expect_fail(&b, MICA_ERR_INVALID, "unknown value type 13");

    b = (buf_t){0};
    header(&b, 3, 0, 1);
    key(&b, "x", MICA_GGUF_ARRAY);
    arr(&b, 0x80000000u, 1);
    zeros(&b, 16);
    expect_fail(&b, MICA_ERR_INVALID, "array of unknown type");
}

Test(gguf, bool_must_be_0_or_1)
{
    buf_t b = {0};
    header(&b, 3, 0, 1);
    key(&b, "x", MICA_GGUF_BOOL);
    u8_(&b, 2);
    expect_fail(&b, MICA_ERR_INVALID, "bool 2");

    b = (buf_t){0};
    header(&b, 3, 0, 1);
    key(&b, "x", MICA_GGUF_ARRAY);
    arr(&b, MICA_GGUF_BOOL, 3);
    u8_(&b, 1);
    u8_(&b, 0);
    u8_(&b, 255);
    expect_fail(&b, MICA_ERR_INVALID, "element 2");
}

Test(gguf, arrays_nested_too_deep)
{
    buf_t b = {0};
    header(&b, 3, 0, 1);
    key(&b, "deep", MICA_GGUF_ARRAY);
    for (int i = 0; i < 100; i++)
        arr(&b, MICA_GGUF_ARRAY, 1);
    arr(&b, MICA_GGUF_UINT8, 0);
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "nests arrays");
}

Test(gguf, duplicate_key)
{
    buf_t b = {0};
    header(&b, 3, 0, 3);
    key(&b, "general.name", MICA_GGUF_STRING);
    str_(&b, "a");
    key(&b, "general.architecture", MICA_GGUF_STRING);
    str_(&b, "llama");
    key(&b, "general.name", MICA_GGUF_UINT8);
    u8_(&b, 1);
    expect_fail(&b, MICA_ERR_INVALID, "duplicate metadata key 'general.name' (entries 0 and 2)");
}

Test(gguf, bad_alignment)
{
    const uint32_t values[3] = {0, 48, 3};
    for (int i = 0; i < 3; i++) {
        buf_t b = {0};
        header(&b, 3, 0, 1);
        key(&b, "general.alignment", MICA_GGUF_UINT32);
        u32_(&b, values[i]);
        expect_fail(&b, MICA_ERR_INVALID, "power of two");
    }
    buf_t b = {0};
    header(&b, 3, 0, 1);
    key(&b, "general.alignment", MICA_GGUF_STRING);
    str_(&b, "32");
    expect_fail(&b, MICA_ERR_INVALID, "general.alignment must be");

    /* A huge alignment puts the data section past the end of the file. */
    b = (buf_t){0};
    header(&b, 3, 1, 1);
    key(&b, "general.alignment", MICA_GGUF_UINT64);
    u64_(&b, 1ull << 40);
    const uint64_t ne[1] = {8};
    tinfo(&b, "w", 1, ne, 0, 0);
    zeros(&b, 32);
    expect_fail(&b, MICA_ERR_INVALID, "data section starts");

    b = (buf_t){0};
    header(&b, 3, 1, 1);
    key(&b, "general.alignment", MICA_GGUF_UINT64);
    u64_(&b, 1ull << 63);
    tinfo(&b, "w", 1, ne, 0, 0);
    zeros(&b, 32);
    expect_fail(&b, MICA_ERR_INVALID, "data section");
}

/* A file with one tensor: header, no metadata, the info, padding to 32,
 * then `data_bytes` bytes. */
static buf_t one_tensor(const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                        uint64_t offset, size_t data_bytes)
{
    buf_t b = {0};
    header(&b, 3, 1, 0);
    tinfo(&b, name, n_dims, ne, type, offset);
    pad(&b, 32);
    zeros(&b, data_bytes);
    return b;
}

Test(gguf, one_tensor_baseline_is_valid)
{
    const uint64_t ne[2] = {32, 2};
    buf_t b = one_tensor("blk.0.attn_q.weight", 2, ne, 2, 0, 36); /* q4_0 */
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open_memory(b.p, b.n, &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_gguf_tensor_at(f, 0)->nbytes, 36);
    mica_gguf_close(f);
    free(b.p);
}

Test(gguf, tensor_runs_past_the_end)
{
    const uint64_t ne[2] = {32, 2};
    buf_t b = one_tensor("blk.0.attn_q.weight", 2, ne, 2, 0, 35); /* needs 36 */
    expect_fail(&b, MICA_ERR_INVALID, "truncated: tensor 'blk.0.attn_q.weight' data runs past");

    b = one_tensor("w", 2, ne, 2, 1ull << 63, 64);
    expect_fail(&b, MICA_ERR_INVALID, "runs past the end");

    /* offset + nbytes wraps around 2^64 */
    b = one_tensor("w", 2, ne, 2, UINT64_MAX - 31, 64);
    expect_fail(&b, MICA_ERR_INVALID, "runs past the end");
}

Test(gguf, misaligned_offset)
{
    const uint64_t ne[1] = {8};
    buf_t b = one_tensor("w", 1, ne, 0, 4, 64);
    expect_fail(&b, MICA_ERR_INVALID, "offset 4 is not a multiple of the alignment 32");
}

Test(gguf, unknown_tensor_type_is_named)
{
    const uint64_t ne[2] = {256, 2};
    buf_t b = one_tensor("blk.0.attn_q.weight", 2, ne, 16, 0, 1024);
    expect_fail(&b, MICA_ERR_UNSUPPORTED,
                "tensor 'blk.0.attn_q.weight' has unsupported type 16 (iq2_xxs)");
    b = one_tensor("x", 2, ne, 15, 0, 1024);
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "type 15 (q8_k)");
    b = one_tensor("x", 2, ne, 4, 0, 1024);
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "type 4 (q4_2)");
    b = one_tensor("x", 2, ne, 1000, 0, 1024);
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "type 1000 (unknown)");
}

Test(gguf, bad_shapes)
{
    const uint64_t big[4] = {1ull << 31, 1ull << 31, 1ull << 31, 1ull << 31};
    buf_t b = one_tensor("w", 4, big, 0, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "too many elements");

    const uint64_t bytes_overflow[1] = {1ull << 62}; /* 2^62 elements fit, 2^64 bytes do not */
    b = one_tensor("w", 1, bytes_overflow, 0, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "overflows");

    const uint64_t zero[2] = {32, 0};
    b = one_tensor("w", 2, zero, 0, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "dimension 1 is 0");

    const uint64_t neg[2] = {32, UINT64_MAX};
    b = one_tensor("w", 2, neg, 0, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "dimension 1 is -1");

    const uint64_t odd[2] = {33, 2};
    b = one_tensor("w", 2, odd, 2, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "row length 33 is not a multiple of the q4_0 block size 32");

    const uint64_t k[1] = {128};
    b = one_tensor("w", 1, k, 12, 0, 256);
    expect_fail(&b, MICA_ERR_INVALID, "block size 256");

    const uint64_t five[5] = {1, 1, 1, 1, 1};
    b = one_tensor("w", 5, five, 0, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "5 dimensions");
    b = one_tensor("w", 0, five, 0, 0, 64);
    expect_fail(&b, MICA_ERR_INVALID, "0 dimensions");
}

Test(gguf, duplicate_tensor_name)
{
    buf_t b = {0};
    header(&b, 3, 2, 0);
    const uint64_t ne[1] = {8};
    tinfo(&b, "w", 1, ne, 0, 0);
    tinfo(&b, "w", 1, ne, 0, 32);
    pad(&b, 32);
    zeros(&b, 64);
    expect_fail(&b, MICA_ERR_INVALID, "duplicate tensor name 'w'");
}

Test(gguf, names_in_messages_are_sanitised)
{
    const uint64_t ne[1] = {8};
    buf_t b = one_tensor("bad\nname\x01", 1, ne, 16, 0, 64);
    expect_fail(&b, MICA_ERR_UNSUPPORTED, "'bad?name?'");
}

/* ------------------------------------------------------------------------ */
/* Files on disk                                                             */

Test(gguf, nonexistent_path)
{
    mica_gguf_t *f = (mica_gguf_t *)&f;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open("/nonexistent/dir/model.gguf", &f, &d), MICA_ERR_IO);
    cr_assert_null(f);
    cr_assert(strstr(d.msg, "No such file") != NULL, "%s", d.msg);
}

Test(gguf, directory)
{
    mica_gguf_t *f = (mica_gguf_t *)&f;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden("zoo"), &f, &d), MICA_ERR_IO);
    cr_assert_null(f);
    cr_assert(strstr(d.msg, "directory") != NULL, "%s", d.msg);
}

Test(gguf, not_a_gguf_file)
{
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden("README.md"), &f, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "not a GGUF file") != NULL, "%s", d.msg);
    cr_assert_null(f);
}

/* Writes n bytes to a fresh temporary file and returns its path (static). */
static const char *temp_file(const uint8_t *p, size_t n)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mica_test_gguf_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
    return path;
}

Test(gguf, truncated_and_empty_files_on_disk)
{
    size_t n = 0;
    char *bytes = mica_test_read_file(mica_test_golden("zoo/zoo.q4_k.gguf"), &n);
    cr_assert(bytes != NULL);
    const size_t cuts[4] = {0, 3, 5000, n - 1};
    for (int i = 0; i < 4; i++) {
        const char *path = temp_file((const uint8_t *)bytes, cuts[i]);
        mica_gguf_t *f = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_ERR_INVALID, "cut %zu: %s", cuts[i], d.msg);
        cr_assert(strncmp(d.msg, "truncated", 9) == 0, "%s", d.msg);
        cr_assert_null(f);
        unlink(path);
    }
    const char *path = temp_file((const uint8_t *)bytes, n);
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s", d.msg);
    unlink(path); /* the mapping outlives the name */
    cr_assert_eq(mica_gguf_tensor_count(f), 12);
    cr_assert_eq(memcmp(mica_gguf_bytes(f, NULL), bytes, n), 0);
    mica_gguf_close(f);
    free(bytes);
}

/* ------------------------------------------------------------------------ */
/* The golden models                                                         */

typedef struct golden {
    const char *stem; /* file name without ".TYPE.gguf" */
    const char *arch;
    int64_t n_embd, n_layer, n_ff, n_head, n_head_kv, n_vocab;
    uint64_t n_tensors;
    const char *first_token, *last_token;
} golden_t;

static const golden_t models[] = {
    {"llama-tiny", "llama", 64, 2, 160, 4, 2, 32000, 21, "<unk>", NULL},
    {"qwen2-tiny", "qwen2", 64, 2, 128, 4, 1, 50257, 26, "!", "<|endoftext|>"},
    {"zoo/zoo", "llama", 256, 1, 512, 4, 2, 512, 12, "<unk>", NULL},
};

static int64_t get_int(const mica_gguf_t *f, const char *arch, const char *suffix)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, suffix);
    int64_t v = -1;
    cr_assert(mica_gguf_get_i64(f, k, &v), "missing %s", k);
    return v;
}

static int cmp_offset(const void *a, const void *b)
{
    const mica_gguf_tensor_t *x = *(const mica_gguf_tensor_t *const *)a;
    const mica_gguf_tensor_t *y = *(const mica_gguf_tensor_t *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void check_golden(const golden_t *m, const char *type)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s.gguf", m->stem, type);
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden(name), &f, &d), MICA_OK, "%s: %s", name, d.msg);
    cr_assert(mica_gguf_version(f) == 2 || mica_gguf_version(f) == 3);

    mica_gguf_str_t s;
    cr_assert(mica_gguf_get_str(f, "general.architecture", &s), "%s", name);
    cr_assert(mica_gguf_str_eq(s, m->arch), "%s: arch %.*s", name, (int)s.len, s.ptr);
    cr_assert_eq(get_int(f, m->arch, "embedding_length"), m->n_embd, "%s", name);
    cr_assert_eq(get_int(f, m->arch, "block_count"), m->n_layer, "%s", name);
    cr_assert_eq(get_int(f, m->arch, "feed_forward_length"), m->n_ff, "%s", name);
    cr_assert_eq(get_int(f, m->arch, "attention.head_count"), m->n_head, "%s", name);
    cr_assert_eq(get_int(f, m->arch, "attention.head_count_kv"), m->n_head_kv, "%s", name);
    double eps = 0;
    char k[128];
    snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", m->arch);
    cr_assert(mica_gguf_get_f64(f, k, &eps) && eps > 0 && eps < 1e-3, "%s: eps %g", name, eps);

    const mica_gguf_kv_t *tokens = mica_gguf_find(f, "tokenizer.ggml.tokens");
    cr_assert(tokens && tokens->elem_type == MICA_GGUF_STRING, "%s", name);
    cr_assert_eq(tokens->count, (uint64_t)m->n_vocab, "%s: %llu tokens", name,
                 (unsigned long long)tokens->count);
    cr_assert(mica_gguf_array_str(tokens, 0, &s) && mica_gguf_str_eq(s, m->first_token), "%s",
              name);
    if (m->last_token)
        cr_assert(mica_gguf_array_str(tokens, tokens->count - 1, &s) &&
                      mica_gguf_str_eq(s, m->last_token),
                  "%s: last token %.*s", name, (int)s.len, s.ptr);
    for (uint64_t i = 0; i < tokens->count; i++) /* every string is inside the array's bytes */
        cr_assert(mica_gguf_array_str(tokens, i, &s) &&
                  (const uint8_t *)s.ptr + s.len <= tokens->data + tokens->nbytes);
    const mica_gguf_kv_t *types = mica_gguf_find(f, "tokenizer.ggml.token_type");
    int64_t tt;
    cr_assert(types && types->count == tokens->count && mica_gguf_array_i64(types, 0, &tt), "%s",
              name);
    if (!strcmp(m->arch, "llama")) {
        const mica_gguf_kv_t *scores = mica_gguf_find(f, "tokenizer.ggml.scores");
        double sc;
        cr_assert(scores && scores->count == tokens->count &&
                  mica_gguf_array_f64(scores, scores->count - 1, &sc));
    } else {
        const mica_gguf_kv_t *merges = mica_gguf_find(f, "tokenizer.ggml.merges");
        cr_assert(merges && merges->elem_type == MICA_GGUF_STRING && merges->count > 1000);
    }

    cr_assert_eq(mica_gguf_tensor_count(f), m->n_tensors, "%s", name);
    const mica_gguf_tensor_t *emb = mica_gguf_find_tensor(f, "token_embd.weight");
    cr_assert(emb && emb->n_dims == 2 && emb->ne[0] == m->n_embd && emb->ne[1] == m->n_vocab, "%s",
              name);
    cr_assert_not_null(mica_gguf_find_tensor(f, "blk.0.attn_q.weight"));

    uint64_t size, align = mica_gguf_alignment(f);
    const uint8_t *base = mica_gguf_bytes(f, &size);
    uint64_t n = mica_gguf_tensor_count(f);
    const mica_gguf_tensor_t **sorted = malloc(sizeof *sorted * n);
    for (uint64_t i = 0; i < n; i++) {
        const mica_gguf_tensor_t *t = mica_gguf_tensor_at(f, i);
        cr_assert(t->data >= base && t->data + t->nbytes <= base + size, "%s: tensor %llu", name,
                  (unsigned long long)i);
        cr_assert_eq(t->data, base + mica_gguf_data_offset(f) + t->offset);
        cr_assert_eq((uint64_t)(t->data - base) % align, 0);
        cr_assert_eq((uintptr_t)t->data % align, 0, "mapping is page-aligned");
        int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        cr_assert_eq(t->nbytes, (uint64_t)(mica_dtype_row_bytes(t->dtype, t->ne[0]) * rows));
        sorted[i] = t;
    }
    qsort(sorted, n, sizeof *sorted, cmp_offset);
    for (uint64_t i = 0; i + 1 < n; i++)
        cr_assert(sorted[i]->offset + sorted[i]->nbytes <= sorted[i + 1]->offset,
                  "%s: tensors overlap", name);
    free(sorted);
    mica_gguf_close(f);
}

Test(gguf, golden_tiny_models)
{
    const char *types[5] = {"f32", "f16", "q8_0", "q4_0", "q4_1"};
    for (int m = 0; m < 2; m++)
        for (int t = 0; t < 5; t++)
            check_golden(&models[m], types[t]);
}

Test(gguf, golden_zoo)
{
    const char *types[10] = {"f32",  "bf16", "q5_0", "q5_1", "q2_k",
                             "q3_k", "q4_k", "q5_k", "q6_k", "q4_k_m"};
    for (int t = 0; t < 10; t++)
        check_golden(&models[2], types[t]);
}

Test(gguf, golden_tensor_types)
{
    struct {
        const char *file;
        const char *tensor;
        mica_dtype_t dtype;
        uint32_t ggml;
    } cases[] = {
        {"llama-tiny.q4_0.gguf", "output.weight", MICA_DTYPE_Q4_0, 2},
        {"llama-tiny.q4_1.gguf", "blk.1.ffn_down.weight", MICA_DTYPE_Q4_1, 3},
        {"llama-tiny.q8_0.gguf", "token_embd.weight", MICA_DTYPE_Q8_0, 8},
        {"llama-tiny.f16.gguf", "blk.0.attn_q.weight", MICA_DTYPE_F16, 1},
        {"llama-tiny.f16.gguf", "output_norm.weight", MICA_DTYPE_F32, 0},
        {"zoo/zoo.bf16.gguf", "output.weight", MICA_DTYPE_BF16, 30},
        {"zoo/zoo.q5_0.gguf", "output.weight", MICA_DTYPE_Q5_0, 6},
        {"zoo/zoo.q5_1.gguf", "output.weight", MICA_DTYPE_Q5_1, 7},
        {"zoo/zoo.q2_k.gguf", "output.weight", MICA_DTYPE_Q2_K, 10},
        {"zoo/zoo.q3_k.gguf", "output.weight", MICA_DTYPE_Q3_K, 11},
        {"zoo/zoo.q4_k.gguf", "output.weight", MICA_DTYPE_Q4_K, 12},
        {"zoo/zoo.q5_k.gguf", "output.weight", MICA_DTYPE_Q5_K, 13},
        {"zoo/zoo.q6_k.gguf", "output.weight", MICA_DTYPE_Q6_K, 14},
        {"zoo/zoo.q4_k_m.gguf", "output.weight", MICA_DTYPE_Q6_K, 14},
        {"zoo/zoo.q4_k_m.gguf", "blk.0.ffn_up.weight", MICA_DTYPE_Q4_K, 12},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mica_gguf_t *f = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_gguf_open(mica_test_golden(cases[i].file), &f, &d), MICA_OK, "%s", d.msg);
        const mica_gguf_tensor_t *t = mica_gguf_find_tensor(f, cases[i].tensor);
        cr_assert(t && t->dtype == cases[i].dtype && t->ggml_type == cases[i].ggml, "%s %s",
                  cases[i].file, cases[i].tensor);
        mica_gguf_close(f);
    }
}

Test(gguf, type_names)
{
    cr_assert_str_eq(mica_gguf_type_name(MICA_GGUF_STRING), "string");
    cr_assert_str_eq(mica_gguf_type_name(MICA_GGUF_FLOAT64), "f64");
    cr_assert_null(mica_gguf_type_name((mica_gguf_type_t)13));
    cr_assert_str_eq(mica_gguf_ggml_type_name(30), "bf16");
    cr_assert_str_eq(mica_gguf_ggml_type_name(12), "q4_k");
    cr_assert_null(mica_gguf_ggml_type_name(5000));
}
