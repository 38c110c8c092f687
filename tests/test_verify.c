/* mica_graph_verify: accepts well-formed graphs, and rejects hand-corrupted
 * ones with a message that names the node ("%N (op): ..."), without
 * crashing on whatever a broken pass could leave behind. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* The graph every case corrupts:
 *   %0 = input x f32[16,64]        %4 = silu(%2)
 *   %1 = weight w f32[32,64]       %5 = transpose(%0) {perm=[1,0]}
 *   %2 = matmul(%0, %1) [16,32]    %6 = output(%4) "y"
 *   %3 = raster(%0) [64,16]        %7 = output(%3) "z"
 * %3 is a transpose in two regions: rows 0..31 and rows 32..63. */
static mica_graph_t *build_good(void)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t xs[2] = {16, 64}, ws[2] = {32, 64}, ts[2] = {64, 16};
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xs));
    int32_t w = mica_build_weight(g, "w", mica_type_make(MICA_DTYPE_F32, 2, ws), NULL, 0);
    int32_t m = mica_build_binary(g, MICA_OP_MATMUL, x, w);
    mica_region_t r[2];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 2; i++) {
        r[i].input = 0;
        r[i].index_input = -1;
        r[i].rank = 2;
        r[i].size[0] = 32;
        r[i].size[1] = 16;
        r[i].src.offset = 32 * i;
        r[i].src.stride[0] = 1;
        r[i].src.stride[1] = 64;
        r[i].dst.offset = 512 * i;
        r[i].dst.stride[0] = 16;
        r[i].dst.stride[1] = 1;
    }
    int32_t ra = mica_build_raster(g, 1, &x, mica_type_make(MICA_DTYPE_F32, 2, ts), 2, r);
    int32_t s = mica_build_unary(g, MICA_OP_SILU, m);
    int64_t perm[2] = {1, 0};
    mica_build_transpose(g, x, perm);
    mica_build_output(g, "y", s);
    mica_build_output(g, "z", ra);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    cr_assert_eq(g->n_nodes, 8);
    return g;
}

static mica_node_t *node(mica_graph_t *g, int32_t id)
{
    return g->nodes[id];
}

static mica_operand_t bad_inputs[1];

