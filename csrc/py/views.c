/* What the view types share (views.h). */
#include "py/views.h"

#include <string.h>

#include "py/pyjson.h"

PyObject *mx_text(mx_state *st, const char *s) {
    int w = mx_word_index(s);
    if (w >= 0) return Py_NewRef(st->words[w]);
    return mx_str_or_none(s);
}

PyObject *mx_str_measured(const char *s, const mx_utf8_info *info) {
    if (info->maxchar == 0) return PyUnicode_DecodeUTF8(s, (Py_ssize_t)info->len, "replace");
    PyObject *u = PyUnicode_New((Py_ssize_t)info->chars, (Py_UCS4)info->maxchar);
    if (!u) return NULL;
    void *data = PyUnicode_DATA(u);
    if (info->maxchar < 0x80) {
        memcpy(data, s, info->len);
        return u;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + info->len;
    switch (PyUnicode_KIND(u)) {
    case PyUnicode_1BYTE_KIND:
        for (Py_UCS1 *o = data; p < end;) *o++ = (Py_UCS1)mx_utf8_next(&p);
        break;
    case PyUnicode_2BYTE_KIND:
        for (Py_UCS2 *o = data; p < end;) *o++ = (Py_UCS2)mx_utf8_next(&p);
        break;
    default:
        for (Py_UCS4 *o = data; p < end;) *o++ = mx_utf8_next(&p);
        break;
    }
    return u;
}

PyObject *mx_int_or_none(int64_t v) {
    if (v < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong((long long)v);
}

PyObject *mx_str_tuple(const char *const *items, size_t n) {
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (!t) return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *s = mx_str_or_none(items[i]);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, s);
    }
    return t;
}

/* The string items of a JSON array as a tuple (other items skipped). */
PyObject *mx_json_str_tuple(const cJSON *array) {
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    if (cJSON_IsArray(array)) {
        for (const cJSON *c = array->child; c; c = c->next) {
            if (!cJSON_IsString(c)) continue;
            PyObject *s = mx_str_or_none(c->valuestring);
            if (!s || PyList_Append(list, s) < 0) {
                Py_XDECREF(s);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(s);
        }
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

void mx_view_dealloc(PyObject *o) {
    mx_ViewObject *self = (mx_ViewObject *)o;
    PyTypeObject *tp = Py_TYPE(self);
    Py_CLEAR(self->owner);
    tp->tp_free(self);
    Py_DECREF(tp);
}

