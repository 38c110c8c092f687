#include "target.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#endif

/* target_feature_names, target_tiles and target_table, from
 * codegen/targets.json (see codegen/gen_targets.py). */
#include "target_table.inc"

#define N_TABLE ((int)(sizeof target_table / sizeof target_table[0]))
#define N_TILES ((int)(sizeof target_tiles / sizeof target_tiles[0]))

int mica_target_count(void)
{
    return N_TABLE;
}

const mica_target_t *mica_target_at(int i)
{
    return i >= 0 && i < N_TABLE ? &target_table[i] : NULL;
}

const char *mica_target_feature_name(mica_target_feature_t f)
{
    return (int)f >= 0 && f < MICA_TARGET_FEATURE_COUNT ? target_feature_names[f] : NULL;
}

const char *mica_target_arch_name(mica_target_arch_t a)
{
    switch (a) {
    case MICA_TARGET_ARCH_X86_64: return "x86_64";
    case MICA_TARGET_ARCH_AARCH64: return "aarch64";
    case MICA_TARGET_ARCH_OPENCL: return "opencl";
    case MICA_TARGET_ARCH_NONE: break;
    }
    return "none";
}

size_t mica_target_features_format(uint64_t bits, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = 0;
    if (!bits)
        return (size_t)snprintf(buf, cap, "none");
    for (int i = 0; i < 64; i++) {
        if (!(bits & (UINT64_C(1) << i)))
            continue;
        char unknown[8];
        const char *name = mica_target_feature_name((mica_target_feature_t)i);
        if (!name) {
            snprintf(unknown, sizeof unknown, "bit%d", i);
            name = unknown;
        }
        int n = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, "%s%s",
                         len ? "," : "", name);
        len += (size_t)n;
    }
    return len;
}

bool mica_target_features_parse(const char *s, uint64_t *out_bits)
{
    uint64_t bits = 0;
    if (!strcmp(s, "none") || !strcmp(s, "-")) {
        *out_bits = 0;
        return true;
    }
    for (const char *p = s;;) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int f = 0; f < MICA_TARGET_FEATURE_COUNT && found < 0; f++) {
            const char *name = target_feature_names[f];
            if (strlen(name) == n && !strncmp(p, name, n))
                found = f;
        }
        if (found < 0)
            return false;
        bits |= MICA_TARGET_FEATURE_BIT(found);
        if (!p[n])
            break;
        p += n + 1;
    }
    *out_bits = bits;
    return true;
}

int32_t mica_target_core_count(const mica_target_t *t)
{
    int32_t n = 0;
    for (int i = 0; i < t->n_clusters && i < MICA_TARGET_MAX_CLUSTERS; i++)
        n += t->clusters[i].count;
    return n;
}

/* ---- host detection ---------------------------------------------------- */

/* The running CPU's architecture and features (no files read). */
static mica_target_arch_t detect_isa(uint64_t *out_features)
{
    uint64_t f = 0;
#if defined(__x86_64__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    bool os_avx = false, os_avx512 = false;
    if (max_leaf >= 1) {
        __cpuid(1, a, b, c, d);
        /* The OS must save the YMM (and for AVX-512 the opmask and ZMM)
         * state, as XCR0 says, before any of these may be used. */
        if (c & (1u << 27)) { /* OSXSAVE */
            unsigned lo, hi;
            __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
            os_avx = (c & (1u << 28)) && (xcr0 & 0x6) == 0x6;
            os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
        }
        if (os_avx && (c & (1u << 12)))
            f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_FMA);
        if (os_avx && (c & (1u << 29)))
            f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_F16C);
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned subleaves = a;
        if (os_avx && (b & (1u << 5)))
            f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX2);
        if (os_avx512 && (b & (1u << 16)))
            f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512F);
        if (os_avx512 && (b & (1u << 30)))
            f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512BW);
        if (os_avx512 && (c & (1u << 11)))
            f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512VNNI);
        if (subleaves >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if (os_avx && (a & (1u << 4)))
                f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVXVNNI);
        }
    }
    *out_features = f;
    return MICA_TARGET_ARCH_X86_64;
