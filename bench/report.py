"""docs/benchmarks.md and its plot, from one run's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import gateway_report, hostile_bench, profile_report

Row = dict[str, Any]

TARGET_NIO = 20.0
TARGET_MAUTRIX = 5.0
# matridge's decode + walk at most this many times msgspec's with typed
# Structs, the fastest peer (issue 17).
TARGET_MSGSPEC = 1.5
MSGSPEC_STRUCTS = "msgspec (Structs)"
TARGET_STALL_MS = 2.0
TARGET_IDLE_ACCOUNTS = 10_000
# The engine's CPU per wake-up at the most idle accounts, over that at the
# fewest: below this, a wake-up's work does not grow with idle accounts.
TARGET_IDLE_GROWTH = 2.0
TARGET_HISTORY_EVENTS = 1000
TARGET_HISTORY_MS = 500.0
HISTORY_FLOOR = "aiohttp + orjson"
TARGET_BACKFILL_EVENTS = 1000


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ms(v: float) -> str:
    return f"{v:,.1f}" if v >= 10 else f"{v:.2f}"


def _by_name(rows: list[Row]) -> dict[str, Row]:
    return {r["name"]: r for r in rows}


def _by_impl(rows: list[Row]) -> dict[str, Row]:
    return {r["impl"]: r for r in rows}


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


def targets(results: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    dec = _by_name(results.get("decode", []))
    mine = dec.get("matridge")
    if mine:
        for peer, want in (("matrix-nio", TARGET_NIO), ("mautrix", TARGET_MAUTRIX)):
            if peer in dec:
                ratio = dec[peer]["total_ms"] / mine["total_ms"]
                rows.append(
                    [
                        f"≥ {want:.0f}x faster than {peer} (decode + walk)",
                        f"{ratio:.1f}x",
                        _verdict(ratio >= want),
                    ]
                )
        if MSGSPEC_STRUCTS in dec:
            ratio = mine["total_ms"] / dec[MSGSPEC_STRUCTS]["total_ms"]
            rows.append(
                [
                    f"within {TARGET_MSGSPEC}x of msgspec with typed Structs "
                    "(decode + walk)",
                    f"{ratio:.2f}x its time",
                    _verdict(ratio <= TARGET_MSGSPEC),
                ]
            )
        if "orjson" in dec:
            ratio = dec["orjson"]["total_ms"] / mine["total_ms"]
            rows.append(
                [
                    "not slower than `orjson.loads` (decode + walk)",
                    f"{ratio:.2f}x orjson's speed",
                    _verdict(ratio >= 1.0),
                ]
            )
    engine = [
        s
        for s in results.get("stall", [])
        if s["name"] == "matridge" and s["mode"] == "engine"
    ]
    if engine:
        s = engine[0]
        before = s.get("max_gap_before_free_ms")
        rows.append(
            [
                f"loop stall under {TARGET_STALL_MS:.0f} ms (engine path, 1 ms ticks)",
                f"{_ms(s['max_stall_ms'])} ms late at worst "
                f"(longest gap {_ms(s['max_gap_ms'])} ms, of which "
                f"{_ms(s['free_ms'])} ms freeing the batch"
                + (
                    f"; longest gap before that {_ms(before)} ms)"
                    if before is not None
                    else ")"
                ),
                _verdict(s["max_stall_ms"] < TARGET_STALL_MS),
            ]
        )
    rows.append(idle_target(results))
    rows += history_targets(results)
    rows += backfill_targets(results)
    if "gateways" in results:
        rows += gateway_report.targets(results["gateways"])
    return rows


def backfill_targets(results: dict[str, Any]) -> list[list[str]]:
    want = (
        f"time and peak memory to backfill {TARGET_BACKFILL_EVENTS} events "
        "from Synapse into slidge's archive (no number set: reported)"
    )
    bf = results.get("backfill")
    if not bf:
        return [[want, "no backfill run", _verdict(None)]]
    if bf["events"] < TARGET_BACKFILL_EVENTS:
        return [[want, "this run backfilled fewer events", _verdict(None)]]
    return [
        [
            want,
            f"{bf['archive_s']:.2f} s median from the MUC join to a complete "
            f"archive, {bf['cpu_s']:.2f} s of gateway CPU; gateway peak RSS "
            f"+{bf['per_run'][0]['peak_mib']:.1f} MiB for its first backfill, "
            f"+{bf['peak_mib']:.1f} MiB median "
            f"({bf['peak_abs_mib']:.0f} MiB in all)",
            "reported",
        ]
    ]


def history_targets(results: dict[str, Any]) -> list[list[str]]:
    hist = _by_impl(results.get("history", []))
    mine = hist.get("matridge")
    want = f"{TARGET_HISTORY_EVENTS} history events fetched and decoded"
    if mine is None or mine["asked"] < TARGET_HISTORY_EVENTS:
        got = "this run fetched fewer events" if mine else "no history run"
        return [
            [f"{want} in under {TARGET_HISTORY_MS / 1e3:.1f} s", got, _verdict(None)],
            [f"{want} faster than matrix-nio", got, _verdict(None)],
        ]
    rows = [
        [
            f"{want} in under {TARGET_HISTORY_MS / 1e3:.1f} s (loopback Synapse)",
            f"{_ms(mine['median_ms'])} ms median, {_ms(mine['best_ms'])} ms best",
            _verdict(mine["median_ms"] < TARGET_HISTORY_MS),
        ]
    ]
    nio = hist.get("matrix-nio")
    if nio:
        ratio = nio["median_ms"] / mine["median_ms"]
        rows.append(
            [
                f"{want} faster than matrix-nio",
                f"{ratio:.2f}x ({_ms(nio['median_ms'])} ms for matrix-nio)",
                _verdict(ratio > 1.0),
            ]
        )
    return rows


def decode_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = results.get("decode", [])
    mine = _by_name(rows).get("matridge")
    out = []
    for r in sorted(rows, key=lambda r: r["total_ms"]):
        rel = f"{r['total_ms'] / mine['total_ms']:.2f}" if mine else "n/a"
        out.append(
            [
                r["name"],
                _ms(r["decode_ms"]),
                _ms(r["walk_ms"]),
                _ms(r["total_ms"]),
                _ms(r["best_ms"]),
                rel,
                f"{r['peak_mib']:.1f}",
                f"{r['events']:,}",
                f"{r['bodies']:,}",
                str(r["reps"]),
            ]
        )
    return out


def stall_rows(results: dict[str, Any]) -> list[list[str]]:
    order = {"engine": 0, "executor": 1, "inline": 2}
    rows = sorted(
        results.get("stall", []), key=lambda s: (order[s["mode"]], s["max_gap_ms"])
    )
    return [
        [
            s["name"],
            s["mode"],
            _ms(s["max_gap_ms"]),
            _ms(s["max_stall_ms"]),
            _ms(s["p99_gap_ms"]),
            str(s["gaps_over_2ms"]),
            _ms(s["elapsed_ms"]),
            _ms(s["free_ms"]),
            _ms(s["max_gap_before_free_ms"]) if "max_gap_before_free_ms" in s else "",
            _ms(s["idle_max_gap_ms"]),
        ]
        for s in rows
    ]


def idle_target(results: dict[str, Any]) -> list[str]:
    want = (
        f"{TARGET_IDLE_ACCOUNTS:,} idle accounts on one engine thread, its work "
        "per wake-up independent of the number of idle accounts"
    )
    mine = sorted(
        (r for r in results.get("idle", []) if r["impl"] == "matridge"),
        key=lambda r: r["accounts"],
    )
    if not mine or mine[-1]["accounts"] < TARGET_IDLE_ACCOUNTS:
        return [want, "this run had fewer accounts", _verdict(None)]
    low, high = mine[0], mine[-1]
    added = high["threads"] - high["baseline_threads"]
    per_wake = high["engine_cpu_us_per_wakeup"], low["engine_cpu_us_per_wakeup"]
    growth = per_wake[0] / per_wake[1]
    return [
        want,
        f"{high['accounts']:,} accounts, {added} thread(s) added; engine CPU per "
        f"wake-up {per_wake[0]:.0f} µs at {high['accounts']:,} accounts, "
        f"{per_wake[1]:.0f} µs at {low['accounts']:,} ({growth:.2f} times); "
        f"per answered /sync {high['engine_cpu_us_per_sync']:.0f} and "
        f"{low['engine_cpu_us_per_sync']:.0f} µs",
        _verdict(added == 1 and growth < TARGET_IDLE_GROWTH),
    ]


def _opt(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def idle_rows(results: dict[str, Any]) -> list[list[str]]:
    return [
        [
            r["impl"],
            f"{r['accounts']:,}",
            f"{r['threads']} ({r['threads'] - r['baseline_threads']:+d})",
            str(r["fds_added"]),
            f"{r['rss_mib']:.1f}",
            f"{r['rss_kib_per_account']:.0f}",
            f"{r['startup_s']:.2f}",
        ]
        for r in results.get("idle", [])
    ]


def idle_cpu_rows(results: dict[str, Any]) -> list[list[str]]:
    return [
        [
            r["impl"],
            f"{r['accounts']:,}",
            f"{r['idle_cpu_ms_per_s']:.2f}",
            _opt(r["idle_engine_cpu_ms_per_s"], ".3f"),
            _opt(r["idle_engine_wakeups_per_s"], ".1f"),
            str(r["answered"]),
            f"{r['cpu_us_per_sync']:.0f}",
            _opt(r["engine_cpu_us_per_sync"], ".0f"),
            _opt(r["engine_wakeups"], "d"),
            _opt(r["engine_cpu_us_per_wakeup"], ".0f"),
        ]
        for r in results.get("idle", [])
    ]


def history_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = results.get("history", [])
    mine = _by_impl(rows).get("matridge")
    floor = _by_impl(rows).get(HISTORY_FLOOR)
    return [
        [
            r["impl"],
            _ms(r["median_ms"]),
            _ms(r["best_ms"]),
            f"{r['median_ms'] / mine['median_ms']:.2f}" if mine else "n/a",
            f"{r['median_ms'] - floor['median_ms']:+.1f}" if floor else "n/a",
            f"{r['peak_mib']:.1f}",
            str(r["pages"]),
            f"{r['fetched']:,}",
            f"{r['events']:,}",
            f"{r['bodies']:,}",
            str(r["reps"]),
        ]
        for r in sorted(rows, key=lambda r: r["median_ms"])
    ]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = sorted(
        results.get("history", []), key=lambda r: r["median_ms"], reverse=True
    )
    nrows = 3 if history else 2
    fig, axes = plt.subplots(nrows, 2, figsize=(13, 4.5 * nrows))
    highlight = "#c0392b"
    other = "#5d6d7e"

    dec = sorted(results.get("decode", []), key=lambda r: r["total_ms"], reverse=True)
    if dec:
        names = [r["name"] for r in dec]
        colors = [highlight if n == "matridge" else other for n in names]
        ax = axes[0][0]
        ax.barh(names, [r["decode_ms"] for r in dec], color=colors, label="decode")
        ax.barh(
            names,
            [r["walk_ms"] for r in dec],
            left=[r["decode_ms"] for r in dec],
            color=colors,
            alpha=0.45,
            label="walk",
        )
        ax.set_xscale("log")
        ax.set_xlim(left=min(r["decode_ms"] for r in dec) / 2)
        ax.set_xlabel("ms, median (log scale); light part: the routing walk")
        ax.set_title("Bytes to routed events")
        ax = axes[0][1]
        ax.barh(names, [r["peak_mib"] for r in dec], color=colors)
        ax.set_xlabel("MiB over the baseline")
        ax.set_title("Peak RSS while decoding and walking")

    stall = results.get("stall", [])
    if stall:
        ax = axes[1][0]
        names = sorted({s["name"] for s in stall})
        modes = ["engine", "executor", "inline"]
        width = 0.27
        for i, mode in enumerate(modes):
            by = {s["name"]: s for s in stall if s["mode"] == mode}
            ys = [j + (i - 1) * width for j in range(len(names))]
            xs = [by[n]["max_gap_ms"] if n in by else 0 for n in names]
            ax.barh(ys, xs, height=width, label=mode)
        ax.set_yticks(range(len(names)), names)
        ax.set_xscale("log")
        ax.set_xlim(left=0.5)
        ax.axvline(TARGET_STALL_MS + 1, color=highlight, ls="--", lw=1)
        ax.set_xlabel("longest heartbeat gap, ms (log; dashed: 1 ms tick + 2 ms)")
        ax.set_title("Event-loop stall")
        ax.legend()

    idle = results.get("idle", [])
    if idle:
        ax = axes[1][1]
        for impl, color in (("matridge", highlight), ("matrix-nio", other)):
            rows = [r for r in idle if r["impl"] == impl]
            if rows:
                ax.plot(
                    [r["accounts"] for r in rows],
                    [r["rss_kib_per_account"] for r in rows],
                    "o-",
                    color=color,
                    label=impl,
                )
        ax.set_xscale("log")
        ax.set_xlabel("idle accounts (log)")
        ax.set_ylabel("KiB of RSS per account")
        ax.set_title("Idle long-polls")
        ax.legend()

    if history:
        names = [r["impl"] for r in history]
        colors = [highlight if n == "matridge" else other for n in names]
        ax = axes[2][0]
        ax.barh(names, [r["median_ms"] for r in history], color=colors)
        ax.plot(
            [r["best_ms"] for r in history], names, "k|", markersize=14, label="best"
        )
        if history[0]["asked"] >= TARGET_HISTORY_EVENTS:
            ax.axvline(TARGET_HISTORY_MS, color=highlight, ls="--", lw=1)
        ax.set_xlabel(
            "ms, median (tick: best"
            + (
                f"; dashed: the {TARGET_HISTORY_MS:.0f} ms target)"
                if history[0]["asked"] >= TARGET_HISTORY_EVENTS
                else ")"
            )
        )
        ax.set_title(f"Fetch {history[0]['asked']:,} history events, then walk them")
        ax = axes[2][1]
        ax.barh(names, [r["peak_mib"] for r in history], color=colors)
        ax.set_xlabel("MiB over the baseline")
        ax.set_title("Peak RSS while fetching history")

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(results: dict[str, Any], image: str) -> str:
    cfg = results["config"]
    parts = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`): every figure below comes "
        "from **one run** on the machine described at the end, while other work "
        "may have shared it; treat differences of a few per cent as noise. "
        "Benchmarks are not tests: nothing asserts a timing.",
    ]
    if cfg.get("quick"):
        parts += [
            "",
            "**Quick mode** (`BENCH_QUICK=1`): a small response and few "
            "accounts; these are not the reference figures.",
        ]
    parts += ["", "## Targets", ""]
    parts.append(_table(["Target", "Measured", "Verdict"], targets(results)))
    if results.get("decode"):
        parts += [
            "",
            "## Decode: bytes to routable events",
            "",
            f"Input: a generated `/sync` response (`bench/syncgen.py`, seed "
            f"{cfg['seed']}), {cfg['size_mb']:.1f} MB of compact UTF-8 JSON: "
            f"{cfg['joined_rooms']} joined rooms with "
            f"{cfg['timeline_events']:,} timeline events (text, notices, emotes, "
            "HTML-formatted messages, images, files, replies, edits, reactions, "
            "redactions, redacted and encrypted events, membership, name, topic "
            "and power-level changes), their state, typing and receipts, room and "
            "global account data, presence, invites and left rooms.",
            "",
            "Each decoder runs in a fresh process. *Decode* turns the bytes into "
            "the library's own result; the *walk* then reads, for every state and "
            "timeline event, the room id, type, sender, event id, body and msgtype "
            "(what the plugin routes on). The time columns are medians of the "
            "repetitions, *best* the fastest decode + walk; *x matridge* is the "
            "median total over matridge's. *Peak RSS* is the process's high-water "
            "mark during the first decode + walk over a baseline that already "
            "holds the bytes and the imported library (VmHWM after resetting it "
            "through /proc/self/clear_refs).",
            "",
            "- matridge: `_core.decode_sync` (its own in-place JSON parser into "
            "an arena, then the decoder, with the GIL released; bodies are "
            "measured there for one-pass strs), then the lazy "
            "`SyncBatch`/`Room`/`Event` views, which hand out one interned str "
            "per protocol word (event types, msgtypes, memberships) and build "
            "the other strings when read;",
            "- matrix-nio: `json.loads` then `SyncResponse.from_dict`, as "
            "`AsyncClient.sync` does (it validates against its JSON schemas);",
            "- mautrix: `json.loads` then the deserialisation of "
            "`Syncer.handle_sync` (`Event`/`StateEvent`/`EphemeralEvent`/... "
            "`.deserialize` per event, `room_id` set on each), without handlers;",
            "- msgspec (Structs): typed Structs that declare only the routed "
            "fields, its best case; msgspec (dicts), orjson, json: plain "
            "decoding, then the walk over dicts.",
            "",
            _table(
                [
                    "Decoder",
                    "Decode ms",
                    "Walk ms",
                    "Total ms",
                    "Best ms",
                    "x matridge",
                    "Peak RSS MiB",
                    "Events",
                    "Bodies",
                    "Runs",
                ],
                decode_rows(results),
            ),
            "",
            "*Events* and *Bodies* count what each walk found: they should agree; "
            "where a library's model drops or hides an event or a body, they "
            "do not (matrix-nio drops the stripped `m.room.join_rules` of each "
            "invite, having no class for it). The cyclic GC stays enabled, as "
            "in a gateway: decoders that build many Python containers also "
            "pay for the collections their allocations trigger, which grows "
            "faster than the input.",
        ]
    if results.get("stall"):
        parts += [
            "",
            "## Event-loop stall",
            "",
            "An asyncio heartbeat sleeps 1 ms at a time and records the gap "
            "between its ticks while the same response is handled, each run in a "
            "fresh process. The window ends when every event is routed and the "
            "decoded response dropped (freeing it is the loop's work too). The "
            "walk hands the loop back every 200 events, as the plugin does when "
            "it awaits.",
            "",
            "- *engine* (matridge): a local HTTP server in another process "
            "(`bench/syncserver.py`) serves the body; `start_sync` fetches, parses "
            "and decodes it on the engine thread; `on_batch` runs on the loop. "
            "Started and warmed up (one request) before the window, as in a "
            "running gateway;",
            "- *inline*: decode on the loop, as a naive client does;",
            "- *executor*: decode in `loop.run_in_executor`; the GIL still "
            "competes with the loop unless the decoder releases it.",
            "",
            "*Max late* is the longest gap minus the 1 ms tick. *Free* is how "
            "long dropping the decoded response took on the loop, and the next "
            "column the longest gap that ended before that. *Idle max* is the "
            "longest gap of the same heartbeat over 0.5 s with nothing to do, "
            "just before: the noise floor of the machine.",
            "",
            _table(
                [
                    "Decoder",
                    "Mode",
                    "Longest gap ms",
                    "Max late ms",
                    "p99 gap ms",
                    "Gaps > 2 ms",
                    "Elapsed ms",
                    "Free ms",
                    "Longest gap before the free ms",
                    "Idle max ms",
                ],
                stall_rows(results),
            ),
        ]
    if results.get("idle"):
        parts += [
            "",
            "## Idle accounts",
            "",
            "N accounts long-poll `/sync` against a stand-in homeserver "
            "(`bench/idleserver.py`: asyncio, another process on the same "
            "machine) that holds every long-poll until the server is told to "
            "answer, so the clients sit idle as long as the run needs; both "
            "processes raise their soft RLIMIT_NOFILE to the hard limit, which "
            "10,000 sockets need (`ulimit -Hn` must allow it). Each (library, N) "
            "runs in a fresh process. *Start-up* is from the first sync request "
            "until the server holds all N second long-polls (every account past "
            "its first batch); "
            f"{cfg['settle_s']:.0f} s later the run counts its threads "
            "(/proc/self/task), the descriptors it opened and its RSS over the "
            "baseline taken before any client existed. matridge: `MatrixClient` "
            "+ `start_sync`; matrix-nio: one `AsyncClient` per account looping on "
            "`sync()`.",
            "",
            _table(
                [
                    "Library",
                    "Accounts",
                    "Threads (added)",
                    "Descriptors added",
                    "RSS MiB",
                    "KiB per account",
                    "Start-up s",
                ],
                idle_rows(results),
            ),
            "",
            "CPU time, of the whole process and of matridge's engine thread "
            "alone (its thread CPU clock): *idle* over "
            f"{cfg.get('idle_s', 5):.0f} s in which nothing moves; then for "
            f"{cfg.get('traffic_s', 5):.0f} s the server answers "
            f"{cfg.get('traffic_per_s', 50)} held long-polls per second (each "
            "account answered polls again at once), and the CPU is divided by "
            "the /sync answers and by the engine's wake-ups (its voluntary "
            "context switches: one per wait). If a wake-up's work does not grow "
            "with the idle accounts, the engine columns "
            "stay flat from 100 to 10,000 accounts.",
            "",
            _table(
                [
                    "Library",
                    "Accounts",
                    "Idle CPU ms/s",
                    "Idle engine CPU ms/s",
                    "Idle engine wake-ups/s",
                    "/sync answered",
                    "CPU µs per /sync",
                    "Engine CPU µs per /sync",
                    "Engine wake-ups",
                    "Engine CPU µs per wake-up",
                ],
                idle_cpu_rows(results),
            ),
        ]
    if results.get("history"):
        parts += ["", *history_section(results)]
    if results.get("backfill"):
        parts += ["", *backfill_section(results["backfill"])]
    if results.get("gateways"):
        stamp = results.get("measured", {}).get("gateways")
        parts += ["", *gateway_report.section(results["gateways"], stamp)]
        parts += ["", *profile_report.section()]
    if results.get("hostile"):
        parts += [
            "",
            "## Hostile rooms",
            "",
            "One /sync body built to be expensive, applied to a fresh room cache "
            "or decoded, on the engine thread every account shares (median ms, "
            "bench/hostile_bench.py). Lists carry every item twice.",
            "",
            _table(
                ["Case", "Items", "Median ms"], hostile_bench.rows(results["hostile"])
            ),
        ]
    parts += ["", f"![Benchmark plots]({image})", "", "## Machine", ""]
    parts.append(
        _table(["", ""], [[k, f"`{v}`"] for k, v in results["machine"].items()])
    )
    measured = results.get("measured", {})
    if len(set(measured.values())) > 1:
        parts += [
            "",
            "The parts were measured by separate runs (`--only`); the table "
            "describes the latest. Each part's run (date UTC, matridge commit):",
            "",
            _table(["Part", "Measured"], [[p, f"`{m}`"] for p, m in measured.items()]),
        ]
    return "\n".join(parts) + "\n"


def history_section(results: dict[str, Any]) -> list[str]:
    rows = results["history"]
    asked = rows[0]["asked"]
    return [
        "## History: the last events of a room",
        "",
        "A real Synapse (`tests.harness.synapse`, SQLite, loopback, on the same "
        "machine, so the server's own time is in every figure) holds a room "
        f"with {asked:,} events from two users, sent before the measurement "
        "(`bench/history_bench.py`): text, HTML-formatted messages, replies, "
        "edits, reactions and redactions. Each fetcher runs in a fresh process: "
        "one warm-up request (connection open), a first fetch with the peak "
        "RSS reset just before it, then the timed runs; one untimed pass before "
        "them all warms Synapse's caches. The time is from the first request "
        "to the end of a walk that reads every returned event's event id, "
        "type, sender and body. Pages of 100 events, newest first.",
        "",
        f"- matridge: `await MatrixClient.history(room_id, limit={asked})`: "
        "every page fetched, parsed and decoded on the engine thread, then "
        "aggregated there (edits applied, reactions gathered, redactions and "
        "redacted events dropped), and the lazy `Event` views of "
        "`History.events`;",
        "- matrix-nio: the `AsyncClient.room_messages(room_id, start=end, "
        "limit=100, direction=MessageDirection.back)` loop, following `end`, "
        "that a nio user writes; no aggregation;",
        "- aiohttp + orjson: the same loop over plain dicts with matridge's "
        "filter (`lazy_load_members`), a floor: what the server and the wire "
        "cost with next to no client work.",
        "",
        "*Fetched* counts the raw events of the pages, *Events* what the caller "
        "gets (fewer for matridge: edits, reactions and redactions are folded "
        "into the events they target), *Bodies* those with a body. *Peak RSS* "
        "is the high-water mark over the baseline during the first fetch + "
        "walk (VmHWM reset through /proc/self/clear_refs). *Over the floor* "
        "is the median minus the floor's: the client's own cost, give or take "
        "the run-to-run noise of the server (about ±10 ms on this machine)."
        + _server_share(rows),
        "",
        _table(
            [
                "Fetcher",
                "Median ms",
                "Best ms",
                "x matridge",
                "Over the floor ms",
                "Peak RSS MiB",
                "Pages",
                "Fetched",
                "Events",
                "Bodies",
                "Runs",
            ],
            history_rows(results),
        ),
    ]


def _server_share(rows: list[Row]) -> str:
    """Where the floor's time goes: the newest page against the later ones."""
    floor = _by_impl(rows).get(HISTORY_FLOOR)
    if floor is None or floor["pages"] < 2 or "first_page_ms" not in floor:
        return ""
    first = floor["first_page_ms"]
    later = (floor["median_ms"] - first) / (floor["pages"] - 1)
    return (
        " The server's time dominates: for the floor, the newest page alone "
        f"takes {_ms(first)} ms (median), each later page (`from` a token, "
        f"deeper in the room) {_ms(later)} ms on average."
    )


