/* GGUF metadata reader (runtime/gguf_meta.h): checks every count, offset
 * and size against the bytes that are really there, and indexes the keys
 * and string arrays so lookups are O(1). */
#include "gguf_meta.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "checksum.h"
#include "file_map.h"

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DEPTH 8         /* arrays nested in arrays, counting the outer one */
#define GGUF_MIN_KV_BYTES 13u    /* u64 key length, empty key, u32 type, 1-byte value */
#define GGUF_MIN_STRING_BYTES 8u /* u64 length of an empty string */
#define GGUF_MIN_ARRAY_BYTES 12u /* u32 element type, u64 count of an empty array */

/* One value: the public view first (accessors hand out &value->kv and cast
 * it back), plus the indexes built at parse. */
typedef struct gguf_value {
    mica_gguf_kv_t kv;
    uint64_t *str_off; /* array of strings: offset of element i from kv.data (count), owned */
    struct gguf_value *items; /* array of arrays: the inner arrays (count), owned */
} gguf_value_t;

struct mica_gguf_meta {
    const uint8_t *base; /* the file's bytes */
    uint64_t size;
    mica_file_map_t map; /* owned when opened from a path */
    uint32_t version;
    uint64_t alignment; /* bytes; a power of two */
    uint64_t n_tensors; /* as the header says */
    uint64_t end;       /* first byte after the metadata */
    uint64_t n_kv;      /* entries parsed so far (all of them after a successful parse) */
    gguf_value_t *kv;   /* [n_kv of the header] */
    mica_gguf_index_t index;
};

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static const char *const value_type_names[] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *mica_gguf_type_name(mica_gguf_type_t t)
{
    return (unsigned)t <= MICA_GGUF_FLOAT64 ? value_type_names[t] : NULL;
}

const char *mica_gguf_show(char buf[MICA_GGUF_SHOW_BUF], mica_gguf_str_t s)
{
    uint64_t n = s.len < MICA_GGUF_NAME_SHOWN ? s.len : MICA_GGUF_NAME_SHOWN;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s.len > MICA_GGUF_NAME_SHOWN) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = 0;
    return buf;
}

static bool str_equal(mica_gguf_str_t a, const char *p, uint64_t n)
{
    return a.len == n && (n == 0 || memcmp(a.ptr, p, (size_t)n) == 0);
}

