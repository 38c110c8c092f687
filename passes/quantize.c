/* The quantize pass (passes/quantize.h). */
#include "quantize.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "rewrite.h"

static const int64_t group_sizes[] = {128, 64, 32, 16, 8}; /* the fallbacks, largest first */

const char *mica_quant_mode_name(mica_quant_mode_t m)
{
    static const char *const names[MICA_QUANT_MODE_COUNT] = {"w4a8", "w8a8", "w4a16",
                                                             "w8a16", "f16", "f32"};
    return (unsigned)m < MICA_QUANT_MODE_COUNT ? names[m] : NULL;
}

mica_quant_mode_t mica_quant_mode_from_name(const char *name)
{
    for (int m = 0; name && m < MICA_QUANT_MODE_COUNT; m++)
        if (strcmp(name, mica_quant_mode_name((mica_quant_mode_t)m)) == 0)
            return (mica_quant_mode_t)m;
    return MICA_QUANT_MODE_COUNT;
}

bool mica_quant_is_lossless(mica_dtype_t src_dtype, mica_dtype_t q_dtype)
{
    if (q_dtype == MICA_DTYPE_I8)
        return src_dtype == MICA_DTYPE_Q4_0 || src_dtype == MICA_DTYPE_Q4_1 ||
               src_dtype == MICA_DTYPE_Q8_0;
    if (q_dtype == MICA_DTYPE_U4)
        return src_dtype == MICA_DTYPE_Q4_0 || src_dtype == MICA_DTYPE_Q4_1;
    return false;
}

/* ------------------------------------------------------------------------ */
/* one tensor                                                                */

static uint16_t rd_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static void wr_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static void put_q(uint8_t *q, mica_dtype_t qt, int64_t e, int v)
{
    if (qt == MICA_DTYPE_I8)
        q[e] = (uint8_t)(int8_t)v;
    else
        q[e / 2] = (uint8_t)((q[e / 2] & (0xf0u >> (4 * (e & 1)))) | (unsigned)v << (4 * (e & 1)));
}

/* Row r of a GGUF Q4_0 / Q4_1 / Q8_0 tensor, block by block, copied into
 * q / scales / mins (group 32). */
static void transcode_row(mica_dtype_t src_dtype, const uint8_t *row, int64_t k, int64_t r,
                          mica_dtype_t qt, uint8_t *q, uint8_t *sc, uint8_t *mn)
{
    const int64_t bb = mica_dtype_block_bytes(src_dtype), nb = k / 32;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb;
        const int64_t e0 = r * k + b * 32, gi = r * nb + b;
        uint16_t d = rd_u16(blk), m = 0; /* +0 */
        for (int j = 0; j < 32; j++) {
            int v;
            if (src_dtype == MICA_DTYPE_Q8_0) {
                v = (int8_t)blk[2 + j];
            } else {
                const uint8_t *qs = blk + (src_dtype == MICA_DTYPE_Q4_0 ? 2 : 4);
                v = j < 16 ? (qs[j] & 0xf) : (qs[j - 16] >> 4);
                if (src_dtype == MICA_DTYPE_Q4_0 && qt == MICA_DTYPE_I8)
                    v -= 8; /* x = d (q - 8): q - 8 with a zero min */
            }
            put_q(q, qt, e0 + j, v);
        }
        if (src_dtype == MICA_DTYPE_Q4_1)
            m = rd_u16(blk + 2);
        else if (src_dtype == MICA_DTYPE_Q4_0 && qt == MICA_DTYPE_U4)
            m = mica_f32_to_f16(-8.0f * mica_f16_to_f32(d)); /* exact unless it overflows */
        wr_u16(sc + 2 * gi, d);
        wr_u16(mn + 2 * gi, m);
    }
}

/* Min/max requantization of one group x[0..group) into element e0.. of q
 * and group index gi of the scales and mins. */
