"""Matrix content to slidge calls: what XMPP shows of a decoded Matrix
event is decided here, once.

:func:`send_matrix_event` turns one message-like event into the ``send_*``
call of the entity that shows its sender (text with its mentions as
XEP-0372 references, a correction, a file, or the placeholder of what cannot
be shown).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from xml.etree import ElementTree as ET

from slixmpp import Message as XMPPMessage

from .media import MediaSender, is_media, send_matrix_media

if TYPE_CHECKING:
    from slidge.util.types import MessageReference

    from .matrix import Event, Message

log = logging.getLogger(__name__)


def timestamp(event: Event) -> datetime | None:
    ts = event.origin_server_ts
    return datetime.fromtimestamp(ts / 1000, tz=UTC) if ts > 0 else None


ENCRYPTED_PLACEHOLDER = (
    "🔒 This message is end-to-end encrypted, and encryption is off for this "
    "session (the gateway said why at login). Read it in a Matrix client."
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


NS_REFERENCE = "urn:xmpp:reference:0"


class MentionTarget(NamedTuple):
    """Who a Matrix mention points at on XMPP: the name the text shows and
    the XEP-0372 reference URI."""

    name: str
    uri: str


# A mention as XEP-0372 wants it: begin, end (code points) and the URI.
Reference = tuple[int, int, str]


def message_mentions(message: Message | None) -> tuple[tuple[int, int, str], ...]:
    """The mention spans of :func:`message_text`'s text (start, end, user id)."""
    if message is None or not message.text:
        return ()  # the text came from the plain body: no pills
    shift = 4 if message.msgtype == "m.emote" else 0  # the "/me " prefix
    return tuple((s + shift, e + shift, u) for s, e, u in message.mention_spans)


def apply_mentions(
    text: str,
    spans: Sequence[tuple[int, int, str]],
    targets: Mapping[str, MentionTarget],
) -> tuple[str, list[Reference]]:
    """Writes each mentioned user's XMPP name over their pill text, and gives
    the XEP-0372 references of the new text. Spans without a target, out of
    range or overlapping an earlier one are left as they are."""
    out: list[str] = []
    refs: list[Reference] = []
    cursor = 0  # in `text`
    pos = 0  # in the new text
    for start, end, user_id in sorted(spans):
        target = targets.get(user_id)
        if target is None or start < cursor or start > end or end > len(text):
            continue
        out.append(text[cursor:start])
        pos += start - cursor
        out.append(target.name)
        refs.append((pos, pos + len(target.name), target.uri))
        pos += len(target.name)
        cursor = end
    out.append(text[cursor:])
    return "".join(out), refs


def add_references(stanza: XMPPMessage, refs: Iterable[Reference]) -> None:
    """XEP-0372 mention references on a message stanza."""
    for begin, end, uri in refs:
        ET.SubElement(
            stanza.xml,
            f"{{{NS_REFERENCE}}}reference",
            {"type": "mention", "begin": str(begin), "end": str(end), "uri": uri},
        )


class MessageSender(MediaSender, Protocol):
    """The XMPP entity a Matrix message is shown as coming from."""

    def correct(self, legacy_msg_id: str, new_text: str, **kwargs: Any) -> None: ...


async def send_matrix_event(
    entity: MessageSender,
    event: Event,
    archive_only: bool = False,
    replacement: Event | None = None,
    reply_to: MessageReference | None = None,
    mentions: Mapping[str, MentionTarget] | None = None,
    placeholder: str | None = None,
    **send_kwargs: Any,
) -> None:
    """An ``m.room.message``, ``m.sticker`` or ``m.room.encrypted`` event.

    ``replacement`` is the latest edit of the event, applied already (in
    history); a live edit arrives as its own event and becomes a
    correction of the original. ``mentions`` maps the mentioned Matrix
    users to their XMPP names, for XEP-0372 references. ``send_kwargs``
    go to every slidge call (``carbon=True`` for the user's own messages
    in a direct chat). An encrypted event that could not be decrypted shows
    ``placeholder`` (why), or a general sentence."""
    when = timestamp(event)
    if event.encrypted:
        entity.send_text(
            placeholder or ENCRYPTED_PLACEHOLDER,
            legacy_msg_id=event.event_id,
            when=when,
            archive_only=archive_only,
            **send_kwargs,
        )
        return
    if event.rel_type == "m.replace" and event.relates_to and event.new_message:
        text = message_text(event.new_message)
        if text is not None:
            text, refs = apply_mentions(
                text, message_mentions(event.new_message), mentions or {}
            )
            entity.correct(
                event.relates_to,
                text,
                when=when,
                archive_only=archive_only,
                correction_event_id=event.event_id,
                references=refs,
                **send_kwargs,
            )
        return
    content = replacement.new_message if replacement else event.message
    if content is not None and is_media(event, content):
        await send_matrix_media(
            entity,
            event,
            content,
            when=when,
            archive_only=archive_only,
            reply_to=reply_to,
            thread=event.thread_root,
            content_event=replacement,
            **send_kwargs,
        )
        return
    text = message_text(content)
    if text is None:
        log.info(
            "Matrix event %s (%s) has no text body; not shown",
            event.event_id,
            event.msgtype,
        )
        return
    text, refs = apply_mentions(text, message_mentions(content), mentions or {})
    entity.send_text(
        text,
        legacy_msg_id=event.event_id,
        when=when,
        reply_to=reply_to,
        thread=event.thread_root,
        archive_only=archive_only,
        references=refs,
        **send_kwargs,
    )


class ChatSender(MessageSender, Protocol):
    """What a chat needs of the entity that shows a Matrix user's actions:
    a Participant in a group chat, the Contact in a direct chat, the user's
    own actions there as carbons."""

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

    def composing(self, **kwargs: object) -> None: ...

    def paused(self, **kwargs: object) -> None: ...

    def displayed(self, legacy_msg_id: str, **kwargs: object) -> None: ...
