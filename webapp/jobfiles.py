"""The files of a finished job's result, kept on disk rather than in the app's memory.

A job whose result has files (an archive analysis: its GeoPackage, GeoJSON, map document and
print maps, and the result frame itself; a plan: its GeoPackage, CSV, map document and print
maps) writes them into one private folder of the instance
(:func:`webapp.instance.scratch_dir`) through :class:`ResultFiles`; the views send them from
there (:func:`send_result_file`). The job runner (:mod:`webapp.jobs`) counts their bytes against
its disk budget and calls :meth:`ResultFiles.release` when it forgets the job, which removes the
folder. Folders a stopped process left behind are removed by :func:`sweep` when the next runner
starts.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from flask import Response, send_file

from geo_ibm.errors import NotFoundError

PREFIX = "result-"
"""Name prefix of the result folders in the scratch folder (what :func:`sweep` may remove)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ResultFiles:
    """One job result's folder: files by name, their total size, removal.

    Parameters
    ----------
    folder
        An existing private folder (see :meth:`create`).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._released = False

    @classmethod
    def create(cls, workdir: Path) -> ResultFiles:
        """A new owner-only folder inside ``workdir`` (the instance's scratch folder)."""
        return cls(Path(tempfile.mkdtemp(prefix=PREFIX, dir=workdir)))

    def path(self, name: str) -> Path:
        """Where the file ``name`` (a plain file name, no folder) is or will be written."""
        if not _NAME.match(name) or ".." in name:
            raise ValueError(f"not a plain file name: {name!r}")
        return self.folder / name

    def added(self, name: str) -> Path:
        """Record the file ``name`` that a writer has just made at :meth:`path`; its path."""
        path = self.path(name)
        size = path.stat().st_size
        with self._lock:
            self._sizes[name] = size
        return path

    def add(self, name: str, data: bytes | str) -> Path:
        """Write ``data`` as the file ``name`` (whole or not at all: a reader never sees half a file); its path.

        Raises
        ------
        NotFoundError
            When the result has been released (its job forgotten) meanwhile.
        """
        path = self.path(name)
        raw = data.encode("utf-8") if isinstance(data, str) else data
        try:
            if self._released:
                raise FileNotFoundError(self.folder)
            handle, temporary = tempfile.mkstemp(prefix=".part-", dir=self.folder)
        except FileNotFoundError as exc:  # the runner forgot the job while this file was being made
            raise NotFoundError(f"{name}: this result's files are gone: the job was forgotten; run it again") from exc
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(raw)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return self.added(name)

    def get(self, name: str) -> Path | None:
        """The path of the file ``name`` when it was written, else ``None``."""
        with self._lock:
            known = name in self._sizes and not self._released
        return self.path(name) if known else None

    def read_text(self, name: str) -> str | None:
        """The text of the file ``name`` when it was written and is still there, else ``None``."""
        path = self.get(name)
        if path is None:
            return None
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    @property
    def disk_bytes(self) -> int:
        """Bytes of the files written so far."""
        with self._lock:
            return sum(self._sizes.values())

    def release(self) -> None:
        """Remove the folder and everything in it (a file being sent stays readable until sent)."""
        with self._lock:
            self._released = True
            self._sizes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)


def send_result_file(files: ResultFiles, name: str, mimetype: str, filename: str | None = None) -> Response:
    """The file ``name`` of a result as the response (an attachment named ``filename`` when given).

    Raises
    ------
    NotFoundError
        When the file was never written or the job has been forgotten since (its folder removed).
    """
    path = files.get(name)
    try:
        if path is None:
            raise FileNotFoundError(name)
        response = send_file(path, mimetype=mimetype, as_attachment=filename is not None, download_name=filename,
                             conditional=False, etag=False, last_modified=None)
    except FileNotFoundError as exc:
        raise NotFoundError(f"{name}: this result's file is gone: the job was forgotten; run it again") from exc
    if filename is None:
        response.headers.pop("Content-Disposition", None)  # shown in place: no name of ours to offer
    # law-enforcement data: never kept by a browser or proxy (send_file's own caching headers go)
    response.headers.pop("Expires", None)
    response.headers.pop("Last-Modified", None)
    response.headers["Cache-Control"] = "no-store"
    return response


def sweep(workdir: Path, *, older_than_s: float) -> int:
    """Remove the result folders in ``workdir`` last changed more than ``older_than_s`` seconds ago (those
    of a stopped process: a running one forgets its jobs sooner); how many were removed."""
    removed = 0
    limit = time.time() - float(older_than_s)
    for folder in workdir.glob(f"{PREFIX}*"):
        try:
            if folder.is_dir() and folder.stat().st_mtime < limit:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


__all__ = ["PREFIX", "ResultFiles", "send_result_file", "sweep"]
