"""The Operations pages: a finished plan job saved as an operation, the list, one operation's evaluation (checked
against the library), its map and downloads; roles, CSRF, bad input and the audit trail."""
from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import openpyxl
import pandas as pd
import pyogrio
import pytest
from webfixtures import PASSWORD, USERS, csrf_token, login

from geo_ibm.accounts import add_user
from geo_ibm.planning import operations as ops
from geo_ibm.store import open_store

HEADER = "event_id;observed_at;lat;lon;location_kind;persons;smugglers;transport_mode;entry_country;operation_id\n"
SITES = "site_id;lat;lon\nA;49.6000;6.1330\nB;49.5000;5.9800\nC;49.8470;6.1040\n"
XSS_OP = "OP <b>"  # refused as a name: names are letters, digits, spaces, '.', '-', '_'


def _rows(prefix: str, lat: float, lon: float, stamp: str, n: int, op: str = "", persons: int = 1) -> list[str]:
    return [f"{prefix}{i};{stamp.format(i)};{lat:.4f};{lon:.4f};urban;{persons};0;car;DE;{op}\n" for i in range(n)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("webops")
    rows = [*_rows("A", 49.6000, 6.1330, "2025-03-07 22:{:02d}", 10), *_rows("B", 49.5000, 5.9800,
                                                                             "2025-03-03 09:{:02d}", 6),
            *_rows("R", 49.6001, 6.1331, "2025-03-14 21:{:02d}", 3, op="OP-Mars", persons=2),
            *_rows("Z", 49.8470, 6.1040, "2025-03-12 10:{:02d}", 2)]
    events = folder / "events.csv"
    events.write_text(HEADER + "".join(rows), encoding="utf-8")
    store = open_store(folder / "store.gpkg")
    store.init()
    assert store.import_file(events, user="fixture").accepted == 21
    for name, role in USERS.items():
        add_user(store, name, role, PASSWORD)
    sites = folder / "sites.csv"
    sites.write_text(SITES, encoding="utf-8")
    return folder / "store.gpkg", sites


@pytest.fixture
def app(planted, tmp_path):
    from webapp import create_app

    target = tmp_path / "store.gpkg"
    shutil.copyfile(planted[0], target)
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(target),
                      "INSTANCE_PATH": str(tmp_path / "instance"), "JOB_WORKERS": 1})
    yield app
    found = app.extensions.get("geo_ibm_jobs")
    if found is not None:
        found.close()


def _client(app, name: str):
    client = app.test_client()
    assert login(client, name).status_code == 302
    return client