static mica_status_t requant_group(const float *x, int64_t group, mica_dtype_t qt, uint8_t *q,
                                   int64_t e0, uint8_t *sc, uint8_t *mn, int64_t gi,
                                   mica_diag_t *d)
{
    float lo = x[0], hi = x[0];
    for (int64_t j = 0; j < group; j++) {
        if (!isfinite(x[j]))
            return mica_diag_set(d, MICA_ERR_RANGE, "a weight value is not finite");
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    const bool i8 = qt == MICA_DTYPE_I8;
    const int qmin = i8 ? -128 : 0, qmax = i8 ? 127 : 15;
    uint16_t sh = mica_f32_to_f16((float)(((double)hi - (double)lo) / (i8 ? 255.0 : 15.0)));
    float s = mica_f16_to_f32(sh);
    uint16_t mh = mica_f32_to_f16(i8 ? (float)((double)lo + 128.0 * (double)s) : lo);
    float m = mica_f16_to_f32(mh);
    if (!isfinite(s) || !isfinite(m))
        return mica_diag_set(d, MICA_ERR_RANGE,
                             "weights in [%g, %g] need a scale or min beyond the f16 range",
                             (double)lo, (double)hi);
    for (int64_t j = 0; j < group; j++) {
        double v = s > 0 ? round(((double)x[j] - (double)m) / (double)s) : 0.0;
        v = v < qmin ? qmin : v > qmax ? qmax : v;
        put_q(q, qt, e0 + j, (int)v);
    }
    wr_u16(sc + 2 * gi, sh);
    wr_u16(mn + 2 * gi, mh);
    return MICA_OK;
}

mica_status_t mica_quant_tensor(mica_dtype_t src_dtype, const void *src, int64_t n_rows,
                                int64_t k, mica_dtype_t q_dtype, int64_t group, void *q,
                                void *scales, void *mins, double *out_nmse, mica_diag_t *d)
{
    if (q_dtype != MICA_DTYPE_U4 && q_dtype != MICA_DTYPE_I8)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: %s is not u4 or i8",
                             mica_dtype_name(q_dtype));
    int64_t rb = mica_dtype_row_bytes(src_dtype, k);
    if (n_rows < 1 || k < 2 || group < 1 || k % group != 0 || k % 2 != 0 || rb == 0)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "quantize: a [%lld, %lld] %s tensor in groups of %lld",
                             (long long)n_rows, (long long)k, mica_dtype_name(src_dtype),
                             (long long)group);
    const bool transcode = group == 32 && mica_quant_is_lossless(src_dtype, q_dtype);
    float *x = malloc((size_t)k * sizeof *x), *deq = malloc((size_t)k * sizeof *deq); /* [K] */
    mica_status_t s = MICA_OK;
    if (!x || !deq) {
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a row of %lld", (long long)k);
        goto done;
    }
    if (q_dtype == MICA_DTYPE_U4)
        memset(q, 0, (size_t)(n_rows * k / 2));
    uint8_t *qb = q, *sb = scales, *mb = mins;
    const int64_t ng = k / group;
    double num = 0.0, den = 0.0;
    for (int64_t r = 0; r < n_rows && s == MICA_OK; r++) {
        const uint8_t *row = (const uint8_t *)src + r * rb;
        if ((s = mica_dequantize_row(src_dtype, row, x, k, d)) != MICA_OK)
            break;
        if (transcode)
            transcode_row(src_dtype, row, k, r, q_dtype, qb, sb, mb);
        for (int64_t gi = 0; !transcode && gi < ng && s == MICA_OK; gi++)
            s = requant_group(x + gi * group, group, q_dtype, qb, r * k + gi * group, sb, mb,
                              r * ng + gi, d);
        if (s != MICA_OK)
            break;
        const uint8_t *qrow = qb + (q_dtype == MICA_DTYPE_U4 ? r * k / 2 : r * k);
        s = mica_dequantize_group_row(q_dtype, qrow, sb + 2 * r * ng, mb + 2 * r * ng, group, deq,
                                      k, d);
        for (int64_t j = 0; j < k && s == MICA_OK; j++) {
            double e = (double)deq[j] - (double)x[j];
            num += e * e;
            den += (double)x[j] * (double)x[j];
        }
    }
    if (s == MICA_OK && out_nmse)
        *out_nmse = den > 0 ? num / den : (num > 0 ? INFINITY : 0.0);
done:
    free(x);
    free(deq);
    return s;
}

