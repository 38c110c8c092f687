/* The machine's read bandwidth and int8 dot-product peak (see limits.h). */
#include "limits.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "target.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

/* Each figure is the best of RUNS short runs: on a machine shared with
 * other work, a short run is more likely to have had its cores alone. */
#define RUNS 24
#define RUN_SECONDS 0.005 /* aimed length of one int8 run */
#define WINDOWS 4         /* one stream run reads the next quarter of the buffer */
#define MAX_THREADS 256
#define MIN_BUFFER (128u << 20) /* the streamed buffer: at least this, */
#define LLC_TIMES 8             /* and this many times the last-level cache */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the machine --------------------------------------------------------- */

/* Copies s into cpu with runs of white space made one space, trimmed. */
static void set_cpu_string(char cpu[MICA_LIMITS_CPU_MAX], const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < MICA_LIMITS_CPU_MAX; s++) {
        bool space = *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';
        if (space && (n == 0 || cpu[n - 1] == ' '))
            continue;
        cpu[n++] = space ? ' ' : *s;
    }
    while (n && cpu[n - 1] == ' ')
        n--;
    cpu[n] = 0;
}

/* The first /proc/cpuinfo lines naming the model, "key: value" joined. */
static bool cpuinfo_model(char cpu[MICA_LIMITS_CPU_MAX])
{
    static const char *const keys[] = {"model name", "Hardware", "CPU implementer", "CPU part"};
    char found[4][64] = {{0}};
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        for (int k = 0; k < 4; k++) {
            size_t kl = strlen(keys[k]);
            if (!found[k][0] && !strncmp(line, keys[k], kl) &&
                (line[kl] == ' ' || line[kl] == '\t'))
                snprintf(found[k], sizeof found[k], "%s", colon + 1 + (colon[1] == ' '));
        }
    }
    fclose(f);
    char joined[MICA_LIMITS_CPU_MAX * 2] = "";
    if (found[0][0])
        snprintf(joined, sizeof joined, "%s", found[0]);
    else if (found[1][0])
        snprintf(joined, sizeof joined, "%s", found[1]);
    else if (found[2][0] || found[3][0])
        snprintf(joined, sizeof joined, "implementer %.24s part %.24s", found[2], found[3]);
    set_cpu_string(cpu, joined);
    return cpu[0] != 0;
}

void mica_limits_machine(char cpu[MICA_LIMITS_CPU_MAX], char arch[16], int32_t *out_n_cores)
{
#if defined(__x86_64__)
    snprintf(arch, 16, "x86_64");
#elif defined(__aarch64__)
    snprintf(arch, 16, "aarch64");
#else
    snprintf(arch, 16, "other");
#endif
    cpu[0] = 0;
#if defined(__x86_64__)
    unsigned r[12] = {0};
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++)
            __cpuid(0x80000002u + i, r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
        char brand[49];
        memcpy(brand, r, 48);
        brand[48] = 0;
        set_cpu_string(cpu, brand);
    }
#endif
    if (!cpu[0] && !cpuinfo_model(cpu))
        snprintf(cpu, MICA_LIMITS_CPU_MAX, "unknown");
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    *out_n_cores = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int32_t)n;
}

/* ---- running one function on n threads at once ------------------------- */

typedef void (*team_fn)(void *ctx, int tid, int run);

typedef struct team {
    team_fn fn;
    void *ctx;
    int runs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool go, abort; /* set once every thread is started, under lock */
    pthread_barrier_t start, done;
} team_t;

typedef struct team_member {
    team_t *team;
    int tid;
} team_member_t;

static void *team_worker(void *arg)
{
    const team_member_t *m = arg;
    team_t *t = m->team;
    pthread_mutex_lock(&t->lock);
    while (!t->go)
        pthread_cond_wait(&t->cond, &t->lock);
    bool abort = t->abort;
    pthread_mutex_unlock(&t->lock);
    if (abort)
        return NULL;
    for (int r = 0; r < t->runs; r++) {
        pthread_barrier_wait(&t->start);
        t->fn(t->ctx, m->tid, r);
        pthread_barrier_wait(&t->done);
    }
    return NULL;
}

/* Runs fn(ctx, 0..n-1, run) on n threads (the caller is thread 0) for run
 * in [0, runs)
 * and returns the shortest wall time of one run in *out_seconds. */
