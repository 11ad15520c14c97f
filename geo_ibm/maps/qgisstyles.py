"""QGIS styles of the layers geo_ibm writes to GeoPackage, in the colours of the web maps."""
from __future__ import annotations

import geopandas as gpd
import numpy as np

from geo_ibm.io.qgis import Band, Category, GeometryKind, LayerStyle, Symbol
from geo_ibm.maps.base import _FALLBACK_COLOURS
from geo_ibm.maps.hotspotlayers import EMERGING_COLOURS, GI_BIN_COLOURS, GI_BIN_LABELS
from geo_ibm.maps.planlayers import COVERED_COLOUR, SITE_COLOUR, UNCOVERED_COLOUR
from geo_ibm.maps.routelayers import (
    CROSSING_COLOUR,
    FLOW_COLOURS,
    INTENSITY_WIDTHS,
    QUIET_COLOUR,
    class_palette,
    intensity_breaks,
)

EVENT_COLOUR = "#9c27b0"
EVENT_OUTLINE = "#3b0a45"
"""The event markers of the web maps (drawn there by :func:`geo_ibm.maps.eventlayers.add_events`)."""

KDE_RAMP = ("#fff5eb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603")
"""The density contour ramp of :func:`geo_ibm.maps.hotspotlayers.hotspot_map`, low to high."""

LISA_COLOURS: dict[str, str] = {"HH": "#d7191c", "LL": "#2c7bb6", "HL": "#fdae61", "LH": "#abd9e9"}
"""Local Moran's I classes as GeoDa and the PySAL guides draw them (the web maps have no LISA layer)."""
LISA_LABELS: dict[str, str] = {
    "HH": "High-high (hot spot)", "LL": "Low-low (cold spot)", "HL": "High-low (outlier)", "LH": "Low-high (outlier)",
}
NOT_SIGNIFICANT = "#f0f0f0"
"""Cells of no class: listed in the legend, unticked as the web maps leave them out."""

GRID_OPACITY = 0.65
KDE_OPACITY = 0.35
CLUSTER_OPACITY = 0.3


def geometry_kind(gdf: gpd.GeoDataFrame) -> GeometryKind:
    """``"point"``, ``"line"`` or ``"polygon"`` from the first geometry of ``gdf`` (polygon when it has none)."""
    types = gdf.geometry.dropna().geom_type
    first = str(types.iloc[0]) if len(types) else "Polygon"
    if "Point" in first:
        return "point"
    if "LineString" in first:
        return "line"
    return "polygon"


def _cell(colour: str, opacity: float = GRID_OPACITY) -> Symbol:
    # The web maps outline each cell in its own colour.
    return Symbol(colour, outline=colour, opacity=opacity, width=0.16)


def event_style() -> LayerStyle:
    """Interception events: one circle per event, as on the web maps."""
    return LayerStyle("geo_ibm events", "point", Symbol(EVENT_COLOUR, outline=EVENT_OUTLINE, opacity=0.8, width=0.26,
                                                        size=2.4),
                      description="One interception event per point.")


def gi_style(gdf: gpd.GeoDataFrame) -> LayerStyle:
    """Gi* cells by confidence bin (the FDR-corrected ``gi_bin_fdr`` when the layer has it, as the web map)."""
    column = "gi_bin_fdr" if "gi_bin_fdr" in gdf.columns else "gi_bin"
    categories = [Category(b, GI_BIN_LABELS[b], _cell(GI_BIN_COLOURS[b])) for b in sorted(GI_BIN_COLOURS, reverse=True)]
    categories.insert(3, Category(0, "Not significant", _cell(NOT_SIGNIFICANT, 0.4), visible=False))
    return LayerStyle("geo_ibm Gi* bins", geometry_kind(gdf), _cell(NOT_SIGNIFICANT), attribute=column,
                      categories=tuple(categories), description=f"Getis-Ord Gi* hot and cold spots by {column}.")


def lisa_style(gdf: gpd.GeoDataFrame) -> LayerStyle:
    """LISA cells by ``lisa_class`` (HH, LL, HL, LH; the others unticked)."""
    categories = [Category(c, LISA_LABELS[c], _cell(colour)) for c, colour in LISA_COLOURS.items()]
    categories.append(Category("not significant", "Not significant", _cell(NOT_SIGNIFICANT, 0.4), visible=False))
    return LayerStyle("geo_ibm LISA classes", geometry_kind(gdf), _cell(NOT_SIGNIFICANT), attribute="lisa_class",
                      categories=tuple(categories), description="Local Moran's I clusters and outliers.")


