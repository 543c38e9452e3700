/* SyncBatch, Room, Event and Message: lazy, read-only views of a decoded
 * batch. Every view holds a reference to the SyncBatch that owns the memory
 * and builds Python values only when an attribute is read.
 *
 * None of these types takes part in the cyclic GC: a SyncBatch references no
 * Python object and views reference only their SyncBatch, so no cycle can
 * form, and a 100k-event batch does not trigger GC passes while it is read. */
#include "py/event.h"

#include <stddef.h>
#include <string.h>

#include "engine/engine.h"
#include "py/pyjson.h"

typedef struct {
    PyObject_HEAD
    mx_batch *batch; /* owned; views reference this object, never the reverse */
} SyncBatchObject;

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `room` alive */
    const mx_room *room;
} RoomObject;

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `ev` alive */
    const mx_event *ev;
} EventObject;

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `msg` alive */
    const mx_message *msg;
} MessageObject;

/* ---- shared helpers ------------------------------------------------------- */

static PyObject *int_or_none(int64_t v) {
    if (v < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)v);
}

static PyObject *str_tuple(const char *const *items, size_t n) {
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *s = mx_str_or_none(items[i]);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, s);
    }
    return t;
}

/* The string items of a JSON array as a tuple (other items skipped). */
static PyObject *json_str_tuple(const cJSON *array) {
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    if (cJSON_IsArray(array)) {
        for (const cJSON *c = array->child; c; c = c->next) {
            if (!cJSON_IsString(c)) continue;
            PyObject *s = mx_str_or_none(c->valuestring);
            if (!s || PyList_Append(list, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(s);
        }
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

PyObject *mx_Event_new(PyObject *owner, const mx_event *ev) {
    mx_state *st = mx_state_of_type(Py_TYPE(owner));
    EventObject *e = PyObject_New(EventObject, st->EventType);
    if (!e) return NULL;
    e->owner = Py_NewRef(owner);
    e->ev = ev;
    return (PyObject *)e;
}

PyObject *mx_events_tuple(PyObject *owner, const mx_events *evs) {
    PyObject *t = PyTuple_New((Py_ssize_t)evs->n);
    if (!t) return NULL;
    for (size_t i = 0; i < evs->n; i++) {
        PyObject *e = mx_Event_new(owner, &evs->events[i]);
        if (!e) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, e);
    }
    return t;
}

/* ---- SyncBatch ----------------------------------------------------------- */

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
        RoomObject *r = PyObject_New(RoomObject, st->RoomType);
        if (!r) {
            Py_DECREF(t);
            return NULL;
        }
        r->owner = Py_NewRef(self);
        r->room = &self->batch->rooms[i];
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, (PyObject *)r);
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
    return str_tuple(self->batch->devices_changed, self->batch->n_devices_changed);
}

static PyObject *SyncBatch_devices_left(SyncBatchObject *self, void *c) {
    (void)c;
    return str_tuple(self->batch->devices_left, self->batch->n_devices_left);
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

/* ---- views sharing one layout: owner + pointer ---------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *owner;
} ViewObject;

static void View_dealloc(ViewObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(self->owner);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ---- Room ---------------------------------------------------------------- */

static PyObject *Room_room_id(RoomObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->room->room_id);
}

static PyObject *Room_membership(RoomObject *self, void *c) {
    (void)c;
    static const char *names[] = {"join", "invite", "leave", "knock"};
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

/* Getter for an mx_events field of mx_room; closure = offset. */
static PyObject *Room_events(RoomObject *self, void *offset) {
    const mx_events *evs = (const mx_events *)((const char *)self->room + (size_t)offset);
    return mx_events_tuple(self->owner, evs);
}

/* Getter for an int64_t count of mx_room (-1 = absent); closure = offset. */
static PyObject *Room_count(RoomObject *self, void *offset) {
    return int_or_none(*(const int64_t *)((const char *)self->room + (size_t)offset));
}

static PyObject *Room_typing(RoomObject *self, void *c) {
    (void)c;
    if (!self->room->has_typing) Py_RETURN_NONE;
    return str_tuple(self->room->typing, self->room->n_typing);
}

static PyObject *Room_heroes(RoomObject *self, void *c) {
    (void)c;
    return str_tuple(self->room->heroes, self->room->n_heroes);
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
        PyObject *fields[] = {mx_str_or_none(r->event_id), mx_str_or_none(r->receipt_type),
                              mx_str_or_none(r->user_id), int_or_none(r->ts),
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
    {Py_tp_dealloc, View_dealloc},
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

/* ---- Message ------------------------------------------------------------- */

static PyObject *new_message(PyObject *owner, const mx_message *msg) {
    if (!msg) Py_RETURN_NONE;
    mx_state *st = mx_state_of_type(Py_TYPE(owner));
    MessageObject *m = PyObject_New(MessageObject, st->MessageType);
    if (!m) return NULL;
    m->owner = Py_NewRef(owner);
    m->msg = msg;
    return (PyObject *)m;
}

static PyObject *Message_str(MessageObject *self, void *offset) {
    return mx_str_or_none(*(const char *const *)((const char *)self->msg + (size_t)offset));
}

static PyObject *Message_int(MessageObject *self, void *offset) {
    return int_or_none(*(const int64_t *)((const char *)self->msg + (size_t)offset));
}

static PyObject *Message_text(MessageObject *self, void *c) {
    (void)c;
    if (!self->msg->text) return PyUnicode_FromString("");
    return PyUnicode_DecodeUTF8(self->msg->text, (Py_ssize_t)self->msg->text_len, "replace");
}

static PyObject *Message_mention_spans(MessageObject *self, void *c) {
    (void)c;
    const mx_message *m = self->msg;
    PyObject *t = PyTuple_New((Py_ssize_t)m->n_mention_spans);
    if (!t) return NULL;
    for (size_t i = 0; i < m->n_mention_spans; i++) {
        const mx_mention_span *s = &m->mention_spans[i];
        PyObject *item = Py_BuildValue("(nnN)", (Py_ssize_t)s->start, (Py_ssize_t)s->end,
                                       mx_str_or_none(s->user_id));
        if (!item) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, item);
    }
    return t;
}

static PyObject *Message_mentioned_user_ids(MessageObject *self, void *c) {
    (void)c;
    const cJSON *ids = self->msg->mentions
                           ? cJSON_GetObjectItemCaseSensitive(self->msg->mentions, "user_ids")
                           : NULL;
    return json_str_tuple(ids);
}

static PyObject *Message_mentions_room(MessageObject *self, void *c) {
    (void)c;
    const cJSON *room = self->msg->mentions
                            ? cJSON_GetObjectItemCaseSensitive(self->msg->mentions, "room")
                            : NULL;
    return PyBool_FromLong(cJSON_IsTrue(room));
}

static PyObject *Message_has_mentions(MessageObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->msg->mentions != NULL);
}

static PyObject *Message_encrypted_file(MessageObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->msg->encrypted_file);
}

static PyObject *Message_repr(MessageObject *self) {
    return PyUnicode_FromFormat("<Message %s %.40s>",
                                self->msg->msgtype ? self->msg->msgtype : "(sticker)",
                                self->msg->body ? self->msg->body : "");
}

#define MSG_STR(name, field, doc) \
    {name, (getter)Message_str, NULL, doc, (void *)offsetof(mx_message, field)}
#define MSG_INT(name, field, doc) \
    {name, (getter)Message_int, NULL, doc, (void *)offsetof(mx_message, field)}

static PyGetSetDef Message_getset[] = {
    MSG_STR("msgtype", msgtype, "m.text, m.notice, m.emote, m.image, ... (None for stickers)."),
    MSG_STR("body", body, "The plain body as sent (with any reply fallback)."),
    MSG_STR("format", format, NULL),
    MSG_STR("formatted_body", formatted_body, NULL),
    {"text", (getter)Message_text, NULL,
     "Text for XMPP: XEP-0393 styled from the HTML when there is some, reply fallback "
     "removed.",
     NULL},
    {"mention_spans", (getter)Message_mention_spans, NULL,
     "(start, end, user_id) of each user pill in `text`, in code points.", NULL},
    {"mentioned_user_ids", (getter)Message_mentioned_user_ids, NULL,
     "m.mentions.user_ids.", NULL},
    {"mentions_room", (getter)Message_mentions_room, NULL, "m.mentions.room.", NULL},
    {"has_mentions", (getter)Message_has_mentions, NULL,
     "True when the sender's client set m.mentions (then it is authoritative).", NULL},
    MSG_STR("url", url, "mxc:// URI of the media."),
    MSG_STR("filename", filename, "content.filename (else the body names the file)."),
    MSG_STR("mimetype", mimetype, NULL),
    MSG_STR("thumbnail_url", thumbnail_url, NULL),
    MSG_STR("geo_uri", geo_uri, "m.location's geo: URI."),
    MSG_INT("size", size, "Bytes, or None."),
    MSG_INT("width", width, "Pixels, or None."),
    MSG_INT("height", height, "Pixels, or None."),
    MSG_INT("duration", duration, "Milliseconds, or None."),
    {"encrypted_file", (getter)Message_encrypted_file, NULL,
     "True when the media is an end-to-end encrypted attachment.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Message_slots[] = {
    {Py_tp_doc, "The displayable content of an m.room.message or m.sticker (or an edit)."},
    {Py_tp_dealloc, View_dealloc},
    {Py_tp_getset, Message_getset},
    {Py_tp_repr, Message_repr},
    {0, NULL},
};

PyType_Spec mx_Message_spec = {
    .name = "matridge._core.Message",
    .basicsize = sizeof(MessageObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Message_slots,
};

/* ---- Event --------------------------------------------------------------- */

static const char *const KIND_NAMES[MX_EV_KIND_COUNT] = {
    [MX_EV_OTHER] = "other",
    [MX_EV_MESSAGE] = "message",
    [MX_EV_STICKER] = "sticker",
    [MX_EV_REACTION] = "reaction",
    [MX_EV_REDACTION] = "redaction",
    [MX_EV_ENCRYPTED] = "encrypted",
    [MX_EV_MEMBER] = "member",
    [MX_EV_NAME] = "name",
    [MX_EV_TOPIC] = "topic",
    [MX_EV_AVATAR] = "avatar",
    [MX_EV_CANONICAL_ALIAS] = "canonical_alias",
    [MX_EV_POWER_LEVELS] = "power_levels",
    [MX_EV_ENCRYPTION] = "encryption",
    [MX_EV_TOMBSTONE] = "tombstone",
    [MX_EV_CREATE] = "create",
    [MX_EV_JOIN_RULES] = "join_rules",
    [MX_EV_PINNED] = "pinned_events",
    [MX_EV_SPACE_CHILD] = "space_child",
    [MX_EV_SPACE_PARENT] = "space_parent",
    [MX_EV_TYPING] = "typing",
    [MX_EV_RECEIPT] = "receipt",
    [MX_EV_PRESENCE] = "presence",
    [MX_EV_DIRECT] = "direct",
};

/* Getter for every `const char *` field of mx_event; closure = offset. */
static PyObject *Event_str_field(EventObject *self, void *offset) {
    const char *s = *(const char *const *)((const char *)self->ev + (size_t)offset);
    return mx_str_or_none(s);
}

static PyObject *Event_ts(EventObject *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->ev->origin_server_ts);
}

static PyObject *Event_kind(EventObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(KIND_NAMES[self->ev->kind]);
}

static PyObject *Event_redacted(EventObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->ev->redacted);
}

static PyObject *Event_is_falling_back(EventObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->ev->is_falling_back);
}

