/* The Message type: the displayable content of a message event. */
#include "py/message.h"

#include <stddef.h>

#include "py/pyjson.h"
#include "py/views.h"

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the SyncBatch keeping `msg` alive */
    const mx_message *msg;
} MessageObject;

PyObject *mx_Message_new(PyObject *owner, const mx_message *msg) {
    if (!msg) Py_RETURN_NONE;
    mx_state *st = mx_state_of_type(Py_TYPE(owner));
    MessageObject *m = PyObject_New(MessageObject, st->MessageType);
    if (!m) return NULL;
    m->owner = Py_NewRef(owner);
    m->msg = msg;
    return (PyObject *)m;
}

static PyObject *Message_str(MessageObject *self, void *offset) {
    return mx_text(mx_state_of_type(Py_TYPE(self)),
                   *(const char *const *)((const char *)self->msg + (size_t)offset));
}

static PyObject *Message_int(MessageObject *self, void *offset) {
    return mx_int_or_none(*(const int64_t *)((const char *)self->msg + (size_t)offset));
}

static PyObject *Message_text(MessageObject *self, void *c) {
    (void)c;
    if (!self->msg->text) return PyUnicode_FromString("");
    return mx_str_measured(self->msg->text, &self->msg->text_info);
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
    return mx_json_str_tuple(ids);
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
    {Py_tp_dealloc, mx_view_dealloc},
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

