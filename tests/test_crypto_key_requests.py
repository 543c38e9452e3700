"""Keys from the user's other devices (matridge/crypto/key_requests.py,
installed by matridge/key_recovery.py) against the real Synapse: a missing
session is asked of the user's cross-signed devices and the placeholder
becomes the message when one answers (matrix-nio playing that device);
forwarded keys nobody asked for, or from a device the user has not
verified, are ignored; and the gateway answers only the user's own
verified devices."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nio
import pytest

from matridge.crypto.key_requests import ASK_AGAIN_S, KeyRequests
from matridge.crypto.primitives import MegolmInbound, MegolmOutbound
from matridge.crypto.store import InboundGroupRecord
from tests.conftest import new_matrix_user, unique
from tests.e2ee_account import (
    MEGOLM,
    Account,
    cross_sign,
    element_user,
    encrypted_room,
    other_device,
    send_megolm,
)
from tests.harness.cross_signing_peer import Identity, publish
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.test_crypto_device import nio_knows, nio_olm_to, nio_user, send_to_device

pytestmark = pytest.mark.asyncio(loop_scope="session")

REQUEST = "m.room_key_request"


@asynccontextmanager
async def nio_device_of(
    me: Account, tmp_path: Path
) -> AsyncIterator[tuple[nio.AsyncClient, MatrixUser]]:
    """Another login of the user on matrix-nio (as Element would be), its
    keys uploaded; with the same login driven raw."""
    store_dir = tmp_path / unique("nio")
    store_dir.mkdir()
    client = nio.AsyncClient(
        me.synapse.base_url,
        me.user_id,
        store_path=str(store_dir),
        config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    try:
        resp = await client.login("pw", device_name="element")
        assert isinstance(resp, nio.LoginResponse), resp
        assert isinstance(await client.keys_upload(), nio.KeysUploadResponse)
        yield client, MatrixUser(me.synapse.base_url, client.access_token, me.user_id)
    finally:
        await client.close()


# The Curve25519 key of a device that once forwarded a session to the gateway.
FIRST_FORWARDER = "Zmlyc3QgZm9yd2FyZGVyIGN1cnZlMjU1MTkga2V5"


def new_session() -> tuple[MegolmOutbound, MegolmInbound]:
    """A sender's session and its key from index 0 (taken before sending)."""
    session = MegolmOutbound()
    return session, MegolmInbound.from_session_key(session.session_key)


def forwarded_content(
    room: str, sender_key: str, session: MegolmInbound
) -> dict[str, Any]:
    exported = session.export_at(0)
    assert exported is not None
    return {
        "algorithm": MEGOLM,
        "room_id": room,
        "sender_key": sender_key,
        "session_id": session.session_id,
        "session_key": exported,
        "sender_claimed_ed25519_key": "c2VuZGVyIGVkMjU1MTkga2V5IG9mIHRoZSB0ZXN0cyEh",
        "forwarding_curve25519_key_chain": [],
    }


async def forward_over_olm(
    peer: nio.AsyncClient, peer_raw: MatrixUser, me: Account, content: dict[str, Any]
) -> None:
    """nio's device sends ``content`` as an m.forwarded_room_key over Olm
    to the gateway's device."""
    await nio_knows(peer, me.user_id)
    claimed = await peer.keys_claim({me.user_id: [me.device.device_id]})
    assert isinstance(claimed, nio.KeysClaimResponse), claimed
    encrypted = nio_olm_to(peer, me, "m.forwarded_room_key", content)  # type: ignore[arg-type]
    send_to_device(
        peer_raw, me.user_id, me.device.device_id, "m.room.encrypted", encrypted
    )


class Inbox:
    """The to-device messages of one login, fetched with a raw /sync."""

    def __init__(self, raw: MatrixUser) -> None:
        self.raw = raw
        self.since = raw.sync()["next_batch"]

    def key_requests(self, wait_ms: int = 0) -> list[dict[str, Any]]:
        res = self.raw.sync(self.since, wait_ms)
        self.since = res["next_batch"]
        events = res.get("to_device", {}).get("events", [])
        return [e["content"] for e in events if e["type"] == REQUEST]


