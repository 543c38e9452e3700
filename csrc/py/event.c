/* The Event type: one Matrix event, a lazy view of a decoded record. */
#include "py/event.h"

#include <stddef.h>
#include <string.h>

#include "py/message.h"
#include "py/pyjson.h"
#include "py/views.h"

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `ev` alive */
    const mx_event *ev;
} EventObject;

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
        /* The views are read right after the tuple is made, and what is
         * read of every event (sender, id, body) lies in the parsed body,
         * away from the record and long out of the cache in a big batch:
         * start loading it now, a tuple ahead of the reader. */
        const mx_event *ev = &evs->events[i];
        if (ev->sender) __builtin_prefetch(ev->sender);
        if (ev->event_id) __builtin_prefetch(ev->event_id);
        if (ev->body) __builtin_prefetch(ev->body);
        PyObject *e = mx_Event_new(owner, &evs->events[i]);
        if (!e) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, e);
    }
    return t;
}

const char *const mx_event_kind_names[MX_EV_KIND_COUNT] = {
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
    return mx_text(mx_state_of_type(Py_TYPE(self)), s);
}

static PyObject *Event_body(EventObject *self, void *c) {
    (void)c;
    if (!self->ev->body) Py_RETURN_NONE;
    return mx_str_measured(self->ev->body, &self->ev->body_info);
}

static PyObject *Event_ts(EventObject *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->ev->origin_server_ts);
}

static PyObject *Event_kind(EventObject *self, void *c) {
    (void)c;
    return Py_NewRef(mx_state_of_type(Py_TYPE(self))->kind_names[self->ev->kind]);
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

static PyObject *Event_decrypted(EventObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->ev->decrypted);
}

static PyObject *Event_message(EventObject *self, void *c) {
    (void)c;
    return mx_Message_new(self->owner, self->ev->message);
}

static PyObject *Event_new_message(EventObject *self, void *c) {
    (void)c;
    return mx_Message_new(self->owner, self->ev->new_message);
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
    return mx_json_str_tuple(content_item(self, f));
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

/* m.room.encrypted ciphertext: a str for Megolm, an object keyed by the
 * recipient's Curve25519 key for Olm (to-device). */
static PyObject *Event_ciphertext(EventObject *self, void *closure) {
    const cJSON *v = content_item(self, closure);
    if (cJSON_IsString(v)) return mx_str_or_none(v->valuestring);
    if (cJSON_IsObject(v)) return mx_json_to_py(v);
    Py_RETURN_NONE;
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
    F_DIRECT = {MX_EV_DIRECT, NULL},
    F_ENC_ALGORITHM = {MX_EV_ENCRYPTED, "algorithm"},
    F_SENDER_KEY = {MX_EV_ENCRYPTED, "sender_key"},
    F_SESSION_ID = {MX_EV_ENCRYPTED, "session_id"},
    F_CIPHERTEXT = {MX_EV_ENCRYPTED, "ciphertext"},
    F_DEVICE_ID = {MX_EV_ENCRYPTED, "device_id"};

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
    {"body", (getter)Event_body, NULL, NULL, NULL},
    STR_FIELD("invalid", invalid, "None, or why the event cannot be used."),
    {"origin_server_ts", (getter)Event_ts, NULL, "Milliseconds since the epoch.", NULL},
    {"kind", (getter)Event_kind, NULL,
     "'message', 'sticker', 'reaction', 'redaction', 'encrypted', 'member', ... or 'other'.",
     NULL},
    {"is_state", (getter)Event_is_state, NULL, "True when the event has a state_key.", NULL},
    {"redacted", (getter)Event_redacted, NULL, "True when the content was redacted away.", NULL},
    {"encrypted", (getter)Event_encrypted, NULL, "True for m.room.encrypted (the ciphertext).",
     NULL},
    {"decrypted", (getter)Event_decrypted, NULL,
     "True for an event decode_event made from a decrypted m.room.encrypted.", NULL},
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
    /* m.room.encrypted, in a room or to-device */
    CONTENT("algorithm", Event_content_str, F_ENC_ALGORITHM,
            "m.megolm.v1.aes-sha2 or m.olm.v1.curve25519-aes-sha2."),
    CONTENT("sender_key", Event_content_str, F_SENDER_KEY, "The sender's Curve25519 key."),
    CONTENT("session_id", Event_content_str, F_SESSION_ID, "The Megolm session."),
    CONTENT("ciphertext", Event_ciphertext, F_CIPHERTEXT,
            "A str (Megolm), or a dict by recipient Curve25519 key (Olm)."),
    CONTENT("device_id", Event_content_str, F_DEVICE_ID, "The sending device (deprecated)."),
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
    {Py_tp_dealloc, mx_view_dealloc},
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

