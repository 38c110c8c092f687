/* Targets: the table against the facts the brief states and against
 * codegen/targets.json read by Python; host detection against
 * /proc/cpuinfo and sysconf; the proportional split against exact shares
 * computed here in double. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "target.h"
#include "test_support.h"

#define BIT(f) MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_##f)
#define SOURCE_DIR MICA_TEST_DATA_DIR "/../.."

static mica_target_t get(const char *name)
{
    mica_target_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_find(name, &t, &d), MICA_OK, "%s: %s", name, d.msg);
    cr_assert_str_eq(t.name, name);
    return t;
}

/* ---- the table --------------------------------------------------------- */

static const char *const required[] = {"host",         "x86-avx2", "x86-avx512vnni", "armv8.2-dotprod",
                                       "armv8.6-i8mm", "sd8gen3",  "rpi5",           "opencl"};

Test(target, required_targets_have_their_features)
{
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        get(required[i]);

    mica_target_t t = get("x86-avx2");
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_X86_64);
    cr_assert_eq(t.features, BIT(AVX2) | BIT(FMA) | BIT(F16C));
    cr_assert_eq(t.vector_registers, 16);
    cr_assert_eq(t.vector_bits, 256);

    t = get("x86-avx512vnni");
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_X86_64);
    uint64_t need = BIT(AVX512F) | BIT(AVX512BW) | BIT(AVX512VNNI) | BIT(AVX2) | BIT(FMA);
    cr_assert_eq(t.features & need, need);
    cr_assert_eq(t.vector_registers, 32);
    cr_assert_eq(t.vector_bits, 512);

    t = get("armv8.2-dotprod");
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_AARCH64);
    cr_assert_eq(t.features, BIT(NEON) | BIT(DOTPROD) | BIT(FP16));

    t = get("armv8.6-i8mm");
    cr_assert_eq(t.features, BIT(NEON) | BIT(DOTPROD) | BIT(I8MM) | BIT(FP16));

    t = get("rpi5");
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_AARCH64);
    cr_assert(t.features & BIT(DOTPROD));
    cr_assert(t.features & BIT(FP16));
    cr_assert_not(t.features & BIT(I8MM));
    cr_assert_eq(mica_target_core_count(&t), 4);
    cr_assert_eq(t.n_clusters, 1);
    cr_assert_not(t.gpu.present);

    t = get("sd8gen3");
    cr_assert_eq(t.features, BIT(NEON) | BIT(DOTPROD) | BIT(I8MM) | BIT(FP16));
    cr_assert_eq(t.n_clusters, 4);
    const int32_t counts[4] = {1, 3, 2, 2};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(t.clusters[i].count, counts[i], "cluster %d", i);
    cr_assert_eq(mica_target_core_count(&t), 8);
    cr_assert_eq(t.clusters[0].capacity, 1.0f);
    for (int i = 1; i < 4; i++)
        cr_assert(t.clusters[i].capacity < t.clusters[i - 1].capacity + 1e-6f);
    cr_assert(t.clusters[3].capacity < 0.5f, "the A520s are efficiency cores");
    cr_assert(t.gpu.present);
    cr_assert(strstr(t.gpu.name, "Adreno 750"));
    cr_assert(t.gpu.fp16);

    t = get("opencl");
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_OPENCL);
    cr_assert(t.gpu.present);
    mica_target_t host = get("host");
    cr_assert_eq(t.cpu_arch, host.cpu_arch, "the CPU part of opencl is the host's");
    cr_assert_eq(t.features, host.features);
}

