/* Targets: what mica compiles for and what the runtime checks an artifact
 * against.
 *
 * A target is data: ISA features, CPU clusters and their relative speeds,
 * caches, vector registers, the C compiler and flags, the int8 weight tile,
 * roofline numbers and an optional OpenCL GPU profile. The table comes from
 * codegen/targets.json, turned into C at build time by codegen/gen_targets.py
 * (the Python kernel generator reads the same file). "host" (and the CPU
 * part of "opencl") is detected from the running machine instead.
 *
 * Everything here is plain values in fixed-size arrays: no allocation, no
 * handles to release, safe to copy with `=`.
 */
#ifndef MICA_TARGET_H
#define MICA_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* ISA features, one bit each (bit = 1 << value) in mica_target_t.features.
 * The order is the one of "features" in codegen/targets.json; the generated
 * table fails to compile if the two disagree. */
typedef enum mica_target_feature {
    MICA_TARGET_FEATURE_NEON = 0,       /* AArch64 Advanced SIMD */
    MICA_TARGET_FEATURE_DOTPROD = 1,    /* sdot/udot (cpuinfo asimddp) */
    MICA_TARGET_FEATURE_I8MM = 2,       /* smmla (cpuinfo i8mm) */
    MICA_TARGET_FEATURE_FP16 = 3,       /* half-precision SIMD arithmetic (asimdhp) */
    MICA_TARGET_FEATURE_AVX2 = 4,       /* x86 256-bit integer SIMD */
    MICA_TARGET_FEATURE_FMA = 5,        /* x86 FMA3 */
    MICA_TARGET_FEATURE_F16C = 6,       /* x86 half <-> single conversion */
    MICA_TARGET_FEATURE_AVX512F = 7,    /* AVX-512 foundation */
    MICA_TARGET_FEATURE_AVX512BW = 8,   /* AVX-512 byte/word */
    MICA_TARGET_FEATURE_AVX512VNNI = 9, /* vpdpbusd on zmm */
    MICA_TARGET_FEATURE_AVXVNNI = 10,   /* vpdpbusd on ymm, VEX encoded */
    MICA_TARGET_FEATURE_COUNT = 11,
} mica_target_feature_t;

#define MICA_TARGET_FEATURE_BIT(f) (UINT64_C(1) << (f))

/* What the kernels are generated for. NONE only in the raw table rows of
 * detected targets (see mica_target_at). */
typedef enum mica_target_arch {
    MICA_TARGET_ARCH_NONE = 0,
    MICA_TARGET_ARCH_X86_64 = 1,
    MICA_TARGET_ARCH_AARCH64 = 2,
    MICA_TARGET_ARCH_OPENCL = 3,
} mica_target_arch_t;

#define MICA_TARGET_MAX_CLUSTERS 8
#define MICA_TARGET_NAME_MAX 32
#define MICA_TARGET_SUMMARY_MAX 128
#define MICA_TARGET_CC_MAX 64
#define MICA_TARGET_CFLAGS_MAX 192

/* A group of identical cores. */
typedef struct mica_target_cluster {
    char name[MICA_TARGET_NAME_MAX]; /* "cortex-x4"; detected: "cpu" or "capN" */
    int32_t count;                   /* cores, >= 1 */
    float capacity;                  /* speed relative to the fastest core: (0, 1] */
} mica_target_cluster_t;

/* The weight-packing tile of the target's best int8 instruction: weights as
 * [h/hp, l/lp, hp, lp], activations as [e/ep, l/lp, ep, lp]. */
typedef struct mica_target_tile {
    char name[16];        /* "i8mm", "sdot", "avx512vnni", ... */
    char instruction[32]; /* "smmla", "vpdpbusd zmm", ... */
    int32_t ep, hp, lp;   /* rows of activations, rows of weights, reduction step */
    uint64_t needs;       /* feature bits the instruction needs */
} mica_target_tile_t;

/* An OpenCL GPU profile; present == false for CPU-only targets. */
typedef struct mica_target_gpu {
    bool present;
    char name[MICA_TARGET_NAME_MAX]; /* "Adreno 750", "generic" */
    char opencl_c[8];                /* OpenCL C version, "3.0" */
    bool fp16;                       /* cl_khr_fp16 arithmetic */
    bool int_dot;                    /* integer dot product (cl_khr_integer_dot_product or vendor) */
    int32_t work_group;              /* preferred work-group size */
    int32_t compute_units;           /* 0 = unknown, the runtime queries it */
    double peak_gops;                /* whole GPU, GOP/s at its fastest type */
} mica_target_gpu_t;

