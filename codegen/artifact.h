/* The artifact: what `mica compile` writes for one model and one target,
 * and how the host reads it back.
 *
 * An artifact is a directory:
 *   manifest        text, one "key value" per line: the format name and
 *                   version, target and its features, quantization, model
 *                   config, context and chunk, the peak RAM it needs, each
 *                   file's size and FNV-1a 64 checksum, and where every
 *                   weight lives in weights.bin ("weight NAME OFFSET BYTES")
 *   prefill.ir      the scheduled prefill graph as IR text (ir/print.c)
 *   decode.ir       the scheduled decode graph
 *   weights.bin     every weight the graphs read (quantized, packed, or as
 *                   the model file had it), each at a 64-byte-aligned
 *                   offset, meant to be mmapped
 *   tokenizer.gguf  the model's tokenizer.* metadata and nothing else
 * It is written into a temporary directory beside the target and renamed
 * into place at the end, so a failure (or SIGINT) leaves no artifact and no
 * temporary directory; an existing directory is replaced only with force,
 * and only once the new one is complete.
 */
#ifndef MICA_ARTIFACT_H
#define MICA_ARTIFACT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"
#include "passes.h"
#include "program.h"

#define MICA_ARTIFACT_FORMAT "mica-artifact"
#define MICA_ARTIFACT_VERSION 1

/* The memory the artifact needs on the device, bytes. */
typedef struct mica_artifact_memory {
    uint64_t weights;        /* weights read every step: resident */
    uint64_t embedding;      /* the embedding table: stays in the file (flash) */
    uint64_t embedding_rows; /* the rows one prefill call reads from it */
    uint64_t arena;          /* the activation arena (the larger graph's plan) */
    uint64_t kv_cache;       /* the KV cache at the compiled context */
    uint64_t peak;           /* weights + embedding_rows + arena + kv_cache */
} mica_artifact_memory_t;

typedef struct mica_compile_request {
    const char *model_path; /* the GGUF */
    const char *out_dir;    /* the artifact directory to write */
    const char *target;     /* a name from `mica targets` */
    mica_compile_options_t options;
    const char *isa;        /* features the kernels must use ("i8mm,fp16"), checked
                               against the target by the caller; NULL = the target's best */
    bool force;             /* replace out_dir if it exists */
    FILE *log;              /* the memory report and progress go here (NULL: none) */
    bool progress;          /* per-tensor progress lines (when log is a terminal) */
} mica_compile_request_t;

/* Compiles the model for the target and writes the artifact. Before it
 * writes anything large it prints the peak RAM to req->log. Bad requests
 * (unknown target, a quantization, group or context the model or target
 * cannot honour, out_dir existing without force) fail with
 * MICA_ERR_INVALID / MICA_ERR_UNSUPPORTED; write failures with MICA_ERR_IO
 * naming the file. out_memory may be NULL. */
mica_status_t mica_compile(const mica_compile_request_t *req, mica_artifact_memory_t *out_memory,
                           mica_diag_t *d);

/* An artifact opened on the host: its program (graphs parsed from the IR
 * text, weight nodes bound into the mapped weights.bin) and its tokenizer
 * metadata. Owned by the caller: mica_artifact_close. */
typedef struct mica_artifact {
    mica_program_t *program;
    mica_gguf_t *tokenizer; /* tokenizer.gguf, mapped */
    char target[32];
    char quant[16];
    mica_artifact_memory_t memory;
    const void *weights;    /* weights.bin mapping */
    uint64_t weights_bytes;
} mica_artifact_t;

/* True if path is a directory holding a manifest (an artifact, as opposed
 * to a GGUF or IR file). */
bool mica_artifact_is_dir(const char *path);

/* Opens the artifact at dir: checks the format name and version, every
 * file's size and checksum, parses and verifies the graphs and binds their
 * weights. Fails naming the file and the problem. */
mica_status_t mica_artifact_open(const char *dir, mica_artifact_t **out_artifact, mica_diag_t *d);
void mica_artifact_close(mica_artifact_t *a);

#endif
