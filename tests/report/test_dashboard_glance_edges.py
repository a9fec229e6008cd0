"""The dashboard's glance beyond a rollout: a shadow set by hand says how it compares, in the words of
a rollout's shadow phase, and a model whose live status cannot be read does not take the others down."""

from __future__ import annotations

from pathlib import Path

import httpx

from pitstop.http.app import create_app
from pitstop.report.words import shadow_comparison_words
from pitstop.serving.gateway import Gateway
from report.rollouts import MODEL, rollout_workspace, send_traffic
from serving.conftest import running


def test_a_shadow_set_by_hand_shows_how_it_compares(tmp_path: Path) -> None:
    ws = rollout_workspace(tmp_path / "ws", tmp_path)
    ws.route(MODEL, mode="shadow", challenger=2, reason="try v2 on live traffic")
    send_traffic(ws, hours=0.5, requests=200, decide=False)
    with running(create_app(Gateway(ws))) as url:
        (model,) = httpx.get(f"{url}/v1/dashboard").json()["models"]
    words = shadow_comparison_words(ws.compare(MODEL))
    glance = model["glance"]
    assert glance["phase"] == model["phase_label"] == "shadow (set by hand)"
    assert (glance["verdict"], glance["next_check"], glance["progress"]) == (
        words.verdict,
        words.next_check,
        words.progress,
    )
    assert glance["verdict"].startswith("Better so far")  # an exact fit shadowing an offset of 1
    assert glance["next_check"].startswith("as a rollout's shadow phase, needs")
    ws.close()


def test_a_model_whose_status_fails_keeps_its_card_and_the_others(tmp_path: Path) -> None:
    ws = rollout_workspace(tmp_path / "ws", tmp_path, loss="lossfunctions:raises")  # every look raises
    ws.create_model("other", task="regression", target="y", features=["a", "b"])
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    send_traffic(ws, hours=0.5, requests=200, decide=False)
    with running(create_app(Gateway(ws))) as url:
        answer = httpx.get(f"{url}/v1/dashboard")
    assert answer.status_code == 200
    cards = {model["name"]: model for model in answer.json()["models"]}
    assert set(cards) == {MODEL, "other"}
    assert "raised" in cards[MODEL]["status_error"]
    assert cards[MODEL]["phase"] == "shadow"
    assert cards[MODEL]["glance"]["verdict"].startswith(
        "Status unavailable: loss lossfunctions:raises raised"
    )
    assert cards["other"]["glance"]["verdict"] == "No rollout yet."
    ws.close()
