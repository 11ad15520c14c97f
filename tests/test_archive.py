"""Partitioned GeoParquet archives and the Dask path: equal to the single-machine analyses on the same events."""
from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from geo_ibm.analysis.methods import study_area
from geo_ibm.archive import (
    ArchiveWriter,
    BinTask,
    archive_summary,
    bin_partition,
    check_partitions,
    check_tally_by,
    dask_client,
    hotspots_from_archive,
    kde_raster,
    read_manifest,
    reduce_archive,
    tally_archive,
    tally_choices,
    write_synthetic_archive,
)
from geo_ibm.archive.distributed import MIN_BATCH_ROWS, WORKER_MALLOC, batch_partitions, queues_tasks
from geo_ibm.archive.format import PartitionEntry, iter_partition, quarter_window, read_partition
from geo_ibm.archive.lattice import assemble_grid, clip_block, grid_lattice, submit_grid
from geo_ibm.emerging import emerging_hotspots, space_time_cube
from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.grid import as_area, bin_counts, grid_spec, make_grid
from geo_ibm.hotspots import hotspots_from_events
from geo_ibm.kde import _linear_bin, density_grid


@pytest.fixture(scope="module")
def client():
    # threads in this process: fast to start; one test below runs real worker processes
    with dask_client(workers=2, processes=False, memory_limit=None) as c:
        yield c


@pytest.fixture(scope="module")
def lux_archive(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("archive") / "lux"
    write_synthetic_archive(root, n_events=24_000, partitions=16, quarters=8, seed=3)
    return root


def _events_of(root: Path) -> gpd.GeoDataFrame:
    """The archive's events read back through geopandas (WKB geometry): the reference's own route."""
    manifest = read_manifest(root)
    frames = [gpd.read_parquet(root / p.path) for p in manifest.partitions]
    events = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=frames[0].crs)
    events["observed_at"] = events["observed_at"].dt.tz_convert("Europe/Luxembourg")
    return events


@pytest.fixture(scope="module")
def lux_events(lux_archive) -> gpd.GeoDataFrame:
    return _events_of(lux_archive)


def test_partitions_are_geoparquet_with_xy_next_to_the_geometry(lux_archive):
    manifest = read_manifest(lux_archive)
    assert manifest.crs == "EPSG:2169"
    assert manifest.rows == 24_000 and len(manifest.partitions) == 16
    assert all(p.path.startswith(f"quarter={p.quarter}/") for p in manifest.partitions)
    entry = manifest.partitions[3]
    frame = gpd.read_parquet(lux_archive / entry.path)
    assert frame.crs.to_epsg() == 2169
    assert len(frame) == entry.rows
    np.testing.assert_array_equal(frame.geometry.x.to_numpy(), frame["x"].to_numpy())
    np.testing.assert_array_equal(frame.geometry.y.to_numpy(), frame["y"].to_numpy())
    start, end = quarter_window(entry.quarter)
    seconds = frame["observed_at"].astype("int64").to_numpy() // 1_000_000
    assert seconds.min() >= start and seconds.max() < end
    geo = json.loads(__import__("pyarrow.parquet", fromlist=["x"]).read_schema(lux_archive / entry.path).metadata[b"geo"])
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    seen: list[tuple[int, int]] = []
    check_partitions(manifest, checksums=True, progress=lambda done, total: seen.append((done, total)))
    files = sum(p.bytes for p in manifest.partitions)
    assert seen[-1] == (files, files) and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert len(seen) >= len(manifest.partitions)  # at least once a file
    summary = archive_summary(manifest)
    assert sum(summary["rows_per_quarter"].values()) == 24_000


