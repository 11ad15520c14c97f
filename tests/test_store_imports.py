"""The import pipeline of the event store (geo_ibm.store.imports), run against every backend."""
from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from storefixtures import HEADER, event_rows, raw_rows, store_factory, with_field, write_events  # noqa: F401

from geo_ibm.errors import StoreError, ValidationError
from geo_ibm.store import ImportReport


def test_import_stores_every_field(store_factory, tmp_path):
    store = store_factory()
    path = write_events(tmp_path / "e.csv", event_rows(5))
    destinations, nationalities = ["de", "NL", "unknown", "", "GB"], ["SY", "sy;AF", "", "TR; tr", "XK"]
    lines = path.read_text(encoding="latin-1").splitlines()
    lines = [f"{lines[0]};destination_country;nationalities"] + [
        f'{row};{d};"{n}"' for row, d, n in zip(lines[1:], destinations, nationalities, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    report = store.import_file(path, user="ana")
    assert report == ImportReport(file="e.csv", sha256=report.sha256, rows=5, accepted=5, rejected=0, duplicates=0)
    import hashlib

    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    got = store.events()
    assert list(got.columns) == [
        "event_id", "observed_at", "location_kind", "persons", "smugglers", "transport_mode", "entry_country",
        "destination_country", "nationalities", "operation_id", "source_unit", "notes", "quarter", "canton", "region",
        "geometry",
    ]
    source = pd.read_csv(path, sep=";", dtype=str).set_index("event_id")
    got = got.set_index("event_id").loc[source.index]
    # codes as ISO spells them, each nationality once; empty cells are "not recorded"
    assert got["destination_country"].tolist() == ["DE", "NL", "unknown", None, "GB"]
    assert got["nationalities"].tolist() == ["SY", "SY;AF", None, "TR", "XK"]
    expected_time = pd.to_datetime(source["observed_at"]).dt.tz_localize("Europe/Luxembourg")
    assert (got["observed_at"] == expected_time).all()
    np.testing.assert_allclose(got.geometry.x, source["x"].astype(float))
    assert got["persons"].tolist() == source["persons"].astype(int).tolist()
    assert got["notes"].tolist() == source["notes"].tolist()
    expected_q = [f"{t.year}Q{t.quarter}" for t in expected_time]
    assert got["quarter"].tolist() == expected_q
    assert set(got["region"]) <= {"Sud-Ouest", "Centre-Est"}
    ((text, epoch),) = raw_rows(store, "SELECT observed_at, observed_utc FROM events WHERE event_id = 'E00000'")
    stamp = expected_time.loc["E00000"]
    assert text == stamp.isoformat() and epoch == int(stamp.timestamp())


def test_reimport_same_file_adds_nothing(store_factory, tmp_path):
    store = store_factory()
    path = write_events(tmp_path / "e.csv", event_rows(20))
    store.import_file(path, user="ana")
    again = store.import_file(path, user="ana")
    assert (again.accepted, again.duplicates, again.rows) == (0, 20, 20)
    assert store.count() == 20
    more = write_events(tmp_path / "more.csv", event_rows(25))  # 20 known + 5 new
    report = store.import_file(more, user="ana")
    assert (report.accepted, report.duplicates) == (5, 20)
    assert store.count() == 25


def test_conflicting_reimport_stores_nothing(store_factory, tmp_path):
    store = store_factory()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(10)), user="ana")
    rows = event_rows(12)
    rows[3] = with_field(rows[3], "notes", "changed note")
    rows[7] = with_field(rows[7], "transport_mode", "truck")
    with pytest.raises(StoreError, match=r"2 event_id\(s\) are already stored with different content: E00003, E00007"):
        store.import_file(write_events(tmp_path / "changed.csv", rows), user="ana")
    assert store.count() == 10
    assert store.event("E00003")["notes"] == "n3"
    last = store.imports().iloc[0]
    assert (last["file_name"], last["status"], last["accepted"]) == ("changed.csv", "failed", 0)


