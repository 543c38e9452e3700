"""Typing notices and read receipts from Matrix, shown in a room's XMPP
conversation after the timeline they refer to (XEP-0085, XEP-0333)."""

from __future__ import annotations

from collections.abc import Sequence

from ..chat import MatrixChat
from ..matrix import Receipt


async def on_typing(chat: MatrixChat, user_ids: Sequence[str]) -> None:
    """The room's typing users now: who started composes, who stopped
    pauses (XEP-0085). The XMPP user's own typing is not echoed."""
    now = {u for u in user_ids if u != chat.account.user_id}
    before = chat.memory.typing
    for user_id in sorted(now - before):
        (await chat.sender_for(user_id)).composing()
    for user_id in sorted(before - now):
        (await chat.sender_for(user_id)).paused()
    before.clear()
    before.update(now)


async def on_receipts(chat: MatrixChat, receipts: Sequence[Receipt]) -> None:
    """Read receipts as XEP-0333 displayed markers: each user's latest
    ``m.read`` in the batch. The user's own (read on another Matrix
    client) marks the message read on their XMPP clients too."""
    latest: dict[str, str] = {}
    for receipt in receipts:
        mine = receipt.user_id == chat.account.user_id
        if receipt.receipt_type == "m.read" or (
            mine and receipt.receipt_type == "m.read.private"
        ):
            latest[receipt.user_id] = receipt.event_id
    for user_id, event_id in latest.items():
        if user_id != chat.account.user_id:
            (await chat.sender_for(user_id)).displayed(event_id)
        elif event_id != chat.memory.own_read_receipt:
            await show_own_read_marker(chat, event_id)


async def show_own_read_marker(chat: MatrixChat, event_id: str) -> None:
    """The user read up to `event_id` on another Matrix client."""
    entity = await chat.sender_for(chat.account.user_id)
    entity.displayed(event_id, carbon=True)
