/* The quantize pass (passes/quantize.h) and its ops against independent
 * oracles: GGUF transcoding against ir/quant.c's dequantization of the
 * golden files, bit for bit; requantization against a plain-loop min/max
 * quantizer; act_scale / act_quant / qmatmul / wmatmul against plain loops;
 * quantized static programs against ../shared/golden exact logits and the
 * llama.cpp yardstick; SmolLM2-135M against its own f32 compile. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "program.h"
#include "quant.h"
#include "quantize.h"
#include "ref.h"
#include "ref_program.h"
#include "test_model.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* plain-loop helpers                                                        */

static float f16v(const uint8_t *p, int64_t i)
{
    return mica_f16_to_f32((uint16_t)(p[2 * i] | (unsigned)p[2 * i + 1] << 8));
}

static int qv(mica_dtype_t qt, const uint8_t *q, int64_t e)
{
    return qt == MICA_DTYPE_I8 ? (int)(int8_t)q[e] : (int)((q[e / 2] >> (4 * (e % 2))) & 15);
}

/* Element e of a [rows, k] group-quantized tensor: s * q + m in float. */
static float deq(mica_dtype_t qt, const uint8_t *q, const uint8_t *s, const uint8_t *m, int64_t k,
                 int64_t group, int64_t e)
{
    int64_t gi = (e / k) * (k / group) + (e % k) / group;
    return f16v(s, gi) * (float)qv(qt, q, e) + f16v(m, gi);
}

static uint64_t q_bytes(mica_dtype_t qt, int64_t numel)
{
    return (uint64_t)(qt == MICA_DTYPE_U4 ? numel / 2 : numel);
}

/* ------------------------------------------------------------------------ */
/* (a) transcoding is bit-exact                                              */

static void check_transcode(const char *file)
{
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden(file), &f, &d), MICA_OK, "%s", d.msg);
    int checked = 0;
    for (uint64_t t = 0; t < mica_gguf_tensor_count(f); t++) {
        const mica_gguf_tensor_t *tn = mica_gguf_tensor_at(f, t);
        if (tn->n_dims != 2)
            continue;
        const int64_t k = tn->ne[0], rows = tn->ne[1], numel = k * rows;
        const mica_dtype_t qts[2] = {MICA_DTYPE_U4, MICA_DTYPE_I8};
        float *want = malloc((size_t)numel * sizeof *want);
        for (int64_t r = 0; r < rows; r++)
            cr_assert_eq(mica_dequantize_row(tn->dtype, tn->data + r * mica_dtype_row_bytes(tn->dtype, k),
                                             want + r * k, k, &d),
                         MICA_OK, "%s", d.msg);
        for (int i = 0; i < 2; i++) {
            mica_dtype_t qt = qts[i];
            if (!mica_quant_is_lossless(tn->dtype, qt))
                continue;
            uint8_t *q = malloc(q_bytes(qt, numel)), *s = malloc((size_t)numel / 16),
                    *m = malloc((size_t)numel / 16);
            double e = -1;
            cr_assert_eq(mica_quant_tensor(tn->dtype, tn->data, rows, k, qt, 32, q, s, m, &e, &d),
                         MICA_OK, "%s", d.msg);
            int64_t bad = 0;
            for (int64_t j = 0; j < numel; j++)
                bad += deq(qt, q, s, m, k, 32, j) != want[j];
            cr_expect_eq(bad, 0, "%s %.*s -> %s: %lld of %lld elements differ", file,
                         (int)tn->name.len, tn->name.ptr, mica_dtype_name(qt), (long long)bad,
                         (long long)numel);
            cr_expect_eq(e, 0.0, "%.*s: nmse %g", (int)tn->name.len, tn->name.ptr, e);
            checked++;
            free(q);
            free(s);
            free(m);
        }
        free(want);
    }
    cr_assert_geq(checked, 10, "%s: only %d tensors transcoded", file, checked);
    cr_log_info("%s: %d tensor transcodes bit-exact", file, checked);
    mica_gguf_close(f);
}

Test(quantize, transcode_llama_q4_0) { check_transcode("llama-tiny.q4_0.gguf"); }
Test(quantize, transcode_llama_q4_1) { check_transcode("llama-tiny.q4_1.gguf"); }
Test(quantize, transcode_llama_q8_0) { check_transcode("llama-tiny.q8_0.gguf"); }
Test(quantize, transcode_qwen2_q4_0) { check_transcode("qwen2-tiny.q4_0.gguf"); }
Test(quantize, transcode_qwen2_q4_1) { check_transcode("qwen2-tiny.q4_1.gguf"); }
Test(quantize, transcode_qwen2_q8_0) { check_transcode("qwen2-tiny.q8_0.gguf"); }

/* ------------------------------------------------------------------------ */
/* (b) requantization against a plain-loop min/max oracle                    */

/* Rows of kind 0 uniform [-1, 1), 1 a narrow band around 2.5, 2 constant,
 * 3 small values with one outlier, 4 all zero. */
