/* Chat templates against golden prompts written from the model cards'
 * documented formats, `mica template` on models, files and bad input, and
 * `mica chat` piped and driven through a real terminal (tmux). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "test_run.h"
#include "test_support.h"

#define MICA MICA_BINARY_DIR "/tools/mica"
#define QWEN_TINY MICA_GOLDEN_DIR "/qwen2-tiny.q8_0.gguf"

/* ---- the golden conversation: two turns with a system prompt ---- */

static const mica_chat_message_t conv[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello!"},
    {"assistant", "Hi! How can I help?"},
    {"user", "What is 2+2?"},
};
#define N_CONV (sizeof conv / sizeof conv[0])

/* One family: a Jinja template in its structure (written here, in the
 * shape of the model's tokenizer_config.json), the name mica should
 * recognise it as, and the prompt the model card documents for conv, with
 * the generation prompt, without the leading BOS the tokenizer adds. */
typedef struct family {
    const char *name;
    const char *jinja;
    const char *golden;
} family_t;

static const family_t families[] = {
    /* SmolLM2 / Qwen2 model cards: ChatML */
    {"chatml",
     "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
     "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|im_start|>assistant\\n' }}{% endif %}",
     "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
     "<|im_start|>user\nHello!<|im_end|>\n"
     "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
     "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
     "<|im_start|>assistant\n"},
    /* Meta Llama 3 model card: header, two newlines, content, <|eot_id|> */
    {"llama3",
     "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
     "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
     "{% endif %}",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
     "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
     "<|start_header_id|>assistant<|end_header_id|>\n\n"},
    /* Meta Llama 2 chat: <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {answer} </s><s>[INST] ... */
    {"llama2",
     "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}"
     "{% set loop_messages = messages[1:] %}{% else %}{% set system_message = false %}"
     "{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}"
     "{% if loop.index0 == 0 and system_message %}{% set content = '<<SYS>>\\n' + system_message "
     "+ '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
     "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
     "' [/INST]' }}{% else %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
     "[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello! [/INST]"
     " Hi! How can I help? </s><s>[INST] What is 2+2? [/INST]"},
    /* Gemma model card: no system role (its text opens the first user
     * turn), the assistant is "model" */
    {"gemma",
     "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}"
     "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
     "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
     "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}",
     "<start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
     "<start_of_turn>model\nHi! How can I help?<end_of_turn>\n"
     "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
     "<start_of_turn>model\n"},
    /* Phi-3 model card: <|role|>\n{content}<|end|>\n */
    {"phi3",
     "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + "
     "message['content'] + '<|end|>\\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + "
     "message['content'] + '<|end|>\\n' }}{% else %}{{ '<|assistant|>\\n' + message['content'] + "
     "'<|end|>\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|assistant|>\\n' }}{% endif %}",
     "<|system|>\nYou are a helpful assistant.<|end|>\n"
     "<|user|>\nHello!<|end|>\n"
     "<|assistant|>\nHi! How can I help?<|end|>\n"
     "<|user|>\nWhat is 2+2?<|end|>\n"
     "<|assistant|>\n"},
    /* Mistral-Large-Instruct-2411 model card:
     * <s>[SYSTEM_PROMPT] <system>[/SYSTEM_PROMPT][INST] <user>[/INST] <answer></s>[INST] <user>[/INST] */
    {"mistral-v7",
     "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
     "{{ '[SYSTEM_PROMPT] ' + message['content'] + '[/SYSTEM_PROMPT]' }}"
     "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + '[/INST]' }}"
     "{% else %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}",
     "[SYSTEM_PROMPT] You are a helpful assistant.[/SYSTEM_PROMPT]"
     "[INST] Hello![/INST] Hi! How can I help?</s>[INST] What is 2+2?[/INST]"},
};
#define N_FAMILIES (sizeof families / sizeof families[0])

