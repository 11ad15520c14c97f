"""A small bounded runner for long work in the background: fixed worker threads, queue and per-user limits, progress, cancel.

A view submits a job (a callable taking ``progress(fraction, message)``) and sends the browser
to the job's page, which polls its JSON status; the job views of every page (status, cancel)
answer through :func:`status_response` and :func:`cancel_response`. Limits are checked when a job is submitted and a
full runner refuses with a 429 naming the limit. A running job stops at its next progress
report once cancelled (the callback raises :class:`~geo_ibm.planning.progress.Cancelled`);
finished jobs keep their result for ``keep_s`` seconds, at most ``max_kept`` of them and, but for
the newest, within ``kept_mb`` of memory (estimated when each finishes, :func:`approximate_nbytes`)
and ``kept_disk_mb`` of result files (:mod:`webapp.jobfiles`): newest first, a job that would not
fit is forgotten. A forgotten result's ``release()`` removes its files. Jobs live in the memory of
one app process: a page polled through another process of the same store does not see them.
"""
from __future__ import annotations

import dataclasses
import logging
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely
from flask import Flask, Response, current_app, g, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from geo_ibm.errors import GeoIbmError, NotFoundError, Problem, ValidationError
from geo_ibm.planning.progress import Cancelled, ProgressCallback, check_fraction
from webapp.auth import audit
from webapp.i18n import gettext as _
from webapp.instance import scratch_dir
from webapp.jobfiles import sweep
from webapp.responses import json_response

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = frozenset({DONE, FAILED, CANCELLED})

DEFAULTS: dict[str, float] = {"JOB_WORKERS": 2, "JOB_MAX_QUEUED": 8, "JOB_PER_USER": 2, "JOB_KEEP_S": 1800.0,
                              "JOB_MAX_KEPT": 32, "JOB_KEPT_MB": 512.0, "JOB_KEPT_DISK_MB": 4096.0}
"""App config keys of the runner and their defaults: worker threads, jobs waiting, unfinished jobs
per user, seconds a finished job is kept, finished jobs kept, MB of memory and of result files
the finished jobs but the newest may hold."""

GEOMETRY_BYTES = 400
"""Resident bytes of one shapely geometry besides 16 per coordinate (measured: 300,000 grid cells
of 5 coordinates hold 140 MB, 466 bytes each)."""

Work = Callable[[ProgressCallback], Any]

_lock = threading.Lock()


class JobLimitError(ValidationError):
    """A job was refused because a limit of the runner is reached (HTTP 429); the problem names the limit."""

    http_status = 429


@dataclass
class Job:
    """One submitted piece of work and what is known of it.

    Attributes
    ----------
    id
        Unguessable job id (URL-safe).
    owner
        Account that submitted it; only it can see or cancel the job.
    state
        ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``.
    fraction, message
        Last progress reported (0..1) and its message.
    result
        What the work returned (``done`` only).
    error, problems
        Why it failed: the error's first line and its listed problems.
    """

    id: str
    owner: str
    title: str
    work: Work
    created: float
    kind: str = ""
    """What the job is (``plan``, ``route``, ``report``), so each page lists only its own jobs."""
    state: str = QUEUED
    fraction: float = 0.0
    message: str = ""
    started: float | None = None
    finished: float | None = None
    result: Any = None
    nbytes: int = 0
    """Memory its result holds, estimated when it finished (:func:`approximate_nbytes`)."""
    error: str | None = None
    problems: list[Problem] = field(default_factory=list)
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED

    def status(self) -> dict[str, Any]:
        """The job's state as a JSON-ready document (no result)."""
        return {"id": self.id, "title": self.title, "state": self.state, "finished": self.is_finished,
                "fraction": round(self.fraction, 4), "message": self.message, "error": self.error,
                "cancel_requested": self.cancel_requested.is_set()}


