/* The History type: a read-only view of paged and aggregated room history,
 * and _core.history_from_pages, which builds one from /messages bodies. */
#include "py/historyobj.h"

#include <string.h>

#include "py/event.h"
#include "util/strmap.h"
#include "engine/engine.h"
#include "py/pyjson.h"

typedef struct {
    PyObject_HEAD
    mx_history *history; /* owned; Event views reference this object */
    mx_strmap index;     /* event id -> its slot in history->events; owned */
} HistoryObject;

PyObject *mx_History_new(mx_state *st, mx_history *h) {
    HistoryObject *self = PyObject_New(HistoryObject, st->HistoryType);
    if (!self) {
        mx_history_free(h);
        return NULL;
    }
    self->history = h;
    mx_strmap_init(&self->index);
    int failed = mx_strmap_reserve(&self->index, h->n_events) != 0;
    for (size_t i = 0; i < h->n_events && !failed; i++)
        failed = mx_strmap_put(&self->index, h->events[i]->event_id, (void *)&h->events[i],
                               NULL) != 0;
    if (failed) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void free_history(void *h) { mx_history_free(h); }

static void History_dealloc(HistoryObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    mx_engine_dispose(free_history, self->history); /* off the loop thread */
    mx_strmap_release(&self->index);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *History_events(HistoryObject *self, void *c) {
    (void)c;
    const mx_history *h = self->history;
    PyObject *t = PyTuple_New((Py_ssize_t)h->n_events);
    if (!t) return NULL;
    for (size_t i = 0; i < h->n_events; i++) {
        PyObject *e = mx_Event_new((PyObject *)self, h->events[i]);
        if (!e) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, e);
    }
    return t;
}

/* Member state of every page, for the senders' display names. */
static PyObject *History_state(HistoryObject *self, void *c) {
    (void)c;
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (const mx_page *p = self->history->pages; p; p = p->next) {
        for (size_t i = 0; i < p->state.n; i++) {
            PyObject *e = mx_Event_new((PyObject *)self, &p->state.events[i]);
            if (!e || PyList_Append(list, e) < 0) {
                Py_XDECREF(e);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(e);
        }
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

static PyObject *History_end(HistoryObject *self, void *c) {
    (void)c;
    const mx_history *h = self->history;
    /* Past the start of the room there is nowhere to continue from. */
    return mx_str_or_none(h->stop == MX_STOP_END ? NULL : h->token);
}

static PyObject *History_stopped(HistoryObject *self, void *c) {
    (void)c;
    static const char *names[] = {"incomplete", "event", "timestamp", "count", "end"};
    return PyUnicode_FromString(names[self->history->stop]);
}

static PyObject *History_fetched(HistoryObject *self, void *c) {
    (void)c;
    return PyLong_FromSize_t(self->history->n_raw);
}

static PyObject *History_pages(HistoryObject *self, void *c) {
    (void)c;
    size_t n = 0;
    for (const mx_page *p = self->history->pages; p; p = p->next) n++;
    return PyLong_FromSize_t(n);
}

/* Position of the event named by `arg` in the output, or -1 (no error). */
static Py_ssize_t position(HistoryObject *self, PyObject *arg) {
    const char *id = PyUnicode_AsUTF8(arg);
    if (!id) return -2;
    const mx_event **slot = mx_strmap_get(&self->index, id);
    return slot ? (Py_ssize_t)(slot - self->history->events) : -1;
}

static PyObject *History_replacement(HistoryObject *self, PyObject *arg) {
    Py_ssize_t i = position(self, arg);
    if (i == -2) return NULL;
    if (i < 0 || !self->history->replacements[i]) Py_RETURN_NONE;
    return mx_Event_new((PyObject *)self, self->history->replacements[i]);
}

static PyObject *History_reactions(HistoryObject *self, PyObject *arg) {
    Py_ssize_t i = position(self, arg);
    if (i == -2) return NULL;
    PyObject *d = PyDict_New();
    if (!d || i < 0) return d;
    const mx_reactions *r = &self->history->reactions[i];
    for (size_t k = 0; k < r->n; k++) {
        PyObject *sender = mx_str_or_none(r->items[k].sender);
        PyObject *key = mx_str_or_none(r->items[k].key);
        PyObject *keys = sender ? PyDict_GetItemWithError(d, sender) : NULL;
        int ok = sender && key && !PyErr_Occurred();
        if (ok && keys) {
            /* One reaction per key and sender, as XEP-0444 has it. */
            int has = PySequence_Contains(keys, key);
            ok = has >= 0 && (has || PyList_Append(keys, key) == 0);
        } else if (ok) {
            PyObject *fresh = PyList_New(1);
            ok = fresh && PyList_SetItem(fresh, 0, Py_NewRef(key)) == 0 &&
                 PyDict_SetItem(d, sender, fresh) == 0;
            Py_XDECREF(fresh);
        }
        Py_XDECREF(sender);
        Py_XDECREF(key);
        if (!ok) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

/* [(reaction event id, sender, key)] of the reactions to that event, in
 * time order: what a later redaction of one of them needs to be undone. */
static PyObject *History_reaction_events(HistoryObject *self, PyObject *arg) {
    Py_ssize_t i = position(self, arg);
    if (i == -2) return NULL;
    PyObject *list = PyList_New(0);
    if (!list || i < 0) return list;
    const mx_reactions *r = &self->history->reactions[i];
    for (size_t k = 0; k < r->n; k++) {
        const mx_reaction *it = &r->items[k];
        if (!it->event_id || !it->sender || !it->key) continue;
        PyObject *item = Py_BuildValue("(s s s)", it->event_id, it->sender, it->key);
        if (!item) {
            /* Server bytes that are not UTF-8: leave that one out. */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                Py_DECREF(list);
                return NULL;
            }
            PyErr_Clear();
            continue;
        }
        int failed = PyList_Append(list, item);
        Py_DECREF(item);
        if (failed) {
            Py_DECREF(list);
            return NULL;
        }
    }
    return list;
}

static PyGetSetDef History_getset[] = {
    {"events", (getter)History_events, NULL,
     "The aggregated events, oldest first: edits, reactions and redactions of events in the "
     "range are folded into them; those of older events remain, to apply to the archive.",
     NULL},
    {"state", (getter)History_state, NULL, "Member state sent along (lazy loading).", NULL},
    {"end", (getter)History_end, NULL,
     "Token to continue paging from, or None at the start of the room.", NULL},
    {"stopped", (getter)History_stopped, NULL,
     "Why paging stopped: 'event', 'timestamp', 'count' or 'end'.", NULL},
    {"fetched", (getter)History_fetched, NULL, "Raw events kept before aggregation.", NULL},
    {"pages", (getter)History_pages, NULL, "How many /messages pages were read.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef History_methods[] = {
    {"replacement", (PyCFunction)History_replacement, METH_O,
     "replacement($self, event_id, /)\n--\n\nThe latest valid edit of that event, or None."},
    {"reactions", (PyCFunction)History_reactions, METH_O,
     "reactions($self, event_id, /)\n--\n\n"
     "{sender: [keys]} of the reactions to that event."},
    {"reaction_events", (PyCFunction)History_reaction_events, METH_O,
     "reaction_events($self, event_id, /)\n--\n\n"
     "[(reaction event id, sender, key)] of the reactions to that event, in time order."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot History_slots[] = {
    {Py_tp_doc, "Room history paged from /messages and aggregated, oldest first."},
    {Py_tp_dealloc, History_dealloc},
    {Py_tp_getset, History_getset},
    {Py_tp_methods, History_methods},
    {0, NULL},
};

PyType_Spec mx_History_spec = {
    .name = "matridge._core.History",
    .basicsize = sizeof(HistoryObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = History_slots,
};

/* ---- history_from_pages ---------------------------------------------------- */

PyObject *mx_core_history_from_pages(PyObject *module, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"pages", "backwards", "until_event_id", "until_ts", "limit", NULL};
    PyObject *pages;
    int backwards = 1;
    const char *until_event_id = NULL;
    long long until_ts = -1;
    Py_ssize_t limit = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$pzLn:history_from_pages", kwlist, &pages,
                                     &backwards, &until_event_id, &until_ts, &limit))
        return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must not be negative");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(pages, "pages must be a sequence of bytes");
    if (!seq) return NULL;
    mx_history *h = mx_history_new(backwards, until_event_id, until_ts, (size_t)limit);
    if (!h) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    const char *reason = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), failed_at = -1;
    for (Py_ssize_t i = 0; i < n && h->stop == MX_STOP_NONE; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &view, PyBUF_SIMPLE) < 0) {
            mx_history_free(h);
            Py_DECREF(seq);
            return NULL;
        }
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = mx_history_add_page(h, view.buf, (size_t)view.len, &reason);
        Py_END_ALLOW_THREADS
        PyBuffer_Release(&view);
        if (rc != 0) {
            failed_at = i;
            break;
        }
    }
    Py_DECREF(seq);
    int rc = 0;
    if (failed_at < 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = mx_history_aggregate(h);
        Py_END_ALLOW_THREADS
    }
    if (failed_at >= 0 || rc != 0) {
        mx_history_free(h);
        if (failed_at >= 0)
            PyErr_Format(PyExc_ValueError, "page %zd is not a /messages response: %s",
                         failed_at, reason);
        else
            PyErr_NoMemory();
        return NULL;
    }
    return mx_History_new(PyModule_GetState(module), h);
}
