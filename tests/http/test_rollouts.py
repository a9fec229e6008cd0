"""Rollouts over HTTP on a real gateway: status, and the token-guarded manual overrides."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pitstop.config import ServingSettings
from pitstop.http import rollouts as rollout_api
from pitstop.http.app import create_app
from pitstop.rollout.controller import Controller
from pitstop.serving.errors import ModelProcessError
from pitstop.serving.gateway import Gateway
from pitstop.serving.predlog import write_records
from pitstop.serving.runner import Runner, make_runner
from pitstop.store.predictions.write import PredictionRecord
from serving.conftest import MODEL, Served, running, serving, settings, wait_until

ROLLOUT = f"/v1/models/{MODEL}/rollout"
TOKEN = {"Authorization": "Bearer s3cret"}


def test_rollout_status_and_overrides_over_http(served: Served) -> None:
    with serving(served, api_token="s3cret") as client:
        assert client.get(ROLLOUT).status_code == 404  # no rollout yet
        served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
        status = client.get(ROLLOUT).json()
        assert (status["phase"], status["challenger_version"]) == ("shadow", 2)
        assert {"rollout_id", "champion_version", "challenger_share", "evidence", "next_check"} <= set(status)

        assert client.post(f"{ROLLOUT}/promote", json={"reason": "x"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post(f"{ROLLOUT}/promote", json={"reason": "x"}, headers=wrong).status_code == 403
        missing = client.post(f"{ROLLOUT}/promote", json={}, headers=TOKEN)
        assert missing.status_code == 422 and "reason" in missing.text
        unknown = client.post(f"{ROLLOUT}/promote", json={"reason": "x", "force": True}, headers=TOKEN)
        assert unknown.status_code == 422 and "force" in unknown.text

        by_dana = {"reason": "seen enough", "by": "dana"}
        promoted = client.post(f"{ROLLOUT}/promote", json=by_dana, headers=TOKEN)
        assert promoted.status_code == 200 and promoted.json()["phase"] == "ab_test"
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["challenger_share"] > 0)

        aborted = client.post(f"{ROLLOUT}/abort", json={"reason": "drill over"}, headers=TOKEN)
        assert aborted.status_code == 200 and aborted.json()["outcome"] == "aborted"
        again = client.post(f"{ROLLOUT}/abort", json={"reason": "twice"}, headers=TOKEN)
        assert again.status_code == 404 and "no active rollout" in again.json()["message"]
        assert client.get("/v1/models/nope/rollout").status_code == 404

    actors = [(e.actor, e.rule) for e in served.ws.events(MODEL) if e.kind == "rollout_transition"]
    assert actors[-2:] == [("dana", "manual.promote"), ("api", "manual.abort")]


def test_a_blank_reason_is_refused_in_http_terms(served: Served) -> None:
    """An HTTP client was told about the CLI's `--reason` flag."""
    with serving(served, api_token="s3cret") as client:
        served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
        answer = client.post(f"{ROLLOUT}/rollback", json={"reason": "   "}, headers=TOKEN)
        assert client.get(ROLLOUT).json()["phase"] == "shadow"
    assert answer.status_code == 422, answer.text
    assert answer.json()["fields"][0]["field"] == "body.reason" and "--reason" not in answer.text


