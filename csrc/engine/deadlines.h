/* The engine's own deadlines (a request's retry or next page, an account's
 * backoff end) in one binary min-heap, so that finding the next one and
 * taking the due ones costs O(log n) whatever the number of accounts.
 *
 * An mx_deadline lives inside its owner (a request or an account); the heap
 * holds pointers to it and never owns anything. Engine thread only. */
#ifndef MATRIDGE_DEADLINES_H
#define MATRIDGE_DEADLINES_H

#include <stddef.h>
#include <stdint.h>

typedef enum { MX_DEADLINE_REQUEST, MX_DEADLINE_ACCOUNT } mx_deadline_owner;

typedef struct mx_deadline {
    int64_t at;               /* monotonic ms */
    size_t slot;              /* index + 1 in the heap; 0 when not queued */
    mx_deadline_owner owner;  /* what the deadline is embedded in */
} mx_deadline;

typedef struct {
    mx_deadline **items; /* owned array of borrowed pointers */
    size_t len, cap;
} mx_deadlines;

/* Queues `d` for `at`, or moves it there if queued. 0, or -1 when out of
 * memory (`d` then stays as it was). */
int mx_deadlines_set(mx_deadlines *h, mx_deadline *d, int64_t at);
/* Unqueues `d`; harmless when it is not queued. */
void mx_deadlines_clear(mx_deadlines *h, mx_deadline *d);
/* Unqueues and returns the earliest deadline if it is at or before `now`,
 * else NULL. */
mx_deadline *mx_deadlines_pop_due(mx_deadlines *h, int64_t now);
/* The earliest queued deadline, or INT64_MAX. */
int64_t mx_deadlines_next(const mx_deadlines *h);

#endif
