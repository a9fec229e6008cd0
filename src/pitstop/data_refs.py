"""Training data named by reference instead of copied in: a URI with its sha256, or a DVC `.dvc` file.

A model trained elsewhere was trained on data that already lives somewhere (a bucket, a DVC remote);
copying it into the artifact store as a dataset only to name it doubles it. A reference records where
it is and its hash: a local file is hashed here and a wrong hash refused; a remote one (`s3://…`) is
recorded as given, since pitstop cannot read it. A `.dvc` file already holds the md5, path and size
DVC tracks; they are recorded, and checked when the data file is present here.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import yaml

from pitstop.errors import UsageError, describe_os_error

if TYPE_CHECKING:
    import pandas as pd

SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
COMMIT = re.compile(r"^[0-9a-fA-F]{7,40}$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class DataReference:
    """Where a version's training data lives and its content hash (`sha256`, or DVC's `md5`).
    `checked` says whether pitstop hashed the file itself or took the hash as given."""

    uri: str
    sha256: str | None = None
    md5: str | None = None
    size_bytes: int | None = None
    dvc_file: str | None = None
    checked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """`s3://b/train.parquet sha256 3f2a…` (as given)."""
        digest = f"sha256 {self.sha256[:12]}…" if self.sha256 else f"md5 {(self.md5 or '')[:12]}…"
        via = f" via {self.dvc_file}" if self.dvc_file else ""
        return f"{self.uri} {digest}{via} ({'checked' if self.checked else 'as given'})"


def by_uri(uri: str, sha256: str) -> DataReference:
    """A reference to `uri` with its sha256; a local path (no scheme, or `file:`) must exist and match."""
    if not uri.strip():
        raise UsageError("give the location of the training data", field="uri")
    if not SHA256.match(sha256.strip()):
        raise UsageError(f"a sha256 is 64 hex digits, got {sha256!r}", field="sha256")
    given = sha256.strip().lower()
    local = _local_path(uri)
    if local is None:
        return DataReference(uri=uri, sha256=given)
    if not local.is_file():
        raise UsageError(
            f"{local}: no such file (a remote location names its scheme, e.g. s3://…)", field="uri"
        )
    actual, size = _digest(local, hashlib.sha256(), "uri", None)
    if actual != given:
        raise UsageError(
            f"{local} has sha256 {actual}, not the {given} given",
            field="sha256",
            hint="check the file and the hash",
        )
    return DataReference(uri=local.as_uri(), sha256=given, size_bytes=size, checked=True)


def from_dvc(dvc_file: str | Path) -> DataReference:
    """The first output of a DVC `.dvc` file: its md5, path (relative to the file) and size. When the
    data file is present, its md5 must match."""
    path = Path(dvc_file)
    where = {"field": "dvc_file", "given": str(path)}
    try:
        # every scalar as text: an md5 of digits alone must not become a number (or an octal one)
        document = yaml.load(path.read_text(), Loader=yaml.BaseLoader)  # builds only str, list, dict
    except OSError as error:
        raise UsageError(f"cannot read: {describe_os_error(error, path)}", **where) from None
    except yaml.YAMLError as error:
        raise UsageError(f"not YAML ({str(error).splitlines()[0]})", **where) from None
    outs = document.get("outs") if isinstance(document, dict) else None
    out = outs[0] if isinstance(outs, list) and outs else None
    if not isinstance(out, dict):
        raise UsageError("no `outs` list: is it a .dvc file written by `dvc add`?", **where)
    md5, data_path, size = out.get("md5"), out.get("path"), out.get("size")
    if not isinstance(md5, str) or not md5 or not isinstance(data_path, str) or not data_path:
        raise UsageError("its first output needs `md5` and `path`", **where)
    if size is not None and not (isinstance(size, str) and size.isdigit()):
        raise UsageError(f"`size` must be a byte count, got {size!r}", **where)
    data = (path.resolve().parent / data_path).resolve()
    checked = False
    if data.is_file() and not md5.endswith(".dir"):  # a tracked folder's md5 is of DVC's listing
        actual, _ = _digest(data, hashlib.md5(usedforsecurity=False), "dvc_file", str(path))
        if actual != md5:
            raise UsageError(
                f"{data} has md5 {actual}, not the {md5} the .dvc file records",
                **where,
                hint="run `dvc checkout` or `dvc add` again",
            )
        checked = True
    return DataReference(
        uri=data.as_uri(),
        md5=md5,
        size_bytes=None if size is None else int(size),
        dvc_file=str(path.resolve()),
        checked=checked,
    )


def check_commit(commit: str) -> str:
    """A commit given by the caller: 7 to 40 hex digits, lower-cased.

    >>> check_commit("1A2B3C4")
    '1a2b3c4'
    """
    if not COMMIT.match(commit.strip()):
        raise UsageError(f"a commit is 7 to 40 hex digits, got {commit!r}", field="code_commit")
    return commit.strip().lower()


def readable_rows(reference: DataReference, features: list[str]) -> pd.DataFrame | None:
    """The feature columns of the referenced file when it is a local CSV or Parquet file holding them
    all (what the door check tries the model on), else None."""
    path = _local_path(reference.uri)
    if path is None or not path.is_file():
        return None
    import pandas as pd  # loads only when there is a file to read

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        else:
            return None
    except (OSError, ValueError):
        return None
    if not set(features) <= set(frame.columns):
        return None
    return frame[features]


def _local_path(uri: str) -> Path | None:
    """The file a URI names on this machine, or None for a remote one (`s3://`, `https://`)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        return None
    return Path(uri).expanduser().resolve()


def _digest(path: Path, digest: Any, field: str, given: str | None) -> tuple[str, int]:
    """The file's hex digest and size, read in chunks (training data can be large)."""
    size = 0
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise UsageError(
            f"cannot read {path}: {describe_os_error(error, path)}", field=field, given=given
        ) from None
    return digest.hexdigest(), size
