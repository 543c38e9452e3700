"""Making the gateway's device one its owner has verified (client-server
API "Cross-signing"): the user's self-signing key signs the device's keys,
and ``/keys/query`` then shows that signature to everyone.

Two ways to get the self-signing key, neither replacing anything:

* :func:`verify_with_recovery`: the user gives their recovery key or
  passphrase; the private cross-signing keys come out of secret storage,
  are checked against the public ones the account publishes, kept in the
  key store, and the device is signed.
* :func:`create_identity`: only for an account that has no cross-signing
  identity yet; the gateway makes one, keeps its private keys, publishes
  it and signs the device. It refuses when an identity exists.

:func:`status` says in words which of the three situations the user is in
and what to do. Nothing here logs a key, a recovery key or a passphrase.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .. import logsafety
from ..matrix import MatrixError
from .device import Device, KeysApi
from .device_keys import DeviceKeysError, checked_device_keys, ed25519_of
from .primitives import (
    CryptoError,
    KeyFormatError,
    SignatureError,
    SigningKey,
    b64decode,
    sign_json,
    verify_json,
)
from .secret_storage import unlock
from .store import KeyStore

log = logging.getLogger(__name__)

MASTER = "m.cross_signing.master"
SELF_SIGNING = "m.cross_signing.self_signing"
USER_SIGNING = "m.cross_signing.user_signing"
MEGOLM_BACKUP = "m.megolm_backup.v1"
# The key store keeps the public identity its secrets belong to.
PUBLIC_IDENTITY = "cross_signing_identity"
# The key store's record of the master key a SAS confirmed (crypto/sas.py).
SAS_CONFIRMED_MASTER = "sas_confirmed_master"
# Prefix of the keys of an identity we uploaded but whose upload is not
# confirmed yet; overwritten by the next attempt.
PENDING = "pending\0"

_WHAT = {
    MASTER: "master",
    SELF_SIGNING: "self-signing",
    USER_SIGNING: "user-signing",
}
_USAGE = {MASTER: "master", SELF_SIGNING: "self_signing", USER_SIGNING: "user_signing"}
_QUERY_FIELD = {
    MASTER: "master_keys",
    SELF_SIGNING: "self_signing_keys",
    USER_SIGNING: "user_signing_keys",
}


class CrossSigningError(CryptoError):
    """The device could not be verified; the message says why in words."""


class IdentityExists(CrossSigningError):
    """The account already has a cross-signing identity: never replaced."""


class NoIdentity(CrossSigningError):
    """The account has no cross-signing identity to import."""


class IdentityMismatch(CrossSigningError):
    """A private key does not belong to the identity the account publishes."""


class NeedsAuthentication(CrossSigningError):
    """The homeserver wants user-interactive authentication first."""


class CrossSigningApi(KeysApi, Protocol):
    """The MatrixClient calls cross-signing needs: the device's, and account
    data (secret storage)."""

    async def get_account_data(
        self, event_type: str, room_id: str | None = None
    ) -> dict[str, Any]: ...


class OwnDevice(Protocol):
    """What of :class:`matridge.crypto.device.Device` is used here."""

    user_id: str
    device_id: str

    @property
    def ed25519(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Published:
    """The user's identity and our device as ``/keys/query`` shows them;
    the self-signing and user-signing keys only if the master key signs
    them."""

    master: str | None
    self_signing: str | None
    user_signing: str | None
    device_keys: dict[str, Any] | None

    def public(self, name: str) -> str | None:
        return {
            MASTER: self.master,
            SELF_SIGNING: self.self_signing,
            USER_SIGNING: self.user_signing,
        }[name]


class State(enum.Enum):
    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    NO_IDENTITY = "no identity"


@dataclass(frozen=True, slots=True)
class Status:
    state: State
    sentence: str


def _public_key(user_id: str, name: str, obj: Any, master: str | None) -> str | None:
    """The public key of one ``/keys/query`` cross-signing key, checked:
    its user, usage, a single Ed25519 key, and (but for the master key)
    the master key's signature. None when the server lists none."""
    if obj is None:
        return None
    what = _WHAT[name]
    if not isinstance(obj, Mapping) or obj.get("user_id") != user_id:
        raise CrossSigningError(f"the homeserver's {what} key is not {user_id}'s")
    if _USAGE[name] not in (obj.get("usage") or []):
        raise CrossSigningError(f"the homeserver's {what} key has the wrong usage")
    keys = obj.get("keys")
    if not isinstance(keys, Mapping) or len(keys) != 1:
        raise CrossSigningError(f"the homeserver's {what} key is not one key")
    ((key_id, public),) = keys.items()
    if not isinstance(public, str) or key_id != f"ed25519:{public}":
        raise CrossSigningError(f"the homeserver's {what} key is malformed")
    if name != MASTER:
        if master is None:
            return None
        try:
            verify_json(obj, user_id, master, master)
        except SignatureError:
            raise CrossSigningError(
                f"the homeserver's {what} key is not signed by your master key"
            ) from None
    return public


