"""JSON API: reference layers, events, counts and hotspot results as GeoJSON, and the partitioned archives (``/api``)."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
from flask import Blueprint, Response, current_app, request, url_for

from geo_ibm import analysis
from geo_ibm.archive import archive_summary, read_manifest, tally_choices
from geo_ibm.counts import event_counts
from geo_ibm.errors import GeoIbmError, NotFoundError
from geo_ibm.geojson import features_text, to_feature_collection
from webapp.access import ROLE_ARCHIVES, ROLE_EVENTS, ROLE_HOTSPOTS, ROLE_LAYERS, ROLE_STATS, disclosure_rule
from webapp.auth import audit_read, get_store, require_role
from webapp.cache import cached
from webapp.features import event_page_json, time_filters
from webapp.filters import hotspot_query
from webapp.params import (
    EVENT_FILTERS,
    check_known,
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
from webapp.reference import LAYERS, SERVED_LAYERS, filter_choices, layer_frame
from webapp.responses import GEOJSON, json_error_for, json_response

api_bp = Blueprint("api", __name__)
api_bp.register_error_handler(Exception, json_error_for)


# --------------------------------------------------------------------------- routes


@api_bp.get("/layers")
@require_role(ROLE_LAYERS)
def layer_list() -> Response:
    """List the reference layers and their URLs."""
    body = [
        {"name": name, "title": spec.title, "description": spec.description, "href": url_for("api.layer", name=name),
         **({"attribution": spec.attribution} if spec.attribution else {})}
        for name, spec in ((n, LAYERS[n]) for n in SERVED_LAYERS)
    ]
    return json_response({"layers": body})


@api_bp.get("/layers/<name>")
@require_role(ROLE_LAYERS)
def layer(name: str) -> Response:
    """One reference layer as a GeoJSON FeatureCollection (EPSG:4326)."""
    check_known(request.args, ())
    if name not in SERVED_LAYERS:
        raise NotFoundError(f"unknown layer {name!r}; layers: {', '.join(SERVED_LAYERS)}")
    gdf = layer_frame(name)
    spec = LAYERS[name]
    id_column = spec.id_column if spec.id_column in gdf.columns else None
    members: dict[str, Any] = {"name": name}
    if spec.attribution:
        members["attribution"] = spec.attribution
    return _collection(gdf, id_column=id_column, members=members)


def _collection(gdf: gpd.GeoDataFrame, *, id_column: str | None, members: dict[str, Any]) -> Response:
    """``gdf`` as a GeoJSON FeatureCollection response: ``members``, then the features written as text (no dict per feature)."""
    return json_response({"type": "FeatureCollection", **members}, mimetype=GEOJSON,
                         serialised={"features": features_text(gdf, id_column=id_column)})


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
    filters = parse_event_filters(args, choices=filter_choices())
    interval = parse_date_range(args)
    when = parse_datetime(single(args, "datetime"))
    if interval is not None and when is not None:
        raise parameter_error("datetime", single(args, "datetime"), "give either datetime or from/to, not both")
    filters.update(time_filters(interval or when))
    bbox = parse_bbox(single(args, "bbox"))
    limit = parse_limit(single(args, "limit"), default=1000)
    offset = parse_offset(single(args, "offset"))
    features, returned, total = event_page_json(get_store(), bbox=bbox, filters=filters, limit=limit, offset=offset)
    audit_read("events", returned)
    members = {"type": "FeatureCollection", "numberMatched": total, "numberReturned": returned, "limit": limit,
               "offset": offset}
    return json_response(members, serialised={"features": features}, mimetype=GEOJSON)


@api_bp.get("/events/<event_id>")
@require_role(ROLE_EVENTS)
def event(event_id: str) -> Response:
    """One event as a GeoJSON Feature; 404 if the store has no such event."""
    check_known(request.args, ())
    gdf = get_store().event(event_id)
    audit_read("event", 1)
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
    (``2025Q3``). Counting happens in the store. For readers below the analyst role the
    window is widened to whole blocks and counts are protected (:mod:`geo_ibm.disclosure`),
    with the rule in ``disclosure``.
    """
    args = request.args
    check_known(args, (*EVENT_FILTERS, "from", "to"))
    filters = parse_event_filters(args, choices=filter_choices())
    filters.update(time_filters(parse_date_range(args)))
    store, rule = get_store(), disclosure_rule()
    regions = filter_choices().get("region", [])
    # Counts change only with the store's version: one GROUP BY per version and selection.
    key = (tuple(sorted((k, str(v)) for k, v in filters.items())), rule)
    body = cached(store, "stats", key, lambda: event_counts(store, filters, regions=regions, disclosure=rule))
    return json_response(body)


