"""Sending archived reports by e-mail against a real SMTP server on 127.0.0.1 (aiosmtpd): settings, messages, TLS, refusals, audit, the CLI."""
from __future__ import annotations

import email
import email.policy
import hashlib
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from mailfixtures import Handler, smtp_server

from geo_ibm.errors import ValidationError
from geo_ibm.reportdoc.archive import ReportArchive, ReportVersion
from geo_ibm.reportdoc.mail import (
    AUDIT_ACTION,
    MailError,
    SmtpSettings,
    report_message,
    send_message,
    send_version,
    smtp_settings,
)
from geo_ibm.store import open_store
from geo_ibm.store.pg_local import free_port

SENDER = "reports@police.example.lu"
USER, PASSWORD = "reporter", "s3cret-for-the-test"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made with openssl (certificate, key)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests need the openssl command (Debian package openssl)"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return context


def settings(port: int, **kw: Any) -> SmtpSettings:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "tls": "none", "sender": SENDER, "timeout": 10.0}
    values.update(kw)
    return SmtpSettings(**values)


@pytest.fixture
def archived(tmp_path) -> tuple[Any, ReportArchive, ReportVersion]:
    """An initialised store, an archive beside it with version 1 of 2026Q3 Nord (fr) and two Nord recipients."""
    store = open_store(tmp_path / "store" / "geo_ibm.gpkg")
    store.init()
    archive = ReportArchive(tmp_path / "store" / "reports")
    version = archive.save(quarter="2026Q3", area="Nord", lang="fr", html="<!DOCTYPE html><p>rapport</p>",
                           pdf=b"%PDF-1.4 test pdf\n%%EOF\n", created_by="ana", events=42)
    archive.set_recipients("Nord", "nord-1@police.example.lu\nNord-2@Police.Example.LU", updated_by="ada")
    return store, archive, version


def _parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _audits(store: Any) -> list[dict[str, Any]]:
    import json

    log = store.audit_log(limit=50)
    rows = log[log["action"] == AUDIT_ACTION]
    return [json.loads(d) if isinstance(d, str) else d for d in rows["detail"]]


# --------------------------------------------------------------------------- settings


def test_settings_from_the_environment_with_defaults() -> None:
    found = smtp_settings({"GEO_IBM_SMTP_HOST": "smtp.example.lu", "GEO_IBM_SMTP_FROM": SENDER})
    assert (found.host, found.port, found.tls, found.timeout, found.user) == ("smtp.example.lu", 587, "starttls", 30.0, None)
    assert smtp_settings({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_TLS": "ssl"}).port == 465
    assert smtp_settings({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_TLS": "NONE",
                          "GEO_IBM_SMTP_PORT": "2525", "GEO_IBM_SMTP_TIMEOUT": "4.5"}).port == 2525
    secret = smtp_settings({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_USER": "u",
                            "GEO_IBM_SMTP_PASSWORD": "pw-not-shown"})
    assert "pw-not-shown" not in repr(secret)


@pytest.mark.parametrize(("env", "setting"), [
    ({}, "GEO_IBM_SMTP_HOST"),
    ({"GEO_IBM_SMTP_HOST": "h.lu"}, "GEO_IBM_SMTP_FROM"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": "not an address"}, "GEO_IBM_SMTP_FROM"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_TLS": "tls1.3"}, "GEO_IBM_SMTP_TLS"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_PORT": "70000"}, "GEO_IBM_SMTP_PORT"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_TIMEOUT": "0"}, "GEO_IBM_SMTP_TIMEOUT"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_USER": "u"}, "GEO_IBM_SMTP_PASSWORD"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_PASSWORD": "p"}, "GEO_IBM_SMTP_USER"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_USER": "u", "GEO_IBM_SMTP_PASSWORD": "p",
      "GEO_IBM_SMTP_TLS": "none"}, "GEO_IBM_SMTP_TLS"),
    ({"GEO_IBM_SMTP_HOST": "h.lu", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_CAFILE": "/nonexistent.pem"},
     "GEO_IBM_SMTP_CAFILE"),
])
def test_bad_or_missing_settings_name_the_setting(env: dict[str, str], setting: str) -> None:
    with pytest.raises(ValidationError, match=f"^{setting}") as info:
        smtp_settings(env)
    assert info.value.problems[0].column == setting


