/* SyncBatch, Room and Event: lazy, read-only views of a decoded batch. */
#include "event.h"

#include <stddef.h>

#include "pyjson.h"

typedef struct {
    PyObject_HEAD
    mx_batch *batch; /* owned; views reference this object, never the reverse */
} SyncBatchObject;

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `room` alive */
    const mx_room *room;
    PyObject *timeline; /* cached tuples */
    PyObject *state;
} RoomObject;

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `ev` alive */
    const mx_event *ev;
} EventObject;

/* ---- SyncBatch ----------------------------------------------------------- */

PyObject *mx_SyncBatch_new(mx_state *st, mx_batch *batch) {
    SyncBatchObject *self = PyObject_GC_New(SyncBatchObject, st->SyncBatchType);
    if (!self) {
        mx_batch_free(batch);
        return NULL;
    }
    self->batch = batch;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int SyncBatch_traverse(SyncBatchObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void SyncBatch_dealloc(SyncBatchObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    mx_batch_free(self->batch);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *SyncBatch_next_batch(SyncBatchObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->batch->next_batch);
}

static PyObject *new_room(PyTypeObject *tp, PyObject *owner, const mx_room *room) {
    RoomObject *r = PyObject_GC_New(RoomObject, tp);
    if (!r) return NULL;
    Py_INCREF(owner);
    r->owner = owner;
    r->room = room;
    r->timeline = r->state = NULL;
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

/* A new tuple on each access: caching it here would make a reference cycle
 * (rooms point back at the batch) and delay freeing the batch to the GC. */
static PyObject *SyncBatch_rooms(SyncBatchObject *self, void *c) {
    (void)c;
    mx_state *st = mx_state_of_type(Py_TYPE(self));
    PyObject *t = PyTuple_New((Py_ssize_t)self->batch->n_rooms);
    if (!t) return NULL;
    for (size_t i = 0; i < self->batch->n_rooms; i++) {
        PyObject *r = new_room(st->RoomType, (PyObject *)self, &self->batch->rooms[i]);
        if (!r) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, r);
    }
    return t;
}

static PyGetSetDef SyncBatch_getset[] = {
    {"next_batch", (getter)SyncBatch_next_batch, NULL, "The token to sync from next.", NULL},
    {"rooms", (getter)SyncBatch_rooms, NULL, "Joined, invited and left rooms.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot SyncBatch_slots[] = {
    {Py_tp_doc, "One decoded /sync response."},
    {Py_tp_dealloc, SyncBatch_dealloc},
    {Py_tp_traverse, SyncBatch_traverse},
    {Py_tp_getset, SyncBatch_getset},
    {0, NULL},
};

PyType_Spec mx_SyncBatch_spec = {
    .name = "matridge._core.SyncBatch",
    .basicsize = sizeof(SyncBatchObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = SyncBatch_slots,
};

/* ---- Room ---------------------------------------------------------------- */

static int Room_traverse(RoomObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->timeline);
    Py_VISIT(self->state);
    return 0;
}

static int Room_clear(RoomObject *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->timeline);
    Py_CLEAR(self->state);
    return 0;
}

static void Room_dealloc(RoomObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Room_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *events_tuple(PyTypeObject *tp, PyObject *owner, const mx_event *evs, size_t n) {
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        EventObject *e = PyObject_GC_New(EventObject, tp);
        if (!e) {
            Py_DECREF(t);
            return NULL;
        }
        e->owner = Py_NewRef(owner);
        e->ev = &evs[i];
        PyObject_GC_Track(e);
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, (PyObject *)e);
    }
    return t;
}

static PyObject *Room_room_id(RoomObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->room->room_id);
}

static PyObject *Room_membership(RoomObject *self, void *c) {
    (void)c;
    static const char *names[] = {"join", "invite", "leave"};
    return PyUnicode_FromString(names[self->room->membership]);
}

static PyObject *Room_limited(RoomObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->room->limited);
}

static PyObject *Room_prev_batch(RoomObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->room->prev_batch);
}

static PyObject *Room_timeline(RoomObject *self, void *c) {
    (void)c;
    if (!self->timeline) {
        mx_state *st = mx_state_of_type(Py_TYPE(self));
        self->timeline = events_tuple(st->EventType, self->owner, self->room->timeline,
                                      self->room->n_timeline);
        if (!self->timeline) return NULL;
    }
    return Py_NewRef(self->timeline);
}