Test(target, i8mm_only_where_declared_and_flags_say_so)
{
    int n = mica_target_count();
    cr_assert_geq(n, 8);
    for (int i = 0; i < n; i++) {
        const mica_target_t *row = mica_target_at(i);
        cr_assert(row);
        if (row->detect)
            continue;
        bool want_i8mm = !strcmp(row->name, "armv8.6-i8mm") || !strcmp(row->name, "sd8gen3");
        cr_assert_eq(!!(row->features & BIT(I8MM)), want_i8mm, "%s", row->name);
        cr_assert_gt(mica_target_core_count(row), 0, "%s", row->name);
        cr_assert_gt(row->l1d_bytes, 0, "%s", row->name);
        cr_assert_gt(row->l2_bytes, row->l1d_bytes, "%s", row->name);
        cr_assert_gt(row->dram_budget_bytes, 0, "%s", row->name);
        cr_assert_gt(row->bandwidth_gbs, 0.0, "%s", row->name);
        cr_assert_gt(row->int8_gops, 0.0, "%s", row->name);
        cr_assert_eq(row->tile.needs & ~row->features, 0, "%s: tile needs a missing feature", row->name);
        /* the paper's tiles for the best int8 instruction */
        int ep = 0, hp = 0, lp = 0;
        if (row->features & BIT(I8MM))
            ep = 10, hp = 8, lp = 8;
        else if (row->features & BIT(DOTPROD))
            ep = 12, hp = 8, lp = 4;
        else if (row->features & BIT(AVX512VNNI))
            ep = 4, hp = 64, lp = 4;
        else if (row->features & BIT(AVX2))
            ep = 4, hp = 8, lp = 4;
        cr_assert_eq(row->tile.ep, ep, "%s", row->name);
        cr_assert_eq(row->tile.hp, hp, "%s", row->name);
        cr_assert_eq(row->tile.lp, lp, "%s", row->name);
        if (row->arch == MICA_TARGET_ARCH_AARCH64) {
            cr_assert_str_eq(row->cc, "aarch64-linux-gnu-gcc", "%s", row->name);
            cr_assert(strstr(row->cflags, "-march=armv8"), "%s", row->name);
            cr_assert_eq(!!strstr(row->cflags, "i8mm"), want_i8mm, "%s", row->name);
            cr_assert(strstr(row->cflags, "dotprod"), "%s", row->name);
        } else {
            cr_assert(strstr(row->cflags, "-mavx2"), "%s", row->name);
            cr_assert_eq(!!strstr(row->cflags, "-mavx512vnni"), !!(row->features & BIT(AVX512VNNI)),
                         "%s", row->name);
        }
    }
}

Test(target, unknown_name_lists_the_known_ones)
{
    mica_target_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_find("armv9-sve", &t, &d), MICA_ERR_INVALID);
    cr_assert(strstr(d.msg, "armv9-sve"), "%s", d.msg);
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        cr_assert(strstr(d.msg, required[i]), "%s lacks %s", d.msg, required[i]);
}

Test(target, feature_names_and_lists)
{
    cr_assert_str_eq(mica_target_feature_name(MICA_TARGET_FEATURE_DOTPROD), "dotprod");
    cr_assert_str_eq(mica_target_feature_name(MICA_TARGET_FEATURE_AVX512VNNI), "avx512vnni");
    cr_assert_null(mica_target_feature_name(MICA_TARGET_FEATURE_COUNT));
    char buf[64];
    size_t n = mica_target_features_format(BIT(FP16) | BIT(I8MM) | BIT(DOTPROD), buf, sizeof buf);
    cr_assert_str_eq(buf, "dotprod,i8mm,fp16");
    cr_assert_eq(n, strlen("dotprod,i8mm,fp16"));
    mica_target_features_format(0, buf, sizeof buf);
    cr_assert_str_eq(buf, "none");
    char small[8];
    n = mica_target_features_format(BIT(FP16) | BIT(I8MM) | BIT(DOTPROD), small, sizeof small);
    cr_assert_eq(n, strlen("dotprod,i8mm,fp16"), "the length it needs");
    cr_assert_eq(strlen(small), sizeof small - 1);
}

/* ---- host detection against /proc/cpuinfo ------------------------------ */

/* The flag words of /proc/cpuinfo's first "flags" (x86) or "Features"
 * (arm64) line, space-padded: " fpu vme ... ". */
static char *cpuinfo_flags(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    cr_assert(f, "cannot read /proc/cpuinfo");
    char *line = NULL, *out = NULL;
    size_t cap = 0;
    while (!out && getline(&line, &cap, f) > 0) {
        char *colon = strchr(line, ':');
        if (colon && (!strncmp(line, "flags", 5) || !strncmp(line, "Features", 8))) {
            line[strcspn(line, "\n")] = 0;
            size_t len = strlen(colon + 1);
            out = malloc(len + 3);
            snprintf(out, len + 3, " %s ", colon + 1);
        }
    }
    free(line);
    fclose(f);
    cr_assert(out, "no flags line in /proc/cpuinfo");
    return out;
}

