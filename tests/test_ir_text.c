/* IR text: print -> parse -> print is byte-identical for every op and
 * attribute kind; the sample files round-trip; malformed text is rejected
 * with "LINE:COL: ..." and never crashes the parser (every truncation and
 * random byte mutations); DOT output has the expected structure. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* a graph with every op                                                     */

static mica_type_t ty(mica_dtype_t dt, int32_t rank, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t s[3] = {d0, d1, d2};
    return mica_type_make(dt, rank, s);
}

static mica_operand_t plain(int32_t v)
{
    mica_operand_t o;
    memset(&o, 0, sizeof o);
    o.value = v;
    return o;
}

/* Operand v read through a 2-d view [r0, r1] at offset + [s0, s1]. */
static mica_operand_t viewed(int32_t v, int64_t r0, int64_t r1, int64_t off, int64_t s0,
                             int64_t s1)
{
    mica_operand_t o = plain(v);
    o.has_view = true;
    o.view_rank = 2;
    o.view_shape[0] = r0;
    o.view_shape[1] = r1;
    o.view.offset = off;
    o.view.stride[0] = s0;
    o.view.stride[1] = s1;
    return o;
}

static int32_t append_ops(mica_graph_t *g, mica_op_t op, int32_t n, mica_operand_t *in)
{
    mica_node_t nd;
    memset(&nd, 0, sizeof nd);
    nd.op = op;
    nd.n_inputs = n;
    nd.inputs = in;
    return mica_graph_append(g, &nd, true);
}

/* An op with up to two int attributes a0, a1 (in spec order). */
static int32_t append_attr(mica_graph_t *g, mica_op_t op, int32_t n, mica_operand_t *in, int64_t a0,
                           int64_t a1)
{
    mica_node_t nd;
    memset(&nd, 0, sizeof nd);
    nd.op = op;
    nd.n_inputs = n;
    nd.inputs = in;
    nd.attrs[0].i = a0;
    nd.attrs[1].i = a1;
    return mica_graph_append(g, &nd, true);
}

static mica_region_t region2(int32_t in, int64_t s0, int64_t s1, int64_t so, int64_t ss0,
                             int64_t ss1, int64_t dof, int64_t ds0, int64_t ds1)
{
    mica_region_t r;
    memset(&r, 0, sizeof r);
    r.input = in;
    r.index_input = -1;
    r.rank = 2;
    r.size[0] = s0;
    r.size[1] = s1;
    r.src.offset = so;
    r.src.stride[0] = ss0;
    r.src.stride[1] = ss1;
    r.dst.offset = dof;
    r.dst.stride[0] = ds0;
    r.dst.stride[1] = ds1;
    return r;
}

/* Awkward doubles the text must carry exactly. */
static const double awkward[] = {
    1e-5, 1.0 / 3.0, -0.0, 1e300, 4.9406564584124654e-324, 2.2250738585072009e-308,
    DBL_MAX, -DBL_MIN, 0.1, 123456789012345678.0, 1.0, 0.0, -2.5, INFINITY, -INFINITY, NAN,
};

