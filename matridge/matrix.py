"""The asyncio facade over the C engine ``matridge._core``.

This is the only module that imports ``_core``. Each call here enqueues a
request for the engine thread and awaits a future; the engine wakes the loop
through a file descriptor watched with ``loop.add_reader``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from . import _core

MatrixError = _core.MatrixError
NetworkError = _core.NetworkError
TooLargeError = _core.TooLargeError
MAX_UNDELIVERED = _core.MAX_UNDELIVERED
SyncBatch = _core.SyncBatch
SyncRoom = _core.Room
Receipt = _core.Receipt
Event = _core.Event
Message = _core.Message
History = _core.History
RoomCache = _core.RoomCache
RoomInfo = _core.RoomInfo
Member = _core.Member
CREATOR_POWER_LEVEL = _core.CREATOR_POWER_LEVEL

log = logging.getLogger(__name__)

T = TypeVar("T")

# Lazy-loaded members: state carries only the members who speak in the batch.
SYNC_FILTER = json.dumps(
    {
        "room": {
            "state": {"lazy_load_members": True},
            "timeline": {"limit": 100, "lazy_load_members": True},
        },
        # Presence shows for direct-chat contacts (matridge.contact).
        "presence": {"types": ["m.presence"]},
    },
    separators=(",", ":"),
)


# The first sync's timelines are history that the gateway remembers but does
# not show (backfill brings a room's history): a short one, since a homeserver
# takes seconds to serve 100 events of each of hundreds of rooms.
INITIAL_TIMELINE_LIMIT = 10


def sync_filter_for(user_id: str | None, initial: bool = False) -> str:
    """SYNC_FILTER without the account's own presence: a change of it would
    end the long-poll, and the next /sync would set the account online again.
    `initial`: the first sync's, with INITIAL_TIMELINE_LIMIT."""
    body = json.loads(SYNC_FILTER)
    if user_id is not None:
        body["presence"]["not_senders"] = [user_id]
    if initial:
        body["room"]["timeline"]["limit"] = INITIAL_TIMELINE_LIMIT
    return json.dumps(body, separators=(",", ":"))


# Member state comes along for the senders of each page.
HISTORY_FILTER = json.dumps({"lazy_load_members": True}, separators=(",", ":"))

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


@dataclass(frozen=True)
class Profile:
    displayname: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class Presence:
    presence: str
    status_msg: str | None
    last_active_ago: int | None
    currently_active: bool | None


@dataclass(frozen=True)
class JoinedMember:
    display_name: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class Alias:
    room_id: str
    servers: list[str]


@dataclass(frozen=True)
class Relations:
    chunk: list[dict[str, Any]]
    next_batch: str | None
    prev_batch: str | None


@dataclass(frozen=True)
class Media:
    """A downloaded media body: in ``data``, or in the file at ``path``."""

    content_type: str | None
    filename: str | None
    size: int
    data: bytes | None
    path: str | None


def parse_mxc(uri: str) -> tuple[str, str]:
    """``mxc://server/media_id`` as (server, media_id); ValueError otherwise."""
    server, _, media_id = uri.removeprefix("mxc://").partition("/")
    if not uri.startswith("mxc://") or not server or not media_id or "/" in media_id:
        raise ValueError(f"not an mxc:// URI: {uri!r}")
    return server, media_id


def decode_event(data: bytes | bytearray | memoryview, room_id: str) -> Event:
    """One event's JSON decoded into the Event view a timeline event gets
    (message, styled text, relations, media info), parsed and decoded with
    the GIL released; ``decrypted`` is True on it. For the event the gateway
    assembles after decrypting an ``m.room.encrypted`` one. An event whose
    ``room_id`` names another room comes back ``invalid``; data that is not
    a JSON object raises ValueError."""
    return _core.decode_event(data, room_id)


# The outer (encrypted) event's fields a decrypted event keeps: the
# plaintext brings only type and content (and a room_id to check).
_OUTER_FIELDS = ("event_id", "sender", "origin_server_ts", "unsigned")


