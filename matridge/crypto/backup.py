"""Server-side key backup (client-server API "Server-side key backups",
``m.megolm_backup.v1.curve25519-aes-sha2``), with the backup key the user's
secret storage gave the key store (``m.megolm_backup.v1``).

- :meth:`KeyBackup.check` reads the current backup version and trusts it
  only when its public key is our backup key's and its ``auth_data`` is
  signed by the user's master key or by one of their own cross-signed
  devices; otherwise it is not used, and the returned status says why.
- :meth:`KeyBackup.upload_pending` puts the inbound sessions the backup
  lacks into it (what other devices sent us, and our own sessions' copies).
- :meth:`KeyBackup.find` fetches one missing session from it; the session
  is stored as imported (whoever holds the public key can write to a
  backup, so it is not proof of who sent it).

Nothing here logs a key: log lines name rooms, versions and reasons.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..matrix import MatrixError
from . import cross_signing
from .device import Device, KeysApi
from .device_keys import MEGOLM_ALGORITHM, ed25519_of
from .primitives import (
    BACKUP_ALGORITHM,
    BackupKey,
    CryptoError,
    MegolmInbound,
    SignatureError,
    backup_encrypt,
    canonical_json,
    verify_json,
)
from .store import InboundGroupRecord, KeyStore

log = logging.getLogger(__name__)

# Sessions per PUT /room_keys/keys: a bounded body per request.
UPLOAD_CHUNK = 100
# A backup found unusable (none, unsigned) is looked at again this often.
RECHECK_S = 3600.0


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """Whether the key backup is used, its version, and why in words."""

    usable: bool
    version: str | None
    sentence: str
    public_key: str | None = None  # what sessions are encrypted to, if usable


class KeyBackup:
    """The user's server-side key backup, as one of their devices sees it."""

    def __init__(
        self,
        api: KeysApi,
        device: Device,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._api = api
        self._on_refused = on_refused
        self._clock = clock
        self._checked_at = 0.0
        self._device = device
        self._store: KeyStore = device.store
        # The check's answer, for the backup key it was made with: a key
        # arriving later (the user verifies) is checked again.
        self._checked: tuple[bytes | None, BackupStatus] | None = None

    # -- which backup, if any ------------------------------------------------------

    def _key(self) -> BackupKey | None:
        secret = self._store.secret(cross_signing.MEGOLM_BACKUP)
        if secret is None:
            return None
        try:
            return BackupKey(secret)
        except CryptoError:
            return None

    async def status(self) -> BackupStatus:
        """The last check's answer, checking again if the backup key changed
        or, for a backup not used, after a while (one may be made since)."""
        secret = self._store.secret(cross_signing.MEGOLM_BACKUP)
        if self._checked is not None and self._checked[0] == secret:
            status = self._checked[1]
            if status.usable or self._clock() - self._checked_at < RECHECK_S:
                return status
        return await self.check()

    async def check(self) -> BackupStatus:
        """Reads the current backup version and decides whether to use it."""
        secret = self._store.secret(cross_signing.MEGOLM_BACKUP)
        status = await self._check()
        # A warning only for a backup that is there but not used.
        refused = not status.usable and status.version is not None
        (log.warning if refused else log.info)(
            "%s: key backup: %s", self._device.user_id, status.sentence
        )
        self._checked = (secret, status)
        self._checked_at = self._clock()
        if refused and self._on_refused is not None:
            # A backup is there but not used: the user should know why.
            self._on_refused(status.sentence)
        return status

    async def _check(self) -> BackupStatus:
        key = self._key()
        if key is None:
            return BackupStatus(
                False,
                None,
                "this gateway has no key backup key: give your recovery key "
                "with 'verify' so that it can read and fill your key backup",
            )
        try:
            res = await self._api.request("GET", "/_matrix/client/v3/room_keys/version")
        except MatrixError as e:
            if e.status == 404:
                return BackupStatus(
                    False, None, "your account has no key backup on the homeserver"
                )
            raise
        version = res.get("version")
        auth_data = res.get("auth_data")
        if not isinstance(version, str) or not isinstance(auth_data, Mapping):
            return BackupStatus(False, None, "the homeserver's key backup is malformed")
        if res.get("algorithm") != BACKUP_ALGORITHM:
            return BackupStatus(
                False,
                version,
                f"your key backup uses {res.get('algorithm')!r}, which this "
                "gateway does not support",
            )
        if auth_data.get("public_key") != key.public_key:
            return BackupStatus(
                False,
                version,
                "your key backup (version "
                f"{version}) is not the one your backup key belongs to (it was "
                "probably reset): give your new recovery key with 'verify'",
            )
        signer = await self._trusted_signer(auth_data)
        if signer is None:
            return BackupStatus(
                False,
                version,
                f"your key backup (version {version}) is not signed by your "
                "cross-signing identity nor by one of your verified devices, "
                "so the gateway does not use it",
            )
        return BackupStatus(
            True,
            version,
            f"key backup version {version} in use (signed by {signer})",
            key.public_key,
        )

    async def _trusted_signer(self, auth_data: Mapping[str, Any]) -> str | None:
        """Who of the user's vouches for the backup: their master key or
        one of their devices their self-signing key signed."""
        me = self._device.user_id
        signatures = auth_data.get("signatures")
        mine = signatures.get(me) if isinstance(signatures, Mapping) else None
        if not isinstance(mine, Mapping) or not mine:
            return None
        # The user's own keys, fresh: the backup is trusted on their word.
        await self._device.refresh_own_devices()
        # Another identity than the one the user vouched for vouches for
        # nothing: neither its master key nor the devices it signed.
        identity = cross_signing.own_identity(self._device)
        master = cross_signing.master_key_of(me, identity)
        devices = self._device.devices(me)
        for key_id in mine:
            if not isinstance(key_id, str) or not key_id.startswith("ed25519:"):
                continue
            name = key_id.removeprefix("ed25519:")
            if master is not None and name == master:
                public, what = master, "your master key"
            elif name in devices and cross_signing.device_cross_signed(
                me, identity, devices[name]
            ):
                public, what = ed25519_of(devices[name]), f"your device {name}"
            else:
                continue
            try:
                verify_json(auth_data, me, name, public)
            except SignatureError:
                log.warning("%s: a key backup signature by %s is wrong", me, what)
                continue
            return what
        return None

    # -- uploading -----------------------------------------------------------------

    async def upload_pending(self) -> int:
        """Puts every inbound session the backup lacks into it. Returns how
        many went up (0 when the backup is not used)."""
        status = await self.status()
        public_key = status.public_key
        if not status.usable or status.version is None or public_key is None:
            return 0
        sent = 0
        while True:
            records = self._store.sessions_not_backed_up(status.version, UPLOAD_CHUNK)
            if not records:
                return sent
            rooms: dict[str, dict[str, Any]] = {}
            for record in records:
                rooms.setdefault(record.room_id, {"sessions": {}})["sessions"][
                    record.session.session_id
                ] = self._backup_data(record, public_key)
            try:
                await self._api.request(
                    "PUT",
                    "/_matrix/client/v3/room_keys/keys",
                    body={"rooms": rooms},
                    query={"version": status.version},
                )
            except MatrixError as e:
                if e.errcode == "M_WRONG_ROOM_KEYS_VERSION":
                    # A new backup replaced it: checked again next time.
                    self._checked = None
                    log.info("%s: the key backup version changed", self._device.user_id)
                    return sent
                raise
            with self._store.transaction():
                self._store.mark_backed_up(status.version, _ids(records))
            sent += len(records)

    def _backup_data(
        self, record: InboundGroupRecord, public_key: str
    ) -> dict[str, Any]:
        """One session's ``KeyBackupData``, with the session's forwarding
        chain as it came to us."""
        first = record.session.first_known_index
        exported = record.session.export_at(first)
        if exported is None:
            raise CryptoError("an inbound session does not export at its first index")
        plain = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": record.room_id,
            "sender_key": record.sender_key,
            "sender_claimed_keys": {"ed25519": record.sender_ed25519},
            "forwarding_curve25519_key_chain": list(record.forwarding_chain),
            "session_id": record.session.session_id,
            "session_key": exported,
        }
        return {
            "first_message_index": first,
            "forwarded_count": len(record.forwarding_chain),
            # Only our own sessions are vouched for: the sender is this device.
            "is_verified": record.sender_key == self._device.curve25519,
            "session_data": backup_encrypt(public_key, canonical_json(plain)),
        }

    def arrived(self, keys: list[tuple[str, str, str]]) -> None:
        """Sessions a batch stored: they go (again) into the backup, since a
        copy from an earlier index may have replaced one it holds (the
        server keeps the better of two)."""
        with self._store.transaction():
            self._store.forget_backed_up(keys)

    # -- restoring -------------------------------------------------------------------

    async def find(self, room_id: str, sender_key: str, session_id: str) -> bool:
        """Fetches a missing session from the backup and stores it."""
        status = await self.status()
        key = self._key()
        if (
            not status.usable
            or status.version is None
            or key is None
            or key.public_key != status.public_key
        ):
            return False
        try:
            data = await self._api.request(
                "GET",
                "/_matrix/client/v3/room_keys/keys/{}/{}",
                room_id,
                session_id,
                query={"version": status.version},
            )
        except MatrixError as e:
            if e.status == 404:
                return False
            raise
        session_data = data.get("session_data")
        if not isinstance(session_data, Mapping):
            log.warning("the key backup's session for %s is malformed", room_id)
            return False
        try:
            plain = json.loads(key.decrypt(session_data))
            record = _restored(room_id, sender_key, session_id, plain)
        except (CryptoError, ValueError) as e:
            log.warning("the key backup's session for %s is not used: %s", room_id, e)
            return False
        old = self._store.inbound_group_session(room_id, sender_key, session_id)
        with self._store.transaction():
            if (
                old is None
                or old.session.first_known_index > record.session.first_known_index
            ):
                self._store.save_inbound_group_session(record)
            self._store.mark_backed_up(
                status.version, [(room_id, sender_key, session_id)]
            )
        log.info(
            "%s: a session of %s restored from the key backup",
            self._device.user_id,
            room_id,
        )
        return True


