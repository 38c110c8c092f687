/* Region algebra: canonical forms, composition of a reader region with the
 * raster that produced what it reads, and a naive evaluator.
 *
 * Composition works on a "box": the reader region b, possibly split into
 * more dims or cut into pieces. For a box whose first element lies in
 * producer region a, every box dim's stride into X is written in a's
 * destination coordinates (a's destination dims, sorted by stride, form a
 * mixed radix). When the box's coordinates stay inside a for every index
 * (no carry), the box reads a's source linearly and becomes one region.
 * Otherwise a dim is split (an exact reindexing) so that its parts line up
 * with a's dims, or the box is cut in two along the dim that leaves a, and
 * the pieces are composed on their own. Pieces are merged back where they
 * read one source with consistent strides. Everything that is not provably
 * exact is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "region.h"

#define WIDE_RANK 16 /* dims a box may have while it is being split */

/* A region with room for extra dims while it is built. */
typedef struct wide {
    int32_t rank;
    int32_t index_dim; /* dim read through ids, or -1 */
    int64_t size[WIDE_RANK];
    int64_t src[WIDE_RANK]; /* source strides, elements */
    int64_t dst[WIDE_RANK]; /* destination strides, elements */
    int64_t src_off, dst_off;
} wide_t;

int64_t mica_region_numel(const mica_region_t *r)
{
    int64_t n = 1;
    for (int32_t d = 0; d < r->rank; d++)
        n *= r->size[d];
    return n;
}

/* ------------------------------------------------------------------------ */
/* canonical form                                                            */

static void wide_canonicalize(wide_t *w)
{
    /* drop size-1 dims (the index dim stays: its ids[0] matters) */
    int32_t k = 0, index_dim = -1;
    for (int32_t d = 0; d < w->rank; d++) {
        if (w->size[d] == 1 && d != w->index_dim)
            continue;
        if (d == w->index_dim)
            index_dim = k;
        w->size[k] = w->size[d];
        w->src[k] = w->src[d];
        w->dst[k] = w->dst[d];
        k++;
    }
    w->rank = k;
    w->index_dim = index_dim;
    if (w->rank == 0) {
        w->rank = 1;
        w->size[0] = 1;
        w->src[0] = 1;
        w->dst[0] = 1;
        return;
    }
    /* stable insertion sort: destination stride, then source stride, largest first */
    for (int32_t i = 1; i < w->rank; i++) {
        for (int32_t j = i; j > 0; j--) {
            bool swap = w->dst[j] > w->dst[j - 1] ||
                        (w->dst[j] == w->dst[j - 1] && w->src[j] > w->src[j - 1]);
            if (!swap)
                break;
            int64_t t;
            t = w->size[j], w->size[j] = w->size[j - 1], w->size[j - 1] = t;
            t = w->src[j], w->src[j] = w->src[j - 1], w->src[j - 1] = t;
            t = w->dst[j], w->dst[j] = w->dst[j - 1], w->dst[j - 1] = t;
            if (w->index_dim == j)
                w->index_dim = j - 1;
            else if (w->index_dim == j - 1)
                w->index_dim = j;
        }
    }
    /* merge neighbours that are contiguous in both views */
    for (int32_t d = 0; d + 1 < w->rank;) {
        if (d != w->index_dim && d + 1 != w->index_dim &&
            w->src[d] == w->src[d + 1] * w->size[d + 1] &&
            w->dst[d] == w->dst[d + 1] * w->size[d + 1]) {
            w->size[d] *= w->size[d + 1];
            w->src[d] = w->src[d + 1];
            w->dst[d] = w->dst[d + 1];
            for (int32_t e = d + 1; e + 1 < w->rank; e++) {
                w->size[e] = w->size[e + 1];
                w->src[e] = w->src[e + 1];
                w->dst[e] = w->dst[e + 1];
            }
            w->rank--;
            if (w->index_dim > d)
                w->index_dim--;
        } else {
            d++;
        }
    }
}

