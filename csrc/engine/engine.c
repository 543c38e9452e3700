/* The engine thread: drives every transfer of the process through one libcurl
 * multi handle, parses JSON answers, and steps each account's sync loop
 * (sync.c). What happens to an answer beyond that (decoding, pages, the
 * room cache, retries) is the request kind's (request.h): this file knows
 * no kind. See engine.h for the ownership rules.
 *
 * A turn of the loop does only what something asked for: libcurl is handed
 * the sockets epoll found ready (sockets.c), the inboxes are emptied, the
 * deadlines that came are taken from a heap (deadlines.c), and only the
 * accounts that were poked, whose /sync ended or whose backoff ran out are
 * stepped. Nothing walks every transfer or every account, so ten thousand
 * idle long-polls add nothing to a turn. */
#define _GNU_SOURCE
#include "engine/engine.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "util/jsonparse.h"
#include "engine/deadlines.h"
#include "engine/headers.h"
#include "engine/files.h"
#include "engine/sockets.h"
#include "engine/sync.h"

/* Error bodies are kept in memory whatever the request's cap; this bounds them. */
#define MX_MAX_ERROR_BODY (1024u * 1024u)

typedef struct cancel_item {
    uint64_t id;
    struct cancel_item *next;
} cancel_item;

typedef struct account_item {
    mx_account *account; /* counted reference */
    struct account_item *next;
} account_item;

typedef struct disposal {
    void (*free_fn)(void *);
    void *p; /* owned until free_fn runs on the engine thread */
    struct disposal *next;
} disposal;

/* The one process-wide engine (the only global state of the extension). */
static struct {
    pthread_once_t once;
    int start_error;
    pthread_t thread;
    CURLM *multi;
    int efd; /* completions: the asyncio loop watches it */
    atomic_uint_fast64_t next_id;
    atomic_int running_thread; /* set once the thread exists */

    pthread_mutex_t lock; /* guards the four inboxes and the outbox */
    mx_request *submitted;
    cancel_item *cancels;
    account_item *pokes;
    disposal *disposals;
    mx_request *done_head, *done_tail;

    /* Engine-thread only (sockets.wakefd is written by any thread). */
    mx_sockets sockets;
    mx_deadlines deadlines;  /* requests waiting to start, accounts backing off */
    mx_request *from_python; /* Python's attached requests (prev/next), for cancel by id */
    mx_account *due;         /* accounts to step on the next turn (due_next) */
} E = {.once = PTHREAD_ONCE_INIT,
       .efd = -1,
       .lock = PTHREAD_MUTEX_INITIALIZER,
       .sockets = MX_SOCKETS_INIT};

int64_t mx_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t mx_engine_next_id(void) { return atomic_fetch_add(&E.next_id, 1) + 1; }

/* ---- accounts ---------------------------------------------------------- */

mx_account *mx_account_new(const char *homeserver, const char *token, int insecure) {
    mx_account *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    atomic_init(&a->refs, 1);
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        return NULL;
    }
    a->homeserver = strdup(homeserver);
    a->token = token ? strdup(token) : NULL;
    a->rooms = mx_rooms_new();
    if (!a->homeserver || (token && !a->token) || !a->rooms) {
        free(a->homeserver);
        free(a->token);
        mx_rooms_decref(a->rooms);
        pthread_mutex_destroy(&a->lock);
        free(a);
        return NULL;
    }
    size_t n = strlen(a->homeserver);
    while (n > 0 && a->homeserver[n - 1] == '/') a->homeserver[--n] = '\0';
    a->insecure = insecure;
    a->sync_timeout_ms = 30000;
    a->jitter_seed = (unsigned int)((uintptr_t)a >> 4) ^ (unsigned int)mx_now_ms();
    return a;
}

void mx_account_incref(mx_account *a) { atomic_fetch_add(&a->refs, 1); }

