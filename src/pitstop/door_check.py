"""The door check: a model file is loaded and tried the way a gateway will run it before any version
of it is stored.

`register` and `train` hand the saved file to a fresh process started as the gateway starts its
shadow process (the same fork server, its modules preloaded, `isolation.py`), with the registering
process's working folder and import path. There it is loaded as a gateway loads it (skops with its
allow-list, or a pickle only when allowed) and predicts a sample of the training rows through the
version's input signature (`model_input`). A model that cannot load, raises, answers a different
number of predictions than rows, or answers NaN is refused with its own error
(`ArtifactRefusedError`), and nothing is stored. The same process records which packages the model
actually needs: the distributions of the modules that loading and predicting imported, and of the
classes the loaded object is made of, with their installed versions.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from pitstop import model_files
from pitstop.errors import USER_CODE_FAILURES, UsageError, describe, mention
from pitstop.model_files import ModelFormat, SavedModel
from pitstop.model_input import InputSignature, signature_of
from pitstop.registry import Task
from pitstop.scoring import predict_frame
from pitstop.serving.features import kind_of
from pitstop.serving.isolation import _context as shadow_process_context
from pitstop.user_code import load_hint, with_hint

_DIED = (
    "its process died while loading or predicting (its error is on stderr): a crash in native code, "
    "out of memory, or, from a Python script, a script without `if __name__ == '__main__':`, which "
    "multiprocessing runs again in every new process"
)
SAMPLE_ROWS = 100  # training rows tried: spread over the whole table
_GRAPH_LIMIT = 20_000  # objects visited to find the classes a model is made of


class ArtifactRefusedError(UsageError):
    """A model that cannot be loaded, or cannot predict, the way a gateway will run it; nothing stored.

    `source` names the model (`trainer m:f`, a file); `problem` is what went wrong, with the model's
    own error where it raised one."""

    def __init__(self, source: str, problem: str) -> None:
        self.source, self.problem = source, problem
        super().__init__(
            f"{source} refused, nothing stored: {problem}; fix the model, or register it with "
            f"{mention('skip_check', 'REASON')} if it cannot run here (it needs a GPU or a service this "
            "machine lacks)"
        )


@dataclass(frozen=True)
class Admitted:
    """What the door check found: the packages the model needs ({distribution: version}) and how many
    training rows it predicted."""

    packages: dict[str, str]
    rows: int


@dataclass(frozen=True)
class _Trial:
    """Everything the fresh process needs, pickled to it."""

    data: bytes
    fmt: ModelFormat
    trusted_types: list[str] | None
    allow_pickle: bool
    model: str
    task: Task
    signature: InputSignature
    rows: pd.DataFrame
    folder: str
    path: list[str]


@dataclass(frozen=True)
class _Outcome:
    """The fresh process's answer: `failed` is None, `load` or `predict` (then `error` says how)."""

    failed: str | None
    error: str
    predictions: list[float]
    modules: list[str]


def signature_for(estimator: Any, X: pd.DataFrame, features: list[str], task: Task) -> InputSignature:
    """The input signature to record for a model trained (or registered) on the rows of X."""

    def try_predict(data: Any) -> None:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries --json
            predict_frame(task, estimator, data)

    return signature_of(estimator, X, features, try_predict)


def check(
    saved: SavedModel,
    estimator: Any,
    *,
    source: str,
    model: str,
    task: Task,
    signature: InputSignature,
    rows: pd.DataFrame,
    allow_pickle: bool,
) -> Admitted:
    """Load `saved` (the file of `estimator`) in a fresh process and predict a sample of `rows` there;
    ArtifactRefusedError when it cannot (nothing has been stored yet)."""
    _check_fitted_names(source, model, signature, estimator)
    sample = sample_rows(rows)
    trial = _Trial(
        data=saved.path.read_bytes(),
        fmt=saved.format,
        trusted_types=saved.trusted_types,
        allow_pickle=allow_pickle,
        model=model,
        task=task,
        signature=signature,
        rows=sample,
        folder=os.getcwd(),
        path=[*sys.path, os.getcwd()],  # as `user_code.current_folder_importable` lets this process import
    )
    with ProcessPoolExecutor(max_workers=1, mp_context=shadow_process_context()) as pool:
        try:
            outcome = pool.submit(_try, trial).result()
        except BrokenProcessPool:
            raise ArtifactRefusedError(source, _DIED) from None
    if outcome.failed == "load":
        raise ArtifactRefusedError(source, f"it cannot be loaded in a fresh process ({outcome.error})")
    if outcome.failed == "predict":
        failed = f"it failed to predict {len(sample)} of its training rows ({outcome.error})"
        raise ArtifactRefusedError(source, failed + _text_hint(signature))
    _check_answer(source, outcome.predictions, sample)
    modules = [*outcome.modules, "pandas" if signature.takes == "frame" else "numpy"]  # what it is given
    return Admitted(packages_of(modules), len(sample))


