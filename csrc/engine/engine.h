/* The I/O engine: one thread per process, one libcurl multi handle shared by
 * every Matrix account.
 *
 * Threads and ownership:
 *  - Python (holding the GIL) builds an mx_request and hands it over with
 *    mx_engine_submit(); from then on the engine thread owns it.
 *  - The engine performs the transfer, parses the body with cJSON and decodes
 *    it, all without the GIL, then pushes the request on the completion queue
 *    and writes to an eventfd.
 *  - The asyncio loop watches that eventfd; its reader callback (with the GIL)
 *    pops completions, resolves futures and frees the requests.
 * No Python object is ever touched on the engine thread: py_future is an
 * opaque pointer there.
 */
#ifndef MATRIDGE_ENGINE_H
#define MATRIDGE_ENGINE_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "matrix/rooms.h"

/* Largest response body accepted; bigger ones fail that request only. */
#define MX_MAX_RESPONSE (256u * 1024u * 1024u)
/* Batches the engine may hold ready before Python has processed them. */
#define MX_MAX_UNDELIVERED 2
/* Bounded retries of a request answered 429. */
#define MX_MAX_RATE_LIMIT_RETRIES 5

typedef struct {
    char *data; /* owned, NUL-terminated when len > 0 */
    size_t len;
    size_t cap;
} mx_buf;

typedef enum { MX_GET, MX_POST, MX_PUT, MX_DELETE } mx_method;

typedef enum {
    MX_KIND_JSON,        /* resolve the future with the parsed JSON */
    MX_KIND_MEDIA,       /* resolve with the raw body (bytes or a file) + headers */
    MX_KIND_SYNC,        /* engine-made /sync; deliver a batch to the account */
    MX_KIND_SYNC_STOPPED, /* no transfer: tells the loop a sync loop ended */
    MX_KIND_HISTORY      /* paged /messages (paging.c); resolve with a History */
} mx_kind;

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
typedef struct mx_paging mx_paging;
typedef struct mx_account mx_account;

/* Where a media request's 2xx body goes when it is not kept in memory:
 * a temporary file beside the destination, renamed into place only when
 * the whole body arrived, removed on every failure. */
typedef struct {
    char *final_path; /* owned */
    char *tmp_path;   /* owned; NULL once renamed or removed */
    FILE *fp;         /* owned, open while the transfer writes */
} mx_file_sink;

typedef struct mx_request {
    uint64_t id;
    mx_method method;
    mx_kind kind;
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
    unsigned sync_generation; /* sync requests: the start_sync call they serve */

    /* Filled in by the engine thread. */
    CURL *easy;
    struct curl_slist *headers;
    mx_buf response;    /* error bodies, and 2xx bodies without a sink */
    size_t body_seen;   /* bytes of the current response body */
    long http_status;
    mx_status status;
    char errbuf[CURL_ERROR_SIZE];
    char verdict[CURL_ERROR_SIZE]; /* why our own callback aborted (curl owns errbuf then) */
    cJSON *json;     /* parsed body, owned (moved into batch for sync) */
    mx_batch *batch; /* decoded sync batch, owned until handed to Python */
    long retry_after_ms;
    char *resp_content_type; /* owned, from the response headers, may be NULL */
    char *resp_filename;     /* owned, from Content-Disposition, may be NULL */
    int attempts;
    int used_fallback;
    char *state_of_room; /* owned, may be NULL: apply a 2xx state list to the cache */
    uint64_t state_asked_at; /* the cache's sync count when that transfer started */
    mx_paging *paging;   /* owned, for MX_KIND_HISTORY */
    int as_event;        /* decode a 2xx event body into `batch` (GET /event) */
    int64_t not_before_ms; /* monotonic time before which it must not start */
    struct mx_request *next;
} mx_request;

/* One Matrix account as the engine sees it. Shared between the Python
 * Client object and the engine; freed when the last reference goes. */
struct mx_account {
    atomic_int refs;
    pthread_mutex_t lock; /* guards every field below except engine-only ones */
    char *homeserver;     /* owned, without trailing slash */
    char *token;          /* owned, may be NULL */
    int insecure;

    /* Sync state. Python sets sync_wanted/since/filter under the lock;
     * the engine drives the rest. */
    int sync_wanted;
    unsigned sync_generation; /* bumped by every start_sync */
    char *since;  /* owned, latest token the engine fetched from */
    char *filter; /* owned, filter JSON or id, may be NULL */
    long sync_timeout_ms;
    int undelivered; /* batches pushed but not acknowledged by Python */

    /* Engine-thread only (sync.c). */
    int sync_registered; /* in the engine's account list */
    mx_request *sync_inflight;
    int backoff_ms;
    int64_t next_sync_ms;
    unsigned int jitter_seed;

    void *py_client; /* PyObject *, strong ref while sync runs; GIL only */

    /* Room state, updated by the engine from every batch (sync.c) and read
     * by Python (Client.rooms); it has its own lock. Owned reference. */
    mx_rooms *rooms;
};

mx_account *mx_account_new(const char *homeserver, const char *token, int insecure);
void mx_account_incref(mx_account *a);
void mx_account_decref(mx_account *a);
/* Returns an owned copy of the token (or NULL) taken under the lock. */
char *mx_account_token_copy(mx_account *a);

/* Zeroes `n` bytes at `p` (may be NULL) in a way the compiler keeps. */
void mx_wipe(void *p, size_t n);
/* Wipes and frees a NUL-terminated secret (a token); NULL is fine. */
void mx_secret_free(char *s);

/* Request lifetime. mx_request_new returns NULL on allocation failure. */
mx_request *mx_request_new(mx_method method, const char *url, mx_kind kind);
/* Frees everything the request owns except py_future (the caller, holding
 * the GIL, must have released it already). */
void mx_request_free(mx_request *r);

/* The parts of the engine sync.c drives (engine thread only). */
/* Attaches a request to the multi handle; 0, or -1 when it could not. */
int mx_engine_start_transfer(mx_request *r);
/* Removes request `r` (running or waiting) and completes it as cancelled. */
void mx_engine_cancel_request(mx_request *r);
/* Hands a finished request to the loop thread. */
void mx_engine_complete(mx_request *r);

/* Starts the engine thread once per process. Returns 0 or -1 (errno set). */
int mx_engine_start(void);
/* The eventfd the asyncio loop watches; -1 before start. */
int mx_engine_wakeup_fd(void);
/* Hands a request to the engine (which owns it from then on). */
void mx_engine_submit(mx_request *r);
/* Asks the engine to cancel request `id` if it is still queued or running. */
void mx_engine_cancel(uint64_t id);
/* Frees `p` with free_fn on the engine thread, so that freeing a large
 * batch never stalls the asyncio loop; inline when the engine is not
 * running. Ownership of `p` passes to the engine. */
void mx_engine_dispose(void (*free_fn)(void *), void *p);
/* Asks the engine to reconsider an account's sync loop (start, stop, ack). */
void mx_engine_poke_account(mx_account *a);
/* Pops every finished request (caller owns them), in completion order. */
mx_request *mx_engine_take_completions(void);
/* Drains the eventfd counter. */
void mx_engine_clear_wakeup(void);
uint64_t mx_engine_next_id(void);

int64_t mx_now_ms(void);

#endif
