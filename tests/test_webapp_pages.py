"""Tests of webapp.pages: map pages and documents, filters, imports, exports, audit and user pages."""
from __future__ import annotations

import html
import io
import json
import re

import geopandas as gpd
import pandas as pd
import pytest
from webfixtures import (  # noqa: F401
    N_EVENTS,
    PASSWORD,
    XSS_NOTE,
    app,
    base_store,
    client,
    csrf_token,
    demo_events,
    events_csv,
    logged_in,
    store,
    store_path,
)

from geo_ibm.errors import ValidationError

NAV = ["/overview", "/hotspots", "/import", "/exports/", "/admin/audit", "/admin/users", "/account"]


def actions(store) -> list[dict]:
    entries = store.audit_log(limit=1000)
    if hasattr(entries, "to_dict"):
        entries = entries.to_dict(orient="records")
    return list(entries)


def upload(c, text: str, filename: str = "events.csv"):
    token = csrf_token(c, "/import")
    data = {"csrf_token": token, "file": (io.BytesIO(text.encode("utf-8")), filename)}
    return c.post("/import", data=data, content_type="multipart/form-data")


# --------------------------------------------------------------------------- navigation and pages


@pytest.mark.parametrize("url", NAV)
def test_every_page_links_every_page(logged_in, url):
    body = logged_in("ada").get(url).get_data(as_text=True)
    for target in NAV:
        assert f'href="{target}"' in body, (url, target)


def test_navigation_hides_what_the_role_cannot_open(logged_in):
    body = logged_in("vic").get("/overview").get_data(as_text=True)
    assert 'href="/hotspots"' in body
    assert 'href="/import"' not in body and 'href="/admin/audit"' not in body


def test_root_redirects_to_overview(logged_in):
    response = logged_in("vic").get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/overview"


def test_overview_embeds_the_map_in_a_sandboxed_frame(logged_in, store):
    body = logged_in("ana").get("/overview?entry_country=DE&from=2024-01-01").get_data(as_text=True)
    frame = re.search(r'<iframe[^>]*>', body).group(0)
    assert 'sandbox="allow-scripts"' in frame and "allow-same-origin" not in frame
    src = re.search(r'src="([^"]+)"', frame).group(1).replace("&amp;", "&")
    assert src.startswith("/maps/overview?") and "entry_country=DE" in src and "from=2024-01-01" in src
    assert f"{store.count(entry_country='DE', start=pd.Timestamp('2024-01-01', tz='Europe/Luxembourg'))} events" in body


def test_overview_map_document(logged_in):
    response = logged_in("vic").get("/maps/overview")
    doc = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert re.findall(r"https?://", doc) == []
    assert "/assets/leaflet/leaflet.js" in doc
    assert "Internal Schengen borders" in doc and "Border crossing points" in doc
    assert "OpenStreetMap contributors, ODbL 1.0" in doc


def test_hotspot_map_document_has_the_layers(logged_in):
    doc = logged_in("vic").get("/maps/hotspots").get_data(as_text=True)
    assert "Gi* hot and cold spots" in doc
    assert "Kernel density contours" in doc
    assert "Density clusters" in doc
    assert re.findall(r"https?://", doc) == []


def _cell_counts(doc: str) -> list[int]:
    counts = []
    decoder = json.JSONDecoder()
    for match in re.finditer(r"_add\((\{)", doc):
        obj, _end = decoder.raw_decode(doc, match.start(1))
        if obj.get("type") == "FeatureCollection":
            counts += [f["properties"]["count"] for f in obj["features"] if "count" in f["properties"]]
    return counts


@pytest.mark.parametrize("max_markers", [0, 10_000])
@pytest.mark.parametrize("query, filters", [("", {}), ("?region=Nord&from=2024-03-01", {"region": "Nord", "start": "2024-03-01"})])
def test_overview_map_cells_count_every_selected_event(logged_in, app, store, max_markers, query, filters):
    # Above MAP_MAX_MARKERS the map is built from coordinates only; the cells must still hold
    # every selected event, and individual markers appear only below the limit.
    app.config["MAP_MAX_MARKERS"] = max_markers
    # Individual markers are for analysts (viewers get cells only, see test_review_fixes).
    doc = logged_in("ana").get(f"/maps/overview{query}").get_data(as_text=True)
    expected = store.count(**filters)
    assert 0 < expected and sum(_cell_counts(doc)) == expected
    first = store.events(**filters, limit=1)["event_id"].iloc[0]
    assert (f'"event_id": "{first}"' in doc) == (max_markers > 0)


