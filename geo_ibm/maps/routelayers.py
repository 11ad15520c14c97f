"""Route layers of the Folium maps: segment intensity, network hot spot lixels, flow lines with
their direction, crossings by attributed events, and the route map."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.maps.base import (
    Translate,
    _escaped_columns,
    _feature_collection,
    _finish,
    _legend_html,
    _to_web,
    add_borders,
    add_outline,
    base_map,
    checked_frame,
    text,
)
from geo_ibm.maps.eventlayers import EVENT_CLASS_COLOURS
from geo_ibm.maps.hotspotlayers import GI_BIN_COLOURS, GI_BIN_LABELS

INTENSITY_COLOURS: tuple[str, ...] = tuple(EVENT_CLASS_COLOURS)
"""Low-to-high colours of the segment intensity classes (events per km), the event cells' ramp."""

INTENSITY_WIDTHS: tuple[float, ...] = (2.5, 3.5, 4.5, 5.5, 7.0)
"""Line width (px) of each intensity class."""

QUIET_COLOUR = "#9e9e9e"
"""Segments without events."""

FLOW_COLOURS: dict[str, str] = {"entry": "#1f4e9c", "exit": "#c45a00"}
"""Flow line colour by leg: entry crossing -> interception, interception -> exit crossing."""

CROSSING_COLOUR = "#6a1b9a"

ARROW_AT = 0.6
"""Where along a flow line (fraction, in the direction of travel) its arrow sits: past the middle, so the
arrows of the two directions of one road segment do not cover each other."""

MAX_ARROWS = 400
"""Most direction arrows drawn (on the largest flows); the lines themselves are all drawn."""

FLOW_MIN_PX, FLOW_MAX_PX = 1.5, 10.0
CROSSING_MIN_PX, CROSSING_MAX_PX = 4.0, 18.0


def intensity_breaks(values: Sequence[float] | np.ndarray, *, n: int = 5) -> list[float]:
    """Upper bounds of at most ``n`` display classes of positive ``values`` (quantiles, 3 significant digits).

    The last bound is the maximum, so every positive value falls in a class; zeros and NaN are
    left out (drawn as quiet segments). No positive value: ``[]``.
    """
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data) & (data > 0)]
    if data.size == 0:
        return []
    quantiles = np.quantile(data, np.linspace(0, 1, int(n) + 1)[1:])
    rounded = [float(f"{q:.3g}") for q in quantiles[:-1]] + [float(data.max())]
    breaks: list[float] = []
    for bound in rounded:
        if not breaks or bound > breaks[-1]:
            breaks.append(bound)
    return breaks


def intensity_class(values: Sequence[float] | np.ndarray, breaks: Sequence[float]) -> np.ndarray:
    """The class (0-based index into ``breaks``) of each value; -1 for zero, NaN or no breaks."""
    data = np.asarray(values, dtype=float)
    out = np.full(data.shape, -1, dtype=int)
    if not len(breaks):
        return out
    positive = np.isfinite(data) & (data > 0)
    out[positive] = np.minimum(np.searchsorted(np.asarray(breaks, dtype=float), data[positive], side="left"),
                               len(breaks) - 1)
    return out


def class_palette(n_classes: int) -> list[str]:
    """The intensity colours of ``n_classes`` classes: the strongest colours kept for the top classes."""
    return list(INTENSITY_COLOURS[len(INTENSITY_COLOURS) - n_classes:]) if n_classes else []


def _number(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{float(value):,.{digits}f}".replace(",", " ")


def _class_labels(breaks: Sequence[float]) -> list[str]:
    labels = []
    low = 0.0
    for bound in breaks:
        labels.append(f"{low:.3g} – {bound:.3g}" if low > 0 else f"≤ {bound:.3g}")
        low = bound
    return labels


def add_segments(fmap: folium.Map, segments: gpd.GeoDataFrame, *, t: Translate = str) -> list[tuple[str, str, str]]:
    """Road segments coloured and widened by events per km; tooltip with ref, name, events (escaped).

    ``segments`` is :func:`geo_ibm.network.corridors.segment_stats`: ``ref``, ``name``,
    ``events``, ``persons``, ``events_per_km`` and LineString geometries. Returns the legend entries.
    """
    segments = checked_frame(segments, "segments", ("ref", "name", "events", "events_per_km"))
    web = _to_web(segments, name="route segments")
    intensity = web["events_per_km"].to_numpy(dtype=float)
    breaks = intensity_breaks(intensity)
    classes = intensity_class(intensity, breaks)
    palette = class_palette(len(breaks))
    props = _escaped_columns(web, ["ref", "name"])
    props["events"] = [str(int(v)) for v in web["events"]]
    props["persons"] = [str(int(v)) for v in web["persons"]] if "persons" in web else ""
    props["per_km"] = [_number(v, 2) for v in intensity]
    props["colour"] = [palette[c] if c >= 0 else QUIET_COLOUR for c in classes]
    props["width"] = [INTENSITY_WIDTHS[len(INTENSITY_WIDTHS) - len(breaks) + c] if c >= 0 else 1.2 for c in classes]
    fields = ["ref", "name", "events", "persons", "per_km"]
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Events per km of road"),
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": f["properties"]["width"],
                                  "opacity": 0.9, "lineCap": "round"},
        tooltip=folium.GeoJsonTooltip(fields=fields, aliases=[text(t("Road")), text(t("Name")), text(t("Events")),
                                                              text(t("Persons")), text(t("Events per km"))])
        if len(web) else None,
    ).add_to(fmap)
    entries = [(colour, "line", label) for colour, label in zip(palette, _class_labels(breaks), strict=True)]
    entries.append((QUIET_COLOUR, "line", t("no events")))
    return entries


