"""Cross-signing the gateway's device (matridge/crypto/cross_signing.py and
secret_storage.py) against the real Synapse. The owner's account is set up
as Element would (tests/harness/cross_signing_peer.py); another user's
``/keys/query`` is the judge of whether the device ends up signed by the
owner's self-signing key."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from matridge.crypto.cross_signing import (
    MASTER,
    MEGOLM_BACKUP,
    SELF_SIGNING,
    USER_SIGNING,
    CrossSigningError,
    IdentityExists,
    IdentityMismatch,
    NeedsAuthentication,
    NoIdentity,
    State,
    create_identity,
    status,
    verify_with_recovery,
)
from matridge.crypto.device import Device
from matridge.crypto.primitives import (
    KeyFormatError,
    OlmAccount,
    SigningKey,
    decode_recovery_key,
    encode_recovery_key,
    random_bytes,
)
from matridge.crypto.secret_storage import NoSecretStorage, WrongSecretStorageKey
from matridge.crypto.store import KeyStore
from matridge.matrix import MatrixClient, MatrixError, NetworkError
from tests.conftest import new_matrix_user, unique
from tests.harness.cross_signing_peer import (
    Identity,
    device_signed_by_self_signing_key,
    element_like_account,
    get_account_data,
    identity_secrets,
    master_key_of,
    publish,
    set_up_secret_storage,
)
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Owner:
    """The gateway's device, and the same account's "Element" session."""

    device: Device
    client: MatrixClient
    element: MatrixUser
    store: KeyStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[KeyStore]:
    s = KeyStore.open(tmp_path / "keys.sqlite", random_bytes(32))
    yield s
    s.close()


async def owner(synapse: Synapse, store: KeyStore) -> Owner:
    name = unique("owner")
    synapse.register_user(name, "pw")
    client = MatrixClient(synapse.base_url)
    login = await client.login_password(name, "pw", "gateway device")
    device = Device(client, store, login.user_id, login.device_id)
    await device.upload_keys()
    element = MatrixUser.login(synapse.base_url, name, "pw")
    return Owner(device, client, element, store)


def signed_for(synapse: Synapse, o: Owner) -> bool:
    friend = new_matrix_user(synapse, "friend")
    return device_signed_by_self_signing_key(
        friend, o.device.user_id, o.device.device_id
    )


def assert_nothing_imported(o: Owner) -> None:
    for name in (MASTER, SELF_SIGNING, USER_SIGNING, MEGOLM_BACKUP):
        assert o.store.secret(name) is None


# ---- (a) verified with the recovery key or passphrase -------------------------


async def test_a_recovery_key_verifies_the_device_and_keeps_the_keys(
    synapse: Synapse, store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    o = await owner(synapse, store)
    identity, storage = element_like_account(o.element)
    before = await status(o.client, o.device)
    assert before.state is State.UNSIGNED
    assert "not signed" in before.sentence and "recovery key" in before.sentence
    assert not signed_for(synapse, o)

    after = await verify_with_recovery(
        o.client, o.device, o.store, storage.recovery_key
    )

    assert after.state is State.VERIFIED
    assert "is verified" in after.sentence
    assert signed_for(synapse, o)
    assert store.secret(MASTER) == identity.master.seed
    assert store.secret(SELF_SIGNING) == identity.self_signing.seed
    assert store.secret(USER_SIGNING) == identity.user_signing.seed
    assert store.secret(MEGOLM_BACKUP) is not None
    compact = "".join(storage.recovery_key.split())
    for record in caplog.records:
        text = record.getMessage()
        assert compact not in text and storage.recovery_key not in text
        assert identity.self_signing.public_key not in text


async def test_a_passphrase_verifies_the_device(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    identity, storage = element_like_account(
        o.element, passphrase="correct horse battery staple"
    )
    result = await verify_with_recovery(
        o.client, o.device, o.store, "correct horse battery staple"
    )
    assert result.state is State.VERIFIED
    assert signed_for(synapse, o)
    assert store.secret(SELF_SIGNING) == identity.self_signing.seed
    # The recovery key of a passphrase-made key works as well.
    assert (
        await verify_with_recovery(o.client, o.device, o.store, storage.recovery_key)
    ).state is State.VERIFIED


def mistyped(recovery_key: str) -> str:
    """The key with its last character mistyped so that its parity byte
    no longer matches (some changes of the last base58 digit carry into a
    key byte and could match by chance)."""
    for c in "abcdefghijk":
        typo = recovery_key[:-1] + c
        if typo == recovery_key:
            continue
        try:
            decode_recovery_key(typo)
        except KeyFormatError:
            return typo
    raise AssertionError("no mistyping of the last character fails its parity")


async def test_a_wrong_recovery_key_or_passphrase_is_refused_and_nothing_changes(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    _, storage = element_like_account(o.element, passphrase="the right one")
    wrong_key = encode_recovery_key(random_bytes(32))
    with pytest.raises(WrongSecretStorageKey, match="this recovery key does not open"):
        await verify_with_recovery(o.client, o.device, o.store, wrong_key)
    with pytest.raises(WrongSecretStorageKey, match="this passphrase does not open"):
        await verify_with_recovery(o.client, o.device, o.store, "the wrong one")
    typo = mistyped(storage.recovery_key)
    with pytest.raises(WrongSecretStorageKey, match="not a valid recovery key"):
        await verify_with_recovery(o.client, o.device, o.store, typo)
    assert_nothing_imported(o)
    assert not signed_for(synapse, o)
    assert (await status(o.client, o.device)).state is State.UNSIGNED


async def test_secret_storage_whose_keys_are_not_the_published_ones_is_refused(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    published = Identity.generate(o.device.user_id)
    assert publish(o.element, published)
    stale = Identity.generate(o.device.user_id)  # e.g. left by a reset
    storage = set_up_secret_storage(o.element, identity_secrets(stale))
    with pytest.raises(IdentityMismatch, match="does not match the one your account"):
        await verify_with_recovery(o.client, o.device, o.store, storage.recovery_key)
    assert_nothing_imported(o)
    assert not signed_for(synapse, o)


async def test_an_account_without_secret_storage_is_told_so(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    assert publish(o.element, Identity.generate(o.device.user_id))
    with pytest.raises(NoSecretStorage, match="no secret storage"):
        await verify_with_recovery(
            o.client, o.device, o.store, encode_recovery_key(random_bytes(32))
        )
    assert_nothing_imported(o)


async def test_without_an_identity_there_is_nothing_to_import(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    with pytest.raises(NoIdentity, match="can create one"):
        await verify_with_recovery(
            o.client, o.device, o.store, encode_recovery_key(random_bytes(32))
        )


# ---- (b) an identity created for an account without one -----------------------


async def test_an_account_without_identity_gets_one_and_the_device_is_signed(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    before = await status(o.client, o.device)
    assert before.state is State.NO_IDENTITY
    assert "no cross-signing identity" in before.sentence
    assert "can create one" in before.sentence

    # Synapse takes the first upload without user-interactive auth (MSC3967):
    # create_identity would raise NeedsAuthentication otherwise.
    after = await create_identity(o.client, o.device, o.store)

    assert after.state is State.VERIFIED
    assert signed_for(synapse, o)
    master = master_key_of(new_matrix_user(synapse, "friend"), o.device.user_id)
    seed = store.secret(MASTER)
    assert seed is not None and master is not None
    assert SigningKey.from_seed(seed).public_key == master
    # A second call finds its own identity and leaves it as it is.
    again = await create_identity(o.client, o.device, o.store)
    assert again.state is State.VERIFIED
    assert master_key_of(o.element, o.device.user_id) == master


async def test_an_existing_identity_is_never_replaced(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    identity, _ = element_like_account(o.element)
    assert master_key_of(o.element, o.device.user_id) == identity.master.public_key
    with pytest.raises(IdentityExists, match="never replaces"):
        await create_identity(o.client, o.device, o.store)
    assert master_key_of(o.element, o.device.user_id) == identity.master.public_key
    assert_nothing_imported(o)
    assert not signed_for(synapse, o)
    # The user's secret storage is untouched too.
    assert get_account_data(o.element, "m.secret_storage.default_key")


# ---- what a homeserver may answer that Synapse does not -----------------------


class Meddling:
    """The real client, with one endpoint's answer changed, or replaced
    without the request reaching the server (``forward=False``)."""

    def __init__(
        self,
        client: MatrixClient,
        path: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        forward: bool = True,
    ) -> None:
        self._client = client
        self._path = path
        self._change = change
        self._forward = forward
        self.calls: list[str] = []

    async def request(
        self,
        method: Literal["GET", "POST", "PUT", "DELETE"],
        path: str,
        *segments: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        self.calls.append(path)
        if path == self._path and not self._forward:
            return self._change({})
        res = await self._client.request(
            method, path, *segments, body=body, query=query
        )
        return self._change(res) if path == self._path else res

    async def get_account_data(
        self, event_type: str, room_id: str | None = None
    ) -> dict[str, Any]:
        return await self._client.get_account_data(event_type, room_id)


def uia_required(_res: dict[str, Any]) -> dict[str, Any]:
    e = MatrixError("HTTP 401: user-interactive authentication")
    e.status, e.errcode, e.error = 401, None, None
    e.retry_after_ms, e.soft_logout = None, False
    raise e


async def test_a_homeserver_asking_for_interactive_auth_gets_words_for_the_user(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    api = Meddling(
        o.client,
        "/_matrix/client/v3/keys/device_signing/upload",
        uia_required,
        forward=False,
    )
    with pytest.raises(NeedsAuthentication, match=r"set up encryption .* in Element"):
        await create_identity(api, o.device, o.store)
    assert "/_matrix/client/v3/keys/signatures/upload" not in api.calls
    assert (await status(o.client, o.device)).state is State.NO_IDENTITY
    assert_nothing_imported(o)


def answer_lost(_res: dict[str, Any]) -> dict[str, Any]:
    raise NetworkError("connection reset after the upload was sent")


async def test_an_identity_whose_upload_answer_was_lost_is_kept_on_the_retry(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    api = Meddling(
        o.client, "/_matrix/client/v3/keys/device_signing/upload", answer_lost
    )
    with pytest.raises(NetworkError):
        await create_identity(api, o.device, o.store)
    published = master_key_of(o.element, o.device.user_id)
    assert published is not None  # the server did take it
    assert_nothing_imported(o)  # but it is not confirmed yet

    retried = await create_identity(o.client, o.device, o.store)

    assert retried.state is State.VERIFIED
    assert master_key_of(o.element, o.device.user_id) == published
    seed = store.secret(MASTER)
    assert seed is not None and SigningKey.from_seed(seed).public_key == published
    assert signed_for(synapse, o)


async def test_a_device_key_the_device_does_not_have_is_never_signed(
    synapse: Synapse, store: KeyStore
) -> None:
    o = await owner(synapse, store)
    _, storage = element_like_account(o.element)
    impostor = OlmAccount()

    def swap_device(res: dict[str, Any]) -> dict[str, Any]:
        user, dev = o.device.user_id, o.device.device_id
        if dev in res.get("device_keys", {}).get(user, {}):
            res["device_keys"][user][dev] = impostor.device_keys(user, dev)
        return res

    api = Meddling(o.client, "/_matrix/client/v3/keys/query", swap_device)
    with pytest.raises(CrossSigningError, match="another Ed25519 key"):
        await verify_with_recovery(api, o.device, o.store, storage.recovery_key)
    assert "/_matrix/client/v3/keys/signatures/upload" not in api.calls
    assert_nothing_imported(o)
