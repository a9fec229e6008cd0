from __future__ import annotations

import json
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import helpers
import misbehaving_models
from helpers import one_line_error, write_classification_csv, write_regression_csv
from pitstop.datasets import point_in_time_join
from pitstop.errors import UsageError
from pitstop.training import Reproduction
from pitstop.workspace import Workspace


@pytest.fixture
def ready(workspace: Workspace, tmp_path: Path) -> Workspace:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv", rows=240), time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    return workspace


def test_train_registers_a_version_with_trainer_lineage(ready: Workspace) -> None:
    version = ready.train("eta", trainer="helpers:linear_trainer", data="train", params={"intercept": False})
    assert version.version == 1
    assert version.lineage.to_json()["trainer"] == "helpers:linear_trainer"
    assert version.lineage.to_json()["params"] == {"intercept": False}
    assert version.lineage.to_json()["training_window"]["rows"] == 240
    assert hasattr(ready.load("eta", 1), "predict")


def test_x_holds_exactly_the_feature_columns(ready: Workspace) -> None:
    ready.train("eta", trainer="helpers:spy_trainer", data="train")
    assert helpers.SPY["columns"] == ["a", "b"]


def test_as_of_uses_only_rows_strictly_before_the_cutoff(ready: Workspace) -> None:
    cutoff = pd.Timestamp("2026-01-03T00:00", tz="UTC")  # hourly rows from 2026-01-01: 48 rows before
    version = ready.train("eta", trainer="helpers:spy_trainer", data="train", as_of=cutoff)
    assert helpers.SPY["rows"] == 48
    window = version.lineage.to_json()["training_window"]
    assert window["end"] == "2026-01-02T23:00:00+00:00" and window["rows"] == 48
    assert version.lineage.to_json()["as_of"] == cutoff.isoformat()


def test_a_feature_missing_from_the_dataset_is_named(workspace: Workspace, tmp_path: Path) -> None:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"))
    workspace.create_model("eta", task="regression", target="y", features=["a", "c"])
    with pytest.raises(UsageError, match=r"missing column.*c"):
        workspace.train("eta", trainer="helpers:linear_trainer", data="train")


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ("helpers:failing_trainer", "raised RuntimeError: out of memory on purpose"),
        ("helpers:no_predict_trainer", "no predict method"),
        ("helpers:does_not_exist", "has no function 'does_not_exist'"),
        ("no_such_module:fit", "cannot import no_such_module"),
        ("helpers.linear_trainer", "package.module:function"),
    ],
)
def test_bad_trainers_fail_clearly_and_register_nothing(ready: Workspace, trainer: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ready.train("eta", trainer=trainer, data="train")
    assert ready.versions("eta") == []


def test_classification_needs_a_binary_target(workspace: Workspace, tmp_path: Path) -> None:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"))
    workspace.create_model("churn", task="classification", target="y", features="all", id_columns=["user_id"])
    with pytest.raises(UsageError, match="binary target"):
        workspace.train("churn", trainer="helpers:logistic_trainer", data="train")


def test_classification_trains_on_a_binary_target(workspace: Workspace, tmp_path: Path) -> None:
    workspace.add_dataset("train", write_classification_csv(tmp_path / "train.csv"), time_column="time")
    workspace.create_model("churn", task="classification", target="y", features="all", id_columns=["user_id"])
    version = workspace.train("churn", trainer="helpers:logistic_trainer", data="train")
    assert version.lineage.to_json()["features"] == ["a", "b"]


def test_reproduce_matches_for_a_deterministic_trainer(ready: Workspace) -> None:
    ready.train(
        "eta", trainer="helpers:linear_trainer", data="train", as_of=pd.Timestamp("2026-01-05", tz="UTC")
    )
    result = ready.reproduce("eta", 1)
    assert result.matches and result.rows == 96 and result.max_abs_difference < 1e-9


def test_reproduce_detects_a_nondeterministic_trainer(ready: Workspace) -> None:
    ready.train("eta", trainer="helpers:nondeterministic_trainer", data="train")
    assert not ready.reproduce("eta", 1).matches


def test_reproduce_needs_a_recorded_trainer(ready: Workspace, tmp_path: Path) -> None:
    artifact = helpers.fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m.joblib")
    ready.register("eta", artifact, train_data="train")
    with pytest.raises(UsageError, match="no recorded trainer"):
        ready.reproduce("eta", 1)


def test_train_cli(cli, workspace_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(workspace_dir)]
    cli("dataset", "add", "train", write_regression_csv(tmp_path / "t.csv"), "--time-column", "time", *ws)
    cli(
        "models",
        "create",
        "eta",
        "--task",
        "regression",
        "--target",
        "y",
        "--id-columns",
        "user_id",
        "--features",
        "all",
        *ws,
    )
    trained = cli(
        "train",
        "eta",
        "--trainer",
        "helpers:linear_trainer",
        "--data",
        "train",
        "--as-of",
        "2026-01-04",
        "--param",
        "intercept=true",
        "--json",
        *ws,
    )
    assert trained.exit_code == 0, trained.stderr
    assert '"trainer": "helpers:linear_trainer"' in trained.stdout
    assert cli("reproduce", "eta", "1", *ws).exit_code == 0
    bad = cli("train", "eta", "--trainer", "helpers:failing_trainer", "--data", "train", *ws)
    assert bad.exit_code == 2 and "out of memory on purpose" in bad.stderr
    assert (
        cli(
            "train", "eta", "--trainer", "helpers:linear_trainer", "--data", "train", "--as-of", "soon", *ws
        ).exit_code
        == 2
    )


# -- point-in-time joins --------------------------------------------------------------------------


def _ts(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v, tz="UTC") for v in values]


