/* The Python view of room history (see history.h). */
#ifndef MATRIDGE_HISTORYOBJ_H
#define MATRIDGE_HISTORYOBJ_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/history.h"

extern PyType_Spec mx_History_spec;

/* Wraps an aggregated history (ownership moves to the new object, also on
 * failure). */
PyObject *mx_History_new(mx_state *st, mx_history *h);

/* _core.history_from_pages(pages, *, backwards, until_event_id, until_ts,
 * limit): pages and aggregates /messages bodies with the GIL released. */
PyObject *mx_core_history_from_pages(PyObject *module, PyObject *args, PyObject *kw);

#endif
