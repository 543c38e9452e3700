"""Fixtures shared by the suite: real Synapse, Prosody and gateway processes
(once per run), and a freshly registered XMPP+Matrix user per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import pytest_asyncio

from matridge.ids import matrix_id_to_jid_local
from tests.harness.fixtures import prosody, synapse
from tests.harness.gateway import Gateway
from tests.harness.matrix_user import MatrixUser
from tests.harness.prosody import Prosody
from tests.harness.synapse import Synapse
from tests.harness.xmpp_client import XmppClient

__all__ = ["gateway", "prosody", "synapse"]

# The shared gateway's file size cap (tests/test_e2e_media.py goes over it).
MEDIA_MAX_BYTES = 1_000_000


@pytest.fixture(scope="session")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    prosody: Prosody,
    synapse: Synapse,
) -> Iterator[Gateway]:
    gw = Gateway(
        tmp_path_factory.mktemp("gateway"),
        prosody,
        "--backfill-events=1500",  # enough for the 1000-message history test
        "--sync-timeout-ms=5000",  # so outages longer than a long-poll are short
        f"--media-max-bytes={MEDIA_MAX_BYTES}",  # small, so tests can exceed it
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def unique(prefix: str) -> str:
    # The servers live for the whole run: never reuse a name across tests.
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def new_matrix_user(
    server: Synapse, prefix: str, display_name: str | None = None
) -> MatrixUser:
    info = server.register_user(unique(prefix), "pw")
    user = MatrixUser(server.base_url, info["access_token"], info["user_id"])
    if display_name:
        user.set_displayname(display_name)
    return user


@dataclass
class Person:
    """Someone with an XMPP account and a Matrix account of the same name."""

    name: str
    password: str
    matrix: MatrixUser  # their Matrix account, driven directly for set-up
    xmpp: XmppClient  # their XMPP client, talking to the gateway
    gateway_jid: str

    def room_jid(self, room_id: str) -> str:
        return f"{matrix_id_to_jid_local(room_id)}@{self.gateway_jid}"

    def registration_form(
        self, synapse: Synapse, password: str | None = None
    ) -> dict[str, str]:
        return {
            "homeserver": synapse.base_url,
            "username": self.name,
            "password": password or self.password,
            "device": "e2e tests",
        }


@asynccontextmanager
async def new_person(
    synapse: Synapse, prosody: Prosody, gateway: Gateway
) -> AsyncIterator[Person]:
    """A fresh Matrix account and an XMPP client of the same name on
    `prosody`, facing `gateway`; disconnected at the end."""
    name = unique("user")
    password = "pw-" + uuid.uuid4().hex
    info = synapse.register_user(name, password)
    matrix = MatrixUser(synapse.base_url, info["access_token"], info["user_id"])
    xmpp = await XmppClient.connect_to(
        f"{name}@{prosody.domain}", "any", "127.0.0.1", prosody.c2s_port
    )
    try:
        yield Person(name, password, matrix, xmpp, gateway.jid)
    finally:
        await xmpp.disconnect_and_wait()


@pytest_asyncio.fixture(loop_scope="session")
async def person(
    synapse: Synapse,
    prosody: Prosody,
    gateway: Gateway,
) -> AsyncIterator[Person]:
    """A person connected to XMPP whose Matrix account exists, not yet registered."""
    async with new_person(synapse, prosody, gateway) as someone:
        yield someone


# Fixtures of the shared scenarios (they import this module's Person).
from tests.scenarios import club, proxied, proxy  # noqa: E402, F401
