"""Concurrent uploads and reads against the real server (waitress, threads) lose nothing."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import requests
from webfixtures import build_store, demo_events, events_csv

from geo_ibm.store.pg_local import free_port

UPLOADERS = 4
FILES_EACH = 3
EVENTS_PER_FILE = 150


# --------------------------------------------------------------------------- shared with test_postgis_concurrency


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


# --------------------------------------------------------------------------- one GeoPackage store


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrency")
    store_path = build_store(root / "store.gpkg", n_events=100, seed=2)
    from geo_ibm.accounts import new_token
    from geo_ibm.store import open_store

    token = new_token(open_store(store_path), "ana")  # analyst: may import and read events
    port = free_port()
    proc = start_server(str(store_path), root, port)
    base = f"http://127.0.0.1:{port}"
    wait_up(base, proc, timeout_s=60)
    yield {"base": base, "token": token, "store": store_path, "root": root}
    proc.terminate()
    proc.wait(timeout=10)


def test_concurrent_uploads_and_reads_lose_nothing(server):
    from geo_ibm.store import open_store

    store = open_store(server["store"])
    before = store.count()
    headers = {"Authorization": f"Bearer {server['token']}"}
    files: list[tuple[str, str]] = []
    for u in range(UPLOADERS):
        for f in range(FILES_EACH):
            events = demo_events(EVENTS_PER_FILE, seed=100 + u * FILES_EACH + f)
            files.append((f"batch-{u}-{f}.csv", events_csv(events, id_prefix=f"U{u}F{f}-")))

    errors: list[str] = []
    seen_counts: list[list[int]] = [[] for _ in range(3)]
    done = threading.Event()

    def upload(worker: int) -> None:
        for name, text in files[worker * FILES_EACH:(worker + 1) * FILES_EACH]:
            for attempt in range(2):  # the second upload of the same file must add nothing
                r = requests.post(f"{server['base']}/import", headers=headers,
                                  files={"file": (name, text.encode("utf-8"), "text/csv")}, timeout=120)
                if r.status_code != 200:
                    errors.append(f"upload {name} #{attempt}: {r.status_code} {r.text[:300]}")

    def read(worker: int) -> None:
        read_totals(server["base"], headers, seen=seen_counts[worker], errors=errors, done=done, timeout=60)

    run_uploads_and_reads(upload, UPLOADERS, read, 3, done=done, upload_timeout=300, read_timeout=60)

    assert not errors, errors
    expected = before + UPLOADERS * FILES_EACH * EVENTS_PER_FILE
    assert store.count() == expected
    # Readers never saw a half import: every count they saw is the base plus whole files.
    assert_only_whole_imports_seen(seen_counts, before=before, per_file=EVENTS_PER_FILE)
    imports = store.imports()
    ok = imports[imports["status"] == "ok"]
    assert len(ok[ok["file_name"].str.startswith("batch-")]) == 2 * UPLOADERS * FILES_EACH
