"""A scikit-learn-like model run by pitstop: on its own thread (or, isolated, in a child process),
requests micro-batched."""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from pitstop import model_input
from pitstop.model_input import InputSignature
from pitstop.records.lineage import Lineage
from pitstop.registry import Task
from pitstop.serving.batching import BatchedRunner, MicroBatcher, RowIds, Timed
from pitstop.serving.features import Kind, kind_of
from pitstop.serving.isolation import MemoryUse, ModelProcess
from pitstop.serving.priority import CpuTime, own_seconds

if TYPE_CHECKING:
    import pandas as pd

Row = dict[str, Any]

# What scikit-learn says when a model fitted on a DataFrame gets an array: expected on the fast path.
_NAMES_WARNING = "X does not have valid feature names"
_COMPOSITE_MODULES = ("sklearn.pipeline", "sklearn.compose")
_DTYPES: dict[Kind, str] = {"float": "float64", "int": "int64"}  # the column types kinds fix


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

    Rows become the model's input through its version's input signature (`model_input`), the path
    the offline gate takes too: the features in the model's order, cast to their training dtypes, as
    a DataFrame or an array. Without a signature one is derived from `features` and `kinds` (a float
    feature float64, an integer one int64, others as the JSON values come).

    Fast path: a plain scikit-learn estimator (not a pipeline) on numeric features, fitted on exactly
    these columns in this order, converts any DataFrame to a float64 array before predicting; for it
    the rows go straight in as that array, skipping a DataFrame round trip and its validation (about
    two thirds of scikit-learn's per-call cost). The first call checks that both paths agree.
    """

    def __init__(
        self,
        model: Any,
        *,
        features: Sequence[str] = (),
        task: Task | str = Task.REGRESSION,
        kinds: Sequence[Kind] | None = None,
        signature: InputSignature | None = None,
    ) -> None:
        self.model = model
        if signature is None:
            signature = _signature_of_kinds(model, features, kinds)
        self.signature = signature
        self.features = signature.names
        numeric = all(kind_of(column.dtype) in ("float", "int") for column in signature.columns)
        self.task = Task(task)
        names = getattr(model, "feature_names_in_", None)
        self._named = names is not None
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
        typed = self._predict(self.signature.from_rows(rows))
        if self.array_path is None:
            self.array_path = self._array_agrees(rows, typed)
        return typed

    def table_input(self, frame: pd.DataFrame) -> Any:
        """The input `predict` builds from JSON rows of the table's values, built from its columns
        (the same values in the same memory order): for `output`, many rows in one call."""
        if self.array_path is None:  # settled by a first call, as the gateway's warm-up call settles it
            with contextlib.suppress(Exception):  # the model fails on that row: the typed input this time
                self.predict(frame[self.signature.names].head(1).to_dict("records"))  # type: ignore[arg-type]
        signature = self.signature
        return signature.float_columns(frame) if self.array_path else signature.from_columns(frame)

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

    def _array(self, rows: list[Row]) -> Any:
        return self.signature.float_block(rows)

    def _predict(self, data: Any) -> list[Any]:
        result: list[Any] = self.output(data).tolist()  # a multiclass model's: a list per row
        return result

    def output(self, data: Any) -> Any:
        """The model's answer to an input as an array: a float per row (a multiclass model's: a row
        of its classes' probabilities)."""
        if self.task is Task.MULTICLASS:  # every class's probability, a row each
            return np.asarray(self.model.predict_proba(data), dtype=float)
        if self.task is Task.CLASSIFICATION:
            out = np.asarray(self.model.predict_proba(data))[:, 1]
        else:
            out = np.asarray(self.model.predict(data), dtype=float)
        return out.astype(float).ravel()


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
        features: Sequence[str] = (),
        task: Task | str = Task.REGRESSION,
        name: str = "model",
        kinds: Sequence[Kind] | None = None,
        signature: InputSignature | None = None,
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
        self.predictor = Predictor(model, features=features, task=task, kinds=kinds, signature=signature)
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

    async def _run_batch(self, rows: list[Row], ids: RowIds) -> Timed:
        """Predicts the rows; their request ids matter only to a remote model."""
        call = self.predictor.timed if self.process is None else self.process.call
        return await asyncio.get_running_loop().run_in_executor(self._executor, call, rows)


def _signature_of_kinds(model: Any, features: Sequence[str], kinds: Sequence[Kind] | None) -> InputSignature:
    """A signature for a model handed over with its features and JSON kinds only (no lineage)."""
    kinds = list(kinds) if kinds is not None else ["any"] * len(features)
    if len(kinds) != len(features):
        raise ValueError(f"{len(kinds)} kinds for {len(features)} features")
    # a kind with no dtype is taken as the values come
    types = {name: _DTYPES[kind] for name, kind in zip(features, kinds, strict=True) if kind in _DTYPES}
    return model_input.from_lineage(features, Lineage(feature_types=types), model)


def _is_plain_sklearn(model: Any) -> bool:
    """A scikit-learn estimator that is not a pipeline or column transformer."""
    module = type(model).__module__
    return module.startswith("sklearn.") and not module.startswith(_COMPOSITE_MODULES)
