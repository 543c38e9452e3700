"""A Matrix person on matrix-nio (on vodozemac) with end-to-end encryption:
the other side of the gateway's encrypted rooms.

Its device is cross-signed by its owner, as Element leaves a device after
verification (nio cannot do that itself): the account gets a cross-signing
identity (:mod:`tests.harness.cross_signing_peer`) and the nio device's keys
get the self-signing key's signature, uploaded with
``/keys/signatures/upload``. ``cross_signed=False`` gives a device its owner
never signed, which the gateway must not share room keys with.

nio refuses to encrypt for devices nobody verified in nio, so sends pass
``ignore_unverified_devices=True``. Everything it receives in a sync is
kept: timeline events (decrypted when nio can; retried as keys come) and
to-device events (withheld notices are plaintext, so readable as is).
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nio
from nio.crypto import OlmDevice
from nio.crypto.attachments import decrypt_attachment

from matridge.crypto.primitives import sign_json
from tests.harness.cross_signing_peer import Identity, publish
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse

__all__ = ["LateKey", "NioPeer", "open_other_device", "open_peer"]

MEGOLM = "m.megolm.v1.aes-sha2"

EventPredicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class LateKey:
    """A message sent in a Megolm session whose key one device did not get:
    the key as it was before the message (index 0), kept to be sent late."""

    room_id: str
    event_id: str
    session_id: str
    session_key: str


@dataclass
class NioPeer:
    client: nio.AsyncClient
    raw: MatrixUser  # the same login, driven raw for set-up and checks
    identity: Identity | None  # None: the device is not cross-signed
    # Every timeline event seen, decrypted when nio could (its source: for
    # a decrypted event the plaintext payload plus event_id and sender).
    events: list[dict[str, Any]] = field(default_factory=list)
    # Encrypted events nio could not decrypt yet, retried after each sync.
    undecrypted: list[tuple[str, nio.MegolmEvent]] = field(default_factory=list)
    to_device: list[dict[str, Any]] = field(default_factory=list)
    _since_sync: bool = False

    @property
    def user_id(self) -> str:
        user_id: str = self.client.user_id
        return user_id

    @property
    def device_id(self) -> str:
        device_id = self.client.device_id
        assert isinstance(device_id, str)
        return device_id

    # -- rooms -----------------------------------------------------------------

    def create_encrypted_room(
        self,
        invite: list[str],
        *,
        name: str | None = None,
        is_direct: bool = False,
        rotation: dict[str, int] | None = None,
    ) -> str:
        """A new room with ``m.room.encryption`` (Megolm; ``rotation``'s
        ``rotation_period_msgs``/``rotation_period_ms`` added) set before
        anyone is invited."""
        body: dict[str, Any] = {
            "preset": "trusted_private_chat" if is_direct else "private_chat",
            "is_direct": is_direct,
            "initial_state": [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": MEGOLM, **(rotation or {})},
                }
            ],
        }
        if name is not None:
            body["name"] = name
        room_id: str = self.raw.request("POST", "/createRoom", body)["room_id"]
        for user_id in invite:
            self.raw.invite(room_id, user_id)
        return room_id

    async def join(self, room_id: str) -> None:
        resp = await self.client.join(room_id)
        assert isinstance(resp, nio.JoinResponse), resp
        await self.sync()

    async def log_out(self) -> None:
        """The device goes away: logged out, its keys deleted."""
        resp = await self.client.logout()
        assert isinstance(resp, nio.LogoutResponse), resp

    async def leave(self, room_id: str) -> None:
        resp = await self.client.room_leave(room_id)
        assert isinstance(resp, nio.RoomLeaveResponse), resp
        await self.sync()

    # -- syncing ---------------------------------------------------------------

    async def sync(self, timeout_ms: int = 0) -> None:
        """One /sync: keeps its events, decrypts what the new keys open,
        and brings nio's device lists up to date."""
        resp = await self.client.sync(
            timeout=timeout_ms, full_state=not self._since_sync
        )
        assert isinstance(resp, nio.SyncResponse), resp
        self._since_sync = True
        for event in resp.to_device_events:
            self.to_device.append(event.source)
        for room_id, room in resp.rooms.join.items():
            for event in room.timeline.events:
                self._keep(room_id, event)
        still: list[tuple[str, nio.MegolmEvent]] = []
        assert self.client.olm is not None
        for room_id, encrypted in self.undecrypted:
            try:
                decrypted = self.client.olm.decrypt_megolm_event(encrypted, room_id)
            except nio.EncryptionError:
                still.append((room_id, encrypted))
                continue
            self.events.append(_source(room_id, decrypted))
        self.undecrypted = still
        if self.client.should_query_keys:
            await self.client.keys_query()

    def _keep(self, room_id: str, event: nio.Event) -> None:
        if isinstance(event, nio.MegolmEvent):
            self.undecrypted.append((room_id, event))
            return
        self.events.append(_source(room_id, event))

    async def wait_event(
        self,
        predicate: EventPredicate,
        timeout: float = 60,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The first kept event (decrypted if it was encrypted) matching
        ``predicate``, syncing until one does."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                seen = [(e.get("type"), e.get("content")) for e in self.events[-10:]]
                raise TimeoutError(
                    f"{self.user_id}: no matching event after {timeout}s; latest "
                    f"{seen}; {len(self.undecrypted)} still encrypted"
                )
            await self.sync(1000)

    async def wait_text(
        self,
        room_id: str,
        body: str,
        timeout: float = 60,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The decrypted message with ``body`` in ``room_id``."""
        return await self.wait_event(
            lambda e: (
                e["room_id"] == room_id
                and e.get("decrypted") is True
                and e.get("content", {}).get("body") == body
            ),
            timeout,
        )

    async def wait_to_device(
        self,
        predicate: EventPredicate,
        timeout: float = 60,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.to_device:
                if predicate(event):
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.user_id}: no matching to-device event after "
                    f"{timeout}s; got {[e.get('type') for e in self.to_device]}"
                )
            await self.sync(1000)

    # -- sending ---------------------------------------------------------------

    async def knows_devices(self, user_id: str, device_id: str) -> OlmDevice:
        """nio's record of ``device_id``, its keys queried (again) first."""
        deadline = time.monotonic() + 60
        while True:
            assert self.client.olm is not None
            self.client.olm.users_for_key_query.add(user_id)
            await self.client.keys_query()
            device = self.client.device_store.active_user_devices(user_id)
            for d in device:
                if d.id == device_id:
                    return d
            if time.monotonic() > deadline:
                raise TimeoutError(f"nio never saw the keys of {device_id}")
            await asyncio.sleep(0.5)

    async def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Sends (encrypted, the room being encrypted) and returns the
        event id."""
        await self.sync()
        resp = await self.client.room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        assert isinstance(resp, nio.RoomSendResponse), resp
        event_id: str = resp.event_id
        return event_id

    async def send_text(self, room_id: str, body: str, **extra: Any) -> str:
        return await self.send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body, **extra}
        )

    def has_room_key(self, room_id: str, session_id: str) -> bool:
        """Whether nio holds the Megolm key of ``session_id`` in ``room_id``."""
        assert self.client.olm is not None
        return any(
            s.room_id == room_id and s.id == session_id
            for s in self.client.olm.inbound_group_store
        )

    def new_session(self, room_id: str) -> None:
        """The next send starts a new Megolm session (its key goes out again
        as a to-device message), as a client does on rotation."""
        assert self.client.olm is not None
        self.client.olm.outbound_group_sessions.pop(room_id, None)

    # -- a key that arrives late -----------------------------------------------

    async def send_text_withholding_key(
        self, room_id: str, body: str, user_id: str, device_id: str
    ) -> LateKey:
        """Sends ``body`` in a new session whose key every member's device
        gets but ``device_id``: nio blacklists it for the share (and tells
        it nothing). The key at index 0 is kept for :meth:`send_late_key`."""
        olm = self.client.olm
        assert olm is not None
        await self.sync()
        device = await self.knows_devices(user_id, device_id)
        await self._olm_session_with(device)
        self.new_session(room_id)
        olm.blacklist_device(device)
        try:
            resp = await self.client.share_group_session(
                room_id, ignore_unverified_devices=True
            )
            assert isinstance(resp, nio.ShareGroupSessionResponse), resp
            session = olm.outbound_group_sessions[room_id]
            key = session.session_key  # exported before any message
            event_id = await self.send_text(room_id, body)
        finally:
            olm.unblacklist_device(device)
        # Later messages must reach the device again: a fresh session.
        self.new_session(room_id)
        return LateKey(room_id, event_id, session.id, key)

    async def send_late_key(self, late: LateKey, user_id: str, device_id: str) -> None:
        """The withheld key, now, as the ``m.room_key`` the sender would
        have sent, Olm-encrypted to ``device_id``."""
        olm = self.client.olm
        assert olm is not None
        device = await self.knows_devices(user_id, device_id)
        session = await self._olm_session_with(device)
        content = {
            "algorithm": MEGOLM,
            "room_id": late.room_id,
            "session_id": late.session_id,
            "session_key": late.session_key,
        }
        encrypted = olm._olm_encrypt(session, device, "m.room_key", content)
        resp = await self.client.to_device(
            nio.ToDeviceMessage("m.room.encrypted", user_id, device_id, encrypted)
        )
        assert isinstance(resp, nio.ToDeviceResponse), resp

    async def _olm_session_with(self, device: OlmDevice) -> Any:
        olm = self.client.olm
        assert olm is not None
        session = olm.session_store.get(device.curve25519)
        if session is None:
            resp = await self.client.keys_claim({device.user_id: [device.id]})
            assert isinstance(resp, nio.KeysClaimResponse), resp
            session = olm.session_store.get(device.curve25519)
        assert session is not None, f"no Olm session with {device.id}"
        return session

    # -- files -----------------------------------------------------------------

    async def send_encrypted_file(
        self,
        room_id: str,
        data: bytes,
        name: str,
        mimetype: str,
        msgtype: str = "m.file",
    ) -> str:
        """Uploads ``data`` encrypted (AES-CTR, nio's attachments) and sends
        the event that carries its ``file`` (url, key, iv, hashes)."""
        resp, keys = await self.client.upload(
            io.BytesIO(data),
            content_type="application/octet-stream",
            filename=name,
            encrypt=True,
            filesize=len(data),
        )
        assert isinstance(resp, nio.UploadResponse), resp
        assert keys is not None
        content = {
            "msgtype": msgtype,
            "body": name,
            "filename": name,
            "info": {"mimetype": mimetype, "size": len(data)},
            "file": {**keys, "url": resp.content_uri},
        }
        return await self.send(room_id, "m.room.message", content)

    def download_decrypted(self, file: dict[str, Any]) -> bytes:
        """The plaintext of an encrypted file (an event's ``file``)."""
        ciphertext = self.raw.download(file["url"])
        plaintext: bytes = decrypt_attachment(
            ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
        )
        return plaintext


def _source(room_id: str, event: nio.Event) -> dict[str, Any]:
    """An event as a dict: its source (the plaintext payload for a
    decrypted one), with room, id, sender and whether it was encrypted."""
    source = dict(event.source)
    source["room_id"] = room_id
    source.setdefault("event_id", getattr(event, "event_id", None))
    source.setdefault("sender", getattr(event, "sender", None))
    source["decrypted"] = bool(getattr(event, "decrypted", False))
    if source["decrypted"]:
        source["session_id"] = getattr(event, "session_id", None)
    return source


def cross_sign_device(raw: MatrixUser, identity: Identity, device_id: str) -> None:
    """The owner signs ``device_id``'s keys with their self-signing key and
    uploads the signature, as a client does after verifying its device."""
    res = raw.request("POST", "/keys/query", {"device_keys": {raw.user_id: []}})
    keys = dict(res["device_keys"][raw.user_id][device_id])
    keys.pop("unsigned", None)
    ssk = identity.self_signing
    signed = sign_json(keys, ssk, raw.user_id, ssk.public_key)
    answer = raw.request(
        "POST", "/keys/signatures/upload", {raw.user_id: {device_id: signed}}
    )
    assert not answer.get("failures"), answer


@asynccontextmanager
async def open_peer(
    synapse: Synapse,
    store_root: Path,
    *,
    cross_signed: bool = True,
    display_name: str | None = None,
) -> AsyncIterator[NioPeer]:
    """A new Matrix user on nio, device keys uploaded and (by default)
    cross-signed by its owner; closed at the end."""
    name = f"nio{uuid.uuid4().hex[:8]}"
    synapse.register_user(name, "pw")
    async with _logged_in(synapse, store_root, name) as client:
        raw = MatrixUser(synapse.base_url, client.access_token, client.user_id)
        if display_name is not None:
            raw.set_displayname(display_name)
        identity = None
        if cross_signed:
            identity = Identity.generate(client.user_id)
            publish(raw, identity)
            cross_sign_device(raw, identity, client.device_id)
        peer = NioPeer(client, raw, identity)
        await peer.sync()
        yield peer


@asynccontextmanager
async def open_other_device(
    synapse: Synapse, store_root: Path, peer: NioPeer
) -> AsyncIterator[NioPeer]:
    """Another login of ``peer``'s user, cross-signed by the same owner
    when ``peer``'s device is."""
    name = peer.user_id.removeprefix("@").split(":")[0]
    async with _logged_in(synapse, store_root, name) as client:
        raw = MatrixUser(synapse.base_url, client.access_token, client.user_id)
        if peer.identity is not None:
            cross_sign_device(raw, peer.identity, client.device_id)
        other = NioPeer(client, raw, peer.identity)
        await other.sync()
        yield other


@asynccontextmanager
async def _logged_in(
    synapse: Synapse, store_root: Path, name: str
) -> AsyncIterator[nio.AsyncClient]:
    """A new nio login (a new device) of user ``name``, keys uploaded."""
    store = store_root / f"{name}-{uuid.uuid4().hex[:6]}"
    store.mkdir(parents=True)
    client = nio.AsyncClient(
        synapse.base_url,
        f"@{name}:{synapse.server_name}",
        store_path=str(store),
        config=nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True),
    )
    try:
        login = await client.login("pw", device_name="nio peer")
        assert isinstance(login, nio.LoginResponse), login
        uploaded = await client.keys_upload()
        assert isinstance(uploaded, nio.KeysUploadResponse), uploaded
        yield client
    finally:
        await client.close()
