/* GGUF reader (ir/gguf.h): maps a file, checks every count, offset and
 * size against the bytes that are really there, and indexes the metadata
 * and tensor infos so lookups are O(1).
 *
 * File layout (all little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x      { string key, u32 value type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
 *   padding to general.alignment, then the data section.
 * A string is u64 length + bytes; an array is u32 element type, u64 count,
 * then the elements (arrays may hold arrays).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DEPTH 8      /* arrays nested in arrays, counting the outer one */
#define GGUF_MIN_KV_BYTES 13u /* u64 key length, empty key, u32 type, 1-byte value */
#define GGUF_MIN_TENSOR_BYTES                                                                      \
    32u                          /* u64 name length, u32 n_dims, one u64 ne, u32 type, u64 offset */
#define GGUF_MIN_STRING_BYTES 8u /* u64 length of an empty string */
#define GGUF_MIN_ARRAY_BYTES 12u /* u32 element type, u64 count of an empty array */
#define GGUF_NAME_SHOWN 64       /* bytes of a key or tensor name quoted in a message */

/* One value: the public view first (accessors hand out &value->kv and cast
 * it back), plus the indexes built at open. */
typedef struct gguf_value {
    mica_gguf_kv_t kv;
    uint64_t *str_off; /* array of strings: offset of element i from kv.data (count), owned */
    struct gguf_value *items; /* array of arrays: the inner arrays (count), owned */
} gguf_value_t;

struct mica_gguf {
    const uint8_t *base; /* the file's bytes (mapping or caller's buffer) */
    uint64_t size;       /* bytes at base */
    void *map;           /* mapping to release, NULL for open_memory */
    size_t map_len;
    uint32_t version;
    uint64_t alignment;   /* bytes; a power of two */
    uint64_t data_offset; /* start of the data section from the file start */
    uint64_t n_kv;
    gguf_value_t *kv; /* n_kv */
    uint64_t n_tensors;
    mica_gguf_tensor_t *tensors; /* n_tensors */
    uint64_t *kv_hash;           /* open addressing: kv index + 1, 0 = empty */
    uint64_t kv_mask;
    uint64_t *tensor_hash; /* same, for tensor names */
    uint64_t tensor_mask;
};

/* Parse position. All reads check `size - pos` first. */
typedef struct reader {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    mica_diag_t *d;
} reader_t;

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static const char *const value_type_names[] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *mica_gguf_type_name(mica_gguf_type_t t)
{
    return (unsigned)t <= MICA_GGUF_FLOAT64 ? value_type_names[t] : NULL;
}

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

/* Copies at most GGUF_NAME_SHOWN bytes of s into buf for a one-line
 * message: bytes outside printable ASCII become '?', a cut adds "...". */
static const char *show(char buf[GGUF_NAME_SHOWN + 4], mica_gguf_str_t s)
{
    uint64_t n = s.len < GGUF_NAME_SHOWN ? s.len : GGUF_NAME_SHOWN;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s.len > GGUF_NAME_SHOWN) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Little-endian reads                                                       */

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static uint64_t left(const reader_t *r)
{
    return r->size - r->pos;
}

/* Reads a u32 / u64 if the bytes are there. */
static bool rd_u32(reader_t *r, uint32_t *out)
{
    if (left(r) < 4)
        return false;
    *out = le32(r->base + r->pos);
    r->pos += 4;
    return true;
}

static bool rd_u64(reader_t *r, uint64_t *out)
{
    if (left(r) < 8)
        return false;
    *out = le64(r->base + r->pos);
    r->pos += 8;
    return true;
}

/* Reads a string (u64 length + bytes). On failure *out_len holds the
 * length read (0 if even that was missing) for the message. */
static bool rd_str(reader_t *r, mica_gguf_str_t *out, uint64_t *out_len)
{
    uint64_t len = 0;
    *out_len = 0;
    if (!rd_u64(r, &len))
        return false;
    *out_len = len;
    if (left(r) < len)
        return false;
    out->ptr = (const char *)(r->base + r->pos);
    out->len = len;
    r->pos += len;
    return true;
}

