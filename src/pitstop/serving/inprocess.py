"""A joblib/scikit-learn model in this process, its CPU work on its own thread, requests micro-batched."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from pitstop.registry import Task
from pitstop.serving.batching import MicroBatcher

Row = dict[str, Any]


class InProcessRunner:
    """Runs `model.predict` (or `predict_proba[:, 1]` for a classifier) on a private thread pool.

    Each runner owns its threads, so a slow or stuck model (a shadow challenger) can only delay its
    own queue, never the champion's. Columns are passed in `features` order, as a DataFrame when the
    model was fitted with feature names, else as an array.
    """

    def __init__(
        self,
        model: Any,
        *,
        version: int,
        features: Sequence[str],
        task: Task | str = Task.REGRESSION,
        name: str = "model",
        max_batch_size: int = 64,
        max_batch_wait: float = 0.002,
        threads: int = 1,
    ) -> None:
        self.model = model
        self.version = version
        self.features = list(features)
        self.classification = Task(task) is Task.CLASSIFICATION
        self._named = hasattr(model, "feature_names_in_")
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"pitstop-{name}")
        self.batcher = MicroBatcher(
            self._run_batch, max_size=max_batch_size, max_wait=max_batch_wait, concurrency=threads
        )

    def submit(self, rows: list[Row]) -> asyncio.Future[list[float]]:
        return self.batcher.submit(rows)

    async def predict(self, rows: list[Row]) -> list[float]:
        return await self.submit(rows)

    async def close(self) -> None:
        await self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run_batch(self, rows: list[Row]) -> list[float]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.predict_now, rows)

    def predict_now(self, rows: list[Row]) -> list[float]:
        """Predict synchronously on the calling thread (used by the worker thread and benchmarks)."""
        columns = {name: [row[name] for row in rows] for name in self.features}
        frame: Any = pd.DataFrame(columns, columns=self.features)
        if not self._named:
            frame = frame.to_numpy()
        if self.classification:
            out = np.asarray(self.model.predict_proba(frame))[:, 1]
        else:
            out = np.asarray(self.model.predict(frame), dtype=float)
        result: list[float] = out.astype(float).ravel().tolist()
        return result
