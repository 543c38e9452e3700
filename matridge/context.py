"""What the parts below :mod:`matridge.session` need of an account's
session, as a Protocol: the entities, media and room handling take it, so
no module needs to import the session itself and imports go one way."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol, cast

from slidge.contact import LegacyRoster
from slidge.db.meta import JSONSerializable
from slidge.db.models import GatewayUser
from slidge.group import LegacyBookmarks

from .directs import Directs
from .encryption import Encryption
from .matrix import Event, MatrixClient, RoomInfo, SyncBatch
from .outbound import Outbound
from .server_ack import ServerAck
from .state import AccountState


class MatrixSession(Protocol):
    """One XMPP user's Matrix session, as its parts see it."""

    matrix: MatrixClient
    outbound: Outbound
    directs: Directs
    state: AccountState
    server_ack: ServerAck
    encryption: Encryption | None
    user_id: str
    log: logging.Logger
    xmpp: Any  # slidge's gateway component

    @property
    def user(self) -> GatewayUser: ...

    @property
    def contacts(self) -> LegacyRoster[Any]: ...

    @property
    def bookmarks(self) -> LegacyBookmarks[Any]: ...

    def room_info(self, room_id: str) -> RoomInfo | None: ...

    async def load_room_state(self, room_id: str) -> RoomInfo: ...

    async def initial_batch(self) -> SyncBatch | None: ...

    def is_own_echo(self, event: Event) -> bool: ...

    def readable(self, room_id: str, events: Iterable[Event]) -> list[Event]: ...

    async def readable_now(
        self, room_id: str, events: Iterable[Event]
    ) -> list[Event]: ...

    def placeholder(self, event: Event) -> str | None: ...

    def send_gateway_message(self, text: str, **msg_kwargs: Any) -> None: ...

    def send_gateway_invite(
        self, muc: Any, reason: str | None = None, password: str | None = None
    ) -> None: ...

    def legacy_module_data_update(self, data: JSONSerializable) -> None: ...


class HasAccount:
    """Mixed into the slidge entities: their session as a MatrixSession."""

    session: Any  # set by slidge

    @property
    def account(self) -> MatrixSession:
        return cast("MatrixSession", self.session)
