/* Running the built `mica` binary from a test, as a user would: stdin from
 * /dev/null, stdout and stderr captured (in files named stdout and stderr
 * of the given directory); and the scratch directory such tests work in. */
#ifndef MICA_TEST_RUN_H
#define MICA_TEST_RUN_H

#include <stdbool.h>

typedef struct mica_test_result {
    int status; /* exit code, or -1 if killed by a signal */
    int signal; /* the signal that killed it, else 0 */
    char *out;  /* stdout (malloc'd) */
    char *err;  /* stderr (malloc'd) */
    long max_rss_kib; /* the child's peak resident set, KiB (ru_maxrss: it includes what the
                         child held as a fork of the test, before its exec) */
} mica_test_result_t;

/* Runs mica with the NULL-terminated argument list; the captured streams
 * pass through files in dir. Fails the test if it cannot run. */
mica_test_result_t mica_test_mica(const char *dir, const char *first, ...);
/* The same with an argv array (NULL-terminated, at most 62 entries). */
mica_test_result_t mica_test_mica_argv(const char *dir, const char *const *args);
/* Runs another program the same way: argv[0] is its path, the rest its
 * arguments (NULL-terminated, at most 62 in all). */
mica_test_result_t mica_test_run_argv(const char *dir, const char *const *argv);
/* The same as mica_test_mica, with the size of every file mica writes
 * capped at fsize_limit bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so a write
 * past it fails with EFBIG, as on a full disk). 0: no limit. */
mica_test_result_t mica_test_mica_fsize(const char *dir, long fsize_limit, const char *first, ...);
/* Frees out and err and sets them to NULL. */
void mica_test_result_free(mica_test_result_t *r);

/* Expects stderr to be exactly one line containing needle. */
void mica_test_expect_one_line(const mica_test_result_t *r, const char *needle);

/* Creates a fresh directory from tmpl ("/tmp/name-XXXXXX", rewritten in
 * place by mkdtemp); fails the test if it cannot. */
void mica_test_tmpdir_make(char *tmpl);
/* Removes dir and everything below it; fails the test if it cannot. */
void mica_test_tmpdir_remove(const char *dir);
/* "dir/name" in one of 8 rotating static buffers (valid for 8 calls). */
const char *mica_test_path(const char *dir, const char *name);
/* How many entries dir has besides ".", ".." and the stdout and stderr
 * capture files of mica_test_mica. */
int mica_test_dir_entries(const char *dir);

#endif
