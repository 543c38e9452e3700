/* The Client type and the delivery of finished requests to Python. */
#include "py/client.h"

#include <string.h>

#include "py/api.h"
#include "py/event.h"
#include "py/historyobj.h"
#include "engine/paging.h"
#include "py/pyjson.h"
#include "py/roominfo.h"
#include "engine/sync.h"

typedef mx_ClientObject ClientObject;

/* ---- construction -------------------------------------------------------- */

static PyObject *Client_new(PyTypeObject *tp, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"homeserver", "access_token", "insecure", NULL};
    const char *hs, *token = NULL;
    int insecure = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zp:Client", kwlist, &hs, &token, &insecure))
        return NULL;
    if (strncmp(hs, "http://", 7) != 0 && strncmp(hs, "https://", 8) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "the homeserver URL must start with https:// (or http://), not '%s'", hs);
        return NULL;
    }
    if (mx_engine_start() != 0) return PyErr_SetFromErrno(PyExc_OSError);
    ClientObject *self = (ClientObject *)tp->tp_alloc(tp, 0);
    if (!self) return NULL;
    self->account = mx_account_new(hs, token, insecure);
    if (!self->account) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static int Client_traverse(ClientObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->on_batch);
    Py_VISIT(self->on_error);
    return 0;
}

static int Client_clear(ClientObject *self) {
    Py_CLEAR(self->on_batch);
    Py_CLEAR(self->on_error);
    return 0;
}

static void Client_dealloc(ClientObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Client_clear(self);
    if (self->account) {
        /* A running sync loop holds a reference to this object, so we only
         * get here once it has stopped; this just makes sure. */
        pthread_mutex_lock(&self->account->lock);
        self->account->sync_wanted = 0;
        pthread_mutex_unlock(&self->account->lock);
        mx_account_decref(self->account);
    }
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ---- session state ------------------------------------------------------- */

static PyObject *Client_set_token(ClientObject *self, PyObject *arg) {
    const char *token = NULL;
    if (arg != Py_None && !(token = PyUnicode_AsUTF8(arg))) return NULL;
    char *copy = token ? strdup(token) : NULL;
    if (token && !copy) return PyErr_NoMemory();
    pthread_mutex_lock(&self->account->lock);
    mx_secret_free(self->account->token);
    self->account->token = copy;
    pthread_mutex_unlock(&self->account->lock);
    Py_RETURN_NONE;
}

static PyObject *Client_cancel(ClientObject *self, PyObject *arg) {
    (void)self;
    unsigned long long id = PyLong_AsUnsignedLongLong(arg);
    if (id == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    mx_engine_cancel((uint64_t)id);
    Py_RETURN_NONE;
}

static PyObject *Client_start_sync(ClientObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"on_batch", "on_error", "since", "filter", "timeout_ms", NULL};
    PyObject *on_batch, *on_error;
    const char *since = NULL, *filter = NULL;
    long timeout_ms = 30000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|zzl:start_sync", kwlist, &on_batch,
                                     &on_error, &since, &filter, &timeout_ms))
        return NULL;
    if (!PyCallable_Check(on_batch) || !PyCallable_Check(on_error)) {
        PyErr_SetString(PyExc_TypeError, "on_batch and on_error must be callable");
        return NULL;
    }
    if (timeout_ms < 0 || timeout_ms > 600000) {
        PyErr_SetString(PyExc_ValueError, "timeout_ms must be between 0 and 600000");
        return NULL;
    }
    mx_account *a = self->account;
    char *s = since ? strdup(since) : NULL, *f = filter ? strdup(filter) : NULL;
    if ((since && !s) || (filter && !f)) {
        free(s);
        free(f);
        return PyErr_NoMemory();
    }
    Py_XSETREF(self->on_batch, Py_NewRef(on_batch));
    Py_XSETREF(self->on_error, Py_NewRef(on_error));
    pthread_mutex_lock(&a->lock);
    free(a->since);
    free(a->filter);
    a->since = s;
    a->filter = f;
    a->sync_timeout_ms = timeout_ms;
    a->undelivered = 0;
    self->unacked = 0;
    a->sync_wanted = 1;
    a->sync_generation++; /* whatever the previous loop still had in flight is dropped */
    pthread_mutex_unlock(&a->lock);
    /* The running loop keeps this object alive until it reports it stopped. */
    if (!a->py_client) a->py_client = Py_NewRef(self);
    mx_engine_poke_account(a);
    Py_RETURN_NONE;
}

static PyObject *Client_stop_sync(ClientObject *self, PyObject *unused) {
    (void)unused;
    pthread_mutex_lock(&self->account->lock);
    self->account->sync_wanted = 0;
    self->account->sync_generation++; /* no batch is delivered after this */
    self->unacked = 0;
    pthread_mutex_unlock(&self->account->lock);
    mx_engine_poke_account(self->account);
    Py_RETURN_NONE;
}

