/* The thread pool that runs a plan's splits: n_threads - 1 workers plus the
 * thread that calls parallel_for.
 *
 * Part p of a call runs on thread p % n_threads (thread 0 is the caller),
 * so a plan split over 2 cores runs one part per thread and the same part
 * always lands on the same thread. Between calls a worker spins briefly
 * (decode issues one call per op, microseconds apart), then blocks on a
 * condition variable; the caller waits for the workers the same way. A
 * call allocates nothing. With n_threads == 1 there are no workers and
 * parts run inline.
 *
 * One pool serves one thread of calls at a time (a session): parallel_for
 * must not be called concurrently on the same pool, nor from inside a part.
 * Includes only libc and pthreads.
 */
#ifndef MICA_CPU_POOL_H
#define MICA_CPU_POOL_H

#include <stdint.h>

#include "mica_abi.h"

/* Most threads a pool takes. */
#define MICA_CPU_POOL_MAX_THREADS 256u

typedef struct mica_cpu_pool mica_cpu_pool_t;

/* Starts a pool of n_threads (1 .. MICA_CPU_POOL_MAX_THREADS) and stores it
 * in *out_pool (caller releases). Returns 0, EINVAL for a bad count,
 * ENOMEM, or pthread_create's error (nothing is left running then). */
int mica_cpu_pool_create(uint32_t n_threads, mica_cpu_pool_t **out_pool);

/* Stops and joins the workers and frees the pool; NULL is fine. Must not
 * run while a parallel_for call is in progress. */
void mica_cpu_pool_release(mica_cpu_pool_t *pool);

/* Threads of the pool, the caller's included. */
uint32_t mica_cpu_pool_threads(const mica_cpu_pool_t *pool);

/* mica_abi_env_t.parallel_for over a mica_cpu_pool_t: runs fn(ctx, p) for
 * every p in [0, n_parts), part p on thread p % n_threads, and returns
 * when all are done (their writes are then visible to the caller). */
void mica_cpu_pool_parallel_for(void *pool, uint32_t n_parts, mica_abi_task_fn fn, void *ctx);

#endif
