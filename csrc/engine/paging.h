/* History paging driven by the engine: one request walks
 * /rooms/{id}/messages page after page, on the engine thread, until
 * history.c says it is done, then aggregates; Python gets one History. */
#ifndef MATRIDGE_PAGING_H
#define MATRIDGE_PAGING_H

#include "engine/engine.h"
#include "matrix/history.h"

typedef struct mx_paging mx_paging;

/* The history request kind; its kind_data is the mx_paging. */
extern mx_request_kind mx_kind_history;

struct mx_paging {
    char *homeserver; /* owned copies */
    char *room_id;
    char *filter; /* RoomEventFilter JSON, may be NULL */
    int page_size;
    mx_history *history; /* owned until handed to Python */
};

/* NULL on allocation failure. Strings are copied. */
mx_paging *mx_paging_new(const char *homeserver, const char *room_id, const char *filter,
                         int page_size, int backwards, const char *until_event_id,
                         int64_t until_ts, size_t max_events);
void mx_paging_free(mx_paging *p);

/* The URL of the page starting at `from` (NULL: the live end, or the start
 * of the room going forwards). Owned by the caller; NULL on ENOMEM. */
char *mx_paging_url(const mx_paging *p, const char *from);

/* The paging state of a history request (owned by the request). */
mx_paging *mx_paging_of(mx_request *r);

#endif
