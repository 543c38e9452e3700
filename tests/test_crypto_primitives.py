"""matridge.crypto.primitives against the spec's own test vectors, plus round
trips and tampering. Vectors: appendices "Unpadded Base64", "Canonical JSON"
(examples), "Cryptographic Test Vectors" (JSON signing), the spec's
EncryptedFile example; the recovery key vector is the RFC 7748 test key as
other Matrix clients encode it; PBKDF2-HMAC-SHA512 from the published
("password", "salt", 1) vector."""

from __future__ import annotations

import io
import json

import pytest

from matridge.crypto import primitives as p

# -- unpadded base64 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
    ],
)
def test_unpadded_base64_spec_examples(raw: bytes, encoded: str) -> None:
    assert p.b64encode(raw) == encoded
    assert p.b64decode(encoded) == raw
    assert p.b64decode(encoded + "=" * (-len(encoded) % 4)) == raw  # padded accepted


def test_base64_rejects_garbage() -> None:
    with pytest.raises(p.KeyFormatError):
        p.b64decode("not base64!")


# -- canonical JSON ------------------------------------------------------------------

CANONICAL = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{"auth": {"success": true, "mxid": "@john.doe:example.com",
        "profile": {"display_name": "John Doe", "three_pids": [
        {"medium": "email", "address": "john.doe@example.org"},
        {"medium": "msisdn", "address": "123456789"}]}}}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given", "canonical"), CANONICAL)
def test_canonical_json_spec_examples(given: str, canonical: str) -> None:
    assert p.canonical_json(json.loads(given)) == canonical.encode("utf-8")


def test_canonical_json_escapes_only_what_the_grammar_escapes() -> None:
    assert (
        p.canonical_json({"a": '"\\\n\x01\x7f/'}) == b'{"a":"\\"\\\\\\n\\u0001\x7f/"}'
    )


@pytest.mark.parametrize("bad", [1.5, 2**53, -(2**53), float("nan"), {1: "x"}, b"x"])
def test_canonical_json_refuses_what_it_cannot_encode(bad: object) -> None:
    with pytest.raises(ValueError):
        p.canonical_json({"a": bad})


# -- signing JSON (appendices: Cryptographic Test Vectors) --

