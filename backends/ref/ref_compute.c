/* Compute ops of the reference backend: float32 values, float64 in every
 * reduction (matmul, norms, softmax sums, attention) and in the
 * transcendental functions. Rounding a result to an f16/bf16 output dtype
 * is the interpreter's job, after the kernel. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layout_index.h"
#include "quant.h"
#include "ref_internal.h"

/* The innermost dim of a type (1 for a scalar) and the count of such rows. */
static int64_t last_dim(const mica_type_t *t)
{
    return t->rank > 0 ? t->shape[t->rank - 1] : 1;
}

static int64_t row_count(const mica_type_t *t)
{
    return mica_type_numel(t) / last_dim(t);
}

mica_status_t mica_ref_arg_row(const mica_ref_arg_t *a, int64_t r, float *dst, mica_diag_t *d)
{
    int64_t n = last_dim(&a->type);
    if (a->f) {
        memcpy(dst, a->f + r * n, (size_t)n * sizeof *dst);
        return MICA_OK;
    }
    if (!a->bytes)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "rows of %s values cannot be read as float",
                             mica_dtype_name(a->type.dtype));
    int64_t row_bytes = mica_dtype_row_bytes(a->type.dtype, n);
    const unsigned char *src = a->bytes + r * row_bytes;
    if (a->type.dtype == MICA_DTYPE_F32) {
        memcpy(dst, src, (size_t)n * sizeof *dst); /* the bytes may be unaligned */
        return MICA_OK;
    }
    return mica_dequantize_row(a->type.dtype, src, dst, n, d);
}

/* ------------------------------------------------------------------------ */
/* weights                                                                   */

/* Column j of out [M, N]: out[m, j] = x[m, :] . w for the K floats of w
 * (the dequantized weight row j), summed in double. */
static void dot_column(const float *x, const float *w, int64_t m_dim, int64_t k_dim, int64_t n_dim,
                       int64_t j, float *out)
{
    for (int64_t m = 0; m < m_dim; m++) {
        const float *xm = x + m * k_dim;
        double acc = 0.0;
        for (int64_t k = 0; k < k_dim; k++)
            acc += (double)xm[k] * (double)w[k];
        out[m * n_dim + j] = (float)acc;
    }
}

mica_status_t mica_ref_embedding(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d)
{
    const mica_ref_arg_t *table = &args[0]; /* [V, D] */
    const int32_t *ids = args[1].i;          /* [T] (any shape, flat) */
    int64_t n_vocab = table->type.shape[0], dim = table->type.shape[1];
    int64_t n_ids = mica_type_numel(&args[1].type);
    float *out = y; /* [T, D] */
    for (int64_t t = 0; t < n_ids; t++) {
        if (ids[t] < 0 || ids[t] >= n_vocab)
            return mica_diag_set(d, MICA_ERR_RANGE, "id %d out of range [0, %lld)", (int)ids[t],
                                 (long long)n_vocab);
        MICA_TRY(mica_ref_arg_row(table, ids[t], out + t * dim, d));
    }
    return MICA_OK;
}

mica_status_t mica_ref_matmul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d)
{
    const float *x = args[0].f;         /* [M, K] (leading dims flattened) */
    const mica_ref_arg_t *w = &args[1]; /* [N, K] */
    int64_t k_dim = w->type.shape[1], n_dim = w->type.shape[0];
    int64_t m_dim = row_count(&args[0].type);
    float *out = y; /* [M, N] */
    float *row = malloc((size_t)k_dim * sizeof *row); /* [K]: weight row n, dequantized */
    if (!row)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a weight row of %lld",
                             (long long)k_dim);
    for (int64_t j = 0; j < n_dim; j++) {
        mica_status_t s = mica_ref_arg_row(w, j, row, d);
        if (s != MICA_OK) {
            free(row);
            return s;
        }
        dot_column(x, row, m_dim, k_dim, n_dim, j, out);
    }
    free(row);
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* quantized matmul (ops.def: act_scale, act_quant, qmatmul, wmatmul)        */

/* Row r of a [rows, n] integer operand (u4 / i8 weight bytes, row-major or
 * tiled, read through mica_layout_offset; or values held as floats) as
 * int32. */
