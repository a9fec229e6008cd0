"""Model files: skops by default, which runs no code but that of a type allow-list fixed at
registration; a joblib pickle, which runs whatever it holds, only for a model that allows it.

skops stores scikit-learn objects and module-level classes whose state is their `__dict__`; loading
one instantiates only the types skops trusts by default and those in the version's allow-list (read
from the store, never from the file). A pickle cannot be checked that way: loading it may run any
code, so only a model whose `allow_pickle` is set loads one, with a warning each time.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import joblib
import skops.io as sio
from skops.io.exceptions import UntrustedTypesFoundException

from pitstop.errors import PitstopError, UsageError, describe, mention

log = logging.getLogger(__name__)


class ModelFormat(StrEnum):
    SKOPS = "skops"
    JOBLIB = "joblib"

    @property
    def suffix(self) -> str:
        return f".{self.value}"


class UntrustedTypesError(PitstopError):
    """A skops file needs types outside the allow-list its version was registered with."""

    def __init__(self, who: str, types: list[str]) -> None:
        self.who, self.types = who, types
        super().__init__(
            f"{who} refused: its file needs type(s) outside the allow-list fixed at registration: "
            f"{', '.join(types)}; the file was changed or replaced, restore it or register the model again"
        )


class PickleRefusedError(PitstopError):
    """A pickled version of a model that does not allow pickles."""

    def __init__(self, who: str, model: str) -> None:
        self.who, self.model = who, model
        super().__init__(
            f"{who} is a pickle (joblib), which can run any code when loaded, and model {model!r} does not "
            f"allow pickles: convert it with `pitstop models convert {model} …`, or allow pickles for the "
            f"model with `pitstop models allow-pickle {model}` if you trust every file of its versions"
        )


@dataclass(frozen=True)
class SavedModel:
    """A model written to `path`; `trusted_types` is the allow-list it needs (None for a pickle)."""

    path: Path
    format: ModelFormat
    trusted_types: list[str] | None


def save(estimator: Any, folder: Path, *, allow_pickle: bool, what: str) -> SavedModel:
    """Write `estimator` into `folder` with skops, read it back to be sure; fall back to joblib only
    when `allow_pickle`. `what` starts the errors' sentence (`trainer m:f returned a Shifted`).

    The caller makes the classes' modules importable (skops imports them to read the file back).
    """
    try:
        return save_skops(estimator, folder)
    except Exception as error:  # skops refuses what it cannot store in many ways
        if not allow_pickle:
            raise UsageError(
                f"{what}, which skops cannot store ({describe(error)}); define the model's classes at "
                "module level, not inside the trainer, with their state in plain attributes; or, if "
                f"you trust the code it holds, allow pickles for this model ({mention('allow_pickle', True)})"
            ) from None
    path = folder / f"model{ModelFormat.JOBLIB.suffix}"
    try:
        joblib.dump(estimator, path)
    except Exception as error:  # pickle fails as PicklingError, AttributeError or TypeError
        raise UsageError(
            f"{what}, which neither skops nor joblib can store ({describe(error)}); define the model's "
            "classes at module level, not inside the trainer, and keep no open files, locks or "
            "connections on it"
        ) from None
    log.warning("%s, stored as a pickle (joblib): loading it can run any code it holds", what)
    return SavedModel(path, ModelFormat.JOBLIB, None)


def save_skops(estimator: Any, folder: Path) -> SavedModel:
    """Write `estimator` with skops and read it back with the types it needs; skops's error otherwise."""
    path = folder / f"model{ModelFormat.SKOPS.suffix}"
    sio.dump(estimator, path)
    trusted = sio.get_untrusted_types(file=path)
    sio.load(path, trusted=trusted)  # a file that cannot be read back fails here, not in a gateway
    return SavedModel(path, ModelFormat.SKOPS, trusted)


def is_skops_file(path: Path) -> bool:
    """skops files are zip archives; joblib files never are."""
    return zipfile.is_zipfile(path)


def types_needed(data: bytes) -> list[str]:
    """The types a skops file needs beyond those skops trusts by default (read from the file)."""
    needed: list[str] = sio.get_untrusted_types(data=data)
    return needed


def load(
    data: bytes,
    fmt: ModelFormat,
    trusted_types: list[str] | None,
    *,
    model: str,
    allow_pickle: bool,
    who: str,
    warn: bool = True,
) -> Any:
    """The model object in `data`. A skops file loads only with `trusted_types` (the allow-list
    recorded in the store); a pickle only when `allow_pickle`, with a warning unless not `warn`.
    `who` names the version in errors."""
    if fmt is ModelFormat.SKOPS:
        try:
            return sio.loads(data, trusted=list(trusted_types or []))
        except UntrustedTypesFoundException:
            outside = sorted(set(types_needed(data)) - set(trusted_types or []))
            raise UntrustedTypesError(who, outside) from None
    if not allow_pickle:
        raise PickleRefusedError(who, model)
    if warn:
        log.warning("%s is a pickle (joblib): loading it can run any code it holds", who)
    return joblib.load(io.BytesIO(data))


def read_file(path: Path) -> tuple[Any, ModelFormat]:
    """A model file given to `register`: skops (its own types trusted: the person registering vouches
    for the file) or joblib (unpickled here, on the registering machine)."""
    if is_skops_file(path):
        return sio.load(path, trusted=sio.get_untrusted_types(file=path)), ModelFormat.SKOPS
    return joblib.load(path), ModelFormat.JOBLIB
