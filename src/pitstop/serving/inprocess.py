"""A scikit-learn-like model run by pitstop: on its own thread (or, isolated, in a child process),
requests micro-batched."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from pitstop.registry import Task
from pitstop.serving.batching import BatchedRunner, MicroBatcher, Timed
from pitstop.serving.features import Kind
from pitstop.serving.isolation import MemoryUse, ModelProcess
from pitstop.serving.priority import CpuTime, own_seconds

Row = dict[str, Any]

# What scikit-learn says when a model fitted on a DataFrame gets an array: expected on the fast path.
_NAMES_WARNING = "X does not have valid feature names"
_COMPOSITE_MODULES = ("sklearn.pipeline", "sklearn.compose")
_DTYPES: dict[Kind, type] = {"float": np.float64, "int": np.int64}  # the column types kinds fix


def limit_native_threads(threads: int) -> None:
    """Cap the threads the models' native math (OpenMP, BLAS) may use in calls from this thread.

    A gateway already runs requests concurrently (champion, shadow, batches in flight); a model that
    also spreads one call over every core oversubscribes the CPU, and idle OpenMP threads spin-wait
    between calls, taking CPU from serving. OpenMP's limit holds per calling thread, so each worker
    thread applies it when it starts (after the model is loaded, so its libraries are known).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


