"""HTML pages: overview and hotspot maps (with their map documents), imports, exports, audit, users."""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.utils import secure_filename

from geo_ibm import maps
from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.settings import WEB_CRS, boundaries_dir
from webapp import accounts
from webapp.api import ANALYSIS_COLUMNS
from webapp.assets import ASSET_PREFIX, inline_assets
from webapp.auth import audit, get_store, has_role, map_csp, require_role, tile_origin
from webapp.i18n import gettext as _
from webapp.params import check_known, parse_date_range, parse_event_filters

log = logging.getLogger(__name__)

pages_bp = Blueprint("pages", __name__)
maps_bp = Blueprint("maps", __name__, url_prefix="/maps")
imports_bp = Blueprint("imports", __name__)
exports_bp = Blueprint("exports", __name__, url_prefix="/exports")
admin_bp = Blueprint("admin", __name__, url_prefix="/admin")

FILTER_PARAMS: tuple[str, ...] = (
    "from", "to", "quarter", "region", "canton", "location_kind", "entry_country", "transport_mode",
)
"""Query parameters of every map page, export and map document (the URL holds the filter)."""

MAP_KINDS = ("overview", "hotspots")
UPLOAD_SUFFIXES = (".csv", ".xlsx", ".geojson", ".json", ".gpkg")
RECENT_EVENTS = 20
DETAIL_ROLE = "analyst"
"""Role needed to see single interception records (tables, popups); viewers get aggregates."""

_cache_lock = threading.Lock()


# --------------------------------------------------------------------------- shared helpers


def reference_layers() -> dict[str, gpd.GeoDataFrame]:
    """The shipped layers the maps draw, read once per data folder and process."""
    key = str(boundaries_dir())
    cache: dict[str, dict[str, gpd.GeoDataFrame]] = current_app.extensions.setdefault("geo_ibm_layers", {})
    if key not in cache:
        from geo_ibm import layers

        with _cache_lock:
            cache[key] = {
                "outline": layers.luxembourg_outline(),
                "borders": layers.internal_borders(),
                "crossings": layers.crossing_points(),
                "regions": layers.police_regions(),
                "cantons": layers.cantons(),
            }
    return cache[key]


def filter_choices() -> dict[str, list[str]]:
    """Allowed values of the code filters (events code lists, police regions, cantons)."""
    from geo_ibm.events import CODE_LISTS

    ref = reference_layers()
    choices = {name: list(values) for name, values in CODE_LISTS.items()}
    choices["region"] = sorted(ref["regions"]["region"].astype(str).unique())
    choices["canton"] = sorted(ref["cantons"]["canton"].astype(str).unique())
    return choices


