/* ir/rewrite.h and the annotations that survive passes: use lists against
 * a plain scan of every operand; the rewriter's copy / replace / emit /
 * drop / removal rules on graphs whose expected text is written by hand;
 * origin, flags and note through print -> parse -> print, malformed
 * annotations rejected; the pass context. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "model.h"
#include "passes.h"
#include "rewrite.h"
#include "test_support.h"

static mica_graph_t *parse_ok(const char *text)
{
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_parse(text, strlen(text), &g, &d), MICA_OK, "%s", d.msg);
    return g;
}

static void expect_text(const mica_graph_t *g, const char *want)
{
    char *got = mica_graph_print(g);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* use lists                                                                 */

/* The readers of every value by a plain scan, compared with mica_uses_of. */
static void check_uses(const mica_graph_t *g)
{
    mica_arena_t *a = NULL;
    cr_assert_eq(mica_arena_create(&a), MICA_OK);
    mica_uses_t u;
    mica_diag_t d = {0};
    cr_assert_eq(mica_uses_build(g, a, &u, &d), MICA_OK, "%s", d.msg);
    int64_t total = 0;
    for (int32_t v = 0; v < g->n_nodes; v++) {
        int32_t n = 0;
        const mica_use_t *got = mica_uses_of(&u, v, &n);
        int32_t j = 0;
        for (int32_t i = 0; i < g->n_nodes; i++)
            for (int32_t k = 0; k < g->nodes[i]->n_inputs; k++) {
                if (g->nodes[i]->inputs[k].value != v)
                    continue;
                cr_assert_lt(j, n, "%%%d: more readers than the use list has", v);
                cr_assert_eq(got[j].node, i, "%%%d: use %d is %%%d, want %%%d", v, j, got[j].node,
                             i);
                cr_assert_eq(got[j].operand, k);
                j++;
            }
        cr_assert_eq(j, n, "%%%d: %d readers, use list has %d", v, j, n);
        total += n;
    }
    int32_t n = 7;
    cr_assert_null(mica_uses_of(&u, -1, &n));
    cr_assert_eq(n, 0);
    cr_assert_null(mica_uses_of(&u, g->n_nodes, &n));
    cr_log_info("use lists: %d values, %lld uses", g->n_nodes, (long long)total);
    mica_arena_release(a);
}

Test(uses, match_a_scan_of_every_operand)
{
    mica_graph_t *g = parse_ok("# mica ir 1\n"
                               "%0 = input() {name=\"x\"} : f32[2,3]\n"
                               "%1 = add(%0, %0) : f32[2,3]\n"
                               "%2 = input() {name=\"unread\"} : f32[1]\n"
                               "%3 = concat(%1, %0, %1) {axis=0} : f32[6,3]\n"
                               "%4 = output(%3) {name=\"y\"} : f32[6,3]\n");
    check_uses(g);
    mica_graph_release(g);

    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    const char *path = mica_test_golden("llama-tiny.f32.gguf");
    FILE *probe = fopen(path, "rb");
    if (!probe)
        cr_skip_test("%s is not there", path);
    fclose(probe);
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s", d.msg);
    mica_model_config_t cfg;
    cr_assert_eq(mica_model_config_from_gguf(f, &cfg, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_build(f, &cfg, 3, 2, true, &g, &d), MICA_OK, "%s", d.msg);
    check_uses(g);
    cr_assert_eq(mica_pipeline_run(&g, "fold-regions", true, &d), MICA_OK, "%s", d.msg);
    check_uses(g);
    mica_graph_release(g);
    mica_gguf_close(f);
}

/* ------------------------------------------------------------------------ */
/* the rewriter                                                              */

static const char chain_text[] = "# mica ir 1\n"
                                 "%0 = input() {name=\"x\"} : f32[4]\n"
                                 "%1 = scale(%0) {s=2} : f32[4]\n"
                                 "%2 = silu(%1) : f32[4] !{origin=40, note=\"from before\"}\n"
                                 "%3 = scale(%2) {s=3} : f32[4] !{flags=0x4}\n"
                                 "%4 = output(%3) {name=\"y\"} : f32[4]\n";

Test(rewrite, copy_keeps_everything)
{
    mica_graph_t *g = parse_ok(chain_text);
    const mica_graph_t *before = g;
    const mica_rewrite_spec_t spec = {NULL, NULL, NULL};
    mica_diag_t d = {0};
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_OK, "%s", d.msg);
    cr_assert_neq(g, before, "a new graph replaces the old");
    expect_text(g, chain_text);
    mica_graph_release(g);
}

