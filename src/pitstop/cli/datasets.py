"""`pitstop dataset …`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    PitstopTyper,
    WorkspaceOption,
    console,
    emit,
    open_workspace,
    split_list,
    table,
    whole,
)
from pitstop.formats import fmt_time

if TYPE_CHECKING:
    from pitstop.datasets import DatasetSnapshot

dataset_app = PitstopTyper(
    help="Dataset snapshots: content-hashed copies of CSV/Parquet files.", no_args_is_help=True
)


@dataset_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="dataset name")],
    # readable=False: the API's own one-line error speaks for an unreadable file, not Typer's usage box
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file", readable=False)],
    time_column: Annotated[str | None, typer.Option(help="column holding each row's time")] = None,
    categorical: Annotated[
        str | None,
        typer.Option(help="comma-separated columns to load as pandas `category` (a CSV cannot say so)"),
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a file as a snapshot (identical content returns the existing one)."""
    snapshot, created = open_workspace(workspace).add_dataset(
        name, path, time_column=time_column, categorical=split_list(categorical), actor=by
    )
    data = {**snapshot.to_dict(), "created": created}
    emit(
        as_json,
        data,
        lambda: console.print(
            f"{'added' if created else 'unchanged, already'} {snapshot.ref}: {snapshot.rows} rows, "
            f"sha256 {snapshot.sha256[:12]}…"
        ),
    )


@dataset_app.command("list")
def list_(
    name: Annotated[str | None, typer.Argument(help="only this dataset's versions")] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List dataset snapshots."""
    snapshots = open_workspace(workspace).datasets(name)
    emit(as_json, [s.to_dict() for s in snapshots], lambda: _render(snapshots))


def _render(snapshots: list[DatasetSnapshot]) -> None:
    out = table(
        "datasets",
        whole("snapshot\nsha256"),
        whole("rows", justify="right"),
        whole("time from\ntime to"),
        whole("added"),
    )
    for s in snapshots:
        out.add_row(
            f"{s.ref}\n{s.sha256[:12]}",
            str(s.rows),
            f"{fmt_time(s.time_min)}\n{fmt_time(s.time_max)}",
            fmt_time(s.created_at),
        )
    console.print(out)


@dataset_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one snapshot: hash, rows, columns and types, time range."""
    s = open_workspace(workspace).dataset(ref)

    def render() -> None:
        out = table(f"dataset {s.ref}", "field", "value")
        for key, value in (
            ("sha256", s.sha256),
            ("rows", s.rows),
            ("format", s.format),
            ("time column", s.time_column or "-"),
            ("time range", f"{fmt_time(s.time_min)} .. {fmt_time(s.time_max)}"),
            ("stored copy", s.uri),
            ("source", s.source_path),
            ("added", f"{fmt_time(s.created_at)} by {s.created_by}"),
        ):
            out.add_row(key, str(value))
        console.print(out)
        cols = table("columns", "column", "type")
        for column, dtype in s.columns.items():
            cols.add_row(column, dtype)
        console.print(cols)

    emit(as_json, s.to_dict(), render)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
