"""pitstop: replace a production model with a freshly trained one, safely."""

__version__ = "0.1.0"

from pitstop.workspace import Workspace

__all__ = ["Workspace", "__version__"]
