/* Python views over decoded sync batches: SyncBatch, Room, Event, Message
 * and the Receipt struct sequence.
 * Each view holds a reference to the SyncBatch that owns the memory, and
 * builds Python values only when an attribute is read. */
#ifndef MATRIDGE_EVENT_H
#define MATRIDGE_EVENT_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/decode.h"

extern PyType_Spec mx_SyncBatch_spec;
extern PyType_Spec mx_Room_spec;
extern PyType_Spec mx_Event_spec;
extern PyType_Spec mx_Message_spec;
extern PyStructSequence_Desc mx_Receipt_desc;

/* Wraps `batch` (ownership moves to the new object, also on failure). */
PyObject *mx_SyncBatch_new(mx_state *st, mx_batch *batch);

/* The batch a SyncBatch owns (borrowed), or NULL with TypeError. */
mx_batch *mx_SyncBatch_batch(mx_state *st, PyObject *o);

/* An Event view of `ev`, kept alive by `owner` (one of this module's
 * objects owning the memory), and a tuple of such views. */
PyObject *mx_Event_new(PyObject *owner, const mx_event *ev);
PyObject *mx_events_tuple(PyObject *owner, const mx_events *evs);

/* _core.decode_sync(data): parses and decodes a /sync body on the calling
 * thread with the GIL released (for tests and benchmarks; the engine decodes
 * on its own thread). */
PyObject *mx_core_decode_sync(PyObject *module, PyObject *arg);

#endif