static PyObject *Room_state(RoomObject *self, void *c) {
    (void)c;
    if (!self->state) {
        mx_state *st = mx_state_of_type(Py_TYPE(self));
        self->state = events_tuple(st->EventType, self->owner, self->room->state,
                                   self->room->n_state);
        if (!self->state) return NULL;
    }
    return Py_NewRef(self->state);
}

static PyGetSetDef Room_getset[] = {
    {"room_id", (getter)Room_room_id, NULL, NULL, NULL},
    {"membership", (getter)Room_membership, NULL, "'join', 'invite' or 'leave'.", NULL},
    {"limited", (getter)Room_limited, NULL, "True when the timeline has a gap before it.", NULL},
    {"prev_batch", (getter)Room_prev_batch, NULL, "Token to paginate back from.", NULL},
    {"timeline", (getter)Room_timeline, NULL, "Timeline events, oldest first.", NULL},
    {"state", (getter)Room_state, NULL, "State events (invite_state for invites).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Room_slots[] = {
    {Py_tp_doc, "One room's part of a SyncBatch."},
    {Py_tp_dealloc, Room_dealloc},
    {Py_tp_traverse, Room_traverse},
    {Py_tp_clear, Room_clear},
    {Py_tp_getset, Room_getset},
    {0, NULL},
};

PyType_Spec mx_Room_spec = {
    .name = "matridge._core.Room",
    .basicsize = sizeof(RoomObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Room_slots,
};

/* ---- Event --------------------------------------------------------------- */

static int Event_traverse(EventObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    return 0;
}

static int Event_clear(EventObject *self) {
    Py_CLEAR(self->owner);
    return 0;
}

static void Event_dealloc(EventObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    Event_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* Getter for every `const char *` field of mx_event; closure = offset. */
static PyObject *Event_str_field(EventObject *self, void *offset) {
    const char *s = *(const char *const *)((const char *)self->ev + (size_t)offset);
    return mx_str_or_none(s);
}

static PyObject *Event_ts(EventObject *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->ev->origin_server_ts);
}

static PyObject *Event_content(EventObject *self, void *c) {
    (void)c;
    if (!self->ev->content) return PyDict_New();
    return mx_json_to_py(self->ev->content);
}

static PyObject *Event_source(EventObject *self, void *c) {
    (void)c;
    return mx_json_to_py(self->ev->node);
}

static PyObject *Event_repr(EventObject *self) {
    return PyUnicode_FromFormat("<Event %s %s from %s>",
                                self->ev->event_id ? self->ev->event_id : "(no id)",
                                self->ev->type ? self->ev->type : "(no type)",
                                self->ev->sender ? self->ev->sender : "(no sender)");
}

#define STR_FIELD(name, field, doc) \
    {name, (getter)Event_str_field, NULL, doc, (void *)offsetof(mx_event, field)}

static PyGetSetDef Event_getset[] = {
    STR_FIELD("event_id", event_id, NULL),
    STR_FIELD("type", type, NULL),
    STR_FIELD("sender", sender, NULL),
    STR_FIELD("state_key", state_key, "None unless this is a state event."),
    STR_FIELD("transaction_id", txn_id, "Set only on events this device sent."),
    STR_FIELD("msgtype", msgtype, NULL),
    STR_FIELD("body", body, NULL),
    STR_FIELD("invalid", invalid, "None, or why the event cannot be used."),
    {"origin_server_ts", (getter)Event_ts, NULL, "Milliseconds since the epoch.", NULL},
    {"content", (getter)Event_content, NULL, "The content as a new dict.", NULL},
    {"source", (getter)Event_source, NULL, "The whole event as a new dict.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Event_slots[] = {
    {Py_tp_doc, "One Matrix event of a SyncBatch."},
    {Py_tp_dealloc, Event_dealloc},
    {Py_tp_traverse, Event_traverse},
    {Py_tp_clear, Event_clear},
    {Py_tp_getset, Event_getset},
    {Py_tp_repr, Event_repr},
    {0, NULL},
};

PyType_Spec mx_Event_spec = {
    .name = "matridge._core.Event",
    .basicsize = sizeof(EventObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Event_slots,
};
