"""Every client-server call of MatrixClient against the real Synapse, each
checked through the server (usually another user's view), and the errors."""

from __future__ import annotations

from typing import Any

import pytest

from matridge.matrix import MatrixClient, MatrixError, NetworkError, discover
from tests.api_helpers import logged_in
from tests.conftest import new_matrix_user, unique
from tests.harness.fake_homeserver import Answer, fake_homeserver
from tests.harness.matrix_user import MatrixUser
from tests.harness.ports import free_port
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _ephemeral(
    user: MatrixUser, room: str, kind: str, since: str | None = None
) -> list[dict[str, object]]:
    # An incremental sync long-polls until something new arrives.
    joined = user.sync(since, 10000 if since else 0)["rooms"]["join"].get(room, {})
    events: list[dict[str, object]] = joined.get("ephemeral", {}).get("events", [])
    return [e for e in events if e["type"] == kind]


def _receipts_until(
    user: MatrixUser, room: str, since: str, event_id: str
) -> dict[str, Any]:
    """Every receipt the user's incremental syncs show in `room` until one
    for `event_id` arrives (receipt streams may lag a moment)."""
    seen: dict[str, Any] = {}
    for _ in range(10):
        res = user.sync(since, 5000)
        since = res["next_batch"]
        joined = res["rooms"]["join"].get(room, {})
        for e in joined.get("ephemeral", {}).get("events", []):
            if e["type"] == "m.receipt":
                seen.update(e["content"])
        if event_id in seen:
            return seen
    raise AssertionError(f"no receipt for {event_id} in {seen}")


async def shared_room(
    synapse: Synapse, name: str = "shared"
) -> tuple[MatrixClient, MatrixUser, MatrixUser, str]:
    """Me (client + direct view) and a friend, both joined to a room I made."""
    client, me = await logged_in(synapse)
    friend = new_matrix_user(synapse, "friend")
    room = me.create_room(name=name, invite=[friend.user_id])
    friend.join(room)
    return client, me, friend, room


# ---- session ----


async def test_login_with_a_token_from_an_existing_session(synapse: Synapse) -> None:
    _, me = await logged_in(synapse)
    fresh = MatrixClient(synapse.base_url)
    login = await fresh.login_token(me.get_login_token(), "second device")
    assert login.user_id == me.user_id
    assert login.access_token != me.access_token
    assert (await fresh.whoami())["device_id"] == login.device_id


