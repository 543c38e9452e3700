"""Failed Matrix calls as XMPP errors the user can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from slixmpp.exceptions import XMPPError

from .matrix import MatrixError, NetworkError

Condition = Literal[
    "forbidden", "item-not-found", "service-unavailable", "not-acceptable"
]

# XMPP error conditions for the Matrix answers that have a close match.
_CONDITIONS: dict[int, Condition] = {403: "forbidden", 404: "item-not-found"}


@contextmanager
def matrix_errors(what: str) -> Iterator[None]:
    """Turns a failed Matrix call in the block into an XMPP error saying
    that `what` ("send the message", …) failed, and why."""
    try:
        yield
    except MatrixError as e:
        default: Condition = (
            "service-unavailable" if e.status >= 500 else "not-acceptable"
        )
        raise XMPPError(
            _CONDITIONS.get(e.status, default),
            f"Matrix refused to {what}: {e.error or e}",
        ) from e
    except NetworkError as e:
        raise XMPPError(
            "remote-server-timeout",
            f"Could not {what}: the homeserver is unreachable ({e}).",
        ) from e
