"""What a session knows about the health of its /sync loop, for the
``sync-status`` command: when the last batch was processed, which token it
ended with, and the last failure."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class SyncHealth:
    """Updated by the session's sync consumer and its error callback."""

    last_batch_at: float | None = None  # time.time() when a batch was processed
    batches: int = 0  # batches processed since login
    next_batch: str | None = None
    last_error: str | None = None  # the last failure, cleared by the next batch
    stopped: str | None = None  # why the loop ended for good, if it did

    def batch_done(self, next_batch: str) -> None:
        self.last_batch_at = time.time()
        self.batches += 1
        self.next_batch = next_batch
        self.last_error = None

    def failed(self, error: Exception, fatal: bool) -> None:
        self.last_error = str(error) or type(error).__name__
        if fatal:
            self.stopped = self.last_error

    def age(self) -> float | None:
        """Seconds since the last processed batch, or None if there was none."""
        if self.last_batch_at is None:
            return None
        return max(0.0, time.time() - self.last_batch_at)
