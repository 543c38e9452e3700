"""Many-users benchmark: U people logged in through one gateway.

Set-up, once per run and shared by both gateways: U Matrix accounts, each in
a room of its own with a friend, holding a few messages. Per gateway, from
an empty gateway home: the gateway is left to settle and its RSS read; then
U XMPP clients connect and register (a few at a time), each waiting for the
gateway's "logged in" presence; the gateway settles again and its RSS is
read: RSS per user is the difference over U. Then nothing happens for
IDLE_S, and the gateway's CPU time over that stretch, per user and per
minute, is its idle cost (long-poll /sync loops, keep-alives, timers).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import gateways as gw

FULL_USERS, FULL_IDLE_S = 50, 60.0
QUICK_USERS, QUICK_IDLE_S = 5, 15.0
AT_ONCE = 5  # registrations under way together
HISTORY = 5  # messages in each user's room


@dataclass(frozen=True)
class People:
    names: list[str]
    password: str


def seed(synapse: Any, users: int) -> People:
    password = "pw-" + uuid.uuid4().hex
    fname = f"crowdfriend{uuid.uuid4().hex[:6]}"
    synapse.register_user(fname, "pw")
    names = [f"crowd{uuid.uuid4().hex[:6]}{i:02d}" for i in range(users)]

    def one(name: str) -> None:
        synapse.register_user(name, password)
        me = gw.MatrixConn.login(synapse.base_url, name, password)
        friend = gw.MatrixConn.login(synapse.base_url, fname, "pw")
        room_id = friend.create_room([me.user_id], f"{name}'s room")
        me.join(room_id)
        for j in range(HISTORY):
            friend.send_text(room_id, f"hello {j}")
        me.close()
        friend.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, names))
    return People(names, password)


async def run(
    synapse: Any,
    prosody: Any,
    gateway: Any,
    kind: gw.GatewayKind,
    people: People,
    idle_s: float,
) -> dict[str, Any]:
    from tests.harness.xmpp_client import XmppClient

    pid = gateway.proc.pid
    await gw.settle(pid)
    rss0 = gw.rss_mib(pid)
    clients: list[Any] = []
    gate = asyncio.Semaphore(AT_ONCE)

    async def log_in(name: str) -> None:
        async with gate:
            xmpp = await XmppClient.connect_to(
                f"{name}-{kind.key}@{prosody.domain}",
                "any",
                "127.0.0.1",
                prosody.c2s_port,
            )
            clients.append(xmpp)
            await gw.register(
                xmpp, gateway.jid, synapse.base_url, name, people.password
            )

    t0 = time.perf_counter()
    try:
        await asyncio.gather(*(log_in(n) for n in people.names))
        login_s = time.perf_counter() - t0
        await gw.settle(pid, quiet_s=2.0, limit_s=300)
        rss1 = gw.rss_mib(pid)
        cpu0 = gw.cpu_s(pid)
        t1 = time.perf_counter()
        await asyncio.sleep(idle_s)
        idle_cpu = gw.cpu_s(pid) - cpu0
        minutes = (time.perf_counter() - t1) / 60
    finally:
        for c in clients:
            await c.disconnect_and_wait()
    n = len(people.names)
    result = {
        "users": n,
        "login_s": login_s,
        "rss_before_mib": rss0,
        "rss_after_mib": rss1,
        "rss_per_user_mib": (rss1 - rss0) / n,
        "idle_s": idle_s,
        "idle_cpu_ms_per_user_min": idle_cpu * 1000 / n / minutes,
        "peak_mib": gw.peak_mib(pid),
    }
    print(
        f"  users [{kind.key}]: {n} logged in after {login_s:.1f} s; RSS "
        f"{rss0:.0f} -> {rss1:.0f} MiB ({result['rss_per_user_mib']:.2f} MiB per "
        f"user); idle {result['idle_cpu_ms_per_user_min']:.1f} ms CPU per user "
        f"per minute",
        file=sys.stderr,
        flush=True,
    )
    return result
