"""Shared set-up for the API tests: a MatrixClient logged in as a fresh user,
and the same user driven directly through the plain HTTP test client."""

from __future__ import annotations

from matridge.matrix import MatrixClient
from tests.conftest import unique
from tests.harness.matrix_user import MatrixUser
from tests.harness.synapse import Synapse


async def logged_in(
    synapse: Synapse, prefix: str = "api"
) -> tuple[MatrixClient, MatrixUser]:
    name = unique(prefix)
    synapse.register_user(name, "pw")
    client = MatrixClient(synapse.base_url)
    login = await client.login_password(name, "pw", "api tests")
    return client, MatrixUser(synapse.base_url, login.access_token, login.user_id)
