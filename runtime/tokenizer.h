/* Tokenizer: text <-> token ids for the two vocabulary kinds GGUF models
 * carry, reproducing llama.cpp's results id for id.
 *
 *   SentencePiece BPE ("llama"): spaces become U+2581, a space is put in
 *     front when the vocabulary asks, pieces merge by highest score, and
 *     pieces that are no token fall back to <0xXX> byte tokens.
 *   Byte-level BPE ("gpt2"): the text is split by the pre-tokenizer the
 *     vocabulary names (gpt-2, llama3, qwen2, smollm, starcoder, falcon,
 *     deepseek-llm, deepseek-coder, default and their aliases; any other
 *     name is refused), bytes map to printable characters as in GPT-2, and
 *     pieces merge by merge rank.
 *
 * The tokenizer is built from plain arrays (mica_vocab_desc_t) that a loader
 * fills: runtime/vocab.h from GGUF metadata (a model file's in the
 * compiler, the artifact's tokenizer.gguf on the device). It copies what
 * it needs into one allocation at create; after that it is read-only, so
 * one tokenizer may serve several threads.
 * Encoding allocates scratch for the one call (proportional to the text)
 * and frees it before returning; decoding allocates nothing.
 *
 * Any byte string is accepted: invalid UTF-8 is handled as llama.cpp does
 * (byte-level BPE reads each bad byte as U+FFFD; SentencePiece falls back to
 * byte tokens).
 */
#ifndef MICA_TOKENIZER_H
#define MICA_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* "No token" in id fields. */
#define MICA_TOKEN_NULL (-1)

typedef enum mica_vocab_kind {
    MICA_VOCAB_SPM = 1, /* SentencePiece BPE, GGUF tokenizer.ggml.model "llama" */
    MICA_VOCAB_BPE = 2, /* byte-level BPE, GGUF tokenizer.ggml.model "gpt2" */
} mica_vocab_kind_t;

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
typedef enum mica_token_type {
    MICA_TOKEN_TYPE_UNDEFINED = 0,
    MICA_TOKEN_TYPE_NORMAL = 1,
    MICA_TOKEN_TYPE_UNKNOWN = 2,
    MICA_TOKEN_TYPE_CONTROL = 3,
    MICA_TOKEN_TYPE_USER_DEFINED = 4,
    MICA_TOKEN_TYPE_UNUSED = 5,
    MICA_TOKEN_TYPE_BYTE = 6,
} mica_token_type_t;

/* A byte string, not NUL-terminated. */
typedef struct mica_vocab_str {
    const char *ptr;
    size_t len;
} mica_vocab_str_t;

/* Everything the tokenizer is made from. All pointers are borrowed for the
 * duration of mica_tokenizer_create only. */
typedef struct mica_vocab_desc {
    mica_vocab_kind_t kind;
    uint32_t n_tokens;
    const mica_vocab_str_t *tokens; /* [n_tokens] token texts, id = index, distinct */
    const float *scores;            /* [n_tokens] merge scores (SPM); NULL = all 0 */
    const int32_t *types;           /* [n_tokens] mica_token_type_t; NULL = all normal */
    uint32_t n_merges;
    const mica_vocab_str_t *merges;         /* [n_merges] "left right" (BPE); rank = index */
    mica_vocab_str_t pre;                   /* BPE pre-tokenizer name; empty = "default" */
    int32_t bos_id, eos_id, unk_id, pad_id; /* MICA_TOKEN_NULL when absent */
    bool add_bos, add_eos;                  /* what the model wants (MICA_TOKENIZER_ADD_SPECIAL) */
    bool add_space_prefix;                  /* SPM: put a space before the text */
} mica_vocab_desc_t;

typedef struct mica_tokenizer mica_tokenizer_t;

/* Builds a tokenizer (caller releases). Fails on inconsistent input: no
 * tokens, a NULL array that is needed, duplicate token texts, ids outside
 * the vocabulary, an unknown kind, or a pre-tokenizer name it does not
 * implement (named in the message). */
mica_status_t mica_tokenizer_create(const mica_vocab_desc_t *desc, mica_tokenizer_t **out_tok,
                                    mica_diag_t *d);
void mica_tokenizer_release(mica_tokenizer_t *tok);

/* mica_tokenizer_encode flags. */
enum {
    MICA_TOKENIZER_ADD_BOS = 1u << 0,       /* put BOS first */
    MICA_TOKENIZER_ADD_EOS = 1u << 1,       /* put EOS last */
    MICA_TOKENIZER_ADD_SPECIAL = 1u << 2,   /* BOS/EOS as desc.add_bos/add_eos say */
    MICA_TOKENIZER_PARSE_SPECIAL = 1u << 3, /* control/unknown token texts in the
                                             * text become those tokens */
};

