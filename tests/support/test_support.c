#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>

void mica_test_rng_seed(mica_test_rng_t *r, uint64_t seed)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    r->s = (z ^ (z >> 31)) | 1u;
}

uint64_t mica_test_rng_next(mica_test_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int64_t mica_test_rng_range(mica_test_rng_t *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    return lo + (int64_t)(mica_test_rng_next(r) % span);
}

float mica_test_rng_float(mica_test_rng_t *r)
{
    return (float)((double)(mica_test_rng_next(r) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

char *mica_test_read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (out_len)
            *out_len = (size_t)n;
    }
    return buf;
}

const char *mica_test_golden(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", MICA_GOLDEN_DIR, name);
    return path;
}
