/* mica compile: model -> scheduled program -> artifact directory, and the
 * host-side reader of that directory. */
#include "artifact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checksum.h"
#include "gguf_write.h"
#include "emit.h"
#include "memplan.h"
#include "mica_abi.h"
#include "model.h"
#include "rewrite.h"
#include "target.h"

#define MAX_DIR 3800 /* bytes of a directory path we handle */

static const char *const artifact_files[] = {"prefill.ir", "decode.ir", "weights.bin",
                                             "tokenizer.gguf"};
enum { N_FILES = sizeof artifact_files / sizeof artifact_files[0] };

/* ------------------------------------------------------------------------ */
/* SIGINT / SIGTERM while writing: stop, clean up, fail                      */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct signals {
    struct sigaction old_int, old_term;
} signals_t;

static void signals_catch(signals_t *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &s->old_int);
    sigaction(SIGTERM, &sa, &s->old_term);
}

static void signals_restore(signals_t *s)
{
    sigaction(SIGINT, &s->old_int, NULL);
    sigaction(SIGTERM, &s->old_term, NULL);
}

/* ------------------------------------------------------------------------ */
/* files in the temporary directory                                          */

typedef struct out_file {
    int fd;
    char path[MAX_DIR + 64];
    const char *name;
    uint64_t size, sum;
} out_file_t;

static mica_status_t file_open(out_file_t *f, const char *dir, const char *name, mica_diag_t *d)
{
    memset(f, 0, sizeof *f);
    f->name = name;
    f->sum = MICA_CHECKSUM_INIT;
    snprintf(f->path, sizeof f->path, "%s/%s", dir, name);
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (f->fd < 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot create %s: %s", f->path, strerror(errno));
    return MICA_OK;
}

static mica_status_t file_write(out_file_t *f, const void *p, size_t n, mica_diag_t *d)
{
    if (interrupted)
        return mica_diag_set(d, MICA_ERR_IO, "interrupted");
    const unsigned char *b = p;
    f->sum = mica_checksum_update(f->sum, p, n);
    f->size += n;
    while (n > 0) {
        ssize_t w = write(f->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return mica_diag_set(d, MICA_ERR_IO, "writing %s: %s", f->path,
                                 w < 0 ? strerror(errno) : "short write");
        b += w;
        n -= (size_t)w;
    }
    return MICA_OK;
}

static mica_status_t file_zeros(out_file_t *f, uint64_t n, mica_diag_t *d)
{
    static const unsigned char zeros[64];
    while (n > 0) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        MICA_TRY(file_write(f, zeros, k, d));
        n -= k;
    }
    return MICA_OK;
}

static mica_status_t file_close(out_file_t *f, mica_diag_t *d)
{
    if (f->fd < 0)
        return MICA_OK;
    int rc = fsync(f->fd);
    int err = errno;
    if (close(f->fd) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    f->fd = -1;
    if (rc != 0)
        return mica_diag_set(d, MICA_ERR_IO, "writing %s: %s", f->path, strerror(err));
    return MICA_OK;
}

/* Removes dir and the files it holds (a flat directory). */
static void remove_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    if (dp) {
        struct dirent *e;
        char path[MAX_DIR + 300];
        while ((e = readdir(dp))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(dp);
    }
    rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* what the program needs                                                    */

static uint64_t type_bytes(const mica_type_t *t)
{
    int64_t n = mica_type_numel(t), be = mica_dtype_block_elems(t->dtype);
    return (uint64_t)((n + be - 1) / be * mica_dtype_block_bytes(t->dtype));
}

/* A weight read by the graphs: the same name in both graphs is one blob. */
typedef struct weight_ref {
    const char *name;
    const void *data;
    uint64_t nbytes;
    uint64_t offset; /* in weights.bin */
    bool table_only; /* read only as an embedding table */
} weight_ref_t;

typedef struct weight_set {
    weight_ref_t *w;
    int64_t n, cap;
} weight_set_t;

/* Weight node i of g into ws (the same name in both graphs is one blob). */
static mica_status_t collect_weight(const mica_graph_t *g, const mica_uses_t *uses, int32_t i,
                                    weight_set_t *ws, mica_diag_t *d)
{
    const mica_node_t *n = g->nodes[i];
    if (n->op != MICA_OP_WEIGHT)
        return MICA_OK;
    /* read only as the table of embedding ops? */
    int32_t n_uses = 0;
    const mica_use_t *u = mica_uses_of(uses, i, &n_uses);
    bool table_only = true;
    for (int32_t k = 0; k < n_uses; k++)
        table_only &= g->nodes[u[k].node]->op == MICA_OP_EMBEDDING && u[k].operand == 0;
    const char *name = mica_node_name(n);
    weight_ref_t *found = NULL;
    for (int64_t k = 0; k < ws->n && !found; k++)
        if (!strcmp(ws->w[k].name, name))
            found = &ws->w[k];
    if (found) {
        if (found->data != n->data || found->nbytes != n->nbytes)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "two different weights are named '%s'", name);
        found->table_only = found->table_only && table_only;
        return MICA_OK;
    }
    if (!n->data)
        return mica_diag_set(d, MICA_ERR_INVALID, "weight '%s' has no data", name);
    if (ws->n == ws->cap) {
        int64_t cap = ws->cap ? 2 * ws->cap : 256;
        weight_ref_t *m = realloc(ws->w, (size_t)cap * sizeof *m);
        if (!m)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        ws->w = m;
        ws->cap = cap;
    }
    ws->w[ws->n++] = (weight_ref_t){name, n->data, n->nbytes, 0, table_only};
    return MICA_OK;
}

static mica_status_t collect_weights(const mica_graph_t *g, weight_set_t *ws, mica_diag_t *d)
{
    mica_arena_t *arena = NULL;
    mica_uses_t uses;
    if (mica_arena_create(&arena) != MICA_OK)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    mica_status_t s = mica_uses_build(g, arena, &uses, d);
    for (int32_t i = 0; i < g->n_nodes && s == MICA_OK; i++)
        s = collect_weight(g, &uses, i, ws, d);
    mica_arena_release(arena);
    return s;
}
static uint64_t state_bytes(const mica_graph_t *g)
{
    uint64_t sum = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i]->op == MICA_OP_STATE)
            sum += type_bytes(&g->nodes[i]->type);
    return sum;
}

