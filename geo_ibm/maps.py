"""Folium map builders: border, crossing, event and hotspot layers with locally served assets."""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Any

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template

from geo_ibm.disclosure import DisclosureRule, protect_counts
from geo_ibm.io import ensure_working_crs
from geo_ibm.settings import OSM_ATTRIBUTION, WEB_CRS

Translate = Callable[[str], str]

NEIGHBOUR_COLOURS: dict[str, str] = {"BE": "#d68a00", "FR": "#2b5cad", "DE": "#b0302a"}
"""Line colour of each internal Schengen border, keyed by neighbour code."""

CROSSING_COLOURS: dict[str, str] = {
    "motorway": "#6a1b9a",
    "national_road": "#00838f",
    "rail": "#37474f",
    "airport": "#c2185b",
    "footpath": "#558b2f",
    "bridge": "#ef6c00",
}
_FALLBACK_COLOURS = ["#5d4037", "#1565c0", "#ad1457", "#2e7d32", "#f9a825", "#4e342e", "#00695c"]

EVENT_CLASS_COLOURS = ["#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026"]
"""Sequential palette (light to dark) of the aggregated event counts."""

GI_BIN_COLOURS: dict[int, str] = {
    3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac",
}
GI_BIN_LABELS: dict[int, str] = {
    3: "Hot spot, 99% confidence", 2: "Hot spot, 95% confidence", 1: "Hot spot, 90% confidence",
    -1: "Cold spot, 90% confidence", -2: "Cold spot, 95% confidence", -3: "Cold spot, 99% confidence",
}
EMERGING_COLOURS: dict[str, str] = {
    "new hot spot": "#7f0000",
    "consecutive hot spot": "#b30000",
    "intensifying hot spot": "#d7301f",
    "persistent hot spot": "#ef6548",
    "diminishing hot spot": "#fc8d59",
    "sporadic hot spot": "#fdbb84",
    "oscillating hot spot": "#fdd49e",
    "historical hot spot": "#fee8c8",
    "new cold spot": "#08306b",
    "consecutive cold spot": "#08519c",
    "intensifying cold spot": "#2171b5",
    "persistent cold spot": "#4292c6",
    "diminishing cold spot": "#6baed6",
    "sporadic cold spot": "#9ecae1",
    "oscillating cold spot": "#c6dbef",
    "historical cold spot": "#deebf7",
}

EVENT_POPUP_COLUMNS: tuple[str, ...] = (
    "event_id", "observed_at", "location_kind", "entry_country", "transport_mode", "persons",
    "smugglers", "source_unit", "notes",
)
"""Event columns shown in a popup when present (individual events only)."""

VENDOR_FILES: dict[str, tuple[str, str]] = {
    "leaflet_js": ("leaflet", "leaflet.js"),
    "leaflet_css": ("leaflet", "leaflet.css"),
    "markercluster_js": ("leaflet_markercluster", "leaflet.markercluster.js"),
    "markercluster_css": ("leaflet_markercluster", "MarkerCluster.css"),
    "markercluster_default_css": ("leaflet_markercluster", "MarkerCluster.Default.css"),
    "heat_js": ("folium", "leaflet_heat.min.js"),
}
"""Vendored asset key -> (package, file inside the package) served under the app's static route."""

LUXEMBOURG_CENTRE = (49.815, 6.13)


