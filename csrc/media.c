/* Streamed uploads and downloads, and response header capture (media.h). */
#define _GNU_SOURCE
#include "media.h"

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

/* ---- headers -------------------------------------------------------------- */

/* A header's value if `line` is that header, trimmed into `out`; else NULL. */
static const char *header_value(const char *line, size_t len, const char *name, char *out,
                                size_t outsz) {
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return NULL;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && isspace((unsigned char)end[-1])) end--;
    size_t n = (size_t)(end - v);
    if (n >= outsz) n = outsz - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

static void replace(char **slot, char *value) {
    free(*slot);
    *slot = value;
}

size_t mx_on_header(char *buf, size_t size, size_t nitems, void *userdata) {
    mx_request *r = userdata;
    size_t len = size * nitems;
    char value[1024];
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx or on a retry): forget the last one's. */
        const char *sp = memchr(buf, ' ', len);
        r->http_status = sp ? strtol(sp + 1, NULL, 10) : 0;
        r->retry_after_ms = 0;
        replace(&r->resp_content_type, NULL);
        replace(&r->resp_filename, NULL);
    } else if (header_value(buf, len, "Content-Type", value, sizeof value)) {
        replace(&r->resp_content_type, strdup(value));
    } else if (header_value(buf, len, "Content-Disposition", value, sizeof value)) {
        replace(&r->resp_filename, mx_disposition_filename(value));
    } else if (header_value(buf, len, "Retry-After", value, sizeof value)) {
        /* Only the delay-seconds form; an HTTP date falls back to backoff. */
        char *end;
        long secs = strtol(value, &end, 10);
        if (end != value && *end == '\0' && secs >= 0 && secs < 86400)
            r->retry_after_ms = secs * 1000;
    } else if (header_value(buf, len, "Content-Length", value, sizeof value)) {
        unsigned long long n = strtoull(value, NULL, 10);
        if (r->http_status >= 200 && r->http_status < 300 && n > r->max_body) {
            r->status = MX_ERR_TOO_LARGE;
            snprintf(r->verdict, sizeof r->verdict,
                     "the response body (%llu bytes) is over the %zu-byte limit", n, r->max_body);
            return 0; /* aborts the transfer */
        }
    }
    return len;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies one parameter value starting at `v` (quoted-string or token) into
 * a new string; percent-decodes when `ext` (RFC 8187 value after ''). */
static char *param_value(const char *v, int ext) {
    size_t n = strlen(v);
    char *out = malloc(n + 1); /* owned by the caller */
    if (!out) return NULL;
    size_t o = 0;
    if (!ext && *v == '"') {
        for (v++; *v && *v != '"'; v++) {
            if (*v == '\\' && v[1]) v++;
            out[o++] = *v;
        }
    } else {
        for (; *v && *v != ';' && !isspace((unsigned char)*v); v++) {
            int hi, lo;
            if (ext && *v == '%' && (hi = hexval(v[1])) >= 0 && (lo = hexval(v[2])) >= 0) {
                if (hi == 0 && lo == 0) { /* an embedded NUL: refuse the name */
                    free(out);
                    return NULL;
                }
                out[o++] = (char)(hi * 16 + lo);
                v += 2;
            } else {
                out[o++] = *v;
            }
        }
    }
    out[o] = '\0';
    /* A name must not smuggle a path: keep only what follows the last slash. */
    char *base = strrchr(out, '/');
    if (base) memmove(out, base + 1, strlen(base + 1) + 1);
    if (!out[0] || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* The value of parameter `name` ("filename" or "filename*") in `value`. */
static const char *find_param(const char *value, const char *name) {
    size_t nl = strlen(name);
    for (const char *p = strchr(value, ';'); p; p = strchr(p + 1, ';')) {
        const char *k = p + 1;
        while (*k == ' ' || *k == '\t') k++;
        if (strncasecmp(k, name, nl) != 0) continue;
        const char *eq = k + nl;
        while (*eq == ' ') eq++;
        if (*eq != '=') continue;
        eq++;
        while (*eq == ' ') eq++;
        return eq;
    }
    return NULL;
}

char *mx_disposition_filename(const char *value) {
    const char *ext = find_param(value, "filename*");
    if (ext) {
        /* charset'language'percent-encoded; we keep UTF-8 (or ASCII) bytes. */
        const char *q1 = strchr(ext, '\''), *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
        char *name = q2 ? param_value(q2 + 1, 1) : NULL;
        if (name) return name;
    }
    const char *plain = find_param(value, "filename");
    return plain ? param_value(plain, 0) : NULL;
}
