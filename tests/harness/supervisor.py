"""The gateway under a supervisor, as the admin guide's systemd unit runs it
(``Restart=always``, ``RestartSec=5``): slidge exits when it loses its XMPP
server, and is started again until that server is back."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Self

from .gateway import Gateway

# The unit's RestartSec.
RESTART_SECONDS = 5.0


class Supervisor:
    """Watches one Gateway's process from a thread and starts it again,
    after RESTART_SECONDS, whenever it exits."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.exit_codes: list[int] = []  # of every exit seen, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Self:
        if self.gateway.proc is None:
            self.gateway.start()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_exits(self, count: int, timeout: float = 120) -> None:
        """Until the gateway has exited `count` times in all."""
        deadline = time.monotonic() + timeout
        while len(self.exit_codes) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the gateway exited {len(self.exit_codes)} time(s), not "
                    f"{count}:\n{self.gateway.log_tail()}"
                )
            time.sleep(0.1)

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            proc = self.gateway.proc
            if proc is None or proc.poll() is None:
                continue
            self.exit_codes.append(proc.returncode)
            if self._stop.wait(RESTART_SECONDS):
                return
            self.gateway.spawn()
