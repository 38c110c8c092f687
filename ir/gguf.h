/* GGUF reader: a copy-free, bounds-checked view of a mapped GGUF file
 * (versions 2 and 3).
 *
 * mica_gguf_open() maps the file read-only and parses the header and the
 * metadata (with the runtime's reader, runtime/gguf_meta.h) and the tensor
 * infos. Strings and arrays returned by the
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
#include "gguf_meta.h" /* the metadata types and reader, from the runtime */
#include "ir.h"

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

/* The metadata, for code that takes the runtime's reader (the vocabulary,
 * runtime/vocab.h). Owned by f. */
const mica_gguf_meta_t *mica_gguf_meta(const mica_gguf_t *f);

uint32_t mica_gguf_version(const mica_gguf_t *f);
uint64_t mica_gguf_alignment(const mica_gguf_t *f);

uint64_t mica_gguf_kv_count(const mica_gguf_t *f);
const mica_gguf_kv_t *mica_gguf_kv_at(const mica_gguf_t *f, uint64_t i);
/* Metadata entry by key, or NULL. */
const mica_gguf_kv_t *mica_gguf_find(const mica_gguf_t *f, const char *key);

/* Typed getters: return false when the key is missing or has another type
 * (integers of any width/sign convert when the value fits). The array
 * accessors of runtime/gguf_meta.h work on the entries. */
bool mica_gguf_get_u64(const mica_gguf_t *f, const char *key, uint64_t *out);
bool mica_gguf_get_i64(const mica_gguf_t *f, const char *key, int64_t *out);
bool mica_gguf_get_f64(const mica_gguf_t *f, const char *key, double *out); /* f32/f64 */
bool mica_gguf_get_bool(const mica_gguf_t *f, const char *key, bool *out);
bool mica_gguf_get_str(const mica_gguf_t *f, const char *key, mica_gguf_str_t *out);


uint64_t mica_gguf_tensor_count(const mica_gguf_t *f);
const mica_gguf_tensor_t *mica_gguf_tensor_at(const mica_gguf_t *f, uint64_t i);
/* Tensor by name, or NULL. */
const mica_gguf_tensor_t *mica_gguf_find_tensor(const mica_gguf_t *f, const char *name);


/* Byte offset of the data section from the start of the file (a multiple
 * of the alignment); tensor i's bytes start at this + its offset. */
uint64_t mica_gguf_data_offset(const mica_gguf_t *f);
/* The whole file: *out_size bytes (may be NULL) owned by f. */
const uint8_t *mica_gguf_bytes(const mica_gguf_t *f, uint64_t *out_size);

/* Spelling of a ggml tensor type id ("q4_k", "iq2_xxs", ...), or NULL for
 * an id ggml never assigned. */
const char *mica_gguf_ggml_type_name(uint32_t ggml_type);

#endif
