"""Scenarios shared by the end-to-end and fault tests: a person registered
with the gateway, in a Matrix room with a friend, joined as a MUC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from slixmpp import Message

from tests.conftest import Person, new_matrix_user
from tests.harness.faultproxy import FaultProxy
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppError


def from_gateway(person: Person, *words: str) -> Callable[[Message], bool]:
    """A message from the gateway's own JID holding every one of `words`."""

    def match(m: Message) -> bool:
        return (
            m["from"].bare == person.gateway_jid
            and m["type"] in ("chat", "normal")
            and all(w in m["body"] for w in words)
        )

    return match


def groupchat_from(room_jid: str, body: str | None = None):  # type: ignore[no-untyped-def]
    def match(m: Message) -> bool:
        return (
            m["type"] == "groupchat"
            and m["from"].bare == room_jid
            and (body is None or m["body"] == body)
        )

    return match


def received_bodies(person: Person, room_jid: str, body: str) -> list[Message]:
    return [
        m
        for m in person.xmpp.received
        if isinstance(m, Message) and m["from"].bare == room_jid and m["body"] == body
    ]


async def register(
    person: Person, synapse: Synapse, homeserver: str | None = None, **fields: str
) -> None:
    """Registers `person` with the gateway; `homeserver` instead of
    Synapse's own URL (our fault proxy, say), other `fields` of the form
    replaced too."""
    form = {**person.registration_form(synapse), **fields}
    if homeserver is not None:
        form["homeserver"] = homeserver
    await person.xmpp.register_with(person.gateway_jid, form, timeout=60)
    # The gateway reports the Matrix login in its presence status.
    await person.xmpp.wait_presence(
        lambda p: (
            p["from"].bare == person.gateway_jid and "Connected as" in p["status"]
        ),
        timeout=60,
    )


async def refused_registration(person: Person, form: dict[str, str]) -> XmppError:
    """The error the gateway answers a registration with `form`."""
    try:
        await person.xmpp.register_with(person.gateway_jid, form, timeout=60)
    except XmppError as e:
        return e
    raise AssertionError("the registration was accepted")


@dataclass
class Club:
    """A person registered with the gateway, in a Matrix room with a friend,
    with the room joined as a MUC."""

    person: Person
    friend: MatrixUser
    room_id: str
    room_jid: str
    nick: str


def book_club(person: Person, synapse: Synapse) -> tuple[MatrixUser, str]:
    """A friend's named room with a topic, which the person's Matrix account
    has joined; returns the friend and the room id."""
    friend = new_matrix_user(synapse, "friend", "Friendly Fran")
    room_id = friend.create_room(
        name="Book club", topic="Reading together", invite=[person.matrix.user_id]
    )
    person.matrix.join(room_id)
    return friend, room_id


@pytest_asyncio.fixture(loop_scope="session")
async def club(person: Person, synapse: Synapse) -> AsyncIterator[Club]:
    friend, room_id = book_club(person, synapse)
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    presences = await person.xmpp.join_muc(room_jid, person.name)
    yield Club(person, friend, room_id, room_jid, presences[-1]["from"].resource)


async def rejoin_after_restart(club: Club, within: float = 60) -> None:
    """Joins the MUC again once the restarted gateway has logged the user in
    (until then it refuses the join)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            await club.person.xmpp.join_muc(club.room_jid, club.person.name)
            return
        except XmppError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)


@dataclass
class ProxiedClub:
    """A club whose gateway session reaches Synapse through our fault proxy."""

    person: Person
    friend: MatrixUser
    room_id: str
    room_jid: str
    proxy: FaultProxy


@pytest.fixture
def proxy(synapse: Synapse) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", synapse.port) as p:
        yield p


@pytest_asyncio.fixture(loop_scope="session")
async def proxied(
    person: Person, synapse: Synapse, proxy: FaultProxy
) -> AsyncIterator[ProxiedClub]:
    """A person whose gateway session reaches Synapse through the proxy, in
    a friend's room joined as a MUC."""
    friend, room_id = book_club(person, synapse)
    await register(person, synapse, homeserver=proxy.base_url)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)
    yield ProxiedClub(person, friend, room_id, room_jid, proxy)
    proxy.clear()
    proxy.set_down(False)
