"""One input contract: the same rows give bit-identical predictions in the gate and in a served call.

Each kind of model people bring is trained with `pitstop train` (its door check included), gated with
`pitstop gate` on a test set, then served by a real gateway over HTTP. The served predictions of the
test rows must be exactly those the model gives the rows built as it was trained (the reference, made
here without pitstop), and their error exactly the MAE the gate recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from pitstop.config import ServingSettings
from pitstop.gate.metrics import offline_metrics
from pitstop.http.app import create_app
from pitstop.losses import Loss
from pitstop.registry import Task
from pitstop.serving import Gateway
from pitstop.workspace import Workspace
from serving.conftest import running

ZONES = ["north", "south", "east"]


@dataclass(frozen=True)
class Case:
    trainer: str
    features: list[str]
    categorical: bool  # trained on a snapshot declaring `zone` categorical
    takes: str  # what the recorded signature says the model takes
    needs: set[str]  # distributions the lineage must record, found by loading it in a fresh process


CASES = [
    Case("sklearn_named", ["a", "n"], False, "frame", {"scikit-learn", "numpy", "pandas"}),
    Case("sklearn_unnamed", ["a", "n"], False, "array", {"scikit-learn", "numpy"}),
    Case("onehot_pipeline", ["a", "zone"], False, "frame", {"scikit-learn", "numpy", "pandas"}),
    Case("lightgbm_categorical", ["a", "n", "zone"], True, "frame", {"lightgbm", "scikit-learn", "pandas"}),
    Case("xgboost_categorical", ["a", "n", "zone"], True, "frame", {"xgboost", "scikit-learn", "pandas"}),
    Case("frame_class", ["a", "zone"], False, "frame", {"pandas"}),
    Case("array_class", ["a", "n"], False, "array", {"numpy"}),
]


def write_rows(path: Path, rows: int, seed: int, start: str, zones: list[str]) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "time": pd.date_range(start, periods=rows, freq="h", tz="UTC"),
            "user_id": [f"u{i % 20}" for i in range(rows)],
            "a": rng.normal(size=rows),
            "n": rng.integers(0, 5, size=rows),
            "zone": rng.choice(zones, size=rows),
        }
    )
    shift = frame["zone"].map({"north": 2.0, "south": -1.0, "east": 0.5})
    frame["y"] = 3 * frame["a"] + 0.5 * frame["n"] + shift + rng.normal(scale=0.1, size=rows)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A SQLite workspace `ws` beside a training file (every zone) and a newer test file (two zones:
    a categorical column's codes would differ if built from the test rows' own categories)."""
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    monkeypatch.delenv("PITSTOP_WORKSPACE", raising=False)
    Workspace.init(tmp_path / "ws").close()
    write_rows(tmp_path / "train.csv", 240, 0, "2026-01-01", ZONES)
    write_rows(tmp_path / "test.csv", 60, 1, "2026-01-12", ZONES[:2])
    yield tmp_path


def served_predictions(ws: Workspace, model: str, rows: pd.DataFrame, features: list[str]) -> list[float]:
    """The test rows as JSON instances through a real gateway on loopback."""
    ws.set_champion(model, 1, reason="serve it")
    instances = [
        {"features": {name: row[name] for name in features}, "user_id": str(row["user_id"])}
        for row in rows.to_dict("records")
    ]
    settings = ServingSettings.model_validate({"poll_interval": "50ms", "batch_max_wait": "1ms"})
    with (
        running(create_app(Gateway(ws, settings=settings))) as url,
        httpx.Client(base_url=url, timeout=20) as client,
    ):
        answer = client.post(f"/v1/models/{model}/predict", json={"instances": instances})
    assert answer.status_code == 200, answer.text
    return [item["prediction"] for item in answer.json()["predictions"]]


def reference(ws: Workspace, model: str, case: Case, test: pd.DataFrame, train: pd.DataFrame) -> Any:
    """What the model predicts for the test rows built as its trainer saw training rows: the training
    dtypes, the training categories, an array for a model that wants one."""
    rows = test[case.features].copy()
    if case.categorical:
        rows["zone"] = rows["zone"].astype(pd.CategoricalDtype(sorted(train["zone"].unique())))
    data = rows.to_numpy(dtype=float) if case.takes == "array" else rows
    return np.asarray(ws.load(model, 1).predict(data), dtype=float)


@pytest.mark.parametrize("case", CASES, ids=[case.trainer for case in CASES])
def test_the_gate_and_a_served_call_give_the_model_the_same_input(  # type: ignore[no-untyped-def]
    cli, folder: Path, case: Case
) -> None:
    ws_path = folder / "ws"
    declared = ["--categorical", "zone"] if case.categorical else []
    for name in ("train", "test"):
        added = cli(
            "dataset", "add", name, folder / f"{name}.csv", "--time-column", "time", *declared, "-w", ws_path
        )
        assert added.exit_code == 0, added.stderr
    created = cli(
        "models", "create", "fare", "--task", "regression", "--target", "y", "--time-column", "time",
        "--id-columns", "user_id", "--features", ",".join(case.features), "-w", ws_path,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    trained = cli(
        "train",
        "fare",
        "--trainer",
        f"contract_models:{case.trainer}",
        "--data",
        "train",
        "--json",
        "-w",
        ws_path,
    )
    assert trained.exit_code == 0, trained.stderr
    lineage = json.loads(trained.stdout)["lineage"]
    assert lineage["input_signature"]["takes"] == case.takes
    assert {name: lineage["packages"].get(name) for name in case.needs} == {
        name: metadata.version(name) for name in case.needs
    }
    gated = cli("gate", "fare", "1", "--test-set", "test", "--json", "-w", ws_path)
    assert gated.exit_code in (0, 1), gated.stderr
    gate_mae = json.loads(gated.stdout)["metrics"]["challenger"]["mae"]

    test, train = pd.read_csv(folder / "test.csv"), pd.read_csv(folder / "train.csv")
    with Workspace(ws_path) as ws:
        served = np.asarray(served_predictions(ws, "fare", test, case.features))
        expected = reference(ws, "fare", case, test, train)
    assert np.array_equal(served, expected)
    assert (
        offline_metrics(Task.REGRESSION, Loss.default(Task.REGRESSION), test["y"], served)["mae"] == gate_mae
    )
