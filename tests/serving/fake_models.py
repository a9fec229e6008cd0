"""Real model classes that misbehave on purpose: slow, raising, NaN, recording; skops stores them.

Each wraps a fitted scikit-learn model and keeps its `feature_names_in_`, so pitstop feeds it the
same DataFrame it feeds the real thing. Importable as `serving.fake_models` (tests/ is on the path).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np


class Wrapped:
    def __init__(self, base: Any) -> None:
        self.base = base
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, frame: Any) -> Any:
        return self.base.predict(frame)


class SlowModel(Wrapped):
    """Sleeps `delay` seconds per call (releasing the GIL, as I/O or native code would)."""

    def __init__(self, base: Any, delay: float) -> None:
        super().__init__(base)
        self.delay = delay

    def predict(self, frame: Any) -> Any:
        time.sleep(self.delay)
        return self.base.predict(frame)


class RaisingModel(Wrapped):
    def predict(self, frame: Any) -> Any:
        raise RuntimeError("this model always fails")


class NaNModel(Wrapped):
    def predict(self, frame: Any) -> Any:
        return np.full(len(frame), np.nan)


class PoisonModel(Wrapped):
    """Fails on any batch holding a row with a == 999, so one bad request could fail its neighbours."""

    def predict(self, frame: Any) -> Any:
        if (frame["a"] == 999).any():
            raise ValueError("a == 999 is poison")
        return self.base.predict(frame)


class RecordingModel(Wrapped):
    """Remembers, per call, the thread it ran on and the number of rows (state lives in the loaded copy)."""

    def __init__(self, base: Any, delay: float = 0.0) -> None:
        super().__init__(base)
        self.delay = delay
        self.calls: list[tuple[int, int]] = []

    def predict(self, frame: Any) -> Any:
        self.calls.append((threading.get_ident(), len(frame)))
        if self.delay:
            time.sleep(self.delay)
        return self.base.predict(frame)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "calls": []}


class ThreadLimitModel(Wrapped):
    """Remembers, per call, how many threads OpenMP would use for native math called from here."""

    def __init__(self, base: Any) -> None:
        super().__init__(base)
        self.openmp_threads: list[int] = []

    def predict(self, frame: Any) -> Any:
        from threadpoolctl import threadpool_info

        limits = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "openmp"]
        self.openmp_threads.append(max(limits))
        return self.base.predict(frame)


class SchedulerModel(Wrapped):
    """Answers, for every row, the scheduling policy of the thread it runs on (`os.SCHED_*`)."""

    def predict(self, frame: Any) -> Any:
        import os

        return [float(os.sched_getscheduler(0))] * len(frame)


class ProcessModel(Wrapped):
    """Answers, for every row, the id of the process it runs in."""

    def predict(self, frame: Any) -> Any:
        import os

        return [float(os.getpid())] * len(frame)


class ExitingModel(Wrapped):
    """Ends its process on a row with `a == 666` (a crash in native code, say); else the base's answer."""

    def predict(self, frame: Any) -> Any:
        import os

        if (frame["a"] == 666).any():
            os._exit(3)
        return self.base.predict(frame)


class CpuModel(Wrapped):
    """Computes for `seconds` of its own CPU time per call, then answers as the base: a model whose
    duration stretches when its process is refused the CPU."""

    def __init__(self, base: Any, seconds: float) -> None:
        super().__init__(base)
        self.seconds = seconds

    def predict(self, frame: Any) -> Any:
        until = time.thread_time() + self.seconds
        while time.thread_time() < until:
            pass
        return self.base.predict(frame)
