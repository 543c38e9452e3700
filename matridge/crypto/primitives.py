"""Matrix end-to-end encryption primitives: the project's only importer of
``vodozemac`` (Olm, Megolm) and ``cryptography`` (Ed25519, AES, HMAC, HKDF,
PBKDF2).

What the rest of matridge gets here is Matrix-shaped: keys and ciphertexts as
unpadded base64 strings, Olm messages as their ``{"type", "body"}`` pair,
errors as :class:`CryptoError` subclasses whose message says what failed.
Nothing here logs, and no object's ``repr`` shows secret material.

Spec sections implemented: appendices "Unpadded Base64", "Canonical JSON",
"Signing JSON" and "Cryptographic key representation"; client-server
"Secrets" (``m.secret_storage.v1.aes-hmac-sha2``, ``m.pbkdf2``); "Sending
encrypted attachments".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import vodozemac
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# -- errors --


class CryptoError(Exception):
    """A cryptographic operation failed; the message says which and why."""


class KeyFormatError(CryptoError):
    """A key, message or description is malformed (bad base64, wrong length,
    wrong prefix or parity, unknown algorithm)."""


class SignatureError(CryptoError):
    """A signature is missing or does not verify."""


class DecryptionError(CryptoError):
    """A ciphertext could not be decrypted."""


class MacMismatch(DecryptionError):
    """A MAC did not match: wrong key, or the data was changed."""


class HashMismatch(DecryptionError):
    """An encrypted file's SHA-256 is not the one its event announced."""


class UnknownMessageIndex(DecryptionError):
    """A Megolm message is older than the first index this session knows."""


# -- unpadded base64 -----------------------------------------------------------


def b64encode(data: bytes) -> str:
    """Unpadded standard base64, as Matrix writes binary values."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    """Standard base64 with or without padding (the spec asks to accept both)."""
    return _b64decode(text, urlsafe=False)


def urlsafe_b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def urlsafe_b64decode(text: str) -> bytes:
    return _b64decode(text, urlsafe=True)


def _b64decode(text: str, *, urlsafe: bool) -> bytes:
    if not isinstance(text, str):
        raise KeyFormatError("expected a base64 string")
    padded = text + "=" * (-len(text) % 4)
    try:
        if urlsafe:
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("not valid base64") from None


# -- canonical JSON and signed JSON ------------------------------------------

_MAX_SAFE_INT = 2**53 - 1


def canonical_json(value: Any) -> bytes:
    """The spec's Canonical JSON: sorted keys, no white space, UTF-8, integers
    only in [-(2**53)+1, 2**53-1]. A float with an integral value (``1e10``,
    ``-0``) is written as that integer; any other number is refused."""
    return json.dumps(
        _canonical_value(value),
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
        allow_nan=False,
    ).encode("utf-8")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"canonical JSON has no floats: {value!r}")
        value = int(value)
    if isinstance(value, int):
        if not -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT:
            raise ValueError(f"integer out of canonical JSON's range: {value}")
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError("canonical JSON object keys must be strings")
            out[k] = _canonical_value(v)
        return out
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    raise ValueError(f"not a JSON value: {type(value).__name__}")


def signable_json(obj: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the object without ``signatures`` and
    ``unsigned``, in canonical JSON."""
    return canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    )


class Signer(Protocol):
    """Anything that signs with Ed25519 and returns unpadded base64."""

    def sign(self, message: bytes) -> str: ...


def sign_json(
    obj: Mapping[str, Any], signer: Signer, entity: str, key_id: str
) -> dict[str, Any]:
    """A copy of ``obj`` with ``signatures[entity]["ed25519:" + key_id]``
    added; existing signatures and ``unsigned`` are kept."""
    signature = signer.sign(signable_json(obj))
    out = dict(obj)
    signatures = {k: dict(v) for k, v in dict(obj.get("signatures") or {}).items()}
    signatures.setdefault(entity, {})[f"ed25519:{key_id}"] = signature
    out["signatures"] = signatures
    return out


