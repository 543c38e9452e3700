"""How a session's encryption starts (matridge/encryption.py), against the
real Synapse: the key store's key is made once and kept in the user's
data, and a store left by an earlier device of the same user (registered
again with a new login) is never reused for the new device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from matridge.encryption import STORE_KEY, Encryption
from matridge.matrix import MatrixClient
from tests.conftest import unique
from tests.harness.cross_signing_peer import query_keys
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def login(synapse: Synapse, name: str) -> tuple[MatrixClient, str]:
    client = MatrixClient(synapse.base_url)
    res = await client.login_password(name, "pw", "gateway")
    return client, res.device_id


async def test_a_new_device_gets_a_new_store_and_publishes_its_own_keys(
    synapse: Synapse, tmp_path: Path
) -> None:
    name = unique("user")
    info = synapse.register_user(name, "pw")
    viewer = MatrixUser(synapse.base_url, info["access_token"], info["user_id"])
    data: dict[str, Any] = {}
    store_file = tmp_path / "keys.sqlite"

    first_client, first_device = await login(synapse, name)
    first = await Encryption.start(
        first_client, info["user_id"], first_device, store_file, data, data.update
    )
    first_key = first.device.curve25519
    first.close()
    assert isinstance(data[STORE_KEY], str)
    kept = data[STORE_KEY]

    # The same device again: the same store, the same keys.
    again = await Encryption.start(
        first_client, info["user_id"], first_device, store_file, data, data.update
    )
    assert again.device.curve25519 == first_key
    again.close()

    # A new login: its own Olm account, and its keys on the homeserver.
    second_client, second_device = await login(synapse, name)
    second = await Encryption.start(
        second_client, info["user_id"], second_device, store_file, data, data.update
    )
    second_key = second.device.curve25519
    second.close()
    assert second_key != first_key
    assert data[STORE_KEY] == kept
    listed = query_keys(viewer, info["user_id"])["device_keys"][info["user_id"]]
    keys = listed[second_device]["keys"]
    assert keys[f"curve25519:{second_device}"] == second_key