def add_lixels(fmap: folium.Map, lixels: gpd.GeoDataFrame, *, t: Translate = str) -> list[tuple[str, str, str]]:
    """Network hot and cold spots: the significant lixels (``gi_bin`` != 0, FDR) in the hotspot map's colours.

    ``lixels`` is :func:`geo_ibm.network.lixels.network_hotspots`. Returns the legend entries
    of the bins present (a note when none is significant).
    """
    lixels = checked_frame(lixels, "lixels", ("gi_bin",))
    bins = lixels["gi_bin"].astype(int).to_numpy()
    significant = lixels[bins != 0]
    web = _to_web(significant, name="network hotspots")
    sig_bins = web["gi_bin"].astype(int).to_numpy()
    props = pd.DataFrame({
        "ref": [text(v) for v in (web["ref"] if "ref" in web else [""] * len(web))],
        "verdict": [text(t(GI_BIN_LABELS[int(b)])) for b in sig_bins],
        "events": [str(int(v)) for v in (web["events"] if "events" in web else np.zeros(len(web)))],
        "density": [_number(v, 2) for v in (web["density"] if "density" in web else np.full(len(web), np.nan))],
        "z": [_number(v, 2) for v in (web["gi_z"] if "gi_z" in web else np.full(len(web), np.nan))],
        "colour": [GI_BIN_COLOURS[int(b)] for b in sig_bins],
    })
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Network hot and cold spots"),
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": 6, "opacity": 0.95},
        tooltip=folium.GeoJsonTooltip(fields=["ref", "verdict", "events", "density", "z"],
                                      aliases=[text(t("Road")), text(t("Verdict")), text(t("Events")),
                                               text(t("Events per km (network kernel)")), text(t("Gi* z-score"))])
        if len(web) else None,
    ).add_to(fmap)
    present = [b for b in (3, 2, 1, -1, -2, -3) if (sig_bins == b).any()]
    if not present:
        return [("#ffffff", "line", t("No significant stretch of road"))]
    return [(GI_BIN_COLOURS[b], "line", t(GI_BIN_LABELS[b])) for b in present]


class _Arrows(MacroElement):
    """Direction arrows (inline SVG in Leaflet div icons, no image files) added to the parent layer group."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function (group, data) {
          data.arrows.forEach(function (a) {
            var html = '<svg xmlns="http://www.w3.org/2000/svg" width="' + a[4] + '" height="' + a[4]
              + '" viewBox="-6 -6 12 12" aria-hidden="true" focusable="false" style="transform:rotate(' + a[2]
              + 'deg)"><path d="M-5,-4.5 L5.5,0 L-5,4.5 L-2.5,0 z" fill="' + a[3] + '"/></svg>';
            L.marker([a[0], a[1]], {interactive: false, keyboard: false,
              icon: L.divIcon({className: 'geo-ibm-arrow', html: html, iconSize: [a[4], a[4]],
                               iconAnchor: [a[4] / 2, a[4] / 2]})}).addTo(group);
          });
        })({{ this._parent.get_name() }}, {{ this.data_json }});
        {% endmacro %}
        """
    )

    def __init__(self, arrows: list[list[Any]]) -> None:
        super().__init__()
        self._name = "Arrows"
        self.data_json = json.dumps({"arrows": arrows}).replace("<", "\\u003c").replace(">", "\\u003e") \
            .replace("&", "\\u0026")


