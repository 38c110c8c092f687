/* GGUF reader: a copy-free, bounds-checked view of a mapped GGUF file
 * (versions 2 and 3).
 *
 * mica_gguf_open() maps the file read-only and parses the header, the
 * metadata and the tensor infos. Strings and arrays returned by the
 * accessors point into the mapping (GGUF strings are NOT NUL-terminated:
 * use the length). Every count and offset read from the file is checked
 * against the file size before it is used to index or to size an
 * allocation; a file that lies gives an error, never a crash.
 */
#ifndef MICA_GGUF_H
#define MICA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "ir.h"

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

/* A string inside the mapping: not NUL-terminated. */
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
    const uint8_t *data;        /* the encoded value in the mapping */
    uint64_t nbytes;            /* bytes of the encoded value */
} mica_gguf_kv_t;

/* One tensor. GGUF dims are innermost-first (ne[0] = row length); `shape`
 * is the same outermost-first, as the IR uses. */
typedef struct mica_gguf_tensor {
    mica_gguf_str_t name;
    int32_t n_dims;
    int64_t ne[4];              /* innermost first, unused dims = 1 */
    mica_dtype_t dtype;         /* mapped from the GGUF type id */
    uint32_t ggml_type;         /* the raw GGUF type id */
    uint64_t offset;            /* from the start of the data section */
    const uint8_t *data;        /* in the mapping */
    uint64_t nbytes;
} mica_gguf_tensor_t;

typedef struct mica_gguf mica_gguf_t;

/* Maps and parses `path`. On success *out_file owns the mapping (release
 * with mica_gguf_close). Fails with a message on any malformed content:
 * wrong magic, unknown version, truncated data, counts that cannot fit in
 * the file, tensors past the end, unknown tensor types (named). */
mica_status_t mica_gguf_open(const char *path, mica_gguf_t **out_file, mica_diag_t *d);
/* Same, over bytes the caller keeps alive (no mapping is made). */
mica_status_t mica_gguf_open_memory(const void *bytes, size_t len, mica_gguf_t **out_file,
                                    mica_diag_t *d);
void mica_gguf_close(mica_gguf_t *f);

uint32_t mica_gguf_version(const mica_gguf_t *f);
uint64_t mica_gguf_alignment(const mica_gguf_t *f);

uint64_t mica_gguf_kv_count(const mica_gguf_t *f);
const mica_gguf_kv_t *mica_gguf_kv_at(const mica_gguf_t *f, uint64_t i);
/* Metadata entry by key, or NULL. */
const mica_gguf_kv_t *mica_gguf_find(const mica_gguf_t *f, const char *key);

/* Typed getters: return false when the key is missing or has another type
 * (integers of any width/sign convert when the value fits). */
bool mica_gguf_get_u64(const mica_gguf_t *f, const char *key, uint64_t *out);
bool mica_gguf_get_i64(const mica_gguf_t *f, const char *key, int64_t *out);
bool mica_gguf_get_f64(const mica_gguf_t *f, const char *key, double *out); /* f32/f64 */
bool mica_gguf_get_bool(const mica_gguf_t *f, const char *key, bool *out);
bool mica_gguf_get_str(const mica_gguf_t *f, const char *key, mica_gguf_str_t *out);

/* Array elements. Strings: index into an array of strings (O(1) after open:
 * the reader indexes string arrays once). Numbers: element i converted. */
bool mica_gguf_array_str(const mica_gguf_kv_t *kv, uint64_t i, mica_gguf_str_t *out);
bool mica_gguf_array_f64(const mica_gguf_kv_t *kv, uint64_t i, double *out);
bool mica_gguf_array_i64(const mica_gguf_kv_t *kv, uint64_t i, int64_t *out);

uint64_t mica_gguf_tensor_count(const mica_gguf_t *f);
const mica_gguf_tensor_t *mica_gguf_tensor_at(const mica_gguf_t *f, uint64_t i);
/* Tensor by name, or NULL. */
const mica_gguf_tensor_t *mica_gguf_find_tensor(const mica_gguf_t *f, const char *name);

/* True if the NUL-terminated s equals the GGUF string. */
bool mica_gguf_str_eq(mica_gguf_str_t a, const char *s);

/* Inner array i of an array of arrays (a view owned by the file, with an
 * empty key), or NULL when kv is not an array of arrays or i is out of
 * range. The array accessors above work on it. All array accessors take
 * only kv pointers obtained from this reader (they use its indexes). */
const mica_gguf_kv_t *mica_gguf_array_arr(const mica_gguf_kv_t *kv, uint64_t i);

/* Byte offset of the data section from the start of the file (a multiple
 * of the alignment); tensor i's bytes start at this + its offset. */
uint64_t mica_gguf_data_offset(const mica_gguf_t *f);
/* The whole file: *out_size bytes (may be NULL) owned by f. */
const uint8_t *mica_gguf_bytes(const mica_gguf_t *f, uint64_t *out_size);

/* Spelling of a metadata value type ("u32", "string", ...), or NULL. */
const char *mica_gguf_type_name(mica_gguf_type_t t);
/* Spelling of a ggml tensor type id ("q4_k", "iq2_xxs", ...), or NULL for
 * an id ggml never assigned. */
const char *mica_gguf_ggml_type_name(uint32_t ggml_type);

#endif
