"""The PostGIS backend (geo_ibm.store.postgis): layout GIS clients read, migrations, roles, kills, copies between backends."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely
from pgserver import new_database
from storefixtures import OUTLINE, event_rows, half_regions, write_events

from geo_ibm import accounts
from geo_ibm.errors import StoreError
from geo_ibm.store import GeoPackageStore, copy_store, open_store
from geo_ibm.store import postgis_schema as schema
from geo_ibm.store.postgis import PostGISStore, public_url


@pytest.fixture
def pg_store(pg_server, request):
    """``pg_store(name)``: a PostGIS store in a new database, checking against OUTLINE, regions by half_regions."""

    def make(name: str = "s", **options) -> PostGISStore:
        options.setdefault("outline", OUTLINE)
        options.setdefault("assign_regions", half_regions)
        store = PostGISStore(new_database(pg_server, name), **options)
        request.addfinalizer(store.close)
        return store

    return make


def query(store: PostGISStore, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(store._conninfo) as conn:
        cur = conn.execute(sql, params or None)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


def pg_ogr(store: PostGISStore) -> str:
    """The store as a GDAL PostgreSQL data source (the password comes from PGPASSFILE)."""
    info = psycopg.conninfo.conninfo_to_dict(store._conninfo)
    return f"PG:host={info['host']} port={info['port']} dbname={info['dbname']} user={info['user']}"


def test_open_store_takes_both_url_spellings_without_connecting():
    for url in ("postgresql://geo@db.invalid:5432/ibm", "postgres://geo@db.invalid/ibm", "PostgreSQL://db.invalid/x"):
        assert isinstance(open_store(url), PostGISStore)
    with pytest.raises(StoreError, match="needs a postgresql:// URL"):
        PostGISStore("mysql://db.invalid/x")


def test_location_and_messages_never_show_the_password(pg_server):
    assert public_url("postgresql://geo:s3cret@db.example:5433/ibm?password=other&sslmode=require") == (
        "postgresql://geo@db.example:5433/ibm?sslmode=require"
    )
    store = PostGISStore(pg_server.url("postgres"))
    assert pg_server.password not in store.location and "geo_ibm@127.0.0.1" in store.location
    wrong = PostGISStore(pg_server.url("postgres").replace(pg_server.password, "not-the-password-x"))
    with pytest.raises(StoreError, match="cannot connect to the store .*password authentication failed") as caught:
        wrong.count()
    assert "not-the-password-x" not in str(caught.value)


def test_missing_database_and_uninitialised_store(pg_server, pg_store):
    absent = PostGISStore(pg_server.url("no_such_database"))
    assert not absent.exists()
    with pytest.raises(StoreError, match='database "no_such_database" does not exist'):
        absent.init()
    empty = pg_store("empty")
    assert not empty.exists()
    with pytest.raises(StoreError, match="no event store at postgresql://geo_ibm@.*run 'geo-ibm init'"):
        empty.events()
    with pytest.raises(StoreError, match="run 'geo-ibm init'"):
        empty.version()
    empty.init()
    assert empty.exists() and empty.count() == 0


def test_init_creates_the_layout_gis_clients_read(pg_store, tmp_path):
    store = pg_store()
    store.init()
    store.init()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(40)), user="ana")
    store.init()
    versions = query(store, "SELECT version FROM geo_ibm_schema ORDER BY version")
    assert versions == [(v,) for v in range(1, schema.SCHEMA_VERSION + 1)]
    assert query(store, "SELECT f_geometry_column, type, srid FROM geometry_columns WHERE f_table_name = 'events'") == [
        ("geom", "POINT", 2169)
    ]
    indexes = dict(query(store, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'"))
    assert "USING gist (geom)" in indexes["events_geom"]
    # geom always equals the stored x/y
    ((bad,),) = query(store, "SELECT count(*) FROM events WHERE NOT ST_Equals(geom, ST_SetSRID(ST_MakePoint(x, y), 2169))")
    assert bad == 0
    ours = store.events().set_index("event_id")
    pg = dict((r[0], (r[1], r[2])) for r in query(store, "SELECT event_id, ST_X(geom), ST_Y(geom) FROM events"))
    np.testing.assert_array_equal([pg[i][0] for i in ours.index], ours.geometry.x)
    assert store.version().startswith("pg-")


def test_ogrinfo_lists_the_events_layer_with_its_crs_and_count(pg_store, tmp_path):
    store = pg_store()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(200)), user="ana")
    accounts.add_user(store, "ana", "viewer", "long-enough")
    store.write_ground_truth(gpd.GeoDataFrame({"name": ["h"]}, geometry=[shapely.Point(80_000, 90_000).buffer(300)],
                                              crs=2169))
    env = {**os.environ}
    listing = subprocess.run(["ogrinfo", "-ro", pg_ogr(store)], capture_output=True, text=True, check=True, env=env)
    assert "events (Point)" in listing.stdout and "ground_truth" in listing.stdout
    assert "web_users" not in listing.stdout and "throttle_hits" not in listing.stdout  # no geometry: not a layer
    out = subprocess.run(["ogrinfo", "-ro", "-so", pg_ogr(store), "events"], capture_output=True, text=True, check=True,
                         env=env)
    assert "Feature Count: 200" in out.stdout and 'ID["EPSG",2169]' in out.stdout and "Geometry: Point" in out.stdout
    assert "ERROR" not in out.stderr
    bbox = (70_000, 80_000, 85_000, 110_000)
    spat = subprocess.run(["ogrinfo", "-ro", "-so", "-spat", *map(str, bbox), pg_ogr(store), "events"],
                          capture_output=True, text=True, check=True, env=env)
    assert f"Feature Count: {store.count(bbox=bbox)}" in spat.stdout


def test_killed_import_mid_copy_leaves_nothing(pg_store, tmp_path):
    store = pg_store()
    store.import_file(write_events(tmp_path / "first.csv", event_rows(50)), user="ana")
    before = (store.count(), len(store.imports()), len(store.audit_log()), store.version())
    big = write_events(tmp_path / "big.csv", event_rows(3000, seed=1, prefix="K"))
    for bulk in (False, True):  # rows added to the indexes, or the indexes dropped for a rebuild
        script = textwrap.dedent(
            f"""
            import os, signal, shapely
            import geo_ibm.store.postgis as pg
            pg._CHUNK_ROWS = 500
            pg.BULK_MIN_ROWS = {1 if bulk else 10**9}
            store = pg.PostGISStore({store._conninfo!r}, outline=shapely.box(50000, 57000, 107000, 139000),
                                    assign_regions=False)
            def progress(done, total):
                if 1000 <= done < total:
                    print("killing after", done, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            store.import_file({str(big)!r}, user="bob", progress=progress)
            """
        )
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert proc.returncode == -9, proc.stderr
        assert "killing after 1000" in proc.stdout
        assert (store.count(), len(store.imports()), len(store.audit_log()), store.version()) == before
        assert query(store, "SELECT count(*) FROM events WHERE event_id LIKE 'K%'") == [(0,)]
        indexes = {r[0] for r in query(store, "SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}
        assert set(schema.SECONDARY_INDEXES) <= indexes
    report = store.import_file(big, user="bob")  # the killed imports' locks are gone
    assert report.accepted == 3000 and store.count() == 3050


def test_a_large_first_import_rebuilds_the_indexes_and_reads_the_same(pg_store, tmp_path, monkeypatch):
    monkeypatch.setattr("geo_ibm.store.postgis.BULK_MIN_ROWS", 100)
    store = pg_store()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(400, seed=3)), user="ana")
    indexes = {r[0] for r in query(store, "SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}
    assert set(schema.SECONDARY_INDEXES) <= indexes
    bbox = (70_000, 80_000, 85_000, 110_000)
    everything = store.events()
    inside = everything.geometry.x.between(bbox[0], bbox[2]) & everything.geometry.y.between(bbox[1], bbox[3])
    assert store.count(bbox=bbox) == int(inside.sum()) > 0


def test_readers_see_an_import_whole_or_not_at_all(pg_store, tmp_path, monkeypatch):
    monkeypatch.setattr("geo_ibm.store.postgis._CHUNK_ROWS", 100)
    store = pg_store()
    store.import_file(write_events(tmp_path / "a.csv", event_rows(10)), user="ana")
    other = PostGISStore(store._conninfo)
    seen = []

    def progress(done, total):
        seen.append((done, other.count(), len(other.imports())))

    store.import_file(write_events(tmp_path / "b.csv", event_rows(500, prefix="B")), user="ana", progress=progress)
    # Every call but the last (after the commit) comes while the rows are being written.
    assert [s[1:] for s in seen[:-1]] == [(10, 1)] * (len(seen) - 1) and len(seen) > 3
    assert seen[-1] == (500, 510, 2)
    assert other.count() == 510
    other.close()


def test_two_processes_importing_one_file_store_it_once(pg_store, tmp_path):
    store = pg_store()
    store.init()
    path = write_events(tmp_path / "same.csv", event_rows(2000, seed=4))
    script = textwrap.dedent(
        f"""
        import shapely, sys
        from geo_ibm.store.postgis import PostGISStore
        store = PostGISStore({store._conninfo!r}, outline=shapely.box(50000, 57000, 107000, 139000), assign_regions=False)
        sys.stdin.readline()  # start together
        r = store.import_file({str(path)!r}, user="p")
        print(r.accepted, r.duplicates)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = sorted(tuple(map(int, p.communicate(timeout=180)[0].split())) for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert results == [(0, 2000), (2000, 0)]
    assert store.count() == 2000 and query(store, "SELECT count(DISTINCT event_id) FROM events") == [(2000,)]


def test_a_store_of_an_older_schema_is_migrated_and_keeps_its_data(pg_store, tmp_path, monkeypatch):
    store = pg_store()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(20)), user="ana")
    accounts.add_user(store, "ana", "viewer", "long-enough")
    # back to a store of schema version 1: no destination_country, no nationalities
    query(store, "ALTER TABLE events DROP COLUMN destination_country, DROP COLUMN nationalities")
    query(store, "DELETE FROM geo_ibm_schema WHERE version > 1")
    version = store.version()
    later = {**schema.MIGRATIONS, 3: ("a column for a later release", "ALTER TABLE events ADD COLUMN reviewed boolean")}
    monkeypatch.setattr(schema, "MIGRATIONS", later)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)
    again = PostGISStore(store._conninfo, outline=OUTLINE, assign_regions=half_regions)
    assert again.count() == 20  # the first use migrates
    assert [r[0] for r in query(store, "SELECT version FROM geo_ibm_schema ORDER BY version")] == [1, 2, 3]
    assert query(store, "SELECT count(*) FROM events WHERE reviewed IS NULL AND destination_country IS NULL "
                        "AND nationalities IS NULL") == [(20,)]
    assert again.events()["destination_country"].isna().all()
    assert again.version() == version  # the schema is no content a cache holds
    more = event_rows(25)[20:]
    assert again.import_file(write_events(tmp_path / "more.csv", more), user="ana").accepted == 5
    assert accounts.verify_password(again, "ana", "long-enough")["role"] == "viewer"
    again.close()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(schema, "MIGRATIONS", {1: later[1], 2: later[2]})
    with pytest.raises(StoreError, match="schema version 3, newer than this geo_ibm knows"):
        PostGISStore(store._conninfo).count()


