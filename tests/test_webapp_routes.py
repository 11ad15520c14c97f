"""Tests of the Routes page: roles, the tables against the library's analysis, filters, parameter
errors, the map document, the GeoPackage and print-map downloads (audited) and the background job."""
from __future__ import annotations

import html as html_lib
import re
import subprocess
import time

import pyogrio
import pytest
from webfixtures import app, base_store, client, logged_in, store, store_path  # noqa: F401

from geo_ibm.network.requests import RouteQuery, route_analysis
from webapp.routes import LAYER_NAMES


def _page(c, url: str) -> str:
    response = c.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:600]
    return response.get_data(as_text=True)


def _table(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [[html_lib.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def _audits(store, action: str = "export") -> list[dict]:
    log = store.audit_log(limit=50)
    return [row["detail"] for _i, row in log.iterrows() if row["action"] == action]


def test_routes_need_the_analyst_role(client, logged_in):
    assert client.get("/routes/").status_code == 302  # to the login page
    viewer = logged_in("vic")
    assert viewer.get("/routes/").status_code == 403
    assert viewer.get("/routes/map").status_code == 403
    assert viewer.get("/routes/routes.gpkg").status_code == 403
    assert viewer.get("/routes/corridors.png").status_code == 403
    assert 'href="/routes/"' not in _page(viewer, "/overview")
    assert 'href="/routes/"' in _page(logged_in("ana"), "/overview")


def test_tables_are_the_analysis_of_the_store(logged_in, store):
    html = _page(logged_in("ana"), "/routes/")
    expected = route_analysis(store, RouteQuery())
    rows = _table(html, "route-corridors")
    assert len(rows) == len(expected.corridors)
    for row, (_i, corridor) in zip(rows, expected.corridors.iterrows(), strict=True):
        assert row[0] == str(int(corridor["rank"])) and row[1] == corridor["ref"]
        assert row[3] == str(int(corridor["events"])) and row[4] == str(int(corridor["persons"]))
        assert row[5] == f"{corridor['events_per_km']:.2f}"
    crossings = expected.crossings.sort_values("events", ascending=False)
    rows = _table(html, "route-crossings")
    assert [r[0] for r in rows] == list(crossings["name"])
    assert [int(r[2]) for r in rows] == list(crossings["events"])
    # The attributed events are the events with an entry crossing.
    assert sum(int(r[2]) for r in rows) == int(expected.attribution["crossing_id"].notna().sum())
    summary = re.sub(r"\s+", " ", re.search(r'id="route-summary">(.*?)</p>', html, re.S).group(1))
    assert f"{expected.n_events} events in the selection" in summary
    assert f"{expected.n_snapped} snapped to a road" in summary
    assert f"{len(expected.unsnapped)} events beyond the snapping tolerance of 250 m" in summary
    assert expected.n_events == store.count() and len(expected.unsnapped) == expected.n_events - expected.n_snapped
    for warning in expected.warnings:
        assert warning in html
    network = re.search(r'id="route-network">(.*?)</p>', html, re.S).group(1)
    assert "schematic corridors" in network and "ODbL" not in network  # the shipped network is not OSM data


def test_filters_and_tolerance_select_the_analysis(logged_in, store):
    c = logged_in("ana")
    html = _page(c, "/routes/?region=Sud-Ouest&tolerance=1000&entry_country=FR")
    summary = re.sub(r"\s+", " ", re.search(r'id="route-summary">(.*?)</p>', html, re.S).group(1))
    n = store.count(region="Sud-Ouest", entry_country="FR")
    assert 0 < n < store.count()
    expected = route_analysis(store, RouteQuery(region="Sud-Ouest", entry_country="FR", tolerance_m=1000.0))
    assert f"{n} events in the selection" in summary and f"{expected.n_snapped} snapped" in summary
    assert "tolerance of 1000 m" in summary
    # A wider tolerance snaps at least as many events.
    narrow = route_analysis(store, RouteQuery(region="Sud-Ouest", entry_country="FR", tolerance_m=100.0))
    assert narrow.n_snapped <= expected.n_snapped
    # The links keep the filter.
    assert 'src="/routes/map?region=Sud-Ouest&amp;entry_country=FR&amp;tolerance=1000"' in html
    assert 'href="/routes/routes.gpkg?region=Sud-Ouest&amp;entry_country=FR&amp;tolerance=1000"' in html


@pytest.mark.parametrize(("query", "parameter"), [
    ("tolerance=0", "tolerance"), ("tolerance=abc", "tolerance"), ("tolerance=99999", "tolerance"),
    ("network_hotspots=maybe", "network_hotspots"), ("regoin=Nord", "regoin"), ("entry_country=XX", "entry_country"),
    ("quarter=2025Q1&from=2025-01-01", "quarter"), ("tolerance=1&tolerance=2", "tolerance"),
])
@pytest.mark.parametrize("path", ["/routes/", "/routes/map", "/routes/routes.gpkg", "/routes/flows.pdf"])
def test_parameter_errors_are_400_naming_the_parameter(logged_in, path, query, parameter):
    response = logged_in("ana").get(f"{path}?{query}")
    assert response.status_code == 400
    assert parameter in response.get_data(as_text=True)


def test_unknown_print_map_or_format_is_400(logged_in):
    c = logged_in("ana")
    for url, name in (("/routes/hotspots.png", "map"), ("/routes/corridors.svg", "format")):
        response = c.get(url, headers={"Accept": "application/json"})
        assert response.status_code == 400 and response.get_json()["parameter"] == name


def test_map_document_has_the_route_layers_and_its_own_policy(logged_in):
    c = logged_in("ana")
    response = c.get("/routes/map")
    assert response.status_code == 200 and "sandbox allow-scripts" in response.headers["Content-Security-Policy"]
    doc = response.get_data(as_text=True)
    assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", doc) == []
    for layer in ("Events per km of road", "Flows (direction of travel)", "Entry crossings (attributed events)"):
        assert f'"{layer}"' in doc or layer in doc
    assert "Network hot and cold spots" not in doc
    hot = c.get("/routes/map?network_hotspots=1").get_data(as_text=True)
    assert "Network hot and cold spots" in hot


def test_geopackage_download_holds_every_layer_and_is_audited(logged_in, store, tmp_path):
    c = logged_in("ana")
    response = c.get("/routes/routes.gpkg?quarter=2025Q1&network_hotspots=1")
    assert response.status_code == 200 and response.mimetype == "application/geopackage+sqlite3"
    assert 'filename="geo_ibm-routes.gpkg"' in response.headers["Content-Disposition"]
    path = tmp_path / "routes.gpkg"
    path.write_bytes(response.data)
    expected = route_analysis(store, RouteQuery(quarter="2025Q1", network_hotspots=True))
    names = [str(name) for name, _geom in pyogrio.list_layers(path)]
    assert "layer_styles" in names  # QGIS opens the layers styled
    assert [n for n in names if n != "layer_styles"] == [LAYER_NAMES[k] for k in expected.layers()]
    assert "route_lixels" in names
    for key, frame in expected.layers().items():
        got = pyogrio.read_dataframe(path, layer=LAYER_NAMES[key])
        assert len(got) == len(frame), key
        if len(frame):
            assert got.crs.to_epsg() == 2169
    segments = pyogrio.read_dataframe(path, layer="route_segments")
    assert segments["events"].sum() == expected.segments["events"].sum() == expected.n_snapped
    detail = _audits(store)[0]
    assert detail["what"] == "routes" and detail["format"] == "gpkg" and detail["filters"]["quarter"] == "2025Q1"
    assert "route_lixels" in detail["layers"]


@pytest.mark.parametrize(("kind", "title"), [("corridors", "Corridors: events per km of road"),
                                             ("flows", "Flows: entry crossings, interceptions, exits")])
def test_print_maps_are_served_and_audited(logged_in, store, tmp_path, kind, title):
    c = logged_in("ana")
    png = c.get(f"/routes/{kind}.png?region=Nord")
    assert png.status_code == 200 and png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")
    pdf = c.get(f"/routes/{kind}.pdf?quarter=2025Q1")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    path = tmp_path / "map.pdf"
    path.write_bytes(pdf.data)
    text = re.sub(r"\s+", " ", subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                                              text=True).stdout)
    assert title in text and "Luxembourg" in text and "2025-01-01 – 2025-03-31" in text
    assert "OpenStreetMap contributors, ODbL" in text
    audits = _audits(store)
    assert [(a["what"], a["format"]) for a in audits[:2]] == [(f"routes-{kind}", "pdf"), (f"routes-{kind}", "png")]


def test_french_page(logged_in):
    c = logged_in("ana")
    c.get("/lang/fr")
    html = _page(c, "/routes/")
    assert "Classement des corridors" in html and "Itinéraires" in html
    assert "Carte des itinéraires" in _page(c, "/routes/map")


@pytest.fixture
def job_app(store_path, tmp_path):
    from webapp import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(store_path),
                       "INSTANCE_PATH": str(tmp_path / "instance"), "ROUTE_INLINE_MAX_LIXELS": 0})


