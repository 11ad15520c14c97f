"""The Archives pages: the configured archives, the hot spot form checked before any work, the Dask job (on a running
scheduler and on a local cluster of worker processes), its result equal to the library's, map, downloads, audit."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from webfixtures import PASSWORD, USERS, assert_released_files_are_gone, base_store, csrf_token, login  # noqa: F401

from geo_ibm.archive import dask_client, hotspots_from_archive, read_manifest, write_synthetic_archive
from geo_ibm.errors import ValidationError
from geo_ibm.store import open_store


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("webarchive") / "lux"
    write_synthetic_archive(root, n_events=24_000, partitions=16, quarters=8, seed=5)
    return root


@pytest.fixture(scope="module")
def cluster():
    """A running cluster (threads in this process) that the app reaches by its scheduler address, as a real one."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        yield c


def _app(base_store, tmp_path, archives: dict[str, str], **config):
    import shutil

    from webapp import create_app

    store = tmp_path / "store.gpkg"
    shutil.copyfile(base_store, store)
    return create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(store),
                       "INSTANCE_PATH": str(tmp_path / "instance"), "ARCHIVES": archives, **config})


@pytest.fixture
def app(base_store, tmp_path, archive, cluster):
    app = _app(base_store, tmp_path, {"lux": str(archive), "gone": str(tmp_path / "no-such-archive")},
               DASK_SCHEDULER=cluster.scheduler_address)
    yield app
    from webapp.jobs import runner

    runner(app).close()


def _client(app, name: str):
    c = app.test_client()
    assert login(c, name).status_code == 302
    return c


def _submit(c, **fields) -> str:
    token = csrf_token(c, "/archives/")
    response = c.post("/archives/", data={"csrf_token": token, **fields})
    assert response.status_code == 303, response.get_data(as_text=True)[:800]
    return response.headers["Location"]


