"""`pitstop rollout history`'s numbers column in a narrow terminal: no line is a lone comma or starts
with punctuation, and no number is lost."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

import pitstop.cli.rollout
import pitstop.cli.simulate
from pitstop import registry
from pitstop.cli.number_list import wrap
from pitstop.events import record_event
from pitstop.formats import key_numbers
from pitstop.workspace import Workspace

# The data of events `pitstop demo` records: an offline gate, a ramp step, a routing change.
EVENTS: list[dict[str, Any]] = [
    {
        "version": 2,
        "champion_version": 1,
        "test_set": {"version": 1, "rows": 3604},
        "metrics": {"challenger": {"mae": 0.197, "r2": 0.992}, "champion": {"mae": 3.43, "r2": 0.88}},
    },
    {
        "error_ratio": 0.761,
        "labelled": {"challenger": 357, "champion": 332},
        "min_labeled_per_arm": 150,
        "step": 0,
        "share": 0.5,
        "elapsed_hours": 6.0,
    },
    {
        "version": 15,
        "champion": 8,
        "challenger_share": 0,
        "standby": 1,
        "rollout_id": 4,
        "previous_version": 14,
    },
    {"srm": {"p_value": 0.00012, "mismatch": True}, "units": {"champion": 900, "challenger": 310}},
]
PUNCTUATION_FIRST = re.compile(r"[^\w\s-]|_")  # a line may start with a minus sign: a negative number


@pytest.fixture
def history_ws(workspace: Workspace) -> Iterator[Workspace]:
    workspace.create_model("eta", task="regression", target="y", features="all")
    with workspace.writing() as conn:
        model_id = registry.get_model(conn, "eta").id
        for data in EVENTS:
            record_event(
                conn,
                time=datetime(2026, 3, 1, tzinfo=UTC),
                model_id=model_id,
                kind="rollout_transition",
                actor="controller",
                from_state="ramp 50%",
                to_state="ramp 100%",
                rule="ramp.step",
                reason="50% held for 6.0h within every guardrail: next step 100%",
                data=data,
            )
    yield workspace


def numbers_column(table: str) -> list[str]:
    """Each line of the history table's last column (the reason, the numbers under it), as printed."""
    return [line.split("│")[-2].strip() for line in table.splitlines() if line.count("│") == 4]


@pytest.mark.parametrize("width", [60, 72, 88, 100, 120, 160])
def test_history_numbers_wrap_without_a_lone_comma_at_any_width(
    cli,  # type: ignore[no-untyped-def]
    history_ws: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    width: int,
) -> None:
    monkeypatch.setattr(pitstop.cli.rollout, "console", Console(width=width, highlight=False))
    lines = numbers_column(cli("rollout", "history", "eta", "-w", history_ws.path).stdout)
    assert [line for line in lines if line and PUNCTUATION_FIRST.match(line)] == []
    printed = "".join(lines).replace(" ", "")
    for data in EVENTS:  # each number whole (the order of unranked ones is the store's: JSONB sorts keys)
        for number in key_numbers(data).split(", "):
            assert number.replace(" ", "") in printed


ITEMS = [
    "version=2",
    "champion_version=1",
    "test_set.rows=3604",
    "metrics.challenger.mae=0.197",
    "min_labeled_per_arm=150",
    "units=310/900",
    "srm p=0.00012",
    "ratio=-0.5",
]


@pytest.mark.parametrize("width", range(2, 60))
def test_wrapped_numbers_fit_keep_their_order_and_start_with_a_letter_or_digit(width: int) -> None:
    lines = wrap(ITEMS, width)
    assert all(len(line) <= width for line in lines)
    assert [line for line in lines if PUNCTUATION_FIRST.match(line)] == []
    assert "".join(lines).replace(" ", "") == ", ".join(ITEMS).replace(" ", "")


def test_a_number_that_fits_is_never_split_and_one_that_does_not_breaks_in_its_name() -> None:
    assert wrap(["version=2", "champion_version=1", "units=310/900"], 19) == [
        "version=2,",
        "champion_version=1,",
        "units=310/900",
    ]
    assert wrap(["metrics.challenger.mae=0.197", "step=0"], 20) == [
        "metrics.challenger.",
        "mae=0.197, step=0",
    ]


def test_a_wide_table_keeps_the_numbers_on_one_line() -> None:
    assert wrap(ITEMS[:3], 80) == ["version=2, champion_version=1, test_set.rows=3604"]


def test_the_replay_table_wraps_its_numbers_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(pitstop.cli.simulate, "console", Console(width=70, highlight=False, file=out))
    step = {
        "time": "2026-03-01T00:00:00+00:00",
        "from": "ab_test",
        "to": "ramp",
        "rule": "ab.win",
        "reason": "",
    }
    pitstop.cli.simulate._render(
        {
            "model": "eta",
            "challenger": 2,
            "champion": 1,
            "timeline": [step | {"numbers": data} for data in EVENTS],
            "outcome": "promoted",
            "stage": "ramp",
            "reason": "won",
            "requests": 10,
            "served": {"challenger": 5},
            "failed_requests": 0,
            "labels": 10,
            "simulated_hours": 1.0,
            "wall_seconds": 1.0,
            "requests_per_second": 10.0,
            "peak_rss_bytes": 2**27,
            "way": "batched",
            "champion_calls_timed": 0,
            "latency_rules_from": None,
        }
    )
    lines = [line.split("│")[-2].strip() for line in out.getvalue().splitlines() if line.count("│") == 4]
    assert lines and [line for line in lines if line and PUNCTUATION_FIRST.match(line)] == []