def verify_json(
    obj: Mapping[str, Any], entity: str, key_id: str, public_key: str
) -> None:
    """Raises :class:`SignatureError` unless ``obj`` carries a valid
    ``ed25519:key_id`` signature of ``entity`` by ``public_key``."""
    try:
        signature = obj["signatures"][entity][f"ed25519:{key_id}"]
    except (KeyError, TypeError):
        raise SignatureError(
            f"no ed25519:{key_id} signature of {entity} on the object"
        ) from None
    if not isinstance(signature, str):
        raise SignatureError("the signature is not a string")
    verify_signature(public_key, signable_json(obj), signature)


def verify_signature(public_key: str, message: bytes, signature: str) -> None:
    """Ed25519 check of ``signature`` (unpadded base64) over ``message``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(b64decode(public_key))
        key.verify(b64decode(signature), message)
    except (KeyFormatError, ValueError):
        raise SignatureError("the key or signature is malformed") from None
    except InvalidSignature:
        raise SignatureError("the signature does not verify") from None


# -- Ed25519 keys (cross-signing) -----------------------------------------------


class SigningKey:
    """An Ed25519 private key of our own: a cross-signing master, self-signing
    or user-signing key. Its 32-byte seed is what secret storage keeps."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != 32:
            raise KeyFormatError(f"an Ed25519 seed has 32 bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        """The private key. Secret: store it encrypted, never log it."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> str:
        raw = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return b64encode(raw)

    def sign(self, message: bytes) -> str:
        return b64encode(self._key.sign(message))

    def __repr__(self) -> str:
        return f"<SigningKey {self.public_key}>"


# -- Olm --

OLM_PRE_KEY = 0
OLM_NORMAL = 1


@dataclass(frozen=True, slots=True)
class OlmMessage:
    """One Olm ciphertext as ``m.room.encrypted`` carries it for a device:
    ``type`` 0 (pre-key) or 1 (normal), ``body`` unpadded base64."""

    type: int
    body: str

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "body": self.body}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OlmMessage:
        kind, body = data.get("type"), data.get("body")
        if kind not in (OLM_PRE_KEY, OLM_NORMAL) or not isinstance(body, str):
            raise KeyFormatError("an Olm ciphertext needs type 0 or 1 and a body")
        return cls(kind, body)

    def _native(self) -> vodozemac.AnyOlmMessage:
        try:
            return vodozemac.AnyOlmMessage.from_parts(self.type, b64decode(self.body))
        except ValueError as e:
            raise KeyFormatError(f"malformed Olm message: {e}") from None

    def _pre_key(self) -> vodozemac.PreKeyMessage:
        pre_key = self._native().to_pre_key() if self.type == OLM_PRE_KEY else None
        if pre_key is None:
            raise KeyFormatError("not an Olm pre-key message")
        return pre_key


def _curve(key: str) -> vodozemac.Curve25519PublicKey:
    try:
        return vodozemac.Curve25519PublicKey.from_base64(key)
    except ValueError:
        raise KeyFormatError("malformed Curve25519 key") from None


def _check_pickle_key(key: bytes) -> None:
    if len(key) != 32:
        raise KeyFormatError(f"a pickle key has 32 bytes, not {len(key)}")


class OlmSession:
    """A pairwise Olm session with one device of someone (or of ourselves)."""

    __slots__ = ("_s",)

    def __init__(self, native: vodozemac.Session) -> None:
        self._s = native

    @property
    def session_id(self) -> str:
        return self._s.session_id

    def encrypt(self, plaintext: bytes) -> OlmMessage:
        kind, body = self._s.encrypt(plaintext).to_parts()
        return OlmMessage(kind, b64encode(body))

    def decrypt(self, message: OlmMessage) -> bytes:
        try:
            return self._s.decrypt(message._native())
        except ValueError as e:
            raise DecryptionError(f"Olm decryption failed: {e}") from None

    def matches(self, message: OlmMessage) -> bool:
        """Whether a pre-key message belongs to this session (it then goes to
        :meth:`decrypt`, not to a new inbound session)."""
        if message.type != OLM_PRE_KEY:
            return False
        return self._s.session_matches(message._pre_key())

    def pickle(self, key: bytes) -> str:
        _check_pickle_key(key)
        return self._s.pickle(key)

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> OlmSession:
        _check_pickle_key(key)
        try:
            return cls(vodozemac.Session.from_pickle(pickle, key))
        except ValueError:
            raise MacMismatch(
                "the Olm session pickle does not open with this key"
            ) from None

    def __repr__(self) -> str:
        return f"<OlmSession {self.session_id}>"


