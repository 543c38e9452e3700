/* The Room type (a view of one room of a SyncBatch) and Receipt. */
#ifndef MATRIDGE_ROOM_H
#define MATRIDGE_ROOM_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/decode.h"

extern PyType_Spec mx_Room_spec;
extern PyStructSequence_Desc mx_Receipt_desc;

/* A Room view of `room`, kept alive by `owner` (the SyncBatch). */
PyObject *mx_Room_new(mx_state *st, PyObject *owner, const mx_room *room);

#endif
