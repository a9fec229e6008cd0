"""Shadow models in a child process at idle CPU priority (`isolation.py`), and model call durations
that leave out waits for a CPU (`priority.own_seconds`)."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import threading
import time
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest
import sqlalchemy as sa

from helpers import fit_regression_artifact, write_regression_csv
from misbehaving_models import LeakingModel
from pitstop.config import ServingSettings
from pitstop.http.app import create_app
from pitstop.rollout.routes import route
from pitstop.serving import Gateway, Instance
from pitstop.serving.errors import ModelProcessError
from pitstop.serving.inprocess import InProcessRunner, Predictor
from pitstop.serving.isolation import ModelProcess
from pitstop.serving.priority import own_seconds
from pitstop.store.tables import predictions
from pitstop.user_code import current_folder_importable
from serving.conftest import MODEL, Served, running
from serving.fake_models import ExitingModel, RaisingModel, SchedulerModel, SlowModel

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling classes are Linux's")

ROWS = [{"a": 0.1, "b": 0.2}, {"a": -1.0, "b": 3.0}]
FEATURES = {"features": ["a", "b"], "kinds": ["float", "float"]}


@pytest.fixture
def base(tmp_path: Path) -> Any:
    """A fitted scikit-learn regressor on features a, b (no store needed)."""
    return joblib.load(
        fit_regression_artifact(write_regression_csv(tmp_path / "t.csv"), tmp_path / "m.joblib")
    )


def predict_then_close(runner: InProcessRunner, *batches: list[dict[str, float]]) -> list[Any]:
    """Each batch's predictions, or the exception it raised; the runner closed afterwards."""

    async def main() -> list[Any]:
        try:
            return await asyncio.gather(*(runner.predict(rows) for rows in batches), return_exceptions=True)
        finally:
            await runner.close()

    return asyncio.run(main())


def test_an_isolated_runner_answers_like_the_in_thread_one_from_a_child_at_idle_priority(base: Any) -> None:
    (in_thread,) = predict_then_close(InProcessRunner(base, version=1, **FEATURES), ROWS)
    isolated = InProcessRunner(base, version=1, isolated=True, **FEATURES)
    child = isolated.process.pid if isolated.process else None
    (in_child,) = predict_then_close(isolated, ROWS)
    scheduler = InProcessRunner(SchedulerModel(base), version=2, isolated=True, **FEATURES)
    (policies,) = predict_then_close(scheduler, ROWS)
    assert in_child == in_thread
    assert child is not None and child != os.getpid()
    assert policies == [float(os.SCHED_IDLE)] * len(ROWS)


def test_a_models_exception_comes_back_from_the_child_as_itself(base: Any) -> None:
    raising = InProcessRunner(RaisingModel(base), version=1, isolated=True, **FEATURES)
    (error,) = predict_then_close(raising, ROWS)
    assert isinstance(error, RuntimeError) and str(error) == "this model always fails"


def test_a_child_that_dies_fails_its_call_and_the_next_call_starts_a_new_one(base: Any) -> None:
    runner = InProcessRunner(ExitingModel(base), version=1, isolated=True, **FEATURES)
    assert runner.process is not None
    first = runner.process.pid

    async def main() -> tuple[Any, list[float], int | None]:
        try:
            with pytest.raises(ModelProcessError, match=r"exit code 3\)") as crashed:
                await runner.predict([{"a": 666.0, "b": 0.0}])
            after = await runner.predict(ROWS)
            return crashed.value, after, runner.process.pid if runner.process else None
        finally:
            await runner.close()

    _, after, second = asyncio.run(main())
    assert after == pytest.approx(list(base.predict(pd.DataFrame(ROWS))))
    assert second is not None and second != first


def test_closing_kills_a_child_stuck_in_a_call(base: Any) -> None:
    runner = InProcessRunner(SlowModel(base, delay=600.0), version=1, isolated=True, **FEATURES)
    assert runner.process is not None
    pid = runner.process.pid

    async def main() -> Any:
        stuck = runner.submit(ROWS)
        await asyncio.sleep(0.2)  # the call is in the child, sleeping
        await asyncio.wait_for(runner.close(), timeout=30)
        return await asyncio.gather(stuck, return_exceptions=True)

    asyncio.run(main())
    assert pid is not None
    deadline = time.monotonic() + 10  # the fork server, its parent, reaps it on its own time
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: gone