@pytest.mark.parametrize(("cell", "band", "weight"), [(1000.0, 3000.0, None), (750.0, None, None), (1000.0, 2500.0, "persons")])
def test_gi_equals_the_single_machine_path(client, lux_archive, lux_events, cell, band, weight):
    manifest = read_manifest(lux_archive)
    ours = hotspots_from_archive(manifest, client=client, method="gi", cell=cell, band=band, weight=weight)
    ref = hotspots_from_events(lux_events, study_area=study_area(), cell=cell, band=band, weight=weight)
    np.testing.assert_array_equal(ours["count"].to_numpy(), ref["count"].to_numpy())
    np.testing.assert_allclose(ours["gi_z"].to_numpy(), ref["gi_z"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours["gi_bin_fdr"].to_numpy(), ref["gi_bin_fdr"].to_numpy())
    assert list(ours.columns) == list(ref.columns)
    assert ours.attrs["parameters"]["band"] == ref.attrs["parameters"]["band"]
    assert ours.attrs["parameters"]["n_events"] == len(lux_events)
    # events beyond the outline: in the lattice the workers bin on, not in any cell of the grid
    assert ours.attrs["parameters"]["n_outside_grid"] == ref.attrs["parameters"]["n_outside_grid"] > 0


def test_time_window_selects_the_same_events(client, lux_archive, lux_events):
    manifest = read_manifest(lux_archive)
    ours = hotspots_from_archive(manifest, client=client, cell=1000, band=3000, start="2023-05-15", end="2024-02-10")
    ref = hotspots_from_events(lux_events, study_area=study_area(), cell=1000, band=3000, start="2023-05-15", end="2024-02-10")
    np.testing.assert_array_equal(ours["count"].to_numpy(), ref["count"].to_numpy())
    np.testing.assert_allclose(ours["gi_z"].to_numpy(), ref["gi_z"].to_numpy(), rtol=0, atol=1e-12)
    assert ours.attrs["parameters"]["partitions"] < len(manifest.partitions)


@pytest.mark.parametrize("step", ["quarter", "month"])
def test_space_time_cube_and_emerging_categories_equal_the_single_machine_path(client, lux_archive, lux_events, step):
    manifest = read_manifest(lux_archive)
    ours = hotspots_from_archive(manifest, client=client, method="emerging", cell=2000, band=5000, step=step)
    ref = emerging_hotspots(lux_events, study_area=study_area(), cell=2000, band=5000, step=step)
    np.testing.assert_array_equal(ours["count"].to_numpy(), ref["count"].to_numpy())
    np.testing.assert_array_equal(ours["category"].to_numpy(), ref["category"].to_numpy())
    np.testing.assert_allclose(ours["trend_z"].to_numpy(), ref["trend_z"].to_numpy(), rtol=0, atol=1e-12)
    assert ours.attrs["parameters"]["steps"] == ref.attrs["parameters"]["steps"]
    # the planted growing hot spot is found
    assert (ours["category"].str.contains("intensifying|new|consecutive")).any()
    # and the reduced cube itself equals the cube of the events
    grid = make_grid(study_area(), cell=2000)
    cube, steps = space_time_cube(lux_events, grid, step=step)
    task = BinTask("cube", spec=grid_spec(grid), step=step, first=steps[0].ordinal, n_steps=len(steps))
    reduced = reduce_archive(manifest, task, client=client).values.reshape(cube.shape)
    np.testing.assert_array_equal(reduced, cube)


def test_partitions_in_shrinking_batches(lux_archive):
    manifest = read_manifest(lux_archive)
    entries = manifest.partitions  # 16 of 1,500 rows
    for threads in (1, 2, 5, 40):
        for smallest in (1, 3_000, 10**9):
            batches = batch_partitions(entries, threads, smallest=smallest)
            assert [e.path for b in batches for e in b] == [e.path for e in entries]  # each once, in order
            assert all(b for b in batches)
    # each run takes 1/(2 x threads) of the rows left (a partition where its middle row falls), never fewer than smallest
    sizes = [[e.rows for e in b] for b in batch_partitions(entries, 2, smallest=1)]
    assert [len(b) for b in sizes] == [4, 3, 2, 2, 1, 1, 1, 1, 1]
    assert [len(b) for b in batch_partitions(entries, 2, smallest=3_000)] == [4, 3, 2, 2, 2, 2, 1]
    assert [len(b) for b in batch_partitions(entries, 1, smallest=1)] == [8, 4, 2, 1, 1]
    assert len(batch_partitions(entries, 2)) == 1  # 24,000 rows: below MIN_BATCH_ROWS, one task
    # for a scheduler that sends every task at once: EVEN_TASKS_PER_THREAD runs of equal rows per thread
    assert [len(b) for b in batch_partitions(entries, 2, smallest=1, shrinking=False)] == [2] * 8
    assert [len(b) for b in batch_partitions(entries, 1, shrinking=False, smallest=1)] == [4] * 4
    assert [len(b) for b in batch_partitions(entries, 1, smallest=10_000, shrinking=False)] == [5, 6, 5]  # 3 runs
    # each partition where its middle row falls: 28 of 500,000 rows on 2 threads, 14 in each worker's half
    halves = [replace(entries[0], rows=500_000)] * 28
    runs = [len(b) for b in batch_partitions(halves, 2, shrinking=False)]
    assert len(runs) == 8 and sum(runs[:4]) == 14 and set(runs) == {3, 4}
    # unequal partitions: a large one alone, none split
    sized = [replace(entries[0], rows=r) for r in (100, 100, 5_000, 100, 100, 100, 100)]
    assert [[e.rows for e in b] for b in batch_partitions(sized, 1, smallest=1)] == [[100, 100, 5_000], [100, 100], [100], [100]]
    # the number of runs grows with the log of the rows: 200,000 partitions of 500,000 rows on 2 threads
    many = [replace(entries[0], rows=500_000)] * 200_000
    assert len(batch_partitions(many, 2)) < 4 * 2 * math.log(200_000 * 500_000 / MIN_BATCH_ROWS)


@pytest.mark.parametrize("kind", ["cells", "weighted", "month cube", "kde", "tally"])
def test_a_partition_binned_in_batches_equals_it_binned_whole(tmp_path, kind):
    root = tmp_path / "one"
    rng = np.random.default_rng(8)
    n = 5_000
    start, end = quarter_window("2024Q2")
    region = rng.choice(np.array(["Nord", "Sud-Ouest", "Capitale", None], dtype=object), n)
    with ArchiveWriter(root, crs="EPSG:2169") as writer:
        writer.write({"x": rng.uniform(60_000, 100_000, n), "y": rng.uniform(70_000, 130_000, n),
                      "observed_at": rng.integers(start, end, n) * 1_000_000 + rng.integers(0, 1_000_000, n),
                      "persons": rng.integers(1, 9, n), "region": region}, quarter="2024Q2")
    manifest = read_manifest(root)
    entry = manifest.partitions[0]
    spec = grid_spec(make_grid(study_area(), cell=2000))
    start, end = entry.start_utc + 86400 * 20, entry.end_utc - 86400 * 20  # a window that cuts the quarter
    first = pd.Period(entry.quarter, freq="Q").asfreq("M", how="start").ordinal
    task = {
        "cells": BinTask("cells", spec=spec, start=start, end=end),
        "weighted": BinTask("cells", spec=spec, weight="persons"),
        "month cube": BinTask("cube", spec=spec, step="month", first=first, n_steps=3),
        "kde": BinTask("kde", kde_origin=(48_000.0, 140_000.0), kde_cell=1000.0, kde_shape=(90, 60)),
        "tally": BinTask("tally", group="region"),
    }[kind]
    whole = bin_partition(str(root), entry, task)
    for rows in (97, 777, 4_999):
        part = bin_partition(str(root), entry, task, batch_rows=rows)
        assert part.used == whole.used and part.outside == whole.outside and part.rows == whole.rows == 5_000
        np.testing.assert_allclose(part.values, whole.values, rtol=0, atol=1e-9 if kind == "kde" else 0)
        assert (part.hits is None) == (whole.hits is None)
        if part.hits is not None:
            assert np.array_equal(part.hits, whole.hits)
        assert part.tally == whole.tally
    assert whole.used > 0


def test_statistics_are_those_of_the_named_column_behind_a_nested_one(tmp_path):
    # a GeoArrow point (a struct: two Parquet columns for one Arrow field) before the analysis
    # columns: the statistics looked at must still be persons' and observed_at's own
    start, end = quarter_window("2024Q1")
    n = 10
    x, y = pa.array(np.full(n, 80_000.0)), pa.array(np.full(n, 90_000.0))
    micros = (start + np.arange(n) * 60) * 1_000_000
    micros[4] = (end + 3600) * 1_000_000
    persons = np.ones(n, dtype=np.int32)
    persons[[2, 7]] = 0
    columns = {"geometry": pa.StructArray.from_arrays([x, y], ["x", "y"]),
               "observed_at": pa.array(micros, type=pa.timestamp("us", tz="UTC")), "persons": pa.array(persons), "x": x, "y": y}
    entry = _partition_file(tmp_path / "nested.parquet", columns)
    expected = [(3, "persons"), (5, "observed_at"), (8, "persons")]
    for times, persons_needed in ((True, True), (False, False)):
        read = read_partition(str(tmp_path), entry, times=times, persons=persons_needed)
        assert sorted((p.row, p.column) for p in read.problems) == expected
    task = BinTask("cells", spec=grid_spec(make_grid(study_area(), cell=2000)))
    assert bin_partition(str(tmp_path), entry, task).used == n - 3


@pytest.mark.parametrize(("persons", "bad_rows"), [
    (pa.array(["1", "2", "3", "1"]), []),  # numbers as text are read as numbers
    (pa.array([1.0, float("nan"), 2.0, 0.5]), [2, 4]),  # not a number, and below 1
    (pa.array([2, None, 1, 1], type=pa.int64()), [2]),
])
def test_persons_of_any_numeric_layout_are_checked(tmp_path, persons, bad_rows):
    start, _ = quarter_window("2024Q1")
    columns = {"x": pa.array(np.full(4, 80_000.0)), "y": pa.array(np.full(4, 90_000.0)),
               "observed_at": pa.array((start + np.arange(4)) * 1_000_000, type=pa.timestamp("us", tz="UTC")),
               "persons": persons}
    entry = _partition_file(tmp_path / "p.parquet", columns)
    for needed in (True, False):
        read = read_partition(str(tmp_path), entry, persons=needed)
        assert [p.row for p in read.problems] == bad_rows and [p.column for p in read.problems] == ["persons"] * len(bad_rows)


def test_a_column_of_an_unusable_type_is_refused_naming_the_file(tmp_path):
    start, _ = quarter_window("2024Q1")
    columns = {"x": pa.array(np.full(2, 80_000.0)), "y": pa.array(np.full(2, 90_000.0)),
               "observed_at": pa.array((start + np.arange(2)) * 1_000_000, type=pa.timestamp("us", tz="UTC")),
               "persons": pa.StructArray.from_arrays([pa.array([1, 2])], ["n"])}
    entry = _partition_file(tmp_path / "odd.parquet", columns)
    with pytest.raises(ValidationError, match="odd.parquet: a column's type cannot be read") as caught:
        read_partition(str(tmp_path), entry)
    assert caught.value.problems[0].file == "odd.parquet"


def test_small_row_groups_are_read_together_and_give_the_same_rows(tmp_path):
    from geo_ibm.archive.format import _row_group_runs

    start, _ = quarter_window("2024Q1")
    n = 1_000
    x = np.linspace(60_000, 100_000, n)
    x[[5, 517]] = np.nan
    columns = {"x": pa.array(x), "y": pa.array(np.full(n, 90_000.0)),
               "observed_at": pa.array((start + np.arange(n)) * 1_000_000, type=pa.timestamp("us", tz="UTC")),
               "persons": pa.array(np.ones(n, dtype=np.int32))}
    entry = _partition_file(tmp_path / "rg.parquet", columns, row_group_size=10)
    meta = pq.ParquetFile(tmp_path / "rg.parquet").metadata
    assert meta.num_row_groups == 100
    runs = list(_row_group_runs(meta, 35))
    assert [len(r) for r in runs] == [3] * 33 + [1] and [g for r in runs for g in r] == list(range(100))
    assert [len(r) for r in _row_group_runs(meta, 5)] == [1] * 100  # a group larger than the batch goes alone
    batches = list(iter_partition(str(tmp_path), entry, batch_rows=35))
    assert [b.offset for b in batches][:3] == [0, 30, 60] and max(len(b.x) for b in batches) <= 35
    assert np.array_equal(np.concatenate([b.x for b in batches]), x, equal_nan=True)
    assert [p.row for b in batches for p in b.problems] == [6, 518]


def test_a_row_group_too_large_to_read_at_once_is_refused_naming_the_file(tmp_path, monkeypatch):
    import geo_ibm.archive.format as archive_format

    start, _ = quarter_window("2024Q1")
    n = 10_000
    columns = {"x": pa.array(np.full(n, 80_000.0)), "y": pa.array(np.full(n, 90_000.0)),
               "observed_at": pa.array((start + np.arange(n)) * 1_000_000, type=pa.timestamp("us", tz="UTC")),
               "persons": pa.array(np.ones(n, dtype=np.int32))}
    entry = _partition_file(tmp_path / "one_group.parquet", columns)  # a single row group
    # x and y alone (times and persons proven by statistics) fit; all four columns do not
    monkeypatch.setattr(archive_format, "MAX_ROW_GROUP_BYTES", 17 * n)
    assert len(read_partition(str(tmp_path), entry, times=False, persons=False).x) == n
    with pytest.raises(ValidationError, match="one_group.parquet: row group 0 holds 10,000 rows") as caught:
        read_partition(str(tmp_path), entry)
    assert caught.value.problems[0].file == "one_group.parquet"
    # the same rows in groups of 1,000 are read
    entry = _partition_file(tmp_path / "groups.parquet", columns, row_group_size=1_000)
    assert len(read_partition(str(tmp_path), entry).x) == n


def test_files_above_the_memory_map_limit_are_read_the_same(lux_archive, monkeypatch):
    import geo_ibm.archive.format as archive_format

    manifest = read_manifest(lux_archive)
    task = BinTask("cells", spec=grid_spec(make_grid(study_area(), cell=2000)), weight="persons")
    mapped = [bin_partition(str(lux_archive), e, task) for e in manifest.partitions]
    opened: list[str] = []
    monkeypatch.setattr(archive_format, "MMAP_MAX_BYTES", 0)
    monkeypatch.setattr(archive_format.pa, "memory_map", lambda *a, **k: opened.append("mapped"))
    read = [bin_partition(str(lux_archive), e, task) for e in manifest.partitions]
    assert opened == []  # every file went through the file system's reader
    for a, b in zip(mapped, read):
        assert np.array_equal(a.values, b.values) and np.array_equal(a.hits, b.hits) and a.used == b.used


def test_bad_rows_across_batches_name_the_rows_of_the_file(tmp_path):
    start, _ = quarter_window("2024Q1")
    n = 100
    x = np.full(n, 80_000.0)
    bad = [3, 30, 31, 32, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 98]
    x[bad] = np.nan
    columns = {"x": pa.array(x), "y": pa.array(np.full(n, 90_000.0)),
               "observed_at": pa.array([(start + i) * 1_000_000 for i in range(n)], type=pa.timestamp("us", tz="UTC")),
               "persons": pa.array(np.ones(n, dtype=np.int32))}
    entry = _partition_file(tmp_path / "p.parquet", columns)
    task = BinTask("cells", spec=grid_spec(make_grid(study_area(), cell=2000)))
    whole = bin_partition(str(tmp_path), entry, task)
    for rows in (7, 33, 100):
        part = bin_partition(str(tmp_path), entry, task, batch_rows=rows)
        # the first 20 bad rows of the file are listed, all 25 counted, as when it is read whole
        assert [p.row for p in part.problems] == [r + 1 for r in bad[:20]] == [p.row for p in whole.problems]
        assert [(c.column, c.count, c.listed) for c in part.counts] == [("x", 25, 20)]
        assert part.used == n - 25
    assert [(c.column, c.count, c.listed) for c in whole.counts] == [("x", 25, 20)]


def test_a_worker_holds_one_batch_of_a_large_partition(tmp_path):
    import tracemalloc

    root = tmp_path / "big"
    write_synthetic_archive(root, n_events=400_000, partitions=1, quarters=1, seed=9)
    manifest = read_manifest(root)
    task = BinTask("cells", spec=grid_spec(make_grid(study_area(), cell=2000)))

    def peak(rows: int) -> int:
        tracemalloc.start()
        try:
            bin_partition(str(root), manifest.partitions[0], task, batch_rows=rows)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole, batched = peak(400_000), peak(20_000)
    # the arrays made per row (cells, masks) for 20,000 rows at a time instead of 400,000
    assert whole > 400_000 * 8 and batched < whole / 8, (whole, batched)


@pytest.mark.parametrize("smallest", [1, 3_000, None])
def test_reduction_in_any_number_of_tasks_equals_the_events(client, lux_archive, lux_events, smallest):
    manifest = read_manifest(lux_archive)
    grid = make_grid(study_area(), cell=1500)
    seen: list[tuple[int, int]] = []
    options = {} if smallest is None else {"smallest": smallest}
    part = reduce_archive(manifest, BinTask("cells", spec=grid_spec(grid)), client=client,
                          progress=lambda done, whole: seen.append((done, whole)), **options)
    np.testing.assert_array_equal(part.values, bin_counts(lux_events, grid))
    assert (part.partitions, part.rows) == (16, 24_000)
    # progress counts partitions, once a task, whatever the tasks
    tasks = len(batch_partitions(manifest.partitions, 2, **options))
    assert tasks == {1: 9, 3_000: 7, None: 1}[smallest]
    assert seen[-1] == (16, 16) and len(seen) == tasks and all(a[0] < b[0] for a, b in zip(seen, seen[1:]))


def test_tasks_of_equal_rows_for_a_scheduler_that_sends_every_task_at_once(client, lux_archive, lux_events, monkeypatch):
    manifest = read_manifest(lux_archive)
    grid = make_grid(study_area(), cell=1500)
    task = BinTask("cells", spec=grid_spec(grid))
    assert queues_tasks(client)  # the local cluster's scheduler queues them (WORKER_SATURATION)
    monkeypatch.setattr("geo_ibm.archive.distributed.WORKER_SATURATION", float("inf"))
    with dask_client(workers=2, processes=False, memory_limit=None) as sending:
        assert not queues_tasks(sending)
        seen: list[tuple[int, int]] = []
        part = reduce_archive(manifest, task, client=sending, smallest=1, progress=lambda done, whole: seen.append((done, whole)))
    np.testing.assert_array_equal(part.values, bin_counts(lux_events, grid))
    # 8 tasks of 2 partitions (not the 9 shrinking ones), one progress call each
    assert sorted(done for done, _ in seen) == list(range(2, 17, 2))


def _holed_area() -> shapely.MultiPolygon:
    """Luxembourg with a lake cut out and an island off its coast: rings the boundary sampling must all follow."""
    outline = study_area().geometry.union_all()
    lake = shapely.Point(outline.centroid.x, outline.centroid.y).buffer(6_000)
    island = shapely.box(120_000, 70_000, 131_300, 77_700).difference(shapely.Point(125_000, 74_000).buffer(1_500))
    return shapely.MultiPolygon([outline.difference(lake), island])


@pytest.mark.parametrize(("shape", "cell", "holed"), [("square", 1000.0, False), ("square", 333.0, False), ("hex", 1000.0, False),
                                                      ("hex", 450.0, False), ("square", 500.0, True), ("hex", 700.0, True)])
def test_grid_clipped_in_blocks_on_the_cluster_is_make_grids(client, shape, cell, holed):
    area = _holed_area() if holed else study_area()
    ref = make_grid(area, cell=cell, shape=shape)
    spec = grid_spec(ref)
    plane = as_area(area)
    lattice = grid_lattice(plane, cell=cell, shape=shape)
    assert (lattice.x0, lattice.y0, lattice.n_rows, lattice.n_cols) == (spec.x0, spec.y0, spec.n_rows, spec.n_cols)
    assert lattice.n_cells == spec.n_rows * spec.n_cols > spec.n_cells
    np.testing.assert_array_equal(lattice.spec().lookup.ravel(), np.arange(lattice.n_cells))
    on_cluster = assemble_grid(lattice, client.gather(submit_grid(client, plane, lattice, blocks=3)))
    # and in uneven blocks of rows, some of them wholly outside the area
    by_hand = assemble_grid(lattice, [clip_block(plane, lattice, r, min(r + 7, lattice.n_rows))
                                      for r in range(0, lattice.n_rows, 7)])
    for grid in (on_cluster, by_hand):
        assert list(grid.columns) == list(ref.columns)
        for column in ("cell_id", "row", "col", "area_frac"):
            assert grid[column].dtype == ref[column].dtype
            np.testing.assert_array_equal(grid[column].to_numpy(), ref[column].to_numpy())
        # the same shapes to the bit, clipped ones included
        assert (shapely.to_wkb(grid.geometry.values) == shapely.to_wkb(ref.geometry.values)).all()
        np.testing.assert_array_equal(grid_spec(grid).lookup, spec.lookup)
    assert (ref["area_frac"] < 1).sum() > 50


def test_a_grid_is_clipped_once_per_area_crs_and_lattice(client, lux_archive, lux_events, monkeypatch):
    import geo_ibm.archive.analysis as analysis_module
    from geo_ibm.archive import lattice as lattice_module

    lattice_module.clear_grid_cache()
    clipped: list[float] = []
    real = analysis_module.submit_grid

    def counting(client_, plane, lattice, **options):
        clipped.append(lattice.cell)
        return real(client_, plane, lattice, **options)

    monkeypatch.setattr(analysis_module, "submit_grid", counting)
    manifest = read_manifest(lux_archive)
    first = hotspots_from_archive(manifest, client=client, method="gi", cell=2000.0, band=6000.0)
    again = hotspots_from_archive(manifest, client=client, method="gi", cell=2000.0, band=6000.0, weight="persons")
    cube = hotspots_from_archive(manifest, client=client, method="emerging", cell=2000.0, band=6000.0)
    other = hotspots_from_archive(manifest, client=client, method="gi", cell=2500.0, band=6000.0)
    assert clipped == [2000.0, 2500.0]
    # the kept grid is the one make_grid builds, and a result's columns never reach it
    ref = make_grid(study_area(), cell=2000.0)
    for result in (first, again, cube):
        assert (shapely.to_wkb(result.geometry.values) == shapely.to_wkb(ref.geometry.values)).all()
        np.testing.assert_array_equal(result["area_frac"].to_numpy(), ref["area_frac"].to_numpy())
    np.testing.assert_array_equal(again["count"].to_numpy(), bin_counts(lux_events, ref, weights=lux_events["persons"]))
    np.testing.assert_array_equal(first["count"].to_numpy(), bin_counts(lux_events, ref))
    key = lattice_module.grid_key(as_area(study_area()), grid_lattice(as_area(study_area()), cell=2000.0, shape="square"),
                                  crs=manifest.crs)
    kept = lattice_module.cached_grid(key)
    assert kept is not None and list(kept.columns) == list(ref.columns) and len(other) != len(kept)
    # a cleared cache clips again, to the same grid
    lattice_module.clear_grid_cache()
    cold = hotspots_from_archive(manifest, client=client, method="gi", cell=2000.0, band=6000.0)
    assert clipped == [2000.0, 2500.0, 2000.0]
    np.testing.assert_array_equal(cold["gi_z"].to_numpy(), first["gi_z"].to_numpy())


def test_kept_grids_are_bounded_by_their_cells():
    from geo_ibm.archive import lattice as lattice_module

    lattice_module.clear_grid_cache()
    grids = {cell: make_grid(study_area(), cell=cell) for cell in (3000.0, 4000.0, 5000.0)}
    keys = {cell: ("EPSG:2169", "area", "square", cell, 0.0, 0.0, 1, 1) for cell in grids}
    limit = len(grids[3000.0]) + len(grids[4000.0])
    for cell in (3000.0, 4000.0):
        lattice_module.keep_grid(keys[cell], grids[cell], limit=limit)
    assert lattice_module.cached_grid(keys[3000.0]) is not None  # now the most recently used
    lattice_module.keep_grid(keys[5000.0], grids[5000.0], limit=limit)
    assert lattice_module.cached_grid(keys[4000.0]) is None  # used longest ago: forgotten
    assert lattice_module.cached_grid(keys[3000.0]) is not None and lattice_module.cached_grid(keys[5000.0]) is not None
    lattice_module.clear_grid_cache()
    lattice_module.keep_grid(keys[3000.0], grids[3000.0], limit=len(grids[3000.0]) - 1)
    assert lattice_module.cached_grid(keys[3000.0]) is None  # larger than the whole budget: never kept
    lattice_module.clear_grid_cache()


def test_kde_binning_equals_the_kde_internals(client, lux_archive, lux_events):
    manifest = read_manifest(lux_archive)
    area = study_area().geometry.union_all()
    bounds, cell, radius = area.bounds, 400.0, 3000.0
    binned, used, (x0, y0, pad) = kde_raster(manifest, client=client, bounds=bounds, cell=cell, radius=radius)
    xy = np.column_stack([lux_events.geometry.x, lux_events.geometry.y])
    reference = _linear_bin(xy, None, x0=x0 - pad * cell, y0=y0 + pad * cell, cell=cell, shape=binned.shape)
    np.testing.assert_allclose(binned, reference, rtol=1e-12, atol=1e-12)
    assert used == len(xy)
    surface = hotspots_from_archive(manifest, client=client, method="kde", cell=cell, band=radius).attrs["surface"]
    expected = density_grid(xy, bounds=bounds, cell=cell, radius=radius)
    np.testing.assert_allclose(surface.density, expected.density, rtol=1e-9, atol=1e-9 * expected.density.max())


def test_counts_per_quarter_and_country(client, lux_archive, lux_events, tmp_path):
    manifest = read_manifest(lux_archive)
    ours = tally_archive(manifest, client=client)
    quarters = lux_events["observed_at"].dt.tz_localize(None).dt.to_period("Q").astype(str)
    ref = lux_events.assign(quarter=quarters).groupby("quarter").agg(events=("x", "size"), persons=("persons", "sum"))
    assert ours["quarter"].tolist() == ref.index.tolist()
    assert ours["events"].tolist() == ref["events"].tolist()
    assert ours["persons"].tolist() == ref["persons"].tolist()
    with pytest.raises(ValidationError, match="by: the archive has no column 'region'"):
        tally_archive(manifest, client=client, by="region")


def test_counts_only_by_columns_of_few_values(client, lux_archive, forbid):
    forbid("geo_ibm.archive.distributed.reduce_archive")
    for by in ("event_id", "persons", "x", "observed_at"):
        with pytest.raises(ValidationError, match=f"by: counts go per quarter or per one of region, .*got '{by}'") as caught:
            tally_archive(read_manifest(lux_archive), client=client, by=by)
        assert caught.value.problems[0].column == "by"


def test_counts_choices_are_those_of_the_manifest(lux_archive, forbid, tmp_path):
    forbid("geo_ibm.archive.distributed.reduce_archive")
    manifest = read_manifest(lux_archive)
    # the synthetic archive has no column of few values: per quarter, or per its (empty) country key
    assert tally_choices(manifest) == ("quarter", "country")
    check_tally_by(manifest, "country")
    with pytest.raises(ValidationError, match="by: the archive has no column 'canton'") as caught:
        check_tally_by(manifest, "canton")
    assert caught.value.problems[0].column == "by"
    richer = replace(manifest, columns=manifest.columns + ("transport_mode", "region", "event_id"))
    assert tally_choices(richer) == ("quarter", "country", "region", "transport_mode")
    with pytest.raises(ValidationError, match="by: counts go per quarter or per one of"):
        check_tally_by(richer, "event_id")


def test_bad_rows_are_reported_by_file_and_row(client, tmp_path):
    root = tmp_path / "bad"
    start, _ = quarter_window("2024Q1")
    n = 40
    seconds = (start + np.arange(n) * 3600) * 1_000_000
    x = np.full(n, 80_000.0) + np.arange(n)
    y = np.full(n, 90_000.0)
    persons = np.ones(n, dtype=int)
    with ArchiveWriter(root, crs="EPSG:2169") as writer:
        writer.write({"x": x, "y": y, "observed_at": seconds, "persons": persons}, quarter="2024Q1")
        x2, persons2 = x.copy(), persons.copy()
        x2[4] = np.nan
        persons2[[8, 9]] = 0
        writer.write({"x": x2, "y": y, "observed_at": seconds, "persons": persons2}, quarter="2024Q1")
    manifest = read_manifest(root)
    with pytest.raises(ValidationError, match="3 bad rows in 1 partitions") as caught:
        hotspots_from_archive(manifest, client=client, cell=1000, band=3000)
    found = {(p.file, p.row, p.column) for p in caught.value.problems}
    bad_file = "quarter=2024Q1/part-00001.parquet"
    assert found == {(bad_file, 5, "x"), (bad_file, 9, "persons"), (bad_file, 10, "persons")}
    assert f"{bad_file}, row 5, column 'x': not a finite number" in str(caught.value)
    # the same when each partition is binned by a task of its own
    with pytest.raises(ValidationError, match="3 bad rows in 1 partitions") as caught:
        reduce_archive(manifest, BinTask("cells", spec=grid_spec(make_grid(study_area(), cell=1000))), client=client,
                       smallest=1)
    assert {(p.file, p.row, p.column) for p in caught.value.problems} == found


def test_missing_or_altered_partition_is_an_error(client, tmp_path):
    root = tmp_path / "gaps"
    write_synthetic_archive(root, n_events=6_000, partitions=6, quarters=6)
    manifest = read_manifest(root)
    gone = manifest.partitions[2].path
    (root / gone).unlink()
    with pytest.raises(ValidationError, match="1 of 6 partitions missing or altered") as caught:
        hotspots_from_archive(manifest, client=client, cell=1000, band=3000)
    assert caught.value.problems[0].file == gone
    assert "absent from the archive" in caught.value.problems[0].reason
    # a file swapped for another partition's is caught by its size or its checksum
    other = manifest.partitions[1].path
    (root / other).write_bytes((root / manifest.partitions[0].path).read_bytes())
    with pytest.raises(ValidationError, match=other.replace("=", "=")):
        check_partitions(manifest, entries=[manifest.partitions[1]], checksums=True)


def test_cube_budget_is_refused_before_any_work(client, tmp_path):
    root = tmp_path / "budget"
    write_synthetic_archive(root, n_events=20_000, partitions=20, quarters=20)  # 60 months
    manifest = read_manifest(root)
    (root / manifest.partitions[0].path).unlink()  # work sent to the cluster would report this first
    with pytest.raises(ValidationError, match=r"cell: .* space-time bins; at most 3,000,000") as caught:
        hotspots_from_archive(manifest, client=client, method="emerging", cell=200, band=400, step="month")
    assert caught.value.problems[0].column == "cell"
    with pytest.raises(ValidationError, match="band: kernel density over an archive needs the search radius"):
        hotspots_from_archive(manifest, client=client, method="kde")


@pytest.mark.parametrize(("options", "parameter"), [
    ({"method": "lisa"}, "method"),
    ({"weight": "smugglers"}, "weight"),
    ({"shape": "circle"}, "shape"),
    ({"method": "emerging", "step": "week"}, "step"),
    ({"alpha": 1.5}, "alpha"),
    ({"cell": 1.0}, "cell"),
    ({"cell": 2000.0, "band": 500.0}, "band"),
    ({"method": "kde"}, "band"),
    ({"method": "kde", "band": 3000.0, "cell": 0.5}, "cell"),
    ({"method": "emerging", "cell": 200.0, "step": "month"}, "cell"),
    ({"start": "2024-06-01", "end": "2024-01-01"}, "end"),
    ({"start": "someday"}, "start"),
])
def test_requests_are_refused_from_the_manifest_alone(tmp_path, options, parameter):
    """No client: every refusal is made before a cluster is asked for anything, naming the parameter."""
    from geo_ibm.archive import check_archive_request

    root = tmp_path / "checks"
    write_synthetic_archive(root, n_events=20_000, partitions=20, quarters=20)
    manifest = read_manifest(root)
    for p in manifest.partitions:
        (root / p.path).unlink()  # no partition is read
    with pytest.raises(ValidationError) as caught:
        check_archive_request(manifest, **options)
    columns = [p.column for p in caught.value.problems] or [str(caught.value).split(":")[0]]
    assert parameter in columns or str(caught.value).startswith(parameter), (str(caught.value), columns)


def test_a_checked_request_runs_as_the_whole_call(client, lux_archive):
    from geo_ibm.archive import check_archive_request, run_archive_request

    manifest = read_manifest(lux_archive)
    checked = check_archive_request(manifest, method="gi", start="2024-01-01", end="2025-01-01")
    assert checked.rows == sum(p.rows for p in manifest.partitions if p.quarter.startswith("2024"))
    assert checked.params["cell_method"] != "given" and checked.band is None
    got = run_archive_request(checked, client=client)
    want = hotspots_from_archive(manifest, client=client, method="gi", start="2024-01-01", end="2025-01-01")
    assert got.attrs["parameters"] == want.attrs["parameters"]
    assert np.array_equal(got["gi_z"].to_numpy(), want["gi_z"].to_numpy())


def test_europe_archive_gets_a_grid_in_its_own_crs(client, tmp_path):
    root = tmp_path / "eu"
    write_synthetic_archive(root, n_events=20_000, partitions=20, crs="EPSG:3035", quarters=2)
    manifest = read_manifest(root)
    assert manifest.crs == "EPSG:3035" and manifest.partitioning == ("country", "quarter")
    assert manifest.countries and all(p.path.startswith(f"country={p.country}/quarter=") for p in manifest.partitions)
    ours = hotspots_from_archive(manifest, client=client, cell=50_000, band=150_000)
    assert ours.crs.to_epsg() == 3035
    assert ours.attrs["parameters"]["crs"] == "EPSG:3035"
    minx, miny, maxx, maxy = ours.total_bounds
    assert 2_000_000 < minx < maxx < 7_000_000 and 1_000_000 < miny < maxy < 6_000_000
    # reference: the events' own coordinates binned on a lattice over the archive's box
    events = _events_of(root)
    assert events.crs.to_epsg() == 3035
    grid = make_grid(shapely.box(*ours.total_bounds), cell=50_000)
    np.testing.assert_array_equal(ours["count"].to_numpy(), bin_counts(events, grid))
    assert ours["count"].sum() == 20_000
    by_country = tally_archive(manifest, client=client, by="country")
    assert by_country.groupby("country")["events"].sum().sum() == 20_000
    assert set(by_country["country"]) == set(manifest.countries)


def _partition_file(path: Path, columns: dict[str, pa.Array], quarter: str = "2024Q1", **options: Any) -> PartitionEntry:
    """A partition file written by pyarrow alone (no archive writer's checks), and its entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, **options)
    start, end = quarter_window(quarter)
    rows = len(next(iter(columns.values())))
    return PartitionEntry(path.name, quarter, None, rows, path.stat().st_size, "", None, None, None, start, end)


def test_read_partition_finds_every_kind_of_bad_row(tmp_path):
    start, end = quarter_window("2024Q1")
    n = 12
    x = np.full(n, 80_000.0)
    y = np.full(n, 90_000.0)
    x[1] = np.nan
    y[2] = np.inf
    x[[3, 4]] = 1.7e308  # finite, though their sum is not
    micros = [(start + 60 * i) * 1_000_000 for i in range(n)]
    micros[5] = None
    micros[6] = (start - 1) * 1_000_000
    micros[7] = end * 1_000_000
    persons = [1] * n
    persons[8] = None
    persons[9] = 0
    columns = {"x": pa.array(x), "y": pa.array(y), "observed_at": pa.array(micros, type=pa.timestamp("us", tz="UTC")),
               "persons": pa.array(persons, type=pa.int32())}
    entry = _partition_file(tmp_path / "bad.parquet", columns)
    read = read_partition(str(tmp_path), entry)
    found = {(p.row, p.column, p.reason) for p in read.problems}
    # the columns no caller needs are read all the same when their statistics show bad values
    assert {(p.row, p.column, p.reason) for p in read_partition(str(tmp_path), entry, times=False, persons=False).problems} == found
    assert found == {
        (2, "x", "not a finite number"), (3, "y", "not a finite number"), (6, "observed_at", "missing time"),
        (7, "observed_at", "outside the partition's quarter 2024Q1"), (8, "observed_at", "outside the partition's quarter 2024Q1"),
        (9, "persons", "persons must be at least 1"), (10, "persons", "persons must be at least 1"),
    }
    assert {p.row: p.value for p in read.problems if p.column == "observed_at"}[7] == "2023-12-31T22:59:59+00:00"
    assert read.good.tolist() == [i not in (1, 2, 5, 6, 7, 8, 9) for i in range(n)]
    assert sum(c.count for c in read.counts) == 7
    # seconds and persons as asked for: whole seconds, missing values as 0
    expected_seconds = [0 if m is None else m // 1_000_000 for m in micros]
    assert read.seconds.tolist() == expected_seconds
    assert read.persons.tolist() == [0.0 if p is None else float(p) for p in persons]


def test_read_partition_of_clean_rows_lists_no_problem(tmp_path):
    start, _ = quarter_window("2024Q3")
    n = 1000
    rng = np.random.default_rng(4)
    micros = (start + rng.integers(0, 80 * 86400, n)) * 1_000_000 + rng.integers(0, 1_000_000, n)
    columns = {"x": pa.array(rng.uniform(60_000, 100_000, n)), "y": pa.array(rng.uniform(60_000, 130_000, n)),
               "observed_at": pa.array(micros, type=pa.timestamp("us", tz="UTC")),
               "persons": pa.array(rng.integers(1, 9, n), type=pa.int32())}
    entry = _partition_file(tmp_path / "clean.parquet", columns, quarter="2024Q3")
    read = read_partition(str(tmp_path), entry)
    assert read.problems == [] and read.counts == [] and read.good.all()
    assert np.array_equal(read.x, columns["x"].to_numpy()) and np.array_equal(read.micros, micros)
    assert np.array_equal(read.seconds, micros // 1_000_000)
    # times and persons not needed, and proven good by the file's statistics: left unread
    lean = read_partition(str(tmp_path), entry, times=False, persons=False)
    assert lean.micros is None and lean.persons_column is None and lean.good.all() and lean.problems == []
    with pytest.raises(ValueError, match="observed_at was not read"):
        _ = lean.seconds
    # in the quarter, but one value out of 8 row groups below 1: persons is read and checked
    low = dict(columns, persons=pa.array(np.r_[np.ones(n - 1, dtype=np.int32), 0], type=pa.int32()))
    entry = _partition_file(tmp_path / "low.parquet", low, quarter="2024Q3", row_group_size=125)
    lean = read_partition(str(tmp_path), entry, times=False, persons=False)
    assert lean.micros is None and [(p.row, p.column) for p in lean.problems] == [(n, "persons")]
    # a file without statistics: every column is read
    entry = _partition_file(tmp_path / "plain.parquet", columns, quarter="2024Q3", write_statistics=False)
    plain = read_partition(str(tmp_path), entry, times=False, persons=False)
    assert np.array_equal(plain.micros, micros) and plain.persons_column is not None


def test_a_window_inside_a_quarter_reads_the_times_only_of_the_partitions_it_cuts(client, lux_archive, lux_events):
    manifest = read_manifest(lux_archive)
    spec = grid_spec(make_grid(study_area(), cell=2000))
    quarters = sorted({p.quarter for p in manifest.partitions})
    first, _ = quarter_window(quarters[2])
    start, end = first - 10 * 86400, first + 20 * 86400  # from within one quarter into the next
    result = reduce_archive(manifest, BinTask("cells", spec=spec, start=start, end=end), client=client)
    stamps = lux_events["observed_at"].dt.tz_convert("UTC")
    chosen = lux_events[(stamps >= pd.Timestamp(start, unit="s", tz="UTC")) & (stamps < pd.Timestamp(end, unit="s", tz="UTC"))]
    assert 0 < result.used == len(chosen)
    assert np.array_equal(result.values, bin_counts(np.column_stack([chosen.geometry.x, chosen.geometry.y]), spec))


def test_manifest_problems(tmp_path):
    with pytest.raises(ValidationError, match="no archive here"):
        read_manifest(tmp_path)
    root = tmp_path / "geo"
    write_synthetic_archive(root, n_events=2_000, partitions=2, quarters=2)
    data = json.loads((root / "manifest.json").read_text())
    data["crs"] = "EPSG:4326"
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(CrsError, match="not projected"):
        read_manifest(root)
    data["crs"] = "EPSG:2169"
    data["partitions"][0]["path"] = "../elsewhere.parquet"
    (root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ValidationError, match="malformed partition entries"):
        read_manifest(root)
    with pytest.raises(ValidationError, match="already holds an archive"):
        ArchiveWriter(root, crs="EPSG:2169")


def test_an_archive_writer_stops_at_the_partition_limit(tmp_path, monkeypatch):
    import geo_ibm.archive.format as archive_format

    monkeypatch.setattr(archive_format, "MAX_PARTITIONS", 2)
    start, _ = quarter_window("2024Q1")
    columns = {"x": np.full(3, 80_000.0), "y": np.full(3, 90_000.0), "observed_at": (start + np.arange(3)) * 1_000_000,
               "persons": np.ones(3, dtype=int)}
    writer = ArchiveWriter(tmp_path / "a", crs="EPSG:2169")
    writer.write(columns, quarter="2024Q1")
    writer.write(columns, quarter="2024Q1")
    with pytest.raises(ValidationError, match="at most 2 partitions") as caught:
        writer.write(columns, quarter="2024Q1")
    assert caught.value.problems[0].column == "partitions"
    assert len(list((tmp_path / "a").rglob("*.parquet"))) == 2


def test_a_manifest_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    import geo_ibm.archive.format as archive_format

    root = tmp_path / "geo"
    write_synthetic_archive(root, n_events=2_000, partitions=2, quarters=2)
    size = (root / "manifest.json").stat().st_size
    monkeypatch.setattr(archive_format, "MAX_MANIFEST_BYTES", size)
    assert read_manifest(root).rows == 2_000  # at the limit: read
    monkeypatch.setattr(archive_format, "MAX_MANIFEST_BYTES", size - 1)
    monkeypatch.setattr(archive_format.json, "loads", lambda *a, **k: pytest.fail("parsed a manifest over the limit"))
    with pytest.raises(ValidationError, match="manifest.json: larger than") as caught:
        read_manifest(root)
    assert caught.value.problems[0].reason == "manifest too large"


_UNDER_AN_ADDRESS_SPACE_LIMIT = """
import resource, sys
from geo_ibm.archive.format import read_manifest

def vm_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")

resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + (40 << 20), resource.RLIM_INFINITY))
print(read_manifest(sys.argv[1]).rows)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to measure the address space")
def test_a_small_manifest_is_read_with_memory_following_its_size(tmp_path):
    # the limit is 64 MB; reading a few KB must not reserve a buffer of that size first
    import subprocess
    import sys

    root = tmp_path / "geo"
    write_synthetic_archive(root, n_events=2_000, partitions=2, quarters=2)
    assert (root / "manifest.json").stat().st_size < 10_000
    done = subprocess.run([sys.executable, "-c", _UNDER_AN_ADDRESS_SPACE_LIMIT, str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2000"]


class _Unsized:
    """A local file system that reports no file sizes (as some object stores and streams), counting reads."""

    def __init__(self) -> None:
        self.local = pa.fs.LocalFileSystem()
        self.reads: list[int] = []

    def get_file_info(self, where: str) -> Any:
        info = self.local.get_file_info(where)
        return type("Info", (), {"type": info.type, "size": None})()

    def open_input_stream(self, where: str) -> Any:
        stream, reads = self.local.open_input_stream(where), self.reads

        class Counted:
            def __enter__(self) -> Counted:
                return self

            def __exit__(self, *exc: Any) -> None:
                stream.close()

            def read(self, n: int) -> bytes:
                reads.append(n)
                return stream.read(n)

        return Counted()


def test_a_manifest_of_unknown_size_is_read_in_chunks_and_refused_past_the_limit(tmp_path, monkeypatch):
    import geo_ibm.archive.format as archive_format

    root = tmp_path / "geo"
    write_synthetic_archive(root, n_events=2_000, partitions=2, quarters=2)
    size = (root / "manifest.json").stat().st_size
    fs = _Unsized()
    monkeypatch.setattr(archive_format, "archive_filesystem", lambda where: (fs, str(Path(where).resolve())))
    monkeypatch.setattr(archive_format, "_READ_CHUNK", 1000)
    assert read_manifest(root).rows == 2_000
    assert max(fs.reads) == 1000
    fs.reads.clear()
    monkeypatch.setattr(archive_format, "MAX_MANIFEST_BYTES", size - 1)
    with pytest.raises(ValidationError, match="manifest.json: larger than") as caught:
        read_manifest(root)
    assert caught.value.problems[0].reason == "manifest too large"
    assert caught.value.problems[0].file == str(root.resolve() / "manifest.json")
    assert sum(fs.reads) == size  # stopped one byte past the limit: the rest is never read


def test_real_worker_processes_give_the_same_counts(lux_archive, lux_events):
    manifest = read_manifest(lux_archive)
    with dask_client(workers=2) as processes:
        ours = hotspots_from_archive(manifest, client=processes, cell=1000, band=3000)
        assert ours.attrs["parameters"]["workers"] == 2
        # the allocator settings reach the worker processes (they must be there before the process starts)
        names = sorted(WORKER_MALLOC)
        seen = processes.run(lambda: [os.environ.get(name) for name in names])
        assert list(seen.values()) == [[str(WORKER_MALLOC[name]) for name in names]] * 2
    ref = hotspots_from_events(lux_events, study_area=study_area(), cell=1000, band=3000)
    np.testing.assert_array_equal(ours["count"].to_numpy(), ref["count"].to_numpy())
    np.testing.assert_allclose(ours["gi_z"].to_numpy(), ref["gi_z"].to_numpy(), rtol=0, atol=1e-12)


def test_an_existing_cluster_by_its_scheduler_address(lux_archive, lux_events):
    from distributed import LocalCluster

    manifest = read_manifest(lux_archive)
    with LocalCluster(n_workers=2, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:
        with dask_client(cluster.scheduler_address) as remote:
            ours = hotspots_from_archive(manifest, client=remote, cell=1500, band=4500)
        assert len(cluster.scheduler.workers) == 2  # a cluster we did not start is left running
    ref = hotspots_from_events(lux_events, study_area=study_area(), cell=1500, band=4500)
    np.testing.assert_array_equal(ours["count"].to_numpy(), ref["count"].to_numpy())
    with pytest.raises(ValidationError, match="scheduler: cannot reach the Dask scheduler"):
        with dask_client("tcp://127.0.0.1:9", timeout="1s"):
            pass


def test_automatic_cell_is_about_two_events_per_cell(client, lux_archive, lux_events):
    from geo_ibm.archive import archive_cell

    manifest = read_manifest(lux_archive)
    ours = hotspots_from_archive(manifest, client=client)
    params = ours.attrs["parameters"]
    area = study_area().geometry.union_all()
    assert params["cell"] == archive_cell(len(lux_events), area)[0]
    assert "archive rule" in params["cell_method"]
    assert 1.0 < len(lux_events) * params["cell"] ** 2 / area.area < 3.0
    ref = hotspots_from_events(lux_events, study_area=study_area(), cell=params["cell"])
    assert params["band"] == ref.attrs["parameters"]["band"]
    np.testing.assert_allclose(ours["gi_z"].to_numpy(), ref["gi_z"].to_numpy(), rtol=0, atol=1e-12)
