/* The reference backend, op by op, against values worked out by hand (or by
 * plain loops written here, never by the code under test): compute ops,
 * weight formats, data movement, raster, operand views and errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "ref.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define RANK(...) ((int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TY(dt, ...) mica_type_make(MICA_DTYPE_##dt, RANK(__VA_ARGS__), SHAPE(__VA_ARGS__))
#define COUNT(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))

static const double R2 = 0.70710678118654752440; /* sqrt(1/2) */

static mica_graph_t *new_graph(void)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    return g;
}

static mica_ref_tensor_t bind(const char *name, mica_type_t type, void *data)
{
    mica_ref_tensor_t t = {name, type, data};
    return t;
}

/* Runs g, failing the test on any error. */
static mica_ref_outputs_t *run_ok(mica_graph_t *g, const mica_ref_tensor_t *in, int32_t n_in)
{
    cr_assert_eq(g->error.code, MICA_OK, "building the graph: %s", g->error.msg);
    mica_diag_t d = {0};
    mica_ref_outputs_t *o = NULL;
    mica_status_t s = mica_ref_execute(g, in, n_in, &o, &d);
    cr_assert_eq(s, MICA_OK, "execute: %s", d.msg);
    cr_assert_not_null(o);
    return o;
}

/* Runs g expecting failure with `code` and a message containing `needle`. */
static void run_fails(mica_graph_t *g, const mica_ref_tensor_t *in, int32_t n_in,
                      mica_status_t code, const char *needle)
{
    cr_assert_eq(g->error.code, MICA_OK, "building the graph: %s", g->error.msg);
    mica_diag_t d = {0};
    mica_ref_outputs_t *o = (mica_ref_outputs_t *)&d; /* must come back NULL */
    mica_status_t s = mica_ref_execute(g, in, n_in, &o, &d);
    cr_assert_eq(s, code, "status %d (%s), want %d", s, d.msg, code);
    cr_assert_null(o);
    cr_assert(strstr(d.msg, needle), "message '%s' lacks '%s'", d.msg, needle);
}

/* Output `name` must hold n floats within tol (relative above 1) of want. */
static void expect_f(const mica_ref_outputs_t *o, const char *name, const float *want, int64_t n,
                     double tol)
{
    const mica_ref_tensor_t *t = mica_ref_outputs_find(o, name);
    cr_assert_not_null(t, "no output %s", name);
    cr_assert_eq(mica_type_numel(&t->type), n, "%s has %lld elements, want %lld", name,
                 (long long)mica_type_numel(&t->type), (long long)n);
    const float *got = t->data;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - (double)want[i]);
        cr_assert(err <= tol * fmax(1.0, fabs((double)want[i])), "%s[%lld] = %.9g, want %.9g", name,
                  (long long)i, (double)got[i], (double)want[i]);
    }
}

static void expect_i(const mica_ref_outputs_t *o, const char *name, const int32_t *want,
                     int64_t n)
{
    const mica_ref_tensor_t *t = mica_ref_outputs_find(o, name);
    cr_assert_not_null(t, "no output %s", name);
    cr_assert_eq(t->type.dtype, MICA_DTYPE_I32);
    cr_assert_eq(mica_type_numel(&t->type), n);
    const int32_t *got = t->data;
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "%s[%lld] = %d, want %d", name, (long long)i, got[i],
                     want[i]);
}

/* Little-endian 16-bit store (f16 / bf16 bits, quant block scales). */
static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

/* A GGUF Q8_0 block: f16 scale bits, then 32 int8 quants. */
static void put_q8_0(unsigned char *blk, uint16_t d_bits, const int8_t *q)
{
    put16(blk, d_bits);
    memcpy(blk + 2, q, 32);
}

/* A GGUF Q4_0 block: f16 scale bits, then 16 bytes; element j < 16 is the
 * low nibble of byte j, element j + 16 the high nibble. q in 0..15. */
static void put_q4_0(unsigned char *blk, uint16_t d_bits, const uint8_t *q)
{
    put16(blk, d_bits);
    for (int j = 0; j < 16; j++)
        blk[2 + j] = (unsigned char)(q[j] | (q[j + 16] << 4));
}

/* ------------------------------------------------------------------------ */
/* reductions and elementwise                                                */

