"""Static print-quality maps in EPSG:2169 (matplotlib, Agg) and their PNG / SVG / PDF bytes.

:mod:`~geo_ibm.figures.common` holds the formats, the style lock, the data period and
:func:`figure_bytes`; :mod:`~geo_ibm.figures.printmap` draws :func:`static_map`;
:mod:`~geo_ibm.figures.reportmap` runs an analysis for :func:`report_map`. Everything is
importable from here.
"""
from __future__ import annotations

from geo_ibm.figures.common import FORMATS, FigureFormat, Translate, figure_bytes, period_of
from geo_ibm.figures.printmap import DENSITY_RAMP, MAX_POINTS, static_map
from geo_ibm.figures.reportmap import MAP_KINDS, report_map

__all__ = [
    "DENSITY_RAMP", "FORMATS", "MAP_KINDS", "MAX_POINTS", "FigureFormat", "Translate", "figure_bytes",
    "period_of", "report_map", "static_map",
]
