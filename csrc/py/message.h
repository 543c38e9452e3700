/* The Message type (a view of an event's displayable content). */
#ifndef MATRIDGE_MESSAGE_H
#define MATRIDGE_MESSAGE_H

#include "py/module.h" /* Python.h first: it sets the feature macros */
#include "matrix/decode.h"

extern PyType_Spec mx_Message_spec;

/* A Message view of `msg` kept alive by `owner`, or None when msg is NULL. */
PyObject *mx_Message_new(PyObject *owner, const mx_message *msg);

#endif
