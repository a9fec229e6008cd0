"""A look runs only the queries its phase's rules read (`rollout.reads`), and decides exactly as it
would with every query run: the real `decide` on both, on seeded traffic through the real gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from pitstop import registry
from pitstop.config import Policy
from pitstop.rollout.controller import evidence_window, read_evidence
from pitstop.rollout.decide import decide
from pitstop.rollout.gather import gather_evidence
from pitstop.rollout.phases import Phase
from pitstop.rollout.reads import EVERYTHING, Reads, phase_reads
from pitstop.rollout.records import StoredRollout
from pitstop.workspace import Workspace
from rollout.conftest import SHORT_POLICY, send_traffic

# The paired-requests query, and only it, takes each arm's error apart by a CASE on the arm.
PAIRED_SQL = re.compile(r"max\(CASE WHEN \(\w+\.arm = ")
OTHER_TESTS = SHORT_POLICY + "health: {min_label_coverage: 0}\n"
OTHER_TESTS = OTHER_TESTS.replace("shadow: {", "shadow: {test: wilcoxon, ").replace(
    "ab_test: {", "ab_test: {method: mann_whitney, stopping: fixed, "
)


def _to(ws: Workspace, phase: Phase, step: int | None) -> StoredRollout:
    """A rollout of v2 taken by hand to `phase` (and ramp `step`), then two hours of seeded traffic
    with labels, no controller."""
    stored = ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(ws, 0.5, 150, decide=False, seed=1)  # pairs, so the A/B test gets a plan
    while (stored.state.phase, stored.state.step) != (phase, step):
        stored = ws.promote("eta", reason="to the phase under test")
    send_traffic(ws, 2, 500, decide=False, seed=2)
    return ws.rollouts("eta")[-1]


@contextmanager
def _statements(ws: Workspace) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, ...)

    event.listen(ws.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(ws.engine, "before_cursor_execute", record)


@pytest.mark.parametrize(
    ("phase", "step", "policy_yaml"),
    [
        (Phase.SHADOW, None, SHORT_POLICY),
        (Phase.SHADOW, None, OTHER_TESTS),
        (Phase.AB_TEST, None, SHORT_POLICY),
        (Phase.AB_TEST, None, OTHER_TESTS),
        (Phase.RAMP, 0, SHORT_POLICY),
        (Phase.RAMP, 1, SHORT_POLICY),  # 100 %: the old champion runs in shadow, so pairs exist
    ],
    ids=["shadow", "shadow-wilcoxon", "ab", "ab-mann-whitney", "ramp-75", "ramp-100"],
)
def test_a_look_decides_the_same_without_the_queries_its_phase_does_not_read(
    rollout_ws: Workspace, phase: Phase, step: int | None
) -> None:
    stored = _to(rollout_ws, phase, step)
    now = rollout_ws.clock.now()
    with _statements(rollout_ws) as statements:
        looked = read_evidence(rollout_ws, stored, now)  # the controller's look: the phase's reads
    with rollout_ws.reading() as conn:
        window = evidence_window(stored, registry.get_model(conn, "eta"), now)
        full = gather_evidence(conn, window, EVERYTHING)
    decision = decide(stored.state, stored.policy, looked, now)
    assert decision == decide(stored.state, stored.policy, full, now)
    ran_paired = any(PAIRED_SQL.search(statement) for statement in statements)
    assert ran_paired == (phase is Phase.SHADOW)
    if step == 1:  # the skipped query would have found pairs: skipping it is what changed
        assert full.paired.n > 0 and looked.paired.n == 0


def test_each_phase_reads_what_its_rules_read() -> None:
    default = Policy()
    assert phase_reads(Phase.SHADOW, default) == Reads(paired=True, user_curve=True, label_coverage=True)
    assert phase_reads(Phase.AB_TEST, default) == Reads(both_arms=True, label_coverage=True)
    assert phase_reads(Phase.RAMP, default) == Reads(both_arms=True, label_coverage=True)
    assert phase_reads(Phase.DONE, default) == Reads()
    other = Policy.model_validate(
        {
            "shadow": {"test": "wilcoxon"},
            "ab_test": {"method": "mann_whitney", "stopping": "fixed"},
            "health": {"min_label_coverage": 0},
        }
    )
    assert phase_reads(Phase.SHADOW, other) == Reads(paired=True, differences=True)
    assert phase_reads(Phase.AB_TEST, other) == Reads(user_means=True, both_arms=True)
