/* GGUF v3 writer (ir/gguf_write.h). Layout written:
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv
 *   n_kv x (string key, u32 type, value)          strings: u64 len + bytes
 *   n_tensors x (string name, u32 n_dims, n_dims x u64 ne, u32 ggml type,
 *                u64 offset from the data section)
 *   zero padding to the alignment, then the tensors, each at its offset.
 * All integers little-endian.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write.h"

#define MAX_KEY 255
#define MAX_NAME 63

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf_t;

typedef struct tensor_info {
    char name[MAX_NAME + 1];
    uint32_t ggml_type;
    int32_t n_dims;
    int64_t ne[4];
    uint64_t offset; /* from the data section */
    uint64_t nbytes;
} tensor_info_t;

struct mica_gguf_writer {
    char *path, *tmp_path;
    FILE *f;
    mica_status_t status; /* first error, sticky */
    bool started, done;
    bool tmp_live;        /* the temporary file exists and is ours to remove */
    buf_t kv;             /* encoded key/value pairs */
    uint64_t n_kv;
    char **keys;          /* [n_kv] copies, for the duplicate check */
    size_t keys_cap;
    tensor_info_t *tensors;
    uint64_t n_tensors, tensors_cap;
    uint64_t data_size;   /* aligned end of the last declared tensor */
    uint64_t cur;         /* tensor being written */
    uint64_t cur_done;    /* its bytes written so far */
};

static uint32_t ggml_type_of(mica_dtype_t t)
{
    switch (t) {
    case MICA_DTYPE_F32: return 0;
    case MICA_DTYPE_F16: return 1;
    case MICA_DTYPE_Q4_0: return 2;
    case MICA_DTYPE_Q4_1: return 3;
    case MICA_DTYPE_Q5_0: return 6;
    case MICA_DTYPE_Q5_1: return 7;
    case MICA_DTYPE_Q8_0: return 8;
    case MICA_DTYPE_Q2_K: return 10;
    case MICA_DTYPE_Q3_K: return 11;
    case MICA_DTYPE_Q4_K: return 12;
    case MICA_DTYPE_Q5_K: return 13;
    case MICA_DTYPE_Q6_K: return 14;
    case MICA_DTYPE_I8: return 24;
    case MICA_DTYPE_I32: return 26;
    case MICA_DTYPE_BF16: return 30;
    default: return UINT32_MAX;
    }
}

/* ---- failure: record once, remove the temporary file ---- */

static void drop_tmp(mica_gguf_writer_t *w)
{
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    if (w->tmp_live)
        unlink(w->tmp_path);
    w->tmp_live = false;
}

static mica_status_t fail_io(mica_gguf_writer_t *w, mica_diag_t *d, const char *what, int err)
{
    drop_tmp(w);
    w->status = MICA_ERR_IO;
    return mica_diag_set(d, MICA_ERR_IO, "%s: %s", what, strerror(err));
}

/* Sticky state check at the top of every call. */
static mica_status_t usable(const mica_gguf_writer_t *w, bool before_data, mica_diag_t *d)
{
    if (!w)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: NULL writer");
    if (w->status != MICA_OK)
        return mica_diag_set(d, w->status, "gguf writer: an earlier call failed");
    if (w->done)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: already finished");
    if (before_data && w->started)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "gguf writer: metadata and tensors must come before tensor data");
    return MICA_OK;
}

/* ---- the in-memory metadata buffer ---- */

static bool buf_put(buf_t *b, const void *p, size_t n)
{
    if (n > SIZE_MAX / 2 - b->len)
        return false;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

static bool buf_u32(buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return buf_put(b, x, 4);
}

static bool buf_u64(buf_t *b, uint64_t v)
{
    return buf_u32(b, (uint32_t)v) && buf_u32(b, (uint32_t)(v >> 32));
}

static bool buf_str(buf_t *b, const char *s, size_t n)
{
    return buf_u64(b, n) && buf_put(b, s, n);
}

/* Checks the key, records it, and encodes "key, type" into the buffer. */
static mica_status_t kv_begin(mica_gguf_writer_t *w, const char *key, mica_gguf_type_t type,
                              mica_diag_t *d)
{
    MICA_TRY(usable(w, true, d));
    if (!key || !key[0])
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: empty metadata key");
    size_t n = strlen(key);
    if (n > MAX_KEY)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: metadata key of %zu bytes", n);
    if (!strcmp(key, "general.alignment"))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "gguf writer: general.alignment is set by the writer");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: metadata key %s given twice",
                                 key);
    if (w->n_kv == w->keys_cap) {
        size_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k)
            return mica_diag_set(d, MICA_ERR_NOMEM, "gguf writer: out of memory");
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = malloc(n + 1);
    if (!copy || !buf_str(&w->kv, key, n) || !buf_u32(&w->kv, (uint32_t)type)) {
        free(copy);
        w->status = MICA_ERR_NOMEM;
        return mica_diag_set(d, MICA_ERR_NOMEM, "gguf writer: out of memory for metadata");
    }
    memcpy(copy, key, n + 1);
    w->keys[w->n_kv++] = copy;
    return MICA_OK;
}

