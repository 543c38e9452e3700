/* The RoomInfo type: an immutable snapshot of one room of the cache. */
#ifndef MATRIDGE_ROOMINFO_H
#define MATRIDGE_ROOMINFO_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/rooms.h"

extern PyType_Spec mx_RoomInfo_spec;

/* A RoomInfo of type `tp` owning `snap` (freed also on failure). */
PyObject *mx_RoomInfo_new(PyTypeObject *tp, mx_room_state *snap);

/* A tuple of str from a string list. */
PyObject *mx_strlist_tuple(const mx_strlist *l);

#endif
