"""`pitstop simulate`, `pitstop retrain`, `pitstop rollout …` and `pitstop controller` through the CLI."""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from helpers import make_traffic, write_regression_csv
from pitstop.errors import UsageError
from pitstop.rollout.controller import Controller
from pitstop.workspace import Workspace


def _traffic(path: Path, **kwargs: object) -> Path:
    make_traffic("2026-03-01T00:00:00+00:00", 12, 3000, **kwargs).to_csv(path, index=False)  # type: ignore[arg-type]
    return path


def test_simulate_promotes_a_better_challenger_and_writes_the_report(
    cli, rollout_ws: Workspace, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    traffic = _traffic(tmp_path / "traffic.csv")
    result = cli(
        "simulate",
        "eta",
        "--champion",
        "1",
        "--challenger",
        "2",
        "--traffic",
        traffic,
        "--interval",
        "10m",
        "--report",
        tmp_path / "replay.html",
        "--json",
        "-w",
        rollout_ws.path,
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {"outcome", "stage", "reason", "timeline", "served"}
    assert data["outcome"] == "promoted"
    assert [item["to"] for item in data["timeline"]][-1] == "promoted"
    assert set(data["timeline"][0]) >= {"time", "from", "to", "reason"}
    assert data["served"]["champion"] > 0 and data["served"]["challenger"] > 0
    assert data["requests_per_second"] == pytest.approx(data["requests"] / data["wall_seconds"])
    assert data["peak_rss_bytes"] > 2**20 * 50  # this interpreter with pandas and scikit-learn loaded
    assert Path(data["report"]).stat().st_size > 100_000
    assert data["way"] == "gateway"  # a report reads the prediction log, which only that way writes
    assert rollout_ws.rollouts("eta") == []  # a replay never touches the real store


def test_simulate_exit_1_when_not_promoted(cli, rollout_ws: Workspace, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    traffic = _traffic(tmp_path / "traffic.csv")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = cli(
        "simulate",
        "eta",
        "--champion",
        "1",
        "--challenger",
        "3",
        "--traffic",
        traffic,
        "--json",
        "-w",
        rollout_ws.path,
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["outcome"], data["stage"], data["rule"]) == ("rejected", "shadow", "shadow.error_ratio")
    assert data["served"]["challenger"] == 0 and data["requests"] < 3000  # stopped once decided
    human = cli(
        "simulate", "eta", "--champion", "1", "--challenger", "3", "--traffic", traffic, "-w", rollout_ws.path
    )
    assert human.exit_code == 1 and "rejected" in human.stdout
    assert "numbers" in human.stdout and "labelled_pairs=" in human.stdout  # the rule's numbers, as in JSON
    assert "requests/s, peak memory" in human.stdout  # what a replay of a month of traffic is sized by
    assert "latency rules never in force" in human.stdout and "--timed-calls" in human.stdout
    assert list(temp.iterdir()) == []  # the replay's store is gone with its temporary folder
    kept = cli("simulate", "eta", "--champion", "1", "--challenger", "3", "--traffic", traffic,
               "--keep", tmp_path / "kept", "--json", "-w", rollout_ws.path)  # fmt: skip
    assert json.loads(kept.stdout)["workspace"] == str(tmp_path / "kept")
    assert json.loads(kept.stdout)["served"] == data["served"]  # same seed, same users, same verdict
    again = cli("simulate", "eta", "--champion", "1", "--challenger", "3", "--traffic", traffic,
                "--keep", tmp_path / "kept", "-w", rollout_ws.path)  # fmt: skip
    assert again.exit_code == 2 and "not empty" in again.stderr
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)  # the kept folder names its own store
    history = cli("rollout", "history", "eta", "--json", "-w", tmp_path / "kept")
    ends = [e["to_state"] for e in json.loads(history.stdout) if e["kind"] == "rollout_transition"]
    assert history.exit_code == 0 and ends[-1] == "rejected"


def test_a_kept_replay_holds_the_prediction_log_only_through_the_gateway(
    cli, rollout_ws: Workspace, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    traffic = _traffic(tmp_path / "traffic.csv")
    outputs = {}
    for name, flags in (("batched", []), ("gateway", ["--through-gateway"])):
        done = cli("simulate", "eta", "--champion", "1", "--challenger", "3", "--traffic", traffic,
                   "--keep", tmp_path / name, "--json", *flags, "-w", rollout_ws.path)  # fmt: skip
        assert done.exit_code == 1, done.stderr
        outputs[name] = json.loads(done.stdout)
    assert outputs["batched"]["timeline"][-1]["to"] == outputs["gateway"]["timeline"][-1]["to"] == "rejected"
    assert outputs["batched"]["served"] == outputs["gateway"]["served"]
    assert (outputs["batched"]["way"], outputs["gateway"]["way"]) == ("batched", "gateway")
    assert (
        outputs["batched"]["champion_calls_timed"] > 0 and outputs["gateway"]["champion_calls_timed"] is None
    )
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)  # each kept folder names its own store
    logged = {}
    for name in outputs:
        kept = Workspace(tmp_path / name)
        with kept.reading() as conn:
            logged[name] = conn.exec_driver_sql(
                "SELECT count(*) FROM predictions WHERE role = 'served'"
            ).scalar_one()
        kept.close()
    assert logged == {"batched": 0, "gateway": sum(outputs["gateway"]["served"].values())}


def test_simulate_bad_traffic_is_exit_2(cli, rollout_ws: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frame = make_traffic("2026-03-01", 1, 10).drop(columns=["label"])
    frame.to_csv(tmp_path / "nolabel.csv", index=False)
    result = cli(
        "simulate",
        "eta",
        "--champion",
        "1",
        "--challenger",
        "2",
        "--traffic",
        tmp_path / "nolabel.csv",
        "-w",
        rollout_ws.path,
    )
    assert result.exit_code == 2 and "label" in result.stderr
    missing = cli(
        "simulate",
        "eta",
        "--champion",
        "1",
        "--challenger",
        "2",
        "--traffic",
        tmp_path / "none.csv",
        "-w",
        rollout_ws.path,
    )
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    traffic = _traffic(tmp_path / "traffic.csv")
    same = cli("simulate", "eta", "--champion", "1", "--challenger", "1", "--traffic", traffic,
               "-w", rollout_ws.path)  # fmt: skip
    assert same.exit_code == 2 and "replaying" not in same.stdout  # no progress bar before the error
    negative = cli("simulate", "eta", "--champion", "1", "--challenger", "2", "--traffic", traffic,
                   "--timed-calls", "-1", "-w", rollout_ws.path)  # fmt: skip
    assert negative.exit_code == 2 and "--timed-calls" in negative.stderr, negative.stderr


def test_rollout_commands_round_trip(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(rollout_ws.path)]
    gate = cli("rollout", "start", "eta", "2", *ws)
    assert gate.exit_code == 1 and "no offline gate result" in gate.stderr
    started = cli("rollout", "start", "eta", "2", "--skip-gate", "--reason", "drill", "--json", *ws)
    assert started.exit_code == 0, started.stderr
    status = json.loads(cli("rollout", "status", "eta", "--json", *ws).stdout)
    assert status["phase"] == "shadow" and status["next_check"]["rule"] == "shadow.min_duration"
    assert "next check" in cli("rollout", "status", "eta", *ws).stdout
    assert cli("route", "eta", "--off", "--reason", "meddling", *ws).exit_code == 2
    promoted = json.loads(
        cli("rollout", "promote", "eta", "--reason", "drill", "--by", "dana", "--json", *ws).stdout
    )
    assert promoted["phase"] == "ab_test"
    assert cli("rollout", "abort", "eta", "--reason", "drill over", *ws).exit_code == 0
    history = json.loads(cli("rollout", "history", "eta", "--json", *ws).stdout)
    transitions = [(e["actor"], e["to_state"]) for e in history if e["kind"] == "rollout_transition"]
    assert transitions[-2:] == [("dana", "ab_test 50%"), (transitions[-1][0], "aborted")]
    table = cli("rollout", "history", "eta", *ws).stdout
    assert "numbers" in table and "challenger=2" in table  # the rule's numbers, not only in --json
    listed = json.loads(cli("rollout", "list", "eta", "--json", *ws).stdout)
    assert listed[0]["outcome"] == "aborted"
    once = json.loads(cli("controller", "--once", "--json", *ws).stdout)
    assert once == {"leader": True, "decisions": []}


@pytest.mark.parametrize("interval", ["0s", "0ms"])
def test_a_zero_controller_interval_is_refused(cli, rollout_ws: Workspace, interval: str) -> None:  # type: ignore[no-untyped-def]
    done = cli("controller", "--interval", interval, "-w", str(rollout_ws.path))
    assert done.exit_code == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--interval: must be longer than zero" in done.stderr
    with pytest.raises(UsageError, match="longer than zero"):
        Controller(rollout_ws, interval=timedelta(0))


def test_retrain_stops_at_the_gate_or_starts_the_rollout(cli, rollout_ws: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(rollout_ws.path)]
    rollout_ws.set_champion("eta", 2, reason="a champion as good as the retrain", force=True)
    today = pd.Timestamp.now(tz="UTC").floor("D")
    train = write_regression_csv(
        tmp_path / "fresh.csv", rows=200, seed=5, start=str(today - pd.Timedelta(days=20))
    )
    test = write_regression_csv(
        tmp_path / "test.csv", rows=48, seed=6, start=str(today - pd.Timedelta(days=3))
    )
    cli("dataset", "add", "fresh", train, "--time-column", "time", *ws)
    cli("dataset", "add", "recent", test, "--time-column", "time", *ws)
    started = cli(
        "retrain",
        "eta",
        "--trainer",
        "helpers:linear_trainer",
        "--data",
        "fresh",
        "--test-set",
        "recent",
        "--json",
        *ws,
    )
    assert started.exit_code == 0, started.stderr
    data = json.loads(started.stdout)
    assert data["stage"] == "rollout" and data["rollout_id"] is not None
    rollout_ws.abort("eta", reason="next")
    stopped = cli(
        "retrain",
        "eta",
        "--trainer",
        "helpers:linear_trainer",
        "--data",
        "fresh",
        "--test-set",
        "fresh",
        "--json",
        *ws,
    )
    assert stopped.exit_code == 1
    assert json.loads(stopped.stdout)["decided_by"] == "temporal_overlap"


def test_a_missing_rollout_id_names_the_model_and_its_rollouts(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(rollout_ws.path)]
    first = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="one").state.id
    rollout_ws.abort("eta", reason="done")
    second = rollout_ws.start_rollout("eta", 3, skip_gate=True, reason="two").state.id
    rollout_ws.create_model("churn", task="regression", target="y", features="all", id_columns=["user_id"])
    for command in ("status", "history"):
        missing = cli("rollout", command, "eta", "--rollout", "9", *ws)
        assert missing.exit_code == 2, command
        assert missing.stderr == f"error: model 'eta' has no rollout 9; its rollouts are {first}, {second}\n"
        elsewhere = cli("rollout", command, "churn", "--rollout", str(first), *ws)
        assert elsewhere.exit_code == 2, command
        assert f"model 'churn' has no rollout {first} (rollout {first} is of model 'eta')" in elsewhere.stderr
        assert "it has none yet; start one with `pitstop rollout start`" in elsewhere.stderr
    shown = json.loads(cli("rollout", "history", "eta", "--rollout", str(first), "--json", *ws).stdout)
    assert shown and {e["rollout_id"] for e in shown} == {first}
    status = json.loads(cli("rollout", "status", "eta", "--rollout", str(first), "--json", *ws).stdout)
    assert status["rollout_id"] == first and status["outcome"] == "aborted"


def test_promote_rollback_and_abort_say_where_the_rollout_is_as_the_history_does(
    cli, rollout_ws: Workspace
) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(rollout_ws.path)]
    rollout = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="drill").state.id
    said = [cli("rollout", "promote", "eta", "--reason", "drill", *ws).stdout.strip() for _ in range(3)] + [
        cli("rollout", "abort", "eta", "--reason", "drill over", *ws).stdout.strip()
    ]
    history = json.loads(cli("rollout", "history", "eta", "--rollout", str(rollout), "--json", *ws).stdout)
    recorded = [e["to_state"] for e in history if e["kind"] == "rollout_transition"]
    assert recorded == ["shadow", "ab_test 50%", "ramp 75%", "ramp 100%", "aborted"]
    assert said == [f"rollout {rollout} of eta: now {where}" for where in recorded[1:]]
