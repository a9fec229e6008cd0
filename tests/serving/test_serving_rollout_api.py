"""Rollouts over HTTP on a real gateway: status, and the token-guarded manual overrides."""

from __future__ import annotations

from serving.conftest import MODEL, Served, wait_until
from serving.test_serving_app import serving

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
