"""Two app processes on one PostGIS store: concurrent imports and reads lose nothing; sessions and the login throttle are shared."""
from __future__ import annotations

import re
import threading

import psycopg
import pytest
import requests
from concurrencyfixtures import (
    assert_only_whole_imports_seen,
    read_totals,
    run_uploads_and_reads,
    start_server,
    wait_up,
)
from pgserver import new_database
from webfixtures import PASSWORD, USERS, demo_events, events_csv

from geo_ibm.store.pg_local import free_port

DISTINCT_FILES = 8
SAME_FILE_IMPORTERS = 2
READERS = 20
EVENTS_PER_FILE = 150
BASE_EVENTS = 100

SHARED_KEY = {"GEO_IBM_SECRET_KEY": "concurrency-test-secret-key-0123456789"}
"""One key for both processes, as behind a load balancer: a session cookie is valid on either."""


@pytest.fixture(scope="module")
def servers(pg_server, tmp_path_factory):
    from geo_ibm.accounts import add_user, new_token
    from geo_ibm.store.postgis import PostGISStore

    root = tmp_path_factory.mktemp("pg_concurrency")
    url = new_database(pg_server, "concurrency")
    store = PostGISStore(url)
    store.init()
    base = root / "base.csv"
    base.write_text(events_csv(demo_events(BASE_EVENTS, seed=2)), encoding="utf-8")
    store.import_file(base, user="fixture")
    for name, role in USERS.items():
        add_user(store, name, role, PASSWORD)
    token = new_token(store, "ana")  # analyst: may import and read events
    procs, bases = [], []
    for _ in range(2):
        port = free_port()
        procs.append(start_server(url, root, port, env=SHARED_KEY))
        bases.append(f"http://127.0.0.1:{port}")
    for b, p in zip(bases, procs):
        wait_up(b, p, timeout_s=90)
    yield {"bases": bases, "token": token, "store": store, "url": url}
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=20)
    store.close()


def test_concurrent_imports_through_two_processes_lose_and_double_nothing(servers):
    store = servers["store"]
    before = store.count()
    headers = {"Authorization": f"Bearer {servers['token']}"}
    bases = servers["bases"]
    jobs: list[tuple[str, str, str]] = []  # (file name, prefix, csv text)
    for f in range(DISTINCT_FILES):
        prefix = f"P{f}-"
        jobs.append((f"batch-{f}.csv", prefix, events_csv(demo_events(EVENTS_PER_FILE, seed=300 + f), id_prefix=prefix)))
    same = events_csv(demo_events(EVENTS_PER_FILE, seed=399), id_prefix="SAME-")
    jobs += [("same.csv", "SAME-", same)] * SAME_FILE_IMPORTERS

    errors: list[str] = []
    seen: list[list[int]] = [[] for _ in range(READERS)]
    start = threading.Barrier(len(jobs) + READERS)
    done = threading.Event()

    def upload(k: int) -> None:
        name, _prefix, text = jobs[k]
        start.wait()
        r = requests.post(f"{bases[k % 2]}/import", headers=headers,
                          files={"file": (name, text.encode("utf-8"), "text/csv")}, timeout=300)
        if r.status_code != 200:
            errors.append(f"upload {name} via {k % 2}: {r.status_code} {r.text[:300]}")

    def read(k: int) -> None:
        start.wait()
        read_totals(bases[k % 2], headers, seen=seen[k], errors=errors, done=done, timeout=120, label=f" via {k % 2}")

    run_uploads_and_reads(upload, len(jobs), read, READERS, done=done, upload_timeout=600, read_timeout=120)

    assert not errors, errors
    files = DISTINCT_FILES + 1
    assert store.count() == before + files * EVENTS_PER_FILE
    with psycopg.connect(servers["url"]) as conn:
        ((distinct,),) = conn.execute("SELECT count(DISTINCT event_id) FROM events").fetchall()
        per_prefix = dict(conn.execute(
            "SELECT split_part(event_id, '-', 1), count(*) FROM events WHERE event_id ~ '^(P[0-9]+|SAME)-' GROUP BY 1"
        ).fetchall())
    assert distinct == store.count()  # nothing doubled
    assert per_prefix == {**{f"P{f}": EVENTS_PER_FILE for f in range(DISTINCT_FILES)}, "SAME": EVENTS_PER_FILE}
    # Readers of either process never saw part of an import.
    assert_only_whole_imports_seen(seen, before=before, per_file=EVENTS_PER_FILE)
    imports = store.imports()
    ok = imports[(imports["status"] == "ok") & imports["file_name"].str.match(r"^(batch-\d+|same)\.csv$")]
    assert len(ok) == len(jobs) and set(ok["accepted"]) <= {0, EVENTS_PER_FILE}
    twice = ok[ok["file_name"] == "same.csv"]
    assert sorted(twice["accepted"]) == [0, EVENTS_PER_FILE] and sorted(twice["duplicates"]) == [0, EVENTS_PER_FILE]


def _login(session: requests.Session, base: str, name: str, password: str) -> requests.Response:
    page = session.get(f"{base}/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return session.post(f"{base}/login", data={"username": name, "password": password, "csrf_token": token},
                        allow_redirects=False, timeout=60)


def test_a_session_opened_on_one_process_works_and_ends_on_the_other(servers):
    first, second = servers["bases"]
    browser = requests.Session()
    assert _login(browser, first, "pia", PASSWORD).status_code == 302
    assert browser.get(f"{second}/overview", allow_redirects=False, timeout=60).status_code == 200
    stale = requests.Session()  # a copy of the cookie taken before the logout
    stale.cookies.update(browser.cookies)
    assert stale.get(f"{first}/overview", allow_redirects=False, timeout=60).status_code == 200
    page = browser.get(f"{second}/overview", timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    assert browser.post(f"{second}/logout", data={"csrf_token": token}, allow_redirects=False, timeout=60).status_code == 302
    # The server-side session is gone for both processes.
    assert stale.get(f"{first}/overview", allow_redirects=False, timeout=60).status_code == 302
    assert stale.get(f"{second}/overview", allow_redirects=False, timeout=60).status_code == 302


def test_the_login_throttle_counts_failures_of_both_processes(servers):
    first, second = servers["bases"]
    bad = ("vic", "not-the-password")
    for k in range(5):  # the free failures, spread over both processes
        assert requests.get(f"{servers['bases'][k % 2]}/api/layers", auth=bad, timeout=60).status_code == 401
    blocked = requests.get(f"{second}/api/layers", auth=("vic", PASSWORD), timeout=60)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert requests.get(f"{first}/api/layers", auth=("vic", PASSWORD), timeout=60).status_code == 429
