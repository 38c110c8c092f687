/* IR text parser: the inverse of ir/print.c (the grammar is documented
 * there). Everything is driven by the op table: the op name gives the
 * arity and the attribute spec, and each attribute is read by its kind.
 *
 * The parser takes untrusted input: it reads only inside [text, text+len),
 * has no recursion, checks every integer for overflow and the range of the
 * field it goes into, and grows its buffers only by what it has already
 * read. Each node is type-checked as it is read (so errors carry its line
 * and column) and the whole graph is verified at the end.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "text_internal.h"

/* Entries of one list (operands, list attribute, regions) at most. */
#define MAX_LIST ((size_t)1 << 24)
/* Characters of one float literal at most. */
#define MAX_FLOAT_CHARS 64

/* A growing malloc'd array of elements of one size. */
typedef struct vec {
    void *p;
    size_t n, cap; /* in elements */
} vec_t;

typedef struct parser {
    const char *s; /* the text, not NUL-terminated */
    size_t len;
    size_t pos;
    int32_t line;      /* 1-based line of pos */
    size_t line_start; /* offset of that line's first byte */
    mica_diag_t *d;
    mica_graph_t *g;
    vec_t operands;                  /* mica_operand_t of the node being read */
    vec_t regions;                   /* mica_region_t of the node being read */
    vec_t ints[MICA_MAX_ATTRS];      /* int64_t per list attribute */
    vec_t strs[MICA_MAX_ATTRS];      /* char per string attribute, NUL-ended */
    vec_t tmp;                       /* int64_t scratch for dims and strides */
    vec_t note;                      /* char: the node's note, NUL-ended */
    vec_t lines;                     /* int32_t: line of node i */
} parser_t;

static void vec_free(vec_t *v)
{
    free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

static bool vec_push(vec_t *v, const void *elem, size_t size)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        if (cap > SIZE_MAX / size)
            return false;
        void *q = realloc(v->p, cap * size);
        if (!q)
            return false;
        v->p = q;
        v->cap = cap;
    }
    memcpy((char *)v->p + v->n * size, elem, size);
    v->n++;
    return true;
}