@pytest.mark.parametrize("isolated", [True, False])
def test_the_gateway_scores_shadows_in_an_idle_child_unless_told_otherwise(
    served: Served, isolated: bool
) -> None:
    policy = served.fake("SchedulerModel")
    route(served.ws, MODEL, mode="shadow", challenger=policy, reason="test")
    settings = ServingSettings.model_validate(  # a long timeout: the idle child may wait for a CPU
        {"shadow_process": isolated, "log_flush_interval": "50ms", "shadow_timeout": "10s"}
    )

    async def main() -> None:
        gateway = Gateway(served.ws, settings=settings, poll=False)
        await gateway.start()
        try:
            for i in range(3):
                await gateway.predict(MODEL, [Instance({"a": 1.0, "b": float(i)}, request_id=f"r{i}")])
            await gateway.drain()
        finally:
            await gateway.stop()

    asyncio.run(main())
    with served.ws.reading() as conn:
        shadow = conn.execute(sa.select(predictions).where(predictions.c.role == "shadow")).all()
    expected = os.SCHED_IDLE if isolated else os.sched_getscheduler(0)
    assert sorted(r.request_id for r in shadow) == ["r0", "r1", "r2"]
    assert {r.prediction for r in shadow} == {float(expected)}
    assert all(r.error is None and r.latency_ms >= 0 for r in shadow)


def test_a_calls_own_seconds_count_its_sleep() -> None:
    _, seconds = own_seconds(lambda: time.sleep(0.05))
    assert seconds >= 0.05


def test_a_calls_own_seconds_leave_out_its_waits_for_a_cpu() -> None:
    """An idle-priority thread sharing one CPU with a busy process runs a moment at a time: most of its
    wall time is spent waiting for the CPU, which is not the call's own slowness."""
    cpu = min(os.sched_getaffinity(0))
    busy = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
    )
    measured: dict[str, float] = {}

    def idle_thread() -> None:
        os.sched_setaffinity(0, {cpu})  # this thread only (Linux)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        started = time.perf_counter()
        _, measured["own"] = own_seconds(lambda: sum(range(2_000_000)))
        measured["wall"] = time.perf_counter() - started

    try:
        time.sleep(0.2)  # the busy process is spinning
        thread = threading.Thread(target=idle_thread)
        thread.start()
        thread.join(timeout=120)
    finally:
        busy.kill()
        busy.wait()
    assert not thread.is_alive()
    assert 0 < measured["own"] < measured["wall"] / 2


def test_a_child_that_exits_while_starting_says_so_and_how_to_fix_it(base: Any) -> None:
    """As a script without a `__main__` guard makes it do (the fork server imports the main module)."""
    predictor = Predictor(base, **FEATURES)
    with pytest.raises(ModelProcessError, match=r"exited while starting \(exit code 7\).*__main__"):
        ModelProcess(predictor.timed, setup=partial(os._exit, 7), name="eta-v1-shadow")


