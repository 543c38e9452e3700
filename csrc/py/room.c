/* The Room type: one room's part of a SyncBatch; and the Receipt struct
 * sequence its receipts are. */
#include "py/room.h"

#include <stddef.h>

#include "py/event.h"
#include "py/pyjson.h"
#include "py/views.h"

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `room` alive */
    const mx_room *room;
} RoomObject;

PyObject *mx_Room_new(mx_state *st, PyObject *owner, const mx_room *room) {
    RoomObject *r = PyObject_New(RoomObject, st->RoomType);
    if (!r) return NULL;
    r->owner = Py_NewRef(owner);
    r->room = room;
    return (PyObject *)r;
}

static PyObject *Room_room_id(RoomObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->room->room_id);
}

static PyObject *Room_membership(RoomObject *self, void *c) {
    (void)c;
    static const mx_word_id names[] = {MX_W_JOIN, MX_W_INVITE, MX_W_LEAVE, MX_W_KNOCK};
    return Py_NewRef(mx_state_of_type(Py_TYPE(self))->words[names[self->room->membership]]);
}

static PyObject *Room_limited(RoomObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->room->limited);
}

static PyObject *Room_prev_batch(RoomObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->room->prev_batch);
}

/* Getter for an mx_events field of mx_room; closure = offset. */
static PyObject *Room_events(RoomObject *self, void *offset) {
    const mx_events *evs = (const mx_events *)((const char *)self->room + (size_t)offset);
    return mx_events_tuple(self->owner, evs);
}

/* Getter for an int64_t count of mx_room (-1 = absent); closure = offset. */
static PyObject *Room_count(RoomObject *self, void *offset) {
    return mx_int_or_none(*(const int64_t *)((const char *)self->room + (size_t)offset));
}

static PyObject *Room_typing(RoomObject *self, void *c) {
    (void)c;
    if (!self->room->has_typing) Py_RETURN_NONE;
    return mx_str_tuple(self->room->typing, self->room->n_typing);
}

static PyObject *Room_heroes(RoomObject *self, void *c) {
    (void)c;
    return mx_str_tuple(self->room->heroes, self->room->n_heroes);
}

static PyObject *Room_receipts(RoomObject *self, void *c) {
    (void)c;
    mx_state *st = mx_state_of_type(Py_TYPE(self));
    const mx_room *room = self->room;
    PyObject *t = PyTuple_New((Py_ssize_t)room->n_receipts);
    if (!t) return NULL;
    for (size_t i = 0; i < room->n_receipts; i++) {
        const mx_receipt *r = &room->receipts[i];
        PyObject *item = PyStructSequence_New(st->ReceiptType);
        if (!item) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
        PyObject *fields[] = {mx_str_or_none(r->event_id), mx_text(st, r->receipt_type),
                              mx_str_or_none(r->user_id), mx_int_or_none(r->ts),
                              mx_str_or_none(r->thread_id)};
        int failed = 0;
        for (Py_ssize_t f = 0; f < 5; f++) {
            if (!fields[f]) {
                failed = 1;
                fields[f] = Py_NewRef(Py_None);
            }
            PyStructSequence_SET_ITEM(item, f, fields[f]);
        }
        if (failed) {
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

#define ROOM_EVENTS(name, field, doc) \
    {name, (getter)Room_events, NULL, doc, (void *)offsetof(mx_room, field)}
#define ROOM_COUNT(name, field, doc) \
    {name, (getter)Room_count, NULL, doc, (void *)offsetof(mx_room, field)}

static PyGetSetDef Room_getset[] = {
    {"room_id", (getter)Room_room_id, NULL, NULL, NULL},
    {"membership", (getter)Room_membership, NULL, "'join', 'invite', 'leave' or 'knock'.", NULL},
    {"limited", (getter)Room_limited, NULL, "True when the timeline has a gap before it.", NULL},
    {"prev_batch", (getter)Room_prev_batch, NULL, "Token to paginate back from.", NULL},
    ROOM_EVENTS("timeline", timeline, "Timeline events, oldest first."),
    ROOM_EVENTS("state", state, "State events (invite_state/knock_state for those)."),
    ROOM_EVENTS("ephemeral", ephemeral, "Ephemeral events (typing, receipts) as sent."),
    ROOM_EVENTS("account_data", account_data, "This room's account data events."),
    {"typing", (getter)Room_typing, NULL,
     "Users typing now, or None when this batch has no typing update.", NULL},
    {"receipts", (getter)Room_receipts, NULL, "Receipts of this batch, flattened.", NULL},
    {"heroes", (getter)Room_heroes, NULL, "The summary's m.heroes.", NULL},
    ROOM_COUNT("notification_count", notification_count, "Unread notifications, or None."),
    ROOM_COUNT("highlight_count", highlight_count, "Unread highlights, or None."),
    ROOM_COUNT("joined_member_count", joined_member_count, "From the summary, or None."),
    ROOM_COUNT("invited_member_count", invited_member_count, "From the summary, or None."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Room_slots[] = {
    {Py_tp_doc, "One room's part of a SyncBatch."},
    {Py_tp_dealloc, mx_view_dealloc},
    {Py_tp_getset, Room_getset},
    {0, NULL},
};

PyType_Spec mx_Room_spec = {
    .name = "matridge._core.Room",
    .basicsize = sizeof(RoomObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Room_slots,
};

static PyStructSequence_Field Receipt_fields[] = {
    {"event_id", "The event read up to."},
    {"receipt_type", "m.read or m.read.private."},
    {"user_id", NULL},
    {"ts", "Milliseconds since the epoch, or None."},
    {"thread_id", "The thread of a threaded receipt, or None."},
    {NULL, NULL},
};

PyStructSequence_Desc mx_Receipt_desc = {
    .name = "matridge._core.Receipt",
    .doc = "One read receipt from a room's ephemeral events.",
    .fields = Receipt_fields,
    .n_in_sequence = 5,
};

