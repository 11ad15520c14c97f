"""Report exports: static maps (PNG, SVG, PDF) and report tables (XLSX, CSV) for the filtered events."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, cast, overload

import geopandas as gpd
import pandas as pd
from flask import Blueprint, redirect, render_template, request, url_for

from geo_ibm import figures, tables
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import neutralise_formulas
from webapp.auth import audit, get_store, require_role
from webapp.filters import filter_query, parse_filters, parse_hotspot_map, parse_page_sizes
from webapp.i18n import gettext as _
from webapp.params import parameter_error, parse_float, parse_int, single
from webapp.reference import filter_choices, layer_frame
from webapp.responses import attachment

reports_bp = Blueprint("reports", __name__, url_prefix="/reports")

MAP_FORMATS: tuple[str, ...] = tuple(figures.FORMATS)
TABLE_FORMATS: dict[str, str] = {"xlsx": tables.XLSX_MEDIA_TYPE, "csv": "text/csv; charset=utf-8"}
PAGE_PARAMS: tuple[str, ...] = ("map", "format", "table", "cell", "band")


@overload
def _choice(args: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str: ...
@overload
def _choice(args: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: None) -> str | None: ...
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


@reports_bp.route("/")
@require_role("analyst")
def reports_page() -> Any:
    """The report export form: filters, map kind and format, and download links for the selection."""
    filters = parse_filters(request.args, extra=PAGE_PARAMS)
    kind = _choice(request.args, "map", figures.MAP_KINDS, "overview")
    fmt = _choice(request.args, "format", MAP_FORMATS + tuple(TABLE_FORMATS), "png")
    table = _choice(request.args, "table", tables.TABLE_NAMES, tables.TABLE_NAMES[0])
    parse_page_sizes(request.args)
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
    values: dict[str, Any] = {**query, **{k: str(request.args[k]) for k in ("cell", "band") if request.args.get(k)}}
    if fmt in MAP_FORMATS:
        kind = _choice(request.args, "map", figures.MAP_KINDS, "overview")
        return redirect(url_for("reports.report_map", fmt=fmt, map=kind, **values))
    if fmt == "csv":
        table = _choice(request.args, "table", tables.TABLE_NAMES, tables.TABLE_NAMES[0])
        return redirect(url_for("reports.report_tables", fmt=fmt, table=table, **values))
    return redirect(url_for("reports.report_tables", fmt=fmt, **values))


@reports_bp.route("/map.<fmt>")
@require_role("analyst")
def report_map(fmt: str) -> Any:
    """A print map of the filtered events (``map=overview|hotspots|kde``) as PNG, SVG or PDF; audited.

    Optional ``width_mm`` (60-600, default 170), ``dpi`` (72-600, default 200), and for
    ``map=hotspots`` the Gi* ``cell`` and ``band`` in metres.
    """
    fmt = _format(fmt, MAP_FORMATS)
    kind = _choice(request.args, "map", figures.MAP_KINDS, "overview")
    # The print map runs Gi* with the user's sizes: the same limits as the CLI and API.
    query, options = parse_hotspot_map(request.args, extra=("map", "width_mm", "dpi"),
                                       methods=("gi",) if kind == "hotspots" else ())
    filters = query.store_filters()
    width_mm = parse_float(single(request.args, "width_mm"), name="width_mm", default=170.0, minimum=60, maximum=600)
    dpi = parse_int(single(request.args, "dpi"), name="dpi", default=200, minimum=72, maximum=600)
    events = get_store().events(**filters)
    fig = figures.report_map(
        events, kind=kind, outline=layer_frame("outline"), borders=layer_frame("borders"),
        crossings=layer_frame("crossings"), neighbours=layer_frame("neighbours"), regions=layer_frame("regions"),
        cell=options["cell"], band=options["band"],
        period=_period(filters, events), width_mm=width_mm, dpi=dpi, t=_,
    )
    data = figures.figure_bytes(fig, format=cast(figures.FigureFormat, fmt))
    audit("export", format=fmt, map=kind, rows=len(events), filters=_filters_text(filters))
    return attachment(data, figures.FORMATS[fmt], f"geo_ibm-{kind}.{fmt}")


@reports_bp.route("/tables.<fmt>")
@require_role("analyst")
def report_tables(fmt: str) -> Any:
    """The report tables of the filtered events: every table as XLSX, or one (``table=``) as CSV; audited."""
    fmt = _format(fmt, tuple(TABLE_FORMATS))
    # The hotspot table runs Gi* with the user's sizes: the same limits as the CLI and API.
    query, options = parse_hotspot_map(request.args, extra=("table",), methods=("gi",))
    filters = query.store_filters()
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
    store = get_store()
    events = store.events(**filters)
    built = tables.report_tables(
        events, outline=layer_frame("outline"), borders=layer_frame("borders"), crossings=layer_frame("crossings"),
        cantons=layer_frame("cantons"),
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
        return attachment(tables.table_csv(safe[names[0]]), TABLE_FORMATS["csv"], f"geo_ibm-{names[0]}.csv")
    data = tables.tables_to_xlsx(
        safe, period=_period(filters, events), filters=_filters_text(filters), events=len(events),
        notes=built.notes, generated_at=datetime.now(timezone.utc),
    )
    audit("export", tables=list(safe), **detail)
    return attachment(data, TABLE_FORMATS["xlsx"], "geo_ibm-tables.xlsx")