def master_key_of(user_id: str, identity: Mapping[str, Any]) -> str | None:
    """The master public key ``/keys/query`` listed for ``user_id`` (what
    :meth:`Device.cross_signing_keys` keeps), if it is well formed."""
    try:
        return _public_key(user_id, MASTER, identity.get("master_keys"), None)
    except CrossSigningError:
        return None


def vouched_master(store: KeyStore) -> str | None:
    """The master key the user vouched for: the one their recovery key
    unlocked (or their secrets matched), else the one they confirmed in a
    SAS with another of their devices; None when they did neither."""
    kept = store.get_json(PUBLIC_IDENTITY)
    if isinstance(kept, Mapping):
        master = kept.get("master")
        return master if isinstance(master, str) else ""  # matches none
    confirmed = store.get_json(SAS_CONFIRMED_MASTER)
    return confirmed if isinstance(confirmed, str) else None


def confirmed_in_sas(store: KeyStore, master: str) -> None:
    """The user confirmed ``master`` in a SAS (inside the caller's
    transaction). An identity their recovery key unlocked before that is
    another one is forgotten: they reset their identity since, and the
    latest word is theirs."""
    store.put_json(SAS_CONFIRMED_MASTER, master)
    kept = store.get_json(PUBLIC_IDENTITY)
    if isinstance(kept, Mapping) and kept.get("master") != master:
        store.put_json(PUBLIC_IDENTITY, None)


def own_identity(device: Device) -> dict[str, Any]:
    """The user's own cross-signing keys as ``/keys/query`` last listed
    them, if their master key is the one the user vouched for (when they
    did, see :func:`vouched_master`); otherwise none: the homeserver could
    list an identity of its own, and devices it signed."""
    user_id = device.user_id
    identity = device.cross_signing_keys(user_id)
    vouched = vouched_master(device.store)
    if vouched is not None and vouched != master_key_of(user_id, identity):
        log.warning("%s: the homeserver lists another master key", user_id)
        return {}
    return identity


async def published(api: CrossSigningApi, device: OwnDevice) -> Published:
    """The user's published identity and our device's keys, checked."""
    user_id = device.user_id
    res = await api.request(
        "POST",
        "/_matrix/client/v3/keys/query",
        body={"device_keys": {user_id: [device.device_id]}},
    )

    def listed(name: str) -> Any:
        field = res.get(_QUERY_FIELD[name])
        return field.get(user_id) if isinstance(field, Mapping) else None

    master = _public_key(user_id, MASTER, listed(MASTER), None)
    ssk = _public_key(user_id, SELF_SIGNING, listed(SELF_SIGNING), master)
    usk = _public_key(user_id, USER_SIGNING, listed(USER_SIGNING), master)
    device_keys = None
    raw = ((res.get("device_keys") or {}).get(user_id) or {}).get(device.device_id)
    if raw is not None:
        try:
            device_keys = checked_device_keys(user_id, device.device_id, raw)
        except DeviceKeysError as e:
            raise CrossSigningError(f"our device's published keys: {e}") from None
        if ed25519_of(device_keys) != device.ed25519:
            # Signing these would vouch for a key that is not ours.
            raise CrossSigningError(
                "the homeserver lists another Ed25519 key for this gateway's "
                "device than the device has: nothing was signed"
            )
    return Published(master, ssk, usk, device_keys)


