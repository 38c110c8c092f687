/* The device's artifact loader (runtime/device.h). */
#include "device.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checksum.h"
#include "gguf_meta.h"
#include "target.h"
#include "vocab.h"

#define MAX_DIR 3800                        /* bytes of a directory path we handle */
#define MAX_MANIFEST (64u << 20)            /* bytes of a manifest we read */
#define MAX_STATES 4096                     /* states an entry table may list */
#define MAX_MODEL_BYTES (UINT64_C(1) << 40) /* arena or one state */

/* ------------------------------------------------------------------------ */
/* the manifest: "key value" lines, the first word the key                   */

typedef struct man_line {
    const char *key, *value; /* NUL-terminated, inside text */
} man_line_t;

typedef struct manifest {
    char *text; /* a copy of the file, cut into lines in place */
    man_line_t *lines;
    size_t n;
} manifest_t;

static void manifest_deinit(manifest_t *m)
{
    free(m->text);
    free(m->lines);
    memset(m, 0, sizeof *m);
}

/* Reads dir/manifest and checks its first line. */
static mica_status_t manifest_read(const char *dir, manifest_t *m, mica_diag_t *d)
{
    memset(m, 0, sizeof *m);
    char path[MAX_DIR + 16];
    snprintf(path, sizeof path, "%s/manifest", dir);
    mica_file_map_t map;
    mica_status_t s = mica_file_map_open(path, &map, d);
    if (s != MICA_OK) {
        mica_diag_prefix(d, "manifest");
        return s;
    }
    if (map.len > MAX_MANIFEST) {
        mica_file_map_release(&map);
        return mica_diag_set(d, MICA_ERR_INVALID, "manifest: larger than %u bytes", MAX_MANIFEST);
    }
    size_t n_lines = 1;
    for (uint64_t i = 0; i < map.len; i++)
        n_lines += map.ptr[i] == '\n';
    m->text = malloc((size_t)map.len + 1);
    m->lines = malloc(n_lines * sizeof *m->lines);
    if (!m->text || !m->lines) {
        mica_file_map_release(&map);
        manifest_deinit(m);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    if (map.len)
        memcpy(m->text, map.ptr, (size_t)map.len);
    m->text[map.len] = 0;
    mica_file_map_release(&map);
    for (char *l = m->text; *l;) {
        char *end = strchr(l, '\n');
        if (end)
            *end = 0;
        char *sp = strchr(l, ' ');
        if (sp) {
            *sp = 0;
            m->lines[m->n++] = (man_line_t){l, sp + 1};
        } else {
            m->lines[m->n++] = (man_line_t){l, ""};
        }
        if (!end)
            break;
        l = end + 1;
    }
    if (m->n == 0 || strcmp(m->lines[0].key, MICA_DEVICE_FORMAT) != 0) {
        manifest_deinit(m);
        return mica_diag_set(d, MICA_ERR_INVALID, "manifest: not a mica artifact");
    }
    char want[16];
    snprintf(want, sizeof want, "%d", MICA_DEVICE_FORMAT_VERSION);
    if (strcmp(m->lines[0].value, want) != 0) {
        s = mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                          "manifest: artifact format version %.8s, this mica reads %d",
                          m->lines[0].value, MICA_DEVICE_FORMAT_VERSION);
        manifest_deinit(m);
        return s;
    }
    return MICA_OK;
}

static const char *man_get(const manifest_t *m, const char *key)
{
    for (size_t i = 1; i < m->n; i++)
        if (!strcmp(m->lines[i].key, key))
            return m->lines[i].value;
    return NULL;
}

static bool parse_i64(const char *v, int64_t *out)
{
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || end == v || *end)
        return false;
    *out = x;
    return true;
}

