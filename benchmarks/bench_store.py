"""Time imports and reads of the GeoPackage and PostGIS stores side by side, next to the geopandas routes.

Usage::

    python benchmarks/bench_store.py                 # 1 000 000 rows
    python benchmarks/bench_store.py --rows 100000

One run starts a throwaway PostgreSQL + PostGIS server (:mod:`geo_ibm.store.pg_local`, default
durability settings: fsync and synchronous commit on) and prints, for the same seeded CSV:

- ``import_file``: the whole pipeline (read, validate, canton/region, one transaction) into an
  empty store of each backend;
- the bulk write alone: the stored rows written again into an empty store through the
  backend's write transaction (PostGIS: psycopg binary COPY), next to
  ``GeoDataFrame.to_postgis`` (geoalchemy2) and ``GeoDataFrame.to_file`` (GPKG) of the same
  events, and ADBC's ``adbc_ingest`` when ``adbc-driver-postgresql`` is installed;
- the reads of the web app: the overview's coordinates (``event_points``), the hotspot
  methods' columns (``events(columns=["observed_at", "persons"])``), counts per quarter and
  region, every column (``events()``), next to a naive ``geopandas.read_postgis`` /
  ``read_file`` of the whole layer.

The to_postgis and naive PostGIS read rows need ``sqlalchemy`` and ``geoalchemy2`` (benchmark
only: ``pip install sqlalchemy geoalchemy2``); without them those rows are skipped.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
from bench_import import make_csv  # the seeded CSV of the store benchmarks (this script's folder is on sys.path)

from geo_ibm.store import GeoPackageStore, copy
from geo_ibm.store.pg_local import start_server
from geo_ibm.store.postgis import PostGISStore

Row = tuple[str, str, int, float, float]


def timed(rows: list[Row], backend: str, label: str, work: Callable[[], Any]) -> Any:
    """Run ``work``, append (backend, label, rows, wall s, cpu s) and return its result."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = out if isinstance(out, int) else len(out)
    rows.append((backend, label, int(n), wall, cpu))
    print(f"  {backend:<8} {label:<44} {n:>10,} {wall:>8.2f} s", flush=True)
    return out


def bulk_write(store: Any, table: Any) -> int:
    """The stored rows written again through the backend's write transaction (no pipeline) into an initialised store."""
    with store._write_transaction() as tx:
        tx.add_events(table)
    return len(table)


def adbc_ingest(url: str, table: Any) -> int:
    """ADBC's COPY of the rows into an empty store, its indexes dropped and rebuilt as our bulk path does."""
    import adbc_driver_postgresql.dbapi as adbc
    import psycopg
    import pyarrow as pa

    from geo_ibm.store import postgis_schema

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    with psycopg.connect(url, autocommit=True) as conn:
        for name in postgis_schema.SECONDARY_INDEXES:
            conn.execute(f"DROP INDEX {name}")
        with adbc.connect(url) as ingest, ingest.cursor() as cur:
            cur.adbc_ingest("events", arrow, mode="append")
            ingest.commit()
        for statement in postgis_schema.SECONDARY_INDEXES.values():
            conn.execute(statement)
        conn.execute("ANALYZE events")
    return len(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    results: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, start_server(database=None) as server:
        folder = Path(tmp)
        t0 = time.perf_counter()
        csv = make_csv(folder / "events.csv", args.rows, seed=args.seed)
        print(f"{args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB) generated in {time.perf_counter() - t0:.1f} s; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        stores = {"gpkg": GeoPackageStore(folder / "store.gpkg"), "postgis": PostGISStore(server.create_database("bench"))}
        print("import (whole pipeline)")
        for name, store in stores.items():
            store.init()
            timed(results, name, "import_file (validated, regions)", lambda s=store: s.import_file(csv, user="bench").accepted)
        print("reads")
        for name, store in stores.items():
            timed(results, name, "event_points() (overview x, y)", store.event_points)
            timed(results, name, "events(columns=[observed_at, persons])",
                  lambda s=store: s.events(columns=["observed_at", "persons"]))
            timed(results, name, "counts(by=(quarter, region)) groups", lambda s=store: s.counts(by=("quarter", "region")))
            timed(results, name, "events() every column", store.events)
        everything = stores["gpkg"].events()
        table = copy._PostGISSide(stores["postgis"]).read()["events"]
        print("bulk write of the stored rows")
        empty = {"gpkg": GeoPackageStore(folder / "write.gpkg"), "postgis": PostGISStore(server.create_database("write"))}
        for store in empty.values():
            store.init()
        timed(results, "gpkg", "add_events (GPKG blobs, R-tree)", lambda: bulk_write(empty["gpkg"], table))
        timed(results, "postgis", "add_events (psycopg binary COPY)", lambda: bulk_write(empty["postgis"], table))
        try:
            import adbc_driver_postgresql  # noqa: F401
        except ImportError:
            print("  (adbc-driver-postgresql not installed: no ADBC row)")
        else:
            target = PostGISStore(server.create_database("adbc"))
            target.init()
            timed(results, "postgis", "ADBC adbc_ingest + index rebuild",
                  lambda: adbc_ingest(server.url("adbc"), table))
        print("geopandas routes")
        timed(results, "gpkg", "GeoDataFrame.to_file (pyogrio)",
              lambda: (everything.to_file(folder / "naive.gpkg", layer="events", engine="pyogrio"), len(everything))[1])
        timed(results, "gpkg", "naive gpd.read_file (every column)",
              lambda: gpd.read_file(folder / "naive.gpkg", layer="events", engine="pyogrio"))
        try:
            import geoalchemy2  # noqa: F401
            import sqlalchemy
        except ImportError:
            print("  (sqlalchemy/geoalchemy2 not installed: no to_postgis or read_postgis rows)")
        else:
            engine = sqlalchemy.create_engine(server.url("bench").replace("postgresql://", "postgresql+psycopg://"))
            timed(results, "postgis", "GeoDataFrame.to_postgis (geoalchemy2)",
                  lambda: (everything.to_postgis("naive_events", engine, chunksize=50_000), len(everything))[1])
            timed(results, "postgis", "naive gpd.read_postgis (SELECT *)",
                  lambda: gpd.read_postgis("SELECT * FROM events", engine, geom_col="geom"))
            engine.dispose()
        for store in [*stores.values(), *empty.values()]:
            if isinstance(store, PostGISStore):
                store.close()
    print()
    print(f"{'backend':<9}{'what':<46}{'rows':>11}{'wall s':>9}{'cpu s':>8}{'rows/s':>12}")
    for backend, label, n, wall, cpu in results:
        print(f"{backend:<9}{label:<46}{n:>11,}{wall:>9.2f}{cpu:>8.2f}{n / wall if wall else 0:>12,.0f}")


if __name__ == "__main__":
    main()
