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