@pytest.mark.parametrize(("column", "value"), [
    ("notes", "changed"), ("notes", ""), ("persons", "4"), ("smugglers", "1"), ("location_kind", "rest_area"),
    ("observed_at", "2024-01-01T00:00:01"), ("x", "70000.5"),
])
def test_reimport_refuses_any_changed_content_and_accepts_the_same(store_factory, tmp_path, column, value):
    store = store_factory()
    rows = event_rows(6)
    rows[5] = with_field(rows[5], "notes", "")  # a missing value stored, and found again the same
    store.import_file(write_events(tmp_path / "e.csv", rows), user="ana")
    again = store.import_file(write_events(tmp_path / "again.csv", [*rows, *event_rows(8)[6:]]), user="ana")
    assert (again.accepted, again.duplicates) == (2, 6)
    changed = list(rows)
    changed[4] = with_field(changed[4], column, value)
    assert changed[4] != rows[4]
    with pytest.raises(StoreError, match=r"1 event_id\(s\) are already stored with different content: E00004"):
        store.import_file(write_events(tmp_path / "changed.csv", changed), user="ana")
    # a value where the store has none is a change too
    filled = list(rows)
    filled[5] = with_field(filled[5], "notes", "now there is one")
    with pytest.raises(StoreError, match=r"E00005"):
        store.import_file(write_events(tmp_path / "filled.csv", filled), user="ana")
    assert store.count() == 8


def test_invalid_file_stores_nothing_and_lists_every_problem(store_factory, tmp_path):
    store = store_factory()
    rows = event_rows(6)
    rows[1] = with_field(rows[1], "location_kind", "harbour")
    rows[4] = with_field(rows[4], "observed_at", "20x4-07-21T11:00")
    path = write_events(tmp_path / "bad.csv", rows)
    with pytest.raises(ValidationError) as info:
        store.import_file(path, user="ana")
    message = str(info.value)
    assert "bad.csv: 2 problem(s) in 2 of 6 row(s); nothing was imported" in message
    assert "bad.csv, row 3, column 'location_kind': unknown location_kind" in message
    assert "bad.csv, row 6, column 'observed_at'" in message
    assert [(p.row, p.column) for p in info.value.problems] == [(3, "location_kind"), (6, "observed_at")]
    assert store.count() == 0
    failed = store.imports().iloc[0]
    assert (failed["status"], failed["rows"], failed["rejected"]) == ("failed", 6, 2)
    audit = store.audit_log().iloc[0]
    assert audit["action"] == "import_failed" and audit["user"] == "ana" and audit["detail"]["file"] == "bad.csv"


def test_skip_invalid_writes_rejected_rows_with_reasons(store_factory, tmp_path):
    store = store_factory()
    rows = event_rows(6)
    rows[2] = with_field(rows[2], "entry_country", "NL")
    path = write_events(tmp_path / "some.csv", rows)
    report = store.import_file(path, user="ana", skip_invalid=True)
    assert (report.rows, report.accepted, report.rejected) == (6, 5, 1)
    assert report.rejected_path == tmp_path / "some.csv.rejected.csv"
    rejected = pd.read_csv(report.rejected_path, dtype=str, encoding="utf-8-sig")
    assert rejected["row"].tolist() == ["4"] and rejected["event_id"].tolist() == ["E00002"]
    assert "entry_country: unknown entry_country (allowed: BE, FR, DE, unknown)" in rejected["reason"].iloc[0]
    assert store.count() == 5
    custom = tmp_path / "out" / "rej.csv"
    again = store.import_file(path, user="ana", skip_invalid=True, rejected_path=custom)
    assert (again.accepted, again.duplicates, again.rejected, again.rejected_path) == (0, 5, 1, custom)
    assert custom.exists()


def test_skip_invalid_still_refuses_file_level_problems(store_factory, tmp_path):
    store = store_factory()
    path = tmp_path / "cols.csv"
    path.write_text("id;when\n1;2025-01-01\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="missing required column"):
        store.import_file(path, user="ana", skip_invalid=True)
    assert store.count() == 0


def _write_format(path, frame: pd.DataFrame) -> None:
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False, sep=",", encoding="utf-8")
    elif suffix == ".xlsx":
        frame.to_excel(path, index=False, engine="openpyxl")
    else:
        gdf = gpd.GeoDataFrame(
            frame.drop(columns=["x", "y"]), geometry=gpd.points_from_xy(frame["x"].astype(float), frame["y"].astype(float)), crs=2169
        )
        gdf.to_crs(4326 if suffix == ".geojson" else 2169).to_file(path, engine="pyogrio")


