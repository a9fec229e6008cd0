"""The serving core without HTTP: routing, logging, shadow isolation, atomic switches, labels.

Shadow models run on a thread here (`shadow_process: false`): these tests check what the shadow
scorer records, and an idle-priority child beside a busy test run may be starved past its limit and
rightly skipped (`starved`). The child process itself is tested in test_serving_isolation.py.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from pitstop.clock import ManualClock
from pitstop.config import ServingSettings
from pitstop.errors import StoreUnavailableError
from pitstop.rollout.routes import route
from pitstop.routing.store import routing_history
from pitstop.routing.table import RoutingTable
from pitstop.serving import Gateway, Instance, Label
from pitstop.serving.errors import (
    InvalidInputError,
    ModelNotServedError,
    ModelProcessError,
    PredictionFailedError,
)
from pitstop.serving.labels import get_labels
from pitstop.serving.runner import Runner, make_runner
from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served

T = TypeVar("T")
START = datetime(2026, 3, 1, tzinfo=UTC)
ROW = {"a": 0.5, "b": -1.0}


def settings(**changes: Any) -> ServingSettings:
    base = {
        "shadow_timeout": "300ms",
        "log_flush_interval": "50ms",
        "batch_max_wait": "1ms",
        "shadow_process": False,
    }
    return ServingSettings.model_validate({**base, **changes})


def shadow_batches(metrics: str, version: int) -> tuple[int, int]:
    """Predict calls and rows of a version that only shadows, from `/metrics` (its calls run in a child)."""
    pattern = rf'pitstop_batch_rows_(count|sum)\{{model="{MODEL}",version="{version}"\}} ([0-9.]+)'
    found = dict(re.findall(pattern, metrics))
    return int(float(found["count"])), int(float(found["sum"]))


def run(served: Served, body: Callable[[Gateway], Awaitable[T]], **options: Any) -> T:
    """Start a gateway on `served`, run `body` with it, drain and stop it."""
    return run_with_metrics(served, body, **options)[0]


def run_with_metrics(
    served: Served, body: Callable[[Gateway], Awaitable[T]], **options: Any
) -> tuple[T, str]:
    """Like `run`; also returns the metrics text after the drain."""
    options.setdefault("settings", settings())
    options.setdefault("clock", ManualClock(START))
    options.setdefault("poll", False)

    async def main() -> tuple[T, str]:
        gateway = Gateway(served.ws, **options)
        await gateway.start()
        try:
            result = await body(gateway)
            await gateway.drain()
            return result, gateway.metrics.render().decode()
        finally:
            await gateway.stop()

    return asyncio.run(main())


def records(served: Served, **where: Any) -> list[Any]:
    query = sa.select(predictions).order_by(predictions.c.id)
    for key, value in where.items():
        query = query.where(predictions.c[key] == value)
    with served.ws.reading() as conn:
        return list(conn.execute(query))


def test_serves_the_champion_and_logs_with_the_clocks_time(served: Served) -> None:
    async def body(gateway: Gateway) -> Any:
        return await gateway.predict(MODEL, [Instance(ROW, user_id="u1", request_id="r1")])

    (result,) = run(served, body)
    assert result.to_dict() == {
        "request_id": "r1",
        "model": MODEL,
        "model_version": 1,
        "prediction": pytest.approx(served.expected([ROW])[0]),
    }
    (record,) = records(served)
    assert (record.request_id, record.user_id, record.version, record.arm, record.role) == (
        "r1",
        "u1",
        1,
        "champion",
        "served",
    )
    assert (record.routing_version, record.bucketed_by, record.error) == (0, "user", None)
    assert record.time == START.timestamp()
    assert record.prediction == pytest.approx(result.prediction)
    assert record.latency_ms > 0


def test_a_request_id_is_generated_and_batches_keep_their_order(served: Served) -> None:
    rows = [{"a": float(i), "b": 1.0} for i in range(5)]

    async def body(gateway: Gateway) -> Any:
        return await gateway.predict(MODEL, [Instance(r) for r in rows])

    results = run(served, body)
    assert [r.prediction for r in results] == pytest.approx(served.expected(rows))
    assert len({r.request_id for r in results}) == 5
    assert all(r.bucketed_by == "request" for r in results)


def test_split_serves_sticky_users_and_records_arm_and_routing_version(served: Served) -> None:
    table = route(served.ws, MODEL, mode="split", challenger=2, share=0.5, reason="test")
    users = [f"user-{i}" for i in range(40)]

    async def body(gateway: Gateway) -> Any:
        first = [await gateway.predict(MODEL, [Instance(ROW, user_id=u)]) for u in users]
        again = [await gateway.predict(MODEL, [Instance(ROW, user_id=u)]) for u in users]
        return first, again

    first, again = run(served, body)
    arms = [r[0].arm for r in first]
    assert arms == [r[0].arm for r in again]
    assert {"champion", "challenger"} == set(arms)
    for (result,), user in zip(first, users, strict=True):
        assert result.arm == table.route(user, "x").arm
        assert result.model_version == (2 if result.arm == "challenger" else 1)
        assert result.routing_version == table.version
    assert {(r.routing_version, r.role) for r in records(served)} == {(table.version, "served")}


def test_shadow_scores_the_challenger_after_the_answer_and_logs_it(served: Served) -> None:
    table = route(served.ws, MODEL, mode="shadow", challenger=2, reason="test")

    async def body(gateway: Gateway) -> Any:
        return [await gateway.predict(MODEL, [Instance(ROW, request_id=f"r{i}")]) for i in range(10)]

    results = run(served, body, settings=settings(shadow_concurrency=100, shadow_timeout="30s"))
    assert {r[0].model_version for r in results} == {1}
    shadow = records(served, role="shadow")
    assert sorted(r.request_id for r in shadow) == sorted(f"r{i}" for i in range(10))
    assert {(r.version, r.arm, r.routing_version, r.error) for r in shadow} == {
        (2, "challenger", table.version, None)
    }


def test_shadow_predictions_are_counted_once_each_by_what_they_were_bucketed_by(served: Served) -> None:
    route(served.ws, MODEL, mode="shadow", challenger=2, reason="test")

    async def body(gateway: Gateway) -> None:
        users = [Instance(ROW, user_id=f"u{i}") for i in range(5)]
        await asyncio.gather(
            gateway.predict(MODEL, users + [Instance(ROW)] * 3),
            *(gateway.predict(MODEL, [Instance(ROW)]) for _ in range(4)),
        )

    _, metrics = run_with_metrics(
        served, body, settings=settings(shadow_concurrency=100, shadow_timeout="30s")
    )
    labels = 'model="eta",role="shadow",version="2"'
    assert f'pitstop_predictions_total{{arm="challenger",bucketed_by="user",{labels}}} 5.0' in metrics
    assert f'pitstop_predictions_total{{arm="challenger",bucketed_by="request",{labels}}} 7.0' in metrics
    assert f'pitstop_prediction_latency_seconds_count{{arm="challenger",{labels}}} 12.0' in metrics
    assert f'pitstop_prediction_errors_total{{arm="challenger",{labels}}} 0.0' in metrics


def test_shadow_sample_scores_only_a_share_of_requests(served: Served) -> None:
    route(served.ws, MODEL, mode="shadow", challenger=2, reason="test")

    async def body(gateway: Gateway) -> None:
        await gateway.predict(MODEL, [Instance(ROW) for _ in range(400)])

    run(served, body, settings=settings(shadow_sample=0.25))
    assert 60 < len(records(served, role="shadow")) < 140


def _served_latencies(
    served: Served, challenger: int | None, n: int = 40
) -> tuple[list[float], list[float], Any]:
    """Serve n sequential requests (shadowing `challenger` if given); answers, seconds each, metrics text."""
    if challenger is not None:
        route(served.ws, MODEL, mode="shadow", challenger=challenger, reason="isolation test")
    rows = [{"a": i / 10, "b": 1.0} for i in range(n)]

    async def body(gateway: Gateway) -> Any:
        answers, seconds = [], []
        for row in rows:
            started = perf_counter()
            (result,) = await gateway.predict(MODEL, [Instance(row)])
            seconds.append(perf_counter() - started)
            answers.append(result.prediction)
        return answers, seconds

    (answers, seconds), metrics = run_with_metrics(served, body)
    return answers, seconds, metrics


@pytest.mark.parametrize(
    ("kind", "options"), [("SlowModel", {"delay": 2.0}), ("RaisingModel", {}), ("NaNModel", {})]
)
def test_a_bad_shadow_changes_neither_answers_nor_latency(
    served: Served, kind: str, options: dict[str, Any]
) -> None:
    baseline, base_seconds, _ = _served_latencies(served, None)
    bad = served.fake(kind, **options)
    answers, seconds, metrics = _served_latencies(served, bad)
    assert answers == baseline
    assert statistics.median(seconds) < 2 * statistics.median(base_seconds) + 0.005
    shadow = records(served, role="shadow")
    assert shadow and all(r.prediction is None and r.error for r in shadow)
    assert not [r for r in records(served, role="served") if r.error]
    counter = "pitstop_shadow_timeouts_total" if kind == "SlowModel" else "pitstop_shadow_errors_total"
    assert f'{counter}{{model="eta",version="{bad}"}}' in metrics


def test_saturated_shadow_calls_are_skipped_and_counted(served: Served) -> None:
    slow = served.fake("SlowModel", delay=0.5)
    route(served.ws, MODEL, mode="shadow", challenger=slow, reason="test")

    async def body(gateway: Gateway) -> None:
        for _ in range(5):
            await gateway.predict(MODEL, [Instance(ROW)])
            await asyncio.sleep(0.03)  # longer than the shadow's batch wait (20 ms): a call each

    _, metrics = run_with_metrics(served, body, settings=settings(shadow_concurrency=1, shadow_timeout="2s"))
    assert f'pitstop_shadow_skipped_total{{model="eta",reason="saturated",version="{slow}"}} 4.0' in metrics
    assert len(records(served, role="shadow")) == 1


def test_shadow_requests_arriving_within_the_batch_wait_are_scored_in_one_call(served: Served) -> None:
    recording = served.fake("RecordingModel")
    route(served.ws, MODEL, mode="shadow", challenger=recording, reason="test")

    async def body(gateway: Gateway) -> Any:
        for i in range(6):  # one after the other, each answered before the next is sent
            await gateway.predict(MODEL, [Instance({"a": float(i), "b": 1.0}, request_id=f"r{i}")])
        await gateway.drain()

    _, metrics = run_with_metrics(served, body, shadow_batch_wait=0.06)  # the timeout is 300 ms
    assert shadow_batches(metrics, recording) == (2, 7)  # the warm-up's one row, then one call of six
    assert len(records(served, role="shadow")) == 6
    assert "pitstop_shadow_skipped_total{" not in metrics


def test_shadow_requests_answered_together_are_scored_in_one_call(served: Served) -> None:
    recording = served.fake("RecordingModel")
    route(served.ws, MODEL, mode="shadow", challenger=recording, reason="test")
    rows = [{"a": float(i), "b": 1.0} for i in range(10)]

    async def body(gateway: Gateway) -> Any:
        await asyncio.gather(
            *(gateway.predict(MODEL, [Instance(r, request_id=f"r{i}")]) for i, r in enumerate(rows))
        )

    # one call in flight at most: were each request its own call, nine would be skipped
    options = settings(shadow_concurrency=1, batch_max_wait="20ms")
    _, metrics = run_with_metrics(served, body, settings=options)
    assert shadow_batches(metrics, recording) == (2, 11)  # the warm-up's one row, then one call of ten
    shadow = records(served, role="shadow")
    assert sorted(r.request_id for r in shadow) == sorted(f"r{i}" for i in range(10))
    assert [r.prediction for r in sorted(shadow, key=lambda r: int(r.request_id[1:]))] == pytest.approx(
        served.expected(rows)
    )
    assert "pitstop_shadow_skipped_total{" not in metrics


def test_one_poisonous_request_does_not_fail_its_neighbours_shadow_predictions(served: Served) -> None:
    poison = served.fake("PoisonModel")
    route(served.ws, MODEL, mode="shadow", challenger=poison, reason="test")
    values = (1.0, 999.0, 2.0)

    async def body(gateway: Gateway) -> None:
        calls = [gateway.predict(MODEL, [Instance({"a": a, "b": 0.0}, request_id=f"a{a:g}")]) for a in values]
        await asyncio.gather(*calls)

    run(served, body, settings=settings(batch_max_wait="20ms"))
    shadow = {r.request_id: r for r in records(served, role="shadow")}
    assert set(shadow) == {"a1", "a999", "a2"}
    assert "poison" in shadow["a999"].error and shadow["a999"].prediction is None
    assert shadow["a1"].error is None and shadow["a2"].error is None
    assert shadow["a1"].prediction == pytest.approx(served.expected([{"a": 1.0, "b": 0.0}])[0])


def test_a_shadow_that_fails_every_call_is_only_probed(served: Served) -> None:
    broken = served.fake("RaisingModel")
    route(served.ws, MODEL, mode="shadow", challenger=broken, reason="test")

    async def body(gateway: Gateway) -> None:
        gateway.shadow.breaker_failures, gateway.shadow.probe_every = 5, 10
        for i in range(150):
            await gateway.predict(MODEL, [Instance(ROW, request_id=f"r{i}")])
            await asyncio.sleep(0.002 if i < 10 else 0)  # let the first failures land

    # no batch wait: a call per request, so the breaker counts calls in step with the requests
    _, metrics = run_with_metrics(
        served, body, settings=settings(shadow_concurrency=1000), shadow_batch_wait=0.0
    )
    shadow = records(served, role="shadow")
    skipped = re.search(r'pitstop_shadow_skipped_total\{[^}]*reason="circuit_open"[^}]*\} ([0-9.]+)', metrics)
    assert skipped is not None and float(skipped.group(1)) >= 100
    assert 5 <= len(shadow) <= 50 and all(r.error for r in shadow)  # the failures, then a probe per 10 calls
    assert len(records(served, role="served")) == 150


def test_concurrent_requests_are_micro_batched_into_few_predict_calls(served: Served) -> None:
    recording = served.fake("RecordingModel", delay=0.02)
    served.ws.set_champion(MODEL, recording, reason="test", force=True)
    rows = [{"a": float(i), "b": 0.0} for i in range(40)]

    async def body(gateway: Gateway) -> Any:
        results = await asyncio.gather(*(gateway.predict(MODEL, [Instance(r)]) for r in rows))
        return results, gateway.state(MODEL).runners[recording].predictor.model.calls  # type: ignore[attr-defined]

    results, calls = run(served, body, settings=settings(batch_max_size=16, batch_max_wait="5ms"))
    assert [r[0].prediction for r in results] == pytest.approx(served.expected(rows))
    sizes = [size for _, size in calls[1:]]  # calls[0] is the warm-up
    assert sum(sizes) == 40 and max(sizes) <= 16 and len(sizes) < 10


def test_routing_switches_under_load_fail_nothing_and_records_match_their_table(served: Served) -> None:
    changes = [
        ("split", 0.3),
        ("off", None),
        ("shadow", None),
        ("split", 0.7),
        ("shadow", None),
        ("off", None),
    ]
    failures: list[BaseException] = []

    async def body(gateway: Gateway) -> int:
        stop = asyncio.Event()
        served_count = 0

        async def client(k: int) -> None:
            nonlocal served_count
            i = 0
            while not stop.is_set():
                try:
                    await gateway.predict(MODEL, [Instance(ROW, user_id=f"u{k}-{i % 7}")])
                    served_count += 1
                except BaseException as error:  # anything at all is a failure here
                    failures.append(error)
                i += 1
                await asyncio.sleep(0)

        clients = [asyncio.create_task(client(k)) for k in range(8)]
        for mode, share in changes:
            await asyncio.to_thread(
                route,
                served.ws,
                MODEL,
                mode=mode,
                challenger=None if mode == "off" else 2,
                share=share,
                reason="load",
            )
            assert await gateway.refresh_routing() == [MODEL]
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.gather(*clients)
        return served_count

    count = run(served, body)
    assert failures == [] and count > 50
    with served.ws.reading() as conn:
        tables = {t.version: t for t in routing_history(conn, served.ws.model(MODEL).id)}
    tables[0] = RoutingTable.initial(MODEL, 1, START)
    seen = set()
    for record in records(served):
        table = tables[record.routing_version]
        seen.add(record.routing_version)
        if record.role == "served":
            expected = table.route(record.user_id, record.request_id)
            assert (record.arm, record.version) == (expected.arm, expected.version)
        else:
            assert record.version == table.shadow
    assert seen == set(tables)


def test_a_change_is_picked_up_by_the_poll_without_restart(served: Served) -> None:
    async def body(gateway: Gateway) -> tuple[int, int]:
        before = gateway.routing(MODEL).version
        table = await asyncio.to_thread(route, served.ws, MODEL, mode="shadow", challenger=2, reason="poll")
        for _ in range(500):
            if gateway.routing(MODEL).version == table.version:
                break
            await asyncio.sleep(0.01)
        return before, gateway.routing(MODEL).version

    assert run(served, body, poll=True, settings=settings(poll_interval="20ms")) == (0, 1)


def test_labels_are_upserted_and_may_precede_their_prediction(served: Served) -> None:
    clock = ManualClock(START)

    async def body(gateway: Gateway) -> int:
        n = await gateway.add_labels(
            MODEL, [Label("early", 1.0), Label("r1", 2.0, START - timedelta(hours=1))]
        )
        clock.advance(timedelta(minutes=5))
        n += await gateway.add_labels(MODEL, [Label("r1", 3.0), Label("r1", 4.0)])  # a correction, twice
        await gateway.predict(MODEL, [Instance(ROW, request_id="early")])
        return n

    assert run(served, body, clock=clock) == 4
    with served.ws.reading() as conn:
        labels = get_labels(conn, served.ws.model(MODEL).id)
    assert labels == {
        "early": (1.0, START.timestamp()),
        "r1": (4.0, (START + timedelta(minutes=5)).timestamp()),
    }


def test_unknown_model_and_invalid_features_are_refused_by_name(served: Served) -> None:
    async def body(gateway: Gateway) -> None:
        with pytest.raises(ModelNotServedError, match="'nope' is not served here \\(served: eta\\)"):
            await gateway.predict("nope", [Instance(ROW)])
        with pytest.raises(InvalidInputError) as caught:
            await gateway.predict(MODEL, [Instance({"a": "x", "c": 1})])
        fields = {p.field: p.problem for p in caught.value.problems}
        assert fields == {
            "features.a": "expected a number, got the string 'x'",
            "features.b": "missing",
            "features.c": "unknown feature (this model uses a, b)",
        }
        with pytest.raises(InvalidInputError) as caught:
            await gateway.predict(MODEL, [Instance(ROW), Instance({"a": True, "b": 1})])
        assert [p.field for p in caught.value.problems] == ["instances[1].features.a"]

    run(served, body)
    assert records(served) == []


def test_a_failing_champion_raises_with_the_request_id_and_is_counted(served: Served) -> None:
    served.ws.set_champion(MODEL, served.fake("RaisingModel"), reason="test", force=True)

    async def body(gateway: Gateway) -> None:
        for _ in range(2):
            with pytest.raises(PredictionFailedError) as caught:
                await gateway.predict(MODEL, [Instance(ROW, request_id="r-bad")])
            assert caught.value.request_ids == ["r-bad"]

    _, metrics = run_with_metrics(served, body)
    assert (
        'pitstop_prediction_errors_total{arm="champion",model="eta",role="served",version="3"} 2.0' in metrics
    )
    (first, _) = records(served)
    assert first.error == "RuntimeError: this model always fails" and first.prediction is None


def test_one_poisonous_request_does_not_fail_its_batch_neighbours(served: Served) -> None:
    served.ws.set_champion(MODEL, served.fake("PoisonModel"), reason="test", force=True)

    async def body(gateway: Gateway) -> list[Any]:
        calls = [gateway.predict(MODEL, [Instance({"a": a, "b": 0.0})]) for a in (1.0, 999.0, 2.0)]
        return await asyncio.gather(*calls, return_exceptions=True)

    good, bad, other = run(served, body, settings=settings(batch_max_wait="20ms"))
    assert isinstance(bad, PredictionFailedError)
    assert good[0].prediction == pytest.approx(served.expected([{"a": 1.0, "b": 0.0}])[0])
    assert other[0].prediction == pytest.approx(served.expected([{"a": 2.0, "b": 0.0}])[0])


def test_store_trouble_keeps_serving_stays_ready_reports_health_and_loses_nothing(served: Served) -> None:
    """A store outage with the champion loaded made every replica 503 at once (issue 16, row 4): a load
    balancer took the fleet out while the champion served fine. It is health, not readiness."""

    def rename(old: str, new: str) -> None:
        with served.ws.writing() as conn:
            conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))

    async def body(gateway: Gateway) -> tuple[list[str], dict[str, Any], list[str], dict[str, Any]]:
        await asyncio.to_thread(rename, "predictions", "predictions_away")
        await asyncio.to_thread(rename, "routing_tables", "routing_away")
        await asyncio.to_thread(rename, "labels", "labels_away")
        for i in range(5):
            await gateway.predict(MODEL, [Instance(ROW, request_id=f"r{i}")])
        await async_wait(lambda: not gateway.log.healthy)
        assert await gateway.refresh_routing() == []  # keeps the table it has
        with pytest.raises(StoreUnavailableError, match="labels"):
            await gateway.add_labels(MODEL, [Label("r0", 1.0)])  # labels are never acknowledged unstored
        broken, broken_health = gateway.readiness(), gateway.health().to_dict()
        await asyncio.to_thread(rename, "predictions_away", "predictions")
        await asyncio.to_thread(rename, "routing_away", "routing_tables")
        await asyncio.to_thread(rename, "labels_away", "labels")
        await gateway.refresh_routing()
        await gateway.drain()  # writes what was kept queued
        return broken, broken_health, gateway.readiness(), gateway.health().to_dict()

    broken, broken_health, healed, healed_health = run(served, body)
    assert broken == [] and healed == []
    assert broken_health["status"] == "degraded" and broken_health["ready"] is True
    assert broken_health["store"]["status"] == "unreachable" and broken_health["store"]["error"]
    assert broken_health["prediction_log"]["status"] == "failing"
    assert broken_health["models"][MODEL]["champion"] == {"version": 1, "status": "ok", "problem": None}
    assert healed_health["status"] == "ok"
    assert sorted(r.request_id for r in records(served)) == [f"r{i}" for i in range(5)]


async def async_wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_a_shadow_that_cannot_be_loaded_leaves_the_champion_serving_and_is_retried(served: Served) -> None:
    """Its artifact or its process may fail (a fork server that cannot start, say): users still get the
    champion, from the first request; shadow requests are skipped and counted until a refresh loads it."""
    route(served.ws, MODEL, mode="shadow", challenger=2, reason="test")
    failing = {"shadow": True}

    def factory(
        ws: Any, info: Any, version: Any, serving: ServingSettings, *, shadow: bool = False
    ) -> Runner:
        if shadow and failing["shadow"]:
            raise ModelProcessError(f"{info.name}-v{version.version}-shadow: the model's process exited")
        return make_runner(ws, info, version, serving, shadow=shadow)

    async def body(gateway: Gateway) -> tuple[Any, list[str], list[str], str]:
        (first,) = await gateway.predict(MODEL, [Instance(ROW, request_id="r1")])
        ready = gateway.readiness()
        refreshed = await gateway.refresh_routing()  # still failing: nothing changes
        failing["shadow"] = False
        refreshed += await gateway.refresh_routing()
        await gateway.predict(MODEL, [Instance(ROW, request_id="r2")])
        return first, ready, refreshed, gateway.metrics.render().decode()

    (first, ready, refreshed, metrics) = run(served, body, runner_factory=factory)
    assert first.prediction == served.expected([ROW])[0] and first.model_version == 1
    assert ready == []  # serving: a missing shadow is no reason to take this replica out
    assert refreshed == [MODEL]
    assert 'pitstop_shadow_skipped_total{model="eta",reason="unavailable",version="2"} 1.0' in metrics
    assert [r.request_id for r in records(served, role="shadow")] == ["r2"]


def test_a_challenger_that_cannot_load_keeps_the_gateway_ready_and_shows_in_health(served: Served) -> None:
    """A split whose challenger could not load made `/readyz` 503 on every replica (issue 16, row 4),
    though the old table's champion served every request."""

    def factory(
        ws: Any, info: Any, version: Any, serving: ServingSettings, *, shadow: bool = False
    ) -> Runner:
        if version.version == 2:
            raise ModelProcessError(f"{info.name}-v2: the model's process exited")
        return make_runner(ws, info, version, serving, shadow=shadow)

    async def body(gateway: Gateway) -> tuple[Any, list[str], dict[str, Any], str]:
        await asyncio.to_thread(route, served.ws, MODEL, mode="split", challenger=2, share=0.5, reason="t")
        assert await gateway.refresh_routing() == []  # not applied: the old table serves
        (answer,) = await gateway.predict(MODEL, [Instance(ROW, user_id="u1")])
        health = gateway.health().to_dict()
        return answer, gateway.readiness(), health, gateway.metrics.render().decode()

    answer, ready, health, metrics = run(served, body, runner_factory=factory)
    assert answer.model_version == 1
    assert ready == []
    assert health["status"] == "degraded" and health["ready"] is True
    assert "routing v1 not applied" in health["models"][MODEL]["problem"]
    assert health["models"][MODEL]["champion"]["status"] == "ok"
    assert 'pitstop_component_up{component="routing",model="eta"} 0.0' in metrics
    assert "pitstop_ready 1.0" in metrics


def test_a_champion_that_cannot_load_makes_the_gateway_not_ready(served: Served) -> None:
    def factory(
        ws: Any, info: Any, version: Any, serving: ServingSettings, *, shadow: bool = False
    ) -> Runner:
        raise ModelProcessError(f"{info.name}-v{version.version}: the model's process exited")

    async def body(gateway: Gateway) -> tuple[list[str], dict[str, Any]]:
        return gateway.readiness(), gateway.health().to_dict()

    ready, health = run(served, body, runner_factory=factory)
    assert len(ready) == 1 and ready[0].startswith(f"{MODEL}: routing v0 not applied")
    assert (
        health["status"] == "unavailable" and health["models"][MODEL]["champion"]["status"] == "unavailable"
    )
