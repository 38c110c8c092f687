#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

mica_status_t mica_diag_set(mica_diag_t *d, mica_status_t code, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
        d->code = code;
    }
    return code;
}

void mica_diag_prefix(mica_diag_t *d, const char *fmt, ...)
{
    if (!d)
        return;
    char head[MICA_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    /* head + ": " + old message, cut to fit */
    char out[MICA_DIAG_MAX];
    size_t hl = strlen(head), ol = strlen(d->msg);
    if (hl > sizeof out - 3)
        hl = sizeof out - 3;
    memcpy(out, head, hl);
    memcpy(out + hl, ": ", 2);
    if (ol > sizeof out - 1 - hl - 2)
        ol = sizeof out - 1 - hl - 2;
    memcpy(out + hl + 2, d->msg, ol);
    out[hl + 2 + ol] = 0;
    memcpy(d->msg, out, sizeof out);
}

const char *mica_status_name(mica_status_t s)
{
    switch (s) {
    case MICA_OK: return "ok";
    case MICA_ERR_INVALID: return "invalid";
    case MICA_ERR_UNSUPPORTED: return "unsupported";
    case MICA_ERR_IO: return "io";
    case MICA_ERR_NOMEM: return "out of memory";
    case MICA_ERR_RANGE: return "out of range";
    }
    return "unknown";
}