#elif defined(__aarch64__)
    /* Bits of the Linux AArch64 hwcaps (asm/hwcap.h), spelt here so older
     * headers do not matter. */
    const unsigned long hwcap_asimd = 1ul << 1, hwcap_asimdhp = 1ul << 10,
                        hwcap_asimddp = 1ul << 20, hwcap2_i8mm = 1ul << 13;
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    if (hw & hwcap_asimd)
        f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_NEON);
    if (hw & hwcap_asimddp)
        f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_DOTPROD);
    if (hw & hwcap_asimdhp)
        f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_FP16);
    if (hw2 & hwcap2_i8mm)
        f |= MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_I8MM);
    *out_features = f;
    return MICA_TARGET_ARCH_AARCH64;
#else
    *out_features = f;
    return MICA_TARGET_ARCH_NONE;
#endif
}

mica_target_arch_t mica_target_host_isa(uint64_t *out_features)
{
    return detect_isa(out_features);
}

/* Reads the first line of a small sysfs file into buf; false if absent. */
static bool read_line(const char *path, char *buf, size_t cap)
{
    FILE *fh = fopen(path, "r");
    if (!fh)
        return false;
    bool ok = fgets(buf, (int)cap, fh) != NULL;
    fclose(fh);
    if (ok)
        buf[strcspn(buf, "\n")] = 0;
    return ok;
}

/* "32K", "1024K", "2M", "512" -> bytes; -1 if malformed. */
static int64_t parse_size(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v < 0)
        return -1;
    int64_t mul = 1;
    if (*end == 'K')
        mul = 1024, end++;
    else if (*end == 'M')
        mul = 1024 * 1024, end++;
    else if (*end == 'G')
        mul = 1024 * 1024 * 1024, end++;
    return *end ? -1 : (int64_t)v * mul;
}

/* cpu0's data/unified caches from /sys, else glibc's sysconf. */
static void detect_caches(mica_target_t *t)
{
    for (int i = 0; i < 16; i++) {
        char path[96], level[16], type[32], size[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
        if (!read_line(path, level, sizeof level))
            break;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
        if (!read_line(path, type, sizeof type) || !strcmp(type, "Instruction"))
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        int64_t bytes = read_line(path, size, sizeof size) ? parse_size(size) : -1;
        if (bytes <= 0)
            continue;
        if (!strcmp(level, "1"))
            t->l1d_bytes = bytes;
        else if (!strcmp(level, "2"))
            t->l2_bytes = bytes;
        else if (!strcmp(level, "3"))
            t->l3_bytes = bytes;
    }
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    long v;
    if (!t->l1d_bytes && (v = sysconf(_SC_LEVEL1_DCACHE_SIZE)) > 0)
        t->l1d_bytes = v;
    if (!t->l2_bytes && (v = sysconf(_SC_LEVEL2_CACHE_SIZE)) > 0)
        t->l2_bytes = v;
    if (!t->l3_bytes && (v = sysconf(_SC_LEVEL3_CACHE_SIZE)) > 0)
        t->l3_bytes = v;
#endif
}

/* Groups the online cores by /sys/devices/system/cpu/cpuN/cpu_capacity
 * (fastest first, capacity relative to the fastest). Returns false when a
 * core has no capacity file (then the caller makes one cluster). */
static bool detect_clusters(mica_target_t *t, long n_online)
{
    long n_conf = sysconf(_SC_NPROCESSORS_CONF);
    long caps[MICA_TARGET_MAX_CLUSTERS];
    int32_t counts[MICA_TARGET_MAX_CLUSTERS];
    int n_groups = 0;
    long seen = 0;
    for (long cpu = 0; cpu < n_conf && cpu < 4096; cpu++) {
        char path[96], line[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/online", cpu);
        if (read_line(path, line, sizeof line) && !strcmp(line, "0"))
            continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/cpu_capacity", cpu);
        if (!read_line(path, line, sizeof line))
            return false;
        long cap = strtol(line, NULL, 10);
        if (cap <= 0)
            return false;
        seen++;
        int g = 0;
        while (g < n_groups && caps[g] != cap)
            g++;
        if (g == n_groups) {
            if (n_groups == MICA_TARGET_MAX_CLUSTERS)
                return false; /* more kinds of core than clusters: one cluster */
            caps[n_groups] = cap;
            counts[n_groups++] = 0;
        }
        counts[g]++;
    }
    if (seen != n_online || n_groups == 0)
        return false;
    /* fastest first (insertion sort: at most 8) */
    for (int i = 1; i < n_groups; i++)
        for (int j = i; j > 0 && caps[j] > caps[j - 1]; j--) {
            long c = caps[j];
            caps[j] = caps[j - 1], caps[j - 1] = c;
            int32_t k = counts[j];
            counts[j] = counts[j - 1], counts[j - 1] = k;
        }
    t->n_clusters = n_groups;
    for (int g = 0; g < n_groups; g++) {
        snprintf(t->clusters[g].name, sizeof t->clusters[g].name, "cap%ld", caps[g]);
        t->clusters[g].count = counts[g];
        t->clusters[g].capacity = (float)((double)caps[g] / (double)caps[0]);
    }
    return true;
}

static const mica_target_t *table_find(const char *name)
{
    for (int i = 0; i < N_TABLE; i++)
        if (!strcmp(target_table[i].name, name))
            return &target_table[i];
    return NULL;
}

/* Fills the CPU part of t from the running machine. */
static mica_status_t detect_cpu(mica_target_t *t, mica_diag_t *d)
{
    uint64_t features;
    mica_target_arch_t arch = detect_isa(&features);
    if (arch == MICA_TARGET_ARCH_NONE)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                             "cannot detect the CPU: mica knows x86_64 and aarch64 only");
    long n_online = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_online < 1)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "cannot detect the CPU: no core online");
    if (n_online > INT32_MAX)
        n_online = INT32_MAX;
    t->cpu_arch = arch;
    t->features = features;
    if (!detect_clusters(t, n_online)) {
        t->n_clusters = 1;
        memset(&t->clusters[0], 0, sizeof t->clusters[0]);
        snprintf(t->clusters[0].name, sizeof t->clusters[0].name, "cpu");
        t->clusters[0].count = (int32_t)n_online;
        t->clusters[0].capacity = 1.0f;
    }
    t->l1d_bytes = t->l2_bytes = t->l3_bytes = 0;
    detect_caches(t);
    if (features & MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512F))
        t->vector_registers = 32, t->vector_bits = 512;
    else if (features & MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX2))
        t->vector_registers = 16, t->vector_bits = 256;
    else if (arch == MICA_TARGET_ARCH_X86_64)
        t->vector_registers = 16, t->vector_bits = 128;
    else
        t->vector_registers = 32, t->vector_bits = 128;
    snprintf(t->cc, sizeof t->cc, "cc");
    snprintf(t->cflags, sizeof t->cflags, "-O2 -march=native");
    for (int i = 0; i < N_TILES; i++) {
        if ((target_tiles[i].arch == MICA_TARGET_ARCH_NONE || target_tiles[i].arch == arch) &&
            (target_tiles[i].tile.needs & ~features) == 0) {
            t->tile = target_tiles[i].tile;
            break;
        }
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    t->dram_budget_bytes = pages > 0 && page > 0 ? (int64_t)pages / 2 * page : 0;
    return MICA_OK;
}

