"""The Archives pages (analyst role): the configured archives, the hot spot form, its Dask job, the result, its map and downloads.

The archives a server offers are named in its configuration (``ARCHIVES``, from
``GEO_IBM_ARCHIVES``); a form names one of them, never a path. The form is checked here, from
the archive's manifest alone (:func:`geo_ibm.archive.check_archive_request`), so a bad or too
costly request is refused with a 400 naming its parameter before any cluster is asked for
anything. The analysis then runs as a background job (:mod:`webapp.jobs`) on the configured
scheduler (``DASK_SCHEDULER``) or on a local cluster of ``DASK_WORKERS`` workers started for the
job, with its progress in partitions and a cancel that stops it at the next partition. The
counts form sums events and persons per quarter (or per a column of few values and quarter) over
an archive the same way, for a table on the page and CSV/XLSX downloads.

A finished analysis keeps its frame, files, map documents and print maps on disk in the
instance's scratch folder (:class:`webapp.jobfiles.ResultFiles`), not in the app's memory: the
largest result the form allows (some 300,000 cells) is a few hundred MB of files.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from flask import Blueprint, current_app, redirect, render_template, request, url_for

from geo_ibm import figures, maps, periods, tables
from geo_ibm.archive import (
    ARCHIVE_METHODS,
    ArchiveRequest,
    Manifest,
    archive_summary,
    check_archive_request,
    check_tally_by,
    dask_client,
    read_manifest,
    run_archive_request,
    select_partitions,
    tally_archive,
    tally_choices,
)
from geo_ibm.errors import GeoIbmError, NotFoundError, Problem, ValidationError
from geo_ibm.io import load_frame, neutralise_formulas, save_frame, write_vector
from geo_ibm.maps.qgisstyles import layer_style
from geo_ibm.planning.progress import Cancelled, ProgressCallback
from geo_ibm.settings import LOCAL_TZ, WEB_CRS, WORKING_CRS
from geo_ibm.store import open_store
from webapp.assets import ASSET_PREFIX
from webapp.auth import audit, require_role
from webapp.documents import map_headers, tiles
from webapp.i18n import get_language
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir
from webapp.jobfiles import ResultFiles, send_result_file
from webapp.jobs import DONE, Job, cancel_response, current_owner, own_job, runner, state_labels, status_response
from webapp.params import parameter_error, parse_float, single
from webapp.reference import layer_frame
from webapp.responses import attachment

archives_bp = Blueprint("archives", __name__, url_prefix="/archives")

ROLE = "analyst"

FORM_FIELDS: tuple[str, ...] = ("archive", "method", "cell", "band", "from", "to", "step", "shape", "weight")
DOWNLOADS: dict[str, str] = {"gpkg": "application/geopackage+sqlite3", "geojson": "application/geo+json"}
PRINT_FORMATS: dict[str, str] = {"pdf": figures.FORMATS["pdf"], "png": figures.FORMATS["png"]}
"""Print maps of a result: Luxembourg's (EPSG:2169) archives only, as every print map."""
COUNT_FIELDS: tuple[str, ...] = ("archive", "by", "from", "to")
COUNT_DOWNLOADS: dict[str, str] = {"csv": "text/csv; charset=utf-8", "xlsx": tables.XLSX_MEDIA_TYPE}
MAX_SHOWN_COUNTS = 400
"""Rows of a counts table the result page shows; its downloads hold every row."""
FRAME_FILE = "result.parquet"
MAP_LAYER: dict[str, str] = {"gi": "gi", "emerging": "emerging", "kde": "contours"}
"""The :func:`geo_ibm.maps.hotspot_map` argument each method's result is drawn as."""


def configured_archives() -> dict[str, str]:
    """The archives of this server: ``{name: location}`` (``ARCHIVES`` of the app's config)."""
    return dict(current_app.config.get("ARCHIVES") or {})


def _method_labels() -> dict[str, str]:
    return {"gi": _("Gi* hot and cold spots"), "emerging": _("Emerging hot spots"),
            "kde": _("Kernel density contours")}


