"""Accounts without a password: registration asks the homeserver which
logins it offers (GET /login). A login token (m.login.token, what a browser
lands with after single sign-on) logs the gateway in as a device of its
own; a homeserver that offers only single sign-on gets the user its link
and what to do, in words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Person
from tests.harness.synapse import Synapse
from tests.scenarios import refused_registration, register

pytestmark = pytest.mark.asyncio(loop_scope="session")


def device_ids(person: Person) -> set[str]:
    devices = person.matrix.request("GET", "/devices")["devices"]
    return {d["device_id"] for d in devices}


async def test_a_login_token_registers_without_a_password(
    person: Person, synapse: Synapse
) -> None:
    before = device_ids(person)
    token = person.matrix.get_login_token()
    await register(person, synapse, password="", login_token=token)
    # A device of the gateway's own, not the session that made the token.
    assert len(device_ids(person) - before) == 1


async def test_neither_password_nor_token_is_refused_in_words(
    person: Person, synapse: Synapse
) -> None:
    form = {**person.registration_form(synapse), "password": ""}
    err = await refused_registration(person, form)
    assert err.condition == "not-authorized"
    assert "password" in err.text and "login token" in err.text


@pytest.fixture(scope="module")
def sso_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A homeserver whose accounts log in through single sign-on only (CAS
    here: it needs no identity provider to start)."""
    server = Synapse(
        tmp_path_factory.mktemp("synapse-sso"),
        extra_config={
            "password_config": {"enabled": False},
            "cas_config": {"enabled": True, "server_url": "http://127.0.0.1:9/cas"},
        },
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_single_sign_on_homeserver_gets_its_link_and_what_to_do(
    person: Person, sso_only: Synapse
) -> None:
    form = {
        "homeserver": sso_only.base_url,
        "username": person.name,
        "password": "anything",
        "device": "e2e tests",
    }
    err = await refused_registration(person, form)
    text = err.text
    assert err.condition == "not-authorized"
    assert "single sign-on" in text
    assert f"{sso_only.base_url}/_matrix/client/v3/login/sso/redirect" in text
    assert "Login token" in text
