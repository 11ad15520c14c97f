"""The GeoPackage backend (geo_ibm.store.geopackage): the file GDAL reads, transactions, WAL, modes, upgrades."""
from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from storefixtures import OUTLINE, event_rows, half_regions, write_events

from geo_ibm import accounts
from geo_ibm.errors import StoreError, ValidationError
from geo_ibm.store import GeoPackageStore, open_store


def make_store(tmp_path, name="s.gpkg") -> GeoPackageStore:
    return GeoPackageStore(tmp_path / name, outline=OUTLINE, assign_regions=half_regions)


@pytest.fixture
def filled(tmp_path) -> GeoPackageStore:
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(400, seed=3)), user="ana")
    return store


def stored_count(path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:  # a connection's own "with" does not close it
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


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


# Debian's gdal-bin depends on python3-gdal, which ships GDAL's own GeoPackage validator.
GDAL_VALIDATOR = "/usr/lib/python3/dist-packages/osgeo_utils/samples/validate_gpkg.py"


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


def test_point_blobs_are_gpkg_header_plus_shapely_wkb():
    from geo_ibm.store import geometries_from_blobs, point_blobs

    x = np.array([80_000.25, 0.0, -12.5e3])
    y = np.array([100_000.0, 0.0, 1e-9])
    blobs = point_blobs(x, y)
    header = b"GP\x00\x01" + (2169).to_bytes(4, "little")
    assert blobs == [header + w for w in shapely.to_wkb(shapely.points(x, y), byte_order=1).tolist()]
    back = geometries_from_blobs(blobs)
    assert shapely.get_x(back).tolist() == x.tolist() and shapely.get_y(back).tolist() == y.tolist()


def test_progress_callback_reports_rows(tmp_path, monkeypatch):
    monkeypatch.setattr("geo_ibm.store.geopackage._CHUNK_ROWS", 40)
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
        import geo_ibm.store.geopackage as st
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


def test_lean_reads_scan_the_covering_index_and_old_stores_get_it(filled, tmp_path):
    # A bulk import rebuilds the secondary indexes after the rows; a small one updates them.
    filled.import_file(write_events(tmp_path / "more.csv", event_rows(20, seed=4, prefix="M")), user="ana")
    with sqlite3.connect(filled.path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "events_lean" in names and "events_observed_utc" not in names
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

        def plan(sql: str) -> str:
            return " ".join(str(r) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))

        assert "COVERING INDEX events_lean" in plan(
            "SELECT quarter, region, count(*), sum(persons) FROM events GROUP BY quarter, region")
        assert "COVERING INDEX events_lean" in plan("SELECT x, y, persons FROM events WHERE region = 'Nord'")
        timed = plan("SELECT * FROM events WHERE observed_utc >= 0 AND observed_utc < 2000000000 "
                     "ORDER BY observed_utc, fid LIMIT 10")
        assert "INDEX events_lean (observed_utc>? AND observed_utc<?)" in timed
        # A store of the earlier layout: a time index beside a covering index led by quarter.
        conn.execute("DROP INDEX events_lean")
        conn.execute("CREATE INDEX events_observed_utc ON events (observed_utc)")
        conn.execute("CREATE INDEX events_lean ON events (quarter, region, canton, location_kind, entry_country, "
                     "transport_mode, observed_utc, persons, x, y)")
    reopened = GeoPackageStore(filled.path, outline=OUTLINE, assign_regions=half_regions)
    assert reopened.counts(by="quarter")["events"].sum() == 420
    with sqlite3.connect(filled.path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "events_lean" in names and "events_observed_utc" not in names
        assert [r[2] for r in conn.execute("PRAGMA index_info(events_lean)")][:2] == ["observed_utc", "quarter"]


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


def test_write_transaction_commits_or_rolls_back(tmp_path):
    store = make_store(tmp_path)
    store.init()
    with store._write() as conn:
        conn.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO accounts VALUES ('ana')")
    with pytest.raises(RuntimeError):
        with store._write() as conn:
            conn.execute("INSERT INTO accounts VALUES ('bob')")
            raise RuntimeError("boom")
    with store._read() as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM accounts")] == ["ana"]
    assert "accounts" not in dict(pyogrio.list_layers(store.path).tolist())


def test_write_transaction_holds_the_write_lock(tmp_path, monkeypatch):
    monkeypatch.setattr("geo_ibm.store.geopackage.BUSY_TIMEOUT_MS", 200)
    store = make_store(tmp_path)
    store.init()
    with store._write_transaction():
        with pytest.raises(StoreError, match="cannot start a write"):
            store.audit("blocked", user="ana", detail={})
        with store._read() as reader:  # readers never wait
            assert reader.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
    store.audit("free", user="ana", detail={})
    assert store.audit_log()["action"].tolist() == ["free"]


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


def test_an_older_store_gets_the_new_tables_and_keeps_its_data(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(20)), user="ana")
    with sqlite3.connect(store.path) as conn:  # the layout before accounts, throttle and version lived here
        for table in ("web_users", "web_tokens", "web_sessions", "throttle_hits", "audit_tallies", "geo_ibm_meta"):
            conn.execute(f"DROP TABLE {table}")
    again = make_store(tmp_path)
    assert again.count() == 20
    accounts.add_user(again, "ana", "viewer", "long-enough")
    assert accounts.verify_password(again, "ana", "long-enough")["role"] == "viewer"
    assert again.version().startswith("gpkg-")
    with sqlite3.connect(store.path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"web_users", "throttle_hits", "audit_tallies", "geo_ibm_meta", "events_lean"} <= names
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_store_without_the_destination_and_nationality_columns_gets_them(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(20)), user="ana")
    with sqlite3.connect(store.path) as conn:  # the events table before these columns
        conn.execute("ALTER TABLE events DROP COLUMN destination_country")
        conn.execute("ALTER TABLE events DROP COLUMN nationalities")
    again = make_store(tmp_path)
    events = again.events()
    assert len(events) == 20 and events["destination_country"].isna().all() and events["nationalities"].isna().all()
    assert again.import_file(write_events(tmp_path / "more.csv", event_rows(25)[20:]), user="ana").accepted == 5
    layer = pyogrio.read_dataframe(store.path, layer="events")
    assert {"destination_country", "nationalities"} <= set(layer.columns) and len(layer) == 25