Test(ref_ops, softmax_hand_values)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 3, 3));
    mica_build_output(g, "y", mica_build_unary(g, MICA_OP_SOFTMAX, x));
    /* Row 1: e^x = 1, 2, 3. Row 2: huge equal values (needs the max
     * subtracted). Row 3: e^x = 1, 1, 2 scaled by e^-5. */
    float xs[9] = {0.0f, (float)log(2.0), (float)log(3.0), 1000.0f, 1000.0f, 1000.0f,
                   -5.0f, -5.0f, (float)(-5.0 + log(2.0))};
    mica_ref_tensor_t in = bind("x", TY(F32, 3, 3), xs);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    const float want[9] = {1 / 6.0f, 2 / 6.0f, 3 / 6.0f, 1 / 3.0f, 1 / 3.0f, 1 / 3.0f,
                           0.25f,    0.25f,    0.5f};
    expect_f(o, "y", want, 9, 1e-6);
    const float *y = mica_ref_outputs_find(o, "y")->data;
    for (int r = 0; r < 3; r++)
        cr_assert_float_eq(y[3 * r] + y[3 * r + 1] + y[3 * r + 2], 1.0f, 1e-6);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, rms_norm_hand_values)
{
    mica_graph_t *g = new_graph();
    static const float w[4] = {1.0f, 2.0f, -1.0f, 0.5f};
    int32_t x = mica_build_input(g, "x", TY(F32, 2, 4));
    int32_t wv = mica_build_weight(g, "w", TY(F32, 4), w, sizeof w);
    mica_build_output(g, "y", mica_build_rms_norm(g, x, wv, 4.0));
    /* Row 1: mean of squares (1+9+25+49)/4 = 21, + eps 4 = 25, rms 5.
     * Row 2: mean 4, + 4 = 8. */
    float xs[8] = {1, 3, 5, 7, 2, -2, 2, -2};
    mica_ref_tensor_t in = bind("x", TY(F32, 2, 4), xs);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    const float want[8] = {0.2f, 1.2f, -1.0f, 0.7f, (float)(2 / sqrt(8.0)),
                           (float)(-4 / sqrt(8.0)), (float)(-2 / sqrt(8.0)), (float)(-1 / sqrt(8.0))};
    expect_f(o, "y", want, 8, 1e-6);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, add_mul_broadcast)
{
    mica_graph_t *g = new_graph();
    int32_t a = mica_build_input(g, "a", TY(F32, 2, 3));
    int32_t b = mica_build_input(g, "b", TY(F32, 3));
    int32_t c = mica_build_input(g, "c", TY(F32, 2, 1));
    int32_t e = mica_build_input(g, "e", TY(F32, 1, 3));
    mica_build_output(g, "a_plus_b", mica_build_binary(g, MICA_OP_ADD, a, b));
    mica_build_output(g, "b_times_a", mica_build_binary(g, MICA_OP_MUL, b, a));
    mica_build_output(g, "c_times_e", mica_build_binary(g, MICA_OP_MUL, c, e));
    mica_build_output(g, "e_plus_c", mica_build_binary(g, MICA_OP_ADD, e, c));
    mica_build_output(g, "a_plus_a", mica_build_binary(g, MICA_OP_ADD, a, a));
    float av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30}, cv[2] = {2, -1}, ev[3] = {1, 2, 3};
    mica_ref_tensor_t in[4] = {bind("a", TY(F32, 2, 3), av), bind("b", TY(F32, 3), bv),
                               bind("c", TY(F32, 2, 1), cv), bind("e", TY(F32, 1, 3), ev)};
    mica_ref_outputs_t *o = run_ok(g, in, 4);
    expect_f(o, "a_plus_b", (const float[]){11, 22, 33, 14, 25, 36}, 6, 0);
    expect_f(o, "b_times_a", (const float[]){10, 40, 90, 40, 100, 180}, 6, 0);
    expect_f(o, "c_times_e", (const float[]){2, 4, 6, -1, -2, -3}, 6, 0);
    expect_f(o, "e_plus_c", (const float[]){3, 4, 5, 0, 1, 2}, 6, 0);
    expect_f(o, "a_plus_a", (const float[]){2, 4, 6, 8, 10, 12}, 6, 0);
    cr_assert_eq(mica_ref_outputs_count(o), 5);
    cr_assert_str_eq(mica_ref_outputs_at(o, 2)->name, "c_times_e");
    cr_assert_null(mica_ref_outputs_at(o, 5));
    cr_assert_null(mica_ref_outputs_find(o, "nope"));
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, silu_gelu_scale_at_known_points)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 5));
    mica_build_output(g, "silu", mica_build_unary(g, MICA_OP_SILU, x));
    mica_build_output(g, "gelu", mica_build_unary(g, MICA_OP_GELU, x));
    mica_build_output(g, "scale", mica_build_scale(g, x, -0.5));
    float xs[5] = {0, 1, -1, 2, -3};
    mica_ref_tensor_t in = bind("x", TY(F32, 5), xs);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    /* x / (1 + e^-x) */
    expect_f(o, "silu",
             (const float[]){0.0f, 0.7310585786f, -0.2689414214f, 1.7615941560f, -0.1422776195f},
             5, 1e-6);
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    expect_f(o, "gelu",
             (const float[]){0.0f, 0.8411919906f, -0.1588080094f, 1.9545976941f, -0.0036373921f},
             5, 1e-6);
    expect_f(o, "scale", (const float[]){0.0f, -0.5f, 0.5f, -1.0f, 1.5f}, 5, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, convert_and_half_activations)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 2));
    mica_build_output(g, "to_f16", mica_build_convert(g, x, MICA_DTYPE_F16));
    mica_build_output(g, "to_bf16", mica_build_convert(g, x, MICA_DTYPE_BF16));
    int32_t h = mica_build_input(g, "h", TY(F16, 2));
    mica_build_output(g, "h_in", h);
    mica_build_output(g, "h_times_3", mica_build_scale(g, h, 3.0));
    mica_build_output(g, "h_to_f32", mica_build_convert(g, h, MICA_DTYPE_F32));
    float xs[2] = {1.0f / 3.0f, -2.0f};
    float hs[2] = {1.0f / 3.0f, 1.0f};
    mica_ref_tensor_t in[2] = {bind("x", TY(F32, 2), xs), bind("h", TY(F16, 2), hs)};
    mica_ref_outputs_t *o = run_ok(g, in, 2);
    /* f16 0x3555 = 1365/4096; bf16 0x3EAB = 0.333984375 */
    expect_f(o, "to_f16", (const float[]){0.333251953125f, -2.0f}, 2, 0);
    expect_f(o, "to_bf16", (const float[]){0.333984375f, -2.0f}, 2, 0);
    cr_assert_eq(mica_ref_outputs_find(o, "to_f16")->type.dtype, MICA_DTYPE_F16);
    /* a bound f16 input is rounded; 3 * 1365/4096 = 1 - 2^-12 is a tie in
     * f16 and rounds to even, 1.0 */
    expect_f(o, "h_in", (const float[]){0.333251953125f, 1.0f}, 2, 0);
    expect_f(o, "h_times_3", (const float[]){1.0f, 3.0f}, 2, 0);
    expect_f(o, "h_to_f32", (const float[]){0.333251953125f, 1.0f}, 2, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* rope                                                                      */

/* x [3, 2, 6] at positions 0, 1, 2 with dims 4, theta 4, scale pi/2: pair 0
 * turns by p*pi/2, pair 1 by p*pi/2 * 4^(-1/2) = p*pi/4; dims 4, 5 stay. */
static mica_ref_outputs_t *run_rope(int64_t mode, mica_graph_t **out_g, float *xs, int32_t *pos)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 3, 2, 6));
    int32_t p = mica_build_input(g, "pos", TY(I32, 3));
    mica_build_output(g, "y", mica_build_rope(g, x, p, mode, 4, 4.0, 3.14159265358979323846 / 2));
    static const float head[2][6] = {{1, 2, 3, 4, 5, 6}, {-1, 0.5f, 2, -3, 7, 8}};
    for (int t = 0; t < 3; t++)
        memcpy(xs + t * 12, head, sizeof head);
    pos[0] = 0, pos[1] = 1, pos[2] = 2;
    mica_ref_tensor_t in[2] = {bind("x", TY(F32, 3, 2, 6), xs), bind("pos", TY(I32, 3), pos)};
    *out_g = g;
    return run_ok(g, in, 2);
}

