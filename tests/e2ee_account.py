"""A user set up as Element leaves them (cross-signing identity, secret
storage holding the backup key), with the gateway's Encryption for them
driven at module level against the real Synapse: its own sync loop feeds
:meth:`Encryption.before_timeline`, and key recovery is installed as the
session installs it. Shared by the key backup and key request tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matridge.crypto.device import Device
from matridge.crypto.primitives import (
    MegolmOutbound,
    SigningKey,
    random_bytes,
    sign_json,
)
from matridge.crypto.store import KeyStore
from matridge.encryption import Encryption
from matridge.key_recovery import KeyRecovery, install
from matridge.matrix import MatrixClient, SyncBatch
from tests.conftest import unique
from tests.harness.cross_signing_peer import (
    MEGOLM_BACKUP,
    Identity,
    SecretStorage,
    identity_secrets,
    publish,
    set_up_secret_storage,
)
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse

MEGOLM = "m.megolm.v1.aes-sha2"


@dataclass
class Account:
    """The user's Element-like account and the gateway's device of it."""

    synapse: Synapse
    name: str
    raw: MatrixUser  # the user's first login, as Element
    identity: Identity
    storage: SecretStorage
    backup_key: bytes
    client: MatrixClient
    encryption: Encryption
    recovery: KeyRecovery
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    shown_late: list[tuple[str, list[str]]] = field(default_factory=list)
    batches: asyncio.Queue[SyncBatch] = field(default_factory=asyncio.Queue)

    @property
    def user_id(self) -> str:
        return self.raw.user_id

    @property
    def device(self) -> Device:
        return self.encryption.device

    async def settle(self) -> None:
        """Waits for the background work started so far (finders, late
        corrections), as the session's tasks would run."""
        while pending := [t for t in self.tasks if not t.done()]:
            # The uploader waits for nudges forever: not waited for.
            pending = [t for t in pending if t.get_name() != "key backup upload"]
            if not pending:
                return
            await asyncio.wait(pending)

    async def sync_until(
        self, done: Callable[[], bool], what: str, batches: int = 40
    ) -> list[tuple[str, list[str]]]:
        """Processes sync batches as the session does (before_timeline)
        until ``done()``; returns the late events they corrected."""
        late: list[tuple[str, list[str]]] = []
        for _ in range(batches):
            if done():
                return late
            batch = await asyncio.wait_for(self.batches.get(), 60)
            late += await self.encryption.before_timeline(batch)
            self.client.sync_ack(batch)
            await self.settle()
        if done():
            return late
        raise AssertionError(f"not seen after {batches} sync batches: {what}")


def element_like(user: MatrixUser) -> tuple[Identity, bytes, SecretStorage]:
    """The account as Element leaves it: a cross-signing identity, and
    secret storage holding it and a key backup key (no backup version)."""
    identity = Identity.generate(user.user_id)
    publish(user, identity)
    backup_key = random_bytes(32)
    storage = set_up_secret_storage(
        user, identity_secrets(identity) | {MEGOLM_BACKUP: backup_key}
    )
    return identity, backup_key, storage


@asynccontextmanager
async def element_user(
    synapse: Synapse, tmp_path: Path, *, verify: bool = True
) -> AsyncIterator[Account]:
    """A user with a cross-signing identity and secret storage holding a
    backup key, and the gateway's Encryption for them (verified with the
    recovery key unless ``verify`` is False), syncing."""
    name = unique("me")
    info = synapse.register_user(name, "pw")
    raw = MatrixUser(synapse.base_url, info["access_token"], info["user_id"])
    identity, backup_key, storage = element_like(raw)
    client = MatrixClient(synapse.base_url)
    login = await client.login_password(name, "pw", "gateway")
    tasks: list[asyncio.Task[Any]] = []
    shown_late: list[tuple[str, list[str]]] = []

    def spawn(coro: Coroutine[Any, Any, Any], name: str) -> object:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        tasks.append(task)
        return task

    async def show_late(room_id: str, event_ids: list[str]) -> None:
        shown_late.append((room_id, event_ids))

    encryption = await Encryption.start(
        client,
        login.user_id,
        login.device_id,
        tmp_path / f"{name}.sqlite",
        {},
        lambda _data: None,
    )
    encryption.attach(spawn, show_late)
    recovery = install(encryption, spawn)
    account = Account(
        synapse,
        name,
        raw,
        identity,
        storage,
        backup_key,
        client,
        encryption,
        recovery,
        tasks,
        shown_late,
    )
    client.start_sync(account.batches.put_nowait, lambda _e, _fatal: None, None, 1000)
    try:
        if verify:
            await encryption.verify(storage.recovery_key)
        yield account
    finally:
        client.stop_sync()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        encryption.close()


def encrypted_room(account: Account) -> str:
    """A new encrypted room of the user's."""
    room = account.raw.create_room(name="secret")
    account.raw.send_state(room, "m.room.encryption", {"algorithm": MEGOLM})
    return room


def send_megolm(
    sender: MatrixUser,
    room: str,
    session: MegolmOutbound,
    sender_key: str,
    body: str,
) -> str:
    """A text encrypted with ``session``, as a device whose Curve25519 key
    is ``sender_key`` sends it; returns the event id."""
    plain = {
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body},
        "room_id": room,
    }
    return sender.send_event(
        room,
        "m.room.encrypted",
        {
            "algorithm": MEGOLM,
            "sender_key": sender_key,
            "ciphertext": session.encrypt(json.dumps(plain).encode()),
            "session_id": session.session_id,
            "device_id": "ELEMENT",
        },
    )


def cross_sign(account: Account, device_id: str, key: SigningKey | None = None) -> None:
    """The user's self-signing key (or ``key``) signs one of their devices."""
    me = account.user_id
    res = account.raw.request("POST", "/keys/query", {"device_keys": {me: [device_id]}})
    keys = res["device_keys"][me][device_id]
    signer = key or account.identity.self_signing
    signed = sign_json(
        {k: v for k, v in keys.items() if k != "unsigned"},
        signer,
        me,
        signer.public_key,
    )
    account.raw.request("POST", "/keys/signatures/upload", {me: {device_id: signed}})


@dataclass
class OtherDevice:
    """Another device of the user's, driven with matridge's Device (its
    to-device messages fetched with a raw /sync of its token)."""

    device: Device
    raw: MatrixUser
    since: str | None = None

    def to_device(self, wait_ms: int = 0) -> list[dict[str, Any]]:
        res = self.raw.sync(self.since, wait_ms if self.since else 0)
        self.since = res["next_batch"]
        events: list[dict[str, Any]] = res.get("to_device", {}).get("events", [])
        return events


async def other_device(
    account: Account, tmp_path: Path, *, accept_all_forwarded: bool = False
) -> OtherDevice:
    """A new login of the user, its device keys published."""
    client = MatrixClient(account.synapse.base_url)
    login = await client.login_password(account.name, "pw", "other device")
    store = KeyStore.open(tmp_path / f"{unique('other')}.sqlite", random_bytes(32))
    device = Device(
        client,
        store,
        login.user_id,
        login.device_id,
        accept_forwarded=(lambda _offer: True) if accept_all_forwarded else None,
    )
    await device.upload_keys()
    raw = MatrixUser(account.synapse.base_url, login.access_token, login.user_id)
    other = OtherDevice(device, raw)
    other.to_device()  # from now on
    return other