static mica_graph_t *build_all_ops(void)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    const mica_dtype_t F32 = MICA_DTYPE_F32, I32 = MICA_DTYPE_I32;
    int32_t x = mica_build_input(g, "x\"quoted\" \\ tab\t nl\n \x01 \xc3\xa9 #", ty(F32, 2, 16, 64, 0));
    int32_t ids = mica_build_input(g, "ids", ty(I32, 1, 16, 0, 0));
    int32_t rows = mica_build_input(g, "rows", ty(I32, 1, 4, 0, 0));
    int32_t pos = mica_build_input(g, "pos", ty(I32, 1, 16, 0, 0));
    int32_t temp = mica_build_input(g, "temp", mica_type_make(F32, 0, NULL));
    int32_t wq = mica_build_weight(g, "blk.0.attn_q.weight", ty(MICA_DTYPE_Q4_0, 2, 64, 64, 0),
                                   NULL, 0);
    mica_type_t packed = ty(MICA_DTYPE_Q4_0, 2, 64, 64, 0);
    packed.layout = (mica_layout_t){MICA_LAYOUT_PACKED, 4, 8, 4, 0, 0, MICA_LAYOUT_NIBBLES_NONE};
    int32_t wp = mica_build_weight(g, "blk.0.ffn_down.weight", packed, NULL, 0);
    int32_t tab = mica_build_weight(g, "token_embd.weight", ty(MICA_DTYPE_Q8_0, 2, 100, 64, 0),
                                    NULL, 0);
    int32_t norm = mica_build_weight(g, "output_norm.weight", ty(F32, 1, 64, 0, 0), NULL, 0);

    int32_t h = mica_build_binary(g, MICA_OP_EMBEDDING, tab, ids);
    int32_t m = mica_build_binary(g, MICA_OP_MATMUL, x, wq);
    int32_t mp = mica_build_binary(g, MICA_OP_MATMUL, m, wp);
    int32_t a = mica_build_binary(g, MICA_OP_ADD, h, mp);
    a = mica_build_binary(g, MICA_OP_ADD, a, temp);
    int32_t v = mica_build_binary(g, MICA_OP_MUL, a, x);
    for (size_t i = 0; i < sizeof awkward / sizeof awkward[0]; i++)
        v = mica_build_scale(g, v, awkward[i]);
    v = mica_build_convert(g, v, MICA_DTYPE_F16);
    v = mica_build_convert(g, v, F32);
    v = mica_build_rms_norm(g, v, norm, 1e-5);
    v = mica_build_unary(g, MICA_OP_SOFTMAX, v);
    v = mica_build_unary(g, MICA_OP_SILU, v);
    v = mica_build_unary(g, MICA_OP_GELU, v);
    int64_t thd[3] = {16, 4, 16};
    int32_t q3 = mica_build_reshape(g, v, 3, thd);
    int32_t ro = mica_build_rope(g, q3, pos, 2, 16, 10000.0, 1.0);
    int32_t att = mica_build_attention(g, ro, q3, q3, 0.25);
    /* the KV cache as state: store the 16 rows, attend up to run-time lengths */
    int64_t cache[3] = {4, 32, 16};
    int32_t p0 = mica_build_input(g, "n_past", ty(MICA_DTYPE_I32, 0, 0, 0, 0));
    int32_t cnt = mica_build_input(g, "n_tokens", ty(MICA_DTYPE_I32, 0, 0, 0, 0));
    int32_t kc = mica_build_state(g, "k_cache.0", mica_type_make(F32, 3, cache));
    int32_t ks = mica_build_kv_store(g, kc, q3, p0, cnt);
    att = mica_build_attention_kv(g, att, ks, ks, p0, cnt, 0.25);
    int64_t td[2] = {16, 64};
    int32_t a2 = mica_build_reshape(g, att, 2, td);
    int64_t perm[2] = {1, 0};
    int32_t tr = mica_build_transpose(g, a2, perm);
    int64_t st[2] = {0, 0}, en[2] = {16, 64}, sp[2] = {2, 4};
    int32_t sl = mica_build_slice(g, a2, st, en, sp);
    int32_t cat[3] = {a2, x, a2};
    int32_t cc = mica_build_concat(g, 3, cat, 0);
    int32_t bc = mica_build_broadcast(g, norm, 2, td);
    int32_t ga = mica_build_gather(g, x, rows, 0);

    /* raster: rows 0..15 copy x, rows 16..19 gather 4 rows of x by `rows` */
    int32_t rin[2] = {x, rows};
    mica_region_t rg[2];
    rg[0] = region2(0, 16, 64, 0, 64, 1, 0, 64, 1);
    rg[1] = region2(0, 4, 64, 0, 64, 1, 1024, 64, 1);
    rg[1].index_input = 1;
    rg[1].index_dim = 0;
    int32_t r1 = mica_build_raster(g, 2, rin, ty(F32, 2, 20, 64, 0), 2, rg);
    /* raster: a transpose, and an empty region list */
    mica_region_t rt = region2(0, 64, 16, 0, 1, 64, 0, 16, 1);
    int32_t r2 = mica_build_raster(g, 1, &x, ty(F32, 2, 64, 16, 0), 1, &rt);
    int32_t r3 = mica_build_raster(g, 1, &x, ty(F32, 1, 7, 0, 0), 0, NULL);

    /* operands read through views */
    mica_operand_t o1[1] = {viewed(x, 64, 16, 0, 1, 64)};
    int32_t vs = append_ops(g, MICA_OP_SILU, 1, o1);
    mica_operand_t o2[2] = {viewed(x, 8, 64, 64, 128, 1), plain(wq)};
    int32_t vm = append_ops(g, MICA_OP_MATMUL, 2, o2);
    mica_operand_t o3[2] = {viewed(vm, 8, 64, 0, 64, 1), viewed(x, 8, 64, 3, 0, 1)};
    int32_t va = append_ops(g, MICA_OP_ADD, 2, o3);

    /* quantized matmul: int8 activations per 32, u4 and i8 weights with f16 scales */
    int64_t sg[2] = {32, 2};
    int32_t w4 = mica_build_weight(g, "blk.0.ffn_up.weight.q", ty(MICA_DTYPE_U4, 2, 32, 64, 0),
                                   NULL, 0);
    int32_t w8 = mica_build_weight(g, "output.weight.q", ty(MICA_DTYPE_I8, 2, 32, 64, 0), NULL, 0);
    int32_t wsc = mica_build_weight(g, "blk.0.ffn_up.weight.s", mica_type_make(MICA_DTYPE_F16, 2, sg),
                                    NULL, 0);
    int32_t wmn = mica_build_weight(g, "blk.0.ffn_up.weight.m", mica_type_make(MICA_DTYPE_F16, 2, sg),
                                    NULL, 0);
    mica_operand_t qa[1] = {plain(x)};
    int32_t xsc = append_attr(g, MICA_OP_ACT_SCALE, 1, qa, 32, 0);
    mica_operand_t qb[2] = {plain(x), plain(xsc)};
    int32_t xq = append_attr(g, MICA_OP_ACT_QUANT, 2, qb, 32, 0);
    mica_operand_t qc[5] = {plain(xq), plain(xsc), plain(w4), plain(wsc), plain(wmn)};
    int32_t qm = append_attr(g, MICA_OP_QMATMUL, 5, qc, 32, 32);
    mica_operand_t qd[4] = {plain(x), plain(w8), plain(wsc), plain(wmn)};
    int32_t wmm = append_attr(g, MICA_OP_WMATMUL, 4, qd, 32, 0);

    /* swiglu of a [16, 64] value: [16, 32] */
    int32_t sw = mica_build_unary(g, MICA_OP_SWIGLU, x);

    int32_t outs[] = {tr, sl, cc, bc, ga, r1, r2, r3, vs, va, qm, wmm, sw};
    char name[32];
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        snprintf(name, sizeof name, "out.%zu", i);
        mica_build_output(g, name, outs[i]);
    }
    mica_build_output(g, "y \"\\\x7f", m);
    cr_assert_eq(g->error.code, MICA_OK, "building: %s", g->error.msg);
    return g;
}

