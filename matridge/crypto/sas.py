"""Interactive verification by short authentication string (client-server
"Key verification framework" and "Short Authentication String (SAS)
verification", method ``m.sas.v1``) between the gateway's device and the
user's own other devices, over to-device messages.

Only what Matrix clients use today: key agreement ``curve25519-hkdf-sha256``,
hash ``sha256``, MAC ``hkdf-hmac-sha256.v2``, emoji and decimal strings. The
user's answers (accept, match, mismatch) come from whoever drives
:class:`Verifications`; what to show them goes to its :class:`Listener`.
Nothing here logs a key or a SAS.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .cross_signing import confirmed_in_sas, master_key_of
from .device import Device, ToDeviceMessage
from .device_keys import ed25519_of
from .primitives import CryptoError, SasKeys, SasSecret, sas_commitment

log = logging.getLogger(__name__)

PREFIX = "m.key.verification."
REQUEST = PREFIX + "request"
READY = PREFIX + "ready"
START = PREFIX + "start"
ACCEPT = PREFIX + "accept"
KEY = PREFIX + "key"
MAC = PREFIX + "mac"
DONE = PREFIX + "done"
CANCEL = PREFIX + "cancel"

METHOD = "m.sas.v1"
KEY_AGREEMENT = "curve25519-hkdf-sha256"
HASH = "sha256"
MAC_METHOD = "hkdf-hmac-sha256.v2"
SHORT_STRINGS = ("decimal", "emoji")

# The spec's time limit of a verification (and of a request's age).
DEFAULT_TIMEOUT_S = 600.0
# A request stamped this far in the future is refused (the spec: 5 minutes).
FUTURE_SLACK_MS = 5 * 60 * 1000

# The spec's SAS emoji table: index -> (emoji, description).
EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"), ("🐱", "Cat"), ("🦁", "Lion"), ("🐎", "Horse"),
    ("🦄", "Unicorn"), ("🐷", "Pig"), ("🐘", "Elephant"), ("🐰", "Rabbit"),
    ("🐼", "Panda"), ("🐓", "Rooster"), ("🐧", "Penguin"), ("🐢", "Turtle"),
    ("🐟", "Fish"), ("🐙", "Octopus"), ("🦋", "Butterfly"), ("🌷", "Flower"),
    ("🌳", "Tree"), ("🌵", "Cactus"), ("🍄", "Mushroom"), ("🌏", "Globe"),
    ("🌙", "Moon"), ("☁️", "Cloud"), ("🔥", "Fire"), ("🍌", "Banana"),
    ("🍎", "Apple"), ("🍓", "Strawberry"), ("🌽", "Corn"), ("🍕", "Pizza"),
    ("🎂", "Cake"), ("❤️", "Heart"), ("😀", "Smiley"), ("🤖", "Robot"),
    ("🎩", "Hat"), ("👓", "Glasses"), ("🔧", "Spanner"), ("🎅", "Santa"),
    ("👍", "Thumbs Up"), ("☂️", "Umbrella"), ("⌛", "Hourglass"), ("⏰", "Clock"),
    ("🎁", "Gift"), ("💡", "Light Bulb"), ("📕", "Book"), ("✏️", "Pencil"),
    ("📎", "Paperclip"), ("✂️", "Scissors"), ("🔒", "Lock"), ("🔑", "Key"),
    ("🔨", "Hammer"), ("☎️", "Telephone"), ("🏁", "Flag"), ("🚂", "Train"),
    ("🚲", "Bicycle"), ("✈️", "Aeroplane"), ("🚀", "Rocket"), ("🏆", "Trophy"),
    ("⚽", "Ball"), ("🎸", "Guitar"), ("🎺", "Trumpet"), ("🔔", "Bell"),
    ("⚓", "Anchor"), ("🎧", "Headphones"), ("📁", "Folder"), ("📌", "Pin"),
)  # fmt: skip


class Phase(enum.Enum):
    REQUESTED = "requested"  # we asked; waiting for a ready
    INCOMING = "incoming"  # they asked; waiting for our user
    READY = "ready"  # ready exchanged; waiting for a start
    STARTED = "started"  # start sent or received; keys being exchanged
    SHOWN = "shown"  # the SAS is shown; waiting for our user
    CONFIRMED = "confirmed"  # our user said it matches; MACs and done
    DONE = "done"
    CANCELLED = "cancelled"


class Listener(Protocol):
    """What the user is told; called from the message handlers."""

    async def requested(self, v: Verification) -> None: ...

    async def show(
        self, v: Verification, emoji: list[tuple[str, str]], decimals: tuple[int, ...]
    ) -> None: ...

    async def verified(self, v: Verification) -> None: ...

    async def cancelled(
        self, v: Verification, code: str, reason: str, by_us: bool
    ) -> None: ...


@dataclass(eq=False)
class Verification:
    """One verification with one of the user's devices (or, until one
    answers our request, with the devices we sent it to)."""

    txn: str
    user_id: str
    devices: list[str]
    we_requested: bool
    phase: Phase
    device_id: str | None = None
    keys: SasKeys = field(default_factory=SasKeys)
    start: dict[str, Any] | None = None
    we_started: bool = False
    commitment: str | None = None
    their_key: str | None = None
    secret: SasSecret | None = None
    their_mac: Mapping[str, Any] | None = None
    done_sent: bool = False
    done_received: bool = False
    cancel_code: str | None = None
    timer: asyncio.TimerHandle | None = None
    # A start that came without a request (deprecated, still handled).
    early_start: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.phase not in (Phase.DONE, Phase.CANCELLED)


class _Cancel(Exception):
    """Ends a verification with a cancel code and reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Verifications:
    """The SAS verifications of one device with its owner's other devices."""

    def __init__(
        self,
        device: Device,
        listener: Listener,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.device = device
        self.listener = listener
        self.timeout = timeout
        self._by_txn: dict[str, Verification] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what the user does --------------------------------------------------

    def current(self) -> Verification | None:
        """The latest verification still going on."""
        for v in reversed(list(self._by_txn.values())):
            if v.active:
                return v
        return None

    def get(self, txn: str) -> Verification | None:
        return self._by_txn.get(txn)

    async def request(self, device_ids: list[str]) -> Verification:
        """Asks these devices of the user to verify ours (the first one to
        answer does it; the others are told it was accepted elsewhere)."""
        own = self.device.user_id
        await self.device.refresh_own_devices()
        known = self.device.devices(own)
        targets = [d for d in device_ids if d in known and d != self.device.device_id]
        if not targets:
            raise CryptoError("none of these devices is known to the homeserver")
        v = Verification(uuid.uuid4().hex, own, targets, True, Phase.REQUESTED)
        self._add(v)
        await self._send(
            v,
            REQUEST,
            {
                "from_device": self.device.device_id,
                "methods": [METHOD],
                "timestamp": int(time.time() * 1000),
            },
        )
        return v

    async def accept(self, v: Verification) -> None:
        """Our user accepts their request: ready is sent, and their device
        starts the SAS."""
        if v.phase is not Phase.INCOMING:
            raise CryptoError("this verification is not waiting to be accepted")
        # The MACs need the device's and the identity's keys as published.
        await self.device.refresh_own_devices()
        v.phase = Phase.READY
        if v.early_start is not None:
            await self._guarded(v, self._on_start(v, v.early_start))
            return
        await self._send(
            v,
            READY,
            {"from_device": self.device.device_id, "methods": [METHOD]},
        )

    async def confirm(self, v: Verification, matches: bool) -> None:
        """Our user compared the SAS: a match sends our MAC (and checks
        theirs if it came), a mismatch cancels."""
        if v.phase is not Phase.SHOWN:
            raise CryptoError("no emoji are waiting to be compared")
        if not matches:
            await self.cancel(v, "m.mismatched_sas", "The emoji did not match")
            return
        v.phase = Phase.CONFIRMED
        await self._guarded(v, self._send_mac(v))
        if v.their_mac is not None:
            await self._guarded(v, self._check_mac(v))

    async def cancel(
        self, v: Verification, code: str = "m.user", reason: str = "Cancelled"
    ) -> None:
        """Ends the verification on both sides."""
        if not v.active:
            return
        self._ended(v, code)
        try:
            await self._send(v, CANCEL, {"code": code, "reason": reason})
        finally:
            await self.listener.cancelled(v, code, reason, True)

    async def end(self, reason: str) -> None:
        """The session ends (logout, unregistration): the other devices are
        told each verification going on is cancelled (``m.user``) rather
        than left waiting, and no timer of one fires afterwards."""
        try:
            for v in [v for v in self._by_txn.values() if v.active]:
                self._ended(v, "m.user")
                try:
                    await self._send(v, CANCEL, {"code": "m.user", "reason": reason})
                except Exception as e:  # the session ends all the same
                    log.info("the ended verification's cancel failed: %s", e)
        finally:
            self.close()

    def close(self) -> None:
        for v in self._by_txn.values():
            if v.timer is not None:
                v.timer.cancel()
        for task in self._tasks:
            task.cancel()

    # -- messages from the other device -------------------------------------

    async def handle(self, message: ToDeviceMessage) -> None:
        """One ``m.key.verification.*`` to-device message."""
        content = message.content
        txn = content.get("transaction_id")
        if message.sender != self.device.user_id or not isinstance(txn, str):
            # Only the user's own devices verify the gateway's.
            log.info("%s from %s ignored", message.type, message.sender)
            return
        device = message.sender_device
        if message.type == REQUEST or (
            message.type == START and txn not in self._by_txn
        ):
            await self._on_request(txn, device, content)
            return
        v = self._by_txn.get(txn)
        if v is None or not v.active:
            log.info("%s for an unknown verification ignored", message.type)
            return
        if message.type == CANCEL:
            await self._on_cancel(v, device, content)
            return
        if device is not None and v.device_id is not None and device != v.device_id:
            log.info("%s from another device than the verifying one", message.type)
            return
        await self._guarded(v, self._step(v, message.type, device, content))

    async def _step(
        self,
        v: Verification,
        kind: str,
        device: str | None,
        content: Mapping[str, Any],
    ) -> None:
        if kind == READY:
            await self._on_ready(v, device, content)
        elif kind == START:
            await self._on_start(v, content)
        elif kind == ACCEPT:
            await self._on_accept(v, content)
        elif kind == KEY:
            await self._on_key(v, content)
        elif kind == MAC:
            if v.phase not in (Phase.SHOWN, Phase.CONFIRMED) or v.their_mac:
                raise _Cancel("m.unexpected_message", "An unexpected MAC")
            v.their_mac = content
            if v.phase is Phase.CONFIRMED:
                await self._check_mac(v)
        elif kind == DONE:
            if v.phase is not Phase.CONFIRMED:
                raise _Cancel("m.unexpected_message", "An unexpected done")
            v.done_received = True
            await self._finish_if_done(v)
        else:
            raise _Cancel("m.unexpected_message", f"Unknown message {kind}")

    async def _on_request(
        self, txn: str, device: str | None, content: Mapping[str, Any]
    ) -> None:
        """A request, or a start without one (which carries no timestamp:
        it is taken as it comes)."""
        early = "method" in content
        now = int(time.time() * 1000)
        stamp = now if early else content.get("timestamp")
        if (
            device is None
            or device == self.device.device_id
            or not isinstance(stamp, int)
            or now - stamp > DEFAULT_TIMEOUT_S * 1000
            or stamp - now > FUTURE_SLACK_MS
        ):
            log.info("a verification request that is stale or has no device")
            return
        if txn in self._by_txn:
            return
        methods = [content.get("method")] if early else content.get("methods")
        if not isinstance(methods, list) or METHOD not in methods:
            log.info("a verification request without %s ignored", METHOD)
            return
        # The spec: a device that asks again cancels what it asked before.
        for old in list(self._by_txn.values()):
            if old.active and old.device_id == device:
                await self.cancel(old, "m.user", "A new request replaced this one")
        v = Verification(
            txn, self.device.user_id, [device], False, Phase.INCOMING, device
        )
        if early:
            v.early_start = dict(content)
        self._add(v)
        await self.listener.requested(v)

    async def _on_ready(
        self, v: Verification, device: str | None, content: Mapping[str, Any]
    ) -> None:
        methods = content.get("methods")
        if v.phase is not Phase.REQUESTED or device not in v.devices:
            raise _Cancel("m.unexpected_message", "An unexpected ready")
        if not isinstance(methods, list) or METHOD not in methods:
            raise _Cancel("m.unknown_method", "Only m.sas.v1 is supported")
        v.device_id = device
        others = [d for d in v.devices if d != device]
        if others:
            # The spec: the other devices learn it was answered elsewhere.
            await self._send(
                v,
                CANCEL,
                {"code": "m.accepted", "reason": "Verified by another device"},
                to=others,
            )
        v.devices = [device]
        # We asked, so we start the SAS.
        v.phase = Phase.STARTED
        v.we_started = True
        v.start = {
            "from_device": self.device.device_id,
            "method": METHOD,
            "key_agreement_protocols": [KEY_AGREEMENT],
            "hashes": [HASH],
            "message_authentication_codes": [MAC_METHOD],
            "short_authentication_string": list(SHORT_STRINGS),
            "transaction_id": v.txn,
        }
        await self._send(v, START, v.start)

    async def _on_start(self, v: Verification, content: Mapping[str, Any]) -> None:
        if content.get("method") != METHOD:
            raise _Cancel("m.unknown_method", "Only m.sas.v1 is supported")
        if v.phase is Phase.STARTED and v.we_started and v.commitment is None:
            # Both started: the spec keeps the start of the smaller device id.
            if str(v.device_id) > self.device.device_id:
                return
            v.we_started = False
        elif v.phase is not Phase.READY:
            raise _Cancel("m.unexpected_message", "An unexpected start")
        if not (
            KEY_AGREEMENT in _strings(content, "key_agreement_protocols")
            and HASH in _strings(content, "hashes")
            and MAC_METHOD in _strings(content, "message_authentication_codes")
            and "emoji" in _strings(content, "short_authentication_string")
        ):
            raise _Cancel(
                "m.unknown_method",
                "Needs curve25519-hkdf-sha256, sha256, hkdf-hmac-sha256.v2, emoji",
            )
        v.phase = Phase.STARTED
        v.start = dict(content)
        theirs = _strings(content, "short_authentication_string")
        await self._send(
            v,
            ACCEPT,
            {
                "method": METHOD,
                "key_agreement_protocol": KEY_AGREEMENT,
                "hash": HASH,
                "message_authentication_code": MAC_METHOD,
                "short_authentication_string": [
                    s for s in SHORT_STRINGS if s in theirs
                ],
                "commitment": sas_commitment(v.keys.public_key, content),
            },
        )

    async def _on_accept(self, v: Verification, content: Mapping[str, Any]) -> None:
        if v.phase is not Phase.STARTED or not v.we_started or v.commitment:
            raise _Cancel("m.unexpected_message", "An unexpected accept")
        commitment = content.get("commitment")
        if (
            content.get("key_agreement_protocol") != KEY_AGREEMENT
            or content.get("hash") != HASH
            or content.get("message_authentication_code") != MAC_METHOD
            or "emoji" not in _strings(content, "short_authentication_string")
            or not isinstance(commitment, str)
        ):
            raise _Cancel("m.unknown_method", "The accepted methods were not offered")
        v.commitment = commitment
        await self._send(v, KEY, {"key": v.keys.public_key})

    async def _on_key(self, v: Verification, content: Mapping[str, Any]) -> None:
        key = content.get("key")
        if v.phase is not Phase.STARTED or v.their_key is not None:
            raise _Cancel("m.unexpected_message", "An unexpected key")
        if not isinstance(key, str):
            raise _Cancel("m.invalid_message", "A key message without a key")
        if v.we_started:
            if v.commitment is None or v.start is None:
                raise _Cancel("m.unexpected_message", "A key before the accept")
            if sas_commitment(key, v.start) != v.commitment:
                raise _Cancel("m.mismatched_commitment", "The commitment did not match")
        our_key = v.keys.public_key
        if not v.we_started:
            await self._send(v, KEY, {"key": our_key})
        v.their_key = key
        try:
            v.secret = v.keys.agree(key)
        except CryptoError:
            raise _Cancel("m.invalid_message", "The key is unusable") from None
        ours = (self.device.user_id, self.device.device_id, our_key)
        theirs = (v.user_id, str(v.device_id), key)
        starter, accepter = (ours, theirs) if v.we_started else (theirs, ours)
        info = "|".join(("MATRIX_KEY_VERIFICATION_SAS", *starter, *accepter, v.txn))
        indices, decimals = v.secret.emoji_and_decimals(info)
        v.phase = Phase.SHOWN
        await self.listener.show(v, [EMOJI[i] for i in indices], decimals)

    async def _on_cancel(
        self, v: Verification, device: str | None, content: Mapping[str, Any]
    ) -> None:
        if device is not None and device not in v.devices:
            return
        code = content.get("code")
        reason = content.get("reason")
        self._ended(v, str(code) if isinstance(code, str) else "m.user")
        await self.listener.cancelled(
            v,
            v.cancel_code or "m.user",
            str(reason) if isinstance(reason, str) else "",
            False,
        )

    # -- MACs ------------------------------------------------------------------

    def _mac_info(
        self, sender: tuple[str, str], receiver: tuple[str, str], txn: str
    ) -> str:
        return "MATRIX_KEY_VERIFICATION_MAC" + "".join((*sender, *receiver, txn))

    async def _send_mac(self, v: Verification) -> None:
        assert v.secret is not None
        own = self.device.user_id
        keys = {f"ed25519:{self.device.device_id}": self.device.ed25519}
        master = master_key_of(own, self.device.cross_signing_keys(own))
        if master is not None:
            keys[f"ed25519:{master}"] = master
        base = self._mac_info(
            (own, self.device.device_id), (v.user_id, str(v.device_id)), v.txn
        )
        macs = {
            key_id: v.secret.mac(key, base + key_id) for key_id, key in keys.items()
        }
        await self._send(
            v,
            MAC,
            {
                "mac": macs,
                "keys": v.secret.mac(",".join(sorted(keys)), base + "KEY_IDS"),
            },
        )

    async def _check_mac(self, v: Verification) -> None:
        """Their MACs must cover their device's key and/or their master key
        as published, and nothing else."""
        assert v.secret is not None and v.their_mac is not None
        macs, keys_mac = v.their_mac.get("mac"), v.their_mac.get("keys")
        if not isinstance(macs, Mapping) or not macs or not isinstance(keys_mac, str):
            raise _Cancel("m.invalid_message", "A MAC message without MACs")
        base = self._mac_info(
            (v.user_id, str(v.device_id)),
            (self.device.user_id, self.device.device_id),
            v.txn,
        )
        if not v.secret.mac_matches(",".join(sorted(macs)), base + "KEY_IDS", keys_mac):
            raise _Cancel("m.key_mismatch", "The MAC of the key list did not match")
        await self.device.refresh_own_devices()
        device_keys = self.device.devices(v.user_id).get(str(v.device_id))
        known: dict[str, str] = {}
        if device_keys is not None:
            known[f"ed25519:{v.device_id}"] = ed25519_of(device_keys)
        master = master_key_of(v.user_id, self.device.cross_signing_keys(v.user_id))
        if master is not None:
            known[f"ed25519:{master}"] = master
        for key_id, mac in macs.items():
            key = known.get(str(key_id))
            if key is None or not isinstance(mac, str):
                raise _Cancel("m.key_mismatch", f"An unknown key {key_id}")
            if not v.secret.mac_matches(key, base + str(key_id), mac):
                raise _Cancel("m.key_mismatch", f"The MAC of {key_id} did not match")
        with self.device.store.transaction():
            if device_keys is not None:
                self.device.store.put_json(
                    verified_name(str(v.device_id)), ed25519_of(device_keys)
                )
            if master is not None and f"ed25519:{master}" in macs:
                # The identity the user confirmed: secrets must belong to it.
                confirmed_in_sas(self.device.store, master)
        v.done_sent = True
        if v.early_start is None:
            await self._send(v, DONE, {})
        else:
            v.done_received = True  # no request, no done (the old way)
        await self._finish_if_done(v)

    async def _finish_if_done(self, v: Verification) -> None:
        if v.done_sent and v.done_received and v.phase is Phase.CONFIRMED:
            self._ended(v, None)
            log.info("verification with %s %s done", v.user_id, v.device_id)
            await self.listener.verified(v)

    # -- helpers ---------------------------------------------------------------

    def _add(self, v: Verification) -> None:
        self._by_txn[v.txn] = v
        v.timer = asyncio.get_running_loop().call_later(self.timeout, self._time_out, v)
        # Finished ones are forgotten, but the latest few stay for late messages.
        if len(self._by_txn) > 50:
            for txn, old in list(self._by_txn.items())[:10]:
                if not old.active:
                    del self._by_txn[txn]

    def _time_out(self, v: Verification) -> None:
        if not v.active:
            return
        task = asyncio.ensure_future(self._cancel_late(v))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_late(self, v: Verification) -> None:
        try:
            await self.cancel(v, "m.timeout", "The verification timed out")
        except Exception as e:  # the homeserver did not take it: ended all the same
            log.info("the timed-out verification's cancel failed: %s", e)

    def _ended(self, v: Verification, code: str | None) -> None:
        v.phase = Phase.DONE if code is None else Phase.CANCELLED
        v.cancel_code = code
        if v.timer is not None:
            v.timer.cancel()

    async def _guarded(self, v: Verification, step: Any) -> None:
        try:
            await step
        except _Cancel as e:
            log.info("verification %s cancelled: %s", v.txn, e.code)
            await self.cancel(v, e.code, e.reason)

    async def _send(
        self,
        v: Verification,
        kind: str,
        content: dict[str, Any],
        to: list[str] | None = None,
    ) -> None:
        """To the verifying device (or, until one answered, every device
        asked), or to the devices ``to``."""
        body = {**content, "transaction_id": v.txn}
        if to is not None:
            targets = to
        else:
            targets = [v.device_id] if v.device_id is not None else v.devices
        await self.device.send_to_device(
            kind, {v.user_id: dict.fromkeys(targets, body)}, uuid.uuid4().hex
        )


def verified_name(device_id: str) -> str:
    """The key store's record of a device of the user verified by SAS."""
    return "sas_verified\0" + device_id


def sas_verified(device: Device, device_id: str, keys: Mapping[str, Any]) -> bool:
    """Whether the user confirmed this device, with these keys, by SAS."""
    kept = device.store.get_json(verified_name(device_id))
    return isinstance(kept, str) and kept == ed25519_of(keys)


def _strings(content: Mapping[str, Any], name: str) -> list[str]:
    value = content.get(name)
    return [s for s in value if isinstance(s, str)] if isinstance(value, list) else []
