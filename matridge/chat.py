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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slidge.util.types import (
    ChatState,
    MessageReference,
    StickerProtocol,
    XMPPMessageProtocol,
)
from slidge.util.types import Mention as SlidgeMention
from slixmpp.exceptions import XMPPError

from . import config
from .context import HasAccount
from .ids import is_event_id, require_event_id
from .matrix import (
    Event,
    History,
    MatrixError,
    Member,
    Message,
    NetworkError,
    Receipt,
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
from .render import ChatSender, MentionTarget, message_mentions, message_text
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

    def gap_stop(self) -> str | None:
        """The newest event the user already has from this room, where a gap
        fill stops (None: page back GAP_FILL_EVENTS events)."""
        raise NotImplementedError

    async def fill_gap(self, prev_batch: str) -> None:
        """A sync timeline came ``limited``: relays the events between what
        the user last got (`gap_stop`) and that timeline, so none is skipped."""
        history = await self.account.matrix.history(
            self.room_id,
            prev_batch,
            until_event_id=self.gap_stop(),
            limit=config.GAP_FILL_EVENTS,
        )
        seen = self.account.state.seen
        fresh = tuple(e for e in history.events if (e.event_id or "") not in seen)
        n = await self.relay_history(history, fresh, archive_only=False)
        for e in fresh:
            seen.add(e.event_id or "")
        log.info("Filled a gap of %d events in %s", n, self.room_id)

    def mentions_in(
        self, text: str, found: Sequence[SlidgeMention[Any]] = (), offset: int = 0
    ) -> list[Mention]:
        """The Matrix users the user's `text` mentions by the names shown
        here, given what slidge `found` in the body (`offset` characters
        before `text`); none in a direct chat: the one person there is the
        reader."""
        return []

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
    def _recent(self) -> Bounded[str, Event]:
        return self.memory.recent

    def remember_event(self, event: Event) -> None:
        """Keeps a recent message at hand for get_message (a bounded cache)."""
        if event.event_id is None or event.kind not in ("message", "sticker"):
            return
        self._recent.put(event.event_id, event)

    async def get_message(self, msg_id: str) -> Event | None:
        """The decoded Matrix event `msg_id` of this room: from the recent
        events first, else from the homeserver. None if there is no such
        event (or the user may not see it)."""
        cached = self._recent.get(msg_id)
        if cached is not None:
            return cached
        try:
            return await self.account.matrix.get_event(self.room_id, msg_id)
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
        # slidge wants the string "user" for the XMPP user's own messages.
        author: Any = (
            "user"
            if target.sender == self.account.user_id
            else await self.sender_for(target.sender)
        )
        body = message_text(target.message)
        return MessageReference(target_id, author, body)

    # ---- Matrix → XMPP ---------------------------------------------------

    async def on_matrix_event(self, event: Event) -> None:
        """Shows one live timeline event of this room to the XMPP user."""
        if event.kind in MESSAGE_KINDS:
            if self.account.is_own_echo(event):
                self.remember_event(event)
                return
            await self.relay(event)
        elif event.kind == "reaction":
            await self.on_matrix_reaction(event)
        elif event.kind == "redaction":
            await self.on_matrix_redaction(event)

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
        replacement = history.replacement(event_id) if history else None
        if replacement is not None:
            shown = replacement.new_message
        elif event.rel_type == "m.replace":
            shown = event.new_message
        else:
            shown = event.message
        await entity.send_matrix_message(
            event,
            archive_only=archive_only,
            replacement=replacement,
            reply_to=await self.reply_reference(event),
            mentions=await self.mention_targets(shown),
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
            elif not archive_only and event.kind in ("reaction", "redaction"):
                # A gap in the live timeline: as if it had come live.
                await self.on_matrix_event(event)
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

    # ---- mentions ----------------------------------------------------------

    async def mention_targets(
        self, message: Message | None
    ) -> dict[str, MentionTarget]:
        """The XMPP names of the users `message` mentions (pills)."""
        targets: dict[str, MentionTarget] = {}
        spans = message_mentions(message)  # none when the text has no pills
        if not spans:
            return targets
        # One snapshot of the members for the whole message.
        info = self.account.room_info(self.room_id)
        members = info.members if info is not None else {}
        for _, _, user_id in spans:
            if user_id in targets:
                continue
            target = await self.mention_target(user_id, members)
            if target is not None:
                targets[user_id] = target
        return targets

    async def mention_target(
        self, user_id: str, members: Mapping[str, Member]
    ) -> MentionTarget | None:
        """How a mention of Matrix user `user_id` shows on XMPP; None to
        leave the pill's text as it is (someone not in this room)."""
        if user_id == self.account.user_id:
            return self.own_mention_target()
        member = members.get(user_id)
        if member is None or member.membership != "join":
            return None  # showing them would make them appear in the room
        entity = await self.sender_for(user_id)
        name = getattr(entity, "nickname", None) or getattr(entity, "name", None)
        jid = getattr(entity, "jid", None)
        if not name or jid is None:
            return None
        return MentionTarget(str(name), f"xmpp:{jid}")

    def own_mention_target(self) -> MentionTarget | None:
        """How a mention of the XMPP user shows (a group chat shows their
        nick, so that clients highlight it)."""
        return None

    # ---- reactions and redactions from Matrix --------------------------

    @property
    def reaction_log(self) -> ReactionLog:
        """The room's recent reactions, to undo them when redacted."""
        return self.memory.reactions

    async def on_matrix_reaction(self, event: Event) -> None:
        """A live reaction: its sender's whole set of keys on the message
        goes to XMPP (XEP-0444 replaces the set each time)."""
        target, key, sender = event.relates_to, event.reaction_key, event.sender
        if not target or not key or not sender or not event.event_id:
            return
        self.reaction_log.put(event.event_id, Reaction(target, sender, key))
        if self.account.is_own_echo(event):
            return
        await self.show_reactions(target, sender)

    async def show_reactions(self, target: str, sender: str) -> None:
        keys = await current_reactions(
            self.account.matrix, self.room_id, target, sender, self.reaction_log
        )
        entity = await self.sender_for(sender)
        entity.react(target, list(keys))

    async def on_matrix_redaction(self, event: Event) -> None:
        """A live redaction: of a reaction, the sender's remaining reactions
        go to XMPP; of a message, a retraction (XEP-0424) when its sender
        redacted it, else a moderation (XEP-0425) by the redacting user."""
        redacts, redactor = event.redacts, event.sender
        if not redacts or not redactor:
            return
        reaction = self.reaction_log.pop(redacts)
        if self.account.is_own_echo(event):
            return  # the user's removal from XMPP: shown already
        if reaction is not None:
            await self.show_reactions(reaction.target, reaction.sender)
            return
        original = await self.get_message(redacts)
        self._recent.pop(redacts)
        if original is None or original.kind not in MESSAGE_KINDS:
            # A reaction this room no longer remembers, an edit, a state
            # event…: nothing XMPP shows as a message.
            log.debug("Redaction of %s: not a message shown here", redacts)
            return
        if original.rel_type == "m.replace":
            # An edit taken back: XMPP corrections cannot be undone.
            log.debug("Redaction of the edit %s: not shown", redacts)
            return
        author = original.sender or redactor
        redacting = await self.sender_for(redactor)
        moderate = getattr(redacting, "moderate", None)
        if author == redactor or moderate is None:
            (await self.sender_for(author)).retract(redacts)
        else:
            moderate(redacts, event.reason)

    # ---- typing and receipts from Matrix -------------------------------

    async def on_typing(self, user_ids: Sequence[str]) -> None:
        """The room's typing users now: who started composes, who stopped
        pauses (XEP-0085). The XMPP user's own typing is not echoed."""
        now = {u for u in user_ids if u != self.account.user_id}
        before = self.memory.typing
        for user_id in sorted(now - before):
            (await self.sender_for(user_id)).composing()
        for user_id in sorted(before - now):
            (await self.sender_for(user_id)).paused()
        before.clear()
        before.update(now)

    async def on_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Read receipts as XEP-0333 displayed markers: each user's latest
        ``m.read`` in the batch. The user's own (read on another Matrix
        client) marks the message read on their XMPP clients too."""
        latest: dict[str, str] = {}
        for receipt in receipts:
            mine = receipt.user_id == self.account.user_id
            if receipt.receipt_type == "m.read" or (
                mine and receipt.receipt_type == "m.read.private"
            ):
                latest[receipt.user_id] = receipt.event_id
        for user_id, event_id in latest.items():
            if user_id != self.account.user_id:
                (await self.sender_for(user_id)).displayed(event_id)
            elif event_id != self.memory.own_read_receipt:
                await self.show_own_read_marker(event_id)

    async def show_own_read_marker(self, event_id: str) -> None:
        """The user read up to `event_id` on another Matrix client."""
        entity = await self.sender_for(self.account.user_id)
        entity.displayed(event_id, carbon=True)

    # ---- XMPP → Matrix ---------------------------------------------------

    async def send_xmpp_message(self, message: XMPPMessageProtocol[Any]) -> str:
        """Sends the user's XMPP message to the Matrix room (the entities'
        ``on_message``)."""
        self._refuse_if_encrypted()
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
        self._recent.pop(event_id)
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
        self._refuse_if_encrypted()
        return await send_sticker(self.session, self.room_id, sticker)

    def _refuse_if_encrypted(self) -> None:
        info = self.account.room_info(self.room_id)
        if info is not None and info.encrypted:
            raise XMPPError(
                "not-acceptable",
                "This Matrix room is end-to-end encrypted and this gateway cannot "
                "encrypt yet, so it will not send your message there in clear text.",
            )
