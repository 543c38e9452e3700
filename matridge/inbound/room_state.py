"""Room state and membership from Matrix, shown in XMPP (part of the
inbound path: :mod:`.timeline` and :mod:`.batch` call in here).

What happens to a room's members (joins, leaves, kicks, bans, new display
names, power levels), to the room itself (avatar, upgrade to a successor
room) and to the user's own membership (invitations, being kicked or banned)
becomes MUC presence, affiliations, invitations and bookmarks here.
:class:`matridge.group.MUC` and :class:`matridge.session.Session` call in
with the decoded events; the engine has already applied each sync batch to
the room cache, so :class:`RoomInfo` snapshots are as new as the events.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slixmpp.exceptions import XMPPError

from ..group import apply_power, update_avatar
from ..host import SessionHost
from ..ids import room_jid, server_of
from ..matrix import (
    Event,
    MatrixError,
    NetworkError,
    SyncRoom,
)

if TYPE_CHECKING:
    from ..group import MUC

log = logging.getLogger(__name__)

# ---- events of a joined room ---------------------------------------------


async def on_state_event(muc: MUC, event: Event) -> None:
    """A live state event of a joined room other than name and topic."""
    kind = event.kind
    if kind == "member":
        await on_member(muc, event)
    elif kind == "power_levels":
        await on_power_levels(muc)
    elif kind == "avatar":
        await update_avatar(muc, muc.room_snapshot())
    elif kind == "tombstone":
        await on_tombstone(muc, event)


async def on_member(muc: MUC, event: Event) -> None:
    """Someone's membership changed: occupant presence for joins, leaves,
    kicks and bans (with the reason), a nick change for a new display name."""
    target, sender = event.state_key, event.sender
    if not target or not sender or target == muc.account.user_id:
        # The user's own leave comes in the sync's "leave" section.
        return
    membership, previous = event.membership, event.prev_membership
    if membership == "join":
        if previous == "join":
            await _rename(muc, target)
            return
        part = await muc.participant_for(target)
        apply_power(part, muc.room_snapshot().power_level(target))
        part.online()
        return
    if membership not in ("leave", "ban") or previous in ("leave", "ban"):
        return  # invitations, knocks, unbans: nobody enters or leaves
    gone = await muc.get_participant(occupant_id=target, create=False)
    if gone is None:
        return  # never shown here (the MUC was not filled yet)
    if membership == "ban":
        gone.ban(event.reason)
    elif sender != target and previous != "invite":
        gone.kick(event.reason)
    else:
        gone.leave()


async def _rename(muc: MUC, user_id: str) -> None:
    part = await muc.get_participant(occupant_id=user_id, create=False)
    if part is None:
        return
    name = muc.nick_for(user_id)
    if part.nickname != name:
        part.nickname = name


async def on_power_levels(muc: MUC) -> None:
    """New power levels: every shown member gets the affiliation and role
    their level now gives."""
    info = muc.room_snapshot()
    user = await muc.get_user_participant()
    apply_power(user, info.power_level(muc.account.user_id))
    for user_id, member in info.members.items():
        if member.membership != "join" or user_id == muc.account.user_id:
            continue
        part = await muc.get_participant(occupant_id=user_id, create=False)
        if part is not None:
            apply_power(part, info.power_level(user_id))


async def on_tombstone(muc: MUC, event: Event) -> None:
    """The room was upgraded: join its successor (which then appears as its
    own MUC) and tell the user in this one where the conversation went."""
    successor = event.replacement_room
    if not successor or not successor.startswith("!"):
        return
    session = muc.account
    via = [s for s in (server_of(event.sender or ""), server_of(successor)) if s]
    try:
        await session.matrix.join(successor, via)
    except (MatrixError, NetworkError) as e:
        log.warning("Could not join %s, successor of %s: %s", successor, muc.room_id, e)
        muc.get_system_participant().send_text(
            f"This room was replaced by a new one ({successor}), which could not "
            f"be joined: {e}"
        )
        return
    address = room_jid(session.xmpp.boundjid.bare, successor)
    why = f" ({event.body})" if event.body else ""
    muc.get_system_participant().send_text(
        f"This room was upgraded{why}. The conversation continues in "
        f"xmpp:{address}?join"
    )


# ---- the user's own membership -------------------------------------------


async def on_left_room(session: SessionHost, room: SyncRoom) -> None:
    """The user is no longer in a room: they left it from another client,
    or someone kicked or banned them. The MUC tells them so (as a kick or a
    ban of their own occupant, with the reason) and the room leaves their
    bookmarks."""
    if room.room_id not in session.state.announced:
        return
    own = _own_membership_event(session, room)
    session.state.forget_announced(room.room_id)
    try:
        muc = await session.bookmarks.by_legacy_id(room.room_id)
    except XMPPError as e:
        log.info("Room %s left but not shown: %s", room.room_id, e.text)
        return
    await muc.remove_from_bookmarks()
    if own is None or own.sender == session.user_id:
        await session.bookmarks.remove(muc, reason="You left this room on Matrix.")
        return
    by = own.sender or "someone"
    why = f": {own.reason}" if own.reason else ""
    user = await muc.get_user_participant()
    if own.membership == "ban":
        user.ban(f"Banned by {by}{why}")
    else:
        user.kick(f"Kicked by {by}{why}")
    await session.bookmarks.remove(muc, kick=False)


def _own_membership_event(session: SessionHost, room: SyncRoom) -> Event | None:
    """The newest event of `room` that changed the user's own membership."""
    for event in reversed(room.timeline):
        if event.kind == "member" and event.state_key == session.user_id:
            return event
    for event in reversed(room.state):
        if event.kind == "member" and event.state_key == session.user_id:
            return event
    return None


async def on_invited(session: SessionHost, room: SyncRoom) -> None:
    """An invitation to a room becomes an XMPP invitation (XEP-0249) from the
    gateway to the room's MUC address, naming the inviter and the room.
    Joining the MUC accepts it. Spaces are not offered."""
    room_id = room.room_id
    if room_id in session.state.invitations_sent:
        return
    info = session.room_info(room_id)
    if info is None or info.is_space or info.membership != "invite":
        return
    own = _own_membership_event(session, room)
    inviter = own.sender if own is not None else None
    who = info.member_display_name(inviter) if inviter else None
    text = f"{who or inviter or 'Someone'} invites you to the Matrix room "
    text += f"'{info.display_name}'"
    if inviter and who and who != inviter:
        text += f" ({inviter})"
    session.state.invitations_sent.add(room_id)
    # slidge holds it until the session is ready, so the client can join.
    session.send_gateway_invite(
        room_jid(session.xmpp.boundjid.bare, room_id),
        reason=text + ". Join the group chat to accept.",
    )