def test_a_password_may_go_in_clear_to_this_host_only() -> None:
    found = smtp_settings({"GEO_IBM_SMTP_HOST": "127.0.0.1", "GEO_IBM_SMTP_FROM": SENDER, "GEO_IBM_SMTP_USER": "u",
                           "GEO_IBM_SMTP_PASSWORD": "p", "GEO_IBM_SMTP_TLS": "none"})
    assert found.tls == "none" and found.password == "p"


# --------------------------------------------------------------------------- the message


def test_message_in_the_report_language_with_both_files(archived) -> None:
    _store, archive, version = archived
    pdf, html = archive.read(version, "pdf"), archive.read(version, "html")
    message = report_message(version, pdf=pdf, html=html, sender=SENDER, recipients=["a@b.lu", "c@d.lu"])
    assert message["Subject"] == "Rapport trimestriel d'analyse IBM 2026Q3 – Région de police Nord (v1)"
    assert message["To"] == "a@b.lu, c@d.lu" and message["From"] == SENDER
    parts = {p.get_filename(): p for p in message.iter_attachments()}
    assert set(parts) == {"geo_ibm-report-2026Q3-Nord-fr-v1.pdf", "geo_ibm-report-2026Q3-Nord-fr-v1.html"}
    assert parts["geo_ibm-report-2026Q3-Nord-fr-v1.pdf"].get_content() == pdf
    assert parts["geo_ibm-report-2026Q3-Nord-fr-v1.pdf"].get_content_type() == "application/pdf"
    body = message.get_body(("plain",))
    assert body is not None and "Veuillez trouver ci-joint" in body.get_content()


# --------------------------------------------------------------------------- sending


def test_send_version_delivers_one_message_to_the_area_list_and_audits(archived) -> None:
    store, archive, version = archived
    handler = Handler()
    with smtp_server(handler) as port:
        outcome = send_version(store, archive, version, user="ada", settings=settings(port), via="web", ip="10.0.0.1")
    assert (outcome.recipients, outcome.delivered, outcome.refused) == (2, 2, {})
    assert len(handler.messages) == 1
    got = handler.messages[0]
    assert got["from"] == SENDER
    assert got["to"] == ["nord-1@police.example.lu", "Nord-2@police.example.lu"]
    parsed = _parsed(got["data"])
    files = {p.get_filename(): p.get_content() for p in parsed.iter_attachments()}
    pdf = (version.folder / "report.pdf").read_bytes()
    # What arrived is the archived file, byte for byte (hash against the folder, not the manifest).
    assert hashlib.sha256(files["geo_ibm-report-2026Q3-Nord-fr-v1.pdf"]).hexdigest() == hashlib.sha256(pdf).hexdigest()
    assert files["geo_ibm-report-2026Q3-Nord-fr-v1.html"] == (version.folder / "report.html").read_text(encoding="utf-8")
    [record] = _audits(store)
    assert record["result"] == "sent" and record["recipients"] == 2 and record["version"] == 1
    assert (record["area"], record["quarter"], record["lang"], record["via"], record["ip"]) == (
        "Nord", "2026Q3", "fr", "web", "10.0.0.1")
    assert record["server"] == f"127.0.0.1:{port}"
    log = store.audit_log(limit=5)
    assert log[log["action"] == AUDIT_ACTION]["user"].tolist() == ["ada"]


def test_some_recipients_refused_is_partly_sent(archived) -> None:
    store, archive, version = archived
    handler = Handler(refuse_rcpt={"Nord-2@police.example.lu"})
    with smtp_server(handler) as port:
        outcome = send_version(store, archive, version, user="ada", settings=settings(port))
    assert outcome.delivered == 1 and list(outcome.refused) == ["Nord-2@police.example.lu"]
    assert "550" in outcome.refused["Nord-2@police.example.lu"]
    assert handler.messages[0]["to"] == ["nord-1@police.example.lu"]
    assert _audits(store)[0]["result"] == "partly sent" and _audits(store)[0]["refused"] == 1


def test_every_recipient_refused_names_the_reply(archived) -> None:
    store, archive, version = archived
    handler = Handler(refuse_rcpt={"nord-1@police.example.lu", "Nord-2@police.example.lu"})
    with smtp_server(handler) as port, pytest.raises(MailError, match=r"refused every recipient: .*550 5\.1\.1"):
        send_version(store, archive, version, user="ada", settings=settings(port))
    assert _audits(store)[0]["result"] == "failed" and "550" in _audits(store)[0]["error"]
    assert not handler.messages


