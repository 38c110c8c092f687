/* The device stack: its layering (read from the sources' #include lines),
 * the metadata-only GGUF reader, the thread pool, the executor and the
 * artifact loader (against model objects built here from small C
 * fixtures that implement the ABI over a known function of the tokens). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_support.h"

#include "gguf_meta.h"
#include "vocab.h"

#define SOURCE_DIR MICA_TEST_DATA_DIR "/../.."

/* ------------------------------------------------------------------------ */
/* layering                                                                  */

static bool file_exists(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/%s", SOURCE_DIR, dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(name, *list))
            return true;
    return false;
}

/* What backends/cpu may include in angle brackets: the C library, POSIX
 * and pthreads, dlopen. */
static const char *const LIBC_HEADERS[] = {
    "assert.h", "dlfcn.h",     "errno.h",   "inttypes.h", "limits.h", "pthread.h",
    "sched.h",  "stdatomic.h", "stdbool.h", "stddef.h",   "stdint.h", "stdio.h",
    "stdlib.h", "string.h",    "time.h",    "unistd.h",   NULL,
};

/* Files of the build tree that runtime/ includes (generated from codegen/). */
static const char *const RUNTIME_GENERATED[] = {"target_table.inc", NULL};

/* Checks every #include of every .c/.h file in dir: quoted ones must name a
 * file of one of the allowed folders (or a generated file), angled ones a
 * header of no project folder (and of the libc list when given). Returns
 * how many files it read. */
static int check_includes(const char *dir, const char *const *allowed, const char *const *generated,
                          const char *const *angled_ok)
{
    static const char *const project_dirs[] = {"ir",    "passes",  "codegen",      "backends/ref",
                                               "tools", "runtime", "backends/cpu", NULL};
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SOURCE_DIR, dir);
    DIR *dp = opendir(path);
    cr_assert_not_null(dp, "cannot list %s", path);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(dp))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h")))
            continue;
        snprintf(path, sizeof path, "%s/%s/%s", SOURCE_DIR, dir, e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        files++;
        char line[512];
        int lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            const char *p = line;
            while (*p == ' ' || *p == '\t')
                p++;
            if (strncmp(p, "#include", 8) != 0)
                continue;
            p += 8;
            while (*p == ' ')
                p++;
            char close = *p == '"' ? '"' : *p == '<' ? '>' : 0;
            cr_assert(close, "%s:%d: unreadable #include", path, lineno);
            const char *end = strchr(p + 1, close);
            cr_assert_not_null(end, "%s:%d: unterminated #include", path, lineno);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
            if (close == '"') {
                bool ok = in_list(name, generated);
                for (const char *const *a = allowed; *a && !ok; a++)
                    ok = file_exists(*a, name);
                cr_expect(ok, "%s/%s:%d includes \"%s\", which is not in its own layer", dir,
                          e->d_name, lineno, name);
            } else {
                for (const char *const *a = project_dirs; *a; a++)
                    cr_expect(!file_exists(*a, name), "%s/%s:%d includes <%s> of %s/", dir,
                              e->d_name, lineno, name, *a);
                if (angled_ok)
                    cr_expect(in_list(name, angled_ok), "%s/%s:%d includes <%s>, not libc", dir,
                              e->d_name, lineno, name);
            }
        }
        fclose(f);
    }
    closedir(dp);
    return files;
}

Test(layering, runtime_includes_only_itself_and_the_cpu_backend)
{
    static const char *const allowed[] = {"runtime", "backends/cpu", NULL};
    cr_expect_gt(check_includes("runtime", allowed, RUNTIME_GENERATED, NULL), 10);
}

Test(layering, cpu_backend_includes_only_libc_pthreads_and_itself)
{
    static const char *const allowed[] = {"backends/cpu", NULL};
    static const char *const none[] = {NULL};
    cr_expect_gt(check_includes("backends/cpu", allowed, none, LIBC_HEADERS), 0);
}

/* ------------------------------------------------------------------------ */
/* metadata-only GGUF reader                                                 */

/* The golden model's tokenizer through the device's reader: every cut of
 * the metadata section is refused as truncated, the whole of it gives the
 * vocabulary the file declares. */
Test(gguf_meta, cuts_are_refused_and_the_vocabulary_reads)
{
    size_t len = 0;
    char *bytes = mica_test_read_file(mica_test_golden("llama-tiny.f32.gguf"), &len);
    cr_assert_not_null(bytes);
    mica_gguf_meta_t *m = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_meta_parse((const uint8_t *)bytes, len, &m, &d), MICA_OK, "%s", d.msg);
    uint64_t end = mica_gguf_meta_end(m);
    cr_assert_gt(mica_gguf_meta_tensor_count(m), 0);
    /* the token list, counted independently of the vocabulary code */
    const mica_gguf_kv_t *tokens = mica_gguf_meta_find(m, "tokenizer.ggml.tokens");
    cr_assert_not_null(tokens);
    cr_expect_eq(tokens->count, 32000);
    mica_vocab_t v;
    cr_assert_eq(mica_vocab_from_gguf_meta(m, &v, &d), MICA_OK, "%s", d.msg);
    cr_expect_eq(v.desc.n_tokens, 32000);
    cr_expect_eq(v.desc.kind, MICA_VOCAB_SPM);
    mica_gguf_str_t t5;
    cr_assert(mica_gguf_array_str(tokens, 5, &t5));
    cr_expect_eq(v.desc.tokens[5].len, t5.len);
    cr_expect_eq(memcmp(v.desc.tokens[5].ptr, t5.ptr, t5.len), 0);
    mica_vocab_deinit(&v);
    mica_gguf_meta_release(m);

    /* a cut anywhere inside the metadata: refused, one line, nothing kept
     * (the sanitizer build checks nothing leaks) */
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 7);
    for (int i = 0; i < 300; i++) {
        uint64_t cut = (uint64_t)mica_test_rng_range(&rng, 0, (int64_t)end - 1);
        mica_diag_t dc = {0};
        mica_gguf_meta_t *mc = (mica_gguf_meta_t *)&mc;
        mica_status_t s = mica_gguf_meta_parse((const uint8_t *)bytes, cut, &mc, &dc);
        cr_assert_neq(s, MICA_OK, "cut at %llu parsed", (unsigned long long)cut);
        cr_expect_null(mc);
        cr_expect(strstr(dc.msg, "truncated") != NULL, "cut at %llu: %s", (unsigned long long)cut,
                  dc.msg);
        cr_expect_null(strchr(dc.msg, '\n'));
    }
    free(bytes);
}
