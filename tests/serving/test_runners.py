"""Model runners: in-process (off the event loop, sha256-verified) and remote (a real app on loopback)."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from helpers import fit_classifier_artifact, fit_regression_artifact, write_regression_csv
from pitstop.errors import UsageError
from pitstop.rollout.routes import route
from pitstop.serving import Gateway, Instance
from pitstop.serving.errors import RemoteModelError
from pitstop.serving.inprocess import InProcessRunner
from pitstop.serving.remote import RemoteModel, RemoteRunner
from pitstop.serving.runner import make_runner
from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served, running
from serving.fake_models import RecordingModel, SlowModel, ThreadLimitModel

ROWS = [{"a": 0.1, "b": 0.2}, {"a": -1.0, "b": 3.0}]


def test_in_process_runner_loads_the_verified_artifact_and_predicts(served: Served) -> None:
    model, version = served.ws.model(MODEL), served.ws.version(MODEL, 1)
    runner = make_runner(served.ws, model, version, served.ws.config.serving)

    async def main() -> list[float]:
        try:
            return await runner.predict(ROWS)
        finally:
            await runner.close()

    assert isinstance(runner, InProcessRunner)
    assert asyncio.run(main()) == pytest.approx(served.expected(ROWS))


@pytest.fixture
def base(tmp_path: Path) -> Any:
    """A fitted scikit-learn regressor on features a, b (no store needed)."""
    return joblib.load(
        fit_regression_artifact(write_regression_csv(tmp_path / "t.csv"), tmp_path / "m.joblib")
    )


def test_a_classifier_returns_the_positive_class_probability(tmp_path: Path) -> None:
    path = fit_classifier_artifact(write_regression_csv(tmp_path / "t.csv"), tmp_path / "clf.joblib")
    classifier = joblib.load(path)
    runner = InProcessRunner(classifier, version=1, features=["a", "b"], task="classification")

    async def main() -> list[float]:
        try:
            return await runner.predict(ROWS)
        finally:
            await runner.close()

    expected = classifier.predict_proba(pd.DataFrame(ROWS))[:, 1]
    assert asyncio.run(main()) == pytest.approx(list(expected))


def test_model_code_runs_on_the_runners_thread_never_the_event_loop(base: Any) -> None:
    model = RecordingModel(base)
    runner = InProcessRunner(model, version=1, features=["a", "b"])

    async def main() -> int:
        await runner.predict(ROWS)
        await runner.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert model.calls and all(thread != loop_thread for thread, _ in model.calls)


def test_a_fast_model_answers_while_a_slow_one_is_still_computing(base: Any) -> None:
    slow = InProcessRunner(SlowModel(base, delay=1.0), version=1, features=["a", "b"])
    fast = InProcessRunner(RecordingModel(base), version=2, features=["a", "b"])

    async def main() -> bool:
        pending = slow.submit(ROWS)
        await fast.predict(ROWS)
        still_running = not pending.done()
        pending.cancel()
        await asyncio.gather(slow.close(), fast.close())
        return still_running

    assert asyncio.run(main())


@pytest.mark.parametrize("model_threads", [1, 3])
def test_native_math_uses_the_configured_threads_on_the_runners_threads(
    served: Served, model_threads: int
) -> None:
    # OpenMP's limit is per calling thread: one set only on the event loop's thread left the runner's
    # threads at one per core, spinning between calls and taking CPU from serving
    model = ThreadLimitModel(served.ws.load(MODEL, 1))
    info, version = served.ws.model(MODEL), served.ws.version(MODEL, 1)
    settings = served.ws.config.serving.model_copy(update={"model_threads": model_threads})
    from_settings = make_runner(served.ws, info, version, settings)
    runner = InProcessRunner(model, version=1, features=["a", "b"], model_threads=model_threads, threads=2)

    async def main() -> None:
        await asyncio.gather(*(runner.predict(ROWS) for _ in range(4)))
        await runner.close()
        await from_settings.close()

    asyncio.run(main())
    assert model.openmp_threads and set(model.openmp_threads) == {model_threads}
    assert isinstance(from_settings, InProcessRunner) and from_settings.model_threads == model_threads


def remote_app(calls: list[int], *, status: int = 200, keys: list[str] | None = None) -> Starlette:
    """A tiny real service speaking pitstop's predict protocol: prediction = a + 10 * b. Each call's
    Authorization header goes to `keys`."""

    async def predict(request: Request) -> JSONResponse:
        if keys is not None:
            keys.append(request.headers.get("authorization", ""))
        body = await request.json()
        calls.append(len(body["instances"]))
        answers = [{"prediction": i["features"]["a"] + 10 * i["features"]["b"]} for i in body["instances"]]
        return JSONResponse({"predictions": answers}, status_code=status)

    return Starlette(routes=[Route("/v1/models/eta/predict", predict, methods=["POST"])])


def test_remote_runner_batches_calls_to_a_real_service_on_loopback() -> None:
    calls: list[int] = []
    with running(remote_app(calls)) as url:
        runner = RemoteRunner(f"{url}/v1/models/eta/predict", version=1, max_batch_wait=0.02)

        async def main() -> list[list[float]]:
            try:
                return await asyncio.gather(*(runner.predict([{"a": i, "b": 1}]) for i in range(6)))
            finally:
                await runner.close()

        results = asyncio.run(main())
    assert results == [[i + 10.0] for i in range(6)]
    assert sum(calls) == 6 and len(calls) < 6


class _ImportSearches:
    """A meta-path finder that only notes which modules Python searched for (it finds nothing)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.names.append(name)


