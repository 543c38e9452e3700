"""A direct chat the XMPP user starts with someone whose Matrix client can
encrypt is created encrypted, as Matrix clients create them, and reads
both ways; with someone who has no device keys it stays in the clear
(tests/test_e2e_contacts.py reads those messages as plain text).
Real Synapse, Prosody, gateway and slixmpp client; matrix-nio plays the
other person, with a device its owner cross-signed."""

from __future__ import annotations

import time
from pathlib import Path

import nio
import pytest

from tests.conftest import Person, unique
from tests.harness.synapse import Synapse
from tests.scenarios import register
from tests.test_crypto_device import nio_user
from tests.test_crypto_rooms import cross_sign
from tests.test_e2e_contacts import chat_from, contact_jid

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def nio_invited_room(peer: nio.AsyncClient) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = await peer.sync(timeout=1000)
        assert isinstance(resp, nio.SyncResponse), resp
        if resp.rooms.invite:
            return str(next(iter(resp.rooms.invite)))
    raise AssertionError("no invitation reached the peer")


async def nio_texts_until(peer: nio.AsyncClient, room_id: str, body: str) -> list[str]:
    """The decrypted texts of the room the peer syncs until `body` is one."""
    texts: list[str] = []
    deadline = time.monotonic() + 60
    while body not in texts and time.monotonic() < deadline:
        resp = await peer.sync(timeout=1000)
        assert isinstance(resp, nio.SyncResponse), resp
        room = resp.rooms.join.get(room_id)
        for event in room.timeline.events if room else []:
            if isinstance(event, nio.RoomMessageText):
                texts.append(event.body)
    return texts


async def test_a_direct_chat_started_from_xmpp_with_an_encrypting_user_is_encrypted(
    person: Person, synapse: Synapse, tmp_path: Path
) -> None:
    await register(person, synapse)
    async with nio_user(synapse, tmp_path) as peer:
        cross_sign(synapse, peer)
        jid = contact_jid(person, peer.user_id)
        first = "the first secret words " + unique("")
        person.xmpp.send_chat(jid, first)

        room_id = await nio_invited_room(peer)
        assert isinstance(await peer.join(room_id), nio.JoinResponse)
        encryption = person.matrix.state(room_id, "m.room.encryption", "")
        assert encryption["algorithm"] == "m.megolm.v1.aes-sha2"
        assert first in await nio_texts_until(peer, room_id, first)
        sent_raw = [
            e
            for e in person.matrix.messages(room_id)
            if e["sender"] == person.matrix.user_id
            and e["type"] in ("m.room.message", "m.room.encrypted")
        ]
        assert [e["type"] for e in sent_raw] == ["m.room.encrypted"]

        answer = "an encrypted answer " + unique("")
        sent = await peer.room_send(
            room_id,
            "m.room.message",
            {"msgtype": "m.text", "body": answer},
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        await person.xmpp.wait_message(chat_from(jid, answer), timeout=60)
