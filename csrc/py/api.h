/* The Matrix client-server API calls of Client: each builds one engine
 * request and returns its id; the asyncio future given first resolves with
 * the parsed JSON answer (or, for media downloads, the body and headers). */
#ifndef MATRIDGE_API_H
#define MATRIDGE_API_H

#include "py/client.h" /* Python.h first */

#define MX_API(name) \
    PyObject *mx_api_##name(mx_ClientObject *self, PyObject *args, PyObject *kw)
MX_API(versions);
MX_API(well_known);
MX_API(login_password);
MX_API(login_flows);
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
MX_API(request);
MX_API(resolve_alias);
MX_API(relations);
MX_API(upload);
MX_API(upload_file);
MX_API(download);
MX_API(thumbnail);
MX_API(history);
#undef MX_API

#define MX_API_DEF(name, doc) \
    {#name, (PyCFunction)(void (*)(void))mx_api_##name, METH_VARARGS | METH_KEYWORDS, doc}
/* The Client method table entries of the API (spliced into client.c's).
 * Each docstring starts with the signature help() shows. */
#define MX_CLIENT_API_METHODS \
    MX_API_DEF(versions, "versions($self, future, /)\n--\n\nGET /versions, without a token."), \
    MX_API_DEF(well_known, "well_known($self, future, /)\n--\n\nGET /.well-known/matrix/client of this base URL."), \
    MX_API_DEF(login_password, "login_password($self, future, /, user, password, device_name=None, device_id=None)\n--\n\nPOST /login with a password."), \
    MX_API_DEF(login_flows, "login_flows($self, future, /)\n--\n\nGET /login: the login types the homeserver offers, without a token."), \
    MX_API_DEF(login_token, "login_token($self, future, /, token, device_name=None, device_id=None)\n--\n\nPOST /login with an m.login.token."), \
    MX_API_DEF(whoami, "whoami($self, future, /)\n--\n\nGET /account/whoami."), \
    MX_API_DEF(logout, "logout($self, future, /)\n--\n\nPOST /logout: invalidates the token."), \
    MX_API_DEF(upload_filter, "upload_filter($self, future, /, user_id, filter)\n--\n\nPOST /user/{id}/filter."), \
    MX_API_DEF(send_event, "send_event($self, future, /, room_id, event_type, txn_id, content)\n--\n\nPUT /rooms/{id}/send/{type}/{txn_id}: idempotent per txn_id."), \
    MX_API_DEF(send_state, "send_state($self, future, /, room_id, event_type, state_key, content)\n--\n\nPUT /rooms/{id}/state/{type}/{state_key}."), \
    MX_API_DEF(redact, "redact($self, future, /, room_id, event_id, txn_id, reason=None)\n--\n\nPUT /rooms/{id}/redact/{event_id}/{txn_id}."), \
    MX_API_DEF(typing, "typing($self, future, /, room_id, user_id, typing, timeout_ms=30000)\n--\n\nPUT /rooms/{id}/typing/{user_id}."), \
    MX_API_DEF(receipt, "receipt($self, future, /, room_id, receipt_type, event_id, thread_id=None)\n--\n\nPOST /rooms/{id}/receipt/{type}/{event_id}."), \
    MX_API_DEF(read_markers, "read_markers($self, future, /, room_id, fully_read, read=None, read_private=None)\n--\n\nPOST /rooms/{id}/read_markers."), \
    MX_API_DEF(get_profile, "get_profile($self, future, /, user_id)\n--\n\nGET /profile/{id}."), \
    MX_API_DEF(set_displayname, "set_displayname($self, future, /, user_id, name)\n--\n\nPUT /profile/{id}/displayname."), \
    MX_API_DEF(set_avatar_url, "set_avatar_url($self, future, /, user_id, url)\n--\n\nPUT /profile/{id}/avatar_url."), \
    MX_API_DEF(get_presence, "get_presence($self, future, /, user_id)\n--\n\nGET /presence/{id}/status."), \
    MX_API_DEF(set_presence, "set_presence($self, future, /, user_id, presence, status_msg=None)\n--\n\nPUT /presence/{id}/status."), \
    MX_API_DEF(joined_rooms, "joined_rooms($self, future, /)\n--\n\nGET /joined_rooms."), \
    MX_API_DEF(joined_members, "joined_members($self, future, /, room_id)\n--\n\nGET /rooms/{id}/joined_members."), \
    MX_API_DEF(members, "members($self, future, /, room_id, at=None, membership=None, not_membership=None)\n--\n\nGET /rooms/{id}/members."), \
    MX_API_DEF(room_state, "room_state($self, future, /, room_id)\n--\n\nGET /rooms/{id}/state."), \
    MX_API_DEF(state_event, "state_event($self, future, /, room_id, event_type, state_key)\n--\n\nGET /rooms/{id}/state/{type}/{state_key}."), \
    MX_API_DEF(room_event, "room_event($self, future, /, room_id, event_id)\n--\n\nGET /rooms/{id}/event/{event_id}, as JSON."), \
    MX_API_DEF(get_event, "get_event($self, future, /, room_id, event_id)\n--\n\nGET /rooms/{id}/event/{event_id}, as a decoded Event view."), \
    MX_API_DEF(event_context, "event_context($self, future, /, room_id, event_id, limit)\n--\n\nGET /rooms/{id}/context/{event_id}."), \
    MX_API_DEF(join, "join($self, future, /, room, via, reason=None)\n--\n\nPOST /join/{room_id_or_alias}."), \
    MX_API_DEF(leave, "leave($self, future, /, room_id, reason=None)\n--\n\nPOST /rooms/{id}/leave."), \
    MX_API_DEF(membership, "membership($self, future, /, action, room_id, user_id, reason=None)\n--\n\nPOST /rooms/{id}/{action}: action is invite, kick, ban or unban."), \
    MX_API_DEF(create_room, "create_room($self, future, /, name, topic, invite, is_direct, preset, initial_state)\n--\n\nPOST /createRoom."), \
    MX_API_DEF(get_account_data, "get_account_data($self, future, /, user_id, event_type, room_id=None)\n--\n\nGET account data, global or of a room."), \
    MX_API_DEF(set_account_data, "set_account_data($self, future, /, user_id, event_type, content, room_id=None)\n--\n\nPUT account data, global or of a room."), \
    MX_API_DEF(request, "request($self, future, /, method, path, segments, body=None, query=None)\n--\n\nAn authenticated request to a /_matrix/client/ path whose {} are filled from segments (percent-encoded); query is a flat key, value, ... sequence. For the endpoints without a call of their own (/keys/*, /sendToDevice)."), \
    MX_API_DEF(resolve_alias, "resolve_alias($self, future, /, alias)\n--\n\nGET /directory/room/{alias}."), \
    MX_API_DEF(relations, "relations($self, future, /, room_id, event_id, rel_type, event_type, from_token, limit, direction)\n--\n\nGET /rooms/{id}/relations/{event_id}."), \
    MX_API_DEF(upload, "upload($self, future, /, data, content_type, filename=None)\n--\n\nPOST /media/v3/upload from memory; resolves with the content_uri answer."), \
    MX_API_DEF(upload_file, "upload_file($self, future, /, path, content_type, filename=None)\n--\n\nPOST /media/v3/upload, streamed from the file at path."), \
    MX_API_DEF(download, "download($self, future, /, server_name, media_id, max_bytes, path=None)\n--\n\nA media download (authenticated, legacy fallback), to memory or to path."), \
    MX_API_DEF(thumbnail, "thumbnail($self, future, /, server_name, media_id, width, height, method, max_bytes, path=None)\n--\n\nA media thumbnail (authenticated, legacy fallback), to memory or to path."), \
    MX_API_DEF(history, "history($self, future, /, room_id, from_token=None, backwards=True, until_event_id=None, until_ts=-1, limit=0, page_size=100, filter=None)\n--\n\nPages /rooms/{id}/messages on the engine thread; resolves with a History.")

#endif
