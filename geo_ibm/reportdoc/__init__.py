"""The quarterly IBM analysis report as one document, rendered to self-contained HTML and to PDF.

:func:`write_quarterly_report` is the entry point; :mod:`~geo_ibm.reportdoc.build` assembles the
:mod:`~geo_ibm.reportdoc.model` document from the store, :mod:`~geo_ibm.reportdoc.figures` holds
the key figures and their tests, :mod:`~geo_ibm.reportdoc.charts` the charts,
:mod:`~geo_ibm.reportdoc.html` and :mod:`~geo_ibm.reportdoc.pdf` the two renderers and
:mod:`~geo_ibm.reportdoc.strings` the report's words in English and French.
"""
from __future__ import annotations

from geo_ibm.reportdoc.build import MIN_ANALYSIS_EVENTS, AreaReport, build_report, resolve_regions, write_quarterly_report
from geo_ibm.reportdoc.strings import LANGUAGES

__all__ = ["LANGUAGES", "MIN_ANALYSIS_EVENTS", "AreaReport", "build_report", "resolve_regions", "write_quarterly_report"]
