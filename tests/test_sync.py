"""The engine's /sync state machine: filters, backoff on network errors and
5xx resuming from the same token, backpressure, the fatal revoked token, and
stopping some clients mid long-poll while others keep receiving."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest

from matridge.matrix import (
    CREATOR_POWER_LEVEL,
    MAX_UNDELIVERED,
    SYNC_FILTER,
    MatrixClient,
    MatrixError,
    SyncBatch,
)
from tests.api_helpers import logged_in
from tests.conftest import new_matrix_user
from tests.harness.fake_homeserver import Answer, fake_homeserver
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYNC = "/_matrix/client/v3/sync"


class Recorder:
    """Collects what a sync loop reports, as awaitable queues."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[SyncBatch] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[Exception, bool]] = asyncio.Queue()

    def start(
        self,
        client: MatrixClient,
        since: str | None = None,
        timeout_ms: int = 1000,
        sync_filter: str = SYNC_FILTER,
    ) -> None:
        client.start_sync(
            self.batches.put_nowait,
            lambda e, fatal: self.errors.put_nowait((e, fatal)),
            since,
            timeout_ms,
            sync_filter,
        )

    async def batch(self) -> SyncBatch:
        return await asyncio.wait_for(self.batches.get(), 30)

    async def error(self) -> tuple[Exception, bool]:
        return await asyncio.wait_for(self.errors.get(), 30)