/* A float copy (f16 or f32) of a [n_rows, k] tensor into dst. */
static mica_status_t convert_tensor(mica_dtype_t src_dtype, const void *src, int64_t n_rows,
                                    int64_t k, mica_dtype_t to, void *dst, double *out_nmse,
                                    mica_diag_t *d)
{
    float *x = malloc((size_t)k * sizeof *x); /* [K] */
    if (!x)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a row of %lld", (long long)k);
    const int64_t rb = mica_dtype_row_bytes(src_dtype, k);
    double num = 0.0, den = 0.0;
    mica_status_t s = MICA_OK;
    for (int64_t r = 0; r < n_rows && s == MICA_OK; r++) {
        s = mica_dequantize_row(src_dtype, (const uint8_t *)src + r * rb, x, k, d);
        for (int64_t j = 0; j < k && s == MICA_OK; j++) {
            float v = x[j];
            if (to == MICA_DTYPE_F16) {
                uint16_t h = mica_f32_to_f16(x[j]);
                v = mica_f16_to_f32(h);
                if (isfinite(x[j]) && !isfinite(v))
                    s = mica_diag_set(d, MICA_ERR_RANGE, "value %g is beyond the f16 range",
                                      (double)x[j]);
                wr_u16((uint8_t *)dst + 2 * (r * k + j), h);
            } else {
                memcpy((uint8_t *)dst + 4 * (r * k + j), &v, sizeof v);
            }
            double e = (double)v - (double)x[j];
            num += e * e;
            den += (double)x[j] * (double)x[j];
        }
    }
    free(x);
    if (s == MICA_OK && out_nmse)
        *out_nmse = den > 0 ? num / den : 0.0;
    return s;
}

/* ------------------------------------------------------------------------ */
/* the pass                                                                  */

typedef struct summary {
    char *buf;
    size_t cap, len;
    bool cut;
} summary_t;

static void say(summary_t *sm, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void say(summary_t *sm, const char *fmt, ...)
{
    if (!sm->buf || sm->cap < 5 || sm->cut)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sm->buf + sm->len, sm->cap - sm->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sm->cap - sm->len) {
        sm->len += (size_t)n;
        return;
    }
    sm->cut = true; /* end the text with "...\n" */
    sm->len = sm->cap - 5 < sm->len ? sm->cap - 5 : sm->len;
    memcpy(sm->buf + sm->len, "...\n", 5);
    sm->len += 4;
}

/* The weight nodes one source weight became in the new graph. */
typedef struct made {
    int32_t src;          /* old weight node id */
    char tag[16];         /* form, e.g. "u4.g32" */
    int32_t ids[3];       /* new nodes: q, s, m (or the converted weight in ids[0]) */
} made_t;

/* An activation quantized once for every matmul that reads it. */
typedef struct act_made {
    int32_t x;      /* new value quantized (read without a view) */
    int64_t group;  /* activation group */
    int32_t xs, xq; /* its act_scale and act_quant */
} act_made_t;

typedef struct ctx {
    const mica_quant_options_t *opt;
    const char *mode_name;
    mica_const_store_t *store;
    const mica_graph_t *old;
    mica_rewriter_t *rw; /* during the visit */
    mica_diag_t *d;
    mica_status_t status;
    act_made_t *acts;
    int32_t n_acts;
    summary_t sm;
    made_t *made;
    int32_t n_made;
    int64_t n_new, n_shared, n_matmuls;
    uint64_t new_bytes;
} ctx_t;

static bool is_head(const char *name)
{
    return strcmp(name, "output.weight") == 0 || strcmp(name, "token_embd.weight") == 0;
}

/* The largest fallback group <= want that divides k, or 0. */
static int64_t pick_group(int64_t k, int64_t want)
{
    for (size_t i = 0; i < sizeof group_sizes / sizeof group_sizes[0]; i++)
        if (group_sizes[i] <= want && k % group_sizes[i] == 0)
            return group_sizes[i];
    return 0;
}

static int32_t add_weight(ctx_t *c, const char *name, mica_type_t t, const void *data,
                          uint64_t nbytes, const char *note)
{
    mica_node_t nd;
    memset(&nd, 0, sizeof nd);
    nd.op = MICA_OP_WEIGHT;
    nd.attrs[0].s = name;
    nd.type = t;
    nd.data = data;
    nd.nbytes = nbytes;
    nd.note = note;
    return mica_rewrite_emit(c->rw, &nd, false);
}

static char *type_str(const mica_type_t *t, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s[%lld,%lld]", mica_dtype_name(t->dtype), (long long)t->shape[0],
             (long long)t->shape[1]);
    return buf;
}

/* Finds or makes the constants of weight node w in form (qt, group) —
 * qt u4/i8, or f16/f32 for a conversion — and adds their weight nodes to
 * the new graph (once per graph) into ids[]. */