def test_join_never_takes_a_value_from_the_events_future() -> None:
    events = pd.DataFrame({"user": ["a", "a", "b"], "t": _ts("2026-01-05", "2026-01-02", "2026-01-05")})
    features = pd.DataFrame(
        {
            "user": ["a", "a", "a", "b"],
            "ft": _ts("2026-01-01", "2026-01-03", "2026-01-09", "2026-01-04"),
            "score": [1.0, 2.0, 9.0, 5.0],
        }
    )
    joined = point_in_time_join(events, features, on="user", event_time="t", feature_time="ft")
    assert joined["score"].tolist() == [2.0, 1.0, 5.0]  # original event order kept
    assert (joined["ft"] < joined["t"]).all()


def test_join_excludes_a_feature_stamped_at_exactly_the_event_time() -> None:
    events = pd.DataFrame({"user": ["a"], "t": _ts("2026-01-03")})
    features = pd.DataFrame({"user": ["a", "a"], "ft": _ts("2026-01-01", "2026-01-03"), "score": [1.0, 2.0]})
    joined = point_in_time_join(events, features, on="user", event_time="t", feature_time="ft")
    assert joined["score"].tolist() == [1.0]


def test_join_keeps_entities_apart_and_leaves_gaps_missing() -> None:
    events = pd.DataFrame({"user": ["a", "b", "c"], "t": _ts("2026-01-05", "2026-01-05", "2026-01-05")})
    features = pd.DataFrame({"user": ["b", "a"], "ft": _ts("2026-01-04", "2026-01-06"), "score": [4.0, 6.0]})
    joined = point_in_time_join(events, features, on="user", event_time="t", feature_time="ft")
    assert joined["score"].isna().tolist() == [True, False, True]
    assert joined.loc[1, "score"] == 4.0


def test_join_names_missing_columns() -> None:
    events = pd.DataFrame({"user": ["a"], "t": _ts("2026-01-05")})
    with pytest.raises(UsageError, match="features has no column"):
        point_in_time_join(
            events, pd.DataFrame({"user": ["a"]}), on="user", event_time="t", feature_time="ft"
        )


# -- trainers in the current folder, unpicklable results, the model's time column -------------------


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """A fresh current folder; `write(source)` puts a uniquely named module in it and returns its name."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.chdir(folder)
    written: list[str] = []

    def write(source: str) -> str:
        name = f"mytrainers_{uuid.uuid4().hex[:8]}"
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


LOCAL_CLASS_TRAINER = """
    def fit(X, y, params):
        class Constant:  # defined inside the trainer: pickle cannot find it again
            def predict(self, X):
                return [0.0] * len(X)
        return Constant()
