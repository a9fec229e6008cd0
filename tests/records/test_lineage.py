"""The lineage record reads every shape earlier versions stored, and writes back what it read."""

from __future__ import annotations

from typing import Any

from pitstop.data_refs import DataReference
from pitstop.records.lineage import CodeCommit, DatasetUse, DoorCheckRecord, Lineage, TrainingWindow

# As the first releases stored it: the environment held the registering process's packages; no input
# signature, door check or top-level packages yet, and a key a caller added (`extra_lineage`).
FOUNDATION = {
    "datasets": [{"role": "train", "name": "train", "version": 1, "sha256": "ab" * 32, "rows": 200}],
    "training_window": {
        "start": "2026-01-01T00:00:00",
        "end": "2026-01-09T07:00:00",
        "rows": 200,
        "time_column": "t",
    },
    "as_of": None,
    "params": {"alpha": 0.1},
    "features": ["a", "b"],
    "feature_types": {"a": "float64", "b": "int64"},
    "feature_pipeline_version": "fp-1",
    "code": {"commit": "unknown", "dirty": False},
    "environment": {"python": "3.12.3", "packages": {"pitstop": "0.1.0", "numpy": "1.26.4"}},
    "trainer": None,
    "offline_metrics": {"mae": 0.25},
}

# As pitstop stores it now, for data by reference with a given commit and a skipped door check.
BY_REFERENCE = {
    "datasets": [],
    "data_reference": {
        "uri": "s3://b/train.parquet",
        "sha256": "cd" * 32,
        "md5": None,
        "size_bytes": None,
        "dvc_file": None,
        "checked": False,
    },
    "training_window": {"start": None, "end": None, "rows": None, "time_column": None},
    "as_of": "2026-01-02T00:00:00+00:00",
    "params": {},
    "features": ["a"],
    "feature_types": {},
    "feature_pipeline_version": None,
    "code": {
        "commit": "a" * 40,
        "dirty": False,
        "given": True,
        "folder": {"commit": "b" * 40, "dirty": True},
    },
    "environment": {"python": "3.12.3", "pitstop": "0.4.0"},
    "trainer": None,
    "input_signature": {"columns": [{"name": "a", "dtype": "float64"}], "takes": "frame"},
    "packages": {"scikit-learn": "1.5.2"},
    "door_check": {"skipped": "the rows cannot be read here"},
}


def test_an_old_shaped_lineage_reads_with_the_defaults_of_its_time() -> None:
    lineage = Lineage.from_json(FOUNDATION)
    assert lineage.training_dataset == DatasetUse("train", "train", 1, "ab" * 32, 200)
    assert lineage.training_window == TrainingWindow("2026-01-01T00:00:00", "2026-01-09T07:00:00", 200, "t")
    assert lineage.input_signature is None and lineage.packages is None and lineage.door_check is None
    assert lineage.data_reference is None and lineage.code == CodeCommit()
    assert lineage.recorded_packages() == {"pitstop": "0.1.0", "numpy": "1.26.4"}
    assert lineage.extra == {"offline_metrics": {"mae": 0.25}}


def test_a_lineage_is_stored_back_as_it_was_read() -> None:
    for stored in (FOUNDATION, BY_REFERENCE):
        assert Lineage.from_json(stored).to_json() == stored


def test_a_lineage_by_reference_keeps_its_reference_commit_and_door_check() -> None:
    lineage = Lineage.from_json(BY_REFERENCE)
    assert lineage.data_reference == DataReference("s3://b/train.parquet", sha256="cd" * 32)
    assert lineage.code.given and lineage.code.folder == CodeCommit("b" * 40, dirty=True)
    assert lineage.door_check == DoorCheckRecord(skipped="the rows cannot be read here")
    assert lineage.recorded_packages() == {"scikit-learn": "1.5.2"}


def test_the_least_a_store_may_hold_reads() -> None:
    minimal: dict[str, Any] = {"features": ["a"]}
    assert Lineage.from_json(minimal) == Lineage(features=["a"])
