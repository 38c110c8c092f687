/* IR text printer. The text form, which ir/parse.c reads back:
 *
 *   file     = header NL { line NL }            (last NL optional)
 *   header   = "# mica ir 1"                    (the first line, always)
 *   line     = [ node ] [ "#" comment ]         (blank lines allowed)
 *   node     = "%" ID " = " OP "(" [ operand { ", " operand } ] ")"
 *              [ " {" attr { ", " attr } "}" ] " : " type
 *   operand  = "%" ID [ " view " dims " " view ]
 *   attr     = NAME "=" value                   (every attribute of OP, in
 *                                                the order of ops.def)
 *   value    = INT                              kind i
 *            | FLOAT                            kind f
 *            | STRING                           kind s
 *            | "[" [ INT { "," INT } ] "]"      kind I
 *            | "[" [ region { ", " region } ] "]"   kind R (raster)
 *   region   = "{in=" INT [ " idx=" INT "@" INT ] " size=" dims
 *              " src=" view " dst=" view "}"
 *   type     = DTYPE dims [ " packed(" EP "," HP "," LP ")" ]
 *   dims     = "[" [ INT { "," INT } ] "]"      (0..6 entries; "[]" scalar)
 *   view     = OFFSET "+" "[" STRIDE { "," STRIDE } "]"  (one per dim)
 *
 * ID is the node's index (0, 1, 2, ... in order). INT is a decimal int64
 * ("-" allowed). FLOAT is printed with %.17g, so it reads back to the same
 * double, or as nan / inf / -inf. STRING is double-quoted; '"' and '\' are
 * written \" and \\, every byte outside 0x20..0x7e as \xHH (the parser also
 * takes \n and \t; NUL is not allowed). A region's idx=OPERAND@DIM marks a
 * gather region (index_input, index_dim). The printer writes exactly the
 * spacing above; the parser allows any spaces or tabs between tokens but
 * never a line break inside a node. Weight bytes are not part of the text.
 *
 * Only the generic attribute kinds have printing code; which attributes an
 * op has and in which order comes from the op table.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* A growing malloc'd string; `oom` sticks after the first failure. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf_t;

static bool sb_reserve(sbuf_t *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra < b->cap - b->n)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n <= extra) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

static void sb_putn(sbuf_t *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)len < sizeof small) {
        sb_putn(b, small, (size_t)len);
        return;
    }
    if (!sb_reserve(b, (size_t)len))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
}

static int32_t clamp_rank(int32_t r)
{
    return r < 0 ? 0 : r > MICA_MAX_RANK ? MICA_MAX_RANK : r;
}

static void put_ints(sbuf_t *b, int32_t n, const int64_t *v)
{
    sb_putn(b, "[", 1);
    for (int32_t i = 0; v && i < n; i++)
        sb_printf(b, i ? ",%lld" : "%lld", (long long)v[i]);
    sb_putn(b, "]", 1);
}

static void put_view(sbuf_t *b, int32_t rank, const mica_view_t *v)
{
    sb_printf(b, "%lld+", (long long)v->offset);
    put_ints(b, clamp_rank(rank), v->stride);
}

static void put_type(sbuf_t *b, const mica_type_t *t)
{
    const char *dt = mica_dtype_name(t->dtype);
    sb_puts(b, dt ? dt : "?");
    put_ints(b, clamp_rank(t->rank), t->shape);
    if (t->layout.kind == MICA_LAYOUT_PACKED)
        sb_printf(b, " packed(%d,%d,%d)", t->layout.ep, t->layout.hp, t->layout.lp);
}

static void put_double(sbuf_t *b, double x)
{
    if (isnan(x))
        sb_puts(b, "nan");
    else if (isinf(x))
        sb_puts(b, x < 0 ? "-inf" : "inf");
    else
        sb_printf(b, "%.17g", x);
}

static void put_string(sbuf_t *b, const char *s)
{
    sb_putn(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '"' || *c == '\\')
            sb_printf(b, "\\%c", *c);
        else if (*c < 0x20 || *c > 0x7e)
            sb_printf(b, "\\x%02x", *c);
        else
            sb_putn(b, (const char *)c, 1);
    }
    sb_putn(b, "\"", 1);
}

static void put_region(sbuf_t *b, const mica_region_t *r)
{
    sb_printf(b, "{in=%d", r->input);
    if (r->index_input >= 0)
        sb_printf(b, " idx=%d@%d", r->index_input, r->index_dim);
    sb_puts(b, " size=");
    put_ints(b, clamp_rank(r->rank), r->size);
    sb_puts(b, " src=");
    put_view(b, r->rank, &r->src);
    sb_puts(b, " dst=");
    put_view(b, r->rank, &r->dst);
    sb_putn(b, "}", 1);
}

static void put_operand(sbuf_t *b, const mica_operand_t *o)
{
    sb_printf(b, "%%%d", o->value);
    if (o->has_view) {
        sb_puts(b, " view ");
        put_ints(b, clamp_rank(o->view_rank), o->view_shape);
        sb_putn(b, " ", 1);
        put_view(b, o->view_rank, &o->view);
    }
}

static void put_attr(sbuf_t *b, const mica_node_t *n, int32_t k, mica_attr_kind_t kind)
{
    const mica_attr_t *a = &n->attrs[k];
    switch (kind) {
    case MICA_ATTR_INT:
        sb_printf(b, "%lld", (long long)a->i);
        break;
    case MICA_ATTR_FLOAT:
        put_double(b, a->f);
        break;
    case MICA_ATTR_STRING:
        put_string(b, a->s);
        break;
    case MICA_ATTR_INTS:
        put_ints(b, a->n, a->v);
        break;
    case MICA_ATTR_REGIONS:
        sb_putn(b, "[", 1);
        for (int32_t r = 0; n->regions && r < n->n_regions; r++) {
            if (r)
                sb_puts(b, ", ");
            put_region(b, &n->regions[r]);
        }
        sb_putn(b, "]", 1);
        break;
    }
}

static void put_node(sbuf_t *b, int32_t index, const mica_node_t *n)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    sb_printf(b, "%%%d = %s(", index, info ? info->name : "?");
    for (int32_t i = 0; n->inputs && i < n->n_inputs; i++) {
        if (i)
            sb_puts(b, ", ");
        put_operand(b, &n->inputs[i]);
    }
    sb_putn(b, ")", 1);
    if (info && info->n_attrs > 0) {
        sb_puts(b, " {");
        for (int32_t k = 0; k < info->n_attrs; k++) {
            if (k)
                sb_puts(b, ", ");
            sb_printf(b, "%s=", info->attr_names[k]);
            put_attr(b, n, k, info->attr_kinds[k]);
        }
        sb_putn(b, "}", 1);
    }
    sb_puts(b, " : ");
    put_type(b, &n->type);
    sb_putn(b, "\n", 1);
}

char *mica_graph_print(const mica_graph_t *g)
{
    if (!g)
        return NULL;
    sbuf_t b = {0};
    sb_puts(&b, "# mica ir 1\n");
    for (int32_t i = 0; g->nodes && i < g->n_nodes; i++) {
        if (g->nodes[i])
            put_node(&b, i, g->nodes[i]);
        else
            sb_printf(&b, "# %%%d is missing\n", i);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