static char *print_checked(const mica_graph_t *g)
{
    char *t = mica_graph_print(g);
    cr_assert_not_null(t);
    return t;
}

static mica_graph_t *parse_ok(const char *text, size_t len, const char *what)
{
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    mica_status_t s = mica_graph_parse(text, len, &g, &d);
    cr_assert_eq(s, MICA_OK, "%s: %s", what, d.msg);
    cr_assert_not_null(g);
    return g;
}

static bool same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

static bool same_operand(const mica_operand_t *a, const mica_operand_t *b)
{
    if (a->value != b->value || a->has_view != b->has_view)
        return false;
    if (!a->has_view)
        return true;
    if (a->view_rank != b->view_rank || a->view.offset != b->view.offset)
        return false;
    for (int32_t d = 0; d < a->view_rank; d++)
        if (a->view_shape[d] != b->view_shape[d] || a->view.stride[d] != b->view.stride[d])
            return false;
    return true;
}

Test(ir_text, every_op_round_trips)
{
    mica_graph_t *g = build_all_ops();
    bool seen[MICA_OP_COUNT] = {0};
    for (int32_t i = 0; i < g->n_nodes; i++)
        seen[g->nodes[i]->op] = true;
    for (int op = 0; op < MICA_OP_COUNT; op++)
        cr_assert(seen[op], "op %s is not in the test graph", mica_op_info((mica_op_t)op)->name);
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);

    char *t1 = print_checked(g);
    mica_graph_t *g2 = parse_ok(t1, strlen(t1), "printed graph");
    char *t2 = print_checked(g2);
    cr_assert_str_eq(t1, t2);

    /* every attribute value survives exactly, doubles bit for bit */
    cr_assert_eq(g2->n_nodes, g->n_nodes);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *a = g->nodes[i], *b = g2->nodes[i];
        const mica_op_info_t *info = mica_op_info(a->op);
        cr_assert_eq(a->op, b->op);
        cr_assert(mica_type_equal(&a->type, &b->type), "%%%d type", i);
        cr_assert_eq(a->n_inputs, b->n_inputs);
        for (int32_t k = 0; k < a->n_inputs; k++)
            cr_assert(same_operand(&a->inputs[k], &b->inputs[k]), "%%%d operand %d", i, k);
        for (int32_t k = 0; k < info->n_attrs; k++) {
            switch (info->attr_kinds[k]) {
            case MICA_ATTR_INT:
                cr_assert_eq(a->attrs[k].i, b->attrs[k].i);
                break;
            case MICA_ATTR_FLOAT:
                cr_assert(same_double(a->attrs[k].f, b->attrs[k].f), "%%%d: %.17g vs %.17g", i,
                          a->attrs[k].f, b->attrs[k].f);
                break;
            case MICA_ATTR_STRING:
                cr_assert_str_eq(a->attrs[k].s, b->attrs[k].s);
                break;
            case MICA_ATTR_INTS:
                cr_assert_eq(a->attrs[k].n, b->attrs[k].n);
                for (int32_t j = 0; j < a->attrs[k].n; j++)
                    cr_assert_eq(a->attrs[k].v[j], b->attrs[k].v[j]);
                break;
            case MICA_ATTR_REGIONS:
                cr_assert_eq(a->n_regions, b->n_regions);
                for (int32_t r = 0; r < a->n_regions; r++)
                    cr_assert_eq(memcmp(&a->regions[r], &b->regions[r], sizeof(mica_region_t)),
                                 0, "%%%d region %d", i, r);
                break;
            }
        }
        cr_assert_null(b->data);
        cr_assert_eq(b->nbytes, 0);
    }
    /* spellings the format promises */
    cr_assert_not_null(strstr(t1, "# mica ir 1\n%0 = input() {name=\"x\\\"quoted\\\" \\\\ tab\\x09 "
                                  "nl\\x0a \\x01 \\xc3\\xa9 #\"} : f32[16,64]\n"),
                       "%s", t1);
    cr_assert_not_null(strstr(t1, "{name=\"temp\"} : f32[]\n"));
    cr_assert_not_null(strstr(t1, ": q4_0[64,64] packed(4,8,4)\n"));
    cr_assert_not_null(strstr(t1, "{eps=1.0000000000000001e-05} : f32[16,64]\n"));
    cr_assert_not_null(strstr(t1, "{s=-0}"));
    cr_assert_not_null(strstr(t1, "{s=4.9406564584124654e-324}"));
    cr_assert_not_null(strstr(t1, "{s=-inf}"));
    cr_assert_not_null(strstr(t1, "{s=nan}"));
    cr_assert_not_null(strstr(t1, "{perm=[1,0]} : f32[64,16]\n"));
    cr_assert_not_null(strstr(t1, "{regions=[{in=0 size=[16,64] src=0+[64,1] dst=0+[64,1]}, "
                                  "{in=0 idx=1@0 size=[4,64] src=0+[64,1] dst=1024+[64,1]}]} : "
                                  "f32[20,64]\n"));
    cr_assert_not_null(strstr(t1, "{regions=[]} : f32[7]\n"));
    cr_assert_not_null(strstr(t1, "silu(%0 view [64,16] 0+[1,64]) : f32[64,16]\n"));
    free(t1);
    free(t2);
    mica_graph_release(g);
    mica_graph_release(g2);
}

