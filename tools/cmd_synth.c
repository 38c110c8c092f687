/* mica synth --preset NAME -q TYPE -o FILE.gguf [--seed S] [--layers N] [--vocab N]
 *
 * Writes a GGUF file with random weights in the shapes of a real model and
 * a structurally valid tokenizer, so a shape can be compiled, run and
 * benchmarked (by mica or llama.cpp) without downloading the model. Keys
 * and tensor names are llama.cpp's. Weights are streamed row by row: the
 * file may be far larger than memory.
 *
 * The vocabulary is made, not learnt: byte-level BPE gets GPT-2's 256 byte
 * tokens, then tokens each made by one merge of two earlier tokens (common
 * English words first, then random pairs), the merge list matching; the
 * SentencePiece one gets <unk> <s> </s>, the 256 <0xXX> byte tokens, then
 * pieces built the same way, scored by creation order. The vocabulary
 * depends only on the preset and --vocab; --seed changes only weights.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "gguf_write.h"
#include "quant_encode.h"

/* ------------------------------------------------------------------------ */
/* Presets                                                                   */

static const char *const CHATML_TEMPLATE =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";

static const char *const LLAMA3_TEMPLATE =
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}";

static const char *const ZEPHYR_TEMPLATE =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' "
    "+ message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

#define MAX_SPECIALS 8

typedef struct preset {
    const char *name, *title;
    const char *arch;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
    float rope_theta, norm_eps;
    bool tied, qkv_bias;
    bool spm;        /* SentencePiece ("llama") rather than byte-level BPE ("gpt2") */
    const char *pre; /* BPE pre-tokenizer */
    /* BPE special tokens (CONTROL). In the full vocabulary they sit from id
     * spec_first in a block of spec_block ids (named ones first, the rest
     * reserved); with --vocab, only the named ones, first or last. */
    const char *specials[MAX_SPECIALS];
    int n_specials;
    int64_t spec_first, spec_block;
    int bos, eos, pad; /* indexes into specials (-1: none) */
    const char *chat_template;
} preset_t;

static const preset_t PRESETS[] = {
    {"smollm2-135m", "SmolLM2 135M", "llama", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f, 1e-5f,
     true, false, false, "smollm", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}, 3, 0, 3,
     1, 2, 0, NULL},
    {"qwen2.5-0.5b", "Qwen2.5 0.5B", "qwen2", 896, 24, 14, 2, 4864, 151936, 32768, 1e6f, 1e-6f,
     true, true, false, "qwen2", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}, 3, 151643, 3,
     0, 2, 0, NULL},
    {"qwen2-1.5b", "Qwen2 1.5B", "qwen2", 1536, 28, 12, 2, 8960, 151936, 32768, 1e6f, 1e-6f, true,
     true, false, "qwen2", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}, 3, 151643, 3, 0, 0,
     0, NULL},
    {"llama3.2-1b", "Llama 3.2 1B", "llama", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f,
     1e-5f, true, false, false, "llama-bpe",
     {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
      "<|eot_id|>"},
     5, 128000, 256, 0, 4, -1, NULL},
    {"tinyllama-1.1b", "TinyLlama 1.1B", "llama", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f,
     1e-5f, false, false, true, NULL, {NULL}, 0, 0, 0, -1, -1, -1, NULL},
};
#define N_PRESETS (sizeof PRESETS / sizeof PRESETS[0])

static const char *chat_template_of(const preset_t *p)
{
    if (p->spm)
        return ZEPHYR_TEMPLATE;
    return !strcmp(p->pre, "llama-bpe") ? LLAMA3_TEMPLATE : CHATML_TEMPLATE;
}

