"""Failed Matrix calls as XMPP errors the user can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

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


class NotShown(XMPPError):
    """A room that is deliberately not shown as a group chat (a space, a room
    the user is not in): not a failure, nothing to retry or report."""

    def __init__(self, text: str) -> None:
        super().__init__("item-not-found", text)


# XMPP conditions that mean "try again later", as matrix_errors raises them
# for network failures and homeserver 5xx, and as slidge raises them while
# the XMPP side is not ready.
_TRANSIENT_CONDITIONS = frozenset(
    {"remote-server-timeout", "service-unavailable", "recipient-unavailable"}
)


def is_transient(error: BaseException) -> bool:
    """True for a failure that may go away by itself: the network, a
    homeserver 5xx or 429, a timeout, the XMPP side not ready yet. Follows
    the chain of causes, since matrix_errors and slidge wrap the original."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NetworkError | TimeoutError):
            return True
        if isinstance(current, MatrixError):
            return current.status >= 500 or current.status == 429
        if isinstance(current, NotShown):
            return False
        if (
            isinstance(current, XMPPError)
            and current.condition in _TRANSIENT_CONDITIONS
            and current.__cause__ is None
            and current.__context__ is None
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def join_refused(address: str, e: MatrixError) -> XMPPError:
    """Why joining `address` failed, in words the user can act on."""
    reason = e.error or str(e)
    if address.startswith("#") and e.status == 404:
        return XMPPError(
            "item-not-found",
            f"No Matrix room has the alias {address}. Check its spelling and server.",
        )
    if e.status == 403:
        return XMPPError(
            "forbidden",
            f"Matrix did not let you join {address} ({reason}). The room may be "
            "invite-only: ask one of its members for an invitation.",
        )
    if e.status == 404:
        return XMPPError(
            "item-not-found",
            f"Your homeserver cannot find the room {address} ({reason}). Use its "
            "alias, or ask a member for an invitation.",
        )
    if e.status == 429:
        return XMPPError(
            "resource-constraint",
            f"The homeserver asks to slow down; try joining {address} again in a "
            "minute.",
        )
    return XMPPError("not-acceptable", f"Matrix refused to join {address}: {reason}")


def unreachable(what: str, e: NetworkError) -> XMPPError:
    """The homeserver did not answer while trying to do `what`."""
    return XMPPError(
        "remote-server-timeout",
        f"Could not {what}: the homeserver is unreachable ({e}). Try again later.",
    )


def not_a_homeserver(address: str, e: MatrixError | NetworkError) -> XMPPError:
    """What the user gave at registration leads to no Matrix homeserver."""
    if isinstance(e, NetworkError):
        why = f"Could not reach a Matrix homeserver at {address} ({e})."
    elif e.status < 300:  # it answered, but not as a homeserver would
        why = f"{address} does not answer like a Matrix homeserver ({e.error or e})."
    else:
        why = f"{address} does not answer like a Matrix homeserver (HTTP {e.status})."
    return XMPPError("remote-server-not-found", why + " Check it and try again.")


def login_refused(e: MatrixError | NetworkError) -> XMPPError:
    """Why the homeserver did not let the user log in."""
    if isinstance(e, NetworkError):
        return XMPPError(
            "remote-server-timeout",
            f"The homeserver stopped answering during login ({e}). Try again.",
        )
    if e.status == 429:
        text = "Too many login attempts; wait a minute and try again."
    elif e.status in (401, 403):
        text = "Matrix refused this user name or password. Check them and try again."
    else:
        text = f"Matrix refused the login: {e.error or e}"
    return XMPPError("not-authorized", text)


def user_lookup_refused(user_id: str, e: MatrixError | NetworkError) -> XMPPError:
    """Why the homeserver could not say who `user_id` is."""
    if isinstance(e, NetworkError):
        return unreachable(f"look up {user_id}", e)
    if e.status in (403, 404):
        return XMPPError(
            "item-not-found",
            f"Matrix knows no user {user_id} (or their profile is private).",
        )
    return XMPPError(
        "service-unavailable", f"Matrix refused to look up {user_id}: {e.error}"
    )


def upload_refused(name: str, e: MatrixError | NetworkError) -> XMPPError:
    """A file the user sent that the media repository did not take."""
    return XMPPError(
        "service-unavailable",
        f"{name} could not be sent: the Matrix media repository refused it "
        f"({describe(e)}).",
    )


def describe(e: Exception) -> str:
    """A failed Matrix call in a few words, for a sentence."""
    if isinstance(e, MatrixError):
        return f"the homeserver answered {e.status} ({e.error or e.errcode or 'error'})"
    if isinstance(e, NetworkError):
        return f"the homeserver is unreachable ({e})"
    return str(e) or type(e).__name__


# Where a browser lands after single sign-on, with ?loginToken=… appended.
SSO_LANDING = "http://localhost/matridge-login"


def no_password_login(homeserver: str, flows: list[str]) -> XMPPError:
    """The homeserver does not log its users in with a password: what the
    user can do instead, in words."""
    if "m.login.sso" in flows or "m.login.cas" in flows:
        link = (
            f"{homeserver}/_matrix/client/v3/login/sso/redirect?redirectUrl="
            + SSO_LANDING
        )
        text = (
            f"{homeserver} logs you in with single sign-on, not a password. "
            f"Open {link} in a browser and log in there. The browser then goes "
            "to an address that ends in 'loginToken=…' (the page itself may not "
            "load): copy that token into the 'Login token' field and register "
            "again within a few minutes."
        )
    else:
        offered = ", ".join(flows) or "none"
        text = (
            f"{homeserver} offers no login this gateway can do (it offers: {offered})."
        )
    return XMPPError("not-authorized", text)


class _Account(Protocol):
    @property
    def matrix(self) -> object: ...


def logged_in[A: _Account](session: A | None) -> A:
    """The session of a command's user, or the error that they are not
    logged in to Matrix."""
    if session is None or session.matrix is None:
        raise XMPPError("forbidden", "You are not logged in to Matrix.")
    return session
