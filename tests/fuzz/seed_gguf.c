/* Writes a tiny model for the gguf fuzz target's seed corpus: the
 * architecture, hyper-parameter keys and tokenizer of a golden model, cut
 * to n_embd 32, one layer, 2 query heads, 1 KV head, n_ff 32 and the first
 * V tokens (merges kept only when both parts and their join are among
 * them), with seeded random weights, 2-D ones in f16 or q8_0.
 *   seed_gguf GOLDEN.gguf OUT.gguf V f16|q8_0
 * Built in the fuzz tree only; its outputs are committed under
 * tests/fuzz/corpus/gguf (a few tens of KB each). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "half.h"

enum { D = 32, HD = 16, FF = 32 };

static uint64_t rng = 0x9e3779b97f4a7c15u;
static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffff) / 32768.0f - 1.0f;
}

static int fail(const char *what, const mica_diag_t *d)
{
    fprintf(stderr, "seed_gguf: %s: %s\n", what, d->msg);
    return 1;
}

static bool ends_with(mica_gguf_str_t k, const char *s)
{
    size_t n = strlen(s);
    return k.len >= n && memcmp(k.ptr + k.len - n, s, n) == 0;
}

/* Index of token text t among the first v, or -1. */
static long find_token(const mica_gguf_kv_t *toks, uint64_t v, const char *t, size_t n)
{
    for (uint64_t i = 0; i < v; i++) {
        mica_gguf_str_t s;
        if (mica_gguf_array_str(toks, i, &s) && s.len == n && memcmp(s.ptr, t, n) == 0)
            return (long)i;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: seed_gguf GOLDEN.gguf OUT.gguf V f16|q8_0\n");
        return 2;
    }
    const uint64_t V = strtoull(argv[3], NULL, 10);
    const bool q8 = strcmp(argv[4], "q8_0") == 0;
    mica_diag_t d = {0};
    mica_gguf_t *f = NULL;
    if (mica_gguf_open(argv[1], &f, &d) != MICA_OK)
        return fail(argv[1], &d);
    mica_gguf_str_t arch;
    mica_gguf_get_str(f, "general.architecture", &arch);
    const bool qwen2 = mica_gguf_str_eq(arch, "qwen2");
    mica_gguf_writer_t *w = NULL;
    if (mica_gguf_writer_create(argv[2], &w, &d) != MICA_OK)
        return fail(argv[2], &d);
    const mica_gguf_kv_t *toks = mica_gguf_find(f, "tokenizer.ggml.tokens");
    mica_status_t s = MICA_OK;
    for (uint64_t i = 0; i < mica_gguf_kv_count(f) && s == MICA_OK; i++) {
        const mica_gguf_kv_t *kv = mica_gguf_kv_at(f, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        if (ends_with(kv->key, ".embedding_length"))
            s = mica_gguf_writer_add_u32(w, key, D, &d);
        else if (ends_with(kv->key, ".block_count"))
            s = mica_gguf_writer_add_u32(w, key, 1, &d);
        else if (ends_with(kv->key, ".feed_forward_length"))
            s = mica_gguf_writer_add_u32(w, key, FF, &d);
        else if (ends_with(kv->key, ".attention.head_count"))
            s = mica_gguf_writer_add_u32(w, key, D / HD, &d);
        else if (ends_with(kv->key, ".attention.head_count_kv"))
            s = mica_gguf_writer_add_u32(w, key, 1, &d);
        else if (ends_with(kv->key, ".rope.dimension_count"))
            s = mica_gguf_writer_add_u32(w, key, HD, &d);
        else if (ends_with(kv->key, ".context_length"))
            s = mica_gguf_writer_add_u32(w, key, 64, &d);
        else if (ends_with(kv->key, ".vocab_size"))
            s = mica_gguf_writer_add_u32(w, key, (uint32_t)V, &d);
        else if (ends_with(kv->key, "_token_id")) {
            int64_t id = 0;
            mica_gguf_get_i64(f, key, &id);
            s = mica_gguf_writer_add_u32(w, key, (uint32_t)((uint64_t)id < V ? id : (int64_t)V - 1), &d);
        } else if (!strcmp(key, "tokenizer.ggml.tokens") || !strcmp(key, "tokenizer.ggml.merges")) {
            bool merges = key[16] == 'm';
            const char **v = calloc(kv->count, sizeof *v);
            size_t *lens = calloc(kv->count, sizeof *lens);
            uint64_t n = 0;
            for (uint64_t k = 0; k < kv->count && (merges || n < V); k++) {
                mica_gguf_str_t t;
                mica_gguf_array_str(kv, k, &t);
                if (merges) {
                    const char *sp = memchr(t.ptr, ' ', t.len);
                    if (!sp)
                        continue;
                    size_t a = (size_t)(sp - t.ptr), b = t.len - a - 1;
                    char join[512];
                    if (a + b >= sizeof join)
                        continue;
                    memcpy(join, t.ptr, a);
                    memcpy(join + a, sp + 1, b);
                    if (find_token(toks, V, t.ptr, a) < 0 || find_token(toks, V, sp + 1, b) < 0 ||
                        find_token(toks, V, join, a + b) < 0)
                        continue;
                }
                v[n] = t.ptr, lens[n] = t.len, n++;
            }
            s = mica_gguf_writer_add_str_array(w, key, v, lens, n, &d);
            free(v);
            free(lens);
        } else if (!strcmp(key, "tokenizer.ggml.scores")) {
            float *v = malloc(V * sizeof *v);
            for (uint64_t k = 0; k < V; k++) {
                double x = 0;
                mica_gguf_array_f64(kv, k, &x);
                v[k] = (float)x;
            }
            s = mica_gguf_writer_add_f32_array(w, key, v, V, &d);
            free(v);
        } else if (!strcmp(key, "tokenizer.ggml.token_type")) {
            int32_t *v = malloc(V * sizeof *v);
            for (uint64_t k = 0; k < V; k++) {
                int64_t x = 1;
                mica_gguf_array_i64(kv, k, &x);
                v[k] = (int32_t)x;
            }
            s = mica_gguf_writer_add_i32_array(w, key, v, V, &d);
            free(v);
        } else if (strcmp(key, "general.alignment") != 0) {
            s = mica_gguf_writer_add_kv(w, kv, &d);
        }
    }
    typedef struct tensor {
        const char *name;
        int64_t ne0, ne1; /* ne1 = 0: a vector */
    } tensor_t;
    tensor_t t[16];
    int n = 0;
    t[n++] = (tensor_t){"token_embd.weight", D, (int64_t)V};
    t[n++] = (tensor_t){"output_norm.weight", D, 0};
    if (!qwen2)
        t[n++] = (tensor_t){"output.weight", D, (int64_t)V};
    t[n++] = (tensor_t){"blk.0.attn_norm.weight", D, 0};
    t[n++] = (tensor_t){"blk.0.attn_q.weight", D, D};
    t[n++] = (tensor_t){"blk.0.attn_k.weight", D, HD};
    t[n++] = (tensor_t){"blk.0.attn_v.weight", D, HD};
    if (qwen2) {
        t[n++] = (tensor_t){"blk.0.attn_q.bias", D, 0};
        t[n++] = (tensor_t){"blk.0.attn_k.bias", HD, 0};
        t[n++] = (tensor_t){"blk.0.attn_v.bias", HD, 0};
    }
    t[n++] = (tensor_t){"blk.0.attn_output.weight", D, D};
    t[n++] = (tensor_t){"blk.0.ffn_norm.weight", D, 0};
    t[n++] = (tensor_t){"blk.0.ffn_gate.weight", D, FF};
    t[n++] = (tensor_t){"blk.0.ffn_up.weight", D, FF};
    t[n++] = (tensor_t){"blk.0.ffn_down.weight", FF, D};
    for (int i = 0; i < n && s == MICA_OK; i++) {
        int64_t ne[2] = {t[i].ne0, t[i].ne1};
        mica_dtype_t dt = !t[i].ne1 ? MICA_DTYPE_F32 : q8 ? MICA_DTYPE_Q8_0 : MICA_DTYPE_F16;
        s = mica_gguf_writer_add_tensor(w, t[i].name, dt, t[i].ne1 ? 2 : 1, ne, &d);
    }
    for (int i = 0; i < n && s == MICA_OK; i++) {
        int64_t rows = t[i].ne1 ? t[i].ne1 : 1;
        for (int64_t r = 0; r < rows && s == MICA_OK; r++) {
            uint8_t row[34 * 8];
            size_t len = 0;
            for (int64_t c = 0; c < t[i].ne0; c++) {
                float x = t[i].ne1 ? 0.5f * frand() : 1.0f + 0.1f * frand();
                if (!t[i].ne1) {
                    memcpy(row + len, &x, 4), len += 4;
                } else if (!q8) {
                    uint16_t h = mica_f32_to_f16(x);
                    memcpy(row + len, &h, 2), len += 2;
                } else {
                    if (c % 32 == 0) {
                        uint16_t h = mica_f32_to_f16(1.0f / 256);
                        memcpy(row + len, &h, 2), len += 2;
                    }
                    row[len++] = (uint8_t)(int8_t)(x * 127);
                }
            }
            s = mica_gguf_writer_write(w, row, len, &d);
        }
    }
    if (s == MICA_OK)
        s = mica_gguf_writer_finish(w, &d);
    mica_gguf_writer_release(w);
    mica_gguf_close(f);
    return s == MICA_OK ? 0 : fail(argv[2], &d);
}