static void c_shape(mica_graph_t *g) { node(g, 2)->type.shape[1] = 64; }
static void c_dtype(mica_graph_t *g) { node(g, 4)->type.dtype = MICA_DTYPE_F16; }
static void c_k(mica_graph_t *g) { node(g, 1)->type.shape[1] = 32; }
static void c_self(mica_graph_t *g) { node(g, 2)->inputs[0].value = 2; }
static void c_later(mica_graph_t *g) { node(g, 2)->inputs[1].value = 99; }
static void c_negative(mica_graph_t *g) { node(g, 4)->inputs[0].value = -5; }
static void c_int_min(mica_graph_t *g) { node(g, 4)->inputs[0].value = INT32_MIN; }
static void c_src_oob(mica_graph_t *g) { node(g, 3)->regions[1].src.offset = 33; }
static void c_src_stride(mica_graph_t *g) { node(g, 3)->regions[0].src.stride[1] = 69; }
static void c_dst_oob(mica_graph_t *g) { node(g, 3)->regions[1].dst.offset = 513; }
static void c_dst_neg(mica_graph_t *g) { node(g, 3)->regions[0].dst.offset = -1; }
static void c_src_huge(mica_graph_t *g) { node(g, 3)->regions[0].src.stride[0] = INT64_MAX; }
static void c_overlap(mica_graph_t *g) { node(g, 3)->regions[1].dst.offset = 496; }
static void c_self_overlap(mica_graph_t *g) { node(g, 3)->regions[0].dst.stride[0] = 0; }
static void c_arity(mica_graph_t *g) { node(g, 2)->n_inputs = 1; }
static void c_arity_more(mica_graph_t *g) { node(g, 4)->n_inputs = 2; }
static void c_negative_count(mica_graph_t *g) { node(g, 3)->n_inputs = -3; }
static void c_no_operands(mica_graph_t *g) { node(g, 3)->n_inputs = 0; }
static void c_null_inputs(mica_graph_t *g) { node(g, 2)->inputs = NULL; }
static void c_no_name(mica_graph_t *g) { node(g, 0)->attrs[0].s = NULL; }
static void c_no_output_name(mica_graph_t *g) { node(g, 7)->attrs[0].s = NULL; }
static void c_bad_perm(mica_graph_t *g) { node(g, 5)->attrs[0].n = -1; }
static void c_null_perm(mica_graph_t *g) { node(g, 5)->attrs[0].v = NULL; }
static void c_perm(mica_graph_t *g) { ((int64_t *)node(g, 5)->attrs[0].v)[0] = 0; }
static void c_null_node(mica_graph_t *g) { g->nodes[4] = NULL; }
static void c_id(mica_graph_t *g) { node(g, 4)->id = 3; }
static void c_op(mica_graph_t *g) { node(g, 4)->op = (mica_op_t)1000; }
static void c_op_negative(mica_graph_t *g) { node(g, 4)->op = (mica_op_t)-1; }
static void c_null_regions(mica_graph_t *g) { node(g, 3)->regions = NULL; }
static void c_negative_regions(mica_graph_t *g) { node(g, 3)->n_regions = -1; }
static void c_region_rank(mica_graph_t *g) { node(g, 3)->regions[1].rank = 7; }
static void c_region_input(mica_graph_t *g) { node(g, 3)->regions[1].input = 1; }
static void c_region_index(mica_graph_t *g) { node(g, 3)->regions[1].index_input = 0; }
static void c_region_index_neg(mica_graph_t *g) { node(g, 3)->regions[1].index_input = -7; }
static void c_regions_elsewhere(mica_graph_t *g)
{
    node(g, 4)->n_regions = 2;
    node(g, 4)->regions = node(g, 3)->regions;
}
static void c_type_rank(mica_graph_t *g) { node(g, 4)->type.rank = 40; }
static void c_input_rank(mica_graph_t *g) { node(g, 0)->type.rank = -2; }
static void c_tiles(mica_graph_t *g) { node(g, 1)->type.layout.hp = 8; }
static void c_packed(mica_graph_t *g) { node(g, 1)->type.layout.kind = MICA_LAYOUT_PACKED; }
static void c_layout_kind(mica_graph_t *g) { node(g, 1)->type.layout.kind = (mica_layout_kind_t)9; }
static void c_view_rank(mica_graph_t *g)
{
    node(g, 4)->inputs[0].has_view = true;
    node(g, 4)->inputs[0].view_rank = 99;
}
static void c_view_oob(mica_graph_t *g)
{
    mica_operand_t *o = &node(g, 4)->inputs[0];
    o->has_view = true;
    o->view_rank = 2;
    o->view_shape[0] = 16;
    o->view_shape[1] = 32;
    o->view.offset = 1;
    o->view.stride[0] = 32;
    o->view.stride[1] = 1;
}
static void c_view_not_strided(mica_graph_t *g)
{
    mica_operand_t *o = &node(g, 2)->inputs[1];
    o->has_view = true;
    o->view_rank = 2;
    o->view_shape[0] = 32;
    o->view_shape[1] = 64;
    o->view.stride[0] = 64;
    o->view.stride[1] = 1;
}
static void c_dup_input(mica_graph_t *g)
{
    node(g, 1)->op = MICA_OP_INPUT;
    node(g, 1)->attrs[0].s = "x";
}
static void c_dup_output(mica_graph_t *g) { node(g, 7)->attrs[0].s = "y"; }
static void c_dangling_operand_array(mica_graph_t *g)
{
    bad_inputs[0].value = 6;
    node(g, 6)->inputs = bad_inputs;
}