static void wide_from_region(wide_t *w, const mica_region_t *r)
{
    memset(w, 0, sizeof *w);
    w->rank = r->rank;
    w->index_dim = r->index_input >= 0 ? r->index_dim : -1;
    for (int32_t d = 0; d < r->rank; d++) {
        w->size[d] = r->size[d];
        w->src[d] = r->src.stride[d];
        w->dst[d] = r->dst.stride[d];
    }
    w->src_off = r->src.offset;
    w->dst_off = r->dst.offset;
}

/* Fills the view fields of r from w; false when w has too many dims. */
static bool wide_to_region(const wide_t *w, mica_region_t *r)
{
    if (w->rank > MICA_MAX_RANK)
        return false;
    memset(r->size, 0, sizeof r->size);
    memset(&r->src, 0, sizeof r->src);
    memset(&r->dst, 0, sizeof r->dst);
    r->rank = w->rank;
    for (int32_t d = 0; d < w->rank; d++) {
        r->size[d] = w->size[d];
        r->src.stride[d] = w->src[d];
        r->dst.stride[d] = w->dst[d];
    }
    r->src.offset = w->src_off;
    r->dst.offset = w->dst_off;
    r->index_dim = w->index_dim >= 0 ? w->index_dim : 0;
    return true;
}

void mica_region_canonicalize(mica_region_t *r)
{
    if (r->rank < 1 || r->rank > MICA_MAX_RANK)
        return;
    if (r->index_input >= 0 && (r->index_dim < 0 || r->index_dim >= r->rank))
        return;
    wide_t w;
    wide_from_region(&w, r);
    wide_canonicalize(&w);
    wide_to_region(&w, r);
}

/* ------------------------------------------------------------------------ */
/* checks                                                                    */

#define EXTENT_MAX ((int64_t)1 << 62)

/* Highest address of a view over sizes (the index dim, if any, counted at
 * its first position), or -1 when a field is out of range or it overflows. */
static int64_t view_top(int32_t rank, const int64_t *size, const mica_view_t *v, int32_t skip)
{
    if (v->offset < 0 || v->offset >= EXTENT_MAX)
        return -1;
    int64_t hi = v->offset;
    for (int32_t d = 0; d < rank; d++) {
        if (size[d] < 1 || size[d] >= EXTENT_MAX || v->stride[d] < 0 || v->stride[d] >= EXTENT_MAX)
            return -1;
        if (d == skip || v->stride[d] == 0)
            continue;
        if (size[d] - 1 > (EXTENT_MAX - hi) / v->stride[d])
            return -1;
        hi += (size[d] - 1) * v->stride[d];
    }
    return hi;
}

static bool region_valid(const mica_region_t *r)
{
    if (r->rank < 1 || r->rank > MICA_MAX_RANK)
        return false;
    int32_t skip = -1;
    if (r->index_input >= 0) {
        if (r->index_dim < 0 || r->index_dim >= r->rank)
            return false;
        skip = r->index_dim;
    }
    return view_top(r->rank, r->size, &r->src, skip) >= 0 &&
           view_top(r->rank, r->size, &r->dst, -1) >= 0;
}

/* ------------------------------------------------------------------------ */
/* merging pieces                                                            */

static bool dims_equal(const mica_region_t *p, const mica_region_t *q, int32_t skip_size)
{
    if (p->rank != q->rank)
        return false;
    for (int32_t d = 0; d < p->rank; d++) {
        if (p->src.stride[d] != q->src.stride[d] || p->dst.stride[d] != q->dst.stride[d])
            return false;
        if (d != skip_size && p->size[d] != q->size[d])
            return false;
    }
    return true;
}

