"""`pitstop rollout …` and `pitstop controller`: stages 3-5."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.panel import Panel

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    WorkspaceOption,
    console,
    emit,
    fmt_time,
    open_workspace,
    print_json,
    table,
)
from pitstop.durations import describe_span, parse_duration
from pitstop.errors import UsageError
from pitstop.events import Event
from pitstop.rollout.actions import RolloutStatus
from pitstop.rollout.apply import describe
from pitstop.rollout.records import StoredRollout
from pitstop.rollout.state import challenger_share

rollout_app = typer.Typer(
    help="Rollouts: shadow, A/B test, ramp, promotion — and the manual overrides.", no_args_is_help=True
)
ModelArg = Annotated[str, typer.Argument(help="model name")]
RequiredReason = Annotated[str, typer.Option("--reason", help="why: recorded with the event")]


@rollout_app.command("start")
def start(
    model: ModelArg,
    version: Annotated[str, typer.Argument(help="the challenger version")],
    reason: Annotated[str | None, typer.Option(help="why; required with --skip-gate")] = None,
    skip_gate: Annotated[
        bool, typer.Option("--skip-gate", help="start without a passed offline gate (recorded)")
    ] = False,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a rollout: needs a passed offline gate against the current champion; begins in shadow."""
    stored = open_workspace(workspace).start_rollout(
        model, version, reason=reason, skip_gate=skip_gate, actor=by
    )
    emit(
        as_json,
        stored.to_dict(),
        lambda: console.print(
            f"rollout {stored.state.id} started: {model} v{stored.state.challenger_version} shadows champion "
            f"v{stored.state.champion_version}; the controller decides from here (`pitstop controller`)"
        ),
    )


