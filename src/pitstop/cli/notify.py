"""`pitstop notify …`: the delivery log, a test notification, one delivery pass."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    PitstopTyper,
    WorkspaceOption,
    console,
    emit,
    open_workspace,
    table,
)
from pitstop.formats import fmt_time

if TYPE_CHECKING:
    from pitstop.notify.outbox import Delivery
    from pitstop.notify.sender import Sent

EXIT_FAILED = 1  # `notify test`: a receiver did not accept the test notification

notify_app = PitstopTyper(
    help="Notifications of rollout events to webhooks and Slack: the delivery log, a test, a send pass.",
    no_args_is_help=True,
)


@notify_app.command("log")
def log(
    model: Annotated[str | None, typer.Option("--model", help="only the events of this model")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="show at most this many deliveries")] = 50,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """The delivery log, newest first: each event and receiver, attempts, last answer, status."""
    deliveries = open_workspace(workspace).notification_log(model, limit=limit)
    emit(as_json, [d.to_dict() for d in deliveries], lambda: _render_log(deliveries))


def _render_log(deliveries: list[Delivery]) -> None:
    if not deliveries:
        console.print("no notifications yet")
        return
    out = table(None, "event", "time", "model", "topic", "receiver", "status", "tries", "last answer", "when")
    for d in deliveries:
        when = d.delivered_at if d.delivered_at else d.next_attempt_at or d.last_attempt_at
        answer = d.last_error or ("-" if d.last_status_code is None else f"HTTP {d.last_status_code}")
        status = {"delivered": "[green]delivered[/]", "failed": "[bold red]failed[/]"}.get(d.status, d.status)
        out.add_row(
            str(d.event_id),
            fmt_time(d.created_at),
            d.model or "-",
            d.topic,
            d.receiver,
            status,
            str(d.attempts),
            escape(answer),
            ("next " if d.status == "pending" else "") + fmt_time(when),
        )
    console.print(out)


@notify_app.command("test")
def test(
    receiver: Annotated[
        str | None, typer.Option("--receiver", help="only this receiver (default: every one)")
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a test notification to every receiver (or one) now and show each answer; exit 1 if one failed."""
    results = open_workspace(workspace).notify_test(receiver, actor=by)
    emit(as_json, [r.to_dict() for r in results], lambda: _render_test(results))
    if not all(r.answer.ok for r in results):
        sys.exit(EXIT_FAILED)


def _render_test(results: list[Sent]) -> None:
    out = table(None, "receiver", "url", "result")
    for r in results:
        if r.answer.ok:
            result = f"[green]ok[/] (HTTP {r.answer.status_code})"
        else:
            result = f"[bold red]failed[/]: {escape(r.answer.error or '')}"
        out.add_row(r.receiver, escape(r.url), result)
    console.print(out)


@notify_app.command("send")
def send(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """One delivery pass, then exit (for cron): new events become deliveries; due ones are tried once."""
    report = open_workspace(workspace).send_notifications()
    emit(
        as_json,
        report.to_dict(),
        lambda: console.print(
            f"{report.delivered} delivered, {report.retrying} to retry, {report.failed} failed, "
            f"{report.skipped} left for the next pass ({report.dispatched} new deliveries)"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
