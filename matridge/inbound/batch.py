"""One sync batch, routed to the XMPP conversations of its rooms.

Each event is relayed on its own, so a failure costs that event only:

- a transient failure (the network, a homeserver 5xx or timeout, the XMPP
  side not ready) stops that room where it failed; the other rooms go on,
  this batch and the next, while the stopped room is retried from where it
  stopped, in order (later events of that room wait behind it), with
  backoff, for at most ``RELAY_RETRY_SECONDS``;
- a permanent failure shows a placeholder in the conversation naming the
  sender (or, where the room itself cannot be shown, a message from the
  gateway), and is logged.

An event id is remembered as seen only once it was shown (or its
placeholder was), so a failed relay is retried rather than skipped; a
batch's token is saved only once all of it is done, so a crash re-delivers
what was still waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import config
from ..chat import CHAT_KINDS
from ..errors import is_transient
from ..group import MUC
from ..matrix import Event, SyncBatch, SyncRoom
from . import ephemeral, messages, room_state

if TYPE_CHECKING:
    from ..chat import MatrixChat
    from ..host import SessionHost

log = logging.getLogger(__name__)

# The first retry of a stopped room waits this long; each next one twice as
# long, up to the cap.
_FIRST_DELAY = 0.5
_MAX_DELAY = 15.0


class RoomStopped(Exception):
    """A room's relay stopped at a transient failure; it resumes later."""


@dataclass
class _RoomWork:
    """What is left to do for one joined room of a batch."""

    room: SyncRoom
    events: list[Event]
    seq: int  # the batch's number
    since: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    next: int = 0  # index of the first event not shown yet
    gap_filled: bool = False
    ephemeral_done: bool = False
    error: BaseException | None = field(default=None, repr=False)