Test(ref_ops, rope_pairs_mode0)
{
    float xs[36];
    int32_t pos[3];
    mica_graph_t *g;
    mica_ref_outputs_t *o = run_rope(0, &g, xs, pos);
    const float r = (float)R2;
    const float want[36] = {
        /* pos 0: identity */
        1, 2, 3, 4, 5, 6, -1, 0.5f, 2, -3, 7, 8,
        /* pos 1: (a,b) -> (-b,a); (c,d) -> ((c-d)r, (c+d)r) */
        -2, 1, -r, 7 * r, 5, 6, -0.5f, -1, 5 * r, -r, 7, 8,
        /* pos 2: (a,b) -> (-a,-b); (c,d) -> (-d,c) */
        -1, -2, -4, 3, 5, 6, 1, -0.5f, 3, 2, 7, 8};
    expect_f(o, "y", want, 36, 1e-6);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, rope_neox_mode2)
{
    float xs[36];
    int32_t pos[3];
    mica_graph_t *g;
    mica_ref_outputs_t *o = run_rope(2, &g, xs, pos);
    const float r = (float)R2;
    const float want[36] = {
        1, 2, 3, 4, 5, 6, -1, 0.5f, 2, -3, 7, 8,
        /* pos 1: (a,c) -> (-c,a); (b,d) -> ((b-d)r, (b+d)r) */
        -3, -2 * r, 1, 6 * r, 5, 6, -2, 3.5f * r, -1, -2.5f * r, 7, 8,
        /* pos 2: (a,c) -> (-a,-c); (b,d) -> (-d,b) */
        -1, -4, -3, 2, 5, 6, 1, 3, -2, 0.5f, 7, 8};
    expect_f(o, "y", want, 36, 1e-6);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* attention                                                                 */

/* Causal attention written out directly: query t of T sees keys
 * 0 .. S-T+t; query head h reads kv head h*Hkv/Hq. */
static void naive_attention(const float *q, const float *k, const float *v, int T, int S, int Hq,
                            int Hkv, int D, double scale, float *y)
{
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < Hq; h++) {
            int kvh = h * Hkv / Hq, visible = S - T + t + 1;
            double logit[64], top = -1e300, z = 0;
            for (int j = 0; j < visible; j++) {
                double dot = 0;
                for (int i = 0; i < D; i++)
                    dot += (double)q[(t * Hq + h) * D + i] * k[(j * Hkv + kvh) * D + i];
                logit[j] = dot * scale;
                top = logit[j] > top ? logit[j] : top;
            }
            for (int j = 0; j < visible; j++)
                z += exp(logit[j] - top);
            for (int i = 0; i < D; i++) {
                double num = 0;
                for (int j = 0; j < visible; j++)
                    num += exp(logit[j] - top) * v[(j * Hkv + kvh) * D + i];
                y[(t * Hq + h) * D + i] = (float)(num / z);
            }
        }
    }
}

static void check_attention(int T, int S, int Hq, int Hkv, int D, uint64_t seed)
{
    float q[256], k[256], v[256], want[256];
    cr_assert(T * Hq * D <= 256 && S * Hkv * D <= 256 && S <= 64);
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, seed);
    for (int i = 0; i < T * Hq * D; i++)
        q[i] = 2 * mica_test_rng_float(&rng);
    for (int i = 0; i < S * Hkv * D; i++) {
        k[i] = 2 * mica_test_rng_float(&rng);
        v[i] = mica_test_rng_float(&rng);
    }
    double scale = 1.0 / sqrt((double)D);
    naive_attention(q, k, v, T, S, Hq, Hkv, D, scale, want);

    mica_graph_t *g = new_graph();
    mica_type_t tq = TY(F32, T, Hq, D), tk = TY(F32, S, Hkv, D);
    int32_t qi = mica_build_input(g, "q", tq);
    int32_t ki = mica_build_input(g, "k", tk);
    int32_t vi = mica_build_input(g, "v", tk);
    mica_build_output(g, "y", mica_build_attention(g, qi, ki, vi, scale));
    mica_ref_tensor_t in[3] = {bind("q", tq, q), bind("k", tk, k), bind("v", tk, v)};
    mica_ref_outputs_t *o = run_ok(g, in, 3);
    expect_f(o, "y", want, T * Hq * D, 1e-5);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, attention_hand_values)
{
    /* One head, D = 1, scale 1: query 0 sees key 0 only -> v0 = 10; query 1
     * has logits 0 and ln 3 -> weights 1/4, 3/4 -> 2.5 + 15 = 17.5. */
    mica_graph_t *g = new_graph();
    int32_t q = mica_build_input(g, "q", TY(F32, 2, 1, 1));
    int32_t k = mica_build_input(g, "k", TY(F32, 2, 1, 1));
    int32_t v = mica_build_input(g, "v", TY(F32, 2, 1, 1));
    mica_build_output(g, "y", mica_build_attention(g, q, k, v, 1.0));
    float qs[2] = {1, 1}, ks[2] = {0, (float)log(3.0)}, vs[2] = {10, 20};
    mica_ref_tensor_t in[3] = {bind("q", TY(F32, 2, 1, 1), qs), bind("k", TY(F32, 2, 1, 1), ks),
                               bind("v", TY(F32, 2, 1, 1), vs)};
    mica_ref_outputs_t *o = run_ok(g, in, 3);
    expect_f(o, "y", (const float[]){10.0f, 17.5f}, 2, 1e-6);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, attention_causal_gqa_kv_cache)
{
    check_attention(3, 3, 4, 2, 4, 1);  /* prefill, GQA 4 -> 2 */
    check_attention(2, 6, 4, 2, 5, 2);  /* KV cache: 4 keys already there */
    check_attention(1, 7, 4, 1, 3, 3);  /* decode, one kv head */
    check_attention(4, 4, 2, 2, 8, 4);  /* plain multi-head */
}

