"""The R-tree of the GeoPackage store (geo_ibm.store.gpkg_rtree): bulk loader and SQLite's own inserts, triggers."""
from __future__ import annotations

import sqlite3
import subprocess

import pytest
from storefixtures import OUTLINE, event_rows, half_regions, write_events

from geo_ibm.store import GeoPackageStore, gpkg_rtree


def make_store(tmp_path, name="s.gpkg", **options) -> GeoPackageStore:
    return GeoPackageStore(tmp_path / name, outline=OUTLINE, assign_regions=half_regions, **options)


@pytest.fixture
def packs(monkeypatch) -> list[int]:
    """Counts the bulk loads (the R-tree rebuilt in its shadow tables, in place or copied from a staged file)."""
    calls: list[int] = []

    def counting(real):
        def count(conn, *args, **kwargs):
            calls.append(1)
            return real(conn, *args, **kwargs)
        return count

    for name in ("pack", "copy_staged"):
        monkeypatch.setattr(gpkg_rtree, name, counting(getattr(gpkg_rtree, name)))
    return calls


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk-loader", "sqlite-inserts"])
@pytest.mark.parametrize("sizes", [(0, 1), (5, 1), (60, 3000), (3000, 60), (3000, 2000)])
def test_rtree_valid_after_bulk_and_incremental_imports(tmp_path, sizes, bulk, packs):
    store = make_store(tmp_path, rtree_bulk=bulk)
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
    # Each import bringing over a fifth of the events rebuilds, unless the bulk loader is off.
    rebuilds = sum(1 for k, n in enumerate(sizes) if n and n > 0.2 * sum(sizes[: k + 1]))
    assert len(packs) == (rebuilds if bulk else 0)


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), ("1", 1), ("0", 0), ("off", 0)])
def test_the_setting_chooses_the_path_at_each_import(tmp_path, monkeypatch, packs, setting, expected):
    if setting is None:
        monkeypatch.delenv("GEO_IBM_RTREE_BULK", raising=False)
    else:
        monkeypatch.setenv("GEO_IBM_RTREE_BULK", setting)
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(300)), user="ana")
    assert len(packs) == expected
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT rtreecheck('rtree_events_geom')").fetchone()[0] == "ok"
    # The constructor's choice wins over the setting.
    monkeypatch.setenv("GEO_IBM_RTREE_BULK", "0")
    forced = make_store(tmp_path, "forced.gpkg", rtree_bulk=True)
    forced.import_file(write_events(tmp_path / "e.csv", event_rows(300)), user="ana")
    assert len(packs) == expected + 1


def test_both_paths_index_every_point_in_a_box_around_it(tmp_path):
    rows = event_rows(2500, seed=7)
    trees = []
    for bulk in (True, False):
        store = make_store(tmp_path, f"{bulk}.gpkg", rtree_bulk=bulk)
        store.import_file(write_events(tmp_path / "e.csv", rows), user="ana")
        with sqlite3.connect(store.path) as conn:
            trees.append(sorted(conn.execute(
                "SELECT e.event_id, r.minx <= e.x AND e.x <= r.maxx AND r.miny <= e.y AND e.y <= r.maxy "
                "FROM rtree_events_geom r JOIN events e ON e.fid = r.id"
            )))
    # Float32 bounds rounded outwards (SQLite's own inserts round a little wider).
    assert trees[0] == trees[1] and len(trees[0]) == 2500 and all(inside for _id, inside in trees[0])


def test_gdal_edits_keep_rtree_in_sync(tmp_path):
    store = make_store(tmp_path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(10)), user="ana")
    subprocess.run(["ogrinfo", str(store.path), "-sql", "DELETE FROM events WHERE event_id = 'E00003'"],
                   capture_output=True, text=True, check=True)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 9
    # our Python ST_* functions serve the same triggers
    with sqlite3.connect(store.path) as conn:
        gpkg_rtree.register_functions(conn)
        conn.execute("UPDATE events SET geom = NULL WHERE event_id = 'E00004'")
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 8
        conn.execute("UPDATE events SET geom = (SELECT geom FROM events WHERE event_id = 'E00005') WHERE event_id = 'E00004'")
        assert conn.execute("SELECT count(*) FROM rtree_events_geom").fetchone()[0] == 9
        assert conn.execute("SELECT rtreecheck('rtree_events_geom')").fetchone()[0] == "ok"


@pytest.mark.parametrize("first_fid", [1, 2**31 + 5], ids=["small-fids", "fids-past-32-bits"])
def test_pack_writes_a_valid_tree_for_any_fid(first_fid):
    """Both ways of writing the shadow tables (packed JSON pairs, and row binding for fids too large to pack)."""
    import numpy as np

    conn = sqlite3.connect(":memory:")
    gpkg_rtree.register_functions(conn)
    conn.execute("CREATE TABLE pts (fid INTEGER PRIMARY KEY, geom BLOB, x DOUBLE, y DOUBLE)")
    conn.execute("CREATE VIRTUAL TABLE rtree_pts_geom USING rtree(id, minx, maxx, miny, maxy)")
    rng = np.random.default_rng(3)
    n = 5000
    fids = first_fid + np.arange(n) * 3
    x, y = rng.uniform(50_000, 100_000, n), rng.uniform(60_000, 140_000, n)
    conn.executemany("INSERT INTO pts VALUES (?, x'00', ?, ?)", zip(fids.tolist(), x.tolist(), y.tolist()))
    gpkg_rtree.pack(conn, "rtree_pts_geom", "pts")
    assert conn.execute("SELECT rtreecheck('rtree_pts_geom')").fetchone()[0] == "ok"
    box = (60_000, 70_000, 80_000, 100_000)
    found = {r[0] for r in conn.execute("SELECT id FROM rtree_pts_geom WHERE maxx >= ? AND minx <= ? AND maxy >= ? "
                                        "AND miny <= ?", (box[0], box[2], box[1], box[3]))}
    inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
    # float32 boxes rounded outwards: every point inside is found, none far outside.
    assert set(fids[inside].tolist()) <= found
    assert len(found) - int(inside.sum()) <= 5
