/* The Client type: construction, the sync loop's controls, the room cache
 * (its API calls are in api.c, the delivery of their results in
 * completion.c). */
#include "py/client.h"

#include <string.h>

#include "engine/sync.h"
#include "py/api.h"
#include "py/event.h"
#include "py/syncbatch.h"
#include "py/roomcache.h"

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
    static char *kwlist[] = {"on_batch", "on_error",   "since",          "filter",
                             "timeout_ms", "initial_filter", NULL};
    PyObject *on_batch, *on_error;
    const char *since = NULL, *filter = NULL, *initial = NULL;
    long timeout_ms = 30000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|zzlz:start_sync", kwlist, &on_batch,
                                     &on_error, &since, &filter, &timeout_ms, &initial))
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
    /* Owned here until handed to the account below. */
    char *s = since ? strdup(since) : NULL, *f = filter ? strdup(filter) : NULL;
    char *i = initial ? strdup(initial) : NULL;
    if ((since && !s) || (filter && !f) || (initial && !i) || mx_sync_prepare_stop_note(a) != 0) {
        free(s);
        free(f);
        free(i);
        return PyErr_NoMemory();
    }
    Py_XSETREF(self->on_batch, Py_NewRef(on_batch));
    Py_XSETREF(self->on_error, Py_NewRef(on_error));
    pthread_mutex_lock(&a->lock);
    free(a->since);
    free(a->filter);
    free(a->initial_filter);
    a->since = s;
    a->filter = f;
    a->initial_filter = i;
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

static PyObject *Client_sync_ack(ClientObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"batch", NULL};
    PyObject *batch = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:sync_ack", kwlist, &batch)) return NULL;
    mx_account *a = self->account;
    if (batch != Py_None) {
        mx_batch *b = mx_SyncBatch_batch(mx_state_of_type(Py_TYPE(self)), batch);
        if (!b) return NULL;
        unsigned generation;
        /* The engine thread may hold the lock, and a loaded machine may
         * preempt it there: never wait for it with the GIL. */
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&a->lock);
        generation = a->sync_generation;
        pthread_mutex_unlock(&a->lock);
        Py_END_ALLOW_THREADS
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
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&a->lock);
    if (a->undelivered > 0) a->undelivered--;
    pthread_mutex_unlock(&a->lock);
    mx_engine_poke_account(a);
    Py_END_ALLOW_THREADS
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
    {"set_token", (PyCFunction)Client_set_token, METH_O,
     "set_token($self, token, /)\n--\n\nSets (a str) or clears (None) the access token."},
    {"cancel", (PyCFunction)Client_cancel, METH_O,
     "cancel($self, request_id, /)\n--\n\nCancels a request by the id its call returned."},
    {"start_sync", (PyCFunction)(void (*)(void))Client_start_sync, METH_VARARGS | METH_KEYWORDS,
     "start_sync($self, /, on_batch, on_error, since=None, filter=None, timeout_ms=30000, "
     "initial_filter=None)\n"
     "--\n\n"
     "Starts (or restarts) the engine-driven /sync loop: on_batch(batch) gets each\n"
     "batch, on_error(exception, fatal) each failure, on the asyncio loop. Without\n"
     "since, the first sync uses initial_filter (when given) instead of filter."},
    {"stop_sync", (PyCFunction)Client_stop_sync, METH_NOARGS,
     "stop_sync($self, /)\n--\n\nStops the sync loop; no batch is delivered after this."},
    {"sync_ack", (PyCFunction)(void (*)(void))Client_sync_ack, METH_VARARGS | METH_KEYWORDS,
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
    {Py_tp_doc, "Client(homeserver, access_token=None, insecure=False)\n--\n\n"
                "One Matrix account. Its calls run on the engine thread."},
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
