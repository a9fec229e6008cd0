"""Values as JSON can hold them, for events, reports and `--json` output."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


def json_safe(value: Any) -> Any:
    """Non-finite floats become None (JSON has no NaN or Infinity), datetimes ISO strings, tuples lists,
    dict keys strings; nested values likewise.

    >>> json_safe({"p": float("nan"), "ci": (0.1, float("inf")), 1: [2.5]})
    {'p': None, 'ci': [0.1, None], '1': [2.5]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
