"""Idle-scale benchmark: N accounts long-polling /sync at once.

Each (client library, N) runs in a fresh process (``python -m
bench.idle_bench IMPL N``) against its own stand-in homeserver
(bench/idleserver.py, another process) that holds every long-poll open for
as long as the client's ``timeout`` asks, so that ten thousand accounts
cost the server little and the client stays idle. Both processes raise
their soft RLIMIT_NOFILE to the hard limit (ten thousand sockets need it).

The worker starts N sync loops, waits until the server holds all N second
long-polls (start-up), lets them settle, then counts threads
(/proc/self/task), open descriptors and RSS over the process's baseline.
Then it measures CPU time, of the whole process and of matridge's engine
thread alone (its thread CPU clock, found by the thread's name):
 - idle: IDLE_S seconds in which nothing moves;
 - traffic: for TRAFFIC_S seconds the server answers TRAFFIC_PER_S of the
   held long-polls per second (each answered account at once polls again),
   so CPU per answered /sync and per engine wake-up (the engine thread's
   voluntary context switches: each is one wait in epoll or poll) show
   whether a wake-up costs more when more accounts sit idle beside it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from . import procstat
from .idleserver import raise_open_files_limit

# Long enough that no held long-poll ends during a run: the server answers
# only when told to (the engine's request timeout is this plus 30 s).
SYNC_TIMEOUT_MS = 600_000
SETTLE_S = 2.0  # after start-up: every loop back in its long-poll
IDLE_S = 5.0
TRAFFIC_PER_S = 100
TRAFFIC_S = 5.0
STARTUP_TIMEOUT_S = 900.0
ENGINE_THREAD = "mx-engine"  # pthread_setname_np in csrc/engine/engine.c


@dataclass(frozen=True)
class IdleResult:
    impl: str
    accounts: int
    threads: int  # threads of the whole process, idle
    baseline_threads: int  # before any client existed
    fds_added: int  # open descriptors added (sockets, mostly)
    rss_mib: float  # RSS over the baseline
    rss_kib_per_account: float
    startup_s: float  # from the first start_sync to all N long-polls held
    idle_cpu_ms_per_s: float  # whole process, nothing moving
    idle_engine_cpu_ms_per_s: float | None  # matridge's engine thread alone
    idle_engine_wakeups_per_s: float | None
    answered: int  # /sync answers during the traffic window
    cpu_us_per_sync: float  # whole process, per answered /sync
    engine_cpu_us_per_sync: float | None
    engine_wakeups: int | None  # during the traffic window
    engine_cpu_us_per_wakeup: float | None


async def _matridge(n: int, homeserver: str) -> Any:
    from matridge.matrix import MatrixClient, SyncBatch

    errors: list[Exception] = []
    clients = []

    def on_batch_for(client: MatrixClient) -> Any:
        def on_batch(batch: SyncBatch) -> None:
            client.sync_ack()

        return on_batch

    def on_error(e: Exception, fatal: bool) -> None:
        errors.append(e)

    for i in range(n):
        client = MatrixClient(homeserver, f"token{i}")
        client.start_sync(on_batch_for(client), on_error, None, SYNC_TIMEOUT_MS)
        clients.append(client)

    async def stop() -> None:
        for c in clients:
            c.stop_sync()

    return stop, errors


async def _nio(n: int, homeserver: str) -> Any:
    from nio import AsyncClient, AsyncClientConfig, SyncResponse

    config = AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
    errors: list[Any] = []

    async def loop_of(client: AsyncClient) -> None:
        while True:
            resp = await client.sync(timeout=SYNC_TIMEOUT_MS)
            if not isinstance(resp, SyncResponse):
                errors.append(resp)
                await asyncio.sleep(1)

    clients, tasks = [], []
    for i in range(n):
        client = AsyncClient(homeserver, f"@idle{i}:bench", f"DEVICE{i}", config=config)
        client.access_token = f"token{i}"
        clients.append(client)
        tasks.append(asyncio.create_task(loop_of(client)))

    async def stop() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients))

    return stop, errors


# ---- CPU of the process and of one thread ----------------------------------


def _engine_tid() -> int | None:
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() == ENGINE_THREAD:
                    return int(tid)
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class _Cpu:
    process_ns: int
    engine_ns: int | None
    engine_switches: int | None

    @staticmethod
    def now(tid: int | None) -> _Cpu:
        if tid is None:
            return _Cpu(time.process_time_ns(), None, None)
        # Linux's CPU clock of thread `tid` (CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD).
        engine_ns = time.clock_gettime_ns(((~tid) << 3) | 6)
        switches = None
        with open(f"/proc/self/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    switches = int(line.split()[1])
        return _Cpu(time.process_time_ns(), engine_ns, switches)


class _Homeserver:
    """The stand-in server process and its command pipe."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    @staticmethod
    async def start() -> _Homeserver:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.idleserver",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=procstat.ROOT,
            env=procstat.worker_env(),
        )
        word, port = (await _read_line(proc)).split()
        assert word == "port"
        return _Homeserver(proc, int(port))

    async def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        return await _read_line(self.proc)

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def _read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await proc.stdout.readline()
    if not line:
        raise RuntimeError("the stand-in homeserver exited")
    return line.decode().strip()


