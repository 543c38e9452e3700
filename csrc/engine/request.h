/* A request: one HTTP exchange the engine performs, and the kind of request
 * it is. The engine (engine.c) knows only what every request does: send,
 * receive within a size cap, parse a JSON body, time out, be cancelled.
 * What a kind adds (decode a /sync batch, page /messages, update the room
 * cache, keep a media body raw, retry on 429) is in its mx_request_kind,
 * one file per kind:
 *
 *   mx_kind_json        request.c    the parsed JSON answer
 *   mx_kind_room_state  roomstate.c  the answer, also applied to the room cache
 *   mx_kind_event       oneevent.c   one event, decoded like a sync event
 *   mx_kind_media       media.c      the raw body, in memory or in a file (files.c)
 *   mx_kind_history     paging.c     /messages page after page, one History
 *   mx_kind_sync        sync.c       one /sync of an account's loop
 *   mx_kind_sync_stopped sync.c      no transfer: an account's loop ended
 *
 * Ownership: whoever holds the request owns everything it points to (the
 * Python side until mx_engine_submit, then the engine until completion,
 * then the loop thread, which frees it). Easy handles are created and
 * cleaned up on the engine thread only: a request leaves the engine
 * (mx_engine_complete) without one. */
#ifndef MATRIDGE_REQUEST_H
#define MATRIDGE_REQUEST_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/deadlines.h"

/* Largest response body accepted; bigger ones fail that request only. */
#define MX_MAX_RESPONSE (256u * 1024u * 1024u)
/* Bounded retries of a request answered 429. */
#define MX_MAX_RATE_LIMIT_RETRIES 5
/* What on_body and on_error return when the request is over. */
#define MX_DONE (-1L)

typedef struct {
    char *data; /* owned, NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
} mx_buf;

typedef enum { MX_GET, MX_POST, MX_PUT, MX_DELETE } mx_method;

typedef enum {
    MX_OK,
    MX_ERR_HTTP,      /* non-2xx; errcode etc. in the parsed body */
    MX_ERR_NETWORK,   /* transport failure or timeout */
    MX_ERR_PARSE,     /* 2xx whose body is not the JSON we need */
    MX_ERR_CANCELLED, /* cancelled by Python or by stopping the account */
    MX_ERR_NOMEM,
    MX_ERR_TOO_LARGE, /* the body went over the request's size cap */
    MX_ERR_FILE       /* reading the upload or writing the download failed */
} mx_status;

typedef struct mx_batch mx_batch;
typedef struct mx_account mx_account;
typedef struct mx_request mx_request;

/* What a kind of request does beyond the transfer. The engine calls the
 * hooks on its thread; `deliver` is called on the loop thread with the GIL
 * and is set by the Python layer when the module initialises (the engine
 * never calls into Python). A NULL hook does the default named. */
typedef struct mx_request_kind {
    const char *name;
    int raw_body;       /* a 2xx body stays in r->response, not parsed as JSON */
    const char *accept; /* the Accept header line; NULL: application/json */
    /* Before each transfer of the request (also a retry or the next page). */
    void (*on_start)(mx_request *r);
    /* A 2xx answer (r->json parsed unless raw_body). Returns MX_DONE, or a
     * delay in ms after which the request is sent again (the next page: the
     * hook has changed r->url); may set r->status. Default: MX_DONE. */
    long (*on_body)(mx_request *r);
    /* A non-2xx answer (status MX_ERR_HTTP, r->json parsed if it was JSON).
     * Returns MX_DONE or a delay before sending again. Default:
     * mx_request_retry_default. */
    long (*on_error)(mx_request *r);
    /* The request is being cancelled (before it completes as cancelled). */
    void (*on_cancel)(mx_request *r);
    /* The request is over: where it goes. Default: mx_engine_complete, to
     * the loop thread. */
    void (*finished)(mx_request *r);
    /* Frees r->kind_data (any thread). Default: nothing to free. */
    void (*free_data)(void *data);
    /* Loop thread, GIL held: resolves r's future or calls its client back;
     * `py_state` is the module state. */
    void (*deliver)(void *py_state, mx_request *r);
} mx_request_kind;

