"""Report exports: static maps (PNG, SVG, PDF) and report tables (XLSX, CSV) for the filtered events; the quarterly report document, its versions and its sending."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, cast, overload

import geopandas as gpd
import pandas as pd
from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from geo_ibm import figures, tables
from geo_ibm.disclosure import DisclosureRule
from geo_ibm.errors import GeoIbmError, NotFoundError, NotPermittedError, Problem, ValidationError
from geo_ibm.io import neutralise_formulas
from geo_ibm.periods import parse_quarter
from geo_ibm.planning.progress import Cancelled, ProgressCallback
from geo_ibm.reportdoc.archive import (
    EDITIONS,
    FILES,
    MAX_RECIPIENTS,
    MEDIA_TYPES,
    NATIONAL,
    ReportArchive,
    ReportVersion,
    check_area,
    generate_version,
    open_archive,
    parse_recipients,
    report_areas,
)
from geo_ibm.reportdoc.mail import attachment_name, send_version
from geo_ibm.reportdoc.strings import LANGUAGES
from geo_ibm.store import open_store
from webapp.access import configured_rule
from webapp.auth import audit, get_store, has_role, require_role
from webapp.filters import filter_query, parse_filters, parse_hotspot_map, parse_page_sizes
from webapp.i18n import gettext as _
from webapp.jobs import DONE, Job, JobLimitError, cancel_response, own_job, runner, state_labels, status_response
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



# --------------------------------------------------------------------------- the quarterly report document
#
# The report of one area (the nation or a police region) and language is built as a background
# job (webapp.jobs) and kept in the report archive (geo_ibm.reportdoc.archive) as a numbered
# version; admins keep the recipient lists and send a version by e-mail (geo_ibm.reportdoc.mail).
# Analysts and above build and read the full edition; viewers (aggregates only) build and read
# the edition geo_ibm.disclosure protects, and never see a full one.

QUARTERLY_ROLE = "viewer"
"""Role of the quarterly report pages; what a role sees is the edition (see above)."""

SEND_ROLE = "admin"
"""Role that keeps the recipient lists and sends reports."""

FULL_EDITION_ROLE = "analyst"

MAX_LISTED_VERSIONS = 200
"""Most archived versions the page lists (newest quarters first)."""

MAX_RECIPIENTS_FIELD = 20_000
"""Longest text of one area's recipient field (characters)."""

REPORT_BUILDS_PER_HOUR = 30
"""Most report builds one account may start in an hour (app config ``REPORT_BUILDS_PER_HOUR``): every
build adds a numbered version to the archive on disk, which the job runner's limits alone do not bound."""


def _archive() -> ReportArchive:
    return open_archive(current_app.config.get("STORE_PATH"))


def _user_name() -> str:
    return str(g.user["name"])


def _editions_allowed() -> tuple[str, ...]:
    return EDITIONS if has_role(FULL_EDITION_ROLE) else ("aggregates",)


def _quarter_choices(store: Any) -> list[str]:
    counts = store.quarter_counts()
    return sorted((str(q) for q in counts["quarter"]), reverse=True) if len(counts) else []


def _area_labels() -> dict[str, str]:
    return {area: (_("Luxembourg (national)") if area == NATIONAL else _("Police region %(region)s", region=area))
            for area in report_areas()}


@dataclass(frozen=True)
class QuarterlyRequest:
    """A checked quarterly report form: the area, quarter, language and edition the job builds."""

    quarter: str
    area: str
    lang: str
    edition: str


def parse_quarterly_form(form: Mapping[str, Any], *, editions: tuple[str, ...]) -> QuarterlyRequest:
    """The form checked before any work: a bad or unknown field is a 400 naming it.

    Raises
    ------
    ValidationError
        Naming ``quarter``, ``region``, ``lang`` or ``edition`` (an edition the reader's role may
        not have is a 403), or an unknown field.
    """
    known = {"quarter", "region", "lang", "edition", "csrf_token"}
    unknown = sorted(k for k in form.keys() if k not in known)
    if unknown:
        raise parameter_error(unknown[0], form.get(unknown[0]), "unknown form field")
    quarter = parse_quarter(single(form, "quarter") or "", name="quarter")
    area = check_area(single(form, "region") or NATIONAL)
    lang = single(form, "lang") or "en"
    if lang not in LANGUAGES:
        raise parameter_error("lang", lang, f"use one of {', '.join(LANGUAGES)}")
    edition = single(form, "edition") or editions[0]
    if edition not in EDITIONS:
        raise parameter_error("edition", edition, f"use one of {', '.join(EDITIONS)}")
    if edition not in editions:
        raise NotPermittedError("edition: the full edition is for analysts and above; your role reads the edition "
                                "for readers of aggregates", [Problem("not permitted", column="edition", value=edition)])
    return QuarterlyRequest(quarter, area, lang, edition)