class OlmAccount:
    """Our device's Olm account: identity keys, one-time and fallback keys,
    and the device's Ed25519 signatures."""

    __slots__ = ("_a",)

    def __init__(self, native: vodozemac.Account | None = None) -> None:
        self._a = native if native is not None else vodozemac.Account()

    @property
    def curve25519(self) -> str:
        return self._a.curve25519_key.to_base64()

    @property
    def ed25519(self) -> str:
        return self._a.ed25519_key.to_base64()

    def sign(self, message: bytes) -> str:
        return self._a.sign(message).to_base64()

    @property
    def max_one_time_keys(self) -> int:
        return self._a.max_number_of_one_time_keys

    def generate_one_time_keys(self, count: int) -> None:
        self._a.generate_one_time_keys(count)

    @property
    def one_time_keys(self) -> dict[str, str]:
        """Unpublished one-time keys: key id -> Curve25519 public key."""
        return {k: v.to_base64() for k, v in self._a.one_time_keys.items()}

    # vodozemac 0.10's stubs omit the fallback-key methods its module has.
    def generate_fallback_key(self) -> None:
        self._a.generate_fallback_key()  # type: ignore[attr-defined]

    @property
    def fallback_key(self) -> dict[str, str]:
        """The unpublished fallback key, if any: key id -> public key."""
        keys: dict[str, vodozemac.Curve25519PublicKey]
        keys = self._a.fallback_key  # type: ignore[attr-defined]
        return {k: v.to_base64() for k, v in keys.items()}

    def mark_keys_as_published(self) -> None:
        self._a.mark_keys_as_published()

    def device_keys(self, user_id: str, device_id: str) -> dict[str, Any]:
        """The signed ``device_keys`` object for ``/keys/upload``."""
        keys = {
            "user_id": user_id,
            "device_id": device_id,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {
                f"curve25519:{device_id}": self.curve25519,
                f"ed25519:{device_id}": self.ed25519,
            },
        }
        return sign_json(keys, self, user_id, device_id)

    def signed_one_time_keys(self, user_id: str, device_id: str) -> dict[str, Any]:
        """Unpublished one-time keys as ``signed_curve25519`` objects."""
        return {
            f"signed_curve25519:{key_id}": sign_json(
                {"key": key}, self, user_id, device_id
            )
            for key_id, key in self.one_time_keys.items()
        }

    def signed_fallback_keys(self, user_id: str, device_id: str) -> dict[str, Any]:
        """The unpublished fallback key, signed, with ``"fallback": true``."""
        return {
            f"signed_curve25519:{key_id}": sign_json(
                {"key": key, "fallback": True}, self, user_id, device_id
            )
            for key_id, key in self.fallback_key.items()
        }

    def create_outbound_session(
        self, identity_key: str, one_time_key: str
    ) -> OlmSession:
        """A session to a device, from its Curve25519 identity key and a
        one-time (or fallback) key claimed from the homeserver."""
        try:
            native = self._a.create_outbound_session(
                _curve(identity_key), _curve(one_time_key)
            )
        except ValueError as e:
            raise CryptoError(f"cannot create an Olm session: {e}") from None
        return OlmSession(native)

    def create_inbound_session(
        self, sender_key: str, message: OlmMessage
    ) -> tuple[OlmSession, bytes]:
        """A session from a pre-key message of ``sender_key``, and the
        message's plaintext. The one-time key it used is removed."""
        try:
            native, plaintext = self._a.create_inbound_session(
                _curve(sender_key), message._pre_key()
            )
        except ValueError as e:
            raise DecryptionError(
                f"cannot create an inbound Olm session: {e}"
            ) from None
        return OlmSession(native), plaintext

    def pickle(self, key: bytes) -> str:
        _check_pickle_key(key)
        return self._a.pickle(key)

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> OlmAccount:
        _check_pickle_key(key)
        try:
            return cls(vodozemac.Account.from_pickle(pickle, key))
        except ValueError:
            raise MacMismatch(
                "the Olm account pickle does not open with this key"
            ) from None

    def __repr__(self) -> str:
        return f"<OlmAccount {self.curve25519}>"