def test_init_refuses_a_database_with_foreign_tables(pg_store):
    store = pg_store()
    query(store, "CREATE TABLE events (a int)")
    with pytest.raises(StoreError, match="has an 'events' table that is not a geo_ibm store"):
        store.init()


def test_the_documented_roles_have_the_rights_they_need_and_no_more(pg_server, pg_store, tmp_path):
    owner = pg_store("roles")
    owner.import_file(write_events(tmp_path / "e.csv", event_rows(30)), user="ana")
    database = psycopg.conninfo.conninfo_to_dict(owner._conninfo)["dbname"]
    for role in ("geo_ibm_web", "geo_ibm_reader"):
        pg_server.sql(f"DROP ROLE IF EXISTS {role}")
        pg_server.sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
    with psycopg.connect(owner._conninfo, autocommit=True) as conn:
        for statement in schema.grant_statements("geo_ibm_web") + schema.grant_statements("geo_ibm_reader", read_only=True):
            conn.execute(statement)
    web = PostGISStore(f"postgresql://geo_ibm_web:pw-geo_ibm_web@127.0.0.1:{pg_server.port}/{database}",
                       outline=OUTLINE, assign_regions=half_regions)
    web.init()  # a current store: nothing to create
    report = web.import_file(write_events(tmp_path / "f.csv", event_rows(40, prefix="F")), user="web")
    assert report.accepted == 40 and web.count() == 70
    accounts.add_user(web, "vic", "viewer", "long-enough")
    sid = accounts.open_session(web, "vic", lifetime_s=60)
    assert accounts.session_user(web, sid)["name"] == "vic"
    web.add_hits([("login-pair", "k")], 1.0, since=0.0, max_keys=10)
    web.reassign_regions(assign=half_regions)
    with psycopg.connect(web._conninfo) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DROP TABLE events")
    web.close()
    reader = f"host=127.0.0.1 port={pg_server.port} dbname={database} user=geo_ibm_reader password=pw-geo_ibm_reader"
    with psycopg.connect(reader) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (70,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT password_hash FROM web_users")
    with psycopg.connect(reader) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM events")


# --- copies between backends -------------------------------------------------------------------


def fill(store, tmp_path) -> None:
    """Events from two files, a failed import, audit records, accounts with a token, the ground truth."""
    store.import_file(write_events(tmp_path / "a.csv", event_rows(300, seed=1)), user="ana")
    store.import_file(write_events(tmp_path / "b.csv", event_rows(50, seed=2, prefix="B")), user="bob")
    with pytest.raises(Exception, match="nothing was imported"):
        store.import_file(write_events(tmp_path / "bad.csv", ["x;y"]), user="bob")
    store.audit("export", user="ana", detail={"what": "hotspots", "n": 3, "note": "é ü"})
    accounts.add_user(store, "Ana", "analyst", "long-enough")
    accounts.add_user(store, "vic", "viewer", "other-secret")
    store.write_ground_truth(gpd.GeoDataFrame(
        {"hotspot_id": ["H1", "H2"], "share": [0.25, 0.5], "start": pd.to_datetime(["2024-01-01", "2024-07-01"]),
         "active": [True, False]},
        geometry=[shapely.Point(80_000, 90_000).buffer(200), shapely.Point(81_000, 91_000).buffer(300)], crs=2169))


def same_content(a, b) -> None:
    pd.testing.assert_frame_equal(a.events(), b.events())
    pd.testing.assert_frame_equal(a.counts(by=("quarter", "region")), b.counts(by=("quarter", "region")))
    ia, ib = a.imports(), b.imports()
    pd.testing.assert_frame_equal(ia.drop(columns="imported_at"), ib.drop(columns="imported_at"))
    assert (ia["imported_at"].dt.floor("10ms") == ib["imported_at"].dt.floor("10ms")).all()
    la, lb = a.audit_log(limit=1000), b.audit_log(limit=1000)
    la, lb = la[la["action"] != "store_copy"].reset_index(drop=True), lb[lb["action"] != "store_copy"].reset_index(drop=True)
    assert la["id"].tolist() == lb["id"].tolist() and la["detail"].tolist() == lb["detail"].tolist()
    assert accounts.list_users(a) == accounts.list_users(b)
    pd.testing.assert_frame_equal(pd.DataFrame(a.ground_truth().drop(columns="geometry")),
                                  pd.DataFrame(b.ground_truth().drop(columns="geometry")), check_dtype=False)
    assert a.ground_truth().geometry.equals(b.ground_truth().geometry)


def test_copy_geopackage_to_postgis_and_back_keeps_everything(pg_store, tmp_path, monkeypatch):
    # the GeoPackage writes the copied events through its bulk path, as it would a million
    monkeypatch.setattr("geo_ibm.store.gpkg_staging.STAGING_MIN_ROWS", 10)
    gpkg = GeoPackageStore(tmp_path / "src.gpkg", outline=OUTLINE, assign_regions=half_regions)
    fill(gpkg, tmp_path)
    token = accounts.new_token(gpkg, "ana")
    gpkg.add_operation("OP Nord", '{"sites": []}', user="pia", created=pd.Timestamp("2025-03-01T10:00:00Z"),
                       start_date="2025-03-03", end_date="2025-03-09")
    pg = pg_store("copy")
    stages = []
    report = copy_store(gpkg, pg, progress=lambda stage, done, total: stages.append(stage))
    assert report.counts == {"events": 350, "imports": 3, "audit": 4, "web_users": 2, "web_tokens": 1, "operations": 1,
                             "ground_truth": 2}
    assert pg.operation("op nord") == gpkg.operation("op nord") and pg.operation("op nord")[1] == '{"sites": []}'
    assert pg.add_operation("OP Süd", "{}", user="pia", created=pd.Timestamp("2025-03-02T10:00:00Z"),
                            start_date="2025-03-03", end_date="2025-03-09")  # the ids continue after the copied one
    assert pg.operations()["id"].tolist() == [2, 1]
    assert report.source == gpkg.location and report.target == pg.location and len(report.checksum) == 64
    assert list(dict.fromkeys(stages)) == ["read", "write", "verify", "ground_truth"]
    same_content(gpkg, pg)
    assert accounts.verify_password(pg, "ana", "long-enough")["name"] == "Ana"
    assert accounts.user_for_token(pg, token)["name"] == "Ana"
    # The copy continues the ids: the next import and audit record follow the copied ones.
    pg.import_file(write_events(tmp_path / "c.csv", event_rows(5, seed=9, prefix="C")), user="ana")
    assert pg.imports()["id"].iloc[0] == 4 and pg.events(event_id="C00000")["quarter"].iloc[0]
    back = GeoPackageStore(tmp_path / "back.gpkg")
    again = copy_store(pg, back)
    assert again.counts["events"] == 355 and again.counts["imports"] == 4
    same_content(pg, back)
    assert accounts.user_for_token(back, token)["name"] == "Ana"
    # the GeoPackage written by the copy is one GDAL reads, R-tree included
    out = subprocess.run(["ogrinfo", "-ro", "-so", str(back.path), "events"], capture_output=True, text=True, check=True)
    assert "Feature Count: 355" in out.stdout
    assert back.count(bbox=(70_000, 80_000, 85_000, 110_000)) == pg.count(bbox=(70_000, 80_000, 85_000, 110_000))


def test_copy_between_two_postgis_stores_gives_the_same_checksum(pg_store, tmp_path):
    first = pg_store("first")
    fill(first, tmp_path)
    second, third = pg_store("second"), pg_store("third")
    a = copy_store(first, second)
    b = copy_store(second, third)
    # The same rows give the same checksums; the second copy also carries the first one's audit record.
    assert {k: v for k, v in a.checksums.items() if k != "audit"} == {k: v for k, v in b.checksums.items() if k != "audit"}
    assert b.counts == {**a.counts, "audit": a.counts["audit"] + 1}
    assert copy_store(third, pg_store("fourth")).checksums["audit"] != b.checksums["audit"]
    assert first.version() != second.version()


def test_copy_refuses_a_target_that_is_not_empty_and_keeps_nothing_of_a_bad_copy(pg_store, tmp_path, monkeypatch):
    src = GeoPackageStore(tmp_path / "src.gpkg", outline=OUTLINE, assign_regions=half_regions)
    fill(src, tmp_path)
    target = pg_store("target")
    target.import_file(write_events(tmp_path / "t.csv", event_rows(3, prefix="T")), user="ana")
    with pytest.raises(StoreError, match=r"target store postgresql://geo_ibm@.* is not empty \(3 events, 1 imports"):
        copy_store(src, target)
    with pytest.raises(StoreError, match="source and target are the same store"):
        copy_store(src, src.path)
    empty = pg_store("empty")
    from geo_ibm.store import copy as copying

    original = copying._PostGISWriter.write

    def lossy(self, name, frame):
        original(self, name, frame.iloc[1:] if name == "events" else frame)

    monkeypatch.setattr(copying._PostGISWriter, "write", lossy)
    with pytest.raises(StoreError, match="events of postgresql://geo_ibm@.* differ from .*src.gpkg after the copy"):
        copy_store(src, empty)
    assert empty.count() == 0 and len(empty.imports()) == 0 and accounts.list_users(empty) == []


def test_concurrent_threads_share_the_pool(pg_store, tmp_path):
    store = pg_store()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(100)), user="ana")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert store.count() == 100 and store.event_points().shape == (100, 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_cli_store_copy_grants_and_no_password_shown(pg_server, pg_store, tmp_path):
    from click.testing import CliRunner

    from geo_ibm.cli import main

    src = GeoPackageStore(tmp_path / "src.gpkg", outline=OUTLINE, assign_regions=half_regions)
    src.import_file(write_events(tmp_path / "e.csv", event_rows(25)), user="ana")
    target = pg_store("cli")
    url = target._conninfo.replace("geo_ibm@", f"geo_ibm:{pg_server.password}@")  # as a user may type it
    runner = CliRunner()
    done = runner.invoke(main, ["store", "copy", str(src.path), url])
    assert done.exit_code == 0, done.output
    assert f"-> {target.location}" in done.output and "25 events" in done.output and "checksum" in done.output
    assert target.count() == 25
    again = runner.invoke(main, ["store", "copy", str(src.path), url])
    assert again.exit_code == 1 and "is not empty (25 events" in again.output
    for args in (["init"], ["info"]):
        shown = runner.invoke(main, ["--store", url, *args])
        assert shown.exit_code == 0 and target.location in shown.output and pg_server.password not in shown.output
    grants = runner.invoke(main, ["store", "grants", "geo_ibm_reader", "--read-only"])
    assert grants.exit_code == 0 and "GRANT SELECT ON public.events TO geo_ibm_reader;" in grants.output
    assert "web_users" not in grants.output
    assert runner.invoke(main, ["store", "grants", "Robert'); DROP"]).exit_code == 2


def test_a_database_store_keeps_the_installed_cantons_for_every_process(pg_store, tmp_path, monkeypatch):
    from cantonfixtures import events_at, swapped, synthetic_cantons

    from geo_ibm import layers
    from geo_ibm.store import postgis_layers

    store = pg_store("cantons", outline=False, assign_regions=None)  # regions from geo_ibm.layers
    store.init()
    monkeypatch.setenv("GEO_IBM_STORE", store._conninfo)
    monkeypatch.chdir(tmp_path)
    assert len(layers.cantons()) == 12 and store.installed_cantons() is None  # the shipped layer
    centres = synthetic_cantons(tmp_path / "c.geojson")
    layer = layers.cantons_from_file(tmp_path / "c.geojson")
    assert layers.install_cantons(layer) == store.location
    assert layers.cantons().area.sum() == pytest.approx(12e6, rel=1e-4)
    store.import_events(events_at(centres), source="centres", user="test")
    assert store.events().set_index("event_id")["canton"].to_dict() == {f"at-{n}": n for n in centres}
    script = "from geo_ibm import layers; print(round(layers.cantons().area.sum() / 1e6, 2))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "GEO_IBM_STORE": store.location})
    assert other.stdout.strip() == "12.0"  # another process (or host) uses the same layer (1 km² each)
    before, version = store.events(), store.version()
    with monkeypatch.context() as patch:
        def refuse(conn, layer):
            raise StoreError("disk full")
        patch.setattr(postgis_layers, "replace_cantons", refuse)
        with pytest.raises(StoreError, match="disk full"):
            layers.install_cantons(swapped(layer, "Capellen", "Remich"), store=store)
    pd.testing.assert_frame_equal(store.events(), before)
    assert store.version() == version
    layers.install_cantons(swapped(layer, "Capellen", "Remich"), store=store)
    after = store.events().set_index("event_id")
    assert after.loc["at-Capellen", ["canton", "region"]].tolist() == ["Remich", "Centre-Est"]
    assert layers.cantons().set_index("canton").loc["Remich"].geometry.contains(centres["Capellen"])
    assert store.version() != version
    assert list(tmp_path.iterdir()) == [tmp_path / "c.geojson"]  # no layer file anywhere


def test_numeric_reads_packed_by_the_server_equal_a_binary_copy(pg_store, tmp_path):
    from geo_ibm.store import postgis_copy

    store = pg_store()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(300, seed=6)), user="ana")
    with store._connection() as conn:
        packed = postgis_copy.read_floats(conn, ["fid", "x", "y", "observed_utc"], "events WHERE persons > %s", [1],
                                          order=("observed_utc", "fid"))
        copied = postgis_copy._copy_floats(conn, "SELECT fid::float8, x, y, observed_utc::float8 FROM events "
                                           "WHERE persons > %s ORDER BY observed_utc, fid", [1], 4)
        none = postgis_copy.read_floats(conn, ["x", "y"], "events WHERE persons > %s", [99])
    assert packed.shape == (int((store.events()["persons"] > 1).sum()), 4) and none.shape == (0, 2)
    np.testing.assert_array_equal(packed, copied)
