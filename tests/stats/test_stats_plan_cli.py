"""`pitstop plan`: classic counts as power calculators give them, the A/B rule's own, and the paired plan."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from pitstop.cli import plan
from pitstop.errors import UsageError
from pitstop.stats import sample_size, sample_size_margin, sample_size_paired

BASE = ["plan", "--baseline-mean", "10", "--baseline-std", "20"]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(rich_markup_mode=None)

    @app.callback()
    def root() -> None:
        """A stand-in for the pitstop app."""

    plan.register(app)
    return app


def run(app: typer.Typer, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, [*BASE, *args], env={"COLUMNS": "160"})
    return result.exit_code, result.output, result.exception


def test_json_gives_the_classic_two_sample_t_test_counts(app: typer.Typer) -> None:
    code, output, _ = run(app, "--mde", "0.02", "--share", "0.2", "--power", "0.9", "--json")
    data = json.loads(output)
    expected = sample_size(10.0, 20.0, 0.02, power=0.9, share=0.2)
    assert code == 0
    assert {key: data[key] for key in ("n_champion", "n_challenger", "n_total", "alpha", "power", "mde")} == {
        "n_champion": expected.n_champion,
        "n_challenger": expected.n_challenger,
        "n_total": expected.n_total,
        "alpha": 0.05,
        "power": 0.9,
        "mde": 0.02,
    }


def test_json_reports_the_ab_rule_requirement(app: typer.Typer) -> None:
    data = json.loads(run(app, "--mde", "0.03", "--json")[1])
    rule = sample_size_margin(10.0, 20.0, 0.03, margin=0.01)
    assert data["ab_rule"] == {
        "margin": 0.01,
        "reachable": True,
        "n_champion": rule.n_champion,
        "n_challenger": rule.n_challenger,
        "n_total": rule.n_total,
    }
    assert "paired" not in data


def test_human_output_shows_both_requirements(app: typer.Typer) -> None:
    code, output, _ = run(app, "--mde", "0.03")
    classic, rule = sample_size(10.0, 20.0, 0.03), sample_size_margin(10.0, 20.0, 0.03)
    assert code == 0
    assert "two-sided two-sample t-test" in output and f"{classic.n_total:,}" in output
    assert "A/B rule: lower by more than 1.00%" in output and f"{rule.n_total:,}" in output


def test_an_effect_at_the_margin_says_the_rule_cannot_reach_it(app: typer.Typer) -> None:
    code, output, _ = run(app, "--mde", "0.01")
    assert code == 0
    assert "cannot beat the 1.00% margin" in output
    assert f"{sample_size_margin(10.0, 20.0, 0.02).n_total:,}" in output
    data = json.loads(run(app, "--mde", "0.01", "--json")[1])
    assert data["ab_rule"]["reachable"] is False


def test_without_a_margin_the_rule_row_appears_only_when_it_differs(app: typer.Typer) -> None:
    _, output, _ = run(app, "--mde", "0.03", "--margin", "0")
    assert "A/B rule" in output  # one-sided: fewer units than the two-sided classic test


def test_a_correlation_adds_the_paired_shadow_requirement(app: typer.Typer) -> None:
    paired = sample_size_paired(10.0, 20.0, 0.02, correlation=0.9)
    _, output, _ = run(app, "--mde", "0.02", "--correlation", "0.9")
    assert "paired t-test" in output and f"{paired.n_total:,}" in output
    data = json.loads(run(app, "--mde", "0.02", "--correlation", "0.9", "--json")[1])
    assert data["paired"] == {"n_pairs": paired.n_total, "correlation": 0.9}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mde", "0"], "--mde must be strictly between 0 and 1"),
        (["--mde", "-0.1"], "--mde must be strictly between 0 and 1"),
        (["--mde", "0.01", "--share", "1"], "--share must be strictly between 0 and 1"),
        (["--mde", "0.01", "--alpha", "0"], "--alpha must be strictly between 0 and 1"),
        (["--mde", "0.01", "--power", "1.2"], "--power must be strictly between 0 and 1"),
        (["--mde", "0.01", "--margin", "-0.5"], "--margin must be at least 0"),
        (["--mde", "0.01", "--correlation", "1"], "--correlation must be strictly between -1 and 1"),
    ],
)
def test_invalid_input_is_a_usage_error(app: typer.Typer, args: list[str], message: str) -> None:
    _, _, error = run(app, *args)
    assert isinstance(error, UsageError)
    assert str(error).startswith(message)


def test_a_non_positive_std_is_a_usage_error(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["plan", "--baseline-mean", "10", "--baseline-std", "0", "--mde", "0.01"]
    )
    assert isinstance(result.exception, UsageError)
    assert str(result.exception) == "--baseline-std must be positive, got 0.0"


def test_every_option_has_help(app: typer.Typer) -> None:
    output = CliRunner().invoke(app, ["plan", "--help"], env={"COLUMNS": "160"}).output
    for option in ("--baseline-mean", "--baseline-std", "--mde", "--alpha", "--power", "--share", "--margin",
                   "--correlation", "--json"):  # fmt: skip
        assert option in output