def decrypted_event(outer: Event, plaintext: dict[str, Any], room_id: str) -> Event:
    """The Event for a decrypted Megolm payload: the plaintext's ``type``,
    ``content`` and ``room_id`` with the outer event's ids, sender, time and
    ``unsigned``, and the clear ``m.relates_to`` when the plaintext has
    none. A plaintext ``room_id`` other than ``room_id`` makes the event
    invalid (a replay from another room)."""
    source = outer.source
    event: dict[str, Any] = {k: source[k] for k in _OUTER_FIELDS if k in source}
    event["type"] = plaintext.get("type")
    content = plaintext.get("content")
    relation = (source.get("content") or {}).get("m.relates_to")
    if isinstance(content, dict) and "m.relates_to" not in content and relation:
        # Senders may keep the relation in the clear part only (the server
        # aggregates it there): the decrypted event keeps it.
        content = {**content, "m.relates_to": relation}
    event["content"] = content
    event["room_id"] = plaintext.get("room_id", room_id)
    return decode_event(json.dumps(event, separators=(",", ":")).encode(), room_id)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _field(res: Any, key: str, what: str) -> str:
    value = res.get(key) if isinstance(res, dict) else None
    if not isinstance(value, str):
        raise bad_answer(f"the homeserver's {what} answer has no {key}")
    return value


def _object(res: Any, what: str) -> dict[str, Any]:
    if not isinstance(res, dict):
        raise bad_answer(f"the homeserver's {what} answer is not an object")
    return res