def test_map_document_in_french(logged_in):
    c = logged_in("vic")
    c.get("/lang/fr")
    doc = c.get("/maps/overview").get_data(as_text=True)
    assert "Fronti\\u00e8res int\\u00e9rieures Schengen" in doc or "Frontières intérieures Schengen" in doc


def test_unknown_map_is_404_or_400(logged_in):
    response = logged_in("vic").get("/maps/nothing")
    assert response.status_code == 400
    assert "unknown map" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("location_kind=motorway", {"location_kind": "motorway"}),
        ("entry_country=FR", {"entry_country": "FR"}),
        ("entry_country=fr", {"entry_country": "FR"}),
        ("transport_mode=car", {"transport_mode": "car"}),
        ("quarter=2025-Q2", {"quarter": "2025-Q2"}),
        ("region=Nord", {"region": "Nord"}),
    ],
)
def test_filters_reach_the_store(logged_in, store, query, filters):
    body = logged_in("ana").get(f"/overview?{query}").get_data(as_text=True)
    expected = store.count(**filters)
    assert f"{expected} events match the filter." in body
    assert expected < N_EVENTS


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("location_kind=spaceport", "location_kind"),
        ("entry_country=LU", "entry_country"),
        ("transport_mode=rocket", "transport_mode"),
        ("quarter=2025-Q5", "quarter"),
        ("from=2025-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2025-05-01&to=2025-04-01", "from"),
        ("region=Atlantis", "region"),
        ("regoin=Nord", "regoin"),
    ],
)
@pytest.mark.parametrize("url", ["/overview", "/hotspots", "/maps/overview", "/exports/events.csv"])
def test_bad_filter_values_are_400_naming_the_parameter(logged_in, url, query, parameter):
    response = logged_in("ada").get(f"{url}?{query}")
    assert response.status_code == 400
    assert parameter in response.get_data(as_text=True)


def test_bad_filter_is_json_for_programs(client):
    import base64

    auth = base64.b64encode(f"vic:{PASSWORD}".encode()).decode()
    response = client.get("/overview?entry_country=LU", headers={"Authorization": f"Basic {auth}"})
    assert response.status_code == 400 and response.get_json()["parameter"] == "entry_country"


# --------------------------------------------------------------------------- imports


def test_import_valid_file_stores_rows_and_audits(logged_in, store):
    before = store.count()
    csv = events_csv(demo_events(12, seed=99), id_prefix="web-")
    response = upload(logged_in("ana"), csv)
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:1000]
    assert "12 new events" in body
    assert store.count() == before + 12
    assert any(e["action"] == "import" and e["user"] == "ana" and e["detail"]["file"] == "events.csv" for e in actions(store))


def test_import_with_errors_stores_nothing_and_lists_problems(logged_in, store, tmp_path):
    before = store.count()
    frame = pd.read_csv(io.StringIO(events_csv(demo_events(5, seed=98), id_prefix="bad-")), dtype=str)
    frame.loc[1, "persons"] = "many"
    frame.loc[3, "entry_country"] = "XX"
    text = frame.to_csv(index=False)
    response = upload(logged_in("ana"), text)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Nothing was imported." in body
    table = re.search(r'<table class="data" id="problems">.*?</table>', body, re.S).group(0)
    assert "persons" in table and "many" in table and "entry_country" in table and "XX" in table
    assert store.count() == before
    # The page shows the rows and columns the library reports for the same file.
    path = tmp_path / "events.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        store.import_file(path, user="test")
    shown = re.findall(r"<tr><td>(\d*)</td><td>([^<]*)</td>", table)
    assert shown == [(str(p.row), p.column) for p in caught.value.problems]
    assert [c for _r, c in shown] == ["persons", "entry_country"]