/* Every scale becomes its operand: readers read that instead. */
static mica_status_t drop_scales(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                                 mica_diag_t *d)
{
    (void)user;
    (void)d;
    if (n->op == MICA_OP_SCALE)
        return mica_rewrite_replace(rw, mica_rewrite_lookup(rw, n->inputs[0].value)->value);
    return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

Test(rewrite, replace_redirects_readers_and_keeps_origins)
{
    mica_graph_t *g = parse_ok(chain_text);
    const mica_rewrite_spec_t spec = {drop_scales, NULL, NULL};
    mica_diag_t d = {0};
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_OK, "%s", d.msg);
    expect_text(g, "# mica ir 1\n"
                   "%0 = input() {name=\"x\"} : f32[4]\n"
                   "%1 = silu(%0) : f32[4] !{origin=40, note=\"from before\"}\n"
                   "%2 = output(%1) {name=\"y\"} : f32[4] !{origin=4}\n");
    mica_graph_release(g);
}

/* Every silu becomes scale(x, 0.5) then silu of that: two new nodes. */
static mica_status_t split_silu(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                                mica_diag_t *d)
{
    (void)user;
    (void)d;
    if (n->op != MICA_OP_SILU)
        return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
    mica_operand_t x;
    MICA_TRY(mica_rewrite_remap(rw, &n->inputs[0], &x));
    mica_node_t s;
    memset(&s, 0, sizeof s);
    s.op = MICA_OP_SCALE;
    s.attrs[0].f = 0.5;
    s.n_inputs = 1;
    s.inputs = &x;
    s.note = "split";
    mica_operand_t y;
    memset(&y, 0, sizeof y);
    y.value = mica_rewrite_emit(rw, &s, true);
    mica_node_t u = *n;
    u.inputs = &y;
    return mica_rewrite_emit(rw, &u, false) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

Test(rewrite, emitted_nodes_take_the_replaced_nodes_origin)
{
    mica_graph_t *g = parse_ok(chain_text);
    const mica_rewrite_spec_t spec = {split_silu, NULL, NULL};
    mica_diag_t d = {0};
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_OK, "%s", d.msg);
    expect_text(g, "# mica ir 1\n"
                   "%0 = input() {name=\"x\"} : f32[4]\n"
                   "%1 = scale(%0) {s=2} : f32[4]\n"
                   "%2 = scale(%1) {s=0.5} : f32[4] !{origin=40, note=\"split\"}\n"
                   "%3 = silu(%2) : f32[4] !{origin=40, note=\"from before\"}\n"
                   "%4 = scale(%3) {s=3} : f32[4] !{origin=3, flags=0x4}\n"
                   "%5 = output(%4) {name=\"y\"} : f32[4] !{origin=4}\n");
    mica_graph_release(g);
}

/* Emits nothing for the silu, which the next scale reads. */
static mica_status_t lose_silu(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                               mica_diag_t *d)
{
    (void)user;
    (void)d;
    if (n->op == MICA_OP_SILU)
        return MICA_OK;
    return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

Test(rewrite, reading_a_dropped_node_fails_and_leaves_the_graph)
{
    mica_graph_t *g = parse_ok(chain_text);
    mica_graph_t *before = g;
    const mica_rewrite_spec_t spec = {lose_silu, NULL, NULL};
    mica_diag_t d = {0};
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_ERR_INVALID);
    cr_assert_str_eq(d.msg, "%3 (scale): reads %2, which the rewrite removed");
    cr_assert_eq(g, before);
    expect_text(g, chain_text);
    mica_graph_release(g);
}

/* Replaces the first scale by a view of x; the silu reads through its own
 * view, which cannot stack on the replacement's. */
static mica_status_t scale_to_view(mica_rewriter_t *rw, const mica_node_t *n, void *user,
                                   mica_diag_t *d)
{
    (void)user;
    (void)d;
    if (n->op == MICA_OP_SCALE && n->id == 1) {
        mica_operand_t v;
        memset(&v, 0, sizeof v);
        v.value = 0;
        v.has_view = true;
        v.view_rank = 1;
        v.view_shape[0] = 4;
        v.view.stride[0] = 1;
        return mica_rewrite_replace_view(rw, &v);
    }
    return mica_rewrite_copy(rw, n) < 0 ? MICA_ERR_INVALID : MICA_OK;
}

