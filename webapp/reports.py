"""Report exports: static maps (PNG, SVG, PDF) and report tables (XLSX, CSV) for the filtered events."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import geopandas as gpd
import pandas as pd
from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for

from geo_ibm import figures, tables
from geo_ibm.errors import Problem, ValidationError
from webapp.auth import audit, get_store, require_role
from webapp.i18n import gettext as _

# Gi* cell/band take the hotspot page's bounds and default cell.
from webapp.pages import (
    check_hotspot_budget,
    filter_choices,
    filter_query,
    neutralise_formulas,
    parse_filters,
    parse_hotspot_options,
    reference_layers,
)
from webapp.params import parameter_error, parse_float, parse_int, single

reports_bp = Blueprint("reports", __name__, url_prefix="/reports")

MAP_FORMATS: tuple[str, ...] = tuple(figures.FORMATS)
TABLE_FORMATS: dict[str, str] = {"xlsx": tables.XLSX_MEDIA_TYPE, "csv": "text/csv; charset=utf-8"}
MAP_PARAMS: tuple[str, ...] = ("map", "cell", "band", "width_mm", "dpi")
"""Query parameters of a map download besides the filters."""
TABLE_PARAMS: tuple[str, ...] = ("table", "cell", "band")
"""Query parameters of a table download besides the filters (``table`` picks the CSV table)."""
PAGE_PARAMS: tuple[str, ...] = ("map", "format", "table", "cell", "band")


def _choice(args: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = single(args, name)
    if value is None or value == "":
        return default
    if value not in allowed:
        raise parameter_error(name, value, f"use one of {', '.join(allowed)}")
    return value


def _format(fmt: str, allowed: tuple[str, ...]) -> str:
    if fmt not in allowed:
        raise ValidationError(f"invalid query parameter 'format': use one of {', '.join(allowed)} (got {fmt!r})",
                              [Problem("unknown format", column="format", value=fmt)])
    return fmt


def _period(filters: Mapping[str, Any], events: gpd.GeoDataFrame) -> str | None:
    """The selected period as the reader should see it: the quarter, the from/to dates, else the data's span."""
    if filters.get("quarter"):
        return str(filters["quarter"]).upper().replace("-", "")
    start, end = filters.get("start"), filters.get("end")
    if start is not None or end is not None:
        first = f"{pd.Timestamp(start):%Y-%m-%d}" if start is not None else "…"
        # ``end`` is exclusive; the last day shown is the one before it.
        last = f"{pd.Timestamp(end) - pd.Timedelta(microseconds=1):%Y-%m-%d}" if end is not None else "…"
        return f"{first} – {last}"
    if len(events):
        when = events["observed_at"]
        return f"{when.min():%Y-%m-%d} – {when.max():%Y-%m-%d}"
    return None


def _filters_text(filters: Mapping[str, Any]) -> dict[str, str]:
    return {k: (f"{pd.Timestamp(v):%Y-%m-%d %H:%M}" if k in ("start", "end") else str(v)) for k, v in filters.items()}


def _previous_quarter(store: Any, filters: Mapping[str, Any]) -> gpd.GeoDataFrame | None:
    """With a ``quarter`` filter, the quarter before it under the same other filters (for quarter-on-quarter change)."""
    if not filters.get("quarter"):
        return None
    return store.events(**tables.previous_quarter_filters(filters))


def _neighbours() -> gpd.GeoDataFrame:
    cache: dict[str, gpd.GeoDataFrame] = current_app.extensions.setdefault("geo_ibm_report_layers", {})
    if "neighbours" not in cache:
        from geo_ibm.layers import neighbour_outlines

        cache["neighbours"] = neighbour_outlines()
    return cache["neighbours"]


def _attachment(data: bytes, mimetype: str, filename: str) -> Response:
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@reports_bp.route("/")
@require_role("analyst")
def reports_page() -> Any:
    """The report export form: filters, map kind and format, and download links for the selection."""
    filters = parse_filters(request.args, extra=PAGE_PARAMS)
    kind = _choice(request.args, "map", figures.MAP_KINDS, "overview")
    fmt = _choice(request.args, "format", MAP_FORMATS + tuple(TABLE_FORMATS), "png")
    table = _choice(request.args, "table", tables.TABLE_NAMES, tables.TABLE_NAMES[0])
    parse_hotspot_options(request.args)
    total = int(get_store().count(**filters))
    query = filter_query(request.args)
    return render_template(
        "reports.html", total=total, choices=filter_choices(), query=query, kind=kind, fmt=fmt, table=table,
        map_kinds=figures.MAP_KINDS, map_formats=MAP_FORMATS, table_formats=tuple(TABLE_FORMATS),
        table_names=tables.TABLE_NAMES, table_titles=tables.TABLE_TITLES,
    )


