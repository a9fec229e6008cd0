"""The ledger's queue of rows waiting for their time (a label, a maturity)."""

from __future__ import annotations

import numpy as np

from pitstop.rollout.ledger import _Waiting


def test_rows_leave_the_queue_when_their_time_comes_whatever_batch_they_came_in() -> None:
    waiting = _Waiting()
    waiting.add(np.array([5.0, 1.0, 9.0]), np.array([50, 10, 90]))
    waiting.add(np.array([2.0, 100.0]), np.array([20, 1000]))
    assert sorted(v for (values,) in waiting.due(4.0) for v in values.tolist()) == [10, 20]
    assert waiting.count_due(9.0) == 2  # 5.0 and 9.0
    assert list(waiting.due(50.0)) == []  # 100.0 still waits
    assert [values.tolist() for (values,) in waiting.due(100.0)] == [[1000]]
    assert waiting.count_due(1e9) == 0