static void int_row(const mica_ref_arg_t *a, int64_t r, int64_t n, int32_t *dst)
{
    if (a->f) {
        for (int64_t k = 0; k < n; k++) {
            float v = a->f[r * n + k];
            dst[k] = v >= -128.0f && v <= 255.0f ? (int32_t)v : 0; /* u4/i8 values only */
        }
        return;
    }
    const bool i8 = a->type.dtype == MICA_DTYPE_I8;
    int32_t shift;
    if (!mica_layout_is_tiled(&a->type)) {
        for (int64_t k = 0; k < n; k++) {
            const unsigned char *p = a->bytes + mica_layout_offset(&a->type, r, k, &shift);
            dst[k] = i8 ? (int32_t)(int8_t)*p : (int32_t)((*p >> shift) & 0xf);
        }
        return;
    }
    /* A tiled row is runs of lp consecutive bytes (one tile row each, in one
     * nibble half for u4), one tile apart. The index function gives the
     * first run and the stride, and is checked on the last run, so the
     * layout keeps one source of truth. */
    const int64_t lp = a->type.layout.lp;
    const int64_t at0 = mica_layout_offset(&a->type, r, 0, &shift);
    const int64_t stride = n > lp ? mica_layout_offset(&a->type, r, lp, NULL) - at0 : 0;
    for (int64_t k0 = 0; k0 < n; k0 += lp) {
        const int64_t len = n - k0 < lp ? n - k0 : lp, at = at0 + (k0 / lp) * stride;
        for (int64_t i = 0; i < len; i++) {
            const unsigned char v = a->bytes[at + i];
            dst[k0 + i] = i8 ? (int32_t)(int8_t)v : (int32_t)((v >> shift) & 0xf);
        }
    }
    int32_t last_shift;
    const int64_t last = mica_layout_offset(&a->type, r, n - 1, &last_shift);
    assert(last == at0 + ((n - 1) / lp) * stride + (n - 1) % lp && last_shift == shift);
    (void)last;
}

/* Row r of a [rows, n] f16 operand (weight bytes, row-major or tiled, or
 * values) as float. */
static void f16_row(const mica_ref_arg_t *a, int64_t r, int64_t n, float *dst)
{
    for (int64_t k = 0; k < n; k++) {
        if (a->f) {
            dst[k] = a->f[r * n + k];
        } else {
            const unsigned char *p = a->bytes + mica_layout_offset(&a->type, r, k, NULL);
            dst[k] = mica_f16_to_f32((uint16_t)(p[0] | (unsigned)p[1] << 8));
        }
    }
}

mica_status_t mica_ref_act_scale(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d)
{
    const int64_t k_dim = last_dim(&args[0].type), rows = row_count(&args[0].type);
    const int64_t group = mica_attr_act_scale_group(n), ng = k_dim / group;
    const float *x = args[0].f; /* [rows, K] */
    float *s = y;               /* [rows, K/group] */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < ng; j++) {
            double mx = 0.0;
            for (int64_t k = j * group; k < (j + 1) * group; k++)
                if (fabs((double)x[r * k_dim + k]) > mx)
                    mx = fabs((double)x[r * k_dim + k]);
            s[r * ng + j] = (float)(mx / 127.0);
        }
    return MICA_OK;
}

mica_status_t mica_ref_act_quant(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d)
{
    const int64_t k_dim = last_dim(&args[0].type), rows = row_count(&args[0].type);
    const int64_t group = mica_attr_act_quant_group(n), ng = k_dim / group;
    const float *x = args[0].f, *s = args[1].f; /* [rows, K], [rows, K/group] */
    float *q = y;                               /* [rows, K] i8 values */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < k_dim; k++) {
            double sc = (double)s[r * ng + k / group];
            double v = sc != 0.0 ? round((double)x[r * k_dim + k] / sc) : 0.0;
            if (isnan(v))
                v = 0.0;
            q[r * k_dim + k] = (float)(v < -127.0 ? -127.0 : v > 127.0 ? 127.0 : v);
        }
    return MICA_OK;
}

