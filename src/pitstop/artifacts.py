"""Content-addressed artifact storage: a local folder by default, any fsspec URL when configured."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import fsspec

_CHUNK = 1 << 20


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Files stored under their sha256, so identical content is stored once and never overwritten."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._fs, self._root = fsspec.core.url_to_fs(self.base_url)

    def put(self, source: Path, kind: str, suffix: str) -> tuple[str, str, int]:
        """Copy `source` in; returns (uri, sha256, size in bytes)."""
        sha256 = sha256_of_file(source)
        relative = f"{kind}/{sha256[:2]}/{sha256}{suffix}"
        target = f"{self._root}/{relative}"
        if not self._fs.exists(target):
            self._fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            partial = f"{target}.partial"
            self._fs.put_file(str(source), partial)
            self._fs.mv(partial, target)
        return f"{self.base_url}/{relative}", sha256, source.stat().st_size

    def read(self, uri: str) -> bytes | None:
        """The bytes stored at `uri`, or None when the file is gone."""
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.exists(path):
            return None
        data: bytes = fs.cat_file(path)
        return data

    def open_local(self, uri: str) -> Any:
        """A readable binary file object for `uri`."""
        return fsspec.open(uri, "rb").open()
