"""Who may call what (issue 16, rows 2 and 5): writes need a token of their scope, none configured means
refused, the local opt-in, token files, and the routing salt kept from callers without the operator token."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pitstop.errors import ConfigError
from pitstop.http.auth import Access, Scope, access_from_env, describe_access, exposure_warnings
from pitstop.serving.labels import get_labels
from serving.conftest import MODEL, ROW, Served, serving, wait_until

ROLLOUT = f"/v1/models/{MODEL}/rollout"
LABELS = f"/v1/models/{MODEL}/labels"
PREDICT = f"/v1/models/{MODEL}/predict"
OPERATOR = {"Authorization": "Bearer op-secret"}
LABELLER = {"Authorization": "Bearer labels-secret"}
SCOPED = Access(operator="op-secret", labels="labels-secret")


def test_an_unconfigured_gateway_refuses_every_write_with_403(served: Served) -> None:
    """The fuzzer's random `rollback {"reason": "0"}` rolled the demo's champion back: no token was set."""
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with serving(served) as client:
        answers = [
            client.post(f"{ROLLOUT}/{action}", json={"reason": "0"})
            for action in ("promote", "rollback", "abort")
        ]
        labels = client.post(LABELS, json={"labels": [{"request_id": "r1", "label": 1.0}]})
        status = client.get(ROLLOUT).json()
    for answer in [*answers, labels]:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "forbidden" and "no " in answer.json()["message"]
        assert "\n" not in answer.json()["message"]
    assert status["phase"] == "shadow" and status["outcome"] is None
    assert served.ws.model(MODEL).aliases["champion"] == 1
    with served.ws.reading() as conn:
        assert get_labels(conn, served.ws.model(MODEL).id) == {}


def test_the_local_opt_in_allows_writes_from_loopback(served: Served) -> None:
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with serving(served, access=Access(insecure_local_writes=True)) as client:
        labels = client.post(LABELS, json={"labels": [{"request_id": "r1", "label": 1.0}]})
        aborted = client.post(f"{ROLLOUT}/abort", json={"reason": "drill"})
    assert labels.status_code == 200 and aborted.status_code == 200
    assert aborted.json()["outcome"] == "aborted"


def test_the_local_opt_in_refuses_a_caller_beyond_loopback() -> None:
    access = Access(insecure_local_writes=True)
    access.check(Scope.LABELS, None, "127.0.0.1")
    access.check(Scope.OPERATOR, None, "::1")
    with pytest.raises(Exception, match="only from loopback"):
        access.check(Scope.OPERATOR, None, "10.1.2.3")


def test_a_labels_token_writes_labels_but_cannot_promote(served: Served) -> None:
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with serving(served, access=SCOPED) as client:
        labels = client.post(LABELS, json={"labels": [{"request_id": "r1", "label": 1.0}]}, headers=LABELLER)
        promoted = client.post(f"{ROLLOUT}/promote", json={"reason": "x"}, headers=LABELLER)
        rolled = client.post(f"{ROLLOUT}/rollback", json={"reason": "x"}, headers=LABELLER)
        by_operator = client.post(
            LABELS, json={"labels": [{"request_id": "r2", "label": 2.0}]}, headers=OPERATOR
        )
        phase = client.get(ROLLOUT).json()["phase"]
    assert labels.status_code == 200 and by_operator.status_code == 200
    assert promoted.status_code == 403 and "labels token may only write labels" in promoted.json()["message"]
    assert rolled.status_code == 403
    assert phase == "shadow"


def test_predict_needs_a_token_only_when_a_predict_token_is_set(served: Served) -> None:
    with serving(served, access=Access(operator="op-secret", predict="p-secret")) as client:
        missing = client.post(PREDICT, json={"features": ROW})
        signed = client.post(PREDICT, json={"features": ROW}, headers={"Authorization": "Bearer p-secret"})
        oip_missing = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": []})
        spec = client.get("/openapi.json").json()
    assert missing.status_code == 401 and signed.status_code == 200
    assert oip_missing.status_code == 401 and oip_missing.json()["error"].startswith("unauthorized")
    for path in ("/v1/models/{model}/predict", "/v2/models/{model}/infer"):
        assert spec["paths"][path]["post"]["security"] == [{"bearerToken": []}]
    with serving(served, access=SCOPED) as client:
        assert client.post(PREDICT, json={"features": ROW}).status_code == 200


def test_a_token_file_is_read_and_its_content_never_logged(
    served: Served, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "file-token-5f3a9c"
    (tmp_path / "operator.token").write_text(f"{secret}\n")
    access = access_from_env({"PITSTOP_OPERATOR_TOKEN_FILE": str(tmp_path / "operator.token")})
    assert access.operator == secret
    caplog.set_level(logging.DEBUG)
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with serving(served, access=access) as client:
        wrong = client.post(
            f"{ROLLOUT}/abort", json={"reason": "x"}, headers={"Authorization": "Bearer nope"}
        )
        right = client.post(
            f"{ROLLOUT}/abort", json={"reason": "x"}, headers={"Authorization": f"Bearer {secret}"}
        )
    assert (wrong.status_code, right.status_code) == (403, 200)
    assert secret not in wrong.text
    shown = [caplog.text, *capfd.readouterr(), repr(access), describe_access(access)]
    shown += exposure_warnings(access, "0.0.0.0")
    assert all(secret not in text for text in shown)


def test_a_token_file_that_cannot_be_read_names_the_variable_not_the_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PITSTOP_LABELS_TOKEN_FILE"):
        access_from_env({"PITSTOP_LABELS_TOKEN_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        access_from_env({"PITSTOP_LABELS_TOKEN_FILE": str(tmp_path / "empty")})
    with pytest.raises(ConfigError, match="differ"):
        access_from_env({"PITSTOP_OPERATOR_TOKEN": "a", "PITSTOP_API_TOKEN": "b"})


def test_the_legacy_api_token_is_the_operator_token() -> None:
    access = access_from_env({"PITSTOP_API_TOKEN": "legacy"})
    assert access.tokens(Scope.OPERATOR) == ["legacy"] and access.tokens(Scope.LABELS) == ["legacy"]


def test_the_startup_message_says_what_is_open() -> None:
    assert describe_access(Access()).startswith("overrides: refused")
    assert "labels: token" in describe_access(Access(labels="x"))
    opted = Access(insecure_local_writes=True)
    assert any("without a token from this machine" in w for w in exposure_warnings(opted, "127.0.0.1"))
    assert any("predict is open" in w for w in exposure_warnings(Access(operator="x"), "0.0.0.0"))
    assert exposure_warnings(Access(operator="x"), "127.0.0.1") == []


def test_the_routing_salt_is_shown_only_to_the_operator(served: Served) -> None:
    """With the salt anyone could pick user ids that land in the arm they want (issue 16, row 5)."""
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    with serving(served, access=SCOPED, poll_interval="50ms") as client:
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["version"] > 0)
        routing = client.get(f"/v1/models/{MODEL}/routing").json()
        listed = client.get("/v1/models").json()["models"]
        labelled = client.get(f"/v1/models/{MODEL}/routing", headers=LABELLER).json()
        operator = client.get(f"/v1/models/{MODEL}/routing", headers=OPERATOR).json()
        dashboard = client.get("/v1/dashboard").text
        status = client.get(ROLLOUT).text
    salt = operator["salt"]
    assert salt and "salt" not in routing and "salt" not in labelled
    assert all("salt" not in table for table in listed)
    assert salt not in dashboard and salt not in status
