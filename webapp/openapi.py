"""The OpenAPI 3.0 document describing the JSON API (``/api``) and the OGC API – Features (``/ogc``)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from geo_ibm.cql2 import MAX_FILTER_CHARS, MAX_FILTER_ROWS
from webapp.params import DEFAULT_LIMIT, MAX_LIMIT, MAX_YEAR, MIN_YEAR

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"

_YEAR = "(19[0-9]{2}|2[01][0-9]{2})"
_INSTANT = (_YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
            r"([Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?([Zz]|[+-](0[0-9]|1[0-4]):?[0-5][0-9])?)?")
"""An RFC 3339 date or date-time as the API reads it. Days 29-31 are valid too, but a pattern
cannot tell which months have them, so the document promises only days 1-28."""
_DATETIME_PATTERN = f"^({_INSTANT}|{_INSTANT}/({_INSTANT}|\\.\\.)?|(\\.\\.)?/{_INSTANT})$"
_DAY_OR_EMPTY = f"^({_INSTANT})?$"
INSTANT_OR_EMPTY = _DAY_OR_EMPTY
"""An RFC 3339 date or date-time as the API reads it, or empty (a queryable's equality parameter)."""
_QUARTER_PATTERN = f"^{_YEAR}-?[Qq][1-4]$"
_LON = r"-?(180(\.0+)?|(1[0-7][0-9]|[0-9]{1,2})(\.[0-9]{1,9})?)"
_LAT = r"-?(90(\.0+)?|[0-8]?[0-9](\.[0-9]{1,9})?)"
_HEIGHT = r"-?[0-9]{1,5}(\.[0-9]{1,3})?"
_BBOX_PATTERN = f"^({_LON},{_LAT},{_LON},{_LAT}|{_LON},{_LAT},{_HEIGHT},{_LON},{_LAT},{_HEIGHT})$"
"""``bbox`` as the API reads it: four numbers (or six with heights), longitudes and latitudes in range."""

_ERROR = {"$ref": "#/components/responses/Error"}
_STANDARD_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/Forbidden"},
}


_MAX_DIGITS = 10**18 - 1
"""The largest whole number a query parameter may hold (18 digits)."""

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
FILTER_LANGS = ("cql2-text", "cql-text")
"""``filter-lang`` values. GDAL's OAPIF driver sends a server-side filter only when this
parameter's enum lists ``cql-text`` (the draft's name for the same text encoding)."""

_TEXT_LITERAL = "'[A-Za-z0-9 _-]{0,20}'"
_NUMBER_LITERAL = "-?[0-9]{1,5}"
_TIMESTAMP_LITERAL = (r"TIMESTAMP\('(19[0-9]{2}|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
                      r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z'\)")


def filter_pattern(queryables: Iterable[Any]) -> str:
    """The simple form of a collection's CQL2 filters as a regular expression (for the document).

    Up to three comparisons of a queryable with a literal, each optionally negated, joined
    by AND or OR. The server reads the whole CQL2 grammar it advertises (parentheses, LIKE,
    BETWEEN, IN, IS NULL, CASEI, S_INTERSECTS, T_INTERSECTS); a pattern cannot state a
    nested grammar, so it gives the flat form every client may send.
    """
    clauses = []
    for q in queryables:
        if q.type == "string":
            clauses.append(f"{q.name} (=|<>) {_TEXT_LITERAL}")
        elif q.type == "integer":
            clauses.append(f"{q.name} (=|<>|<|<=|>|>=) {_NUMBER_LITERAL}")
        elif q.type == "date-time":
            clauses.append(f"{q.name} (<|<=|>|>=) {_TIMESTAMP_LITERAL}")
    clause = f"(NOT )?({'|'.join(clauses)})"
    return f"^{clause}( (AND|OR) {clause}){{0,2}}$"


def filter_parameters(queryables: Iterable[Any]) -> list[dict[str, Any]]:
    """``filter``, ``filter-lang`` and ``filter-crs`` of an ``/items`` operation (OGC API – Features Part 3)."""
    queryables = list(queryables)
    names = ", ".join(q.name for q in queryables)
    return [
        _query("filter", "CQL2 text filter on the queryables (" + names + ", and geometry with S_INTERSECTS): "
               "comparisons, AND, OR, NOT, parentheses, LIKE, BETWEEN, IN, IS NULL, CASEI, "
               "T_INTERSECTS(observed_at, ...) and S_INTERSECTS(geometry, POINT/POLYGON/BBOX in CRS84); e.g. "
               "persons > 5 AND entry_country = 'DE'. The pattern is the flat form. At most "
               f"{MAX_FILTER_CHARS} characters; applied to at most {MAX_FILTER_ROWS} features selected by the "
               "other parameters; any other property is refused with 400",
               {"type": "string", "maxLength": MAX_FILTER_CHARS, "pattern": filter_pattern(queryables)}),
        _query("filter-lang", "language of filter: cql2-text (default; cql-text is read as cql2-text)",
               {"type": "string", "enum": list(FILTER_LANGS), "default": FILTER_LANGS[0]}),
        _query("filter-crs", "CRS of the coordinates in filter: CRS84 longitude/latitude only",
               {"type": "string", "enum": [CRS84], "default": CRS84}),
    ]


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or an empty value meaning "the default" (HTML forms send empty fields)."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}]}


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False,
           explode: bool | None = None, style: str | None = None) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": required, "description": description, "schema": schema}
    if style is not None:
        param["style"] = style
    if explode is not None:
        param["explode"] = explode
    return param