static mica_status_t team_best(int n, int runs, team_fn fn, void *ctx, double *out_seconds,
                               mica_diag_t *d)
{
    team_t t = {.fn = fn, .ctx = ctx, .runs = runs};
    pthread_t threads[MAX_THREADS];
    team_member_t members[MAX_THREADS];
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.cond, NULL);
    int started = 0, err = 0;
    for (int i = 1; i < n && !err; i++) {
        members[i] = (team_member_t){&t, i};
        err = pthread_create(&threads[i], NULL, team_worker, &members[i]);
        started += !err;
    }
    if (!err) {
        pthread_barrier_init(&t.start, NULL, (unsigned)n);
        pthread_barrier_init(&t.done, NULL, (unsigned)n);
    }
    pthread_mutex_lock(&t.lock);
    t.go = true;
    t.abort = err != 0;
    pthread_cond_broadcast(&t.cond);
    pthread_mutex_unlock(&t.lock);
    double best = INFINITY;
    for (int r = 0; r < runs && !err; r++) {
        pthread_barrier_wait(&t.start);
        double t0 = now_seconds();
        fn(ctx, 0, r);
        pthread_barrier_wait(&t.done);
        double dt = now_seconds() - t0;
        best = dt < best ? dt : best;
    }
    for (int i = 1; i <= started; i++)
        pthread_join(threads[i], NULL);
    if (!err) {
        pthread_barrier_destroy(&t.start);
        pthread_barrier_destroy(&t.done);
    }
    pthread_cond_destroy(&t.cond);
    pthread_mutex_destroy(&t.lock);
    if (err)
        return mica_diag_set(d, MICA_ERR_IO, "cannot start thread %d of %d: %s", started + 2, n,
                             strerror(err));
    *out_seconds = best;
    return MICA_OK;
}

/* ---- read bandwidth: a streaming sum ------------------------------------ */

/* Sums n 64-bit words (n a multiple of 16, p 64-byte aligned). */
typedef uint64_t (*sum_fn)(const uint64_t *p, size_t n);

static uint64_t sum_c(const uint64_t *p, size_t n)
{
    uint64_t s[8] = {0};
    for (size_t i = 0; i < n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += p[i + k];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n)
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < n; i += 16) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256((const __m256i *)(p + i)));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}
#elif defined(__aarch64__)
static uint64_t sum_neon(const uint64_t *p, size_t n)
{
    uint64x2_t s0 = vdupq_n_u64(0), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < n; i += 8) {
        s0 = vaddq_u64(s0, vld1q_u64(p + i));
        s1 = vaddq_u64(s1, vld1q_u64(p + i + 2));
        s2 = vaddq_u64(s2, vld1q_u64(p + i + 4));
        s3 = vaddq_u64(s3, vld1q_u64(p + i + 6));
    }
    return vaddvq_u64(vaddq_u64(vaddq_u64(s0, s1), vaddq_u64(s2, s3)));
}
#endif

typedef struct stream_job {
    const uint64_t *buf;
    size_t words; /* of the whole buffer, a multiple of 16 * WINDOWS */
    int n_threads;
    sum_fn fn;
    volatile uint64_t *sinks; /* [n_threads] */
} stream_job_t;

/* Thread tid's slice of window w: whole 128-byte blocks (what the sum
 * functions take). A run reads one window, the next run the next one, so
 * what a run reads was last read WINDOWS - 1 windows (at least 3 times the
 * last-level cache) before: from memory, not from the cache. */
static void stream_slice(const stream_job_t *j, int w, int tid, size_t *out_lo, size_t *out_n)
{
    size_t blocks = j->words / 16 / WINDOWS, n = (size_t)j->n_threads;
    size_t lo = blocks * (size_t)tid / n, hi = blocks * (size_t)(tid + 1) / n;
    *out_lo = (blocks * (size_t)w + lo) * 16;
    *out_n = (hi - lo) * 16;
}

static void stream_part(void *ctx, int tid, int run)
{
    const stream_job_t *j = ctx;
    size_t lo, n;
    stream_slice(j, run % WINDOWS, tid, &lo, &n);
    j->sinks[tid] = j->fn(j->buf + lo, n);
}

