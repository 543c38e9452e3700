/* The file name of a Content-Disposition header value (disposition.h). */
#define _GNU_SOURCE
#include "matrix/disposition.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
