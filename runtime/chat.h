/* Chat templates: turn a conversation into the prompt text a model was
 * trained on. GGUF carries the template as Jinja source
 * (tokenizer.chat_template); mica does not run Jinja but recognises the
 * common families by the structure of that source (their turn markers and
 * how they join content, spaces and end-of-sequence) and writes them in C.
 *
 * What a template writes at the very start for BOS is left out: the
 * tokenizer adds the BOS token itself (MICA_TOKENIZER_ADD_SPECIAL), so the
 * text holds it once. A BOS or EOS a template writes between turns is
 * written as the text the caller gives for it.
 */
#ifndef MICA_CHAT_H
#define MICA_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "diag.h"

typedef enum mica_chat_format {
    MICA_CHAT_CHATML = 1,     /* <|im_start|>role\n...<|im_end|>\n (SmolLM2, Qwen2) */
    MICA_CHAT_LLAMA2 = 2,     /* [INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] (and Mistral v0) */
    MICA_CHAT_LLAMA3 = 3,     /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    MICA_CHAT_GEMMA = 4,      /* <start_of_turn>role\n...<end_of_turn>\n, assistant = model */
    MICA_CHAT_ZEPHYR = 5,     /* <|role|>\n...EOS\n (TinyLlama chat) */
    MICA_CHAT_PHI3 = 6,       /* <|role|>\n...<|end|>\n */
    MICA_CHAT_MISTRAL_V1 = 7, /* " [INST] ... [/INST] ...EOS" */
    MICA_CHAT_MISTRAL_V3 = 8, /* "[INST] ...[/INST] ...EOS" */
    MICA_CHAT_MISTRAL_V3_TEKKEN = 9, /* "[INST]...[/INST]...EOS" */
    MICA_CHAT_MISTRAL_V7 = 10, /* [SYSTEM_PROMPT] ...[/SYSTEM_PROMPT][INST] ...[/INST] ...EOS */
    MICA_CHAT_PHI4 = 11,       /* <|im_start|>role<|im_sep|>...<|im_end|> */
    /* Formats of one prefix and suffix per role (chat.c's table): */
    MICA_CHAT_MONARCH = 12,     /* BOS role\n...EOS\n */
    MICA_CHAT_ORION = 13,       /* Human: ...\n\nAssistant: EOS...EOS */
    MICA_CHAT_OPENCHAT = 14,    /* GPT4 Correct User: ...<|end_of_turn|> */
    MICA_CHAT_VICUNA = 15,      /* USER: ...\nASSISTANT: ...</s>\n */
    MICA_CHAT_VICUNA_ORCA = 16, /* the same with SYSTEM: */
    MICA_CHAT_DEEPSEEK = 17,    /* ### Instruction:\n...\n### Response:\n...\n<|EOT|>\n */
    MICA_CHAT_COMMAND_R = 18,   /* <|START_OF_TURN_TOKEN|><|USER_TOKEN|>...<|END_OF_TURN_TOKEN|> */
    MICA_CHAT_CHATGLM3 = 19,    /* [gMASK]sop<|role|>\n ... */
    MICA_CHAT_CHATGLM4 = 20,    /* [gMASK]<sop><|role|>\n... */
    MICA_CHAT_GLMEDGE = 21,     /* <|role|>\n... */
    MICA_CHAT_MINICPM = 22,     /* <用户>...<AI>... */
    MICA_CHAT_DEEPSEEK2 = 23,   /* User: ...\n\nAssistant: ...EOS */
    MICA_CHAT_GRANITE = 24,     /* <|start_of_role|>role<|end_of_role|>...<|end_of_text|>\n */
    MICA_CHAT_MEGREZ = 25,      /* <|role_start|>role<|role_end|>...<|turn_end|> */
} mica_chat_format_t;

/* Variants of MICA_CHAT_LLAMA2, as the template's source says. */
enum {
    MICA_CHAT_LLAMA2_SYS = 1u << 0,    /* a <<SYS>> block; else the system text + "\n" opens
                                          the first [INST] */
    MICA_CHAT_LLAMA2_BOS = 1u << 1,    /* BOS before every [INST] after the first */
    MICA_CHAT_LLAMA2_STRIP = 1u << 2,  /* turns' content stripped of surrounding spaces */
    MICA_CHAT_LLAMA2_SPACES = 1u << 3, /* an answer is " " + content + " " + EOS */
};

/* A recognised template. bos and eos are borrowed, NUL-terminated, and may
 * be "" (a template that writes them then writes nothing). */
typedef struct mica_chat_template {
    mica_chat_format_t format;
    uint32_t flags; /* MICA_CHAT_LLAMA2_* for MICA_CHAT_LLAMA2, else 0 */
    const char *bos;
    const char *eos;
} mica_chat_template_t;

typedef struct mica_chat_message {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated */
} mica_chat_message_t;

/* Recognises the family of a Jinja template (len bytes, not NUL-terminated)
 * into out->format and out->flags (bos and eos are left alone);
 * MICA_ERR_UNSUPPORTED when it is none of them or tmpl is NULL. */
mica_status_t mica_chat_detect(const char *tmpl, size_t len, mica_chat_template_t *out,
                               mica_diag_t *d);

/* The family called name ("chatml", "llama2", "llama3", "gemma", "phi3",
 * "mistral-v7", ...: the names mica_chat_names lists) into out->format and
 * out->flags; MICA_ERR_INVALID naming the known ones otherwise. */
mica_status_t mica_chat_from_name(const char *name, mica_chat_template_t *out, mica_diag_t *d);

/* The known names, comma-separated: "chatml, llama2, ...". Static. */
const char *mica_chat_names(void);

/* Name of a template's family and variant ("llama2-sys-bos", ...). Static. */
const char *mica_chat_template_name(const mica_chat_template_t *t);

/* Renders msgs[0..n) and, if add_assistant, the opening of the assistant's
 * turn, into out[0..cap) with a NUL (out may be NULL when cap is 0).
 * *out_len receives the length without the NUL; if that does not fit,
 * MICA_ERR_RANGE (and *out_len is what is needed). MICA_ERR_INVALID for a
 * role other than system, user and assistant. */
mica_status_t mica_chat_render(const mica_chat_template_t *t, const mica_chat_message_t *msgs,
                               size_t n, int add_assistant, char *out, size_t cap,
                               size_t *out_len, mica_diag_t *d);

#endif
