"""Tests for the GeoPackage event store (geo_ibm.store)."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_ibm.errors import NotFoundError, StoreError, ValidationError
from geo_ibm.store import GeoPackageStore, ImportReport, open_store

OUTLINE = shapely.box(50_000, 57_000, 107_000, 139_000)
HEADER = "event_id;observed_at;x;y;location_kind;persons;smugglers;transport_mode;entry_country;notes"


def half_regions(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A stand-in region layer for speed: west and east of x = 80 000."""
    out = gdf.copy()
    west = out.geometry.x.to_numpy() < 80_000
    out["canton"] = np.where(west, "Capellen", "Remich")
    out["region"] = np.where(west, "Sud-Ouest", "Centre-Est")
    return out


def make_store(tmp_path, name="s.gpkg") -> GeoPackageStore:
    return GeoPackageStore(tmp_path / name, outline=OUTLINE, assign_regions=half_regions)


def event_rows(n: int, *, seed: int = 0, prefix: str = "E") -> list[str]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01T00:00:00")
    rows = []
    kinds = ["motorway", "urban", "rest_area"]
    modes = ["car", "van", "bus"]
    countries = ["BE", "FR", "DE"]
    for i in range(n):
        stamp = (start + pd.Timedelta(hours=int(rng.integers(0, 2 * 365 * 24)))).strftime("%Y-%m-%dT%H:%M")
        x, y = rng.uniform(60_000, 100_000), rng.uniform(60_000, 130_000)
        rows.append(
            f"{prefix}{i:05d};{stamp};{x:.2f};{y:.2f};{kinds[i % 3]};{1 + i % 4};{i % 2};{modes[(i // 3) % 3]};"
            f"{countries[(i // 9) % 3]};n{i}"
        )
    return rows


def with_field(row: str, column: str, value: str) -> str:
    cells = row.split(";")
    cells[HEADER.split(";").index(column)] = value
    return ";".join(cells)


def write_events(path, rows: list[str]):
    path.write_bytes(("\n".join([HEADER, *rows]) + "\n").encode("latin-1"))
    return path


def stored_count(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


# --- creation and GDAL compatibility -------------------------------------------------------


def test_init_is_idempotent_and_gdal_opens_the_store(tmp_path):
    store = make_store(tmp_path)
    store.init()
    store.init()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(30)), user="ana")
    store.init()
    layers = dict(pyogrio.list_layers(store.path).tolist())
    assert layers["events"] == "Point" and "imports" in layers and "audit" in layers
    gdf = pyogrio.read_dataframe(store.path, layer="events")
    assert len(gdf) == 30 and gdf.crs.to_epsg() == 2169
    ours = store.events()
    merged = gdf.merge(pd.DataFrame({"event_id": ours["event_id"], "ox": ours.geometry.x, "oy": ours.geometry.y}), on="event_id")
    np.testing.assert_allclose(merged.geometry.x, merged["ox"])
    np.testing.assert_allclose(merged.geometry.y, merged["oy"])
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


GDAL_VALIDATOR = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"