static void memory_of(const mica_program_t *p, const weight_set_t *ws, mica_artifact_memory_t *m)
{
    memset(m, 0, sizeof *m);
    for (int64_t k = 0; k < ws->n; k++) {
        if (ws->w[k].table_only)
            m->embedding += ws->w[k].nbytes;
        else
            m->weights += ws->w[k].nbytes;
    }
    /* one prefill call reads `chunk` rows of the table */
    for (int32_t i = 0; i < p->prefill->n_nodes; i++) {
        const mica_node_t *n = p->prefill->nodes[i];
        if (n->op != MICA_OP_EMBEDDING)
            continue;
        const mica_type_t t = mica_operand_type(p->prefill, &n->inputs[0]);
        uint64_t row = (uint64_t)mica_dtype_row_bytes(t.dtype, t.shape[1]);
        m->embedding_rows += row * (uint64_t)p->chunk;
    }
    int64_t a = mica_memplan_arena_bytes(p->prefill), b = mica_memplan_arena_bytes(p->decode);
    m->arena = (uint64_t)(a > b ? a : b);
    m->kv_cache = state_bytes(p->prefill);
    m->peak = m->weights + m->embedding_rows + m->arena + m->kv_cache;
}

static double mib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0);
}

/* ------------------------------------------------------------------------ */
/* checking the request                                                      */

static const char *const quant_modes[] = {"w4a8", "w8a8", "w4a16", "w8a16", "f16", "f32"};

static bool known_quant(const char *q)
{
    for (size_t i = 0; i < sizeof quant_modes / sizeof quant_modes[0]; i++)
        if (!strcmp(q, quant_modes[i]))
            return true;
    return false;
}

/* KV cache bytes per token of context (f32 keys and values today). */
static uint64_t kv_bytes_per_token(const mica_model_config_t *c)
{
    return 2ull * (uint64_t)c->n_layer * (uint64_t)c->n_head_kv * (uint64_t)c->head_dim * 4u;
}

/* Every matmul weight row must be a multiple of an explicit group. */
static mica_status_t check_group(const mica_gguf_t *f, int32_t group, mica_diag_t *d)
{
    if (group == 0)
        return MICA_OK;
    if (group != 32 && group != 64 && group != 128)
        return mica_diag_set(d, MICA_ERR_INVALID, "group %d is not 32, 64 or 128", group);
    for (uint64_t i = 0; i < mica_gguf_tensor_count(f); i++) {
        const mica_gguf_tensor_t *t = mica_gguf_tensor_at(f, i);
        if (t->n_dims == 2 && t->ne[0] % group != 0)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "group %d does not divide the rows of %.*s (%" PRId64 " elements)",
                                 group, (int)t->name.len, t->name.ptr, t->ne[0]);
    }
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                   */

static mica_status_t write_text(const char *dir, const char *name, const char *text,
                                out_file_t *rec, mica_diag_t *d)
{
    MICA_TRY(file_open(rec, dir, name, d));
    mica_status_t s = file_write(rec, text, strlen(text), d);
    mica_status_t c = file_close(rec, d);
    return s != MICA_OK ? s : c;
}

static mica_status_t write_graph(const char *dir, const char *name, const mica_graph_t *g,
                                 out_file_t *rec, mica_diag_t *d)
{
    char *text = mica_graph_print(g);
    if (!text)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory printing %s", name);
    mica_status_t s = write_text(dir, name, text, rec, d);
    free(text);
    return s;
}

