"""The quarterly report in the web app: roles and editions, the build job (progress, cancel, limits), archived versions and audited downloads, recipients and sending by e-mail."""
from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
from mailfixtures import Handler, smtp_server
from webfixtures import PASSWORD, base_store, csrf_token, logged_in, store_path  # noqa: F401

from geo_ibm.reportdoc.archive import ReportArchive
from geo_ibm.store import open_store

QUARTER = "2026Q2"


@pytest.fixture
def app(store_path, tmp_path, monkeypatch):
    from webapp import create_app

    for name in ("GEO_IBM_REPORTS_DIR", "GEO_IBM_SMTP_HOST", "GEO_IBM_SMTP_PORT", "GEO_IBM_SMTP_USER",
                 "GEO_IBM_SMTP_PASSWORD", "GEO_IBM_SMTP_CAFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEO_IBM_SMTP_FROM", "reports@police.example.lu")
    monkeypatch.setenv("GEO_IBM_SMTP_TLS", "none")
    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "STORE_PATH": str(store_path),
                      "INSTANCE_PATH": str(tmp_path / "instance"), "JOB_WORKERS": 1, "JOB_PER_USER": 1})
    yield app
    found = app.extensions.get("geo_ibm_jobs")
    if found is not None:
        found.close()


@pytest.fixture
def archive(store_path) -> ReportArchive:
    return ReportArchive(store_path.parent / "reports")


def _build(client, *, region: str = "Nord", lang: str = "en", **more: str) -> Any:
    data = {"csrf_token": csrf_token(client, "/reports/quarterly"), "quarter": QUARTER, "region": region, "lang": lang}
    data.update(more)
    return client.post("/reports/quarterly", data=data)