def _session(app, name: str):
    from webfixtures import login

    c = app.test_client()
    assert login(c, name).status_code == 302
    return c


def test_network_hotspots_on_a_large_network_run_as_a_job(job_app, store):
    c = _session(job_app, "ana")
    response = c.get("/routes/?network_hotspots=1&region=Centre-Est")
    assert response.status_code == 303
    job_url = response.headers["Location"]
    assert re.fullmatch(r"/routes/jobs/[\w-]+", job_url)
    # The same request while it runs (or waits) goes to the same job.
    again = c.get("/routes/?network_hotspots=1&region=Centre-Est")
    assert again.status_code in (200, 303)
    if again.status_code == 303:
        assert again.headers["Location"] == job_url
    deadline = time.monotonic() + 60
    while True:
        status = c.get(job_url + "/status").get_json()
        if status["finished"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status["state"] == "done"
    assert status["result"] == "/routes/?region=Centre-Est&network_hotspots=1"
    assert c.get(job_url).status_code == 303
    html = _page(c, status["result"])
    expected = route_analysis(store, RouteQuery(region="Centre-Est", network_hotspots=True))
    assert len(_table(html, "route-corridors")) == len(expected.corridors)
    assert "Network hot and cold spots" in _page(c, "/routes/map?region=Centre-Est&network_hotspots=1")
    # Without network hot spots the page runs inline; another analyst cannot see the job.
    assert c.get("/routes/?region=Centre-Est").status_code == 200
    other = _session(job_app, "ada")
    assert other.get(job_url).status_code == 404
    assert any(d.get("status") == "submitted" for d in _audits(store, "routes"))


def test_a_running_job_can_be_cancelled(job_app):
    from webfixtures import csrf_token

    c = _session(job_app, "ana")
    job_url = c.get("/routes/?network_hotspots=1&quarter=2025Q2").headers["Location"]
    page = c.get(job_url)
    token = csrf_token(c, "/routes/?quarter=2025Q2")
    response = c.post(job_url + "/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    deadline = time.monotonic() + 60
    while not (status := c.get(job_url + "/status").get_json())["finished"] and time.monotonic() < deadline:
        time.sleep(0.1)
    # A job may finish before the cancel arrives; either way the page said what it was doing.
    assert status["state"] in ("cancelled", "done")
    assert page.status_code in (200, 303)


def test_a_job_of_another_page_is_no_route_job(job_app):
    # The owner's quarterly report (or plan) job id on the route job views: not found, not shown
    # as a route analysis, not cancelled through them.
    from webfixtures import csrf_token

    from webapp.jobs import runner

    c = _session(job_app, "ana")
    with job_app.app_context():
        job = runner().submit("ana", "Quarterly report", lambda progress: "report", kind="report")
    assert c.get(f"/routes/jobs/{job.id}").status_code == 404
    assert c.get(f"/routes/jobs/{job.id}/status").status_code == 404
    token = csrf_token(c, "/routes/?quarter=2025Q2")
    assert c.post(f"/routes/jobs/{job.id}/cancel", data={"csrf_token": token}).status_code == 404
    assert not job.cancel_requested.is_set()


def test_an_installed_openstreetmap_network_is_credited_everywhere(logged_in, store, store_path, monkeypatch,
                                                                   tmp_path):
    from geo_ibm.network.installed import install_roads
    from geo_ibm.network.roads import shipped_roads

    # The installed roads live next to the store GEO_IBM_STORE names (as `geo-ibm serve` sets it).
    monkeypatch.setenv("GEO_IBM_STORE", str(store_path))
    c = logged_in("ana")
    before = re.search(r'id="route-network">(.*?)</p>', _page(c, "/routes/"), re.S).group(1)
    assert "ODbL" not in before
    roads = shipped_roads()
    roads = roads[roads["ref"].str.startswith("A")]  # the motorways only: another network
    install_roads(roads, source="luxembourg-test.osm.pbf", extract_date="2026-11-01")
    html = _page(c, "/routes/")
    network = re.search(r'id="route-network">(.*?)</p>', html, re.S).group(1)
    assert "luxembourg-test.osm.pbf (2026-11-01)" in network and "© OpenStreetMap contributors, ODbL" in network
    # Not the cached analysis of the shipped network: the ranking of the motorways alone.
    expected = route_analysis(store, RouteQuery())
    assert expected.network_source["kind"] == "osm"
    assert [r[1] for r in _table(html, "route-corridors")] == list(expected.corridors["ref"])
    assert all(ref.startswith("A") for ref in expected.corridors["ref"])
    path = tmp_path / "corridors.pdf"
    path.write_bytes(c.get("/routes/corridors.pdf").data)
    text = re.sub(r"\s+", " ", subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True,
                                              text=True).stdout)
    assert "Road network: © OpenStreetMap contributors, ODbL (2026-11-01)" in text
    items = c.get("/ogc/collections/route_segments/items?limit=1").get_json()
    assert items["attribution"] == "© OpenStreetMap contributors, ODbL 1.0"
    assert any(link["rel"] == "license" for link in items["links"])
    assert items["numberMatched"] == len(expected.segments)
