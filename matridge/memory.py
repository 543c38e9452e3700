"""What a conversation remembers between events.

slidge makes a new MUC (or Contact) object each time one is looked up, so
nothing a room's conversation must remember from one Matrix event to the next
can live on that object: it lives here, one per room, held by the session.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from .matrix import Event
from .reactions import ReactionLog

# Reactions remembered per room, to undo them when they are redacted.
REMEMBERED_REACTIONS = 2000


@dataclass
class ChatMemory:
    # Recent messages as the decoder's lazy views, for quoting replies. A
    # view keeps its batch (or history) alive: the chat bounds the count.
    recent: OrderedDict[str, Event] = field(default_factory=OrderedDict)
    # Reaction event id → (target, sender, key), for redactions of reactions.
    reactions: ReactionLog = field(
        default_factory=lambda: ReactionLog(REMEMBERED_REACTIONS)
    )
    # The Matrix users shown as composing now.
    typing: set[str] = field(default_factory=set)
    # The event of the user's last read receipt sent from XMPP (its return
    # through sync is not shown again).
    own_read_receipt: str | None = None
    # Whether Matrix was last told the user is typing.
    typing_sent: bool = False
