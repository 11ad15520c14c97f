"""The exports page and downloads: the filtered events (CSV, GeoJSON, GeoPackage) and the maps as HTML."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.exports import EXPORT_FORMATS, check_export_size, export_events
from webapp.assets import inline_assets
from webapp.auth import audit, get_store, require_role
from webapp.documents import MAP_KINDS, hotspot_document, map_headers, overview_document
from webapp.filters import filter_query, parse_filters, parse_hotspot_map
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir
from webapp.reference import filter_choices
from webapp.responses import attachment

exports_bp = Blueprint("exports", __name__, url_prefix="/exports")


@exports_bp.route("/")
@require_role("analyst")
def exports_page() -> Any:
    """Download links for the filtered events and the current maps."""
    filters = parse_filters(request.args)
    total = int(get_store().count(**filters))
    return render_template("exports.html", total=total, choices=filter_choices(), query=filter_query(request.args),
                           formats=list(EXPORT_FORMATS))


@exports_bp.route("/events.<fmt>", endpoint="export_events")
@require_role("analyst")
def export_events_file(fmt: str) -> Any:
    """The filtered events as CSV, GeoJSON (EPSG:4326) or GeoPackage (EPSG:2169); audited."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}",
                              [Problem("unknown format", column="format", value=fmt)])
    filters = parse_filters(request.args)
    check_export_size(fmt, int(get_store().count(**filters)))  # before a single event is read
    events = get_store().events(**filters)
    audit("export", format=fmt, rows=len(events), filters={k: str(v) for k, v in filters.items()})
    spec = EXPORT_FORMATS[fmt]
    return attachment(export_events(events, fmt, scratch=scratch_dir(), header=column_heading), spec.media_type,
                      spec.filename)


def column_heading(column: str) -> str:
    """An XLSX column heading in the interface's language (the column name where no translation exists)."""
    return _(column)


@exports_bp.route("/map.html")
@require_role("analyst")
def export_map() -> Any:
    """The current map as one self-contained HTML file (libraries inlined, opens offline)."""
    kind = request.args.get("map", "overview")
    if kind not in MAP_KINDS:
        raise ValidationError(f"invalid query parameter 'map': use one of {', '.join(MAP_KINDS)} (got {kind!r})",
                              [Problem("unknown map", column="map", value=kind)])
    if kind == "hotspots":
        query, _sizes = parse_hotspot_map(request.args, extra=("map",))
        filters = query.store_filters()
        document = hotspot_document(query)
    else:
        filters = parse_filters(request.args, extra=("map",))
        document = overview_document(filters)
    audit("export", format="html", map=kind, filters={k: str(v) for k, v in filters.items()})
    response = Response(inline_assets(document), mimetype="text/html",
                        headers={"Content-Disposition": f'attachment; filename="geo_ibm-{kind}.html"'})
    return map_headers(response)
