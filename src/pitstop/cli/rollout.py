"""`pitstop rollout …` and `pitstop controller`: stages 3-5."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    PitstopTyper,
    PolicyOption,
    WorkspaceOption,
    console,
    emit,
    open_workspace,
    print_json,
    table,
    whole,
    wrapped,
    write_text,
)
from pitstop.cli.number_list import NumberList
from pitstop.durations import describe_span, parse_positive_duration
from pitstop.errors import UsageError
from pitstop.formats import fmt_time, key_number_items, short_sha256

if TYPE_CHECKING:  # the store, scipy and the rollout machinery load only in the commands that use them
    from pitstop.events import Event
    from pitstop.rollout.actions import RolloutStatus
    from pitstop.rollout.records import StoredRollout

rollout_app = PitstopTyper(
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
    policy: PolicyOption = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a rollout: needs a passed offline gate against the current champion; begins in shadow."""
    stored = open_workspace(workspace).start_rollout(
        model, version, reason=reason, skip_gate=skip_gate, actor=by, policy=policy
    )
    emit(
        as_json,
        stored.to_dict(),
        lambda: console.print(
            f"rollout {stored.state.id} started: {model} v{stored.state.challenger_version} shadows champion "
            f"v{stored.state.champion_version}, policy from {escape(short_sha256(stored.policy_source))}; "
            "the controller decides from here (`pitstop controller`)"
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
    """Phase, share, the policy's source, time, samples vs required, the live comparison and what the
    next check would do."""
    result = open_workspace(workspace).rollout_status(model, rollout)
    emit(as_json, result.to_dict(), lambda: render_status(result))


def _n(value: Any, fmt: str = ".4g") -> str:
    return "-" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_status(result: RolloutStatus) -> None:
    data = result.to_dict()
    share = data["challenger_share"]
    # `step` is the ramp step's index (from 0), as in the JSON and the routing table.
    step = f" step {data['step']}" if data["step"] is not None else ""
    lines = [
        f"champion v{data['champion_version']}  challenger v{data['challenger_version']}",
        f"phase {data['phase']}"
        + (step if data["outcome"] is None else "")
        + (f", challenger share {share:.0%}" if share is not None else ""),
        f"policy from {escape(short_sha256(data['policy_source']))}",
        f"{describe_span(timedelta(hours=result.elapsed_hours))} in this phase"
        + (
            f", at most {describe_span(timedelta(hours=result.remaining_hours))} left"
            if result.remaining_hours is not None
            else ""
        ),
    ]
    if data["outcome"]:
        lines.append(f"[bold]{data['outcome']}[/] at {data['stage']}{step}: {data['reason']}")
    elif data["held"]:
        held = data["held"]
        lines.append(
            f"[bold red]held[/] since {fmt_time(held['since'])} by {held['rule']}: {escape(held['reason'])}"
        )
    if data["outcome"] is None and data["gate"]:
        lines.append(_gate_line(data["gate"]))
    console.print(
        Panel("\n".join(lines), title=f"{data['model']}: rollout {data['rollout_id']}", expand=False)
    )
    from pitstop.report.words import status_words  # the dashboard's words (no plotly)

    words = status_words(result)
    if words is not None:
        console.print(f"[bold]{escape(words.verdict)}[/]")
    for line in result.unavailable:
        console.print(f"[bold red]{escape(line)}[/]")
    if result.spooling:  # after a store outage: the controller judges nothing until these are written
        gateways = ", ".join(result.spooling)
        console.print(f"[bold]waiting: prediction records still spooled by {escape(gateways)}[/]")
    if data["gateways"]:
        render_gateways(data["gateways"], result.rollout.state.phase_routing_version)
    if data["cluster"]:  # way B: the objects live gateways do not show (the stable Service)
        step = data["cluster"]
        console.print(f"cluster: {escape(step['reason'] or '')} ({step['rule']}, {fmt_time(step['time'])})")
    if result.evidence:
        render_evidence(result.evidence)
    if result.errors.messages:
        _render_errors(result)
    if data["comparison"]:
        console.print(comparison_line(data["comparison"], data["phase"], data["evidence"]["paired"]["n"]))
    if words is None:
        return
    if words.progress:
        console.print(words.progress)
    if words.latency:
        console.print(f"latency: {escape(words.latency)}")
    if data["phase"] == "ab_test" and data["plan"]:  # the expected duration; whether a win is plausible
        console.print(data["plan"]["summary"])
    console.print(f"next check: [bold]{escape(words.next_check)}[/]: {escape(words.next_reason)}")


def _gate_line(gate: dict[str, Any]) -> str:
    """`step gate: 2h at least; labelled users 120 of 500 challenger, 300 of 500 champion; approval
    pending` (what leaving the current step still needs)."""
    parts = [f"{describe_span(timedelta(hours=gate['min_duration_hours']))} at least"]
    if gate["min_labelled_users"]:
        have, need = gate["labelled_users"], gate["min_labelled_users"]
        parts.append(
            f"labelled users {have['challenger']} of {need} challenger, {have['champion']} of {need} champion"
        )
    if gate["approval"]:
        approved = gate["approved_by"]
        parts.append(
            f"approved by {escape(approved)} at {fmt_time(gate['approved_at'])}"
            if approved
            else "approval pending (`pitstop rollout approve`)"
        )
    return "step gate: " + "; ".join(parts)


def render_gateways(lines: list[dict[str, Any]], routing_version: int) -> None:
    """The live gateways serving the model and whether each serves the current phase's routing."""
    out = table(
        f"live gateways (this phase: routing v{routing_version})",
        whole("gateway"),
        whole("routing", justify="right"),
        whole("loaded"),
        whole("warmed"),
        whole("acknowledged"),
    )
    for line in lines:
        out.add_row(
            escape(line["gateway"]),
            f"v{line['routing_version']}",
            ", ".join(f"v{v}" for v in line["loaded"]) or "-",
            ", ".join(f"v{v}" for v in line["warmed"]) or "-",
            "yes" if line["acknowledged"] else "[bold red]no[/]",
        )
    console.print(out)


def render_evidence(evidence: dict[str, Any]) -> None:
    out = table(
        "live comparison",
        whole("side"),
        *(
            whole(header, justify="right")
            for header in ("requests", "failures", "failure\nrate", "labelled", "error", "p50\nms", "p99\nms")
        ),
    )
    for name in ("champion", "challenger", "shadow"):
        arm = evidence[name]
        if not arm["requests"]:
            continue
        out.add_row(
            name,
            str(arm["requests"]),
            str(arm["failures"]),
            _pct(arm["failure_rate"]),
            str(arm["labelled"]),
            _n(arm["error_mean"]),
            _n(arm["latency_p50"], ".1f"),
            _n(arm["latency_p99"], ".1f"),
        )
    console.print(out)


def _render_errors(result: RolloutStatus) -> None:
    """The failed calls' messages: most frequent first, with when each was first and last seen."""
    errors = result.errors
    out = table(
        "failed calls in this phase",
        whole("version\nrole"),
        whole("calls", justify="right"),
        whole("first seen\nlast seen"),
        wrapped("error"),
    )
    for message in errors.messages:
        out.add_row(
            f"v{message.version}\n{message.role}",
            str(message.count),
            f"{fmt_time(message.first_seen)}\n{fmt_time(message.last_seen)}",
            escape(message.error),
        )
    console.print(out)
    if errors.more:
        console.print(f"and {errors.more} other error message{'s' if errors.more > 1 else ''} (see --json)")


def comparison_line(comparison: dict[str, Any], phase: str, pairs: int) -> str:
    """`challenger/champion error 0.962 (same 523 requests); paired_t p = 0.031; failure rate …`."""
    where = f" (same {pairs} requests)" if phase == "shadow" else ""
    test = (
        f"{comparison['test']} p = {comparison['p_value']:.3g}"
        if comparison["p_value"] is not None
        else "no test yet"
    )
    rates = comparison["failure_rate"]
    return (
        f"challenger/champion error {_n(comparison['error_ratio'], '.3f')}{where}: "
        f"{_n(comparison['challenger_error'])} vs {_n(comparison['champion_error'])}; {test}; "
        f"failure rate {_pct(rates['challenger'])} vs {_pct(rates['champion'])}"
    )


@rollout_app.command("policy")
def policy(
    model: ModelArg,
    rollout: Annotated[
        int | None, typer.Option("--rollout", help="a past rollout's id (default: latest)")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """The policy the rollout decides by, as YAML, after a comment saying where it came from."""
    from pitstop.policies import policy_yaml

    stored = open_workspace(workspace).rollout_policy(model, rollout)
    s = stored.state
    data = {
        "model": s.model,
        "rollout_id": s.id,
        "policy_source": stored.policy_source,
        "policy": stored.policy.model_dump(mode="json"),
    }
    header = f"# policy of {s.model} rollout {s.id}, from {stored.policy_source}\n"
    emit(as_json, data, lambda: write_text(header + policy_yaml(stored.policy)))


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
    """One row per event, wrapped by field so it reads at 80 columns: when and who; what changed and by
    which rule; why, with the numbers the rule saw under it."""
    out = table(
        f"{model}: history",
        whole("time\nactor"),
        wrapped("event\nfrom → to\nrule"),
        wrapped("reason\nnumbers"),
    )
    out.show_lines = True  # rows of several lines each: a rule between them says where one ends
    for e in events:
        out.add_row(
            f"{fmt_time(e.time)}\nby {escape(e.actor)}",
            escape(_event_lines(e.kind, e.from_state, e.to_state, e.rule)),
            reason_cell(e.reason, e.data),
        )
    console.print(out)


def _event_lines(kind: str, from_state: str | None, to_state: str | None, rule: str | None) -> str:
    """`rollout_transition` / `shadow → ab_test 50%` / `shadow.passed`: the fields each on a line."""
    lines = [kind]
    if from_state or to_state:
        lines.append(f"{from_state or '-'} → {to_state or '-'}")
    if rule:
        lines.append(rule)
    return "\n".join(lines)


def reason_cell(reason: str | None, data: dict[str, Any] | None) -> Group:
    """A reason wrapped between its words, and under it the key numbers (wrapped between numbers)."""
    parts: list[Any] = [Text(reason or "-")]
    if data and key_number_items(data):
        parts.append(key_numbers_cell(data))
    return Group(*parts)


def key_numbers_cell(data: dict[str, Any] | None) -> NumberList:
    """`key_numbers` for a table cell: a narrow column wraps between numbers, never leaving a lone `,`."""
    return NumberList(key_number_items(data))


def _render_changed(stored: StoredRollout) -> None:
    from pitstop.rollout.apply import describe
    from pitstop.rollout.state import challenger_share

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


@rollout_app.command("resume")
def resume(
    model: ModelArg,
    reason: RequiredReason,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Clear a hold: the phase or step goes on, with a fresh evidence window from now."""
    stored = open_workspace(workspace).resume(model, reason=reason, actor=by)
    emit(as_json, stored.to_dict(), lambda: _render_changed(stored))


@rollout_app.command("approve")
def approve(
    model: ModelArg,
    reason: RequiredReason,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve leaving the current ramp step; the next look advances once its other checks are met."""
    stored = open_workspace(workspace).approve(model, reason=reason, actor=by)

    def render() -> None:
        approval = stored.state.approvals[-1]
        console.print(
            f"rollout {stored.state.id} of {stored.state.model}: leaving {approval.share:.0%} approved by "
            f"{escape(approval.by)} at {fmt_time(approval.at)}"
        )

    emit(as_json, stored.to_dict(), render)


@rollout_app.command("list")
def list_(model: ModelArg, workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Every rollout of the model, newest last."""
    items = open_workspace(workspace).rollouts(model)

    def render() -> None:
        out = table(
            f"{model}: rollouts",
            whole("id"),
            whole("challenger\nvs champion"),
            whole("started"),
            whole("outcome\nor phase"),
            wrapped("reason"),
        )
        for r in items:
            s = r.state
            out.add_row(
                str(s.id),
                f"v{s.challenger_version} vs v{s.champion_version}",
                fmt_time(s.started_at),
                s.outcome.value if s.outcome else f"active\n{s.phase.value}" + (" (held)" if s.hold else ""),
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
    from pitstop.cluster.reconcile import cluster_sync
    from pitstop.mlflow_sync import write_back
    from pitstop.notify.background import BackgroundSender
    from pitstop.rollout.controller import Controller, after_each_round

    ws = open_workspace(workspace)
    try:
        every = parse_positive_duration(interval) if interval else None
    except ValueError as error:
        raise UsageError(f"--interval: {error}") from None
    ctl = Controller(ws, interval=every, after_round=after_each_round(write_back(ws), cluster_sync(ws)))
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
                "warnings": [{"rule": w.rule, "reason": w.reason} for w in r.decision.warnings],
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
    notifications = BackgroundSender(ws)  # rollout events reach the receivers while it decides
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(
        f"controller {ctl.holder} deciding every {ctl.interval.total_seconds():g}s (Ctrl-C to stop)"
    )
    notifications.start()
    try:
        ctl.run(stop)
    finally:
        notifications.stop(timeout=5.0)


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
    app.command()(controller)