/* "NAME SIZE CHECKSUM" of the file line for name. */
static bool man_file(const manifest_t *m, const char *name, uint64_t *out_size, uint64_t *out_sum)
{
    size_t nl = strlen(name);
    for (size_t i = 1; i < m->n; i++) {
        const char *v = m->lines[i].value;
        if (strcmp(m->lines[i].key, "file") || strncmp(v, name, nl) || v[nl] != ' ')
            continue;
        unsigned long long size, sum;
        int used = 0;
        if (sscanf(v + nl + 1, "%llu %llx%n", &size, &sum, &used) != 2 || v[nl + 1 + used])
            return false;
        *out_size = size;
        *out_sum = sum;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* files                                                                     */

/* Checks that the mapped bytes of name have the manifest's size and sum. */
static mica_status_t check_bytes(const char *name, const mica_file_map_t *map, uint64_t size,
                                 uint64_t sum, mica_diag_t *d)
{
    if (map->len != size)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "%s has %" PRIu64 " bytes, the manifest says %" PRIu64, name, map->len,
                             size);
    if (mica_checksum_update(MICA_CHECKSUM_INIT, map->ptr, (size_t)map->len) != sum)
        return mica_diag_set(d, MICA_ERR_INVALID, "%s does not match its checksum (corrupt)", name);
    return MICA_OK;
}

/* Maps dir/name into *map (prefixing a failure with name). */
static mica_status_t map_file(const char *dir, const char *name, mica_file_map_t *map,
                              mica_diag_t *d)
{
    char path[MAX_DIR + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mica_status_t s = mica_file_map_open(path, map, d);
    if (s != MICA_OK)
        mica_diag_prefix(d, "%s", name);
    return s;
}

/* Every file line: a plain name, its size and checksum as the manifest
 * says. weights.bin is kept mapped in *weights. */
static mica_status_t check_files(const char *dir, const manifest_t *m, mica_file_map_t *weights,
                                 mica_diag_t *d)
{
    static const char *const needed[] = {"weights.bin", "tokenizer.gguf"};
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++) {
        uint64_t size, sum;
        if (!man_file(m, needed[i], &size, &sum))
            return mica_diag_set(d, MICA_ERR_INVALID, "manifest: no size and checksum for %s",
                                 needed[i]);
    }
    for (size_t i = 1; i < m->n; i++) {
        if (strcmp(m->lines[i].key, "file"))
            continue;
        char name[256];
        const char *v = m->lines[i].value;
        size_t nl = strcspn(v, " ");
        if (nl == 0 || nl >= sizeof name || memchr(v, '/', nl) || (nl <= 2 && v[0] == '.'))
            return mica_diag_set(d, MICA_ERR_INVALID, "manifest: bad file line '%.64s'", v);
        memcpy(name, v, nl);
        name[nl] = 0;
        uint64_t size, sum;
        if (!man_file(m, name, &size, &sum))
            return mica_diag_set(d, MICA_ERR_INVALID, "manifest: bad file line '%.64s'", v);
        bool keep = !strcmp(name, "weights.bin");
        mica_file_map_t map;
        MICA_TRY(map_file(dir, name, &map, d));
        mica_status_t s = check_bytes(name, &map, size, sum, d);
        if (s == MICA_OK && keep && !weights->ptr)
            *weights = map;
        else
            mica_file_map_release(&map);
        if (s != MICA_OK)
            return s;
    }
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* the CPU and the model object                                              */

/* The manifest's arch and features against the running CPU. */
static mica_status_t check_cpu(const manifest_t *m, uint64_t *out_features, mica_diag_t *d)
{
    const char *target = man_get(m, "target"), *arch = man_get(m, "arch");
    const char *feats = man_get(m, "features");
    uint64_t need;
    if (!target || !arch || !feats || !mica_target_features_parse(feats, &need))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "manifest: missing or bad target, arch or features");
    uint64_t have;
    const char *here = mica_target_arch_name(mica_target_host_isa(&have));
    if (strcmp(arch, here) != 0)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "built for %.32s (%.16s); this CPU is %s",
                             target, arch, here);
    uint64_t missing = need & ~have;
    if (missing) {
        char list[256];
        mica_target_features_format(missing, list, sizeof list);
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "built for %.32s, which needs %s; this CPU lacks %s", target, list,
                             missing & (missing - 1) ? "them" : "it");
    }
    *out_features = need;
    return MICA_OK;
}

/* A graph of the entry table: a run function, rows that fit the arena. */
static mica_status_t check_graph(const mica_abi_model_t *a, const mica_abi_graph_t *g,
                                 const char *name, int32_t max_tokens, mica_diag_t *d)
{
    uint64_t rows_bytes = (uint64_t)max_tokens * (uint64_t)a->n_vocab * sizeof(float);
    if (!g->run || g->max_tokens != max_tokens || (g->n_ops && !g->ops))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: the %s graph has no run function, %d rows per call (the "
                             "manifest says %d) or no op table",
                             name, g->max_tokens, max_tokens);
    if (g->logits_offset % sizeof(float) != 0 || g->logits_offset > a->arena_bytes ||
        rows_bytes > a->arena_bytes - g->logits_offset)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: the %s logits at %" PRIu64 " do not fit the %" PRIu64
                             "-byte arena",
                             name, g->logits_offset, a->arena_bytes);
    return MICA_OK;
}

/* The entry table against this runtime and the manifest. abi_version and
 * struct_size are read first; nothing else is read unless they match. */
