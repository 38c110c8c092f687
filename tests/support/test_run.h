/* Running the built `mica` binary from a test, as a user would: stdin from
 * /dev/null, stdout and stderr captured. */
#ifndef MICA_TEST_RUN_H
#define MICA_TEST_RUN_H

#include <stdbool.h>

typedef struct mica_test_result {
    int status; /* exit code, or -1 if killed by a signal */
    int signal; /* the signal that killed it, else 0 */
    char *out;  /* stdout (malloc'd) */
    char *err;  /* stderr (malloc'd) */
} mica_test_result_t;

/* Runs mica with the NULL-terminated argument list; the captured streams
 * pass through files in dir. Fails the test if it cannot run. */
mica_test_result_t mica_test_mica(const char *dir, const char *first, ...);
/* The same with an argv array (NULL-terminated, at most 62 entries). */
mica_test_result_t mica_test_mica_argv(const char *dir, const char *const *args);
void mica_test_result_free(mica_test_result_t *r);

/* Expects stderr to be exactly one line containing needle. */
void mica_test_expect_one_line(const mica_test_result_t *r, const char *needle);

#endif
