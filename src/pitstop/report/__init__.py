"""What the controller knows, made visible: an offline HTML report per rollout, and the live dashboard."""

from __future__ import annotations

from pitstop.report.data import report_data
from pitstop.report.html import write_html, write_report
from pitstop.report.values import ReportData

__all__ = ["ReportData", "report_data", "write_html", "write_report"]