def text(value: Any) -> str:
    """Escape a value for HTML *and* for a JavaScript template literal.

    Folium places tooltip and popup text inside JavaScript backtick strings, so besides
    ``html.escape`` the backtick, ``$`` and backslash are turned into character references,
    which leave nothing for ``${...}`` interpolation or string break-out.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    escaped = html.escape(str(value), quote=True)
    return escaped.replace("`", "&#96;").replace("$", "&#36;").replace("\\", "&#92;")


def vendor_url(key: str, *, asset_base: str) -> str:
    """URL of a vendored asset (``VENDOR_FILES`` key) under ``asset_base``."""
    package, name = VENDOR_FILES[key]
    return f"{asset_base.rstrip('/')}/{package}/{name}"


class _Script(MacroElement):
    """Run a snippet of JavaScript against the map (values passed as JSON, never spliced as text)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function (map, data) { {{ this.body }} })({{ this._parent.get_name() }}, {{ this.data_json }});
        {% endmacro %}
        """
    )

    def __init__(self, body: str, data: Any) -> None:
        super().__init__()
        self._name = "Script"
        self.body = body
        # JSON embedded in a <script>: neutralise "</" and comment openers as well.
        self.data_json = (
            json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        )


def _legend(html_body: str, *, position: str = "bottomright") -> _Script:
    body = (
        "var c = L.control({position: data.position});"
        "c.onAdd = function () { var d = L.DomUtil.create('div', 'geo-ibm-legend');"
        " d.innerHTML = data.html; L.DomEvent.disableClickPropagation(d); return d; };"
        "c.addTo(map);"
    )
    return _Script(body, {"position": position, "html": html_body})


def _legend_html(title: str, entries: Sequence[tuple[str, str, str]]) -> str:
    """Legend block; ``entries`` are (colour, shape 'line'|'dot'|'box', label); all text escaped."""
    rows = []
    for colour, shape, label in entries:
        rows.append(
            f'<div class="row"><span class="sw {shape}" style="background:{text(colour)}"></span>'
            f"{text(label)}</div>"
        )
    return f'<div class="block"><b>{text(title)}</b>{"".join(rows)}</div>'


_MAP_CSS = """
.geo-ibm-legend{background:rgba(255,255,255,.92);padding:6px 8px;font:12px/1.35 sans-serif;
 border-radius:4px;box-shadow:0 0 4px rgba(0,0,0,.3);max-height:60vh;overflow:auto}
.geo-ibm-legend .block+.block{margin-top:6px}
.geo-ibm-legend .row{white-space:nowrap}
.geo-ibm-legend .sw{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle;
 border:1px solid rgba(0,0,0,.35)}