# -- Megolm --


class MegolmOutbound:
    """Our outbound group session for one room."""

    __slots__ = ("_g",)

    def __init__(self, native: vodozemac.GroupSession | None = None) -> None:
        self._g = native if native is not None else vodozemac.GroupSession()

    @property
    def session_id(self) -> str:
        return self._g.session_id

    @property
    def message_index(self) -> int:
        """The index the next message will have (= messages sent so far)."""
        return self._g.message_index

    @property
    def session_key(self) -> str:
        """The ``session_key`` of ``m.room_key`` at the current index. Secret."""
        return self._g.session_key.to_base64()

    def encrypt(self, plaintext: bytes) -> str:
        """The ``ciphertext`` of an ``m.megolm.v1.aes-sha2`` event."""
        return self._g.encrypt(plaintext).to_base64()

    def pickle(self, key: bytes) -> str:
        _check_pickle_key(key)
        return self._g.pickle(key)

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> MegolmOutbound:
        _check_pickle_key(key)
        try:
            return cls(vodozemac.GroupSession.from_pickle(pickle, key))
        except ValueError:
            raise MacMismatch(
                "the Megolm session pickle does not open with this key"
            ) from None

    def __repr__(self) -> str:
        return f"<MegolmOutbound {self.session_id} at {self.message_index}>"


@dataclass(frozen=True, slots=True)
class MegolmPlaintext:
    """A decrypted Megolm event. ``message_index`` is for replay detection:
    the same (session, index) with another event id is a replay."""

    plaintext: bytes
    message_index: int


def megolm_message_index(ciphertext: str) -> int:
    """The index a Megolm ciphertext claims, without decrypting it."""
    try:
        return vodozemac.MegolmMessage.from_base64(ciphertext).message_index()
    except ValueError as e:
        raise KeyFormatError(f"malformed Megolm message: {e}") from None


class MegolmInbound:
    """A group session received from a sender (``m.room_key``) or imported
    (``m.forwarded_room_key``, key backup, key export)."""

    __slots__ = ("_g",)

    def __init__(self, native: vodozemac.InboundGroupSession) -> None:
        self._g = native

    @classmethod
    def from_session_key(cls, session_key: str) -> MegolmInbound:
        """From an ``m.room_key``'s ``session_key`` (signed by the sender)."""
        try:
            return cls(vodozemac.InboundGroupSession(vodozemac.SessionKey(session_key)))
        except ValueError as e:
            raise KeyFormatError(f"malformed Megolm session key: {e}") from None

    @classmethod
    def from_export(cls, exported_key: str) -> MegolmInbound:
        """From an exported key (forwarded, backed up or exported)."""
        try:
            return cls(
                vodozemac.InboundGroupSession.import_session(
                    vodozemac.ExportedSessionKey(exported_key)
                )
            )
        except ValueError as e:
            raise KeyFormatError(f"malformed exported Megolm key: {e}") from None

    @property
    def session_id(self) -> str:
        return self._g.session_id

    @property
    def first_known_index(self) -> int:
        return self._g.first_known_index

    def decrypt(self, ciphertext: str) -> MegolmPlaintext:
        try:
            message = vodozemac.MegolmMessage.from_base64(ciphertext)
        except ValueError as e:
            raise KeyFormatError(f"malformed Megolm message: {e}") from None
        if message.message_index() < self.first_known_index:
            raise UnknownMessageIndex(
                f"message index {message.message_index()} is before this "
                f"session's first known index {self.first_known_index}"
            )
        try:
            result = self._g.decrypt(message)
        except ValueError as e:
            raise DecryptionError(f"Megolm decryption failed: {e}") from None
        return MegolmPlaintext(result.plaintext, result.message_index)

    def export_at(self, index: int) -> str | None:
        """The exported key from ``index`` on; None before the first known."""
        exported = self._g.export_at(index)
        return exported.to_base64() if exported is not None else None

    def pickle(self, key: bytes) -> str:
        _check_pickle_key(key)
        return self._g.pickle(key)

    @classmethod
    def from_pickle(cls, pickle: str, key: bytes) -> MegolmInbound:
        _check_pickle_key(key)
        try:
            return cls(vodozemac.InboundGroupSession.from_pickle(pickle, key))
        except ValueError:
            raise MacMismatch(
                "the Megolm session pickle does not open with this key"
            ) from None

    def __repr__(self) -> str:
        return f"<MegolmInbound {self.session_id} from {self.first_known_index}>"