/* Spaces, tabs, CRLF, comments and non-canonical numbers read fine and
 * print canonically. */
Test(ir_text, lenient_spelling_prints_canonically)
{
    const char *in = "# mica ir 1  \r\n"
                     "\n"
                     "# a comment line\n"
                     "   %0=input( ){ name = \"a\\n\\tb\" }:f32 [ 2 , 3 ]   # trailing\r\n"
                     "\t%1 = scale ( %0 view[ 3 ,2 ]0 + [ 1 , 3 ] ) { s = 1E2 } : f32[3,2]\n"
                     "%2 = output(%1) {name=\"y\"} : f32[3,2]";
    const char *want = "# mica ir 1\n"
                       "%0 = input() {name=\"a\\x0a\\x09b\"} : f32[2,3]\n"
                       "%1 = scale(%0 view [3,2] 0+[1,3]) {s=100} : f32[3,2]\n"
                       "%2 = output(%1) {name=\"y\"} : f32[3,2]\n";
    mica_graph_t *g = parse_ok(in, strlen(in), "lenient text");
    char *t = print_checked(g);
    cr_assert_str_eq(t, want);
    free(t);
    mica_graph_release(g);
}

Test(ir_text, empty_graph)
{
    const char *in = "# mica ir 1";
    mica_graph_t *g = parse_ok(in, strlen(in), "header only");
    cr_assert_eq(g->n_nodes, 0);
    char *t = print_checked(g);
    cr_assert_str_eq(t, "# mica ir 1\n");
    free(t);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* sample files                                                              */

/* Sorted names of the .ir files in tests/data/ir, with (bad) or without the bad_ prefix. */
static int list_samples(bool bad, char names[][128], int max)
{
    DIR *dir = opendir(MICA_TEST_DATA_DIR "/ir");
    cr_assert_not_null(dir, "cannot open %s", MICA_TEST_DATA_DIR "/ir");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || len >= 128 || strcmp(e->d_name + len - 3, ".ir") != 0)
            continue;
        if ((strncmp(e->d_name, "bad_", 4) == 0) != bad)
            continue;
        cr_assert(n < max);
        strcpy(names[n++], e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    return n;
}

static char *read_sample(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ir/%s", MICA_TEST_DATA_DIR, name);
    char *text = mica_test_read_file(path, len);
    cr_assert_not_null(text, "cannot read %s", path);
    return text;
}

/* The sample without its comment and blank lines (the header stays). */
static char *strip_comments(const char *text)
{
    char *out = malloc(strlen(text) + 2);
    size_t w = 0;
    bool first = true;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (first || (n > 0 && line[0] != '#')) {
            memcpy(out + w, line, n);
            w += n;
            out[w++] = '\n';
        }
        first = false;
        line += n + (end ? 1 : 0);
    }
    out[w] = 0;
    return out;
}

Test(ir_text, valid_samples_round_trip)
{
    static char names[64][128];
    int n = list_samples(false, names, 64);
    cr_assert_geq(n, 5, "expected a sample per op family");
    bool seen[MICA_OP_COUNT] = {0};
    for (int i = 0; i < n; i++) {
        size_t len;
        char *text = read_sample(names[i], &len);
        mica_graph_t *g = parse_ok(text, len, names[i]);
        for (int32_t k = 0; k < g->n_nodes; k++)
            seen[g->nodes[k]->op] = true;
        char *t1 = print_checked(g);
        char *want = strip_comments(text);
        cr_assert_str_eq(t1, want, "%s is not in canonical form", names[i]);
        mica_graph_t *g2 = parse_ok(t1, strlen(t1), names[i]);
        char *t2 = print_checked(g2);
        cr_assert_str_eq(t1, t2);
        free(t1);
        free(t2);
        free(want);
        free(text);
        mica_graph_release(g);
        mica_graph_release(g2);
    }
    for (int op = 0; op < MICA_OP_COUNT; op++)
        cr_assert(seen[op], "no sample uses %s", mica_op_info((mica_op_t)op)->name);
}