/* Renders conv (or its first n messages) with t into a static buffer. */
static const char *render_n(const mica_chat_template_t *t, size_t n, int gen)
{
    static char buf[4096];
    size_t len = 0;
    mica_diag_t d = {0};
    cr_assert_eq(mica_chat_render(t, conv, n, gen, buf, sizeof buf, &len, &d), MICA_OK, "%s",
                 d.msg);
    cr_assert_eq(len, strlen(buf));
    return buf;
}

Test(chat, every_family_renders_its_model_card_golden)
{
    for (size_t i = 0; i < N_FAMILIES; i++) {
        const family_t *f = &families[i];
        mica_chat_template_t t = {.bos = "<s>", .eos = "</s>"};
        mica_diag_t d = {0};
        cr_assert_eq(mica_chat_detect(f->jinja, strlen(f->jinja), &t, &d), MICA_OK, "%s: %s",
                     f->name, d.msg);
        cr_assert_str_eq(mica_chat_template_name(&t), f->name, "the %s template", f->name);
        cr_assert_str_eq(render_n(&t, N_CONV, 1), f->golden, "%s", f->name);
        /* the same by name */
        mica_chat_template_t byname = {.bos = "<s>", .eos = "</s>"};
        cr_assert_eq(mica_chat_from_name(f->name, &byname, &d), MICA_OK, "%s", d.msg);
        cr_assert_str_eq(render_n(&byname, N_CONV, 1), f->golden, "%s by name", f->name);
    }
}

Test(chat, every_name_round_trips_and_a_turn_extends_the_turns_before)
{
    /* what mica chat relies on: the conversation up to an answer, with the
     * answer's opening, is a prefix of the conversation after it */
    char names[1024];
    snprintf(names, sizeof names, "%s", mica_chat_names());
    int n_names = 0;
    for (char *name = strtok(names, ", "); name; name = strtok(NULL, ", "), n_names++) {
        mica_chat_template_t t = {.bos = "<s>", .eos = "</s>"};
        mica_diag_t d = {0};
        cr_assert_eq(mica_chat_from_name(name, &t, &d), MICA_OK, "%s: %s", name, d.msg);
        cr_assert_str_eq(mica_chat_template_name(&t), name);
        char first[4096];
        strcpy(first, render_n(&t, 2, 1));
        const char *all = render_n(&t, N_CONV, 1);
        cr_assert(strlen(all) > strlen(first) && !strncmp(all, first, strlen(first)),
                  "%s: '%s' does not start with '%s'", name, all, first);
        cr_assert(strstr(all, "What is 2+2?") && strstr(all, "Hi! How can I help?") &&
                      strstr(all, "You are a helpful assistant."),
                  "%s lost a message: '%s'", name, all);
    }
    cr_assert_geq(n_names, 29, "%d names", n_names);
}