static bool has_flag(const char *flags, const char *word)
{
    char pad[64];
    snprintf(pad, sizeof pad, " %s ", word);
    return strstr(flags, pad) != NULL;
}

/* /proc/cpuinfo's spelling of each feature. */
static const struct {
    uint64_t bit;
    const char *flag;
} cpuinfo_names[] = {
#if defined(__x86_64__)
    {BIT(AVX2), "avx2"},         {BIT(FMA), "fma"},
    {BIT(F16C), "f16c"},         {BIT(AVX512F), "avx512f"},
    {BIT(AVX512BW), "avx512bw"}, {BIT(AVX512VNNI), "avx512_vnni"},
    {BIT(AVXVNNI), "avx_vnni"},
#elif defined(__aarch64__)
    {BIT(NEON), "asimd"},
    {BIT(DOTPROD), "asimddp"},
    {BIT(I8MM), "i8mm"},
    {BIT(FP16), "asimdhp"},
#endif
};
#define N_CPUINFO (sizeof cpuinfo_names / sizeof cpuinfo_names[0])

/* The features /proc/cpuinfo reports. */
static uint64_t cpuinfo_features(void)
{
    char *flags = cpuinfo_flags();
    uint64_t f = 0;
    for (size_t i = 0; i < N_CPUINFO; i++)
        if (has_flag(flags, cpuinfo_names[i].flag))
            f |= cpuinfo_names[i].bit;
    free(flags);
    return f;
}

/* Size in bytes of cpu0's level-`level` data or unified cache, from /sys
 * ("32K"), or 0. */
static int64_t sys_cache(int level)
{
    for (int i = 0; i < 16; i++) {
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        char *lv = mica_test_read_file(path, NULL);
        if (!lv)
            break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        char *ty = mica_test_read_file(path, NULL);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        char *sz = mica_test_read_file(path, NULL);
        int64_t bytes = 0;
        if (ty && sz && atoi(lv) == level && strncmp(ty, "Instruction", 11) != 0) {
            char unit = 0;
            long long v = 0;
            if (sscanf(sz, "%lld%c", &v, &unit) >= 1)
                bytes = v * (unit == 'K' ? 1024 : unit == 'M' ? 1024 * 1024 : 1);
        }
        free(lv);
        free(ty);
        free(sz);
        if (bytes)
            return bytes;
    }
    return 0;
}

Test(target, host_agrees_with_proc_cpuinfo_and_sysconf)
{
    mica_target_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_detect_host(&t, &d), MICA_OK, "%s", d.msg);
    cr_assert_str_eq(t.name, "host");
    cr_assert(t.detect);
#if defined(__x86_64__)
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_X86_64);
#elif defined(__aarch64__)
    cr_assert_eq(t.arch, MICA_TARGET_ARCH_AARCH64);
#endif
    uint64_t want = cpuinfo_features();
    char got_s[256], want_s[256];
    mica_target_features_format(t.features, got_s, sizeof got_s);
    mica_target_features_format(want, want_s, sizeof want_s);
    cr_assert_eq(t.features, want, "detected %s, /proc/cpuinfo says %s", got_s, want_s);

    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_eq(mica_target_core_count(&t), online);
    cr_assert_geq(t.n_clusters, 1);
    cr_assert_eq(t.clusters[0].capacity, 1.0f);

    long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    int64_t s1 = sys_cache(1), s2 = sys_cache(2), s3 = sys_cache(3);
    cr_assert_eq(t.l1d_bytes, s1 ? s1 : (l1 > 0 ? l1 : 0));
    cr_assert_eq(t.l2_bytes, s2 ? s2 : (l2 > 0 ? l2 : 0));
    if (s3)
        cr_assert_eq(t.l3_bytes, s3);
    if (l1 > 0)
        cr_assert_eq(t.l1d_bytes, l1, "sysconf and /sys disagree on L1d");

    if (want & BIT(AVX512F))
        cr_assert(t.vector_registers == 32 && t.vector_bits == 512);
    else if (want & BIT(AVX2))
        cr_assert(t.vector_registers == 16 && t.vector_bits == 256);
    cr_assert_eq(t.tile.needs & ~t.features, 0);
    if ((want & (BIT(AVX512VNNI) | BIT(AVX512BW))) == (BIT(AVX512VNNI) | BIT(AVX512BW)))
        cr_assert(t.tile.ep == 4 && t.tile.hp == 64 && t.tile.lp == 4);
    else if (want & BIT(I8MM))
        cr_assert(t.tile.ep == 10 && t.tile.hp == 8 && t.tile.lp == 8);
    cr_assert_str_eq(t.cc, "cc");
    cr_assert(strstr(t.cflags, "-march=native"));
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    cr_assert_eq(t.dram_budget_bytes, (int64_t)pages / 2 * page);
}

