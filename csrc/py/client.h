/* Client: one Matrix account. Every API call becomes an engine request and
 * returns its request id; the result resolves the asyncio future given. */
#ifndef MATRIDGE_CLIENT_H
#define MATRIDGE_CLIENT_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "engine/engine.h"

typedef struct {
    PyObject_HEAD
    mx_account *account; /* counted reference */
    PyObject *on_batch;  /* callables while a sync loop runs */
    PyObject *on_error;
    /* Batches of the current loop delivered and not yet acknowledged (GIL). */
    int unacked;
} mx_ClientObject;

extern PyType_Spec mx_Client_spec;

#endif
