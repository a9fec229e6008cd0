"""No record a client sends can stop the evidence: what the store refuses is set aside, never retried.

Poison values are pushed into a running gateway past the HTTP edge (which refuses them on its own),
on SQLite and PostgreSQL: the prediction log isolates each record the store refuses (dead letters,
counted), writes every other record, and reports healthy. A store that is down or locked is not a
poison: its records stay queued and are retried. Labels the store cannot hold are a 422 naming the
field, never a 503 a client would retry for ever.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import sqlalchemy as sa

from pitstop.clock import ManualClock
from pitstop.config import ServingSettings
from pitstop.errors import StoreUnavailableError
from pitstop.http.app import create_app
from pitstop.http.auth import Access
from pitstop.report.dashboard import gateway_health
from pitstop.serving import Gateway, Instance, Label
from pitstop.serving.deadletter import DeadLetter, DeadLetterFile, workspace_dead_letters
from pitstop.serving.errors import InvalidInputError
from pitstop.serving.labels import get_labels
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.predlog import PredictionLog, write_isolating
from pitstop.serving.refusal import refused_data
from pitstop.store.engine import make_engine
from pitstop.store.predictions.write import PredictionRecord
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace
from serving.conftest import MODEL, Served, async_wait_until, free_port, running

T = TypeVar("T")
START = datetime(2026, 3, 1, tzinfo=UTC)
ROW = {"a": 0.5, "b": -1.0}
SURROGATE, NUL, TOO_LONG = "\udfff-x", "nul\x00inside", "x" * 201  # the column holds 200


def settings(**changes: Any) -> ServingSettings:
    base = {"log_flush_interval": "20ms", "batch_max_wait": "1ms", "shadow_process": False}
    return ServingSettings.model_validate({**base, **changes})


def run(served: Served, body: Callable[[Gateway], Awaitable[T]]) -> tuple[T, GatewayMetrics]:
    """Start a gateway on `served`, run `body` with it, stop it; the result and the gateway's metrics."""

    async def main() -> tuple[T, GatewayMetrics]:
        gateway = Gateway(served.ws, settings=settings(), clock=ManualClock(START), poll=False)
        await gateway.start()
        try:
            return await body(gateway), gateway.metrics
        finally:
            await gateway.stop()

    return asyncio.run(main())


def stored(ws: Workspace) -> list[Any]:
    with ws.reading() as conn:
        return list(conn.execute(sa.select(predictions).order_by(predictions.c.id)))


def record(model_id: int, request_id: str, **changes: Any) -> PredictionRecord:
    base = PredictionRecord(
        model_id, request_id, None, START.timestamp(), 1, "champion", "served", 1, "request", 0.5, 1.0, None
    )
    return base._replace(**changes)


