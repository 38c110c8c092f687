/* Region-based geometric computation: the geometry and fold-regions passes
 * and the region algebra (ir/region.h), checked against plain loops written
 * here. Inputs hold distinct values (0..n-1, other inputs in their own
 * ranges), so every element of a result names the element it came from and
 * results are compared exactly. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "ir.h"
#include "model.h"
#include "passes.h"
#include "ref.h"
#include "region.h"
#include "test_support.h"

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define RANK(...) ((int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TY(dt, ...) mica_type_make(MICA_DTYPE_##dt, RANK(__VA_ARGS__), SHAPE(__VA_ARGS__))

enum { MAX_BIND = 24, NUMEL_CAP = 3000 };

/* ------------------------------------------------------------------------ */
/* plain tensors and the naive op chain (the oracle)                         */

typedef struct tens {
    int32_t rank;
    int64_t shape[MICA_MAX_RANK];
    float *v; /* malloc'd, row-major */
} tens_t;

static int64_t shape_numel(int32_t rank, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t d = 0; d < rank; d++)
        n *= shape[d];
    return n;
}

static int64_t tnumel(const tens_t *t)
{
    return shape_numel(t->rank, t->shape);
}

static void unravel(int64_t i, int32_t rank, const int64_t *shape, int64_t *idx)
{
    for (int32_t d = rank - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

static int64_t ravel(int32_t rank, const int64_t *shape, const int64_t *idx)
{
    int64_t at = 0;
    for (int32_t d = 0; d < rank; d++)
        at = at * shape[d] + idx[d];
    return at;
}

static tens_t tens_new(int32_t rank, const int64_t *shape)
{
    tens_t t;
    memset(&t, 0, sizeof t);
    t.rank = rank;
    memcpy(t.shape, shape, (size_t)rank * sizeof *shape);
    t.v = calloc((size_t)tnumel(&t), sizeof *t.v);
    cr_assert_not_null(t.v);
    return t;
}

static tens_t naive_reshape(const tens_t *x, int32_t rank, const int64_t *shape)
{
    tens_t y = tens_new(rank, shape);
    memcpy(y.v, x->v, (size_t)tnumel(x) * sizeof *y.v);
    return y;
}

static tens_t naive_transpose(const tens_t *x, const int64_t *perm)
{
    int64_t shape[MICA_MAX_RANK], o[MICA_MAX_RANK], xi[MICA_MAX_RANK];
    for (int32_t d = 0; d < x->rank; d++)
        shape[d] = x->shape[perm[d]];
    tens_t y = tens_new(x->rank, shape);
    for (int64_t i = 0; i < tnumel(&y); i++) {
        unravel(i, y.rank, y.shape, o);
        for (int32_t d = 0; d < x->rank; d++)
            xi[perm[d]] = o[d];
        y.v[i] = x->v[ravel(x->rank, x->shape, xi)];
    }
    return y;
}

static tens_t naive_slice(const tens_t *x, const int64_t *st, const int64_t *en, const int64_t *sp)
{
    int64_t shape[MICA_MAX_RANK], o[MICA_MAX_RANK];
    for (int32_t d = 0; d < x->rank; d++)
        shape[d] = (en[d] - st[d] + sp[d] - 1) / sp[d];
    tens_t y = tens_new(x->rank, shape);
    for (int64_t i = 0; i < tnumel(&y); i++) {
        unravel(i, y.rank, y.shape, o);
        for (int32_t d = 0; d < x->rank; d++)
            o[d] = st[d] + o[d] * sp[d];
        y.v[i] = x->v[ravel(x->rank, x->shape, o)];
    }
    return y;
}

static tens_t naive_concat(const tens_t *xs, int32_t n, int32_t axis)
{
    int64_t shape[MICA_MAX_RANK], o[MICA_MAX_RANK];
    memcpy(shape, xs[0].shape, sizeof shape);
    for (int32_t k = 1; k < n; k++)
        shape[axis] += xs[k].shape[axis];
    tens_t y = tens_new(xs[0].rank, shape);
    for (int64_t i = 0; i < tnumel(&y); i++) {
        unravel(i, y.rank, y.shape, o);
        int32_t k = 0;
        while (o[axis] >= xs[k].shape[axis])
            o[axis] -= xs[k++].shape[axis];
        y.v[i] = xs[k].v[ravel(xs[k].rank, xs[k].shape, o)];
    }
    return y;
}

static tens_t naive_broadcast(const tens_t *x, int32_t rank, const int64_t *shape)
{
    int64_t o[MICA_MAX_RANK], xi[MICA_MAX_RANK];
    tens_t y = tens_new(rank, shape);
    int32_t lead = rank - x->rank;
    for (int64_t i = 0; i < tnumel(&y); i++) {
        unravel(i, rank, shape, o);
        for (int32_t d = 0; d < x->rank; d++)
            xi[d] = x->shape[d] == 1 ? 0 : o[d + lead];
        y.v[i] = x->v[ravel(x->rank, x->shape, xi)];
    }
    return y;
}

static tens_t naive_gather(const tens_t *x, const int32_t *ids, int64_t n_ids, int32_t axis)
{
    int64_t shape[MICA_MAX_RANK], o[MICA_MAX_RANK];
    memcpy(shape, x->shape, sizeof shape);
    shape[axis] = n_ids;
    tens_t y = tens_new(x->rank, shape);
    for (int64_t i = 0; i < tnumel(&y); i++) {
        unravel(i, y.rank, y.shape, o);
        o[axis] = ids[o[axis]];
        y.v[i] = x->v[ravel(x->rank, x->shape, o)];
    }
    return y;
}

/* ------------------------------------------------------------------------ */
/* graphs under test and their evaluation                                    */

typedef struct binding {
    char name[16];
    int64_t n;
    float *f;     /* f32 inputs (malloc'd) */
    int32_t *ids; /* i32 inputs (malloc'd) */
} binding_t;

typedef struct chain {
    mica_graph_t *g;
    binding_t bind[MAX_BIND];
    int32_t n_bind;
    int32_t n_f32; /* f32 inputs so far: the next one's value range */
} chain_t;

/* A fresh f32 input of `shape` whose elements are base + 0..n-1, base
 * distinct per input. */
static int32_t fresh_input(chain_t *c, int32_t rank, const int64_t *shape, tens_t *out)
{
    cr_assert_lt(c->n_bind, MAX_BIND);
    binding_t *b = &c->bind[c->n_bind++];
    snprintf(b->name, sizeof b->name, "x%d", c->n_f32);
    float base = 10000.0f * (float)c->n_f32++;
    *out = tens_new(rank, shape);
    b->n = tnumel(out);
    b->f = malloc((size_t)b->n * sizeof *b->f);
    for (int64_t i = 0; i < b->n; i++)
        b->f[i] = out->v[i] = base + (float)i;
    return mica_build_input(c->g, b->name, mica_type_make(MICA_DTYPE_F32, rank, shape));
}

static int32_t ids_input(chain_t *c, int32_t rank, const int64_t *shape, const int32_t *values)
{
    cr_assert_lt(c->n_bind, MAX_BIND);
    binding_t *b = &c->bind[c->n_bind];
    snprintf(b->name, sizeof b->name, "ids%d", c->n_bind);
    c->n_bind++;
    b->n = shape_numel(rank, shape);
    b->ids = malloc((size_t)b->n * sizeof *b->ids);
    memcpy(b->ids, values, (size_t)b->n * sizeof *b->ids);
    return mica_build_input(c->g, b->name, mica_type_make(MICA_DTYPE_I32, rank, shape));
}

static void chain_init(chain_t *c)
{
    memset(c, 0, sizeof *c);
    cr_assert_eq(mica_graph_create(&c->g), MICA_OK);
}

static void chain_free(chain_t *c)
{
    mica_graph_release(c->g);
    for (int32_t i = 0; i < c->n_bind; i++) {
        free(c->bind[i].f);
        free(c->bind[i].ids);
    }
}

typedef struct val {
    int64_t n;
    float *f;
    int32_t *ids;
} val_t;

/* Element i of operand o (read through its view, if any) as a flat index
 * into the value. */
static int64_t operand_addr(const mica_operand_t *o, int64_t i)
{
    if (!o->has_view)
        return i;
    int64_t idx[MICA_MAX_RANK];
    unravel(i, o->view_rank, o->view_shape, idx);
    int64_t at = o->view.offset;
    for (int32_t d = 0; d < o->view_rank; d++)
        at += idx[d] * o->view.stride[d];
    return at;
}

static float silu_ref(float x)
{
    return x / (1.0f + expf(-x));
}

/* Executes a graph of input / raster / silu / output nodes with plain loops.
 * Every raster must write each of its elements exactly once. Returns the
 * value of output "y" (malloc'd) and its element count. */
static float *eval_graph(const mica_graph_t *g, const chain_t *c, int64_t *out_n)
{
    val_t *vals = calloc((size_t)g->n_nodes, sizeof *vals);
    float *result = NULL;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        val_t *y = &vals[i];
        y->n = mica_type_numel(&n->type);
        if (n->op == MICA_OP_INPUT) {
            const char *name = mica_node_attr_s(n, "name");
            const binding_t *b = NULL;
            for (int32_t k = 0; k < c->n_bind && !b; k++)
                if (strcmp(c->bind[k].name, name) == 0)
                    b = &c->bind[k];
            cr_assert_not_null(b, "input %s is not bound", name);
            cr_assert_eq(b->n, y->n);
            if (b->f) {
                y->f = malloc((size_t)y->n * sizeof *y->f);
                memcpy(y->f, b->f, (size_t)y->n * sizeof *y->f);
            } else {
                y->ids = malloc((size_t)y->n * sizeof *y->ids);
                memcpy(y->ids, b->ids, (size_t)y->n * sizeof *y->ids);
            }
            continue;
        }
        y->f = calloc((size_t)y->n, sizeof *y->f);
        if (n->op == MICA_OP_RASTER) {
            int32_t *writes = calloc((size_t)y->n, sizeof *writes);
            for (int32_t r = 0; r < n->n_regions; r++) {
                const mica_region_t *rg = &n->regions[r];
                const val_t *x = &vals[n->inputs[rg->input].value];
                const int32_t *ids =
                    rg->index_input >= 0 ? vals[n->inputs[rg->index_input].value].ids : NULL;
                int64_t idx[MICA_MAX_RANK];
                for (int64_t e = 0; e < shape_numel(rg->rank, rg->size); e++) {
                    unravel(e, rg->rank, rg->size, idx);
                    int64_t s = rg->src.offset, t = rg->dst.offset;
                    for (int32_t d = 0; d < rg->rank; d++) {
                        s += (ids && d == rg->index_dim ? ids[idx[d]] : idx[d]) * rg->src.stride[d];
                        t += idx[d] * rg->dst.stride[d];
                    }
                    cr_assert(s >= 0 && s < x->n && t >= 0 && t < y->n,
                              "%%%d region %d: element %lld -> %lld of %lld / %lld", i, r,
                              (long long)s, (long long)t, (long long)x->n, (long long)y->n);
                    y->f[t] = x->f[s];
                    writes[t]++;
                }
            }
            for (int64_t e = 0; e < y->n; e++)
                cr_assert_eq(writes[e], 1, "%%%d: element %lld written %d times", i, (long long)e,
                             writes[e]);
            free(writes);
        } else if (n->op == MICA_OP_SILU || n->op == MICA_OP_OUTPUT) {
            const val_t *x = &vals[n->inputs[0].value];
            for (int64_t e = 0; e < y->n; e++) {
                int64_t at = operand_addr(&n->inputs[0], e);
                cr_assert(at >= 0 && at < x->n);
                y->f[e] = n->op == MICA_OP_SILU ? silu_ref(x->f[at]) : x->f[at];
            }
            if (n->op == MICA_OP_OUTPUT && strcmp(mica_node_attr_s(n, "name"), "y") == 0) {
                result = malloc((size_t)y->n * sizeof *result);
                memcpy(result, y->f, (size_t)y->n * sizeof *result);
                *out_n = y->n;
            }
        } else {
            cr_assert_fail("%%%d: unexpected op %s", i, mica_op_info(n->op)->name);
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        free(vals[i].f);
        free(vals[i].ids);
    }
    free(vals);
    cr_assert_not_null(result, "no output y");
    return result;
}

static int32_t count_op(const mica_graph_t *g, mica_op_t op)
{
    int32_t n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i]->op == op;
    return n;
}

static int32_t count_data_movement(const mica_graph_t *g)
{
    int32_t n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n += mica_op_is_data_movement(g->nodes[i]->op);
    return n;
}

static void verify_ok(const mica_graph_t *g, const char *when)
{
    mica_diag_t d = {0};
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s: %s", when, d.msg);
}

static void expect_equal(const float *got, int64_t n_got, const tens_t *want, const char *when,
                         int32_t chain)
{
    cr_assert_eq(n_got, tnumel(want), "chain %d %s: %lld elements, want %lld", chain, when,
                 (long long)n_got, (long long)tnumel(want));
    for (int64_t i = 0; i < n_got; i++)
        cr_assert_eq(got[i], want->v[i], "chain %d %s: element %lld is %g, want %g", chain, when,
                     (long long)i, got[i], want->v[i]);
}

/* Runs geometry then fold-regions on c->g, checking the result of each
 * against want; returns the raster counts after each pass. */
static void lower_and_check(chain_t *c, const tens_t *want, int32_t chain, int32_t *n_geo,
                            int32_t *n_fold)
{
    mica_diag_t d = {0};
    int64_t n;
    cr_assert_eq(c->g->error.code, MICA_OK, "chain %d: building: %s", chain, c->g->error.msg);
    cr_assert_eq(mica_pass_geometry(&c->g, &d), MICA_OK, "chain %d: geometry: %s", chain, d.msg);
    cr_assert_eq(count_data_movement(c->g), 0);
    verify_ok(c->g, "after geometry");
    *n_geo = count_op(c->g, MICA_OP_RASTER);
    float *got = eval_graph(c->g, c, &n);
    expect_equal(got, n, want, "after geometry", chain);
    free(got);
    cr_assert_eq(mica_pass_fold_regions(&c->g, &d), MICA_OK, "chain %d: fold: %s", chain, d.msg);
    verify_ok(c->g, "after fold-regions");
    *n_fold = count_op(c->g, MICA_OP_RASTER);
    got = eval_graph(c->g, c, &n);
    expect_equal(got, n, want, "after fold-regions", chain);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* random chains                                                             */

static int64_t rnd(mica_test_rng_t *r, int64_t lo, int64_t hi)
{
    return mica_test_rng_range(r, lo, hi);
}

static void random_perm(mica_test_rng_t *r, int32_t n, int64_t *perm)
{
    for (int32_t i = 0; i < n; i++)
        perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)rnd(r, 0, i);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* One data-movement op applied to value x whose naive value is t: returns
 * the new value id and replaces t, or returns x (t unchanged) if the draw
 * did not fit (too many elements). */
static int32_t random_op(chain_t *c, mica_test_rng_t *r, int32_t x, tens_t *t, int32_t *kinds)
{
    int kind = (int)rnd(r, 0, 5);
    tens_t y = {0};
    int32_t id = -1;
    int64_t numel = tnumel(t);
    switch (kind) {
    case 0: { /* reshape: the prime factors of numel spread over 1-4 dims */
        int32_t rank = (int32_t)rnd(r, 1, 4);
        int64_t shape[MICA_MAX_RANK] = {1, 1, 1, 1, 1, 1}, m = numel;
        for (int64_t p = 2; m > 1;) {
            if (m % p == 0) {
                shape[rnd(r, 0, rank - 1)] *= p;
                m /= p;
            } else {
                p++;
            }
        }
        id = mica_build_reshape(c->g, x, rank, shape);
        y = naive_reshape(t, rank, shape);
        break;
    }
    case 1: {
        int64_t perm[MICA_MAX_RANK];
        random_perm(r, t->rank, perm);
        id = mica_build_transpose(c->g, x, perm);
        y = naive_transpose(t, perm);
        break;
    }
    case 2: {
        int64_t st[MICA_MAX_RANK], en[MICA_MAX_RANK], sp[MICA_MAX_RANK];
        for (int32_t d = 0; d < t->rank; d++) {
            st[d] = 0, en[d] = t->shape[d], sp[d] = 1;
            if (rnd(r, 0, 1)) {
                st[d] = rnd(r, 0, t->shape[d] - 1);
                en[d] = rnd(r, st[d] + 1, t->shape[d]);
                sp[d] = rnd(r, 1, 3);
            }
        }
        id = mica_build_slice(c->g, x, st, en, sp);
        y = naive_slice(t, st, en, sp);
        break;
    }
    case 3: { /* concat of cur with itself, slices of it and fresh inputs */
        int32_t n = (int32_t)rnd(r, 2, 4), axis = (int32_t)rnd(r, 0, t->rank - 1);
        int32_t at = (int32_t)rnd(r, 0, n - 1), ids[4];
        tens_t parts[4];
        memset(parts, 0, sizeof parts);
        int64_t total = 0;
        for (int32_t k = 0; k < n; k++) {
            if (k == at) {
                ids[k] = x;
                parts[k] = naive_reshape(t, t->rank, t->shape);
            } else if (rnd(r, 0, 2) == 0) {
                ids[k] = x;
                parts[k] = naive_reshape(t, t->rank, t->shape);
            } else if (rnd(r, 0, 1)) {
                int64_t st[MICA_MAX_RANK] = {0}, en[MICA_MAX_RANK], sp[MICA_MAX_RANK];
                for (int32_t d = 0; d < t->rank; d++)
                    en[d] = t->shape[d], sp[d] = 1;
                st[axis] = rnd(r, 0, t->shape[axis] - 1);
                en[axis] = rnd(r, st[axis] + 1, t->shape[axis]);
                ids[k] = mica_build_slice(c->g, x, st, en, sp);
                parts[k] = naive_slice(t, st, en, sp);
            } else {
                int64_t shape[MICA_MAX_RANK];
                memcpy(shape, t->shape, sizeof shape);
                shape[axis] = rnd(r, 1, 3);
                ids[k] = fresh_input(c, t->rank, shape, &parts[k]);
            }
            total += tnumel(&parts[k]);
        }
        bool fits = total <= NUMEL_CAP;
        if (fits) {
            id = mica_build_concat(c->g, n, ids, axis);
            y = naive_concat(parts, n, axis);
        }
        for (int32_t k = 0; k < n; k++)
            free(parts[k].v);
        if (!fits)
            return x; /* the extra nodes stay unused: harmless */
        break;
    }
    case 4: { /* broadcast: size-1 dims grow, up to two leading dims appear */
        int32_t lead = (int32_t)rnd(r, 0, t->rank < 4 ? (4 - t->rank < 2 ? 4 - t->rank : 2) : 0);
        int64_t shape[MICA_MAX_RANK];
        for (int32_t d = 0; d < lead; d++)
            shape[d] = rnd(r, 1, 3);
        for (int32_t d = 0; d < t->rank; d++)
            shape[lead + d] = t->shape[d] == 1 ? rnd(r, 1, 3) : t->shape[d];
        if (shape_numel(t->rank + lead, shape) > NUMEL_CAP)
            return x;
        id = mica_build_broadcast(c->g, x, t->rank + lead, shape);
        y = naive_broadcast(t, t->rank + lead, shape);
        break;
    }
    default: { /* gather with ids bound at evaluation */
        int32_t axis = (int32_t)rnd(r, 0, t->rank - 1);
        int32_t irank = (int32_t)rnd(r, 1, 2);
        int64_t ishape[2] = {rnd(r, 1, 3), rnd(r, 1, 2)};
        int64_t n_ids = shape_numel(irank, ishape);
        if (numel / t->shape[axis] * n_ids > NUMEL_CAP)
            return x;
        int32_t values[6] = {0};
        for (int64_t k = 0; k < n_ids; k++)
            values[k] = (int32_t)rnd(r, 0, t->shape[axis] - 1);
        int32_t ids = ids_input(c, irank, ishape, values);
        id = mica_build_gather(c->g, x, ids, axis);
        y = naive_gather(t, values, n_ids, axis);
        break;
    }
    }
    kinds[kind]++;
    free(t->v);
    *t = y;
    return id;
}

Test(region_chains, random_chains_match_naive_evaluation)
{
    enum { N_CHAINS = 3000 };
    static const char *kind_names[6] = {"reshape", "transpose", "slice",
                                        "concat",  "broadcast", "gather"};
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 20250601);
    int32_t one = 0, multi = 0, fewer = 0, kinds[6] = {0};
    for (int32_t ci = 0; ci < N_CHAINS; ci++) {
        chain_t c;
        chain_init(&c);
        int32_t rank = (int32_t)rnd(&rng, 1, 4);
        int64_t shape[MICA_MAX_RANK];
        for (int32_t d = 0; d < rank; d++)
            shape[d] = rnd(&rng, 1, 4);
        tens_t t;
        memset(&t, 0, sizeof t);
        int32_t cur = -1;
        cur = fresh_input(&c, rank, shape, &t);
        int32_t n_ops = (int32_t)rnd(&rng, 1, 6);
        for (int32_t k = 0; k < n_ops;) {
            int32_t next = random_op(&c, &rng, cur, &t, kinds);
            k += next != cur;
            cur = next;
        }
        mica_build_output(c.g, "y", cur);
        int32_t n_geo, n_fold;
        lower_and_check(&c, &t, ci, &n_geo, &n_fold);
        cr_assert_geq(n_geo, 1);
        cr_assert_leq(n_fold, n_geo, "chain %d: %d rasters after fold, %d before", ci, n_fold,
                      n_geo);
        one += n_fold == 1;
        multi += n_fold > 1;
        fewer += n_fold < n_geo;
        free(t.v);
        chain_free(&c);
    }
    cr_log_info("region chains: %d chains; %d collapsed to one raster, %d stayed multi-raster; "
                "%d lost rasters in fold-regions",
                N_CHAINS, one, multi, fewer);
    for (int k = 0; k < 6; k++)
        cr_log_info("region chains: %d %s ops", kinds[k], kind_names[k]);
    cr_assert_gt(one, N_CHAINS / 2);
}

/* ------------------------------------------------------------------------ */
/* table-driven LLM patterns                                                 */

/* The one raster feeding output "y". */
static const mica_node_t *output_raster(const mica_graph_t *g)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        if (n->op == MICA_OP_OUTPUT) {
            const mica_node_t *r = g->nodes[n->inputs[0].value];
            cr_assert_eq(r->op, MICA_OP_RASTER);
            return r;
        }
    }
    cr_assert_fail("no output");
    return NULL;
}