bool mica_gguf_str_eq(mica_gguf_str_t a, const char *s)
{
    return str_equal(a, s, strlen(s));
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

static uint64_t left(const mica_gguf_cursor_t *c)
{
    return c->size - c->pos;
}

bool mica_gguf_cursor_u32(mica_gguf_cursor_t *c, uint32_t *out)
{
    if (left(c) < 4)
        return false;
    *out = le32(c->base + c->pos);
    c->pos += 4;
    return true;
}

bool mica_gguf_cursor_u64(mica_gguf_cursor_t *c, uint64_t *out)
{
    if (left(c) < 8)
        return false;
    *out = le64(c->base + c->pos);
    c->pos += 8;
    return true;
}

bool mica_gguf_cursor_str(mica_gguf_cursor_t *c, mica_gguf_str_t *out, uint64_t *out_len)
{
    uint64_t len = 0;
    *out_len = 0;
    if (!mica_gguf_cursor_u64(c, &len))
        return false;
    *out_len = len;
    if (left(c) < len) {
        c->pos -= 8;
        return false;
    }
    out->ptr = (const char *)(c->base + c->pos);
    out->len = len;
    c->pos += len;
    return true;
}

mica_status_t mica_gguf_cursor_check_fit(const mica_gguf_cursor_t *c, uint64_t n,
                                         uint64_t min_bytes, const char *what, const char *after)
{
    if (n > left(c) / min_bytes)
        return mica_diag_set(c->d, MICA_ERR_INVALID,
                             "truncated: %" PRIu64 " %s cannot fit in the %" PRIu64
                             " bytes left after the %s",
                             n, what, left(c), after);
    return MICA_OK;
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
/* Name index                                                                */

bool mica_gguf_index_init(mica_gguf_index_t *ix, uint64_t n, mica_gguf_name_fn name_of,
                          const void *owner)
{
    uint64_t cap = 8;
    while (cap < 2 * n)
        cap *= 2;
    ix->mask = cap - 1;
    ix->name_of = name_of;
    ix->owner = owner;
    ix->slots = calloc((size_t)cap, sizeof *ix->slots);
    return ix->slots != NULL;
}

void mica_gguf_index_deinit(mica_gguf_index_t *ix)
{
    free(ix->slots);
    ix->slots = NULL;
}

/* The slot where the search for p[0..n) ends: the one holding that name,
 * or the empty one where it would go. */
static uint64_t *index_slot(const mica_gguf_index_t *ix, const char *p, uint64_t n)
{
    uint64_t h = mica_checksum_update(MICA_CHECKSUM_INIT, p, (size_t)n) & ix->mask;
    while (ix->slots[h] && !str_equal(ix->name_of(ix->owner, ix->slots[h] - 1), p, n))
        h = (h + 1) & ix->mask;
    return &ix->slots[h];
}

uint64_t mica_gguf_index_add(mica_gguf_index_t *ix, uint64_t i)
{
    mica_gguf_str_t name = ix->name_of(ix->owner, i);
    uint64_t *slot = index_slot(ix, name.ptr, name.len);
    if (*slot)
        return *slot - 1;
    *slot = i + 1;
    return UINT64_MAX;
}

uint64_t mica_gguf_index_find(const mica_gguf_index_t *ix, const char *p, uint64_t n)
{
    if (!ix->slots)
        return UINT64_MAX;
    uint64_t slot = *index_slot(ix, p, n);
    return slot ? slot - 1 : UINT64_MAX;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

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

/* Parses the elements of an array whose header (element type et, count)
 * has been read into v. */
static mica_status_t parse_value(mica_gguf_cursor_t *r, gguf_value_t *v, uint32_t type, int depth,
                                 uint64_t index, mica_gguf_str_t key);

static mica_status_t parse_array(mica_gguf_cursor_t *r, gguf_value_t *v, uint32_t et,
                                 uint64_t count, int depth, uint64_t index, mica_gguf_str_t key)
{
    char kb[MICA_GGUF_SHOW_BUF];
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
            index, mica_gguf_show(kb, key), count, value_type_names[et], r->pos, left(r));
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
            if (!mica_gguf_cursor_str(r, &s, &len))
                return mica_diag_set(r->d, MICA_ERR_INVALID,
                                     "truncated: metadata %" PRIu64 " ('%s') string %" PRIu64
                                     " runs past the end of the file (offset %" PRIu64
                                     ", length %" PRIu64 ")",
                                     index, mica_gguf_show(kb, key), i, at, len);
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
                                         index, mica_gguf_show(kb, key), i, p[i]);
        r->pos += count * min_elem;
    }
    v->kv.nbytes = r->pos - (uint64_t)(v->kv.data - r->base);
    return MICA_OK;
}

/* Parses one value of `type` at r->pos into v (kv.key is already set).
 * `index` and `key` name the entry in messages; depth counts enclosing
 * arrays. */
static mica_status_t parse_value(mica_gguf_cursor_t *r, gguf_value_t *v, uint32_t type, int depth,
                                 uint64_t index, mica_gguf_str_t key)
{
    char kb[MICA_GGUF_SHOW_BUF];
    uint64_t start = r->pos;
    v->kv.type = (mica_gguf_type_t)type;
    v->kv.data = r->base + r->pos;

    if (type == MICA_GGUF_STRING) {
        mica_gguf_str_t s;
        uint64_t len;
        if (!mica_gguf_cursor_str(r, &s, &len))
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " ('%s') string runs past the end "
                                 "of the file (offset %" PRIu64 ", length %" PRIu64 ")",
                                 index, mica_gguf_show(kb, key), start, len);
    } else if (type == MICA_GGUF_ARRAY) {
        uint32_t et = 0;
        uint64_t count = 0;
        if (!mica_gguf_cursor_u32(r, &et) || !mica_gguf_cursor_u64(r, &count))
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64
                                 " ('%s') array header runs past the "
                                 "end of the file (offset %" PRIu64 ")",
                                 index, mica_gguf_show(kb, key), start);
        if (et > MICA_GGUF_FLOAT64)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "metadata %" PRIu64 " ('%s') is an array of unknown type %" PRIu32,
                                 index, mica_gguf_show(kb, key), et);
        if (et == MICA_GGUF_ARRAY && depth + 1 >= GGUF_MAX_DEPTH)
            return mica_diag_set(r->d, MICA_ERR_UNSUPPORTED,
                                 "metadata %" PRIu64 " ('%s') nests arrays more than %d deep",
                                 index, mica_gguf_show(kb, key), GGUF_MAX_DEPTH);
        return parse_array(r, v, et, count, depth, index, key);
    } else {
        uint64_t n = scalar_size(type);
        if (n == 0)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "metadata %" PRIu64 " ('%s') has unknown value type %" PRIu32,
                                 index, mica_gguf_show(kb, key), type);
        if (left(r) < n)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " ('%s') value runs past the end "
                                 "of the file (offset %" PRIu64 ", size %" PRIu64 ")",
                                 index, mica_gguf_show(kb, key), start, n);
        if (type == MICA_GGUF_BOOL && r->base[r->pos] > 1)
            return mica_diag_set(r->d, MICA_ERR_INVALID,
                                 "metadata %" PRIu64 " ('%s') is bool %u (must be 0 or 1)", index,
                                 mica_gguf_show(kb, key), r->base[r->pos]);
        r->pos += n;
    }
    v->kv.nbytes = r->pos - start;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* Parse                                                                     */