/* Best GB/s of a streaming sum over the buffer on n threads. */
static mica_status_t measure_stream(stream_job_t *j, int n, double *out_gbs, mica_diag_t *d)
{
    j->n_threads = n;
    double t = 0;
    MICA_TRY(team_best(n, RUNS, stream_part, j, &t, d));
    *out_gbs = (double)(j->words / WINDOWS) * 8.0 / t / 1e9;
    return MICA_OK;
}

/* ---- int8 dot-product peak ---------------------------------------------- */

/* Runs iters iterations of a loop of independent int8 dot-product chains
 * that stay in registers; writes a value depending on all of them to *sink
 * so the loop is not removed. */
typedef void (*int8_fn)(uint64_t iters, volatile int32_t *sink);

typedef struct int8_kernel {
    const char *name;      /* mica_limits_t.int8_isa */
    const char *what;      /* the instruction, for people */
    uint64_t needs;        /* feature bits (runtime/target.h) */
    uint64_t ops_per_iter; /* int8 multiplies + adds of one iteration */
    int8_fn run;
} int8_kernel_t;

/* Portable: the compiler vectorises it as it can. Each chain feeds itself
 * back as the next input, so nothing can be hoisted out of the loop. */
static void int8_c(uint64_t iters, volatile int32_t *sink)
{
    uint32_t acc[32]; /* wraps, as int32 lanes do */
    int8_t b[32];
    for (int k = 0; k < 32; k++) {
        acc[k] = (uint32_t)k + 1;
        b[k] = (int8_t)(k * 7 - 100);
    }
    for (uint64_t i = 0; i < iters; i++)
        for (int k = 0; k < 32; k++)
            acc[k] += (uint32_t)((int8_t)(acc[k] & 0xff) * b[k]);
    uint32_t x = 0;
    for (int k = 0; k < 32; k++)
        x ^= acc[k];
    *sink = (int32_t)(x & 0x7fffffff);
}

#if defined(__x86_64__)
/* vpmaddubsw + vpmaddwd + vpaddd: 32 u8 x s8 multiply-adds into 8 int32
 * lanes; 4 activation registers times 2 weight registers into 8
 * accumulators, the shape of a 4x2 GEMM tile. Written in assembly because
 * with invariant inputs a compiler would hoist the multiplies out. */
