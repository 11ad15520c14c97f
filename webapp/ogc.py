"""OGC API – Features Part 1 (Core, GeoJSON, OpenAPI 3.0) over the reference layers, events, hotspots and route layers (``/ogc``),
with Part 3's queryables and filters: each collection's filterable properties, filtered on the server by ``property=value``
and by a CQL2 text ``filter`` (:mod:`geo_ibm.cql2`), which GDAL's OAPIF driver sends for an OGR ``-where``."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from flask import Blueprint, Response, current_app, g, request, url_for
from shapely.geometry import box

from geo_ibm import analysis, cql2
from geo_ibm.counts import event_total
from geo_ibm.crs import to_lonlat
from geo_ibm.disclosure import released_span
from geo_ibm.errors import NotFoundError, ValidationError
from geo_ibm.geojson import features_text, to_feature_collection
from geo_ibm.network.requests import RouteQuery
from geo_ibm.periods import quarter_bounds
from geo_ibm.settings import OSM_ATTRIBUTION, WEB_CRS, WORKING_CRS
from webapp.access import ROLE_EVENTS, ROLE_HOTSPOTS, ROLE_LAYERS, disclosure_rule
from webapp.auth import audit_read, get_store, require_role
from webapp.cache import cached
from webapp.features import event_page_features
from webapp.openapi import INSTANT_OR_EMPTY, OPENAPI_MEDIA_TYPE, build_openapi, ogc_openapi
from webapp.params import (
    DEFAULT_LIMIT,
    EVENT_FILTERS,
    MAX_LIMIT,
    bbox_to_working_crs,
    check_known,
    parameter_error,
    parse_bbox,
    parse_datetime,
    parse_event_filters,
    parse_int,
    parse_limit,
    parse_offset,
    single,
)
from webapp.reference import LAYERS, filter_choices, layer_frame
from webapp.responses import GEOJSON, json_error_for, json_response, json_text, public_url

ogc_bp = Blueprint("ogc", __name__)
ogc_bp.register_error_handler(Exception, json_error_for)

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
ODBL_URL = "https://opendatacommons.org/licenses/odbl/"
"""Licence of the OpenStreetMap-derived reference layers (a link for clients, never fetched)."""
CONFORMANCE = (
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
)
"""The conformance classes implemented. Of the CQL2 temporal functions only T_INTERSECTS is read,
so ``temporal-functions`` is not claimed; nor is ``cql2-json``."""
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
SCHEMA_JSON = "application/schema+json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
MAX_TEXT_FILTER = 80
"""Longest text a property filter takes (the longest code or name is far shorter)."""
MAX_LISTED_VALUES = 100
"""A text queryable lists its values (``enum``) when the collection has at most this many distinct ones."""
COMMON_PARAMS = ("f",)
ITEMS_PARAMS = ("f", "limit", "offset", "bbox", "datetime", "filter", "filter-lang", "filter-crs")


@dataclass(frozen=True)
class Queryable:
    """A property of a collection's features that ``/items`` filters on by ``name=value`` (equality).

    Attributes
    ----------
    type
        ``"string"`` (exact text, at most :data:`MAX_TEXT_FILTER` characters), ``"integer"`` or
        ``"date-time"`` (``name=2025-01-31T08:00:00Z`` selects that second, a date its day).
    minimum, maximum
        Bounds of an integer queryable; a value outside them is refused (400).
    pattern
        Regular expression a text value must match (used for ``quarter``).
    """

    name: str
    title: str
    type: Literal["string", "integer", "date-time"] = "string"
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None

    def schema(self) -> dict[str, Any]:
        """The property's JSON Schema (OpenAPI 3.0 compatible: no 2020-12-only keywords)."""
        if self.type == "date-time":
            return {"title": self.title, "type": "string", "format": "date-time"}
        schema: dict[str, Any] = {"title": self.title, "type": self.type}
        if self.type == "integer":
            schema.update({k: v for k, v in (("minimum", self.minimum), ("maximum", self.maximum)) if v is not None})
        else:
            schema["maxLength"] = MAX_TEXT_FILTER
            if self.pattern:
                schema["pattern"] = self.pattern
        return schema

    def parameter(self) -> dict[str, Any]:
        """The ``/items`` query parameter of this property, as the OpenAPI document declares it."""
        schema = {k: v for k, v in self.schema().items() if k != "title"}
        if self.type == "date-time":
            schema = {"type": "string", "pattern": INSTANT_OR_EMPTY}
        elif self.type == "integer":
            # An empty value is no filter, as with every other parameter.
            schema = {"anyOf": [schema, {"type": "string", "maxLength": 0}]}
        return {"name": self.name, "in": "query", "required": False, "schema": schema,
                "description": f"only features whose {self.name} equals this value ({self.title}); empty: no filter"}


