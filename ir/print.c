/* IR text printer. The text form, which ir/parse.c reads back:
 *
 *   file     = header NL { line NL }            (last NL optional)
 *   header   = "# mica ir 1"                    (the first line, always)
 *   line     = [ node ] [ "#" comment ]         (blank lines allowed)
 *   node     = "%" ID " = " OP "(" [ operand { ", " operand } ] ")"
 *              [ " {" attr { ", " attr } "}" ] " : " type [ " " annots ]
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
 *   type     = DTYPE dims [ " packed(" EP "," HP "," LP ")" [ tiles ] ]
 *   tiles    = " tiles[" TN "," TK "," HP "," LP "]" [ " nibbles=halves" ]
 *                                              the tiled order of ir/layout_index.h:
 *                                              physical [TN, TK, HP, LP] with
 *                                              TN = ceil(N/HP), TK = ceil(K/LP)
 *                                              (zero padding); nibbles=halves on
 *                                              u4: byte i of a tile holds element
 *                                              i low, i + HP*LP/2 high
 *   dims     = "[" [ INT { "," INT } ] "]"      (0..6 entries; "[]" scalar)
 *   view     = OFFSET "+" "[" STRIDE { "," STRIDE } "]"  (one per dim)
 *   annots   = "!{" annot { ", " annot } "}"   (each key at most once)
 *   annot    = "origin=" INT                   node's origin, 0..2^31-1
 *            | "flags=0x" HEX                  pass flags, 1 to 8 hex digits
 *            | "note=" STRING                  pass note
 *            | "mem=" INT                      arena offset in bytes (memplan)
 *            | "split=" AXIS "[" INT { "," INT } "]"
 *                                              items per core; AXIS rows|cols|none
 *            | "cost=[" INT "," INT "," INT "," INT "]"
 *                                              bytes read, bytes written, integer
 *                                              ops, float ops (schedule)
 *            | "ns=" INT                       roofline time, nanoseconds (with cost)
 *
 * ID is the node's index (0, 1, 2, ... in order). INT is a decimal int64
 * ("-" allowed). FLOAT is printed with %.17g, so it reads back to the same
 * double, or as nan / inf / -inf. STRING is double-quoted; '"' and '\' are
 * written \" and \\, every byte outside 0x20..0x7e as \xHH (the parser also
 * takes \n and \t; NUL is not allowed). A region's idx=OPERAND@DIM marks a
 * gather region (index_input, index_dim). The printer writes exactly the
 * spacing above; the parser allows any spaces or tabs between tokens but
 * never a line break inside a node. Weight bytes are not part of the text.
 * The printer writes annots in the order origin, flags, note, and only
 * those that differ from the defaults (origin == ID, flags 0, no note);
 * "!{...}" is left out when none does, so a graph without annotations
 * prints as before. The parser takes the keys in any order; a node
 * without "origin=" is its own origin.
 *
 * Only the generic attribute kinds have printing code; which attributes an
 * op has and in which order comes from the op table.
 */
#include "ir.h"
#include "text_internal.h"

static void put_view(mica_sbuf_t *b, int32_t rank, const mica_view_t *v)
{
    mica_sb_printf(b, "%lld+", (long long)v->offset);
    mica_text_put_dims(b, rank, v->stride);
}

static void put_region(mica_sbuf_t *b, const mica_region_t *r)
{
    mica_sb_printf(b, "{in=%d", r->input);
    if (r->index_input >= 0)
        mica_sb_printf(b, " idx=%d@%d", r->index_input, r->index_dim);
    mica_sb_puts(b, " size=");
    mica_text_put_dims(b, r->rank, r->size);
    mica_sb_puts(b, " src=");
    put_view(b, r->rank, &r->src);
    mica_sb_puts(b, " dst=");
    put_view(b, r->rank, &r->dst);
    mica_sb_putn(b, "}", 1);
}

static void put_operand(mica_sbuf_t *b, const mica_operand_t *o)
{
    mica_sb_printf(b, "%%%d", o->value);
    if (o->has_view) {
        mica_sb_puts(b, " view ");
        mica_text_put_dims(b, o->view_rank, o->view_shape);
        mica_sb_putn(b, " ", 1);
        put_view(b, o->view_rank, &o->view);
    }
}