__attribute__((target("avx2"))) static void int8_avx2(uint64_t iters, volatile int32_t *sink)
{
    int32_t out[8];
    /* ymm9-12: activations, ymm13-14: weights, ymm15: 16-bit ones,
     * ymm0-7: the 4x2 accumulators, ymm8: the product */
    // clang-format off
#define MICA_AVX2_STEP(a, b, c)                          \
    "vpmaddubsw %%ymm" #b ", %%ymm" #a ", %%ymm8\n\t"     \
    "vpmaddwd %%ymm15, %%ymm8, %%ymm8\n\t"                \
    "vpaddd %%ymm8, %%ymm" #c ", %%ymm" #c "\n\t"
    __asm__ volatile(
        "vpcmpeqw %%ymm15, %%ymm15, %%ymm15\n\t"
        "vpsrlw $15, %%ymm15, %%ymm15\n\t"
        "vpcmpeqb %%ymm14, %%ymm14, %%ymm14\n\t"
        "vpabsb %%ymm14, %%ymm13\n\t"
        "vpaddb %%ymm13, %%ymm13, %%ymm9\n\t"
        "vpaddb %%ymm13, %%ymm9, %%ymm10\n\t"
        "vpaddb %%ymm13, %%ymm10, %%ymm11\n\t"
        "vpaddb %%ymm13, %%ymm11, %%ymm12\n\t"
        "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
        "vmovdqa %%ymm0, %%ymm1\n\t"
        "vmovdqa %%ymm0, %%ymm2\n\t"
        "vmovdqa %%ymm0, %%ymm3\n\t"
        "vmovdqa %%ymm0, %%ymm4\n\t"
        "vmovdqa %%ymm0, %%ymm5\n\t"
        "vmovdqa %%ymm0, %%ymm6\n\t"
        "vmovdqa %%ymm0, %%ymm7\n\t"
        "test %0, %0\n\t"
        "jz 2f\n\t"
        "1:\n\t"
        MICA_AVX2_STEP(9, 13, 0) MICA_AVX2_STEP(9, 14, 1)
        MICA_AVX2_STEP(10, 13, 2) MICA_AVX2_STEP(10, 14, 3)
        MICA_AVX2_STEP(11, 13, 4) MICA_AVX2_STEP(11, 14, 5)
        MICA_AVX2_STEP(12, 13, 6) MICA_AVX2_STEP(12, 14, 7)
        "dec %0\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "vpxor %%ymm1, %%ymm0, %%ymm0\n\t"
        "vpxor %%ymm3, %%ymm2, %%ymm2\n\t"
        "vpxor %%ymm5, %%ymm4, %%ymm4\n\t"
        "vpxor %%ymm7, %%ymm6, %%ymm6\n\t"
        "vpxor %%ymm2, %%ymm0, %%ymm0\n\t"
        "vpxor %%ymm6, %%ymm4, %%ymm4\n\t"
        "vpxor %%ymm4, %%ymm0, %%ymm0\n\t"
        "vmovdqu %%ymm0, %1\n\t"
        "vzeroupper"
        : "+r"(iters), "=m"(out)
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
          "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
#undef MICA_AVX2_STEP
    // clang-format on
    *sink = out[0] ^ out[7];
}

#endif

/* n accumulating dot-product instructions, acc = step(acc, a, b), per
 * iteration: they accumulate, so the compiler cannot hoist them out of the
 * loop; n independent chains cover the instruction's latency. The chains
 * are unrolled so that acc[] lives in registers. */
// clang-format off
#define MICA_INT8_CHAINS(name, target_, vec_t, n, a, b, init, step, xor_, reduce) \
    __attribute__((target(target_))) static void name(uint64_t iters, volatile int32_t *sink) \
    {                                                                           \
        vec_t acc[n];                                                           \
        _Pragma("GCC unroll 16")                                                \
        for (int k = 0; k < n; k++)                                             \
            acc[k] = init(k);                                                   \
        for (uint64_t i = 0; i < iters; i++) {                                  \
            _Pragma("GCC unroll 16")                                            \
            for (int k = 0; k < n; k++)                                         \
                acc[k] = step(acc[k], a, b);                                    \
        }                                                                       \
        vec_t x = acc[0];                                                       \
        _Pragma("GCC unroll 16")                                                \
        for (int k = 1; k < n; k++)                                             \
            x = xor_(x, acc[k]);                                                \
        *sink = reduce(x);                                                      \
    }
#if defined(__x86_64__)
/* vpdpbusd: 4 u8 x s8 products into each int32 lane */
MICA_INT8_CHAINS(int8_avxvnni, "avx2,avxvnni", __m256i, 12, _mm256_set1_epi8(3),
                 _mm256_set1_epi8(-5), _mm256_set1_epi32, _mm256_dpbusd_avx_epi32,
                 _mm256_xor_si256, _mm256_cvtsi256_si32)
MICA_INT8_CHAINS(int8_avx512vnni, "avx512f,avx512vnni", __m512i, 16, _mm512_set1_epi8(3),
                 _mm512_set1_epi8(-5), _mm512_set1_epi32, _mm512_dpbusd_epi32,
                 _mm512_xor_si512, _mm512_reduce_add_epi32)
#elif defined(__aarch64__)
/* sdot: 4 x 4 int8 into 4 int32; smmla: 2x8 by 8x2 int8 into 2x2 int32 */
MICA_INT8_CHAINS(int8_sdot, "arch=armv8.2-a+dotprod", int32x4_t, 16, vdupq_n_s8(3),
                 vdupq_n_s8(-5), vdupq_n_s32, vdotq_s32, veorq_s32, vaddvq_s32)
MICA_INT8_CHAINS(int8_smmla, "arch=armv8.2-a+i8mm", int32x4_t, 16, vdupq_n_s8(3),
                 vdupq_n_s8(-5), vdupq_n_s32, vmmlaq_s32, veorq_s32, vaddvq_s32)
#endif
#undef MICA_INT8_CHAINS
// clang-format on

#define FEAT(f) MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_##f)

/* Best first; the first whose features the CPU has is measured. */
static const int8_kernel_t int8_kernels[] = {
#if defined(__x86_64__)
    {"avx512vnni", "vpdpbusd zmm", FEAT(AVX512F) | FEAT(AVX512VNNI), 16 * 64 * 2, int8_avx512vnni},
    {"avxvnni", "vpdpbusd ymm", FEAT(AVX2) | FEAT(AVXVNNI), 12 * 32 * 2, int8_avxvnni},
    {"avx2", "vpmaddubsw+vpmaddwd ymm", FEAT(AVX2), 8 * 32 * 2, int8_avx2},
#elif defined(__aarch64__)
    {"smmla", "2x8 by 8x2 int8 matrix multiply-accumulate", FEAT(I8MM), 16 * 32 * 2, int8_smmla},
    {"sdot", "4-way int8 dot product", FEAT(DOTPROD), 16 * 16 * 2, int8_sdot},
#endif
    {"c", "plain C, as the compiler vectorises it", 0, 32 * 2, int8_c},
};

typedef struct int8_job {
    const int8_kernel_t *kernel;
    uint64_t iters;
    volatile int32_t *sinks; /* [n_threads] */
} int8_job_t;

static void int8_part(void *ctx, int tid, int run)
{
    const int8_job_t *j = ctx;
    j->kernel->run(j->iters, &j->sinks[tid]);
}

/* Best GOP/s of the kernel on n threads (j->iters already calibrated). */
static mica_status_t measure_int8(int8_job_t *j, int n, double *out_gops, mica_diag_t *d)
{
    double t = 0;
    MICA_TRY(team_best(n, RUNS, int8_part, j, &t, d));
    *out_gops = (double)j->kernel->ops_per_iter * (double)j->iters * n / t / 1e9;
    return MICA_OK;
}

/* ---- the measurement ---------------------------------------------------- */

mica_status_t mica_limits_measure(mica_limits_t *out, mica_diag_t *d)
{
    memset(out, 0, sizeof *out);
    mica_limits_machine(out->cpu, out->arch, &out->n_cores);
    mica_target_t host;
    uint64_t features = 0;
    int64_t llc = 0;
    if (mica_target_detect_host(&host, NULL) == MICA_OK) {
        features = host.features;
        llc = host.l3_bytes ? host.l3_bytes : host.l2_bytes;
    }
    int n = out->n_cores;
    volatile int32_t sinks32[MAX_THREADS];
    volatile uint64_t sinks64[MAX_THREADS];

    const int8_kernel_t *k = &int8_kernels[sizeof int8_kernels / sizeof int8_kernels[0] - 1];
    for (size_t i = 0; i < sizeof int8_kernels / sizeof int8_kernels[0]; i++)
        if ((int8_kernels[i].needs & features) == int8_kernels[i].needs) {
            k = &int8_kernels[i];
            break;
        }
    snprintf(out->int8_isa, sizeof out->int8_isa, "%s", k->name);
    int8_job_t ij = {.kernel = k, .iters = 1u << 12, .sinks = sinks32};
    for (;;) { /* calibrate: grow until one run takes a tenth of the aim */
        double t0 = now_seconds();
        k->run(ij.iters, &sinks32[0]);
        double t = now_seconds() - t0;
        if (t >= RUN_SECONDS / 10 || ij.iters >= (UINT64_C(1) << 40)) {
            double scaled = (double)ij.iters * RUN_SECONDS / (t > 0 ? t : 1e-9);
            ij.iters = scaled < 1 ? 1 : (uint64_t)scaled;
            break;
        }
        ij.iters *= 4;
    }
    MICA_TRY(measure_int8(&ij, 1, &out->int8_1t_gops, d));
    if (n > 1)
        MICA_TRY(measure_int8(&ij, n, &out->int8_all_gops, d));
    else
        out->int8_all_gops = out->int8_1t_gops;

    /* the buffer: LLC_TIMES the last-level cache, at least MIN_BUFFER, at
     * most a quarter of the memory */
    uint64_t bytes = llc > 0 ? (uint64_t)llc * LLC_TIMES : 0;
    bytes = bytes < MIN_BUFFER ? MIN_BUFFER : bytes;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && bytes > (uint64_t)pages * (uint64_t)page / 4)
        bytes = (uint64_t)pages * (uint64_t)page / 4;
    bytes &= ~(uint64_t)((1u << 20) - 1);
    if (bytes < (1u << 20))
        bytes = 1u << 20;
    void *buf =
        mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return mica_diag_set(d, MICA_ERR_NOMEM, "cannot map a %llu MiB buffer: %s",
                             (unsigned long long)(bytes >> 20), strerror(errno));
    memset(buf, 0x5a, (size_t)bytes); /* resident, and not the zero page */
    out->bw_buffer_bytes = bytes;
    stream_job_t sj = {.buf = buf, .words = (size_t)(bytes / 8), .fn = sum_c, .sinks = sinks64};
    snprintf(out->bw_isa, sizeof out->bw_isa, "c");
#if defined(__x86_64__)
    if (features & FEAT(AVX2)) {
        sj.fn = sum_avx2;
        snprintf(out->bw_isa, sizeof out->bw_isa, "avx2");
    }
#elif defined(__aarch64__)
    sj.fn = sum_neon;
    snprintf(out->bw_isa, sizeof out->bw_isa, "neon");
#endif
    mica_status_t st = measure_stream(&sj, 1, &out->bw_1t_gbs, d);
    if (st == MICA_OK && n > 1)
        st = measure_stream(&sj, n, &out->bw_all_gbs, d);
    else
        out->bw_all_gbs = out->bw_1t_gbs;
    munmap(buf, (size_t)bytes);
    return st;
}

