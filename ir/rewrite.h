/* Graph rewriting: use lists, and the one rewriter that every pass and
 * mica_graph_prune rebuild a graph with.
 *
 * It lives in ir/ rather than passes/ because mica_graph_prune (ir/graph.c)
 * uses it and ir/ may not include passes/.
 *
 * The rewriter walks the old graph in order and asks a visit callback what
 * each node becomes in the new graph: a copy (operands remapped
 * automatically), a value or view already in the new graph, or any number
 * of new nodes. It keeps the old -> new map, gives every node it appends
 * the origin of the old node being visited, removes at the end the nodes
 * the caller allows to go once nothing kept reads them, and swaps the new
 * graph in. One walk costs O(nodes + operands) plus what the callback does.
 */
#ifndef MICA_REWRITE_H
#define MICA_REWRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

/* ------------------------------------------------------------------------ */
/* Use lists                                                                 */

/* One reader of a value: operand `operand` of node `node`. */
typedef struct mica_use {
    int32_t node;
    int32_t operand;
} mica_use_t;

/* Every value's readers, built once in O(nodes + operands). The uses of
 * value v are use[start[v] .. start[v + 1]), by reader id then operand
 * index. The arrays live in the arena given to mica_uses_build. They
 * describe the graph as it was built: rebuild them after editing it. */
typedef struct mica_uses {
    int32_t n_values;
    const int32_t *start;   /* [n_values + 1] */
    const mica_use_t *use;  /* [start[n_values]] */
} mica_uses_t;

/* Builds the use lists of g into out, allocating from arena (freed with
 * it). Fails on an operand that names no earlier node, or out of memory. */
mica_status_t mica_uses_build(const mica_graph_t *g, mica_arena_t *arena, mica_uses_t *out,
                              mica_diag_t *d);

/* The readers of value v and their count in *out_count; NULL and 0 when v
 * has none or is out of range. */
const mica_use_t *mica_uses_of(const mica_uses_t *u, int32_t v, int32_t *out_count);

/* ------------------------------------------------------------------------ */
/* The rewriter                                                              */

typedef struct mica_rewriter mica_rewriter_t;

/* Decides what old node n (== mica_rewrite_old(rw)->nodes[its id]) becomes,
 * by calling mica_rewrite_copy / _emit / _replace / _replace_view. When it
 * returns MICA_OK without a replace call, n maps to the last node it
 * appended, or, if it appended none, to nothing (n is dropped: a later
 * node that reads it fails). A non-zero return aborts the rewrite with
 * that status and the callback's message in d (the rewrite's diag); after
 * a failed rewriter call, returning any non-zero status is enough: the
 * rewrite reports what that call recorded. */
typedef mica_status_t (*mica_rewrite_visit_fn)(mica_rewriter_t *rw, const mica_node_t *n,
                                               void *user, mica_diag_t *d);

/* True if node n of the new graph may be removed once nothing kept reads it. */
typedef bool (*mica_rewrite_removable_fn)(const mica_node_t *n, void *user);

typedef struct mica_rewrite_spec {
    mica_rewrite_visit_fn visit;         /* NULL: copy every node */
    mica_rewrite_removable_fn removable; /* NULL: remove nothing */
    void *user;                          /* passed to both */
} mica_rewrite_spec_t;

/* Rewrites *g as spec says. On success *g is the new graph (the old one is
 * released); on failure *g is untouched and d says why, naming the old
 * node ("%N (op): ..."). Removal keeps the order of the survivors and
 * renumbers them; a node is kept if it is not removable or a kept node
 * reads it. */
mica_status_t mica_rewrite_run(mica_graph_t **g, const mica_rewrite_spec_t *spec,
                               mica_diag_t *d);

/* The same, leaving old as it is: *out_graph is the new graph (caller
 * releases), NULL on failure. For a pass that rewrites in several walks
 * and must leave its input untouched when a later walk fails. */
mica_status_t mica_rewrite_build(const mica_graph_t *old, const mica_rewrite_spec_t *spec,
                                 mica_graph_t **out_graph, mica_diag_t *d);

/* During a visit: the graph being read, and the new graph built so far
 * (read only: add nodes with _copy and _emit). */
const mica_graph_t *mica_rewrite_old(const mica_rewriter_t *rw);
const mica_graph_t *mica_rewrite_new(const mica_rewriter_t *rw);

/* What old value v became: an operand of the new graph (a value, possibly
 * read through a view), or NULL if v is not mapped (dropped, or not
 * visited yet). */
const mica_operand_t *mica_rewrite_lookup(const mica_rewriter_t *rw, int32_t v);

/* Old operand o as an operand of the new graph: its value mapped, its view
 * kept; a value mapped to a view takes that view. Fails (naming the node
 * being visited) if o's value is not an earlier, mapped node, or if o and
 * the mapping both have a view (views do not compose here). */
mica_status_t mica_rewrite_remap(mica_rewriter_t *rw, const mica_operand_t *o,
                                 mica_operand_t *out_operand);

/* Appends a copy of n whose operands are OLD values (n may be the visited
 * node or an edited copy of it, e.g. another op over the same operands),
 * remapped by mica_rewrite_remap. The type is kept and checked. Returns the
 * new id, or -1 after recording why (the rewrite then fails). */
int32_t mica_rewrite_copy(mica_rewriter_t *rw, const mica_node_t *n);

/* Appends n whose operands are NEW values (see mica_graph_append for
 * infer). Returns the new id, or -1 after recording why. */
int32_t mica_rewrite_emit(mica_rewriter_t *rw, const mica_node_t *n, bool infer);

/* Maps the visited node to new value v (already in the new graph) or to
 * the operand *with (a new value read through a view): its readers then
 * read that instead. Fails if the value is not in the new graph. */
mica_status_t mica_rewrite_replace(mica_rewriter_t *rw, int32_t v);
mica_status_t mica_rewrite_replace_view(mica_rewriter_t *rw, const mica_operand_t *with);

#endif
