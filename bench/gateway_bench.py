"""The gateway-level benchmarks, both gateways in one run.

One Synapse and one Prosody serve the whole run. For each scenario (relay,
backfill, first login, many users) each gateway in turn is started from an
empty home directory, measured, and stopped, so that the two see the same
homeserver and the same data. The shared data (the big account, the users)
is made once, before the first gateway needs it.

A scenario that fails for one gateway is recorded as an error and the run
goes on.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from . import backfill_bench, login_bench, machine, relay_bench, users_bench
from . import gateways as gw

SCENARIOS = ("relay", "backfill", "login", "users")


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {
            "relay_messages": relay_bench.QUICK_MESSAGES,
            "burst": relay_bench.BURST,
            "backfill_events": backfill_bench.QUICK_EVENTS,
            "backfill_runs": 1,
            "login_rooms": login_bench.QUICK_ROOMS,
            "login_events": login_bench.QUICK_EVENTS,
            "users": users_bench.QUICK_USERS,
            "idle_s": users_bench.QUICK_IDLE_S,
        }
    return {
        "relay_messages": relay_bench.FULL_MESSAGES,
        "burst": relay_bench.BURST,
        "backfill_events": backfill_bench.FULL_EVENTS,
        "backfill_runs": backfill_bench.FULL_RUNS,
        "login_rooms": login_bench.FULL_ROOMS,
        "login_events": login_bench.FULL_EVENTS,
        "users": users_bench.FULL_USERS,
        "idle_s": users_bench.FULL_IDLE_S,
    }


def run(
    quick: bool,
    seed: int,
    work_dir: Path,
    only: tuple[str, ...] = SCENARIOS,
    profile: Path | None = None,
) -> dict[str, Any]:
    from tests.harness.prosody import Prosody
    from tests.harness.synapse import Synapse

    size = sizes(quick)
    kinds = gw.kinds()
    acct: login_bench.BigAccount | None = None
    results: dict[str, Any] = {
        "sizes": size,
        "gateways": {k.key: k.label for k in kinds},
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    # Servers start from this (main) thread: see tests.harness.ports.with_pdeathsig.
    with tempfile.TemporaryDirectory(dir=work_dir.resolve()) as tmp_name:
        tmp = Path(tmp_name)
        if "login" in only:
            # The big account is slow to make: kept across runs (see login_bench).
            made = login_bench.fixture(
                work_dir, size["login_rooms"], size["login_events"]
            )
            synapse_server, acct = login_bench.synapse_from(made, tmp / "synapse")
        else:
            synapse_server = Synapse(tmp / "synapse")
        print("  gateways: starting Synapse and Prosody", file=sys.stderr)
        with (
            synapse_server as synapse,
            Prosody(tmp / "prosody", privilege=False) as prosody,
        ):

            def each(
                scenario: str,
                make: Callable[[Any, gw.GatewayKind], Coroutine[Any, Any, Any]],
                *extra: Callable[[gw.GatewayKind], str],
            ) -> dict[str, Any]:
                out: dict[str, Any] = {}
                info = machine.describe()
                # A later run of other scenarios keeps this one: say when.
                results.setdefault("when", {})[scenario] = (
                    f"{info['Date (UTC)']}, {info['matridge']}"
                )
                for kind in kinds:
                    args = [f(kind) for f in extra]
                    home = tmp / f"{scenario}-{kind.key}"
                    try:
                        with gw.make_gateway(home, prosody, kind, *args) as gateway:
                            out[kind.key] = asyncio.run(make(gateway, kind))
                    except Exception as e:
                        traceback.print_exc()
                        out[kind.key] = {"error": f"{type(e).__name__}: {e}"}
                return out

            if "relay" in only:
                results["relay"] = each(
                    "relay",
                    lambda g, k: relay_bench.run(
                        synapse,
                        prosody,
                        g,
                        k,
                        size["relay_messages"],
                        profile if k.key == "ours" else None,
                    ),
                )
            if "backfill" in only:
                count, runs = size["backfill_events"], size["backfill_runs"]

                async def backfill(g: Any, k: gw.GatewayKind) -> dict[str, Any]:
                    done = await backfill_bench._runs(
                        synapse, prosody, g, count, runs, seed
                    )
                    return backfill_bench.summarize(count, runs, done).__dict__

                results["backfill"] = each(
                    "backfill",
                    backfill,
                    lambda k: f"{k.history_option}={count + 500}",
                )
            if acct is not None:
                big = acct
                results["login"] = {
                    "seed_s": big.seed_s,
                    **each(
                        "login",
                        lambda g, k: login_bench.run(synapse, prosody, g, k, big),
                    ),
                }
            if "users" in only:
                people = users_bench.seed(synapse, size["users"])
                results["users"] = each(
                    "users",
                    lambda g, k: users_bench.run(
                        synapse, prosody, g, k, people, size["idle_s"]
                    ),
                )
    return results
