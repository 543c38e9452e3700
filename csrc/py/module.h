/* Module state shared by the extension's Python types. */
#ifndef MATRIDGE_MODULE_H
#define MATRIDGE_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "matrix/decode.h"
#include "matrix/words.h"

typedef struct {
    PyObject *MatrixError;  /* a homeserver answered with an error */
    PyObject *NetworkError; /* the homeserver could not be reached in time */
    PyObject *TooLargeError; /* a response body went over its size cap */
    PyTypeObject *ClientType;
    PyTypeObject *SyncBatchType;
    PyTypeObject *RoomType;
    PyTypeObject *EventType;
    PyTypeObject *MessageType;
    PyTypeObject *ReceiptType; /* a struct sequence */
    PyTypeObject *HistoryType;
    PyTypeObject *RoomCacheType; /* roominfo.c */
    PyTypeObject *RoomInfoType;
    PyTypeObject *MemberType;
    /* Interned, made once: what the views hand out for the protocol's
     * repeated words (matrix/words.h) and for Event.kind. */
    PyObject *words[MX_WORD_COUNT];
    PyObject *kind_names[MX_EV_KIND_COUNT];
} mx_state;

/* The state of the module that defined `type` (one of ours). */
mx_state *mx_state_of_type(PyTypeObject *type);

#endif
