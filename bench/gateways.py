"""The two gateways the gateway-level benchmarks compare, and how each is
installed, started, registered with and measured.

- ours: this checkout's matridge, from the project's own venv;
- upstream: matridge 0.5.0 from PyPI (pure Python on matrix-nio), from a venv
  of its own (``.venv-upstream``, made by ``make bench``), on the same slidge
  0.5.3 and Python 3.13.

Each runs as ``python -P -m slidge --legacy-module=matridge`` (``-P``: the
current directory is not put on the path, so the upstream interpreter can
never import this checkout's ``matridge`` package) against the same Prosody
and Synapse, at production log level (no ``--debug``). Its process is
measured from /proc: CPU as utime + stime of all its threads, memory as
VmRSS and VmHWM.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procstat import ROOT

UPSTREAM_VENV = ROOT / ".venv-upstream"
UPSTREAM_VERSION = "0.5.0"
# The presence status each gateway shows once its Matrix session is up.
READY_STATUS = ("Connected as", "Logged in as")


@dataclass(frozen=True)
class GatewayKind:
    key: str  # "ours" | "upstream"
    label: str
    python: str
    args: tuple[str, ...]  # options only this gateway knows
    history_option: str  # how many events a MUC backfill may fetch


def ours() -> GatewayKind:
    return GatewayKind(
        key="ours",
        label="matridge (this tree, C core)",
        python=sys.executable,
        args=("--allow-plain-http", "--fetch-allow-hosts=localhost"),
        history_option="--backfill-events",
    )


def upstream() -> GatewayKind:
    python = UPSTREAM_VENV / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"{python} is missing: `make bench` installs upstream matridge "
            f"{UPSTREAM_VERSION} there"
        )
    return GatewayKind(
        key="upstream",
        label=f"upstream matridge {UPSTREAM_VERSION} (matrix-nio)",
        python=str(python),
        args=(),
        history_option="--max-history-fetch",
    )


def kinds() -> list[GatewayKind]:
    return [ours(), upstream()]


def make_gateway(workdir: Path, prosody: Any, kind: GatewayKind, *extra: str) -> Any:
    """The harness's Gateway, run by ``kind``'s interpreter without --debug."""
    from tests.harness.gateway import Gateway

    class BenchGateway(Gateway):
        def command(self) -> list[str]:
            base = super().command()
            # base: [python, "-m", "slidge", "--legacy-module=matridge", ...]
            common = [
                a
                for a in base[4:]
                if a != "--debug"
                and not a.startswith("--allow-plain-http")
                and not a.startswith("--fetch-allow-hosts")
            ]
            return [
                kind.python,
                "-P",
                "-m",
                "slidge",
                "--legacy-module=matridge",
                *common,
                *kind.args,
            ]

    return BenchGateway(workdir, prosody, *extra)


# ---- the gateway process, through /proc ------------------------------------------


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {field}")


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def peak_mib(pid: int) -> float:
    return status_kib(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> None:
    """VmHWM back to the current RSS (Linux >= 4.0)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def cpu_s(pid: int) -> float:
    """utime + stime of every thread of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settle(pid: int, quiet_s: float = 1.0, limit_s: float = 120) -> float:
    """Waits until the process used (almost) no CPU for ``quiet_s``; returns
    how long that took."""
    t0 = time.monotonic()
    last = cpu_s(pid)
    while time.monotonic() - t0 < limit_s:
        await asyncio.sleep(quiet_s)
        now = cpu_s(pid)
        if now - last < 0.02:
            break
        last = now
    else:
        print("  the gateway never went idle", file=sys.stderr)
    return time.monotonic() - t0


# ---- registering through the gateway's form ----------------------------------------


def is_ready(gateway_jid: str) -> Callable[[Any], bool]:
    def match(p: Any) -> bool:
        return p["from"].bare == gateway_jid and any(
            s in p["status"] for s in READY_STATUS
        )

    return match


async def register(
    xmpp: Any, gateway_jid: str, homeserver: str, username: str, password: str
) -> None:
    """Both gateways' forms have homeserver, username, password and device."""
    form = {
        "homeserver": homeserver,
        "username": username,
        "password": password,
        "device": f"bench {uuid.uuid4().hex[:6]}",
    }
    await xmpp.register_with(gateway_jid, form, timeout=300)
    await xmpp.wait_presence(is_ready(gateway_jid), timeout=600)