typedef struct want_region {
    const char *input; /* name of the input node it reads, or NULL for a raster */
    int32_t rank;
    int64_t size[MICA_MAX_RANK];
    int64_t src_off, src[MICA_MAX_RANK];
    int64_t dst_off, dst[MICA_MAX_RANK];
} want_region_t;

static void expect_region(const mica_graph_t *g, const mica_node_t *n, const mica_region_t *r,
                          const want_region_t *w, const char *name)
{
    const mica_node_t *src = g->nodes[n->inputs[r->input].value];
    if (w->input) {
        cr_assert_eq(src->op, MICA_OP_INPUT, "%s", name);
        cr_assert_str_eq(mica_node_attr_s(src, "name"), w->input, "%s", name);
    } else {
        cr_assert_eq(src->op, MICA_OP_RASTER, "%s", name);
    }
    cr_assert_eq(r->index_input, -1, "%s", name);
    cr_assert_eq(r->rank, w->rank, "%s: rank %d, want %d", name, r->rank, w->rank);
    cr_assert_eq(r->src.offset, w->src_off, "%s: src offset %lld", name, (long long)r->src.offset);
    cr_assert_eq(r->dst.offset, w->dst_off, "%s: dst offset %lld", name, (long long)r->dst.offset);
    for (int32_t d = 0; d < w->rank; d++) {
        cr_assert_eq(r->size[d], w->size[d], "%s: size[%d] = %lld", name, d, (long long)r->size[d]);
        cr_assert_eq(r->src.stride[d], w->src[d], "%s: src stride[%d] = %lld", name, d,
                     (long long)r->src.stride[d]);
        cr_assert_eq(r->dst.stride[d], w->dst[d], "%s: dst stride[%d] = %lld", name, d,
                     (long long)r->dst.stride[d]);
    }
}

