"""Checking what ``/keys/query`` and ``/keys/claim`` return before anything
of it is trusted: a device's keys must be signed by the device itself and
name the user and device they are listed under; a claimed one-time key must
be signed by the device it is for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .primitives import CryptoError, verify_json

OLM_ALGORITHM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM_ALGORITHM = "m.megolm.v1.aes-sha2"
ONE_TIME_KEY_ALGORITHM = "signed_curve25519"


class DeviceKeysError(CryptoError):
    """A device's keys, or a key claimed for it, do not check out."""


def checked_device_keys(user_id: str, device_id: str, keys: Any) -> dict[str, Any]:
    """``keys`` (one entry of ``/keys/query``'s ``device_keys``) if it is
    the self-signed key set of ``device_id`` of ``user_id``; otherwise
    :class:`DeviceKeysError` saying what is wrong."""
    if not isinstance(keys, Mapping):
        raise DeviceKeysError(f"{user_id} {device_id}: the device keys are no object")
    if keys.get("user_id") != user_id or keys.get("device_id") != device_id:
        # A server could otherwise list one device's keys under another name.
        raise DeviceKeysError(
            f"{user_id} {device_id}: the keys name another user or device"
        )
    ed25519 = _key(keys, "ed25519", device_id)
    _key(keys, "curve25519", device_id)
    try:
        verify_json(keys, user_id, device_id, ed25519)
    except CryptoError as e:
        raise DeviceKeysError(f"{user_id} {device_id}: {e}") from None
    return dict(keys)


def _key(keys: Mapping[str, Any], algorithm: str, device_id: str) -> str:
    value = (keys.get("keys") or {}).get(f"{algorithm}:{device_id}")
    if not isinstance(value, str):
        raise DeviceKeysError(f"{device_id}: no {algorithm} key")
    return value


def ed25519_of(keys: Mapping[str, Any]) -> str:
    """The Ed25519 key of a checked device key set."""
    return _key(keys, "ed25519", str(keys["device_id"]))


def curve25519_of(keys: Mapping[str, Any]) -> str:
    """The Curve25519 identity key of a checked device key set."""
    return _key(keys, "curve25519", str(keys["device_id"]))


def checked_one_time_key(
    user_id: str, device_keys: Mapping[str, Any], claimed: Mapping[str, Any]
) -> str:
    """The Curve25519 key of one ``/keys/claim`` answer for a device (key
    id -> signed key object), after checking the device's signature."""
    device_id = str(device_keys["device_id"])
    for key_id, signed in claimed.items():
        if not key_id.startswith(ONE_TIME_KEY_ALGORITHM + ":"):
            continue
        if not isinstance(signed, Mapping) or not isinstance(signed.get("key"), str):
            raise DeviceKeysError(f"{user_id} {device_id}: malformed claimed key")
        try:
            verify_json(signed, user_id, device_id, ed25519_of(device_keys))
        except CryptoError as e:
            raise DeviceKeysError(f"{user_id} {device_id}: claimed key: {e}") from None
        return str(signed["key"])
    raise DeviceKeysError(f"{user_id} {device_id}: no signed_curve25519 key claimed")
