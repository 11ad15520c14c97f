"""The report archive: where it lives, numbered versions that never overwrite, manifests checked by hash, recipient lists and their address check."""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from geo_ibm.errors import NotFoundError, StoreError, ValidationError
from geo_ibm.reportdoc.archive import (
    MAX_RECIPIENTS,
    ReportArchive,
    ReportVersion,
    archive_dir,
    check_address,
    check_area,
    generate_version,
    parse_recipients,
    report_areas,
)


def _save(archive: ReportArchive, text: str = "x", **kw: Any) -> ReportVersion:
    values: dict[str, Any] = {"quarter": "2026Q3", "area": "Nord", "lang": "en", "html": f"<p>{text}</p>", "pdf": f"%PDF {text}".encode(),
              "created_by": "ana"}
    values.update(kw)
    return archive.save(**values)


# --------------------------------------------------------------------------- where


def test_archive_lives_next_to_a_geopackage_store(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GEO_IBM_REPORTS_DIR", raising=False)
    assert archive_dir(tmp_path / "data" / "s.gpkg") == tmp_path / "data" / "reports"
    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "other" / "geo_ibm.gpkg"))
    assert archive_dir() == tmp_path / "other" / "reports"
    monkeypatch.setenv("GEO_IBM_REPORTS_DIR", str(tmp_path / "configured"))
    assert archive_dir(tmp_path / "data" / "s.gpkg") == tmp_path / "configured"


