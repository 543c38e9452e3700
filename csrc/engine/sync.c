/* The per-account /sync state machine (see sync.h). Engine thread only,
 * except where a field is read under the account's lock. */
#define _GNU_SOURCE
#include "engine/sync.h"

#include <stdlib.h>
#include <string.h>

#include "matrix/decode.h"
#include "matrix/url.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 60000

int mx_sync_error_is_fatal(const mx_request *r) {
    if (r->status != MX_OK && r->status != MX_ERR_HTTP) return 0;
    if (r->http_status == 401 || r->http_status == 403) return 1;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(r->json, "errcode");
    return cJSON_IsString(code) && strcmp(code->valuestring, "M_UNKNOWN_TOKEN") == 0;
}

/* Exponential backoff with jitter: 1 s doubling up to 60 s, each wait drawn
 * from [backoff/2, backoff] so that many accounts do not retry in step. */
static void back_off(mx_account *a, int64_t now) {
    a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (a->backoff_ms > BACKOFF_MAX_MS) a->backoff_ms = BACKOFF_MAX_MS;
    int jitter = (int)(rand_r(&a->jitter_seed) % (unsigned)(a->backoff_ms / 2 + 1));
    a->next_sync_ms = now + a->backoff_ms / 2 + jitter;
}

/* The one place a freshly decoded batch passes through on the engine thread,
 * before Python sees it: per-account caches (room state) are updated here. */
static void on_batch_decoded(mx_account *a, const mx_batch *batch) {
    /* On ENOMEM what was applied stays applied; the next batch (or a full
     * state load) brings the rest. */
    mx_rooms_apply_sync(a->rooms, batch->root);
}

static mx_request *make_sync_request(mx_account *a) {
    pthread_mutex_lock(&a->lock);
    char timeout[24];
    snprintf(timeout, sizeof timeout, "%ld", a->sync_timeout_ms);
    const char *filter = !a->since && a->initial_filter ? a->initial_filter : a->filter;
    const mx_query query[] = {
        {"timeout", timeout}, {"since", a->since}, {"filter", filter}, {NULL, NULL}};
    /* Owned by the request from mx_request_new on. */
    char *url = mx_url_build(a->homeserver, "/_matrix/client/v3/sync", NULL, query);
    char *token = a->token ? strdup(a->token) : NULL;
    mx_request *r = NULL;
    if (url && (token || !a->token)) r = mx_request_new(MX_GET, url, &mx_kind_sync);
    if (r) {
        r->token = token;
        token = NULL;
        r->insecure = a->insecure;
        r->timeout_ms = a->sync_timeout_ms + 30000;
        r->kind_data = (void *)(uintptr_t)a->sync_generation;
        mx_account_incref(a);
        r->account = a;
    }
    pthread_mutex_unlock(&a->lock);
    free(url);
    mx_secret_free(token);
    return r;
}

unsigned mx_sync_generation_of(const mx_request *r) {
    return (unsigned)(uintptr_t)r->kind_data;
}

void mx_sync_report_stopped(mx_account *a) {
    pthread_mutex_lock(&a->lock);
    mx_request *r = a->stop_note; /* owned here from now on */
    a->stop_note = NULL;
    pthread_mutex_unlock(&a->lock);
    /* Used already (the loop was reported stopped before, which is what
     * counts): a fresh note, best effort. */
    if (!r && !(r = mx_request_new(MX_GET, NULL, &mx_kind_sync_stopped))) return;
    mx_account_incref(a);
    r->account = a;
    mx_engine_complete(r);
}

int mx_sync_prepare_stop_note(mx_account *a) {
    pthread_mutex_lock(&a->lock);
    int have = a->stop_note != NULL;
    pthread_mutex_unlock(&a->lock);
    if (have) return 0;
    mx_request *r = mx_request_new(MX_GET, NULL, &mx_kind_sync_stopped);
    if (!r) return -1;
    pthread_mutex_lock(&a->lock);
    if (!a->stop_note) {
        a->stop_note = r;
        r = NULL;
    }
    pthread_mutex_unlock(&a->lock);
    mx_request_free(r); /* another thread prepared one meanwhile */
    return 0;
}

