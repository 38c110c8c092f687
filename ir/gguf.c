/* GGUF reader (ir/gguf.h): the header and metadata through the runtime's
 * reader (runtime/gguf_meta.c), then the tensor infos, every count, offset
 * and size checked against the bytes that are really there, and indexed so
 * lookups are O(1).
 *
 * File layout (all little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x      { string key, u32 value type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
 *   padding to general.alignment, then the data section.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "file_map.h"
#include "gguf.h"

struct mica_gguf {
    const uint8_t *base;    /* the file's bytes (mapping or caller's buffer) */
    uint64_t size;          /* bytes at base */
    mica_file_map_t map;    /* mapping to release, empty for open_memory */
    mica_gguf_meta_t *meta; /* header and metadata, owned */
    uint64_t data_offset;   /* start of the data section from the file start */
    uint64_t n_tensors;
    mica_gguf_tensor_t *tensors; /* n_tensors */
    mica_gguf_index_t tensor_index;
};

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

/* ggml type ids as numbered in ggml.h; NULL for ids never assigned. */
static const char *const ggml_type_names[] = {
    [0] = "f32",     [1] = "f16",         [2] = "q4_0",        [3] = "q4_1",        [4] = "q4_2",
    [5] = "q4_3",    [6] = "q5_0",        [7] = "q5_1",        [8] = "q8_0",        [9] = "q8_1",
    [10] = "q2_k",   [11] = "q3_k",       [12] = "q4_k",       [13] = "q5_k",       [14] = "q6_k",
    [15] = "q8_k",   [16] = "iq2_xxs",    [17] = "iq2_xs",     [18] = "iq3_xxs",    [19] = "iq1_s",
    [20] = "iq4_nl", [21] = "iq3_s",      [22] = "iq2_s",      [23] = "iq4_xs",     [24] = "i8",
    [25] = "i16",    [26] = "i32",        [27] = "i64",        [28] = "f64",        [29] = "iq1_m",
    [30] = "bf16",   [31] = "q4_0_4_4",   [32] = "q4_0_4_8",   [33] = "q4_0_8_8",   [34] = "tq1_0",
    [35] = "tq2_0",  [36] = "iq4_nl_4_4", [37] = "iq4_nl_4_8", [38] = "iq4_nl_8_8", [39] = "mxfp4",
    [40] = "nvfp4",  [41] = "q1_0",
};

const char *mica_gguf_ggml_type_name(uint32_t ggml_type)
{
    if (ggml_type >= sizeof ggml_type_names / sizeof ggml_type_names[0])
        return NULL;
    return ggml_type_names[ggml_type];
}

/* The ggml type ids mica reads, and their dtypes. */
static const struct {
    uint32_t ggml;
    mica_dtype_t dtype;
} ggml_dtypes[] = {
    {0, MICA_DTYPE_F32},   {1, MICA_DTYPE_F16},   {2, MICA_DTYPE_Q4_0},  {3, MICA_DTYPE_Q4_1},
    {6, MICA_DTYPE_Q5_0},  {7, MICA_DTYPE_Q5_1},  {8, MICA_DTYPE_Q8_0},  {10, MICA_DTYPE_Q2_K},
    {11, MICA_DTYPE_Q3_K}, {12, MICA_DTYPE_Q4_K}, {13, MICA_DTYPE_Q5_K}, {14, MICA_DTYPE_Q6_K},
    {30, MICA_DTYPE_BF16},
};

/* The dtype of ggml type id `id`, or MICA_DTYPE_COUNT if mica cannot read it. */
static mica_dtype_t dtype_from_ggml(uint32_t id)
{
    for (size_t i = 0; i < sizeof ggml_dtypes / sizeof ggml_dtypes[0]; i++)
        if (ggml_dtypes[i].ggml == id)
            return ggml_dtypes[i].dtype;
    return MICA_DTYPE_COUNT;
}

/* A tensor info cut off by the end of the file. */
/* ------------------------------------------------------------------------ */
/* what the data section must hold                                           */

typedef struct extent {
    uint64_t offset, nbytes;
    uint64_t index;
} extent_t;

