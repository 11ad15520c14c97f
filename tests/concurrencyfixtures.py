"""Concurrency test helpers: an app server in its own process, readers and uploaders at once, whole-import checks."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests


def start_server(store: str, root: Path, port: int, *, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """``geo-ibm serve`` of ``store`` (a path or a PostGIS URL) with 8 threads in its own process on ``port``."""
    full = {**os.environ, "GEO_IBM_INSTANCE": str(root / "instance"), "GEO_IBM_STORE": store, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "geo_ibm.cli", "--store", store, "serve", "--port", str(port), "--threads", "8"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full,
    )


def wait_up(base: str, proc: subprocess.Popen, *, timeout_s: float) -> None:
    """Wait until the server at ``base`` answers; kill it and say why when it does not within ``timeout_s``."""
    deadline = time.time() + timeout_s
    while True:
        try:
            requests.get(f"{base}/login", timeout=5)
            return
        except requests.ConnectionError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("server did not start: " + proc.stderr.read().decode(errors="replace")) from None
            time.sleep(0.3)


def read_totals(base: str, headers: Mapping[str, str], *, seen: list[int], errors: list[str], done: threading.Event,
                timeout: float, label: str = "") -> None:
    """Until ``done``: read the event total (``/api/stats``, into ``seen``) and a page of OGC items; stop at the
    first refusal (in ``errors``)."""
    while not done.is_set():
        r = requests.get(f"{base}/api/stats", headers=headers, timeout=timeout)
        if r.status_code != 200:
            errors.append(f"stats{label}: {r.status_code} {r.text[:300]}")
            return
        seen.append(int(r.json()["total"]))
        items = requests.get(f"{base}/ogc/collections/events/items?limit=5", headers=headers, timeout=timeout)
        if items.status_code != 200:
            errors.append(f"items{label}: {items.status_code} {items.text[:300]}")
            return


def run_uploads_and_reads(upload: Callable[[int], None], uploads: int, read: Callable[[int], None], readers: int, *,
                          done: threading.Event, upload_timeout: float, read_timeout: float) -> None:
    """``upload(k)`` for ``k < uploads`` and ``read(k)`` for ``k < readers``, each in its own thread, all at once;
    once the uploads are over, ``done`` tells the readers to stop."""
    uploading = [threading.Thread(target=upload, args=(k,)) for k in range(uploads)]
    reading = [threading.Thread(target=read, args=(k,)) for k in range(readers)]
    for t in reading + uploading:
        t.start()
    for t in uploading:
        t.join(timeout=upload_timeout)
    done.set()
    for t in reading:
        t.join(timeout=read_timeout)


def assert_only_whole_imports_seen(seen: list[list[int]], *, before: int, per_file: int) -> None:
    """Every reader got answers, never fewer than before, and every total was the base plus whole files."""
    for counts in seen:
        assert counts, "a reader never got an answer"
        assert counts == sorted(counts)
        assert all((c - before) % per_file == 0 for c in counts), counts