Test(target, check_cpu_accepts_what_runs_here_and_refuses_the_rest)
{
    mica_diag_t d = {0};
    mica_target_t host = get("host");
    cr_assert_eq(mica_target_check_cpu(&host, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_target_check_cpu(mica_target_at(0), &d), MICA_OK, "%s", d.msg);
    uint64_t have = cpuinfo_features();
#if defined(__x86_64__)
    mica_target_t t = get("x86-avx2");
    if ((have & t.features) == t.features)
        cr_assert_eq(mica_target_check_cpu(&t, &d), MICA_OK, "%s", d.msg);

    t = get("x86-avx512vnni");
    mica_status_t s = mica_target_check_cpu(&t, &d);
    if ((have & t.features) == t.features) {
        cr_assert_eq(s, MICA_OK, "%s", d.msg);
    } else {
        cr_assert_eq(s, MICA_ERR_UNSUPPORTED);
        cr_assert(strstr(d.msg, "target x86-avx512vnni needs "), "%s", d.msg);
        cr_assert(strstr(d.msg, "which this CPU lacks"), "%s", d.msg);
    }

    const char *other = "armv8.2-dotprod";
    const char *other_arch = "aarch64", *this_arch = "x86_64";
#elif defined(__aarch64__)
    const char *other = "x86-avx2";
    const char *other_arch = "x86_64", *this_arch = "aarch64";
#endif
    mica_target_t o = get(other);
    cr_assert_eq(mica_target_check_cpu(&o, &d), MICA_ERR_UNSUPPORTED);
    char want[160];
    snprintf(want, sizeof want, "target %s is for %s, but this CPU is %s", other, other_arch,
             this_arch);
    cr_assert_str_eq(d.msg, want);

    /* A feature /proc/cpuinfo says this CPU lacks, asked for by a copy of host. */
    for (size_t i = 0; i < N_CPUINFO; i++) {
        if (have & cpuinfo_names[i].bit)
            continue;
        mica_target_t x = host;
        x.features |= cpuinfo_names[i].bit;
        char name[32];
        mica_target_features_format(cpuinfo_names[i].bit, name, sizeof name);
        snprintf(want, sizeof want, "target host needs %s, which this CPU lacks", name);
        cr_assert_eq(mica_target_check_cpu(&x, &d), MICA_ERR_UNSUPPORTED);
        cr_assert_str_eq(d.msg, want);
    }
}

/* ---- the proportional split -------------------------------------------- */

static mica_target_t make_target(int n_clusters, const int32_t *counts, const float *caps)
{
    mica_target_t t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "test");
    t.n_clusters = n_clusters;
    for (int i = 0; i < n_clusters; i++) {
        snprintf(t.clusters[i].name, sizeof t.clusters[i].name, "c%d", i);
        t.clusters[i].count = counts[i];
        t.clusters[i].capacity = caps[i];
    }
    return t;
}

/* Splits and checks what holds for every split: the counts sum to n,
 * are >= 0, are granule multiples except for the last non-empty part, and
 * each is within tolerance of its exact share n * cap / sum(cap) (one
 * granule when granule divides n, two otherwise: the short unit). Returns
 * the number of parts; counts in out[]. */
