/* Graphviz DOT output of a graph: one box per node labelled
 *   %N op
 *   dtype[dims] [packed(ep,hp,lp)]
 *   attr=value ...          (int lists cut after DOT_MAX_LIST entries;
 *                            a raster shows "regions=COUNT"; left out on
 *                            nodes the schedule pass annotated, whose
 *                            attributes the text dump shows)
 *   rows 13+3x10+2x9+2x4    the split (schedule pass): items per core, runs
 *                            of equal counts as COUNTxITEMS ("1 core": none)
 *   12.3 us  4.5%           predicted time and share of the graph's total
 * and one edge per operand, from the operand's node, dashed when the
 * operand is read through a view and labelled with the operand index when
 * the op has more than one (edges from weights are grey). Inputs and
 * outputs are ellipses, weights are notes in a smaller font, states are
 * cylinders. An input, state or weight with more than one reader (the
 * positions and lengths every layer reads, a tied embedding) is drawn as a
 * small grey copy "%N NAME" beside each reader instead of edges across the
 * whole graph, which keeps a 30-layer model quick for dot to lay out.
 * Scheduled nodes are filled on a heat scale from white to red (the
 * slowest node of the graph), logarithmic over DOT_HEAT_DECADES decades
 * below the slowest so that the many mid-sized ops of a 30-layer model
 * stay visible beside a large LM head; the graph's label gives the total.
 * The output depends only on the graph (no addresses, no time).
 */
#include <math.h>
#include <stdlib.h>

#include "ir.h"
#include "text_internal.h"

/* Entries of an int-list attribute shown before "...". */
#define DOT_MAX_LIST 8
/* Decades of time below the slowest node over which the heat scale runs. */
#define DOT_HEAT_DECADES 3.0

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

/* ns as "850 ns", "12.3 us", "4.56 ms" or "1.23 s". */
static void put_time(mica_sbuf_t *b, int64_t ns)
{
    if (ns < 1000)
        mica_sb_printf(b, "%lld ns", (long long)ns);
    else if (ns < 1000000)
        mica_sb_printf(b, "%.3g us", (double)ns / 1e3);
    else if (ns < 1000000000)
        mica_sb_printf(b, "%.3g ms", (double)ns / 1e6);
    else
        mica_sb_printf(b, "%.3g s", (double)ns / 1e9);
}

/* "cols 4x384" / "rows 13+3x10+2x9": runs of equal part counts. */
static void put_split(mica_sbuf_t *b, const mica_node_sched_t *sc)
{
    if (sc->split_axis != MICA_SPLIT_ROWS && sc->split_axis != MICA_SPLIT_COLS) {
        mica_sb_puts(b, "1 core");
        return;
    }
    mica_sb_puts(b, sc->split_axis == MICA_SPLIT_ROWS ? "rows " : "cols ");
    for (int32_t k = 0; k < sc->n_parts;) {
        int32_t run = 1;
        while (k + run < sc->n_parts && sc->parts[k + run] == sc->parts[k])
            run++;
        if (k)
            mica_sb_putn(b, "+", 1);
        if (run > 1)
            mica_sb_printf(b, "%dx", run);
        mica_sb_printf(b, "%lld", (long long)sc->parts[k]);
        k += run;
    }
}

