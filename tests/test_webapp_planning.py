"""The Planning pages on a small planted store: roles, CSRF, bad input, a real plan job against make_plan, cancel, limits, downloads, audit."""
from __future__ import annotations

import io
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
from webfixtures import PASSWORD, USERS, assert_released_files_are_gone, csrf_token, logged_in, login  # noqa: F401

from geo_ibm.accounts import add_user
from geo_ibm.errors import NotFoundError, ValidationError
from geo_ibm.planning.candidates import load_candidates
from geo_ibm.planning.demand import demand_from_events
from geo_ibm.planning.plan import make_plan
from geo_ibm.planning.progress import Cancelled, plan_messages
from geo_ibm.store import open_store
from webapp.jobs import CANCELLED, DONE, FAILED, JobLimitError, JobRunner, runner

HEADER = "event_id;observed_at;lat;lon;location_kind;persons;smugglers;transport_mode;entry_country;notes\n"
# Four candidates; 10 events at A on Friday nights, 6 at B on Monday mornings, 3 at C, none at D.
SITES = "site_id;lat;lon;required\nA;49.6000;6.1330;\nB;49.5000;5.9800;\nC;49.8470;6.1040;\nD;50.0500;6.0000;\n"
PLACES = {"A": (49.6000, 6.1330, "2025-03-07 22:{:02d}", 10), "B": (49.5000, 5.9800, "2025-03-03 09:{:02d}", 6),
          "C": (49.8470, 6.1040, "2025-03-04 14:{:02d}", 3)}
XSS_ID = "<b>x</b>`${1}`"
HEADINGS = {"Rank": "rank", "Events": "events", "Persons": "persons", "Cumulative share of events (%)": "share_events",
            "Best windows": "windows"}
