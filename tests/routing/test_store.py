"""Routing tables in the store and `pitstop route`: versions, events, salts, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pitstop.errors import ConflictError, NotFoundError, UsageError
from pitstop.rollout.routes import route
from pitstop.routing.provider import GatewayRouting, provider
from pitstop.routing.store import Change, current_routing, routing_of, save
from pitstop.routing.table import Routes
from pitstop.rules import Rule
from serving.conftest import MODEL, Served


def test_no_routing_row_means_the_champion_alias_at_version_zero(served: Served) -> None:
    with served.ws.reading() as conn:
        assert current_routing(conn, served.ws.model(MODEL).id) is None
    table = routing_of(served.ws, MODEL)
    assert table is not None and (table.version, table.mode, table.champion) == (0, "off", 1)


def test_each_change_is_a_new_version_with_an_event(served: Served) -> None:
    shadow = route(served.ws, MODEL, mode="shadow", challenger="v2", reason="try it", actor="ana")
    split = route(served.ws, MODEL, mode="split", challenger=2, share=0.1, reason="a/b", actor="ana")
    assert (shadow.version, shadow.mode, shadow.shadow, shadow.challenger) == (1, "shadow", 2, 2)
    assert (split.version, split.mode, split.challenger_share, split.shadow) == (2, "split", 0.1, None)
    events = [e for e in served.ws.events(MODEL) if e.kind == "routing_changed"]
    assert [(e.from_state, e.to_state, e.actor, e.reason, e.rule) for e in events] == [
        (None, "#1 shadow", "ana", "try it", "manual"),
        ("#1 shadow", "#2 split 10%", "ana", "a/b", "manual"),
    ]
    assert events[1].data["challenger_share"] == 0.1 and events[1].data["previous_version"] == 1
    with served.ws.reading() as conn:
        assert current_routing(conn, served.ws.model(MODEL).id) == split


def test_the_salt_is_kept_while_only_the_share_changes_and_renewed_from_off(served: Served) -> None:
    first = route(served.ws, MODEL, mode="split", challenger=2, share=0.1, reason="r")
    wider = route(served.ws, MODEL, mode="split", challenger=2, share=0.5, reason="r")
    route(served.ws, MODEL, mode="off", reason="r")
    again = route(served.ws, MODEL, mode="split", challenger=2, share=0.1, reason="r")
    assert first.salt == wider.salt
    assert again.salt != first.salt


def test_asking_for_the_routing_already_in_use_writes_nothing(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    """A new user's `route --off` on an already-off model wrote a new table, salt and event."""
    split = route(served.ws, MODEL, mode="split", challenger=2, share=0.25, reason="a/b")
    assert route(served.ws, MODEL, mode="split", challenger=2, share=0.25, reason="again") == split
    route(served.ws, MODEL, mode="off", reason="done")
    events = len(served.ws.events(MODEL))
    result = cli("route", MODEL, "--off", "--reason", "sure?", "-w", str(served.ws.path))
    assert result.exit_code == 0, result.stderr
    assert "unchanged" in result.stdout and "#2 off" in result.stdout
    assert len(served.ws.events(MODEL)) == events
    with served.ws.reading() as conn:
        assert current_routing(conn, served.ws.model(MODEL).id).version == 2  # type: ignore[union-attr]


def test_save_runs_in_the_callers_transaction(served: Served) -> None:
    model = served.ws.model(MODEL)
    routes = Routes.at_share(1, 2, 1.0, "s", rollout_id=7, step=4)
    with pytest.raises(RuntimeError), served.ws.writing() as conn:
        save(conn, model, routes, Change(served.ws.clock.now(), "controller", "ramp 100%"))
        raise RuntimeError("the controller's own write failed")
    assert routing_of(served.ws, MODEL).version == 0  # type: ignore[union-attr]
    with served.ws.writing() as conn:
        change = Change(served.ws.clock.now(), "controller", "ramp 100%", Rule.RAMP_STEP, {"p99": 0.01})
        table = save(conn, model, routes, change)
    assert (table.mode, table.shadow_for(2), table.rollout_id, table.step) == ("split", 1, 7, 4)
    (event,) = [e for e in served.ws.events(MODEL) if e.kind == "routing_changed"]
    assert (event.rollout_id, event.rule, event.data["p99"]) == (7, "ramp.step", 0.01)


