/* The artifact loader of the device: a compiled artifact directory opened
 * for running (the host's reader, codegen/artifact.h, stays for the
 * compiler and the ref path).
 *
 * mica_device_model_open reads DIR/manifest ("mica-artifact 1", then
 * "key value" lines; see codegen/artifact.h), checks the format version,
 * that the CPU has the architecture and every feature the artifact was
 * built for, the size and FNV-1a checksum of every file the manifest lists
 * ("file NAME SIZE CHECKSUM"), maps weights.bin read-only, loads model.so
 * (dlopen RTLD_NOW | RTLD_LOCAL) and checks its entry table
 * (MICA_ABI_ENTRY_SYMBOL of backends/cpu/mica_abi.h) against the runtime
 * and the manifest before it reads anything else of it, and builds the
 * tokenizer from tokenizer.gguf. Any failure is one line naming the file,
 * and leaves nothing mapped, loaded or allocated.
 *
 * A device model is read-only once open: any number of sessions in any
 * number of threads run on it, each with its own mica_device_state_t.
 */
#ifndef MICA_DEVICE_H
#define MICA_DEVICE_H

#include <stdint.h>

#include "diag.h"
#include "file_map.h"
#include "mica_abi.h"
#include "tokenizer.h"

#define MICA_DEVICE_FORMAT "mica-artifact"
#define MICA_DEVICE_FORMAT_VERSION 1

/* An opened artifact. Owned by the caller (mica_device_model_release);
 * every field is read-only for users. */
typedef struct mica_device_model {
    const mica_abi_model_t *abi; /* the entry table inside model.so */
    void *object;                /* dlopen handle of model.so */
    mica_file_map_t weights;     /* weights.bin */
    mica_tokenizer_t *tokenizer;
    char *chat_template; /* tokenizer.chat_template (NUL-terminated), or NULL */
    size_t chat_template_len;
    char target[32];   /* manifest "target" */
    char quant[16];    /* manifest "quant" */
    uint64_t features; /* manifest "features" */
    int32_t n_vocab, context, chunk;
} mica_device_model_t;

/* Opens the artifact at dir into *out_model (NULL on failure). Messages
 * name the file inside dir ("model.so: ...", "manifest: ...") or say what
 * the CPU lacks ("built for armv8.6-i8mm, which needs i8mm; this CPU lacks
 * it"); the caller puts dir in front. Statuses: MICA_ERR_IO (a file cannot
 * be read or loaded), MICA_ERR_INVALID (a malformed or corrupt file),
 * MICA_ERR_UNSUPPORTED (another format version, ABI, architecture or a
 * missing CPU feature, or an artifact without a model object). */
mica_status_t mica_device_model_open(const char *dir, mica_device_model_t **out_model,
                                     mica_diag_t *d);
/* Unloads and unmaps; NULL is fine. No session may be using it. */
void mica_device_model_release(mica_device_model_t *m);

/* What one session runs in: the activation arena and the states (KV
 * caches), each 64-byte aligned and zero when created, in one anonymous
 * mapping so pages never touched cost no memory. Caller-owned. */
typedef struct mica_device_state {
    uint8_t *base; /* the mapping */
    size_t bytes;
    uint8_t *arena;   /* abi->arena_bytes */
    uint8_t **states; /* [abi->n_states], malloc'd */
    size_t states_at; /* offset of the first state in the mapping (page aligned) */
} mica_device_state_t;

/* Maps the arena and the states of m. Fails with MICA_ERR_NOMEM. */
mica_status_t mica_device_state_init(mica_device_state_t *st, const mica_device_model_t *m,
                                     mica_diag_t *d);
/* Zeroes the states again (the pages are dropped, as if never touched). */
void mica_device_state_clear(mica_device_state_t *st);
void mica_device_state_deinit(mica_device_state_t *st);

#endif
