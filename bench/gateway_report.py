"""The gateway-level part of docs/benchmarks.md (both gateways side by side,
each target as a ratio to upstream matridge in the same run) and its plot
of the latency distributions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .relay_bench import LOST_AFTER_S

IMAGE = "benchmarks-gateways.png"

# Issue 17, item 3: each a ratio to upstream in the same run.
CPU_RATIO = 1 / 3  # CPU per relayed message, at most
LATENCY_RATIO = 1 / 2  # latency above the floor, at most
BACKFILL_SPEEDUP = 3.0  # at least
LOGIN_SPEEDUP = 3.0  # at least
RSS_RATIO = 1 / 3  # RSS per logged-in user, at most

MODES = (
    ("m2x_single", "Matrix → XMPP, one by one"),
    ("m2x_burst", "Matrix → XMPP, bursts"),
    ("x2m", "XMPP → Matrix, one by one"),
)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


def _pair(part: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Both gateways' results of one scenario, or None if either is missing."""
    if not part:
        return None
    ours, up = part.get("ours"), part.get("upstream")
    if not ours or not up or "error" in ours or "error" in up:
        return None
    return ours, up


def _failed(part: dict[str, Any] | None) -> str:
    if not part:
        return "not run"
    errors = [
        f"{k}: {v['error']}"
        for k, v in part.items()
        if isinstance(v, dict) and "error" in v
    ]
    return "failed (" + "; ".join(errors) + ")" if errors else "not run"


def targets(gwres: dict[str, Any] | None) -> list[list[str]]:
    """Rows of the Targets table: target, measured, verdict."""
    g = gwres or {}
    rows: list[list[str]] = []
    relay = _pair(g.get("relay"))
    for key, label in MODES:
        want = f"{label}: CPU per message ≤ 1/3 of upstream's"
        if relay is None:
            rows.append([want, _failed(g.get("relay")), _verdict(None)])
            continue
        a, b = relay[0][key], relay[1][key]
        ratio = a["cpu_ms_per_msg"] / b["cpu_ms_per_msg"]
        rows.append(
            [
                want,
                f"{a['cpu_ms_per_msg']:.2f} vs {b['cpu_ms_per_msg']:.2f} ms: "
                f"{ratio:.2f}",
                _verdict(ratio <= CPU_RATIO),
            ]
        )
    for key, label in MODES[:2]:
        want = f"{label}: latency above the floor ≤ 1/2 of upstream's (p50 and p95)"
        if relay is None:
            rows.append([want, _failed(g.get("relay")), _verdict(None)])
            continue
        a, b = relay[0][key], relay[1][key]
        r50 = a["above_p50_ms"] / b["above_p50_ms"]
        r95 = a["above_p95_ms"] / b["above_p95_ms"]
        lost = "".join(
            f"; {name} lost {m['lost']} of {m['messages']}"
            for name, m in (("ours", a), ("upstream", b))
            if m.get("lost")
        )
        rows.append(
            [
                want,
                f"p50 {a['above_p50_ms']:.1f} vs {b['above_p50_ms']:.1f} ms: "
                f"{r50:.2f}; p95 {a['above_p95_ms']:.1f} vs "
                f"{b['above_p95_ms']:.1f} ms: {r95:.2f}{lost}",
                _verdict(r50 <= LATENCY_RATIO and r95 <= LATENCY_RATIO),
            ]
        )
    if relay is not None:
        a, b = relay[0]["x2m"], relay[1]["x2m"]
        rows.append(
            [
                "XMPP → Matrix: latency until another Matrix client sees it "
                "(no floor measured: reported)",
                f"p50 {a['p50_ms']:.1f} vs {b['p50_ms']:.1f} ms "
                f"({a['p50_ms'] / b['p50_ms']:.2f}); p95 {a['p95_ms']:.1f} vs "
                f"{b['p95_ms']:.1f} ms ({a['p95_ms'] / b['p95_ms']:.2f})",
                "reported",
            ]
        )
    bf = _pair(g.get("backfill"))
    want = "backfill: ≥ 3x faster than upstream, MUC join to a complete archive"
    if bf is None:
        rows.append([want, _failed(g.get("backfill")), _verdict(None)])
    else:
        speed = bf[1]["archive_s"] / bf[0]["archive_s"]
        rows.append(
            [
                want,
                f"{bf[0]['events']} events: {bf[0]['archive_s']:.2f} vs "
                f"{bf[1]['archive_s']:.2f} s: {speed:.1f}x",
                _verdict(speed >= BACKFILL_SPEEDUP),
            ]
        )
    login = _pair(g.get("login"))
    want = "first login of the big account: ≥ 3x faster than upstream"
    if login is None:
        rows.append([want, _failed(g.get("login")), _verdict(None)])
    else:
        a, b = login
        speed = b["first_live_s"] / a["first_live_s"]
        rows.append(
            [
                want,
                f"{a['rooms']} rooms, {a['events']:,} events: first live message "
                f"after {a['first_live_s']:.1f} vs {b['first_live_s']:.1f} s: "
                f"{speed:.1f}x",
                _verdict(speed >= LOGIN_SPEEDUP),
            ]
        )
    users = _pair(g.get("users"))
    want = "RSS per logged-in user ≤ 1/3 of upstream's"
    if users is None:
        rows.append([want, _failed(g.get("users")), _verdict(None)])
    else:
        a, b = users
        ratio = a["rss_per_user_mib"] / b["rss_per_user_mib"]
        rows.append(
            [
                want,
                f"{a['users']} users: {a['rss_per_user_mib']:.2f} vs "
                f"{b['rss_per_user_mib']:.2f} MiB: {ratio:.2f}",
                _verdict(ratio <= RSS_RATIO),
            ]
        )
    return rows