def test_remote_calls_do_not_search_the_import_path_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpcore imports sniffio on every request; when it is missing, every request searched sys.path
    # for it (a fifth of the live demo's load generator's CPU): sniffio is a dependency
    searches = _ImportSearches()
    with running(remote_app([])) as url:
        runner = RemoteRunner(f"{url}/v1/models/eta/predict", version=1)

        async def main() -> None:
            await runner.predict([{"a": 0, "b": 1}])  # the first call may import what it needs
            monkeypatch.setattr(sys, "meta_path", [searches, *sys.meta_path])
            for i in range(5):
                await runner.predict([{"a": i, "b": 1}])
            await runner.close()

        asyncio.run(main())
    assert searches.names == []


def test_remote_errors_are_raised_with_the_status() -> None:
    with running(remote_app([], status=503)) as url:
        runner = RemoteRunner(f"{url}/v1/models/eta/predict", version=1)

        async def main() -> None:
            try:
                with pytest.raises(RemoteModelError, match="answered 503"):
                    await runner.predict([{"a": 1, "b": 1}])
            finally:
                await runner.close()

        asyncio.run(main())


def test_a_registered_remote_model_is_served_remotely_as_a_shadow(served: Served) -> None:
    calls: list[int] = []
    with running(remote_app(calls)) as url:
        remote = served.register(RemoteModel(f"{url}/v1/models/eta/predict"), "remote")
        route(served.ws, MODEL, mode="shadow", challenger=remote, reason="remote shadow")

        async def main() -> tuple[float, str]:
            gateway = Gateway(served.ws, poll=False)
            await gateway.start()
            try:
                (result,) = await gateway.predict(MODEL, [Instance({"a": 2.0, "b": 1.0}, request_id="r1")])
                await gateway.drain()
                return result.prediction, type(gateway.state(MODEL).shadow_runner).__name__
            finally:
                await gateway.stop()

        served_value, kind = asyncio.run(main())
        offline = served.ws.load(MODEL, remote).predict(pd.DataFrame([{"a": 1.0, "b": 2.0}]))
    assert kind == "RemoteRunner"
    assert served_value == pytest.approx(served.expected([{"a": 2.0, "b": 1.0}])[0])
    assert list(offline) == [21.0]
    with served.ws.reading() as conn:
        shadow = conn.execute(sa.select(predictions).where(predictions.c.role == "shadow")).one()
    assert (shadow.request_id, shadow.version, shadow.prediction) == ("r1", remote, 12.0)


