/* The RoomCache type: a view of one account's room state cache. */
#ifndef MATRIDGE_ROOMCACHE_H
#define MATRIDGE_ROOMCACHE_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/rooms.h"

extern PyType_Spec mx_RoomCache_spec;

/* Creates RoomCache, RoomInfo and Member into `st` and adds them (and
 * CREATOR_POWER_LEVEL) to module `m`. 0, or -1 with an exception set. */
int mx_roomcache_register(PyObject *m, mx_state *st);

/* A RoomCache viewing `r` (takes a new reference to `r`), or NULL with an
 * exception set. For Client.rooms: the account's cache, as Python sees it. */
PyObject *mx_RoomCache_wrap(mx_state *st, mx_rooms *r);

#endif