def device_cross_signed(
    user_id: str, identity: Mapping[str, Any], device_keys: Mapping[str, Any]
) -> bool:
    """Whether another device's owner has cross-signed it: its keys carry
    the signature of the owner's self-signing key, which their master key
    signs. ``identity`` is what ``/keys/query`` gave for the user
    (``master_keys`` and ``self_signing_keys`` entries, as
    :meth:`Device.cross_signing_keys` keeps them)."""
    try:
        master = _public_key(user_id, MASTER, identity.get("master_keys"), None)
        ssk = _public_key(
            user_id, SELF_SIGNING, identity.get("self_signing_keys"), master
        )
        if ssk is None:
            return False
        verify_json(device_keys, user_id, ssk, ssk)
    except (CrossSigningError, SignatureError):
        return False
    return True


def _device_signed(pub: Published, user_id: str) -> bool:
    if pub.self_signing is None or pub.device_keys is None:
        return False
    try:
        verify_json(pub.device_keys, user_id, pub.self_signing, pub.self_signing)
    except SignatureError:
        return False
    return True


async def status(
    api: CrossSigningApi, device: OwnDevice, *, command: str = "verify"
) -> Status:
    """Whether our device is verified, and what the user can do if not."""
    pub = await published(api, device)
    dev = device.device_id
    if pub.master is None:
        return Status(
            State.NO_IDENTITY,
            "Your Matrix account has no cross-signing identity yet, so nothing "
            f"vouches for this gateway's device ({dev}). The gateway can "
            "create one and sign its device with it; or set up encryption in "
            f"Element first and then give your recovery key with '{command}'.",
        )
    if _device_signed(pub, device.user_id):
        return Status(
            State.VERIFIED,
            f"This gateway's Matrix device ({dev}) is verified: your "
            "self-signing key has signed it, so your other devices and your "
            "contacts can trust it.",
        )
    return Status(
        State.UNSIGNED,
        "Your Matrix account has a cross-signing identity, but this gateway's "
        f"device ({dev}) is not signed by it, so other devices may not share "
        "their message keys with it. Give your recovery key (or security "
        f"passphrase) with '{command}' to verify it.",
    )


async def verify_with_recovery(
    api: CrossSigningApi,
    device: OwnDevice,
    store: KeyStore,
    recovery_key_or_passphrase: str,
) -> Status:
    """Imports the cross-signing keys from secret storage and signs our
    device. Nothing is stored or signed unless every step checks out."""
    # Masked in every later log line, whichever library would print it.
    logsafety.remember(recovery_key_or_passphrase)
    logsafety.remember("".join(recovery_key_or_passphrase.split()))
    pub = await published(api, device)
    if pub.master is None:
        raise NoIdentity(
            "your Matrix account has no cross-signing identity, so there is "
            "nothing to import: the gateway can create one instead"
        )
    if pub.device_keys is None:
        raise CrossSigningError("this gateway's device has not published its keys yet")
    storage = await unlock(api, recovery_key_or_passphrase)
    seeds: dict[str, bytes] = {}
    for name in (MASTER, SELF_SIGNING, USER_SIGNING):
        secret = await storage.secret(api, name)
        if secret is None:
            if name == USER_SIGNING:
                continue  # only needed to verify other users, later
            raise CrossSigningError(
                f"your secret storage does not hold your {_WHAT[name]} key: "
                "set up recovery again in one of your verified devices"
            )
        key = _signing_key(name, secret)
        if pub.public(name) is None:
            raise IdentityMismatch(
                f"your account publishes no {_WHAT[name]} key signed by your "
                "master key, so the one in your secret storage cannot be "
                "checked: nothing was imported"
            )
        if key.public_key != pub.public(name):
            raise IdentityMismatch(
                f"the {_WHAT[name]} key in your secret storage does not match "
                "the one your account publishes (the identity was probably "
                "reset without updating secret storage): nothing was imported"
            )
        seeds[name] = key.seed
    backup = await storage.secret(api, MEGOLM_BACKUP)
    backup_key = _backup_key(backup) if backup is not None else None
    with store.transaction():
        for name, seed in seeds.items():
            store.save_secret(name, seed)
        if backup_key is not None:
            store.save_secret(MEGOLM_BACKUP, backup_key)
        store.put_json(PUBLIC_IDENTITY, _identity_json(pub))
    await _sign_device(api, device, pub, SigningKey.from_seed(seeds[SELF_SIGNING]))
    log.info(
        "%s: cross-signing keys imported from secret storage, device %s signed",
        device.user_id,
        device.device_id,
    )
    return await status(api, device)


