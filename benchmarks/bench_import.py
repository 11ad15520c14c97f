"""Time a CSV import into the event store against a naive geopandas route, and its re-import.

Usage::

    python benchmarks/bench_import.py            # 1 000 000 rows
    python benchmarks/bench_import.py --rows 50000 --no-reads

Both routes start from the same seeded CSV (``;``-separated, lat/lon, every point inside
Luxembourg) in a temporary folder:

- ``geo_ibm``: ``GeoPackageStore.import_file`` (read, validate every rule against the shipped
  outline, assign canton/region, one all-or-nothing transaction with R-tree) into an empty
  store;
- ``naive``: ``pandas.read_csv`` -> ``GeoDataFrame`` (points from lat/lon, to EPSG:2169) ->
  ``to_file`` GPKG via pyogrio, with no validation, no regions and no duplicate check;
- ``re-import``: the same file again (recognised by its SHA-256 and its stored ids), then a
  copy with one more row (read, validated and compared with the stored events in full).

Wall and CPU seconds are printed for each; the machine may be shared, so compare the routes
of one run. With ``--reads`` (default) it then times the read paths: every event with all
columns (``events()``), the coordinates only (``event_points()``), two columns for the hotspot
methods (``events(columns=...)``) and the per quarter and region counts of ``/api/stats``.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo_ibm.layers import luxembourg_outline
from geo_ibm.store import GeoPackageStore


def make_csv(path: Path, rows: int, *, seed: int) -> Path:
    """A realistic event CSV inside Luxembourg (lat/lon), written in one go."""
    rng = np.random.default_rng(seed)
    outline = luxembourg_outline().geometry.union_all()
    minx, miny, maxx, maxy = outline.bounds
    x = np.empty(0)
    y = np.empty(0)
    while len(x) < rows:
        cx, cy = rng.uniform(minx, maxx, 2 * rows), rng.uniform(miny, maxy, 2 * rows)
        inside = shapely.contains_xy(outline, cx, cy)
        x, y = np.r_[x, cx[inside]], np.r_[y, cy[inside]]
    lon, lat = Transformer.from_crs("EPSG:2169", "EPSG:4326", always_xy=True).transform(x[:rows], y[:rows])
    start = pd.Timestamp("2023-01-01")
    stamps = start + pd.to_timedelta(rng.integers(0, 3 * 365 * 86400, rows), unit="s")
    frame = pd.DataFrame(
        {
            "event_id": np.char.add("EV", np.arange(rows).astype(str)),
            "observed_at": stamps.strftime("%Y-%m-%dT%H:%M:%S"),
            "lat": np.round(lat, 6),
            "lon": np.round(lon, 6),
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


class _Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> _Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


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
    parser.add_argument("--reads", action=argparse.BooleanOptionalAction, default=True, help="time the read paths too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        csv = make_csv(folder / "events.csv", args.rows, seed=args.seed)
        print(f"generated {args.rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")

        store = GeoPackageStore(folder / "store.gpkg")
        store.init()
        with _Timer() as ours:
            report = store.import_file(csv, user="bench")
        with _Timer() as naive:
            naive_rows = naive_route(csv, folder / "naive.gpkg")
        with _Timer() as again_t:
            again = store.import_file(csv, user="bench")
        more = folder / "more.csv"
        with csv.open("rb") as src, more.open("wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.write(b"EXTRA1;2024-05-01T10:00:00;49.6116;6.1319;urban;2;0;car;FR;;PGD;\n")
        with _Timer() as full_t:
            full = store.import_file(more, user="bench")

        print(f"{'route':<36}{'rows stored':>12}{'wall s':>9}{'cpu s':>8}{'rows/s':>11}")
        for label, stored, timer in (
            ("geo_ibm import_file (validated)", report.accepted, ours),
            ("naive pandas -> pyogrio GPKG", naive_rows, naive),
            ("geo_ibm re-import (same file)", again.accepted, again_t),
            ("geo_ibm re-import (one row more)", full.accepted, full_t),
        ):
            rate = f"{stored / timer.wall:>11,.0f}" if stored else f"{'':>11}"
            print(f"{label:<36}{stored:>12,}{timer.wall:>9.1f}{timer.cpu:>8.1f}{rate}")
        verdict = "faster" if ours.wall < naive.wall else "SLOWER"
        print(f"validated import {verdict} than the naive write: {ours.wall:.1f} s vs {naive.wall:.1f} s; "
              f"same file again {again_t.wall:.2f} s ({again.duplicates:,} duplicates); "
              f"one row more {full_t.wall:.1f} s ({full.duplicates:,} duplicates, {full.accepted} new)")
        if args.reads:
            time_reads(store, folder / "naive.gpkg")


def time_reads(store: GeoPackageStore, naive_file: Path) -> None:
    """The read paths of the filled store, and geopandas reading the naive file."""
    with _Timer() as count_t:
        n_q = store.count(quarter="2024Q2")
    with _Timer() as all_t:
        everything = store.events()
    with _Timer() as points_t:
        points = store.event_points()
    with _Timer() as lean_t:
        lean = store.events(columns=["observed_at", "persons"])
    with _Timer() as groups_t:
        grouped = store.counts(by=("quarter", "region"))
    with _Timer() as naive_t:
        naive_back = gpd.read_file(naive_file, engine="pyogrio")
    for label, rows, timer in (
        ("geo_ibm events() read all", len(everything), all_t),
        ("geo_ibm event_points() (x, y)", len(points), points_t),
        ("geo_ibm events(columns=2)", len(lean), lean_t),
        ("naive geopandas read_file", len(naive_back), naive_t),
    ):
        print(f"{label:<36}{rows:>12,}{timer.wall:>9.1f}{timer.cpu:>8.1f}{rows / timer.wall:>11,.0f}")
    print(f"counts(by=('quarter', 'region')): {len(grouped)} groups in {groups_t.wall:.2f} s; "
          f"count(quarter='2024Q2') = {n_q:,} in {count_t.wall:.2f} s")


if __name__ == "__main__":
    main()
