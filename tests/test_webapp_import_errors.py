"""Malformed uploads through /import and ``geo-ibm import``: a 400 naming the file (and row), never a 500."""
from __future__ import annotations

import io

from webfixtures import app, base_store, client, csrf_token, logged_in, store, store_path  # noqa: F401

UNCLOSED = ("event_id,observed_at,location_kind,persons,smugglers,transport_mode,entry_country,lat,lon\n"
            "A1,2025-03-01T10:00:00,motorway,2,1,car,FR,49.6,6.1\n"
            '"B\n')


def _post(client, data: bytes, name: str, **headers):
    form = {"file": (io.BytesIO(data), name)}
    if not headers:
        form["csrf_token"] = csrf_token(client, "/import")
    return client.post("/import", data=form, headers=headers, content_type="multipart/form-data")


def test_an_unclosed_quote_in_a_short_record_is_a_400_naming_file_and_row(logged_in, store):
    from geo_ibm import accounts

    before = store.count()
    response = _post(logged_in("ana"), UNCLOSED.encode(), "u.csv")
    assert response.status_code == 400
    assert "u.csv: row 3 cannot be split into the header&#39;s columns" in response.get_data(as_text=True)
    token = accounts.new_token(store, "ana")
    response = _post(logged_in("ana"), UNCLOSED.encode(), "u.csv", Authorization=f"Bearer {token}")
    body = response.get_json()
    assert response.status_code == 400 and body["parameter"] == "file"
    assert body["description"].startswith("u.csv: row 3 cannot be split into the header's columns: a quote opened")
    assert [(p["row"], p["reason"]) for p in body["problems"]] == [
        (3, "cannot be split into the header's columns: a quote opened in a cell is not closed")]
    assert store.count() == before


def test_the_command_names_the_file_and_row_of_an_unclosed_quote(tmp_path):
    from click.testing import CliRunner

    from geo_ibm.cli import main

    path = tmp_path / "u.csv"
    path.write_text(UNCLOSED)
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "cli.gpkg"), "import", str(path)],
                                catch_exceptions=False)
    assert result.exit_code == 1
    assert "u.csv: row 3 cannot be split into the header's columns" in result.output


def _points_gpkg(path, *, crs):
    import geopandas as gpd
    import pyogrio
    import shapely

    frame = gpd.GeoDataFrame({"event_id": ["G1"], "observed_at": ["2025-03-01T10:00:00"], "location_kind": ["motorway"],
                              "persons": ["2"], "smugglers": ["1"], "transport_mode": ["car"], "entry_country": ["FR"]},
                             geometry=[shapely.Point(6.1, 49.6)], crs=crs)
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", UserWarning)  # pyogrio: 'crs' was not provided
        pyogrio.write_dataframe(frame, path, layer="events")
    return path.read_bytes()


def test_a_geopackage_without_a_crs_is_a_400_naming_the_uploaded_file_not_its_server_path(logged_in, store, tmp_path):
    from geo_ibm import accounts

    data = _points_gpkg(tmp_path / "gp.gpkg", crs=None)
    name = "gp nocrs (1).gpkg"  # stored on the server as gp_nocrs_1.gpkg in a scratch folder
    response = _post(logged_in("ana"), data, name)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "gp nocrs (1).gpkg: the layer has no CRS; expected EPSG:2169 or EPSG:4326" in page
    assert "upload-" not in page and "gp_nocrs_1" not in page and "instance" not in page
    token = accounts.new_token(store, "ana")
    body = _post(logged_in("ana"), data, name, Authorization=f"Bearer {token}").get_json()
    assert body["parameter"] == "file"
    assert body["description"] == "gp nocrs (1).gpkg: the layer has no CRS; expected EPSG:2169 or EPSG:4326"
    assert body["problems"] == [{"row": None, "column": "geometry", "value": None,
                                 "reason": "the layer has no CRS; expected EPSG:2169 or EPSG:4326"}]
    # the import is recorded as failed under the user's file name, and why, without the server's path
    latest = store.imports().iloc[0]
    assert (latest["file_name"], latest["status"]) == (name, "failed")
    assert latest["message"].startswith(f"{name}: the layer has no CRS")


def test_a_geopackage_with_a_crs_is_still_imported(logged_in, store, tmp_path):
    from geo_ibm import accounts

    token = accounts.new_token(store, "ana")
    response = _post(logged_in("ana"), _points_gpkg(tmp_path / "gp.gpkg", crs="EPSG:4326"), "gp.gpkg",
                     Authorization=f"Bearer {token}")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.get_json()["accepted"] == 1
