"""Gi* over a partitioned archive on Dask against the same events in one process's memory.

One run prints, for ``--events`` (default 20M) synthetic events over Luxembourg:

- single process, in memory: every event's x/y read into one array, then binning + Gi* + FDR;
- the archive on a LocalCluster of 1 worker and of 2 workers (one thread each);

and then ``--big-events`` (default 100M) on 2 workers. Each row gives the time of the whole
analysis (reading the partitions and building the grid included, on both routes; the best of
two runs on the archive) and the peak resident memory of
each worker process (sampled every 20 ms), next to the in-memory process's peak.

Full size (about 6 GB of scratch disk, 10-15 minutes on 2 cores):

    python benchmarks/bench_dask.py                       # 20M and 100M
    python benchmarks/bench_dask.py --big-events 0        # 20M only
    python benchmarks/bench_dask.py --events 2000000 --big-events 10000000   # a quick look

A single process would not hold 100M events as the store path does (a GeoDataFrame of shapely
points takes about 250 bytes an event: some 25 GB, over the machine's 24 GB), so the 100M row
is measured on the archive only; the in-memory figure printed beside it is the 20M peak scaled
by five, for bare numpy arrays.
"""
from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CELL = 200.0
BAND = 600.0


def _in_memory(root: str, cell: float, band: float, queue: Any) -> None:
    """Child process: read every x/y into memory, then bin + Gi* + FDR; report times and peak RSS."""
    import pyarrow.parquet as pq

    from geo_ibm.analysis.methods import study_area
    from geo_ibm.archive import read_manifest
    from geo_ibm.grid import bin_counts, grid_spec, make_grid
    from geo_ibm.hotspots import fdr_bins, gi_star_grid

    manifest = read_manifest(root)
    t_grid = time.perf_counter()
    spec = grid_spec(make_grid(study_area(), cell=cell))
    grid = time.perf_counter() - t_grid
    t0 = time.perf_counter()
    x = np.empty(manifest.rows)
    y = np.empty(manifest.rows)
    at = 0
    for entry in manifest.partitions:
        table = pq.read_table(Path(root) / entry.path, columns=["x", "y"])
        n = table.num_rows
        x[at : at + n] = table.column("x").to_numpy()
        y[at : at + n] = table.column("y").to_numpy()
        at += n
    xy = np.column_stack([x, y])
    del x, y
    loaded = time.perf_counter() - t0
    t1 = time.perf_counter()
    counts = bin_counts(xy, spec)
    gi = gi_star_grid(counts, spec, band=band)
    fdr_bins(gi.z, gi.p)
    analysed = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({"load": loaded, "grid": grid, "analysis": analysed, "peak": peak, "counts": counts})