def _wait(client, location: str, *, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(location + "/status").get_json()
        if status["finished"] or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _built(client, **kw: str) -> str:
    """Build a report through the form and wait for it; the version page's URL."""
    response = _build(client, **kw)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    status = _wait(client, response.location)
    assert status["state"] == "done", status
    return str(status["result"])


def _audit(store_path, action: str) -> list[dict]:
    log = open_store(store_path).audit_log(limit=200)
    rows = log[log["action"] == action]
    return [dict(json.loads(d) if isinstance(d, str) else d, user=u) for d, u in zip(rows["detail"], rows["user"])]


# --------------------------------------------------------------------------- roles and editions


@pytest.mark.parametrize(("name", "editions"), [("vic", []), ("ana", ["full", "aggregates"]), ("ada", ["full", "aggregates"])])
def test_page_form_per_role(logged_in, name: str, editions: list[str]) -> None:
    page = logged_in(name).get("/reports/quarterly")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'name="quarter"' in text and f'<option value="{QUARTER}">' in text and 'value="Sud-Ouest"' in text
    assert re.findall(r'<select name="edition">(.*?)</select>', text, re.S) == ([] if not editions else [
        "".join(f'<option value="{e}">' + ("Full (analysts)" if e == "full" else "Aggregates only (protected)")
                + "</option>" for e in editions)])
    assert ('id="edition-note"' in text) == (not editions)
    assert ("/reports/recipients" in text) == (name == "ada")


def test_login_required(app) -> None:
    response = app.test_client().get("/reports/quarterly")
    assert response.status_code == 302 and "/login" in response.location


def test_viewer_builds_and_reads_the_protected_edition_only(logged_in, archive, store_path) -> None:
    viewer, analyst = logged_in("vic"), logged_in("ana")
    refused = _build(viewer, edition="full")
    assert refused.status_code == 403 and "full edition is for analysts" in refused.get_data(as_text=True)
    url = _built(viewer)
    assert url == f"/reports/quarterly/{QUARTER}/Nord/en/v1"
    [version] = archive.versions()
    assert version.edition == "aggregates" and version.created_by == "vic" and version.disclosure is not None
    full_url = _built(analyst)
    assert full_url.endswith("/v2") and archive.versions()[0].edition == "full"
    listing = viewer.get("/reports/quarterly").get_data(as_text=True)
    assert url in listing and full_url not in listing
    assert viewer.get(full_url).status_code == 403
    assert viewer.get(full_url + "/report.pdf").status_code == 403
    pdf = viewer.get(url + "/report.pdf")
    assert pdf.status_code == 200 and pdf.data == archive.read(version, "pdf")
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="geo_ibm-report-{QUARTER}-Nord-en-v1.pdf"'
    both = analyst.get("/reports/quarterly").get_data(as_text=True)
    assert url in both and full_url in both
    html = analyst.get(full_url + "/report.html")
    assert html.status_code == 200 and html.mimetype == "text/html" and html.headers["Content-Disposition"].startswith(
        "attachment;")
    downloads = [r for r in _audit(store_path, "export") if r.get("what") == "quarterly report"]
    assert sorted((r["user"], r["version"], r["format"], r["edition"]) for r in downloads) == [
        ("ana", f"{QUARTER}/Nord/en/v2", "html", "full"), ("vic", f"{QUARTER}/Nord/en/v1", "pdf", "aggregates")]
    builds = [(r["user"], r["status"]) for r in _audit(store_path, "report build")]
    assert builds.count(("vic", "done")) == 1 and builds.count(("ana", "done")) == 1
    assert builds.count(("vic", "submitted")) == 1


def test_protected_edition_differs_from_the_full_one(logged_in, archive) -> None:
    analyst = logged_in("ana")
    _built(analyst, region="national", edition="full")
    _built(analyst, region="national", edition="aggregates")
    protected, full = archive.versions(area="national")
    assert (protected.edition, full.edition) == ("aggregates", "full")
    full_text, protected_text = archive.read(full, "html").decode(), archive.read(protected, "html").decode()
    assert "Overview of the interceptions" in full_text and "Overview of the interceptions" not in protected_text
    assert "for readers of aggregates" in protected_text


@pytest.mark.parametrize(("field", "value", "status", "message"), [
    ("quarter", "2026Q9", 400, "quarter"), ("region", "Ost", 400, "unknown region"), ("lang", "de", 400, "lang"),
    ("edition", "draft", 400, "edition"), ("colour", "red", 400, "colour"),
])
def test_bad_form_fields_are_named(logged_in, archive, field: str, value: str, status: int, message: str) -> None:
    response = _build(logged_in("ana"), **{field: value})
    assert response.status_code == status and message in response.get_data(as_text=True)
    assert not archive.versions()


def test_form_needs_csrf(logged_in, archive) -> None:
    response = logged_in("ana").post("/reports/quarterly", data={"quarter": QUARTER, "region": "Nord", "lang": "en"})
    assert response.status_code == 400 and not archive.versions()


def test_french_report_in_the_job(logged_in, archive) -> None:
    url = _built(logged_in("ana"), region="Capitale", lang="fr")
    assert url == f"/reports/quarterly/{QUARTER}/Capitale/fr/v1"
    html = archive.read(archive.versions()[0], "html").decode()
    assert "Rapport trimestriel d&#x27;analyse IBM · Région de police Capitale" in html


# --------------------------------------------------------------------------- the job


def test_job_page_works_without_javascript_and_redirects_when_done(logged_in) -> None:
    client = logged_in("ana")
    response = _build(client)
    page = client.get(response.location)
    if page.status_code == 200:  # still running: the page says how far it is and how to follow it
        text = page.get_data(as_text=True)
        assert '<progress id="job-progress"' in text and 'id="job-reload"' in text and 'id="cancel-form"' in text
    status = _wait(client, response.location)
    done = client.get(response.location)
    assert done.status_code == 303 and done.location == status["result"]


def test_others_jobs_and_unknown_jobs_are_not_found(logged_in) -> None:
    owner, other = logged_in("ana"), logged_in("pia")
    response = _build(owner)
    assert other.get(response.location).status_code == 404
    assert other.get(response.location + "/status").status_code == 404
    assert owner.get("/reports/quarterly/jobs/nope").status_code == 404
    _wait(owner, response.location)


def test_one_unfinished_job_per_user_then_refused(logged_in, app) -> None:
    from webapp.jobs import runner

    client = logged_in("ana")
    gate = threading.Event()
    with app.app_context():
        # Hold the one worker so the report job stays unfinished while the second is asked for.
        runner().submit("someone", "hold", lambda progress: gate.wait(30))
    first = _build(client)
    assert first.status_code == 303
    second = _build(client)
    assert second.status_code == 429 and "JOB_PER_USER" in second.get_data(as_text=True)
    cancel = client.post(first.location + "/cancel", data={"csrf_token": csrf_token(client, "/reports/quarterly")})
    assert cancel.status_code == 303
    gate.set()
    assert _wait(client, first.location)["state"] == "cancelled"
    assert "nothing was archived" in client.get(first.location).get_data(as_text=True)


def test_a_job_of_another_page_is_not_a_report_job(logged_in, app) -> None:
    from webapp.jobs import runner

    client = logged_in("ana")
    with app.app_context():
        job = runner().submit("ana", "Plan: mclp", lambda progress: None)
    assert client.get(f"/reports/quarterly/jobs/{job.id}").status_code == 404


# --------------------------------------------------------------------------- recipients and sending


def test_recipients_page_is_for_admins(logged_in) -> None:
    for name in ("vic", "ana", "pia"):
        client = logged_in(name)
        assert client.get("/reports/recipients").status_code == 403
        token = csrf_token(client, "/reports/quarterly")
        assert client.post("/reports/recipients", data={"csrf_token": token, "recipients_Nord": "a@b.lu"}).status_code == 403


def test_admin_sets_recipients_all_checked_before_any_is_saved(logged_in, archive, store_path) -> None:
    admin = logged_in("ada")
    token = csrf_token(admin, "/reports/recipients")
    saved = admin.post("/reports/recipients", data={"csrf_token": token, "recipients_Nord": "n1@police.lu\nn2@police.lu",
                                                    "recipients_national": "chef@police.lu"})
    assert saved.status_code == 303
    assert archive.recipients()["Nord"] == ["n1@police.lu", "n2@police.lu"]
    page = admin.get("/reports/recipients").get_data(as_text=True)
    assert "n1@police.lu\nn2@police.lu</textarea>" in page and "Recipient lists saved." in page
    bad = admin.post("/reports/recipients", data={"csrf_token": token, "recipients_Nord": "ok@police.lu",
                                                  "recipients_Capitale": "broken\nalso@bad"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Nothing was saved" in text and "broken" in text and "also@bad" in text
    assert archive.recipients()["Nord"] == ["n1@police.lu", "n2@police.lu"]
    assert admin.post("/reports/recipients", data={"csrf_token": token, "recipients_Mars": "a@b.lu"}).status_code == 400
    assert admin.post("/reports/recipients", data={"recipients_Nord": "a@b.lu"}).status_code == 400  # no CSRF
    [record] = _audit(store_path, "report recipients")
    assert record["user"] == "ada" and sorted(record["changed"]) == ["Nord", "national"]
    assert record["counts"]["Nord"] == 2


def test_admin_sends_a_version_through_the_smtp_server(logged_in, archive, store_path, monkeypatch) -> None:
    admin, analyst = logged_in("ada"), logged_in("ana")
    archive.set_recipients("Nord", "n1@police.lu\nn2@police.lu", updated_by="ada")
    url = _built(analyst)
    assert 'id="send-form"' not in analyst.get(url).get_data(as_text=True)
    token = csrf_token(analyst, "/reports/quarterly")
    assert analyst.post(url + "/send", data={"csrf_token": token}).status_code == 403
    page = admin.get(url).get_data(as_text=True)
    assert 'id="send-form"' in page and "2 recipients" in page
    handler = Handler()
    with smtp_server(handler) as port:
        monkeypatch.setenv("GEO_IBM_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("GEO_IBM_SMTP_PORT", str(port))
        assert admin.post(url + "/send").status_code == 400  # no CSRF token
        sent = admin.post(url + "/send", data={"csrf_token": csrf_token(admin, url)})
    assert sent.status_code == 200
    assert f"{QUARTER}/Nord/en/v1 was sent to 2 of 2 recipients through 127.0.0.1:{port}" in sent.get_data(as_text=True)
    assert [m["to"] for m in handler.messages] == [["n1@police.lu", "n2@police.lu"]]
    [record] = _audit(store_path, "report send")
    assert (record["user"], record["result"], record["recipients"], record["version"], record["via"]) == (
        "ada", "sent", 2, 1, "web")


def test_sending_errors_are_clear_pages_not_500(logged_in, archive, monkeypatch) -> None:
    admin = logged_in("ada")
    url = _built(admin)
    token = csrf_token(admin, url)
    no_list = admin.post(url + "/send", data={"csrf_token": token})
    assert no_list.status_code == 400 and "no e-mail address is set for Nord" in no_list.get_data(as_text=True)
    archive.set_recipients("Nord", "n1@police.lu", updated_by="ada")
    unconfigured = admin.post(url + "/send", data={"csrf_token": token})
    assert unconfigured.status_code == 400 and "GEO_IBM_SMTP_HOST: not set" in unconfigured.get_data(as_text=True)
    with smtp_server(Handler(refuse_data="554 5.7.1 rejected by policy")) as port:
        monkeypatch.setenv("GEO_IBM_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("GEO_IBM_SMTP_PORT", str(port))
        refused = admin.post(url + "/send", data={"csrf_token": token})
    assert refused.status_code == 502 and "554 5.7.1 rejected by policy" in refused.get_data(as_text=True)
    assert admin.post(url.replace("/v1", "/v9") + "/send", data={"csrf_token": token}).status_code == 404
    assert admin.post(url + "/send", data={"csrf_token": token, "to": "x@y.lu"}).status_code == 400


def test_unknown_version_and_file(logged_in) -> None:
    client = logged_in("ana")
    assert client.get(f"/reports/quarterly/{QUARTER}/Nord/en/v1").status_code == 404
    assert client.get(f"/reports/quarterly/{QUARTER}/Atlantis/en/v1").status_code == 400
    url = _built(client)
    assert client.get(url + "/report.docx").status_code == 400
    assert client.get(url.replace(QUARTER, "2026Q7")).status_code == 400