Test(chat, each_variant_is_recognised_by_its_structure)
{
    /* the markers and joins that tell the variants apart, in templates
     * written here */
    static const struct {
        const char *jinja, *name;
    } cases[] = {
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
         "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
         "{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
         "mistral"},
        {"{% for message in messages %}{% if message['role'] == 'system' %}"
         "{{ '[INST] <<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}"
         "{% elif message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + "
         "' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
         "llama2-sys-bos"},
        {"{% for message in messages %}{% if message['role'] == 'system' %}"
         "{{ '<<SYS>>\\n' + message['content'].strip() + '\\n<</SYS>>\\n\\n' }}"
         "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() + "
         "' [/INST]' }}{% else %}{{ message['content'].strip() + eos_token }}{% endif %}"
         "{% endfor %}",
         "llama2-sys-strip"},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
         "{{ ' [INST] ' + message['content'] + ' [/INST]' }}{% else %}"
         "{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}",
         "mistral-v1"},
        {"{% if tools %}{{ '[AVAILABLE_TOOLS] [' }}{% endif %}{% for message in messages %}"
         "{% if message['role'] == 'user' %}{{ \"[INST] \" + message[\"content\"] + \"[/INST]\" }}"
         "{% else %}{{ ' ' + message['content'] | trim + eos_token }}{% endif %}{% endfor %}",
         "mistral-v3"},
        {"{% if tools %}{{ '[AVAILABLE_TOOLS][' }}{% endif %}{% for message in messages %}"
         "{% if message['role'] == 'user' %}{{ \"[INST]\" + message[\"content\"] + \"[/INST]\" }}"
         "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
         "mistral-v3-tekken"},
        {"{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
         "message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
         "{{ '<|system|>\\n' + message['content'] + eos_token }}{% else %}{{ '<|assistant|>\\n' "
         "+ message['content'] + eos_token }}{% endif %}\n{% endfor %}",
         "zephyr"},
        {"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + "
         "message['content'] + '<|im_end|>' }}{% endfor %}",
         "phi4"},
        {"{% for message in messages %}{{ bos_token + message['role'] + '\\n' + "
         "message['content'] + eos_token + '\\n' }}{% endfor %}",
         "monarch"},
        {"{% for message in messages %}{% if message['role'] == 'user' %}{{ 'Human: ' + "
         "message['content'] + '\\n\\nAssistant: ' + eos_token }}{% endif %}{% endfor %}",
         "orion"},
        {"{% for message in messages %}{{ 'GPT4 Correct ' + message['role'].title() + ': ' + "
         "message['content'] + '<|end_of_turn|>' }}{% endfor %}",
         "openchat"},
        {"{% for message in messages %}{{ 'USER: ' + message['content'] + '\\nASSISTANT:' }}"
         "{% endfor %}",
         "vicuna"},
        {"{% for message in messages %}{{ 'SYSTEM: ' + 'USER: ' + 'ASSISTANT:' }}{% endfor %}",
         "vicuna-orca"},
        {"{{ '### Instruction:\\n' + message['content'] + '\\n### Response:\\n' }}", "deepseek"},
        {"{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + content.strip() }}", "command-r"},
        {"[gMASK]sop{% for message in messages %}<|{{ message['role'] }}|>\n "
         "{{ message['content'] }}{% endfor %}",
         "chatglm3"},
        {"[gMASK]<sop>{% for item in messages %}<|{{ item['role'] }}|>\n{{ item['content'] }}"
         "{% endfor %}",
         "chatglm4"},
        {"{% for item in messages %}{% if item['role'] == 'user' %}<|user|>\n{{ item['content'] }}"
         "{% else %}<|assistant|>\n{{ item['content'] }}{% endif %}{% endfor %}",
         "glmedge"},
        {"{{ '<用户>' + message['content'].strip() + '<AI>' }}", "minicpm"},
        {"{% if message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n\\n' }}"
         "{% else %}{{ 'Assistant: ' + message['content'] + eos_token }}{% endif %}",
         "deepseek2"},
        {"{{ '<|start_of_role|>user<|end_of_role|>' + message['content'] + '<|end_of_text|>' }}",
         "granite"},
        {"{{ '<|role_start|>' + message['role'] + '<|role_end|>' + message['content'] + "
         "'<|turn_end|>' }}",
         "megrez"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mica_chat_template_t t = {.bos = "", .eos = ""};
        mica_diag_t d = {0};
        cr_assert_eq(mica_chat_detect(cases[i].jinja, strlen(cases[i].jinja), &t, &d), MICA_OK,
                     "case %zu (%s): %s", i, cases[i].name, d.msg);
        cr_assert_str_eq(mica_chat_template_name(&t), cases[i].name, "case %zu", i);
    }
}

Test(chat, zephyr_and_mistral_v0_render_their_documented_turns)
{
    /* Zephyr / TinyLlama-Chat model cards: <|role|>\n{content}</s>\n */
    mica_chat_template_t t = {.bos = "<s>", .eos = "</s>"};
    mica_diag_t d = {0};
    cr_assert_eq(mica_chat_from_name("zephyr", &t, &d), MICA_OK);
    cr_assert_str_eq(render_n(&t, N_CONV, 1),
                     "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello!</s>\n"
                     "<|assistant|>\nHi! How can I help?</s>\n<|user|>\nWhat is 2+2?</s>\n"
                     "<|assistant|>\n");
    /* Mistral-7B-Instruct v0.x: [INST] {user} [/INST]{answer}</s>; it has no
     * system role, so the system text opens the first [INST] */
    cr_assert_eq(mica_chat_from_name("mistral", &t, &d), MICA_OK);
    cr_assert_str_eq(render_n(&t, N_CONV, 1),
                     "[INST] You are a helpful assistant.\nHello! [/INST]Hi! How can I help?</s>"
                     "[INST] What is 2+2? [/INST]");
}

