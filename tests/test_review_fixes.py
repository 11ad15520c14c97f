"""Tests of the review fixes in the web app: record visibility by role, uploads, CSV cells, paths, modes."""
from __future__ import annotations

import io
import re

import pytest
from webfixtures import (  # noqa: F401
    PASSWORD,
    app,
    base_store,
    client,
    csrf_token,
    logged_in,
    store,
    store_path,
)


def _quarter_with_few_events(store) -> str:
    events = store.events(columns=["event_id", "observed_at"])
    quarters = events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None).dt.to_period("Q").value_counts()
    quarter = quarters[quarters > 0].sort_values().index[0]
    return f"{quarter.year}-Q{quarter.quarter}"


# --------------------------------------------------------------------------- records by role


@pytest.mark.parametrize("name, details", [("vic", False), ("ana", True), ("ada", True)])
def test_overview_page_lists_records_for_analysts_only(logged_in, store, name, details):
    body = logged_in(name).get("/overview").get_data(as_text=True)
    latest = store.events(columns=["event_id", "observed_at"])["event_id"].iloc[-1]
    assert ('id="recent-events"' in body) == details
    assert (f">{latest}<" in body) == details
    assert ("Individual events need the analyst role." in body) == (not details)


@pytest.mark.parametrize("order", [("ana", "vic"), ("vic", "ana")])
def test_map_document_details_follow_the_role_not_the_cache(logged_in, store, order):
    quarter = _quarter_with_few_events(store)
    url = f"/maps/overview?quarter={quarter}"
    ids = set(store.events(quarter=quarter)["event_id"].astype(str))
    assert 0 < len(ids) <= 1000
    docs = {}
    for name in order:  # both orders: a cached map of one role must not reach the other
        response = logged_in(name).get(url)
        assert response.status_code == 200
        docs[name] = response.get_data(as_text=True)
    viewer, analyst = docs["vic"], docs["ana"]
    assert not any(f'"event_id": "{i}"' in viewer for i in ids)
    assert '"source_unit"' not in viewer and '"notes"' not in viewer
    assert "Individual events need the analyst role." in viewer
    assert all(f'"event_id": "{i}"' in analyst for i in ids)
    assert '"source_unit"' in analyst


def test_exported_map_keeps_the_records_for_analysts(logged_in, store):
    quarter = _quarter_with_few_events(store)
    first = store.events(quarter=quarter)["event_id"].iloc[0]
    doc = logged_in("ana").get(f"/exports/map.html?map=overview&quarter={quarter}").get_data(as_text=True)
    assert f'"event_id": "{first}"' in doc
    assert logged_in("vic").get(f"/exports/map.html?map=overview&quarter={quarter}").status_code == 403


# --------------------------------------------------------------------------- uploads


def _upload(c, data: bytes, filename: str):
    token = csrf_token(c, "/import")
    form = {"csrf_token": token, "file": (io.BytesIO(data), filename)}
    return c.post("/import", data=form, content_type="multipart/form-data")


@pytest.mark.parametrize("filename, expected", [
    ("a" * 300 + ".csv", "a" * 100 + ".csv"),
    ("b" * 300 + ".tar.csv", "b" * 100 + ".csv"),  # the stem "bbb….tar" is cut to 100
    ("../../etc/passwd.csv", "etc_passwd.csv"),
    ("événements.csv", "evenements.csv"),
    ("???", "upload"),
])
def test_upload_name_is_short_and_keeps_the_suffix(filename, expected):
    from webapp.imports import upload_name

    name = upload_name(filename)
    assert name == expected and len(name.encode("utf-8")) <= 255


def test_upload_with_a_300_character_name_is_imported(logged_in, store):
    from webfixtures import demo_events, events_csv

    before = store.count()
    csv = events_csv(demo_events(3, seed=301), id_prefix="long-name-").encode("utf-8")
    response = _upload(logged_in("ana"), csv, "x" * 300 + ".csv")
    body = response.get_data(as_text=True)
    assert response.status_code == 200, body[:500]
    assert "3 new events" in body and store.count() == before + 3


