"""Print maps of routes (EPSG:2169): corridor intensity (events per km of road) and flows with their direction.

Both are the reference map of :func:`~geo_ibm.figures.printmap.static_map` (outline, borders,
neighbours, scale bar, north arrow, footer) with the route layers on top and their legend in
the side column. Their bytes come from :func:`geo_ibm.figures.common.figure_bytes`.
"""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.figures.common import Translate
from geo_ibm.figures.printmap import _checked, _line_segments, _no_points, _side_legend, _thematic
from geo_ibm.maps.routelayers import (
    ARROW_AT,
    CROSSING_COLOUR,
    FLOW_COLOURS,
    INTENSITY_WIDTHS,
    QUIET_COLOUR,
    _class_labels,
    class_palette,
    intensity_breaks,
    intensity_class,
)
from geo_ibm.settings import OSM_ATTRIBUTION

MAX_PRINT_ARROWS = 60
"""Direction arrows drawn on the flow map (on the largest flows)."""

_PRINT_WIDTH_SCALE = 0.45
"""Web line widths (px) to print widths (points)."""


def route_attribution(network_source: Mapping[str, Any] | None, *, t: Translate = str) -> str:
    """The print map's credit line: the reference layers' credit and the road network's.

    An OpenStreetMap network (``kind == "osm"``) is credited "© OpenStreetMap contributors,
    ODbL"; the shipped corridors by their own description.
    """
    credit = OSM_ATTRIBUTION
    if not network_source:
        return credit
    if network_source.get("kind") == "osm":
        date = network_source.get("date")
        road = t("Road network") + ": © OpenStreetMap contributors, ODbL" + (f" ({date})" if date else "")
    else:
        road = t("Road network") + ": " + t("schematic corridors (about 1 km accuracy)")
    return f"{credit}   ·   {road}"


def _crossing_dots(ax: Any, crossings: gpd.GeoDataFrame | None, *, scale: float, handles: list[Any],
                   labels: list[str], t: Translate) -> None:
    # The entry crossings sized by their attributed events, with their legend entry; nothing without them.
    if crossings is None or not len(crossings) or "events" not in crossings.columns:
        return
    events = crossings["events"].to_numpy(dtype=float)
    top = float(events.max()) if len(events) else 0.0
    xy = shapely.get_coordinates(crossings.geometry.to_numpy())[:, :2]
    size = 8 + 140 * np.sqrt(np.clip(events, 0, None) / top) if top > 0 else np.full(len(xy), 8.0)
    ax.scatter(xy[:, 0], xy[:, 1], s=size * scale * scale, c=CROSSING_COLOUR, alpha=0.7, edgecolors="white",
               linewidths=0.6, zorder=6)
    handles.append(Line2D([], [], linestyle="none", marker="o", markersize=6 * scale,
                          markerfacecolor=CROSSING_COLOUR, markeredgecolor="white", alpha=0.7))
    labels.append(t("Entry crossing (size: attributed events)"))


def _route_base(*, outline: gpd.GeoDataFrame, borders: gpd.GeoDataFrame, neighbours: gpd.GeoDataFrame | None,
                title: str | None, subtitle: str | None, period: str | None,
                network_source: Mapping[str, Any] | None, width_mm: float, dpi: int,
                t: Translate) -> AbstractContextManager[tuple[Figure, Any, float]]:
    # The reference map without its crossing points (a route map draws its own), credited with the road network.
    return _thematic(outline=outline, borders=borders, crossings=_no_points(), neighbours=neighbours, title=title,
                     subtitle=subtitle, period=period, attribution=route_attribution(network_source, t=t),
                     width_mm=width_mm, dpi=dpi, t=t)


def corridor_print_map(
    segments: gpd.GeoDataFrame,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    neighbours: gpd.GeoDataFrame | None = None,
    crossings: gpd.GeoDataFrame | None = None,
    network_source: Mapping[str, Any] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    period: str | None = None,
    width_mm: float = 170,
    dpi: int = 200,
    t: Translate = str,
) -> Figure:
    """A print map of corridor intensity: road segments coloured and widened by events per km.

    Parameters
    ----------
    segments
        :func:`geo_ibm.network.corridors.segment_stats`: ``events_per_km`` and LineStrings.
        The classes are the web map's (:func:`geo_ibm.maps.routelayers.intensity_breaks`).
    crossings
        :func:`geo_ibm.network.attribution.crossing_table` (``events``): dots sized by the
        attributed events; optional.
    network_source
        ``RouteAnalysis.network_source``; an OpenStreetMap network is credited in the footer.
    title, subtitle, period, width_mm, dpi, t
        As :func:`~geo_ibm.figures.printmap.static_map` (which bounds the raster's pixels).
    """
    segments = _checked(segments, "segments", ("events_per_km",))
    crossings = _checked(crossings, "crossings", ("events",)) if crossings is not None else None
    with _route_base(outline=outline, borders=borders, neighbours=neighbours, title=title, subtitle=subtitle,
                     period=period, network_source=network_source, width_mm=width_mm, dpi=dpi,
                     t=t) as (fig, ax, scale):
        intensity = segments["events_per_km"].to_numpy(dtype=float)
        breaks = intensity_breaks(intensity)
        classes = intensity_class(intensity, breaks)
        palette = class_palette(len(breaks))
        widths = INTENSITY_WIDTHS[len(INTENSITY_WIDTHS) - len(breaks):]
        geoms = segments.geometry.to_numpy()
        quiet = [s for g in geoms[classes < 0] for s in _line_segments(g)]
        ax.add_collection(LineCollection(quiet, colors=QUIET_COLOUR, linewidths=0.6 * scale, zorder=4.6,
                                         capstyle="round"))
        handles: list[Any] = []
        labels: list[str] = []
        for index, (colour, label) in enumerate(zip(palette, _class_labels(breaks), strict=True)):
            lines = [s for g in geoms[classes == index] for s in _line_segments(g)]
            width = widths[index] * _PRINT_WIDTH_SCALE * scale
            ax.add_collection(LineCollection(lines, colors=colour, linewidths=width, zorder=4.7 + index * 0.01,
                                             capstyle="round", joinstyle="round"))
            handles.append(Line2D([], [], color=colour, linewidth=width))
            labels.append(label)
        handles.append(Line2D([], [], color=QUIET_COLOUR, linewidth=0.6 * scale))
        labels.append(t("no events"))
        _crossing_dots(ax, crossings, scale=scale, handles=handles, labels=labels, t=t)
        _side_legend(fig, handles, labels, handlelength=1.8, labelspacing=0.45, title=t("Events per km of road"), fontsize=7.0 * scale)
    return fig


