"""`pitstop simulate`: replay recorded traffic through the real routing, models and controller, on a
simulated clock (batched, or through the gateway)."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pitstop.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    open_workspace,
    print_json,
    table,
    whole,
    wrapped,
)
from pitstop.cli.rollout import reason_cell
from pitstop.durations import parse_duration, parse_positive_duration
from pitstop.errors import UsageError
from pitstop.formats import fmt_time


def simulate(
    model: Annotated[str, typer.Argument(help="model name")],
    champion: Annotated[str, typer.Option(help="the champion version during the recorded period")],
    challenger: Annotated[str, typer.Option(help="the version to try")],
    traffic: Annotated[
        Path, typer.Option(help="CSV/Parquet: time, user_id, features, label [, request_id, label_time]")
    ],
    policy: Annotated[
        Path | None, typer.Option(help="a pitstop.yaml whose policy to try (default: the workspace's)")
    ] = None,
    interval: Annotated[str, typer.Option(help="simulated time between controller looks")] = "5m",
    concurrency_window: Annotated[
        str, typer.Option(help="requests this close together are in flight at once")
    ] = "1s",
    keep: Annotated[
        Path | None, typer.Option(help="keep the replay store in this folder (default: a temp folder)")
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="also write the HTML rollout report here (replays through the gateway, to log it)"),
    ] = None,
    through_gateway: Annotated[
        bool,
        typer.Option(
            "--through-gateway",
            help="send each request through the gateway and log it (slower; what a report reads)",
        ),
    ] = False,
    timed_calls: Annotated[
        int | None,
        typer.Option(
            help="batched: real model calls timed per look interval, role and arm, for the latency "
            "rules (default 8; more: latency rules sooner, a slower replay)",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="seed of the routing salt: the same seed splits the same users")
    ] = 0,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Replay a traffic table through shadow, A/B test and ramp with a simulated clock. Exit 0 if promoted."""
    from pitstop.config import load_config
    from pitstop.registry import Task
    from pitstop.replay import load_traffic
    from pitstop.replay import simulate as run_simulation

    ws = open_workspace(workspace)
    info = ws.model(model)
    features = info.features or ws.version(model, champion).lineage.features
    frame = load_traffic(traffic, features, info.classes if info.task is Task.MULTICLASS else None)
    if policy is not None and not policy.is_file():
        raise UsageError(f"--policy {policy}: no such file")
    chosen = load_config(policy).policy if policy is not None else None
    every = _duration("--interval", interval, parse_positive_duration)
    window = _duration("--concurrency-window", concurrency_window, parse_duration)
    _check_keep(keep)
    bar = Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=as_json,
    )
    task = bar.add_task("replay", total=len(frame), start=False)

    def progress(done: int, total: int) -> None:
        bar.start()  # shown once the replay runs, never before an input error
        bar.start_task(task)
        bar.update(task, completed=done)

    with contextlib.ExitStack() as stack:
        folder = keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pitstop-replay-")))
        stack.callback(bar.stop)
        result = run_simulation(
            ws,
            model,
            champion=champion,
            challenger=challenger,
            traffic=frame,
            policy=chosen,
            interval=every,
            concurrency_window=window,
            workdir=folder,
            progress=progress,
            seed=seed,
            through_gateway=through_gateway or report is not None,
            **({} if timed_calls is None else {"timed_calls": timed_calls}),
        )
        data: dict[str, Any] = result.to_dict()
        if report is not None:
            data["report"] = str(_write_report(result.workspace, model, result.rollout_id, report))
    if keep is None:
        data.pop("workspace", None)  # deleted with the temporary folder
    if as_json:
        print_json(data)
    else:
        _render(data)
    if not result.promoted:
        raise typer.Exit(1)


def _duration(option: str, text: str, parse: Callable[[str], timedelta]) -> timedelta:
    try:
        return parse(text)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def _check_keep(keep: Path | None) -> None:
    """`--keep` names a new or empty folder (checked before the replay, which takes a while)."""
    if keep is None or not keep.exists():
        return
    if not keep.is_dir():
        raise UsageError(f"--keep {keep}: not a folder; give a new or empty folder for the replay")
    if any(keep.iterdir()):
        raise UsageError(f"--keep {keep}: the folder is not empty; give a new or empty folder for the replay")


def _write_report(folder: Path, model: str, rollout_id: int, out: Path) -> Path:
    from pitstop.replay import replay_store_url
    from pitstop.report import write_report
    from pitstop.workspace import Workspace

    with Workspace(folder, database_url=replay_store_url(folder)) as replay_ws:
        written: Path = write_report(replay_ws, model, out, rollout_id=rollout_id)
    return written


def _render(data: dict[str, Any]) -> None:
    out = table(
        f"replay: {data['model']} v{data['challenger']} vs champion v{data['champion']}",
        whole("time"),
        wrapped("from → to\nrule"),
        wrapped("reason\nnumbers"),
    )
    out.show_lines = True
    for item in data["timeline"]:
        out.add_row(
            fmt_time(item["time"]),
            f"{item['from']} → {item['to']}\n{item['rule'] or '-'}",
            reason_cell(item["reason"], item["numbers"]),
        )
    console.print(out)
    console.print(
        f"[bold]{data['outcome']}[/] at {data['stage']}: {data['reason']}\n"
        f"{data['requests']} requests ({data['served']['challenger']} served by the challenger, "
        f"{data['failed_requests']} failed), {data['labels']} labels, "
        f"{data['simulated_hours']:.1f} simulated hours in {data['wall_seconds']:.1f} s, "
        f"{'batched' if data['way'] == 'batched' else 'through the gateway'}"
        f" ({data['requests_per_second']:,.0f} requests/s, "
        f"peak memory {data['peak_rss_bytes'] / 2**20:,.0f} MiB)"
    )
    if data["way"] == "batched":
        console.print(_latency_note(data))
    if data.get("report"):
        console.print(f"report: {data['report']}")


def _latency_note(data: dict[str, Any]) -> str:
    """When the latency rules could act in a batched replay, which times a sample of calls only."""
    timed = f"{data['champion_calls_timed']:,} champion calls timed"
    if data["latency_rules_from"] is None:
        return (
            f"[yellow]latency rules never in force[/]: {timed}, too few to bound its p99; "
            "time more with --timed-calls, or replay --through-gateway"
        )
    return f"latency rules in force from {fmt_time(data['latency_rules_from'])} ({timed})"


def register(app: typer.Typer) -> None:
    app.command()(simulate)
