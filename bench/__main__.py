"""Runs the benchmarks and rewrites docs/benchmarks.md and its plot.

    python -m bench            # the full run (tens of MB, 100 and 1000 accounts)
    python -m bench --quick    # small sizes, for development
    python -m bench --only decode,stall
    python -m bench --only history
    python -m bench --only backfill
    python -m bench --only hostile
    python -m bench --only gateways   # matridge and upstream matridge, end to end
    python -m bench --only gateways --scenarios relay,login

The raw results also go to build/bench/results.json (``--only`` replaces its
parts there when the sizes match); ``--render`` rewrites the page from that
file without measuring again.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from . import (
    backfill_bench,
    decode_bench,
    gateway_bench,
    gateway_report,
    history_bench,
    hostile_bench,
    idle_bench,
    machine,
    report,
    stall_bench,
    syncgen,
)
from .procstat import ROOT

CACHE = ROOT / "build" / "bench"
DOCS = ROOT / "docs"
PARTS = ("decode", "stall", "idle", "history", "backfill", "hostile", "gateways")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes")
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--nio-max",
        type=int,
        default=1000,
        help="largest account count for matrix-nio in the idle benchmark",
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(gateway_bench.SCENARIOS),
        help="the gateway part's scenarios (comma-separated)",
    )
    ap.add_argument("--render", action="store_true", help="only rewrite the page")
    args = ap.parse_args(argv)
    raw = CACHE / "results.json"
    if args.render:
        results: dict[str, Any] = json.loads(raw.read_text())
    else:
        results = measure(args)
        stamp = _stamp(results["machine"])
        results["measured"] = {p: stamp for p in PARTS if p in results}
        if raw.exists() and set(results) != {"config", "machine", *PARTS}:
            # A partial run replaces its parts of the last run of the same kind.
            last = json.loads(raw.read_text())
            if last["config"] == results["config"]:
                earlier = last.get("measured") or {
                    p: _stamp(last["machine"]) for p in PARTS if p in last
                }
                measured = {**earlier, **results["measured"]}
                gateways = _merge_gateways(
                    last.get("gateways"), results.get("gateways")
                )
                results = {**last, **results, "measured": measured}
                if gateways is not None:
                    results["gateways"] = gateways
        CACHE.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(results, indent=1))
    image = DOCS / "benchmarks.png"
    report.plot(results, image)
    gateway_report.plot(results.get("gateways"), DOCS / gateway_report.IMAGE)
    (DOCS / "benchmarks.md").write_text(report.markdown(results, image.name))
    print(f"wrote {DOCS / 'benchmarks.md'} and {image}", file=sys.stderr)


def _merge_gateways(
    last: dict[str, Any] | None, new: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A gateway run of some scenarios (--scenarios) keeps the last run's
    others, when both ran the same sizes."""
    if new is None or last is None or last.get("sizes") != new.get("sizes"):
        return new
    return {**last, **new, "when": {**last.get("when", {}), **new.get("when", {})}}


def _stamp(machine_info: dict[str, str]) -> str:
    """When and at which commit a part was measured."""
    return f"{machine_info.get('Date (UTC)', '?')}, {machine_info.get('matridge', '?')}"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts: {', '.join(sorted(unknown))}")
    size = syncgen.QUICK if args.quick else syncgen.FULL
    idle_sizes = [50] if args.quick else [100, 1000, 10_000]
    nio_sizes = [n for n in idle_sizes if n <= args.nio_max]
    print(f"generating the /sync response ({size.label})", file=sys.stderr)
    path = syncgen.cached(args.seed, size, CACHE)
    results: dict[str, Any] = {
        "config": {
            "quick": args.quick,
            "seed": args.seed,
            "size_mb": path.stat().st_size / 1e6,
            "joined_rooms": size.joined_rooms,
            "timeline_events": size.timeline_events,
            "settle_s": idle_bench.SETTLE_S,
            "idle_s": idle_bench.IDLE_S,
            "traffic_per_s": idle_bench.TRAFFIC_PER_S,
            "traffic_s": idle_bench.TRAFFIC_S,
        },
        "machine": machine.describe(),
    }
    if "decode" in parts:
        reps, slow = (5, 2) if args.quick else (10, 3)
        print("decode benchmark", file=sys.stderr)
        results["decode"] = [r.__dict__ for r in decode_bench.run(path, reps, slow)]
    if "stall" in parts:
        print("loop-stall benchmark", file=sys.stderr)
        results["stall"] = [r.__dict__ for r in stall_bench.run(path)]
    if "idle" in parts:
        print("idle-scale benchmark", file=sys.stderr)
        results["idle"] = [r.__dict__ for r in idle_bench.run(idle_sizes, nio_sizes)]
    if "history" in parts:
        count, reps = (
            (history_bench.QUICK_EVENTS, 7)
            if args.quick
            else (history_bench.FULL_EVENTS, 15)
        )
        print(f"history benchmark ({count} events)", file=sys.stderr)
        results["history"] = [
            r.__dict__ for r in history_bench.run(count, reps, args.seed, CACHE)
        ]
    if "backfill" in parts:
        count, runs = (
            (backfill_bench.QUICK_EVENTS, backfill_bench.QUICK_RUNS)
            if args.quick
            else (backfill_bench.FULL_EVENTS, backfill_bench.FULL_RUNS)
        )
        print(f"backfill benchmark ({count} events, {runs} runs)", file=sys.stderr)
        results["backfill"] = backfill_bench.run(count, runs, args.seed, CACHE).__dict__
    if "hostile" in parts:
        print("hostile-room benchmark", file=sys.stderr)
        sizes = (1024,) if args.quick else hostile_bench.SIZES
        results["hostile"] = [r.__dict__ for r in hostile_bench.run(sizes=sizes)]
    if "gateways" in parts:
        print("gateway benchmarks (matridge and upstream matridge)", file=sys.stderr)
        results["gateways"] = gateway_bench.run(
            args.quick,
            args.seed,
            CACHE,
            tuple(s for s in args.scenarios.split(",") if s),
        )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