def test_password_hashes_of_existing_accounts_still_verify(tmp_path):
    from werkzeug.security import generate_password_hash

    store = make_store(tmp_path)
    store.init()
    with sqlite3.connect(store.path) as conn:  # a row as earlier releases wrote it
        conn.execute("INSERT INTO web_users VALUES ('Old', 'planner', ?, '2025-01-02T03:04:05+00:00', "
                     "'2025-01-02T03:04:05+00:00')", (generate_password_hash("from-before-1", method="scrypt"),))
    assert accounts.verify_password(store, "old", "from-before-1")["name"] == "Old"
    assert accounts.list_users(store) == [{"name": "Old", "role": "planner", "created": "2025-01-02T03:04:05+00:00",
                                           "tokens": 0}]


def test_gis_clients_see_only_the_layers_and_tables_of_the_data(tmp_path):
    store = make_store(tmp_path)
    store.init()
    accounts.add_user(store, "ana", "viewer", "long-enough")
    layers = set(dict(pyogrio.list_layers(store.path).tolist()))
    assert layers == {"events", "imports", "audit"}


def test_ground_truth_is_a_layer_written_by_gdal(tmp_path):
    store = make_store(tmp_path)
    truth = pd.DataFrame({"name": ["a", "b"], "start": pd.to_datetime(["2024-01-01 10:00", "2024-07-01 10:00"])})
    layer = gpd.GeoDataFrame(truth, geometry=[shapely.Point(80_000, 90_000).buffer(300)] * 2, crs=2169)
    store.write_ground_truth(layer)
    with sqlite3.connect(store.path) as conn:
        text = [r[0] for r in conn.execute("SELECT start FROM ground_truth ORDER BY fid")]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT rtreecheck('rtree_ground_truth_geom')").fetchone()[0] == "ok"
    # GeoPackage DATETIME is UTC; naive times were local (winter +01:00, summer +02:00).
    assert text == ["2024-01-01T09:00:00.000Z", "2024-07-01T08:00:00.000Z"]
    back = store.ground_truth()
    assert back["start"].tolist() == truth["start"].dt.tz_localize("Europe/Luxembourg").tolist()
    with pytest.raises(ValidationError, match="column name 'fid' cannot be stored"):
        store.write_ground_truth(layer.assign(fid=[1, 2]))


def test_bulk_import_into_an_empty_store_alone_uses_a_rollback_journal_then_wal_again(tmp_path, monkeypatch):
    from geo_ibm.store import gpkg_rtree, gpkg_staging

    monkeypatch.setattr(gpkg_staging, "STAGING_MIN_ROWS", 100)
    modes: list[str] = []
    staged = gpkg_staging.insert_staged

    def watched(conn, *args, **kwargs):
        modes.append(conn.execute("PRAGMA main.journal_mode").fetchone()[0])
        return staged(conn, *args, **kwargs)

    monkeypatch.setattr(gpkg_staging, "insert_staged", watched)
    alone, shared = make_store(tmp_path, "alone.gpkg"), make_store(tmp_path, "shared.gpkg")
    alone.import_file(write_events(tmp_path / "e.csv", event_rows(300)), user="ana")
    alone.import_file(write_events(tmp_path / "f.csv", event_rows(200, prefix="F")), user="ana")  # not empty
    shared.init()
    with contextlib.closing(sqlite3.connect(shared.path)) as reader:  # an idle reader keeps the file in WAL
        assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        shared.import_file(tmp_path / "e.csv", user="ana")
    assert modes == ["delete", "wal", "wal"]
    for store, rows in ((alone, 500), (shared, 300)):
        assert not store.path.with_name(store.path.name + "-journal").exists()
        with contextlib.closing(sqlite3.connect(store.path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute(f"SELECT rtreecheck('{gpkg_rtree.RTREE}')").fetchone()[0] == "ok"
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == rows

    # A failure inside the journalled transaction rolls the appended pages back; the file is WAL again.
    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    failing = make_store(tmp_path, "failing.gpkg")
    monkeypatch.setattr(gpkg_rtree, "copy_staged", broken)
    with pytest.raises(RuntimeError, match="disk gone"):
        failing.import_file(tmp_path / "e.csv", user="ana")
    with contextlib.closing(sqlite3.connect(failing.path)) as conn:
        assert modes[-1] == "delete" and conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # A process killed in that mode leaves the file so: the next init() puts WAL back.
        conn.execute("PRAGMA journal_mode = DELETE")
    failing.init()
    with contextlib.closing(sqlite3.connect(failing.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