static PyObject *Event_is_state(EventObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->ev->state_key != NULL);
}

static PyObject *Event_encrypted(EventObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->ev->kind == MX_EV_ENCRYPTED);
}

static PyObject *Event_message(EventObject *self, void *c) {
    (void)c;
    return new_message(self->owner, self->ev->message);
}

static PyObject *Event_new_message(EventObject *self, void *c) {
    (void)c;
    return new_message(self->owner, self->ev->new_message);
}

static PyObject *Event_thread_root(EventObject *self, void *c) {
    (void)c;
    const mx_event *ev = self->ev;
    if (ev->rel_type && strcmp(ev->rel_type, "m.thread") == 0) return mx_str_or_none(ev->relates_to);
    Py_RETURN_NONE;
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

/* Typed content accessors: a field of the content, read only for the event
 * kind it belongs to (None for any other event). */
typedef struct {
    mx_event_kind kind;
    const char *key;
} content_field;

static const cJSON *content_item(EventObject *self, const content_field *f) {
    if (self->ev->kind != f->kind || !self->ev->content) return NULL;
    return cJSON_GetObjectItemCaseSensitive(self->ev->content, f->key);
}

static PyObject *Event_content_str(EventObject *self, void *closure) {
    const cJSON *v = content_item(self, closure);
    return mx_str_or_none(cJSON_IsString(v) ? v->valuestring : NULL);
}

static PyObject *Event_content_strs(EventObject *self, void *closure) {
    const content_field *f = closure;
    if (self->ev->kind != f->kind) Py_RETURN_NONE;
    return json_str_tuple(content_item(self, f));
}

static PyObject *Event_content_bool(EventObject *self, void *closure) {
    const cJSON *v = content_item(self, closure);
    if (!cJSON_IsBool(v)) Py_RETURN_NONE;
    return PyBool_FromLong(cJSON_IsTrue(v));
}

static PyObject *Event_content_int(EventObject *self, void *closure) {
    const cJSON *v = content_item(self, closure);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0))
        Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)v->valuedouble);
}

