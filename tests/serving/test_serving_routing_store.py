"""Routing tables in the store and `pitstop route`: versions, events, salts, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pitstop.errors import NotFoundError, UsageError
from pitstop.serving.routing_store import current_routing, route, routing_of, write_routing
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
        (None, "v1 shadow", "ana", "try it", "manual"),
        ("v1 shadow", "v2 split 10%", "ana", "a/b", "manual"),
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


def test_write_routing_runs_in_the_callers_transaction(served: Served) -> None:
    model = served.ws.model(MODEL)
    with pytest.raises(RuntimeError), served.ws.writing() as conn:
        write_routing(
            conn,
            model,
            champion=1,
            challenger=2,
            challenger_share=1.0,
            shadow=1,
            salt="s",
            standby=None,
            rollout_id=7,
            step=4,
            now=served.ws.clock.now(),
            actor="controller",
            reason="ramp 100%",
        )
        raise RuntimeError("the controller's own write failed")
    assert routing_of(served.ws, MODEL).version == 0  # type: ignore[union-attr]
    with served.ws.writing() as conn:
        table = write_routing(
            conn,
            model,
            champion=1,
            challenger=2,
            challenger_share=1.0,
            shadow=1,
            salt="s",
            rollout_id=7,
            step=4,
            now=served.ws.clock.now(),
            actor="controller",
            reason="ramp 100%",
            rule="ramp_step",
            data={"p99": 0.01},
        )
    assert (table.mode, table.shadow_for(2), table.rollout_id, table.step) == ("split", 1, 7, 4)
    (event,) = [e for e in served.ws.events(MODEL) if e.kind == "routing_changed"]
    assert (event.rollout_id, event.rule, event.data["p99"]) == (7, "ramp_step", 0.01)


IMPOSSIBLE: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"mode": "shadow", "challenger": 1}, UsageError, "version 1 is the champion"),
    ({"mode": "shadow", "challenger": 9}, NotFoundError, "has no version 9"),
    ({"mode": "split", "challenger": 2, "share": 0.0}, UsageError, "share in \\(0, 1\\]"),
    ({"mode": "split", "challenger": 2, "share": 1.5}, UsageError, "share in \\(0, 1\\]"),
    ({"mode": "shadow", "challenger": 2, "share": 0.1}, UsageError, "split only"),
    ({"mode": "shadow"}, UsageError, "name the --challenger"),
    ({"mode": "off", "challenger": 2}, UsageError, "takes neither"),
    ({"mode": "shadow", "challenger": 2, "reason": " "}, UsageError, "--reason"),
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
    assert "v1 shadow" in shadow.stdout
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