/* hi with dim d removed equals lo (sizes, strides, index dim position). */
static bool equal_without(const mica_region_t *hi, int32_t d, const mica_region_t *lo)
{
    if (hi->rank != lo->rank + 1)
        return false;
    if (hi->index_input >= 0) {
        if (d == hi->index_dim)
            return false;
        if (lo->index_dim != (hi->index_dim > d ? hi->index_dim - 1 : hi->index_dim))
            return false;
    }
    for (int32_t e = 0, k = 0; e < hi->rank; e++) {
        if (e == d)
            continue;
        if (hi->size[e] != lo->size[k] || hi->src.stride[e] != lo->src.stride[k] ||
            hi->dst.stride[e] != lo->dst.stride[k])
            return false;
        k++;
    }
    return true;
}

static bool offsets_step(const mica_region_t *from, const mica_region_t *to, int64_t ds, int64_t dd)
{
    return to->src.offset == from->src.offset + ds && to->dst.offset == from->dst.offset + dd;
}

/* Merges two pieces of one composition into one region when they read the
 * same source and their union is a region. The result is canonical. */
static bool region_merge(const mica_region_t *p_in, const mica_region_t *q_in, mica_region_t *out)
{
    if (p_in->input != q_in->input || p_in->index_input != q_in->index_input)
        return false;
    bool indexed = p_in->index_input >= 0;
    /* a single element has no dims: any stride fits it */
    mica_region_t pp = *p_in, qq = *q_in;
    if (!indexed && mica_region_numel(&pp) == 1)
        pp.rank = 0;
    if (!indexed && mica_region_numel(&qq) == 1)
        qq.rank = 0;
    const mica_region_t *p = &pp, *q = &qq;
    /* continue p along one of its dims */
    if (p->rank == q->rank && (!indexed || p->index_dim == q->index_dim)) {
        for (int32_t d = 0; d < p->rank; d++) {
            if ((indexed && d == p->index_dim) || !dims_equal(p, q, d))
                continue;
            const mica_region_t *first = NULL, *second = NULL;
            if (offsets_step(p, q, p->size[d] * p->src.stride[d], p->size[d] * p->dst.stride[d]))
                first = p, second = q;
            else if (offsets_step(q, p, q->size[d] * q->src.stride[d],
                                  q->size[d] * q->dst.stride[d]))
                first = q, second = p;
            if (!first)
                continue;
            *out = *first;
            out->size[d] += second->size[d];
            mica_region_canonicalize(out);
            return true;
        }
    }
    /* one more step along a dim the other lacks (it has size 1 there) */
    if (p->rank == q->rank + 1 || q->rank == p->rank + 1) {
        const mica_region_t *hi = p->rank > q->rank ? p : q, *lo = p->rank > q->rank ? q : p;
        for (int32_t d = 0; d < hi->rank; d++) {
            if (!equal_without(hi, d, lo))
                continue;
            int64_t ss = hi->src.stride[d], sd = hi->dst.stride[d];
            if (offsets_step(hi, lo, hi->size[d] * ss, hi->size[d] * sd)) {
                *out = *hi;
            } else if (offsets_step(lo, hi, ss, sd)) {
                *out = *hi;
                out->src.offset = lo->src.offset;
                out->dst.offset = lo->dst.offset;
            } else {
                continue;
            }
            out->size[d]++;
            mica_region_canonicalize(out);
            return true;
        }
    }
    /* two equal boxes: stack them along a new dim */
    if (!indexed && p->rank == q->rank && p->rank < MICA_MAX_RANK && dims_equal(p, q, -1)) {
        int64_t ds = q->src.offset - p->src.offset, dd = q->dst.offset - p->dst.offset;
        const mica_region_t *first = p;
        if (dd < 0) {
            ds = -ds;
            dd = -dd;
            first = q;
        }
        if (dd == 0 || ds < 0)
            return false;
        *out = *first;
        for (int32_t d = out->rank; d > 0; d--) {
            out->size[d] = out->size[d - 1];
            out->src.stride[d] = out->src.stride[d - 1];
            out->dst.stride[d] = out->dst.stride[d - 1];
        }
        out->rank++;
        out->size[0] = 2;
        out->src.stride[0] = ds;
        out->dst.stride[0] = dd;
        mica_region_canonicalize(out);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* composition                                                               */

/* A producer region prepared for address lookups. */
typedef struct prep {
    const mica_region_t *r;
    int32_t n;                  /* dims with size > 1 */
    int32_t dim[MICA_MAX_RANK]; /* their indices, destination stride largest first */
    bool usable;                /* destination is one-to-one (mixed radix) */
    bool dense;                 /* and writes every address in its span */
    int64_t span;               /* last destination address - first */
} prep_t;

static void prep_init(prep_t *p, const mica_region_t *r)
{
    memset(p, 0, sizeof *p);
    p->r = r;
    for (int32_t d = 0; d < r->rank; d++)
        if (r->size[d] > 1)
            p->dim[p->n++] = d;
    for (int32_t i = 1; i < p->n; i++)
        for (int32_t j = i; j > 0 && r->dst.stride[p->dim[j]] > r->dst.stride[p->dim[j - 1]]; j--) {
            int32_t t = p->dim[j];
            p->dim[j] = p->dim[j - 1];
            p->dim[j - 1] = t;
        }
    /* each stride must exceed the span of all finer dims */
    int64_t span = 0;
    p->usable = true;
    for (int32_t i = p->n - 1; i >= 0; i--) {
        int32_t e = p->dim[i];
        if (r->dst.stride[e] <= span)
            p->usable = false;
        span += (r->size[e] - 1) * r->dst.stride[e];
    }
    p->span = span;
    p->dense = p->usable && span + 1 == mica_region_numel(r);
}

/* Coordinates in p's box of destination address x; false if p does not
 * write x. */
static bool prep_locate(const prep_t *p, int64_t x, int64_t *j)
{
    memset(j, 0, MICA_MAX_RANK * sizeof *j);
    int64_t rem = x - p->r->dst.offset;
    if (rem < 0)
        return false;
    for (int32_t i = 0; i < p->n; i++) {
        int32_t e = p->dim[i];
        int64_t q = rem / p->r->dst.stride[e];
        if (q >= p->r->size[e])
            return false;
        j[e] = q;
        rem -= q * p->r->dst.stride[e];
    }
    return rem == 0;
}

/* Writes an address step s as a sum of p's destination strides (greedy,
 * coarsest first); false if it is not one. */
static bool prep_decompose(const prep_t *p, int64_t s, int64_t *c)
{
    memset(c, 0, MICA_MAX_RANK * sizeof *c);
    for (int32_t i = 0; i < p->n; i++) {
        int32_t e = p->dim[i];
        c[e] = s / p->r->dst.stride[e];
        s -= c[e] * p->r->dst.stride[e];
    }
    return s == 0;
}

/* How many steps of stride s from address x (inside p), at most n, stay
 * inside p: where a reader leaves p's box (a concat boundary, say). A long
 * walk over a region with gaps stops early, which only costs a cut. */
static int64_t steps_inside(const prep_t *p, int64_t x, int64_t s, int64_t n)
{
    if (p->dense) {
        int64_t t = (p->r->dst.offset + p->span - x) / s + 1;
        return t < n ? t : n;
    }
    int64_t j[MICA_MAX_RANK], t = 1;
    while (t < n && t < 4096 && prep_locate(p, x + t * s, j))
        t++;
    return t;
}

/* Part of b still to compose: positions into X and into b's destination. */
typedef struct box {
    int32_t rank;
    int32_t locked; /* b's gather dim (never split or cut), or -1 */
    int64_t size[WIDE_RANK];
    int64_t ext[WIDE_RANK]; /* positions to check: size, or the id range of the locked dim */
    int64_t xs[WIDE_RANK];  /* stride into X */
    int64_t ds[WIDE_RANK];  /* stride into b's destination */
    int64_t x_off, d_off;
} box_t;

typedef struct composer {
    const mica_region_t *b;
    const prep_t *preps;
    int32_t n_a;
    mica_region_t *out; /* pieces so far (malloc) */
    int32_t *tag;       /* per piece: the a region it reads through (malloc) */
    int32_t n_out, cap_out;
    box_t *stack; /* boxes waiting (malloc) */
    int32_t n_stack, cap_stack;
} composer_t;

static bool push_box(composer_t *cp, const box_t *bx)
{
    if (cp->n_stack == cp->cap_stack) {
        int32_t cap = cp->cap_stack ? cp->cap_stack * 2 : 16;
        box_t *s = realloc(cp->stack, (size_t)cap * sizeof *s);
        if (!s)
            return false;
        cp->stack = s;
        cp->cap_stack = cap;
    }
    cp->stack[cp->n_stack++] = *bx;
    return true;
}

/* Adds a piece read through a region number `tag`, merged with earlier
 * pieces of the same a region where their union is a region. */
static bool add_piece(composer_t *cp, mica_region_t r, int32_t tag)
{
    for (int32_t i = 0; i < cp->n_out;) {
        mica_region_t m;
        if (cp->tag[i] == tag && region_merge(&cp->out[i], &r, &m)) {
            r = m;
            cp->n_out--;
            cp->out[i] = cp->out[cp->n_out];
            cp->tag[i] = cp->tag[cp->n_out];
            i = 0;
        } else {
            i++;
        }
    }
    if (cp->n_out == cp->cap_out)
        return false;
    cp->tag[cp->n_out] = tag;
    cp->out[cp->n_out++] = r;
    return true;
}

/* Merges pieces of different a regions that read one source. */
static void merge_across(composer_t *cp)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (int32_t i = 0; i < cp->n_out && !changed; i++) {
            for (int32_t j = i + 1; j < cp->n_out && !changed; j++) {
                mica_region_t m;
                if (!region_merge(&cp->out[i], &cp->out[j], &m))
                    continue;
                cp->out[i] = m;
                cp->out[j] = cp->out[--cp->n_out];
                changed = true;
            }
        }
    }
}

