/* mica targets [--json] [NAME...] */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "target.h"

static void help(void)
{
    printf("usage: mica targets [--json] [NAME...]\n\n"
           "Lists the targets mica compiles for (all, or the NAMEs given): architecture,\n"
           "ISA features, CPU clusters (cores x relative capacity), caches, the int8\n"
           "weight tile and the C compiler. 'host' (and the CPU part of 'opencl') is\n"
           "detected from this machine.\n"
           "  --json  print a JSON array instead, one object per target\n");
}

/* "32 KiB", "2 MiB", "11.8 GiB", "unknown" */
static const char *size_str(int64_t bytes, char *buf, size_t cap)
{
    if (bytes <= 0)
        snprintf(buf, cap, "unknown");
    else if (bytes % (INT64_C(1) << 30) == 0)
        snprintf(buf, cap, "%lld GiB", (long long)(bytes >> 30));
    else if (bytes >= (INT64_C(1) << 30))
        snprintf(buf, cap, "%.1f GiB", (double)bytes / (double)(INT64_C(1) << 30));
    else if (bytes % (1 << 20) == 0)
        snprintf(buf, cap, "%lld MiB", (long long)(bytes >> 20));
    else if (bytes % 1024 == 0)
        snprintf(buf, cap, "%lld KiB", (long long)(bytes >> 10));
    else
        snprintf(buf, cap, "%lld B", (long long)bytes);
    return buf;
}