static void fill_row(mica_test_rng_t *rng, int kind, float *x, int64_t k)
{
    for (int64_t j = 0; j < k; j++) {
        float u = mica_test_rng_float(rng);
        x[j] = kind == 0 ? u : kind == 1 ? 2.5f + 1e-3f * u : kind == 2 ? -0.75f
             : kind == 3 ? 0.01f * u : 0.0f;
    }
    if (kind == 3)
        x[k / 3] = 3.0f;
}

static void check_requant(mica_dtype_t qt, int64_t group)
{
    enum { ROWS = 10, K = 256 };
    float x[ROWS * K];
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 77 + (uint64_t)group);
    for (int r = 0; r < ROWS; r++)
        fill_row(&rng, r % 5, x + r * K, K);
    const int64_t ng = K / group;
    uint8_t q[ROWS * K], s[2 * ROWS * K], m[2 * ROWS * K];
    double e = -1;
    mica_diag_t d = {0};
    cr_assert_eq(mica_quant_tensor(MICA_DTYPE_F32, x, ROWS, K, qt, group, q, s, m, &e, &d),
                 MICA_OK, "%s", d.msg);
    const bool i8 = qt == MICA_DTYPE_I8;
    const double levels = i8 ? 255.0 : 15.0;
    double num = 0, den = 0;
    for (int r = 0; r < ROWS; r++)
        for (int64_t gi = 0; gi < ng; gi++) {
            const float *xg = x + r * K + gi * group;
            float lo = xg[0], hi = xg[0];
            for (int64_t j = 0; j < group; j++) {
                lo = fminf(lo, xg[j]);
                hi = fmaxf(hi, xg[j]);
            }
            double s_exact = ((double)hi - lo) / levels;
            float s16 = mica_f16_to_f32(mica_f32_to_f16((float)s_exact));
            double m_exact = i8 ? lo + 128.0 * s16 : lo;
            float m16 = mica_f16_to_f32(mica_f32_to_f16((float)m_exact));
            int64_t g = r * ng + gi;
            cr_assert_eq(f16v(s, g), s16, "row %d group %lld: scale %g, want %g", r, (long long)gi,
                         (double)f16v(s, g), (double)s16);
            cr_assert_eq(f16v(m, g), m16, "row %d group %lld: min %g, want %g", r, (long long)gi,
                         (double)f16v(m, g), (double)m16);
            /* the error bound: half a step, plus what rounding s and m to f16 moved */
            double slack = fabs((double)m16 - m_exact) + (levels + 1) * fabs((double)s16 - s_exact) +
                           1e-6 * fmax(fabs(lo), fabs(hi));
            for (int64_t j = 0; j < group; j++) {
                int64_t el = r * K + gi * group + j;
                double want_q = s16 > 0 ? round(((double)xg[j] - m16) / s16) : 0;
                want_q = fmin(fmax(want_q, i8 ? -128 : 0), i8 ? 127 : 15);
                cr_assert_eq(qv(qt, q, el), (int)want_q, "element %lld: q %d, want %g", (long long)el,
                             qv(qt, q, el), want_q);
                float y = s16 * (float)want_q + m16;
                double err = fabs((double)y - xg[j]);
                cr_assert_leq(err, s16 / 2.0 + slack, "row %d element %lld: error %g, step %g", r,
                              (long long)j, err, (double)s16);
                num += err * err;
                den += (double)xg[j] * xg[j];
            }
        }
    cr_expect_leq(fabs(e - num / den), 1e-9 * (num / den), "nmse %g, oracle %g", e, num / den);
    cr_log_info("requant f32 -> %s g%lld: nmse %.3e", mica_dtype_name(qt), (long long)group, e);
}

Test(quantize, requant_u4_g32) { check_requant(MICA_DTYPE_U4, 32); }
Test(quantize, requant_u4_g64) { check_requant(MICA_DTYPE_U4, 64); }
Test(quantize, requant_u4_g128) { check_requant(MICA_DTYPE_U4, 128); }
Test(quantize, requant_i8_g32) { check_requant(MICA_DTYPE_I8, 32); }
Test(quantize, requant_i8_g128) { check_requant(MICA_DTYPE_I8, 128); }

/* A block source that does not transcode (Q8_0 -> u4, Q4_0 -> u4 at 64):
 * per-element error within half a step of the dequantized values. */
