"""Helpers shared by the plugin's classes.

:class:`MatrixMixin` turns one decoded Matrix event into slidge ``send_*``
calls; the id functions map Matrix ids to JID local parts and back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from slixmpp.jid import unescape_node

if TYPE_CHECKING:
    from slixmpp import Message

    from .matrix import Event

log = logging.getLogger(__name__)

# XEP-0106 escapes for what a JID local part may not hold.
_ESCAPES = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}


def matrix_id_to_jid_local(matrix_id: str) -> str:
    """Maps a Matrix id to a JID local part that survives case folding.

    Matrix room ids are case-sensitive but XMPP servers and clients may
    lower-case JIDs, so each upper-case letter becomes ``^`` + its lower case
    (and ``^`` itself ``^^``); the rest is escaped as in XEP-0106.
    """
    out = []
    for ch in matrix_id:
        if ch == "^":
            out.append("^^")
        elif "A" <= ch <= "Z":
            out.append("^" + ch.lower())
        else:
            out.append(_ESCAPES.get(ch, ch))
    return "".join(out)


def jid_local_to_matrix_id(local: str) -> str:
    """The inverse of :func:`matrix_id_to_jid_local`."""
    text = unescape_node(local)
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "^" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("^" if nxt == "^" else nxt.upper())
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def localpart(user_id: str) -> str:
    """``@alice:example.org`` → ``alice`` (what to show when there is no name)."""
    return user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id


def timestamp(event: Event) -> datetime | None:
    ts = event.origin_server_ts
    return datetime.fromtimestamp(ts / 1000, tz=UTC) if ts > 0 else None


def message_text(event: Event) -> str | None:
    """The text XMPP shows for an ``m.room.message``, or None if it has none."""
    body = event.body
    if body is None:
        return None
    if event.msgtype == "m.emote":
        return "/me " + body
    return body


class _Sender(Protocol):
    def send_text(
        self, body: str, legacy_msg_id: str | None = None, **kwargs: Any
    ) -> Message | None: ...


class MatrixMixin:
    """Sends decoded Matrix events to XMPP as this entity."""

    def send_matrix_message(
        self: _Sender, event: Event, archive_only: bool = False
    ) -> None:
        text = message_text(event)
        if text is None:
            log.info(
                "Matrix event %s (%s) has no text body; not shown",
                event.event_id,
                event.msgtype,
            )
            return
        self.send_text(
            text,
            legacy_msg_id=event.event_id,
            when=timestamp(event),
            archive_only=archive_only,
        )