enum {
    T_ = 3,
    H_ = 2,
    D_ = 4,
    P_ = 5,
    HKV_ = 2,
    HD_ = H_ * D_,
    HKVD_ = HKV_ * D_,
    PD_ = P_ * D_,
    PHKVD_ = P_ * HKV_ * D_
};

typedef struct pattern {
    const char *name;
    void (*build)(chain_t *c, tens_t *want); /* A then B, into output y */
    int32_t rasters;                         /* expected after fold */
    int32_t n_regions;                       /* of the raster feeding y */
    want_region_t regions[2];
} pattern_t;

/* [T, H*D] -> reshape [T, H, D] -> transpose [H, T, D] */
static int32_t build_heads(chain_t *c, tens_t *t)
{
    int32_t x = fresh_input(c, 2, SHAPE(T_, H_ * D_), t);
    int32_t y = mica_build_reshape(c->g, x, 3, SHAPE(T_, H_, D_));
    tens_t u = naive_reshape(t, 3, SHAPE(T_, H_, D_));
    free(t->v);
    *t = naive_transpose(&u, SHAPE(1, 0, 2));
    free(u.v);
    return mica_build_transpose(c->g, y, SHAPE(1, 0, 2));
}

static void build_heads_out(chain_t *c, tens_t *want)
{
    mica_build_output(c->g, "y", build_heads(c, want));
}

