"""The asyncio facade over the C engine ``matridge._core``.

This is the only module that imports ``_core``. Each call here enqueues a
request for the engine thread and awaits a future; the engine wakes the loop
through a file descriptor watched with ``loop.add_reader``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from . import _core

MatrixError = _core.MatrixError
NetworkError = _core.NetworkError
SyncBatch = _core.SyncBatch
SyncRoom = _core.Room
Event = _core.Event

log = logging.getLogger(__name__)

T = TypeVar("T")

# Lazy-loaded members: state carries only the members who speak in the batch.
SYNC_FILTER = json.dumps(
    {
        "room": {
            "state": {"lazy_load_members": True},
            "timeline": {"limit": 100, "lazy_load_members": True},
        },
        "presence": {"not_types": ["*"]},
    },
    separators=(",", ":"),
)

_attached_loop: asyncio.AbstractEventLoop | None = None


def bad_answer(what: str) -> MatrixError:
    """A MatrixError for a 2xx answer we cannot use, with the same attributes
    the engine sets on the errors it raises."""
    e = MatrixError(f"unusable answer from the homeserver: {what}")
    e.status, e.errcode, e.error = 200, None, what
    e.retry_after_ms, e.soft_logout = None, False
    return e


def _attach(loop: asyncio.AbstractEventLoop) -> None:
    """Makes `loop` resolve the engine's completions (once per loop)."""
    global _attached_loop
    if _attached_loop is loop:
        return
    fd = _core.wakeup_fd()
    if _attached_loop is not None and not _attached_loop.is_closed():
        _attached_loop.remove_reader(fd)
    loop.add_reader(fd, _core.process_completions)
    _attached_loop = loop


@dataclass(frozen=True)
class Login:
    user_id: str
    access_token: str
    device_id: str
    homeserver: str


class MatrixClient:
    """One Matrix account. All network work happens on the engine thread."""

    def __init__(
        self, homeserver: str, access_token: str | None = None, insecure: bool = False
    ) -> None:
        self._c = _core.Client(homeserver, access_token, insecure)

    @property
    def homeserver(self) -> str:
        return self._c.homeserver

    @property
    def syncing(self) -> bool:
        return self._c.syncing

    async def _call(self, start: Callable[..., int], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        _attach(loop)
        fut: asyncio.Future[Any] = loop.create_future()
        request_id = start(fut, *args)
        try:
            return await fut
        except asyncio.CancelledError:
            # Tell the engine, so the transfer stops instead of running on.
            self._c.cancel(request_id)
            raise

    async def versions(self) -> dict[str, Any]:
        res: dict[str, Any] = await self._call(self._c.versions)
        return res

    async def login_password(
        self, user: str, password: str, device_name: str | None = None
    ) -> Login:
        res = await self._call(self._c.login_password, user, password, device_name)
        try:
            login = Login(
                user_id=str(res["user_id"]),
                access_token=str(res["access_token"]),
                device_id=str(res["device_id"]),
                homeserver=self.homeserver,
            )
        except (KeyError, TypeError) as e:
            raise bad_answer(f"the homeserver's login answer lacks {e}") from e
        self._c.set_token(login.access_token)
        return login

    async def whoami(self) -> dict[str, Any]:
        res: dict[str, Any] = await self._call(self._c.whoami)
        return res

    async def logout(self) -> None:
        await self._call(self._c.logout)
        self._c.set_token(None)

    async def joined_rooms(self) -> list[str]:
        res = await self._call(self._c.joined_rooms)
        rooms = res.get("joined_rooms") if isinstance(res, dict) else None
        if not isinstance(rooms, list):
            raise bad_answer("the homeserver's joined_rooms answer has no list")
        return [r for r in rooms if isinstance(r, str)]

    async def room_state(self, room_id: str) -> list[dict[str, Any]]:
        res = await self._call(self._c.room_state, room_id)
        if not isinstance(res, list):
            raise bad_answer("the homeserver's room state answer is not a list")
        return [e for e in res if isinstance(e, dict)]

    async def room_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        res = await self._call(self._c.room_event, room_id, event_id)
        if not isinstance(res, dict):
            raise bad_answer("the homeserver's event answer is not an object")
        return res

    async def send_event(
        self, room_id: str, event_type: str, content: dict[str, Any], txn_id: str
    ) -> str:
        """Sends an event; the same txn_id never creates a second event."""
        res = await self._call(self._c.send_event, room_id, event_type, txn_id, content)
        event_id = res.get("event_id") if isinstance(res, dict) else None
        if not isinstance(event_id, str):
            raise bad_answer("the homeserver's send answer has no event_id")
        return event_id

    def start_sync(
        self,
        on_batch: Callable[[SyncBatch], None],
        on_error: Callable[[Exception, bool], None],
        since: str | None,
        timeout_ms: int,
        sync_filter: str = SYNC_FILTER,
    ) -> None:
        """Starts the engine's /sync loop. `on_batch` gets each batch on the
        loop; call :meth:`sync_ack` once it is processed, or the engine stops
        fetching after ``MAX_UNDELIVERED`` batches. `on_error` gets every
        failure and whether it ended the loop (a revoked token)."""
        _attach(asyncio.get_running_loop())
        self._c.start_sync(on_batch, on_error, since, sync_filter, timeout_ms)

    def stop_sync(self) -> None:
        self._c.stop_sync()

    def sync_ack(self) -> None:
        self._c.sync_ack()
