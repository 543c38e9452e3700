"""Matrix ids and the XMPP addresses that stand for them.

A Matrix room or user id becomes the local part of a JID at the gateway's
domain; these functions go both ways and tell the kinds of id apart.
"""

from __future__ import annotations

from slixmpp import JID
from slixmpp.exceptions import XMPPError
from slixmpp.jid import unescape_node

# The Matrix spec's limit on a user id's length.
MAX_USER_ID_LENGTH = 255

# XEP-0106 escapes for what a JID local part may not hold.
_ESCAPES = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
    "\\": "\\5c",
}


def matrix_id_to_jid_local(matrix_id: str) -> str:
    """Maps a Matrix id to a JID local part that survives case folding.

    Matrix room ids are case-sensitive but XMPP servers and clients may
    lower-case JIDs, so each upper-case letter becomes ``^`` + its lower case
    (and ``^`` itself ``^^``); the rest is escaped as in XEP-0106.
    """
    out = []
    for ch in matrix_id:
        if ch == "^":
            out.append("^^")
        elif "A" <= ch <= "Z":
            out.append("^" + ch.lower())
        else:
            out.append(_ESCAPES.get(ch, ch))
    return "".join(out)


def jid_local_to_matrix_id(local: str) -> str:
    """The inverse of :func:`matrix_id_to_jid_local`."""
    text = unescape_node(local)
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "^" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append("^" if nxt == "^" else nxt.upper())
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def room_jid(gateway: str, room_id: str) -> JID:
    """The MUC address of a Matrix room at the gateway's domain."""
    return JID(f"{matrix_id_to_jid_local(room_id)}@{gateway}")


def localpart(user_id: str) -> str:
    """``@alice:example.org`` → ``alice`` (what to show when there is no name)."""
    return user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id


def server_of(matrix_id: str) -> str | None:
    """The server part of a user or (pre-v12) room id, to join via."""
    _, sep, server = matrix_id.partition(":")
    return server if sep and server else None


def is_user_id(text: str) -> bool:
    """True for something shaped like a Matrix user id: ``@localpart:server``."""
    local, sep, server = text[1:].partition(":")
    return (
        text.startswith("@")
        and bool(sep and local and server)
        and len(text.encode()) <= MAX_USER_ID_LENGTH
        and not any(c.isspace() for c in text)
    )


def is_event_id(legacy_id: str | None) -> bool:
    """Whether an id slidge maps to is a Matrix event id (``$…``)."""
    return bool(legacy_id) and str(legacy_id).startswith("$")


def require_event_id(legacy_id: str) -> str:
    """`legacy_id` if it names a Matrix event; else the XMPP error that the
    user acted on something that is not a Matrix message."""
    if not is_event_id(legacy_id):
        raise XMPPError("item-not-found", "This is not a Matrix message.")
    return legacy_id