mica_status_t mica_ref_qmatmul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d)
{
    const mica_ref_arg_t *xq = &args[0], *xs = &args[1], *wq = &args[2];
    const int64_t k_dim = wq->type.shape[1], n_dim = wq->type.shape[0];
    const int64_t m_dim = row_count(&xq->type);
    const int64_t ag = mica_attr_qmatmul_agroup(n), wg = mica_attr_qmatmul_wgroup(n);
    const int64_t b = ag < wg ? ag : wg, nb = k_dim / b, nag = k_dim / ag, nwg = k_dim / wg;
    int32_t *xi = malloc((size_t)(m_dim * k_dim) * sizeof *xi);   /* [M, K] */
    int64_t *xsum = malloc((size_t)(m_dim * nb) * sizeof *xsum);  /* [M, K/b] */
    int32_t *wrow = malloc((size_t)k_dim * sizeof *wrow);         /* [K] */
    float *srow = malloc((size_t)(2 * nwg) * sizeof *srow);       /* [2, K/wg] */
    mica_status_t st = MICA_OK;
    if (!xi || !xsum || !wrow || !srow) {
        st = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a qmatmul of [%lld, %lld]",
                           (long long)m_dim, (long long)k_dim);
        goto done;
    }
    for (int64_t m = 0; m < m_dim; m++) {
        int_row(xq, m, k_dim, xi + m * k_dim);
        for (int64_t j = 0; j < nb; j++) {
            int64_t acc = 0;
            for (int64_t k = j * b; k < (j + 1) * b; k++)
                acc += xi[m * k_dim + k];
            xsum[m * nb + j] = acc;
        }
    }
    float *out = y; /* [M, N] */
    for (int64_t j = 0; j < n_dim; j++) {
        int_row(wq, j, k_dim, wrow);
        f16_row(&args[3], j, nwg, srow);
        f16_row(&args[4], j, nwg, srow + nwg);
        for (int64_t m = 0; m < m_dim; m++) {
            const int32_t *xm = xi + m * k_dim;
            double acc = 0.0;
            for (int64_t blk = 0; blk < nb; blk++) {
                const int64_t k0 = blk * b;
                int32_t dot = 0; /* |sum| <= 65536 * 255 * 127 < 2^31: groups are <= 65536 */
                for (int64_t k = k0; k < k0 + b; k++)
                    dot += wrow[k] * xm[k];
                double sx = (double)xs->f[m * nag + k0 / ag];
                double ws = (double)srow[k0 / wg], wm = (double)srow[nwg + k0 / wg];
                acc += ws * sx * (double)dot + wm * sx * (double)xsum[m * nb + blk];
            }
            out[m * n_dim + j] = (float)acc;
        }
    }
done:
    free(xi);
    free(xsum);
    free(wrow);
    free(srow);
    return st;
}

mica_status_t mica_ref_wmatmul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d)
{
    const float *x = args[0].f; /* [M, K] */
    const mica_ref_arg_t *wq = &args[1];
    const int64_t k_dim = wq->type.shape[1], n_dim = wq->type.shape[0];
    const int64_t m_dim = row_count(&args[0].type), group = mica_attr_wmatmul_group(n);
    const int64_t ng = k_dim / group;
    int32_t *qrow = malloc((size_t)k_dim * sizeof *qrow); /* [K] */
    float *w = malloc((size_t)k_dim * sizeof *w);         /* [K] dequantized row */
    float *srow = malloc((size_t)(2 * ng) * sizeof *srow); /* [2, K/group] */
    if (!qrow || !w || !srow) {
        free(qrow);
        free(w);
        free(srow);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a weight row of %lld",
                             (long long)k_dim);
    }
    float *out = y; /* [M, N] */
    for (int64_t j = 0; j < n_dim; j++) {
        int_row(wq, j, k_dim, qrow);
        f16_row(&args[2], j, ng, srow);
        f16_row(&args[3], j, ng, srow + ng);
        for (int64_t k = 0; k < k_dim; k++)
            w[k] = srow[k / group] * (float)qrow[k] + srow[ng + k / group];
        dot_column(x, w, m_dim, k_dim, n_dim, j, out);
    }
    free(qrow);
    free(w);
    free(srow);
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* elementwise                                                               */

