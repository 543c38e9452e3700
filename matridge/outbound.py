"""XMPP to Matrix: every event the gateway sends into a room goes through
:class:`Outbound`, redactions included.

- Transaction ids are derived from the XMPP message being handled, so the
  same XMPP message sent twice (a client's retry, a restart) never makes two
  Matrix events; the events one message makes (its files, its reactions)
  each get their own.
- One send at a time per room, so retries through an outage keep the
  messages in the order they came.
- Network failures and homeserver 5xx are retried with backoff for up to
  ``SEND_RETRY_SECONDS``, with the same transaction id.
- What was sent is remembered as seen, so its return through sync is not
  shown again.
- Into an end-to-end encrypted room, every event but a redaction is
  encrypted first (by ``encrypt``: matridge/encryption.py), once, inside
  the room's turn; its retries resend the same ciphertext.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from slixmpp.exceptions import XMPPError

from . import config
from .errors import matrix_errors
from .matrix import MatrixClient, MatrixError, NetworkError
from .state import RecentIds

log = logging.getLogger(__name__)

# The id of the XMPP message being handled, set by Gateway.event() so that
# sends can derive their Matrix transaction id from it.
xmpp_message_id: ContextVar[str | None] = ContextVar("xmpp_message_id", default=None)

NO_ENCRYPTION = (
    "This Matrix room is end-to-end encrypted, and encryption is off for this "
    "session (the gateway said why at login), so nothing was sent there in clear "
    "text. Log in again to retry."
)

# Encrypts an event's content for a room (room id, event type, content).
Encrypt = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


def fresh_txn_id() -> str:
    """A transaction id of its own, for an event that is not the XMPP
    message itself (a reaction, a redaction)."""
    return "m" + uuid.uuid4().hex


class Outbound:
    """The sends of one account's session."""

    def __init__(
        self,
        matrix: MatrixClient,
        user_jid: str,
        seen: RecentIds,
        encrypt: Encrypt | None = None,
    ) -> None:
        self._matrix = matrix
        self._user_jid = user_jid
        self._seen = seen
        self._encrypt = encrypt
        # Rooms the homeserver said are (not) encrypted, this login.
        self._encrypted: set[str] = set()
        self._clear: set[str] = set()
        # A lock lives while a send holds or awaits it: idle rooms cost nothing.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def txn_id(self, part: int = 0) -> str:
        """A transaction id derived from the XMPP message id; `part` tells
        apart the events one XMPP message makes (its files)."""
        msg_id = xmpp_message_id.get()
        if not msg_id:
            return fresh_txn_id()
        digest = hashlib.sha256(f"{self._user_jid}\0{msg_id}".encode()).hexdigest()
        return "x" + digest[:40] + (f".{part}" if part else "")

    async def send(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        txn_id: str | None = None,
    ) -> str:
        """Sends an event; returns its event id. `txn_id` defaults to the
        one derived from the XMPP message being handled."""
        txn = txn_id or self.txn_id()
        sent: list[tuple[str, dict[str, Any]]] = []

        async def send_once() -> str:
            if not sent:  # encrypted once: retries resend the same event
                sent.append(await self._as_sent(room_id, event_type, content))
            kind, body = sent[0]
            return await self._matrix.send_event(room_id, kind, body, txn)

        return await self._in_order(room_id, "send the message", send_once)

    async def _as_sent(
        self, room_id: str, event_type: str, content: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The event as it goes out: encrypted if the room is."""
        if not await self.is_encrypted(room_id):
            return event_type, content
        if self._encrypt is None:
            raise XMPPError("not-acceptable", NO_ENCRYPTION)
        return "m.room.encrypted", await self._encrypt(room_id, event_type, content)

    async def refuse_if_clear_only(self, room_id: str) -> None:
        """Refuses, before any work, what the user sends into an encrypted
        room while this session has no encryption (never sent in clear)."""
        if self._encrypt is None and await self.is_encrypted(room_id):
            raise XMPPError("not-acceptable", NO_ENCRYPTION)

    async def is_encrypted(self, room_id: str) -> bool:
        """Whether what goes into the room must be encrypted. Encryption
        is never turned off in a room, so the room cache's "encrypted" is
        final; its "not encrypted" may only mean that the state was not
        loaded (a room that first came in an incremental sync, or whose
        loaded state lost a race with a batch), so it is checked once per
        room and login with the homeserver."""
        info = self._matrix.rooms.get(room_id)
        if (info is not None and info.encrypted) or room_id in self._encrypted:
            return True
        if room_id in self._clear:
            return False
        try:
            await self._matrix.state_event(room_id, "m.room.encryption")
        except MatrixError as e:
            if e.status != 404:
                raise
            self._clear.add(room_id)
            return False
        self._encrypted.add(room_id)
        return True

    async def redact(self, room_id: str, event_id: str, reason: str | None) -> str:
        """Redacts an event of `room_id`; returns the redaction's event id."""
        txn = fresh_txn_id()
        return await self._in_order(
            room_id,
            "remove the message",
            lambda: self._matrix.redact(room_id, event_id, txn, reason),
        )

    async def _in_order(
        self, room_id: str, what: str, call: Callable[[], Awaitable[str]]
    ) -> str:
        lock = self._locks.get(room_id)
        if lock is None:
            lock = self._locks[room_id] = asyncio.Lock()
        with matrix_errors(what):
            async with lock:
                event_id = await self._with_retries(room_id, call)
        self._seen.add(event_id)  # so its return through sync is skipped
        return event_id

    async def _with_retries(
        self, room_id: str, call: Callable[[], Awaitable[str]]
    ) -> str:
        """Retries through outages (network errors, 5xx) with backoff for up
        to SEND_RETRY_SECONDS. The transaction id stays the same, so a send
        that did reach the homeserver is not repeated."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.SEND_RETRY_SECONDS
        delay = 0.5
        while True:
            try:
                return await call()
            except (MatrixError, NetworkError) as e:
                transient = isinstance(e, NetworkError) or e.status >= 500
                if not transient or loop.time() + delay > deadline:
                    raise
                log.info("Send to %s failed (%s); retrying in %.1fs", room_id, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
