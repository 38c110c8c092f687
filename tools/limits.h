/* The limits of the running machine that `mica bench` measures its figures
 * against: memory read bandwidth (decode reads every weight once per
 * token) and the int8 dot-product peak (prefill is integer GEMM).
 *
 * mica_limits_measure() runs a short built-in measurement (about two
 * seconds): a streaming sum over a buffer much larger than the last-level
 * cache, on one thread and on every core, and a register-resident loop of
 * the best int8 dot-product instruction the CPU has (chosen at run time;
 * the code is compiled with target attributes, so the binary runs on any
 * CPU of its architecture). Each figure is the best of several runs.
 *
 * The result is cached per machine in a small text file,
 * $XDG_CACHE_HOME/mica/limits-HASH (default ~/.cache/mica/), HASH naming
 * the CPU model string and the core count, written atomically.
 */
#ifndef MICA_TOOLS_LIMITS_H
#define MICA_TOOLS_LIMITS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "diag.h"

#define MICA_LIMITS_FORMAT "mica-limits"
#define MICA_LIMITS_VERSION 1
#define MICA_LIMITS_CPU_MAX 128

/* One machine's limits. Bandwidths are 1e9 bytes/s of reads, peaks 1e9
 * int8 operations/s (a multiply-add counts 2, as in 2 x params per token). */
typedef struct mica_limits {
    char cpu[MICA_LIMITS_CPU_MAX]; /* CPU model string, one line */
    char arch[16];                 /* what this binary runs as: "x86_64", "aarch64" (an
                                      emulator may report the host's CPU string) */
    int32_t n_cores;               /* cores online when measured */
    char int8_isa[32];             /* instruction the peak loop ran: "avx2" (vpmaddubsw+vpmaddwd),
                                      "avxvnni", "avx512vnni", "sdot", "smmla", "c" */
    char bw_isa[16];               /* what the streaming sum ran on: "avx2", "neon", "c" */
    uint64_t bw_buffer_bytes;      /* the buffer streamed */
    double bw_1t_gbs;              /* one thread */
    double bw_all_gbs;             /* n_cores threads */
    double int8_1t_gops;           /* one core */
    double int8_all_gops;          /* n_cores threads */
} mica_limits_t;

/* The running machine's CPU model string (cpuid brand string on x86, else
 * /proc/cpuinfo; "unknown" when neither says), the architecture this
 * binary was built for and the online core count: what a cache file must
 * match. */
void mica_limits_machine(char cpu[MICA_LIMITS_CPU_MAX], char arch[16], int32_t *out_n_cores);

/* Measures the running machine into *out (cpu, arch and n_cores included).
 * Fails with MICA_ERR_NOMEM when the buffer cannot be had, MICA_ERR_IO
 * when a thread cannot be started. */
mica_status_t mica_limits_measure(mica_limits_t *out, mica_diag_t *d);

/* The cache file of this machine, "DIR/mica/limits-<16 hex digits>", in
 * buf, HASH of the CPU string, architecture and core count. Fails (MICA_ERR_IO) when neither
 * XDG_CACHE_HOME nor HOME is set, MICA_ERR_RANGE when buf is too small. */
mica_status_t mica_limits_cache_path(char *buf, size_t cap, mica_diag_t *d);

/* Writes l to path through a temporary file in the same directory renamed
 * into place, creating the parent directory (one level) if missing. */
mica_status_t mica_limits_save(const mica_limits_t *l, const char *path, mica_diag_t *d);

/* Reads a file mica_limits_save wrote. Fails (MICA_ERR_INVALID, saying
 * what) on another format or version, a missing or non-positive figure,
 * or a line it does not know; MICA_ERR_IO when it cannot be read. */
mica_status_t mica_limits_load(const char *path, mica_limits_t *out, mica_diag_t *d);

/* This machine's limits: the cache file when it holds a valid record of
 * this CPU, architecture and core count, else measured (in a child process, so the
 * caller's peak RSS does not carry the buffer) and saved. With remeasure
 * the cache is not read. Says what it measures on log (NULL: silent).
 * A cache that cannot be written is not an error (log says so). */
mica_status_t mica_limits_get(bool remeasure, FILE *log, mica_limits_t *out, mica_diag_t *d);

/* The limits for n_threads threads: the one-thread figure for 1, the
 * all-core figure from n_cores on, in between the one-thread figure times
 * n_threads capped at the all-core one. */
double mica_limits_bw_gbs(const mica_limits_t *l, int32_t n_threads);
double mica_limits_int8_gops(const mica_limits_t *l, int32_t n_threads);

/* Prints the limits, one line a figure, saying what was measured. */
void mica_limits_print(const mica_limits_t *l, FILE *f);

#endif