static const struct {
    const char *name;
    mica_dtype_t dtype;
    uint32_t file_type; /* llama.cpp's general.file_type (LLAMA_FTYPE_*) */
} TYPES[] = {
    {"f32", MICA_DTYPE_F32, 0},   {"f16", MICA_DTYPE_F16, 1},   {"q8_0", MICA_DTYPE_Q8_0, 7},
    {"q4_0", MICA_DTYPE_Q4_0, 2}, {"q4_1", MICA_DTYPE_Q4_1, 3},
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

/* ------------------------------------------------------------------------ */
/* Random numbers: splitmix64, and a normal-like value from four uniforms
 * (Irwin-Hall, unit variance): integer and +,* only, so the same seed
 * gives the same bytes on every platform.                                   */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static double gauss(uint64_t *s)
{
    uint64_t a = splitmix(s), b = splitmix(s);
    double u = (double)(a & 0xffffffffu) + (double)(a >> 32) + (double)(b & 0xffffffffu) +
               (double)(b >> 32);
    return (u / 4294967296.0 - 2.0) * 1.7320508075688772; /* sqrt(3) */
}

/* ------------------------------------------------------------------------ */
/* Vocabulary                                                                */

typedef struct vocab {
    uint32_t n;        /* tokens */
    char **tok;        /* [n] NUL-terminated texts (owned) */
    size_t *len;       /* [n] */
    int32_t *type;     /* [n] GGUF token types */
    float *score;      /* [n] */
    uint32_t n_merges; /* BPE */
    char **merge;      /* [n_merges] "left right" (owned) */
    int32_t bos, eos, unk, pad;
} vocab_t;

static void vocab_free(vocab_t *v)
{
    for (uint32_t i = 0; v->tok && i < v->n; i++)
        free(v->tok[i]);
    for (uint32_t i = 0; v->merge && i < v->n_merges; i++)
        free(v->merge[i]);
    free(v->tok);
    free(v->len);
    free(v->type);
    free(v->score);
    free(v->merge);
    memset(v, 0, sizeof *v);
}

/* The ordinary (non-special) tokens being grown, with a hash set of their
 * texts so every token is distinct. */
typedef struct grow {
    char **tok;
    uint32_t n, cap;
    uint32_t *slot; /* index + 1, 0 empty */
    uint32_t mask;
    char **merge;
    uint32_t n_merges;
    bool bpe;
} grow_t;

static uint32_t hash_str(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static bool grow_has(const grow_t *g, const char *s, size_t n)
{
    for (uint32_t i = hash_str(s, n) & g->mask;; i = (i + 1) & g->mask) {
        uint32_t k = g->slot[i];
        if (!k)
            return false;
        if (strlen(g->tok[k - 1]) == n && !memcmp(g->tok[k - 1], s, n))
            return true;
    }
}

/* Adds token a+b (b may be NULL), and the merge "a b" when both are given
 * and the vocabulary is BPE. Returns false on allocation failure. */
static bool grow_add(grow_t *g, const char *a, const char *b)
{
    size_t na = strlen(a), nb = b ? strlen(b) : 0;
    char *t = malloc(na + nb + 1), *m = NULL;
    if (!t)
        return false;
    memcpy(t, a, na);
    if (b)
        memcpy(t + na, b, nb);
    t[na + nb] = 0;
    if (b && g->bpe) {
        if (!(m = malloc(na + nb + 2))) {
            free(t);
            return false;
        }
        memcpy(m, a, na);
        m[na] = ' ';
        memcpy(m + na + 1, b, nb + 1);
        g->merge[g->n_merges++] = m;
    }
    uint32_t i = hash_str(t, na + nb) & g->mask;
    while (g->slot[i])
        i = (i + 1) & g->mask;
    g->tok[g->n] = t;
    g->slot[i] = ++g->n;
    return true;
}

static void utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

/* GPT-2's printable stand-in for byte b (bytes_to_unicode). */
static uint32_t gpt2_char(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return b;
    uint32_t n = 0; /* rank of b among the bytes that are not printable */
    for (unsigned c = 0; c < b; c++)
        n += !((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174);
    return 256 + n;
}

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "she", "other", "its",
    "time", "people", "may", "into", "than", "first", "any", "new", "some", "could", "these",
    "two", "then", "do", "what", "only", "like", "over", "world", "year", "also", "after",
    "model", "rain", "water", "language", "hello", "write", "about", "story", "question",
    "answer", "because", "where", "through", "between", "under", "small", "large", "think",
    "Hello", "The", "In", "It", "This", "We", "What", "How", "ing", "ed", "er", "ly", "tion",
    "ment", "ness", "able", "ous",
};

/* Grows g to `target` tokens: each word as successive merges (with and
 * without the leading space marker), then random merges of earlier tokens
 * (the space marker only at the start of a token). `n_base` tokens at the
 * front are the single symbols. */
static bool grow_fill(grow_t *g, uint32_t target, uint32_t n_base, const char *space)
{
    char sym[8];
    for (size_t w = 0; w < sizeof WORDS / sizeof WORDS[0] * 2 && g->n < target; w++) {
        const char *word = WORDS[w / 2];
        char cur[64];
        size_t nc = 0;
        if (w % 2 == 0) {
            nc = strlen(space);
            memcpy(cur, space, nc);
        } else {
            cur[nc++] = word[0];
            word++;
        }
        cur[nc] = 0;
        for (; *word && g->n < target; word++) {
            sym[0] = *word;
            sym[1] = 0;
            if (nc + 2 > sizeof cur)
                break;
            memcpy(cur + nc, sym, 2);
            if (!grow_has(g, cur, nc + 1)) {
                cur[nc] = 0;
                if (!grow_add(g, cur, sym))
                    return false;
            }
            cur[nc] = sym[0];
            cur[++nc] = 0;
        }
    }
    uint64_t rng = 0x5eed0f0cab5ull; /* the vocabulary does not depend on --seed */
    size_t nsp = strlen(space);
    for (uint64_t tries = 0; g->n < target; tries++) {
        if (tries > 64ull * target)
            return false;
        const char *a = g->tok[splitmix(&rng) % g->n];
        uint64_t r = splitmix(&rng), k = r >> 1;
        const char *b = g->tok[r & 1 ? k % n_base : k % g->n]; /* half of them single symbols */
        size_t na = strlen(a), nb = strlen(b);
        if (na + nb > 16 || !strncmp(b, space, nsp))
            continue;
        char t[40];
        memcpy(t, a, na);
        memcpy(t + na, b, nb);
        if (grow_has(g, t, na + nb))
            continue;
        if (!grow_add(g, a, b))
            return false;
    }
    return true;
}

/* Builds the vocabulary of p with n tokens. */
static mica_status_t vocab_make(const preset_t *p, uint32_t n, vocab_t *v, mica_diag_t *d)
{
    memset(v, 0, sizeof *v);
    bool full = n == (uint32_t)p->n_vocab;
    uint32_t n_head = p->spm ? 3 + 256 : 0; /* SPM: fixed tokens in front */
    uint32_t block = p->spm ? 0 : full ? (uint32_t)p->spec_block : (uint32_t)p->n_specials;
    uint32_t first = p->spm ? 0 : full ? (uint32_t)p->spec_first : p->spec_first ? n - block : 0;
    uint32_t n_normal = n - n_head - block;

    grow_t g = {0};
    g.bpe = !p->spm;
    g.cap = n_normal;
    uint32_t slots = 1;
    while (slots < 2 * n_normal)
        slots *= 2;
    g.mask = slots - 1;
    g.tok = calloc(n_normal, sizeof *g.tok);
    g.slot = calloc(slots, sizeof *g.slot);
    g.merge = calloc(n_normal, sizeof *g.merge);
    v->n = n;
    v->tok = calloc(n, sizeof *v->tok);
    v->len = calloc(n, sizeof *v->len);
    v->type = calloc(n, sizeof *v->type);
    v->score = calloc(n, sizeof *v->score);
    bool ok = g.tok && g.slot && g.merge && v->tok && v->len && v->type && v->score;

    uint32_t n_base = 0;
    char ch[8];
    if (ok && g.bpe) { /* the 256 byte tokens, in GPT-2's order */
        for (unsigned k = 0; ok && k < 256; k++) {
            unsigned b = k < 94 ? 33 + k : k < 106 ? 161 + (k - 94) : k < 188 ? 174 + (k - 106) : 0;
            if (k >= 188) { /* the others, in byte order */
                unsigned rank = k - 188;
                for (b = 0;; b++)
                    if (gpt2_char(b) >= 256 && gpt2_char(b) - 256 == rank)
                        break;
            }
            utf8_put(ch, gpt2_char(b));
            ok = grow_add(&g, ch, NULL);
        }
        n_base = 256;
    } else if (ok) { /* SPM single-character pieces: the space marker, printable ASCII */
        ok = grow_add(&g, "\xe2\x96\x81", NULL);
        for (unsigned c = 33; ok && c < 127; c++) {
            utf8_put(ch, c);
            ok = grow_add(&g, ch, NULL);
        }
        n_base = g.n;
    }
    bool distinct = true; /* false: the growth ran out of new tokens, not memory */
    if (ok && !grow_fill(&g, n_normal, n_base, g.bpe ? "\xc4\xa0" : "\xe2\x96\x81"))
        ok = distinct = false;
    if (!ok)
        goto fail;

    /* lay out: [SPM fixed] [normal < first] [specials block] [normal rest] */
    uint32_t id = 0, next = 0;
    if (p->spm) {
        static const char *const fixed[3] = {"<unk>", "<s>", "</s>"};
        for (int i = 0; i < 3; i++, id++) {
            v->tok[id] = strdup(fixed[i]);
            v->type[id] = i == 0 ? 2 : 3; /* UNKNOWN, CONTROL */
        }
        for (unsigned b = 0; b < 256; b++, id++) {
            char t[8];
            snprintf(t, sizeof t, "<0x%02X>", b);
            v->tok[id] = strdup(t);
            v->type[id] = 6; /* BYTE */
        }
    }
    v->bos = p->spm ? 1 : (int32_t)first + p->bos;
    v->eos = p->spm ? 2 : (int32_t)first + p->eos;
    v->pad = p->pad >= 0 ? (int32_t)first + p->pad : -1;
    v->unk = p->spm ? 0 : -1;
    for (; id < n; id++) {
        if (!p->spm && id >= first && id < first + block) {
            uint32_t k = id - first;
            char t[64];
            if (k < (uint32_t)p->n_specials)
                snprintf(t, sizeof t, "%s", p->specials[k]);
            else
                snprintf(t, sizeof t, "<|reserved_special_token_%u|>", k - (uint32_t)p->n_specials);
            v->tok[id] = strdup(t);
            v->type[id] = 3; /* CONTROL */
            continue;
        }
        v->tok[id] = g.tok[next];
        g.tok[next] = NULL;
        v->type[id] = 1; /* NORMAL */
        if (p->spm)
            v->score[id] = -(float)next;
        next++;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!v->tok[i])
            goto fail;
        v->len[i] = strlen(v->tok[i]);
    }
    v->merge = g.merge;
    v->n_merges = g.n_merges;
    free(g.tok);
    free(g.slot);
    return MICA_OK;

fail:
    for (uint32_t i = 0; g.tok && i < g.n; i++)
        free(g.tok[i]);
    for (uint32_t i = 0; i < g.n_merges; i++)
        free(g.merge[i]);
    free(g.tok);
    free(g.slot);
    free(g.merge);
    vocab_free(v);
    if (!distinct)
        return mica_diag_set(d, MICA_ERR_INVALID, "cannot make %u distinct tokens", n_normal);
    return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a vocabulary of %u tokens", n);
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                  */

typedef struct shape {
    int64_t n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab;
} shape_t;

static mica_status_t write_metadata(mica_gguf_writer_t *w, const preset_t *p, const shape_t *s,
                                    uint32_t file_type, uint64_t seed, const vocab_t *v,
                                    mica_diag_t *d)
{
    char key[96], text[256];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, p->arch), key)
    MICA_TRY(mica_gguf_writer_add_str(w, "general.architecture", p->arch, d));
    snprintf(text, sizeof text, "%s (synthetic)", p->title);
    MICA_TRY(mica_gguf_writer_add_str(w, "general.name", text, d));
    snprintf(text, sizeof text,
             "random weights in the shape of %s, written by mica synth (seed %" PRIu64
             "%s); not a trained model",
             p->title, seed,
             (s->n_layer != p->n_layer || s->n_vocab != p->n_vocab) ? ", reduced" : "");
    MICA_TRY(mica_gguf_writer_add_str(w, "general.description", text, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, "general.file_type", file_type, d));
    if (file_type != 0 && file_type != 1)
        MICA_TRY(mica_gguf_writer_add_u32(w, "general.quantization_version", 2, d));

    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("vocab_size"), (uint32_t)s->n_vocab, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("context_length"), (uint32_t)p->n_ctx, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("embedding_length"), (uint32_t)s->n_embd, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("block_count"), (uint32_t)s->n_layer, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)s->n_ff, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)s->n_head, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("attention.head_count_kv"),
                                      (uint32_t)s->n_head_kv, d));
    MICA_TRY(mica_gguf_writer_add_f32(w, ARCH_KEY("rope.freq_base"), p->rope_theta, d));
    MICA_TRY(mica_gguf_writer_add_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"),
                                      p->norm_eps, d));
    if (!strcmp(p->arch, "llama"))
        MICA_TRY(mica_gguf_writer_add_u32(w, ARCH_KEY("rope.dimension_count"),
                                          (uint32_t)s->head_dim, d));
