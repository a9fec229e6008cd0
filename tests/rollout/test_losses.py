"""A regression model's loss, chosen at `models create`, decides its gate and its rollout: the same
two versions, judged by squared error and by pinball loss at 0.9, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from helpers import OffsetModel, make_traffic, write_regression_csv
from pitstop.workspace import Workspace
from rollout.conftest import SHORT_POLICY, fit_base, register_model

TODAY = pd.Timestamp.now(tz="UTC").floor("D")  # the CLI gates on the real clock: data dated from it


@pytest.fixture(params=["squared", "pinball:0.9"])
def scored(request: pytest.FixtureRequest, workspace_dir: Path, tmp_path: Path, cli) -> Iterator[Workspace]:  # type: ignore[no-untyped-def]
    """Model `eta` with the given loss: v1 the exact fit plus 1.0 (the champion), v2 the exact fit."""
    (workspace_dir / "pitstop.yaml").write_text(SHORT_POLICY)
    ws = ["-w", str(workspace_dir)]
    train = write_regression_csv(tmp_path / "train.csv", rows=300, start=str(TODAY - pd.Timedelta(days=30)))
    test = write_regression_csv(
        tmp_path / "test.csv", rows=100, seed=1, start=str(TODAY - pd.Timedelta(days=10))
    )
    for name, path in (("train", train), ("test", test)):
        assert cli("dataset", "add", name, str(path), "--time-column", "time", *ws).exit_code == 0
    created = cli("models", "create", "eta", "--task", "regression", "--target", "y", "--time-column", "time",
                  "--id-columns", "user_id", "--features", "all", "--loss", request.param,
                  "--json", *ws)  # fmt: skip
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["loss"] == request.param
    workspace = Workspace(workspace_dir)
    base = fit_base(tmp_path)
    for offset in (1.0, 0.0):
        register_model(workspace, OffsetModel(base, offset), tmp_path / f"m{offset}.joblib")
    workspace.set_champion("eta", 1, reason="bootstrap")
    yield workspace
    workspace.close()


def test_the_gate_compares_the_models_loss(scored: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("gate", "eta", "2", "--test-set", "test", "--json", "-w", str(scored.path))
    report = json.loads(result.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    challenger = report["metrics"]["challenger"]
    if scored.model("eta").loss == "squared":
        assert set(challenger) == {"mse", "rmse", "r2"}
        assert challenger["rmse"] == pytest.approx(challenger["mse"] ** 0.5)
        assert checks["metric_ratio"]["detail"].startswith("challenger MSE")
        assert not checks["min_quality"]["skipped"]
    else:
        assert set(challenger) == {"pinball"}
        assert checks["metric_ratio"]["detail"].startswith("challenger pinball loss (q=0.9)")
        assert checks["min_quality"]["skipped"]
        assert "R² does not measure a quantile forecast" in checks["min_quality"]["detail"]


def test_the_rollout_rules_judge_by_the_models_loss(scored: Workspace, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    traffic = tmp_path / "traffic.csv"
    make_traffic("2026-03-01T00:00:00+00:00", 12, 3000).to_csv(traffic, index=False)
    result = cli("simulate", "eta", "--champion", "1", "--challenger", "2", "--traffic", str(traffic),
                 "--interval", "10m", "--json", "-w", str(scored.path))  # fmt: skip
    data = json.loads(result.stdout)
    if scored.model("eta").loss == "squared":
        assert (result.exit_code, data["outcome"]) == (0, "promoted"), data["reason"]
    else:  # over-predicting by 1.0 is closer to the 0.9 quantile than the mean is: the champion stays
        assert (result.exit_code, data["outcome"], data["stage"]) == (1, "rejected", "shadow"), data["reason"]


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ("pinball:2", "pinball:2: the quantile must be a number between 0 and 1"),
        ("log_loss", "loss log_loss does not fit a regression model"),
        ("nosuchmodule:loss", "--loss 'nosuchmodule:loss': cannot import nosuchmodule"),
    ],
)
def test_a_bad_loss_is_exit_2_naming_it(cli, workspace_dir: Path, loss: str, message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("models", "create", "eta", "--task", "regression", "--target", "y", "--features", "all",
                 "--loss", loss, "-w", str(workspace_dir))  # fmt: skip
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
