/* The engine thread: drives every transfer of the process through one libcurl
 * multi handle, parses and decodes responses, and runs each account's sync
 * loop. See engine.h for the ownership rules. */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"

typedef struct cancel_item {
    uint64_t id;
    struct cancel_item *next;
} cancel_item;

typedef struct account_item {
    mx_account *account; /* counted reference */
    struct account_item *next;
} account_item;

/* The one process-wide engine (the only global state of the extension). */
static struct {
    pthread_once_t once;
    int start_error;
    pthread_t thread;
    CURLM *multi;
    int efd;
    atomic_uint_fast64_t next_id;

    pthread_mutex_t lock; /* guards the three inboxes and the outbox */
    mx_request *submitted;
    cancel_item *cancels;
    account_item *pokes;
    mx_request *done_head, *done_tail;

    /* Engine-thread only. */
    mx_request *waiting; /* queued or delayed, not yet started */
    mx_request *running; /* attached to the multi handle */
    account_item *syncing;
    unsigned int seed;
} E = {.once = PTHREAD_ONCE_INIT, .efd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

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
    if (!a->homeserver || (token && !a->token)) {
        free(a->homeserver);
        free(a->token);
        pthread_mutex_destroy(&a->lock);
        free(a);
        return NULL;
    }
    size_t n = strlen(a->homeserver);
    while (n > 0 && a->homeserver[n - 1] == '/') a->homeserver[--n] = '\0';
    a->insecure = insecure;
    a->sync_timeout_ms = 30000;
    return a;
}

void mx_account_incref(mx_account *a) { atomic_fetch_add(&a->refs, 1); }

