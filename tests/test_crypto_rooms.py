"""Megolm in rooms (matridge/crypto/rooms.py) against the real Synapse, with
matrix-nio as the other people's devices: room keys go to the devices their
owners cross-signed and a withheld notice to the others; sessions rotate
by count, by age and when a device they reached leaves; reading refuses
replays and keys of other rooms, and says why a message cannot be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nio
import pytest

from matridge.crypto import rooms
from matridge.crypto.primitives import sign_json
from matridge.crypto.rooms import RoomCrypto, RotationSettings, Undecryptable
from matridge.crypto.store import KeyStore
from tests.harness.cross_signing_peer import Identity, publish, query_keys
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.test_crypto_device import (
    Ours,
    nio_sync,
    nio_user,
    our_device,
    ours_store,
    store_key,
)

__all__ = ["ours_store", "store_key"]  # fixtures used by name

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOM = "!room:example.org"  # keys and events need no real room


def cross_sign(synapse: Synapse, peer: nio.AsyncClient) -> None:
    """The peer's owner gives themself an identity and signs the peer's
    device with it, as Element does for a device it verified."""
    raw = MatrixUser(synapse.base_url, peer.access_token, peer.user_id)
    identity = Identity.generate(peer.user_id)
    publish(raw, identity)
    keys = query_keys(raw, peer.user_id)["device_keys"][peer.user_id][peer.device_id]
    keys.pop("unsigned", None)
    ssk = identity.self_signing
    signed = sign_json(keys, ssk, peer.user_id, ssk.public_key)
    only_ours = {
        f"ed25519:{ssk.public_key}": signed["signatures"][peer.user_id][
            f"ed25519:{ssk.public_key}"
        ]
    }
    body = {
        peer.user_id: {
            peer.device_id: {**keys, "signatures": {peer.user_id: only_ours}}
        }
    }
    res = raw.request("POST", "/keys/signatures/upload", body)
    assert not res.get("failures"), res


async def has_room_key(peer: nio.AsyncClient, sender_key: str, session_id: str) -> bool:
    """Whether the peer got the session's key, over a few of its syncs (a
    to-device message sent after a sync's token may come one sync later)."""
    for _ in range(3):
        await peer.sync(timeout=0)
        if peer.olm.inbound_group_store.get(ROOM, sender_key, session_id):
            return True
    return False


class ToDeviceReader:
    """The to-device events reaching a peer, read raw; each read
    acknowledges the previous one, as a sync loop's token would."""

    def __init__(self, synapse: Synapse, peer: nio.AsyncClient) -> None:
        self.raw = MatrixUser(synapse.base_url, peer.access_token, peer.user_id)
        self.since: str | None = None

    def read(self) -> list[dict[str, Any]]:
        res = self.raw.sync(self.since, 0)
        self.since = res["next_batch"]
        events: list[dict[str, Any]] = res.get("to_device", {}).get("events", [])
        return events


async def ours_ready(synapse: Synapse, store: KeyStore) -> tuple[Ours, RoomCrypto]:
    ours = await our_device(synapse, store)
    await ours.device.upload_keys()
    return ours, RoomCrypto(ours.device)


