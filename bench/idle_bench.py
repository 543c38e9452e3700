"""Idle-scale benchmark: N accounts long-polling a real Synapse at once.

The parent starts Synapse (tests.harness.synapse) and registers the users;
each (client library, N) runs in a fresh process (``python -m
bench.idle_bench IMPL N ACCOUNTS_FILE HOMESERVER``) that starts N sync
loops with a 30 s timeout, waits until every account has had its first
batch, lets them settle into their long-polls, then counts threads
(/proc/self/task), open descriptors and RSS over the process's baseline.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import procstat

SYNC_TIMEOUT_MS = 30_000
SETTLE_S = 3.0  # after the last first batch: every loop back in its long-poll
FIRST_BATCH_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class IdleResult:
    impl: str
    accounts: int
    threads: int  # threads of the whole process, idle
    baseline_threads: int  # before any client existed
    fds_added: int  # open descriptors added (sockets, mostly)
    rss_mib: float  # RSS over the baseline
    rss_kib_per_account: float
    startup_s: float  # from the first start_sync to every first batch


@dataclass(frozen=True)
class Account:
    user_id: str
    access_token: str
    device_id: str


# ---- the workers --------------------------------------------------------------


async def _matridge(accounts: list[Account], homeserver: str) -> Any:
    from matridge.matrix import MatrixClient, SyncBatch

    pending = len(accounts)
    all_first = asyncio.get_running_loop().create_future()
    errors: list[Exception] = []
    clients = []

    def on_batch_for(client: MatrixClient) -> Any:
        first = True

        def on_batch(batch: SyncBatch) -> None:
            nonlocal first, pending
            client.sync_ack()
            if first:
                first = False
                pending -= 1
                if pending == 0 and not all_first.done():
                    all_first.set_result(None)

        return on_batch

    def on_error(e: Exception, fatal: bool) -> None:
        errors.append(e)
        if fatal and not all_first.done():
            all_first.set_exception(e)

    for acc in accounts:
        client = MatrixClient(homeserver, acc.access_token)
        client.start_sync(on_batch_for(client), on_error, None, SYNC_TIMEOUT_MS)
        clients.append(client)
    await asyncio.wait_for(all_first, FIRST_BATCH_TIMEOUT_S)

    async def stop() -> None:
        for c in clients:
            c.stop_sync()

    return stop, errors


async def _nio(accounts: list[Account], homeserver: str) -> Any:
    from nio import AsyncClient, AsyncClientConfig, SyncResponse

    config = AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False)
    pending = len(accounts)
    all_first = asyncio.get_running_loop().create_future()
    errors: list[Any] = []

    async def loop_of(client: AsyncClient) -> None:
        nonlocal pending
        first = True
        while True:
            resp = await client.sync(timeout=SYNC_TIMEOUT_MS)
            if not isinstance(resp, SyncResponse):
                errors.append(resp)
                await asyncio.sleep(1)
                continue
            if first:
                first = False
                pending -= 1
                if pending == 0 and not all_first.done():
                    all_first.set_result(None)

    clients, tasks = [], []
    for acc in accounts:
        client = AsyncClient(homeserver, acc.user_id, acc.device_id, config=config)
        client.access_token = acc.access_token
        clients.append(client)
        tasks.append(asyncio.create_task(loop_of(client)))
    await asyncio.wait_for(all_first, FIRST_BATCH_TIMEOUT_S)

    async def stop() -> None:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in clients))

    return stop, errors


async def measure(impl: str, accounts: list[Account], homeserver: str) -> IdleResult:
    n = len(accounts)
    start = {"matridge": _matridge, "matrix-nio": _nio}[impl]
    if impl == "matridge":
        import matridge.matrix  # noqa: F401  (slidge comes with it)
    else:
        import nio  # noqa: F401
    await asyncio.sleep(0.2)
    baseline_rss = procstat.rss_bytes()
    baseline_threads = procstat.thread_count()
    baseline_fds = procstat.open_fds()
    t0 = time.perf_counter()
    stop, errors = await start(accounts, homeserver)
    startup = time.perf_counter() - t0
    await asyncio.sleep(SETTLE_S)
    rss = procstat.rss_bytes() - baseline_rss
    result = IdleResult(
        impl=impl,
        accounts=n,
        threads=procstat.thread_count(),
        baseline_threads=baseline_threads,
        fds_added=procstat.open_fds() - baseline_fds,
        rss_mib=rss / 2**20,
        rss_kib_per_account=rss / 1024 / n,
        startup_s=startup,
    )
    await stop()
    if errors:
        print(f"  {impl}: {len(errors)} sync errors: {errors[:3]}", file=sys.stderr)
    return result


# ---- the parent ---------------------------------------------------------------


def _register(synapse: Any, count: int) -> list[Account]:
    def one(i: int) -> Account:
        info = synapse.register_user(f"idle{i}", "pw")
        return Account(info["user_id"], info["access_token"], info["device_id"])

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


def run(sizes: list[int], nio_sizes: list[int], work_dir: Path) -> list[IdleResult]:
    from tests.harness.synapse import Synapse

    work_dir.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=work_dir.resolve()) as tmp:
        synapse = Synapse(Path(tmp) / "synapse")
        print("  idle: starting Synapse", file=sys.stderr, flush=True)
        synapse.start()
        try:
            count = max(sizes + nio_sizes)
            print(f"  idle: registering {count} users", file=sys.stderr, flush=True)
            accounts = _register(synapse, count)
            accounts_file = Path(tmp) / "accounts.json"
            accounts_file.write_text(json.dumps([a.__dict__ for a in accounts]))
            runs = [("matridge", n) for n in sizes]
            runs += [("matrix-nio", n) for n in nio_sizes]
            for impl, n in runs:
                print(f"  idle: {impl}, {n} accounts", file=sys.stderr, flush=True)
                raw = procstat.run_worker(
                    "bench.idle_bench",
                    impl,
                    str(n),
                    str(accounts_file),
                    synapse.base_url,
                )
                results.append(IdleResult(**raw))
        finally:
            synapse.stop()
    return results


def main(argv: list[str]) -> None:
    impl, n, accounts_file, homeserver = argv
    registered = json.loads(Path(accounts_file).read_text())
    if len(registered) < int(n):
        raise ValueError(f"only {len(registered)} accounts registered, {n} asked")
    accounts = [Account(**a) for a in registered[: int(n)]]
    result = asyncio.run(measure(impl, accounts, homeserver))
    procstat.emit(result.__dict__)


if __name__ == "__main__":
    main(sys.argv[1:])