def emerging_style(gdf: gpd.GeoDataFrame) -> LayerStyle:
    """Emerging hot spot categories ("no pattern detected" unticked)."""
    categories = [Category(c, c[0].upper() + c[1:], _cell(colour)) for c, colour in EMERGING_COLOURS.items()]
    categories.append(Category("no pattern detected", "No pattern detected", _cell(NOT_SIGNIFICANT, 0.4), visible=False))
    return LayerStyle("geo_ibm emerging hot spots", geometry_kind(gdf), _cell(NOT_SIGNIFICANT), attribute="category",
                      categories=tuple(categories), description="Emerging hot spot analysis categories.")


def kde_style(gdf: gpd.GeoDataFrame) -> LayerStyle:
    """Density contour bands, graduated on ``level`` with the web map's ramp (low light, high dark).

    Each band of the layer is one class, ``level <= density < upper``; a layer without
    ``level`` gets the ramp's darkest colour as a single symbol.
    """
    top = _cell(KDE_RAMP[-1], KDE_OPACITY)
    if "level" not in gdf.columns or gdf.empty:
        return LayerStyle("geo_ibm density", geometry_kind(gdf), top, description="Kernel density contours.")
    levels = np.sort(np.unique(gdf["level"].astype(float).to_numpy()))
    uppers = gdf.groupby(gdf["level"].astype(float))["upper"].max() if "upper" in gdf.columns else None
    bands = []
    for i, level in enumerate(levels):
        upper = float(uppers.loc[level]) if uppers is not None else (float(levels[i + 1]) if i + 1 < len(levels)
                                                                     else float(level))
        colour = KDE_RAMP[min(len(KDE_RAMP) - 1, int(i * len(KDE_RAMP) / len(levels)))]
        bands.append(Band(float(level), upper, f"{level:.3g} – {upper:.3g} events per km²", _cell(colour, KDE_OPACITY)))
    return LayerStyle("geo_ibm density", geometry_kind(gdf), top, attribute="level", bands=tuple(bands),
                      description="Kernel density contour bands (events per km²).")


def cluster_style(gdf: gpd.GeoDataFrame) -> LayerStyle:
    """Cluster hulls, one colour per ``cluster_id`` as on the web map (the colours repeat after seven)."""
    column = "cluster_id" if "cluster_id" in gdf.columns else "cluster"
    ids = [int(v) for v in gdf[column].dropna()] if column in gdf.columns else []
    categories = tuple(Category(v, f"Cluster {v}", _cell(_FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)], CLUSTER_OPACITY))
                       for i, v in enumerate(ids))
    return LayerStyle("geo_ibm clusters", geometry_kind(gdf), _cell(_FALLBACK_COLOURS[0], CLUSTER_OPACITY),
                      attribute=column if categories else None, categories=categories,
                      description="Density cluster hulls.")


def site_style() -> LayerStyle:
    """Control sites of a plan or an operation, as the plan map draws them."""
    return LayerStyle("geo_ibm sites", "point", Symbol(SITE_COLOUR, outline="#ffffff", width=0.5, size=3.6),
                      description="Control sites.")


def demand_style() -> LayerStyle:
    """Demand points coloured covered / not covered (``site`` empty), as the plan map."""
    covered = "if(\"site\" IS NULL OR \"site\" = '', 'not covered', 'covered')"
    return LayerStyle(
        "geo_ibm demand", "point", Symbol(UNCOVERED_COLOUR, outline=UNCOVERED_COLOUR, size=1.6), attribute=covered,
        expression=True, categories=(
            Category("covered", "Covered by a site", Symbol(COVERED_COLOUR, outline=COVERED_COLOUR, opacity=0.8, size=1.6)),
            Category("not covered", "Not covered", Symbol(UNCOVERED_COLOUR, outline=UNCOVERED_COLOUR, opacity=0.8, size=1.6)),
        ), description="Demand points of a plan.")


def _line(colour: str, width_px: float) -> Symbol:
    # The web maps give line widths in pixels; QGIS in millimetres (0.26 mm is about one pixel).
    return Symbol(colour, outline=colour, width=round(width_px * 0.26, 2))


