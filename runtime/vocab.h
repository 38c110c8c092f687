/* The tokenizer's vocabulary from GGUF metadata (tokenizer.ggml.*), as
 * llama.cpp reads it: token texts, scores, types, merges, pre-tokenizer
 * name, special ids and the add-BOS/EOS/space flags with llama.cpp's
 * defaults for what the file leaves out. The result is a
 * mica_vocab_desc_t for mica_tokenizer_create (runtime/tokenizer.h).
 *
 * The metadata comes from runtime/gguf_meta.h: on the device an artifact's
 * tokenizer.gguf (mica_gguf_meta_open), in the compiler a model file's
 * (mica_gguf_meta(f) of ir/gguf.h).
 */
#ifndef MICA_VOCAB_H
#define MICA_VOCAB_H

#include "gguf_meta.h"
#include "tokenizer.h"

/* A vocabulary read from GGUF metadata. `desc` points into the file's bytes
 * (token, merge and pre-tokenizer strings: keep the file mapped while desc
 * is used; the meta itself may be released) and into `mem` (the arrays),
 * which mica_vocab_deinit frees. */
typedef struct mica_vocab {
    mica_vocab_desc_t desc;
    void *mem;
} mica_vocab_t;

/* Fills *out from the metadata m. Fails with a message naming the key when
 * the vocabulary is missing or malformed (wrong type, arrays shorter than
 * the token list), and with MICA_ERR_UNSUPPORTED for tokenizer models other
 * than "llama" (SentencePiece) and "gpt2" (byte-level BPE). The
 * pre-tokenizer name is passed through; mica_tokenizer_create judges it. */
mica_status_t mica_vocab_from_gguf_meta(const mica_gguf_meta_t *m, mica_vocab_t *out,
                                        mica_diag_t *d);
void mica_vocab_deinit(mica_vocab_t *v);

#endif
