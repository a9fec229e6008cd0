"""What the controller knows, made visible: an offline HTML report per rollout, and the live dashboard.

The names below load on first use, so `rollout status` can share the report's words
(`pitstop.report.words`) without loading plotly.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pitstop.report.data import report_data
    from pitstop.report.hand_made import hand_made_shadow_report, write_hand_made_shadow_report
    from pitstop.report.html import write_html, write_report
    from pitstop.report.values import ReportData

__all__ = [
    "ReportData",
    "hand_made_shadow_report",
    "report_data",
    "write_hand_made_shadow_report",
    "write_html",
    "write_report",
]
_HOMES = {
    "ReportData": "pitstop.report.values",
    "report_data": "pitstop.report.data",
    "hand_made_shadow_report": "pitstop.report.hand_made",
    "write_hand_made_shadow_report": "pitstop.report.hand_made",
    "write_html": "pitstop.report.html",
    "write_report": "pitstop.report.html",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pitstop.report' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
