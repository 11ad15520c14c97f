"""JSON API: reference layers, events, counts and hotspot results as GeoJSON (``/api``)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd
from flask import Blueprint, Response, json, request, url_for
from werkzeug.exceptions import HTTPException

from geo_ibm.errors import GeoIbmError, NotFoundError
from geo_ibm.geojson import json_value, to_feature_collection
from geo_ibm.settings import OSM_ATTRIBUTION, WEB_CRS
from webapp.auth import get_store, require_role
from webapp.params import (
    EVENT_FILTERS,
    Interval,
    bbox_to_working_crs,
    check_known,
    error_body,
    parameter_error,
    parse_bbox,
    parse_choice,
    parse_date_range,
    parse_datetime,
    parse_event_filters,
    parse_float,
    parse_int,
    parse_limit,
    parse_offset,
    single,
)

api_bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

GEOJSON = "application/geo+json"
HOTSPOT_METHODS = ("gi", "lisa", "kde", "clusters", "emerging")

# Who may call what; everything needs a login. Maps and their aggregates (reference layers,
# counts, hotspot grids) are for every role. Single interception records are the sensitive
# part (time, place, group size, free-text notes), so reading them raw, here or through the
# OGC API that GIS clients page through in bulk, takes the analyst role.
ROLE_LAYERS = "viewer"
ROLE_STATS = "viewer"
ROLE_HOTSPOTS = "viewer"
ROLE_EVENTS = "analyst"


@dataclass(frozen=True)
class LayerSpec:
    """A shipped reference layer: the ``geo_ibm.layers`` function and its feature-id column."""

    function: str
    id_column: str | None
    title: str
    description: str
    attribution: str | None = None
    """Credit the data's licence requires wherever the layer is served (ODbL for OSM-derived layers)."""


LAYERS: dict[str, LayerSpec] = {
    "outline": LayerSpec("luxembourg_outline", None, "Luxembourg outline",
                         "National boundary of the Grand Duchy of Luxembourg.",
                         attribution=OSM_ATTRIBUTION),
    "borders": LayerSpec("internal_borders", "neighbour", "Internal Schengen borders",
                         "Border lines with Belgium, France and Germany, with their length in km.",
                         attribution=OSM_ATTRIBUTION),
    "tripoints": LayerSpec("tripoints", None, "Tripoints", "Points where three national borders meet.",
                           attribution=OSM_ATTRIBUTION),
    "crossings": LayerSpec("crossing_points", "crossing_id", "Border crossing points",
                           "Road, rail and path crossings of the internal borders."),
    "cantons": LayerSpec("cantons", "canton", "Cantons", "The 12 cantons with their police region.",
                         attribution=OSM_ATTRIBUTION),
    "regions": LayerSpec("police_regions", "region", "Police regions", "The Grand-Ducal Police regions.",
                         attribution=OSM_ATTRIBUTION),
    "corridors": LayerSpec("road_corridors", None, "Road corridors",
                           "Motorways and main roads crossing the internal borders."),
}
"""The reference layers served under ``/api/layers/<name>``."""


# --------------------------------------------------------------------------- helpers


def layer_frame(name: str) -> gpd.GeoDataFrame:
    """Return reference layer ``name`` (a key of :data:`LAYERS`) in EPSG:2169.

    Raises
    ------
    NotFoundError
        For an unknown layer name.
    """
    spec = LAYERS.get(name)
    if spec is None:
        raise NotFoundError(f"unknown layer {name!r}; layers: {', '.join(LAYERS)}")
    from geo_ibm import layers

    loader: Callable[[], gpd.GeoDataFrame] = getattr(layers, spec.function)
    return loader()


def json_response(body: Any, *, status: int = 200, mimetype: str = "application/json") -> Response:
    """Return ``body`` (made JSON-safe) as a response with ``mimetype``."""
    return Response(json.dumps(json_value(body)), status=status, mimetype=mimetype)


