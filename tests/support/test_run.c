#include "test_run.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_support.h"

/* The one runner: program with args (NULL-terminated); fsize_limit > 0
 * caps the size of the files the child may write (SIGXFSZ ignored, so its
 * writes fail with EFBIG). */
static mica_test_result_t run_program(const char *dir, long fsize_limit, const char *program,
                                      const char *const *args)
{
    const char *argv[64] = {program};
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
        if (fsize_limit > 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    cr_assert_eq(wait4(pid, &st, 0, &ru), pid);
    mica_test_result_t r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                            WIFSIGNALED(st) ? WTERMSIG(st) : 0, NULL, NULL, ru.ru_maxrss};
    r.out = mica_test_read_file(out_path, NULL);
    r.err = mica_test_read_file(err_path, NULL);
    cr_assert(r.out && r.err);
    return r;
}

static mica_test_result_t run_mica(const char *dir, long fsize_limit, const char *const *args)
{
    return run_program(dir, fsize_limit, MICA_BINARY_DIR "/tools/mica", args);
}

mica_test_result_t mica_test_mica_argv(const char *dir, const char *const *args)
{
    return run_mica(dir, 0, args);
}

mica_test_result_t mica_test_run_argv(const char *dir, const char *const *argv)
{
    return run_program(dir, 0, argv[0], argv + 1);
}

/* Collects first and the rest of ap, up to the NULL, into args[0..62]. */
static void collect_args(const char **args, const char *first, va_list ap)
{
    int n = 1;
    args[0] = first;
    while (n < 62 && (args[n] = va_arg(ap, const char *)) != NULL)
        n++;
    args[n] = NULL;
}

mica_test_result_t mica_test_mica(const char *dir, const char *first, ...)
{
    const char *args[63];
    va_list ap;
    va_start(ap, first);
    collect_args(args, first, ap);
    va_end(ap);
    return run_mica(dir, 0, args);
}

mica_test_result_t mica_test_mica_fsize(const char *dir, long fsize_limit, const char *first, ...)
{
    const char *args[63];
    va_list ap;
    va_start(ap, first);
    collect_args(args, first, ap);
    va_end(ap);
    return run_mica(dir, fsize_limit, args);
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

void mica_test_tmpdir_make(char *tmpl)
{
    cr_assert(mkdtemp(tmpl), "cannot create %s", tmpl);
}

void mica_test_tmpdir_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

const char *mica_test_path(const char *dir, const char *name)
{
    static char path[8][600];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

int mica_test_dir_entries(const char *dir)
{
    DIR *dp = opendir(dir);
    cr_assert(dp, "cannot list %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "stdout") &&
             strcmp(e->d_name, "stderr");
    closedir(dp);
    return n;
}
