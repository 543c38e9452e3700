"""Interactive (emoji) verification of the gateway's device with the user's
other device (matridge/crypto/sas.py), and the secrets it then asks for
(matridge/crypto/secret_sharing.py), against the real Synapse.

The other device is tests/harness/sas_peer.py, written from the spec with
its own SAS arithmetic (``cryptography``), so both sides showing the same
emoji and accepting each other's MACs checks the derivation. Our device's
to-device events come from a raw /sync of its access token, handed to the
device and then to the handlers, as the session's Encryption does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from matridge.crypto import cross_signing
from matridge.crypto.cross_signing import (
    MASTER,
    MEGOLM_BACKUP,
    PUBLIC_IDENTITY,
    SELF_SIGNING,
    USER_SIGNING,
    master_key_of,
)
from matridge.crypto.device import Device, ToDeviceMessage
from matridge.crypto.primitives import SigningKey, b64encode, random_bytes
from matridge.crypto.sas import EMOJI, Phase, Verification, Verifications
from matridge.crypto.secret_sharing import SecretRequests
from matridge.crypto.store import KeyStore
from matridge.matrix import MatrixClient
from tests.conftest import unique
from tests.harness.cross_signing_peer import (
    Identity,
    device_signed_by_self_signing_key,
    identity_secrets,
    publish,
)
from tests.harness.matrix_user import MatrixUser
from tests.harness.sas_peer import (
    PeerSas,
    SasPeer,
    b64,
    decimals,
    emoji_indices,
    hkdf,
    x25519_public,
)
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")

V = "m.key.verification."


@dataclass
class Recorder:
    """What the user would be told."""

    requested: list[Verification] = field(default_factory=list)
    shown: list[tuple[list[tuple[str, str]], tuple[int, ...]]] = field(
        default_factory=list
    )
    verified: list[Verification] = field(default_factory=list)
    cancelled: list[tuple[str, bool]] = field(default_factory=list)
    secrets: list[tuple[list[str], Any]] = field(default_factory=list)

    async def on_requested(self, v: Verification) -> None:
        self.requested.append(v)

    async def on_show(
        self, v: Verification, emoji: list[tuple[str, str]], numbers: tuple[int, ...]
    ) -> None:
        self.shown.append((emoji, numbers))

    async def on_verified(self, v: Verification) -> None:
        self.verified.append(v)

    async def on_cancelled(
        self, v: Verification, code: str, reason: str, by_us: bool
    ) -> None:
        self.cancelled.append((code, by_us))

    async def on_secrets(self, kept: list[str], status: Any) -> None:
        self.secrets.append((kept, status))


class _Listener:
    def __init__(self, r: Recorder) -> None:
        self.requested = r.on_requested
        self.show = r.on_show
        self.verified = r.on_verified
        self.cancelled = r.on_cancelled


@dataclass
class Ours:
    device: Device
    client: MatrixClient
    raw: MatrixUser
    told: Recorder
    verifications: Verifications
    secrets: SecretRequests
    since: str | None = None
    refused: list[str] = field(default_factory=list)
    handled: list[ToDeviceMessage] = field(default_factory=list)

    async def pump(self, until: Callable[[], bool], tries: int = 20) -> None:
        """Syncs our device's to-device events and hands them on until
        ``until()`` holds."""
        for _ in range(tries):
            if until():
                return
            res = await asyncio.to_thread(
                self.raw.sync, self.since, 1000 if self.since else 0
            )
            self.since = res["next_batch"]
            events = res.get("to_device", {}).get("events", [])
            if not events:
                continue
            await self.device.track_senders(events)
            result = self.device.process_to_device(events)
            self.refused += result.refused
            for message in result.messages:
                self.handled.append(message)
                if message.type.startswith(V):
                    await self.verifications.handle(message)
                elif message.type == "m.secret.send":
                    await self.secrets.handle(message)
        assert until(), "what was waited for did not happen"


@dataclass
class Account:
    ours: Ours
    peer: SasPeer
    identity: Identity


@pytest_asyncio.fixture(loop_scope="session")
async def account(synapse: Synapse, tmp_path: Path) -> AsyncIterator[Account]:
    """A user with an Element-like identity, a cross-signed other device
    (the peer) and the gateway's device (ours), not signed."""
    name = unique("sas")
    synapse.register_user(name, "pw")
    peer = await asyncio.to_thread(SasPeer.login, synapse.base_url, name, "pw")
    identity = Identity.generate(peer.user_id)
    await asyncio.to_thread(publish, peer.user, identity)
    await asyncio.to_thread(peer.cross_sign_device, identity, peer.device_id)
    store = KeyStore.open(tmp_path / "keys.sqlite", random_bytes(32))
    client = MatrixClient(synapse.base_url)
    login = await client.login_password(name, "pw", "gateway device")
    device = Device(client, store, login.user_id, login.device_id)
    await device.upload_keys()
    raw = MatrixUser(synapse.base_url, login.access_token, login.user_id)
    told = Recorder()
    ours = Ours(
        device,
        client,
        raw,
        told,
        Verifications(device, _Listener(told), timeout=600),
        SecretRequests(client, device, told.on_secrets),
    )
    ours.since = (await asyncio.to_thread(raw.sync))["next_batch"]
    try:
        yield Account(ours, peer, identity)
    finally:
        ours.verifications.close()
        store.close()


