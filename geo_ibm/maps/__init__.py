"""Folium map builders: border, crossing, event and hotspot layers with locally served assets.

:mod:`~geo_ibm.maps.base` holds the empty map, its offline assets, the reference layers,
legends and rendering; :mod:`~geo_ibm.maps.eventlayers` the event cells, heat and markers and
the overview map; :mod:`~geo_ibm.maps.hotspotlayers` the hotspot layers and the hotspot map.
Everything is importable from here.
"""
from __future__ import annotations

from geo_ibm.maps.base import (
    CROSSING_COLOURS,
    LUXEMBOURG_CENTRE,
    NEIGHBOUR_COLOURS,
    VENDOR_FILES,
    Translate,
    add_borders,
    add_crossings,
    add_outline,
    asset_urls,
    base_map,
    layer_names,
    render_map,
    text,
    vendor_url,
)
from geo_ibm.maps.eventlayers import (
    EVENT_CLASS_COLOURS,
    EVENT_POPUP_COLUMNS,
    add_events,
    aggregate_events,
    count_classes,
    event_coordinates,
    overview_map,
)
from geo_ibm.maps.hotspotlayers import EMERGING_COLOURS, GI_BIN_COLOURS, GI_BIN_LABELS, hotspot_map

__all__ = [
    "NEIGHBOUR_COLOURS", "CROSSING_COLOURS", "GI_BIN_COLOURS", "EMERGING_COLOURS", "VENDOR_FILES",
    "text", "vendor_url", "base_map", "add_outline", "add_borders", "add_crossings", "add_events",
    "aggregate_events", "event_coordinates", "count_classes", "overview_map", "hotspot_map", "render_map", "asset_urls", "layer_names",
    # Public names outside the former list, importable from here as before.
    "EVENT_CLASS_COLOURS", "EVENT_POPUP_COLUMNS", "GI_BIN_LABELS", "LUXEMBOURG_CENTRE", "Translate",
]