def test_import_refuses_unknown_file_types_and_empty_form(logged_in):
    c = logged_in("ana")
    response = upload(c, "hello", filename="events.exe")
    assert response.status_code == 400 and "unsupported file type" in response.get_data(as_text=True)
    for name in ("luxembourg-latest.osm.pbf", "extract.osm"):
        response = upload(c, "<osm/>", filename=name)
        body = html.unescape(response.get_data(as_text=True))
        assert response.status_code == 400 and f"{name}: an OpenStreetMap extract, not an event file" in body
        assert "geo-ibm roads import FILE" in body
    token = csrf_token(c, "/import")
    assert c.post("/import", data={"csrf_token": token}).status_code == 400


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("empty.csv", ""),
        ("header_only.csv", "event_id,observed_at\n"),
        ("garbage.xlsx", "this is not a spreadsheet"),
        ("garbage.gpkg", "not sqlite at all"),
        ("garbage.geojson", "{not json"),
        ("latin1.csv", "event_id;observed_at\nA;\xe9t\xe9"),
    ],
)
def test_broken_uploads_are_400_not_500(logged_in, store, filename, content):
    before = store.count()
    response = upload(logged_in("ana"), content, filename=filename)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert "Nothing was imported." in response.get_data(as_text=True)
    assert store.count() == before


def test_oversized_upload_is_413(logged_in, app):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    response = upload(logged_in("ana"), "x" * 20_000)
    assert response.status_code == 413
    assert "larger than the limit" in response.get_data(as_text=True)


def test_imported_notes_are_shown_escaped(logged_in, store):
    c = logged_in("ana")
    events = demo_events(3, seed=97)
    # The latest events are listed on the overview: make these the latest.
    events["observed_at"] = pd.Timestamp.now(tz="Europe/Luxembourg").floor("s") - pd.Timedelta(hours=1)
    csv = events_csv(events, notes=XSS_NOTE, id_prefix="xss-")
    assert upload(c, csv).status_code == 200
    body = c.get("/overview").get_data(as_text=True)
    assert "&lt;img src=x onerror=window.__xss=1&gt;" in body
    assert XSS_NOTE not in body
    doc = c.get("/maps/overview").get_data(as_text=True)
    assert XSS_NOTE not in doc


# --------------------------------------------------------------------------- exports


def test_export_csv_follows_the_filter_and_is_audited(logged_in, store):
    response = logged_in("ana").get("/exports/events.csv?entry_country=BE")
    assert response.status_code == 200
    assert 'attachment; filename="events.csv"' in response.headers["Content-Disposition"]
    frame = pd.read_csv(io.StringIO(response.get_data(as_text=True)))
    assert len(frame) == store.count(entry_country="BE")
    assert set(frame["entry_country"]) == {"BE"}
    assert {"event_id", "observed_at", "x", "y", "lon", "lat"} <= set(frame.columns)
    assert frame["lon"].between(5.6, 6.7).all() and frame["x"].between(40_000, 120_000).all()
    exported = [e for e in actions(store) if e["action"] == "export"]
    assert exported and exported[0]["user"] == "ana" and "csv" in str(exported[0]["detail"])


def test_export_geojson_and_geopackage(logged_in, store, tmp_path):
    c = logged_in("ana")
    geo = c.get("/exports/events.geojson?location_kind=motorway")
    collection = json.loads(geo.get_data(as_text=True))
    assert len(collection["features"]) == store.count(location_kind="motorway")
    lon, lat = collection["features"][0]["geometry"]["coordinates"][:2]
    assert 5.6 < lon < 6.7 and 49.3 < lat < 50.3
    gpkg = c.get("/exports/events.gpkg")
    path = tmp_path / "out.gpkg"
    path.write_bytes(gpkg.data)
    frame = gpd.read_file(path)
    assert len(frame) == store.count() and frame.crs.to_epsg() == 2169
    assert sum(e["action"] == "export" for e in actions(store)) == 2


def test_export_xlsx_holds_the_filtered_events_with_headings_in_the_interface_language(logged_in, store):
    from openpyxl import load_workbook

    c = logged_in("ana")
    response = c.get("/exports/events.xlsx?entry_country=DE")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(response.data), read_only=True)["events"]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    assert len(body) == store.count(entry_country="DE")
    assert {"event_id", "observed_at", "persons", "destination_country", "x", "lat"} <= set(header)
    column = header.index("entry_country")
    assert {r[column] for r in body} == {"DE"}
    expected = store.events(entry_country="DE")
    assert sorted(r[header.index("persons")] for r in body) == sorted(expected["persons"].tolist())
    assert c.get("/lang/fr?next=/exports/").status_code == 302
    french = load_workbook(io.BytesIO(c.get("/exports/events.xlsx?entry_country=DE").data), read_only=True)["events"]
    heading = next(french.iter_rows(values_only=True))
    assert "identifiant" in heading and "pays de destination" in heading and "event_id" not in heading
    assert [e["detail"]["format"] for e in actions(store) if e["action"] == "export"] == ["xlsx", "xlsx"]