static const struct {
    const char *name;
    void (*corrupt)(mica_graph_t *g);
    const char *prefix; /* expected start of the message */
} cases[] = {
    {"shape mismatch", c_shape, "%2 (matmul): type is f32[16,64], but the operands give f32[16,32]"},
    {"dtype mismatch", c_dtype, "%4 (silu): type is f16[16,32], but the operands give f32[16,32]"},
    {"K mismatch", c_k, "%2 (matmul): input has K=64, weight has K=32"},
    {"operand is itself", c_self, "%2 (matmul): operand 0 (%2) is not defined before it"},
    {"operand defined later", c_later, "%2 (matmul): operand 1 (%99) is not defined before it"},
    {"negative operand", c_negative, "%4 (silu): operand 0 (%-5) is not defined before it"},
    {"INT32_MIN operand", c_int_min, "%4 (silu): operand 0 (%-2147483648) is not defined"},
    {"source out of bounds", c_src_oob, "%3 (raster): region 1 source reaches element 1024"},
    {"source stride out of bounds", c_src_stride, "%3 (raster): region 0 source reaches element 1066"},
    {"source overflows", c_src_huge, "%3 (raster): region 0 source overflows"},
    {"destination out of bounds", c_dst_oob, "%3 (raster): region 1 destination reaches element 1024"},
    {"negative destination", c_dst_neg, "%3 (raster): region 0 destination has a negative offset"},
    {"overlapping regions", c_overlap, "%3 (raster): regions 0 and 1 both write element 496"},
    {"region writes twice", c_self_overlap, "%3 (raster): region 0 writes element 0 twice"},
    {"too few operands", c_arity, "%2 (matmul): takes 2 operands, has 1"},
    {"too many operands", c_arity_more, "%4 (silu): takes 1 operands, has 2"},
    {"negative operand count", c_negative_count, "%3 (raster): negative operand count -3"},
    {"raster without operands", c_no_operands, "%3 (raster): takes at least one operand"},
    {"NULL operand array", c_null_inputs, "%2 (matmul): operand array is missing"},
    {"missing input name", c_no_name, "%0 (input): attribute name is missing"},
    {"missing output name", c_no_output_name, "%7 (output): attribute name is missing"},
    {"negative list length", c_bad_perm, "%5 (transpose): attribute perm has -1 entries"},
    {"NULL list", c_null_perm, "%5 (transpose): attribute perm has 2 entries and no values"},
    {"not a permutation", c_perm, "%5 (transpose): transpose perm is not a permutation"},
    {"NULL node", c_null_node, "%4: node is missing"},
    {"wrong id", c_id, "%4: node has id 3"},
    {"unknown op", c_op, "%4: unknown op 1000"},
    {"negative op", c_op_negative, "%4: unknown op -1"},
    {"NULL regions", c_null_regions, "%3 (raster): 2 regions and no region list"},
    {"negative region count", c_negative_regions, "%3 (raster): negative region count -1"},
    {"region rank", c_region_rank, "%3 (raster): region 1 has rank 7"},
    {"region operand", c_region_input, "%3 (raster): region 1 reads operand 1 of 1"},
    {"region index operand", c_region_index, "%3 (raster): region 1: index operand 0 is invalid"},
    {"region index -7", c_region_index_neg, "%3 (raster): region 1: index operand -7 is invalid"},
    {"regions on silu", c_regions_elsewhere, "%4 (silu): carries regions but is not a raster"},
    {"type rank", c_type_rank, "%4 (silu): type has rank 40"},
    {"input rank", c_input_rank, "%0 (input): type has rank -2"},
    {"row-major tiles", c_tiles, "%1 (weight): row-major type with tile sizes (0,8,0)"},
    {"packed without tiles", c_packed, "%1 (weight): packed layout needs"},
    {"layout kind", c_layout_kind, "%1 (weight): weight has an invalid layout"},
    {"view rank", c_view_rank, "%4 (silu): operand 0 has a view of rank 99"},
    {"view out of bounds", c_view_oob, "%4 (silu): view of operand 0 reaches element 512"},
    {"view on a weight", c_view_not_strided, "%2 (matmul): matmul cannot read operand 1"},
    {"duplicate input names", c_dup_input, "%1 (input): name \"x\" is already used by %0"},
    {"duplicate output names", c_dup_output, "%7 (output): name \"y\" is already used by %6"},
    {"operand array of another node", c_dangling_operand_array,
     "%6 (output): operand 0 (%6) is not defined before it"},
};

Test(verify, accepts_good_graphs)
{
    mica_graph_t *g = build_good();
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_graph_verify(g, NULL), MICA_OK);
    mica_graph_release(g);

    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "empty graph: %s", d.msg);
    mica_graph_release(g);
}

Test(verify, rejects_corrupt_graphs_naming_the_node)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mica_graph_t *g = build_good();
        cases[i].corrupt(g);
        mica_diag_t d = {0};
        mica_status_t s = mica_graph_verify(g, &d);
        cr_expect_neq(s, MICA_OK, "%s: accepted", cases[i].name);
        cr_expect(strncmp(d.msg, cases[i].prefix, strlen(cases[i].prefix)) == 0,
                  "%s: got '%s', want '%s'", cases[i].name, d.msg, cases[i].prefix);
        /* the failure also survives a NULL diag */
        cr_expect_neq(mica_graph_verify(g, NULL), MICA_OK, "%s", cases[i].name);
        mica_graph_release(g);
    }
}

