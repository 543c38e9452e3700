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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slidge.util.types import (
    ChatState,
    StickerProtocol,
    XMPPMessageProtocol,
)
from slidge.util.types import Mention as SlidgeMention
from slixmpp.exceptions import XMPPError

from .context import HasAccount
from .ids import is_event_id, require_event_id
from .matrix import (
    Event,
    MatrixError,
    NetworkError,
)
from .media import send_sticker, send_xmpp_attachments
from .outbound import fresh_txn_id
from .outgoing import (
    Mention,
    edit_content,
    reaction_content,
    relate,
    split_emote,
    text_content,
)
from .reactions import current_reactions, normalise_key
from .render import ChatSender, MentionTarget
from .state import Bounded, ChatMemory, Reaction, ReactionLog

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# A Matrix event may be 65,536 bytes in all; leave room for the envelope.
MAX_BODY_BYTES = 60000

# Event kinds that show as a message in the conversation.
MESSAGE_KINDS = ("message", "sticker", "encrypted")

# Event kinds a conversation relays: messages and what changes them.
CHAT_KINDS = (*MESSAGE_KINDS, "reaction", "redaction")

# How long Matrix shows the user typing after an XMPP "composing" (clients
# send "paused" or a message well before).
TYPING_TIMEOUT_MS = 30000


