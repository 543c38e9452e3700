"""The user's other device, as Element behaves in an interactive (emoji)
verification, written from the client-server spec's "Key verification
framework", "Short Authentication String (SAS) verification" and
"Secrets" sections.

Its SAS arithmetic (X25519, HKDF, HMAC, the emoji and decimal bit
extraction, the commitment) is done here with ``cryptography`` from the
spec's text, independently of matridge's vodozemac-based side, so that the
two agreeing checks the derivation. Its device keys and Olm (for
``m.secret.send``) use vodozemac through matridge's primitives. It talks to
the homeserver raw (:class:`MatrixUser`), synchronously: call it from
``asyncio.to_thread`` when the gateway's side runs on the loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from matridge.crypto.primitives import OlmAccount, b64encode, sign_json
from tests.harness.cross_signing_peer import Identity
from tests.harness.matrix_user import MatrixUser

V = "m.key.verification."


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical(value: Any) -> bytes:
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()


def hkdf(secret: bytes, info: str, length: int) -> bytes:
    # "No salt is used": RFC 5869's default, a block of zeros.
    return HKDF(hashes.SHA256(), length, None, info.encode()).derive(secret)


def emoji_indices(sas: bytes) -> list[int]:
    """The spec: the first 42 bits of 6 bytes, 6 bits per emoji."""
    bits = int.from_bytes(sas[:6], "big") >> 6
    return [(bits >> (36 - 6 * i)) & 0x3F for i in range(7)]


def decimals(sas: bytes) -> tuple[int, int, int]:
    """The spec's three 13-bit numbers of the first 5 bytes, plus 1000."""
    b = sas
    return (
        (b[0] << 5 | b[1] >> 3) + 1000,
        ((b[1] & 0x7) << 10 | b[2] << 2 | b[3] >> 6) + 1000,
        ((b[3] & 0x3F) << 7 | b[4] >> 1) + 1000,
    )


def mac(secret: bytes, message: str, info: str) -> str:
    """hkdf-hmac-sha256.v2."""
    key = hkdf(secret, info, 32)
    return b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


def x25519_public(private: X25519PrivateKey) -> str:
    return b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


@dataclass
class PeerSas:
    """The peer's side of one verification."""

    txn: str
    other_device: str
    private: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    start: dict[str, Any] | None = None
    we_started: bool = False
    commitment: str | None = None
    their_key: str | None = None
    secret: bytes | None = None
    emoji: list[int] = field(default_factory=list)
    decimals: tuple[int, int, int] = (0, 0, 0)

    @property
    def public(self) -> str:
        return x25519_public(self.private)