IMPOSSIBLE: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"mode": "shadow", "challenger": 1}, UsageError, "version 1 is the champion"),
    ({"mode": "shadow", "challenger": 9}, NotFoundError, "has no version 9"),
    ({"mode": "split", "challenger": 2, "share": 0.0}, UsageError, "share in \\(0, 1\\]"),
    ({"mode": "split", "challenger": 2, "share": 1.5}, UsageError, "share in \\(0, 1\\]"),
    ({"mode": "shadow", "challenger": 2, "share": 0.1}, UsageError, "split only"),
    ({"mode": "shadow"}, UsageError, "mode shadow needs a version"),
    ({"mode": "off", "challenger": 2}, UsageError, "takes neither"),
    ({"mode": "shadow", "challenger": 2, "reason": " "}, UsageError, "^reason: say why"),
]


def test_impossible_routes_are_refused_and_change_nothing(served: Served) -> None:
    for options, error, message in IMPOSSIBLE:
        with pytest.raises(error, match=message):
            route(served.ws, MODEL, **{"reason": "r", **options})
    assert routing_of(served.ws, MODEL).version == 0  # type: ignore[union-attr]


def test_route_command_sets_shows_and_turns_off(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(served.ws.path)]
    shadow = cli("route", MODEL, "--challenger", "2", "--mode", "shadow", "--reason", "try", *ws)
    assert shadow.exit_code == 0, shadow.stderr
    assert "#1 shadow" in shadow.stdout
    split = cli(
        "route",
        MODEL,
        "--challenger",
        "2",
        "--mode",
        "split",
        "--share",
        "0.25",
        "--reason",
        "ab",
        "--json",
        *ws,
    )
    assert json.loads(split.stdout)["challenger_share"] == 0.25
    assert cli("route", MODEL, "--off", "--reason", "done", *ws).exit_code == 0
    shown = json.loads(cli("route", MODEL, "--json", *ws).stdout)
    assert (shown["version"], shown["mode"]) == (3, "off")


def test_a_split_without_a_share_takes_the_policys_ab_test_share(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(served.ws.path)]
    shipped = cli("route", MODEL, "--challenger", "2", "--mode", "split", "--reason", "ab", "--json", *ws)
    assert shipped.exit_code == 0, shipped.stderr
    assert json.loads(shipped.stdout)["challenger_share"] == 0.1
    config = served.ws.path / "pitstop.yaml"
    config.write_text(config.read_text().replace("  share: 0.1  #", "  share: 0.3  #"))
    cli("route", MODEL, "--off", "--reason", "reset", *ws)
    wider = cli("route", MODEL, "--challenger", "2", "--mode", "split", "--reason", "ab", "--json", *ws)
    assert wider.exit_code == 0, wider.stderr
    assert json.loads(wider.stdout)["challenger_share"] == 0.3


