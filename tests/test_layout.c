/* The layout pass (passes/layout.h) and the tiled order (ir/layout_index.h)
 * against independent oracles: the packed bytes against the index formula
 * written out here by hand, padding zero; the ref output of a qmatmul /
 * wmatmul graph on packed weights against the same graph row-major,
 * bit for bit, for every paper tile; the static programs of the golden
 * models through layout against the same programs through quantize only,
 * bit for bit; the text form of tiled types. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "layout.h"
#include "layout_index.h"
#include "program.h"
#include "quantize.h"
#include "ref.h"
#include "ref_program.h"
#include "target.h"
#include "test_model.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* hand-written packing (the oracle)                                         */

/* W [N, K] row-major (u4 two per byte, low nibble = even element; or es-byte
 * elements) packed into [ceil(N/hp)][ceil(K/lp)][hp][lp], zero padded; u4
 * tiles in halves order: byte i of a tile = element i (low) | i + T/2
 * (high), T = hp*lp. Returns a calloc'd buffer of *out_bytes. */
static uint8_t *oracle_pack(const uint8_t *w, int u4, int es, int64_t N, int64_t K, int64_t hp,
                            int64_t lp, size_t *out_bytes)
{
    const int64_t tn = (N + hp - 1) / hp, tk = (K + lp - 1) / lp, T = hp * lp;
    const size_t bytes = u4 ? (size_t)(tn * tk * T / 2) : (size_t)(tn * tk * T * es);
    uint8_t *p = calloc(bytes, 1);
    cr_assert_not_null(p);
    for (int64_t a = 0; a < tn; a++)
        for (int64_t b = 0; b < tk; b++)
            for (int64_t i = 0; i < hp; i++)
                for (int64_t j = 0; j < lp; j++) {
                    const int64_t n = a * hp + i, k = b * lp + j;
                    if (n >= N || k >= K)
                        continue; /* padding stays zero */
                    const int64_t tile = a * tk + b, w_in = i * lp + j;
                    if (u4) {
                        const int64_t src = n * K + k;
                        const int v = (w[src / 2] >> (src % 2 ? 4 : 0)) & 0xf;
                        const int64_t at = tile * (T / 2) + (w_in < T / 2 ? w_in : w_in - T / 2);
                        p[at] |= (uint8_t)(v << (w_in < T / 2 ? 0 : 4));
                    } else {
                        memcpy(p + (tile * T + w_in) * es, w + (n * K + k) * es, (size_t)es);
                    }
                }
    *out_bytes = bytes;
    return p;
}

/* ------------------------------------------------------------------------ */
/* a small quantized graph                                                   */

/* Random weight bytes: q (u4 or i8) [N, K], f16 scales and mins [N, K/G]
 * (small finite values), all malloc'd. */
typedef struct qw {
    int64_t N, K, G;
    mica_dtype_t qt;
    uint8_t *q, *s, *m;
    size_t qbytes, sbytes;
} qw_t;

static void qw_make(qw_t *w, mica_dtype_t qt, int64_t N, int64_t K, int64_t G, uint64_t seed)
{
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, seed);
    *w = (qw_t){.N = N, .K = K, .G = G, .qt = qt};
    w->qbytes = (size_t)(qt == MICA_DTYPE_U4 ? N * K / 2 : N * K);
    w->sbytes = (size_t)(2 * N * (K / G));
    w->q = malloc(w->qbytes);
    w->s = malloc(w->sbytes);
    w->m = malloc(w->sbytes);
    for (size_t i = 0; i < w->qbytes; i++)
        w->q[i] = (uint8_t)mica_test_rng_range(&rng, 0, 255);
    for (size_t i = 0; i < w->sbytes / 2; i++) {
        /* f16 with exponent 10..17 and a random mantissa: 2^-5 .. 2^2 */
        uint16_t hs = (uint16_t)((mica_test_rng_range(&rng, 10, 17) << 10) |
                                 mica_test_rng_range(&rng, 0, 1023));
        uint16_t hm = (uint16_t)(hs | (mica_test_rng_range(&rng, 0, 1) << 15));
        memcpy(w->s + 2 * i, &hs, 2);
        memcpy(w->m + 2 * i, &hm, 2);
    }
}

static void qw_free(qw_t *w)
{
    free(w->q);
    free(w->s);
    free(w->m);
}

