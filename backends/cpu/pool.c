/* The thread pool (backends/cpu/pool.h).
 *
 * A call publishes (fn, ctx, n_parts), sets `remaining` to the number of
 * workers and bumps `generation`; each worker runs its parts and
 * decrements `remaining`. Waiting threads spin on those two counters for a
 * while, then sleep on a condition variable. The sleep/wake handshakes are
 * Dekker-style on sequentially consistent atomics (the sleeper announces
 * itself, then re-checks; the waker changes the counter, then looks for
 * sleepers), so no wake-up is lost and an uncontended call takes no lock.
 */
#include "pool.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long a waiting thread polls before it blocks, nanoseconds: longer
 * than the gap between two ops of a decode step, short enough that idle
 * workers soon leave the cores to others. */
#define SPIN_NS 50000u
#define SPIN_CHECK 32 /* polls between two looks at the clock */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls *v (acquire) until it differs from `unlike` (want_zero: until it is
 * 0) or SPIN_NS pass; returns the last value read. */
static uint32_t spin(_Atomic uint32_t *v, uint32_t unlike, bool want_zero)
{
    uint64_t t0 = 0;
    for (uint32_t i = 1;; i++) {
        uint32_t x = atomic_load_explicit(v, memory_order_acquire);
        if (want_zero ? x == 0 : x != unlike)
            return x;
        cpu_relax();
        if (i % SPIN_CHECK == 0) {
            uint64_t t = now_ns();
            if (!t0)
                t0 = t;
            else if (t - t0 > SPIN_NS)
                return x;
        }
    }
}

typedef struct worker {
    struct mica_cpu_pool *pool;
    uint32_t index; /* thread index, 1 .. n_threads - 1 */
    pthread_t thread;
} worker_t;

struct mica_cpu_pool {
    uint32_t n_threads;
    uint32_t n_started; /* workers running (all of them after create) */
    /* the current call: written by the caller before it bumps generation,
     * read by workers after they see the new value */
    mica_abi_task_fn fn;
    void *ctx;
    uint32_t n_parts;
    /* the caller writes generation, the workers remaining: one cache line
     * each, so a poll of one does not contend with writes of the other */
    _Alignas(64) _Atomic uint32_t generation; /* one more per call, and at shutdown */
    _Atomic uint32_t sleepers;                /* workers blocked (or about to) on wake */
    _Atomic int stop;
    _Alignas(64) _Atomic uint32_t remaining; /* workers not done with the current call */
    _Atomic int caller_asleep;               /* the caller blocked (or about to) on done */
    _Alignas(64) char pad_;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* generation moved */
    pthread_cond_t done; /* remaining reached 0 */
    worker_t workers[];  /* n_threads - 1 */
};

static void run_parts(const mica_cpu_pool_t *p, uint32_t thread)
{
    for (uint32_t part = thread; part < p->n_parts; part += p->n_threads)
        p->fn(p->ctx, part);
}

/* Waits until generation differs from seen and returns it. */
static uint32_t wait_generation(mica_cpu_pool_t *p, uint32_t seen)
{
    uint32_t g = spin(&p->generation, seen, false);
    if (g != seen)
        return g;
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    while ((g = atomic_load(&p->generation)) == seen)
        pthread_cond_wait(&p->wake, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    mica_cpu_pool_t *p = w->pool;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_generation(p, seen);
        if (atomic_load(&p->stop))
            break;
        run_parts(p, w->index);
        if (atomic_fetch_sub(&p->remaining, 1) == 1 && atomic_load(&p->caller_asleep)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

/* Bumps generation and wakes the workers that sleep. */
static void publish(mica_cpu_pool_t *p)
{
    atomic_fetch_add(&p->generation, 1);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
}

static void stop_workers(mica_cpu_pool_t *p)
{
    atomic_store(&p->stop, 1);
    publish(p);
    for (uint32_t i = 0; i < p->n_started; i++)
        pthread_join(p->workers[i].thread, NULL);
    p->n_started = 0;
}

int mica_cpu_pool_create(uint32_t n_threads, mica_cpu_pool_t **out_pool)
{
    *out_pool = NULL;
    if (n_threads < 1 || n_threads > MICA_CPU_POOL_MAX_THREADS)
        return EINVAL;
    size_t bytes = sizeof(mica_cpu_pool_t) + (size_t)(n_threads - 1) * sizeof(worker_t);
    mica_cpu_pool_t *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p)
        return ENOMEM;
    memset(p, 0, bytes);
    p->n_threads = n_threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_asleep, 0);
    atomic_init(&p->stop, 0);
    int rc = pthread_mutex_init(&p->mu, NULL);
    if (rc != 0) {
        free(p);
        return rc;
    }
    if ((rc = pthread_cond_init(&p->wake, NULL)) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    if ((rc = pthread_cond_init(&p->done, NULL)) != 0) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rc;
    }
    for (uint32_t i = 0; i + 1 < n_threads; i++) {
        worker_t *w = &p->workers[i];
        w->pool = p;
        w->index = i + 1;
        rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            mica_cpu_pool_release(p);
            return rc;
        }
        p->n_started++;
    }
    *out_pool = p;
    return 0;
}

void mica_cpu_pool_release(mica_cpu_pool_t *p)
{
    if (!p)
        return;
    stop_workers(p);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

uint32_t mica_cpu_pool_threads(const mica_cpu_pool_t *p)
{
    return p->n_threads;
}

void mica_cpu_pool_parallel_for(void *pool, uint32_t n_parts, mica_abi_task_fn fn, void *ctx)
{
    mica_cpu_pool_t *p = pool;
    if (n_parts == 0)
        return;
    if (p->n_threads == 1 || n_parts == 1) {
        for (uint32_t part = 0; part < n_parts; part++)
            fn(ctx, part);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_parts = n_parts;
    atomic_store(&p->remaining, p->n_threads - 1);
    publish(p);
    run_parts(p, 0);
    if (spin(&p->remaining, 0, true) == 0)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->caller_asleep, 1);
    while (atomic_load(&p->remaining) != 0)
        pthread_cond_wait(&p->done, &p->mu);
    atomic_store(&p->caller_asleep, 0);
    pthread_mutex_unlock(&p->mu);
}
