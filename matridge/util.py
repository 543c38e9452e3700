"""Helpers shared by the plugin's classes.

:class:`MatrixMixin` turns one decoded Matrix event into slidge ``send_*``
calls; the id functions map Matrix ids to JID local parts and back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from slixmpp.jid import unescape_node

if TYPE_CHECKING:
    from slidge.util.types import MessageReference
    from slixmpp import Message as XMPPMessage

    from .matrix import Event, Message

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


ENCRYPTED_PLACEHOLDER = (
    "🔒 This message is end-to-end encrypted, and this gateway cannot decrypt "
    "it yet. Read it in a Matrix client."
)


def message_text(message: Message | None) -> str | None:
    """The text XMPP shows for a message's content, or None if it has none."""
    if message is None:
        return None
    text = message.text or message.body
    if not text:
        return None
    if message.msgtype == "m.emote":
        return "/me " + text
    if message.msgtype == "m.location" and message.geo_uri:
        return f"{text} {message.geo_uri}"
    return text


class _Sender(Protocol):
    def send_text(
        self, body: str, legacy_msg_id: str | None = None, **kwargs: Any
    ) -> XMPPMessage | None: ...

    def correct(self, legacy_msg_id: str, new_text: str, **kwargs: Any) -> None: ...


class MatrixMixin:
    """Sends decoded Matrix events to XMPP as this entity."""

    def send_matrix_message(
        self: _Sender,
        event: Event,
        archive_only: bool = False,
        replacement: Event | None = None,
        reply_to: MessageReference | None = None,
        **send_kwargs: Any,
    ) -> None:
        """An ``m.room.message``, ``m.sticker`` or ``m.room.encrypted`` event.

        ``replacement`` is the latest edit of the event, applied already (in
        history); a live edit arrives as its own event and becomes a
        correction of the original. ``send_kwargs`` go to every slidge call
        (``carbon=True`` for the user's own messages in a direct chat)."""
        when = timestamp(event)
        if event.encrypted:
            self.send_text(
                ENCRYPTED_PLACEHOLDER,
                legacy_msg_id=event.event_id,
                when=when,
                archive_only=archive_only,
                **send_kwargs,
            )
            return
        if event.rel_type == "m.replace" and event.relates_to and event.new_message:
            text = message_text(event.new_message)
            if text is not None:
                self.correct(
                    event.relates_to,
                    text,
                    when=when,
                    archive_only=archive_only,
                    correction_event_id=event.event_id,
                    **send_kwargs,
                )
            return
        content = replacement.new_message if replacement else event.message
        text = message_text(content)
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
            when=when,
            reply_to=reply_to,
            thread=event.thread_root,
            archive_only=archive_only,
            **send_kwargs,
        )


class ChatSender(Protocol):
    """What a chat needs of the entity that shows a Matrix user's actions:
    a Participant in a group chat, the Contact in a direct chat."""

    def send_matrix_message(
        self,
        event: Event,
        archive_only: bool = False,
        replacement: Event | None = None,
        reply_to: MessageReference | None = None,
    ) -> None: ...

    def react(
        self,
        legacy_msg_id: str,
        emojis: Iterable[str] = (),
        thread: str | None = None,
        **kwargs: object,
    ) -> None: ...

    def retract(
        self, legacy_msg_id: str, thread: str | None = None, **kwargs: object
    ) -> None: ...
