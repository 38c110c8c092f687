/* Status codes and one-line diagnostics shared by the compiler and runtime.
 *
 * A function that can fail returns mica_status_t (0 = success) and, when it
 * is given a mica_diag_t, writes one line saying what is wrong. The line
 * names no file: the caller that knows the file prefixes it (the CLI prints
 * "FILE: message"). Parsers put "LINE:COL: " in front of their message.
 */
#ifndef MICA_DIAG_H
#define MICA_DIAG_H

#include <stddef.h>

typedef enum mica_status {
    MICA_OK = 0,
    MICA_ERR_INVALID = 1,     /* malformed input (file, text, graph) */
    MICA_ERR_UNSUPPORTED = 2, /* well-formed but not something mica handles */
    MICA_ERR_IO = 3,          /* open/read/write/mmap failed */
    MICA_ERR_NOMEM = 4,       /* allocation failed or a size would overflow */
    MICA_ERR_RANGE = 5,       /* an index or count out of bounds */
} mica_status_t;

#define MICA_DIAG_MAX 512

/* One diagnostic line. Caller-owned; zero-initialise before use. */
typedef struct mica_diag {
    mica_status_t code;
    char msg[MICA_DIAG_MAX];
} mica_diag_t;

/* Records code and the printf-style message in d (if d is not NULL) and
 * returns code, so callers can write `return mica_diag_set(d, ...)`.
 * A second call overwrites the first. */
mica_status_t mica_diag_set(mica_diag_t *d, mica_status_t code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends "prefix: " to the message already in d (context as an error
 * travels up). No-op when d is NULL. */
void mica_diag_prefix(mica_diag_t *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Short name of a status code ("invalid", "unsupported", ...). */
const char *mica_status_name(mica_status_t s);

/* Propagates a failing status unchanged. */
#define MICA_TRY(expr)                         \
    do {                                       \
        mica_status_t mica_try_s_ = (expr);    \
        if (mica_try_s_ != MICA_OK)            \
            return mica_try_s_;                \
    } while (0)

#endif