static mica_status_t weight_form(ctx_t *c, const mica_node_t *w, mica_dtype_t qt, int64_t group,
                                 const char *note, int32_t *ids)
{
    const bool quant = qt == MICA_DTYPE_U4 || qt == MICA_DTYPE_I8;
    char tag[16];
    if (quant)
        snprintf(tag, sizeof tag, "%s.g%lld", mica_dtype_name(qt), (long long)group);
    else
        snprintf(tag, sizeof tag, "%s", mica_dtype_name(qt));
    for (int32_t i = 0; i < c->n_made; i++)
        if (c->made[i].src == w->id && strcmp(c->made[i].tag, tag) == 0) {
            memcpy(ids, c->made[i].ids, sizeof c->made[i].ids);
            return MICA_OK;
        }
    const char *name = mica_node_name(w);
    const int64_t n = w->type.shape[0], k = w->type.shape[1];
    const char *parts[4] = {"q", "s", "m", "e"};
    uint64_t sizes[4] = {quant ? (uint64_t)(qt == MICA_DTYPE_U4 ? n * k / 2 : n * k)
                               : (uint64_t)(n * k * (qt == MICA_DTYPE_F16 ? 2 : 4)),
                         (uint64_t)(quant ? 2 * n * (k / group) : 0),
                         (uint64_t)(quant ? 2 * n * (k / group) : 0), sizeof(double)};
    void *blob[4] = {0};
    char full[MICA_CONST_STORE_TAG_MAX];
    /* The ".e" blob (the NMSE) is added last, once the others hold the
     * constants: its presence means they are complete. */
    snprintf(full, sizeof full, "%s.e", tag);
    uint64_t have = 0;
    blob[3] = mica_const_store_find(c->store, w->data, full, &have);
    const bool shared = blob[3] && have == sizes[3];
    for (int i = 0; i < 3; i++) {
        if (!sizes[i])
            continue;
        snprintf(full, sizeof full, "%s.%s", tag, parts[i]);
        blob[i] = mica_const_store_find(c->store, w->data, full, &have);
        if (blob[i] && have != sizes[i])
            return mica_diag_set(c->d, MICA_ERR_INVALID, "weight %s: the stored %s has %llu "
                                 "bytes, not %llu", name, full, (unsigned long long)have,
                                 (unsigned long long)sizes[i]);
        if (!blob[i])
            MICA_TRY(mica_const_store_add(c->store, w->data, full, sizes[i], &blob[i], c->d));
    }
    if (!shared) {
        double nmse = 0.0;
        mica_status_t s = quant ? mica_quant_tensor(w->type.dtype, w->data, n, k, qt, group, blob[0],
                                                    blob[1], blob[2], &nmse, c->d)
                                : convert_tensor(w->type.dtype, w->data, n, k, qt, blob[0], &nmse,
                                                 c->d);
        if (s != MICA_OK) {
            mica_diag_prefix(c->d, "weight %s", name);
            return s;
        }
        snprintf(full, sizeof full, "%s.e", tag);
        MICA_TRY(mica_const_store_add(c->store, w->data, full, sizes[3], &blob[3], c->d));
        memcpy(blob[3], &nmse, sizeof nmse);
        c->n_new++;
        c->new_bytes += sizes[0] + sizes[1] + sizes[2];
    } else {
        c->n_shared++;
    }
    double nmse;
    memcpy(&nmse, blob[3], sizeof nmse);
    char src_ty[64], buf[200];
    const bool lossless = quant && group == 32 && mica_quant_is_lossless(w->type.dtype, qt);
    say(&c->sm, "# quantize %s: %s %s -> %s, %s, nmse %.3e%s%s\n", c->mode_name, name,
        type_str(&w->type, src_ty, sizeof src_ty), tag,
        quant ? (lossless ? "transcoded" : "requantized") : "converted", nmse, note,
        shared ? " (made for an earlier graph)" : "");

    /* what the dump shows on the new weight */
    char wnote[160];
    snprintf(wnote, sizeof wnote, "%s %s from %s, nmse %.3e%s", tag,
             quant ? (lossless ? "transcoded" : "requantized") : "converted",
             mica_dtype_name(w->type.dtype), nmse, note);
    if (quant) {
        int64_t sshape[2] = {n, k / group};
        const mica_type_t ts[3] = {w->type, mica_type_make(MICA_DTYPE_F16, 2, sshape),
                                   mica_type_make(MICA_DTYPE_F16, 2, sshape)};
        for (int i = 0; i < 3; i++) {
            mica_type_t t = ts[i];
            if (i == 0)
                t.dtype = qt;
            snprintf(buf, sizeof buf, "%s.%s", name, parts[i]);
            if ((ids[i] = add_weight(c, buf, t, blob[i], sizes[i], i == 0 ? wnote : NULL)) < 0)
                return c->d->code;
        }
    } else {
        mica_type_t t = w->type;
        t.dtype = qt;
        snprintf(buf, sizeof buf, "%s.%s", name, mica_dtype_name(qt));
        if ((ids[0] = add_weight(c, buf, t, blob[0], sizes[0], wnote)) < 0)
            return c->d->code;
        ids[1] = ids[2] = -1;
    }
    made_t *mm = realloc(c->made, (size_t)(c->n_made + 1) * sizeof *mm);
    if (!mm)
        return mica_diag_set(c->d, MICA_ERR_NOMEM, "out of memory");
    c->made = mm;
    mm[c->n_made].src = w->id;
    memcpy(mm[c->n_made].tag, tag, sizeof tag);
    memcpy(mm[c->n_made].ids, ids, 3 * sizeof *ids);
    c->n_made++;
    return MICA_OK;
}