/* Size in bytes of a fixed-size value type, 0 for string/array/unknown. */
static uint64_t scalar_size(uint32_t t)
{
    switch (t) {
    case MICA_GGUF_UINT8:
    case MICA_GGUF_INT8:
    case MICA_GGUF_BOOL:
        return 1;
    case MICA_GGUF_UINT16:
    case MICA_GGUF_INT16:
        return 2;
    case MICA_GGUF_UINT32:
    case MICA_GGUF_INT32:
    case MICA_GGUF_FLOAT32:
        return 4;
    case MICA_GGUF_UINT64:
    case MICA_GGUF_INT64:
    case MICA_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */

static void value_free(gguf_value_t *v)
{
    if (v->items)
        for (uint64_t i = 0; i < v->kv.count; i++)
            value_free(&v->items[i]);
    free(v->items);
    free(v->str_off);
    v->items = NULL;
    v->str_off = NULL;
}

/* Parses one value of `type` at r->pos into v (kv.key is already set).
 * `index` and `key` name the entry in messages; depth counts enclosing
 * arrays. */
static mica_status_t parse_value(reader_t *r, gguf_value_t *v, uint32_t type, int depth,
                                 uint64_t index, mica_gguf_str_t key)
{
    char kb[GGUF_NAME_SHOWN + 4];
    uint64_t start = r->pos;
    v->kv.type = (mica_gguf_type_t)type;
    v->kv.data = r->base + r->pos;

    if (type == MICA_GGUF_STRING) {
        mica_gguf_str_t s;
        uint64_t len;
        if (!rd_str(r, &s, &len))
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " ('%s') string runs past the end "
                                 "of the file (offset %" PRIu64 ", length %" PRIu64 ")",
                                 index, show(kb, key), start, len);
    } else if (type == MICA_GGUF_ARRAY) {
        uint32_t et = 0;
        uint64_t count = 0;
        if (!rd_u32(r, &et) || !rd_u64(r, &count))
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64
                                 " ('%s') array header runs past the "
                                 "end of the file (offset %" PRIu64 ")",
                                 index, show(kb, key), start);
        if (et > MICA_GGUF_FLOAT64)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "metadata %" PRIu64 " ('%s') is an array of unknown type %" PRIu32,
                                 index, show(kb, key), et);
        if (et == MICA_GGUF_ARRAY && depth + 1 >= GGUF_MAX_DEPTH)
            return mica_diag_set(r->d, MICA_ERR_UNSUPPORTED,
                                 "metadata %" PRIu64 " ('%s') nests arrays more than %d deep",
                                 index, show(kb, key), GGUF_MAX_DEPTH);
        v->kv.elem_type = (mica_gguf_type_t)et;
        v->kv.count = count;
        v->kv.data = r->base + r->pos;
        uint64_t min_elem = et == MICA_GGUF_STRING  ? GGUF_MIN_STRING_BYTES
                            : et == MICA_GGUF_ARRAY ? GGUF_MIN_ARRAY_BYTES
                                                    : scalar_size(et);
        if (count > left(r) / min_elem)
            return mica_diag_set(
                r->d, MICA_ERR_INVALID,
                "truncated: metadata %" PRIu64 " ('%s') array of %" PRIu64
                " %s runs past the end of the file (offset %" PRIu64 ", %" PRIu64 " bytes left)",
                index, show(kb, key), count, value_type_names[et], r->pos, left(r));
        if (et == MICA_GGUF_STRING) {
            if (count > 0) {
                v->str_off = malloc((size_t)count * sizeof *v->str_off);
                if (!v->str_off)
                    return mica_diag_set(r->d, MICA_ERR_NOMEM,
                                         "out of memory indexing %" PRIu64 " strings", count);
            }
            for (uint64_t i = 0; i < count; i++) {
                mica_gguf_str_t s;
                uint64_t len;
                uint64_t at = r->pos;
                v->str_off[i] = at - (uint64_t)(v->kv.data - r->base);
                if (!rd_str(r, &s, &len))
                    return mica_diag_set(r->d, MICA_ERR_INVALID,
                                         "truncated: metadata %" PRIu64 " ('%s') string %" PRIu64
                                         " runs past the end of the file (offset %" PRIu64
                                         ", length %" PRIu64 ")",
                                         index, show(kb, key), i, at, len);
            }
        } else if (et == MICA_GGUF_ARRAY) {
            if (count > 0) {
                v->items = calloc((size_t)count, sizeof *v->items);
                if (!v->items)
                    return mica_diag_set(r->d, MICA_ERR_NOMEM,
                                         "out of memory indexing %" PRIu64 " arrays", count);
            }
            for (uint64_t i = 0; i < count; i++)
                MICA_TRY(parse_value(r, &v->items[i], MICA_GGUF_ARRAY, depth + 1, index, key));
        } else {
            const uint8_t *p = r->base + r->pos;
            if (et == MICA_GGUF_BOOL)
                for (uint64_t i = 0; i < count; i++)
                    if (p[i] > 1)
                        return mica_diag_set(r->d, MICA_ERR_INVALID,
                                             "metadata %" PRIu64 " ('%s') element %" PRIu64
                                             " is bool %u (must be 0 or 1)",
                                             index, show(kb, key), i, p[i]);
            r->pos += count * min_elem;
        }
        v->kv.nbytes = r->pos - (uint64_t)(v->kv.data - r->base);
        return MICA_OK;
    } else {
        uint64_t n = scalar_size(type);
        if (n == 0)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "metadata %" PRIu64 " ('%s') has unknown value type %" PRIu32,
                                 index, show(kb, key), type);
        if (left(r) < n)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " ('%s') value runs past the end "
                                 "of the file (offset %" PRIu64 ", size %" PRIu64 ")",
                                 index, show(kb, key), start, n);
        if (type == MICA_GGUF_BOOL && r->base[r->pos] > 1)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "metadata %" PRIu64 " ('%s') is bool %u (must be 0 or 1)", index,
                                 show(kb, key), r->base[r->pos]);
        r->pos += n;
    }
    v->kv.nbytes = r->pos - start;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* Name index (open addressing, FNV-1a)                                      */