static void build_heads_half(chain_t *c, tens_t *want, int64_t lo)
{
    int32_t y = build_heads(c, want);
    const int64_t *st = SHAPE(0, 0, lo), *en = SHAPE(H_, T_, lo + D_ / 2), *sp = SHAPE(1, 1, 1);
    tens_t u = naive_slice(want, st, en, sp);
    free(want->v);
    *want = u;
    mica_build_output(c->g, "y", mica_build_slice(c->g, y, st, en, sp));
}

static void build_heads_lo(chain_t *c, tens_t *want)
{
    build_heads_half(c, want, 0);
}

static void build_heads_hi(chain_t *c, tens_t *want)
{
    build_heads_half(c, want, D_ / 2);
}

/* concat(k-cache [P, Hkv, D], new k [T, Hkv, D]) along 0, then optionally
 * transposed to [Hkv, P+T, D] */
static int32_t build_kv(chain_t *c, tens_t *want)
{
    tens_t parts[2];
    int32_t xs[2];
    xs[0] = fresh_input(c, 3, SHAPE(P_, HKV_, D_), &parts[0]);
    xs[1] = fresh_input(c, 3, SHAPE(T_, HKV_, D_), &parts[1]);
    *want = naive_concat(parts, 2, 0);
    free(parts[0].v);
    free(parts[1].v);
    return mica_build_concat(c->g, 2, xs, 0);
}

static void build_kv_out(chain_t *c, tens_t *want)
{
    mica_build_output(c->g, "y", build_kv(c, want));
}

static void build_kv_heads(chain_t *c, tens_t *want)
{
    int32_t y = build_kv(c, want);
    tens_t u = naive_transpose(want, SHAPE(1, 0, 2));
    free(want->v);
    *want = u;
    mica_build_output(c->g, "y", mica_build_transpose(c->g, y, SHAPE(1, 0, 2)));
}

