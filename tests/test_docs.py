"""The documentation site (issue 19): it builds strictly, its reference covers the code, its examples run.

One build per session (`mkdocs build --strict` into a temporary folder, in a subprocess: the same
command as `make docs`), shared by the pytest-xdist workers. The reference checks take their names
from the code, not from `docs/gen_reference.py`, so a page the generator stops writing, a command it
skips or a key it drops fails here. Every ```` ```python ```` block of `docs/` runs, page by page in
order, in a temporary folder holding the demo's data files, and so does the README's; one preceded
by `<!-- docs: no-run -->` does not.
"""

from __future__ import annotations

import ast
import fcntl
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NO_RUN = "<!-- docs: no-run -->"
QUIET = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
RULE_NAME = re.compile(r"(?:ab|shadow|guardrail|manual|gate|ramp|leakage|rollout|standby)\.[a-z][a-z0-9_]*")


def _environment() -> dict[str, str]:
    """This checkout's code, and no workspace or store from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if k not in {"PITSTOP_DATABASE_URL", "PITSTOP_WORKSPACE"}}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, **QUIET}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site, built once even when pytest-xdist spreads these tests over several workers."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the session's folder, which every worker's folder is in
    out = shared / "docs-site"
    with open(shared / "docs-site.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds; the others wait, then reuse it
        if not (out / "index.html").exists():
            shutil.rmtree(out, ignore_errors=True)
            command = ["mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)]
            build = subprocess.run(
                [sys.executable, "-m", *command],
                cwd=ROOT,
                env=_environment(),
                capture_output=True,
                text=True,
                timeout=240,
            )
            if build.returncode != 0:
                shutil.rmtree(out, ignore_errors=True)
            assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}\n{build.stderr}"
    return out


def _page(site: Path, name: str) -> str:
    path = site / name / "index.html"
    assert path.exists(), f"the site has no page {name}/"
    return path.read_text(encoding="utf-8")


def _text(markup: str) -> str:
    inline = re.sub(r"</?(?:code|a|em|strong|span)\b[^>]*>", "", markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", inline)).split())


def _sections(markup: str) -> dict[str, str]:
    """Each heading's id → the text up to the next heading."""
    parts = re.split(r'<h[1-6][^>]* id="([^"]+)"', markup)
    return {parts[i]: _text(parts[i + 1]) for i in range(1, len(parts) - 1, 2)}


def _word(name: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _rows(markup: str) -> list[str]:
    return [_text(row) for row in re.findall(r"<tr>(.*?)</tr>", markup, re.S)]


# --- the reference covers the code --------------------------------------------------------------------


def _commands() -> Iterator[tuple[str, Any]]:
    import typer.main

    import pitstop.cli

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            if not sub.hidden:
                yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(pitstop.cli.app), "pitstop")


def test_cli_reference_has_every_command_and_option(site: Path) -> None:
    sections = _sections(_page(site, "reference/cli"))
    commands = list(_commands())
    assert len(commands) > 30, "the command tree was not walked"
    missing = []
    for path, command in commands:
        section = sections.get(path.replace(" ", "-"))
        if section is None:
            missing.append(path)
            continue
        for param in command.params:
            if param.hidden:
                continue
            names = param.opts if param.param_type_name == "option" else [str(param.name).upper()]
            missing += [f"{path} {name}" for name in names if not _word(name, section)]
            help_text = " ".join((getattr(param, "help", None) or "").replace("`", "").split())
            if param.param_type_name == "option" and help_text not in section:
                missing.append(f"{path} {param.opts[0]}: its help text")
    assert not missing, f"not in the CLI reference: {missing}"


def test_configuration_reference_has_every_key_with_its_default(site: Path) -> None:
    from pydantic import BaseModel

    from pitstop.config import Config

    rows = {row.split()[0]: row for row in _rows(_page(site, "reference/configuration")) if row}
    missing = []

    def check(model: type[BaseModel], values: dict[str, Any], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = prefix + name
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                check(annotation, values[name], key + ".")
                continue
            row = rows.get(key)
            default = values[name]
            shown = (
                "none" if default is None else default if isinstance(default, str) else json.dumps(default)
            )
            if row is None or shown not in row or (field.description and field.description not in row):
                missing.append(key)

    check(Config, Config().model_dump(mode="json"), "")
    assert len(rows) > 50, "the configuration tables were not found"
    assert not missing, f"not in the configuration reference with its default and description: {missing}"


def test_http_reference_has_every_endpoint_and_body(site: Path, tmp_path: Path) -> None:
    from pitstop import Workspace
    from pitstop.config import default_database_url
    from pitstop.http.app import create_app
    from pitstop.serving import Gateway

    ws = Workspace.init(tmp_path, database_url=default_database_url(tmp_path))
    try:
        document = create_app(Gateway(ws, poll=False)).openapi()
    finally:
        ws.close()
    text = _text(_page(site, "reference/http"))
    endpoints = [f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item]
    bodies = list(document["components"]["schemas"])
    assert len(endpoints) > 10
    missing = [name for name in endpoints + bodies if name not in text]
    assert not missing, f"not in the HTTP reference: {missing}"


def test_rules_reference_has_every_rule(site: Path) -> None:
    from pitstop.report.words import RULE_WORDS
    from pitstop.rules import Rule

    assert {"ab.win", "shadow.passed", "guardrail.latency_p99"} <= set(Rule)
    rows = {row.split()[0]: row for row in _rows(_page(site, "reference/rules")) if row}
    missing = sorted(rule for rule in Rule if rule not in rows)
    undescribed = sorted(rule for rule in Rule if rule in rows and _plain(rule.description) not in rows[rule])
    wordless = sorted(rule for rule, words in RULE_WORDS.items() if rule in rows and words not in rows[rule])
    assert not missing, f"rules not in the rules reference: {missing}"
    assert not undescribed, f"rules whose description is not in the rules reference: {undescribed}"
    assert not wordless, f"rules whose words are not in the rules reference: {wordless}"


def _plain(markdown: str) -> str:
    """Markdown as the page's text shows it: code spans without their backticks, spaces collapsed."""
    return " ".join(markdown.replace("`", "").split())


def test_rule_names_are_written_only_in_the_rule_enum() -> None:
    """A rule name as a string literal outside `pitstop.rules` would be a rule the reference may miss."""
    from pitstop.rules import Rule

    dotted = {rule.value for rule in Rule if "." in rule.value}
    enum_module = ROOT / "src" / "pitstop" / "rules.py"
    found = []
    for path in sorted((ROOT / "src" / "pitstop").rglob("*.py")):
        if path == enum_module:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and (text in dotted or RULE_NAME.fullmatch(text)):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text!r}")
    assert not found, f"rule names written outside pitstop.rules (use the Rule enum): {found}"


