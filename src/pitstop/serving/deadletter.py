"""Dead letters: prediction records the store refused for their data, set aside in a bounded local file.

A record the store cannot hold (a lone surrogate, a NUL on PostgreSQL, a value longer than its
column) fails every time it is written; left at the head of the log's queue it would hold back every
record behind it. The writer sets it aside here and goes on. A local file, not a store table, since
the store has just refused these values: each record is one JSON line, ASCII only (`json.dumps`
escapes every other character, a lone surrogate and NUL too), so any value can be written and read
back exactly. String fields are cut at `MAX_CHARS`.

The file is bounded: a line that would take it past `max_bytes` first moves it to `<name>.1`
(replacing the older one), so at most about twice `max_bytes` are kept, the newest lines always.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pitstop.config import STATE_DIR
from pitstop.store.engine import describe_store_error

FOLDER, FILE_NAME = "dead-letters", "predictions.jsonl"  # in the workspace's `.pitstop/`
MAX_BYTES = 10 * 2**20
MAX_CHARS = 2000  # per string field: a request_id may be as long as the body the gateway accepts


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One refused record: its fields, and why (the refusal's type name, and its first line)."""

    fields: Mapping[str, Any]
    reason: str
    error: str

    @classmethod
    def of(cls, fields: Mapping[str, Any], error: BaseException) -> DeadLetter:
        """The dead letter of `fields`, refused with `error` (SQLAlchemy's wrapping taken off)."""
        cause = getattr(error, "orig", None) or error
        return cls(fields, type(cause).__name__, describe_store_error(cause)[:500])

    def line(self) -> str:
        """The JSON line written to the file: ASCII whatever the values hold."""
        fields = {name: _cut(value) for name, value in self.fields.items()}
        entry = {"reason": self.reason, "error": self.error, "record": fields}
        return json.dumps(entry, ensure_ascii=True, default=repr) + "\n"


class DeadLetterFile:
    """An append-only JSON-lines file of dead letters, rotated once at `max_bytes`."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path, self.max_bytes = path, max_bytes

    @property
    def rotated(self) -> Path:
        return self.path.with_name(f"{self.path.name}.1")

    def save(self, letters: list[DeadLetter]) -> None:
        """Append `letters`; raises OSError when the folder or the file cannot be written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for letter in letters:
            line = letter.line().encode("ascii")
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(line) > self.max_bytes:
                os.replace(self.path, self.rotated)
            # One write of a whole line in append mode: lines of several worker processes never mix.
            with self.path.open("ab") as file:
                file.write(line)

    def read(self) -> list[dict[str, Any]]:
        """Every dead letter kept, oldest first (for tools and tests)."""
        entries: list[dict[str, Any]] = []
        for path in (self.rotated, self.path):
            if path.exists():
                entries.extend(json.loads(line) for line in path.read_text("ascii").splitlines())
        return entries


def workspace_dead_letters(workspace: Path) -> DeadLetterFile:
    """The prediction log's dead-letter file of a workspace: `.pitstop/dead-letters/predictions.jsonl`."""
    return DeadLetterFile(workspace / STATE_DIR / FOLDER / FILE_NAME)


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_CHARS:
        return f"{value[:MAX_CHARS]}…[{len(value) - MAX_CHARS} more characters]"
    return value
