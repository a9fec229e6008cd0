"""`pitstop plan` through the real entry point: classic counts as power calculators give them, the A/B
rule's own, and the paired plan; bad input is a one-line usage error with exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pitstop.stats import sample_size, sample_size_margin, sample_size_paired

Cli = Callable[..., Any]  # the `cli` fixture (tests/conftest.py): runs pitstop.cli.main in process
BASE = ("plan", "--baseline-mean", "10", "--baseline-std", "20")


def test_json_gives_the_classic_two_sample_t_test_counts(cli: Cli) -> None:
    result = cli(*BASE, "--mde", "0.02", "--share", "0.2", "--power", "0.9", "--json")
    data = json.loads(result.stdout)
    expected = sample_size(10.0, 20.0, 0.02, power=0.9, share=0.2)
    assert result.exit_code == 0
    assert {key: data[key] for key in ("n_champion", "n_challenger", "n_total", "alpha", "power", "mde")} == {
        "n_champion": expected.n_champion,
        "n_challenger": expected.n_challenger,
        "n_total": expected.n_total,
        "alpha": 0.05,
        "power": 0.9,
        "mde": 0.02,
    }


def test_json_counts_are_r_power_t_test_for_a_standardised_effect_of_one(cli: Cli) -> None:
    # R> power.t.test(delta = 1, sd = 1, power = 0.8): n = 16.71477 per group
    data = json.loads(
        cli("plan", "--baseline-mean", "2", "--baseline-std", "1", "--mde", "0.5", "--json").stdout
    )
    assert (data["n_champion"], data["n_challenger"], data["n_total"]) == (17, 17, 34)


def test_json_reports_the_ab_rule_requirement(cli: Cli) -> None:
    data = json.loads(cli(*BASE, "--mde", "0.03", "--json").stdout)
    rule = sample_size_margin(10.0, 20.0, 0.03, margin=0.01)
    assert data["ab_rule"] == {
        "margin": 0.01,
        "reachable": True,
        "n_champion": rule.n_champion,
        "n_challenger": rule.n_challenger,
        "n_total": rule.n_total,
    }
    assert "paired" not in data


def test_human_output_shows_both_requirements(cli: Cli) -> None:
    result = cli(*BASE, "--mde", "0.03")
    classic, rule = sample_size(10.0, 20.0, 0.03), sample_size_margin(10.0, 20.0, 0.03)
    assert result.exit_code == 0
    assert "two-sided two-sample t-test" in result.stdout and f"{classic.n_total:,}" in result.stdout
    assert "A/B rule: lower by more than 1.00%" in result.stdout and f"{rule.n_total:,}" in result.stdout


def test_an_effect_at_the_margin_says_the_rule_cannot_reach_it(cli: Cli) -> None:
    result = cli(*BASE, "--mde", "0.01")
    assert result.exit_code == 0
    assert "cannot beat the 1.00% margin" in result.stdout
    assert f"{sample_size_margin(10.0, 20.0, 0.02).n_total:,}" in result.stdout
    data = json.loads(cli(*BASE, "--mde", "0.01", "--json").stdout)
    assert data["ab_rule"]["reachable"] is False
    assert data["ab_rule"]["n_total_at_twice_margin"] == sample_size_margin(10.0, 20.0, 0.02).n_total


def test_without_a_margin_the_rule_row_appears_only_when_it_differs(cli: Cli) -> None:
    output = cli(*BASE, "--mde", "0.03", "--margin", "0").stdout
    assert "A/B rule" in output  # one-sided: fewer units than the two-sided classic test


def test_a_correlation_adds_the_paired_shadow_requirement(cli: Cli) -> None:
    paired = sample_size_paired(10.0, 20.0, 0.02, correlation=0.9)
    output = cli(*BASE, "--mde", "0.02", "--correlation", "0.9").stdout
    assert "paired t-test" in output and f"{paired.n_total:,}" in output
    data = json.loads(cli(*BASE, "--mde", "0.02", "--correlation", "0.9", "--json").stdout)
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
def test_invalid_input_is_a_one_line_usage_error_with_exit_2(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*BASE, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_non_positive_std_is_a_usage_error_naming_the_option(cli: Cli) -> None:
    result = cli("plan", "--baseline-mean", "10", "--baseline-std", "0", "--mde", "0.01")
    assert result.exit_code == 2
    assert result.stderr == "error: --baseline-std must be positive, got 0.0\n"


def test_a_missing_required_option_is_a_usage_error(cli: Cli) -> None:
    result = cli("plan", "--baseline-mean", "10", "--baseline-std", "20")
    assert result.exit_code == 2
    assert "--mde" in result.stderr


def test_every_option_has_help(cli: Cli) -> None:
    result = cli("plan", "--help")
    assert result.exit_code == 0
    for option in ("--baseline-mean", "--baseline-std", "--mde", "--alpha", "--power", "--share", "--margin",
                   "--correlation", "--json"):  # fmt: skip
        assert option in result.stdout
