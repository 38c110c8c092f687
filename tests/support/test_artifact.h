/* Artifact directories for the runtime's tests, around the fixture model
 * object of tests/data/runtime/fixture_model.c (logits a known function of
 * the tokens, see there), and the oracle of that function. */
#ifndef MICA_TEST_ARTIFACT_H
#define MICA_TEST_ARTIFACT_H

#include <stdbool.h>
#include <stdint.h>

#define MICA_TEST_FX_VOCAB 32000 /* the golden llama-tiny tokenizer's */
#define MICA_TEST_FX_CONTEXT 64
#define MICA_TEST_FX_CHUNK 5
#define MICA_TEST_FX_HIT 2.0f /* W[0] of weights.bin: the score of the chosen token */

/* How the artifact differs from a good one (all zero: good). */
typedef struct mica_test_fixture {
    const char *cflags;   /* extra flags for the model object's build ("-DFX_ABI_VERSION=2") */
    const char *format;   /* first manifest line instead of "mica-artifact 1" */
    const char *arch;     /* manifest arch instead of the host's */
    const char *features; /* manifest features instead of "none" */
    bool no_object;       /* no model.so and no abi line (an artifact before the emitter) */
} mica_test_fixture_t;

/* Writes the fixture artifact into dir (which must exist): weights.bin
 * (64 bytes, W[0] = MICA_TEST_FX_HIT), tokenizer.gguf (the tokenizer keys
 * of the golden llama-tiny model), model.so (cc -shared -nostdlib) and a
 * manifest listing each with its size and FNV-1a 64 checksum (computed
 * here by a plain loop). Fails the test if it cannot. */
void mica_test_fixture_artifact(const char *dir, const mica_test_fixture_t *f);

/* The fixture model's logit of token v at position pos after tokens
 * t[0..pos], straight from its definition. */
float mica_test_fx_logit(const int32_t *t, int32_t pos, int32_t v, int32_t n_vocab, float hit);
/* Its greedy choice after t[0..n): the h of the definition. */
int32_t mica_test_fx_next(const int32_t *t, int32_t n, int32_t n_vocab);

/* Mappings of this process (/proc/self/maps) that name path. */
int mica_test_mappings_of(const char *path);
/* Open file descriptors of this process. */
int mica_test_open_fds(void);

#endif
