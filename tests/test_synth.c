/* mica synth and what it is made of: the quantizers (against plain-loop
 * oracles and the existing dequantizer), the GGUF writer (round trip
 * through mica's reader, failures leave nothing), and synthesized models
 * (the preset's published shapes, a usable tokenizer, finite logits,
 * determinism, the command's exit statuses). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "quant_encode.h"
#include "ref_model.h"
#include "test_run.h"
#include "test_support.h"
#include "tokenizer.h"
#include "vocab.h"

/* ------------------------------------------------------------------------ */
/* Scratch directory and running the binary                                  */

static char tmpdir[] = "/tmp/mica-synth-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

#define tmp(name) mica_test_path(tmpdir, name)
#define dir_entries() mica_test_dir_entries(tmpdir)

typedef mica_test_result_t result_t;
#define run(...) mica_test_mica(tmpdir, __VA_ARGS__)
/* fsize_limit > 0 caps the size of files mica may write (a disk that
 * fills up). */
#define run_limited(fsize_limit, ...) mica_test_mica_fsize(tmpdir, fsize_limit, __VA_ARGS__)

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ------------------------------------------------------------------------ */
/* Quantizers                                                                */

static float f16_at(const uint8_t *p)
{
    return mica_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Rows that reach the edges: random, a lone spike of either sign, ties of
 * opposite sign, constants, zeros, tiny values. */
static void fill_row(float *x, int64_t n, int kind, mica_test_rng_t *r)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = mica_test_rng_float(r) * 3.0f;
    switch (kind % 7) {
    case 1: x[5] = 40.0f; break;
    case 2: x[17] = -40.0f; break;
    case 3: x[3] = 9.0f; x[20] = -9.0f; break; /* first of largest magnitude wins */
    case 4: for (int64_t i = 0; i < n; i++) x[i] = 0.75f; break;
    case 5: for (int64_t i = 0; i < n; i++) x[i] = 0.0f; break;
    case 6: for (int64_t i = 0; i < n; i++) x[i] *= 1e-6f; break;
    default: break;
    }
}

Test(quant_encode, q4_0_matches_the_formula_and_stays_within_half_a_step)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 11);
    enum { N = 64 };
    float x[N], y[N];
    uint8_t q[2 * 18];
    mica_diag_t d = {0};
    for (int kind = 0; kind < 40; kind++) {
        fill_row(x, N, kind, &r);
        cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_Q4_0, x, N, q, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_dequantize_row(MICA_DTYPE_Q4_0, q, y, N, &d), MICA_OK);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + 32 * b;
            float big = 0.0f; /* the signed value of largest magnitude, first one */
            for (int j = 0; j < 32; j++)
                if (fabsf(xb[j]) > fabsf(big))
                    big = xb[j];
            float scale = big / -8.0f;
            cr_assert_eq(q[18 * b] | q[18 * b + 1] << 8, mica_f32_to_f16(scale), "kind %d", kind);
            float ds = f16_at(q + 18 * b);
            for (int j = 0; j < 32; j++) {
                float t = scale != 0.0f ? xb[j] * (1.0f / scale) + 8.5f : 8.5f;
                int want = (int)t > 15 ? 15 : (int)t;
                int nib = j < 16 ? q[18 * b + 2 + j] & 15 : q[18 * b + 2 + j - 16] >> 4;
                cr_assert_eq(nib, want, "kind %d block %d elem %d", kind, b, j);
                /* within half a step, except where the top code is clipped
                 * (the far end of the range holds only 7 steps) */
                float err = fabsf(y[32 * b + j] - xb[j]);
                float bound = (t >= 16.0f ? fabsf(xb[j] - 7.0f * scale) : fabsf(scale) / 2) +
                              8.0f * fabsf(ds - scale) + 1e-6f * fabsf(big);
                cr_assert(err <= bound, "kind %d: |%g - %g| > %g", kind, y[32 * b + j], xb[j],
                          bound);
            }
        }
    }
}

