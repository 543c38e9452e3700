/* Streamed uploads and downloads (files.h). */
#define _GNU_SOURCE
#include "engine/files.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- uploads ------------------------------------------------------------- */

int mx_upload_open(const char *path, FILE **fp, curl_off_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto fail;
    }
    *fp = f;
    *size = (curl_off_t)st.st_size;
    return 0;
fail:;
    int saved = errno;
    fclose(f);
    errno = saved;
    return -1;
}

size_t mx_upload_read(char *buf, size_t size, size_t nitems, void *fp) {
    size_t got = fread(buf, 1, size * nitems, fp);
    if (got == 0 && ferror(fp)) return CURL_READFUNC_ABORT;
    return got;
}

int mx_upload_seek(void *fp, curl_off_t offset, int origin) {
    return fseeko(fp, (off_t)offset, origin) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

/* ---- download sinks ------------------------------------------------------ */

mx_file_sink *mx_file_sink_new(const char *final_path) {
    mx_file_sink *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t n = strlen(final_path);
    s->final_path = strdup(final_path);
    s->tmp_path = malloc(n + sizeof ".partXXXXXX");
    if (!s->final_path || !s->tmp_path) goto fail;
    memcpy(s->tmp_path, final_path, n);
    memcpy(s->tmp_path + n, ".partXXXXXX", sizeof ".partXXXXXX");
    int fd = mkstemp(s->tmp_path);
    if (fd < 0) {
        free(s->tmp_path);
        s->tmp_path = NULL;
        goto fail;
    }
    s->fp = fdopen(fd, "wb");
    if (!s->fp) {
        int saved = errno;
        close(fd);
        errno = saved;
        goto fail;
    }
    return s;
fail:;
    int saved = errno;
    mx_file_sink_free(s);
    errno = saved;
    return NULL;
}

int mx_file_sink_write(mx_file_sink *s, const char *data, size_t n) {
    if (!s->fp) {
        errno = EBADF;
        return -1;
    }
    return fwrite(data, 1, n, s->fp) == n ? 0 : -1;
}

int mx_file_sink_reset(mx_file_sink *s) {
    if (!s->fp) {
        errno = EBADF;
        return -1;
    }
    if (fflush(s->fp) != 0 || ftruncate(fileno(s->fp), 0) != 0) return -1;
    rewind(s->fp);
    return 0;
}

int mx_file_sink_commit(mx_file_sink *s) {
    int rc = s->fp ? fclose(s->fp) : -1;
    s->fp = NULL;
    if (rc == 0 && s->tmp_path) rc = rename(s->tmp_path, s->final_path);
    if (rc != 0) {
        int saved = errno;
        if (s->tmp_path) unlink(s->tmp_path);
        errno = saved;
    }
    free(s->tmp_path);
    s->tmp_path = NULL;
    return rc == 0 ? 0 : -1;
}

void mx_file_sink_free(mx_file_sink *s) {
    if (!s) return;
    if (s->fp) fclose(s->fp);
    if (s->tmp_path) unlink(s->tmp_path);
    free(s->tmp_path);
    free(s->final_path);
    free(s);
}