/* ------------------------------------------------------------------------ */
/* matmul and embedding over weight formats                                  */

Test(ref_ops, matmul_f32_f16_bf16_hand_values)
{
    /* w = [[1, 0, -1], [0.5, 0.5, 0.5]] in three encodings */
    static const float w32[6] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    static const uint16_t h16[6] = {0x3C00, 0x0000, 0xBC00, 0x3800, 0x3800, 0x3800};
    static const uint16_t b16[6] = {0x3F80, 0x0000, 0xBF80, 0x3F00, 0x3F00, 0x3F00};
    unsigned char wh[12], wb[12];
    for (int i = 0; i < 6; i++) {
        put16(wh + 2 * i, h16[i]);
        put16(wb + 2 * i, b16[i]);
    }
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 2, 1, 3));
    int32_t wf = mica_build_weight(g, "wf", TY(F32, 2, 3), w32, sizeof w32);
    int32_t wh16 = mica_build_weight(g, "wh", TY(F16, 2, 3), wh, sizeof wh);
    int32_t wb16 = mica_build_weight(g, "wb", TY(BF16, 2, 3), wb, sizeof wb);
    mica_build_output(g, "f32", mica_build_binary(g, MICA_OP_MATMUL, x, wf));
    mica_build_output(g, "f16", mica_build_binary(g, MICA_OP_MATMUL, x, wh16));
    mica_build_output(g, "bf16", mica_build_binary(g, MICA_OP_MATMUL, x, wb16));
    float xs[6] = {1, 2, 3, 4, 5, 6};
    mica_ref_tensor_t in = bind("x", TY(F32, 2, 1, 3), xs);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    /* [1-3, (1+2+3)/2], [4-6, (4+5+6)/2] */
    const float want[4] = {-2, 3, -2, 7.5f};
    expect_f(o, "f32", want, 4, 0);
    expect_f(o, "f16", want, 4, 0);
    expect_f(o, "bf16", want, 4, 0);
    const mica_ref_tensor_t *y = mica_ref_outputs_find(o, "f16");
    cr_assert(y->type.rank == 3 && y->type.shape[0] == 2 && y->type.shape[1] == 1 &&
              y->type.shape[2] == 2);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

/* matmul of xs [M, K] by the weight `bytes` (dtype t, [N, K]) whose exact
 * values are w [N, K], against the plain-loop product in float64. */
static void check_quant_matmul(mica_dtype_t t, const void *bytes, size_t nbytes, const float *w,
                               int N, int K, const float *xs, int M)
{
    float *want = malloc((size_t)(M * N) * sizeof *want);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)xs[m * K + k] * w[n * K + k];
            want[m * N + n] = (float)s;
        }
    const int64_t wshape[2] = {N, K}, xshape[2] = {M, K};
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xshape));
    int32_t wq = mica_build_weight(g, "w", mica_type_make(t, 2, wshape), bytes, nbytes);
    mica_build_output(g, "y", mica_build_binary(g, MICA_OP_MATMUL, x, wq));
    mica_ref_tensor_t in = bind("x", mica_type_make(MICA_DTYPE_F32, 2, xshape), (float *)xs);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    expect_f(o, "y", want, M * N, 1e-6);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
    free(want);
}

Test(ref_ops, matmul_q8_0)
{
    /* w [2, 64]: two Q8_0 blocks per row with known scales and quants;
     * w[n][k] = d * q, all exact in float. */
    enum { N = 2, K = 64, M = 3 };
    static const uint16_t d_bits[N][2] = {{0x3800, 0x3400}, {0x4000, 0x3C00}}; /* .5 .25 2 1 */
    static const double d_val[N][2] = {{0.5, 0.25}, {2.0, 1.0}};
    unsigned char bytes[N * 2 * 34];
    float w[N][K];
    for (int n = 0; n < N; n++) {
        for (int b = 0; b < 2; b++) {
            int8_t q[32];
            for (int j = 0; j < 32; j++) {
                int k = b * 32 + j;
                q[j] = (int8_t)(n == 0 ? (b == 0 ? j - 16 : 3 * (j % 7) - 9)
                                       : (b == 0 ? j % 5 - 2 : 15 - j));
                w[n][k] = (float)(d_val[n][b] * q[j]);
            }
            put_q8_0(bytes + (n * 2 + b) * 34, d_bits[n][b], q);
        }
    }
    float xs[M * K];
    for (int m = 0; m < M; m++)
        for (int k = 0; k < K; k++)
            xs[m * K + k] = (float)(m + 1) * ((k % 4) - 1.5f) * 0.25f;
    check_quant_matmul(MICA_DTYPE_Q8_0, bytes, sizeof bytes, &w[0][0], N, K, xs, M);
}

Test(ref_ops, matmul_q4_0)
{
    /* w [3, 32]: one Q4_0 block per row; w[n][j] = d_n * (q - 8) */
    enum { N = 3, K = 32, M = 2 };
    static const uint16_t d_bits[N] = {0x3800, 0x3000, 0x3C00}; /* 0.5, 0.125, 1 */
    static const double d_val[N] = {0.5, 0.125, 1.0};
    unsigned char bytes[N * 18];
    float w[N][K];
    for (int n = 0; n < N; n++) {
        uint8_t q[32];
        for (int j = 0; j < 32; j++) {
            q[j] = (uint8_t)((j * 7 + n) % 16);
            w[n][j] = (float)(d_val[n] * (q[j] - 8));
        }
        put_q4_0(bytes + n * 18, d_bits[n], q);
    }
    float xs[M * K];
    for (int i = 0; i < M * K; i++)
        xs[i] = (float)((i % 9) - 4) * 0.5f;
    check_quant_matmul(MICA_DTYPE_Q4_0, bytes, sizeof bytes, &w[0][0], N, K, xs, M);
}

