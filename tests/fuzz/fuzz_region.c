/* Fuzz target: random chains of data-movement ops (reshape, transpose,
 * slice, concat, broadcast, gather), drawn from the input bytes, built as a
 * graph and lowered by geometry then fold-regions. After each pass the
 * graph is run by plain loops and compared exactly with the naive op
 * chain on distinct values (the oracle of tests/test_region.c, whose
 * helpers this file repeats with aborts in place of Criterion asserts). A
 * pass may refuse a fold, never change a value. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "fuzz_targets.h"
#include "ir.h"
#include "passes.h"
#include "region.h"

enum { MAX_BIND = 64, NUMEL_CAP = 3000, MAX_OPS = 8 };

/* The input bytes as a source of draws; past the end every draw is lo. */
typedef struct reader {
    const uint8_t *p;
    size_t n, at;
} reader_t;

static int64_t reader_range(reader_t *r, int64_t lo, int64_t hi)
{
    if (hi <= lo || r->at >= r->n)
        return lo;
    return lo + (int64_t)(r->p[r->at++] % (uint64_t)(hi - lo + 1));
}

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
    MICA_FUZZ_CHECK(t.v, "out of memory");
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
    MICA_FUZZ_CHECK(c->n_bind < MAX_BIND, "too many inputs");
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
    MICA_FUZZ_CHECK(c->n_bind < MAX_BIND, "too many inputs");
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
    MICA_FUZZ_CHECK(mica_graph_create(&c->g) == MICA_OK, "no graph");
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
            MICA_FUZZ_CHECK(b, "input %s is not bound", name);
            MICA_FUZZ_CHECK(b->n == y->n, "input %s has %lld elements", name, (long long)b->n);
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
                    MICA_FUZZ_CHECK(s >= 0 && s < x->n && t >= 0 && t < y->n,
                              "%%%d region %d: element %lld -> %lld of %lld / %lld", i, r,
                              (long long)s, (long long)t, (long long)x->n, (long long)y->n);
                    y->f[t] = x->f[s];
                    writes[t]++;
                }
            }
            for (int64_t e = 0; e < y->n; e++)
                MICA_FUZZ_CHECK(writes[e] == 1, "%%%d: element %lld written %d times", i, (long long)e,
                             writes[e]);
            free(writes);
        } else if (n->op == MICA_OP_SILU || n->op == MICA_OP_OUTPUT) {
            const val_t *x = &vals[n->inputs[0].value];
            for (int64_t e = 0; e < y->n; e++) {
                int64_t at = operand_addr(&n->inputs[0], e);
                MICA_FUZZ_CHECK(at >= 0 && at < x->n, "%%%d reads %lld of %lld", i, (long long)at, (long long)x->n);
                y->f[e] = n->op == MICA_OP_SILU ? silu_ref(x->f[at]) : x->f[at];
            }
            if (n->op == MICA_OP_OUTPUT && strcmp(mica_node_attr_s(n, "name"), "y") == 0) {
                result = malloc((size_t)y->n * sizeof *result);
                memcpy(result, y->f, (size_t)y->n * sizeof *result);
                *out_n = y->n;
            }
        } else {
            MICA_FUZZ_CHECK(0, "%%%d: unexpected op %s", i, mica_op_info(n->op)->name);
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        free(vals[i].f);
        free(vals[i].ids);
    }
    free(vals);
    MICA_FUZZ_CHECK(result, "no output y");
    return result;
}

static int64_t rnd(reader_t *r, int64_t lo, int64_t hi)
{
    return reader_range(r, lo, hi);
}

static void random_perm(reader_t *r, int32_t n, int64_t *perm)
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
static int32_t random_op(chain_t *c, reader_t *r, int32_t x, tens_t *t, int32_t *kinds)
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


static int32_t count_op(const mica_graph_t *g, mica_op_t op)
{
    int32_t n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        n += g->nodes[i]->op == op;
    return n;
}

static void check_pass(chain_t *c, const tens_t *want, const char *when)
{
    mica_diag_t d = {0};
    MICA_FUZZ_CHECK(mica_graph_verify(c->g, &d) == MICA_OK, "%s: %s", when, d.msg);
    int64_t n = 0;
    float *got = eval_graph(c->g, c, &n);
    MICA_FUZZ_CHECK(n == tnumel(want), "%s: %lld elements, want %lld", when, (long long)n,
                    (long long)tnumel(want));
    for (int64_t i = 0; i < n; i++)
        MICA_FUZZ_CHECK(got[i] == want->v[i], "%s: element %lld is %g, want %g", when,
                        (long long)i, got[i], want->v[i]);
    free(got);
}

int mica_fuzz_region_one(const uint8_t *data, size_t size)
{
    reader_t r = {data, size, 0};
    chain_t c;
    chain_init(&c);
    int32_t rank = (int32_t)reader_range(&r, 1, 4);
    int64_t shape[MICA_MAX_RANK];
    for (int32_t d = 0; d < rank; d++)
        shape[d] = reader_range(&r, 1, 6);
    tens_t t;
    memset(&t, 0, sizeof t);
    int32_t cur = fresh_input(&c, rank, shape, &t);
    int32_t n_ops = (int32_t)reader_range(&r, 1, MAX_OPS), kinds[6] = {0};
    for (int32_t k = 0; k < n_ops && r.at < r.n; k++)
        cur = random_op(&c, &r, cur, &t, kinds);
    mica_build_output(c.g, "y", cur);
    mica_diag_t d = {0};
    MICA_FUZZ_CHECK(c.g->error.code == MICA_OK, "building: %s", c.g->error.msg);
    MICA_FUZZ_CHECK(mica_pass_geometry(&c.g, &d) == MICA_OK, "geometry: %s", d.msg);
    check_pass(&c, &t, "after geometry");
    int32_t n_geo = count_op(c.g, MICA_OP_RASTER);
    MICA_FUZZ_CHECK(mica_pass_fold_regions(&c.g, &d) == MICA_OK, "fold-regions: %s", d.msg);
    check_pass(&c, &t, "after fold-regions");
    MICA_FUZZ_CHECK(count_op(c.g, MICA_OP_RASTER) <= n_geo, "fold-regions added rasters");
    free(t.v);
    chain_free(&c);
    return 0;
}

MICA_FUZZ_DEFINE_ENTRY(region)