static mica_status_t check_entry(const mica_abi_model_t *a, const manifest_t *m,
                                 const mica_device_model_t *dm, mica_diag_t *d)
{
    if (a->abi_version != MICA_ABI_VERSION)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "model.so: built for ABI version %" PRIu32 ", this runtime speaks %u",
                             a->abi_version, MICA_ABI_VERSION);
    if (a->struct_size < sizeof(mica_abi_model_t))
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "model.so: its entry table has %" PRIu32
                             " bytes, this runtime needs %zu",
                             a->struct_size, sizeof(mica_abi_model_t));
    const char *arch = man_get(m, "arch");
    if (!a->arch || !arch || strcmp(a->arch, arch) != 0)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: built for %.16s, the manifest says %.16s",
                             a->arch ? a->arch : "(none)", arch ? arch : "(none)");
    if (a->features & ~dm->features)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: needs CPU features the manifest does not list");
    uint64_t wsize, wsum;
    man_file(m, "weights.bin", &wsize, &wsum);
    if (a->weights_bytes != wsize || a->weights_checksum != wsum)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: compiled against another weights.bin (%" PRIu64
                             " bytes, checksum %016" PRIx64 ")",
                             a->weights_bytes, a->weights_checksum);
    if (a->n_vocab != dm->n_vocab || a->context != dm->context)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: %d tokens of vocabulary and a context of %d, the manifest "
                             "says %d and %d",
                             a->n_vocab, a->context, dm->n_vocab, dm->context);
    if (a->arena_bytes == 0 || a->arena_bytes > MAX_MODEL_BYTES || a->n_states > MAX_STATES ||
        (a->n_states && !a->states))
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "model.so: an arena of %" PRIu64 " bytes or %" PRIu32
                             " states is impossible",
                             a->arena_bytes, a->n_states);
    for (uint32_t i = 0; i < a->n_states; i++)
        if (a->states[i].bytes == 0 || a->states[i].bytes > MAX_MODEL_BYTES)
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "model.so: state %" PRIu32 " has %" PRIu64 " bytes", i,
                                 a->states[i].bytes);
    MICA_TRY(check_graph(a, &a->prefill, "prefill", dm->chunk, d));
    return check_graph(a, &a->decode, "decode", 1, d);
}

/* The manifest's model object line and ABI version. */
static mica_status_t check_object_line(const manifest_t *m, mica_diag_t *d)
{
    int64_t abi;
    uint64_t size, sum;
    if (!man_file(m, "model.so", &size, &sum))
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "manifest: no model object (model.so); this artifact runs on the ref "
                             "backend only (--backend ref)");
    if (!parse_i64(man_get(m, "abi"), &abi))
        return mica_diag_set(d, MICA_ERR_INVALID, "manifest: missing or bad abi");
    if (abi != MICA_ABI_VERSION)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "manifest: built for ABI version %" PRId64 ", this runtime speaks %u",
                             abi, MICA_ABI_VERSION);
    return MICA_OK;
}

static mica_status_t load_object(const char *dir, const manifest_t *m, mica_device_model_t *dm,
                                 mica_diag_t *d)
{
    char path[MAX_DIR + 16];
    snprintf(path, sizeof path, "%s/model.so", dir); /* has a slash: no library path search */
    dlerror();
    dm->object = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dm->object) {
        const char *why = dlerror();
        return mica_diag_set(d, MICA_ERR_IO, "model.so: cannot load: %.300s", why ? why : "?");
    }
    dm->abi = dlsym(dm->object, MICA_ABI_ENTRY_SYMBOL);
    if (!dm->abi)
        return mica_diag_set(d, MICA_ERR_INVALID, "model.so: no entry table (%s)",
                             MICA_ABI_ENTRY_SYMBOL);
    return check_entry(dm->abi, m, dm, d);
}

/* ------------------------------------------------------------------------ */
/* the tokenizer                                                             */

static mica_status_t load_tokenizer(const char *dir, mica_device_model_t *dm, mica_diag_t *d)
{
    char path[MAX_DIR + 32];
    snprintf(path, sizeof path, "%s/tokenizer.gguf", dir);
    mica_gguf_meta_t *meta = NULL;
    mica_status_t s = mica_gguf_meta_open(path, &meta, d);
    mica_vocab_t vocab = {0};
    bool have_vocab = false;
    if (s == MICA_OK) {
        s = mica_vocab_from_gguf_meta(meta, &vocab, d);
        have_vocab = s == MICA_OK;
    }
    if (s == MICA_OK)
        s = mica_tokenizer_create(&vocab.desc, &dm->tokenizer, d);
    if (s == MICA_OK && mica_tokenizer_n_tokens(dm->tokenizer) > (uint32_t)dm->n_vocab)
        s = mica_diag_set(d, MICA_ERR_INVALID, "has %u tokens, the model %d",
                          mica_tokenizer_n_tokens(dm->tokenizer), dm->n_vocab);
    mica_gguf_str_t t;
    if (s == MICA_OK && mica_gguf_meta_get_str(meta, "tokenizer.chat_template", &t)) {
        dm->chat_template = malloc((size_t)t.len + 1);
        if (!dm->chat_template) {
            s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        } else {
            memcpy(dm->chat_template, t.ptr, (size_t)t.len);
            dm->chat_template[t.len] = 0;
            dm->chat_template_len = (size_t)t.len;
        }
    }
    if (have_vocab)
        mica_vocab_deinit(&vocab);
    mica_gguf_meta_release(meta);
    if (s != MICA_OK)
        mica_diag_prefix(d, "tokenizer.gguf");
    return s;
}

