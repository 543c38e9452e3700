"""Loop-stall benchmark: the longest gap a 1 ms asyncio heartbeat sees while a
large /sync response is decoded and every event routed.

Modes, each in a fresh process (``python -m bench.stall_bench MODE NAME FILE``):

- ``engine`` (matridge only): the response comes from a local HTTP server
  (bench/syncserver.py, another process); ``start_sync`` fetches it on the
  engine thread, which parses and decodes it without the GIL; the window
  ends when ``on_batch`` has run and the walk is done.
- ``inline``: the bytes are already in memory; decode on the loop, as a
  naive client does.
- ``executor``: decode in ``loop.run_in_executor`` (a thread), where the GIL
  still competes with the loop unless the decoder releases it.

In every mode the window ends once the decoded response is dropped (its
memory freed on the loop thread). The routing walk runs on the loop and
hands the loop back every 200 events (decoders.CHUNK), as the plugin does
when it awaits.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procstat
from .decode_bench import _import_library
from .decoders import DECODERS, Decoder

TICK_S = 0.001


class Heartbeat:
    """Ticks every TICK_S and records the gaps between ticks while armed."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.ends: list[float] = []  # perf_counter() at the end of each gap
        self.armed = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            if self.armed:
                self.gaps.append(now - last)
                self.ends.append(now)
            last = now

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


@dataclass(frozen=True)
class StallResult:
    name: str
    mode: str
    max_gap_ms: float
    max_stall_ms: float  # max_gap_ms minus the 1 ms tick: how late the loop was
    p99_gap_ms: float
    gaps_over_2ms: int
    ticks: int
    elapsed_ms: float  # start of the work to the end of the walk and free
    free_ms: float  # dropping the decoded response, on the loop
    idle_max_gap_ms: float  # the same heartbeat with nothing to do, first
    max_gap_end_ms: float  # when the longest gap ended, from the start
    max_gap_before_free_ms: float  # the longest gap that ended before the free


class Freed:
    """How long dropping the last reference to a decoded response took: the
    loop pays for freeing it too."""

    seconds = 0.0
    started = 0.0  # perf_counter() when the free began


async def _route_and_drop(dec: Decoder, holder: list[Any]) -> int:
    """Walks holder[0], then drops it (the only reference) and times that."""
    events = 0
    for n, _, _ in dec.walk(holder[0]):
        events += n
        await asyncio.sleep(0)  # the next slice after the loop had a turn
    Freed.started = time.perf_counter()
    holder.clear()
    Freed.seconds = time.perf_counter() - Freed.started
    return events


def _start_server(path: Path) -> tuple[subprocess.Popen[bytes], int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.syncserver", str(path)],
        cwd=procstat.ROOT,
        env=procstat.worker_env(),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


async def _engine(client: Any) -> int:
    """matridge through its engine thread, fed by the local HTTP server."""
    from matridge.matrix import SyncBatch

    batches: asyncio.Queue[SyncBatch] = asyncio.Queue()
    errors: list[Exception] = []
    client.start_sync(
        batches.put_nowait, lambda e, fatal: errors.append(e), None, 30_000
    )
    try:
        holder = [await asyncio.wait_for(batches.get(), 300)]
        client.sync_ack()
        events = await _route_and_drop(DECODERS["matridge"], holder)
    finally:
        client.stop_sync()
    if errors:
        raise RuntimeError(f"sync failed: {errors[0]!r}")
    return events


def _percentile(values: list[float], pct: float) -> float:
    """Nearest rank: a value that was observed, never an extrapolation."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


async def measure(mode: str, name: str, path: Path, data: bytes) -> StallResult:
    if mode != "engine":
        return await _measure(mode, name, data, None)
    if name != "matridge":
        raise ValueError("the engine mode is matridge's own")
    from matridge.matrix import MatrixClient

    # Outside the measured window, as in a running gateway: the server is
    # up, and the engine thread has started and served a request.
    server, port = _start_server(path)
    try:
        client = MatrixClient(f"http://127.0.0.1:{port}", "bench-token")
        await client.versions()
        return await _measure(mode, name, b"", client)
    finally:
        server.terminate()
        server.wait()


async def _measure(mode: str, name: str, data: bytes, client: Any) -> StallResult:
    dec = DECODERS[name]
    _import_library(name)
    loop = asyncio.get_running_loop()
    beat = Heartbeat()
    beat.start()
    await asyncio.sleep(0.1)
    beat.armed = True
    await asyncio.sleep(0.5)
    beat.armed = False
    idle_max = max(beat.gaps, default=0.0)
    beat.gaps, beat.ends = [], []
    beat.armed = True
    t0 = time.perf_counter()
    if mode == "engine":
        await _engine(client)
    elif mode == "inline":
        await _route_and_drop(dec, [dec.decode(data)])
    elif mode == "executor":
        await _route_and_drop(dec, [await loop.run_in_executor(None, dec.decode, data)])
    else:
        raise ValueError(f"unknown mode {mode}")
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(TICK_S * 3)  # the tick that ends the last gap
    beat.armed = False
    await beat.stop()
    gaps = beat.gaps
    return StallResult(
        name=name,
        mode=mode,
        max_gap_ms=1e3 * max(gaps),
        max_stall_ms=1e3 * (max(gaps) - TICK_S),
        p99_gap_ms=1e3 * _percentile(gaps, 99),
        gaps_over_2ms=sum(g > 0.002 for g in gaps),
        ticks=len(gaps),
        elapsed_ms=1e3 * elapsed,
        free_ms=1e3 * Freed.seconds,
        idle_max_gap_ms=1e3 * idle_max,
        max_gap_end_ms=1e3 * (beat.ends[gaps.index(max(gaps))] - t0),
        max_gap_before_free_ms=1e3
        * max(
            (g for g, end in zip(gaps, beat.ends, strict=True) if end <= Freed.started),
            default=0.0,
        ),
    )


def run(path: Path) -> list[StallResult]:
    runs = [("engine", "matridge")]
    for mode in ("inline", "executor"):
        runs += [(mode, name) for name in DECODERS]
    results = []
    for mode, name in runs:
        print(f"  stall: {name} ({mode})", file=sys.stderr, flush=True)
        raw = procstat.run_worker("bench.stall_bench", mode, name, str(path))
        results.append(StallResult(**raw))
    return results


def main(argv: list[str]) -> None:
    mode, name, path = argv
    data = Path(path).read_bytes() if mode != "engine" else b""
    procstat.emit(asyncio.run(measure(mode, name, Path(path), data)).__dict__)


if __name__ == "__main__":
    main(sys.argv[1:])