/* Splits dim d of bx into (size/f, f) where f makes the parts line up with
 * a dim boundary of a: the inner part ends where one of a's dims steps
 * (a's row pitch, say), or failing that where a's box ends along a dim.
 * The smallest such f wins. False if there is none. */
static bool split_dim(box_t *bx, int32_t d, const prep_t *p)
{
    if (bx->rank >= WIDE_RANK || d == bx->locked)
        return false;
    const mica_region_t *a = p->r;
    int64_t best = 0;
    for (int pass = 0; pass < 2 && best == 0; pass++) {
        for (int32_t i = 0; i < p->n; i++) {
            int32_t e = p->dim[i];
            int64_t bound = a->dst.stride[e] * (pass == 0 ? 1 : a->size[e]);
            if (bound % bx->xs[d] != 0)
                continue;
            int64_t f = bound / bx->xs[d];
            if (f > 1 && f < bx->size[d] && bx->size[d] % f == 0 && (best == 0 || f < best))
                best = f;
        }
    }
    if (best == 0)
        return false;
    for (int32_t e = bx->rank; e > d + 1; e--) {
        bx->size[e] = bx->size[e - 1];
        bx->ext[e] = bx->ext[e - 1];
        bx->xs[e] = bx->xs[e - 1];
        bx->ds[e] = bx->ds[e - 1];
    }
    bx->rank++;
    if (bx->locked > d)
        bx->locked++;
    bx->size[d + 1] = bx->ext[d + 1] = best;
    bx->xs[d + 1] = bx->xs[d];
    bx->ds[d + 1] = bx->ds[d];
    bx->size[d] = bx->ext[d] = bx->size[d] / best;
    bx->xs[d] *= best;
    bx->ds[d] *= best;
    return true;
}

