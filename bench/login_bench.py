"""First-login benchmark: an account in many rooms with much history.

Set-up, shared by both gateways (each logs in as a new device of the same
account, from an empty gateway home): a friend creates R rooms and invites
the account, which joins each; then E events in all (E / R per room, plain
text) are sent by several clients at once, one keep-alive connection per
thread. Synapse persists a few dozen events a second here, so this is done
once and kept: the homeserver's database, signing key and secrets go to
build/bench/login-fixture-<R>r-<E>e/, and each later run starts its Synapse
from a copy of them (see :func:`fixture`).

Timed, per gateway, from the moment the XMPP client submits the
registration form: the gateway logs in to Matrix and does its first sync of
the whole account; the XMPP client joins the first room's MUC as soon as the
gateway accepts the join, while the friend sends a live message there every
LIVE_EVERY_S. The result is the time until the first of those live messages
reaches the XMPP client (the join asks for no history; slidge stamps MUC
messages with their Matrix time, so a <delay> does not tell history apart),
and the time until the gateway's "logged in" presence. The gateway's peak
RSS (VmHWM) over the whole process life, and its CPU time over the timed
window.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import gateways as gw

FULL_ROOMS, FULL_EVENTS = 200, 20_000
QUICK_ROOMS, QUICK_EVENTS = 20, 1000
SEED_THREADS = 6
LIVE_EVERY_S = 0.25
TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BigAccount:
    name: str
    password: str
    friend: str
    rooms: list[str]
    events: int
    seed_s: float


SYNAPSE_FILES = ("homeserver.db", "signing.key")


def fixture(cache: Path, rooms: int, events: int) -> Path:
    """The directory of a saved homeserver holding the big account (made
    now if missing): its files, and fixture.json (secrets, account)."""
    from tests.harness.synapse import Synapse

    final = cache.resolve() / f"login-fixture-{rooms}r-{events}e"
    if (final / "fixture.json").exists():
        return final
    making = final.parent / f"{final.name}.making"
    shutil.rmtree(making, ignore_errors=True)
    synapse = Synapse(making / "synapse")
    with synapse:
        acct = seed(synapse, rooms, events)
    # Stopped cleanly: the WAL is checkpointed into homeserver.db.
    for name in SYNAPSE_FILES:
        shutil.copy2(making / "synapse" / name, making / name)
    meta = {
        "registration_shared_secret": synapse.registration_shared_secret,
        "macaroon_secret_key": synapse._macaroon_secret,
        "form_secret": synapse._form_secret,
        "account": asdict(acct),
    }
    (making / "fixture.json").write_text(json.dumps(meta))
    shutil.rmtree(making / "synapse")
    shutil.rmtree(final, ignore_errors=True)
    making.rename(final)
    return final


def synapse_from(fixture_dir: Path, workdir: Path) -> tuple[Any, BigAccount]:
    """A (not yet started) Synapse on a copy of the fixture, and its account."""
    from tests.harness.synapse import Synapse

    meta = json.loads((fixture_dir / "fixture.json").read_text())
    workdir.mkdir(parents=True, exist_ok=True)
    for name in SYNAPSE_FILES:
        shutil.copy2(fixture_dir / name, workdir / name)
    synapse = Synapse(
        workdir,
        registration_shared_secret=meta["registration_shared_secret"],
        macaroon_secret_key=meta["macaroon_secret_key"],
        form_secret=meta["form_secret"],
    )
    return synapse, BigAccount(**meta["account"])


def seed(synapse: Any, rooms: int, events: int) -> BigAccount:
    """The account and its rooms; run once, before any gateway."""
    t0 = time.perf_counter()
    name = f"big{uuid.uuid4().hex[:6]}"
    password = "pw-" + uuid.uuid4().hex
    fname = f"bigfriend{uuid.uuid4().hex[:6]}"
    synapse.register_user(name, password)
    synapse.register_user(fname, "pw")
    me_id = gw.MatrixConn.login(synapse.base_url, name, password).user_id

    def make_rooms(indices: list[int]) -> list[str]:
        friend = gw.MatrixConn.login(synapse.base_url, fname, "pw")
        me = gw.MatrixConn.login(synapse.base_url, name, password)
        made = []
        for i in indices:
            room_id = friend.create_room([me_id], f"Room {i:03d}")
            me.join(room_id)
            made.append(room_id)
        friend.close()
        me.close()
        return made

    def fill(room_ids: list[str], per_room: int) -> None:
        friend = gw.MatrixConn.login(synapse.base_url, fname, "pw")
        me = gw.MatrixConn.login(synapse.base_url, name, password)
        for room_id in room_ids:
            for j in range(per_room):
                # One in ten from the account itself, like a real history.
                sender = me if j % 10 == 0 else friend
                sender.send_text(room_id, f"history {j} of {room_id[:8]} lorem ipsum")
        friend.close()
        me.close()

    chunks = [list(range(k, rooms, SEED_THREADS)) for k in range(SEED_THREADS)]
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        room_ids = [r for made in pool.map(make_rooms, chunks) for r in made]
        made_s = time.perf_counter() - t0
        per_room = events // rooms
        parts = [room_ids[k::SEED_THREADS] for k in range(SEED_THREADS)]
        list(pool.map(lambda p: fill(p, per_room), parts))
    seed_s = time.perf_counter() - t0
    print(
        f"  login: {rooms} rooms in {made_s:.0f} s, {per_room * rooms} events in "
        f"{seed_s:.0f} s in all",
        file=sys.stderr,
        flush=True,
    )
    return BigAccount(name, password, fname, room_ids, per_room * rooms, seed_s)


async def run(
    synapse: Any, prosody: Any, gateway: Any, kind: gw.GatewayKind, acct: BigAccount
) -> dict[str, Any]:
    from matridge.ids import matrix_id_to_jid_local
    from tests.harness.xmpp_client import XmppClient, XmppError

    pid = gateway.proc.pid
    await gw.settle(pid)
    rss0 = gw.rss_mib(pid)
    room_id = acct.rooms[0]
    room_jid = f"{matrix_id_to_jid_local(room_id)}@{gateway.jid}"
    friend = gw.MatrixConn.login(synapse.base_url, acct.friend, "pw")
    xmpp = await XmppClient.connect_to(
        f"{acct.name}-{kind.key}@{prosody.domain}", "any", "127.0.0.1", prosody.c2s_port
    )
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_message(msg: Any) -> None:
        if (
            msg["type"] == "groupchat"
            and msg["from"].bare == room_jid
            and str(msg["body"]).startswith("live ")
            and not first.done()
        ):
            first.set_result(time.perf_counter())

    xmpp.add_event_handler("message", on_message)
    stop = asyncio.Event()

    async def live_sender() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            await asyncio.to_thread(friend.send_text, room_id, f"live {k}")
            await asyncio.sleep(LIVE_EVERY_S)

    async def join_when_accepted() -> None:
        while True:
            try:
                await xmpp.join_muc(room_jid, acct.name, timeout=TIMEOUT_S)
                return
            except (XmppError, TimeoutError):
                await asyncio.sleep(0.5)

    cpu0 = gw.cpu_s(pid)
    t0 = time.perf_counter()
    sender = asyncio.create_task(live_sender())
    try:
        await gw.register(xmpp, gateway.jid, synapse.base_url, acct.name, acct.password)
        ready_s = time.perf_counter() - t0
        await asyncio.wait_for(join_when_accepted(), TIMEOUT_S)
        joined_s = time.perf_counter() - t0
        first_s = await asyncio.wait_for(first, TIMEOUT_S) - t0
    finally:
        stop.set()
        await sender
        friend.close()
    cpu_window = gw.cpu_s(pid) - cpu0
    settle_s = await gw.settle(pid, limit_s=120)
    result = {
        "rooms": len(acct.rooms),
        "events": acct.events,
        "ready_s": ready_s,
        "joined_s": joined_s,
        "first_live_s": first_s,
        "cpu_s": cpu_window,
        "settled_after_s": first_s + settle_s,
        "rss_before_mib": rss0,
        "rss_after_mib": gw.rss_mib(pid),
        "peak_mib": gw.peak_mib(pid),
    }
    await xmpp.disconnect_and_wait()
    print(
        f"  login [{kind.key}]: logged in after {ready_s:.1f} s, MUC joined after "
        f"{joined_s:.1f} s, first live message after {first_s:.1f} s; "
        f"{cpu_window:.1f} s CPU, peak {result['peak_mib']:.0f} MiB "
        f"(RSS {rss0:.0f} MiB before)",
        file=sys.stderr,
        flush=True,
    )
    return result


def main() -> None:
    """``python -m bench.login_bench [--quick] [--profile] [--gateway G]``:
    one gateway's first login of the big account alone; with --profile, our
    gateway sampled by py-spy over it (build/bench/login-profile-G.txt,
    summarised on stdout)."""
    import argparse
    import os
    import tempfile

    from tests.harness.prosody import Prosody

    from .procstat import ROOT
    from .relay_bench import _start_profiler, _stop_profiler, profile_summary

    ap = argparse.ArgumentParser(prog="python -m bench.login_bench")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--gateway", choices=("ours", "upstream"), default="ours")
    args = ap.parse_args()
    kind = gw.ours() if args.gateway == "ours" else gw.upstream()
    rooms, events = (
        (QUICK_ROOMS, QUICK_EVENTS) if args.quick else (FULL_ROOMS, FULL_EVENTS)
    )
    cache = ROOT / "build" / "bench"
    made = fixture(cache, rooms, events)
    out = cache / f"login-profile-{kind.key}.txt"
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        server, acct = synapse_from(made, Path(tmp) / "synapse")
        with (
            server as synapse,
            Prosody(Path(tmp) / "prosody", privilege=False) as prosody,
            gw.make_gateway(Path(tmp) / "gw", prosody, kind) as gateway,
        ):
            spy = _start_profiler(gateway.proc.pid, out) if args.profile else None
            result = asyncio.run(run(synapse, prosody, gateway, kind, acct))
            if spy is not None:
                _stop_profiler(spy)
    if args.profile:
        result["profile"] = profile_summary(out)
    print(json.dumps(result, indent=1), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