SPEC_SEED = p.b64decode("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
SIG_EMPTY = (
    "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7"
    "Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
)
SIG_ONE_TWO = (
    "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL5"
    "3+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"
)


def test_json_signing_spec_vectors() -> None:
    key = p.SigningKey.from_seed(SPEC_SEED)
    assert p.sign_json({}, key, "domain", "1") == {
        "signatures": {"domain": {"ed25519:1": SIG_EMPTY}}
    }
    signed = p.sign_json({"one": 1, "two": "Two"}, key, "domain", "1")
    assert signed == {
        "one": 1,
        "signatures": {"domain": {"ed25519:1": SIG_ONE_TWO}},
        "two": "Two",
    }
    p.verify_json(signed, "domain", "1", key.public_key)


def test_signatures_and_unsigned_are_not_covered_and_are_kept() -> None:
    key = p.SigningKey.generate()
    obj = {
        "a": 1,
        "unsigned": {"age": 5},
        "signatures": {"other": {"ed25519:X": "sig"}},
    }
    signed = p.sign_json(obj, key, "@me:hs", "DEV")
    assert signed["unsigned"] == {"age": 5}
    assert signed["signatures"]["other"] == {"ed25519:X": "sig"}
    assert "signatures" in obj and "@me:hs" not in obj["signatures"]  # input untouched
    signed["unsigned"] = {"age": 99}  # intermediaries may change unsigned data
    p.verify_json(signed, "@me:hs", "DEV", key.public_key)


def test_a_changed_object_or_wrong_key_fails_verification() -> None:
    key = p.SigningKey.generate()
    signed = p.sign_json({"a": 1}, key, "@me:hs", "DEV")
    with pytest.raises(p.SignatureError, match="does not verify"):
        p.verify_json({**signed, "a": 2}, "@me:hs", "DEV", key.public_key)
    with pytest.raises(p.SignatureError, match="does not verify"):
        p.verify_json(signed, "@me:hs", "DEV", p.SigningKey.generate().public_key)
    with pytest.raises(p.SignatureError, match="no ed25519:OTHER signature"):
        p.verify_json(signed, "@me:hs", "OTHER", key.public_key)


def test_signing_key_round_trips_its_seed_and_hides_it() -> None:
    key = p.SigningKey.from_seed(SPEC_SEED)
    assert p.SigningKey.from_seed(key.seed).public_key == key.public_key
    assert len(p.b64decode(key.public_key)) == 32 and "=" not in key.public_key
    assert p.b64encode(SPEC_SEED) not in repr(key)
    with pytest.raises(p.KeyFormatError):
        p.SigningKey.from_seed(b"short")


# -- Olm --


def olm_pair() -> tuple[p.OlmAccount, p.OlmAccount, p.OlmSession, p.OlmSession]:
    alice, bob = p.OlmAccount(), p.OlmAccount()
    bob.generate_one_time_keys(1)
    (otk,) = bob.one_time_keys.values()
    outbound = alice.create_outbound_session(bob.curve25519, otk)
    first = outbound.encrypt(b"hello bob")
    assert first.type == p.OLM_PRE_KEY
    inbound, plaintext = bob.create_inbound_session(alice.curve25519, first)
    assert plaintext == b"hello bob"
    return alice, bob, outbound, inbound


def test_olm_round_trip_both_ways() -> None:
    _, _, outbound, inbound = olm_pair()
    assert outbound.session_id == inbound.session_id
    reply = inbound.encrypt(b"hello alice")
    assert reply.type == p.OLM_NORMAL
    assert outbound.decrypt(reply) == b"hello alice"
    again = outbound.encrypt(b"second")
    assert inbound.decrypt(p.OlmMessage.from_json(again.to_json())) == b"second"


def test_pre_key_message_matches_its_session_only() -> None:
    alice, bob, outbound, inbound = olm_pair()
    pre_key = outbound.encrypt(b"still pre-key until bob replies")
    assert pre_key.type == p.OLM_PRE_KEY
    assert inbound.matches(pre_key)
    bob.generate_one_time_keys(1)
    (otk,) = bob.one_time_keys.values()
    other = alice.create_outbound_session(bob.curve25519, otk).encrypt(b"x")
    assert not inbound.matches(other)
    assert inbound.decrypt(pre_key) == b"still pre-key until bob replies"


def test_olm_tampered_message_is_refused() -> None:
    _, _, outbound, inbound = olm_pair()
    inbound.decrypt(outbound.encrypt(b"sync"))
    msg = outbound.encrypt(b"secret")
    raw = bytearray(p.b64decode(msg.body))
    raw[-20] ^= 1
    with pytest.raises(p.DecryptionError, match="Olm decryption failed"):
        inbound.decrypt(p.OlmMessage(msg.type, p.b64encode(bytes(raw))))


def test_a_one_time_key_is_used_once() -> None:
    alice, bob = p.OlmAccount(), p.OlmAccount()
    bob.generate_one_time_keys(1)
    (otk,) = bob.one_time_keys.values()
    first = alice.create_outbound_session(bob.curve25519, otk).encrypt(b"1")
    bob.create_inbound_session(alice.curve25519, first)
    replay = alice.create_outbound_session(bob.curve25519, otk).encrypt(b"2")
    with pytest.raises(p.DecryptionError):
        bob.create_inbound_session(alice.curve25519, replay)


def test_account_keys_publish_and_sign() -> None:
    account = p.OlmAccount()
    account.generate_one_time_keys(3)
    account.generate_fallback_key()
    keys = account.signed_one_time_keys("@me:hs", "DEV")
    fallback = account.signed_fallback_keys("@me:hs", "DEV")
    assert len(keys) == 3 and len(fallback) == 1
    for obj in [*keys.values(), *fallback.values()]:
        p.verify_json(obj, "@me:hs", "DEV", account.ed25519)
    assert next(iter(fallback.values()))["fallback"] is True
    device = account.device_keys("@me:hs", "DEV")
    assert device["keys"] == {
        "curve25519:DEV": account.curve25519,
        "ed25519:DEV": account.ed25519,
    }
    p.verify_json(device, "@me:hs", "DEV", account.ed25519)
    account.mark_keys_as_published()
    assert account.one_time_keys == {} and account.fallback_key == {}
    assert account.max_one_time_keys > 0


def test_a_fallback_key_opens_sessions() -> None:
    alice, bob = p.OlmAccount(), p.OlmAccount()
    bob.generate_fallback_key()
    (fallback,) = bob.fallback_key.values()
    bob.mark_keys_as_published()
    for text in (b"one", b"two"):  # a fallback key is reusable
        msg = alice.create_outbound_session(bob.curve25519, fallback).encrypt(text)
        assert bob.create_inbound_session(alice.curve25519, msg)[1] == text


def test_olm_pickles_round_trip_and_refuse_a_wrong_key() -> None:
    alice, _, outbound, inbound = olm_pair()
    key = p.random_bytes(32)
    again = p.OlmAccount.from_pickle(alice.pickle(key), key)
    assert (again.curve25519, again.ed25519) == (alice.curve25519, alice.ed25519)
    restored = p.OlmSession.from_pickle(inbound.pickle(key), key)
    assert restored.decrypt(outbound.encrypt(b"after restart")) == b"after restart"
    with pytest.raises(p.MacMismatch):
        p.OlmAccount.from_pickle(alice.pickle(key), p.random_bytes(32))
    with pytest.raises(p.KeyFormatError):
        alice.pickle(b"short")


# -- Megolm --


def test_megolm_round_trip_with_indices() -> None:
    out = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(out.session_key)
    assert inbound.session_id == out.session_id and inbound.first_known_index == 0
    for i in range(3):
        assert out.message_index == i
        ciphertext = out.encrypt(f"m{i}".encode())
        assert p.megolm_message_index(ciphertext) == i
        assert inbound.decrypt(ciphertext) == p.MegolmPlaintext(f"m{i}".encode(), i)


def test_megolm_replayed_ciphertext_decrypts_to_the_same_index() -> None:
    # Replay detection is the store's (remember_megolm_index): decryption
    # gives the index it needs.
    out = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(out.session_key)
    ciphertext = out.encrypt(b"once")
    assert (
        inbound.decrypt(ciphertext).message_index
        == inbound.decrypt(ciphertext).message_index
    )


def test_megolm_export_import_from_an_index() -> None:
    out = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(out.session_key)
    early = out.encrypt(b"early")
    late = out.encrypt(b"late")
    exported = inbound.export_at(1)
    assert exported is not None
    forwarded = p.MegolmInbound.from_export(exported)
    assert forwarded.session_id == out.session_id and forwarded.first_known_index == 1
    assert forwarded.decrypt(late).plaintext == b"late"
    with pytest.raises(
        p.UnknownMessageIndex, match="before this session's first known index 1"
    ):
        forwarded.decrypt(early)
    assert forwarded.export_at(0) is None


def test_megolm_tampered_ciphertext_is_refused() -> None:
    out = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(out.session_key)
    raw = bytearray(p.b64decode(out.encrypt(b"payload")))
    raw[10] ^= 1
    with pytest.raises(p.DecryptionError, match="Megolm decryption failed"):
        inbound.decrypt(p.b64encode(bytes(raw)))
    with pytest.raises(p.KeyFormatError):
        inbound.decrypt("!!!")
    other = p.MegolmInbound.from_session_key(p.MegolmOutbound().session_key)
    with pytest.raises(p.DecryptionError):
        other.decrypt(out.encrypt(b"not for this session"))


def test_megolm_pickles_round_trip() -> None:
    key = p.random_bytes(32)
    out = p.MegolmOutbound()
    inbound = p.MegolmInbound.from_session_key(out.session_key)
    out2 = p.MegolmOutbound.from_pickle(out.pickle(key), key)
    in2 = p.MegolmInbound.from_pickle(inbound.pickle(key), key)
    assert in2.decrypt(out2.encrypt(b"x")).plaintext == b"x"
    with pytest.raises(p.MacMismatch):
        p.MegolmInbound.from_pickle(inbound.pickle(key), p.random_bytes(32))


# -- secret storage --

RFC7748_KEY = bytes.fromhex(
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
)
RECOVERY = "EsTc LW2K PGiF wKEA 3As5 g5c4 BXwk qeeJ ZJV8 Q9fu gUMN UE4d"


def test_recovery_key_known_vector() -> None:
    assert p.encode_recovery_key(RFC7748_KEY) == RECOVERY
    assert p.decode_recovery_key(RECOVERY) == RFC7748_KEY
    assert p.decode_recovery_key(RECOVERY.replace(" ", "")) == RFC7748_KEY
    assert (
        p.decode_recovery_key(f"  {RECOVERY}\n ".replace(" g5c4", "\tg5c4"))
        == RFC7748_KEY
    )


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (RECOVERY.replace("EsTc", "FsTc"), "prefix|length"),
        (RECOVERY.replace("EsTc", "EqTc"), "prefix"),
        (RECOVERY[:-1] + "e", "parity"),
        ("abc", "length"),
        (RECOVERY.replace("E", "0"), "outside base58"),
    ],
)
def test_recovery_key_refuses_bad_input(bad: str, why: str) -> None:
    with pytest.raises(p.KeyFormatError, match=why):
        p.decode_recovery_key(bad)


