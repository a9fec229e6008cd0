"""The prediction log's spool: batches of records kept on local disk while the store cannot be written.

When a write fails because the store is down or unreachable, the prediction log moves the unwritten
records here at once, rather than keeping them in memory: a gateway stopped, restarted or killed
during an outage then loses nothing, and memory stays bounded by `serving.log_queue_size`. Once the
store answers, the spool is drained oldest file first, each file written in one transaction and
deleted only after that transaction commits.

Each batch is one file, `<nanoseconds>-<pid>-<n>.jsonl`, written under a temporary name and renamed
when complete, so a reader never sees half a batch. A record is a JSON array of its fields, ASCII
only (`json.dumps` escapes every other character, a lone surrogate too) and floats in their shortest
exact form, so `decode(encode(r)) == r` for every record the gateway makes.

Several gateway processes of one workspace share the folder: any of them drains any file, one at a
time (an exclusive `flock`, released by the kernel when its holder dies), so files a stopped gateway
left are drained by the next one. Draining is at least once (a commit whose answer was lost is
written again): the log writes drained records with `insert_new_predictions`, which skips records the
store already holds.

The spool is bounded by `serving.spool_max_bytes` over all its files: a batch that would pass the
bound is not kept (the newest records are dropped, counted as `spool_full`), so the oldest evidence,
which a rollout phase already began counting, is the evidence kept, and no file another gateway may
be draining is ever removed to make room.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from time import time_ns

from pitstop.config import STATE_DIR
from pitstop.store.predictions.write import COLUMNS, PredictionRecord

log = logging.getLogger(__name__)

FOLDER = "spool/predictions"  # in the workspace's `.pitstop/`
SUFFIX = ".jsonl"
UNREADABLE = ".unreadable"  # a file that does not decode is renamed so (its lines counted as dropped)


def encode(record: PredictionRecord) -> str:
    """One record as a JSON line (ASCII, exact)."""
    return json.dumps(list(record), ensure_ascii=True, separators=(",", ":")) + "\n"


def decode(line: str) -> PredictionRecord:
    """The record of a line `encode` wrote; ValueError for anything else."""
    values = json.loads(line)
    if not isinstance(values, list) or len(values) != len(COLUMNS):
        raise ValueError(f"not a prediction record of {len(COLUMNS)} fields: {line[:80]!r}")
    return PredictionRecord(*values)


@dataclass(frozen=True)
class SpoolSize:
    """What the spool holds now, over every process's files."""

    files: int
    bytes: int


class PredictionSpool:
    """A folder of spooled batches, at most `max_bytes` in all."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"spool max_bytes must be positive, got {max_bytes}")
        self.folder, self.max_bytes = folder, max_bytes
        self._names = count()
        self.unreadable = 0  # records in files this process set aside as unreadable

    def size(self) -> SpoolSize:
        files = self.pending()
        total = 0
        for path in files:
            try:
                total += path.stat().st_size
            except FileNotFoundError:  # drained by another process meanwhile
                continue
        return SpoolSize(len(files), total)

    def pending(self) -> list[Path]:
        """The spooled batches, oldest first."""
        try:
            return sorted(p for p in self.folder.iterdir() if p.name.endswith(SUFFIX))
        except FileNotFoundError:
            return []

    def save(self, records: Sequence[PredictionRecord]) -> bool:
        """Keep `records` as one new batch; False when that would pass `max_bytes` (nothing kept).

        Raises OSError when the folder cannot be written (a full disk, a read-only folder).
        """
        data = "".join(encode(r) for r in records).encode("ascii")
        if self.size().bytes + len(data) > self.max_bytes:
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time_ns():020d}-{os.getpid()}-{next(self._names):06d}"
        partial = self.folder / f".{name}.partial"
        with partial.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, self.folder / f"{name}{SUFFIX}")
        return True

    @contextmanager
    def claim(self, path: Path) -> Iterator[list[PredictionRecord] | None]:
        """The records of one spooled batch, held exclusively; None when another process holds it or
        it is gone. The caller deletes it with `done(path)` inside the block once they are written."""
        try:
            file = path.open("rb")
        except FileNotFoundError:
            yield None
            return
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if os.fstat(file.fileno()).st_nlink == 0:  # drained and deleted before the lock was ours
                yield None
                return
            lines = file.read().splitlines()
            try:
                records = [decode(line.decode("ascii")) for line in lines]
            except (ValueError, UnicodeDecodeError) as error:
                os.replace(path, path.with_name(path.name + UNREADABLE))
                self.unreadable += len(lines)
                log.error(
                    "spooled prediction records unreadable, set aside as %s%s: %s", path, UNREADABLE, error
                )
                yield None
                return
            yield records

    @staticmethod
    def done(path: Path) -> None:
        """Delete a batch whose records are written (under `claim`)."""
        path.unlink(missing_ok=True)


def workspace_spool(workspace: Path, max_bytes: int) -> PredictionSpool:
    """The prediction log's spool of a workspace: `.pitstop/spool/predictions/`."""
    return PredictionSpool(workspace / STATE_DIR / FOLDER, max_bytes)
