/* Helpers shared by the Criterion tests: seeded random numbers and file
 * loading. Nothing here computes an expected result. */
#ifndef MICA_TEST_SUPPORT_H
#define MICA_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64-seeded xorshift; deterministic across platforms. */
typedef struct mica_test_rng {
    uint64_t s;
} mica_test_rng_t;

void mica_test_rng_seed(mica_test_rng_t *r, uint64_t seed);
uint64_t mica_test_rng_next(mica_test_rng_t *r);
/* Uniform integer in [lo, hi] (inclusive). */
int64_t mica_test_rng_range(mica_test_rng_t *r, int64_t lo, int64_t hi);
/* Uniform float in [-1, 1). */
float mica_test_rng_float(mica_test_rng_t *r);

/* Reads a whole file into a malloc'd buffer (NUL appended, not counted in
 * *out_len). Returns NULL if it cannot be read. */
char *mica_test_read_file(const char *path, size_t *out_len);

/* Path of a file in ../shared/golden: returns a static buffer. */
const char *mica_test_golden(const char *name);

#endif