Test(ref_ops, matmul_by_computed_weight)
{
    /* the weight operand need not be a weight: here a transposed input */
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 1, 2));
    int32_t a = mica_build_input(g, "a", TY(F32, 2, 3));
    int32_t at = mica_build_transpose(g, a, SHAPE(1, 0)); /* [3, 2] */
    mica_build_output(g, "y", mica_build_binary(g, MICA_OP_MATMUL, x, at));
    float xs[2] = {1, -1}, as[6] = {1, 2, 3, 10, 20, 30};
    mica_ref_tensor_t in[2] = {bind("x", TY(F32, 1, 2), xs), bind("a", TY(F32, 2, 3), as)};
    mica_ref_outputs_t *o = run_ok(g, in, 2);
    expect_f(o, "y", (const float[]){-9, -18, -27}, 3, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, embedding_f32_and_q8_0)
{
    static const float table[4 * 3] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32};
    /* q8_0 table [3, 32]: row v has scale 0.5 and quants j - 16 + v */
    unsigned char qt[3 * 34];
    for (int v = 0; v < 3; v++) {
        int8_t q[32];
        for (int j = 0; j < 32; j++)
            q[j] = (int8_t)(j - 16 + v);
        put_q8_0(qt + v * 34, 0x3800, q);
    }
    mica_graph_t *g = new_graph();
    int32_t ids = mica_build_input(g, "ids", TY(I32, 3));
    int32_t tf = mica_build_weight(g, "tf", TY(F32, 4, 3), table, sizeof table);
    int32_t tq = mica_build_weight(g, "tq", TY(Q8_0, 3, 32), qt, sizeof qt);
    mica_build_output(g, "f", mica_build_binary(g, MICA_OP_EMBEDDING, tf, ids));
    mica_build_output(g, "q", mica_build_binary(g, MICA_OP_EMBEDDING, tq, ids));
    int32_t idv[3] = {2, 0, 2};
    mica_ref_tensor_t in = bind("ids", TY(I32, 3), idv);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    expect_f(o, "f", (const float[]){20, 21, 22, 0, 1, 2, 20, 21, 22}, 9, 0);
    float want[3 * 32];
    for (int t = 0; t < 3; t++)
        for (int j = 0; j < 32; j++)
            want[t * 32 + j] = 0.5f * (float)(j - 16 + idv[t]);
    expect_f(o, "q", want, 96, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, weights_read_by_other_ops_are_dequantized)
{
    /* an f16 norm weight and a q8_0 weight passed straight to an output */
    unsigned char wn[8], wq[34];
    static const uint16_t bits[4] = {0x3C00, 0x4000, 0xBC00, 0x3800}; /* 1 2 -1 .5 */
    for (int i = 0; i < 4; i++)
        put16(wn + 2 * i, bits[i]);
    int8_t q[32];
    for (int j = 0; j < 32; j++)
        q[j] = (int8_t)(2 * j - 31);
    put_q8_0(wq, 0x3400, q); /* scale 0.25 */
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 4));
    int32_t w = mica_build_weight(g, "w", TY(F16, 4), wn, sizeof wn);
    int32_t w8 = mica_build_weight(g, "w8", TY(Q8_0, 1, 32), wq, sizeof wq);
    mica_build_output(g, "y", mica_build_rms_norm(g, x, w, 4.0));
    mica_build_output(g, "w8", w8);
    float xs[4] = {1, 3, 5, 7};
    mica_ref_tensor_t in = bind("x", TY(F32, 4), xs);
    mica_ref_outputs_t *o = run_ok(g, &in, 1);
    expect_f(o, "y", (const float[]){0.2f, 1.2f, -1.0f, 0.7f}, 4, 1e-6);
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = 0.25f * (float)(2 * j - 31);
    expect_f(o, "w8", want, 32, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* data movement                                                             */

Test(ref_ops, reshape_transpose_slice)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 2, 3, 4));
    int32_t s = mica_build_input(g, "s", TY(F32, 4, 5));
    int32_t ids = mica_build_input(g, "ids", TY(I32, 2, 3));
    mica_build_output(g, "reshape", mica_build_reshape(g, x, 2, SHAPE(6, 4)));
    mica_build_output(g, "reshape_i32", mica_build_reshape(g, ids, 1, SHAPE(6)));
    mica_build_output(g, "transpose", mica_build_transpose(g, x, SHAPE(2, 0, 1)));
    mica_build_output(g, "transpose_i32", mica_build_transpose(g, ids, SHAPE(1, 0)));
    mica_build_output(g, "slice", mica_build_slice(g, s, SHAPE(1, 0), SHAPE(4, 5), SHAPE(2, 2)));
    mica_build_output(g, "slice_inner", mica_build_slice(g, s, SHAPE(2, 1), SHAPE(3, 4), NULL));
    float xs[24], ss[20];
    for (int i = 0; i < 24; i++)
        xs[i] = (float)i;
    for (int i = 0; i < 20; i++)
        ss[i] = (float)i;
    int32_t iv[6] = {7, 8, 9, -1, -2, -3};
    mica_ref_tensor_t in[3] = {bind("x", TY(F32, 2, 3, 4), xs), bind("s", TY(F32, 4, 5), ss),
                               bind("ids", TY(I32, 2, 3), iv)};
    mica_ref_outputs_t *o = run_ok(g, in, 3);
    expect_f(o, "reshape", xs, 24, 0);
    expect_i(o, "reshape_i32", iv, 6);
    /* y [4, 2, 3]: y[a][b][c] = x[b][c][a] = 12b + 4c + a */
    expect_f(o, "transpose",
             (const float[]){0, 4, 8,  12, 16, 20, 1, 5, 9,  13, 17, 21,
                             2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23},
             24, 0);
    expect_i(o, "transpose_i32", (const int32_t[]){7, -1, 8, -2, 9, -3}, 6);
    /* rows 1, 3 and columns 0, 2, 4 of 0..19 as [4, 5] */
    expect_f(o, "slice", (const float[]){5, 7, 9, 15, 17, 19}, 6, 0);
    expect_f(o, "slice_inner", (const float[]){11, 12, 13}, 3, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, concat_broadcast)
{
    mica_graph_t *g = new_graph();
    int32_t a = mica_build_input(g, "a", TY(F32, 2, 2));
    int32_t b = mica_build_input(g, "b", TY(F32, 2, 1));
    int32_t c = mica_build_input(g, "c", TY(F32, 1, 2));
    int32_t i = mica_build_input(g, "i", TY(I32, 3));
    mica_build_output(g, "axis1", mica_build_concat(g, 2, (const int32_t[]){a, b}, 1));
    mica_build_output(g, "axis0", mica_build_concat(g, 3, (const int32_t[]){c, a, c}, 0));
    mica_build_output(g, "ints", mica_build_concat(g, 2, (const int32_t[]){i, i}, 0));
    mica_build_output(g, "bcast", mica_build_broadcast(g, b, 3, SHAPE(2, 2, 3)));
    mica_build_output(g, "bcast_row", mica_build_broadcast(g, c, 2, SHAPE(3, 2)));
    float av[4] = {0, 1, 2, 3}, bv[2] = {10, 11}, cv[2] = {-1, -2};
    int32_t iv[3] = {4, 5, 6};
    mica_ref_tensor_t in[4] = {bind("a", TY(F32, 2, 2), av), bind("b", TY(F32, 2, 1), bv),
                               bind("c", TY(F32, 1, 2), cv), bind("i", TY(I32, 3), iv)};
    mica_ref_outputs_t *o = run_ok(g, in, 4);
    expect_f(o, "axis1", (const float[]){0, 1, 10, 2, 3, 11}, 6, 0);
    expect_f(o, "axis0", (const float[]){-1, -2, 0, 1, 2, 3, -1, -2}, 8, 0);
    expect_i(o, "ints", (const int32_t[]){4, 5, 6, 4, 5, 6}, 6);
    expect_f(o, "bcast", (const float[]){10, 10, 10, 11, 11, 11, 10, 10, 10, 11, 11, 11}, 12, 0);
    expect_f(o, "bcast_row", (const float[]){-1, -2, -1, -2, -1, -2}, 6, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

Test(ref_ops, gather)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 3, 2));
    int32_t r = mica_build_input(g, "rows", TY(I32, 2, 2));
    int32_t c = mica_build_input(g, "cols", TY(I32, 3));
    mica_build_output(g, "axis0", mica_build_gather(g, x, r, 0));
    mica_build_output(g, "axis1", mica_build_gather(g, x, c, 1));
    mica_build_output(g, "ints", mica_build_gather(g, c, c, 0));
    float xs[6] = {0, 1, 2, 3, 4, 5};
    int32_t rows[4] = {2, 0, 2, 1}, cols[3] = {1, 1, 0};
    mica_ref_tensor_t in[3] = {bind("x", TY(F32, 3, 2), xs), bind("rows", TY(I32, 2, 2), rows),
                               bind("cols", TY(I32, 3), cols)};
    mica_ref_outputs_t *o = run_ok(g, in, 3);
    expect_f(o, "axis0", (const float[]){4, 5, 0, 1, 4, 5, 2, 3}, 8, 0);
    expect_f(o, "axis1", (const float[]){1, 1, 0, 3, 3, 2, 5, 5, 4}, 9, 0);
    expect_i(o, "ints", (const int32_t[]){1, 1, 1}, 3);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* raster and views                                                          */