/* The whole content, for the kinds whose content is a structure. */
static PyObject *Event_content_of(EventObject *self, void *closure) {
    const content_field *f = closure;
    if (self->ev->kind != f->kind || !self->ev->content) Py_RETURN_NONE;
    return mx_json_to_py(self->ev->content);
}

static PyObject *Event_avatar_url(EventObject *self, void *c) {
    (void)c;
    static const content_field member = {MX_EV_MEMBER, "avatar_url"}, room = {MX_EV_AVATAR, "url"};
    return Event_content_str(self, (void *)(self->ev->kind == MX_EV_MEMBER ? &member : &room));
}

static PyObject *Event_repr(EventObject *self) {
    return PyUnicode_FromFormat("<Event %s %s from %s%s>",
                                self->ev->event_id ? self->ev->event_id : "(no id)",
                                self->ev->type ? self->ev->type : "(no type)",
                                self->ev->sender ? self->ev->sender : "(no sender)",
                                self->ev->invalid ? " (invalid)" : "");
}

static const content_field
    F_DISPLAYNAME = {MX_EV_MEMBER, "displayname"}, F_IS_DIRECT = {MX_EV_MEMBER, "is_direct"},
    F_NAME = {MX_EV_NAME, "name"}, F_TOPIC = {MX_EV_TOPIC, "topic"},
    F_ALIAS = {MX_EV_CANONICAL_ALIAS, "alias"},
    F_ALT_ALIASES = {MX_EV_CANONICAL_ALIAS, "alt_aliases"},
    F_POWER_LEVELS = {MX_EV_POWER_LEVELS, NULL},
    F_ALGORITHM = {MX_EV_ENCRYPTION, "algorithm"},
    F_REPLACEMENT = {MX_EV_TOMBSTONE, "replacement_room"},
    F_ROOM_TYPE = {MX_EV_CREATE, "type"}, F_JOIN_RULE = {MX_EV_JOIN_RULES, "join_rule"},
    F_PINNED = {MX_EV_PINNED, "pinned"}, F_CHILD_VIA = {MX_EV_SPACE_CHILD, "via"},
    F_PARENT_VIA = {MX_EV_SPACE_PARENT, "via"},
    F_PRESENCE = {MX_EV_PRESENCE, "presence"}, F_STATUS = {MX_EV_PRESENCE, "status_msg"},
    F_LAST_ACTIVE = {MX_EV_PRESENCE, "last_active_ago"},
    F_CURRENTLY_ACTIVE = {MX_EV_PRESENCE, "currently_active"},
    F_DIRECT = {MX_EV_DIRECT, NULL};

