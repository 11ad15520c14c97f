"""The Routes page (analyst role): corridor ranking, entry crossings and the route map of the URL's
filter, with the layers as one GeoPackage and the corridor and flow print maps.

The view parses the request and calls :func:`geo_ibm.network.requests.route_analysis`; the
analysis is kept per store version, road network and query (:func:`route_result`), so the page,
its map document, the downloads and the OGC collections of one selection share one computation.
Network hot spots on a large network (an installed OpenStreetMap extract) run as a background job
(:mod:`webapp.jobs`) whose page follows its progress and then shows the Routes page.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from geo_ibm import figures
from geo_ibm.errors import GeoIbmError, NotFoundError, Problem, ValidationError
from geo_ibm.figures.routemap import corridor_print_map, flow_print_map
from geo_ibm.maps import render_map
from geo_ibm.maps.routelayers import route_map
from geo_ibm.network.files import LAYER_PREFIX, write_routes
from geo_ibm.network.installed import installed_roads_info
from geo_ibm.network.requests import LAYER_NAMES as ROUTE_LAYER_NAMES
from geo_ibm.network.requests import RouteAnalysis, RouteQuery, current_network, route_analysis
from geo_ibm.network.snap import DEFAULT_TOLERANCE_M, MAX_TOLERANCE_M
from geo_ibm.planning.progress import ProgressCallback
from geo_ibm.settings import LOCAL_TZ
from webapp.access import ROLE_EVENTS
from webapp.assets import ASSET_PREFIX
from webapp.auth import audit, get_store, require_role
from webapp.cache import cached, request_version
from webapp.documents import map_headers, tiles
from webapp.filters import filter_query, parse_filters
from webapp.i18n import N_, get_language
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir
from webapp.jobs import DONE, Job, cancel_response, current_owner, own_job, runner, state_labels, status_response
from webapp.params import parameter_error, parse_float, single
from webapp.reference import filter_choices, layer_frame
from webapp.responses import attachment

routes_bp = Blueprint("routes", __name__, url_prefix="/routes")

ROLE = ROLE_EVENTS
"""Segments and flows are aggregates, but a quiet road with one interception isolates it: analysts only."""

ROUTE_PARAMS: tuple[str, ...] = ("tolerance", "network_hotspots")
"""Query parameters of the Routes page besides the event filters."""

MIN_TOLERANCE_M = 1.0
"""Snapping tolerance the page takes (metres), up to the library's :data:`~geo_ibm.network.snap.MAX_TOLERANCE_M`:
events farther from every road are counted and listed, not snapped."""

LAYER_NAMES: dict[str, str] = {name: LAYER_PREFIX + name for name in ROUTE_LAYER_NAMES}
"""``RouteAnalysis.layers()`` key -> layer name in the GeoPackage (and OGC collection id where served)."""

INLINE_MAX_LIXELS = 20_000
"""Network hot spots on more lixels than this run as a background job (the shipped corridors have
about 3,500 lixels of 100 m; an OpenStreetMap network of Luxembourg over 50,000)."""

MAX_REGISTERED_JOBS = 256

JOB_KIND = "route"
"""The kind of this page's jobs in the shared runner (the job views find no plan or report job)."""

PRINT_MAPS: tuple[str, ...] = ("corridors", "flows")
FIGURE_FORMATS: tuple[str, ...] = ("png", "pdf")
GPKG = "application/geopackage+sqlite3"

CORRIDOR_COLUMNS: tuple[str, ...] = ("rank", "ref", "length_km", "events", "persons", "events_per_km",
                                     "previous_events", "change_pct", "p_value", "significant", "trend")
CROSSING_COLUMNS: tuple[str, ...] = ("name", "neighbour", "events", "persons", "share")

_TRUE, _FALSE = ("1", "on", "true", "yes"), ("", "0", "off", "false", "no")