static mica_gguf_str_t kv_key(const void *owner, uint64_t i)
{
    return ((const mica_gguf_meta_t *)owner)->kv[i].kv.key;
}

static mica_status_t parse(mica_gguf_meta_t *m, mica_diag_t *d)
{
    mica_gguf_cursor_t rd = {m->base, m->size, 0, d};
    mica_gguf_cursor_t *r = &rd;
    char nb[MICA_GGUF_SHOW_BUF];

    if (m->size < 4)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "truncated: file is %" PRIu64 " bytes, too short for a GGUF header",
                             m->size);
    if (memcmp(m->base, "GGUF", 4) != 0)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "not a GGUF file (magic bytes %02x %02x %02x %02x, expected 'GGUF')",
                             m->base[0], m->base[1], m->base[2], m->base[3]);
    r->pos = 4;
    uint32_t version = 0;
    if (!mica_gguf_cursor_u32(r, &version))
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
    m->version = version;
    uint64_t n_tensors = 0, n_kv = 0;
    if (!mica_gguf_cursor_u64(r, &n_tensors) || !mica_gguf_cursor_u64(r, &n_kv))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "truncated: GGUF header runs past the end of "
                             "the file (at the counts)");
    MICA_TRY(mica_gguf_cursor_check_fit(r, n_kv, GGUF_MIN_KV_BYTES, "metadata entries", "header"));
    MICA_TRY(mica_gguf_cursor_check_fit(r, n_tensors, MICA_GGUF_MIN_TENSOR_BYTES, "tensor infos",
                                        "header"));
    m->n_tensors = n_tensors;

    if (n_kv > 0) {
        m->kv = calloc((size_t)n_kv, sizeof *m->kv);
        if (!m->kv || !mica_gguf_index_init(&m->index, n_kv, kv_key, m))
            return mica_diag_set(d, MICA_ERR_NOMEM,
                                 "out of memory for %" PRIu64 " metadata entries", n_kv);
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_value_t *v = &m->kv[i];
        uint64_t at = r->pos, len = 0;
        uint32_t type = 0;
        if (!mica_gguf_cursor_str(r, &v->kv.key, &len))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " key runs past the end of the "
                                 "file (offset %" PRIu64 ", length %" PRIu64 ")",
                                 i, at, len);
        m->n_kv = i + 1; /* from here on value_free may see it */
        if (!mica_gguf_cursor_u32(r, &type))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "truncated: metadata %" PRIu64 " ('%s') type runs past the end "
                                 "of the file (offset %" PRIu64 ")",
                                 i, mica_gguf_show(nb, v->kv.key), r->pos);
        MICA_TRY(parse_value(r, v, type, 0, i, v->kv.key));
        uint64_t dup = mica_gguf_index_add(&m->index, i);
        if (dup != UINT64_MAX)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "duplicate metadata key '%s' (entries %" PRIu64 " and %" PRIu64
                                 ")",
                                 mica_gguf_show(nb, v->kv.key), dup, i);
    }
    m->end = r->pos;

    m->alignment = GGUF_DEFAULT_ALIGNMENT;
    const mica_gguf_kv_t *akv = mica_gguf_meta_find(m, "general.alignment");
    if (akv) {
        uint64_t a = 0;
        if (!mica_gguf_meta_get_u64(m, "general.alignment", &a))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "general.alignment must be a non-negative integer (it is a %s)",
                                 mica_gguf_type_name(akv->type));
        if (a == 0 || (a & (a - 1)) != 0)
            return mica_diag_set(
                d, MICA_ERR_INVALID,
                "general.alignment is %" PRIu64 " (must be a nonzero power of two)", a);
        m->alignment = a;
    }
    return MICA_OK;
}

