"""History benchmark: fetch the last N events of a room from a real Synapse.

The parent starts Synapse (tests.harness.synapse), registers two users,
creates a room and fills it with N events (text, HTML-formatted messages,
replies, edits, reactions, redactions; set-up is not measured). Each
fetcher runs in a fresh process (``python -m bench.history_bench IMPL
HOMESERVER TOKEN ROOM_ID N REPS``): one warm-up request (connection open,
code paths loaded), then a first fetch + walk with the peak RSS reset just
before it, then REPS timed fetch + walk repetitions, then REPS fetches of
the newest page alone.

The fetchers:

- matridge: ``MatrixClient.history(room_id, limit=N)`` (pages of 100 fetched,
  parsed and decoded on the engine thread, aggregated there), then the lazy
  Event views of ``History.events``;
- matrix-nio: the ``AsyncClient.room_messages(..., limit=100)`` loop a nio
  user writes, following ``end`` until N events or no ``end``;
- aiohttp + orjson: the same loop over plain dicts, as a floor (what the
  server and the wire cost with next to no client work).
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procstat

PAGE_SIZE = 100
FULL_EVENTS = 1000
QUICK_EVENTS = 300
IMPLS = ("matridge", "matrix-nio", "aiohttp + orjson")
# The filter matridge sends with each page (HISTORY_FILTER in matridge/matrix.py);
# the floor sends it too, so that it asks the server for the same work.
LAZY_MEMBERS = json.dumps({"lazy_load_members": True}, separators=(",", ":"))

# Seeded event kinds and their weights (per 1000 events).
SEED_MIX: tuple[tuple[str, int], ...] = (
    ("text", 600),
    ("formatted", 120),
    ("reply", 80),
    ("edit", 80),
    ("reaction", 100),
    ("redaction", 20),
)
WORDS = (
    "the meeting is moved to thursday please review the patch before merge "
    "lunch anyone deploy failed again works for me can you share logs "
    "café naïve über straße 日本語 привет 🎉 👍 🚀"
).split()
EMOJI = ("👍", "❤️", "😂", "🎉", "🚀", "👀", "✅", "🙏")
RECENT = 50  # edits, replies, reactions and redactions target recent messages


@dataclass(frozen=True)
class HistoryResult:
    impl: str
    asked: int  # events asked for
    pages: int  # /messages requests
    fetched: int  # raw events in the pages kept
    events: int  # events the caller gets (matridge: after aggregation)
    bodies: int  # of which with a body
    median_ms: float  # fetch + walk
    best_ms: float
    peak_mib: float  # peak RSS over the baseline, first fetch + walk
    reps: int
    first_page_ms: float  # median of fetching just the newest page (+ walk)


@dataclass(frozen=True)
class Fetched:
    pages: int
    fetched: int
    events: int
    bodies: int


# ---- the fetchers ---------------------------------------------------------------


Fetcher = Callable[[str, int], Awaitable[Fetched]]


async def _matridge(homeserver: str, token: str) -> tuple[Fetcher, Any]:
    from matridge.matrix import MatrixClient

    client = MatrixClient(homeserver, token)

    async def fetch(room_id: str, count: int) -> Fetched:
        history = await client.history(room_id, limit=count, page_size=PAGE_SIZE)
        events = bodies = 0
        for ev in history.events:
            route = (ev.event_id, ev.type, ev.sender)
            body = ev.body
            events += 1
            if body is not None:
                bodies += 1
            del route
        return Fetched(history.pages, history.fetched, events, bodies)

    async def close() -> None:
        pass

    return fetch, close


async def _nio(homeserver: str, token: str) -> tuple[Fetcher, Any]:
    from nio import (
        AsyncClient,
        AsyncClientConfig,
        MessageDirection,
        RoomMessagesResponse,
    )

    config = AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
    client = AsyncClient(homeserver, "@bench:localhost", config=config)
    client.access_token = token

    async def fetch(room_id: str, count: int) -> Fetched:
        chunk: list[Any] = []
        start: str | None = None
        pages = 0
        while len(chunk) < count:
            resp = await client.room_messages(
                room_id,
                start=start,
                limit=min(PAGE_SIZE, count - len(chunk)),
                direction=MessageDirection.back,
            )
            if not isinstance(resp, RoomMessagesResponse):
                raise RuntimeError(f"matrix-nio: {resp}")
            pages += 1
            chunk.extend(resp.chunk)
            if not resp.end or not resp.chunk:
                break
            start = resp.end
        events = bodies = 0
        for ev in chunk:
            # nio routes by class (callbacks per event class).
            route = (getattr(ev, "event_id", None), type(ev), ev.sender)
            body = getattr(ev, "body", None)
            events += 1
            if isinstance(body, str):
                bodies += 1
            del route
        return Fetched(pages, len(chunk), events, bodies)

    return fetch, client.close


async def _raw(homeserver: str, token: str) -> tuple[Fetcher, Any]:
    import aiohttp
    import orjson

    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"})

    async def fetch(room_id: str, count: int) -> Fetched:
        url = (
            f"{homeserver}/_matrix/client/v3/rooms/"
            f"{urllib.parse.quote(room_id, safe='')}/messages"
        )
        chunk: list[Any] = []
        start: str | None = None
        pages = 0
        while len(chunk) < count:
            params = {
                "dir": "b",
                "limit": str(min(PAGE_SIZE, count - len(chunk))),
                "filter": LAZY_MEMBERS,
            }
            if start is not None:
                params["from"] = start
            async with session.get(url, params=params) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"/messages: {resp.status}")
                page = orjson.loads(await resp.read())
            pages += 1
            chunk.extend(page.get("chunk", ()))
            start = page.get("end")
            if not start or not page.get("chunk"):
                break
        events = bodies = 0
        for ev in chunk:
            route = (ev.get("event_id"), ev.get("type"), ev.get("sender"))
            content = ev.get("content")
            body = content.get("body") if isinstance(content, dict) else None
            events += 1
            if isinstance(body, str):
                bodies += 1
            del route
        return Fetched(pages, len(chunk), events, bodies)

    return fetch, session.close


STARTERS: dict[str, Callable[[str, str], Awaitable[tuple[Fetcher, Any]]]] = {
    "matridge": _matridge,
    "matrix-nio": _nio,
    "aiohttp + orjson": _raw,
}


async def measure(
    impl: str, homeserver: str, token: str, room_id: str, count: int, reps: int
) -> HistoryResult:
    fetch, close = await STARTERS[impl](homeserver, token)
    await fetch(room_id, 1)  # connection open, code paths loaded
    gc.collect()
    baseline = procstat.rss_bytes()
    if not procstat.reset_peak_rss():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs)")
    first = await fetch(room_id, count)
    peak = procstat.peak_rss_bytes() - baseline
    times: list[float] = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        got = await fetch(room_id, count)
        times.append(time.perf_counter() - t0)
        if got != first:
            raise RuntimeError(f"{impl}: {got} differs from the first fetch {first}")
    # The newest page alone: where the server's time goes.
    page_times: list[float] = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        await fetch(room_id, min(PAGE_SIZE, count))
        page_times.append(time.perf_counter() - t0)
    await close()
    return HistoryResult(
        impl=impl,
        asked=count,
        pages=first.pages,
        fetched=first.fetched,
        events=first.events,
        bodies=first.bodies,
        median_ms=1e3 * statistics.median(times),
        best_ms=1e3 * min(times),
        peak_mib=peak / 2**20,
        reps=reps,
        first_page_ms=1e3 * statistics.median(page_times),
    )


# ---- the parent: a room with N events ---------------------------------------------


class _Account:
    """One user's keep-alive connection to the homeserver."""

    def __init__(self, base_url: str, info: dict[str, Any]) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.user_id: str = info["user_id"]
        self.token: str = info["access_token"]
        self._conn = http.client.HTTPConnection(url.hostname or "", url.port)
        self._txn = 0

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
        }
        self._conn.request(method, "/_matrix/client/v3" + path, data, headers)
        resp = self._conn.getresponse()
        answer = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {answer[:300]!r}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        self._txn += 1
        room = urllib.parse.quote(room_id, safe="")
        path = f"/rooms/{room}/send/{event_type}/b{self._txn}"
        event_id: str = self.call("PUT", path, content)["event_id"]
        return event_id

    def redact(self, room_id: str, event_id: str) -> None:
        self._txn += 1
        room = urllib.parse.quote(room_id, safe="")
        target = urllib.parse.quote(event_id, safe="")
        self.call("PUT", f"/rooms/{room}/redact/{target}/b{self._txn}", {})

    def close(self) -> None:
        self._conn.close()


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _seed(room_id: str, users: list[_Account], count: int, seed: int) -> None:
    """Sends ``count`` events, one after the other, in the SEED_MIX proportions."""
    rng = random.Random(seed)
    kinds = [k for k, _ in SEED_MIX]
    weights = [w for _, w in SEED_MIX]
    # Messages still visible, by sender: targets of edits, replies, reactions.
    messages: list[tuple[str, _Account]] = []
    reacted: set[tuple[str, str, str]] = set()
    for i in range(count):
        user = rng.choice(users)
        kind = "text" if i < 10 else rng.choices(kinds, weights)[0]
        recent = messages[-RECENT:]
        own = [m for m in recent if m[1] is user]
        if kind in ("edit", "redaction") and not own:
            kind = "text"
        if kind == "text":
            body = _words(rng, rng.randint(2, 20))
            messages.append((user.send(room_id, "m.room.message", _text(body)), user))
        elif kind == "formatted":
            words = _words(rng, rng.randint(3, 12))
            content: dict[str, Any] = {
                "msgtype": "m.text",
                "body": f"**{words}** see https://example.org/{i}",
                "format": "org.matrix.custom.html",
                "formatted_body": f"<b>{words}</b> see "
                f'<a href="https://example.org/{i}">the page</a><br><code>x</code>',
            }
            messages.append((user.send(room_id, "m.room.message", content), user))
        elif kind == "reply":
            target, author = rng.choice(recent)
            content = _text(f"> <{author.user_id}> …\n\n{_words(rng, 6)}")
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": target}}
            messages.append((user.send(room_id, "m.room.message", content), user))
        elif kind == "edit":
            target, _ = rng.choice(own)
            new = _words(rng, rng.randint(2, 12))
            content = _text(f"* {new}")
            content["m.new_content"] = _text(new)
            content["m.relates_to"] = {"rel_type": "m.replace", "event_id": target}
            user.send(room_id, "m.room.message", content)
        elif kind == "reaction":
            target, _ = rng.choice(recent)
            key = rng.choice(EMOJI)
            if (user.user_id, target, key) in reacted:
                key = f"{key}{i}"  # one annotation per (sender, event, key)
            reacted.add((user.user_id, target, key))
            relates = {"rel_type": "m.annotation", "event_id": target, "key": key}
            user.send(room_id, "m.reaction", {"m.relates_to": relates})
        else:
            target, _ = rng.choice(own)
            user.redact(room_id, target)
            messages = [m for m in messages if m[0] != target]