static int32_t split_checked(const mica_target_t *t, int64_t n, int64_t granule, int32_t max_parts,
                             int64_t *out)
{
    int32_t parts = -1;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_split(t, n, granule, max_parts, out, &parts, &d), MICA_OK, "%s",
                 d.msg);
    double caps[64], total = 0.0;
    int32_t p = 0;
    for (int c = 0; c < t->n_clusters; c++)
        for (int32_t k = 0; k < t->clusters[c].count && p < max_parts; k++, p++)
            total += caps[p] = t->clusters[c].capacity;
    cr_assert_eq(parts, p);
    int64_t sum = 0;
    int32_t last = -1;
    for (int32_t i = 0; i < parts; i++) {
        cr_assert_geq(out[i], 0);
        sum += out[i];
        if (out[i])
            last = i;
    }
    cr_assert_eq(sum, n, "counts sum to %lld, not %lld", (long long)sum, (long long)n);
    double tol = (n % granule == 0 ? 1.0 : 2.0) * (double)granule * (1.0 + 1e-6);
    for (int32_t i = 0; i < parts; i++) {
        if (i != last)
            cr_assert_eq(out[i] % granule, 0, "part %d: %lld", i, (long long)out[i]);
        double exact = (double)n * caps[i] / total;
        cr_assert_lt(fabs((double)out[i] - exact), tol, "part %d: %lld for an exact share of %.3f",
                     i, (long long)out[i], exact);
        if (i > 0 && caps[i] <= caps[i - 1] && i - 1 != last && i != last)
            cr_assert_geq(out[i - 1], out[i], "a slower core got more");
    }
    return parts;
}

Test(target, split_fast_cores_get_twice_the_work_of_half_speed_cores)
{
    const int32_t counts[2] = {2, 2};
    const float caps[2] = {1.0f, 0.5f};
    mica_target_t t = make_target(2, counts, caps);
    int64_t out[8];
    const int64_t granules[] = {1, 8, 32};
    for (size_t g = 0; g < sizeof granules / sizeof granules[0]; g++) {
        for (int64_t k = 0; k <= 50; k++) {
            /* 2 fast + 2 slow = 6 half-speed shares: divisible -> exact */
            int64_t n = 6 * k * granules[g];
            cr_assert_eq(split_checked(&t, n, granules[g], 8, out), 4);
            cr_assert_eq(out[0], 2 * k * granules[g]);
            cr_assert_eq(out[1], out[0]);
            cr_assert_eq(out[2], k * granules[g]);
            cr_assert_eq(out[3], out[2]);
            cr_assert_eq(out[0], 2 * out[2], "fast %lld, slow %lld", (long long)out[0],
                         (long long)out[2]);
        }
        for (int64_t n = 0; n < 200; n++)
            split_checked(&t, n, granules[g], 8, out);
    }

    /* one fast and one slow core: 3 units -> 2 + 1 */
    const int32_t one[2] = {1, 1};
    t = make_target(2, one, caps);
    cr_assert_eq(split_checked(&t, 3, 1, 8, out), 2);
    cr_assert_eq(out[0], 2);
    cr_assert_eq(out[1], 1);
    cr_assert_eq(split_checked(&t, 24, 8, 8, out), 2);
    cr_assert_eq(out[0], 16);
    cr_assert_eq(out[1], 8);
}

