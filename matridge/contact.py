"""Matrix direct chats as XMPP contacts.

A joined room that the account's ``m.direct`` lists as a direct chat, with
at most one other joined member, is shown as that member: a contact in the
user's roster (name and avatar from their profile, presence from Matrix
presence), whose messages arrive as 1:1 chat. Writing to the contact goes
to that room, or to a new direct room recorded in ``m.direct``. A direct
room that gains a third member stops standing for the contact and is shown
as a group chat.

- :class:`Contact` — one Matrix user the user has a direct chat with.
- :class:`Roster` — which rooms are direct chats, and with whom.
- :func:`contact_for_user_id` / :func:`find_user` — search by Matrix user id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slidge.command import FormField, SearchResult
from slidge.contact import LegacyContact, LegacyRoster
from slidge.util.types import ContactMessage, ContactSticker, MessageReference
from slixmpp.exceptions import XMPPError

from . import room_admin
from .chat import MatrixChat
from .errors import is_transient, matrix_errors
from .ids import is_user_id, jid_local_to_matrix_id, localpart, matrix_id_to_jid_local
from .matrix import (
    Event,
    MatrixError,
    NetworkError,
    RoomInfo,
    SyncRoom,
)
from .media import show_avatar
from .render import ChatSender, MentionTarget
from .util import MatrixMixin

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from .session import Session

log = logging.getLogger(__name__)


def direct_partner(info: RoomInfo) -> str | None:
    """The other user of a direct chat, or None if the room is not one: it
    must be joined, listed in ``m.direct`` for exactly one user, and have at
    most one joined member besides the account."""
    others = set(info.direct_user_ids)
    if info.membership != "join" or len(others) != 1 or info.joined_count > 2:
        return None
    return others.pop()


def direct_inviter(room: SyncRoom, user_id: str) -> str | None:
    """Who invites `user_id` to a 1:1 direct chat in `room` (an invited
    room), or None if it is not one: the invitation must say ``is_direct``
    and the invite state must show no member but the inviter and the user."""
    invite = None
    others: set[str] = set()
    for ev in room.state:
        if ev.kind != "member" or not ev.state_key:
            continue
        if ev.state_key == user_id:
            invite = ev if ev.membership == "invite" else None
        elif ev.membership in ("join", "invite"):
            others.add(ev.state_key)
    if invite is None or invite.is_direct is not True:
        return None
    inviter = invite.sender
    if not inviter or inviter == user_id or others - {inviter}:
        return None
    return inviter


def _carbon(kwargs: dict[str, object]) -> dict[str, Any]:
    return {**kwargs, "carbon": True}


class _OwnActions:
    """The contact's ``send_*`` calls as carbons: what the user did in the
    direct chat from another Matrix client shows as sent by the user."""

    def __init__(self, contact: Contact) -> None:
        self._contact = contact

    async def send_matrix_message(
        self,
        event: Event,
        archive_only: bool = False,
        replacement: Event | None = None,
        reply_to: MessageReference | None = None,
        mentions: Mapping[str, MentionTarget] | None = None,
    ) -> None:
        await self._contact.send_matrix_message(
            event, archive_only, replacement, reply_to, mentions, carbon=True
        )

    def react(
        self,
        legacy_msg_id: str,
        emojis: Iterable[str] = (),
        thread: str | None = None,
        **kwargs: object,
    ) -> None:
        self._contact.react(legacy_msg_id, emojis, thread, **_carbon(kwargs))

    def retract(
        self, legacy_msg_id: str, thread: str | None = None, **kwargs: object
    ) -> None:
        self._contact.retract(legacy_msg_id, thread, **_carbon(kwargs))

    def composing(self, **kwargs: object) -> None:
        self._contact.composing(**_carbon(kwargs))

    def paused(self, **kwargs: object) -> None:
        self._contact.paused(**_carbon(kwargs))

    def displayed(self, legacy_msg_id: str, **kwargs: object) -> None:
        self._contact.displayed(legacy_msg_id, **_carbon(kwargs))


class Contact(MatrixMixin, MatrixChat, LegacyContact):
    """A Matrix user the user has a direct chat with, as an XMPP contact.
    Its legacy id is the Matrix user id."""

    session: Session

    # A member's presence in group chats is the rooms' business (room_state).
    PROPAGATE_PRESENCE_TO_GROUPS = False

    # Edits (m.replace), retractions (redactions) and reactions go to Matrix.
    CORRECTION = True
    RETRACTION = True
    REACTION = True

    @property
    def user_id(self) -> str:
        return str(self.legacy_id)

    @property
    def room_id(self) -> str:
        """The direct room (XMPPError if there is none yet: see on_message)."""
        room_id = self.session.contacts.room_of(self.user_id)
        if room_id is None:
            raise XMPPError(
                "item-not-found", f"There is no direct chat with {self.user_id} yet."
            )
        return room_id

    async def sender_for(self, user_id: str) -> ChatSender:
        """The contact; the user's own actions (from another Matrix client)
        as carbons."""
        if user_id == self.session.user_id:
            return _OwnActions(self)
        return self

    async def update_info(self) -> None:
        """Name and avatar from the Matrix profile, and current presence."""
        matrix = self.session.matrix
        try:
            profile = await matrix.get_profile(self.user_id)
        except (MatrixError, NetworkError) as e:
            log.info("No profile for %s: %s", self.user_id, e)
            self.name = localpart(self.user_id)
            return
        self.name = profile.displayname or localpart(self.user_id)
        await self.update_avatar(profile.avatar_url)
        if self.is_friend:
            await self.fetch_presence()

    async def fetch_presence(self) -> None:
        """The current Matrix presence (sync brings only its changes)."""
        try:
            presence = await self.session.matrix.get_presence(self.user_id)
        except (MatrixError, NetworkError) as e:
            log.debug("No presence for %s: %s", self.user_id, e)
        else:
            self.show_presence(
                presence.presence,
                presence.status_msg,
                presence.last_active_ago,
                presence.currently_active,
            )

    async def update_avatar(self, mxc: str | None) -> None:
        """Shows the profile picture ``mxc`` (fetched unless already shown)."""
        await show_avatar(self, self.session.matrix, mxc, self.user_id)

    def show_presence(
        self,
        presence: str | None,
        status: str | None,
        last_active_ago: int | None,
        currently_active: bool | None,
    ) -> None:
        """Matrix presence (online, unavailable, offline) as XMPP presence,
        with the status text and when the user was last active."""
        last_seen = None
        if last_active_ago is not None and not currently_active:
            last_seen = datetime.now(UTC) - timedelta(milliseconds=last_active_ago)
        if presence == "online":
            self.online(status, last_seen=last_seen)
        elif presence == "unavailable":
            self.away(status, last_seen=last_seen)
        else:
            self.offline(status, last_seen=last_seen)

    def gap_stop(self) -> str | None:
        # The newest message already relayed, saved with the sync token: the
        # seen ids are empty after a restart, and there is no archive here.
        return self.session.state.delivered_mark(self.room_id)

    def delivered(self, event_id: str) -> None:
        self.session.state.note_delivered(self.room_id, event_id)

    async def on_message(self, message: ContactMessage) -> str:
        """Sends to the direct room, creating it first if there is none."""
        await self.session.contacts.direct_room(self.user_id)
        await self.befriend()
        return await self.send_xmpp_message(message)

    async def on_sticker(self, sticker: ContactSticker) -> str:
        await self.session.contacts.direct_room(self.user_id)
        await self.befriend()
        return await self.send_xmpp_sticker(sticker)

    async def befriend(self) -> None:
        """Puts the contact in the user's roster (a direct chat exists, or the
        user asked for them); other contacts, such as a group's members
        looked up by JID, stay out of it."""
        if not self.is_friend:
            self.is_friend = True
            await self.fetch_presence()
        if not self.added_to_roster:
            await self.add_to_roster()

    async def on_friend_request(self, text: str = "") -> None:
        # Subscribing to a Matrix user needs nothing on Matrix: accept.
        await self.accept_friend_request()


class Roster(LegacyRoster[Contact]):
    """The user's Matrix direct chats, one contact per other user. Knows
    which rooms are direct chats and with whom (from ``m.direct`` and the
    rooms' members)."""

    session: Session

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._room_of_user: dict[str, str] = {}  # user id -> their direct room
        self._user_of_room: dict[str, str] = {}  # room id -> the other user id
        # Rooms whose full state was loaded (once per login) into the room
        # cache: lazy-loaded sync state may not hold every member, and the
        # members decide direct-ness.
        self._state_loaded: set[str] = set()
        # Held while a direct room is created and recorded, so that a sync
        # batch bringing the new room waits instead of showing it as a group.
        self._creating = asyncio.Lock()

    async def legacy_id_to_jid_username(self, legacy_id: str) -> str:
        return matrix_id_to_jid_local(legacy_id)

    async def jid_username_to_legacy_id(self, jid_username: str) -> str:
        user_id = jid_local_to_matrix_id(jid_username)
        if not is_user_id(user_id):
            # Room JIDs land here too: slidge then asks the bookmarks.
            raise XMPPError(
                "item-not-found", f"'{user_id}' is not a Matrix user id (@user:server)."
            )
        return user_id

    def room_of(self, user_id: str) -> str | None:
        """The direct room with `user_id`, if there is one."""
        return self._room_of_user.get(user_id)

    def user_of(self, room_id: str) -> str | None:
        """The other user of direct room `room_id` (None if it is not one)."""
        return self._user_of_room.get(room_id)

    # ---- which rooms are direct chats -------------------------------------

    async def classify(self, room_id: str) -> str | None:
        """Decides, from ``m.direct`` and the room's members, whether
        `room_id` is a direct chat; returns the other user if it is."""
        direct = room_id in self.session.matrix.rooms.direct_rooms()
        partner = None
        if direct:
            info = self.session.room_info(room_id)
            # Once per room: m.direct also lists rooms left long ago, which
            # the homeserver refuses to describe; those stay not direct.
            if room_id not in self._state_loaded:
                self._state_loaded.add(room_id)
                try:
                    info = await self.session.load_room_state(room_id)
                except XMPPError as e:
                    if is_transient(e):
                        # Asked again next time, not taken for a group chat.
                        self._state_loaded.discard(room_id)
                        raise
                    log.info("Direct room %s is not readable: %s", room_id, e.text)
                    info = None
            if info is not None:
                partner = direct_partner(info)
            if partner == self.session.user_id:
                partner = None  # a "direct chat" with oneself: show the room
        if partner == self._user_of_room.get(room_id):
            # Unchanged (the common case: every batch asks). Relinking would
            # also hand the user's other direct room with them the contact.
            return partner
        previous = self._user_of_room.pop(room_id, None)
        if previous is not None and self._room_of_user.get(previous) == room_id:
            del self._room_of_user[previous]
            # Another direct room with them, if any, takes over.
            for other_room, other_user in self._user_of_room.items():
                if other_user == previous:
                    self._room_of_user[previous] = other_room
                    break
        if partner is not None:
            self._user_of_room[room_id] = partner
            self._room_of_user.setdefault(partner, room_id)
        elif previous is not None:
            log.info("Room %s is no longer a direct chat with %s", room_id, previous)
        return partner

    async def refresh(self) -> list[str]:
        """Re-reads every direct room of ``m.direct``; returns the users who
        have a direct chat now."""
        for room_id in self.session.matrix.rooms.direct_rooms():
            await self.classify(room_id)
        for room_id in list(self._user_of_room):
            await self.classify(room_id)  # dropped from m.direct
        return list(self._room_of_user)

    async def fill(self) -> AsyncIterator[Contact]:
        """Every user with whom the user has a direct chat, in the roster."""
        self.user_legacy_id = self.session.user_id
        self._state_loaded.clear()  # each login starts a new room cache
        try:
            await self.session.matrix.load_direct_rooms()
        except (MatrixError, NetworkError) as e:
            log.warning("Could not read m.direct: %s", e)
            return
        try:
            users = await self.refresh()
        except XMPPError as e:
            log.warning("Could not classify the direct chats: %s", e.text)
            self.session.send_gateway_message(
                f"Some direct chats could not be read ({e.text}); they appear "
                "as contacts when their next message arrives."
            )
            users = list(self._room_of_user)
        for user_id in users:
            try:
                contact = await self.by_legacy_id(user_id)
                await contact.befriend()
            except XMPPError as e:
                # One contact that cannot be shown must not cost the others.
                log.warning("Contact %s not shown: %s", user_id, e.text)
                continue
            yield contact

    async def on_create_group(self, name: str, contacts: list[Contact]) -> str:
        """A new private Matrix room named `name`, the contacts invited."""
        return await room_admin.create_group(self.session, name, contacts)

    async def contact_for_room(self, room_id: str) -> Contact | None:
        """The contact that shows `room_id`, if it is a direct chat."""
        async with self._creating:
            partner = await self.classify(room_id)
        if partner is None:
            return None
        contact = await self.by_legacy_id(partner)
        await contact.befriend()
        return contact

    async def direct_room(self, user_id: str) -> str:
        """The direct room with `user_id`, or a new one if there is none:
        created on Matrix with them invited, and recorded in ``m.direct``."""
        room_id = self._room_of_user.get(user_id)
        if room_id is not None:
            return room_id
        async with self._creating:
            room_id = self._room_of_user.get(user_id)
            if room_id is None:
                room_id = await self._create_direct_room(user_id)
        return room_id

    async def _create_direct_room(self, user_id: str) -> str:
        matrix = self.session.matrix
        with matrix_errors(f"open a direct chat with {user_id}"):
            room_id = await matrix.create_room(
                invite=[user_id], is_direct=True, preset="trusted_private_chat"
            )
            await self._record_direct(user_id, room_id)
        self._user_of_room[room_id] = user_id
        self._room_of_user[user_id] = room_id
        return room_id

    async def _record_direct(self, user_id: str, room_id: str) -> None:
        """Adds `room_id` to ``m.direct`` under `user_id`, keeping every other
        entry (read, modify, write: the whole event is replaced)."""
        matrix = self.session.matrix
        content = await matrix.direct_chats()
        rooms = content.get(user_id)
        rooms = (
            [r for r in rooms if isinstance(r, str)] if isinstance(rooms, list) else []
        )
        if room_id not in rooms:
            rooms.append(room_id)
        content[user_id] = rooms
        await matrix.set_direct_chats(content)

    async def accept_direct_invite(self, room: SyncRoom) -> bool:
        """An invitation to a 1:1 direct chat (see :func:`direct_inviter`):
        joins the room, records it in ``m.direct`` under the inviter and
        befriends them, so that the room is their contact and never a group
        chat. False if `room` is no such invitation, or it could not be
        accepted (it is then offered as a group chat)."""
        room_id = room.room_id
        inviter = direct_inviter(room, self.session.user_id)
        info = self.session.room_info(room_id)
        if inviter is None or (info is not None and info.is_space):
            return False
        async with self._creating:
            try:
                await self.session.matrix.join(room_id)
            except (MatrixError, NetworkError) as e:
                log.warning(
                    "Could not accept the direct chat %s from %s: %s",
                    room_id,
                    inviter,
                    e,
                )
                return False
            if not await self._only_two(room_id, inviter):
                # Invite state may leave members out (Synapse shows only the
                # inviter): a group after all, which sync now shows as one.
                log.info(
                    "Joined %s, which %s invited to as a direct chat, but it has "
                    "other members: it is a group chat",
                    room_id,
                    inviter,
                )
                return True
            try:
                await self._record_direct(inviter, room_id)
            except (MatrixError, NetworkError) as e:
                log.warning(
                    "Joined the direct chat %s from %s but could not record it "
                    "in m.direct (it shows as a group chat): %s",
                    room_id,
                    inviter,
                    e,
                )
                return True
            # The room cache still says "invite" until sync brings the join:
            # classify() reads the state then.
            self._user_of_room[room_id] = inviter
            self._room_of_user.setdefault(inviter, room_id)
        log.info("Accepted the direct chat %s that %s started", room_id, inviter)
        contact = await self.by_legacy_id(inviter)
        await contact.befriend()
        return True

    async def _only_two(self, room_id: str, inviter: str) -> bool:
        """True if the joined room `room_id` has no member (joined or
        invited) but the user and `inviter`, from its full state."""
        self._state_loaded.add(room_id)  # so classify need not load it again
        try:
            info = await self.session.load_room_state(room_id)
        except XMPPError as e:
            log.info("Could not read the members of %s: %s", room_id, e.text)
            return True  # the invite state said so; sync corrects it if wrong
        allowed = {inviter, self.session.user_id}
        return all(
            user_id in allowed
            for user_id, member in info.members.items()
            if member.membership in ("join", "invite")
        )

    # ---- live updates ------------------------------------------------------

    async def on_account_data(self, events: Iterable[Event]) -> None:
        """A changed ``m.direct`` (the engine has cached it): rooms may have
        become, or stopped being, direct chats."""
        if not any(ev.kind == "direct" for ev in events):
            return
        known = set(self._room_of_user)
        for user_id in await self.refresh():
            if user_id not in known:
                contact = await self.by_legacy_id(user_id)
                await contact.befriend()

    async def on_presence(self, events: Iterable[Event]) -> None:
        """Matrix presence of direct-chat contacts as their XMPP presence."""
        for ev in events:
            user_id = ev.sender
            if user_id is None or user_id not in self._room_of_user:
                continue
            contact = await self.by_legacy_id(user_id)
            contact.show_presence(
                ev.presence, ev.status_msg, ev.last_active_ago, ev.currently_active
            )


# ---- search -------------------------------------------------------------------

USER_RESULT_FIELDS = [
    FormField("name", "Name"),
    FormField("user_id", "Matrix user id"),
    FormField("jid", "Contact", type="jid-single"),
]


async def contact_for_user_id(session: Session, user_id: str) -> Contact:
    """The contact for Matrix user `user_id`, whose profile must exist (the
    direct room is made when the user first writes to them)."""
    user_id = user_id.strip()
    if not is_user_id(user_id):
        raise XMPPError(
            "bad-request",
            f"'{user_id}' is not a Matrix user id; they look like @alice:example.org.",
        )
    if user_id == session.user_id:
        raise XMPPError("bad-request", "That is your own Matrix account.")
    try:
        await session.matrix.get_profile(user_id)
    except MatrixError as e:
        if e.status in (403, 404):
            raise XMPPError(
                "item-not-found",
                f"Matrix knows no user {user_id} (or their profile is private).",
            ) from e
        raise XMPPError(
            "service-unavailable", f"Matrix refused to look up {user_id}: {e.error}"
        ) from e
    except NetworkError as e:
        raise XMPPError(
            "remote-server-timeout", f"The homeserver is unreachable ({e})."
        ) from e
    contact = await session.contacts.by_legacy_id(user_id)
    await contact.befriend()
    return contact


async def find_user(session: Session, user_id: str) -> SearchResult:
    """The search result for a Matrix user id: their contact's JID."""
    contact = await contact_for_user_id(session, user_id)
    return SearchResult(
        description="Write to this contact for a direct chat on Matrix",
        fields=USER_RESULT_FIELDS,
        items=[
            {
                "name": contact.name or localpart(contact.user_id),
                "user_id": contact.user_id,
                "jid": contact.jid.bare,
            }
        ],
    )
