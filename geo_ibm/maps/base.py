"""Base of the Folium maps: an empty map with locally served assets, the reference layers
(outline, internal borders, crossing points), legends, escaping and rendering."""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template

from geo_ibm.errors import Problem, ValidationError
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


def checked_frame(frame: Any, name: str, needed: Sequence[str] = ()) -> gpd.GeoDataFrame:
    """``frame`` when it is a GeoDataFrame with every column of ``needed``; else a :class:`ValidationError`
    naming ``name`` (not a GeoDataFrame) or the first missing column."""
    if not isinstance(frame, gpd.GeoDataFrame):
        raise ValidationError(f"{name} must be a GeoDataFrame, got {type(frame).__name__}",
                              [Problem("not a GeoDataFrame", column=name)])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValidationError(f"{name} has no column {missing[0]!r}", [Problem("missing column", column=missing[0])])
    return frame


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
    """Luxembourg's outline as a thin grey line (not clickable), and the place labels layer
    (:func:`geo_ibm.maps.placelabels.add_place_labels`)."""
    web = _to_web(outline, name="outline", simplify_m=20)
    folium.GeoJson(
        _feature_collection(web, pd.DataFrame(index=range(len(web)))),
        name=t("Luxembourg"),
        style_function=lambda _f: {"color": "#555555", "weight": 1.5, "fill": True, "fillOpacity": 0.03, "dashArray": "4 3"},
        interactive=False,
    ).add_to(fmap)
    minx, miny, maxx, maxy = web.total_bounds
    fmap.fit_bounds([[float(miny), float(minx)], [float(maxy), float(maxx)]])
    # Every web map draws the outline first, so every web map gets the place labels here.
    from geo_ibm.maps.placelabels import add_place_labels

    add_place_labels(fmap, t=t)


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


def _finish(fmap: folium.Map, blocks: list[str], *, legend_position: str = "bottomright") -> folium.Map:
    if blocks:
        fmap.add_child(_legend("".join(blocks), position=legend_position), name="legend")
    folium.LayerControl(collapsed=False).add_to(fmap)
    return fmap


_HIDDEN = "position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);border:0"


def render_map(fmap: folium.Map, *, title: str = "Map", lang: str = "en") -> str:
    """The map as one HTML document (assets referenced by URL, see ``VENDOR_FILES``).

    Folium's document is made accessible (WCAG 2.1 AA, as axe-core checks it): the language
    ``lang`` and the ``title`` on the document, the map inside a ``main`` landmark headed by the
    title (visually hidden), and a viewport that lets the reader zoom.
    """
    import html
    import re

    doc = fmap.get_root().render()
    name = html.escape(title)
    code = re.sub(r"[^A-Za-z-]", "", lang)[:12] or "en"
    doc = doc.replace("<html>", f'<html lang="{code}">', 1)
    doc = re.sub(r'<meta name="viewport"[^>]*>', '<meta name="viewport" content="width=device-width, initial-scale=1.0" />',
                 doc, count=1)
    doc = doc.replace("<head>", f"<head>\n    <title>{name}</title>", 1)
    # The landmark fills the page: Folium's map is 100 % of its parent's height.
    doc = doc.replace("<body>", f'<body>\n<main style="width:100%;height:100%">\n<h1 style="{_HIDDEN}">{name}</h1>', 1)
    return doc.replace("</body>", "</main>\n</body>", 1)


def asset_urls(html_doc: str) -> list[str]:
    """Every ``src``/``href`` URL the document references (to check what a map loads)."""
    import re

    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html_doc)


def layer_names(fmap: folium.Map) -> list[str]:
    """Names of the switchable layers of a map, in drawing order."""
    return [child.layer_name for child in fmap._children.values() if getattr(child, "control", False) and hasattr(child, "layer_name")]


__all__ = [
    "NEIGHBOUR_COLOURS", "CROSSING_COLOURS", "VENDOR_FILES", "LUXEMBOURG_CENTRE", "Translate",
    "text", "vendor_url", "checked_frame", "base_map", "add_outline", "add_borders", "add_crossings", "render_map", "asset_urls", "layer_names",
]
