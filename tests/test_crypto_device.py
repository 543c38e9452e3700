"""The gateway's Matrix device (matridge/crypto/device.py) against the real
Synapse, with matrix-nio (on vodozemac) as the other side: keys seen and
checked by another user, one-time keys counted, claimed and replenished,
room keys both ways over Olm, refused payloads, forwarded and withheld
keys, and the state after reopening the store.

Our device's to-device events are fetched with a raw /sync of its access
token: the gateway's sync loop does not hand them to the device yet."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nio
import pytest

from matridge.crypto.device import Device, ForwardedRoomKey
from matridge.crypto.device_keys import (
    DeviceKeysError,
    checked_device_keys,
    checked_one_time_key,
)
from matridge.crypto.primitives import (
    MegolmInbound,
    MegolmOutbound,
    b64encode,
    canonical_json,
    random_bytes,
    verify_json,
)
from matridge.crypto.store import KeyStore
from matridge.matrix import MatrixClient
from tests.conftest import new_matrix_user, unique
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")

MEGOLM = "m.megolm.v1.aes-sha2"


@dataclass
class Ours:
    """The gateway's side: its device, and the same login driven raw."""

    device: Device
    raw: MatrixUser
    client: MatrixClient
    since: str | None = None

    def to_device(self, at_least: int = 1) -> list[dict[str, Any]]:
        """The to-device events waiting for our device (acknowledged by the
        next call, as the sync loop's token would)."""
        events: list[dict[str, Any]] = []
        for _ in range(10):
            res = self.raw.sync(self.since, 3000 if self.since else 0)
            self.since = res["next_batch"]
            events += res.get("to_device", {}).get("events", [])
            if len(events) >= at_least:
                return events
        raise AssertionError(f"only {len(events)} to-device events came")


@pytest.fixture
def store_key() -> bytes:
    return random_bytes(32)


@pytest.fixture
def ours_store(tmp_path: Path, store_key: bytes) -> Iterator[KeyStore]:
    store = KeyStore.open(tmp_path / "keys.sqlite", store_key)
    yield store
    store.close()


async def our_device(synapse: Synapse, store: KeyStore) -> Ours:
    name = unique("dev")
    synapse.register_user(name, "pw")
    client = MatrixClient(synapse.base_url)
    login = await client.login_password(name, "pw", "gateway device")
    device = Device(client, store, login.user_id, login.device_id)
    raw = MatrixUser(synapse.base_url, login.access_token, login.user_id)
    return Ours(device, raw, client)