def _wait(c, job_url: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = c.get(job_url + "/status").get_json()
        if status["finished"]:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{job_url} did not finish in {timeout} s: {status}")


def test_the_page_lists_the_configured_archives_for_analysts_only(app, archive):
    page = _client(app, "ana").get("/archives/").get_data(as_text=True)
    manifest = read_manifest(archive)
    assert "lux" in page and f"{manifest.rows:,}" in page and f"{len(manifest.partitions):,}" in page
    assert "EPSG:2169" in page
    # an archive that cannot be read is named with the reason, and is not offered in the form
    assert "Cannot be read" in page and "no-such-archive" in page
    assert '<option value="gone"' not in page and '<option value="lux"' in page
    assert _client(app, "vic").get("/archives/").status_code == 403
    assert 'href="/archives/"' in _client(app, "ana").get("/overview").get_data(as_text=True)
    assert 'href="/archives/"' not in _client(app, "vic").get("/overview").get_data(as_text=True)


def test_a_server_without_archives_says_so(base_store, tmp_path):
    page = _client(_app(base_store, tmp_path, {}), "ana").get("/archives/").get_data(as_text=True)
    assert "No archive is configured" in page and "archive-form" not in page


def test_gi_job_equals_the_library_on_the_same_cluster_and_is_audited(app, archive, cluster, tmp_path):
    c = _client(app, "ana")
    job_url = _submit(c, archive="lux", method="gi", cell="2000", band="6000", **{"from": "2024-01-01", "to": "2024-12-31"})
    status = _wait(c, job_url)
    assert status["state"] == "done", status
    result_page = c.get(status["result"]).get_data(as_text=True)
    assert "Gi* hot and cold spots over the archive lux" in result_page and "Hot spot, 99% confidence" in result_page
    data = c.get(job_url + "/result.gpkg")
    assert data.status_code == 200 and data.headers["Content-Type"] == "application/geopackage+sqlite3"
    path = tmp_path / "result.gpkg"
    path.write_bytes(data.data)
    got = pyogrio.read_dataframe(path, layer="hotspots_gi")
    with dask_client(cluster.scheduler_address) as client:
        want = hotspots_from_archive(read_manifest(archive), client=client, method="gi", cell=2000.0, band=6000.0,
                                     start="2024-01-01", end="2025-01-01")
    assert got.crs.to_epsg() == 2169 and len(got) == len(want)
    assert np.array_equal(got["count"].to_numpy(), want["count"].to_numpy())
    np.testing.assert_allclose(got["gi_z"].to_numpy(), want["gi_z"].to_numpy(), rtol=0, atol=1e-12)
    assert np.array_equal(got["gi_bin_fdr"].to_numpy(), want["gi_bin_fdr"].to_numpy())
    # the page's table counts the FDR bins of the same cells
    hot = int((want["gi_bin_fdr"] == 3).sum())
    assert f"<td>Hot spot, 99% confidence</td><td>{hot:,}</td>" in result_page
    meta = json.loads(pyogrio.read_info(path, layer="hotspots_gi")["layer_metadata"]["parameters"])
    assert meta["archive_name"] == "lux" and meta["n_events"] == want.attrs["parameters"]["n_events"]
    geojson = c.get(job_url + "/result.geojson")
    collection = json.loads(geojson.data)
    assert len(collection["features"]) == len(want) and collection["parameters"]["band"] == 6000.0
    lon, lat = collection["features"][0]["geometry"]["coordinates"][0][0]
    assert 5.7 < lon < 6.6 and 49.4 < lat < 50.2
    # the map document draws the result in its own sandbox
    document = c.get(job_url + "/map")
    assert document.status_code == 200 and "Content-Security-Policy" in document.headers
    assert "Gi* hot and cold spots" in document.get_data(as_text=True)
    audit = open_store(app.config["STORE_PATH"]).audit_log(limit=20)
    exports = audit[audit["action"] == "export"]
    details = [d for d in exports["detail"] if d.get("archive") == "lux"]
    assert {d.get("status") for d in details} >= {"submitted", "done"}
    assert {d.get("format") for d in details} >= {"gpkg", "geojson"}
    done = next(d for d in details if d.get("status") == "done")
    assert done["events"] == want.attrs["parameters"]["n_events"] and done["cluster"] == cluster.scheduler_address
    assert set(exports["user"]) == {"ana"}


def test_emerging_and_kde_jobs_reach_their_map(app):
    c = _client(app, "ana")
    for fields, layer in (({"method": "emerging", "cell": "3000", "step": "quarter"}, "Emerging hot spots"),
                          ({"method": "kde", "band": "4000", "weight": "persons"}, "Kernel density contours")):
        job_url = _submit(c, archive="lux", **fields)
        status = _wait(c, job_url)
        assert status["state"] == "done", status
        assert layer in c.get(job_url + "/map").get_data(as_text=True)


@pytest.mark.parametrize(("fields", "parameter"), [
    ({"archive": "elsewhere"}, "archive"),
    ({"archive": "/etc"}, "archive"),
    ({"archive": ""}, "archive"),
    ({"archive": "lux", "method": "lisa"}, "method"),
    ({"archive": "lux", "cell": "1"}, "cell"),
    ({"archive": "lux", "cell": "abc"}, "cell"),
    ({"archive": "lux", "band": "-5"}, "band"),
    ({"archive": "lux", "method": "kde"}, "band"),
    ({"archive": "lux", "method": "emerging", "cell": "20"}, "cell"),
    ({"archive": "lux", "from": "2024-06-01", "to": "2024-01-01"}, "to"),
    ({"archive": "lux", "from": "someday"}, "from"),
    ({"archive": "lux", "shape": "circle"}, "shape"),
    ({"archive": "lux", "weight": "smugglers"}, "weight"),
    ({"archive": "lux", "path": "/tmp"}, "path"),
])
def test_bad_forms_are_refused_naming_the_parameter_before_any_job(app, fields, parameter):
    from webapp.jobs import runner

    c = _client(app, "ana")
    token = csrf_token(c, "/archives/")
    response = c.post("/archives/", data={"csrf_token": token, **fields}, headers={"Accept": "text/html"})
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert parameter in response.get_data(as_text=True)
    assert runner(app).jobs_of("ana") == []


def test_the_form_needs_its_csrf_token_and_the_role(app):
    assert _client(app, "ana").post("/archives/", data={"archive": "lux"}).status_code == 400
    vic = _client(app, "vic")
    assert vic.post("/archives/", data={"archive": "lux", "csrf_token": csrf_token(vic, "/account")}).status_code == 403


def test_jobs_and_results_are_their_owners_only(app):
    c = _client(app, "ana")
    job_url = _submit(c, archive="lux", method="gi", cell="3000")
    assert _wait(c, job_url)["state"] == "done"
    other = _client(app, "pia")  # a planner is an analyst too, but not this job's owner
    assert other.get(job_url).status_code == 404 and other.get(job_url + "/result.gpkg").status_code == 404
    assert c.get(job_url + "/result.shp").status_code == 400


def test_a_local_cluster_of_worker_processes_per_job(base_store, tmp_path, archive):
    """Without a scheduler each job starts (and closes) a local cluster of real worker processes."""
    app = _app(base_store, tmp_path, {"lux": str(archive)}, DASK_WORKERS=1)
    try:
        c = _client(app, "ana")
        page = c.get("/archives/").get_data(as_text=True)
        assert "local cluster of 1 workers" in page
        job_url = _submit(c, archive="lux", method="gi", cell="3000", band="9000")
        status = _wait(c, job_url, timeout=180)
        assert status["state"] == "done", status
        data = c.get(job_url + "/result.geojson").data
        got, params = pyogrio.read_dataframe(io.BytesIO(data)), json.loads(data)["parameters"]
        assert params["n_events"] == read_manifest(archive).rows and params["workers"] == 1
        assert int(got["count"].sum()) == params["n_events"] - params["n_outside_grid"] > 0.8 * params["n_events"]
    finally:
        from webapp.jobs import runner

        runner(app).close()


def test_archive_settings_are_checked_when_the_app_starts(base_store, tmp_path, monkeypatch):
    from webapp import create_app

    config = {"TESTING": True, "SECRET_KEY": "x", "STORE_PATH": str(base_store), "INSTANCE_PATH": str(tmp_path / "i")}
    monkeypatch.setenv("GEO_IBM_ARCHIVES", "lux=/data/lux; eu=s3://bucket/eu")
    assert create_app(config).config["ARCHIVES"] == {"lux": "/data/lux", "eu": "s3://bucket/eu"}
    monkeypatch.setenv("GEO_IBM_ARCHIVES", "lux=/a;lux=/b")
    with pytest.raises(ValidationError, match="GEO_IBM_ARCHIVES: entry 2.*twice"):
        create_app(config)
    monkeypatch.setenv("GEO_IBM_ARCHIVES", "../up=/a")
    with pytest.raises(ValidationError, match="GEO_IBM_ARCHIVES: entry 1"):
        create_app(config)
    monkeypatch.delenv("GEO_IBM_ARCHIVES")
    monkeypatch.setenv("GEO_IBM_DASK_WORKERS", "100000")
    with pytest.raises(ValidationError, match="GEO_IBM_DASK_WORKERS"):
        create_app(config)
    monkeypatch.setenv("GEO_IBM_DASK_WORKERS", "two")
    with pytest.raises(ValidationError, match="GEO_IBM_DASK_WORKERS"):
        create_app(config)


def test_print_maps_of_a_luxembourg_archive_and_an_eu_archive_refused_naming_the_format(app, tmp_path_factory):
    import subprocess

    c = _client(app, "ana")
    job_url = _submit(c, archive="lux", method="gi", cell="3000", band="9000")
    assert _wait(c, job_url)["state"] == "done"
    assert "result.pdf" in c.get(job_url + "/result").get_data(as_text=True)
    pdf = c.get(job_url + "/result.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    path = tmp_path_factory.mktemp("print") / "map.pdf"
    path.write_bytes(pdf.data)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "Getis" in text and "Archive lux" in text and "distance band 9000 m" in text
    png = c.get(job_url + "/result.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def eu_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("webarchive-eu") / "eu"
    write_synthetic_archive(root, n_events=20_000, partitions=20, quarters=8, crs="EPSG:3035", seed=7)
    return root


def test_an_eu_archive_is_mapped_where_it_lies_and_has_no_print_map(base_store, tmp_path, eu_archive, cluster):
    app = _app(base_store, tmp_path, {"eu": str(eu_archive)}, DASK_SCHEDULER=cluster.scheduler_address)
    try:
        c = _client(app, "ana")
        assert "EPSG:3035" in c.get("/archives/").get_data(as_text=True)
        job_url = _submit(c, archive="eu", method="gi")
        status = _wait(c, job_url)
        assert status["state"] == "done", status
        page = c.get(job_url + "/result").get_data(as_text=True)
        assert "result.gpkg" in page and "result.pdf" not in page and "EPSG:3035" in page
        refused = c.get(job_url + "/result.pdf", headers={"Accept": "text/html"})
        assert refused.status_code == 400 and "format" in refused.get_data(as_text=True)
        document = c.get(job_url + "/map").get_data(as_text=True)
        assert "fitBounds" in document
        data = c.get(job_url + "/result.gpkg").data
        path = tmp_path / "eu.gpkg"
        path.write_bytes(data)
        assert pyogrio.read_info(path, layer="hotspots_gi")["crs"] == "EPSG:3035"
    finally:
        from webapp.jobs import runner

        runner(app).close()


# --------------------------------------------------------------------------- counts


@pytest.fixture(scope="module")
def store_archive(base_store, tmp_path_factory) -> Path:
    """The demo store's events written into an archive: it has police regions, means of transport..."""
    from geo_ibm.archive import export_store

    root = tmp_path_factory.mktemp("webarchive-store") / "store"
    export_store(open_store(base_store), root)
    return root


def _submit_counts(c, **fields):
    token = csrf_token(c, "/archives/")
    return c.post("/archives/counts", data={"csrf_token": token, **fields}, headers={"Accept": "text/html"})


def test_counts_per_quarter_equal_the_partitions_read_with_pyarrow(app, archive, tmp_path):
    import openpyxl
    import pandas as pd
    import pyarrow.parquet as pq

    c = _client(app, "ana")
    page = c.get("/archives/").get_data(as_text=True)
    assert 'id="counts-form"' in page and '<option value="country">country of the partition</option>' in page
    response = _submit_counts(c, archive="lux", by="quarter", **{"from": "2023-04-01", "to": "2024-09-30"})
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    job_url = response.headers["Location"]
    status = _wait(c, job_url)
    assert status["state"] == "done", status
    # the reference: every partition file read whole, its events' local quarter counted
    manifest = read_manifest(archive)
    frames = [pq.read_table(archive / p.path, columns=["observed_at", "persons"]).to_pandas() for p in manifest.partitions]
    events = pd.concat(frames, ignore_index=True)
    local = events["observed_at"].dt.tz_convert("Europe/Luxembourg")
    events = events[(local >= pd.Timestamp("2023-04-01", tz="Europe/Luxembourg"))
                    & (local < pd.Timestamp("2024-10-01", tz="Europe/Luxembourg"))]
    quarter = events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q").astype(str)
    want = events.assign(quarter=quarter).groupby("quarter").agg(events=("persons", "size"), persons=("persons", "sum"))
    assert len(want) == 6
    result = c.get(status["result"]).get_data(as_text=True)
    assert f"{int(want['events'].sum()):,} events, {int(want['persons'].sum()):,} persons" in result
    for q, row in want.iterrows():
        assert f"<td>{q}</td><td>{int(row['events']):,}</td><td>{int(row['persons']):,}</td>" in result
    csv = c.get(job_url + "/result.csv")
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    got = pd.read_csv(io.BytesIO(csv.data), encoding="utf-8-sig")
    assert got["quarter"].tolist() == want.index.tolist()
    assert got["events"].tolist() == want["events"].tolist() and got["persons"].tolist() == want["persons"].tolist()
    xlsx = c.get(job_url + "/result.xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data))
    assert book.sheetnames == ["About", "Archive counts"]
    rows = list(book["Archive counts"].iter_rows(values_only=True))
    assert rows[0] == ("quarter", "events", "persons") and [r[1] for r in rows[1:]] == want["events"].tolist()
    about = {r[0]: r[1] for r in book["About"].iter_rows(values_only=True) if r[0]}
    assert "archive lux" in about["Report"] and about["Data period"] == "2023-04-01 – 2024-09-30"
    assert about["Data source"].startswith("Archive lux: ")
    # a table has no map and no GeoPackage
    assert c.get(job_url + "/map").status_code == 400
    refused = c.get(job_url + "/result.gpkg")
    assert refused.status_code == 400 and "format" in refused.get_data(as_text=True)
    audit = open_store(app.config["STORE_PATH"]).audit_log(limit=20)
    details = [d for d in audit[audit["action"] == "export"]["detail"] if d.get("what") == "archive counts by quarter"]
    assert {d.get("status") for d in details} >= {"submitted", "done"}
    assert {d.get("format") for d in details} >= {"csv", "xlsx"}
    assert next(d for d in details if d.get("status") == "done")["events"] == int(want["events"].sum())


def test_counts_per_region_of_an_exported_store_equal_the_store(base_store, tmp_path, store_archive, cluster):
    import pandas as pd

    app = _app(base_store, tmp_path, {"store": str(store_archive), "lux": str(tmp_path / "none")},
               DASK_SCHEDULER=cluster.scheduler_address)
    try:
        c = _client(app, "ana")
        page = c.get("/archives/").get_data(as_text=True)
        assert "police region, canton" in page and '<option value="transport_mode">' in page
        response = _submit_counts(c, archive="store", by="region")
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        status = _wait(c, response.headers["Location"])
        assert status["state"] == "done", status
        got = pd.read_csv(io.BytesIO(c.get(response.headers["Location"] + "/result.csv").data),
                          encoding="utf-8-sig", keep_default_na=False)
        events = open_store(base_store).events(columns=["region", "persons", "observed_at"])
        quarter = events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q").astype(str)
        want = (events.assign(quarter=quarter, region=events["region"].fillna("")).groupby(["region", "quarter"])
                .agg(events=("persons", "size"), persons=("persons", "sum")).reset_index())
        assert got.columns.tolist() == ["region", "quarter", "events", "persons"]
        assert got.values.tolist() == want.values.tolist()
        assert "police region" in c.get(status["result"]).get_data(as_text=True)
    finally:
        from webapp.jobs import runner

        runner(app).close()


@pytest.mark.parametrize(("fields", "parameter"), [
    ({"archive": "elsewhere"}, "archive"),
    ({"archive": "lux", "by": "event_id"}, "by"),
    ({"archive": "lux", "by": "canton"}, "by"),
    ({"archive": "lux", "from": "2024-06-01", "to": "2024-01-01"}, "to"),
    ({"archive": "lux", "from": "2030-01-01"}, "from"),
    ({"archive": "lux", "to": "1999-12-31"}, "to"),
    ({"archive": "lux", "method": "gi"}, "method"),
])
def test_bad_counts_forms_are_refused_naming_the_parameter_before_any_job(app, fields, parameter):
    from webapp.jobs import runner

    response = _submit_counts(_client(app, "ana"), **fields)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert parameter in response.get_data(as_text=True)
    assert runner(app).jobs_of("ana") == []


def test_counts_need_the_csrf_token_and_the_role(app):
    assert _client(app, "ana").post("/archives/counts", data={"archive": "lux"}).status_code == 400
    vic = _client(app, "vic")
    assert vic.post("/archives/counts", data={"archive": "lux", "csrf_token": csrf_token(vic, "/account")}).status_code == 403


def test_results_live_on_disk_and_go_with_their_job(base_store, tmp_path, archive, cluster):
    """A result's frame, downloads and map document are files in the instance's scratch folder, not app memory;
    past JOB_KEPT_DISK_MB the older job is forgotten with its folder, and its downloads are a 404."""
    from webapp.jobs import runner

    app = _app(base_store, tmp_path, {"lux": str(archive)}, DASK_SCHEDULER=cluster.scheduler_address,
               JOB_KEPT_DISK_MB=0.001)
    try:
        c = _client(app, "ana")
        first = _submit(c, archive="lux", method="gi", cell="3000", band="9000")
        assert _wait(c, first)["state"] == "done"
        job = runner(app).get(first.rsplit("/", 1)[1], owner="ana")
        folder = job.result.files.folder
        assert folder.parent == tmp_path / "instance" / "uploads"
        assert c.get(first + "/map").status_code == 200
        assert {p.name for p in folder.iterdir()} == {"result.parquet", "hotspots_gi.gpkg", "hotspots_gi.geojson",
                                                      "map-en.html"}
        download = c.get(first + "/result.geojson")
        assert download.data == (folder / "hotspots_gi.geojson").read_bytes()
        assert download.headers["Cache-Control"] == "no-store"
        assert download.headers["Content-Disposition"] == "attachment; filename=geo_ibm-archive-lux-gi.geojson"
        # the job holds its summary in memory, its cells on disk
        assert job.nbytes < 100_000 < job.result.disk_bytes
        second = _submit(c, archive="lux", method="gi", cell="4000", band="9000")
        assert _wait(c, second)["state"] == "done"
        # the newest result is kept whatever its size; the older one went with its files
        assert not folder.exists()
        assert c.get(first + "/result.geojson").status_code == 404
        assert c.get(second + "/result.geojson").status_code == 200
        assert_released_files_are_gone(app, c, second, "ana", ("/map", "/result.pdf", "/result.gpkg"))
    finally:
        runner(app).close()
    assert not any(p.name.startswith("result-") for p in (tmp_path / "instance" / "uploads").iterdir())