static mica_status_t kv_done(mica_gguf_writer_t *w, bool ok, mica_diag_t *d)
{
    if (ok)
        return MICA_OK;
    w->status = MICA_ERR_NOMEM;
    return mica_diag_set(d, MICA_ERR_NOMEM, "gguf writer: out of memory for metadata");
}

mica_status_t mica_gguf_writer_add_u32(mica_gguf_writer_t *w, const char *key, uint32_t v,
                                       mica_diag_t *d)
{
    MICA_TRY(kv_begin(w, key, MICA_GGUF_UINT32, d));
    return kv_done(w, buf_u32(&w->kv, v), d);
}

mica_status_t mica_gguf_writer_add_i32(mica_gguf_writer_t *w, const char *key, int32_t v,
                                       mica_diag_t *d)
{
    MICA_TRY(kv_begin(w, key, MICA_GGUF_INT32, d));
    return kv_done(w, buf_u32(&w->kv, (uint32_t)v), d);
}

mica_status_t mica_gguf_writer_add_f32(mica_gguf_writer_t *w, const char *key, float v,
                                       mica_diag_t *d)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    MICA_TRY(kv_begin(w, key, MICA_GGUF_FLOAT32, d));
    return kv_done(w, buf_u32(&w->kv, bits), d);
}

mica_status_t mica_gguf_writer_add_bool(mica_gguf_writer_t *w, const char *key, bool v,
                                        mica_diag_t *d)
{
    uint8_t b = v ? 1 : 0;
    MICA_TRY(kv_begin(w, key, MICA_GGUF_BOOL, d));
    return kv_done(w, buf_put(&w->kv, &b, 1), d);
}

mica_status_t mica_gguf_writer_add_str(mica_gguf_writer_t *w, const char *key, const char *v,
                                       mica_diag_t *d)
{
    if (!v)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: NULL string for %s",
                             key ? key : "(null)");
    MICA_TRY(kv_begin(w, key, MICA_GGUF_STRING, d));
    return kv_done(w, buf_str(&w->kv, v, strlen(v)), d);
}

static mica_status_t array_begin(mica_gguf_writer_t *w, const char *key, mica_gguf_type_t elem,
                                 const void *v, uint64_t n, mica_diag_t *d)
{
    if (!v && n)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: NULL array for %s",
                             key ? key : "(null)");
    MICA_TRY(kv_begin(w, key, MICA_GGUF_ARRAY, d));
    return kv_done(w, buf_u32(&w->kv, (uint32_t)elem) && buf_u64(&w->kv, n), d);
}

mica_status_t mica_gguf_writer_add_str_array(mica_gguf_writer_t *w, const char *key,
                                             const char *const *v, const size_t *lens, uint64_t n,
                                             mica_diag_t *d)
{
    for (uint64_t i = 0; v && i < n; i++)
        if (!v[i])
            return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: NULL string %llu in %s",
                                 (unsigned long long)i, key ? key : "(null)");
    MICA_TRY(array_begin(w, key, MICA_GGUF_STRING, v, n, d));
    bool ok = true;
    for (uint64_t i = 0; ok && i < n; i++)
        ok = buf_str(&w->kv, v[i], lens ? lens[i] : strlen(v[i]));
    return kv_done(w, ok, d);
}

mica_status_t mica_gguf_writer_add_i32_array(mica_gguf_writer_t *w, const char *key,
                                             const int32_t *v, uint64_t n, mica_diag_t *d)
{
    MICA_TRY(array_begin(w, key, MICA_GGUF_INT32, v, n, d));
    bool ok = true;
    for (uint64_t i = 0; ok && i < n; i++)
        ok = buf_u32(&w->kv, (uint32_t)v[i]);
    return kv_done(w, ok, d);
}

mica_status_t mica_gguf_writer_add_f32_array(mica_gguf_writer_t *w, const char *key,
                                             const float *v, uint64_t n, mica_diag_t *d)
{
    MICA_TRY(array_begin(w, key, MICA_GGUF_FLOAT32, v, n, d));
    bool ok = true;
    for (uint64_t i = 0; ok && i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        ok = buf_u32(&w->kv, bits);
    }
    return kv_done(w, ok, d);
}

