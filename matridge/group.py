"""Matrix rooms as XMPP group chats: the seed's public surface.

- :class:`Participant` — a member of a Matrix room.
- :class:`Bookmarks` — :meth:`Bookmarks.fill` establishes the user's groups.
- :class:`MUC` — one Matrix room.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from slidge.group import LegacyBookmarks, LegacyMUC, LegacyParticipant
from slidge.util.types import MucType, SpaceMetadata, XMPPMessage
from slixmpp.exceptions import XMPPError

from .matrix import Event, MatrixError, NetworkError, RoomInfo
from .util import (
    MatrixMixin,
    jid_local_to_matrix_id,
    localpart,
    matrix_id_to_jid_local,
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

    async def get_message(self, msg_id: str) -> dict[str, Any] | None:
        """The Matrix event `msg_id` of this room, or None if there is none."""
        try:
            return await self.session.matrix.room_event(self.legacy_id, msg_id)
        except MatrixError as e:
            if e.status in (403, 404):
                return None
            raise

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
        if etype == "m.room.message":
            if self.session.is_own_echo(event):
                return
            sender = event.sender
            assert sender is not None  # invalid events never get here
            part = await self.participant_for(sender)
            part.send_matrix_message(event)
        elif etype == "m.room.name" or etype == "m.room.canonical_alias":
            self.name = self.get_room().display_name
        elif etype == "m.room.topic":
            self.subject = self.get_room().topic or ""

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