TREND_LABELS: tuple[str, ...] = (N_("up"), N_("down"), N_("stable"), N_("new"))
"""A corridor's ``trend`` (:func:`geo_ibm.network.corridors.segment_stats`), shown translated."""


# --------------------------------------------------------------------------- the request


def parse_network_hotspots(raw: str | None) -> bool:
    """The ``network_hotspots`` checkbox: ``1``/``on``/``true``/``yes`` or absent/``0``/``off``/``false``/``no``."""
    if raw is None:
        return False
    value = str(raw).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise parameter_error("network_hotspots", raw, "must be 1 (on) or 0 (off)")


def parse_route_query(args: Mapping[str, Any], *, extra: tuple[str, ...] = ()) -> RouteQuery:
    """The route analysis of the URL: the event filters, ``tolerance`` (m) and ``network_hotspots``.

    Raises
    ------
    ValidationError
        Naming the parameter: an unknown one, a bad filter value, a tolerance that is not a
        number in [:data:`MIN_TOLERANCE_M`, :data:`MAX_TOLERANCE_M`], a bad checkbox value.
    """
    filters = parse_filters(args, extra=ROUTE_PARAMS + extra)
    tolerance = parse_float(single(args, "tolerance"), name="tolerance", default=DEFAULT_TOLERANCE_M,
                            minimum=MIN_TOLERANCE_M, maximum=MAX_TOLERANCE_M)
    hotspots = parse_network_hotspots(single(args, "network_hotspots"))
    return RouteQuery(**filters, tolerance_m=float(tolerance), network_hotspots=hotspots)


def route_links(args: Mapping[str, Any]) -> dict[str, Any]:
    """The page's parameters present in ``args`` (as text), to rebuild its links."""
    return filter_query(args, extra=ROUTE_PARAMS)


def network_key() -> str:
    """The installed road network's identity (source, date, time of install), or ``shipped``.

    Part of every cache key of a route answer: installing roads changes no event, so the store
    version alone would keep serving the analysis of the previous network.
    """
    info = installed_roads_info()
    return json.dumps(info, sort_keys=True, default=str) if info else "shipped"


def route_result(query: RouteQuery, *, progress: ProgressCallback | None = None) -> RouteAnalysis:
    """:func:`~geo_ibm.network.requests.route_analysis` of ``query``, once per store version and road network.

    The cache entry holds the layers next to the analysis, so the cache's byte bound counts them.
    ``progress(fraction, message)`` follows the analysis (a job's progress).
    """
    store = get_store()

    def build() -> tuple[RouteAnalysis, tuple[gpd.GeoDataFrame, ...]]:
        def step(name: str, done: float) -> None:
            if progress is not None:
                progress(0.02 + 0.96 * float(done), name)

        analysis = route_analysis(store, query, progress=step)
        return analysis, tuple(analysis.layers().values())

    return cached(store, "routes", (query, network_key()), build)[0]


def _cache_key(query: RouteQuery) -> tuple[Any, ...]:
    return ("routes", request_version(get_store()), (query, network_key()))


def needs_job(query: RouteQuery) -> bool:
    """Whether the analysis runs as a background job: network hot spots on a network of more than
    ``ROUTE_INLINE_MAX_LIXELS`` lixels (app config, default :data:`INLINE_MAX_LIXELS`: an
    OpenStreetMap network), unless already computed."""
    if not query.network_hotspots:
        return False
    if _cache_key(query) in current_app.extensions["geo_ibm_cache"].keys("routes"):
        return False
    network, _crossings, _warnings, _source = current_network()
    lixels = int(np.ceil(network.segments["length_m"].to_numpy(dtype=float) / float(query.lixel_m)).sum())
    return lixels > int(current_app.config.get("ROUTE_INLINE_MAX_LIXELS", INLINE_MAX_LIXELS))


_registry_lock = threading.Lock()