def by_labels() -> dict[str, str]:
    """What the counts form can count by, as the reader names it (:data:`geo_ibm.archive.TALLY_COLUMNS`)."""
    return {"quarter": _("quarter only"), "country": _("country of the partition"), "region": _("police region"),
            "canton": _("canton"), "entry_country": _("country of entry"), "location_kind": _("kind of place"),
            "transport_mode": _("means of transport")}


@dataclass
class ArchiveView:
    """One configured archive as the page lists it: its summary, or why it cannot be read."""

    name: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    counts_by: tuple[str, ...] = ()
    """What the counts form can count this archive by (:func:`geo_ibm.archive.tally_choices`)."""


@dataclass
class ArchiveResult:
    """A finished archive job: its parameters, what it found and its files on disk.

    Attributes
    ----------
    found
        Cells per Gi* bin (after FDR) or per emerging category, or contour bands: ``(key, n)``,
        named in the reader's language when shown.
    files
        ``result.parquet`` (the result in the archive's CRS, :func:`geo_ibm.io.save_frame`),
        the downloads (``hotspots_<method>.gpkg``, ``.geojson``), and map documents and print
        maps as they are asked for (``map-<language>.html``, ``print-<language>.<format>``).
    """

    name: str
    method: str
    params: dict[str, Any]
    cells: int
    found: tuple[tuple[Any, int], ...]
    files: ResultFiles

    def frame(self) -> gpd.GeoDataFrame:
        """The result in the archive's CRS, read back from its folder."""
        path = self.files.get(FRAME_FILE)
        try:
            if path is None:
                raise ValidationError(FRAME_FILE)
            return load_frame(path)
        except ValidationError as exc:
            if path is not None and path.exists():
                raise
            raise NotFoundError("this result's files are gone: the job was forgotten; run it again") from exc

    @property
    def disk_bytes(self) -> int:
        """Bytes of its files (counted by the job runner against ``JOB_KEPT_DISK_MB``)."""
        return self.files.disk_bytes

    def release(self) -> None:
        """Remove its files (the runner forgets the job)."""
        self.files.release()


@dataclass
class ArchiveCounts:
    """A finished counts job: the table (``by`` column unless per quarter, ``quarter``, ``events``,
    ``persons``), its parameters and its CSV and XLSX files."""

    name: str
    by: str
    table: pd.DataFrame
    params: dict[str, Any]
    files: dict[str, bytes]


@dataclass
class CountsRequest:
    """A counts form checked from the manifest alone: the archive, ``by``, the epoch window and the partitions read."""

    name: str
    manifest: Manifest
    by: str
    start: int | None
    end: int | None
    partitions: int
    rows: int
    params: dict[str, Any]


# --------------------------------------------------------------------------- form


def _archive(name: str | None) -> tuple[str, Manifest]:
    archives = configured_archives()
    if not name:
        raise parameter_error("archive", name, "choose one of this server's archives"
                              + (f": {', '.join(archives)}" if archives else " (none is configured: GEO_IBM_ARCHIVES)"))
    if name not in archives:
        raise parameter_error("archive", name, "not an archive of this server"
                              + (f"; use one of {', '.join(archives)}" if archives else ""))
    return name, read_manifest(archives[name])


