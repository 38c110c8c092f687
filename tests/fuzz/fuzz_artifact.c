/* Fuzz target: the artifact loaders, the compiler's (mica_artifact_open)
 * and the device's (mica_device_model_open), on an artifact of the tiny
 * seed model compiled once per process, with one part replaced by the
 * input. The first byte chooses the part:
 *   0  the manifest, patched: each input line "KEY REST" replaces the
 *      manifest line with that key (for "file" and "weight" lines, that key
 *      and first word), "-KEY" deletes them, other lines are appended;
 *   1  prefill.ir, 2 decode.ir, 3 tokenizer.gguf, 4 weights.bin: the rest
 *      of the input is the file, and the manifest's size and checksum of it
 *      are made to match (so the parsers behind the checksum are reached:
 *      a checksum is no defence against a hostile artifact).
 * Either loader may refuse, always with a message; neither may crash. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "artifact.h"
#include "checksum.h"
#include "device.h"
#include "fuzz_targets.h"

#ifndef MICA_FUZZ_DIR
#error "MICA_FUZZ_DIR must name tests/fuzz"
#endif

/* root/a: the compiled artifact; root/w: the one the loaders open, whose
 * files are links into root/a but for the part under test */
static char root[64], base[80], work[80];
static char *manifest; /* the compiled manifest, NUL-terminated */

static void cleanup(void)
{
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (root[0] && system(cmd) != 0)
        fprintf(stderr, "fuzz_artifact: cannot remove %s\n", root);
    free(manifest);
}