Test(chat, unknown_templates_roles_and_short_buffers_are_refused)
{
    mica_chat_template_t t = {.bos = "", .eos = ""};
    mica_diag_t d = {0};
    const char *junk = "INVALID TEMPLATE";
    cr_assert_eq(mica_chat_detect(junk, strlen(junk), &t, &d), MICA_ERR_UNSUPPORTED);
    cr_assert(strstr(d.msg, "unrecognised chat template"), "%s", d.msg);
    cr_assert_eq(mica_chat_detect(NULL, 0, &t, &d), MICA_ERR_UNSUPPORTED);
    cr_assert_eq(mica_chat_from_name("vicuna-9", &t, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "unknown chat template 'vicuna-9'") && strstr(d.msg, "chatml"), "%s",
              d.msg);
    cr_assert_eq(mica_chat_from_name("chatml", &t, &d), MICA_OK);
    const mica_chat_message_t bad[] = {{"user", "hi"}, {"tool", "42"}};
    char buf[256];
    size_t len;
    cr_assert_eq(mica_chat_render(&t, bad, 2, 1, buf, sizeof buf, &len, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "message 2: unknown chat role 'tool'"), "%s", d.msg);
    /* too short: the length it needs, and nothing past the buffer */
    const size_t want = strlen(families[0].golden);
    char small[16];
    memset(small, 'x', sizeof small);
    cr_assert_eq(mica_chat_render(&t, conv, N_CONV, 1, small, 10, &len, &d), MICA_ERR_RANGE);
    cr_assert_eq(len, want);
    cr_assert_eq(small[10], 'x');
}

/* ---- mica template ---- */

static char dir[] = "/tmp/mica-chat-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(dir);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(dir);
}