@asynccontextmanager
async def nio_user(synapse: Synapse, tmp_path: Path) -> AsyncIterator[nio.AsyncClient]:
    """Another user on matrix-nio with end-to-end encryption, keys uploaded."""
    name = unique("nio")
    synapse.register_user(name, "pw")
    store_dir = tmp_path / f"nio-{name}"
    store_dir.mkdir()
    client = nio.AsyncClient(
        synapse.base_url,
        f"@{name}:{synapse.server_name}",
        store_path=str(store_dir),
        config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    try:
        resp = await client.login("pw", device_name="nio peer")
        assert isinstance(resp, nio.LoginResponse), resp
        assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
        yield client
    finally:
        await client.close()


def encrypted_room(ours: Ours, peer: nio.AsyncClient) -> str:
    room = ours.raw.create_room(name="secret", invite=[peer.user_id])
    ours.raw.send_state(room, "m.room.encryption", {"algorithm": MEGOLM})
    peer_raw = MatrixUser(ours.raw.base_url, peer.access_token, peer.user_id)
    peer_raw.join(room)
    return room


async def nio_sync(peer: nio.AsyncClient) -> nio.SyncResponse:
    resp = await peer.sync(timeout=0, full_state=True)
    assert isinstance(resp, nio.SyncResponse), resp
    return resp


async def nio_knows(peer: nio.AsyncClient, user_id: str) -> None:
    """nio's device list of `user_id` brought up to date."""
    peer.olm.users_for_key_query.add(user_id)
    assert isinstance(await peer.keys_query(), nio.KeysQueryResponse)


def nio_olm_to(
    peer: nio.AsyncClient,
    ours: Ours,
    event_type: str,
    content: dict[str, Any],
    **wrong: Any,
) -> dict[str, Any]:
    """An Olm-encrypted to-device content from nio to our device over nio's
    Olm session with it; `wrong` replaces fields of the plaintext (sender,
    recipient, recipient_keys, keys) to falsify them."""
    device = peer.device_store[ours.device.user_id][ours.device.device_id]
    session = peer.olm.session_store.get(device.curve25519)
    assert session is not None
    payload = {
        "sender": peer.user_id,
        "sender_device": peer.device_id,
        "keys": {"ed25519": peer.olm.account.identity_keys["ed25519"]},
        "recipient": device.user_id,
        "recipient_keys": {"ed25519": device.ed25519},
        "type": event_type,
        "content": content,
        **wrong,
    }
    kind, body = session.encrypt(json.dumps(payload)).to_parts()
    peer.olm.store.save_session(device.curve25519, session)
    return {
        "algorithm": "m.olm.v1.curve25519-aes-sha2",
        "sender_key": peer.olm.account.identity_keys["curve25519"],
        "ciphertext": {device.curve25519: {"type": kind, "body": b64encode(body)}},
    }


def send_to_device(
    sender: MatrixUser, recipient: str, device_id: str, kind: str, content: Any
) -> None:
    sender.request(
        "PUT",
        f"/sendToDevice/{kind}/{unique('txn')}",
        {"messages": {recipient: {device_id: content}}},
    )


def peer_raw(ours: Ours, peer: nio.AsyncClient) -> MatrixUser:
    return MatrixUser(ours.raw.base_url, peer.access_token, peer.user_id)


# ---- our keys on the homeserver ----------------------------------------------


async def test_our_device_keys_are_seen_by_another_user_with_a_valid_signature(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    await ours.device.upload_keys()  # a second call uploads nothing new
    friend = new_matrix_user(synapse, "friend")
    res = friend.request(
        "POST", "/keys/query", {"device_keys": {ours.device.user_id: []}}
    )
    keys = res["device_keys"][ours.device.user_id][ours.device.device_id]
    dev = ours.device.device_id
    assert keys["keys"][f"ed25519:{dev}"] == ours.device.ed25519
    assert keys["keys"][f"curve25519:{dev}"] == ours.device.curve25519
    verify_json(keys, ours.device.user_id, dev, ours.device.ed25519)
    assert checked_device_keys(ours.device.user_id, dev, keys) == keys


async def test_one_time_keys_are_counted_claimed_and_replenished(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    ours = await our_device(synapse, ours_store)
    target = ours.device.one_time_key_target
    assert target > 0
    counts = await ours.device.upload_keys()
    assert counts["signed_curve25519"] == target
    friend = new_matrix_user(synapse, "friend")
    me, dev = ours.device.user_id, ours.device.device_id
    device_keys = friend.request("POST", "/keys/query", {"device_keys": {me: []}})[
        "device_keys"
    ][me][dev]
    claimed = set()
    for _ in range(3):
        res = friend.request(
            "POST",
            "/keys/claim",
            {"one_time_keys": {me: {dev: "signed_curve25519"}}},
        )
        claimed.add(
            checked_one_time_key(me, device_keys, res["one_time_keys"][me][dev])
        )
    assert len(claimed) == 3
    sync = ours.raw.sync()
    assert sync["device_one_time_keys_count"]["signed_curve25519"] == target - 3
    assert "signed_curve25519" in sync["device_unused_fallback_key_types"]
    counts = await ours.device.replenish(
        sync["device_one_time_keys_count"], sync["device_unused_fallback_key_types"]
    )
    assert counts["signed_curve25519"] == target
    # Synapse caches a repeated /sync: the next one goes from the token.
    again = ours.raw.sync(sync["next_batch"])
    assert again["device_one_time_keys_count"]["signed_curve25519"] == target


async def test_a_used_fallback_key_is_replaced(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    friend = new_matrix_user(synapse, "friend")
    me, dev = ours.device.user_id, ours.device.device_id
    for _ in range(ours.device.one_time_key_target + 1):  # the last gets the fallback
        res = friend.request(
            "POST", "/keys/claim", {"one_time_keys": {me: {dev: "signed_curve25519"}}}
        )
    (last,) = res["one_time_keys"][me][dev].values()
    assert last.get("fallback") is True
    sync = ours.raw.sync()
    assert sync["device_one_time_keys_count"].get("signed_curve25519", 0) == 0
    assert sync["device_unused_fallback_key_types"] == []
    await ours.device.replenish(
        sync["device_one_time_keys_count"], sync["device_unused_fallback_key_types"]
    )
    sync = ours.raw.sync(sync["next_batch"])
    assert sync["device_unused_fallback_key_types"] == ["signed_curve25519"]
    assert (
        sync["device_one_time_keys_count"]["signed_curve25519"]
        == ours.device.one_time_key_target
    )


# ---- device lists --------------------------------------------------------------


async def test_device_lists_are_fetched_checked_and_forgotten(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours = await our_device(synapse, ours_store)
    async with nio_user(synapse, tmp_path) as peer:
        ours.device.track([peer.user_id])
        assert await ours.device.refresh_devices() == {peer.user_id}
        devices = ours.device.devices(peer.user_id)
        assert list(devices) == [peer.device_id]
        assert (
            devices[peer.device_id]["keys"][f"ed25519:{peer.device_id}"]
            == peer.olm.account.identity_keys["ed25519"]
        )
        assert await ours.device.refresh_devices() == set()  # up to date
        ours.device.devices_changed([peer.user_id], [])
        assert await ours.device.refresh_devices() == {peer.user_id}
        ours.device.devices_changed([], [peer.user_id])
        assert ours.device.devices(peer.user_id) == {}
        assert peer.user_id not in ours_store.tracked_users()


async def test_a_device_whose_keys_do_not_check_out_is_left_out(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    ours = await our_device(synapse, ours_store)
    me = ours.device
    good = {"user_id": "@a:x", "device_id": "D"}
    # Keys signed by nobody, or listed under another device's name.
    for bad in (
        {**good, "keys": {"ed25519:D": me.ed25519, "curve25519:D": me.curve25519}},
        me._account().device_keys("@a:x", "OTHER"),
    ):
        with pytest.raises(DeviceKeysError, match=r"signature|another user or device"):
            checked_device_keys("@a:x", "D", bad)
    assert (
        checked_device_keys("@a:x", "D", me._account().device_keys("@a:x", "D"))[
            "device_id"
        ]
        == "D"
    )


# ---- Olm with matrix-nio ------------------------------------------------------------


async def test_a_room_key_from_nio_decrypts_its_megolm_event(
    synapse: Synapse,
    ours_store: KeyStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="matridge")
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    async with nio_user(synapse, tmp_path) as peer:
        room = encrypted_room(ours, peer)
        await nio_sync(peer)
        sent = await peer.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "over megolm"},
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, nio.RoomSendResponse), sent
        events = ours.to_device()
        assert all(e["type"] == "m.room.encrypted" for e in events)
        assert "over megolm" not in json.dumps(events)
        await ours.device.track_senders(events)
        result = ours.device.process_to_device(events)
        assert result.refused == []
        ((room_id, sender_key, session_id),) = result.room_keys
        assert room_id == room
        assert sender_key == peer.olm.account.identity_keys["curve25519"]

        event = ours.raw.request("GET", f"/rooms/{room}/event/{sent.event_id}")
        assert event["content"]["session_id"] == session_id
        record = ours_store.inbound_group_session(room, sender_key, session_id)
        assert record is not None
        assert record.sender_ed25519 == peer.olm.account.identity_keys["ed25519"]
        assert not record.imported
        plain = json.loads(
            record.session.decrypt(event["content"]["ciphertext"]).plaintext
        )
        assert plain["content"]["body"] == "over megolm"
        assert plain["room_id"] == room

        # Nothing secret in our log lines: no key, no plaintext.
        logged = "\n".join(
            r.getMessage() for r in caplog.records if r.name.startswith("matridge")
        )
        exported = record.session.export_at(0)
        assert exported is not None
        for secret in (exported, "over megolm", ours.device.curve25519):
            assert secret not in logged


async def test_a_batch_rolled_back_with_the_callers_token_comes_again_intact(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    async with nio_user(synapse, tmp_path) as peer:
        room = encrypted_room(ours, peer)
        await nio_sync(peer)
        await peer.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "kept"},
            ignore_unverified_devices=True,
        )
        events = ours.to_device()
        await ours.device.track_senders(events)
        # The sync loop's commit fails after the batch was processed: the
        # keys and the token go together, so the batch is not lost.
        with pytest.raises(RuntimeError), ours_store.transaction():
            assert len(ours.device.process_to_device(events).room_keys) == 1
            ours_store.save_sync_token("s1")
            raise RuntimeError("the commit did not happen")
        assert ours_store.sync_token() is None
        peer_curve = peer.olm.account.identity_keys["curve25519"]
        assert ours_store.olm_sessions(peer_curve) == []
        # The same events again (the homeserver still has them) decrypt.
        with ours_store.transaction():
            result = ours.device.process_to_device(events)
            ours_store.save_sync_token("s1")
        assert result.refused == []
        ((room_id, sender_key, session_id),) = result.room_keys
        assert ours_store.inbound_group_session(room_id, sender_key, session_id)
        assert ours_store.sync_token() == "s1"


async def test_our_olm_message_is_decrypted_by_nio(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    async with nio_user(synapse, tmp_path) as peer:
        room = encrypted_room(ours, peer)
        await nio_sync(peer)
        await nio_knows(peer, ours.device.user_id)
        ours.device.track([peer.user_id])
        await ours.device.refresh_devices()

        outbound = MegolmOutbound()
        room_key = {
            "algorithm": MEGOLM,
            "room_id": room,
            "session_id": outbound.session_id,
            "session_key": outbound.session_key,
        }
        to = (peer.user_id, peer.device_id)
        sent = await ours.device.claim_and_encrypt([to], "m.room_key", room_key)
        assert sent == {to}
        got = await nio_sync(peer)
        assert any(isinstance(e, nio.RoomKeyEvent) for e in got.to_device_events)
        assert peer.olm.inbound_group_store.get(
            room, ours.device.curve25519, outbound.session_id
        )

        # A Megolm event of that session, sent by us, is read by nio.
        plaintext = {
            "type": "m.room.message",
            "content": {"msgtype": "m.text", "body": "from the gateway"},
            "room_id": room,
        }
        ours.raw.send_event(
            room,
            "m.room.encrypted",
            {
                "algorithm": MEGOLM,
                "sender_key": ours.device.curve25519,
                "device_id": ours.device.device_id,
                "session_id": outbound.session_id,
                "ciphertext": outbound.encrypt(canonical_json(plaintext)),
            },
        )
        got = await nio_sync(peer)
        texts = [
            e.body
            for e in got.rooms.join[room].timeline.events
            if isinstance(e, nio.RoomMessageText)
        ]
        assert texts == ["from the gateway"]

        # The second message goes over the same session: no key claimed.
        peer_curve = peer.olm.account.identity_keys["curve25519"]
        assert len(ours_store.olm_sessions(peer_curve)) == 1
        await ours.device.claim_and_encrypt([to], "m.dummy", {})
        got = await nio_sync(peer)
        assert any(isinstance(e, nio.DummyEvent) for e in got.to_device_events)
        assert len(ours_store.olm_sessions(peer_curve)) == 1


async def test_tampered_and_misaddressed_payloads_are_refused_and_the_rest_kept(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    async with nio_user(synapse, tmp_path) as peer:
        room = encrypted_room(ours, peer)
        await nio_sync(peer)
        # A first room key sets up nio's Olm session with our device.
        await peer.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "first"},
            ignore_unverified_devices=True,
        )
        first = ours.to_device()
        await ours.device.track_senders(first)
        assert len(ours.device.process_to_device(first).room_keys) == 1

        def room_key() -> dict[str, Any]:
            session = MegolmOutbound()
            return {
                "algorithm": MEGOLM,
                "room_id": room,
                "session_id": session.session_id,
                "session_key": session.session_key,
            }

        me, dev = ours.device.user_id, ours.device.device_id
        raw_peer = peer_raw(ours, peer)
        tampered_key = room_key()
        wrong_keys = [room_key() for _ in range(4)]
        tampered = nio_olm_to(peer, ours, "m.room_key", tampered_key)
        (cipher,) = tampered["ciphertext"].values()
        body = cipher["body"]
        at = len(body) - 5  # inside the message's MAC
        cipher["body"] = body[:at] + ("A" if body[at] != "A" else "B") + body[at + 1 :]
        wrong_user = nio_olm_to(
            peer, ours, "m.room_key", wrong_keys[0], recipient="@someone:else"
        )
        wrong_device = nio_olm_to(
            peer,
            ours,
            "m.room_key",
            wrong_keys[1],
            recipient_keys={"ed25519": peer.olm.account.identity_keys["ed25519"]},
        )
        wrong_sender = nio_olm_to(
            peer, ours, "m.room_key", wrong_keys[2], sender=ours.device.user_id
        )
        wrong_signing_key = nio_olm_to(
            peer,
            ours,
            "m.room_key",
            wrong_keys[3],
            keys={"ed25519": ours.device.ed25519},
        )
        # A room key whose session_id is not its key's.
        mislabelled_key = {**room_key(), "session_id": room_key()["session_id"]}
        mislabelled = nio_olm_to(peer, ours, "m.room_key", mislabelled_key)
        good_key = room_key()
        good = nio_olm_to(peer, ours, "m.room_key", good_key)
        sent = (
            tampered,
            wrong_user,
            wrong_device,
            wrong_sender,
            wrong_signing_key,
            mislabelled,
        )
        for content in (*sent, good):
            send_to_device(raw_peer, me, dev, "m.room.encrypted", content)
        # A room key in the clear is never accepted.
        send_to_device(raw_peer, me, dev, "m.room_key", room_key())
        events = ours.to_device(at_least=8)
        assert len(events) == 8

        result = ours.device.process_to_device(events)
        assert [k[2] for k in result.room_keys] == [good_key["session_id"]]
        assert len(result.refused) == 7
        for reason in (
            "no session decrypts",
            "addressed to another user",
            "addressed to another device",
            "names another sender",
            "Ed25519 key is not the sending device's",
            "unencrypted m.room_key",
            "session_id is not its key's",
        ):
            assert any(reason in r for r in result.refused), reason
        peer_curve = peer.olm.account.identity_keys["curve25519"]
        assert result.wedged == {(peer.user_id, peer_curve)}
        for refused_key in (tampered_key, *wrong_keys, mislabelled_key):
            assert (
                ours_store.inbound_group_session(
                    room, peer_curve, refused_key["session_id"]
                )
                is None
            )

        # The wedged device gets an m.dummy on a new session, once.
        assert await ours.device.unwedge(result.wedged) == {
            (peer.user_id, peer.device_id)
        }
        assert await ours.device.unwedge(result.wedged) == set()
        got = await nio_sync(peer)
        assert any(isinstance(e, nio.DummyEvent) for e in got.to_device_events)


async def test_a_forwarded_key_nobody_asked_for_is_ignored(
    synapse: Synapse, ours_store: KeyStore, tmp_path: Path
) -> None:
    ours = await our_device(synapse, ours_store)
    await ours.device.upload_keys()
    async with nio_user(synapse, tmp_path) as peer:
        room = encrypted_room(ours, peer)
        await nio_sync(peer)
        await peer.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "first"},
            ignore_unverified_devices=True,
        )
        first = ours.to_device()
        await ours.device.track_senders(first)
        ours.device.process_to_device(first)

        session = MegolmOutbound()
        inbound = MegolmInbound.from_session_key(session.session_key)
        forwarded = {
            "algorithm": MEGOLM,
            "room_id": room,
            "sender_key": "someone's curve25519 key",
            "session_id": session.session_id,
            "session_key": inbound.export_at(0),
            "sender_claimed_ed25519_key": "someone's ed25519 key",
            "forwarding_curve25519_key_chain": [],
        }
        raw_peer = peer_raw(ours, peer)
        me, dev = ours.device.user_id, ours.device.device_id
        for _ in range(2):
            content = nio_olm_to(peer, ours, "m.forwarded_room_key", forwarded)
            send_to_device(raw_peer, me, dev, "m.room.encrypted", content)
        one, two = ours.to_device(at_least=2)

        result = ours.device.process_to_device([one])
        assert result.room_keys == []
        assert result.refused == ["a forwarded room key nobody asked for"]
        assert (
            ours_store.inbound_group_session(
                room, forwarded["sender_key"], session.session_id
            )
            is None
        )

        # A device that asked for it (part 2's key requests) accepts it.
        offers: list[ForwardedRoomKey] = []
        asking = Device(
            ours.client,
            ours_store,
            me,
            dev,
            accept_forwarded=lambda offer: offers.append(offer) is None,
        )
        result = asking.process_to_device([two])
        assert result.refused == []
        assert offers[0].session_id == session.session_id
        assert offers[0].from_user == peer.user_id
        record = ours_store.inbound_group_session(
            room, forwarded["sender_key"], session.session_id
        )
        assert record is not None and record.imported


async def test_withheld_notices_are_remembered_per_session(
    synapse: Synapse, ours_store: KeyStore
) -> None:
    ours = await our_device(synapse, ours_store)
    friend = new_matrix_user(synapse, "friend")
    me, dev = ours.device.user_id, ours.device.device_id
    notice = {
        "algorithm": MEGOLM,
        "room_id": "!r:x",
        "session_id": "S1",
        "sender_key": "K1",
        "code": "m.unverified",
        "reason": "Device not verified",
    }
    send_to_device(friend, me, dev, "m.room_key.withheld", notice)
    result = ours.device.process_to_device(ours.to_device())
    assert result.withheld == [("!r:x", "K1", "S1")]
    assert ours.device.withheld("!r:x", "K1", "S1") == (
        "m.unverified",
        "Device not verified",
    )
    assert ours.device.withheld("!r:x", "K1", "S2") is None


async def test_the_device_state_survives_reopening_the_store(
    synapse: Synapse, tmp_path: Path, store_key: bytes
) -> None:
    path = tmp_path / "reopened.sqlite"
    store = KeyStore.open(path, store_key)
    ours = await our_device(synapse, store)
    await ours.device.upload_keys()
    async with nio_user(synapse, tmp_path) as peer:
        room = encrypted_room(ours, peer)
        await nio_sync(peer)
        await peer.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": "before"},
            ignore_unverified_devices=True,
        )
        events = ours.to_device()
        await ours.device.track_senders(events)
        ((_, sender_key, session_id),) = ours.device.process_to_device(events).room_keys
        identity = (ours.device.curve25519, ours.device.ed25519)
        store.close()

        store = KeyStore.open(path, store_key)
        try:
            again = Device(
                ours.client, store, ours.device.user_id, ours.device.device_id
            )
            assert (again.curve25519, again.ed25519) == identity
            assert peer.device_id in again.devices(peer.user_id)
            assert store.inbound_group_session(room, sender_key, session_id)
            # nio's Olm session with us goes on: its next message decrypts
            # with the session kept in the store, no new one-time key.
            content = nio_olm_to(peer, ours, "m.dummy", {})
            send_to_device(
                peer_raw(ours, peer),
                again.user_id,
                again.device_id,
                "m.room.encrypted",
                content,
            )
            result = again.process_to_device(ours.to_device())
            assert result.refused == [] and result.wedged == set()
            assert len(store.olm_sessions(sender_key)) == 1
            # Nothing new to upload: the device keys went up before.
            counts = await again.upload_keys()
            assert counts["signed_curve25519"] == again.one_time_key_target
        finally:
            store.close()
