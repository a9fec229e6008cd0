"""Pushed routing on PostgreSQL: one dedicated connection per gateway doing `LISTEN pitstop_routing`.

`routing.store.save` issues `NOTIFY pitstop_routing, '<model>'` in the transaction that writes a
table, so the notification arrives only once the table is committed. The listener runs on a thread
of its own (psycopg's `notifies()` blocks) and calls `on_change` for each notification and after
every (re)connection, since a notification sent while it was not listening is lost. The gateway's
poll stays the fallback: when the connection breaks, the listener reports it down (`on_state`) and
reconnects with a growing backoff, while the gateway keeps polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL

from pitstop.routing.store import CHANNEL

FIRST_BACKOFF = 0.2  # seconds before the first reconnection; doubles up to MAX_BACKOFF
MAX_BACKOFF = 10.0
WAKE_EVERY = 0.5  # how often the thread checks it was asked to stop while no notification comes

log = logging.getLogger(__name__)


def conninfo(url: URL) -> str:
    """libpq's connection string for a SQLAlchemy PostgreSQL URL, its query (such as `options`) kept.

    Keywords, not a URI: a URI's query is percent-decoded only, so the `+` that stands for a space in
    a rendered URL (`options=-c+statement_timeout%3D…`) would reach the server as a `+`.

    >>> from sqlalchemy import make_url
    >>> conninfo(make_url("postgresql+psycopg://u:p@db:5432/x?options=-csearch_path%3Ds+-c+a%3D1"))
    "host=db port=5432 user=u password=p dbname=x options='-csearch_path=s -c a=1'"
    """
    fields = {"host": url.host, "port": url.port, "user": url.username, "password": url.password}
    query = {key: " ".join(value) if isinstance(value, tuple) else value for key, value in url.query.items()}
    chosen = {key: value for key, value in {**fields, "dbname": url.database, **query}.items() if value}
    return make_conninfo("", **chosen)


class RoutingListener:
    """A thread listening for routing changes; `on_change()` after each one and after (re)connecting.

    Both callbacks run on the listener's thread: they must only hand the news over (e.g. with
    `loop.call_soon_threadsafe`). `on_state(True)` once listening, `on_state(False)` when the
    connection broke.
    """

    def __init__(
        self,
        url: URL,
        on_change: Callable[[], None],
        on_state: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self._conninfo = conninfo(url)
        self._on_change = on_change
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.backend_pid: int | None = None  # the listening connection's server process, while up

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pitstop-routing-listen", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stop.is_set():
            try:
                self._listen()
                return  # asked to stop
            except Exception as error:  # the connection broke or could not be made: poll meanwhile
                if self.backend_pid is not None:  # it was up: start the backoff over
                    backoff = FIRST_BACKOFF
                self.backend_pid = None
                self._on_state(False)
                log.warning(
                    "routing push: %s: %s; polling until reconnected (in %.1fs)",
                    type(error).__name__,
                    error,
                    backoff,
                )
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = conn.info.backend_pid
            self._on_state(True)
            self._on_change()  # whatever changed while not listening
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=WAKE_EVERY, stop_after=1):
                    self._on_change()
