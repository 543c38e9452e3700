"""What a group chat and a direct-chat contact have in common: one Matrix
room, shown as one XMPP conversation.

:class:`MatrixChat` is mixed into :class:`matridge.group.MUC` (a room as a
group chat) and :class:`matridge.contact.Contact` (a direct room as a
contact). It relays the room's messages to XMPP from the right sender, keeps
recent messages at hand for replies, and sends the user's XMPP messages to
the room.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from slidge.util.types import MessageReference, Sticker, XMPPMessage
from slixmpp.exceptions import XMPPError

from . import config
from .matrix import Event, History, MatrixError, NetworkError
from .media import send_sticker, send_xmpp_attachments
from .util import ChatSender, message_text

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

# A Matrix event may be 65,536 bytes in all; leave room for the envelope.
MAX_BODY_BYTES = 60000

# Event kinds that show as a message in the conversation.
MESSAGE_KINDS = ("message", "sticker", "encrypted")


class MatrixChat:
    """One Matrix room as an XMPP conversation (mixed into MUC and Contact)."""

    session: Session

    @property
    def room_id(self) -> str:
        """The Matrix room this conversation stands for."""
        raise NotImplementedError

    async def sender_for(self, user_id: str) -> ChatSender:
        """The XMPP entity that shows what Matrix user `user_id` does here."""
        raise NotImplementedError

    async def fill_gap(self, prev_batch: str) -> None:
        """Relays the events a ``limited`` sync timeline left out."""
        raise NotImplementedError

    def user_reference(self, user_id: str) -> Any:
        """The author of a quoted message, as slidge's MessageReference wants
        it: the string "user" for the XMPP user's own messages."""
        return "user" if user_id == self.session.user_id else None

    # ---- recent messages -------------------------------------------------

    @property
    def _recent(self) -> OrderedDict[str, Event]:
        # Recent messages as the decoder's lazy views, for get_message. A
        # view keeps its batch (or history) alive: the count bounds that.
        try:
            return self.__recent
        except AttributeError:
            self.__recent: OrderedDict[str, Event] = OrderedDict()
            return self.__recent

    def remember_event(self, event: Event) -> None:
        """Keeps a recent message at hand for get_message (a bounded cache)."""
        if event.event_id is None or event.kind not in ("message", "sticker"):
            return
        cache = self._recent
        cache[event.event_id] = event
        cache.move_to_end(event.event_id)
        while len(cache) > config.RECENT_EVENTS_CACHE:
            cache.popitem(last=False)

    async def get_message(self, msg_id: str) -> Event | None:
        """The decoded Matrix event `msg_id` of this room: from the recent
        events first, else from the homeserver. None if there is no such
        event (or the user may not see it)."""
        cached = self._recent.get(msg_id)
        if cached is not None:
            return cached
        try:
            return await self.session.matrix.get_event(self.room_id, msg_id)
        except MatrixError as e:
            if e.status in (400, 403, 404):
                return None
            raise
        except NetworkError as e:
            log.warning("Could not fetch event %s: %s", msg_id, e)
            return None

    async def reply_reference(self, event: Event) -> MessageReference | None:
        """The XEP-0461 quote for a reply: the replied-to message's author and
        text, from the recent events (history is relayed oldest first, so a
        reply's target within it is among them) or the homeserver."""
        target_id = event.in_reply_to
        if target_id is None or event.is_falling_back:
            return None
        target = await self.get_message(target_id)
        if target is None or target.sender is None:
            return MessageReference(target_id)
        author = self.user_reference(target.sender)
        if author is None:
            author = await self.sender_for(target.sender)
        body = message_text(target.message)
        return MessageReference(target_id, author, body)

    # ---- Matrix → XMPP ---------------------------------------------------

    async def on_matrix_event(self, event: Event) -> None:
        """Shows one live timeline event of this room to the XMPP user."""
        if event.kind in MESSAGE_KINDS:
            if self.session.is_own_echo(event):
                self.remember_event(event)
                return
            await self.relay(event)

    async def relay(
        self,
        event: Event,
        archive_only: bool = False,
        history: History | None = None,
    ) -> None:
        """One message-like event to XMPP, from its sender's entity, with its
        reply quote; from history, with its latest edit applied and its
        reactions."""
        sender = event.sender
        assert sender is not None  # invalid events never get here
        entity = await self.sender_for(sender)
        event_id = event.event_id or ""
        await entity.send_matrix_message(
            event,
            archive_only=archive_only,
            replacement=history.replacement(event_id) if history else None,
            reply_to=await self.reply_reference(event),
        )
        self.remember_event(event)
        if history is None:
            return
        for reactor, keys in history.reactions(event_id).items():
            reacting = await self.sender_for(reactor)
            reacting.react(event_id, keys, archive_only=archive_only)

    async def relay_history(
        self, history: History, events: tuple[Event, ...], archive_only: bool
    ) -> int:
        """Relays `events` of paged history, oldest first, with the edits and
        reactions the history gathered; returns how many events went."""
        n = 0
        for event in events:
            sender = event.sender
            if sender is None:
                continue
            if event.kind in MESSAGE_KINDS:
                await self.relay(event, archive_only=archive_only, history=history)
            elif event.kind == "reaction" and event.relates_to and event.reaction_key:
                # A reaction to a message older than this history.
                reacting = await self.sender_for(sender)
                reacting.react(
                    event.relates_to, [event.reaction_key], archive_only=archive_only
                )
            elif event.kind == "redaction" and event.redacts:
                # The removal of a message older than this history.
                redacting = await self.sender_for(sender)
                redacting.retract(event.redacts, archive_only=archive_only)
            else:
                continue
            n += 1
        return n

    # ---- XMPP → Matrix ---------------------------------------------------

    async def on_message(self, message: XMPPMessage) -> str:
        """Sends the user's XMPP message to the Matrix room."""
        self._refuse_if_encrypted()
        body = message.body or ""
        if message.attachments:
            return await send_xmpp_attachments(
                self.session, self.room_id, message.attachments, body
            )
        if len(body.encode()) > MAX_BODY_BYTES:
            raise XMPPError(
                "not-acceptable",
                f"This message is too long for Matrix (over {MAX_BODY_BYTES} bytes). "
                "Split it into smaller ones.",
            )
        if body.startswith("/me "):
            content = {"msgtype": "m.emote", "body": body[4:]}
        else:
            content = {"msgtype": "m.text", "body": body}
        return await self.session.send_to_matrix(
            self.room_id, "m.room.message", content
        )

    async def on_sticker(self, sticker: Sticker) -> str:
        """Sends the user's XMPP sticker to the Matrix room as ``m.sticker``."""
        self._refuse_if_encrypted()
        return await send_sticker(self.session, self.room_id, sticker)

    def _refuse_if_encrypted(self) -> None:
        info = self.session.room_info(self.room_id)
        if info is not None and info.encrypted:
            raise XMPPError(
                "not-acceptable",
                "This Matrix room is end-to-end encrypted and this gateway cannot "
                "encrypt yet, so it will not send your message there in clear text.",
            )
