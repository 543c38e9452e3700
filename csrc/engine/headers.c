/* The response header callback every transfer uses (headers.h). */
#define _GNU_SOURCE
#include "engine/headers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "matrix/disposition.h"

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

