/* The compiler's constant store: byte blobs that passes create (quantized
 * weights, their scales, packed tiles) and graphs point into.
 *
 * Append-only. Every blob starts on a 64-byte boundary and never moves:
 * the store allocates chunks and never reallocates one that holds data, so
 * a weight node's `data` stays valid until mica_const_store_release frees
 * everything at once. Every graph whose nodes point into a store holds a
 * reference to it (mica_graph_t.consts, carried over by rewrites), so the
 * bytes live as long as any graph that reads them.
 *
 * A blob may carry a key (the source it was derived from, e.g. the weight
 * bytes in the model file) and a short tag (what form of that source it is,
 * e.g. "u4.g32.q"), so a pass running on a second graph finds what it made
 * for the first instead of making it again.
 */
#ifndef MICA_CONST_STORE_H
#define MICA_CONST_STORE_H

#include <stdint.h>

#include "diag.h"

#define MICA_CONST_STORE_ALIGN 64 /* bytes; every blob starts on this boundary */
#define MICA_CONST_STORE_TAG_MAX 32 /* bytes of a tag, NUL included */

typedef struct mica_const_store mica_const_store_t;

/* An empty store with one reference, the caller's (mica_const_store_release). */
mica_status_t mica_const_store_create(mica_const_store_t **out_store, mica_diag_t *d);
/* Adds a reference (a graph whose weights point into the store holds
 * one); returns s. Not thread-safe. */
mica_const_store_t *mica_const_store_retain(mica_const_store_t *s);
/* Drops a reference; the last one frees every blob and the store. NULL is
 * fine. */
void mica_const_store_release(mica_const_store_t *s);

/* A new zeroed blob of nbytes (>= 1) bytes, 64-byte aligned, owned by the
 * store; *out_data is writable until the store is released. key and tag
 * (NULL = none; a tag shorter than MICA_CONST_STORE_TAG_MAX) make it
 * findable by mica_const_store_find; adding a second blob with the same
 * non-NULL key and tag fails (MICA_ERR_INVALID). */
mica_status_t mica_const_store_add(mica_const_store_t *s, const void *key, const char *tag,
                                   uint64_t nbytes, void **out_data, mica_diag_t *d);

/* The blob added with this key and tag, or NULL (then *out_nbytes is 0).
 * out_nbytes may be NULL. */
void *mica_const_store_find(const mica_const_store_t *s, const void *key, const char *tag,
                            uint64_t *out_nbytes);

/* Number of blobs, and blob i in the order they were added (bytes, size). */
int64_t mica_const_store_count(const mica_const_store_t *s);
const void *mica_const_store_blob(const mica_const_store_t *s, int64_t i, uint64_t *out_nbytes);
/* Sum of the blobs' sizes, bytes (alignment padding not counted). */
uint64_t mica_const_store_bytes(const mica_const_store_t *s);

#endif
