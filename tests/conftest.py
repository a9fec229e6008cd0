"""Fixtures: real SQLite, real PostgreSQL (when configured), workspaces, and the CLI's real entry point."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from browser import ARTIFACTS, headless_chromium
from helpers import fresh_postgres_schema
from pitstop.cli import main
from pitstop.workspace import Workspace
from store_templates import PostgresTemplate, copy_sqlite, migrated_sqlite, postgres_template

# MLflow's telemetry, off before anything imports mlflow: it would send usage data (nothing may reach
# the internet here), and its background thread sets and unsets an environment variable while other
# threads iterate os.environ (requests reading proxies), which raised KeyError in the MLflow tests.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

PG_ENV = "PITSTOP_TEST_DATABASE_URL"
PG_HINT = (
    f"PostgreSQL tests skipped: set {PG_ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test to run them"
)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not os.environ.get(PG_ENV):
        terminalreporter.write_line(PG_HINT, yellow=True)


SHARED_SCOPES = ("module", "package")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (its own hook, same name)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (make test), the tests that share a module- or package-scoped fixture
    run on one process, so the fixture is built once instead of once per process: an MLflow server,
    a replayed rollout, a browser. Tests of another store parameter form a group of their own, so the
    SQLite and PostgreSQL halves still run side by side. Without xdist the marker does nothing."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        callspec = getattr(item, "callspec", None)
        if info is None:
            continue
        keys = []
        for name in item.fixturenames:
            definitions = info.name2fixturedefs.get(name)
            if not definitions or definitions[-1].scope not in SHARED_SCOPES:
                continue
            package = definitions[-1].scope == "package"
            where = definitions[-1].baseid if package else item.nodeid.split("::")[0]
            # a parametrised one is one fixture per parameter: named by index, the same on every process
            # (and no "]": xdist reads a group only after the last one of the node id)
            index = callspec.indices.get(name) if callspec is not None else None
            keys.append(f"{where}::{name}" + ("" if index is None else f"={index}"))
        if keys:
            item.add_marker(pytest.mark.xdist_group("+".join(sorted(keys))))


@pytest.fixture(autouse=True)
def no_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's output is as piped without `COLUMNS` (160 wide) unless a test sets a width: the shell
    that runs the tests does not change what they read."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The configured PostgreSQL server; skipped when unset, an error when set but unreachable."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(PG_HINT)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {error}")
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each store test runs once on SQLite and once on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'pitstop.db'}"
        return
    yield from fresh_postgres_schema(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store at the newest schema, made once per test process (`store_templates.py`)."""
    return migrated_sqlite(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def postgres_template_dump(postgres_url: str) -> Iterator[PostgresTemplate | None]:
    """The PostgreSQL store at the newest schema, dumped once per test process (`store_templates.py`)."""
    with postgres_template(postgres_url) as template:
        yield template


@pytest.fixture
def workspace_dir(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Path:
    """An initialised workspace folder whose store is `database_url`, a copy of a migrated store."""
    if database_url.startswith("sqlite"):
        copy_sqlite(request.getfixturevalue("sqlite_template"), database_url)
    elif (template := request.getfixturevalue("postgres_template_dump")) is not None:
        template.copy_into(database_url)
    folder = tmp_path / "ws"
    monkeypatch.setenv("PITSTOP_DATABASE_URL", database_url)
    monkeypatch.delenv("PITSTOP_WORKSPACE", raising=False)
    Workspace.init(folder).close()
    return folder


@pytest.fixture
def workspace(workspace_dir: Path) -> Iterator[Workspace]:
    ws = Workspace(workspace_dir)
    yield ws
    ws.close()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `pitstop ARGS…` through the real entry point, in process; returns exit code and output."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as done:
            code = int(done.code or 0)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (gitignored), for people and CI to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (`browser.headless_chromium`) per module: Playwright's sync API keeps an event
    loop running on the test thread while it is open, and tests elsewhere need that thread's
    `asyncio.run`."""
    with headless_chromium() as browser:
        yield browser