Test(target, split_sd8gen3_in_proportion)
{
    mica_target_t t = get("sd8gen3");
    int64_t out[8];
    /* 4096 output channels in blocks of 8, 960 in blocks of 8, a 61-token
     * chunk token by token, 7 items for 8 cores */
    const int64_t cases[][2] = {{4096, 8}, {960, 8}, {61, 1}, {7, 1}, {1000003, 16}, {0, 8}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(split_checked(&t, cases[i][0], cases[i][1], 8, out), 8);
    split_checked(&t, 4096, 8, 8, out);
    cr_assert_gt(out[0], out[7], "the prime core gets more than an efficiency core");
    cr_assert_gt(out[1], out[6]);
    /* only the 4 fastest cores (prime + 3 A720) */
    cr_assert_eq(split_checked(&t, 4096, 8, 4, out), 4);
    cr_assert_leq(llabs(out[1] - out[2]), 8, "cores of one cluster within a granule");
}

Test(target, split_random_targets_keep_the_invariants)
{
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 6);
    int64_t out[64];
    for (int iter = 0; iter < 3000; iter++) {
        int nc = (int)mica_test_rng_range(&rng, 1, MICA_TARGET_MAX_CLUSTERS);
        int32_t counts[MICA_TARGET_MAX_CLUSTERS];
        float caps[MICA_TARGET_MAX_CLUSTERS];
        float cap = 1.0f;
        for (int c = 0; c < nc; c++) {
            counts[c] = (int32_t)mica_test_rng_range(&rng, 1, 4);
            caps[c] = cap;
            cap *= (float)mica_test_rng_range(&rng, 30, 100) / 100.0f;
        }
        mica_target_t t = make_target(nc, counts, caps);
        int64_t granule = mica_test_rng_range(&rng, 1, 16);
        int64_t n = mica_test_rng_range(&rng, 0, iter % 4 ? 2000 : 10000000);
        int32_t max_parts = (int32_t)mica_test_rng_range(&rng, 1, 32);
        split_checked(&t, n, granule, max_parts, out);
    }
}

Test(target, split_refuses_bad_arguments)
{
    mica_target_t t = get("rpi5");
    int64_t out[4];
    int32_t parts;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_split(&t, -1, 1, 4, out, &parts, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_target_split(&t, 10, 0, 4, out, &parts, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_target_split(&t, 10, 1, 0, out, &parts, &d), MICA_ERR_INVALID);
    cr_assert_eq(mica_target_split(&t, INT64_MAX, 1, 4, out, &parts, &d), MICA_ERR_RANGE);
    cr_assert_eq(mica_target_split(&t, INT64_MAX, INT64_MAX / 4, 4, out, &parts, &d), MICA_OK,
                 "%s", d.msg);
    cr_assert_eq(out[0] + out[1] + out[2] + out[3], INT64_MAX);
    mica_target_t none = t;
    none.n_clusters = 0;
    cr_assert_eq(mica_target_split(&none, 10, 1, 4, out, &parts, &d), MICA_ERR_INVALID);
    none = t;
    none.clusters[0].capacity = NAN;
    cr_assert_eq(mica_target_split(&none, 10, 1, 4, out, &parts, &d), MICA_ERR_INVALID);
}

/* ---- the C table against targets.json, read by Python ------------------- */

/* Runs a shell command; returns its exit status and stdout+stderr (caller
 * frees). */
static int sh(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Python reads codegen/targets.json itself and compares every declared
 * value with `mica targets --json`. */
static const char compare_py[] =
    "import json, subprocess, sys\n"
    "src, mica = sys.argv[1], sys.argv[2]\n"
    "doc = json.load(open(src))\n"
    "tiles = {t['name']: t for t in doc['tiles']}\n"
    "run = subprocess.run([mica, 'targets', '--json'], capture_output=True, text=True)\n"
    "assert run.returncode == 0, run.stderr\n"
    "got = json.loads(run.stdout)\n"
    "bad = []\n"
    "def cmp(name, key, a, b):\n"
    "    if isinstance(a, float) or isinstance(b, float):\n"
    "        ok = abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))\n"
    "    else:\n"
    "        ok = a == b\n"
    "    if not ok: bad.append('%s %s: json %r, mica %r' % (name, key, a, b))\n"
    "names = [t['name'] for t in doc['targets']]\n"
    "cmp('-', 'names', names, [g['name'] for g in got])\n"
    "for want, have in zip(doc['targets'], got):\n"
    "    n = want['name']\n"
    "    for k in ('summary', 'prefill_chunk', 'bandwidth_gbs', 'int8_gops'):\n"
    "        cmp(n, k, want[k], have[k])\n"
    "    cmp(n, 'detect', want.get('detect', False), have['detect'])\n"
    "    if want['gpu'] is None: cmp(n, 'gpu', None, have['gpu'])\n"
    "    else:\n"
    "        for k in want['gpu']: cmp(n, 'gpu.' + k, want['gpu'][k], (have['gpu'] or {}).get(k))\n"
    "    if 'arch' in want: cmp(n, 'arch', want['arch'], have['arch'])\n"
    "    if want.get('detect'): continue\n"
    "    cmp(n, 'features', sorted(want['features']), sorted(have['features']))\n"
    "    cmp(n, 'clusters', len(want['clusters']), len(have['clusters']))\n"
    "    for i, (a, b) in enumerate(zip(want['clusters'], have['clusters'])):\n"
    "        for k in ('name', 'count', 'capacity'): cmp(n, 'clusters[%d].%s' % (i, k), a[k], b[k])\n"
    "    for k in ('l1d', 'l2', 'l3'): cmp(n, 'cache.' + k, want['cache'][k], have['cache'][k])\n"
    "    for k in ('registers', 'bits'): cmp(n, 'vector.' + k, want['vector'][k], have['vector'][k])\n"
    "    for k in ('cc', 'cflags', 'dram_budget'): cmp(n, k, want[k], have[k])\n"
    "    tile = tiles[want['tile']]\n"
    "    for k in ('name', 'instruction', 'ep', 'hp', 'lp'): cmp(n, 'tile.' + k, tile[k], have['tile'][k])\n"
    "print('\\n'.join(bad) if bad else 'ok %d' % len(names))\n"
    "sys.exit(1 if bad else 0)\n";

Test(target, c_table_agrees_with_targets_json)
{
    char script[] = "/tmp/mica-target-XXXXXX";
    int fd = mkstemp(script);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, compare_py, sizeof compare_py - 1), (ssize_t)(sizeof compare_py - 1));
    close(fd);
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "python3 %s %s/codegen/targets.json %s/tools/mica 2>&1", script,
             SOURCE_DIR, MICA_BINARY_DIR);
    int rc = sh(cmd, &out);
    unlink(script);
    char want[32];
    snprintf(want, sizeof want, "ok %d\n", mica_target_count());
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out, want);
    free(out);
}