@pytest.mark.skipif(not os.path.exists(GDAL_VALIDATOR), reason="GDAL's validate_gpkg.py (python3-gdal) not installed")
def test_gdal_geopackage_validator_accepts_the_store(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(300)), user="ana")
    store.import_file(write_events(tmp_path / "f.csv", event_rows(20, prefix="F")), user="ana")
    truth = gpd.GeoDataFrame(
        {"name": ["h"], "start": pd.to_datetime(["2024-01-01"]).tz_localize("UTC"), "n": [1]},
        geometry=[shapely.Point(80_000, 90_000).buffer(500)],
        crs=2169,
    )
    store.write_ground_truth(truth)
    out = subprocess.run(["/usr/bin/python3", GDAL_VALIDATOR, str(store.path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "" and "Exception" not in out.stderr


def test_ogrinfo_reads_layer_and_uses_spatial_index(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(200)), user="ana")
    out = subprocess.run(["ogrinfo", "-ro", "-so", str(store.path), "events"], capture_output=True, text=True, check=True)
    assert "Feature Count: 200" in out.stdout and 'ID["EPSG",2169]' in out.stdout
    assert "ERROR" not in out.stderr and "Warning" not in out.stderr
    bbox = (70_000, 80_000, 85_000, 110_000)
    out = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-spat", *map(str, bbox), str(store.path), "events"], capture_output=True, text=True, check=True
    )
    everything = store.events()
    inside = ((everything.geometry.x >= bbox[0]) & (everything.geometry.x <= bbox[2])
              & (everything.geometry.y >= bbox[1]) & (everything.geometry.y <= bbox[3]))
    assert f"Feature Count: {int(inside.sum())}" in out.stdout
    sql = subprocess.run(
        ["ogrinfo", "-ro", str(store.path), "-sql", "SELECT HasSpatialIndex('events', 'geom')"],
        capture_output=True, text=True, check=True,
    )
    assert "= 1" in sql.stdout


@pytest.mark.parametrize("sizes", [(0, 1), (5, 1), (60, 3000), (3000, 60), (3000, 2000)])
def test_rtree_valid_after_bulk_and_incremental_imports(tmp_path, sizes):
    store = make_store(tmp_path)
    for k, n in enumerate(sizes):
        if n:
            store.import_file(write_events(tmp_path / f"e{k}.csv", event_rows(n, seed=k, prefix=f"P{k}-")), user="ana")
    store.init()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT rtreecheck('rtree_events_geom')").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == sum(sizes)
    if sum(sizes) > 10:
        everything = store.events()
        bbox = (65_000, 70_000, 90_000, 100_000)
        inside = everything.geometry.x.between(bbox[0], bbox[2]) & everything.geometry.y.between(bbox[1], bbox[3])
        assert sorted(store.events(bbox=bbox)["event_id"]) == sorted(everything.loc[inside, "event_id"])


def test_gdal_edits_keep_rtree_in_sync(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(10)), user="ana")
    subprocess.run(["ogrinfo", str(store.path), "-sql", "DELETE FROM events WHERE event_id = 'E00003'"],
                   capture_output=True, text=True, check=True)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 9
        # our Python ST_* functions serve the same triggers
    with store.connect() as conn:
        conn.execute("UPDATE events SET geom = NULL WHERE event_id = 'E00004'")
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 8
        conn.execute("UPDATE events SET geom = (SELECT geom FROM events WHERE event_id = 'E00005') WHERE event_id = 'E00004'")
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 9
        assert conn.execute("SELECT rtreecheck('rtree_events_geom')").fetchone()[0] == "ok"


def test_point_blobs_are_gpkg_header_plus_shapely_wkb():
    from geo_ibm.store import geometries_from_blobs, point_blobs

    x = np.array([80_000.25, 0.0, -12.5e3])
    y = np.array([100_000.0, 0.0, 1e-9])
    blobs = point_blobs(x, y)
    header = b"GP\x00\x01" + (2169).to_bytes(4, "little")
    assert blobs == [header + w for w in shapely.to_wkb(shapely.points(x, y), byte_order=1).tolist()]
    back = geometries_from_blobs(blobs)
    assert shapely.get_x(back).tolist() == x.tolist() and shapely.get_y(back).tolist() == y.tolist()


# --- imports -------------------------------------------------------------------------------


def test_import_stores_every_field(tmp_path):
    store = make_store(tmp_path)
    path = write_events(tmp_path / "e.csv", event_rows(5))
    report = store.import_file(path, user="ana")
    assert report == ImportReport(file="e.csv", sha256=report.sha256, rows=5, accepted=5, rejected=0, duplicates=0)
    import hashlib

    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    got = store.events()
    assert list(got.columns) == [
        "event_id", "observed_at", "location_kind", "persons", "smugglers", "transport_mode", "entry_country",
        "operation_id", "source_unit", "notes", "quarter", "canton", "region", "geometry",
    ]
    source = pd.read_csv(path, sep=";", dtype=str).set_index("event_id")
    got = got.set_index("event_id").loc[source.index]
    expected_time = pd.to_datetime(source["observed_at"]).dt.tz_localize("Europe/Luxembourg")
    assert (got["observed_at"] == expected_time).all()
    np.testing.assert_allclose(got.geometry.x, source["x"].astype(float))
    assert got["persons"].tolist() == source["persons"].astype(int).tolist()
    assert got["notes"].tolist() == source["notes"].tolist()
    expected_q = [f"{t.year}Q{t.quarter}" for t in expected_time]
    assert got["quarter"].tolist() == expected_q
    assert set(got["region"]) <= {"Sud-Ouest", "Centre-Est"}
    with sqlite3.connect(store.path) as conn:
        text, epoch = conn.execute("SELECT observed_at, observed_utc FROM events WHERE event_id = 'E00000'").fetchone()
    stamp = expected_time.loc["E00000"]
    assert text == stamp.isoformat() and epoch == int(stamp.timestamp())