static mica_status_t write_weights(const char *dir, weight_set_t *ws, FILE *log, bool progress,
                                   out_file_t *rec, mica_diag_t *d)
{
    MICA_TRY(file_open(rec, dir, "weights.bin", d));
    uint64_t total = 0, done = 0;
    for (int64_t k = 0; k < ws->n; k++)
        total += ws->w[k].nbytes;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    mica_status_t s = MICA_OK;
    for (int64_t k = 0; k < ws->n && s == MICA_OK; k++) {
        uint64_t pad = (MICA_MEMPLAN_ALIGN - rec->size % MICA_MEMPLAN_ALIGN) % MICA_MEMPLAN_ALIGN;
        s = file_zeros(rec, pad, d);
        ws->w[k].offset = rec->size;
        if (s == MICA_OK)
            s = file_write(rec, ws->w[k].data, (size_t)ws->w[k].nbytes, d);
        done += ws->w[k].nbytes;
        if (progress && log && s == MICA_OK) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double el = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            double left = done ? el * (double)(total - done) / (double)done : 0;
            fprintf(log, "\rweights %4" PRId64 "/%" PRId64 " %-40.40s %7.1f/%.1f MiB, %.1f s left ",
                    k + 1, ws->n, ws->w[k].name, mib(done), mib(total), left);
            fflush(log);
        }
    }
    if (progress && log)
        fprintf(log, "\n");
    mica_status_t c = file_close(rec, d);
    return s != MICA_OK ? s : c;
}

/* tokenizer.gguf: every tokenizer.* key of the model, no tensors. */
static mica_status_t write_tokenizer(const char *dir, const mica_gguf_t *f, out_file_t *rec,
                                     mica_diag_t *d)
{
    memset(rec, 0, sizeof *rec);
    rec->fd = -1;
    rec->name = "tokenizer.gguf";
    snprintf(rec->path, sizeof rec->path, "%s/tokenizer.gguf", dir);
    mica_gguf_writer_t *w = NULL;
    MICA_TRY(mica_gguf_writer_create(rec->path, &w, d));
    mica_status_t s = MICA_OK;
    bool any = false;
    for (uint64_t i = 0; i < mica_gguf_kv_count(f) && s == MICA_OK; i++) {
        const mica_gguf_kv_t *kv = mica_gguf_kv_at(f, i);
        if (kv->key.len > 10 && memcmp(kv->key.ptr, "tokenizer.", 10) == 0) {
            s = mica_gguf_writer_add_kv(w, kv, d);
            any = true;
        }
    }
    if (s == MICA_OK && !any)
        s = mica_diag_set(d, MICA_ERR_INVALID, "the model has no tokenizer metadata");
    if (s == MICA_OK)
        s = mica_gguf_writer_finish(w, d);
    mica_gguf_writer_release(w);
    if (s != MICA_OK)
        return s;
    /* size and checksum of what was written */
    MICA_TRY(mica_checksum_file(rec->path, &rec->size, &rec->sum, d));
    return MICA_OK;
}