# -- SAS --
# Short authentication strings (client-server "Short Authentication String
# (SAS) verification"): the ephemeral Curve25519 exchange, the SAS bytes and
# the hkdf-hmac-sha256.v2 MACs. Our side of one verification.


class SasKeys:
    """An ephemeral key pair for one SAS verification; :meth:`agree` with
    the other side's public key gives the :class:`SasSecret`."""

    __slots__ = ("_sas",)

    def __init__(self) -> None:
        self._sas: vodozemac.Sas | None = vodozemac.Sas()

    @property
    def public_key(self) -> str:
        if self._sas is None:
            raise CryptoError("the SAS key pair was already used")
        return str(self._sas.public_key.to_base64())

    def agree(self, their_public_key: str) -> SasSecret:
        """The shared secret (the key pair is used up)."""
        if self._sas is None:
            raise CryptoError("the SAS key pair was already used")
        their = _curve(their_public_key)
        sas, self._sas = self._sas, None
        try:
            return SasSecret(sas.diffie_hellman(their))
        except vodozemac.SasException as e:
            raise KeyFormatError(f"the other side's SAS key is unusable: {e}") from None

    def __repr__(self) -> str:
        return "<SasKeys>"


class SasSecret:
    """The secret both sides of a SAS verification agreed on."""

    __slots__ = ("_established",)

    def __init__(self, established: vodozemac.EstablishedSas) -> None:
        self._established = established

    def emoji_and_decimals(self, info: str) -> tuple[list[int], tuple[int, int, int]]:
        """The 7 emoji indices (0-63) and the 3 numbers (1000-9191) the
        SAS bytes for ``info`` give."""
        sas_bytes = self._established.bytes(info)
        emoji = [int(i) for i in sas_bytes.emoji_indices]
        first, second, third = sas_bytes.decimals
        return emoji, (int(first), int(second), int(third))

    def mac(self, message: str, info: str) -> str:
        """The hkdf-hmac-sha256.v2 MAC of ``message``, unpadded base64."""
        return str(self._established.calculate_mac(message, info))

    def mac_matches(self, message: str, info: str, mac: str) -> bool:
        try:
            self._established.verify_mac(message, info, mac)
        except (vodozemac.SasException, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return "<SasSecret>"


def sas_commitment(public_key: str, start_content: Mapping[str, Any]) -> str:
    """The commitment of an m.key.verification.accept: SHA-256 of the
    accepting side's public key and the canonical JSON of the start."""
    digest = hashlib.sha256(public_key.encode() + canonical_json(start_content))
    return b64encode(digest.digest())


# -- AES-CTR, HMAC, HKDF, PBKDF2 ------------------------------------------------


def _aes_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf_sha256(key: bytes, info: bytes, length: int, salt: bytes = bytes(32)) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(
        key
    )


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


# -- secret storage (m.secret_storage.v1.aes-hmac-sha2) ------------------------

SECRET_STORAGE_ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
_RECOVERY_PREFIX = bytes([0x8B, 0x01])
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58_encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_BASE58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _base58_decode(text: str) -> bytes:
    n = 0
    for ch in text:
        digit = _BASE58.find(ch)
        if digit < 0:
            raise KeyFormatError("the recovery key has a character outside base58")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body


def encode_recovery_key(key: bytes) -> str:
    """A 32-byte secret storage key as the user sees it: base58 of prefix,
    key and parity byte, a space after every 4 characters."""
    if len(key) != 32:
        raise KeyFormatError(f"a recovery key holds 32 bytes, not {len(key)}")
    data = _RECOVERY_PREFIX + key
    parity = 0
    for b in data:
        parity ^= b
    text = _base58_encode(data + bytes([parity]))
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def decode_recovery_key(text: str) -> bytes:
    """The 32-byte key of a recovery key; white space is ignored."""
    data = _base58_decode("".join(text.split()))
    if len(data) != 2 + 32 + 1:
        raise KeyFormatError("the recovery key has the wrong length")
    if data[:2] != _RECOVERY_PREFIX:
        raise KeyFormatError("the recovery key has the wrong prefix")
    parity = 0
    for b in data:
        parity ^= b
    if parity:
        raise KeyFormatError("the recovery key's parity byte does not match")
    return data[2:-1]


def passphrase_key(
    passphrase: str, salt: str, iterations: int, bits: int = 256
) -> bytes:
    """A secret storage key from a passphrase (``m.pbkdf2``: PBKDF2 with
    SHA-512 over the salt string as given)."""
    if bits % 8 or bits <= 0 or iterations <= 0:
        raise KeyFormatError("m.pbkdf2 needs positive iterations and whole bytes")
    return hashlib.pbkdf2_hmac(
        "sha512",
        passphrase.encode("utf-8"),
        salt.encode("utf-8"),
        iterations,
        bits // 8,
    )


def _secret_keys(key: bytes, name: str) -> tuple[bytes, bytes]:
    if len(key) != 32:
        raise KeyFormatError(f"a secret storage key has 32 bytes, not {len(key)}")
    derived = hkdf_sha256(key, name.encode("utf-8"), 64)
    return derived[:32], derived[32:]


def _secret_iv() -> bytes:
    iv = bytearray(random_bytes(16))
    iv[8] &= 0x7F  # bit 63 cleared: AES-CTR implementations differ on counter overflow
    return bytes(iv)


def encrypt_secret(key: bytes, name: str, secret: str) -> dict[str, str]:
    """The ``encrypted[key_id]`` object storing ``secret`` under ``name``."""
    aes_key, mac_key = _secret_keys(key, name)
    iv = _secret_iv()
    ciphertext = _aes_ctr(aes_key, iv, secret.encode("utf-8"))
    return {
        "iv": b64encode(iv),
        "ciphertext": b64encode(ciphertext),
        "mac": b64encode(_hmac_sha256(mac_key, ciphertext)),
    }


def decrypt_secret(key: bytes, name: str, encrypted: Mapping[str, Any]) -> str:
    """The secret of an ``encrypted[key_id]`` object; :class:`MacMismatch`
    when the key is wrong or the data was changed."""
    try:
        iv = b64decode(encrypted["iv"])
        ciphertext = b64decode(encrypted["ciphertext"])
        mac = b64decode(encrypted["mac"])
    except (KeyError, TypeError):
        raise KeyFormatError("encrypted secret needs iv, ciphertext and mac") from None
    if len(iv) != 16:
        raise KeyFormatError("the secret's iv is not 16 bytes")
    aes_key, mac_key = _secret_keys(key, name)
    if not hmac.compare_digest(_hmac_sha256(mac_key, ciphertext), mac):
        raise MacMismatch(
            f"the MAC of secret {name} does not match: wrong key or changed data"
        )
    try:
        return _aes_ctr(aes_key, iv, ciphertext).decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(f"secret {name} is not UTF-8 text") from None


def secret_storage_key_check(key: bytes) -> dict[str, str]:
    """The ``iv`` and ``mac`` a key description carries so that a client can
    tell whether a key is the right one (32 zero bytes, empty name)."""
    aes_key, mac_key = _secret_keys(key, "")
    iv = _secret_iv()
    ciphertext = _aes_ctr(aes_key, iv, bytes(32))
    return {"iv": b64encode(iv), "mac": b64encode(_hmac_sha256(mac_key, ciphertext))}


def check_secret_storage_key(key: bytes, description: Mapping[str, Any]) -> bool:
    """Whether ``key`` is the key of an ``m.secret_storage.key.*`` description.
    A description without ``iv``/``mac`` cannot be checked: the spec says to
    assume the key is right."""
    if description.get("algorithm") != SECRET_STORAGE_ALGORITHM:
        raise KeyFormatError(
            f"unknown secret storage algorithm {description.get('algorithm')!r}"
        )
    if "iv" not in description or "mac" not in description:
        return True
    iv, mac = b64decode(description["iv"]), b64decode(description["mac"])
    if len(iv) != 16:
        raise KeyFormatError("the key description's iv is not 16 bytes")
    aes_key, mac_key = _secret_keys(key, "")
    expected = _hmac_sha256(mac_key, _aes_ctr(aes_key, iv, bytes(32)))
    return hmac.compare_digest(expected, mac)


# -- encrypted attachments --

ATTACHMENT_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class AttachmentKey:
    """What an ``EncryptedFile`` object says about decrypting it."""

    key: bytes
    iv: bytes
    sha256: bytes

    @classmethod
    def from_json(cls, file: Mapping[str, Any]) -> AttachmentKey:
        """Validates an ``EncryptedFile`` (``v2``, ``A256CTR``, ``oct``)."""
        try:
            jwk, iv, sha = file["key"], file["iv"], file["hashes"]["sha256"]
            if file.get("v") != "v2":
                raise KeyFormatError(
                    f"unknown encrypted file version {file.get('v')!r}"
                )
            if jwk.get("alg") != "A256CTR" or jwk.get("kty") != "oct":
                raise KeyFormatError("the file key is not an A256CTR oct key")
            ops = jwk.get("key_ops") or []
            if "encrypt" not in ops or "decrypt" not in ops:
                raise KeyFormatError("the file key's key_ops lack encrypt/decrypt")
            key = urlsafe_b64decode(jwk["k"])
            out = cls(key, b64decode(iv), b64decode(sha))
        except (KeyError, TypeError, AttributeError):
            raise KeyFormatError(
                "an encrypted file needs key, iv and hashes.sha256"
            ) from None
        if len(out.key) != 32 or len(out.iv) != 16 or len(out.sha256) != 32:
            raise KeyFormatError("the file's key, iv or hash has the wrong length")
        return out

    def to_json(self) -> dict[str, Any]:
        """The ``EncryptedFile`` object, without ``url`` (the caller adds it)."""
        return {
            "v": "v2",
            "key": {
                "kty": "oct",
                "key_ops": ["encrypt", "decrypt"],
                "alg": "A256CTR",
                "k": urlsafe_b64encode(self.key),
                "ext": True,
            },
            "iv": b64encode(self.iv),
            "hashes": {"sha256": b64encode(self.sha256)},
        }

    def __repr__(self) -> str:
        return f"<AttachmentKey sha256={b64encode(self.sha256)}>"


def encrypt_attachment(src: IO[bytes], dst: IO[bytes]) -> AttachmentKey:
    """Encrypts ``src`` into ``dst`` chunk by chunk with a fresh key; the
    result describes the ciphertext (its ``to_json`` goes in the event)."""
    key = random_bytes(32)
    iv = random_bytes(8) + bytes(8)  # counter half zero: room for 2**64 blocks
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    digest = hashlib.sha256()
    while chunk := src.read(ATTACHMENT_CHUNK):
        out = enc.update(chunk)
        digest.update(out)
        dst.write(out)
    tail = enc.finalize()
    digest.update(tail)
    dst.write(tail)
    return AttachmentKey(key, iv, digest.digest())


def attachment_hash_matches(src: IO[bytes], key: AttachmentKey) -> bool:
    """Whether the ciphertext read from ``src`` has the announced SHA-256."""
    digest = hashlib.sha256()
    while chunk := src.read(ATTACHMENT_CHUNK):
        digest.update(chunk)
    return hmac.compare_digest(digest.digest(), key.sha256)


def decrypt_attachment(src: IO[bytes], dst: IO[bytes], key: AttachmentKey) -> None:
    """Decrypts a seekable ``src`` into ``dst``. The whole ciphertext's hash
    is checked first, so nothing is written for a changed file: it raises
    :class:`HashMismatch` instead."""
    start = src.tell()
    if not attachment_hash_matches(src, key):
        raise HashMismatch(
            "the encrypted file's SHA-256 does not match its event's hash: "
            "it was changed or truncated, and is not decrypted"
        )
    src.seek(start)
    dec = Cipher(algorithms.AES(key.key), modes.CTR(key.iv)).decryptor()
    while chunk := src.read(ATTACHMENT_CHUNK):
        dst.write(dec.update(chunk))
    dst.write(dec.finalize())


# -- sealing values at rest (the key store) --


class StoreCipher:
    """Seals the key store's values with AES-256-GCM under keys derived from
    one per-user store key. The associated data names the row, so a value
    copied to another row does not open."""

    __slots__ = ("_aead", "pickle_key")

    def __init__(self, store_key: bytes) -> None:
        if len(store_key) != 32:
            raise KeyFormatError(f"a store key has 32 bytes, not {len(store_key)}")
        self._aead = AESGCM(hkdf_sha256(store_key, b"matridge key store: values", 32))
        self.pickle_key: bytes = hkdf_sha256(
            store_key, b"matridge key store: pickles", 32
        )

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = random_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], associated)
        except (InvalidTag, ValueError):
            raise MacMismatch(
                "a sealed value does not open: wrong key or changed data"
            ) from None

    def __repr__(self) -> str:
        return "<StoreCipher>"