def dead_letter_total(metrics: GatewayMetrics) -> float:
    return sum(
        sample.value
        for family in metrics.registry.collect()
        if family.name == "pitstop_predlog_dead_letters"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


def test_every_poison_record_is_set_aside_and_every_record_after_it_is_written(served: Served) -> None:
    """One lone surrogate (any store), or one NUL (PostgreSQL), used to block the writer for good:
    it retried the head batch for ever, wrote none of the records behind it and stayed not ready."""
    postgres = served.ws.engine.dialect.name == "postgresql"

    async def body(gateway: Gateway) -> dict[str, Any]:
        model_id = gateway.state(MODEL).info.id
        for i in range(5):
            await gateway.predict(MODEL, [Instance(ROW, user_id=f"u{i}", request_id=f"before-{i}")])
        # Through predict where routing lets the value pass (a user_id is hashed, so not a surrogate one),
        # else straight into the log, as the gateway and its shadow scorer would append it.
        for i, request_id in enumerate((SURROGATE, NUL, TOO_LONG)):
            await gateway.predict(MODEL, [Instance(ROW, user_id=f"p{i}", request_id=request_id)])
        for i, user_id in enumerate((NUL, TOO_LONG)):
            await gateway.predict(MODEL, [Instance(ROW, user_id=user_id, request_id=f"poison-user-{i}")])
        gateway.log.append(record(model_id, "poison-surrogate-user", user_id=SURROGATE))
        gateway.log.append(record(model_id, "poison-unbindable-user", user_id={"not": "bindable"}))
        gateway.log.append(record(model_id, "poison-error", prediction=None, error=f"boom {NUL}"))
        for i in range(30):
            await gateway.predict(MODEL, [Instance(ROW, user_id=f"u{i}", request_id=f"after-{i}")])
        await async_wait_until(lambda: gateway.log.depth == 0)
        return gateway_health(gateway)

    health, metrics = run(served, body)
    assert health["ready"] and health["reasons"] == [] and health["log"]["last_error"] is None
    request_ids = [row.request_id for row in stored(served.ws)]
    good = [f"before-{i}" for i in range(5)] + [f"after-{i}" for i in range(30)]
    assert [rid for rid in request_ids if rid.startswith(("before-", "after-"))] == good
    refused = {SURROGATE, "poison-surrogate-user", "poison-unbindable-user"}  # by every store
    if postgres:  # NUL and values longer than their column too
        refused |= {NUL, TOO_LONG, "poison-user-0", "poison-user-1", "poison-error"}
    letters = workspace_dead_letters(served.ws.path).read()
    assert {letter["record"]["request_id"] for letter in letters} == refused
    assert not refused & set(request_ids)
    assert len(request_ids) + len(refused) == 5 + 3 + 2 + 3 + 30  # nothing lost, nothing twice
    assert dead_letter_total(metrics) == len(refused)
    assert health["counters"]["prediction records refused by the store (dead letters)"] == len(refused)
    assert metrics.registry.get_sample_value("pitstop_predlog_write_failures_total") == 0
    reasons = {letter["record"]["request_id"]: letter["reason"] for letter in letters}
    assert reasons[SURROGATE] == "UnicodeEncodeError"
    if postgres:
        assert reasons[NUL] == "DataError" and reasons[TOO_LONG] == "StringDataRightTruncation"


def test_a_dead_letter_keeps_any_value_exactly(tmp_path: Path) -> None:
    fields = {"request_id": SURROGATE, "user_id": NUL, "error": "é\n\x00", "prediction": None}
    file = DeadLetterFile(tmp_path / "dead" / "predictions.jsonl")
    file.save([DeadLetter.of(fields, UnicodeEncodeError("utf-8", SURROGATE, 0, 1, "surrogates not allowed"))])
    assert file.path.read_bytes().isascii()
    (letter,) = file.read()
    assert letter["record"] == fields and letter["reason"] == "UnicodeEncodeError"


def test_the_dead_letter_file_is_bounded_and_keeps_the_newest(tmp_path: Path) -> None:
    file = DeadLetterFile(tmp_path / "predictions.jsonl", max_bytes=2_000)
    one = len(DeadLetter({"request_id": "r000", "user_id": "u" * 5000}, "DataError", "x").line())
    for i in range(60):
        file.save([DeadLetter({"request_id": f"r{i:03d}", "user_id": "u" * 5000}, "DataError", "x")])
    assert file.path.stat().st_size <= 2_000 + one and file.rotated.stat().st_size <= 2_000 + one
    kept = [letter["record"]["request_id"] for letter in file.read()]
    assert kept == [f"r{i:03d}" for i in range(60 - len(kept), 60)]
    assert file.read()[-1]["record"]["user_id"].endswith("[3000 more characters]")


def test_the_writer_goes_on_when_the_dead_letter_file_cannot_be_written(
    workspace: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "in-the-way").write_text("a file where the folder should be")
    metrics = GatewayMetrics()

    async def main() -> PredictionLog:
        log = PredictionLog(
            workspace.engine,
            metrics,
            queue_size=100,
            batch_size=10,
            flush_interval=0.02,
            dead_letters=DeadLetterFile(tmp_path / "in-the-way" / "predictions.jsonl"),
        )
        log.start()
        for i in range(4):
            log.append(record(1, SURROGATE if i == 1 else f"r{i}"))
        await async_wait_until(lambda: log.depth == 0)
        await log.stop()
        return log

    log = asyncio.run(main())
    assert log.healthy and log.dead_lettered == 1 and "UnicodeEncodeError" in (log.last_dead_letter or "")
    assert [row.request_id for row in stored(workspace)] == ["r0", "r2", "r3"]
    assert metrics.registry.get_sample_value("pitstop_predlog_dead_letters_unsaved_total") == 1


def short_waiting_engine(ws: Workspace) -> sa.Engine:
    """An engine on the workspace's store that gives up on a held lock after 50 ms, not 30 s."""
    url = ws.engine.url
    if url.get_backend_name() == "sqlite":
        return sa.create_engine(url, connect_args={"timeout": 0.05})
    options = f"{url.query.get('options', '')} -c lock_timeout=50".strip()
    return sa.create_engine(url.update_query_dict({"options": options}))


@pytest.fixture
def locked_store(workspace: Workspace) -> Iterator[threading.Event]:
    """The predictions table locked against writes until the yielded event is set."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with workspace.writing() as conn:  # SQLite: BEGIN IMMEDIATE takes the write lock
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    try:
        assert locked.wait(timeout=20)
        yield release
    finally:
        release.set()
        holder.join(timeout=30)


def test_a_locked_store_keeps_every_record_queued_and_retries_none_is_dead_lettered(
    workspace: Workspace, locked_store: threading.Event, tmp_path: Path
) -> None:
    metrics = GatewayMetrics()
    engine = short_waiting_engine(workspace)
    dead_letters = DeadLetterFile(tmp_path / "dead" / "predictions.jsonl")

    async def main() -> tuple[int, bool, str | None]:
        log = PredictionLog(
            engine, metrics, queue_size=100, batch_size=10, flush_interval=0.02, dead_letters=dead_letters
        )
        log.start()
        for i in range(6):
            log.append(record(1, f"r{i}"))
        failures = "pitstop_predlog_write_failures_total"
        await async_wait_until(lambda: (metrics.registry.get_sample_value(failures) or 0) >= 2, timeout=20)
        during = (log.depth, log.healthy, log.last_error)
        locked_store.set()
        await async_wait_until(lambda: log.depth == 0, timeout=20)
        assert log.healthy
        await log.stop()
        return during

    try:
        depth, healthy, error = asyncio.run(main())
    finally:
        engine.dispose()
    assert depth == 6 and not healthy and error is not None
    assert not dead_letters.path.exists() and dead_letter_total(metrics) == 0
    assert [row.request_id for row in stored(workspace)] == [f"r{i}" for i in range(6)]


def test_a_store_that_refuses_connections_keeps_records_queued_not_dead_lettered(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere")
    metrics = GatewayMetrics()
    dead_letters = DeadLetterFile(tmp_path / "dead" / "predictions.jsonl")

    async def main() -> tuple[int, str | None]:
        log = PredictionLog(
            engine, metrics, queue_size=100, batch_size=10, flush_interval=0.02, dead_letters=dead_letters
        )
        log.start()
        for i in range(3):
            log.append(record(1, f"r{i}"))
        failures = "pitstop_predlog_write_failures_total"
        await async_wait_until(lambda: (metrics.registry.get_sample_value(failures) or 0) >= 2, timeout=20)
        with pytest.raises(StoreUnavailableError):
            await log.flush()
        during = log.depth, log.last_error
        await log.stop(timeout=0)
        return during

    try:
        depth, error = asyncio.run(main())
    finally:
        engine.dispose()
    assert depth == 3 and error is not None and "refused" in error.lower()
    assert not dead_letters.path.exists() and dead_letter_total(metrics) == 0
    assert metrics.registry.get_sample_value("pitstop_predlog_dropped_total", {"reason": "shutdown"}) == 3


def sqlite_error(statement: str, *values: Any) -> sqlite3.Error:
    """The error SQLite's own driver raises for `statement` on a fresh in-memory database."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (x TEXT NOT NULL)")
        conn.execute(statement, values)
    except sqlite3.Error as error:
        return error
    finally:
        conn.close()
    raise AssertionError(f"{statement} did not fail")


def test_the_stores_own_trouble_is_never_taken_for_a_refusal_of_the_data() -> None:
    trouble = [
        sqlite_error("INSERT INTO missing VALUES (1)"),  # a table renamed away: retried until it is back
        sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
        ConnectionRefusedError(111, "Connection refused"),
        StoreUnavailableError("store write failed"),
    ]
    refused = [
        sqlite_error("INSERT INTO t VALUES (?)", {"not": "bindable"}),
        UnicodeEncodeError("utf-8", SURROGATE, 0, 1, "surrogates not allowed"),
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        sa.exc.IntegrityError("INSERT", {}, sqlite_error("INSERT INTO t VALUES (?)", None)),
    ]
    assert [refused_data(error) for error in trouble] == [False] * len(trouble)
    assert [refused_data(error) for error in refused] == [True] * len(refused)


def test_isolating_writes_every_accepted_record_in_order_with_few_writes() -> None:
    calls: list[list[int]] = []
    stored_values: list[int] = []

    def write(values: list[int]) -> None:
        calls.append(values)
        if any(v % 97 == 13 for v in values):
            raise UnicodeEncodeError("utf-8", "\udfff", 0, 1, "surrogates not allowed")
        stored_values.extend(values)

    outcome = write_isolating(write, list(range(1000)))
    bad = [v for v in range(1000) if v % 97 == 13]
    assert outcome.settled == 1000 and outcome.outage is None
    assert [i for i, _ in outcome.refused] == bad
    assert stored_values == [v for v in range(1000) if v not in bad]
    assert len(calls) <= 2 * len(bad) * 10 + 1  # about two writes per level of the halving, per bad one


def test_isolating_stops_at_the_stores_own_failure_and_leaves_the_rest_queued() -> None:
    def write(values: list[str]) -> None:
        if "bad" in values:
            raise ValueError("refused")
        if "down" in values:
            raise ConnectionRefusedError(111, "Connection refused")

    outcome = write_isolating(write, ["a", "bad", "b", "down", "c"])
    assert (outcome.settled, [i for i, _ in outcome.refused]) == (2, [1])  # "b" waits with "down"
    assert isinstance(outcome.outage, ConnectionRefusedError)


@pytest.mark.parametrize(
    ("request_id", "problem"),
    [
        (NUL, "contains a NUL character"),
        (SURROGATE, "contains a lone surrogate (not valid Unicode)"),
        (TOO_LONG, "longer than 200 characters"),
    ],
    ids=["nul", "lone-surrogate", "too-long"],
)
def test_a_label_the_store_cannot_hold_is_refused_by_field_and_blocks_no_other(
    served: Served, request_id: str, problem: str
) -> None:
    """A NUL request_id answered 503 store_unavailable on PostgreSQL, so clients retried it for ever."""

    async def body(gateway: Gateway) -> int:
        with pytest.raises(InvalidInputError) as caught:
            await gateway.add_labels(MODEL, [Label("ok-1", 1.0), Label(request_id, 2.0)])
        assert [p.to_dict() for p in caught.value.problems] == [
            {"field": "labels[1].request_id", "problem": problem}
        ]
        return await gateway.add_labels(MODEL, [Label("ok-2", 3.0)])

    accepted, _ = run(served, body)
    assert accepted == 1
    with served.ws.reading() as conn:
        assert set(get_labels(conn, served.ws.model(MODEL).id)) == {"ok-2"}


def test_a_label_with_a_nul_request_id_is_answered_422_over_http(served: Served) -> None:
    gateway = Gateway(served.ws, settings=settings(poll_interval="50ms"))
    labels = {"labels": [{"request_id": "a\u0000b", "label": 1.0}]}
    auth = {"Authorization": "Bearer labels-secret"}
    app = create_app(gateway, access=Access(labels="labels-secret"))
    with running(app) as url, httpx.Client(base_url=url, timeout=10, headers=auth) as client:
        refused = client.post(f"/v1/models/{MODEL}/labels", json=labels)
        good = {"labels": [{"request_id": "r", "label": 1}]}
        accepted = client.post(f"/v1/models/{MODEL}/labels", json=good)
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_input"
    assert "labels[0].request_id" in [f["field"] for f in refused.json()["fields"]]
    assert accepted.status_code == 200