def _path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _json(description: str, media_type: str = "application/json", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": schema or {"type": "object"}}}}


def _op(summary: str, operation_id: str, parameters: list[dict[str, Any]], ok: dict[str, Any], *,
        not_found: bool = False, tags: list[str]) -> dict[str, Any]:
    responses = {"200": ok, **_STANDARD_ERRORS}
    if not_found:
        responses["404"] = {"$ref": "#/components/responses/NotFound"}
    responses["500"] = _ERROR
    return {"get": {"summary": summary, "operationId": operation_id, "tags": tags, "parameters": parameters, "responses": responses}}


def _components(cookie_name: str) -> dict[str, Any]:
    error_schema = {
        "type": "object",
        "required": ["code", "description"],
        "properties": {
            "code": {"type": "string", "example": "InvalidParameterValue"},
            "description": {"type": "string"},
            "parameter": {"type": "string", "description": "the query parameter at fault, if one is"},
        },
    }

    def error(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Exception"}}}}

    return {
        "securitySchemes": {
            "basicAuth": {"type": "http", "scheme": "basic"},
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "personal API token (geo-ibm users token NAME)"},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": cookie_name},
        },
        "schemas": {
            "Exception": error_schema,
            "FeatureCollection": {
                "type": "object",
                "required": ["type", "features"],
                "properties": {
                    "type": {"type": "string", "enum": ["FeatureCollection"]},
                    "features": {"type": "array", "items": {"$ref": "#/components/schemas/Feature"}},
                    "numberMatched": {"type": "integer", "minimum": 0},
                    "numberReturned": {"type": "integer", "minimum": 0},
                    "timeStamp": {"type": "string", "format": "date-time"},
                    "links": {"type": "array", "items": {"$ref": "#/components/schemas/Link"}},
                    "parameters": {"type": "object", "description": "analysis parameters used (hotspots)"},
                },
            },
            "Feature": {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": {"type": "string", "enum": ["Feature"]},
                    "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                    "geometry": {"type": "object", "nullable": True},
                    "properties": {"type": "object", "nullable": True},
                },
            },
            "Link": {
                "type": "object",
                "required": ["href", "rel"],
                "properties": {"href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"}, "title": {"type": "string"}},
            },
        },
        "responses": {
            "BadRequest": error("a query parameter is invalid or unknown; `parameter` names it"),
            "Unauthorized": {"description": "no or wrong credentials (Basic, Bearer token or session)"},
            "Forbidden": error("the account's role does not allow this"),
            "NotFound": error("no such layer, collection or feature"),
            "Error": error("unexpected server error"),
        },
    }