Test(quantize, requant_from_gguf_blocks)
{
    const char *files[2] = {"llama-tiny.q8_0.gguf", "llama-tiny.q4_0.gguf"};
    for (int fi = 0; fi < 2; fi++) {
        mica_gguf_t *f = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_gguf_open(mica_test_golden(files[fi]), &f, &d), MICA_OK, "%s", d.msg);
        const char *tname = fi == 0 ? "blk.0.ffn_down.weight" : "blk.0.attn_q.weight";
        const mica_gguf_tensor_t *tn = mica_gguf_find_tensor(f, tname);
        cr_assert(tn);
        const int64_t k = tn->ne[0], rows = tn->ne[1], group = 32 * (fi + 1);
        cr_assert_eq(k % group, 0);
        float *x = malloc((size_t)(k * rows) * sizeof *x);
        for (int64_t r = 0; r < rows; r++)
            cr_assert_eq(mica_dequantize_row(tn->dtype, tn->data + r * mica_dtype_row_bytes(tn->dtype, k),
                                             x + r * k, k, &d), MICA_OK);
        uint8_t *q = malloc((size_t)(k * rows)), *s = malloc((size_t)(k * rows)), *m = malloc((size_t)(k * rows));
        double e;
        cr_assert_eq(mica_quant_tensor(tn->dtype, tn->data, rows, k, MICA_DTYPE_U4, group, q, s, m, &e,
                                       &d), MICA_OK, "%s", d.msg);
        for (int64_t j = 0; j < k * rows; j++) {
            int64_t gi = (j / k) * (k / group) + (j % k) / group;
            double err = fabs((double)deq(MICA_DTYPE_U4, q, s, m, k, group, j) - x[j]);
            cr_assert_leq(err, 0.51 * f16v(s, gi) + 2e-3 * fabs(f16v(m, gi)) + 1e-7, "element %lld",
                          (long long)j);
        }
        cr_log_info("%s %s -> u4 g%lld: nmse %.3e", files[fi], tname, (long long)group, e);
        free(x);
        free(q);
        free(s);
        free(m);
        mica_gguf_close(f);
    }
}

/* ------------------------------------------------------------------------ */
/* (c) the ref kernels against plain loops                                   */

/* y = x [T, K] through act_scale/act_quant/qmatmul (ag, wg) and wmatmul
 * (wg) on W [N, K] quantized to qt, against plain loops. */
static void check_kernels(int64_t T, int64_t K, int64_t N, int64_t ag, int64_t wg, mica_dtype_t qt)
{
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, (uint64_t)(T * 1000 + K * 10 + N + ag + wg));
    float *x = malloc((size_t)(T * K) * sizeof *x), *w = malloc((size_t)(N * K) * sizeof *w);
    for (int64_t i = 0; i < T * K; i++)
        x[i] = (i % 17 == 3) ? 0.0f : 2.0f * mica_test_rng_float(&rng);
    for (int64_t j = 0; j < K; j++)
        x[j] = 0.0f; /* an all-zero row: scale 0, quantized to 0 */
    for (int64_t i = 0; i < N * K; i++)
        w[i] = 0.5f * mica_test_rng_float(&rng) + 0.1f;
    uint8_t *q = calloc((size_t)(N * K), 1), *s = malloc((size_t)(N * K / wg) * 2),
            *m = malloc((size_t)(N * K / wg) * 2);
    mica_diag_t d = {0};
    cr_assert_eq(mica_quant_tensor(MICA_DTYPE_F32, w, N, K, qt, wg, q, s, m, NULL, &d), MICA_OK,
                 "%s", d.msg);

    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t xs_shape[2] = {T, K}, ws_shape[2] = {N, K / wg}, wq_shape[2] = {N, K};
    int32_t xi = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xs_shape));
    int32_t wi = mica_build_weight(g, "w.q", mica_type_make(qt, 2, wq_shape), q, q_bytes(qt, N * K));
    int32_t si = mica_build_weight(g, "w.s", mica_type_make(MICA_DTYPE_F16, 2, ws_shape), s,
                                   (uint64_t)(N * K / wg) * 2);
    int32_t mi = mica_build_weight(g, "w.m", mica_type_make(MICA_DTYPE_F16, 2, ws_shape), m,
                                   (uint64_t)(N * K / wg) * 2);
    int32_t sc = mica_test_op(g, MICA_OP_ACT_SCALE, 1, &xi, ag, 0);
    int32_t xq = mica_test_op(g, MICA_OP_ACT_QUANT, 2, (int32_t[]){xi, sc}, ag, 0);
    int32_t y8 = mica_test_op(g, MICA_OP_QMATMUL, 5, (int32_t[]){xq, sc, wi, si, mi}, ag, wg);
    int32_t y16 = mica_test_op(g, MICA_OP_WMATMUL, 4, (int32_t[]){xi, wi, si, mi}, wg, 0);
    mica_build_output(g, "s", sc);
    mica_build_output(g, "q", xq);
    mica_build_output(g, "y8", y8);
    mica_build_output(g, "y16", y16);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    mica_ref_tensor_t in = {"x", mica_type_make(MICA_DTYPE_F32, 2, xs_shape), x};
    mica_ref_outputs_t *o = NULL;
    cr_assert_eq(mica_ref_execute(g, &in, 1, &o, &d), MICA_OK, "%s", d.msg);
    const float *ys = mica_ref_outputs_find(o, "s")->data, *yq = mica_ref_outputs_find(o, "q")->data;
    const float *y8v = mica_ref_outputs_find(o, "y8")->data, *y16v = mica_ref_outputs_find(o, "y16")->data;

    const int64_t nag = K / ag;
    float *xs_ref = malloc((size_t)(T * nag) * sizeof *xs_ref);
    int *xq_ref = malloc((size_t)(T * K) * sizeof *xq_ref);
    for (int64_t t = 0; t < T; t++)
        for (int64_t a = 0; a < nag; a++) {
            float mx = 0;
            for (int64_t j = a * ag; j < (a + 1) * ag; j++)
                mx = fmaxf(mx, fabsf(x[t * K + j]));
            float sv = (float)(mx / 127.0);
            xs_ref[t * nag + a] = sv;
            cr_assert_eq(ys[t * nag + a], sv, "act_scale [%lld, %lld]", (long long)t, (long long)a);
            for (int64_t j = a * ag; j < (a + 1) * ag; j++) {
                double v = sv == 0 ? 0 : (double)x[t * K + j] / sv;
                int qq = (int)(v < 0 ? -floor(-v + 0.5) : floor(v + 0.5)); /* half away from 0 */
                qq = qq < -127 ? -127 : qq > 127 ? 127 : qq;
                xq_ref[t * K + j] = qq;
                cr_assert_eq(yq[t * K + j], (float)qq, "act_quant [%lld, %lld]", (long long)t,
                             (long long)j);
            }
        }
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double y_q = 0, y_w = 0, mag = 0;
            for (int64_t j = 0; j < K; j++) {
                double wv = deq(qt, q, s, m, K, wg, n * K + j);
                double xv = (double)xq_ref[t * K + j] * xs_ref[t * nag + j / ag];
                y_q += xv * wv;
                y_w += (double)x[t * K + j] * wv;
                mag += fabs(xv * wv) + fabs((double)x[t * K + j] * wv);
            }
            double tol = 1e-6 * mag + 1e-30;
            cr_assert_leq(fabs(y8v[t * N + n] - y_q), tol, "qmatmul [%lld, %lld]: %g, want %g",
                          (long long)t, (long long)n, (double)y8v[t * N + n], y_q);
            cr_assert_leq(fabs(y16v[t * N + n] - y_w), tol, "wmatmul [%lld, %lld]: %g, want %g",
                          (long long)t, (long long)n, (double)y16v[t * N + n], y_w);
        }
    mica_ref_outputs_release(o);
    mica_graph_release(g);
    free(x);
    free(w);
    free(q);
    free(s);
    free(m);
    free(xs_ref);
    free(xq_ref);
}

