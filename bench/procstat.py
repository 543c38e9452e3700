"""Process measurements from /proc (Linux), and running a benchmark worker in
a fresh interpreter so that one measurement never inherits another's heap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux ≥ 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def worker_env() -> dict[str, str]:
    """This checkout's matridge (and bench) first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    return env


def run_worker(module: str, *args: str, timeout: float = 1800) -> Any:
    """Runs ``python -m module args`` and returns the JSON of its last
    stdout line; its stderr passes through, for progress and errors."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
    )
    lines = proc.stdout.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode})")
    return json.loads(lines[-1])


def emit(result: Any) -> None:
    """The worker's side of run_worker."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
