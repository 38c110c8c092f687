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
#include <stdlib.h>

#include "ir.h"
#include "text_internal.h"

/* Entries of an int-list attribute shown before "...". */
#define DOT_MAX_LIST 8

/* A string value inside a DOT label: IR-quoted (\" \\ \xHH), then escaped
 * once more for the DOT string it sits in. */
static void put_label_string(mica_sbuf_t *b, const char *s)
{
    mica_sbuf_t q = {0};
    mica_text_put_string(&q, s);
    if (q.oom)
        b->oom = true;
    for (size_t i = 0; i < q.n; i++) {
        if (q.p[i] == '"' || q.p[i] == '\\')
            mica_sb_putn(b, "\\", 1);
        mica_sb_putn(b, &q.p[i], 1);
    }
    free(q.p);
}

static void put_node(mica_sbuf_t *b, int32_t i, const mica_node_t *n)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    mica_sb_printf(b, "  n%d [label=\"%%%d %s\\n", i, i, info ? info->name : "?");
    mica_text_put_type(b, &n->type);
    for (int32_t k = 0; info && k < info->n_attrs; k++) {
        const mica_attr_t *a = &n->attrs[k];
        mica_sb_printf(b, "\\n%s=", info->attr_names[k]);
        switch (info->attr_kinds[k]) {
        case MICA_ATTR_INT:
            mica_sb_printf(b, "%lld", (long long)a->i);
            break;
        case MICA_ATTR_FLOAT:
            mica_text_put_double(b, a->f, 6); /* as %g */
            break;
        case MICA_ATTR_STRING:
            put_label_string(b, a->s);
            break;
        case MICA_ATTR_INTS:
            mica_text_put_ints(b, a->n, a->v, DOT_MAX_LIST);
            break;
        case MICA_ATTR_REGIONS:
            mica_sb_printf(b, "%d", n->n_regions);
            break;
        }
    }
    mica_sb_putn(b, "\"", 1);
    if (n->op == MICA_OP_INPUT || n->op == MICA_OP_OUTPUT)
        mica_sb_puts(b, ", shape=ellipse");
    else if (n->op == MICA_OP_WEIGHT)
        mica_sb_puts(b, ", shape=note");
    else if (n->op == MICA_OP_STATE)
        mica_sb_puts(b, ", shape=cylinder");
    mica_sb_puts(b, "];\n");
    for (int32_t k = 0; n->inputs && k < n->n_inputs; k++) {
        const mica_operand_t *o = &n->inputs[k];
        mica_sb_printf(b, "  n%d -> n%d", o->value, i);
        bool labelled = n->n_inputs > 1;
        if (labelled || o->has_view) {
            mica_sb_puts(b, " [");
            if (labelled)
                mica_sb_printf(b, "label=\"%d\"", k);
            if (o->has_view)
                mica_sb_puts(b, labelled ? ", style=dashed" : "style=dashed");
            mica_sb_putn(b, "]", 1);
        }
        mica_sb_puts(b, ";\n");
    }
}

char *mica_graph_dot(const mica_graph_t *g)
{
    if (!g)
        return NULL;
    mica_sbuf_t b = {0};
    mica_sb_puts(&b, "digraph mica {\n"
                     "  node [shape=box, fontname=\"monospace\", fontsize=10];\n"
                     "  edge [fontname=\"monospace\", fontsize=9];\n");
    for (int32_t i = 0; g->nodes && i < g->n_nodes; i++)
        if (g->nodes[i])
            put_node(&b, i, g->nodes[i]);
    mica_sb_puts(&b, "}\n");
    return mica_sb_finish(&b);
}
