"""Time a CSV import into the event store against a naive geopandas route.

Usage::

    python benchmarks/bench_import.py            # 1 000 000 rows
    python benchmarks/bench_import.py --rows 50000

After the import it times the read paths: every event with all columns (``events()``), the
coordinates only (``event_points()``, what the overview map reads), two columns for the hotspot
methods (``events(columns=...)``) and the per quarter and region counts of ``/api/stats``.

Both routes start from the same seeded CSV (``;``-separated, lat/lon) in a temporary folder:

- ``geo_ibm``: ``GeoPackageStore.import_file`` (read, validate every rule against the shipped
  outline, assign canton/region, one transaction with R-tree) into an empty store;
- ``naive``: ``pandas.read_csv`` -> ``GeoDataFrame`` (points from lat/lon, to EPSG:2169) ->
  ``to_file`` GPKG via pyogrio, with no validation, no regions and no duplicate check.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.store import GeoPackageStore


def make_csv(path: Path, rows: int, *, seed: int) -> Path:
    """A realistic event CSV around Luxembourg (lat/lon), written in one go."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01")
    stamps = start + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, rows), unit="s")
    frame = pd.DataFrame(
        {
            "event_id": np.char.add("EV", np.arange(rows).astype(str)),
            "observed_at": stamps.strftime("%Y-%m-%dT%H:%M:%S"),
            "lat": rng.uniform(49.50, 50.10, rows).round(6),
            "lon": rng.uniform(5.80, 6.45, rows).round(6),
            "location_kind": rng.choice(["motorway", "rest_area", "border_crossing", "urban", "other"], rows),
            "persons": rng.integers(1, 12, rows),
            "smugglers": rng.integers(0, 3, rows),
            "transport_mode": rng.choice(["car", "van", "truck", "bus", "train"], rows),
            "entry_country": rng.choice(["BE", "FR", "DE", "unknown"], rows),
            "operation_id": rng.choice(["", "OP-NORD", "OP-SUD"], rows),
            "source_unit": rng.choice(["PGD", "UCPR", "CI"], rows),
            "notes": "",
        }
    )
    frame.to_csv(path, sep=";", index=False)
    return path


def naive_route(csv: Path, out: Path) -> int:
    frame = pd.read_csv(csv, sep=";")
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs="EPSG:4326")
    gdf = gdf.to_crs("EPSG:2169")
    gdf.to_file(out, layer="events", driver="GPKG", engine="pyogrio")
    return len(gdf)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        csv = make_csv(folder / "events.csv", args.rows, seed=args.seed)
        print(f"generated {args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")

        store = GeoPackageStore(folder / "store.gpkg")
        store.init()
        t0 = time.perf_counter()
        report = store.import_file(csv, user="bench", skip_invalid=True)
        ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        naive_rows = naive_route(csv, folder / "naive.gpkg")
        naive = time.perf_counter() - t0

        t0 = time.perf_counter()
        again = store.import_file(csv, user="bench", skip_invalid=True)
        reimport = time.perf_counter() - t0

        t0 = time.perf_counter()
        n_q = store.count(quarter="2024Q2")
        count_time = time.perf_counter() - t0

        t0 = time.perf_counter()
        everything = store.events()
        read_all = time.perf_counter() - t0

        t0 = time.perf_counter()
        points = store.event_points()
        read_points = time.perf_counter() - t0

        t0 = time.perf_counter()
        lean = store.events(columns=["observed_at", "persons"])
        read_lean = time.perf_counter() - t0

        t0 = time.perf_counter()
        grouped = store.counts(by=("quarter", "region"))
        count_groups = time.perf_counter() - t0

        t0 = time.perf_counter()
        naive_back = gpd.read_file(folder / "naive.gpkg", engine="pyogrio")
        naive_read = time.perf_counter() - t0

        print(f"{'route':<34}{'rows stored':>12}{'seconds':>10}{'rows/s':>12}")
        print(f"{'geo_ibm import_file (validated)':<34}{report.accepted:>12,}{ours:>10.1f}{report.accepted / ours:>12,.0f}")
        print(f"{'naive pandas -> pyogrio GPKG':<34}{naive_rows:>12,}{naive:>10.1f}{naive_rows / naive:>12,.0f}")
        print(f"{'geo_ibm re-import (all dupes)':<34}{again.accepted:>12,}{reimport:>10.1f}{'':>12}")
        print(f"{'geo_ibm events() read all':<34}{len(everything):>12,}{read_all:>10.1f}{len(everything) / read_all:>12,.0f}")
        print(f"{'geo_ibm event_points() (x, y)':<34}{len(points):>12,}{read_points:>10.1f}{len(points) / read_points:>12,.0f}")
        print(f"{'geo_ibm events(columns=2)':<34}{len(lean):>12,}{read_lean:>10.1f}{len(lean) / read_lean:>12,.0f}")
        print(f"{'naive geopandas read_file':<34}{len(naive_back):>12,}{naive_read:>10.1f}{len(naive_back) / naive_read:>12,.0f}")
        print(f"counts(by=('quarter', 'region')): {len(grouped)} groups in {count_groups:.2f} s")
        print(f"rejected by validation (outside outline + margin): {report.rejected:,}; "
              f"duplicates on re-import: {again.duplicates:,}; count(quarter='2024Q2') = {n_q:,} in {count_time:.2f} s")


if __name__ == "__main__":
    main()