/* Each bad_*.ir says on its second line "# expect: PREFIX". */
Test(ir_text, bad_samples_are_rejected)
{
    static char names[64][128];
    int n = list_samples(true, names, 64);
    cr_assert_geq(n, 5);
    for (int i = 0; i < n; i++) {
        size_t len;
        char *text = read_sample(names[i], &len);
        const char *tag = strstr(text, "\n# expect: ");
        cr_assert_not_null(tag, "%s has no '# expect: ' line", names[i]);
        tag += strlen("\n# expect: ");
        size_t tn = strcspn(tag, "\n");
        mica_graph_t *g = (mica_graph_t *)1;
        mica_diag_t d = {0};
        cr_assert_neq(mica_graph_parse(text, len, &g, &d), MICA_OK, "%s parsed", names[i]);
        cr_assert_null(g);
        cr_assert(strncmp(d.msg, tag, tn) == 0, "%s: got '%s', want '%.*s'", names[i], d.msg,
                  (int)tn, tag);
        free(text);
    }
}

/* ------------------------------------------------------------------------ */
/* malformed text                                                            */

#define H "# mica ir 1\n"
#define X "%0 = input() {name=\"x\"} : f32[16,64]\n"
#define W "%1 = weight() {name=\"w\"} : f32[32,64]\n"

