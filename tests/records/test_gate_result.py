"""The stored gate result reads every shape earlier versions stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pitstop.records.gate_result import GateResult, TestSetRef
from pitstop.rules import Rule

# Before review holds: no verdict, acceptance, probes, or a check's `review`.
BEFORE_REVIEW: dict[str, Any] = {
    "model": "eta",
    "version": 2,
    "champion_version": 1,
    "test_set": {"name": "test", "version": 1, "sha256": "ab" * 32, "rows": 100},
    "passed": False,
    "decided_by": "metric_ratio",
    "checks": [
        {
            "name": "schema",
            "passed": True,
            "observed": "all present",
            "threshold": "x",
            "detail": "ok",
            "skipped": False,
        },
        {
            "name": "metric_ratio",
            "passed": False,
            "observed": 1.4,
            "threshold": 1.1,
            "detail": "worse",
            "skipped": False,
        },
    ],
    "metrics": {"challenger": {"mae": 1.4}, "champion": {"mae": 1.0}},
    "evaluated_at": "2026-02-01T00:00:00+00:00",
}


def test_a_result_from_before_review_holds_reads_with_its_verdict() -> None:
    result = GateResult.from_json(BEFORE_REVIEW)
    assert result.verdict == "failed" and result.decided_by is Rule.METRIC_RATIO
    assert result.accepted is None and result.probes is None
    assert [check.name for check in result.failed_checks()] == [Rule.METRIC_RATIO]
    assert result.test_set == TestSetRef("test", 1, "ab" * 32, 100)
    assert result.evaluated_at == datetime(2026, 2, 1, tzinfo=UTC)


def test_a_result_is_stored_back_with_the_keys_it_had_and_the_defaults_it_lacked() -> None:
    stored = GateResult.from_json(BEFORE_REVIEW).to_json()
    checks = [{**check, "review": False} for check in BEFORE_REVIEW["checks"]]
    assert stored == {
        **BEFORE_REVIEW,
        "verdict": "failed",
        "accepted": None,
        "probes": None,
        "checks": checks,
    }
    assert GateResult.from_json(stored).to_json() == stored
