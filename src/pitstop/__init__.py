"""pitstop: replace a production model with a freshly trained one, safely."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pitstop.workspace import Workspace

__all__ = ["Workspace", "__version__"]


def __getattr__(name: str) -> Any:
    """`Workspace` loads on first use: importing any `pitstop.*` module (the CLI, for `--help`) would
    otherwise load pandas, scikit-learn and the store with it."""
    if name == "Workspace":
        from pitstop.workspace import Workspace

        return Workspace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