def handle_error(exc: Exception) -> Response:
    """Turn any error of a JSON view into a JSON response; unexpected ones are logged, never shown."""
    if isinstance(exc, HTTPException):
        body = {"code": exc.name.replace(" ", ""), "description": exc.description}
        response = json_response(body, status=exc.code or 500)
        for key, value in (exc.get_headers() if exc.response is None else []):
            if key.lower() != "content-type":
                response.headers[key] = value
        return response
    if not isinstance(exc, GeoIbmError):
        log.exception("unexpected error in %s %s", request.method, request.path)
    body, status = error_body(exc)
    return json_response(body, status=status)


api_bp.register_error_handler(Exception, handle_error)


def events_in_bbox(
    store: Any,
    *,
    bbox: tuple[float, float, float, float] | None,
    filters: dict[str, Any],
    limit: int,
    offset: int,
) -> tuple[gpd.GeoDataFrame, int]:
    """Return one page of events (EPSG:2169) matching ``filters`` and a CRS84 ``bbox``, and the total.

    The store filters on the EPSG:2169 box enclosing ``bbox``; the points are then tested
    against the exact longitude/latitude box, so paging counts only the events inside it.
    Only the ids and points of the candidates are read (a box around the whole country holds
    every event); the full rows are read for the page alone.
    """
    if bbox is None:
        total = int(store.count(**filters))
        page = store.events(**filters, limit=limit, offset=offset)
        return page, total
    candidates = store.events(**filters, bbox=bbox_to_working_crs(bbox), columns=["event_id"])
    if len(candidates):
        lonlat = candidates.geometry.to_crs(WEB_CRS)
        inside = ((lonlat.x >= bbox[0]) & (lonlat.x <= bbox[2]) & (lonlat.y >= bbox[1]) & (lonlat.y <= bbox[3])).to_numpy()
        candidates = candidates[inside]
    wanted = candidates["event_id"].iloc[offset: offset + limit].tolist()
    # Both reads order by time, so the page keeps the candidates' order.
    page = store.events(event_id=wanted) if wanted else store.events(**filters, limit=0)
    return page, int(len(candidates))


def event_filter_choices() -> dict[str, list[str]]:
    """Known values of the event filters, for validating query parameters."""
    from geo_ibm.events import CODE_LISTS

    choices: dict[str, list[str]] = {k: list(v) for k, v in CODE_LISTS.items()}
    try:
        choices["region"] = [str(r) for r in layer_frame("regions")["region"]]
        choices["canton"] = [str(c) for c in layer_frame("cantons")["canton"]]
    except GeoIbmError:
        # Without the shipped layers the store still validates region names itself.
        pass
    return choices


def time_filters(interval: Interval | None) -> dict[str, Any]:
    """``start``/``end`` keyword arguments for ``store.events`` from an interval (end exclusive)."""
    return {} if interval is None else interval.as_filters()


# --------------------------------------------------------------------------- routes


@api_bp.get("/layers")
@require_role(ROLE_LAYERS)
def layer_list() -> Response:
    """List the reference layers and their URLs."""
    body = [
        {"name": name, "title": spec.title, "description": spec.description, "href": url_for("api.layer", name=name),
         **({"attribution": spec.attribution} if spec.attribution else {})}
        for name, spec in LAYERS.items()
    ]
    return json_response({"layers": body})


@api_bp.get("/layers/<name>")
@require_role(ROLE_LAYERS)
def layer(name: str) -> Response:
    """One reference layer as a GeoJSON FeatureCollection (EPSG:4326)."""
    check_known(request.args, ())
    gdf = layer_frame(name)
    spec = LAYERS[name]
    id_column = spec.id_column if spec.id_column in gdf.columns else None
    members: dict[str, Any] = {"name": name}
    if spec.attribution:
        members["attribution"] = spec.attribution
    return json_response(to_feature_collection(gdf, id_column=id_column, members=members), mimetype=GEOJSON)


EVENT_PARAMS = (*EVENT_FILTERS, "from", "to", "datetime", "bbox", "limit", "offset")


