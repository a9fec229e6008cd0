"""A model file runs only code it was trusted to run (issue 16, row 8; guarantee 12).

Versions are stored with skops and load with a type allow-list fixed at registration; pickles load
only for a model that allows them; `models convert` moves a pickled version to skops; signatures made
with a key the store does not hold are checked on every load when a verify key is configured; and a
copied workspace reads its own artifact files.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression

from helpers import (
    OffsetModel,
    SlottedModel,
    fit_regression_artifact,
    one_line_error,
    write_regression_csv,
)
from pitstop import registry
from pitstop.errors import ArtifactIntegrityError, ConfigError, UsageError
from pitstop.model_files import PickleRefusedError, UntrustedTypesError
from pitstop.signing import Keys, SignatureError
from pitstop.store.engine import make_engine
from pitstop.store.migrate import head_revision, upgrade
from pitstop.store.tables import model_versions
from pitstop.workspace import Workspace

HMAC_SECRET = "4f1c0a8e9b7d6c5e3a2f1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"


@pytest.fixture
def ws(workspace: Workspace, tmp_path: Path) -> Workspace:
    """A workspace with training data and a regression model `eta` (pickles not allowed)."""
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"), time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    return workspace


def _fitted(tmp_path: Path) -> LinearRegression:
    frame = pd.read_csv(tmp_path / "train.csv")
    return LinearRegression().fit(frame[["a", "b"]], frame["y"])


def _register(ws: Workspace, model: Any, path: Path) -> int:
    joblib.dump(model, path)
    return ws.register("eta", path, train_data="train").version


def _stored(ws: Workspace, model: str, version: int) -> Path:
    return Path(ws.artifacts.location(ws.version(model, version).artifact_uri))


def _forge(ws: Workspace, version: int, content: bytes, **columns: Any) -> None:
    """What a writer of the store and the artifact files can do: replace the file, and make the row
    match it (sha256, and any other column)."""
    path = _stored(ws, "eta", version)
    path.write_bytes(content)
    with ws.writing() as conn:
        conn.execute(
            model_versions.update()
            .where(model_versions.c.version == version)
            .values(sha256=hashlib.sha256(content).hexdigest(), **columns)
        )


def _add_pickled_version(ws: Workspace, model: Any, tmp_path: Path) -> int:
    """A version as every version before schema 0005 was stored: a joblib pickle."""
    path = tmp_path / f"legacy-{len(ws.versions('eta'))}.joblib"
    joblib.dump(model, path)
    uri, sha256, size = ws.artifacts.put(path, "models", ".joblib")
    first = ws.versions("eta") or [
        ws.register(
            "eta", fit_regression_artifact(tmp_path / "train.csv", tmp_path / "x.joblib"), train_data="train"
        )
    ]
    lineage = first[0].lineage
    with ws.writing() as conn:
        info = registry.get_model(conn, "eta", for_update=True)
        return registry.add_version(
            conn,
            info,
            artifact_uri=uri,
            sha256=sha256,
            size_bytes=size,
            lineage=lineage,
            now=ws.clock.now(),
            actor="legacy",
            fmt="joblib",
            trusted_types=None,
        ).version


# -- skops by default, with an allow-list fixed at registration ---------------------------------------


def test_a_registered_sklearn_model_is_stored_with_skops_and_loads(ws: Workspace, tmp_path: Path) -> None:
    fitted = _fitted(tmp_path)
    number = _register(ws, fitted, tmp_path / "m.joblib")
    version = ws.version("eta", number)
    assert version.format == "skops" and version.trusted_types == []
    assert version.artifact_uri.endswith(".skops") and zipfile.is_zipfile(_stored(ws, "eta", number))
    X = pd.read_csv(tmp_path / "train.csv")[["a", "b"]]
    np.testing.assert_array_equal(ws.load("eta", number).predict(X), fitted.predict(X))


def test_a_skops_file_can_be_registered(ws: Workspace, tmp_path: Path) -> None:
    sio.dump(OffsetModel(_fitted(tmp_path), 1.0), tmp_path / "o.skops")
    version = ws.register("eta", tmp_path / "o.skops", train_data="train")
    assert (version.format, version.trusted_types) == ("skops", ["helpers.OffsetModel"])
    assert isinstance(ws.load("eta", version.version), OffsetModel)


def test_a_trained_model_and_its_custom_classes_are_stored_with_skops(ws: Workspace, tmp_path: Path) -> None:
    trained = ws.train("eta", trainer="helpers:linear_trainer", data="train")
    assert trained.format == "skops"
    wrapped = _register(ws, OffsetModel(_fitted(tmp_path), 1.0), tmp_path / "o.joblib")
    assert ws.version("eta", wrapped).trusted_types == ["helpers.OffsetModel"]
    assert isinstance(ws.load("eta", wrapped), OffsetModel)


def test_the_allow_list_holds_the_types_skops_does_not_trust_by_default(
    ws: Workspace, tmp_path: Path
) -> None:
    frame = pd.read_csv(tmp_path / "train.csv")
    trees = HistGradientBoostingRegressor(max_iter=5).fit(frame[["a", "b"]], frame["y"])
    number = _register(ws, trees, tmp_path / "h.joblib")
    assert ws.version("eta", number).trusted_types == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]


def test_a_skops_file_needing_a_type_outside_its_allow_list_is_refused(ws: Workspace, tmp_path: Path) -> None:
    number = _register(ws, _fitted(tmp_path), tmp_path / "m.joblib")
    marker = tmp_path / "pwned"
    hostile = sio.dumps(functools.partial(os.system, f"touch {marker}"))
    _forge(ws, number, hostile)
    with pytest.raises(UntrustedTypesError) as raised:
        ws.load("eta", number)
    assert raised.value.types == ["functools.partial", "posix.system"]
    assert "outside the allow-list fixed at registration: functools.partial, posix.system" in str(
        raised.value
    )
    assert not marker.exists()


def test_the_allow_list_is_read_from_the_store_not_the_file(ws: Workspace, tmp_path: Path) -> None:
    """A file swapped for another model's skops file needing more types is refused, though skops
    itself would list exactly those types from the file."""
    number = _register(ws, _fitted(tmp_path), tmp_path / "m.joblib")
    _forge(ws, number, sio.dumps(OffsetModel(_fitted(tmp_path), 5.0)))
    with pytest.raises(UntrustedTypesError, match=r"helpers\.OffsetModel"):
        ws.load("eta", number)


# -- pickle only by opt-in ------------------------------------------------------------------------------


def test_a_pickle_is_refused_unless_the_model_allows_pickles(ws: Workspace, tmp_path: Path) -> None:
    number = _register(ws, _fitted(tmp_path), tmp_path / "m.joblib")
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.joblib"
    joblib.dump(functools.partial(os.system, f"touch {marker}"), path)
    _forge(ws, number, path.read_bytes(), format="joblib", trusted_types=None)
    with pytest.raises(PickleRefusedError, match="does not allow pickles: convert it"):
        ws.load("eta", number)
    assert not marker.exists()


def test_a_model_skops_cannot_store_needs_the_pickle_opt_in(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"holds a SlottedModel, which skops cannot store .*allow_pickle=True"
    ):
        _register(ws, SlottedModel(_fitted(tmp_path)), tmp_path / "s.joblib")
    assert ws.versions("eta") == []


def test_an_allowed_pickle_is_stored_and_loaded_with_a_warning(
    ws: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    joblib.dump(SlottedModel(_fitted(tmp_path)), tmp_path / "s.joblib")
    with caplog.at_level(logging.WARNING, logger="pitstop.model_files"):
        version = ws.register("eta", tmp_path / "s.joblib", train_data="train", allow_pickle=True)
    assert version.format == "joblib" and version.trusted_types is None
    assert ws.model("eta").allow_pickle
    assert [e.kind for e in ws.events("eta")][-2:] == ["pickle_policy", "version_registered"]
    assert "stored as a pickle (joblib): loading it can run any code" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pitstop.model_files"):
        assert isinstance(ws.load("eta", version.version), SlottedModel)
    assert "eta version 1 is a pickle (joblib)" in caplog.text
    ws.allow_pickle("eta", False, reason="no more pickles")
    with pytest.raises(PickleRefusedError):
        ws.load("eta", version.version)


def test_models_create_allow_pickle_is_recorded(cli, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "models",
        "create",
        "m",
        "--task",
        "regression",
        "--target",
        "y",
        "--features",
        "all",
        "--allow-pickle",
        "-w",
        workspace_dir,
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    with Workspace(workspace_dir) as ws:
        assert ws.model("m").allow_pickle is True


# -- convert ----------------------------------------------------------------------------------------


def test_convert_moves_a_pickled_version_to_skops_with_identical_predictions(
    ws: Workspace, tmp_path: Path
) -> None:
    ws.allow_pickle("eta", reason="a version from before skops")
    number = _add_pickled_version(ws, OffsetModel(_fitted(tmp_path), 2.0), tmp_path)
    before = ws.version("eta", number)
    result = ws.convert("eta", number)
    after = ws.version("eta", number)
    assert (after.format, after.trusted_types) == ("skops", ["helpers.OffsetModel"])
    assert after.sha256 == result.to_sha256 != before.sha256 == result.from_sha256
    assert after.lineage == before.lineage and result.checked_on == "train:1" and result.rows == 200
    event = ws.events("eta")[-1]
    assert event.kind == "version_converted" and event.data["from_sha256"] == before.sha256
    ws.allow_pickle("eta", False, reason="converted")
    X = pd.read_csv(tmp_path / "train.csv")[["a", "b"]]
    np.testing.assert_array_equal(ws.load("eta", number).predict(X), _fitted(tmp_path).predict(X) + 2.0)
    assert Path(ws.artifacts.location(before.artifact_uri)).exists()  # the old file is kept


def test_convert_compares_on_the_gates_test_set_or_the_given_data(ws: Workspace, tmp_path: Path) -> None:
    ws.add_dataset("holdout", write_regression_csv(tmp_path / "h.csv", rows=50, seed=3), time_column="time")
    number = _add_pickled_version(ws, _fitted(tmp_path), tmp_path)
    assert ws.convert("eta", number, data="holdout").checked_on == "holdout:1"
    other = _add_pickled_version(ws, _fitted(tmp_path), tmp_path)
    ws.allow_pickle("eta", reason="the gate loads the pickle")
    ws.gate("eta", other, test_set="holdout")
    assert ws.convert("eta", other).checked_on == "holdout:1"


def test_a_model_skops_cannot_store_cannot_be_converted(  # type: ignore[no-untyped-def]
    cli, ws: Workspace, tmp_path: Path
) -> None:
    number = _add_pickled_version(ws, SlottedModel(_fitted(tmp_path)), tmp_path)
    line = one_line_error(cli("models", "convert", "eta", str(number), "-w", ws.path))
    assert f"cannot convert eta version {number}: skops cannot store a SlottedModel" in line
    assert ws.version("eta", number).format == "joblib"
    already = one_line_error(cli("models", "convert", "eta", "1", "-w", ws.path))
    assert "eta version 1 is already stored with skops" in already


# -- signatures -------------------------------------------------------------------------------------


@pytest.fixture
def ed25519(tmp_path: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "signing.pem", tmp_path / "verify.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public


@pytest.fixture
def keyed(ws: Workspace, ed25519: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """`ws` opened again with a signing and a verify key in the environment, as a gateway would be."""
    monkeypatch.setenv("PITSTOP_SIGNING_KEY_FILE", str(ed25519[0]))
    monkeypatch.setenv("PITSTOP_VERIFY_KEY_FILE", str(ed25519[1]))
    with Workspace(ws.path) as opened:
        yield opened


def test_a_signed_version_verifies(keyed: Workspace, tmp_path: Path) -> None:
    number = _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
    signature = keyed.version("eta", number).signature
    assert signature is not None and signature["scheme"] == "ed25519"
    assert hasattr(keyed.load("eta", number), "predict")


def test_an_hmac_signed_version_verifies(ws: Workspace, tmp_path: Path) -> None:
    keys = Keys.from_environment({"PITSTOP_SIGNING_KEY": HMAC_SECRET, "PITSTOP_VERIFY_KEY": HMAC_SECRET})
    with Workspace(ws.path, keys=keys) as keyed:
        number = _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
        assert keyed.version("eta", number).signature["scheme"] == "hmac-sha256"  # type: ignore[index]
        assert hasattr(keyed.load("eta", number), "predict")
    wrong = Keys.from_environment({"PITSTOP_VERIFY_KEY": HMAC_SECRET.replace("4", "5")})
    with Workspace(ws.path, keys=wrong) as other, pytest.raises(SignatureError, match="signed with"):
        other.load("eta", number)


def test_an_unsigned_version_is_refused_when_a_verify_key_is_configured(
    ws: Workspace, ed25519: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = _register(ws, _fitted(tmp_path), tmp_path / "m.joblib")
    monkeypatch.setenv("PITSTOP_VERIFY_KEY_FILE", str(ed25519[1]))
    with Workspace(ws.path) as gateway, pytest.raises(SignatureError, match="it is not signed"):
        gateway.load("eta", number)


def test_gateways_and_the_gate_refuse_an_unsigned_version_under_a_verify_key(
    ws: Workspace, ed25519: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.config import ServingSettings
    from pitstop.serving.runner import make_runner

    number = _register(ws, _fitted(tmp_path), tmp_path / "m.joblib")
    monkeypatch.setenv("PITSTOP_VERIFY_KEY_FILE", str(ed25519[1]))
    with Workspace(ws.path) as gateway:
        info, version = gateway.model("eta"), gateway.version("eta", number)
        with pytest.raises(SignatureError, match="it is not signed"):
            make_runner(gateway, info, version, ServingSettings())
        with pytest.raises(SignatureError, match="it is not signed"):
            gateway.gate("eta", number, test_set="train")


def test_a_tampered_signature_is_refused(keyed: Workspace, tmp_path: Path) -> None:
    number = _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
    signature = dict(keyed.version("eta", number).signature or {})
    signature["value"] = signature["value"][:-4] + ("AAA=" if signature["value"][-4:] != "AAA=" else "BBB=")
    with keyed.writing() as conn:
        conn.execute(model_versions.update().values(signature=signature))
    with pytest.raises(SignatureError, match="signature does not match"):
        keyed.load("eta", number)


def test_a_replaced_file_with_a_forged_sha256_is_refused(keyed: Workspace, tmp_path: Path) -> None:
    number = _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
    other = LinearRegression().fit([[0.0, 0.0], [1.0, 1.0]], [0.0, 100.0])
    _forge(keyed, number, sio.dumps(other))  # needs no type outside the allow-list: only the key tells
    with pytest.raises(SignatureError, match="does not match its sha256, format and type allow-list"):
        keyed.load("eta", number)


def test_a_widened_allow_list_is_refused_under_a_verify_key(keyed: Workspace, tmp_path: Path) -> None:
    """Without a verify key whoever writes the store and the files is trusted; with one, they are not."""
    number = _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
    marker = tmp_path / "pwned"
    hostile = sio.dumps(functools.partial(os.system, f"touch {marker}"))
    _forge(keyed, number, hostile, trusted_types=["functools.partial", "posix.system"])
    with pytest.raises(SignatureError, match="does not match"):
        keyed.load("eta", number)
    assert not marker.exists()


def test_models_sign_signs_existing_versions(  # type: ignore[no-untyped-def]
    cli, ws: Workspace, ed25519: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = _register(ws, _fitted(tmp_path), tmp_path / "m.joblib")
    monkeypatch.setenv("PITSTOP_VERIFY_KEY_FILE", str(ed25519[1]))
    assert "no signing key" in one_line_error(cli("models", "sign", "eta", str(number), "-w", ws.path))
    monkeypatch.setenv("PITSTOP_SIGNING_KEY_FILE", str(ed25519[0]))
    result = cli("models", "sign", "eta", str(number), "-w", ws.path)
    assert result.exit_code == 0, result.stderr
    with Workspace(ws.path) as gateway:
        assert hasattr(gateway.load("eta", number), "predict")
        assert gateway.events("eta")[-1].kind == "version_signed"


def test_a_file_that_no_longer_matches_is_not_signed(keyed: Workspace, tmp_path: Path) -> None:
    number = _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
    _stored(keyed, "eta", number).write_bytes(b"changed")
    with pytest.raises(ArtifactIntegrityError):
        keyed.sign("eta", number)


def test_keys_are_never_stored(ws: Workspace, tmp_path: Path) -> None:
    keys = Keys.from_environment({"PITSTOP_SIGNING_KEY": HMAC_SECRET})
    with Workspace(ws.path, keys=keys) as keyed:
        _register(keyed, _fitted(tmp_path), tmp_path / "m.joblib")
        with keyed.reading() as conn:
            everything = [
                str(row)
                for table in ("models", "model_versions", "events")
                for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
            ]
    assert (
        HMAC_SECRET not in "".join(everything)
        and repr(keys.signer) == f"HmacKey(key_id={keys.signer.key_id!r})"
    )  # type: ignore[union-attr]


def test_a_bad_key_is_a_config_error_naming_the_variable_not_the_key(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="PITSTOP_VERIFY_KEY: an HMAC secret needs at least 32 bytes"
    ) as raised:
        Keys.from_environment({"PITSTOP_VERIFY_KEY": "short-secret"})
    assert "short-secret" not in str(raised.value)
    private = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "k.pem").write_bytes(private)
    with pytest.raises(ConfigError, match="PITSTOP_VERIFY_KEY_FILE: holds a private key"):
        Keys.from_environment({"PITSTOP_VERIFY_KEY_FILE": str(tmp_path / "k.pem")})


# -- locations relative to the artifact store -----------------------------------------------------


def test_a_copied_workspace_loads_its_own_artifact_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)  # the store inside the folder is copied too
    csv = write_regression_csv(tmp_path / "train.csv")
    with Workspace.init(tmp_path / "original") as ws:
        ws.add_dataset("train", csv, time_column="time")
        ws.create_model(
            "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
        )
        version = ws.register("eta", fit_regression_artifact(csv, tmp_path / "m.joblib"), train_data="train")
    assert not Path(version.artifact_uri).is_absolute() and version.artifact_uri.startswith("models/")
    shutil.copytree(tmp_path / "original", tmp_path / "copy")
    artifacts = tmp_path / "original" / ".pitstop" / "artifacts"
    for stored in artifacts.rglob("*.*"):
        stored.write_bytes(b"the original's files changed after the copy")
    with Workspace(tmp_path / "copy") as copy:
        assert hasattr(copy.load("eta", 1), "predict")
        assert len(copy.dataset_frame("train")) == 200
    shutil.rmtree(tmp_path / "original")
    with Workspace(tmp_path / "copy") as copy:
        assert hasattr(copy.load("eta", 1), "predict")


# -- migration 0005 ---------------------------------------------------------------------------------

SHA = "ab" + "0" * 62


def test_upgrading_keeps_pickled_versions_loading_and_makes_locations_relative(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0004")
    created = {"at": datetime(2026, 1, 1), "by": "t"}
    with engine.begin() as conn:
        for name in ("old", "new"):
            conn.execute(
                sa.text(
                    "INSERT INTO models (name, task, target, id_columns, created_at, created_by) "
                    "VALUES (:name, 'regression', 'y', '[]', :at, :by)"
                ),
                {"name": name, **created},
            )
        conn.execute(
            sa.text(
                "INSERT INTO model_versions (model_id, version, artifact_uri, sha256, size_bytes, lineage, "
                "created_at, created_by) SELECT id, 1, :uri, :sha, 1, '{}', :at, :by FROM models "
                "WHERE name = 'old'"
            ),
            {"uri": f"/srv/ws/.pitstop/artifacts/models/ab/{SHA}.joblib", "sha": SHA, **created},
        )
        conn.execute(
            sa.text(
                "INSERT INTO datasets (name, version, sha256, format, uri, source_path, rows, columns, "
                "created_at, created_by) VALUES ('d', 1, :sha, 'csv', :uri, '/x.csv', 1, '[]', :at, :by)"
            ),
            {"uri": f"s3://bucket/arts/datasets/ab/{SHA}.csv", "sha": SHA, **created},
        )
    assert upgrade(engine) == ("0004", head_revision())
    with engine.connect() as conn:
        version = conn.execute(
            sa.text("SELECT artifact_uri, format, trusted_types FROM model_versions")
        ).one()
        pickles = {
            row.name: row.allow_pickle
            for row in conn.execute(sa.text("SELECT name, allow_pickle FROM models"))
        }
        dataset_uri = conn.execute(sa.text("SELECT uri FROM datasets")).scalar()
    engine.dispose()
    assert tuple(version) == (f"models/ab/{SHA}.joblib", "joblib", None)
    assert {name: bool(allowed) for name, allowed in pickles.items()} == {"old": True, "new": False}
    assert dataset_uri == f"datasets/ab/{SHA}.csv"


def test_register_and_show_print_the_allow_list(cli, ws: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    joblib.dump(OffsetModel(_fitted(tmp_path), 1.0), tmp_path / "o.joblib")
    result = cli("register", "eta", tmp_path / "o.joblib", "--train-data", "train", "-w", ws.path)
    assert result.exit_code == 0, result.stderr
    assert "skops, trusting helpers.OffsetModel" in result.stdout
    shown = cli("models", "show", "eta", "1", "-w", ws.path, "--json")
    assert json.loads(shown.stdout)["trusted_types"] == ["helpers.OffsetModel"]