int mx_sync_step(mx_account *a, int64_t now) {
    pthread_mutex_lock(&a->lock);
    int wanted = a->sync_wanted, undelivered = a->undelivered;
    unsigned generation = a->sync_generation;
    pthread_mutex_unlock(&a->lock);
    mx_request *inflight = a->sync_inflight;
    if (!wanted) {
        if (inflight) mx_engine_cancel_request(inflight);
        a->sync_inflight = NULL;
        mx_sync_report_stopped(a);
        return 1;
    }
    if (inflight && mx_sync_generation_of(inflight) != generation) {
        /* Restarted with a new since/filter: the old long-poll is stale. */
        mx_engine_cancel_request(inflight);
        a->sync_inflight = inflight = NULL;
        a->backoff_ms = 0;
        a->next_sync_ms = 0;
    }
    if (inflight || undelivered >= MX_MAX_UNDELIVERED || now < a->next_sync_ms) return 0;
    mx_request *r = make_sync_request(a);
    if (!r) {
        back_off(a, now);
    } else if (mx_engine_start_transfer(r) != 0) {
        mx_request_free(r);
        back_off(a, now);
    } else {
        a->sync_inflight = r;
    }
    return 0;
}

int64_t mx_sync_wake_at(mx_account *a) {
    if (a->sync_inflight) return INT64_MAX;
    pthread_mutex_lock(&a->lock);
    int held = a->undelivered >= MX_MAX_UNDELIVERED;
    pthread_mutex_unlock(&a->lock);
    /* Held: Python's sync_ack pokes the engine; no deadline to keep. */
    return held ? INT64_MAX : a->next_sync_ms;
}

/* Decodes a 2xx body and records the new token. 0, or -1 with r->status set. */
static int accept_batch(mx_request *r) {
    mx_account *a = r->account;
    mx_batch *batch = NULL;
    const char *reason = NULL;
    int rc = mx_decode_sync_body(r->response.data, r->response.len, &batch, &reason);
    free(r->response.data); /* parsed (or unusable): the raw bytes go */
    r->response.data = NULL;
    r->response.len = r->response.cap = 0;
    if (rc != 0) {
        r->status = MX_ERR_PARSE;
        snprintf(r->errbuf, sizeof r->errbuf, "unusable /sync response: %s", reason);
        return -1;
    }
    r->batch = batch;
    batch->sync_generation = mx_sync_generation_of(r);
    batch->from_sync_loop = 1;
    char *since = strdup(mx_batch_next_token(batch)); /* owned by the account */
    if (!since) {
        r->status = MX_ERR_NOMEM;
        snprintf(r->errbuf, sizeof r->errbuf, "out of memory keeping the sync token");
        return -1;
    }
    pthread_mutex_lock(&a->lock);
    int current = mx_sync_generation_of(r) == a->sync_generation;
    if (current) {
        free(a->since);
        a->since = since;
        since = NULL;
        a->undelivered++;
    }
    pthread_mutex_unlock(&a->lock);
    free(since);
    if (!current) {
        r->status = MX_ERR_CANCELLED;
        return -1;
    }
    on_batch_decoded(a, batch);
    return 0;
}

static void sync_finished(mx_request *r) {
    mx_account *a = r->account;
    if (a->sync_inflight == r) a->sync_inflight = NULL;
    int64_t now = mx_now_ms();
    if (r->status == MX_OK && accept_batch(r) == 0) {
        a->backoff_ms = 0;
        a->next_sync_ms = 0;
    } else if (mx_sync_error_is_fatal(r)) {
        /* The token is gone: stop, and let Python tell the user. */
        pthread_mutex_lock(&a->lock);
        if (mx_sync_generation_of(r) == a->sync_generation) a->sync_wanted = 0;
        pthread_mutex_unlock(&a->lock);
    } else if (r->status == MX_ERR_HTTP && r->http_status == 429 && r->retry_after_ms > 0) {
        a->next_sync_ms = now + (r->retry_after_ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                                     : r->retry_after_ms);
    } else if (r->status != MX_ERR_CANCELLED) {
        /* Network errors, timeouts, 5xx, unusable bodies: resume from the
         * same token after a while. */
        back_off(a, now);
    }
    /* Errors are reported too (Python shows status), but only fatal ones end the loop. */
    /* Before r goes: its reference may be what keeps the account alive. */
    mx_engine_wake_account(a); /* the next /sync, a backoff, or the end */
    mx_engine_complete(r);
}

/* Non-2xx answers are the loop's to judge (sync_finished): no retry here. */
static long no_retry(mx_request *r) {
    (void)r;
    return MX_DONE;
}

/* A cancelled long-poll is no longer the account's request in flight. */
static void on_cancel(mx_request *r) {
    if (r->account->sync_inflight == r) r->account->sync_inflight = NULL;
}

mx_request_kind mx_kind_sync = {
    .name = "sync",
    .raw_body = 1, /* parsed into the batch's arena by the decoder */
    .on_error = no_retry,
    .on_cancel = on_cancel,
    .finished = sync_finished,
};

mx_request_kind mx_kind_sync_stopped = {.name = "sync stopped"};
