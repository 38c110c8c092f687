#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

bool mica_arg_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool mica_arg_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

int mica_arg_sampling(const char *verb, int argc, char **argv, int *i, mica_sampler_params_t *p)
{
    enum { TEMP, TOP_K, TOP_P, MIN_P, REPEAT, LAST_N, PRESENCE, FREQUENCY, SEED };
    static const char *const names[] = {
        [TEMP] = "--temp",     [TOP_K] = "--top-k",           [TOP_P] = "--top-p",
        [MIN_P] = "--min-p",   [REPEAT] = "--repeat-penalty", [LAST_N] = "--repeat-last-n",
        [PRESENCE] = "--presence-penalty", [FREQUENCY] = "--frequency-penalty",
        [SEED] = "--seed"};
    static const char *const wants[] = {
        [TEMP] = "a temperature in [0, 100]",     [TOP_K] = "a count >= 0",
        [TOP_P] = "a probability in (0, 1]",      [MIN_P] = "a probability in [0, 1]",
        [REPEAT] = "a factor in (0, 100]",        [LAST_N] = "a count in [0, 1048576]",
        [PRESENCE] = "a number in [-100, 100]",   [FREQUENCY] = "a number in [-100, 100]",
        [SEED] = "an integer >= 0"};
    const char *a = argv[*i];
    int which = -1;
    for (int k = 0; k < (int)(sizeof names / sizeof names[0]); k++)
        if (!strcmp(a, names[k]))
            which = k;
    if (which < 0)
        return 0;
    if (*i + 1 >= argc) {
        mica_cli_usage(verb, "%s needs a value (%s)", a, wants[which]);
        return -1;
    }
    const char *v = argv[++*i];
    int64_t n;
    double x;
    bool ok = false;
    switch (which) {
    case TEMP:
        if ((ok = mica_arg_float(v, 0, 100, &x)))
            p->temperature = (float)x;
        break;
    case TOP_K:
        if ((ok = mica_arg_int(v, 0, INT32_MAX, &n)))
            p->top_k = (int32_t)n;
        break;
    case TOP_P:
        if ((ok = mica_arg_float(v, 0, 1, &x) && x > 0))
            p->top_p = (float)x;
        break;
    case MIN_P:
        if ((ok = mica_arg_float(v, 0, 1, &x)))
            p->min_p = (float)x;
        break;
    case REPEAT:
        if ((ok = mica_arg_float(v, 0, 100, &x) && x > 0))
            p->repeat_penalty = (float)x;
        break;
    case LAST_N:
        if ((ok = mica_arg_int(v, 0, 1 << 20, &n)))
            p->repeat_last_n = (int32_t)n;
        break;
    case PRESENCE:
        if ((ok = mica_arg_float(v, -100, 100, &x)))
            p->presence_penalty = (float)x;
        break;
    case FREQUENCY:
        if ((ok = mica_arg_float(v, -100, 100, &x)))
            p->frequency_penalty = (float)x;
        break;
    case SEED:
        if ((ok = mica_arg_int(v, 0, INT64_MAX, &n)))
            p->seed = (uint64_t)n;
        break;
    }
    if (ok)
        return 1;
    mica_cli_usage(verb, "bad value '%s' for %s: it takes %s", v, a, wants[which]);
    return -1;
}

int64_t mica_arg_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}


/* The text of token id into buf[cap]; "" for none or one that does not fit. */
static void token_text(const mica_tokenizer_t *tok, int32_t id, char *buf, size_t cap)
{
    size_t n = 0;
    const char *t = tok && id >= 0 ? mica_tokenizer_token_text(tok, id, &n) : NULL;
    if (!t || n >= cap)
        n = 0;
    else
        memcpy(buf, t, n);
    buf[n] = 0;
}

int mica_arg_chat_template(const char *verb, const char *path, const char *name, const char *src,
                           size_t len, const mica_tokenizer_t *tok, char *bos, char *eos,
                           size_t cap, mica_chat_template_t *out)
{
    mica_diag_t d = {0};
    if (name) {
        if (mica_chat_from_name(name, out, &d) != MICA_OK)
            return mica_cli_usage(verb, "%s", d.msg);
    } else if (mica_chat_detect(src, len, out, &d) != MICA_OK) {
        fprintf(stderr, "%s: warning: %s; using chatml (--chat-template NAME chooses)\n", path,
                src ? "the chat template is none that mica knows" : "no chat template");
        mica_chat_from_name("chatml", out, &d);
    }
    token_text(tok, tok ? mica_tokenizer_bos(tok) : -1, bos, cap);
    token_text(tok, tok ? mica_tokenizer_eos(tok) : -1, eos, cap);
    out->bos = bos;
    out->eos = eos;
    return MICA_EXIT_OK;
}

bool mica_arg_utf8_valid(const char *str, size_t n, size_t *out_bad)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            break;
        }
        if (i + len > n)
            break;
        size_t k = 1;
        for (; k < len && (s[i + k] & 0xC0) == 0x80; k++)
            cp = cp << 6 | (s[i + k] & 0x3F);
        if (k < len || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            break;
        i += len;
    }
    if (i < n && out_bad)
        *out_bad = i;
    return i == n;
}