static const char *write_file(const char *name, const char *text)
{
    const char *path = mica_test_path(dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *conv_json =
    "[{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"},\n"
    " {\"role\": \"user\", \"content\": \"Hello!\"},\n"
    " {\"role\": \"assistant\", \"content\": \"Hi! How can I help?\"},\n"
    " {\"role\": \"user\", \"content\": \"What is 2+2?\"}]\n";

static const char *default_model(void)
{
    const char *m = getenv("MICA_DEFAULT_MODEL");
    cr_assert(m && *m, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh");
    return m;
}

Test(chat, template_prints_the_models_prompt_exactly, .init = setup, .fini = teardown)
{
    const char *m = write_file("m.json", conv_json);
    /* SmolLM2's GGUF carries a ChatML template */
    mica_test_result_t r = mica_test_mica(dir, "template", default_model(), "--messages", m, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, families[0].golden);
    cr_assert_str_eq(r.err, "");
    mica_test_result_free(&r);
    r = mica_test_mica(dir, "template", default_model(), "--messages", m, "--no-generation-prompt",
                       NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    size_t open = strlen("<|im_start|>assistant\n"), n = strlen(families[0].golden) - open;
    cr_assert_eq(strlen(r.out), n);
    cr_assert(!strncmp(r.out, families[0].golden, n));
    mica_test_result_free(&r);
}

Test(chat, template_renders_every_family_from_a_file, .init = setup, .fini = teardown)
{
    const char *m = write_file("m.json", conv_json);
    for (size_t i = 0; i < N_FAMILIES; i++) {
        const char *t = write_file("t.jinja", families[i].jinja);
        mica_test_result_t r = mica_test_mica(dir, "template", "--template-file", t, "--messages",
                                              m, "--bos", "<s>", "--eos", "</s>", NULL);
        cr_assert_eq(r.status, 0, "%s: %s", families[i].name, r.err);
        cr_assert_str_eq(r.out, families[i].golden, "%s", families[i].name);
        cr_assert_str_eq(r.err, "", "%s", families[i].name);
        mica_test_result_free(&r);
    }
    /* --chat-template overrides what the file is */
    const char *t = write_file("t.jinja", families[0].jinja);
    mica_test_result_t r = mica_test_mica(dir, "template", "--template-file", t, "--messages", m,
                                          "--chat-template", "phi3", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, families[4].golden);
    mica_test_result_free(&r);
}

Test(chat, template_falls_back_to_chatml_with_a_warning, .init = setup, .fini = teardown)
{
    const char *m = write_file("m.json", conv_json);
    const char *t = write_file("t.jinja", "{% for m in messages %}{{ m.content }}{% endfor %}");
    mica_test_result_t r =
        mica_test_mica(dir, "template", "--template-file", t, "--messages", m, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, families[0].golden);
    mica_test_expect_one_line(&r, "none that mica knows; using chatml");
    cr_assert(strstr(r.err, t), "the warning names the file: %s", r.err);
    mica_test_result_free(&r);
}

Test(chat, template_bad_input_is_one_clear_line, .init = setup, .fini = teardown)
{
    char t[512]; /* mica_test_path's buffers rotate */
    snprintf(t, sizeof t, "%s", write_file("t.jinja", families[0].jinja));
    static const struct {
        const char *json, *needle;
        int status;
    } cases[] = {
        {"[{\"role\": \"user\", \"content\": \"hi\"},\n {\"role\": }]", "bad.json:2:11: not valid JSON", 1},
        {"{\"role\": \"user\", \"content\": \"hi\"}", "expected a JSON array", 1},
        {"[{\"role\": \"user\"}]", "message 1 has no string \"content\"", 1},
        {"[{\"role\": \"user\", \"content\": \"a\"}, 3]", "message 2 is not an object", 1},
        {"[{\"role\": \"user\", \"content\": [\"multi\", \"part\"]}]",
         "message 1 has no string \"content\"", 1},
        {"[{\"role\": \"tool\", \"content\": \"42\"}]", "unknown chat role 'tool'", 1},
        {"[{\"role\": \"user\", \"content\": \"\xff\xfe\"}]", "message 1 is not valid UTF-8", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *m = write_file("bad.json", cases[i].json);
        mica_test_result_t r =
            mica_test_mica(dir, "template", "--template-file", t, "--messages", m, NULL);
        cr_assert_eq(r.status, cases[i].status, "case %zu: status %d: %s", i, r.status, r.err);
        mica_test_expect_one_line(&r, cases[i].needle);
        cr_assert(strstr(r.err, "bad.json"), "case %zu names the file: %s", i, r.err);
        cr_assert_str_eq(r.out, "", "case %zu", i);
        mica_test_result_free(&r);
    }
    const char *m = write_file("m.json", conv_json);
    mica_test_result_t r = mica_test_mica(dir, "template", "--template-file", t, "--messages",
                                          mica_test_path(dir, "missing.json"), NULL);
    cr_assert_eq(r.status, 1);
    mica_test_expect_one_line(&r, "missing.json");
    mica_test_result_free(&r);
    r = mica_test_mica(dir, "template", "--template-file", t, "--messages", m, "--chat-template",
                       "nope", NULL);
    cr_assert_eq(r.status, 2);
    mica_test_expect_one_line(&r, "unknown chat template 'nope'");
    mica_test_result_free(&r);
    r = mica_test_mica(dir, "template", "--messages", m, NULL);
    cr_assert_eq(r.status, 2);
    mica_test_expect_one_line(&r, "give a model or --template-file FILE");
    mica_test_result_free(&r);
}

/* ---- mica chat, piped ---- */

/* Runs a bash command line in dir. */
static mica_test_result_t sh(const char *cmd)
{
    const char *argv[] = {"/bin/bash", "-c", cmd, NULL};
    return mica_test_run_argv(dir, argv);
}

Test(chat, chat_ends_cleanly_at_end_of_input, .init = setup, .fini = teardown)
{
    mica_test_result_t r = mica_test_mica(dir, "chat", QWEN_TINY, "--chat-template", "chatml",
                                          NULL); /* stdin is /dev/null */
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "");
    cr_assert_str_eq(r.err, "");
    mica_test_result_free(&r);
}

Test(chat, chat_bad_command_lines_are_usage_errors, .init = setup, .fini = teardown)
{
    static const struct {
        const char *args[4], *needle;
    } cases[] = {
        {{"--chat-template", "vicuna-9"}, "unknown chat template 'vicuna-9'"},
        {{"--top-p", "2"}, "bad value '2' for --top-p"},
        {{"--temp", "hot"}, "bad value 'hot' for --temp"},
        {{"--repeat-last-n", "-1"}, "bad value '-1' for --repeat-last-n"},
        {{"--presence-penalty", "nan"}, "bad value 'nan' for --presence-penalty"},
        {{"--min-p"}, "--min-p needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[8] = {"chat", QWEN_TINY};
        for (int k = 0; k < 4 && cases[i].args[k]; k++)
            argv[2 + k] = cases[i].args[k];
        mica_test_result_t r = mica_test_mica_argv(dir, argv);
        cr_assert_eq(r.status, 2, "case %zu: %d %s", i, r.status, r.err);
        mica_test_expect_one_line(&r, cases[i].needle);
        mica_test_result_free(&r);
    }
}

Test(chat, chat_skips_a_line_that_is_not_utf8, .init = setup, .fini = teardown)
{
    mica_test_result_t r = sh("printf 'caf\\xc3\\n\\xff\\xfeok\\n' | " MICA " chat " QWEN_TINY
                              " --chat-template chatml -n 2");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "stdin: line 1 is not valid UTF-8 (byte 4); ignored"), "%s", r.err);
    cr_assert(strstr(r.err, "stdin: line 2 is not valid UTF-8 (byte 1); ignored"), "%s", r.err);
    cr_assert_str_eq(r.out, "", "nothing was answered");
    mica_test_result_free(&r);
}

Test(chat, chat_reports_a_closed_stdout, .init = setup, .fini = teardown)
{
    mica_test_result_t r = sh("printf 'Hello\\n' | " MICA " chat " QWEN_TINY
                              " --chat-template chatml -n 500 --temp 0 2>err | head -c 10 "
                              ">/dev/null; s=${PIPESTATUS[1]}; cat err >&2; exit $s");
    cr_assert_eq(r.status, 1, "%d: %s", r.status, r.err);
    mica_test_expect_one_line(&r, "mica chat: cannot write the answer to stdout");
    mica_test_result_free(&r);
}

/* Counts of one "turn N: ..." line of -v. */
typedef struct turn_stats {
    long long evaluated, before, generated, cache, ctx;
} turn_stats_t;

static bool find_turn(const char *text, int n, turn_stats_t *t)
{
    char key[32];
    snprintf(key, sizeof key, "turn %d: ", n);
    const char *p = strstr(text, key);
    if (!p)
        return false;
    double s1, s2;
    int got = sscanf(p + strlen(key),
                     "evaluated %lld prompt tokens after %lld cached (%lf s), generated %lld "
                     "tokens (%lf tok/s); cache %lld of %lld",
                     &t->evaluated, &t->before, &s1, &t->generated, &s2, &t->cache, &t->ctx);
    return got == 7;
}

Test(chat, chat_drops_the_oldest_turns_when_the_context_fills, .init = setup, .fini = teardown)
{
    mica_test_result_t r = sh("printf 'one two\\nthree four\\nfive six\\nseven eight\\nnine ten\\n'"
                              " | " MICA " chat " QWEN_TINY " --chat-template chatml -c 80 -n 12 "
                              "--temp 0 -v --system 'Be brief.'");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "the context (80 tokens) is full: dropped the oldest"), "%s", r.err);
    cr_assert(strstr(r.err, "kept the system prompt"), "%s", r.err);
    int dropped_turns = 0;
    for (int n = 1; n <= 5; n++) {
        turn_stats_t t;
        cr_assert(find_turn(r.err, n, &t), "no stats for turn %d: %s", n, r.err);
        cr_assert_leq(t.cache, 80, "turn %d: %lld cached", n, t.cache);
        cr_assert_eq(t.cache, t.before + t.evaluated + t.generated, "turn %d", n);
        dropped_turns += n > 1 && t.before == 0; /* fed again from an empty cache */
    }
    cr_assert_geq(dropped_turns, 1, "%s", r.err);
    mica_test_result_free(&r);
}