/* Turns a box that fits inside a (coordinates j0 + sum_d i_d c[d]) into a
 * region. False when it is not expressible (ids read at an offset, ...). */
static bool emit_box(composer_t *cp, const box_t *bx, const prep_t *p, const int64_t *j0,
                     int64_t (*c)[MICA_MAX_RANK])
{
    const mica_region_t *a = p->r, *b = cp->b;
    wide_t w;
    memset(&w, 0, sizeof w);
    w.rank = bx->rank;
    w.index_dim = -1;
    w.dst_off = bx->d_off;
    w.src_off = a->src.offset;
    int32_t k = a->index_input >= 0 ? a->index_dim : -1;
    for (int32_t e = 0; e < a->rank; e++)
        if (e != k)
            w.src_off += j0[e] * a->src.stride[e];
    for (int32_t d = 0; d < bx->rank; d++) {
        w.size[d] = bx->size[d];
        w.dst[d] = bx->ds[d];
        for (int32_t e = 0; e < a->rank; e++)
            if (e != k)
                w.src[d] += c[d][e] * a->src.stride[e];
    }
    mica_region_t r;
    memset(&r, 0, sizeof r);
    r.input = a->input;
    r.index_input = -1;
    if (k >= 0) {
        /* ids[j_k] must become ids[i_d] for one box dim d */
        if (j0[k] != 0)
            return false;
        int32_t via = -1;
        for (int32_t d = 0; d < bx->rank; d++) {
            if (c[d][k] == 0)
                continue;
            if (via >= 0 || c[d][k] != 1)
                return false;
            for (int32_t e = 0; e < a->rank; e++)
                if (e != k && c[d][e] != 0)
                    return false;
            via = d;
        }
        if (via < 0) {
            for (int32_t d = 0; d < bx->rank && via < 0; d++)
                if (bx->size[d] == 1)
                    via = d;
            if (via < 0) {
                if (w.rank >= WIDE_RANK)
                    return false;
                via = w.rank++;
                w.size[via] = 1;
                w.dst[via] = 0;
            }
        }
        w.index_dim = via;
        w.src[via] = a->src.stride[k];
        r.index_input = a->index_input;
    } else if (bx->locked >= 0) {
        w.index_dim = bx->locked;
        r.index_input = b->index_input;
    }
    wide_canonicalize(&w);
    if (!wide_to_region(&w, &r))
        return false;
    return add_piece(cp, r, (int32_t)(p - cp->preps));
}