def _text(*names: str) -> tuple[Queryable, ...]:
    return tuple(Queryable(n, n.replace("_", " ").capitalize()) for n in names)


EVENT_QUERYABLES: tuple[Queryable, ...] = (
    Queryable("quarter", "Quarter (2025Q1)", pattern=r"^(\d{4}-?[Qq][1-4])?$"),
    Queryable("region", "Police region"),
    Queryable("canton", "Canton"),
    Queryable("location_kind", "Where the interception took place"),
    Queryable("entry_country", "Neighbour the group came from"),
    Queryable("transport_mode", "Means of transport"),
    Queryable("persons", "People intercepted (smugglers included)", "integer", 1, 100_000),
    Queryable("smugglers", "Suspected smugglers among them", "integer", 0, 100_000),
    Queryable("observed_at", "Date and time of the interception", "date-time"),
    Queryable("destination_country", "Where the group was heading (ISO 3166-1 alpha-2 or unknown)"),
    Queryable("event_id", "Event identifier"),
)
"""The events' queryables. As ``name=value`` the event filters (quarter ... transport_mode) are
applied by the store, case-insensitively as everywhere; the others, and every ``filter``, are
evaluated on the events the store selects (:func:`filtered_event_ids`)."""

HOTSPOT_QUERYABLES: tuple[Queryable, ...] = (
    Queryable("gi_bin", "Gi* confidence bin (-3..3, 0 not significant)", "integer", -3, 3),
    Queryable("gi_bin_fdr", "Gi* bin after the false discovery rate correction", "integer", -3, 3),
)

ROUTE_QUERYABLES: dict[str, tuple[Queryable, ...]] = {
    "route_segments": (*_text("ref", "highway", "trend"),),
    "route_corridors": (*_text("ref", "trend"),),
    "route_flows": (*_text("ref", "leg"), Queryable("direction", "Along (1) or against (-1) the segment's geometry",
                                                    "integer", -1, 1)),
    "route_crossings": (*_text("crossing_id", "neighbour"),),
    "route_lixels": (*_text("ref"), Queryable("gi_bin", "Network Gi* confidence bin after FDR (-3..3, 0 not significant)",
                                              "integer", -3, 3)),
}
"""Properties of the route layers clients may filter on (besides the event filters, which select the events analysed)."""

REFERENCE_QUERYABLES: dict[str, tuple[Queryable, ...]] = {
    "outline": _text("name"),
    "borders": _text("neighbour", "name"),
    "tripoints": _text("name", "countries"),
    "crossings": _text("crossing_id", "name", "kind", "ref", "neighbour", "coord_quality"),
    "regions": _text("region"),
    "cantons": _text("canton", "region"),
    "corridors": _text("ref", "class", "name"),
}
"""Text properties of the reference layers clients may filter on."""


@dataclass(frozen=True)
class Collection:
    """One feature collection: where its features come from and who may read them."""

    id: str
    title: str
    description: str
    role: str
    layer: str | None = None
    """Key of :data:`webapp.api.LAYERS` for a reference layer."""
    id_column: str | None = None
    temporal: bool = False
    filters: tuple[str, ...] = field(default_factory=tuple)
    attribution: str | None = None
    """Credit the data's licence requires (ODbL for the OSM-derived reference layers)."""
    queryables: tuple[Queryable, ...] = field(default_factory=tuple)
    """Properties ``/items`` filters on (``name=value``), listed by ``/queryables``."""


def _reference(ogc_id: str, layer: str) -> Collection:
    spec = LAYERS[layer]
    return Collection(ogc_id, spec.title, spec.description, ROLE_LAYERS, layer=layer, id_column=spec.id_column,
                      attribution=spec.attribution, queryables=REFERENCE_QUERYABLES.get(layer, ()))


@dataclass(frozen=True)
class RouteLayer:
    """Which layer of a route analysis (:class:`geo_ibm.network.requests.RouteAnalysis`) a collection serves."""

    layer: str
    network_hotspots: bool = False


ROUTE_LAYERS: dict[str, RouteLayer] = {
    "route_segments": RouteLayer("segments"),
    "route_corridors": RouteLayer("corridors"),
    "route_flows": RouteLayer("flows"),
    "route_crossings": RouteLayer("crossings"),
    "route_lixels": RouteLayer("lixels", network_hotspots=True),
}
"""Route collections -> their layer; each is computed from the events its event filters and ``datetime`` select."""

_ROUTE_NOTE = (" Computed from the stored events that the event filters and datetime select (snapping "
               "tolerance 250 m), on the installed road network (OpenStreetMap when installed, else the "
               "shipped schematic corridors). Analyst role: a quiet road with one interception isolates it.")


def _route(ogc_id: str, title: str, description: str, id_column: str | None) -> Collection:
    return Collection(ogc_id, title, description + _ROUTE_NOTE, ROLE_EVENTS, id_column=id_column, temporal=True,
                      filters=EVENT_FILTERS, queryables=ROUTE_QUERYABLES[ogc_id])


