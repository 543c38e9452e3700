"""Faults: the gateway killed mid-stream, and what survives it. Everything is
real; the gateway process is the session-wide one, restarted in place."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from slixmpp import Message

from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixError as MatrixUserError
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.scenarios import Club, groupchat_from, rejoin_after_restart
from tests.test_e2e_contacts import Direct, chat_from, direct  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")


def send_many(user: MatrixUser, room_id: str, bodies: list[str], gap: float) -> None:
    for body in bodies:
        user.send_text(room_id, body)
        time.sleep(gap)


def body_is(body: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("content", {}).get("body") == body


async def archived_bodies(club: Club, prefix: str) -> list[str]:
    msgs = await club.person.xmpp.mam_messages(club.room_jid)
    return [m["body"] for m in msgs if m["body"].startswith(prefix)]


async def wait_archived(club: Club, prefix: str, last: str, within: float) -> list[str]:
    deadline = time.monotonic() + within
    while True:
        bodies = await archived_bodies(club, prefix)
        if last in bodies or time.monotonic() > deadline:
            return bodies
        await asyncio.sleep(1)


async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    club: Club, gateway: Gateway
) -> None:
    bodies = [f"stream {i:03d}" for i in range(80)]
    sender = threading.Thread(
        target=send_many, args=(club.friend, club.room_id, bodies, 0.02)
    )
    sender.start()
    try:
        # Let part of the stream through, then kill the gateway without
        # warning: no chance to persist anything more.
        await club.person.xmpp.wait_message(
            groupchat_from(club.room_jid, "stream 020"), timeout=60
        )
        gateway.kill()
    finally:
        await asyncio.to_thread(sender.join)
    gateway.start()
    archived = await wait_archived(club, "stream ", "stream 079", within=90)
    assert archived == bodies


def stored_since(gateway: Gateway, user_jid: str) -> str:
    with sqlite3.connect(gateway.home / "slidge.sqlite") as db:
        (data,) = db.execute(
            "SELECT legacy_module_data FROM user_account WHERE jid = ?", (user_jid,)
        ).fetchone()
    since: str = json.loads(data).get("since", "")
    return since


def rewind_since(gateway: Gateway, user_jid: str, since: str) -> None:
    with sqlite3.connect(gateway.home / "slidge.sqlite") as db:
        (data,) = db.execute(
            "SELECT legacy_module_data FROM user_account WHERE jid = ?", (user_jid,)
        ).fetchone()
        db.execute(
            "UPDATE user_account SET legacy_module_data = ? WHERE jid = ?",
            (json.dumps({**json.loads(data), "since": since}), user_jid),
        )


async def test_a_batch_delivered_again_after_a_crash_is_not_doubled(
    club: Club, gateway: Gateway
) -> None:
    # A crash after events went to XMPP but before the sync token was saved
    # means the same batch comes again on restart. Rewinding the saved token
    # makes that happen every time.
    user_jid = str(club.person.xmpp.boundjid.bare)
    # The token of the initial sync, once saved (a loaded machine may still
    # be handling that batch when the user has joined the room).
    deadline = asyncio.get_running_loop().time() + 30
    while not stored_since(gateway, user_jid):
        assert asyncio.get_running_loop().time() < deadline, "no token saved"
        await asyncio.sleep(0.2)
    before = stored_since(gateway, user_jid)
    bodies = [f"again {i}" for i in range(5)]
    for body in bodies:
        club.friend.send_text(club.room_id, body)
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "again 4"), timeout=60
    )
    gateway.kill()
    rewind_since(gateway, user_jid, before)
    gateway.start()
    club.friend.send_text(club.room_id, "again done")
    archived = await wait_archived(club, "again ", "again done", within=90)
    assert archived == [*bodies, "again done"]


async def test_a_repeated_xmpp_message_reaches_matrix_once(
    club: Club, gateway: Gateway
) -> None:
    # A client that resends after a reconnection reuses the message id; so
    # does slidge after a crash. The transaction id makes the send idempotent.
    msg = club.person.xmpp.make_message(
        mto=club.room_jid, mbody="only once, please", mtype="groupchat"
    )
    msg["id"] = "resent-0001"
    msg["origin_id"]["id"] = "resent-0001"
    msg.send()
    await club.friend.wait_for_message_async(club.room_id, body_is("only once, please"))
    gateway.kill()
    gateway.start()
    await rejoin_after_restart(club)
    msg.send()
    # An echo of the resend, if there were one, would come before this.
    club.friend.send_text(club.room_id, "after the resend")
    await club.person.xmpp.wait_message(
        groupchat_from(club.room_jid, "after the resend"), timeout=60
    )
    bodies = [
        e["content"].get("body")
        for e in club.friend.messages(club.room_id, limit=50)
        if e["type"] == "m.room.message"
    ]
    assert bodies.count("only once, please") == 1


def send_reliably(user: MatrixUser, room_id: str, body: str, txn: str) -> None:
    """Like a Matrix client: the same transaction id until the send succeeds."""
    path = f"/rooms/{urllib.parse.quote(room_id)}/send/m.room.message/{txn}"
    while True:
        try:
            user.request("PUT", path, {"msgtype": "m.text", "body": body})
            return
        except (OSError, MatrixUserError) as e:
            if isinstance(e, MatrixUserError) and e.status < 500:
                raise
            time.sleep(0.5)


def room_bodies(user: MatrixUser, room_id: str) -> list[str]:
    """Every message body of the room, oldest first (raw HTTP paging)."""
    bodies: list[str] = []
    token: str | None = None
    while True:
        query = {"dir": "b", "limit": "500", **({"from": token} if token else {})}
        page = user.request(
            "GET", f"/rooms/{urllib.parse.quote(room_id)}/messages", query=query
        )
        bodies += [
            e["content"].get("body", "")
            for e in page["chunk"]
            if e.get("type") == "m.room.message"
        ]
        token = page.get("end")
        if not token or not page["chunk"]:
            return bodies[::-1]


async def test_synapse_restarts_during_streams_in_both_directions(
    club: Club, synapse: Synapse
) -> None:
    n = 500
    to_xmpp = [f"m2x {i:03d}" for i in range(n)]
    to_matrix = [f"x2m {i:03d}" for i in range(n)]

    def matrix_side() -> None:
        for i, body in enumerate(to_xmpp):
            send_reliably(club.friend, club.room_id, body, f"stream-{i}")

    async def xmpp_side() -> None:
        for body in to_matrix:
            club.person.xmpp.send_groupchat(club.room_jid, body)
            await asyncio.sleep(0.01)

    def restarts() -> None:
        # SIGKILL: Synapse gets no chance to finish requests in flight.
        for _ in range(3):
            time.sleep(2)
            synapse.restart(kill=True)

    await asyncio.gather(
        asyncio.to_thread(matrix_side), xmpp_side(), asyncio.to_thread(restarts)
    )
    deadline = time.monotonic() + 180
    while True:
        in_matrix = [
            b
            for b in await asyncio.to_thread(room_bodies, club.friend, club.room_id)
            if b.startswith("x2m ")
        ]
        archived = await archived_bodies(club, "m2x ")
        done = in_matrix == to_matrix and archived == to_xmpp
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert in_matrix == to_matrix  # each once, in order
    assert archived == to_xmpp


async def test_a_revoked_token_is_reported_in_words(
    club: Club, gateway: Gateway
) -> None:
    user_jid = str(club.person.xmpp.boundjid.bare)
    with sqlite3.connect(gateway.home / "slidge.sqlite") as db:
        (data,) = db.execute(
            "SELECT legacy_module_data FROM user_account WHERE jid = ?", (user_jid,)
        ).fetchone()
    token = json.loads(data)["access_token"]
    # Another client (here: plain HTTP) logs the gateway's device out.
    MatrixUser(club.friend.base_url, token, "").request("POST", "/logout", {})
    notice = await club.person.xmpp.wait_message(
        lambda m: (
            m["from"].bare == club.person.gateway_jid
            and "Register again with your password" in m["body"]
        ),
        timeout=60,
    )
    assert "logged out or revoked" in notice["body"]
    # The session stopped cleanly: the gateway is still there for others.
    assert gateway.proc is not None and gateway.proc.poll() is None


def stored_direct_mark(gateway: Gateway, user_jid: str, room_id: str) -> str | None:
    with sqlite3.connect(gateway.home / "slidge.sqlite") as db:
        (data,) = db.execute(
            "SELECT legacy_module_data FROM user_account WHERE jid = ?", (user_jid,)
        ).fetchone()
    mark: str | None = json.loads(data).get("direct_marks", {}).get(room_id)
    return mark


async def test_a_gap_after_a_restart_does_not_repeat_a_direct_chat(
    direct: Direct,  # noqa: F811  (the fixture imported above)
    gateway: Gateway,
) -> None:
    xmpp = direct.person.xmpp
    user_jid = str(xmpp.boundjid.bare)
    before = direct.friend.send_text(direct.room_id, "before the restart")
    await xmpp.wait_message(chat_from(direct.jid, "before the restart"), timeout=30)
    # Kill only once the batch that carried it is saved: this test is about
    # the gap, not a batch delivered again.
    deadline = time.monotonic() + 30
    while stored_direct_mark(gateway, user_jid, direct.room_id) != before:
        assert time.monotonic() < deadline, "the delivery mark was never saved"
        await asyncio.sleep(0.2)
    gateway.kill()
    # More than a sync timeline holds (100): the next sync is limited.
    away = [f"while away {i:03d}" for i in range(120)]
    await asyncio.to_thread(send_many, direct.friend, direct.room_id, away, 0)
    gateway.start()
    await xmpp.wait_message(chat_from(direct.jid, away[-1]), timeout=120)

    got = [
        m["body"]
        for m in xmpp.received
        if isinstance(m, Message) and chat_from(direct.jid)(m)
    ]
    assert got.count("before the restart") == 1
    assert [b for b in got if b.startswith("while away")] == away
