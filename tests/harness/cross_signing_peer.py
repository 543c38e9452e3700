"""A Matrix account set up as Element sets it up, written from the
client-server spec's "Cross-signing" and "Secret storage" sections
(matrix-nio has neither): a master, self-signing and user-signing key
published with ``/keys/device_signing/upload``, and secret storage holding
their private keys, encrypted with a default key that comes from a recovery
key or from a passphrase.

Test code: it uses matridge's primitives for the cryptography, and talks to
the homeserver raw (:class:`MatrixUser`), never through matridge's client.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from matridge.crypto.primitives import (
    SECRET_STORAGE_ALGORITHM,
    SignatureError,
    SigningKey,
    b64encode,
    encode_recovery_key,
    encrypt_secret,
    passphrase_key,
    random_bytes,
    secret_storage_key_check,
    sign_json,
    verify_json,
)
from tests.harness.matrix_user import MatrixError, MatrixUser

MASTER = "m.cross_signing.master"
SELF_SIGNING = "m.cross_signing.self_signing"
USER_SIGNING = "m.cross_signing.user_signing"
MEGOLM_BACKUP = "m.megolm_backup.v1"
# Far below Element's 500 000: the tests only need the derivation right.
TEST_PBKDF2_ITERATIONS = 1000


@dataclass
class Identity:
    """A user's cross-signing keys, private halves included."""

    user_id: str
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls, user_id: str) -> Identity:
        return cls(
            user_id, SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
        )

    def _key(self, usage: str, key: SigningKey) -> dict[str, Any]:
        obj = {
            "user_id": self.user_id,
            "usage": [usage],
            "keys": {f"ed25519:{key.public_key}": key.public_key},
        }
        if usage == "master":
            return obj
        return sign_json(obj, self.master, self.user_id, self.master.public_key)

    def upload_body(self) -> dict[str, Any]:
        return {
            "master_key": self._key("master", self.master),
            "self_signing_key": self._key("self_signing", self.self_signing),
            "user_signing_key": self._key("user_signing", self.user_signing),
        }


def publish(user: MatrixUser, identity: Identity, password: str = "pw") -> bool:
    """Uploads the identity. Returns whether the homeserver took the first
    upload without user-interactive authentication (MSC3967); if it asked
    for it, the upload is repeated with the password, as Element would."""
    body = identity.upload_body()
    try:
        user.request("POST", "/keys/device_signing/upload", body)
        return True
    except MatrixError as e:
        if e.status != 401:
            raise
        session = _json(e.body).get("session")
    body["auth"] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": password,
        "session": session,
    }
    user.request("POST", "/keys/device_signing/upload", body)
    return False


def _json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class SecretStorage:
    """What the user keeps: the recovery key (always) and, if set, the
    passphrase; the default key's id."""

    key_id: str
    key: bytes
    recovery_key: str
    passphrase: str | None


def set_up_secret_storage(
    user: MatrixUser,
    secrets: dict[str, bytes],
    *,
    passphrase: str | None = None,
    as_default: bool = True,
) -> SecretStorage:
    """A secret storage key (from a passphrase when given, random
    otherwise) described in account data, made the default, and each
    secret (name -> raw bytes) stored under it as unpadded base64."""
    key_id = uuid.uuid4().hex
    description: dict[str, Any] = {
        "name": "test key",
        "algorithm": SECRET_STORAGE_ALGORITHM,
    }
    if passphrase is None:
        key = random_bytes(32)
    else:
        salt = b64encode(random_bytes(24))
        key = passphrase_key(passphrase, salt, TEST_PBKDF2_ITERATIONS)
        description["passphrase"] = {
            "algorithm": "m.pbkdf2",
            "salt": salt,
            "iterations": TEST_PBKDF2_ITERATIONS,
            "bits": 256,
        }
    description.update(secret_storage_key_check(key))
    put_account_data(user, f"m.secret_storage.key.{key_id}", description)
    for name, value in secrets.items():
        put_account_data(
            user,
            name,
            {"encrypted": {key_id: encrypt_secret(key, name, b64encode(value))}},
        )
    if as_default:
        put_account_data(user, "m.secret_storage.default_key", {"key": key_id})
    return SecretStorage(key_id, key, encode_recovery_key(key), passphrase)


def identity_secrets(identity: Identity) -> dict[str, bytes]:
    return {
        MASTER: identity.master.seed,
        SELF_SIGNING: identity.self_signing.seed,
        USER_SIGNING: identity.user_signing.seed,
    }


def put_account_data(user: MatrixUser, event_type: str, content: Any) -> None:
    user.request(
        "PUT", f"/user/{_q(user.user_id)}/account_data/{_q(event_type)}", content
    )


def get_account_data(user: MatrixUser, event_type: str) -> dict[str, Any]:
    return user.request(
        "GET", f"/user/{_q(user.user_id)}/account_data/{_q(event_type)}"
    )


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def element_like_account(
    user: MatrixUser, *, passphrase: str | None = None
) -> tuple[Identity, SecretStorage]:
    """An account as Element leaves it after "set up recovery"."""
    identity = Identity.generate(user.user_id)
    publish(user, identity)
    storage = set_up_secret_storage(
        user,
        identity_secrets(identity) | {MEGOLM_BACKUP: random_bytes(32)},
        passphrase=passphrase,
    )
    return identity, storage


def query_keys(viewer: MatrixUser, user_id: str) -> dict[str, Any]:
    return viewer.request("POST", "/keys/query", {"device_keys": {user_id: []}})


def master_key_of(viewer: MatrixUser, user_id: str) -> str | None:
    """The master public key ``viewer`` sees for ``user_id``."""
    obj = query_keys(viewer, user_id).get("master_keys", {}).get(user_id)
    if obj is None:
        return None
    ((public,),) = [list(obj["keys"].values())]
    assert isinstance(public, str)
    return public


def device_signed_by_self_signing_key(
    viewer: MatrixUser, user_id: str, device_id: str
) -> bool:
    """Whether ``viewer`` sees ``device_id`` signed by the self-signing key
    that ``user_id``'s master key signed: the chain a client checks."""
    res = query_keys(viewer, user_id)
    master_obj = res.get("master_keys", {}).get(user_id)
    ssk_obj = res.get("self_signing_keys", {}).get(user_id)
    device = res.get("device_keys", {}).get(user_id, {}).get(device_id)
    if master_obj is None or ssk_obj is None or device is None:
        return False
    ((master,),) = [list(master_obj["keys"].values())]
    ((ssk,),) = [list(ssk_obj["keys"].values())]
    try:
        verify_json(ssk_obj, user_id, master, master)
        verify_json(device, user_id, ssk, ssk)
    except SignatureError:
        return False
    return True