@pytest.mark.parametrize(("suffix", "bad_row"), [(".csv", 4), (".xlsx", 4), (".geojson", 3), (".gpkg", 3)])
def test_every_format_imports_and_reports_bad_rows(store_factory, tmp_path, suffix, bad_row):
    store = store_factory()
    frame = pd.DataFrame([r.split(";") for r in event_rows(4)], columns=HEADER.split(";"))
    frame["persons"] = frame["persons"].astype(int)
    frame.loc[2, "persons"] = 0
    bad = tmp_path / f"bad{suffix}"
    _write_format(bad, frame)
    with pytest.raises(ValidationError, match=rf"bad{suffix}, row {bad_row}, column 'persons': persons must be at least 1"):
        store.import_file(bad, user="ana")
    assert store.count() == 0
    frame.loc[2, "persons"] = 2
    good = tmp_path / f"good{suffix}"
    _write_format(good, frame)
    report = store.import_file(good, user="ana", name="upload" + suffix)
    assert (report.file, report.accepted) == ("upload" + suffix, 4)
    stored = store.events().set_index("event_id").loc[frame["event_id"]]
    np.testing.assert_allclose(stored.geometry.x, frame["x"].astype(float), atol=1e-3)
    assert stored["persons"].tolist() == frame["persons"].tolist()
    assert store.imports().loc[0, "file_name"] == "upload" + suffix


def test_import_events_from_geodataframe(store_factory, tmp_path):
    store = store_factory()
    gdf = gpd.GeoDataFrame(
        {
            "event_id": ["D1", "D2"],
            "observed_at": pd.to_datetime(["2025-03-01 10:00", "2025-04-01 11:00"]).tz_localize("Europe/Luxembourg"),
            "location_kind": ["urban", "motorway"],
            "persons": [2, 3],
            "smugglers": [0, 1],
            "transport_mode": ["car", "bus"],
            "entry_country": ["DE", "BE"],
            "operation_id": ["OP1", None],
            "source_unit": [None, "U2"],
            "notes": [None, None],
        },
        geometry=[shapely.Point(75_000, 80_000), shapely.Point(90_000, 100_000)],
        crs=2169,
    )
    report = store.import_events(gdf, source="demo seed=1", user="demo", sha256=None)
    assert (report.file, report.accepted) == ("demo seed=1", 2)
    assert store.event("D1")["operation_id"] == "OP1"
    assert store.quarter_counts().to_dict("list") == {"quarter": ["2025Q1", "2025Q2"], "events": [1, 1], "persons": [2, 3]}
    bad = gdf.assign(persons=[0, 3])
    with pytest.raises(ValidationError, match="demo bad, row 1, column 'persons'"):
        store.import_events(bad.assign(event_id=["X1", "X2"]), source="demo bad", user="demo")
    assert store.count() == 2


