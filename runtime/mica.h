/* mica: run a compiled language model on this device.
 *
 * The only header an application includes. It links libmica.a (pkg-config
 * mica, or find_package(mica) and mica::mica in CMake) and opens an
 * artifact directory that `mica compile MODEL.gguf -t TARGET -o DIR`
 * wrote for this CPU.
 *
 *   mica_model_t    an opened artifact: weights mapped once, model object
 *                   and tokenizer loaded; read-only, shared by sessions.
 *   mica_session_t  one conversation: the activation arena and KV cache,
 *                   a thread pool, a sampler and its random state.
 *
 *   mica_model_t *model;
 *   mica_error_t err;
 *   if (mica_model_open("smollm2.host", &model, &err) != 0) { puts(err.message); ... }
 *   mica_session_params_t params = mica_session_params_default();
 *   mica_session_t *session;
 *   mica_session_create(model, &params, &session, &err);
 *   mica_session_append_text(session, "Hello", 5, MICA_TOKENIZE_ADD_SPECIAL, &err);
 *   mica_session_generate(session, 64, on_piece, user, &err);
 *   mica_session_release(session);
 *   mica_model_release(model);
 *
 * Conventions: every function that can fail returns a status, 0 on
 * success (MICA_STATUS_*), and, when out_error is not NULL, writes one
 * line there saying what is wrong (naming the file for mica_model_open).
 * Outputs come last and are named out_*. There is no global state: any
 * number of models and sessions may live in one process, and different
 * sessions may be used from different threads at the same time (one
 * session from one thread at a time). Nothing is allocated per token.
 */
#ifndef MICA_H
#define MICA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MICA_API_VERSION 1

/* Statuses. */
enum {
    MICA_STATUS_OK = 0,
    MICA_STATUS_INVALID = 1,     /* malformed input: a bad file, argument or token */
    MICA_STATUS_UNSUPPORTED = 2, /* well-formed but not for this runtime or CPU */
    MICA_STATUS_IO = 3,          /* a file cannot be read or loaded */
    MICA_STATUS_NOMEM = 4,       /* out of memory */
    MICA_STATUS_RANGE = 5,       /* a count out of bounds: the context is full, a buffer short */
};

/* What went wrong, for the caller to show. Caller-owned. */
typedef struct mica_error {
    int status;        /* the status returned */
    char message[512]; /* one line, NUL-terminated, no newline */
} mica_error_t;

/* ------------------------------------------------------------------------ */
/* models                                                                    */

typedef struct mica_model mica_model_t;

/* Opens the artifact directory at path and stores the model in *out_model,
 * which the caller releases with mica_model_release (*out_model is NULL on
 * failure). Checks the format version, the CPU against the target the
 * artifact was built for ("built for armv8.6-i8mm, which needs i8mm; this
 * CPU lacks it"), every file's size and checksum and the model object's
 * ABI; on any failure nothing is left mapped or loaded. */
int mica_model_open(const char *path, mica_model_t **out_model, mica_error_t *out_error);

/* Unloads the model. All its sessions must have been released. NULL is
 * fine. */
void mica_model_release(mica_model_t *model);

/* Facts of an open model. */
int32_t mica_model_n_vocab(const mica_model_t *model);    /* logits per row */
int32_t mica_model_context(const mica_model_t *model);    /* KV capacity, tokens */
const char *mica_model_target(const mica_model_t *model); /* "x86-avx2"; owned by the model */

/* mica_model_tokenize flags. */
enum {
    MICA_TOKENIZE_ADD_SPECIAL = 1u << 0,   /* BOS (and EOS) where the model wants them */
    MICA_TOKENIZE_PARSE_SPECIAL = 1u << 1, /* "<|im_start|>" etc. in the text are those tokens */
};

/* Tokenizes text[0..len) into out_tokens[0..capacity). *out_n receives
 * the number of tokens; when that exceeds capacity the first capacity are
 * written and MICA_STATUS_RANGE is returned (call again with *out_n). */
int mica_model_tokenize(const mica_model_t *model, const char *text, size_t len, uint32_t flags,
                        int32_t *out_tokens, size_t capacity, size_t *out_n,
                        mica_error_t *out_error);

/* The text of tokens[0..n) into out_text[0..capacity) (not NUL-terminated;
 * *out_len receives its length, MICA_STATUS_RANGE when it does not fit). */
int mica_model_detokenize(const mica_model_t *model, const int32_t *tokens, size_t n,
                          char *out_text, size_t capacity, size_t *out_len,
                          mica_error_t *out_error);

/* One chat message; both strings NUL-terminated and borrowed for the call. */
typedef struct mica_message {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} mica_message_t;

/* Formats messages[0..n) with the model's chat template (and, when
 * add_assistant is nonzero, the opening of the assistant's turn) into
 * out_text[0..capacity) with a NUL; *out_len receives the length without
 * it. MICA_STATUS_RANGE when it does not fit (*out_len is what it needs),
 * MICA_STATUS_UNSUPPORTED for a template mica does not know. */
int mica_model_format_chat(const mica_model_t *model, const mica_message_t *messages, size_t n,
                           int add_assistant, char *out_text, size_t capacity, size_t *out_len,
                           mica_error_t *out_error);

/* ------------------------------------------------------------------------ */
/* sessions                                                                  */

typedef struct mica_session mica_session_t;

/* How a session runs and samples. Start from mica_session_params_default.
 * The sampling chain is llama.cpp's: penalties, top-k, top-p, min-p, then
 * the temperature. */