async def another_device(a: Account, synapse: Synapse) -> SasPeer:
    """One more login of the user's, beside the peer (not cross-signed)."""
    name = a.peer.user_id.split(":")[0][1:]
    return await asyncio.to_thread(SasPeer.login, synapse.base_url, name, "pw")


def our_expected_keys(a: Account) -> dict[str, str]:
    master = a.identity.master.public_key
    return {
        f"ed25519:{a.ours.device.device_id}": a.ours.device.ed25519,
        f"ed25519:{master}": master,
    }


async def both_show_emoji(a: Account, *, peer_starts: bool) -> tuple[str, Verification]:
    """From the request to both sides showing the SAS; returns the
    transaction and our verification, after checking they agree."""
    ours, peer = a.ours, a.peer
    if peer_starts:
        txn = await asyncio.to_thread(peer.request, ours.device.device_id)
        await ours.pump(lambda: bool(ours.told.requested))
        v = ours.told.requested[-1]
        assert v.txn == txn and v.device_id == peer.device_id
        await ours.verifications.accept(v)
        ready = await asyncio.to_thread(peer.wait_for, V + "ready")
        assert ready["from_device"] == ours.device.device_id
        await asyncio.to_thread(peer.start, txn)
        await ours.pump(lambda: v.phase is Phase.STARTED)
        accept = await asyncio.to_thread(peer.wait_for, V + "accept")
        assert accept["message_authentication_code"] == "hkdf-hmac-sha256.v2"
        assert accept["key_agreement_protocol"] == "curve25519-hkdf-sha256"
        peer.sas[txn].commitment = accept["commitment"]
        await asyncio.to_thread(peer.send_key, txn)
        await ours.pump(lambda: bool(ours.told.shown))
        key = await asyncio.to_thread(peer.wait_for, V + "key")
        peer.their_key(txn, key)  # checks our commitment
    else:
        v = await ours.verifications.request([peer.device_id])
        txn = v.txn
        request = await asyncio.to_thread(peer.wait_for, V + "request")
        assert request["transaction_id"] == txn
        await asyncio.to_thread(peer.ready, request)
        await ours.pump(lambda: v.phase is Phase.STARTED)
        start = await asyncio.to_thread(peer.wait_for, V + "start")
        assert start["from_device"] == ours.device.device_id
        await asyncio.to_thread(peer.accept, start)
        await ours.pump(lambda: v.commitment is not None)
        key = await asyncio.to_thread(peer.wait_for, V + "key")
        peer.their_key(txn, key)
        await asyncio.to_thread(peer.send_key, txn)
        await ours.pump(lambda: bool(ours.told.shown))
    emoji, numbers = ours.told.shown[-1]
    assert emoji == [EMOJI[i] for i in peer.sas[txn].emoji]
    assert numbers == peer.sas[txn].decimals
    assert len(emoji) == 7 and all(1000 <= n <= 9191 for n in numbers)
    return txn, v


