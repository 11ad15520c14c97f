"""Hostile requests under a memory cap: every refusal comes before the work, every allowed size fits.

Each request runs in its own process whose address space may grow by at most
``GROWTH_MB`` beyond what the app needs once loaded (``resource.setrlimit``), on a store of
20,000 demo events. A size over a cost limit must be refused with 400 naming the parameter
(never a MemoryError, a 500 or a killed process), and the largest sizes the limits allow must
still be answered within the cap, so a regression in either direction fails here, not on the
server.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
from webfixtures import Site, base_store, make_site, store_path  # noqa: F401

N_EVENTS = 20_000
GROWTH_MB = 1500

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    store, token, url, growth_mb = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    from webapp import create_app
    import geo_ibm.analysis, geo_ibm.figures, sklearn.cluster  # everything a request may load
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "STORE_PATH": store})
    client = app.test_client()
    headers = {"Authorization": "Bearer " + token}
    client.get("/api/layers", headers=headers)  # warm: layers and the store opened once
    with open("/proc/self/status") as status:
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = (size_kb + growth_mb * 1024) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    start = time.perf_counter()
    response = client.get(url, headers=headers)
    body = response.get_data()
    print(json.dumps({"status": response.status_code, "seconds": time.perf_counter() - start,
                      "json": response.get_json(silent=True) if response.status_code != 200 else None,
                      "bytes": len(body)}))
    """
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return make_site(tmp_path_factory.mktemp("hostile") / "store.gpkg", seed=3, n_events=N_EVENTS)


def request_capped(site: Site, url: str, *, role: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(site.store.path), site.tokens[role], url, str(GROWTH_MB)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Analysts: they get every method at full detail, so only the cost limits stand between them
# and the server (viewers are held to coarser sizes and fewer methods, tests/test_disclosure.py).
REFUSED = [
    # A 50 km DBSCAN eps put every pair of events in reach: 23 GB before the limits.
    ("/api/hotspots?method=clusters&band=50000", "analyst", "band"),
    # A band over an automatic cell: 241 million LISA neighbour pairs before the limits.
    ("/api/hotspots?method=lisa&band=30522", "analyst", "band"),
    # Within the cell and band limits, but 50,000 cells x 314 neighbours x 999 permutations.
    ("/api/hotspots?method=lisa&cell=230&band=2300", "analyst", "band"),
    ("/api/hotspots?method=gi&cell=50", "analyst", "cell"),
    ("/api/hotspots?method=emerging&cell=100", "analyst", "cell"),
    ("/api/hotspots?method=kde&cell=50&band=5000", "analyst", "band"),
    ("/api/hotspots?method=gi&cell=100&cells=all", "analyst", "cells"),
    ("/maps/hotspots?cell=200&band=5000", "analyst", "band"),
    ("/reports/map.png?width_mm=600&dpi=600", "analyst", "dpi"),
    ("/reports/map.png?map=hotspots&cell=200&band=5000", "analyst", "band"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("url", "role", "parameter"), REFUSED)
def test_costly_requests_are_refused_at_once_naming_the_parameter(site, url, role, parameter):
    answer = request_capped(site, url, role=role)
    assert answer["status"] == 400, answer
    assert answer["json"]["parameter"] == parameter
    assert answer["seconds"] < 5


ALLOWED = [
    "/api/hotspots?method=gi&cell=100&band=2000&cells=nonzero",
    "/api/hotspots?method=lisa",
    "/api/hotspots?method=clusters&band=1500",
    "/api/hotspots?method=emerging&cell=200&band=4000&cells=nonzero",
    "/api/hotspots?method=kde&cell=50&band=1000",
    "/maps/hotspots",
]


@pytest.mark.slow
@pytest.mark.parametrize("url", ALLOWED)
def test_the_largest_allowed_requests_fit_the_memory_cap(site, url):
    answer = request_capped(site, url, role="analyst")
    assert answer["status"] == 200, answer
    assert answer["seconds"] < 60


# --------------------------------------------------------------------------- the quarterly report form
#
# Every build writes a new numbered version into the report archive next to the store, and a
# viewer may build the protected edition: the form must not let one account fill that disk.


@pytest.fixture
def report_app(store_path, tmp_path):
    from webapp import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(store_path),
                      "INSTANCE_PATH": str(tmp_path / "instance"), "JOB_WORKERS": 1, "JOB_PER_USER": 5,
                      "REPORT_BUILDS_PER_HOUR": 2})
    yield app
    found = app.extensions.get("geo_ibm_jobs")
    if found is not None:
        found.close()


