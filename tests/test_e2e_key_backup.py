"""The key backup end to end, through the real Synapse, Prosody and
gateway: encrypted history whose keys only the user's key backup holds
(made as Element makes it, tests/harness/backup_peer.py) reaches the group
chat's archive readable once the user gave their recovery key with
``verify``."""

from __future__ import annotations

import asyncio
import time

import pytest

from matridge.crypto.primitives import MegolmInbound, MegolmOutbound
from tests.conftest import Person, new_matrix_user
from tests.e2ee_account import MEGOLM, element_like, send_megolm
from tests.harness import backup_peer
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.scenarios import groupchat_from, register
from tests.test_e2e_verify import assert_not_in_log, chat, from_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

SENDER_KEY = "c2VuZGVyIGN1cnZlMjU1MTkga2V5IG9mIHRoZSB0ZXN0cw"
SENDER_ED25519 = "c2VuZGVyIGVkMjU1MTkga2V5IG9mIHRoZSB0ZXN0cyEh"


def friends_encrypted_room(synapse: Synapse, person: Person) -> tuple[MatrixUser, str]:
    """An encrypted room of a friend's that the user joined."""
    friend = new_matrix_user(synapse, "friend", "Fran Friend")
    room_id = friend.create_room(name="Vault", invite=[person.matrix.user_id])
    friend.send_state(room_id, "m.room.encryption", {"algorithm": MEGOLM})
    person.matrix.join(room_id)
    return friend, room_id


async def test_history_only_the_key_backup_can_read_is_backfilled_readable(
    person: Person, synapse: Synapse, gateway: Gateway
) -> None:
    # The user's account as Element leaves it, with a key backup.
    identity, backup_key, storage = element_like(person.matrix)
    version = backup_peer.create_version(person.matrix, backup_key, identity.master)
    # A friend's encrypted messages, from before the gateway's device existed:
    # the user's Element put their key in the backup.
    friend, room_id = friends_encrypted_room(synapse, person)
    session = MegolmOutbound()
    inbound = MegolmInbound.from_session_key(session.session_key)
    secrets = [f"kept in the backup {i}" for i in range(3)]
    for body in secrets:
        send_megolm(friend, room_id, session, SENDER_KEY, body)
    exported = inbound.export_at(0)
    assert exported is not None
    backup_peer.put_session(
        person.matrix,
        version,
        backup_key,
        room_id,
        SENDER_KEY,
        session.session_id,
        exported,
        0,
        SENDER_ED25519,
    )
    # Enough after them that they are history, not the first sync's timeline.
    for i in range(15):
        friend.send_text(room_id, f"clear {i}")

    await register(person, synapse)
    await person.xmpp.wait_message(from_gateway(person, "'verify'"), timeout=60)
    await chat(person, f"verify {storage.recovery_key}", "is verified")

    room_jid = person.room_jid(room_id)
    await person.xmpp.join_muc(room_jid, person.name)
    friend.send_text(room_id, "live after the history")
    await person.xmpp.wait_message(
        groupchat_from(room_jid, "live after the history"), timeout=60
    )
    deadline = time.monotonic() + 90
    while True:
        archive = [str(m["body"]) for m in await person.xmpp.mam_messages(room_jid)]
        if all(s in archive for s in secrets) or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)

    assert [b for b in archive if b.startswith("kept in the backup")] == secrets
    assert not any("cannot be shown" in b for b in archive)
    assert_not_in_log(gateway, storage.recovery_key, exported)


async def test_the_user_is_told_when_their_key_backup_is_not_signed_by_them(
    person: Person, synapse: Synapse, gateway: Gateway
) -> None:
    _, backup_key, storage = element_like(person.matrix)
    # Made by someone who knows the public key, not by the user's devices.
    backup_peer.create_version(person.matrix, backup_key, None)

    await register(person, synapse)
    await person.xmpp.wait_message(from_gateway(person, "'verify'"), timeout=60)
    await chat(person, f"verify {storage.recovery_key}", "is verified")
    # The backup is looked at when a session is missing or new ones come:
    # an encrypted room with a message whose key the gateway lacks.
    friend, room_id = friends_encrypted_room(synapse, person)
    send_megolm(friend, room_id, MegolmOutbound(), SENDER_KEY, "?")

    told = await person.xmpp.wait_message(
        from_gateway(person, "key backup", "not signed by your"), timeout=60
    )
    assert "does not use it" in told["body"]
