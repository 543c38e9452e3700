/* The RoomCache type: the Python face of one account's room state cache
 * (matrix/rooms.h); and the registration of it, RoomInfo and Member.
 *
 * Every call that takes the cache's mutex releases the GIL first: the engine
 * thread may hold the mutex for a whole batch, and Python threads should run
 * meanwhile. */
#include "py/roomcache.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "py/member.h"
#include "py/pyjson.h"
#include "py/roominfo.h"
#include "util/jsonparse.h"

typedef struct {
    PyObject_HEAD
    mx_rooms *rooms; /* counted reference */
} RoomCacheObject;


/* Raises for a failed mx_rooms_apply_*: errno says why. */
static PyObject *apply_error(int err, const char *what) {
    if (err == EINVAL) return PyErr_Format(PyExc_ValueError, "%s", what);
    return PyErr_NoMemory();
}

static PyObject *RoomCache_new(PyTypeObject *tp, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"user_id", NULL};
    PyObject *user = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:RoomCache", kwlist, &user)) return NULL;
    const char *user_id = NULL;
    if (user != Py_None && !(user_id = mx_str_arg(user, "user_id"))) return NULL;
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
    const char *room_id = mx_str_arg(room_obj, "room_id");
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
    const char *room_id = mx_str_arg(arg, "room_id");
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
    return mx_RoomInfo_new(st->RoomInfoType, snap);
}

static PyObject *RoomCache_member_display_name(RoomCacheObject *self, PyObject *args,
                                               PyObject *kw) {
    static char *kwlist[] = {"room_id", "user_id", NULL};
    PyObject *room_obj, *user_obj;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO:member_display_name", kwlist, &room_obj,
                                     &user_obj))
        return NULL;
    const char *room_id = mx_str_arg(room_obj, "room_id");
    const char *user_id = room_id ? mx_str_arg(user_obj, "user_id") : NULL;
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
    PyObject *t = mx_strlist_tuple(&l);
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
        if (mx_put_text_key(dict, d[i].room_id, mx_str_or_none(d[i].users.items[0])) < 0)
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
    if (value && value != Py_None && !(user_id = mx_str_arg(value, "user_id"))) return -1;
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

static PyTypeObject *add_type(PyObject *m, PyType_Spec *spec) {
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (!t) return NULL;
    if (PyModule_AddType(m, (PyTypeObject *)t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyTypeObject *)t;
}

int mx_roomcache_register(PyObject *m, mx_state *st) {
    if (!(st->RoomCacheType = add_type(m, &mx_RoomCache_spec))) return -1;
    if (!(st->RoomInfoType = add_type(m, &mx_RoomInfo_spec))) return -1;
    if (!(st->MemberType = add_type(m, &mx_Member_spec))) return -1;
    PyObject *creator = PyLong_FromLongLong((long long)MX_CREATOR_POWER_LEVEL);
    if (!creator) return -1;
    int rc = PyModule_AddObjectRef(m, "CREATOR_POWER_LEVEL", creator);
    Py_DECREF(creator);
    return rc;
}
