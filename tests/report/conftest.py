"""Report fixtures: rollouts that really ran (module-scoped: built once per store), a headless Chromium,
and the folder where screenshots are kept."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import fresh_postgres_schema
from pitstop.workspace import Workspace
from report.rollouts import MODEL, rollout_workspace, send_traffic


@dataclass
class Story:
    """A workspace where rollout 1 (v3) was rejected in shadow and rollout 2 (v2) was promoted."""

    ws: Workspace
    rejected: int
    promoted: int


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh store for the session: a SQLite file, or a PostgreSQL schema of its own."""
    yield from fresh_store(request, tmp_path_factory, "store", prefix="r")


def fresh_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, folder: str, prefix: str
) -> Iterator[str]:
    """A store URL by the fixture's param: a SQLite file in a new `folder`, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp(folder) / 'pitstop.db'}"
        return
    yield from fresh_postgres_schema(request.getfixturevalue("postgres_url"), prefix=prefix)


def _story(folder: Path, scratch: Path, url: str | None) -> Story:
    ws = rollout_workspace(folder, scratch, url)
    rejected = ws.start_rollout(MODEL, 3, skip_gate=True, reason="a bad model on purpose").state.id
    send_traffic(ws, hours=3, requests=700, seed=1)
    promoted = ws.start_rollout(MODEL, 2, skip_gate=True, reason="retrained on fresher data").state.id
    send_traffic(ws, hours=5, requests=1800, seed=2)
    return Story(ws, rejected, promoted)


@pytest.fixture(scope="session")
def story(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """Both rollouts, built once per store and only read by the tests (they must not change it)."""
    scratch = tmp_path_factory.mktemp("story")
    result = _story(scratch / "ws", scratch, store_url)
    yield result
    result.ws.close()
