/* _core.html_to_text: the C converter, run without the GIL. */
#include "py/html_py.h"

#include <string.h>

#include "matrix/html.h"

/* A tuple of (start, end, user_id) tuples; a new reference or NULL. */
static PyObject *mentions_tuple(const mx_styled *s) {
    PyObject *all = PyTuple_New((Py_ssize_t)s->n_mentions);
    if (!all) return NULL;
    for (size_t k = 0; k < s->n_mentions; k++) {
        const mx_mention *m = &s->mentions[k];
        PyObject *one = Py_BuildValue("(nns)", (Py_ssize_t)m->start, (Py_ssize_t)m->end,
                                      m->user_id);
        if (!one) {
            Py_DECREF(all);
            return NULL;
        }
        PyTuple_SET_ITEM(all, (Py_ssize_t)k, one);
    }
    return all;
}

PyObject *mx_py_html_to_text(PyObject *module, PyObject *html) {
    (void)module;
    PyObject *bytes; /* owned: the UTF-8 (or given) bytes */
    if (PyUnicode_Check(html)) {
        /* lone surrogates pass through and become U+FFFD in C */
        bytes = PyUnicode_AsEncodedString(html, "utf-8", "surrogatepass");
        if (!bytes) return NULL;
    } else if (PyBytes_Check(html)) {
        bytes = Py_NewRef(html);
    } else {
        return PyErr_Format(PyExc_TypeError, "html_to_text() wants str or bytes, not %.100s",
                            Py_TYPE(html)->tp_name);
    }
    size_t len = (size_t)PyBytes_GET_SIZE(bytes);
    char *copy = malloc(len ? len : 1); /* owned: the input, readable without the GIL */
    if (!copy) {
        Py_DECREF(bytes);
        return PyErr_NoMemory();
    }
    memcpy(copy, PyBytes_AS_STRING(bytes), len);
    Py_DECREF(bytes);

    mx_styled styled; /* owned once filled in */
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mx_html_to_styled(copy, len, &styled);
    Py_END_ALLOW_THREADS
    free(copy);
    if (rc < 0) return PyErr_NoMemory();

    PyObject *result = NULL;
    PyObject *text = PyUnicode_DecodeUTF8(styled.text, (Py_ssize_t)styled.len, "strict");
    PyObject *mentions = text ? mentions_tuple(&styled) : NULL;
    if (mentions) result = PyTuple_Pack(2, text, mentions);
    Py_XDECREF(text);
    Py_XDECREF(mentions);
    mx_styled_free(&styled);
    return result;
}
