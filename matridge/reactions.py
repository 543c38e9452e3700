"""Matrix reactions, kept in step with XEP-0444's "whole set" model.

On Matrix each reaction is an event (``m.reaction`` with one key) and its
removal the redaction of that event; on XMPP a reaction stanza carries the
sender's whole set of emojis for a message. So a removal on Matrix needs the
reaction's target and sender (:class:`ReactionLog` remembers them, since a
redacted event no longer says), and each change re-sends the sender's
remaining keys, read from the homeserver's relations (:func:`reactions_on`).
"""

from __future__ import annotations

import logging

from .matrix import MatrixClient, MatrixError, NetworkError
from .state import Reaction, ReactionLog

log = logging.getLogger(__name__)

# Relations pages read for one message: a message with more reactions than
# this is rare, and the keys of the pages read still go.
MAX_RELATION_PAGES = 5
RELATION_PAGE = 100
# An m.annotation is a reaction whether sent in the clear or encrypted.
REACTION_TYPES = ("m.reaction", "m.room.encrypted")


def normalise_key(key: str) -> str:
    # XMPP clients and slidge drop the emoji presentation selector that
    # Matrix clients often keep: keys compare without it.
    return key.replace("\ufe0f", "")


async def reactions_on(
    matrix: MatrixClient, room_id: str, target: str, sender: str
) -> dict[str, str]:
    """The reactions `sender` has on `target` now, from the homeserver:
    key → reaction event id. Raises MatrixError/NetworkError."""
    found: dict[str, str] = {}
    token: str | None = None
    for _ in range(MAX_RELATION_PAGES):
        page = await matrix.relations(
            room_id,
            target,
            "m.annotation",
            None,  # encrypted reactions too: their key is in the clear relation
            from_token=token,
            limit=RELATION_PAGE,
        )
        for event in page.chunk:
            if event.get("sender") != sender or event.get("type") not in REACTION_TYPES:
                continue
            content = event.get("content")
            rel = content.get("m.relates_to") if isinstance(content, dict) else None
            key = rel.get("key") if isinstance(rel, dict) else None
            event_id = event.get("event_id")
            if isinstance(key, str) and isinstance(event_id, str):
                found.setdefault(key, event_id)
        token = page.next_batch
        if token is None:
            break
    return found


async def current_reactions(
    matrix: MatrixClient,
    room_id: str,
    target: str,
    sender: str,
    remembered: ReactionLog,
) -> dict[str, str]:
    """`sender`'s reactions on `target` (key → event id). The homeserver's
    relations are read once per target and sender; from then on the room's
    log, which every live reaction and redaction updates, is complete and
    answers alone. If the homeserver cannot tell, what the log has."""
    if remembered.is_complete(target, sender):
        return remembered.keys(target, sender)
    try:
        found = await reactions_on(matrix, room_id, target, sender)
    except (MatrixError, NetworkError) as e:
        log.warning("Could not read the reactions to %s: %s", target, e)
        return remembered.keys(target, sender)
    for key, event_id in found.items():
        remembered.put(event_id, Reaction(target, sender, key))
    remembered.mark_complete(target, sender)
    return remembered.keys(target, sender)
