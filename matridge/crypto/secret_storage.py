"""Reading the user's secret storage (client-server API "Secret storage",
``m.secret_storage.v1.aes-hmac-sha2``): the default key's description in
account data, the key derived from what the user typed (a recovery key or
the key's passphrase), checked against the description before any secret
is decrypted.

Nothing here logs, and no object's ``repr`` shows the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from ..matrix import MatrixError
from .primitives import (
    SECRET_STORAGE_ALGORITHM,
    CryptoError,
    KeyFormatError,
    MacMismatch,
    check_secret_storage_key,
    decode_recovery_key,
    decrypt_secret,
    passphrase_key,
)

DEFAULT_KEY_EVENT = "m.secret_storage.default_key"
KEY_EVENT_PREFIX = "m.secret_storage.key."
PBKDF2 = "m.pbkdf2"
# Element uses 500 000; the bound only keeps a hostile description from
# holding a worker thread for minutes.
MAX_PBKDF2_ITERATIONS = 10_000_000


class SecretStorageError(CryptoError):
    """Secret storage cannot be read; the message says why, in words the
    user can act on."""


class NoSecretStorage(SecretStorageError):
    """The account has no (usable) default secret storage key."""


class WrongSecretStorageKey(SecretStorageError):
    """What the user gave is not the key of their secret storage."""


class AccountDataApi(Protocol):
    """The MatrixClient call secret storage needs."""

    async def get_account_data(
        self, event_type: str, room_id: str | None = None
    ) -> dict[str, Any]: ...


async def account_data(api: AccountDataApi, event_type: str) -> dict[str, Any] | None:
    """A global account data event's content, None when it is not set."""
    try:
        return await api.get_account_data(event_type)
    except MatrixError as e:
        if e.status == 404:
            return None
        raise


class UnlockedSecretStorage:
    """The default secret storage key, checked: it decrypts secrets."""

    __slots__ = ("_key", "key_id", "kind")

    def __init__(self, key_id: str, key: bytes, kind: str) -> None:
        self.key_id = key_id
        self.kind = kind  # "recovery key" or "passphrase": for messages
        self._key = key

    def __repr__(self) -> str:
        return f"<UnlockedSecretStorage {self.key_id} by {self.kind}>"

    async def secret(self, api: AccountDataApi, name: str) -> str | None:
        """The secret stored under ``name``; None when the account has none,
        or none encrypted with this key."""
        content = await account_data(api, name)
        encrypted = (content or {}).get("encrypted")
        if not isinstance(encrypted, Mapping):
            return None
        mine = encrypted.get(self.key_id)
        if not isinstance(mine, Mapping):
            return None
        try:
            return decrypt_secret(self._key, name, mine)
        except MacMismatch:
            # The key checked out against its description, so the secret
            # itself was changed or written with another key.
            raise SecretStorageError(
                f"the secret {name} in your secret storage does not decrypt "
                f"with your {self.kind}: it was changed or written with "
                "another key"
            ) from None


async def unlock(api: AccountDataApi, user_text: str) -> UnlockedSecretStorage:
    """The default secret storage key from a recovery key or passphrase;
    :class:`NoSecretStorage` or :class:`WrongSecretStorageKey` in words."""
    default = await account_data(api, DEFAULT_KEY_EVENT)
    key_id = (default or {}).get("key")
    if not isinstance(key_id, str) or not key_id:
        raise NoSecretStorage(
            "your Matrix account has no secret storage (no default key): "
            "set up secure backup / recovery in Element first"
        )
    description = await account_data(api, KEY_EVENT_PREFIX + key_id)
    if description is None:
        raise NoSecretStorage(
            f"your secret storage's default key {key_id} has no description "
            "in your account data: set up recovery again in Element"
        )
    if description.get("algorithm") != SECRET_STORAGE_ALGORITHM:
        raise NoSecretStorage(
            f"your secret storage key {key_id} uses "
            f"{description.get('algorithm')!r}, which the gateway does not know"
        )
    key, kind = await _derive(user_text, description)
    try:
        right = check_secret_storage_key(key, description)
    except KeyFormatError as e:
        raise NoSecretStorage(
            f"your secret storage key {key_id} has a malformed description: {e}"
        ) from None
    if not right:
        raise WrongSecretStorageKey(
            f"this {kind} does not open your secret storage "
            f"(key {description.get('name') or key_id}): check it and try again"
        )
    return UnlockedSecretStorage(key_id, key, kind)


_BASE58 = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


def _looks_like_recovery_key(text: str) -> bool:
    """48 base58 characters starting with E: a recovery key's shape (its
    0x8B 0x01 prefix), which a passphrase would hardly have."""
    compact = "".join(text.split())
    return len(compact) == 48 and compact[0] == "E" and set(compact) <= _BASE58


async def _derive(
    user_text: str, description: Mapping[str, Any]
) -> tuple[bytes, Literal["recovery key", "passphrase"]]:
    try:
        return decode_recovery_key(user_text), "recovery key"
    except KeyFormatError as e:
        settings = description.get("passphrase")
        if _looks_like_recovery_key(user_text) or not isinstance(settings, Mapping):
            # Either a mistyped recovery key, or an account without a
            # passphrase: a passphrase attempt would only hide the typo.
            raise WrongSecretStorageKey(
                f"this is not a valid recovery key ({e}): check it and try again"
                + (
                    ""
                    if isinstance(settings, Mapping)
                    else "; your secret storage has no passphrase"
                )
            ) from None
    if settings.get("algorithm") != PBKDF2:
        raise NoSecretStorage(
            f"your secret storage passphrase uses {settings.get('algorithm')!r}, "
            "which the gateway does not know: give your recovery key instead"
        )
    salt, iterations, bits = (
        settings.get("salt"),
        settings.get("iterations"),
        settings.get("bits", 256),
    )
    if (
        not isinstance(salt, str)
        or not isinstance(iterations, int)
        or not isinstance(bits, int)
        or not 0 < iterations <= MAX_PBKDF2_ITERATIONS
        or bits != 256
    ):
        raise NoSecretStorage(
            "your secret storage passphrase settings are malformed: "
            "give your recovery key instead"
        )
    # PBKDF2 takes a noticeable time by design; hashlib releases the GIL.
    key = await asyncio.to_thread(passphrase_key, user_text, salt, iterations, bits)
    return key, "passphrase"