# -- key backup --
# Server-side key backup, m.megolm_backup.v1.curve25519-aes-sha2: each
# session is encrypted to the backup's Curve25519 public key (libolm's "PK
# encryption": an ephemeral key, AES-CBC, a truncated HMAC); only the
# holder of the private key, the user's backup key, reads it back.

BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"


def backup_encrypt(public_key: str, plaintext: bytes) -> dict[str, str]:
    """``session_data`` (``ephemeral``, ``mac``, ``ciphertext``) for a key
    backup whose ``auth_data.public_key`` is ``public_key``."""
    try:
        encryption = vodozemac.PkEncryption.from_key(_curve(public_key))
        message = encryption.encrypt(plaintext)
    except ValueError as e:
        raise CryptoError(f"cannot encrypt for the key backup: {e}") from None
    return {
        "ephemeral": b64encode(message.ephemeral_key),
        "mac": b64encode(message.mac),
        "ciphertext": b64encode(message.ciphertext),
    }


class BackupKey:
    """The private key of a key backup (the secret ``m.megolm_backup.v1``)."""

    __slots__ = ("_d",)

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise KeyFormatError(f"a backup key has 32 bytes, not {len(key)}")
        try:
            secret = vodozemac.Curve25519SecretKey.from_bytes(key)
            self._d = vodozemac.PkDecryption.from_key(secret)
        except ValueError as e:
            raise KeyFormatError(f"malformed backup key: {e}") from None

    @property
    def public_key(self) -> str:
        """What the backup's ``auth_data.public_key`` must be."""
        return self._d.public_key.to_base64()

    def decrypt(self, session_data: Mapping[str, Any]) -> bytes:
        """The plaintext of one backed-up session's ``session_data``;
        :class:`DecryptionError` when it is not for this key or changed."""
        try:
            ephemeral = b64decode(session_data["ephemeral"])
            mac = b64decode(session_data["mac"])
            ciphertext = b64decode(session_data["ciphertext"])
        except (KeyError, TypeError):
            raise KeyFormatError(
                "backed-up session data needs ephemeral, mac and ciphertext"
            ) from None
        try:
            return self._d.decrypt(vodozemac.Message(ciphertext, mac, ephemeral))
        except ValueError as e:
            raise DecryptionError(
                f"the backed-up session does not decrypt: {e}"
            ) from None

    def __repr__(self) -> str:
        return f"<BackupKey {self.public_key}>"
