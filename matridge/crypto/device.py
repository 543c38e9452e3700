"""The gateway's Matrix login as one of the user's devices, for end-to-end
encryption: its keys on the homeserver, the device lists of the users it
shares rooms with, Olm to other devices, and the to-device messages a
``/sync`` batch brings (room keys, forwarded keys, withheld notices,
dummies).

Everything it keeps goes through the user's :class:`KeyStore`. Network
calls go through anything with ``MatrixClient.request``'s shape
(:class:`KeysApi`). Nothing here logs a key or a plaintext: log lines name
users, devices, event types and reasons only.

"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .device_keys import (
    MEGOLM_ALGORITHM,
    OLM_ALGORITHM,
    ONE_TIME_KEY_ALGORITHM,
    DeviceKeysError,
    checked_device_keys,
    checked_one_time_key,
    curve25519_of,
    ed25519_of,
)
from .primitives import (
    OLM_PRE_KEY,
    CryptoError,
    MegolmInbound,
    OlmAccount,
    OlmMessage,
    OlmSession,
    canonical_json,
)
from .store import InboundGroupRecord, KeyStore

log = logging.getLogger(__name__)

# Clear to-device messages handed on (verification requests and the
# like); room keys and secrets are only taken over Olm.
CLEAR_MESSAGE_PREFIXES = ("m.key.verification.", "m.room_key_request")

# An m.dummy to the same device at most this often: a device that keeps
# sending undecryptable messages must not make us claim its keys in a loop.
DUMMY_INTERVAL_S = 3600.0


class KeysApi(Protocol):
    """The one MatrixClient call the device needs."""

    async def request(
        self,
        method: Literal["GET", "POST", "PUT", "DELETE"],
        path: str,
        *segments: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class ForwardedRoomKey:
    """What an ``m.forwarded_room_key`` offers, for the caller to judge
    (the device accepts it only if ``accept_forwarded`` says so)."""

    from_user: str  # who forwarded it (checked by Olm)
    from_sender_key: str  # the forwarding device's Curve25519 key
    room_id: str
    sender_key: str  # the session's original sender, as claimed
    session_id: str


@dataclass(slots=True)
class ToDeviceResult:
    """What one batch's to-device messages did."""

    room_keys: list[tuple[str, str, str]] = field(default_factory=list)
    """(room id, sender key, session id) of Megolm sessions stored."""
    withheld: list[tuple[str, str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """One reason per event not used (no key material in it)."""
    wedged: set[tuple[str, str]] = field(default_factory=set)
    """(user id, Curve25519 key) of devices whose Olm message did not
    decrypt: :meth:`Device.unwedge` sends them an m.dummy on a new session."""
    messages: list[ToDeviceMessage] = field(default_factory=list)
    """The other messages (verification, secrets, key requests), for the
    handlers the caller has, after the store committed."""


@dataclass(frozen=True, slots=True)
class ToDeviceMessage:
    """A to-device message that carries no room key: its type and content,
    its sender, and whether it came over Olm. For an Olm message the
    sending device is known and checked (``sender_device``, its Ed25519
    key ``sender_ed25519``); for a clear one ``sender_device`` is only what
    the content claims (``from_device``), and ``sender_ed25519`` is None."""

    type: str
    sender: str
    content: Mapping[str, Any]
    encrypted: bool
    sender_device: str | None
    sender_ed25519: str | None = None


class _Refused(Exception):
    """One to-device event is not used; the message says why."""


def _refuse(reason: str) -> _Refused:
    return _Refused(reason)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Device:
    """One Matrix account's device, as far as encryption goes."""

    def __init__(
        self,
        api: KeysApi,
        store: KeyStore,
        user_id: str,
        device_id: str,
        *,
        accept_forwarded: Callable[[ForwardedRoomKey], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self.store = store
        self.user_id = user_id
        self.device_id = device_id
        # Judges forwarded room keys; whoever drives the device may set it.
        self.accept_forwarded = accept_forwarded or (lambda _key: False)
        self._clock = clock
        self._last_dummy: dict[tuple[str, str], float] = {}
        # Moves whenever a device list may have changed (tracked, marked
        # outdated, forgotten or fetched): what was judged from the lists
        # before it moved is stale.
        self.lists_version = 0
        if store.account() is None:
            with store.transaction():
                store.save_account(OlmAccount())

    def __repr__(self) -> str:
        return f"<Device {self.user_id} {self.device_id}>"

    # The account is read from the store at each use, so an operation that
    # rolled back never leaves a newer account in memory than on disk.
    def _account(self) -> OlmAccount:
        account = self.store.account()
        if account is None:
            raise CryptoError("the key store lost the Olm account")
        return account

    @property
    def curve25519(self) -> str:
        return self._account().curve25519

    @property
    def ed25519(self) -> str:
        return self._account().ed25519

    # -- our keys on the homeserver ------------------------------------------

    @property
    def one_time_key_target(self) -> int:
        """How many one-time keys the server should hold: half of what the
        account can keep, so keys claimed while we are offline never wipe
        out the ones we still hold the secrets of."""
        return self._account().max_one_time_keys // 2

    async def upload_keys(self) -> dict[str, int]:
        """Uploads the device keys (once), tops the one-time keys up to the
        target, and a fallback key if none was ever made. Returns the
        server's one-time key counts."""
        counts = await self._upload({})
        return await self.replenish(counts, None)

    async def replenish(
        self,
        one_time_key_counts: Mapping[str, int],
        unused_fallback_key_types: Iterable[str] | None,
    ) -> dict[str, int]:
        """What a ``/sync`` batch reports: ``device_one_time_keys_count`` and
        ``device_unused_fallback_key_types`` (None when absent). Uploads
        what is missing; returns the server's counts afterwards."""
        account = self._account()
        have = int(one_time_key_counts.get(ONE_TIME_KEY_ALGORITHM, 0))
        unpublished = len(account.one_time_keys)
        missing = self.one_time_key_target - have - unpublished
        changed = False
        if missing > 0:
            account.generate_one_time_keys(missing)
            changed = True
        need_fallback = (
            unused_fallback_key_types is not None
            and ONE_TIME_KEY_ALGORITHM not in set(unused_fallback_key_types)
        ) or (
            unused_fallback_key_types is None
            and self.store.get_json("fallback_key_made") is None
        )
        if need_fallback and not account.fallback_key:
            account.generate_fallback_key()
            changed = True
        if changed:
            # Kept before they are published: a published key whose secret
            # was lost would make the sender's messages undecryptable.
            with self.store.transaction():
                self.store.save_account(account)
                if need_fallback:
                    self.store.put_json("fallback_key_made", True)
        if (
            not account.one_time_keys
            and not account.fallback_key
            and (self.store.get_json("device_keys_uploaded"))
        ):
            return dict(one_time_key_counts)
        return await self._upload({})

    async def _upload(self, extra: dict[str, Any]) -> dict[str, int]:
        """One ``/keys/upload`` with everything unpublished (and the device
        keys the first time); marks it published once the server said so."""
        account = self._account()
        body = dict(extra)
        first = not self.store.get_json("device_keys_uploaded")
        if first:
            body["device_keys"] = account.device_keys(self.user_id, self.device_id)
        otks = account.signed_one_time_keys(self.user_id, self.device_id)
        if otks:
            body["one_time_keys"] = otks
        fallback = account.signed_fallback_keys(self.user_id, self.device_id)
        if fallback:
            body["fallback_keys"] = fallback
        res = await self._api.request(
            "POST", "/_matrix/client/v3/keys/upload", body=body
        )
        if first or otks or fallback:
            account.mark_keys_as_published()
            with self.store.transaction():
                self.store.save_account(account)
                self.store.put_json("device_keys_uploaded", True)
            log.debug(
                "uploaded keys for %s: %d one-time, %d fallback, device keys %s",
                self.device_id,
                len(otks),
                len(fallback),
                first,
            )
        counts = res.get("one_time_key_counts") or {}
        return {k: int(v) for k, v in counts.items() if isinstance(v, int)}

    # -- device lists ----------------------------------------------------------

    def track(self, users: Iterable[str]) -> None:
        """Starts tracking users (members of encrypted rooms); their lists
        are fetched by the next :meth:`refresh_devices`."""
        with self.store.transaction():
            self.store.track_users(users)
        self.lists_version += 1

    def devices_changed(self, changed: Iterable[str], left: Iterable[str]) -> None:
        """A batch's ``device_lists``: changed users are queried again,
        users we no longer share a room with are forgotten."""
        with self.store.transaction():
            self.store.mark_outdated(changed)
            self.store.untrack_users(left)
        self.lists_version += 1

    async def refresh_own_devices(self) -> None:
        """Queries the user's own devices and identity now (verification,
        secrets and the key backup are judged on them, fresh)."""
        own = [self.user_id]
        # One commit; what was judged from the lists stays good until the
        # fetch changes them (refresh_devices moves lists_version then).
        with self.store.transaction():
            self.store.track_users(own)
            self.store.mark_outdated(own)
        await self.refresh_devices()

    async def refresh_devices(self) -> set[str]:
        """Queries the outdated tracked users' devices; keeps only devices
        whose keys check out, and the user's cross-signing keys for later.
        Returns the users brought up to date."""
        outdated = [u for u, old in self.store.tracked_users().items() if old]
        if not outdated:
            return set()
        res = await self._api.request(
            "POST",
            "/_matrix/client/v3/keys/query",
            body={"device_keys": {u: [] for u in outdated}},
        )
        listed = res.get("device_keys") or {}
        done: set[str] = set()
        with self.store.transaction():
            for user_id in outdated:
                devices = listed.get(user_id)
                if not isinstance(devices, Mapping):
                    continue  # in "failures", or not answered: still outdated
                self.store.replace_devices(user_id, self._checked(user_id, devices))
                self.store.put_json(
                    "cross_signing\0" + user_id,
                    {
                        kind: res[kind][user_id]
                        for kind in (
                            "master_keys",
                            "self_signing_keys",
                            "user_signing_keys",
                        )
                        if isinstance(res.get(kind), Mapping) and user_id in res[kind]
                    }
                    or None,
                )
                done.add(user_id)
        if done:
            self.lists_version += 1
        return done

    def _checked(
        self, user_id: str, devices: Mapping[str, Any]
    ) -> dict[str, dict[str, Any]]:
        known = self.store.devices(user_id)
        out: dict[str, dict[str, Any]] = {}
        for device_id, keys in devices.items():
            try:
                checked = checked_device_keys(user_id, device_id, keys)
            except DeviceKeysError as e:
                log.warning("ignoring a device of %s: %s", user_id, e)
                continue
            old = known.get(device_id)
            if old is not None and ed25519_of(old) != ed25519_of(checked):
                # The spec: a device's Ed25519 key never changes; a new one
                # under the same id is an attack or a bug, keep the old.
                log.warning(
                    "%s %s changed its Ed25519 key: ignored", user_id, device_id
                )
                out[device_id] = old
                continue
            out[device_id] = checked
        return out

    def devices(self, user_id: str) -> dict[str, dict[str, Any]]:
        """The checked device list of a user (device id -> device keys)."""
        return self.store.devices(user_id)

    def cross_signing_keys(self, user_id: str) -> dict[str, Any]:
        """The cross-signing keys ``/keys/query`` last returned for a user,
        kept as they came (not verified yet)."""
        return dict(self.store.get_json("cross_signing\0" + user_id) or {})

    def _device_by_curve(
        self, user_id: str, curve25519: str
    ) -> tuple[str, dict[str, Any]] | None:
        for device_id, keys in self.store.devices(user_id).items():
            if curve25519_of(keys) == curve25519:
                return device_id, keys
        return None

    # -- Olm to other devices ----------------------------------------------------

    async def claim_and_encrypt(
        self,
        recipients: Iterable[tuple[str, str]],
        event_type: str,
        content: Mapping[str, Any],
        *,
        new_session: bool = False,
    ) -> set[tuple[str, str]]:
        """Sends ``content`` as an Olm-encrypted to-device event of
        ``event_type`` to each (user id, device id) in the device lists,
        claiming one-time keys for devices without an Olm session (or for
        all, with ``new_session``). Returns the devices it was sent to;
        unknown devices and devices without a claimable key are left out."""
        targets: dict[tuple[str, str], dict[str, Any]] = {}
        for user_id, device_id in recipients:
            keys = self.store.devices(user_id).get(device_id)
            if keys is None:
                log.info("no keys known for %s %s: not sent", user_id, device_id)
                continue
            targets[(user_id, device_id)] = keys
        if not targets:
            return set()
        sessions: dict[tuple[str, str], OlmSession] = {}
        to_claim: dict[str, dict[str, str]] = {}
        for (user_id, device_id), keys in targets.items():
            if new_session or not self.store.olm_sessions(curve25519_of(keys)):
                to_claim.setdefault(user_id, {})[device_id] = ONE_TIME_KEY_ALGORITHM
        claimed: dict[str, Any] = {}
        if to_claim:
            res = await self._api.request(
                "POST",
                "/_matrix/client/v3/keys/claim",
                body={"one_time_keys": to_claim},
            )
            claimed = res.get("one_time_keys") or {}
        # From here to the store commit nothing awaits: the account and the
        # sessions are read after the claim, so a batch processed meanwhile
        # (which moves their ratchets) is never overwritten with older state.
        account = self._account()
        for (user_id, device_id), keys in targets.items():
            if device_id in to_claim.get(user_id, {}):
                continue
            known = self.store.olm_sessions(curve25519_of(keys))
            if known:
                sessions[(user_id, device_id)] = known[0]
        if to_claim:
            for user_id, wanted in to_claim.items():
                for device_id in wanted:
                    keys = targets[(user_id, device_id)]
                    try:
                        one_time_key = checked_one_time_key(
                            user_id,
                            keys,
                            (claimed.get(user_id) or {}).get(device_id) or {},
                        )
                        sessions[(user_id, device_id)] = (
                            account.create_outbound_session(
                                curve25519_of(keys), one_time_key
                            )
                        )
                    except CryptoError as e:
                        log.info("no Olm session with %s %s: %s", user_id, device_id, e)
        messages: dict[str, dict[str, Any]] = {}
        for (user_id, device_id), session in sessions.items():
            keys = targets[(user_id, device_id)]
            payload = {
                "type": event_type,
                "content": dict(content),
                "sender": self.user_id,
                "sender_device": self.device_id,
                "recipient": user_id,
                "recipient_keys": {"ed25519": ed25519_of(keys)},
                "keys": {"ed25519": account.ed25519},
            }
            ciphertext = session.encrypt(canonical_json(payload))
            messages.setdefault(user_id, {})[device_id] = {
                "algorithm": OLM_ALGORITHM,
                "sender_key": account.curve25519,
                "ciphertext": {curve25519_of(keys): ciphertext.to_json()},
            }
        if not messages:
            return set()
        # The ratchets moved: kept before sending, so a crash after the send
        # never reuses a message key.
        with self.store.transaction():
            now = _now_ms()
            for (user_id, device_id), session in sessions.items():
                self.store.save_olm_session(
                    curve25519_of(targets[(user_id, device_id)]), session, now
                )
        await self.send_to_device("m.room.encrypted", messages, uuid.uuid4().hex)
        return set(sessions)

    async def send_to_device(
        self, event_type: str, messages: dict[str, dict[str, Any]], txn_id: str
    ) -> None:
        """One ``/sendToDevice`` (user id -> device id -> content)."""
        await self._api.request(
            "PUT",
            "/_matrix/client/v3/sendToDevice/{}/{}",
            event_type,
            txn_id,
            body={"messages": messages},
        )

    async def unwedge(self, wedged: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Sends an ``m.dummy`` on a new Olm session to devices whose Olm
        messages did not decrypt (:attr:`ToDeviceResult.wedged`), at most
        once per :data:`DUMMY_INTERVAL_S` per device. Returns those sent to."""
        now = self._clock()
        recipients: list[tuple[str, str]] = []
        for user_id, curve in wedged:
            last = self._last_dummy.get((user_id, curve))
            if last is not None and now - last < DUMMY_INTERVAL_S:
                continue
            found = self._device_by_curve(user_id, curve)
            if found is None:
                continue
            self._last_dummy[(user_id, curve)] = now
            recipients.append((user_id, found[0]))
        if not recipients:
            return set()
        return await self.claim_and_encrypt(recipients, "m.dummy", {}, new_session=True)

    # -- to-device messages ---------------------------------------------------

    async def track_senders(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Before :meth:`process_to_device`: the senders of encrypted
        to-device events are tracked and their device lists brought up to
        date, since each decrypted message is checked against them."""
        senders = {
            str(e["sender"])
            for e in events
            if e.get("type") == "m.room.encrypted" and isinstance(e.get("sender"), str)
        }
        tracked = self.store.tracked_users()
        new = senders - tracked.keys()
        if new:
            self.track(new)
        if new or any(tracked.get(u) for u in senders):
            await self.refresh_devices()

    def process_to_device(self, events: Iterable[Mapping[str, Any]]) -> ToDeviceResult:
        """Handles a batch's ``to_device.events`` in one store transaction
        (joining the caller's, if any, so the caller can save the sync token
        in it). One bad event never stops the others."""
        result = ToDeviceResult()
        with self.store.transaction():
            account = self._account()
            for event in events:
                try:
                    self._one(account, event, result)
                except _Refused as e:
                    result.refused.append(str(e))
                    log.info(
                        "to-device %s from %s not used: %s",
                        event.get("type"),
                        event.get("sender"),
                        e,
                    )
                except (CryptoError, KeyError, TypeError, ValueError) as e:
                    reason = f"{type(e).__name__}: {e}"
                    result.refused.append(reason)
                    log.info(
                        "to-device %s from %s not used: %s",
                        event.get("type"),
                        event.get("sender"),
                        reason,
                    )
            self.store.save_account(account)
        return result

    def _one(
        self, account: OlmAccount, event: Mapping[str, Any], result: ToDeviceResult
    ) -> None:
        kind, sender = event.get("type"), event.get("sender")
        content = event.get("content")
        if not isinstance(sender, str) or not isinstance(content, Mapping):
            raise _refuse("no sender or content")
        if kind == "m.room_key.withheld":
            self._withheld(sender, content, result)
        elif kind == "m.room.encrypted":
            self._encrypted(account, sender, content, result)
        elif isinstance(kind, str) and kind.startswith(CLEAR_MESSAGE_PREFIXES):
            device = content.get("from_device")
            result.messages.append(
                ToDeviceMessage(
                    kind,
                    sender,
                    content,
                    False,
                    device if isinstance(device, str) else None,
                )
            )
        else:
            # m.room_key and friends are only valid inside Olm.
            raise _refuse(f"unencrypted {kind} ignored")

    def _encrypted(
        self,
        account: OlmAccount,
        sender: str,
        content: Mapping[str, Any],
        result: ToDeviceResult,
    ) -> None:
        if content.get("algorithm") != OLM_ALGORITHM:
            raise _refuse(f"algorithm {content.get('algorithm')!r} is not Olm")
        sender_key = content.get("sender_key")
        ciphertexts = content.get("ciphertext")
        if not isinstance(sender_key, str) or not isinstance(ciphertexts, Mapping):
            raise _refuse("no sender_key or ciphertext")
        mine = ciphertexts.get(account.curve25519)
        if not isinstance(mine, Mapping):
            raise _refuse("not encrypted for this device")
        message = OlmMessage.from_json(mine)
        plaintext = self._olm_decrypt(account, sender, sender_key, message, result)
        try:
            payload = json.loads(plaintext)
        except ValueError:
            raise _refuse("the plaintext is not JSON") from None
        if not isinstance(payload, dict):
            raise _refuse("the plaintext is not an object")
        sender_ed25519 = self._check_payload(account, sender, sender_key, payload)
        inner_type = payload.get("type")
        inner = payload.get("content")
        if not isinstance(inner, Mapping):
            raise _refuse("the plaintext has no content")
        if inner_type == "m.room_key":
            self._room_key(sender_key, sender_ed25519, inner, result)
        elif inner_type == "m.forwarded_room_key":
            self._forwarded(sender, sender_key, inner, result)
        elif inner_type == "m.dummy":
            pass  # its work, a fresh Olm session, is done
        elif isinstance(inner_type, str):
            found = self._device_by_curve(sender, sender_key)
            result.messages.append(
                ToDeviceMessage(
                    inner_type,
                    sender,
                    inner,
                    True,
                    found[0] if found else None,
                    sender_ed25519,
                )
            )
        else:
            raise _refuse("the plaintext has no type")

    def _olm_decrypt(
        self,
        account: OlmAccount,
        sender: str,
        sender_key: str,
        message: OlmMessage,
        result: ToDeviceResult,
    ) -> bytes:
        sessions = self.store.olm_sessions(sender_key)
        for session in sessions:
            if message.type == OLM_PRE_KEY and not session.matches(message):
                continue
            try:
                plaintext = session.decrypt(message)
            except CryptoError:
                if message.type == OLM_PRE_KEY:
                    break  # its own session refuses it: tampered
                continue
            self.store.save_olm_session(sender_key, session, _now_ms())
            return plaintext
        else:
            if message.type == OLM_PRE_KEY:
                try:
                    session, plaintext = account.create_inbound_session(
                        sender_key, message
                    )
                except CryptoError:
                    result.wedged.add((sender, sender_key))
                    raise _refuse("a pre-key message that starts no session") from None
                self.store.save_olm_session(sender_key, session, _now_ms())
                return plaintext
        result.wedged.add((sender, sender_key))
        raise _refuse("an Olm message no session decrypts")

    def _check_payload(
        self,
        account: OlmAccount,
        sender: str,
        sender_key: str,
        payload: Mapping[str, Any],
    ) -> str:
        """The spec's checks of a decrypted Olm payload; returns the sending
        device's Ed25519 key."""
        if payload.get("sender") != sender:
            raise _refuse("the plaintext names another sender")
        if payload.get("recipient") != self.user_id:
            raise _refuse("the plaintext is addressed to another user")
        if (payload.get("recipient_keys") or {}).get("ed25519") != account.ed25519:
            raise _refuse("the plaintext is addressed to another device")
        claimed = (payload.get("keys") or {}).get("ed25519")
        found = self._device_by_curve(sender, sender_key)
        if found is None:
            raise _refuse("the sending device is not in the sender's device list")
        if claimed != ed25519_of(found[1]):
            raise _refuse("the plaintext's Ed25519 key is not the sending device's")
        return str(claimed)

    def _room_key(
        self,
        sender_key: str,
        sender_ed25519: str,
        content: Mapping[str, Any],
        result: ToDeviceResult,
    ) -> None:
        if content.get("algorithm") != MEGOLM_ALGORITHM:
            raise _refuse(f"room key algorithm {content.get('algorithm')!r}")
        room_id, session_id = content.get("room_id"), content.get("session_id")
        key = content.get("session_key")
        if not (
            isinstance(room_id, str)
            and isinstance(session_id, str)
            and isinstance(key, str)
        ):
            raise _refuse("the room key lacks room_id, session_id or session_key")
        session = MegolmInbound.from_session_key(key)
        if session.session_id != session_id:
            raise _refuse("the room key's session_id is not its key's")
        self._store_group_session(
            InboundGroupRecord(room_id, sender_key, session, sender_ed25519, False),
            result,
        )

    def _store_group_session(
        self, record: InboundGroupRecord, result: ToDeviceResult
    ) -> None:
        old = self.store.inbound_group_session(
            record.room_id, record.sender_key, record.session.session_id
        )
        # A key from a later index must not replace one that decrypts more.
        if (
            old is None
            or old.session.first_known_index > record.session.first_known_index
        ):
            self.store.save_inbound_group_session(record)
        result.room_keys.append(
            (record.room_id, record.sender_key, record.session.session_id)
        )

    def _forwarded(
        self,
        sender: str,
        forwarder_key: str,
        content: Mapping[str, Any],
        result: ToDeviceResult,
    ) -> None:
        fields = {
            name: content.get(name)
            for name in (
                "room_id",
                "sender_key",
                "session_id",
                "session_key",
                "sender_claimed_ed25519_key",
            )
        }
        chain = content.get("forwarding_curve25519_key_chain", [])
        if (
            content.get("algorithm") != MEGOLM_ALGORITHM
            or not all(isinstance(v, str) for v in fields.values())
            or not isinstance(chain, list)
            or not all(isinstance(key, str) for key in chain)
        ):
            raise _refuse("malformed forwarded room key")
        offer = ForwardedRoomKey(
            sender,
            forwarder_key,
            str(fields["room_id"]),
            str(fields["sender_key"]),
            str(fields["session_id"]),
        )
        if not self.accept_forwarded(offer):
            raise _refuse("a forwarded room key nobody asked for")
        session = MegolmInbound.from_export(str(fields["session_key"]))
        if session.session_id != offer.session_id:
            raise _refuse("the forwarded key's session_id is not its key's")
        self._store_group_session(
            InboundGroupRecord(
                offer.room_id,
                offer.sender_key,
                session,
                str(fields["sender_claimed_ed25519_key"]),
                True,
                (*chain, forwarder_key),
            ),
            result,
        )

    def _withheld(
        self, sender: str, content: Mapping[str, Any], result: ToDeviceResult
    ) -> None:
        room_id, session_id = content.get("room_id"), content.get("session_id")
        sender_key, code = content.get("sender_key"), content.get("code")
        if not (
            isinstance(room_id, str)
            and isinstance(session_id, str)
            and isinstance(sender_key, str)
            and isinstance(code, str)
        ):
            raise _refuse("a withheld notice without room, session, sender key or code")
        reason = content.get("reason")
        self.store.put_json(
            _withheld_name(room_id, sender_key, session_id),
            {
                "code": code,
                "reason": reason if isinstance(reason, str) else None,
                "from": sender,
            },
        )
        result.withheld.append((room_id, sender_key, session_id))

    def withheld(
        self, room_id: str, sender_key: str, session_id: str
    ) -> tuple[str, str | None] | None:
        """(code, reason) of the withheld notice for a session, if one came:
        what the placeholder of an undecryptable event can say."""
        found = self.store.get_json(_withheld_name(room_id, sender_key, session_id))
        if not isinstance(found, dict):
            return None
        return str(found["code"]), found.get("reason")


def _withheld_name(room_id: str, sender_key: str, session_id: str) -> str:
    return "\0".join(("withheld", room_id, sender_key, session_id))
