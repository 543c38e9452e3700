"""What the figures were measured on."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata

from .procstat import ROOT

LIBRARIES = ("orjson", "msgspec", "matrix-nio", "mautrix", "matrix-synapse")


def _first(path: str, key: str) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _run(*cmd: str) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    """The checkout's commit, "-dirty" if code (not the page) has changes."""
    commit = _run("git", "describe", "--always") or "unknown"
    if _run("git", "status", "--porcelain", "--", "csrc", "matridge", "bench"):
        commit += "-dirty"
    return commit


def describe() -> dict[str, str]:
    mem_kib = _first("/proc/meminfo", "MemTotal")
    ram = f"{int(mem_kib.split()[0]) / 2**20:.1f} GiB" if mem_kib else "unknown"
    info = {
        "Date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": _first("/proc/cpuinfo", "model name") or platform.processor(),
        "Cores": str(os.cpu_count()),
        "RAM": ram,
        "Kernel": platform.release(),
        "Python": platform.python_version(),
        "matridge": _commit(),
        "libcurl": _run("curl-config", "--version") or "unknown",
        "cJSON": _run("dpkg-query", "-W", "-f=${Version}", "libcjson-dev") or "unknown",
    }
    for dist in LIBRARIES:
        info[dist] = _version(dist)
    return info