mica_status_t mica_target_detect_host(mica_target_t *out, mica_diag_t *d)
{
    mica_target_t t;
    const mica_target_t *row = table_find("host");
    if (row) {
        t = *row;
    } else {
        memset(&t, 0, sizeof t);
        snprintf(t.name, sizeof t.name, "host");
    }
    MICA_TRY(detect_cpu(&t, d));
    t.arch = t.cpu_arch;
    t.detect = true;
    *out = t;
    return MICA_OK;
}

mica_status_t mica_target_find(const char *name, mica_target_t *out, mica_diag_t *d)
{
    const mica_target_t *row = table_find(name);
    if (!row) {
        char known[MICA_DIAG_MAX];
        size_t len = 0;
        known[0] = 0;
        for (int i = 0; i < N_TABLE && len < sizeof known; i++)
            len += (size_t)snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
                                    target_table[i].name);
        return mica_diag_set(d, MICA_ERR_INVALID, "unknown target '%.64s' (known: %s)", name,
                             known);
    }
    mica_target_t t = *row;
    if (t.detect) {
        MICA_TRY(detect_cpu(&t, d));
        if (t.arch != MICA_TARGET_ARCH_OPENCL)
            t.arch = t.cpu_arch;
    }
    *out = t;
    return MICA_OK;
}

mica_status_t mica_target_check_cpu(const mica_target_t *t, mica_diag_t *d)
{
    if (t->cpu_arch == MICA_TARGET_ARCH_NONE)
        return MICA_OK; /* a detect row: whatever runs here */
    uint64_t have;
    mica_target_arch_t arch = detect_isa(&have);
    if (arch != t->cpu_arch)
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "target %s is for %s, but this CPU is %s",
                             t->name, mica_target_arch_name(t->cpu_arch),
                             mica_target_arch_name(arch));
    uint64_t missing = t->features & ~have;
    if (missing) {
        char list[256];
        mica_target_features_format(missing, list, sizeof list);
        return mica_diag_set(d, MICA_ERR_UNSUPPORTED, "target %s needs %s, which this CPU lacks",
                             t->name, list);
    }
    return MICA_OK;
}

