"""Place labels on the web maps: commune names at their label points, as one layer the reader can switch off."""
from __future__ import annotations

from typing import Any

import folium
import geopandas as gpd
import numpy as np
from branca.element import Element

from geo_ibm.io import ensure_working_crs
from geo_ibm.maps.base import Translate, _Script
from geo_ibm.settings import WEB_CRS

MINOR_ZOOM = 11
"""From this zoom level on every commune is labelled; below it only the canton seats (``rank`` 1),
which keeps the national view legible (100 names would overlap at zoom 9)."""

_CSS = """
.geo-ibm-place{background:none;border:0;pointer-events:none}
.geo-ibm-place span{display:block;transform:translate(-50%,-50%);white-space:nowrap;font:11px/1.1 sans-serif;
 color:#2b2b2b;text-shadow:0 0 2px #fff,0 0 2px #fff,0 0 3px #fff}
.geo-ibm-place.major span{font-weight:bold;font-size:12px;color:#1a1a1a}
.geo-ibm-place.minor{display:none}
.geo-ibm-places-all .geo-ibm-place.minor{display:block}
"""

# The names go in as text nodes (textContent), never as HTML: nothing in a name can become markup.
_BODY = """
var group = map;
data.labels.forEach(function (p) {
  var el = document.createElement('span');
  el.textContent = p.name;
  L.marker([p.lat, p.lon], {
    icon: L.divIcon({className: 'geo-ibm-place ' + (p.rank === 1 ? 'major' : 'minor'), html: el, iconSize: null}),
    interactive: false, keyboard: false
  }).addTo(group);
});
function watch(m) {
  var update = function () {
    var box = m.getContainer();
    if (m.getZoom() >= data.minor_zoom) { box.classList.add('geo-ibm-places-all'); }
    else { box.classList.remove('geo-ibm-places-all'); }
  };
  m.on('zoomend', update);
  update();
}
if (group._map) { watch(group._map); } else { group.once('add', function () { watch(group._map); }); }
"""


def label_records(places: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    """``{"name", "rank", "lat", "lon"}`` per place (EPSG:4326, 1e-5 degrees), the data of the label layer."""
    points = ensure_working_crs(places, name="places")
    web = points.to_crs(WEB_CRS)
    names = points["commune"] if "commune" in points.columns else points["name"]
    ranks = points["rank"].to_numpy() if "rank" in points.columns else np.ones(len(points), dtype=np.int64)
    out = []
    for name, rank, geom in zip(names, ranks, web.geometry):
        if geom is None or geom.is_empty or name is None:
            continue
        point = geom if geom.geom_type == "Point" else geom.representative_point()
        out.append({"name": str(name), "rank": int(rank), "lat": round(float(point.y), 5), "lon": round(float(point.x), 5)})
    return out


def add_place_labels(
    fmap: folium.Map,
    places: gpd.GeoDataFrame | None = None,
    *,
    t: Translate = str,
    show: bool = True,
    minor_zoom: int = MINOR_ZOOM,
) -> folium.FeatureGroup:
    """Add commune (town) names as a switchable layer "Place labels".

    Parameters
    ----------
    fmap
        The map (:func:`geo_ibm.maps.base.base_map`).
    places
        Points with ``commune`` (or ``name``) and optionally ``rank`` (1: always shown, else
        from ``minor_zoom`` on); default :func:`geo_ibm.gazetteer.commune_points`.
    t
        Translates the layer's name.
    show
        Whether the layer is on when the map opens.
    minor_zoom
        Zoom level from which places of rank 2 and more are labelled too.

    Returns
    -------
    folium.FeatureGroup
        The layer (listed in the map's layer control as ``t("Place labels")``).
    """
    if places is None:
        from geo_ibm.gazetteer import commune_points

        places = commune_points()
    root: Any = fmap.get_root()
    root.header.add_child(Element(f"<style>{_CSS}</style>"), name="geo_ibm_place_css")
    group = folium.FeatureGroup(name=t("Place labels"), show=show, control=True)
    group.add_child(_Script(_BODY, {"labels": label_records(places), "minor_zoom": int(minor_zoom)}),
                    name="place_labels")
    group.add_to(fmap)
    return group


__all__ = ["MINOR_ZOOM", "add_place_labels", "label_records"]
