/* The tiled weight layout (ir/layout_index.h). */
#include "layout_index.h"

#include <string.h>

#define LAYOUT_TILE_MAX 4096 /* hp and lp at most this */

#define BAD(...) mica_diag_set(d, MICA_ERR_INVALID, __VA_ARGS__)

static bool tiled_dtype(mica_dtype_t t)
{
    return t == MICA_DTYPE_U4 || t == MICA_DTYPE_I8 || t == MICA_DTYPE_F16 ||
           t == MICA_DTYPE_F32;
}

static int64_t round_up(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

bool mica_layout_is_tiled(const mica_type_t *t)
{
    return t->layout.kind == MICA_LAYOUT_PACKED && t->layout.pad_n > 0;
}

mica_status_t mica_layout_tiled_type(mica_dtype_t dtype, int64_t n, int64_t k, int32_t ep,
                                     int32_t hp, int32_t lp, mica_type_t *out_type,
                                     mica_diag_t *d)
{
    if (!tiled_dtype(dtype))
        return BAD("a %s tensor cannot be tiled (u4, i8, f16 or f32 only)",
                   mica_dtype_name(dtype) ? mica_dtype_name(dtype) : "?");
    if (n < 1 || k < 1 || n > INT64_MAX / 8 / (k + LAYOUT_TILE_MAX) || ep < 0 || hp < 1 ||
        lp < 1 || hp > LAYOUT_TILE_MAX || lp > LAYOUT_TILE_MAX)
        return BAD("cannot tile [%lld, %lld] by (%d,%d,%d)", (long long)n, (long long)k, ep, hp,
                   lp);
    if (dtype == MICA_DTYPE_U4 && (hp * lp) % 2 != 0)
        return BAD("u4 tiles need an even hp*lp, (%d,%d,%d) has %d", ep, hp, lp, hp * lp);
    int64_t shape[2] = {n, k};
    mica_type_t t = mica_type_make(dtype, 2, shape);
    t.layout.kind = MICA_LAYOUT_PACKED;
    t.layout.ep = ep;
    t.layout.hp = hp;
    t.layout.lp = lp;
    t.layout.pad_n = round_up(n, hp);
    t.layout.pad_k = round_up(k, lp);
    t.layout.nibbles = dtype == MICA_DTYPE_U4 ? MICA_LAYOUT_NIBBLES_HALVES : MICA_LAYOUT_NIBBLES_NONE;
    *out_type = t;
    return MICA_OK;
}

mica_status_t mica_layout_check(const mica_type_t *t, mica_diag_t *d)
{
    const mica_layout_t *l = &t->layout;
    if (l->kind == MICA_LAYOUT_ROW_MAJOR) {
        if (l->ep || l->hp || l->lp || l->pad_n || l->pad_k || l->nibbles)
            return BAD("row-major type with tile sizes (%d,%d,%d)", l->ep, l->hp, l->lp);
        return MICA_OK;
    }
    if (l->kind != MICA_LAYOUT_PACKED)
        return BAD("invalid layout kind %d", (int)l->kind);
    if (l->ep < 0 || l->hp < 1 || l->lp < 1)
        return BAD("packed layout needs ep >= 0 and hp, lp >= 1, has (%d,%d,%d)", l->ep, l->hp,
                   l->lp);
    if (l->pad_n == 0 && l->pad_k == 0) {
        if (l->nibbles)
            return BAD("nibble order on a packed type without tiles");
        return MICA_OK; /* the generic form */
    }
    if (t->rank != 2)
        return BAD("tiles on a rank-%d type (tiled types are [N, K])", t->rank);
    mica_type_t want;
    mica_diag_t why = {0};
    if (mica_layout_tiled_type(t->dtype, t->shape[0], t->shape[1], l->ep, l->hp, l->lp, &want,
                               &why) != MICA_OK)
        return BAD("%s", why.msg);
    if (l->pad_n != want.layout.pad_n || l->pad_k != want.layout.pad_k)
        return BAD("tiles [%lld,%lld,%d,%d] do not cover [%lld,%lld] (want [%lld,%lld,%d,%d])",
                   (long long)(l->pad_n / l->hp), (long long)(l->pad_k / l->lp), l->hp, l->lp,
                   (long long)t->shape[0], (long long)t->shape[1],
                   (long long)(want.layout.pad_n / l->hp), (long long)(want.layout.pad_k / l->lp),
                   l->hp, l->lp);
    if (l->nibbles != want.layout.nibbles)
        return BAD(t->dtype == MICA_DTYPE_U4 ? "tiled u4 needs nibbles=halves"
                                             : "nibble order on a %s type",
                   mica_dtype_name(t->dtype));
    return MICA_OK;
}

uint64_t mica_layout_nbytes(const mica_type_t *t)
{
    if (mica_layout_is_tiled(t)) {
        uint64_t e = (uint64_t)t->layout.pad_n * (uint64_t)t->layout.pad_k;
        return t->dtype == MICA_DTYPE_U4 ? e / 2 : e * (uint64_t)mica_dtype_block_bytes(t->dtype);
    }
    if (t->layout.kind != MICA_LAYOUT_ROW_MAJOR)
        return 0;
    int64_t last = t->rank ? t->shape[t->rank - 1] : 1;
    int64_t rows = t->rank ? mica_type_numel(t) / last : 1;
    int64_t rb = mica_dtype_row_bytes(t->dtype, last);
    return rb > 0 ? (uint64_t)rb * (uint64_t)rows : 0;
}

int64_t mica_layout_offset(const mica_type_t *t, int64_t row, int64_t col, int32_t *out_shift)
{
    const bool nib = t->dtype == MICA_DTYPE_U4 || t->dtype == MICA_DTYPE_I4;
    const int64_t size = nib ? 1 : mica_dtype_block_bytes(t->dtype);
    int32_t shift = 0;
    int64_t byte;
    if (mica_layout_is_tiled(t)) {
        const mica_layout_t *l = &t->layout;
        const int64_t tile = (int64_t)l->hp * l->lp;
        const int64_t ti = (row / l->hp) * (l->pad_k / l->lp) + col / l->lp;
        const int64_t w = (row % l->hp) * l->lp + col % l->lp; /* within the tile */
        if (nib) {
            byte = ti * (tile / 2) + w % (tile / 2);
            shift = w < tile / 2 ? 0 : 4;
        } else {
            byte = (ti * tile + w) * size;
        }
    } else {
        const int64_t e = row * t->shape[1] + col;
        if (nib) {
            byte = e / 2;
            shift = (int32_t)(4 * (e & 1));
        } else {
            byte = e * size;
        }
    }
    if (out_shift)
        *out_shift = shift;
    return byte;
}
