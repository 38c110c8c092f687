#include "chat.h"

#include <stdbool.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* recognising a template                                                   */

static bool has(const char *s, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    if (n > len)
        return false;
    for (size_t i = 0; i + n <= len; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, n) == 0)
            return true;
    return false;
}

/* One of the spellings (NULL-terminated list). */
static bool has_any(const char *s, size_t len, const char *const *needles)
{
    for (; *needles; needles++)
        if (has(s, len, *needles))
            return true;
    return false;
}

/* The variant bits of a [INST] template without Mistral's later markers. */
static uint32_t llama2_flags(const char *t, size_t len)
{
    static const char *const bos_inst[] = {"bos_token + '[INST]", "bos_token+'[INST]",
                                           "bos_token + \"[INST]", "bos_token+\"[INST]", NULL};
    static const char *const strip[] = {".strip()", "| trim", "|trim", NULL};
    static const char *const spaces[] = {"' ' + eos_token", "' '+eos_token", "\" \" + eos_token",
                                         "\" \"+eos_token", NULL};
    uint32_t f = 0;
    if (has(t, len, "<<SYS>>"))
        f |= MICA_CHAT_LLAMA2_SYS;
    if (has_any(t, len, bos_inst))
        f |= MICA_CHAT_LLAMA2_BOS;
    if (has_any(t, len, strip))
        f |= MICA_CHAT_LLAMA2_STRIP;
    if (has_any(t, len, spaces))
        f |= MICA_CHAT_LLAMA2_SPACES;
    return f;
}

mica_status_t mica_chat_detect(const char *t, size_t len, mica_chat_template_t *out,
                               mica_diag_t *d)
{
    if (!t)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "the model has no chat template");
    mica_chat_format_t f = 0;
    uint32_t flags = 0;
    static const char *const phi3_roles[] = {"<|user|>", "<|assistant|>",
                                             "'<|' + message['role'] + '|>'", NULL};
    if (has(t, len, "<|im_sep|>"))
        f = MICA_CHAT_PHI4;
    else if (has(t, len, "<|START_OF_TURN_TOKEN|>"))
        f = MICA_CHAT_COMMAND_R;
    else if (has(t, len, "<|start_of_role|>"))
        f = MICA_CHAT_GRANITE;
    else if (has(t, len, "<|role_start|>"))
        f = MICA_CHAT_MEGREZ;
    else if (has(t, len, "[gMASK]sop"))
        f = MICA_CHAT_CHATGLM3;
    else if (has(t, len, "[gMASK]<sop>"))
        f = MICA_CHAT_CHATGLM4;
    else if (has(t, len, "<用户>"))
        f = MICA_CHAT_MINICPM;
    else if (has(t, len, "GPT4 Correct "))
        f = MICA_CHAT_OPENCHAT;
    else if (has(t, len, "### Instruction:"))
        f = MICA_CHAT_DEEPSEEK;
    else if (has(t, len, "'Human: '"))
        f = MICA_CHAT_ORION;
    else if (has(t, len, "'Assistant: ' + message['content'] + eos_token"))
        f = MICA_CHAT_DEEPSEEK2;
    else if (has(t, len, "USER: ") && has(t, len, "ASSISTANT:"))
        f = has(t, len, "SYSTEM: ") ? MICA_CHAT_VICUNA_ORCA : MICA_CHAT_VICUNA;
    else if (has(t, len, "bos_token + message['role']"))
        f = MICA_CHAT_MONARCH;
    else if (has(t, len, "<|im_start|>"))
        f = MICA_CHAT_CHATML;
    else if (has(t, len, "<|start_header_id|>"))
        f = MICA_CHAT_LLAMA3;
    else if (has(t, len, "<start_of_turn>"))
        f = MICA_CHAT_GEMMA;
    else if (has(t, len, "[SYSTEM_PROMPT]"))
        f = MICA_CHAT_MISTRAL_V7;
    else if (has(t, len, "[INST]") && (has(t, len, "[AVAILABLE_TOOLS]") || has(t, len, "[TOOL_CALLS]")))
        /* v3 writes "[INST] " + content, tekken "[INST]" + content */
        f = has(t, len, "[INST]\"") || has(t, len, "[INST]'") ? MICA_CHAT_MISTRAL_V3_TEKKEN
                                                            : MICA_CHAT_MISTRAL_V3;
    else if (has(t, len, "' [INST] '") || has(t, len, "\" [INST] \""))
        f = MICA_CHAT_MISTRAL_V1;
    else if (has(t, len, "[INST]")) {
        f = MICA_CHAT_LLAMA2;
        flags = llama2_flags(t, len);
    } else if (has(t, len, "<|end|>") && has_any(t, len, phi3_roles))
        f = MICA_CHAT_PHI3;
    else if (has(t, len, "<|user|>") && (has(t, len, "eos_token") || has(t, len, "</s>")))
        f = MICA_CHAT_ZEPHYR;
    else if (has(t, len, "<|user|>") && has(t, len, "<|assistant|>"))
        f = MICA_CHAT_GLMEDGE;
    if (!f)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "unrecognised chat template (known: %s)",
                             mica_chat_names());
    out->format = f;
    out->flags = flags;
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* names                                                                    */

