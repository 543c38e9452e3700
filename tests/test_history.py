"""History end to end: a Matrix room's past reaches the XMPP archive (MAM) in
order, once each, as Element shows it; a long disconnection loses nothing;
and the engine's history call against the real Synapse."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import Any

import pytest
from slixmpp import Message

from matridge.matrix import MatrixClient, MatrixError
from tests.api_helpers import logged_in
from tests.conftest import Person, new_matrix_user
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.scenarios import Club, groupchat_from, register, rejoin_after_restart

pytestmark = pytest.mark.asyncio(loop_scope="session")


def redact(user: MatrixUser, room_id: str, event_id: str) -> None:
    path = f"/rooms/{urllib.parse.quote(room_id)}/redact/{urllib.parse.quote(event_id)}"
    user.request("PUT", f"{path}/r{time.time_ns()}", {})


def edit(user: MatrixUser, room_id: str, target: str, body: str) -> str:
    return user.send_event(
        room_id,
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": f"* {body}",
            "m.new_content": {"msgtype": "m.text", "body": body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )


def react(user: MatrixUser, room_id: str, target: str, key: str) -> None:
    relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
    user.send_event(room_id, "m.reaction", {"m.relates_to": relates})


def play_history(person: Person, friend: MatrixUser, room_id: str) -> list[str]:
    """1000 messages with edits, redactions, reactions, replies and a thread;
    returns the bodies an archive should show, in order."""
    shown: list[str] = []
    ids: list[str] = []
    for i in range(1000):
        author = person.matrix if i % 7 == 0 else friend
        body = f"h{i:04d}"
        if i % 50 == 1:
            content: dict[str, Any] = {
                "msgtype": "m.text",
                "body": f"> <{friend.user_id}> earlier\n\n{body}",
                "m.relates_to": {"m.in_reply_to": {"event_id": ids[-1]}},
            }
            ids.append(author.send_event(room_id, "m.room.message", content))
        elif i % 50 == 2:
            content = {
                "msgtype": "m.text",
                "body": body,
                "m.relates_to": {"rel_type": "m.thread", "event_id": ids[0]},
            }
            ids.append(author.send_event(room_id, "m.room.message", content))
        else:
            ids.append(author.send_text(room_id, body))
        if i % 10 == 5:
            edit(author, room_id, ids[-1], body + " (edited)")
            body += " (edited)"
        if i % 25 == 3:
            redact(author, room_id, ids[-1])
            continue
        if i % 30 == 4:
            react(friend, room_id, ids[-1], "👍")
        shown.append(body)
    return shown


def text_of(m: Message) -> str:
    """The body without a reply's quoted fallback (XEP-0461 puts the quote
    first, on its own lines)."""
    body: str = m["body"]
    return body.rsplit("\n", 1)[-1] if m["reply"]["id"] else body


def bodies_of(messages: list[Message], prefix: str) -> list[str]:
    return [text_of(m) for m in messages if text_of(m).startswith(prefix)]


async def test_a_thousand_message_history_reaches_mam_as_element_shows_it(
    person: Person, synapse: Synapse
) -> None:
    friend = new_matrix_user(synapse, "historian", "Hilda Historian")
    room_id = friend.create_room(name="Archive", invite=[person.matrix.user_id])
    person.matrix.join(room_id)
    expected = await asyncio.to_thread(play_history, person, friend, room_id)
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    # Joining makes slidge ask the gateway for the room's history.
    await person.xmpp.join_muc(room_jid, person.name)
    friend.send_text(room_id, "live after the history")
    await person.xmpp.wait_message(
        groupchat_from(room_jid, "live after the history"), timeout=60
    )
    deadline = time.monotonic() + 90
    while True:
        archive = await person.xmpp.mam_messages(room_jid)
        got = bodies_of(archive, "h")
        if got == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert len(got) == len(expected)
    assert got == expected  # in order, once each, edited, redacted ones absent
    by_body = {text_of(m): m for m in archive}
    # The user's own messages are theirs; others keep their display name.
    own, friends = by_body["h0000"], by_body["h0004"]
    assert own["from"].resource != "Hilda Historian"
    assert friends["from"].resource == "Hilda Historian"
    # Replies carry their XEP-0461 reference; Matrix's own fallback is gone.
    assert by_body["h0051"]["reply"]["id"]
    assert "earlier" not in by_body["h0051"]["body"]


async def test_a_long_disconnection_leaves_no_gap(club: Club, gateway: Gateway) -> None:
    gateway.stop()
    # More than the sync filter's 100-event timeline: the next sync is limited.
    sent = [f"gap {i:03d}" for i in range(150)]
    for body in sent:
        club.friend.send_text(club.room_id, body)
    gateway.start()
    await rejoin_after_restart(club)
    club.friend.send_text(club.room_id, "gap done")
    deadline = time.monotonic() + 90
    while True:
        got = bodies_of(await club.person.xmpp.mam_messages(club.room_jid), "gap ")
        if "gap done" in got or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert got == [*sent, "gap done"]


async def test_get_message_unknown_is_none_and_known_is_decoded(
    club: Club, gateway: Gateway
) -> None:
    # Through the engine directly, as MUC.get_message uses it.
    client = MatrixClient(club.person.matrix.base_url, club.person.matrix.access_token)
    event_id = club.friend.send_text(club.room_id, "find me")
    event = await client.get_event(club.room_id, event_id)
    assert event.message is not None and event.message.text == "find me"
    with pytest.raises(MatrixError) as e:
        await client.get_event(club.room_id, "$does-not-exist")
    assert e.value.status == 404


async def test_engine_history_against_synapse(synapse: Synapse) -> None:
    client, me = await logged_in(synapse, "hist")
    room = me.create_room(name="pages")
    ids = [me.send_text(room, f"p{i}") for i in range(120)]
    edit(me, room, ids[10], "p10 fixed")
    full = await client.history(room, page_size=25)
    assert full.stopped == "end" and full.end is None
    assert full.pages >= 5
    texts = [e.body for e in full.events if e.kind == "message"]
    assert texts == [f"p{i}" for i in range(120)]  # the edit is folded in
    fixed = full.replacement(ids[10])
    assert fixed is not None and fixed.new_message is not None
    assert fixed.new_message.body == "p10 fixed"
    part = await client.history(room, until_event_id=ids[99], page_size=7)
    assert part.stopped == "event"
    assert next(e.body for e in part.events if e.kind == "message") == "p100"
    first = await client.history(room, limit=30)
    rest = await client.history(room, first.end, limit=30)
    assert first.stopped == rest.stopped == "count"
    assert [e.body for e in rest.events][-1] == "p90"
    with pytest.raises(MatrixError) as e:
        await client.history("!missing:localhost")
    assert e.value.status in (403, 404)
