/* The Matrix client-server API calls of Client: each builds one engine
 * request and returns its id; the asyncio future given first resolves with
 * the parsed JSON answer (or, for media downloads, the body and headers). */
#ifndef MATRIDGE_API_H
#define MATRIDGE_API_H

#include "py/client.h" /* Python.h first */

#define MX_API(name) PyObject *mx_api_##name(mx_ClientObject *self, PyObject *args)
MX_API(versions);
MX_API(well_known);
MX_API(login_password);
MX_API(login_token);
MX_API(logout);
MX_API(whoami);
MX_API(upload_filter);
MX_API(send_event);
MX_API(send_state);
MX_API(redact);
MX_API(typing);
MX_API(receipt);
MX_API(read_markers);
MX_API(get_profile);
MX_API(set_displayname);
MX_API(set_avatar_url);
MX_API(get_presence);
MX_API(set_presence);
MX_API(joined_rooms);
MX_API(joined_members);
MX_API(members);
MX_API(room_state);
MX_API(state_event);
MX_API(room_event);
MX_API(get_event);
MX_API(event_context);
MX_API(join);
MX_API(leave);
MX_API(membership);
MX_API(create_room);
MX_API(get_account_data);
MX_API(set_account_data);
MX_API(resolve_alias);
MX_API(relations);
MX_API(upload);
MX_API(upload_file);
MX_API(download);
MX_API(thumbnail);
MX_API(history);
#undef MX_API

#define MX_API_DEF(name, doc) {#name, (PyCFunction)mx_api_##name, METH_VARARGS, doc}

/* The Client method table entries of the API (spliced into client.c's). */
#define MX_CLIENT_API_METHODS                                                                  \
    MX_API_DEF(versions, "(future) GET /versions, without a token."),                          \
    MX_API_DEF(well_known, "(future) GET /.well-known/matrix/client of this base URL."),       \
    MX_API_DEF(login_password, "(future, user, password, device_name=None, device_id=None)"),  \
    MX_API_DEF(login_token, "(future, token, device_name=None, device_id=None) m.login.token"), \
    MX_API_DEF(logout, "(future) POST /logout: invalidates the token."),                       \
    MX_API_DEF(whoami, "(future) GET /account/whoami."),                                       \
    MX_API_DEF(upload_filter, "(future, user_id, filter) POST /user/{id}/filter."),            \
    MX_API_DEF(send_event, "(future, room_id, type, txn_id, content) idempotent per txn_id."), \
    MX_API_DEF(send_state, "(future, room_id, type, state_key, content)"),                     \
    MX_API_DEF(redact, "(future, room_id, event_id, txn_id, reason=None)"),                    \
    MX_API_DEF(typing, "(future, room_id, user_id, typing, timeout_ms)"),                      \
    MX_API_DEF(receipt, "(future, room_id, receipt_type, event_id, thread_id=None)"),          \
    MX_API_DEF(read_markers, "(future, room_id, fully_read, read=None, read_private=None)"),   \
    MX_API_DEF(get_profile, "(future, user_id) GET /profile/{id}."),                           \
    MX_API_DEF(set_displayname, "(future, user_id, displayname)"),                             \
    MX_API_DEF(set_avatar_url, "(future, user_id, avatar_url)"),                               \
    MX_API_DEF(get_presence, "(future, user_id)"),                                             \
    MX_API_DEF(set_presence, "(future, user_id, presence, status_msg=None)"),                  \
    MX_API_DEF(joined_rooms, "(future) GET /joined_rooms."),                                   \
    MX_API_DEF(joined_members, "(future, room_id)"),                                           \
    MX_API_DEF(members, "(future, room_id, at=None, membership=None, not_membership=None)"),   \
    MX_API_DEF(room_state, "(future, room_id) GET /rooms/{id}/state."),                        \
    MX_API_DEF(state_event, "(future, room_id, type, state_key)"),                             \
    MX_API_DEF(room_event, "(future, room_id, event_id)"),                                     \
    MX_API_DEF(get_event, "(future, room_id, event_id) the event as a decoded Event view"),    \
    MX_API_DEF(event_context, "(future, room_id, event_id, limit)"),                           \
    MX_API_DEF(join, "(future, room_id_or_alias, via, reason=None)"),                          \
    MX_API_DEF(leave, "(future, room_id, reason=None)"),                                       \
    MX_API_DEF(membership, "(future, action, room_id, user_id, reason=None): invite, kick, "  \
                           "ban or unban."),                                                   \
    MX_API_DEF(create_room, "(future, name, topic, invite, is_direct, preset, initial_state)"), \
    MX_API_DEF(get_account_data, "(future, user_id, type, room_id=None)"),                     \
    MX_API_DEF(set_account_data, "(future, user_id, type, content, room_id=None)"),            \
    MX_API_DEF(resolve_alias, "(future, alias) GET /directory/room/{alias}."),                 \
    MX_API_DEF(relations, "(future, room_id, event_id, rel_type, event_type, from_token, "    \
                          "limit, direction)"),                                                \
    MX_API_DEF(upload, "(future, data, content_type, filename=None) -> content_uri"),          \
    MX_API_DEF(upload_file, "(future, path, content_type, filename=None), streamed."),         \
    MX_API_DEF(download, "(future, server_name, media_id, max_bytes, path=None)"),             \
    MX_API_DEF(thumbnail, "(future, server_name, media_id, width, height, method, max_bytes, " \
                          "path=None)"),                                               \
    MX_API_DEF(history, "(future, room_id, from_token, backwards, until_event_id, until_ts, " \
                        "limit, page_size, filter) pages /messages; resolves with a History")

#endif