static int extent_cmp(const void *a, const void *b)
{
    const extent_t *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* No two tensors share a byte of the data section (a writer never does
 * that, and a quantizer that rewrites one would corrupt the other). */
static mica_status_t check_overlaps(const mica_gguf_t *f, mica_diag_t *d)
{
    if (f->n_tensors < 2)
        return MICA_OK;
    extent_t *e = malloc((size_t)f->n_tensors * sizeof *e);
    if (!e)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %" PRIu64 " tensors",
                             f->n_tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        e[i] = (extent_t){f->tensors[i].offset, f->tensors[i].nbytes, i};
    qsort(e, (size_t)f->n_tensors, sizeof *e, extent_cmp);
    mica_status_t s = MICA_OK;
    for (uint64_t i = 0; i + 1 < f->n_tensors && s == MICA_OK; i++) {
        if (e[i].offset + e[i].nbytes <= e[i + 1].offset)
            continue;
        char a[MICA_GGUF_SHOW_BUF], b[MICA_GGUF_SHOW_BUF];
        s = mica_diag_set(d, MICA_ERR_INVALID,
                          "tensors '%s' and '%s' overlap in the data section (offsets %" PRIu64
                          " and %" PRIu64 ", %" PRIu64 " bytes from the first)",
                          mica_gguf_show(a, f->tensors[e[i].index].name),
                          mica_gguf_show(b, f->tensors[e[i + 1].index].name), e[i].offset,
                          e[i + 1].offset, e[i].nbytes);
    }
    free(e);
    return s;
}

static bool f16_finite(const uint8_t *p)
{
    return ((p[1] & 0x7c) != 0x7c); /* exponent all ones: inf or NaN */
}

/* Every value of a float tensor and every scale (and min) of a block
 * tensor is finite: a NaN or infinity there turns every logit it touches
 * into NaN, which no later check would name. Offsets of the f16 scales in
 * each block are GGUF's (ggml-common.h's block layouts). */
static mica_status_t check_values(const mica_gguf_tensor_t *t, mica_diag_t *d)
{
    char nb[MICA_GGUF_SHOW_BUF];
    int scales[2] = {-1, -1};
    switch (t->dtype) {
    case MICA_DTYPE_F32:
        for (uint64_t i = 0; i < t->nbytes / 4; i++) {
            uint32_t u;
            memcpy(&u, t->data + 4 * i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u)
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "tensor '%s' element %" PRIu64 " is NaN or infinite",
                                     mica_gguf_show(nb, t->name), i);
        }
        return MICA_OK;
    case MICA_DTYPE_F16:
    case MICA_DTYPE_BF16:
        for (uint64_t i = 0; i < t->nbytes / 2; i++) {
            const uint8_t *p = t->data + 2 * i;
            bool ok = t->dtype == MICA_DTYPE_F16 ? f16_finite(p)
                                                 : !((p[1] & 0x7f) == 0x7f && (p[0] & 0x80));
            if (!ok)
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "tensor '%s' element %" PRIu64 " is NaN or infinite",
                                     mica_gguf_show(nb, t->name), i);
        }
        return MICA_OK;
    case MICA_DTYPE_Q4_0: case MICA_DTYPE_Q5_0: case MICA_DTYPE_Q8_0: scales[0] = 0; break;
    case MICA_DTYPE_Q4_1: case MICA_DTYPE_Q5_1: case MICA_DTYPE_Q4_K: case MICA_DTYPE_Q5_K:
        scales[0] = 0, scales[1] = 2;
        break;
    case MICA_DTYPE_Q2_K: scales[0] = 80, scales[1] = 82; break;
    case MICA_DTYPE_Q3_K: scales[0] = 108; break;
    case MICA_DTYPE_Q6_K: scales[0] = 208; break;
    default: return MICA_OK;
    }
    uint64_t bb = (uint64_t)mica_dtype_block_bytes(t->dtype);
    for (uint64_t b = 0; b < t->nbytes / bb; b++)
        for (int k = 0; k < 2; k++)
            if (scales[k] >= 0 && !f16_finite(t->data + b * bb + (uint64_t)scales[k]))
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "tensor '%s' block %" PRIu64 " has a NaN or infinite %s",
                                     mica_gguf_show(nb, t->name), b, k ? "minimum" : "scale");
    return MICA_OK;
}

static mica_status_t truncated_tensor(const mica_gguf_cursor_t *r, uint64_t i, const char *name,
                                      uint64_t at)
{
    return mica_diag_set(r->d, MICA_ERR_INVALID,
                         "truncated: tensor info %" PRIu64 " ('%s') runs past the end of "
                         "the file (offset %" PRIu64 ")",
                         i, name, at);
}

/* ------------------------------------------------------------------------ */
/* Open                                                                      */

static mica_gguf_str_t tensor_name(const void *owner, uint64_t i)
{
    return ((const mica_gguf_t *)owner)->tensors[i].name;
}

