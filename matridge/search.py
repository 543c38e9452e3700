"""Finding and joining: what the user types into slidge's search form (XEP-0055,
the ``find`` command, jabber:iq:gateway) or the ``join`` command.

A room alias (``#room:example.org``) or room id (``!abc:example.org``, or
``!abc`` for room version 12) joins the Matrix room and answers with its
group chat's JID. A user id (``@alice:example.org``) is for direct chats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slidge.command import FormField, SearchResult
from slixmpp.exceptions import XMPPError

from .contact import Contact
from .errors import join_refused, unreachable, user_lookup_refused
from .ids import is_user_id, localpart
from .matrix import MatrixError, NetworkError

if TYPE_CHECKING:
    from .group import MUC
    from .host import SessionHost

SEARCH_TITLE = "Find a Matrix room or person"
SEARCH_INSTRUCTIONS = (
    "Enter a room alias (#room:example.org) or room id (!abc…) to join the room "
    "and get its group chat address, or a user id (@alice:example.org) to get "
    "their contact address for a direct chat."
)
SEARCH_FIELDS = [
    FormField(
        var="address",
        label="Room alias, room id or user id (#room:example.org, !abc…, @alice:…)",
        required=True,
    )
]

_MATRIX_TO = "https://matrix.to/#/"
ROOM_RESULT_FIELDS = [
    FormField("name", "Name"),
    FormField("alias", "Alias"),
    FormField("jid", "Group chat", type="jid-single"),
]


def _address_help(text: str) -> str:
    return (
        f"'{text}' is not a Matrix address. Give a room alias (#room:example.org), "
        "a room id (!abc…) or a user id (@alice:example.org)."
    )


def normalise_address(raw: str) -> str:
    """The Matrix id or alias in what the user typed (also a matrix.to link),
    or an XMPP error that says what an address looks like."""
    text = raw.strip()
    if text.startswith(_MATRIX_TO):
        text = text.removeprefix(_MATRIX_TO).split("?", 1)[0].split("/", 1)[0]
    if len(text) < 2 or text[0] not in "#!@" or any(c.isspace() for c in text):
        raise XMPPError("bad-request", _address_help(raw.strip()))
    if text[0] in "#@" and (":" not in text or text.endswith(":")):
        kind = "Room aliases" if text[0] == "#" else "User ids"
        example = "#room:example.org" if text[0] == "#" else "@alice:example.org"
        raise XMPPError(
            "bad-request",
            f"'{text}' has no server part. {kind} look like {example}.",
        )
    return text


async def on_search(session: SessionHost, form_values: dict[str, str]) -> SearchResult:
    """slidge's search: joins the room or opens the direct chat it names."""
    address = normalise_address(str(form_values.get("address") or ""))
    if address.startswith("@"):
        return await find_user(session, address)
    muc = await join_room(session, address)
    return room_result(muc, "The Matrix room, joined")


def room_result(muc: MUC, description: str) -> SearchResult:
    info = muc.session.room_info(muc.room_id)
    return SearchResult(
        description=description,
        fields=ROOM_RESULT_FIELDS,
        items=[
            {
                "name": muc.name or muc.room_id,
                "alias": (info.canonical_alias if info else None) or "",
                "jid": muc.jid.bare,
            }
        ],
        jids_are_mucs=True,
    )


async def join_room(session: SessionHost, address: str) -> MUC:
    """Joins the room a ``#alias`` or ``!id`` names on Matrix and shows it as a
    group chat (added to the bookmarks); errors say what the user can do."""
    address = normalise_address(address)
    if address[0] not in "#!":
        raise XMPPError("bad-request", _address_help(address))
    matrix = session.matrix
    via: list[str] = []
    target = address
    try:
        if address.startswith("#"):
            alias = await matrix.resolve_alias(address)
            target, via = alias.room_id, alias.servers
        elif ":" in address:
            via = [address.split(":", 1)[1]]  # room versions < 12 name a server
        room_id = await matrix.join(target, via)
    except MatrixError as e:
        raise join_refused(address, e) from e
    except NetworkError as e:
        raise unreachable(f"join {address}", e) from e
    muc = await session.bookmarks.show(room_id)
    if muc is None:
        raise XMPPError(
            "item-not-found",
            f"You joined {address} on Matrix, but it is a space, not a room you "
            "can chat in; its rooms can be joined by their own aliases.",
        )
    return muc


# ---- a Matrix user id opens a direct chat ------------------------------------

USER_RESULT_FIELDS = [
    FormField("name", "Name"),
    FormField("user_id", "Matrix user id"),
    FormField("jid", "Contact", type="jid-single"),
]


async def contact_for_user_id(session: SessionHost, user_id: str) -> Contact:
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
    except (MatrixError, NetworkError) as e:
        raise user_lookup_refused(user_id, e) from e
    contact = await session.contacts.by_legacy_id(user_id)
    await contact.befriend()
    return contact


async def find_user(session: SessionHost, user_id: str) -> SearchResult:
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