class SasPeer:
    """Another login of the user: its own device with keys, cross-signed
    by the user's identity when asked, that verifies and shares secrets."""

    def __init__(self, user: MatrixUser, device_id: str) -> None:
        self.user = user
        self.device_id = device_id
        self.account = OlmAccount()
        self.since: str | None = None
        self.inbox: list[dict[str, Any]] = []
        self.sas: dict[str, PeerSas] = {}

    @classmethod
    def login(
        cls, base_url: str, username: str, password: str, device_id: str | None = None
    ) -> SasPeer:
        """A new login of the user (with this device id, if given)."""
        body: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        }
        if device_id is not None:
            body["device_id"] = device_id
        request = urllib.request.Request(
            base_url.rstrip("/") + "/_matrix/client/v3/login",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            answer = json.loads(resp.read())
        user = MatrixUser(base_url, answer["access_token"], answer["user_id"])
        peer = cls(user, answer["device_id"])
        peer.upload_keys()
        peer.sync()  # from now on, only what comes next
        peer.inbox.clear()
        return peer

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def upload_keys(self) -> None:
        self.account.generate_one_time_keys(5)
        self.user.request(
            "POST",
            "/keys/upload",
            {
                "device_keys": self.account.device_keys(self.user_id, self.device_id),
                "one_time_keys": self.account.signed_one_time_keys(
                    self.user_id, self.device_id
                ),
            },
        )
        self.account.mark_keys_as_published()

    def cross_sign_device(self, identity: Identity, device_id: str) -> None:
        """Signs a device of the user (this one, or another) with the
        identity's self-signing key, as a verified client does."""
        keys = self.user.request(
            "POST", "/keys/query", {"device_keys": {self.user_id: [device_id]}}
        )["device_keys"][self.user_id][device_id]
        keys.pop("unsigned", None)
        signed = sign_json(
            keys, identity.self_signing, self.user_id, identity.self_signing.public_key
        )
        res = self.user.request(
            "POST", "/keys/signatures/upload", {self.user_id: {device_id: signed}}
        )
        assert not res.get("failures"), res

    # -- to-device ------------------------------------------------------------

    def sync(self, timeout_ms: int = 0) -> None:
        res = self.user.sync(self.since, timeout_ms)
        self.since = res["next_batch"]
        self.inbox += res.get("to_device", {}).get("events", [])

    def wait_for(self, kind: str, timeout: float = 20) -> dict[str, Any]:
        """The content of the next to-device event of ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.inbox):
                if event.get("type") == kind:
                    del self.inbox[i]
                    content: dict[str, Any] = event["content"]
                    return content
            if time.monotonic() > deadline:
                kinds = [e.get("type") for e in self.inbox]
                raise TimeoutError(f"no {kind} came; inbox: {kinds}")
            self.sync(1000)

    def send(self, kind: str, device_id: str, content: dict[str, Any]) -> None:
        self.user.request(
            "PUT",
            f"/sendToDevice/{kind}/{uuid.uuid4().hex}",
            {"messages": {self.user_id: {device_id: content}}},
        )

    # -- the verification -------------------------------------------------------

    def request(self, device_id: str) -> str:
        txn = uuid.uuid4().hex
        self.sas[txn] = PeerSas(txn, device_id)
        self.send(
            V + "request",
            device_id,
            {
                "from_device": self.device_id,
                "methods": ["m.sas.v1"],
                "timestamp": int(time.time() * 1000),
                "transaction_id": txn,
            },
        )
        return txn

    def ready(self, request: dict[str, Any]) -> str:
        txn = str(request["transaction_id"])
        self.sas[txn] = PeerSas(txn, str(request["from_device"]))
        assert "m.sas.v1" in request["methods"]
        self.send(
            V + "ready",
            request["from_device"],
            {
                "from_device": self.device_id,
                "methods": ["m.sas.v1"],
                "transaction_id": txn,
            },
        )
        return txn

    def start(self, txn: str) -> None:
        s = self.sas[txn]
        s.we_started = True
        s.start = {
            "from_device": self.device_id,
            "method": "m.sas.v1",
            "key_agreement_protocols": ["curve25519-hkdf-sha256"],
            "hashes": ["sha256"],
            "message_authentication_codes": ["hkdf-hmac-sha256.v2"],
            "short_authentication_string": ["decimal", "emoji"],
            "transaction_id": txn,
        }
        self.send(V + "start", s.other_device, s.start)

    def accept(self, start: dict[str, Any]) -> None:
        """Accepts the other side's start, committing to our key."""
        s = self.sas[str(start["transaction_id"])]
        assert "curve25519-hkdf-sha256" in start["key_agreement_protocols"]
        assert "hkdf-hmac-sha256.v2" in start["message_authentication_codes"]
        s.start = start
        commitment = b64(hashlib.sha256(s.public.encode() + canonical(start)).digest())
        self.send(
            V + "accept",
            s.other_device,
            {
                "method": "m.sas.v1",
                "key_agreement_protocol": "curve25519-hkdf-sha256",
                "hash": "sha256",
                "message_authentication_code": "hkdf-hmac-sha256.v2",
                "short_authentication_string": ["decimal", "emoji"],
                "commitment": commitment,
                "transaction_id": s.txn,
            },
        )

    def send_key(self, txn: str) -> None:
        s = self.sas[txn]
        self.send(V + "key", s.other_device, {"key": s.public, "transaction_id": txn})

    def their_key(self, txn: str, key_content: dict[str, Any]) -> None:
        """Takes their key: checks the commitment (if we started), agrees,
        and computes the emoji and numbers."""
        s = self.sas[txn]
        key = str(key_content["key"])
        if s.we_started:
            assert s.commitment is not None and s.start is not None
            expected = b64(hashlib.sha256(key.encode() + canonical(s.start)).digest())
            assert expected == s.commitment, "the commitment did not match"
        s.their_key = key
        s.secret = s.private.exchange(X25519PublicKey.from_public_bytes(unb64(key)))
        me = (self.user_id, self.device_id, s.public)
        them = (self.user_id, s.other_device, key)
        starter, accepter = (me, them) if s.we_started else (them, me)
        info = "|".join(("MATRIX_KEY_VERIFICATION_SAS", *starter, *accepter, txn))
        sas_bytes = hkdf(s.secret, info, 6)
        s.emoji = emoji_indices(sas_bytes)
        s.decimals = decimals(sas_bytes)

    def send_mac(self, txn: str, master: str | None) -> None:
        s = self.sas[txn]
        assert s.secret is not None
        keys = {f"ed25519:{self.device_id}": self.account.ed25519}
        if master is not None:
            keys[f"ed25519:{master}"] = master
        base = "MATRIX_KEY_VERIFICATION_MAC" + "".join(
            (self.user_id, self.device_id, self.user_id, s.other_device, txn)
        )
        self.send(
            V + "mac",
            s.other_device,
            {
                "mac": {k: mac(s.secret, v, base + k) for k, v in keys.items()},
                "keys": mac(s.secret, ",".join(sorted(keys)), base + "KEY_IDS"),
                "transaction_id": txn,
            },
        )

    def check_mac(
        self, txn: str, content: dict[str, Any], expected: dict[str, str]
    ) -> None:
        """Their MACs must cover exactly the keys ``expected`` (key id ->
        public key) and match."""
        s = self.sas[txn]
        assert s.secret is not None
        base = "MATRIX_KEY_VERIFICATION_MAC" + "".join(
            (self.user_id, s.other_device, self.user_id, self.device_id, txn)
        )
        assert set(content["mac"]) == set(expected), content["mac"].keys()
        ids = ",".join(sorted(content["mac"]))
        assert content["keys"] == mac(s.secret, ids, base + "KEY_IDS")
        for key_id, value in expected.items():
            assert content["mac"][key_id] == mac(s.secret, value, base + key_id), key_id

    def done(self, txn: str) -> None:
        self.send(V + "done", self.sas[txn].other_device, {"transaction_id": txn})

    def cancel(self, txn: str, code: str = "m.user") -> None:
        self.send(
            V + "cancel",
            self.sas[txn].other_device,
            {"code": code, "reason": "test", "transaction_id": txn},
        )

    # -- secrets -------------------------------------------------------------------

    def olm_to(self, device_id: str, kind: str, content: dict[str, Any]) -> None:
        """Sends ``content`` over a new Olm session to a device of the user."""
        keys = self.user.request(
            "POST", "/keys/query", {"device_keys": {self.user_id: [device_id]}}
        )["device_keys"][self.user_id][device_id]
        claimed = self.user.request(
            "POST",
            "/keys/claim",
            {"one_time_keys": {self.user_id: {device_id: "signed_curve25519"}}},
        )["one_time_keys"][self.user_id][device_id]
        ((one_time,),) = [[v["key"] for v in claimed.values()]]
        curve = keys["keys"][f"curve25519:{device_id}"]
        session = self.account.create_outbound_session(curve, one_time)
        payload = {
            "type": kind,
            "content": content,
            "sender": self.user_id,
            "sender_device": self.device_id,
            "recipient": self.user_id,
            "recipient_keys": {"ed25519": keys["keys"][f"ed25519:{device_id}"]},
            "keys": {"ed25519": self.account.ed25519},
        }
        ciphertext = session.encrypt(json.dumps(payload).encode())
        self.send(
            "m.room.encrypted",
            device_id,
            {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": self.account.curve25519,
                "ciphertext": {curve: ciphertext.to_json()},
            },
        )

    def answer_secret_requests(
        self, secrets: dict[str, bytes], count: int, *, clear: bool = False
    ) -> list[dict[str, Any]]:
        """Waits for ``count`` m.secret.request and answers each it has a
        secret for with an m.secret.send over Olm (in the clear with
        ``clear``, which a careful client never does). Returns them."""
        requests = [self.wait_for("m.secret.request") for _ in range(count)]
        for request in requests:
            if request.get("action") != "request" or request["name"] not in secrets:
                continue
            content = {
                "request_id": request["request_id"],
                "secret": b64encode(secrets[request["name"]]),
            }
            device = str(request["requesting_device_id"])
            if clear:
                self.send("m.secret.send", device, content)
            else:
                self.olm_to(device, "m.secret.send", content)
        return requests
