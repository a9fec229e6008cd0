"""`GET /v1/models/{model}/shadow` on a real gateway: a shadow set by hand, compared live as
`pitstop compare --json` prints it."""

from __future__ import annotations

from serving.conftest import MODEL, ROW, Served, serving, wait_until

SHADOW = f"/v1/models/{MODEL}/shadow"


def test_a_hand_made_shadow_is_compared_over_http(served: Served) -> None:
    with serving(served) as client:
        missing = client.get(SHADOW)
        assert missing.status_code == 404 and "no shadow set by hand" in missing.json()["message"]
        served.ws.route(MODEL, mode="shadow", challenger=2, reason="try v2 on live traffic")
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["shadow"] == 2)
        sent = 0

        def shadowed() -> bool:
            """Send a request; true once the log holds shadow calls (the shadow may still be loading)."""
            nonlocal sent
            body = {"features": ROW, "user_id": f"u{sent}", "request_id": f"r{sent}"}
            assert client.post(f"/v1/models/{MODEL}/predict", json=body).status_code == 200
            sent += 1
            requests: int = client.get(SHADOW).json()["evidence"]["shadow"]["requests"]
            return requests > 0

        wait_until(shadowed, timeout=30, interval=0.05)
        data = client.get(SHADOW).json()
        assert (data["champion_version"], data["shadow_version"]) == (1, 2)
        assert 0 < data["evidence"]["shadow"]["requests"] <= data["evidence"]["champion"]["requests"] <= sent
        assert data["verdict"]["rule"] == "shadow.min_duration"  # minutes of the day a shadow needs
        same = served.ws.compare(MODEL)  # what `pitstop compare` says, read again (its `now` differs)
        assert (data["since_routing_version"], data["since"]) == (
            same.since_routing_version,
            same.since.isoformat(),
        )
        # shadow calls still being logged may land between the two reads, never leave
        assert 0 < data["evidence"]["shadow"]["requests"] <= same.evidence.shadow.requests


def test_a_rollout_s_shadow_is_not_compared_as_one_set_by_hand(served: Served) -> None:
    with serving(served) as client:
        served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
        answer = client.get(SHADOW)
        assert answer.status_code == 409 and "rollout status" in answer.json()["message"]
        assert client.get("/v1/models/nope/shadow").status_code == 404