def test_a_shadow_call_starved_of_cpu_is_skipped_not_charged_to_the_challenger_as_a_timeout(
    served: Served,
) -> None:
    """A busy CPU starves the idle-priority shadow past its timeout. That is the gateway's load, not
    the challenger's slowness: the call is skipped and counted (`starved`), and no timeout is recorded
    against the challenger (the shadow gate would count it as the challenger's error)."""
    cpu = min(os.sched_getaffinity(0))
    challenger = served.fake("CpuModel", seconds=0.05)
    route(served.ws, MODEL, mode="shadow", challenger=challenger, reason="test")
    settings = ServingSettings.model_validate({"shadow_timeout": "300ms", "log_flush_interval": "50ms"})

    async def main() -> bytes:
        gateway = Gateway(served.ws, settings=settings, poll=False)
        await gateway.start()
        busy = subprocess.Popen(
            [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
        )
        try:
            runner = gateway.state(MODEL).shadow_runner
            assert isinstance(runner, InProcessRunner) and runner.process and runner.process.pid
            os.sched_setaffinity(runner.process.pid, {cpu})  # beside the busy process, at idle priority
            await asyncio.sleep(0.2)  # the busy process is spinning
            await gateway.predict(MODEL, [Instance({"a": 1.0, "b": 2.0}, request_id="starved")])
            await asyncio.wait_for(gateway.shadow.drain(), timeout=30)
        finally:
            busy.kill()
            busy.wait()
        try:
            await gateway.drain()
            return gateway.metrics.render()
        finally:
            await gateway.stop()

    metrics = asyncio.run(main()).decode()
    with served.ws.reading() as conn:
        shadow = conn.execute(sa.select(predictions).where(predictions.c.role == "shadow")).all()
    assert shadow == []
    assert (
        f'pitstop_shadow_skipped_total{{model="eta",reason="starved",version="{challenger}"}} 1.0' in metrics
    )
    assert "pitstop_shadow_timeouts_total{" not in metrics


def test_a_thread_that_timed_calls_leaves_no_file_open_when_it_ends() -> None:
    """`cpu_wait_seconds` keeps its thread's /proc file open between calls; it closes with the thread."""

    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    threads = [threading.Thread(target=lambda: own_seconds(lambda: None)) for _ in range(20)]
    for thread in threads:
        thread.start()
        thread.join()
    assert open_files() == before


def restarts_for_memory(metrics: str, version: int) -> float:
    """`pitstop_shadow_restarts_total{reason="memory"}` of `version` in a /metrics text (0 when absent)."""
    series = f'pitstop_shadow_restarts_total{{model="{MODEL}",reason="memory",version="{version}"}} '
    line = next((line for line in metrics.splitlines() if line.startswith(series)), None)
    return 0.0 if line is None else float(line.removeprefix(series))


def test_an_isolated_model_over_its_memory_limit_is_restarted_between_calls(base: Any) -> None:
    """A leaking model's child is killed once its resident memory crosses the limit; the next call gets
    a new child, and every call still answers."""
    limit = 300 * 2**20
    runner = InProcessRunner(
        LeakingModel(base, leak_mib=48), version=1, isolated=True, memory_limit=limit, **FEATURES
    )
    assert runner.process is not None
    first = runner.process.pid
    start = runner.process.memory()
    answers: list[list[float]] = []

    async def main() -> None:
        try:
            for _ in range(40):  # bounded: 48 MiB a call crosses 300 MiB within a few readings
                with suppress(ModelProcessError):  # killed in a call that a busy CPU kept over a second
                    answers.append(await runner.predict(ROWS))
                assert runner.process is not None
                if runner.process.memory().restarts.get("memory"):
                    answers.append(await runner.predict(ROWS))  # in a new child
                    return
                await asyncio.sleep(0.25)
        finally:
            await runner.close()

    asyncio.run(main())
    assert start.rss_bytes is not None and 0 < start.rss_bytes < limit
    assert runner.process.memory().restarts.get("memory", 0) >= 1
    assert runner.process.pid not in (None, first)
    expected = list(base.predict(pd.DataFrame(ROWS)))
    assert all(answer == pytest.approx(expected) for answer in answers)


def test_a_leaking_shadow_is_restarted_at_its_limit_counted_and_the_champion_serves_on(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 7 of issue 16: a shadow child that leaked grew without a limit or a metric. With a small
    limit, the leaking challenger's child is restarted (counted and logged with the numbers), its
    memory is a metric, and every served answer is the champion's, unchanged."""
    leaking = served.register(LeakingModel(served.base, leak_mib=48), "leaking")
    route(served.ws, MODEL, mode="shadow", challenger=leaking, reason="test")
    settings = ServingSettings.model_validate(
        {"shadow_memory_limit": "300MiB", "shadow_timeout": "10s", "poll_interval": "50ms"}
    )
    gateway = Gateway(served.ws, settings=settings)
    rows = [{"a": float(i % 7), "b": float(i % 5)} for i in range(60)]
    served_answers: list[float] = []
    with running(create_app(gateway)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for row in rows:  # bounded: 48 MiB a shadow call crosses 300 MiB within a few readings
            answer = client.post(f"/v1/models/{MODEL}/predict", json={"features": row})
            assert answer.status_code == 200, answer.text
            served_answers.append(answer.json()["prediction"])
            metrics = client.get("/metrics").text
            if restarts_for_memory(metrics, leaking) >= 1:
                break
            time.sleep(0.25)
        health = client.get("/v1/dashboard").json()["health"]
        process = client.get("/v1/health").json()["models"][MODEL]["shadow_process"]
    assert restarts_for_memory(metrics, leaking) >= 1
    assert process["restarts"]["memory"] >= 1 and process["limit_bytes"] == 300 * 2**20
    rss = f'pitstop_shadow_rss_bytes{{model="{MODEL}",version="{leaking}"}} '
    assert any(line.startswith(rss) and float(line.removeprefix(rss)) > 0 for line in metrics.splitlines())
    assert health["counters"]["shadow process restarts"] >= 1
    shadow = health["shadow_processes"][MODEL]
    assert shadow["version"] == leaking and shadow["restarts"]["memory"] >= 1
    assert shadow["limit_bytes"] == 300 * 2**20
    assert served_answers == pytest.approx(served.expected(rows[: len(served_answers)]))
    assert any("over its limit of 300 MiB" in record.getMessage() for record in caplog.records)


def test_a_limit_below_the_loaded_models_size_is_said_when_the_child_starts(
    base: Any, caplog: pytest.LogCaptureFixture
) -> None:
    process = ModelProcess(Predictor(base, **FEATURES).timed, name="eta-v1-shadow", memory_limit=2**20)
    try:
        use = process.memory()
    finally:
        process.close()
    assert use.rss_bytes is not None and use.rss_bytes > use.limit_bytes == 2**20
    assert any("once loaded, already over its limit of 1 MiB" in r.getMessage() for r in caplog.records)


LOCAL_MODULE = """
class Halved:
    def __init__(self, base):
        self.base = base
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, X):
        return self.base.predict(X) / 2
"""


def local_model(folder: Path, name: str, base: Any) -> Any:
    """A `Halved` model whose class lives in `folder/name.py`, imported from the working folder as the
    gateway imports a model's module (`user_code.current_folder_importable`)."""
    (folder / f"{name}.py").write_text(LOCAL_MODULE)
    with current_folder_importable():
        return importlib.import_module(name).Halved(base)


def test_an_isolated_model_finds_its_class_in_the_gateways_working_folder(
    base: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fork server kept the import path it started with, and the child unpickled the model before
    taking any other: a class from `taxitrainers.py` beside the user failed in the shadow's process."""
    monkeypatch.chdir(tmp_path)
    model = local_model(tmp_path, "halvedtrainers", base)
    try:
        (answer,) = predict_then_close(InProcessRunner(model, version=1, isolated=True, **FEATURES), ROWS)
    finally:
        sys.modules.pop("halvedtrainers", None)
    assert answer == pytest.approx(list(base.predict(pd.DataFrame(ROWS)) / 2))


def test_an_isolated_model_whose_module_is_missing_fails_with_its_own_error(
    base: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "trainers"
    folder.mkdir()
    monkeypatch.chdir(folder)
    model = local_model(folder, "gonetrainers", base)
    monkeypatch.chdir(tmp_path)  # the module is not where the gateway runs
    try:
        with pytest.raises(ModuleNotFoundError, match="No module named 'gonetrainers'"):
            InProcessRunner(model, version=1, isolated=True, **FEATURES)
    finally:
        sys.modules.pop("gonetrainers", None)


def test_model_children_start_with_the_model_file_readers_already_imported() -> None:
    """Each door check and shadow child loads a model file; skops (~0.7 s of imports) must come from the
    fork server, not from every child. The layering change stopped `pitstop.serving.inprocess` from
    importing it on the way, and every registration paid for it until the server preloaded it."""
    from concurrent.futures import ProcessPoolExecutor

    from pitstop.serving.isolation import _context

    with ProcessPoolExecutor(1, mp_context=_context()) as pool:
        assert pool.submit(eval, "'skops.io' in __import__('sys').modules").result(timeout=60)
