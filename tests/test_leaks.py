"""Memory stays flat when the decoder runs many times and every view is read."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import pytest

from matridge import _core

# AddressSanitizer keeps freed memory in quarantine (256 MB by default), so
# RSS grows under `make test-asan` whatever the code does; the sanitizer's
# own leak checks (fuzz/, LeakSanitizer) cover that build instead.
pytestmark = pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="RSS is meaningless under ASan's quarantine",
)

FIXTURES = Path(__file__).parent / "fixtures" / "sync"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def big_body() -> bytes:
    """The every-event fixture with its joined room copied 50 times."""
    body: dict[str, Any] = json.loads((FIXTURES / "every_event_type.json").read_text())
    join = body["rooms"]["join"]
    (room,) = join.values()
    for i in range(50):
        join[f"!copy{i}:example.org"] = room
    return json.dumps(body).encode()


def read_everything(batch: _core.SyncBatch) -> int:
    """Touches every view and attribute, as a greedy consumer would."""
    n = len(batch.account_data) + len(batch.presence) + len(batch.device_lists_changed)
    for room in batch.rooms:
        n += len(room.receipts) + len(room.heroes) + len(room.typing or ())
        for ev in (*room.timeline, *room.state, *room.ephemeral):
            n += len(ev.source) + len(ev.content)
            for m in (ev.message, ev.new_message):
                if m is not None:
                    n += len(m.text) + len(m.mention_spans) + len(m.mentioned_user_ids)
            n += len(repr(ev))
    return n


def test_repeated_decoding_does_not_grow_memory() -> None:
    data = big_body()
    for _ in range(30):  # let the allocators reach their steady state
        read_everything(_core.decode_sync(data))
    gc.collect()
    before = rss_kib()
    for _ in range(1500):
        read_everything(_core.decode_sync(data))
    gc.collect()
    grown = rss_kib() - before
    # One decode of this body is about 2 MB; a leak of even one percent of it
    # per decode would add up to far more than this bound.
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB over 1500 decodes"


def test_repeated_history_does_not_grow_memory() -> None:
    page = json.dumps(
        {
            "chunk": [
                {
                    "type": "m.room.message",
                    "event_id": f"$e{i}",
                    "sender": "@a:x",
                    "origin_server_ts": 1000 - i,
                    "content": {"msgtype": "m.text", "body": f"m{i}"},
                }
                for i in range(500)
            ],
            "start": "a",
        }
    ).encode()
    for _ in range(30):
        h = _core.history_from_pages([page])
        [e.body for e in h.events]
    gc.collect()
    before = rss_kib()
    for _ in range(1500):
        h = _core.history_from_pages([page])
        [(e.body, h.reactions(e.event_id or "")) for e in h.events]
    gc.collect()
    grown = rss_kib() - before
    assert grown < 16 * 1024, f"RSS grew by {grown} KiB over 1500 pages"
