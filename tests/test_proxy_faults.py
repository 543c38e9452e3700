"""Faults on the path between the gateway and Synapse, through our own
proxy: an outage longer than a long-poll, and a storm of 429s."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.harness.faultproxy import Fault
from tests.harness.gateway import Gateway
from tests.scenarios import ProxiedClub, groupchat_from

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def archived(club: ProxiedClub, prefix: str) -> list[str]:
    msgs = await club.person.xmpp.mam_messages(club.room_jid)
    return [m["body"] for m in msgs if m["body"].startswith(prefix)]


async def test_an_outage_longer_than_a_long_poll_loses_nothing(
    proxied: ProxiedClub,
) -> None:
    proxied.proxy.set_down(True)
    # 150 messages: more than the sync filter's timeline, so the first sync
    # after the outage is limited and the gap must be fetched.
    sent = [f"outage {i:03d}" for i in range(150)]
    for body in sent:
        proxied.friend.send_text(proxied.room_id, body)
    await asyncio.sleep(8)  # longer than the gateway's 5 s long-poll
    proxied.proxy.set_down(False)
    proxied.friend.send_text(proxied.room_id, "outage over")
    await proxied.person.xmpp.wait_message(
        groupchat_from(proxied.room_jid, "outage over"), timeout=90
    )
    assert await archived(proxied, "outage ") == [*sent, "outage over"]


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_a_429_storm_is_waited_out_without_a_request_storm(
    proxied: ProxiedClub, gateway: Gateway
) -> None:
    assert gateway.proc is not None
    # The shared gateway also syncs for every earlier test's user: their
    # CPU over the same 10 s without a fault is the baseline.
    quiet_before = cpu_seconds(gateway.proc.pid)
    await asyncio.sleep(10)
    baseline = cpu_seconds(gateway.proc.pid) - quiet_before
    proxied.proxy.add(
        Fault(
            "GET /_matrix/client/v3/sync",
            "status",
            status=429,
            body={
                "errcode": "M_LIMIT_EXCEEDED",
                "error": "slow down",
                "retry_after_ms": 2000,
            },
        )
    )
    start, cpu_before = time.monotonic(), cpu_seconds(gateway.proc.pid)
    proxied.friend.send_text(proxied.room_id, "during the storm")
    await asyncio.sleep(10)
    cpu = cpu_seconds(gateway.proc.pid) - cpu_before
    storm = proxied.proxy.requests(lambda s: s.at >= start and "/sync" in s.path)
    proxied.proxy.clear()
    # retry_after_ms is honoured: about one request per 2 s, not a storm.
    assert 2 <= len(storm) <= 7, [round(s.at - start, 1) for s in storm]
    # A retry loop that spins would add seconds of CPU per second.
    assert cpu < baseline + 3, (
        f"the gateway used {cpu:.1f} s of CPU in 10 s, {baseline:.1f} s without"
    )
    await proxied.person.xmpp.wait_message(
        groupchat_from(proxied.room_jid, "during the storm"), timeout=60
    )