/* Composes one box (and the pieces it is cut into). */
static mica_status_t compose_box(composer_t *cp, box_t bx, int64_t *steps, int64_t max_steps)
{
    int64_t j0[MICA_MAX_RANK];
    int64_t c[WIDE_RANK][MICA_MAX_RANK];
    bool unrep[WIDE_RANK];
    for (;;) {
        if (++*steps > max_steps)
            return MICA_ERR_UNSUPPORTED;
        const prep_t *p = NULL;
        for (int32_t i = 0; i < cp->n_a && !p; i++)
            if (cp->preps[i].usable && prep_locate(&cp->preps[i], bx.x_off, j0))
                p = &cp->preps[i];
        if (!p)
            return MICA_ERR_UNSUPPORTED; /* an unwritten element, or an unusable producer */
        const mica_region_t *a = p->r;
        if (a->index_input >= 0 && bx.locked >= 0)
            return MICA_ERR_UNSUPPORTED;

        int64_t tot[MICA_MAX_RANK];
        memcpy(tot, j0, sizeof tot);
        int32_t pick = -1;
        for (int32_t d = 0; d < bx.rank; d++) {
            unrep[d] = false;
            memset(c[d], 0, sizeof c[d]);
            if (bx.ext[d] <= 1 || bx.xs[d] == 0)
                continue;
            if (!prep_decompose(p, bx.xs[d], c[d])) {
                unrep[d] = true;
                if (d == bx.locked)
                    return MICA_ERR_UNSUPPORTED;
                if (pick < 0 || bx.xs[d] > bx.xs[pick])
                    pick = d;
                continue;
            }
            for (int32_t e = 0; e < a->rank; e++)
                tot[e] += (bx.ext[d] - 1) * c[d][e];
        }
        int32_t over = -1;
        if (pick < 0) {
            for (int32_t i = 0; i < p->n && over < 0; i++)
                if (tot[p->dim[i]] > a->size[p->dim[i]] - 1)
                    over = p->dim[i];
            if (over < 0)
                return emit_box(cp, &bx, p, j0, c) ? MICA_OK : MICA_ERR_UNSUPPORTED;
            for (int32_t d = 0; d < bx.rank; d++) {
                if (d == bx.locked || bx.ext[d] <= 1 || c[d][over] == 0)
                    continue;
                if (pick < 0 || c[d][over] > c[pick][over] ||
                    (c[d][over] == c[pick][over] && bx.size[d] > bx.size[pick]))
                    pick = d;
            }
            if (pick < 0)
                return MICA_ERR_UNSUPPORTED; /* only the gather dim leaves a */
        }
        if (split_dim(&bx, pick, p))
            continue;
        /* cut where pick leaves a, or else where its coordinate in a
         * would carry (the first t steps then map linearly) */
        int64_t t = steps_inside(p, bx.x_off, bx.xs[pick], bx.size[pick]);
        if (t >= bx.size[pick] && !unrep[pick]) {
            int64_t rest = tot[over] - (bx.ext[pick] - 1) * c[pick][over];
            int64_t room = a->size[over] - 1 - rest;
            t = room < 0 ? 1 : room / c[pick][over] + 1;
        }
        if (t < 1)
            t = 1;
        if (t > bx.size[pick] - 1)
            t = bx.size[pick] - 1;
        box_t tail = bx;
        tail.size[pick] = tail.ext[pick] = bx.size[pick] - t;
        tail.x_off += t * bx.xs[pick];
        tail.d_off += t * bx.ds[pick];
        if (!push_box(cp, &tail))
            return MICA_ERR_NOMEM;
        bx.size[pick] = bx.ext[pick] = t;
    }
}

