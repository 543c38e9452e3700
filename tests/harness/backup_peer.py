"""A server-side key backup as Element keeps one, written from the
client-server spec's "Server-side key backups"
(``m.megolm_backup.v1.curve25519-aes-sha2``): a backup version whose
``auth_data`` holds the backup key's public half, signed by the user's
master key; sessions put in it encrypted to that key; and reading them
back with the private key.

Test code: the PK encryption is vodozemac's, used directly; requests go
raw (:class:`MatrixUser`), never through matridge.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import vodozemac

from matridge.crypto.primitives import (
    Signer,
    b64decode,
    b64encode,
    sign_json,
)
from tests.harness.matrix_user import MatrixError, MatrixUser

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"


def public_key_of(backup_key: bytes) -> str:
    secret = vodozemac.Curve25519SecretKey.from_bytes(backup_key)
    return vodozemac.PkDecryption.from_key(secret).public_key.to_base64()


def create_version(
    user: MatrixUser,
    backup_key: bytes,
    signer: Signer | None,
    key_id: str | None = None,
) -> str:
    """A new backup version for ``backup_key``; its ``auth_data`` signed by
    ``signer`` under ``ed25519:key_id`` (a master key's public key when not
    given), or not signed at all."""
    auth_data: dict[str, Any] = {"public_key": public_key_of(backup_key)}
    if signer is not None:
        auth_data = sign_json(
            auth_data, signer, user.user_id, key_id or signer.public_key
        )
    res = user.request(
        "POST", "/room_keys/version", {"algorithm": ALGORITHM, "auth_data": auth_data}
    )
    return str(res["version"])


def put_session(
    user: MatrixUser,
    version: str,
    backup_key: bytes,
    room_id: str,
    sender_key: str,
    session_id: str,
    exported_key: str,
    first_message_index: int,
    sender_ed25519: str,
    forwarding_chain: list[str] | None = None,
) -> None:
    """One session in the backup, as a client that received it uploads it."""
    chain = forwarding_chain or []
    plain = {
        "algorithm": MEGOLM,
        "sender_key": sender_key,
        "sender_claimed_keys": {"ed25519": sender_ed25519},
        "forwarding_curve25519_key_chain": chain,
        "session_key": exported_key,
    }
    encryption = vodozemac.PkEncryption.from_key(
        vodozemac.Curve25519PublicKey.from_base64(public_key_of(backup_key))
    )
    message = encryption.encrypt(json.dumps(plain).encode())
    user.request(
        "PUT",
        f"/room_keys/keys/{_q(room_id)}/{_q(session_id)}?version={_q(version)}",
        {
            "first_message_index": first_message_index,
            "forwarded_count": len(chain),
            "is_verified": True,
            "session_data": {
                "ephemeral": b64encode(message.ephemeral_key),
                "mac": b64encode(message.mac),
                "ciphertext": b64encode(message.ciphertext),
            },
        },
    )


def read_session(
    user: MatrixUser, version: str, backup_key: bytes, room_id: str, session_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A backed-up session: its ``KeyBackupData`` and its decrypted
    ``session_data``; None when the backup does not hold it."""
    try:
        data = user.request(
            "GET",
            f"/room_keys/keys/{_q(room_id)}/{_q(session_id)}?version={_q(version)}",
        )
    except MatrixError as e:
        if e.status == 404:
            return None
        raise
    encrypted = data["session_data"]
    secret = vodozemac.Curve25519SecretKey.from_bytes(backup_key)
    plain = vodozemac.PkDecryption.from_key(secret).decrypt(
        vodozemac.Message(
            b64decode(encrypted["ciphertext"]),
            b64decode(encrypted["mac"]),
            b64decode(encrypted["ephemeral"]),
        )
    )
    return data, json.loads(plain)


def all_sessions(user: MatrixUser, version: str) -> dict[str, list[str]]:
    """Room id -> the session ids the backup holds."""
    res = user.request("GET", f"/room_keys/keys?version={_q(version)}")
    return {room_id: sorted(room["sessions"]) for room_id, room in res["rooms"].items()}


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
