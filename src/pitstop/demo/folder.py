"""The workspace a demo runs in: the same rule for `pitstop demo` and `pitstop demo --live`.

The store is always the workspace's default file (`.pitstop/pitstop.db`), whatever `PITSTOP_DATABASE_URL`
says: a demo's data never lands in a shared store, and `pitstop … -w DIR` opens it afterwards. A demo
may run again in the same folder: the workspace an earlier demo left there (its `pitstop.yaml` starts
with `DEMO_MARK`) is replaced. A folder holding any other workspace is refused, so a demo never
overwrites someone's configuration or store.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from rich.console import Console

from pitstop.clock import Clock
from pitstop.config import CONFIG_FILE, STATE_DIR, default_database_url
from pitstop.errors import UsageError
from pitstop.store.engine import sqlite_file
from pitstop.workspace import Workspace

DEMO_MARK = "# pitstop demo"  # every demo policy's first line starts with it
# First lines of workspaces that demos wrote before they shared this rule.
EARLIER_MARKS = ("# The demo's policy:",)
# What a demo writes into its folder besides pitstop.yaml: removed when a demo runs there again.
DEMO_LEFTOVERS = (STATE_DIR, "data", "gateway.log")
DATABASE_ENV = "PITSTOP_DATABASE_URL"


def demo_workspace(
    folder: Path | None, policy: str, *, clock: Clock | None = None, temp_prefix: str = "pitstop-demo-"
) -> Workspace:
    """A new workspace with `policy` in `folder` (default: a new temporary folder) and its own store."""
    if not policy.startswith(DEMO_MARK):
        raise ValueError(f"a demo policy must start with {DEMO_MARK!r}, so a rerun recognises it")
    folder = folder if folder is not None else Path(tempfile.mkdtemp(prefix=temp_prefix))
    clear_earlier_demo(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(policy)
    return Workspace.init(folder, clock=clock, database_url=default_database_url(folder))


def clear_earlier_demo(folder: Path) -> None:
    """Remove the workspace an earlier demo left in `folder`; refuse (exit 2) a folder holding another."""
    config = folder / CONFIG_FILE
    if not config.exists():
        return
    first_line = next(iter(config.read_text().splitlines()), "")
    if not first_line.startswith((DEMO_MARK, *EARLIER_MARKS)):
        raise UsageError(f"{folder} already holds a pitstop workspace: give the demo a new folder")
    for name in DEMO_LEFTOVERS:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def show_workspace(console: Console, ws: Workspace, model: str) -> None:
    """Where the kept workspace is and how to look around; where its store is if the environment points
    `pitstop … -w` at another one."""
    console.print(f"workspace: {ws.path}   look around: pitstop rollout history {model} -w {ws.path}")
    if os.environ.get(DATABASE_ENV):
        console.print(f"  (unset {DATABASE_ENV} first: the demo's store is {sqlite_file(ws.database_url)})")