class Predictor:
    """A loaded model turned into one float per row: `predict` for a regressor, the positive class's
    probability for a binary classifier (a multiclass one: a list of every class's probability).
    Pure computation, run on a runner's thread or in a child process.

    Rows become a DataFrame with the features in model order, or an array for a model fitted without
    feature names. `kinds` (one per feature, from the training data's types) fix the column types: a
    float feature is float64 and an integer one int64 whatever JSON numbers a batch happens to carry
    (`1` for a float feature would otherwise make an int64 column, and a model selecting columns by
    type would see a different table); other kinds are left to pandas, as when the model was trained
    from a file.

    Fast path: a plain scikit-learn estimator (not a pipeline) on numeric features, fitted on exactly
    these columns in this order, converts any DataFrame to a float64 array before predicting; for it
    the rows go straight in as that array, skipping a DataFrame round trip and its validation (about
    two thirds of scikit-learn's per-call cost). The first call checks that both paths agree.
    """

    def __init__(
        self,
        model: Any,
        *,
        features: Sequence[str],
        task: Task | str = Task.REGRESSION,
        kinds: Sequence[Kind] | None = None,
    ) -> None:
        self.model = model
        self.features = list(features)
        self._kinds: list[Kind] = list(kinds) if kinds is not None else ["any"] * len(self.features)
        if len(self._kinds) != len(self.features):
            raise ValueError(f"{len(self._kinds)} kinds for {len(self.features)} features")
        self._all_float = all(kind == "float" for kind in self._kinds)
        numeric = all(kind in ("float", "int") for kind in self._kinds)
        self.task = Task(task)
        names = getattr(model, "feature_names_in_", None)
        self._named = names is not None
        self._values = itemgetter(*self.features)
        plain = numeric and _is_plain_sklearn(model) and (names is None or list(names) == self.features)
        self.array_path: bool | None = None if plain else False  # None: decided by the first call
        self._expect_names_warning()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a child process (isolation): the warning filter is per process."""
        self.__dict__.update(state)
        self._expect_names_warning()

    def _expect_names_warning(self) -> None:
        if self.array_path is not False and self._named:
            warnings.filterwarnings("ignore", message=_NAMES_WARNING, category=UserWarning)

    def predict(self, rows: list[Row]) -> list[float]:
        """One float per row, in order."""
        if self.array_path:
            return self._predict(self._array(rows))
        typed = self._predict(self._frame(rows))
        if self.array_path is None:
            self.array_path = self._array_agrees(rows, typed)
        return typed

    def timed(self, rows: list[Row]) -> Timed:
        """`predict(rows)` with its duration, without the time its thread waited for a CPU."""
        values, seconds = own_seconds(lambda: self.predict(rows))
        return Timed(values, seconds)

    def _array_agrees(self, rows: list[Row], typed: list[float]) -> bool:
        try:
            fast = self._predict(self._array(rows))
        except Exception:  # the model wants a DataFrame after all
            return False
        return bool(np.array_equal(np.asarray(fast), np.asarray(typed), equal_nan=True))

    def _frame(self, rows: list[Row]) -> Any:
        if self._all_float:  # one float64 block, built from an array: a quarter of the dict path's cost
            values = self._array(rows)
            return pd.DataFrame(values, columns=self.features, copy=False) if self._named else values
        frame = pd.DataFrame(
            {
                name: _column([row[name] for row in rows], kind)
                for name, kind in zip(self.features, self._kinds, strict=True)
            },
            columns=self.features,
        )
        return frame if self._named else frame.to_numpy()

    def _array(self, rows: list[Row]) -> Any:
        return np.array([self._values(row) for row in rows], dtype=float).reshape(
            len(rows), len(self.features)
        )

    def _predict(self, data: Any) -> list[Any]:
        if self.task is Task.MULTICLASS:  # every class's probability, a list per row
            probabilities: list[Any] = np.asarray(self.model.predict_proba(data), dtype=float).tolist()
            return probabilities
        if self.task is Task.CLASSIFICATION:
            out = np.asarray(self.model.predict_proba(data))[:, 1]
        else:
            out = np.asarray(self.model.predict(data), dtype=float)
        result: list[float] = out.astype(float).ravel().tolist()
        return result


class InProcessRunner(BatchedRunner):
    """Runs a `Predictor` on a private thread pool, requests micro-batched; or, `isolated`, in a child
    process at idle CPU priority (`isolation.ModelProcess`), as shadow scoring does.

    Each runner owns its threads, so a slow or stuck model (a shadow challenger) can only delay its
    own queue, never the champion's. `threads` is how many batches may run at once; `model_threads`
    how many native threads one call may use; `patient_max_batch_size` how many rows a batch of shadow
    work alone may hold; `memory_limit` the bytes an isolated model's process may keep resident. Every
    call is timed where it runs, without its waits for a CPU (`priority.own_seconds`), so a served and
    an isolated model's latencies compare fairly.
    """

    def __init__(
        self,
        model: Any,
        *,
        version: int,
        features: Sequence[str],
        task: Task | str = Task.REGRESSION,
        name: str = "model",
        kinds: Sequence[Kind] | None = None,
        max_batch_size: int = 64,
        max_batch_wait: float = 0.002,
        patient_max_batch_size: int | None = None,
        threads: int = 1,
        model_threads: int = 1,
        isolated: bool = False,
        memory_limit: int | None = None,
    ) -> None:
        self.version = version
        self.model_threads = model_threads
        self.predictor = Predictor(model, features=features, task=task, kinds=kinds)
        self.process = (
            ModelProcess(
                self.predictor.timed,
                setup=partial(limit_native_threads, model_threads),
                name=name,
                memory_limit=memory_limit,
            )
            if isolated
            else None
        )
        self._executor = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix=f"pitstop-{name}",
            initializer=limit_native_threads,
            initargs=(model_threads,),
        )
        # start a thread now (applying the limit takes tens of ms): no request or speed estimate pays it
        self._executor.submit(int).result()
        self.batcher = MicroBatcher(
            self._run_batch,
            max_size=max_batch_size,
            max_wait=max_batch_wait,
            patient_max_size=patient_max_batch_size,
            concurrency=threads,
        )

    def cpu_time(self) -> CpuTime | None:
        """The child's CPU accounting when isolated; None on threads, which run at the loop's priority."""
        return None if self.process is None else self.process.cpu_time()

    def memory(self) -> MemoryUse | None:
        """The child's memory when isolated; None on threads (the gateway's own memory)."""
        return None if self.process is None else self.process.memory()

    async def close(self) -> None:
        await self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.process is not None:
            await asyncio.to_thread(self.process.close)

    async def _run_batch(self, rows: list[Row]) -> Timed:
        call = self.predictor.timed if self.process is None else self.process.call
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, rows)


def _column(values: list[Any], kind: Kind) -> Any:
    """One feature's values, typed as the model was trained when the kind says how."""
    dtype = _DTYPES.get(kind)
    return values if dtype is None else np.array(values, dtype=dtype)


def _is_plain_sklearn(model: Any) -> bool:
    """A scikit-learn estimator that is not a pipeline or column transformer."""
    module = type(model).__module__
    return module.startswith("sklearn.") and not module.startswith(_COMPOSITE_MODULES)