def intensity_style(gdf: gpd.GeoDataFrame, *, attribute: str = "events_per_km", name: str = "geo_ibm road intensity",
                    unit: str = "events per km") -> LayerStyle:
    """Road segments or corridors graduated on ``attribute`` with the Routes map's classes and colours.

    Roads with no event are one quiet grey class below the first band.
    """
    values = gdf[attribute].to_numpy(dtype=float) if attribute in gdf.columns else np.zeros(0)
    breaks = intensity_breaks(values)
    colours = class_palette(len(breaks))
    quiet = _line(QUIET_COLOUR, 1.5)
    if not breaks:
        return LayerStyle(name, "line", quiet, description=f"Roads (no {unit}).")
    widths = INTENSITY_WIDTHS[len(INTENSITY_WIDTHS) - len(breaks):]
    # graduated classes are lower <= value < upper: zero gets a band of its own
    bands = [Band(0.0, 1e-9, f"No event ({unit})", quiet)]
    low = 1e-9
    for bound, colour, width in zip(breaks, colours, widths, strict=True):
        shown = 0.0 if low < 1e-6 else low
        bands.append(Band(low, float(bound), f"{shown:.3g} – {bound:.3g} {unit}", _line(colour, width)))
        low = float(bound)
    return LayerStyle(name, "line", quiet, attribute=attribute, bands=tuple(bands),
                      description=f"Road intensity by {attribute} ({unit}).")


def lixel_style(gdf: gpd.GeoDataFrame) -> LayerStyle:
    """Network hot spot lixels by ``gi_bin`` in the Gi* colours (not significant unticked)."""
    categories = [Category(b, GI_BIN_LABELS[b], _line(GI_BIN_COLOURS[b], 4.0)) for b in sorted(GI_BIN_COLOURS, reverse=True)]
    categories.insert(3, Category(0, "Not significant", _line(NOT_SIGNIFICANT, 1.5), visible=False))
    return LayerStyle("geo_ibm network hot spots", "line", _line(NOT_SIGNIFICANT, 1.5), attribute="gi_bin",
                      categories=tuple(categories), description="Network Gi* hot and cold spots on lixels.")


def flow_style() -> LayerStyle:
    """Flow lines by leg (entry blue, exit orange) as the Routes map draws them."""
    categories = tuple(Category(leg, f"{leg.capitalize()} leg", _line(colour, 3.0)) for leg, colour in FLOW_COLOURS.items())
    return LayerStyle("geo_ibm flows", "line", _line(FLOW_COLOURS["entry"], 3.0), attribute="leg",
                      categories=categories, description="Events along their shortest paths, per segment and direction.")


def crossing_style() -> LayerStyle:
    """Border crossings of a route analysis."""
    return LayerStyle("geo_ibm crossings", "point", Symbol(CROSSING_COLOUR, outline="#ffffff", width=0.5, size=3.6),
                      description="Border crossing points with their attributed events.")


def unsnapped_style() -> LayerStyle:
    """Events beyond the snapping tolerance: grey points."""
    return LayerStyle("geo_ibm events off the roads", "point", Symbol(QUIET_COLOUR, outline="#444444", size=2.0),
                      description="Events farther than the snapping tolerance from every road.")


_ROUTE_STYLES = {
    "route_segments": intensity_style,
    "route_corridors": lambda gdf: intensity_style(gdf, name="geo_ibm corridors"),
    "route_lixels": lixel_style,
    "route_flows": lambda gdf: flow_style(),
    "route_crossings": lambda gdf: crossing_style(),
    "route_attribution": lambda gdf: event_style(),
    "route_unsnapped": lambda gdf: unsnapped_style(),
}


_HOTSPOT_STYLES = {"gi": gi_style, "lisa": lisa_style, "kde": kde_style, "clusters": cluster_style,
                   "emerging": emerging_style}


def layer_style(gdf: gpd.GeoDataFrame, layer: str) -> LayerStyle | None:
    """The QGIS style of a layer geo_ibm writes, by its layer name; ``None`` for a layer it does not know.

    Parameters
    ----------
    gdf
        The layer's data (the classes of density bands and clusters come from it).
    layer
        ``events``, ``hotspots_<method>`` (gi, lisa, kde, clusters, emerging), ``plan_sites``,
        ``operation_sites``, ``plan_demand`` or a route layer (``route_segments``, ``route_corridors``,
        ``route_lixels``, ``route_flows``, ``route_crossings``, ``route_attribution``, ``route_unsnapped``).
    """
    if layer in _ROUTE_STYLES:
        return _ROUTE_STYLES[layer](gdf)
    if layer == "events":
        return event_style()
    if layer.startswith("hotspots_") and layer[len("hotspots_"):] in _HOTSPOT_STYLES:
        return _HOTSPOT_STYLES[layer[len("hotspots_"):]](gdf)
    if layer in ("plan_sites", "operation_sites"):
        return site_style()
    if layer == "plan_demand":
        return demand_style()
    return None


__all__ = ["cluster_style", "crossing_style", "demand_style", "emerging_style", "event_style", "flow_style",
           "geometry_kind", "gi_style", "intensity_style", "kde_style", "layer_style", "lisa_style", "lixel_style",
           "site_style", "unsnapped_style"]