static const struct {
    const char *text;
    const char *prefix; /* expected start of the message */
} bad_texts[] = {
    {"", "1:1: expected the header"},
    {"%0 = input() {name=\"x\"} : f32[1]\n", "1:1: expected the header"},
    {"# mica ir 2\n", "1:11: unsupported IR version 2"},
    {"# mica ir 1 x\n", "1:13: unexpected text after the header"},
    {"# mica ir\n", "1:10: expected the IR version"},
    {H X "%1 = frobnicate(%0) : f32[16,64]\n", "3:6: unknown op 'frobnicate'"},
    {H "%0 = input() {name=\"x\"} : f33[16,64]\n", "2:27: unknown dtype 'f33'"},
    {H "%0 = input() {name=\"x\"} : f32\n", "2:30: expected '[' after the dtype"},
    {H "%0 = input() {name=\"x\"} : [16]\n", "2:27: expected a type"},
    {H "%0 = input() {name=\"x\"} : f32[1,1,1,1,1,1,1]\n", "2:30: 7 dims"},
    {H "%0 = input() {name=\"x\"} : f32[0]\n", "2:6: %0 (input): input has dim 0 of size 0"},
    {H "0 = input() {name=\"x\"} : f32[1]\n", "2:1: expected a node"},
    {H "%x = input() {name=\"x\"} : f32[1]\n", "2:2: expected a value number"},
    {H X "%1 = silu(0) : f32[16,64]\n", "3:11: expected an operand"},
    {H X "%1 = silu(%) : f32[16,64]\n", "3:12: expected a value number"},
    {H X W "%2 = matmul(%0) : f32[16,32]\n", "4:6: %2 (matmul): matmul takes 2 operands, got 1"},
    {H X "%1 = silu(%0, %0) : f32[16,64]\n", "3:6: %1 (silu): silu takes 1 operands, got 2"},
    {H X "%1 = concat() {axis=0} : f32[16,64]\n", "3:6: %1 (concat): concat takes at least one"},
    {H X "%1 = silu(%1) : f32[16,64]\n", "3:11: %1 is used before it is defined"},
    {H X "%1 = silu(%7) : f32[16,64]\n", "3:11: %7 is used before it is defined"},
    {H X "%0 = input() {name=\"z\"} : f32[2]\n", "3:1: %0 is defined twice (first on line 2)"},
    {H X "%2 = silu(%0) : f32[16,64]\n", "3:1: %2 is out of order: the next value must be %1"},
    {H "%1 = input() {name=\"x\"} : f32[2]\n", "2:1: %1 is out of order"},
    {H X "%1 = scale(%0) {s=1.2.3} : f32[16,64]\n", "3:19: bad number"},
    {H X "%1 = scale(%0) {s=abc} : f32[16,64]\n", "3:19: bad number"},
    {H X "%1 = scale(%0) {s=1e} : f32[16,64]\n", "3:19: bad number"},
    {H X "%1 = scale(%0) {s=0x10} : f32[16,64]\n", "3:19: bad number"},
    {H X "%1 = scale(%0) {s=} : f32[16,64]\n", "3:19: expected a number"},
    {H X "%1 = scale(%0) {s=1e999} : f32[16,64]\n", "3:19: number out of range"},
    {H X "%1 = scale(%0) {s=-1e400} : f32[16,64]\n", "3:19: number out of range"},
    {H X "%1 = scale(%0) {s=1.00000000000000000000000000000000000000000000000000000000000001} "
         ": f32[16,64]\n",
     "3:19: number too long"},
    {H "%0 = input() {name=\"x\"} : f32[99999999999999999999]\n", "2:31: integer out of range"},
    {H "%0 = input() {name=\"x\"} : f32[9223372036854775807]\n", "2:6: %0 (input): input has more"},
    {H "%0 = input() {name=\"x\"} : f32[-9223372036854775809]\n", "2:31: integer out of range"},
    {H "%0 = input() {name=\"x\"} : f32[12abc]\n", "2:31: bad integer"},
    {H X "%1 = silu(%99999999999999999999) : f32[16,64]\n", "3:12: integer out of range"},
    {H "%99999999999999999999 = input() {name=\"x\"} : f32[1]\n", "2:2: integer out of range"},
    {H "%0 = input() {name=\"x\"} : f32[2] packed(1,2147483648,1)\n",
     "2:43: tile size 2147483648 out of range"},
    {H X "%1 = concat(%0) {axis=99999999999999999999} : f32[16,64]\n", "3:23: integer out of"},
    {H "%0 = input() {name=\"x : f32[1]\n", "2:20: unterminated string"},
    {H "%0 = input() {name=\"x\\q\"} : f32[1]\n", "2:22: bad escape"},
    {H "%0 = input() {name=\"x\\x00\"} : f32[1]\n", "2:22: \\x00 is not allowed"},
    {H "%0 = input() {name=\"x\\x4\"} : f32[1]\n", "2:22: bad \\x escape"},
    {H "%0 = input() {name=\"x\x01\"} : f32[1]\n", "2:22: control byte 0x01"},
    {H "%0 = input() : f32[1]\n", "2:14: expected '{' with the attributes"},
    {H "%0 = input() {nam=\"x\"} : f32[1]\n", "2:15: expected 'name='"},
    {H "%0 = input() {name=1} : f32[1]\n", "2:20: expected a string"},
    {H X "%1 = silu(%0) {} : f32[16,64]\n", "3:15: silu takes no attributes"},
    {H X "%1 = rope(%0, %0) {mode=0, dims=2, theta=1} : f32[16,64]\n",
     "3:43: expected ','"},
    {H X "%1 = silu(%0) f32[16,64]\n", "3:15: expected ':' before the type"},
    {H X "%1 = silu(%0) : f32[16,64] junk\n", "3:28: unexpected 'j' after the type"},
    {H X "%1 = silu(%0\n) : f32[16,64]\n", "3:13: expected ',' or ')', found end of line"},
    {H X "%1 = silu(%0 : f32[16,64]\n", "3:14: expected ',' or ')'"},
    {H X "%1 = silu(%0) : f32[16,64", "3:26: expected ',' or ']', found end of input"},
    {H X "%1 = silu(%0) : f32[16,32]\n",
     "3:17: %1 (silu): declared type f32[16,32], but the operands give f32[16,64]"},
    {H X W "%2 = matmul(%0, %1) : f32[16,64]\n",
     "4:23: %2 (matmul): declared type f32[16,64], but the operands give f32[16,32]"},
    {H X "%1 = weight() {name=\"w\"} : f32[32,32]\n%2 = matmul(%0, %1) : f32[16,32]\n",
     "4:6: %2 (matmul): input has K=64, weight has K=32"},
    {H X "%1 = rms_norm(%0, %0 view [64] 0+[1]) {eps=1} : f32[16,64]\n",
     "3:6: %1 (rms_norm): rms_norm cannot read operand 1 through a view"},
    {H X "%1 = silu(%0 view [64,16] 0+[1]) : f32[64,16]\n", "3:29: 1 strides for 2 dims"},
    {H X "%1 = silu(%0 view [64,16] 1+[1,64]) : f32[64,16]\n",
     "3:6: %1 (silu): view of operand 0 reaches element 1024"},
    {H X "%1 = raster(%0) {regions=[{in=0 size=[16,64] src=0+[64,1]}]} : f32[16,64]\n",
     "3:58: expected 'dst=', found '}'"},
    {H X "%1 = raster(%0) {regions=[{in=0 size=[] src=0+[] dst=0+[]}]} : f32[16,64]\n",
     "3:38: 0 dims (1 to 6 allowed)"},
    {H X "%1 = raster(%0) {regions=[{in=2147483648 size=[1] src=0+[1] dst=0+[1]}]} : f32[1]\n",
     "3:31: operand index 2147483648 out of range"},
    {H X "%1 = raster(%0) {regions=[{in=0 idx=1 size=[1] src=0+[1] dst=0+[1]}]} : f32[1]\n",
     "3:39: expected '@' before the index dim, found 's'"},
    {H X "%1 = raster(%0) {regions=[{in=1 size=[1] src=0+[1] dst=0+[1]}]} : f32[1]\n",
     "3:6: %1 (raster): region 0 reads operand 1 of 1"},
    {H X "%1 = raster(%0) {regions=[{in=0 size=[16,64] src=0+[64,1] dst=1+[64,1]}]} : "
         "f32[16,64]\n",
     "3:6: %1 (raster): region 0 destination reaches element 1024"},
    {H X "%1 = raster(%0) {regions=[{in=0 size=[16,64] src=1+[64,1] dst=0+[64,1]}]} : "
         "f32[16,64]\n",
     "3:6: %1 (raster): region 0 source reaches element 1024"},
    /* caught by the verifier after the last line, reported at the node's line */
    {H X "%1 = raster(%0) {regions=[{in=0 size=[2,64] src=0+[64,1] dst=0+[64,1]}, "
         "{in=0 size=[1,64] src=0+[64,1] dst=64+[64,1]}]} : f32[16,64]\n# end\n",
     "3:1: %1 (raster): regions 0 and 1 both write element 64"},
    {H X "%1 = raster(%0) {regions=[{in=0 size=[2,64] src=0+[64,1] dst=0+[0,1]}]} : "
         "f32[16,64]\n",
     "3:1: %1 (raster): region 0 writes element 0 twice"},
    {H X "%1 = input() {name=\"y\"} : f32[1]\n%2 = input() {name=\"x\"} : f32[1]\n",
     "4:1: %2 (input): name \"x\" is already used by %0"},
    {H X "%1 = output(%0) {name=\"o\"} : f32[16,64]\n%2 = output(%0) {name=\"o\"} : "
         "f32[16,64]\n",
     "4:1: %2 (output): name \"o\" is already used by %1"},
    {H "%0 = input() {name=\"x\"} : f32[2] packed(0,0,0)\n",
     "2:1: %0 (input): packed layout needs"},
    {H "%0 = input() {name=\"x\"} : f32[2]\n\x00", "3:1: expected a node"},
};

