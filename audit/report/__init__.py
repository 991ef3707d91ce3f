"""The audit report: a self-contained HTML page and its figures, drawn from an AuditResult alone.

>>> from audit.report import write_report  # doctest: +SKIP
>>> write_report(AuditResult.from_json("results.json"), "reports/london")  # doctest: +SKIP
"""

from .html import render_html, write_report
from .plots import ReportError, figure_to_data_uri

__all__ = ["render_html", "write_report", "figure_to_data_uri", "ReportError"]