double mica_limits_bw_gbs(const mica_limits_t *l, int32_t n_threads)
{
    if (n_threads <= 1)
        return l->bw_1t_gbs;
    double v = l->bw_1t_gbs * n_threads;
    return n_threads >= l->n_cores || v > l->bw_all_gbs ? l->bw_all_gbs : v;
}

double mica_limits_int8_gops(const mica_limits_t *l, int32_t n_threads)
{
    if (n_threads <= 1)
        return l->int8_1t_gops;
    double v = l->int8_1t_gops * n_threads;
    return n_threads >= l->n_cores || v > l->int8_all_gops ? l->int8_all_gops : v;
}

void mica_limits_print(const mica_limits_t *l, FILE *f)
{
    const char *what = "";
    for (size_t i = 0; i < sizeof int8_kernels / sizeof int8_kernels[0]; i++)
        if (!strcmp(int8_kernels[i].name, l->int8_isa))
            what = int8_kernels[i].what;
    fprintf(f, "cpu             %s, %d cores (%s)\n", l->cpu, l->n_cores, l->arch);
    fprintf(f,
            "read bandwidth  %.1f GB/s on 1 thread, %.1f GB/s on %d threads (streaming sum, %s, "
            "%llu MiB buffer, best of %d)\n",
            l->bw_1t_gbs, l->bw_all_gbs, l->n_cores, l->bw_isa,
            (unsigned long long)(l->bw_buffer_bytes >> 20), RUNS);
    fprintf(f,
            "int8 peak       %.1f GOP/s on 1 core, %.1f GOP/s on %d cores (%s%s%s, "
            "register-resident, a multiply-add = 2 ops, best of %d)\n",
            l->int8_1t_gops, l->int8_all_gops, l->n_cores, l->int8_isa, what[0] ? " " : "", what,
            RUNS);
}