/* Encodes text[0..len) into ids[0..cap). Tokens whose text appears in the
 * text are cut out first, leftmost then longest match: user-defined tokens
 * always, control and unknown tokens with MICA_TOKENIZER_PARSE_SPECIAL
 * (as llama.cpp does). *out_n receives the number of ids; when that is more
 * than cap the first cap ids are written and MICA_ERR_RANGE is returned
 * (so *out_n is the capacity needed). Asking for BOS/EOS the vocabulary
 * does not have is MICA_ERR_INVALID; text longer than 256 MiB MICA_ERR_RANGE. */
mica_status_t mica_tokenizer_encode(const mica_tokenizer_t *tok, const char *text, size_t len,
                                    uint32_t flags, int32_t *ids, size_t cap, size_t *out_n,
                                    mica_diag_t *d);

/* mica_tokenizer_decode / stream flags. */
enum {
    MICA_TOKENIZER_DECODE_SPECIAL = 1u << 0,      /* control/unknown tokens print their
                                                   * text (otherwise nothing) */
    MICA_TOKENIZER_DECODE_STRIP_SPACE = 1u << 1,  /* SPM with add_space_prefix: drop one
                                                   * leading space of the first token
                                                   * that is not BOS */
    MICA_TOKENIZER_DECODE_CLEAN_SPACES = 1u << 2, /* whole-text decode only: apply
                                                   * llama.cpp's clean-up (" ," -> ",",
                                                   * " 's" -> "'s", ...) when the
                                                   * pre-tokenizer asks for it */
};

/* The bytes of ids[0..n) into out[0..cap). *out_len receives the length;
 * when it is more than cap, MICA_ERR_RANGE is returned and *out_len is
 * enough capacity (the exact length before clean-up). Not NUL-terminated.
 * An id outside the vocabulary is MICA_ERR_INVALID. */
mica_status_t mica_tokenizer_decode(const mica_tokenizer_t *tok, const int32_t *ids, size_t n,
                                    uint32_t flags, char *out, size_t cap, size_t *out_len,
                                    mica_diag_t *d);

/* Streaming decode: emits only whole UTF-8 characters and holds back the
 * start of one that the next token completes. Caller-owned; no clean-up of
 * spaces. Bytes that can never form a character are emitted as they are. */
typedef struct mica_tokenizer_stream {
    uint32_t flags;     /* DECODE_SPECIAL / DECODE_STRIP_SPACE */
    uint8_t pending[4]; /* held-back bytes of an incomplete character */
    uint8_t n_pending;
    bool started; /* a token other than BOS was seen */
} mica_tokenizer_stream_t;

void mica_tokenizer_stream_init(mica_tokenizer_stream_t *s, uint32_t flags);

/* Appends token id's bytes: writes the complete characters to out[0..cap)
 * and *out_len. If cap is too small nothing is consumed, *out_len receives
 * the capacity needed and MICA_ERR_RANGE is returned;
 * mica_tokenizer_max_piece_len() + 4 is always enough. */
mica_status_t mica_tokenizer_stream_push(const mica_tokenizer_t *tok, mica_tokenizer_stream_t *s,
                                         int32_t id, char *out, size_t cap, size_t *out_len,
                                         mica_diag_t *d);

/* Emits the held-back bytes (at most 3) as they are and resets the stream
 * for a new text; out needs room for 3 bytes. */
size_t mica_tokenizer_stream_flush(mica_tokenizer_stream_t *s, char out[4]);

/* Vocabulary facts. Ids outside the vocabulary give NULL / UNDEFINED. */
uint32_t mica_tokenizer_n_tokens(const mica_tokenizer_t *tok);
mica_vocab_kind_t mica_tokenizer_kind(const mica_tokenizer_t *tok);
int32_t mica_tokenizer_bos(const mica_tokenizer_t *tok);
int32_t mica_tokenizer_eos(const mica_tokenizer_t *tok);
int32_t mica_tokenizer_unk(const mica_tokenizer_t *tok);
int32_t mica_tokenizer_pad(const mica_tokenizer_t *tok);
bool mica_tokenizer_add_bos(const mica_tokenizer_t *tok);
bool mica_tokenizer_add_eos(const mica_tokenizer_t *tok);
/* The raw token text (len in *out_len), pointing into the tokenizer. */
const char *mica_tokenizer_token_text(const mica_tokenizer_t *tok, int32_t id, size_t *out_len);
mica_token_type_t mica_tokenizer_token_type(const mica_tokenizer_t *tok, int32_t id);
/* True for EOS and for the end-of-turn tokens llama.cpp stops on
 * (<|endoftext|>, <|im_end|>, <|eot_id|>, <end_of_turn>, ...). */
bool mica_tokenizer_is_eog(const mica_tokenizer_t *tok, int32_t id);
/* Upper bound of the bytes one token decodes to. */
size_t mica_tokenizer_max_piece_len(const mica_tokenizer_t *tok);
/* The Unicode version of the character tables ("15.1.0", pinned in
 * codegen/unicode-data.txt, the same as llama.cpp's). */
const char *mica_tokenizer_unicode_version(void);

#endif