def _plan_job(client, sites: Path) -> str:
    data = {"csrf_token": csrf_token(client, "/planning/"), "teams": "2", "radius": "1000", "shifts": "4",
            "from": "2025-03-01", "to": "2025-03-09", "candidates": (io.BytesIO(sites.read_bytes()), sites.name)}
    response = client.post("/planning/", data=data, content_type="multipart/form-data")
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    job_id = response.headers["Location"].rstrip("/").split("/")[-1]
    deadline = time.monotonic() + 60
    while not client.get(f"/planning/jobs/{job_id}/status").get_json()["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return job_id


def _save(client, job_id: str, **fields: str):
    data = {"csrf_token": csrf_token(client, f"/planning/jobs/{job_id}/result"), "job": job_id, "name": "OP-Mars",
            "from": "2025-03-10", "to": "2025-03-16"}
    data.update(fields)
    return client.post("/operations/save", data=data)


def test_roles(app):
    assert app.test_client().get("/operations/").status_code == 302  # to the login page
    for name, status in (("vic", 403), ("ana", 403), ("pia", 200), ("ada", 200)):
        assert _client(app, name).get("/operations/").status_code == status
    page = _client(app, "pia").get("/operations/").get_data(as_text=True)
    assert 'id="no-operations"' in page and 'href="/operations/"' in page and 'href="/planning/"' in page


def test_plan_saved_as_operation_then_evaluated_as_the_library_does(app, planted, tmp_path):
    pia = _client(app, "pia")
    job_id = _plan_job(pia, planted[1])
    result_page = pia.get(f"/planning/jobs/{job_id}/result").get_data(as_text=True)
    assert 'action="/operations/save"' in result_page
    saved = _save(pia, job_id)
    assert saved.status_code == 303 and saved.headers["Location"].endswith("/operations/OP-Mars")
    listing = pia.get("/operations/").get_data(as_text=True)
    assert "OP-Mars" in listing and "2025-03-10" in listing and "pia" in listing

    page = pia.get("/operations/OP-Mars")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    store = open_store(app.config["STORE_PATH"])
    op = ops.load_operation(store, "OP-Mars")
    assert op.shift_hours == 4 and sorted(op.shifts["site_id"]) == ["A", "B"]
    expected = ops.evaluate_operation(op, ops.evaluation_events(store, op))
    table = pd.read_html(io.StringIO(html), attrs={"id": "operation-sites"})[0]
    assert table["Site"].tolist() == ["A", "B", "elsewhere"]
    by_site = expected.sites.set_index("site_id")
    assert table.set_index("Site").loc["A", "Interceptions"] == by_site.at["A", "operation_events"] == 3
    assert table.set_index("Site").loc["A", "Team-hours"] == by_site.at["A", "team_hours"] == 4
    summary = pd.read_html(io.StringIO(html), attrs={"id": "operation-summary"})[0].set_index(0)[1]
    assert summary["Interceptions"] == "3" and summary["Interceptions per team-hour"] == "0.375"
    assert summary["Forecast of the plan"].startswith(f"{16 / 9 * 7:.1f}")
    assert "Fri 20-24" in html and "Mon 08-12" in html

    document = pia.get("/operations/OP-Mars/map")
    assert document.status_code == 200 and "leaflet" in document.get_data(as_text=True).lower()
    assert "cdn" not in document.get_data(as_text=True).lower()

    xlsx = pia.get("/operations/OP-Mars/evaluation.xlsx")
    assert xlsx.status_code == 200 and "attachment" in xlsx.headers["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(xlsx.data), read_only=True)
    assert "Operation sites" in book.sheetnames
    gpkg = pia.get("/operations/OP-Mars/evaluation.gpkg")
    path = tmp_path / "eval.gpkg"
    path.write_bytes(gpkg.data)
    meta = json.loads(pyogrio.read_info(path, layer="operation_sites")["layer_metadata"]["parameters"])
    assert meta["operation_events"] == 3 and meta["name"] == "OP-Mars"
    csv = pia.get("/operations/OP-Mars/evaluation.csv?baseline_weeks=4")
    assert csv.status_code == 200 and csv.data.decode("utf-8-sig").splitlines()[0].startswith("site_id,rank")

    audit = store.audit_log(limit=100)
    details = [d for a, d in zip(audit["action"], audit["detail"], strict=True) if a in ("operation", "export")]
    assert any(d.get("what") == "saved" and d.get("name") == "OP-Mars" for d in details)
    assert any(d.get("what") == "evaluated" for d in details)
    assert {d.get("format") for d in details if d.get("what") == "operation evaluation"} == {"xlsx", "gpkg", "csv"}


def test_bad_input_names_the_parameter(app, planted):
    pia = _client(app, "pia")
    job_id = _plan_job(pia, planted[1])
    for fields, name in (({"name": XSS_OP}, "name"), ({"from": "2025-03-20"}, "to"), ({"to": "tomorrow"}, "to"),
                         ({"job": "nope"}, "job")):
        response = _save(pia, job_id, **fields)
        assert response.status_code in (400, 404), (fields, response.status_code)
        text = response.get_data(as_text=True)
        assert name in text and "<b>" not in text.replace("&lt;b&gt;", "")
    assert _save(pia, job_id).status_code == 303
    again = _save(pia, job_id, name="op-mars")
    assert again.status_code == 400 and "exists already" in again.get_data(as_text=True)
    assert pia.post("/operations/save", data={"job": job_id, "name": "X", "from": "2025-03-10",
                                              "to": "2025-03-16"}).status_code == 400  # no CSRF token
    assert pia.get("/operations/nothing").status_code == 404
    bad_weeks = pia.get("/operations/OP-Mars?baseline_weeks=500")
    assert bad_weeks.status_code == 400 and "baseline_weeks" in bad_weeks.get_data(as_text=True)
    assert pia.get("/operations/OP-Mars/evaluation.exe").status_code in (400, 404)
    # another planner cannot save someone else's plan job
    add_user(open_store(app.config["STORE_PATH"]), "pol", "planner", PASSWORD)
    other = app.test_client()
    assert login(other, "pol").status_code == 302
    assert _save(other, job_id, name="OP-Other").status_code == 404


def test_an_operation_without_interceptions_has_a_page_and_a_map(app):
    import geopandas as gpd
    import shapely

    store = open_store(app.config["STORE_PATH"])
    sites = gpd.GeoDataFrame({"site_id": ["A"], "rank": [1]}, geometry=[shapely.Point(77_000, 75_000)], crs=2169)
    op = ops.operation_from_plan(sites, {"radius_m": 500}, name="OP-Empty", start="2026-01-05", end="2026-01-11")
    ops.save_operation(store, op, user="pia")
    pia = _client(app, "pia")
    page = pia.get("/operations/OP-Empty")
    assert page.status_code == 200 and "OP-Empty" in page.get_data(as_text=True)
    document = pia.get("/operations/OP-Empty/map")
    assert document.status_code == 200 and '<html lang="en">' in document.get_data(as_text=True)
