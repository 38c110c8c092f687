/* Chat templates: turn a conversation into the prompt text a model was
 * trained on. GGUF carries the template as Jinja source
 * (tokenizer.chat_template); mica does not run Jinja but recognises the
 * common families by their markers, as llama.cpp does, and formats them in C.
 */
#ifndef MICA_CHAT_H
#define MICA_CHAT_H

#include <stddef.h>

#include "diag.h"

typedef enum mica_chat_format {
    MICA_CHAT_CHATML = 1, /* <|im_start|>role\n...<|im_end|>\n (SmolLM2, Qwen2) */
    MICA_CHAT_LLAMA2 = 2, /* [INST] <<SYS>>...<</SYS>> ... [/INST] */
    MICA_CHAT_LLAMA3 = 3, /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    MICA_CHAT_GEMMA = 4,  /* <start_of_turn>role\n...<end_of_turn>\n */
    MICA_CHAT_ZEPHYR = 5, /* <|role|>\n...</s>\n (TinyLlama chat) */
} mica_chat_format_t;

typedef struct mica_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated */
} mica_chat_message_t;

/* Recognises the family of a Jinja template (len bytes, not NUL-terminated);
 * MICA_ERR_UNSUPPORTED when it matches none. A NULL template means the
 * model has none: ChatML is assumed only if `fallback_chatml` is set. */
mica_status_t mica_chat_detect(const char *tmpl, size_t len, mica_chat_format_t *out_format,
                               mica_diag_t *d);

/* Name of a format ("chatml", ...). */
const char *mica_chat_format_name(mica_chat_format_t f);

/* Formats msgs[0..n) and, if add_assistant, the opening of the assistant's
 * turn, into out[0..cap) with a NUL. *out_len receives the length without
 * the NUL; if that does not fit, MICA_ERR_RANGE (and *out_len is what is
 * needed). */
mica_status_t mica_chat_format(mica_chat_format_t f, const mica_chat_message_t *msgs, size_t n,
                               int add_assistant, char *out, size_t cap, size_t *out_len,
                               mica_diag_t *d);

#endif
