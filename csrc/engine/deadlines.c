/* A binary min-heap of deadlines (deadlines.h): each queued deadline knows
 * its slot, so moving or removing one is O(log n) without a search. */
#include "engine/deadlines.h"

#include <stdlib.h>

static void put(mx_deadlines *h, size_t i, mx_deadline *d) {
    h->items[i] = d;
    d->slot = i + 1;
}

static void sift_up(mx_deadlines *h, size_t i) {
    mx_deadline *d = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->at <= d->at) break;
        put(h, i, h->items[parent]);
        i = parent;
    }
    put(h, i, d);
}

static void sift_down(mx_deadlines *h, size_t i) {
    mx_deadline *d = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len) break;
        if (child + 1 < h->len && h->items[child + 1]->at < h->items[child]->at) child++;
        if (d->at <= h->items[child]->at) break;
        put(h, i, h->items[child]);
        i = child;
    }
    put(h, i, d);
}

int mx_deadlines_set(mx_deadlines *h, mx_deadline *d, int64_t at) {
    if (d->slot) {
        size_t i = d->slot - 1;
        int64_t was = d->at;
        d->at = at;
        if (at < was)
            sift_up(h, i);
        else
            sift_down(h, i);
        return 0;
    }
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        mx_deadline **grown = realloc(h->items, cap * sizeof *grown);
        if (!grown) return -1;
        h->items = grown;
        h->cap = cap;
    }
    d->at = at;
    put(h, h->len++, d);
    sift_up(h, h->len - 1);
    return 0;
}

void mx_deadlines_clear(mx_deadlines *h, mx_deadline *d) {
    if (!d->slot) return;
    size_t i = d->slot - 1;
    d->slot = 0;
    mx_deadline *last = h->items[--h->len];
    if (i == h->len) return; /* it was the last one */
    put(h, i, last);
    /* The moved one may belong above or below its new place. */
    if (i > 0 && h->items[(i - 1) / 2]->at > last->at)
        sift_up(h, i);
    else
        sift_down(h, i);
}

mx_deadline *mx_deadlines_pop_due(mx_deadlines *h, int64_t now) {
    if (h->len == 0 || h->items[0]->at > now) return NULL;
    mx_deadline *d = h->items[0];
    mx_deadlines_clear(h, d);
    return d;
}

int64_t mx_deadlines_next(const mx_deadlines *h) {
    return h->len ? h->items[0]->at : INT64_MAX;
}