async def confirm_both(a: Account, txn: str, v: Verification) -> None:
    """Both users say the emoji match: MACs both ways, done both ways."""
    ours, peer = a.ours, a.peer
    await asyncio.to_thread(peer.send_mac, txn, a.identity.master.public_key)
    await ours.pump(lambda: v.their_mac is not None)
    await ours.verifications.confirm(v, True)
    our_mac = await asyncio.to_thread(peer.wait_for, V + "mac")
    peer.check_mac(txn, our_mac, our_expected_keys(a))
    await asyncio.to_thread(peer.wait_for, V + "done")
    await asyncio.to_thread(peer.done, txn)
    await ours.pump(lambda: bool(ours.told.verified))


# ---- the derivation ------------------------------------------------------------


async def test_the_peers_arithmetic_reproduces_the_published_vectors() -> None:
    """The test peer's X25519 against RFC 7748 section 6.1 (the keys
    libolm's SAS test uses, with its base64 public keys), and its bit
    extraction against the spec's formulas on fixed bytes."""
    alice = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
        )
    )
    bob = X25519PrivateKey.from_private_bytes(
        bytes.fromhex(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
        )
    )
    assert x25519_public(alice) == "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"
    assert x25519_public(bob) == "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08"
    shared = alice.exchange(bob.public_key())
    assert shared.hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )
    # All ones: every emoji 63 (Pin), every number 8191 + 1000.
    assert emoji_indices(b"\xff" * 6) == [63] * 7
    assert decimals(b"\xff" * 5) == (9191, 9191, 9191)
    # 0b000001 000010 000011 ...: emoji 1, 2, 3, 4, 5, 6, 7.
    bits = int("".join(f"{i:06b}" for i in range(1, 8)) + "000000", 2)
    assert emoji_indices(bits.to_bytes(6, "big")) == [1, 2, 3, 4, 5, 6, 7]
    assert len(hkdf(shared, "x", 6)) == 6 and b64(b"\x00") == "AA"
    assert len(EMOJI) == 64 and EMOJI[0] == ("🐶", "Dog") and EMOJI[63] == ("📌", "Pin")


# ---- SAS -----------------------------------------------------------------------


async def test_sas_started_by_the_other_device_and_confirmed(
    account: Account,
) -> None:
    txn, v = await both_show_emoji(account, peer_starts=True)
    await confirm_both(account, txn, v)
    assert v.phase is Phase.DONE
    assert account.ours.told.verified == [v]
    assert account.ours.told.cancelled == []


async def test_sas_started_by_the_gateway_and_confirmed(account: Account) -> None:
    txn, v = await both_show_emoji(account, peer_starts=False)
    await confirm_both(account, txn, v)
    assert v.phase is Phase.DONE
    assert account.ours.told.cancelled == []


async def test_a_start_without_a_request_is_handled_too(account: Account) -> None:
    """The deprecated way some clients still use: no request, no done."""
    ours, peer = account.ours, account.peer
    txn = uuid.uuid4().hex
    peer.sas[txn] = PeerSas(txn, ours.device.device_id)
    await asyncio.to_thread(peer.start, txn)
    await ours.pump(lambda: bool(ours.told.requested))
    v = ours.told.requested[-1]
    assert v.txn == txn and v.phase is Phase.INCOMING
    await ours.verifications.accept(v)
    accept = await asyncio.to_thread(peer.wait_for, V + "accept")
    peer.sas[txn].commitment = accept["commitment"]
    await asyncio.to_thread(peer.send_key, txn)
    await ours.pump(lambda: bool(ours.told.shown))
    key = await asyncio.to_thread(peer.wait_for, V + "key")
    peer.their_key(txn, key)
    assert ours.told.shown[-1][0] == [EMOJI[i] for i in peer.sas[txn].emoji]
    await asyncio.to_thread(peer.send_mac, txn, account.identity.master.public_key)
    await ours.pump(lambda: v.their_mac is not None)
    await ours.verifications.confirm(v, True)
    our_mac = await asyncio.to_thread(peer.wait_for, V + "mac")
    peer.check_mac(txn, our_mac, our_expected_keys(account))
    assert ours.told.verified == [v]