/* ------------------------------------------------------------------------ */
/* errors                                                                    */

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static mica_status_t perr_code(parser_t *p, size_t at, mica_status_t code, const char *fmt, ...)
{
    char msg[MICA_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t col = (at >= p->line_start ? at - p->line_start : 0) + 1;
    return mica_diag_set(p->d, code, "%d:%zu: %s", p->line, col, msg);
}

#define PERR(p, at, ...) perr_code((p), (at), MICA_ERR_INVALID, __VA_ARGS__)
#define NOMEM(p) perr_code((p), (p)->pos, MICA_ERR_NOMEM, "out of memory")

static int peek(const parser_t *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

/* What is at pos, for messages: "'x'", "end of line", "byte 0x01". */
static const char *describe(const parser_t *p, char *buf, size_t size)
{
    int c = peek(p);
    if (c < 0)
        snprintf(buf, size, "end of input");
    else if (c == '\n')
        snprintf(buf, size, "end of line");
    else if (c > 0x20 && c < 0x7f)
        snprintf(buf, size, "'%c'", c);
    else
        snprintf(buf, size, "byte 0x%02x", (unsigned)c);
    return buf;
}

static mica_status_t expected(parser_t *p, const char *what)
{
    char buf[24];
    return PERR(p, p->pos, "expected %s, found %s", what, describe(p, buf, sizeof buf));
}

/* ------------------------------------------------------------------------ */
/* tokens                                                                    */

static void skip_ws(parser_t *p)
{
    int c;
    while ((c = peek(p)) == ' ' || c == '\t' || c == '\r')
        p->pos++;
}

/* Skips spaces and a "#" comment, up to the end of the line. */
static void skip_comment(parser_t *p)
{
    skip_ws(p);
    if (peek(p) == '#')
        while (peek(p) >= 0 && peek(p) != '\n')
            p->pos++;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}

/* Skips spaces, then consumes c or fails naming `what`. */
static mica_status_t expect_char(parser_t *p, char c, const char *what)
{
    skip_ws(p);
    if (peek(p) != (unsigned char)c)
        return expected(p, what);
    p->pos++;
    return MICA_OK;
}

/* A list of items separated by ',' and ended by `close`, its opening
 * character already read: true (and `close` consumed) if it is empty;
 * otherwise list_next follows each item. */
static bool list_empty(parser_t *p, char close)
{
    skip_ws(p);
    if (peek(p) != (unsigned char)close)
        return false;
    p->pos++;
    return true;
}

/* After an item: consumes a ',' (*more = true) or the closing character
 * (*more = false), or fails. */
static mica_status_t list_next(parser_t *p, char close, bool *more)
{
    skip_ws(p);
    *more = peek(p) == ',';
    if (!*more && peek(p) != (unsigned char)close) {
        char what[16];
        snprintf(what, sizeof what, "',' or '%c'", close);
        return expected(p, what);
    }
    p->pos++;
    return MICA_OK;
}

/* Reads [A-Za-z0-9_]+ at pos into (*out_at, *out_len); fails naming what. */
static mica_status_t read_ident(parser_t *p, const char *what, size_t *out_at, size_t *out_len)
{
    size_t at = p->pos;
    while (is_ident(peek(p)))
        p->pos++;
    if (p->pos == at)
        return expected(p, what);
    *out_at = at;
    *out_len = p->pos - at;
    return MICA_OK;
}

/* True (and consumed, with leading spaces) if the next identifier is word. */
static bool accept_word(parser_t *p, const char *word)
{
    size_t save = p->pos;
    skip_ws(p);
    size_t at = p->pos;
    while (is_ident(peek(p)))
        p->pos++;
    size_t n = strlen(word);
    if (p->pos - at == n && memcmp(p->s + at, word, n) == 0)
        return true;
    p->pos = save;
    return false;
}

/* Consumes `word=` (spaces allowed before the word and around '='). */
static mica_status_t expect_key(parser_t *p, const char *word)
{
    skip_ws(p);
    size_t at = p->pos;
    if (!accept_word(p, word)) {
        char what[32];
        snprintf(what, sizeof what, "'%s='", word);
        p->pos = at;
        return expected(p, what);
    }
    return expect_char(p, '=', "'='");
}

/* Reads a decimal int64 ("-" allowed) at pos. */
static mica_status_t read_i64(parser_t *p, int64_t *out)
{
    size_t at = p->pos;
    bool neg = false;
    if (peek(p) == '-') {
        neg = true;
        p->pos++;
    }
    if (!is_digit(peek(p))) {
        p->pos = at;
        return expected(p, "an integer");
    }
    /* Magnitude up to 2^63 (INT64_MIN's). */
    const uint64_t limit = (uint64_t)INT64_MAX + (neg ? 1u : 0u);
    uint64_t v = 0;
    while (is_digit(peek(p))) {
        uint64_t digit = (uint64_t)(peek(p) - '0');
        if (v > (limit - digit) / 10)
            return PERR(p, at, "integer out of range");
        v = v * 10 + digit;
        p->pos++;
    }
    if (is_ident(peek(p)) || peek(p) == '.')
        return PERR(p, at, "bad integer");
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return MICA_OK;
}

/* Skips spaces, reads an integer and checks it is in [lo, hi]. */
static mica_status_t read_int_in(parser_t *p, int64_t lo, int64_t hi, const char *what,
                                 int64_t *out)
{
    skip_ws(p);
    size_t at = p->pos;
    MICA_TRY(read_i64(p, out));
    if (*out < lo || *out > hi)
        return PERR(p, at, "%s %lld out of range [%lld, %lld]", what, (long long)*out,
                    (long long)lo, (long long)hi);
    return MICA_OK;
}

static mica_status_t read_i32(parser_t *p, int32_t lo, const char *what, int32_t *out)
{
    int64_t v;
    MICA_TRY(read_int_in(p, lo, INT32_MAX, what, &v));
    *out = (int32_t)v;
    return MICA_OK;
}

/* Reads a float: decimal (as strtod reads it, no hex), inf, -inf or nan. */
static mica_status_t read_f64(parser_t *p, double *out)
{
    skip_ws(p);
    size_t at = p->pos;
    if (peek(p) == '-')
        p->pos++;
    if ((peek(p) >= 'a' && peek(p) <= 'z') || (peek(p) >= 'A' && peek(p) <= 'Z')) {
        size_t w = p->pos;
        while (is_ident(peek(p)))
            p->pos++;
        size_t n = p->pos - w;
        bool neg = p->s[at] == '-';
        if (n == 3 && memcmp(p->s + w, "inf", 3) == 0)
            *out = neg ? -INFINITY : INFINITY;
        else if (n == 3 && memcmp(p->s + w, "nan", 3) == 0)
            *out = neg ? -NAN : NAN;
        else
            return PERR(p, at, "bad number");
        return MICA_OK;
    }
    int c;
    while (is_digit(c = peek(p)) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
        p->pos++;
    size_t n = p->pos - at;
    if (n == 0)
        return expected(p, "a number");
    if (n >= MAX_FLOAT_CHARS)
        return PERR(p, at, "number too long");
    if (is_ident(peek(p)))
        return PERR(p, at, "bad number");
    char buf[MAX_FLOAT_CHARS];
    memcpy(buf, p->s + at, n);
    buf[n] = 0;
    bool digit = false;
    for (size_t i = 0; i < n; i++)
        digit |= is_digit(buf[i]);
    char *end = NULL;
    double v = strtod(buf, &end);
    if (!digit || end != buf + n)
        return PERR(p, at, "bad number");
    if (isinf(v))
        return PERR(p, at, "number out of range");
    *out = v; /* an underflow to a subnormal or zero is kept */
    return MICA_OK;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads a quoted string into v (bytes plus a NUL). */
static mica_status_t read_string(parser_t *p, vec_t *v)
{
    skip_ws(p);
    size_t at = p->pos;
    if (peek(p) != '"')
        return expected(p, "a string");
    p->pos++;
    v->n = 0;
    for (;;) {
        int c = peek(p);
        char ch;
        if (c < 0 || c == '\n')
            return PERR(p, at, "unterminated string");
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c == '\\') {
            size_t esc = p->pos++;
            int e = peek(p);
            if (e == '"' || e == '\\') {
                ch = (char)e;
                p->pos++;
            } else if (e == 'n' || e == 't') {
                ch = e == 'n' ? '\n' : '\t';
                p->pos++;
            } else if (e == 'x') {
                p->pos++;
                int hi = hex_value(peek(p));
                if (hi < 0)
                    return PERR(p, esc, "bad \\x escape (two hex digits expected)");
                p->pos++;
                int lo = hex_value(peek(p));
                if (lo < 0)
                    return PERR(p, esc, "bad \\x escape (two hex digits expected)");
                p->pos++;
                if (hi == 0 && lo == 0)
                    return PERR(p, esc, "\\x00 is not allowed in a string");
                ch = (char)(hi * 16 + lo);
            } else {
                return PERR(p, esc, "bad escape in a string (use \\\" \\\\ \\n \\t or \\xHH)");
            }
        } else if (c < 0x20 || c == 0x7f) {
            return PERR(p, p->pos, "control byte 0x%02x in a string (write it as \\xHH)",
                        (unsigned)c);
        } else {
            ch = (char)c;
            p->pos++;
        }
        if (!vec_push(v, &ch, 1))
            return NOMEM(p);
    }
    char nul = 0;
    if (!vec_push(v, &nul, 1))
        return NOMEM(p);
    return MICA_OK;
}

/* Reads "[INT, ...]" (possibly empty) into v; *out_at = position of '['. */
static mica_status_t read_int_list(parser_t *p, vec_t *v, size_t *out_at)
{
    skip_ws(p);
    *out_at = p->pos;
    MICA_TRY(expect_char(p, '[', "'['"));
    v->n = 0;
    for (bool more = !list_empty(p, ']'); more;) {
        int64_t x;
        skip_ws(p);
        MICA_TRY(read_i64(p, &x));
        if (v->n >= MAX_LIST)
            return PERR(p, *out_at, "list has more than %zu entries", MAX_LIST);
        if (!vec_push(v, &x, sizeof x))
            return NOMEM(p);
        MICA_TRY(list_next(p, ']', &more));
    }
    return MICA_OK;
}

/* Reads dims "[d0,...]" with min_rank..MICA_MAX_RANK entries. */
static mica_status_t read_dims(parser_t *p, int32_t min_rank, int64_t *out, int32_t *out_rank)
{
    size_t at = 0;
    MICA_TRY(read_int_list(p, &p->tmp, &at));
    if (p->tmp.n > MICA_MAX_RANK || p->tmp.n < (size_t)min_rank)
        return PERR(p, at, "%zu dims (%d to %d allowed)", p->tmp.n, min_rank, MICA_MAX_RANK);
    if (p->tmp.n > 0)
        memcpy(out, p->tmp.p, p->tmp.n * sizeof *out);
    *out_rank = (int32_t)p->tmp.n;
    return MICA_OK;
}

/* Reads a view "OFFSET+[STRIDE,...]" with exactly rank strides. */
static mica_status_t read_view(parser_t *p, int32_t rank, mica_view_t *out)
{
    skip_ws(p);
    MICA_TRY(read_i64(p, &out->offset));
    MICA_TRY(expect_char(p, '+', "'+' between the view's offset and strides"));
    size_t at = 0;
    MICA_TRY(read_int_list(p, &p->tmp, &at));
    if (p->tmp.n != (size_t)rank)
        return PERR(p, at, "%zu strides for %d dims", p->tmp.n, rank);
    if (p->tmp.n > 0)
        memcpy(out->stride, p->tmp.p, p->tmp.n * sizeof(int64_t));
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* node parts                                                                */

static mica_status_t read_type(parser_t *p, mica_type_t *t)
{
    memset(t, 0, sizeof *t);
    skip_ws(p);
    size_t at = 0, n = 0;
    MICA_TRY(read_ident(p, "a type such as f32[2,3]", &at, &n));
    t->dtype = mica_dtype_from_name(p->s + at, n);
    if (t->dtype == MICA_DTYPE_COUNT)
        return PERR(p, at, "unknown dtype '%.*s'", (int)(n > 32 ? 32 : n), p->s + at);
    skip_ws(p);
    if (peek(p) != '[')
        return expected(p, "'[' after the dtype");
    MICA_TRY(read_dims(p, 0, t->shape, &t->rank));
    if (accept_word(p, "packed")) {
        t->layout.kind = MICA_LAYOUT_PACKED;
        MICA_TRY(expect_char(p, '(', "'('"));
        MICA_TRY(read_i32(p, 0, "tile size", &t->layout.ep));
        MICA_TRY(expect_char(p, ',', "','"));
        MICA_TRY(read_i32(p, 0, "tile size", &t->layout.hp));
        MICA_TRY(expect_char(p, ',', "','"));
        MICA_TRY(read_i32(p, 0, "tile size", &t->layout.lp));
        MICA_TRY(expect_char(p, ')', "')'"));
        if (accept_word(p, "tiles")) {
            int64_t dims[MICA_MAX_RANK];
            int32_t rank = 0;
            skip_ws(p);
            size_t tat = p->pos;
            if (peek(p) != '[')
                return expected(p, "'[' after tiles");
            MICA_TRY(read_dims(p, 0, dims, &rank));
            if (rank != 4 || dims[0] < 1 || dims[1] < 1 || dims[2] != t->layout.hp ||
                dims[3] != t->layout.lp || dims[0] > INT64_MAX / 4096 || dims[1] > INT64_MAX / 4096)
                return PERR(p, tat, "tiles must be [TN,TK,%d,%d] with TN, TK >= 1", t->layout.hp,
                            t->layout.lp);
            t->layout.pad_n = dims[0] * dims[2];
            t->layout.pad_k = dims[1] * dims[3];
            if (accept_word(p, "nibbles")) {
                MICA_TRY(expect_char(p, '=', "'=' after nibbles"));
                if (!accept_word(p, "halves"))
                    return expected(p, "halves (the only nibble order)");
                t->layout.nibbles = MICA_LAYOUT_NIBBLES_HALVES;
            }
        }
    }
    return MICA_OK;
}

/* Reads "%N" at pos; `what` names it when the '%' is missing. */
static mica_status_t read_value_id(parser_t *p, const char *what, int64_t *out)
{
    if (peek(p) != '%')
        return expected(p, what);
    p->pos++;
    if (!is_digit(peek(p)))
        return expected(p, "a value number after '%'");
    return read_i64(p, out);
}

static mica_status_t read_operand(parser_t *p, int32_t self)
{
    skip_ws(p);
    size_t at = p->pos;
    int64_t id;
    MICA_TRY(read_value_id(p, "an operand '%N'", &id));
    if (id >= self)
        return PERR(p, at, "%%%lld is used before it is defined", (long long)id);
    mica_operand_t o;
    memset(&o, 0, sizeof o);
    o.value = (int32_t)id;
    if (accept_word(p, "view")) {
        o.has_view = true;
        MICA_TRY(read_dims(p, 0, o.view_shape, &o.view_rank));
        MICA_TRY(read_view(p, o.view_rank, &o.view));
    }
    if (p->operands.n >= MAX_LIST)
        return PERR(p, at, "more than %zu operands", MAX_LIST);
    if (!vec_push(&p->operands, &o, sizeof o))
        return NOMEM(p);
    return MICA_OK;
}

static mica_status_t read_region(parser_t *p)
{
    mica_region_t r;
    memset(&r, 0, sizeof r);
    skip_ws(p);
    size_t at = p->pos;
    MICA_TRY(expect_char(p, '{', "'{' starting a region"));
    MICA_TRY(expect_key(p, "in"));
    MICA_TRY(read_i32(p, 0, "operand index", &r.input));
    r.index_input = -1;
    if (accept_word(p, "idx")) {
        MICA_TRY(expect_char(p, '=', "'='"));
        MICA_TRY(read_i32(p, 0, "index operand", &r.index_input));
        MICA_TRY(expect_char(p, '@', "'@' before the index dim"));
        MICA_TRY(read_i32(p, 0, "index dim", &r.index_dim));
    }
    MICA_TRY(expect_key(p, "size"));
    MICA_TRY(read_dims(p, 1, r.size, &r.rank));
    MICA_TRY(expect_key(p, "src"));
    MICA_TRY(read_view(p, r.rank, &r.src));
    MICA_TRY(expect_key(p, "dst"));
    MICA_TRY(read_view(p, r.rank, &r.dst));
    MICA_TRY(expect_char(p, '}', "'}' ending the region"));
    if (p->regions.n >= MAX_LIST)
        return PERR(p, at, "more than %zu regions", MAX_LIST);
    if (!vec_push(&p->regions, &r, sizeof r))
        return NOMEM(p);
    return MICA_OK;
}

static mica_status_t read_regions(parser_t *p)
{
    MICA_TRY(expect_char(p, '[', "'[' starting the region list"));
    for (bool more = !list_empty(p, ']'); more;) {
        MICA_TRY(read_region(p));
        MICA_TRY(list_next(p, ']', &more));
    }
    return MICA_OK;
}

static mica_status_t read_attrs(parser_t *p, const mica_op_info_t *info, mica_node_t *n)
{
    MICA_TRY(expect_char(p, '{', "'{' with the attributes"));
    for (int32_t k = 0; k < info->n_attrs; k++) {
        if (k > 0)
            MICA_TRY(expect_char(p, ',', "','"));
        MICA_TRY(expect_key(p, info->attr_names[k]));
        mica_attr_t *a = &n->attrs[k];
        size_t at = 0;
        switch (info->attr_kinds[k]) {
        case MICA_ATTR_INT:
            skip_ws(p);
            MICA_TRY(read_i64(p, &a->i));
            break;
        case MICA_ATTR_FLOAT:
            MICA_TRY(read_f64(p, &a->f));
            break;
        case MICA_ATTR_STRING:
            MICA_TRY(read_string(p, &p->strs[k]));
            a->s = p->strs[k].p;
            break;
        case MICA_ATTR_INTS:
            MICA_TRY(read_int_list(p, &p->ints[k], &at));
            a->n = (int32_t)p->ints[k].n;
            a->v = p->ints[k].p;
            break;
        case MICA_ATTR_REGIONS:
            MICA_TRY(read_regions(p));
            n->n_regions = (int32_t)p->regions.n;
            n->regions = p->regions.p;
            break;
        default:
            return PERR(p, p->pos, "op table: unknown attribute kind");
        }
    }
    return expect_char(p, '}', "'}' after the attributes");
}

/* Reads a hex number "0x..." of 1 to 8 digits (a uint32). */
static mica_status_t read_hex32(parser_t *p, uint32_t *out)
{
    skip_ws(p);
    size_t at = p->pos;
    if (peek(p) != '0' || p->pos + 1 >= p->len || (p->s[p->pos + 1] != 'x'))
        return expected(p, "a hex number '0x...'");
    p->pos += 2;
    uint32_t v = 0;
    int digits = 0;
    for (int h; (h = hex_value(peek(p))) >= 0; p->pos++) {
        if (++digits > 8)
            return PERR(p, at, "flags out of range (8 hex digits at most)");
        v = v * 16 + (uint32_t)h;
    }
    if (digits == 0 || is_ident(peek(p)))
        return PERR(p, at, "bad hex number");
    *out = v;
    return MICA_OK;
}

/* Reads "!{key=value, ...}" (the '!' at pos) into n and *out_origin. */
static mica_status_t read_annotations(parser_t *p, mica_node_t *n, int64_t *out_origin)
{
    p->pos++; /* '!' */
    if (peek(p) != '{')
        return expected(p, "'{' after '!'");
    p->pos++;
    enum { ORIGIN, FLAGS, NOTE, MEM, SPLIT, COST, NS, N_KEYS };
    static const char *const keys[N_KEYS] = {"origin", "flags", "note", "mem", "split", "cost", "ns"};
    bool seen[N_KEYS] = {false};
    mica_node_sched_t *sc = &n->sched;
    for (bool more = !list_empty(p, '}'); more;) {
        skip_ws(p);
        size_t at = p->pos, len = 0, key_at = 0;
        MICA_TRY(read_ident(p, "an annotation (origin, flags, note, mem, split, cost or ns)",
                            &key_at, &len));
        int k = 0;
        while (k < N_KEYS && !(strlen(keys[k]) == len && memcmp(p->s + key_at, keys[k], len) == 0))
            k++;
        if (k == N_KEYS)
            return PERR(p, at, "unknown annotation '%.*s' (origin, flags, note, mem, split, cost "
                        "or ns)", (int)(len > 32 ? 32 : len), p->s + key_at);
        if (seen[k])
            return PERR(p, at, "annotation %s given twice", keys[k]);
        seen[k] = true;
        MICA_TRY(expect_char(p, '=', "'='"));
        if (k == ORIGIN) {
            MICA_TRY(read_int_in(p, 0, INT32_MAX, "origin", out_origin));
        } else if (k == FLAGS) {
            MICA_TRY(read_hex32(p, &n->flags));
        } else if (k == NOTE) {
            MICA_TRY(read_string(p, &p->note));
            n->note = p->note.p;
        } else if (k == MEM) {
            MICA_TRY(read_int_in(p, 0, INT64_MAX, "mem offset", &sc->mem_offset));
            sc->has_mem = true;
        } else if (k == SPLIT) {
            static const char *const axes[3] = {"none", "rows", "cols"};
            skip_ws(p);
            size_t ax_at = p->pos, ax_len = 0, ax_key = 0;
            MICA_TRY(read_ident(p, "a split axis (none, rows or cols)", &ax_key, &ax_len));
            int a = 0;
            while (a < 3 && !(strlen(axes[a]) == ax_len && memcmp(p->s + ax_key, axes[a], ax_len) == 0))
                a++;
            if (a == 3)
                return PERR(p, ax_at, "unknown split axis (none, rows or cols)");
            sc->split_axis = (mica_split_axis_t)a;
            MICA_TRY(expect_char(p, '[', "'[' before the parts"));
            sc->n_parts = 0;
            for (bool more_parts = !list_empty(p, ']'); more_parts;) {
                if (sc->n_parts == MICA_MAX_PARTS)
                    return PERR(p, p->pos, "more than %d parts", MICA_MAX_PARTS);
                MICA_TRY(read_int_in(p, 0, INT64_MAX, "part", &sc->parts[sc->n_parts++]));
                MICA_TRY(list_next(p, ']', &more_parts));
            }
            if (sc->n_parts == 0)
                return PERR(p, ax_at, "a split needs at least one part");
        } else if (k == COST) {
            int64_t *dst[4] = {&sc->bytes_read, &sc->bytes_written, &sc->int_ops, &sc->float_ops};
            MICA_TRY(expect_char(p, '[', "'[' before the cost"));
            for (int c = 0; c < 4; c++) {
                MICA_TRY(read_int_in(p, 0, INT64_MAX, "cost", dst[c]));
                if (c < 3)
                    MICA_TRY(expect_char(p, ',', "',' (cost is [read, write, iops, flops])"));
            }
            MICA_TRY(expect_char(p, ']', "']' after the four costs"));
            sc->has_cost = true;
        } else {
            MICA_TRY(read_int_in(p, 0, INT64_MAX, "ns", &sc->time_ns));
        }
        MICA_TRY(list_next(p, '}', &more));
    }
    if (seen[COST] != seen[NS])
        return PERR(p, p->pos, "cost and ns come together");
    return MICA_OK;
}

/* Reads one node line (pos at its '%') and appends it to the graph. */
static mica_status_t read_node(parser_t *p)
{
    size_t at = p->pos;
    int32_t self = p->g->n_nodes;
    int64_t id;
    MICA_TRY(read_value_id(p, "a node '%N = op(...)' or a comment", &id));
    if (id < self)
        return PERR(p, at, "%%%lld is defined twice (first on line %d)", (long long)id,
                    ((const int32_t *)p->lines.p)[id]);
    if (id > self)
        return PERR(p, at, "%%%lld is out of order: the next value must be %%%d", (long long)id,
                    self);
    MICA_TRY(expect_char(p, '=', "'='"));
    skip_ws(p);
    size_t op_at = 0, op_len = 0;
    MICA_TRY(read_ident(p, "an op name", &op_at, &op_len));
    mica_op_t op = mica_op_from_name(p->s + op_at, op_len);
    if (op == MICA_OP_COUNT)
        return PERR(p, op_at, "unknown op '%.*s'", (int)(op_len > 32 ? 32 : op_len), p->s + op_at);
    const mica_op_info_t *info = mica_op_info(op);

    mica_node_t n;
    memset(&n, 0, sizeof n);
    n.op = op;
    n.id = self;
    p->operands.n = 0;
    p->regions.n = 0;
    MICA_TRY(expect_char(p, '(', "'('"));
    for (bool more = !list_empty(p, ')'); more;) {
        MICA_TRY(read_operand(p, self));
        MICA_TRY(list_next(p, ')', &more));
    }
    n.n_inputs = (int32_t)p->operands.n;
    n.inputs = p->operands.p;
    skip_ws(p);
    if (info->n_attrs > 0)
        MICA_TRY(read_attrs(p, info, &n));
    else if (peek(p) == '{')
        return PERR(p, p->pos, "%s takes no attributes", info->name);
    MICA_TRY(expect_char(p, ':', "':' before the type"));
    skip_ws(p);
    size_t type_at = p->pos;
    MICA_TRY(read_type(p, &n.type));
    int64_t origin = self;
    skip_ws(p);
    if (peek(p) == '!')
        MICA_TRY(read_annotations(p, &n, &origin));

    skip_comment(p);
    if (peek(p) >= 0 && peek(p) != '\n') {
        char what[24];
        return PERR(p, p->pos, "unexpected %s after the type", describe(p, what, sizeof what));
    }

    mica_diag_t d = {0};
    mica_type_t t;
    mica_status_t s = mica_node_infer_type(p->g, &n, &t, &d);
    if (s != MICA_OK)
        return perr_code(p, op_at, s, "%%%d (%s): %s", self, info->name,
                         mica_text_strip_op(d.msg, info->name));
    if (!mica_type_equal(&t, &n.type)) {
        char want[96], got[96];
        mica_text_format_type(&n.type, got, sizeof got);
        mica_text_format_type(&t, want, sizeof want);
        return PERR(p, type_at, "%%%d (%s): declared type %s, but the operands give %s", self,
                    info->name, got, want);
    }
    if (mica_graph_append(p->g, &n, false) < 0)
        return perr_code(p, at, p->g->error.code ? p->g->error.code : MICA_ERR_INVALID, "%s",
                         p->g->error.msg);
    p->g->nodes[self]->origin = (int32_t)origin;
    if (!vec_push(&p->lines, &p->line, sizeof p->line))
        return NOMEM(p);
    return MICA_OK;
}

static mica_status_t read_header(parser_t *p)
{
    static const char magic[] = "# mica ir";
    size_t n = sizeof magic - 1;
    if (p->len < n || memcmp(p->s, magic, n) != 0)
        return PERR(p, 0, "expected the header '# mica ir 1' on the first line");
    p->pos = n;
    skip_ws(p);
    size_t at = p->pos;
    int64_t version;
    if (!is_digit(peek(p)))
        return expected(p, "the IR version");
    MICA_TRY(read_i64(p, &version));
    if (version != 1)
        return PERR(p, at, "unsupported IR version %lld (this mica reads 1)", (long long)version);
    skip_ws(p);
    if (peek(p) >= 0 && peek(p) != '\n')
        return PERR(p, p->pos, "unexpected text after the header");
    return MICA_OK;
}

/* Runs the verifier; its message names "%N", which is mapped to N's line. */
static mica_status_t verify_all(parser_t *p)
{
    mica_diag_t d = {0};
    mica_status_t s = mica_graph_verify(p->g, &d);
    if (s == MICA_OK)
        return MICA_OK;
    int32_t line = p->line;
    if (d.msg[0] == '%') {
        long long id = 0;
        const char *c = d.msg + 1;
        while (is_digit((unsigned char)*c) && id < INT32_MAX)
            id = id * 10 + (*c++ - '0');
        if (c > d.msg + 1 && id >= 0 && (size_t)id < p->lines.n)
            line = ((const int32_t *)p->lines.p)[id];
    }
    return mica_diag_set(p->d, s, "%d:1: %s", line, d.msg);
}

static mica_status_t parse_all(parser_t *p)
{
    MICA_TRY(read_header(p));
    while (p->pos < p->len) {
        /* pos is at a '\n' ending the previous line */
        p->pos++;
        p->line++;
        p->line_start = p->pos;
        if (p->line == INT32_MAX)
            return PERR(p, p->pos, "too many lines");
        skip_comment(p);
        if (peek(p) >= 0 && peek(p) != '\n')
            MICA_TRY(read_node(p));
    }
    return verify_all(p);
}

mica_status_t mica_graph_parse(const char *text, size_t len, mica_graph_t **out_graph,
                               mica_diag_t *d)
{
    if (!out_graph)
        return mica_diag_set(d, MICA_ERR_INVALID, "no place for the parsed graph");
    *out_graph = NULL;
    if (!text && len > 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "no text to parse");
    parser_t p;
    memset(&p, 0, sizeof p);
    p.s = text ? text : "";
    p.len = len;
    p.line = 1;
    p.d = d;
    if (mica_graph_create(&p.g) != MICA_OK)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    mica_status_t s = parse_all(&p);
    vec_free(&p.operands);
    vec_free(&p.regions);
    vec_free(&p.tmp);
    vec_free(&p.note);
    vec_free(&p.lines);
    for (int i = 0; i < MICA_MAX_ATTRS; i++) {
        vec_free(&p.ints[i]);
        vec_free(&p.strs[i]);
    }
    if (s != MICA_OK) {
        mica_graph_release(p.g);
        return s;
    }
    *out_graph = p.g;
    return MICA_OK;
}
