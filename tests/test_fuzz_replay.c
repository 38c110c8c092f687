/* Every input the fuzz targets keep (tests/fuzz/corpus/TARGET, the seeds,
 * and tests/fuzz/crashes/TARGET, each crash a fuzzer found, kept once it is
 * fixed) replayed through the same target code the fuzzers run
 * (tests/fuzz/fuzz_*.c): any crash, sanitizer report, leak (the sanitizer
 * build checks at exit) or failed oracle check fails this test. And the
 * dumps of a case the fuzzing brief named (a slice step past a one-element
 * dim overflowed geometry's stride) under the sanitizer build, with their
 * output checked. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_targets.h"
#include "test_run.h"
#include "test_support.h"

typedef int (*target_fn)(const uint8_t *data, size_t size);

static const struct {
    const char *name;
    target_fn run;
} TARGETS[] = {
    {"gguf", mica_fuzz_gguf_one},
    {"ir", mica_fuzz_ir_one},
    {"tokenizer", mica_fuzz_tokenizer_one},
    {"region", mica_fuzz_region_one},
    {"artifact", mica_fuzz_artifact_one},
};

/* Replays every regular file of dir through run; returns how many. */
static int replay_dir(const char *dir, target_fn run)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return 0; /* a target with no saved crashes has no directory */
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        char *bytes = mica_test_read_file(path, &len);
        cr_assert_not_null(bytes, "cannot read %s", path);
        cr_log_info("replay %s", path);
        cr_assert_eq(run((const uint8_t *)bytes, len), 0, "%s", path);
        free(bytes);
        n++;
    }
    closedir(dp);
    return n;
}

Test(fuzz_replay, every_seed_and_saved_crash, .timeout = 600)
{
    for (size_t i = 0; i < sizeof TARGETS / sizeof TARGETS[0]; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/corpus/%s", MICA_FUZZ_DIR, TARGETS[i].name);
        int seeds = replay_dir(dir, TARGETS[i].run);
        cr_expect_gt(seeds, 0, "no seeds for fuzz target %s in %s", TARGETS[i].name, dir);
        snprintf(dir, sizeof dir, "%s/crashes/%s", MICA_FUZZ_DIR, TARGETS[i].name);
        int crashes = replay_dir(dir, TARGETS[i].run);
        cr_log_info("fuzz target %s: %d seeds, %d saved crashes replayed", TARGETS[i].name, seeds,
                    crashes);
    }
}

static char tmpdir[] = "/tmp/mica-fuzz-replay-XXXXXX";
static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
}
static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

/* movement.ir's %5 slices f32[4,6] from [1,0] by steps [2,3]: source offset
 * 1*6 + 0 = 6, strides 6*2 = 12 and 1*3 = 3. Its %6 takes the one element
 * at [3,5] with steps of INT64_MAX (allowed: past the end): offset
 * 3*6 + 5 = 23, and a one-element copy whose stride must not be 6 * step. */
Test(fuzz_replay, movement_dumps_after_geometry_and_fold_regions, .init = setup, .fini = teardown)
{
    const char *ir = MICA_TEST_DATA_DIR "/ir/movement.ir";
    static const char *const passes[] = {"geometry", "fold-regions"};
    for (int i = 0; i < 2; i++) {
        mica_test_result_t r = mica_test_mica(tmpdir, "dump", ir, "--after", passes[i], NULL);
        cr_expect_eq(r.status, 0, "--after %s: status %d: %s", passes[i], r.status, r.err);
        cr_expect_str_empty(r.err, "--after %s wrote to stderr", passes[i]);
        cr_expect(strstr(r.out, "raster(%0) {regions=[{in=0 size=[1] src=23+[1] dst=0+[1]}]} : f32[1,1]"),
                  "--after %s: no one-element copy from 23:\n%s", passes[i], r.out);
        if (i == 0)
            cr_expect(strstr(r.out, "%5 = raster(%0) {regions=[{in=0 size=[2,2] src=6+[12,3] "
                                    "dst=0+[2,1]}]} : f32[2,2]"),
                      "--after geometry: slice %%5 is not 6+[12,3]:\n%s", r.out);
        cr_expect(!strstr(r.out, "slice("), "--after %s: a slice is left", passes[i]);
        mica_test_result_free(&r);
    }
}