def _registry() -> dict[str, Any]:
    """Route jobs of this app: key (user, store version, query, network) -> job id, and job id -> the page's links."""
    with _registry_lock:
        return current_app.extensions.setdefault("geo_ibm_route_jobs", {"by_key": {}, "links": {}})


def known_job(query: RouteQuery) -> Job | None:
    """This user's job of ``query`` on this store version, if the runner still keeps it."""
    job_id = _registry()["by_key"].get((current_owner(), *_cache_key(query)))
    if job_id is None:
        return None
    try:
        return runner().get(job_id, owner=current_owner())
    except GeoIbmError:
        return None


def analysis_of(query: RouteQuery) -> RouteAnalysis:
    """The analysis of ``query``: a finished job's result when there is one, else :func:`route_result`."""
    job = known_job(query) if query.network_hotspots else None
    if job is not None and job.state == DONE and isinstance(job.result, RouteAnalysis):
        return job.result
    return route_result(query)


def submit_job(query: RouteQuery, links: dict[str, Any]) -> Job:
    """Run ``query`` in the background; its result fills the cache (and stays with the job)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    key = (current_owner(), *_cache_key(query))

    def work(progress: ProgressCallback) -> RouteAnalysis:
        with app.app_context():
            progress(0.01, "starting")
            return route_result(query, progress=progress)

    job = runner().submit(current_owner(), _("Route analysis with network hot spots"), work, kind=JOB_KIND)
    registry = _registry()
    with _registry_lock:
        registry["by_key"][key] = job.id
        registry["links"][job.id] = dict(links)
        for table in (registry["by_key"], registry["links"]):
            while len(table) > MAX_REGISTERED_JOBS:  # the oldest first (dicts keep insertion order)
                table.pop(next(iter(table)))
    audit("routes", status="submitted", job=job.id, filters=links)
    return job


# --------------------------------------------------------------------------- rows for the tables


def _cell(value: Any, column: str) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if column in ("length_km", "events_per_km"):
        return f"{float(value):,.2f}".replace(",", " ")
    if column == "change_pct":
        return f"{float(value):+.0f} %"
    if column == "share":
        return f"{100 * float(value):.1f} %"
    if column == "p_value":
        return f"{float(value):.3f}"
    if column == "significant":
        return _("yes") if bool(value) else _("no")
    if column == "trend":
        return _(str(value))
    if isinstance(value, float) and float(value).is_integer():
        return int(value)
    return value


def table_rows(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns of ``columns`` that ``frame`` has, and its rows formatted for the page."""
    present = [c for c in columns if c in frame.columns]
    rows = [{c: _cell(row[c], c) for c in present} for row in frame[present].to_dict(orient="records")]
    return present, rows


def column_labels() -> dict[str, str]:
    return {"rank": _("Rank"), "ref": _("Road"), "length_km": _("Length (km)"), "events": _("Events"),
            "persons": _("Persons"), "events_per_km": _("Events per km"),
            "previous_events": _("Events, previous quarter"), "change_pct": _("Change"),
            "p_value": _("p-value"), "significant": _("Significant change"), "trend": _("Trend"),
            "name": _("Crossing"), "neighbour": _("Neighbour"), "share": _("Share")}


def _area(query: RouteQuery) -> str:
    if query.canton:
        return _("Canton %(name)s", name=query.canton)
    if query.region:
        return _("Police region %(name)s", name=query.region)
    return _("Luxembourg")


def _period(query: RouteQuery) -> str | None:
    """The analysed period as "first day – last day": the query's window, open ends from the stored events."""
    start, end = query.window()
    summary = cached(get_store(), "summary", (), get_store().summary)
    first = start if start is not None else summary.get("first_event")
    last = end - pd.Timedelta(seconds=1) if end is not None else summary.get("last_event")
    if first is None or last is None:
        return None
    zone = LOCAL_TZ
    return f"{pd.Timestamp(first).tz_convert(zone):%Y-%m-%d} – {pd.Timestamp(last).tz_convert(zone):%Y-%m-%d}"


