"""Reactions stay in step without asking the homeserver each time: a
reaction that came through history is remembered like a live one, so its
removal on Matrix takes it off on XMPP; and a sender's set of reactions on a
message is read from the homeserver once, then kept up to date."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp import Message

from tests.conftest import Person
from tests.harness.synapse import Synapse
from tests.scenarios import ProxiedClub, book_club, groupchat_from, register
from tests.test_e2e_messages import FRAN, react, redact

pytestmark = pytest.mark.asyncio(loop_scope="session")


def reactions_from_fran(
    room_jid: str, target: str, values: set[str]
) -> Callable[[Message], bool]:
    def match(m: Message) -> bool:
        return (
            m["from"].bare == room_jid
            and m["from"].resource == FRAN
            and "reactions" in m
            and m["reactions"]["id"] == target
            and m["reactions"].get_values() == values
        )

    return match


async def test_a_reaction_from_history_is_taken_off_when_removed_on_matrix(
    person: Person, synapse: Synapse
) -> None:
    friend, room_id = book_club(person, synapse)
    target = friend.send_text(room_id, "old news")
    thumbs = react(friend, room_id, target, "👍")
    await register(person, synapse)
    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)
    # The message and its reaction reach the archive by backfill, not live.
    deadline = asyncio.get_running_loop().time() + 60
    while "old news" not in [
        m["body"] for m in await person.xmpp.mam_messages(room_jid)
    ]:
        assert asyncio.get_running_loop().time() < deadline, "no backfill"
        await asyncio.sleep(0.5)

    redact(friend, room_id, thumbs)
    await person.xmpp.wait_message(
        reactions_from_fran(room_jid, target, set()), timeout=30
    )


async def test_live_reactions_read_the_homeservers_relations_once(
    proxied: ProxiedClub,
) -> None:
    club, xmpp = proxied, proxied.person.xmpp
    target = club.friend.send_text(club.room_id, "react here")
    await xmpp.wait_message(groupchat_from(club.room_jid, "react here"), 30)

    thumbs = react(club.friend, club.room_id, target, "👍")
    await xmpp.wait_message(reactions_from_fran(club.room_jid, target, {"👍"}), 30)
    react(club.friend, club.room_id, target, "🎉")
    await xmpp.wait_message(
        reactions_from_fran(club.room_jid, target, {"👍", "🎉"}), 30
    )
    redact(club.friend, club.room_id, thumbs)
    await xmpp.wait_message(reactions_from_fran(club.room_jid, target, {"🎉"}), 30)

    relations = club.proxy.requests(lambda s: "/relations/" in s.path)
    assert len(relations) == 1  # the first reaction; the log answers after