def test_metrics_reference_has_every_metric(site: Path) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from pitstop.serving.metrics import GatewayMetrics

    registry = CollectorRegistry()
    GatewayMetrics(registry)
    exported = set(re.findall(r"^# TYPE (\S+) ", generate_latest(registry).decode(), re.M))
    exported = {name for name in exported if not name.endswith("_created")}  # a counter's creation time
    assert len(exported) > 20
    rows = {row.split()[0]: row for row in _rows(_page(site, "reference/metrics")) if row}
    missing = sorted(name for name in exported if name not in rows)
    assert not missing, f"metrics not in the metrics reference: {missing}"


def test_python_api_reference_is_rendered(site: Path) -> None:
    text = _text(_page(site, "reference/python-api"))
    for name in ("Workspace", "add_dataset", "start_rollout", "point_in_time_join", "ab_verdict", "retrain"):
        assert name in text, f"{name} is not in the Python API reference"


# --- the examples run ----------------------------------------------------------------------------------


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line, code) of each ```python block of a page that is not marked `<!-- docs: no-run -->`."""
    blocks = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = re.match(r"^(\s*)```python\s*$", line)
        if fence is None:
            index += 1
            continue
        indent = fence.group(1)
        start = index + 1
        end = start
        while not lines[end].startswith(f"{indent}```"):
            end += 1
        previous = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
        if previous.strip() != NO_RUN:
            blocks.append((start + 1, "\n".join(text.removeprefix(indent) for text in lines[start:end])))
        index = end + 1
    return blocks


PAGES = sorted(
    page
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]
    if re.search(r"^\s*```python\s*$", page.read_text(encoding="utf-8"), re.M)
)

RUNNER = """
import json, sys

def main():
    page, blocks = json.loads(open(sys.argv[1]).read())
    namespace = {"__name__": "__docs__"}
    for line, source in blocks:
        exec(compile(source, f"{page}, block at line {line}", "exec"), namespace)

if __name__ == "__main__":
    main()
"""


@pytest.fixture(scope="module")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's data files, as `pitstop demo -w DIR` leaves them in DIR/data (fewer rows: faster)."""
    import pandas as pd

    from pitstop.demo.data import TIME, generate_deliveries
    from pitstop.demo.story import DEMO_NOW, World

    world = World(DEMO_NOW)
    frame = generate_deliveries(8_000, world.scenario(), seed=7)
    folder = tmp_path_factory.mktemp("example-data")
    history = frame[frame[TIME] < world.test_start]
    test = frame[frame[TIME] >= world.test_start]
    assert isinstance(history, pd.DataFrame) and isinstance(test, pd.DataFrame)
    history.to_csv(folder / "deliveries.csv", index=False)
    test.to_csv(folder / "deliveries-test.csv", index=False)
    return folder


def test_every_page_with_python_has_a_runnable_block() -> None:
    assert PAGES, "no page has a python block"
    runnable = {page.relative_to(ROOT): python_blocks(page) for page in PAGES}
    assert runnable[Path("README.md")], "the README's Python example must run"
    assert any(runnable.values())
    for page in DOCS.rglob("*.md"):
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines[:-1], start=1):
            if line.strip() == NO_RUN:
                assert lines[number].strip() == "```python", (
                    f"{page}:{number}: {NO_RUN} must precede a ```python"
                )


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_python_examples_run(page: Path, example_data: Path, tmp_path: Path) -> None:
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip(f"every python block of {page.name} is marked {NO_RUN}")
    for folder in (tmp_path / "data", tmp_path / "demo-ws" / "data"):
        shutil.copytree(example_data, folder)
    (tmp_path / "run_blocks.py").write_text(RUNNER)
    (tmp_path / "blocks.json").write_text(json.dumps([str(page.relative_to(ROOT)), blocks]))
    run = subprocess.run(
        [sys.executable, "run_blocks.py", "blocks.json"],
        cwd=tmp_path,
        # One OpenMP thread: on a busy 2-core machine the trainers' OpenMP teams spinning beside other
        # work made the Python API tutorial take a minute instead of about twenty seconds.
        env={**_environment(), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, (
        f"the examples of {page.relative_to(ROOT)} failed:\n{run.stdout}\n{run.stderr}"
    )
