"""Room management from XMPP, done on Matrix.

The subject becomes the topic; invitations, kicks, bans and affiliation
changes become Matrix invites, kicks, bans and power levels; leaving a MUC
leaves the room; a new group is a new Matrix room. The user's presence and
avatar go to their Matrix profile. The MUC, Participant and Session classes
call in here from slidge's ``on_*`` handlers; the outcome comes back through
sync (room_state shows it), so nothing is shown twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from slidge.util.types import MucAffiliation
from slixmpp.exceptions import XMPPError

from .errors import matrix_errors
from .ids import jid_local_to_matrix_id
from .matrix import MatrixError, NetworkError

if TYPE_CHECKING:
    from slidge.contact import LegacyContact

    from .group import MUC, Participant
    from .session import Session

log = logging.getLogger(__name__)

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


# ---- MUC -------------------------------------------------------------------


async def set_subject(muc: MUC, subject: str) -> None:
    """The MUC subject is the room's topic. The new topic comes back through
    sync and becomes the subject then."""
    with matrix_errors("change the topic"):
        await muc.session.matrix.send_state(
            muc.room_id, "m.room.topic", {"topic": subject}
        )


async def leave(muc: MUC) -> None:
    """The user left the MUC for good (slidge removes it from the bookmarks):
    leave the Matrix room. Forgotten first, so the leave that sync brings
    back is not shown as a second removal."""
    session = muc.session
    session.state.forget_announced(muc.room_id)
    with matrix_errors("leave the room"):
        await session.matrix.leave(muc.room_id)


# ---- occupants -------------------------------------------------------------


async def kick(part: Participant, reason: str | None) -> None:
    with matrix_errors("kick this member"):
        await part.muc.session.matrix.kick(
            part.muc.room_id, participant_user_id(part), reason
        )


async def set_affiliation(
    part: Participant, affiliation: MucAffiliation, reason: str | None
) -> None:
    """outcast bans; none kicks a member (or unbans a banned user); member,
    admin and owner invite a user who is not in the room, else set their
    power level to 0, 50 or 100."""
    muc = part.muc
    matrix = muc.session.matrix
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


# ---- session ---------------------------------------------------------------


async def create_group(
    session: Session, name: str, contacts: Iterable[LegacyContact]
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


# XMPP shows → Matrix presence. Matrix has no "away" beyond unavailable.
_PRESENCE: dict[str, Literal["online", "unavailable"]] = {
    "available": "online",
    "chat": "online",
    "away": "unavailable",
    "xa": "unavailable",
    "dnd": "unavailable",
}


async def set_presence(
    session: Session, show: str, status: str, all_gone: bool
) -> None:
    """The user's XMPP presence (merged over their clients) as their Matrix
    presence and status message; offline once no client is online."""
    presence: Literal["online", "unavailable", "offline"]
    if all_gone or show == "unavailable":
        presence = "offline"
    else:
        presence = _PRESENCE.get(show, "online")
    try:
        await session.matrix.set_presence(presence, status or None)
    except (MatrixError, NetworkError) as e:
        log.warning("Could not set the Matrix presence of %s: %s", session.user_id, e)


async def set_avatar(session: Session, data: bytes | None, mime: str | None) -> None:
    """The user's XMPP avatar becomes their Matrix avatar. None (no XMPP
    avatar) removes the Matrix avatar only if this gateway had set it: an
    avatar chosen on Matrix is not wiped by an XMPP account without one."""
    matrix = session.matrix
    ours = session.user.legacy_module_data.get("avatar_url")
    with matrix_errors("set your avatar"):
        if data is None:
            if ours and (await matrix.get_profile(session.user_id)).avatar_url == ours:
                await matrix.set_avatar_url("")
            session.legacy_module_data_update({"avatar_url": None})
            return
        url = await matrix.upload(data, mime or "image/png", "avatar")
        await matrix.set_avatar_url(url)
    session.legacy_module_data_update({"avatar_url": url})


def apply_default_preferences(session: Session) -> None:
    """Gives the slidge preferences an in-band registration left unset
    their form defaults (slidge's preferences command fails without them,
    and presence and avatar sync are on by default)."""
    prefs = session.user.preferences
    missing = {
        field.var: field.value == "true" if field.type == "boolean" else field.value
        for field in session.xmpp.PREFERENCES
        if field.var not in prefs
    }
    if missing:
        prefs.update(missing)
        session.xmpp.store.users.update(session.user)