Test(quantize_ops, w4_groups_32_64) { check_kernels(3, 128, 5, 32, 64, MICA_DTYPE_U4); }
Test(quantize_ops, w8_groups_64_32) { check_kernels(4, 128, 7, 64, 32, MICA_DTYPE_I8); }
Test(quantize_ops, k_equals_group) { check_kernels(2, 32, 3, 32, 32, MICA_DTYPE_U4); }
Test(quantize_ops, t1_n1) { check_kernels(1, 64, 1, 32, 32, MICA_DTYPE_I8); }
Test(quantize_ops, small_groups) { check_kernels(5, 48, 9, 16, 8, MICA_DTYPE_U4); }

/* The shape rules refuse what the ops cannot mean. */
Test(quantize_ops, shape_rules_refuse)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t xs[2] = {2, 48}, ws[2] = {4, 3}, wq[2] = {4, 48};
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xs));
    cr_assert_lt(mica_test_op(g, MICA_OP_ACT_SCALE, 1, &x, 32, 0), 0);
    cr_assert(strstr(g->error.msg, "group 32 does not divide the row of 48"), "%s", g->error.msg);

    mica_graph_release(g);
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xs));
    int32_t s24 = mica_test_op(g, MICA_OP_ACT_SCALE, 1, &x, 24, 0);
    int32_t q24 = mica_test_op(g, MICA_OP_ACT_QUANT, 2, (int32_t[]){x, s24}, 24, 0);
    int32_t wqi = mica_build_weight(g, "w.q", mica_type_make(MICA_DTYPE_I8, 2, wq), NULL, 0);
    int32_t wsi = mica_build_weight(g, "w.s", mica_type_make(MICA_DTYPE_F16, 2, ws), NULL, 0);
    cr_assert_geq(q24, 0, "%s", g->error.msg);
    /* activation groups of 24, weight groups of 16: neither divides the other */
    cr_assert_lt(mica_test_op(g, MICA_OP_QMATMUL, 5, (int32_t[]){q24, s24, wqi, wsi, wsi}, 24, 16), 0);
    cr_assert(strstr(g->error.msg, "do not divide one another"), "%s", g->error.msg);
    /* f32 scales where f16 is required */
    int32_t wf = mica_build_weight(g, "w.f", mica_type_make(MICA_DTYPE_F32, 2, ws), NULL, 0);
    cr_assert_lt(mica_test_op(g, MICA_OP_WMATMUL, 4, (int32_t[]){x, wqi, wf, wf}, 16, 0), 0);
    /* a float weight where u4/i8 is required */
    cr_assert_lt(mica_test_op(g, MICA_OP_WMATMUL, 4, (int32_t[]){x, wf, wsi, wsi}, 16, 0), 0);
    mica_graph_release(g);
}

