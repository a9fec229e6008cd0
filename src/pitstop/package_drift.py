"""Whether a version is loaded under the package versions its lineage records.

A model fitted under scikit-learn 1.5 may load under 1.7 and predict differently, or warn, or fail
later in a way nobody connects to the upgrade. So every load compares the major and minor version of
each package in the lineage's `packages` with the one installed here, and says so (a log warning, a
note in `models show`); it never refuses: a patch release, or a minor one of a careful package, is
usually fine, and the person who reads the note decides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from packaging.version import InvalidVersion, Version

from pitstop.records.lineage import Lineage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageDrift:
    """A package whose installed major.minor differs from the recorded one (`installed` None: absent)."""

    package: str
    recorded: str
    installed: str | None

    def describe(self) -> str:
        """`scikit-learn 1.5.2 recorded, 1.7.0 installed`."""
        return f"{self.package} {self.recorded} recorded, {self.installed or 'not'} installed"

    def to_dict(self) -> dict[str, Any]:
        return {"package": self.package, "recorded": self.recorded, "installed": self.installed}


def recorded_packages(lineage: Lineage) -> dict[str, str]:
    """Package → version as the lineage records it: a top-level `packages`, else `environment.packages`."""
    return lineage.recorded_packages()


def major_minor(version: str) -> tuple[int, int] | None:
    """`(1, 5)` from `1.5.2`, `1.5rc1` or `1.5`; None for what is not a version (`not installed`).

    >>> major_minor("1.5.2"), major_minor("2"), major_minor("not installed")
    ((1, 5), (2, 0), None)
    """
    try:
        release = Version(version).release
    except InvalidVersion:
        return None
    return release[0], (release[1] if len(release) > 1 else 0)


def drifts(recorded: Mapping[str, str], installed: Callable[[str], str | None]) -> list[PackageDrift]:
    """The recorded packages whose major or minor version differs from `installed(name)`'s (None:
    not installed). A recorded value that is no version (`not installed`) is not compared.

    >>> here = {"numpy": "2.1.0", "pandas": "2.2.3"}
    >>> drifts({"numpy": "1.26.4", "pandas": "2.2.0", "x": "not installed"}, here.get)
    [PackageDrift(package='numpy', recorded='1.26.4', installed='2.1.0')]
    """
    found = []
    for package, version in sorted(recorded.items()):
        wanted = major_minor(version)
        if wanted is None:
            continue
        now = installed(package)
        if now is None or major_minor(now) != wanted:
            found.append(PackageDrift(package, version, now))
    return found


def installed_version(package: str) -> str | None:
    """The version of `package` installed in this environment, None when it is not."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def of_lineage(lineage: Lineage) -> list[PackageDrift]:
    """The drifts between a version's recorded packages and this environment."""
    return drifts(recorded_packages(lineage), installed_version)


def check(lineage: Lineage, who: str) -> list[PackageDrift]:
    """The drifts of a version loaded here, each logged as a warning naming `who`."""
    found = of_lineage(lineage)
    for drift in found:
        log.warning(
            "%s was registered under %s %s and is loaded under %s: its predictions may differ",
            who,
            drift.package,
            drift.recorded,
            drift.installed or "no installed version",
        )
    return found
