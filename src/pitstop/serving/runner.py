"""What the gateway needs from a model backend, and the factory choosing one per version.

A runner takes rows (one dict per instance, mapping every feature to a validated value) and returns
one float per row: the prediction, or for a classifier the positive-class probability. Runners
batch concurrent calls themselves (see `batching.py`) and never run model code on the event loop.

Implementations, one per file: `inprocess.InProcessRunner` (a joblib artifact in this process) and
`remote.RemoteRunner` (another pitstop-compatible `/predict` endpoint over HTTP). A version whose
artifact is a `remote.RemoteModel(url)` is served remotely; every other version in-process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from pitstop import loading, model_input
from pitstop.config import ServingSettings
from pitstop.context import Context
from pitstop.errors import UsageError
from pitstop.registry import ModelInfo, Task, VersionInfo
from pitstop.serving.isolation import MemoryUse
from pitstop.serving.priority import CpuTime

Row = dict[str, Any]


class Runner(Protocol):
    """A model version behind one small interface."""

    version: int

    def submit(
        self,
        rows: list[Row],
        *,
        max_wait: float | None = None,
        request_ids: Sequence[str] | None = None,
    ) -> asyncio.Future[list[float]]:
        """Queue `rows` without blocking; the future resolves to one float per row.

        `max_wait` lets work nobody waits for (shadow scoring) wait longer for a bigger batch.
        `request_ids`, one per row, are the requests' ids: a remote model's call carries them.
        """
        ...

    async def predict(self, rows: list[Row]) -> list[float]:
        """The predictions for `rows`, in order (`await submit(rows)`)."""
        ...

    def backlog_seconds(self) -> float:
        """Roughly how long what is queued will take; shadow calls beyond their timeout are skipped."""
        ...

    def cpu_time(self) -> CpuTime | None:
        """The CPU accounting of the process running the model, when it is one of its own (an isolated
        shadow): shadow timeouts leave out its waits for a CPU. None otherwise."""
        ...

    def memory(self) -> MemoryUse | None:
        """The memory of the process running the model, when it is one of its own (an isolated
        shadow, restarted over `serving.shadow_memory_limit`). None otherwise."""
        ...

    async def close(self) -> None:
        """Finish queued work and release threads and connections."""
        ...


def make_runner(
    ws: Context, model: ModelInfo, version: VersionInfo, settings: ServingSettings, *, shadow: bool = False
) -> Runner:
    """The runner for one version: a `RemoteRunner` when its artifact is a `RemoteModel`, else in-process.

    A `shadow` runner of an in-process model runs it in a child process at idle CPU priority when
    `settings.shadow_process` is on (`isolation.py`); a remote model is I/O for the gateway either way.
    Loading re-checks the artifact's sha256 and unpickles it: call this off the event loop.
    """
    from pitstop.serving.inprocess import InProcessRunner
    from pitstop.serving.remote import RemoteModel, RemoteRunner

    size, wait = settings.batch_max_size, settings.batch_max_wait.total_seconds()
    patient_size = max(size, settings.shadow_batch_max_size)
    loaded = loading.load_version(ws, model, version)
    if isinstance(loaded, RemoteModel) and model.task is Task.MULTICLASS:
        # a remote answer is one number per row: the probabilities the loss needs would be lost
        raise UsageError(
            f"{model.name} version {version.version}: a multiclass model cannot be served remotely"
        )
    if isinstance(loaded, RemoteModel):
        features = list(model.features or version.lineage.features)
        loaded.check_ready(features)  # not routed to before its server says it is ready
        return RemoteRunner(
            loaded.url,
            version=version.version,
            endpoint=loaded.endpoint(),
            features=features,
            timeout=loaded.timeout,
            headers=loaded.call_headers(),
            max_batch_size=size,
            max_batch_wait=wait,
            patient_max_batch_size=patient_size,
        )
    features = list(model.features or version.lineage.features)
    return InProcessRunner(
        loaded,
        version=version.version,
        signature=model_input.from_lineage(features, version.lineage, loaded),
        task=model.task,
        name=f"{model.name}-v{version.version}{'-shadow' if shadow else ''}",
        max_batch_size=size,
        max_batch_wait=wait,
        patient_max_batch_size=patient_size,
        model_threads=settings.model_threads,
        isolated=shadow and settings.shadow_process,
        memory_limit=settings.shadow_memory_limit,
    )
