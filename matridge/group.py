"""Matrix rooms as XMPP group chats: the seed's public surface.

- :class:`Participant` — a member of a Matrix room.
- :class:`Bookmarks` — :meth:`Bookmarks.fill` establishes the user's groups.
- :class:`MUC` — one Matrix room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from slidge.contact import LegacyContact
from slidge.group import LegacyBookmarks, LegacyMUC, LegacyParticipant
from slidge.util.types import (
    HoleBound,
    MucAffiliation,
    MUCMessage,
    MUCSticker,
    MucType,
    SpaceMetadata,
)
from slidge.util.types import (
    Mention as SlidgeMention,
)
from slixmpp import Presence
from slixmpp.exceptions import XMPPError

from . import config
from .chat import MatrixChat
from .context import HasAccount, MatrixSession
from .errors import NotShown, is_transient, matrix_errors
from .ids import jid_local_to_matrix_id, localpart, matrix_id_to_jid_local
from .inbound import messages
from .matrix import Event, MatrixError, NetworkError, RoomInfo
from .media import show_avatar
from .outgoing import Mention, find_mentions, merge_mentions
from .render import MentionTarget
from .util import MatrixMixin

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# ---- XMPP room management, done on Matrix (the outcome comes back through
# sync and is shown then, so nothing is shown twice) ---------------------------

# The power level each MUC affiliation stands for on Matrix.
AFFILIATION_POWER: dict[str, int] = {"owner": 100, "admin": 50, "member": 0}


def contact_user_id(contact: LegacyContact) -> str:
    """The Matrix user id an XMPP contact of this gateway stands for."""
    legacy_id = str(contact.legacy_id)
    if legacy_id.startswith("@"):
        return legacy_id
    return jid_local_to_matrix_id(contact.jid.node)


def participant_user_id(part: Participant) -> str:
    """The Matrix user id of an occupant (its occupant id, or its contact's)."""
    if part.occupant_id.startswith("@"):
        return part.occupant_id
    if part.contact is not None:
        return contact_user_id(part.contact)
    raise XMPPError("item-not-found", "This occupant is not a Matrix user.")


async def set_subject(muc: MUC, subject: str) -> None:
    """The MUC subject is the room's topic. The new topic comes back through
    sync and becomes the subject then."""
    with matrix_errors("change the topic"):
        await muc.account.matrix.send_state(
            muc.room_id, "m.room.topic", {"topic": subject}
        )


async def leave(muc: MUC) -> None:
    """The user left the MUC for good (slidge removes it from the bookmarks):
    leave the Matrix room. Forgotten first, so the leave that sync brings
    back is not shown as a second removal."""
    session = muc.account
    session.state.forget_announced(muc.room_id)
    with matrix_errors("leave the room"):
        await session.matrix.leave(muc.room_id)


async def kick(part: Participant, reason: str | None) -> None:
    with matrix_errors("kick this member"):
        await part.muc.account.matrix.kick(
            part.muc.room_id, participant_user_id(part), reason
        )


async def set_affiliation(
    part: Participant, affiliation: MucAffiliation, reason: str | None
) -> None:
    """outcast bans; none kicks a member (or unbans a banned user); member,
    admin and owner invite a user who is not in the room, else set their
    power level to 0, 50 or 100."""
    muc = part.muc
    matrix = muc.account.matrix
    user_id = participant_user_id(part)
    info = muc.room_snapshot()
    member = info.members.get(user_id)
    membership = member.membership if member else "leave"
    if affiliation == "outcast":
        with matrix_errors("ban this user"):
            await matrix.ban(muc.room_id, user_id, reason)
        return
    if affiliation == "none":
        with matrix_errors("remove this user"):
            if membership == "ban":
                await matrix.unban(muc.room_id, user_id, reason)
            elif membership in ("join", "invite", "knock"):
                await matrix.kick(muc.room_id, user_id, reason)
        return
    if membership not in ("join", "invite"):
        with matrix_errors("invite this user"):
            await matrix.invite(muc.room_id, user_id, reason)
        if part.occupant_id != user_id:
            # slidge made an occupant for the invitee: they are not in yet.
            part.leave()
        return
    level = AFFILIATION_POWER.get(affiliation)
    if level is None:
        raise XMPPError("bad-request", f"Unknown affiliation '{affiliation}'.")
    content = dict(info.power_levels)
    users = content.get("users")
    users = dict(users) if isinstance(users, dict) else {}
    users[user_id] = level
    content["users"] = users
    with matrix_errors("change this member's power level"):
        await matrix.send_state(muc.room_id, "m.room.power_levels", content)


async def create_group(
    session: MatrixSession, name: str, contacts: Iterable[LegacyContact]
) -> str:
    """A new private Matrix room named `name`, with the contacts invited;
    returns its room id."""
    invite = [contact_user_id(c) for c in contacts]
    with matrix_errors("create the room"):
        room_id = await session.matrix.create_room(
            name=name, invite=invite, preset="private_chat"
        )
    # Created from XMPP: the user already gets its address from the command.
    session.state.remember_announced(room_id)
    return room_id


# ---- power levels, avatar and invitations of a room --------------------------

Affiliation = Literal["owner", "admin", "member"]
Role = Literal["moderator", "participant"]


def affiliation_for(level: int) -> tuple[Affiliation, Role]:
    """The MUC affiliation and role of a Matrix power level: 100 and up
    (room version 12 creators have CREATOR_POWER_LEVEL, 2**53) own the room,
    50 and up moderate it, others are members."""
    if level >= 100:
        return "owner", "moderator"
    if level >= 50:
        return "admin", "moderator"
    return "member", "participant"


def apply_power(part: Participant, level: int) -> None:
    """Sets a participant's affiliation and role from their power level;
    slidge tells the joined XMPP clients when they change."""
    affiliation, role = affiliation_for(level)
    # The role first: slidge sends a presence for each change, so the last
    # one then shows both.
    part.role = role
    part.affiliation = affiliation


async def update_avatar(muc: MUC, info: RoomInfo) -> None:
    """Shows the room's m.room.avatar as the MUC avatar (none if unset)."""
    await show_avatar(muc, muc.account.matrix, info.avatar_url, muc.room_id)


async def accept_invitation(muc: MUC) -> None:
    """Joins the Matrix room of `muc` if the user is only invited to it (the
    XMPP user joining the MUC accepts the invitation), then loads its full
    state."""
    session = muc.account
    info = session.room_info(muc.room_id)
    if info is None or info.membership != "invite":
        return
    with matrix_errors("let you join this room"):
        await session.matrix.join(muc.room_id)
    session.state.invitations_sent.discard(muc.room_id)
    session.state.remember_announced(muc.room_id)
    await muc.update_info(await session.load_room_state(muc.room_id))


def mention_names(info: RoomInfo, own_user_id: str) -> dict[str, str]:
    """The names that mention a joined member (their disambiguated display
    name, and their plain one) → their user id."""
    names: dict[str, str] = {}
    for member in info.members.values():
        uid = member.user_id
        if member.membership != "join" or uid == own_user_id:
            continue
        if member.display_name:
            names.setdefault(member.display_name, uid)
        names[info.member_display_name(uid)] = uid
    return names


class Participant(HasAccount, MatrixMixin, LegacyParticipant):  # type: ignore[type-arg]
    """A member of a Matrix room, as an occupant of its MUC."""

    muc: MUC

    async def on_kick(self, reason: str | None) -> None:
        """The XMPP user kicks this occupant: a Matrix kick."""
        await kick(self, reason)

    async def on_set_affiliation(
        self,
        affiliation: MucAffiliation,
        reason: str | None,
        nickname: str | None,
    ) -> None:
        """A ban (outcast), kick or unban (none), invitation or power level
        change (member, admin, owner) on Matrix."""
        await set_affiliation(self, affiliation, reason)


class MUC(MatrixChat, LegacyMUC[Participant]):
    """A Matrix room the user has joined, as an XMPP group chat."""

    # Edits (m.replace), retractions (redactions) and reactions go to Matrix.
    CORRECTION = True
    RETRACTION = True
    REACTION = True

    async def get_room(self) -> RoomInfo:
        """This Matrix room: name, topic, members, power levels, encryption,
        direct-ness… From the engine's room cache, or from the room's full
        state when the cache does not know it yet."""
        info = self.account.room_info(self.legacy_id)
        if info is None:
            info = await self.account.load_room_state(self.legacy_id)
        return info

    def room_snapshot(self) -> RoomInfo:
        """The cheap form of :meth:`get_room` for the gateway's own code: a
        snapshot of the room cache, never a request."""
        info = self.account.room_info(self.legacy_id)
        if info is None:
            raise XMPPError("item-not-found", "This Matrix room is not known yet.")
        return info

    async def update_info(self, info: RoomInfo | None = None) -> None:
        """Name, subject (topic), avatar and participant count from the
        room's state (for a room the user is only invited to, from what the
        invitation shows: its state is readable once they join). `info` is
        state the caller has just loaded (slidge passes on the extra
        arguments of ``by_legacy_id``), so it is not loaded twice."""
        if info is None:
            cached = self.account.room_info(self.legacy_id)
            if cached is not None and cached.membership == "invite":
                info = cached
            else:
                info = await self._load_state()
        if info.membership == "invite":
            in_room = True
        else:
            # Synapse lets a former member read the state. The own member
            # event in it is current, while the cache's own membership waits
            # for the next sync (a join a moment ago still reads "leave").
            me = info.members.get(self.account.user_id)
            if me is not None:
                in_room = me.membership in ("join", "invite")
            else:
                # A sync's state may leave out the user's own member event
                # (lazy loading): the section the room came in tells.
                in_room = info.membership == "join"
        if not in_room:
            raise NotShown(
                "You are not in this Matrix room: join it with the 'join' command "
                "or the gateway's search."
            )
        if info.is_space:
            raise NotShown("This is a Matrix space, not a room you can chat in.")
        await self.show_info(info)

    async def _load_state(self) -> RoomInfo:
        """The room's full state. A refusal for a room the user is not in
        (left, banned, never joined) means "not shown", not a failure."""
        try:
            return await self.account.load_room_state(self.legacy_id)
        except XMPPError as e:
            cached = self.account.room_info(self.legacy_id)
            if not is_transient(e) and (
                cached is None or cached.membership not in ("join", "invite")
            ):
                raise NotShown(
                    "You are not in this Matrix room: join it with the 'join' "
                    "command or the gateway's search."
                ) from e
            raise

    async def show_info(self, info: RoomInfo) -> None:
        """Type, name, subject (topic), participant count and avatar."""
        self.type = MucType.GROUP
        self.name = info.display_name
        if info.topic is not None:
            self.subject = info.topic
        self.n_participants = info.joined_count
        await update_avatar(self, info)

    async def join(self, join_presence: Presence) -> None:
        """Joining the MUC of a room the user is invited to accepts the
        invitation: the gateway joins the Matrix room first."""
        await accept_invitation(self)
        await super().join(join_presence)

    async def get_participant(  # type: ignore[override]
        self, nickname: str | None = None, **kwargs: Any
    ) -> Participant | None:
        part: Participant | None = await super().get_participant(
            nickname,  # type: ignore[arg-type]
            **kwargs,
        )
        if (
            part is not None
            and kwargs.get("fill_first")
            and kwargs.get("create") is False
            and part.contact is None
            and part.occupant_id.startswith("@")
        ):
            # slidge looks an occupant up like this to moderate it by nick,
            # then needs its contact: link the occupant to its Matrix user's.
            contact = await self.account.contacts.by_legacy_id(part.occupant_id)
            return await self.get_participant_by_contact(
                contact, occupant_id=part.occupant_id
            )
        return part

    async def on_message(self, message: MUCMessage[Participant]) -> str:
        return await self.send_xmpp_message(message)

    async def on_sticker(self, sticker: MUCSticker) -> str:
        return await self.send_xmpp_sticker(sticker)

    async def on_set_subject(self, subject: str) -> None:
        """The subject is the room's topic."""
        await set_subject(self, subject)

    async def on_leave(self) -> None:
        """Leaving the MUC for good leaves the Matrix room."""
        await leave(self)

    async def fill_participants(self) -> AsyncIterator[Participant]:
        """Every joined member, with their display name as nickname."""
        info = self.account.room_info(self.legacy_id)
        if info is None or not info.members:
            # Lazy loading gave only the members who spoke: fetch them all.
            info = await self.account.load_room_state(self.legacy_id)
        for member in info.members.values():
            if member.membership != "join":
                continue
            part = await self.participant_for(member.user_id)
            apply_power(part, info.power_level(member.user_id))
            yield part

    @property
    def room_id(self) -> str:
        return str(self.legacy_id)

    async def sender_for(self, user_id: str) -> Participant:
        """In a group chat, each member's occupant."""
        return await self.participant_for(user_id)

    async def participant_for(self, user_id: str) -> Participant:
        """The occupant standing for Matrix user `user_id` in this room."""
        if user_id == self.account.user_id:
            return await self.get_user_participant()
        part = await self.get_participant(self.nick_for(user_id), occupant_id=user_id)
        assert part is not None  # created when missing
        return part

    def nick_for(self, user_id: str) -> str:
        """The nick of Matrix user `user_id` here: their disambiguated display
        name, read from the cache directly (a snapshot copies every member)."""
        name = self.account.matrix.rooms.member_display_name(self.room_id, user_id)
        return name or localpart(user_id)

    def mentions_in(
        self,
        text: str,
        found: Sequence[SlidgeMention[Any]] = (),
        offset: int = 0,
    ) -> list[Mention]:
        """Members named in the user's `text`: the occupants slidge found by
        their nick (`found`: spans of the message body, which starts
        `offset` characters before `text`, at a ``/me`` and its space), and
        members named by their plain display name."""
        spans: list[Mention] = []
        for mention in found:
            uid = str(mention.participant.occupant_id)
            if uid.startswith("@") and uid != self.account.user_id:
                if mention.start >= offset:
                    spans.append((mention.start - offset, mention.end - offset, uid))
        memory = self.memory
        names = memory.mention_names
        if names is None:
            info = self.account.room_info(self.room_id)
            if info is None:
                return sorted(spans)
            names = memory.mention_names = mention_names(info, self.account.user_id)
        return merge_mentions(spans, find_mentions(text, names))

    def own_mention_target(self) -> MentionTarget:
        """A mention of the user shows their nick, which clients highlight."""
        return MentionTarget(self.user_nick, f"xmpp:{self.user_muc_jid}")

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
        matrix = self.account.matrix
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
        events = tuple(await self.account.readable_now(self.legacy_id, history.events))
        if from_token is None:
            # Paged from the live end: leave out what the archive has already.
            events = _older_than(events, start_id, start_date)
        n = await messages.relay_history(self, history, events, archive_only=True)
        # What the archive now holds must not come again live from a sync
        # batch that was already on its way.
        for event in events:
            self.account.state.seen.add(event.event_id or "")
        log.debug("Backfilled %d events of %s", n, self.legacy_id)

    async def newest_archived_id(self) -> str | None:
        """The Matrix event id of the newest message in slidge's archive,
        read off the event loop (the pool gives the thread its own
        connection)."""
        store, room_pk = self.xmpp.store, self.stored.id

        def query() -> str | None:
            with store.session() as orm:
                newest = store.mam.get_most_recent_with_legacy_id(orm, room_pk)
                return None if newest is None else newest.legacy_id

        return await asyncio.to_thread(query)

    async def gap_stop(self) -> str | None:
        # The archive holds what the user got.
        return await self.newest_archived_id()

    async def available_emojis(self, legacy_msg_id: str | None = None) -> None:
        return None


class Bookmarks(HasAccount, LegacyBookmarks[MUC]):
    """The user's Matrix rooms as group chats."""

    async def fill(self) -> None:
        """Establishes the user's groups: every joined Matrix room."""
        try:
            room_ids = await self.account.matrix.joined_rooms()
        except (MatrixError, NetworkError) as e:
            self.log.warning("Could not list joined rooms: %s", e)
            self.account.send_gateway_message(
                f"Could not list your Matrix rooms ({e}); they will appear as "
                "their messages arrive."
            )
            return
        # At a first login, the first sync describes every joined room at
        # once: the rooms are shown from it, not from one /state each.
        initial = await self.account.initial_batch()
        described = (
            {r.room_id for r in initial.rooms if r.membership == "join"}
            if initial is not None
            else set()
        )
        for room_id in room_ids:
            try:
                # Direct chats are contacts, which the roster filled already.
                if await self.account.directs.classify(room_id) is None:
                    info = (
                        self.account.room_info(room_id)
                        if room_id in described
                        else None
                    )
                    await self.show(room_id, info)
            except XMPPError as e:
                # One room that cannot be shown now must not cost the others;
                # it appears when its next message arrives.
                self.log.warning("Room %s not shown at login: %s", room_id, e.text)

    async def show(self, room_id: str, info: RoomInfo | None = None) -> MUC | None:
        """The MUC of a joined room. The first time, it is added to the user's
        bookmarks (or, where the gateway may not write them, announced by an
        invitation); the room is remembered so restarts do not announce it
        again. `info` is the room's state if the caller has just loaded it."""
        try:
            if info is None:
                muc = await self.by_legacy_id(room_id)
            else:
                muc = await self.by_legacy_id(room_id, info)
        except NotShown as e:
            # Deliberately not a group chat; failures to load it propagate,
            # so that a passing one is retried instead of losing the room.
            self.log.info("Room %s is not shown: %s", room_id, e.text)
            return None
        if room_id not in self.account.state.announced:
            await muc.add_to_bookmarks(auto_join=True)
            self.account.state.remember_announced(room_id)
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