def check_quarter_has_events(quarter: str, store: Any) -> None:
    """Refuse a report of a quarter without stored events (any quarter of 1900-2199 parses; the form lists these).

    Raises
    ------
    ValidationError
        Naming ``quarter``.
    """
    if quarter not in _quarter_choices(store):
        raise parameter_error("quarter", quarter, "no interception is stored in this quarter; use one the form lists")


_builds_lock = threading.Lock()


def count_report_build(user: str) -> None:
    """Count a report build of ``user``; refused (429) over ``REPORT_BUILDS_PER_HOUR`` builds in the last hour.

    Builds are counted in this app process's memory, as its jobs are.

    Raises
    ------
    JobLimitError
        Naming ``jobs`` and the limit.
    """
    limit = int(current_app.config.get("REPORT_BUILDS_PER_HOUR", REPORT_BUILDS_PER_HOUR))
    now = time.monotonic()
    with _builds_lock:
        started: dict[str, list[float]] = current_app.extensions.setdefault("geo_ibm_report_builds", {})
        for name in [n for n, times in started.items() if not times or now - times[-1] >= 3600.0]:
            del started[name]  # accounts without a build in the last hour take no memory
        recent = [t for t in started.get(user, []) if now - t < 3600.0]
        if len(recent) >= limit:
            raise JobLimitError(
                f"jobs: {len(recent)} report builds in the last hour, the most per account "
                f"(REPORT_BUILDS_PER_HOUR = {limit}); the archived versions stay readable",
                [Problem("too many report builds", column="jobs", value=limit)])
        started[user] = [*recent, now]


def uncount_report_build(user: str) -> None:
    """Take back the last build :func:`count_report_build` counted for ``user`` (its job was refused)."""
    with _builds_lock:
        started: dict[str, list[float]] = current_app.extensions.setdefault("geo_ibm_report_builds", {})
        if started.get(user):
            started[user].pop()


def quarterly_job(req: QuarterlyRequest, *, store_location: str | None, user: str, rule: DisclosureRule | None) -> Any:
    """The work of one report job: build, render and archive the version; audited when it ends."""

    def work(progress: ProgressCallback) -> ReportVersion:
        store = open_store(store_location)
        detail = {"quarter": req.quarter, "area": req.area, "lang": req.lang, "edition": req.edition, "via": "web"}
        try:
            version = generate_version(store, open_archive(store_location), quarter=req.quarter, area=req.area,
                                       lang=req.lang, created_by=user, disclosure=rule, progress=progress)
        except GeoIbmError as exc:
            status = "cancelled" if isinstance(exc, Cancelled) else "refused"
            store.audit("report build", user=user, detail={**detail, "status": status,
                                                           "error": str(exc).splitlines()[0][:300]})
            raise
        store.audit("report build", user=user, detail={**detail, "status": "done", "version": version.version,
                                                       "events": version.events})
        return version

    return work


def _visible(version: ReportVersion) -> ReportVersion:
    if version.edition not in _editions_allowed():
        raise NotPermittedError(f"report {version.key} is the full edition, for analysts and above",
                                [Problem("not permitted", column="edition", value=version.edition)])
    return version


def _version_from_url(quarter: str, area: str, lang: str, number: int) -> ReportVersion:
    return _visible(_archive().version(quarter=quarter, area=area, lang=lang, version=number))


def _version_args(version: ReportVersion) -> dict[str, Any]:
    return {"quarter": version.quarter, "area": version.area, "lang": version.lang, "number": version.version}


MAX_REMEMBERED_JOBS = 1000
"""Report job ids remembered per app (more than the runner ever keeps)."""

