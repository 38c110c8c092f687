#include "test_run.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

mica_test_result_t mica_test_mica_argv(const char *dir, const char *const *args)
{
    const char *argv[64] = {MICA_BINARY_DIR "/tools/mica"};
    int argc = 1;
    while (argc < 63 && args[argc - 1])
        argv[argc] = args[argc - 1], argc++;
    argv[argc] = NULL;
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    mica_test_result_t r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                            WIFSIGNALED(st) ? WTERMSIG(st) : 0, NULL, NULL};
    r.out = mica_test_read_file(out_path, NULL);
    r.err = mica_test_read_file(err_path, NULL);
    cr_assert(r.out && r.err);
    return r;
}

mica_test_result_t mica_test_mica(const char *dir, const char *first, ...)
{
    const char *args[63] = {first};
    int n = 1;
    va_list ap;
    va_start(ap, first);
    while (n < 62 && (args[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    args[n] = NULL;
    return mica_test_mica_argv(dir, args);
}

void mica_test_result_free(mica_test_result_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

void mica_test_expect_one_line(const mica_test_result_t *r, const char *needle)
{
    size_t len = strlen(r->err);
    cr_expect(len > 0 && r->err[len - 1] == '\n' && !memchr(r->err, '\n', len - 1),
              "stderr is not one line: \"%s\"", r->err);
    cr_expect(strstr(r->err, needle), "stderr \"%s\" does not name \"%s\"", r->err, needle);
}