Test(ir_text, malformed_text_names_line_and_column)
{
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        const char *text = bad_texts[i].text;
        size_t len = strlen(text);
        if (i == sizeof bad_texts / sizeof bad_texts[0] - 1)
            len++; /* the last case ends in a NUL byte */
        mica_graph_t *g = (mica_graph_t *)1;
        mica_diag_t d = {0};
        mica_status_t s = mica_graph_parse(text, len, &g, &d);
        cr_expect_neq(s, MICA_OK, "case %zu parsed: %s", i, text);
        cr_expect_null(g, "case %zu", i);
        cr_expect(strncmp(d.msg, bad_texts[i].prefix, strlen(bad_texts[i].prefix)) == 0,
                  "case %zu: got '%s', want '%s'", i, d.msg, bad_texts[i].prefix);
    }
}

Test(ir_text, bad_arguments)
{
    mica_diag_t d = {0};
    cr_assert_neq(mica_graph_parse(NULL, 4, &(mica_graph_t *){NULL}, &d), MICA_OK);
    cr_assert_neq(mica_graph_parse("# mica ir 1\n", 12, NULL, &d), MICA_OK);
    cr_assert_null(mica_graph_print(NULL));
    cr_assert_null(mica_graph_dot(NULL));
}

/* Every prefix of a valid text, in a buffer of exactly that size, gives an
 * error with a position or a graph; never a crash or a read past the end. */
Test(ir_text, every_truncation_is_safe)
{
    mica_graph_t *g = build_all_ops();
    char *text = print_checked(g);
    size_t len = strlen(text);
    size_t ok = 0;
    for (size_t n = 0; n <= len; n++) {
        char *buf = malloc(n ? n : 1);
        memcpy(buf, text, n);
        mica_graph_t *h = NULL;
        mica_diag_t d = {0};
        mica_status_t s = mica_graph_parse(buf, n, &h, &d);
        if (s == MICA_OK) {
            ok++;
            cr_assert_not_null(h);
            mica_graph_release(h);
        } else {
            int line, col, used = 0;
            cr_assert(sscanf(d.msg, "%d:%d: %n", &line, &col, &used) == 2 && used > 0 &&
                          line >= 1 && col >= 1,
                      "prefix %zu: message without a position: '%s'", n, d.msg);
            cr_assert_null(h);
        }
        free(buf);
    }
    cr_assert_geq(ok, 2); /* at least: cut after a full line, and the whole text */
    free(text);
    mica_graph_release(g);
}

/* Random byte edits: the parser survives, and whatever it accepts prints
 * and re-parses to the same text. */