def _report_form(client, quarter: str) -> dict[str, str]:
    from webfixtures import csrf_token

    return {"csrf_token": csrf_token(client, "/reports/quarterly"), "quarter": quarter, "region": "national",
            "lang": "en", "edition": "aggregates"}


def _archived(store_path) -> list:
    from geo_ibm.reportdoc.archive import ReportArchive

    return ReportArchive(store_path.parent / "reports").versions()


def test_a_report_of_a_quarter_without_events_is_refused_before_a_job(report_app, store_path):
    from webfixtures import login

    from geo_ibm.store import open_store
    from webapp.jobs import runner

    # Any quarter from 1900 to 2199 parses; only those holding events are reports (the form lists them).
    assert not len(open_store(store_path).quarter_counts().query("quarter == '1950Q1'"))
    client = report_app.test_client()
    login(client, "vic")
    response = client.post("/reports/quarterly", data=_report_form(client, "1950Q1"))
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "quarter" in response.get_data(as_text=True) and "1950Q1" in response.get_data(as_text=True)
    with report_app.app_context():
        assert runner().jobs_of("vic") == []
    assert _archived(store_path) == []


def test_report_builds_per_account_and_hour_are_bounded(report_app, store_path):
    import threading

    from webfixtures import csrf_token, login

    from geo_ibm.store import open_store
    from webapp.jobs import runner

    quarter = str(open_store(store_path).quarter_counts()["quarter"].iloc[-1])
    client = report_app.test_client()
    login(client, "vic")
    gate = threading.Event()
    with report_app.app_context():
        # Hold the one worker: the builds wait in the queue and are cancelled before they write anything.
        runner().submit("someone", "hold", lambda progress: gate.wait(30))
    try:
        first = client.post("/reports/quarterly", data=_report_form(client, quarter))
        second = client.post("/reports/quarterly", data=_report_form(client, quarter))
        assert (first.status_code, second.status_code) == (303, 303)
        third = client.post("/reports/quarterly", data=_report_form(client, quarter))
        assert third.status_code == 429 and "REPORT_BUILDS_PER_HOUR = 2" in third.get_data(as_text=True)
        # Another account keeps its own allowance.
        other = report_app.test_client()
        login(other, "ana")
        assert other.post("/reports/quarterly", data=_report_form(other, quarter)).status_code == 303
        for c, location in ((client, first.location), (client, second.location)):
            c.post(location + "/cancel", data={"csrf_token": csrf_token(c, "/reports/quarterly")})
        with report_app.app_context():
            for job in runner().jobs_of("ana"):
                runner().cancel(job.id, owner="ana")
    finally:
        gate.set()
    assert _archived(store_path) == []


# --------------------------------------------------------------------------- sizes at the ends of a float


@pytest.mark.parametrize("method", ["gi", "lisa", "emerging", "kde"])
@pytest.mark.parametrize("cell", [1e-300, 5e-324])
def test_a_cell_whose_square_underflows_is_too_many_cells(method, cell):
    # The command line takes any positive float: a cell of 1e-300 m once made (1e-300)**2 == 0.0
    # and a ZeroDivisionError traceback instead of the refusal naming the cell.
    from shapely.geometry import box

    from geo_ibm.analysis.budget import check_budget
    from geo_ibm.errors import ValidationError

    with pytest.raises(ValidationError, match="cell: .* makes about inf cells") as err:
        check_budget(method, area=box(0, 0, 50_000, 80_000), cell=cell, band=None)
    assert [p.column for p in err.value.problems] == ["cell"]


# --------------------------------------------------------------------------- archive analyses
#
# An archive form is checked from the manifest alone (geo_ibm.archive.check_archive_request):
# the largest grid, space-time cube and density raster it lets through must run within the
# cap, in the web process that assembles the grid and runs Gi* on the sums (the cluster's
# workers are threads of the same process here, so they count against the cap too).

