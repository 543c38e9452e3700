"""Session-scoped pytest fixtures for the real servers.

They are plain synchronous fixtures: starting a server blocks briefly but
touches no event loop, so they work with any pytest-asyncio loop scope.
Import them into a conftest or test module::

    from tests.harness.fixtures import prosody, synapse  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from .prosody import Prosody
from .synapse import Synapse

__all__ = ["prosody", "synapse"]


Server = TypeVar("Server", Synapse, Prosody)


def _serve[Server: (Synapse, Prosody)](server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    yield from _serve(Synapse(tmp_path_factory.mktemp("synapse")))


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    # Without XEP-0356 privileges, the common deployment (the gateway falls
    # back to invitations and subscription requests); the tests that need
    # privileges start their own Prosody with them.
    yield from _serve(Prosody(tmp_path_factory.mktemp("prosody"), privilege=False))