def _choice(form: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = single(form, name) or default
    if value not in allowed:
        raise parameter_error(name, value, f"use one of {', '.join(allowed)}")
    return value


def _form_defaults(form: Mapping[str, Any] | None = None) -> dict[str, str]:
    values = {"archive": next(iter(configured_archives()), ""), "method": "gi", "cell": "", "band": "", "from": "",
              "to": "", "step": "quarter", "shape": "square", "weight": "events"}
    for key in FORM_FIELDS:
        if form is not None and form.get(key) not in (None, ""):
            values[key] = str(form.get(key))
    return values


def parse_archive_form(form: Mapping[str, Any]) -> tuple[str, ArchiveRequest]:
    """The archive form checked before any work: ``(archive name, checked request)``.

    Raises
    ------
    ValidationError
        Naming ``archive`` (not one of this server's), ``method``, ``cell``, ``band``, ``from``,
        ``to``, ``step``, ``shape`` or ``weight``, or a cost above the budget; an unknown field.
    """
    known = set(FORM_FIELDS) | {"csrf_token"}
    unknown = sorted(k for k in form.keys() if k not in known)
    if unknown:
        raise parameter_error(unknown[0], form.get(unknown[0]), "unknown form field")
    name, manifest = _archive(single(form, "archive"))
    method = _choice(form, "method", ARCHIVE_METHODS, "gi")
    step = _choice(form, "step", ("quarter", "month"), "quarter")
    shape = _choice(form, "shape", ("square", "hex"), "square")
    weight = _choice(form, "weight", ("events", "persons"), "events")
    cell = parse_float(single(form, "cell"), name="cell", default=None)
    band = parse_float(single(form, "band"), name="band", default=None)
    first, last, start, end = _days(form)
    checked = check_archive_request(manifest, method=method, cell=cell, band=band, start=start, end=end,
                                    weight=None if weight == "events" else weight, shape=shape, step=step)
    checked.params.update({"from": first, "to": last})
    return name, checked


def _days(form: Mapping[str, Any]) -> tuple[str | None, str | None, Any, Any]:
    """The form's ``from`` and ``to`` (days, ``to`` included) and the window they make, checked."""
    first = single(form, "from") or None
    last = single(form, "to") or None
    start = None if first is None else periods.to_timestamp(first, name="from")
    end = None if last is None else periods.period_end(last, name="to")
    if start is not None and end is not None and end <= start:
        raise parameter_error("to", last, "the last day comes before the first (from)")
    return first, last, start, end


def parse_counts_form(form: Mapping[str, Any]) -> CountsRequest:
    """The counts form checked before any work, from the archive's manifest alone.

    Raises
    ------
    ValidationError
        Naming ``archive``, ``by`` (not a column of few values this archive has), ``from`` or
        ``to``, or an unknown field; no partition in the period.
    """
    known = set(COUNT_FIELDS) | {"csrf_token"}
    unknown = sorted(k for k in form.keys() if k not in known)
    if unknown:
        raise parameter_error(unknown[0], form.get(unknown[0]), "unknown form field")
    name, manifest = _archive(single(form, "archive"))
    by = single(form, "by") or "quarter"
    check_tally_by(manifest, by)
    first, last, start, end = _days(form)
    window = periods.epoch_window(start, end, start_name="from", end_name="to")
    entries = select_partitions(manifest, start=window[0], end=window[1])
    if not entries:
        raise parameter_error("from" if first else "to", first or last, "no partition of the archive lies in this period")
    return CountsRequest(name, manifest, by, window[0], window[1], len(entries), sum(p.rows for p in entries),
                         {"archive_name": name, "by": by, "from": first, "to": last, "crs": manifest.crs,
                          "partitions": len(entries)})


# --------------------------------------------------------------------------- the jobs


def _on_cluster(detail: dict[str, Any], run: Callable[[Any, Callable[[int, int], None]], tuple[Any, dict[str, Any]]], *,
                scheduler: str | None, workers: int, store_location: str, user: str) -> Any:
    """The work of one job on Dask: a client, ``run(client, partitions)`` with the partitions' progress, audited
    as an export when it ends (done with ``run``'s detail, refused or cancelled with the reason)."""
    where = scheduler or f"a local cluster of {workers} workers"
    detail = {**detail, "cluster": where}

    def work(progress: ProgressCallback) -> Any:
        progress(0.01, "starting the cluster" if scheduler is None else f"connecting to {scheduler}")

        def partitions(done: int, total: int) -> None:
            progress(0.05 + 0.85 * done / max(total, 1), f"{done} of {total} partitions binned")

        try:
            with dask_client(scheduler, workers=workers) as client:
                progress(0.05, f"binning {detail.get('partitions')} partitions")
                result, done = run(client, partitions)
        except GeoIbmError as exc:
            status = "cancelled" if isinstance(exc, Cancelled) else "refused"
            open_store(store_location).audit("export", user=user, detail={
                **detail, "status": status, "error": str(exc).splitlines()[0][:300]})
            raise
        # the archive's records were read and a result made of them: as the command line's analysis
        open_store(store_location).audit("export", user=user, detail={**detail, "status": "done", **done})
        return result

    return work


def counts_job(checked: CountsRequest, *, scheduler: str | None, workers: int, store_location: str, user: str) -> Any:
    """The work of one counts job: the table summed on Dask, its CSV and XLSX; audited when it ends."""
    detail = {"what": f"archive counts by {checked.by}", "archive": checked.name, "location": checked.manifest.root,
              "partitions": checked.partitions, "rows": checked.rows,
              "parameters": {k: checked.params.get(k) for k in ("from", "to")}}

    def run(client: Any, partitions: Callable[[int, int], None]) -> tuple[ArchiveCounts, dict[str, Any]]:
        table = tally_archive(checked.manifest, client=client, by=checked.by, start=checked.start, end=checked.end,
                              progress=partitions)
        # values of the by column come from the archive's files: never a formula in a spreadsheet
        safe = neutralise_formulas(table)
        events = int(table["events"].sum())
        params = {**checked.params, "events": events, "persons": int(table["persons"].sum())}
        sheet = "Archive counts"
        xlsx = tables.tables_to_xlsx(
            {sheet: safe}, period=_period(checked), events=events,
            filters={"archive": checked.name, "by": checked.by},
            report=f"geo_ibm – events and persons per quarter in the archive {checked.name}",
            descriptions={sheet: f"Events and persons per {'quarter' if checked.by == 'quarter' else checked.by + ' and quarter'}, "
                                 f"summed over {checked.partitions} partitions on Dask"},
            sources=(f"Archive {checked.name}: {checked.manifest.root} ({checked.manifest.crs}, "
                     f"{len(checked.manifest.partitions)} partitions)",),
            attribution="none (no map in this workbook)")
        files = {"csv": tables.table_csv(safe), "xlsx": xlsx}
        return ArchiveCounts(checked.name, checked.by, table, params, files), {"events": events, "table_rows": len(table)}

    return _on_cluster(detail, run, scheduler=scheduler, workers=workers, store_location=store_location, user=user)




def archive_job(name: str, checked: ArchiveRequest, *, scheduler: str | None, workers: int, store_location: str,
                user: str, workdir: Path) -> Any:
    """The work of one archive job: a Dask client, the analysis with its progress, its files; audited when it ends."""
    detail = {"what": f"hotspots {checked.method}", "archive": name, "location": checked.manifest.root,
              "partitions": len(checked.entries), "rows": checked.rows,
              "parameters": {k: checked.params.get(k) for k in ("from", "to", "weight", "shape")}}

    def run(client: Any, partitions: Callable[[int, int], None]) -> tuple[ArchiveResult, dict[str, Any]]:
        result = run_archive_request(checked, client=client, progress=partitions)
        params = {**dict(result.attrs.get("parameters", {})), "from": checked.params.get("from"),
                  "to": checked.params.get("to"), "archive_name": name, "period": _period(checked)}
        result = result.copy()
        result.attrs = {}
        summary = _found(checked.method, result)
        files = _result_files(result, params, checked.method, workdir)
        return (ArchiveResult(name, checked.method, params, len(result), summary, files),
                {"events": params.get("n_events"), "cells": len(result)})

    return _on_cluster(detail, run, scheduler=scheduler, workers=workers, store_location=store_location, user=user)


def _period(checked: ArchiveRequest | CountsRequest) -> str | None:
    """The days analysed, as a reader sees them: the form's from/to, else the archive's first and last event."""
    span = checked.manifest.time_range
    first = checked.params.get("from") or (_day(span[0]) if span else None)
    last = checked.params.get("to") or (_day(span[1]) if span else None)
    return f"{first or '…'} – {last or '…'}" if first or last else None


def _day(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s", tz="UTC").tz_convert(LOCAL_TZ).strftime("%Y-%m-%d")


def _result_files(result: gpd.GeoDataFrame, params: dict[str, Any], method: str, workdir: Path) -> ResultFiles:
    """The result's folder: the frame as it is, and the downloads (removed whole if one cannot be written)."""
    files = ResultFiles.create(workdir)
    layer = f"hotspots_{method}"
    try:
        save_frame(result, files.path(FRAME_FILE))
        files.added(FRAME_FILE)
        for fmt in DOWNLOADS:
            name = f"{layer}.{fmt}"
            write_vector(result, files.path(name), layer=layer, metadata=params, style=layer_style(result, layer))
            files.added(name)
        return files
    except BaseException:
        files.release()
        raise


def _found(method: str, frame: gpd.GeoDataFrame) -> tuple[tuple[Any, int], ...]:
    """What a result found, before it is named: cells per Gi* bin (after FDR, hot first), per emerging
    category (most cells first), or the number of density bands."""
    if method == "gi":
        column = "gi_bin_fdr" if "gi_bin_fdr" in frame.columns else "gi_bin"
        from geo_ibm.maps.hotspotlayers import GI_BIN_LABELS

        counts = frame[column].astype(int).value_counts()
        return tuple((b, int(counts[b])) for b in sorted(GI_BIN_LABELS, reverse=True) if b in counts.index)
    if method == "emerging":
        return tuple((str(c), int(n)) for c, n in frame["category"].astype(str).value_counts().items())
    return (("bands", len(frame)),)


def _finished(job_id: str) -> tuple[Job, ArchiveResult | ArchiveCounts]:
    job = own_job(job_id)
    if job.state != DONE or not isinstance(job.result, (ArchiveResult, ArchiveCounts)):
        raise ValidationError(f"job {job.id}: no result ({job.state})", [Problem("no result", column="job",
                                                                                  value=job.state)])
    return job, job.result


def _result(job_id: str) -> tuple[Job, ArchiveResult]:
    job, result = _finished(job_id)
    if not isinstance(result, ArchiveResult):
        raise ValidationError(f"job {job.id}: a table of counts has no map",
                              [Problem("no map", column="job", value=job.id)])
    return job, result


def _views() -> list[ArchiveView]:
    views = []
    for name, location in configured_archives().items():
        try:
            manifest = read_manifest(location)
            views.append(ArchiveView(name, summary=archive_summary(manifest), counts_by=tally_choices(manifest)))
        except GeoIbmError as exc:
            views.append(ArchiveView(name, error=str(exc).splitlines()[0]))
    return views


# --------------------------------------------------------------------------- views


@archives_bp.context_processor
def _labels() -> dict[str, Any]:
    return {"state_labels": state_labels(), "method_labels": _method_labels(), "by_labels": by_labels()}


@archives_bp.route("/", methods=["GET", "POST"])
@require_role(ROLE)
def archives_page() -> Any:
    """The archives and the hot spot form (GET); a valid form starts an archive job and opens its page (POST)."""
    if request.method == "GET":
        views = _views()
        counts_by = [by for by in by_labels() if any(by in v.counts_by for v in views)]
        return render_template("archives.html", archives=views, form=_form_defaults(), methods=ARCHIVE_METHODS,
                               counts_by=counts_by,
                               scheduler=current_app.config.get("DASK_SCHEDULER"),
                               workers=int(current_app.config.get("DASK_WORKERS", 2)),
                               jobs=runner().jobs_of(current_owner(), kind="archive"))
    name, checked = parse_archive_form(request.form)
    scheduler = current_app.config.get("DASK_SCHEDULER") or None
    workers = int(current_app.config.get("DASK_WORKERS", 2))
    work = archive_job(name, checked, scheduler=scheduler, workers=workers,
                       store_location=str(current_app.config.get("STORE_PATH")), user=current_owner(),
                       workdir=scratch_dir())
    title = _("%(method)s over the archive %(name)s", method=_method_labels()[checked.method], name=name)
    job = runner().submit(current_owner(), title, work, kind="archive")
    audit("export", status="submitted", job=job.id, what=f"hotspots {checked.method}", archive=name,
          partitions=len(checked.entries), rows=checked.rows)
    return redirect(url_for("archives.job_page", job_id=job.id), code=303)


@archives_bp.route("/counts", methods=["POST"])
@require_role(ROLE)
def counts() -> Any:
    """A valid counts form starts a counts job and opens its page; a bad one is a 400 naming the field."""
    checked = parse_counts_form(request.form)
    work = counts_job(checked, scheduler=current_app.config.get("DASK_SCHEDULER") or None,
                      workers=int(current_app.config.get("DASK_WORKERS", 2)),
                      store_location=str(current_app.config.get("STORE_PATH")), user=current_owner())
    title = _("Counts per %(by)s over the archive %(name)s", by=by_labels()[checked.by], name=checked.name)
    job = runner().submit(current_owner(), title, work, kind="archive")
    audit("export", status="submitted", job=job.id, what=f"archive counts by {checked.by}", archive=checked.name,
          partitions=checked.partitions, rows=checked.rows)
    return redirect(url_for("archives.job_page", job_id=job.id), code=303)


@archives_bp.route("/jobs/<job_id>")
@require_role(ROLE)
def job_page(job_id: str) -> Any:
    """An archive job's progress (reload to follow it); a finished job's page is its result."""
    job = own_job(job_id)
    if job.state == DONE:
        return redirect(url_for("archives.result_page", job_id=job.id), code=303)
    return render_template("archives_job.html", job=job, status_url=url_for("archives.job_status", job_id=job.id),
                           result_url=url_for("archives.result_page", job_id=job.id))


@archives_bp.route("/jobs/<job_id>/status")
@require_role(ROLE)
def job_status(job_id: str) -> Any:
    """The job's state as JSON: ``state``, ``finished``, ``fraction``, ``message``, ``error``, ``result`` (URL when done)."""
    job = own_job(job_id)
    return status_response(job, url_for("archives.result_page", job_id=job.id) if job.state == DONE else None)


@archives_bp.route("/jobs/<job_id>/cancel", methods=["POST"])
@require_role(ROLE)
def cancel_job(job_id: str) -> Any:
    """Cancel the job (a waiting one at once, a running one at its next partition); audited."""
    return cancel_response(job_id, action="export", page_endpoint="archives.job_page")


def _summary_rows(result: ArchiveResult) -> list[tuple[str, int]]:
    """What the result found (:attr:`ArchiveResult.found`), named in the reader's language."""
    if result.method == "gi":
        from geo_ibm.maps.hotspotlayers import GI_BIN_LABELS

        return [(_(GI_BIN_LABELS[int(b)]), n) for b, n in result.found]
    if result.method == "emerging":
        return [(_(str(c)), n) for c, n in result.found]
    return [(_("Density bands"), n) for _key, n in result.found]


@archives_bp.route("/jobs/<job_id>/result")
@require_role(ROLE)
def result_page(job_id: str) -> Any:
    """The finished analysis: its parameters, what it found, the map and downloads; a counts job's table."""
    job, found = _finished(job_id)
    if isinstance(found, ArchiveCounts):
        shown = found.table.head(MAX_SHOWN_COUNTS)
        return render_template("archives_counts.html", job=job, result=found, params=found.params,
                               columns=list(shown.columns), rows=shown.to_dict(orient="records"),
                               total=len(found.table), downloads=tuple(COUNT_DOWNLOADS))
    result = found
    params = {k: v for k, v in result.params.items() if k not in ("band_details", "categories", "steps")}
    prints = tuple(PRINT_FORMATS) if result.params.get("crs") == WORKING_CRS else ()
    return render_template("archives_result.html", job=job, result=result, params=params,
                           found=_summary_rows(result), map_src=url_for("archives.map_document", job_id=job.id),
                           downloads=tuple(DOWNLOADS) + prints)


@archives_bp.route("/jobs/<job_id>/map")
@require_role(ROLE)
def map_document(job_id: str) -> Any:
    """The result's map document for the result page's sandboxed frame (built once per job and language)."""
    _job, result = _result(job_id)
    name = f"map-{get_language()}.html"
    if result.files.get(name) is None:
        # built once per job and language, kept with the result's files
        tiles_url, tiles_attr = tiles()
        frame = result.frame()
        fmap = maps.hotspot_map(outline=layer_frame("outline"), borders=layer_frame("borders"), tiles_url=tiles_url,
                                tile_attribution=tiles_attr, asset_base=ASSET_PREFIX, t=_translate,
                                **{MAP_LAYER[result.method]: frame})
        if len(frame):
            # an archive may cover Europe: the view is the result's, not Luxembourg's
            west, south, east, north = frame.to_crs(WEB_CRS).total_bounds
            fmap.fit_bounds([[float(south), float(west)], [float(north), float(east)]])
        result.files.add(name, maps.render_map(fmap, title=_("Archive hotspot map"), lang=get_language()))
    return map_headers(send_result_file(result.files, name, "text/html"))


@archives_bp.route("/jobs/<job_id>/result.<fmt>")
@require_role(ROLE)
def download(job_id: str, fmt: str) -> Any:
    """The result as GeoPackage (the archive's CRS, with its QGIS style), GeoJSON (EPSG:4326) or a print map
    (PDF, PNG: archives in EPSG:2169); a counts table as CSV or XLSX; audited."""
    job, found = _finished(job_id)
    formats = COUNT_DOWNLOADS if isinstance(found, ArchiveCounts) else {**DOWNLOADS, **PRINT_FORMATS}
    if fmt not in formats:
        raise ValidationError(f"invalid format {fmt!r}: use one of {', '.join(formats)}",
                              [Problem("unknown format", column="format", value=fmt)])
    if isinstance(found, ArchiveCounts):
        audit("export", what=f"archive counts by {found.by}", archive=found.name, format=fmt, job=job.id,
              rows=len(found.table))
        return attachment(found.files[fmt], formats[fmt], f"geo_ibm-archive-{found.name}-counts-{found.by}.{fmt}")
    result = found
    name = f"hotspots_{result.method}.{fmt}" if fmt in DOWNLOADS else f"print-{get_language()}.{fmt}"
    if result.files.get(name) is None:
        # a print map is built once per job, format and language
        result.files.add(name, print_map(result, fmt))
    audit("export", what=f"hotspots {result.method}", archive=result.name, format=fmt, job=job.id,
          cells=result.cells)
    return send_result_file(result.files, name, formats[fmt], f"geo_ibm-archive-{result.name}-{result.method}.{fmt}")


def print_map(result: ArchiveResult, fmt: str) -> bytes:
    """The print map of a result over a Luxembourg archive: Gi* bins, emerging categories or density bands.

    Raises
    ------
    ValidationError
        Naming ``format`` for an archive in another CRS than EPSG:2169 (its GeoPackage opens in QGIS).
    """
    crs = result.params.get("crs")
    if crs != WORKING_CRS:
        raise ValidationError(f"format: print maps cover Luxembourg ({WORKING_CRS}); the archive {result.name} is in "
                              f"{crs}: download the GeoPackage and lay it out in QGIS",
                              [Problem("print map of Luxembourg only", column="format", value=fmt)])
    params = result.params
    frame = result.frame()
    common: dict[str, Any] = {"outline": layer_frame("outline"), "borders": layer_frame("borders"),
                              "crossings": layer_frame("crossings"), "neighbours": layer_frame("neighbours"),
                              "period": params.get("period"), "t": _translate}
    events = _("Archive %(name)s, %(n)s events", name=result.name, n=f"{int(params.get('n_events') or 0):,}")
    if result.method == "kde":
        subtitle = _("Quartic kernel, search radius %(radius)s m; bands at the 50/75/90/95/99 %% quantiles") % {
            "radius": f"{float(params.get('radius') or 0):.0f}"}
        fig = figures.static_map(contours=frame, title=_("Kernel density of interceptions"),
                                 subtitle=f"{events}. {subtitle}", **common)
    else:
        subtitle = _("Cell %(cell)s m, distance band %(band)s m, false discovery rate corrected") % {
            "cell": f"{float(params.get('cell') or 0):.0f}", "band": f"{float(params.get('band') or 0):.0f}"}
        if result.method == "gi":
            fig = figures.static_map(hotspots=frame, title=_("Hot and cold spots of interceptions (Getis–Ord Gi*)"),
                                     subtitle=f"{events}. {subtitle}", **common)
        else:
            from geo_ibm.figures.emergingmap import emerging_print_map

            fig = emerging_print_map(frame, title=_("Emerging hot spots"), subtitle=f"{events}. {subtitle}",
                                     **common)
    return figures.figure_bytes(fig, format="pdf" if fmt == "pdf" else "png")


def _translate(message: str) -> str:
    return _(message)


__all__ = ["ArchiveCounts", "ArchiveResult", "CountsRequest", "archive_job", "archives_bp", "by_labels", "configured_archives",
           "counts_job", "parse_archive_form", "parse_counts_form", "print_map"]