/* x [T, K] -> qmatmul "y8" (activation group ag) and wmatmul "y16" on w. */
static mica_graph_t *qgraph(const qw_t *w, int64_t T, int64_t ag)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t xs[2] = {T, w->K}, qs[2] = {w->N, w->K}, ss[2] = {w->N, w->K / w->G};
    int32_t xi = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xs));
    int32_t wi = mica_build_weight(g, "w.q", mica_type_make(w->qt, 2, qs), w->q, w->qbytes);
    int32_t si = mica_build_weight(g, "w.s", mica_type_make(MICA_DTYPE_F16, 2, ss), w->s, w->sbytes);
    int32_t mi = mica_build_weight(g, "w.m", mica_type_make(MICA_DTYPE_F16, 2, ss), w->m, w->sbytes);
    int32_t sc = mica_test_op(g, MICA_OP_ACT_SCALE, 1, &xi, ag, 0);
    int32_t xq = mica_test_op(g, MICA_OP_ACT_QUANT, 2, (int32_t[]){xi, sc}, ag, 0);
    int32_t y8 = mica_test_op(g, MICA_OP_QMATMUL, 5, (int32_t[]){xq, sc, wi, si, mi}, ag, w->G);
    int32_t y16 = mica_test_op(g, MICA_OP_WMATMUL, 4, (int32_t[]){xi, wi, si, mi}, w->G, 0);
    mica_build_output(g, "y8", y8);
    mica_build_output(g, "y16", y16);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    return g;
}

static const mica_node_t *find_weight(const mica_graph_t *g, const char *name)
{
    const mica_node_t *found = NULL;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == MICA_OP_WEIGHT && strcmp(mica_node_name(g->nodes[i]), name) == 0)
            found = g->nodes[i];
    cr_assert_not_null(found, "no weight %s", name);
    return found;
}

static mica_target_tile_t tile_of(int32_t ep, int32_t hp, int32_t lp)
{
    mica_target_tile_t t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "t%dx%dx%d", ep, hp, lp);
    t.ep = ep, t.hp = hp, t.lp = lp;
    return t;
}

/* The ref outputs y8, y16 of g on x, copied (caller frees). */
static void run_graph(const mica_graph_t *g, float *x, int64_t T, int64_t K, int64_t N,
                      float **y8, float **y16)
{
    int64_t xs[2] = {T, K};
    mica_ref_tensor_t in = {"x", mica_type_make(MICA_DTYPE_F32, 2, xs), x};
    mica_ref_outputs_t *o = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_execute(g, &in, 1, &o, &d), MICA_OK, "%s", d.msg);
    *y8 = malloc((size_t)(T * N) * sizeof **y8);
    *y16 = malloc((size_t)(T * N) * sizeof **y16);
    memcpy(*y8, mica_ref_outputs_find(o, "y8")->data, (size_t)(T * N) * sizeof **y8);
    memcpy(*y16, mica_ref_outputs_find(o, "y16")->data, (size_t)(T * N) * sizeof **y16);
    mica_ref_outputs_release(o);
}

/* Packs the weights of a qmatmul graph for (ep, hp, lp): bytes against the
 * hand-written packing, types as the header says, ref output unchanged. */