@api_bp.get("/events")
@require_role(ROLE_EVENTS)
def events() -> Response:
    """Events as GeoJSON points, filtered and paged.

    Query parameters: ``quarter``, ``region``, ``canton``, ``location_kind``,
    ``entry_country``, ``transport_mode``; ``from``/``to`` (dates, ``to`` included) or
    ``datetime`` (OGC interval); ``bbox`` (lon/lat); ``limit`` (1..10000, default 1000);
    ``offset``. Unknown parameter names are refused with 400 so typos do not silently widen
    the result.
    """
    args = request.args
    check_known(args, EVENT_PARAMS)
    filters = parse_event_filters(args, choices=event_filter_choices())
    interval = parse_date_range(args)
    when = parse_datetime(single(args, "datetime"))
    if interval is not None and when is not None:
        raise parameter_error("datetime", single(args, "datetime"), "give either datetime or from/to, not both")
    filters.update(time_filters(interval or when))
    bbox = parse_bbox(single(args, "bbox"))
    limit = parse_limit(single(args, "limit"), default=1000)
    offset = parse_offset(single(args, "offset"))
    page, total = events_in_bbox(get_store(), bbox=bbox, filters=filters, limit=limit, offset=offset)
    members = {"numberMatched": total, "numberReturned": int(len(page)), "limit": limit, "offset": offset}
    return json_response(to_feature_collection(page, id_column="event_id", members=members), mimetype=GEOJSON)


@api_bp.get("/events/<event_id>")
@require_role(ROLE_EVENTS)
def event(event_id: str) -> Response:
    """One event as a GeoJSON Feature; 404 if the store has no such event."""
    check_known(request.args, ())
    gdf = get_store().event(event_id)
    if not isinstance(gdf, gpd.GeoDataFrame):
        gdf = gpd.GeoDataFrame([gdf], geometry="geometry", crs=getattr(gdf, "crs", None) or "EPSG:2169")
    fc = to_feature_collection(gdf, id_column="event_id")
    return json_response(fc["features"][0], mimetype=GEOJSON)


@api_bp.get("/stats")
@require_role(ROLE_STATS)
def stats() -> Response:
    """Event counts per quarter and per police region (after the same filters as ``/api/events``).

    Returns ``{"total", "by_quarter": [{"quarter", "events", "persons"}], "by_region":
    [{"region", "events"}], "filters"}``; quarters are spelt as the store spells them
    (``2025Q3``). Counting happens in the store.
    """
    args = request.args
    check_known(args, (*EVENT_FILTERS, "from", "to"))
    filters = parse_event_filters(args, choices=event_filter_choices())
    filters.update(time_filters(parse_date_range(args)))
    # One GROUP BY quarter, region gives the total and both breakdowns.
    counts = get_store().counts(by=("quarter", "region"), **filters)
    quarters = counts.groupby("quarter", sort=True)[["events", "persons"]].sum()
    by_quarter = [{"quarter": str(q), "events": int(row.events), "persons": int(row.persons)}
                  for q, row in quarters.iterrows()]
    per_region = counts.dropna(subset=["region"]).groupby("region")["events"].sum()
    regions = [r for r in event_filter_choices().get("region", []) if filters.get("region") in (None, r)]
    by_region = [{"region": r, "events": int(per_region.get(r, 0))} for r in regions]
    body = {
        "total": int(counts["events"].sum()),
        "by_quarter": by_quarter,
        "by_region": by_region,
        "filters": {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in filters.items()},
    }
    return json_response(body)


HOTSPOT_PARAMS = ("method", "cell", "band", "from", "to", "region", "seed", "cells")
ANALYSIS_COLUMNS = ("observed_at", "persons")
"""Event columns the hotspot methods read besides the geometry (time for emerging hot spots and
cluster spans, persons for cluster sums); the store reads only these for hotspot results."""
CELL_CHOICES = ("significant", "nonzero", "all")


