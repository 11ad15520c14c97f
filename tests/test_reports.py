"""Report exports on the web (/reports) and the CLI ``report`` command: roles, formats, audit, bad parameters."""
from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from PIL import Image
from webfixtures import (  # noqa: F401
    app,
    base_store,
    client,
    logged_in,
    store,
    store_path,
)

from geo_ibm import tables
from geo_ibm.cli import main
from geo_ibm.settings import OSM_ATTRIBUTION


def exports(store) -> list[dict]:
    entries = store.audit_log(limit=1000)
    if hasattr(entries, "to_dict"):
        entries = entries.to_dict(orient="records")
    out = []
    for entry in entries:
        if entry["action"] != "export":
            continue
        detail = entry["detail"]
        entry = dict(entry, detail=json.loads(detail) if isinstance(detail, str) else detail)
        out.append(entry)
    return out


# --------------------------------------------------------------------------- roles and page


@pytest.mark.parametrize("url", ["/reports/", "/reports/map.png", "/reports/tables.xlsx", "/reports/tables.csv?table=hour_weekday"])
def test_viewer_is_refused(logged_in, url):
    assert logged_in("vic").get(url).status_code == 403


def test_anonymous_is_sent_to_login(client):
    response = client.get("/reports/map.png")
    assert response.status_code in (302, 401)


def test_page_lists_the_downloads_with_the_filter(logged_in, store):
    c = logged_in("ana")
    response = c.get("/reports/?region=Nord&map=kde&format=pdf")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"{store.count(region='Nord')} events match the filter." in page
    for fmt in ("png", "svg", "pdf"):
        assert f"/reports/map.{fmt}?map=hotspots&amp;region=Nord" in page
    assert "/reports/tables.xlsx?region=Nord" in page
    assert "/reports/tables.csv?table=top_hotspots&amp;region=Nord" in page
    assert re.search(r'<option value="kde" selected>', page) and re.search(r'<option value="pdf" selected>', page)
    # One form: "Apply" reloads this page with the filter, "Download" goes to the chosen file.
    assert 'action="/reports/download"' in page and 'formaction="/reports/"' in page
    # The page follows the strict CSP: no inline script or style.
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert 'href="/reports/"' in c.get("/overview").get_data(as_text=True)
    assert 'href="/reports/"' not in logged_in("vic").get("/overview").get_data(as_text=True)


def test_page_in_french(logged_in):
    c = logged_in("ana")
    page = c.get("/reports/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Rapports" in page and "Télécharger" in page and "Tous les tableaux dans un classeur Excel" in page


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("format=svg&map=hotspots&region=Nord", "/reports/map.svg?map=hotspots&region=Nord"),
        ("format=xlsx&region=Nord", "/reports/tables.xlsx?region=Nord"),
        ("format=csv&table=hour_weekday", "/reports/tables.csv?table=hour_weekday"),
    ],
)
def test_form_redirects_to_the_download(logged_in, query, target):
    response = logged_in("ana").get(f"/reports/download?{query}")
    assert response.status_code == 302 and response.headers["Location"] == target


# --------------------------------------------------------------------------- maps


def test_png_map_is_audited(logged_in, store):
    response = logged_in("ana").get("/reports/map.png?entry_country=DE&dpi=100&width_mm=120")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.headers["Content-Disposition"] == 'attachment; filename="geo_ibm-overview.png"'
    image = Image.open(io.BytesIO(response.data))
    assert abs(image.size[0] - 120 / 25.4 * 100) <= 2
    entry = exports(store)[0]
    assert entry["user"] == "ana"
    assert entry["detail"]["format"] == "png" and entry["detail"]["map"] == "overview"
    assert entry["detail"]["rows"] == store.count(entry_country="DE")
    assert entry["detail"]["filters"] == {"entry_country": "DE"}


@pytest.mark.parametrize(
    ("fmt", "mimetype", "magic", "kind"),
    [("svg", "image/svg+xml", b"<?xml", "hotspots"), ("pdf", "application/pdf", b"%PDF-", "kde")],
)
def test_vector_maps(logged_in, store, fmt, mimetype, magic, kind):
    response = logged_in("ana").get(f"/reports/map.{fmt}?map={kind}&from=2024-01-01&to=2026-12-31")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == mimetype and response.data.startswith(magic)
    assert f'filename="geo_ibm-{kind}.{fmt}"' in response.headers["Content-Disposition"]
    if fmt == "svg":
        ET.fromstring(response.data)
    assert exports(store)[0]["detail"]["map"] == kind


