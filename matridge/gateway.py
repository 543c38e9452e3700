"""The gateway component: registration form, credential check, unregistration."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from slidge import BaseGateway
from slidge.command import FormField, commands_from_module
from slidge.db.meta import JSONSerializable
from slixmpp import JID
from slixmpp.exceptions import XMPPError

from . import commands, config, emoji_commands, logsafety, media, search
from .errors import login_refused, no_password_login, not_a_homeserver
from .ids import is_user_id, server_of
from .matrix import MatrixClient, MatrixError, NetworkError, discover
from .outbound import xmpp_message_id
from .session import Session

log = logging.getLogger(__name__)

# slixmpp events that carry a message the user sends towards Matrix.
_OUTGOING_MESSAGE_EVENTS = frozenset({"legacy_message", "groupchat_message"})


class Gateway(BaseGateway[Session]):
    COMPONENT_NAME = "Matrix (matridge)"
    COMPONENT_TYPE = "matrix"
    COMPONENT_AVATAR = None
    GROUPS = True
    ROSTER_GROUP = "Matrix"
    # slidge 0.5 registers only the commands listed here.
    COMMANDS = (
        BaseGateway.COMMANDS
        + commands_from_module(commands)
        + commands_from_module(emoji_commands)
    )

    REGISTRATION_INSTRUCTIONS = (
        "Enter your Matrix homeserver and the user name and password of your "
        "Matrix account (with a full user id such as @alice:matrix.org the "
        "homeserver is found by itself). The password is used once to log in "
        "and is not stored. An account without a password (single sign-on) "
        "gives a login token instead: leave the password empty and the gateway "
        "says where to get one."
    )
    REGISTRATION_FIELDS = [  # noqa: RUF012  (slidge's declared type)
        FormField(
            var="homeserver",
            label=(
                "Homeserver (e.g. matrix.org or https://matrix.example.org; "
                "leave empty to find it from a full user id)"
            ),
            required=False,
        ),
        FormField(
            var="username",
            label="User name (e.g. alice or @alice:matrix.org)",
            required=False,
        ),
        FormField(var="password", label="Password", required=False, private=True),
        FormField(
            var="login_token",
            label="Login token (single sign-on accounts, instead of a password)",
            required=False,
            private=True,
        ),
        FormField(var="device", label="Device name", required=False),
    ]
    SEARCH_FIELDS = search.SEARCH_FIELDS
    SEARCH_TITLE = search.SEARCH_TITLE
    SEARCH_INSTRUCTIONS = search.SEARCH_INSTRUCTIONS

    WELCOME_MESSAGE = (
        "You are connected to Matrix. Your rooms appear as group chats; send "
        "'help' to list the commands."
    )

    def __init__(self) -> None:
        super().__init__()
        stale = media.remove_stale_temp_dirs()
        if stale:
            log.info("Removed %d transfer directories left by a killed gateway", stale)

    def event(self, name: str, data: Any = {}) -> None:  # noqa: B006  (slixmpp's signature)
        if name == "disconnected" and _messages_on_their_way():
            # slidge exits on this event, leaving restarts to a supervisor:
            # the user's messages already received go to Matrix first.
            self.loop.create_task(self._send_then(name, data))
            return
        # slixmpp copies the current context into each handler task it starts
        # here, so the handlers see the XMPP id of the message they carry.
        if name in _OUTGOING_MESSAGE_EVENTS:
            token = xmpp_message_id.set(data.get_id() or None)
            try:
                super().event(name, data)
            finally:
                xmpp_message_id.reset(token)
        else:
            super().event(name, data)

    async def _send_then(self, name: str, data: Any) -> None:
        pending = _messages_on_their_way()
        log.warning(
            "Lost the XMPP server; sending the %d message(s) received from it "
            "to Matrix before stopping",
            len(pending),
        )
        _, late = await asyncio.wait(pending, timeout=config.SEND_RETRY_SECONDS + 5)
        if late:
            log.error("%d message(s) could not be sent to Matrix in time", len(late))
        super().event(name, data)

    async def validate(
        self, user_jid: JID, registration_form: JSONSerializable
    ) -> JSONSerializable:
        form = registration_form if isinstance(registration_form, dict) else {}

        def field(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        username = field("username").strip()
        password = field("password")
        logsafety.remember(password)
        device = field("device").strip() or config.DEVICE_NAME
        homeserver = await find_homeserver(field("homeserver"), username)

        token = field("login_token").strip()
        logsafety.remember(token or None)
        # Always a login of the gateway's own: a new device, never another
        # client's session (encryption needs a device of its own).
        client = MatrixClient(homeserver, insecure=config.INSECURE_TLS)
        try:
            if token:
                login = await client.login_token(token, device)
            else:
                flows = await client.login_flows()
                if "m.login.password" not in flows:
                    raise no_password_login(homeserver, flows)
                if not password or not username:
                    raise XMPPError(
                        "not-authorized",
                        "Enter your Matrix user name and password, or, for an "
                        "account without a password, a login token.",
                    )
                login = await client.login_password(username, password, device)
        except (MatrixError, NetworkError) as e:
            raise login_refused(e) from e
        log.info("%s logged in to Matrix as %s", user_jid.bare, login.user_id)
        # Only what the session needs; the password is deliberately not kept.
        logsafety.remember(login.access_token)
        return {
            "homeserver": login.homeserver,
            "user_id": login.user_id,
            "access_token": login.access_token,
            "device_id": login.device_id,
        }


def _messages_on_their_way() -> set[asyncio.Task[Any]]:
    """The tasks handling a message the user sent towards Matrix: they carry
    its XMPP id in their context (see Gateway.event)."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no loop running: nothing is on its way
        return set()
    return {
        task
        for task in tasks
        if not task.done() and task.get_context().get(xmpp_message_id) is not None
    }


async def find_homeserver(given: str, username: str) -> str:
    """The client-server URL of the user's homeserver: from what they gave
    (a URL or a server name, followed through ``.well-known``), or from the
    server part of a full user id when they gave none."""
    given = given.strip()
    if not given:
        server = server_of(username) if is_user_id(username) else None
        if server is None:
            raise XMPPError(
                "bad-request",
                "Enter your homeserver (e.g. matrix.org), or your full Matrix id "
                "(@alice:matrix.org) as user name so that it can be found.",
            )
        given = server
    origin = normalise_homeserver(given)
    try:
        found = await discover(origin, insecure=config.INSECURE_TLS)
    except (MatrixError, NetworkError) as e:
        raise not_a_homeserver(origin, e) from e
    # A .well-known may point anywhere: the same rules apply to where it points.
    return normalise_homeserver(found)


def normalise_homeserver(raw: str) -> str:
    """A homeserver URL from what the user typed, or an XMPP error saying why not."""
    text = raw.strip().rstrip("/")
    if not text:
        raise XMPPError("bad-request", "Enter your homeserver's URL.")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise XMPPError(
            "bad-request",
            f"'{raw}' is not a homeserver URL; it should look like https://matrix.org.",
        )
    if parts.scheme == "http" and not config.ALLOW_PLAIN_HTTP:
        raise XMPPError(
            "not-acceptable",
            "This gateway only connects to homeservers over https://.",
        )
    return text