def test_an_impossible_share_is_named_in_the_message_without_python_none(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    args = ["--challenger", "2", "--mode", "split", "--reason", "r", "-w", str(served.ws.path)]
    result = cli("route", MODEL, *args, "--share", "1.5")
    assert result.exit_code == 2
    assert "--share: a split needs a share in (0, 1], got 1.5" in result.stderr
    assert "None" not in result.stderr


def test_route_command_usage_errors_exit_2_with_one_line(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    cases = [
        (["--challenger", "2", "--mode", "shadow"], "--reason"),
        (["--challenger", "2", "--reason", "r"], "--mode"),
        (["--challenger", "2", "--mode", "sideways", "--reason", "r"], "--mode: must be shadow or split"),
        (["--off", "--mode", "split", "--reason", "r"], "--off"),
        (["--challenger", "1", "--mode", "shadow", "--reason", "r"], "is the champion"),
        (["--off", "--reason", "r", "-w", "/nonexistent"], "not a pitstop workspace"),
    ]
    for args, message in cases:
        result = (
            cli("route", MODEL, *args, "-w", str(served.ws.path))
            if "-w" not in args
            else cli("route", MODEL, *args)
        )
        assert result.exit_code == 2, args
        assert message in result.stderr and "Traceback" not in result.stderr


# -- set-champion and routing ------------------------------------------------------------------------


def test_set_champion_writes_a_table_serving_only_the_new_champion(served: Served) -> None:
    split = route(served.ws, MODEL, mode="split", challenger=2, share=0.25, reason="a/b", actor="ana")
    aliases = served.ws.set_champion(MODEL, 2, reason="incident 7", force=True, actor="bo")
    table = routing_of(served.ws, MODEL)
    assert aliases == {"champion": 2, "previous": 1}
    assert table is not None and table.version == split.version + 1
    assert (table.mode, table.champion, table.challenger, table.shadow, table.standby) == (
        "off",
        2,
        None,
        None,
        None,
    )
    change = [e for e in served.ws.events(MODEL) if e.kind == "routing_changed"][-1]
    assert (change.from_state, change.to_state, change.actor, change.reason, change.rule) == (
        "#1 split 25%",
        "#2 off",
        "bo",
        "incident 7",
        "manual.set_champion",
    )
    moved = [e for e in served.ws.events(MODEL) if e.kind == "alias_moved"][-1]
    assert moved.reason == "incident 7" and moved.actor == "bo"


def test_set_champion_before_any_routing_leaves_the_gateway_on_the_alias(served: Served) -> None:
    served.ws.set_champion(MODEL, 2, reason="first real model", force=True)
    with served.ws.reading() as conn:
        assert current_routing(conn, served.ws.model(MODEL).id) is None
    table = routing_of(served.ws, MODEL)
    assert table is not None and (table.version, table.champion) == (0, 2)


def test_set_champion_to_the_current_champion_leaves_the_routing_alone(served: Served) -> None:
    shadow = route(served.ws, MODEL, mode="shadow", challenger=2, reason="try it")
    served.ws.set_champion(MODEL, 1, reason="again")
    assert routing_of(served.ws, MODEL) == shadow


def test_set_champion_refuses_while_a_rollout_is_active_and_changes_nothing(served: Served) -> None:
    rollout = served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="drill").state.id
    before = routing_of(served.ws, MODEL)
    with pytest.raises(ConflictError) as refused:
        served.ws.set_champion(MODEL, 2, reason="incident 7", force=True)
    message = str(refused.value)
    assert f"rollout {rollout} of {MODEL!r} is active (shadow, challenger v2)" in message
    assert f"`pitstop rollout rollback {MODEL} --reason …`" in message and "abort" in message
    assert served.ws.model(MODEL).aliases == {"champion": 1, "challenger": 2}
    assert routing_of(served.ws, MODEL) == before


def test_set_champion_command_says_which_routing_serves_the_new_champion(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(served.ws.path)]
    cli("route", MODEL, "--challenger", "2", "--mode", "shadow", "--reason", "try", *ws)
    forced = cli("models", "set-champion", MODEL, "2", "--force", "--reason", "incident 7", *ws)
    assert forced.exit_code == 0, forced.stderr
    assert forced.stdout.strip() == (
        f"{MODEL}: champion is now version 2, served alone by routing version 2; "
        "running gateways switch within their poll interval"
    )
    shown = json.loads(cli("route", MODEL, "--json", *ws).stdout)
    assert (shown["version"], shown["mode"], shown["champion"], shown["shadow"]) == (2, "off", 2, None)
    again = cli("models", "set-champion", MODEL, "1", "--force", "--reason", "back", "--json", *ws)
    data = json.loads(again.stdout)
    assert data["aliases"] == {"champion": 1, "previous": 2} and data["routing"]["version"] == 3
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="drill")
    refused = cli("models", "set-champion", MODEL, "2", "--force", "--reason", "incident 8", *ws)
    assert refused.exit_code == 2 and "is active" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_the_gateway_provider_sets_gets_and_finalizes_through_the_store(served: Served) -> None:
    gateways = provider()
    assert isinstance(gateways, GatewayRouting)
    model, now = served.ws.model(MODEL), served.ws.clock.now()
    with served.ws.writing() as conn:
        assert gateways.get_routes(conn, model, now).version == 0  # type: ignore[union-attr]
        shadow = gateways.set_routes(
            conn, model, Routes.shadowing(1, 2, "s", rollout_id=3), Change(now, "c", "go")
        )
        assert gateways.get_routes(conn, model, now) == shadow
        with pytest.raises(ValueError, match="champion only"):
            gateways.finalize(conn, model, shadow.routes, Change(now, "c", "end"))
        done = gateways.finalize(
            conn, model, Routes.champion_only(2, "s", standby=1), Change(now, "c", "end")
        )
    assert (done.version, done.mode, done.champion, done.standby) == (2, "off", 2, 1)
    assert routing_of(served.ws, MODEL) == done
