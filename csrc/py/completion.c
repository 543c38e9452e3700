/* Completions: finished requests handed to Python on the loop thread, with
 * the GIL (the deliver operation of each request kind, see
 * engine/request.h), and failed requests described as exceptions. */
#include "py/completion.h"

#include <string.h>

#include "engine/media.h"
#include "engine/oneevent.h"
#include "engine/paging.h"
#include "engine/roomstate.h"
#include "engine/sync.h"
#include "py/client.h"
#include "py/event.h"
#include "py/syncbatch.h"
#include "py/historyobj.h"
#include "py/pyjson.h"

static const char *json_str(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int set_attr(PyObject *o, const char *name, PyObject *v) {
    if (!v) return -1;
    int rc = PyObject_SetAttrString(o, name, v);
    Py_DECREF(v);
    return rc;
}

/* Text from a server or from curl as a str: bytes that are not UTF-8
 * (a hostile server, or a cut in the middle of a character) become U+FFFD,
 * so describing an error never fails for its content. */
static PyObject *text(const char *s) {
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Calls exception type `tp` with one message argument. */
static PyObject *exc_with(PyObject *tp, const char *msg) {
    PyObject *m = text(msg);
    if (!m) return NULL;
    PyObject *e = PyObject_CallOneArg(tp, m);
    Py_DECREF(m);
    return e;
}

/* A new exception instance describing a failed request. */
static PyObject *make_error(mx_state *st, mx_request *r) {
    if (r->status == MX_ERR_NOMEM) return exc_with(PyExc_MemoryError, r->errbuf);
    if (r->status == MX_ERR_NETWORK)
        return exc_with(st->NetworkError, r->errbuf[0] ? r->errbuf : "network error");
    if (r->status == MX_ERR_TOO_LARGE) return exc_with(st->TooLargeError, r->errbuf);
    if (r->status == MX_ERR_FILE) return exc_with(PyExc_OSError, r->errbuf);
    const char *errcode = json_str(r->json, "errcode");
    const char *error = json_str(r->json, "error");
    char msg[CURL_ERROR_SIZE + 512];
    if (r->status == MX_ERR_PARSE)
        snprintf(msg, sizeof msg, "HTTP %ld: %s", r->http_status, r->errbuf);
    else
        snprintf(msg, sizeof msg, "HTTP %ld %.100s: %.400s", r->http_status,
                 errcode ? errcode : "(no errcode)", error ? error : "(no message)");
    PyObject *e = exc_with(st->MatrixError, msg);
    if (!e) return NULL;
    const cJSON *soft = cJSON_GetObjectItemCaseSensitive(r->json, "soft_logout");
    if (set_attr(e, "status", PyLong_FromLong(r->http_status)) < 0 ||
        set_attr(e, "errcode", mx_str_or_none(errcode)) < 0 ||
        set_attr(e, "error", mx_str_or_none(error ? error : r->errbuf)) < 0 ||
        set_attr(e, "retry_after_ms",
                 r->retry_after_ms > 0 ? PyLong_FromLong(r->retry_after_ms) : Py_NewRef(Py_None)) < 0 ||
        set_attr(e, "soft_logout", PyBool_FromLong(cJSON_IsTrue(soft))) < 0) {
        Py_DECREF(e);
        return NULL;
    }
    return e;
}

/* The exception being raised, as an instance (cleared); NULL if none. */
static PyObject *take_exception(void) {
    PyObject *type, *val, *tb;
    PyErr_Fetch(&type, &val, &tb);
    PyErr_NormalizeException(&type, &val, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return val;
}

static void call_method(PyObject *fut, const char *name, PyObject *arg) {
    PyObject *res = PyObject_CallMethod(fut, name, "O", arg);
    if (!res)
        PyErr_WriteUnraisable(fut);
    else
        Py_DECREF(res);
}

/* The result of a media download: body (or file), type, name and size. */
static PyObject *media_result(mx_state *st, mx_request *r) {
    (void)st;
    PyObject *data = r->sink ? Py_NewRef(Py_None)
                             : PyBytes_FromStringAndSize(r->response.data ? r->response.data : "",
                                                         (Py_ssize_t)r->response.len);
    PyObject *path = r->sink ? PyUnicode_DecodeFSDefault(r->sink->final_path) : Py_NewRef(Py_None);
    PyObject *res = NULL;
    if (data && path)
        res = Py_BuildValue("{s:N,s:N,s:K,s:O,s:O}", "content_type",
                            mx_str_or_none(r->resp_content_type), "filename",
                            mx_str_or_none(r->resp_filename), "size",
                            (unsigned long long)r->body_seen, "data", data, "path", path);
    Py_XDECREF(data);
    Py_XDECREF(path);
    return res;
}

/* The aggregated history moves into a History object. */
static PyObject *history_result(mx_state *st, mx_request *r) {
    mx_paging *p = mx_paging_of(r);
    mx_history *h = p->history;
    p->history = NULL;
    return mx_History_new(st, h);
}

/* The decoded event of GET /event: a view kept alive by its own batch. */
static PyObject *event_result(mx_state *st, mx_request *r) {
    mx_batch *b = r->batch;
    r->batch = NULL;
    PyObject *owner = mx_SyncBatch_new(st, b);
    if (!owner) return NULL;
    PyObject *ev = mx_Event_new(owner, &b->rooms[0].timeline.events[0]);
    Py_DECREF(owner);
    return ev;
}

/* Resolves r's future: cancelled, with the error, or with what `result`
 * makes of the answer (a failure to make it is handed to the awaiter). */
static void resolve(mx_state *st, mx_request *r, PyObject *(*result)(mx_state *, mx_request *)) {
    PyObject *fut = r->py_future;
    r->py_future = NULL;
    if (!fut) return;
    PyObject *done = PyObject_CallMethod(fut, "done", NULL);
    int is_done = done ? PyObject_IsTrue(done) : 1;
    Py_XDECREF(done);
    if (!done) PyErr_WriteUnraisable(fut);
    if (!is_done) {
        if (r->status == MX_ERR_CANCELLED) {
            PyObject *res = PyObject_CallMethod(fut, "cancel", NULL);
            Py_XDECREF(res);
            if (!res) PyErr_WriteUnraisable(fut);
        } else {
            PyObject *value = r->status != MX_OK ? make_error(st, r) : result(st, r);
            if (!value) {
                PyObject *val = take_exception();
                if (val) {
                    call_method(fut, "set_exception", val);
                    Py_DECREF(val);
                }
            } else {
                call_method(fut, r->status == MX_OK ? "set_result" : "set_exception", value);
                Py_DECREF(value);
            }
        }
    }
    Py_DECREF(fut);
}

static PyObject *json_result(mx_state *st, mx_request *r) {
    (void)st;
    return mx_json_to_py(r->json);
}

static void deliver_json(void *st, mx_request *r) { resolve(st, r, json_result); }
static void deliver_media(void *st, mx_request *r) { resolve(st, r, media_result); }
static void deliver_history(void *st, mx_request *r) { resolve(st, r, history_result); }
static void deliver_event(void *st, mx_request *r) { resolve(st, r, event_result); }

/* Calls one of the client's callbacks. The callable and the client are held
 * for the call: a callback that restarts or stops the sync loop replaces
 * on_batch/on_error, which would otherwise free the callable it runs in. */
static void call_client(mx_ClientObject *c, PyObject *cb, PyObject *arg1, PyObject *arg2) {
    if (!cb) return;
    Py_INCREF(cb);
    Py_INCREF(c);
    PyObject *res = arg2 ? PyObject_CallFunctionObjArgs(cb, arg1, arg2, NULL)
                         : PyObject_CallOneArg(cb, arg1);
    if (!res)
        PyErr_WriteUnraisable((PyObject *)c);
    else
        Py_DECREF(res);
    Py_DECREF(cb);
    Py_DECREF(c);
}

static void deliver_sync(void *state, mx_request *r) {
    mx_state *st = state;
    mx_account *a = r->account;
    mx_ClientObject *c = a->py_client;
    if (!c || r->status == MX_ERR_CANCELLED) return;
    pthread_mutex_lock(&a->lock);
    int current = mx_sync_generation_of(r) == a->sync_generation;
    pthread_mutex_unlock(&a->lock);
    if (!current) return; /* stopped or restarted since this was fetched */
    if (r->status == MX_OK) {
        mx_batch *b = r->batch;
        r->batch = NULL;
        PyObject *batch = mx_SyncBatch_new(st, b);
        if (!batch) {
            PyErr_WriteUnraisable((PyObject *)c);
            return;
        }
        c->unacked++;
        call_client(c, c->on_batch, batch, NULL);
        Py_DECREF(batch);
        return;
    }
    int fatal = mx_sync_error_is_fatal(r);
    /* Describing the error must not lose it: if that fails, the failure
     * itself is what Python gets, fatal or not as the answer was. */
    PyObject *err = make_error(st, r);
    if (!err && !(err = take_exception())) err = PyObject_CallNoArgs(st->MatrixError);
    if (!err) {
        PyErr_WriteUnraisable((PyObject *)c);
        return;
    }
    call_client(c, c->on_error, err, fatal ? Py_True : Py_False);
    Py_DECREF(err);
}

static void deliver_sync_stopped(void *st, mx_request *r) {
    (void)st;
    mx_account *a = r->account;
    pthread_mutex_lock(&a->lock);
    int wanted = a->sync_wanted;
    pthread_mutex_unlock(&a->lock);
    /* Restarted in the meantime: the new loop keeps the reference. */
    if (wanted || !a->py_client) return;
    mx_ClientObject *c = a->py_client;
    a->py_client = NULL;
    Py_CLEAR(c->on_batch);
    Py_CLEAR(c->on_error);
    Py_DECREF(c);
}

void mx_completion_register_kinds(void) {
    mx_kind_json.deliver = deliver_json;
    mx_kind_room_state.deliver = deliver_json;
    mx_kind_media.deliver = deliver_media;
    mx_kind_history.deliver = deliver_history;
    mx_kind_event.deliver = deliver_event;
    mx_kind_sync.deliver = deliver_sync;
    mx_kind_sync_stopped.deliver = deliver_sync_stopped;
}

void mx_completion_deliver(mx_state *st, mx_request *r) {
    if (r->kind->deliver) r->kind->deliver(st, r);
    mx_request_free(r);
}