COLLECTIONS: dict[str, Collection] = {
    c.id: c
    for c in (
        _reference("outline", "outline"),
        _reference("internal-borders", "borders"),
        _reference("tripoints", "tripoints"),
        _reference("crossing-points", "crossings"),
        _reference("regions", "regions"),
        _reference("cantons", "cantons"),
        _reference("corridors", "corridors"),
        Collection(
            "events", "Interception events",
            "Interceptions of smuggled groups near the internal borders (one point per event). "
            "Filter with datetime (on observed_at) and the event codes.",
            ROLE_EVENTS, id_column="event_id", temporal=True, filters=EVENT_FILTERS, queryables=EVENT_QUERYABLES,
        ),
        Collection(
            "hotspots", "Hotspots (Getis-Ord Gi*)",
            "Gi* hot and cold spots of all stored events on a square grid, cell size and distance "
            "band chosen from the data; recomputed when the store changes.",
            ROLE_HOTSPOTS, id_column="cell_id", queryables=HOTSPOT_QUERYABLES,
        ),
        _route("route_segments", "Road segments: events per km",
               "Road segments with the events snapped to them, persons, events per km and the change "
               "against the previous period with its significance.", "segment_id"),
        _route("route_corridors", "Corridor ranking",
               "Roads (by ref) ranked by events per km, with the change against the previous period.", "rank"),
        _route("route_flows", "Flows along the roads",
               "Events (and persons) per road segment and direction on the shortest paths from the attributed "
               "entry crossing to the interception (leg entry) and on to the exit crossing of the destination "
               "country (leg exit); each line is drawn in the direction of travel.", None),
        _route("route_crossings", "Entry crossings by attributed events",
               "Border crossing points with the events and persons attributed to them (nearest crossing of the "
               "entry country by road distance).", "crossing_id"),
        _route("route_lixels", "Network hot spots (lixels)",
               "100 m pieces of road with a network kernel density and a Gi* whose neighbourhood is road "
               "distance (1 km), binned after the false discovery rate correction.", "lixel_id"),
    )
}
"""The feature collections served under ``/ogc/collections``."""


# --------------------------------------------------------------------------- hotspot collection


def cached_hotspots() -> gpd.GeoDataFrame:
    """Gi* hotspots of the whole store with automatic parameters, once per store version.

    Kept in EPSG:4326: every request filters by lon/lat bbox and writes GeoJSON from it. A store
    with too few events for Gi* gives an empty collection whose ``parameters`` say why (GIS
    clients list every collection and must not fail on this one).
    """
    store = get_store()
    rule = disclosure_rule()

    def build() -> gpd.GeoDataFrame:
        try:
            result = analysis.hotspots(store, analysis.HotspotQuery(method="gi"), disclosure=rule)
            parameters = result.attrs.get("parameters", {})
        except ValidationError as exc:
            result = gpd.GeoDataFrame({"cell_id": pd.Series([], dtype="int64")},
                                      geometry=gpd.GeoSeries([], crs=WORKING_CRS))
            parameters = {"method": "gi", "n_events": event_total(store, {}, disclosure=rule),
                          "note": str(exc).splitlines()[0]}
        result = result.to_crs(WEB_CRS)
        result.attrs["parameters"] = parameters
        return result

    return cached(store, "ogc-hotspots", (rule,), build)


# --------------------------------------------------------------------------- route collections


def route_query(args: Any, *, network_hotspots: bool) -> RouteQuery | None:
    """The route analysis an ``/items`` request selects: its event filters and ``datetime``.

    A quarter and a ``datetime`` together select the events of both (as on the events
    collection); ``None`` when they do not overlap (an empty collection).
    """
    filters = parse_event_filters(args, choices=filter_choices())
    when = parse_datetime(single(args, "datetime"))
    quarter = filters.pop("quarter", None)
    start = end = None
    if when is not None:
        start, end = when.start, when.end
        if quarter is not None:
            first, last = quarter_bounds(quarter)
            start = first if start is None else max(start, first)
            end = last if end is None else min(end, last)
            quarter = None
            if not start < end:
                return None
    return RouteQuery(start=start, end=end, quarter=quarter, **filters, network_hotspots=network_hotspots)