_job_ids_lock = threading.Lock()


def _report_job_ids() -> dict[str, None]:
    """Ids of the report jobs of this app, oldest first: the runner is shared with other pages."""
    found: dict[str, None] = current_app.extensions.setdefault("geo_ibm_report_jobs", {})
    return found


def _remember_job(job_id: str) -> None:
    with _job_ids_lock:
        ids = _report_job_ids()
        ids[job_id] = None
        while len(ids) > MAX_REMEMBERED_JOBS:
            ids.pop(next(iter(ids)))


def _quarterly_job(job_id: str) -> Job:
    job = own_job(job_id)
    if job.id not in _report_job_ids():
        raise NotFoundError(f"report job {job_id[:40]!r} not found")
    return job


@reports_bp.context_processor
def _quarterly_labels() -> dict[str, Any]:
    return {"state_labels": state_labels(),
            "edition_labels": {"full": _("Full (analysts)"), "aggregates": _("Aggregates only (protected)")},
            "language_labels": {"en": "English", "fr": "Français"}}


@reports_bp.route("/quarterly", methods=["GET", "POST"])
@require_role(QUARTERLY_ROLE)
def quarterly_page() -> Any:
    """The quarterly report form and the archived versions (GET); a valid form starts a report job (POST)."""
    editions = _editions_allowed()
    if request.method == "POST":
        req = parse_quarterly_form(request.form, editions=editions)
        check_quarter_has_events(req.quarter, get_store())
        count_report_build(_user_name())
        rule = None if req.edition == "full" else configured_rule(current_app.config)
        work = quarterly_job(req, store_location=current_app.config.get("STORE_PATH"), user=_user_name(), rule=rule)
        title = _("Quarterly report %(quarter)s · %(area)s · %(lang)s", quarter=req.quarter,
                  area=_area_labels()[req.area], lang=req.lang.upper())
        try:
            job = runner().submit(_user_name(), title, work, kind="report")
        except GeoIbmError:
            uncount_report_build(_user_name())
            raise
        _remember_job(job.id)
        audit("report build", status="submitted", job=job.id, quarter=req.quarter, area=req.area, lang=req.lang,
              edition=req.edition)
        return redirect(url_for("reports.quarterly_job_page", job_id=job.id), code=303)
    store = get_store()
    archive = _archive()
    versions = [v for v in archive.versions() if v.edition in editions][:MAX_LISTED_VERSIONS]
    ids = _report_job_ids()
    jobs = [j for j in runner().jobs_of(_user_name(), kind="report") if j.id in ids]
    quarters = _quarter_choices(store)
    recipients = archive.recipients() if has_role(SEND_ROLE) else {}
    return render_template("reports_quarterly.html", versions=versions, jobs=jobs, quarters=quarters,
                           areas=_area_labels(), languages=LANGUAGES, editions=editions, recipients=recipients,
                           can_send=has_role(SEND_ROLE), version_args=_version_args)


@reports_bp.route("/quarterly/jobs/<job_id>")
@require_role(QUARTERLY_ROLE)
def quarterly_job_page(job_id: str) -> Any:
    """A report job's progress (reload to follow it); a finished job's page is its version's page."""
    job = _quarterly_job(job_id)
    if job.state == DONE and isinstance(job.result, ReportVersion):
        return redirect(url_for("reports.version_page", **_version_args(job.result)), code=303)
    return render_template("reports_job.html", job=job,
                           status_url=url_for("reports.quarterly_job_status", job_id=job.id))


@reports_bp.route("/quarterly/jobs/<job_id>/status")
@require_role(QUARTERLY_ROLE)
def quarterly_job_status(job_id: str) -> Any:
    """The job's state as JSON: ``state``, ``finished``, ``fraction``, ``message``, ``error``, ``result`` (URL when done)."""
    job = _quarterly_job(job_id)
    done = job.state == DONE and isinstance(job.result, ReportVersion)
    return status_response(job, url_for("reports.version_page", **_version_args(job.result)) if done else None)