/* y = a (op) b with numpy broadcasting; mul selects * over +. */
static void broadcast_binary(const mica_node_t *n, const mica_ref_arg_t *args, float *y, bool mul)
{
    const mica_type_t *ty = &n->type;
    int32_t rank = ty->rank;
    /* Element strides of a and b along each output dim; 0 where broadcast. */
    int64_t sa[MICA_MAX_RANK] = {0}, sb[MICA_MAX_RANK] = {0};
    for (int32_t k = 0; k < 2; k++) {
        const mica_type_t *t = &args[k].type;
        int64_t st[MICA_MAX_RANK];
        mica_type_strides(t, st);
        int64_t *out = k == 0 ? sa : sb;
        for (int32_t dd = 0; dd < t->rank; dd++) {
            int32_t od = dd + rank - t->rank;
            out[od] = t->shape[dd] == 1 ? 0 : st[dd];
        }
    }
    int64_t idx[MICA_MAX_RANK] = {0};
    int64_t i = 0;
    do {
        int64_t ia = 0, ib = 0;
        for (int32_t dd = 0; dd < rank; dd++) {
            ia += idx[dd] * sa[dd];
            ib += idx[dd] * sb[dd];
        }
        float a = args[0].f[ia], b = args[1].f[ib];
        y[i++] = mul ? a * b : a + b;
    } while (mica_ref_index_next(idx, ty->shape, rank));
}

mica_status_t mica_ref_add(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                           mica_diag_t *d)
{
    broadcast_binary(n, args, y, false);
    return MICA_OK;
}

mica_status_t mica_ref_mul(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                           mica_diag_t *d)
{
    broadcast_binary(n, args, y, true);
    return MICA_OK;
}

mica_status_t mica_ref_scale(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                             mica_diag_t *d)
{
    double s = mica_attr_scale_s(n);
    int64_t count = mica_type_numel(&n->type);
    float *out = y;
    for (int64_t i = 0; i < count; i++)
        out[i] = (float)((double)args[0].f[i] * s);
    return MICA_OK;
}

mica_status_t mica_ref_convert(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d)
{
    memcpy(y, args[0].f, (size_t)mica_type_numel(&n->type) * sizeof(float));
    return MICA_OK;
}

mica_status_t mica_ref_silu(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                            mica_diag_t *d)
{
    int64_t count = mica_type_numel(&n->type);
    float *out = y;
    for (int64_t i = 0; i < count; i++) {
        double x = args[0].f[i];
        out[i] = (float)(x / (1.0 + exp(-x)));
    }
    return MICA_OK;
}

mica_status_t mica_ref_swiglu(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                              mica_diag_t *d)
{
    (void)d;
    const mica_type_t *t = &n->type;
    int64_t f = t->shape[t->rank - 1], rows = mica_type_numel(t) / f;
    float *out = y;
    for (int64_t r = 0; r < rows; r++) {
        const float *gate = args[0].f + r * 2 * f, *up = gate + f;
        for (int64_t i = 0; i < f; i++) {
            double x = gate[i];
            float s = (float)(x / (1.0 + exp(-x)));
            out[r * f + i] = s * up[i];
        }
    }
    return MICA_OK;
}

mica_status_t mica_ref_gelu(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                            mica_diag_t *d)
{
    const double k = sqrt(2.0 / 3.14159265358979323846); /* sqrt(2/pi) */
    int64_t count = mica_type_numel(&n->type);
    float *out = y;
    for (int64_t i = 0; i < count; i++) {
        double x = args[0].f[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x))));
    }
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* reductions over the last dim                                              */

mica_status_t mica_ref_rms_norm(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                mica_diag_t *d)
{
    double eps = mica_attr_rms_norm_eps(n);
    int64_t dim = last_dim(&args[0].type), rows = row_count(&args[0].type);
    const float *w = args[1].f; /* [D] */
    float *out = y;             /* [rows, D] */
    for (int64_t r = 0; r < rows; r++) {
        const float *x = args[0].f + r * dim;
        double ss = 0.0;
        for (int64_t i = 0; i < dim; i++)
            ss += (double)x[i] * (double)x[i];
        double inv = 1.0 / sqrt(ss / (double)dim + eps);
        for (int64_t i = 0; i < dim; i++)
            out[r * dim + i] = (float)((double)x[i] * inv * (double)w[i]);
    }
    return MICA_OK;
}