class EvidenceReads:
    """Counts the store's reads of the prediction log (what a status's evidence costs) through
    SQLAlchemy's own statement hook; `slow` holds each one up, as a large window does."""

    def __init__(self, engine: sa.Engine, *, slow: float = 0.0) -> None:
        self.engine, self.slow, self.count = engine, slow, 0
        self.lock = threading.Lock()

    def __enter__(self) -> EvidenceReads:
        sa.event.listen(self.engine, "before_cursor_execute", self.seen)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self.seen)

    def seen(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # columns of the log (`predictions.model_id`): not the catalog reads of the gateway's partition
        # upkeep on PostgreSQL (`to_regclass('predictions')`, `predictions_default`), which run when
        # they are due, whatever the status calls do
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and "predictions." in statement:
            with self.lock:
                self.count += 1
            time.sleep(self.slow)


def test_concurrent_status_calls_share_one_evidence_computation(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row 6 of issue 16: every status call aggregated the phase's evidence, so eight at once cost
    eight aggregations beside the served traffic. Callers arriving during a computation share it."""
    monkeypatch.setattr(
        rollout_api, "STATUS_SECONDS", 3600.0, raising=False
    )  # only the computation is shared here
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with EvidenceReads(served.ws.engine) as reads:
        served.ws.rollout_status(MODEL)
    one = reads.count
    assert one > 0
    with serving(served) as client, EvidenceReads(served.ws.engine, slow=0.2) as reads:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client.get(ROLLOUT), range(8)))
        again = client.get(ROLLOUT)
    assert [answer.status_code for answer in answers] == [200] * 8
    assert len({answer.text for answer in [*answers, again]}) == 1
    assert reads.count == one


def test_a_routing_change_or_a_new_event_gives_a_new_status_at_once(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        rollout_api, "STATUS_SECONDS", 3600.0, raising=False
    )  # no answer goes stale by age here
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with serving(served) as client, EvidenceReads(served.ws.engine) as reads:
        assert client.get(ROLLOUT).json()["phase"] == "shadow"
        once = reads.count
        assert client.get(ROLLOUT).json()["phase"] == "shadow"
        assert reads.count == once  # nothing changed: the same status
        served.ws.promote(MODEL, reason="seen enough")  # an event and a routing change
        wait_until(lambda: client.get(ROLLOUT).json()["phase"] == "ab_test")  # within a poll interval
        served.ws.abort(MODEL, reason="drill over")
        wait_until(lambda: client.get(ROLLOUT).json()["outcome"] == "aborted")


def test_the_status_carries_this_gateways_view_a_shadow_that_cannot_load_among_it(served: Served) -> None:
    """Issue 16, row 4: a challenger that cannot load shows in the rollout status a person polls, not
    only in /v1/health, while the champion serves and the gateway stays ready."""

    def factory(
        ws: Any, info: Any, version: Any, serving: ServingSettings, *, shadow: bool = False
    ) -> Runner:
        if version.version == 2:
            raise ModelProcessError(f"{info.name}-v2: the model's process exited")
        return make_runner(ws, info, version, serving, shadow=shadow)

    gateway = Gateway(served.ws, settings=settings(), runner_factory=factory)
    with (
        running(create_app(gateway, api_token="s3cret")) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["shadow"] == 2)
        status = client.get(ROLLOUT).json()
        ready = client.get("/readyz").status_code
    view = status["gateway"]
    assert status["phase"] == "shadow" and ready == 200
    assert view["status"] == "degraded"
    assert view["model"]["champion"]["status"] == "ok"
    assert view["model"]["shadow"] == {
        "version": 2,
        "status": "unavailable",
        "problem": view["model"]["shadow"]["problem"],
    }
    assert "process exited" in view["model"]["shadow"]["problem"]
    assert view["prediction_log"]["status"] == "ok" and view["store"]["status"] == "ok"


def test_a_library_error_names_its_field_as_a_json_pointer(served: Served) -> None:
    """An error raised by the Python API reaches an HTTP client with its field and no CLI flag."""
    gateway = Gateway(served.ws, settings=settings())
    app = create_app(gateway)

    def archive_without_reason() -> None:
        served.ws.archive_model(MODEL, reason=" ")

    app.add_api_route("/test/archive", archive_without_reason, methods=["POST"])
    with running(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post("/test/archive")
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": "bad_request",
        "message": "reason: say why the model is archived",
        "field": "/reason",
    }


def test_the_rollout_status_says_which_policy_is_in_force_and_where_it_came_from(
    served: Served, tmp_path: Any
) -> None:
    policy_file = tmp_path / "strict.yaml"
    policy_file.write_text("ab_test:\n  alpha: 0.01\n")
    served.ws.add_policy("strict", policy_file)
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test", policy="strict")
    with serving(served) as client:
        status = client.get(ROLLOUT).json()
    assert status["policy_source"] == "policy:strict@1"
    assert status["policy"] == served.ws.get_policy("strict").policy.model_dump(mode="json")
    assert status["policy"]["ab_test"]["alpha"] == 0.01


def _hold(served: Served) -> None:
    """Move a rollout of v2 to its first ramp step by hand and hold it: a user served by both arms."""
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    for why in ("to the A/B test", "to the ramp"):
        served.ws.promote(MODEL, reason=why)
    state = served.ws.rollouts(MODEL)[-1].state
    model_id, now = served.ws.model(MODEL).id, time.time() - 1
    write_records(
        served.ws.engine,
        [
            PredictionRecord(
                model_id,
                f"q{v}",
                "a",
                now,
                v,
                arm,
                "served",
                state.phase_routing_version,
                "user",
                1.0,
                2.0,
                None,
            )
            for v, arm in ((1, "champion"), (2, "challenger"))
        ],
    )
    Controller(served.ws).tick()
    assert served.ws.rollouts(MODEL)[-1].state.hold is not None


def test_resume_and_approve_over_http_need_the_operator_token(served: Served) -> None:
    with serving(served, api_token="s3cret") as client:
        _hold(served)
        assert client.get(ROLLOUT).json()["held"]["rule"] == "health.both_arms"
        assert client.post(f"{ROLLOUT}/resume", json={"reason": "fixed"}).status_code == 401
        assert client.post(f"{ROLLOUT}/approve", json={"reason": "ok"}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post(f"{ROLLOUT}/resume", json={"reason": "fixed"}, headers=wrong).status_code == 403
        assert served.ws.rollouts(MODEL)[-1].state.hold is not None  # refused: nothing changed
        resumed = client.post(f"{ROLLOUT}/resume", json={"reason": "fixed", "by": "dana"}, headers=TOKEN)
        assert resumed.status_code == 200 and resumed.json()["held"] is None
        again = client.post(f"{ROLLOUT}/resume", json={"reason": "twice"}, headers=TOKEN)
        assert again.status_code == 409 and "not held" in again.json()["message"]
        ungated = client.post(f"{ROLLOUT}/approve", json={"reason": "ok"}, headers=TOKEN)
        assert ungated.status_code == 409 and "needs no approval" in ungated.json()["message"]
    resumed_by = [(e.actor, e.rule) for e in served.ws.events(MODEL) if e.kind == "rollout_resumed"]
    assert resumed_by == [("dana", "manual.resume")]


def test_rollout_status_lists_the_live_gateways_and_what_each_serves(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollout_api, "STATUS_SECONDS", 0.05)  # each look sees the latest heartbeat
    stored = served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    version = stored.state.phase_routing_version

    def lines() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = client.get(ROLLOUT).json()["gateways"]
        return found

    with serving(served, heartbeat_interval="100ms") as client:
        wait_until(lambda: [line["acknowledged"] for line in lines()] == [True])
        (line,) = lines()
    assert (line["model"], line["routing_version"]) == (MODEL, version)
    assert line["loaded"] == [1, 2] and line["warmed"] == [1, 2]  # the champion, and v2 in shadow
    assert served.ws.gateways() == []  # the gateway stopped with its server and removed its row