static void put_attr(mica_sbuf_t *b, const mica_node_t *n, int32_t k, mica_attr_kind_t kind)
{
    const mica_attr_t *a = &n->attrs[k];
    switch (kind) {
    case MICA_ATTR_INT:
        mica_sb_printf(b, "%lld", (long long)a->i);
        break;
    case MICA_ATTR_FLOAT:
        mica_text_put_double(b, a->f, 17);
        break;
    case MICA_ATTR_STRING:
        mica_text_put_string(b, a->s);
        break;
    case MICA_ATTR_INTS:
        mica_text_put_ints(b, a->n, a->v, INT32_MAX);
        break;
    case MICA_ATTR_REGIONS:
        mica_sb_putn(b, "[", 1);
        for (int32_t r = 0; n->regions && r < n->n_regions; r++) {
            if (r)
                mica_sb_puts(b, ", ");
            put_region(b, &n->regions[r]);
        }
        mica_sb_putn(b, "]", 1);
        break;
    }
}

/* " !{origin=.., flags=.., note=..}" with the non-default entries, if any. */
static void put_annotations(mica_sbuf_t *b, int32_t index, const mica_node_t *n)
{
    const char *sep = " !{";
    if (n->origin != index) {
        mica_sb_printf(b, "%sorigin=%d", sep, n->origin);
        sep = ", ";
    }
    if (n->flags) {
        mica_sb_printf(b, "%sflags=0x%x", sep, (unsigned)n->flags);
        sep = ", ";
    }
    if (n->note) {
        mica_sb_printf(b, "%snote=", sep);
        mica_text_put_string(b, n->note);
        sep = ", ";
    }
    const mica_node_sched_t *sc = &n->sched;
    if (sc->has_mem) {
        mica_sb_printf(b, "%smem=%lld", sep, (long long)sc->mem_offset);
        sep = ", ";
    }
    if (sc->n_parts > 0) {
        static const char *const axes[3] = {"none", "rows", "cols"};
        mica_sb_printf(b, "%ssplit=%s", sep, axes[sc->split_axis]);
        mica_text_put_ints(b, sc->n_parts, sc->parts, MICA_MAX_PARTS); /* not dims: up to 16 */
        sep = ", ";
    }
    if (sc->has_cost) {
        mica_sb_printf(b, "%scost=[%lld,%lld,%lld,%lld], ns=%lld", sep,
                       (long long)sc->bytes_read, (long long)sc->bytes_written,
                       (long long)sc->int_ops, (long long)sc->float_ops, (long long)sc->time_ns);
        sep = ", ";
    }
    if (sep[0] == ',')
        mica_sb_putn(b, "}", 1);
}

static void put_node(mica_sbuf_t *b, int32_t index, const mica_node_t *n)
{
    const mica_op_info_t *info = mica_op_info(n->op);
    mica_sb_printf(b, "%%%d = %s(", index, info ? info->name : "?");
    for (int32_t i = 0; n->inputs && i < n->n_inputs; i++) {
        if (i)
            mica_sb_puts(b, ", ");
        put_operand(b, &n->inputs[i]);
    }
    mica_sb_putn(b, ")", 1);
    if (info && info->n_attrs > 0) {
        mica_sb_puts(b, " {");
        for (int32_t k = 0; k < info->n_attrs; k++) {
            if (k)
                mica_sb_puts(b, ", ");
            mica_sb_printf(b, "%s=", info->attr_names[k]);
            put_attr(b, n, k, info->attr_kinds[k]);
        }
        mica_sb_putn(b, "}", 1);
    }
    mica_sb_puts(b, " : ");
    mica_text_put_type(b, &n->type);
    put_annotations(b, index, n);
    mica_sb_putn(b, "\n", 1);
}

char *mica_graph_print(const mica_graph_t *g)
{
    if (!g)
        return NULL;
    mica_sbuf_t b = {0};
    mica_sb_puts(&b, "# mica ir 1\n");
    for (int32_t i = 0; g->nodes && i < g->n_nodes; i++) {
        if (g->nodes[i])
            put_node(&b, i, g->nodes[i]);
        else
            mica_sb_printf(&b, "# %%%d is missing\n", i);
    }
    return mica_sb_finish(&b);
}
