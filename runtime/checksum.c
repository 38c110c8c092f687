/* FNV-1a 64 (runtime/checksum.h). */
#include "checksum.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FNV_PRIME UINT64_C(0x100000001b3)

uint64_t mica_checksum_update(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

mica_status_t mica_checksum_file(const char *path, uint64_t *out_size, uint64_t *out_sum,
                                 mica_diag_t *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    uint64_t h = MICA_CHECKSUM_INIT, n = 0;
    ssize_t r;
    while ((r = read(fd, buf, CHUNK)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        h = mica_checksum_update(h, buf, (size_t)r);
        n += (uint64_t)r;
    }
    int err = errno;
    free(buf);
    close(fd);
    if (r < 0)
        return mica_diag_set(d, MICA_ERR_IO, "reading %s: %s", path, strerror(err));
    *out_size = n;
    *out_sum = h;
    return MICA_OK;
}
