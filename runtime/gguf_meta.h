/* GGUF metadata reader: the header and the key/value section of a GGUF
 * file (versions 2 and 3), bounded and copy-free.
 *
 * The device reads an artifact's tokenizer.gguf with it (tokenizer.* keys
 * and no tensors); the compiler's full reader (ir/gguf.h) parses the same
 * section through it and goes on with the tensor infos. Every count and
 * length read from the file is checked against the bytes that are there
 * before it indexes anything or sizes an allocation: a file that lies gives
 * an error, never a crash. Strings and arrays returned point into the
 * bytes (GGUF strings are NOT NUL-terminated: use the length).
 *
 * Layout (little-endian): "GGUF" u32 version, u64 n_tensors, u64 n_kv,
 * then n_kv x { string key, u32 value type, value }. A string is u64
 * length + bytes; an array is u32 element type, u64 count, then the
 * elements (arrays may hold arrays).
 */
#ifndef MICA_GGUF_META_H
#define MICA_GGUF_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* GGUF metadata value types, numbered as in the file format. */
typedef enum mica_gguf_type {
    MICA_GGUF_UINT8 = 0,
    MICA_GGUF_INT8 = 1,
    MICA_GGUF_UINT16 = 2,
    MICA_GGUF_INT16 = 3,
    MICA_GGUF_UINT32 = 4,
    MICA_GGUF_INT32 = 5,
    MICA_GGUF_FLOAT32 = 6,
    MICA_GGUF_BOOL = 7,
    MICA_GGUF_STRING = 8,
    MICA_GGUF_ARRAY = 9,
    MICA_GGUF_UINT64 = 10,
    MICA_GGUF_INT64 = 11,
    MICA_GGUF_FLOAT64 = 12,
} mica_gguf_type_t;

/* A string inside the file's bytes: not NUL-terminated. */
typedef struct mica_gguf_str {
    const char *ptr;
    uint64_t len;
} mica_gguf_str_t;

/* One metadata key/value. For arrays, `elem_type` and `count` describe the
 * elements; `data` points at the first element's encoding in the file. */
typedef struct mica_gguf_kv {
    mica_gguf_str_t key;
    mica_gguf_type_t type;
    mica_gguf_type_t elem_type; /* arrays only */
    uint64_t count;             /* arrays only */
    const uint8_t *data;        /* the encoded value in the file's bytes */
    uint64_t nbytes;            /* bytes of the encoded value */
} mica_gguf_kv_t;

typedef struct mica_gguf_meta mica_gguf_meta_t;

/* Parses the header and metadata of base[0..size), which the caller keeps
 * alive and unchanged while *out_meta lives (release it with
 * mica_gguf_meta_release). Fails with a one-line message on wrong magic,
 * an unknown version, a truncated entry, counts that cannot fit in the
 * bytes (metadata entries and tensor infos both), unknown value types,
 * arrays nested deeper than 8, a bool that is not 0 or 1, duplicate keys
 * or a bad general.alignment. */
mica_status_t mica_gguf_meta_parse(const uint8_t *base, uint64_t size, mica_gguf_meta_t **out_meta,
                                   mica_diag_t *d);
/* Maps the file at path and parses it as above; the meta owns the mapping.
 * Messages do not repeat the path. */
mica_status_t mica_gguf_meta_open(const char *path, mica_gguf_meta_t **out_meta, mica_diag_t *d);
/* Frees the indexes (and the mapping, if open made one); NULL is fine. */
void mica_gguf_meta_release(mica_gguf_meta_t *m);

uint32_t mica_gguf_meta_version(const mica_gguf_meta_t *m);
/* general.alignment, or GGUF's default 32; a power of two. */
uint64_t mica_gguf_meta_alignment(const mica_gguf_meta_t *m);
/* Tensor infos the header announces (not parsed here). */
uint64_t mica_gguf_meta_tensor_count(const mica_gguf_meta_t *m);
/* Offset of the first byte after the metadata (where tensor infos start). */
uint64_t mica_gguf_meta_end(const mica_gguf_meta_t *m);

uint64_t mica_gguf_meta_kv_count(const mica_gguf_meta_t *m);
const mica_gguf_kv_t *mica_gguf_meta_kv_at(const mica_gguf_meta_t *m, uint64_t i);
/* Entry by key (NUL-terminated), or NULL; O(1). */
const mica_gguf_kv_t *mica_gguf_meta_find(const mica_gguf_meta_t *m, const char *key);

/* Typed getters: false when the key is missing or has another type
 * (integers of any width/sign convert when the value fits). */
