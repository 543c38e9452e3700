/* The Member type: one member of a room, as of a RoomInfo snapshot. */
#include "py/member.h"

#include "py/pyjson.h"

typedef struct {
    PyObject_HEAD
    const mx_member *m; /* counted reference to an immutable member */
} MemberObject;


static const char *const member_state_names[] = {"join", "invite", "leave", "ban", "knock"};

PyObject *mx_Member_new(PyTypeObject *tp, const mx_member *m) {
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