/* x [2, 3] -> transpose [3, 2] -> reshape [6] -> slice [1:5]: the slice
 * starts inside a transposed row, so it reads X through two pieces and
 * cannot be one region over x. */
static void build_refused(chain_t *c, tens_t *want)
{
    int32_t x = fresh_input(c, 2, SHAPE(2, 3), want);
    int32_t y = mica_build_transpose(c->g, x, SHAPE(1, 0));
    y = mica_build_reshape(c->g, y, 1, SHAPE(6));
    y = mica_build_slice(c->g, y, SHAPE(1), SHAPE(5), SHAPE(1));
    tens_t u = naive_transpose(want, SHAPE(1, 0));
    tens_t v = naive_reshape(&u, 1, SHAPE(6));
    free(want->v);
    *want = naive_slice(&v, SHAPE(1), SHAPE(5), SHAPE(1));
    free(u.v);
    free(v.v);
    mica_build_output(c->g, "y", y);
}

static const pattern_t patterns[] = {
    {"heads: reshape+transpose",
     build_heads_out,
     1,
     1,
     {{"x0", 3, {H_, T_, D_}, 0, {D_, HD_, 1}, 0, {T_ * D_, D_, 1}}}},
    {"heads + rope low half",
     build_heads_lo,
     1,
     1,
     {{"x0", 3, {H_, T_, D_ / 2}, 0, {D_, HD_, 1}, 0, {T_ * D_ / 2, D_ / 2, 1}}}},
    {"heads + rope high half",
     build_heads_hi,
     1,
     1,
     {{"x0", 3, {H_, T_, D_ / 2}, D_ / 2, {D_, HD_, 1}, 0, {T_ * D_ / 2, D_ / 2, 1}}}},
    {"kv concat",
     build_kv_out,
     1,
     2,
     {{"x0", 1, {P_ * HKV_ * D_}, 0, {1}, 0, {1}},
      {"x1", 1, {T_ * HKV_ * D_}, 0, {1}, PHKVD_, {1}}}},
    {"kv concat + transpose",
     build_kv_heads,
     1,
     2,
     {{"x0", 3, {HKV_, P_, D_}, 0, {D_, HKVD_, 1}, 0, {(P_ + T_) * D_, D_, 1}},
      {"x1", 3, {HKV_, T_, D_}, 0, {D_, HKVD_, 1}, PD_, {(P_ + T_) * D_, D_, 1}}}},
    {"refused: slice across a transposed row",
     build_refused,
     2,
     1,
     {{NULL, 1, {4}, 1, {1}, 0, {1}}}},
};

Test(region_patterns, llm_patterns_fold_as_expected)
{
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        const pattern_t *p = &patterns[i];
        chain_t c;
        chain_init(&c);
        tens_t want;
        p->build(&c, &want);
        int32_t n_geo, n_fold;
        lower_and_check(&c, &want, (int32_t)i, &n_geo, &n_fold);
        cr_assert_eq(n_fold, p->rasters, "%s: %d rasters", p->name, n_fold);
        const mica_node_t *r = output_raster(c.g);
        cr_assert_eq(r->n_regions, p->n_regions, "%s: %d regions", p->name, r->n_regions);
        for (int32_t k = 0; k < p->n_regions; k++)
            expect_region(c.g, r, &r->regions[k], &p->regions[k], p->name);
        free(want.v);
        chain_free(&c);
    }
}

Test(region_patterns, refused_chain_keeps_transpose_materialized)
{
    chain_t c;
    chain_init(&c);
    tens_t want;
    build_refused(&c, &want);
    int32_t n_geo, n_fold;
    lower_and_check(&c, &want, 0, &n_geo, &n_fold);
    cr_assert_eq(n_geo, 3);
    cr_assert_eq(n_fold, 2);
    /* the first raster is transpose and reshape composed: [3, 2] from x [2, 3] */
    const mica_node_t *first = NULL;
    for (int32_t i = 0; i < c.g->n_nodes && !first; i++)
        if (c.g->nodes[i]->op == MICA_OP_RASTER)
            first = c.g->nodes[i];
    cr_assert_eq(first->n_regions, 1);
    want_region_t w = {"x0", 2, {3, 2}, 0, {1, 3}, 0, {2, 1}};
    expect_region(c.g, first, &first->regions[0], &w, "transposed x");
    free(want.v);
    chain_free(&c);
}

/* ------------------------------------------------------------------------ */
/* folding into a consumer                                                   */

Test(region_fold, transpose_folds_into_silu_view)
{
    chain_t c;
    chain_init(&c);
    tens_t want;
    int32_t y = build_heads(&c, &want);
    y = mica_build_unary(c.g, MICA_OP_SILU, y);
    mica_build_output(c.g, "y", y);
    for (int64_t i = 0; i < tnumel(&want); i++)
        want.v[i] = silu_ref(want.v[i]);
    int32_t n_geo, n_fold;
    lower_and_check(&c, &want, 0, &n_geo, &n_fold);
    cr_assert_eq(n_geo, 2);
    cr_assert_eq(n_fold, 0);
    const mica_node_t *silu = NULL;
    for (int32_t i = 0; i < c.g->n_nodes; i++)
        if (c.g->nodes[i]->op == MICA_OP_SILU)
            silu = c.g->nodes[i];
    cr_assert_not_null(silu);
    const mica_operand_t *o = &silu->inputs[0];
    cr_assert_eq(c.g->nodes[o->value]->op, MICA_OP_INPUT);
    cr_assert(o->has_view);
    cr_assert_eq(o->view_rank, 3);
    const int64_t shape[3] = {H_, T_, D_}, stride[3] = {D_, H_ * D_, 1};
    cr_assert_eq(o->view.offset, 0);
    for (int32_t d = 0; d < 3; d++) {
        cr_assert_eq(o->view_shape[d], shape[d]);
        cr_assert_eq(o->view.stride[d], stride[d]);
    }
    free(want.v);
    chain_free(&c);
}

