/* matridge._core: module init, module state, exception types, and the
 * loop-side entry points (the wakeup fd and completion processing). */
#include "py/module.h"

#include "py/client.h"
#include "py/completion.h"
#include "engine/engine.h"
#include "py/event.h"
#include "py/message.h"
#include "py/room.h"
#include "py/syncbatch.h"
#include "py/historyobj.h"
#include "py/roomcache.h"
#include "py/html_py.h"

static struct PyModuleDef core_module;

mx_state *mx_state_of_type(PyTypeObject *type) {
    PyObject *m = PyType_GetModuleByDef(type, &core_module);
    return m ? PyModule_GetState(m) : NULL;
}

static PyObject *core_wakeup_fd(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    if (mx_engine_start() != 0) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(mx_engine_wakeup_fd());
}

/* Called by the asyncio reader callback: resolves every finished request. */
static PyObject *core_process_completions(PyObject *module, PyObject *unused) {
    (void)unused;
    mx_state *st = PyModule_GetState(module);
    mx_engine_clear_wakeup();
    long n = 0;
    mx_request *r = mx_engine_take_completions();
    while (r) {
        mx_request *next = r->next;
        mx_completion_deliver(st, r);
        r = next;
        n++;
    }
    return PyLong_FromLong(n);
}

static PyMethodDef core_methods[] = {
    {"wakeup_fd", core_wakeup_fd, METH_NOARGS,
     "wakeup_fd($module, /)\n--\n\n"
     "The fd that becomes readable when requests finish (starts the engine)."},
    {"process_completions", core_process_completions, METH_NOARGS,
     "process_completions($module, /)\n--\n\n"
     "Resolves the futures of finished requests; returns how many."},
    {"decode_sync", mx_core_decode_sync, METH_O,
     "decode_sync($module, data, /)\n--\n\n"
     "A SyncBatch from a /sync body, decoded with the GIL released."},
    {"decode_event", (PyCFunction)(void (*)(void))mx_core_decode_event, METH_FASTCALL,
     "decode_event($module, data, room_id, /)\n--\n\n"
     "An Event from one decrypted event's JSON, decoded with the GIL released."},
    {"history_from_pages", (PyCFunction)(void (*)(void))mx_core_history_from_pages,
     METH_VARARGS | METH_KEYWORDS,
     "history_from_pages($module, /, pages, *, backwards=True, until_event_id=None,\n"
     "                   until_ts=-1, limit=0)\n--\n\n"
     "A History from /messages bodies."},
    MX_HTML_METHODS,
    {NULL, NULL, 0, NULL},
};

static PyObject *add_type(PyObject *m, PyType_Spec *spec) {
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (!t) return NULL;
    if (PyModule_AddType(m, (PyTypeObject *)t) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

static int core_exec(PyObject *m) {
    mx_state *st = PyModule_GetState(m);
    mx_completion_register_kinds();
    st->MatrixError = PyErr_NewExceptionWithDoc(
        "matridge._core.MatrixError",
        "The homeserver answered with an error (attributes: status, errcode, error, "
        "retry_after_ms, soft_logout).",
        NULL, NULL);
    st->NetworkError = PyErr_NewExceptionWithDoc(
        "matridge._core.NetworkError",
        "The homeserver could not be reached, or did not answer in time.", NULL, NULL);
    st->TooLargeError = PyErr_NewExceptionWithDoc(
        "matridge._core.TooLargeError",
        "A response body (e.g. a media download) went over the size cap of its request.",
        NULL, NULL);
    if (!st->MatrixError || !st->NetworkError || !st->TooLargeError) return -1;
    if (PyModule_AddObjectRef(m, "TooLargeError", st->TooLargeError) < 0) return -1;
    if (PyModule_AddObjectRef(m, "MatrixError", st->MatrixError) < 0) return -1;
    if (PyModule_AddObjectRef(m, "NetworkError", st->NetworkError) < 0) return -1;
    if (!(st->ClientType = (PyTypeObject *)add_type(m, &mx_Client_spec))) return -1;
    if (!(st->SyncBatchType = (PyTypeObject *)add_type(m, &mx_SyncBatch_spec))) return -1;
    if (!(st->RoomType = (PyTypeObject *)add_type(m, &mx_Room_spec))) return -1;
    if (!(st->EventType = (PyTypeObject *)add_type(m, &mx_Event_spec))) return -1;
    if (!(st->MessageType = (PyTypeObject *)add_type(m, &mx_Message_spec))) return -1;
    if (!(st->ReceiptType = PyStructSequence_NewType(&mx_Receipt_desc))) return -1;
    if (!(st->HistoryType = (PyTypeObject *)add_type(m, &mx_History_spec))) return -1;
    if (PyModule_AddObjectRef(m, "Receipt", (PyObject *)st->ReceiptType) < 0) return -1;
    if (mx_roomcache_register(m, st) < 0) return -1;
    if (PyModule_AddIntConstant(m, "MAX_UNDELIVERED", MX_MAX_UNDELIVERED) < 0) return -1;
    for (int w = 0; w < MX_WORD_COUNT; w++)
        if (!(st->words[w] = PyUnicode_InternFromString(mx_words[w]))) return -1;
    for (int k = 0; k < MX_EV_KIND_COUNT; k++)
        if (!(st->kind_names[k] = PyUnicode_InternFromString(mx_event_kind_names[k]))) return -1;
    return 0;
}

static int core_traverse(PyObject *m, visitproc visit, void *arg) {
    mx_state *st = PyModule_GetState(m);
    Py_VISIT(st->MatrixError);
    Py_VISIT(st->NetworkError);
    Py_VISIT(st->TooLargeError);
    Py_VISIT(st->ClientType);
    Py_VISIT(st->SyncBatchType);
    Py_VISIT(st->RoomType);
    Py_VISIT(st->EventType);
    Py_VISIT(st->MessageType);
    Py_VISIT(st->ReceiptType);
    Py_VISIT(st->HistoryType);
    Py_VISIT(st->RoomCacheType);
    Py_VISIT(st->RoomInfoType);
    Py_VISIT(st->MemberType);
    return 0;
}

static int core_clear(PyObject *m) {
    mx_state *st = PyModule_GetState(m);
    Py_CLEAR(st->MatrixError);
    Py_CLEAR(st->NetworkError);
    Py_CLEAR(st->TooLargeError);
    Py_CLEAR(st->ClientType);
    Py_CLEAR(st->SyncBatchType);
    Py_CLEAR(st->RoomType);
    Py_CLEAR(st->EventType);
    Py_CLEAR(st->MessageType);
    Py_CLEAR(st->ReceiptType);
    Py_CLEAR(st->HistoryType);
    Py_CLEAR(st->RoomCacheType);
    Py_CLEAR(st->RoomInfoType);
    Py_CLEAR(st->MemberType);
    for (int w = 0; w < MX_WORD_COUNT; w++) Py_CLEAR(st->words[w]);
    for (int k = 0; k < MX_EV_KIND_COUNT; k++) Py_CLEAR(st->kind_names[k]);
    return 0;
}

static void core_free(void *m) { core_clear((PyObject *)m); }

/* One engine thread serves the whole process:
 * a second interpreter's module would share it with objects of another
 * interpreter's types. Importing it there fails instead. */
static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "matridge._core",
    .m_doc = "matridge's Matrix engine: libcurl, cJSON and a thread of its own.",
    .m_size = sizeof(mx_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
