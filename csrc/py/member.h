/* The Member type: an immutable, counted member record of the room cache. */
#ifndef MATRIDGE_MEMBER_H
#define MATRIDGE_MEMBER_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/rooms.h"

extern PyType_Spec mx_Member_spec;

/* A Member of type `tp` holding a new reference to `m`; NULL + exception. */
PyObject *mx_Member_new(PyTypeObject *tp, const mx_member *m);

#endif