async def test_verification_messages_of_another_user_are_ignored(
    account: Account,
) -> None:
    ours = account.ours
    request = {
        "from_device": "OTHERDEVICE",
        "methods": ["m.sas.v1"],
        "timestamp": int(time.time() * 1000),
        "transaction_id": uuid.uuid4().hex,
    }
    await ours.verifications.handle(
        ToDeviceMessage(
            V + "request", "@mallory:localhost", request, False, "OTHERDEVICE"
        )
    )
    assert ours.told.requested == [] and ours.verifications.current() is None
    # The same from the user's own device is a request.
    own = ToDeviceMessage(
        V + "request", ours.device.user_id, request, False, account.peer.device_id
    )
    await ours.verifications.handle(own)
    assert [v.txn for v in ours.told.requested] == [request["transaction_id"]]


@pytest.mark.parametrize("peer_device", ["0PEER", "zpeer"])
async def test_both_starting_keeps_the_start_of_the_smaller_device_id(
    account: Account, synapse: Synapse, peer_device: str
) -> None:
    """The spec: when both devices send a start, the one from the smaller
    device id counts ("0PEER" sorts before any Synapse device id, "zpeer"
    after)."""
    ours, name = account.ours, account.peer.user_id.split(":")[0][1:]
    peer = await asyncio.to_thread(
        SasPeer.login, synapse.base_url, name, "pw", unique(peer_device)
    )
    await asyncio.to_thread(peer.cross_sign_device, account.identity, peer.device_id)
    account.peer = peer
    v = await ours.verifications.request([peer.device_id])
    request = await asyncio.to_thread(peer.wait_for, V + "request")
    await asyncio.to_thread(peer.ready, request)
    await asyncio.to_thread(peer.start, v.txn)  # crosses ours
    await ours.pump(lambda: v.phase is Phase.STARTED)
    ours_start = await asyncio.to_thread(peer.wait_for, V + "start")
    await ours.pump(lambda: len(ours.handled) >= 2)  # their ready and start
    if peer.device_id < ours.device.device_id:
        # Theirs counts: we accept it, they go on as the starter.
        accept = await asyncio.to_thread(peer.wait_for, V + "accept")
        peer.sas[v.txn].commitment = accept["commitment"]
        await asyncio.to_thread(peer.send_key, v.txn)
        await ours.pump(lambda: bool(ours.told.shown))
        key = await asyncio.to_thread(peer.wait_for, V + "key")
        peer.their_key(v.txn, key)
    else:
        # Ours counts: they accept ours, as the accepter.
        peer.sas[v.txn].we_started = False
        await asyncio.to_thread(peer.accept, ours_start)
        await ours.pump(lambda: v.commitment is not None)
        key = await asyncio.to_thread(peer.wait_for, V + "key")
        peer.their_key(v.txn, key)
        await asyncio.to_thread(peer.send_key, v.txn)
        await ours.pump(lambda: bool(ours.told.shown))
    assert ours.told.shown[-1][0] == [EMOJI[i] for i in peer.sas[v.txn].emoji]
    await confirm_both(account, v.txn, v)
    assert v.phase is Phase.DONE and ours.told.cancelled == []


