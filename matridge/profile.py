"""The XMPP user's own presence, avatar and preferences, on Matrix."""

from __future__ import annotations

import logging
from typing import Literal

from .context import MatrixSession
from .errors import matrix_errors
from .matrix import MatrixError, NetworkError

log = logging.getLogger(__name__)


# XMPP shows → Matrix presence. Matrix has no "away" beyond unavailable.
_PRESENCE: dict[str, Literal["online", "unavailable"]] = {
    "available": "online",
    "chat": "online",
    "away": "unavailable",
    "xa": "unavailable",
    "dnd": "unavailable",
}


async def set_presence(
    session: MatrixSession, show: str, status: str, all_gone: bool
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


async def set_avatar(
    session: MatrixSession, data: bytes | None, mime: str | None
) -> None:
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


def apply_default_preferences(session: MatrixSession) -> None:
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
