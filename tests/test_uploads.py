"""Hostile event files: every limit of an import refused early, named, recorded, and nothing stored."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest
from storefixtures import HEADER, event_rows, store_factory, with_field, write_events  # noqa: F401
from webfixtures import app, base_store, client, logged_in, store, store_path  # noqa: F401

from geo_ibm.errors import ValidationError
from geo_ibm.importlimits import NOTES_CHARS, PROBLEMS_LISTED, PROBLEMS_PER_COLUMN
from geo_ibm.problems import summary_lines

COLUMNS = HEADER.split(";")


def refused(store, path, match, **kwargs) -> ValidationError:
    """Import ``path``, expect a refusal matching ``match``; check nothing was stored and the failure was recorded."""
    before = store.count() if store.exists() else 0
    with pytest.raises(ValidationError, match=match) as info:
        store.import_file(path, user="ana", **kwargs)
    assert store.count() == before
    last = store.imports().iloc[0]
    assert (last["file_name"], last["status"], last["accepted"]) == (path.name, "failed", 0)
    return info.value


# --------------------------------------------------------------------------- field contents


def test_a_20_mb_note_is_refused_naming_row_and_column(store_factory, tmp_path):
    store = store_factory()
    rows = event_rows(3)
    rows[1] = with_field(rows[1], "notes", "x" * 20_000_000)
    error = refused(store, write_events(tmp_path / "long.csv", rows), "1 problem")
    (problem,) = error.problems
    assert (problem.row, problem.column) == (3, "notes")
    assert f"notes is longer than {NOTES_CHARS:,} characters" in problem.reason
    assert len(problem.value) < 300 and problem.value.endswith("…")  # the page never shows the 20 MB
    assert len(str(error)) < 2_000


def test_a_note_at_the_limit_and_free_text_controls_are_kept(store_factory, tmp_path):
    store = store_factory()
    rows = event_rows(2)
    rows[0] = with_field(rows[0], "notes", "y" * NOTES_CHARS)
    rows[1] = with_field(rows[1], "notes", '"tab\there, line\nbreak"')
    store.import_file(write_events(tmp_path / "ok.csv", rows), user="ana")
    assert store.event("E00000")["notes"] == "y" * NOTES_CHARS
    assert store.event("E00001")["notes"] == "tab\there, line\nbreak"


@pytest.mark.parametrize("column, value", [
    ("event_id", "E\x001"), ("notes", "a\x00b"), ("notes", "bell\x07"), ("event_id", "E\t2"), ("event_id", "X" * 101),
])
def test_nul_and_control_characters_are_refused(store_factory, tmp_path, column, value):
    store = store_factory()
    rows = event_rows(3)
    rows[2] = with_field(rows[2], column, value)
    error = refused(store, write_events(tmp_path / "ctl.csv", rows), "nothing was imported")
    (problem,) = error.problems
    assert (problem.row, problem.column) == (4, column)
    assert "control character" in problem.reason or "longer than 100 characters" in problem.reason
    assert "\x00" not in str(problem) and "\x07" not in str(problem)


# --------------------------------------------------------------------------- file shape


def test_header_only_file_is_a_failed_import_with_no_data_rows(store_factory, tmp_path):
    store = store_factory()
    error = refused(store, write_events(tmp_path / "header.csv", []), "no data rows")
    assert error.problems[0].reason == "no data rows"
    assert store.audit_log().iloc[0]["action"] == "import_failed"


def test_200_000_columns_are_refused_from_the_header_at_once(store_factory, tmp_path, monkeypatch):
    store = store_factory()
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(200_000)) + "\n" + ",".join("1" * 200_000) + "\n")

    def records(*args, **kwargs):
        raise AssertionError("the records must not be parsed: the header alone is refused")

    # Not timed: parsing the records (_arrow_csv, after the header) fails the test.
    monkeypatch.setattr("geo_ibm.io.eventfiles._arrow_csv", records)
    refused(store, path, r"the header has 1[0-9,]+ or more columns, more than the 100 accepted")


def test_101_columns_are_refused_and_100_read(store_factory, tmp_path):
    store = store_factory()
    path = tmp_path / "wide.csv"
    extra = [f"extra{i}" for i in range(101 - len(COLUMNS))]
    path.write_text(";".join(COLUMNS + extra) + "\n" + event_rows(1)[0] + ";" * len(extra) + "\n")
    refused(store, path, "the header has 101 columns, more than the 100 accepted")
    path.write_text(";".join(COLUMNS + extra[:-1]) + "\n" + event_rows(1)[0] + ";" * (len(extra) - 1) + "\n")
    assert store.import_file(path, user="ana").accepted == 1


@pytest.mark.parametrize("encoding, bom", [("utf-16", True), ("utf-16-le", False), ("utf-16-be", False),
                                           ("utf-32", True), ("utf-32-le", False)])
def test_utf16_and_utf32_files_are_named_as_such(store_factory, tmp_path, encoding, bom):
    store = store_factory()
    path = tmp_path / "wide-chars.csv"
    path.write_bytes("\n".join([HEADER, *event_rows(3)]).encode(encoding))
    assert (path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")) is bom
    name = encoding[:6].upper()
    refused(store, path, re.escape(f"wide-chars.csv: the file is {name}; save it as UTF-8 CSV"))


def test_rows_over_the_limit_are_refused_while_reading(store_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_IBM_IMPORT_MAX_ROWS", "1000")
    store = store_factory()
    error = refused(store, write_events(tmp_path / "many.csv", event_rows(1500)), "more than 1,000 data rows")
    assert error.problems[0].reason == "too many rows"
    assert store.import_file(write_events(tmp_path / "fits.csv", event_rows(1000)), user="ana").accepted == 1000


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(store_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_IBM_IMPORT_MAX_MB", "0.01")
    store = store_factory()
    refused(store, write_events(tmp_path / "big.csv", event_rows(500)), r"more than the 10 KiB accepted")
    monkeypatch.setenv("GEO_IBM_IMPORT_MAX_MB", "zero")
    with pytest.raises(ValidationError, match="GEO_IBM_IMPORT_MAX_MB must be a number of MiB above 0"):
        store.import_file(write_events(tmp_path / "small.csv", event_rows(5)), user="ana")


def _xlsx_with_rows(path, rows: int):
    """A workbook whose one sheet holds a header and ``rows`` rows (written as XML: a million rows compress to kB)."""
    head = "".join(f'<c r="{chr(65 + i)}1" t="inlineStr"><is><t>{c}</t></is></c>' for i, c in enumerate(COLUMNS))
    body = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>E{r}</t></is></c></row>' for r in range(2, rows + 2))
    sheet = ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
             f'spreadsheetml/2006/main"><dimension ref="A1:J{rows + 1}"/><sheetData><row r="1">{head}</row>{body}'
             "</sheetData></worksheet>")
    ns = "http://schemas.openxmlformats.org"
    parts = {
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="' + ns + '/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>',
        "_rels/.rels": '<?xml version="1.0"?><Relationships xmlns="' + ns + '/package/2006/relationships">'
        '<Relationship Id="rId1" Type="' + ns + '/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": '<?xml version="1.0"?><workbook xmlns="' + ns + '/spreadsheetml/2006/main" '
        'xmlns:r="' + ns + '/officeDocument/2006/relationships"><sheets><sheet name="events" sheetId="1" '
        'r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0"?><Relationships xmlns="' + ns + '/package/2006/'
        'relationships"><Relationship Id="rId1" Type="' + ns + '/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def test_an_xlsx_with_more_real_rows_than_the_limit_is_refused_while_streaming(store_factory, tmp_path, monkeypatch):
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    monkeypatch.setenv("GEO_IBM_IMPORT_MAX_ROWS", "2000")
    store = store_factory()
    path = _xlsx_with_rows(tmp_path / "rows.xlsx", 100_000)
    assert path.stat().st_size < 1_000_000
    # Counted, not timed: the rows the reader takes from the sheet (openpyxl parses them as they are taken).
    taken = [0]
    real = ReadOnlyWorksheet.iter_rows

    def counting(self, *args, **kwargs):
        for row in real(self, *args, **kwargs):
            taken[0] += 1
            yield row

    monkeypatch.setattr(ReadOnlyWorksheet, "iter_rows", counting)
    error = refused(store, path, "more than 2,000 rows in sheet 'events'; export the events sheet as CSV")
    assert error.problems[0].row == 2_002
    assert taken[0] == 2_002  # the 98,000 rows after the limit are never parsed


# --------------------------------------------------------------------------- ragged CSV records


def test_short_records_are_padded_and_long_ones_are_row_problems(store_factory, tmp_path):
    store = store_factory()
    rows = event_rows(4)
    rows[1] = rows[1].rsplit(";", 1)[0]  # no notes cell at all
    rows[2] = rows[2] + ";surplus"
    path = write_events(tmp_path / "ragged.csv", rows)
    error = refused(store, path, "1 problem")
    assert [(p.row, p.column, p.reason) for p in error.problems] == [(4, None, "row has 11 fields; the header has 10")]
    report = store.import_file(path, user="ana", skip_invalid=True)
    assert (report.accepted, report.rejected) == (3, 1)
    assert store.event("E00001")["notes"] is None


# --------------------------------------------------------------------------- bounded report


def test_the_report_lists_the_first_problems_of_each_column_and_counts_all(store_factory, tmp_path):
    store = store_factory()
    rows = event_rows(3000)
    for k in range(0, 3000):
        rows[k] = with_field(rows[k], "persons", "0")
    for k in range(0, 3000, 100):
        rows[k] = with_field(rows[k], "transport_mode", "boat")
    path = write_events(tmp_path / "bad.csv", rows)
    error = refused(store, path, r"bad.csv: 3030 problem\(s\) in 3000 of 3000 row\(s\)")
    by_column: dict[str | None, list[int]] = {}
    for p in error.problems:
        by_column.setdefault(p.column, []).append(p.row)
    assert by_column == {"persons": list(range(2, 2 + PROBLEMS_PER_COLUMN)),
                         "transport_mode": [2 + 100 * k for k in range(PROBLEMS_PER_COLUMN)]}
    assert error.total == 3030 and len(error.problems) <= PROBLEMS_LISTED
    assert sorted(summary_lines(error.counts)) == ["first 20 of 3,000 problems in column 'persons'",
                                                   "first 20 of 30 problems in column 'transport_mode'"]
    assert "... and 2990 more" in str(error)  # the 40 listed are shown
    # The rejected-rows file holds every bad row with all its reasons.
    report = store.import_file(path, user="ana", skip_invalid=True, rejected_path=tmp_path / "rejected.csv")
    lines = (tmp_path / "rejected.csv").read_text(encoding="utf-8-sig").splitlines()
    assert (report.accepted, report.rejected, len(lines)) == (0, 3000, 3001)
    assert lines[1].endswith('"transport_mode: unknown transport_mode (allowed: car, van, truck, bus, train, taxi, '
                             'on_foot, other); persons: persons must be at least 1"')


def test_millions_of_problems_are_counted_but_few_are_built(tmp_path):
    from geo_ibm.events import validate_events
    from geo_ibm.io import read_event_table
    from geo_ibm.problems import ProblemLog

    path = tmp_path / "junk.csv"
    path.write_text("event_id;observed_at;x;y;location_kind;persons;smugglers;transport_mode;entry_country\n"
                    + "a;b;c;d;e;f;g;h;i\n" * 300_000)
    log = ProblemLog()
    validate_events(read_event_table(path), file="junk.csv", log=log)
    assert log.total == 9 * 300_000  # each of the nine cells of every row (the id repeats)
    assert len(log.problems) == 9 * PROBLEMS_PER_COLUMN
    assert all(p.row < 2 + PROBLEMS_PER_COLUMN for p in log.problems)
    assert len(log.bad_rows()) == 300_000


HOSTILE_MEMORY_MB = 400
"""Address space an import may add to the loaded libraries for a file over the row limit."""


def test_a_file_over_the_row_limit_is_refused_within_bounded_memory(tmp_path):
    # 5 million one-cell rows (10 MB): read whole, as the old reader did, they took gigabytes.
    path = tmp_path / "tall.csv"
    with path.open("w") as fh:
        fh.write(HEADER + "\n")
        fh.write("1\n" * 5_000_000)
    script = textwrap.dedent(f"""
        import os, resource, shapely
        from geo_ibm.errors import ValidationError
        from geo_ibm.store import GeoPackageStore
        import geo_ibm.store.imports, pyarrow.csv, pyarrow.compute  # load everything before the cap
        store = GeoPackageStore({str(tmp_path / "s.gpkg")!r}, outline=shapely.box(0, 0, 1, 1), assign_regions=False)
        store.init()
        size = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = size + {HOSTILE_MEMORY_MB} * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            store.import_file({str(path)!r}, user="hostile")
        except ValidationError as exc:
            print("refused:", str(exc).splitlines()[0])
        """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GEO_IBM_IMPORT_MAX_ROWS": "1000000"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: tall.csv: more than 1,000,000 data rows; split the file" in proc.stdout


# --------------------------------------------------------------------------- a file imported before


def test_a_file_already_imported_whole_is_recognised_without_validation(store_factory, tmp_path, monkeypatch):
    store = store_factory()
    path = write_events(tmp_path / "e.csv", event_rows(50))
    first = store.import_file(path, user="ana")
    import geo_ibm.store.imports as pipeline

    def no_validation(*args, **kwargs):
        raise AssertionError("the file was validated again")

    monkeypatch.setattr(pipeline, "validate_events", no_validation)
    again = store.import_file(path, user="bob", name="same bytes.csv")
    assert (again.rows, again.accepted, again.duplicates, again.rejected, again.sha256) == (50, 0, 50, 0, first.sha256)
    assert store.count() == 50
    last = store.imports().iloc[0]
    assert (last["file_name"], last["status"], last["duplicates"]) == ("same bytes.csv", "ok", 50)
    detail = store.audit_log().iloc[0]["detail"]
    assert detail["same_file_as_import"] == int(store.imports().iloc[1]["id"])
    # Other bytes (one more row) go the whole way.
    with pytest.raises(AssertionError, match="validated again"):
        store.import_file(write_events(tmp_path / "more.csv", event_rows(51)), user="ana")


def test_the_shortcut_needs_an_import_without_rejected_rows_in_the_same_store(store_factory, tmp_path,
                                                                             monkeypatch):
    import geo_ibm.store.imports as pipeline

    calls: list[str] = []
    real = pipeline.validate_events

    def counted(*args, **kwargs):
        calls.append(kwargs["file"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "validate_events", counted)
    store = store_factory()
    rows = event_rows(10)
    rows[3] = with_field(rows[3], "persons", "0")
    some = write_events(tmp_path / "some.csv", rows)
    store.import_file(some, user="ana", skip_invalid=True)
    store.import_file(some, user="ana", skip_invalid=True)  # an earlier import rejected a row: read again
    assert calls == ["some.csv", "some.csv"]
    other = store_factory("other")  # the same bytes imported into another store are new there
    whole = write_events(tmp_path / "whole.csv", event_rows(10, prefix="W"))
    store.import_file(whole, user="ana")
    assert other.import_file(whole, user="ana").accepted == 10
    assert calls[-2:] == ["whole.csv", "whole.csv"]


def test_the_shortcut_counts_the_first_import_or_looks_up_the_ids_and_sees_a_missing_event(tmp_path, monkeypatch):
    import sqlite3

    from storefixtures import OUTLINE, half_regions

    from geo_ibm.store import GeoPackageStore

    store = GeoPackageStore(tmp_path / "s.gpkg", outline=OUTLINE, assign_regions=half_regions)
    store.init()
    store.import_file(write_events(tmp_path / "part.csv", event_rows(5)), user="ana")
    path = write_events(tmp_path / "e.csv", event_rows(20))
    assert store.import_file(path, user="ana").duplicates == 5  # its first import found 5 stored
    looked_up: list[int] = []
    real = GeoPackageStore._write_transaction

    def spying(self, **options):
        manager = real(self, **options)

        class Spy:
            def __enter__(inner):
                tx = manager.__enter__()
                count = tx.count_stored
                tx.count_stored = lambda ids: looked_up.append(len(ids)) or count(ids)
                return tx

            def __exit__(inner, *exc):
                return manager.__exit__(*exc)

        return Spy()

    monkeypatch.setattr(GeoPackageStore, "_write_transaction", spying)
    assert store.import_file(path, user="ana").duplicates == 20
    assert looked_up == [20]  # no import stored all 20 itself: the ids were looked up
    with sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM events WHERE event_id = 'E00007'")
    again = store.import_file(path, user="ana")
    assert (again.accepted, again.duplicates) == (1, 19) and store.count() == 20



# --------------------------------------------------------------------------- the page and the command


def _many_bad_rows(n: int) -> str:
    """``n`` demo events inside Luxembourg, each with ``persons`` 0."""
    import io as text_io

    import pandas as pd
    from webfixtures import demo_events, events_csv

    frame = pd.read_csv(text_io.StringIO(events_csv(demo_events(n, seed=404), id_prefix="many-")), dtype=str)
    frame["persons"] = "0"
    return frame.to_csv(index=False)


def test_the_import_page_lists_the_first_problems_and_counts_every_column(logged_in, store):
    import html
    import io as bytes_io

    from webfixtures import csrf_token

    client = logged_in("ana")
    before = store.count()
    token = csrf_token(client, "/import")
    form = {"csrf_token": token, "file": (bytes_io.BytesIO(_many_bad_rows(300).encode()), "many.csv")}
    response = client.post("/import", data=form, content_type="multipart/form-data")
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "many.csv: 300 problem(s) in 300 of 300 row(s); nothing was imported" in body
    assert "First 20 of 300 problems in column persons." in body
    table = re.search(r'<table class="data" id="problems">.*?</table>', body, re.S).group(0)
    assert table.count("<tr><td>") == PROBLEMS_PER_COLUMN
    assert store.count() == before
    client.set_cookie("lang", "fr")
    token = csrf_token(client, "/import")
    form = {"csrf_token": token, "file": (bytes_io.BytesIO(_many_bad_rows(300).encode()), "many.csv")}
    body = html.unescape(client.post("/import", data=form, content_type="multipart/form-data").get_data(as_text=True))
    assert "Les 20 premiers des 300 problèmes de la colonne persons." in body


def test_a_utf16_upload_is_named_on_the_page(logged_in, store):
    import html
    import io as bytes_io

    from webfixtures import csrf_token

    client = logged_in("ana")
    token = csrf_token(client, "/import")
    data = ("\n".join([HEADER, *event_rows(2)])).encode("utf-16")
    form = {"csrf_token": token, "file": (bytes_io.BytesIO(data), "export.csv")}
    response = client.post("/import", data=form, content_type="multipart/form-data")
    assert response.status_code == 400
    assert 'export.csv: the file is UTF-16; save it as UTF-8 CSV (in Excel: "CSV UTF-8")' in html.unescape(
        response.get_data(as_text=True))


def test_the_command_prints_each_columns_count(tmp_path):
    from click.testing import CliRunner

    from geo_ibm.cli import main

    path = tmp_path / "many.csv"
    path.write_text(_many_bad_rows(300))
    store = tmp_path / "cli.gpkg"
    result = CliRunner().invoke(main, ["--store", str(store), "import", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert "many.csv: 300 problem(s) in 300 of 300 row(s); nothing was imported" in result.output
    assert "first 20 of 300 problems in column 'persons'" in result.output
    assert result.output.count("column 'persons': persons must be at least 1") == PROBLEMS_PER_COLUMN


def test_a_program_posting_a_bad_file_gets_the_counts_as_json(client, store):
    import io as bytes_io

    from geo_ibm import accounts

    token = accounts.new_token(store, "ana")
    headers = {"Authorization": f"Bearer {token}"}
    form = {"file": (bytes_io.BytesIO(_many_bad_rows(300).encode()), "many.csv")}
    response = client.post("/import", headers=headers, data=form, content_type="multipart/form-data")
    body = response.get_json()
    assert response.status_code == 400 and body["code"] == "InvalidParameterValue" and body["parameter"] == "file"
    assert body["description"] == "many.csv: 300 problem(s) in 300 of 300 row(s); nothing was imported"
    assert body["total"] == 300 and len(body["problems"]) == PROBLEMS_PER_COLUMN
    assert body["counts"] == [{"column": "persons", "reason": "persons must be at least 1", "count": 300,
                               "listed": PROBLEMS_PER_COLUMN}]
    good = _many_bad_rows(3).replace(",0,", ",1,")
    form = {"file": (bytes_io.BytesIO(good.encode()), "good.csv")}
    response = client.post("/import", headers=headers, data=form, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.get_json()["accepted"] == 3
