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
    whole,
    wrapped,
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
    # short fields stay whole, two to a cell at 80 columns; only the answer wraps (between words)
    out = table(
        None, whole("event\nmodel"), whole("topic\nreceiver"), whole("status"), wrapped("last answer")
    )
    for d in deliveries:
        answer = d.last_error or ("-" if d.last_status_code is None else f"HTTP {d.last_status_code}")
        out.add_row(
            f"{d.event_id}\n{escape(d.model or '-')}",
            f"{d.topic}\n{escape(d.receiver)}",
            _status(d),
            escape(answer),
        )
    console.print(out)


def _status(d: Delivery) -> str:
    """`delivered` and when; `pending`, its tries and the next; `failed` and its tries, on two lines."""
    tries = f"{d.attempts} {'try' if d.attempts == 1 else 'tries'}"
    if d.status == "delivered":
        return f"[green]delivered[/] ({tries})\n{fmt_time(d.delivered_at)}"
    if d.status == "failed":
        return f"[bold red]failed[/] ({tries})\nlast {fmt_time(d.last_attempt_at)}"
    return f"pending ({tries})\nnext {fmt_time(d.next_attempt_at)}"


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