def _restored(
    room_id: str, sender_key: str, session_id: str, plain: Any
) -> InboundGroupRecord:
    """The record of a decrypted ``BackedUpSessionData``, checked to be the
    session that was asked for."""
    if not isinstance(plain, Mapping):
        raise ValueError("the session data is not an object")
    if plain.get("algorithm") != MEGOLM_ALGORITHM:
        raise ValueError(f"algorithm {plain.get('algorithm')!r}")
    if plain.get("sender_key") != sender_key:
        raise ValueError("it is another sender's session")
    session_key = plain.get("session_key")
    claimed = plain.get("sender_claimed_keys")
    ed25519 = claimed.get("ed25519") if isinstance(claimed, Mapping) else None
    if not isinstance(session_key, str) or not isinstance(ed25519, str):
        raise ValueError("the session data lacks session_key or sender_claimed_keys")
    chain = plain.get("forwarding_curve25519_key_chain", [])
    if not isinstance(chain, list) or not all(isinstance(k, str) for k in chain):
        raise ValueError("its forwarding_curve25519_key_chain is not a list of keys")
    session = MegolmInbound.from_export(session_key)
    if session.session_id != session_id:
        raise ValueError("its key is not the session's that was asked for")
    return InboundGroupRecord(room_id, sender_key, session, ed25519, True, tuple(chain))


def _ids(records: Iterable[InboundGroupRecord]) -> list[tuple[str, str, str]]:
    return [(r.room_id, r.sender_key, r.session.session_id) for r in records]
