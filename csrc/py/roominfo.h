/* Python types over the room state cache (rooms.h): RoomCache, a view of
 * one account's cache; RoomInfo, an immutable snapshot of one room; Member. */
#ifndef MATRIDGE_ROOMINFO_H
#define MATRIDGE_ROOMINFO_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/rooms.h"

extern PyType_Spec mx_RoomCache_spec;
extern PyType_Spec mx_RoomInfo_spec;
extern PyType_Spec mx_Member_spec;

/* Creates the three types into `st` and adds them (and CREATOR_POWER_LEVEL)
 * to module `m`. 0, or -1 with an exception set. */
int mx_roominfo_register(PyObject *m, mx_state *st);

/* A RoomCache viewing `r` (takes a new reference to `r`), or NULL with an
 * exception set. For Client.rooms: the account's cache, as Python sees it. */
PyObject *mx_RoomCache_wrap(mx_state *st, mx_rooms *r);

#endif
