/* The RoomInfo type: an immutable snapshot of one room. It owns a snapshot
 * (a C copy made under the cache's mutex, see roomcache.c) and builds Python
 * values from it only when they are read. */
#include "py/roominfo.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "py/member.h"
#include "py/pyjson.h"

typedef struct {
    PyObject_HEAD
    mx_room_state *snap; /* owned snapshot, never changes */
    PyObject *members;   /* cached dict of Member, built on first read */
} RoomInfoObject;


static const char *const own_membership_names[] = {"join", "invite", "leave", "knock"};

PyObject *mx_strlist_tuple(const mx_strlist *l) {
    PyObject *t = PyTuple_New((Py_ssize_t)l->n);
    if (!t) return NULL;
    for (size_t i = 0; i < l->n; i++) {
        PyObject *s = mx_str_or_none(l->items[i]);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, s);
    }
    return t;
}

PyObject *mx_RoomInfo_new(PyTypeObject *tp, mx_room_state *snap) {
    RoomInfoObject *self = PyObject_GC_New(RoomInfoObject, tp);
    if (!self) {
        mx_room_state_free(snap);
        return NULL;
    }
    self->snap = snap;
    self->members = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int RoomInfo_traverse(RoomInfoObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->members);
    return 0;
}

static int RoomInfo_clear(RoomInfoObject *self) {
    Py_CLEAR(self->members);
    return 0;
}

static void RoomInfo_dealloc(RoomInfoObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    RoomInfo_clear(self);
    mx_room_state_free(self->snap);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* Getter for every `char *` field of the snapshot; closure = offset. */
static PyObject *RoomInfo_str_field(RoomInfoObject *self, void *offset) {
    const char *s = *(char *const *)((const char *)self->snap + (size_t)offset);
    return mx_str_or_none(s);
}

/* Getter for every mx_strlist field; closure = offset. */
static PyObject *RoomInfo_list_field(RoomInfoObject *self, void *offset) {
    return mx_strlist_tuple((const mx_strlist *)((const char *)self->snap + (size_t)offset));
}

static PyObject *RoomInfo_membership(RoomInfoObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(own_membership_names[self->snap->membership]);
}

static PyObject *RoomInfo_joined_count(RoomInfoObject *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->snap->joined_count);
}

static PyObject *RoomInfo_invited_count(RoomInfoObject *self, void *c) {
    (void)c;
    return PyLong_FromLongLong((long long)self->snap->invited_count);
}

static PyObject *RoomInfo_encrypted(RoomInfoObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->snap->encrypted);
}

static PyObject *RoomInfo_is_space(RoomInfoObject *self, void *c) {
    (void)c;
    const char *t = self->snap->room_type;
    return PyBool_FromLong(t && strcmp(t, "m.space") == 0);
}

static PyObject *RoomInfo_is_direct(RoomInfoObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->snap->direct_users.n > 0);
}

static PyObject *RoomInfo_tombstone(RoomInfoObject *self, void *c) {
    (void)c;
    if (!self->snap->tombstone_room) Py_RETURN_NONE;
    PyObject *room = mx_str_or_none(self->snap->tombstone_room);
    PyObject *body = room ? mx_str_or_none(self->snap->tombstone_body) : NULL;
    PyObject *t = body ? PyTuple_Pack(2, room, body) : NULL;
    Py_XDECREF(room);
    Py_XDECREF(body);
    return t;
}

static PyObject *RoomInfo_members(RoomInfoObject *self, void *c) {
    (void)c;
    if (!self->members) {
        mx_state *st = mx_state_of_type(Py_TYPE(self));
        if (!st) return NULL;
        PyObject *d = PyDict_New();
        if (!d) return NULL;
        size_t pos = 0;
        const mx_member *m;
        while ((m = mx_members_next(self->snap->members, &pos))) {
            PyObject *key = mx_str_or_none(m->user_id);
            PyObject *val = key ? mx_Member_new(st->MemberType, m) : NULL;
            int rc = val ? PyDict_SetItem(d, key, val) : -1;
            Py_XDECREF(key);
            Py_XDECREF(val);
            if (rc < 0) {
                Py_DECREF(d);
                return NULL;
            }
        }
        self->members = d;
    }
    /* A copy: the snapshot stays the same whatever the caller does. */
    return PyDict_Copy(self->members);
}

/* {key: level} of a sorted level array. */
static PyObject *levels_dict(const mx_level *l, size_t n) {
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < n; i++)
        if (mx_put_text_key(d, l[i].key, PyLong_FromLongLong((long long)l[i].level)) < 0) Py_CLEAR(d);
    return d;
}