static char *read_all(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    MICA_FUZZ_CHECK(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    MICA_FUZZ_CHECK(p && fread(p, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    p[n] = 0;
    fclose(f);
    *out_len = (size_t)n;
    return p;
}

static void write_all(const char *dir, const char *name, const void *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    FILE *f = fopen(path, "wb");
    MICA_FUZZ_CHECK(f && fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

/* The artifact of the seed model in base/a, the working copy's directory
 * made, once. */
static void setup(void)
{
    if (manifest)
        return;
    strcpy(root, "/tmp/mica-fuzz-artifact-XXXXXX");
    MICA_FUZZ_CHECK(mkdtemp(root), "no temporary directory");
    atexit(cleanup);
    snprintf(base, sizeof base, "%s/a", root);
    snprintf(work, sizeof work, "%s/w", root);
    MICA_FUZZ_CHECK(mkdir(work, 0700) == 0, "cannot make %s", work);
    mica_compile_request_t req;
    memset(&req, 0, sizeof req);
    mica_compile_options_init(&req.options);
    req.options.quant = "f32";
    req.options.context = 32;
    req.model_path = MICA_FUZZ_DIR "/corpus/gguf/llama-spm-f16";
    req.target = "host";
    req.out_dir = base;
    mica_diag_t d = {0};
    MICA_FUZZ_CHECK(mica_compile(&req, NULL, &d) == MICA_OK, "compile: %s", d.msg);
    static const char *const linked[] = {"prefill.ir", "decode.ir", "weights.bin",
                                         "tokenizer.gguf", "model.so"};
    for (size_t i = 0; i < sizeof linked / sizeof linked[0]; i++) {
        char from[128], to[128];
        snprintf(from, sizeof from, "%s/%s", base, linked[i]);
        snprintf(to, sizeof to, "%s/%s", work, linked[i]);
        MICA_FUZZ_CHECK(symlink(from, to) == 0, "cannot link %s", to);
    }
    char path[128];
    size_t n;
    snprintf(path, sizeof path, "%s/manifest", base);
    manifest = read_all(path, &n);
}

/* Length of the key a line is matched by: its first word, or its first two
 * for file and weight lines. */
static size_t key_len(const char *line, size_t n)
{
    size_t k = 0;
    while (k < n && line[k] != ' ')
        k++;
    if ((k == 4 && !memcmp(line, "file", 4)) || (k == 6 && !memcmp(line, "weight", 6))) {
        k++;
        while (k < n && line[k] != ' ')
            k++;
    }
    return k;
}

/* The manifest with the input's lines applied (malloc'd). */
static char *patch(const char *in, size_t len, size_t *out_len)
{
    size_t cap = strlen(manifest) + len + 2, at = 0;
    char *out = malloc(cap);
    MICA_FUZZ_CHECK(out, "out of memory");
    /* the manifest's lines, each replaced or dropped by the first input line with its key */
    for (const char *l = manifest; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l), k = key_len(l, n);
        const char *rep = NULL;
        size_t rn = 0;
        bool drop = false;
        for (size_t i = 0; i < len && !rep && !drop;) {
            const char *ie = memchr(in + i, '\n', len - i);
            size_t m = ie ? (size_t)(ie - (in + i)) : len - i;
            const char *p = in + i;
            bool del = m > 0 && p[0] == '-';
            if (del && m - 1 >= k && !memcmp(p + 1, l, k) && (m - 1 == k || p[1 + k] == ' '))
                drop = true;
            else if (!del && key_len(p, m) == k && !memcmp(p, l, k))
                rep = p, rn = m;
            i += m + 1;
        }
        if (rep) {
            memcpy(out + at, rep, rn), at += rn, out[at++] = '\n';
        } else if (!drop) {
            memcpy(out + at, l, n), at += n, out[at++] = '\n';
        }
        l += n + (e != NULL);
    }
    /* input lines that matched nothing are appended */
    for (size_t i = 0; i < len;) {
        const char *ie = memchr(in + i, '\n', len - i);
        size_t m = ie ? (size_t)(ie - (in + i)) : len - i;
        const char *p = in + i;
        bool found = m > 0 && p[0] == '-';
        for (const char *l = manifest; *l && !found;) {
            const char *e = strchr(l, '\n');
            size_t n = e ? (size_t)(e - l) : strlen(l), k = key_len(l, n);
            found = key_len(p, m) == k && !memcmp(p, l, k);
            l += n + (e != NULL);
        }
        if (!found && at + m + 1 <= cap)
            memcpy(out + at, p, m), at += m, out[at++] = '\n';
        i += m + 1;
    }
    *out_len = at;
    return out;
}

/* The manifest with the "file NAME" line giving size and checksum of
 * bytes[0..n) (malloc'd). */
static char *with_file(const char *name, const void *bytes, size_t n, size_t *out_len)
{
    char line[160];
    int len = snprintf(line, sizeof line, "file %s %zu %016llx", name, n,
                       (unsigned long long)mica_checksum_update(MICA_CHECKSUM_INIT, bytes, n));
    return patch(line, (size_t)len, out_len);
}

static void reset_link(const char *name)
{
    char from[128], to[128];
    snprintf(from, sizeof from, "%s/%s", base, name);
    snprintf(to, sizeof to, "%s/%s", work, name);
    unlink(to);
    MICA_FUZZ_CHECK(symlink(from, to) == 0, "cannot link %s", to);
}

int mica_fuzz_artifact_one(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    setup();
    static const char *const parts[] = {"manifest", "prefill.ir", "decode.ir", "tokenizer.gguf",
                                        "weights.bin"};
    const int part = data[0] % 5;
    const char *in = (const char *)data + 1;
    size_t len = size - 1, man_len = 0;
    char *man = part == 0 ? patch(in, len, &man_len) : with_file(parts[part], in, len, &man_len);
    write_all(work, "manifest", man, man_len);
    free(man);
    if (part)
        write_all(work, parts[part], in, len);

    mica_diag_t d = {0};
    mica_artifact_t *a = NULL;
    if (mica_artifact_open(work, &a, &d) == MICA_OK)
        mica_artifact_close(a);
    else
        MICA_FUZZ_CHECK(d.msg[0], "artifact refused without a message");
    mica_device_model_t *m = NULL;
    d = (mica_diag_t){0};
    if (mica_device_model_open(work, &m, &d) == MICA_OK)
        mica_device_model_release(m);
    else
        MICA_FUZZ_CHECK(d.msg[0], "device model refused without a message");
    if (part)
        reset_link(parts[part]);
    return 0;
}

MICA_FUZZ_DEFINE_ENTRY(artifact)