def route_frame(collection: Collection, args: Any) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """The route layer of ``collection`` for the request's selection, and the analysis' parameters.

    The analysis is the Routes page's (:func:`webapp.routes.route_result`, kept per store
    version and query). A selection the analysis refuses (too many events) gives an empty
    collection whose ``parameters`` say why, as the hotspot collection does.
    """
    from webapp.routes import route_result

    spec = ROUTE_LAYERS[collection.id]
    query = route_query(args, network_hotspots=spec.network_hotspots)
    empty = gpd.GeoDataFrame({collection.id_column or "fid": pd.Series([], dtype="int64")},
                             geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)
    if query is None:
        return empty, {"note": "the quarter and datetime do not overlap: no events"}
    try:
        analysis = route_result(query)
    except ValidationError as exc:
        return empty, {**_route_parameters(query), "note": str(exc).splitlines()[0]}
    frame = analysis.layers().get(spec.layer)
    if frame is None:
        return empty, {}
    if collection.id_column is None:
        frame = frame.copy()
        frame.insert(0, "fid", range(1, len(frame) + 1))
    parameters = {**analysis.parameters, "network": analysis.network_source, "n_events": analysis.n_events,
                  "n_snapped": analysis.n_snapped, "warnings": analysis.warnings}
    return frame, parameters


def _route_parameters(query: RouteQuery) -> dict[str, Any]:
    try:
        return query.described()
    except ValidationError:
        return {}


def _store_summary() -> dict[str, Any]:
    store = get_store()
    return cached(store, "summary", (), store.summary)


# --------------------------------------------------------------------------- helpers


def _collection(collection_id: str) -> Collection:
    try:
        return COLLECTIONS[collection_id]
    except KeyError:
        raise NotFoundError(f"unknown collection {collection_id!r}; collections: {', '.join(COLLECTIONS)}") from None


def _check_format() -> None:
    fmt = single(request.args, "f")
    if fmt is not None and fmt.lower() not in ("json", "geojson", "application/json", "application/geo+json"):
        raise parameter_error("f", fmt, "only json is served (use f=json or leave f out)")


def _url(endpoint: str, **values: Any) -> str:
    # The configured public address, never the request's Host header: a forged Host must not
    # put its own links into documents clients follow (and caches keep).
    return public_url() + url_for(endpoint, **values)


def _link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    link = {"href": href, "rel": rel, "type": media_type}
    if title:
        link["title"] = title
    return link


def _reference_frame(collection: Collection) -> gpd.GeoDataFrame:
    gdf = layer_frame(collection.layer or collection.id)
    if collection.id_column is None or collection.id_column not in gdf.columns:
        # Layers without a natural key get their 1-based row number as a stable feature id.
        gdf = gdf.copy()
        gdf.insert(0, "fid", range(1, len(gdf) + 1))
    return gdf


def _id_column(collection: Collection, gdf: gpd.GeoDataFrame) -> str:
    return collection.id_column if collection.id_column and collection.id_column in gdf.columns else "fid"