class JobRunner:
    """Fixed worker threads over one bounded queue of jobs.

    Parameters
    ----------
    workers
        Worker threads, started at the first submission.
    max_queued
        Most jobs waiting for a worker.
    per_user
        Most unfinished (waiting or running) jobs of one account. With more than one worker an
        account runs at most ``workers - 1`` jobs at a time (:attr:`running_per_user`): its other
        jobs wait, so one account, whatever its role, never holds every worker.
    keep_s, max_kept
        How long and how many finished jobs are kept with their results.
    kept_mb, kept_disk_mb
        Memory and result files (``disk_bytes`` of a result) the finished jobs may hold, the newest
        finished job aside: going from the newest back, a job that would exceed either is forgotten.
    clock
        Time source in seconds (monotonic).
    """

    def __init__(self, *, workers: int = 2, max_queued: int = 8, per_user: int = 2, keep_s: float = 1800.0,
                 max_kept: int = 32, kept_mb: float = 512.0, kept_disk_mb: float = 4096.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, value in (("workers", workers), ("max_queued", max_queued), ("per_user", per_user),
                            ("max_kept", max_kept)):
            if int(value) < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        for name, number in (("keep_s", keep_s), ("kept_mb", kept_mb), ("kept_disk_mb", kept_disk_mb)):
            if not float(number) > 0:
                raise ValueError(f"{name} must be > 0, got {number!r}")
        self.workers, self.max_queued, self.per_user = int(workers), int(max_queued), int(per_user)
        self.keep_s, self.max_kept = float(keep_s), int(max_kept)
        self.kept_bytes, self.kept_disk_bytes = int(float(kept_mb) * 1e6), int(float(kept_disk_mb) * 1e6)
        self.running_per_user = max(1, self.workers - 1)
        self._clock = clock
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    # ------------------------------------------------------------------ public

    def submit(self, owner: str, title: str, work: Work, *, kind: str = "") -> Job:
        """Queue ``work`` of ``kind`` for ``owner``; refuse (:class:`JobLimitError`) when a limit is reached."""
        with self._cond:
            if self._closed:
                raise GeoIbmError("the job runner is shut down")
            self._prune()
            waiting = sum(1 for j in self._waiting if j.state == QUEUED)
            if waiting >= self.max_queued:
                raise JobLimitError(
                    f"jobs: {waiting} jobs are waiting, the most the server queues (JOB_MAX_QUEUED = "
                    f"{self.max_queued}); try again when one has finished",
                    [Problem("job queue full", column="jobs", value=self.max_queued)])
            mine = sum(1 for j in self._jobs.values() if j.owner == owner and not j.is_finished)
            if mine >= self.per_user:
                raise JobLimitError(
                    f"jobs: you have {mine} unfinished jobs, the most per user (JOB_PER_USER = {self.per_user}); "
                    f"wait for one or cancel it", [Problem("too many jobs per user", column="jobs",
                                                           value=self.per_user)])
            job = Job(id=secrets.token_urlsafe(16), owner=owner, title=title, work=work, created=self._clock(),
                      kind=kind, message="waiting for a worker")
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._start_workers()
            self._cond.notify()
            return job

    def get(self, job_id: str, *, owner: str) -> Job:
        """The job ``job_id`` of ``owner``; :class:`NotFoundError` for unknown, forgotten or others' jobs."""
        with self._cond:
            self._prune()
            job = self._jobs.get(str(job_id))
            if job is None or job.owner != owner:
                raise NotFoundError(f"job {str(job_id)[:40]!r} not found: it never existed, belongs to another "
                                    f"account or finished more than {self.keep_s:g} s ago",
                                    )
            return job

    def cancel(self, job_id: str, *, owner: str) -> Job:
        """Ask the job to stop: a waiting job is cancelled at once, a running one at its next progress report."""
        job = self.get(job_id, owner=owner)
        with self._cond:
            if job.is_finished:
                return job
            job.cancel_requested.set()
            if job.state == QUEUED:
                self._finish(job, CANCELLED, message="cancelled before it started")
            else:
                job.message = "cancelling at the next step"
        return job

    def jobs_of(self, owner: str, *, kind: str | None = None) -> list[Job]:
        """The kept jobs of ``owner`` (of ``kind`` only, when given), newest first."""
        with self._cond:
            self._prune()
            return sorted((j for j in self._jobs.values() if j.owner == owner and (kind is None or j.kind == kind)),
                          key=lambda j: -j.created)

    def close(self, *, timeout: float = 5.0) -> None:
        """Stop the workers after their current job (waiting jobs are cancelled) and release the finished
        jobs' results (their files)."""
        with self._cond:
            self._closed = True
            for job in self._waiting:
                if not job.is_finished:
                    job.cancel_requested.set()
                    self._finish(job, CANCELLED, message="the server stopped")
            self._waiting.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout)
        with self._cond:
            for job in list(self._jobs.values()):
                if job.is_finished:
                    self._forget(job)

    # ------------------------------------------------------------------ internals

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(target=self._worker, name=f"geo_ibm-job-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next(self) -> Job | None:
        """The oldest waiting job whose account runs fewer than :attr:`running_per_user` jobs (waits for one)."""
        with self._cond:
            while True:
                running: dict[str, int] = {}
                for other in self._jobs.values():
                    if other.state == RUNNING:
                        running[other.owner] = running.get(other.owner, 0) + 1
                for job in list(self._waiting):
                    if job.state != QUEUED:
                        self._waiting.remove(job)
                    elif running.get(job.owner, 0) < self.running_per_user:
                        self._waiting.remove(job)
                        job.state, job.started, job.message = RUNNING, self._clock(), "started"
                        return job
                if self._closed:
                    return None
                self._cond.wait()

    def _worker(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            self._run(job)

    def _run(self, job: Job) -> None:
        def progress(fraction: float, message: str) -> None:
            if job.cancel_requested.is_set():
                raise Cancelled(f"{job.title}: cancelled")
            with self._cond:
                job.fraction = max(job.fraction, check_fraction(fraction))
                job.message = str(message)[:500]

        result: Any = None
        try:
            result = job.work(progress)
        except Cancelled:
            with self._cond:
                self._finish(job, CANCELLED, message="cancelled")
        except GeoIbmError as exc:
            text = str(exc)
            with self._cond:
                job.error = text.splitlines()[0] if text else exc.__class__.__name__
                job.problems = list(getattr(exc, "problems", []) or [])
                self._finish(job, FAILED, message="failed")
        except Exception:
            log.exception("job %s (%s) failed", job.id, job.title)
            with self._cond:
                job.error = "internal error; the details are in the server log"
                self._finish(job, FAILED, message="failed")
        else:
            with self._cond:
                if job.cancel_requested.is_set():
                    # Cancelled after its last step: the user asked for nothing, so nothing is shown.
                    self._finish(job, CANCELLED, message="cancelled")
                else:
                    job.result = result
                    job.fraction = 1.0
                    self._finish(job, DONE, message="done")
        if job.state != DONE:
            _release(result)  # a result made after the job was cancelled is nobody's
            return
        size = approximate_nbytes(job.result)  # outside the lock: deep sizes of large frames take a while
        with self._cond:
            job.nbytes = size
            self._prune()

    def _finish(self, job: Job, state: str, *, message: str) -> None:
        job.state, job.message, job.finished = state, message, self._clock()
        job.work = _spent
        self._cond.notify_all()  # (held by the caller) a worker may now start a job of this account

    def _prune(self) -> None:
        now = self._clock()
        finished = sorted((j for j in self._jobs.values() if j.is_finished),
                          key=lambda j: now if j.finished is None else j.finished)
        expired = [j for j in finished if j.finished is not None and now - j.finished > self.keep_s]
        overflow = finished[: max(0, len(finished) - self.max_kept)]
        memory = disk = 0
        beyond = []
        for job in reversed(finished[:-1]):  # the newest finished job is always kept: someone is looking at it
            size, files = job.nbytes, _disk_bytes(job.result)
            if memory + size > self.kept_bytes or disk + files > self.kept_disk_bytes:
                beyond.append(job)  # newest first while they fit; a large old one goes, smaller ones may stay
            else:
                memory, disk = memory + size, disk + files
        for job in {id(j): j for j in expired + overflow + beyond}.values():
            self._forget(job)

    def _forget(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        result, job.result = job.result, None
        _release(result)


def _disk_bytes(result: Any) -> int:
    try:
        return int(getattr(result, "disk_bytes", 0) or 0)
    except Exception:  # a result's own accounting must never stop the runner
        return 0


def _release(result: Any) -> None:
    release = getattr(result, "release", None)
    if callable(release):
        try:
            release()
        except Exception:
            log.exception("releasing a job result failed")


def approximate_nbytes(value: Any, *, _depth: int = 0, _seen: set[int] | None = None) -> int:
    """About how many bytes of memory ``value`` holds: frames and arrays, bytes and text, and the
    containers, dataclasses and objects holding them (six levels deep, each object once).

    Geometries count :data:`GEOMETRY_BYTES` and 16 bytes per coordinate; files a result keeps on
    disk are not memory (a :class:`pathlib.Path` counts nothing).
    """
    seen = set() if _seen is None else _seen
    if value is None or isinstance(value, (bool, int, float, complex, Path)) or id(value) in seen or _depth > 6:
        return 0
    seen.add(id(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, str):
        return sys.getsizeof(value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return value.nbytes + sum(approximate_nbytes(v, _depth=_depth + 1, _seen=seen) for v in value.ravel())
        return value.nbytes
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        total = int(value.index.memory_usage(deep=True))
        for column in value.columns:
            values = value[column].array
            if getattr(values, "dtype", None) is not None and values.dtype.name == "geometry":
                geometries = np.asarray(values)
                total += len(geometries) * (8 + GEOMETRY_BYTES) + 16 * int(shapely.get_num_coordinates(geometries).sum())
            else:
                total += int(value[column].memory_usage(deep=True, index=False))
        return total
    nested = _depth + 1
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(approximate_nbytes(k, _depth=nested, _seen=seen)
                                          + approximate_nbytes(v, _depth=nested, _seen=seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        return sys.getsizeof(value) + sum(approximate_nbytes(v, _depth=nested, _seen=seen) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sys.getsizeof(value) + sum(approximate_nbytes(getattr(value, f.name, None), _depth=nested, _seen=seen)
                                          for f in dataclasses.fields(value))
    if hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
        return sys.getsizeof(value) + sum(approximate_nbytes(v, _depth=nested, _seen=seen) for v in vars(value).values())
    return sys.getsizeof(value)


def _spent(_progress: ProgressCallback) -> None:
    # A finished job drops its work (and what the closure holds: candidates, demand).
    return None


def runner(app: Flask | None = None) -> JobRunner:
    """The app's job runner, made at first use from its ``JOB_*`` config (see :data:`DEFAULTS`)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("geo_ibm_jobs")
    if found is None:
        with _lock:
            found = app.extensions.get("geo_ibm_jobs")
            if found is None:
                config = {key: app.config.get(key, default) for key, default in DEFAULTS.items()}
                found = JobRunner(workers=int(config["JOB_WORKERS"]), max_queued=int(config["JOB_MAX_QUEUED"]),
                                  per_user=int(config["JOB_PER_USER"]), keep_s=float(config["JOB_KEEP_S"]),
                                  max_kept=int(config["JOB_MAX_KEPT"]), kept_mb=float(config["JOB_KEPT_MB"]),
                                  kept_disk_mb=float(config["JOB_KEPT_DISK_MB"]))
                # result folders of a stopped process (a live one forgets its jobs within JOB_KEEP_S)
                with app.app_context():
                    sweep(scratch_dir(), older_than_s=2 * float(config["JOB_KEEP_S"]) + 60)
                app.extensions["geo_ibm_jobs"] = found
    return found


# --------------------------------------------------------------------------- the job views' shared parts


def state_labels() -> dict[str, str]:
    """The job states as the job pages name them, in the reader's language."""
    return {QUEUED: _("waiting"), RUNNING: _("running"), DONE: _("done"), FAILED: _("failed"),
            CANCELLED: _("cancelled")}


def current_owner() -> str:
    """The logged-in account, owner of the jobs it submits."""
    return str(g.user["name"])


def own_job(job_id: str) -> Job:
    """The logged-in account's job ``job_id`` (:class:`NotFoundError` for unknown, forgotten or others' jobs)."""
    return runner().get(job_id, owner=current_owner())


def status_response(job: Job, result_url: str | None) -> Response:
    """The job's state as JSON (:meth:`Job.status`) with ``result``: the URL of its result once there is one."""
    body = job.status()
    body["result"] = result_url
    return json_response(body)


def cancel_response(job_id: str, *, action: str, page_endpoint: str) -> BaseResponse:
    """Cancel the logged-in account's job (a waiting one at once, a running one at its next step), audited
    as ``action``; answers its state as JSON to a script, else sends the browser back to its page."""
    job = runner().cancel(job_id, owner=current_owner())
    audit(action, status="cancel requested", job=job.id, state=job.state)
    if request.accept_mimetypes.best == "application/json":
        return json_response(job.status())
    return redirect(url_for(page_endpoint, job_id=job.id), code=303)
