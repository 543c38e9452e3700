"""What outbound.py decides about encryption, against the real Synapse: a
room's encryption is learnt from the homeserver when the room cache does
not know the room's state, and without encryption nothing goes into an
encrypted room (refused before any work, and at the send itself)."""

from __future__ import annotations

import pytest
from slixmpp.exceptions import XMPPError

from matridge.matrix import MatrixClient
from matridge.outbound import Outbound
from matridge.state import RecentIds
from tests.conftest import new_matrix_user
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_without_encryption_nothing_goes_into_an_encrypted_room(
    synapse: Synapse,
) -> None:
    user = new_matrix_user(synapse, "user")
    secret = user.create_room(name="secret")
    user.send_state(secret, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    clear = user.create_room(name="clear")
    # A client that never synced: its room cache knows neither room.
    outbound = Outbound(
        MatrixClient(synapse.base_url, user.access_token), "u@x", RecentIds(10)
    )
    assert await outbound.is_encrypted(secret)
    assert not await outbound.is_encrypted(clear)
    with pytest.raises(XMPPError, match="end-to-end encrypted"):
        await outbound.refuse_if_clear_only(secret)
    with pytest.raises(XMPPError, match="end-to-end encrypted"):
        await outbound.send(
            secret, "m.room.message", {"msgtype": "m.text", "body": "x"}
        )
    await outbound.refuse_if_clear_only(clear)
    await outbound.send(clear, "m.room.message", {"msgtype": "m.text", "body": "ok"})
    sent = [e for e in user.messages(secret) if e["type"] == "m.room.message"]
    assert sent == []
    assert [
        e["content"]["body"]
        for e in user.messages(clear)
        if e["type"] == "m.room.message"
    ] == ["ok"]
