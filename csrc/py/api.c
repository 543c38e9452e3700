/* The client-server API calls (api.h). Each call parses its arguments,
 * builds the URL from percent-encoded segments and a JSON body, and hands
 * one request to the engine. */
#include "py/api.h"

#include <errno.h>
#include <string.h>

#include "engine/files.h"
#include "engine/media.h"
#include "engine/oneevent.h"
#include "engine/paging.h"
#include "engine/roomstate.h"
#include "py/pyjson.h"
#include "matrix/url.h"

#define DEFAULT_TIMEOUT_MS 60000L
#define CS "/_matrix/client/v3"

/* ---- the request builder -------------------------------------------------- */

typedef struct {
    mx_method method;
    const char *path;            /* "{}" placeholders, filled from segs */
    const char *const *segs;
    const mx_query *query;       /* may be NULL */
    int auth;                    /* send the access token */
    mx_request_kind *kind;
} call_spec;

/* Prints `body` (consumed) into the request without the GIL. 0 or -1 + exception. */
static int attach_json(mx_request *r, cJSON *body) {
    char *printed;
    Py_BEGIN_ALLOW_THREADS
    printed = cJSON_PrintUnformatted(body); /* owned by the request below */
    cJSON_Delete(body);
    Py_END_ALLOW_THREADS
    if (!printed) {
        PyErr_NoMemory();
        return -1;
    }
    r->body = printed;
    r->body_len = strlen(printed);
    return 0;
}

/* A request for `spec` on self's account, not yet submitted; `body` (may be
 * NULL) is consumed. Owned by the caller; NULL with an exception set. */
static mx_request *build(mx_ClientObject *self, const call_spec *spec, cJSON *body) {
    mx_account *a = self->account;
    char *url = mx_url_build(a->homeserver, spec->path, spec->segs, spec->query); /* owned here */
    mx_request *r = url ? mx_request_new(spec->method, url, spec->kind) : NULL; /* copies url */
    free(url);
    if (!r) {
        cJSON_Delete(body);
        PyErr_NoMemory();
        return NULL;
    }
    if (body && attach_json(r, body) != 0) goto fail;
    if (spec->auth && !(r->token = mx_account_token_copy(a))) {
        PyErr_SetString(PyExc_RuntimeError, "this client is not logged in");
        goto fail;
    }
    r->insecure = a->insecure;
    r->timeout_ms = DEFAULT_TIMEOUT_MS;
    mx_account_incref(a);
    r->account = a;
    return r;
fail:
    mx_request_free(r);
    return NULL;
}

/* Submits `r` (ownership passes to the engine) for future `fut`. */
static PyObject *launch(mx_request *r, PyObject *fut) {
    r->py_future = Py_NewRef(fut);
    uint64_t id = r->id;
    mx_engine_submit(r);
    return PyLong_FromUnsignedLongLong(id);
}

static PyObject *call(mx_ClientObject *self, PyObject *fut, const call_spec *spec, cJSON *body) {
    mx_request *r = build(self, spec, body);
    return r ? launch(r, fut) : NULL;
}

#define SEGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define QUERY(...) ((const mx_query[]){__VA_ARGS__, {NULL, NULL}})
#define GET(path, segs, query) {MX_GET, path, segs, query, 1, &mx_kind_json}
#define WITH(m, path, segs) {m, path, segs, NULL, 1, &mx_kind_json}

/* A body from string pairs, or NULL with MemoryError set. */
#define STRINGS(...) json_or_nomem(mx_json_strings(__VA_ARGS__, NULL))
static cJSON *json_or_nomem(cJSON *j) {
    if (!j) PyErr_NoMemory();
    return j;
}

/* A dict argument as a JSON object (new, owned by the caller), or NULL + exception. */
static cJSON *dict_body(PyObject *o) {
    if (!PyDict_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "the content must be a dict");
        return NULL;
    }
    return mx_py_to_json(o);
}

/* ---- session ---------------------------------------------------------------- */

#define API(name) PyObject *mx_api_##name(mx_ClientObject *self, PyObject *args, PyObject *kw)