def test_export_xlsx_over_its_row_limit_is_refused_before_reading(logged_in, store, monkeypatch):
    from geo_ibm import exports

    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 10)
    response = logged_in("ana").get("/exports/events.xlsx")
    assert response.status_code == 400
    assert "format xlsx" in response.get_data(as_text=True) and "download CSV" in response.get_data(as_text=True)
    assert not [e for e in actions(store) if e["action"] == "export"]


def test_export_unknown_format_is_400(logged_in):
    assert logged_in("ana").get("/exports/events.shp").status_code == 400


@pytest.mark.parametrize("kind", ["overview", "hotspots"])
def test_export_map_is_self_contained(logged_in, store, kind):
    response = logged_in("ana").get(f"/exports/map.html?map={kind}&entry_country=DE")
    doc = response.get_data(as_text=True)
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    # Nothing is loaded from anywhere: no <script src>, no stylesheet links (URLs inside the
    # inlined libraries' comments and strings are not requests).
    assert not re.search(r"<script[^>]+src=", doc) and not re.search(r"<link[^>]+href=\"(?!data:)", doc)
    assert "/assets/" not in doc
    assert "L.map(" in doc and "Leaflet 1.9" in doc  # the library itself is inlined
    assert any(e["action"] == "export" and kind in str(e["detail"]) for e in actions(store))


@pytest.mark.parametrize(("user", "shown"), [("vic", False), ("ana", True)])
def test_map_pages_offer_the_map_download_to_analysts(logged_in, user, shown):
    body = logged_in(user).get("/hotspots?entry_country=DE&cell=800").get_data(as_text=True)
    link = re.search(r'href="(/exports/map.html\?[^"]+)"', body)
    assert bool(link) is shown
    if link:
        href = link.group(1).replace("&amp;", "&")
        assert "map=hotspots" in href and "entry_country=DE" in href and "cell=800" in href


def test_export_map_refuses_unknown_map(logged_in):
    response = logged_in("ana").get("/exports/map.html?map=secret")
    assert response.status_code == 400 and "map" in response.get_data(as_text=True)


# --------------------------------------------------------------------------- audit and users


def test_audit_page_lists_logins_and_exports(logged_in):
    c = logged_in("ada")
    c.get("/exports/events.csv")
    body = c.get("/admin/audit").get_data(as_text=True)
    assert "login_success" in body and "export" in body
    assert c.get("/admin/audit?limit=0").status_code == 400
    assert c.get("/admin/audit?limt=5").status_code == 400


def test_admin_manages_users(logged_in, store):
    from geo_ibm import accounts

    c = logged_in("ada")
    token = csrf_token(c, "/admin/users")
    response = c.post("/admin/users", data={"csrf_token": token, "action": "add", "name": "newbie", "role": "viewer",
                                            "password": "long-enough-1"})
    assert response.status_code == 302
    assert accounts.get_user(store, "newbie")["role"] == "viewer"
    c.post("/admin/users", data={"csrf_token": token, "action": "role", "name": "newbie", "role": "analyst"})
    assert accounts.get_user(store, "newbie")["role"] == "analyst"
    duplicate = c.post("/admin/users", data={"csrf_token": token, "action": "add", "name": "newbie", "role": "viewer",
                                             "password": "long-enough-1"})
    assert duplicate.status_code == 409
    assert c.post("/admin/users", data={"csrf_token": token, "action": "delete", "name": "ada"}).status_code == 400
    c.post("/admin/users", data={"csrf_token": token, "action": "delete", "name": "newbie"})
    assert accounts.get_user(store, "newbie") is None
    logged = [e["action"] for e in actions(store)]
    assert {"user_add", "user_role", "user_delete"} <= set(logged)


def test_error_pages_never_500_for_user_input(logged_in):
    c = logged_in("ada")
    for url in ["/overview?from=" + "9" * 300, "/overview?quarter=%00", "/exports/map.html?map=%3Cscript%3E",
                "/admin/audit?x=1", "/maps/%3Cb%3E"]:
        response = c.get(url)
        assert 400 <= response.status_code < 500, (url, response.status_code)
        assert "<script>" not in response.get_data(as_text=True)


