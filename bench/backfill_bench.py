"""Backfill benchmark: a Matrix room's last N messages into slidge's archive.

Real Synapse, Prosody and the gateway (``slidge --legacy-module=matridge``),
started with the test harness (tests.harness). For each run, with a fresh
room and a fresh user (set-up not measured):

1. a friend creates a room, the user's Matrix account joins it, and N
   messages are sent (plain text, HTML-formatted messages and replies, in
   history_bench's proportions; about one in seven by the user), each body
   tagged so that the archive can be checked;
2. the user's XMPP client registers with the gateway (which logs in to
   Matrix and starts syncing), and the gateway is left to settle;
3. timed: the MUC join is sent (asking for no MUC history-on-join, as a
   MAM-capable client does), then MAM (XEP-0313) is queried every 0.2 s
   until the room's archive holds all N tagged messages. slidge fills the
   archive (matridge's ``backfill``) on the first MAM query and answers it
   once the fill is done, so that first query usually returns everything.

The gateway's peak RSS (VmHWM, reset through /proc/PID/clear_refs just
before the join) and its CPU time (utime + stime, all threads) cover the
timed window, including the gateway's share of answering MAM.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .gateways import is_ready
from .history_bench import WORDS, _Account

FULL_EVENTS = 1000
QUICK_EVENTS = 300
FULL_RUNS = 3
QUICK_RUNS = 2
POLL_S = 0.2
SETTLE_S = 1.0  # the gateway used no CPU for this long: idle after registering
TIMEOUT_S = 120.0
# Message kinds and their weights: history_bench's SEED_MIX, message kinds only
# (every event is one archived message, so "all N" is a plain count).
MESSAGE_MIX: tuple[tuple[str, int], ...] = (("text", 600), ("formatted", 120))
REPLY_WEIGHT = 80
TAG = "bf"  # bodies start with TAG + the message's number


@dataclass(frozen=True)
class BackfillRun:
    presence_s: float  # join sent -> the join's self-presence
    archive_s: float  # join sent -> MAM holds all N
    polls: int  # MAM queries until then
    reread_s: float  # one more full MAM read afterwards (the archive's read cost)
    peak_mib: float  # gateway VmHWM over its RSS at the reset
    peak_abs_mib: float  # gateway VmHWM
    cpu_s: float  # gateway utime + stime in the window


@dataclass(frozen=True)
class BackfillResult:
    events: int
    runs: int
    presence_s: float  # medians
    archive_s: float
    best_archive_s: float
    reread_s: float
    peak_mib: float
    peak_abs_mib: float
    cpu_s: float
    polls: int  # the largest
    seed_s: float  # sending one room's N messages (set-up; median)
    per_run: list[dict[str, float]]


# ---- the gateway process, through /proc ------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def _reset_peak_rss(pid: int) -> None:
    """VmHWM back to the current RSS (Linux >= 4.0)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _cpu_s(pid: int) -> float:
    """utime + stime of every thread of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the command name (which may hold spaces): state is field 3.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


async def _settle(pid: int, quiet_s: float = SETTLE_S, limit_s: float = 60) -> None:
    """Waits until the gateway has used no CPU for ``quiet_s`` (its login's
    first sync and room set-up done), or ``limit_s`` passed."""
    deadline = time.monotonic() + limit_s
    last = _cpu_s(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        now = _cpu_s(pid)
        if now - last < 0.02:
            return
        last = now
    print("  backfill: the gateway never went idle", file=sys.stderr)


# ---- set-up: a room with N tagged messages ---------------------------------------


def _seed(room_id: str, me: _Account, friend: _Account, count: int, seed: int) -> None:
    rng = random.Random(seed)
    kinds = [k for k, _ in MESSAGE_MIX] + ["reply"]
    weights = [w for _, w in MESSAGE_MIX] + [REPLY_WEIGHT]
    recent: list[str] = []
    for i in range(count):
        user = me if i % 7 == 0 else friend
        kind = "text" if i < 10 else rng.choices(kinds, weights)[0]
        tag = f"{TAG}{i:04d}"
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 20)))
        content: dict[str, Any]
        if kind == "text":
            content = {"msgtype": "m.text", "body": f"{tag} {words}"}
        elif kind == "formatted":
            content = {
                "msgtype": "m.text",
                "body": f"{tag} **{words}** see https://example.org/{i}",
                "format": "org.matrix.custom.html",
                "formatted_body": f"{tag} <b>{words}</b> see "
                f'<a href="https://example.org/{i}">the page</a><br><code>x</code>',
            }
        else:
            target = rng.choice(recent[-50:])
            content = {
                "msgtype": "m.text",
                "body": f"> <{friend.user_id}> …\n\n{tag} {words}",
                "m.relates_to": {"m.in_reply_to": {"event_id": target}},
            }
        recent.append(user.send(room_id, "m.room.message", content))


def _tags(messages: list[Any]) -> set[str]:
    """The tags of archived messages: the first line that starts with one (a
    reply's quote comes first; formatted messages span lines)."""
    found = set()
    for m in messages:
        for line in str(m["body"]).splitlines():
            if line.startswith(TAG):
                found.add(line.split(" ", 1)[0])
                break
    return found


# ---- one run ---------------------------------------------------------------------


async def _one_run(
    synapse: Any, prosody: Any, gateway: Any, count: int, seed: int
) -> tuple[BackfillRun, float]:
    from matridge.ids import matrix_id_to_jid_local
    from tests.harness.xmpp_client import XmppClient

    name = f"bench{uuid.uuid4().hex[:8]}"
    password = "pw-" + uuid.uuid4().hex
    me = _Account(synapse.base_url, synapse.register_user(name, password))
    friend = _Account(
        synapse.base_url, synapse.register_user(f"friend{uuid.uuid4().hex[:8]}", "pw")
    )
    try:
        room_id: str = friend.call(
            "POST",
            "/createRoom",
            {"preset": "private_chat", "name": "Backfill", "invite": [me.user_id]},
        )["room_id"]
        me.call("POST", f"/join/{urllib.parse.quote(room_id, safe='')}", {})
        t0 = time.monotonic()
        await asyncio.to_thread(_seed, room_id, me, friend, count, seed)
        seed_s = time.monotonic() - t0
    finally:
        me.close()
        friend.close()
    print(
        f"  backfill: {count} messages sent in {seed_s:.1f} s",
        file=sys.stderr,
        flush=True,
    )

    xmpp = await XmppClient.connect_to(
        f"{name}@{prosody.domain}", "any", "127.0.0.1", prosody.c2s_port
    )
    try:
        form = {
            "homeserver": synapse.base_url,
            "username": name,
            "password": password,
            "device": "backfill bench",
        }
        await xmpp.register_with(gateway.jid, form, timeout=60)
        # Either gateway's "logged in" status (the upstream one's differs).
        await xmpp.wait_presence(is_ready(gateway.jid), timeout=60)
        pid = gateway.proc.pid
        await _settle(pid)
        room_jid = f"{matrix_id_to_jid_local(room_id)}@{gateway.jid}"
        want = {f"{TAG}{i:04d}" for i in range(count)}

        _reset_peak_rss(pid)
        rss0 = _status_kib(pid, "VmRSS")
        cpu0 = _cpu_s(pid)
        t0 = time.perf_counter()
        await xmpp.join_muc(room_jid, name, timeout=60)
        presence_s = time.perf_counter() - t0
        polls = 0
        while True:
            polls += 1
            got = _tags(await xmpp.mam_messages(room_jid))
            if got >= want:
                break
            if time.perf_counter() - t0 > TIMEOUT_S:
                raise TimeoutError(
                    f"the archive holds {len(got & want)} of {count} after "
                    f"{TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(POLL_S)
        archive_s = time.perf_counter() - t0
        cpu_s = _cpu_s(pid) - cpu0
        peak = _status_kib(pid, "VmHWM")
        t1 = time.perf_counter()
        again = _tags(await xmpp.mam_messages(room_jid))
        reread_s = time.perf_counter() - t1
        if not again >= want:
            raise RuntimeError("a second MAM read lost messages")
    finally:
        await xmpp.disconnect_and_wait()
    run = BackfillRun(
        presence_s=presence_s,
        archive_s=archive_s,
        polls=polls,
        reread_s=reread_s,
        peak_mib=(peak - rss0) / 1024,
        peak_abs_mib=peak / 1024,
        cpu_s=cpu_s,
    )
    print(
        f"  backfill: archive complete after {archive_s:.2f} s ({polls} MAM "
        f"queries; self-presence after {presence_s:.2f} s), gateway peak "
        f"+{run.peak_mib:.1f} MiB, {cpu_s:.2f} s CPU",
        file=sys.stderr,
        flush=True,
    )
    return run, seed_s


# ---- the servers -----------------------------------------------------------------


def run(count: int, runs: int, seed: int, work_dir: Path) -> BackfillResult:
    from tests.harness.gateway import Gateway
    from tests.harness.prosody import Prosody
    from tests.harness.synapse import Synapse

    class QuietGateway(Gateway):
        """The harness's gateway without --debug: log at a production level."""

        def command(self) -> list[str]:
            return [a for a in super().command() if a != "--debug"]

    work_dir.mkdir(parents=True, exist_ok=True)
    # Servers start from this (main) thread: see tests.harness.ports.with_pdeathsig.
    with tempfile.TemporaryDirectory(dir=work_dir.resolve()) as tmp:
        print("  backfill: starting Synapse, Prosody, the gateway", file=sys.stderr)
        with (
            Synapse(Path(tmp) / "synapse") as synapse,
            Prosody(Path(tmp) / "prosody", privilege=False) as prosody,
            QuietGateway(
                Path(tmp) / "gateway", prosody, f"--backfill-events={count + 500}"
            ) as gateway,
        ):
            done = asyncio.run(_runs(synapse, prosody, gateway, count, runs, seed))
    return summarize(count, runs, done)


def summarize(
    count: int, runs: int, done: list[tuple[BackfillRun, float]]
) -> BackfillResult:
    """Medians over the runs."""
    per_run = [r for r, _ in done]

    def med(field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in per_run))

    return BackfillResult(
        events=count,
        runs=runs,
        presence_s=med("presence_s"),
        archive_s=med("archive_s"),
        best_archive_s=min(r.archive_s for r in per_run),
        reread_s=med("reread_s"),
        peak_mib=med("peak_mib"),
        peak_abs_mib=med("peak_abs_mib"),
        cpu_s=med("cpu_s"),
        polls=max(r.polls for r in per_run),
        seed_s=statistics.median(s for _, s in done),
        per_run=[{k: float(v) for k, v in r.__dict__.items()} for r in per_run],
    )


async def _runs(
    synapse: Any, prosody: Any, gateway: Any, count: int, runs: int, seed: int
) -> list[tuple[BackfillRun, float]]:
    return [
        await _one_run(synapse, prosody, gateway, count, seed + i) for i in range(runs)
    ]
