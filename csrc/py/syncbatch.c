/* The SyncBatch type: one decoded /sync response, owning the memory every
 * other view of it points into (views.h); and _core.decode_sync. */
#include "py/syncbatch.h"

#include <stddef.h>

#include "engine/engine.h"
#include "py/event.h"
#include "py/pyjson.h"
#include "py/room.h"
#include "py/views.h"

typedef struct {
    PyObject_HEAD
    mx_batch *batch; /* owned; views reference this object, never the reverse */
} SyncBatchObject;

PyObject *mx_SyncBatch_new(mx_state *st, mx_batch *batch) {
    SyncBatchObject *self = PyObject_New(SyncBatchObject, st->SyncBatchType);
    if (!self) {
        mx_batch_free(batch);
        return NULL;
    }
    self->batch = batch;
    return (PyObject *)self;
}

mx_batch *mx_SyncBatch_batch(mx_state *st, PyObject *o) {
    if (!PyObject_TypeCheck(o, st->SyncBatchType)) {
        PyErr_Format(PyExc_TypeError, "expected a SyncBatch, not %.100s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    return ((SyncBatchObject *)o)->batch;
}

static void free_batch(void *b) { mx_batch_free(b); }

static void SyncBatch_dealloc(SyncBatchObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    /* A big batch takes milliseconds to free: not on the loop thread. */
    mx_engine_dispose(free_batch, self->batch);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *SyncBatch_next_batch(SyncBatchObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->batch->next_batch);
}

/* New tuples on each access: caching them here would make a reference cycle
 * (views point back at the batch) and delay freeing the batch to the GC. */
static PyObject *SyncBatch_rooms(SyncBatchObject *self, void *c) {
    (void)c;
    mx_state *st = mx_state_of_type(Py_TYPE(self));
    PyObject *t = PyTuple_New((Py_ssize_t)self->batch->n_rooms);
    if (!t) return NULL;
    for (size_t i = 0; i < self->batch->n_rooms; i++) {
        PyObject *r = mx_Room_new(st, (PyObject *)self, &self->batch->rooms[i]);
        if (!r) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, r);
    }
    return t;
}

/* Getter for an mx_events field of mx_batch; closure = offset. */
static PyObject *SyncBatch_events(SyncBatchObject *self, void *offset) {
    const mx_events *evs = (const mx_events *)((const char *)self->batch + (size_t)offset);
    return mx_events_tuple((PyObject *)self, evs);
}

static PyObject *SyncBatch_devices_changed(SyncBatchObject *self, void *c) {
    (void)c;
    return mx_str_tuple(self->batch->devices_changed, self->batch->n_devices_changed);
}

static PyObject *SyncBatch_devices_left(SyncBatchObject *self, void *c) {
    (void)c;
    return mx_str_tuple(self->batch->devices_left, self->batch->n_devices_left);
}

static PyObject *SyncBatch_one_time_key_counts(SyncBatchObject *self, void *c) {
    (void)c;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (size_t i = 0; i < self->batch->n_one_time_key_counts; i++) {
        const mx_key_count *k = &self->batch->one_time_key_counts[i];
        PyObject *key = mx_str_or_none(k->algorithm);
        PyObject *count = key ? PyLong_FromLongLong((long long)k->count) : NULL;
        /* With duplicate keys the first wins, as everywhere in the decoder. */
        int rc = count ? PyDict_SetDefaultRef(d, key, count, NULL) : -1;
        Py_XDECREF(key);
        Py_XDECREF(count);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyObject *SyncBatch_fallback_key_types(SyncBatchObject *self, void *c) {
    (void)c;
    if (!self->batch->has_fallback_key_types) Py_RETURN_NONE;
    return mx_str_tuple(self->batch->fallback_key_types, self->batch->n_fallback_key_types);
}

#define BATCH_EVENTS(name, field, doc) \
    {name, (getter)SyncBatch_events, NULL, doc, (void *)offsetof(mx_batch, field)}

static PyGetSetDef SyncBatch_getset[] = {
    {"next_batch", (getter)SyncBatch_next_batch, NULL, "The token to sync from next.", NULL},
    {"rooms", (getter)SyncBatch_rooms, NULL, "Joined, invited, left and knocked rooms.", NULL},
    BATCH_EVENTS("account_data", account_data, "Global account data events (m.direct, ...)."),
    BATCH_EVENTS("presence", presence, "m.presence events of other users."),
    BATCH_EVENTS("to_device", to_device, "Send-to-device events."),
    {"device_lists_changed", (getter)SyncBatch_devices_changed, NULL,
     "Users whose devices changed.", NULL},
    {"device_lists_left", (getter)SyncBatch_devices_left, NULL,
     "Users we no longer share an encrypted room with.", NULL},
    {"one_time_key_counts", (getter)SyncBatch_one_time_key_counts, NULL,
     "device_one_time_keys_count: unused one-time keys on the server, per algorithm.", NULL},
    {"unused_fallback_key_types", (getter)SyncBatch_fallback_key_types, NULL,
     "device_unused_fallback_key_types, or None when the server did not say.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot SyncBatch_slots[] = {
    {Py_tp_doc, "One decoded /sync response."},
    {Py_tp_dealloc, SyncBatch_dealloc},
    {Py_tp_getset, SyncBatch_getset},
    {0, NULL},
};

PyType_Spec mx_SyncBatch_spec = {
    .name = "matridge._core.SyncBatch",
    .basicsize = sizeof(SyncBatchObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = SyncBatch_slots,
};

PyObject *mx_core_decode_sync(PyObject *module, PyObject *arg) {
    mx_state *st = PyModule_GetState(module);
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    mx_batch *batch = NULL;
    const char *reason = NULL;
    Py_BEGIN_ALLOW_THREADS
    /* The buffer stays exported, hence unchanged, until released below. */
    mx_decode_sync_body(view.buf, (size_t)view.len, &batch, &reason);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (!batch) {
        PyErr_Format(PyExc_ValueError, "cannot decode this /sync response: %s", reason);
        return NULL;
    }
    return mx_SyncBatch_new(st, batch);
}

PyObject *mx_core_decode_event(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "decode_event() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    mx_state *st = PyModule_GetState(module);
    const char *room_id = mx_str_arg(args[1], "room_id");
    if (!room_id) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    mx_batch *batch = NULL;
    const char *reason = NULL;
    /* room_id is borrowed from args[1], which the caller keeps alive; the
     * buffer stays exported, hence unchanged, until released below. */
    Py_BEGIN_ALLOW_THREADS
    mx_decode_event_body(view.buf, (size_t)view.len, room_id, &batch, &reason);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (!batch) {
        PyErr_Format(PyExc_ValueError, "cannot decode this event: %s", reason);
        return NULL;
    }
    PyObject *owner = mx_SyncBatch_new(st, batch);
    if (!owner) return NULL;
    PyObject *ev = mx_Event_new(owner, &batch->rooms[0].timeline.events[0]);
    Py_DECREF(owner); /* the event view holds it now */
    return ev;
}
