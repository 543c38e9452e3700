/* Building request URLs and small JSON bodies (no curl, no Python, any
 * thread). */
#ifndef MATRIDGE_URL_H
#define MATRIDGE_URL_H

#include <cjson/cJSON.h>

/* One query parameter; a NULL value leaves it out. Lists end with key NULL.
 * A key may repeat (e.g. several `via`). */
typedef struct {
    const char *key;
    const char *value;
} mx_query;

/* base + path, where each "{}" in `path` is replaced by the next string of
 * `segments`, percent-encoded as one path segment; then the query, every
 * key and value percent-encoded. Returns a malloc'd string owned by the
 * caller, or NULL when out of memory or when `segments` runs short (NULL
 * entry) of the placeholders. */
char *mx_url_build(const char *base, const char *path, const char *const *segments,
                   const mx_query *query);

/* A JSON object from key/value string pairs ending with a NULL key; pairs
 * with a NULL value are left out. Owned by the caller; NULL when out of memory. */
cJSON *mx_json_strings(const char *key, ...);

#endif