static int32_t add_op(ctx_t *c, mica_op_t op, int32_t n_in, const mica_operand_t *in, int64_t a0,
                      int64_t a1)
{
    mica_node_t nd;
    memset(&nd, 0, sizeof nd);
    nd.op = op;
    nd.n_inputs = n_in;
    nd.inputs = (mica_operand_t *)in;
    nd.attrs[0].i = a0;
    nd.attrs[1].i = a1;
    return mica_rewrite_emit(c->rw, &nd, true);
}

static mica_operand_t plain(int32_t v)
{
    mica_operand_t o;
    memset(&o, 0, sizeof o);
    o.value = v;
    return o;
}

/* The new value of matmul n (old graph) whose weight is a weight node;
 * x is its remapped input operand. */
static mica_status_t rewrite_matmul(ctx_t *c, const mica_node_t *n, mica_operand_t x,
                                    int32_t *out_id)
{
    const mica_node_t *w = c->old->nodes[n->inputs[1].value];
    const mica_quant_options_t *o = c->opt;
    const char *name = mica_node_name(w);
    const int64_t k = w->type.shape[1];
    int32_t ids[3];
    c->n_matmuls++;
    if (o->mode == MICA_QUANT_F16 || o->mode == MICA_QUANT_F32) {
        mica_dtype_t to = o->mode == MICA_QUANT_F16 ? MICA_DTYPE_F16 : MICA_DTYPE_F32;
        if (w->type.dtype == to) {
            *out_id = -2; /* the matmul stays as it is */
            return MICA_OK;
        }
        MICA_TRY(weight_form(c, w, to, 0, "", ids));
        mica_operand_t in[2] = {x, plain(ids[0])};
        *out_id = add_op(c, MICA_OP_MATMUL, 2, in, 0, 0);
        return *out_id < 0 ? c->d->code : MICA_OK;
    }
    const bool w4 = o->mode == MICA_QUANT_W4A8 || o->mode == MICA_QUANT_W4A16;
    const bool a8 = o->mode == MICA_QUANT_W4A8 || o->mode == MICA_QUANT_W8A8;
    bool four = w4;
    if (is_head(name))
        four = o->head == MICA_QUANT_HEAD_INT4 ||
               (o->head == MICA_QUANT_HEAD_AUTO && w4 &&
                mica_quant_is_lossless(w->type.dtype, MICA_DTYPE_U4));
    mica_dtype_t qt = four ? MICA_DTYPE_U4 : MICA_DTYPE_I8;
    int64_t want = o->group, group;
    char note[96] = "";
    if ((want == 0 || want == 32) && mica_quant_is_lossless(w->type.dtype, qt)) {
        group = 32;
    } else {
        want = want ? want : 64;
        group = pick_group(k, want);
        if (group == 0) { /* stays a float matmul on the source weight */
            say(&c->sm, "# quantize %s: %s left as it is: no group of 8 to %lld divides its rows "
                "of %lld\n", c->mode_name, name, (long long)want, (long long)k);
            *out_id = -2;
            return MICA_OK;
        }
        if (group != want)
            snprintf(note, sizeof note, " (group %lld does not divide K=%lld)", (long long)want,
                     (long long)k);
    }
    MICA_TRY(weight_form(c, w, qt, group, note, ids));
    if (!a8) {
        mica_operand_t in[4] = {x, plain(ids[0]), plain(ids[1]), plain(ids[2])};
        *out_id = add_op(c, MICA_OP_WMATMUL, 4, in, group, 0);
        return *out_id < 0 ? c->d->code : MICA_OK;
    }
    int64_t awant = o->act_group ? o->act_group : 32, ag = pick_group(k, awant);
    if (ag == 0) { /* no activation group: weight-only on the quantized weight */
        say(&c->sm, "# quantize %s: activations of %s stay float: no group of 8 to %lld divides "
            "K=%lld\n", c->mode_name, name, (long long)awant, (long long)k);
        mica_operand_t in[4] = {x, plain(ids[0]), plain(ids[1]), plain(ids[2])};
        *out_id = add_op(c, MICA_OP_WMATMUL, 4, in, group, 0);
        return *out_id < 0 ? c->d->code : MICA_OK;
    }
    if (ag != awant)
        say(&c->sm, "# quantize %s: activations of %s in groups of %lld (%lld does not divide "
            "K=%lld)\n", c->mode_name, name, (long long)ag, (long long)awant,
            (long long)k);
    /* one quantization of x for every matmul that reads it (q, k and v) */
    int32_t xs = -1, xq = -1;
    for (int32_t i = 0; i < c->n_acts && !x.has_view; i++)
        if (c->acts[i].x == x.value && c->acts[i].group == ag) {
            xs = c->acts[i].xs;
            xq = c->acts[i].xq;
        }
    if (xq < 0) {
        if ((xs = add_op(c, MICA_OP_ACT_SCALE, 1, &x, ag, 0)) < 0)
            return c->d->code;
        mica_operand_t qin[2] = {x, plain(xs)};
        if ((xq = add_op(c, MICA_OP_ACT_QUANT, 2, qin, ag, 0)) < 0)
            return c->d->code;
        act_made_t *am = x.has_view ? c->acts : realloc(c->acts, (size_t)(c->n_acts + 1) * sizeof *am);
        if (!am)
            return mica_diag_set(c->d, MICA_ERR_NOMEM, "out of memory");
        c->acts = am;
        if (!x.has_view)
            am[c->n_acts++] = (act_made_t){x.value, ag, xs, xq};
    }
    mica_operand_t in[5] = {plain(xq), plain(xs), plain(ids[0]), plain(ids[1]), plain(ids[2])};
    *out_id = add_op(c, MICA_OP_QMATMUL, 5, in, ag, group);
    return *out_id < 0 ? c->d->code : MICA_OK;
}

