/* The SyncBatch type, _core.decode_sync and _core.decode_event. */
#ifndef MATRIDGE_SYNCBATCH_H
#define MATRIDGE_SYNCBATCH_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/decode.h"

extern PyType_Spec mx_SyncBatch_spec;

/* Wraps `batch` (ownership moves to the new object, also on failure). */
PyObject *mx_SyncBatch_new(mx_state *st, mx_batch *batch);
/* The batch a SyncBatch owns (borrowed), or NULL with TypeError. */
mx_batch *mx_SyncBatch_batch(mx_state *st, PyObject *o);

/* _core.decode_sync(data): parses and decodes a /sync body on the calling
 * thread with the GIL released (for tests and benchmarks; the engine decodes
 * on its own thread). */
PyObject *mx_core_decode_sync(PyObject *module, PyObject *arg);

/* _core.decode_event(data, room_id): one event's JSON (a decrypted event as
 * the gateway assembles it) into an Event view owning its own batch; parsed
 * and decoded with the GIL released. ValueError when it is not a JSON
 * object. */
PyObject *mx_core_decode_event(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

#endif