async def test_logout_invalidates_the_token(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    token = me.access_token
    await client.logout()
    again = MatrixClient(synapse.base_url, token)
    with pytest.raises(MatrixError) as err:
        await again.whoami()
    assert err.value.status == 401
    assert err.value.errcode == "M_UNKNOWN_TOKEN"


async def test_discovery_follows_the_well_known(synapse: Synapse) -> None:
    # Synapse serves .well-known/matrix/client pointing at its public_baseurl.
    assert await discover(synapse.base_url) == synapse.base_url


async def test_discovery_falls_back_to_the_name_without_a_well_known() -> None:
    with fake_homeserver() as fake:
        fake.route("/.well-known/matrix/client", Answer(404, b"not here"))
        fake.route("/_matrix/client/versions", Answer(200, {"versions": ["v1.11"]}))
        assert await discover(fake.base_url) == fake.base_url
        assert fake.requests_to("/_matrix/client/versions")


async def test_discovery_uses_the_base_url_the_well_known_gives(
    synapse: Synapse,
) -> None:
    with fake_homeserver() as fake:
        fake.route(
            "/.well-known/matrix/client",
            Answer(200, {"m.homeserver": {"base_url": synapse.base_url + "/"}}),
        )
        assert await discover(fake.base_url) == synapse.base_url


async def test_discovery_refuses_a_broken_well_known() -> None:
    with fake_homeserver() as fake:
        fake.route("/.well-known/matrix/client", Answer(200, b"<html>oops"))
        with pytest.raises(MatrixError, match="not JSON"):
            await discover(fake.base_url)
        fake.route("/.well-known/matrix/client", Answer(200, {"m.homeserver": {}}))
        with pytest.raises(MatrixError, match="base_url"):
            await discover(fake.base_url)


async def test_filter_upload_returns_an_id_the_server_keeps(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    wanted = {"room": {"timeline": {"limit": 7, "lazy_load_members": True}}}
    filter_id = await client.upload_filter(wanted)
    stored = me.request("GET", f"/user/{me.user_id}/filter/{filter_id}")
    assert stored["room"]["timeline"]["limit"] == 7


# ---- sending ----


async def test_send_state_and_read_it_back(synapse: Synapse) -> None:
    client, _me, friend, room = await shared_room(synapse)
    await client.send_state(room, "m.room.topic", {"topic": "set by the engine"})
    assert friend.state(room, "m.room.topic") == {"topic": "set by the engine"}
    await client.send_state(room, "org.example.keyed", {"v": 1}, state_key="a/b c")
    assert friend.state(room, "org.example.keyed", "a/b c") == {"v": 1}
    assert await client.state_event(room, "org.example.keyed", "a/b c") == {"v": 1}
    with pytest.raises(MatrixError) as err:
        await client.state_event(room, "org.example.absent")
    assert err.value.status == 404


async def test_redact_with_reason_is_idempotent_per_txn(synapse: Synapse) -> None:
    client, _me, friend, room = await shared_room(synapse)
    target = friend.send_text(room, "regret")
    first = await client.redact(room, target, "redact-1", reason="off topic")
    assert await client.redact(room, target, "redact-1", reason="off topic") == first
    seen = friend.request("GET", f"/rooms/{room}/event/{target}")
    assert seen["content"] == {}
    because = seen["unsigned"]["redacted_because"]
    assert because["event_id"] == first
    assert because["content"]["reason"] == "off topic"


async def test_typing_on_and_off(synapse: Synapse) -> None:
    client, me, friend, room = await shared_room(synapse)
    await client.typing(room, True, 20000)
    (typing,) = _ephemeral(friend, room, "m.typing")
    assert typing["content"] == {"user_ids": [me.user_id]}
    since = friend.sync()["next_batch"]
    await client.typing(room, False)
    (typing,) = _ephemeral(friend, room, "m.typing", since)
    assert typing["content"] == {"user_ids": []}


async def test_receipts_public_private_and_threaded(synapse: Synapse) -> None:
    client, me, friend, room = await shared_room(synapse)
    first = friend.send_text(room, "one")
    since = friend.sync()["next_batch"]
    await client.send_receipt(room, first)
    seen = _receipts_until(friend, room, since, first)
    assert me.user_id in seen[first]["m.read"]
    second = friend.send_text(room, "two")
    third = friend.send_text(room, "three")
    mine_since = me.sync()["next_batch"]
    since = friend.sync()["next_batch"]
    await client.send_receipt(room, second, "m.read.private")
    await client.send_receipt(room, third, thread_id="main")
    # The friend sees the threaded public receipt, never the private one.
    seen = _receipts_until(friend, room, since, third)
    assert second not in seen
    assert seen[third]["m.read"][me.user_id]["thread_id"] == "main"
    mine = _receipts_until(me, room, mine_since, second)
    assert me.user_id in mine[second]["m.read.private"]


async def test_read_markers_move_fully_read(synapse: Synapse) -> None:
    client, me, friend, room = await shared_room(synapse)
    event = friend.send_text(room, "read me")
    since = friend.sync()["next_batch"]
    await client.set_read_markers(room, event, read=event)
    assert await client.get_account_data("m.fully_read", room) == {"event_id": event}
    assert me.user_id in _receipts_until(friend, room, since, event)[event]["m.read"]


# ---- profile and presence ----


async def test_profile_set_and_seen_by_others(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    friend = new_matrix_user(synapse, "friend")
    await client.set_displayname("Engine Ann")
    await client.set_avatar_url("mxc://localhost/avatar1")
    seen = friend.request("GET", f"/profile/{me.user_id}")
    assert seen == {
        "displayname": "Engine Ann",
        "avatar_url": "mxc://localhost/avatar1",
    }
    friend.set_displayname("Friendly")
    profile = await client.get_profile(friend.user_id)
    assert profile.displayname == "Friendly"
    assert profile.avatar_url is None


async def test_presence_set_and_get(synapse: Synapse) -> None:
    client, me, friend, _ = await shared_room(synapse)  # sharing shows presence
    await client.set_presence("unavailable", "lunch")
    seen = friend.request("GET", f"/presence/{me.user_id}/status")
    assert (seen["presence"], seen["status_msg"]) == ("unavailable", "lunch")
    presence = await client.get_presence(me.user_id)
    assert (presence.presence, presence.status_msg) == ("unavailable", "lunch")


# ---- rooms ----


async def test_joined_members_and_filtered_members(synapse: Synapse) -> None:
    client, me, friend, room = await shared_room(synapse)
    before_third = me.sync()["next_batch"]
    third = new_matrix_user(synapse, "third")
    me.invite(room, third.user_id)
    friend.set_displayname("Fritz")
    joined = await client.joined_members(room)
    assert set(joined) == {me.user_id, friend.user_id}
    invited = await client.members(room, membership="invite")
    assert [e["state_key"] for e in invited] == [third.user_id]
    not_joined = await client.members(room, not_membership="join")
    assert [e["state_key"] for e in not_joined] == [third.user_id]
    then = await client.members(room, at=before_third)
    assert third.user_id not in {e["state_key"] for e in then}
    assert {e["state_key"] for e in then} == {me.user_id, friend.user_id}


async def test_event_context_around_an_event(synapse: Synapse) -> None:
    client, _me, friend, room = await shared_room(synapse)
    ids = [friend.send_text(room, f"m{i}") for i in range(5)]
    ctx = await client.event_context(room, ids[2], limit=4)
    assert ctx["event"]["event_id"] == ids[2]
    before = [e["event_id"] for e in ctx["events_before"]]
    after = [e["event_id"] for e in ctx["events_after"]]
    assert before == [ids[1], ids[0]]
    assert after == [ids[3], ids[4]]


async def test_join_by_alias_with_via_and_leave_with_reason(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    owner = new_matrix_user(synapse, "owner")
    room = owner.create_room(name="public", preset="public_chat")
    alias = f"#{unique('alias')}:{synapse.server_name}"
    owner.request(
        "PUT", f"/directory/room/{alias.replace('#', '%23')}", {"room_id": room}
    )
    assert await client.join(alias, via=[synapse.server_name]) == room
    assert me.user_id in owner.joined_members(room)
    await client.leave(room, reason="bye now")
    member = owner.state(room, "m.room.member", me.user_id)
    assert member["membership"] == "leave"
    assert member["reason"] == "bye now"


async def test_invite_kick_ban_unban_with_reasons(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    room = await client.create_room(name="moderated")
    other = new_matrix_user(synapse, "other")

    await client.invite(room, other.user_id, reason="come")
    state = me.state(room, "m.room.member", other.user_id)
    assert (state["membership"], state["reason"]) == ("invite", "come")
    other.join(room)
    await client.kick(room, other.user_id, reason="noise")
    state = me.state(room, "m.room.member", other.user_id)
    assert (state["membership"], state["reason"]) == ("leave", "noise")
    await client.ban(room, other.user_id, reason="again")
    state = me.state(room, "m.room.member", other.user_id)
    assert (state["membership"], state["reason"]) == ("ban", "again")
    await client.unban(room, other.user_id, reason="forgiven")
    state = me.state(room, "m.room.member", other.user_id)
    assert (state["membership"], state["reason"]) == ("leave", "forgiven")


async def test_create_room_with_every_option(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    friend = new_matrix_user(synapse, "friend")
    room = await client.create_room(
        name="Options",
        topic="all of them",
        invite=[friend.user_id],
        is_direct=True,
        preset="trusted_private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            }
        ],
    )
    invite = friend.sync()["rooms"]["invite"][room]["invite_state"]["events"]
    by_type = {e["type"]: e for e in invite}
    assert by_type["m.room.name"]["content"]["name"] == "Options"
    mine = {e["type"]: e for e in await client.room_state(room)}
    assert mine["m.room.topic"]["content"]["topic"] == "all of them"
    assert mine["m.room.history_visibility"]["content"] == {
        "history_visibility": "joined"
    }
    invited = me.state(room, "m.room.member", friend.user_id)
    assert invited["is_direct"] is True
    assert mine["m.room.join_rules"]["content"]["join_rule"] == "invite"


async def test_account_data_global_and_per_room(synapse: Synapse) -> None:
    client, me, friend, room = await shared_room(synapse)
    direct = {friend.user_id: [room]}
    await client.set_account_data("m.direct", direct)
    assert me.request("GET", f"/user/{me.user_id}/account_data/m.direct") == direct
    assert await client.get_account_data("m.direct") == direct
    await client.set_account_data("org.example.note", {"n": 1}, room_id=room)
    path = f"/user/{me.user_id}/rooms/{room}/account_data/org.example.note"
    assert me.request("GET", path) == {"n": 1}
    assert await client.get_account_data("org.example.note", room) == {"n": 1}
    with pytest.raises(MatrixError) as err:
        await client.get_account_data("org.example.unset")
    assert (err.value.status, err.value.errcode) == (404, "M_NOT_FOUND")


async def test_resolve_alias(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    room = me.create_room(name="aliased")
    alias = f"#{unique('alias')}:{synapse.server_name}"
    me.request("PUT", f"/directory/room/{alias.replace('#', '%23')}", {"room_id": room})
    found = await client.resolve_alias(alias)
    assert found.room_id == room
    assert synapse.server_name in found.servers
    with pytest.raises(MatrixError) as err:
        await client.resolve_alias(f"#nothing-{unique('x')}:{synapse.server_name}")
    assert err.value.status == 404


async def test_relations_filtered_and_paginated(synapse: Synapse) -> None:
    client, _me, friend, room = await shared_room(synapse)
    root = friend.send_text(room, "root")

    def react(key: str) -> str:
        rel = {"rel_type": "m.annotation", "event_id": root, "key": key}
        return friend.send_event(room, "m.reaction", {"m.relates_to": rel})

    reactions = [react("👍"), react("🎉")]
    reply = friend.send_event(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "in thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root},
        },
    )
    everything = await client.relations(room, root)
    assert {e["event_id"] for e in everything.chunk} == {*reactions, reply}
    threads = await client.relations(room, root, rel_type="m.thread")
    assert [e["event_id"] for e in threads.chunk] == [reply]
    page = await client.relations(
        room, root, "m.annotation", "m.reaction", limit=1, direction="f"
    )
    assert [e["event_id"] for e in page.chunk] == reactions[:1]
    assert page.next_batch is not None
    rest = await client.relations(
        room, root, "m.annotation", "m.reaction", page.next_batch, 1, "f"
    )
    assert [e["event_id"] for e in rest.chunk] == reactions[1:]


# ---- errors ----


async def test_an_unknown_room_is_a_matrix_error(synapse: Synapse) -> None:
    client, _ = await logged_in(synapse)
    with pytest.raises(MatrixError) as err:
        await client.send_event(
            "!nowhere:localhost", "m.room.message", {"body": "x"}, "t1"
        )
    assert err.value.status == 403
    assert err.value.errcode == "M_FORBIDDEN"
    with pytest.raises(MatrixError) as err:
        await client.join("#nowhere-at-all:localhost")
    assert err.value.status == 404
    assert err.value.errcode == "M_NOT_FOUND"


async def test_a_bad_token_is_401_unknown_token(synapse: Synapse) -> None:
    client = MatrixClient(synapse.base_url, "not-a-token")
    with pytest.raises(MatrixError) as err:
        await client.joined_rooms()
    assert (err.value.status, err.value.errcode) == (401, "M_UNKNOWN_TOKEN")
    assert err.value.soft_logout is False


async def test_a_closed_port_is_a_network_error() -> None:
    client = MatrixClient(f"http://127.0.0.1:{free_port()}", "token")
    with pytest.raises(NetworkError):
        await client.get_profile("@a:b")


async def test_a_non_json_error_body_is_still_a_matrix_error() -> None:
    with fake_homeserver() as fake:
        fake.route(
            "/_matrix/client/v3/joined_rooms",
            Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}),
        )
        with pytest.raises(MatrixError) as err:
            await MatrixClient(fake.base_url, "t").joined_rooms()
    assert err.value.status == 502
    assert err.value.errcode is None
    assert "Bad Gateway" in (err.value.error or "")


async def test_rate_limits_are_waited_out_and_retried() -> None:
    limited = {"errcode": "M_LIMIT_EXCEEDED", "error": "slow down"}
    with fake_homeserver() as fake:
        fake.route(
            "/_matrix/client/v3/joined_rooms",
            Answer(429, {**limited, "retry_after_ms": 50}),
            Answer(429, limited, {"Retry-After": "1"}),
            Answer(200, {"joined_rooms": ["!a:b"]}),
        )
        assert await MatrixClient(fake.base_url, "t").joined_rooms() == ["!a:b"]
        assert len(fake.requests_to("/_matrix/client/v3/joined_rooms")) == 3


async def test_rate_limit_retries_are_bounded() -> None:
    limited = {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1}
    with fake_homeserver() as fake:
        fake.route("/_matrix/client/v3/joined_rooms", Answer(429, limited))
        with pytest.raises(MatrixError) as err:
            await MatrixClient(fake.base_url, "t").joined_rooms()
        assert err.value.status == 429
        assert err.value.retry_after_ms == 1
        assert len(fake.requests_to("/_matrix/client/v3/joined_rooms")) == 6


async def test_path_segments_and_query_values_are_percent_encoded() -> None:
    with fake_homeserver() as fake:
        fake.route(
            "/_matrix/client/v3/rooms/%21r%3Ax%2Fy%3Fz/members",
            Answer(200, {"chunk": []}),
        )
        client = MatrixClient(fake.base_url, "t")
        await client.members("!r:x/y?z", at="s1&membership=join", membership="le ave")
        (seen,) = fake.requests_to("/_matrix/client/v3/rooms/%21r%3Ax%2Fy%3Fz/members")
        assert seen.query == {"at": ["s1&membership=join"], "membership": ["le ave"]}
        assert seen.headers["Authorization"] == "Bearer t"


async def test_a_redirect_to_another_host_is_not_followed_with_the_token() -> None:
    with fake_homeserver() as elsewhere, fake_homeserver() as hs:
        elsewhere.route("/steal", Answer(body={"joined_rooms": []}))
        hs.route(
            "/_matrix/client/v3/joined_rooms",
            Answer(status=302, headers={"Location": f"{elsewhere.base_url}/steal"}),
        )
        client = MatrixClient(hs.base_url, "secret-token")
        with pytest.raises(MatrixError) as e:
            await client.joined_rooms()
        assert e.value.status == 302
        assert elsewhere.requests_to("/steal") == []  # the token never left


# ---- the generic request (endpoints without a call of their own) ----


async def test_a_generic_request_reaches_the_keys_api(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    # One-time keys uploaded through request() are counted by the server.
    key = {"key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "signatures": {}}
    answer = await client.request(
        "POST",
        "/_matrix/client/v3/keys/upload",
        body={"one_time_keys": {"signed_curve25519:AAAAAQ": key}},
    )
    assert answer["one_time_key_counts"]["signed_curve25519"] == 1
    # Segments are percent-encoded into the {} of the path; the query too.
    query = await client.request(
        "POST",
        "/_matrix/client/v3/keys/query",
        body={"device_keys": {me.user_id: []}},
    )
    assert me.user_id in query["device_keys"]
    room = me.create_room(name="generic")
    members = await client.request(
        "GET", "/_matrix/client/v3/rooms/{}/joined_members", room
    )
    assert me.user_id in members["joined"]
    page = await client.request(
        "GET",
        "/_matrix/client/v3/rooms/{}/messages",
        room,
        query={"dir": "b", "limit": "1"},
    )
    assert len(page["chunk"]) == 1
    # Errors come back as MatrixError, like every call's.
    with pytest.raises(MatrixError) as err:
        await client.request(
            "GET", "/_matrix/client/v3/rooms/{}/joined_members", "!nope:x"
        )
    assert err.value.status in (403, 404)


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("/_synapse/admin/v1/server_version", ()),  # outside the client API
        ("/_matrix/client/v3/../../_synapse/admin", ()),
        ("/_matrix/client/v3/rooms/{}/state?x=1", ("!a:b",)),
        ("/_matrix/client/v3/rooms/{}/state", ()),  # a {} without its segment
        ("/_matrix/client/v3/sync", ("extra",)),
    ],
)
async def test_a_generic_request_refuses_other_paths(
    synapse: Synapse, path: str, segments: tuple[str, ...]
) -> None:
    client, _me = await logged_in(synapse)
    with pytest.raises(ValueError):
        await client.request("GET", path, *segments)