async def test_a_request_to_several_devices_goes_on_with_the_first_ready(
    account: Account, synapse: Synapse
) -> None:
    ours, peer = account.ours, account.peer
    other = await another_device(account, synapse)
    v = await ours.verifications.request([peer.device_id, other.device_id])
    for device in (peer, other):
        request = await asyncio.to_thread(device.wait_for, V + "request")
        assert request["transaction_id"] == v.txn
    await asyncio.to_thread(other.ready, request)
    await ours.pump(lambda: v.phase is Phase.STARTED)
    assert v.device_id == other.device_id
    start = await asyncio.to_thread(other.wait_for, V + "start")
    assert start["transaction_id"] == v.txn
    cancel = await asyncio.to_thread(peer.wait_for, V + "cancel")
    assert cancel["code"] == "m.accepted" and cancel["transaction_id"] == v.txn
    # The device that was not chosen cannot step in.
    await asyncio.to_thread(peer.ready, request)
    await ours.pump(lambda: len(ours.handled) >= 2)
    assert v.device_id == other.device_id and v.phase is Phase.STARTED


async def test_a_mismatch_cancels_and_trusts_nothing(account: Account) -> None:
    ours, peer = account.ours, account.peer
    txn, v = await both_show_emoji(account, peer_starts=True)
    await ours.verifications.confirm(v, False)
    cancel = await asyncio.to_thread(peer.wait_for, V + "cancel")
    assert cancel["code"] == "m.mismatched_sas"
    assert cancel["transaction_id"] == txn
    assert v.phase is Phase.CANCELLED
    assert ours.told.cancelled == [("m.mismatched_sas", True)]
    assert ours.told.verified == []
    # Nothing sent that vouches for a key, and no secret asked for.
    await asyncio.to_thread(peer.sync)
    kinds = {e["type"] for e in peer.inbox}
    assert V + "mac" not in kinds and "m.secret.request" not in kinds
    assert not await asyncio.to_thread(
        device_signed_by_self_signing_key,
        peer.user,
        peer.user_id,
        ours.device.device_id,
    )


async def test_a_wrong_mac_from_the_other_device_cancels(account: Account) -> None:
    ours, peer = account.ours, account.peer
    txn, v = await both_show_emoji(account, peer_starts=False)
    # A MAC for a master key that is not the user's.
    await asyncio.to_thread(peer.send_mac, txn, SigningKey.generate().public_key)
    await ours.pump(lambda: v.their_mac is not None)
    await ours.verifications.confirm(v, True)
    await asyncio.to_thread(peer.wait_for, V + "mac")
    cancel = await asyncio.to_thread(peer.wait_for, V + "cancel")
    assert cancel["code"] == "m.key_mismatch"
    assert ours.told.verified == []


async def test_a_verification_not_finished_in_time_is_cancelled(
    account: Account,
) -> None:
    ours, peer = account.ours, account.peer
    ours.verifications.timeout = 1.0
    txn = await asyncio.to_thread(peer.request, ours.device.device_id)
    await ours.pump(lambda: bool(ours.told.requested))
    # Nobody answers; the peer waits for what comes, the loop runs the timer.
    cancel = await asyncio.to_thread(peer.wait_for, V + "cancel")
    assert cancel == {
        "code": "m.timeout",
        "reason": cancel["reason"],
        "transaction_id": txn,
    }
    await ours.pump(lambda: bool(ours.told.cancelled))
    assert ours.told.cancelled == [("m.timeout", True)]
    assert ours.told.requested[-1].phase is Phase.CANCELLED


async def test_the_other_device_cancelling_is_told(account: Account) -> None:
    ours, peer = account.ours, account.peer
    txn, v = await both_show_emoji(account, peer_starts=True)
    await asyncio.to_thread(peer.cancel, txn, "m.user")
    await ours.pump(lambda: bool(ours.told.cancelled))
    assert ours.told.cancelled == [("m.user", False)]
    assert v.phase is Phase.CANCELLED


# ---- secrets -------------------------------------------------------------------