mica_status_t mica_ref_softmax(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                               mica_diag_t *d)
{
    int64_t dim = last_dim(&args[0].type), rows = row_count(&args[0].type);
    float *out = y;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = args[0].f + r * dim;
        double mx = -INFINITY;
        for (int64_t i = 0; i < dim; i++)
            if (x[i] > mx)
                mx = x[i];
        double sum = 0.0;
        for (int64_t i = 0; i < dim; i++)
            sum += exp((double)x[i] - mx);
        for (int64_t i = 0; i < dim; i++)
            out[r * dim + i] = (float)(exp((double)x[i] - mx) / sum);
    }
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* positions and attention                                                   */

mica_status_t mica_ref_rope(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                            mica_diag_t *d)
{
    int64_t mode = mica_attr_rope_mode(n), dims = mica_attr_rope_dims(n);
    double theta = mica_attr_rope_theta(n), scale = mica_attr_rope_scale(n);
    const mica_type_t *t = &args[0].type; /* x [T, H, D] */
    int64_t n_tok = t->shape[0], n_head = t->shape[1], hd = t->shape[2], half = dims / 2;
    const int32_t *pos = args[1].i; /* [T] */
    float *out = y;                 /* [T, H, D] */
    memcpy(out, args[0].f, (size_t)mica_type_numel(t) * sizeof *out);
    for (int64_t tok = 0; tok < n_tok; tok++) {
        for (int64_t i = 0; i < half; i++) {
            /* radians */
            double angle = (double)pos[tok] * scale * pow(theta, -2.0 * (double)i / (double)dims);
            double c = cos(angle), s = sin(angle);
            int64_t i0 = mode == 0 ? 2 * i : i, i1 = mode == 0 ? 2 * i + 1 : i + half;
            for (int64_t h = 0; h < n_head; h++) {
                const float *x = args[0].f + (tok * n_head + h) * hd;
                float *o = out + (tok * n_head + h) * hd;
                double a = x[i0], b = x[i1];
                o[i0] = (float)(a * c - b * s);
                o[i1] = (float)(a * s + b * c);
            }
        }
    }
    return MICA_OK;
}

/* One query row against keys/values 0..last, key j at k + j * stride (and
 * v likewise): out[0..hd) = sum_j softmax(scale q.k_j) v_j, in float64.
 * p holds last+1 scores, acc hd sums. */
static void attend_row(const float *qt, const float *k, const float *v, int64_t stride,
                       int64_t last, int64_t hd, double scale, double *p, double *acc, float *out)
{
    double mx = -INFINITY;
    for (int64_t j = 0; j <= last; j++) {
        const float *kj = k + j * stride;
        double dot = 0.0;
        for (int64_t i = 0; i < hd; i++)
            dot += (double)qt[i] * (double)kj[i];
        p[j] = scale * dot;
        if (p[j] > mx)
            mx = p[j];
    }
    double sum = 0.0;
    for (int64_t j = 0; j <= last; j++) {
        p[j] = exp(p[j] - mx);
        sum += p[j];
    }
    for (int64_t i = 0; i < hd; i++)
        acc[i] = 0.0;
    for (int64_t j = 0; j <= last; j++) {
        const float *vj = v + j * stride;
        for (int64_t i = 0; i < hd; i++)
            acc[i] += p[j] / sum * (double)vj[i];
    }
    for (int64_t i = 0; i < hd; i++)
        out[i] = (float)acc[i];
}

/* Scratch for attend_row: n_keys scores and hd sums. */
static mica_status_t attend_scratch(int64_t n_keys, int64_t hd, double **p, double **acc,
                                    mica_diag_t *d)
{
    *p = malloc((size_t)(n_keys > 0 ? n_keys : 1) * sizeof **p);
    *acc = malloc((size_t)hd * sizeof **acc);
    if (*p && *acc)
        return MICA_OK;
    free(*p);
    free(*acc);
    return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %lld attention scores",
                         (long long)n_keys);
}