static int put_level(PyObject *d, const char *key, int64_t level) {
    PyObject *v = PyLong_FromLongLong((long long)level);
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

static int put_owned(PyObject *d, const char *key, PyObject *v) {
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

static PyObject *RoomInfo_power_levels(RoomInfoObject *self, void *c) {
    (void)c;
    const mx_power_levels *p = &self->snap->power;
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    PyObject *notif = PyDict_New();
    if (put_owned(d, "users", levels_dict(p->users, p->n_users)) < 0 ||
        put_owned(d, "events", levels_dict(p->events, p->n_events)) < 0 ||
        put_level(d, "users_default", p->users_default) < 0 ||
        put_level(d, "events_default", p->events_default) < 0 ||
        put_level(d, "state_default", p->state_default) < 0 ||
        put_level(d, "ban", p->ban) < 0 || put_level(d, "kick", p->kick) < 0 ||
        put_level(d, "redact", p->redact) < 0 || put_level(d, "invite", p->invite) < 0 ||
        !notif || put_level(notif, "room", p->notifications_room) < 0 ||
        put_owned(d, "notifications", Py_NewRef(notif)) < 0) {
        Py_XDECREF(notif);
        Py_DECREF(d);
        return NULL;
    }
    Py_DECREF(notif);
    return d;
}

static PyObject *RoomInfo_has_power_levels(RoomInfoObject *self, void *c) {
    (void)c;
    return PyBool_FromLong(self->snap->power.present);
}

static PyObject *RoomInfo_power_level(RoomInfoObject *self, PyObject *arg) {
    const char *user_id = mx_str_arg(arg, "user_id");
    if (!user_id) return NULL;
    return PyLong_FromLongLong((long long)mx_room_power_level(self->snap, user_id));
}

static PyObject *RoomInfo_member_display_name(RoomInfoObject *self, PyObject *arg) {
    const char *user_id = mx_str_arg(arg, "user_id");
    if (!user_id) return NULL;
    char *name = mx_room_member_display_name(self->snap, user_id);
    if (!name) return PyErr_NoMemory();
    PyObject *s = mx_str_or_none(name);
    free(name);
    return s;
}

static PyObject *RoomInfo_repr(RoomInfoObject *self) {
    PyObject *name = mx_str_or_none(self->snap->display_name);
    if (!name) return NULL;
    PyObject *r = PyUnicode_FromFormat("<RoomInfo %s %R %s>", self->snap->room_id, name,
                                       own_membership_names[self->snap->membership]);
    Py_DECREF(name);
    return r;
}

#define SNAP_STR(name, field, doc) \
    {name, (getter)RoomInfo_str_field, NULL, doc, (void *)offsetof(mx_room_state, field)}
#define SNAP_LIST(name, field, doc) \
    {name, (getter)RoomInfo_list_field, NULL, doc, (void *)offsetof(mx_room_state, field)}

static PyGetSetDef RoomInfo_getset[] = {
    SNAP_STR("room_id", room_id, NULL),
    SNAP_STR("display_name", display_name,
             "The name to show, computed as the spec says (name, alias, heroes)."),
    SNAP_STR("name", name, "The m.room.name, or None."),
    SNAP_STR("topic", topic, NULL),
    SNAP_STR("avatar_url", avatar_url, "The room's mxc:// avatar, or None."),
    SNAP_STR("canonical_alias", canonical_alias, NULL),
    SNAP_LIST("alt_aliases", alt_aliases, NULL),
    {"membership", (getter)RoomInfo_membership, NULL,
     "The account's own membership: 'join', 'invite', 'leave' or 'knock'.", NULL},
    {"members", (getter)RoomInfo_members, NULL,
     "Every known member (any membership), by user id; a new dict each time.", NULL},
    {"joined_count", (getter)RoomInfo_joined_count, NULL,
     "Joined members: the /sync summary's count, else counted.", NULL},
    {"invited_count", (getter)RoomInfo_invited_count, NULL,
     "Invited members: the /sync summary's count, else counted.", NULL},
    SNAP_LIST("heroes", heroes, "User ids that name an unnamed room."),
    {"power_levels", (getter)RoomInfo_power_levels, NULL,
     "The effective power levels, shaped like the event content, defaults applied.", NULL},
    {"has_power_levels", (getter)RoomInfo_has_power_levels, NULL,
     "True when the room has an m.room.power_levels event.", NULL},
    {"encrypted", (getter)RoomInfo_encrypted, NULL, NULL, NULL},
    SNAP_STR("encryption_algorithm", encryption_algorithm, NULL),
    {"tombstone", (getter)RoomInfo_tombstone, NULL,
     "(replacement_room, body) once the room was upgraded, else None.", NULL},
    {"is_space", (getter)RoomInfo_is_space, NULL, NULL, NULL},
    SNAP_STR("room_type", room_type, "m.room.create content.type, or None."),
    SNAP_STR("room_version", room_version, "None until the create event is known."),
    SNAP_LIST("creators", creators, "The room's creators, per its room version."),
    SNAP_LIST("space_children", space_children, "Sorted room ids."),
    SNAP_LIST("space_parents", space_parents, "Sorted room ids."),
    SNAP_LIST("pinned_events", pinned_events, NULL),
    SNAP_STR("join_rule", join_rule, NULL),
    {"is_direct", (getter)RoomInfo_is_direct, NULL, "Listed in the account's m.direct.", NULL},
    SNAP_LIST("direct_user_ids", direct_users, "The other user ids from m.direct."),
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef RoomInfo_methods[] = {
    {"power_level", (PyCFunction)RoomInfo_power_level, METH_O,
     "power_level($self, user_id, /)\n--\n\n"
     "The user's power level (CREATOR_POWER_LEVEL for room version 12+ creators)."},
    {"member_display_name", (PyCFunction)RoomInfo_member_display_name, METH_O,
     "member_display_name($self, user_id, /)\n--\n\n"
     "The user's display name, with the user id added when another member shares it."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot RoomInfo_slots[] = {
    {Py_tp_doc, "An immutable snapshot of one room's state."},
    {Py_tp_dealloc, RoomInfo_dealloc},
    {Py_tp_traverse, RoomInfo_traverse},
    {Py_tp_clear, RoomInfo_clear},
    {Py_tp_getset, RoomInfo_getset},
    {Py_tp_methods, RoomInfo_methods},
    {Py_tp_repr, RoomInfo_repr},
    {0, NULL},
};

PyType_Spec mx_RoomInfo_spec = {
    .name = "matridge._core.RoomInfo",
    .basicsize = sizeof(RoomInfoObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = RoomInfo_slots,
};