"""The result table's headings and the plan's column names."""


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store of 19 planted events with one account per role, and the four-site candidate CSV."""
    folder = tmp_path_factory.mktemp("webplan")
    rows = []
    for site, (lat, lon, stamp, n) in PLACES.items():
        for i in range(n):
            rows.append(f"{site}{i};{stamp.format(i)};{lat + 0.001 * (i % 3):.4f};{lon:.4f};urban;2;0;car;DE;x\n")
    events = folder / "events.csv"
    events.write_text(HEADER + "".join(rows), encoding="utf-8")
    store_path = folder / "store.gpkg"
    store = open_store(store_path)
    store.init()
    assert store.import_file(events, user="fixture").accepted == 19
    for name, role in USERS.items():
        add_user(store, name, role, PASSWORD)
    sites = folder / "sites.csv"
    sites.write_text(SITES, encoding="utf-8")
    return store_path, sites


@pytest.fixture
def app(planted: tuple[Path, Path], tmp_path: Path):
    from webapp import create_app

    target = tmp_path / "store.gpkg"
    shutil.copyfile(planted[0], target)
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(target),
                      "INSTANCE_PATH": str(tmp_path / "instance"), "JOB_WORKERS": 1, "JOB_PER_USER": 2,
                      "JOB_MAX_QUEUED": 2})
    yield app
    found = app.extensions.get("geo_ibm_jobs")
    if found is not None:
        found.close()


def _form(client, sites: Path | None, **fields: str) -> dict:
    data: dict = {"csrf_token": csrf_token(client, "/planning/"), "teams": "2", "radius": "1000"}
    data.update(fields)
    if sites is not None:
        data["candidates"] = (io.BytesIO(sites.read_bytes()), sites.name)
    return data


def _post(client, sites: Path | None, **fields: str):
    return client.post("/planning/", data=_form(client, sites, **fields), content_type="multipart/form-data")


def _wait(client, location: str, *, timeout: float = 60.0) -> dict:
    job_id = location.rstrip("/").split("/")[-1]
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(f"/planning/jobs/{job_id}/status").get_json()
        if status["finished"] or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


# --------------------------------------------------------------------------- roles and CSRF


@pytest.mark.parametrize(("name", "allowed"), [("vic", False), ("ana", False), ("pia", True), ("ada", True)])
def test_only_planners_and_admins_plan(logged_in, planted, name: str, allowed: bool) -> None:
    client = logged_in(name)
    page = client.get("/planning/")
    assert page.status_code == (200 if allowed else 403)
    if allowed:
        text = page.get_data(as_text=True)
        assert 'name="teams"' in text and 'name="candidates"' in text and 'type="file"' in text
    else:
        token = csrf_token(client, "/overview")
        refused = client.post("/planning/", data={"csrf_token": token, "teams": "2", "radius": "1000"})
        assert refused.status_code == 403


def test_login_required(app) -> None:
    response = app.test_client().get("/planning/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_post_without_the_csrf_token_is_refused(logged_in, planted) -> None:
    client = logged_in("pia")
    response = client.post("/planning/", data={"teams": "2", "radius": "1000"})
    assert response.status_code == 400 and "form expired" in response.get_data(as_text=True)
    assert runner(client.application).jobs_of("pia") == []


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("fields", "named"), [
    ({"teams": "9"}, "teams"),
    ({"teams": "two"}, "teams"),
    ({"radius": "0"}, "radius"),
    ({"radius": "200000"}, "radius"),
    ({"from": "2024-01-01", "to": "2024-01-31"}, "demand"),
    ({"shifts": "5"}, "shifts"),
    ({"model": "lscp", "share": "1.5"}, "share"),
    ({"time_limit": "100000"}, "time_limit"),
    ({"model": "simplex"}, "model"),
    ({"cell": "1"}, "cell"),
])
def test_bad_form_input_is_a_400_naming_the_parameter(logged_in, planted, fields: dict, named: str) -> None:
    client = logged_in("pia")
    response = _post(client, planted[1], **fields)
    text = response.get_data(as_text=True)
    assert response.status_code == 400, text[:500]
    assert named in text
    assert runner(client.application).jobs_of("pia") == []


def test_bad_candidate_rows_are_listed_with_row_and_column(logged_in, tmp_path: Path) -> None:
    bad = tmp_path / "bad_sites.csv"
    bad.write_text("site_id;lat;lon;required\nA;49.6;6.13;\nA;49.5;5.98;\nC;north;6.1;\nD;49.8;6.1;maybe\n",
                   encoding="utf-8")
    client = logged_in("pia")
    response = _post(client, bad)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "candidates: bad_sites.csv has 3 bad value(s)" in text
    assert "row 3, column &#39;site_id&#39;: duplicate id" in text
    assert "row 4, column &#39;lat&#39;: not a coordinate number" in text
    assert "row 5, column &#39;required&#39;: not a yes/no flag" in text


def test_the_json_error_names_the_parameter(logged_in, planted) -> None:
    client = logged_in("pia")
    response = client.post("/planning/", data=_form(client, planted[1], teams="9"),
                           content_type="multipart/form-data", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["parameter"] == "teams"


# --------------------------------------------------------------------------- a real plan


def _reference_plan(store_path: Path, sites: Path):
    events = open_store(store_path).events()
    candidates = load_candidates(sites)
    return make_plan(candidates, demand_from_events(events, weight="events", cell=250.0), teams=2, radius=1000.0,
                     time_limit=30.0)


def test_a_plan_job_runs_to_the_same_result_as_make_plan(app, logged_in, planted) -> None:
    client = logged_in("pia")
    response = _post(client, planted[1])
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith("/planning/jobs/")
    status = _wait(client, location)
    assert status["state"] == DONE and status["fraction"] == 1.0 and status["result"].endswith("/result")
    # The job page of a finished plan is its result.
    assert client.get(location).headers["Location"] == status["result"]

    reference = _reference_plan(Path(app.config["STORE_PATH"]), planted[1])
    assert reference.summary["sites"] == ["A", "B"] and reference.summary["objective"] == 16
    page = client.get(status["result"])
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    rows = pd.read_html(io.StringIO(text), attrs={"id": "plan-sites"})[0].rename(columns=HEADINGS)
    assert rows["site_id"].tolist() == reference.sites["site_id"].tolist() == ["A", "B"]
    assert rows["events"].tolist() == reference.sites["events"].tolist() == [10, 6]
    assert rows["share_events"].tolist() == pytest.approx(reference.sites["share_events"].round(1).tolist())
    assert rows["windows"].iloc[0] == reference.sites["windows"].iloc[0] and rows["windows"].iloc[0].startswith("Fri 20-24")
    assert f"{reference.summary['covered_share_events']:.1f} %" in text  # 84.2 %

    job_id = location.split("/")[-1]
    # GeoPackage: both layers, the same sites and demand as the reference.
    gpkg = client.get(f"/planning/jobs/{job_id}/plan.gpkg")
    assert gpkg.status_code == 200 and gpkg.data[:16] == b"SQLite format 3\x00"
    path = Path(app.instance_path) / "plan.gpkg"
    path.write_bytes(gpkg.data)
    assert {name for name, _ in pyogrio.list_layers(path)} == {"plan_sites", "plan_demand", "layer_styles"}
    sites = pyogrio.read_dataframe(path, layer="plan_sites")
    assert sites["site_id"].tolist() == ["A", "B"] and sites["persons"].tolist() == [20, 12]
    assert sites.crs.to_epsg() == 2169
    demand = pyogrio.read_dataframe(path, layer="plan_demand")
    assert int(demand.loc[demand["site"] == "", "events"].sum()) == 3
    assert sorted(demand["weight"].tolist()) == sorted(reference.demand["weight"].tolist())
    # CSV: ranked sites with lat/lon.
    csv = client.get(f"/planning/jobs/{job_id}/plan.csv")
    table = pd.read_csv(io.BytesIO(csv.data))
    assert table["site_id"].tolist() == ["A", "B"] and table["lat"].iloc[0] == pytest.approx(49.6, abs=0.002)
    # PDF and PNG print maps.
    pdf = client.get(f"/planning/jobs/{job_id}/plan.pdf")
    assert pdf.status_code == 200 and pdf.data[:5] == b"%PDF-" and pdf.mimetype == "application/pdf"
    if shutil.which("pdftotext"):
        words = subprocess.run(["pdftotext", "-", "-"], input=pdf.data, capture_output=True, check=True).stdout.decode()
        assert "Control site plan" in words and "2 sites, radius 1000 m, 84.2 % of events covered" in words
        assert "Coverage radius (1 km)" in words and "Covered demand" in words
    png = client.get(f"/planning/jobs/{job_id}/plan.png")
    assert png.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/planning/jobs/{job_id}/plan.xlsx").status_code == 400
    # The map document: its own CSP, the sites and the coverage circles.
    document = client.get(f"/planning/jobs/{job_id}/map")
    assert document.status_code == 200 and "sandbox allow-scripts" in document.headers["Content-Security-Policy"]
    body = document.get_data(as_text=True)
    assert "Chosen control sites" in body and "Coverage radius" in body and '"site_id": "A"' in body

    audit = open_store(Path(app.config["STORE_PATH"])).audit_log(limit=50)
    plans = {d["status"]: (user, d) for user, d in zip(audit.loc[audit["action"] == "plan", "user"],
                                                        audit.loc[audit["action"] == "plan", "detail"], strict=True)}
    assert plans["submitted"][0] == plans["done"][0] == "pia"
    assert plans["submitted"][1]["job"] == job_id and plans["submitted"][1]["teams"] == 2
    assert plans["done"][1]["sites"] == ["A", "B"] and plans["done"][1]["objective"] == 16
    assert plans["done"][1]["candidates"] == "sites.csv" and plans["done"][1]["radius_m"] == 1000
    exports = [d for a, d in zip(audit["action"], audit["detail"], strict=True) if a == "export" and d.get("what") == "plan"]
    assert sorted(d["format"] for d in exports) == ["csv", "gpkg", "pdf", "png"]
    assert all(d["job"] == job_id and d["sites"] == ["A", "B"] for d in exports)


def test_space_time_plan_shows_the_team_shifts(logged_in, planted) -> None:
    client = logged_in("pia")
    response = _post(client, planted[1], shifts="4", teams="2", method="heuristic")
    status = _wait(client, response.headers["Location"])
    assert status["state"] == DONE, status
    text = client.get(status["result"]).get_data(as_text=True)
    pairs = pd.read_html(io.StringIO(text), attrs={"id": "plan-pairs"})[0]
    # The planted hours: Friday 20-24 at A, Monday 08-12 at B.
    assert pairs.iloc[:, 0].tolist() == ["A", "B"] and pairs.iloc[:, 1].tolist() == ["Fri 20-24", "Mon 08-12"]


def test_user_text_is_escaped_in_the_map_and_the_table(logged_in, tmp_path: Path) -> None:
    sites = tmp_path / "sites.csv"
    sites.write_text(SITES.replace("\nA;", f"\n{XSS_ID};"), encoding="utf-8")
    client = logged_in("pia")
    status = _wait(client, _post(client, sites).headers["Location"])
    assert status["state"] == DONE, status
    page = client.get(status["result"]).get_data(as_text=True)
    assert XSS_ID not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    job_id = status["id"]
    document = client.get(f"/planning/jobs/{job_id}/map").get_data(as_text=True)
    # Escaped for HTML and the JavaScript template literals of the tooltips, then JSON-encoded.
    assert "<b>x</b>" not in document and "${1}" not in document
    assert '"site_id": "\\u0026lt;b\\u0026gt;x\\u0026lt;/b\\u0026gt;\\u0026#96;\\u0026#36;{1}' in document


def test_a_failed_solve_is_shown_on_the_job_page_and_audited(app, logged_in, planted) -> None:
    client = logged_in("pia")
    # Set covering of all demand: C and D lie apart, and no 10 m circle reaches every event.
    response = _post(client, planted[1], model="lscp", teams="", share="1", radius="10")
    status = _wait(client, response.headers["Location"])
    assert status["state"] == FAILED and status["error"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The plan could not be made." in page and status["error"].split(":")[0] in page
    audit = open_store(Path(app.config["STORE_PATH"])).audit_log(limit=20)
    refused = [d for d in audit.loc[audit["action"] == "plan", "detail"] if d["status"] == "refused"]
    assert len(refused) == 1 and refused[0]["error"] == status["error"]


# --------------------------------------------------------------------------- cancel, limits, ownership


def _blocker(gate: threading.Event, started: threading.Event):
    def work(progress):
        started.set()
        while not gate.wait(0.02):
            progress(0.5, "waiting for the gate")
        return "released"

    return work


def test_cancel_a_waiting_plan_and_a_running_job(app, logged_in, planted) -> None:
    client = logged_in("pia")
    jobs = runner(app)
    gate, started = threading.Event(), threading.Event()
    blocker = jobs.submit("pia", "blocker", _blocker(gate, started))  # holds the only worker
    assert started.wait(10)
    response = _post(client, planted[1])
    location = response.headers["Location"]
    job_id = location.split("/")[-1]
    assert client.get(f"/planning/jobs/{job_id}/status").get_json()["state"] == "queued"
    page = client.get(location).get_data(as_text=True)
    assert 'id="cancel-form"' in page and "planning.js" in page and 'id="job-reload"' in page
    token = csrf_token(client, location)
    assert client.post(f"/planning/jobs/{job_id}/cancel").status_code == 400  # no CSRF token
    cancelled = client.post(f"/planning/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert client.get(f"/planning/jobs/{job_id}/status").get_json()["state"] == CANCELLED
    assert "nothing was produced" in client.get(location).get_data(as_text=True)
    assert client.get(f"/planning/jobs/{job_id}/result").status_code == 400
    # The running job stops at its next progress report.
    jobs.cancel(blocker.id, owner="pia")
    for _ in range(200):
        if blocker.is_finished:
            break
        time.sleep(0.02)
    assert blocker.state == CANCELLED and blocker.result is None
    audit = open_store(Path(app.config["STORE_PATH"])).audit_log(limit=20)
    assert [d["job"] for d in audit.loc[audit["action"] == "plan", "detail"] if d["status"] == "cancel requested"] == [job_id]


def test_a_full_queue_is_refused_with_429_naming_the_limit(app, logged_in, planted) -> None:
    pia, ada = logged_in("pia"), logged_in("ada")
    jobs = runner(app)
    gate, started = threading.Event(), threading.Event()
    jobs.submit("ada", "blocker", _blocker(gate, started))  # holds the only worker
    assert started.wait(10)
    try:
        assert _post(pia, planted[1]).status_code == 303
        assert _post(ada, planted[1]).status_code == 303
        refused = _post(pia, planted[1])
        text = refused.get_data(as_text=True)
        assert refused.status_code == 429 and "JOB_MAX_QUEUED = 2" in text
        as_json = pia.post("/planning/", data=_form(pia, planted[1]), content_type="multipart/form-data",
                           headers={"Accept": "application/json"})
        assert as_json.status_code == 429 and as_json.get_json()["parameter"] == "jobs"
    finally:
        gate.set()


def test_another_account_cannot_see_or_cancel_a_job(logged_in, planted) -> None:
    pia, ada = logged_in("pia"), logged_in("ada")
    status = _wait(pia, _post(pia, planted[1]).headers["Location"])
    job_id = status["id"]
    for url in (f"/planning/jobs/{job_id}", f"/planning/jobs/{job_id}/status", f"/planning/jobs/{job_id}/result",
                f"/planning/jobs/{job_id}/plan.csv", f"/planning/jobs/{job_id}/map"):
        assert ada.get(url).status_code == 404, url
    token = csrf_token(ada, "/planning/")
    assert ada.post(f"/planning/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 404
    assert pia.get("/planning/jobs/not-a-job/status").status_code == 404


# --------------------------------------------------------------------------- the runner and the progress hook


def test_runner_limits_and_expiry() -> None:
    now = [0.0]
    jobs = JobRunner(workers=1, max_queued=1, per_user=5, keep_s=10.0, max_kept=2, clock=lambda: now[0])
    gate, started = threading.Event(), threading.Event()
    try:
        jobs.submit("u", "blocker", _blocker(gate, started))
        assert started.wait(10)
        waiting = jobs.submit("u", "second", lambda progress: 42)
        with pytest.raises(JobLimitError, match="JOB_MAX_QUEUED = 1") as info:
            jobs.submit("v", "third", lambda progress: 0)
        assert info.value.http_status == 429 and info.value.problems[0].column == "jobs"
        gate.set()
        for _ in range(200):
            if waiting.is_finished:
                break
            time.sleep(0.02)
        assert waiting.state == DONE and waiting.result == 42 and waiting.fraction == 1.0
        mine = JobRunner(workers=1, per_user=1)
        try:
            hold = threading.Event()
            mine.submit("u", "one", lambda progress: hold.wait(10))
            with pytest.raises(JobLimitError, match="JOB_PER_USER = 1"):
                mine.submit("u", "two", lambda progress: 0)
            mine.submit("w", "other user", lambda progress: 0)
        finally:
            mine.close()
        now[0] = 11.0
        with pytest.raises(NotFoundError, match="not found"):
            jobs.get(waiting.id, owner="u")
    finally:
        gate.set()
        jobs.close()


def test_one_account_never_holds_every_worker() -> None:
    """Two workers: an account's second job waits while its first runs, and another account's starts at once."""
    jobs = JobRunner(workers=2, max_queued=4, per_user=3)
    gate, started = threading.Event(), threading.Event()
    other_ran = threading.Event()
    try:
        first = jobs.submit("vic", "first", _blocker(gate, started))
        assert started.wait(10)
        second = jobs.submit("vic", "second", lambda progress: "vic again")
        time.sleep(0.3)  # a free worker would have started it by now
        assert first.state == "running" and second.state == "queued"
        other = jobs.submit("ana", "other account", lambda progress: other_ran.set() or "ana")
        assert other_ran.wait(10)
        for _ in range(200):
            if other.is_finished:
                break
            time.sleep(0.02)
        assert other.state == DONE and second.state == "queued"
        gate.set()
        for _ in range(200):
            if second.is_finished:
                break
            time.sleep(0.02)
        assert first.state == DONE and second.state == DONE and second.result == "vic again"
    finally:
        gate.set()
        jobs.close()


def test_a_library_error_fails_the_job_with_its_message_and_problems() -> None:
    jobs = JobRunner(workers=1)

    def work(progress):
        progress(0.3, "checking")
        raise ValidationError("teams: too many", [])

    try:
        job = jobs.submit("u", "bad", work)
        for _ in range(200):
            if job.is_finished:
                break
            time.sleep(0.02)
        assert job.state == FAILED and job.error == "teams: too many" and job.fraction == pytest.approx(0.3)
    finally:
        jobs.close()


def test_each_page_lists_only_the_jobs_of_its_kind() -> None:
    jobs = JobRunner(workers=1, per_user=5)
    try:
        plan = jobs.submit("u", "a plan", lambda progress: 1, kind="plan")
        report = jobs.submit("u", "a report", lambda progress: 2, kind="report")
        jobs.submit("v", "another's plan", lambda progress: 3, kind="plan")
        assert [j.id for j in jobs.jobs_of("u", kind="plan")] == [plan.id]
        assert [j.id for j in jobs.jobs_of("u", kind="report")] == [report.id]
        assert {j.id for j in jobs.jobs_of("u")} == {plan.id, report.id}
    finally:
        jobs.close()


def test_plan_messages_map_make_plan_steps_to_fractions(planted) -> None:
    store_path, sites = planted
    seen: list[tuple[float, str]] = []
    make_plan(load_candidates(sites), demand_from_events(open_store(store_path).events(), cell=250.0), teams=2,
              radius=1000.0, progress=plan_messages(lambda f, m: seen.append((f, m)), start=0.1, end=0.9))
    assert [round(f, 3) for f, _m in seen] == [0.18, 0.34]
    assert seen[0][1].startswith("coverage") and seen[1][1].startswith("solving mclp")

    def stop(_fraction: float, _message: str) -> None:
        raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        make_plan(load_candidates(sites), demand_from_events(open_store(store_path).events(), cell=250.0), teams=2,
                  radius=1000.0, progress=plan_messages(stop))


def test_shipped_candidates_plan_from_the_form_defaults(logged_in) -> None:
    client = logged_in("pia")
    response = _post(client, None, teams="3", radius="3000")
    status = _wait(client, response.headers["Location"])
    assert status["state"] == DONE, status
    text = client.get(status["result"]).get_data(as_text=True)
    rows = pd.read_html(io.StringIO(text), attrs={"id": "plan-sites"})[0].rename(columns=HEADINGS)
    assert len(rows) == 3 and rows["rank"].tolist() == [1, 2, 3]


def test_a_plan_cancelled_between_its_steps_stops_and_is_audited(app, planted) -> None:
    from webapp.planning import PlanRequest, plan_job

    store_path = Path(app.config["STORE_PATH"])
    candidates = load_candidates(planted[1])
    demand = demand_from_events(open_store(store_path).events(), cell=250.0)
    request = PlanRequest(candidates, demand, 2, 1000.0, "mclp", None, None, "exact", 30.0, {"teams": 2})
    work = plan_job(request, store_location=str(store_path), user="pia", workdir=Path(app.instance_path))
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if message.startswith("solving"):  # the user cancelled while the coverage was built
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        work(progress)
    assert [m.split(":")[0].split(" ")[0] for m in seen] == ["planning", "coverage", "solving"]
    detail = open_store(store_path).audit_log(limit=1)["detail"].iloc[0]
    assert detail["status"] == "cancelled" and detail["teams"] == 2


def test_plan_files_live_on_disk_and_go_with_their_job(planted, tmp_path: Path) -> None:
    """A plan's GeoPackage, CSV, map document and print maps are files in the instance's scratch folder, built
    once per language; past JOB_KEPT_DISK_MB the older plan is forgotten with its folder, and its downloads 404."""
    from webapp import create_app

    target = tmp_path / "store.gpkg"
    shutil.copyfile(planted[0], target)
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(target),
                      "INSTANCE_PATH": str(tmp_path / "instance"), "JOB_WORKERS": 1, "JOB_KEPT_DISK_MB": 0.001})
    try:
        client = app.test_client()
        login(client, "pia")
        first = _post(client, planted[1]).headers["Location"]
        assert _wait(client, first)["state"] == DONE
        job = runner(app).get(first.rsplit("/", 1)[1], owner="pia")
        folder = job.result.files.folder
        assert folder.parent == tmp_path / "instance" / "uploads"
        assert {p.name for p in folder.iterdir()} == {"plan.gpkg", "plan.csv"}
        base = f"/planning/jobs/{job.id}"
        gpkg = client.get(f"{base}/plan.gpkg")
        assert gpkg.data == (folder / "plan.gpkg").read_bytes() and gpkg.headers["Cache-Control"] == "no-store"
        assert gpkg.headers["Content-Disposition"] == "attachment; filename=geo_ibm-plan.gpkg"
        pdf = client.get(f"{base}/plan.pdf")
        assert pdf.data[:5] == b"%PDF-" and pdf.data == (folder / "print-en.pdf").read_bytes()
        assert client.get(f"{base}/plan.pdf").data == pdf.data  # built once, sent again from its file
        assert client.get(f"{base}/map").status_code == 200
        assert client.get(f"{base}/map", headers={"Accept-Language": "fr"}).status_code == 200
        assert {p.name for p in folder.iterdir()} == {"plan.gpkg", "plan.csv", "print-en.pdf", "map-en.html",
                                                      "map-fr.html"}
        assert job.result.disk_bytes == sum(p.stat().st_size for p in folder.iterdir()) > 10_000
        second = _post(client, planted[1], teams="1").headers["Location"]
        assert _wait(client, second)["state"] == DONE
        # the newest plan is kept whatever its size; the older one went with its files
        assert not folder.exists()
        assert client.get(f"{base}/plan.csv").status_code == 404
        assert client.get(f"{second}/plan.csv").status_code == 200
        assert_released_files_are_gone(app, client, second, "pia", ("/map", "/plan.pdf", "/plan.gpkg"))
    finally:
        runner(app).close()
    assert not any(p.name.startswith("result-") for p in (tmp_path / "instance" / "uploads").iterdir())
