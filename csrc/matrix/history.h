/* Room history: /rooms/{id}/messages pages, the point where paging stops,
 * and the aggregation that turns raw events into what an archive shows
 * (edits applied, reactions gathered, redacted events gone). Pure C, run on
 * the engine thread (or with the GIL released). */
#ifndef MATRIDGE_HISTORY_H
#define MATRIDGE_HISTORY_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"
#include "matrix/decode.h"

/* One /messages response. */
typedef struct mx_page {
    mx_arena arena; /* owns the tree and the records */
    cJSON *root;
    const char *start, *end; /* end NULL: nothing further in that direction */
    mx_events chunk;         /* in response order */
    mx_events state;         /* lazy-loaded member state for the senders */
    size_t n_used;           /* chunk events before the stop point */
    struct mx_page *next;
} mx_page;

typedef struct {
    const char *sender;
    const char *key;
    const char *event_id;
} mx_reaction;

typedef struct {
    mx_reaction *items; /* arena array, in time order */
    size_t n;
} mx_reactions;

typedef enum {
    MX_STOP_NONE,      /* wants another page */
    MX_STOP_EVENT,     /* reached the given event (not included) */
    MX_STOP_TIMESTAMP, /* reached the given time (not included) */
    MX_STOP_COUNT,     /* collected the number of events asked for */
    MX_STOP_END        /* the start (or live end) of the room */
} mx_stop;

typedef struct {
    /* What to fetch: set by mx_history_new. */
    int backwards;
    char *until_event_id; /* owned, may be NULL */
    int64_t until_ts;     /* -1: no time bound */
    size_t max_events;    /* 0: no bound */

    /* Progress. */
    mx_page *pages; /* owned list, in fetch order */
    mx_page **tail;
    size_t n_raw;      /* chunk events kept so far */
    mx_stop stop;
    const char *token; /* where to continue from (in the last page), or NULL */

    /* Aggregation (mx_history_aggregate): parallel arrays, oldest first. */
    mx_arena arena;
    const mx_event **events;
    const mx_event **replacements; /* the edit applied to each, or NULL */
    mx_reactions *reactions;
    size_t n_events;
} mx_history;

/* NULL on allocation failure. until_event_id is copied. */
mx_history *mx_history_new(int backwards, const char *until_event_id, int64_t until_ts,
                           size_t max_events);
void mx_history_free(mx_history *h);

/* Parses and adds one /messages body, deciding whether paging stops there.
 * Returns 0, or -1 with *reason set (the history is unchanged). */
int mx_history_add_page(mx_history *h, const char *body, size_t len, const char **reason);

/* Orders what was collected oldest first and aggregates it. -1 on ENOMEM. */
int mx_history_aggregate(mx_history *h);

#endif
