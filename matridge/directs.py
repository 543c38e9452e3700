"""Which Matrix rooms are direct chats, and with whom; new direct chats.

A joined room that the account's ``m.direct`` lists for exactly one other
user, with at most one other joined member, is a direct chat with that user
(:func:`direct_partner`); the entities show it as that user's contact. The
decision is kept per room and made again only when ``m.direct`` changes or
the room's members do, so a batch costs one look-up per room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slixmpp.exceptions import XMPPError

from .errors import is_transient, matrix_errors
from .matrix import MatrixClient, MatrixError, NetworkError, RoomInfo, SyncRoom

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


ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


class Directs:
    """The direct chats of one account: room <-> other user."""

    def __init__(
        self,
        matrix: MatrixClient,
        user_id: str,
        load_state: Callable[[str], Awaitable[RoomInfo]],
        can_encrypt: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._matrix = matrix
        self._user_id = user_id
        self._load_state = load_state
        # Whether a new direct chat with a user is created encrypted.
        self._can_encrypt = can_encrypt
        self._room_of_user: dict[str, str] = {}  # user id -> their direct room
        self._user_of_room: dict[str, str] = {}  # room id -> the other user id
        # Rooms whose full state was loaded (once per login) into the room
        # cache: lazy-loaded sync state may not hold every member, and the
        # members decide direct-ness.
        self._state_loaded: set[str] = set()
        # The rooms m.direct lists, read once per change of m.direct.
        self._listed: frozenset[str] | None = None
        # Held while a direct room is created and recorded, so that a sync
        # batch bringing the new room waits instead of showing it as a group.
        self.creating = asyncio.Lock()

    def room_of(self, user_id: str) -> str | None:
        """The direct room with `user_id`, if there is one."""
        return self._room_of_user.get(user_id)

    def user_of(self, room_id: str) -> str | None:
        """The other user of direct room `room_id` (None if it is not one)."""
        return self._user_of_room.get(room_id)

    @property
    def users(self) -> list[str]:
        """The users with whom there is a direct chat now."""
        return list(self._room_of_user)

    def reset(self) -> None:
        """A new login: a new room cache, nothing loaded yet."""
        self._state_loaded.clear()
        self._listed = None

    def direct_changed(self) -> None:
        """``m.direct`` changed (the engine has cached the new one)."""
        self._listed = None

    def _listed_rooms(self) -> frozenset[str]:
        if self._listed is None:
            self._listed = frozenset(self._matrix.rooms.direct_rooms())
        return self._listed

    async def classify(self, room_id: str) -> str | None:
        """Decides, from ``m.direct`` and the room's members, whether
        `room_id` is a direct chat; returns the other user if it is."""
        direct = room_id in self._listed_rooms()
        partner = None
        if direct:
            info = self._matrix.rooms.get(room_id)
            # Once per room: m.direct also lists rooms left long ago, which
            # the homeserver refuses to describe; those stay not direct.
            if room_id not in self._state_loaded:
                self._state_loaded.add(room_id)
                try:
                    info = await self._load_state(room_id)
                except XMPPError as e:
                    if is_transient(e):
                        # Asked again next time, not taken for a group chat.
                        self._state_loaded.discard(room_id)
                        raise
                    log.info("Direct room %s is not readable: %s", room_id, e.text)
                    info = None
            if info is not None:
                partner = direct_partner(info)
            if partner == self._user_id:
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
        for room_id in self._listed_rooms():
            await self.classify(room_id)
        for room_id in list(self._user_of_room):
            await self.classify(room_id)  # dropped from m.direct
        return list(self._room_of_user)

    async def direct_room(self, user_id: str) -> str:
        """The direct room with `user_id`, or a new one if there is none:
        created on Matrix with them invited, and recorded in ``m.direct``."""
        room_id = self._room_of_user.get(user_id)
        if room_id is not None:
            return room_id
        async with self.creating:
            room_id = self._room_of_user.get(user_id)
            if room_id is None:
                room_id = await self._create_direct_room(user_id)
        return room_id

    async def _create_direct_room(self, user_id: str) -> str:
        matrix = self._matrix
        with matrix_errors(f"open a direct chat with {user_id}"):
            # Encrypted, as Matrix clients make them, when the other person
            # has a device that can read it.
            encrypted = self._can_encrypt is not None and await self._can_encrypt(
                user_id
            )
            room_id = await matrix.create_room(
                invite=[user_id],
                is_direct=True,
                preset="trusted_private_chat",
                initial_state=[ENCRYPTION_STATE] if encrypted else (),
            )
            await self._record_direct(user_id, room_id)
        self._user_of_room[room_id] = user_id
        self._room_of_user[user_id] = room_id
        return room_id

    async def _record_direct(self, user_id: str, room_id: str) -> None:
        """Adds `room_id` to ``m.direct`` under `user_id`, keeping every other
        entry (read, modify, write: the whole event is replaced)."""
        matrix = self._matrix
        content = await matrix.direct_chats()
        rooms = content.get(user_id)
        rooms = (
            [r for r in rooms if isinstance(r, str)] if isinstance(rooms, list) else []
        )
        if room_id not in rooms:
            rooms.append(room_id)
        content[user_id] = rooms
        await matrix.set_direct_chats(content)
        # Listed from now on, before sync brings the new m.direct back.
        self._listed = self._listed_rooms() | {room_id}

    async def accept_invite(self, room: SyncRoom) -> tuple[bool, str | None]:
        """An invitation to a 1:1 direct chat (see :func:`direct_inviter`):
        joins the room and records it in ``m.direct`` under the inviter, so
        that the room is their contact and never a group chat. Returns
        whether it was accepted (False: it is offered as a group chat) and
        the inviter to befriend (None if it turned out a group)."""
        room_id = room.room_id
        inviter = direct_inviter(room, self._user_id)
        info = self._matrix.rooms.get(room_id)
        if inviter is None or (info is not None and info.is_space):
            return False, None
        async with self.creating:
            try:
                await self._matrix.join(room_id)
            except (MatrixError, NetworkError) as e:
                log.warning(
                    "Could not accept the direct chat %s from %s: %s",
                    room_id,
                    inviter,
                    e,
                )
                return False, None
            if not await self._only_two(room_id, inviter):
                # Invite state may leave members out (Synapse shows only the
                # inviter): a group after all, which sync now shows as one.
                log.info(
                    "Joined %s, which %s invited to as a direct chat, but it has "
                    "other members: it is a group chat",
                    room_id,
                    inviter,
                )
                return True, None
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
                return True, None
            # The room cache still says "invite" until sync brings the join:
            # classify() reads the state then.
            self._user_of_room[room_id] = inviter
            self._room_of_user.setdefault(inviter, room_id)
        log.info("Accepted the direct chat %s that %s started", room_id, inviter)
        return True, inviter

    async def _only_two(self, room_id: str, inviter: str) -> bool:
        """True if the joined room `room_id` has no member (joined or
        invited) but the user and `inviter`, from its full state."""
        self._state_loaded.add(room_id)  # so classify need not load it again
        try:
            info = await self._load_state(room_id)
        except XMPPError as e:
            log.info("Could not read the members of %s: %s", room_id, e.text)
            return True  # the invite state said so; sync corrects it if wrong
        allowed = {inviter, self._user_id}
        return all(
            user_id in allowed
            for user_id, member in info.members.items()
            if member.membership in ("join", "invite")
        )
