"""Decode benchmark: from the bytes of a /sync response to every event routed.

Each decoder runs in its own fresh interpreter (``python -m
bench.decode_bench NAME FILE REPS``): first one decode + walk with the peak
RSS reset just before it (peak over a baseline that already holds the
bytes and the imported library), then REPS timed repetitions.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import procstat
from .decoders import DECODERS, total


@dataclass(frozen=True)
class DecodeResult:
    name: str
    events: int
    bodies: int
    body_chars: int
    decode_ms: float  # median
    walk_ms: float  # median
    total_ms: float  # median of decode + walk
    best_ms: float  # fastest decode + walk
    peak_mib: float  # peak RSS over the baseline, first run
    reps: int


def _import_library(name: str) -> None:
    """Imports outside the measurement (matridge's package pulls in slidge)."""
    mods = {
        "matridge": "matridge._core",
        "orjson": "orjson",
        "msgspec (Structs)": "bench.msgspec_model",
        "msgspec (dicts)": "msgspec",
        "mautrix": "mautrix.types",
        "matrix-nio": "nio",
    }
    if name in mods:
        __import__(mods[name])


def measure(name: str, path: Path, reps: int) -> DecodeResult:
    dec = DECODERS[name]
    _import_library(name)
    data = path.read_bytes()
    gc.collect()
    baseline = procstat.rss_bytes()
    if not procstat.reset_peak_rss():
        raise RuntimeError("cannot reset the peak RSS (/proc/self/clear_refs)")
    decoded = dec.decode(data)
    events, bodies, chars = total(dec.walk(decoded))
    peak = procstat.peak_rss_bytes() - baseline
    del decoded
    decode_s: list[float] = []
    walk_s: list[float] = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        decoded = dec.decode(data)
        t1 = time.perf_counter()
        total(dec.walk(decoded))
        t2 = time.perf_counter()
        del decoded
        decode_s.append(t1 - t0)
        walk_s.append(t2 - t1)
    sums = [d + w for d, w in zip(decode_s, walk_s, strict=True)]
    return DecodeResult(
        name=name,
        events=events,
        bodies=bodies,
        body_chars=chars,
        decode_ms=1e3 * statistics.median(decode_s),
        walk_ms=1e3 * statistics.median(walk_s),
        total_ms=1e3 * statistics.median(sums),
        best_ms=1e3 * min(sums),
        peak_mib=peak / 2**20,
        reps=reps,
    )


def run(path: Path, reps: int, slow_reps: int) -> list[DecodeResult]:
    """Every decoder, each in a fresh process; the slow peers get fewer reps."""
    results = []
    for name in DECODERS:
        n = slow_reps if name in ("mautrix", "matrix-nio") else reps
        print(f"  decode: {name}, {n} runs", file=sys.stderr, flush=True)
        raw = procstat.run_worker("bench.decode_bench", name, str(path), str(n))
        results.append(DecodeResult(**raw))
    return results


def main(argv: list[str]) -> None:
    name, path, reps = argv
    procstat.emit(measure(name, Path(path), int(reps)).__dict__)


if __name__ == "__main__":
    main(sys.argv[1:])
