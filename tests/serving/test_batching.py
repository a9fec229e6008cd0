"""Micro-batching: concurrent calls become one bounded batch; results go back in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pitstop.serving.batching import MicroBatcher, RowIds
from pitstop.serving.errors import RunnerClosedError

Row = dict[str, Any]


class Doubler:
    """A batch function that doubles `x` and remembers each batch it was given."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[list[float]] = []
        self.ids: list[RowIds] = []
        self.fail_on = fail_on

    async def __call__(self, rows: list[Row], ids: RowIds) -> list[float]:
        values = [row["x"] for row in rows]
        self.batches.append(values)
        self.ids.append(ids)
        await asyncio.sleep(0.001)
        if self.fail_on in values:
            raise ValueError(f"cannot take {self.fail_on}")
        return [2 * v for v in values]


def rows(*values: float) -> list[Row]:
    return [{"x": v} for v in values]


def test_concurrent_calls_share_one_batch_and_get_their_own_results_in_order() -> None:
    doubler = Doubler()

    async def main() -> list[list[float]]:
        batcher = MicroBatcher(doubler, max_size=100, max_wait=0.05)
        calls = [batcher.submit(rows(i, i + 0.5)) for i in range(10)]
        results = await asyncio.gather(*calls)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results == [[2 * i, 2 * i + 1] for i in range(10)]
    assert len(doubler.batches) == 1


def test_each_batch_carries_its_rows_request_ids_and_so_does_each_retry() -> None:
    doubler = Doubler(fail_on=3.0)

    async def main() -> list[Any]:
        batcher = MicroBatcher(doubler, max_size=100, max_wait=0.05)
        calls = [
            batcher.submit(rows(1, 2), request_ids=["a", "b"]),
            batcher.submit(rows(3), request_ids=["c"]),
            batcher.submit(rows(4)),  # a warm-up call: rows without ids
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results[0] == [2, 4] and isinstance(results[1], ValueError) and results[2] == [8]
    assert doubler.ids == [["a", "b", "c", None], ["a", "b"], ["c"], [None]]
    with pytest.raises(ValueError, match="1 request_ids for 2 rows"):
        asyncio.run(_submit_mismatched())


async def _submit_mismatched() -> None:
    MicroBatcher(Doubler(), max_size=10, max_wait=0.01).submit(rows(1, 2), request_ids=["a"])


def test_batches_never_exceed_max_size_and_a_large_call_goes_alone() -> None:
    doubler = Doubler()

    async def main() -> list[float]:
        batcher = MicroBatcher(doubler, max_size=4, max_wait=0.01)
        small = [batcher.submit(rows(i)) for i in range(9)]
        large = batcher.submit(rows(*range(100, 106)))
        await asyncio.gather(*small)
        result = await large
        await batcher.close()
        return result

    assert asyncio.run(main()) == [2 * v for v in range(100, 106)]
    assert [len(b) for b in doubler.batches] == [4, 4, 1, 6]


def test_a_lone_call_does_not_wait_for_company_beyond_max_wait() -> None:
    doubler = Doubler()

    async def main() -> list[float]:
        batcher = MicroBatcher(doubler, max_size=1000, max_wait=0.001)
        result = await asyncio.wait_for(batcher.submit(rows(3)), timeout=10)
        await batcher.close()
        return result

    assert asyncio.run(main()) == [6]


def test_a_failing_batch_is_retried_call_by_call_so_only_the_bad_call_fails() -> None:
    doubler = Doubler(fail_on=13)

    async def main() -> list[Any]:
        batcher = MicroBatcher(doubler, max_size=100, max_wait=0.05)
        results = await asyncio.gather(*(batcher.submit(rows(v)) for v in (1, 13, 2)), return_exceptions=True)
        await batcher.close()
        return results

    first, bad, last = asyncio.run(main())
    assert (first, last) == ([2], [4])
    assert isinstance(bad, ValueError)


def test_abandoned_calls_are_skipped() -> None:
    doubler = Doubler()

    async def main() -> None:
        batcher = MicroBatcher(doubler, max_size=100, max_wait=0.05)
        dropped = batcher.submit(rows(1))
        kept = batcher.submit(rows(2))
        dropped.cancel()
        assert await kept == [4]
        await batcher.close()

    asyncio.run(main())
    assert doubler.batches == [[2]]


def test_close_finishes_queued_work_then_refuses_new_calls() -> None:
    doubler = Doubler()

    async def main() -> list[float]:
        batcher = MicroBatcher(doubler, max_size=100, max_wait=0.05)
        queued = batcher.submit(rows(5))
        await batcher.close()
        with pytest.raises(RunnerClosedError):
            batcher.submit(rows(6))
        return await queued

    assert asyncio.run(main()) == [10]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_size": 0}, "max_size"),
        ({"max_wait": -1.0}, "max_wait"),
        ({"concurrency": 0}, "concurrency"),
        ({"patient_max_size": 4}, "patient_max_size"),
    ],
)
def test_bad_settings_name_the_setting(options: dict[str, Any], message: str) -> None:
    settings = {"max_size": 8, "max_wait": 0.001, **options}
    with pytest.raises(ValueError, match=message):
        MicroBatcher(Doubler(), **settings)