static uint64_t hash_bytes(const char *p, uint64_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool str_equal(mica_gguf_str_t a, const char *p, uint64_t n)
{
    return a.len == n && (n == 0 || memcmp(a.ptr, p, (size_t)n) == 0);
}

/* Allocates a table for n names: *out_mask + 1 slots, at least 2n. */
static uint64_t *hash_create(uint64_t n, uint64_t *out_mask)
{
    uint64_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    *out_mask = cap - 1;
    return calloc((size_t)cap, sizeof(uint64_t));
}

static mica_gguf_str_t kv_key(const mica_gguf_t *f, uint64_t i)
{
    return f->kv[i].kv.key;
}

static mica_gguf_str_t tensor_name(const mica_gguf_t *f, uint64_t i)
{
    return f->tensors[i].name;
}

/* The slot of `table` (entries index + 1, 0 empty; names from name_of)
 * where the search for p[0..n) ends: the one holding that name, or the
 * empty one where it would go. */
static uint64_t *name_slot(const mica_gguf_t *f, uint64_t *table, uint64_t mask,
                           mica_gguf_str_t (*name_of)(const mica_gguf_t *, uint64_t), const char *p,
                           uint64_t n)
{
    uint64_t h = hash_bytes(p, n) & mask;
    while (table[h] && !str_equal(name_of(f, table[h] - 1), p, n))
        h = (h + 1) & mask;
    return &table[h];
}

/* Fails unless n entries of at least min_bytes each fit in the bytes left. */
static mica_status_t check_fit(const reader_t *r, uint64_t n, uint64_t min_bytes, const char *what,
                               const char *after)
{
    if (n > left(r) / min_bytes)
        return mica_diag_set(r->d, MICA_ERR_INVALID,
                             "truncated: %" PRIu64 " %s cannot fit in the %" PRIu64
                             " bytes left after the %s",
                             n, what, left(r), after);
    return MICA_OK;
}

/* A tensor info cut off by the end of the file. */
static mica_status_t truncated_tensor(const reader_t *r, uint64_t i, const char *name, uint64_t at)
{
    return mica_diag_set(r->d, MICA_ERR_INVALID,
                         "truncated: tensor info %" PRIu64 " ('%s') runs past the end of "
                         "the file (offset %" PRIu64 ")",
                         i, name, at);
}

/* ------------------------------------------------------------------------ */
/* Open                                                                      */

static mica_status_t parse(mica_gguf_t *f, mica_diag_t *d)
{
    reader_t rd = {f->base, f->size, 0, d};
    reader_t *r = &rd;
    char nb[GGUF_NAME_SHOWN + 4];

    if (f->size < 4)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "truncated: file is %" PRIu64 " bytes, too short for a GGUF header",
                             f->size);
    if (memcmp(f->base, "GGUF", 4) != 0)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "not a GGUF file (magic bytes %02x %02x %02x %02x, expected 'GGUF')",
                             f->base[0], f->base[1], f->base[2], f->base[3]);
    r->pos = 4;
    uint32_t version = 0;
    if (!rd_u32(r, &version))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "truncated: GGUF header runs past the end of "
                             "the file (at the version)");
    if (version == 1)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "GGUF version 1 is not supported (only versions 2 and 3)");
    if (version == 0x02000000u || version == 0x03000000u)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    if (version != 2 && version != 3)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "unknown GGUF version %" PRIu32 " (only versions 2 and 3)", version);
    f->version = version;
    uint64_t n_tensors = 0, n_kv = 0;
    if (!rd_u64(r, &n_tensors) || !rd_u64(r, &n_kv))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "truncated: GGUF header runs past the end of "
                             "the file (at the counts)");
    MICA_TRY(check_fit(r, n_kv, GGUF_MIN_KV_BYTES, "metadata entries", "header"));
    MICA_TRY(check_fit(r, n_tensors, GGUF_MIN_TENSOR_BYTES, "tensor infos", "header"));

    /* Metadata. */
    if (n_kv > 0) {
        f->kv = calloc((size_t)n_kv, sizeof *f->kv);
        f->kv_hash = hash_create(n_kv, &f->kv_mask);
        if (!f->kv || !f->kv_hash)
            return mica_diag_set(d, MICA_ERR_NOMEM,
                                 "out of memory for %" PRIu64 " metadata entries", n_kv);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_value_t *v = &f->kv[i];
        uint64_t at = r->pos, len = 0;
        uint32_t type = 0;
        if (!rd_str(r, &v->kv.key, &len))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " key runs past the end of the "
                                 "file (offset %" PRIu64 ", length %" PRIu64 ")",
                                 i, at, len);
        f->n_kv = i + 1; /* from here on value_free may see it */
        if (!rd_u32(r, &type))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " ('%s') type runs past the end "
                                 "of the file (offset %" PRIu64 ")",
                                 i, show(nb, v->kv.key), r->pos);
        MICA_TRY(parse_value(r, v, type, 0, i, v->kv.key));

        uint64_t *slot = name_slot(f, f->kv_hash, f->kv_mask, kv_key, v->kv.key.ptr, v->kv.key.len);
        if (*slot)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "duplicate metadata key '%s' (entries %" PRIu64 " and %" PRIu64
                                 ")",
                                 show(nb, v->kv.key), *slot - 1, i);
        *slot = i + 1;
    }

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const mica_gguf_kv_t *akv = mica_gguf_find(f, "general.alignment");
    if (akv) {
        uint64_t a = 0;
        if (!mica_gguf_get_u64(f, "general.alignment", &a))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "general.alignment must be a non-negative integer (it is a %s)",
                                 mica_gguf_type_name(akv->type));
        if (a == 0 || (a & (a - 1)) != 0)
            return mica_diag_set(
                d, MICA_ERR_INVALID,
                "general.alignment is %" PRIu64 " (must be a nonzero power of two)", a);
        f->alignment = a;
    }

    /* Tensor infos. */
    MICA_TRY(check_fit(r, n_tensors, GGUF_MIN_TENSOR_BYTES, "tensor infos", "metadata"));
    if (n_tensors > 0) {
        f->tensors = calloc((size_t)n_tensors, sizeof *f->tensors);
        f->tensor_hash = hash_create(n_tensors, &f->tensor_mask);
        if (!f->tensors || !f->tensor_hash)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %" PRIu64 " tensor infos",
                                 n_tensors);
    }
    f->n_tensors = n_tensors;
    for (uint64_t i = 0; i < n_tensors; i++) {
        mica_gguf_tensor_t *t = &f->tensors[i];
        uint64_t at = r->pos, len = 0;
        if (!rd_str(r, &t->name, &len))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: tensor info %" PRIu64 " name runs past the end of the "
                                 "file (offset %" PRIu64 ", length %" PRIu64 ")",
                                 i, at, len);
        const char *name = show(nb, t->name);
        uint32_t n_dims = 0;
        if (!rd_u32(r, &n_dims))
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
            if (!rd_u64(r, &ne))
                return truncated_tensor(r, i, name, at);
            if (ne < 1 || ne > (uint64_t)INT64_MAX)
                return mica_diag_set(d, MICA_ERR_INVALID,
                                     "tensor '%s' dimension %" PRIu32 " is %" PRId64
                                     " (must be >= 1)",
                                     name, k, (int64_t)ne);
            t->ne[k] = (int64_t)ne;
        }
        uint32_t gt = 0;
        if (!rd_u32(r, &gt) || !rd_u64(r, &t->offset))
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

        uint64_t *slot =
            name_slot(f, f->tensor_hash, f->tensor_mask, tensor_name, t->name.ptr, t->name.len);
        if (*slot)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "duplicate tensor name '%s' (tensors %" PRIu64 " and %" PRIu64 ")",
                                 name, *slot - 1, i);
        *slot = i + 1;
    }

    /* Data section. */
    uint64_t mask = f->alignment - 1;
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
        const char *name = show(nb, t->name);
        if ((t->offset & mask) != 0)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "tensor '%s' offset %" PRIu64
                                 " is not a multiple of the alignment %" PRIu64,
                                 name, t->offset, f->alignment);
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: tensor '%s' data runs past the end of the file "
                                 "(offset %" PRIu64 ", size %" PRIu64
                                 ", data section holds %" PRIu64 " bytes)",
                                 name, t->offset, t->nbytes, data_len);
        t->data = f->base + f->data_offset + t->offset;
    }
    return MICA_OK;
}