static void put_node(mica_sbuf_t *b, const mica_graph_t *g, const int32_t *readers, int32_t i,
                     const mica_node_t *n, int64_t total_ns,
                     int64_t max_ns)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    const mica_node_sched_t *sc = &n->sched;
    bool scheduled = sc->n_parts > 0 || sc->has_cost;
    mica_sb_printf(b, "  n%d [label=\"%%%d %s\\n", i, i, info ? info->name : "?");
    mica_text_put_type(b, &n->type);
    for (int32_t k = 0; info && !scheduled && k < info->n_attrs; k++) {
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
    if (sc->n_parts > 0) {
        mica_sb_puts(b, "\\n");
        put_split(b, sc);
    }
    if (sc->has_cost) {
        mica_sb_puts(b, "\\n");
        put_time(b, sc->time_ns);
        mica_sb_printf(b, "  %.1f%%",
                       total_ns > 0 ? 100.0 * (double)sc->time_ns / (double)total_ns : 0.0);
    }
    mica_sb_putn(b, "\"", 1);
    if (n->op == MICA_OP_INPUT || n->op == MICA_OP_OUTPUT)
        mica_sb_puts(b, ", shape=ellipse");
    else if (n->op == MICA_OP_WEIGHT)
        mica_sb_puts(b, ", shape=note, fontsize=8");
    else if (n->op == MICA_OP_STATE)
        mica_sb_puts(b, ", shape=cylinder");
    if (sc->has_cost && max_ns > 0) {
        double heat = 1.0 + log10((double)(sc->time_ns > 0 ? sc->time_ns : 1) / (double)max_ns) /
                                DOT_HEAT_DECADES;
        heat = heat < 0.0 ? 0.0 : heat;
        mica_sb_printf(b, ", style=filled, fillcolor=\"0.000 %.3f 1.000\"", heat);
    }
    mica_sb_puts(b, "];\n");
    for (int32_t k = 0; n->inputs && k < n->n_inputs; k++) {
        const mica_operand_t *o = &n->inputs[k];
        bool labelled = n->n_inputs > 1;
        const mica_node_t *src = mica_graph_node(g, o->value);
        if (src && readers && readers[o->value] > 1 &&
            (src->op == MICA_OP_INPUT || src->op == MICA_OP_STATE || src->op == MICA_OP_WEIGHT)) {
            /* a copy beside this reader instead of an edge across the graph */
            mica_sb_printf(b, "  p%d_%d [label=\"%%%d ", i, k, o->value);
            put_label_string(b, mica_node_name(src));
            mica_sb_printf(b, "\", shape=%s, fontsize=8, color=gray60];\n",
                           src->op == MICA_OP_WEIGHT ? "note"
                           : src->op == MICA_OP_STATE ? "cylinder"
                                                      : "ellipse");
            mica_sb_printf(b, "  p%d_%d -> n%d", i, k, i);
        } else {
            mica_sb_printf(b, "  n%d -> n%d", o->value, i);
        }
        const char *sep = " [";
        if (labelled) {
            mica_sb_printf(b, "%slabel=\"%d\"", sep, k);
            sep = ", ";
        }
        if (o->has_view) {
            mica_sb_printf(b, "%sstyle=dashed", sep);
            sep = ", ";
        }
        if (src && src->op == MICA_OP_WEIGHT) {
            mica_sb_printf(b, "%scolor=gray60", sep);
            sep = ", ";
        }
        if (sep[0] == ',')
            mica_sb_putn(b, "]", 1);
        mica_sb_puts(b, ";\n");
    }
}

char *mica_graph_dot(const mica_graph_t *g)
{
    if (!g)
        return NULL;
    int64_t total_ns = 0, max_ns = 0;
    /* readers per value (NULL out of memory: then no copies are made) */
    int32_t *readers = calloc((size_t)(g->n_nodes > 0 ? g->n_nodes : 1), sizeof *readers);
    for (int32_t i = 0; g->nodes && i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        for (int32_t k = 0; readers && n && n->inputs && k < n->n_inputs; k++)
            if (n->inputs[k].value >= 0 && n->inputs[k].value < g->n_nodes)
                readers[n->inputs[k].value]++;
        if (n && n->sched.has_cost) {
            total_ns += n->sched.time_ns;
            max_ns = n->sched.time_ns > max_ns ? n->sched.time_ns : max_ns;
        }
    }
    mica_sbuf_t b = {0};
    mica_sb_puts(&b, "digraph mica {\n"
                     "  node [shape=box, fontname=\"monospace\", fontsize=10];\n"
                     "  edge [fontname=\"monospace\", fontsize=9];\n");
    if (max_ns > 0) {
        mica_sb_puts(&b, "  labelloc=t; fontname=\"monospace\"; fontsize=14;\n"
                         "  label=\"predicted ");
        put_time(&b, total_ns);
        mica_sb_puts(&b, " (schedule pass; red = the slowest op)\";\n");
    }
    for (int32_t i = 0; g->nodes && i < g->n_nodes; i++)
        if (g->nodes[i])
            put_node(&b, g, readers, i, g->nodes[i], total_ns, max_ns);
    free(readers);
    mica_sb_puts(&b, "}\n");
    return mica_sb_finish(&b);
}