def test_a_database_store_needs_the_setting(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("GEO_IBM_REPORTS_DIR", raising=False)
    with pytest.raises(ValidationError, match="^GEO_IBM_REPORTS_DIR is not set") as info:
        archive_dir("postgresql://geo@db.example.lu:5432/geo_ibm")
    assert info.value.problems[0].column == "GEO_IBM_REPORTS_DIR"
    monkeypatch.setenv("GEO_IBM_REPORTS_DIR", str(tmp_path / "shared"))
    assert archive_dir("postgresql://geo@db.example.lu:5432/geo_ibm") == tmp_path / "shared"


def test_areas_are_the_nation_and_the_four_police_regions() -> None:
    assert report_areas() == ("national", "Capitale", "Centre-Est", "Nord", "Sud-Ouest")
    assert check_area(None) == "national" and check_area("sud-ouest") == "Sud-Ouest"
    for bad in ("Süd", "../etc", "Nord/../x", ""):
        with pytest.raises(ValidationError, match="unknown region"):
            check_area(bad)


# --------------------------------------------------------------------------- versions


def test_versions_are_numbered_and_manifests_hash_the_files(tmp_path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    first = _save(archive, "one")
    second = _save(archive, "two", created_by="vic", edition="aggregates", events=7)
    other = _save(archive, "fr", lang="fr")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.folder == tmp_path / "reports" / "2026Q3" / "Nord" / "en" / "v1"
    # The first version is still what was written first.
    assert (first.folder / "report.html").read_text(encoding="utf-8") == "<p>one</p>"
    manifest = json.loads((second.folder / "manifest.json").read_text(encoding="utf-8"))
    assert {k: manifest[k] for k in ("quarter", "area", "region", "lang", "version", "edition", "created_by", "events")} == {
        "quarter": "2026Q3", "area": "Nord", "region": "Nord", "lang": "en", "version": 2, "edition": "aggregates",
        "created_by": "vic", "events": 7}
    assert manifest["created_at"].endswith("Z")
    for kind, name in (("html", "report.html"), ("pdf", "report.pdf")):
        data = (second.folder / name).read_bytes()
        assert manifest["files"][kind] == {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert [v.key for v in archive.versions(quarter="2026Q3", area="Nord")] == [
        "2026Q3/Nord/en/v2", "2026Q3/Nord/en/v1", "2026Q3/Nord/fr/v1"]
    assert [v.version for v in archive.versions(edition="aggregates")] == [2]
    latest = archive.latest(quarter="2026Q3", area="Nord", lang="en")
    latest_full = archive.latest(quarter="2026Q3", area="Nord", lang="en", edition="full")
    assert latest is not None and latest.version == 2
    assert latest_full is not None and latest_full.version == 1
    assert archive.latest(quarter="2026Q2", area="Nord", lang="en") is None
    assert archive.version(quarter="2026-Q3", area="nord", lang="en", version=2) == second
    with pytest.raises(NotFoundError, match="2026Q3/Nord/en version 3 is not in the archive"):
        archive.version(quarter="2026Q3", area="Nord", lang="en", version=3)
    assert not [p for p in (tmp_path / "reports").rglob(".*")]  # no staging folder left


def test_concurrent_writers_never_share_a_number(tmp_path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    found: list = []
    errors: list = []

    def write(i: int) -> None:
        try:
            found.append(_save(ReportArchive(tmp_path / "reports"), f"writer {i}"))
        except Exception as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(v.version for v in found) == list(range(1, 13))
    for v in found:
        # Each folder holds the files of the writer that got its number.
        assert archive.read(v, "html") == (v.folder / "report.html").read_bytes()
        assert json.loads((v.folder / "manifest.json").read_text())["version"] == v.version


def test_a_taken_number_is_not_overwritten(tmp_path) -> None:
    class StaleListing(ReportArchive):
        """Lists the folder before another writer's v1 landed: the first number it proposes is taken."""

        calls = 0

        def _next_number(self, parent: Path) -> int:
            self.calls += 1
            return 1 if self.calls == 1 else super()._next_number(parent)

    first = _save(ReportArchive(tmp_path / "reports"), "one")
    stale = StaleListing(tmp_path / "reports")
    taken = _save(stale, "two")
    assert stale.calls == 2 and taken.version == 2
    assert (first.folder / "report.html").read_text(encoding="utf-8") == "<p>one</p>"
    assert (taken.folder / "report.html").read_text(encoding="utf-8") == "<p>two</p>"
    assert json.loads((taken.folder / "manifest.json").read_text())["version"] == 2


def test_files_are_checked_against_the_manifest(tmp_path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    version = _save(archive, "one")
    assert archive.read(version, "pdf") == b"%PDF one"
    (version.folder / "report.pdf").write_bytes(b"%PDF two")  # same size, other bytes
    with pytest.raises(StoreError, match="does not match its manifest"):
        archive.read(version, "pdf")
    (version.folder / "report.html").unlink()
    with pytest.raises(StoreError, match="report.html cannot be read"):
        archive.read(version, "html")
    with pytest.raises(ValidationError, match="file must be one of html, pdf"):
        archive.read(version, "manifest")


def test_bad_fields_are_refused_before_writing(tmp_path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    with pytest.raises(ValidationError, match="quarter"):
        _save(archive, quarter="2026Q5")
    with pytest.raises(ValidationError, match="lang"):
        _save(archive, lang="de")
    with pytest.raises(ValidationError, match="edition"):
        _save(archive, edition="draft")
    with pytest.raises(ValidationError, match="unknown region"):
        _save(archive, area="Ost")
    assert not (tmp_path / "reports").exists() or not list((tmp_path / "reports").rglob("report.*"))


def test_an_unwritable_archive_is_a_store_error(tmp_path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(StoreError, match="cannot write"):
        _save(ReportArchive(blocker))


# --------------------------------------------------------------------------- recipients


@pytest.mark.parametrize("address", ["a@b.lu", "first.last+ibm@police.etat.lu", "x_y-z@sub-domain.example.com",
                                     "O'Neil@example.ie"])
def test_good_addresses(address: str) -> None:
    assert check_address(address) is None


@pytest.mark.parametrize(("address", "why"), [
    ("", "empty"), ("no-at-sign", "name@domain"), ("@b.lu", "name@domain"), ("a@lu", "host name"),
    ("a@-b.lu", "host name"), ("a@b.l2", "top-level"), ("a..b@c.lu", "mailbox"), (".a@c.lu", "mailbox"),
    ("a b@c.lu", "no spaces"), ("a@c.lu\r\nBcc: x@y.lu", "no spaces"), ("é@c.lu", "ASCII"),
    ('"quoted"@c.lu', "mailbox"), ("a@[127.0.0.1]", "host name"), ("x" * 65 + "@c.lu", "mailbox"),
    ("a@" + "b" * 250 + ".lu", "longer than 254"),
])
def test_bad_addresses_say_why(address: str, why: str) -> None:
    reason = check_address(address)
    assert reason is not None and why in reason


def test_parse_recipients_lists_every_problem_and_deduplicates() -> None:
    assert parse_recipients("a@b.lu\n A@B.LU ; c@d.lu,\n\n") == ["a@b.lu", "c@d.lu"]
    assert parse_recipients("Jean@Police.LU") == ["Jean@police.lu"]
    with pytest.raises(ValidationError) as info:
        parse_recipients("ok@b.lu\nbad\nalso bad@x.lu", area="Nord")
    assert [(p.row, p.column, p.value) for p in info.value.problems] == [(2, "Nord", "bad"), (3, "Nord", "also bad@x.lu")]
    many = "\n".join(f"user{i}@police.lu" for i in range(MAX_RECIPIENTS + 1))
    with pytest.raises(ValidationError, match=f"more than {MAX_RECIPIENTS}"):
        parse_recipients(many)
    assert len(parse_recipients("\n".join(f"user{i}@police.lu" for i in range(MAX_RECIPIENTS)))) == MAX_RECIPIENTS


def test_recipient_lists_are_kept_per_area_and_bad_input_changes_nothing(tmp_path) -> None:
    archive = ReportArchive(tmp_path / "reports")
    assert archive.recipients() == {a: [] for a in report_areas()}
    archive.set_recipients("Nord", "n1@police.lu\nn2@police.lu", updated_by="ada")
    archive.set_recipients(None, ["chef@police.lu"], updated_by="ada")
    again = ReportArchive(tmp_path / "reports").recipients()
    assert again["Nord"] == ["n1@police.lu", "n2@police.lu"] and again["national"] == ["chef@police.lu"]
    with pytest.raises(ValidationError):
        archive.set_recipients("Nord", "broken", updated_by="ada")
    assert archive.recipients()["Nord"] == ["n1@police.lu", "n2@police.lu"]
    body = json.loads((tmp_path / "reports" / "recipients.json").read_text(encoding="utf-8"))
    assert body["updated_by"] == "ada" and set(body["areas"]) == set(report_areas())
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["recipients.json"]  # no temporary file left
    (tmp_path / "reports" / "recipients.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="cannot be read"):
        archive.recipients()


# --------------------------------------------------------------------------- generating


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    from webfixtures import build_store

    return build_store(tmp_path_factory.mktemp("archivestore") / "geo_ibm.gpkg")


def test_generate_version_archives_the_rendered_report(small_store, tmp_path) -> None:
    import subprocess

    from geo_ibm.disclosure import DisclosureRule
    from geo_ibm.store import open_store

    store = open_store(small_store)
    archive = ReportArchive(tmp_path / "reports")
    steps: list[float] = []
    full = generate_version(store, archive, quarter="2026Q2", area="Nord", lang="fr", created_by="ana",
                            progress=lambda f, _m: steps.append(f))
    assert steps == sorted(steps) and steps[-1] == 1.0
    assert full.events == store.count(quarter="2026Q2", region="Nord") and full.edition == "full"
    protected = generate_version(store, archive, quarter="2026Q2", area="Nord", lang="fr", created_by="vic",
                                 disclosure=DisclosureRule())
    assert protected.version == 2 and protected.edition == "aggregates"
    assert protected.disclosure == {"min_count": 5, "rounding": 5, "cell_m": 500.0, "period": "quarter"}
    pdf = archive.read(full, "pdf")
    assert pdf[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "Rapport trimestriel d'analyse IBM" in text and "Nord" in text
    assert "<html" in archive.read(protected, "html").decode("utf-8")