void mx_account_decref(mx_account *a) {
    if (!a || atomic_fetch_sub(&a->refs, 1) != 1) return;
    free(a->homeserver);
    mx_secret_free(a->token);
    mx_request_free(a->stop_note);
    free(a->since);
    free(a->filter);
    free(a->initial_filter);
    mx_rooms_decref(a->rooms);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

char *mx_account_token_copy(mx_account *a) {
    pthread_mutex_lock(&a->lock);
    char *t = a->token ? strdup(a->token) : NULL;
    pthread_mutex_unlock(&a->lock);
    return t;
}

static int is_2xx(long code) { return code >= 200 && code < 300; }

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
    mx_request *r = userdata;
    size_t n = size * nmemb;
    if (n == 0) return 0;
    int ok = is_2xx(r->http_status);
    size_t cap = ok ? r->max_body : MX_MAX_ERROR_BODY;
    if (r->body_seen + n > cap || r->body_seen + n < n) {
        r->status = MX_ERR_TOO_LARGE;
        snprintf(r->verdict, sizeof r->verdict, "the response body is over the %zu-byte limit",
                 cap);
        return 0; /* aborts the transfer */
    }
    r->body_seen += n;
    if (ok && r->sink) {
        if (mx_file_sink_write(r->sink, ptr, n) == 0) return n;
        r->status = MX_ERR_FILE;
        snprintf(r->verdict, sizeof r->verdict, "could not write %s: %s", r->sink->final_path,
                 strerror(errno));
        return 0;
    }
    mx_buf *b = &r->response;
    if (b->len + n + 1 > b->cap) {
        size_t grow = b->cap ? b->cap : 16384;
        while (grow < b->len + n + 1) grow *= 2;
        char *grown = realloc(b->data, grow);
        if (!grown) {
            r->status = MX_ERR_NOMEM;
            snprintf(r->verdict, sizeof r->verdict, "out of memory reading the response");
            return 0;
        }
        b->data = grown;
        b->cap = grow;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* ---- inboxes (any thread) ----------------------------------------------- */

static void wake_engine(void) { mx_sockets_wake(&E.sockets); }

void mx_engine_submit(mx_request *r) {
    pthread_mutex_lock(&E.lock);
    r->next = E.submitted;
    E.submitted = r;
    pthread_mutex_unlock(&E.lock);
    wake_engine();
}

void mx_engine_cancel(uint64_t id) {
    cancel_item *c = malloc(sizeof *c);
    if (!c) return; /* the request then simply completes; harmless */
    c->id = id;
    pthread_mutex_lock(&E.lock);
    c->next = E.cancels;
    E.cancels = c;
    pthread_mutex_unlock(&E.lock);
    wake_engine();
}

void mx_engine_poke_account(mx_account *a) {
    account_item *p = malloc(sizeof *p);
    if (!p) return;
    mx_account_incref(a);
    p->account = a;
    pthread_mutex_lock(&E.lock);
    p->next = E.pokes;
    E.pokes = p;
    pthread_mutex_unlock(&E.lock);
    wake_engine();
}

void mx_engine_dispose(void (*free_fn)(void *), void *p) {
    if (!p) return;
    disposal *d = atomic_load(&E.running_thread) ? malloc(sizeof *d) : NULL;
    if (!d) {
        free_fn(p); /* no engine (or no memory): free it here after all */
        return;
    }
    d->free_fn = free_fn;
    d->p = p;
    pthread_mutex_lock(&E.lock);
    d->next = E.disposals;
    E.disposals = d;
    pthread_mutex_unlock(&E.lock);
    wake_engine();
}

/* ---- outbox -------------------------------------------------------------- */

/* A download's file is renamed into place only when all went well, and
 * removed otherwise, before Python hears about the request. */
static void settle_sink(mx_request *r) {
    if (!r->sink) return;
    if (r->status == MX_OK) {
        if (mx_file_sink_commit(r->sink) != 0) {
            r->status = MX_ERR_FILE;
            snprintf(r->errbuf, sizeof r->errbuf, "could not write %s: %s",
                     r->sink->final_path, strerror(errno));
        }
    } else {
        mx_file_sink_free(r->sink);
        r->sink = NULL;
    }
}

void mx_engine_complete(mx_request *r) {
    /* Only the engine thread touches easy handles: none leaves it. */
    if (r->easy) {
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    settle_sink(r);
    r->next = NULL;
    pthread_mutex_lock(&E.lock);
    if (E.done_tail)
        E.done_tail->next = r;
    else
        E.done_head = r;
    E.done_tail = r;
    pthread_mutex_unlock(&E.lock);
    uint64_t one = 1;
    /* A full counter still leaves the fd readable, so a failed write is fine. */
    ssize_t w = write(E.efd, &one, sizeof one);
    (void)w;
}

mx_request *mx_engine_take_completions(void) {
    pthread_mutex_lock(&E.lock);
    mx_request *head = E.done_head;
    E.done_head = E.done_tail = NULL;
    pthread_mutex_unlock(&E.lock);
    return head;
}

void mx_engine_clear_wakeup(void) {
    uint64_t v;
    while (read(E.efd, &v, sizeof v) > 0) {
    }
}

int mx_engine_wakeup_fd(void) { return E.efd; }

/* ---- engine thread ------------------------------------------------------- */

/* Puts a request's easy handle on the multi handle; Python's requests also
 * go on the list cancel_by_id searches. */
static int attach(mx_request *r) {
    if (curl_multi_add_handle(E.multi, r->easy) != CURLM_OK) return -1;
    r->attached = 1;
    r->prev = NULL;
    r->next = NULL;
    if (r->from_python) {
        r->next = E.from_python;
        if (E.from_python) E.from_python->prev = r;
        E.from_python = r;
    }
    return 0;
}

/* Takes a request's easy handle off the multi handle (it is kept). */
static void detach(mx_request *r) {
    if (!r->attached) return;
    curl_multi_remove_handle(E.multi, r->easy);
    r->attached = 0;
    if (r->from_python) {
        if (r->prev)
            r->prev->next = r->next;
        else
            E.from_python = r->next;
        if (r->next) r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
}

static const char *const method_names[] = {"GET", "POST", "PUT", "DELETE"};

static int add_header(mx_request *r, const char *line) {
    struct curl_slist *hd = curl_slist_append(r->headers, line);
    if (!hd) return -1;
    r->headers = hd;
    return 0;
}

/* Sets the request body: streamed from a file, or from memory. */
static int set_body(mx_request *r, CURL *h) {
    size_t n = strlen(r->content_type ? r->content_type : "application/json") + 16;
    char *line = malloc(n); /* owned here */
    if (!line) return -1;
    snprintf(line, n, "Content-Type: %s", r->content_type ? r->content_type : "application/json");
    int rc = add_header(r, line);
    free(line);
    if (rc != 0) return -1;
    if (r->upload) {
        if (fseeko(r->upload, 0, SEEK_SET) != 0) return -1;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, mx_upload_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r->upload);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, mx_upload_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, r->upload);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, r->upload_size);
        /* No "Expect: 100-continue" round trip. */
        return add_header(r, "Expect:");
    }
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
    return 0;
}

static int start_transfer(mx_request *r);

int mx_engine_start_transfer(mx_request *r) {
    if (start_transfer(r) == 0) return 0;
    if (r->easy) {
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    return -1;
}

static int start_transfer(mx_request *r) {
    if (r->kind->on_start) r->kind->on_start(r);
    r->easy = curl_easy_init();
    if (!r->easy) return -1;
    CURL *h = r->easy;
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, mx_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    mx_sockets_hook_easy(&E.sockets, h);
    if (r->timeout_ms > 0) {
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    } else {
        /* Media of any size: no deadline, but a transfer stalled for a minute fails. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "matridge");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Redirects could carry the token or a password to another host: only
     * plain GETs without a token (server discovery) follow them. */
    if (!r->token && r->method == MX_GET) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (r->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (add_header(r, r->kind->accept ? r->kind->accept : "Accept: application/json") != 0)
        return -1;
    if (r->token) {
        size_t n = strlen(r->token) + 32;
        char *line = malloc(n); /* owned here; wiped before free */
        if (!line) return -1;
        snprintf(line, n, "Authorization: Bearer %s", r->token);
        int rc = add_header(r, line);
        mx_wipe(line, n);
        free(line);
        if (rc != 0) return -1;
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method_names[r->method]);
    if ((r->method == MX_POST || r->method == MX_PUT) && set_body(r, h) != 0) return -1;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
    return attach(r);
}

/* Resets a finished transfer so that it can be sent again after `wait_ms`.
 * Returns 0, or -1 when it cannot be (r->status then says why). */
static int requeue(mx_request *r, long wait_ms) {
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    mx_headers_free(r->headers);
    r->headers = NULL;
    r->response.len = 0;
    r->body_seen = 0;
    cJSON_Delete(r->json);
    r->json = NULL;
    r->errbuf[0] = '\0';
    r->verdict[0] = '\0';
    if (r->sink && mx_file_sink_reset(r->sink) != 0) {
        r->status = MX_ERR_FILE;
        snprintf(r->errbuf, sizeof r->errbuf, "could not write %s: %s", r->sink->final_path,
                 strerror(errno));
        return -1;
    }
    r->status = MX_OK;
    r->http_status = 0;
    r->not_before_ms = mx_now_ms() + wait_ms;
    if (mx_deadlines_set(&E.deadlines, &r->wait, r->not_before_ms) != 0) {
        r->status = MX_ERR_NOMEM;
        snprintf(r->errbuf, sizeof r->errbuf, "out of memory queueing the request again");
        return -1;
    }
    return 0;
}

static long json_long(const cJSON *obj, const char *key, long dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9 ? (long)v->valuedouble
                                                                            : dflt;
}

/* An error body that is not JSON (a proxy's HTML page...): keep its start,
 * printable characters only, as the error text. */
static void describe_raw_error(mx_request *r) {
    size_t o = 0;
    for (size_t i = 0; i < r->response.len && o + 1 < 200; i++) {
        unsigned char c = (unsigned char)r->response.data[i];
        r->errbuf[o++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    r->errbuf[o] = '\0';
}

/* A finished transfer: the generic part (status, JSON parsing, errors),
 * then the request's kind decides what follows (kinds in request.h). */
static void finish(mx_request *r) {
    const mx_request_kind *k = r->kind;
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    r->http_status = code;
    detach(r);
    int keep_raw = k->raw_body && is_2xx(code);
    if (r->status == MX_OK && r->response.len > 0 && !keep_raw)
        r->json = mx_json_parse(r->response.data, r->response.len);
    long again = MX_DONE;
    if (r->status == MX_OK && !is_2xx(code)) {
        r->status = MX_ERR_HTTP;
        if (!r->json) describe_raw_error(r);
        long from_body = json_long(r->json, "retry_after_ms", 0);
        if (from_body > 0) r->retry_after_ms = from_body; /* else the Retry-After header's */
        again = k->on_error ? k->on_error(r) : mx_request_retry_default(r);
    } else if (r->status == MX_OK && !keep_raw && !r->json) {
        r->status = MX_ERR_PARSE;
        snprintf(r->errbuf, sizeof r->errbuf, "the server's answer is not JSON");
    }
    if (!keep_raw || r->status != MX_OK) {
        /* Parsed (or failed): the raw bytes are no longer needed. */
        free(r->response.data);
        r->response.data = NULL;
        r->response.len = r->response.cap = 0;
    }
    if (r->status == MX_OK && k->on_body) again = k->on_body(r);
    if (again != MX_DONE && requeue(r, again) == 0) return;
    if (k->finished)
        k->finished(r);
    else
        mx_engine_complete(r);
}

void mx_engine_cancel_request(mx_request *r) {
    if (r->attached)
        detach(r);
    else
        mx_deadlines_clear(&E.deadlines, &r->wait);
    r->status = MX_ERR_CANCELLED;
    mx_engine_complete(r);
}

static mx_request *request_of(mx_deadline *d) {
    return (mx_request *)((char *)d - offsetof(mx_request, wait));
}

static mx_account *account_of(mx_deadline *d) {
    return (mx_account *)((char *)d - offsetof(mx_account, sync_wake));
}

/* Only Python's requests have ids Python knows: those attached (their own
 * list) and those waiting on a deadline (the heap, which also holds the
 * accounts backing off). Idle accounts' long-polls are the engine's own
 * requests and are in neither. */
static void cancel_by_id(uint64_t id) {
    mx_request *found = NULL;
    for (mx_request *r = E.from_python; r && !found; r = r->next)
        if (r->id == id) found = r;
    for (size_t i = 0; i < E.deadlines.len && !found; i++) {
        mx_deadline *d = E.deadlines.items[i];
        if (d->owner == MX_DEADLINE_REQUEST && request_of(d)->id == id) found = request_of(d);
    }
    if (!found) return;
    if (found->kind->on_cancel) found->kind->on_cancel(found);
    mx_engine_cancel_request(found);
}

void mx_engine_wake_account(mx_account *a) {
    if (!a->sync_registered || a->sync_due) return;
    a->sync_due = 1;
    a->due_next = E.due;
    E.due = a;
}

/* Starts a request now, or queues it until its not_before_ms. */
static void schedule(mx_request *r, int64_t now) {
    r->wait.owner = MX_DEADLINE_REQUEST;
    if (r->not_before_ms > now) {
        if (mx_deadlines_set(&E.deadlines, &r->wait, r->not_before_ms) == 0) return;
    } else if (mx_engine_start_transfer(r) == 0) {
        return;
    }
    r->status = MX_ERR_NOMEM;
    snprintf(r->errbuf, sizeof r->errbuf, "could not set up the transfer");
    mx_engine_complete(r);
}

/* Steps the accounts that asked for it, then has the engine wake each again
 * when its backoff ends (if it is backing off). */
static void step_due_accounts(void) {
    mx_account *due = E.due;
    E.due = NULL; /* accounts woken while stepping go to the next turn */
    int64_t now = mx_now_ms();
    while (due) {
        mx_account *a = due;
        due = a->due_next;
        a->due_next = NULL;
        a->sync_due = 0;
        if (mx_sync_step(a, now)) {
            mx_deadlines_clear(&E.deadlines, &a->sync_wake);
            a->sync_registered = 0;
            mx_account_decref(a); /* the engine's reference */
            continue;
        }
        int64_t at = mx_sync_wake_at(a);
        if (at == INT64_MAX) {
            mx_deadlines_clear(&E.deadlines, &a->sync_wake);
        } else if (mx_deadlines_set(&E.deadlines, &a->sync_wake, at) != 0) {
            mx_engine_wake_account(a); /* out of memory: look again next turn */
        }
    }
}

/* Takes the deadlines that have come: requests start, accounts are stepped. */
static void take_due_deadlines(void) {
    int64_t now = mx_now_ms();
    mx_deadline *d;
    while ((d = mx_deadlines_pop_due(&E.deadlines, now))) {
        if (d->owner == MX_DEADLINE_ACCOUNT)
            mx_engine_wake_account(account_of(d));
        else
            schedule(request_of(d), now);
    }
}

static void take_inboxes(void) {
    pthread_mutex_lock(&E.lock);
    mx_request *sub = E.submitted;
    cancel_item *cancels = E.cancels;
    account_item *pokes = E.pokes;
    disposal *disposals = E.disposals;
    E.submitted = NULL;
    E.cancels = NULL;
    E.pokes = NULL;
    E.disposals = NULL;
    pthread_mutex_unlock(&E.lock);

    while (disposals) {
        disposal *d = disposals;
        disposals = d->next;
        d->free_fn(d->p);
        free(d);
    }
    /* The inbox is a stack: reversed, requests start in submission order. */
    mx_request *in_order = NULL;
    while (sub) {
        mx_request *r = sub;
        sub = sub->next;
        r->next = in_order;
        in_order = r;
    }
    int64_t now = mx_now_ms();
    while (in_order) {
        mx_request *r = in_order;
        in_order = in_order->next;
        r->next = NULL;
        r->from_python = 1;
        schedule(r, now);
    }
    while (cancels) {
        cancel_item *c = cancels;
        cancels = c->next;
        cancel_by_id(c->id);
        free(c);
    }
    while (pokes) {
        account_item *p = pokes;
        pokes = p->next;
        mx_account *a = p->account;
        free(p);
        pthread_mutex_lock(&a->lock);
        int wanted = a->sync_wanted;
        pthread_mutex_unlock(&a->lock);
        if (wanted && !a->sync_registered) {
            a->sync_registered = 1; /* the poke's reference becomes the engine's */
            a->sync_wake.owner = MX_DEADLINE_ACCOUNT;
            mx_engine_wake_account(a);
            continue;
        }
        if (a->sync_registered) {
            mx_engine_wake_account(a); /* started again, stopped or acknowledged */
        } else {
            /* Stopped before the engine ever saw it start (start_sync then
             * stop_sync between two turns): the loop never ran, but Python
             * holds references for it that only SYNC_STOPPED releases. */
            mx_sync_report_stopped(a);
        }
        mx_account_decref(a);
    }
}

/* Hands every transfer libcurl has finished to finish(). */
static void take_finished(void) {
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(E.multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        mx_request *r = NULL;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        /* Our own callbacks' verdicts (too large, file error) win over curl's. */
        if (r->status != MX_OK && r->verdict[0]) {
            snprintf(r->errbuf, sizeof r->errbuf, "%s", r->verdict);
        } else if (rc != CURLE_OK && r->status == MX_OK) {
            r->status = MX_ERR_NETWORK;
            if (!r->errbuf[0]) snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(rc));
        }
        finish(r); /* detaches it: msg is not used after this */
    }
}

static void *engine_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "mx-engine"); /* for bench/ and debuggers */
    for (;;) {
        take_inboxes();
        take_due_deadlines();
        step_due_accounts();
        /* Accounts woken while stepping (out of memory) want another turn now. */
        int64_t until = E.due ? 0 : mx_deadlines_next(&E.deadlines);
        mx_sockets_wait(&E.sockets, until);
        take_finished();
    }
    return NULL;
}

static void engine_init_once(void) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        E.start_error = EIO;
        return;
    }
    E.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (E.efd < 0) {
        E.start_error = errno;
        return;
    }
    E.multi = curl_multi_init();
    if (!E.multi) {
        E.start_error = ENOMEM;
        return;
    }
    if (mx_sockets_open(&E.sockets, E.multi) != 0) {
        E.start_error = errno;
        return;
    }
    int rc = pthread_create(&E.thread, NULL, engine_main, NULL);
    if (rc != 0) {
        E.start_error = rc;
        return;
    }
    pthread_detach(E.thread);
    atomic_store(&E.running_thread, 1);
}

int mx_engine_start(void) {
    pthread_once(&E.once, engine_init_once);
    if (E.start_error) {
        errno = E.start_error;
        return -1;
    }
    return 0;
}
