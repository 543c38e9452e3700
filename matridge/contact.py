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

import logging
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slidge.contact import LegacyContact, LegacyRoster
from slidge.util.types import (
    ContactMessage,
    ContactSticker,
    LegacyAttachment,
)
from slixmpp import Message as XMPPMessage
from slixmpp.exceptions import XMPPError

from .chat import MatrixChat
from .context import HasAccount
from .group import create_group
from .ids import is_user_id, jid_local_to_matrix_id, localpart, matrix_id_to_jid_local
from .matrix import (
    Event,
    MatrixError,
    NetworkError,
    SyncRoom,
)
from .media import show_avatar
from .render import ChatSender
from .util import MatrixMixin

if TYPE_CHECKING:
    from collections.abc import Iterable


log = logging.getLogger(__name__)


def _carbon(kwargs: dict[str, object]) -> dict[str, Any]:
    return {**kwargs, "carbon": True}


class _OwnActions:
    """The contact's ``send_*`` calls as carbons: what the user did in the
    direct chat from another Matrix client shows as sent by the user."""

    def __init__(self, contact: Contact) -> None:
        self._contact = contact

    @property
    def session(self) -> Any:
        return self._contact.session

    def send_text(
        self, body: str, legacy_msg_id: str | None = None, **kwargs: Any
    ) -> XMPPMessage | None:
        return self._contact.send_text(body, legacy_msg_id, **_carbon(kwargs))

    async def send_files(
        self,
        attachments: Collection[LegacyAttachment],
        legacy_msg_id: str | None = None,
        body: str | None = None,
        **kwargs: Any,
    ) -> None:
        await self._contact.send_files(
            attachments, legacy_msg_id, body, **_carbon(kwargs)
        )

    def correct(self, legacy_msg_id: str, new_text: str, **kwargs: Any) -> None:
        self._contact.correct(legacy_msg_id, new_text, **_carbon(kwargs))

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
        room_id = self.account.directs.room_of(self.user_id)
        if room_id is None:
            raise XMPPError(
                "item-not-found", f"There is no direct chat with {self.user_id} yet."
            )
        return room_id

    async def sender_for(self, user_id: str) -> ChatSender:
        """The contact; the user's own actions (from another Matrix client)
        as carbons."""
        if user_id == self.account.user_id:
            return _OwnActions(self)
        return self

    async def update_info(self) -> None:
        """Name and avatar from the Matrix profile, and current presence."""
        matrix = self.account.matrix
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
            presence = await self.account.matrix.get_presence(self.user_id)
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
        await show_avatar(self, self.account.matrix, mxc, self.user_id)

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

    async def gap_stop(self) -> str | None:
        # The newest message the XMPP server confirmed: the seen ids are
        # empty after a restart, and there is no archive here.
        return self.account.server_ack.mark(self.room_id)

    def already_shown(self, events: Sequence[Event]) -> int:
        """Up to the saved delivery mark, if the timeline holds it."""
        mark = self.account.server_ack.mark(self.room_id)
        for i, event in enumerate(events):
            if mark is not None and event.event_id == mark:
                return i + 1
        return 0

    def delivered(self, event_id: str) -> None:
        self.account.server_ack.shown(self.room_id, event_id)

    async def on_message(self, message: ContactMessage) -> str:
        """Sends to the direct room, creating it first if there is none."""
        await self.account.directs.direct_room(self.user_id)
        await self.befriend()
        return await self.send_xmpp_message(message)

    async def on_sticker(self, sticker: ContactSticker) -> str:
        await self.account.directs.direct_room(self.user_id)
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


class Roster(HasAccount, LegacyRoster[Contact]):
    """The user's Matrix direct chats, one contact per other user. Knows
    which rooms are direct chats and with whom (from ``m.direct`` and the
    rooms' members)."""

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

    async def fill(self) -> AsyncIterator[Contact]:
        """Every user with whom the user has a direct chat, in the roster."""
        self.user_legacy_id = self.account.user_id
        directs = self.account.directs
        directs.reset()  # each login starts a new room cache
        try:
            await self.account.matrix.load_direct_rooms()
        except (MatrixError, NetworkError) as e:
            log.warning("Could not read m.direct: %s", e)
            return
        try:
            users = await directs.refresh()
        except XMPPError as e:
            log.warning("Could not classify the direct chats: %s", e.text)
            self.account.send_gateway_message(
                f"Some direct chats could not be read ({e.text}); they appear "
                "as contacts when their next message arrives."
            )
            users = directs.users
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
        return await create_group(self.account, name, contacts)

    async def contact_for_room(self, room_id: str) -> Contact | None:
        """The contact that shows `room_id`, if it is a direct chat."""
        directs = self.account.directs
        async with directs.creating:
            partner = await directs.classify(room_id)
        if partner is None:
            return None
        contact = await self.by_legacy_id(partner)
        await contact.befriend()
        return contact

    async def accept_direct_invite(self, room: SyncRoom) -> bool:
        """An invitation to a 1:1 direct chat becomes the inviter's contact
        (see :meth:`Directs.accept_invite`); False if it is offered as a
        group chat instead."""
        accepted, inviter = await self.account.directs.accept_invite(room)
        if inviter is not None:
            contact = await self.by_legacy_id(inviter)
            await contact.befriend()
        return accepted

    # ---- live updates ------------------------------------------------------

    async def on_account_data(self, events: Iterable[Event]) -> None:
        """A changed ``m.direct`` (the engine has cached it): rooms may have
        become, or stopped being, direct chats."""
        if not any(ev.kind == "direct" for ev in events):
            return
        directs = self.account.directs
        directs.direct_changed()
        known = set(directs.users)
        for user_id in await directs.refresh():
            if user_id not in known:
                contact = await self.by_legacy_id(user_id)
                await contact.befriend()

    async def on_presence(self, events: Iterable[Event]) -> None:
        """Matrix presence of direct-chat contacts as their XMPP presence."""
        for ev in events:
            user_id = ev.sender
            if user_id is None or self.account.directs.room_of(user_id) is None:
                continue
            contact = await self.by_legacy_id(user_id)
            contact.show_presence(
                ev.presence, ev.status_msg, ev.last_active_ago, ev.currently_active
            )
