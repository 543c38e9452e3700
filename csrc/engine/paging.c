/* One history request, page after page, on the engine thread. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "engine/paging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matrix/url.h"

mx_paging *mx_paging_new(const char *homeserver, const char *room_id, const char *filter,
                         int page_size, int backwards, const char *until_event_id,
                         int64_t until_ts, size_t max_events) {
    mx_paging *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->homeserver = strdup(homeserver);
    p->room_id = strdup(room_id);
    p->filter = filter ? strdup(filter) : NULL;
    p->page_size = page_size;
    p->history = mx_history_new(backwards, until_event_id, until_ts, max_events);
    if (!p->homeserver || !p->room_id || (filter && !p->filter) || !p->history) {
        mx_paging_free(p);
        return NULL;
    }
    return p;
}

void mx_paging_free(mx_paging *p) {
    if (!p) return;
    free(p->homeserver);
    free(p->room_id);
    free(p->filter);
    mx_history_free(p->history);
    free(p);
}

char *mx_paging_url(const mx_paging *p, const char *from) {
    char limit[24];
    /* Never ask for more than the bound needs. */
    size_t want = (size_t)p->page_size, left = 0;
    const mx_history *h = p->history;
    if (h->max_events) left = h->max_events - h->n_raw;
    if (left && left < want) want = left;
    snprintf(limit, sizeof limit, "%zu", want ? want : 1);
    const char *segs[] = {p->room_id, NULL};
    const mx_query query[] = {{"dir", h->backwards ? "b" : "f"},
                              {"limit", limit},
                              {"from", from},
                              {"filter", p->filter},
                              {NULL, NULL}};
    return mx_url_build(p->homeserver, "/_matrix/client/v3/rooms/{}/messages", segs, query);
}

mx_paging *mx_paging_of(mx_request *r) { return r->kind_data; }

/* Takes the 2xx body of r's last page. Returns 0 (send again at once) when
 * another page is needed (r->url now points at it), MX_DONE when paging is
 * over (r->status says how; on MX_OK the history is aggregated). */
static long page_done(mx_request *r) {
    mx_paging *p = r->kind_data;
    const char *reason = NULL;
    int rc = mx_history_add_page(p->history, r->response.data ? r->response.data : "",
                                 r->response.len, &reason);
    /* The page was parsed into its own arena: the raw bytes can go. */
    free(r->response.data);
    r->response.data = NULL;
    r->response.len = r->response.cap = 0;
    if (rc != 0) {
        r->status = MX_ERR_PARSE;
        snprintf(r->errbuf, sizeof r->errbuf, "unusable /messages page: %s", reason);
        return MX_DONE;
    }
    if (p->history->stop == MX_STOP_NONE) {
        char *url = mx_paging_url(p, p->history->token); /* owned by the request */
        if (url) {
            free(r->url);
            r->url = url;
            return 0;
        }
        r->status = MX_ERR_NOMEM;
        snprintf(r->errbuf, sizeof r->errbuf, "out of memory paging history");
        return MX_DONE;
    }
    if (mx_history_aggregate(p->history) != 0) {
        r->status = MX_ERR_NOMEM;
        snprintf(r->errbuf, sizeof r->errbuf, "out of memory aggregating history");
    }
    return MX_DONE;
}

static void free_paging(void *p) { mx_paging_free(p); }

mx_request_kind mx_kind_history = {
    .name = "history",
    .raw_body = 1, /* each page is parsed into its own arena */
    .on_body = page_done,
    .free_data = free_paging,
};