class MatrixChat(HasAccount):
    """One Matrix room as an XMPP conversation (mixed into MUC and Contact)."""

    @property
    def room_id(self) -> str:
        """The Matrix room this conversation stands for."""
        raise NotImplementedError

    async def sender_for(self, user_id: str) -> ChatSender:
        """The XMPP entity that shows what Matrix user `user_id` does here."""
        raise NotImplementedError

    async def gap_stop(self) -> str | None:
        """The newest event the user already has from this room, where a gap
        fill stops (None: page back GAP_FILL_EVENTS events)."""
        raise NotImplementedError

    def mentions_in(
        self, text: str, found: Sequence[SlidgeMention[Any]] = (), offset: int = 0
    ) -> list[Mention]:
        """The Matrix users the user's `text` mentions by the names shown
        here, given what slidge `found` in the body (`offset` characters
        before `text`); none in a direct chat: the one person there is the
        reader."""
        return []

    def already_shown(self, events: Sequence[Event]) -> int:
        """How many of a timeline's first `events` were shown before a crash
        (a batch that comes again). Group chats need not say: slidge's
        archive keeps each message once."""
        return 0

    def delivered(self, event_id: str) -> None:
        """Notes the newest event of a sync batch relayed here. Group chats
        need nothing (their archive knows); direct chats keep it so a later
        gap fill stops there."""

    # ---- recent messages -------------------------------------------------

    @property
    def memory(self) -> ChatMemory:
        """What this conversation remembers between events (slidge makes a
        new object for each lookup, so it lives in the session)."""
        return self.account.state.memory(self.room_id)

    @property
    def recent(self) -> Bounded[str, Event]:
        """Recent messages of the room, for replies and redactions."""
        return self.memory.recent

    def remember_event(self, event: Event) -> None:
        """Keeps a recent message at hand for get_message (a bounded cache)."""
        if event.event_id is None or event.kind not in ("message", "sticker"):
            return
        self.recent.put(event.event_id, event)

    async def get_message(self, msg_id: str) -> Event | None:
        """The decoded Matrix event `msg_id` of this room: from the recent
        events first, else from the homeserver. None if there is no such
        event (or the user may not see it)."""
        cached = self.recent.get(msg_id)
        if cached is not None:
            return cached
        try:
            event = await self.account.matrix.get_event(self.room_id, msg_id)
            return self.account.readable(self.room_id, [event])[0]
        except MatrixError as e:
            if e.status in (400, 403, 404):
                return None
            raise
        except NetworkError as e:
            log.warning("Could not fetch event %s: %s", msg_id, e)
            return None

    # ---- Matrix → XMPP ---------------------------------------------------

    # ---- mentions ----------------------------------------------------------

    def own_mention_target(self) -> MentionTarget | None:
        """How a mention of the XMPP user shows (a group chat shows their
        nick, so that clients highlight it)."""
        return None

    # ---- reactions and redactions from Matrix --------------------------

    @property
    def reaction_log(self) -> ReactionLog:
        """The room's recent reactions, to undo them when redacted."""
        return self.memory.reactions

    # ---- typing and receipts from Matrix -------------------------------

    # ---- XMPP → Matrix ---------------------------------------------------

    async def send_xmpp_message(self, message: XMPPMessageProtocol[Any]) -> str:
        """Sends the user's XMPP message to the Matrix room (the entities'
        ``on_message``)."""
        await self.account.outbound.refuse_if_clear_only(self.room_id)
        body = message.body or ""
        reply = message.reply.msg_id if message.reply else None
        reply = reply if is_event_id(reply) else None
        thread = message.thread if is_event_id(message.thread) else None
        if message.attachments:
            return await send_xmpp_attachments(
                self.session,
                self.room_id,
                message.attachments,
                body,
                lambda content: relate(content, reply, thread),
            )
        if len(body.encode()) > MAX_BODY_BYTES:
            raise XMPPError(
                "not-acceptable",
                f"This message is too long for Matrix (over {MAX_BODY_BYTES} bytes). "
                "Split it into smaller ones.",
            )
        text = split_emote(body)[1]
        found = getattr(message, "mentions", ())  # group chats only
        mentions = self.mentions_in(text, found, len(body) - len(text))
        content = text_content(body, mentions)
        if message.replace and is_event_id(message.replace):
            content = edit_content(message.replace, content)
        else:
            content = relate(content, reply, thread)
        return await self.account.outbound.send(self.room_id, "m.room.message", content)

    async def on_react(
        self, legacy_msg_id: str, emojis: list[str], thread: str | None = None
    ) -> None:
        """The user's whole new set of reactions on a message: reactions are
        sent for the added keys, the user's reaction events of the removed
        ones are redacted."""
        require_event_id(legacy_msg_id)
        me = self.account.user_id
        mine = await self._own_reactions(legacy_msg_id)
        wanted = {normalise_key(e): e for e in emojis}
        have = {normalise_key(k): k for k in mine}
        for key in wanted.keys() - have.keys():
            event_id = await self.account.outbound.send(
                self.room_id,
                "m.reaction",
                reaction_content(legacy_msg_id, wanted[key]),
                txn_id=fresh_txn_id(),
            )
            self.reaction_log.put(event_id, Reaction(legacy_msg_id, me, wanted[key]))
        for key in have.keys() - wanted.keys():
            await self.redact(mine[have[key]])

    async def _own_reactions(self, target: str) -> dict[str, str]:
        """The user's reactions on `target`: key → reaction event id."""
        return await current_reactions(
            self.account.matrix,
            self.room_id,
            target,
            self.account.user_id,
            self.reaction_log,
        )

    async def on_retract(self, legacy_msg_id: str, thread: str | None = None) -> None:
        """The user retracted (XEP-0424) their message: redact it."""
        require_event_id(legacy_msg_id)
        await self.redact(legacy_msg_id)

    async def on_moderate(self, legacy_msg_id: str, reason: str | None) -> None:
        """The user, a moderator, removes someone's message (XEP-0425, group
        chats only): redact it, then show the moderation to the room."""
        require_event_id(legacy_msg_id)
        await self.redact(legacy_msg_id, reason)
        moderator = await self.sender_for(self.account.user_id)
        moderate = getattr(moderator, "moderate", None)
        if moderate is not None:
            moderate(legacy_msg_id, reason)

    async def redact(self, event_id: str, reason: str | None = None) -> None:
        """Redacts an event of this room (through the room's send order and
        retries; the redaction's own return through sync is skipped)."""
        await self.account.outbound.redact(self.room_id, event_id, reason)
        self.recent.pop(event_id)
        self.reaction_log.pop(event_id)

    # ---- chat states and markers from XMPP -----------------------------

    async def on_chat_state(self, chat_state: ChatState, thread: str | None) -> None:
        """XEP-0085 → Matrix typing: composing types (for a while), any
        other state stops."""
        typing = chat_state == "composing"
        if not typing and not self.memory.typing_sent:
            return
        self.memory.typing_sent = typing
        try:
            await self.account.matrix.typing(self.room_id, typing, TYPING_TIMEOUT_MS)
        except (MatrixError, NetworkError) as e:
            log.info("Typing notice to %s failed: %s", self.room_id, e)

    async def on_displayed(self, legacy_msg_id: str, thread: str | None = None) -> None:
        """XEP-0333 displayed → the read receipt and the fully-read marker."""
        if not is_event_id(legacy_msg_id):
            return
        self.memory.own_read_receipt = legacy_msg_id
        try:
            await self.account.matrix.set_read_markers(
                self.room_id, legacy_msg_id, read=legacy_msg_id
            )
        except (MatrixError, NetworkError) as e:
            log.info("Read marker in %s failed: %s", self.room_id, e)

    async def send_xmpp_sticker(self, sticker: StickerProtocol) -> str:
        """Sends the user's XMPP sticker to the Matrix room as ``m.sticker``
        (the entities' ``on_sticker``)."""
        await self.account.outbound.refuse_if_clear_only(self.room_id)
        return await send_sticker(self.session, self.room_id, sticker)