/* ------------------------------------------------------------------------ */
/* open / release                                                            */

mica_status_t mica_device_model_open(const char *dir, mica_device_model_t **out_model,
                                     mica_diag_t *d)
{
    *out_model = NULL;
    if (strlen(dir) >= MAX_DIR)
        return mica_diag_set(d, MICA_ERR_INVALID, "path too long");
    manifest_t m;
    MICA_TRY(manifest_read(dir, &m, d));
    mica_device_model_t *dm = calloc(1, sizeof *dm);
    mica_status_t s = dm ? MICA_OK : mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    int64_t n_vocab = 0, context = 0, chunk = 0;
    if (s == MICA_OK)
        s = check_cpu(&m, &dm->features, d);
    if (s == MICA_OK &&
        (!parse_i64(man_get(&m, "model.n_vocab"), &n_vocab) ||
         !parse_i64(man_get(&m, "context"), &context) || !parse_i64(man_get(&m, "chunk"), &chunk) ||
         n_vocab < 1 || n_vocab > INT32_MAX / 2 || chunk < 1 || context < chunk ||
         context > INT32_MAX / 2))
        s = mica_diag_set(d, MICA_ERR_INVALID,
                          "manifest: missing or bad model.n_vocab, context or chunk");
    if (s == MICA_OK) {
        dm->n_vocab = (int32_t)n_vocab;
        dm->context = (int32_t)context;
        dm->chunk = (int32_t)chunk;
        const char *target = man_get(&m, "target"), *quant = man_get(&m, "quant");
        snprintf(dm->target, sizeof dm->target, "%s", target ? target : "");
        snprintf(dm->quant, sizeof dm->quant, "%s", quant ? quant : "");
    }
    if (s == MICA_OK)
        s = check_object_line(&m, d);
    if (s == MICA_OK)
        s = check_files(dir, &m, &dm->weights, d);
    if (s == MICA_OK)
        s = load_object(dir, &m, dm, d);
    if (s == MICA_OK)
        s = load_tokenizer(dir, dm, d);
    manifest_deinit(&m);
    if (s != MICA_OK) {
        mica_device_model_release(dm);
        return s;
    }
    *out_model = dm;
    return MICA_OK;
}

void mica_device_model_release(mica_device_model_t *m)
{
    if (!m)
        return;
    mica_tokenizer_release(m->tokenizer);
    free(m->chat_template);
    if (m->object)
        dlclose(m->object);
    mica_file_map_release(&m->weights);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* per-session memory                                                        */

static size_t page_round(uint64_t n, size_t page)
{
    return (size_t)((n + page - 1) / page * page);
}

mica_status_t mica_device_state_init(mica_device_state_t *st, const mica_device_model_t *m,
                                     mica_diag_t *d)
{
    memset(st, 0, sizeof *st);
    const mica_abi_model_t *a = m->abi;
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    size_t bytes = page_round(a->arena_bytes, page);
    st->states_at = bytes;
    for (uint32_t i = 0; i < a->n_states; i++) {
        size_t b = page_round(a->states[i].bytes, page);
        if (bytes > SIZE_MAX - b)
            return mica_diag_set(d, MICA_ERR_NOMEM, "the arena and states overflow memory");
        bytes += b;
    }
    st->states = malloc((a->n_states ? a->n_states : 1) * sizeof *st->states);
    if (!st->states)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(st->states);
        st->states = NULL;
        return mica_diag_set(d, MICA_ERR_NOMEM,
                             "cannot map %zu bytes for the arena and KV cache: %s", bytes,
                             strerror(errno));
    }
    st->base = p;
    st->bytes = bytes;
    st->arena = st->base;
    size_t at = st->states_at;
    for (uint32_t i = 0; i < a->n_states; i++) {
        st->states[i] = st->base + at;
        at += page_round(a->states[i].bytes, page);
    }
    return MICA_OK;
}

void mica_device_state_clear(mica_device_state_t *st)
{
    if (st->base && st->bytes > st->states_at)
        madvise(st->base + st->states_at, st->bytes - st->states_at, MADV_DONTNEED);
}

void mica_device_state_deinit(mica_device_state_t *st)
{
    if (st->base)
        munmap(st->base, st->bytes);
    free(st->states);
    memset(st, 0, sizeof *st);
}
