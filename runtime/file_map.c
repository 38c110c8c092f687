/* Read-only file mappings (runtime/file_map.h). */
#include "file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

mica_status_t mica_file_map_open(const char *path, mica_file_map_t *out, mica_diag_t *d)
{
    out->ptr = NULL;
    out->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    mica_status_t s = MICA_OK;
    if (fstat(fd, &st) != 0)
        s = mica_diag_set(d, MICA_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        s = mica_diag_set(d, MICA_ERR_IO, "is a directory");
    else if (!S_ISREG(st.st_mode))
        s = mica_diag_set(d, MICA_ERR_IO, "not a regular file");
    else if ((uintmax_t)st.st_size > SIZE_MAX)
        s = mica_diag_set(d, MICA_ERR_NOMEM, "file too large to map");
    if (s == MICA_OK && st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            s = mica_diag_set(d, MICA_ERR_IO, "cannot map: %s", strerror(errno));
        } else {
            out->ptr = p;
            out->len = (uint64_t)st.st_size;
        }
    }
    close(fd);
    return s;
}

void mica_file_map_release(mica_file_map_t *m)
{
    if (m->ptr)
        munmap((void *)m->ptr, (size_t)m->len);
    m->ptr = NULL;
    m->len = 0;
}