def flow_arrows(web: gpd.GeoDataFrame, *, colours: Sequence[str], sizes: Sequence[float]) -> list[list[Any]]:
    """One arrow per flow line (EPSG:4326): ``[lat, lon, screen angle in degrees, colour, size px]``.

    The arrow sits at :data:`ARROW_AT` of the line's length and points the way the line runs
    (its direction of travel); the angle is measured on the screen (clockwise from east, Web Mercator's local
    scale), which is how CSS rotates.
    """
    arrows: list[list[Any]] = []
    for geom, colour, size in zip(web.geometry, colours, sizes, strict=True):
        if geom is None or geom.is_empty or geom.length == 0:
            continue
        mid = shapely.line_interpolate_point(geom, ARROW_AT, normalized=True)
        ahead = shapely.line_interpolate_point(geom, ARROW_AT + 0.02, normalized=True)
        behind = shapely.line_interpolate_point(geom, ARROW_AT - 0.02, normalized=True)
        dx = (ahead.x - behind.x) * math.cos(math.radians(mid.y))
        dy = ahead.y - behind.y
        if dx == 0 and dy == 0:
            continue
        angle = math.degrees(math.atan2(-dy, dx))  # the screen's y axis points down
        arrows.append([round(mid.y, 6), round(mid.x, 6), round(angle, 1), str(colour), round(float(size), 1)])
    return arrows


def add_flows(fmap: folium.Map, flows: gpd.GeoDataFrame, *, weight: str = "events", max_arrows: int = MAX_ARROWS,
              show: bool = True, t: Translate = str) -> list[tuple[str, str, str]]:
    """Flow lines with their width by volume (``weight``: events or persons) and an arrow showing the direction.

    ``flows`` is :func:`geo_ibm.network.flows.route_flows`: ``ref``, ``leg``, ``events``,
    ``persons``, geometries drawn in the direction of travel. Lines and arrows are one layer,
    shown at first when ``show``. Returns the legend entries.
    """
    flows = checked_frame(flows, "flows", ("ref", "leg", "events", "persons"))
    if weight not in ("events", "persons"):
        raise ValidationError(f"weight must be events or persons, got {weight!r}",
                              [Problem("unknown weight", column="weight", value=weight)])
    volume = flows[weight].to_numpy(dtype=float)
    order = np.argsort(volume, kind="stable")  # the largest flows drawn last, on top
    shown = flows.iloc[order]
    web = _to_web(shown, name="flows")
    volume = web[weight].to_numpy(dtype=float)
    top = float(volume.max()) if len(volume) and np.isfinite(volume).any() else 0.0
    widths = FLOW_MIN_PX + (FLOW_MAX_PX - FLOW_MIN_PX) * np.sqrt(np.clip(volume, 0, None) / top) if top > 0 \
        else np.full(len(web), FLOW_MIN_PX)
    legs = [str(v) for v in web["leg"]]
    colours = [FLOW_COLOURS.get(leg, "#444444") for leg in legs]
    props = _escaped_columns(web, ["ref"])
    props["leg"] = [text(t("entry") if leg == "entry" else t("exit") if leg == "exit" else leg) for leg in legs]
    props["events"] = [str(int(v)) for v in web["events"]]
    props["persons"] = [str(int(v)) for v in web["persons"]]
    props["colour"] = colours
    props["width"] = np.round(widths, 2)
    group = folium.FeatureGroup(name=t("Flows (direction of travel)"), show=show)
    folium.GeoJson(
        _feature_collection(web, props),
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": f["properties"]["width"],
                                  "opacity": 0.75, "lineCap": "butt"},
        tooltip=folium.GeoJsonTooltip(fields=["ref", "leg", "events", "persons"],
                                      aliases=[text(t("Road")), text(t("Leg")), text(t("Events")),
                                               text(t("Persons"))])
        if len(web) else None,
    ).add_to(group)
    largest = np.argsort(-volume, kind="stable")[: int(max_arrows)]
    chosen = web.iloc[largest]
    arrows = flow_arrows(chosen, colours=[colours[i] for i in largest],
                         sizes=[max(10.0, 6.0 + 1.3 * widths[i]) for i in largest])
    group.add_child(_Arrows(arrows), name="flow_arrows")
    group.add_to(fmap)
    entries = [(FLOW_COLOURS["entry"], "line", t("From the entry crossing to the interception")),
               (FLOW_COLOURS["exit"], "line", t("From the interception to the exit crossing"))]
    if top > 0:
        label = t("Widest line") + f": {top:,.0f} ".replace(",", " ") + (t("events") if weight == "events"
                                                                        else t("persons"))
        entries.append(("#444444", "line", label))
    return entries


