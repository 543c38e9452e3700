"""Megolm in rooms: decrypting the ``m.room.encrypted`` events of a room,
and encrypting what the gateway sends into one, with our outbound session
shared only with the devices it should reach.

Sharing follows "exclude insecure devices" (MSC4153): a room key goes to
the devices whose owner cross-signed them; every other device gets an
``m.room_key.withheld`` with code ``m.unverified``, so its user sees why it
cannot read. ``share_with_unverified`` (an admin option) restores sharing
with every device.

A session is replaced (rotated) when the room's ``m.room.encryption``
settings say (``rotation_period_msgs``, ``rotation_period_ms``), and when
a device it was shared with is no longer among the recipients (its user
left, or the device was removed), so that they cannot read what follows.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .cross_signing import device_cross_signed
from .device import Device
from .device_keys import MEGOLM_ALGORITHM
from .primitives import (
    CryptoError,
    MegolmInbound,
    MegolmOutbound,
    UnknownMessageIndex,
    canonical_json,
)
from .store import InboundGroupRecord, OutboundGroupRecord

log = logging.getLogger(__name__)

# The spec's defaults when m.room.encryption gives no rotation settings.
DEFAULT_ROTATION_MS = 604_800_000
DEFAULT_ROTATION_MSGS = 100

UNVERIFIED_REASON = (
    "The sender shares keys only with devices their owner has verified; "
    "verify this device to read new messages."
)


class Undecryptable(Exception):
    """An encrypted event that cannot be read (now): ``str()`` is a reason
    for the user. ``waiting`` is True when a key may still arrive (the
    event is then worth decrypting again), with the session it needs."""

    def __init__(
        self,
        reason: str,
        *,
        waiting: bool = False,
        session: tuple[str, str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.waiting = waiting
        self.session = session  # (room id, sender key, session id)


@dataclass(frozen=True, slots=True)
class RotationSettings:
    """When a room's outbound session is replaced."""

    period_ms: int = DEFAULT_ROTATION_MS
    period_msgs: int = DEFAULT_ROTATION_MSGS

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> RotationSettings:
        """From an ``m.room.encryption`` content; bad values are the defaults."""

        def positive(name: str, default: int) -> int:
            value = content.get(name)
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
            return int(value) if ok else default  # type: ignore[arg-type]

        return cls(
            positive("rotation_period_ms", DEFAULT_ROTATION_MS),
            positive("rotation_period_msgs", DEFAULT_ROTATION_MSGS),
        )


@dataclass(frozen=True, slots=True)
class _Recipients:
    """A room's devices as last judged, and what they were judged from."""

    members: frozenset[str]
    lists_version: int
    trusted: set[tuple[str, str]]
    untrusted: set[tuple[str, str]]


