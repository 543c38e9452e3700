"""One live timeline event, to the conversation that shows its room:
messages, reactions and redactions as the chat shows them, and in a group
chat the room's own changes (name, topic, members, power, avatar, upgrade).
"""

from __future__ import annotations

from ..chat import CHAT_KINDS, MatrixChat
from ..group import MUC
from ..matrix import Event
from . import room_state


async def show(chat: MatrixChat, event: Event) -> None:
    """Shows one live timeline event of `chat`'s room to the XMPP user."""
    if event.kind in CHAT_KINDS:
        await chat.on_matrix_event(event)
        return
    if not isinstance(chat, MUC):
        return  # a direct chat shows its messages only
    etype = event.type
    if etype == "m.room.name" or etype == "m.room.canonical_alias":
        chat.name = chat.room_snapshot().display_name
    elif etype == "m.room.topic":
        chat.subject = chat.room_snapshot().topic or ""
    elif event.is_state:
        await room_state.on_state_event(chat, event)