Test(chat, chat_refuses_a_message_longer_than_the_context, .init = setup, .fini = teardown)
{
    mica_test_result_t r = sh("{ printf 'lorem ipsum %.0s' {1..100}; printf '\\nshort\\n'; } | " MICA " chat " QWEN_TINY
                              " --chat-template chatml -c 64 -n 4 --temp 0 -v");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "tokens and the context holds 64; not sent"), "%s", r.err);
    turn_stats_t t;
    cr_assert(find_turn(r.err, 2, &t), "the next message is answered: %s", r.err);
    cr_assert_eq(t.before, 0, "the refused message left nothing in the cache");
    mica_test_result_free(&r);
}

/* ---- mica chat in a terminal ---- */

/* Runs `tmux -S dir/sock ARGS` (ARGS a shell-quoted string). */
static mica_test_result_t tmux(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "tmux -S %s %s", mica_test_path(dir, "sock"), args);
    return sh(cmd);
}

static void tmux_ok(const char *args)
{
    mica_test_result_t r = tmux(args);
    cr_assert_eq(r.status, 0, "tmux %s: %s", args, r.err);
    mica_test_result_free(&r);
}

/* Types text and Enter into the chat. */
static void type_line(const char *text)
{
    char args[1024];
    snprintf(args, sizeof args, "send-keys -t chat -l '%s'", text);
    tmux_ok(args);
    tmux_ok("send-keys -t chat Enter");
}