#define STR_FIELD(name, field, doc) \
    {name, (getter)Event_str_field, NULL, doc, (void *)offsetof(mx_event, field)}
#define CONTENT(name, getter_fn, field, doc) \
    {name, (getter)getter_fn, NULL, doc, (void *)&field}

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
    {"kind", (getter)Event_kind, NULL,
     "'message', 'sticker', 'reaction', 'redaction', 'encrypted', 'member', ... or 'other'.",
     NULL},
    {"is_state", (getter)Event_is_state, NULL, "True when the event has a state_key.", NULL},
    {"redacted", (getter)Event_redacted, NULL, "True when the content was redacted away.", NULL},
    {"encrypted", (getter)Event_encrypted, NULL,
     "True for m.room.encrypted (not decrypted by the gateway).", NULL},
    {"content", (getter)Event_content, NULL, "The content as a new dict.", NULL},
    {"source", (getter)Event_source, NULL, "The whole event as a new dict.", NULL},
    /* relations */
    STR_FIELD("rel_type", rel_type, "m.relates_to.rel_type (m.replace, m.annotation, ...)."),
    STR_FIELD("relates_to", relates_to, "m.relates_to.event_id."),
    STR_FIELD("in_reply_to", in_reply_to, "m.relates_to.m.in_reply_to.event_id."),
    STR_FIELD("reaction_key", reaction_key, "The key of an m.annotation."),
    {"is_falling_back", (getter)Event_is_falling_back, NULL,
     "True when in_reply_to is only a thread fallback.", NULL},
    {"thread_root", (getter)Event_thread_root, NULL, "The thread root of an m.thread event.",
     NULL},
    {"message", (getter)Event_message, NULL, "Message content of m.room.message/m.sticker.",
     NULL},
    {"new_message", (getter)Event_new_message, NULL, "m.new_content of an edit (m.replace).",
     NULL},
    STR_FIELD("redacts", redacts, "The event an m.room.redaction removes."),
    STR_FIELD("reason", reason, "Reason of a redaction or membership change."),
    /* state */
    STR_FIELD("membership", membership, NULL),
    STR_FIELD("prev_membership", prev_membership, "unsigned.prev_content.membership."),
    CONTENT("displayname", Event_content_str, F_DISPLAYNAME, NULL),
    {"avatar_url", (getter)Event_avatar_url, NULL, "Of an m.room.member or m.room.avatar.", NULL},
    CONTENT("is_direct", Event_content_bool, F_IS_DIRECT, "m.room.member is_direct."),
    CONTENT("name", Event_content_str, F_NAME, "m.room.name."),
    CONTENT("topic", Event_content_str, F_TOPIC, "m.room.topic."),
    CONTENT("canonical_alias", Event_content_str, F_ALIAS, NULL),
    CONTENT("alt_aliases", Event_content_strs, F_ALT_ALIASES, NULL),
    CONTENT("power_levels", Event_content_of, F_POWER_LEVELS, "m.room.power_levels content."),
    CONTENT("encryption_algorithm", Event_content_str, F_ALGORITHM, NULL),
    CONTENT("replacement_room", Event_content_str, F_REPLACEMENT, "m.room.tombstone."),
    CONTENT("room_type", Event_content_str, F_ROOM_TYPE, "m.room.create type (m.space)."),
    CONTENT("join_rule", Event_content_str, F_JOIN_RULE, NULL),
    CONTENT("pinned", Event_content_strs, F_PINNED, "m.room.pinned_events."),
    CONTENT("child_via", Event_content_strs, F_CHILD_VIA, "m.space.child via."),
    CONTENT("parent_via", Event_content_strs, F_PARENT_VIA, "m.space.parent via."),
    /* presence and account data */
    CONTENT("presence", Event_content_str, F_PRESENCE, "online, offline or unavailable."),
    CONTENT("status_msg", Event_content_str, F_STATUS, NULL),
    CONTENT("last_active_ago", Event_content_int, F_LAST_ACTIVE, "Milliseconds."),
    CONTENT("currently_active", Event_content_bool, F_CURRENTLY_ACTIVE, NULL),
    CONTENT("direct", Event_content_of, F_DIRECT, "m.direct content: user id -> room ids."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Event_slots[] = {
    {Py_tp_doc, "One Matrix event, a lazy view of a decoded record."},
    {Py_tp_dealloc, View_dealloc},
    {Py_tp_getset, Event_getset},
    {Py_tp_repr, Event_repr},
    {0, NULL},
};

PyType_Spec mx_Event_spec = {
    .name = "matridge._core.Event",
    .basicsize = sizeof(EventObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Event_slots,
};

/* ---- Receipt --------------------------------------------------------------- */

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

/* ---- decode_sync ------------------------------------------------------------ */

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