"""

LINEAR_TRAINER = """
    from sklearn.linear_model import LinearRegression

    class Shifted:  # a module-level class: pickled by reference to this module
        def __init__(self, base):
            self.base = base

        def predict(self, X):
            return self.base.predict(X) + 0.5

    def fit(X, y, params):
        return LinearRegression().fit(X, y)

    def shifted(X, y, params):
        return Shifted(LinearRegression().fit(X, y))
"""


def test_an_unpicklable_trainer_result_is_exit_2_naming_the_trainer(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, here: Callable[[str], str]
) -> None:
    module = here(LOCAL_CLASS_TRAINER)
    result = cli("train", "eta", "--trainer", f"{module}:fit", "--data", "train", "-w", ready.path)
    assert result.exit_code == 2
    assert f"trainer {module}:fit returned a Constant, which skops cannot store" in result.stderr
    assert "define the model's classes at module level" in result.stderr and "--allow-pickle" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert ready.versions("eta") == [] and ready.model("eta").features is None
    pickled = ("--data", "train", "--allow-pickle", "-w", ready.path)
    line = one_line_error(cli("train", "eta", "--trainer", f"{module}:fit", *pickled))
    assert "which neither skops nor joblib can store (PicklingError" in line and ready.versions("eta") == []
    assert not ready.model("eta").allow_pickle


def test_a_trainer_module_in_the_current_folder_is_importable(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, here: Callable[[str], str]
) -> None:
    module = here(LINEAR_TRAINER)
    result = cli("train", "eta", "--trainer", f"{module}:fit", "--data", "train", "-w", ready.path)
    assert result.exit_code == 0, result.stderr
    assert ready.version("eta", 1).lineage.to_json()["trainer"] == f"{module}:fit"
    assert str(Path.cwd()) not in sys.path  # importable while needed, not left on sys.path


def test_an_unimportable_trainer_says_how_to_make_it_importable(ready: Workspace) -> None:
    with pytest.raises(UsageError, match="install it, add its folder to PYTHONPATH, or run pitstop from"):
        ready.train("eta", trainer="no_such_module:fit", data="train")


def test_a_version_whose_classes_live_in_the_current_folder_loads_from_there(
    ready: Workspace, here: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = here(LINEAR_TRAINER)
    ready.train("eta", trainer=f"{module}:shifted", data="train")
    sys.modules.pop(module)  # as in a new process: the class must be imported again to unpickle
    assert hasattr(ready.load("eta", 1), "predict")
    sys.modules.pop(module)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=rf"eta version 1 cannot be loaded .*No module named '{module}'"):
        ready.load("eta", 1)


def test_reproduce_of_an_unimportable_trainer_names_the_recorded_trainer(
    ready: Workspace, here: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = here(LINEAR_TRAINER)
    ready.train("eta", trainer=f"{module}:fit", data="train")
    sys.modules.pop(module)
    monkeypatch.chdir(tmp_path)  # the trainer's folder is no longer the current one
    with pytest.raises(UsageError) as raised:
        ready.reproduce("eta", 1)
    message = str(raised.value)
    assert f"the trainer '{module}:fit' recorded for eta version 1" in message
    assert "--trainer" not in message and "run pitstop from the folder that holds it" in message


def _without_when(workspace: Workspace, tmp_path: Path) -> Workspace:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"), time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", features="all", time_column="when", id_columns=["user_id"]
    )
    return workspace


def test_training_data_without_the_models_time_column_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = _without_when(workspace, tmp_path)
    with pytest.raises(UsageError, match=r"dataset train:1 has no column 'when', the time column of model"):
        ws.train("eta", trainer="helpers:linear_trainer", data="train")
    with pytest.raises(UsageError, match="no column 'when'"):
        ws.train(
            "eta", trainer="helpers:linear_trainer", data="train", as_of=pd.Timestamp("2026-01-03", tz="UTC")
        )
    artifact = helpers.fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m.joblib")
    with pytest.raises(UsageError, match="no column 'when'"):
        ws.register("eta", artifact, train_data="train")
    assert ws.versions("eta") == [] and ws.model("eta").features is None


def test_train_cli_names_the_missing_time_column(cli, workspace: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _without_when(workspace, tmp_path)
    ws = ["-w", str(workspace.path)]
    result = cli("train", "eta", "--trainer", "helpers:linear_trainer", "--data", "train", *ws)
    assert result.exit_code == 2 and "train:1 has no column 'when'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_derived_features_leave_out_target_time_columns_and_ids(workspace: Workspace, tmp_path: Path) -> None:
    frame = pd.read_csv(write_regression_csv(tmp_path / "d.csv"))
    frame["when"] = frame["time"]  # the model's time column; `time` stays the dataset's own
    frame.to_csv(tmp_path / "d.csv", index=False)
    workspace.add_dataset("train", tmp_path / "d.csv", time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", features="all", time_column="when", id_columns=["user_id"]
    )
    version = workspace.train("eta", trainer="helpers:spy_trainer", data="train")
    assert helpers.SPY["columns"] == ["a", "b"] and version.lineage.to_json()["features"] == ["a", "b"]
    assert version.lineage.to_json()["training_window"]["time_column"] == "when"


def test_missing_target_values_are_an_input_error(workspace: Workspace, tmp_path: Path) -> None:
    frame = pd.read_csv(write_regression_csv(tmp_path / "d.csv"))
    frame.loc[[3, 7], "y"] = None
    frame.to_csv(tmp_path / "d.csv", index=False)
    workspace.add_dataset("train", tmp_path / "d.csv", time_column="time")
    workspace.create_model("eta", task="regression", target="y", features="all", id_columns=["user_id"])
    with pytest.raises(UsageError, match=r"target column 'y' has 2 missing value\(s\) in 200 rows"):
        workspace.train("eta", trainer="helpers:linear_trainer", data="train")
    assert workspace.versions("eta") == []


def test_a_misspelt_id_column_is_refused_so_the_real_one_cannot_become_a_feature(
    workspace: Workspace, tmp_path: Path
) -> None:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "d.csv"), time_column="time")
    workspace.create_model("eta", task="regression", target="y", features="all", id_columns=["usr_id"])
    with pytest.raises(UsageError, match=r"has no column 'usr_id', an id column of model 'eta'"):
        workspace.train("eta", trainer="helpers:linear_trainer", data="train")
    assert workspace.versions("eta") == []


def test_as_of_without_any_time_column_says_how_to_add_one(workspace: Workspace, tmp_path: Path) -> None:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "d.csv"))
    workspace.create_model(
        "eta", task="regression", target="y", features="all", id_columns=["user_id", "time"]
    )
    with pytest.raises(UsageError, match=r"^as_of: needs a time column.*dataset add NAME FILE --time-column"):
        workspace.train(
            "eta", trainer="helpers:linear_trainer", data="train", as_of=pd.Timestamp("2026-01-03", tz="UTC")
        )


RESULT_TRAINERS = """
    from sklearn.linear_model import LinearRegression

    def nopredict(X, y, params):
        return 3

    def forgot_return(X, y, params):
        LinearRegression().fit(X, y)

    def regressor(X, y, params):
        return LinearRegression().fit(X, y)
