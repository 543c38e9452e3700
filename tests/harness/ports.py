"""Loopback port and subprocess helpers shared by the server wrappers."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

__all__ = [
    "free_port",
    "port_open",
    "stop_process",
    "tail",
    "wait_for",
    "with_pdeathsig",
]


# Every port handed out in this run: the kernel may offer a closed probe's
# port again, and two servers of one set-up (Prosody's three) given the same
# port would fail to start.
_handed_out: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago and was
    never returned before in this run.

    There is an unavoidable race between closing the probe socket and the
    server binding it, but on a test machine it is good enough.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def wait_for(
    what: str,
    check: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    logs: list[Path],
    timeout: float,
) -> None:
    """Poll ``check()`` until it is true; fail early if ``proc`` dies.

    The RuntimeError carries the tail of every log so a failing CI run
    explains itself without digging into temp dirs.
    """
    deadline = time.monotonic() + timeout
    while True:
        rc = proc.poll()
        if rc is not None:
            raise RuntimeError(
                f"{what}: process exited with code {rc} during startup\n"
                + _logs_tail(logs)
            )
        if check():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what}: not ready after {timeout:.0f}s\n" + _logs_tail(logs)
            )
        time.sleep(0.1)


def _logs_tail(logs: list[Path]) -> str:
    return "\n".join(f"--- tail of {p} ---\n{tail(p)}" for p in logs)


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def with_pdeathsig(cmd: list[str]) -> list[str]:
    """Wrap ``cmd`` so the child gets SIGTERM when this process dies.

    Keeps servers from leaking if pytest is SIGKILLed. Done with util-linux
    ``setpriv`` rather than a ``preexec_fn``, which can deadlock in a process
    with other threads (the gateway's engine thread). The kernel fires it when
    the *thread* that spawned the child exits, so start servers from a
    long-lived thread (the main thread, as pytest fixtures do).
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return cmd
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd]


def start_and_wait(
    name: str,
    cmd: list[str],
    cwd: Path,
    stdout_path: Path,
    ready: Callable[[], bool],
    logs: list[Path],
    timeout: float,
) -> subprocess.Popen[bytes]:
    """Starts a server (dying with its parent), its output appended to
    ``stdout_path``, and waits until ``ready()``; one that does not come up
    is stopped again, never left half-started."""
    with stdout_path.open("ab") as out:
        proc = subprocess.Popen(
            with_pdeathsig(cmd),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(name, ready, proc, logs, timeout)
    except BaseException:
        stop_process(proc)
        raise
    return proc


class ServerProcess:
    """A server run as a child process: subclasses start it (with
    start_and_wait); stopping, restarting and the context manager are here."""

    stop_timeout = 10.0

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        stop_process(self.proc, timeout=self.stop_timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to finish anything."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        """Stops the server (gracefully, or with SIGKILL) and starts it again."""
        if kill:
            self.kill()
        else:
            self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
