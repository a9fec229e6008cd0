"""A version loaded under other major/minor versions of the packages its lineage records says so:
a warning at every load (gate, gateway, shadow all load through `Workspace.load`) and a note in
`models show`; it never refuses."""

from __future__ import annotations

import json
import logging
from importlib import metadata
from pathlib import Path

import pytest

from helpers import fit_regression_artifact, write_regression_csv
from pitstop.package_drift import PackageDrift, drifts
from pitstop.registry import get_model
from pitstop.store.tables import model_versions
from pitstop.workspace import Workspace


def recorded_under(ws: Workspace, packages: dict[str, str]) -> None:
    """Version 1 of `eta` as if registered where `packages` were installed (the lineage says so)."""
    version = ws.version("eta", 1)
    lineage = {**version.lineage.to_json(), "packages": packages}
    with ws.writing() as conn:
        model_id = get_model(conn, "eta").id
        conn.execute(
            model_versions.update()
            .where(model_versions.c.model_id == model_id, model_versions.c.version == 1)
            .values(lineage=lineage)
        )


@pytest.fixture
def eta(workspace: Workspace, tmp_path: Path) -> Workspace:
    csv = write_regression_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv, time_column="time")
    workspace.create_model("eta", task="regression", target="y", features=["a", "b"])
    workspace.register("eta", fit_regression_artifact(csv, tmp_path / "m.joblib"), train_data="train")
    return workspace


SKLEARN = metadata.version("scikit-learn")


def test_a_version_registered_here_loads_without_a_note(cli, eta: Workspace, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="pitstop.package_drift"):
        eta.load("eta", 1)
    assert caplog.records == []
    assert (
        json.loads(cli("models", "show", "eta", "1", "-w", eta.path, "--json").stdout)["package_drift"] == []
    )


def test_another_minor_version_is_a_warning_at_load_not_a_refusal(eta: Workspace, caplog) -> None:  # type: ignore[no-untyped-def]
    recorded_under(eta, {"scikit-learn": "0.1.0", "numpy": metadata.version("numpy")})
    with caplog.at_level(logging.WARNING, logger="pitstop.package_drift"):
        model = eta.load("eta", 1)
    assert model is not None
    [record] = caplog.records
    assert f"eta version 1 was registered under scikit-learn 0.1.0 and is loaded under {SKLEARN}" in (
        record.getMessage()
    )


def test_models_show_notes_the_drift(cli, eta: Workspace) -> None:  # type: ignore[no-untyped-def]
    recorded_under(eta, {"scikit-learn": "0.1.0", "not-a-real-package-xyz": "1.0"})
    shown = json.loads(cli("models", "show", "eta", "1", "-w", eta.path, "--json").stdout)
    assert shown["package_drift"] == [
        {"package": "not-a-real-package-xyz", "recorded": "1.0", "installed": None},
        {"package": "scikit-learn", "recorded": "0.1.0", "installed": SKLEARN},
    ]
    text = cli("models", "show", "eta", "1", "-w", eta.path).stdout
    assert f"note: scikit-learn 0.1.0 recorded, {SKLEARN} installed" in text
    assert "note: not-a-real-package-xyz 1.0 recorded, not installed" in text


def test_the_gate_loads_with_the_same_warning(eta: Workspace, tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    eta.add_dataset(
        "test", write_regression_csv(tmp_path / "test.csv", start="2026-03-01"), time_column="time"
    )
    recorded_under(eta, {"scikit-learn": "0.1.0"})
    with caplog.at_level(logging.WARNING, logger="pitstop.package_drift"):
        eta.gate("eta", 1, test_set="test")
    assert any("scikit-learn 0.1.0" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("recorded", "installed", "differs"),
    [
        ("1.5.2", "1.5.9", False),  # a patch release
        ("1.5.2", "1.6.0", True),
        ("1.5.2", "2.5.2", True),
        ("1.5", "1.5.0rc1", False),
        ("2", "2.0.3", False),
        ("not installed", "1.0", False),  # nothing recorded to compare
        ("1.0", None, True),  # gone
    ],
)
def test_only_major_and_minor_count(recorded: str, installed: str | None, differs: bool) -> None:
    found = drifts({"pkg": recorded}, {"pkg": installed}.get)
    assert found == ([PackageDrift("pkg", recorded, installed)] if differs else [])


def test_a_top_level_packages_record_is_read_too() -> None:
    from pitstop.package_drift import recorded_packages
    from pitstop.records.lineage import Lineage

    lineage = {"packages": {"lightgbm": "4.3.0"}, "environment": {"packages": {"numpy": "1.0"}}}
    assert recorded_packages(Lineage.from_json(lineage)) == {"lightgbm": "4.3.0"}