static char *manifest_text(const mica_compile_request_t *req, const mica_target_t *t,
                           const mica_program_t *p, const mica_artifact_memory_t *m,
                           const out_file_t *files, const out_file_t *object,
                           const weight_set_t *ws)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    char feats[256];
    mica_target_features_format(t->features, feats, sizeof feats);
    const mica_model_config_t *c = &p->cfg;
    fprintf(f, "%s %d\n", MICA_ARTIFACT_FORMAT, MICA_ARTIFACT_VERSION);
    fprintf(f, "target %s\narch %s\nfeatures %s\n", t->name, mica_target_arch_name(t->cpu_arch),
            feats[0] ? feats : "-");
    fprintf(f, "isa %s\n", req->isa && req->isa[0] ? req->isa : "-");
    fprintf(f, "quant %s\ngroup %d\nhead %s\n", req->options.quant, req->options.group,
            req->options.head_quant);
    fprintf(f, "model.arch %s\nmodel.n_vocab %" PRId64 "\nmodel.n_embd %" PRId64
               "\nmodel.n_layer %" PRId64 "\nmodel.n_head %" PRId64 "\nmodel.n_head_kv %" PRId64
               "\nmodel.head_dim %" PRId64 "\nmodel.n_ff %" PRId64 "\nmodel.n_ctx_train %" PRId64
               "\nmodel.norm_eps %.17g\nmodel.rope_theta %.17g\nmodel.rope_freq_scale %.17g"
               "\nmodel.rope_dims %" PRId64 "\nmodel.rope_mode %" PRId64 "\nmodel.tied_output %d\n",
            c->arch_name, c->n_vocab, c->n_embd, c->n_layer, c->n_head, c->n_head_kv, c->head_dim,
            c->n_ff, c->n_ctx, c->norm_eps, c->rope_theta, c->rope_freq_scale, c->rope_dims,
            c->rope_mode, c->tied_output ? 1 : 0);
    fprintf(f, "context %" PRId64 "\nchunk %" PRId64 "\n", p->n_ctx, p->chunk);
    fprintf(f, "memory.weights %" PRIu64 "\nmemory.embedding %" PRIu64
               "\nmemory.embedding_rows %" PRIu64 "\nmemory.arena %" PRIu64
               "\nmemory.kv_cache %" PRIu64 "\nmemory.peak %" PRIu64 "\n",
            m->weights, m->embedding, m->embedding_rows, m->arena, m->kv_cache, m->peak);
    if (object) { /* what one decode step of model.so reads of them */
        const uint64_t unread = mica_emit_unread_bytes(p->decode);
        fprintf(f, "memory.weights_read %" PRIu64 "\n", m->weights > unread ? m->weights - unread : 0);
    }
    for (int i = 0; i < N_FILES; i++)
        fprintf(f, "file %s %" PRIu64 " %016" PRIx64 "\n", files[i].name, files[i].size,
                files[i].sum);
    if (object) {
        fprintf(f, "abi %u\n", MICA_ABI_VERSION);
        fprintf(f, "file %s %" PRIu64 " %016" PRIx64 "\n", object->name, object->size,
                object->sum);
    }
    for (int64_t k = 0; k < ws->n; k++)
        fprintf(f, "weight %s %" PRIu64 " %" PRIu64 "\n", ws->w[k].name, ws->w[k].offset,
                ws->w[k].nbytes);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* model.c from the program, the kernels beside it, and model.so built
 * from them with the target's compiler (CPU targets). */
static mica_status_t write_model_object(const char *dir, const mica_compile_request_t *req,
                                        const mica_target_t *t, const mica_program_t *p,
                                        const weight_set_t *ws, const out_file_t *weights,
                                        out_file_t *rec, mica_diag_t *d)
{
    mica_emit_weight_t *w = calloc((size_t)(ws->n ? ws->n : 1), sizeof *w);
    if (!w)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int64_t k = 0; k < ws->n; k++)
        w[k] = (mica_emit_weight_t){ws->w[k].name, ws->w[k].offset};
    const char *slash = strrchr(req->model_path, '/');
    mica_emit_request_t er = {.program = p, .target = t, .weights = w, .n_weights = ws->n,
                              .weights_bytes = weights->size, .weights_checksum = weights->sum,
                              .model_name = slash ? slash + 1 : req->model_path,
                              .quant = req->options.quant};
    char path[MAX_DIR + 64];
    snprintf(path, sizeof path, "%s/model.c", dir);
    FILE *f = fopen(path, "w");
    mica_status_t s = f ? MICA_OK : mica_diag_set(d, MICA_ERR_IO, "cannot create %s: %s", path,
                                                  strerror(errno));
    if (s == MICA_OK)
        s = mica_emit_model_c(&er, f, d);
    if (f && fclose(f) != 0 && s == MICA_OK)
        s = mica_diag_set(d, MICA_ERR_IO, "%s: write failed", path);
    free(w);
    if (s == MICA_OK && interrupted)
        s = mica_diag_set(d, MICA_ERR_IO, "interrupted");
    if (s == MICA_OK)
        s = mica_emit_build(dir, t, d);
    if (s == MICA_OK) {
        memset(rec, 0, sizeof *rec);
        rec->fd = -1;
        rec->name = "model.so";
        snprintf(rec->path, sizeof rec->path, "%s/model.so", dir);
        s = mica_checksum_file(rec->path, &rec->size, &rec->sum, d);
    }
    return s;
}

/* Renames tmp onto dir; with force an existing dir is moved aside first
 * and removed once the new one is in place. */