/* out [3, 4] from a [2, 2], b [3, 2] and ids [2]:
 *   region 0: out[r][c] = a[c][r] for r, c < 2 (a transposed)
 *   region 1: out[r][2 + c] = b[ids[r]][c] (a gather over b's rows)
 *   row 2 is written by no region and stays zero. */
static mica_graph_t *raster_graph(void)
{
    mica_graph_t *g = new_graph();
    int32_t xs[3] = {mica_build_input(g, "a", TY(F32, 2, 2)),
                     mica_build_input(g, "b", TY(F32, 3, 2)),
                     mica_build_input(g, "ids", TY(I32, 2))};
    mica_region_t rg[2];
    memset(rg, 0, sizeof rg);
    rg[0].input = 0;
    rg[0].index_input = -1;
    rg[0].rank = 2;
    rg[0].size[0] = 2, rg[0].size[1] = 2;
    rg[0].src.stride[0] = 1, rg[0].src.stride[1] = 2;
    rg[0].dst.stride[0] = 4, rg[0].dst.stride[1] = 1;
    rg[1].input = 1;
    rg[1].index_input = 2;
    rg[1].index_dim = 0;
    rg[1].rank = 2;
    rg[1].size[0] = 2, rg[1].size[1] = 2;
    rg[1].src.stride[0] = 2, rg[1].src.stride[1] = 1;
    rg[1].dst.offset = 2;
    rg[1].dst.stride[0] = 4, rg[1].dst.stride[1] = 1;
    mica_build_output(g, "y", mica_build_raster(g, 3, xs, TY(F32, 3, 4), 2, rg));
    return g;
}

Test(ref_ops, raster_regions_and_gather_region)
{
    mica_graph_t *g = raster_graph();
    float a[4] = {1, 2, 3, 4}, b[6] = {10, 11, 20, 21, 30, 31};
    int32_t ids[2] = {2, 0};
    mica_ref_tensor_t in[3] = {bind("a", TY(F32, 2, 2), a), bind("b", TY(F32, 3, 2), b),
                               bind("ids", TY(I32, 2), ids)};
    mica_ref_outputs_t *o = run_ok(g, in, 3);
    expect_f(o, "y", (const float[]){1, 3, 30, 31, 2, 4, 10, 11, 0, 0, 0, 0}, 12, 0);
    mica_ref_outputs_release(o);

    /* the same raster with an id past b's rows fails at run time */
    ids[0] = 3;
    run_fails(g, in, 3, MICA_ERR_RANGE, "%3 (raster): region 1: id 3 out of range [0, 3)");
    mica_graph_release(g);
}

