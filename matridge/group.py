"""Matrix rooms as XMPP group chats: the seed's public surface.

- :class:`Participant` — a member of a Matrix room.
- :class:`Bookmarks` — :meth:`Bookmarks.fill` establishes the user's groups.
- :class:`MUC` — one Matrix room.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slidge.group import LegacyBookmarks, LegacyMUC, LegacyParticipant
from slidge.util.types import (
    HoleBound,
    MessageReference,
    MucType,
    SpaceMetadata,
    XMPPMessage,
)
from slixmpp.exceptions import XMPPError

from . import config
from .matrix import Event, History, MatrixError, NetworkError, RoomInfo
from .util import (
    MatrixMixin,
    jid_local_to_matrix_id,
    localpart,
    matrix_id_to_jid_local,
    message_text,
)

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)


# A Matrix event may be 65,536 bytes in all; leave room for the envelope.
MAX_BODY_BYTES = 60000


class Participant(MatrixMixin, LegacyParticipant):  # type: ignore[type-arg]
    """A member of a Matrix room, as an occupant of its MUC."""

    muc: MUC


class MUC(LegacyMUC[Participant]):
    """A Matrix room the user has joined, as an XMPP group chat."""

    session: Session

    # Edits, retractions and reactions towards Matrix come with a later issue;
    # until then slidge tells clients these are not available here.
    CORRECTION = False
    RETRACTION = False

    def get_room(self) -> RoomInfo:
        """A snapshot of this room from the engine's room cache: name, topic,
        members, power levels, encryption, direct-ness…"""
        info = self.session.room_info(self.legacy_id)
        if info is None:
            raise XMPPError("item-not-found", "This Matrix room is not known yet.")
        return info

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Recent messages as the decoder's lazy views, for get_message. A
        # view keeps its batch (or history) alive: the count bounds that.
        self._recent: OrderedDict[str, Event] = OrderedDict()

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
            return await self.session.matrix.get_event(self.legacy_id, msg_id)
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
        author: Any = (
            "user"
            if target.sender == self.session.user_id
            else await self.participant_for(target.sender)
        )
        body = message_text(target.message)
        return MessageReference(target_id, author, body)

    async def update_info(self) -> None:
        """Name, subject (topic) and participant count from the room's state."""
        info = await self.session.load_room_state(self.legacy_id)
        if info.is_space:
            raise XMPPError(
                "item-not-found", "This is a Matrix space, not a room you can chat in."
            )
        self.type = MucType.GROUP
        self.name = info.display_name
        if info.topic is not None:
            self.subject = info.topic
        self.n_participants = info.joined_count

    async def fill_participants(self) -> AsyncIterator[Participant]:
        """Every joined member, with their display name as nickname."""
        info = self.session.room_info(self.legacy_id)
        if info is None or not info.members:
            # Lazy loading gave only the members who spoke: fetch them all.
            info = await self.session.load_room_state(self.legacy_id)
        for member in info.members.values():
            if member.membership != "join":
                continue
            part = await self.participant_for(member.user_id)
            self._apply_power(part, info.power_level(member.user_id))
            yield part

    async def participant_for(self, user_id: str) -> Participant:
        """The occupant standing for Matrix user `user_id` in this room."""
        if user_id == self.session.user_id:
            return await self.get_user_participant()
        info = self.session.room_info(self.legacy_id)
        name = info.member_display_name(user_id) if info else None
        return await self.get_participant(
            name or localpart(user_id), occupant_id=user_id
        )

    @staticmethod
    def _apply_power(part: Participant, level: int) -> None:
        if level >= 100:
            part.affiliation, part.role = "owner", "moderator"
        elif level >= 50:
            part.affiliation, part.role = "admin", "moderator"

    async def on_matrix_event(self, event: Event) -> None:
        """Shows one live timeline event of this room to the XMPP user."""
        etype = event.type
        if event.kind in ("message", "sticker", "encrypted"):
            if self.session.is_own_echo(event):
                self.remember_event(event)
                return
            await self.relay(event)
        elif etype == "m.room.name" or etype == "m.room.canonical_alias":
            self.name = self.get_room().display_name
        elif etype == "m.room.topic":
            self.subject = self.get_room().topic or ""

    async def relay(
        self,
        event: Event,
        archive_only: bool = False,
        history: History | None = None,
    ) -> None:
        """One message-like event to XMPP, from its sender's occupant (the
        user's own occupant for their own messages), with its reply quote;
        from history, with its latest edit applied and its reactions."""
        sender = event.sender
        assert sender is not None  # invalid events never get here
        part = await self.participant_for(sender)
        event_id = event.event_id or ""
        part.send_matrix_message(
            event,
            archive_only=archive_only,
            replacement=history.replacement(event_id) if history else None,
            reply_to=await self.reply_reference(event),
        )
        self.remember_event(event)
        if history is None:
            return
        for reactor, keys in history.reactions(event_id).items():
            occupant = await self.participant_for(reactor)
            occupant.react(event_id, keys, archive_only=archive_only)

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
            if event.kind in ("message", "sticker", "encrypted"):
                await self.relay(event, archive_only=archive_only, history=history)
            elif event.kind == "reaction" and event.relates_to and event.reaction_key:
                # A reaction to a message older than this history.
                occupant = await self.participant_for(sender)
                occupant.react(
                    event.relates_to, [event.reaction_key], archive_only=archive_only
                )
            elif event.kind == "redaction" and event.redacts:
                # The removal of a message older than this history.
                occupant = await self.participant_for(sender)
                occupant.retract(event.redacts, archive_only=archive_only)
            else:
                continue
            n += 1
        return n

    async def backfill(
        self,
        after: HoleBound | None = None,
        before: HoleBound | None = None,
        *,
        oldest_message_id: str | None = None,
        oldest_message_date: datetime | None = None,
    ) -> None:
        """Fills slidge's archive of this room with Matrix history, sent with
        ``archive_only=True`` at its original times.

        Fetches what is older than ``before`` (slidge's oldest live message;
        also given as the original design's ``oldest_message_id`` /
        ``oldest_message_date``) back to ``after`` (the newest message the
        archive already holds, excluded) or at most ``BACKFILL_EVENTS``
        events. Edits are applied, redacted messages left out, reactions
        added; the archive never holds an event twice."""
        start_id = before.id if before else oldest_message_id
        start_date = before.timestamp if before else oldest_message_date
        matrix = self.session.matrix
        from_token = None
        if start_id is not None:
            try:
                context = await matrix.event_context(self.legacy_id, start_id, limit=0)
                token = context.get("start")
                from_token = token if isinstance(token, str) else None
            except (MatrixError, NetworkError) as e:
                log.warning("No context for %s in %s: %s", start_id, self.legacy_id, e)
        history = await matrix.history(
            self.legacy_id,
            from_token,
            until_event_id=after.id if after else None,
            limit=config.BACKFILL_EVENTS,
        )
        events = history.events
        if from_token is None:
            # Paged from the live end: leave out what the archive has already.
            events = _older_than(events, start_id, start_date)
        n = await self.relay_history(history, events, archive_only=True)
        # What the archive now holds must not come again live from a sync
        # batch that was already on its way.
        for event in events:
            self.session.seen_ids.add(event.event_id or "")
        log.debug("Backfilled %d events of %s", n, self.legacy_id)

    def newest_archived_id(self) -> str | None:
        """The Matrix event id of the newest message in slidge's archive."""
        store = self.xmpp.store
        with store.session() as orm:
            newest = store.mam.get_most_recent_with_legacy_id(orm, self.stored.id)
            return None if newest is None else newest.legacy_id

    async def fill_gap(self, prev_batch: str) -> None:
        """A sync timeline came ``limited``: relays the events between what
        the user last got and that timeline, so none is skipped."""
        history = await self.session.matrix.history(
            self.legacy_id,
            prev_batch,
            until_event_id=self.newest_archived_id(),
            limit=config.GAP_FILL_EVENTS,
        )
        seen = self.session.seen_ids
        fresh = tuple(e for e in history.events if (e.event_id or "") not in seen)
        n = await self.relay_history(history, fresh, archive_only=False)
        for e in fresh:
            seen.add(e.event_id or "")
        log.info("Filled a gap of %d events in %s", n, self.legacy_id)

    async def on_message(self, message: XMPPMessage) -> str:
        """Sends the user's group chat message to the Matrix room."""
        if message.attachments:
            raise XMPPError(
                "feature-not-implemented",
                "Sending files to Matrix is not supported by this gateway yet.",
            )
        if self.get_room().encrypted:
            raise XMPPError(
                "not-acceptable",
                "This Matrix room is end-to-end encrypted and this gateway cannot "
                "encrypt yet, so it will not send your message there in clear text.",
            )
        body = message.body or ""
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
            self.legacy_id, "m.room.message", content
        )

    async def available_emojis(self, legacy_msg_id: str | None = None) -> None:
        return None