HOTSPOT_PARAMS = ("method", "cell", "band", "from", "to", "region", "seed", "cells")


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
    method = parse_choice(single(args, "method"), name="method", choices=analysis.METHODS, default="gi") or "gi"
    cell = parse_float(single(args, "cell"), name="cell", default=None, minimum=50, maximum=50_000)
    band = parse_float(single(args, "band"), name="band", default=None, minimum=50, maximum=50_000)
    seed = parse_int(single(args, "seed"), name="seed", default=0, minimum=0, maximum=2**32 - 1)
    filters = parse_event_filters({"region": single(args, "region")}, choices=filter_choices())
    filters.update(time_filters(parse_date_range(args)))
    cells = parse_choice(single(args, "cells"), name="cells", choices=analysis.CELL_CHOICES,
                         default="significant") or "significant"
    query = hotspot_query(filters, method=method, cell=cell, band=band, seed=seed)
    result = analysis.hotspots(get_store(), query, cells=cells, disclosure=disclosure_rule())
    parameters = result.attrs.get("parameters", {})
    id_column = "cell_id" if "cell_id" in result.columns else None
    return _collection(result, id_column=id_column, members={"parameters": parameters})


ARCHIVE_FIELDS = ("crs", "crs_name", "partitioning", "partitions", "rows", "bytes", "bounds", "first_event", "last_event",
                  "created", "rows_per_quarter", "rows_per_country")
"""What an archive's description holds of :func:`geo_ibm.archive.archive_summary`: never its location
(a folder or object-store URL of the server) nor its source."""


def _archive_description(name: str, location: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "href": url_for("api.archive", name=name, _external=False)}
    try:
        manifest = read_manifest(location)
    except GeoIbmError as exc:
        # listed with the reason, as the Archives page lists it
        return {**body, "error": str(exc).splitlines()[0].replace(location, "the archive's location")}
    summary = archive_summary(manifest)
    body.update({key: summary[key] for key in ARCHIVE_FIELDS if key in summary})
    body["bounds"] = [float(v) for v in manifest.bounds] if manifest.bounds else None
    body["columns"] = list(manifest.columns)
    body["counts_by"] = list(tally_choices(manifest))
    return body


@api_bp.get("/archives")
@require_role(ROLE_ARCHIVES)
def archive_list() -> Response:
    """The partitioned archives this server offers (``GEO_IBM_ARCHIVES``), each described as by ``/api/archives/{name}``.

    An archive whose manifest cannot be read is listed with its name and ``error``. Analyses over
    them run from the Archives page (``/archives/``) as jobs.
    """
    check_known(request.args, ())
    archives = dict(current_app.config.get("ARCHIVES") or {})
    return json_response({"archives": [_archive_description(n, loc) for n, loc in archives.items()],
                          "analyses": url_for("archives.archives_page")})


@api_bp.get("/archives/<name>")
@require_role(ROLE_ARCHIVES)
def archive(name: str) -> Response:
    """One archive: CRS, partitioning, partitions, events, bytes, bounds (in its CRS), first and last
    event, columns, events per quarter (and country), the columns it can be counted by; ``error``
    instead when its manifest cannot be read; 404 when the server has no archive of that name."""
    check_known(request.args, ())
    archives = dict(current_app.config.get("ARCHIVES") or {})
    if name not in archives:
        raise NotFoundError(f"unknown archive {name!r}" + (f"; archives: {', '.join(archives)}" if archives else
                                                           " (none is configured)"))
    return json_response(_archive_description(name, archives[name]))