async def test_after_success_the_secrets_come_and_the_device_signs_itself(
    account: Account,
) -> None:
    ours, peer = account.ours, account.peer
    txn, v = await both_show_emoji(account, peer_starts=True)
    await confirm_both(account, txn, v)
    assert not await asyncio.to_thread(
        device_signed_by_self_signing_key,
        peer.user,
        peer.user_id,
        ours.device.device_id,
    )
    asked = await ours.secrets.request()
    assert asked == [peer.device_id]
    backup = random_bytes(32)
    secrets = identity_secrets(account.identity) | {MEGOLM_BACKUP: backup}
    requests = await asyncio.to_thread(peer.answer_secret_requests, secrets, 4)
    assert {r["name"] for r in requests} == {
        MASTER,
        SELF_SIGNING,
        USER_SIGNING,
        MEGOLM_BACKUP,
    }
    assert all(r["requesting_device_id"] == ours.device.device_id for r in requests)
    await ours.pump(lambda: any(s[1] is None for s in ours.told.secrets))
    store = ours.device.store
    assert store.secret(SELF_SIGNING) == account.identity.self_signing.seed
    assert store.secret(MASTER) == account.identity.master.seed
    assert store.secret(USER_SIGNING) == account.identity.user_signing.seed
    assert store.secret(MEGOLM_BACKUP) == backup
    assert await asyncio.to_thread(
        device_signed_by_self_signing_key,
        peer.user,
        peer.user_id,
        ours.device.device_id,
    )
    status = await cross_signing.status(ours.client, ours.device)
    assert status.state is cross_signing.State.VERIFIED
    kept, signed = ours.told.secrets[0]
    assert SELF_SIGNING in kept and signed is not None


async def test_a_sas_after_an_identity_reset_is_the_users_latest_word(
    account: Account,
) -> None:
    """The recovery key once unlocked an identity the user has reset since;
    the master key they now confirm in a SAS is the one trusted."""
    ours = account.ours
    store = ours.device.store
    with store.transaction():
        store.put_json(PUBLIC_IDENTITY, {"master": "the master key of before"})
    await ours.device.refresh_own_devices()
    assert cross_signing.own_identity(ours.device) == {}

    txn, v = await both_show_emoji(account, peer_starts=False)
    await confirm_both(account, txn, v)

    assert store.get_json(PUBLIC_IDENTITY) is None
    trusted = cross_signing.own_identity(ours.device)
    assert master_key_of(ours.device.user_id, trusted) == (
        account.identity.master.public_key
    )


async def test_the_other_verified_devices_are_told_once_a_secret_came(
    account: Account, synapse: Synapse
) -> None:
    ours, peer = account.ours, account.peer
    other = await another_device(account, synapse)
    await asyncio.to_thread(other.cross_sign_device, account.identity, other.device_id)
    asked = await ours.secrets.request([MEGOLM_BACKUP])
    assert asked == sorted([peer.device_id, other.device_id])
    backup = random_bytes(32)
    await asyncio.to_thread(peer.answer_secret_requests, {MEGOLM_BACKUP: backup}, 1)
    request = await asyncio.to_thread(other.wait_for, "m.secret.request")
    assert request["action"] == "request"
    await ours.pump(lambda: bool(ours.told.secrets))
    assert ours.told.secrets == [([MEGOLM_BACKUP], None)]
    assert ours.device.store.secret(MEGOLM_BACKUP) == backup
    cancellation = await asyncio.to_thread(other.wait_for, "m.secret.request")
    assert cancellation == {
        "action": "request_cancellation",
        "requesting_device_id": ours.device.device_id,
        "request_id": request["request_id"],
    }
    # The peer that answered is not told to cancel.
    await asyncio.to_thread(peer.sync)
    assert [e for e in peer.inbox if e["type"] == "m.secret.request"] == []