def add_route_crossings(fmap: folium.Map, crossings: gpd.GeoDataFrame, *, t: Translate = str) -> None:
    """Crossing points sized by the events attributed to them; tooltip with name, events, persons and share."""
    crossings = checked_frame(crossings, "crossings", ("name", "events", "persons"))
    web = _to_web(crossings, name="route crossings")
    events = web["events"].to_numpy(dtype=float)
    top = float(events.max()) if len(events) else 0.0
    sizes = CROSSING_MIN_PX + (CROSSING_MAX_PX - CROSSING_MIN_PX) * np.sqrt(np.clip(events, 0, None) / top) \
        if top > 0 else np.full(len(web), CROSSING_MIN_PX)
    props = _escaped_columns(web, [c for c in ("name", "neighbour") if c in web.columns])
    props["events"] = [str(int(v)) for v in web["events"]]
    props["persons"] = [str(int(v)) for v in web["persons"]]
    props["share"] = [f"{100 * float(v):.1f} %" if pd.notna(v) else "" for v in
                      (web["share"] if "share" in web else [np.nan] * len(web))]
    props["size"] = np.round(sizes, 2)
    fields = [c for c in ("name", "neighbour") if c in web.columns] + ["events", "persons", "share"]
    labels = {"name": t("Crossing"), "neighbour": t("Neighbour"), "events": t("Attributed events"),
              "persons": t("Attributed persons"), "share": t("Share of attributed events")}
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Entry crossings (attributed events)"),
        marker=folium.CircleMarker(radius=6, weight=1.5, fill=True, fill_opacity=0.75),
        style_function=lambda f: {"color": "#ffffff", "fillColor": CROSSING_COLOUR, "weight": 1.5,
                                  "radius": f["properties"]["size"]},
        tooltip=folium.GeoJsonTooltip(fields=fields, aliases=[text(labels[f]) for f in fields]) if len(web) else None,
    ).add_to(fmap)


def route_map(
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    segments: gpd.GeoDataFrame,
    lixels: gpd.GeoDataFrame | None = None,
    flows: gpd.GeoDataFrame | None = None,
    crossings: gpd.GeoDataFrame | None = None,
    network_attribution: str | None = None,
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
    notes: Sequence[str] = (),
    show_flows: bool = False,
    t: Translate = str,
) -> folium.Map:
    """The route map: outline, internal borders, segment intensity, network hot spots, flows and
    crossings as switchable layers with their legends; needs no tiles.

    The flows run along the same roads as the segments and would hide their colours, so their
    layer starts switched off unless ``show_flows``.

    Parameters
    ----------
    segments
        :func:`geo_ibm.network.corridors.segment_stats` (EPSG:2169).
    lixels
        :func:`geo_ibm.network.lixels.network_hotspots`; ``None`` when not computed.
    flows
        :func:`geo_ibm.network.flows.route_flows`.
    crossings
        :func:`geo_ibm.network.attribution.crossing_table`.
    network_attribution
        Credit of the road network (``RouteAnalysis.network_source["attribution"]``), added to
        the map's attribution when it is not already there.
    notes
        Messages shown in the legend (the analysis' warnings, events beyond the tolerance).
    """
    fmap = base_map(tiles_url=tiles_url, tile_attribution=tile_attribution, asset_base=asset_base)
    add_outline(fmap, outline, t=t)
    border_entries = add_borders(fmap, borders, t=t)
    blocks = [_legend_html(t("Events per km of road"), add_segments(fmap, segments, t=t))]
    if lixels is not None:
        blocks.append(_legend_html(t("Network hot and cold spots"), add_lixels(fmap, lixels, t=t)))
    if flows is not None:
        blocks.append(_legend_html(t("Flows (direction of travel)"), add_flows(fmap, flows, show=show_flows, t=t)))
    if crossings is not None:
        add_route_crossings(fmap, crossings, t=t)
        blocks.append(_legend_html(t("Entry crossings"), [(CROSSING_COLOUR, "dot",
                                                           t("Size: attributed events"))]))
    blocks.append(_legend_html(t("Internal Schengen borders"), border_entries))
    for note in notes:
        # Long sentences wrap instead of widening the legend over the map.
        blocks.append(f'<div class="block" style="max-width:22em;white-space:normal">{text(note)}</div>')
    if network_attribution:
        from geo_ibm.maps.base import _Script
        from geo_ibm.settings import OSM_ATTRIBUTION

        if network_attribution != OSM_ATTRIBUTION:
            fmap.add_child(_Script("map.attributionControl.addAttribution(data.text);",
                                   {"text": text(t("Road network") + ": " + network_attribution)}),
                           name="network_attribution")
    # bottom left: a long list of switchable layers (top right) would reach a legend under it
    return _finish(fmap, blocks, legend_position="bottomleft")


__all__ = [
    "INTENSITY_COLOURS", "INTENSITY_WIDTHS", "QUIET_COLOUR", "FLOW_COLOURS", "CROSSING_COLOUR", "ARROW_AT", "MAX_ARROWS",
    "intensity_breaks", "intensity_class", "class_palette", "flow_arrows", "add_segments", "add_lixels", "add_flows",
    "add_route_crossings", "route_map",
]