def _text_hint(signature: InputSignature) -> str:
    """A model trained on pandas `category` columns gets text from a CSV snapshot unless they are
    declared categorical: say how, when there are text columns."""
    text = [c.name for c in signature.columns if kind_of(c.dtype) == "str" and c.categories is None]
    if not text:
        return ""
    return (
        f"; if it was trained on {', '.join(text)} as pandas `category`, declare them categorical "
        f"({mention('categorical', ','.join(text))}) when adding the dataset"
    )


def _check_fitted_names(source: str, model: str, signature: InputSignature, estimator: Any) -> None:
    """A model fitted on other columns than the model's features: said plainly, before trying it."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and sorted(map(str, fitted)) != sorted(signature.names):
        raise ArtifactRefusedError(
            source,
            f"it was fitted on feature(s) {', '.join(map(str, fitted))}, but model {model!r} gives it "
            f"{', '.join(signature.names)}",
        )


def sample_rows(rows: pd.DataFrame, size: int = SAMPLE_ROWS) -> pd.DataFrame:
    """At most `size` rows spread evenly over the table, first and last included."""
    if len(rows) <= size:
        return rows
    picked = np.unique(np.linspace(0, len(rows) - 1, size).round().astype(int))
    return rows.iloc[picked]


def _check_answer(source: str, predictions: list[Any], sample: pd.DataFrame) -> None:
    if len(predictions) != len(sample):
        raise ArtifactRefusedError(
            source,
            f"it returned {len(predictions)} predictions for {len(sample)} rows; predict must return "
            "one number per row",
        )
    finite = np.isfinite(np.asarray(predictions, dtype=float))
    bad = np.flatnonzero(~finite.reshape(len(predictions), -1).all(axis=1))
    if len(bad):
        positions = [str(int(sample.index[i]) + 1) for i in bad[:5]]
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ArtifactRefusedError(
            source,
            f"it returned NaN or infinite predictions for training rows {', '.join(positions)}{more} "
            f"(of the {len(sample)} tried)",
        )


def packages_of(modules: Iterable[str]) -> dict[str, str]:
    """{distribution: installed version} of the top-level modules `modules` name; standard-library and
    local modules, which no distribution provides, are left out."""
    found: dict[str, str] = {}
    for top in sorted({name.partition(".")[0] for name in modules}):
        for distribution in _distributions().get(top, []):
            with contextlib.suppress(metadata.PackageNotFoundError):
                found[distribution] = metadata.version(distribution)
    return dict(sorted(found.items()))


@cache
def _distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def modules_of(model: Any) -> set[str]:
    """The modules of the classes a model object is made of (its attributes, containers, arrays), and
    of their base classes (a LightGBM estimator is a scikit-learn one)."""
    modules: set[str] = set()
    seen: set[int] = set()
    stack = [model]
    while stack and len(seen) < _GRAPH_LIMIT:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        modules.update(kind.__module__ for kind in type(item).__mro__)
        stack.extend(_parts(item))
    return modules


def _parts(item: Any) -> Iterable[Any]:
    if isinstance(item, str | bytes | int | float | bool | np.ndarray):
        return ()
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    if isinstance(item, list | tuple | set | frozenset):
        return item
    state = getattr(item, "__dict__", None)
    return state.values() if isinstance(state, dict) else ()


def _try(trial: _Trial) -> _Outcome:
    """In the fresh process: load, predict, and say which modules that took."""
    os.dup2(2, 1)  # what the model prints (natively too) goes to stderr: stdout carries --json
    os.chdir(trial.folder)
    sys.path[:] = trial.path
    before = set(sys.modules)
    who = f"{trial.model}'s new version"
    try:
        model = model_files.load(
            trial.data,
            trial.fmt,
            trial.trusted_types,
            model=trial.model,
            allow_pickle=trial.allow_pickle,
            who=who,
            warn=False,
        )
    except USER_CODE_FAILURES as error:  # loading imports the classes' modules: anything may fail
        return _Outcome("load", with_hint(describe(error), load_hint(error)), [], [])
    try:
        predictions = predict_frame(trial.task, model, trial.signature.from_frame(trial.rows))
    except USER_CODE_FAILURES as error:
        return _Outcome("predict", describe(error), [], [])
    modules = [*(set(sys.modules) - before), *modules_of(model)]
    # a multiclass model answers a row of probabilities per row: kept as lists, checked the same way
    return _Outcome(None, "", np.asarray(predictions, dtype=float).tolist(), modules)
