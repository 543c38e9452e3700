"""The engine's loop looks only at what asked for it (engine.c): accounts
are stepped when poked, when their /sync ends or when their backoff runs
out, and requests waiting out a 429 sit in a deadline heap. These tests
check that nothing is forgotten that way: many loops at once all move on,
and a request cancelled while it waits is never sent again."""

from __future__ import annotations

import asyncio

import pytest

from matridge.matrix import MAX_UNDELIVERED, MatrixClient, SyncBatch
from tests.harness.fake_homeserver import Answer, fake_homeserver

pytestmark = pytest.mark.asyncio(loop_scope="session")

SYNC = "/_matrix/client/v3/sync"
WHOAMI = "/_matrix/client/v3/account/whoami"
ACCOUNTS = 40
BATCHES_EACH = 6


async def test_many_held_sync_loops_each_move_on_when_acknowledged() -> None:
    with fake_homeserver() as fake:
        fake.route(SYNC, Answer(200, {"next_batch": "next"}, delay=0.05))
        done: asyncio.Queue[MatrixClient] = asyncio.Queue()
        errors: list[Exception] = []
        clients = [MatrixClient(fake.base_url, f"t{i}") for i in range(ACCOUNTS)]

        def on_batch_for(client: MatrixClient) -> object:
            seen = 0

            def on_batch(batch: SyncBatch) -> None:
                nonlocal seen
                seen += 1
                if seen == BATCHES_EACH:
                    done.put_nowait(client)
                if seen % MAX_UNDELIVERED == 0:
                    # The loop is held now: only these acks (their poke)
                    # make the engine look at the account again.
                    for _ in range(MAX_UNDELIVERED):
                        client.sync_ack()

            return on_batch

        for client in clients:
            client.start_sync(
                on_batch_for(client), lambda e, fatal: errors.append(e), None, 1000
            )
        try:
            finished = {id(await asyncio.wait_for(done.get(), 60)) for _ in clients}
        finally:
            for client in clients:
                client.stop_sync()
        assert finished == {id(c) for c in clients}
        assert errors == []
        assert len(fake.requests_to(SYNC)) >= ACCOUNTS * BATCHES_EACH


async def test_a_request_cancelled_while_waiting_out_a_429_is_not_sent_again() -> None:
    with fake_homeserver() as fake:
        fake.route(
            WHOAMI,
            Answer(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}),
            Answer(200, {"user_id": "@me:x"}),
        )
        client = MatrixClient(fake.base_url, "t")
        task = asyncio.ensure_future(client.whoami())
        await asyncio.to_thread(fake.wait_for_request, WHOAMI)
        await asyncio.sleep(0.3)  # the 429 answered: the request waits its turn
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(2.0)  # past the time it would have been sent again
        assert len(fake.requests_to(WHOAMI)) == 1
        # The engine goes on, and the server's next answer is this call's.
        assert (await client.whoami())["user_id"] == "@me:x"


async def test_a_request_waiting_out_a_429_is_sent_again_and_answered() -> None:
    with fake_homeserver() as fake:
        fake.route(
            WHOAMI,
            Answer(429, {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 200}),
            Answer(200, {"user_id": "@me:x"}),
        )
        client = MatrixClient(fake.base_url, "t")
        assert (await client.whoami())["user_id"] == "@me:x"
        assert len(fake.requests_to(WHOAMI)) == 2
