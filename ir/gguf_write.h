/* GGUF writer: a version 3 file written front to back, tensor data
 * streamed one tensor at a time, so a model larger than memory can be
 * written from rows generated on the fly.
 *
 * Use: mica_gguf_writer_create(); add the metadata (mica_gguf_writer_add_*)
 * and declare every tensor (mica_gguf_writer_add_tensor) in the order
 * their data will follow; then mica_gguf_writer_write() each tensor's bytes
 * in that order (in as many pieces as convenient); then
 * mica_gguf_writer_finish(). Metadata and tensor infos are held in memory
 * until the first data byte is written (a vocabulary of 150k tokens is a
 * few MB); tensor data never is.
 *
 * The file is written as a temporary file beside the target (same
 * directory, so the final rename is atomic) and renamed onto the target
 * only by a successful finish. Any failure, including a full disk, and any
 * release before finish remove the temporary file: the target is either
 * the complete new file or untouched.
 *
 * The writer owns `general.alignment` (always 32, ggml's default): it adds
 * the key itself, aligns the data section and every tensor's offset to it,
 * and refuses a caller's key of that name. After the first error every
 * further call fails with the same status (the diag says why once).
 */
#ifndef MICA_GGUF_WRITE_H
#define MICA_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "ir.h"

/* Alignment of the data section and of each tensor, in bytes. */
#define MICA_GGUF_WRITE_ALIGNMENT 32

typedef struct mica_gguf_writer mica_gguf_writer_t;

/* Starts writing `path` (through a temporary file in its directory).
 * Caller releases *out_w with mica_gguf_writer_release. Fails (MICA_ERR_IO,
 * naming the directory) when the temporary file cannot be created. */
mica_status_t mica_gguf_writer_create(const char *path, mica_gguf_writer_t **out_w,
                                      mica_diag_t *d);
/* Frees the writer. Without a successful finish the temporary file is
 * removed and the target is left as it was. NULL is a no-op. */
void mica_gguf_writer_release(mica_gguf_writer_t *w);

/* Metadata, before any tensor data. Keys are NUL-terminated, non-empty,
 * at most 255 bytes and distinct (a repeated key is MICA_ERR_INVALID);
 * values are copied. */
mica_status_t mica_gguf_writer_add_u32(mica_gguf_writer_t *w, const char *key, uint32_t v,
                                       mica_diag_t *d);
mica_status_t mica_gguf_writer_add_i32(mica_gguf_writer_t *w, const char *key, int32_t v,
                                       mica_diag_t *d);
mica_status_t mica_gguf_writer_add_f32(mica_gguf_writer_t *w, const char *key, float v,
                                       mica_diag_t *d);
mica_status_t mica_gguf_writer_add_bool(mica_gguf_writer_t *w, const char *key, bool v,
                                        mica_diag_t *d);
/* A NUL-terminated string value. */
mica_status_t mica_gguf_writer_add_str(mica_gguf_writer_t *w, const char *key, const char *v,
                                       mica_diag_t *d);
/* An array of n strings; lens[i] gives each length (NULL: NUL-terminated). */
mica_status_t mica_gguf_writer_add_str_array(mica_gguf_writer_t *w, const char *key,
                                             const char *const *v, const size_t *lens, uint64_t n,
                                             mica_diag_t *d);
mica_status_t mica_gguf_writer_add_i32_array(mica_gguf_writer_t *w, const char *key,
                                             const int32_t *v, uint64_t n, mica_diag_t *d);
mica_status_t mica_gguf_writer_add_f32_array(mica_gguf_writer_t *w, const char *key,
                                             const float *v, uint64_t n, mica_diag_t *d);

/* Declares the next tensor: name (NUL-terminated, 1..63 bytes, distinct),
 * dtype, and n_dims (1..4) sizes ne[] innermost first (ne[0] = row length,
 * a multiple of the dtype's block). Before any tensor data. */
mica_status_t mica_gguf_writer_add_tensor(mica_gguf_writer_t *w, const char *name,
                                          mica_dtype_t dtype, int32_t n_dims, const int64_t *ne,
                                          mica_diag_t *d);
/* Bytes of the data of a declared tensor (mica_dtype_row_bytes of ne[0]
 * times the other sizes); 0 for an index past the last. */
uint64_t mica_gguf_writer_tensor_nbytes(const mica_gguf_writer_t *w, uint64_t i);

/* Appends n bytes of tensor data. The first call writes the header, the
 * metadata and the tensor infos. Bytes fill the declared tensors in order
 * (a piece may not run past the last tensor: MICA_ERR_RANGE); padding
 * between tensors is written by the writer. */
mica_status_t mica_gguf_writer_write(mica_gguf_writer_t *w, const void *bytes, size_t n,
                                     mica_diag_t *d);

/* Checks that every declared tensor got all its bytes, flushes, syncs and
 * renames the file onto the target. After finish (either result) only
 * release may be called. */
mica_status_t mica_gguf_writer_finish(mica_gguf_writer_t *w, mica_diag_t *d);

#endif