def test_recovery_key_round_trips_random_keys() -> None:
    for _ in range(50):
        key = p.random_bytes(32)
        assert p.decode_recovery_key(p.encode_recovery_key(key)) == key


def test_pbkdf2_sha512_known_vector_and_spec_shape() -> None:
    expected = bytes.fromhex(
        "867f70cf1ade02cff3752599a3a53dc4af34c7a669815ae5d513554e1c8cf252"
        "c02d470a285a0501bad999bfe943c08f050235d7d68b1da55e63f73b60a57fce"
    )
    assert p.passphrase_key("password", "salt", 1, bits=512) == expected
    assert p.passphrase_key("password", "salt", 1) == expected[:32]  # bits default 256
    assert len(p.passphrase_key("a phrase", "MmMsAlty", 10)) == 32


def test_secret_storage_key_check() -> None:
    key = p.random_bytes(32)
    description = {
        "algorithm": p.SECRET_STORAGE_ALGORITHM,
        **p.secret_storage_key_check(key),
    }
    iv = p.b64decode(description["iv"])
    assert len(iv) == 16 and iv[8] & 0x80 == 0  # bit 63 cleared
    assert p.check_secret_storage_key(key, description)
    assert not p.check_secret_storage_key(p.random_bytes(32), description)
    padded = {**description, "mac": description["mac"] + "="}  # padded base64 accepted
    assert p.check_secret_storage_key(key, padded)
    assert p.check_secret_storage_key(key, {"algorithm": p.SECRET_STORAGE_ALGORITHM})
    with pytest.raises(p.KeyFormatError):
        p.check_secret_storage_key(key, {"algorithm": "m.other"})