static int cmp_dst_offset(const void *x, const void *y)
{
    const mica_region_t *p = x, *q = y;
    return (p->dst.offset > q->dst.offset) - (p->dst.offset < q->dst.offset);
}

mica_status_t mica_region_compose(const mica_region_t *b, const mica_region_t *a, int32_t n_a,
                                  int64_t x_numel, mica_region_t *out, int32_t max_out,
                                  int32_t *out_n)
{
    *out_n = 0;
    if (!b || (n_a > 0 && !a) || n_a < 0 || x_numel < 1 || x_numel >= EXTENT_MAX || max_out < 1 ||
        !region_valid(b))
        return MICA_ERR_INVALID;
    for (int32_t i = 0; i < n_a; i++)
        if (!region_valid(&a[i]))
            return MICA_ERR_INVALID;
    int32_t locked = b->index_input >= 0 ? b->index_dim : -1;
    int64_t top = view_top(b->rank, b->size, &b->src, locked);
    if (top >= x_numel)
        return MICA_ERR_INVALID;
    if (n_a == 0)
        return MICA_ERR_UNSUPPORTED;
    /* ids that do not move the address (stride 0) make a plain copy */
    mica_region_t b_plain = *b;
    if (locked >= 0 && b->src.stride[locked] == 0) {
        b_plain.index_input = -1;
        locked = -1;
    }
    b = &b_plain;

    box_t bx;
    memset(&bx, 0, sizeof bx);
    bx.rank = b->rank;
    bx.locked = locked;
    bx.x_off = b->src.offset;
    bx.d_off = b->dst.offset;
    for (int32_t d = 0; d < b->rank; d++) {
        bx.size[d] = bx.ext[d] = b->size[d];
        bx.xs[d] = b->src.stride[d];
        bx.ds[d] = b->dst.stride[d];
    }
    if (locked >= 0) {
        /* every id the reader accepts: those keeping its addresses inside X */
        int64_t s = b->src.stride[locked];
        bx.ext[locked] = s == 0 ? 1 : (x_numel - 1 - top) / s + 1;
    }

    mica_status_t st = MICA_ERR_NOMEM;
    composer_t cp;
    memset(&cp, 0, sizeof cp);
    cp.b = b;
    cp.n_a = n_a;
    cp.cap_out = max_out > INT32_MAX / 4 - 16 ? INT32_MAX / 4 : max_out * 4 + 16;
    prep_t *preps = malloc((size_t)n_a * sizeof *preps);
    mica_region_t *a_plain = malloc((size_t)n_a * sizeof *a_plain);
    cp.out = malloc((size_t)cp.cap_out * sizeof *cp.out);
    cp.tag = malloc((size_t)cp.cap_out * sizeof *cp.tag);
    if (!preps || !a_plain || !cp.out || !cp.tag)
        goto done;
    for (int32_t i = 0; i < n_a; i++) {
        a_plain[i] = a[i];
        if (a[i].index_input >= 0 && a[i].src.stride[a[i].index_dim] == 0)
            a_plain[i].index_input = -1;
        prep_init(&preps[i], &a_plain[i]);
    }
    cp.preps = preps;

    int64_t steps = 0, max_steps = 64 + 16 * (int64_t)max_out;
    st = compose_box(&cp, bx, &steps, max_steps);
    while (st == MICA_OK && cp.n_stack > 0) {
        box_t next = cp.stack[--cp.n_stack];
        st = compose_box(&cp, next, &steps, max_steps);
    }
    if (st == MICA_OK)
        merge_across(&cp);
    if (st == MICA_OK && cp.n_out > max_out)
        st = MICA_ERR_UNSUPPORTED;
    if (st == MICA_OK) {
        qsort(cp.out, (size_t)cp.n_out, sizeof *cp.out, cmp_dst_offset);
        memcpy(out, cp.out, (size_t)cp.n_out * sizeof *out);
        *out_n = cp.n_out;
    }
done:
    free(preps);
    free(a_plain);
    free(cp.out);
    free(cp.tag);
    free(cp.stack);
    return st;
}

