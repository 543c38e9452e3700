/* libFuzzer harness: the input split at NUL bytes into /messages pages,
 * paged with bounds taken from the first byte, then aggregated. */
#include <stdint.h>
#include <string.h>

#include "matrix/history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t mode = data[0];
    mx_history *h = mx_history_new(!(mode & 1), (mode & 2) ? "$e3" : NULL,
                                   (mode & 4) ? 1005 : -1, (mode >> 4));
    if (!h) return 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    while (p < end && h->stop == MX_STOP_NONE) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t len = nul ? (size_t)(nul - p) : (size_t)(end - p);
        const char *reason;
        if (mx_history_add_page(h, p, len, &reason) != 0) break;
        p += len + 1;
    }
    if (mx_history_aggregate(h) == 0) {
        volatile size_t sink = 0;
        for (size_t i = 0; i < h->n_events; i++) {
            sink += strlen(h->events[i]->event_id);
            if (h->replacements[i]) sink += strlen(h->replacements[i]->event_id);
            for (size_t k = 0; k < h->reactions[i].n; k++)
                sink += strlen(h->reactions[i].items[k].key);
        }
        (void)sink;
    }
    mx_history_free(h);
    return 0;
}
