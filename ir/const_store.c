/* The constant store (ir/const_store.h): blobs carved from chunks that are
 * never reallocated, so addresses handed out stay valid; a blob bigger than
 * a quarter of the usual chunk gets a chunk of its own. */
#include "const_store.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES ((uint64_t)4 << 20) /* the usual chunk */

typedef struct chunk {
    struct chunk *next;
    unsigned char *base; /* 64-byte aligned start of the usable bytes */
    uint64_t cap, used;  /* bytes */
    void *raw;           /* what malloc returned */
} chunk_t;

typedef struct blob {
    void *data;
    uint64_t nbytes;
    const void *key;
    char tag[MICA_CONST_STORE_TAG_MAX]; /* "" when none */
    bool has_key;
} blob_t;

struct mica_const_store {
    chunk_t *chunks; /* newest first */
    blob_t *blobs;   /* [n_blobs] in order of addition */
    int64_t n_blobs, cap_blobs;
    uint64_t bytes;
    int64_t refs; /* holders: the creator, each graph that points into it */
};

mica_status_t mica_const_store_create(mica_const_store_t **out_store, mica_diag_t *d)
{
    mica_const_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for the constant store");
    s->refs = 1;
    *out_store = s;
    return MICA_OK;
}

mica_const_store_t *mica_const_store_retain(mica_const_store_t *s)
{
    if (s)
        s->refs++;
    return s;
}

void mica_const_store_release(mica_const_store_t *s)
{
    if (!s || --s->refs > 0)
        return;
    for (chunk_t *c = s->chunks, *next; c; c = next) {
        next = c->next;
        free(c->raw);
        free(c);
    }
    free(s->blobs);
    free(s);
}

static chunk_t *chunk_new(uint64_t cap)
{
    if (cap > SIZE_MAX - MICA_CONST_STORE_ALIGN)
        return NULL;
    chunk_t *c = calloc(1, sizeof *c);
    void *raw = c ? calloc(1, (size_t)cap + MICA_CONST_STORE_ALIGN) : NULL;
    if (!raw) {
        free(c);
        return NULL;
    }
    uintptr_t p = (uintptr_t)raw;
    c->raw = raw;
    c->base = (unsigned char *)raw + (MICA_CONST_STORE_ALIGN - p % MICA_CONST_STORE_ALIGN) %
                                         MICA_CONST_STORE_ALIGN;
    c->cap = cap;
    return c;
}

static uint64_t align_up(uint64_t x)
{
    return (x + MICA_CONST_STORE_ALIGN - 1) / MICA_CONST_STORE_ALIGN * MICA_CONST_STORE_ALIGN;
}

mica_status_t mica_const_store_add(mica_const_store_t *s, const void *key, const char *tag,
                                   uint64_t nbytes, void **out_data, mica_diag_t *d)
{
    *out_data = NULL;
    if (nbytes == 0 || nbytes > UINT64_MAX / 2)
        return mica_diag_set(d, MICA_ERR_INVALID, "constant store: a blob of %llu bytes",
                             (unsigned long long)nbytes);
    if (tag && strlen(tag) >= MICA_CONST_STORE_TAG_MAX)
        return mica_diag_set(d, MICA_ERR_INVALID, "constant store: tag '%s' is too long", tag);
    if ((key || tag) && mica_const_store_find(s, key, tag, NULL))
        return mica_diag_set(d, MICA_ERR_INVALID, "constant store: a blob tagged '%s' of this "
                             "source exists", tag ? tag : "");
    if (s->n_blobs == s->cap_blobs) {
        int64_t cap = s->cap_blobs ? 2 * s->cap_blobs : 64;
        blob_t *b = realloc(s->blobs, (size_t)cap * sizeof *b); /* records only, never data */
        if (!b)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for the constant store");
        s->blobs = b;
        s->cap_blobs = cap;
    }
    uint64_t need = align_up(nbytes);
    chunk_t *c = s->chunks;
    if (!c || c->cap - c->used < need) {
        chunk_t *fresh = chunk_new(need > CHUNK_BYTES / 4 ? need : CHUNK_BYTES);
        if (!fresh)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a constant of %llu bytes",
                                 (unsigned long long)nbytes);
        if (need > CHUNK_BYTES / 4 && c) { /* a big blob's chunk goes behind the current one */
            fresh->next = c->next;
            c->next = fresh;
        } else {
            fresh->next = c;
            s->chunks = fresh;
        }
        c = fresh;
    }
    blob_t *b = &s->blobs[s->n_blobs++];
    memset(b, 0, sizeof *b);
    b->data = c->base + c->used;
    b->nbytes = nbytes;
    b->key = key;
    b->has_key = key || tag;
    if (tag)
        memcpy(b->tag, tag, strlen(tag) + 1);
    c->used += need;
    s->bytes += nbytes;
    *out_data = b->data;
    return MICA_OK;
}

void *mica_const_store_find(const mica_const_store_t *s, const void *key, const char *tag,
                            uint64_t *out_nbytes)
{
    if (out_nbytes)
        *out_nbytes = 0;
    if (!s || (!key && !tag))
        return NULL;
    for (int64_t i = s->n_blobs - 1; i >= 0; i--) {
        const blob_t *b = &s->blobs[i];
        if (b->has_key && b->key == key && strcmp(b->tag, tag ? tag : "") == 0) {
            if (out_nbytes)
                *out_nbytes = b->nbytes;
            return b->data;
        }
    }
    return NULL;
}

int64_t mica_const_store_count(const mica_const_store_t *s)
{
    return s ? s->n_blobs : 0;
}

const void *mica_const_store_blob(const mica_const_store_t *s, int64_t i, uint64_t *out_nbytes)
{
    if (!s || i < 0 || i >= s->n_blobs) {
        if (out_nbytes)
            *out_nbytes = 0;
        return NULL;
    }
    if (out_nbytes)
        *out_nbytes = s->blobs[i].nbytes;
    return s->blobs[i].data;
}

uint64_t mica_const_store_bytes(const mica_const_store_t *s)
{
    return s ? s->bytes : 0;
}