Test(ref_ops, operand_views)
{
    /* scale reads x [2, 3] through a transposing view of shape [3, 2];
     * add reads its second operand through view offset 1, stride 2 over
     * x's 6 elements (x[1], x[3], x[5]). */
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 2, 3));
    int32_t b = mica_build_input(g, "b", TY(F32, 3));

    mica_node_t n;
    memset(&n, 0, sizeof n);
    mica_operand_t ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].value = x;
    ops[0].has_view = true;
    ops[0].view_rank = 2;
    ops[0].view_shape[0] = 3, ops[0].view_shape[1] = 2;
    ops[0].view.stride[0] = 1, ops[0].view.stride[1] = 3;
    n.op = MICA_OP_SCALE;
    n.n_inputs = 1;
    n.inputs = ops;
    n.attrs[0].f = 2.0;
    mica_build_output(g, "scaled_t", mica_graph_append(g, &n, true));

    memset(&n, 0, sizeof n);
    memset(ops, 0, sizeof ops);
    ops[0].value = b;
    ops[1].value = x;
    ops[1].has_view = true;
    ops[1].view_rank = 1;
    ops[1].view_shape[0] = 3;
    ops[1].view.offset = 1;
    ops[1].view.stride[0] = 2;
    n.op = MICA_OP_ADD;
    n.n_inputs = 2;
    n.inputs = ops;
    mica_build_output(g, "odd_plus_b", mica_graph_append(g, &n, true));

    float xs[6] = {1, 2, 3, 4, 5, 6}, bs[3] = {100, 200, 300};
    mica_ref_tensor_t in[2] = {bind("x", TY(F32, 2, 3), xs), bind("b", TY(F32, 3), bs)};
    mica_ref_outputs_t *o = run_ok(g, in, 2);
    expect_f(o, "scaled_t", (const float[]){2, 8, 4, 10, 6, 12}, 6, 0);
    expect_f(o, "odd_plus_b", (const float[]){102, 204, 306}, 3, 0);
    mica_ref_outputs_release(o);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* errors                                                                    */

Test(ref_ops, unbound_and_mistyped_inputs)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 2));
    mica_build_output(g, "y", mica_build_unary(g, MICA_OP_SILU, x));
    float xs[3] = {0};
    run_fails(g, NULL, 0, MICA_ERR_INVALID, "%0 (input): input 'x' is not bound");
    mica_ref_tensor_t other = bind("z", TY(F32, 2), xs);
    run_fails(g, &other, 1, MICA_ERR_INVALID, "input 'x' is not bound");
    mica_ref_tensor_t wrong = bind("x", TY(F32, 3), xs);
    run_fails(g, &wrong, 1, MICA_ERR_INVALID, "input 'x' is bound as f32[3], declared f32[2]");
    mica_ref_tensor_t nodata = bind("x", TY(F32, 2), NULL);
    run_fails(g, &nodata, 1, MICA_ERR_INVALID, "without data");
    mica_graph_release(g);
}

Test(ref_ops, ids_out_of_range)
{
    static const float table[4 * 3] = {0};
    mica_graph_t *g = new_graph();
    int32_t t = mica_build_weight(g, "t", TY(F32, 4, 3), table, sizeof table);
    int32_t ids = mica_build_input(g, "ids", TY(I32, 2));
    mica_build_output(g, "e", mica_build_binary(g, MICA_OP_EMBEDDING, t, ids));
    int32_t bad[2] = {1, 7};
    mica_ref_tensor_t in = bind("ids", TY(I32, 2), bad);
    run_fails(g, &in, 1, MICA_ERR_RANGE, "%2 (embedding): id 7 out of range [0, 4)");
    bad[1] = -1;
    run_fails(g, &in, 1, MICA_ERR_RANGE, "%2 (embedding): id -1 out of range [0, 4)");
    mica_graph_release(g);

    g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 3, 2));
    ids = mica_build_input(g, "ids", TY(I32, 2));
    mica_build_output(g, "y", mica_build_gather(g, x, ids, 1));
    float xs[6] = {0};
    mica_ref_tensor_t in2[2] = {bind("x", TY(F32, 3, 2), xs), bind("ids", TY(I32, 2), bad)};
    bad[0] = 0, bad[1] = 2;
    run_fails(g, in2, 2, MICA_ERR_RANGE, "%2 (gather): id 2 out of range [0, 2)");
    mica_graph_release(g);
}

Test(ref_ops, weights_without_data_or_packed)
{
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 1, 4));
    int32_t w = mica_build_weight(g, "w", TY(F32, 2, 4), NULL, 0);
    mica_build_output(g, "y", mica_build_binary(g, MICA_OP_MATMUL, x, w));
    float xs[4] = {0};
    mica_ref_tensor_t in = bind("x", TY(F32, 1, 4), xs);
    run_fails(g, &in, 1, MICA_ERR_INVALID, "%1 (weight): weight 'w' has no data");
    mica_graph_release(g);

    static const float wd[8] = {0};
    g = new_graph();
    mica_type_t packed = TY(F32, 2, 4);
    packed.layout.kind = MICA_LAYOUT_PACKED;
    packed.layout.hp = 2, packed.layout.lp = 4;
    x = mica_build_input(g, "x", TY(F32, 1, 4));
    w = mica_build_weight(g, "w", packed, wd, sizeof wd);
    mica_build_output(g, "y", mica_build_binary(g, MICA_OP_MATMUL, x, w));
    run_fails(g, &in, 1, MICA_ERR_UNSUPPORTED, "weight 'w' is packed");
    mica_graph_release(g);
}

