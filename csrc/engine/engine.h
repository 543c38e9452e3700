/* The I/O engine: one thread per process, one libcurl multi handle shared by
 * every Matrix account, driven through libcurl's socket interface and one
 * epoll set (sockets.h), so that a wake-up costs what is ready, not what is
 * open.
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

#include "engine/request.h"
#include "matrix/rooms.h"

/* Batches the engine may hold ready before Python has processed them. */
#define MX_MAX_UNDELIVERED 2

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
    /* owned, may be NULL: the filter of the first sync (no since yet), whose
     * timelines are history the gateway does not show */
    char *initial_filter;
    long sync_timeout_ms;
    int undelivered; /* batches pushed but not acknowledged by Python */

    /* Engine-thread only (sync.c). */
    int sync_registered; /* the engine steps its loop (and holds a reference) */
    int sync_due;        /* on the engine's list of accounts to step next */
    mx_account *due_next;
    mx_deadline sync_wake; /* queued while backing off, until next_sync_ms */
    mx_request *sync_inflight;
    int backoff_ms;
    int64_t next_sync_ms;
    unsigned int jitter_seed;

    void *py_client; /* PyObject *, strong ref while sync runs; GIL only */
    /* The "sync stopped" note, allocated by start_sync so that reporting
     * the end of the loop cannot fail for want of memory (which would keep
     * py_client alive for good). Owned; under the lock. */
    mx_request *stop_note;

    /* Room state, updated by the engine from every batch (sync.c) and read
     * by Python (Client.rooms); it has its own lock. Owned reference. */
    mx_rooms *rooms;
};

mx_account *mx_account_new(const char *homeserver, const char *token, int insecure);
void mx_account_incref(mx_account *a);
void mx_account_decref(mx_account *a);
/* Returns an owned copy of the token (or NULL) taken under the lock. */
char *mx_account_token_copy(mx_account *a);

/* The parts of the engine sync.c drives (engine thread only). */
/* Attaches a request to the multi handle; 0, or -1 when it could not (its
 * easy handle, if any, is then cleaned up). */
int mx_engine_start_transfer(mx_request *r);
/* Removes request `r` (running or waiting) and completes it as cancelled. */
void mx_engine_cancel_request(mx_request *r);
/* Hands a finished request to the loop thread. */
void mx_engine_complete(mx_request *r);
/* Has the engine step a syncing account's loop on its next turn (its
 * request ended); the engine steps no account otherwise, except on a poke
 * or when its backoff ends. */
void mx_engine_wake_account(mx_account *a);

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