def test_reimport_same_file_adds_nothing(tmp_path):
    store = make_store(tmp_path)
    path = write_events(tmp_path / "e.csv", event_rows(20))
    store.import_file(path, user="ana")
    again = store.import_file(path, user="ana")
    assert (again.accepted, again.duplicates, again.rows) == (0, 20, 20)
    assert store.count() == 20
    more = write_events(tmp_path / "more.csv", event_rows(25))  # 20 known + 5 new
    report = store.import_file(more, user="ana")
    assert (report.accepted, report.duplicates) == (5, 20)
    assert store.count() == 25


def test_conflicting_reimport_stores_nothing(tmp_path):
    store = make_store(tmp_path)
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


def test_invalid_file_stores_nothing_and_lists_every_problem(tmp_path):
    store = make_store(tmp_path)
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


def test_skip_invalid_writes_rejected_rows_with_reasons(tmp_path):
    store = make_store(tmp_path)
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


def test_skip_invalid_still_refuses_file_level_problems(tmp_path):
    store = make_store(tmp_path)
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
def test_every_format_imports_and_reports_bad_rows(tmp_path, suffix, bad_row):
    store = make_store(tmp_path)
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


def test_progress_callback_reports_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("geo_ibm.store._CHUNK_ROWS", 40)
    store = make_store(tmp_path)
    calls = []
    store.import_file(write_events(tmp_path / "e.csv", event_rows(100)), user="ana", progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, 100) and calls[-1] == (100, 100)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert (40, 100) in calls and (80, 100) in calls


