"""Map documents, served alone to the pages' sandboxed iframes with their own Content-Security-Policy."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from geo_ibm.errors import Problem, ValidationError
from webapp.auth import require_role
from webapp.documents import MAP_KINDS, hotspot_document, map_headers, overview_document
from webapp.filters import parse_filters, parse_hotspot_map

maps_bp = Blueprint("maps", __name__, url_prefix="/maps")


@maps_bp.route("/<kind>")
@require_role("viewer")
def map_document(kind: str) -> Any:
    """The ``overview`` or ``hotspots`` map of the URL's filter (hotspots also take ``cell``/``band``)."""
    if kind not in MAP_KINDS:
        raise ValidationError(f"unknown map {kind!r}; use one of {', '.join(MAP_KINDS)}",
                              [Problem("unknown map", column="kind", value=kind)])
    if kind == "hotspots":
        query, _sizes = parse_hotspot_map(request.args)
        document = hotspot_document(query)
    else:
        document = overview_document(parse_filters(request.args))
    return map_headers(Response(document, mimetype="text/html"))
