/* The artifact's checksum: FNV-1a 64 over a file's bytes, as `mica
 * compile` writes it into the manifest ("file NAME SIZE CHECKSUM", 16 hex
 * digits) and the loaders check it. */
#ifndef MICA_CHECKSUM_H
#define MICA_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* The FNV-1a 64 offset basis: the checksum of no bytes. */
#define MICA_CHECKSUM_INIT UINT64_C(0xcbf29ce484222325)

/* The checksum h of some bytes, extended by p[0..n): feeding a file in any
 * number of pieces gives the same value as feeding it whole. */
uint64_t mica_checksum_update(uint64_t h, const void *p, size_t n);

/* Size and checksum of the file at path, read in 1 MiB pieces (one buffer
 * for the call, freed before it returns). Fails with MICA_ERR_IO naming
 * path when it cannot be opened or read. */
mica_status_t mica_checksum_file(const char *path, uint64_t *out_size, uint64_t *out_sum,
                                 mica_diag_t *d);

#endif