class RoomCrypto:
    """One account's Megolm sessions, on top of its :class:`Device`."""

    def __init__(self, device: Device, *, share_with_unverified: bool = False) -> None:
        self.device = device
        self.store = device.store
        self._share_with_unverified = share_with_unverified
        self._recipients_of: dict[str, _Recipients] = {}

    # -- reading ---------------------------------------------------------------

    def decrypt(
        self, room_id: str, event_id: str, ts: int, content: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The plaintext payload (``type``, ``content``, ``room_id``) of an
        ``m.room.encrypted`` event's content, or :class:`Undecryptable`.
        Records the message index used, so that a replay (another event at
        an index already used) is refused; the caller's store transaction,
        if any, takes the record."""
        if content.get("algorithm") != MEGOLM_ALGORITHM:
            raise Undecryptable(
                f"it uses the encryption algorithm {content.get('algorithm')!r}, "
                "which this gateway does not read"
            )
        sender_key = content.get("sender_key")
        session_id = content.get("session_id")
        ciphertext = content.get("ciphertext")
        if not (
            isinstance(sender_key, str)
            and isinstance(session_id, str)
            and isinstance(ciphertext, str)
        ):
            raise Undecryptable("the encrypted event is malformed")
        needed = (room_id, sender_key, session_id)
        record = self.store.inbound_group_session(room_id, sender_key, session_id)
        if record is None:
            withheld = self.device.withheld(room_id, sender_key, session_id)
            if withheld is not None:
                code, reason = withheld
                raise Undecryptable(
                    _withheld_sentence(code, reason), waiting=True, session=needed
                )
            raise Undecryptable(
                "its key has not reached this gateway yet; it is shown here "
                "as soon as the key comes",
                waiting=True,
                session=needed,
            )
        try:
            decrypted = record.session.decrypt(ciphertext)
        except UnknownMessageIndex:
            raise Undecryptable(
                "the key this gateway has starts after this message",
                waiting=True,
                session=needed,
            ) from None
        except CryptoError as e:
            raise Undecryptable(f"it does not decrypt ({e})") from None
        with self.store.transaction():
            fresh = self.store.remember_megolm_index(
                sender_key, session_id, decrypted.message_index, event_id, ts
            )
        if not fresh:
            raise Undecryptable(
                "it replays an earlier encrypted message (refused as a possible attack)"
            )
        try:
            payload = _json_object(decrypted.plaintext)
        except ValueError:
            raise Undecryptable("its decrypted content is not a JSON object") from None
        if payload.get("room_id", room_id) != room_id:
            raise Undecryptable("it was encrypted for another room")
        return payload

    # -- writing -----------------------------------------------------------------

    async def encrypt(
        self,
        room_id: str,
        event_type: str,
        content: Mapping[str, Any],
        members: Iterable[str],
        rotation: RotationSettings,
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content for an event of ``event_type``
        sent into ``room_id``, whose members (joined and invited) are
        ``members``. Shares the room key first with the devices that lack
        it, and tells the others it is withheld."""
        trusted, untrusted = await self._recipients(room_id, members)
        record = self._current_session(room_id, trusted | untrusted, rotation)
        record = await self._share(record, trusted, untrusted)
        payload = {"type": event_type, "content": dict(content), "room_id": room_id}
        session = record.session
        ciphertext = session.encrypt(canonical_json(payload))
        with self.store.transaction():
            # The ratchet moved: kept before the event leaves, so a crash
            # after the send never reuses a message index.
            self.store.save_outbound_group_session(record)
        out: dict[str, Any] = {
            "algorithm": MEGOLM_ALGORITHM,
            "sender_key": self.device.curve25519,
            "ciphertext": ciphertext,
            "session_id": session.session_id,
            "device_id": self.device.device_id,
        }
        relation = content.get("m.relates_to")
        if isinstance(relation, Mapping):
            # Kept in the clear too, so the server can aggregate relations.
            out["m.relates_to"] = dict(relation)
        return out

    def forget_session(self, room_id: str) -> None:
        """The next send into ``room_id`` starts a new session."""
        with self.store.transaction():
            self.store.drop_outbound_group_session(room_id)

    async def _recipients(
        self, room_id: str, members: Iterable[str]
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """(trusted, untrusted) devices of ``members``, but for ours. Judged
        again only when the members or a device list changed: each judgement
        reads every member's devices and checks two signatures per device."""
        users = frozenset(members)
        cached = self._recipients_of.get(room_id)
        if (
            cached is not None
            and cached.members == users
            and cached.lists_version == self.device.lists_version
        ):
            return cached.trusted, cached.untrusted
        trusted, untrusted = await self._judge(users)
        tracked = self.store.tracked_users()
        if not any(tracked.get(u) for u in users):  # all lists fetched
            self._recipients_of[room_id] = _Recipients(
                users, self.device.lists_version, trusted, untrusted
            )
        return trusted, untrusted

    async def _judge(
        self, users: frozenset[str]
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        tracked = self.store.tracked_users()
        new = users - tracked.keys()
        if new:
            self.device.track(new)
        if new or any(tracked.get(u) for u in users):
            await self.device.refresh_devices()
        trusted: set[tuple[str, str]] = set()
        untrusted: set[tuple[str, str]] = set()
        me = (self.device.user_id, self.device.device_id)
        for user_id in users:
            identity = self.device.cross_signing_keys(user_id)
            for device_id, keys in self.device.devices(user_id).items():
                if (user_id, device_id) == me:
                    continue
                if self._share_with_unverified or device_cross_signed(
                    user_id, identity, keys
                ):
                    trusted.add((user_id, device_id))
                else:
                    untrusted.add((user_id, device_id))
        return trusted, untrusted

    def _current_session(
        self,
        room_id: str,
        recipients: set[tuple[str, str]],
        rotation: RotationSettings,
    ) -> OutboundGroupRecord:
        record = self.store.outbound_group_session(room_id)
        reason = None
        if record is not None:
            age_ms = _now_ms() - record.created_ms
            gone = record.shared_with - recipients
            if record.session.message_index >= rotation.period_msgs:
                reason = "its message count"
            elif age_ms >= rotation.period_ms:
                reason = "its age"
            elif gone:
                reason = f"{len(gone)} device(s) it reached are no longer in the room"
        if record is not None and reason is None:
            return record
        if record is not None:
            log.info("rotating the Megolm session of %s: %s", room_id, reason)
            with self.store.transaction():
                self.store.put_json(
                    _told_name(room_id, record.session.session_id), None
                )
        session = MegolmOutbound()
        record = OutboundGroupRecord(room_id, session, _now_ms(), frozenset())
        ours = InboundGroupRecord(
            room_id,
            self.device.curve25519,
            MegolmInbound.from_session_key(session.session_key),
            self.device.ed25519,
            False,
        )
        with self.store.transaction():
            # Our own copy, so our messages read back in history.
            self.store.save_inbound_group_session(ours)
            self.store.save_outbound_group_session(record)
        return record

    async def _share(
        self,
        record: OutboundGroupRecord,
        trusted: set[tuple[str, str]],
        untrusted: set[tuple[str, str]],
    ) -> OutboundGroupRecord:
        session = record.session
        room_id = record.room_id
        lacking = trusted - record.shared_with
        reached: set[tuple[str, str]] = set()
        if lacking:
            reached = await self.device.claim_and_encrypt(
                sorted(lacking),
                "m.room_key",
                {
                    "algorithm": MEGOLM_ALGORITHM,
                    "room_id": room_id,
                    "session_id": session.session_id,
                    "session_key": session.session_key,
                },
            )
            if lacking - reached:
                log.info(
                    "room key of %s not delivered to %d device(s) without keys",
                    room_id,
                    len(lacking - reached),
                )
        # Told once per session; a device verified later is not in
        # shared_with, so it gets the key with the next message.
        told_name = _told_name(room_id, session.session_id)
        told_before: set[tuple[str, str]] = set()
        if untrusted - record.shared_with:  # the store is read only then
            told_before = {(u, d) for u, d in self.store.get_json(told_name) or []}
        told = untrusted - record.shared_with - told_before
        if told:
            await self._send_withheld(room_id, session.session_id, told)
        if not reached and not told:
            return record  # nothing new to keep: the send path writes once
        record = OutboundGroupRecord(
            room_id, session, record.created_ms, record.shared_with | reached
        )
        with self.store.transaction():
            self.store.save_outbound_group_session(record)
            if told:
                self.store.put_json(told_name, sorted(told_before | told))
        return record

    async def _send_withheld(
        self, room_id: str, session_id: str, devices: set[tuple[str, str]]
    ) -> None:
        content = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "session_id": session_id,
            "sender_key": self.device.curve25519,
            "from_device": self.device.device_id,
            "code": "m.unverified",
            "reason": UNVERIFIED_REASON,
        }
        messages: dict[str, dict[str, Any]] = {}
        for user_id, device_id in devices:
            messages.setdefault(user_id, {})[device_id] = content
        await self.device.send_to_device(
            "m.room_key.withheld", messages, uuid.uuid4().hex
        )


def _told_name(room_id: str, session_id: str) -> str:
    """The key store's list of the devices told a session is withheld."""
    return "\0".join(("withheld_told", room_id, session_id))


def _withheld_sentence(code: str, reason: str | None) -> str:
    why = {
        "m.unverified": (
            "the sender's device shares keys only with verified devices, and "
            "this gateway's device is not verified yet (send 'verify' to the "
            "gateway)"
        ),
        "m.blacklisted": "the sender's device has blocked this gateway's device",
        "m.unauthorised": "the sender's device does not allow this gateway to read it",
        "m.unavailable": "the key was asked for but is not available",
        "m.no_olm": "the sender's device could not set up encryption with this gateway",
    }.get(code, f"the sender's device withheld the key ({code})")
    return why + (f": {reason}" if reason and code not in ("m.unverified",) else "")


def _json_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value


def _now_ms() -> int:
    return int(time.time() * 1000)