static PyObject *Client_sync_ack(ClientObject *self, PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
    static const char *const kwlist[] = {"batch", NULL};
    PyObject *batch = Py_None;
    if (nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0) > 1 ||
        (nargs == 1 && kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "sync_ack() takes at most 1 argument");
        return NULL;
    }
    if (nargs == 1) {
        batch = args[0];
    } else if (kwnames && PyTuple_GET_SIZE(kwnames) == 1) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), kwlist[0]) != 0) {
            PyErr_Format(PyExc_TypeError, "sync_ack() got an unexpected keyword argument %R",
                         PyTuple_GET_ITEM(kwnames, 0));
            return NULL;
        }
        batch = args[0];
    }
    mx_account *a = self->account;
    if (batch != Py_None) {
        mx_batch *b = mx_SyncBatch_batch(mx_state_of_type(Py_TYPE(self)), batch);
        if (!b) return NULL;
        pthread_mutex_lock(&a->lock);
        unsigned generation = a->sync_generation;
        pthread_mutex_unlock(&a->lock);
        /* A batch of an earlier loop (before a restart), a batch acknowledged
         * already, or one not from a sync loop: nothing waits for it. */
        if (!b->from_sync_loop || b->acked || b->sync_generation != generation)
            Py_RETURN_NONE;
        b->acked = 1;
    } else if (self->unacked == 0) {
        /* Nothing of the current loop was delivered unacknowledged: this
         * acknowledges a batch of an earlier loop. */
        Py_RETURN_NONE;
    }
    if (self->unacked > 0) self->unacked--;
    pthread_mutex_lock(&a->lock);
    if (a->undelivered > 0) a->undelivered--;
    pthread_mutex_unlock(&a->lock);
    mx_engine_poke_account(a);
    Py_RETURN_NONE;
}

static PyObject *Client_homeserver(ClientObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(self->account->homeserver);
}

static PyObject *Client_syncing(ClientObject *self, void *c) {
    (void)c;
    pthread_mutex_lock(&self->account->lock);
    int w = self->account->sync_wanted;
    pthread_mutex_unlock(&self->account->lock);
    return PyBool_FromLong(w);
}

static PyMethodDef Client_methods[] = {
    MX_CLIENT_API_METHODS,
    {"set_token", (PyCFunction)Client_set_token, METH_O, "Sets or clears the access token."},
    {"cancel", (PyCFunction)Client_cancel, METH_O, "Cancels a request by id."},
    {"start_sync", (PyCFunction)(void (*)(void))Client_start_sync, METH_VARARGS | METH_KEYWORDS,
     "Starts the engine-driven /sync loop."},
    {"stop_sync", (PyCFunction)Client_stop_sync, METH_NOARGS, "Stops the sync loop."},
    {"sync_ack", (PyCFunction)(void (*)(void))Client_sync_ack, METH_FASTCALL | METH_KEYWORDS,
     "sync_ack($self, /, batch=None)\n--\n\n"
     "Tells the engine Python finished one batch, so it may fetch more. With the\n"
     "batch, an acknowledgement of a batch from before a restart is ignored."},
    {NULL, NULL, 0, NULL},
};

static PyObject *Client_rooms(mx_ClientObject *self, void *c) {
    (void)c;
    return mx_RoomCache_wrap(mx_state_of_type(Py_TYPE(self)), self->account->rooms);
}

static PyGetSetDef Client_getset[] = {
    {"homeserver", (getter)Client_homeserver, NULL, NULL, NULL},
    {"syncing", (getter)Client_syncing, NULL, "True while the sync loop should run.", NULL},
    {"rooms", (getter)Client_rooms, NULL,
     "The account's RoomCache, which the engine updates from every batch.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Client_slots[] = {
    {Py_tp_doc, "Client(homeserver, access_token=None, insecure=False): one Matrix account."},
    {Py_tp_new, Client_new},
    {Py_tp_dealloc, Client_dealloc},
    {Py_tp_traverse, Client_traverse},
    {Py_tp_clear, Client_clear},
    {Py_tp_methods, Client_methods},
    {Py_tp_getset, Client_getset},
    {0, NULL},
};

PyType_Spec mx_Client_spec = {
    .name = "matridge._core.Client",
    .basicsize = sizeof(ClientObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Client_slots,
};

/* ---- delivery (loop thread, GIL held) ------------------------------------ */

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
static PyObject *media_result(mx_request *r) {
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
    mx_history *h = r->paging->history;
    r->paging->history = NULL;
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

static void deliver_json(mx_state *st, mx_request *r) {
    PyObject *fut = r->py_future;
    r->py_future = NULL;
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
            PyObject *value = r->status != MX_OK          ? make_error(st, r)
                              : r->kind == MX_KIND_MEDIA   ? media_result(r)
                              : r->kind == MX_KIND_HISTORY ? history_result(st, r)
                              : r->batch                   ? event_result(st, r)
                                                           : mx_json_to_py(r->json);
            if (!value) {
                /* Conversion itself failed: hand that error to the awaiter. */
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

/* Calls one of the client's callbacks. The callable and the client are held
 * for the call: a callback that restarts or stops the sync loop replaces
 * on_batch/on_error, which would otherwise free the callable it runs in. */
static void call_client(ClientObject *c, PyObject *cb, PyObject *arg1, PyObject *arg2) {
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

static void deliver_sync(mx_state *st, mx_request *r) {
    mx_account *a = r->account;
    ClientObject *c = a->py_client;
    if (!c || r->status == MX_ERR_CANCELLED) return;
    pthread_mutex_lock(&a->lock);
    int current = r->sync_generation == a->sync_generation;
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

static void deliver_sync_stopped(mx_request *r) {
    mx_account *a = r->account;
    pthread_mutex_lock(&a->lock);
    int wanted = a->sync_wanted;
    pthread_mutex_unlock(&a->lock);
    /* Restarted in the meantime: the new loop keeps the reference. */
    if (wanted || !a->py_client) return;
    ClientObject *c = a->py_client;
    a->py_client = NULL;
    Py_CLEAR(c->on_batch);
    Py_CLEAR(c->on_error);
    Py_DECREF(c);
}

void mx_client_deliver(mx_state *st, mx_request *r) {
    switch (r->kind) {
    case MX_KIND_JSON:
    case MX_KIND_MEDIA:
    case MX_KIND_HISTORY:
        deliver_json(st, r);
        break;
    case MX_KIND_SYNC:
        deliver_sync(st, r);
        break;
    case MX_KIND_SYNC_STOPPED:
        deliver_sync_stopped(r);
        break;
    }
    mx_request_free(r);
}
