"""Content-addressed artifact storage: a local folder by default, any fsspec URL when configured.

fsspec loads at the first file operation: commands that read only the store (`pitstop models list`)
never pay for it.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from pitstop.errors import StoreUnavailableError, describe_os_error

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_CHUNK = 1 << 20


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of `url` and the path within it."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


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

    @cached_property
    def _filesystem(self) -> tuple[AbstractFileSystem, str]:
        return filesystem(self.base_url)

    def put(self, source: Path, kind: str, suffix: str) -> tuple[str, str, int]:
        """Copy `source` in; returns (uri relative to this store, sha256, size in bytes)."""
        sha256 = sha256_of_file(source)
        relative = f"{kind}/{sha256[:2]}/{sha256}{suffix}"
        fs, root = self._filesystem
        target = f"{root}/{relative}"
        if not fs.exists(target):
            try:
                fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                partial = f"{target}.partial"
                fs.put_file(str(source), partial)
                fs.mv(partial, target)
            except OSError as error:
                reason = (
                    describe_os_error(error) if error.filename else f"{describe_os_error(error)}: {target}"
                )
                raise StoreUnavailableError(
                    f"cannot write to the artifact store {self.base_url}: {reason}; make that folder "
                    "writable, or set artifact_store in pitstop.yaml to one that is"
                ) from None
        return relative, sha256, source.stat().st_size

    def location(self, uri: str) -> str:
        """Where `uri` is: a relative one (every one since schema 0005) under this store's root, so a
        workspace moved or copied with its artifact folder reads its own files, never the original's."""
        if "://" in uri or PurePosixPath(uri).is_absolute():
            return uri
        return f"{self.base_url}/{uri}"

    def read(self, uri: str) -> bytes | None:
        """The bytes stored at `uri`, or None when the file is gone."""
        location = self.location(uri)
        fs, path = filesystem(location)
        if not fs.exists(path):
            return None
        try:
            data: bytes = fs.cat_file(path)
        except OSError as error:
            raise StoreUnavailableError(
                f"cannot read {location} from the artifact store: "
                f"{describe_os_error(error)}; check that the file is readable"
            ) from None
        return data