def test_work_nobody_waits_for_rides_along_and_never_delays_a_due_call() -> None:
    doubler = Doubler()

    async def main() -> list[float]:
        batcher = MicroBatcher(doubler, max_size=4, max_wait=0.001)
        patient = [batcher.submit(rows(100 + i), max_wait=60.0) for i in range(3)]
        await asyncio.sleep(0.01)
        assert not any(call.done() for call in patient)  # waiting for company, up to a minute
        urgent = await asyncio.wait_for(batcher.submit(rows(1)), timeout=10)
        assert all(call.done() for call in patient)
        await batcher.close()
        return urgent

    assert asyncio.run(main()) == [2]
    assert doubler.batches == [[1, 100, 101, 102]]  # the due call first; patient ones fill the batch


def test_work_nobody_waits_for_fills_bigger_batches_until_someone_waits() -> None:
    """Patient rows (shadow calls) go in batches of up to `patient_max_size`; a batch that carries
    a due call stays within `max_size`, whatever is queued behind it."""
    doubler = Doubler()

    async def main() -> None:
        batcher = MicroBatcher(doubler, max_size=4, max_wait=0.001, patient_max_size=10)
        patient = [batcher.submit(rows(100 + i, 200 + i), max_wait=0.05) for i in range(8)]
        await asyncio.wait_for(asyncio.gather(*patient), timeout=10)
        more = [batcher.submit(rows(300 + i), max_wait=60.0) for i in range(6)]
        await asyncio.sleep(0.01)
        await asyncio.wait_for(batcher.submit(rows(1)), timeout=10)
        for call in more:
            call.cancel()
        await batcher.close()

    asyncio.run(main())
    assert [len(b) for b in doubler.batches[:2]] == [10, 6]  # 16 patient rows: 10, then the rest
    assert doubler.batches[2] == [1, 300, 301, 302]  # someone waits: max_size


def test_a_model_failing_every_request_is_not_retried_one_by_one_again() -> None:
    class Broken(Doubler):
        async def __call__(self, rows: list[Row], ids: RowIds) -> list[float]:
            self.batches.append([row["x"] for row in rows])
            raise RuntimeError("broken")

    broken = Broken()

    async def main() -> None:
        batcher = MicroBatcher(broken, max_size=100, max_wait=0.01)
        for _ in range(3):
            outcomes = await asyncio.gather(
                *(batcher.submit(rows(v)) for v in (1, 2, 3)), return_exceptions=True
            )
            assert all(isinstance(o, RuntimeError) for o in outcomes)
        await batcher.close()

    asyncio.run(main())
    assert [len(b) for b in broken.batches] == [3, 1, 1, 1, 3, 3]  # one round of retries, then none


def test_the_backlog_is_estimated_from_the_measured_speed() -> None:
    async def slow(rows_: list[Row], ids: RowIds) -> list[float]:
        await asyncio.sleep(0.02 * len(rows_))  # at least 20 ms per row
        return [0.0] * len(rows_)

    async def main() -> tuple[float, float]:
        batcher = MicroBatcher(slow, max_size=100, max_wait=0.001)
        before = batcher.backlog_seconds()
        await batcher.submit(rows(1))
        queued = [batcher.submit(rows(i), max_wait=60.0) for i in range(10)]
        backlog = batcher.backlog_seconds()
        for call in queued:
            call.cancel()
        await batcher.close()
        return before, backlog

    before, backlog = asyncio.run(main())
    assert before == 0.0  # nothing measured yet
    assert backlog >= 10 * 0.02


def test_a_model_whose_calls_cost_the_same_at_any_size_is_not_judged_by_its_one_row_call() -> None:
    """A fixed 50 ms per call: after a one-row warm-up and one 50-row batch, 50 queued rows are about
    one call away, not 50 one-row calls (which skipped a slow-but-batching shadow's first calls)."""

    async def fixed(rows_: list[Row], ids: RowIds) -> list[float]:
        await asyncio.sleep(0.05)
        return [0.0] * len(rows_)

    async def main() -> float:
        batcher = MicroBatcher(fixed, max_size=100, max_wait=0.001)
        await batcher.submit(rows(0))
        await asyncio.gather(*(batcher.submit(rows(i)) for i in range(50)))
        queued = [batcher.submit(rows(i), max_wait=60.0) for i in range(50)]
        backlog = batcher.backlog_seconds()
        for call in queued:
            call.cancel()
        await batcher.close()
        return backlog

    assert asyncio.run(main()) < 0.5