async def create_identity(
    api: CrossSigningApi, device: OwnDevice, store: KeyStore
) -> Status:
    """Creates and publishes a cross-signing identity for an account that
    has none, keeps its private keys, and signs our device with it.
    :class:`IdentityExists` when the account has one: never replaced."""
    pub = await published(api, device)
    if pub.device_keys is None:
        raise CrossSigningError("this gateway's device has not published its keys yet")
    if pub.master is not None:
        # Ours already, or our own earlier upload whose answer was lost:
        # finish it rather than refuse.
        ours = _kept_identity(store, pub, "") or _kept_identity(store, pub, PENDING)
        if ours is None:
            raise IdentityExists(
                "your Matrix account already has a cross-signing identity, "
                "and the gateway never replaces it: give your recovery key "
                "(or security passphrase) to verify this device instead"
            )
        _keep_identity(store, pub, ours)
        await _sign_device(api, device, pub, ours[SELF_SIGNING])
        return await status(api, device)
    user_id = device.user_id
    keys = {
        name: SigningKey.generate() for name in (MASTER, SELF_SIGNING, USER_SIGNING)
    }
    master = keys[MASTER]
    body = {
        "master_key": _key_object(user_id, MASTER, master),
        "self_signing_key": sign_json(
            _key_object(user_id, SELF_SIGNING, keys[SELF_SIGNING]),
            master,
            user_id,
            master.public_key,
        ),
        "user_signing_key": sign_json(
            _key_object(user_id, USER_SIGNING, keys[USER_SIGNING]),
            master,
            user_id,
            master.public_key,
        ),
    }
    new = Published(
        master.public_key,
        keys[SELF_SIGNING].public_key,
        keys[USER_SIGNING].public_key,
        pub.device_keys,
    )
    # Kept as pending before publishing: if the answer is lost, the next
    # call finds the published identity is this one and keeps it; if the
    # server refuses, the user's secrets are untouched.
    with store.transaction():
        for name, key in keys.items():
            store.save_secret(PENDING + name, key.seed)
        store.put_json(PENDING + PUBLIC_IDENTITY, _identity_json(new))
    try:
        await api.request(
            "POST", "/_matrix/client/v3/keys/device_signing/upload", body=body
        )
    except MatrixError as e:
        if e.status == 401:
            raise NeedsAuthentication(
                "your homeserver wants you to confirm with your password "
                "before a cross-signing identity can be created, which the "
                "gateway cannot do for you: set up encryption (secure backup) "
                "in Element, then give the gateway your recovery key"
            ) from None
        raise
    _keep_identity(store, new, keys)
    await _sign_device(api, device, new, keys[SELF_SIGNING])
    log.info(
        "%s: cross-signing identity created, device %s signed",
        user_id,
        device.device_id,
    )
    return await status(api, device)


