"""The server-side key backup (matridge/crypto/backup.py, installed by
matridge/key_recovery.py) against the real Synapse, with the backup made
and read as Element does (tests/harness/backup_peer.py): history only the
backup can decrypt shows readable at once, the sessions the gateway gets
go up to the backup, and a backup its user did not sign is not used."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import nio
import pytest

from matridge.crypto.backup import RECHECK_S, KeyBackup
from matridge.crypto.primitives import (
    BackupKey,
    DecryptionError,
    KeyFormatError,
    MegolmInbound,
    MegolmOutbound,
    SigningKey,
    backup_encrypt,
    random_bytes,
)
from matridge.crypto.store import InboundGroupRecord
from tests.e2ee_account import (
    MEGOLM,
    Account,
    element_user,
    encrypted_room,
    send_megolm,
)
from tests.harness import backup_peer
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse
from tests.test_crypto_device import nio_sync, nio_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Another device's keys, as the sender of the test's Megolm sessions.
SENDER_KEY = "c2VuZGVyIGN1cnZlMjU1MTkga2V5IG9mIHRoZSB0ZXN0cw"
SENDER_ED25519 = "c2VuZGVyIGVkMjU1MTkga2V5IG9mIHRoZSB0ZXN0cyEh"


# The Curve25519 key of a device that forwarded a session (any base64 will do).
FORWARDER_KEY = "Zm9yd2FyZGVyIGN1cnZlMjU1MTkga2V5IG9mIHRlc3Rz"


def back_up(account: Account, version: str, room: str, session: MegolmInbound) -> None:
    exported = session.export_at(session.first_known_index)
    assert exported is not None
    backup_peer.put_session(
        account.raw,
        version,
        account.backup_key,
        room,
        SENDER_KEY,
        session.session_id,
        exported,
        session.first_known_index,
        SENDER_ED25519,
        [FORWARDER_KEY],
    )


async def test_history_only_the_backup_holds_is_readable_at_once(
    synapse: Synapse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="matridge")
    async with element_user(synapse, tmp_path) as me:
        version = backup_peer.create_version(me.raw, me.backup_key, me.identity.master)
        room = encrypted_room(me)
        session = MegolmOutbound()
        inbound = MegolmInbound.from_session_key(session.session_key)
        first = send_megolm(me.raw, room, session, SENDER_KEY, "only the backup knows")
        second = send_megolm(me.raw, room, session, SENDER_KEY, "and this too")
        back_up(me, version, room, inbound)
        events = [await me.client.get_event(room, e) for e in (first, second)]
        assert all(e.encrypted for e in events)

        shown = await me.encryption.readable_now(room, events)

        assert [e.body for e in shown] == ["only the backup knows", "and this too"]
        assert not any(e.encrypted for e in shown)
        record = me.encryption.store.inbound_group_session(
            room, SENDER_KEY, session.session_id
        )
        assert record is not None and record.imported
        assert record.sender_ed25519 == SENDER_ED25519
        assert record.forwarding_chain == (FORWARDER_KEY,)
        status = await me.recovery.backup.status()
        assert status.usable and status.version == version
        # A session the backup lacks stays a placeholder.
        other = MegolmOutbound()
        missing = send_megolm(me.raw, room, other, SENDER_KEY, "nowhere")
        (still,) = await me.encryption.readable_now(
            room, [await me.client.get_event(room, missing)]
        )
        assert still.encrypted
        logged = "\n".join(r.getMessage() for r in caplog.records)
        for secret in (inbound.export_at(0) or "?", "only the backup knows"):
            assert secret not in logged


async def test_a_session_from_the_backup_that_is_not_the_one_asked_for_is_refused(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        version = backup_peer.create_version(me.raw, me.backup_key, me.identity.master)
        room = encrypted_room(me)
        session, decoy = MegolmOutbound(), MegolmOutbound()
        event_id = send_megolm(me.raw, room, session, SENDER_KEY, "the real one")
        # The backup's entry for the session holds another session's key.
        exported = MegolmInbound.from_session_key(decoy.session_key).export_at(0)
        assert exported is not None
        backup_peer.put_session(
            me.raw,
            version,
            me.backup_key,
            room,
            SENDER_KEY,
            session.session_id,
            exported,
            0,
            SENDER_ED25519,
        )
        event = await me.client.get_event(room, event_id)
        (shown,) = await me.encryption.readable_now(room, [event])
        assert shown.encrypted
        assert (
            me.encryption.store.inbound_group_session(
                room, SENDER_KEY, session.session_id
            )
            is None
        )


async def test_sessions_the_gateway_gets_are_uploaded_to_the_backup(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        version = backup_peer.create_version(me.raw, me.backup_key, me.identity.master)
        async with nio_user(synapse, tmp_path) as friend:
            room = me.raw.create_room(name="shared", invite=[friend.user_id])
            me.raw.send_state(room, "m.room.encryption", {"algorithm": MEGOLM})
            friend_raw = MatrixUser(
                synapse.base_url, friend.access_token, friend.user_id
            )
            friend_raw.join(room)
            await nio_sync(friend)
            sent = await friend.room_send(
                room,
                "m.room.message",
                {"msgtype": "m.text", "body": "to be backed up"},
                ignore_unverified_devices=True,
            )
            assert isinstance(sent, nio.RoomSendResponse), sent
            event = me.raw.request("GET", f"/rooms/{room}/event/{sent.event_id}")
            session_id = event["content"]["session_id"]
            store = me.encryption.store
            friend_key = friend.olm.account.identity_keys["curve25519"]
            await me.sync_until(
                lambda: (
                    store.inbound_group_session(room, friend_key, session_id)
                    is not None
                ),
                "the friend's room key",
            )
            # Our own session, made by sending: its copy goes up too.
            mine = MegolmOutbound()
            ours = InboundGroupRecord(
                room,
                me.device.curve25519,
                MegolmInbound.from_session_key(mine.session_key),
                me.device.ed25519,
                False,
            )
            # A session another device forwarded: its chain goes up with it.
            forwarded = MegolmInbound.from_session_key(MegolmOutbound().session_key)
            with store.transaction():
                store.save_inbound_group_session(ours)
                store.save_inbound_group_session(
                    InboundGroupRecord(
                        room,
                        SENDER_KEY,
                        forwarded,
                        SENDER_ED25519,
                        True,
                        (FORWARDER_KEY,),
                    )
                )

            await me.recovery.backup.upload_pending()

            held = backup_peer.all_sessions(me.raw, version)
            assert held == {
                room: sorted([session_id, mine.session_id, forwarded.session_id])
            }
            found = backup_peer.read_session(
                me.raw, version, me.backup_key, room, session_id
            )
            assert found is not None
            data, plain = found
            assert data["first_message_index"] == 0
            assert data["is_verified"] is False
            assert plain["algorithm"] == MEGOLM
            assert plain["sender_key"] == friend_key
            assert plain["sender_claimed_keys"] == {
                "ed25519": friend.olm.account.identity_keys["ed25519"]
            }
            # What Element restores from it reads the friend's message.
            restored = MegolmInbound.from_export(plain["session_key"])
            text = json.loads(
                restored.decrypt(event["content"]["ciphertext"]).plaintext
            )
            assert text["content"]["body"] == "to be backed up"
            own = backup_peer.read_session(
                me.raw, version, me.backup_key, room, mine.session_id
            )
            assert own is not None and own[0]["is_verified"] is True
            assert own[0]["forwarded_count"] == 0
            assert own[1]["forwarding_curve25519_key_chain"] == []
            passed_on = backup_peer.read_session(
                me.raw, version, me.backup_key, room, forwarded.session_id
            )
            assert passed_on is not None
            assert passed_on[0]["forwarded_count"] == 1
            assert passed_on[1]["forwarding_curve25519_key_chain"] == [FORWARDER_KEY]
            # Nothing is uploaded twice.
            assert await me.recovery.backup.upload_pending() == 0


async def test_a_backup_signed_by_one_of_the_users_verified_devices_is_used(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        # The gateway's device (verified with the recovery key) signs it,
        # as Element's device signs the backups it makes.
        account = me.device._account()
        version = backup_peer.create_version(
            me.raw, me.backup_key, account, me.device.device_id
        )
        status = await me.recovery.backup.check()
        assert status.usable, status.sentence
        assert status.version == version
        assert me.device.device_id in status.sentence


@pytest.mark.parametrize("signed_by", ["nobody", "a stranger's key", "a wrong key"])
async def test_a_backup_its_user_did_not_sign_is_not_used(
    synapse: Synapse,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    signed_by: str,
) -> None:
    caplog.set_level(logging.INFO, logger="matridge")
    async with element_user(synapse, tmp_path) as me:
        stranger = SigningKey.generate()
        if signed_by == "nobody":
            version = backup_peer.create_version(me.raw, me.backup_key, None)
        elif signed_by == "a stranger's key":
            version = backup_peer.create_version(me.raw, me.backup_key, stranger)
        else:
            # Claimed to be the master key's signature, made by another key.
            version = backup_peer.create_version(
                me.raw, me.backup_key, stranger, me.identity.master.public_key
            )
        room = encrypted_room(me)
        session = MegolmOutbound()
        inbound = MegolmInbound.from_session_key(session.session_key)
        event_id = send_megolm(
            me.raw, room, session, SENDER_KEY, "not from that backup"
        )
        back_up(me, version, room, inbound)
        mine = InboundGroupRecord(
            room,
            me.device.curve25519,
            MegolmInbound.from_session_key(MegolmOutbound().session_key),
            me.device.ed25519,
            False,
        )
        with me.encryption.store.transaction():
            me.encryption.store.save_inbound_group_session(mine)

        status = await me.recovery.backup.check()

        assert not status.usable
        assert status.version == version
        assert "not signed by your cross-signing identity" in status.sentence
        assert any(status.sentence in r.getMessage() for r in caplog.records)
        # Nothing is read from it...
        event = await me.client.get_event(room, event_id)
        (shown,) = await me.encryption.readable_now(room, [event])
        assert shown.encrypted
        # ...nor written to it.
        assert await me.recovery.backup.upload_pending() == 0
        assert backup_peer.all_sessions(me.raw, version) == {room: [session.session_id]}


async def test_a_backup_of_another_key_is_not_used(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        backup_peer.create_version(me.raw, random_bytes(32), me.identity.master)
        status = await me.recovery.backup.check()
        assert not status.usable
        assert "not the one your backup key belongs to" in status.sentence


async def test_without_the_backup_key_the_user_is_told_to_verify(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path, verify=False) as me:
        backup_peer.create_version(me.raw, me.backup_key, me.identity.master)
        status = await me.recovery.backup.check()
        assert not status.usable
        assert "'verify'" in status.sentence
        # The recovery key brings the backup key: the backup is used then.
        await me.encryption.verify(me.storage.recovery_key)
        assert (await me.recovery.backup.status()).usable


async def test_a_backup_made_later_is_found_by_a_later_check(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        now = [0.0]
        backup = KeyBackup(me.client, me.device, clock=lambda: now[0])
        assert not (await backup.status()).usable  # none yet
        version = backup_peer.create_version(me.raw, me.backup_key, me.identity.master)
        assert not (await backup.status()).usable  # not looked at again yet
        now[0] += RECHECK_S
        status = await backup.status()
        assert status.usable and status.version == version


async def test_a_session_stored_again_goes_up_again(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        version = backup_peer.create_version(me.raw, me.backup_key, me.identity.master)
        room = encrypted_room(me)
        session = MegolmOutbound()
        from_zero = MegolmInbound.from_session_key(session.session_key)
        session.encrypt(b"{}")
        later = MegolmInbound.from_session_key(session.session_key)
        store = me.encryption.store
        with store.transaction():
            store.save_inbound_group_session(
                InboundGroupRecord(room, SENDER_KEY, later, SENDER_ED25519, True)
            )
        await me.recovery.backup.upload_pending()
        found = backup_peer.read_session(
            me.raw, version, me.backup_key, room, session.session_id
        )
        assert found is not None and found[0]["first_message_index"] == 1
        # A copy from index 0 came in a batch: the backup gets it.
        with store.transaction():
            store.save_inbound_group_session(
                InboundGroupRecord(room, SENDER_KEY, from_zero, SENDER_ED25519, False)
            )
        me.recovery.backup.arrived([(room, SENDER_KEY, session.session_id)])
        await me.recovery.backup.upload_pending()
        found = backup_peer.read_session(
            me.raw, version, me.backup_key, room, session.session_id
        )
        assert found is not None and found[0]["first_message_index"] == 0


async def test_backup_session_data_opens_only_with_its_key() -> None:
    key = BackupKey(random_bytes(32))
    data = backup_encrypt(key.public_key, b'{"session_key": "..."}')
    assert sorted(data) == ["ciphertext", "ephemeral", "mac"]
    assert key.decrypt(data) == b'{"session_key": "..."}'
    # Each encryption has its own ephemeral key.
    assert backup_encrypt(key.public_key, b"x")["ephemeral"] != data["ephemeral"]
    with pytest.raises(DecryptionError):
        BackupKey(random_bytes(32)).decrypt(data)
    with pytest.raises(KeyFormatError):
        key.decrypt({"ciphertext": data["ciphertext"]})
    with pytest.raises(KeyFormatError):
        BackupKey(random_bytes(31))
    assert repr(key) == f"<BackupKey {key.public_key}>"


async def test_the_uploader_ends_when_the_session_closes(
    synapse: Synapse, tmp_path: Path
) -> None:
    async with element_user(synapse, tmp_path) as me:
        (uploader,) = [t for t in me.tasks if t.get_name() == "key backup upload"]

        def waiting_for_work() -> bool:
            awaiting = getattr(uploader.get_coro(), "cr_await", None)
            return getattr(awaiting, "__qualname__", "") == "Event.wait"

        for _ in range(300):  # its first upload done, it waits for a nudge
            if waiting_for_work():
                break
            await asyncio.sleep(0.1)
        assert waiting_for_work()
        me.encryption.close()
        # At logout, not at its next turn ten minutes later.
        await asyncio.wait_for(uploader, 30)