class Router:
    """Routes the sync batches of one session, in order. A room stopped at a
    transient failure keeps a backlog of its work, which later batches'
    events for that room join (so each room stays in order) while the other
    rooms go on. A batch's token is handed to `save` only once all its work,
    and all earlier batches', is done."""

    def __init__(self, session: SessionHost, save: Callable[[str], None]) -> None:
        self._session = session
        self._save = save
        self._seq = 0
        # Batch number -> its token, and how much of it is still to do.
        self._tokens: dict[int, str] = {}
        self._open: dict[int, int] = {}
        self._backlog: dict[str, deque[_RoomWork]] = {}
        self._retrying: asyncio.Task[None] | None = None

    async def route(self, batch: SyncBatch) -> None:
        """Shows one batch to the XMPP user: every event is shown, replaced
        by a placeholder, or queued behind its room's earlier failure."""
        session = self._session
        self._seq += 1
        seq = self._seq
        self._tokens[seq] = batch.next_batch
        self._open[seq] = 0
        initial = "since" not in session.user.legacy_module_data
        await _guard(
            session,
            "account data",
            session.contacts.on_account_data(batch.account_data),
        )
        for room in batch.rooms:
            if room.membership == "join":
                if initial:
                    _remember_initial(session, room)
                    continue
                events = session.readable(room.room_id, room.timeline)
                work = _RoomWork(room, events, seq)
                queue = self._backlog.get(room.room_id)
                if queue is not None:
                    queue.append(work)  # behind the room's earlier failure
                    self._open[seq] += 1
                elif not await _joined(session, work):
                    self._backlog[room.room_id] = deque([work])
                    self._open[seq] += 1
            elif room.membership == "leave":
                await _guard(session, f"leaving {room.room_id}", _left(session, room))
            elif room.membership == "invite":
                await _guard(
                    session, f"invitation to {room.room_id}", _invited(session, room)
                )
        await _guard(session, "presence", session.contacts.on_presence(batch.presence))
        if self._backlog and (self._retrying is None or self._retrying.done()):
            self._retrying = session.create_task(
                self._retry(), name=f"relay retries of {session.user_id}"
            )
        self._flush()

    def close(self) -> None:
        """Stops retrying (logout); what was not shown comes again from the
        saved token at the next login."""
        if self._retrying is not None:
            self._retrying.cancel()
            self._retrying = None

    def _flush(self) -> None:
        """Saves the token of the newest batch that is done, with all before."""
        token = None
        while self._tokens:
            oldest = next(iter(self._tokens))  # batches are added in order
            if self._open[oldest] > 0:
                break
            token = self._tokens.pop(oldest)
            del self._open[oldest]
        if token is not None:
            self._save(token)

    async def _retry(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _FIRST_DELAY
        while self._backlog:
            await asyncio.sleep(delay)
            progressed = False
            for room_id in list(self._backlog):
                queue = self._backlog[room_id]
                while queue:
                    work = queue[0]
                    if await _joined(self._session, work):
                        progressed = True
                    elif loop.time() - work.since < config.RELAY_RETRY_SECONDS:
                        break
                    else:
                        _give_up(self._session, work)
                    queue.popleft()
                    self._open[work.seq] -= 1
                if not queue:
                    del self._backlog[room_id]
            self._flush()
            delay = _FIRST_DELAY if progressed else min(delay * 2, _MAX_DELAY)


def _remember_initial(session: SessionHost, room: SyncRoom) -> None:
    # The first sync's timelines are history, not news: remember the ids
    # so they are never replayed as live messages.
    for ev in room.timeline:
        if ev.event_id:
            session.state.seen.add(ev.event_id)


async def _guard(session: SessionHost, what: str, step: Awaitable[None]) -> None:
    """Runs one step of the batch that is not an event of a room; a failure
    is logged and costs only that step."""
    try:
        await step
    except Exception:
        session.log.exception("Could not process %s of a sync batch", what)


def _give_up(session: SessionHost, work: _RoomWork) -> None:
    """A room still failing after the retry bound: the user is told which
    messages could not be shown, and the batch moves on."""
    left = _unshown(session, work)
    senders = sorted({e.sender for e in left if e.sender})
    work.next = len(work.events)
    log.warning(
        "Gave up relaying %d events of %s after %ss: %s",
        len(left),
        work.room.room_id,
        config.RELAY_RETRY_SECONDS,
        work.error,
    )
    if left:
        who = ", ".join(senders) or "someone"
        session.send_gateway_message(
            f"{len(left)} message(s) from {who} in the Matrix room "
            f"{work.room.room_id} could not be shown: {_reason(work.error)}. "
            "They are in the room's history on Matrix."
        )
    for e in left:
        session.state.seen.add(e.event_id or "")


def _reason(error: BaseException | None) -> str:
    text = getattr(error, "text", None) or str(error or "")
    return text or type(error).__name__


async def _joined(session: SessionHost, work: _RoomWork) -> bool:
    """Relays what is left of one joined room; False if it stopped at a
    transient failure (it resumes from there later)."""
    room = work.room
    if room.state or any(e.is_state for e in work.events):
        session.state.state_changed(room.room_id)
    try:
        chat = await _chat(session, work)
        if chat is None and work.events[work.next :]:
            # Not shown (a space, say), or shown as the gateway's message.
            _skip_rest(session, work)
            return True
        if chat is not None and not work.gap_filled:
            await _fill_gap(session, chat, room)
            work.gap_filled = True
            # A batch that comes again after a crash: what was shown then
            # is not shown twice.
            for ev in work.events[: chat.already_shown(work.events)]:
                session.state.seen.add(ev.event_id or "")
        while work.next < len(work.events):
            ev = work.events[work.next]
            if chat is not None and await _relay(session, chat, room, ev):
                chat.delivered(ev.event_id or "")
            work.next += 1
        if not work.ephemeral_done:
            await _ephemeral(session, room, chat)
            work.ephemeral_done = True
        return True
    except RoomStopped as stop:
        work.error = stop.__cause__
        return False


async def _chat(session: SessionHost, work: _RoomWork) -> MatrixChat | None:
    """The conversation of the room, if anything in it needs one."""
    room = work.room
    needs_chat = (
        bool(_unshown(session, work))
        or (room.limited and room.prev_batch and not work.gap_filled)
        or (not work.ephemeral_done and (room.typing is not None or room.receipts))
    )
    if not needs_chat:
        return None
    try:
        return await session.chat_for(room.room_id)
    except Exception as e:
        if is_transient(e):
            raise RoomStopped from e
        # The room cannot be shown at all: say so for each sender.
        _not_shown(session, work, e)
        return None


def _unshown(session: SessionHost, work: _RoomWork) -> list[Event]:
    """The room's events still to show: not shown yet, and usable."""
    seen = session.state.seen
    return [
        e
        for e in work.events[work.next :]
        if e.event_id and e.event_id not in seen and e.invalid is None
    ]


def _not_shown(session: SessionHost, work: _RoomWork, error: BaseException) -> None:
    left = _unshown(session, work)
    log.warning("Room %s cannot be shown: %s", work.room.room_id, error)
    for ev in left:
        session.send_gateway_message(
            f"A message from {ev.sender or 'someone'} in the Matrix room "
            f"{work.room.room_id} could not be shown: {_reason(error)}."
        )
        session.state.seen.add(ev.event_id or "")
    work.next = len(work.events)


def _skip_rest(session: SessionHost, work: _RoomWork) -> None:
    for ev in work.events[work.next :]:
        if ev.event_id:
            session.state.seen.add(ev.event_id)
    work.next = len(work.events)
    work.gap_filled = work.ephemeral_done = True


async def _fill_gap(session: SessionHost, chat: MatrixChat, room: SyncRoom) -> None:
    """Events were left out before this timeline: fetch them first."""
    if not (room.limited and room.prev_batch):
        return
    try:
        await messages.fill_gap(chat, room.prev_batch)
    except Exception as e:
        if is_transient(e):
            raise RoomStopped from e
        session.log.warning("Could not fill the gap in %s: %s", room.room_id, e)
        session.send_gateway_message(
            f"Some messages of a Matrix room could not be fetched ({_reason(e)}); "
            "they are in its history on Matrix."
        )


async def _relay(
    session: SessionHost, chat: MatrixChat, room: SyncRoom, ev: Event
) -> bool:
    """One timeline event; remembered as seen once it was shown. False if
    it was not shown now (seen already, or unusable)."""
    if ev.event_id is None or ev.event_id in session.state.seen:
        return False
    if ev.invalid is not None:
        session.log.warning(
            "Skipping unusable event %s in %s: %s",
            ev.event_id,
            room.room_id,
            ev.invalid,
        )
        session.state.seen.add(ev.event_id)
        return False
    try:
        await _show(chat, ev)
    except Exception as e:
        if is_transient(e):
            session.log.info(
                "Relaying %s in %s failed for now (%s); retrying",
                ev.event_id,
                room.room_id,
                e,
            )
            raise RoomStopped from e
        session.log.exception("Could not relay %s in %s", ev.event_id, room.room_id)
        await _placeholder(session, chat, ev, e)
    session.state.seen.add(ev.event_id)
    return True


async def _placeholder(
    session: SessionHost, chat: MatrixChat, ev: Event, error: BaseException
) -> None:
    """A message that failed for good: its sender, and that it could not be
    shown, instead of silence."""
    text = f"[A message from {ev.sender or 'someone'} could not be shown: "
    text += f"{_reason(error)}]"
    try:
        entity = await chat.sender_for(ev.sender) if ev.sender else None
        if entity is None:
            raise LookupError("no sender")
        entity.send_text(text, legacy_msg_id=ev.event_id)
    except Exception:
        session.log.exception("Could not show the placeholder of %s", ev.event_id)
        session.send_gateway_message(text)


async def _ephemeral(
    session: SessionHost, room: SyncRoom, chat: MatrixChat | None
) -> None:
    """Typing notices and read receipts, after the timeline they refer to.
    They are not worth a retry: a failure is logged."""
    if chat is None or (room.typing is None and not room.receipts):
        return
    try:
        if room.typing is not None:
            await ephemeral.on_typing(chat, room.typing)
        if room.receipts:
            await ephemeral.on_receipts(chat, room.receipts)
    except Exception:
        session.log.exception("Typing or receipts of %s failed", room.room_id)


async def _left(session: SessionHost, room: SyncRoom) -> None:
    await session.directs.classify(room.room_id)  # a direct chat no more
    await room_state.on_left_room(session, room)
    # Its recent events hold their sync batches in memory: let them go.
    session.state.forget_room(room.room_id)


async def _invited(session: SessionHost, room: SyncRoom) -> None:
    # A 1:1 direct chat becomes a contact (unless the admin wants those
    # offered too), any other a MUC invitation.
    accepted = (
        not config.DIRECT_INVITES_AS_GROUPS
        and await session.contacts.accept_direct_invite(room)
    )
    if not accepted:
        await room_state.on_invited(session, room)


async def _show(chat: MatrixChat, event: Event) -> None:
    """Shows one live timeline event of `chat`'s room to the XMPP user."""
    if event.kind in CHAT_KINDS:
        await messages.on_event(chat, event)
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