def _significant(result: gpd.GeoDataFrame, method: str) -> pd.Series:
    # Each grid method's own verdict, as the library labels it.
    if method == "gi":
        return result["gi_bin_fdr" if "gi_bin_fdr" in result.columns else "gi_bin"] != 0
    if method == "lisa":
        return result["lisa_class"] != "not significant"
    return result["category"] != "no pattern detected"


def select_cells(result: gpd.GeoDataFrame, *, method: str, cells: str) -> gpd.GeoDataFrame:
    """Keep the grid cells a map needs: ``significant`` ones, ``nonzero`` counts, or ``all``.

    Automatic cell sizes can give a quarter of a million cells over Luxembourg, about 100 MB
    of GeoJSON; the cells that are neither significant nor hold events draw nothing on a map.
    Results that are not grids (kde bands, clusters) are returned whole.
    """
    if cells == "all" or method not in ("gi", "lisa", "emerging") or result.empty:
        return result
    if cells == "nonzero":
        keep = result["count"] > 0 if "count" in result.columns else _significant(result, method)
    else:
        keep = _significant(result, method)
    return result[keep.to_numpy()]


def hotspot_result(
    *,
    method: str,
    cell: float | None = None,
    band: float | None = None,
    interval: Interval | None = None,
    region: str | None = None,
    seed: int = 0,
) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Run one hotspot method on the stored events; return the result and the parameters used."""
    from geo_ibm.analysis import run_method

    filters: dict[str, Any] = time_filters(interval)
    if region is not None:
        filters["region"] = region
    events = get_store().events(**filters, columns=ANALYSIS_COLUMNS)
    result = run_method(events, method=method, cell=cell, band=band, region=region, seed=seed)
    parameters = dict(result.attrs.get("parameters", {}))
    parameters.update({
        "method": method,
        "from": interval.start if interval else None,
        "to": interval.end if interval else None,
        "region": region,
        "n_events": int(len(events)),
    })
    return result, parameters


@api_bp.get("/hotspots")
@require_role(ROLE_HOTSPOTS)
def hotspots() -> Response:
    """A hotspot analysis as GeoJSON with the parameters used in a ``parameters`` member.

    Query parameters: ``method`` (gi, lisa, kde, clusters, emerging; default gi), ``cell`` and
    ``band`` (metres, 50..50000; default chosen from the data), ``from``/``to`` (dates),
    ``region`` (police region), ``seed`` (permutation tests), ``cells`` (grid methods:
    ``significant`` (default), ``nonzero`` or ``all``; see :func:`select_cells`).
    ``parameters`` adds ``cells``, ``n_cells`` (whole grid) and ``n_features`` (returned).
    """
    args = request.args
    check_known(args, HOTSPOT_PARAMS)
    method = parse_choice(single(args, "method"), name="method", choices=HOTSPOT_METHODS, default="gi")
    cell = parse_float(single(args, "cell"), name="cell", default=None, minimum=50, maximum=50_000)
    band = parse_float(single(args, "band"), name="band", default=None, minimum=50, maximum=50_000)
    seed = parse_int(single(args, "seed"), name="seed", default=0, minimum=0, maximum=2**32 - 1)
    region = parse_event_filters({"region": single(args, "region")}, choices=event_filter_choices()).get("region")
    interval = parse_date_range(args)
    cells = parse_choice(single(args, "cells"), name="cells", choices=CELL_CHOICES, default="significant")
    result, parameters = hotspot_result(method=method, cell=cell, band=band, interval=interval, region=region, seed=seed)
    if method in ("gi", "lisa", "emerging"):
        parameters["n_cells"] = int(len(result))
        parameters["cells"] = cells
        result = select_cells(result, method=method, cells=cells)
    parameters["n_features"] = int(len(result))
    id_column = "cell_id" if "cell_id" in result.columns else None
    fc = to_feature_collection(result, id_column=id_column, members={"parameters": parameters})
    return json_response(fc, mimetype=GEOJSON)
