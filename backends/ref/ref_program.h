/* A compiled program (ir/program.h) run on the reference backend: the
 * states are allocated once at create, and each call binds them and the
 * run-time lengths to the prefill or decode graph as it stands, with no
 * graph built, rewritten or re-planned per step. Values live in one arena
 * laid out by the static memory plan of each graph.
 */
#ifndef MICA_REF_PROGRAM_H
#define MICA_REF_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>

#include "program.h"

typedef struct mica_ref_program mica_ref_program_t;

/* Allocates the program's states (zeroed) and the input buffers of one
 * call. Borrows p, which must outlive the runner. Fails if the two graphs
 * disagree on a state's type or a graph lacks an input the runner feeds. */
mica_status_t mica_ref_program_create(const mica_program_t *p, mica_ref_program_t **out_runner,
                                      mica_diag_t *d);
/* Frees the states and buffers; NULL is fine. */
void mica_ref_program_release(mica_ref_program_t *r);

/* Tokens in the cache, and emptying it. */
int64_t mica_ref_program_n_past(const mica_ref_program_t *r);
void mica_ref_program_reset(mica_ref_program_t *r);

/* Runs n tokens at positions n_past .. n_past+n-1: one decode call for
 * n == 1, else prefill calls of up to `chunk` tokens. Writes logits to
 * out_logits: [n][n_vocab] when all_logits, else the last token's row.
 * Fails with the cache as it was on ids outside the vocabulary or a
 * context past n_ctx. */
mica_status_t mica_ref_program_eval(mica_ref_program_t *r, const int32_t *tokens, int32_t n,
                                    bool all_logits, float *out_logits, mica_diag_t *d);

/* Bytes of state the runner holds (the KV cache at n_ctx). */
uint64_t mica_ref_program_state_bytes(const mica_ref_program_t *r);
/* Bytes of the one activation arena it allocated: the larger of the two
 * graphs' memory plans (passes/memplan.h) in the ref's 4-byte elements.
 * Every value lives at its planned offset there; no value is allocated
 * per call. */
uint64_t mica_ref_program_arena_bytes(const mica_ref_program_t *r);

#endif