/* ------------------------------------------------------------------------ */
/* naive evaluation                                                          */

mica_status_t mica_region_copy(const mica_region_t *r, const void *const *operands,
                               const int64_t *operand_numel, int32_t n_operands, size_t elem_bytes,
                               void *out, int64_t out_numel)
{
    if (!region_valid(r) || r->input < 0 || r->input >= n_operands ||
        r->index_input >= n_operands || elem_bytes == 0)
        return MICA_ERR_INVALID;
    int32_t k = r->index_input >= 0 ? r->index_dim : -1;
    const int32_t *ids = k >= 0 ? operands[r->index_input] : NULL;
    int64_t src_top = view_top(r->rank, r->size, &r->src, k);
    int64_t dst_top = view_top(r->rank, r->size, &r->dst, -1);
    if (src_top >= operand_numel[r->input] || dst_top >= out_numel)
        return MICA_ERR_RANGE;
    if (ids) {
        if (operand_numel[r->index_input] < r->size[k])
            return MICA_ERR_RANGE;
        int64_t s = r->src.stride[k];
        int64_t limit = s == 0 ? INT64_MAX : (operand_numel[r->input] - 1 - src_top) / s + 1;
        for (int64_t i = 0; i < r->size[k]; i++)
            if (ids[i] < 0 || ids[i] >= limit)
                return MICA_ERR_RANGE;
    }
    const unsigned char *src = operands[r->input];
    unsigned char *dst = out;
    int64_t idx[MICA_MAX_RANK] = {0};
    for (;;) {
        int64_t sa = r->src.offset, da = r->dst.offset;
        for (int32_t d = 0; d < r->rank; d++) {
            sa += (d == k ? ids[idx[d]] : idx[d]) * r->src.stride[d];
            da += idx[d] * r->dst.stride[d];
        }
        memcpy(dst + (size_t)da * elem_bytes, src + (size_t)sa * elem_bytes, elem_bytes);
        int32_t d = r->rank - 1;
        while (d >= 0 && ++idx[d] == r->size[d])
            idx[d--] = 0;
        if (d < 0)
            return MICA_OK;
    }
}