static const struct {
    const char *name;
    mica_chat_format_t f;
    uint32_t flags;
} names[] = {
    {"chatml", MICA_CHAT_CHATML, 0},
    {"llama2", MICA_CHAT_LLAMA2, 15},
    {"llama2-sys", MICA_CHAT_LLAMA2, MICA_CHAT_LLAMA2_SYS},
    {"llama2-sys-bos", MICA_CHAT_LLAMA2, MICA_CHAT_LLAMA2_SYS | MICA_CHAT_LLAMA2_BOS},
    {"llama2-sys-strip", MICA_CHAT_LLAMA2, MICA_CHAT_LLAMA2_SYS | MICA_CHAT_LLAMA2_STRIP},
    {"mistral", MICA_CHAT_LLAMA2, 0},
    {"mistral-v1", MICA_CHAT_MISTRAL_V1, 0},
    {"mistral-v3", MICA_CHAT_MISTRAL_V3, 0},
    {"mistral-v3-tekken", MICA_CHAT_MISTRAL_V3_TEKKEN, 0},
    {"mistral-v7", MICA_CHAT_MISTRAL_V7, 0},
    {"llama3", MICA_CHAT_LLAMA3, 0},
    {"gemma", MICA_CHAT_GEMMA, 0},
    {"phi3", MICA_CHAT_PHI3, 0},
    {"phi4", MICA_CHAT_PHI4, 0},
    {"zephyr", MICA_CHAT_ZEPHYR, 0},
    {"monarch", MICA_CHAT_MONARCH, 0},
    {"orion", MICA_CHAT_ORION, 0},
    {"openchat", MICA_CHAT_OPENCHAT, 0},
    {"vicuna", MICA_CHAT_VICUNA, 0},
    {"vicuna-orca", MICA_CHAT_VICUNA_ORCA, 0},
    {"deepseek", MICA_CHAT_DEEPSEEK, 0},
    {"command-r", MICA_CHAT_COMMAND_R, 0},
    {"chatglm3", MICA_CHAT_CHATGLM3, 0},
    {"chatglm4", MICA_CHAT_CHATGLM4, 0},
    {"glmedge", MICA_CHAT_GLMEDGE, 0},
    {"minicpm", MICA_CHAT_MINICPM, 0},
    {"deepseek2", MICA_CHAT_DEEPSEEK2, 0},
    {"granite", MICA_CHAT_GRANITE, 0},
    {"megrez", MICA_CHAT_MEGREZ, 0},
};