typedef struct mica_session_params {
    int32_t n_threads;     /* threads for the model's splits, >= 1 (default 1) */
    float temperature;     /* <= 0: greedy (default 0.8) */
    int32_t top_k;         /* <= 0: all tokens (default 40) */
    float top_p;           /* in (0, 1]; 1 keeps all (default 0.95) */
    float min_p;           /* in [0, 1]: drop tokens less likely than min_p times the
                              likeliest; 0 keeps all (default 0) */
    float repeat_penalty;  /* 1 = off (default); > 1 discourages recent tokens */
    int32_t repeat_last_n; /* recent tokens the penalty sees (default 64) */
    uint64_t seed;         /* of the sampler's random state (default 42) */
    float presence_penalty;  /* subtracted once from a recent token's logit (default 0) */
    float frequency_penalty; /* subtracted per occurrence among the recent (default 0) */
} mica_session_params_t;

mica_session_params_t mica_session_params_default(void);

/* Creates a session on model (which must outlive it) and stores it in
 * *out_session (caller releases; NULL on failure). Allocates the arena,
 * the KV cache (pages cost memory only once written), the thread pool and
 * the sampler once; nothing is allocated per token afterwards. Fails with
 * MICA_STATUS_INVALID for a bad parameter. */
int mica_session_create(const mica_model_t *model, const mica_session_params_t *params,
                        mica_session_t **out_session, mica_error_t *out_error);

/* Stops the session's threads and frees it. NULL is fine. */
void mica_session_release(mica_session_t *session);

/* Runs tokens[0..n) (after what the session has seen) through the model,
 * so the next generate continues from them. Fails with MICA_STATUS_INVALID
 * for a token outside the vocabulary and MICA_STATUS_RANGE when they do
 * not fit in the context; the session is then as it was. */
int mica_session_append_tokens(mica_session_t *session, const int32_t *tokens, size_t n,
                               mica_error_t *out_error);

/* Tokenizes text[0..len) (flags as mica_model_tokenize; give
 * MICA_TOKENIZE_ADD_SPECIAL for the start of a conversation) and appends
 * the tokens. The tokenizer's scratch for this call is the only
 * allocation, freed before it returns. */
int mica_session_append_text(mica_session_t *session, const char *text, size_t len, uint32_t flags,
                             mica_error_t *out_error);

/* Receives each generated token and its text: piece[0..len) is whole UTF-8
 * characters (len may be 0 while a character is incomplete, or for a
 * token that prints nothing), borrowed for the call. Held-back bytes at
 * the end of a generate come with token -1. Returns nonzero to stop. */
typedef int (*mica_token_callback_t)(const char *piece, size_t len, int32_t token, void *user);

/* Samples up to max_tokens tokens after what was appended (or generated)
 * so far, calling callback(piece, len, token, user) for each, and stops
 * early at an end-of-generation token (not passed on) or when the
 * callback returns nonzero. The last token is run when anything else is
 * appended or generated, so the cache always holds everything passed to
 * the callback. Fails with MICA_STATUS_INVALID when nothing was appended,
 * MICA_STATUS_RANGE when the context fills up. out_n_generated (may be
 * NULL) receives the tokens passed on. */
int mica_session_generate(mica_session_t *session, int32_t max_tokens,
                          mica_token_callback_t callback, void *user, int32_t *out_n_generated,
                          mica_error_t *out_error);

/* Forgets the conversation: the KV cache counts as empty (its memory is
 * kept and overwritten), the sampler is reseeded. */
void mica_session_reset(mica_session_t *session);

/* Tokens in the KV cache. */
int32_t mica_session_n_past(const mica_session_t *session);

/* For tools (mica run --dump-logits, perplexity): runs tokens[0..n) after
 * what the session holds and writes the logits of every one of them to
 * out_logits, n * mica_model_n_vocab(model) floats, row-major; with
 * out_logits NULL only the last row is computed (mica_session_logits).
 * The sampler does not see the tokens; generate continues after them.
 * Failures as mica_session_append_tokens. */
int mica_session_eval(mica_session_t *session, const int32_t *tokens, size_t n, float *out_logits,
                      mica_error_t *out_error);

/* The logits row of the last token run, n_vocab floats owned by the
 * session and valid until its next call; NULL when nothing was run. */
const float *mica_session_logits(const mica_session_t *session);

/* Per-op profile of what the session has run since profiling was turned
 * on (enable nonzero; turning it on again starts over). */
int mica_session_profile_enable(mica_session_t *session, int enable, mica_error_t *out_error);

/* One scheduled op of the model: what the compiler predicted and what was
 * measured. The strings are owned by the model. */
typedef struct mica_op_profile {
    const char *label;    /* "%13 qmatmul f32[64,576]" */
    const char *kernel;   /* generated variant, or "inline" */
    uint64_t bytes;       /* bytes read + written, as the schedule counted */
    uint64_t ops;         /* integer + float operations */
    double predicted_ns;  /* the schedule's roofline time, one call */
    uint32_t n_parts;     /* the plan's split */
    uint64_t measured_ns; /* summed over the calls made while profiling */
} mica_op_profile_t;

/* Op i (0 .. n-1) of graph 0 (prefill) or 1 (decode) into *out_op; the
 * count of ops in *out_n_ops (either may be NULL; i is then ignored) and
 * the graph's calls in *out_calls. MICA_STATUS_RANGE for i or graph out
 * of range. */
int mica_session_profile_op(const mica_session_t *session, int graph, uint32_t i,
                            mica_op_profile_t *out_op, uint32_t *out_n_ops, uint64_t *out_calls,
                            mica_error_t *out_error);

#ifdef __cplusplus
}
#endif

#endif