def test_a_remote_model_s_credential_is_read_from_the_environment_never_saved_in_its_artifact(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API key of a remote model was pickled into its artifact in plain text (issue 22)
    with pytest.raises(UsageError, match=r"plain text: .*header_env="):
        RemoteModel("http://127.0.0.1:1/predict", headers={"Authorization": "Bearer s3cret"})
    keys: list[str] = []
    monkeypatch.setenv("ETA_REMOTE_KEY", "Bearer s3cret")
    with running(remote_app([], keys=keys)) as url:
        remote = RemoteModel(f"{url}/v1/models/eta/predict", header_env={"Authorization": "ETA_REMOTE_KEY"})
        # the door check's fresh process comes from a server started before this test set the key
        version = served.register(remote, "remote", skip_check="its key is set after the test started")
        route(served.ws, MODEL, mode="shadow", challenger=version, reason="remote shadow")

        async def main() -> None:
            gateway = Gateway(served.ws, poll=False)
            await gateway.start()
            try:
                await gateway.predict(MODEL, [Instance({"a": 2.0, "b": 1.0}, request_id="r1")])
                await gateway.drain()
            finally:
                await gateway.stop()

        asyncio.run(main())
        offline = served.ws.load(MODEL, version)
        offline.predict(pd.DataFrame([{"a": 1.0, "b": 2.0}]))
        monkeypatch.delenv("ETA_REMOTE_KEY")
        with pytest.raises(RemoteModelError, match="ETA_REMOTE_KEY"):
            offline.predict(pd.DataFrame([{"a": 1.0, "b": 2.0}]))
    assert len(keys) >= 2 and set(keys) == {"Bearer s3cret"}  # the gateway's calls, the offline one
    # nowhere on disk: not in the registered file, its stored copy, the store or any cache
    files = [path for folder in (served.folder, Path(served.ws.path)) for path in folder.rglob("*")]
    assert all(b"s3cret" not in path.read_bytes() for path in files if path.is_file())


def test_plain_estimators_on_numeric_features_take_the_array_path_with_equal_answers(base: Any) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    pipeline = make_pipeline(StandardScaler(), base.__class__()).fit(frame, [1.0, 2.0, 3.0, 4.0])
    runners = {
        "plain": InProcessRunner(base, version=1, features=["a", "b"], kinds=["float", "float"]),
        "pipeline": InProcessRunner(pipeline, version=2, features=["a", "b"], kinds=["float", "float"]),
        "not numeric": InProcessRunner(base, version=3, features=["a", "b"], kinds=["float", "any"]),
    }
    rows = [{"a": 0.5, "b": 2}, {"a": -1, "b": 0.25}]
    first = {name: r.predictor.predict(rows) for name, r in runners.items()}
    second = {name: r.predictor.predict(rows) for name, r in runners.items()}
    assert first == second
    assert first["plain"] == pytest.approx(list(base.predict(pd.DataFrame(rows))))
    assert {name: r.predictor.array_path for name, r in runners.items()} == {
        "plain": True,
        "pipeline": False,
        "not numeric": False,
    }


class FloatColumnsSum:
    """Custom feature code that reads column types at predict time (`select_dtypes`), as many do."""

    feature_names_in_ = ("a", "n")

    def predict(self, frame: pd.DataFrame) -> Any:
        return frame.select_dtypes("float64").sum(axis=1).to_numpy()


def test_columns_have_the_training_types_whatever_json_numbers_a_batch_carries() -> None:
    """`1` for a float feature made an int64 column and `2.0` for an integer one a float64 column, so
    a model reading column types saw another table, depending on what the rest of its batch sent."""
    runner = InProcessRunner(FloatColumnsSum(), version=1, features=["a", "n"], kinds=["float", "int"])
    assert runner.predictor.predict([{"a": 1, "n": 2.0}, {"a": 3, "n": 5.0}]) == [1.0, 3.0]
    assert runner.predictor.predict([{"a": 1.5, "n": 2}]) == [1.5]


async def _hangs_up_on_stale_connections(idle_limit: float) -> tuple[asyncio.Server, list[str]]:
    """An HTTP/1.1 server whose keep-alive timeout is `idle_limit`: a request arriving on a connection
    idle for longer is met by the server closing it, as a real server does when its timeout and the
    client's next request cross. Returns the server and what each request got ("answered"/"dropped")."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        idle_since = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                sizes = [
                    line.split(b":")[1] for line in head.lower().split(b"\r\n") if b"content-length" in line
                ]
                await reader.readexactly(int(sizes[0]))
                now = asyncio.get_running_loop().time()
                if idle_since is not None and now - idle_since > idle_limit:
                    seen.append("dropped")
                    return
                seen.append("answered")
                body = b'{"predictions": [1.0]}'
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                idle_since = asyncio.get_running_loop().time()
        except (asyncio.IncompleteReadError, ConnectionError):  # the client closed the connection
            return
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), seen


def test_remote_runner_never_reuses_a_connection_the_server_may_be_closing() -> None:
    # httpx keeps idle connections 5 s by default, as long as uvicorn keeps them open: a call made just
    # as the server's timeout ran out went out on a connection being closed and failed with
    # RemoteProtocolError. Idle connections are now closed by the runner first.
    async def main() -> list[str]:
        server, seen = await _hangs_up_on_stale_connections(idle_limit=1.2)
        port = server.sockets[0].getsockname()[1]
        runner = RemoteRunner(f"http://127.0.0.1:{port}/predict", version=1, max_batch_wait=0)
        try:
            assert await runner.predict([{"a": 1}]) == [1.0]
            await asyncio.sleep(1.5)  # idle past the server's keep-alive
            assert await runner.predict([{"a": 2}]) == [1.0]  # before: RemoteModelError (disconnected)
        finally:
            await runner.close()
            server.close()
            await server.wait_closed()
        return seen

    assert asyncio.run(main()) == ["answered", "answered"]
