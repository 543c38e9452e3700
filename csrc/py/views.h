/* What the lazy views of decoded records share (SyncBatch, Room, Event,
 * Message, History): the owner + pointer layout and small converters. Every
 * view holds a reference to the object owning the memory it points into and
 * builds Python values only when an attribute is read.
 *
 * None of these types takes part in the cyclic GC: a SyncBatch references no
 * Python object and views reference only their owner, so no cycle can form,
 * and a 100k-event batch does not trigger GC passes while it is read. */
#ifndef MATRIDGE_VIEWS_H
#define MATRIDGE_VIEWS_H

#include "py/module.h" /* Python.h first: it sets the feature macros */

#include <cjson/cJSON.h>
#include <stdint.h>

#include "util/utf8.h"
#include <stdint.h>

/* The layout every view starts with. */
typedef struct {
    PyObject_HEAD
    PyObject *owner; /* strong reference to the object owning the memory */
} mx_ViewObject;

/* tp_dealloc of every view type. */
void mx_view_dealloc(PyObject *self);

/* A str for a record's string: the interned one when the decoder pointed it
 * at one of the protocol's words (matrix/words.h), else a new one; None
 * for NULL. */
PyObject *mx_text(mx_state *st, const char *s);
/* A str of s[0..info->len), made in one pass at the width the decoder
 * measured (util/utf8.h); bytes that are not UTF-8 are replaced. */
PyObject *mx_str_measured(const char *s, const mx_utf8_info *info);
/* None for a negative value (unknown), else an int. */
PyObject *mx_int_or_none(int64_t v);
/* A tuple of str (bad UTF-8 replaced) from n C strings. */
PyObject *mx_str_tuple(const char *const *items, size_t n);
/* The string items of a JSON array as a tuple (other items skipped). */
PyObject *mx_json_str_tuple(const cJSON *array);

#endif
