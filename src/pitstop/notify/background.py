"""The sender's thread in the processes that make decisions (`pitstop serve`, `pitstop controller`).

It only reads the outbox and records attempts, in short transactions of its own: a decision never
waits for it. Any error (the store down, a bug) is logged and the pass tried again next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pitstop.errors import StoreUnavailableError
from pitstop.notify.outbox import Status
from pitstop.notify.sender import Sender

if TYPE_CHECKING:
    from pitstop.context import Context

log = logging.getLogger("pitstop.notify")


class BackgroundSender:
    """`start()` a daemon thread that sends what is due every `notifications.interval`; `stop()` it.

    Built in the process's start, so a bad receiver filter stops the process there (ConfigError)."""

    def __init__(self, ctx: Context, *, on_attempt: Callable[[str, Status], None] | None = None) -> None:
        self.sender = Sender(ctx, on_attempt=on_attempt)
        self.interval = ctx.config.notifications.interval.total_seconds()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="pitstop-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end after its current attempt, and wait at most `timeout` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stop.is_set():
            self.round()
            self._stop.wait(self.interval)

    def round(self) -> None:
        """One pass; never raises."""
        try:
            report = self.sender.send_due()
        except StoreUnavailableError as error:
            log.warning("notifications wait for the store: %s", error)
        except Exception:  # the thread must outlive any failure; the outbox keeps what is unsent
            log.exception("notification pass failed; retried in %gs", self.interval)
        else:
            if report.failed:
                log.warning("%d notification(s) failed for good: see `pitstop notify log`", report.failed)
