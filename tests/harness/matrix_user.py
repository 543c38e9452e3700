"""A tiny synchronous Matrix client, for tests only.

It plays "the other Matrix user" and lets tests check what the bridge did
through the plain client-server API. Deliberately stdlib-only (urllib).
"""

# Helpers take explicit timeout= arguments on purpose: tests read better.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MatrixError", "MatrixUser"]

_txn_counter = itertools.count()


class MatrixError(RuntimeError):
    """Non-2xx answer from the homeserver."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> HTTP {status}: {body}")
        self.status = status
        self.body = body
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        self.errcode: str | None = (
            parsed.get("errcode") if isinstance(parsed, dict) else None
        )


def _q(part: str) -> str:
    # Room IDs/aliases contain '!', '#', ':' which must not leak unquoted.
    return urllib.parse.quote(part, safe="")


def _http(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        raise MatrixError(
            method, url, e.code, e.read().decode(errors="replace")
        ) from None
    result: dict[str, Any] = json.loads(raw) if raw else {}
    return result


class MatrixUser:
    def __init__(self, base_url: str, access_token: str, user_id: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.user_id = user_id

    def __repr__(self) -> str:
        return f"<MatrixUser {self.user_id}>"

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> MatrixUser:
        resp = _http(
            "POST",
            base_url.rstrip("/") + "/_matrix/client/v3/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": username},
                "password": password,
            },
        )
        return cls(base_url, resp["access_token"], resp["user_id"])

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Authenticated call; ``path`` is relative to /_matrix/client/v3."""
        url = f"{self.base_url}/_matrix/client/v3{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return _http(method, url, body, token=self.access_token)

    def get_login_token(self) -> str:
        """An ``m.login.token`` for a new session of this user (MSC3882)."""
        token: str = _http(
            "POST",
            f"{self.base_url}/_matrix/client/v1/login/get_token",
            {},
            token=self.access_token,
        )["login_token"]
        return token

    def sync(self, since: str | None = None, timeout_ms: int = 0) -> dict[str, Any]:
        """One /sync of this user's own view (immediate unless timeout_ms)."""
        query = {"timeout": str(timeout_ms)}
        if since:
            query["since"] = since
        return self.request("GET", "/sync", query=query)

    def state(self, room_id: str, type: str, state_key: str = "") -> dict[str, Any]:
        """The content of one state event."""
        return self.request(
            "GET", f"/rooms/{_q(room_id)}/state/{_q(type)}/{_q(state_key)}"
        )

    # --- rooms -------------------------------------------------------------

    def create_room(
        self,
        name: str | None = None,
        topic: str | None = None,
        invite: Iterable[str] = (),
        is_direct: bool = False,
        preset: str = "private_chat",
    ) -> str:
        body: dict[str, Any] = {
            "preset": preset,
            "invite": list(invite),
            "is_direct": is_direct,
        }
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        room_id: str = self.request("POST", "/createRoom", body)["room_id"]
        return room_id

    def join(self, room_id_or_alias: str) -> str:
        room_id: str = self.request("POST", f"/join/{_q(room_id_or_alias)}", {})[
            "room_id"
        ]
        return room_id

    def leave(self, room_id: str) -> None:
        self.request("POST", f"/rooms/{_q(room_id)}/leave", {})

    def invite(self, room_id: str, user_id: str) -> None:
        self.request("POST", f"/rooms/{_q(room_id)}/invite", {"user_id": user_id})

    def send_event(self, room_id: str, type: str, content: dict[str, Any]) -> str:
        # Transaction ids only need to be unique per access token.
        txn = f"t{time.time_ns()}-{next(_txn_counter)}"
        event_id: str = self.request(
            "PUT", f"/rooms/{_q(room_id)}/send/{_q(type)}/{_q(txn)}", content
        )["event_id"]
        return event_id

    def send_text(self, room_id: str, body: str) -> str:
        return self.send_event(
            room_id, "m.room.message", {"msgtype": "m.text", "body": body}
        )

    def send_state(
        self, room_id: str, type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        event_id: str = self.request(
            "PUT", f"/rooms/{_q(room_id)}/state/{_q(type)}/{_q(state_key)}", content
        )["event_id"]
        return event_id

    def set_topic(self, room_id: str, topic: str) -> str:
        return self.send_state(room_id, "m.room.topic", {"topic": topic})

    def set_room_name(self, room_id: str, name: str) -> str:
        return self.send_state(room_id, "m.room.name", {"name": name})

    def set_displayname(self, name: str) -> None:
        self.request(
            "PUT",
            f"/profile/{_q(self.user_id)}/displayname",
            {"displayname": name},
        )

    def joined_members(self, room_id: str) -> dict[str, Any]:
        """``{user_id: {"display_name": ..., "avatar_url": ...}}``."""
        joined: dict[str, Any] = self.request(
            "GET", f"/rooms/{_q(room_id)}/joined_members"
        )["joined"]
        return joined

    def joined_rooms(self) -> list[str]:
        rooms: list[str] = self.request("GET", "/joined_rooms")["joined_rooms"]
        return rooms

    # --- reading -----------------------------------------------------------

    def messages(
        self, room_id: str, limit: int = 100, dir: str = "b"
    ) -> list[dict[str, Any]]:
        """One page of room events (newest first when dir="b")."""
        chunk: list[dict[str, Any]] = self.request(
            "GET",
            f"/rooms/{_q(room_id)}/messages",
            query={"limit": str(limit), "dir": dir},
        )["chunk"]
        return chunk

    def wait_for_message(
        self,
        room_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 20,
    ) -> dict[str, Any]:
        """Poll the room until an event matches ``predicate``.

        Only the latest 100 events are searched on each poll, oldest first,
        so the earliest matching event wins.
        """
        deadline = time.monotonic() + timeout
        while True:
            events = self.messages(room_id)
            found = _first_match(events, predicate)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise self._timeout(room_id, timeout, events)
            time.sleep(0.2)

    async def wait_for_message_async(
        self,
        room_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 20,
    ) -> dict[str, Any]:
        """Like :meth:`wait_for_message` but never blocks the event loop.

        Use this from async tests when the bridge runs on the same loop: the
        sync version would starve it while polling.
        """
        deadline = time.monotonic() + timeout
        while True:
            events = await asyncio.to_thread(self.messages, room_id)
            found = _first_match(events, predicate)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise self._timeout(room_id, timeout, events)
            await asyncio.sleep(0.2)

    def _timeout(
        self, room_id: str, timeout: float, events: list[dict[str, Any]]
    ) -> TimeoutError:
        summary = [
            (e.get("type"), e.get("sender"), e.get("content")) for e in events[:15]
        ]
        return TimeoutError(
            f"{self.user_id}: no matching event in {room_id} after {timeout}s; "
            f"latest events (newest first): {summary}"
        )

    # ---- media ----

    def upload(self, data: bytes, content_type: str, filename: str) -> str:
        """Uploads to the media repository; returns the mxc:// URI."""
        url = f"{self.base_url}/_matrix/media/v3/upload?" + urllib.parse.urlencode(
            {"filename": filename}
        )
        req = urllib.request.Request(url, data=data, method="POST")
        req.add_header("Content-Type", content_type)
        req.add_header("Authorization", f"Bearer {self.access_token}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            uri: str = json.loads(resp.read())["content_uri"]
        return uri

    def download(self, mxc: str) -> bytes:
        """The bytes of an mxc:// URI, through authenticated media."""
        server_media = mxc.removeprefix("mxc://")
        url = f"{self.base_url}/_matrix/client/v1/media/download/{server_media}"
        req = urllib.request.Request(url)
        req.add_header("Authorization", f"Bearer {self.access_token}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            data: bytes = resp.read()
        return data


def _first_match(
    events: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    # /messages with dir=b is newest first; scan oldest first.
    for event in events[::-1]:
        if predicate(event):
            return event
    return None