ARCHIVE_CHILD = textwrap.dedent(
    """
    import json, re, resource, sys, time
    store, archive, password, fields, growth_mb = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), int(sys.argv[5])
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    from webapp import create_app
    import geo_ibm.archive, geo_ibm.emerging, geo_ibm.kde  # everything a job may load
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "STORE_PATH": store, "ARCHIVES": {"lux": archive},
                      "DASK_SCHEDULER": cluster.scheduler_address})
    client = app.test_client()
    def token(url):
        return re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(1)
    client.post("/login", data={"username": "analyst", "password": password, "csrf_token": token("/login")})
    form = {"csrf_token": token("/archives/"), "archive": "lux", **fields}
    def status_kb(*names):
        with open("/proc/self/status") as status:
            found = {line.split(":")[0]: line.split()[1:] for line in status}
        return [int(found[name][0]) for name in names]
    size_kb, rss_kb = status_kb("VmSize", "VmRSS")
    limit = (size_kb + growth_mb * 1024) * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    start = time.perf_counter()
    response = client.post("/archives/", data=form, headers={"Accept": "application/json"})
    answer = {"status": response.status_code, "json": response.get_json(silent=True)}
    if response.status_code == 303:
        job = response.headers["Location"]
        while not (state := client.get(job + "/status").get_json())["finished"]:
            time.sleep(0.05)
        answer.update(state=state["state"], error=state["error"], job_s=time.perf_counter() - start)
        if state["state"] == "done":
            # the result's map document and print map, under the same cap
            for view in ("/map", "/result.pdf"):
                began = time.perf_counter()
                shown = client.get(job + view)
                answer[view] = [shown.status_code, round(time.perf_counter() - began, 2)]
        peak_kb, hwm_kb = status_kb("VmPeak", "VmHWM")
        answer["growth_mb"], answer["rss_growth_mb"] = (peak_kb - size_kb) / 1024, (hwm_kb - rss_kb) / 1024
        # the server's part is over: reading the result back into Python objects is the test's own
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        if state["state"] == "done":
            data = client.get(job + "/result.geojson").get_json()
            answer["features"] = len(data["features"])
            answer["parameters"] = {k: data["parameters"].get(k) for k in ("n_cells", "cell", "band", "steps")}
    answer["seconds"] = time.perf_counter() - start
    print(json.dumps(answer))
    """
)


@pytest.fixture(scope="module")
def hostile_archive(site, tmp_path_factory):
    from geo_ibm.archive import write_synthetic_archive

    root = tmp_path_factory.mktemp("hostile-archive") / "lux"
    write_synthetic_archive(root, n_events=100_000, partitions=8, quarters=8, seed=1)
    return root


def _smallest_cell(root, fields: dict) -> float:
    """The smallest cell (band 20 cells, the longest allowed) the form's check lets through, to 0.1 %."""
    from geo_ibm.archive import check_archive_request, read_manifest
    from geo_ibm.errors import ValidationError

    manifest = read_manifest(root)
    lo, hi = 1.0, 20_000.0
    while hi / lo > 1.001:
        mid = (lo * hi) ** 0.5
        try:
            check_archive_request(manifest, cell=mid, band=20 * mid, **fields)
            hi = mid
        except ValidationError:
            lo = mid
    return hi


ARCHIVE_GROWTH_MB = 2500
"""Address space an archive job may add: its resident memory stays far below (``ARCHIVE_RSS_MB``);
the rest is what the cluster's threads and pyarrow's allocator reserve without using."""

ARCHIVE_RSS_MB = 1000
"""Resident memory the largest archive job, then its map document and PDF print map, may add to the
web process (measured: 700 MB for the 302,000-cell Gi* grid, its files written, map and print map
built)."""


def archive_capped(site, root, fields: dict) -> dict:
    from webfixtures import API_PASSWORD

    done = subprocess.run(
        [sys.executable, "-c", ARCHIVE_CHILD, str(site.store.path), str(root), API_PASSWORD, json.dumps(fields),
         str(ARCHIVE_GROWTH_MB)], capture_output=True, text=True, timeout=600,
        # the cap counts address space: each thread's malloc arena would reserve 64 MB of it unused
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("fields", [{"method": "gi"}, {"method": "emerging", "step": "month"}, {"method": "kde"}],
                         ids=["gi", "emerging-months", "kde"])
def test_the_largest_archive_analyses_the_form_allows_fit_the_memory_cap(site, hostile_archive, fields):
    cell = math.ceil(_smallest_cell(hostile_archive, fields) * 1000) / 1000
    # as the form sends them: a cell of three decimals, the band just within 20 of them
    form = {**fields, "cell": f"{cell:.3f}", "band": f"{math.floor(20 * cell * 1000) / 1000:.3f}"}
    answer = archive_capped(site, hostile_archive, form)
    assert answer["status"] == 303 and answer["state"] == "done", answer
    assert answer["seconds"] < 120 and answer["features"] > 0
    # its map document and print map were built under the same cap (cells merged per class)
    assert answer["/map"][0] == 200 and answer["/result.pdf"][0] == 200, answer
    assert answer["rss_growth_mb"] < ARCHIVE_RSS_MB, answer
    # and a cell 2 % finer is refused before any job, naming it
    finer = archive_capped(site, hostile_archive, {**form, "cell": f"{cell * 0.98:.3f}",
                                                   "band": f"{20 * cell * 0.98:.3f}"})
    assert finer["status"] == 400 and finer["json"]["parameter"] == "cell", finer
