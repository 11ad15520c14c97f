"""The Operations pages (planner role): saved operations, one operation's evaluation with its map and downloads,
and saving a finished plan (a Planning job's result) as an operation.

The page checks the form and calls :mod:`geo_ibm.planning.operations`; the evaluation reads at most
:data:`~geo_ibm.planning.operations.MAX_EVALUATED_EVENTS` events, counted before they are read.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
from flask import Blueprint, Response, redirect, render_template, request, url_for

from geo_ibm import maps
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.maps.planlayers import plan_map
from geo_ibm.planning import operations as ops
from geo_ibm.planning.files import EVALUATION_SUFFIXES, evaluation_bytes
from geo_ibm.planning.spacetime import block_label
from webapp.assets import ASSET_PREFIX
from webapp.auth import audit, get_store, require_role
from webapp.cache import cached
from webapp.documents import map_headers, tiles
from webapp.i18n import get_language
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir
from webapp.jobs import DONE, runner
from webapp.params import parse_float, parse_int, single
from webapp.reference import layer_frame
from webapp.responses import attachment

operations_bp = Blueprint("operations", __name__, url_prefix="/operations")

ROLE = "planner"
DOWNLOADS: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "gpkg": "application/geopackage+sqlite3",
}
SITE_COLUMNS = ops.SITE_COLUMNS


def _labels() -> dict[str, str]:
    return {"site_id": _("Site"), "rank": _("Rank"), "team_hours": _("Team-hours"),
            "operation_events": _("Interceptions"), "operation_persons": _("Persons"),
            "events_per_team_hour": _("Interceptions per team-hour"), "covered_events": _("Covered events"),
            "forecast_events": _("Forecast"), "baseline_events": _("Baseline"),
            "vs_forecast_pct": _("Against forecast (%)"), "vs_baseline_pct": _("Against baseline (%)")}


def _user() -> str:
    from flask import g

    return str(g.user["name"])


def _baseline_weeks() -> int:
    return parse_int(single(request.args, "baseline_weeks"), name="baseline_weeks", default=8, minimum=1,
                     maximum=ops.MAX_BASELINE_WEEKS)


def _evaluate(name: str, weeks: int) -> tuple[ops.Operation, ops.Evaluation]:
    """The operation and its evaluation, built once per store version (the page, its map and downloads share it)."""
    store = get_store()

    def build() -> tuple[ops.Operation, ops.Evaluation]:
        op = ops.load_operation(store, name)
        events = ops.evaluation_events(store, op, baseline_weeks=weeks)
        return op, ops.evaluate_operation(op, events, baseline_weeks=weeks)

    return cached(store, "operation", (name.lower(), weeks), build)


def _cell(value: Any, column: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if column in ("site_id",):
        return str(value)
    if column == "rank":
        return "" if int(value) == 0 else str(int(value))
    if column == "events_per_team_hour":
        return f"{float(value):.3f}"
    if column.endswith("_pct"):
        return f"{float(value):+.1f}"
    return f"{float(value):,.1f}"


@operations_bp.route("/")
@require_role(ROLE)
def operations_page() -> Any:
    """The saved operations, newest first."""
    listed = get_store().operations()
    rows = [{"name": r.name, "start": r.start_date, "end": r.end_date, "user": r.user,
             "created": f"{r.created:%Y-%m-%d %H:%M}"} for r in listed.itertuples()]
    return render_template("operations.html", rows=rows)


@operations_bp.route("/save", methods=["POST"])
@require_role(ROLE)
def save_from_plan() -> Any:
    """Save the plan of a finished Planning job as an operation (name, first and last day)."""
    from webapp.planning import PlanResult

    form = request.form
    job = runner().get(single(form, "job") or "", owner=_user())
    if job.state != DONE or not isinstance(job.result, PlanResult):
        raise ValidationError(f"job: the plan {job.id} has no result ({job.state})",
                              [Problem("no result", column="job", value=job.state)])
    result = job.result
    hours = parse_float(single(form, "hours_per_day"), name="hours_per_day", default=None, minimum=0.5, maximum=24)
    filters = result.params.get("filters") or {}
    params = {**{k: v for k, v in result.plan.summary.items() if k != "pairs"}, **result.params,
              "from": filters.get("from"), "to": filters.get("to")}
    op = ops.operation_from_plan(result.plan.sites, params, name=single(form, "name") or "",
                                 start=single(form, "from") or "", end=single(form, "to") or "",
                                 hours_per_day=hours, id_column=result.id_column)
    ops.save_operation(get_store(), op, user=_user())
    return redirect(url_for("operations.operation_page", name=op.name), code=303)


@operations_bp.route("/<name>")
@require_role(ROLE)
def operation_page(name: str) -> Any:
    """One operation: what was planned, and how it did (per site and in total), with its map and downloads."""
    weeks = _baseline_weeks()
    op, result = _evaluate(name, weeks)
    audit("operation", what="evaluated", name=op.name, baseline_weeks=weeks)
    table = result.sites.drop(columns="geometry")
    rows = [{c: _cell(row[c], c) for c in SITE_COLUMNS} for row in table.to_dict(orient="records")]
    shifts = [{"site": s, "window": block_label(int(b), int(op.shift_hours or 1))}
              for s, b in zip(op.shifts["site_id"], op.shifts["block"], strict=True)]
    return render_template("operation.html", op=op, summary=result.summary, rows=rows, columns=SITE_COLUMNS,
                           labels=_labels(), shifts=shifts, weeks=weeks, downloads=tuple(DOWNLOADS),
                           map_src=url_for("operations.operation_map", name=op.name, baseline_weeks=weeks))


@operations_bp.route("/<name>/map")
@require_role(ROLE)
def operation_map(name: str) -> Any:
    """The operation's map document: its sites, their reach and its interceptions (covered or not)."""
    op, result = _evaluate(name, _baseline_weeks())
    sites = op.sites.copy()
    tagged = result.tagged if result.tagged is not None else op.sites.iloc[:0]
    tiles_url, tiles_attr = tiles()
    fmap = plan_map(sites, tagged, outline=layer_frame("outline"), borders=layer_frame("borders"), radius=op.radius_m,
                    id_column="site_id", tiles_url=tiles_url, tile_attribution=tiles_attr, asset_base=ASSET_PREFIX,
                    t=_translate)
    document = maps.render_map(fmap, title=_("Operation map"), lang=get_language())
    return map_headers(Response(document, mimetype="text/html"))


@operations_bp.route("/<name>/evaluation.<fmt>")
@require_role(ROLE)
def download(name: str, fmt: str) -> Any:
    """The evaluation as CSV (per site), XLSX (sites and summary) or GeoPackage; audited as an export."""
    if fmt not in DOWNLOADS:
        raise ValidationError(f"format: one of {', '.join(DOWNLOADS)}, got {fmt[:20]!r}",
                              [Problem("unsupported format", column="format", value=fmt[:20])])
    weeks = _baseline_weeks()
    op, result = _evaluate(name, weeks)
    data = evaluation_bytes(result.sites, result.summary, suffix=f".{fmt}", workdir=scratch_dir())
    audit("export", what="operation evaluation", name=op.name, format=fmt, baseline_weeks=weeks)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in op.name)
    return attachment(data, DOWNLOADS[fmt], f"operation-{safe}.{fmt}")


def _translate(message: str) -> str:
    return _(message)


assert set(f".{k}" for k in DOWNLOADS) == set(EVALUATION_SUFFIXES)
