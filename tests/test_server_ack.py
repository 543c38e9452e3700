"""ServerAck's bookkeeping, with a confirmation the test controls (the
behaviour through a real XMPP server is in test_xmpp_restart.py and
test_direct_crash.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from matridge import server_ack
from matridge.server_ack import ServerAck

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeServer:
    """Answers each confirmation when the test says so, or fails it."""

    def __init__(self) -> None:
        self.asked = 0
        self.answers: asyncio.Queue[bool] = asyncio.Queue()

    async def confirm(self) -> None:
        self.asked += 1
        if not await self.answers.get():
            raise TimeoutError("no answer")


def ack_with(server: FakeServer) -> tuple[ServerAck, list[dict[str, Any]]]:
    stored: dict[str, Any] = {}
    writes: list[dict[str, Any]] = []

    def save(update: dict[str, Any]) -> None:
        writes.append(update)
        stored.update(update)

    return ServerAck(server.confirm, lambda: stored, save), writes


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_first_token_is_saved_at_once_later_ones_soon() -> None:
    server = FakeServer()
    ack, writes = ack_with(server)
    ack.batch_done("t1")
    assert writes == [{"since": "t1"}]
    # Batches without direct messages: the newest token, at the next save.
    ack.batch_done("t2")
    ack.batch_done("t3")
    assert writes == [{"since": "t1"}]
    ack.flush()  # what the timer (or a logout) does
    assert writes == [{"since": "t1"}, {"since": "t3"}]
    # An idle long-poll gives the same token back: nothing is written.
    ack.batch_done("t3")
    ack.flush()
    assert writes == [{"since": "t1"}, {"since": "t3"}]
    assert server.asked == 0


async def test_marks_and_the_token_wait_for_the_server_and_go_in_one_write() -> None:
    server = FakeServer()
    ack, writes = ack_with(server)
    ack.shown("!a", "$1")
    ack.shown("!b", "$2")
    ack.shown("!a", "$3")
    ack.batch_done("t1")
    await settle()
    assert writes == [] and ack.mark("!a") is None
    server.answers.put_nowait(True)
    await ack.settled()
    assert writes == [{"direct_marks": {"!a": "$3", "!b": "$2"}, "since": "t1"}]
    assert ack.mark("!a") == "$3"
    assert server.asked == 1


async def test_what_is_shown_during_a_round_trip_waits_for_the_next() -> None:
    server = FakeServer()
    ack, writes = ack_with(server)
    ack.shown("!a", "$1")
    await settle()  # the first ping is out
    ack.shown("!a", "$2")
    ack.batch_done("t1")
    server.answers.put_nowait(True)
    await settle()
    assert writes == [{"direct_marks": {"!a": "$1"}}]
    server.answers.put_nowait(True)
    await ack.settled()
    assert writes[-1] == {"direct_marks": {"!a": "$2"}, "since": "t1"}
    assert server.asked == 2


async def test_without_an_answer_nothing_is_saved_until_a_later_one() -> None:
    server = FakeServer()
    ack, writes = ack_with(server)
    ack.shown("!a", "$1")
    ack.batch_done("t1")
    server.answers.put_nowait(False)
    await ack.settled()
    assert writes == []
    # A later batch is saved with the earlier marks, once confirmed.
    ack.batch_done("t2")
    server.answers.put_nowait(True)
    await ack.settled()
    assert writes == [{"direct_marks": {"!a": "$1"}, "since": "t2"}]


async def test_a_waiting_token_is_saved_by_its_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_ack, "TOKEN_SAVE_SECONDS", 0.01)
    ack, writes = ack_with(FakeServer())
    ack.batch_done("t1")
    ack.batch_done("t2")
    assert writes == [{"since": "t1"}]
    await asyncio.sleep(0.2)  # the timer's delay, many times over
    assert writes == [{"since": "t1"}, {"since": "t2"}]
