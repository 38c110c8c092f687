#include "test_artifact.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "test_support.h"

#define SOURCE_DIR MICA_TEST_DATA_DIR "/../.."

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Size and checksum of dir/name. */
static void sum_file(const char *dir, const char *name, uint64_t *size, uint64_t *sum)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    char *b = mica_test_read_file(path, &n);
    cr_assert_not_null(b, "cannot read %s", path);
    *size = n;
    *sum = fnv1a((const unsigned char *)b, n);
    free(b);
}

static void write_tokenizer(const char *dir)
{
    mica_gguf_t *f = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(mica_test_golden("llama-tiny.f32.gguf"), &f, &d), MICA_OK, "%s",
                 d.msg);
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer.gguf", dir);
    mica_gguf_writer_t *w = NULL;
    cr_assert_eq(mica_gguf_writer_create(path, &w, &d), MICA_OK, "%s", d.msg);
    for (uint64_t i = 0; i < mica_gguf_kv_count(f); i++) {
        const mica_gguf_kv_t *kv = mica_gguf_kv_at(f, i);
        if (kv->key.len > 10 && !memcmp(kv->key.ptr, "tokenizer.", 10))
            cr_assert_eq(mica_gguf_writer_add_kv(w, kv, &d), MICA_OK, "%s", d.msg);
    }
    cr_assert_eq(mica_gguf_writer_finish(w, &d), MICA_OK, "%s", d.msg);
    mica_gguf_writer_release(w);
    mica_gguf_close(f);
}

static const char *host_arch(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "none";
#endif
}

void mica_test_fixture_artifact(const char *dir, const mica_test_fixture_t *fx)
{
    static const mica_test_fixture_t good = {0};
    if (!fx)
        fx = &good;
    char path[1024];
    float w[16] = {MICA_TEST_FX_HIT};
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(w, sizeof w, 1, f) == 1 && fclose(f) == 0);
    write_tokenizer(dir);
    uint64_t wsize, wsum, tsize, tsum, msize = 0, msum = 0;
    sum_file(dir, "weights.bin", &wsize, &wsum);
    sum_file(dir, "tokenizer.gguf", &tsize, &tsum);
    if (!fx->no_object) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "cc -std=c11 -O1 -shared -fPIC -nostdlib -I%s/backends/cpu "
                 "-DFX_WEIGHTS_BYTES=%lluu -DFX_WEIGHTS_SUM=0x%llxull %s -o %s/model.so "
                 "%s/tests/data/runtime/fixture_model.c",
                 SOURCE_DIR, (unsigned long long)wsize, (unsigned long long)wsum,
                 fx->cflags ? fx->cflags : "", dir, SOURCE_DIR);
        cr_assert_eq(system(cmd), 0, "cannot build the fixture: %s", cmd);
        sum_file(dir, "model.so", &msize, &msum);
    }
    snprintf(path, sizeof path, "%s/manifest", dir);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", fx->format ? fx->format : "mica-artifact 1");
    fprintf(f, "target fixture\narch %s\nfeatures %s\nisa -\nquant f32\n",
            fx->arch ? fx->arch : host_arch(), fx->features ? fx->features : "none");
    fprintf(f, "model.arch llama\nmodel.n_vocab %d\ncontext %d\nchunk %d\n", MICA_TEST_FX_VOCAB,
            MICA_TEST_FX_CONTEXT, MICA_TEST_FX_CHUNK);
    fprintf(f, "file weights.bin %llu %016llx\n", (unsigned long long)wsize,
            (unsigned long long)wsum);
    fprintf(f, "file tokenizer.gguf %llu %016llx\n", (unsigned long long)tsize,
            (unsigned long long)tsum);
    if (!fx->no_object)
        fprintf(f, "abi 1\nfile model.so %llu %016llx\n", (unsigned long long)msize,
                (unsigned long long)msum);
    fprintf(f, "weight hit 0 64\n");
    cr_assert_eq(fclose(f), 0);
}

int32_t mica_test_fx_next(const int32_t *t, int32_t n, int32_t n_vocab)
{
    uint64_t h = 0;
    for (int32_t j = 0; j < n; j++)
        h += (uint64_t)t[j] * (uint64_t)(j + 1);
    return (int32_t)(h % (uint64_t)n_vocab);
}

float mica_test_fx_logit(const int32_t *t, int32_t pos, int32_t v, int32_t n_vocab, float hit)
{
    int32_t h = mica_test_fx_next(t, pos + 1, n_vocab);
    if (v == h)
        return hit;
    return (float)(((uint64_t)v * 31u + (uint64_t)h) % 97u) / 97.0f - 1.0f;
}

int mica_test_mappings_of(const char *path)
{
    FILE *f = fopen("/proc/self/maps", "r");
    cr_assert_not_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, path) != NULL;
    fclose(f);
    return n;
}

int mica_test_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}