static void check_tile(mica_dtype_t qt, int64_t N, int64_t K, int64_t G, int32_t ep, int32_t hp,
                       int32_t lp)
{
    qw_t w;
    qw_make(&w, qt, N, K, G, (uint64_t)(N * 131 + K * 7 + hp * 3 + lp));
    const int64_t T = 3, ag = G;
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 99);
    float *x = malloc((size_t)(T * K) * sizeof *x);
    for (int64_t i = 0; i < T * K; i++)
        x[i] = mica_test_rng_float(&rng);

    mica_graph_t *g = qgraph(&w, T, ag);
    float *a8, *a16, *b8, *b16;
    run_graph(g, x, T, K, N, &a8, &a16);

    mica_diag_t d = {0};
    mica_const_store_t *store = NULL;
    cr_assert_eq(mica_const_store_create(&store, &d), MICA_OK);
    mica_target_tile_t tile = tile_of(ep, hp, lp);
    mica_layout_stats_t st;
    cr_assert_eq(mica_pass_layout(&tile, store, &g, &st, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(st.n_matmuls, 2);
    cr_assert_eq(st.n_weights, 3);
    cr_assert_eq(st.n_packed, 3);

    const int u4 = qt == MICA_DTYPE_U4;
    size_t want_q, want_s;
    uint8_t *pq = oracle_pack(w.q, u4, 1, N, K, hp, lp, &want_q);
    uint8_t *ps = oracle_pack(w.s, 0, 2, N, K / G, hp, 1, &want_s);
    uint8_t *pm = oracle_pack(w.m, 0, 2, N, K / G, hp, 1, &want_s);
    const mica_node_t *nq = find_weight(g, "w.q"), *ns = find_weight(g, "w.s"),
                      *nm = find_weight(g, "w.m");
    cr_assert_eq(nq->nbytes, want_q, "q: %llu bytes, want %zu", (unsigned long long)nq->nbytes,
                 want_q);
    cr_assert_eq(ns->nbytes, want_s);
    cr_assert_eq(nm->nbytes, want_s);
    cr_assert_eq(memcmp(nq->data, pq, want_q), 0, "packed q differs from the formula");
    cr_assert_eq(memcmp(ns->data, ps, want_s), 0, "packed scales differ from the formula");
    cr_assert_eq(memcmp(nm->data, pm, want_s), 0, "packed mins differ from the formula");
    cr_assert_eq((uintptr_t)nq->data % 64, 0, "packed blob not 64-byte aligned");
    cr_assert_eq(st.bytes_packed, want_q + 2 * want_s);
    cr_assert_eq(st.bytes_plain, w.qbytes + 2 * w.sbytes);
    /* the types */
    cr_assert_eq(nq->type.layout.kind, MICA_LAYOUT_PACKED);
    cr_assert_eq(nq->type.layout.pad_n, (N + hp - 1) / hp * hp);
    cr_assert_eq(nq->type.layout.pad_k, (K + lp - 1) / lp * lp);
    cr_assert_eq(nq->type.layout.nibbles, u4 ? MICA_LAYOUT_NIBBLES_HALVES : MICA_LAYOUT_NIBBLES_NONE);
    cr_assert_eq(ns->type.layout.lp, 1);
    cr_assert_eq(ns->type.layout.hp, hp);
    cr_assert_eq(nq->type.shape[0], N);
    cr_assert_eq(nq->type.shape[1], K);

    run_graph(g, x, T, K, N, &b8, &b16);
    cr_assert_eq(memcmp(a8, b8, (size_t)(T * N) * sizeof *a8), 0, "qmatmul output changed");
    cr_assert_eq(memcmp(a16, b16, (size_t)(T * N) * sizeof *a16), 0, "wmatmul output changed");

    /* a second graph finds the packed copies in the store */
    mica_graph_t *g2 = qgraph(&w, T, ag);
    int64_t blobs = mica_const_store_count(store);
    cr_assert_eq(mica_pass_layout(&tile, store, &g2, &st, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(st.n_packed, 0);
    cr_assert_eq(st.n_shared, 3);
    cr_assert_eq(mica_const_store_count(store), blobs);
    cr_assert_eq(find_weight(g2, "w.q")->data, nq->data);

    mica_graph_release(g2);
    mica_graph_release(g);
    mica_const_store_release(store);
    free(pq), free(ps), free(pm);
    free(a8), free(a16), free(b8), free(b16);
    free(x);
    qw_free(&w);
}

/* N, K multiples of hp, lp, and not (padding), u4 and i8 */
Test(layout_pack, u4_multiples) { check_tile(MICA_DTYPE_U4, 16, 64, 32, 12, 8, 4); }
Test(layout_pack, u4_padded) { check_tile(MICA_DTYPE_U4, 21, 36, 12, 10, 8, 8); }
Test(layout_pack, i8_multiples) { check_tile(MICA_DTYPE_I8, 24, 96, 32, 4, 8, 4); }
Test(layout_pack, i8_padded) { check_tile(MICA_DTYPE_I8, 13, 36, 12, 10, 8, 8); }
Test(layout_pack, u4_odd_k_tiles) { check_tile(MICA_DTYPE_U4, 5, 24, 8, 12, 8, 4); }
Test(layout_pack, n_below_tile) { check_tile(MICA_DTYPE_I8, 1, 16, 16, 4, 64, 4); }

/* Every paper tile, read from the target table, on one graph. */
Test(layout_pack, every_target_tile)
{
    static const struct {
        const char *target;
        int32_t ep, hp, lp; /* the MNN-LLM paper's tiles */
    } want[] = {
        {"x86-avx2", 4, 8, 4},
        {"x86-avx512vnni", 4, 64, 4},
        {"armv8.2-dotprod", 12, 8, 4},
        {"armv8.6-i8mm", 10, 8, 8},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        mica_target_t t;
        mica_diag_t d = {0};
        cr_assert_eq(mica_target_find(want[i].target, &t, &d), MICA_OK, "%s", d.msg);
        mica_target_tile_t tile;
        cr_assert(mica_layout_target_tile(&t, &tile));
        cr_assert(tile.ep == want[i].ep && tile.hp == want[i].hp && tile.lp == want[i].lp,
                  "%s: tile %d/%d/%d", want[i].target, tile.ep, tile.hp, tile.lp);
        check_tile(MICA_DTYPE_U4, 70, 96, 32, tile.ep, tile.hp, tile.lp);
        check_tile(MICA_DTYPE_I8, 70, 96, 32, tile.ep, tile.hp, tile.lp);
    }
    /* no target: the declared default; OpenCL: row-major */
    mica_target_tile_t tile;
    cr_assert(mica_layout_target_tile(NULL, &tile));
    cr_assert_str_eq(tile.name, "avx512vnni");
    mica_target_t cl;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_find("opencl", &cl, &d), MICA_OK, "%s", d.msg);
    cr_assert_not(mica_layout_target_tile(&cl, &tile));
}

/* The index function itself against the formula, on a few elements. */
Test(layout_index, offsets)
{
    mica_type_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_layout_tiled_type(MICA_DTYPE_U4, 21, 36, 10, 8, 8, &t, &d), MICA_OK);
    cr_assert_eq(mica_layout_nbytes(&t), 24 * 40 / 2);
    int32_t sh;
    /* (n, k) = (9, 13): tile (1, 1) of 5 along K = tile 6, in-tile 1*8+5 = 13 < 32: low */
    cr_assert_eq(mica_layout_offset(&t, 9, 13, &sh), 6 * 32 + 13);
    cr_assert_eq(sh, 0);
    /* (n, k) = (20, 35): tile (2, 4) = 14, in-tile 4*8+3 = 35 >= 32: byte 3, high */
    cr_assert_eq(mica_layout_offset(&t, 20, 35, &sh), 14 * 32 + 3);
    cr_assert_eq(sh, 4);
    cr_assert_eq(mica_layout_tiled_type(MICA_DTYPE_F16, 21, 3, 10, 8, 1, &t, &d), MICA_OK);
    /* (n, g) = (10, 2): tile (1, 2) = 5 of 3, in-tile 2: element 42, byte 84 */
    cr_assert_eq(mica_layout_offset(&t, 10, 2, &sh), 84);
    cr_assert_eq(mica_layout_tiled_type(MICA_DTYPE_U4, 4, 4, 1, 3, 3, &t, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_layout_tiled_type(MICA_DTYPE_Q4_0, 4, 32, 1, 4, 4, &t, &d), MICA_ERR_INVALID);
}

/* ------------------------------------------------------------------------ */
/* text                                                                      */

static void roundtrip(const char *text)
{
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_parse(text, strlen(text), &g, &d), MICA_OK, "%s\n%s", d.msg, text);
    char *p = mica_graph_print(g);
    cr_assert_str_eq(p, text);
    free(p);
    mica_graph_release(g);
}

static void refused(const char *text, const char *needle)
{
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_neq(mica_graph_parse(text, strlen(text), &g, &d), MICA_OK, "%s", text);
    cr_assert(strstr(d.msg, needle), "got '%s', want '%s'", d.msg, needle);
    cr_assert_null(g);
}

#define H "# mica ir 1\n"
#define QW "%0 = input() {name=\"x\"} : f32[2,36]\n"

Test(layout_text, tiled_types_round_trip)
{
    roundtrip(H QW "%1 = weight() {name=\"w.q\"} : u4[21,36] packed(10,8,8) tiles[3,5,8,8] "
                   "nibbles=halves\n"
                   "%2 = weight() {name=\"w.s\"} : f16[21,3] packed(10,8,1) tiles[3,3,8,1]\n"
                   "%3 = weight() {name=\"w.m\"} : f16[21,3] packed(10,8,1) tiles[3,3,8,1]\n"
                   "%4 = wmatmul(%0, %1, %2, %3) {group=12} : f32[2,21]\n"
                   "%5 = output(%4) {name=\"y\"} : f32[2,21]\n");
    roundtrip(H "%0 = weight() {name=\"w\"} : i8[64,64] packed(4,64,4) tiles[1,16,64,4]\n");
    /* the generic form (tiles not given) stays as it was */
    roundtrip(H "%0 = weight() {name=\"w\"} : q4_0[64,64] packed(4,8,4)\n");
}

Test(layout_text, bad_tiles_refused)
{
    refused(H "%0 = weight() {name=\"w\"} : i8[21,36] packed(10,8,8) tiles[2,5,8,8]\n",
            "do not cover");
    refused(H "%0 = weight() {name=\"w\"} : i8[21,36] packed(10,8,8) tiles[3,5,8,4]\n",
            "tiles must be [TN,TK,8,8]");
    refused(H "%0 = weight() {name=\"w\"} : u4[21,36] packed(10,8,8) tiles[3,5,8,8]\n",
            "nibbles=halves");
    refused(H "%0 = weight() {name=\"w\"} : i8[21,36] packed(10,8,8) tiles[3,5,8,8] "
              "nibbles=halves\n",
            "nibble order");
    refused(H "%0 = weight() {name=\"w\"} : i8[2,21,36] packed(10,8,8) tiles[3,5,8,8]\n",
            "rank-3");
    refused(H "%0 = weight() {name=\"w\"} : i8[21,36] packed(10,8,8) tiles[3,5,8,8] nibbles=odd\n",
            "halves");
    /* a packed weight whose scales are row-major */
    refused(H QW "%1 = weight() {name=\"w.q\"} : i8[21,36] packed(10,8,8) tiles[3,5,8,8]\n"
                 "%2 = weight() {name=\"w.s\"} : f16[21,3]\n"
                 "%3 = weight() {name=\"w.m\"} : f16[21,3]\n"
                 "%4 = wmatmul(%0, %1, %2, %3) {group=12} : f32[2,21]\n",
            "needs its scales tiled as packed(10,8,1)");
}

/* The verifier checks a bound tiled weight's bytes against the padded size. */
Test(layout_text, bound_bytes_checked)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    mica_type_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_layout_tiled_type(MICA_DTYPE_I8, 21, 36, 10, 8, 8, &t, &d), MICA_OK);
    static uint8_t bytes[24 * 40];
    cr_assert_geq(mica_build_weight(g, "w", t, bytes, sizeof bytes), 0);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    g->nodes[0]->nbytes = 21 * 36; /* the unpadded size */
    cr_assert_eq(mica_graph_verify(g, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "padding included"), "%s", d.msg);
    mica_graph_release(g);
    /* the builder refuses it too */
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    cr_assert_lt(mica_build_weight(g, "w", t, bytes, 21 * 36), 0);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* static programs: through layout == through quantize only                  */