async def measure(impl: str, n: int) -> IdleResult:
    start = {"matridge": _matridge, "matrix-nio": _nio}[impl]
    if impl == "matridge":
        import matridge.matrix  # noqa: F401  (slidge comes with it)
    else:
        import nio  # noqa: F401
    server = await _Homeserver.start()
    await asyncio.sleep(0.2)
    baseline_rss = procstat.rss_bytes()
    baseline_threads = procstat.thread_count()
    baseline_fds = procstat.open_fds()
    t0 = time.perf_counter()
    stop, errors = await start(n, server.url)
    await asyncio.wait_for(server.ask(f"held {n}"), STARTUP_TIMEOUT_S)
    startup = time.perf_counter() - t0
    await asyncio.sleep(SETTLE_S)
    rss = procstat.rss_bytes() - baseline_rss
    threads = procstat.thread_count()
    fds_added = procstat.open_fds() - baseline_fds
    tid = _engine_tid() if impl == "matridge" else None

    before = _Cpu.now(tid)
    await asyncio.sleep(IDLE_S)
    idle = _Cpu.now(tid)
    reply = await server.ask(f"trickle {TRAFFIC_PER_S} {TRAFFIC_S}")
    await asyncio.sleep(0.5)  # the last answers handled
    busy = _Cpu.now(tid)
    answered = int(reply.split()[1])

    def per_s(a: int | None, b: int | None) -> float | None:
        return None if a is None or b is None else (b - a) / 1e6 / IDLE_S

    wakeups = (
        None
        if busy.engine_switches is None or idle.engine_switches is None
        else busy.engine_switches - idle.engine_switches
    )
    engine_busy_ns = (
        None
        if busy.engine_ns is None or idle.engine_ns is None
        else busy.engine_ns - idle.engine_ns
    )
    result = IdleResult(
        impl=impl,
        accounts=n,
        threads=threads,
        baseline_threads=baseline_threads,
        fds_added=fds_added,
        rss_mib=rss / 2**20,
        rss_kib_per_account=rss / 1024 / n,
        startup_s=startup,
        idle_cpu_ms_per_s=(idle.process_ns - before.process_ns) / 1e6 / IDLE_S,
        idle_engine_cpu_ms_per_s=per_s(before.engine_ns, idle.engine_ns),
        idle_engine_wakeups_per_s=(
            None
            if idle.engine_switches is None or before.engine_switches is None
            else (idle.engine_switches - before.engine_switches) / IDLE_S
        ),
        answered=answered,
        cpu_us_per_sync=(busy.process_ns - idle.process_ns) / 1e3 / max(answered, 1),
        engine_cpu_us_per_sync=(
            None if engine_busy_ns is None else engine_busy_ns / 1e3 / max(answered, 1)
        ),
        engine_wakeups=wakeups,
        engine_cpu_us_per_wakeup=(
            None
            if engine_busy_ns is None or not wakeups
            else engine_busy_ns / 1e3 / wakeups
        ),
    )
    await stop()
    await server.stop()
    if errors:
        print(f"  {impl}: {len(errors)} sync errors: {errors[:3]}", file=sys.stderr)
    return result


# ---- the parent ---------------------------------------------------------------


def run(sizes: list[int], nio_sizes: list[int]) -> list[IdleResult]:
    results = []
    runs = [("matridge", n) for n in sizes]
    runs += [("matrix-nio", n) for n in nio_sizes]
    for impl, n in runs:
        print(f"  idle: {impl}, {n} accounts", file=sys.stderr, flush=True)
        raw = procstat.run_worker("bench.idle_bench", impl, str(n))
        results.append(IdleResult(**raw))
    return results


def main(argv: list[str]) -> None:
    impl, n = argv
    raise_open_files_limit()
    result = asyncio.run(measure(impl, int(n)))
    procstat.emit(result.__dict__)


if __name__ == "__main__":
    main(sys.argv[1:])