extern mx_request_kind mx_kind_json;

/* Where a media request's 2xx body goes when it is not kept in memory:
 * a temporary file beside the destination, renamed into place only when
 * the whole body arrived, removed on every failure. */
typedef struct {
    char *final_path; /* owned */
    char *tmp_path;   /* owned; NULL once renamed or removed */
    FILE *fp;         /* owned, open while the transfer writes */
} mx_file_sink;

struct mx_request {
    uint64_t id;
    mx_method method;
    mx_request_kind *kind;
    void *kind_data;    /* owned, the kind's (freed by kind->free_data) */
    char *url;          /* owned */
    char *fallback_url; /* owned, may be NULL: tried once when the server lacks url's endpoint */
    char *body;         /* owned, may be NULL */
    size_t body_len;
    char *content_type; /* owned, may be NULL (then JSON) */
    FILE *upload;       /* owned, may be NULL: the body is streamed from this file */
    curl_off_t upload_size;
    mx_file_sink *sink; /* owned, may be NULL: a 2xx body goes to this file */
    size_t max_body;    /* cap on the response body, bytes */
    char *token;        /* owned copy of the access token, may be NULL */
    long timeout_ms;    /* whole-transfer deadline; 0: none, only a stall guard */
    int insecure;
    mx_account *account; /* counted reference, may be NULL */
    void *py_future;     /* PyObject *, strong ref; only touched with the GIL */

    /* Filled in by the engine thread. */
    CURL *easy; /* engine thread only; NULL outside the engine */
    struct curl_slist *headers;
    mx_buf response;  /* error bodies, and 2xx bodies without a sink */
    size_t body_seen; /* bytes of the current response body */
    long http_status;
    mx_status status;
    char errbuf[CURL_ERROR_SIZE];
    char verdict[CURL_ERROR_SIZE]; /* why our own callback aborted (curl owns errbuf then) */
    cJSON *json;     /* parsed body, owned */
    mx_batch *batch; /* decoded batch (sync, one event), owned until handed to Python */
    long retry_after_ms;
    char *resp_content_type; /* owned, from the response headers, may be NULL */
    char *resp_filename;     /* owned, from Content-Disposition, may be NULL */
    int attempts;
    int used_fallback;
    int64_t not_before_ms; /* monotonic time before which it must not start */
    mx_request *next;

    /* The engine's bookkeeping (engine.c), engine thread only. */
    int attached;     /* its easy handle is on the multi handle */
    int from_python;  /* came through mx_engine_submit: Python may cancel it by id */
    mx_request *prev; /* with next: the engine's list of Python's attached requests */
    mx_deadline wait; /* queued until not_before_ms */
};

/* Request lifetime. mx_request_new returns NULL on allocation failure. */
mx_request *mx_request_new(mx_method method, const char *url, mx_request_kind *kind);
/* Frees everything the request owns except py_future (the caller, holding
 * the GIL, must have released it already). It has no easy handle: the
 * engine cleaned it up before the request left its thread. */
void mx_request_free(mx_request *r);

/* The default answer to a non-2xx response: wait and retry a 429 (Retry-After
 * or exponential, at most MX_MAX_RATE_LIMIT_RETRIES times, at most a minute),
 * or switch once to fallback_url when the server lacks the endpoint.
 * Returns the delay before sending again, or MX_DONE. */
long mx_request_retry_default(mx_request *r);

/* Zeroes `n` bytes at `p` (may be NULL) in a way the compiler keeps. */
void mx_wipe(void *p, size_t n);
/* Wipes and frees a NUL-terminated secret (a token); NULL is fine. */
void mx_secret_free(char *s);
/* Wipes the lines of a header list (the Authorization line) and frees it. */
void mx_headers_free(struct curl_slist *h);

#endif