async def test_secrets_from_the_wrong_place_are_ignored(
    account: Account, synapse: Synapse
) -> None:
    ours, peer = account.ours, account.peer
    # A device of the user that nobody verified.
    stranger = await another_device(account, synapse)
    assert await ours.secrets.request([SELF_SIGNING, MEGOLM_BACKUP]) == [peer.device_id]
    requests = [
        await asyncio.to_thread(peer.wait_for, "m.secret.request") for _ in range(2)
    ]
    by_name = {r["name"]: r["request_id"] for r in requests}
    seed = b64encode(account.identity.self_signing.seed)
    # The device nobody verified, answering over Olm.
    await asyncio.to_thread(
        stranger.olm_to,
        ours.device.device_id,
        "m.secret.send",
        {"request_id": by_name[SELF_SIGNING], "secret": seed},
    )
    # The verified device, in the clear.
    await asyncio.to_thread(
        peer.send,
        "m.secret.send",
        ours.device.device_id,
        {"request_id": by_name[SELF_SIGNING], "secret": seed},
    )
    # The verified device over Olm, for no request of ours.
    await asyncio.to_thread(
        peer.olm_to,
        ours.device.device_id,
        "m.secret.send",
        {"request_id": uuid.uuid4().hex, "secret": seed},
    )
    # The verified device over Olm, for our request, a key that is not the
    # published one.
    await asyncio.to_thread(
        peer.olm_to,
        ours.device.device_id,
        "m.secret.send",
        {
            "request_id": by_name[SELF_SIGNING],
            "secret": b64encode(SigningKey.generate().seed),
        },
    )
    await ours.pump(lambda: len(ours.handled) >= 3)
    assert any("unencrypted m.secret.send" in r for r in ours.refused)
    assert ours.device.store.secret(SELF_SIGNING) is None
    assert ours.told.secrets == []
    # A clear one handed on anyway is not taken either.
    await ours.secrets.handle(
        ToDeviceMessage(
            "m.secret.send",
            peer.user_id,
            {"request_id": by_name[SELF_SIGNING], "secret": seed},
            False,
            peer.device_id,
            peer.account.ed25519,
        )
    )
    assert ours.device.store.secret(SELF_SIGNING) is None
    # The right answer is still taken, and the request closed.
    await asyncio.to_thread(
        peer.olm_to,
        ours.device.device_id,
        "m.secret.send",
        {"request_id": by_name[SELF_SIGNING], "secret": seed},
    )
    await ours.pump(lambda: bool(ours.told.secrets))
    assert ours.device.store.secret(SELF_SIGNING) == account.identity.self_signing.seed
    assert ours.device.store.secret(MEGOLM_BACKUP) is None


async def test_keys_of_another_identity_than_the_one_verified_are_refused(
    account: Account,
) -> None:
    """After a SAS vouched for the user's master key, an identity the
    homeserver publishes later (reset, or forged) is not trusted: its keys
    are refused and its signatures on devices count for nothing."""
    ours, peer = account.ours, account.peer
    txn, v = await both_show_emoji(account, peer_starts=True)
    await confirm_both(account, txn, v)
    new = Identity.generate(peer.user_id)
    await asyncio.to_thread(publish, peer.user, new)
    await asyncio.to_thread(peer.cross_sign_device, new, peer.device_id)
    # Still asked: the SAS verified the device itself.
    assert await ours.secrets.request([SELF_SIGNING]) == [peer.device_id]
    # Nor do the key backup and key requests take the new identity's word.
    assert cross_signing.own_identity(ours.device) == {}
    await asyncio.to_thread(
        peer.answer_secret_requests, {SELF_SIGNING: new.self_signing.seed}, 1
    )
    await ours.pump(lambda: any(m.type == "m.secret.send" for m in ours.handled))
    assert ours.device.store.secret(SELF_SIGNING) is None
    assert ours.told.secrets == []
    assert not await asyncio.to_thread(
        device_signed_by_self_signing_key,
        peer.user,
        peer.user_id,
        ours.device.device_id,
    )
