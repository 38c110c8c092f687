/* Region algebra: canonical forms, composition and naive evaluation of the
 * copy rectangles that raster ops carry (see mica_region_t in ir.h).
 *
 * Composition is exact or refused: a result is returned only when every
 * element it copies is the element the two-step copy would produce.
 */
#ifndef MICA_REGION_H
#define MICA_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

/* Elements a region copies (product of its sizes). */
int64_t mica_region_numel(const mica_region_t *r);

/* Puts r in canonical form without changing what it copies: size-1 dims
 * dropped (rank stays >= 1), adjacent dims merged where both views are
 * contiguous across them, index dims kept. */
void mica_region_canonicalize(mica_region_t *r);

/* Composes a reader with the raster that produced what it reads.
 *   b:  one region that reads tensor X (b->input is ignored);
 *   a:  the n_a regions of the raster that wrote X (X has x_numel
 *       elements; elements no region of a writes are zero).
 * On success writes *out_n regions to out (at most max_out) that copy the
 * same elements straight from a's sources: each output region's `input`
 * (and index_input) is the corresponding a region's. Elements of b that
 * read zeros of X produce no region (they stay zero in b's output).
 * Gather regions: a gather region whose index dim has source stride 0
 * reads the same element for every valid id and is treated as a plain
 * copy. When b gathers otherwise, the results keep b's index_input (an
 * operand of b's raster, not of a's) and are exact for every id b accepts
 * (one that keeps b's addresses inside X); a gather region of a composes
 * only when b reads its ids from the first one on, one per step of a
 * single dim. Both at once is refused.
 * Returns MICA_ERR_UNSUPPORTED, writing nothing that matters, when the
 * result cannot be expressed exactly in max_out regions, and
 * MICA_ERR_INVALID when b or a is malformed or b reads outside X. */
mica_status_t mica_region_compose(const mica_region_t *b, const mica_region_t *a, int32_t n_a,
                                  int64_t x_numel, mica_region_t *out, int32_t max_out,
                                  int32_t *out_n);

/* Executes one region on raw element arrays: for every index of r, copies
 * elem_bytes from operands[r->input] to out (both arrays of elements of
 * elem_bytes; operand i has operand_numel[i] elements, out has out_numel).
 * A gather region reads its ids as int32_t from operands[r->index_input].
 * Writes nothing and returns MICA_ERR_RANGE if an address or id falls
 * outside its array, MICA_ERR_INVALID for a malformed region. Elements the
 * region does not cover are left as they are (a raster zeroes first). */
mica_status_t mica_region_copy(const mica_region_t *r, const void *const *operands,
                               const int64_t *operand_numel, int32_t n_operands, size_t elem_bytes,
                               void *out, int64_t out_numel);

#endif