def _text(body: str) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body}


def _prepare(synapse: Any, count: int, seed: int) -> tuple[str, str]:
    """A room with ``count`` seeded events; (room id, a member's token)."""
    base = synapse.base_url
    alice = _Account(base, synapse.register_user("alice", "pw", admin=True))
    bob = _Account(base, synapse.register_user("bob", "pw"))
    try:
        room_id: str = alice.call(
            "POST", "/createRoom", {"preset": "public_chat", "name": "history"}
        )["room_id"]
        bob.call("POST", f"/join/{urllib.parse.quote(room_id, safe='')}", {})
        t0 = time.monotonic()
        _seed(room_id, [alice, bob], count, seed)
        took = time.monotonic() - t0
        print(f"  history: {count} events sent in {took:.1f} s", file=sys.stderr)
        return room_id, alice.token
    finally:
        alice.close()
        bob.close()


def run(count: int, reps: int, seed: int, work_dir: Path) -> list[HistoryResult]:
    from tests.harness.synapse import Synapse

    work_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=work_dir.resolve()) as tmp:
        synapse = Synapse(Path(tmp) / "synapse")
        print("  history: starting Synapse", file=sys.stderr, flush=True)
        synapse.start()
        try:
            room_id, token = _prepare(synapse, count, seed)
            args = (synapse.base_url, token, room_id, str(count))
            # One untimed pass first, as long as a measured one, so that no
            # fetcher pays for Synapse's cold caches.
            procstat.run_worker("bench.history_bench", IMPLS[-1], *args, str(reps))
            for impl in IMPLS:
                print(f"  history: {impl}, {reps} runs", file=sys.stderr, flush=True)
                raw = procstat.run_worker("bench.history_bench", impl, *args, str(reps))
                results.append(HistoryResult(**raw))
        finally:
            synapse.stop()
    return results


def main(argv: list[str]) -> None:
    impl, homeserver, token, room_id, count, reps = argv
    result = asyncio.run(
        measure(impl, homeserver, token, room_id, int(count), int(reps))
    )
    procstat.emit(result.__dict__)


if __name__ == "__main__":
    main(sys.argv[1:])