static mica_status_t install(const char *tmp, const char *dir, bool force, mica_diag_t *d)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!force)
            return mica_diag_set(d, MICA_ERR_INVALID, "%s exists (--force replaces it)", dir);
        char old[MAX_DIR + 32];
        snprintf(old, sizeof old, "%s.old.%ld", dir, (long)getpid());
        if (rename(dir, old) != 0)
            return mica_diag_set(d, MICA_ERR_IO, "cannot move %s aside: %s", dir, strerror(errno));
        if (rename(tmp, dir) != 0) {
            int err = errno;
            rename(old, dir);
            return mica_diag_set(d, MICA_ERR_IO, "cannot rename onto %s: %s", dir, strerror(err));
        }
        if (S_ISDIR(st.st_mode))
            remove_dir(old);
        else
            unlink(old);
        return MICA_OK;
    }
    if (rename(tmp, dir) != 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot rename onto %s: %s", dir, strerror(errno));
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* compile                                                                   */

mica_status_t mica_compile(const mica_compile_request_t *req, mica_artifact_memory_t *out_memory,
                           mica_diag_t *d)
{
    const mica_compile_options_t *o = &req->options;
    if (strlen(req->out_dir) >= MAX_DIR || !req->out_dir[0])
        return mica_diag_set(d, MICA_ERR_INVALID, "the output path is empty or too long");
    if (!known_quant(o->quant))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "unknown quantization '%s' (w4a8, w8a8, w4a16, w8a16, f16, f32)",
                             o->quant);
    mica_target_t target;
    MICA_TRY(mica_target_find(req->target, &target, d));
    if (target.arch == MICA_TARGET_ARCH_OPENCL && strstr(o->quant, "a8"))
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "target %s is a GPU: it runs w4a16, w8a16, f16 or f32, not %s",
                             target.name, o->quant);
    struct stat st;
    if (!req->force && stat(req->out_dir, &st) == 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "%s exists (--force replaces it)", req->out_dir);

    mica_gguf_t *f = NULL;
    mica_program_t *p = NULL;
    weight_set_t ws = {0};
    char tmp[MAX_DIR + 32] = "";
    signals_t sig;
    bool caught = false;
    mica_model_config_t cfg;
    mica_status_t s = mica_gguf_open(req->model_path, &f, d);
    if (s == MICA_OK)
        s = mica_model_config_from_gguf(f, &cfg, d);
    if (s == MICA_OK)
        s = check_group(f, o->group, d);

    /* the context: asked for, or the trained length, within the budget */
    int64_t chunk = o->prefill_chunk > 0 ? o->prefill_chunk : target.prefill_chunk;
    int64_t ctx_len = o->context;
    uint64_t per_token = kv_bytes_per_token(&cfg);
    uint64_t file_bytes = 0;
    if (s == MICA_OK)
        mica_gguf_bytes(f, &file_bytes);
    uint64_t budget = (uint64_t)target.dram_budget_bytes;
    uint64_t room = budget > file_bytes ? budget - file_bytes : 0; /* weights at most the file */
    if (s == MICA_OK && ctx_len == 0) {
        ctx_len = cfg.n_ctx > 0 ? cfg.n_ctx : 4096;
        if ((uint64_t)ctx_len * per_token > room)
            ctx_len = (int64_t)(room / per_token);
        if (ctx_len < chunk)
            s = mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                              "target %s's memory budget (%.0f MiB) holds the weights but no "
                              "context", target.name, mib(budget));
    } else if (s == MICA_OK && (uint64_t)ctx_len * per_token > room) {
        s = mica_diag_set(d, MICA_ERR_INVALID,
                          "a context of %" PRId64 " tokens needs %.0f MiB of KV cache; target %s's "
                          "budget of %.0f MiB leaves %.0f MiB beside the weights",
                          ctx_len, mib((uint64_t)ctx_len * per_token), target.name, mib(budget),
                          mib(room));
    }
    if (s == MICA_OK && chunk > ctx_len)
        chunk = ctx_len;
    if (s == MICA_OK && req->log && cfg.n_ctx > 0 && ctx_len > cfg.n_ctx)
        fprintf(req->log, "mica compile: warning: context %" PRId64 " is past the model's trained "
                          "length %" PRId64 "\n", ctx_len, cfg.n_ctx);

    out_file_t files[N_FILES];
    for (int i = 0; i < N_FILES; i++)
        files[i].fd = -1;
    if (s == MICA_OK) {
        /* from here on a SIGINT or SIGTERM stops the compile and cleans up */
        signals_catch(&sig);
        caught = true;
    }
    if (s == MICA_OK) {
        /* beside the target, so the final rename stays on one file system */
        const char *slash = strrchr(req->out_dir, '/');
        if (slash)
            snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp.XXXXXX", (int)(slash - req->out_dir),
                     req->out_dir, slash + 1);
        else
            snprintf(tmp, sizeof tmp, ".%s.tmp.XXXXXX", req->out_dir);
        if (slash && slash == req->out_dir) /* "/name" */
            snprintf(tmp, sizeof tmp, "/.%s.tmp.XXXXXX", slash + 1);
        if (!mkdtemp(tmp)) {
            s = mica_diag_set(d, MICA_ERR_IO, "cannot create a directory beside %s: %s",
                              req->out_dir, strerror(errno));
            tmp[0] = 0;
        } else {
            mode_t mask = umask(0);
            umask(mask);
            chmod(tmp, 0777 & ~mask); /* mkdtemp makes it 0700 */
        }
    }
    if (s == MICA_OK)
        s = mica_program_build(f, &cfg, chunk, ctx_len, &p, d);
    mica_pass_ctx_t ctx;
    bool have_ctx = false;
    if (s == MICA_OK)
        s = mica_pass_ctx_init(&ctx, &target, o, d);
    have_ctx = s == MICA_OK;
    if (s == MICA_OK)
        s = mica_pipeline_run_program(&ctx, p, NULL, false, d);
    if (have_ctx)
        mica_pass_ctx_deinit(&ctx);
    if (s == MICA_OK)
        s = collect_weights(p->prefill, &ws, d);
    if (s == MICA_OK)
        s = collect_weights(p->decode, &ws, d);

    mica_artifact_memory_t mem;
    if (s == MICA_OK) {
        memory_of(p, &ws, &mem);
        if (out_memory)
            *out_memory = mem;
        if (req->log)
            fprintf(req->log,
                    "mica compile: %s for %s (%s): peak RAM %.1f MiB = weights %.1f MiB + KV cache "
                    "%.1f MiB (%" PRId64 " tokens) + arena %.1f MiB + embedding rows %.2f MiB; the "
                    "embedding table (%.1f MiB) stays in the file\n",
                    req->model_path, target.name, o->quant, mib(mem.peak), mib(mem.weights),
                    mib(mem.kv_cache), ctx_len, mib(mem.arena), mib(mem.embedding_rows),
                    mib(mem.embedding));
    }

    if (s == MICA_OK && interrupted)
        s = mica_diag_set(d, MICA_ERR_IO, "interrupted");
    if (s == MICA_OK)
        s = write_graph(tmp, "prefill.ir", p->prefill, &files[0], d);
    if (s == MICA_OK)
        s = write_graph(tmp, "decode.ir", p->decode, &files[1], d);
    if (s == MICA_OK)
        s = write_weights(tmp, &ws, req->log, req->progress, &files[2], d);
    if (s == MICA_OK)
        s = write_tokenizer(tmp, f, &files[3], d);
    out_file_t object;
    bool have_object = false;
    if (s == MICA_OK && target.arch != MICA_TARGET_ARCH_OPENCL) {
        s = write_model_object(tmp, req, &target, p, &ws, &files[2], &object, d);
        have_object = s == MICA_OK;
    }
    if (s == MICA_OK && interrupted)
        s = mica_diag_set(d, MICA_ERR_IO, "interrupted");
    if (s == MICA_OK) {
        char *man = manifest_text(req, &target, p, &mem, files, have_object ? &object : NULL, &ws);
        out_file_t rec;
        if (!man)
            s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory writing the manifest");
        else
            s = write_text(tmp, "manifest", man, &rec, d);
        free(man);
    }
    if (s == MICA_OK && interrupted)
        s = mica_diag_set(d, MICA_ERR_IO, "interrupted");
    if (s == MICA_OK)
        s = install(tmp, req->out_dir, req->force, d);
    for (int i = 0; i < N_FILES; i++)
        if (files[i].fd >= 0)
            close(files[i].fd);
    if (s != MICA_OK && tmp[0])
        remove_dir(tmp);
    if (caught)
        signals_restore(&sig);
    free(ws.w);
    mica_program_release(p);
    mica_gguf_close(f);
    return s;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */

bool mica_artifact_is_dir(const char *path)
{
    struct stat st;
    char m[MAX_DIR + 16];
    if (strlen(path) >= MAX_DIR || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return false;
    snprintf(m, sizeof m, "%s/manifest", path);
    return stat(m, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a whole small file (NUL appended). */
static char *slurp(const char *path, size_t limit, size_t *out_len, mica_diag_t *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mica_diag_set(d, MICA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > limit) {
        close(fd);
        mica_diag_set(d, MICA_ERR_INVALID, "%s is not a regular file of at most %zu bytes", path,
                      limit);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        mica_diag_set(d, buf ? MICA_ERR_IO : MICA_ERR_NOMEM, "cannot read %s", path);
        return NULL;
    }
    buf[got] = 0;
    *out_len = got;
    return buf;
}

/* The value of "key VALUE" in the manifest text, as a NUL-terminated copy
 * in buf; false if absent. */
static bool man_get(const char *man, const char *key, char *buf, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *l = man; *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        if (len > kl && memcmp(l, key, kl) == 0 && l[kl] == ' ') {
            size_t vl = len - kl - 1;
            if (vl >= cap)
                return false;
            memcpy(buf, l + kl + 1, vl);
            buf[vl] = 0;
            return true;
        }
        l += len + (end ? 1 : 0);
    }
    return false;
}

static bool man_i64(const char *man, const char *key, int64_t *out)
{
    char v[64], *end;
    if (!man_get(man, key, v, sizeof v))
        return false;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v)
        return false;
    *out = x;
    return true;
}

static bool man_f64(const char *man, const char *key, double *out)
{
    char v[64], *end;
    if (!man_get(man, key, v, sizeof v))
        return false;
    *out = strtod(v, &end);
    return !*end && end != v;
}

static mica_status_t read_config(const char *man, mica_model_config_t *c, mica_diag_t *d)
{
    memset(c, 0, sizeof *c);
    static const struct {
        const char *key;
        size_t off;
    } ints[] = {
        {"model.n_vocab", offsetof(mica_model_config_t, n_vocab)},
        {"model.n_embd", offsetof(mica_model_config_t, n_embd)},
        {"model.n_layer", offsetof(mica_model_config_t, n_layer)},
        {"model.n_head", offsetof(mica_model_config_t, n_head)},
        {"model.n_head_kv", offsetof(mica_model_config_t, n_head_kv)},
        {"model.head_dim", offsetof(mica_model_config_t, head_dim)},
        {"model.n_ff", offsetof(mica_model_config_t, n_ff)},
        {"model.n_ctx_train", offsetof(mica_model_config_t, n_ctx)},
        {"model.rope_dims", offsetof(mica_model_config_t, rope_dims)},
        {"model.rope_mode", offsetof(mica_model_config_t, rope_mode)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!man_i64(man, ints[i].key, (int64_t *)((char *)c + ints[i].off)))
            return mica_diag_set(d, MICA_ERR_INVALID, "manifest: missing or bad %s", ints[i].key);
    int64_t tied;
    if (!man_f64(man, "model.norm_eps", &c->norm_eps) ||
        !man_f64(man, "model.rope_theta", &c->rope_theta) ||
        !man_f64(man, "model.rope_freq_scale", &c->rope_freq_scale) ||
        !man_i64(man, "model.tied_output", &tied) ||
        !man_get(man, "model.arch", c->arch_name, sizeof c->arch_name))
        return mica_diag_set(d, MICA_ERR_INVALID, "manifest: the model config is incomplete");
    c->tied_output = tied != 0;
    if (!strcmp(c->arch_name, "llama"))
        c->arch = MICA_ARCH_LLAMA;
    else if (!strcmp(c->arch_name, "qwen2"))
        c->arch = MICA_ARCH_QWEN2;
    else
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "manifest: unsupported architecture '%s'",
                             c->arch_name);
    if (c->n_vocab < 1 || c->n_layer < 1 || c->n_embd < 1)
        return mica_diag_set(d, MICA_ERR_INVALID, "manifest: impossible model config");
    return MICA_OK;
}

/* Checks one file's size and checksum against its manifest line. */
static mica_status_t check_file(const char *dir, const char *man, const char *name,
                                mica_diag_t *d)
{
    char key[64], v[128], path[MAX_DIR + 64];
    snprintf(key, sizeof key, "file %s", name);
    unsigned long long size, sum;
    if (!man_get(man, key, v, sizeof v) || sscanf(v, "%llu %llx", &size, &sum) != 2)
        return mica_diag_set(d, MICA_ERR_INVALID, "manifest: no size and checksum for %s", name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint64_t n, h;
    MICA_TRY(mica_checksum_file(path, &n, &h, d));
    if (n != size)
        return mica_diag_set(d, MICA_ERR_INVALID, "%s has %" PRIu64 " bytes, the manifest says %llu",
                             name, n, size);
    if (h != sum)
        return mica_diag_set(d, MICA_ERR_INVALID, "%s does not match its checksum (corrupt)", name);
    return MICA_OK;
}

/* Points every weight node of g at its bytes in the mapped weights.bin. */
static mica_status_t bind_weights(mica_graph_t *g, const char *man, const unsigned char *base,
                                  uint64_t size, mica_diag_t *d)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        mica_node_t *n = g->nodes[i];
        if (n->op != MICA_OP_WEIGHT)
            continue;
        const char *name = mica_node_name(n);
        char key[320], v[64];
        snprintf(key, sizeof key, "weight %s", name);
        unsigned long long off, nb;
        if (strlen(name) > 300 || !man_get(man, key, v, sizeof v) ||
            sscanf(v, "%llu %llu", &off, &nb) != 2)
            return mica_diag_set(d, MICA_ERR_INVALID, "manifest: no place for weight '%s'", name);
        if (off % MICA_MEMPLAN_ALIGN != 0 || off > size || nb > size - off)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "manifest: weight '%s' at %llu (+%llu) is outside weights.bin "
                                 "or unaligned", name, off, nb);
        n->data = base + off;
        n->nbytes = nb;
    }
    return mica_graph_verify(g, d);
}

