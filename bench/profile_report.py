"""The plugin's part of relaying a message, profiled before and after issue
17's changes: a section of docs/benchmarks.md.

The "before" profile is kept in bench/profiles/relay-before.json (it was
taken on the code before the changes, which `make bench` no longer has);
the "after" one is bench/profiles/relay-after.json, written by
``python -m bench.relay_bench --profile`` through :func:`save_after`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "profiles"
BEFORE, AFTER = HERE / "relay-before.json", HERE / "relay-after.json"


def save_after(summary: dict[str, Any], cpu_ms_per_msg: float, commit: str) -> None:
    """Keeps a fresh profile summary (relay_bench's) as the "after" one."""
    data = {
        "what": "py-spy at 250 Hz of our gateway relaying Matrix messages one "
        "by one into a MUC (python -m bench.relay_bench --profile)",
        "commit": commit,
        "cpu_ms_per_msg": cpu_ms_per_msg,
        "samples": summary["samples"],
        "self": summary["self"][:10],
        "commit_callers": summary["commit_callers"][:5],
    }
    AFTER.write_text(json.dumps(data, indent=1) + "\n")


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def section() -> list[str]:
    if not BEFORE.exists() or not AFTER.exists():
        return []
    runs = [
        ("Before", json.loads(BEFORE.read_text())),
        ("After", json.loads(AFTER.read_text())),
    ]
    out = [
        "## The plugin's part of a relayed message: profile before and after",
        "",
        "py-spy samples of our gateway while it relays messages one by one "
        "(its busy time, not idle waits: 250 samples a second, over the whole "
        "relay scenario of 1000 messages each way). Before issue 17's changes half of "
        "that time was SQLite commits: one per batch for the sync token, one "
        "per message in slidge's archive, each waiting for the disk. After: "
        "slidge's database in WAL mode with `synchronous=NORMAL` "
        "(`matridge/sqlite_tuning.py`), the token of batches without direct "
        "messages saved every 2 s and not when an idle long-poll gives it back "
        "(`matridge/server_ack.py`), and `sync_ack` taking the engine's locks "
        "without the GIL. The rest is slidge's (its archive, stanzas, "
        "SQLAlchemy), which upstream matridge pays too.",
        "",
    ]
    for label, run in runs:
        total = int(run["samples"])
        out += [
            f"**{label}** ({run['commit']}): {total:,} samples, "
            f"{run['cpu_ms_per_msg']:.2f} ms of gateway CPU per message in that run.",
            "",
            "| Function (self time) | Samples | Share |",
            "|---|---|---|",
        ]
        out += [f"| `{name}` | {n:,} | {_share(n, total)} |" for name, n in run["self"]]
        out += [
            "",
            "| Waiting in a commit, called from | Samples | Share |",
            "|---|---|---|",
        ]
        out += [
            f"| `{name}` | {n:,} | {_share(n, total)} |"
            for name, n in run["commit_callers"]
        ]
        out.append("")
    return out