enum { STAGE_QUANTIZE = 0, STAGE_LAYOUT_DIRECT = 1, STAGE_LAYOUT_PIPELINE = 2 };

/* Logits of the program of FILE (prefill in chunks of 8 over all ids, then
 * decode of the first n_dec ids after a reset) after the pipeline through
 * quantize, then as `stage` says: nothing more, mica_pass_layout with the
 * tile of `target` on both graphs (checking the second finds the first's
 * copies), or the pipeline run through "layout" with `target`. */
static float *program_logits(const char *file, const char *quant, int stage, const char *target,
                             const int32_t *ids, int32_t n, int32_t n_dec, size_t *out_count)
{
    mica_gguf_t *f = NULL;
    mica_model_config_t cfg;
    mica_program_t *p = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden(file), &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_config_from_gguf(f, &cfg, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_program_build(f, &cfg, 8, 40, &p, &d), MICA_OK, "%s", d.msg);
    mica_target_t t;
    if (target)
        cr_assert_eq(mica_target_find(target, &t, &d), MICA_OK, "%s", d.msg);
    mica_compile_options_t co;
    mica_compile_options_init(&co);
    co.quant = quant;
    mica_pass_ctx_t ctx;
    cr_assert_eq(mica_pass_ctx_init(&ctx, target ? &t : NULL, &co, &d), MICA_OK);
    const char *after = stage == STAGE_LAYOUT_PIPELINE ? "layout" : "quantize";
    cr_assert_eq(mica_pipeline_run_program(&ctx, p, after, true, &d), MICA_OK, "%s", d.msg);
    mica_pass_ctx_deinit(&ctx);
    if (stage == STAGE_LAYOUT_DIRECT) {
        mica_target_tile_t tile;
        cr_assert(mica_layout_target_tile(target ? &t : NULL, &tile));
        mica_layout_stats_t s1, s2;
        cr_assert_eq(mica_pass_layout(&tile, p->consts, &p->prefill, &s1, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_pass_layout(&tile, p->consts, &p->decode, &s2, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_graph_verify(p->prefill, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_graph_verify(p->decode, &d), MICA_OK, "%s", d.msg);
        cr_assert_gt(s1.n_matmuls, 0);
        cr_assert_eq(s1.n_packed, s1.n_weights);
        cr_assert_eq(s2.n_packed, 0, "decode packed its weights again");
        cr_assert_eq(s2.n_shared, s2.n_weights);
        cr_log_info("%s %s on %s: %lld weights packed, %llu -> %llu bytes (+%.2f%% padding)",
                    file, quant, tile.name, (long long)s1.n_weights,
                    (unsigned long long)s1.bytes_plain, (unsigned long long)s1.bytes_packed,
                    100.0 * ((double)s1.bytes_packed / (double)s1.bytes_plain - 1.0));
    }
    if (stage != STAGE_QUANTIZE) {
        /* every quantized matmul reads tiled weights; states carry the note */
        const mica_graph_t *gs[2] = {p->prefill, p->decode};
        for (int gi = 0; gi < 2; gi++)
            for (int32_t i = 0; i < gs[gi]->n_nodes; i++) {
                const mica_node_t *nd = gs[gi]->nodes[i];
                const int32_t q = nd->op == MICA_OP_QMATMUL ? 2 : nd->op == MICA_OP_WMATMUL ? 1 : -1;
                if (q >= 0)
                    cr_assert(mica_layout_is_tiled(&gs[gi]->nodes[nd->inputs[q].value]->type),
                              "%%%d reads a row-major weight", i);
                if (nd->op == MICA_OP_STATE)
                    cr_assert_str_eq(nd->note, MICA_LAYOUT_KV_NOTE);
            }
    }
    mica_ref_program_t *r = NULL;
    cr_assert_eq(mica_ref_program_create(p, &r, &d), MICA_OK, "%s", d.msg);
    const size_t nv = (size_t)cfg.n_vocab, count = nv * (size_t)(n + n_dec);
    float *out = malloc(count * sizeof *out);
    cr_assert_eq(mica_ref_program_eval(r, ids, n, true, out, &d), MICA_OK, "%s", d.msg);
    mica_ref_program_reset(r);
    for (int32_t i = 0; i < n_dec; i++)
        cr_assert_eq(mica_ref_program_eval(r, &ids[i], 1, false, out + nv * (size_t)(n + i), &d),
                     MICA_OK, "%s", d.msg);
    mica_ref_program_release(r);
    mica_program_release(p);
    mica_gguf_close(f);
    *out_count = count;
    return out;
}

static void check_program(const char *model, const char *type, const char *quant)
{
    char file[128], ids_name[128];
    snprintf(file, sizeof file, "%s.%s.gguf", model, type);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    int32_t ids[64];
    int32_t n = (int32_t)mica_test_read_ids(ids_name, ids, 64);
    cr_assert_eq(n, 16);
    size_t c0, c1, c2;
    float *base = program_logits(file, quant, STAGE_QUANTIZE, NULL, ids, n, 4, &c0);
    float *direct = program_logits(file, quant, STAGE_LAYOUT_DIRECT, NULL, ids, n, 4, &c1);
    float *pipe = program_logits(file, quant, STAGE_LAYOUT_PIPELINE, "sd8gen3", ids, n, 4, &c2);
    cr_assert(c0 == c1 && c0 == c2);
    double maxd = 0;
    for (size_t i = 0; i < c0; i++) {
        double e1 = (double)direct[i] - (double)base[i], e2 = (double)pipe[i] - (double)base[i];
        maxd = e1 * e1 > maxd * maxd ? (e1 < 0 ? -e1 : e1) : maxd;
        maxd = e2 * e2 > maxd * maxd ? (e2 < 0 ? -e2 : e2) : maxd;
    }
    cr_log_info("%s %s: max |logit diff| after layout = %g", file, quant, maxd);
    cr_assert_eq(memcmp(base, direct, c0 * sizeof *base), 0,
                 "%s %s: logits changed by the layout pass (default tile)", file, quant);
    cr_assert_eq(memcmp(base, pipe, c0 * sizeof *base), 0,
                 "%s %s: logits changed by the layout pass (sd8gen3)", file, quant);
    free(base);
    free(direct);
    free(pipe);
}

Test(layout_program, llama_q4_0_w4a8) { check_program("llama-tiny", "q4_0", "w4a8"); }
Test(layout_program, qwen2_q8_0_w8a8) { check_program("qwen2-tiny", "q8_0", "w8a8"); }
Test(layout_program, llama_q4_0_w4a16) { check_program("llama-tiny", "q4_0", "w4a16"); }
