"""Asking the user's other devices for their secrets (client-server
"Sharing" of "Secrets": ``m.secret.request`` and ``m.secret.send``) once
the gateway's device is verified: the cross-signing private keys and the
key backup's key.

A secret is taken only over Olm, from one of the user's own devices that
is verified (cross-signed, or confirmed by SAS) and was asked, for a
request we made; a cross-signing key only if it is the public key the
account publishes. Nothing here logs a secret.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .. import logsafety
from .cross_signing import (
    MASTER,
    MEGOLM_BACKUP,
    SELF_SIGNING,
    USER_SIGNING,
    CrossSigningApi,
    Status,
    device_cross_signed,
    own_identity,
    published,
    sign_with_kept_key,
    vouched_master,
)
from .device import Device, ToDeviceMessage
from .device_keys import ed25519_of
from .primitives import KeyFormatError, SigningKey, b64decode
from .sas import sas_verified

log = logging.getLogger(__name__)

REQUEST = "m.secret.request"
SEND = "m.secret.send"
ALL_SECRETS = (MASTER, SELF_SIGNING, USER_SIGNING, MEGOLM_BACKUP)
_CROSS_SIGNING = (MASTER, SELF_SIGNING, USER_SIGNING)

# Told the secrets kept so far and the device's state when the self-signing
# key came and signed it, and again (state None) once every request is
# answered.
Finished = Callable[[list[str], Status | None], Awaitable[None]]


@dataclass
class _Asked:
    name: str
    devices: dict[str, str]  # device id -> its Ed25519 key when asked


class SecretRequests:
    """The secrets one device asked its owner's other devices for."""

    def __init__(
        self,
        api: CrossSigningApi,
        device: Device,
        finished: Finished | None = None,
    ) -> None:
        self.api = api
        self.device = device
        self._finished = finished
        self._asked: dict[str, _Asked] = {}
        self._kept: list[str] = []

    def verified_devices(self) -> dict[str, str]:
        """The user's other devices that are cross-signed or confirmed by
        SAS: device id -> Ed25519 key."""
        own = self.device.user_id
        # Not the identity the user vouched for: its signatures count for nothing.
        identity = own_identity(self.device)
        return {
            device_id: ed25519_of(keys)
            for device_id, keys in self.device.devices(own).items()
            if device_id != self.device.device_id
            and (
                device_cross_signed(own, identity, keys)
                or sas_verified(self.device, device_id, keys)
            )
        }

    async def request(self, names: Iterable[str] = ALL_SECRETS) -> list[str]:
        """Sends an ``m.secret.request`` per secret to the user's verified
        devices. Returns the devices asked (none: nothing was sent)."""
        own = self.device.user_id
        await self.device.refresh_own_devices()
        devices = self.verified_devices()
        if not devices:
            log.info("no verified device of %s to ask for secrets", own)
            return []
        self._kept = []
        for name in names:
            request_id = uuid.uuid4().hex
            self._asked[request_id] = _Asked(name, dict(devices))
            content = {
                "name": name,
                "action": "request",
                "requesting_device_id": self.device.device_id,
                "request_id": request_id,
            }
            await self.device.send_to_device(
                REQUEST, {own: dict.fromkeys(devices, content)}, uuid.uuid4().hex
            )
        return sorted(devices)

    async def handle(self, message: ToDeviceMessage) -> None:
        """One ``m.secret.send``: kept if it answers one of our requests,
        came over Olm from a verified device we asked, and checks out."""
        request_id = message.content.get("request_id")
        secret = message.content.get("secret")
        if isinstance(secret, str):
            logsafety.remember(secret)
        if not message.encrypted:
            log.warning("an unencrypted m.secret.send from %s ignored", message.sender)
            return
        if message.sender != self.device.user_id:
            log.warning("m.secret.send from another user (%s) ignored", message.sender)
            return
        asked = self._asked.get(request_id) if isinstance(request_id, str) else None
        if asked is None or not isinstance(secret, str):
            log.info("m.secret.send for no request of ours ignored")
            return
        sender = message.sender_device
        if sender is None or asked.devices.get(sender) != message.sender_ed25519:
            log.warning("m.secret.send from a device not asked (%s) ignored", sender)
            return
        if not await self._keep(asked.name, secret):
            return
        assert isinstance(request_id, str)
        del self._asked[request_id]
        self._kept.append(asked.name)
        others = [d for d in asked.devices if d != sender]
        if others:
            cancel = {
                "action": "request_cancellation",
                "requesting_device_id": self.device.device_id,
                "request_id": request_id,
            }
            await self.device.send_to_device(
                REQUEST,
                {self.device.user_id: dict.fromkeys(others, cancel)},
                uuid.uuid4().hex,
            )
        if asked.name == SELF_SIGNING:
            # At once: the device is verified even if another secret never comes.
            status = await sign_with_kept_key(self.api, self.device, self.device.store)
            await self._tell(status)
        if not self._asked:
            await self._tell(None)

    async def _keep(self, name: str, secret: str) -> bool:
        store = self.device.store
        try:
            raw = b64decode(secret)
        except KeyFormatError:
            log.warning("a malformed %s secret ignored", name)
            return False
        if name in _CROSS_SIGNING:
            try:
                public = SigningKey.from_seed(raw).public_key
            except KeyFormatError:
                log.warning("a malformed %s secret ignored", name)
                return False
            pub = await published(self.api, self.device)
            pinned = vouched_master(self.device.store)
            if pinned is not None and pub.master != pinned:
                log.warning("the published identity is not the one verified")
                return False
            if pub.public(name) is None or public != pub.public(name):
                log.warning("a %s secret that is not the published key ignored", name)
                return False
        elif name == MEGOLM_BACKUP:
            if len(raw) != 32:
                log.warning("a malformed key backup secret ignored")
                return False
        else:
            return False
        with store.transaction():
            store.save_secret(name, raw)
        log.info("secret %s received and kept", name)
        return True

    async def _tell(self, status: Status | None) -> None:
        if self._finished is not None:
            await self._finished(list(self._kept), status)