def test_message_refused_names_the_server_reply(archived) -> None:
    store, archive, version = archived
    with smtp_server(Handler(refuse_data="554 5.7.1 attachment policy")) as port:
        with pytest.raises(MailError, match=rf"127\.0\.0\.1:{port} refused the message: 554 5\.7\.1 attachment policy"):
            send_version(store, archive, version, user="ada", settings=settings(port))
    assert MailError.http_status == 502


def test_unreachable_server(archived) -> None:
    store, archive, version = archived
    port = free_port()  # nothing listens there
    with pytest.raises(MailError, match=rf"127\.0\.0\.1:{port} cannot be reached.*GEO_IBM_SMTP_HOST"):
        send_version(store, archive, version, user="ada", settings=settings(port, timeout=3.0))
    assert _audits(store)[0]["result"] == "failed"


def test_no_recipients_is_refused_before_connecting(archived) -> None:
    store, archive, version = archived
    archive.set_recipients("Nord", "", updated_by="ada")
    with pytest.raises(ValidationError, match="no e-mail address is set for Nord"):
        send_version(store, archive, version, user="ada", settings=settings(free_port()))
    assert _audits(store)[0]["result"] == "not sent" and _audits(store)[0]["recipients"] == 0


def test_unconfigured_smtp_is_audited_and_names_the_setting(archived, monkeypatch) -> None:
    store, archive, version = archived
    monkeypatch.delenv("GEO_IBM_SMTP_HOST", raising=False)
    with pytest.raises(ValidationError, match="^GEO_IBM_SMTP_HOST: not set"):
        send_version(store, archive, version, user="ada")
    assert "GEO_IBM_SMTP_HOST" in _audits(store)[0]["error"]


def test_starttls_required_but_not_offered(archived) -> None:
    store, archive, version = archived
    with smtp_server(Handler()) as port, pytest.raises(MailError, match="does not offer STARTTLS"):
        send_version(store, archive, version, user="ada", settings=settings(port, tls="starttls"))


def test_starttls_with_login_and_a_private_ca(archived, certificate) -> None:
    store, archive, version = archived
    handler = Handler()
    with smtp_server(handler, tls_context=server_context(certificate), require_starttls=True, auth_required=True,
                     authenticator=_authenticator, auth_exclude_mechanism=["LOGIN"]) as port:
        good = settings(port, tls="starttls", user=USER, password=PASSWORD, cafile=str(certificate[0]))
        assert send_version(store, archive, version, user="ada", settings=good).delivered == 2
        assert handler.messages[0]["tls"] is True and handler.messages[0]["authenticated"] is True
        with pytest.raises(MailError, match="refused the login of GEO_IBM_SMTP_USER: 535"):
            send_message(report_message(version, pdf=b"%PDF", html=None, sender=SENDER, recipients=["a@b.lu"]),
                         settings(port, tls="starttls", user=USER, password="wrong", cafile=str(certificate[0])))
        # Without the private CA the certificate is not trusted: no message leaves.
        with pytest.raises(MailError, match="TLS failed.*GEO_IBM_SMTP_CAFILE"):
            send_message(report_message(version, pdf=b"%PDF", html=None, sender=SENDER, recipients=["a@b.lu"]),
                         settings(port, tls="starttls", user=USER, password=PASSWORD))
    assert len(handler.messages) == 1


def test_implicit_tls(archived, certificate) -> None:
    store, archive, version = archived
    handler = Handler()
    with smtp_server(handler, ssl_context=server_context(certificate)) as port:
        outcome = send_version(store, archive, version, user="ada",
                               settings=settings(port, tls="ssl", cafile=str(certificate[0])))
    assert outcome.delivered == 2 and handler.messages[0]["tls"] is True


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def cli_store(tmp_path, monkeypatch) -> Path:
    """A store of 300 demo events at GEO_IBM_STORE with recipients for the nation and Nord."""
    from webfixtures import build_store

    path = build_store(tmp_path / "store" / "geo_ibm.gpkg")
    archive = ReportArchive(path.parent / "reports")
    archive.set_recipients("national", "chef@police.example.lu", updated_by="ada")
    archive.set_recipients("Nord", "nord@police.example.lu", updated_by="ada")
    monkeypatch.setenv("GEO_IBM_STORE", str(path))
    monkeypatch.setenv("GEO_IBM_SMTP_FROM", SENDER)
    monkeypatch.setenv("GEO_IBM_SMTP_TLS", "none")
    monkeypatch.setenv("GEO_IBM_SMTP_HOST", "127.0.0.1")
    return path