/* ---- load balancing ---------------------------------------------------- */

/* units * weight stays below 2^60; a float capacity in [0.5, 1] is exact
 * at weight 2^24 (24-bit mantissa). */
#define SPLIT_MAX_UNITS (INT64_C(1) << 36)
#define SPLIT_WEIGHT_ONE (INT64_C(1) << 24) /* weight of the fastest core */

mica_status_t mica_target_split(const mica_target_t *t, int64_t n_items, int64_t granule,
                                int32_t max_parts, int64_t *out_counts, int32_t *out_n_parts,
                                mica_diag_t *d)
{
    if (n_items < 0 || granule < 1 || max_parts < 1)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "split of %lld items in granules of %lld over %d parts: bad argument",
                             (long long)n_items, (long long)granule, (int)max_parts);
    if (t->n_clusters < 1 || t->n_clusters > MICA_TARGET_MAX_CLUSTERS)
        return mica_diag_set(d, MICA_ERR_INVALID, "target %s has %d clusters", t->name,
                             (int)t->n_clusters);
    float fastest = 0.0f;
    for (int c = 0; c < t->n_clusters; c++) {
        float cap = t->clusters[c].capacity;
        if (t->clusters[c].count < 0 || !(cap > 0.0f) || !isfinite(cap))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "target %s cluster %s: bad count or capacity", t->name,
                                 t->clusters[c].name);
        if (cap > fastest)
            fastest = cap;
    }
    int64_t units = n_items / granule + (n_items % granule != 0);
    if (units > SPLIT_MAX_UNITS)
        return mica_diag_set(d, MICA_ERR_RANGE, "split of %lld units: more than 2^36",
                             (long long)units);

    /* One integer weight per core, the fastest 2^24, so every share is an
     * exact integer ratio: quota = units * w / W. The cores of a cluster
     * share a weight; active[c] of them take part. */
    int64_t weight[MICA_TARGET_MAX_CLUSTERS], rem[MICA_TARGET_MAX_CLUSTERS];
    int32_t active[MICA_TARGET_MAX_CLUSTERS];
    bool done[MICA_TARGET_MAX_CLUSTERS];
    int32_t n = 0;
    int64_t total_weight = 0;
    for (int c = 0; c < t->n_clusters; c++) {
        int64_t w = llround((double)t->clusters[c].capacity / fastest * (double)SPLIT_WEIGHT_ONE);
        weight[c] = w < 1 ? 1 : w;
        active[c] = t->clusters[c].count < max_parts - n ? t->clusters[c].count : max_parts - n;
        done[c] = false;
        n += active[c];
        total_weight += weight[c] * active[c];
    }
    if (n == 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "target %s has no cores", t->name);

    /* Largest remainder: every core its floor, then one more unit to each
     * of the cores with the largest remainders, the first core on ties. */
    int64_t left = units;
    for (int c = 0, p = 0; c < t->n_clusters; c++) {
        int64_t q = units * weight[c] / total_weight;
        rem[c] = units * weight[c] % total_weight;
        for (int32_t k = 0; k < active[c]; k++)
            out_counts[p++] = q;
        left -= q * active[c];
    }
    while (left > 0) { /* a cluster at a time: its cores tie, the first wins */
        int best = -1;
        for (int c = 0; c < t->n_clusters; c++)
            if (!done[c] && active[c] > 0 && (best < 0 || rem[c] > rem[best]))
                best = c;
        int32_t first = 0, give = active[best] < left ? active[best] : (int32_t)left;
        for (int c = 0; c < best; c++)
            first += active[c];
        for (int32_t k = 0; k < give; k++)
            out_counts[first + k]++;
        done[best] = true;
        left -= give;
    }

    /* units -> items; the last non-empty part takes what is left, which
     * includes the short last unit (and cannot overflow). */
    int32_t last = -1;
    for (int32_t p = 0; p < n; p++)
        if (out_counts[p])
            last = p;
    int64_t rest = n_items;
    for (int32_t p = 0; p < n; p++) {
        if (p == last)
            continue;
        out_counts[p] *= granule;
        rest -= out_counts[p];
    }
    if (last >= 0)
        out_counts[last] = rest;
    *out_n_parts = n;
    return MICA_OK;
}
