"""The C engine through its Python facade, against the real Synapse."""

from __future__ import annotations

import asyncio

import pytest

from matridge.matrix import MatrixClient, MatrixError, NetworkError, SyncBatch
from tests.conftest import new_matrix_user, unique
from tests.harness.matrix_user import MatrixUser
from tests.harness.ports import free_port
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def logged_in(synapse: Synapse) -> tuple[MatrixClient, MatrixUser]:
    name = unique("core")
    synapse.register_user(name, "pw")
    client = MatrixClient(synapse.base_url)
    login = await client.login_password(name, "pw", "core tests")
    return client, MatrixUser(synapse.base_url, login.access_token, login.user_id)


async def test_versions_login_and_whoami(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    assert "v1.1" in (await client.versions())["versions"]
    assert (await client.whoami())["user_id"] == me.user_id


async def test_a_wrong_password_is_a_matrix_error_with_its_fields(
    synapse: Synapse,
) -> None:
    name = unique("core")
    synapse.register_user(name, "pw")
    with pytest.raises(MatrixError) as err:
        await MatrixClient(synapse.base_url).login_password(name, "nope")
    assert err.value.status == 403
    assert err.value.errcode == "M_FORBIDDEN"
    assert err.value.soft_logout is False


async def test_an_unreachable_server_is_a_network_error() -> None:
    with pytest.raises(NetworkError):
        await MatrixClient(f"http://127.0.0.1:{free_port()}").versions()


async def test_a_homeserver_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="https://"):
        MatrixClient("matrix.org")


async def test_calls_without_a_token_are_refused_before_sending(
    synapse: Synapse,
) -> None:
    with pytest.raises(RuntimeError, match="not logged in"):
        await MatrixClient(synapse.base_url).whoami()


async def test_send_is_idempotent_per_transaction_id(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    room = me.create_room(name="txn")
    content = {"msgtype": "m.text", "body": "once"}
    first = await client.send_event(room, "m.room.message", content, "txn-1")
    again = await client.send_event(room, "m.room.message", content, "txn-1")
    assert first == again
    bodies = [
        e["content"].get("body")
        for e in me.messages(room)
        if e["type"] == "m.room.message"
    ]
    assert bodies == ["once"]


async def test_room_state_and_event(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    room = me.create_room(name="State room", topic="a topic")
    types = {e["type"] for e in await client.room_state(room)}
    assert {"m.room.create", "m.room.name", "m.room.topic", "m.room.member"} <= types
    event_id = me.send_text(room, "look me up")
    assert (await client.room_event(room, event_id))["content"]["body"] == "look me up"
    assert room in await client.joined_rooms()
    with pytest.raises(MatrixError) as err:
        await client.room_event(room, "$does-not-exist")
    assert err.value.status == 404


async def test_cancelling_a_call_leaves_the_client_usable(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    task = asyncio.ensure_future(client.whoami())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.whoami())["user_id"] == me.user_id


async def test_sync_delivers_batches_in_order_and_stops(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    friend = new_matrix_user(synapse, "friend")
    room = friend.create_room(name="sync", invite=[me.user_id])
    me.join(room)
    batches: asyncio.Queue[SyncBatch] = asyncio.Queue()
    errors: list[tuple[Exception, bool]] = []
    client.start_sync(
        batches.put_nowait, lambda e, f: errors.append((e, f)), None, 2000
    )
    try:
        first = await asyncio.wait_for(batches.get(), 30)
        client.sync_ack()
        assert room in {r.room_id for r in first.rooms if r.membership == "join"}
        sent = [friend.send_text(room, f"message {i}") for i in range(5)]
        seen: list[str] = []
        while len(seen) < 5:
            batch = await asyncio.wait_for(batches.get(), 30)
            for r in batch.rooms:
                seen += [e.event_id for e in r.timeline if e.type == "m.room.message"]  # type: ignore[misc]
            client.sync_ack()
        assert seen == sent
    finally:
        client.stop_sync()
    await asyncio.sleep(0.5)
    assert not client.syncing
    assert errors == []


async def test_a_revoked_token_stops_sync_with_a_fatal_error(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    stopped: asyncio.Future[tuple[Exception, bool]] = (
        asyncio.get_running_loop().create_future()
    )

    def on_error(e: Exception, fatal: bool) -> None:
        if fatal and not stopped.done():
            stopped.set_result((e, fatal))

    batches: asyncio.Queue[SyncBatch] = asyncio.Queue()
    client.start_sync(batches.put_nowait, on_error, None, 1000)
    await asyncio.wait_for(batches.get(), 30)
    client.sync_ack()
    me.request("POST", "/logout", {})
    error, _ = await asyncio.wait_for(stopped, 30)
    assert isinstance(error, MatrixError)
    assert error.errcode == "M_UNKNOWN_TOKEN"
    await asyncio.sleep(0.5)
    assert not client.syncing


async def test_event_views_expose_fields_lazily(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    room = me.create_room(name="views")
    batches: asyncio.Queue[SyncBatch] = asyncio.Queue()
    client.start_sync(batches.put_nowait, lambda e, f: None, None, 1000)
    try:
        batch = await asyncio.wait_for(batches.get(), 30)
    finally:
        client.stop_sync()
    (joined,) = [r for r in batch.rooms if r.room_id == room]
    events = {e.type: e for e in joined.timeline}
    name = events["m.room.name"]
    assert name.state_key == ""
    assert name.content == {"name": "views"}
    assert name.source["event_id"] == name.event_id
    assert name.sender == me.user_id
    assert name.origin_server_ts > 0
    assert name.invalid is None
    assert isinstance(batch.next_batch, str)