/* Takes the bytes (and the mapping, if any) and parses them; on failure
 * everything is released, including the mapping. */
static mica_status_t open_bytes(const uint8_t *base, uint64_t size, void *map, size_t map_len,
                                mica_gguf_t **out_file, mica_diag_t *d)
{
    mica_gguf_t *f = calloc(1, sizeof *f);
    if (!f) {
        if (map)
            munmap(map, map_len);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    f->base = base;
    f->size = size;
    f->map = map;
    f->map_len = map_len;
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mica_diag_set(d, MICA_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return mica_diag_set(d, MICA_ERR_IO, "is a directory, not a GGUF file");
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mica_diag_set(d, MICA_ERR_IO, "not a regular file");
    }
    if (st.st_size <= 0) {
        close(fd);
        return open_bytes(NULL, 0, NULL, 0, out_file, d);
    }
    if ((uintmax_t)st.st_size > SIZE_MAX) {
        close(fd);
        return mica_diag_set(d, MICA_ERR_NOMEM, "file too large to map");
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return mica_diag_set(d, MICA_ERR_IO, "cannot map: %s", strerror(e));
    return open_bytes(map, (uint64_t)len, map, len, out_file, d);
}

mica_status_t mica_gguf_open_memory(const void *bytes, size_t len, mica_gguf_t **out_file,
                                    mica_diag_t *d)
{
    *out_file = NULL;
    if (!bytes && len > 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "no bytes given");
    return open_bytes(bytes, (uint64_t)len, NULL, 0, out_file, d);
}

void mica_gguf_close(mica_gguf_t *f)
{
    if (!f)
        return;
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++)
            value_free(&f->kv[i]);
    free(f->kv);
    free(f->kv_hash);
    free(f->tensors);
    free(f->tensor_hash);
    if (f->map)
        munmap(f->map, f->map_len);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

uint32_t mica_gguf_version(const mica_gguf_t *f)
{
    return f->version;
}

uint64_t mica_gguf_alignment(const mica_gguf_t *f)
{
    return f->alignment;
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

uint64_t mica_gguf_kv_count(const mica_gguf_t *f)
{
    return f->n_kv;
}

const mica_gguf_kv_t *mica_gguf_kv_at(const mica_gguf_t *f, uint64_t i)
{
    return i < f->n_kv ? &f->kv[i].kv : NULL;
}

const mica_gguf_kv_t *mica_gguf_find(const mica_gguf_t *f, const char *key)
{
    if (f->n_kv == 0 || !key)
        return NULL;
    uint64_t slot = *name_slot(f, f->kv_hash, f->kv_mask, kv_key, key, strlen(key));
    return slot ? &f->kv[slot - 1].kv : NULL;
}

/* An integer of value type t at p, as sign + magnitude: false if t is not
 * an integer type. */
static bool read_int(uint32_t t, const uint8_t *p, bool *out_neg, uint64_t *out_mag)
{
    int64_t s;
    switch (t) {
    case MICA_GGUF_UINT8:
        *out_neg = false;
        *out_mag = p[0];
        return true;
    case MICA_GGUF_UINT16:
        *out_neg = false;
        *out_mag = le16(p);
        return true;
    case MICA_GGUF_UINT32:
        *out_neg = false;
        *out_mag = le32(p);
        return true;
    case MICA_GGUF_UINT64:
        *out_neg = false;
        *out_mag = le64(p);
        return true;
    case MICA_GGUF_INT8:
        s = (int8_t)p[0];
        break;
    case MICA_GGUF_INT16:
        s = (int16_t)le16(p);
        break;
    case MICA_GGUF_INT32:
        s = (int32_t)le32(p);
        break;
    case MICA_GGUF_INT64:
        s = (int64_t)le64(p);
        break;
    default:
        return false;
    }
    *out_neg = s < 0;
    *out_mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return true;
}

static bool int_to_i64(bool neg, uint64_t mag, int64_t *out)
{
    if (neg) {
        if (mag > (uint64_t)INT64_MAX + 1u)
            return false;
        *out = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
        return true;
    }
    if (mag > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)mag;
    return true;
}

/* A float of value type t at p: false if t is not f32/f64. */
static bool read_float(uint32_t t, const uint8_t *p, double *out)
{
    if (t == MICA_GGUF_FLOAT32) {
        uint32_t b = le32(p);
        float v;
        memcpy(&v, &b, sizeof v);
        *out = v;
        return true;
    }
    if (t == MICA_GGUF_FLOAT64) {
        uint64_t b = le64(p);
        memcpy(out, &b, sizeof *out);
        return true;
    }
    return false;
}

bool mica_gguf_get_u64(const mica_gguf_t *f, const char *key, uint64_t *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_find(f, key);
    bool neg;
    uint64_t mag;
    if (!kv || !read_int(kv->type, kv->data, &neg, &mag) || neg)
        return false;
    *out = mag;
    return true;
}

bool mica_gguf_get_i64(const mica_gguf_t *f, const char *key, int64_t *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_find(f, key);
    bool neg;
    uint64_t mag;
    if (!kv || !read_int(kv->type, kv->data, &neg, &mag))
        return false;
    return int_to_i64(neg, mag, out);
}

bool mica_gguf_get_f64(const mica_gguf_t *f, const char *key, double *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_find(f, key);
    return kv && read_float(kv->type, kv->data, out);
}

bool mica_gguf_get_bool(const mica_gguf_t *f, const char *key, bool *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_find(f, key);
    if (!kv || kv->type != MICA_GGUF_BOOL)
        return false;
    *out = kv->data[0] != 0;
    return true;
}

bool mica_gguf_get_str(const mica_gguf_t *f, const char *key, mica_gguf_str_t *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_find(f, key);
    if (!kv || kv->type != MICA_GGUF_STRING)
        return false;
    out->len = le64(kv->data);
    out->ptr = (const char *)kv->data + 8;
    return true;
}

bool mica_gguf_array_str(const mica_gguf_kv_t *kv, uint64_t i, mica_gguf_str_t *out)
{
    if (!kv || kv->type != MICA_GGUF_ARRAY || kv->elem_type != MICA_GGUF_STRING || i >= kv->count)
        return false;
    const gguf_value_t *v = (const gguf_value_t *)kv;
    const uint8_t *p = kv->data + v->str_off[i];
    out->len = le64(p);
    out->ptr = (const char *)p + 8;
    return true;
}

bool mica_gguf_array_f64(const mica_gguf_kv_t *kv, uint64_t i, double *out)
{
    if (!kv || kv->type != MICA_GGUF_ARRAY || i >= kv->count)
        return false;
    uint64_t n = scalar_size(kv->elem_type);
    if (n == 0 || kv->elem_type == MICA_GGUF_BOOL)
        return false;
    const uint8_t *p = kv->data + i * n;
    if (read_float(kv->elem_type, p, out))
        return true;
    bool neg;
    uint64_t mag;
    if (!read_int(kv->elem_type, p, &neg, &mag))
        return false;
    *out = neg ? -(double)mag : (double)mag;
    return true;
}

bool mica_gguf_array_i64(const mica_gguf_kv_t *kv, uint64_t i, int64_t *out)
{
    if (!kv || kv->type != MICA_GGUF_ARRAY || i >= kv->count)
        return false;
    uint64_t n = scalar_size(kv->elem_type);
    bool neg;
    uint64_t mag;
    if (n == 0 || !read_int(kv->elem_type, kv->data + i * n, &neg, &mag))
        return false;
    return int_to_i64(neg, mag, out);
}

const mica_gguf_kv_t *mica_gguf_array_arr(const mica_gguf_kv_t *kv, uint64_t i)
{
    if (!kv || kv->type != MICA_GGUF_ARRAY || kv->elem_type != MICA_GGUF_ARRAY || i >= kv->count)
        return NULL;
    return &((const gguf_value_t *)kv)->items[i].kv;
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
    uint64_t slot = *name_slot(f, f->tensor_hash, f->tensor_mask, tensor_name, name, strlen(name));
    return slot ? &f->tensors[slot - 1] : NULL;
}

bool mica_gguf_str_eq(mica_gguf_str_t a, const char *s)
{
    return str_equal(a, s, strlen(s));
}