mica_status_t mica_ref_attention(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                 mica_diag_t *d)
{
    double scale = mica_attr_attention_scale(n);
    const float *q = args[0].f, *k = args[1].f, *v = args[2].f;
    int64_t n_q = args[0].type.shape[0], hq = args[0].type.shape[1], hd = args[0].type.shape[2];
    int64_t n_kv = args[1].type.shape[0], hkv = args[1].type.shape[1];
    int64_t group = hq / hkv; /* query heads per kv head */
    float *out = y;           /* [T, Hq, D] */
    double *p, *acc;          /* [S] scores, [D] sums */
    MICA_TRY(attend_scratch(n_kv, hd, &p, &acc, d));
    for (int64_t t = 0; t < n_q; t++) {
        int64_t last = n_kv - n_q + t; /* the last key query t sees */
        for (int64_t h = 0; h < hq; h++) {
            int64_t kh = h / group;
            attend_row(q + (t * hq + h) * hd, k + kh * hd, v + kh * hd, hkv * hd, last, hd, scale,
                       p, acc, out + (t * hq + h) * hd);
        }
    }
    free(p);
    free(acc);
    return MICA_OK;
}

/* The run-time lengths of kv_store / attention_kv: p0 and n from operands
 * ip and ip+1, checked against the rows (n_rows) and the capacity. */
static mica_status_t run_lengths(const mica_ref_arg_t *args, int ip, int64_t n_rows, int64_t cap,
                                 int64_t *out_p0, int64_t *out_n, mica_diag_t *d)
{
    int64_t p0 = args[ip].i[0], cnt = args[ip + 1].i[0];
    if (cnt < 1 || cnt > n_rows)
        return mica_diag_set(d, MICA_ERR_RANGE, "%lld tokens in a call of at most %lld",
                             (long long)cnt, (long long)n_rows);
    if (p0 < 0 || p0 > cap - cnt)
        return mica_diag_set(d, MICA_ERR_RANGE,
                             "%lld tokens after %lld overflow the cache of %lld",
                             (long long)cnt, (long long)p0, (long long)cap);
    *out_p0 = p0;
    *out_n = cnt;
    return MICA_OK;
}

mica_status_t mica_ref_kv_store(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                mica_diag_t *d)
{
    const mica_type_t *ct = &args[0].type; /* cache [Hkv, C, D] */
    int64_t hkv = ct->shape[0], cap = ct->shape[1], hd = ct->shape[2];
    int64_t p0 = 0, cnt = 0;
    MICA_TRY(run_lengths(args, 2, args[1].type.shape[0], cap, &p0, &cnt, d));
    const float *x = args[1].f; /* [T, Hkv, D] */
    float *cache = y;           /* the state itself */
    for (int64_t t = 0; t < cnt; t++)
        for (int64_t h = 0; h < hkv; h++) {
            float *dst = cache + (h * cap + p0 + t) * hd;
            const float *src = x + (t * hkv + h) * hd;
            for (int64_t i = 0; i < hd; i++) {
                float val = src[i];
                if (ct->dtype == MICA_DTYPE_F16)
                    val = mica_f16_to_f32(mica_f32_to_f16(val));
                else if (ct->dtype == MICA_DTYPE_BF16)
                    val = mica_bf16_to_f32(mica_f32_to_bf16(val));
                dst[i] = val;
            }
        }
    return MICA_OK;
}

mica_status_t mica_ref_attention_kv(const mica_node_t *n, const mica_ref_arg_t *args, void *y,
                                    mica_diag_t *d)
{
    double scale = mica_attr_attention_kv_scale(n);
    const float *q = args[0].f, *k = args[1].f, *v = args[2].f;
    int64_t n_q = args[0].type.shape[0], hq = args[0].type.shape[1], hd = args[0].type.shape[2];
    int64_t hkv = args[1].type.shape[0], cap = args[1].type.shape[1];
    int64_t p0 = 0, cnt = 0;
    MICA_TRY(run_lengths(args, 3, n_q, cap, &p0, &cnt, d));
    int64_t group = hq / hkv;
    float *out = y; /* [T, Hq, D] */
    memset(out, 0, (size_t)mica_type_numel(&n->type) * sizeof *out);
    double *p, *acc;
    MICA_TRY(attend_scratch(p0 + cnt, hd, &p, &acc, d));
    for (int64_t t = 0; t < cnt; t++)
        for (int64_t h = 0; h < hq; h++) {
            const float *kh = k + (h / group) * cap * hd, *vh = v + (h / group) * cap * hd;
            attend_row(q + (t * hq + h) * hd, kh, vh, hd, p0 + t, hd, scale, p, acc,
                       out + (t * hq + h) * hd);
        }
    free(p);
    free(acc);
    return MICA_OK;
}