Test(region_fold, raster_read_by_output_or_unstrided_op_stays)
{
    /* read by silu and by an output: stays materialized */
    chain_t c;
    chain_init(&c);
    tens_t want;
    int32_t y = build_heads(&c, &want);
    mica_build_output(c.g, "y", y);
    mica_build_output(c.g, "z", mica_build_unary(c.g, MICA_OP_SILU, y));
    int32_t n_geo, n_fold;
    lower_and_check(&c, &want, 0, &n_geo, &n_fold);
    cr_assert_eq(n_fold, 1);
    free(want.v);
    chain_free(&c);

    /* an operand not marked strided (embedding's table) keeps its raster */
    chain_init(&c);
    int32_t x = fresh_input(&c, 2, SHAPE(D_, 6), &want);
    int32_t ids = ids_input(&c, 1, SHAPE(T_), (const int32_t[]){0, 5, 2});
    y = mica_build_transpose(c.g, x, SHAPE(1, 0));
    y = mica_build_binary(c.g, MICA_OP_EMBEDDING, y, ids);
    mica_build_output(c.g, "y", y);
    mica_diag_t d = {0};
    cr_assert_eq(c.g->error.code, MICA_OK, "%s", c.g->error.msg);
    cr_assert_eq(mica_pass_geometry(&c.g, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_pass_fold_regions(&c.g, &d), MICA_OK, "%s", d.msg);
    verify_ok(c.g, "embedding");
    bool strided = mica_op_info(MICA_OP_EMBEDDING)->strided_mask & 1u;
    cr_assert_eq(count_op(c.g, MICA_OP_RASTER), strided ? 0 : 1);
    free(want.v);
    chain_free(&c);
}

Test(region_fold, identity_raster_is_dropped)
{
    chain_t c;
    chain_init(&c);
    tens_t want;
    int32_t x = fresh_input(&c, 2, SHAPE(3, 4), &want);
    int32_t y = mica_build_transpose(c.g, x, SHAPE(1, 0));
    y = mica_build_transpose(c.g, y, SHAPE(1, 0));
    y = mica_build_unary(c.g, MICA_OP_SILU, y);
    mica_build_output(c.g, "y", y);
    for (int64_t i = 0; i < tnumel(&want); i++)
        want.v[i] = silu_ref(want.v[i]);
    int32_t n_geo, n_fold;
    lower_and_check(&c, &want, 0, &n_geo, &n_fold);
    cr_assert_eq(n_geo, 2);
    cr_assert_eq(n_fold, 0);
    for (int32_t i = 0; i < c.g->n_nodes; i++)
        if (c.g->nodes[i]->op == MICA_OP_SILU)
            cr_assert_not(c.g->nodes[i]->inputs[0].has_view);
    free(want.v);
    chain_free(&c);
}

/* ------------------------------------------------------------------------ */
/* real model graphs                                                         */

/* Builds one step of a golden model (3 new tokens after 2 cached), runs it
 * on the reference backend before geometry and after fold-regions, and
 * requires every output to be bit-identical: rasters, composed regions and
 * views must copy exactly the elements the data-movement ops did. */
static void model_unchanged_by_folding(const char *file)
{
    mica_diag_t d = {0};
    mica_gguf_t *f = NULL;
    const char *path = mica_test_golden(file);
    FILE *probe = fopen(path, "rb");
    if (!probe)
        cr_skip_test("%s is not there", path);
    fclose(probe);
    cr_assert_eq(mica_gguf_open(path, &f, &d), MICA_OK, "%s: %s", path, d.msg);
    mica_model_config_t cfg;
    cr_assert_eq(mica_model_config_from_gguf(f, &cfg, &d), MICA_OK, "%s", d.msg);
    enum { N_TOKENS = 3, N_PAST = 2 };
    mica_graph_t *g0 = NULL, *g1 = NULL;
    cr_assert_eq(mica_model_build(f, &cfg, N_TOKENS, N_PAST, true, &g0, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_build(f, &cfg, N_TOKENS, N_PAST, true, &g1, &d), MICA_OK, "%s", d.msg);
    int32_t moves = count_data_movement(g1);
    cr_assert_eq(mica_pass_geometry(&g1, &d), MICA_OK, "%s", d.msg);
    verify_ok(g1, "model after geometry");
    int32_t n_geo = count_op(g1, MICA_OP_RASTER);
    cr_assert_eq(n_geo, moves);
    cr_assert_eq(mica_pass_fold_regions(&g1, &d), MICA_OK, "%s", d.msg);
    verify_ok(g1, "model after fold-regions");
    int32_t n_fold = count_op(g1, MICA_OP_RASTER), n_views = 0;
    for (int32_t i = 0; i < g1->n_nodes; i++)
        for (int32_t k = 0; k < g1->nodes[i]->n_inputs; k++)
            n_views += g1->nodes[i]->inputs[k].has_view;
    cr_assert_lt(n_fold, n_geo);
    cr_log_info("%s: %d data-movement ops -> %d rasters after geometry -> %d after "
                "fold-regions, %d operand views",
                file, moves, n_geo, n_fold, n_views);

    mica_ref_tensor_t in[64];
    int32_t n_in = 0;
    for (int32_t i = 0; i < g0->n_nodes; i++) {
        const mica_node_t *n = g0->nodes[i];
        if (n->op != MICA_OP_INPUT)
            continue;
        cr_assert_lt(n_in, 64);
        const char *name = mica_node_attr_s(n, "name");
        int64_t numel = mica_type_numel(&n->type);
        void *data = malloc((size_t)numel * 4);
        for (int64_t k = 0; k < numel; k++) {
            if (n->type.dtype == MICA_DTYPE_I32)
                ((int32_t *)data)[k] =
                    (int32_t)(strcmp(name, "pos") == 0 ? N_PAST + k : (k * 7919 + 1) % cfg.n_vocab);
            else
                ((float *)data)[k] = (float)(k * 37 % 101 - 50) / 50.0f;
        }
        in[n_in++] = (mica_ref_tensor_t){name, n->type, data};
    }
    mica_ref_outputs_t *o0 = NULL, *o1 = NULL;
    cr_assert_eq(mica_ref_execute(g0, in, n_in, &o0, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_execute(g1, in, n_in, &o1, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_outputs_count(o0), mica_ref_outputs_count(o1));
    for (int32_t i = 0; i < mica_ref_outputs_count(o0); i++) {
        const mica_ref_tensor_t *a = mica_ref_outputs_at(o0, i);
        const mica_ref_tensor_t *b = mica_ref_outputs_find(o1, a->name);
        cr_assert_not_null(b, "output %s is gone", a->name);
        cr_assert(mica_type_equal(&a->type, &b->type), "output %s changed type", a->name);
        size_t bytes = (size_t)mica_type_numel(&a->type) * 4;
        cr_assert_eq(memcmp(a->data, b->data, bytes), 0, "output %s differs", a->name);
    }
    mica_ref_outputs_release(o0);
    mica_ref_outputs_release(o1);
    for (int32_t i = 0; i < n_in; i++)
        free(in[i].data);
    mica_graph_release(g0);
    mica_graph_release(g1);
    mica_gguf_close(f);
}

Test(region_models, llama_tiny_f32_runs_the_same_after_folding)
{
    model_unchanged_by_folding("llama-tiny.f32.gguf");
}

Test(region_models, qwen2_tiny_q4_0_runs_the_same_after_folding)
{
    model_unchanged_by_folding("qwen2-tiny.q4_0.gguf");
}

/* ------------------------------------------------------------------------ */
/* mica_region_compose and mica_region_canonicalize units                    */

static mica_region_t reg(int32_t input, int32_t rank, const int64_t *size, int64_t src_off,
                         const int64_t *src, int64_t dst_off, const int64_t *dst)
{
    mica_region_t r;
    memset(&r, 0, sizeof r);
    r.input = input;
    r.index_input = -1;
    r.rank = rank;
    for (int32_t d = 0; d < rank; d++) {
        r.size[d] = size[d];
        r.src.stride[d] = src[d];
        r.dst.stride[d] = dst[d];
    }
    r.src.offset = src_off;
    r.dst.offset = dst_off;
    return r;
}

static void expect_fields(const mica_region_t *r, int32_t input, int32_t rank, const int64_t *size,
                          int64_t src_off, const int64_t *src, int64_t dst_off, const int64_t *dst)
{
    cr_assert_eq(r->input, input);
    cr_assert_eq(r->rank, rank, "rank %d, want %d", r->rank, rank);
    cr_assert_eq(r->src.offset, src_off, "src offset %lld", (long long)r->src.offset);
    cr_assert_eq(r->dst.offset, dst_off, "dst offset %lld", (long long)r->dst.offset);
    for (int32_t d = 0; d < rank; d++) {
        cr_assert_eq(r->size[d], size[d], "size[%d] = %lld", d, (long long)r->size[d]);
        cr_assert_eq(r->src.stride[d], src[d], "src[%d] = %lld", d, (long long)r->src.stride[d]);
        cr_assert_eq(r->dst.stride[d], dst[d], "dst[%d] = %lld", d, (long long)r->dst.stride[d]);
    }
}

/* Runs regions over float operands with a plain loop (zero first). */
static void apply_regions(const mica_region_t *rs, int32_t n, const float *const *srcs,
                          const int32_t *ids, float *out, int64_t out_n)
{
    memset(out, 0, (size_t)out_n * sizeof *out);
    for (int32_t r = 0; r < n; r++) {
        int64_t idx[MICA_MAX_RANK];
        for (int64_t e = 0; e < shape_numel(rs[r].rank, rs[r].size); e++) {
            unravel(e, rs[r].rank, rs[r].size, idx);
            int64_t s = rs[r].src.offset, t = rs[r].dst.offset;
            for (int32_t d = 0; d < rs[r].rank; d++) {
                bool via = rs[r].index_input >= 0 && d == rs[r].index_dim;
                s += (via ? ids[idx[d]] : idx[d]) * rs[r].src.stride[d];
                t += idx[d] * rs[r].dst.stride[d];
            }
            cr_assert_lt(t, out_n);
            out[t] = srcs[rs[r].input][s];
        }
    }
}

static const float ARANGE[64] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
                                 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

/* Checks that out (n regions) does what b after a does, on arange data. */
static void expect_same_copy(const mica_region_t *b, const mica_region_t *a, int32_t n_a,
                             int64_t x_n, const mica_region_t *out, int32_t n, int64_t y_n,
                             const int32_t *ids)
{
    float x[64], y1[64], y2[64];
    const float *srcs[4] = {ARANGE, ARANGE, ARANGE, ARANGE};
    apply_regions(a, n_a, srcs, ids, x, x_n);
    const float *xs[4] = {x, x, x, x};
    apply_regions(b, 1, xs, ids, y1, y_n);
    apply_regions(out, n, srcs, ids, y2, y_n);
    for (int64_t i = 0; i < y_n; i++)
        cr_assert_eq(y1[i], y2[i], "element %lld: %g, want %g", (long long)i, y2[i], y1[i]);
}

Test(region_compose, broadcast_through_transpose)
{
    /* a: x [3] broadcast to X [2, 3]; b: X transposed to [3, 2] */
    mica_region_t a = reg(0, 2, SHAPE(2, 3), 0, SHAPE(0, 1), 0, SHAPE(3, 1));
    mica_region_t b = reg(0, 2, SHAPE(3, 2), 0, SHAPE(1, 3), 0, SHAPE(2, 1));
    mica_region_t out[4];
    int32_t n = -1;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 4, &n), MICA_OK);
    cr_assert_eq(n, 1);
    expect_fields(&out[0], 0, 2, SHAPE(3, 2), 0, SHAPE(1, 0), 0, SHAPE(2, 1));
    expect_same_copy(&b, &a, 1, 6, out, n, 6, NULL);
}

Test(region_compose, split_of_a_carrying_dim)
{
    /* a: x [2, 3] transposed into X [3, 2]; b: X read flat as [6] */
    mica_region_t a = reg(0, 2, SHAPE(3, 2), 0, SHAPE(1, 3), 0, SHAPE(2, 1));
    mica_region_t b = reg(0, 1, SHAPE(6), 0, SHAPE(1), 0, SHAPE(1));
    mica_region_t out[4];
    int32_t n = -1;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 1, &n), MICA_OK);
    cr_assert_eq(n, 1);
    expect_fields(&out[0], 0, 2, SHAPE(3, 2), 0, SHAPE(1, 3), 0, SHAPE(2, 1));
    expect_same_copy(&b, &a, 1, 6, out, n, 6, NULL);

    /* two splits: x [2, 3, 4] reversed into X [4, 3, 2], read flat */
    a = reg(0, 3, SHAPE(4, 3, 2), 0, SHAPE(1, 4, 12), 0, SHAPE(6, 2, 1));
    b = reg(0, 1, SHAPE(24), 0, SHAPE(1), 0, SHAPE(1));
    cr_assert_eq(mica_region_compose(&b, &a, 1, 24, out, 1, &n), MICA_OK);
    cr_assert_eq(n, 1);
    expect_fields(&out[0], 0, 3, SHAPE(4, 3, 2), 0, SHAPE(1, 4, 12), 0, SHAPE(6, 2, 1));
    expect_same_copy(&b, &a, 1, 24, out, n, 24, NULL);
}

