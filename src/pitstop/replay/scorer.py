"""Each version's model, scoring many of a replay's rows per call, as the gateway's runner would."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pitstop import loading, model_input, registry
from pitstop.registry import Task
from pitstop.serving.inprocess import Predictor
from pitstop.serving.remote import RemoteModel
from pitstop.workspace import Workspace

Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]


class RemoteVersionError(Exception):
    """A version is served by a remote model server: only the gateway's replay calls one."""


class Scorer:
    """One version's model, scoring many rows per call; a failing call is split to find its rows."""

    def __init__(
        self, predictor: Predictor, traffic: pd.DataFrame, features: Sequence[str], classes: int = 0
    ) -> None:
        self.predictor = predictor
        self.traffic = traffic
        self.names = list(features)
        self.columns = [traffic[name].to_numpy() for name in self.names]  # views, not copies
        self.width = classes if predictor.task is Task.MULTICLASS else 0  # a multiclass output's columns

    def score(self, rows: Ints) -> tuple[Any, Flags]:
        """The outputs for `rows` (a multiclass model's: a matrix) and which of them failed."""
        if not len(rows):
            return self._empty(), np.zeros(0, dtype=bool)
        data = self.predictor.table_input(self.traffic.iloc[rows])
        try:
            output = self._checked(self.predictor.output(data), len(rows))
        except Exception:  # the model's own failure (as a runner sees it): find the rows it fails on
            if len(rows) == 1:
                return self._empty(1), np.ones(1, dtype=bool)
            half = len(rows) // 2
            first, failed_first = self.score(rows[:half])
            second, failed_second = self.score(rows[half:])
            return np.concatenate([first, second]), np.concatenate([failed_first, failed_second])
        failed = ~np.isfinite(output).reshape(len(rows), -1).all(axis=1)
        return output, failed

    def timed(self, rows: Ints) -> float:
        """One real call on `rows` as the gateway makes it (JSON-like rows), its own duration in ms."""
        values = zip(*(column[rows].tolist() for column in self.columns), strict=True)  # Python scalars
        instances = [dict(zip(self.names, row, strict=True)) for row in values]
        try:
            return self.predictor.timed(instances).seconds * 1000.0
        except Exception:  # the model's own failure: its time says nothing of its speed
            return math.nan

    def _checked(self, output: Any, rows: int) -> Any:
        """The output when it has one answer per row (a multiclass one: one per class), else the
        call fails, as `batching.py` fails a call whose answers do not match its rows."""
        shape = (rows, self.width) if self.width else (rows,)
        if output.shape != shape:
            raise ValueError(f"the model returned shape {output.shape} for {rows} rows")
        return output

    def _empty(self, rows: int = 0) -> Any:
        return np.full((rows, self.width) if self.width else rows, np.nan)


def load_scorers(
    ws: Workspace, info: registry.ModelInfo, versions: Sequence[int], traffic: pd.DataFrame
) -> dict[int, Scorer]:
    """Each version's scorer; RemoteVersionError when one is served by a remote model server."""
    scorers = {}
    for number in versions:
        version = ws.version(info.name, number)
        loaded = loading.load_version(ws, info, version)
        if isinstance(loaded, RemoteModel):
            raise RemoteVersionError(f"{info.name} version {number} is served by {loaded.url}")
        names = list(info.features or version.lineage.features)  # as `runner.make_runner` names them
        signature = model_input.from_lineage(names, version.lineage, loaded)
        predictor = Predictor(loaded, signature=signature, task=info.task)
        scorers[number] = Scorer(predictor, traffic, names, len(info.classes or []))
    return scorers
