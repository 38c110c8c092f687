/* Text helpers shared by the IR printer, parser, verifier and DOT writer
 * (ir/print.c, parse.c, verify.c, dot.c): a growing string buffer and the
 * formatting of types, numbers and quoted strings. Not part of ir.h. */
#ifndef MICA_TEXT_INTERNAL_H
#define MICA_TEXT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"

#if defined(__GNUC__)
#define MICA_TEXT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define MICA_TEXT_PRINTF(f, a)
#endif

/* A growing malloc'd string, NUL-ended once anything is written;
 * zero-initialise before use. `oom` sticks after the first failure and
 * makes every later write a no-op. */
typedef struct mica_sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} mica_sbuf_t;

void mica_sb_putn(mica_sbuf_t *b, const char *s, size_t n);
void mica_sb_puts(mica_sbuf_t *b, const char *s);
void mica_sb_printf(mica_sbuf_t *b, const char *fmt, ...) MICA_TEXT_PRINTF(2, 3);

/* The string built in b (the caller frees it), or NULL, with b's memory
 * released, if some write ran out of memory. */
char *mica_sb_finish(mica_sbuf_t *b);

/* "[v0,v1,...]"; after `max` entries the list is cut with ",...". */
void mica_text_put_ints(mica_sbuf_t *b, int32_t n, const int64_t *v, int32_t max);

/* "[v0,...]" of a dims or strides array, rank clamped to 0..MICA_MAX_RANK. */
void mica_text_put_dims(mica_sbuf_t *b, int32_t rank, const int64_t *v);

/* A type as the IR text writes it: "f32[2,3]" plus " packed(ep,hp,lp)"
 * and, when tiled, " tiles[..]" and " nibbles=halves" (ir/layout_index.h). */
void mica_text_put_type(mica_sbuf_t *b, const mica_type_t *t);

/* x with %.{precision}g, or nan / inf / -inf. */
void mica_text_put_double(mica_sbuf_t *b, double x, int precision);

/* Byte c as it stands inside an IR string literal: \" \\ \xHH for '"',
 * '\' and bytes outside 0x20..0x7e, else itself. Writes it NUL-ended to
 * out and returns its length (1 to 4). */
size_t mica_text_escape_byte(unsigned char c, char out[5]);

/* s (NULL as "") as an IR string literal, double-quoted. */
void mica_text_put_string(mica_sbuf_t *b, const char *s);

/* mica_text_put_type into buf, cut to size - 1 bytes (for messages). */
void mica_text_format_type(const mica_type_t *t, char *buf, size_t size);

/* A mica_node_infer_type message without its leading "opname: ". */
const char *mica_text_strip_op(const char *msg, const char *op);

#endif