Test(region_compose, refused_when_split_dim_starts_inside)
{
    /* b reads X [3, 2] (transposed x [2, 3]) flat from element 1 to 4 */
    mica_region_t a = reg(0, 2, SHAPE(3, 2), 0, SHAPE(1, 3), 0, SHAPE(2, 1));
    mica_region_t b = reg(0, 1, SHAPE(4), 1, SHAPE(1), 0, SHAPE(1));
    mica_region_t out[4];
    int32_t n = -1;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 1, &n), MICA_ERR_UNSUPPORTED);
    /* with room for two it is exact: x[3], x[4] to 0, 2 and x[1], x[2] to 1, 3 */
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 2, &n), MICA_OK);
    cr_assert_eq(n, 2);
    expect_fields(&out[0], 0, 1, SHAPE(2), 3, SHAPE(1), 0, SHAPE(2));
    expect_fields(&out[1], 0, 1, SHAPE(2), 1, SHAPE(1), 1, SHAPE(2));
    expect_same_copy(&b, &a, 1, 6, out, n, 4, NULL);
}

Test(region_compose, concat_pieces_of_one_source_merge)
{
    /* X [4] = concat(x[0:2], x[2:4]); b reads X flat: one region over x */
    mica_region_t a[2] = {reg(0, 1, SHAPE(2), 0, SHAPE(1), 0, SHAPE(1)),
                          reg(0, 1, SHAPE(2), 2, SHAPE(1), 2, SHAPE(1))};
    mica_region_t b = reg(0, 1, SHAPE(4), 0, SHAPE(1), 0, SHAPE(1));
    mica_region_t out[4];
    int32_t n = -1;
    cr_assert_eq(mica_region_compose(&b, a, 2, 4, out, 2, &n), MICA_OK);
    cr_assert_eq(n, 1);
    expect_fields(&out[0], 0, 1, SHAPE(4), 0, SHAPE(1), 0, SHAPE(1));

    /* interleaved concat on the last axis: X [3, 4] = concat(p [3, 2], q [3, 2], axis 1) */
    mica_region_t c[2] = {reg(0, 2, SHAPE(3, 2), 0, SHAPE(2, 1), 0, SHAPE(4, 1)),
                          reg(1, 2, SHAPE(3, 2), 0, SHAPE(2, 1), 2, SHAPE(4, 1))};
    b = reg(0, 1, SHAPE(12), 0, SHAPE(1), 0, SHAPE(1));
    cr_assert_eq(mica_region_compose(&b, c, 2, 12, out, 2, &n), MICA_OK);
    cr_assert_eq(n, 2);
    expect_fields(&out[0], 0, 2, SHAPE(3, 2), 0, SHAPE(2, 1), 0, SHAPE(4, 1));
    expect_fields(&out[1], 1, 2, SHAPE(3, 2), 0, SHAPE(2, 1), 2, SHAPE(4, 1));
}

