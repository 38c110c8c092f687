/* Graphviz DOT output of a graph: one box per node labelled
 *   %N op
 *   dtype[dims] [packed(ep,hp,lp)]
 *   attr=value ...          (int lists cut after DOT_MAX_LIST entries;
 *                            a raster shows "regions=COUNT")
 * and one edge per operand, from the operand's node, dashed when the
 * operand is read through a view and labelled with the operand index when
 * the op has more than one. Inputs and outputs are ellipses, weights are
 * notes. The output depends only on the graph (no addresses, no time).
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/* Entries of an int-list attribute shown before "...". */
#define DOT_MAX_LIST 8

/* A growing malloc'd string; `oom` sticks after the first failure. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf_t;

static void sb_putn(sbuf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (n >= b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 1024;
        while (n >= cap - b->n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf_t *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* Short formatted pieces only (numbers, names from the op table). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (len < 0)
        b->oom = true;
    else
        sb_putn(b, tmp, (size_t)len < sizeof tmp ? (size_t)len : sizeof tmp - 1);
}

static void put_ints(sbuf_t *b, int32_t n, const int64_t *v, int32_t max)
{
    sb_putn(b, "[", 1);
    for (int32_t i = 0; v && i < n; i++) {
        if (i == max) {
            sb_puts(b, ",...");
            break;
        }
        sb_printf(b, i ? ",%lld" : "%lld", (long long)v[i]);
    }
    sb_putn(b, "]", 1);
}

static void put_type(sbuf_t *b, const mica_type_t *t)
{
    const char *dt = mica_dtype_name(t->dtype);
    sb_puts(b, dt ? dt : "?");
    int32_t rank = t->rank < 0 ? 0 : t->rank > MICA_MAX_RANK ? MICA_MAX_RANK : t->rank;
    put_ints(b, rank, t->shape, MICA_MAX_RANK);
    if (t->layout.kind == MICA_LAYOUT_PACKED)
        sb_printf(b, " packed(%d,%d,%d)", t->layout.ep, t->layout.hp, t->layout.lp);
}

/* A string value inside a DOT label: IR-quoted (\" \\ \xHH), then escaped
 * once more for the DOT string it sits in. */
static void put_label_string(sbuf_t *b, const char *s)
{
    sb_puts(b, "\\\"");
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        if (*c == '"' || *c == '\\')
            sb_printf(b, "\\\\\\%c", *c);
        else if (*c < 0x20 || *c > 0x7e)
            sb_printf(b, "\\\\x%02x", *c);
        else
            sb_putn(b, (const char *)c, 1);
    }
    sb_puts(b, "\\\"");
}

static void put_double(sbuf_t *b, double x)
{
    if (isnan(x))
        sb_puts(b, "nan");
    else if (isinf(x))
        sb_puts(b, x < 0 ? "-inf" : "inf");
    else
        sb_printf(b, "%g", x);
}

static void put_node(sbuf_t *b, int32_t i, const mica_node_t *n)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    sb_printf(b, "  n%d [label=\"%%%d %s\\n", i, i, info ? info->name : "?");
    put_type(b, &n->type);
    for (int32_t k = 0; info && k < info->n_attrs; k++) {
        const mica_attr_t *a = &n->attrs[k];
        sb_printf(b, "\\n%s=", info->attr_names[k]);
        switch (info->attr_kinds[k]) {
        case MICA_ATTR_INT:
            sb_printf(b, "%lld", (long long)a->i);
            break;
        case MICA_ATTR_FLOAT:
            put_double(b, a->f);
            break;
        case MICA_ATTR_STRING:
            put_label_string(b, a->s);
            break;
        case MICA_ATTR_INTS:
            put_ints(b, a->n, a->v, DOT_MAX_LIST);
            break;
        case MICA_ATTR_REGIONS:
            sb_printf(b, "%d", n->n_regions);
            break;
        }
    }
    sb_putn(b, "\"", 1);
    if (n->op == MICA_OP_INPUT || n->op == MICA_OP_OUTPUT)
        sb_puts(b, ", shape=ellipse");
    else if (n->op == MICA_OP_WEIGHT)
        sb_puts(b, ", shape=note");
    sb_puts(b, "];\n");
    for (int32_t k = 0; n->inputs && k < n->n_inputs; k++) {
        const mica_operand_t *o = &n->inputs[k];
        sb_printf(b, "  n%d -> n%d", o->value, i);
        bool labelled = n->n_inputs > 1;
        if (labelled || o->has_view) {
            sb_puts(b, " [");
            if (labelled)
                sb_printf(b, "label=\"%d\"", k);
            if (o->has_view)
                sb_puts(b, labelled ? ", style=dashed" : "style=dashed");
            sb_putn(b, "]", 1);
        }
        sb_puts(b, ";\n");
    }
}

char *mica_graph_dot(const mica_graph_t *g)
{
    if (!g)
        return NULL;
    sbuf_t b = {0};
    sb_puts(&b, "digraph mica {\n"
                "  node [shape=box, fontname=\"monospace\", fontsize=10];\n"
                "  edge [fontname=\"monospace\", fontsize=9];\n");
    for (int32_t i = 0; g->nodes && i < g->n_nodes; i++)
        if (g->nodes[i])
            put_node(&b, i, g->nodes[i]);
    sb_puts(&b, "}\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