mica_status_t mica_gguf_meta_parse(const uint8_t *base, uint64_t size, mica_gguf_meta_t **out_meta,
                                   mica_diag_t *d)
{
    *out_meta = NULL;
    if (!base && size > 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "no bytes given");
    mica_gguf_meta_t *m = calloc(1, sizeof *m);
    if (!m)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    m->base = base;
    m->size = size;
    mica_status_t s = parse(m, d);
    if (s != MICA_OK) {
        mica_gguf_meta_release(m);
        return s;
    }
    *out_meta = m;
    return MICA_OK;
}

mica_status_t mica_gguf_meta_open(const char *path, mica_gguf_meta_t **out_meta, mica_diag_t *d)
{
    *out_meta = NULL;
    mica_file_map_t map;
    MICA_TRY(mica_file_map_open(path, &map, d));
    mica_status_t s = mica_gguf_meta_parse(map.ptr, map.len, out_meta, d);
    if (s != MICA_OK)
        mica_file_map_release(&map);
    else
        (*out_meta)->map = map;
    return s;
}

void mica_gguf_meta_release(mica_gguf_meta_t *m)
{
    if (!m)
        return;
    if (m->kv)
        for (uint64_t i = 0; i < m->n_kv; i++)
            value_free(&m->kv[i]);
    free(m->kv);
    mica_gguf_index_deinit(&m->index);
    mica_file_map_release(&m->map);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

uint32_t mica_gguf_meta_version(const mica_gguf_meta_t *m)
{
    return m->version;
}

uint64_t mica_gguf_meta_alignment(const mica_gguf_meta_t *m)
{
    return m->alignment;
}

uint64_t mica_gguf_meta_tensor_count(const mica_gguf_meta_t *m)
{
    return m->n_tensors;
}

uint64_t mica_gguf_meta_end(const mica_gguf_meta_t *m)
{
    return m->end;
}

uint64_t mica_gguf_meta_kv_count(const mica_gguf_meta_t *m)
{
    return m->n_kv;
}

const mica_gguf_kv_t *mica_gguf_meta_kv_at(const mica_gguf_meta_t *m, uint64_t i)
{
    return i < m->n_kv ? &m->kv[i].kv : NULL;
}

const mica_gguf_kv_t *mica_gguf_meta_find(const mica_gguf_meta_t *m, const char *key)
{
    if (m->n_kv == 0 || !key)
        return NULL;
    uint64_t i = mica_gguf_index_find(&m->index, key, strlen(key));
    return i != UINT64_MAX ? &m->kv[i].kv : NULL;
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

bool mica_gguf_meta_get_u64(const mica_gguf_meta_t *m, const char *key, uint64_t *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_meta_find(m, key);
    bool neg;
    uint64_t mag;
    if (!kv || !read_int(kv->type, kv->data, &neg, &mag) || neg)
        return false;
    *out = mag;
    return true;
}

bool mica_gguf_meta_get_i64(const mica_gguf_meta_t *m, const char *key, int64_t *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_meta_find(m, key);
    bool neg;
    uint64_t mag;
    if (!kv || !read_int(kv->type, kv->data, &neg, &mag))
        return false;
    return int_to_i64(neg, mag, out);
}

bool mica_gguf_meta_get_f64(const mica_gguf_meta_t *m, const char *key, double *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_meta_find(m, key);
    return kv && read_float(kv->type, kv->data, out);
}

bool mica_gguf_meta_get_bool(const mica_gguf_meta_t *m, const char *key, bool *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_meta_find(m, key);
    if (!kv || kv->type != MICA_GGUF_BOOL)
        return false;
    *out = kv->data[0] != 0;
    return true;
}

bool mica_gguf_meta_get_str(const mica_gguf_meta_t *m, const char *key, mica_gguf_str_t *out)
{
    const mica_gguf_kv_t *kv = mica_gguf_meta_find(m, key);
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