/* The whole pane, history included, wrapped lines joined (malloc'd). */
static char *pane(void)
{
    mica_test_result_t r = tmux("capture-pane -p -J -S - -t chat");
    cr_assert_eq(r.status, 0, "capture-pane: %s", r.err);
    free(r.err);
    return r.out;
}

/* Polls the pane until done(pane, arg) holds; fails after 120 s. */
static char *wait_pane(bool (*done)(const char *, const void *), const void *arg, const char *what)
{
    for (int i = 0; i < 6000; i++) {
        char *p = pane();
        if (done(p, arg))
            return p;
        free(p);
        usleep(20000);
    }
    char *p = pane();
    cr_assert_fail("waited 120 s for %s; the terminal shows:\n%s", what, p);
    return NULL;
}

static bool has_text(const char *p, const void *needle)
{
    return strstr(p, needle) != NULL;
}

static bool has_turn(const char *p, const void *n)
{
    turn_stats_t t;
    return find_turn(p, *(const int *)n, &t);
}

static turn_stats_t wait_turn(int n)
{
    char *p = wait_pane(has_turn, &n, "an answer's stats");
    turn_stats_t t;
    find_turn(p, n, &t);
    free(p);
    return t;
}

/* Characters after the last occurrence of needle, or -1. */
static long after(const char *p, const char *needle)
{
    const char *last = NULL;
    for (const char *q = strstr(p, needle); q; q = strstr(q + 1, needle))
        last = q;
    if (!last)
        return -1;
    long n = 0;
    for (const char *q = last + strlen(needle); *q; q++)
        n += *q != ' ' && *q != '\n';
    return n;
}

typedef struct growth {
    const char *needle;
    long more_than;
} growth_t;

/* The answer after needle is longer than more_than and still going. */
static bool grew(const char *p, const void *arg)
{
    const growth_t *g = arg;
    return after(p, g->needle) > g->more_than && !strstr(p, "turn 3: ");
}

