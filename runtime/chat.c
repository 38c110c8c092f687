#include "chat.h"

#include <string.h>

static int contains(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n > len)
        return 0;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(s + i, needle, n) == 0)
            return 1;
    return 0;
}

mica_status_t mica_chat_detect(const char *tmpl, size_t len, mica_chat_format_t *out_format,
                               mica_diag_t *d)
{
    if (!tmpl)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "the model has no chat template");
    static const struct {
        const char *marker;
        mica_chat_format_t f;
    } markers[] = {
        {"<|im_start|>", MICA_CHAT_CHATML},
        {"<|start_header_id|>", MICA_CHAT_LLAMA3},
        {"<start_of_turn>", MICA_CHAT_GEMMA},
        {"<|user|>", MICA_CHAT_ZEPHYR},
        {"[INST]", MICA_CHAT_LLAMA2},
    };
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
        if (contains(tmpl, len, markers[i].marker)) {
            *out_format = markers[i].f;
            return MICA_OK;
        }
    return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                         "unrecognised chat template (known: chatml, llama2, llama3, gemma, zephyr)");
}

const char *mica_chat_format_name(mica_chat_format_t f)
{
    switch (f) {
    case MICA_CHAT_CHATML: return "chatml";
    case MICA_CHAT_LLAMA2: return "llama2";
    case MICA_CHAT_LLAMA3: return "llama3";
    case MICA_CHAT_GEMMA: return "gemma";
    case MICA_CHAT_ZEPHYR: return "zephyr";
    }
    return "unknown";
}

/* Appends to out while counting the full length. */
typedef struct out {
    char *p;
    size_t cap, len;
} out_t;

static void put(out_t *o, const char *s)
{
    size_t n = strlen(s);
    if (o->len + n < o->cap)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

mica_status_t mica_chat_format(mica_chat_format_t f, const mica_chat_message_t *msgs, size_t n,
                               int add_assistant, char *out, size_t cap, size_t *out_len,
                               mica_diag_t *d)
{
    out_t o = {out, cap, 0};
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role, *text = msgs[i].content;
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
            return mica_diag_set(d, MICA_ERR_INVALID, "unknown chat role '%s'", role);
        switch (f) {
        case MICA_CHAT_CHATML:
            put(&o, "<|im_start|>"), put(&o, role), put(&o, "\n"), put(&o, text), put(&o, "<|im_end|>\n");
            break;
        case MICA_CHAT_LLAMA3:
            put(&o, "<|start_header_id|>"), put(&o, role), put(&o, "<|end_header_id|>\n\n");
            put(&o, text), put(&o, "<|eot_id|>");
            break;
        case MICA_CHAT_GEMMA:
            /* gemma has no system role: it goes in front of the first user turn */
            if (!strcmp(role, "system")) {
                put(&o, "<start_of_turn>user\n"), put(&o, text), put(&o, "\n\n");
                if (i + 1 < n && !strcmp(msgs[i + 1].role, "user")) {
                    put(&o, msgs[++i].content);
                }
                put(&o, "<end_of_turn>\n");
                break;
            }
            put(&o, "<start_of_turn>"), put(&o, strcmp(role, "assistant") ? role : "model");
            put(&o, "\n"), put(&o, text), put(&o, "<end_of_turn>\n");
            break;
        case MICA_CHAT_ZEPHYR:
            put(&o, "<|"), put(&o, role), put(&o, "|>\n"), put(&o, text), put(&o, "</s>\n");
            break;
        case MICA_CHAT_LLAMA2:
            if (!strcmp(role, "system")) {
                put(&o, "[INST] <<SYS>>\n"), put(&o, text), put(&o, "\n<</SYS>>\n\n");
                if (i + 1 < n && !strcmp(msgs[i + 1].role, "user"))
                    put(&o, msgs[++i].content);
                put(&o, " [/INST]");
            } else if (!strcmp(role, "user")) {
                put(&o, "[INST] "), put(&o, text), put(&o, " [/INST]");
            } else {
                put(&o, " "), put(&o, text), put(&o, " </s>");
            }
            break;
        default:
            return mica_diag_set(d, MICA_ERR_INVALID, "unknown chat format %d", (int)f);
        }
    }
    if (add_assistant) {
        switch (f) {
        case MICA_CHAT_CHATML: put(&o, "<|im_start|>assistant\n"); break;
        case MICA_CHAT_LLAMA3: put(&o, "<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
        case MICA_CHAT_GEMMA: put(&o, "<start_of_turn>model\n"); break;
        case MICA_CHAT_ZEPHYR: put(&o, "<|assistant|>\n"); break;
        case MICA_CHAT_LLAMA2: break;
        }
    }
    *out_len = o.len;
    if (o.len >= cap)
        return mica_diag_set(d, MICA_ERR_RANGE, "chat prompt needs %zu bytes", o.len + 1);
    out[o.len] = 0;
    return MICA_OK;
}
