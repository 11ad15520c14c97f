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
from webapp.auth import get_store, require_role
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir

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
            return render_template("import.html", report=None, problems=exc.problems, error=message,
                                   totals=column_totals(exc.counts)), 400
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return render_template("import.html", report=report, problems=None, error=None, totals=None)


def upload_name(filename: str) -> str:
    """A safe on-disk name for an uploaded file: ``secure_filename``, stem cut to ``MAX_UPLOAD_STEM``, suffix kept."""
    name = secure_filename(filename) or "upload"
    path = Path(name)
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)] if suffix else name
    return (stem[:MAX_UPLOAD_STEM] or "upload") + suffix