Test(ref_ops, unsupported_weight_dtype)
{
    /* i8 weights have no float meaning on their own: refused, no crash */
    static const int8_t wd[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    mica_graph_t *g = new_graph();
    int32_t x = mica_build_input(g, "x", TY(F32, 1, 4));
    int32_t w = mica_build_weight(g, "w", TY(I8, 2, 4), wd, sizeof wd);
    mica_build_output(g, "y", mica_build_binary(g, MICA_OP_MATMUL, x, w));
    float xs[4] = {0};
    mica_ref_tensor_t in = bind("x", TY(F32, 1, 4), xs);
    mica_diag_t d = {0};
    mica_ref_outputs_t *o = NULL;
    mica_status_t s = mica_ref_execute(g, &in, 1, &o, &d);
    cr_assert_neq(s, MICA_OK);
    cr_assert_null(o);
    cr_assert(strncmp(d.msg, "%2 (matmul): ", 13) == 0, "message '%s'", d.msg);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* the op table and state                                                    */

Test(ref_ops, every_op_has_a_kernel)
{
    for (int op = 0; op < MICA_OP_COUNT; op++)
        cr_expect(mica_ref_op_supported((mica_op_t)op), "the ref backend has no kernel for %s",
                  mica_op_info((mica_op_t)op)->name);
}

/* kv_store writes rows p0 .. p0+n-1 of each head in place and nothing else;
 * attention_kv then matches plain loops over the cache: query t < n sees
 * keys 0 .. p0+t of its kv head, rows t >= n are zero. */
Test(ref_ops, kv_store_and_attention_kv_against_plain_loops)
{
    enum { T = 4, HQ = 4, HKV = 2, D = 8, C = 8, P0 = 3, N = 2 };
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 11);
    static float q[T * HQ * D], kn[T * HKV * D], vn[T * HKV * D];
    static float kc[HKV * C * D], vc[HKV * C * D], kc0[HKV * C * D];
    for (int i = 0; i < T * HQ * D; i++)
        q[i] = mica_test_rng_float(&rng);
    for (int i = 0; i < T * HKV * D; i++) {
        kn[i] = mica_test_rng_float(&rng);
        vn[i] = mica_test_rng_float(&rng);
    }
    for (int i = 0; i < HKV * C * D; i++) {
        kc[i] = kc0[i] = mica_test_rng_float(&rng);
        vc[i] = mica_test_rng_float(&rng);
    }
    static float vc0[HKV * C * D];
    memcpy(vc0, vc, sizeof vc);

    mica_graph_t *g = new_graph();
    int32_t xq = mica_build_input(g, "q", TY(F32, T, HQ, D));
    int32_t xk = mica_build_input(g, "k", TY(F32, T, HKV, D));
    int32_t xv = mica_build_input(g, "v", TY(F32, T, HKV, D));
    int32_t p0 = mica_build_input(g, "n_past", mica_type_make(MICA_DTYPE_I32, 0, NULL));
    int32_t cnt = mica_build_input(g, "n_tokens", mica_type_make(MICA_DTYPE_I32, 0, NULL));
    int32_t ks = mica_build_kv_store(g, mica_build_state(g, "kc", TY(F32, HKV, C, D)), xk, p0, cnt);
    int32_t vs = mica_build_kv_store(g, mica_build_state(g, "vc", TY(F32, HKV, C, D)), xv, p0, cnt);
    mica_build_output(g, "y", mica_build_attention_kv(g, xq, ks, vs, p0, cnt, 0.3));
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);

    int32_t lens[2] = {P0, N};
    mica_ref_tensor_t in[5] = {
        bind("q", TY(F32, T, HQ, D), q), bind("k", TY(F32, T, HKV, D), kn),
        bind("v", TY(F32, T, HKV, D), vn),
        bind("n_past", mica_type_make(MICA_DTYPE_I32, 0, NULL), &lens[0]),
        bind("n_tokens", mica_type_make(MICA_DTYPE_I32, 0, NULL), &lens[1]),
    };
    mica_ref_tensor_t st[2] = {bind("kc", TY(F32, HKV, C, D), kc), bind("vc", TY(F32, HKV, C, D), vc)};
    mica_ref_outputs_t *o = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_execute_stateful(g, in, 5, st, 2, &o, &d), MICA_OK, "%s", d.msg);

    /* the oracle: plain loops over the expected cache contents */
    for (int h = 0; h < HKV; h++)
        for (int t = 0; t < N; t++)
            for (int i = 0; i < D; i++) {
                kc0[(h * C + P0 + t) * D + i] = kn[(t * HKV + h) * D + i];
                vc0[(h * C + P0 + t) * D + i] = vn[(t * HKV + h) * D + i];
            }
    cr_assert(memcmp(kc, kc0, sizeof kc) == 0, "the key cache holds other than the stored rows");
    cr_assert(memcmp(vc, vc0, sizeof vc) == 0, "the value cache holds other than the stored rows");
    static float want[T * HQ * D];
    for (int t = 0; t < N; t++)
        for (int h = 0; h < HQ; h++) {
            int kh = h / (HQ / HKV);
            double sc[C], mx = -1e300, sum = 0;
            for (int j = 0; j <= P0 + t; j++) {
                double dot = 0;
                for (int i = 0; i < D; i++)
                    dot += (double)q[(t * HQ + h) * D + i] * kc0[(kh * C + j) * D + i];
                sc[j] = 0.3 * dot;
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (int j = 0; j <= P0 + t; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            for (int i = 0; i < D; i++) {
                double acc = 0;
                for (int j = 0; j <= P0 + t; j++)
                    acc += sc[j] / sum * vc0[(kh * C + j) * D + i];
                want[(t * HQ + h) * D + i] = (float)acc;
            }
        }
    expect_f(o, "y", want, T * HQ * D, 1e-6);
    mica_ref_outputs_release(o);

    /* lengths outside the call or the cache are refused */
    int32_t bad[][2] = {{0, 0}, {0, T + 1}, {C - 1, 2}, {-1, 1}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        lens[0] = bad[b][0];
        lens[1] = bad[b][1];
        o = NULL;
        cr_assert_eq(mica_ref_execute_stateful(g, in, 5, st, 2, &o, &d), MICA_ERR_RANGE,
                     "p0 %d n %d", lens[0], lens[1]);
        cr_assert_null(o);
    }
    /* an unbound state is an error, not a crash */
    lens[0] = P0;
    lens[1] = N;
    cr_assert_eq(mica_ref_execute_stateful(g, in, 5, st, 1, &o, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "state 'vc' is not bound"), "%s", d.msg);
    mica_graph_release(g);
}