static mica_status_t parse_graph(const char *dir, const char *name, mica_graph_t **out,
                                 mica_diag_t *d)
{
    char path[MAX_DIR + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len;
    char *text = slurp(path, (size_t)1 << 30, &len, d);
    if (!text)
        return d->code;
    mica_status_t s = mica_graph_parse(text, len, out, d);
    free(text);
    if (s != MICA_OK)
        mica_diag_prefix(d, "%s", name);
    return s;
}

mica_status_t mica_artifact_open(const char *dir, mica_artifact_t **out_artifact, mica_diag_t *d)
{
    if (strlen(dir) >= MAX_DIR)
        return mica_diag_set(d, MICA_ERR_INVALID, "path too long");
    char path[MAX_DIR + 64];
    snprintf(path, sizeof path, "%s/manifest", dir);
    size_t len;
    char *man = slurp(path, (size_t)64 << 20, &len, d);
    if (!man)
        return d->code;
    mica_artifact_t *a = calloc(1, sizeof *a);
    mica_status_t s = a ? MICA_OK : mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    char head[64];
    snprintf(head, sizeof head, "%s %d\n", MICA_ARTIFACT_FORMAT, MICA_ARTIFACT_VERSION);
    if (s == MICA_OK && strncmp(man, head, strlen(head)) != 0) {
        if (strncmp(man, MICA_ARTIFACT_FORMAT " ", strlen(MICA_ARTIFACT_FORMAT) + 1) == 0) {
            const char *ver = man + strlen(MICA_ARTIFACT_FORMAT) + 1;
            size_t n = strcspn(ver, "\n"); /* the version, never past its line */
            s = mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                              "manifest: artifact format version %.*s, this mica reads %d",
                              (int)(n < 8 ? n : 8), ver, MICA_ARTIFACT_VERSION);
        } else
            s = mica_diag_set(d, MICA_ERR_INVALID, "manifest: not a mica artifact");
    }
    for (int i = 0; s == MICA_OK && i < N_FILES; i++)
        s = check_file(dir, man, artifact_files[i], d);
    mica_model_config_t cfg;
    int64_t ctx_len = 0, chunk = 0;
    if (s == MICA_OK)
        s = read_config(man, &cfg, d);
    if (s == MICA_OK && (!man_i64(man, "context", &ctx_len) || !man_i64(man, "chunk", &chunk) ||
                         chunk < 1 || ctx_len < chunk))
        s = mica_diag_set(d, MICA_ERR_INVALID, "manifest: bad context or chunk");
    if (s == MICA_OK && (!man_get(man, "target", a->target, sizeof a->target) ||
                         !man_get(man, "quant", a->quant, sizeof a->quant)))
        s = mica_diag_set(d, MICA_ERR_INVALID, "manifest: no target or quantization");
    if (s == MICA_OK) {
        int64_t v[6];
        const char *keys[6] = {"memory.weights",  "memory.embedding", "memory.embedding_rows",
                               "memory.arena",    "memory.kv_cache",  "memory.peak"};
        for (int i = 0; i < 6 && s == MICA_OK; i++)
            if (!man_i64(man, keys[i], &v[i]) || v[i] < 0)
                s = mica_diag_set(d, MICA_ERR_INVALID, "manifest: missing %s", keys[i]);
        if (s == MICA_OK)
            a->memory = (mica_artifact_memory_t){(uint64_t)v[0], (uint64_t)v[1], (uint64_t)v[2],
                                                 (uint64_t)v[3], (uint64_t)v[4], (uint64_t)v[5]};
    }
    if (s == MICA_OK) {
        a->program = calloc(1, sizeof *a->program);
        if (!a->program)
            s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    if (s == MICA_OK) {
        a->program->cfg = cfg;
        a->program->n_ctx = ctx_len;
        a->program->chunk = chunk;
        s = parse_graph(dir, "prefill.ir", &a->program->prefill, d);
    }
    if (s == MICA_OK)
        s = parse_graph(dir, "decode.ir", &a->program->decode, d);
    if (s == MICA_OK) {
        snprintf(path, sizeof path, "%s/weights.bin", dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            s = mica_diag_set(d, MICA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        } else if (st.st_size > 0) {
            void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED)
                s = mica_diag_set(d, MICA_ERR_IO, "cannot map %s: %s", path, strerror(errno));
            else {
                a->weights = m;
                a->weights_bytes = (uint64_t)st.st_size;
            }
        }
        if (fd >= 0)
            close(fd);
    }
    if (s == MICA_OK)
        s = bind_weights(a->program->prefill, man, a->weights, a->weights_bytes, d);
    if (s == MICA_OK)
        s = bind_weights(a->program->decode, man, a->weights, a->weights_bytes, d);
    if (s == MICA_OK) {
        snprintf(path, sizeof path, "%s/tokenizer.gguf", dir);
        s = mica_gguf_open(path, &a->tokenizer, d);
        if (s != MICA_OK)
            mica_diag_prefix(d, "tokenizer.gguf");
    }
    free(man);
    if (s != MICA_OK) {
        mica_artifact_close(a);
        return s;
    }
    *out_artifact = a;
    return MICA_OK;
}

void mica_artifact_close(mica_artifact_t *a)
{
    if (!a)
        return;
    mica_program_release(a->program);
    mica_gguf_close(a->tokenizer);
    if (a->weights)
        munmap((void *)a->weights, (size_t)a->weights_bytes);
    free(a);
}