/* ---- tensors ---- */

static uint64_t align_up(uint64_t x)
{
    return (x + MICA_GGUF_WRITE_ALIGNMENT - 1) / MICA_GGUF_WRITE_ALIGNMENT *
           MICA_GGUF_WRITE_ALIGNMENT;
}

mica_status_t mica_gguf_writer_add_tensor(mica_gguf_writer_t *w, const char *name,
                                          mica_dtype_t dtype, int32_t n_dims, const int64_t *ne,
                                          mica_diag_t *d)
{
    MICA_TRY(usable(w, true, d));
    if (!name || !name[0] || strlen(name) > MAX_NAME)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: tensor name must be 1..%d bytes",
                             MAX_NAME);
    uint32_t gt = ggml_type_of(dtype);
    if (gt == UINT32_MAX)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "gguf writer: tensor %s: type %s has no GGUF id",
                             name, mica_dtype_name(dtype) ? mica_dtype_name(dtype) : "?");
    if (n_dims < 1 || n_dims > 4 || !ne)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: tensor %s: %d dims", name,
                             (int)n_dims);
    uint64_t elems = 1;
    for (int32_t i = 0; i < n_dims; i++) {
        if (ne[i] < 1)
            return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: tensor %s: bad size ne[%d] = %lld",
                                 name, (int)i, (long long)ne[i]);
        if ((uint64_t)ne[i] > (UINT64_C(1) << 50) / elems)
            return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: tensor %s is too large", name);
        elems *= (uint64_t)ne[i];
    }
    int64_t row = mica_dtype_row_bytes(dtype, ne[0]);
    if (row <= 0)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "gguf writer: tensor %s: row of %lld is not a multiple of the %s block",
                             name, (long long)ne[0], mica_dtype_name(dtype));
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name))
            return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: tensor %s declared twice", name);
    if (w->n_tensors == w->tensors_cap) {
        uint64_t cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        tensor_info_t *t = realloc(w->tensors, cap * sizeof *t);
        if (!t)
            return mica_diag_set(d, MICA_ERR_NOMEM, "gguf writer: out of memory");
        w->tensors = t;
        w->tensors_cap = cap;
    }
    tensor_info_t *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ggml_type = gt;
    t->n_dims = n_dims;
    for (int i = 0; i < 4; i++)
        t->ne[i] = i < n_dims ? ne[i] : 1;
    t->nbytes = (uint64_t)row * (elems / (uint64_t)ne[0]);
    t->offset = w->data_size;
    w->data_size = align_up(t->offset + t->nbytes);
    return MICA_OK;
}

uint64_t mica_gguf_writer_tensor_nbytes(const mica_gguf_writer_t *w, uint64_t i)
{
    return w && i < w->n_tensors ? w->tensors[i].nbytes : 0;
}

/* ---- the file ---- */

mica_status_t mica_gguf_writer_create(const char *path, mica_gguf_writer_t **out_w,
                                      mica_diag_t *d)
{
    if (!out_w)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: NULL output");
    *out_w = NULL;
    if (!path || !path[0])
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: empty path");
    mica_gguf_writer_t *w = calloc(1, sizeof *w);
    size_t n = strlen(path);
    if (w) {
        w->path = malloc(n + 1);
        w->tmp_path = malloc(n + 12);
    }
    if (!w || !w->path || !w->tmp_path) {
        mica_gguf_writer_release(w);
        return mica_diag_set(d, MICA_ERR_NOMEM, "gguf writer: out of memory");
    }
    memcpy(w->path, path, n + 1);
    snprintf(w->tmp_path, n + 12, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(w->tmp_path);
    w->tmp_live = fd >= 0;
    if (fd < 0) {
        int err = errno;
        mica_gguf_writer_release(w);
        return mica_diag_set(d, MICA_ERR_IO, "cannot create a temporary file beside it: %s",
                             strerror(err));
    }
    /* mkstemp makes 0600; a model file is as readable as any other file */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(w->f = fdopen(fd, "wb"))) {
        int err = errno;
        if (!w->f)
            close(fd);
        fail_io(w, d, "cannot open the temporary file", err);
        mica_gguf_writer_release(w);
        return MICA_ERR_IO;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    *out_w = w;
    return MICA_OK;
}

static mica_status_t put(mica_gguf_writer_t *w, const void *p, size_t n, mica_diag_t *d)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return fail_io(w, d, "write failed", errno ? errno : EIO);
    return MICA_OK;
}

static mica_status_t put_zeros(mica_gguf_writer_t *w, uint64_t n, mica_diag_t *d)
{
    static const uint8_t zeros[MICA_GGUF_WRITE_ALIGNMENT];
    return put(w, zeros, (size_t)n, d);
}