def _names(g: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = g.get("gateways", {})
    return names


def _rows(
    part: dict[str, Any] | None, g: dict[str, Any], cells: Any
) -> list[list[str]]:
    out = []
    for key, label in _names(g).items():
        r = (part or {}).get(key)
        if not r:
            continue
        if "error" in r:
            out.append([label, f"failed: {r['error']}"])
        else:
            out.append([label, *cells(r)])
    return out


def section(g: dict[str, Any], stamp: str | None = None) -> list[str]:
    size = g["sizes"]
    parts = [
        "## Gateways: matridge and upstream matridge",
        "",
        *_when(g, stamp),
        "The whole path a gateway's users and admins feel, for this tree's "
        "matridge and for the gateway an admin would otherwise install, "
        "upstream matridge "
        f"(`{_names(g).get('upstream', 'upstream')}`), both on slidge 0.5.3 and "
        "Python 3.13 (`bench/gateway_bench.py`). `make bench` installs "
        "upstream from PyPI into `.venv-upstream`: `matridge==0.5.0` without "
        "its dependencies, then those dependencies except `python-olm` "
        "(libolm: deprecated, no Python 3.13 wheel, and never imported by "
        "matridge 0.5.0, whose end-to-end encryption goes through "
        "`matrix-nio[e2e]` and its vodozemac wheels). Upstream's encryption "
        "is therefore on, as in a real install; the benchmark rooms are not "
        "encrypted. Upstream also tries to fetch its component avatar from "
        "the web at start-up and, with no network here, logs that it failed.",
        "",
        "One Synapse (SQLite) and one Prosody, on loopback on the same "
        "machine, serve the whole run. For each scenario each gateway in "
        "turn runs as `slidge --legacy-module=matridge` from its own venv "
        "(production log level, no `--debug`), started from an empty home "
        "directory, against the same servers and the same Matrix data, and "
        "is stopped before the other starts; the XMPP user registers through "
        "the gateway's form (both forms ask for homeserver, user name, "
        "password and device name). The gateway process is measured from "
        "/proc: CPU is utime + stime of all its threads, memory VmRSS and "
        "VmHWM (reset through /proc/PID/clear_refs where a window starts). "
        "The XMPP client (slixmpp) and the Matrix clients run in the "
        "benchmark's own process. The two cores are shared by Synapse, "
        "Prosody, the gateway and the clients, and by whatever else ran.",
        "",
        "### Relay",
        "",
        f"{size['relay_messages']} messages in a friend's room, joined as a "
        "MUC (`bench/relay_bench.py`). *Matrix → XMPP*: the friend sends each "
        "message and waits until the XMPP client has it (*one by one*), or "
        f"sends {size['burst']} back to back and waits for all of them "
        "(*bursts*). The *floor* is a bare long-poll `/sync` client of the "
        "same account (another device, in a thread of its own, filtered to "
        "the room): when the homeserver delivers each message to a client "
        "that does nothing with it. *Above floor* is the XMPP arrival minus "
        "the bare client's, per message. *XMPP → Matrix*: the XMPP client "
        "sends each groupchat message and waits until the friend's long-poll "
        "client sees it. Latencies are from the send (ms, percentiles) over "
        "the messages delivered; CPU is the gateway's over the phase divided "
        "by the messages sent; peak RSS is over the phase. *Lost*: messages "
        f"the other side still lacked {LOST_AFTER_S:.0f} s after the bare "
        "client had them (Matrix → XMPP) or after they were sent (XMPP → "
        "Matrix); they are left out of the latencies.",
        "",
        _table(
            [
                "Gateway",
                "Mode",
                "p50 ms",
                "p95 ms",
                "Floor p50 ms",
                "Above floor p50 ms",
                "Above floor p95 ms",
                "CPU ms / message",
                "Peak RSS MiB",
                "Wall s",
                "Lost",
            ],
            _relay_rows(g),
        ),
        "",
        f"![Latency distributions]({IMAGE})",
    ]
    rb = g.get("backfill")
    if rb:
        parts += [
            "",
            "### Backfill",
            "",
            f"A room with {size['backfill_events']} messages (the backfill "
            "benchmark's mix), joined as a MUC by a freshly registered user; "
            "timed from the join to a complete MAM archive "
            "(`bench/backfill_bench.py`; each gateway told to fetch up to "
            f"{size['backfill_events'] + 500} events: ours "
            "`--backfill-events`, upstream `--max-history-fetch`). Medians of "
            f"{size['backfill_runs']} run(s); peak is over the RSS at the join.",
            "",
            _table(
                [
                    "Gateway",
                    "Archive complete s",
                    "Self-presence s",
                    "Gateway CPU s",
                    "Peak +MiB",
                    "MAM queries",
                ],
                _rows(
                    rb,
                    g,
                    lambda r: [
                        f"{r['archive_s']:.2f}",
                        f"{r['presence_s']:.2f}",
                        f"{r['cpu_s']:.2f}",
                        f"{r['peak_mib']:.1f}",
                        str(r["polls"]),
                    ],
                ),
            ),
        ]
    lg = g.get("login")
    if lg:
        parts += [
            "",
            "### First login of a big account",
            "",
            f"An account in {size['login_rooms']} rooms holding "
            f"{size['login_events']:,} events in all (made once by several "
            f"clients at once, which took {lg.get('seed_s', 0):.0f} s, and kept as a "
            "saved homeserver in build/bench that each run's Synapse starts "
            "from; `bench/login_bench.py`), logged in as a new device by each "
            "gateway from an empty home. Timed from the registration form's "
            "submission: the gateway's *logged in* presence, the MUC join of "
            "the first room (retried until the gateway accepts it), and the "
            "first live message, which the friend sends there every 0.25 s, "
            "reaching the XMPP client (not as history). CPU covers that window; "
            "peak RSS is the process's whole life; *settled* is when the "
            "gateway's CPU went quiet afterwards.",
            "",
            _table(
                [
                    "Gateway",
                    "Logged in s",
                    "MUC joined s",
                    "First live message s",
                    "CPU s",
                    "Settled s",
                    "Peak RSS MiB",
                    "RSS before MiB",
                    "RSS after MiB",
                ],
                _rows(
                    lg,
                    g,
                    lambda r: [
                        f"{r['ready_s']:.1f}",
                        f"{r['joined_s']:.1f}",
                        f"{r['first_live_s']:.1f}",
                        f"{r['cpu_s']:.1f}",
                        f"{r['settled_after_s']:.1f}",
                        f"{r['peak_mib']:.0f}",
                        f"{r['rss_before_mib']:.0f}",
                        f"{r['rss_after_mib']:.0f}",
                    ],
                ),
            ),
        ]
    us = g.get("users")
    if us:
        parts += [
            "",
            "### Many users",
            "",
            f"{size['users']} Matrix accounts, each in a room of its own with a "
            "few messages, log in through one gateway (5 registrations at a "
            "time; `bench/users_bench.py`). *RSS per user* is the gateway's RSS "
            "once it settled after the last login minus its RSS before the "
            "first, over the users. *Idle CPU* is the gateway's CPU over the "
            f"next {size['idle_s']:.0f} s with nothing happening (long-poll "
            "`/sync` loops and keep-alives), per user and per minute.",
            "",
            _table(
                [
                    "Gateway",
                    "Users",
                    "All logged in s",
                    "RSS before MiB",
                    "RSS after MiB",
                    "RSS per user MiB",
                    "Idle CPU ms / user / min",
                ],
                _rows(
                    us,
                    g,
                    lambda r: [
                        str(r["users"]),
                        f"{r['login_s']:.1f}",
                        f"{r['rss_before_mib']:.0f}",
                        f"{r['rss_after_mib']:.0f}",
                        f"{r['rss_per_user_mib']:.2f}",
                        f"{r['idle_cpu_ms_per_user_min']:.1f}",
                    ],
                ),
            ),
        ]
    return parts


def _when(g: dict[str, Any], stamp: str | None) -> list[str]:
    """When (date UTC, matridge commit) each scenario was measured."""
    when: dict[str, str] = g.get("when", {})
    if len(set(when.values())) > 1:
        each = "; ".join(f"{s} {w}" for s, w in when.items())
        return [f"Measured (date UTC, matridge commit): {each}.", ""]
    if when or stamp:
        return [f"Measured {next(iter(when.values()), stamp)} (date UTC, commit).", ""]
    return []


def _relay_rows(g: dict[str, Any]) -> list[list[str]]:
    out: list[list[str]] = []
    relay = g.get("relay") or {}
    for key, label in MODES:
        for gkey, gname in _names(g).items():
            r = relay.get(gkey)
            if not r:
                continue
            if "error" in r:
                out.append([gname, label, f"failed: {r['error']}"])
                continue
            m = r[key]

            def opt(field: str, m: dict[str, Any] = m) -> str:
                return f"{m[field]:.1f}" if field in m else "-"

            out.append(
                [
                    gname,
                    label,
                    f"{m['p50_ms']:.1f}",
                    f"{m['p95_ms']:.1f}",
                    opt("floor_p50_ms"),
                    opt("above_p50_ms"),
                    opt("above_p95_ms"),
                    f"{m['cpu_ms_per_msg']:.2f}",
                    f"{m['peak_mib']:.0f}",
                    f"{m['wall_s']:.1f}",
                    str(m.get("lost", 0)),
                ]
            )
    return out


def plot(g: dict[str, Any] | None, path: Path) -> bool:
    """The latency distributions (empirical CDFs) of each relay mode, both
    gateways; False (and no file written) without relay results."""
    relay = (g or {}).get("relay") or {}
    series = {k: v for k, v in relay.items() if "error" not in v}
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ours": "#c0392b", "upstream": "#5d6d7e"}
    names = _names(g or {})
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    for ax, (mode, label) in zip(axes, MODES, strict=True):
        for key, r in series.items():
            m = r[mode]
            values = sorted(m.get("above_ms") or m.get("latency_ms") or [])
            if not values:
                continue
            n = len(values)
            ax.step(
                values,
                [(i + 1) / n for i in range(n)],
                where="post",
                color=colours.get(key, "black"),
                label=names.get(key, key),
            )
        what = "above the floor" if mode != "x2m" else "until a Matrix client sees it"
        ax.set_title(f"{label}: latency {what}", fontsize=10)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of messages")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
