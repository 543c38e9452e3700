/* cJSON values to Python objects. Needs the GIL; called on the loop thread
 * only for what Python actually reads. */
#ifndef MATRIDGE_PYJSON_H
#define MATRIDGE_PYJSON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <cjson/cJSON.h>

/* New reference, or NULL with an exception set. NULL input gives None. */
PyObject *mx_json_to_py(const cJSON *v);
/* A Python str from a C string that may be NULL (gives None). Invalid UTF-8
 * is replaced rather than failing the whole event. */
PyObject *mx_str_or_none(const char *s);

/* A Python value (dict, list, tuple, str, int, float, bool, None) as a new
 * cJSON tree owned by the caller, or NULL with an exception set. */
cJSON *mx_py_to_json(PyObject *o);

/* The UTF-8 of a str argument (borrowed from `o`), or NULL with an
 * exception: TypeError for another type, ValueError for a str with a NUL
 * (which would silently cut an id short in C). `what` names it. */
const char *mx_str_arg(PyObject *o, const char *what);

/* d[key] = v, the key decoded as the rest of the server's text is (bytes
 * that are not UTF-8 become U+FFFD). Consumes `v` (NULL: fails). 0 or -1. */
int mx_put_text_key(PyObject *d, const char *key, PyObject *v);

#endif
