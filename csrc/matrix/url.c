/* URL and body building shared by every API call and the sync loop (no
 * curl, no Python: see url.h). */
#define _GNU_SOURCE
#include "matrix/url.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; data owned by whoever holds the struct. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Percent-encodes every byte but RFC 3986's unreserved characters, so the
 * result is one path segment or one query key or value whatever `s` holds. */
static void sb_add_escaped(strbuf *b, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        int unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (unreserved) {
            sb_add(b, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_add(b, esc, 3);
        }
    }
}

char *mx_url_build(const char *base, const char *path, const char *const *segments,
                   const mx_query *query) {
    strbuf b = {0};
    sb_add(&b, base, strlen(base));
    size_t next = 0;
    for (const char *p = path; *p;) {
        const char *hole = strstr(p, "{}");
        if (!hole) {
            sb_add(&b, p, strlen(p));
            break;
        }
        sb_add(&b, p, (size_t)(hole - p));
        const char *segment = segments ? segments[next++] : NULL;
        if (!segment) b.failed = 1;
        else sb_add_escaped(&b, segment);
        p = hole + 2;
    }
    char sep = '?';
    for (const mx_query *q = query; q && q->key; q++) {
        if (!q->value) continue;
        sb_add(&b, &sep, 1);
        sb_add_escaped(&b, q->key);
        sb_add(&b, "=", 1);
        sb_add_escaped(&b, q->value);
        sep = '&';
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

cJSON *mx_json_strings(const char *key, ...) {
    cJSON *obj = cJSON_CreateObject();
    if (!obj) return NULL;
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        if (v && !cJSON_AddStringToObject(obj, k, v)) {
            cJSON_Delete(obj);
            obj = NULL;
            break;
        }
    }
    va_end(ap);
    return obj;
}
