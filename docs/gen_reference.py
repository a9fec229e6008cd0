"""Write the reference pages at build time, from the code itself (mkdocs-gen-files runs this script).

Nothing here is typed by hand: the CLI page walks the Typer app's command tree, the configuration page
the pydantic models of `pitstop.config`, the HTTP page the gateway's OpenAPI document, the rules page the
`Rule` enum, the metrics page the gateway's Prometheus registry. `tests/test_docs.py`
builds the site and fails when a command, option, key, rule or metric is missing from these pages.

Run it alone (`python docs/gen_reference.py OUT_DIR`) to write the pages into a folder instead.
"""

from __future__ import annotations

import enum
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
# Document this checkout's code, whatever an installed pitstop points at.
sys.path.insert(0, str(SOURCE))


def cell(text: object) -> str:
    """A value that fits in one Markdown table cell."""
    parts = " ".join(str(text).split()).split("`")
    # Outside code spans, `|` would end the cell and `<workspace>` would be read as an HTML tag; inside
    # them the table extension leaves `|` alone and an escape would show.
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def code(text: object) -> str:
    return f"`{text}`" if text not in (None, "") else ""


# --- CLI ---------------------------------------------------------------------------------------------


def _commands(command: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            yield from _commands(sub, (*path, name))


def _default(param: Any) -> str:
    if getattr(param, "required", False):
        return "required"
    default = getattr(param, "default", None)
    if default is None or type(default).__name__ in {"Sentinel", "_Missing", "UNSET"} or callable(default):
        return ""
    if getattr(param, "is_flag", False):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return code(", ".join(map(str, default))) if default else ""
    return code(default)


def _argument_name(param: Any) -> str:
    name = str(param.metavar or param.name).upper()
    return name if param.required else f"[{name}]"


def _param_type(param: Any) -> str:
    """What a parameter takes: click's type name, or (newer Typer, which builds it lazily) the annotation."""
    import enum
    import types
    import typing

    click_type = getattr(param, "type", None)
    if click_type is not None:
        return str(click_type.name)
    annotation = param.type_descriptor.annotation
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = members[0] if len(members) == 1 else annotation
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    names = {str: "text", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def cli_page() -> str:
    import typer.main

    import pitstop.cli

    root = typer.main.get_command(pitstop.cli.app)
    out = [
        "# CLI",
        "",
        "Generated from the `pitstop` command's own definitions (`docs/gen_reference.py`): every command,",
        "argument and option, with its help text and default. Every command also takes `--help`.",
        "Exit codes: [Errors and exit codes](exit-codes.md).",
        "",
    ]
    for path, command in _commands(root, ("pitstop",)):
        name = " ".join(path)
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        arguments = [p for p in params if p.param_type_name == "argument"]
        options = [p for p in params if p.param_type_name != "argument"]
        level = "#" * min(len(path) + 1, 4)
        out += [f"{level} `{name}`", ""]
        if command.help:
            out += [command.help.strip(), ""]
        if getattr(command, "commands", None):
            subs = ", ".join(f"`{name} {sub}`" for sub in sorted(command.commands))
            out += [f"Subcommands: {subs}.", ""]
            if len(path) > 1:
                continue
        if len(path) == 1:
            continue
        usage = " ".join([name, *(_argument_name(p) for p in arguments)] + (["[OPTIONS]"] if options else []))
        out += ["```", usage, "```", ""]
        if params:
            out += ["| argument or option | type | default | what it does |", "|---|---|---|---|"]
            for param in arguments + options:
                names = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
                if param.param_type_name == "argument":
                    names = f"`{_argument_name(param)}`"
                kind = "flag" if getattr(param, "is_flag", False) else _param_type(param)
                if getattr(param, "multiple", False):
                    kind += ", repeatable"
                help_text = getattr(param, "help", None) or ""
                out.append(f"| {names} | {cell(kind)} | {cell(_default(param))} | {cell(help_text)} |")
            out.append("")
    return "\n".join(out)


# --- configuration -----------------------------------------------------------------------------------


def _constraints(field: Any) -> str:
    words = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    found = []
    for item in field.metadata:
        for attribute, sign in words.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{sign} {value}")
    return ", ".join(found)


def _type_name(annotation: Any) -> str:
    import types
    import typing

    names = {timedelta_type(): "duration", int: "whole number", float: "number", str: "text", bool: "boolean"}
    members = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " or ".join("none" if member is type(None) else _type_name(member) for member in members)
    if typing.get_origin(annotation) is typing.Annotated:
        validators = {
            getattr(getattr(item, "func", None), "__name__", "") for item in annotation.__metadata__
        }
        if "parse_memory_limit" in validators:
            return "memory size (`512MiB`, `2GiB`)"
        return _type_name(members[0])
    if typing.get_origin(annotation) is list:
        if _list_item_model(annotation) is not None:
            return "list of sections (their keys below)"
        return f"list of {_type_name(members[0])}"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def timedelta_type() -> type:
    from datetime import timedelta

    return timedelta


def _list_item_model(annotation: Any) -> Any:
    """The section type of a `list[Section]` key, else None."""
    import typing

    from pydantic import BaseModel

    members = typing.get_args(annotation)
    if typing.get_origin(annotation) is list and isinstance(members[0], type):
        return members[0] if issubclass(members[0], BaseModel) else None
    return None


def _item_defaults(model: Any) -> dict[str, Any]:
    """Each key's default as the file writes it, or REQUIRED for a key every item must give."""
    required = [name for name, field in model.model_fields.items() if field.is_required()]
    dumped = model.model_construct(**{name: "" for name in required}).model_dump(mode="json")
    return {name: REQUIRED if name in required else value for name, value in dumped.items()}


REQUIRED = object()  # a key without a default


def config_page() -> str:
    from pydantic import BaseModel

    from pitstop.config import Config, render_default_config

    out = [
        "# Configuration",
        "",
        "Every key of `pitstop.yaml`, with its default and what it does, generated from the pydantic models",
        "in `pitstop.config` (`docs/gen_reference.py`). `pitstop init` writes the same keys and defaults",
        "into a new workspace's `pitstop.yaml`, commented. A duration is a number and a unit (`ms`, `s`,",
        "`m`, `h`, `d`, `w`: `500ms`, `1.5h`, `14d`). How the file is read and validated (types, durations,",
        "errors) is in [Set up a workspace](../how-to/workspace.md).",
        "",
    ]
    defaults = Config().model_dump(mode="json")

    def section(model: type[BaseModel], prefix: str, values: dict[str, Any]) -> None:
        rows = []
        nested = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((name, annotation, values[name]))
                continue
            item = _list_item_model(annotation)
            if item is not None:  # a list of sections (notifications.receivers): its keys get a table
                nested.append((f"{name}[]", item, _item_defaults(item)))
            value = values[name]
            shown = (
                "required"
                if value is REQUIRED
                else code(json.dumps(value) if not isinstance(value, str) else value)
                if value is not None
                else "none"
            )
            kind = _type_name(annotation)
            if any(
                getattr(getattr(item, "func", None), "__name__", "") == "parse_positive_duration"
                for item in field.metadata
            ):
                kind = "duration, longer than zero"
            if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
                kind = "one of " + ", ".join(f"`{member.value}`" for member in annotation)
            limits = _constraints(field)
            rows.append(
                f"| `{prefix}{name}` | {cell(kind)} | {cell(shown)} | {cell(limits)} | "
                f"{cell(field.description or '')} |"
            )
        if rows:
            title = prefix.rstrip(".") or "top level"
            out.extend([f"## `{title}`" if prefix else "## Top level", ""])
            doc = (model.__doc__ or "").strip()
            if doc and prefix:
                out.extend([doc.splitlines()[0], ""])
            out.extend(
                ["| key | type | default | limits | what it does |", "|---|---|---|---|---|", *rows, ""]
            )
        for name, sub, sub_values in nested:
            section(sub, f"{prefix}{name}.", sub_values)

    section(Config, "", defaults)
    out += [
        "## The file `pitstop init` writes",
        "",
        "```yaml",
        render_default_config().rstrip(),
        "```",
        "",
    ]
    return "\n".join(out)


# --- HTTP --------------------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The gateway's OpenAPI document, from an app over an empty workspace (no model is served)."""
    from pitstop import Workspace
    from pitstop.config import default_database_url
    from pitstop.http.app import create_app
    from pitstop.serving import Gateway

    with tempfile.TemporaryDirectory() as folder:
        ws = Workspace.init(Path(folder), database_url=default_database_url(Path(folder)))
        try:
            return create_app(Gateway(ws, poll=False)).openapi()
        finally:
            ws.close()


def _schema_type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_schema_type(item) for item in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    if (
        kind == "object"
        and "additionalProperties" in schema
        and isinstance(schema["additionalProperties"], dict)
    ):
        return f"map of {_schema_type(schema['additionalProperties'])}"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    return str(kind)


def _schema_limits(schema: dict[str, Any]) -> str:
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:  # `string or null`: the limits are the string's
        return "; ".join(filter(None, (_schema_limits(branch) for branch in branches)))
    names = {
        "minLength": "length ≥",
        "maxLength": "length ≤",
        "minimum": "≥",
        "maximum": "≤",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
        "minItems": "items ≥",
        "maxItems": "items ≤",
        "pattern": "pattern",
    }
    return ", ".join(
        f"{label} `{schema[key]}`" if key == "pattern" else f"{label} {schema[key]}"
        for key, label in names.items()
        if key in schema
    )


def http_page() -> str:
    doc = openapi_document()
    out = [
        "# HTTP",
        "",
        f"Generated from the gateway's OpenAPI document ({doc['info']['title']} {doc['info']['version']},",
        "`docs/gen_reference.py`); a running gateway serves the same document at `GET /openapi.json`, with",
        "the features of the models it serves. Write endpoints take a bearer token (security scheme",
        "`bearerToken`): see [Serve models](../how-to/serve.md#tokens). Every error body is",
        "[ErrorBody](#errorbody).",
        "",
        "## Endpoints",
        "",
    ]
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            out += [f"### `{method.upper()} {path}`", ""]
            if operation.get("summary"):
                out += [operation["summary"], ""]
            if operation.get("description"):
                out += [operation["description"].strip(), ""]
            if operation.get("security"):
                optional = any(not entry for entry in operation["security"])
                out += [f"Bearer token: {'optional' if optional else 'required'}.", ""]
            params = operation.get("parameters", [])
            if params:
                out += ["| parameter | in | type | required | what it is |", "|---|---|---|---|---|"]
                for param in params:
                    out.append(
                        f"| `{param['name']}` | {param['in']} | "
                        f"{cell(_schema_type(param.get('schema', {})))} | "
                        f"{'yes' if param.get('required') else 'no'} | {cell(param.get('description', ''))} |"
                    )
                out.append("")
            body = (
                operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            )
            if body:
                out += [f"Body: {_schema_type(body)}.", ""]
            out += ["| status | body | meaning |", "|---|---|---|"]
            for status, response in operation.get("responses", {}).items():
                content: dict[str, dict[str, Any]] = response.get("content", {})
                schema = next(iter(content.values())).get("schema") if content else None
                media = {"application/json": "JSON", "text/plain": "text"}
                shown = _schema_type(schema) if schema else media.get(next(iter(content), ""), "")
                out.append(f"| {status} | {cell(shown)} | {cell(response.get('description', ''))} |")
            out.append("")
    out += ["## Bodies", ""]
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [schema["description"].strip(), ""]
        properties = schema.get("properties", {})
        if properties:
            required = set(schema.get("required", []))
            out += ["| field | type | required | limits | what it is |", "|---|---|---|---|---|"]
            for field, spec in properties.items():
                out.append(
                    f"| `{field}` | {cell(_schema_type(spec))} | {'yes' if field in required else 'no'} | "
                    f"{cell(_schema_limits(spec))} | {cell(spec.get('description', ''))} |"
                )
            out.append("")
        elif "anyOf" in schema or "oneOf" in schema or "type" in schema:
            out += [f"A {_schema_type(schema)}.", ""]
    return "\n".join(out)


# --- rules -------------------------------------------------------------------------------------------


def rules_page() -> str:
    from pitstop.report.words import RULE_WORDS
    from pitstop.rules import Rule

    out = [
        "# Rules",
        "",
        "Every decision pitstop records (an event, a rollout's end, a gate's verdict) names the rule that",
        "made it. This list is generated from the `pitstop.rules.Rule` enum (`docs/gen_reference.py`), with",
        "the words the report and the dashboard add for the rules whose name alone does not say it",
        "(`pitstop.report.words.RULE_WORDS`). What each rule checks, and its error rate, is explained in",
        "[Lifecycle and rules](../explanation/lifecycle.md) and [Statistics](../explanation/statistics.md).",
        "",
        "| rule | decided in | when it fires | in words |",
        "|---|---|---|---|",
    ]
    for rule in Rule:
        words = RULE_WORDS.get(rule, "")
        out.append(f"| `{rule}` | {rule.stage} | {cell(rule.description)} | {cell(words)} |")
    out.append("")
    return "\n".join(out)


# --- metrics -----------------------------------------------------------------------------------------


def metrics() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(exposed name, type, labels, help) of every metric a gateway exports at `GET /metrics`."""
    from prometheus_client import CollectorRegistry

    from pitstop.serving.metrics import GatewayMetrics

    gateway_metrics = GatewayMetrics(CollectorRegistry())
    found = []
    for value in vars(gateway_metrics).values():
        name = getattr(value, "_name", None)
        kind = getattr(value, "_type", None)
        if name is None or kind is None:
            continue
        exposed = f"{name}_total" if kind == "counter" else name
        found.append((exposed, kind, tuple(value._labelnames), value._documentation))
    return sorted(found)


def metrics_page() -> str:
    out = [
        "# Prometheus metrics",
        "",
        "Every metric a gateway exports at `GET /metrics` (Prometheus text format), generated from",
        "`pitstop.serving.metrics.GatewayMetrics` (`docs/gen_reference.py`). Histograms also export",
        "`_bucket`, `_sum` and `_count` series. With `--workers N` the values are summed over the workers;",
        "see [Use PostgreSQL and several gateways](../how-to/postgresql.md#several-workers).",
        "",
        "| metric | type | labels | what it counts |",
        "|---|---|---|---|",
    ]
    for name, kind, labels, documentation in metrics():
        out.append(f"| `{name}` | {kind} | {', '.join(labels)} | {cell(documentation)} |")
    out.append("")
    return "\n".join(out)


PAGES: dict[str, Callable[[], str]] = {
    "reference/cli.md": cli_page,
    "reference/configuration.md": config_page,
    "reference/http.md": http_page,
    "reference/rules.md": rules_page,
    "reference/metrics.md": metrics_page,
}


def main() -> None:
    if __name__ == "__main__":
        out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "reference-pages")
        for name, build in PAGES.items():
            target = out_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(build(), encoding="utf-8")
        return
    import mkdocs_gen_files

    for name, build in PAGES.items():
        with mkdocs_gen_files.open(name, "w") as page:
            page.write(build())
        mkdocs_gen_files.set_edit_path(name, "gen_reference.py")


main()