Test(quantize, bad_options)
{
    mica_graph_t *g = NULL;
    mica_const_store_t *st = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    cr_assert_eq(mica_const_store_create(&st, &d), MICA_OK);
    mica_quant_options_t o = {.group = 48};
    cr_assert_eq(mica_pass_quantize(&o, st, &g, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "group 48"), "%s", d.msg);
    o = (mica_quant_options_t){.act_group = 20};
    cr_assert_eq(mica_pass_quantize(&o, st, &g, &d), MICA_ERR_INVALID);
    o = (mica_quant_options_t){.mode = MICA_QUANT_MODE_COUNT};
    cr_assert_eq(mica_pass_quantize(&o, st, &g, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_quant_mode_from_name("w4a16"), MICA_QUANT_W4A16);
    cr_assert_eq(mica_quant_mode_from_name("w3a8"), MICA_QUANT_MODE_COUNT);
    mica_graph_release(g);
    mica_const_store_release(st);
}

/* Blobs are 64-byte aligned, stay where they are while the store grows,
 * and are found by key and tag. */
Test(quantize, const_store)
{
    mica_const_store_t *st = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_const_store_create(&st, &d), MICA_OK);
    enum { N = 300 };
    unsigned char *ptrs[N];
    int key[N];
    for (int i = 0; i < N; i++) {
        uint64_t size = (uint64_t)(1 + (i * 7919) % 5000) + (i % 50 == 0 ? (2u << 20) : 0);
        void *p;
        char tag[16];
        snprintf(tag, sizeof tag, "t%d", i % 3);
        cr_assert_eq(mica_const_store_add(st, &key[i], tag, size, &p, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq((uintptr_t)p % MICA_CONST_STORE_ALIGN, 0);
        ptrs[i] = p;
        memset(p, i & 0xff, size);
    }
    cr_assert_eq(mica_const_store_count(st), N);
    void *p;
    cr_assert_eq(mica_const_store_add(st, &key[5], "t2", 8, &p, &d), MICA_ERR_INVALID);
    for (int i = 0; i < N; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "t%d", i % 3);
        uint64_t nb;
        cr_assert_eq(mica_const_store_find(st, &key[i], tag, &nb), ptrs[i]);
        cr_assert_eq(mica_const_store_blob(st, i, NULL), ptrs[i]);
        cr_assert_eq(ptrs[i][nb - 1], i & 0xff, "blob %d was overwritten", i);
        cr_assert_eq(ptrs[i][0], i & 0xff, "blob %d was overwritten", i);
    }
    cr_assert_null(mica_const_store_find(st, &key[0], "t1", NULL));
    mica_const_store_release(st);
}

/* ------------------------------------------------------------------------ */
/* (d) quantized programs against the golden exact logits                    */

/* llama.cpp's NMSE against exact for MODEL.TYPE, from golden/yardstick.tsv. */
static double yardstick(const char *model_type)
{
    size_t len;
    char *text = mica_test_read_file(mica_test_golden("yardstick.tsv"), &len);
    cr_assert(text, "cannot read yardstick.tsv");
    double v = -1;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        char *tab = strchr(line, '\t');
        if (tab && (size_t)(tab - line) == strlen(model_type) &&
            strncmp(line, model_type, strlen(model_type)) == 0)
            v = strtod(tab + 1, NULL);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    cr_assert_gt(v, 0, "no yardstick for %s", model_type);
    return v;
}

/* Builds the program of FILE, quantizes both graphs with one store, and
 * runs the ids through prefill (in chunks) and then, if asked, decode. */
static void run_quantized(const char *file, const mica_quant_options_t *opt, int64_t chunk,
                          int64_t n_ctx, const int32_t *ids, int32_t n, float *out_prefill,
                          float *out_decode, mica_diag_t *d_out)
{
    mica_test_model_t x;
    mica_test_program_open(&x, file, chunk, n_ctx, NULL);
    mica_program_t *p = x.p;
    mica_ref_program_t *r = NULL;
    mica_diag_t d = {0};
    if (opt) {
        cr_assert_eq(mica_pass_quantize(opt, p->consts, &p->prefill, &d), MICA_OK, "%s", d.msg);
        int64_t blobs = mica_const_store_count(p->consts);
        uint64_t bytes = mica_const_store_bytes(p->consts);
        cr_assert_eq(mica_pass_quantize(opt, p->consts, &p->decode, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_const_store_count(p->consts), blobs, "decode quantized weights again");
        cr_assert_eq(mica_const_store_bytes(p->consts), bytes);
        cr_assert_eq(mica_graph_verify(p->prefill, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_graph_verify(p->decode, &d), MICA_OK, "%s", d.msg);
        /* nothing reads the unquantized matmul weights any more */
        for (int32_t i = 0; i < p->decode->n_nodes; i++) {
            const mica_node_t *nd = p->decode->nodes[i];
            if (nd->op == MICA_OP_MATMUL && opt->mode != MICA_QUANT_F16 && opt->mode != MICA_QUANT_F32)
                cr_assert_fail("%%%d is still a matmul in %s mode", i, mica_quant_mode_name(opt->mode));
        }
    }
    cr_assert_eq(mica_ref_program_create(p, &r, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_program_eval(r, ids, n, true, out_prefill, &d), MICA_OK, "%s", d.msg);
    if (out_decode) {
        mica_ref_program_reset(r);
        for (int32_t t = 0; t < n; t++)
            cr_assert_eq(mica_ref_program_eval(r, &ids[t], 1, false, out_decode + (size_t)t * x.cfg.n_vocab,
                                               &d), MICA_OK, "%s", d.msg);
    }
    mica_ref_program_release(r);
    mica_test_model_close(&x);
    if (d_out)
        *d_out = d;
}

static float *read_exact(const char *model, const char *type, size_t *out_count)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s.exact.f32", model, type);
    size_t len;
    float *v = (float *)mica_test_read_file(mica_test_golden(name), &len);
    cr_assert(v, "cannot read %s", name);
    *out_count = len / sizeof(float);
    return v;
}

/* MODEL.TYPE through the program quantized in `mode`, against the exact
 * logits of the file. The limit is `factor` times: with vs == NULL the
 * llama.cpp yardstick of the file (golden/yardstick.tsv), with vs = "TYPE2"
 * the NMSE between the exact logits of MODEL.TYPE2 and MODEL.TYPE (what
 * GGUF's own quantization to TYPE2 costs on this model), with vs = "" an
 * absolute limit. */
static void check_golden(const char *model, const char *type, mica_quant_mode_t mode, double factor,
                         const char *vs, bool decode)
{
    char file[128], ids_name[128], mt[128];
    snprintf(file, sizeof file, "%s.%s.gguf", model, type);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    snprintf(mt, sizeof mt, "%s.%s", model, type);
    int32_t ids[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64);
    cr_assert_eq(n, 16);
    size_t total;
    float *exact = read_exact(model, type, &total);
    double base = 1.0;
    if (!vs) {
        base = yardstick(mt);
    } else if (*vs) {
        size_t n2;
        float *other = read_exact(model, vs, &n2);
        cr_assert_eq(n2, total);
        base = mica_test_nmse(other, exact, total);
        free(other);
    }
    const double limit = factor * base;
    float *pre = malloc(total * sizeof *pre), *dec = malloc(total * sizeof *dec);
    char summary[1 << 14] = "";
    mica_quant_options_t opt = {.mode = mode, .summary = summary, .summary_cap = sizeof summary};
    run_quantized(mica_test_golden(file), &opt, 8, 40, ids, (int32_t)n, pre, decode ? dec : NULL,
                  NULL);
    double e_pre = mica_test_nmse(pre, exact, total), e_dec = decode ? mica_test_nmse(dec, exact, total) : 0.0;
    char dec_txt[48] = "";
    if (decode)
        snprintf(dec_txt, sizeof dec_txt, " decode %.3e", e_dec);
    cr_log_info("%s %s: NMSE vs exact prefill %.3e%s (limit %.3e = %g x %s%s)", file,
                mica_quant_mode_name(mode), e_pre, dec_txt, limit, factor,
                !vs ? "yardstick" : *vs ? vs : "1", vs && *vs ? " vs exact" : "");
    cr_expect_leq(e_pre, limit, "%s %s: prefill NMSE %g > %g\n%s", file, mica_quant_mode_name(mode),
                  e_pre, limit, summary);
    cr_expect_leq(e_dec, limit, "%s %s: decode NMSE %g > %g", file, mica_quant_mode_name(mode),
                  e_dec, limit);
    cr_expect(strstr(summary, "weights made"), "%s", summary);
    free(pre);
    free(dec);
    free(exact);
}

/* Prefill in chunks of 8 against exact; the _dec tests also run
 * the 16 tokens one by one through the decode graph. */
#define GOLDEN(NAME, MODEL, TYPE, MODE, FACTOR, VS) \
    Test(quantize_golden, NAME) { check_golden(MODEL, TYPE, MODE, FACTOR, VS, false); }
#define GOLDEN_DEC(NAME, MODEL, TYPE, MODE, FACTOR, VS) \
    Test(quantize_golden, NAME) { check_golden(MODEL, TYPE, MODE, FACTOR, VS, true); }

/* weight-only on transcoded weights: the file's exact values */
GOLDEN(llama_q8_0_w8a16, "llama-tiny", "q8_0", MICA_QUANT_W8A16, 1e-10, "")
GOLDEN_DEC(llama_q4_0_w4a16, "llama-tiny", "q4_0", MICA_QUANT_W4A16, 1e-10, "")
GOLDEN(llama_q4_1_w4a16, "llama-tiny", "q4_1", MICA_QUANT_W4A16, 1e-10, "")
GOLDEN_DEC(qwen2_q8_0_w8a16, "qwen2-tiny", "q8_0", MICA_QUANT_W8A16, 1e-10, "")
GOLDEN(qwen2_q4_0_w4a16, "qwen2-tiny", "q4_0", MICA_QUANT_W4A16, 1e-10, "")
GOLDEN(qwen2_q4_1_w4a16, "qwen2-tiny", "q4_1", MICA_QUANT_W4A16, 1e-10, "")
/* int8 activations on transcoded weights: llama.cpp's yardstick */
GOLDEN(llama_q8_0_w8a8, "llama-tiny", "q8_0", MICA_QUANT_W8A8, 1.25, NULL)
GOLDEN(llama_q4_0_w4a8, "llama-tiny", "q4_0", MICA_QUANT_W4A8, 1.25, NULL)
GOLDEN_DEC(llama_q4_1_w4a8, "llama-tiny", "q4_1", MICA_QUANT_W4A8, 1.25, NULL)
GOLDEN(qwen2_q8_0_w8a8, "qwen2-tiny", "q8_0", MICA_QUANT_W8A8, 1.25, NULL)
GOLDEN_DEC(qwen2_q4_0_w4a8, "qwen2-tiny", "q4_0", MICA_QUANT_W4A8, 1.25, NULL)
GOLDEN(qwen2_q4_1_w4a8, "qwen2-tiny", "q4_1", MICA_QUANT_W4A8, 1.25, NULL)
GOLDEN(llama_q4_0_w8a8, "llama-tiny", "q4_0", MICA_QUANT_W8A8, 1.25, NULL)
GOLDEN(qwen2_q4_1_w8a8, "qwen2-tiny", "q4_1", MICA_QUANT_W8A8, 1.25, NULL)
/* float modes */
GOLDEN(llama_f32_f32, "llama-tiny", "f32", MICA_QUANT_F32, 1e-10, "")
GOLDEN(qwen2_f32_f32, "qwen2-tiny", "f32", MICA_QUANT_F32, 1e-10, "")
GOLDEN(llama_q4_1_f32, "llama-tiny", "q4_1", MICA_QUANT_F32, 1e-10, "")
GOLDEN(qwen2_f16_f16, "qwen2-tiny", "f16", MICA_QUANT_F16, 1e-10, "")
/* requantized from f32: within 1.25x of what GGUF's own Q4_0 / Q8_0 cost */
GOLDEN(llama_f32_w4a8, "llama-tiny", "f32", MICA_QUANT_W4A8, 1.25, "q4_0")
GOLDEN(qwen2_f32_w4a16, "qwen2-tiny", "f32", MICA_QUANT_W4A16, 1.25, "q4_0")
GOLDEN(llama_f32_w8a8, "llama-tiny", "f32", MICA_QUANT_W8A8, 1.25, "q8_0")
GOLDEN(qwen2_f32_w8a16, "qwen2-tiny", "f32", MICA_QUANT_W8A16, 1.25, "q8_0")

/* The pass's choices show in the graph and the summary: a row of 160 that
 * group 64 does not divide takes 32, an f32 head is int8, the embedding table
 * is untouched, --group 64 requantizes a Q4_0 file. */
Test(quantize, choices_in_the_dump)
{
    mica_test_model_t x;
    mica_test_program_open(&x, mica_test_golden("llama-tiny.f32.gguf"), 4, 8, NULL);
    mica_program_t *p = x.p;
    mica_diag_t d = {0};
    char summary[1 << 14] = "";
    mica_quant_options_t opt = {.summary = summary, .summary_cap = sizeof summary};
    cr_assert_eq(mica_pass_quantize(&opt, p->consts, &p->decode, &d), MICA_OK, "%s", d.msg);
    char *text = mica_graph_print(p->decode);
    cr_assert(strstr(summary, "blk.0.ffn_down.weight f32[64,160] -> u4.g32, requantized"),
              "%s", summary);
    cr_assert(strstr(summary, "(group 64 does not divide K=160)"), "%s", summary);
    cr_assert(strstr(summary, "output.weight f32[32000,64] -> i8.g64"), "%s", summary);
    cr_assert(strstr(text, "{name=\"blk.0.ffn_down.weight.q\"} : u4[64,160]"), "%.2000s", text);
    cr_assert(strstr(text, "{name=\"blk.0.ffn_down.weight.s\"} : f16[64,5]"));
    cr_assert(strstr(text, "{agroup=32, wgroup=32} : f32[1,64]"), "%.3000s", text);
    cr_assert(strstr(text, "{name=\"token_embd.weight\"} : f32[32000,64]"));
    cr_assert(!strstr(text, "{name=\"blk.0.attn_q.weight\"}"));
    /* the text parses back */
    mica_graph_t *back = NULL;
    cr_assert_eq(mica_graph_parse(text, strlen(text), &back, &d), MICA_OK, "%s", d.msg);
    mica_graph_release(back);
    free(text);

    /* a Q4_0 file with --group 64 requantizes; with the default it transcodes */
    mica_test_model_close(&x);
    mica_test_program_open(&x, mica_test_golden("llama-tiny.q4_0.gguf"), 4, 8, NULL);
    p = x.p;
    summary[0] = 0;
    opt.group = 64;
    opt.mode = MICA_QUANT_W4A16;
    cr_assert_eq(mica_pass_quantize(&opt, p->consts, &p->decode, &d), MICA_OK, "%s", d.msg);
    cr_assert(strstr(summary, "blk.0.attn_q.weight q4_0[64,64] -> u4.g64, requantized"), "%s",
              summary);
    summary[0] = 0;
    opt.group = 0;
    cr_assert_eq(mica_pass_quantize(&opt, p->consts, &p->prefill, &d), MICA_OK, "%s", d.msg);
    cr_assert(strstr(summary, "blk.0.attn_q.weight q4_0[64,64] -> u4.g32, transcoded, nmse 0.000e+00"),
              "%s", summary);
    /* auto: a 4-bit source head stays 4-bit (int8 would hold the same values) */
    cr_assert(strstr(summary, "output.weight q4_0[32000,64] -> u4.g32, transcoded"), "%s", summary);
    mica_test_model_close(&x);
    /* int8 forces it wider; in w8a8 the head is int8 whatever the option */
    const mica_quant_head_t heads[2] = {MICA_QUANT_HEAD_INT8, MICA_QUANT_HEAD_AUTO};
    const mica_quant_mode_t modes[2] = {MICA_QUANT_W4A8, MICA_QUANT_W8A8};
    for (int i = 0; i < 2; i++) {
        mica_test_program_open(&x, mica_test_golden("llama-tiny.q4_0.gguf"), 4, 8, NULL);
        summary[0] = 0;
        opt.head = heads[i];
        opt.mode = modes[i];
        cr_assert_eq(mica_pass_quantize(&opt, x.p->consts, &x.p->decode, &d), MICA_OK, "%s",
                     d.msg);
        cr_assert(strstr(summary, "output.weight q4_0[32000,64] -> i8.g32, transcoded"), "%s",
                  summary);
        mica_test_model_close(&x);
    }
    /* an f32 head is requantized to int8 under auto, to int4 when asked */
    mica_test_program_open(&x, mica_test_golden("llama-tiny.f32.gguf"), 4, 8, NULL);
    summary[0] = 0;
    opt.head = MICA_QUANT_HEAD_INT4;
    opt.mode = MICA_QUANT_W4A8;
    cr_assert_eq(mica_pass_quantize(&opt, x.p->consts, &x.p->decode, &d), MICA_OK, "%s", d.msg);
    cr_assert(strstr(summary, "output.weight f32[32000,64] -> u4.g64"), "%s", summary);
    mica_test_model_close(&x);
}

/* ------------------------------------------------------------------------ */
/* (e) SmolLM2-135M against its own f32 compile                              */

Test(quantize_smollm, modes_against_f32, .timeout = 600)
{
    const char *path = getenv("MICA_DEFAULT_MODEL");
    if (!path || !*path) {
        cr_skip_test("MICA_DEFAULT_MODEL is not set");
        return;
    }
    enum { N = 8 }; /* one prefill chunk: the sanitizer build runs this too */
    const int32_t ids[N] = {1, 9690, 28, 4093, 198, 17, 506, 3575};
    const size_t V = 49152;
    float *ref = malloc(N * V * sizeof *ref), *got = malloc(N * V * sizeof *got);
    mica_quant_options_t f32 = {.mode = MICA_QUANT_F32};
    run_quantized(path, &f32, N, N, ids, N, ref, NULL, NULL);
    const mica_quant_mode_t modes[3] = {MICA_QUANT_W4A8, MICA_QUANT_W8A8, MICA_QUANT_W4A16};
#if defined(__SANITIZE_ADDRESS__)
    const int n_modes = 1; /* the sanitizer build checks the default mode only, to stay fast */
#else
    const int n_modes = 3;
#endif
    for (int i = 0; i < n_modes; i++) {
        mica_quant_options_t o = {.mode = modes[i]};
        run_quantized(path, &o, N, N, ids, N, got, NULL, NULL);
        double e = mica_test_nmse(got, ref, N * V);
        cr_log_info("SmolLM2-135M %s vs f32: NMSE %.3e over %d tokens", mica_quant_mode_name(modes[i]),
                    e, N);
        cr_expect_lt(e, 1e-2, "%s: NMSE %g", mica_quant_mode_name(modes[i]), e);
    }
    free(ref);
    free(got);
}
