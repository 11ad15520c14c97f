"""Concurrent uploads and reads against the real server (waitress, threads) lose nothing."""
from __future__ import annotations

import threading

import pytest
import requests
from concurrencyfixtures import assert_only_whole_imports_seen, read_totals, run_uploads_and_reads, start_server, wait_up
from webfixtures import build_store, demo_events, events_csv

from geo_ibm.store.pg_local import free_port

UPLOADERS = 4
FILES_EACH = 3
EVENTS_PER_FILE = 150


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