Test(ir_text, mutations_are_safe)
{
    static const char alphabet[] = "%=(),{}[]:+@#\"\\ \n-.e0123456789xviewpackedinf";
    mica_graph_t *g = build_all_ops();
    char *text = print_checked(g);
    size_t len = strlen(text);
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 1234);
    int accepted = 0;
    for (int iter = 0; iter < 1500; iter++) {
        char *buf = malloc(len);
        memcpy(buf, text, len);
        int edits = (int)mica_test_rng_range(&rng, 1, 3);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)mica_test_rng_range(&rng, 0, (int64_t)len - 1);
            if (mica_test_rng_range(&rng, 0, 3) == 0)
                buf[at] = (char)mica_test_rng_range(&rng, 0, 255);
            else
                buf[at] = alphabet[mica_test_rng_range(&rng, 0, (int64_t)sizeof alphabet - 2)];
        }
        mica_graph_t *h = NULL;
        mica_diag_t d = {0};
        if (mica_graph_parse(buf, len, &h, &d) == MICA_OK) {
            accepted++;
            char *t1 = print_checked(h);
            mica_graph_t *h2 = parse_ok(t1, strlen(t1), "mutated text");
            char *t2 = print_checked(h2);
            cr_assert_str_eq(t1, t2);
            free(t1);
            free(t2);
            mica_graph_release(h2);
            mica_graph_release(h);
        } else {
            cr_assert(d.msg[0] >= '1' && d.msg[0] <= '9', "no position: %s", d.msg);
        }
        free(buf);
    }
    cr_log_info("%d of 1500 mutated texts parsed", accepted);
    free(text);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* DOT                                                                       */

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

Test(ir_dot, structure_and_graphviz)
{
    mica_graph_t *g = build_all_ops();
    char *dot = mica_graph_dot(g);
    cr_assert_not_null(dot);
    char *again = mica_graph_dot(g);
    cr_assert_str_eq(dot, again, "DOT output is not deterministic");
    cr_assert_eq(strncmp(dot, "digraph mica {\n", 15), 0);
    cr_assert_str_eq(dot + strlen(dot) - 2, "}\n");

    size_t edges = 0, viewed_ops = 0;
    char want[64];
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        snprintf(want, sizeof want, "  n%d [label=\"%%%d %s\\n", i, i, mica_op_info(n->op)->name);
        cr_assert_eq(count(dot, want), 1, "node line for %%%d", i);
        edges += (size_t)n->n_inputs;
        for (int32_t k = 0; k < n->n_inputs; k++)
            viewed_ops += n->inputs[k].has_view;
    }
    cr_assert_eq(count(dot, " -> "), edges);
    cr_assert_eq(count(dot, "style=dashed"), viewed_ops);
    cr_assert_eq(viewed_ops, 4);
    cr_assert_eq(count(dot, "\\nregions=2\""), 1);
    cr_assert_eq(count(dot, "\\nregions=1\""), 1);
    cr_assert_neq(count(dot, "f32[16,64]"), 0);
    cr_assert_neq(count(dot, "q4_0[64,64] packed(4,8,4)"), 0);
    cr_assert_neq(count(dot, "\\nperm=[1,0]"), 0);
    cr_assert_neq(count(dot, "\\nname=\\\"blk.0.attn_q.weight\\\""), 0);

    if (access("/usr/bin/dot", X_OK) == 0 || system("command -v dot >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/mica_test_dot_XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        FILE *f = fdopen(fd, "w");
        fputs(dot, f);
        fclose(f);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o /dev/null", path);
        int rc = system(cmd);
        remove(path);
        cr_assert_eq(rc, 0, "dot rejected the output");
    }
    free(dot);
    free(again);
    mica_graph_release(g);
}

/* The category column of ops.def: boundary ops are the graph interface and
 * carry a name; the movement ops are what the geometry pass lowers. */
Test(ir_text, op_categories)
{
    const mica_op_t boundary[] = {MICA_OP_INPUT, MICA_OP_WEIGHT, MICA_OP_OUTPUT, MICA_OP_STATE};
    const mica_op_t movement[] = {MICA_OP_RESHAPE, MICA_OP_TRANSPOSE, MICA_OP_SLICE,
                                  MICA_OP_CONCAT, MICA_OP_BROADCAST, MICA_OP_GATHER};
    for (int op = 0; op < MICA_OP_COUNT; op++) {
        const mica_op_info_t *info = mica_op_info((mica_op_t)op);
        bool is_boundary = false, is_movement = false;
        for (size_t k = 0; k < sizeof boundary / sizeof boundary[0]; k++)
            is_boundary |= boundary[k] == (mica_op_t)op;
        for (size_t k = 0; k < sizeof movement / sizeof movement[0]; k++)
            is_movement |= movement[k] == (mica_op_t)op;
        cr_expect_eq(info->category == MICA_OP_CATEGORY_BOUNDARY, is_boundary, "%s", info->name);
        if (is_boundary)
            cr_expect(info->n_attrs == 1 && !strcmp(info->attr_names[0], "name"), "%s", info->name);
        cr_expect_eq(mica_op_is_data_movement((mica_op_t)op), is_movement, "%s", info->name);
    }
    cr_expect_eq(mica_op_info(MICA_OP_KV_STORE)->category, MICA_OP_CATEGORY_STATE);
    cr_expect_eq(mica_op_info(MICA_OP_RASTER)->category, MICA_OP_CATEGORY_MOVEMENT);
    cr_expect_eq(MICA_ATTR_ROPE_THETA, mica_op_attr_index(MICA_OP_ROPE, "theta"));
}
