"""The Planning pages (planner role): the plan form, the plan job's progress page and status, the result, its map and downloads.

The form is checked here with the library's own checks (each error names its parameter) and the
plan runs as a background job (:mod:`webapp.jobs`): the job page shows its progress, polls a
JSON status with local JavaScript when it can and works by reloading without it; a running plan
can be cancelled between its steps.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.datastructures import FileStorage

from geo_ibm import figures, maps
from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.figures.planmap import plan_print_map
from geo_ibm.maps.planlayers import plan_map
from geo_ibm.planning.candidates import load_candidates, shipped_candidates
from geo_ibm.planning.coverage import check_radius
from geo_ibm.planning.demand import Demand, demand_from_events, load_demand
from geo_ibm.planning.files import POINT_SUFFIXES, write_plan
from geo_ibm.planning.models import check_share, check_teams, check_time_limit
from geo_ibm.planning.plan import MODELS, Plan, make_plan
from geo_ibm.planning.progress import Cancelled, ProgressCallback, plan_messages
from geo_ibm.planning.spacetime import HOURS_PER_WEEK, check_shift_hours
from geo_ibm.store import open_store
from webapp.assets import ASSET_PREFIX
from webapp.auth import audit, get_store, require_role
from webapp.documents import map_headers, tiles
from webapp.filters import FILTER_PARAMS, parse_filters
from webapp.i18n import get_language
from webapp.i18n import gettext as _
from webapp.imports import upload_name
from webapp.instance import scratch_dir
from webapp.jobfiles import ResultFiles, send_result_file
from webapp.jobs import DONE, Job, cancel_response, current_owner, own_job, runner, state_labels, status_response
from webapp.params import parameter_error, parse_float, parse_int, single
from webapp.reference import filter_choices, layer_frame

planning_bp = Blueprint("planning", __name__, url_prefix="/planning")

ROLE = "planner"

WEB_MAX_TIME_LIMIT = 600.0
"""Longest exact solve the web form allows (seconds); longer ones belong to the command line."""

SHIFT_CHOICES: tuple[int, ...] = tuple(h for h in (2, 3, 4, 6, 8, 12, 24) if HOURS_PER_WEEK % h == 0)
FORM_FIELDS: tuple[str, ...] = ("teams", "radius", "model", "share", "shifts", "method", "time_limit", "weight",
                                "cell", "half_life", "id_column")
DOWNLOADS: dict[str, str] = {"gpkg": "application/geopackage+sqlite3", "csv": "text/csv; charset=utf-8",
                             "pdf": figures.FORMATS["pdf"], "png": figures.FORMATS["png"]}

SITE_COLUMNS: tuple[str, ...] = ("rank", "name", "kind", "gain", "events", "persons", "share_events", "share_persons",
                                 "windows")
"""Result table columns after the candidates' id column (those the plan has)."""


def _column_labels() -> dict[str, str]:
    return {"rank": _("Rank"), "name": _("Name"), "kind": _("Kind"), "gain": _("Gain"), "events": _("Events"),
            "persons": _("Persons"), "share_events": _("Cumulative share of events (%)"),
            "share_persons": _("Cumulative share of persons (%)"), "windows": _("Best windows")}


@dataclass
class PlanRequest:
    """A checked plan form: what the job runs and what the audit trail and the result page show."""

    candidates: gpd.GeoDataFrame
    demand: Demand
    teams: int | None
    radius: float
    model: str
    share: float | None
    shift_hours: int | None
    method: str
    time_limit: float
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanResult:
    """A finished plan job: the plan and its files on disk.

    Attributes
    ----------
    files
        ``plan.gpkg`` and ``plan.csv``, written when the job ends, and the map documents and
        print maps as they are asked for (``map-<language>.html``, ``print-<language>.<format>``),
        in the instance's scratch folder rather than the app's memory
        (:class:`webapp.jobfiles.ResultFiles`).
    """

    plan: Plan
    id_column: str
    radius: float
    params: dict[str, Any]
    files: ResultFiles

    @property
    def disk_bytes(self) -> int:
        """Bytes of its files (counted by the job runner against ``JOB_KEPT_DISK_MB``)."""
        return self.files.disk_bytes

    def release(self) -> None:
        """Remove its files (the runner forgets the job)."""
        self.files.release()


# --------------------------------------------------------------------------- form


