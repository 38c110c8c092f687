/* A whole file mapped read-only: how the device reads weights.bin and
 * tokenizer.gguf, and the compiler reads model files. */
#ifndef MICA_FILE_MAP_H
#define MICA_FILE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* Caller-owned; ptr is NULL for an empty file (nothing is mapped then). */
typedef struct mica_file_map {
    const uint8_t *ptr; /* the bytes, page aligned */
    uint64_t len;
} mica_file_map_t;

/* Maps the regular file at path (MAP_PRIVATE, PROT_READ). Fails with
 * MICA_ERR_IO and a message that does not repeat the path ("cannot open:
 * No such file or directory", "is a directory", "not a regular file",
 * "cannot map: ..."); *out is then empty and nothing is left open. */
mica_status_t mica_file_map_open(const char *path, mica_file_map_t *out, mica_diag_t *d);
/* Unmaps; an empty map is fine. */
void mica_file_map_release(mica_file_map_t *m);

#endif
