/* What the mica command (tools/) uses beyond the public API: it drives the
 * same models and sessions as an app, and needs the tokenizer and the chat
 * template the model carries, and errors in the compiler's diagnostics.
 * Not installed. */
#ifndef MICA_INTERNAL_H
#define MICA_INTERNAL_H

#include <stddef.h>

#include "diag.h"
#include "mica.h"
#include "tokenizer.h"

/* mica_model_open with the failure in d, whose message does not name path
 * (the command puts it in front). */
mica_status_t mica_model_open_diag(const char *path, mica_model_t **out_model, mica_diag_t *d);

/* The model's tokenizer (owned by the model, read-only: any thread). */
const mica_tokenizer_t *mica_model_tokenizer(const mica_model_t *model);

/* The model's chat template (tokenizer.chat_template, *out_len bytes,
 * NUL-terminated, owned by the model), or NULL when it has none. */
const char *mica_model_chat_template(const mica_model_t *model, size_t *out_len);

#endif