Test(quant_encode, q4_1_matches_the_formula_and_stays_within_half_a_step)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 12);
    enum { N = 96 };
    float x[N], y[N];
    uint8_t q[3 * 20];
    mica_diag_t d = {0};
    for (int kind = 0; kind < 40; kind++) {
        fill_row(x, N, kind, &r);
        cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_Q4_1, x, N, q, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_dequantize_row(MICA_DTYPE_Q4_1, q, y, N, &d), MICA_OK);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + 32 * b;
            float lo = xb[0], hi = xb[0];
            for (int j = 1; j < 32; j++) {
                lo = fminf(lo, xb[j]);
                hi = fmaxf(hi, xb[j]);
            }
            float scale = (hi - lo) / 15.0f;
            const uint8_t *blk = q + 20 * b;
            cr_assert_eq(blk[0] | blk[1] << 8, mica_f32_to_f16(scale), "kind %d", kind);
            cr_assert_eq(blk[2] | blk[3] << 8, mica_f32_to_f16(lo), "kind %d", kind);
            float ds = f16_at(blk), dm = f16_at(blk + 2);
            for (int j = 0; j < 32; j++) {
                float t = scale != 0.0f ? (xb[j] - lo) * (1.0f / scale) + 0.5f : 0.5f;
                int want = (int)t > 15 ? 15 : (int)t;
                int nib = j < 16 ? blk[4 + j] & 15 : blk[4 + j - 16] >> 4;
                cr_assert_eq(nib, want, "kind %d block %d elem %d", kind, b, j);
                float err = fabsf(y[32 * b + j] - xb[j]);
                float bound = scale / 2 + fabsf(dm - lo) + 15.0f * fabsf(ds - scale) +
                              1e-6f * (fabsf(lo) + fabsf(hi));
                cr_assert(err <= bound, "kind %d: |%g - %g| > %g", kind, y[32 * b + j], xb[j],
                          bound);
            }
        }
    }
}

Test(quant_encode, q8_0_matches_the_formula_and_stays_within_half_a_step)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 13);
    enum { N = 64 };
    float x[N], y[N];
    uint8_t q[2 * 34];
    mica_diag_t d = {0};
    for (int kind = 0; kind < 40; kind++) {
        fill_row(x, N, kind, &r);
        cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_Q8_0, x, N, q, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_dequantize_row(MICA_DTYPE_Q8_0, q, y, N, &d), MICA_OK);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + 32 * b;
            float amax = 0.0f;
            for (int j = 0; j < 32; j++)
                amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
            float scale = amax / 127.0f;
            const uint8_t *blk = q + 34 * b;
            cr_assert_eq(blk[0] | blk[1] << 8, mica_f32_to_f16(scale), "kind %d", kind);
            float ds = f16_at(blk);
            for (int j = 0; j < 32; j++) {
                int want = scale != 0.0f ? (int)roundf(xb[j] * (1.0f / scale)) : 0;
                cr_assert_eq((int8_t)blk[2 + j], want, "kind %d elem %d", kind, j);
                float err = fabsf(y[32 * b + j] - xb[j]);
                cr_assert(err <= scale / 2 + 127.0f * fabsf(ds - scale) + 1e-6f * amax,
                          "kind %d: |%g - %g|", kind, y[32 * b + j], xb[j]);
            }
        }
    }
}

Test(quant_encode, f16_and_f32_are_the_plain_conversions)
{
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 14);
    float x[40];
    uint8_t h[80], f[160];
    for (int i = 0; i < 40; i++)
        x[i] = mica_test_rng_float(&r) * 1000.0f;
    mica_diag_t d = {0};
    cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_F16, x, 40, h, &d), MICA_OK);
    cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_F32, x, 40, f, &d), MICA_OK);
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(h[2 * i] | h[2 * i + 1] << 8, mica_f32_to_f16(x[i]));
        cr_assert_eq(memcmp(f + 4 * i, &x[i], 4), 0);
    }
}

Test(quant_encode, bad_arguments_are_errors)
{
    float x[64] = {0};
    uint8_t q[64 * 4];
    mica_diag_t d = {0};
    cr_assert_neq(mica_quant_encode_row(MICA_DTYPE_Q4_0, x, 33, q, &d), MICA_OK);
    cr_assert_neq(mica_quant_encode_row(MICA_DTYPE_Q4_0, x, 0, q, &d), MICA_OK);
    cr_assert_neq(mica_quant_encode_row(MICA_DTYPE_Q4_0, NULL, 32, q, &d), MICA_OK);
    cr_assert_neq(mica_quant_encode_row(MICA_DTYPE_Q4_0, x, 32, NULL, &d), MICA_OK);
    cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_Q6_K, x, 256, q, &d), MICA_ERR_UNSUPPORTED);
    x[7] = NAN;
    cr_assert_eq(mica_quant_encode_row(MICA_DTYPE_Q8_0, x, 32, q, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "7"), "%s", d.msg);
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                    */