static mica_status_t parse(mica_gguf_t *f, mica_diag_t *d)
{
    MICA_TRY(mica_gguf_meta_parse(f->base, f->size, &f->meta, d));
    mica_gguf_cursor_t rd = {f->base, f->size, mica_gguf_meta_end(f->meta), d};
    mica_gguf_cursor_t *r = &rd;
    char nb[MICA_GGUF_SHOW_BUF];
    uint64_t n_tensors = mica_gguf_meta_tensor_count(f->meta);
    uint64_t alignment = mica_gguf_meta_alignment(f->meta);

    /* Tensor infos. */
    MICA_TRY(mica_gguf_cursor_check_fit(r, n_tensors, MICA_GGUF_MIN_TENSOR_BYTES, "tensor infos",
                                        "metadata"));
    if (n_tensors > 0) {
        f->tensors = calloc((size_t)n_tensors, sizeof *f->tensors);
        if (!f->tensors || !mica_gguf_index_init(&f->tensor_index, n_tensors, tensor_name, f))
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %" PRIu64 " tensor infos",
                                 n_tensors);
    }
    f->n_tensors = n_tensors;
    for (uint64_t i = 0; i < n_tensors; i++) {
        mica_gguf_tensor_t *t = &f->tensors[i];
        uint64_t at = r->pos, len = 0;
        if (!mica_gguf_cursor_str(r, &t->name, &len))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: tensor info %" PRIu64 " name runs past the end of the "
                                 "file (offset %" PRIu64 ", length %" PRIu64 ")",
                                 i, at, len);
        const char *name = mica_gguf_show(nb, t->name);
        uint32_t n_dims = 0;
        if (!mica_gguf_cursor_u32(r, &n_dims))
            return truncated_tensor(r, i, name, at);
        if (n_dims < 1 || n_dims > 4)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "tensor '%s' has %" PRIu32 " dimensions (must be 1 to 4)", name,
                                 n_dims);
        t->n_dims = (int32_t)n_dims;
        for (int k = 0; k < 4; k++)
            t->ne[k] = 1;
        for (uint32_t k = 0; k < n_dims; k++) {
            uint64_t ne = 0;
            if (!mica_gguf_cursor_u64(r, &ne))
                return truncated_tensor(r, i, name, at);
            if (ne < 1 || ne > (uint64_t)INT64_MAX)
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "tensor '%s' dimension %" PRIu32 " is %" PRId64
                                     " (must be >= 1)",
                                     name, k, (int64_t)ne);
            t->ne[k] = (int64_t)ne;
        }
        uint32_t gt = 0;
        if (!mica_gguf_cursor_u32(r, &gt) || !mica_gguf_cursor_u64(r, &t->offset))
            return truncated_tensor(r, i, name, at);
        t->ggml_type = gt;
        t->dtype = dtype_from_ggml(gt);
        if (t->dtype == MICA_DTYPE_COUNT) {
            const char *tn = mica_gguf_ggml_type_name(gt);
            return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                                 "tensor '%s' has unsupported type %" PRIu32 " (%s)", name, gt,
                                 tn ? tn : "unknown");
        }
        int64_t be = mica_dtype_block_elems(t->dtype);
        if (t->ne[0] % be != 0)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "tensor '%s' row length %" PRId64
                                 " is not a multiple of the %s block size %" PRId64,
                                 name, t->ne[0], mica_dtype_name(t->dtype), be);
        int64_t numel = t->ne[0], rows = 1;
        for (int k = 1; k < 4; k++) {
            if (numel > INT64_MAX / t->ne[k])
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "tensor '%s' shape [%" PRId64 ", %" PRId64 ", %" PRId64
                                     ", %" PRId64 "] has too many elements",
                                     name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
            numel *= t->ne[k];
            rows *= t->ne[k];
        }
        int64_t row_bytes = mica_dtype_row_bytes(t->dtype, t->ne[0]);
        if (row_bytes <= 0 || rows > INT64_MAX / row_bytes)
            return mica_diag_set(d, MICA_ERR_INVALID, "tensor '%s' size in bytes overflows", name);
        t->nbytes = (uint64_t)(row_bytes * rows);

        uint64_t dup = mica_gguf_index_add(&f->tensor_index, i);
        if (dup != UINT64_MAX)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "duplicate tensor name '%s' (tensors %" PRIu64 " and %" PRIu64 ")",
                                 name, dup, i);
    }

    /* Data section. */
    uint64_t mask = alignment - 1;
    if (r->pos > UINT64_MAX - mask)
        return mica_diag_set(d, MICA_ERR_INVALID, "data section offset overflows");
    f->data_offset = (r->pos + mask) & ~mask;
    if (n_tensors > 0 && f->data_offset > f->size)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "truncated: data section starts at %" PRIu64
                             ", past the end of the file (%" PRIu64 " bytes)",
                             f->data_offset, f->size);
    uint64_t data_len = f->data_offset <= f->size ? f->size - f->data_offset : 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        mica_gguf_tensor_t *t = &f->tensors[i];
        const char *name = mica_gguf_show(nb, t->name);
        if ((t->offset & mask) != 0)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "tensor '%s' offset %" PRIu64
                                 " is not a multiple of the alignment %" PRIu64,
                                 name, t->offset, alignment);
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: tensor '%s' data runs past the end of the file "
                                 "(offset %" PRIu64 ", size %" PRIu64
                                 ", data section holds %" PRIu64 " bytes)",
                                 name, t->offset, t->nbytes, data_len);
        t->data = f->base + f->data_offset + t->offset;
    }
    MICA_TRY(check_overlaps(f, d));
    for (uint64_t i = 0; i < n_tensors; i++)
        MICA_TRY(check_values(&f->tensors[i], d));
    return MICA_OK;
}