static void print_text(const mica_target_t *t)
{
    char feats[256], a[32], b[32], c[32];
    mica_target_features_format(t->features, feats, sizeof feats);
    printf("%s  %s\n", t->name, t->summary);
    if (t->arch != t->cpu_arch)
        printf("  arch      %s (CPU part %s)\n", mica_target_arch_name(t->arch),
               mica_target_arch_name(t->cpu_arch));
    else
        printf("  arch      %s\n", mica_target_arch_name(t->arch));
    printf("  features  %s\n", feats);
    printf("  clusters  ");
    for (int i = 0; i < t->n_clusters; i++)
        printf("%s%dx%.2f", i ? " + " : "", (int)t->clusters[i].count,
               (double)t->clusters[i].capacity);
    printf(" (%d cores:", (int)mica_target_core_count(t));
    for (int i = 0; i < t->n_clusters; i++)
        printf(" %s", t->clusters[i].name);
    printf(")\n");
    printf("  caches    L1d %s, L2 %s, L3 %s; %d x %d-bit vector registers\n",
           size_str(t->l1d_bytes, a, sizeof a), size_str(t->l2_bytes, b, sizeof b),
           size_str(t->l3_bytes, c, sizeof c), (int)t->vector_registers, (int)t->vector_bits);
    printf("  tile      %s (%s) ep=%d hp=%d lp=%d; prefill chunk %d tokens\n", t->tile.name,
           t->tile.instruction, (int)t->tile.ep, (int)t->tile.hp, (int)t->tile.lp,
           (int)t->prefill_chunk);
    printf("  roofline  %.1f GB/s, %.1f int8 GOP/s per core; DRAM budget %s\n", t->bandwidth_gbs,
           t->int8_gops, size_str(t->dram_budget_bytes, a, sizeof a));
    printf("  cc        %s %s\n", t->cc, t->cflags);
    if (t->gpu.present)
        printf("  gpu       %s, OpenCL C %s, fp16 %s, int dot %s, work-group %d, %d compute "
               "units, %.0f GOP/s\n",
               t->gpu.name, t->gpu.opencl_c, t->gpu.fp16 ? "yes" : "no",
               t->gpu.int_dot ? "yes" : "no", (int)t->gpu.work_group, (int)t->gpu.compute_units,
               t->gpu.peak_gops);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* One object with the keys of codegen/targets.json (tile expanded). */
static void print_json(const mica_target_t *t)
{
    printf("  {\"name\": ");
    json_str(t->name);
    printf(", \"summary\": ");
    json_str(t->summary);
    printf(", \"arch\": \"%s\", \"cpu_arch\": \"%s\", \"detect\": %s,\n",
           mica_target_arch_name(t->arch), mica_target_arch_name(t->cpu_arch),
           t->detect ? "true" : "false");
    printf("   \"features\": [");
    for (int f = 0, n = 0; f < MICA_TARGET_FEATURE_COUNT; f++)
        if (t->features & MICA_TARGET_FEATURE_BIT(f))
            printf("%s\"%s\"", n++ ? ", " : "", mica_target_feature_name((mica_target_feature_t)f));
    printf("],\n   \"clusters\": [");
    for (int i = 0; i < t->n_clusters; i++) {
        printf("%s{\"name\": ", i ? ", " : "");
        json_str(t->clusters[i].name);
        printf(", \"count\": %d, \"capacity\": %.9g}", (int)t->clusters[i].count,
               (double)t->clusters[i].capacity);
    }
    printf("],\n   \"cache\": {\"l1d\": %lld, \"l2\": %lld, \"l3\": %lld}, "
           "\"vector\": {\"registers\": %d, \"bits\": %d},\n",
           (long long)t->l1d_bytes, (long long)t->l2_bytes, (long long)t->l3_bytes,
           (int)t->vector_registers, (int)t->vector_bits);
    printf("   \"cc\": ");
    json_str(t->cc);
    printf(", \"cflags\": ");
    json_str(t->cflags);
    printf(",\n   \"tile\": {\"name\": ");
    json_str(t->tile.name);
    printf(", \"instruction\": ");
    json_str(t->tile.instruction);
    printf(", \"ep\": %d, \"hp\": %d, \"lp\": %d},\n", (int)t->tile.ep, (int)t->tile.hp,
           (int)t->tile.lp);
    printf("   \"prefill_chunk\": %d, \"bandwidth_gbs\": %.17g, \"int8_gops\": %.17g, "
           "\"dram_budget\": %lld,\n",
           (int)t->prefill_chunk, t->bandwidth_gbs, t->int8_gops,
           (long long)t->dram_budget_bytes);
    printf("   \"gpu\": ");
    if (!t->gpu.present) {
        printf("null}");
        return;
    }
    printf("{\"name\": ");
    json_str(t->gpu.name);
    printf(", \"opencl_c\": ");
    json_str(t->gpu.opencl_c);
    printf(", \"fp16\": %s, \"int_dot\": %s, \"work_group\": %d, \"compute_units\": %d, "
           "\"peak_gops\": %.17g}}",
           t->gpu.fp16 ? "true" : "false", t->gpu.int_dot ? "true" : "false",
           (int)t->gpu.work_group, (int)t->gpu.compute_units, t->gpu.peak_gops);
}

int mica_cmd_targets(int argc, char **argv)
{
    bool json = false;
    int n_names = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("targets", "unknown option '%s'", a);
        } else {
            argv[n_names++] = argv[i]; /* names, compacted in place */
        }
    }
    /* Resolve everything before printing, so a bad name prints nothing. */
    int n = n_names ? n_names : mica_target_count();
    mica_diag_t d = {0};
    mica_target_t one;
    for (int i = 0; i < n_names; i++)
        if (mica_target_find(argv[i], &one, &d) != MICA_OK)
            return d.code == MICA_ERR_INVALID ? mica_cli_usage("targets", "%s", d.msg)
                                              : mica_cli_fail(NULL, &d);
    if (json)
        printf("[\n");
    for (int i = 0; i < n; i++) {
        const char *name = n_names ? argv[i] : mica_target_at(i)->name;
        if (mica_target_find(name, &one, &d) != MICA_OK)
            return mica_cli_fail(NULL, &d);
        if (json) {
            print_json(&one);
            printf(i + 1 < n ? ",\n" : "\n");
        } else {
            if (i)
                printf("\n");
            print_text(&one);
        }
    }
    if (json)
        printf("]\n");
    return MICA_EXIT_OK;
}