def _start_sampler(dask_worker: Any) -> int:
    import threading

    import psutil

    process = psutil.Process()
    state = {"peak": process.memory_info().rss, "run": True}

    def sample() -> None:
        while state["run"]:
            state["peak"] = max(state["peak"], process.memory_info().rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    dask_worker.bench_memory = state
    return int(state["peak"])


def _stop_sampler(dask_worker: Any) -> int:
    state = dask_worker.bench_memory
    state["run"] = False
    return int(state["peak"])


def _warm(dask_worker: Any) -> None:
    import geo_ibm.archive.distributed  # noqa: F401  (the first task would pay the imports)


def on_cluster(root: str, workers: int, cell: float, band: float) -> dict[str, Any]:
    from geo_ibm.archive import BinTask, dask_client, hotspots_from_archive, read_manifest, reduce_archive

    manifest = read_manifest(root)
    t0 = time.perf_counter()
    with dask_client(workers=workers) as client:
        client.wait_for_workers(workers)
        client.run(_warm)
        started = time.perf_counter() - t0
        base = client.run(_start_sampler)
        times = []
        for _ in range(2):  # the first run on fresh workers is often slower (allocator, caches)
            t1 = time.perf_counter()
            result = hotspots_from_archive(manifest, client=client, method="gi", cell=cell, band=band)
            times.append(time.perf_counter() - t1)
        # the part that runs on the cluster alone: reading + binning every partition and the sum
        spec = result.attrs["grid"]
        binning = []
        for _ in range(2):
            t2 = time.perf_counter()
            reduce_archive(manifest, BinTask("cells", spec=spec), client=client)
            binning.append(time.perf_counter() - t2)
        peaks = client.run(_stop_sampler)
    return {"start": started, "time": min(times), "times": times, "binning": min(binning), "base": list(base.values()),
            "peak": list(peaks.values()), "counts": result["count"].to_numpy()}


def gb(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000_000, help="events of the in-memory vs 1/2 workers comparison")
    parser.add_argument("--partitions", type=int, default=None, help="files of that archive (default one per 500,000 events)")
    parser.add_argument("--big-events", type=int, default=100_000_000, help="events of the 2-worker-only run (0: skip)")
    parser.add_argument("--big-partitions", type=int, default=None, help="files of the big archive (default one per 500,000)")
    parser.add_argument("--cell", type=float, default=CELL)
    parser.add_argument("--band", type=float, default=BAND)
    parser.add_argument("--scratch", default=None, help="folder for the archives (default a temporary one, removed after)")
    args = parser.parse_args()

    from geo_ibm.archive import write_synthetic_archive

    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="bench_dask_"))
    try:
        root = scratch / f"lux_{args.events}"
        parts = args.partitions or max(1, args.events // 500_000)
        if not (root / "manifest.json").exists():
            t0 = time.perf_counter()
            write_synthetic_archive(root, n_events=args.events, partitions=parts, quarters=12)
            print(f"archive of {args.events:,} events in {parts} partitions written in {time.perf_counter() - t0:.1f} s")
        per_partition = args.events / parts
        print(f"grid: {args.cell:g} m cells over Luxembourg, band {args.band:g} m; "
              f"{per_partition:,.0f} events ({per_partition * 32 / 1e6:.0f} MB of x/y/time/persons) a partition")
        print("machine: 2 cores shared with other work; times vary by about ±30 %\n")

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_in_memory, args=(str(root), args.cell, args.band, queue))
        child.start()
        memory = queue.get()
        child.join()
        rows = [("single process, in memory", memory["load"] + memory["grid"] + memory["analysis"],
                 f"read x/y {memory['load']:.1f} s + grid {memory['grid']:.1f} s + bin/Gi*/FDR {memory['analysis']:.2f} s",
                 gb(memory["peak"]))]
        runs = {}
        for workers in (1, 2):
            run = on_cluster(str(root), workers, args.cell, args.band)
            runs[workers] = run
            assert np.array_equal(run["counts"], memory["counts"]), "archive counts differ from the in-memory counts"
            peaks = ", ".join(gb(p) for p in run["peak"])
            rows.append((f"archive, {workers} worker{'s' if workers > 1 else ''}", run["time"],
                         f"runs {run['times'][0]:.1f} s, {run['times'][1]:.1f} s (best shown); cluster start "
                         f"{run['start']:.1f} s not counted; reading, grid, Gi* and FDR counted", peaks))
        print(f"{args.events:,} events")
        print(f"{'route':<30}{'time':>9}  {'peak memory per process':<28}note")
        for label, seconds, note, peak in rows:
            print(f"{label:<30}{seconds:>8.2f}s  {peak:<28}{note}")
        speedup = runs[1]["time"] / runs[2]["time"]
        print(f"2 workers vs 1, whole analysis: {speedup:.2f}x (target >= 1.7x); counts equal to the in-memory counts "
              "in every run")
        print(f"the cluster's part alone (read + bin every partition, sum): {runs[1]['binning']:.2f} s on 1 worker, "
              f"{runs[2]['binning']:.2f} s on 2: {runs[1]['binning'] / runs[2]['binning']:.2f}x; the rest (grid over "
              f"Luxembourg, Gi*, FDR) runs on the client in both")

        if args.big_events > 0:
            big = scratch / f"lux_{args.big_events}"
            big_parts = args.big_partitions or max(1, args.big_events // 500_000)
            if not (big / "manifest.json").exists():
                t0 = time.perf_counter()
                write_synthetic_archive(big, n_events=args.big_events, partitions=big_parts, quarters=12, seed=2)
                print(f"\narchive of {args.big_events:,} events in {big_parts} partitions written in "
                      f"{time.perf_counter() - t0:.1f} s")
            run = on_cluster(str(big), 2, args.cell, args.band)
            assert int(run["counts"].sum()) <= args.big_events
            print(f"{args.big_events:,} events, archive, 2 workers: {run['time']:.2f} s, of which the cluster's part "
                  f"{run['binning']:.2f} s (runs "
                  f"{run['times'][0]:.1f} s, {run['times'][1]:.1f} s), peak per worker "
                  f"{', '.join(gb(p) for p in run['peak'])} (cluster start {run['start']:.1f} s not counted)")
            scale = args.big_events / args.events
            print(f"single process: not run. Bare x/y arrays in memory would peak near {gb(memory['peak'] * scale)} "
                  f"(the {args.events:,}-event peak x {scale:g}); as the store path holds them (a GeoDataFrame of shapely "
                  f"points, about 250 bytes an event) some {gb(args.big_events * 250)}, over the machine's 24 GB")
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
