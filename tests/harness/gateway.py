"""The gateway under test: `slidge --legacy-module=matridge` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Self

from .ports import stop_process, tail, wait_for, with_pdeathsig
from .prosody import Prosody

READY_LINE = "Slidge has successfully started"


class Gateway:
    """Runs slidge with matridge against a Prosody, keeping its home dir (and so
    its database) across restarts."""

    def __init__(self, workdir: Path, prosody: Prosody, *extra_args: str) -> None:
        self.workdir = workdir
        self.prosody = prosody
        self.extra_args = extra_args
        self.home = workdir / "home"
        self.log_path = workdir / "gateway.log"
        # The gateway's own temporary directory, so tests can see leftovers.
        self.tmp = workdir / "tmp"
        self.proc: subprocess.Popen[bytes] | None = None
        self.jid = prosody.component_jid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "slidge",
            "--legacy-module=matridge",
            f"--jid={self.prosody.component_jid}",
            f"--secret={self.prosody.component_secret}",
            "--server=127.0.0.1",
            f"--port={self.prosody.component_port}",
            f"--home-dir={self.home}",
            f"--user-jid-validator=.*@{self.prosody.domain}",
            f"--upload-service={self.prosody.upload_jid}",
            "--debug",
            "--allow-plain-http",
            # The test Prosody's upload service (see Prosody.http_url).
            "--fetch-allow-hosts=localhost",
            *self.extra_args,
        ]

    def start(self, timeout: float = 60) -> None:
        offset = self.spawn()
        assert self.proc is not None

        def ready() -> bool:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return READY_LINE.encode() in f.read()

        wait_for("the gateway", ready, self.proc, [self.log_path], timeout)

    def spawn(self) -> int:
        """Starts the process without waiting for it to be ready; returns
        where its part of the log begins."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(self.tmp)}
        self.proc = subprocess.Popen(
            with_pdeathsig(self.command()),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        return offset

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up or persist anything more."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