Test(rewrite, views_replace_values_but_do_not_stack)
{
    mica_graph_t *g = parse_ok(chain_text);
    const mica_rewrite_spec_t spec = {scale_to_view, NULL, NULL};
    mica_diag_t d = {0};
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_OK, "%s", d.msg);
    expect_text(g, "# mica ir 1\n"
                   "%0 = input() {name=\"x\"} : f32[4]\n"
                   "%1 = silu(%0 view [4] 0+[1]) : f32[4] !{origin=40, note=\"from before\"}\n"
                   "%2 = scale(%1) {s=3} : f32[4] !{origin=3, flags=0x4}\n"
                   "%3 = output(%2) {name=\"y\"} : f32[4] !{origin=4}\n");
    mica_graph_release(g);

    g = parse_ok("# mica ir 1\n"
                 "%0 = input() {name=\"x\"} : f32[4]\n"
                 "%1 = scale(%0) {s=2} : f32[4]\n"
                 "%2 = silu(%1 view [2] 1+[2]) : f32[2]\n"
                 "%3 = output(%2) {name=\"y\"} : f32[2]\n");
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_ERR_UNSUPPORTED);
    cr_assert(strstr(d.msg, "%2 (silu): reads %1 through a view"), "%s", d.msg);
    mica_graph_release(g);
}

static bool scale_removable(const mica_node_t *n, void *user)
{
    (void)user;
    return n->op == MICA_OP_SCALE;
}

Test(rewrite, removal_takes_only_removable_nodes_nothing_kept_reads)
{
    /* %2 is read only by the dead %3; %4 is dead but not removable, so %1
     * (which it reads) stays too */
    const char *text = "# mica ir 1\n"
                       "%0 = input() {name=\"x\"} : f32[4]\n"
                       "%1 = scale(%0) {s=2} : f32[4]\n"
                       "%2 = scale(%0) {s=3} : f32[4]\n"
                       "%3 = scale(%2) {s=4} : f32[4]\n"
                       "%4 = silu(%1) : f32[4]\n"
                       "%5 = output(%0) {name=\"y\"} : f32[4]\n";
    mica_graph_t *g = parse_ok(text);
    const mica_rewrite_spec_t spec = {NULL, scale_removable, NULL};
    mica_diag_t d = {0};
    cr_assert_eq(mica_rewrite_run(&g, &spec, &d), MICA_OK, "%s", d.msg);
    expect_text(g, "# mica ir 1\n"
                   "%0 = input() {name=\"x\"} : f32[4]\n"
                   "%1 = scale(%0) {s=2} : f32[4]\n"
                   "%2 = silu(%1) : f32[4] !{origin=4}\n"
                   "%3 = output(%0) {name=\"y\"} : f32[4] !{origin=5}\n");
    mica_graph_release(g);

    /* prune: everything but inputs and outputs may go */
    g = parse_ok(text);
    cr_assert_eq(mica_graph_prune(&g, &d), MICA_OK, "%s", d.msg);
    expect_text(g, "# mica ir 1\n"
                   "%0 = input() {name=\"x\"} : f32[4]\n"
                   "%1 = output(%0) {name=\"y\"} : f32[4] !{origin=5}\n");
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s", d.msg);
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* annotations in the text                                                   */

Test(annotations, print_parse_print_round_trips)
{
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_create(&g), MICA_OK);
    int64_t four = 4;
    int32_t x = mica_build_input(g, "x", mica_type_make(MICA_DTYPE_F32, 1, &four));
    int32_t y = mica_build_unary(g, MICA_OP_SILU, x);
    int32_t z = mica_build_scale(g, y, 0.5);
    mica_build_output(g, "z", z);
    cr_assert_eq(g->error.code, MICA_OK, "%s", g->error.msg);
    for (int32_t i = 0; i < g->n_nodes; i++)
        cr_assert_eq(g->nodes[i]->origin, i, "an appended node is its own origin");
    g->nodes[y]->origin = 7;
    g->nodes[y]->flags = 0xdeadbeef;
    g->nodes[y]->note = "fused: \"rms_norm\" \\ \x01 \xc3\xa9";
    g->nodes[z]->note = "";
    g->nodes[3]->origin = 0;
    const char *want = "# mica ir 1\n"
                       "%0 = input() {name=\"x\"} : f32[4]\n"
                       "%1 = silu(%0) : f32[4] !{origin=7, flags=0xdeadbeef, "
                       "note=\"fused: \\\"rms_norm\\\" \\\\ \\x01 \\xc3\\xa9\"}\n"
                       "%2 = scale(%1) {s=0.5} : f32[4] !{note=\"\"}\n"
                       "%3 = output(%2) {name=\"z\"} : f32[4] !{origin=0}\n";
    expect_text(g, want);
    mica_graph_t *h = parse_ok(want);
    expect_text(h, want);
    cr_assert_eq(h->nodes[1]->origin, 7);
    cr_assert_eq(h->nodes[1]->flags, 0xdeadbeefu);
    cr_assert_str_eq(h->nodes[1]->note, g->nodes[y]->note);
    cr_assert_str_eq(h->nodes[2]->note, "");
    cr_assert_null(h->nodes[0]->note);
    cr_assert_eq(h->nodes[0]->flags, 0u);
    cr_assert_eq(h->nodes[3]->origin, 0);
    mica_graph_release(h);

    /* any key order, spaces, a comment after; printed canonically */
    h = parse_ok("# mica ir 1\n"
                 "%0 = input() {name=\"x\"} : f32[4]   !{ note = \"n\" ,flags=0x0A,origin=3 } # c\n"
                 "%1 = silu(%0) : f32[4] !{}\n");
    expect_text(h, "# mica ir 1\n"
                   "%0 = input() {name=\"x\"} : f32[4] !{origin=3, flags=0xa, note=\"n\"}\n"
                   "%1 = silu(%0) : f32[4]\n");
    mica_graph_release(h);

    /* append copies the note into the graph's arena */
    char *note = strdup("temporary");
    mica_node_t n;
    memset(&n, 0, sizeof n);
    n.op = MICA_OP_SILU;
    mica_operand_t in;
    memset(&in, 0, sizeof in);
    in.value = x;
    n.n_inputs = 1;
    n.inputs = &in;
    n.note = note;
    n.origin = 99;
    n.flags = 2;
    int32_t id = mica_graph_append(g, &n, true);
    cr_assert_geq(id, 0, "%s", g->error.msg);
    memset(note, 'X', strlen(note));
    free(note);
    cr_assert_str_eq(g->nodes[id]->note, "temporary");
    cr_assert_eq(g->nodes[id]->origin, id, "append ignores the given origin");
    cr_assert_eq(g->nodes[id]->flags, 2u);
    mica_graph_release(g);
}