const char *mica_chat_names(void)
{
    return "chatml, llama2, llama2-sys, llama2-sys-bos, llama2-sys-strip, mistral, mistral-v1, "
           "mistral-v3, mistral-v3-tekken, mistral-v7, llama3, gemma, phi3, phi4, zephyr, "
           "monarch, orion, openchat, vicuna, vicuna-orca, deepseek, command-r, chatglm3, "
           "chatglm4, glmedge, minicpm, deepseek2, granite, megrez";
}

mica_status_t mica_chat_from_name(const char *name, mica_chat_template_t *out, mica_diag_t *d)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) {
            out->format = names[i].f;
            out->flags = names[i].flags;
            return MICA_OK;
        }
    return mica_diag_set(d, MICA_ERR_INVALID, "unknown chat template '%s' (known: %s)", name,
                         mica_chat_names());
}

const char *mica_chat_template_name(const mica_chat_template_t *t)
{
    /* every llama2 variant by its bits: -sys, -bos, -strip, -spaces */
    static const char *const llama2[16] = {
        "mistral",          "llama2-sys",        "mistral-bos",          "llama2-sys-bos",
        "mistral-strip",    "llama2-sys-strip",  "mistral-bos-strip",    "llama2-sys-bos-strip",
        "mistral-spaces",   "llama2-sys-spaces", "mistral-bos-spaces",   "llama2-sys-bos-spaces",
        "mistral-strip-spaces", "llama2-sys-strip-spaces", "mistral-bos-strip-spaces", "llama2"};
    if (t->format == MICA_CHAT_LLAMA2)
        return llama2[t->flags & 15];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].f == t->format)
            return names[i].name;
    return "unknown";
}

/* ------------------------------------------------------------------------ */
/* rendering                                                                */

/* Appends to out while counting the full length. */
typedef struct out {
    char *p;
    size_t cap, len;
} out_t;

