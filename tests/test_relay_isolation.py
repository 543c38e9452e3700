"""One failure costs one event: through the real servers and our fault
proxy, a room whose state cannot be read does not hold up the others, a
passing failure is retried until every message arrives once, and a lasting
one is told to the user instead of dropped in silence."""

from __future__ import annotations

import asyncio
import re
import urllib.parse

import pytest
from slixmpp import Message

from tests.conftest import Person, new_matrix_user
from tests.harness.faultproxy import Fault
from tests.harness.synapse import Synapse
from tests.scenarios import ProxiedClub, groupchat_from, received_bodies

pytestmark = pytest.mark.asyncio(loop_scope="session")

NS_CONFERENCE = "jabber:x:conference"


def state_of(room_id: str) -> str:
    """The proxy rule matching requests for a room's full state."""
    quoted = urllib.parse.quote(room_id, safe="")
    return rf"^GET /_matrix/client/v3/rooms/{re.escape(quoted)}/state(\?|$)"


def is_invitation_to(room_jid: str):  # type: ignore[no-untyped-def]
    def match(m: Message) -> bool:
        x = m.xml.find(f"{{{NS_CONFERENCE}}}x")
        return x is not None and x.get("jid") == room_jid

    return match


async def archived(person: Person, room_jid: str, prefix: str) -> list[str]:
    msgs = await person.xmpp.mam_messages(room_jid)
    return [m["body"] for m in msgs if m["body"].startswith(prefix)]


async def test_a_room_failing_for_a_while_holds_up_no_other_and_loses_nothing(
    proxied: ProxiedClub, synapse: Synapse
) -> None:
    person, friend, proxy = proxied.person, proxied.friend, proxied.proxy
    # Room B, new to the gateway, whose state the homeserver fails to give.
    # Public, joined without an invitation: the first the gateway hears of it
    # is the join.
    room_b = friend.create_room(name="Second room", preset="public_chat")
    jid_b = person.room_jid(room_b)
    fault = proxy.add(Fault(state_of(room_b), "status", status=502))
    person.matrix.join(room_b)
    for i in range(3):
        friend.send_text(room_b, f"B {i}")
        friend.send_text(proxied.room_id, f"A {i}")

    # Room A's messages arrive while room B still fails.
    await person.xmpp.wait_message(groupchat_from(proxied.room_jid, "A 2"), 60)
    deadline = asyncio.get_running_loop().time() + 30
    while fault.hits < 2:  # asked, and asked again
        assert asyncio.get_running_loop().time() < deadline, "room B never asked"
        await asyncio.sleep(0.2)
    assert not [m for m in person.xmpp.received if is_invitation_to(jid_b)(m)]

    # Once the homeserver answers again, room B appears with all its messages.
    proxy.clear()
    await person.xmpp.wait_message(is_invitation_to(jid_b), timeout=90)
    await person.xmpp.join_muc(jid_b, person.name)
    deadline = asyncio.get_running_loop().time() + 60
    while (got := await archived(person, jid_b, "B ")) != ["B 0", "B 1", "B 2"]:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(1)
    # Room A's, once each.
    for i in range(3):
        assert len(received_bodies(person, proxied.room_jid, f"A {i}")) == 1
    assert await archived(person, proxied.room_jid, "A ") == ["A 0", "A 1", "A 2"]


async def test_a_room_that_cannot_be_shown_is_told_naming_the_sender(
    proxied: ProxiedClub, synapse: Synapse
) -> None:
    person, proxy = proxied.person, proxied.proxy
    stranger = new_matrix_user(synapse, "stan", "Stranger Stan")
    room_c = stranger.create_room(name="Locked room", preset="public_chat")
    # For good: the homeserver refuses this room's state.
    proxy.add(
        Fault(
            state_of(room_c),
            "status",
            status=403,
            body={"errcode": "M_FORBIDDEN", "error": "not for you"},
        )
    )
    person.matrix.join(room_c)
    stranger.send_text(room_c, "can you see this?")

    told = await person.xmpp.wait_message(
        lambda m: (
            m["from"].bare == person.gateway_jid
            and room_c in m["body"]
            and "could not be shown" in m["body"]
        ),
        timeout=60,
    )
    assert stranger.user_id in told["body"]
    assert "not for you" in told["body"]
    # The other room goes on.
    proxied.friend.send_text(proxied.room_id, "after the locked room")
    await person.xmpp.wait_message(
        groupchat_from(proxied.room_jid, "after the locked room"), 60
    )