Test(annotations, malformed_ones_are_rejected_with_line_and_column)
{
    static const struct {
        const char *annot, *want;
    } bad[] = {
        {"!{colour=1}", "2:36: unknown annotation 'colour' (origin, flags, note, mem, split, "
                        "cost or ns)"},
        {"!{mem=-64}", "2:40: mem offset -64 out of range [0, 9223372036854775807]"},
        {"!{split=diag[4]}", "2:42: unknown split axis (none, rows or cols)"},
        {"!{split=rows[]}", "2:42: a split needs at least one part"},
        {"!{split=rows[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}", "2:79: more than 16 parts"},
        {"!{cost=[1,2,3,4]}", "2:51: cost and ns come together"},
        {"!{cost=[1,2,3], ns=5}", "2:47: expected ',' (cost is [read, write, iops, flops]), "
                                  "found ']'"},
        {"!{origin=1, origin=2}", "2:46: annotation origin given twice"},
        {"!{origin=-1}", "2:43: origin -1 out of range [0, 2147483647]"},
        {"!{origin=2147483648}", "2:43: origin 2147483648 out of range [0, 2147483647]"},
        {"!{flags=12}", "2:42: expected a hex number '0x...', found '1'"},
        {"!{flags=0x123456789}", "2:42: flags out of range (8 hex digits at most)"},
        {"!{flags=0xg}", "2:42: bad hex number"},
        {"!{note=\"a}", "2:41: unterminated string"},
        {"!{origin=1", "2:44: expected ',' or '}', found end of line"},
        {"!origin=1", "2:35: expected '{' after '!', found 'o'"},
        {"!{origin=1} x", "2:46: unexpected 'x' after the type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "# mica ir 1\n%%0 = input() {name=\"x\"} : f32[4] %s\n",
                 bad[i].annot);
        mica_graph_t *g = NULL;
        mica_diag_t d = {0};
        cr_assert_eq(mica_graph_parse(text, strlen(text), &g, &d), MICA_ERR_INVALID, "%s",
                     bad[i].annot);
        cr_assert_null(g);
        cr_expect_str_eq(d.msg, bad[i].want, "%s", bad[i].annot);
    }
}