async def test_sync_uses_an_uploaded_filter(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    room = me.create_room(name="filtered")
    for i in range(3):
        me.send_text(room, f"m{i}")
    filter_id = await client.upload_filter({"room": {"timeline": {"limit": 1}}})
    rec = Recorder()
    rec.start(client, sync_filter=filter_id)
    try:
        batch = await rec.batch()
    finally:
        client.stop_sync()
    (joined,) = [r for r in batch.rooms if r.room_id == room]
    assert [e.body for e in joined.timeline] == ["m2"]
    assert joined.limited


async def test_5xx_and_garbage_back_off_and_resume_from_the_same_token() -> None:
    with fake_homeserver() as fake:
        fake.route(
            SYNC,
            Answer(500, {"errcode": "M_UNKNOWN", "error": "boom"}),
            Answer(502, b"<html>proxy</html>", {"Content-Type": "text/html"}),
            Answer(200, b"{not json"),
            Answer(200, {"next_batch": "s2"}),
            Answer(200, {"next_batch": "s3"}),
        )
        client = MatrixClient(fake.base_url, "t")
        rec = Recorder()
        rec.start(client, "s1", sync_filter='{"room":{}}')
        try:
            statuses = []
            for _ in range(3):
                error, fatal = await rec.error()
                assert isinstance(error, MatrixError)
                assert not fatal
                statuses.append(error.status)
            assert statuses == [500, 502, 200]
            assert (await rec.batch()).next_batch == "s2"
            client.sync_ack()
            assert (await rec.batch()).next_batch == "s3"
        finally:
            client.stop_sync()
        since = [r.query.get("since") for r in fake.requests_to(SYNC)]
        assert since[:5] == [["s1"], ["s1"], ["s1"], ["s1"], ["s2"]]
        assert all(r.query["filter"] == ['{"room":{}}'] for r in fake.requests_to(SYNC))
        assert client.syncing is False


async def test_network_errors_back_off_and_resume() -> None:
    with fake_homeserver() as fake:
        fake.route(SYNC, Answer(200, {"next_batch": "after"}))
        url = fake.base_url
    # The server is gone: the loop reports network errors and keeps trying.
    client = MatrixClient(url, "t")
    rec = Recorder()
    rec.start(client, "before")
    try:
        for _ in range(2):
            error, fatal = await rec.error()
            assert type(error).__name__ == "NetworkError"
            assert not fatal
        assert client.syncing
    finally:
        client.stop_sync()


async def test_backpressure_holds_at_max_undelivered() -> None:
    with fake_homeserver() as fake:
        fake.route(SYNC, *(Answer(200, {"next_batch": f"n{i}"}) for i in range(10)))
        client = MatrixClient(fake.base_url, "t")
        rec = Recorder()
        rec.start(client)
        try:
            got = [(await rec.batch()).next_batch for _ in range(MAX_UNDELIVERED)]
            client.sync_ack()
            got.append((await rec.batch()).next_batch)
            # Two batches wait unacknowledged again: no further request.
            assert len(fake.requests_to(SYNC)) == MAX_UNDELIVERED + 1
        finally:
            client.stop_sync()
        assert got == [f"n{i}" for i in range(MAX_UNDELIVERED + 1)]


async def test_unknown_token_is_fatal_and_carries_soft_logout() -> None:
    with fake_homeserver() as fake:
        fake.route(
            SYNC,
            Answer(
                401,
                {"errcode": "M_UNKNOWN_TOKEN", "error": "expired", "soft_logout": True},
            ),
        )
        client = MatrixClient(fake.base_url, "t")
        rec = Recorder()
        rec.start(client, "s1")
        error, fatal = await rec.error()
        assert fatal
        assert isinstance(error, MatrixError)
        assert (error.status, error.errcode, error.soft_logout) == (
            401,
            "M_UNKNOWN_TOKEN",
            True,
        )
        assert not client.syncing
        assert len(fake.requests_to(SYNC)) == 1


async def test_rate_limited_sync_waits_and_goes_on() -> None:
    with fake_homeserver() as fake:
        fake.route(
            SYNC,
            Answer(429, {"errcode": "M_LIMIT_EXCEEDED"}, {"Retry-After": "1"}),
            Answer(200, {"next_batch": "ok"}),
        )
        client = MatrixClient(fake.base_url, "t")
        rec = Recorder()
        rec.start(client)
        try:
            error, fatal = await rec.error()
            assert isinstance(error, MatrixError)
            assert (error.status, error.retry_after_ms, fatal) == (429, 1000, False)
            assert (await rec.batch()).next_batch == "ok"
        finally:
            client.stop_sync()


async def test_stopping_some_clients_mid_long_poll_spares_the_others(
    synapse: Synapse,
) -> None:
    friend = new_matrix_user(synapse, "friend")
    room = friend.create_room(name="many")
    clients, recorders = [], []
    for _ in range(4):
        client, me = await logged_in(synapse, "many")
        friend.invite(room, me.user_id)
        me.join(room)
        rec = Recorder()
        rec.start(client, timeout_ms=30000)
        clients.append(client)
        recorders.append(rec)
    tokens = []
    for client, rec in zip(clients, recorders, strict=True):
        tokens.append((await rec.batch()).next_batch)
        client.sync_ack()
    # All four now sit in a 30 s long-poll; stop two of them in the middle,
    # and drop the second one altogether.
    clients[0].stop_sync()
    clients[1].stop_sync()
    for rec in recorders[:2]:  # what arrived before the stop is fine
        while not rec.batches.empty():
            rec.batches.get_nowait()
    del client, clients[1]
    gc.collect()
    sent = friend.send_text(room, "still here?")

    async def receive(client: MatrixClient, rec: Recorder) -> None:
        while True:
            batch = await rec.batch()
            client.sync_ack()
            if sent in {e.event_id for r in batch.rooms for e in r.timeline}:
                return

    for client, rec in zip(clients[1:], recorders[2:], strict=True):
        await receive(client, rec)
        client.stop_sync()
    # Nothing is delivered to a client after its stop_sync().
    assert recorders[0].batches.empty() and recorders[1].batches.empty()
    assert not clients[0].syncing
    # A stopped client resumes from the token it had persisted.
    recorders[0].start(clients[0], tokens[0])
    try:
        await receive(clients[0], recorders[0])
    finally:
        clients[0].stop_sync()
    assert json.dumps([rec.errors.qsize() for rec in recorders]) == "[0, 0, 0, 0]"


async def test_the_engine_keeps_the_room_cache_up_to_date(synapse: Synapse) -> None:
    client, me = await logged_in(synapse)
    friend = new_matrix_user(synapse, "cachefriend", "Cache Friend")
    room = me.create_room(name="Cached", topic="kept by the engine")
    me.invite(room, friend.user_id)
    friend.join(room)
    rec = Recorder()
    # The session's filter lazy-loads members: only those who speak come along.
    rec.start(client)
    try:
        await rec.batch()
        client.sync_ack()
        info = client.rooms.get(room)
        assert info is not None
        assert (info.display_name, info.topic, info.membership) == (
            "Cached",
            "kept by the engine",
            "join",
        )
        # Room version 12: the creator has more power than any level.
        assert info.power_level(me.user_id) == CREATOR_POWER_LEVEL
        me.set_topic(room, "changed")
        while (info := client.rooms.get(room)) is None or info.topic != "changed":
            await rec.batch()  # the cache changes before Python sees the batch
            client.sync_ack()
    finally:
        client.stop_sync()
    # A full state load (through the engine) brings every member.
    loaded = await client.load_room_state(room)
    assert loaded is not None
    assert loaded.members[friend.user_id].display_name == "Cache Friend"
    assert loaded.member_display_name(friend.user_id) == "Cache Friend"
