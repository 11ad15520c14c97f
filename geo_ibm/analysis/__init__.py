"""Hotspot analysis by method name: the methods, their cost limits, and requests on the stored events."""
from __future__ import annotations

from geo_ibm.analysis.budget import MAX_BAND_CELLS, MAX_CELLS, MAX_EVENTS, check_budget, check_event_count
from geo_ibm.analysis.methods import (
    CELL_CHOICES,
    GRID_METHODS,
    LISA_MAX_AUTO_CELLS,
    METHODS,
    Method,
    run_method,
    select_cells,
    significant,
    study_area,
)
from geo_ibm.analysis.requests import (
    ANALYSIS_COLUMNS,
    PAGE_METHODS,
    SIZED_METHODS,
    HotspotLayers,
    HotspotQuery,
    check_query,
    hotspot_layers,
    hotspots,
    overview_selection,
)

__all__ = [
    "ANALYSIS_COLUMNS",
    "CELL_CHOICES",
    "GRID_METHODS",
    "LISA_MAX_AUTO_CELLS",
    "MAX_BAND_CELLS",
    "MAX_CELLS",
    "MAX_EVENTS",
    "METHODS",
    "PAGE_METHODS",
    "SIZED_METHODS",
    "HotspotLayers",
    "HotspotQuery",
    "Method",
    "check_budget",
    "check_event_count",
    "check_query",
    "hotspot_layers",
    "hotspots",
    "overview_selection",
    "run_method",
    "select_cells",
    "significant",
    "study_area",
]