def _translate(message: str) -> str:
    return _(message)


# --------------------------------------------------------------------------- views


@routes_bp.route("/")
@require_role(ROLE)
def routes_page() -> Any:
    """Corridor ranking, entry crossings, warnings and the route map of the URL's filter."""
    query = parse_route_query(request.args)
    links = route_links(request.args)
    context = _page_context(query, links)
    job = known_job(query) if query.network_hotspots else None
    if job is not None and job.state == DONE and isinstance(job.result, RouteAnalysis):
        analysis = job.result
    elif job is not None and not job.is_finished:
        return redirect(url_for("routes.job_page", job_id=job.id), code=303)
    elif needs_job(query):
        job = submit_job(query, links)
        return redirect(url_for("routes.job_page", job_id=job.id), code=303)
    else:
        analysis = route_result(query)
    corridor_columns, corridors = table_rows(analysis.corridors, CORRIDOR_COLUMNS)
    crossing_columns, crossings = table_rows(analysis.crossings.sort_values("events", ascending=False),
                                             CROSSING_COLUMNS)
    source = dict(analysis.network_source or {})
    return render_template(
        "routes.html", analysis=analysis, corridor_columns=corridor_columns, corridors=corridors,
        crossing_columns=crossing_columns, crossings=crossings, source=source, osm=source.get("kind") == "osm",
        unsnapped=len(analysis.unsnapped), notes=list(analysis.warnings),
        map_src=url_for("routes.map_document", **links), **context,
    )


def _page_context(query: RouteQuery, links: dict[str, Any]) -> dict[str, Any]:
    return {"choices": filter_choices(), "query": links, "route": query, "labels": column_labels(),
            "print_maps": PRINT_MAPS, "figure_formats": FIGURE_FORMATS,
            "tolerance_bounds": (MIN_TOLERANCE_M, MAX_TOLERANCE_M)}


def _route_job(job_id: str) -> Job:
    """The logged-in account's route job ``job_id``; its plans and report jobs are not found here either."""
    job = own_job(job_id)
    if job.kind != JOB_KIND:
        raise NotFoundError(f"route job {job_id[:40]!r} not found")
    return job


def _job_links(job: Job) -> dict[str, Any]:
    return dict(_registry()["links"].get(job.id, {}))


@routes_bp.context_processor
def _labels() -> dict[str, Any]:
    return {"state_labels": state_labels()}


@routes_bp.route("/jobs/<job_id>")
@require_role(ROLE)
def job_page(job_id: str) -> Any:
    """A route job's progress (reload to follow it); a finished one sends the browser to the Routes page."""
    job = _route_job(job_id)
    links = _job_links(job)
    if job.state == DONE:
        return redirect(url_for("routes.routes_page", **links), code=303)
    query = parse_route_query(links)
    return render_template("routes.html", analysis=None, job=job, **_page_context(query, links),
                           status_url=url_for("routes.job_status", job_id=job.id),
                           result_url=url_for("routes.routes_page", **links))


@routes_bp.route("/jobs/<job_id>/status")
@require_role(ROLE)
def job_status(job_id: str) -> Any:
    """The job's state as JSON (as the planning jobs': ``state``, ``fraction``, ``message``, ``result`` URL when done)."""
    job = _route_job(job_id)
    return status_response(job, url_for("routes.routes_page", **_job_links(job)) if job.state == DONE else None)


@routes_bp.route("/jobs/<job_id>/cancel", methods=["POST"])
@require_role(ROLE)
def cancel_job(job_id: str) -> Any:
    """Cancel the job (a waiting one at once, a running one at its next step); audited."""
    _route_job(job_id)
    return cancel_response(job_id, action="routes", page_endpoint="routes.job_page")


