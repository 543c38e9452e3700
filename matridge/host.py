"""What the modules above the entities (the inbound path, search) need of
an account's session: the :class:`~matridge.context.MatrixSession` that the
entities see, with the user's own Roster and Bookmarks. A Protocol, so that
none of them imports the session."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from .chat import MatrixChat
from .contact import Roster
from .context import MatrixSession
from .group import Bookmarks


class SessionHost(MatrixSession, Protocol):
    @property
    def contacts(self) -> Roster: ...

    @property
    def bookmarks(self) -> Bookmarks: ...

    async def chat_for(self, room_id: str) -> MatrixChat | None: ...

    def create_task(
        self, coro: Coroutine[Any, Any, Any], name: str | None = None
    ) -> asyncio.Task[Any]: ...