def build_openapi(*, server_url: str, collections: Mapping[str, Any], cookie_name: str) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document of the whole web API.

    Parameters
    ----------
    server_url
        Base URL of the app (scheme, host and script root, no trailing slash).
    collections
        The OGC collections (``webapp.ogc.COLLECTIONS``): id → object with ``title``,
        ``description``, ``role``, ``filters`` and ``queryables`` (each with ``name`` and
        ``parameter()``); each gets its own items and queryables paths so clients (GDAL among
        them) see exactly which filters it takes.
    cookie_name
        Name of the app's session cookie (``SESSION_COOKIE_NAME``), the ``cookieAuth`` scheme.
    """
    from geo_ibm.analysis import CELL_CHOICES, METHODS
    from geo_ibm.events import ENTRY_COUNTRIES, LOCATION_KINDS, TRANSPORT_MODES
    from geo_ibm.layers import CANTON_REGION, POLICE_REGIONS
    from webapp.reference import SERVED_LAYERS

    def limit(default: int, *, clamp: bool) -> dict[str, Any]:
        if clamp:
            # OGC API - Features: a larger limit is served as the maximum, never refused.
            return _query("limit", f"features per page; above {MAX_LIMIT} the page holds {MAX_LIMIT} (see the links)",
                          _or_empty({"type": "integer", "minimum": 1, "maximum": _MAX_DIGITS, "default": default}),
                          style="form", explode=False)
        return _query("limit", f"features per page (1..{MAX_LIMIT})",
                      _or_empty({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default}),
                      style="form", explode=False)

    offset = _query("offset", "features to skip (paging)", _or_empty({"type": "integer", "minimum": 0, "maximum": _MAX_DIGITS, "default": 0}))
    bbox = _query(
        "bbox", "lon_min,lat_min,lon_max,lat_max in CRS84 (WGS 84 longitude/latitude), or six numbers with heights "
        "(lon_min,lat_min,h_min,lon_max,lat_max,h_max); each minimum at most its maximum",
        {"type": "string", "pattern": _BBOX_PATTERN},
    )
    datetime = _query(
        "datetime", "RFC 3339 instant or interval: 2025-01-31, 2025-01-01/2025-03-31, ../2025-01-01, 2025-01-01/.. "
        f"(years {MIN_YEAR}-{MAX_YEAR}; leave the parameter out for no time filter)",
        {"type": "string", "minLength": 1, "pattern": _DATETIME_PATTERN}, style="form", explode=False,
    )
    fmt = _query("f", "output format; only json", {"type": "string", "enum": ["json"]})
    def code(name: str, description: str, values: Iterable[str]) -> dict[str, Any]:
        # An empty value is no filter (HTML forms send empty fields); values match case-insensitively.
        return _query(name, f"{description}; empty: no filter", {"type": "string", "enum": ["", *values]})

    filters = {
        "quarter": _query("quarter", "quarter, e.g. 2025-Q1; empty: no filter",
                          {"type": "string", "pattern": f"^({_QUARTER_PATTERN[1:-1]})?$"}),
        "region": code("region", "police region", POLICE_REGIONS),
        "canton": code("canton", "canton", sorted(CANTON_REGION)),
        "location_kind": code("location_kind", "where the interception took place", LOCATION_KINDS),
        "entry_country": code("entry_country", "neighbour the group came from", ENTRY_COUNTRIES),
        "transport_mode": code("transport_mode", "means of transport", TRANSPORT_MODES),
    }
    date_from = _query("from", "first day (YYYY-MM-DD) or instant (RFC 3339), included; empty: no bound; "
                       "not after to, and not together with datetime",
                       {"type": "string", "pattern": _DAY_OR_EMPTY})
    date_to = _query("to", "last day (YYYY-MM-DD) or instant (RFC 3339), included; empty: no bound",
                     {"type": "string", "pattern": _DAY_OR_EMPTY})
    fc = {"$ref": "#/components/schemas/FeatureCollection"}
    feature = {"$ref": "#/components/schemas/Feature"}
    count = {"type": "integer", "minimum": 0}
    archive = {
        "type": "object", "required": ["name", "href"],
        "properties": {
            "name": {"type": "string"}, "href": {"type": "string"},
            "error": {"type": "string", "description": "why the archive's manifest cannot be read"},
            "crs": {"type": "string"}, "crs_name": {"type": "string"}, "partitioning": {"type": "string"},
            "partitions": count, "rows": count, "bytes": count,
            "bounds": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "nullable": True,
                       "description": "xmin, ymin, xmax, ymax in the archive's CRS"},
            "first_event": {"type": "string", "nullable": True}, "last_event": {"type": "string", "nullable": True},
            "created": {"type": "string", "nullable": True},
            "rows_per_quarter": {"type": "object", "additionalProperties": count},
            "rows_per_country": {"type": "object", "additionalProperties": count},
            "columns": {"type": "array", "items": {"type": "string"}},
            "counts_by": {"type": "array", "items": {"type": "string"},
                          "description": "what the Archives page's counts can count this archive by"},
        },
    }

    paths: dict[str, Any] = {
        "/api/layers": _op("List the reference layers", "apiLayers", [], _json("layer names and URLs"), tags=["api"]),
        "/api/layers/{name}": _op(
            "A reference layer as GeoJSON", "apiLayer",
            [{**_path("name", "layer name"), "schema": {"type": "string", "enum": list(SERVED_LAYERS)}}],
            _json("the layer", "application/geo+json", fc), not_found=True, tags=["api"],
        ),
        "/api/events": _op(
            "Events as GeoJSON points (analyst role)", "apiEvents",
            [*filters.values(), date_from, date_to, datetime, bbox, limit(1000, clamp=False), offset],
            _json("a page of events with numberMatched", "application/geo+json", fc), tags=["api"],
        ),
        "/api/events/{event_id}": _op(
            "One event (analyst role)", "apiEvent", [_path("event_id", "event identifier")],
            _json("the event", "application/geo+json", feature), not_found=True, tags=["api"],
        ),
        "/api/stats": _op(
            "Event counts per quarter and police region", "apiStats", [*filters.values(), date_from, date_to],
            _json("total, by_quarter, by_region"), tags=["api"],
        ),
        "/api/hotspots": _op(
            "Hotspot analysis of the stored events", "apiHotspots",
            [
                _query("method", "analysis method", {"type": "string", "enum": list(METHODS), "default": "gi"}),
                _query("cell", "grid cell size in metres (default from the data)", _or_empty({"type": "number", "minimum": 50, "maximum": 50000})),
                _query("band", "distance band / search radius in metres (default from the data)",
                       _or_empty({"type": "number", "minimum": 50, "maximum": 50000})),
                date_from, date_to, filters["region"],
                _query("seed", "seed of permutation tests",
                       _or_empty({"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "default": 0})),
                _query("cells", "grid cells returned by gi, lisa and emerging", {"type": "string", "enum": list(CELL_CHOICES), "default": "significant"}),
            ],
            _json("result features and the parameters used", "application/geo+json", fc), tags=["api"],
        ),
        "/api/archives": _op(
            "The partitioned archives of this server (analyst role)", "apiArchives", [],
            _json("each archive's description, as /api/archives/{name}, and the URL of the analyses' page",
                  schema={"type": "object", "required": ["archives"],
                          "properties": {"archives": {"type": "array", "items": archive}, "analyses": {"type": "string"}}}),
            tags=["api"],
        ),
        "/api/archives/{name}": _op(
            "One partitioned archive (analyst role)", "apiArchive",
            [{**_path("name", "archive name, as GEO_IBM_ARCHIVES names it"),
              "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}, "example": "lux"}],
            _json("CRS, partitions, events, span, columns, counts_by; or error when it cannot be read", schema=archive),
            not_found=True, tags=["api"],
        ),
        "/ogc/": _op("Landing page", "getLandingPage", [fmt], _json("links to the API definition, conformance and data"), tags=["ogc"]),
        "/ogc/conformance": _op("Conformance classes", "getConformance", [fmt], _json("conformsTo"), tags=["ogc"]),
        "/ogc/api": _op("This API definition", "getApi", [fmt], _json("OpenAPI 3.0", OPENAPI_MEDIA_TYPE), tags=["ogc"]),
        "/ogc/openapi": _op("The OGC API's own definition (its paths relative to /ogc)", "getOgcApi", [fmt],
                            _json("OpenAPI 3.0", OPENAPI_MEDIA_TYPE), tags=["ogc"]),
        "/ogc/collections": _op("Feature collections", "getCollections", [fmt], _json("collections"), tags=["ogc"]),
    }
    for cid, coll in collections.items():
        own = tuple(getattr(coll, "filters", ()))
        queryables = tuple(getattr(coll, "queryables", ()))
        params = [limit(DEFAULT_LIMIT, clamp=True), offset, bbox, datetime, fmt, *(filters[name] for name in own),
                  *(q.parameter() for q in queryables if q.name not in own), *filter_parameters(queryables)]
        role_note = f" ({coll.role} role)" if coll.role != "viewer" else ""
        paths[f"/ogc/collections/{cid}"] = _op(
            f"{coll.title}: metadata", f"describeCollection_{cid}", [fmt], _json("collection metadata"), tags=["ogc"],
        )
        paths[f"/ogc/collections/{cid}/items"] = _op(
            f"{coll.title}: features{role_note}", f"getFeatures_{cid}", params,
            _json(coll.description, "application/geo+json", fc), not_found=True, tags=["ogc"],
        )
        paths[f"/ogc/collections/{cid}/queryables"] = _op(
            f"{coll.title}: queryable properties", f"getQueryables_{cid}", [fmt],
            _json("JSON Schema of the properties /items filters on (name=value, and filter in CQL2)",
                  "application/schema+json"),
            tags=["ogc"],
        )
        paths[f"/ogc/collections/{cid}/items/{{featureId}}"] = _op(
            f"{coll.title}: one feature{role_note}", f"getFeature_{cid}", [_path("featureId", "feature id"), fmt],
            _json("the feature", "application/geo+json", feature), not_found=True, tags=["ogc"],
        )

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "geo_ibm web API",
            "version": "1.0.0",
            "description": "Border layers, interception events, hotspot analyses and route layers (corridors, "
            "entry crossings, flows and network hot spots) for Luxembourg's Integrated Border Management. Geometries are GeoJSON in WGS 84 longitude/latitude. Every request "
            "needs a login (HTTP Basic, a Bearer token or a session); unknown query parameters are refused with 400.",
        },
        "servers": [{"url": server_url}],
        "security": [{"basicAuth": []}, {"bearerAuth": []}, {"cookieAuth": []}],
        "tags": [{"name": "api", "description": "JSON API"}, {"name": "ogc", "description": "OGC API – Features"}],
        "paths": paths,
        "components": _components(cookie_name),
    }


OGC_PREFIX = "/ogc"


def ogc_openapi(document: Mapping[str, Any], *, prefix: str = OGC_PREFIX) -> dict[str, Any]:
    """The OGC API part of ``document`` (:func:`build_openapi`) as a document of its own.

    The same operations, with the paths under ``prefix`` written relative to it and the server
    URL ending in it, as OGC API – Features clients expect from the landing page's
    ``service-desc``: GDAL's OAPIF driver looks up ``/collections/{id}/items`` in it to learn
    which property filters it may send to the server instead of filtering every feature itself.
    """
    paths: dict[str, Any] = {}
    for path, item in document["paths"].items():
        if path == prefix + "/":
            paths["/"] = item
        elif path.startswith(prefix + "/"):
            paths[path[len(prefix):]] = item
    info = {**document["info"], "title": "geo_ibm OGC API – Features",
            "description": "Reference layers, interception events, hotspots and route layers of Luxembourg's internal "
            "Schengen borders (OGC API – Features Part 1, and Part 3 queryables and CQL2 filters). Every request needs a login; unknown query "
            "parameters are refused with 400."}
    return {**document, "info": info, "servers": [{"url": s["url"] + prefix} for s in document["servers"]],
            "tags": [t for t in document["tags"] if t["name"] == "ogc"], "paths": paths}
