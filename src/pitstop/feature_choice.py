"""Which columns a new model reads: chosen by the person creating it, never guessed.

Taking every column but the target would let an outcome known only after the event (a trip's
`tipped`) in as a feature, and nothing would say so. So a model is created with a list of features,
or with `all`, which is the list printed back: at once when a dataset names the columns, else at the
first version, whose training data fixes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from pitstop.datasets import DatasetSnapshot
from pitstop.errors import UsageError, mention

ALL = "all"
Features = Sequence[str] | Literal["all"]


class FeaturesNotChosenError(UsageError):
    """A model created without saying which columns are its features; `candidates` (from `source`,
    a dataset ref, when one is known) are the columns `all` would take."""

    def __init__(self, model: str, candidates: list[str] | None, source: str | None) -> None:
        self.model, self.candidates, self.source = model, candidates, source
        ask = f"say which columns model {model!r} reads"
        if candidates:
            hint = (
                f"the candidates in dataset {source} are {', '.join(candidates)}: take them all "
                f"with {mention('features', 'all')}, or list the ones to keep, e.g. "
                f"{mention('features', ','.join(candidates))}"
            )
        else:
            hint = (
                f"{mention('features', 'all')} (every column of its first version's training data but "
                f"the target, time and id columns) or a list, e.g. {mention('features', 'a,b')}; add "
                f"{mention('data', 'NAME')} with a registered dataset to see the candidates"
            )
        super().__init__(ask, field="features", hint=hint)


@dataclass(frozen=True)
class Reserved:
    """The columns a new model declares that are never features."""

    target: str
    time_column: str | None
    id_columns: tuple[str, ...]


def candidates(snapshot: DatasetSnapshot, reserved: Reserved) -> list[str]:
    """The snapshot's columns but the target, the model's and the dataset's time columns and the ids,
    in the dataset's order (what a model created with `all` and trained on it reads)."""
    never = {reserved.target, reserved.time_column, snapshot.time_column, *reserved.id_columns}
    return [column for column in snapshot.columns if column not in never]


def resolve(
    model: str, features: Features | None, snapshot: DatasetSnapshot | None, reserved: Reserved
) -> list[str] | None:
    """The feature list model `model` is created with: `features` itself, or for `all` the snapshot's
    candidates (None without a snapshot: the first version fixes them). No `features` is refused with
    the snapshot's candidates; a listed column the snapshot lacks is an error."""
    if features is None:
        found = candidates(snapshot, reserved) if snapshot is not None else None
        raise FeaturesNotChosenError(model, found, snapshot.ref if snapshot is not None else None)
    if isinstance(features, str) and features != ALL:
        raise UsageError(f"give a list of columns or {ALL!r}, got {features!r}", field="features")
    if features == ALL:
        return candidates(snapshot, reserved) if snapshot is not None else None
    chosen = list(features)
    if snapshot is not None:
        missing = [column for column in chosen if column not in snapshot.columns]
        if missing:
            raise UsageError(
                f"dataset {snapshot.ref} has no column {', '.join(map(repr, missing))} "
                f"(its columns: {', '.join(snapshot.columns)})",
                field="features",
            )
    return chosen


def holding(snapshots: Iterable[DatasetSnapshot], column: str) -> DatasetSnapshot | None:
    """The newest snapshot with `column` (a model's target): the likely training data, for showing
    candidates in the refusal only."""
    found = [s for s in snapshots if column in s.columns]
    return max(found, key=lambda s: (s.created_at, s.id)) if found else None
