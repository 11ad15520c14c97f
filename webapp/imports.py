"""The import page: upload an event file; all of it is stored or none, every problem listed."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, g, render_template, request
from werkzeug.utils import secure_filename

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.problems import column_totals
from webapp.auth import get_store, is_api_request, require_role
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir
from webapp.responses import error_document, json_response

imports_bp = Blueprint("imports", __name__)

UPLOAD_SUFFIXES = (".csv", ".xlsx", ".geojson", ".json", ".gpkg")

MAX_UPLOAD_STEM = 100
"""Characters kept of an uploaded file's stem on disk (file systems refuse names over 255 bytes)."""


@imports_bp.route("/import", methods=["GET", "POST"])
@require_role("analyst")
def import_page() -> Any:
    """Upload an event file; all rows are stored or none, every problem listed with row and column."""
    if request.method == "GET":
        return render_template("import.html", report=None, problems=None, error=None, totals=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError(_("Choose a file to upload."), [Problem("missing", column="file")])
    name = upload_name(upload.filename)
    suffix = Path(name).suffix.lower()
    if name.lower().endswith((".osm", ".pbf")):
        raise ValidationError(
            f"{upload.filename}: an OpenStreetMap extract, not an event file; an administrator installs it as the "
            "road network with `geo-ibm roads import FILE`",
            [Problem("OpenStreetMap extract", file=upload.filename, column="file", value=suffix)],
        )
    if suffix not in UPLOAD_SUFFIXES:
        raise ValidationError(
            f"{upload.filename}: unsupported file type {suffix or '(none)'!r}; use {', '.join(UPLOAD_SUFFIXES)}",
            [Problem("unsupported file type", file=upload.filename, column="file", value=suffix)],
        )
    workdir = Path(tempfile.mkdtemp(prefix="upload-", dir=scratch_dir()))
    try:
        path = workdir / name
        upload.save(path)
        try:
            # The store records the import (or its failure) in the audit trail itself.
            report = get_store().import_file(path, user=g.user["name"], name=upload.filename)
        except ValidationError as exc:
            # The first problems of each column are listed; every column's count is shown.
            message = str(exc).splitlines()[0]
            if is_api_request():
                return json_response(problems_document(exc, message), status=400)
            return render_template("import.html", report=None, problems=exc.problems, error=message,
                                   totals=column_totals(exc.counts)), 400
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if is_api_request():
        return json_response({"file": report.file, "sha256": report.sha256, "rows": report.rows,
                              "accepted": report.accepted, "duplicates": report.duplicates,
                              "rejected": report.rejected})
    return render_template("import.html", report=report, problems=None, error=None, totals=None)


def problems_document(exc: ValidationError, message: str) -> dict[str, Any]:
    """The JSON error body of a refused import: the app's one error body plus the listed problems
    (``problems``, the first of each column) and every count (``counts``: column, reason,
    count, listed)."""
    body = error_document(400, message, parameter="file")
    body["problems"] = [{"row": p.row, "column": p.column, "value": p.value, "reason": p.reason}
                        for p in exc.problems]
    body["total"] = exc.total
    body["counts"] = [{"column": c.column, "reason": c.reason, "count": c.count, "listed": c.listed}
                      for c in exc.counts]
    return body


def upload_name(filename: str) -> str:
    """A safe on-disk name for an uploaded file: ``secure_filename``, stem cut to ``MAX_UPLOAD_STEM``, suffix kept."""
    name = secure_filename(filename) or "upload"
    path = Path(name)
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return (stem[:MAX_UPLOAD_STEM] or "upload") + suffix
