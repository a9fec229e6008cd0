"""The context every layer above the store works in: a workspace folder's configuration, its store
(engine and transactions), its artifacts, clock and signing keys. `Workspace` (the Python API) is one;
lower layers take a `Context` and never the facade."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Self

from sqlalchemy import Connection, Engine

from pitstop import signing
from pitstop.artifacts import ArtifactStore
from pitstop.clock import Clock, SystemClock
from pitstop.config import CONFIG_FILE, STATE_DIR, Config, load_config
from pitstop.config import database_url as resolve_database_url
from pitstop.errors import NotFoundError, StoreUnavailableError, describe_os_error
from pitstop.store.engine import (
    describe_store_error,
    make_engine,
    read_transaction,
    safe_url,
    sqlite_file,
    store_hint,
    write_transaction,
)
from pitstop.store.migrate import current_revision, head_revision, upgrade

# Set while a gateway process builds its app (`serving.server.app_from_env`), so the workspace that
# uvicorn's factory opens is a service's without every factory having to say so.
_SERVICE: ContextVar[bool] = ContextVar("pitstop_service_workspace", default=False)


@contextmanager
def service_workspaces() -> Iterator[None]:
    """Workspaces opened inside default to `service=True` (see `Workspace`)."""
    token = _SERVICE.set(True)
    try:
        yield
    finally:
        _SERVICE.reset(token)


def resolve_workspace_path(path: str | Path | None) -> Path:
    """The workspace folder: the argument, else `PITSTOP_WORKSPACE`, else the current folder."""
    chosen = path if path is not None else os.environ.get("PITSTOP_WORKSPACE") or "."
    return Path(chosen).expanduser().resolve()


class Context:
    """A folder holding `pitstop.yaml`, and the store and artifacts it points to."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        clock: Clock | None = None,
        check_schema: bool = True,
        database_url: str | None = None,
        service: bool | None = None,
        keys: signing.Keys | None = None,
    ):
        """Open the workspace at `path` and its store, which must exist at pitstop's schema.

        `check_schema=False` opens it to create or upgrade the store (`init`, `db upgrade`). `keys`
        sign new versions and verify every load (default: from the environment, `signing.py`).

        `service=True` opens it for a long-running service (a gateway, its controller): its statements
        are cancelled after `store.statement_timeout`, and a store that cannot be reached does not stop
        it opening: `store_problem` says why, and `check_store()` retries (a gateway then starts from
        its routing cache). Commands are not services: a report or a migration on a big store may
        legitimately take long. Default: inside `service_workspaces()`, else False."""
        self.path = resolve_workspace_path(path)
        config_file = self.path / CONFIG_FILE
        if not config_file.exists():
            raise NotFoundError(
                f"{self.path} is not a pitstop workspace (no {CONFIG_FILE}); run `pitstop init {path or '.'}`"
            )
        self.config: Config = load_config(config_file)
        self.clock: Clock = clock or SystemClock()
        self.keys = keys if keys is not None else signing.Keys.from_environment()
        self.database_url = database_url or resolve_database_url(self.config, self.path)
        self.service = _SERVICE.get() if service is None else service
        self.store_problem: str | None = None
        if check_schema:  # without the check the caller creates the store (`init`, `db upgrade`)
            self._check_store_exists()
        try:  # creates a SQLite store's folder
            self.engine: Engine = self._make_engine()
        except OSError as error:
            raise StoreUnavailableError(f"cannot create the store: {describe_os_error(error)}") from None
        self.artifacts = ArtifactStore(self.config.artifact_store or str(self.path / STATE_DIR / "artifacts"))
        if check_schema:
            try:
                self._check_schema()
            except _Unreachable as error:
                if not self.service:
                    self.engine.dispose()
                    raise StoreUnavailableError(str(error)) from None
                self.store_problem = str(error)
            except BaseException:
                self.engine.dispose()
                raise

    def _make_engine(self) -> Engine:
        settings = self.config.store
        statement = settings.statement_timeout.total_seconds() if self.service else 0.0
        return make_engine(
            self.database_url,
            connect_timeout=settings.connect_timeout.total_seconds(),
            statement_timeout=statement or None,  # 0: no limit
            busy_timeout=settings.busy_timeout.total_seconds(),
        )

    def check_store(self) -> None:
        """Raise StoreUnavailableError unless the store answers at pitstop's schema; clears
        `store_problem` when it does (a service opened while the store was down)."""
        try:
            self._check_schema()
        except _Unreachable as error:
            self.store_problem = str(error)
            raise StoreUnavailableError(str(error)) from None
        self.store_problem = None

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations; returns the schema revision before and after."""
        try:
            return upgrade(self.engine)
        except StoreUnavailableError:
            raise
        except Exception as error:
            if "connect" in str(error).lower():
                raise self._unreachable(error) from None
            raise

    def _check_store_exists(self) -> None:
        """A missing SQLite file is refused, not created: opening a store to use it leaves nothing behind."""
        store = sqlite_file(self.database_url)
        if store is not None and not store.exists():
            raise StoreUnavailableError(
                f"there is no store at {store}: create it with `pitstop init {self.path}` "
                f"or `pitstop db upgrade -w {self.path}`"
            )

    def _check_schema(self) -> None:
        try:
            revision = current_revision(self.engine)
        except Exception as error:
            raise _Unreachable(str(self._unreachable(error))) from None
        if revision != head_revision():
            state = "empty" if revision is None else f"at schema {revision}"
            raise StoreUnavailableError(
                f"the store at {safe_url(self.engine)} is {state}, pitstop needs {head_revision()}: "
                "run `pitstop db upgrade`"
            )

    def _unreachable(self, error: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot reach the store at {safe_url(self.engine)}: {describe_store_error(error)}; "
            f"{store_hint(self.engine)}"
        )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction: everything inside commits together or not at all."""
        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with read_transaction(self.engine) as conn:
            yield conn


class _Unreachable(Exception):
    """The store did not answer (as opposed to answering at the wrong schema)."""