/* Header, metadata (with general.alignment last), tensor infos, padding. */
static mica_status_t write_header(mica_gguf_writer_t *w, mica_diag_t *d)
{
    buf_t h = {0};
    bool ok = buf_put(&h, "GGUF", 4) && buf_u32(&h, 3) && buf_u64(&h, w->n_tensors) &&
              buf_u64(&h, w->n_kv + 1) && buf_put(&h, w->kv.p, w->kv.len) &&
              buf_str(&h, "general.alignment", 17) && buf_u32(&h, MICA_GGUF_UINT32) &&
              buf_u32(&h, MICA_GGUF_WRITE_ALIGNMENT);
    for (uint64_t i = 0; ok && i < w->n_tensors; i++) {
        const tensor_info_t *t = &w->tensors[i];
        ok = buf_str(&h, t->name, strlen(t->name)) && buf_u32(&h, (uint32_t)t->n_dims);
        for (int32_t k = 0; ok && k < t->n_dims; k++)
            ok = buf_u64(&h, (uint64_t)t->ne[k]);
        ok = ok && buf_u32(&h, t->ggml_type) && buf_u64(&h, t->offset);
    }
    if (!ok) {
        free(h.p);
        w->status = MICA_ERR_NOMEM;
        return mica_diag_set(d, MICA_ERR_NOMEM, "gguf writer: out of memory for the header");
    }
    mica_status_t s = put(w, h.p, h.len, d);
    uint64_t len = h.len;
    free(h.p);
    MICA_TRY(s);
    w->started = true;
    free(w->kv.p);
    w->kv = (buf_t){0};
    return put_zeros(w, align_up(len) - len, d);
}

/* Moves to the next tensor with bytes left, padding after each one done. */
static mica_status_t advance(mica_gguf_writer_t *w, mica_diag_t *d)
{
    while (w->cur < w->n_tensors && w->cur_done == w->tensors[w->cur].nbytes) {
        const tensor_info_t *t = &w->tensors[w->cur];
        MICA_TRY(put_zeros(w, align_up(t->offset + t->nbytes) - (t->offset + t->nbytes), d));
        w->cur++;
        w->cur_done = 0;
    }
    return MICA_OK;
}

mica_status_t mica_gguf_writer_write(mica_gguf_writer_t *w, const void *bytes, size_t n,
                                     mica_diag_t *d)
{
    MICA_TRY(usable(w, false, d));
    if (!bytes && n)
        return mica_diag_set(d, MICA_ERR_INVALID, "gguf writer: NULL data");
    if (!w->started)
        MICA_TRY(write_header(w, d));
    const uint8_t *p = bytes;
    while (n) {
        MICA_TRY(advance(w, d));
        if (w->cur >= w->n_tensors)
            return mica_diag_set(d, MICA_ERR_RANGE,
                                 "gguf writer: %zu bytes of data past the last tensor", n);
        uint64_t left = w->tensors[w->cur].nbytes - w->cur_done;
        size_t k = left < n ? (size_t)left : n;
        MICA_TRY(put(w, p, k, d));
        w->cur_done += k;
        p += k;
        n -= k;
    }
    return advance(w, d);
}

mica_status_t mica_gguf_writer_finish(mica_gguf_writer_t *w, mica_diag_t *d)
{
    MICA_TRY(usable(w, false, d));
    if (!w->started)
        MICA_TRY(write_header(w, d));
    MICA_TRY(advance(w, d));
    if (w->cur < w->n_tensors) {
        mica_status_t s = mica_diag_set(d, MICA_ERR_INVALID,
                                        "gguf writer: tensor %s has %llu of its %llu bytes",
                                        w->tensors[w->cur].name, (unsigned long long)w->cur_done,
                                        (unsigned long long)w->tensors[w->cur].nbytes);
        drop_tmp(w);
        w->status = s;
        return s;
    }
    if (fflush(w->f) != 0)
        return fail_io(w, d, "write failed", errno);
    if (fsync(fileno(w->f)) != 0 && errno != EINVAL && errno != EROFS)
        return fail_io(w, d, "sync failed", errno);
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0)
        return fail_io(w, d, "close failed", errno);
    if (rename(w->tmp_path, w->path) != 0)
        return fail_io(w, d, "cannot rename the temporary file onto it", errno);
    w->tmp_live = false;
    w->done = true;
    return MICA_OK;
}

void mica_gguf_writer_release(mica_gguf_writer_t *w)
{
    if (!w)
        return;
    drop_tmp(w);
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->kv.p);
    free(w->tensors);
    free(w->path);
    free(w->tmp_path);
    free(w);
}