/* Takes the bytes (and the mapping, if any) and parses them; on failure
 * everything is released, including the mapping. */
static mica_status_t open_bytes(const uint8_t *base, uint64_t size, mica_file_map_t map,
                                mica_gguf_t **out_file, mica_diag_t *d)
{
    mica_gguf_t *f = calloc(1, sizeof *f);
    if (!f) {
        mica_file_map_release(&map);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    f->base = base;
    f->size = size;
    f->map = map;
    mica_status_t s = parse(f, d);
    if (s != MICA_OK) {
        mica_gguf_close(f);
        return s;
    }
    *out_file = f;
    return MICA_OK;
}

mica_status_t mica_gguf_open(const char *path, mica_gguf_t **out_file, mica_diag_t *d)
{
    *out_file = NULL;
    mica_file_map_t map;
    MICA_TRY(mica_file_map_open(path, &map, d));
    return open_bytes(map.ptr, map.len, map, out_file, d);
}

mica_status_t mica_gguf_open_memory(const void *bytes, size_t len, mica_gguf_t **out_file,
                                    mica_diag_t *d)
{
    *out_file = NULL;
    if (!bytes && len > 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "no bytes given");
    return open_bytes(bytes, (uint64_t)len, (mica_file_map_t){NULL, 0}, out_file, d);
}

void mica_gguf_close(mica_gguf_t *f)
{
    if (!f)
        return;
    mica_gguf_meta_release(f->meta);
    free(f->tensors);
    mica_gguf_index_deinit(&f->tensor_index);
    mica_file_map_release(&f->map);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

const mica_gguf_meta_t *mica_gguf_meta(const mica_gguf_t *f)
{
    return f->meta;
}

uint32_t mica_gguf_version(const mica_gguf_t *f)
{
    return mica_gguf_meta_version(f->meta);
}

uint64_t mica_gguf_alignment(const mica_gguf_t *f)
{
    return mica_gguf_meta_alignment(f->meta);
}

uint64_t mica_gguf_kv_count(const mica_gguf_t *f)
{
    return mica_gguf_meta_kv_count(f->meta);
}

const mica_gguf_kv_t *mica_gguf_kv_at(const mica_gguf_t *f, uint64_t i)
{
    return mica_gguf_meta_kv_at(f->meta, i);
}

const mica_gguf_kv_t *mica_gguf_find(const mica_gguf_t *f, const char *key)
{
    return mica_gguf_meta_find(f->meta, key);
}

bool mica_gguf_get_u64(const mica_gguf_t *f, const char *key, uint64_t *out)
{
    return mica_gguf_meta_get_u64(f->meta, key, out);
}

bool mica_gguf_get_i64(const mica_gguf_t *f, const char *key, int64_t *out)
{
    return mica_gguf_meta_get_i64(f->meta, key, out);
}

bool mica_gguf_get_f64(const mica_gguf_t *f, const char *key, double *out)
{
    return mica_gguf_meta_get_f64(f->meta, key, out);
}

bool mica_gguf_get_bool(const mica_gguf_t *f, const char *key, bool *out)
{
    return mica_gguf_meta_get_bool(f->meta, key, out);
}

bool mica_gguf_get_str(const mica_gguf_t *f, const char *key, mica_gguf_str_t *out)
{
    return mica_gguf_meta_get_str(f->meta, key, out);
}

uint64_t mica_gguf_data_offset(const mica_gguf_t *f)
{
    return f->data_offset;
}

const uint8_t *mica_gguf_bytes(const mica_gguf_t *f, uint64_t *out_size)
{
    if (out_size)
        *out_size = f->size;
    return f->base;
}

uint64_t mica_gguf_tensor_count(const mica_gguf_t *f)
{
    return f->n_tensors;
}

const mica_gguf_tensor_t *mica_gguf_tensor_at(const mica_gguf_t *f, uint64_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const mica_gguf_tensor_t *mica_gguf_find_tensor(const mica_gguf_t *f, const char *name)
{
    if (f->n_tensors == 0 || !name)
        return NULL;
    uint64_t i = mica_gguf_index_find(&f->tensor_index, name, strlen(name));
    return i != UINT64_MAX ? &f->tensors[i] : NULL;
}