def backfill_section(bf: dict[str, Any]) -> list[str]:
    n = bf["events"]

    def row(label: str, r: dict[str, Any]) -> list[str]:
        return [
            label,
            f"{r['archive_s']:.2f}",
            f"{1e3 * r['presence_s']:.0f}",
            f"{r['cpu_s']:.2f}",
            f"{r['peak_mib']:.1f}",
            f"{r['peak_abs_mib']:.0f}",
            f"{1e3 * r['reread_s']:.0f}",
            str(int(r["polls"])),
        ]

    runs = [row(f"run {i + 1}", r) for i, r in enumerate(bf["per_run"])]
    return [
        "## Backfill: a room's history into slidge's archive",
        "",
        "Real Synapse, Prosody and gateway processes (`tests.harness`, loopback, "
        "on the same machine: the servers' time is in the figures, and they "
        "share its cores), the gateway being `slidge --legacy-module=matridge` "
        "without `--debug` (`bench/backfill_bench.py`); one gateway process "
        "serves every run. For each "
        f"run, a fresh room holds {n:,} messages from two users (plain text, "
        "HTML-formatted messages and replies; one in seven by the XMPP user's "
        "own Matrix account), sent before the measurement "
        f"({bf['seed_s']:.1f} s per room, median); a fresh XMPP user registers "
        "with the gateway (Matrix login, first sync) and the gateway is left "
        "to go idle. The time runs from sending the MUC join (asking for no "
        "history-on-join, as a MAM client does) until a MAM (XEP-0313) query "
        f"of the room's archive returns all {n:,} messages, polling every "
        "0.2 s. slidge fills the archive on the first MAM query (matridge's "
        "`backfill`: `MatrixClient.history`, then each event relayed into the "
        "archive at its original time) and answers that query once the fill "
        "is done, so the figure includes reading the archive back; *Re-read* "
        "is one more full MAM read afterwards, that reading alone. The "
        "gateway's *CPU* (utime + stime, every thread) and *peak RSS* (VmHWM, "
        "reset through /proc/PID/clear_refs just before the join; *over* the "
        "RSS then, and in all) cover the timed window. The first run is the "
        "gateway's first backfill: its heap grows for it, and the later runs "
        "reuse that memory, hence their smaller peaks over the start.",
        "",
        "There is no peer to compare with: no other Matrix gateway (for slidge "
        "or another XMPP component) runs on this machine, so these figures are "
        "reported on their own, without a target.",
        "",
        _table(
            [
                "Run",
                "Join to full archive s",
                "Self-presence ms",
                "Gateway CPU s",
                "Peak RSS over MiB",
                "Peak RSS MiB",
                "Re-read ms",
                "MAM queries",
            ],
            [*runs, row(f"**median** of {bf['runs']}", bf)],
        ),
    ]
