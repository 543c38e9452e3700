"""Hostile-room benchmark: what one room built to be expensive costs the
engine thread, which serves every account of the process.

Each case is one /sync body a hostile room member (or server) can produce:
lists at the cache's cap of MX_ROOMS_MAX_LIST (4096) items with duplicates
(pinned events, alternative aliases, additional creators, an m.direct room
listed for thousands of users), and thousands of m.receipt events in one
room's ephemeral section. The body is applied to a fresh RoomCache (the
engine's room cache, rooms.c) or decoded (decode.c); the median of `reps`
runs is reported. The figure to watch is how it grows with the list size:
linear since issue 13, where duplicate checks and receipt copies were
quadratic before.

    python -m bench.hostile_bench           # prints the table
    python -m bench --only hostile          # as a part of the benchmark page
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from matridge import _core

ROOM = "!hostile:x"
ME = "@me:x"
SIZES = (1024, 4096)


@dataclass
class Result:
    case: str
    items: int
    median_ms: float


def _state(type: str, content: Any) -> dict[str, Any]:
    return {"type": type, "state_key": "", "sender": ME, "content": content}


def _sync(events: list[Any], **extra: Any) -> bytes:
    room = {"state": {"events": events}}
    body = {"next_batch": "n", "rooms": {"join": {ROOM: room}}, **extra}
    return json.dumps(body).encode()


def _dups(n: int, fmt: str) -> list[str]:
    # Every item twice, the copy at the end: every check scans the list.
    items = [fmt.format(i) for i in range(n)]
    return items + items


def cases(n: int) -> dict[str, tuple[str, bytes]]:
    member = {
        "type": "m.room.member",
        "state_key": ME,
        "sender": ME,
        "content": {"membership": "join"},
    }
    receipts = [
        {
            "type": "m.receipt",
            "content": {f"$e{i}": {"m.read": {f"@u{i}:x": {"ts": i}}}},
        }
        for i in range(n)
    ]
    direct = {"type": "m.direct", "content": {f"@u{i}:x": [ROOM] for i in range(n)}}
    return {
        "pinned events": (
            "cache",
            _sync(
                [member, _state("m.room.pinned_events", {"pinned": _dups(n, "$e{}")})]
            ),
        ),
        "alt aliases": (
            "cache",
            _sync(
                [
                    member,
                    _state(
                        "m.room.canonical_alias",
                        {"alias": "#a:x", "alt_aliases": _dups(n, "#a{}:x")},
                    ),
                ]
            ),
        ),
        "additional creators": (
            "cache",
            _sync(
                [
                    member,
                    _state(
                        "m.room.create",
                        {
                            "room_version": "12",
                            "additional_creators": _dups(n, "@c{}:x"),
                        },
                    ),
                ]
            ),
        ),
        "m.direct users of one room": (
            "cache",
            _sync([member], account_data={"events": [direct]}),
        ),
        "m.receipt events": (
            "decode",
            json.dumps(
                {
                    "next_batch": "n",
                    "rooms": {"join": {ROOM: {"ephemeral": {"events": receipts}}}},
                }
            ).encode(),
        ),
    }


def _time(fn: Callable[[], object], reps: int) -> float:
    runs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def _apply(body: bytes) -> None:
    _core.RoomCache(ME).apply_sync(body)


def run(reps: int = 15, sizes: tuple[int, ...] = SIZES) -> list[Result]:
    out = []
    for n in sizes:
        for name, (kind, body) in cases(n).items():
            ms = _time(
                functools.partial(
                    _apply if kind == "cache" else _core.decode_sync, body
                ),
                reps,
            )
            out.append(Result(name, n, ms))
    return out


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["case"], str(r["items"]), f"{r['median_ms']:.2f}"] for r in results]


def main() -> None:
    for r in run():
        print(f"{r.case:30} {r.items:6} {r.median_ms:9.2f} ms", file=sys.stdout)


if __name__ == "__main__":
    main()