/* ---- the cache file ----------------------------------------------------- */

mica_status_t mica_limits_cache_path(char *buf, size_t cap, mica_diag_t *d)
{
    char cpu[MICA_LIMITS_CPU_MAX], arch[16];
    int32_t cores;
    mica_limits_machine(cpu, arch, &cores);
    char id[MICA_LIMITS_CPU_MAX + 32];
    snprintf(id, sizeof id, "%s|%s|%d", cpu, arch, cores);
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/mica/limits-%016llx", xdg, (unsigned long long)h);
    else if (home && home[0])
        n = snprintf(buf, cap, "%s/.cache/mica/limits-%016llx", home, (unsigned long long)h);
    else
        return mica_diag_set(d, MICA_ERR_IO,
                             "no cache directory (neither XDG_CACHE_HOME nor HOME is set)");
    if (n < 0 || (size_t)n >= cap)
        return mica_diag_set(d, MICA_ERR_RANGE, "cache path too long");
    return MICA_OK;
}

/* mkdir -p of the directories above path's last component. */
static mica_status_t make_parents(const char *path, mica_diag_t *d)
{
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return mica_diag_set(d, MICA_ERR_RANGE, "path too long");
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return MICA_OK;
    *slash = 0;
    for (char *p = dir + 1;; p++) {
        bool end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return mica_diag_set(d, MICA_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
            if (end)
                return MICA_OK;
            *p = '/';
        }
    }
}