def test_secret_round_trip_and_refusals() -> None:
    key = p.decode_recovery_key(RECOVERY)
    seed = p.b64encode(p.random_bytes(32))
    stored = p.encrypt_secret(key, "m.cross_signing.master", seed)
    assert set(stored) == {"iv", "ciphertext", "mac"}
    assert p.decrypt_secret(key, "m.cross_signing.master", stored) == seed
    with pytest.raises(p.MacMismatch, match=r"m\.cross_signing\.self_signing"):
        p.decrypt_secret(
            key, "m.cross_signing.self_signing", stored
        )  # name is in the key
    with pytest.raises(p.MacMismatch):
        p.decrypt_secret(p.random_bytes(32), "m.cross_signing.master", stored)
    raw = bytearray(p.b64decode(stored["ciphertext"]))
    raw[0] ^= 1
    with pytest.raises(p.MacMismatch, match="does not match"):
        p.decrypt_secret(
            key,
            "m.cross_signing.master",
            {**stored, "ciphertext": p.b64encode(bytes(raw))},
        )


def test_secret_storage_agrees_with_the_spec_steps() -> None:
    # Recomputed by hand from the spec's steps with the standard library's
    # HMAC/HKDF (RFC 5869), independently of primitives' own helpers.
    import hashlib
    import hmac

    key = RFC7748_KEY
    stored = p.encrypt_secret(key, "m.megolm_backup.v1", "backup key")
    prk = hmac.new(bytes(32), key, hashlib.sha256).digest()
    t1 = hmac.new(prk, b"m.megolm_backup.v1\x01", hashlib.sha256).digest()
    t2 = hmac.new(prk, t1 + b"m.megolm_backup.v1\x02", hashlib.sha256).digest()
    mac_key = t2
    ciphertext = p.b64decode(stored["ciphertext"])
    assert hmac.new(mac_key, ciphertext, hashlib.sha256).digest() == p.b64decode(
        stored["mac"]
    )
    assert len(ciphertext) == len("backup key")


# -- encrypted attachments --

