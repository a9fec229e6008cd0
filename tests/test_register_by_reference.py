"""`pitstop register` of a model trained elsewhere: training data named by reference (a URI and its
sha256, or a DVC file), the caller's code commit, all in the lineage `models show` prints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers import fit_regression_artifact, one_line_error, write_regression_csv
from pitstop import data_refs
from pitstop.errors import UsageError
from pitstop.workspace import Workspace


@pytest.fixture
def outside(workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """Model `eta` (features a, b); training data `train.csv` and a model fitted on it, both outside."""
    workspace.create_model("eta", task="regression", target="y", features=["a", "b"], id_columns=["user_id"])
    csv = write_regression_csv(tmp_path / "train.csv")
    return workspace, csv, fit_regression_artifact(csv, tmp_path / "m.joblib")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def show(cli, ws: Workspace, version: str = "1") -> dict:  # type: ignore[no-untyped-def, type-arg]
    shown = cli("models", "show", "eta", version, "-w", ws.path, "--json")
    assert shown.exit_code == 0, shown.stderr
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def test_a_local_uri_is_hashed_and_recorded_without_a_copy(cli, outside) -> None:  # type: ignore[no-untyped-def]
    ws, csv, artifact = outside
    args = ["--train-data-uri", csv, "--train-data-sha256", sha256(csv).upper(), "-w", ws.path]
    done = cli("register", "eta", artifact, *args)
    assert done.exit_code == 0, done.stderr
    lineage = show(cli, ws)["lineage"]
    assert lineage["datasets"] == []
    assert lineage["data_reference"] == {
        "uri": csv.resolve().as_uri(),
        "sha256": sha256(csv),
        "md5": None,
        "size_bytes": csv.stat().st_size,
        "dvc_file": None,
        "checked": True,
    }
    assert lineage["features"] == ["a", "b"]
    assert ws.datasets() == []  # nothing copied into the store
    assert (
        f"{csv.resolve().as_uri()} sha256 {sha256(csv)[:12]}… (checked)"
        in cli("models", "show", "eta", "1", "-w", ws.path).stdout
    )


def test_a_local_file_whose_hash_differs_is_refused(cli, outside) -> None:  # type: ignore[no-untyped-def]
    ws, csv, artifact = outside
    wrong = "0" * 64
    line = one_line_error(
        cli("register", "eta", artifact, "--train-data-uri", csv, "--train-data-sha256", wrong, "-w", ws.path)
    )
    assert f"has sha256 {sha256(csv)}, not the {wrong} given" in line
    assert ws.versions("eta") == []


def test_a_remote_uri_records_the_hash_as_given(cli, outside) -> None:  # type: ignore[no-untyped-def]
    ws, _, artifact = outside
    uri, digest = "s3://trips/2026-10/train.parquet", "ab" * 32
    done = cli(
        "register", "eta", artifact, "--train-data-uri", uri, "--train-data-sha256", digest, "-w", ws.path
    )
    assert done.exit_code == 0, done.stderr
    reference = show(cli, ws)["lineage"]["data_reference"]
    assert (reference["uri"], reference["sha256"], reference["checked"]) == (uri, digest, False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train-data-uri", "s3://b/t.csv"], "--train-data-uri and --train-data-sha256 go together"),
        (["--train-data-uri", "s3://b/t.csv", "--train-data-sha256", "abc"], "a sha256 is 64 hex digits"),
        (["--train-data-uri", "missing.csv", "--train-data-sha256", "a" * 64], "missing.csv: no such file"),
        ([], "give the training data once"),
        (["--train-data", "d", "--train-data-uri", "s3://b", "--train-data-sha256", "a" * 64], "once"),
        (["--dvc-file", "none.dvc"], "--dvc-file none.dvc: cannot read"),
    ],
)
def test_bad_references_are_one_line(cli, outside, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    ws, _, artifact = outside
    assert message in one_line_error(cli("register", "eta", artifact, *args, "-w", ws.path))


def write_dvc(path: Path, data: Path, md5: str | None = None) -> Path:
    digest = md5 or hashlib.md5(data.read_bytes(), usedforsecurity=False).hexdigest()
    path.write_text(
        f"outs:\n- md5: {digest}\n  size: {data.stat().st_size}\n  hash: md5\n  path: {data.name}\n"
    )
    return path


def test_a_dvc_file_puts_md5_path_and_size_in_the_lineage(cli, outside, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, csv, artifact = outside
    dvc = write_dvc(tmp_path / "train.csv.dvc", csv)
    done = cli("register", "eta", artifact, "--dvc-file", dvc, "-w", ws.path)
    assert done.exit_code == 0, done.stderr
    reference = show(cli, ws)["lineage"]["data_reference"]
    assert reference["md5"] == hashlib.md5(csv.read_bytes(), usedforsecurity=False).hexdigest()
    assert reference["uri"] == csv.resolve().as_uri() and reference["size_bytes"] == csv.stat().st_size
    assert reference["dvc_file"] == str(dvc.resolve()) and reference["checked"] is True


def test_a_dvc_file_whose_data_is_not_pulled_is_recorded_unchecked(outside, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, csv, _ = outside
    dvc = write_dvc(tmp_path / "elsewhere.csv.dvc", csv)
    dvc.write_text(dvc.read_text().replace("train.csv", "elsewhere.csv"))
    reference = data_refs.from_dvc(dvc)
    assert reference.checked is False and reference.uri.endswith("/elsewhere.csv")


def test_a_dvc_file_that_disagrees_with_its_data_is_refused(outside, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, csv, _ = outside
    dvc = write_dvc(tmp_path / "train.csv.dvc", csv, md5="0" * 32)
    with pytest.raises(UsageError, match=r"not the 0{32} the \.dvc file records"):
        data_refs.from_dvc(dvc)


@pytest.mark.parametrize(
    "content", ["outs: []\n", "- 1\n", "outs:\n- path: x\n", "outs: [{md5: abc, path: x, size: -1}]\n", "{"]
)
def test_a_malformed_dvc_file_is_refused(tmp_path: Path, content: str) -> None:
    dvc = tmp_path / "bad.dvc"
    dvc.write_text(content)
    with pytest.raises(UsageError, match=r"^dvc_file .*bad\.dvc"):
        data_refs.from_dvc(dvc)


def test_code_commit_is_recorded_and_shown(cli, outside) -> None:  # type: ignore[no-untyped-def]
    ws, _, artifact = outside
    args = ["--train-data-uri", "s3://b/t", "--train-data-sha256", "a" * 64, "--code-commit", "1A2B3C4D"]
    assert cli("register", "eta", artifact, *args, "-w", ws.path).exit_code == 0
    code = show(cli, ws)["lineage"]["code"]
    assert code["commit"] == "1a2b3c4d" and code["given"] is True
    assert "1a2b3c4d (given with --code-commit" in cli("models", "show", "eta", "1", "-w", ws.path).stdout


@pytest.mark.parametrize("commit", ["abc12", "g" * 7, "a" * 41, ""])
def test_a_code_commit_that_is_not_7_to_40_hex_digits_is_refused(cli, outside, commit: str) -> None:  # type: ignore[no-untyped-def]
    ws, _, artifact = outside
    args = ["--train-data", "x", "--code-commit", commit, "-w", ws.path]
    assert "--code-commit: a commit is 7 to 40 hex digits" in one_line_error(
        cli("register", "eta", artifact, *args)
    )


def test_a_model_without_a_feature_list_needs_data_it_can_read(workspace: Workspace, tmp_path: Path) -> None:
    workspace.create_model("eta", task="regression", target="y", features="all")
    artifact = fit_regression_artifact(write_regression_csv(tmp_path / "t.csv"), tmp_path / "m.joblib")
    reference = data_refs.DataReference(uri="s3://b/t", sha256="a" * 64)
    with pytest.raises(UsageError, match="has no feature list yet"):
        workspace.register("eta", artifact, train_data_ref=reference)
