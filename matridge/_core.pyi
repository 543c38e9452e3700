"""Type stubs of the C extension matridge._core (see csrc/)."""

import os
from collections.abc import Callable
from typing import Any, Literal, final

MAX_UNDELIVERED: int

class MatrixError(Exception):
    status: int
    errcode: str | None
    error: str | None
    retry_after_ms: int | None
    soft_logout: bool

class NetworkError(Exception): ...
class TooLargeError(Exception): ...

def wakeup_fd() -> int: ...
def process_completions() -> int: ...

_Fut = Any  # an asyncio.Future, resolved on the loop thread

_Path = str | os.PathLike[str]

# ---- Client (csrc/client.c, csrc/api.c) ----
# Every API method takes the future first and returns the request id; the
# future resolves with the parsed JSON answer, or for download/thumbnail with
# {"content_type", "filename", "size", "data", "path"}.
@final
class Client:
    def __init__(
        self, homeserver: str, access_token: str | None = ..., insecure: bool = ...
    ) -> None: ...
    @property
    def homeserver(self) -> str: ...
    @property
    def syncing(self) -> bool: ...
    def versions(self, future: _Fut, /) -> int: ...
    def well_known(self, future: _Fut, /) -> int: ...
    def login_password(
        self,
        future: _Fut,
        user: str,
        password: str,
        device_name: str | None = ...,
        device_id: str | None = ...,
        /,
    ) -> int: ...
    def login_token(
        self,
        future: _Fut,
        token: str,
        device_name: str | None = ...,
        device_id: str | None = ...,
        /,
    ) -> int: ...
    def whoami(self, future: _Fut, /) -> int: ...
    def logout(self, future: _Fut, /) -> int: ...
    def upload_filter(
        self, future: _Fut, user_id: str, filter: dict[str, Any], /
    ) -> int: ...
    def send_event(
        self,
        future: _Fut,
        room_id: str,
        event_type: str,
        txn_id: str,
        content: dict[str, Any],
        /,
    ) -> int: ...
    def send_state(
        self,
        future: _Fut,
        room_id: str,
        event_type: str,
        state_key: str,
        content: dict[str, Any],
        /,
    ) -> int: ...
    def redact(
        self,
        future: _Fut,
        room_id: str,
        event_id: str,
        txn_id: str,
        reason: str | None = ...,
        /,
    ) -> int: ...
    def typing(
        self,
        future: _Fut,
        room_id: str,
        user_id: str,
        typing: bool,
        timeout_ms: int = ...,
        /,
    ) -> int: ...
    def receipt(
        self,
        future: _Fut,
        room_id: str,
        receipt_type: str,
        event_id: str,
        thread_id: str | None = ...,
        /,
    ) -> int: ...
    def read_markers(
        self,
        future: _Fut,
        room_id: str,
        fully_read: str,
        read: str | None = ...,
        read_private: str | None = ...,
        /,
    ) -> int: ...
    def get_profile(self, future: _Fut, user_id: str, /) -> int: ...
    def set_displayname(self, future: _Fut, user_id: str, name: str, /) -> int: ...
    def set_avatar_url(self, future: _Fut, user_id: str, url: str, /) -> int: ...
    def get_presence(self, future: _Fut, user_id: str, /) -> int: ...
    def set_presence(
        self,
        future: _Fut,
        user_id: str,
        presence: str,
        status_msg: str | None = ...,
        /,
    ) -> int: ...
    def joined_rooms(self, future: _Fut, /) -> int: ...
    def joined_members(self, future: _Fut, room_id: str, /) -> int: ...
    def members(
        self,
        future: _Fut,
        room_id: str,
        at: str | None = ...,
        membership: str | None = ...,
        not_membership: str | None = ...,
        /,
    ) -> int: ...
    def room_state(self, future: _Fut, room_id: str, /) -> int: ...
    def state_event(
        self, future: _Fut, room_id: str, event_type: str, state_key: str, /
    ) -> int: ...
    def room_event(self, future: _Fut, room_id: str, event_id: str, /) -> int: ...
    def event_context(
        self, future: _Fut, room_id: str, event_id: str, limit: int, /
    ) -> int: ...
    def join(
        self,
        future: _Fut,
        room: str,
        via: list[str],
        reason: str | None = ...,
        /,
    ) -> int: ...
    def leave(self, future: _Fut, room_id: str, reason: str | None = ..., /) -> int: ...
    def membership(
        self,
        future: _Fut,
        action: Literal["invite", "kick", "ban", "unban"],
        room_id: str,
        user_id: str,
        reason: str | None = ...,
        /,
    ) -> int: ...
    def create_room(
        self,
        future: _Fut,
        name: str | None,
        topic: str | None,
        invite: list[str],
        is_direct: bool,
        preset: str | None,
        initial_state: list[dict[str, Any]],
        /,
    ) -> int: ...
    def get_account_data(
        self, future: _Fut, user_id: str, event_type: str, room_id: str | None = ..., /
    ) -> int: ...
    def set_account_data(
        self,
        future: _Fut,
        user_id: str,
        event_type: str,
        content: dict[str, Any],
        room_id: str | None = ...,
        /,
    ) -> int: ...
    def resolve_alias(self, future: _Fut, alias: str, /) -> int: ...
    def relations(
        self,
        future: _Fut,
        room_id: str,
        event_id: str,
        rel_type: str | None,
        event_type: str | None,
        from_token: str | None,
        limit: int,
        direction: str | None,
        /,
    ) -> int: ...
    def upload(
        self,
        future: _Fut,
        data: bytes,
        content_type: str,
        filename: str | None = ...,
        /,
    ) -> int: ...
    def upload_file(
        self,
        future: _Fut,
        path: _Path,
        content_type: str,
        filename: str | None = ...,
        /,
    ) -> int: ...
    def download(
        self,
        future: _Fut,
        server_name: str,
        media_id: str,
        max_bytes: int,
        path: _Path | None = ...,
        /,
    ) -> int: ...
    def thumbnail(
        self,
        future: _Fut,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: str,
        max_bytes: int,
        path: _Path | None = ...,
        /,
    ) -> int: ...
    def set_token(self, token: str | None, /) -> None: ...
    def cancel(self, request_id: int, /) -> None: ...
    def start_sync(
        self,
        on_batch: Callable[[SyncBatch], None],
        on_error: Callable[[Exception, bool], None],
        since: str | None = ...,
        filter: str | None = ...,
        timeout_ms: int = ...,
    ) -> None: ...
    def stop_sync(self) -> None: ...
    def sync_ack(self) -> None: ...

@final
class SyncBatch:
    @property
    def next_batch(self) -> str: ...
    @property
    def rooms(self) -> tuple[Room, ...]: ...

@final
class Room:
    @property
    def room_id(self) -> str: ...
    @property
    def membership(self) -> Literal["join", "invite", "leave"]: ...
    @property
    def limited(self) -> bool: ...
    @property
    def prev_batch(self) -> str | None: ...
    @property
    def timeline(self) -> tuple[Event, ...]: ...
    @property
    def state(self) -> tuple[Event, ...]: ...

@final
class Event:
    @property
    def event_id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def sender(self) -> str | None: ...
    @property
    def state_key(self) -> str | None: ...
    @property
    def transaction_id(self) -> str | None: ...
    @property
    def msgtype(self) -> str | None: ...
    @property
    def body(self) -> str | None: ...
    @property
    def invalid(self) -> str | None: ...
    @property
    def origin_server_ts(self) -> int: ...
    @property
    def content(self) -> dict[str, Any]: ...
    @property
    def source(self) -> dict[str, Any]: ...