TestSuite(gguf_write, .init = setup, .fini = teardown);

Test(gguf_write, round_trips_every_key_and_tensor_through_the_reader)
{
    const char *path = tmp("rt.gguf");
    mica_diag_t d = {0};
    mica_gguf_writer_t *w;
    cr_assert_eq(mica_gguf_writer_create(path, &w, &d), MICA_OK, "%s", d.msg);
    const char *strs[] = {"a", "", "h\xc3\xa9llo", "with space"};
    const int32_t ints[] = {-5, 0, 7, INT32_MAX};
    const float floats[] = {1.5f, -0.25f, 1e-6f};
    cr_assert_eq(mica_gguf_writer_add_u32(w, "k.u32", 4000000000u, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_i32(w, "k.i32", -123456, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_f32(w, "k.f32", 0.1f, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_bool(w, "k.bool", true, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_str(w, "k.str", "text", &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_str_array(w, "k.strs", strs, NULL, 4, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_i32_array(w, "k.ints", ints, 4, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_f32_array(w, "k.floats", floats, 3, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_str_array(w, "k.empty", NULL, NULL, 0, &d), MICA_OK);

    /* a 5-float vector (20 bytes: the next tensor needs padding), a 3 x 7
     * f16 matrix, a 2 x 64 q4_0 matrix, a 1 x 1 x 2 x 32 q8_0 tensor */
    static const struct {
        const char *name;
        mica_dtype_t t;
        int32_t n_dims;
        int64_t ne[4];
    } ts[] = {
        {"vec", MICA_DTYPE_F32, 1, {5}},
        {"mat.f16", MICA_DTYPE_F16, 2, {7, 3}},
        {"mat.q4_0", MICA_DTYPE_Q4_0, 2, {64, 2}},
        {"t4", MICA_DTYPE_Q8_0, 4, {32, 2, 1, 1}},
    };
    uint8_t data[4][256];
    uint64_t nbytes[4] = {20, 42, 72, 68};
    mica_test_rng_t r;
    mica_test_rng_seed(&r, 3);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(mica_gguf_writer_add_tensor(w, ts[i].name, ts[i].t, ts[i].n_dims, ts[i].ne, &d),
                     MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_gguf_writer_tensor_nbytes(w, (uint64_t)i), nbytes[i]);
        for (uint64_t k = 0; k < nbytes[i]; k++)
            data[i][k] = (uint8_t)mica_test_rng_next(&r);
    }
    /* data in uneven pieces, one across a tensor boundary */
    cr_assert_eq(mica_gguf_writer_write(w, data[0], 3, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_write(w, data[0] + 3, 17, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_write(w, data[1], 42, &d), MICA_OK);
    for (int i = 2; i < 4; i++)
        cr_assert_eq(mica_gguf_writer_write(w, data[i], (size_t)nbytes[i], &d), MICA_OK);
    cr_assert_eq(access(path, F_OK), -1, "the target appears only at finish");
    cr_assert_eq(mica_gguf_writer_finish(w, &d), MICA_OK, "%s", d.msg);
    mica_gguf_writer_release(w);
    cr_assert_eq(dir_entries(), 1, "no temporary file left");

    mica_gguf_t *f;
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_gguf_version(f), 3);
    cr_assert_eq(mica_gguf_alignment(f), 32);
    cr_assert_eq(mica_gguf_kv_count(f), 10); /* nine and general.alignment */
    uint64_t u;
    int64_t i64;
    double x;
    bool b;
    mica_gguf_str_t s;
    cr_assert(mica_gguf_get_u64(f, "k.u32", &u) && u == 4000000000u);
    cr_assert_eq(mica_gguf_find(f, "k.u32")->type, MICA_GGUF_UINT32);
    cr_assert(mica_gguf_get_i64(f, "k.i32", &i64) && i64 == -123456);
    cr_assert_eq(mica_gguf_find(f, "k.i32")->type, MICA_GGUF_INT32);
    cr_assert(mica_gguf_get_f64(f, "k.f32", &x) && (float)x == 0.1f);
    cr_assert(mica_gguf_get_bool(f, "k.bool", &b) && b);
    cr_assert(mica_gguf_get_str(f, "k.str", &s) && mica_gguf_str_eq(s, "text"));
    const mica_gguf_kv_t *kv = mica_gguf_find(f, "k.strs");
    cr_assert(kv && kv->elem_type == MICA_GGUF_STRING && kv->count == 4);
    for (uint64_t k = 0; k < 4; k++)
        cr_assert(mica_gguf_array_str(kv, k, &s) && mica_gguf_str_eq(s, strs[k]));
    kv = mica_gguf_find(f, "k.ints");
    cr_assert(kv && kv->elem_type == MICA_GGUF_INT32 && kv->count == 4);
    for (uint64_t k = 0; k < 4; k++)
        cr_assert(mica_gguf_array_i64(kv, k, &i64) && i64 == ints[k]);
    kv = mica_gguf_find(f, "k.floats");
    cr_assert(kv && kv->elem_type == MICA_GGUF_FLOAT32 && kv->count == 3);
    for (uint64_t k = 0; k < 3; k++)
        cr_assert(mica_gguf_array_f64(kv, k, &x) && (float)x == floats[k]);
    kv = mica_gguf_find(f, "k.empty");
    cr_assert(kv && kv->count == 0);

    cr_assert_eq(mica_gguf_data_offset(f) % 32, 0);
    cr_assert_eq(mica_gguf_tensor_count(f), 4);
    for (int i = 0; i < 4; i++) {
        const mica_gguf_tensor_t *t = mica_gguf_find_tensor(f, ts[i].name);
        cr_assert(t, "%s", ts[i].name);
        cr_assert_eq(t->dtype, ts[i].t);
        cr_assert_eq(t->n_dims, ts[i].n_dims);
        for (int k = 0; k < ts[i].n_dims; k++)
            cr_assert_eq(t->ne[k], ts[i].ne[k]);
        cr_assert_eq(t->offset % 32, 0);
        cr_assert_eq(t->nbytes, nbytes[i]);
        cr_assert_eq(memcmp(t->data, data[i], (size_t)nbytes[i]), 0, "%s bytes", ts[i].name);
    }
    mica_gguf_close(f);
}

Test(gguf_write, bad_arguments_are_errors_and_leave_nothing)
{
    const char *path = tmp("bad.gguf");
    mica_diag_t d = {0};
    mica_gguf_writer_t *w;
    int64_t ne[2] = {33, 2}, ok_ne[2] = {32, 1};
    cr_assert_neq(mica_gguf_writer_create(tmp("no/such/dir.gguf"), &w, &d), MICA_OK);
    cr_assert_eq(d.code, MICA_ERR_IO);
    cr_assert_neq(mica_gguf_writer_create(NULL, &w, &d), MICA_OK);
    cr_assert_neq(mica_gguf_writer_add_u32(NULL, "k", 1, &d), MICA_OK);

    cr_assert_eq(mica_gguf_writer_create(path, &w, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_u32(w, "k", 1, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_u32(w, "k", 2, &d), MICA_ERR_INVALID, "repeated key");
    cr_assert_eq(mica_gguf_writer_add_u32(w, "", 2, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_gguf_writer_add_u32(w, "general.alignment", 64, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_gguf_writer_add_str(w, "s", NULL, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_gguf_writer_add_tensor(w, "t", MICA_DTYPE_Q4_0, 2, ne, &d), MICA_ERR_INVALID,
                 "a row that is not whole blocks");
    cr_assert_eq(mica_gguf_writer_add_tensor(w, "t", MICA_DTYPE_Q4_0, 5, ok_ne, &d),
                 MICA_ERR_INVALID);
    cr_assert_eq(mica_gguf_writer_add_tensor(w, "t", MICA_DTYPE_I4, 2, ok_ne, &d),
                 MICA_ERR_UNSUPPORTED);
    cr_assert_eq(mica_gguf_writer_add_tensor(w, "t", MICA_DTYPE_Q4_0, 2, ok_ne, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_tensor(w, "t", MICA_DTYPE_Q4_0, 2, ok_ne, &d),
                 MICA_ERR_INVALID, "repeated tensor");
    uint8_t bytes[64] = {0};
    cr_assert_eq(mica_gguf_writer_write(w, bytes, 10, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_u32(w, "late", 1, &d), MICA_ERR_INVALID,
                 "metadata after data");
    cr_assert_eq(mica_gguf_writer_write(w, bytes, 20, &d), MICA_ERR_RANGE, "past the last tensor");
    mica_gguf_writer_release(w);
    cr_assert_eq(dir_entries(), 0, "released early: nothing left");

    cr_assert_eq(mica_gguf_writer_create(path, &w, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_add_tensor(w, "t", MICA_DTYPE_Q4_0, 2, ok_ne, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_write(w, bytes, 17, &d), MICA_OK);
    cr_assert_eq(mica_gguf_writer_finish(w, &d), MICA_ERR_INVALID, "a tensor one byte short");
    cr_assert(strstr(d.msg, "17 of its 18"), "%s", d.msg);
    mica_gguf_writer_release(w);
    cr_assert_eq(dir_entries(), 0, "failed finish: nothing left");
}

/* ------------------------------------------------------------------------ */
/* Synthesized models                                                        */

TestSuite(synth, .init = setup, .fini = teardown);

/* GPT-2's printable character for byte b, written out from its definition:
 * bytes '!'..'~', 0xA1..0xAC, 0xAE..0xFF stand for themselves, the others
 * are 256, 257, ... in byte order. */
static uint32_t gpt2_cp(int b)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        uint32_t next = 256;
        for (int c = 0; c < 256; c++) {
            bool keep = (c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || (c >= 0xae);
            table[c] = keep ? (uint32_t)c : next++;
        }
        ready = 1;
    }
    return table[b];
}

static uint32_t utf8_one(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    if (len == 1 && p[0] < 0x80)
        return p[0];
    if (len == 2 && (p[0] & 0xe0) == 0xc0)
        return (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
    return 0xffffffffu;
}

static void synth_ok(const char *preset, const char *type, const char *out, const char *seed,
                     const char *layers, const char *vocab)
{
    result_t r = run("synth", "--preset", preset, "-q", type, "-o", out, "--seed", seed,
                     "--layers", layers, "--vocab", vocab, NULL);
    cr_assert_eq(r.status, 0, "synth %s: %s", preset, r.err);
    cr_assert_str_empty(r.err, "no progress unless stderr is a terminal");
    mica_test_result_free(&r);
}

Test(synth, smollm2_has_the_published_shape_a_usable_tokenizer_and_finite_logits)
{
    const char *path = tmp("smol.gguf");
    synth_ok("smollm2-135m", "q8_0", path, "7", "2", "1024");
    mica_diag_t d = {0};
    mica_gguf_t *f;
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s", d.msg);

    /* HuggingFaceTB/SmolLM2-135M config.json, with --layers / --vocab */
    mica_model_config_t c;
    cr_assert_eq(mica_model_config_from_gguf(f, &c, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(c.arch, MICA_ARCH_LLAMA);
    cr_assert_eq(c.n_embd, 576);
    cr_assert_eq(c.n_layer, 2);
    cr_assert_eq(c.n_head, 9);
    cr_assert_eq(c.n_head_kv, 3);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.n_ff, 1536);
    cr_assert_eq(c.n_vocab, 1024);
    cr_assert_eq(c.n_ctx, 8192);
    cr_assert_float_eq(c.rope_theta, 100000.0, 1e-3);
    cr_assert_float_eq(c.norm_eps, 1e-5, 1e-12);
    cr_assert(c.tied_output);
    cr_assert_eq(mica_gguf_alignment(f), 32);
    const mica_gguf_tensor_t *t = mica_gguf_find_tensor(f, "blk.1.ffn_down.weight");
    cr_assert(t && t->dtype == MICA_DTYPE_Q8_0 && t->ne[0] == 1536 && t->ne[1] == 576);
    t = mica_gguf_find_tensor(f, "blk.0.attn_k.weight");
    cr_assert(t && t->ne[0] == 576 && t->ne[1] == 192);
    t = mica_gguf_find_tensor(f, "blk.0.attn_norm.weight");
    cr_assert(t && t->dtype == MICA_DTYPE_F32 && t->n_dims == 1);
    cr_assert_null(mica_gguf_find_tensor(f, "output.weight"));
    cr_assert_null(mica_gguf_find_tensor(f, "blk.2.attn_q.weight"));
    uint64_t ft;
    cr_assert(mica_gguf_get_u64(f, "general.file_type", &ft) && ft == 7);

    /* the vocabulary: 256 byte tokens, each merged token made of two
     * earlier ones as the merge list says */
    mica_vocab_t v;
    cr_assert_eq(mica_vocab_from_gguf_meta(mica_gguf_meta(f), &v, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(v.desc.n_tokens, 1024);
    bool seen[256] = {0};
    int bytes = 0;
    for (uint32_t i = 0; i < v.desc.n_tokens; i++) {
        uint32_t cp = utf8_one(v.desc.tokens[i].ptr, v.desc.tokens[i].len);
        for (int b = 0; b < 256; b++)
            if (cp == gpt2_cp(b) && !seen[b]) {
                seen[b] = true;
                bytes++;
            }
    }
    cr_assert_eq(bytes, 256);
    cr_assert_gt(v.desc.n_merges, 700);
    for (uint32_t m = 0; m < v.desc.n_merges; m++) {
        mica_vocab_str_t s = v.desc.merges[m];
        const char *sp = memchr(s.ptr, ' ', s.len);
        cr_assert(sp, "merge %u has no space", m);
        size_t nl = (size_t)(sp - s.ptr), nr = s.len - nl - 1;
        int64_t il = -1, ir = -1, ij = -1;
        for (uint32_t i = 0; i < v.desc.n_tokens; i++) {
            mica_vocab_str_t tk = v.desc.tokens[i];
            if (tk.len == nl && !memcmp(tk.ptr, s.ptr, nl))
                il = i;
            if (tk.len == nr && !memcmp(tk.ptr, sp + 1, nr))
                ir = i;
            if (tk.len == nl + nr && !memcmp(tk.ptr, s.ptr, nl) && !memcmp(tk.ptr + nl, sp + 1, nr))
                ij = i;
        }
        cr_assert(il >= 0 && ir >= 0 && ij >= 0, "merge %u: '%.*s'", m, (int)s.len, s.ptr);
        cr_assert(il < ij && ir < ij, "merge %u makes a token from later ones", m);
    }
    mica_tokenizer_t *tok;
    cr_assert_eq(mica_tokenizer_create(&v.desc, &tok, &d), MICA_OK, "%s", d.msg);
    size_t n_im;
    const char *im = mica_tokenizer_token_text(tok, mica_tokenizer_bos(tok), &n_im);
    cr_assert(n_im == 12 && !memcmp(im, "<|im_start|>", 12));
    cr_assert_eq(mica_tokenizer_token_type(tok, mica_tokenizer_bos(tok)), MICA_TOKEN_TYPE_CONTROL);
    cr_assert(mica_tokenizer_is_eog(tok, mica_tokenizer_eos(tok)));

    const char *text = "Hello world, the rain in Spain: 12345 \xc3\xa9t\xc3\xa9!";
    int32_t ids[128];
    size_t n;
    cr_assert_eq(mica_tokenizer_encode(tok, text, strlen(text), 0, ids, 128, &n, &d), MICA_OK);
    cr_assert_lt(n, strlen(text), "merges shorten the text");
    char back[256];
    size_t blen;
    cr_assert_eq(mica_tokenizer_decode(tok, ids, n, 0, back, sizeof back, &blen, &d), MICA_OK);
    cr_assert(blen == strlen(text) && !memcmp(back, text, blen), "%.*s", (int)blen, back);
    const char *chat = "<|im_start|>user\nhi<|im_end|>";
    cr_assert_eq(mica_tokenizer_encode(tok, chat, strlen(chat), MICA_TOKENIZER_PARSE_SPECIAL, ids,
                                       128, &n, &d), MICA_OK);
    cr_assert_eq(ids[0], mica_tokenizer_bos(tok));
    cr_assert_eq(ids[n - 1], mica_tokenizer_eos(tok));
    mica_gguf_str_t tmpl;
    cr_assert(mica_gguf_get_str(f, "tokenizer.chat_template", &tmpl));
    cr_assert(memmem(tmpl.ptr, tmpl.len, "<|im_start|>", 12));

    /* a forward pass on the reference backend */
    int32_t prompt[4];
    size_t np;
    cr_assert_eq(mica_tokenizer_encode(tok, "the rain", 8, 0, prompt, 4, &np, &d), MICA_OK);
    mica_tokenizer_release(tok);
    mica_vocab_deinit(&v);
    mica_gguf_close(f);
    mica_ref_model_t *m;
    cr_assert_eq(mica_ref_model_open(path, NULL, &m, &d), MICA_OK, "%s", d.msg);
    float *logits = malloc(np * 1024 * sizeof *logits);
    cr_assert_eq(mica_ref_model_eval(m, prompt, (int32_t)np, true, logits, &d), MICA_OK, "%s",
                 d.msg);
    double sum2 = 0;
    for (size_t i = 0; i < np * 1024; i++) {
        cr_assert(isfinite(logits[i]));
        cr_assert_lt(fabsf(logits[i]), 50.0f);
        sum2 += (double)logits[i] * logits[i];
    }
    cr_assert_gt(sum2 / (double)(np * 1024), 1e-4, "logits are not all zero");
    free(logits);
    mica_ref_model_close(m);
}

Test(synth, tinyllama_has_a_sentencepiece_vocabulary_and_its_own_head)
{
    const char *path = tmp("tiny.gguf");
    synth_ok("tinyllama-1.1b", "q4_0", path, "1", "1", "600");
    mica_diag_t d = {0};
    mica_gguf_t *f;
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s", d.msg);
    /* TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json */
    mica_model_config_t c;
    cr_assert_eq(mica_model_config_from_gguf(f, &c, &d), MICA_OK, "%s", d.msg);
    cr_assert(c.n_embd == 2048 && c.n_head == 32 && c.n_head_kv == 4 && c.n_ff == 5632);
    cr_assert(c.n_ctx == 2048 && c.n_vocab == 600 && !c.tied_output);
    cr_assert_float_eq(c.rope_theta, 10000.0, 1e-6);
    const mica_gguf_tensor_t *t = mica_gguf_find_tensor(f, "output.weight");
    cr_assert(t && t->dtype == MICA_DTYPE_Q4_0 && t->ne[1] == 600);

    mica_vocab_t v;
    cr_assert_eq(mica_vocab_from_gguf_meta(mica_gguf_meta(f), &v, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(v.desc.kind, MICA_VOCAB_SPM);
    cr_assert_eq(v.desc.unk_id, 0);
    cr_assert_eq(v.desc.bos_id, 1);
    cr_assert_eq(v.desc.eos_id, 2);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        mica_vocab_str_t s = v.desc.tokens[3 + b];
        cr_assert(s.len == 6 && !memcmp(s.ptr, want, 6), "byte token %d", b);
        cr_assert_eq(v.desc.types[3 + b], MICA_TOKEN_TYPE_BYTE);
    }
    for (uint32_t i = 260; i < v.desc.n_tokens; i++)
        cr_assert_lt(v.desc.scores[i], v.desc.scores[i - 1], "later pieces score lower");
    mica_tokenizer_t *tok;
    cr_assert_eq(mica_tokenizer_create(&v.desc, &tok, &d), MICA_OK, "%s", d.msg);
    const char *text = "Hello world, the rain \xe2\x82\xac 42";
    int32_t ids[128];
    size_t n;
    cr_assert_eq(mica_tokenizer_encode(tok, text, strlen(text), 0, ids, 128, &n, &d), MICA_OK);
    char back[256];
    size_t blen;
    cr_assert_eq(mica_tokenizer_decode(tok, ids, n, MICA_TOKENIZER_DECODE_STRIP_SPACE, back,
                                       sizeof back, &blen, &d), MICA_OK);
    cr_assert(blen == strlen(text) && !memcmp(back, text, blen), "%.*s", (int)blen, back);
    mica_tokenizer_release(tok);
    mica_vocab_deinit(&v);
    mica_gguf_close(f);
}

Test(synth, qwen_has_biases_and_its_published_numbers)
{
    const char *path = tmp("qwen.gguf");
    synth_ok("qwen2.5-0.5b", "q4_1", path, "1", "1", "512");
    mica_diag_t d = {0};
    mica_gguf_t *f;
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s", d.msg);
    /* Qwen/Qwen2.5-0.5B config.json */
    mica_model_config_t c;
    cr_assert_eq(mica_model_config_from_gguf(f, &c, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(c.arch, MICA_ARCH_QWEN2);
    cr_assert(c.n_embd == 896 && c.n_head == 14 && c.n_head_kv == 2 && c.n_ff == 4864);
    cr_assert(c.n_ctx == 32768 && c.tied_output);
    cr_assert_float_eq(c.rope_theta, 1e6, 1e-3);
    cr_assert_float_eq(c.norm_eps, 1e-6, 1e-13);
    const mica_gguf_tensor_t *t = mica_gguf_find_tensor(f, "blk.0.attn_k.bias");
    cr_assert(t && t->dtype == MICA_DTYPE_F32 && t->ne[0] == 128);
    mica_gguf_close(f);
    mica_ref_model_t *m;
    cr_assert_eq(mica_ref_model_open(path, NULL, &m, &d), MICA_OK, "%s", d.msg);
    int32_t prompt[2] = {300, 301};
    float logits[512];
    cr_assert_eq(mica_ref_model_eval(m, prompt, 2, false, logits, &d), MICA_OK, "%s", d.msg);
    for (int i = 0; i < 512; i++)
        cr_assert(isfinite(logits[i]) && fabsf(logits[i]) < 50.0f);
    mica_ref_model_close(m);
}

Test(synth, the_same_seed_writes_the_same_bytes)
{
    const char *a = tmp("a.gguf"), *b = tmp("b.gguf"), *c = tmp("c.gguf");
    synth_ok("smollm2-135m", "q4_0", a, "5", "1", "512");
    synth_ok("smollm2-135m", "q4_0", b, "5", "1", "512");
    synth_ok("smollm2-135m", "q4_0", c, "6", "1", "512");
    size_t na, nb, nc;
    char *fa = mica_test_read_file(a, &na), *fb = mica_test_read_file(b, &nb),
         *fc = mica_test_read_file(c, &nc);
    cr_assert(fa && fb && fc);
    cr_assert(na == nb && !memcmp(fa, fb, na), "same seed, same bytes");
    mica_diag_t d = {0};
    mica_gguf_t *ga, *gc;
    cr_assert_eq(mica_gguf_open(a, &ga, &d), MICA_OK);
    cr_assert_eq(mica_gguf_open(c, &gc, &d), MICA_OK);
    cr_assert_eq(mica_gguf_tensor_count(ga), mica_gguf_tensor_count(gc));
    for (uint64_t i = 0; i < mica_gguf_tensor_count(ga); i++) {
        const mica_gguf_tensor_t *ta = mica_gguf_tensor_at(ga, i), *tc = mica_gguf_tensor_at(gc, i);
        cr_assert_eq(ta->nbytes, tc->nbytes);
        cr_assert_neq(memcmp(ta->data, tc->data, (size_t)ta->nbytes), 0,
                      "another seed, other weights (tensor %llu)", (unsigned long long)i);
    }
    mica_gguf_close(ga);
    mica_gguf_close(gc);
    free(fa);
    free(fb);
    free(fc);
}

Test(synth, bad_command_lines_exit_2_and_failures_exit_1_leaving_nothing)
{
    const char *out = tmp("x.gguf");
    result_t r = run("synth", "--preset", "gpt5", "-q", "q4_0", "-o", out, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    cr_assert(strstr(r.err, "gpt5") && strstr(r.err, "smollm2-135m") && strstr(r.err, "tinyllama-1.1b"),
              "%s", r.err);
    mica_test_result_free(&r);
    r = run("synth", "--preset", "smollm2-135m", "-q", "q3_k", "-o", out, NULL);
    cr_assert_eq(r.status, 2);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    cr_assert(strstr(r.err, "q3_k") && strstr(r.err, "q4_1") && strstr(r.err, "f16"), "%s", r.err);
    mica_test_result_free(&r);
    const char *const bad[][8] = {
        {"synth", "--preset", "smollm2-135m", "-q", "f16", NULL},
        {"synth", "--preset", "smollm2-135m", "-q", "f16", "-o", out, "--layers"},
        {"synth", "--preset", "smollm2-135m", "-o", out, "--vocab", "100", NULL},
        {"synth", "--preset", "smollm2-135m", "-q", "f16", "-o", out, "--bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = run(bad[i][0], bad[i][1], bad[i][2], bad[i][3], bad[i][4], bad[i][5], bad[i][6],
                bad[i][7], NULL);
        cr_assert_eq(r.status, 2, "case %zu: %s", i, r.err);
        cr_assert_eq(count_lines(r.err), 1, "case %zu: %s", i, r.err);
        mica_test_result_free(&r);
    }
    cr_assert_eq(dir_entries(), 0);

    const char *nodir = tmp("missing/x.gguf");
    r = run("synth", "--preset", "smollm2-135m", "-q", "q4_0", "-o", nodir, "--layers", "1",
            "--vocab", "512", NULL);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    cr_assert(!strncmp(r.err, nodir, strlen(nodir)), "names the file: %s", r.err);
    mica_test_result_free(&r);

    /* the disk fills up half way: exit 1, no file, no temporary file */
    r = run_limited(1 << 20, "synth", "--preset", "smollm2-135m", "-q", "f32", "-o", out,
                    "--layers", "1", "--vocab", "512", NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    cr_assert(!strncmp(r.err, out, strlen(out)), "names the file: %s", r.err);
    mica_test_result_free(&r);
    cr_assert_eq(dir_entries(), 0, "nothing half-written");
}