@reports_bp.route("/download")
@require_role("analyst")
def download() -> Any:
    """The form's target: send the browser to the map or table download the form chose."""
    parse_filters(request.args, extra=PAGE_PARAMS)
    fmt = _choice(request.args, "format", MAP_FORMATS + tuple(TABLE_FORMATS), "png")
    query = filter_query(request.args)
    options = {k: str(request.args[k]) for k in ("cell", "band") if request.args.get(k)}
    if fmt in MAP_FORMATS:
        kind = _choice(request.args, "map", figures.MAP_KINDS, "overview")
        return redirect(url_for("reports.report_map", fmt=fmt, map=kind, **query, **options))
    if fmt == "csv":
        table = _choice(request.args, "table", tables.TABLE_NAMES, tables.TABLE_NAMES[0])
        return redirect(url_for("reports.report_tables", fmt=fmt, table=table, **query, **options))
    return redirect(url_for("reports.report_tables", fmt=fmt, **query, **options))


@reports_bp.route("/map.<fmt>")
@require_role("analyst")
def report_map(fmt: str) -> Any:
    """A print map of the filtered events (``map=overview|hotspots|kde``) as PNG, SVG or PDF; audited.

    Optional ``width_mm`` (60-600, default 170), ``dpi`` (72-600, default 200), and for
    ``map=hotspots`` the Gi* ``cell`` and ``band`` in metres.
    """
    fmt = _format(fmt, MAP_FORMATS)
    filters = parse_filters(request.args, extra=MAP_PARAMS)
    kind = _choice(request.args, "map", figures.MAP_KINDS, "overview")
    options = parse_hotspot_options(request.args)
    if kind == "hotspots":
        # The print map runs Gi* with the user's sizes: the same limits as the CLI and API.
        check_hotspot_budget(reference_layers()["outline"], **options, methods=("gi",))
    width_mm = parse_float(single(request.args, "width_mm"), name="width_mm", default=170.0, minimum=60, maximum=600)
    dpi = parse_int(single(request.args, "dpi"), name="dpi", default=200, minimum=72, maximum=600)
    events = get_store().events(**filters)
    ref = reference_layers()
    fig = figures.report_map(
        events, kind=kind, outline=ref["outline"], borders=ref["borders"], crossings=ref["crossings"],
        neighbours=_neighbours(), regions=ref["regions"], cell=options["cell"], band=options["band"],
        period=_period(filters, events), width_mm=width_mm, dpi=dpi, t=_,
    )
    data = figures.figure_bytes(fig, format=fmt)
    audit("export", format=fmt, map=kind, rows=len(events), filters=_filters_text(filters))
    return _attachment(data, figures.FORMATS[fmt], f"geo_ibm-{kind}.{fmt}")


@reports_bp.route("/tables.<fmt>")
@require_role("analyst")
def report_tables(fmt: str) -> Any:
    """The report tables of the filtered events: every table as XLSX, or one (``table=``) as CSV; audited."""
    fmt = _format(fmt, tuple(TABLE_FORMATS))
    filters = parse_filters(request.args, extra=TABLE_PARAMS)
    options = parse_hotspot_options(request.args)
    if fmt == "csv":
        name = single(request.args, "table")
        if not name:
            raise parameter_error("table", name, f"a CSV holds one table; use one of {', '.join(tables.TABLE_NAMES)}")
        _choice(request.args, "table", tables.TABLE_NAMES, None)
        names: tuple[str, ...] = (name,)
    else:
        if single(request.args, "table"):
            raise parameter_error("table", request.args.get("table"), "the workbook holds every table; use it with CSV only")
        names = tables.TABLE_NAMES
    ref = reference_layers()
    # The hotspot table runs Gi* with the user's sizes: the same limits as the CLI and API.
    check_hotspot_budget(ref["outline"], **options, methods=("gi",))
    store = get_store()
    events = store.events(**filters)
    built = tables.report_tables(
        events, outline=ref["outline"], borders=ref["borders"], crossings=ref["crossings"], cantons=ref["cantons"],
        cell=options["cell"], band=options["band"], names=names, previous=_previous_quarter(store, filters),
    )
    # Table cells are aggregates, but unit names come from installable reference files: a text
    # cell must never reach a spreadsheet as a formula.
    safe = {key: neutralise_formulas(table) for key, table in built.tables.items()}
    detail = {"format": fmt, "rows": len(events), "filters": _filters_text(filters)}
    if fmt == "csv":
        if names[0] not in safe:
            # The analysis refused this table for the selection: say why, as a bad request.
            raise ValidationError(built.notes[0], [Problem("not computed", column="table", value=names[0])])
        audit("export", table=names[0], **detail)
        return _attachment(tables.table_csv(safe[names[0]]), TABLE_FORMATS["csv"], f"geo_ibm-{names[0]}.csv")
    data = tables.tables_to_xlsx(
        safe, period=_period(filters, events), filters=_filters_text(filters), events=len(events),
        notes=built.notes, generated_at=datetime.now(timezone.utc),
    )
    audit("export", tables=list(safe), **detail)
    return _attachment(data, TABLE_FORMATS["xlsx"], "geo_ibm-tables.xlsx")

