#include "args.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

bool mica_arg_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

bool mica_arg_float(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

#include <string.h>

#include "cli.h"

int mica_arg_sampling(const char *verb, int argc, char **argv, int *i, mica_sampler_params_t *p)
{
    const char *a = argv[*i];
    static const char *const names[] = {"--temp", "--top-k",  "--top-p", "--repeat-penalty",
                                        "--seed", "--min-p"};
    int which = -1;
    for (int k = 0; k < 6; k++)
        if (!strcmp(a, names[k]))
            which = k;
    if (which < 0)
        return 0;
    if (*i + 1 >= argc) {
        mica_cli_usage(verb, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    int64_t n;
    double x;
    switch (which) {
    case 0:
        if (!mica_arg_float(v, 0, 100, &x))
            break;
        p->temperature = (float)x;
        return 1;
    case 1:
        if (!mica_arg_int(v, 0, INT32_MAX, &n))
            break;
        p->top_k = (int32_t)n;
        return 1;
    case 2:
        if (!mica_arg_float(v, 1e-9, 1, &x))
            break;
        p->top_p = (float)x;
        return 1;
    case 3:
        if (!mica_arg_float(v, 1e-6, 100, &x))
            break;
        p->repeat_penalty = (float)x;
        return 1;
    case 4:
        if (!mica_arg_int(v, 0, INT64_MAX, &n))
            break;
        p->seed = (uint64_t)n;
        return 1;
    case 5:
        if (!mica_arg_float(v, 0, 1, &x))
            break;
        p->min_p = (float)x;
        return 1;
    }
    mica_cli_usage(verb, "bad value '%s' for %s", v, a);
    return -1;
}

int64_t mica_arg_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : n;
}