def test_killed_import_leaves_store_unchanged(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "first.csv", event_rows(50)), user="ana")
    before = (store.count(), len(store.imports()), len(store.audit_log()))
    big = write_events(tmp_path / "big.csv", event_rows(3000, seed=1, prefix="K"))
    script = textwrap.dedent(
        f"""
        import os, signal, shapely
        import geo_ibm.store as st
        st._CHUNK_ROWS = 500
        store = st.GeoPackageStore({str(store.path)!r}, outline=shapely.box(50000, 57000, 107000, 139000), assign_regions=False)
        def progress(done, total):
            if 0 < done < total:
                print("killing after", done, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        store.import_file({str(big)!r}, user="bob", progress=progress)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert "killing after 500" in proc.stdout
    assert (store.count(), len(store.imports()), len(store.audit_log())) == before
    assert len(pyogrio.read_dataframe(store.path, layer="events")) == 50
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 50
        assert conn.execute("SELECT rtreecheck('rtree_events_geom')").fetchone()[0] == "ok"
    report = store.import_file(big, user="bob")
    assert report.accepted == 3000 and store.count() == 3050


def test_reader_sees_consistent_snapshot_during_import(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "a.csv", event_rows(10)), user="ana")
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 10
    store.import_file(write_events(tmp_path / "b.csv", event_rows(30, prefix="B")), user="ana")
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 10  # its snapshot
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 40
    reader.close()


def test_import_events_from_geodataframe(tmp_path):
    store = make_store(tmp_path)
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


def test_default_store_uses_shipped_outline_and_cantons(tmp_path):
    store = GeoPackageStore(tmp_path / "real.gpkg")
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


# --- queries -------------------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(400, seed=3)), user="ana")
    return store


def brute(store: GeoPackageStore) -> gpd.GeoDataFrame:
    return store.events()


FILTER_CASES = [
        ({"start": "2024-07-01"}, lambda g: g["observed_at"] >= pd.Timestamp("2024-07-01", tz="Europe/Luxembourg")),
        ({"end": "2024-03-31"}, lambda g: g["observed_at"] < pd.Timestamp("2024-04-01", tz="Europe/Luxembourg")),
        (
            {"start": "2024-02-01T06:00", "end": "2024-09-01T00:00:00+02:00"},
            lambda g: (g["observed_at"] >= pd.Timestamp("2024-02-01T06:00", tz="Europe/Luxembourg"))
            & (g["observed_at"] < pd.Timestamp("2024-08-31T22:00Z")),
        ),
        ({"quarter": "2024q3"}, lambda g: g["quarter"] == "2024Q3"),
        ({"quarter": "2025-Q1"}, lambda g: (g["observed_at"].dt.year == 2025) & (g["observed_at"].dt.quarter == 1)),
        ({"location_kind": "Motorway"}, lambda g: g["location_kind"] == "motorway"),
        ({"location_kind": ["urban", "rest_area"]}, lambda g: g["location_kind"].isin(["urban", "rest_area"])),
        ({"entry_country": "be"}, lambda g: g["entry_country"] == "BE"),
        ({"transport_mode": ["bus"], "entry_country": "FR"}, lambda g: (g["transport_mode"] == "bus") & (g["entry_country"] == "FR")),
        ({"region": "sud-ouest"}, lambda g: g.geometry.x < 80_000),
        ({"canton": ["Remich"]}, lambda g: g.geometry.x >= 80_000),
        (
            {"bbox": (70_000, 80_000, 85_000, 110_000)},
            lambda g: g.geometry.x.between(70_000, 85_000) & g.geometry.y.between(80_000, 110_000),
        ),
        (   # most of the extent: scanned without the R-tree
            {"bbox": (65_000, 62_000, 100_500, 131_000)},
            lambda g: g.geometry.x.between(65_000, 100_500) & g.geometry.y.between(62_000, 131_000),
        ),
        ({"event_id": ["E00003", "E00399", "E00100", "nope"]}, lambda g: g["event_id"].isin(["E00003", "E00100", "E00399"])),
        ({"event_id": "E00007", "region": "Centre-Est"}, lambda g: (g["event_id"] == "E00007") & (g.geometry.x >= 80_000)),
]
"""Filters with the pandas predicate that selects the same events from the full frame."""


@pytest.mark.parametrize(("filters", "predicate"), FILTER_CASES)
def test_filters_match_brute_force(filled, filters, predicate):
    everything = brute(filled)
    expected = sorted(everything.loc[predicate(everything).to_numpy(), "event_id"])
    assert 0 < len(expected) < len(everything)
    assert sorted(filled.events(**filters)["event_id"]) == expected
    assert filled.count(**filters) == len(expected)


def test_date_objects_and_paging(filled):
    import datetime

    day = filled.events(start=datetime.date(2024, 5, 1), end=datetime.date(2024, 5, 31))
    assert day["observed_at"].min() >= pd.Timestamp("2024-05-01", tz="Europe/Luxembourg")
    assert day["observed_at"].max() < pd.Timestamp("2024-06-01", tz="Europe/Luxembourg")
    everything = filled.events()
    assert everything["observed_at"].is_monotonic_increasing
    page = filled.events(limit=10, offset=5)
    assert page["event_id"].tolist() == everything["event_id"].iloc[5:15].tolist()
    assert filled.events(offset=395)["event_id"].tolist() == everything["event_id"].iloc[395:].tolist()


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        ({"start": "last tuesday"}, "start is not a date"),
        ({"end": "2024-13-01"}, "end is not a date"),
        ({"quarter": "2024Q5"}, "quarter must look like '2024Q3'|quarter must look like '2025Q3'"),
        ({"region": "Atlantis"}, "region 'Atlantis' is unknown; known regions: .*Sud-Ouest"),
        ({"canton": "Paris"}, "canton 'Paris' is unknown"),
        ({"location_kind": "harbour"}, "location_kind 'harbour' is unknown; allowed: motorway"),
        ({"entry_country": ["BE", "NL"]}, "entry_country 'NL' is unknown"),
        ({"transport_mode": "boat"}, "transport_mode 'boat' is unknown"),
        ({"bbox": (1, 2, 3)}, "bbox must be four numbers"),
        ({"bbox": (10, 0, 0, 10)}, "bbox must have minx <= maxx"),
        ({"limit": -1}, "limit must be a whole number"),
        ({"offset": 1.5}, "offset must be a whole number"),
        ({"event_id": [1, 2]}, "event_id must be a text or a list"),
    ],
)
def test_bad_filters_name_the_parameter(filled, filters, match):
    with pytest.raises(ValidationError, match=match):
        filled.events(**filters)


def test_count_refuses_unknown_filter(filled):
    with pytest.raises(ValidationError, match="unknown filter.*colour"):
        filled.count(colour="red")


def test_quarter_counts_and_summary_match_pandas(filled):
    everything = filled.events()
    expected = everything.groupby("quarter").agg(events=("event_id", "size"), persons=("persons", "sum")).reset_index()
    got = filled.quarter_counts()
    pd.testing.assert_frame_equal(got, expected.astype({"events": np.int64, "persons": np.int64}), check_dtype=False)
    summary = filled.summary()
    assert summary["events"] == 400 and summary["persons"] == int(everything["persons"].sum())
    assert summary["first_event"] == everything["observed_at"].min().isoformat()
    assert "events" in summary["layers"] and summary["imports"] == 1


# --- lean reads: coordinates, chosen columns, grouped counts ---------------------------------


@pytest.fixture
def tied(tmp_path):
    """400 events on only 7 distinct times, so ordering by time alone would be ambiguous."""
    rows = event_rows(400, seed=5, prefix="T")
    times = ["2024-02-01T08:00", "2024-05-05T12:00", "2024-05-05T12:00:01", "2024-08-01T00:00",
             "2024-11-30T23:59", "2025-01-01T00:00", "2025-06-15T10:00"]
    rng = np.random.default_rng(9)
    rows = [with_field(r, "observed_at", times[k]) for r, k in zip(rows, rng.integers(0, len(times), len(rows)))]
    store = make_store(tmp_path, "tied.gpkg")
    store.import_file(write_events(tmp_path / "t.csv", rows), user="ana")
    return store


@pytest.mark.parametrize(("filters", "predicate"), FILTER_CASES)
def test_event_points_match_brute_force(filled, filters, predicate):
    everything = brute(filled)
    chosen = everything[predicate(everything).to_numpy()]
    expected = np.column_stack([chosen.geometry.x, chosen.geometry.y])
    got = filled.event_points(**filters)
    assert got.shape == expected.shape and got.dtype == np.float64
    # Same multiset of points (the order is unspecified): compare after a lexicographic sort.
    np.testing.assert_array_equal(got[np.lexsort(got.T[::-1])], expected[np.lexsort(expected.T[::-1])])


@pytest.mark.parametrize(
    "columns",
    [["observed_at", "persons"], ["persons"], ["observed_at"], ["region", "observed_at", "smugglers", "notes"],
     ["event_id", "quarter", "canton", "location_kind", "entry_country", "transport_mode", "operation_id", "source_unit"]],
)
@pytest.mark.parametrize("filters", [{}, {"region": "centre-est"}, {"start": "2024-05-05", "end": "2024-12-31"}])
def test_lean_columns_equal_the_full_frame(tied, columns, filters):
    full = tied.events(**filters)
    lean = tied.events(**filters, columns=columns)
    assert 0 < len(lean) < 400 or not filters
    assert list(lean.columns) == [*columns, "geometry"] and lean.crs == full.crs
    pd.testing.assert_frame_equal(pd.DataFrame(lean), pd.DataFrame(full[[*columns, "geometry"]]))


def test_lean_columns_keep_the_time_order_and_paging(tied):
    full = tied.events()
    assert full["observed_at"].nunique() == 7
    lean = tied.events(columns=["event_id"])
    assert lean["event_id"].tolist() == full["event_id"].tolist()
    page = tied.events(columns=["event_id", "persons"], limit=25, offset=190)
    pd.testing.assert_frame_equal(pd.DataFrame(page), pd.DataFrame(full[["event_id", "persons", "geometry"]].iloc[190:215].reset_index(drop=True)))
    empty = tied.events(columns=["observed_at", "persons", "notes"], quarter="2023Q1")
    assert len(empty) == 0 and list(empty.columns) == ["observed_at", "persons", "notes", "geometry"]


@pytest.mark.parametrize("columns", [["geometry"], ["observed_at", "observed_at"], ["colour"], "x"])
def test_lean_columns_refuse_unknown_names(filled, columns):
    with pytest.raises(ValidationError, match="columns must be distinct names of observed_at"):
        filled.events(columns=columns)


@pytest.mark.parametrize(
    "by", ["quarter", ("quarter", "region"), ["region"], ("canton", "entry_country", "transport_mode"), ("location_kind",)]
)
@pytest.mark.parametrize(("filters", "predicate"), [FILTER_CASES[0], FILTER_CASES[5], FILTER_CASES[9], FILTER_CASES[11]])
def test_counts_match_pandas_groupby(filled, by, filters, predicate):
    everything = brute(filled)
    chosen = everything[predicate(everything).to_numpy()]
    keys = [by] if isinstance(by, str) else list(by)
    expected = (chosen.groupby(keys).agg(events=("event_id", "size"), persons=("persons", "sum")).reset_index()
                .astype({"events": np.int64, "persons": np.int64}))
    got = filled.counts(by=by, **filters)
    assert list(got.columns) == [*keys, "events", "persons"]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["events"].sum() == filled.count(**filters)


def test_counts_keep_events_without_region(tmp_path):
    store = GeoPackageStore(tmp_path / "nr.gpkg", outline=OUTLINE, assign_regions=False)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(50, seed=1)), user="ana")
    got = store.counts(by=("region", "quarter"))
    assert got["region"].isna().all() and got["events"].sum() == 50
    quarters = store.quarter_counts()
    assert got["events"].tolist() == quarters["events"].tolist()


@pytest.mark.parametrize("by", ["persons", ("quarter", "x"), (), "observed_at"])
def test_counts_refuse_other_groupings(filled, by):
    with pytest.raises(ValidationError, match="by must name one or more of quarter, region"):
        filled.counts(by=by)


def test_counts_and_points_refuse_unknown_filters(filled):
    with pytest.raises(ValidationError, match="unknown filter.*colour"):
        filled.counts(colour="red")
    with pytest.raises(ValidationError, match="unknown filter.*limit"):
        filled.event_points(limit=3)


def test_lean_reads_scan_the_covering_index_and_old_stores_get_it(filled, tmp_path):
    # A bulk import rebuilds the secondary indexes after the rows; a small one updates them.
    filled.import_file(write_events(tmp_path / "more.csv", event_rows(20, seed=4, prefix="M")), user="ana")
    with sqlite3.connect(filled.path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"events_observed_utc", "events_lean"} <= names
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        plan = " ".join(str(r) for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT quarter, region, count(*), sum(persons) FROM events GROUP BY quarter, region"))
        assert "COVERING INDEX events_lean" in plan and "TEMP B-TREE" not in plan
        conn.execute("DROP INDEX events_lean")
    filled.init()
    with sqlite3.connect(filled.path) as conn:
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_lean'").fetchone()
    assert filled.counts(by="quarter")["events"].sum() == 420


def test_event_lookup_and_not_found(filled):
    event = filled.event("E00007")
    assert event["event_id"] == "E00007" and event["notes"] == "n7"
    assert isinstance(event["geometry"], shapely.Point)
    with pytest.raises(NotFoundError, match="event_id 'nope' not found"):
        filled.event("nope")


def test_missing_store_is_a_store_error(tmp_path):
    store = GeoPackageStore(tmp_path / "none.gpkg")
    with pytest.raises(StoreError, match="no event store at .*none.gpkg"):
        store.events()
    with pytest.raises(StoreError, match="run 'geo-ibm init'"):
        store.summary()


def test_init_refuses_foreign_sqlite_file(tmp_path):
    path = tmp_path / "other.gpkg"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a)")
    with pytest.raises(StoreError, match="not a GeoPackage"):
        GeoPackageStore(path).init()


# --- audit, imports, ground truth, connect ---------------------------------------------------


def test_audit_log_and_imports(tmp_path):
    store = make_store(tmp_path)
    store.init()
    store.audit("export", user="ana", detail={"what": "hotspots", "n": 3})
    store.audit("login", user="bob", detail={})
    log = store.audit_log()
    assert log["action"].tolist() == ["login", "export"]
    assert log["detail"].iloc[1] == {"what": "hotspots", "n": 3}
    assert str(log["at"].dt.tz) == "UTC"
    assert len(store.audit_log(limit=1)) == 1
    store.import_file(write_events(tmp_path / "e.csv", event_rows(3)), user="ana")
    imports = store.imports()
    assert imports.loc[0, ["user", "file_name", "rows", "accepted", "rejected", "status"]].tolist() == [
        "ana", "e.csv", 3, 3, 0, "ok",
    ]
    assert len(imports.loc[0, "sha256"]) == 64
    entry = store.audit_log().iloc[0]
    assert entry["action"] == "import" and entry["detail"]["accepted"] == 3
    with pytest.raises(ValidationError, match="action must be"):
        store.audit(" ", user="ana", detail={})


def test_ground_truth_round_trip(tmp_path):
    store = make_store(tmp_path)
    truth = gpd.GeoDataFrame(
        {
            "hotspot_id": ["H01", "H02"],
            "share": [0.1, 0.2],
            "events": [10, 20],
            "start": pd.to_datetime(["2024-01-01", "2024-06-01"]).tz_localize("Europe/Luxembourg"),
            "active": [True, False],
        },
        geometry=[shapely.Point(80_000, 90_000), shapely.Point(81_000, 91_000)],
        crs=2169,
    )
    assert len(store.ground_truth()) == 0 if store.path.exists() else True
    store.write_ground_truth(truth)
    store.write_ground_truth(truth)  # replaces
    back = store.ground_truth()
    pd.testing.assert_frame_equal(pd.DataFrame(back.drop(columns="geometry")), pd.DataFrame(truth.drop(columns="geometry")), check_dtype=False)
    assert back.geometry.equals(truth.geometry)
    gdal = pyogrio.read_dataframe(store.path, layer="ground_truth")
    assert gdal["hotspot_id"].tolist() == ["H01", "H02"] and gdal.crs.to_epsg() == 2169
    assert store.summary()["ground_truth"] == 2


def test_connect_commits_or_rolls_back(tmp_path):
    store = make_store(tmp_path)
    store.init()
    with store.connect() as conn:
        conn.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO accounts VALUES ('ana')")
    with pytest.raises(RuntimeError):
        with store.connect() as conn:
            conn.execute("INSERT INTO accounts VALUES ('bob')")
            raise RuntimeError("boom")
    with store.connect() as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM accounts")] == ["ana"]
    assert "accounts" not in dict(pyogrio.list_layers(store.path).tolist())


def test_immediate_connect_holds_the_write_lock(tmp_path, monkeypatch):
    monkeypatch.setattr("geo_ibm.store.BUSY_TIMEOUT_MS", 200)
    store = make_store(tmp_path)
    store.init()
    with store.connect(immediate=True):
        with pytest.raises(StoreError, match="cannot start a write"):
            store.audit("blocked", user="ana", detail={})
        with store.connect() as reader:  # readers never wait
            assert reader.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
    store.audit("free", user="ana", detail={})
    assert store.audit_log()["action"].tolist() == ["free"]


def test_open_store_uses_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("GEO_IBM_STORE", str(tmp_path / "env.gpkg"))
    assert open_store().path == tmp_path / "env.gpkg"
    assert open_store(tmp_path / "x.gpkg").path == tmp_path / "x.gpkg"


def test_audit_detail_is_json(tmp_path):
    store = make_store(tmp_path)
    store.audit("note", user="ana", detail={"path": tmp_path})
    with sqlite3.connect(store.path) as conn:
        detail = conn.execute("SELECT detail FROM audit").fetchone()[0]
    assert json.loads(detail) == {"path": str(tmp_path)}
    assert os.path.exists(store.path)


@pytest.mark.parametrize("content, name, message", [
    (b"", "My events.csv", "My events.csv: the file is empty"),
    (b"PK\x03\x04 not really a workbook", "rapport T3.xlsx", "rapport T3.xlsx: cannot read as an XLSX workbook"),
])
def test_import_messages_name_the_given_file_never_its_path(tmp_path, content, name, message):
    from geo_ibm.errors import ValidationError
    from geo_ibm.store import open_store

    store = open_store(tmp_path / "s" / "geo_ibm.gpkg")
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


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000])
def test_new_store_and_its_folder_are_private(tmp_path, umask):
    path = tmp_path / "instance" / "geo_ibm.gpkg"
    old = os.umask(umask)
    try:
        store = open_store(path)
        store.init()
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(path) as conn:  # a writer keeps the -wal/-shm files while connected
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        conn.execute("INSERT INTO probe VALUES (1)")
        for suffix in ("-wal", "-shm"):
            extra = path.with_name(path.name + suffix)
            assert extra.exists() and extra.stat().st_mode & 0o777 == 0o600, suffix


def test_init_tightens_an_existing_world_readable_store(tmp_path):
    path = tmp_path / "shared" / "geo_ibm.gpkg"
    open_store(path).init()
    os.chmod(path, 0o644)
    open_store(path).init()
    assert path.stat().st_mode & 0o777 == 0o600
