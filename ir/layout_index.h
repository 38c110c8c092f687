/* The tiled weight layout: one index function that the layout pass packs
 * with and the ref backend reads with.
 *
 * A rank-2 tensor W of logical shape [N, K] (N output channels, K the
 * reduction) packed for a tile (ep, hp, lp) is stored as
 *
 *     P[ceil(N/hp)][ceil(K/lp)][hp][lp]           (elements, last dim fastest)
 *     P[n / hp][k / lp][n % hp][k % lp] = W[n][k]
 *
 * with N padded to pad_n = ceil(N/hp)*hp and K to pad_k = ceil(K/lp)*lp by
 * zero elements (zero bytes) that belong to the tensor: its storage is
 * pad_n * pad_k elements. The element index of (n, k) is
 *
 *     e = ((n / hp) * (pad_k / lp) + k / lp) * (hp * lp) + (n % hp) * lp + k % lp
 *
 * and one tile (hp rows by lp of the reduction) is hp * lp consecutive
 * elements: the hp x lp block one int8 dot-product instruction consumes.
 * ep (rows of activations per tile) does not move weights; it is kept in
 * the type for the kernels.
 *
 * Bytes: i8 element e at byte e, f16 at 2e, f32 at 4e. u4 (hp * lp even)
 * stores each tile in hp*lp/2 bytes, "halves" order: byte i of a tile holds
 * tile element i in its low nibble and tile element i + hp*lp/2 in its high
 * nibble. A kernel gets the first half of a tile (rows 0 .. hp/2 - 1 when
 * lp divides) with one AND 0x0f of the loaded bytes and the second half
 * with one shift right by 4, each already in tile order, so no shuffle is
 * needed (what llama.cpp's Q4_0 does within a 32-block; with sdot 8x4 one
 * 16-byte load gives rows 0-3 and 4-7, with smmla 8x8 rows {0,1} and {4,5}
 * per 16 bytes, with vpdpbusd 64x4 rows 0-15 and 32-47 per 64 bytes). u4
 * values are unsigned 0..15, the u8 operand vpdpbusd wants.
 *
 * Group scales and mins [N, K/G] (f16) use the same order with lp = 1:
 * [ceil(N/hp)][K/G][hp][1], so a tile of hp rows reads the scales of one
 * group as hp consecutive f16.
 *
 * Text form (ir/print.c): `u4[N,K] packed(EP,HP,LP) tiles[N/hp,K/lp,HP,LP]
 * nibbles=halves`, sizes rounded up; the tiles dims are the physical shape.
 */
#ifndef MICA_LAYOUT_INDEX_H
#define MICA_LAYOUT_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "ir.h"

/* True if t is rank 2 in the tiled order above (PACKED with pad_n > 0). */
bool mica_layout_is_tiled(const mica_type_t *t);

/* The type dtype [n, k] tiled for (ep, hp, lp): pads, and nibbles = HALVES
 * for u4. Fails (MICA_ERR_INVALID) for a dtype other than u4, i8, f16, f32,
 * sizes below 1, tiles above 4096, or u4 with hp * lp odd. */
mica_status_t mica_layout_tiled_type(mica_dtype_t dtype, int64_t n, int64_t k, int32_t ep,
                                     int32_t hp, int32_t lp, mica_type_t *out_type,
                                     mica_diag_t *d);

/* Checks t's layout fields: row-major has none; PACKED has ep >= 0, hp, lp
 * >= 1; tiled has rank 2, the pads equal to the rounded sizes, a dtype of
 * mica_layout_tiled_type and the right nibbles. */
mica_status_t mica_layout_check(const mica_type_t *t, mica_diag_t *d);

/* Bytes t occupies: tiled pad_n * pad_k elements (u4 two per byte), else
 * row-major rows times mica_dtype_row_bytes. 0 when that is undefined (a
 * generic packed type, a block type whose last dim is not whole blocks). */
uint64_t mica_layout_nbytes(const mica_type_t *t);

/* Byte offset of logical element (row, col) of the rank-2 type t (tiled
 * or row-major; u4, i8, f16, f32, i32), and in *out_shift (may be NULL)
 * the bit shift of its nibble for u4 (0 low, 4 high), 0 otherwise. The
 * caller keeps row < shape[0] and col < shape[1]. */
int64_t mica_layout_offset(const mica_type_t *t, int64_t row, int64_t col, int32_t *out_shift);

#endif