/* The file's lines after the first, in order: "key value". */
typedef enum field_kind { FIELD_TEXT, FIELD_I32, FIELD_U64, FIELD_F64 } field_kind_t;
struct field {
    const char *key;
    field_kind_t kind;
    size_t offset, size; /* in mica_limits_t */
};
// clang-format off
#define MICA_LIMITS_FIELD(name, kind) \
    {#name, kind, offsetof(mica_limits_t, name), sizeof(((mica_limits_t *)0)->name)}
// clang-format on
static const struct field fields[] = {
    MICA_LIMITS_FIELD(cpu, FIELD_TEXT),
    MICA_LIMITS_FIELD(arch, FIELD_TEXT),
    MICA_LIMITS_FIELD(n_cores, FIELD_I32),
    MICA_LIMITS_FIELD(bw_isa, FIELD_TEXT),
    MICA_LIMITS_FIELD(bw_buffer_bytes, FIELD_U64),
    MICA_LIMITS_FIELD(bw_1t_gbs, FIELD_F64),
    MICA_LIMITS_FIELD(bw_all_gbs, FIELD_F64),
    MICA_LIMITS_FIELD(int8_isa, FIELD_TEXT),
    MICA_LIMITS_FIELD(int8_1t_gops, FIELD_F64),
    MICA_LIMITS_FIELD(int8_all_gops, FIELD_F64),
};
#undef MICA_LIMITS_FIELD
#define N_FIELDS (sizeof fields / sizeof fields[0])

mica_status_t mica_limits_save(const mica_limits_t *l, const char *path, mica_diag_t *d)
{
    MICA_TRY(make_parents(path, d));
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return mica_diag_set(d, MICA_ERR_RANGE, "path too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return mica_diag_set(d, MICA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    fprintf(f, "%s %d\n", MICA_LIMITS_FORMAT, MICA_LIMITS_VERSION);
    for (size_t i = 0; i < N_FIELDS; i++) {
        const void *v = (const char *)l + fields[i].offset;
        fprintf(f, "%s ", fields[i].key);
        if (fields[i].kind == FIELD_TEXT)
            fprintf(f, "%s\n", (const char *)v);
        else if (fields[i].kind == FIELD_I32)
            fprintf(f, "%d\n", *(const int32_t *)v);
        else if (fields[i].kind == FIELD_U64)
            fprintf(f, "%llu\n", (unsigned long long)*(const uint64_t *)v);
        else
            fprintf(f, "%.17g\n", *(const double *)v);
    }
    bool ok = fflush(f) == 0 && !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mica_diag_set(d, MICA_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return MICA_OK;
}

/* Parses one value of field fl into its place in out; false if malformed:
 * text empty or too long, numbers not positive and finite, whole numbers
 * with a fraction or past their type. */
static bool parse_field(const struct field *fl, const char *s, mica_limits_t *out)
{
    void *dst = (char *)out + fl->offset;
    if (fl->kind == FIELD_TEXT) {
        size_t n = strlen(s);
        if (!n || n >= fl->size)
            return false;
        memcpy(dst, s, n + 1);
        return true;
    }
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || !isfinite(v))
        return false;
    if (fl->kind == FIELD_F64) {
        *(double *)dst = v;
        return true;
    }
    if (v != floor(v) || v > (fl->kind == FIELD_I32 ? (double)MAX_THREADS : 1e18))
        return false;
    if (fl->kind == FIELD_I32)
        *(int32_t *)dst = (int32_t)v;
    else
        *(uint64_t *)dst = (uint64_t)v;
    return true;
}

mica_status_t mica_limits_load(const char *path, mica_limits_t *out, mica_diag_t *d)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return mica_diag_set(d, MICA_ERR_IO, "cannot open: %s", strerror(errno));
    char line[512], head[64];
    snprintf(head, sizeof head, "%s %d", MICA_LIMITS_FORMAT, MICA_LIMITS_VERSION);
    int lineno = 0;
    mica_status_t st = MICA_OK;
    while (st == MICA_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strcspn(line, "\n");
        if (line[len] != '\n' && !feof(f)) {
            st = mica_diag_set(d, MICA_ERR_INVALID, "line %d is too long", lineno);
            break;
        }
        line[len] = 0;
        if (lineno == 1) {
            if (strcmp(line, head))
                st = mica_diag_set(d, MICA_ERR_INVALID, "not a %s file", head);
            continue;
        }
        const struct field *fl = lineno - 2 < (int)N_FIELDS ? &fields[lineno - 2] : NULL;
        size_t kl = fl ? strlen(fl->key) : 0;
        if (!fl || strncmp(line, fl->key, kl) || line[kl] != ' ')
            st = mica_diag_set(d, MICA_ERR_INVALID, "line %d: expected '%s VALUE'", lineno,
                               fl ? fl->key : "end of file");
        else if (!parse_field(fl, line + kl + 1, out))
            st = mica_diag_set(d, MICA_ERR_INVALID, "line %d: bad %s '%s'", lineno, fl->key,
                               line + kl + 1);
    }
    if (st == MICA_OK && ferror(f))
        st = mica_diag_set(d, MICA_ERR_IO, "read failed");
    fclose(f);
    if (st == MICA_OK && lineno != 1 + (int)N_FIELDS)
        st = mica_diag_set(d, MICA_ERR_INVALID, "%s, expected %d lines",
                           lineno ? "figures missing" : "empty file", 1 + (int)N_FIELDS);
    return st;
}

/* ---- cached or measured ------------------------------------------------- */

/* What the measuring child sends back through the pipe. */
typedef struct measured {
    mica_status_t status;
    mica_limits_t limits;
    mica_diag_t diag;
} measured_t;

/* Measures in a child process, so its buffer stays out of this process's
 * peak RSS; in this process when fork is not available. */
static mica_status_t measure_apart(mica_limits_t *out, mica_diag_t *d)
{
    int fds[2];
    pid_t pid = -1;
    if (pipe(fds) == 0) {
        pid = fork();
        if (pid < 0) {
            close(fds[0]);
            close(fds[1]);
        }
    }
    if (pid < 0)
        return mica_limits_measure(out, d);
    if (pid == 0) {
        close(fds[0]);
        measured_t m;
        memset(&m, 0, sizeof m);
        m.status = mica_limits_measure(&m.limits, &m.diag);
        const char *p = (const char *)&m;
        size_t left = sizeof m;
        while (left) {
            ssize_t w = write(fds[1], p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                _exit(1);
            p += w;
            left -= (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    measured_t m;
    char *p = (char *)&m;
    size_t got = 0;
    while (got < sizeof m) {
        ssize_t r = read(fds[0], p + got, sizeof m - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof m || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
        return mica_diag_set(d, MICA_ERR_IO, "the measuring process failed");
    if (m.status != MICA_OK) {
        if (d)
            *d = m.diag;
        return m.status;
    }
    *out = m.limits;
    return MICA_OK;
}

mica_status_t mica_limits_get(bool remeasure, FILE *log, mica_limits_t *out, mica_diag_t *d)
{
    char path[4096];
    mica_diag_t pd = {0};
    bool have_path = mica_limits_cache_path(path, sizeof path, &pd) == MICA_OK;
    if (have_path && !remeasure) {
        char cpu[MICA_LIMITS_CPU_MAX], arch[16];
        int32_t cores;
        mica_limits_machine(cpu, arch, &cores);
        if (mica_limits_load(path, out, NULL) == MICA_OK && !strcmp(out->cpu, cpu) &&
            !strcmp(out->arch, arch) && out->n_cores == cores)
            return MICA_OK;
    }
    if (log)
        fprintf(log, "mica bench: measuring this machine's limits (about 2 s)\n");
    MICA_TRY(measure_apart(out, d));
    mica_diag_t sd = {0};
    if (!have_path) {
        if (log)
            fprintf(log, "mica bench: not cached: %s\n", pd.msg);
    } else if (mica_limits_save(out, path, &sd) != MICA_OK && log) {
        fprintf(log, "mica bench: not cached: %s\n", sd.msg);
    }
    return MICA_OK;
}
