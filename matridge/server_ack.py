"""What the XMPP server has confirmed taking, and only that, is recorded as
delivered.

A component's stanzas are not acknowledged one by one (Prosody offers no
stream management to components), and a stanza handed to slixmpp can still
be lost: in its send queue or the socket when the gateway dies, or unread
when the XMPP server stops. Group chats do not mind, since the gateway's
archive keeps what was shown and the user fetches it after a reconnect; a
direct chat's message exists on XMPP only once the user's server took it.

So a direct chat's delivery mark, and the sync token of any batch after it,
is saved only once the server has answered an iq sent after the message:
the server processes one stream in order, so its answer proves it processed
(delivered, stored offline or archived) everything sent before. A message
the server may not have taken is shown again after a restart rather than
lost. The marks and the token are saved together, in one write per round
trip, however many messages the round trip covers.

A token alone (batches of group chats only) is saved at most every
TOKEN_SAVE_SECONDS, and at logout: a batch handled but not yet saved comes
again after a crash and is shown once all the same (the archive and the
marks say what was shown), while a commit per batch was most of the cost of
relaying one message."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

TOKEN_SAVE_SECONDS = 2.0


class ServerAck:
    """One account's direct-chat marks and sync token, saved as the XMPP
    server confirms what was sent before them."""

    def __init__(
        self,
        confirm: Callable[[], Awaitable[None]],
        saved: Callable[[], Mapping[str, Any]],
        save: Callable[[dict[str, Any]], None],
    ) -> None:
        """`confirm` returns once the server answered an iq sent now, and
        raises if it does not; `saved` and `save` read and update the
        account's stored data."""
        self._confirm = confirm
        self._saved = saved
        self._save = save
        self._marks: dict[str, str] = {}  # room -> newest shown, unconfirmed
        self._token: str | None = None  # newest finished batch, unsaved
        self._rounds: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def shown(self, room_id: str, event_id: str) -> None:
        """A direct chat's message was handed to XMPP: its mark is saved once
        the server confirms it."""
        self._marks[room_id] = event_id
        self._start()

    def batch_done(self, token: str) -> None:
        """A sync batch is done: its token is saved with the round that
        confirms what was shown before it, or else soon."""
        self._token = token
        if self._marks or self._busy:
            self._start()
        elif token == self._saved().get("since"):
            self._token = None  # an idle long-poll: nothing new to save
        elif "since" not in self._saved():
            # The first token tells later batches from the initial sync.
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                TOKEN_SAVE_SECONDS, self.flush
            )

    def flush(self) -> None:
        """Saves the newest token now, unless it waits for a confirmation
        (logout, and the token's timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._token is not None and not self._marks and not self._busy:
            self._write({}, self._token)
            self._token = None

    def mark(self, room_id: str) -> str | None:
        """The newest event of a direct room that the server confirmed."""
        marks = self._saved().get("direct_marks")
        mark = marks.get(room_id) if isinstance(marks, dict) else None
        return mark if isinstance(mark, str) else None

    async def settled(self) -> None:
        """Returns once what was shown so far is confirmed and saved (or the
        confirmation failed)."""
        while self._busy and self._rounds is not None:
            await asyncio.wait({self._rounds})

    @property
    def _busy(self) -> bool:
        return self._rounds is not None and not self._rounds.done()

    def _start(self) -> None:
        if not self._busy:
            self._rounds = asyncio.get_running_loop().create_task(
                self._run(), name="XMPP server confirmations"
            )

    async def _run(self) -> None:
        # What is shown during a round trip waits for the next one.
        while self._marks or self._token is not None:
            marks, token = self._marks, self._token
            self._marks, self._token = {}, None
            try:
                await self._confirm()
            except Exception as e:
                # Nothing is saved: after a restart the batch comes again,
                # and these messages with it.
                log.warning("The XMPP server did not confirm what was sent: %s", e)
                self._marks = {**marks, **self._marks}
                if self._token is None:
                    self._token = token
                return
            self._write(marks, token)

    def _write(self, marks: dict[str, str], token: str | None) -> None:
        update: dict[str, Any] = {}
        if marks:
            saved = self._saved().get("direct_marks")
            update["direct_marks"] = {
                **(saved if isinstance(saved, dict) else {}),
                **marks,
            }
        if token is not None:
            update["since"] = token
        if update:
            self._save(update)