.geo-ibm-legend .sw.line{height:3px;border:0}
.geo-ibm-legend .sw.dot{width:10px;border-radius:50%}
.leaflet-container.leaflet-container{background:#f4f4f0}
"""


def base_map(
    *,
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
) -> folium.Map:
    """An empty Leaflet map of Luxembourg that loads only local assets.

    Parameters
    ----------
    tiles_url
        Optional XYZ tile URL template of a basemap server; without it the map shows vector
        layers only and needs no network.
    tile_attribution
        Attribution of that tile server (required by most servers; shown escaped).
    asset_base
        URL prefix under which Leaflet and its plugins are served (see ``VENDOR_FILES``).
    """
    fmap = folium.Map(location=LUXEMBOURG_CENTRE, zoom_start=9, tiles=None, control_scale=True, prefer_canvas=False)
    # Only Leaflet is needed: CircleMarkers and our own legend replace Bootstrap/awesome-markers.
    fmap.default_js = [("leaflet", vendor_url("leaflet_js", asset_base=asset_base))]
    fmap.default_css = [("leaflet_css", vendor_url("leaflet_css", asset_base=asset_base))]
    # An empty icon keeps browsers from asking the server for /favicon.ico.
    root: Any = fmap.get_root()  # a branca Figure, which has a header
    root.header.add_child(folium.Element(f'<link rel="icon" href="data:,"><style>{_MAP_CSS}</style>'), name="geo_ibm_css")
    if tiles_url:
        folium.TileLayer(
            tiles=tiles_url, attr=text(tile_attribution or tiles_url), name="Basemap", overlay=False, control=True
        ).add_to(fmap)
    fmap.add_child(
        _Script("map.attributionControl.addAttribution(data.text);", {"text": text(OSM_ATTRIBUTION)}),
        name="osm_attribution",
    )
    return fmap


def _to_web(gdf: gpd.GeoDataFrame, *, name: str, simplify_m: float = 0.0) -> gpd.GeoDataFrame:
    gdf = ensure_working_crs(gdf, name=name)
    if simplify_m > 0:
        gdf = gdf.assign(geometry=gdf.geometry.simplify(simplify_m, preserve_topology=True))
    web = gdf.to_crs(WEB_CRS)
    # 1e-5 degrees is about a metre: enough for display, and keeps the page small.
    return web.assign(geometry=shapely.set_precision(web.geometry.values, 1e-5, mode="pointwise"))


def _feature_collection(web: gpd.GeoDataFrame, properties: pd.DataFrame) -> dict[str, Any]:
    features = []
    records = properties.to_dict(orient="records")
    for geom, props in zip(web.geometry, records):
        if geom is None or geom.is_empty:
            continue
        features.append({"type": "Feature", "geometry": shapely.geometry.mapping(geom), "properties": props})
    return {"type": "FeatureCollection", "features": features}


def _escaped_columns(frame: pd.DataFrame | gpd.GeoDataFrame, columns: Sequence[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(frame)))
    for col in columns:
        values = frame[col].to_numpy()
        out[col] = [text(v.isoformat() if hasattr(v, "isoformat") else v) for v in values]
    return out


def add_outline(fmap: folium.Map, outline: gpd.GeoDataFrame, *, t: Translate = str) -> None:
    """Luxembourg's outline as a thin grey line (not clickable)."""
    web = _to_web(outline, name="outline", simplify_m=20)
    folium.GeoJson(
        _feature_collection(web, pd.DataFrame(index=range(len(web)))),
        name=t("Luxembourg"),
        style_function=lambda _f: {"color": "#555555", "weight": 1.5, "fill": True, "fillOpacity": 0.03, "dashArray": "4 3"},
        interactive=False,
    ).add_to(fmap)
    minx, miny, maxx, maxy = web.total_bounds
    fmap.fit_bounds([[float(miny), float(minx)], [float(maxy), float(maxx)]])


def add_borders(fmap: folium.Map, borders: gpd.GeoDataFrame, *, t: Translate = str) -> list[tuple[str, str, str]]:
    """The internal border lines coloured by neighbour, with name and length in a tooltip.

    ``borders`` has columns ``neighbour``, ``name``, ``length_km``. Returns the legend entries.
    """
    web = _to_web(borders, name="internal borders", simplify_m=10)
    props = _escaped_columns(web, ["neighbour", "name"])
    props["length"] = [f"{float(v):.1f} km" for v in web["length_km"]]
    props["colour"] = [NEIGHBOUR_COLOURS.get(str(n), "#000000") for n in web["neighbour"]]
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Internal Schengen borders"),
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": 4, "opacity": 0.9},
        tooltip=folium.GeoJsonTooltip(fields=["name", "length"], aliases=[text(t("Border")), text(t("Length"))]),
    ).add_to(fmap)
    entries = []
    for row in web[["neighbour", "name", "length_km"]].itertuples(index=False):
        entries.append((NEIGHBOUR_COLOURS.get(str(row.neighbour), "#000000"), "line", f"{row.name} ({row.length_km:.1f} km)"))
    return entries


def _kind_colours(kinds: Sequence[str]) -> dict[str, str]:
    colours: dict[str, str] = {}
    spare = iter(_FALLBACK_COLOURS * 4)
    for kind in sorted(set(kinds)):
        colours[kind] = CROSSING_COLOURS.get(kind) or next(spare)
    return colours


