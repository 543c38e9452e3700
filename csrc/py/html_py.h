/* Python binding of the HTML converter (csrc/matrix/html.c). */
#ifndef MATRIDGE_HTML_PY_H
#define MATRIDGE_HTML_PY_H

#include "py/module.h" /* Python.h first: it sets the feature macros */

/* _core.html_to_text(html: str | bytes) -> (text, ((start, end, user_id), ...)) */
PyObject *mx_py_html_to_text(PyObject *module, PyObject *html);

#define MX_HTML_METHODS                                                              \
    {"html_to_text", mx_py_html_to_text, METH_O,                                   \
     "html_to_text(html, /)\n--\n\nMatrix HTML (str, or bytes of any encoding "      \
     "quality) to plain text with XEP-0393 styling. Returns (text, mentions): "      \
     "mentions are (start, end, user_id) spans of text, in code points."}

#endif