async def test_a_key_request_answered_by_the_users_other_device_shows_the_message(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        async with nio_device_of(me, tmp_path) as (peer, peer_raw):
            cross_sign(me, peer.device_id)
            inbox = Inbox(peer_raw)
            peer_key = peer.olm.account.identity_keys["curve25519"]
            room = encrypted_room(me)
            session, inbound = new_session()
            event_id = send_megolm(me.raw, room, session, peer_key, "sent from Element")
            event = await me.client.get_event(room, event_id)

            shown = me.encryption.readable_one(room, event)
            await me.settle()

            assert shown.encrypted  # a placeholder until the key comes
            (request,) = inbox.key_requests()
            assert request["action"] == "request"
            assert request["requesting_device_id"] == me.device.device_id
            assert request["body"] == {
                "algorithm": MEGOLM,
                "room_id": room,
                "sender_key": peer_key,
                "session_id": session.session_id,
            }
            # Asked once: looking again does not ask again.
            await me.encryption.readable_now(room, [event])
            assert inbox.key_requests() == []

            await forward_over_olm(
                peer, peer_raw, me, forwarded_content(room, peer_key, inbound)
            )
            store = me.encryption.store
            late = await me.sync_until(
                lambda: (
                    store.inbound_group_session(room, peer_key, session.session_id)
                    is not None
                ),
                "the forwarded key",
            )

            assert (room, [event_id]) in late
            corrected = me.encryption.readable_one(room, event)
            assert corrected.body == "sent from Element"
            record = store.inbound_group_session(room, peer_key, session.session_id)
            assert record is not None and record.imported
            # The device that forwarded it ends the forwarding chain.
            assert record.forwarding_chain == (peer_key,)
            (cancel,) = inbox.key_requests(wait_ms=3000)
            assert cancel == {
                "action": "request_cancellation",
                "request_id": request["request_id"],
                "requesting_device_id": me.device.device_id,
            }


async def test_forwarded_keys_nobody_asked_for_or_from_unverified_devices_are_ignored(
    synapse: Synapse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")

    def logged(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    async with element_user(synapse, tmp_path) as me:
        async with (
            nio_device_of(me, tmp_path) as (verified, verified_raw),
            nio_device_of(me, tmp_path) as (unverified, unverified_raw),
        ):
            cross_sign(me, verified.device_id)
            verified_inbox, unverified_inbox = (
                Inbox(verified_raw),
                Inbox(unverified_raw),
            )
            room = encrypted_room(me)
            store = me.encryption.store
            # A verified device of the user's, but nobody asked.
            unasked, unasked_inbound = new_session()
            unasked_key = verified.olm.account.identity_keys["curve25519"]
            await forward_over_olm(
                verified,
                verified_raw,
                me,
                forwarded_content(room, unasked_key, unasked_inbound),
            )
            await me.sync_until(
                lambda: logged("a forwarded room key nobody asked for") >= 1,
                "the unasked key refused",
            )
            assert (
                store.inbound_group_session(room, unasked_key, unasked.session_id)
                is None
            )

            # Asked for, but answered by a device the user has not verified.
            asked, asked_inbound = new_session()
            event_id = send_megolm(me.raw, room, asked, unasked_key, "secret")
            event = await me.client.get_event(room, event_id)
            assert me.encryption.readable_one(room, event).encrypted
            await me.settle()
            assert len(verified_inbox.key_requests()) == 1
            # Only verified devices are asked.
            assert unverified_inbox.key_requests() == []
            await forward_over_olm(
                unverified,
                unverified_raw,
                me,
                forwarded_content(room, unasked_key, asked_inbound),
            )
            await me.sync_until(
                lambda: logged("a forwarded room key nobody asked for") >= 2,
                "the unverified device's key refused",
            )
            assert logged("from an unverified device of the user: ignored") == 1
            assert (
                store.inbound_group_session(room, unasked_key, asked.session_id) is None
            )
            assert me.encryption.readable_one(room, event).encrypted


async def test_only_the_users_verified_devices_get_their_key_requests_answered(
    synapse: Synapse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")

    def logged(text: str) -> bool:
        return any(text in r.getMessage() for r in caplog.records)

    async with element_user(synapse, tmp_path) as me:
        verified = await other_device(me, tmp_path, accept_all_forwarded=True)
        cross_sign(me, verified.device.device_id)
        unverified = await other_device(me, tmp_path)
        friend = new_matrix_user(synapse, "friend")
        room = encrypted_room(me)
        session, inbound = new_session()
        ciphertext = session.encrypt(
            json.dumps({"type": "m.room.message", "room_id": room}).encode()
        )
        store = me.encryption.store
        sender_key = "c2VuZGVyIGN1cnZlMjU1MTkga2V5IG9mIHRoZSB0ZXN0cw"
        with store.transaction():
            store.save_inbound_group_session(
                InboundGroupRecord(
                    room,
                    sender_key,
                    inbound,
                    "c2VuZGVyIGVkMjU1MTkga2V5IG9mIHRoZSB0ZXN0cyEh",
                    True,
                    (FIRST_FORWARDER,),  # it came to us forwarded too
                )
            )

        def request(sender: MatrixUser, device_id: str) -> None:
            send_to_device(
                sender,
                me.user_id,
                me.device.device_id,
                REQUEST,
                {
                    "action": "request",
                    "body": {
                        "algorithm": MEGOLM,
                        "room_id": room,
                        "sender_key": sender_key,
                        "session_id": session.session_id,
                    },
                    "request_id": unique("req"),
                    "requesting_device_id": device_id,
                },
            )

        # Another user, even naming the user's verified device; and the
        # user's own device that they have not verified.
        request(friend, verified.device.device_id)
        request(unverified.raw, unverified.device.device_id)
        await me.sync_until(
            lambda: (
                logged("another user: not answered")
                and logged("a device the user has not verified: not answered")
            ),
            "both requests refused",
        )
        assert verified.to_device() == []
        assert unverified.to_device() == []

        request(verified.raw, verified.device.device_id)
        await me.sync_until(
            lambda: logged("forwarded to the user's device"), "the request answered"
        )
        events = verified.to_device(wait_ms=3000)
        assert [e["type"] for e in events] == ["m.room.encrypted"]
        await verified.device.track_senders(events)
        result = verified.device.process_to_device(events)
        assert result.refused == []
        assert result.room_keys == [(room, sender_key, session.session_id)]
        got = verified.device.store.inbound_group_session(
            room, sender_key, session.session_id
        )
        assert got is not None
        assert got.sender_ed25519 == "c2VuZGVyIGVkMjU1MTkga2V5IG9mIHRoZSB0ZXN0cyEh"
        # Who forwarded it to us stays in the chain, and we follow.
        assert got.forwarding_chain == (FIRST_FORWARDER, me.device.curve25519)
        plain = json.loads(got.session.decrypt(ciphertext).plaintext)
        assert plain["room_id"] == room
        verified.device.store.close()
        unverified.device.store.close()


async def test_a_request_nobody_answered_is_made_again_a_day_later(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        async with nio_device_of(me, tmp_path) as (peer, peer_raw):
            cross_sign(me, peer.device_id)
            inbox = Inbox(peer_raw)
            now = [1000.0]
            requests = KeyRequests(me.device, wall_clock=lambda: now[0])
            room = encrypted_room(me)
            ids = (room, "c2VuZGVyIGN1cnZlMjU1MTkga2V5IG9mIHRoZSB0ZXN0cw", "sess")

            assert not await requests.find(*ids)
            (first,) = inbox.key_requests()
            now[0] += ASK_AGAIN_S - 1
            assert not await requests.find(*ids)
            assert inbox.key_requests() == []
            now[0] += 1
            assert not await requests.find(*ids)
            (again,) = inbox.key_requests()
            assert again["body"] == first["body"]
            assert again["request_id"] != first["request_id"]


async def test_a_requested_key_forwarded_by_another_user_is_ignored(
    synapse: Synapse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")
    async with element_user(synapse, tmp_path) as me:
        async with (
            nio_device_of(me, tmp_path) as (mine, _),
            nio_user(synapse, tmp_path) as stranger,
        ):
            cross_sign(me, mine.device_id)
            room = encrypted_room(me)
            session, inbound = new_session()
            sender_key = mine.olm.account.identity_keys["curve25519"]
            event_id = send_megolm(me.raw, room, session, sender_key, "secret")
            event = await me.client.get_event(room, event_id)
            assert me.encryption.readable_one(room, event).encrypted
            await me.settle()  # asked the user's device

            stranger_raw = MatrixUser(
                synapse.base_url, stranger.access_token, stranger.user_id
            )
            await forward_over_olm(
                stranger, stranger_raw, me, forwarded_content(room, sender_key, inbound)
            )
            await me.sync_until(
                lambda: any(
                    "a forwarded room key nobody asked for" in r.getMessage()
                    for r in caplog.records
                ),
                "the stranger's key refused",
            )
            assert any(
                f"a forwarded key from {stranger.user_id}, not the user"
                in r.getMessage()
                for r in caplog.records
            )
            store = me.encryption.store
            assert (
                store.inbound_group_session(room, sender_key, session.session_id)
                is None
            )


async def test_devices_signed_by_another_identity_than_the_users_get_nothing(
    synapse: Synapse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")
    async with element_user(synapse, tmp_path) as me:
        async with nio_device_of(me, tmp_path) as (peer, peer_raw):
            # The homeserver now lists an identity the user's recovery key
            # did not unlock (the gateway kept the real one at 'verify'),
            # and a device signed by it.
            fake = Identity.generate(me.user_id)
            publish(me.raw, fake)
            cross_sign(me, peer.device_id, fake.self_signing)
            inbox = Inbox(peer_raw)
            room = encrypted_room(me)
            ids = (room, "c2VuZGVyIGN1cnZlMjU1MTkga2V5IG9mIHRoZSB0ZXN0cw", "sess")

            assert not await me.recovery.requests.find(*ids)

            assert inbox.key_requests() == []
            assert any(
                "the homeserver lists another master key" in r.getMessage()
                for r in caplog.records
            )
