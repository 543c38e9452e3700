/* Conversion of parsed JSON into Python values, depth-bounded so hostile
 * nesting cannot exhaust the C stack. */
#include "py/pyjson.h"

#include <math.h>
#include <string.h>

#define MAX_DEPTH 512

PyObject *mx_str_or_none(const char *s) {
    if (!s) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

static PyObject *convert(const cJSON *v, int depth) {
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "JSON nested too deeply");
        return NULL;
    }
    if (!v || cJSON_IsNull(v)) Py_RETURN_NONE;
    if (cJSON_IsTrue(v)) Py_RETURN_TRUE;
    if (cJSON_IsFalse(v)) Py_RETURN_FALSE;
    if (cJSON_IsString(v)) return mx_str_or_none(v->valuestring);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* Matrix uses integers; keep exact ones as int. */
        if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)
            return PyLong_FromLongLong((long long)d);
        return PyFloat_FromDouble(d);
    }
    if (cJSON_IsArray(v)) {
        PyObject *list = PyList_New(0);
        if (!list) return NULL;
        for (const cJSON *c = v->child; c; c = c->next) {
            PyObject *item = convert(c, depth + 1);
            if (!item || PyList_Append(list, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(item);
        }
        return list;
    }
    if (cJSON_IsObject(v)) {
        PyObject *dict = PyDict_New();
        if (!dict) return NULL;
        for (const cJSON *c = v->child; c; c = c->next) {
            PyObject *key = mx_str_or_none(c->string ? c->string : "");
            if (!key) {
                Py_DECREF(dict);
                return NULL;
            }
            /* A key repeated in the JSON: the first one counts, as in the
             * decoder (cJSON_GetObjectItem finds the first), so ev.body and
             * ev.content["body"] never differ. */
            int seen = PyDict_Contains(dict, key);
            if (seen != 0) {
                Py_DECREF(key);
                if (seen < 0) {
                    Py_DECREF(dict);
                    return NULL;
                }
                continue;
            }
            PyObject *item = convert(c, depth + 1);
            if (!item || PyDict_SetItem(dict, key, item) < 0) {
                Py_XDECREF(key);
                Py_XDECREF(item);
                Py_DECREF(dict);
                return NULL;
            }
            Py_DECREF(key);
            Py_DECREF(item);
        }
        return dict;
    }
    Py_RETURN_NONE; /* cJSON_Raw/Invalid never come from the parser */
}

PyObject *mx_json_to_py(const cJSON *v) { return convert(v, 0); }

/* The UTF-8 of a str for cJSON, which keeps C strings: a NUL inside would
 * silently cut the value short, so such a str is refused. */
static const char *utf8_without_nul(PyObject *o, const char *what) {
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(o, &len);
    if (!s) return NULL;
    if (strlen(s) != (size_t)len) {
        PyErr_Format(PyExc_ValueError, "a JSON %s with a NUL character cannot be sent", what);
        return NULL;
    }
    return s;
}

static cJSON *to_json(PyObject *o, int depth) {
    if (depth > MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError, "value nested too deeply for JSON");
        return NULL;
    }
    cJSON *out = NULL;
    if (o == Py_None) {
        out = cJSON_CreateNull();
    } else if (PyBool_Check(o)) {
        out = cJSON_CreateBool(o == Py_True);
    } else if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (overflow || v > 9007199254740991LL || v < -9007199254740991LL) {
            PyErr_SetString(PyExc_ValueError, "integer out of the range JSON can carry");
            return NULL;
        }
        out = cJSON_CreateNumber((double)v);
    } else if (PyFloat_Check(o)) {
        double d = PyFloat_AS_DOUBLE(o);
        if (!isfinite(d)) {
            PyErr_SetString(PyExc_ValueError, "JSON cannot carry NaN or infinity");
            return NULL;
        }
        out = cJSON_CreateNumber(d);
    } else if (PyUnicode_Check(o)) {
        const char *s = utf8_without_nul(o, "string");
        if (!s) return NULL;
        out = cJSON_CreateString(s);
    } else if (PyList_Check(o) || PyTuple_Check(o)) {
        out = cJSON_CreateArray();
        if (!out) return (cJSON *)PyErr_NoMemory();
        PyObject *seq = PySequence_Fast(o, "expected a sequence");
        if (!seq) {
            cJSON_Delete(out);
            return NULL;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            cJSON *item = to_json(PySequence_Fast_GET_ITEM(seq, i), depth + 1);
            if (!item || !cJSON_AddItemToArray(out, item)) {
                if (item) {
                    cJSON_Delete(item);
                    PyErr_NoMemory();
                }
                Py_DECREF(seq);
                cJSON_Delete(out);
                return NULL;
            }
        }
        Py_DECREF(seq);
        return out;
    } else if (PyDict_Check(o)) {
        out = cJSON_CreateObject();
        if (!out) return (cJSON *)PyErr_NoMemory();
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(o, &pos, &key, &value)) {
            if (!PyUnicode_Check(key)) {
                PyErr_SetString(PyExc_TypeError, "JSON object keys must be str");
                cJSON_Delete(out);
                return NULL;
            }
            const char *k = utf8_without_nul(key, "object key");
            cJSON *item = k ? to_json(value, depth + 1) : NULL;
            /* cJSON_AddItemToObject copies the key; when that fails the
             * item is still ours. */
            if (!item || !cJSON_AddItemToObject(out, k, item)) {
                if (item) {
                    cJSON_Delete(item);
                    PyErr_NoMemory();
                }
                cJSON_Delete(out);
                return NULL;
            }
        }
        return out;
    } else {
        PyErr_Format(PyExc_TypeError, "cannot send a %s as JSON", Py_TYPE(o)->tp_name);
        return NULL;
    }
    if (!out) PyErr_NoMemory();
    return out;
}

cJSON *mx_py_to_json(PyObject *o) { return to_json(o, 0); }

/* The UTF-8 of a str argument, or NULL with an exception. A NUL inside
 * would silently cut the id short in C, so it is refused. */
const char *mx_str_arg(PyObject *o, const char *what) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be str, not %.100s", what, Py_TYPE(o)->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(o, &len);
    if (s && strlen(s) != (size_t)len) {
        PyErr_Format(PyExc_ValueError, "%s contains a NUL character", what);
        return NULL;
    }
    return s;
}

/* d[key] = v, the key decoded as the rest of the server's text is (bytes
 * that are not UTF-8 become U+FFFD): one bad key must not make the whole
 * getter raise. Consumes `v`. */
int mx_put_text_key(PyObject *d, const char *key, PyObject *v) {
    PyObject *k = v ? mx_str_or_none(key) : NULL;
    int rc = k ? PyDict_SetItem(d, k, v) : -1;
    Py_XDECREF(k);
    Py_XDECREF(v);
    return rc;
}