typedef struct mica_target {
    char name[MICA_TARGET_NAME_MAX];
    char summary[MICA_TARGET_SUMMARY_MAX]; /* one line */
    mica_target_arch_t arch;               /* what the kernels are for */
    mica_target_arch_t cpu_arch;           /* the CPU side (== arch unless OPENCL) */
    bool detect;                           /* CPU part comes from the running machine */
    uint64_t features;                     /* MICA_TARGET_FEATURE_BIT set of the CPU side */
    int32_t n_clusters;
    mica_target_cluster_t clusters[MICA_TARGET_MAX_CLUSTERS]; /* fastest first */
    int64_t l1d_bytes, l2_bytes, l3_bytes; /* of the fastest core; 0 = unknown */
    int32_t vector_registers;              /* SIMD registers the kernels may use */
    int32_t vector_bits;                   /* width of one */
    char cc[MICA_TARGET_CC_MAX];           /* C compiler ("aarch64-linux-gnu-gcc") */
    char cflags[MICA_TARGET_CFLAGS_MAX];   /* its flags, space separated */
    mica_target_tile_t tile;
    int32_t prefill_chunk;     /* tokens per prefill call */
    double bandwidth_gbs;      /* DRAM bandwidth, whole chip, 1e9 bytes/s */
    double int8_gops;          /* int8 dot-product peak of one capacity-1.0 core, 1e9 ops/s */
    int64_t dram_budget_bytes; /* default budget for weights + KV cache */
    mica_target_gpu_t gpu;
} mica_target_t;

/* The table, in the order of codegen/targets.json. mica_target_at returns
 * the row as declared (NULL outside [0, count)): a row with detect == true
 * has its CPU part empty; mica_target_find fills it. Static storage. */
int mica_target_count(void);
const mica_target_t *mica_target_at(int i);

/* Copies the target called name into *out, the CPU part of a detect row
 * filled by mica_target_detect_host. An unknown name fails with
 * MICA_ERR_INVALID and a message listing the known names. */
mica_status_t mica_target_find(const char *name, mica_target_t *out, mica_diag_t *d);

/* Describes the running machine as target "host": arch and features
 * (x86: cpuid, with xgetbv to check the OS saves AVX/AVX-512 state;
 * aarch64: getauxval), cores (sysconf; on aarch64 grouped by
 * /sys/devices/system/cpu/cpuN/cpu_capacity when present), caches (/sys,
 * else sysconf), registers from the features, "cc -O2 -march=native", the
 * first tile of the table whose features are present, and half of the
 * physical memory as DRAM budget. Fails only on an unknown architecture or
 * when no core is online. */
mica_status_t mica_target_detect_host(mica_target_t *out, mica_diag_t *d);

/* Checks that the running CPU can execute code built for t: same CPU
 * architecture and every feature of t present. Fails with
 * MICA_ERR_UNSUPPORTED and one line, e.g. "target armv8.6-i8mm needs i8mm,
 * which this CPU lacks". A detect row passes by construction. */
mica_status_t mica_target_check_cpu(const mica_target_t *t, mica_diag_t *d);

/* The running CPU's architecture (NONE when mica does not know it) and
 * its feature bits in *out_features: what mica_target_check_cpu compares
 * against. */
mica_target_arch_t mica_target_host_isa(uint64_t *out_features);

/* Parses a feature list as mica_target_features_format writes it
 * ("dotprod,i8mm,fp16"; "none" or "-" for no bits) into *out_bits; false
 * on an unknown or empty name. */
bool mica_target_features_parse(const char *s, uint64_t *out_bits);

/* Name of one feature ("dotprod"), NULL for a value outside the enum. */
const char *mica_target_feature_name(mica_target_feature_t f);

/* Writes the features in bits as "dotprod,i8mm,fp16" (enum order; "none"
 * for no bits) into buf (always NUL-terminated when cap > 0). Returns the
 * length the whole list needs, like snprintf. */
size_t mica_target_features_format(uint64_t bits, char *buf, size_t cap);

/* Name of an architecture: "x86_64", "aarch64", "opencl", "none". */
const char *mica_target_arch_name(mica_target_arch_t a);

/* Total cores over all clusters. */
int32_t mica_target_core_count(const mica_target_t *t);

/* Splits n_items across the target's cores in proportion to their
 * capacity. The work is cut in granule-sized units (e.g. 8 output channels
 * or 1 token; the last unit may be short when granule does not divide
 * n_items); part p is one core, in cluster order (fastest first), and only
 * the first min(cores, max_parts) cores take part. Counts are rounded by
 * largest remainder, so they sum to n_items, every count is a multiple of
 * granule except that of the last non-empty part, and each part is within
 * one unit of its exact share; cores may get 0. out_counts holds
 * max_parts entries; *out_n_parts receives the number used. Fails with
 * MICA_ERR_INVALID for n_items < 0, granule < 1, max_parts < 1 or a target
 * without cores, MICA_ERR_RANGE when n_items / granule exceeds 2^36. Capacities are
 * rounded to 24 bits relative to the fastest core (exact for 0.5 to 1). */
mica_status_t mica_target_split(const mica_target_t *t, int64_t n_items, int64_t granule,
                                int32_t max_parts, int64_t *out_counts, int32_t *out_n_parts,
                                mica_diag_t *d);

#endif