Test(verify, rejects_broken_graph_objects)
{
    mica_diag_t d = {0};
    cr_assert_neq(mica_graph_verify(NULL, &d), MICA_OK);
    mica_graph_t *g = build_good();
    int32_t n = g->n_nodes;
    g->n_nodes = -1;
    cr_assert_neq(mica_graph_verify(g, &d), MICA_OK);
    cr_assert_str_eq(d.msg, "graph has -1 nodes");
    g->n_nodes = n;
    mica_node_t **nodes = g->nodes;
    g->nodes = NULL;
    cr_assert_neq(mica_graph_verify(g, &d), MICA_OK);
    cr_assert_str_eq(d.msg, "graph has 8 nodes and no node array");
    g->nodes = nodes;
    mica_graph_release(g);
}

/* A raster of n f32 elements with two regions: [0, a) and [b, n). */
static mica_graph_t *two_region_raster(int64_t n, int64_t a, int64_t b)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t shape[1] = {n};
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 1, shape));
    mica_region_t r[2];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 2; i++) {
        r[i].index_input = -1;
        r[i].rank = 1;
        r[i].src.stride[0] = 1;
        r[i].dst.stride[0] = 1;
    }
    r[0].size[0] = a;
    r[1].size[0] = n - b;
    r[1].src.offset = b;
    r[1].dst.offset = b;
    mica_build_raster(g, 1, &x, mica_type_make(MICA_DTYPE_F32, 1, shape), 2, r);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    return g;
}

/* Disjointness is checked up to 2^24 output elements, not above. */
Test(verify, overlap_check_size_limit)
{
    const int64_t lim = (int64_t)1 << 24;
    mica_diag_t d = {0};
    mica_graph_t *g = two_region_raster(lim, lim / 2, lim / 2);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    mica_graph_release(g);

    g = two_region_raster(lim, lim / 2 + 1, lim / 2);
    cr_assert_neq(mica_graph_verify(g, &d), MICA_OK);
    cr_assert_str_eq(d.msg, "%1 (raster): regions 0 and 1 both write element 8388608");
    mica_graph_release(g);

    g = two_region_raster(lim + 1, lim / 2 + 1, lim / 2);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    mica_graph_release(g);
}

/* A region that writes one element 2^60 times is caught at its second
 * write, not walked to the end. */
Test(verify, repeated_writes_stop_early)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t shape[1] = {4};
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 1, shape));
    mica_region_t r;
    memset(&r, 0, sizeof r);
    r.index_input = -1;
    r.rank = 3;
    r.size[0] = (int64_t)1 << 20;
    r.size[1] = (int64_t)1 << 20;
    r.size[2] = (int64_t)1 << 20;
    mica_build_raster(g, 1, &x, mica_type_make(MICA_DTYPE_F32, 1, shape), 1, &r);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    mica_diag_t d = {0};
    cr_assert_neq(mica_graph_verify(g, &d), MICA_OK);
    cr_assert_str_eq(d.msg, "%1 (raster): region 0 writes element 0 twice");
    mica_graph_release(g);
}

/* Gather regions: the index dim may read any row, the rest must fit. */
Test(verify, gather_regions)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t xs[2] = {10, 8}, is[1] = {3}, ys[2] = {3, 8};
    int32_t in[2];
    in[0] = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 2, xs));
    in[1] = mica_build_input(g, "ids", mica_type_make(MICA_DTYPE_I32, 1, is));
    mica_region_t r;
    memset(&r, 0, sizeof r);
    r.input = 0;
    r.index_input = 1;
    r.index_dim = 0;
    r.rank = 2;
    r.size[0] = 3;
    r.size[1] = 8;
    r.src.stride[0] = 8;
    r.src.stride[1] = 1;
    r.dst.stride[0] = 8;
    r.dst.stride[1] = 1;
    mica_build_raster(g, 2, in, mica_type_make(MICA_DTYPE_F32, 2, ys), 1, &r);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    g->nodes[2]->regions[0].index_dim = 2;
    cr_assert_neq(mica_graph_verify(g, &d), MICA_OK);
    cr_assert_str_eq(d.msg, "%2 (raster): region 0: index dim 2 out of range");
    g->nodes[2]->regions[0].index_dim = 0;
    g->nodes[2]->regions[0].size[0] = 4;
    g->nodes[2]->type.shape[0] = 4;
    cr_assert_neq(mica_graph_verify(g, &d), MICA_OK);
    cr_assert_str_eq(d.msg, "%2 (raster): region 0: 3 ids for size 4");
    mica_graph_release(g);
}
