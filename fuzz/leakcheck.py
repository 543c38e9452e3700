"""Leak check (``make leakcheck``): memory must stay flat while

1. the benchmark's large /sync response (44 MB, ``bench.syncgen.FULL``) is
   decoded and every event routed, ``--decodes`` times (10,000 by default);
2. 100 clients at a time are started, sync from a local server, and are
   stopped and dropped, ``--client-rounds`` times.

RSS and Python's traced allocations are sampled after a warm-up and at the
end; growth beyond the bounds fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from pathlib import Path

from bench.syncgen import FULL, QUICK, cached
from matridge import _core
from matridge.matrix import MatrixClient
from tests.harness.fake_homeserver import Answer, fake_homeserver

RSS_BOUND_MIB = 64
TRACED_BOUND_MIB = 4


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def route(batch: _core.SyncBatch) -> int:
    n = 0
    for room in batch.rooms:
        for ev in (*room.state, *room.timeline):
            ev.event_id, ev.type, ev.sender  # noqa: B018
            m = ev.message
            if m is not None:
                n += len(m.text)
    return n


def check(name: str, before: tuple[float, int], after: tuple[float, int]) -> bool:
    rss = after[0] - before[0]
    traced = (after[1] - before[1]) / 2**20
    ok = rss < RSS_BOUND_MIB and traced < TRACED_BOUND_MIB
    print(
        f"{name}: RSS {before[0]:.0f} -> {after[0]:.0f} MiB ({rss:+.1f}), "
        f"traced Python memory {traced:+.2f} MiB: {'flat' if ok else 'GROWS'}",
        flush=True,
    )
    return ok


def sample() -> tuple[float, int]:
    gc.collect()
    return rss_mib(), tracemalloc.get_traced_memory()[0]


def decodes(n: int, quick: bool) -> bool:
    data = cached(1, QUICK if quick else FULL, Path("build/bench")).read_bytes()
    for _ in range(3):
        route(_core.decode_sync(data))
    before = sample()
    for i in range(n):
        route(_core.decode_sync(data))
        if i % 500 == 499:
            print(f"  {i + 1} decodes, RSS {rss_mib():.0f} MiB", flush=True)
    return check(f"{n} decodes of {len(data) / 1e6:.0f} MB", before, sample())


async def clients(rounds: int) -> bool:
    body = {
        "next_batch": "s",
        "rooms": {"join": {"!r:x": {"timeline": {"events": []}}}},
    }
    with fake_homeserver() as hs:
        hs.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        hs.route("/_matrix/client/v3/sync", Answer(body=body, delay=0.05))

        async def one_round() -> None:
            batches: asyncio.Queue[object] = asyncio.Queue()
            cs = [MatrixClient(hs.base_url, "t", user_id="@me:x") for _ in range(100)]
            for c in cs:
                c.start_sync(batches.put_nowait, lambda e, f: None, None, 1000)
            for _ in range(100):
                await asyncio.wait_for(batches.get(), 30)
            for c in cs:
                c.stop_sync()
            await asyncio.sleep(0.1)  # the engine confirms each stop
            with hs._lock:  # the scripted server logs every request: not ours
                hs.seen.clear()

        for _ in range(3):
            await one_round()
        before = sample()
        for _ in range(rounds):
            await one_round()
        return check(f"{rounds} rounds of 100 clients", before, sample())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--decodes", type=int, default=10_000)
    p.add_argument("--client-rounds", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="the 4 MB response")
    args = p.parse_args()
    tracemalloc.start()
    ok = asyncio.run(clients(args.client_rounds))
    ok = decodes(args.decodes, args.quick) and ok
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