/* The generator refuses a bad description with a message naming it, and
 * writes the same bytes twice. */
Test(target, generator_validates_and_is_deterministic)
{
    char dir[] = "/tmp/mica-gen-XXXXXX";
    cr_assert(mkdtemp(dir));
    static const struct {
        const char *edit; /* Python statement on d, the parsed JSON */
        const char *message;
    } bad[] = {
        {"d['targets'][1]['features'].append('sve')", "unknown feature 'sve'"},
        {"del d['targets'][2]['cc']", "missing field 'cc'"},
        {"d['targets'][3]['tile'] = 'amx'", "unknown tile 'amx'"},
        {"d['targets'][5]['clusters'][1]['capacity'] = 1.5", "'capacity' must be a number"},
        {"d['targets'][1]['tile'] = 'i8mm'", "tile 'i8mm' is for aarch64"},
        {"d['targets'][1]['colour'] = 'red'", "unknown field 'colour'"},
    };
    char cmd[2048], *out;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "python3 -c \"import json; d = json.load(open('%s/codegen/targets.json')); %s; "
                 "json.dump(d, open('%s/bad.json', 'w'))\" && "
                 "python3 %s/codegen/gen_targets.py %s/bad.json %s/out.inc 2>&1",
                 SOURCE_DIR, bad[i].edit, dir, SOURCE_DIR, dir, dir);
        int rc = sh(cmd, &out);
        cr_assert_neq(rc, 0, "accepted: %s", bad[i].edit);
        cr_assert(strstr(out, bad[i].message), "%s -> %s", bad[i].edit, out);
        cr_assert(strstr(out, "bad.json: targets["), "%s", out);
        free(out);
    }
    snprintf(cmd, sizeof cmd,
             "python3 %s/codegen/gen_targets.py %s/codegen/targets.json %s/a.inc && "
             "python3 %s/codegen/gen_targets.py %s/codegen/targets.json %s/b.inc && "
             "cmp %s/a.inc %s/b.inc && head -c 40 %s/a.inc",
             SOURCE_DIR, SOURCE_DIR, dir, SOURCE_DIR, SOURCE_DIR, dir, dir, dir, dir);
    cr_assert_eq(sh(cmd, &out), 0, "%s", out);
    cr_assert(strstr(out, "/* generated by codegen/gen_targets.py"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