bool mica_gguf_meta_get_u64(const mica_gguf_meta_t *m, const char *key, uint64_t *out);
bool mica_gguf_meta_get_i64(const mica_gguf_meta_t *m, const char *key, int64_t *out);
bool mica_gguf_meta_get_f64(const mica_gguf_meta_t *m, const char *key, double *out); /* f32/f64 */
bool mica_gguf_meta_get_bool(const mica_gguf_meta_t *m, const char *key, bool *out);
bool mica_gguf_meta_get_str(const mica_gguf_meta_t *m, const char *key, mica_gguf_str_t *out);

/* Array elements. Strings: index into an array of strings (O(1): parsing
 * indexes string arrays once). Numbers: element i converted. All take only
 * kv pointers obtained from a meta (they use its indexes). */
bool mica_gguf_array_str(const mica_gguf_kv_t *kv, uint64_t i, mica_gguf_str_t *out);
bool mica_gguf_array_f64(const mica_gguf_kv_t *kv, uint64_t i, double *out);
bool mica_gguf_array_i64(const mica_gguf_kv_t *kv, uint64_t i, int64_t *out);
/* Inner array i of an array of arrays (a view owned by the meta, with an
 * empty key), or NULL when kv is not an array of arrays or i is out of
 * range. */
const mica_gguf_kv_t *mica_gguf_array_arr(const mica_gguf_kv_t *kv, uint64_t i);

/* True if the NUL-terminated s equals the GGUF string. */
bool mica_gguf_str_eq(mica_gguf_str_t a, const char *s);
/* Spelling of a metadata value type ("u32", "string", ...), or NULL. */
const char *mica_gguf_type_name(mica_gguf_type_t t);

/* ---- for readers of the rest of a GGUF file (ir/gguf.c) ---------------- */

/* A read position in bytes the caller owns; every read checks what is
 * left first and moves pos only on success. d receives check_fit's line. */
typedef struct mica_gguf_cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    mica_diag_t *d;
} mica_gguf_cursor_t;

bool mica_gguf_cursor_u32(mica_gguf_cursor_t *c, uint32_t *out);
bool mica_gguf_cursor_u64(mica_gguf_cursor_t *c, uint64_t *out);
/* A string (u64 length + bytes). On failure *out_len holds the length read
 * (0 if even that was missing), for the message. */
bool mica_gguf_cursor_str(mica_gguf_cursor_t *c, mica_gguf_str_t *out, uint64_t *out_len);
/* Fails ("truncated: N WHAT cannot fit in the B bytes left after the
 * AFTER") unless n entries of at least min_bytes each fit in what is left. */
mica_status_t mica_gguf_cursor_check_fit(const mica_gguf_cursor_t *c, uint64_t n,
                                         uint64_t min_bytes, const char *what, const char *after);

/* The least bytes one tensor info takes: u64 name length, u32 n_dims, one
 * u64 ne, u32 type, u64 offset. */
#define MICA_GGUF_MIN_TENSOR_BYTES 32u

/* Bytes of a name quoted in a message, and the buffer mica_gguf_show needs. */
#define MICA_GGUF_NAME_SHOWN 64
#define MICA_GGUF_SHOW_BUF (MICA_GGUF_NAME_SHOWN + 4)
/* s for a one-line message, in buf: at most MICA_GGUF_NAME_SHOWN bytes,
 * bytes outside printable ASCII as '?', "..." after a cut. Returns buf. */
const char *mica_gguf_show(char buf[MICA_GGUF_SHOW_BUF], mica_gguf_str_t s);

/* An index of n names (open addressing on FNV-1a): entry i's name comes
 * from name_of(owner, i). Caller-owned; mica_gguf_index_deinit frees it. */
typedef mica_gguf_str_t (*mica_gguf_name_fn)(const void *owner, uint64_t i);
typedef struct mica_gguf_index {
    uint64_t *slots; /* entry index + 1, 0 = empty */
    uint64_t mask;   /* slots - 1, a power of two minus one, >= 2n - 1 */
    mica_gguf_name_fn name_of;
    const void *owner;
} mica_gguf_index_t;

/* Makes room for n names; false when out of memory. */
bool mica_gguf_index_init(mica_gguf_index_t *ix, uint64_t n, mica_gguf_name_fn name_of,
                          const void *owner);
void mica_gguf_index_deinit(mica_gguf_index_t *ix);
/* Adds entry i (at most the n of init): returns UINT64_MAX, or the index
 * of an entry already there with the same name (i is then not added). */
uint64_t mica_gguf_index_add(mica_gguf_index_t *ix, uint64_t i);
/* The entry named p[0..n), or UINT64_MAX. */
uint64_t mica_gguf_index_find(const mica_gguf_index_t *ix, const char *p, uint64_t n);

#endif
