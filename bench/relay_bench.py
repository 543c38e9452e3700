"""Relay benchmark: messages through one gateway, both directions.

A Matrix account registered with the gateway through an XMPP client, in a
friend's room joined as a MUC. Set-up is not measured. Then:

- Matrix -> XMPP, one by one: the friend sends a message and waits until the
  XMPP client has it, N times. A bare long-poll /sync client of the same
  account (another device, in a thread of its own) timestamps when the
  homeserver delivers each message: the floor. Latency above the floor is
  the XMPP arrival minus the bare client's.
- Matrix -> XMPP, bursts: the same with B messages sent back to back, then
  waiting for all of them.
- XMPP -> Matrix, one by one: the XMPP client sends a groupchat message and
  waits until the friend's long-poll client sees it in the room.

For each: latency percentiles of the messages delivered, the messages lost
(not delivered LOST_AFTER_S after the bare client had them, or after they
were sent), the gateway's CPU (utime + stime, all threads) per message sent,
and its peak RSS (VmHWM, reset before the phase).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from . import gateways as gw
from .procstat import ROOT

FULL_MESSAGES = 1000
QUICK_MESSAGES = 100
BURST = 50
TIMEOUT_S = 60.0
LOST_AFTER_S = 20.0


class _XmppArrivals:
    """When the XMPP client received each groupchat body of one room."""

    def __init__(self, xmpp: Any, room_jid: str) -> None:
        self.room_jid = room_jid
        self.seen: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Future[float]] = {}
        xmpp.add_event_handler("message", self._on_message)

    def _on_message(self, msg: Any) -> None:
        if msg["type"] != "groupchat" or msg["from"].bare != self.room_jid:
            return
        now = time.perf_counter()
        body = str(msg["body"])
        if body in self.seen:
            return
        self.seen[body] = now
        fut = self._waiters.pop(body, None)
        if fut is not None and not fut.done():
            fut.set_result(now)

    def forget(self, body: str) -> None:
        self._waiters.pop(body, None)

    def wait(self, body: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if body in self.seen:
            fut.set_result(self.seen[body])
        else:
            self._waiters[body] = fut
        return fut


def _summary(
    sent: list[float],
    arrived: list[float],
    floor: list[float] | None,
    cpu: float,
    wall: float,
    peak: float,
    count: int,
) -> dict[str, Any]:
    """Latencies over the messages delivered; CPU over all ``count`` sent."""
    lat = [(a - s) * 1000 for s, a in zip(sent, arrived, strict=True)]
    out: dict[str, Any] = {
        "messages": count,
        "delivered": len(sent),
        "p50_ms": gw.percentile(lat, 50),
        "p95_ms": gw.percentile(lat, 95),
        "cpu_ms_per_msg": cpu * 1000 / count,
        "wall_s": wall,
        "peak_mib": peak,
    }
    if floor is not None:
        fl = [(f - s) * 1000 for s, f in zip(sent, floor, strict=True)]
        above = [(a - f) * 1000 for a, f in zip(arrived, floor, strict=True)]
        out |= {
            "floor_p50_ms": gw.percentile(fl, 50),
            "floor_p95_ms": gw.percentile(fl, 95),
            "above_p50_ms": gw.percentile(above, 50),
            "above_p95_ms": gw.percentile(above, 95),
            "above_ms": [round(v, 2) for v in above],
        }
    else:
        out["latency_ms"] = [round(v, 2) for v in lat]
    return out


async def _matrix_to_xmpp(
    pid: int,
    friend: gw.MatrixConn,
    room_id: str,
    floor: gw.BodyWatcher,
    xmpp: _XmppArrivals,
    count: int,
    burst: int,
    tag: str,
) -> dict[str, Any]:
    sent: list[float] = []
    arrived: list[float] = []
    floors: list[float] = []
    lost = 0

    def send_batch(bodies: list[str]) -> list[float]:
        times = []
        for body in bodies:
            times.append(time.perf_counter())
            friend.send_text(room_id, body)
        return times

    await gw.settle(pid)
    gw.reset_peak(pid)
    cpu0 = gw.cpu_s(pid)
    t0 = time.perf_counter()
    for start in range(0, count, burst):
        bodies = [f"{tag}{i:05d} hello there" for i in range(start, start + burst)]
        x_futs = [xmpp.wait(b) for b in bodies]
        f_futs = [floor.wait(b) for b in bodies]
        times = await asyncio.to_thread(send_batch, bodies)
        floor_t = await asyncio.wait_for(asyncio.gather(*f_futs), TIMEOUT_S)
        # A message the XMPP user still lacks LOST_AFTER_S after the bare
        # client had the whole batch is counted as lost (upstream skips
        # the messages of a "limited" sync timeline, say), not waited for.
        await asyncio.wait(x_futs, timeout=LOST_AFTER_S)
        for body, s_t, f_t, fut in zip(bodies, times, floor_t, x_futs, strict=True):
            if fut.done():
                sent.append(s_t)
                floors.append(f_t)
                arrived.append(fut.result())
            else:
                fut.cancel()
                xmpp.forget(body)
                lost += 1
    wall = time.perf_counter() - t0
    cpu = gw.cpu_s(pid) - cpu0
    out = _summary(sent, arrived, floors, cpu, wall, gw.peak_mib(pid), count)
    out["lost"] = lost
    return out


async def _xmpp_to_matrix(
    pid: int, xmpp: Any, room_jid: str, seer: gw.BodyWatcher, count: int, tag: str
) -> dict[str, Any]:
    sent: list[float] = []
    arrived: list[float] = []
    await gw.settle(pid)
    gw.reset_peak(pid)
    cpu0 = gw.cpu_s(pid)
    t0 = time.perf_counter()
    lost = 0
    for i in range(count):
        body = f"{tag}{i:05d} hello back"
        fut = seer.wait(body)
        t_send = time.perf_counter()
        xmpp.send_groupchat(room_jid, body)
        try:
            arrived.append(await asyncio.wait_for(fut, LOST_AFTER_S))
            sent.append(t_send)
        except TimeoutError:
            seer.forget(body)
            lost += 1
    wall = time.perf_counter() - t0
    cpu = gw.cpu_s(pid) - cpu0
    out = _summary(sent, arrived, None, cpu, wall, gw.peak_mib(pid), count)
    out["lost"] = lost
    return out


def _start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the gateway (all threads, native frames off), raw
    collapsed stacks; --nonblocking so the gateway is never paused."""
    spy = Path(sys.executable).parent / "py-spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def profile_summary(raw: Path, top: int = 20) -> dict[str, Any]:
    """Sample counts per function from py-spy's collapsed stacks ("frame;
    frame;... count", root first): self time; inclusive time of matridge's
    and slidge's own functions (the framework frames above them would fill
    the list); and, of the samples in a SQLite commit, which matridge or
    slidge function was committing."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    committers: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        # "function (file:line)" -> "function (file)": per function, not line.
        frames = [
            re.sub(r":\d+\)$", ")", f)
            for f in stack.split(";")
            if not f.startswith("thread ")
        ]
        if not frames:
            continue
        own[frames[-1]] += count
        ours = [f for f in frames if "(matridge/" in f or "(slidge/" in f]
        for f in set(ours):
            incl[f] += count
        if ours and any("do_commit" in f for f in frames):
            committers[ours[-1]] += count
    return {
        "samples": total,
        "self": own.most_common(top),
        "inclusive": incl.most_common(top),
        "commit_callers": committers.most_common(10),
    }


async def run(
    synapse: Any,
    prosody: Any,
    gateway: Any,
    kind: gw.GatewayKind,
    count: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    from matridge.ids import matrix_id_to_jid_local
    from tests.harness.xmpp_client import XmppClient

    name = f"relay{kind.key}{uuid.uuid4().hex[:6]}"
    password = "pw-" + uuid.uuid4().hex
    fname = f"relayfriend{uuid.uuid4().hex[:6]}"
    synapse.register_user(name, password)
    synapse.register_user(fname, "pw")
    friend = gw.MatrixConn.login(synapse.base_url, fname, "pw")
    me = gw.MatrixConn.login(synapse.base_url, name, password)
    room_id = friend.create_room([me.user_id], "Relay")
    me.join(room_id)
    me.close()
    floor = gw.BodyWatcher(
        gw.MatrixConn.login(synapse.base_url, name, password), room_id
    )
    seer = gw.BodyWatcher(gw.MatrixConn.login(synapse.base_url, fname, "pw"), room_id)

    xmpp = await XmppClient.connect_to(
        f"{name}@{prosody.domain}", "any", "127.0.0.1", prosody.c2s_port
    )
    pid = gateway.proc.pid
    try:
        await gw.register(xmpp, gateway.jid, synapse.base_url, name, password)
        room_jid = f"{matrix_id_to_jid_local(room_id)}@{gateway.jid}"
        await xmpp.join_muc(room_jid, name, timeout=60)
        arrivals = _XmppArrivals(xmpp, room_jid)
        floor.start()
        seer.start()
        result: dict[str, Any] = {}

        spy = _start_profiler(pid, profile) if profile is not None else None
        if spy is not None:
            await asyncio.sleep(1)  # py-spy attached
        single = await _matrix_to_xmpp(
            pid, friend, room_id, floor, arrivals, count, 1, "mx"
        )
        if spy is not None:
            _stop_profiler(spy)
        result["m2x_single"] = single
        _report(kind, "Matrix -> XMPP one by one", single)
        burst = await _matrix_to_xmpp(
            pid, friend, room_id, floor, arrivals, count, BURST, "mb"
        )
        result["m2x_burst"] = burst
        _report(kind, f"Matrix -> XMPP in bursts of {BURST}", burst)
        back = await _xmpp_to_matrix(pid, xmpp, room_jid, seer, count, "xm")
        result["x2m"] = back
        _report(kind, "XMPP -> Matrix one by one", back)
    finally:
        floor.stop()
        seer.stop()
        friend.close()
        await xmpp.disconnect_and_wait()
    return result


def _report(kind: gw.GatewayKind, what: str, r: dict[str, Any]) -> None:
    extra = (
        f", above the floor p50 {r['above_p50_ms']:.1f} / p95 "
        f"{r['above_p95_ms']:.1f} ms (floor p50 {r['floor_p50_ms']:.1f} ms)"
        if "above_p50_ms" in r
        else ""
    )
    lost = f" ({r['lost']} lost)" if r.get("lost") else ""
    print(
        f"  relay [{kind.key}] {what}: {r['messages']}{lost} in {r['wall_s']:.1f} s, "
        f"p50 {r['p50_ms']:.1f} / p95 {r['p95_ms']:.1f} ms{extra}, "
        f"{r['cpu_ms_per_msg']:.2f} ms CPU per message, peak {r['peak_mib']:.0f} MiB",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    """``python -m bench.relay_bench [--quick] --profile``: our gateway's
    Python profile during the Matrix -> XMPP one-by-one flood (py-spy),
    written to build/bench/relay-profile.txt (collapsed stacks) and
    summarised as JSON on stdout."""
    import argparse
    import tempfile

    from tests.harness.prosody import Prosody
    from tests.harness.synapse import Synapse

    ap = argparse.ArgumentParser(prog="python -m bench.relay_bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--gateway", choices=("ours", "upstream"), default="ours")
    args = ap.parse_args()
    kind = gw.ours() if args.gateway == "ours" else gw.upstream()
    count = QUICK_MESSAGES if args.quick else FULL_MESSAGES
    out = ROOT / "build" / "bench" / f"relay-profile-{kind.key}.txt"
    with tempfile.TemporaryDirectory(dir=ROOT / "build") as tmp:
        with (
            Synapse(Path(tmp) / "synapse") as synapse,
            Prosody(Path(tmp) / "prosody", privilege=False) as prosody,
            gw.make_gateway(Path(tmp) / "gw", prosody, kind) as gateway,
        ):
            result = asyncio.run(
                run(
                    synapse,
                    prosody,
                    gateway,
                    kind,
                    count,
                    out if args.profile else None,
                )
            )
    summary: dict[str, Any] = {k: v["cpu_ms_per_msg"] for k, v in result.items()}
    if args.profile:
        summary["profile"] = profile_summary(out)
        summary["profile_file"] = str(out)
        if kind.key == "ours" and not args.quick:
            # The "after" profile of docs/benchmarks.md's profile section.
            from .machine import _commit
            from .profile_report import save_after

            save_after(summary["profile"], summary["m2x_single"], _commit())
    print(json.dumps(summary, indent=1), flush=True)
    os._exit(0)  # daemon long-poll threads may still sit in a socket


if __name__ == "__main__":
    main()