async def test_keys_go_to_cross_signed_devices_and_the_others_hear_why_not(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours, crypto = await ours_ready(synapse, ours_store)
    async with (
        nio_user(synapse, tmp_path) as trusted,
        nio_user(synapse, tmp_path) as unverified,
    ):
        cross_sign(synapse, trusted)
        members = [ours.device.user_id, trusted.user_id, unverified.user_id]
        content = await crypto.encrypt(
            ROOM, "m.room.message", {"body": "hi there"}, members, RotationSettings()
        )
        assert content["algorithm"] == "m.megolm.v1.aes-sha2"
        # A space never occurs in base64 or ids, so a match means clear text.
        assert "hi there" not in json.dumps(content)
        session_id = content["session_id"]
        assert await has_room_key(trusted, ours.device.curve25519, session_id)

        reader = ToDeviceReader(synapse, unverified)
        got = reader.read()
        withheld = [e for e in got if e["type"] == "m.room_key.withheld"]
        assert [e["content"]["code"] for e in withheld] == ["m.unverified"]
        assert withheld[0]["content"]["session_id"] == session_id
        assert withheld[0]["content"]["sender_key"] == ours.device.curve25519
        assert [e["type"] for e in got] == ["m.room_key.withheld"]

        # The next message of the session tells nobody anything again.
        again = await crypto.encrypt(
            ROOM, "m.room.message", {"body": "2"}, members, RotationSettings()
        )
        assert again["session_id"] == session_id
        assert reader.read() == []


async def test_a_device_verified_later_gets_the_sessions_key(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours, crypto = await ours_ready(synapse, ours_store)
    async with nio_user(synapse, tmp_path) as later:
        members = [later.user_id]
        reader = ToDeviceReader(synapse, later)

        async def send() -> str:
            content = await crypto.encrypt(
                ROOM, "m.room.message", {"body": "x"}, members, RotationSettings()
            )
            return str(content["session_id"])

        session_id = await send()
        assert [e["type"] for e in reader.read()] == ["m.room_key.withheld"]
        # Its owner verifies it; a sync then reports the user's keys changed.
        cross_sign(synapse, later)
        ours.device.devices_changed([later.user_id], [])
        assert await send() == session_id  # no rotation: nobody left
        assert await has_room_key(later, ours.device.curve25519, session_id)


async def test_the_admin_option_shares_with_every_device(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    crypto = RoomCrypto(ours.device, share_with_unverified=True)
    async with nio_user(synapse, tmp_path) as unverified:
        content = await crypto.encrypt(
            ROOM,
            "m.room.message",
            {"body": "hi"},
            [unverified.user_id],
            RotationSettings(),
        )
        assert await has_room_key(
            unverified, ours.device.curve25519, content["session_id"]
        )


async def test_sessions_rotate_by_count_by_age_and_when_a_device_leaves(
    synapse: Synapse,
    ours_store: KeyStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours, crypto = await ours_ready(synapse, ours_store)
    async with nio_user(synapse, tmp_path) as a, nio_user(synapse, tmp_path) as b:
        cross_sign(synapse, a)
        cross_sign(synapse, b)
        both = [a.user_id, b.user_id]
        by_count = RotationSettings(period_msgs=2)

        async def session(members: list[str], rotation: RotationSettings) -> str:
            content = await crypto.encrypt(
                ROOM, "m.room.message", {"body": "x"}, members, rotation
            )
            return str(content["session_id"])

        first = await session(both, by_count)
        assert await session(both, by_count) == first
        second = await session(both, by_count)  # the third message
        assert second != first

        # b leaves: what follows must not be readable with b's key.
        third = await session([a.user_id], by_count)
        assert third != second
        assert await has_room_key(a, ours.device.curve25519, third)
        assert not await has_room_key(b, ours.device.curve25519, third)

        now = rooms._now_ms()
        monkeypatch.setattr(rooms, "_now_ms", lambda: now + 3_600_001)
        hourly = RotationSettings(period_ms=3_600_000)
        assert await session([a.user_id], hourly) != third


async def test_our_own_messages_read_back_and_replays_are_refused(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    _, crypto = await ours_ready(synapse, ours_store)
    content = await crypto.encrypt(
        ROOM, "m.room.message", {"body": "mine"}, [], RotationSettings()
    )
    payload = crypto.decrypt(ROOM, "$one", 1000, content)
    assert payload == {
        "type": "m.room.message",
        "content": {"body": "mine"},
        "room_id": ROOM,
    }
    # The same event again (a batch delivered twice) reads the same.
    assert crypto.decrypt(ROOM, "$one", 1000, content) == payload
    with pytest.raises(Undecryptable, match="replays"):
        crypto.decrypt(ROOM, "$two", 2000, content)
    # The room's key does not open the message in another room.
    with pytest.raises(Undecryptable, match="not reached") as late:
        crypto.decrypt("!other:example.org", "$three", 3000, content)
    assert late.value.waiting


async def test_a_withheld_key_is_the_reason_the_user_reads(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    _, crypto = await ours_ready(synapse, ours_store)
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": "c2VuZGVy",
        "session_id": "c2Vzc2lvbg",
        "ciphertext": "AwgA",
        "device_id": "X",
    }
    with pytest.raises(Undecryptable, match="not reached") as missing:
        crypto.decrypt(ROOM, "$e", 1, content)
    assert missing.value.session == (ROOM, "c2VuZGVy", "c2Vzc2lvbg")
    with ours_store.transaction():
        ours_store.put_json(
            "\0".join(("withheld", ROOM, "c2VuZGVy", "c2Vzc2lvbg")),
            {"code": "m.unverified", "reason": "x", "from": "@a:x"},
        )
    with pytest.raises(Undecryptable, match=r"not verified yet.*verify"):
        crypto.decrypt(ROOM, "$e", 1, content)
    with pytest.raises(Undecryptable, match="algorithm"):
        crypto.decrypt(ROOM, "$e", 1, {**content, "algorithm": "m.olm.v1"})
    with pytest.raises(Undecryptable, match="malformed"):
        crypto.decrypt(ROOM, "$e", 1, {"algorithm": "m.megolm.v1.aes-sha2"})


async def test_rotation_settings_come_from_the_room_and_bad_values_are_defaults() -> (
    None
):
    assert RotationSettings.from_content(
        {"rotation_period_ms": 1000, "rotation_period_msgs": 5}
    ) == RotationSettings(1000, 5)
    for bad in ({"rotation_period_ms": -1}, {"rotation_period_msgs": "5"}, {}):
        assert RotationSettings.from_content(bad) == RotationSettings()


async def test_nio_reads_what_we_encrypt(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours, crypto = await ours_ready(synapse, ours_store)
    async with nio_user(synapse, tmp_path) as peer:
        cross_sign(synapse, peer)
        raw = MatrixUser(synapse.base_url, ours.raw.access_token, ours.device.user_id)
        room = raw.create_room(name="secret", invite=[peer.user_id])
        MatrixUser(synapse.base_url, peer.access_token, peer.user_id).join(room)
        content = await crypto.encrypt(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "to nio"},
            [ours.device.user_id, peer.user_id],
            RotationSettings(),
        )
        raw.send_event(room, "m.room.encrypted", content)
        resp = await nio_sync(peer)
        events = resp.rooms.join[room].timeline.events
        texts = [e.body for e in events if isinstance(e, nio.RoomMessageText)]
        assert texts == ["to nio"]