def _lonlat_bbox_filter(gdf: gpd.GeoDataFrame, bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    web = gdf.geometry if gdf.crs.to_epsg() == 4326 else gdf.geometry.to_crs(WEB_CRS)
    return gdf[web.intersects(box(*bbox)).to_numpy()]


def property_filters(collection: Collection, args: Any) -> dict[str, str | int | cql2.TimeRange]:
    """The ``name=value`` filters of ``args`` on ``collection``'s queryables, validated.

    The event filters are left out: :func:`webapp.params.parse_event_filters` reads them and
    the store applies them. An empty value is no filter. A date-time value is the range of
    instants it names (:func:`webapp.params.parse_datetime`: a date its day, a time its second).

    Raises
    ------
    ValidationError
        Naming the parameter: a value given twice, text over :data:`MAX_TEXT_FILTER`
        characters, a non-integer or out-of-range integer, a malformed date-time.
    """
    filters: dict[str, str | int | cql2.TimeRange] = {}
    for queryable in collection.queryables:
        if queryable.name in collection.filters:
            continue
        raw = single(args, queryable.name)
        if raw is None or raw == "":
            continue
        if queryable.type == "date-time":
            if "/" in raw:
                raise parameter_error(queryable.name, raw, "one date or date-time (an interval goes in datetime)")
            when = parse_datetime(raw, name=queryable.name)
            assert when is not None and when.start is not None and when.end is not None
            filters[queryable.name] = cql2.TimeRange(int(when.start.value), int(when.end.value))
        elif queryable.type == "integer":
            filters[queryable.name] = parse_int(raw, name=queryable.name, default=0, minimum=queryable.minimum,
                                                maximum=queryable.maximum)
        elif len(raw) > MAX_TEXT_FILTER:
            raise parameter_error(queryable.name, raw, f"at most {MAX_TEXT_FILTER} characters")
        else:
            filters[queryable.name] = raw
    return filters


def queryable_types(collection: Collection) -> dict[str, cql2.PropertyType]:
    """Name -> CQL2 type of what ``filter`` may name on ``collection``: its queryables and ``geometry``."""
    types: dict[str, cql2.PropertyType] = {q.name: q.type for q in collection.queryables}
    types["geometry"] = "geometry"
    return types


def request_filter(collection: Collection, args: Any) -> cql2.Filter | None:
    """The request's ``filter`` (with ``filter-lang`` and ``filter-crs``) parsed on ``collection``'s queryables, or ``None``.

    Raises
    ------
    ValidationError
        Naming ``filter`` (``filter-lang``, ``filter-crs``): see :func:`geo_ibm.cql2.parse_filter`;
        a ``filter-lang`` or ``filter-crs`` value that is not read, with or without a ``filter``.
    """
    text = single(args, "filter")
    lang = single(args, "filter-lang")
    crs = single(args, "filter-crs")
    if text is None:
        # Without a filter they change nothing, but a wrong value is still refused.
        if lang is not None and lang not in cql2.FILTER_LANGS:
            raise parameter_error("filter-lang", lang, f"one of {', '.join(cql2.FILTER_LANGS)}")
        if crs is not None and crs != CRS84:
            raise parameter_error("filter-crs", crs, f"only {CRS84}")
        return None
    return cql2.parse_filter(text, properties=queryable_types(collection), lang=lang, crs=crs)


def filtered_event_ids(store: Any, *, bbox: tuple[float, float, float, float] | None, filters: dict[str, Any],
                       node: cql2.Node, columns: frozenset[str]) -> list[str]:
    """Ids, in the store's order (time), of the events the store filters, the CRS84 ``bbox`` and ``node`` select.

    The candidates are counted first and refused over :data:`geo_ibm.cql2.MAX_FILTER_ROWS`;
    then only their ids, points and the ``columns`` the filter names are read. Kept per store
    version, so a client paging through a filtered layer reads the candidates once.
    """
    store_filters = dict(filters)
    if bbox is not None:
        store_filters["bbox"] = bbox_to_working_crs(bbox)

    def build() -> list[str]:
        cql2.check_rows(int(store.count(**store_filters)))
        wanted = ["event_id", *sorted(columns - {"event_id", "geometry"})]
        frame = store.events(**store_filters, columns=wanted)
        keep = np.ones(len(frame), dtype=bool)
        if bbox is not None and len(frame):
            geoms = frame.geometry.to_numpy()
            lon, lat = to_lonlat(shapely.get_x(geoms), shapely.get_y(geoms))
            keep &= (lon >= bbox[0]) & (lon <= bbox[2]) & (lat >= bbox[1]) & (lat <= bbox[3])
        keep &= cql2.filter_mask(frame, node)
        return [str(v) for v in frame["event_id"].to_numpy()[keep]]

    key = (tuple(sorted((k, str(v)) for k, v in filters.items())), bbox, repr(node))
    return cached(store, "ogc-filtered-ids", key, build)


def filtered_event_page(store: Any, ids: list[str], *, filters: dict[str, Any], limit: int,
                        offset: int) -> tuple[str, int]:
    """One page of the events ``ids`` as GeoJSON features text, and how many it holds."""
    wanted = ids[offset: offset + limit]
    # Both reads order by time, so the page keeps the ids' order.
    page = store.events(event_id=wanted) if wanted else store.events(**filters, limit=0)
    return features_text(page, id_column="event_id"), len(page)


def filter_features(gdf: gpd.GeoDataFrame, filters: dict[str, str | int]) -> gpd.GeoDataFrame:
    """The rows of ``gdf`` whose properties equal every value of ``filters`` (text exactly, integers by value).

    A filter on a column the frame lacks (an empty hotspot collection) matches nothing.
    """
    keep = np.ones(len(gdf), dtype=bool)
    for name, value in filters.items():
        if name not in gdf.columns:
            return gdf.iloc[:0]
        column = gdf[name]
        if isinstance(value, int):
            keep &= (pd.to_numeric(column, errors="coerce") == value).to_numpy()
        else:
            keep &= (column.notna() & (column.astype(str) == value)).to_numpy()
    return gdf[keep]


def _listed_values(collection: Collection, queryable: Queryable) -> dict[str, Any]:
    """``{"enum": [...]}`` for a text queryable with few values (event codes, reference names), else ``{}``."""
    if queryable.type != "string" or queryable.name == "quarter":
        return {}
    if collection.id == "events":
        values = filter_choices().get(queryable.name)
        return {"enum": list(values)} if values else {}
    if collection.layer is None:
        return {}
    frame = _reference_frame(collection)
    if queryable.name not in frame.columns:
        return {}
    distinct = sorted({str(v) for v in frame[queryable.name].dropna()})
    return {"enum": distinct} if 0 < len(distinct) <= MAX_LISTED_VALUES else {}


def _extent(collection: Collection) -> dict[str, Any]:
    # Every collection lies within Luxembourg's outline and the import margin around it.
    xmin, ymin, xmax, ymax = layer_frame("outline").to_crs(WEB_CRS).total_bounds
    spatial = [[math.floor(xmin * 1e4) / 1e4, math.floor(ymin * 1e4) / 1e4,
                math.ceil(xmax * 1e4) / 1e4, math.ceil(ymax * 1e4) / 1e4]]
    extent: dict[str, Any] = {"spatial": {"bbox": spatial, "crs": CRS84}}
    if collection.temporal:
        summary = _store_summary()
        interval = [summary.get("first_event") or None, summary.get("last_event") or None]
        rule = disclosure_rule()
        if rule is not None:  # whole blocks: the first and last interception are not dated
            interval = list(released_span(interval[0], interval[1], rule))
        extent["temporal"] = {"interval": [interval], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return extent


def _licence_links(collection: Collection) -> list[dict[str, str]]:
    if collection.attribution != OSM_ATTRIBUTION:
        return []
    return [_link(ODBL_URL, "license", "text/html", "Open Database License (ODbL) 1.0")]


def _attribution(collection: Collection) -> dict[str, str]:
    return {"attribution": collection.attribution} if collection.attribution else {}


def _collection_doc(collection: Collection) -> dict[str, Any]:
    items = _url("ogc.items", collection_id=collection.id)
    return {
        "id": collection.id,
        "title": collection.title,
        "description": collection.description,
        **_attribution(collection),
        "itemType": "feature",
        "crs": [CRS84],
        "extent": _extent(collection),
        "links": [
            _link(_url("ogc.collection", collection_id=collection.id), "self", "application/json", collection.title),
            _link(items, "items", GEOJSON, f"{collection.title} (GeoJSON)"),
            _link(_url("ogc.queryables", collection_id=collection.id), QUERYABLES_REL, SCHEMA_JSON,
                  f"{collection.title}: queryable properties"),
            *_licence_links(collection),
        ],
    }


def _page_links(collection_id: str, *, offset: int, limit: int, returned: int, matched: int) -> list[dict[str, str]]:
    base = _url("ogc.items", collection_id=collection_id)
    args = [(k, v) for k, v in request.args.items(multi=True) if k not in ("offset", "limit")]

    def href(new_offset: int) -> str:
        return base + "?" + urlencode([*args, ("limit", limit), ("offset", new_offset)])

    links = [_link(href(offset), "self", GEOJSON, "this page")]
    if offset + returned < matched:
        links.append(_link(href(offset + returned), "next", GEOJSON, "next page"))
    if offset > 0:
        links.append(_link(href(max(0, offset - limit)), "prev", GEOJSON, "previous page"))
    links.append(_link(_url("ogc.collection", collection_id=collection_id), "collection", "application/json"))
    return links


# --------------------------------------------------------------------------- routes


@ogc_bp.get("/")
@require_role(ROLE_LAYERS)
def landing() -> Response:
    """Landing page: links to the API definition, conformance and collections."""
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    body = {
        "title": "geo_ibm border management features",
        "description": "Reference layers, interception events, hotspots and route layers of Luxembourg's internal "
        "Schengen borders.",
        "links": [
            _link(_url("ogc.landing"), "self", "application/json", "this document"),
            _link(_url("ogc.ogc_definition"), "service-desc", OPENAPI_MEDIA_TYPE, "the API definition"),
            _link(_url("ogc.api_definition"), "describedby", OPENAPI_MEDIA_TYPE,
                  "the definition of the whole web API (JSON API and OGC API)"),
            _link(_url("ogc.conformance"), "conformance", "application/json", "conformance classes"),
            _link(_url("ogc.collections"), "data", "application/json", "feature collections"),
        ],
    }
    return json_response(body)


@ogc_bp.get("/conformance")
@require_role(ROLE_LAYERS)
def conformance() -> Response:
    """The conformance classes implemented."""
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    return json_response({"conformsTo": list(CONFORMANCE)})


@ogc_bp.get("/api")
@require_role(ROLE_LAYERS)
def api_definition() -> Response:
    """The OpenAPI 3.0 document of the JSON API and this OGC API."""
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    return json_response(_whole_definition(), mimetype=OPENAPI_MEDIA_TYPE)


def _whole_definition() -> dict[str, Any]:
    return build_openapi(server_url=public_url() + request.script_root, collections=COLLECTIONS,
                         cookie_name=current_app.config["SESSION_COOKIE_NAME"])


@ogc_bp.get("/openapi")
@require_role(ROLE_LAYERS)
def ogc_definition() -> Response:
    """The OGC API's own OpenAPI 3.0 document (the landing page's ``service-desc``): paths relative to ``/ogc``."""
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    return json_response(ogc_openapi(_whole_definition()), mimetype=OPENAPI_MEDIA_TYPE)


@ogc_bp.get("/collections")
@require_role(ROLE_LAYERS)
def collections() -> Response:
    """All feature collections with their extents and links."""
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    body = {
        "links": [_link(_url("ogc.collections"), "self", "application/json", "feature collections")],
        "collections": [_collection_doc(c) for c in COLLECTIONS.values()],
    }
    return json_response(body)


@ogc_bp.get("/collections/<collection_id>")
@require_role(ROLE_LAYERS)
def collection(collection_id: str) -> Response:
    """One collection's metadata."""
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    return json_response(_collection_doc(_collection(collection_id)))


@ogc_bp.get("/collections/<collection_id>/queryables")
@require_role(ROLE_LAYERS)
def queryables(collection_id: str) -> Response:
    """The collection's queryable properties as a JSON Schema (OGC API – Features Part 3).

    Each property can be given to ``/items`` as ``name=value``; the schema lists the values of
    text properties that have few (event codes, reference layer names).
    """
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    coll = _collection(collection_id)
    body = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": _url("ogc.queryables", collection_id=coll.id),
        "type": "object",
        "title": coll.title,
        "description": f"Properties of {coll.title} that /items filters on: with name=value query parameters "
        "(equality; several are combined with AND) and in a CQL2 text filter (filter=...), where the "
        "features' geometry is queryable too, as geometry with S_INTERSECTS (CRS84).",
        "properties": {q.name: {**q.schema(), **_listed_values(coll, q)} for q in coll.queryables},
        "additionalProperties": False,
    }
    return json_response(body, mimetype=SCHEMA_JSON)


@ogc_bp.get("/collections/<collection_id>/items")
@require_role(ROLE_LAYERS)
def items(collection_id: str) -> Response:
    """Features of a collection, paged (``limit``, ``offset``) and filtered (``bbox``, ``datetime``).

    ``limit`` above 10000 is served as 10000 (the links carry the limit used), as OGC API –
    Features asks. ``bbox`` is in CRS84 longitude/latitude. ``datetime`` filters events on ``observed_at``
    and is accepted but has no effect on collections without time. The events collection
    also takes the event filters (``quarter``, ``region``, ...), the other collections
    ``name=value`` on their queryables (``/queryables``; ``gi_bin=3``, ``neighbour=FR``),
    applied here, on the server, to what the reader may see. Every collection takes a CQL2
    text ``filter`` on its queryables (:mod:`geo_ibm.cql2`), ANDed with the rest: on the
    events it is evaluated on the events the other parameters select, counted first and
    refused over :data:`geo_ibm.cql2.MAX_FILTER_ROWS`; ``numberMatched`` and the ``next``
    links count the filtered features. Unknown parameters get 400.
    """
    # Login is checked above for every collection; the collection's own role only here, after
    # an unknown collection has had its 404.
    return require_role(_collection(collection_id).role)(_items)(collection_id)


def _items(collection_id: str) -> Response:
    coll = COLLECTIONS[collection_id]
    store = get_store()
    page = cached(store, "ogc-items", _items_key(coll), lambda: _items_page(coll))
    if coll.id == "events":
        # Every request is audited, served from the cache or not; filtered reads too: the
        # audit record keeps the query, filter included.
        audit_read("events", page.returned)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode("ascii")
    return Response(b"".join((ITEMS_HEAD, stamp, page.tail)), mimetype=GEOJSON)


def _items_key(collection: Collection) -> tuple[Any, ...]:
    """Everything besides the store's version that an ``/items`` answer depends on.

    The query string as sent (a repeated request finds its answer; the ``self`` and ``next``
    links repeat its parameters in its order), the configured public URL and script root of
    the links, the reader's role and disclosure rule, and for a route layer the installed
    road network (which changes no store version).
    """
    user = g.get("user") or {}
    network = None
    if collection.id in ROUTE_LAYERS:
        from webapp.routes import network_key

        network = network_key()
    return (collection.id, request.query_string, public_url(), request.script_root, user.get("role"),
            disclosure_rule(), network)


@dataclass(frozen=True)
class ItemsPage:
    """An ``/items`` answer as kept per store version: all of it but the ``timeStamp`` of each response."""

    tail: bytes
    """The body after :data:`ITEMS_HEAD` and the time stamp, UTF-8 JSON (from the time stamp's closing quote)."""
    returned: int
    """Features the page holds (what a read of events audits)."""
    key_bytes: int = 0
    """Length of the query string in its cache key, counted with the entry (long CQL2 filters)."""

    @property
    def cache_bytes(self) -> int:
        return len(self.tail) + self.key_bytes + 100


ITEMS_HEAD = b'{"type": "FeatureCollection", "timeStamp": "'
"""How every ``/items`` body begins; the time stamp of the response follows."""


def _items_page(coll: Collection) -> ItemsPage:
    """The ``/items`` answer of the request on ``coll``: parameters checked, features read, body serialised."""
    collection_id = coll.id
    args = request.args
    check_known(args, (*ITEMS_PARAMS, *coll.filters, *(q.name for q in coll.queryables)))
    _check_format()
    properties = property_filters(coll, args)
    flt = request_filter(coll, args)
    limit = parse_limit(single(args, "limit"), default=DEFAULT_LIMIT, maximum=MAX_LIMIT, clamp=True)
    offset = parse_offset(single(args, "offset"))
    bbox = parse_bbox(single(args, "bbox"))
    when = parse_datetime(single(args, "datetime"))
    osm = False
    if collection_id == "events":
        filters = parse_event_filters(args, choices=filter_choices())
        if when is not None:
            filters.update(when.as_filters())
        node = cql2.combine(cql2.equality_filter(properties, properties=queryable_types(coll)),
                            flt.root if flt else None)
        if node is None:
            features, returned, matched = event_page_features(get_store(), bbox=bbox, filters=filters, limit=limit,
                                                              offset=offset)
        else:
            used = (flt.properties if flt else frozenset()) | frozenset(properties)
            ids = filtered_event_ids(get_store(), bbox=bbox, filters=filters, node=node, columns=used)
            features, returned = filtered_event_page(get_store(), ids, filters=filters, limit=limit, offset=offset)
            matched = len(ids)
        members: dict[str, Any] = {}
    else:
        if collection_id == "hotspots":
            gdf = cached_hotspots()
            members = {"parameters": gdf.attrs.get("parameters", {})}
        elif collection_id in ROUTE_LAYERS:
            gdf, parameters = route_frame(coll, args)
            members = {"parameters": parameters}
            if (parameters.get("network") or {}).get("kind") == "osm":
                # Derived from OpenStreetMap roads: the ODbL asks for the credit wherever it is served.
                osm = True
        else:
            gdf = _reference_frame(coll)
            members = {}
        id_column = _id_column(coll, gdf)
        if bbox is not None:
            gdf = _lonlat_bbox_filter(gdf, bbox)
        if properties:
            # Hotspot cells are filtered after the reader's disclosure rule made them: a filter
            # selects among what the unfiltered collection shows, never more.
            gdf = filter_features(gdf, properties)  # type: ignore[arg-type]  # no date-time queryables here
        if flt is not None:
            # The same for a CQL2 filter: it names the collection's queryables only (for the
            # hotspots, their classes), never a count or a value the reader does not see.
            gdf = gdf[cql2.filter_mask(gdf, flt.root)]
        matched = len(gdf)
        page = gdf.iloc[offset: offset + limit]
        features, returned = features_text(page, id_column=id_column), len(page)
    credit = {"attribution": OSM_ATTRIBUTION} if osm else _attribution(coll)
    members.update({
        **credit,
        "numberMatched": int(matched),
        "numberReturned": int(returned),
        "links": _page_links(collection_id, offset=offset, limit=limit, returned=returned, matched=matched)
        + (_licence_links(coll) or ([_link(ODBL_URL, "license", "text/html", "Open Database License (ODbL) 1.0")]
                                    if osm else [])),
    })
    text = json_text(members)
    tail = '", ' + text[1:-1] + ', "features": ' + features + "}"
    return ItemsPage(tail.encode("utf-8"), int(returned), key_bytes=len(request.query_string))


@ogc_bp.get("/collections/<collection_id>/items/<feature_id>")
@require_role(ROLE_LAYERS)
def item(collection_id: str, feature_id: str) -> Response:
    """One feature by its id; 404 if there is none."""
    return require_role(_collection(collection_id).role)(_item)(collection_id, feature_id)


def _item(collection_id: str, feature_id: str) -> Response:
    coll = COLLECTIONS[collection_id]
    check_known(request.args, COMMON_PARAMS)
    _check_format()
    if collection_id == "events":
        gdf = get_store().event(feature_id)
        audit_read("event", 1)
        if not isinstance(gdf, gpd.GeoDataFrame):
            gdf = gpd.GeoDataFrame([gdf], geometry="geometry", crs="EPSG:2169")
        id_column = "event_id"
    else:
        if collection_id == "hotspots":
            frame = cached_hotspots()
        elif collection_id in ROUTE_LAYERS:
            frame, _parameters = route_frame(coll, {})
        else:
            frame = _reference_frame(coll)
        id_column = _id_column(coll, frame)
        gdf = frame[frame[id_column].astype(str) == feature_id]
        if gdf.empty:
            raise NotFoundError(f"collection {collection_id!r} has no feature {feature_id!r}")
    feature = to_feature_collection(gdf.iloc[:1], id_column=id_column)["features"][0]
    feature["links"] = [
        _link(_url("ogc.item", collection_id=collection_id, feature_id=feature_id), "self", GEOJSON),
        _link(_url("ogc.collection", collection_id=collection_id), "collection", "application/json"),
        *_licence_links(coll),
    ]
    feature.update(_attribution(coll))
    return json_response(feature, mimetype=GEOJSON)
