"""One session's end-to-end encryption: the gateway's Matrix login as a
device of the user's (matridge/crypto/), fed by the sync loop and used by
the inbound and outbound paths.

- At login the key store opens (a file per user under slidge's home
  directory, sealed with a random key kept in the user's slidge data) and
  the device's keys are uploaded.
- Each sync batch's device-list changes and to-device messages are
  processed before its timeline, and the key store committed before the
  batch's token can be saved: the homeserver deletes to-device messages
  once a sync uses the next token.
- Timeline and history events are decrypted before anything reads them;
  an event whose key has not come is shown as a placeholder, remembered in
  the key store, and corrected in place (XEP-0308) when the key arrives.
- What the user sends into an encrypted room is encrypted (outbound.py
  calls :meth:`Encryption.encrypt`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

from slixmpp.exceptions import XMPPError

from . import config, logsafety
from .crypto import cross_signing
from .crypto.device import Device, ForwardedRoomKey, ToDeviceMessage
from .crypto.device_keys import ONE_TIME_KEY_ALGORITHM
from .crypto.primitives import CryptoError
from .crypto.rooms import RoomCrypto, RotationSettings, Undecryptable
from .crypto.store import KeyStore, decode_store_key, new_store_key, remove_store
from .errors import matrix_errors
from .matrix import (
    Event,
    MatrixClient,
    MatrixError,
    NetworkError,
    SyncBatch,
    decrypted_event,
)
from .state import Bounded

log = logging.getLogger(__name__)

# Where the user's slidge data keeps the key store's key.
STORE_KEY = "crypto_store_key"
# The device the key store belongs to.
DEVICE_ID = "device_id"
# The key store's record of events waiting for a session's key.
_PENDING = "pending\0"

ENCRYPTION_EVENT = "m.room.encryption"
# How many placeholders' reasons are kept for their text.
PLACEHOLDER_REASONS = 2000

# Handles one to-device message that carries no room key.
ToDeviceHandler = Callable[[ToDeviceMessage], Awaitable[None]]
# Told the Megolm sessions a batch's to-device messages stored.
RoomKeysHandler = Callable[[list[tuple[str, str, str]]], Awaitable[None]]
# Looks for a missing Megolm session (room id, sender key, session id),
# stores it if found and says whether it did.
KeyFinder = Callable[[str, str, str], Awaitable[bool]]


class Encryption:
    """The end-to-end encryption of one account's session."""

    def __init__(self, matrix: MatrixClient, device: Device) -> None:
        self.matrix = matrix
        self.device = device
        device.accept_forwarded = self.accepts
        self.store = device.store
        self.rooms = RoomCrypto(
            device, share_with_unverified=config.SHARE_KEYS_WITH_UNVERIFIED_DEVICES
        )
        self._one_time_key_target = device.one_time_key_target
        self._handlers: dict[str, ToDeviceHandler] = {}
        self._key_finders: list[KeyFinder] = []
        self._room_key_handlers: list[RoomKeysHandler] = []
        self._forward_filters: list[Callable[[ForwardedRoomKey], bool]] = []
        self._on_close: list[Callable[[], None]] = []
        self._looking_for: set[tuple[str, str, str]] = set()
        self._spawn: Callable[[Coroutine[Any, Any, Any], str], object] | None = None
        self._show_late: (
            Callable[[str, list[str]], Coroutine[Any, Any, None]] | None
        ) = None
        self._members: dict[str, list[str]] = {}
        self._rotation: dict[str, RotationSettings] = {}
        # Why an event shown as a placeholder could not be read.
        self._why: Bounded[str, str] = Bounded(PLACEHOLDER_REASONS)

    @classmethod
    async def start(
        cls,
        matrix: MatrixClient,
        user_id: str,
        device_id: str,
        store_file: Path,
        saved: Mapping[str, Any],
        save: Callable[[dict[str, Any]], None],
    ) -> Encryption:
        """Opens the user's key store (its key in the user's slidge data,
        ``saved``, made and ``save``-d the first time) and uploads the
        device's keys."""
        key_text = saved.get(STORE_KEY)
        if not isinstance(key_text, str):
            # One left by a registration whose data is gone cannot open
            # without its key, and its device is not this one.
            if remove_store(store_file):
                log.warning("Removed a key store whose key is gone: %s", store_file)
            key_text = new_store_key()
            save({STORE_KEY: key_text})
        logsafety.remember(key_text)
        store = KeyStore.open(store_file, decode_store_key(key_text))
        owner = store.get_json(DEVICE_ID)
        if owner is not None and owner != device_id:
            # A new login (registered again) is a new device: the old
            # device's Olm account must not speak for it.
            log.warning("The key store was %s's; starting one for %s", owner, device_id)
            store.close()
            remove_store(store_file)
            store = KeyStore.open(store_file, decode_store_key(key_text))
        if owner != device_id:
            with store.transaction():
                store.put_json(DEVICE_ID, device_id)
        try:
            encryption = cls(matrix, Device(matrix, store, user_id, device_id))
            await encryption.device.upload_keys()
        except BaseException:
            store.close()
            raise
        return encryption

    def attach(
        self,
        spawn: Callable[[Coroutine[Any, Any, Any], str], object],
        show_late: Callable[[str, list[str]], Coroutine[Any, Any, None]],
    ) -> None:
        """How the session runs background work (its guarded tasks) and
        corrects the placeholders of events whose key came late."""
        self._spawn = spawn
        self._show_late = show_late

    def close(self) -> None:
        self.store.close()
        for closed in self._on_close:
            closed()

    # -- the sync batch, before its timeline -------------------------------------

    async def before_timeline(self, batch: SyncBatch) -> list[tuple[str, list[str]]]:
        """Device lists, to-device messages and key counts of a batch.
        Returns the events shown as placeholders whose key just came, as
        (room id, event ids), for :meth:`Session` to correct."""
        changed, left = batch.device_lists_changed, batch.device_lists_left
        if changed or left:
            self.device.devices_changed(changed, left)
        # Only rooms sent into have cached members and settings: the
        # events of the others are not looked at twice.
        for room in batch.rooms if self._members or self._rotation else ():
            room_id = room.room_id
            if room_id not in self._members and room_id not in self._rotation:
                continue
            if room.membership != "join":
                self._forget_room(room_id)
                continue
            changed_types = {e.type for e in room.state if e.is_state}
            changed_types.update(e.type for e in room.timeline if e.is_state)
            if "m.room.member" in changed_types:
                self._members.pop(room_id, None)
            if ENCRYPTION_EVENT in changed_types:
                self._rotation.pop(room_id, None)
        late: list[tuple[str, list[str]]] = []
        events = [e.source for e in batch.to_device]
        if events:
            try:
                await self.device.track_senders(events)
            except (MatrixError, NetworkError) as e:
                # Their messages are checked against what is known.
                log.info("Device lists of to-device senders not refreshed: %s", e)
            # Committed here, so before the batch's token can be saved.
            result = self.device.process_to_device(events)
            late = self._arrived(result.room_keys)
            if result.room_keys:
                for handler in self._room_key_handlers:
                    await _guarded(handler(result.room_keys), "new room keys")
            for message in result.messages:
                await self._dispatch(message)
            if result.wedged:
                try:
                    await self.device.unwedge(result.wedged)
                except (MatrixError, NetworkError, CryptoError) as e:
                    log.info("Could not repair an Olm session: %s", e)
        counts = batch.one_time_key_counts
        fallbacks = batch.unused_fallback_key_types
        if counts.get(ONE_TIME_KEY_ALGORITHM, 0) < self._one_time_key_target or (
            fallbacks is not None and ONE_TIME_KEY_ALGORITHM not in fallbacks
        ):
            try:
                await self.device.replenish(counts, fallbacks)
            except (MatrixError, NetworkError) as e:
                log.info("One-time keys not replenished (next batch retries): %s", e)
        return late

    # -- what part 2 (verification, backup, key requests) plugs in ----------------

    def on_close(self, closed: Callable[[], None]) -> None:
        """``closed`` is called once the store closed (logout): background
        work waiting for something to do ends then, not at its next turn."""
        self._on_close.append(closed)

    def on_room_keys(self, handler: RoomKeysHandler) -> None:
        """``handler`` gets the (room id, sender key, session id) of the
        Megolm sessions each batch's to-device messages stored."""
        self._room_key_handlers.append(handler)

    def on_missing_key(self, finder: KeyFinder) -> None:
        """``finder`` is asked, once per session, for a Megolm session an
        event needs; it stores the session if it can and says so."""
        self._key_finders.append(finder)

    def accept_forwarded(self, accepts: Callable[[ForwardedRoomKey], bool]) -> None:
        """A forwarded room key is kept when one of these accepts it."""
        self._forward_filters.append(accepts)

    def accepts(self, offer: ForwardedRoomKey) -> bool:
        # Without a filter, none: a key nobody asked for is never kept.
        return any(accepts(offer) for accepts in self._forward_filters)

    def on_to_device(self, kind: str, handler: ToDeviceHandler) -> None:
        """Hands the to-device messages of type ``kind`` (or, for a ``kind``
        ending in ".", of every type it begins) to ``handler``."""
        self._handlers[kind] = handler

    async def _dispatch(self, message: ToDeviceMessage) -> None:
        handler = self._handlers.get(message.type)
        if handler is None:
            prefix = message.type[: message.type.rfind(".") + 1]
            handler = self._handlers.get(prefix)
        if handler is None:
            log.info("to-device %s from %s not handled", message.type, message.sender)
            return
        try:
            await handler(message)
        except Exception:
            # One message's failure never costs the batch the others.
            log.exception("to-device %s from %s failed", message.type, message.sender)

    def _arrived(
        self, keys: Iterable[tuple[str, str, str]]
    ) -> list[tuple[str, list[str]]]:
        late: list[tuple[str, list[str]]] = []
        for room_id, sender_key, session_id in keys:
            name = _pending_name(room_id, sender_key, session_id)
            waiting = self.store.get_json(name)
            if waiting:
                late.append((room_id, [str(e) for e in waiting]))
                with self.store.transaction():
                    self.store.put_json(name, None)
        return late

    def _forget_room(self, room_id: str) -> None:
        self._members.pop(room_id, None)
        self._rotation.pop(room_id, None)

    # -- reading -------------------------------------------------------------------

    def readable(self, room_id: str, events: Iterable[Event]) -> list[Event]:
        """``events`` with each ``m.room.encrypted`` one decrypted; one that
        cannot be read stays as it is (a placeholder shows it) and, if its
        key may still come, is remembered to be corrected then."""
        return self._readable(room_id, events, look=True, wait=True)

    def _readable(
        self, room_id: str, events: Iterable[Event], *, look: bool, wait: bool
    ) -> list[Event]:
        # The decrypted indices are committed once for the lot, not per
        # event; a lot without encrypted events does not open the store.
        events = list(events)
        if not any(e.encrypted for e in events):
            return events
        with self.store.transaction():
            return [
                self.readable_one(room_id, e, look=look, wait=wait)
                if e.encrypted
                else e
                for e in events
            ]

    def readable_one(
        self, room_id: str, event: Event, look: bool = True, wait: bool = True
    ) -> Event:
        """One event decrypted if it can be. If its key may still come, it
        is remembered to be corrected then (``wait``), and the key looked
        for in the background (``look``) by the finders part 2 plugs in."""
        if not event.encrypted or event.event_id is None:
            return event
        try:
            payload = self.rooms.decrypt(
                room_id, event.event_id, event.origin_server_ts, event.content
            )
        except Undecryptable as e:
            self._why.put(event.event_id, str(e))
            log.info("Could not decrypt %s in %s: %s", event.event_id, room_id, e)
            if e.waiting and e.session is not None and wait:
                self._wait_for(e.session, event.event_id)
                if look:
                    self._look_for(e.session)
            return event
        except CryptoError as e:
            log.warning("Could not decrypt %s in %s: %s", event.event_id, room_id, e)
            self._why.put(event.event_id, f"it does not decrypt ({e})")
            return event
        return decrypted_event(event, payload, room_id)

    async def readable_now(self, room_id: str, events: Iterable[Event]) -> list[Event]:
        """Like :meth:`readable`, for history: the keys it lacks are looked
        for first (in the key backup, say), so that it is shown readable
        rather than corrected later."""
        out = self._readable(room_id, events, look=True, wait=False)
        missing = {
            s for e in out if e.encrypted and (s := _session_of(room_id, e)) is not None
        }
        found = [s for s in missing if await self._find(s)]
        # Live events that waited for these keys are corrected too.
        for late_room, event_ids in self._arrived(found):
            if self._show_late is not None and self._spawn is not None:
                self._spawn(self._show_late(late_room, event_ids), "late keys")
        return self._readable(room_id, out, look=False, wait=True)

    def _look_for(self, session: tuple[str, str, str]) -> None:
        if not self._key_finders or self._spawn is None:
            return
        if session in self._looking_for:
            return
        self._looking_for.add(session)
        self._spawn(self._found_late(session), "looking for a room key")

    async def _found_late(self, session: tuple[str, str, str]) -> None:
        try:
            if not await self._find(session):
                return
        finally:
            self._looking_for.discard(session)
        for room_id, event_ids in self._arrived([session]):
            if self._show_late is not None:
                await self._show_late(room_id, event_ids)

    async def _find(self, session: tuple[str, str, str]) -> bool:
        for finder in self._key_finders:
            try:
                if await finder(*session):
                    return True
            except Exception:
                log.exception("Looking for a room key of %s failed", session[0])
        return False

    def placeholder(self, event: Event) -> str:
        """The text shown instead of an encrypted event that was not read."""
        why = self._why.get(event.event_id or "") or "it could not be decrypted"
        return f"🔒 This encrypted message cannot be shown yet: {why}."

    def _wait_for(self, session: tuple[str, str, str], event_id: str) -> None:
        name = _pending_name(*session)
        waiting = list(self.store.get_json(name) or [])
        if event_id in waiting:
            return
        waiting.append(event_id)
        with self.store.transaction():
            self.store.put_json(name, waiting[-500:])

    # -- writing ---------------------------------------------------------------------

    async def encrypt(
        self, room_id: str, event_type: str, content: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``m.room.encrypted`` content of an event for ``room_id``."""
        # Network failures go up to Outbound, which retries the send.
        members = await self._room_members(room_id)
        rotation = await self._rotation_settings(room_id)
        try:
            return await self.rooms.encrypt(
                room_id, event_type, content, members, rotation
            )
        except CryptoError as e:
            log.warning("Could not encrypt for %s: %s", room_id, e)
            raise XMPPError(
                "internal-server-error",
                f"This message could not be encrypted for the Matrix room ({e}); "
                "it was not sent.",
            ) from None

    async def can_encrypt_for(self, user_id: str) -> bool:
        """Whether ``user_id`` has a device with published keys, so that a
        new direct chat with them can be encrypted."""
        self.device.track([user_id])
        await self.device.refresh_devices()
        return bool(self.device.devices(user_id))

    async def _room_members(self, room_id: str) -> list[str]:
        """Joined and invited members (those who can read what is sent)."""
        cached = self._members.get(room_id)
        if cached is not None:
            return cached
        events = await self.matrix.members(room_id, not_membership="leave")
        members = [
            str(e["state_key"])
            for e in events
            if isinstance(e.get("state_key"), str)
            and (e.get("content") or {}).get("membership") in ("join", "invite")
        ]
        self._members[room_id] = members
        return members

    async def _rotation_settings(self, room_id: str) -> RotationSettings:
        cached = self._rotation.get(room_id)
        if cached is not None:
            return cached
        try:
            content = await self.matrix.state_event(room_id, ENCRYPTION_EVENT)
        except MatrixError as e:
            if e.status != 404:
                raise
            content = {}
        settings = RotationSettings.from_content(content)
        self._rotation[room_id] = settings
        return settings

    # -- verification ------------------------------------------------------------------

    async def status(self) -> cross_signing.Status:
        with matrix_errors("check this gateway's device"):
            return await cross_signing.status(self.matrix, self.device)

    async def verify(self, recovery_key_or_passphrase: str) -> cross_signing.Status:
        """Verifies the device with the user's recovery key or passphrase."""
        with matrix_errors("verify this gateway's device"):
            return await cross_signing.verify_with_recovery(
                self.matrix, self.device, self.store, recovery_key_or_passphrase
            )

    async def create_identity(self) -> cross_signing.Status:
        """Creates a cross-signing identity (only when there is none)."""
        with matrix_errors("create a cross-signing identity"):
            return await cross_signing.create_identity(
                self.matrix, self.device, self.store
            )


def _session_of(room_id: str, event: Event) -> tuple[str, str, str] | None:
    """The Megolm session an encrypted event needs."""
    sender_key, session_id = event.sender_key, event.session_id
    if sender_key is None or session_id is None:
        return None
    return (room_id, sender_key, session_id)


async def _guarded(step: Awaitable[None], what: str) -> None:
    try:
        await step
    except Exception:
        log.exception("Handling %s failed", what)


def _pending_name(room_id: str, sender_key: str, session_id: str) -> str:
    return _PENDING + "\0".join((room_id, sender_key, session_id))