# ---- a plain Matrix client ----------------------------------------------------------


class MatrixConn:
    """One keep-alive client-server connection of one access token; not
    thread-safe (one per thread)."""

    def __init__(self, base_url: str, token: str, user_id: str) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.base_url = base_url
        self.user_id = user_id
        self.token = token
        self._conn = http.client.HTTPConnection(url.hostname or "", url.port)
        # Transaction ids are per access token: unique across connections.
        self._txn_prefix = uuid.uuid4().hex[:8]
        self._txn = 0

    @classmethod
    def login(cls, base_url: str, user: str, password: str) -> MatrixConn:
        """A new device of ``user``."""
        c = cls(base_url, "", "")
        info = c.call(
            "POST",
            "/login",
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
            },
        )
        c.token, c.user_id = info["access_token"], info["user_id"]
        return c

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            try:
                self._conn.request(method, "/_matrix/client/v3" + path, data, headers)
                resp = self._conn.getresponse()
                answer = resp.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: once more.
                self._conn.close()
                if attempt == 2:
                    raise
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {answer[:300]!r}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def send_text(self, room_id: str, body: str) -> str:
        self._txn += 1
        room = urllib.parse.quote(room_id, safe="")
        path = f"/rooms/{room}/send/m.room.message/{self._txn_prefix}{self._txn}"
        event_id: str = self.call("PUT", path, {"msgtype": "m.text", "body": body})[
            "event_id"
        ]
        return event_id

    def create_room(self, invite: list[str], name: str) -> str:
        room_id: str = self.call(
            "POST",
            "/createRoom",
            {"preset": "private_chat", "name": name, "invite": invite},
        )["room_id"]
        return room_id

    def join(self, room_id: str) -> None:
        self.call("POST", f"/join/{urllib.parse.quote(room_id, safe='')}", {})

    def close(self) -> None:
        self._conn.close()


class BodyWatcher:
    """A bare long-poll /sync client in a thread of its own: when the
    homeserver delivers each message of one room to it (time.perf_counter),
    by body. The "floor" of a relay's latency, and "another Matrix client
    sees it" for XMPP -> Matrix."""

    def __init__(self, conn: MatrixConn, room_id: str) -> None:
        self.conn = conn
        self.room_id = room_id
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._since: str | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        flt = {
            "presence": {"types": []},
            "account_data": {"types": []},
            "room": {
                "rooms": [room_id],
                "timeline": {"limit": 200, "types": ["m.room.message"]},
                "state": {"types": []},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        }
        self._filter = urllib.parse.quote(json.dumps(flt, separators=(",", ":")))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        self._ready.wait(30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()

    def wait(self, body: str) -> asyncio.Future[float]:
        """A future for when ``body`` arrived (set at once if it did)."""
        assert self._loop is not None
        fut: asyncio.Future[float] = self._loop.create_future()
        if body in self.seen:
            fut.set_result(self.seen[body])
        else:
            self._waiters[body] = fut
        return fut

    def forget(self, body: str) -> None:
        self._waiters.pop(body, None)

    def _arrived(self, body: str, t: float) -> None:
        fut = self._waiters.pop(body, None)
        if fut is not None and not fut.done():
            fut.set_result(t)

    def _run(self) -> None:
        # The first sync only gives the position: older messages do not count.
        first = self.conn.call("GET", f"/sync?timeout=0&filter={self._filter}")
        self._since = first["next_batch"]
        self._ready.set()
        while not self._stop.is_set():
            answer = self.conn.call(
                "GET", f"/sync?timeout=1000&since={self._since}&filter={self._filter}"
            )
            now = time.perf_counter()
            self._since = answer["next_batch"]
            room = answer.get("rooms", {}).get("join", {}).get(self.room_id, {})
            for ev in room.get("timeline", {}).get("events", []):
                body = ev.get("content", {}).get("body")
                if isinstance(body, str) and body not in self.seen:
                    self.seen[body] = now
                    assert self._loop is not None
                    self._loop.call_soon_threadsafe(self._arrived, body, now)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