@reports_bp.route("/quarterly/jobs/<job_id>/cancel", methods=["POST"])
@require_role(QUARTERLY_ROLE)
def quarterly_job_cancel(job_id: str) -> Any:
    """Cancel the job (a waiting one at once, a running one at its next step); audited."""
    _quarterly_job(job_id)
    return cancel_response(job_id, action="report build", page_endpoint="reports.quarterly_job_page")


VERSION_URL = "/quarterly/<quarter>/<area>/<lang>/v<int:number>"


@reports_bp.route(VERSION_URL)
@require_role(QUARTERLY_ROLE)
def version_page(quarter: str, area: str, lang: str, number: int) -> Any:
    """One archived version: its manifest, downloads and, for admins, sending it to the area's recipients."""
    version = _version_from_url(quarter, area, lang, number)
    recipients = _archive().recipients().get(version.area, []) if has_role(SEND_ROLE) else []
    return render_template("reports_version.html", version=version, areas=_area_labels(), recipients=recipients,
                           can_send=has_role(SEND_ROLE), args=_version_args(version))


@reports_bp.route(VERSION_URL + "/report.<kind>")
@require_role(QUARTERLY_ROLE)
def version_file(quarter: str, area: str, lang: str, number: int, kind: str) -> Any:
    """A version's ``report.pdf`` or ``report.html`` (checked against its manifest); audited."""
    if kind not in FILES:
        raise parameter_error("file", kind, f"use one of {', '.join(FILES)}")
    version = _version_from_url(quarter, area, lang, number)
    data = _archive().read(version, kind)
    audit("export", what="quarterly report", version=version.key, edition=version.edition, format=kind,
          bytes=len(data))
    return attachment(data, MEDIA_TYPES[kind], attachment_name(version, kind))


@reports_bp.route(VERSION_URL + "/send", methods=["POST"])
@require_role(SEND_ROLE)
def version_send(quarter: str, area: str, lang: str, number: int) -> Any:
    """E-mail the version to its area's recipients (one message, PDF and HTML attached); audited, its outcome shown."""
    unknown = sorted(k for k in request.form.keys() if k != "csrf_token")
    if unknown:
        raise parameter_error(unknown[0], request.form.get(unknown[0]), "unknown form field")
    archive = _archive()
    version = archive.version(quarter=quarter, area=area, lang=lang, version=number)
    outcome = send_version(get_store(), archive, version, user=_user_name(), via="web", ip=request.remote_addr)
    return render_template("reports_sent.html", version=version, outcome=outcome, areas=_area_labels(),
                           args=_version_args(version))


@reports_bp.route("/recipients", methods=["GET", "POST"])
@require_role(SEND_ROLE)
def recipients_page() -> Any:
    """The e-mail recipients of each area's report (admin): one address per line; all checked before any is saved."""
    archive = _archive()
    areas = _area_labels()
    saved = archive.recipients()
    texts = {area: "\n".join(saved.get(area, [])) for area in areas}
    problems: list[Problem] = []
    status = 200
    if request.method == "POST":
        known = {f"recipients_{area}" for area in areas} | {"csrf_token"}
        unknown = sorted(k for k in request.form.keys() if k not in known)
        if unknown:
            raise parameter_error(unknown[0], str(request.form.get(unknown[0]))[:100], "unknown form field")
        texts = {area: str(request.form.get(f"recipients_{area}", ""))[:MAX_RECIPIENTS_FIELD + 1] for area in areas}
        checked: dict[str, list[str]] = {}
        for area, text in texts.items():
            if len(text) > MAX_RECIPIENTS_FIELD:
                problems.append(Problem(f"longer than {MAX_RECIPIENTS_FIELD} characters", column=area))
                continue
            try:
                checked[area] = parse_recipients(text, area=area)
            except ValidationError as exc:
                problems.extend(exc.problems)
        if not problems:
            changed = [a for a in areas if checked[a] != saved.get(a, [])]
            for area in changed:
                archive.set_recipients(area, checked[area], updated_by=_user_name())
            audit("report recipients", changed=changed, counts={a: len(checked[a]) for a in areas})
            flash(_("Recipient lists saved."))
            return redirect(url_for("reports.recipients_page"), code=303)
        status = 400
    return render_template("reports_recipients.html", areas=areas, texts=texts, problems=problems,
                           max_recipients=MAX_RECIPIENTS), status
