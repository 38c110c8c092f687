/* The tokenizer's vocabulary from GGUF metadata (tokenizer.ggml.*), as
 * llama.cpp reads it: token texts, scores, types, merges, pre-tokenizer
 * name, special ids and the add-BOS/EOS/space flags with llama.cpp's
 * defaults for what the file leaves out. The result is a
 * mica_vocab_desc_t for mica_tokenizer_create (runtime/tokenizer.h).
 */
#ifndef MICA_VOCAB_H
#define MICA_VOCAB_H

#include "gguf.h"
#include "tokenizer.h"

/* A vocabulary read from a GGUF file. `desc` points into the file's mapping
 * (token, merge and pre-tokenizer strings: keep the file open while desc is
 * used) and into `mem` (the arrays), which mica_vocab_deinit frees. */
typedef struct mica_vocab {
    mica_vocab_desc_t desc;
    void *mem;
} mica_vocab_t;

/* Fills *out from f's metadata. Fails with a message naming the key when
 * the vocabulary is missing or malformed (wrong type, arrays shorter than
 * the token list), and with MICA_ERR_UNSUPPORTED for tokenizer models other
 * than "llama" (SentencePiece) and "gpt2" (byte-level BPE). The
 * pre-tokenizer name is passed through; mica_tokenizer_create judges it. */
mica_status_t mica_vocab_from_gguf(const mica_gguf_t *f, mica_vocab_t *out, mica_diag_t *d);
void mica_vocab_deinit(mica_vocab_t *v);

#endif