# --------------------------------------------------------------------------- spreadsheet formulas

FORMULAS = ['=HYPERLINK("http://evil/","x")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "\tTAB", "\rCR"]


def test_formula_cells_are_neutralised_but_numbers_stay_numbers():
    import pandas as pd

    from geo_ibm.io import neutralise_formulas

    frame = pd.DataFrame({"notes": FORMULAS + ["plain", None], "persons": [-3, 2, 1, 0, 4, 5, -1, 7],
                          "x": [-1.5] * 8})
    out = neutralise_formulas(frame)
    assert list(out["notes"][:7]) == ["'" + f for f in FORMULAS] + ["plain"] and pd.isna(out["notes"].iloc[7])
    assert out["persons"].tolist() == [-3, 2, 1, 0, 4, 5, -1, 7] and out["persons"].dtype == frame["persons"].dtype
    assert out["x"].tolist() == [-1.5] * 8
    assert list(frame["notes"])[:1] == FORMULAS[:1]  # the input is left alone


def test_events_csv_export_neutralises_formulas(logged_in, store, tmp_path):
    import pandas as pd
    from webfixtures import demo_events, events_csv

    events = demo_events(len(FORMULAS[:2]), seed=302)
    text = events_csv(events, id_prefix="formula-")
    frame = pd.read_csv(io.StringIO(text), dtype=str)
    frame["notes"] = FORMULAS[:2]
    path = tmp_path / "formulas.csv"
    path.write_text(frame.to_csv(index=False), encoding="utf-8")
    store.import_file(path, user="fixture")
    response = logged_in("ana").get("/exports/events.csv")
    assert response.status_code == 200
    exported = pd.read_csv(io.StringIO(response.get_data(as_text=True)), dtype={"event_id": str})
    notes = exported.set_index("event_id")["notes"]
    assert [notes[f"formula-{i}"] for i in frame["event_id"].str.removeprefix("formula-")] == ["'" + f for f in FORMULAS[:2]]
    assert not exported["notes"].dropna().astype(str).str.match(r"^[=+\-@\t\r]").any()
    assert pd.api.types.is_numeric_dtype(exported["x"]) and pd.api.types.is_integer_dtype(exported["persons"])


# --------------------------------------------------------------------------- server paths


@pytest.mark.parametrize("data, filename, message", [
    (b"", "empty.csv", "empty.csv: the file is empty"),
    (b"PK\x03\x04garbage" * 20, "Rapport T3.xlsx", "Rapport T3.xlsx: cannot read as an XLSX workbook"),
])
def test_import_errors_name_the_uploaded_file_not_the_server_path(logged_in, app, store, data, filename, message):
    import html

    before = store.count()
    response = _upload(logged_in("ana"), data, filename)
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert message in body
    assert app.instance_path not in body and "uploads" not in body and "upload-" not in body
    assert store.count() == before


# --------------------------------------------------------------------------- OSM attribution

OSM_LAYERS = {"outline": "outline", "borders": "internal-borders", "tripoints": "tripoints",
              "cantons": "cantons", "regions": "regions"}
"""API layer name -> OGC collection id of the OpenStreetMap-derived reference layers."""
OWN_LAYERS = {"crossings": "crossing-points", "corridors": "corridors"}


@pytest.mark.parametrize("layer, osm", [*((name, True) for name in OSM_LAYERS), *((name, False) for name in OWN_LAYERS)])
def test_api_layers_carry_the_osm_attribution(logged_in, layer, osm):
    from geo_ibm.settings import OSM_ATTRIBUTION

    c = logged_in("vic")
    body = c.get(f"/api/layers/{layer}").get_json()
    assert body["type"] == "FeatureCollection" and body["features"]
    assert body.get("attribution") == (OSM_ATTRIBUTION if osm else None)
    listed = {entry["name"]: entry for entry in c.get("/api/layers").get_json()["layers"]}
    assert listed[layer].get("attribution") == (OSM_ATTRIBUTION if osm else None)


@pytest.mark.parametrize("collection, osm", [*((cid, True) for cid in OSM_LAYERS.values()),
                                             *((cid, False) for cid in OWN_LAYERS.values())])
def test_ogc_collections_carry_attribution_and_licence(logged_in, collection, osm):
    from geo_ibm.settings import OSM_ATTRIBUTION

    c = logged_in("vic")
    licence = {"href": "https://opendatacommons.org/licenses/odbl/", "rel": "license"}

    def licence_links(doc):
        return [{k: link[k] for k in ("href", "rel")} for link in doc["links"] if link["rel"] == "license"]

    meta = c.get(f"/ogc/collections/{collection}").get_json()
    items = c.get(f"/ogc/collections/{collection}/items?limit=2").get_json()
    listed = {doc["id"]: doc for doc in c.get("/ogc/collections").get_json()["collections"]}[collection]
    for doc in (meta, items, listed):
        assert doc.get("attribution") == (OSM_ATTRIBUTION if osm else None)
        assert licence_links(doc) == ([licence] if osm else [])
    assert items["numberReturned"] > 0
    feature_id = items["features"][0].get("id")
    if feature_id is not None:
        one = c.get(f"/ogc/collections/{collection}/items/{feature_id}").get_json()
        assert one.get("attribution") == (OSM_ATTRIBUTION if osm else None) and licence_links(one) == ([licence] if osm else [])


# --------------------------------------------------------------------------- hotspot cost limits


@pytest.mark.parametrize("url, parameter", [
    ("/maps/hotspots?cell=200&band=5000", "band"),
    ("/hotspots?cell=200&band=5000", "band"),
    ("/exports/map.html?map=hotspots&cell=200&band=4500", "band"),
    ("/reports/map.png?map=hotspots&cell=200&band=5000", "band"),
    ("/reports/tables.xlsx?cell=200&band=5000", "band"),
])
def test_hotspot_sizes_over_the_cost_limits_are_400_naming_the_parameter(logged_in, app, forbid, url, parameter):
    from geo_ibm.analysis import check_budget
    from geo_ibm.errors import ValidationError
    from geo_ibm.store.base import EventStore
    from webapp.reference import layer_frame

    # The same refusal as the CLI and API give (run_method calls check_budget).
    with app.test_request_context():
        area = layer_frame("outline").geometry.union_all()
    query = dict(part.split("=") for part in url.split("?")[1].split("&") if part.split("=")[0] in ("cell", "band"))
    method = "emerging" if "band" not in query else "gi"
    with pytest.raises(ValidationError, match=parameter):
        check_budget(method, area=area, cell=float(query["cell"]), band=float(query["band"]) if "band" in query else None)
    client = logged_in("ana")
    # Not timed: reading the events or running a method fails (the app turns the AssertionError
    # into a 500) and must not have started when the sizes are refused.
    for name in ("events", "event_points"):
        forbid(EventStore, name, why="the sizes are refused first")
    forbid("geo_ibm.analysis.requests.run_method", why="the sizes are refused first")
    response = client.get(url)
    assert forbid.ran == []
    assert response.status_code == 400
    assert re.search(rf"{parameter}: \d+ m (is|makes about) ", response.get_data(as_text=True))


def test_hotspot_sizes_within_the_limits_still_draw(logged_in):
    response = logged_in("vic").get("/maps/hotspots?cell=1000&band=3000")
    assert response.status_code == 200 and "Gi* hot and cold spots" in response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/maps/hotspots?cell=100", "/hotspots?cell=150", "/reports/map.png?map=hotspots&cell=100"])
def test_page_cells_below_200_m_are_refused_by_the_form_rules(logged_in, url):
    # 100 m would make about 260,000 cells, beyond the emerging hot spot limit of 100,000.
    response = logged_in("ana").get(url)
    assert response.status_code == 400
    assert "cell" in response.get_data(as_text=True) and "200" in response.get_data(as_text=True)