def add_crossings(fmap: folium.Map, crossings: gpd.GeoDataFrame, *, t: Translate = str) -> list[tuple[str, str, str]]:
    """Crossing points as CircleMarkers coloured by ``kind``; tooltip with name, kind, ref, neighbour."""
    web = _to_web(crossings, name="crossing points")
    kinds = [str(k) for k in web["kind"]]
    colours = _kind_colours(kinds)
    fields = [c for c in ("name", "kind", "ref", "neighbour") if c in web.columns]
    props = _escaped_columns(web, fields)
    props["colour"] = [colours[k] for k in kinds]
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Border crossing points"),
        marker=folium.CircleMarker(radius=5, weight=1, fill=True, fill_opacity=0.9),
        style_function=lambda f: {"color": "#222222", "fillColor": f["properties"]["colour"], "weight": 1},
        tooltip=folium.GeoJsonTooltip(fields=fields, aliases=[text(t(f.capitalize())) for f in fields]),
    ).add_to(fmap)
    return [(colour, "dot", t(kind)) for kind, colour in colours.items()]


def event_coordinates(events: gpd.GeoDataFrame | np.ndarray) -> np.ndarray:
    """``(n, 2)`` EPSG:2169 coordinates of events given as a GeoDataFrame or as such an array.

    Missing and empty geometries (and non-finite coordinates) are left out.
    """
    if isinstance(events, np.ndarray):
        xy = np.asarray(events, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            from geo_ibm.errors import ValidationError

            raise ValidationError(f"events as an array must have shape (n, 2) (x, y in EPSG:2169), got {xy.shape}")
    else:
        events = ensure_working_crs(events, name="events")
        pts = events.geometry
        pts = pts[~(pts.isna() | pts.is_empty)]
        xy = shapely.get_coordinates(pts.values)
    return xy[np.isfinite(xy).all(axis=1)]


def aggregate_events(
    events: gpd.GeoDataFrame | np.ndarray, *, max_cells: int = 1500, min_cell_m: float = 500.0
) -> gpd.GeoDataFrame:
    """Count events in square display cells, doubling the cell size until at most ``max_cells`` are used.

    This bounds the size of a map page whatever the number of events. Analysis grids live in
    ``geo_ibm.grid``; these cells only serve drawing.

    Parameters
    ----------
    events
        Point GeoDataFrame, or an ``(n, 2)`` array of EPSG:2169 coordinates (e.g. from
        ``GeoPackageStore.event_points``).

    Returns
    -------
    GeoDataFrame in EPSG:2169 with columns ``count`` (events in the cell), ``cell_m`` (side in
    metres) and ``geometry`` (the square cell).
    """
    if max_cells < 1:
        from geo_ibm.errors import ValidationError

        raise ValidationError(f"max_cells must be at least 1, got {max_cells}")
    xy = event_coordinates(events)
    crs = "EPSG:2169" if isinstance(events, np.ndarray) else ensure_working_crs(events, name="events").crs
    if len(xy) == 0:
        return gpd.GeoDataFrame({"count": [], "cell_m": []}, geometry=[], crs=crs)
    size = float(min_cell_m)
    # Bin once at the finest size; a doubled cell's index is the halved index (floor(v/2) ==
    # floor(floor(v)/2), and x/(2s) == (x/s)/2 exactly in binary floating point), so coarser
    # levels merge the few occupied cells instead of re-binning every event.
    ij = np.floor(xy / size).astype(np.int64)
    low = ij.min(axis=0)
    rows = int(ij[:, 1].max() - low[1]) + 1
    # One integer key per cell sorts like the (i, j) pairs and is much faster to unique.
    keys, counts = np.unique((ij[:, 0] - low[0]) * rows + (ij[:, 1] - low[1]), return_counts=True)
    cells = np.column_stack([keys // rows + low[0], keys % rows + low[1]])
    while len(cells) > max_cells:
        size *= 2
        cells, inverse = np.unique(np.floor_divide(cells, 2), axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=counts, minlength=len(cells)).astype(np.int64)
    geoms = shapely.box(cells[:, 0] * size, cells[:, 1] * size, (cells[:, 0] + 1) * size, (cells[:, 1] + 1) * size)
    return gpd.GeoDataFrame({"count": counts.astype(int), "cell_m": size}, geometry=geoms, crs=crs)


def count_classes(counts: np.ndarray, *, n: int = 5) -> list[tuple[int, int]]:
    """Display classes (inclusive integer ranges) of cell counts by quantiles, at most ``n``."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0:
        return []
    qs = np.unique(np.ceil(np.quantile(counts, np.linspace(0, 1, n + 1)[1:])).astype(int))
    lo = int(counts.min())
    classes = []
    for hi in qs:
        if hi < lo:
            continue
        classes.append((lo, int(hi)))
        lo = int(hi) + 1
    return classes


def add_events(
    fmap: folium.Map,
    events: gpd.GeoDataFrame | np.ndarray,
    *,
    max_markers: int = 1000,
    max_cells: int = 1500,
    heat: bool = True,
    asset_base: str = "/assets",
    details: bool = True,
    disclosure: DisclosureRule | None = None,
    t: Translate = str,
) -> list[str]:
    """Events as aggregated cells, plus individual CircleMarkers with popups when few enough.

    With ``disclosure`` (aggregates-only readers, implies ``details=False``) the cells are the
    rule's fixed national cells (never merged, so every such map uses the same cells), cells
    with suppressed counts are left out and the other counts are rounded
    (:mod:`geo_ibm.disclosure`).

    ``events`` may also be an ``(n, 2)`` array of EPSG:2169 coordinates; those are drawn as
    cells only (an array has no attributes for popups). With ``details=False`` no individual
    event is drawn at all (cells and heat only) and the legend says why: single records are
    for readers entitled to them. Returns the legend HTML blocks.
    """
    blocks: list[str] = []
    if len(events) == 0:
        blocks.append(f'<div class="block">{text(t("No events match the filter."))}</div>')
        return blocks
    if disclosure is not None:
        details = False
        # Luxembourg holds about 10,400 cells of 500 m: bounded without merging.
        cells = aggregate_events(events, max_cells=1_000_000, min_cell_m=float(disclosure.cell_m))
        shown = protect_counts(cells["count"].to_numpy(), disclosure)
        keep = np.isfinite(shown) & (shown > 0)
        cells = cells[keep].assign(count=shown[keep].astype(int))
        if cells.empty:
            blocks.append(f'<div class="block">{text(t("No cell holds enough events to be shown."))} '
                          f'{text(t("Individual events need the analyst role."))}</div>')
            return blocks
    else:
        cells = aggregate_events(events, max_cells=max_cells)
    classes = count_classes(cells["count"].to_numpy())
    web = _to_web(cells, name="event cells")
    colour_of = np.full(len(web), EVENT_CLASS_COLOURS[-1], dtype=object)
    palette = EVENT_CLASS_COLOURS[-len(classes):] if classes else EVENT_CLASS_COLOURS
    for (lo, hi), colour in zip(classes, palette):
        colour_of[(web["count"] >= lo) & (web["count"] <= hi)] = colour
    props = pd.DataFrame({"count": web["count"].astype(int).to_numpy(), "colour": colour_of})
    cell_km = float(cells["cell_m"].iloc[0]) / 1000
    folium.GeoJson(
        _feature_collection(web, props),
        name=t("Events per cell") + f" ({cell_km:g} km)",
        style_function=lambda f: {"color": "#444444", "weight": 0.3, "fillColor": f["properties"]["colour"], "fillOpacity": 0.7},
        tooltip=folium.GeoJsonTooltip(fields=["count"], aliases=[text(t("Events"))]),
    ).add_to(fmap)
    entries = [(colour, "box", f"{lo}" if lo == hi else f"{lo}–{hi}") for (lo, hi), colour in zip(classes, palette)]
    blocks.append(_legend_html(t("Events per cell") + f" ({cell_km:g} km)", entries))

    if heat:
        centroids = _to_web(cells.assign(geometry=cells.geometry.centroid), name="event cells")
        weights = cells["count"].to_numpy() / max(1, int(cells["count"].max()))
        data = [[g.y, g.x, round(float(w), 4)] for g, w in zip(centroids.geometry, weights)]
        layer = folium.plugins.HeatMap(data, name=t("Event density (heat)"), show=False, radius=18, blur=15, min_opacity=0.3)
        layer.default_js = [("leaflet-heat.js", vendor_url("heat_js", asset_base=asset_base))]
        layer.add_to(fmap)

    if disclosure is not None:
        note = t("Counts under %(k)s are hidden and the others rounded to %(r)s.") % {
            "k": disclosure.min_count, "r": disclosure.rounding}
        blocks.append(f'<div class="block">{text(t("Individual events need the analyst role."))} {text(note)}</div>')
    elif not details:
        blocks.append(f'<div class="block">{text(t("Individual events need the analyst role."))}</div>')
    elif len(events) <= max_markers and not isinstance(events, np.ndarray):
        ev = ensure_working_crs(events, name="events")
        ev = ev[~(ev.geometry.isna() | ev.geometry.is_empty)]
        web_ev = _to_web(ev, name="events")
        fields = [c for c in EVENT_POPUP_COLUMNS if c in web_ev.columns]
        props = _escaped_columns(web_ev, fields)
        folium.GeoJson(
            _feature_collection(web_ev, props),
            name=t("Individual events"),
            marker=folium.CircleMarker(radius=4, weight=1, fill=True, fill_opacity=0.8),
            style_function=lambda _f: {"color": "#3b0a45", "fillColor": "#9c27b0", "weight": 1},
            popup=folium.GeoJsonPopup(fields=fields, aliases=[text(t(f.replace("_", " ").capitalize())) for f in fields], localize=False),
        ).add_to(fmap)
        blocks.append(_legend_html(t("Individual events"), [("#9c27b0", "dot", t("one event (click for details)"))]))
    else:
        blocks.append(
            f'<div class="block">{text(t("Individual events are shown when at most"))} {max_markers} '
            f'{text(t("match the filter."))}</div>'
        )
    return blocks


def _finish(fmap: folium.Map, blocks: list[str]) -> folium.Map:
    if blocks:
        fmap.add_child(_legend("".join(blocks)), name="legend")
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


def overview_map(
    events: gpd.GeoDataFrame | np.ndarray,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
    max_markers: int = 1000,
    max_cells: int = 1500,
    details: bool = True,
    disclosure: DisclosureRule | None = None,
    t: Translate = str,
) -> folium.Map:
    """Overview map: outline, border lines by neighbour, crossing points by kind and the events.

    All inputs are EPSG:2169 GeoDataFrames (converted to EPSG:4326 here). ``borders`` needs
    ``neighbour``, ``name``, ``length_km``; ``crossings`` needs ``name`` and ``kind``. Events are
    drawn as at most ``max_cells`` display cells, and individually (with escaped popups) only
    when at most ``max_markers`` are given, so the page size is bounded. ``events`` may be an
    ``(n, 2)`` array of EPSG:2169 coordinates instead (cells only: the fast path for large
    selections, see ``GeoPackageStore.event_points``). ``details=False`` leaves individual
    events out whatever their number (aggregated cells and heat only). ``t`` translates labels.
    """
    fmap = base_map(tiles_url=tiles_url, tile_attribution=tile_attribution, asset_base=asset_base)
    add_outline(fmap, outline, t=t)
    blocks = add_events(fmap, events, max_markers=max_markers, max_cells=max_cells, asset_base=asset_base,
                        details=details, disclosure=disclosure, t=t)
    border_entries = add_borders(fmap, borders, t=t)
    crossing_entries = add_crossings(fmap, crossings, t=t)
    blocks.insert(0, _legend_html(t("Internal Schengen borders"), border_entries))
    blocks.insert(1, _legend_html(t("Border crossing points"), crossing_entries))
    return _finish(fmap, blocks)


def _polygon_layer(
    fmap: folium.Map,
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    colours: Sequence[str],
    fields: Sequence[str],
    aliases: Sequence[str],
    show: bool,
    fill_opacity: float = 0.65,
) -> None:
    web = _to_web(gdf, name=name)
    props = _escaped_columns(web, fields)
    props["colour"] = list(colours)
    folium.GeoJson(
        _feature_collection(web, props),
        name=name,
        show=show,
        style_function=lambda f: {"color": f["properties"]["colour"], "weight": 0.6, "fillColor": f["properties"]["colour"], "fillOpacity": fill_opacity},
        tooltip=folium.GeoJsonTooltip(fields=list(fields), aliases=[text(a) for a in aliases]) if fields else None,
    ).add_to(fmap)


def hotspot_map(
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    gi: gpd.GeoDataFrame | None = None,
    contours: gpd.GeoDataFrame | None = None,
    clusters: gpd.GeoDataFrame | None = None,
    emerging: gpd.GeoDataFrame | None = None,
    tiles_url: str | None = None,
    tile_attribution: str | None = None,
    asset_base: str = "/assets",
    notes: Sequence[str] = (),
    max_cells: int = 4000,
    t: Translate = str,
) -> folium.Map:
    """Hotspot map with switchable layers and legends; every layer is optional.

    Parameters
    ----------
    gi
        Gi* grid cells with ``gi_bin`` (-3..3; 0 not significant, not drawn) and optionally ``gi_z``
        and ``count``; when ``gi_bin_fdr`` is present, cells are drawn by that FDR-corrected bin.
    contours
        KDE contour polygons with a ``level`` column (density threshold) when available.
    clusters
        Cluster hulls (``geo_ibm.clusters.density_clusters``): ``cluster_id``, ``n_events``,
        ``persons``, ``first_seen``, ``last_seen`` are shown when present.
    emerging
        Grid cells with an emerging hot spot ``category``; "no pattern detected" is not drawn.
    notes
        Messages shown in the legend (e.g. why a method could not run on this selection).
    max_cells
        Above this many significant Gi* cells (or emerging cells with a pattern), the cells of
        each bin (category) are merged into one polygon so that the page stays small.
    """
    fmap = base_map(tiles_url=tiles_url, tile_attribution=tile_attribution, asset_base=asset_base)
    add_outline(fmap, outline, t=t)
    blocks: list[str] = []
    if gi is not None and len(gi):
        if "gi_bin_fdr" in gi.columns:
            # The FDR-corrected bins are the verdict a map shows (the API's significance too).
            gi = gi.assign(gi_bin=gi["gi_bin_fdr"])
        sig = gi[gi["gi_bin"].astype(int) != 0]
        if len(sig):
            shown = sig.copy()
            if len(shown) > max_cells:
                # Too many cells for a light page: merge the cells of each confidence bin.
                shown = shown[["gi_bin", "geometry"]].assign(gi_bin=shown["gi_bin"].astype(int)).dissolve(by="gi_bin").reset_index()
            bins = shown["gi_bin"].astype(int).to_numpy()
            fields = [c for c in ("gi_bin", "gi_z", "count") if c in shown.columns]
            if "gi_z" in shown:
                shown["gi_z"] = shown["gi_z"].astype(float).round(2)
            _polygon_layer(
                fmap, shown, name=t("Gi* hot and cold spots"), colours=[GI_BIN_COLOURS[b] for b in bins],
                fields=fields, aliases=[t(f) for f in fields], show=True,
            )
        present = sorted(set(sig["gi_bin"].astype(int)), reverse=True)
        blocks.append(_legend_html(t("Gi* hot and cold spots"), [(GI_BIN_COLOURS[b], "box", t(GI_BIN_LABELS[b])) for b in present] or [("#ffffff", "box", t("No significant cells"))]))
    if contours is not None and len(contours):
        levels = contours["level"].astype(float).to_numpy() if "level" in contours else np.arange(len(contours), dtype=float)
        order = np.argsort(np.argsort(levels))
        ramp = ["#fff5eb", "#fdd0a2", "#fdae6b", "#fd8d3c", "#e6550d", "#a63603"]
        colours = [ramp[min(len(ramp) - 1, int(o * len(ramp) / max(1, len(levels))))] for o in order]
        fields = ["level"] if "level" in contours else []
        _polygon_layer(fmap, contours.sort_values("level") if "level" in contours else contours,
                       name=t("Kernel density contours"), colours=[colours[i] for i in np.argsort(levels)] if fields else colours,
                       fields=fields, aliases=[t("Density level")], show=False, fill_opacity=0.35)
        blocks.append(_legend_html(t("Kernel density contours"), [(ramp[1], "box", t("low")), (ramp[-1], "box", t("high"))]))
    if clusters is not None and len(clusters):
        colours = [_FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)] for i in range(len(clusters))]
        fields = [c for c in ("cluster_id", "cluster", "n_events", "persons", "first_seen", "last_seen") if c in clusters.columns]
        _polygon_layer(fmap, clusters, name=t("Density clusters"), colours=colours, fields=fields,
                       aliases=[t(f) for f in fields], show=False, fill_opacity=0.3)
        blocks.append(_legend_html(t("Density clusters"), [(_FALLBACK_COLOURS[0], "box", t("cluster hull (one colour per cluster)"))]))
    if emerging is not None and len(emerging):
        cats = emerging["category"].astype(str)
        drawn = emerging[cats.isin(EMERGING_COLOURS.keys())]
        if len(drawn) > max_cells:
            drawn = drawn[["category", "geometry"]].dissolve(by="category").reset_index()
        if len(drawn):
            _polygon_layer(fmap, drawn, name=t("Emerging hot spots"),
                           colours=[EMERGING_COLOURS[c] for c in drawn["category"].astype(str)],
                           fields=["category"], aliases=[t("Category")], show=False)
        present = [c for c in EMERGING_COLOURS if c in set(drawn["category"].astype(str))]
        blocks.append(_legend_html(t("Emerging hot spots"), [(EMERGING_COLOURS[c], "box", t(c)) for c in present] or [("#ffffff", "box", t("no pattern detected"))]))
    entries = add_borders(fmap, borders, t=t)
    blocks.insert(0, _legend_html(t("Internal Schengen borders"), entries))
    if notes:
        blocks.append('<div class="block">' + "".join(f'<div class="row note">{text(n)}</div>' for n in notes) + "</div>")
    return _finish(fmap, blocks)


def render_map(fmap: folium.Map) -> str:
    """The map as one HTML document (assets referenced by URL, see ``VENDOR_FILES``)."""
    return fmap.get_root().render()


def asset_urls(html_doc: str) -> list[str]:
    """Every ``src``/``href`` URL the document references (to check what a map loads)."""
    import re

    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html_doc)


def layer_names(fmap: folium.Map) -> list[str]:
    """Names of the switchable layers of a map, in drawing order."""
    return [child.layer_name for child in fmap._children.values() if getattr(child, "control", False) and hasattr(child, "layer_name")]


__all__ = [
    "NEIGHBOUR_COLOURS", "CROSSING_COLOURS", "GI_BIN_COLOURS", "EMERGING_COLOURS", "VENDOR_FILES",
    "text", "vendor_url", "base_map", "add_outline", "add_borders", "add_crossings", "add_events",
    "aggregate_events", "event_coordinates", "count_classes", "overview_map", "hotspot_map", "render_map", "asset_urls", "layer_names",
]