def test_cli_report_send_builds_then_sends_latest_or_given_version(cli_store, monkeypatch) -> None:
    from geo_ibm.cli import main

    archive = ReportArchive(cli_store.parent / "reports")
    handler = Handler()
    with smtp_server(handler) as port:
        monkeypatch.setenv("GEO_IBM_SMTP_PORT", str(port))
        first = CliRunner().invoke(main, ["report", "send", "--quarter", "2026Q2", "--region", "Nord"])
        assert first.exit_code == 0, first.output
        assert "built and archived version 1" in first.output and "sent to 1 recipient" in first.output
        second = CliRunner().invoke(main, ["report", "send", "--quarter", "2026Q2", "--region", "Nord"])
        assert second.exit_code == 0 and "built" not in second.output and "2026Q2/Nord/en/v1" in second.output
        given = CliRunner().invoke(main, ["report", "send", "--quarter", "2026Q2", "--region", "Nord", "--version", "2"])
        assert given.exit_code == 1 and "version 2 is not in the archive" in given.output
    assert [m["to"] for m in handler.messages] == [["nord@police.example.lu"]] * 2
    assert len(archive.versions(quarter="2026Q2", area="Nord")) == 1
    pdf = _parsed(handler.messages[0]["data"])
    [attached] = [p.get_content() for p in pdf.iter_attachments() if (p.get_filename() or "").endswith(".pdf")]
    assert attached == archive.read(archive.versions(quarter="2026Q2", area="Nord")[0], "pdf")
    store = open_store(cli_store)
    results = [(r["area"], r["result"]) for r in _audits(store)]
    assert results.count(("Nord", "sent")) == 2
    log = store.audit_log(limit=50)
    assert (log["action"] == "report build").sum() == 1


def test_cli_report_send_all_reports_areas_without_recipients(cli_store, monkeypatch) -> None:
    from geo_ibm.cli import main

    handler = Handler()
    with smtp_server(handler) as port:
        monkeypatch.setenv("GEO_IBM_SMTP_PORT", str(port))
        result = CliRunner().invoke(main, ["report", "send", "--quarter", "2026Q1", "--lang", "fr"])
    assert result.exit_code == 1
    assert "national: 2026Q1/national/fr/v1 (full) sent to 1 recipient" in result.output
    assert "Nord: 2026Q1/Nord/fr/v1 (full) sent" in result.output
    for area in ("Capitale", "Centre-Est", "Sud-Ouest"):
        assert f"error: {area}: recipients: no e-mail address is set for {area}" in result.output
    assert sorted(m["to"][0] for m in handler.messages) == ["chef@police.example.lu", "nord@police.example.lu"]
    # Nothing built for the areas nobody receives.
    assert not ReportArchive(cli_store.parent / "reports").versions(area="Capitale")


def test_cli_report_send_unconfigured_names_the_setting_and_builds_nothing(cli_store, monkeypatch) -> None:
    from geo_ibm.cli import main

    monkeypatch.delenv("GEO_IBM_SMTP_HOST")
    result = CliRunner().invoke(main, ["report", "send", "--quarter", "2026Q1"])
    assert result.exit_code == 1 and "GEO_IBM_SMTP_HOST: not set" in result.output
    assert not ReportArchive(cli_store.parent / "reports").versions()
    bad = CliRunner().invoke(main, ["report", "send", "--quarter", "2026Q5"])
    assert bad.exit_code == 1 and "--quarter" in bad.output


def test_cli_report_document_command_still_works(cli_store, tmp_path) -> None:
    from geo_ibm.cli import main

    out = tmp_path / "doc"
    result = CliRunner().invoke(main, ["report", "--quarter", "2026Q1", "--region", "Nord", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "Nord" / "report.pdf").read_bytes()[:5] == b"%PDF-"
    missing = CliRunner().invoke(main, ["report", "--quarter", "2026Q1"])
    assert missing.exit_code == 2 and "--out" in missing.output
    helped = CliRunner().invoke(main, ["report", "--help"])
    assert "--out" in helped.output and "report send --help" in helped.output