void mx_account_decref(mx_account *a) {
    if (!a || atomic_fetch_sub(&a->refs, 1) != 1) return;
    free(a->homeserver);
    free(a->token);
    free(a->since);
    free(a->filter);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

char *mx_account_token_copy(mx_account *a) {
    pthread_mutex_lock(&a->lock);
    char *t = a->token ? strdup(a->token) : NULL;
    pthread_mutex_unlock(&a->lock);
    return t;
}

/* ---- requests ---------------------------------------------------------- */

mx_request *mx_request_new(mx_method method, const char *url, mx_kind kind) {
    mx_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (url && !(r->url = strdup(url))) {
        free(r);
        return NULL;
    }
    r->id = mx_engine_next_id();
    r->method = method;
    r->kind = kind;
    r->timeout_ms = 60000;
    return r;
}

void mx_request_free(mx_request *r) {
    if (!r) return;
    if (r->easy) curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->url);
    free(r->body);
    if (r->token) {
        /* Do not leave credentials lying around in freed memory. */
        memset(r->token, 0, strlen(r->token));
        free(r->token);
    }
    free(r->response.data);
    cJSON_Delete(r->json);
    mx_batch_free(r->batch);
    mx_account_decref(r->account);
    free(r);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    mx_request *r = userdata;
    mx_buf *b = &r->response;
    size_t n = size * nmemb;
    if (n == 0) return 0;
    if (b->len + n + 1 > MX_MAX_RESPONSE) return 0; /* aborts the transfer */
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* ---- inboxes (any thread) ----------------------------------------------- */

static void wake_engine(void) {
    if (E.multi) curl_multi_wakeup(E.multi);
}

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

/* ---- outbox -------------------------------------------------------------- */

static void complete(mx_request *r) {
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

static void list_remove(mx_request **head, mx_request *r) {
    for (mx_request **p = head; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            r->next = NULL;
            return;
        }
    }
}

static int start_transfer(mx_request *r) {
    r->easy = curl_easy_init();
    if (!r->easy) return -1;
    CURL *h = r->easy;
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "matridge");
    /* Redirects are not followed: they could carry the token to another host. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (r->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    struct curl_slist *hd = curl_slist_append(NULL, "Accept: application/json");
    if (!hd) return -1;
    r->headers = hd;
    if (r->token) {
        size_t n = strlen(r->token) + 32;
        char *line = malloc(n);
        if (!line) return -1;
        snprintf(line, n, "Authorization: Bearer %s", r->token);
        hd = curl_slist_append(r->headers, line);
        memset(line, 0, n);
        free(line);
        if (!hd) return -1;
        r->headers = hd;
    }
    if (r->method != MX_GET) {
        hd = curl_slist_append(r->headers, "Content-Type: application/json");
        if (!hd) return -1;
        r->headers = hd;
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method == MX_PUT ? "PUT" : "POST");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers);
    if (curl_multi_add_handle(E.multi, h) != CURLM_OK) return -1;
    r->next = E.running;
    E.running = r;
    return 0;
}

/* Resets a request so that it can be sent again (429 retry). */
static void reset_for_retry(mx_request *r) {
    curl_multi_remove_handle(E.multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->response.len = 0;
    cJSON_Delete(r->json);
    r->json = NULL;
    r->errbuf[0] = '\0';
}

static long json_long(const cJSON *obj, const char *key, long dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

static void schedule_sync_retry(mx_account *a) {
    /* Exponential backoff with jitter, 1 s doubling up to 60 s. */
    a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : 1000;
    if (a->backoff_ms > 60000) a->backoff_ms = 60000;
    int jitter = (int)(rand_r(&E.seed) % (unsigned)(a->backoff_ms / 2 + 1));
    a->next_sync_ms = mx_now_ms() + a->backoff_ms / 2 + jitter;
}

static void finish_sync(mx_request *r) {
    mx_account *a = r->account;
    a->sync_inflight = NULL;
    if (r->status == MX_OK) {
        mx_batch *batch = NULL;
        const char *reason = NULL;
        if (mx_decode_sync(r->json, &batch, &reason) == 0) {
            r->json = NULL; /* the batch owns the tree now */
            r->batch = batch;
            pthread_mutex_lock(&a->lock);
            char *since = strdup(mx_batch_next_token(batch));
            if (since) {
                free(a->since);
                a->since = since;
            }
            a->undelivered++;
            pthread_mutex_unlock(&a->lock);
            a->backoff_ms = 0;
            a->next_sync_ms = 0;
            complete(r);
            return;
        }
        r->status = MX_ERR_PARSE;
        snprintf(r->errbuf, sizeof r->errbuf, "unusable /sync response: %s", reason);
    }
    int fatal = r->status == MX_ERR_HTTP && (r->http_status == 401 || r->http_status == 403);
    if (fatal) {
        /* The token is gone: stop, and let Python tell the user. */
        pthread_mutex_lock(&a->lock);
        a->sync_wanted = 0;
        pthread_mutex_unlock(&a->lock);
        complete(r);
        return;
    }
    if (r->status == MX_ERR_HTTP && r->http_status == 429 && r->retry_after_ms > 0) {
        a->next_sync_ms = mx_now_ms() + r->retry_after_ms;
    } else {
        schedule_sync_retry(a);
    }
    /* Transient errors are reported too (for status), but the loop goes on. */
    complete(r);
}

static void finish(mx_request *r) {
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    r->http_status = code;
    if (r->status == MX_OK && r->response.len > 0) {
        r->json = cJSON_ParseWithLength(r->response.data, r->response.len);
    }
    if (r->status == MX_OK && (code < 200 || code >= 300)) {
        r->status = MX_ERR_HTTP;
        r->retry_after_ms = json_long(r->json, "retry_after_ms", 0);
        if (code == 429 && r->kind == MX_KIND_JSON &&
            r->attempts < MX_MAX_RATE_LIMIT_RETRIES) {
            long wait = r->retry_after_ms > 0 ? r->retry_after_ms : 1000L << r->attempts;
            if (wait > 60000) wait = 60000;
            r->attempts++;
            reset_for_retry(r);
            r->status = MX_OK;
            r->not_before_ms = mx_now_ms() + wait;
            r->next = E.waiting;
            E.waiting = r;
            return;
        }
    } else if (r->status == MX_OK && !r->json) {
        r->status = MX_ERR_PARSE;
        snprintf(r->errbuf, sizeof r->errbuf, "the server's answer is not JSON");
    }
    /* The body is parsed; the raw bytes are no longer needed. */
    free(r->response.data);
    r->response.data = NULL;
    r->response.len = r->response.cap = 0;
    if (r->kind == MX_KIND_SYNC)
        finish_sync(r);
    else
        complete(r);
}

static void cancel_one(uint64_t id) {
    for (mx_request *r = E.running; r; r = r->next) {
        if (r->id == id) {
            curl_multi_remove_handle(E.multi, r->easy);
            list_remove(&E.running, r);
            r->status = MX_ERR_CANCELLED;
            if (r->kind == MX_KIND_SYNC) r->account->sync_inflight = NULL;
            complete(r);
            return;
        }
    }
    for (mx_request *r = E.waiting; r; r = r->next) {
        if (r->id == id) {
            list_remove(&E.waiting, r);
            r->status = MX_ERR_CANCELLED;
            complete(r);
            return;
        }
    }
}

static mx_request *make_sync_request(mx_account *a) {
    pthread_mutex_lock(&a->lock);
    size_t n = strlen(a->homeserver) + 160 + (a->since ? strlen(a->since) * 3 : 0) +
               (a->filter ? strlen(a->filter) * 3 : 0);
    char *url = malloc(n);
    char *token = a->token ? strdup(a->token) : NULL;
    mx_request *r = NULL;
    if (url && (token || !a->token)) {
        int w = snprintf(url, n, "%s/_matrix/client/v3/sync?timeout=%ld", a->homeserver,
                         a->sync_timeout_ms);
        char *esc;
        if (a->since && (esc = curl_easy_escape(NULL, a->since, 0))) {
            w += snprintf(url + w, n - (size_t)w, "&since=%s", esc);
            curl_free(esc);
        }
        if (a->filter && (esc = curl_easy_escape(NULL, a->filter, 0))) {
            snprintf(url + w, n - (size_t)w, "&filter=%s", esc);
            curl_free(esc);
        }
        r = mx_request_new(MX_GET, url, MX_KIND_SYNC);
    }
    if (r) {
        r->token = token;
        token = NULL;
        r->insecure = a->insecure;
        r->timeout_ms = a->sync_timeout_ms + 30000;
        mx_account_incref(a);
        r->account = a;
    }
    pthread_mutex_unlock(&a->lock);
    free(url);
    free(token);
    return r;
}

static void push_sync_stopped(mx_account *a) {
    mx_request *r = mx_request_new(MX_GET, NULL, MX_KIND_SYNC_STOPPED);
    if (!r) return; /* py_client then leaks one reference; no crash */
    mx_account_incref(a);
    r->account = a;
    complete(r);
}

static void drive_sync_loops(void) {
    int64_t now = mx_now_ms();
    for (account_item **p = &E.syncing; *p;) {
        mx_account *a = (*p)->account;
        pthread_mutex_lock(&a->lock);
        int wanted = a->sync_wanted, undelivered = a->undelivered;
        pthread_mutex_unlock(&a->lock);
        if (!wanted) {
            if (a->sync_inflight) cancel_one(a->sync_inflight->id);
            account_item *gone = *p;
            *p = gone->next;
            a->sync_registered = 0;
            push_sync_stopped(a);
            mx_account_decref(a);
            free(gone);
            continue;
        }
        if (!a->sync_inflight && undelivered < MX_MAX_UNDELIVERED && now >= a->next_sync_ms) {
            mx_request *r = make_sync_request(a);
            if (!r) {
                schedule_sync_retry(a);
            } else if (start_transfer(r) != 0) {
                mx_request_free(r);
                schedule_sync_retry(a);
            } else {
                a->sync_inflight = r;
            }
        }
        p = &(*p)->next;
    }
}

static long next_deadline_wait(void) {
    int64_t now = mx_now_ms(), best = now + 1000;
    for (mx_request *r = E.waiting; r; r = r->next)
        if (r->not_before_ms < best) best = r->not_before_ms;
    for (account_item *it = E.syncing; it; it = it->next)
        if (!it->account->sync_inflight && it->account->next_sync_ms < best)
            best = it->account->next_sync_ms;
    long wait = (long)(best - now);
    return wait < 0 ? 0 : wait;
}

static void take_inboxes(void) {
    pthread_mutex_lock(&E.lock);
    mx_request *sub = E.submitted;
    cancel_item *cancels = E.cancels;
    account_item *pokes = E.pokes;
    E.submitted = NULL;
    E.cancels = NULL;
    E.pokes = NULL;
    pthread_mutex_unlock(&E.lock);

    while (sub) {
        mx_request *r = sub;
        sub = sub->next;
        r->next = E.waiting;
        E.waiting = r;
    }
    while (cancels) {
        cancel_item *c = cancels;
        cancels = c->next;
        cancel_one(c->id);
        free(c);
    }
    while (pokes) {
        account_item *p = pokes;
        pokes = p->next;
        pthread_mutex_lock(&p->account->lock);
        int wanted = p->account->sync_wanted;
        pthread_mutex_unlock(&p->account->lock);
        if (wanted && !p->account->sync_registered) {
            p->account->sync_registered = 1;
            p->next = E.syncing; /* the poke's reference becomes the list's */
            E.syncing = p;
        } else {
            mx_account_decref(p->account);
            free(p);
        }
    }
}

static void start_due(void) {
    int64_t now = mx_now_ms();
    for (mx_request **p = &E.waiting; *p;) {
        mx_request *r = *p;
        if (r->not_before_ms > now) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        if (start_transfer(r) != 0) {
            r->status = MX_ERR_NOMEM;
            snprintf(r->errbuf, sizeof r->errbuf, "could not set up the transfer");
            complete(r);
        }
    }
}

static void *engine_main(void *arg) {
    (void)arg;
    for (;;) {
        take_inboxes();
        drive_sync_loops();
        start_due();
        int still = 0;
        curl_multi_perform(E.multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(E.multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            mx_request *r = NULL;
            CURLcode rc = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            curl_multi_remove_handle(E.multi, msg->easy_handle);
            list_remove(&E.running, r);
            if (rc != CURLE_OK) {
                r->status = MX_ERR_NETWORK;
                if (!r->errbuf[0])
                    snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(rc));
            }
            finish(r);
        }
        curl_multi_poll(E.multi, NULL, 0, (int)next_deadline_wait(), NULL);
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
    E.seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();
    int rc = pthread_create(&E.thread, NULL, engine_main, NULL);
    if (rc != 0) {
        E.start_error = rc;
        return;
    }
    pthread_detach(E.thread);
}

int mx_engine_start(void) {
    pthread_once(&E.once, engine_init_once);
    if (E.start_error) {
        errno = E.start_error;
        return -1;
    }
    return 0;
}
