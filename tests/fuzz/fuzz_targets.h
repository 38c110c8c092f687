/* The fuzz targets: each takes one input of arbitrary bytes and returns 0.
 * A crash, a sanitizer report, a leak or a failed oracle check (abort) is a
 * finding. Built two ways: as libFuzzer programs (tests/fuzz/CMakeLists.txt,
 * clang with -fsanitize=fuzzer; MICA_FUZZ_ENTRY names the target that
 * becomes LLVMFuzzerTestOneInput) and into tests/test_fuzz_replay.c, which
 * replays every saved corpus and crash input in the normal suite. */
#ifndef MICA_FUZZ_H
#define MICA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* GGUF reader, config, model builder, one ref step, vocabulary. */
int mica_fuzz_gguf_one(const uint8_t *data, size_t size);
/* IR text parser, verifier, the whole pass pipeline. */
int mica_fuzz_ir_one(const uint8_t *data, size_t size);
/* Tokenizer encode and streaming decode, both vocabulary kinds. */
int mica_fuzz_tokenizer_one(const uint8_t *data, size_t size);
/* Random movement-op chains: geometry + fold-regions against plain loops. */
int mica_fuzz_region_one(const uint8_t *data, size_t size);
/* The artifact loaders (compiler's and device's) on a fuzzed manifest. */
int mica_fuzz_artifact_one(const uint8_t *data, size_t size);

/* Stops the process with a message when an oracle check fails. */
#define MICA_FUZZ_CHECK(cond, ...)                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz check failed: %s (%s:%d): ", #cond, __FILE__, __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef MICA_FUZZ_ENTRY
#define MICA_FUZZ_CAT2(a, b) a##b
#define MICA_FUZZ_CAT(a, b) MICA_FUZZ_CAT2(a, b)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#define MICA_FUZZ_DEFINE_ENTRY(name)                                                               \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                   \
    {                                                                                              \
        return mica_fuzz_##name##_one(data, size);                                                 \
    }
#else
#define MICA_FUZZ_DEFINE_ENTRY(name)
#endif

#endif