@routes_bp.route("/map")
@require_role(ROLE)
def map_document() -> Any:
    """The route map of the URL's filter, for the page's sandboxed frame (built once per selection and language)."""
    query = parse_route_query(request.args)
    tiles_url, tiles_attr = tiles()
    language = get_language()

    def build() -> str:
        analysis = analysis_of(query)
        source = analysis.network_source or {}
        fmap = route_map(outline=layer_frame("outline"), borders=layer_frame("borders"), segments=analysis.segments,
                         lixels=analysis.lixels, flows=analysis.flows, crossings=analysis.crossings,
                         network_attribution=source.get("attribution"), tiles_url=tiles_url,
                         tile_attribution=tiles_attr, asset_base=ASSET_PREFIX, notes=list(analysis.warnings),
                         t=_translate)
        return render_map(fmap, title=_("Route map"), lang=language)

    document = cached(get_store(), "map-routes", (query, network_key(), language), build)
    return map_headers(Response(document, mimetype="text/html"))


def route_layers_gpkg(analysis: RouteAnalysis, *, scratch: Path) -> bytes:
    """Every layer of ``analysis`` in one GeoPackage (:func:`geo_ibm.network.files.write_routes`:
    EPSG:2169, layers named as in :data:`LAYER_NAMES`, the analysis' parameters as layer metadata,
    QGIS styles), written in a private folder inside ``scratch`` and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="routes-", dir=scratch))
    try:
        path = folder / "routes.gpkg"
        write_routes(analysis, path)
        return path.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@routes_bp.route("/routes.gpkg")
@require_role(ROLE)
def download_layers() -> Any:
    """The analysis' layers as one GeoPackage; audited like every export."""
    query = parse_route_query(request.args)
    analysis = analysis_of(query)
    data = route_layers_gpkg(analysis, scratch=scratch_dir())
    audit("export", what="routes", format="gpkg", layers=[LAYER_NAMES[k] for k in analysis.layers()],
          events=int(analysis.n_events), filters=route_links(request.args))
    return attachment(data, GPKG, "geo_ibm-routes.gpkg")


@routes_bp.route("/<kind>.<fmt>")
@require_role(ROLE)
def download_print_map(kind: str, fmt: str) -> Any:
    """The corridor or flow print map (PNG or PDF) of the URL's filter; audited."""
    if kind not in PRINT_MAPS:
        raise ValidationError(f"unknown print map {kind!r}; use one of {', '.join(PRINT_MAPS)}",
                              [Problem("unknown map", column="map", value=kind)])
    if fmt not in FIGURE_FORMATS:
        raise ValidationError(f"invalid format {fmt!r}: use one of {', '.join(FIGURE_FORMATS)}",
                              [Problem("unknown format", column="format", value=fmt)])
    query = parse_route_query(request.args)
    analysis = analysis_of(query)
    common: dict[str, Any] = {
        "outline": layer_frame("outline"), "borders": layer_frame("borders"),
        "neighbours": layer_frame("neighbours"), "crossings": analysis.crossings,
        "network_source": analysis.network_source, "period": _period(query), "t": _translate,
        "subtitle": _("%(area)s · %(n)s events, %(snapped)s on the roads (within %(m)s m)", area=_area(query),
                      n=int(analysis.n_events), snapped=int(analysis.n_snapped), m=f"{query.tolerance_m:g}"),
    }
    if kind == "corridors":
        fig = corridor_print_map(analysis.segments, title=_("Corridors: events per km of road"), **common)
    else:
        fig = flow_print_map(analysis.flows, title=_("Flows: entry crossings, interceptions, exits"), **common)
    data = figures.figure_bytes(fig, format="pdf" if fmt == "pdf" else "png")
    audit("export", what=f"routes-{kind}", format=fmt, events=int(analysis.n_events),
          filters=route_links(request.args))
    return attachment(data, figures.FORMATS[fmt], f"geo_ibm-{kind}.{fmt}")