#undef ARCH_KEY

    MICA_TRY(mica_gguf_writer_add_str(w, "tokenizer.ggml.model", p->spm ? "llama" : "gpt2", d));
    if (!p->spm)
        MICA_TRY(mica_gguf_writer_add_str(w, "tokenizer.ggml.pre", p->pre, d));
    MICA_TRY(mica_gguf_writer_add_str_array(w, "tokenizer.ggml.tokens",
                                            (const char *const *)v->tok, v->len, v->n, d));
    if (p->spm)
        MICA_TRY(mica_gguf_writer_add_f32_array(w, "tokenizer.ggml.scores", v->score, v->n, d));
    MICA_TRY(mica_gguf_writer_add_i32_array(w, "tokenizer.ggml.token_type", v->type, v->n, d));
    if (!p->spm)
        MICA_TRY(mica_gguf_writer_add_str_array(w, "tokenizer.ggml.merges",
                                                (const char *const *)v->merge, NULL, v->n_merges,
                                                d));
    MICA_TRY(mica_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos, d));
    MICA_TRY(mica_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos, d));
    if (v->unk >= 0)
        MICA_TRY(mica_gguf_writer_add_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk, d));
    if (v->pad >= 0)
        MICA_TRY(mica_gguf_writer_add_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->pad, d));
    MICA_TRY(mica_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token",
                                       p->spm || !strcmp(p->pre, "llama-bpe"), d));
    MICA_TRY(mica_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", false, d));
    return mica_gguf_writer_add_str(w, "tokenizer.chat_template", chat_template_of(p), d);
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */

/* Tensors per layer at most, and outside the layers. */
#define TENSORS_PER_LAYER 12
#define TENSORS_OTHER 3

typedef struct tensor {
    char name[64];
    bool matrix;    /* 2-D: in the chosen type, std 0.02; else f32 */
    bool norm;      /* 1-D norm weight: near 1 */
    int64_t ne[2];  /* innermost first */
} tensor_t;

static int add(tensor_t *t, int n, const char *name, int64_t ne0, int64_t ne1, bool norm)
{
    snprintf(t[n].name, sizeof t[n].name, "%s", name);
    t[n].matrix = ne1 > 0;
    t[n].norm = norm;
    t[n].ne[0] = ne0;
    t[n].ne[1] = ne1 > 0 ? ne1 : 1;
    return n + 1;
}

/* The tensors of the model, in file order. Returns how many. */
static int tensor_list(const preset_t *p, const shape_t *s, tensor_t *t)
{
    int n = 0;
    int64_t D = s->n_embd, Q = s->n_head * s->head_dim, KV = s->n_head_kv * s->head_dim;
    char name[64];
    n = add(t, n, "token_embd.weight", D, s->n_vocab, false);
    for (int64_t l = 0; l < s->n_layer; l++) {
#define BLK(what) (snprintf(name, sizeof name, "blk.%" PRId64 "." what, l), name)
        n = add(t, n, BLK("attn_norm.weight"), D, 0, true);
        n = add(t, n, BLK("attn_q.weight"), D, Q, false);
        if (p->qkv_bias)
            n = add(t, n, BLK("attn_q.bias"), Q, 0, false);
        n = add(t, n, BLK("attn_k.weight"), D, KV, false);
        if (p->qkv_bias)
            n = add(t, n, BLK("attn_k.bias"), KV, 0, false);
        n = add(t, n, BLK("attn_v.weight"), D, KV, false);
        if (p->qkv_bias)
            n = add(t, n, BLK("attn_v.bias"), KV, 0, false);
        n = add(t, n, BLK("attn_output.weight"), Q, D, false);
        n = add(t, n, BLK("ffn_norm.weight"), D, 0, true);
        n = add(t, n, BLK("ffn_gate.weight"), D, s->n_ff, false);
        n = add(t, n, BLK("ffn_up.weight"), D, s->n_ff, false);
        n = add(t, n, BLK("ffn_down.weight"), s->n_ff, D, false);
#undef BLK
    }
    n = add(t, n, "output_norm.weight", D, 0, true);
    if (!p->tied)
        n = add(t, n, "output.weight", D, s->n_vocab, false);
    return n;
}

/* Streams every tensor's rows through the quantizer into the writer. */
static mica_status_t write_tensors(mica_gguf_writer_t *w, const tensor_t *t, int n,
                                   mica_dtype_t dtype, uint64_t seed, const char *path,
                                   mica_diag_t *d)
{
    bool tty = isatty(STDERR_FILENO);
    uint64_t total = 0, done = 0;
    for (int i = 0; i < n; i++)
        total += mica_gguf_writer_tensor_nbytes(w, (uint64_t)i);
    int64_t max_row = 0;
    for (int i = 0; i < n; i++)
        if (t[i].ne[0] > max_row)
            max_row = t[i].ne[0];
    float *row = malloc((size_t)max_row * sizeof *row);
    uint8_t *enc = malloc((size_t)max_row * sizeof(float));
    if (!row || !enc) {
        free(row);
        free(enc);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for a row of %lld", (long long)max_row);
    }
    mica_status_t s = MICA_OK;
    for (int i = 0; i < n && s == MICA_OK; i++) {
        mica_dtype_t ty = t[i].matrix ? dtype : MICA_DTYPE_F32;
        uint64_t rng = seed * 0x9e3779b97f4a7c15u ^ ((uint64_t)i + 1) * 0xd1b54a32d192ed03u;
        size_t nb = (size_t)mica_dtype_row_bytes(ty, t[i].ne[0]);
        for (int64_t r = 0; r < t[i].ne[1] && s == MICA_OK; r++) {
            for (int64_t j = 0; j < t[i].ne[0]; j++)
                row[j] = t[i].norm ? (float)(1.0 + 0.02 * gauss(&rng)) : (float)(0.02 * gauss(&rng));
            s = mica_quant_encode_row(ty, row, t[i].ne[0], enc, d);
            if (s == MICA_OK)
                s = mica_gguf_writer_write(w, enc, nb, d);
        }
        done += mica_gguf_writer_tensor_nbytes(w, (uint64_t)i);
        if (tty)
            fprintf(stderr, "\rmica synth: %s: tensor %d/%d, %.0f / %.0f MiB", path, i + 1, n,
                    (double)done / 1048576.0, (double)total / 1048576.0);
    }
    if (tty)
        fprintf(stderr, "\n");
    free(row);
    free(enc);
    return s;
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

static void help(void)
{
    printf("usage: mica synth --preset NAME -q TYPE -o FILE.gguf [--seed S] [--layers N] "
           "[--vocab N]\n\n"
           "Writes a GGUF model with random weights in the shapes of a real model and a\n"
           "made-up but valid tokenizer (llama.cpp's keys and tensor names), to compile,\n"
           "run and benchmark a shape without downloading it.\n\n"
           "  --preset NAME  the model's shapes:\n");
    for (size_t i = 0; i < N_PRESETS; i++) {
        const preset_t *p = &PRESETS[i];
        printf("                   %-15s %s, %lld layers, d %lld, ff %lld, vocab %lld\n", p->name,
               p->arch, (long long)p->n_layer, (long long)p->n_embd, (long long)p->n_ff,
               (long long)p->n_vocab);
    }
    printf("  -q TYPE        2-D weights in f32, f16, q8_0, q4_0 or q4_1 (norms and biases\n"
           "                 are always f32), quantized as ggml's reference quantizers do\n"
           "  -o FILE        output; written to a temporary file and renamed when complete\n"
           "  --seed S       weights' seed (default 1); the same seed writes the same bytes\n"
           "  --layers N     fewer (or more) layers than the preset, for quick tests\n"
           "  --vocab N      a smaller (>= 512) or larger vocabulary, for quick tests\n\n"
           "Weights are normal-like with std 0.02 (norm weights 1 +- 0.02). llama3.2-1b\n"
           "leaves out llama3's rope scaling factors (rope_freqs.weight): plain rope.\n");
}

static void list_names(char *out, size_t cap, bool presets)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < (presets ? N_PRESETS : N_TYPES) && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "",
                              presets ? PRESETS[i].name : TYPES[i].name);
}