def _choice(form: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = single(form, name) or default
    if value not in allowed:
        raise parameter_error(name, value, f"use one of {', '.join(allowed)}")
    return value


def _form_defaults(form: Mapping[str, Any] | None = None) -> dict[str, str]:
    values = {"teams": "5", "radius": "3000", "model": "mclp", "share": "", "shifts": "", "method": "exact",
              "time_limit": "30", "weight": "events", "cell": "250", "half_life": "", "id_column": ""}
    for key in FORM_FIELDS + FILTER_PARAMS:
        if form is not None and form.get(key) not in (None, ""):
            values[key] = str(form.get(key))
    return values


def _upload(name: str) -> FileStorage | None:
    upload = request.files.get(name)
    return upload if upload is not None and upload.filename else None


def _read_upload(upload: FileStorage, *, what: str, reader: Any) -> Any:
    safe = upload_name(upload.filename or what)
    if Path(safe).suffix.lower() not in POINT_SUFFIXES:
        raise ValidationError(f"{what}: {upload.filename}: unsupported file type; use {', '.join(POINT_SUFFIXES)}",
                              [Problem("unsupported file type", file=upload.filename, column=what)])
    workdir = Path(tempfile.mkdtemp(prefix="plan-", dir=scratch_dir()))
    try:
        path = workdir / safe
        upload.save(path)
        return reader(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def parse_plan_form(form: Mapping[str, Any]) -> PlanRequest:
    """The plan form checked before any work: every bad value a 400 naming its parameter.

    Raises
    ------
    ValidationError
        Naming ``teams`` (not a whole number, more than the candidates, fewer than the
        required sites), ``radius`` (0 or over the country), ``share``, ``shifts``,
        ``time_limit``, ``cell``, ``half_life``, ``demand`` (no events in the period and
        filter) or the candidate file's bad rows.
    """
    known = set(FORM_FIELDS) | set(FILTER_PARAMS) | {"csrf_token"}
    unknown = sorted(k for k in form.keys() if k not in known)
    if unknown:
        raise parameter_error(unknown[0], form.get(unknown[0]), "unknown form field")
    model = _choice(form, "model", MODELS, "mclp")
    method = _choice(form, "method", ("exact", "heuristic"), "exact")
    weight = _choice(form, "weight", ("events", "persons"), "events")
    radius = check_radius(parse_float(single(form, "radius"), name="radius", default=None))
    teams_raw = single(form, "teams")
    teams = None if model == "lscp" and not teams_raw else parse_int(teams_raw, name="teams", default=0)
    share = None
    if model == "lscp":
        share = check_share(parse_float(single(form, "share"), name="share", default=1.0))
    shifts_raw = single(form, "shifts")
    shift_hours = check_shift_hours(parse_int(shifts_raw, name="shifts", default=0)) if shifts_raw else None
    if shift_hours is not None and model != "mclp":
        raise parameter_error("shifts", shifts_raw, "space-time plans use the maximal covering model (mclp)")
    time_limit = check_time_limit(parse_float(single(form, "time_limit"), name="time_limit", default=30.0),
                                  maximum=WEB_MAX_TIME_LIMIT)
    cell = parse_float(single(form, "cell"), name="cell", default=250.0)
    half_life = parse_float(single(form, "half_life"), name="half_life", default=None)
    id_column = (single(form, "id_column") or "").strip() or None

    upload = _upload("candidates")
    if upload is not None:
        candidates = _read_upload(upload, what="candidates",
                                  reader=lambda path: load_candidates(path, id_column=id_column))
        candidates_name = upload.filename
    else:
        candidates = shipped_candidates()
        candidates_name = "data/boundaries/control_sites.geojson"
    excluded = int(candidates["excluded"].sum())
    required = int(candidates["required"].sum())
    available = len(candidates) - excluded
    if teams is not None:
        if shift_hours is not None:
            teams = check_teams(teams, n_sites=available * (HOURS_PER_WEEK // shift_hours))
        else:
            teams = check_teams(teams, n_sites=available, n_required=0 if model == "lscp" else required)

    filters = parse_filters({k: v for k, v in form.items() if k in FILTER_PARAMS})
    demand_upload = _upload("demand")
    if demand_upload is not None:
        if shift_hours is not None:
            raise parameter_error("shifts", shifts_raw, "a demand file has no hours; plan shifts from stored events")
        demand = _read_upload(demand_upload, what="demand", reader=load_demand)
        demand_name = demand_upload.filename
        period = None
    else:
        events = get_store().events(**filters)
        if events.empty:
            raise ValidationError("demand: no events match the period and filter; widen the selection",
                                  [Problem("no demand", column="demand")])
        demand = demand_from_events(events, weight=weight, cell=float(cell), half_life_days=half_life)
        demand_name = "stored events"
        period = figures.period_of(events)
    params: dict[str, Any] = {
        "model": model, "method": method, "teams": teams, "radius_m": radius, "share": share,
        "shift_hours": shift_hours, "time_limit_s": time_limit, "weight": weight, "cell_m": cell,
        "half_life_days": half_life, "candidates": candidates_name, "demand": demand_name,
        "filters": {k: str(v) for k, v in form.items() if k in FILTER_PARAMS and v},
        "n_candidates": len(candidates), "n_demand": len(demand.points), "period": period,
    }
    return PlanRequest(candidates, demand, teams, radius, model, share, shift_hours, method, time_limit, params)


# --------------------------------------------------------------------------- the job


def plan_job(plan_request: PlanRequest, *, store_location: str, user: str, workdir: Path) -> Any:
    """The work of one plan job: ``make_plan`` with progress, then its GeoPackage and CSV; audited when it ends."""
    req = plan_request

    def work(progress: ProgressCallback) -> PlanResult:
        progress(0.02, "planning")
        try:
            plan = make_plan(req.candidates, req.demand, teams=req.teams, radius=req.radius, model=req.model,
                             share=req.share, shift_hours=req.shift_hours, method=req.method,
                             time_limit=req.time_limit, progress=plan_messages(progress, start=0.05, end=0.85))
            progress(0.88, "writing the GeoPackage and CSV")
            files = _plan_files(plan, req.params, workdir)
        except GeoIbmError as exc:
            status = "cancelled" if isinstance(exc, Cancelled) else "refused"
            open_store(store_location).audit("plan", user=user, detail={**req.params, "status": status,
                                                                        "error": str(exc).splitlines()[0][:300]})
            raise
        progress(0.98, "done")
        id_column = str(req.candidates.attrs.get("id_column", "site_id"))
        summary = {k: v for k, v in plan.summary.items() if k != "pairs"}
        open_store(store_location).audit("plan", user=user, detail={
            **req.params, "status": "done", "sites": summary.get("sites"), "objective": summary.get("objective"),
            "gap": summary.get("gap"), "solve_status": summary.get("status")})
        return PlanResult(plan, id_column, req.radius, req.params, files)

    return work


def _plan_files(plan: Plan, params: dict[str, Any], workdir: Path) -> ResultFiles:
    """The plan's folder with its GeoPackage (sites and demand) and CSV (removed whole if one cannot be written)."""
    files = ResultFiles.create(workdir)
    try:
        metadata = {k: v for k, v in {**plan.summary, **params}.items() if k != "pairs"}
        gpkg = files.path("plan.gpkg")
        write_plan(plan.sites, gpkg, layer="plan_sites", metadata=metadata)
        write_plan(plan.demand, gpkg, layer="plan_demand", metadata=metadata)
        files.added("plan.gpkg")
        write_plan(plan.sites, files.path("plan.csv"))
        files.added("plan.csv")
        return files
    except BaseException:
        files.release()
        raise


def _result(job_id: str) -> tuple[Job, PlanResult]:
    job = own_job(job_id)
    if job.state != DONE or not isinstance(job.result, PlanResult):
        raise ValidationError(f"job {job.id}: no result ({job.state})", [Problem("no result", column="job",
                                                                                  value=job.state)])
    return job, job.result


# --------------------------------------------------------------------------- views


@planning_bp.context_processor
def _labels() -> dict[str, Any]:
    return {"state_labels": state_labels()}


@planning_bp.route("/", methods=["GET", "POST"])
@require_role(ROLE)
def planning_page() -> Any:
    """The plan form (GET); a valid form starts a plan job and sends the browser to its page (POST)."""
    if request.method == "GET":
        return render_template("planning.html", form=_form_defaults(), choices=filter_choices(),
                               query=_form_defaults(), models=MODELS, shift_choices=SHIFT_CHOICES,
                               jobs=runner().jobs_of(current_owner(), kind="plan"), max_time_limit=WEB_MAX_TIME_LIMIT)
    plan_request = parse_plan_form(request.form)
    work = plan_job(plan_request, store_location=str(current_app.config.get("STORE_PATH")), user=current_owner(),
                    workdir=scratch_dir())
    title = _("Plan: %(model)s, %(teams)s teams, %(radius)s m", model=plan_request.model,
              teams=plan_request.teams if plan_request.teams is not None else "-",
              radius=f"{plan_request.radius:g}")
    job = runner().submit(current_owner(), title, work, kind="plan")
    audit("plan", status="submitted", job=job.id, **plan_request.params)
    return redirect(url_for("planning.job_page", job_id=job.id), code=303)


@planning_bp.route("/jobs/<job_id>")
@require_role(ROLE)
def job_page(job_id: str) -> Any:
    """A plan job's progress (reload to follow it); a finished plan's page is its result."""
    job = own_job(job_id)
    if job.state == DONE:
        return redirect(url_for("planning.result_page", job_id=job.id), code=303)
    return render_template("planning_job.html", job=job, status_url=url_for("planning.job_status", job_id=job.id),
                           result_url=url_for("planning.result_page", job_id=job.id))


@planning_bp.route("/jobs/<job_id>/status")
@require_role(ROLE)
def job_status(job_id: str) -> Any:
    """The job's state as JSON: ``state``, ``finished``, ``fraction``, ``message``, ``error``, ``result`` (URL when done)."""
    job = own_job(job_id)
    return status_response(job, url_for("planning.result_page", job_id=job.id) if job.state == DONE else None)


@planning_bp.route("/jobs/<job_id>/cancel", methods=["POST"])
@require_role(ROLE)
def cancel_job(job_id: str) -> Any:
    """Cancel the job (a waiting one at once, a running one at its next step); audited."""
    return cancel_response(job_id, action="plan", page_endpoint="planning.job_page")


@planning_bp.route("/jobs/<job_id>/result")
@require_role(ROLE)
def result_page(job_id: str) -> Any:
    """The finished plan: summary, ranked sites with their best windows, the map and downloads."""
    job, result = _result(job_id)
    sites = result.plan.sites
    columns = [result.id_column] + [c for c in SITE_COLUMNS if c in sites.columns and c != result.id_column]
    rows = [{c: _cell(row[c], c) for c in columns} for row in sites[columns].to_dict(orient="records")]
    summary = {k: v for k, v in result.plan.summary.items() if k not in ("pairs", "sites")}
    return render_template("planning_result.html", job=job, columns=columns, rows=rows, summary=summary,
                           labels=_column_labels(),
                           pairs=result.plan.summary.get("pairs") or [], params=result.params,
                           map_src=url_for("planning.plan_map_document", job_id=job.id), downloads=tuple(DOWNLOADS))


@planning_bp.route("/jobs/<job_id>/map")
@require_role(ROLE)
def plan_map_document(job_id: str) -> Any:
    """The plan's map document for the result page's sandboxed frame (built once per job and language)."""
    _job_found, result = _result(job_id)
    name = f"map-{get_language()}.html"
    if result.files.get(name) is None:
        # built once per job and language, kept with the result's files
        tiles_url, tiles_attr = tiles()
        fmap = plan_map(result.plan.sites, result.plan.demand, outline=layer_frame("outline"),
                        borders=layer_frame("borders"), radius=result.radius, id_column=result.id_column,
                        tiles_url=tiles_url, tile_attribution=tiles_attr, asset_base=ASSET_PREFIX, t=_translate)
        result.files.add(name, maps.render_map(fmap, title=_("Plan map"), lang=get_language()))
    return map_headers(send_result_file(result.files, name, "text/html"))


@planning_bp.route("/jobs/<job_id>/plan.<fmt>")
@require_role(ROLE)
def download(job_id: str, fmt: str) -> Any:
    """The plan as GeoPackage (sites and demand layers), CSV (ranked sites) or a PDF/PNG print map; audited."""
    if fmt not in DOWNLOADS:
        raise ValidationError(f"invalid format {fmt!r}: use one of {', '.join(DOWNLOADS)}",
                              [Problem("unknown format", column="format", value=fmt)])
    job, result = _result(job_id)
    name = f"plan.{fmt}" if fmt in ("gpkg", "csv") else f"print-{get_language()}.{fmt}"
    if result.files.get(name) is None:
        # a print map is built once per job, format and language
        summary = result.plan.summary
        subtitle = _("%(n)s sites, radius %(radius)s m, %(share)s %% of events covered", n=len(result.plan.sites),
                     radius=f"{result.radius:g}",
                     share=f"{summary['covered_share_events']:.1f}" if summary.get("covered_share_events") is not None
                     else "-")
        fig = plan_print_map(result.plan.sites, result.plan.demand, radius=result.radius,
                             outline=layer_frame("outline"), borders=layer_frame("borders"),
                             neighbours=layer_frame("neighbours"), title=_("Control site plan"), subtitle=subtitle,
                             period=result.params.get("period"), t=_translate)
        result.files.add(name, figures.figure_bytes(fig, format="pdf" if fmt == "pdf" else "png"))
    audit("export", what="plan", format=fmt, job=job.id, sites=result.plan.summary.get("sites"))
    return send_result_file(result.files, name, DOWNLOADS[fmt], f"geo_ibm-plan.{fmt}")


def _translate(message: str) -> str:
    return _(message)


def _cell(value: Any, column: str) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if column in ("share_events", "share_persons"):
        return f"{float(value):.1f}"
    if column == "gain":
        return f"{float(value):,.1f}"
    return value
