"""`pitstop policy …`: named rollout policies kept in the store, in revisions."""

from __future__ import annotations

from pathlib import Path
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
    write_text,
)
from pitstop.formats import fmt_time

if TYPE_CHECKING:
    from pitstop.policies import NamedPolicy

policy_app = PitstopTyper(
    help="Named rollout policies: `rollout start --policy NAME` decides by one instead of pitstop.yaml's.",
    no_args_is_help=True,
)
NameArg = Annotated[str, typer.Argument(help="policy name (lowercase letters, digits, '.', '_', '-')")]


@policy_app.command("add")
def add(
    name: NameArg,
    # readable=False: the API's own one-line error speaks for an unreadable file, not Typer's usage box
    file: Annotated[
        Path,
        typer.Argument(
            help="policy YAML: some of gate, shadow, ab_test, guardrails, ramp, health "
            "(the rest from pitstop.yaml)",
            readable=False,
        ),
    ],
    description: Annotated[
        str | None, typer.Option(help="what the policy is for; recorded with the revision")
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a policy file and keep it as the next revision of NAME (the same policy, text and
    description as the latest revision add nothing)."""
    named, created = open_workspace(workspace).add_policy(name, file, description=description, actor=by)
    data = {**named.to_dict(), "created": created}
    emit(
        as_json,
        data,
        lambda: console.print(
            (
                f"added policy {named.ref}"
                if created
                else f"policy {named.ref} unchanged (the same policy, text and description)"
            )
            + f": sha256 {named.sha256[:12]}…; start a rollout with it: "
            f"`pitstop rollout start MODEL VERSION --policy {named.name}`"
        ),
    )


@policy_app.command("list")
def list_(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Every named policy: its latest revision, who added it and when."""
    found = open_workspace(workspace).list_policies()
    emit(as_json, [named.to_dict() for named in found], lambda: _render_list(found))


def _render_list(found: list[NamedPolicy]) -> None:
    if not found:
        console.print("no named policies yet; add one with `pitstop policy add NAME FILE`")
        return
    out = table("named policies", "name", "revision", "added", "by", "sha256", "description")
    for named in found:
        out.add_row(
            named.name,
            f"{named.revision} of {named.revisions}",
            fmt_time(named.created_at),
            escape(named.created_by),
            named.sha256[:12],
            escape(named.description or ""),
        )
    console.print(out)


@policy_app.command("show")
def show(
    name: NameArg,
    revision: Annotated[
        int | None, typer.Option("--revision", min=1, help="this revision (default: the latest)")
    ] = None,
    text: Annotated[
        bool,
        typer.Option("--text", help="the text the revision was added from, instead of the whole policy"),
    ] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """A named policy as YAML: every key a rollout started with it decides by (or, --text, the file it
    was added from), after a comment saying which revision, by whom and when."""
    named = open_workspace(workspace).get_policy(name, revision)
    emit(as_json, named.to_dict(), lambda: write_text(_yaml(named, text)))


def _yaml(named: NamedPolicy, text: bool) -> str:
    from pitstop.policies import policy_yaml

    header = [
        f"# policy {named.ref}, added {fmt_time(named.created_at)} by {named.created_by}",
        f"# sha256 of the text it was added from: {named.sha256}",
    ]
    if named.description:
        header.append(f"# {' '.join(named.description.split())}")
    body = named.source_text if text else policy_yaml(named.policy)
    return "\n".join(header) + "\n" + body + ("" if body.endswith("\n") else "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