def parse_filters(args: Mapping[str, Any], *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword arguments for ``store.events`` from the query string; bad values give 400.

    ``from``/``to`` are dates or date-times (``to`` included), ``quarter`` is ``YYYY-Qn``;
    the code filters must be known values. Unknown parameters are refused too, so a typo
    never silently widens the selection.
    """
    check_known(args, FILTER_PARAMS + extra)
    filters = parse_event_filters(args, choices=filter_choices())
    interval = parse_date_range(args)
    if interval is not None:
        filters.update(interval.as_filters())
    return filters


def filter_query(args: Mapping[str, Any], *, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """The filter parameters present in ``args`` (non-empty), to rebuild links."""
    return {k: str(args.get(k)) for k in FILTER_PARAMS + extra if args.get(k)}


def _translate(message: str) -> str:
    return _(message)


def _tiles() -> tuple[str | None, str | None]:
    return current_app.config.get("TILE_URL") or None, current_app.config.get("TILE_ATTRIBUTION") or None


def _store_stamp() -> str:
    # With SQLite's write-ahead log a write may only touch the -wal file until a checkpoint.
    path = Path(str(current_app.config.get("STORE_PATH")))
    parts = [str(path)]
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            stat = candidate.stat()
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except OSError:
            parts.append("-")
    return ":".join(parts)


def _cached(kind: str, filters: dict[str, Any], build: Any) -> Any:
    """Memoise an expensive map result per (kind, filters, store version, language)."""
    cache: OrderedDict[tuple, Any] = current_app.extensions.setdefault("geo_ibm_map_cache", OrderedDict())
    key = (kind, tuple(sorted((k, str(v)) for k, v in filters.items())), _store_stamp(), request.cookies.get("lang"),
           str(request.accept_languages))
    with _cache_lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = build()
    with _cache_lock:
        cache[key] = value
        while len(cache) > int(current_app.config.get("MAP_CACHE_SIZE", 16)):
            cache.popitem(last=False)
    return value


HOTSPOT_PARAMS: tuple[str, ...] = ("cell", "band")
"""Extra query parameters of the hotspot page and map: Gi* cell size and distance band (metres)."""
DEFAULT_HOTSPOT_CELL_M = 500.0


def parse_hotspot_options(args: Mapping[str, Any]) -> dict[str, float | None]:
    """``cell`` (200-5000 m, default 500) and ``band`` (metres, default: the library's choice).

    200 m is the smallest cell whose grid over Luxembourg stays within the emerging hot spot
    limit (:data:`geo_ibm.analysis.MAX_CELLS`), so every layer of the page can be drawn.
    """
    from webapp.params import parse_float

    cell = parse_float(args.get("cell"), name="cell", default=DEFAULT_HOTSPOT_CELL_M, minimum=200, maximum=5000)
    band = parse_float(args.get("band"), name="band", default=None, minimum=100, maximum=50_000)
    return {"cell": cell, "band": band}


PAGE_METHODS: tuple[str, ...] = ("gi", "kde", "clusters", "emerging")
"""Hotspot methods drawn on the hotspot map; the user's ``cell``/``band`` go to Gi* and emerging."""


def check_hotspot_budget(outline: gpd.GeoDataFrame, *, cell: float | None, band: float | None,
                         methods: tuple[str, ...] = PAGE_METHODS) -> None:
    """Refuse, before any computation, a ``cell``/``band`` that the CLI and API would refuse.

    Raises the ``ValidationError`` of :func:`geo_ibm.analysis.check_budget` (400, naming
    ``cell`` or ``band``). Kernel density and clusters choose their own sizes on this page.
    """
    from geo_ibm.analysis import check_budget

    area = outline.geometry.union_all()
    for method in methods:
        user_sizes = method in ("gi", "lisa", "emerging")
        check_budget(method, area=area, cell=cell if user_sizes else None, band=band if user_sizes else None)


def hotspot_layers(
    events: gpd.GeoDataFrame,
    outline: gpd.GeoDataFrame,
    *,
    cell: float | None = DEFAULT_HOTSPOT_CELL_M,
    band: float | None = None,
    max_cluster_events: int = 200_000,
) -> tuple[dict[str, Any], list[str]]:
    """Run the library's hotspot methods; returns the layers and notes on methods that could not run.

    Views never compute statistics: each layer comes from its ``geo_ibm`` function as is.
    """
    check_hotspot_budget(outline, cell=cell, band=band)
    layers: dict[str, Any] = {}
    notes: list[str] = []

    def attempt(label: str, run: Any) -> None:
        try:
            layers.update(run())
        except ModuleNotFoundError as exc:
            notes.append(f"{_(label)}: {_('not available in this installation')} ({exc.name})")
        except GeoIbmError as exc:
            notes.append(f"{_(label)}: {str(exc).splitlines()[0]}")

    def gi() -> dict[str, Any]:
        from geo_ibm.hotspots import hotspots_from_events

        result = hotspots_from_events(events, study_area=outline, cell=cell, band=band)
        return {"gi": result.assign(gi_bin=result["gi_bin_fdr"])}

    def kde() -> dict[str, Any]:
        from geo_ibm.kde import density_contours, kernel_density

        surface = kernel_density(events, study_area=outline)
        return {"contours": density_contours(surface, study_area=outline)}

    def clusters() -> dict[str, Any]:
        from geo_ibm.clusters import density_clusters

        if len(events) > max_cluster_events:
            raise ValidationError(
                f"{len(events)} events are too many for clustering on request (limit {max_cluster_events}); narrow the filter"
            )
        result = density_clusters(events)
        return {"clusters": result}

    def emerging() -> dict[str, Any]:
        from geo_ibm.emerging import emerging_hotspots

        return {"emerging": emerging_hotspots(events, study_area=outline, cell=cell, band=band)}

    attempt("Gi* hot and cold spots", gi)
    attempt("Kernel density contours", kde)
    attempt("Density clusters", clusters)
    attempt("Emerging hot spots", emerging)
    return layers, notes


def build_map(kind: str, filters: dict[str, Any], options: dict[str, Any] | None = None) -> str:
    """The HTML document of the ``overview`` or ``hotspots`` map for ``filters`` (and hotspot ``options``)."""
    options = dict(options or {})
    ref = reference_layers()
    tiles_url, tiles_attr = _tiles()
    # Part of the cache key: a map built for an analyst must never be served to a viewer.
    details = has_role(DETAIL_ROLE)

    def build() -> str:
        store = get_store()
        if kind == "overview":
            max_markers = int(current_app.config.get("MAP_MAX_MARKERS", 1000))
            # Above max_markers (or without the right to see single records) the map draws
            # cells only, which need nothing but coordinates.
            few = details and store.count(**filters) <= max_markers
            events = store.events(**filters) if few else store.event_points(**filters)
            fmap = maps.overview_map(
                events, outline=ref["outline"], borders=ref["borders"], crossings=ref["crossings"],
                tiles_url=tiles_url, tile_attribution=tiles_attr, asset_base=ASSET_PREFIX,
                max_markers=max_markers, details=details, t=_translate,
            )
        else:
            events = store.events(**filters, columns=ANALYSIS_COLUMNS)
            layers, notes = hotspot_layers(
                events, ref["outline"], max_cluster_events=int(current_app.config.get("MAX_CLUSTER_EVENTS", 200_000)), **options
            )
            fmap = maps.hotspot_map(
                outline=ref["outline"], borders=ref["borders"], tiles_url=tiles_url, tile_attribution=tiles_attr,
                asset_base=ASSET_PREFIX, notes=notes, t=_translate, **layers,
            )
        return maps.render_map(fmap)

    key = {**filters, **{f"option_{k}": v for k, v in options.items()}, "details": details}
    return _cached(kind, key, build)


def _map_headers(response: Response) -> Response:
    tiles_url, _attr = _tiles()
    response.headers["Content-Security-Policy"] = map_csp(
        self_origin=request.host_url.rstrip("/"), tile_origin=tile_origin(tiles_url)
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


# --------------------------------------------------------------------------- map pages


@pages_bp.route("/")
def index() -> Any:
    return redirect(url_for("pages.overview"))


@pages_bp.route("/overview")
@require_role("viewer")
def overview() -> Any:
    """Borders, crossing points and the filtered events, with counts and the latest events.

    The table of latest events is for the analyst role and above; viewers see aggregates only.
    """
    filters = parse_filters(request.args)
    store = get_store()
    total = int(store.count(**filters))
    details = has_role(DETAIL_ROLE)
    rows: list[dict[str, Any]] = []
    if details:
        # The store orders by time: the last page holds the latest events.
        recent = store.events(**filters, limit=RECENT_EVENTS, offset=max(0, total - RECENT_EVENTS))
        rows = _event_rows(recent.iloc[::-1])
    return render_template(
        "overview.html", total=total, recent=rows, details=details, choices=filter_choices(),
        query=filter_query(request.args),
        map_src=url_for("maps.map_document", kind="overview", **filter_query(request.args)),
    )


@pages_bp.route("/hotspots")
@require_role("viewer")
def hotspots() -> Any:
    """Gi*, kernel density, clusters and emerging hot spots as switchable map layers."""
    filters = parse_filters(request.args, extra=HOTSPOT_PARAMS)
    options = parse_hotspot_options(request.args)
    check_hotspot_budget(reference_layers()["outline"], **options)
    total = int(get_store().count(**filters))
    query = filter_query(request.args, extra=HOTSPOT_PARAMS)
    return render_template(
        "hotspots.html", total=total, choices=filter_choices(), query=query, options=options,
        map_src=url_for("maps.map_document", kind="hotspots", **query),
    )


def _event_rows(frame: gpd.GeoDataFrame) -> list[dict[str, Any]]:
    columns = [c for c in ("event_id", "observed_at", "location_kind", "entry_country", "transport_mode", "persons", "notes")
               if c in frame.columns]
    rows = []
    for record in frame[columns].to_dict(orient="records"):
        rows.append({k: ("" if v is None or (isinstance(v, float) and pd.isna(v)) else v) for k, v in record.items()})
    return rows


@maps_bp.route("/<kind>")
@require_role("viewer")
def map_document(kind: str) -> Any:
    """A map as its own document, framed by the pages in a sandboxed iframe, with its own CSP."""
    if kind not in MAP_KINDS:
        raise ValidationError(f"unknown map {kind!r}; use one of {', '.join(MAP_KINDS)}",
                              [Problem("unknown map", column="kind", value=kind)])
    if kind == "hotspots":
        filters = parse_filters(request.args, extra=HOTSPOT_PARAMS)
        options = parse_hotspot_options(request.args)
        # Before the cache and the store: a refused size costs nothing.
        check_hotspot_budget(reference_layers()["outline"], **options)
    else:
        filters, options = parse_filters(request.args), {}
    response = Response(build_map(kind, filters, options), mimetype="text/html")
    return _map_headers(response)


# --------------------------------------------------------------------------- imports


@imports_bp.route("/import", methods=["GET", "POST"])
@require_role("analyst")
def import_page() -> Any:
    """Upload an event file; all rows are stored or none, every problem listed with row and column."""
    if request.method == "GET":
        return render_template("import.html", report=None, problems=None, error=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError(_("Choose a file to upload."), [Problem("missing", column="file")])
    name = upload_name(upload.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ValidationError(
            f"{upload.filename}: unsupported file type {suffix or '(none)'!r}; use {', '.join(UPLOAD_SUFFIXES)}",
            [Problem("unsupported file type", file=upload.filename, column="file", value=suffix)],
        )
    workdir = Path(tempfile.mkdtemp(prefix="upload-", dir=_upload_root()))
    try:
        path = workdir / name
        upload.save(path)
        try:
            # The store records the import (or its failure) in the audit trail itself.
            report = get_store().import_file(path, user=g.user["name"], name=upload.filename)
        except ValidationError as exc:
            message = str(exc).splitlines()[0]
            return render_template("import.html", report=None, problems=exc.problems, error=message), 400
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return render_template("import.html", report=report, problems=None, error=None)


MAX_UPLOAD_STEM = 100
"""Characters kept of an uploaded file's stem on disk (file systems refuse names over 255 bytes)."""


def upload_name(filename: str) -> str:
    """A safe on-disk name for an uploaded file: ``secure_filename``, stem cut to ``MAX_UPLOAD_STEM``, suffix kept."""
    name = secure_filename(filename) or "upload"
    path = Path(name)
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return (stem[:MAX_UPLOAD_STEM] or "upload") + suffix


def _upload_root() -> Path:
    root = Path(current_app.instance_path) / "uploads"
    if not root.is_dir():
        # Uploads hold interception records until imported: owner only.
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return root


# --------------------------------------------------------------------------- exports


EXPORT_FORMATS = {
    "csv": ("text/csv", "events.csv"),
    "geojson": ("application/geo+json", "events.geojson"),
    "gpkg": ("application/geopackage+sqlite3", "events.gpkg"),
}


@exports_bp.route("/")
@require_role("analyst")
def exports_page() -> Any:
    """Download links for the filtered events and the current maps."""
    filters = parse_filters(request.args)
    total = int(get_store().count(**filters))
    return render_template("exports.html", total=total, choices=filter_choices(), query=filter_query(request.args),
                           formats=list(EXPORT_FORMATS))


def events_csv(events: gpd.GeoDataFrame) -> str:
    """Events as CSV text: attribute columns, then ``x``/``y`` (EPSG:2169) and ``lon``/``lat``."""
    frame = pd.DataFrame(events.drop(columns=events.geometry.name))
    frame["x"] = events.geometry.x.round(1)
    frame["y"] = events.geometry.y.round(1)
    web = events.geometry.to_crs(WEB_CRS)
    frame["lon"] = web.x.round(6)
    frame["lat"] = web.y.round(6)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].map(lambda v: v.isoformat() if pd.notna(v) else "")
    return neutralise_formulas(frame).to_csv(index=False)


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula (OWASP CSV injection)."""


def spreadsheet_safe(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula.

    Only strings are changed: numbers (negative ones too) stay numbers.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text columns hold no cell a spreadsheet would run as a formula."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, (pd.StringDtype, pd.CategoricalDtype)):
            out[col] = out[col].map(spreadsheet_safe)
    return out


@exports_bp.route("/events.<fmt>")
@require_role("analyst")
def export_events(fmt: str) -> Any:
    """The filtered events as CSV, GeoJSON (EPSG:4326) or GeoPackage (EPSG:2169); audited."""
    if fmt not in EXPORT_FORMATS:
        raise ValidationError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}",
                              [Problem("unknown format", column="format", value=fmt)])
    filters = parse_filters(request.args)
    events = get_store().events(**filters)
    mimetype, filename = EXPORT_FORMATS[fmt]
    audit("export", format=fmt, rows=len(events), filters={k: str(v) for k, v in filters.items()})
    if fmt == "csv":
        return Response(events_csv(events), mimetype=mimetype,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    from geo_ibm.io import write_vector

    with tempfile.TemporaryDirectory(dir=_upload_root()) as tmp:
        path = write_vector(events, Path(tmp) / filename, layer="events")
        data = path.read_bytes()
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@exports_bp.route("/map.html")
@require_role("analyst")
def export_map() -> Any:
    """The current map as one self-contained HTML file (libraries inlined, opens offline)."""
    kind = request.args.get("map", "overview")
    if kind not in MAP_KINDS:
        raise ValidationError(f"invalid query parameter 'map': use one of {', '.join(MAP_KINDS)} (got {kind!r})",
                              [Problem("unknown map", column="map", value=kind)])
    filters = parse_filters(request.args, extra=("map",) + HOTSPOT_PARAMS)
    options = parse_hotspot_options(request.args) if kind == "hotspots" else {}
    document = inline_assets(build_map(kind, filters, options))
    audit("export", format="html", map=kind, filters={k: str(v) for k, v in filters.items()})
    response = Response(document, mimetype="text/html",
                        headers={"Content-Disposition": f'attachment; filename="geo_ibm-{kind}.html"'})
    return _map_headers(response)


# --------------------------------------------------------------------------- administration


@admin_bp.route("/audit")
@require_role("admin")
def audit_page() -> Any:
    """The audit trail, newest first: logins, imports, exports, account changes."""
    from webapp.params import parse_limit

    check_known(request.args, ("limit",))
    limit = parse_limit(request.args.get("limit"), default=200, maximum=5000)
    entries = get_store().audit_log(limit=limit)
    if isinstance(entries, pd.DataFrame):
        entries = entries.to_dict(orient="records")
    return render_template("audit.html", entries=list(entries), limit=limit)


@admin_bp.route("/users", methods=["GET", "POST"])
@require_role("admin")
def users_page() -> Any:
    """Accounts and roles: add an account, change a role, reset a password, remove an account."""
    store = get_store()
    if request.method == "POST":
        action = request.form.get("action")
        name = (request.form.get("name") or "").strip()
        if action == "add":
            role = request.form.get("role") or ""
            accounts.add_user(store, name, role, request.form.get("password") or "")
            audit("user_add", name=name, role=role, via="web")
            flash(_("User %(name)s added.", name=name))
        elif action == "role":
            role = request.form.get("role") or ""
            accounts.set_role(store, name, role)
            audit("user_role", name=name, role=role)
            flash(_("Role of %(name)s changed.", name=name))
        elif action == "password":
            accounts.set_password(store, name, request.form.get("password") or "")
            audit("user_passwd", name=name, via="web")
            flash(_("Password of %(name)s changed.", name=name))
        elif action == "delete":
            if name.casefold() == g.user["name"].casefold():
                raise ValidationError(_("You cannot remove your own account."))
            accounts.delete_user(store, name)
            audit("user_delete", name=name)
            flash(_("User %(name)s removed.", name=name))
        else:
            raise ValidationError(f"unknown action {action!r}", [Problem("unknown action", column="action", value=action)])
        return redirect(url_for("admin.users_page"))
    return render_template("users.html", users=accounts.list_users(store), roles=accounts.ROLES)


BLUEPRINTS = (pages_bp, maps_bp, imports_bp, exports_bp, admin_bp)