/* The memplan and schedule annotations print, parse back and verify. */
Test(annotations, schedule_annotations_round_trip)
{
    const char *want = "# mica ir 1\n"
                       "%0 = input() {name=\"x\"} : f32[6,4] !{mem=0, split=rows[4,2]}\n"
                       "%1 = silu(%0) : f32[6,4] !{mem=128, split=cols[2,2], "
                       "cost=[96,96,0,96], ns=12}\n"
                       "%2 = output(%1) {name=\"y\"} : f32[6,4]\n";
    mica_graph_t *h = parse_ok(want);
    expect_text(h, want);
    const mica_node_sched_t *sc = &h->nodes[1]->sched;
    cr_assert(sc->has_mem && sc->mem_offset == 128 && sc->has_cost);
    cr_assert_eq(sc->split_axis, MICA_SPLIT_COLS);
    cr_assert(sc->n_parts == 2 && sc->parts[0] == 2 && sc->parts[1] == 2);
    cr_assert(sc->bytes_read == 96 && sc->int_ops == 0 && sc->float_ops == 96 && sc->time_ns == 12);
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_verify(h, &d), MICA_OK, "%s", d.msg);
    h->nodes[1]->sched.parts[1] = 1; /* 3 of 4 channels */
    cr_assert_eq(mica_graph_verify(h, &d), MICA_ERR_INVALID);
    cr_assert_str_eq(d.msg, "%1 (silu): split parts sum to 3, the cols axis has 4");
    h->nodes[1]->sched.parts[1] = 2;
    h->nodes[0]->sched.split_axis = MICA_SPLIT_COLS; /* 4+2 != 4 */
    cr_assert_eq(mica_graph_verify(h, &d), MICA_ERR_INVALID);
    h->nodes[0]->sched.split_axis = MICA_SPLIT_ROWS;
    h->nodes[0]->sched.mem_offset = 100;
    cr_assert_eq(mica_graph_verify(h, &d), MICA_ERR_INVALID);
    cr_assert_str_eq(d.msg, "%0 (input): arena offset 100 is not 64-byte aligned");
    mica_graph_release(h);
}

Test(annotations, verifier_rejects_a_negative_origin)
{
    mica_graph_t *g = parse_ok(chain_text);
    g->nodes[2]->origin = -1;
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_verify(g, &d), MICA_ERR_INVALID);
    cr_assert_str_eq(d.msg, "%2 (silu): origin -1 is negative");
    mica_graph_release(g);
}

/* ------------------------------------------------------------------------ */
/* the pass context                                                          */

Test(pass_ctx, defaults_and_the_pipeline_in_a_context)
{
    mica_compile_options_t o;
    memset(&o, 0x5a, sizeof o);
    mica_compile_options_init(&o);
    cr_assert_str_eq(o.quant, "w4a8");
    cr_assert_str_eq(o.head_quant, "auto");
    cr_assert_eq(o.group, 0);
    cr_assert_eq(o.context, 0);
    cr_assert_eq(o.prefill_chunk, 0);

    mica_diag_t d = {0};
    mica_pass_ctx_t ctx;
    o.group = 128;
    o.quant = "w8a8";
    cr_assert_eq(mica_pass_ctx_init(&ctx, NULL, &o, &d), MICA_OK);
    cr_assert_eq(ctx.options.group, 128);
    cr_assert_str_eq(ctx.options.quant, "w8a8");
    cr_assert_null(ctx.target);
    cr_assert_not_null(ctx.scratch);
    cr_assert_not_null(mica_arena_alloc(ctx.scratch, 100));

    /* the same result in a context as through the default wrapper */
    const char *text = "# mica ir 1\n"
                       "%0 = input() {name=\"x\"} : f32[2,3]\n"
                       "%1 = transpose(%0) {perm=[1,0]} : f32[3,2]\n"
                       "%2 = silu(%1) : f32[3,2]\n"
                       "%3 = output(%2) {name=\"y\"} : f32[3,2]\n";
    mica_graph_t *a = parse_ok(text), *b = parse_ok(text);
    cr_assert_eq(mica_pipeline_run_ctx(&ctx, &a, NULL, true, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_pipeline_run(&b, NULL, true, &d), MICA_OK, "%s", d.msg);
    char *ta = mica_graph_print(a);
    expect_text(b, ta);
    cr_assert(strstr(ta, "silu(%0 view [3,2] 0+[1,3]) : f32[3,2] !{origin=2, mem=64, split=none[1]"), "%s", ta);
    free(ta);
    cr_assert_eq(mica_pipeline_run_ctx(&ctx, &a, "nope", true, &d), MICA_ERR_INVALID);
    cr_assert_str_eq(d.msg, "unknown pass 'nope' (passes: import, geometry, fold-regions, "
                            "fuse, quantize, layout, memplan, schedule)");
    mica_graph_release(a);
    mica_graph_release(b);
    mica_pass_ctx_deinit(&ctx);
    cr_assert_null(ctx.scratch);
}
