"""The audit report: a self-contained HTML page and its figures, drawn from an AuditResult alone.

>>> from audit.report import write_report  # doctest: +SKIP
>>> write_report(AuditResult.from_json("results.json"), "reports/london")  # doctest: +SKIP
"""

from pathlib import Path

from .compare import render_comparison_html, write_comparison_report
from .html import render_html, write_report
from .plots import ReportError, figure_to_data_uri
from ..findings import Finding, executive_summary

__all__ = ["render_html", "write_report", "figure_to_data_uri", "ReportError",
           "executive_summary", "Finding", "render_comparison_html", "write_comparison_report",
           "render_identification_html", "write_identification_report", "write_any_report"]


def render_identification_html(result):  # noqa: ANN001, ANN201 - see audit.report.identification
    """Render a 1:N :class:`~audit.identification.result.IdentificationResult` (see :mod:`audit.report.identification`)."""
    from .identification import render_identification_html as _render

    return _render(result)


def write_identification_report(result, folder) -> Path:  # noqa: ANN001
    """Write a 1:N identification result's report to ``folder/index.html``."""
    from .identification import write_identification_report as _write

    return _write(result, folder)


def write_any_report(result, folder) -> Path:  # noqa: ANN001
    """Write the report of either kind of result (1:1 :class:`~audit.verification.result.AuditResult` or 1:N
    :class:`~audit.identification.result.IdentificationResult`) to ``folder/index.html``."""
    from ..identification.result import IdentificationResult

    if isinstance(result, IdentificationResult):
        return write_identification_report(result, folder)
    return write_report(result, folder)