/* matmul n reads a plain (row-major, unviewed) 2-D weight node. */
static bool quantizable(const mica_graph_t *g, const mica_node_t *n)
{
    if (n->op != MICA_OP_MATMUL || n->inputs[1].has_view)
        return false;
    const mica_node_t *w = g->nodes[n->inputs[1].value];
    /* float or GGUF block weights; raw u4/i8 are already quantized */
    return w->op == MICA_OP_WEIGHT && w->data && w->type.rank == 2 &&
           w->type.layout.kind == MICA_LAYOUT_ROW_MAJOR &&
           (mica_dtype_is_float(w->type.dtype) || mica_dtype_is_block_quant(w->type.dtype));
}

/* The rewrite: quantizable matmuls become their quantized form, every
 * other node is copied; weights no node reads any more are dropped. */
static mica_status_t visit(mica_rewriter_t *rw, const mica_node_t *n, void *user, mica_diag_t *d)
{
    (void)d; /* c->d is the rewrite's diag too */
    ctx_t *c = user;
    c->rw = rw;
    const mica_quant_options_t *opt = c->opt;
    bool same = false;
    if (quantizable(c->old, n) && (opt->mode == MICA_QUANT_F16 || opt->mode == MICA_QUANT_F32)) {
        mica_dtype_t to = opt->mode == MICA_QUANT_F16 ? MICA_DTYPE_F16 : MICA_DTYPE_F32;
        same = c->old->nodes[n->inputs[1].value]->type.dtype == to;
    }
    if (!quantizable(c->old, n) || same)
        return mica_rewrite_copy(rw, n) < 0 ? c->d->code : MICA_OK;
    mica_operand_t x;
    MICA_TRY(mica_rewrite_remap(rw, &n->inputs[0], &x));
    int32_t id;
    MICA_TRY(rewrite_matmul(c, n, x, &id));
    if (id == -2) /* left as it is */
        return mica_rewrite_copy(rw, n) < 0 ? c->d->code : MICA_OK;
    return mica_rewrite_replace(rw, id);
}

