/* RoomCache, RoomInfo and Member: the Python face of the room state cache.
 *
 * Every call that takes the cache's mutex releases the GIL first: the engine
 * thread may hold the mutex for a whole batch, and Python threads should run
 * meanwhile. A RoomInfo owns a snapshot (a C copy made under the mutex) and
 * builds Python values from it only when they are read. */
#include "py/roominfo.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/jsonparse.h"
#include "py/pyjson.h"

typedef struct {
    PyObject_HEAD
    mx_rooms *rooms; /* counted reference */
} RoomCacheObject;

typedef struct {
    PyObject_HEAD
    mx_room_state *snap; /* owned snapshot, never changes */
    PyObject *members;   /* cached dict of Member, built on first read */
} RoomInfoObject;

typedef struct {
    PyObject_HEAD
    const mx_member *m; /* counted reference to an immutable member */
} MemberObject;

static const char *const own_membership_names[] = {"join", "invite", "leave", "knock"};
static const char *const member_state_names[] = {"join", "invite", "leave", "ban", "knock"};

static PyObject *strlist_tuple(const mx_strlist *l) {
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

/* The UTF-8 of a str argument, or NULL with an exception. A NUL inside
 * would silently cut the id short in C, so it is refused. */
static const char *str_arg(PyObject *o, const char *what) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(o, &len);
    if (s && strlen(s) != (size_t)len) {
        PyErr_Format(PyExc_ValueError, "%s contains a NUL character", what);
        return NULL;
    }
    return s;
}

/* Raises for a failed mx_rooms_apply_*: errno says why. */
static PyObject *apply_error(int err, const char *what) {
    if (err == EINVAL) return PyErr_Format(PyExc_ValueError, "%s", what);
    return PyErr_NoMemory();
}

/* ---- Member -------------------------------------------------------------- */

static PyObject *new_member(PyTypeObject *tp, const mx_member *m) {
    MemberObject *self = PyObject_New(MemberObject, tp);
    if (!self) return NULL;
    mx_member_incref(m);
    self->m = m;
    return (PyObject *)self;
}

static void Member_dealloc(MemberObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    mx_member_decref(self->m);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyObject *Member_user_id(MemberObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->m->user_id);
}

static PyObject *Member_membership(MemberObject *self, void *c) {
    (void)c;
    return PyUnicode_FromString(member_state_names[self->m->membership]);
}

static PyObject *Member_display_name(MemberObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->m->display_name);
}

static PyObject *Member_avatar_url(MemberObject *self, void *c) {
    (void)c;
    return mx_str_or_none(self->m->avatar_url);
}

static PyObject *Member_repr(MemberObject *self) {
    return PyUnicode_FromFormat("<Member %s %s>", self->m->user_id,
                                member_state_names[self->m->membership]);
}