def test_map_in_french_has_french_legend(logged_in):
    from geo_ibm import figures

    response = logged_in("ana").get("/reports/map.svg", headers={"Accept-Language": "fr"})
    english = logged_in("ana").get("/reports/map.svg", headers={"Accept-Language": "en"})
    assert response.status_code == english.status_code == 200
    # Text is drawn as paths, so compare the two drawings: the labels differ.
    assert response.data != english.data
    assert figures.FORMATS["svg"] == response.mimetype


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/reports/map.jpg", "format"),
        ("/reports/map.png?map=heat", "map"),
        ("/reports/map.png?dpi=5000", "dpi"),
        ("/reports/map.png?width_mm=abc", "width_mm"),
        ("/reports/map.png?region=Atlantis", "region"),
        ("/reports/map.png?from=2025-13-01", "from"),
        ("/reports/map.png?colour=red", "colour"),
        ("/reports/map.png?map=hotspots&cell=5", "cell"),
        ("/reports/tables.docx", "format"),
        ("/reports/tables.csv", "table"),
        ("/reports/tables.csv?table=secret", "table"),
        ("/reports/tables.xlsx?table=hour_weekday", "table"),
        ("/reports/?format=gif", "format"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(logged_in, store, url, parameter):
    response = logged_in("ana").get(url)
    body = response.get_data(as_text=True)
    assert response.status_code == 400, body[:300]
    assert parameter in body
    assert exports(store) == []


def test_too_few_events_for_hotspots_is_400(logged_in, store):
    # The last day of the data holds fewer than the 30 events a hot spot analysis needs.
    last = store.events()["observed_at"].max()
    day = f"{last:%Y-%m-%d}"
    response = logged_in("ana").get(f"/reports/map.png?map=hotspots&from={day}&to={day}")
    assert response.status_code == 400 and "too few events" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- tables


def test_xlsx_workbook(logged_in, store):
    response = logged_in("ana").get("/reports/tables.xlsx?region=Sud-Ouest")
    assert response.status_code == 200
    assert response.mimetype == tables.XLSX_MEDIA_TYPE
    assert response.headers["Content-Disposition"] == 'attachment; filename="geo_ibm-tables.xlsx"'
    wb = load_workbook(io.BytesIO(response.data))
    assert wb.sheetnames[0] == "About"
    assert set(wb.sheetnames[1:]) <= {tables.SHEET_NAMES[n] for n in tables.TABLE_NAMES}
    assert "Hour x weekday" in wb.sheetnames
    about = {row[0]: row[1] for row in wb["About"].iter_rows(values_only=True) if row[0]}
    assert about["Filters"] == "region=Sud-Ouest"
    assert about["Events"] == str(store.count(region="Sud-Ouest"))
    assert about["Map data"] == OSM_ATTRIBUTION
    hours = pd.DataFrame(wb["Hour x weekday"].values)
    assert hours.iloc[1:, -1].sum() == store.count(region="Sud-Ouest")
    entry = exports(store)[0]
    assert entry["detail"]["format"] == "xlsx" and "hour_weekday" in entry["detail"]["tables"]


def test_csv_table_matches_a_pandas_recount(logged_in, store):
    response = logged_in("ana").get("/reports/tables.csv?table=region_quarters")
    assert response.status_code == 200
    assert response.mimetype == "text/csv" and response.headers["Content-Disposition"].endswith('"geo_ibm-region_quarters.csv"')
    table = pd.read_csv(io.BytesIO(response.data), encoding="utf-8-sig")
    events = store.events()
    recount = events.groupby(["region", "quarter"]).size()
    for row in table.itertuples(index=False):
        assert row.count == recount.get((row.region, row.quarter), 0)
    assert exports(store)[0]["detail"]["table"] == "region_quarters"


def test_csv_of_a_refused_table_is_400(logged_in):
    response = logged_in("ana").get("/reports/tables.csv?table=canton_quarters&from=2025-02-01&to=2025-02-28")
    assert response.status_code == 400 and "single quarter" in response.get_data(as_text=True)


def test_one_quarter_is_compared_with_the_quarter_before(logged_in, store):
    response = logged_in("ana").get("/reports/tables.csv?table=region_quarters&quarter=2025-Q1&entry_country=unknown")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    table = pd.read_csv(io.BytesIO(response.data), encoding="utf-8-sig")
    assert set(table["quarter"]) == {"2025Q1"}
    assert sorted(table["region"]) == ["Capitale", "Centre-Est", "Nord", "Sud-Ouest"]
    for row in table.itertuples(index=False):
        assert row.count == store.count(quarter="2025Q1", region=row.region, entry_country="unknown")
        assert row.previous == store.count(quarter="2024Q4", region=row.region, entry_country="unknown")
    # The other tables stay on the selected quarter only.
    hours = pd.read_csv(io.BytesIO(logged_in("ana").get("/reports/tables.csv?table=hour_weekday&quarter=2025Q1").data),
                        encoding="utf-8-sig")
    assert hours["total"].sum() == store.count(quarter="2025Q1")


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("suffix", "magic", "extra"),
    [
        ("png", b"\x89PNG", []),
        ("svg", b"<?xml", ["--map", "kde"]),
        ("pdf", b"%PDF-", ["--map", "hotspots", "--region", "Sud-Ouest"]),
        ("xlsx", b"PK", ["--from", "2024-01-01", "--to", "2025-12-31"]),
        ("xlsx", b"PK", ["--quarter", "2025Q2"]),
    ],
)
def test_cli_report_writes_each_format(store_path, tmp_path, suffix, magic, extra):
    from geo_ibm.store import open_store

    out = tmp_path / "out" / f"report.{suffix}"
    result = CliRunner().invoke(main, ["--store", str(store_path), "report", "--out", str(out), *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)
    assert str(out) in result.output
    entry = exports(open_store(store_path))[0]
    assert entry["detail"]["file"] == str(out) and entry["detail"]["format"] == suffix
    if suffix == "xlsx":
        wb = load_workbook(out)
        about = {row[0]: row[1] for row in wb["About"].iter_rows(values_only=True) if row[0]}
        if "--quarter" in extra:
            assert about["Data period"] == "2025Q2" and "Not computed" not in about
            quarters = {row[1] for row in wb["Regions QoQ"].iter_rows(min_row=2, values_only=True)}
            assert quarters == {"2025Q2"}
        else:
            assert about["Data period"] == "2024-01-01 – 2025-12-31"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.docx"], "--out must end in"),
        (["--out", "x.png", "--map", "heat"], "heat"),
        (["--out", "x.png", "--region", "Atlantis"], "Atlantis"),
    ],
)
def test_cli_report_bad_arguments(store_path, tmp_path, args, message):
    args = [a if not a.startswith("x.") else str(tmp_path / a) for a in args]
    result = CliRunner().invoke(main, ["--store", str(store_path), "report", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not list(Path(tmp_path).glob("x.*"))