def flow_print_map(
    flows: gpd.GeoDataFrame,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    neighbours: gpd.GeoDataFrame | None = None,
    crossings: gpd.GeoDataFrame | None = None,
    network_source: Mapping[str, Any] | None = None,
    weight: str = "events",
    title: str | None = None,
    subtitle: str | None = None,
    period: str | None = None,
    width_mm: float = 170,
    dpi: int = 200,
    max_arrows: int = MAX_PRINT_ARROWS,
    t: Translate = str,
) -> Figure:
    """A print map of flows: lines along the roads, width by volume, coloured by leg, arrows for the direction.

    Parameters
    ----------
    flows
        :func:`geo_ibm.network.flows.route_flows`: ``leg``, ``events``, ``persons`` and
        LineStrings drawn in the direction of travel.
    weight
        ``"events"`` or ``"persons"``: what the widths show.
    max_arrows
        Arrows drawn on the largest flows (at :data:`~geo_ibm.maps.routelayers.ARROW_AT` of their length,
        as on the web map).
    crossings, network_source, title, subtitle, period, width_mm, dpi, t
        As :func:`corridor_print_map`.
    """
    flows = _checked(flows, "flows", ("leg", "events", "persons"))
    if weight not in ("events", "persons"):
        raise ValidationError(f"weight must be events or persons, got {weight!r}",
                              [Problem("unknown weight", column="weight", value=weight)])
    crossings = _checked(crossings, "crossings", ("events",)) if crossings is not None else None
    with _route_base(outline=outline, borders=borders, neighbours=neighbours, title=title, subtitle=subtitle,
                     period=period, network_source=network_source, width_mm=width_mm, dpi=dpi,
                     t=t) as (fig, ax, scale):
        volume = flows[weight].to_numpy(dtype=float)
        top = float(volume.max()) if len(volume) else 0.0
        widths = (0.4 + 4.0 * np.sqrt(np.clip(volume, 0, None) / top)) * scale if top > 0 \
            else np.full(len(flows), 0.4 * scale)
        legs = flows["leg"].astype(str).to_numpy()
        geoms = flows.geometry.to_numpy()
        order = np.argsort(volume, kind="stable")
        lines, colours, line_widths = [], [], []
        for i in order:
            for part in _line_segments(geoms[i]):
                lines.append(part)
                colours.append(FLOW_COLOURS.get(legs[i], "#444444"))
                line_widths.append(widths[i])
        ax.add_collection(LineCollection(lines, colors=colours, linewidths=line_widths, alpha=0.8, zorder=4.7,
                                         capstyle="butt", joinstyle="round"))
        for i in np.argsort(-volume, kind="stable")[: int(max_arrows)]:
            geom = geoms[i]
            if geom is None or geom.is_empty or geom.length == 0:
                continue
            tail = shapely.line_interpolate_point(geom, ARROW_AT - 0.05, normalized=True)
            head = shapely.line_interpolate_point(geom, ARROW_AT + 0.05, normalized=True)
            ax.add_patch(FancyArrowPatch((tail.x, tail.y), (head.x, head.y), arrowstyle="-|>",
                                         mutation_scale=(5 + 2 * widths[i]) * scale, linewidth=0,
                                         color=FLOW_COLOURS.get(legs[i], "#444444"), zorder=4.9))
        handles: list[Any] = [Line2D([], [], color=FLOW_COLOURS["entry"], linewidth=2.0 * scale),
                              Line2D([], [], color=FLOW_COLOURS["exit"], linewidth=2.0 * scale)]
        labels = [t("From the entry crossing to the interception"), t("From the interception to the exit crossing")]
        if top > 0:
            handles.append(Line2D([], [], color="#444444", linewidth=4.4 * scale))
            labels.append(t("Widest line") + f": {top:,.0f} ".replace(",", " ")
                          + (t("events") if weight == "events" else t("persons")))
        handles.append(Line2D([], [], linestyle="none", marker=">", markersize=5 * scale, markerfacecolor="#444444",
                              markeredgewidth=0))
        labels.append(t("Direction of travel"))
        _crossing_dots(ax, crossings, scale=scale, handles=handles, labels=labels, t=t)
        _side_legend(fig, handles, labels, handlelength=1.8, labelspacing=0.45, title=t("Flows"), fontsize=7.0 * scale)
    return fig


__all__ = ["MAX_PRINT_ARROWS", "route_attribution", "corridor_print_map", "flow_print_map"]
