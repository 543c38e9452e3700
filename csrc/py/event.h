/* The Event type: a lazy view of one decoded event. */
#ifndef MATRIDGE_EVENT_H
#define MATRIDGE_EVENT_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/decode.h"

extern PyType_Spec mx_Event_spec;

/* Event.kind's values, by kind. */
extern const char *const mx_event_kind_names[MX_EV_KIND_COUNT];

/* An Event view of `ev`, kept alive by `owner` (one of this module's
 * objects owning the memory), and a tuple of such views. */
PyObject *mx_Event_new(PyObject *owner, const mx_event *ev);
PyObject *mx_events_tuple(PyObject *owner, const mx_events *evs);

#endif