SPEC_FILE = {
    "url": "mxc://example.org/FHyPlCeYUSFFxlgbQYZmoEoe",
    "mimetype": "image/jpeg",
    "v": "v2",
    "key": {
        "alg": "A256CTR",
        "ext": True,
        "k": "aWF6-32KGYaC3A_FEUCk1Bt0JA37zP0wrStgmdCaW-0",
        "key_ops": ["encrypt", "decrypt"],
        "kty": "oct",
    },
    "iv": "w+sE15fzSc0AAAAAAAAAAA",
    "hashes": {"sha256": "fdSLu/YkRx3Wyh3KQabP3rd6+SFiKg5lsJZQHtkSAYA"},
}


def test_the_spec_encrypted_file_example_parses() -> None:
    key = p.AttachmentKey.from_json(SPEC_FILE)
    assert key.key == p.urlsafe_b64decode("aWF6-32KGYaC3A_FEUCk1Bt0JA37zP0wrStgmdCaW-0")
    assert key.iv[8:] == bytes(8)  # the counter half starts at zero
    out = key.to_json()
    assert out["key"] == SPEC_FILE["key"] | {"key_ops": ["encrypt", "decrypt"]}
    assert (out["iv"], out["hashes"]) == (SPEC_FILE["iv"], SPEC_FILE["hashes"])


@pytest.mark.parametrize(
    "change",
    [
        {"v": "v1"},
        {"key": {**SPEC_FILE["key"], "alg": "A128CTR"}},  # type: ignore[dict-item]
        {"key": {**SPEC_FILE["key"], "key_ops": ["decrypt"]}},  # type: ignore[dict-item]
        {"iv": "AAAA"},
        {"hashes": {}},
    ],
)
def test_malformed_encrypted_files_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(p.KeyFormatError):
        p.AttachmentKey.from_json({**SPEC_FILE, **change})


def test_attachment_round_trip_in_chunks() -> None:
    data = p.random_bytes(3 * p.ATTACHMENT_CHUNK + 123)  # several chunks and a tail
    encrypted = io.BytesIO()
    key = p.encrypt_attachment(io.BytesIO(data), encrypted)
    assert key.iv[8:] == bytes(8) and len(key.key) == 32
    assert encrypted.getvalue() != data and len(encrypted.getvalue()) == len(data)
    described = p.AttachmentKey.from_json(json.loads(json.dumps(key.to_json())))
    out = io.BytesIO()
    encrypted.seek(0)
    p.decrypt_attachment(encrypted, out, described)
    assert out.getvalue() == data
    assert p.b64encode(key.key) not in repr(key)


class ChunkReader(io.BytesIO):
    """Records how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def test_attachments_are_read_in_bounded_chunks() -> None:
    plain = ChunkReader(p.random_bytes(5 * p.ATTACHMENT_CHUNK))
    encrypted = ChunkReader(b"")
    key = p.encrypt_attachment(plain, encrypted)
    encrypted = ChunkReader(encrypted.getvalue())
    p.decrypt_attachment(encrypted, io.BytesIO(), key)
    for reader in (plain, encrypted):
        assert reader.asked and set(reader.asked) == {p.ATTACHMENT_CHUNK}
    assert len(encrypted.asked) == 2 * 6  # a hash pass, then a decryption pass


def test_a_changed_attachment_is_refused_before_decrypting() -> None:
    encrypted = io.BytesIO()
    key = p.encrypt_attachment(io.BytesIO(b"a file" * 1000), encrypted)
    damaged = bytearray(encrypted.getvalue())
    damaged[100] ^= 1
    out = io.BytesIO()
    with pytest.raises(p.HashMismatch, match="SHA-256 does not match"):
        p.decrypt_attachment(io.BytesIO(bytes(damaged)), out, key)
    assert out.getvalue() == b""  # nothing written
    with pytest.raises(p.HashMismatch):
        p.decrypt_attachment(io.BytesIO(encrypted.getvalue()[:-1]), out, key)


# -- sealing values at rest --


def test_store_cipher_binds_values_to_their_row() -> None:
    cipher = p.StoreCipher(p.random_bytes(32))
    sealed = cipher.seal(b"value", b"row 1")
    assert cipher.open(sealed, b"row 1") == b"value"
    with pytest.raises(p.MacMismatch):
        cipher.open(sealed, b"row 2")
    with pytest.raises(p.MacMismatch):
        p.StoreCipher(p.random_bytes(32)).open(sealed, b"row 1")
    with pytest.raises(p.KeyFormatError):
        p.StoreCipher(b"short")
