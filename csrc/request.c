/* URL and body building shared by every API call and the sync loop. */
#define _GNU_SOURCE
#include "request.h"

#include <curl/curl.h>
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

static void sb_add_escaped(strbuf *b, const char *s) {
    char *esc = curl_easy_escape(NULL, s, 0); /* owned here, curl_free */
    if (!esc) {
        b->failed = 1;
        return;
    }
    sb_add(b, esc, strlen(esc));
    curl_free(esc);
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
