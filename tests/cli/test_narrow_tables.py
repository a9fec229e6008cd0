"""The CLI's tables in an 80-column terminal (`COLUMNS=80`, output piped): no line wider, no word of a
reason or description split across lines, and `--json` unchanged by the width."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pitstop.cli import app
from pitstop.report.words import status_words
from pitstop.workspace import Workspace
from report.rollouts import MODEL, rollout_workspace, send_traffic

WIDTH = 80
BORDERS = re.compile(r"[│┃┏┓┗┛┡┩┳┻╇╋━─┌┐└┘├┤┬┴┼]")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A rollout that ran through shadow into its A/B test (real traffic, the controller deciding), and
    a model description long enough to wrap."""
    scratch = tmp_path_factory.mktemp("narrow")
    ws = rollout_workspace(scratch / "ws", scratch)
    ws.update_model(
        MODEL,
        description="minutes until a courier arrives, from distance and hour; retrained weekly on "
        "fresh orders",
    )
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="a retrained model with fresher training data")
    send_traffic(ws, hours=1.5, requests=500)
    yield ws
    ws.close()


def run(ws: Workspace, *args: str, columns: int = WIDTH) -> str:
    env = {"COLUMNS": str(columns), "PITSTOP_DATABASE_URL": None, "PITSTOP_WORKSPACE": None}
    result = CliRunner().invoke(app, [*args, "-w", str(ws.path)], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def too_wide(output: str) -> list[str]:
    return [line for line in output.splitlines() if len(line) > WIDTH]


def cell_words(output: str) -> set[str]:
    """Every word as printed in the table's cells (borders removed)."""
    return set(BORDERS.sub(" ", output).split())


def assert_whole(words: str, output: str) -> None:
    """Each word of `words` printed whole on one line (not split across lines, not cut to "…")."""
    printed = cell_words(output)
    assert [word for word in words.split() if word not in printed] == [], output


@pytest.mark.parametrize(
    "command",
    [
        ("rollout", "history", MODEL),
        ("rollout", "list", MODEL),
        ("rollout", "status", MODEL),
        ("models", "list"),
        ("models", "list", MODEL),
        ("models", "show", MODEL, "2"),
        ("dataset", "list"),
    ],
    ids=" ".join,
)
def test_tables_fit_80_columns_when_piped_with_columns_set(
    story: Workspace, command: tuple[str, ...]
) -> None:
    output = run(story, *command)
    assert output.strip() and too_wide(output) == []


def test_the_sample_size_plan_keeps_its_counts_whole_at_80_columns() -> None:
    args = ["plan", "--baseline-mean", "3", "--baseline-std", "2", "--mde", "0.02", "--correlation", "0.5"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0 and too_wide(result.stdout) == []
    assert {"17,443", "108,820", "8,723"} <= cell_words(result.stdout)


def test_history_wraps_each_reason_between_words_at_80_columns(story: Workspace) -> None:
    output = run(story, "rollout", "history", MODEL)
    events = story.events(MODEL)
    assert len(events) >= 4 and too_wide(output) == []
    for event in events:
        assert_whole(event.reason or "", output)
        assert_whole(event.rule or "", output)
        assert fmt_prefix(event.time.isoformat()) in output


def fmt_prefix(iso: str) -> str:
    return iso[:19]


def test_rollout_list_and_models_list_keep_their_words_whole(story: Workspace) -> None:
    (rollout,) = story.rollouts(MODEL)
    assert_whole(rollout.state.reason or "", run(story, "rollout", "list", MODEL))
    (model,) = story.models()
    assert_whole(model.description or "", run(story, "models", "list"))


def test_rollout_status_says_the_dashboards_words_at_80_columns(story: Workspace) -> None:
    words = status_words(story.rollout_status(MODEL))
    assert words is not None and words.latency is not None
    output = run(story, "rollout", "status", MODEL)
    assert too_wide(output) == []
    flat = " ".join(output.split())
    for sentence in (words.verdict, words.latency):  # the CLI's clock is real: the data are the same
        assert " ".join(sentence.split()) in flat
    preview = json.loads(run(story, "rollout", "status", MODEL, "--json"))["next_check"]
    assert f"next check: {preview['action']} ({preview['rule']})" in flat  # nothing left to wait for


def test_a_wide_pipe_keeps_long_lines_and_json_ignores_the_width(story: Workspace) -> None:
    wide = run(story, "rollout", "history", MODEL, columns=200)
    assert max(len(line) for line in wide.splitlines()) > WIDTH  # the table follows COLUMNS
    narrow_json = json.loads(run(story, "rollout", "history", MODEL, "--json"))
    wide_json = json.loads(run(story, "rollout", "history", MODEL, "--json", columns=200))
    assert narrow_json == wide_json == [e.to_dict() for e in story.events(MODEL)]


def test_piped_output_without_columns_is_wide_enough_to_keep_rows_whole(
    story: Workspace, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app,
        ["rollout", "list", MODEL, "-w", str(story.path)],
        env={"COLUMNS": None, "PITSTOP_DATABASE_URL": None, "PITSTOP_WORKSPACE": None},
    )
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 160
    (rollout,) = story.rollouts(MODEL)
    assert (rollout.state.reason or "") in result.stdout  # one line: no wrapping needed at 160


def test_the_width_follows_columns_set_after_the_console_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich reads `COLUMNS` once, when a console is made: a CLI imported under `COLUMNS=80` (by an
    earlier command in the same process) printed 80 wide ever after."""
    from pitstop.cli.common import PIPED_WIDTH, piped_console

    monkeypatch.setenv("COLUMNS", "80")
    made_narrow = piped_console()
    assert made_narrow.width == 80
    monkeypatch.delenv("COLUMNS")
    assert made_narrow.width == PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "100")
    assert made_narrow.width == 100