int mica_cmd_synth(int argc, char **argv)
{
    const char *preset_name = NULL, *type_name = NULL, *out = NULL;
    int64_t seed = 1, layers = 0, vocab_n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        }
        bool known = !strcmp(a, "--preset") || !strcmp(a, "-q") || !strcmp(a, "-o") ||
                     !strcmp(a, "--seed") || !strcmp(a, "--layers") || !strcmp(a, "--vocab");
        if (!known)
            return mica_cli_usage("synth", a[0] == '-' ? "unknown option '%s'"
                                                       : "unexpected argument '%s'", a);
        if (i + 1 >= argc)
            return mica_cli_usage("synth", "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--preset"))
            preset_name = v;
        else if (!strcmp(a, "-q"))
            type_name = v;
        else if (!strcmp(a, "-o"))
            out = v;
        else if (!strcmp(a, "--seed") && !mica_arg_int(v, 0, INT64_MAX, &seed))
            return mica_cli_usage("synth", "--seed wants a non-negative integer, not '%s'", v);
        else if (!strcmp(a, "--layers") && !mica_arg_int(v, 1, 4096, &layers))
            return mica_cli_usage("synth", "--layers wants 1..4096, not '%s'", v);
        else if (!strcmp(a, "--vocab") && !mica_arg_int(v, 512, 1 << 22, &vocab_n))
            return mica_cli_usage("synth", "--vocab wants 512..%d, not '%s'", 1 << 22, v);
    }
    char names[256];
    if (!preset_name) {
        list_names(names, sizeof names, true);
        return mica_cli_usage("synth", "no --preset given (presets: %s)", names);
    }
    const preset_t *p = NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(preset_name, PRESETS[i].name))
            p = &PRESETS[i];
    if (!p) {
        list_names(names, sizeof names, true);
        return mica_cli_usage("synth", "unknown preset '%s' (presets: %s)", preset_name, names);
    }
    int ti = -1;
    for (size_t i = 0; type_name && i < N_TYPES; i++)
        if (!strcmp(type_name, TYPES[i].name))
            ti = (int)i;
    if (ti < 0) {
        list_names(names, sizeof names, false);
        if (!type_name)
            return mica_cli_usage("synth", "no -q TYPE given (types: %s)", names);
        return mica_cli_usage("synth", "unknown type '%s' (types: %s)", type_name, names);
    }
    if (!out || !out[0])
        return mica_cli_usage("synth", "no -o FILE given");

    shape_t s = {p->n_embd, layers ? layers : p->n_layer, p->n_head, p->n_head_kv,
                 p->n_embd / p->n_head, p->n_ff, vocab_n ? vocab_n : p->n_vocab};
    mica_diag_t d = {0};
    vocab_t v;
    if (vocab_make(p, (uint32_t)s.n_vocab, &v, &d) != MICA_OK)
        return mica_cli_fail(out, &d);
    tensor_t *t = malloc((size_t)(TENSORS_OTHER + s.n_layer * TENSORS_PER_LAYER) * sizeof *t);
    if (!t) {
        vocab_free(&v);
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        return mica_cli_fail(out, &d);
    }
    int n = tensor_list(p, &s, t);

    mica_gguf_writer_t *w = NULL;
    mica_status_t st = mica_gguf_writer_create(out, &w, &d);
    if (st == MICA_OK)
        st = write_metadata(w, p, &s, TYPES[ti].file_type, (uint64_t)seed, &v, &d);
    for (int i = 0; i < n && st == MICA_OK; i++) {
        mica_dtype_t ty = t[i].matrix ? TYPES[ti].dtype : MICA_DTYPE_F32;
        st = mica_gguf_writer_add_tensor(w, t[i].name, ty, t[i].matrix ? 2 : 1, t[i].ne, &d);
    }
    vocab_free(&v); /* the writer holds its own copy of the metadata */
    if (st == MICA_OK)
        st = write_tensors(w, t, n, TYPES[ti].dtype, (uint64_t)seed, out, &d);
    if (st == MICA_OK)
        st = mica_gguf_writer_finish(w, &d);
    mica_gguf_writer_release(w);
    free(t);
    return st == MICA_OK ? MICA_EXIT_OK : mica_cli_fail(out, &d);
}