class Bookmarks(LegacyBookmarks[MUC]):
    """The user's Matrix rooms as group chats."""

    session: Session

    async def fill(self) -> None:
        """Establishes the user's groups: every joined Matrix room."""
        try:
            room_ids = await self.session.matrix.joined_rooms()
        except (MatrixError, NetworkError) as e:
            self.log.warning("Could not list joined rooms: %s", e)
            self.session.send_gateway_message(
                f"Could not list your Matrix rooms ({e}); they will appear as "
                "their messages arrive."
            )
            return
        for room_id in room_ids:
            await self.show(room_id)

    async def show(self, room_id: str) -> MUC | None:
        """The MUC of a joined room. The first time, it is added to the user's
        bookmarks (or, where the gateway may not write them, announced by an
        invitation); the room is remembered so restarts do not announce it
        again."""
        try:
            muc = await self.by_legacy_id(room_id)
        except XMPPError as e:
            self.log.info("Room %s is not shown: %s", room_id, e.text)
            return None
        if room_id not in self.session.announced_rooms:
            await muc.add_to_bookmarks(auto_join=True)
            self.session.remember_announced(room_id)
        return muc

    async def legacy_id_to_jid_local_part(self, legacy_id: str) -> str:
        return matrix_id_to_jid_local(legacy_id)

    async def jid_local_part_to_legacy_id(self, local_part: str) -> str:
        room_id = jid_local_to_matrix_id(local_part)
        # Room version 12 ids have no ":server" part, so only the sigil counts.
        if len(room_id) < 2 or not room_id.startswith("!"):
            raise XMPPError(
                "item-not-found",
                f"'{room_id}' is not a Matrix room id (they start with '!').",
            )
        return room_id

    async def fetch_space_metadata(self, legacy_id: str) -> SpaceMetadata:
        raise XMPPError("feature-not-implemented", "Matrix spaces are not shown.")


def _older_than(
    events: tuple[Event, ...], event_id: str | None, date: datetime | None
) -> tuple[Event, ...]:
    """The events before `event_id` and older than `date` (either may be None)."""
    if event_id is not None:
        ids = [e.event_id for e in events]
        if event_id in ids:
            events = events[: ids.index(event_id)]
    if date is not None:
        limit = date.timestamp() * 1000
        events = tuple(e for e in events if e.origin_server_ts < limit)
    return events