def test_hotspot_options_are_validated_and_kept_in_the_url(logged_in):
    c = logged_in("vic")
    body = c.get("/hotspots?cell=1000&band=3000&entry_country=FR").get_data(as_text=True)
    src = re.search(r'<iframe[^>]*src="([^"]+)"', body).group(1).replace("&amp;", "&")
    assert "cell=1000" in src and "band=3000" in src and "entry_country=FR" in src
    doc = c.get(src).get_data(as_text=True)
    assert "Gi* hot and cold spots" in doc
    for query, parameter in [("cell=50", "cell"), ("cell=abc", "cell"), ("band=-1", "band")]:
        response = c.get(f"/maps/hotspots?{query}")
        assert response.status_code == 400 and parameter in response.get_data(as_text=True)
    assert c.get("/maps/overview?cell=500").status_code == 400


def test_hotspot_map_reports_methods_that_cannot_run(logged_in, app):
    app.config["MAX_CLUSTER_EVENTS"] = 10
    doc = logged_in("ana").get("/maps/hotspots?cell=700").get_data(as_text=True)
    assert "too many for clustering on request (limit 10)" in doc


def test_instance_folder_is_private(tmp_path, store_path, monkeypatch):
    import os
    import stat

    from webapp import create_app

    monkeypatch.delenv("GEO_IBM_SECRET_KEY", raising=False)
    instance = tmp_path / "fresh-instance"
    create_app({"TESTING": True, "STORE_PATH": str(store_path), "INSTANCE_PATH": str(instance)})
    assert stat.S_IMODE(os.stat(instance).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(instance / "secret_key").st_mode) == 0o600


# --------------------------------------------------------------------------- named hotspots


def _named_rows(body: str) -> list[list[str]]:
    table = re.search(r'<table class="data" id="named-hotspots".*?<tbody>(.*?)</tbody>', body, re.S)
    assert table, "no named hotspots table"
    # A cell's first line (a hotspot's name: the communes it also covers follow on a line of their own).
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell.split("<br>")[0])).strip()
             for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)]


def test_hotspot_page_lists_the_named_hotspots_of_the_map_query(logged_in, store):
    from geo_ibm.analysis import HotspotQuery
    from geo_ibm.namedhotspots import named_hotspots_for_query

    body = logged_in("ana").get("/hotspots?cell=1000").get_data(as_text=True)
    expected = named_hotspots_for_query(store, HotspotQuery(cell=1000.0)).head(20)
    rows = _named_rows(body)
    assert len(expected) >= 2 and len(rows) == len(expected)
    assert [r[0] for r in rows] == [str(k) for k in expected["rank"]]
    assert [r[1] for r in rows] == expected["name"].tolist()
    assert [r[3] for r in rows] == [f"{v:,}" for v in expected["events"]]
    assert [r[5] for r in rows] == expected["confidence"].tolist()
    assert body.index('id="named-hotspots"') > body.index("<iframe")  # under the map
    also = [[c for c in row.communes.split(", ") if c != row.commune] for row in expected.itertuples()]
    assert any(also) and all(html.escape("also " + ", ".join(a)) in body for a in also if a)


def test_viewers_get_the_named_hotspots_protected(logged_in, store, app):
    from geo_ibm.analysis import HotspotQuery
    from geo_ibm.disclosure import protect_counts
    from geo_ibm.namedhotspots import named_hotspots_for_query
    from webapp.access import configured_rule

    rule = configured_rule(app.config)
    body = logged_in("vic").get("/hotspots?cell=1000").get_data(as_text=True)
    expected = named_hotspots_for_query(store, HotspotQuery(cell=1000.0), disclosure=rule).head(20)
    analyst = named_hotspots_for_query(store, HotspotQuery(cell=float(rule.cell_m))).head(20)
    rows = _named_rows(body)
    assert len(rows) == len(expected) >= 1
    assert [r[1] for r in rows] == expected["name"].tolist() == analyst["name"].tolist()
    shown = protect_counts(analyst["events"].to_numpy(), rule)
    assert [r[3] for r in rows] == [f"< {rule.min_count}" if pd.isna(v) else f"{v:,.0f}" for v in shown]
    for row in rows:
        for cell in (row[3], row[4]):
            assert cell.startswith("<") or int(cell.replace(",", "")) % rule.rounding == 0
        assert "%" not in row[6]  # no exact change for aggregates-only readers
    assert "Gi* z" not in body


def test_named_hotspots_that_cannot_run_are_explained(logged_in):
    body = logged_in("ana").get("/hotspots?from=2024-01-01&to=2024-01-02").get_data(as_text=True)
    assert 'id="named-hotspots-note"' in body and "too few events" in body