static void putn(out_t *o, const char *s, size_t n)
{
    if (o->len + n < o->cap)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put(out_t *o, const char *s)
{
    putn(o, s, strlen(s));
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* s without the spaces at its start (left) and end (right). */
static void put_trim(out_t *o, const char *s, bool left, bool right)
{
    size_t n = strlen(s);
    if (left)
        while (n && is_space(*s))
            s++, n--;
    if (right)
        while (n && is_space(s[n - 1]))
            n--;
    putn(o, s, n);
}

static void put_content(out_t *o, const char *s, bool trim)
{
    put_trim(o, s, trim, trim);
}

/* The [INST] families: a system message opens the next user turn. */
static void render_inst(const mica_chat_template_t *t, const mica_chat_message_t *m, size_t n,
                        out_t *o)
{
    const char *sys = NULL;
    bool first_user = true;
    const uint32_t fl = t->format == MICA_CHAT_LLAMA2 ? t->flags : 0;
    const bool strip = fl & MICA_CHAT_LLAMA2_STRIP;
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role, *c = m[i].content;
        if (!strcmp(role, "system")) {
            sys = c;
            continue;
        }
        if (!strcmp(role, "assistant")) {
            switch (t->format) {
            case MICA_CHAT_LLAMA2:
                if (fl & MICA_CHAT_LLAMA2_SPACES)
                    put(o, " ");
                put_content(o, c, strip);
                if (fl & MICA_CHAT_LLAMA2_SPACES)
                    put(o, " ");
                break;
            case MICA_CHAT_MISTRAL_V1:
                put(o, " "), put(o, c);
                break;
            case MICA_CHAT_MISTRAL_V3:
                put(o, " "), put_content(o, c, true);
                break;
            default: /* tekken */
                put(o, c);
                break;
            }
            put(o, t->eos);
            continue;
        }
        /* a user turn */
        switch (t->format) {
        case MICA_CHAT_LLAMA2:
            if (!first_user && (fl & MICA_CHAT_LLAMA2_BOS))
                put(o, t->bos);
            put(o, "[INST] ");
            if (sys && (fl & MICA_CHAT_LLAMA2_SYS)) {
                /* the template strips "<<SYS>>...<</SYS>>\n\n" + content as one */
                put(o, "<<SYS>>\n"), put(o, sys), put(o, "\n<</SYS>>\n\n");
                put_trim(o, c, false, strip);
            } else {
                if (sys)
                    put(o, sys), put(o, "\n");
                put_content(o, c, strip);
            }
            put(o, " [/INST]");
            break;
        case MICA_CHAT_MISTRAL_V1:
            put(o, " [INST] ");
            if (sys)
                put(o, sys), put(o, "\n\n");
            put(o, c), put(o, " [/INST]");
            break;
        default: /* v3: "[INST] ", tekken: "[INST]" */
            put(o, t->format == MICA_CHAT_MISTRAL_V3 ? "[INST] " : "[INST]");
            if (sys)
                put(o, sys), put(o, "\n\n");
            put(o, c), put(o, "[/INST]");
            break;
        }
        sys = NULL;
        first_user = false;
    }
    if (sys) { /* a system message with no user turn after it */
        if (t->format == MICA_CHAT_LLAMA2 && (fl & MICA_CHAT_LLAMA2_SYS))
            put(o, "[INST] <<SYS>>\n"), put(o, sys), put(o, "\n<</SYS>>\n\n");
        else
            put(o, t->format == MICA_CHAT_MISTRAL_V1 ? " [INST] " : "[INST] "), put(o, sys);
    }
}

/* A format of one prefix and suffix per role, in which "\1" stands for
 * the BOS text and "\2" for the EOS text. */
typedef struct role_spec {
    const char *start;  /* before the first message */
    const char *pre[3]; /* system, user, assistant */
    const char *suf[3];
    const char *gen;    /* the opening of the answer */
    uint8_t trim;       /* bit r: role r's content stripped */
    bool bos_between;   /* BOS before every message but the first */
    bool sys_opens_user; /* the system text + "\n\n" opens the next user turn */
} role_spec_t;

enum { SYS, USR, AST };

static const role_spec_t *role_spec(mica_chat_format_t f)
{
    static const role_spec_t monarch = {"", {"system\n", "user\n", "assistant\n"},
                                        {"\2\n", "\2\n", "\2\n"}, "\1assistant\n", 0, true, false};
    static const role_spec_t orion = {"", {"", "Human: ", ""}, {"", "\n\nAssistant: \2", "\2"}, "",
                                      0, false, true};
    static const role_spec_t openchat = {
        "", {"", "GPT4 Correct User: ", "GPT4 Correct Assistant: "},
        {"<|end_of_turn|>", "<|end_of_turn|>", "<|end_of_turn|>"}, "GPT4 Correct Assistant:", 0,
        false, false};
    static const role_spec_t vicuna = {"", {"", "USER: ", "ASSISTANT: "}, {"\n\n", "\n", "</s>\n"},
                                       "ASSISTANT:", 0, false, false};
    static const role_spec_t vicuna_orca = {"", {"SYSTEM: ", "USER: ", "ASSISTANT: "},
                                            {"\n", "\n", "</s>\n"}, "ASSISTANT:", 0, false, false};
    static const role_spec_t deepseek = {"", {"", "### Instruction:\n", "### Response:\n"},
                                         {"", "\n", "\n<|EOT|>\n"}, "### Response:\n", 0, false,
                                         false};
    static const role_spec_t command_r = {
        "",
        {"<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>", "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>",
         "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"},
        {"<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"},
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>", 1 << USR | 1 << AST, false, false};
    static const role_spec_t chatglm3 = {"[gMASK]sop", {"<|system|>\n ", "<|user|>\n ", "<|assistant|>\n "},
                                         {"", "", ""}, "<|assistant|>", 0, false, false};
    static const role_spec_t chatglm4 = {"[gMASK]<sop>", {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
                                         {"", "", ""}, "<|assistant|>", 0, false, false};
    static const role_spec_t glmedge = {"", {"<|system|>\n", "<|user|>\n", "<|assistant|>\n"},
                                        {"", "", ""}, "<|assistant|>", 0, false, false};
    static const role_spec_t minicpm = {"", {"", "<用户>", ""}, {"", "<AI>", ""}, "", 7, false, false};
    static const role_spec_t deepseek2 = {"", {"", "User: ", "Assistant: "}, {"\n\n", "\n\n", "\2"},
                                          "Assistant:", 0, false, false};
    static const role_spec_t granite = {
        "",
        {"<|start_of_role|>system<|end_of_role|>", "<|start_of_role|>user<|end_of_role|>",
         "<|start_of_role|>assistant<|end_of_role|>"},
        {"<|end_of_text|>\n", "<|end_of_text|>\n", "<|end_of_text|>\n"},
        "<|start_of_role|>assistant<|end_of_role|>", 0, false, false};
    static const role_spec_t megrez = {
        "",
        {"<|role_start|>system<|role_end|>", "<|role_start|>user<|role_end|>",
         "<|role_start|>assistant<|role_end|>"},
        {"<|turn_end|>", "<|turn_end|>", "<|turn_end|>"}, "<|role_start|>assistant<|role_end|>", 0,
        false, false};
    switch (f) {
    case MICA_CHAT_MONARCH: return &monarch;
    case MICA_CHAT_ORION: return &orion;
    case MICA_CHAT_OPENCHAT: return &openchat;
    case MICA_CHAT_VICUNA: return &vicuna;
    case MICA_CHAT_VICUNA_ORCA: return &vicuna_orca;
    case MICA_CHAT_DEEPSEEK: return &deepseek;
    case MICA_CHAT_COMMAND_R: return &command_r;
    case MICA_CHAT_CHATGLM3: return &chatglm3;
    case MICA_CHAT_CHATGLM4: return &chatglm4;
    case MICA_CHAT_GLMEDGE: return &glmedge;
    case MICA_CHAT_MINICPM: return &minicpm;
    case MICA_CHAT_DEEPSEEK2: return &deepseek2;
    case MICA_CHAT_GRANITE: return &granite;
    case MICA_CHAT_MEGREZ: return &megrez;
    default: return NULL;
    }
}

/* s with "\1" and "\2" written as the BOS and EOS texts. */
static void put_spec(out_t *o, const mica_chat_template_t *t, const char *s)
{
    for (; *s; s++) {
        if (*s == 1)
            put(o, t->bos);
        else if (*s == 2)
            put(o, t->eos);
        else
            putn(o, s, 1);
    }
}

static void render_roles(const mica_chat_template_t *t, const role_spec_t *r,
                         const mica_chat_message_t *m, size_t n, int add_assistant, out_t *o)
{
    put(o, r->start);
    const char *sys = NULL;
    for (size_t i = 0; i < n; i++) {
        int k = !strcmp(m[i].role, "system") ? SYS : !strcmp(m[i].role, "user") ? USR : AST;
        if (k == SYS && r->sys_opens_user) {
            sys = m[i].content;
            continue;
        }
        if (i > 0 && r->bos_between)
            put(o, t->bos);
        put_spec(o, t, r->pre[k]);
        if (k == USR && sys)
            put(o, sys), put(o, "\n\n"), sys = NULL;
        put_content(o, m[i].content, r->trim >> k & 1);
        put_spec(o, t, r->suf[k]);
    }
    if (sys)
        put_spec(o, t, r->pre[USR]), put(o, sys), put_spec(o, t, r->suf[USR]);
    if (add_assistant)
        put_spec(o, t, r->gen);
}

mica_status_t mica_chat_render(const mica_chat_template_t *t, const mica_chat_message_t *msgs,
                               size_t n, int add_assistant, char *out, size_t cap,
                               size_t *out_len, mica_diag_t *d)
{
    out_t o = {out, out ? cap : 0, 0};
    for (size_t i = 0; i < n; i++) {
        const char *role = msgs[i].role;
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "message %zu: unknown chat role '%s' (system, user or assistant)",
                                 i + 1, role);
    }
    const role_spec_t *spec = role_spec(t->format);
    if (spec) {
        render_roles(t, spec, msgs, n, add_assistant, &o);
        goto done;
    }
    switch (t->format) {
    case MICA_CHAT_LLAMA2:
    case MICA_CHAT_MISTRAL_V1:
    case MICA_CHAT_MISTRAL_V3:
    case MICA_CHAT_MISTRAL_V3_TEKKEN:
        render_inst(t, msgs, n, &o);
        break;
    case MICA_CHAT_GEMMA: {
        /* no system role: its text opens the next user turn */
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            const char *role = msgs[i].role, *c = msgs[i].content;
            if (!strcmp(role, "system")) {
                sys = c;
                continue;
            }
            bool user = !strcmp(role, "user");
            put(&o, user ? "<start_of_turn>user\n" : "<start_of_turn>model\n");
            if (user && sys)
                put_content(&o, sys, true), put(&o, "\n\n"), sys = NULL;
            put_content(&o, c, true), put(&o, "<end_of_turn>\n");
        }
        if (sys)
            put(&o, "<start_of_turn>user\n"), put_content(&o, sys, true), put(&o, "<end_of_turn>\n");
        break;
    }
    default:
        for (size_t i = 0; i < n; i++) {
            const char *role = msgs[i].role, *c = msgs[i].content;
            switch (t->format) {
            case MICA_CHAT_CHATML:
                put(&o, "<|im_start|>"), put(&o, role), put(&o, "\n"), put(&o, c);
                put(&o, "<|im_end|>\n");
                break;
            case MICA_CHAT_PHI4:
                /* the template opens the answer after each user turn */
                if (strcmp(role, "assistant"))
                    put(&o, "<|im_start|>"), put(&o, role), put(&o, "<|im_sep|>");
                put(&o, c), put(&o, "<|im_end|>");
                if (!strcmp(role, "user"))
                    put(&o, "<|im_start|>assistant<|im_sep|>");
                break;
            case MICA_CHAT_LLAMA3:
                put(&o, "<|start_header_id|>"), put(&o, role), put(&o, "<|end_header_id|>\n\n");
                put_content(&o, c, true), put(&o, "<|eot_id|>");
                break;
            case MICA_CHAT_PHI3:
                put(&o, "<|"), put(&o, role), put(&o, "|>\n"), put(&o, c), put(&o, "<|end|>\n");
                break;
            case MICA_CHAT_ZEPHYR:
                put(&o, "<|"), put(&o, role), put(&o, "|>\n"), put(&o, c), put(&o, t->eos);
                put(&o, "\n");
                break;
            case MICA_CHAT_MISTRAL_V7:
                if (!strcmp(role, "system"))
                    put(&o, "[SYSTEM_PROMPT] "), put(&o, c), put(&o, "[/SYSTEM_PROMPT]");
                else if (!strcmp(role, "user"))
                    put(&o, "[INST] "), put(&o, c), put(&o, "[/INST]");
                else
                    put(&o, " "), put(&o, c), put(&o, t->eos);
                break;
            default:
                return mica_diag_set(d, MICA_ERR_INVALID, "unknown chat format %d",
                                     (int)t->format);
            }
        }
        break;
    }
    if (add_assistant) {
        switch (t->format) {
        case MICA_CHAT_CHATML: put(&o, "<|im_start|>assistant\n"); break;
        case MICA_CHAT_LLAMA3: put(&o, "<|start_header_id|>assistant<|end_header_id|>\n\n"); break;
        case MICA_CHAT_GEMMA: put(&o, "<start_of_turn>model\n"); break;
        case MICA_CHAT_ZEPHYR:
        case MICA_CHAT_PHI3: put(&o, "<|assistant|>\n"); break;
        default: break; /* [INST] and phi4 turns already open the answer */
        }
    }
done:
    *out_len = o.len;
    if (o.len >= o.cap)
        return mica_diag_set(d, MICA_ERR_RANGE, "chat prompt needs %zu bytes", o.len + 1);
    out[o.len] = 0;
    return MICA_OK;
}