def test_default_store_uses_shipped_outline_and_cantons(store_factory, tmp_path):
    store = store_factory("real", outline=None, assign_regions=None)
    path = tmp_path / "real.csv"
    path.write_text(
        "event_id,observed_at,lat,lon,location_kind,persons,smugglers,transport_mode,entry_country\n"
        "LUX,2025-05-01 10:00,49.6116,6.1319,urban,2,0,car,FR\n"
        "PARIS,2025-05-01 10:00,48.8566,2.3522,urban,2,0,car,FR\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="real.csv, row 3, column 'lat': location lies outside Luxembourg"):
        store.import_file(path, user="ana")
    report = store.import_file(path, user="ana", skip_invalid=True)
    assert report.accepted == 1
    event = store.event("LUX")
    assert (event["canton"], event["region"]) == ("Luxembourg", "Capitale")
    assert store.count(region="capitale") == 1


@pytest.mark.parametrize("content, name, message", [
    (b"", "My events.csv", "My events.csv: the file is empty"),
    (b"PK\x03\x04 not really a workbook", "rapport T3.xlsx", "rapport T3.xlsx: cannot read as an XLSX workbook"),
])
def test_import_messages_name_the_given_file_never_its_path(store_factory, tmp_path, content, name, message):
    store = store_factory("geo_ibm", outline=None, assign_regions=None)
    folder = tmp_path / "upload-3futivex"
    folder.mkdir()
    path = folder / ("upload" + Path(name).suffix)
    path.write_bytes(content)
    with pytest.raises(ValidationError, match=re.escape(message)) as caught:
        store.import_file(path, user="u", name=name)
    shown = str(caught.value) + "".join(str(p) for p in caught.value.problems)
    assert str(tmp_path) not in shown and "upload-3futivex" not in shown and "upload." not in shown
    # Without a name (the command line) the file's own name is used.
    with pytest.raises(ValidationError, match=re.escape(path.name)):
        store.import_file(path, user="u")


def _old_event_id_layout(path) -> None:
    """Turn an empty store into the earlier layout: ``event_id`` declared ``UNIQUE`` in the table."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
        conn.execute("DROP TABLE events")
        conn.execute(ddl.replace("event_id TEXT NOT NULL", "event_id TEXT NOT NULL UNIQUE", 1))


@pytest.mark.parametrize("layout", ["current", "unique-column"])
@pytest.mark.parametrize("before", [0, 30])
def test_geopackage_staged_bulk_insert_stores_what_the_row_inserts_store(tmp_path, monkeypatch, before, layout):
    import sqlite3

    from storefixtures import OUTLINE, half_regions

    import geo_ibm.store.geopackage as gpkg
    from geo_ibm.store import gpkg_rtree, gpkg_staging

    rows = write_events(tmp_path / "e.csv", event_rows(400, seed=8))
    tables = {}
    for mode, threshold in (("staged", 100), ("rows", 10**9)):
        monkeypatch.setattr(gpkg_staging, "STAGING_MIN_ROWS", threshold)
        store = gpkg.GeoPackageStore(tmp_path / f"{mode}.gpkg", outline=OUTLINE, assign_regions=half_regions)
        store.init()
        if layout != "current":
            _old_event_id_layout(store.path)
            store = gpkg.GeoPackageStore(store.path, outline=OUTLINE, assign_regions=half_regions)
        if before:
            store.import_file(write_events(tmp_path / "first.csv", event_rows(before, prefix="F")), user="ana")
        store.import_file(rows, user="ana")
        store.import_file(write_events(tmp_path / "last.csv", event_rows(3, prefix="L")), user="ana")
        with sqlite3.connect(store.path) as conn:
            tables[mode] = conn.execute("SELECT * FROM events ORDER BY fid").fetchall()
            assert conn.execute("SELECT rtreecheck('rtree_events_geom')").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == before + 403
            assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0] == 6
            unique = [r[1] for r in conn.execute("PRAGMA index_list(events)") if r[2]]
            assert unique == (["events_event_id"] if layout == "current" else ["sqlite_autoindex_events_1"])
            gpkg_rtree.register_functions(conn)  # the R-tree triggers call them
            with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
                conn.execute("INSERT INTO events (event_id, observed_at, observed_utc, quarter, location_kind, persons, "
                             "smugglers, transport_mode, entry_country, x, y) SELECT event_id, observed_at, "
                             "observed_utc, quarter, location_kind, persons, smugglers, transport_mode, entry_country, "
                             "x, y FROM events LIMIT 1")
            # The copy from the staging table (no AUTOINCREMENT there) moves the store's fid sequence.
            assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()[0] == before + 403
            bounds = conn.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents "
                                  "WHERE table_name = 'events'").fetchone()
            assert bounds == conn.execute("SELECT min(x), min(y), max(x), max(y) FROM events").fetchone()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".import-")]
    assert tables["staged"] == tables["rows"] and len(tables["rows"]) == before + 403
    assert [r[0] for r in tables["staged"]] == list(range(1, before + 404))


@pytest.mark.parametrize("arrived", [False, True])
def test_regions_assigned_on_a_second_thread_belong_to_each_new_row(tmp_path, monkeypatch, arrived):
    import threading

    from storefixtures import OUTLINE, half_regions

    from geo_ibm.store import GeoPackageStore
    from geo_ibm.store import imports as pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_REGIONS_ROWS", 100)
    calls: list[tuple[int, bool]] = []

    def regions(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        calls.append((len(gdf), threading.current_thread() is threading.main_thread()))
        return half_regions(gdf)

    store = GeoPackageStore(tmp_path / "s.gpkg", outline=OUTLINE, assign_regions=regions)
    earlier = event_rows(30, seed=4, prefix="F")
    if arrived:  # events stored by another process after the pipeline found the store empty
        store.import_file(write_events(tmp_path / "first.csv", earlier), user="ana")
        monkeypatch.setattr(store, "count", lambda **filters: 0)
        calls.clear()
    report = store.import_file(write_events(tmp_path / "e.csv", [*earlier, *event_rows(400, seed=8)]), user="ana")
    assert (report.accepted, report.duplicates) == ((400, 30) if arrived else (430, 0))
    assert calls == [(430, False)]  # every valid row, on the second thread
    stored = store.events()
    x = stored.geometry.x.to_numpy()
    assert (stored["region"].to_numpy() == np.where(x < 80_000, "Sud-Ouest", "Centre-Est")).all()
    assert (stored["canton"].to_numpy() == np.where(x < 80_000, "Capellen", "Remich")).all()
