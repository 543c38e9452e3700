"""Room keys between the user's own devices (client-server API "Key
requests", ``m.room_key_request`` and ``m.forwarded_room_key``).

- :meth:`KeyRequests.find` asks the user's other cross-signed devices for
  a missing session (clear to-device messages, as the spec says) and does
  not wait: the key arrives later as an Olm-encrypted forwarded key.
- :meth:`KeyRequests.accepts` keeps a forwarded key only when it answers
  a request we made and comes from one of the user's own cross-signed
  devices; :meth:`KeyRequests.on_room_keys` then cancels the request at
  the devices that did not answer.
- :meth:`KeyRequests.on_request` answers requests from the user's own
  cross-signed devices with the session from its first known index, over
  Olm; every other request (other users, unverified devices) is ignored.

The requests we made are kept in the key store, so an answer that comes
after a restart is still accepted. Nothing here logs a key.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from . import cross_signing
from .device import Device, ForwardedRoomKey, ToDeviceMessage
from .device_keys import MEGOLM_ALGORITHM, curve25519_of

log = logging.getLogger(__name__)

REQUEST = "m.room_key_request"
FORWARDED = "m.forwarded_room_key"
# The key store's record of a request we made, per session.
_ASKED = "key_request\0"
# A request nobody answered is made again after this long (a device that
# has the key may have come online or been verified since).
ASK_AGAIN_S = 24 * 3600.0
# The user's own device list is queried on demand at most this often, so
# that a burst of missing keys or of requests costs one /keys/query.
REFRESH_S = 60.0


def _asked_name(room_id: str, sender_key: str, session_id: str) -> str:
    return _ASKED + "\0".join((room_id, sender_key, session_id))


class KeyRequests:
    """Asking the user's other devices for keys, and answering them."""

    def __init__(
        self,
        device: Device,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._device = device
        self._store = device.store
        self._clock = clock
        self._wall_clock = wall_clock
        self._refreshed_at: float | None = None

    # -- whom we trust ----------------------------------------------------------------

    def _own_verified_devices(self) -> dict[str, dict[str, Any]]:
        """The user's other devices their self-signing key signed."""
        me = self._device.user_id
        identity = cross_signing.own_identity(self._device)
        return {
            device_id: keys
            for device_id, keys in self._device.devices(me).items()
            if device_id != self._device.device_id
            and cross_signing.device_cross_signed(me, identity, keys)
        }

    async def _refresh_own(self) -> None:
        """The user's own device list and identity, up to date."""
        me = self._device.user_id
        now = self._clock()
        outdated = self._store.tracked_users().get(me, True)
        recent = self._refreshed_at is not None and now - self._refreshed_at < REFRESH_S
        if recent and not outdated:
            return  # a sync's device_lists would have marked a change
        self._refreshed_at = now
        await self._device.refresh_own_devices()

    # -- asking ----------------------------------------------------------------

    async def find(self, room_id: str, sender_key: str, session_id: str) -> bool:
        """Asks the user's verified devices for a session; the answer comes
        later (:meth:`accepts`), so this never finds it at once."""
        name = _asked_name(room_id, sender_key, session_id)
        asked = self._store.get_json(name)
        if (
            isinstance(asked, Mapping)
            and self._wall_clock() - float(asked.get("at") or 0) < ASK_AGAIN_S
        ):
            return False  # asked already; the answer may still come
        await self._refresh_own()
        devices = sorted(self._own_verified_devices())
        if not devices:
            log.info(
                "%s: no verified device of the user's to ask for a key of %s",
                self._device.user_id,
                room_id,
            )
            return False
        request_id = uuid.uuid4().hex
        content = {
            "action": "request",
            "body": {
                "algorithm": MEGOLM_ALGORITHM,
                "room_id": room_id,
                "sender_key": sender_key,
                "session_id": session_id,
            },
            "request_id": request_id,
            "requesting_device_id": self._device.device_id,
        }
        # Kept before sending: an answer may come before the send returns.
        with self._store.transaction():
            self._store.put_json(
                name,
                {
                    "request_id": request_id,
                    "devices": devices,
                    "at": self._wall_clock(),
                },
            )
        await self._send(REQUEST, devices, content)
        log.info(
            "%s: asked %d of the user's devices for a key of %s",
            self._device.user_id,
            len(devices),
            room_id,
        )
        return False

    def accepts(self, offer: ForwardedRoomKey) -> bool:
        """Whether a forwarded key answers our request and comes from one of
        the user's own cross-signed devices (the forwarder is Olm-checked)."""
        asked = self._store.get_json(
            _asked_name(offer.room_id, offer.sender_key, offer.session_id)
        )
        if asked is None:
            return False
        if offer.from_user != self._device.user_id:
            log.info("a forwarded key from %s, not the user: ignored", offer.from_user)
            return False
        for device_id, keys in self._own_verified_devices().items():
            if curve25519_of(keys) == offer.from_sender_key:
                log.info(
                    "%s: a requested key of %s came from %s",
                    offer.from_user,
                    offer.room_id,
                    device_id,
                )
                return True
        log.info("a forwarded key from an unverified device of the user: ignored")
        return False

    async def on_room_keys(self, keys: list[tuple[str, str, str]]) -> None:
        """Sessions we asked for that came: the request is cancelled at
        every device asked, so the others need not answer."""
        for room_id, sender_key, session_id in keys:
            name = _asked_name(room_id, sender_key, session_id)
            asked = self._store.get_json(name)
            if not isinstance(asked, Mapping):
                continue
            with self._store.transaction():
                self._store.put_json(name, None)
            await self._send(
                REQUEST,
                [str(d) for d in asked.get("devices") or []],
                {
                    "action": "request_cancellation",
                    "request_id": asked.get("request_id"),
                    "requesting_device_id": self._device.device_id,
                },
            )

    async def _send(
        self, kind: str, devices: list[str], content: Mapping[str, Any]
    ) -> None:
        if not devices:
            return
        await self._device.send_to_device(
            kind,
            {self._device.user_id: {d: dict(content) for d in devices}},
            uuid.uuid4().hex,
        )

    # -- answering -------------------------------------------------------------

    async def on_request(self, message: ToDeviceMessage) -> None:
        """Answers a key request of one of the user's own verified devices."""
        content = message.content
        if content.get("action") != "request":
            return  # cancellations: we answer at once, nothing is pending
        requester = content.get("requesting_device_id")
        body = content.get("body")
        if message.sender != self._device.user_id:
            log.info(
                "a key request from %s, another user: not answered", message.sender
            )
            return
        if not isinstance(requester, str) or requester == self._device.device_id:
            return
        if not isinstance(body, Mapping) or body.get("algorithm") != MEGOLM_ALGORITHM:
            log.info("a key request of %s for no Megolm session: ignored", requester)
            return
        if requester not in self._own_verified_devices():
            # A device that appeared since the last query is looked up once.
            await self._refresh_own()
            if requester not in self._own_verified_devices():
                log.info(
                    "a key request from %s, a device the user has not verified: "
                    "not answered",
                    requester,
                )
                return
        room_id, sender_key = body.get("room_id"), body.get("sender_key")
        session_id = body.get("session_id")
        if not (
            isinstance(room_id, str)
            and isinstance(sender_key, str)
            and isinstance(session_id, str)
        ):
            log.info("a malformed key request from %s: ignored", requester)
            return
        record = self._store.inbound_group_session(room_id, sender_key, session_id)
        if record is None:
            log.info("a key request from %s for a session we lack", requester)
            return
        exported = record.session.export_at(record.session.first_known_index)
        if exported is None:
            return
        forwarded = {
            "algorithm": MEGOLM_ALGORITHM,
            "room_id": room_id,
            "sender_key": sender_key,
            "session_id": session_id,
            "session_key": exported,
            "sender_claimed_ed25519_key": record.sender_ed25519,
            # Whoever forwarded it to us stays in the chain (ourselves are
            # added by the receiver, as the forwarder).
            "forwarding_curve25519_key_chain": list(record.forwarding_chain),
        }
        sent = await self._device.claim_and_encrypt(
            [(self._device.user_id, requester)], FORWARDED, forwarded
        )
        log.info(
            "a key of %s forwarded to the user's device %s: %s",
            room_id,
            requester,
            "sent" if sent else "not sent (no Olm session could be made)",
        )