/* The number of tokens of text, by `mica tokenize --special`. */
static long count_tokens(const char *model, const char *text)
{
    mica_test_result_t r = mica_test_mica(dir, "tokenize", model, "-p", text, "--special", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    long n = 0;
    for (char *tok = strtok(r.out, " \n"); tok; tok = strtok(NULL, " \n"))
        n++;
    mica_test_result_free(&r);
    return n;
}

Test(chat, chat_in_a_terminal_streams_keeps_the_cache_resets_and_stops_on_ctrl_c,
     .init = setup, .fini = teardown, .timeout = 400)
{
    /* SmolLM2 compiled for this machine: fast enough to chat in seconds,
     * and the artifact carries the model's chat template */
    const char *art = mica_test_path(dir, "smollm2.host");
    mica_test_result_t r = mica_test_mica(dir, "compile", default_model(), "-t", "host", "-c",
                                          "512", "-o", art, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    r = mica_test_mica(dir, "template", art, "--messages", write_file("m.json", conv_json), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, families[0].golden, "the artifact's template is the GGUF's");
    mica_test_result_free(&r);

    char script[1024];
    snprintf(script, sizeof script,
             "#!/bin/bash\n%s chat %s --system 'You are a helpful assistant.' -n 200 --temp 0 "
             "-v -t 1\necho \"[exit $?]\"\nsleep 100\n",
             MICA, art);
    const char *run = write_file("run.sh", script);
    char args[1200];
    snprintf(args, sizeof args,
             "-f /dev/null new-session -d -s chat -x 200 -y 60 'bash %s'", run);
    tmux_ok(args);
    free(wait_pane(has_text, "> ", "the first prompt"));

    /* turn 1 from an empty cache */
    type_line("Hi, my name is Ana.");
    turn_stats_t t1 = wait_turn(1);
    cr_assert_eq(t1.before, 0);
    cr_assert_eq(t1.cache, t1.evaluated + t1.generated);
    cr_assert_eq(t1.ctx, 512);

    /* turn 2 evaluates only the new text: the end of answer 1, the user
     * turn and the answer's opening */
    type_line("What is my name?");
    turn_stats_t t2 = wait_turn(2);
    long new_text = count_tokens(default_model(), "<|im_end|>\n<|im_start|>user\nWhat is my "
                                                  "name?<|im_end|>\n<|im_start|>assistant\n");
    cr_assert_eq(t2.before, t1.cache, "turn 2 starts from turn 1's cache");
    cr_assert_eq(t2.evaluated, new_text, "turn 2 evaluated %lld tokens, the new text is %ld",
                 t2.evaluated, new_text);
    cr_assert_lt(t2.evaluated, t2.before);
    cr_assert_eq(t2.cache, t2.before + t2.evaluated + t2.generated);

    /* a long answer streams (its text grows on screen before it ends) and
     * Ctrl-C stops it, back at the prompt */
    const char *ask = "Write a long story about a dragon and a knight.";
    type_line(ask);
    growth_t g = {ask, 10};
    char *p = wait_pane(grew, &g, "the answer to start");
    g.more_than = after(p, ask) + 20;
    free(p);
    free(wait_pane(grew, &g, "the answer to go on"));
    tmux_ok("send-keys -t chat C-c");
    turn_stats_t t3 = wait_turn(3);
    cr_assert_lt(t3.generated, 200, "Ctrl-C did not stop the answer");
    p = wait_pane(has_text, "[answer stopped]", "the note of the stop");
    const char *stats3 = strstr(p, "turn 3: ");
    cr_assert(stats3 && strstr(stats3, "> "), "no prompt after the stopped answer:\n%s", p);
    free(p);
    cr_assert_eq(t3.before, t2.cache);

    /* /reset: the same first message is evaluated from an empty cache again
     * and, greedy, answered the same */
    type_line("/reset");
    free(wait_pane(has_text, "conversation reset", "the reset"));
    type_line("Hi, my name is Ana.");
    turn_stats_t t4 = wait_turn(4);
    cr_assert_eq(t4.before, 0);
    cr_assert_eq(t4.evaluated, t1.evaluated);
    cr_assert_eq(t4.generated, t1.generated);

    type_line("/exit");
    free(wait_pane(has_text, "[exit 0]", "mica chat to exit with status 0"));
    r = tmux("kill-server");
    mica_test_result_free(&r);
}