@rollout_app.command("status")
def status(
    model: ModelArg,
    rollout: Annotated[
        int | None, typer.Option("--rollout", help="a past rollout's id (default: latest)")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Phase, share, time, samples vs required, the live comparison and what the next check would do."""
    result = open_workspace(workspace).rollout_status(model, rollout)
    emit(as_json, result.to_dict(), lambda: render_status(result))


def _n(value: Any, fmt: str = ".4g") -> str:
    return "-" if value is None else format(value, fmt)


def render_status(result: RolloutStatus) -> None:
    data = result.to_dict()
    share = data["challenger_share"]
    lines = [
        f"champion v{data['champion_version']}  challenger v{data['challenger_version']}",
        f"phase {data['phase']}"
        + (f" step {data['step'] + 1}" if data["step"] is not None else "")
        + (f", challenger share {share:.0%}" if share is not None else ""),
        f"{describe_span(timedelta(hours=result.elapsed_hours))} in this phase"
        + (
            f", at most {describe_span(timedelta(hours=result.remaining_hours))} left"
            if result.remaining_hours is not None
            else ""
        ),
    ]
    if data["outcome"]:
        lines.append(f"[bold]{data['outcome']}[/] at {data['stage']}: {data['reason']}")
    console.print(
        Panel("\n".join(lines), title=f"{data['model']}: rollout {data['rollout_id']}", expand=False)
    )
    if result.evidence:
        _render_evidence(result.evidence, data.get("plan"))
    if result.next_check:
        check = result.next_check
        console.print(f"next check: [bold]{check['action']}[/] ({check['rule']}): {check['reason']}")


def _render_evidence(evidence: dict[str, Any], plan: dict[str, Any] | None) -> None:
    out = table("live comparison", "side", "requests", "labelled", "error", "failures", "p50 ms", "p99 ms")
    for name in ("champion", "challenger", "shadow"):
        arm = evidence[name]
        if not arm["requests"]:
            continue
        out.add_row(
            name,
            str(arm["requests"]),
            str(arm["labelled"]),
            _n(arm["error_mean"]),
            f"{arm['failures']}",
            _n(arm["latency_p50"], ".1f"),
            _n(arm["latency_p99"], ".1f"),
        )
    console.print(out)
    paired = evidence["paired"]
    if paired["n"]:
        ratio = paired["challenger_mean"] / paired["champion_mean"] if paired["champion_mean"] else None
        console.print(
            f"same requests (shadow): {paired['n']} labelled pairs, challenger/champion error "
            f"{_n(ratio, '.3f')}"
        )
    if plan and plan.get("n_challenger"):
        console.print(f"A/B plan: {plan['n_challenger']} challenger + {plan['n_champion']} champion units")


@rollout_app.command("history")
def history(
    model: ModelArg,
    rollout: Annotated[int | None, typer.Option("--rollout", help="only this rollout's events")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every event of the model: time, actor, from → to, the rule that fired, the numbers it saw."""
    events = open_workspace(workspace).events(model, rollout_id=rollout)
    emit(as_json, [e.to_dict() for e in events], lambda: render_history(model, events))


def render_history(model: str, events: list[Event]) -> None:
    out = table(f"{model}: history", "time", "event", "actor", "from → to", "rule", "reason", "numbers")
    for e in events:
        change = f"{e.from_state or '-'} → {e.to_state or '-'}"
        out.add_row(
            fmt_time(e.time), e.kind, e.actor, change, e.rule or "-", e.reason or "", key_numbers(e.data)
        )
    console.print(out)


def key_numbers(data: dict[str, Any] | None) -> str:
    """The plain numbers a rule saw (nested evidence stays in `--json`), one `name=value` per line."""
    scalars = {
        k: v
        for k, v in (data or {}).items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "elapsed_hours"
    }
    return "\n".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in scalars.items())


def _render_changed(stored: StoredRollout) -> None:
    s = stored.state
    where = describe(s, challenger_share(s, stored.policy))  # as the history's `to` column says it
    console.print(f"rollout {s.id} of {s.model}: now {where}")


@rollout_app.command("promote")
def promote(
    model: ModelArg,
    reason: RequiredReason,
    to_end: Annotated[bool, typer.Option("--to-end", help="complete the promotion now")] = False,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Advance the active rollout one phase or step by hand (recorded); --to-end promotes now."""
    stored = open_workspace(workspace).promote(model, reason=reason, to_end=to_end, actor=by)
    emit(as_json, stored.to_dict(), lambda: _render_changed(stored))


@rollout_app.command("rollback")
def rollback(
    model: ModelArg,
    reason: RequiredReason,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """All traffic back to the champion at once; after a promotion, restore the previous champion."""
    stored = open_workspace(workspace).rollback(model, reason=reason, actor=by)
    emit(as_json, stored.to_dict(), lambda: _render_changed(stored))


@rollout_app.command("abort")
def abort(
    model: ModelArg,
    reason: RequiredReason,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """End the active rollout, keeping the champion."""
    stored = open_workspace(workspace).abort(model, reason=reason, actor=by)
    emit(as_json, stored.to_dict(), lambda: _render_changed(stored))


@rollout_app.command("list")
def list_(model: ModelArg, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Every rollout of the model, newest last."""
    items = open_workspace(workspace).rollouts(model)

    def render() -> None:
        out = table(
            f"{model}: rollouts", "id", "challenger", "champion", "started", "phase", "outcome", "reason"
        )
        for r in items:
            s = r.state
            out.add_row(
                str(s.id),
                f"v{s.challenger_version}",
                f"v{s.champion_version}",
                fmt_time(s.started_at),
                s.phase.value,
                s.outcome.value if s.outcome else "active",
                s.reason or "",
            )
        console.print(out)

    emit(as_json, [r.to_dict() for r in items], render)


def controller(
    once: Annotated[bool, typer.Option("--once", help="one round of decisions, then exit")] = False,
    interval: Annotated[
        str | None, typer.Option(help="time between rounds, e.g. 10s (default: pitstop.yaml)")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the decision loop; only one controller acts at a time (a lease in the store)."""
    from pitstop.rollout.controller import Controller

    ws = open_workspace(workspace)
    try:
        every = parse_duration(interval) if interval else None
    except ValueError as error:
        raise UsageError(f"--interval: {error}") from None
    ctl = Controller(ws, interval=every)
    if once:
        results = ctl.tick()
        leader = ctl.is_leader
        ctl.release()
        decisions = [
            {
                "model": r.model,
                "rollout_id": r.rollout_id,
                "action": r.decision.action.value,
                "rule": r.decision.rule,
                "reason": r.decision.reason,
                "applied": r.applied,
            }
            for r in results
        ]
        data = {"leader": leader, "decisions": decisions}
        if as_json:
            print_json(data)
            return
        if not leader:
            console.print("another controller holds the lease: nothing done")
        for item in decisions:
            console.print(
                f"{item['model']} rollout {item['rollout_id']}: {item['action']} ({item['rule']}) "
                f"{item['reason']}"
            )
        if not results and leader:
            console.print("no active rollouts")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(
        f"controller {ctl.holder} deciding every {ctl.interval.total_seconds():g}s (Ctrl-C to stop)"
    )
    ctl.run(stop)


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
    app.command()(controller)