API(versions) {
    PyObject *fut;
    static char *kwlist[] = {"", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:versions", kwlist, &fut)) return NULL;
    call_spec s = {MX_GET, "/_matrix/client/versions", NULL, NULL, 0, &mx_kind_json};
    return call(self, fut, &s, NULL);
}

API(well_known) {
    PyObject *fut;
    static char *kwlist[] = {"", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:well_known", kwlist, &fut)) return NULL;
    call_spec s = {MX_GET, "/.well-known/matrix/client", NULL, NULL, 0, &mx_kind_json};
    return call(self, fut, &s, NULL);
}

API(login_flows) {
    PyObject *fut;
    static char *kwlist[] = {"", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:login_flows", kwlist, &fut)) return NULL;
    call_spec s = {MX_GET, CS "/login", NULL, NULL, 0, &mx_kind_json};
    return call(self, fut, &s, NULL);
}

/* POST /login with `body` (consumed) plus the optional device fields. */
static PyObject *login(mx_ClientObject *self, PyObject *fut, cJSON *body,
                       const char *device_name, const char *device_id) {
    if (!body) return NULL;
    if ((device_name &&
         !cJSON_AddStringToObject(body, "initial_device_display_name", device_name)) ||
        (device_id && !cJSON_AddStringToObject(body, "device_id", device_id))) {
        cJSON_Delete(body);
        return PyErr_NoMemory();
    }
    call_spec s = {MX_POST, CS "/login", NULL, NULL, 0, &mx_kind_json};
    return call(self, fut, &s, body);
}

API(login_password) {
    PyObject *fut;
    const char *user, *password, *device_name = NULL, *device_id = NULL;
    static char *kwlist[] = {"", "user", "password", "device_name", "device_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss|zz:login_password", kwlist, &fut, &user, &password, &device_name,
                          &device_id))
        return NULL;
    cJSON *body = STRINGS("type", "m.login.password", "password", password);
    cJSON *ident = STRINGS("type", "m.id.user", "user", user);
    if (!body || !ident || !cJSON_AddItemToObject(body, "identifier", ident)) {
        cJSON_Delete(body);
        cJSON_Delete(ident);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    return login(self, fut, body, device_name, device_id);
}

API(login_token) {
    PyObject *fut;
    const char *token, *device_name = NULL, *device_id = NULL;
    static char *kwlist[] = {"", "token", "device_name", "device_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|zz:login_token", kwlist, &fut, &token, &device_name, &device_id))
        return NULL;
    return login(self, fut, STRINGS("type", "m.login.token", "token", token), device_name,
                 device_id);
}

API(logout) {
    PyObject *fut;
    static char *kwlist[] = {"", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:logout", kwlist, &fut)) return NULL;
    cJSON *body = json_or_nomem(cJSON_CreateObject());
    call_spec s = WITH(MX_POST, CS "/logout", NULL);
    return body ? call(self, fut, &s, body) : NULL;
}

API(whoami) {
    PyObject *fut;
    static char *kwlist[] = {"", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:whoami", kwlist, &fut)) return NULL;
    call_spec s = GET(CS "/account/whoami", NULL, NULL);
    return call(self, fut, &s, NULL);
}

API(upload_filter) {
    PyObject *fut, *filter;
    const char *user_id;
    static char *kwlist[] = {"", "user_id", "filter", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OsO:upload_filter", kwlist, &fut, &user_id, &filter)) return NULL;
    cJSON *body = dict_body(filter);
    call_spec s = WITH(MX_POST, CS "/user/{}/filter", SEGS(user_id));
    return body ? call(self, fut, &s, body) : NULL;
}

/* ---- sending ---------------------------------------------------------------- */

API(send_event) {
    PyObject *fut, *content;
    const char *room_id, *type, *txn_id;
    static char *kwlist[] = {"", "room_id", "event_type", "txn_id", "content", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OsssO:send_event", kwlist, &fut, &room_id, &type, &txn_id, &content))
        return NULL;
    cJSON *body = dict_body(content);
    call_spec s = WITH(MX_PUT, CS "/rooms/{}/send/{}/{}", SEGS(room_id, type, txn_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(send_state) {
    PyObject *fut, *content;
    const char *room_id, *type, *state_key;
    static char *kwlist[] = {"", "room_id", "event_type", "state_key", "content", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OsssO:send_state", kwlist, &fut, &room_id, &type, &state_key,
                          &content))
        return NULL;
    cJSON *body = dict_body(content);
    /* An empty state key is a legitimately empty last segment. */
    call_spec s = WITH(MX_PUT, CS "/rooms/{}/state/{}/{}", SEGS(room_id, type, state_key));
    return body ? call(self, fut, &s, body) : NULL;
}

API(redact) {
    PyObject *fut;
    const char *room_id, *event_id, *txn_id, *reason = NULL;
    static char *kwlist[] = {"", "room_id", "event_id", "txn_id", "reason", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Osss|z:redact", kwlist, &fut, &room_id, &event_id, &txn_id, &reason))
        return NULL;
    cJSON *body = STRINGS("reason", reason);
    call_spec s = WITH(MX_PUT, CS "/rooms/{}/redact/{}/{}", SEGS(room_id, event_id, txn_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(typing) {
    PyObject *fut;
    const char *room_id, *user_id;
    int typing;
    long timeout_ms = 30000;
    static char *kwlist[] = {"", "room_id", "user_id", "typing", "timeout_ms", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Ossp|l:typing", kwlist, &fut, &room_id, &user_id, &typing, &timeout_ms))
        return NULL;
    if (timeout_ms < 0) {
        PyErr_SetString(PyExc_ValueError, "timeout_ms must not be negative");
        return NULL;
    }
    cJSON *body = json_or_nomem(cJSON_CreateObject());
    if (body && (!cJSON_AddBoolToObject(body, "typing", typing) ||
                 (typing && !cJSON_AddNumberToObject(body, "timeout", (double)timeout_ms)))) {
        cJSON_Delete(body);
        return PyErr_NoMemory();
    }
    call_spec s = WITH(MX_PUT, CS "/rooms/{}/typing/{}", SEGS(room_id, user_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(receipt) {
    PyObject *fut;
    const char *room_id, *type, *event_id, *thread_id = NULL;
    static char *kwlist[] = {"", "room_id", "receipt_type", "event_id", "thread_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Osss|z:receipt", kwlist, &fut, &room_id, &type, &event_id, &thread_id))
        return NULL;
    cJSON *body = STRINGS("thread_id", thread_id);
    call_spec s = WITH(MX_POST, CS "/rooms/{}/receipt/{}/{}", SEGS(room_id, type, event_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(read_markers) {
    PyObject *fut;
    const char *room_id, *fully_read, *read = NULL, *read_private = NULL;
    static char *kwlist[] = {"", "room_id", "fully_read", "read", "read_private", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss|zz:read_markers", kwlist, &fut, &room_id, &fully_read, &read,
                          &read_private))
        return NULL;
    cJSON *body = STRINGS("m.fully_read", fully_read, "m.read", read, "m.read.private",
                          read_private);
    call_spec s = WITH(MX_POST, CS "/rooms/{}/read_markers", SEGS(room_id));
    return body ? call(self, fut, &s, body) : NULL;
}

/* ---- profile and presence ------------------------------------------------------ */

API(get_profile) {
    PyObject *fut;
    const char *user_id;
    static char *kwlist[] = {"", "user_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os:get_profile", kwlist, &fut, &user_id)) return NULL;
    call_spec s = GET(CS "/profile/{}", SEGS(user_id), NULL);
    return call(self, fut, &s, NULL);
}

API(set_displayname) {
    PyObject *fut;
    const char *user_id, *name;
    static char *kwlist[] = {"", "user_id", "name", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss:set_displayname", kwlist, &fut, &user_id, &name)) return NULL;
    cJSON *body = STRINGS("displayname", name);
    call_spec s = WITH(MX_PUT, CS "/profile/{}/displayname", SEGS(user_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(set_avatar_url) {
    PyObject *fut;
    const char *user_id, *url;
    static char *kwlist[] = {"", "user_id", "url", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss:set_avatar_url", kwlist, &fut, &user_id, &url)) return NULL;
    cJSON *body = STRINGS("avatar_url", url);
    call_spec s = WITH(MX_PUT, CS "/profile/{}/avatar_url", SEGS(user_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(get_presence) {
    PyObject *fut;
    const char *user_id;
    static char *kwlist[] = {"", "user_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os:get_presence", kwlist, &fut, &user_id)) return NULL;
    call_spec s = GET(CS "/presence/{}/status", SEGS(user_id), NULL);
    return call(self, fut, &s, NULL);
}

API(set_presence) {
    PyObject *fut;
    const char *user_id, *presence, *status_msg = NULL;
    static char *kwlist[] = {"", "user_id", "presence", "status_msg", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss|z:set_presence", kwlist, &fut, &user_id, &presence, &status_msg))
        return NULL;
    cJSON *body = STRINGS("presence", presence, "status_msg", status_msg);
    call_spec s = WITH(MX_PUT, CS "/presence/{}/status", SEGS(user_id));
    return body ? call(self, fut, &s, body) : NULL;
}

/* ---- rooms ---------------------------------------------------------------------- */

API(joined_rooms) {
    PyObject *fut;
    static char *kwlist[] = {"", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:joined_rooms", kwlist, &fut)) return NULL;
    call_spec s = GET(CS "/joined_rooms", NULL, NULL);
    return call(self, fut, &s, NULL);
}

API(joined_members) {
    PyObject *fut;
    const char *room_id;
    static char *kwlist[] = {"", "room_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os:joined_members", kwlist, &fut, &room_id)) return NULL;
    call_spec s = GET(CS "/rooms/{}/joined_members", SEGS(room_id), NULL);
    return call(self, fut, &s, NULL);
}

API(members) {
    PyObject *fut;
    const char *room_id, *at = NULL, *membership = NULL, *not_membership = NULL;
    static char *kwlist[] = {"", "room_id", "at", "membership", "not_membership", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|zzz:members", kwlist, &fut, &room_id, &at, &membership,
                          &not_membership))
        return NULL;
    call_spec s = GET(CS "/rooms/{}/members", SEGS(room_id),
                      QUERY({"at", at}, {"membership", membership},
                            {"not_membership", not_membership}));
    return call(self, fut, &s, NULL);
}

API(room_state) {
    PyObject *fut;
    const char *room_id;
    static char *kwlist[] = {"", "room_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os:room_state", kwlist, &fut, &room_id)) return NULL;
    call_spec s = {MX_GET, CS "/rooms/{}/state", SEGS(room_id), NULL, 1, &mx_kind_room_state};
    mx_request *r = build(self, &s, NULL);
    if (!r) return NULL;
    /* The engine also applies the full state to the room cache. */
    if (mx_room_state_request_init(r, room_id) != 0) {
        mx_request_free(r);
        return PyErr_NoMemory();
    }
    return launch(r, fut);
}

API(state_event) {
    PyObject *fut;
    const char *room_id, *type, *state_key;
    static char *kwlist[] = {"", "room_id", "event_type", "state_key", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Osss:state_event", kwlist, &fut, &room_id, &type, &state_key))
        return NULL;
    call_spec s = GET(CS "/rooms/{}/state/{}/{}", SEGS(room_id, type, state_key), NULL);
    return call(self, fut, &s, NULL);
}

API(room_event) {
    PyObject *fut;
    const char *room_id, *event_id;
    static char *kwlist[] = {"", "room_id", "event_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss:room_event", kwlist, &fut, &room_id, &event_id)) return NULL;
    call_spec s = GET(CS "/rooms/{}/event/{}", SEGS(room_id, event_id), NULL);
    return call(self, fut, &s, NULL);
}

API(get_event) {
    PyObject *fut;
    const char *room_id, *event_id;
    static char *kwlist[] = {"", "room_id", "event_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss:get_event", kwlist, &fut, &room_id, &event_id)) return NULL;
    /* The engine decodes it like a sync event. */
    call_spec s = {MX_GET, CS "/rooms/{}/event/{}", SEGS(room_id, event_id), NULL, 1,
                   &mx_kind_event};
    return call(self, fut, &s, NULL);
}

API(event_context) {
    PyObject *fut;
    const char *room_id, *event_id;
    long limit;
    static char *kwlist[] = {"", "room_id", "event_id", "limit", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Ossl:event_context", kwlist, &fut, &room_id, &event_id, &limit))
        return NULL;
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    call_spec s = GET(CS "/rooms/{}/context/{}", SEGS(room_id, event_id), QUERY({"limit", lim}));
    return call(self, fut, &s, NULL);
}

API(join) {
    PyObject *fut, *via;
    const char *room, *reason = NULL;
    static char *kwlist[] = {"", "room", "via", "reason", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OsO|z:join", kwlist, &fut, &room, &via, &reason)) return NULL;
    if (PyUnicode_Check(via)) { /* a str is a sequence too, of one-letter servers */
        PyErr_SetString(PyExc_TypeError, "via must be a list of server names, not a str");
        return NULL;
    }
    PyObject *servers = PySequence_Fast(via, "via must be a sequence of server names");
    if (!servers) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(servers);
    mx_query *query = PyMem_Calloc((size_t)n + 1, sizeof *query); /* owned here */
    PyObject *res = NULL;
    if (!query) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Borrowed UTF-8, alive as long as `servers` holds the str. */
        const char *server = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(servers, i));
        if (!server) goto done;
        query[i] = (mx_query){"via", server};
    }
    cJSON *body = STRINGS("reason", reason);
    call_spec s = {MX_POST, CS "/join/{}", SEGS(room), query, 1, &mx_kind_json};
    if (body) res = call(self, fut, &s, body);
done:
    PyMem_Free(query);
    Py_DECREF(servers);
    return res;
}

API(leave) {
    PyObject *fut;
    const char *room_id, *reason = NULL;
    static char *kwlist[] = {"", "room_id", "reason", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|z:leave", kwlist, &fut, &room_id, &reason)) return NULL;
    cJSON *body = STRINGS("reason", reason);
    call_spec s = WITH(MX_POST, CS "/rooms/{}/leave", SEGS(room_id));
    return body ? call(self, fut, &s, body) : NULL;
}

API(membership) {
    static const char *const actions[] = {"invite", "kick", "ban", "unban"};
    PyObject *fut;
    const char *action, *room_id, *user_id, *reason = NULL;
    static char *kwlist[] = {"", "action", "room_id", "user_id", "reason", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Osss|z:membership", kwlist, &fut, &action, &room_id, &user_id,
                          &reason))
        return NULL;
    size_t i = 0;
    while (i < 4 && strcmp(action, actions[i]) != 0) i++;
    if (i == 4) {
        PyErr_Format(PyExc_ValueError, "unknown membership action '%s'", action);
        return NULL;
    }
    cJSON *body = STRINGS("user_id", user_id, "reason", reason);
    call_spec s = WITH(MX_POST, CS "/rooms/{}/{}", SEGS(room_id, action));
    return body ? call(self, fut, &s, body) : NULL;
}

API(create_room) {
    PyObject *fut, *invite, *initial_state;
    const char *name, *topic, *preset;
    int is_direct;
    static char *kwlist[] = {"", "name", "topic", "invite", "is_direct", "preset", "initial_state", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OzzOpzO:create_room", kwlist, &fut, &name, &topic, &invite,
                          &is_direct, &preset, &initial_state))
        return NULL;
    cJSON *body = STRINGS("name", name, "topic", topic, "preset", preset);
    if (!body) return NULL;
    cJSON *inv = mx_py_to_json(invite), *state = mx_py_to_json(initial_state);
    if (!inv || !state) goto fail;
    if (!cJSON_IsArray(inv) || !cJSON_IsArray(state)) {
        PyErr_SetString(PyExc_TypeError, "invite and initial_state must be lists");
        goto fail;
    }
    if (!cJSON_AddBoolToObject(body, "is_direct", is_direct)) goto nomem;
    if (!cJSON_AddItemToObject(body, "invite", inv)) goto nomem;
    inv = NULL;
    if (!cJSON_AddItemToObject(body, "initial_state", state)) goto nomem;
    state = NULL;
    call_spec s = WITH(MX_POST, CS "/createRoom", NULL);
    return call(self, fut, &s, body);
nomem:
    PyErr_NoMemory();
fail:
    cJSON_Delete(body);
    cJSON_Delete(inv);
    cJSON_Delete(state);
    return NULL;
}

/* ---- account data, directory, relations ------------------------------------------ */

API(get_account_data) {
    PyObject *fut;
    const char *user_id, *type, *room_id = NULL;
    static char *kwlist[] = {"", "user_id", "event_type", "room_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oss|z:get_account_data", kwlist, &fut, &user_id, &type, &room_id))
        return NULL;
    call_spec global = GET(CS "/user/{}/account_data/{}", SEGS(user_id, type), NULL);
    call_spec room = GET(CS "/user/{}/rooms/{}/account_data/{}", SEGS(user_id, room_id, type),
                         NULL);
    return call(self, fut, room_id ? &room : &global, NULL);
}

API(set_account_data) {
    PyObject *fut, *content;
    const char *user_id, *type, *room_id = NULL;
    static char *kwlist[] = {"", "user_id", "event_type", "content", "room_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OssO|z:set_account_data", kwlist, &fut, &user_id, &type, &content,
                          &room_id))
        return NULL;
    cJSON *body = dict_body(content);
    if (!body) return NULL;
    call_spec global = WITH(MX_PUT, CS "/user/{}/account_data/{}", SEGS(user_id, type));
    call_spec room =
        WITH(MX_PUT, CS "/user/{}/rooms/{}/account_data/{}", SEGS(user_id, room_id, type));
    return call(self, fut, room_id ? &room : &global, body);
}

/* ---- the generic authenticated request ------------------------------------ */

#define MAX_REQUEST_SEGMENTS 8
#define MAX_REQUEST_QUERY 8

/* 1 if `path` may be asked for through request(): the client-server API
 * only, its "{}" placeholders filled from percent-encoded segments, and
 * nothing that could leave it ("..", a query, a fragment). */
static int allowed_request_path(const char *path) {
    static const char prefix[] = "/_matrix/client/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0) return 0;
    return !strstr(path, "..") && !strpbrk(path, "?#%\\ \t\r\n");
}

/* Fills `out` (room for `room` entries plus the NULL end) with borrowed
 * UTF-8 of the str items of `seq`; 0, or -1 with an exception. */
static int borrowed_strings(PyObject *seq, const char **out, size_t room, const char *what) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of str");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if ((size_t)n > room) {
        PyErr_Format(PyExc_ValueError, "at most %zu %s", room, what);
        Py_DECREF(fast);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* The UTF-8 stays alive with its str, which `seq` keeps for the call. */
        out[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (!out[i]) {
            Py_DECREF(fast);
            return -1;
        }
    }
    out[n] = NULL;
    Py_DECREF(fast);
    return 0;
}

API(request) {
    PyObject *fut, *segments, *body_obj = Py_None, *query_obj = Py_None;
    const char *method_name, *path;
    static char *kwlist[] = {"", "method", "path", "segments", "body", "query", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OssO|OO:request", kwlist, &fut, &method_name, &path,
                                     &segments, &body_obj, &query_obj))
        return NULL;
    mx_method method;
    if (strcmp(method_name, "GET") == 0) method = MX_GET;
    else if (strcmp(method_name, "POST") == 0) method = MX_POST;
    else if (strcmp(method_name, "PUT") == 0) method = MX_PUT;
    else if (strcmp(method_name, "DELETE") == 0) method = MX_DELETE;
    else {
        PyErr_Format(PyExc_ValueError, "unknown method %s", method_name);
        return NULL;
    }
    if (!allowed_request_path(path)) {
        PyErr_Format(PyExc_ValueError, "request() only asks for /_matrix/client/ paths, not %s", path);
        return NULL;
    }
    const char *segs[MAX_REQUEST_SEGMENTS + 1];
    if (borrowed_strings(segments, segs, MAX_REQUEST_SEGMENTS, "path segments") != 0) return NULL;
    size_t holes = 0, given = 0;
    for (const char *p = path; (p = strstr(p, "{}")); p += 2) holes++;
    while (segs[given]) given++;
    if (holes != given) {
        PyErr_Format(PyExc_ValueError, "the path has %zu {} for %zu segments", holes, given);
        return NULL;
    }
    /* Key/value pairs, flattened: [k0, v0, k1, v1, ...]. */
    const char *flat[2 * MAX_REQUEST_QUERY + 1];
    mx_query query[MAX_REQUEST_QUERY + 1];
    const mx_query *query_arg = NULL;
    if (query_obj != Py_None) {
        if (borrowed_strings(query_obj, flat, 2 * MAX_REQUEST_QUERY, "query items") != 0) return NULL;
        size_t n = 0;
        while (flat[n]) n++;
        if (n % 2) {
            PyErr_SetString(PyExc_ValueError, "the query is key, value, key, value...");
            return NULL;
        }
        for (size_t i = 0; i < n / 2; i++) query[i] = (mx_query){flat[2 * i], flat[2 * i + 1]};
        query[n / 2] = (mx_query){NULL, NULL};
        query_arg = query;
    }
    cJSON *body = NULL;
    if (body_obj != Py_None && !(body = dict_body(body_obj))) return NULL;
    call_spec s = {method, path, segs, query_arg, 1, &mx_kind_json};
    return call(self, fut, &s, body);
}

API(resolve_alias) {
    PyObject *fut;
    const char *alias;
    static char *kwlist[] = {"", "alias", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os:resolve_alias", kwlist, &fut, &alias)) return NULL;
    call_spec s = GET(CS "/directory/room/{}", SEGS(alias), NULL);
    return call(self, fut, &s, NULL);
}

API(relations) {
    PyObject *fut;
    const char *room_id, *event_id, *rel_type, *event_type, *from, *dir;
    long limit;
    static char *kwlist[] = {"", "room_id", "event_id", "rel_type", "event_type", "from_token", "limit", "direction", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Osszzzlz:relations", kwlist, &fut, &room_id, &event_id, &rel_type,
                          &event_type, &from, &limit, &dir))
        return NULL;
    if (event_type && !rel_type) {
        PyErr_SetString(PyExc_ValueError, "an event_type filter needs a rel_type");
        return NULL;
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    const mx_query *q = QUERY({"from", from}, {"limit", limit > 0 ? lim : NULL}, {"dir", dir});
    const char *path = event_type ? "/_matrix/client/v1/rooms/{}/relations/{}/{}/{}"
                       : rel_type ? "/_matrix/client/v1/rooms/{}/relations/{}/{}"
                                  : "/_matrix/client/v1/rooms/{}/relations/{}";
    call_spec s = GET(path, SEGS(room_id, event_id, rel_type, event_type), q);
    return call(self, fut, &s, NULL);
}

/* ---- media ---------------------------------------------------------------------- */

#define MEDIA_UPLOAD "/_matrix/media/v3/upload"

/* An upload request whose body the caller attaches next. */
static mx_request *upload_request(mx_ClientObject *self, const char *content_type,
                                  const char *filename) {
    call_spec s = {MX_POST, MEDIA_UPLOAD, NULL, QUERY({"filename", filename}), 1,
                   &mx_kind_json};
    mx_request *r = build(self, &s, NULL);
    if (!r) return NULL;
    if (!(r->content_type = strdup(content_type))) {
        mx_request_free(r);
        PyErr_NoMemory();
        return NULL;
    }
    r->timeout_ms = 0; /* large bodies: a stall guard instead of a deadline */
    return r;
}

API(upload) {
    PyObject *fut;
    Py_buffer data;
    const char *content_type, *filename = NULL;
    static char *kwlist[] = {"", "data", "content_type", "filename", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oy*s|z:upload", kwlist, &fut, &data, &content_type, &filename))
        return NULL;
    mx_request *r = upload_request(self, content_type, filename);
    char *copy = r ? malloc(data.len ? (size_t)data.len : 1) : NULL; /* owned by r below */
    if (r && copy) {
        Py_BEGIN_ALLOW_THREADS
        memcpy(copy, data.buf, (size_t)data.len);
        Py_END_ALLOW_THREADS
        r->body = copy;
        r->body_len = (size_t)data.len;
    }
    PyBuffer_Release(&data);
    if (r && !copy) {
        mx_request_free(r);
        return PyErr_NoMemory();
    }
    return r ? launch(r, fut) : NULL;
}

API(upload_file) {
    PyObject *fut, *path_obj;
    const char *content_type, *filename = NULL;
    static char *kwlist[] = {"", "path", "content_type", "filename", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&s|z:upload_file", kwlist, &fut, PyUnicode_FSConverter, &path_obj,
                          &content_type, &filename))
        return NULL;
    const char *path = PyBytes_AS_STRING(path_obj);
    FILE *fp = NULL;
    curl_off_t size = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mx_upload_open(path, &fp, &size);
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
        Py_DECREF(path_obj);
        return NULL;
    }
    Py_DECREF(path_obj);
    mx_request *r = upload_request(self, content_type, filename);
    if (!r) {
        fclose(fp);
        return NULL;
    }
    r->upload = fp; /* read on the engine thread */
    r->upload_size = size;
    return launch(r, fut);
}

/* A media GET (download or thumbnail) through the authenticated v1 endpoint,
 * with the legacy one as fallback; into memory, or streamed to `path`. */
static PyObject *media_get(mx_ClientObject *self, PyObject *fut, const char *what,
                           const char *const *segs, const mx_query *query,
                           unsigned long long max_bytes, PyObject *path_obj) {
    char v1[96], legacy[96];
    snprintf(v1, sizeof v1, "/_matrix/client/v1/media/%s/{}/{}", what);
    snprintf(legacy, sizeof legacy, "/_matrix/media/v3/%s/{}/{}", what);
    call_spec s = {MX_GET, v1, segs, query, 1, &mx_kind_media};
    mx_request *r = build(self, &s, NULL);
    if (!r) return NULL;
    r->fallback_url = mx_url_build(self->account->homeserver, legacy, segs, query);
    if (!r->fallback_url) {
        mx_request_free(r);
        return PyErr_NoMemory();
    }
    r->timeout_ms = 0;
    r->max_body = (size_t)max_bytes;
    if (path_obj != Py_None) {
        PyObject *fs = NULL;
        if (!PyUnicode_FSConverter(path_obj, &fs)) {
            mx_request_free(r);
            return NULL;
        }
        const char *path = PyBytes_AS_STRING(fs);
        Py_BEGIN_ALLOW_THREADS
        r->sink = mx_file_sink_new(path);
        Py_END_ALLOW_THREADS
        if (!r->sink) {
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
            Py_DECREF(fs);
            mx_request_free(r);
            return NULL;
        }
        Py_DECREF(fs);
    }
    return launch(r, fut);
}

static int valid_cap(unsigned long long max_bytes) {
    if (max_bytes == 0 || max_bytes > (unsigned long long)SIZE_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "max_bytes must be positive");
        return 0;
    }
    return 1;
}

API(download) {
    PyObject *fut, *path = Py_None;
    const char *server, *media_id;
    unsigned long long max_bytes;
    static char *kwlist[] = {"", "server_name", "media_id", "max_bytes", "path", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OssK|O:download", kwlist, &fut, &server, &media_id, &max_bytes, &path))
        return NULL;
    if (!valid_cap(max_bytes)) return NULL;
    return media_get(self, fut, "download", SEGS(server, media_id), NULL, max_bytes, path);
}

API(thumbnail) {
    PyObject *fut, *path = Py_None;
    const char *server, *media_id, *method;
    long width, height;
    unsigned long long max_bytes;
    static char *kwlist[] = {"", "server_name", "media_id", "width", "height", "method", "max_bytes", "path", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OssllsK|O:thumbnail", kwlist, &fut, &server, &media_id, &width, &height,
                          &method, &max_bytes, &path))
        return NULL;
    if (!valid_cap(max_bytes)) return NULL;
    char w[24], h[24];
    snprintf(w, sizeof w, "%ld", width);
    snprintf(h, sizeof h, "%ld", height);
    return media_get(self, fut, "thumbnail", SEGS(server, media_id),
                     QUERY({"width", w}, {"height", h}, {"method", method}), max_bytes, path);
}

/* ---- history -------------------------------------------------------------- */

API(history) {
    PyObject *fut;
    const char *room_id, *from = NULL, *until_event_id = NULL, *filter = NULL;
    int backwards = 1, page_size = 100;
    long long until_ts = -1;
    Py_ssize_t limit = 0;
    static char *kwlist[] = {"", "room_id", "from_token", "backwards", "until_event_id", "until_ts", "limit", "page_size", "filter", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|zpzLniz:history", kwlist, &fut, &room_id, &from, &backwards,
                          &until_event_id, &until_ts, &limit, &page_size, &filter))
        return NULL;
    if (limit < 0 || page_size < 1 || page_size > 1000) {
        PyErr_SetString(PyExc_ValueError,
                        "limit must not be negative and page_size must be within 1-1000");
        return NULL;
    }
    mx_account *a = self->account;
    mx_paging *p = mx_paging_new(a->homeserver, room_id, filter, page_size, backwards,
                                 until_event_id, (int64_t)until_ts, (size_t)limit);
    char *url = p ? mx_paging_url(p, from) : NULL; /* owned here */
    mx_request *r = url ? mx_request_new(MX_GET, url, &mx_kind_history) : NULL;
    free(url);
    if (!r) {
        mx_paging_free(p);
        return PyErr_NoMemory();
    }
    r->kind_data = p; /* the request owns the paging state from here */
    if (!(r->token = mx_account_token_copy(a))) {
        mx_request_free(r);
        PyErr_SetString(PyExc_RuntimeError, "this client is not logged in");
        return NULL;
    }
    r->insecure = a->insecure;
    r->timeout_ms = DEFAULT_TIMEOUT_MS;
    mx_account_incref(a);
    r->account = a;
    return launch(r, fut);
}