static bool removable(const mica_node_t *n, void *user)
{
    (void)user;
    return n->op == MICA_OP_WEIGHT;
}

mica_status_t mica_pass_quantize(const mica_quant_options_t *opt, mica_const_store_t *store,
                                 mica_graph_t **g, mica_diag_t *d)
{
    static const mica_quant_options_t defaults = {0};
    if (!opt)
        opt = &defaults;
    if (!g || !*g || !store)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: no graph or no constant store");
    if ((unsigned)opt->mode >= MICA_QUANT_MODE_COUNT)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: unknown mode %d", (int)opt->mode);
    if (opt->group != 0 && opt->group != 32 && opt->group != 64 && opt->group != 128)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: group %lld is not 32, 64 or 128",
                             (long long)opt->group);
    if (opt->act_group != 0 && !pick_group(opt->act_group, opt->act_group))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "quantize: activation group %lld is not 8, 16, 32, 64 or 128",
                             (long long)opt->act_group);
    if (opt->head != MICA_QUANT_HEAD_AUTO && opt->head != MICA_QUANT_HEAD_INT8 &&
        opt->head != MICA_QUANT_HEAD_INT4)
        return mica_diag_set(d, MICA_ERR_INVALID, "quantize: unknown head choice %d",
                             (int)opt->head);
    ctx_t c = {.opt = opt, .store = store, .old = *g, .d = d, .mode_name = c.mode_name};
    c.sm.buf = opt->summary;
    c.sm.cap = opt->summary_cap;
    c.sm.len = opt->summary && opt->summary_cap ? strnlen(opt->summary, opt->summary_cap) : 0;
    if (c.sm.len >= c.sm.cap)
        c.sm.buf = NULL;
    /* the new graph's weights point into store: it holds a reference */
    if ((*g)->consts != store) {
        if ((*g)->consts)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "quantize: the graph already points into another store");
        (*g)->consts = mica_const_store_retain(store);
    }
    const mica_rewrite_spec_t spec = {visit, removable, &c};
    mica_status_t s = mica_rewrite_run(g, &spec, d);
    if (s == MICA_OK)
        say(&c.sm, "# quantize %s: %lld matmuls, %lld weights made (%llu bytes), %lld made for an "
            "earlier graph\n", c.mode_name, (long long)c.n_matmuls,
            (long long)c.n_new, (unsigned long long)c.new_bytes, (long long)c.n_shared);
    else
        mica_diag_prefix(d, "quantize");
    free(c.made);
    free(c.acts);
    return s;
}

mica_status_t mica_pass_quantize_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    const mica_compile_options_t *co = &ctx->options;
    mica_quant_options_t o;
    memset(&o, 0, sizeof o);
    o.mode = mica_quant_mode_from_name(co->quant ? co->quant : "w4a8");
    if (o.mode == MICA_QUANT_MODE_COUNT)
        return mica_diag_set(ctx->diag, MICA_ERR_INVALID, "unknown quantization '%s'", co->quant);
    o.group = co->group;
    const char *h = co->head_quant ? co->head_quant : "auto";
    if (!strcmp(h, "auto"))
        o.head = MICA_QUANT_HEAD_AUTO;
    else if (!strcmp(h, "int8"))
        o.head = MICA_QUANT_HEAD_INT8;
    else if (!strcmp(h, "int4"))
        o.head = MICA_QUANT_HEAD_INT4;
    else
        return mica_diag_set(ctx->diag, MICA_ERR_INVALID,
                             "unknown LM head quantization '%s' (auto, int8 or int4)", h);
    /* the graph's own store (a program's, shared by its graphs), or a new
     * one the graph alone holds */
    mica_const_store_t *store = (*g)->consts;
    if (!store) {
        MICA_TRY(mica_const_store_create(&store, ctx->diag));
        (*g)->consts = store;
    }
    return mica_pass_quantize(&o, store, g, ctx->diag);
}