Test(region_compose, holes_and_bad_input)
{
    /* a writes only X[0:3] of 6; b reads X[2:5] */
    mica_region_t a = reg(0, 1, SHAPE(3), 0, SHAPE(1), 0, SHAPE(1));
    mica_region_t b = reg(0, 1, SHAPE(3), 2, SHAPE(1), 0, SHAPE(1));
    mica_region_t out[4];
    int32_t n = -1;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 4, &n), MICA_ERR_UNSUPPORTED);
    /* b reads past the end of X */
    b = reg(0, 1, SHAPE(3), 4, SHAPE(1), 0, SHAPE(1));
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 4, &n), MICA_ERR_INVALID);
    b.rank = 0;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 6, out, 4, &n), MICA_ERR_INVALID);
}

Test(region_compose, gather_on_either_side)
{
    const int32_t ids[3] = {2, 0, 1};
    /* a: X [3, 4] = rows ids of x [3, 4]; b: X flat -> one gather region */
    mica_region_t a = reg(0, 2, SHAPE(3, 4), 0, SHAPE(4, 1), 0, SHAPE(4, 1));
    a.index_input = 1;
    a.index_dim = 0;
    mica_region_t b = reg(0, 1, SHAPE(12), 0, SHAPE(1), 0, SHAPE(1));
    mica_region_t out[4];
    int32_t n = -1;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 12, out, 1, &n), MICA_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].index_input, 1);
    cr_assert_eq(out[0].index_dim, 0);
    expect_fields(&out[0], 0, 2, SHAPE(3, 4), 0, SHAPE(4, 1), 0, SHAPE(4, 1));
    expect_same_copy(&b, &a, 1, 12, out, n, 12, ids);

    /* b reads rows 1.. of the gathered X: ids from an offset, refused */
    b = reg(0, 1, SHAPE(8), 4, SHAPE(1), 0, SHAPE(1));
    cr_assert_eq(mica_region_compose(&b, &a, 1, 12, out, 4, &n), MICA_ERR_UNSUPPORTED);

    /* b gathers columns of X = x [4, 3] transposed to [3, 4]: stays exact
     * for every column id inside X */
    mica_region_t t = reg(0, 2, SHAPE(3, 4), 0, SHAPE(1, 3), 0, SHAPE(4, 1));
    b = reg(0, 2, SHAPE(3, 3), 0, SHAPE(4, 1), 0, SHAPE(3, 1));
    b.index_input = 2;
    b.index_dim = 1;
    cr_assert_eq(mica_region_compose(&b, &t, 1, 12, out, 1, &n), MICA_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].index_input, 2);
    expect_same_copy(&b, &t, 1, 12, out, n, 9, ids);

    /* both sides gather: refused */
    b.index_input = 2;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 12, out, 4, &n), MICA_ERR_UNSUPPORTED);

    /* ids that do not move the address (stride 0) make a plain copy, and
     * then b can read through a's gather */
    b = reg(0, 2, SHAPE(3, 4), 0, SHAPE(0, 1), 0, SHAPE(4, 1));
    b.index_input = 2;
    b.index_dim = 0;
    cr_assert_eq(mica_region_compose(&b, &a, 1, 12, out, 1, &n), MICA_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0].index_input, 1);
    expect_same_copy(&b, &a, 1, 12, out, n, 12, ids);
}

Test(region_canonicalize, drops_unit_dims_and_merges_contiguous)
{
    mica_region_t r = reg(3, 4, SHAPE(2, 1, 3, 4), 5, SHAPE(12, 99, 4, 1), 0, SHAPE(12, 7, 4, 1));
    mica_region_canonicalize(&r);
    expect_fields(&r, 3, 1, SHAPE(24), 5, SHAPE(1), 0, SHAPE(1));
    /* transposed dims stay apart; order follows the destination */
    r = reg(0, 2, SHAPE(4, 3), 0, SHAPE(3, 1), 0, SHAPE(1, 4));
    mica_region_canonicalize(&r);
    expect_fields(&r, 0, 2, SHAPE(3, 4), 0, SHAPE(1, 3), 0, SHAPE(4, 1));
    r = reg(0, 2, SHAPE(1, 1), 0, SHAPE(3, 3), 2, SHAPE(1, 1));
    mica_region_canonicalize(&r);
    expect_fields(&r, 0, 1, SHAPE(1), 0, SHAPE(1), 2, SHAPE(1));
    /* a gather dim is kept even at size 1 */
    r = reg(0, 2, SHAPE(1, 5), 0, SHAPE(5, 1), 0, SHAPE(5, 1));
    r.index_input = 1;
    r.index_dim = 0;
    mica_region_canonicalize(&r);
    cr_assert_eq(r.rank, 2);
    cr_assert_eq(r.index_dim, 0);
}

Test(region_copy, copies_and_checks_bounds)
{
    mica_region_t r = reg(0, 2, SHAPE(3, 2), 0, SHAPE(1, 3), 0, SHAPE(2, 1));
    float y[6];
    const void *ops[1] = {ARANGE};
    const int64_t numel[1] = {6};
    cr_assert_eq(mica_region_copy(&r, ops, numel, 1, sizeof(float), y, 6), MICA_OK);
    const float want[6] = {0, 3, 1, 4, 2, 5};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(y[i], want[i]);
    cr_assert_eq(mica_region_copy(&r, ops, numel, 1, sizeof(float), y, 5), MICA_ERR_RANGE);
    const int64_t small[1] = {5};
    cr_assert_eq(mica_region_copy(&r, ops, small, 1, sizeof(float), y, 6), MICA_ERR_RANGE);
}