async def discover(server: str, insecure: bool = False) -> str:
    """The client-server base URL for a server name (``example.org``), or an
    explicit ``https://``/``http://`` URL, via ``/.well-known/matrix/client``;
    falls back to the name itself when there is no well-known. The base URL
    is checked with ``/versions`` (a MatrixError or NetworkError if it fails)."""
    origin = server.rstrip("/")
    if not origin.startswith(("https://", "http://")):
        origin = "https://" + origin
    base = origin
    try:
        found = await MatrixClient(origin, insecure=insecure).well_known()
    except MatrixError as e:
        if e.status != 404:
            raise
        found = None
    except NetworkError:
        found = None  # no web server answering for the name: try it as is
    if found is not None:
        hs = found.get("m.homeserver")
        url = hs.get("base_url") if isinstance(hs, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise bad_answer(
                f"{origin}'s .well-known/matrix/client has no usable base_url"
            )
        base = url.rstrip("/")
    versions = await MatrixClient(base, insecure=insecure).versions()
    if not isinstance(versions.get("versions"), list):
        raise bad_answer(f"{base} does not look like a Matrix homeserver")
    return base


class MatrixClient:
    """One Matrix account. All network work happens on the engine thread."""

    def __init__(
        self,
        homeserver: str,
        access_token: str | None = None,
        insecure: bool = False,
        user_id: str | None = None,
    ) -> None:
        self._c = _core.Client(homeserver, access_token, insecure)
        self._rooms = self._c.rooms  # one view of the engine's cache, not one per read
        self.user_id = user_id  # known after login or whoami

    @property
    def user_id(self) -> str | None:
        return self._user_id

    @user_id.setter
    def user_id(self, user_id: str | None) -> None:
        self._user_id = user_id
        # The room cache leaves the account itself out of room names.
        self._rooms.user_id = user_id

    @property
    def rooms(self) -> RoomCache:
        """Room state, kept up to date by the engine from every sync batch."""
        return self._rooms

    def _me(self) -> str:
        if self.user_id is None:
            raise RuntimeError("the user id is not known yet: log in or call whoami")
        return self.user_id

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
        return _object(await self._call(self._c.versions), "versions")

    async def well_known(self) -> dict[str, Any]:
        """This base URL's ``/.well-known/matrix/client`` (see :func:`discover`)."""
        return _object(await self._call(self._c.well_known), ".well-known")

    def _logged_in(self, res: Any) -> Login:
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
        self.user_id = login.user_id
        return login

    async def login_password(
        self, user: str, password: str, device_name: str | None = None
    ) -> Login:
        res = await self._call(self._c.login_password, user, password, device_name)
        return self._logged_in(res)

    async def login_flows(self) -> list[str]:
        """The login types the homeserver offers (``GET /login``)."""
        res = _object(await self._call(self._c.login_flows), "login flows")
        flows = res.get("flows")
        if not isinstance(flows, list):
            raise bad_answer("the homeserver's login flows are not a list")
        return [
            f["type"]
            for f in flows
            if isinstance(f, dict) and isinstance(f.get("type"), str)
        ]

    async def login_token(self, token: str, device_name: str | None = None) -> Login:
        """``m.login.token`` login, e.g. with a token from another session."""
        return self._logged_in(
            await self._call(self._c.login_token, token, device_name)
        )

    async def whoami(self) -> dict[str, Any]:
        res = _object(await self._call(self._c.whoami), "whoami")
        if isinstance(res.get("user_id"), str):
            self.user_id = res["user_id"]
        return res

    async def logout(self) -> None:
        await self._call(self._c.logout)
        self._c.set_token(None)

    async def upload_filter(self, sync_filter: dict[str, Any]) -> str:
        """Stores a filter on the server; its id can replace the JSON in sync."""
        res = await self._call(self._c.upload_filter, self._me(), sync_filter)
        return _field(res, "filter_id", "filter")

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

    async def load_room_state(self, room_id: str) -> RoomInfo | None:
        """Fetches a room's full state (all members, not only the lazy-loaded
        ones); the engine applies it to the room cache. Returns the room's new
        snapshot."""
        await self.room_state(room_id)
        return self.rooms.get(room_id)

    async def get_event(self, room_id: str, event_id: str) -> Event:
        """``/rooms/{id}/event/{id}``, decoded like a sync event."""
        event: Event = await self._call(self._c.get_event, room_id, event_id)
        return event

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

    async def send_state(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        state_key: str = "",
    ) -> str:
        res = await self._call(
            self._c.send_state, room_id, event_type, state_key, content
        )
        return _field(res, "event_id", "state")

    async def redact(
        self, room_id: str, event_id: str, txn_id: str, reason: str | None = None
    ) -> str:
        """Redacts an event; the same txn_id never redacts twice."""
        res = await self._call(self._c.redact, room_id, event_id, txn_id, reason)
        return _field(res, "event_id", "redact")

    async def typing(self, room_id: str, typing: bool, timeout_ms: int = 30000) -> None:
        await self._call(self._c.typing, room_id, self._me(), typing, timeout_ms)

    async def send_receipt(
        self,
        room_id: str,
        event_id: str,
        receipt_type: Literal["m.read", "m.read.private"] = "m.read",
        thread_id: str | None = None,
    ) -> None:
        """A read receipt; ``thread_id`` ("main" or a thread root) makes it threaded."""
        await self._call(self._c.receipt, room_id, receipt_type, event_id, thread_id)

    async def set_read_markers(
        self,
        room_id: str,
        fully_read: str,
        read: str | None = None,
        read_private: str | None = None,
    ) -> None:
        """Moves ``m.fully_read`` (and optionally the read receipts)."""
        await self._call(self._c.read_markers, room_id, fully_read, read, read_private)

    async def get_profile(self, user_id: str) -> Profile:
        res = _object(await self._call(self._c.get_profile, user_id), "profile")
        return Profile(
            _str_or_none(res.get("displayname")), _str_or_none(res.get("avatar_url"))
        )

    async def set_displayname(self, displayname: str) -> None:
        await self._call(self._c.set_displayname, self._me(), displayname)

    async def set_avatar_url(self, avatar_url: str) -> None:
        await self._call(self._c.set_avatar_url, self._me(), avatar_url)

    async def get_presence(self, user_id: str) -> Presence:
        res = _object(await self._call(self._c.get_presence, user_id), "presence")
        presence = res.get("presence")
        ago, active = res.get("last_active_ago"), res.get("currently_active")
        return Presence(
            presence if isinstance(presence, str) else "offline",
            _str_or_none(res.get("status_msg")),
            ago if isinstance(ago, int) else None,
            active if isinstance(active, bool) else None,
        )

    async def set_presence(
        self,
        presence: Literal["online", "offline", "unavailable"],
        status_msg: str | None = None,
    ) -> None:
        await self._call(self._c.set_presence, self._me(), presence, status_msg)

    async def joined_members(self, room_id: str) -> dict[str, JoinedMember]:
        res = _object(await self._call(self._c.joined_members, room_id), "members")
        joined = res.get("joined")
        if not isinstance(joined, dict):
            raise bad_answer("the homeserver's joined_members answer has no joined")
        return {
            user: JoinedMember(
                _str_or_none(info.get("display_name")),
                _str_or_none(info.get("avatar_url")),
            )
            for user, info in joined.items()
            if isinstance(info, dict)
        }

    async def members(
        self,
        room_id: str,
        at: str | None = None,
        membership: str | None = None,
        not_membership: str | None = None,
    ) -> list[dict[str, Any]]:
        """The m.room.member events of a room, optionally filtered."""
        res = _object(
            await self._call(self._c.members, room_id, at, membership, not_membership),
            "members",
        )
        chunk = res.get("chunk")
        if not isinstance(chunk, list):
            raise bad_answer("the homeserver's members answer has no chunk")
        return [e for e in chunk if isinstance(e, dict)]

    async def state_event(
        self, room_id: str, event_type: str, state_key: str = ""
    ) -> dict[str, Any]:
        """The content of one state event (MatrixError 404 when there is none)."""
        res = await self._call(self._c.state_event, room_id, event_type, state_key)
        return _object(res, "state event")

    async def event_context(
        self, room_id: str, event_id: str, limit: int = 10
    ) -> dict[str, Any]:
        """``/context``: the event with up to ``limit`` events around it."""
        res = await self._call(self._c.event_context, room_id, event_id, limit)
        return _object(res, "context")

    async def join(
        self, room: str, via: Iterable[str] = (), reason: str | None = None
    ) -> str:
        """Joins a room by id or alias; returns the room id."""
        servers = [via] if isinstance(via, str) else list(via)
        res = await self._call(self._c.join, room, servers, reason)
        return _field(res, "room_id", "join")

    async def leave(self, room_id: str, reason: str | None = None) -> None:
        await self._call(self._c.leave, room_id, reason)

    async def invite(
        self, room_id: str, user_id: str, reason: str | None = None
    ) -> None:
        await self._call(self._c.membership, "invite", room_id, user_id, reason)

    async def kick(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        await self._call(self._c.membership, "kick", room_id, user_id, reason)

    async def ban(self, room_id: str, user_id: str, reason: str | None = None) -> None:
        await self._call(self._c.membership, "ban", room_id, user_id, reason)

    async def unban(
        self, room_id: str, user_id: str, reason: str | None = None
    ) -> None:
        await self._call(self._c.membership, "unban", room_id, user_id, reason)

    async def create_room(
        self,
        name: str | None = None,
        topic: str | None = None,
        invite: Iterable[str] = (),
        is_direct: bool = False,
        preset: Literal["private_chat", "public_chat", "trusted_private_chat"]
        | None = None,
        initial_state: Iterable[dict[str, Any]] = (),
    ) -> str:
        res = await self._call(
            self._c.create_room,
            name,
            topic,
            list(invite),
            is_direct,
            preset,
            list(initial_state),
        )
        return _field(res, "room_id", "createRoom")

    async def request(
        self,
        method: Literal["GET", "POST", "PUT", "DELETE"],
        path: str,
        *segments: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """An authenticated request to a client-server endpoint that has no
        call of its own (``/keys/*``, ``/sendToDevice``): `path` starts with
        ``/_matrix/client/`` and its ``{}`` take `segments`, percent-encoded."""
        flat = [part for item in (query or {}).items() for part in item]
        res = await self._call(
            self._c.request, method, path, list(segments), body, flat or None
        )
        return _object(res, path)

    async def get_account_data(
        self, event_type: str, room_id: str | None = None
    ) -> dict[str, Any]:
        """Global (or per-room) account data; MatrixError 404 when unset."""
        res = await self._call(
            self._c.get_account_data, self._me(), event_type, room_id
        )
        return _object(res, "account data")

    async def set_account_data(
        self, event_type: str, content: dict[str, Any], room_id: str | None = None
    ) -> None:
        await self._call(
            self._c.set_account_data, self._me(), event_type, content, room_id
        )

    async def direct_chats(self) -> dict[str, Any]:
        """The account's ``m.direct`` content (user id -> room ids), {} if
        it was never set."""
        try:
            return await self.get_account_data("m.direct")
        except MatrixError as e:
            if e.status != 404:
                raise
            return {}

    async def set_direct_chats(self, content: dict[str, Any]) -> None:
        """Replaces ``m.direct``, and the room cache's copy with it."""
        await self.set_account_data("m.direct", content)
        self._apply_direct(content)

    async def load_direct_rooms(self) -> dict[str, str]:
        """Fetches ``m.direct`` into the room cache (a sync resumed from a
        token does not repeat it) and returns room id -> the other user id."""
        self._apply_direct(await self.direct_chats())
        return self._rooms.direct_rooms()

    def _apply_direct(self, content: dict[str, Any]) -> None:
        body = {"account_data": {"events": [{"type": "m.direct", "content": content}]}}
        self._rooms.apply_sync(json.dumps(body).encode())

    async def resolve_alias(self, alias: str) -> Alias:
        res = _object(await self._call(self._c.resolve_alias, alias), "directory")
        servers = res.get("servers")
        return Alias(
            _field(res, "room_id", "directory"),
            [s for s in servers if isinstance(s, str)]
            if isinstance(servers, list)
            else [],
        )

    async def history(
        self,
        room_id: str,
        from_token: str | None = None,
        *,
        backwards: bool = True,
        until_event_id: str | None = None,
        until_ts: int | None = None,
        limit: int = 0,
        page_size: int = 100,
    ) -> History:
        """Pages ``/rooms/{id}/messages`` from ``from_token`` (a ``prev_batch``,
        or None for the live end) until ``until_event_id`` or ``until_ts``
        (both excluded), ``limit`` events, or the start of the room. Every
        page is fetched, parsed and decoded on the engine thread, and the
        whole is aggregated there (edits applied, reactions gathered,
        redacted events dropped); the History holds it oldest first."""
        history: History = await self._call(
            self._c.history,
            room_id,
            from_token,
            backwards,
            until_event_id,
            -1 if until_ts is None else until_ts,
            limit,
            page_size,
            HISTORY_FILTER,
        )
        return history

    async def relations(
        self,
        room_id: str,
        event_id: str,
        rel_type: str | None = None,
        event_type: str | None = None,
        from_token: str | None = None,
        limit: int | None = None,
        direction: Literal["b", "f"] | None = None,
    ) -> Relations:
        """One page of the events relating to ``event_id``."""
        res = _object(
            await self._call(
                self._c.relations,
                room_id,
                event_id,
                rel_type,
                event_type,
                from_token,
                limit or 0,
                direction,
            ),
            "relations",
        )
        chunk = res.get("chunk")
        if not isinstance(chunk, list):
            raise bad_answer("the homeserver's relations answer has no chunk")
        return Relations(
            [e for e in chunk if isinstance(e, dict)],
            _str_or_none(res.get("next_batch")),
            _str_or_none(res.get("prev_batch")),
        )

    async def upload(
        self, data: bytes, content_type: str, filename: str | None = None
    ) -> str:
        """Uploads bytes; returns the mxc:// URI."""
        res = await self._call(self._c.upload, data, content_type, filename)
        return _field(res, "content_uri", "upload")

    async def upload_file(
        self,
        path: str | os.PathLike[str],
        content_type: str,
        filename: str | None = None,
    ) -> str:
        """Uploads a file, streamed from disk by the engine; returns the mxc:// URI."""
        res = await self._call(self._c.upload_file, path, content_type, filename)
        return _field(res, "content_uri", "upload")

    async def download(
        self, mxc: str, max_bytes: int, path: str | os.PathLike[str] | None = None
    ) -> Media:
        """Downloads media into memory, or into ``path`` (written only once
        complete). A body over ``max_bytes`` raises TooLargeError."""
        server, media_id = parse_mxc(mxc)
        res = await self._call(self._c.download, server, media_id, max_bytes, path)
        return Media(**res)

    async def thumbnail(
        self,
        mxc: str,
        width: int,
        height: int,
        max_bytes: int,
        method: Literal["crop", "scale"] = "scale",
        path: str | os.PathLike[str] | None = None,
    ) -> Media:
        server, media_id = parse_mxc(mxc)
        res = await self._call(
            self._c.thumbnail, server, media_id, width, height, method, max_bytes, path
        )
        return Media(**res)

    def start_sync(
        self,
        on_batch: Callable[[SyncBatch], None],
        on_error: Callable[[Exception, bool], None],
        since: str | None,
        timeout_ms: int,
        sync_filter: str | None = None,
    ) -> None:
        """Starts the engine's /sync loop. `on_batch` gets each batch on the
        loop; call :meth:`sync_ack` once it is processed, or the engine stops
        fetching after ``MAX_UNDELIVERED`` batches. `on_error` gets every
        failure and whether it ended the loop (a revoked token)."""
        _attach(asyncio.get_running_loop())
        initial = None
        if sync_filter is None:
            sync_filter = sync_filter_for(self.user_id)
            initial = sync_filter_for(self.user_id, initial=True)
        self._c.start_sync(on_batch, on_error, since, sync_filter, timeout_ms, initial)

    def stop_sync(self) -> None:
        self._c.stop_sync()

    def sync_ack(self, batch: SyncBatch | None = None) -> None:
        """Acknowledges a processed batch. Pass it: an acknowledgement of a
        batch from before a restart of the loop is then ignored."""
        self._c.sync_ack(batch)
