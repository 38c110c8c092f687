/* Text helpers shared by the IR printer, parser, verifier and DOT writer
 * (see text_internal.h). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_internal.h"

/* Makes room for `extra` more bytes plus the NUL; false once out of memory. */
static bool sb_reserve(mica_sbuf_t *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra < b->cap - b->n)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n <= extra) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *q = realloc(b->p, cap);
    if (!q) {
        b->oom = true;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

void mica_sb_putn(mica_sbuf_t *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void mica_sb_puts(mica_sbuf_t *b, const char *s)
{
    mica_sb_putn(b, s, strlen(s));
}

void mica_sb_printf(mica_sbuf_t *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (len < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)len < sizeof small) {
        mica_sb_putn(b, small, (size_t)len);
        return;
    }
    if (!sb_reserve(b, (size_t)len))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)len + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)len;
}

char *mica_sb_finish(mica_sbuf_t *b)
{
    if (b->oom) {
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    return b->p;
}

void mica_text_put_ints(mica_sbuf_t *b, int32_t n, const int64_t *v, int32_t max)
{
    mica_sb_putn(b, "[", 1);
    for (int32_t i = 0; v && i < n; i++) {
        if (i == max) {
            mica_sb_puts(b, ",...");
            break;
        }
        mica_sb_printf(b, i ? ",%lld" : "%lld", (long long)v[i]);
    }
    mica_sb_putn(b, "]", 1);
}

void mica_text_put_dims(mica_sbuf_t *b, int32_t rank, const int64_t *v)
{
    int32_t n = rank < 0 ? 0 : rank > MICA_MAX_RANK ? MICA_MAX_RANK : rank;
    mica_text_put_ints(b, n, v, MICA_MAX_RANK);
}

void mica_text_put_type(mica_sbuf_t *b, const mica_type_t *t)
{
    const char *dt = mica_dtype_name(t->dtype);
    mica_sb_puts(b, dt ? dt : "?");
    mica_text_put_dims(b, t->rank, t->shape);
    const mica_layout_t *l = &t->layout;
    if (l->kind == MICA_LAYOUT_PACKED) {
        mica_sb_printf(b, " packed(%d,%d,%d)", l->ep, l->hp, l->lp);
        if (l->pad_n || l->pad_k)
            mica_sb_printf(b, " tiles[%lld,%lld,%d,%d]",
                           (long long)(l->hp > 0 ? l->pad_n / l->hp : 0),
                           (long long)(l->lp > 0 ? l->pad_k / l->lp : 0), l->hp, l->lp);
        if (l->nibbles == MICA_LAYOUT_NIBBLES_HALVES)
            mica_sb_puts(b, " nibbles=halves");
    }
}

void mica_text_put_double(mica_sbuf_t *b, double x, int precision)
{
    if (isnan(x))
        mica_sb_puts(b, "nan");
    else if (isinf(x))
        mica_sb_puts(b, x < 0 ? "-inf" : "inf");
    else
        mica_sb_printf(b, "%.*g", precision, x);
}

size_t mica_text_escape_byte(unsigned char c, char out[5])
{
    if (c == '"' || c == '\\')
        return (size_t)snprintf(out, 5, "\\%c", c);
    if (c < 0x20 || c > 0x7e)
        return (size_t)snprintf(out, 5, "\\x%02x", c);
    out[0] = (char)c;
    out[1] = 0;
    return 1;
}

void mica_text_put_string(mica_sbuf_t *b, const char *s)
{
    mica_sb_putn(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        char e[5];
        mica_sb_putn(b, e, mica_text_escape_byte(*c, e));
    }
    mica_sb_putn(b, "\"", 1);
}

void mica_text_format_type(const mica_type_t *t, char *buf, size_t size)
{
    mica_sbuf_t b = {0};
    mica_text_put_type(&b, t);
    snprintf(buf, size, "%s", b.oom || !b.p ? "?" : b.p);
    free(b.p);
}

const char *mica_text_strip_op(const char *msg, const char *op)
{
    size_t n = strlen(op);
    if (strncmp(msg, op, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}