"""


@pytest.mark.parametrize(
    ("function", "reads"),
    [
        ("nopredict", "returned an int, which has no predict method"),
        ("forgot_return", "returned None, which has no predict method"),
    ],
)
def test_a_trainer_result_without_predict_is_named_in_one_plain_sentence(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, here: Callable[[str], str], function: str, reads: str
) -> None:
    module = here(RESULT_TRAINERS)
    result = cli("train", "eta", "--trainer", f"{module}:{function}", "--data", "train", "-w", ready.path)
    assert result.exit_code == 2
    assert f"error: trainer {module}:{function} {reads}" in result.stderr
    assert "object that" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert ready.versions("eta") == []


def test_a_classification_trainer_result_without_predict_proba_says_it_needs_one(
    workspace: Workspace, tmp_path: Path, here: Callable[[str], str]
) -> None:
    module = here(RESULT_TRAINERS)
    workspace.add_dataset("train", write_classification_csv(tmp_path / "train.csv"), time_column="time")
    workspace.create_model("churn", task="classification", target="y", features="all", id_columns=["user_id"])
    with pytest.raises(UsageError) as raised:
        workspace.train("churn", trainer=f"{module}:regressor", data="train")
    assert str(raised.value) == (
        f"trainer {module}:regressor returned a LinearRegression, which has no predict_proba method; "
        "a classification model needs one to give the positive-class probability"
    )
    assert workspace.versions("churn") == []


# -- misbehaving trainers and models, clean --json, the dataset's time column as a feature --------------


def test_train_json_stays_parseable_when_the_trainer_prints(cli, ready: Workspace) -> None:  # type: ignore[no-untyped-def]
    args = ["--trainer", "misbehaving_models:chatty", "--data", "train", "--json", "-w", ready.path]
    result = cli("train", "eta", *args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["version"] == 1
    assert misbehaving_models.TRAINER_CHATTER in result.stderr


def test_reproduce_json_stays_parseable_when_trainer_and_model_print(  # type: ignore[no-untyped-def]
    cli, ready: Workspace
) -> None:
    ready.train("eta", trainer="misbehaving_models:chatty_model", data="train")
    result = cli("reproduce", "eta", "1", "--json", "-w", ready.path)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    fields = {"model", "version", "matches", "max_abs_difference", "differing_rows", "rows", "trainer"}
    assert set(data) == fields
    assert data["matches"] and data["differing_rows"] == 0 and data["rows"] == 240
    assert misbehaving_models.PREDICT_CHATTER in result.stderr


def test_a_trainer_calling_sys_exit_is_exit_2_with_its_message_and_nothing_registered(  # type: ignore[no-untyped-def]
    cli, ready: Workspace
) -> None:
    trainer = "misbehaving_models:gives_up"
    result = cli("train", "eta", "--trainer", trainer, "--data", "train", "-w", ready.path)
    assert result.exit_code == 2
    assert f"trainer {trainer} raised SystemExit: trainer gave up" in one_line_error(result)
    assert ready.versions("eta") == []


def test_a_trainer_module_calling_sys_exit_on_import_is_exit_2(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, here: Callable[[str], str]
) -> None:
    module = here("import sys\nsys.exit('no GPU here')\n")
    result = cli("train", "eta", "--trainer", f"{module}:fit", "--data", "train", "-w", ready.path)
    assert result.exit_code == 2
    assert f"importing {module} failed (SystemExit: no GPU here)" in one_line_error(result)
    assert ready.versions("eta") == []


def test_ctrl_c_in_a_trainer_still_stops_pitstop(ready: Workspace) -> None:
    with pytest.raises(KeyboardInterrupt):
        ready.train("eta", trainer="misbehaving_models:interrupted", data="train")
    assert ready.versions("eta") == []


@pytest.mark.parametrize(
    ("trainer", "reads"),
    [
        ("broken_predict", "failed to predict on its training data train:1 (RuntimeError: feature store"),
        ("words_answer", "failed to predict on its training data train:1 (ValueError: could not convert"),
        ("short_answer", "returned 3 prediction(s) for the 240 rows of its training data train:1"),
    ],
)
def test_reproduce_of_a_model_without_one_number_per_row_is_exit_2_naming_the_version(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, trainer: str, reads: str
) -> None:
    ready.train(
        "eta", trainer=f"misbehaving_models:{trainer}", data="train", skip_check=misbehaving_models.SKIP_CHECK
    )
    result = cli("reproduce", "eta", "1", "-w", ready.path)
    assert result.exit_code == 2
    assert f"error: eta version 1 {reads}" in one_line_error(result)


def test_reproduce_matches_nan_predictions_in_the_same_rows(ready: Workspace) -> None:
    ready.train(
        "eta", trainer="misbehaving_models:nan_answer", data="train", skip_check=misbehaving_models.SKIP_CHECK
    )
    result = ready.reproduce("eta", 1)
    assert result.matches and result.differing_rows == 0 and result.max_abs_difference == 0.0


def test_reproduction_compares_row_by_row_within_the_tolerance() -> None:
    original = np.array([1.0, np.nan, 3.0, 4.0])
    assert Reproduction.compare("m", 1, "t", original, original + 1e-12).matches
    moved = Reproduction.compare("m", 1, "t", original, np.array([1.0, 2.0, 3.5, 4.0]))
    assert not moved.matches and moved.differing_rows == 2 and moved.max_abs_difference == 0.5
    assert not Reproduction.compare("m", 1, "t", np.array([1.0, 2.0]), np.array([1.0, np.nan])).matches


def test_reproduce_cli_is_exit_1_when_predictions_differ(cli, ready: Workspace) -> None:  # type: ignore[no-untyped-def]
    ready.train("eta", trainer="helpers:nondeterministic_trainer", data="train")
    result = cli("reproduce", "eta", "1", "-w", ready.path)
    assert result.exit_code == 1, result.stderr
    assert "NOT reproduced" in result.stdout and "of 240 training rows differ" in result.stdout


def _time_as_declared_feature(workspace: Workspace, tmp_path: Path) -> Workspace:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"), time_column="time")
    workspace.create_model("m4", task="regression", target="y", features=["a", "b", "time"])
    return workspace


def test_a_declared_feature_that_is_the_datasets_time_column_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    ws = _time_as_declared_feature(workspace, tmp_path)
    reads = "model 'm4' declares feature 'time', which is the time column of dataset train:1"
    with pytest.raises(UsageError, match=reads):
        ws.train("m4", trainer="helpers:spy_trainer", data="train")
    artifact = helpers.fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m.joblib")
    with pytest.raises(UsageError, match=reads):
        ws.register("m4", artifact, train_data="train")
    assert ws.versions("m4") == []


def test_train_cli_refuses_the_time_column_as_a_feature_in_one_line(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, tmp_path: Path
) -> None:
    ws = _time_as_declared_feature(workspace, tmp_path)
    result = cli("train", "m4", "--trainer", "helpers:linear_trainer", "--data", "train", "-w", ws.path)
    assert result.exit_code == 2
    assert "which is the time column of dataset train:1" in one_line_error(result)


def test_a_declared_time_named_column_is_a_feature_when_no_time_column_is_in_effect(
    workspace: Workspace, tmp_path: Path
) -> None:
    frame = pd.read_csv(write_regression_csv(tmp_path / "d.csv"))
    frame["time"] = range(len(frame))  # a plain number here, not the dataset's time column
    frame.to_csv(tmp_path / "d.csv", index=False)
    workspace.add_dataset("train", tmp_path / "d.csv")
    workspace.create_model("m4", task="regression", target="y", features=["a", "b", "time"])
    workspace.train("m4", trainer="helpers:spy_trainer", data="train")
    assert helpers.SPY["columns"] == ["a", "b", "time"]


@pytest.mark.parametrize("text", ["", "NaT", "nan", "soon"])
def test_as_of_that_is_no_time_is_exit_2_naming_the_option_and_the_format(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, text: str
) -> None:
    args = ["--data", "train", "--as-of", text, "-w", ready.path]
    result = cli("train", "eta", "--trainer", "helpers:linear_trainer", *args)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert f"--as-of {text!r}: not a timestamp; write it like 2026-06-01" in line
    assert ready.versions("eta") == []


def test_train_on_an_unknown_dataset_version_is_exit_2_inone_line_error(cli, ready: Workspace) -> None:  # type: ignore[no-untyped-def]
    args = ["--trainer", "helpers:linear_trainer", "--data", "train:99", "-w", ready.path]
    result = cli("train", "eta", *args)
    assert result.exit_code == 2
    assert "dataset 'train' has no version 99" in one_line_error(result)
    assert ready.versions("eta") == []
