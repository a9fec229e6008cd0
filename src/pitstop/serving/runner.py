"""What the gateway needs from a model backend, and the factory choosing one per version.

A runner takes rows (one dict per instance, mapping every feature to a validated value) and returns
one float per row: the prediction, or for a classifier the positive-class probability. Runners
batch concurrent calls themselves (see `batching.py`) and never run model code on the event loop.

Implementations, one per file: `inprocess.InProcessRunner` (a joblib artifact in this process) and
`remote.RemoteRunner` (another pitstop-compatible `/predict` endpoint over HTTP). A version whose
lineage holds `serving: {url: ...}` is served remotely; every other version in-process.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from pitstop.config import ServingSettings
from pitstop.registry import ModelInfo, VersionInfo
from pitstop.workspace import Workspace

Row = dict[str, Any]


class Runner(Protocol):
    """A model version behind one small interface."""

    version: int

    def submit(self, rows: list[Row]) -> asyncio.Future[list[float]]:
        """Queue `rows` for prediction without blocking; the future resolves to one float per row."""
        ...

    async def predict(self, rows: list[Row]) -> list[float]:
        """The predictions for `rows`, in order (`await submit(rows)`)."""
        ...

    async def close(self) -> None:
        """Finish queued work and release threads and connections."""
        ...


def make_runner(ws: Workspace, model: ModelInfo, version: VersionInfo, settings: ServingSettings) -> Runner:
    """The runner for one version: remote when its lineage names a serving URL, else in-process.

    Loading an in-process artifact re-checks its sha256 and unpickles it: call this off the event loop.
    """
    size, wait = settings.batch_max_size, settings.batch_max_wait.total_seconds()
    features = list(model.features or version.lineage.get("features") or [])
    url = (version.lineage.get("serving") or {}).get("url")
    if url:
        from pitstop.serving.remote import RemoteRunner

        return RemoteRunner(str(url), version=version.version, max_batch_size=size, max_batch_wait=wait)
    from pitstop.serving.inprocess import InProcessRunner

    return InProcessRunner(
        ws.load(model.name, version.version),
        version=version.version,
        features=features,
        task=model.task,
        name=f"{model.name}-v{version.version}",
        max_batch_size=size,
        max_batch_wait=wait,
    )