static PyGetSetDef Member_getset[] = {
    {"user_id", (getter)Member_user_id, NULL, NULL, NULL},
    {"membership", (getter)Member_membership, NULL,
     "'join', 'invite', 'leave', 'ban' or 'knock'.", NULL},
    {"display_name", (getter)Member_display_name, NULL,
     "The member event's displayname (not disambiguated), or None.", NULL},
    {"avatar_url", (getter)Member_avatar_url, NULL, "An mxc:// URL, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Member_slots[] = {
    {Py_tp_doc, "One member of a room, as of a RoomInfo snapshot."},
    {Py_tp_dealloc, Member_dealloc},
    {Py_tp_getset, Member_getset},
    {Py_tp_repr, Member_repr},
    {0, NULL},
};

PyType_Spec mx_Member_spec = {
    .name = "matridge._core.Member",
    .basicsize = sizeof(MemberObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Member_slots,
};

/* ---- RoomInfo ------------------------------------------------------------ */

static PyObject *new_room_info(PyTypeObject *tp, mx_room_state *snap) {
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
    return strlist_tuple((const mx_strlist *)((const char *)self->snap + (size_t)offset));
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
            PyObject *val = key ? new_member(st->MemberType, m) : NULL;
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

/* d[key] = v, the key decoded as the rest of the server's text is (bytes
 * that are not UTF-8 become U+FFFD): one bad key must not make the whole
 * getter raise. Consumes `v`. */
static int put_text_key(PyObject *d, const char *key, PyObject *v) {
    PyObject *k = v ? mx_str_or_none(key) : NULL;
    int rc = k ? PyDict_SetItem(d, k, v) : -1;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

/* {key: level} of a sorted level array. */
static PyObject *levels_dict(const mx_level *l, size_t n) {
    PyObject *d = PyDict_New();
    for (size_t i = 0; d && i < n; i++)
        if (put_text_key(d, l[i].key, PyLong_FromLongLong((long long)l[i].level)) < 0) Py_CLEAR(d);
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
    const char *user_id = str_arg(arg, "user_id");
    if (!user_id) return NULL;
    return PyLong_FromLongLong((long long)mx_room_power_level(self->snap, user_id));
}

static PyObject *RoomInfo_member_display_name(RoomInfoObject *self, PyObject *arg) {
    const char *user_id = str_arg(arg, "user_id");
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

/* ---- RoomCache ----------------------------------------------------------- */

static PyObject *RoomCache_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"user_id", NULL};
    PyObject *user = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:RoomCache", kwlist, &user)) return NULL;
    const char *user_id = NULL;
    if (user != Py_None && !(user_id = str_arg(user, "user_id"))) return NULL;
    mx_rooms *rooms = mx_rooms_new();
    if (!rooms) return PyErr_NoMemory();
    if (user_id && mx_rooms_set_user_id(rooms, user_id) < 0) {
        mx_rooms_decref(rooms);
        return PyErr_NoMemory();
    }
    RoomCacheObject *self = (RoomCacheObject *)tp->tp_alloc(tp, 0);
    if (!self) {
        mx_rooms_decref(rooms);
        return NULL;
    }
    self->rooms = rooms;
    return (PyObject *)self;
}

PyObject *mx_RoomCache_wrap(mx_state *st, mx_rooms *r) {
    PyTypeObject *tp = st->RoomCacheType;
    RoomCacheObject *self = (RoomCacheObject *)tp->tp_alloc(tp, 0);
    if (!self) return NULL;
    mx_rooms_incref(r);
    self->rooms = r;
    return (PyObject *)self;
}

static void RoomCache_dealloc(RoomCacheObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    if (self->rooms) mx_rooms_decref(self->rooms);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *RoomCache_apply_sync(RoomCacheObject *self, PyObject *data) {
    if (!PyBytes_Check(data))
        return PyErr_Format(PyExc_TypeError, "apply_sync() wants bytes, not %.100s",
                            Py_TYPE(data)->tp_name);
    /* bytes are immutable and `data` stays referenced: no copy needed. */
    const char *buf = PyBytes_AS_STRING(data);
    size_t len = (size_t)PyBytes_GET_SIZE(data);
    int parsed = 0, rc = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    cJSON *root = mx_json_parse(buf, len); /* owned here */
    if (root) {
        parsed = 1;
        rc = mx_rooms_apply_sync(self->rooms, root);
        err = errno;
        cJSON_Delete(root);
    }
    Py_END_ALLOW_THREADS
    if (!parsed) return PyErr_Format(PyExc_ValueError, "the /sync body is not valid JSON");
    if (rc < 0) return apply_error(err, "a /sync body must be a JSON object");
    Py_RETURN_NONE;
}

static PyObject *RoomCache_apply_state(RoomCacheObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"room_id", "data", "asked_at", NULL};
    PyObject *room_obj, *data, *asked_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:apply_state", kwlist, &room_obj, &data,
                                     &asked_obj))
        return NULL;
    const char *room_id = str_arg(room_obj, "room_id");
    if (!room_id) return NULL;
    if (!PyBytes_Check(data))
        return PyErr_Format(PyExc_TypeError, "apply_state() wants bytes, not %.100s",
                            Py_TYPE(data)->tp_name);
    uint64_t asked_at = 0;
    int asked_now = asked_obj == Py_None;
    if (!asked_now) {
        unsigned long long v = PyLong_AsUnsignedLongLong(asked_obj);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
        asked_at = (uint64_t)v;
    }
    const char *buf = PyBytes_AS_STRING(data);
    size_t len = (size_t)PyBytes_GET_SIZE(data);
    int parsed = 0, rc = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    cJSON *root = mx_json_parse(buf, len); /* owned here */
    if (root) {
        parsed = 1;
        if (asked_now) asked_at = mx_rooms_seq(self->rooms);
        rc = mx_rooms_apply_state(self->rooms, room_id, root, asked_at);
        err = errno;
        cJSON_Delete(root);
    }
    Py_END_ALLOW_THREADS
    if (!parsed) return PyErr_Format(PyExc_ValueError, "the state body is not valid JSON");
    if (rc < 0)
        return apply_error(err, "a state body must be a JSON array, for a valid room id");
    Py_RETURN_NONE;
}

static PyObject *RoomCache_get(RoomCacheObject *self, PyObject *arg) {
    const char *room_id = str_arg(arg, "room_id");
    if (!room_id) return NULL;
    mx_state *st = mx_state_of_type(Py_TYPE(self));
    if (!st) return NULL;
    mx_room_state *snap;
    int err;
    Py_BEGIN_ALLOW_THREADS
    snap = mx_rooms_snapshot(self->rooms, room_id, &err);
    Py_END_ALLOW_THREADS
    if (!snap) {
        if (err) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    return new_room_info(st->RoomInfoType, snap);
}

static PyObject *RoomCache_member_display_name(RoomCacheObject *self, PyObject *args,
                                               PyObject *kw) {
    static char *kwlist[] = {"room_id", "user_id", NULL};
    PyObject *room_obj, *user_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:member_display_name", kwlist, &room_obj,
                                     &user_obj))
        return NULL;
    const char *room_id = str_arg(room_obj, "room_id");
    const char *user_id = room_id ? str_arg(user_obj, "user_id") : NULL;
    if (!user_id) return NULL;
    char *name;
    int err;
    /* The UTF-8 buffers belong to the argument objects, which the caller
     * keeps alive for the whole call. */
    Py_BEGIN_ALLOW_THREADS
    name = mx_rooms_member_name(self->rooms, room_id, user_id, &err);
    Py_END_ALLOW_THREADS
    if (!name) {
        if (err) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    PyObject *s = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace");
    free(name);
    return s;
}

static PyObject *RoomCache_room_ids(RoomCacheObject *self, PyObject *unused) {
    (void)unused;
    char **ids;
    size_t n;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mx_rooms_ids(self->rooms, &ids, &n);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_NoMemory();
    mx_strlist l = {ids, n, n};
    PyObject *t = strlist_tuple(&l);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    return t;
}

static PyObject *RoomCache_direct_rooms(RoomCacheObject *self, PyObject *unused) {
    (void)unused;
    mx_direct_room *d;
    size_t n;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mx_rooms_direct(self->rooms, &d, &n);
    Py_END_ALLOW_THREADS
    if (rc < 0) return PyErr_NoMemory();
    PyObject *dict = PyDict_New();
    for (size_t i = 0; dict && i < n; i++)
        if (put_text_key(dict, d[i].room_id, mx_str_or_none(d[i].users.items[0])) < 0)
            Py_CLEAR(dict);
    mx_direct_rooms_free(d, n);
    return dict;
}

static PyObject *RoomCache_user_id(RoomCacheObject *self, void *c) {
    (void)c;
    char *user_id;
    int err;
    Py_BEGIN_ALLOW_THREADS
    user_id = mx_rooms_user_id(self->rooms, &err);
    Py_END_ALLOW_THREADS
    if (err) return PyErr_NoMemory();
    PyObject *s = mx_str_or_none(user_id);
    free(user_id);
    return s;
}

static int RoomCache_set_user_id(RoomCacheObject *self, PyObject *value, void *c) {
    (void)c;
    const char *user_id = NULL;
    if (value && value != Py_None && !(user_id = str_arg(value, "user_id"))) return -1;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mx_rooms_set_user_id(self->rooms, user_id);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static Py_ssize_t RoomCache_len(RoomCacheObject *self) {
    size_t n;
    Py_BEGIN_ALLOW_THREADS
    n = mx_rooms_len(self->rooms);
    Py_END_ALLOW_THREADS
    return (Py_ssize_t)n;
}

static int RoomCache_contains(RoomCacheObject *self, PyObject *key) {
    if (!PyUnicode_Check(key)) return 0;
    Py_ssize_t len;
    const char *room_id = PyUnicode_AsUTF8AndSize(key, &len);
    if (!room_id) return -1;
    if (strlen(room_id) != (size_t)len) return 0; /* no room id holds a NUL */
    int found;
    Py_BEGIN_ALLOW_THREADS
    found = mx_rooms_contains(self->rooms, room_id);
    Py_END_ALLOW_THREADS
    return found;
}

static PyMethodDef RoomCache_methods[] = {
    {"apply_sync", (PyCFunction)RoomCache_apply_sync, METH_O,
     "apply_sync($self, data, /)\n--\n\n"
     "Applies a /sync response body (bytes); the GIL is released meanwhile."},
    {"apply_state", (PyCFunction)(void (*)(void))RoomCache_apply_state,
     METH_VARARGS | METH_KEYWORDS,
     "apply_state($self, /, room_id, data, asked_at=None)\n--\n\n"
     "Applies a full state list (bytes) asked for when sync_count was asked_at\n"
     "(None: now). Members and fields that a /sync changed since stay."},
    {"get", (PyCFunction)RoomCache_get, METH_O,
     "get($self, room_id, /)\n--\n\nA RoomInfo snapshot of the room, or None."},
    {"member_display_name", (PyCFunction)(void (*)(void))RoomCache_member_display_name,
     METH_VARARGS | METH_KEYWORDS,
     "member_display_name($self, /, room_id, user_id)\n--\n\n"
     "The member's disambiguated name, without a snapshot of the room; None if the\n"
     "room or member is unknown."},
    {"room_ids", (PyCFunction)RoomCache_room_ids, METH_NOARGS,
     "room_ids($self, /)\n--\n\nEvery known room id, sorted."},
    {"direct_rooms", (PyCFunction)RoomCache_direct_rooms, METH_NOARGS,
     "direct_rooms($self, /)\n--\n\n"
     "Room id -> the other user id, for every room of the account's m.direct."},
    {NULL, NULL, 0, NULL},
};

static PyObject *RoomCache_sync_count(RoomCacheObject *self, void *c) {
    (void)c;
    uint64_t seq;
    Py_BEGIN_ALLOW_THREADS
    seq = mx_rooms_seq(self->rooms);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong((unsigned long long)seq);
}

static PyGetSetDef RoomCache_getset[] = {
    {"sync_count", (getter)RoomCache_sync_count, NULL,
     "How many /sync bodies the cache has applied (see apply_state's asked_at).", NULL},
    {"user_id", (getter)RoomCache_user_id, (setter)RoomCache_set_user_id,
     "The account's own user id (left out of heroes), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot RoomCache_slots[] = {
    {Py_tp_doc, "RoomCache(user_id=None)\n--\n\nThe room state of one Matrix account."},
    {Py_tp_new, RoomCache_new},
    {Py_tp_dealloc, RoomCache_dealloc},
    {Py_tp_methods, RoomCache_methods},
    {Py_tp_getset, RoomCache_getset},
    {Py_sq_length, RoomCache_len},
    {Py_sq_contains, RoomCache_contains},
    {0, NULL},
};

PyType_Spec mx_RoomCache_spec = {
    .name = "matridge._core.RoomCache",
    .basicsize = sizeof(RoomCacheObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = RoomCache_slots,
};

/* ---- registration -------------------------------------------------------- */

static PyTypeObject *add_type(PyObject *m, PyType_Spec *spec) {
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (!t) return NULL;
    if (PyModule_AddType(m, (PyTypeObject *)t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyTypeObject *)t;
}

int mx_roominfo_register(PyObject *m, mx_state *st) {
    if (!(st->RoomCacheType = add_type(m, &mx_RoomCache_spec))) return -1;
    if (!(st->RoomInfoType = add_type(m, &mx_RoomInfo_spec))) return -1;
    if (!(st->MemberType = add_type(m, &mx_Member_spec))) return -1;
    PyObject *creator = PyLong_FromLongLong((long long)MX_CREATOR_POWER_LEVEL);
    if (!creator) return -1;
    int rc = PyModule_AddObjectRef(m, "CREATOR_POWER_LEVEL", creator);
    Py_DECREF(creator);
    return rc;
}