def _kept_identity(
    store: KeyStore, pub: Published, prefix: str
) -> dict[str, SigningKey] | None:
    """The private keys the store keeps (under ``prefix``) for the identity
    the account publishes; None unless the store has all of them."""
    kept = store.get_json(prefix + PUBLIC_IDENTITY)
    if not isinstance(kept, Mapping) or kept != _identity_json(pub):
        return None
    keys: dict[str, SigningKey] = {}
    for name in (MASTER, SELF_SIGNING, USER_SIGNING):
        seed = store.secret(prefix + name)
        if seed is None or SigningKey.from_seed(seed).public_key != pub.public(name):
            return None
        keys[name] = SigningKey.from_seed(seed)
    return keys


def _keep_identity(
    store: KeyStore, pub: Published, keys: Mapping[str, SigningKey]
) -> None:
    with store.transaction():
        for name, key in keys.items():
            store.save_secret(name, key.seed)
        store.put_json(PUBLIC_IDENTITY, _identity_json(pub))
        store.put_json(PENDING + PUBLIC_IDENTITY, None)


def _key_object(user_id: str, name: str, key: SigningKey) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "usage": [_USAGE[name]],
        "keys": {f"ed25519:{key.public_key}": key.public_key},
    }


def _identity_json(pub: Published) -> dict[str, str | None]:
    return {
        "master": pub.master,
        "self_signing": pub.self_signing,
        "user_signing": pub.user_signing,
    }


def _signing_key(name: str, secret: str) -> SigningKey:
    try:
        return SigningKey.from_seed(b64decode(secret))
    except KeyFormatError:
        raise CrossSigningError(
            f"the {_WHAT[name]} key in your secret storage is malformed"
        ) from None


def _backup_key(secret: str) -> bytes | None:
    try:
        key = b64decode(secret)
    except KeyFormatError:
        key = b""
    if len(key) != 32:
        log.warning("the key backup secret in secret storage is malformed: ignored")
        return None
    return key


async def _sign_device(
    api: CrossSigningApi, device: OwnDevice, pub: Published, ssk: SigningKey
) -> None:
    """Signs the device keys as the server has them (it compares them with
    what it stores) and uploads the signature."""
    assert pub.device_keys is not None
    user_id = device.user_id
    unsigned = {k: v for k, v in pub.device_keys.items() if k != "unsigned"}
    signed = sign_json(unsigned, ssk, user_id, ssk.public_key)
    res = await api.request(
        "POST",
        "/_matrix/client/v3/keys/signatures/upload",
        body={user_id: {device.device_id: signed}},
    )
    failure = ((res.get("failures") or {}).get(user_id) or {}).get(device.device_id)
    if failure is not None:
        reason = failure.get("error") if isinstance(failure, Mapping) else None
        raise CrossSigningError(
            f"the homeserver refused the device's signature: {reason or failure}"
        )


async def sign_with_kept_key(
    api: CrossSigningApi, device: OwnDevice, store: KeyStore
) -> Status | None:
    """Signs our device with the self-signing key the store keeps (one
    another device of the user sent, say), if it is the published one and
    the device is not signed yet. None when the store has no such key."""
    pub = await published(api, device)
    seed = store.secret(SELF_SIGNING)
    if pub.self_signing is None or pub.device_keys is None or seed is None:
        return None
    key = SigningKey.from_seed(seed)
    if key.public_key != pub.self_signing:
        return None
    kept = {name: store.secret(name) for name in (MASTER, SELF_SIGNING, USER_SIGNING)}
    if all(
        s is not None and SigningKey.from_seed(s).public_key == pub.public(name)
        for name, s in kept.items()
    ):
        with store.transaction():
            store.put_json(PUBLIC_IDENTITY, _identity_json(pub))
    if not _device_signed(pub, device.user_id):
        await _sign_device(api, device, pub, key)
        log.info("%s: device %s signed", device.user_id, device.device_id)
    return await status(api, device)
