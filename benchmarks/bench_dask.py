"""Gi* over a partitioned archive on Dask against the same events in one process's memory.

One run prints, for ``--events`` (default 20M) synthetic events over Luxembourg:

- single process, in memory: every event's x/y read into one array, then binning + Gi* + FDR;
- the archive on a LocalCluster of 1 worker and of 2 workers (one thread each), both clusters
  kept up and run in turn (``--repeat`` times each after one uncounted run), so that other work
  on a shared machine weighs on both alike. Each counted run is an analysis with the process's
  kept grids forgotten first (*first analysis*: the grid clipped on the cluster and assembled
  in the client) and then the same analysis again (*grid kept*, as a server's next analysis of
  that archive at that cell: :func:`geo_ibm.archive.lattice.cached_grid`);

and then ``--big-events`` (default 100M) on 1 and 2 workers in the same way (``--big-repeat``
runs each), where the fixed costs of an analysis (the grid, Gi*, FDR, the scheduler's work per
task) weigh less against the binning. Each row gives the time of the whole analysis (reading the
partitions and building the grid included, on both routes; the median of the runs on the
archive) and the peak resident memory of each worker process (the kernel's high-water mark
since the process started: exact, where sampling it from a thread woke every worker 50 times a
second), next to the in-memory process's peak; the speedup of 2 workers over 1 is printed for
both sizes, with the CPU time of the workers and of the client process (which also hosts the
LocalCluster's scheduler and nannies) per analysis. The load average is printed before and after each size:
the machine's cores are shared with whatever else runs, and the client's CPU competes with the
two workers on a 2-core machine but not with one.

Full size (about 6 GB of scratch disk, 15-20 minutes on 2 cores):

    python benchmarks/bench_dask.py                       # 20M and 100M
    python benchmarks/bench_dask.py --big-events 0        # 20M only
    python benchmarks/bench_dask.py --events 2000000 --big-events 10000000   # a quick look

A single process would not hold 100M events as the store path does (a GeoDataFrame of shapely
points takes about 250 bytes an event: some 25 GB, over the machine's 24 GB), so the 100M rows
are measured on the archive only; the in-memory figure printed beside them is the 20M peak
scaled by five, for bare numpy arrays.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
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


def _peak_rss(dask_worker: Any) -> int:
    """The worker process's peak resident memory so far (the kernel's high-water mark: exact, and nothing sampled)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far: a worker's, or the client's with its scheduler."""
    times = os.times()
    return times.user + times.system


def _warm(dask_worker: Any) -> None:
    import geo_ibm.archive.distributed  # noqa: F401  (the first task would pay the imports)


class Cluster:
    """A LocalCluster of ``workers`` kept open over several runs."""

    def __init__(self, root: str, workers: int, cell: float, band: float) -> None:
        from geo_ibm.archive import dask_client, read_manifest

        self.manifest = read_manifest(root)
        self.workers, self.cell, self.band = workers, cell, band
        t0 = time.perf_counter()
        self._context = dask_client(workers=workers)
        self.client = self._context.__enter__()
        self.client.wait_for_workers(workers)
        self.client.run(_warm)
        self.start = time.perf_counter() - t0
        self.times: list[float] = []
        self.first: list[float] = []
        self.binning: list[float] = []
        self.cpu: list[tuple[float, float]] = []
        self.counts = np.empty(0, dtype=np.int64)
        self.peak: list[int] = []

    def run(self, *, record: bool = True) -> None:
        """A first analysis (no grid kept), the same again (the grid kept), then the cluster's part alone
        (reading + binning every partition and the sum)."""
        from geo_ibm.archive import BinTask, hotspots_from_archive, reduce_archive
        from geo_ibm.archive.lattice import clear_grid_cache

        clear_grid_cache()
        t0 = time.perf_counter()
        hotspots_from_archive(self.manifest, client=self.client, method="gi", cell=self.cell, band=self.band)
        first = time.perf_counter() - t0
        workers_before = sum(self.client.run(_cpu_seconds).values())
        client_before = _cpu_seconds()
        t1 = time.perf_counter()
        result = hotspots_from_archive(self.manifest, client=self.client, method="gi", cell=self.cell, band=self.band)
        whole = time.perf_counter() - t1
        cpu = (sum(self.client.run(_cpu_seconds).values()) - workers_before, _cpu_seconds() - client_before)
        t2 = time.perf_counter()
        reduce_archive(self.manifest, BinTask("cells", spec=result.attrs["grid"]), client=self.client)
        binning = time.perf_counter() - t2
        self.counts = result["count"].to_numpy()
        if record:
            self.first.append(first)
            self.times.append(whole)
            self.binning.append(binning)
            self.cpu.append(cpu)

    def close(self) -> None:
        self.peak = list(self.client.run(_peak_rss).values())
        self._context.__exit__(None, None, None)


def compare(root: str, cell: float, band: float, repeat: int, check: np.ndarray | None = None) -> dict[int, Cluster]:
    """1 and 2 workers, both clusters up and run in turn; the first run of each on fresh workers not counted."""
    # both clusters stay up and take turns, so that the other work on the machine weighs on
    # both alike; the first run of each (allocator, caches, lazy imports) is not counted
    clusters = {workers: Cluster(root, workers, cell, band) for workers in (1, 2)}
    try:
        for cluster in clusters.values():
            cluster.run(record=False)
        for _ in range(repeat):
            for cluster in clusters.values():
                cluster.run()
                if check is not None:
                    assert np.array_equal(cluster.counts, check), "archive counts differ from the in-memory counts"
        assert np.array_equal(clusters[1].counts, clusters[2].counts), "1 and 2 workers give different counts"
    finally:
        for cluster in clusters.values():
            cluster.close()
    return clusters


def report_speedup(clusters: dict[int, Cluster], events: int) -> str:
    """Print the 2-vs-1 comparison lines; return the one-line summary."""
    one, two = clusters[1], clusters[2]
    pairs = [a / b for a, b in zip(one.times, two.times)]
    whole = median(one.times) / median(two.times)
    first = median(one.first) / median(two.first)
    print(f"first analysis (grid clipped on the cluster): 1 worker {median(one.first):.2f} s (runs {spread(one.first)}), "
          f"2 workers {median(two.first):.2f} s (runs {spread(two.first)}): {first:.2f}x")
    print(f"2 workers vs 1, whole analysis with the grid kept: {whole:.2f}x (target >= 1.7x; run by run {spread(pairs)})")
    print(f"the cluster's part alone (read + bin every partition, sum): {median(one.binning):.2f} s on 1 worker, "
          f"{median(two.binning):.2f} s on 2: {median(one.binning) / median(two.binning):.2f}x; the whole analysis "
          "also clips the grid on the cluster, and the client assembles it and runs Gi* and FDR")
    for workers, run in clusters.items():
        print(f"CPU time of one whole analysis on {workers} worker{'s' if workers > 1 else ''} (medians; other work on "
              f"the machine does not count): workers {median([c[0] for c in run.cpu]):.2f} s together, client with "
              f"its scheduler {median([c[1] for c in run.cpu]):.2f} s")
    return (f"{events:,} events: 1 worker {median(one.times):.2f} s, 2 workers {median(two.times):.2f} s, "
            f"{whole:.2f}x with the grid kept; first analysis {median(one.first):.2f} / {median(two.first):.2f} s, "
            f"{first:.2f}x (the cluster's part {median(one.binning) / median(two.binning):.2f}x)")


def median(values: list[float]) -> float:
    return float(np.median(values))


def spread(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def load() -> str:
    return "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1 / 5 / 15 min)"


def gb(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000_000, help="events of the in-memory vs 1/2 workers comparison")
    parser.add_argument("--partitions", type=int, default=None, help="files of that archive (default one per 500,000 events)")
    parser.add_argument("--big-events", type=int, default=100_000_000, help="events of the big archive, on 1 and 2 workers (0: skip)")
    parser.add_argument("--big-partitions", type=int, default=None, help="files of the big archive (default one per 500,000)")
    parser.add_argument("--cell", type=float, default=CELL)
    parser.add_argument("--band", type=float, default=BAND)
    parser.add_argument("--repeat", type=int, default=3, help="counted runs on each cluster, 1 and 2 workers in turn")
    parser.add_argument("--big-repeat", type=int, default=2, help="the same for the big archive")
    parser.add_argument("--scratch", default=None, help="folder for the archives (default a temporary one, removed after)")
    args = parser.parse_args()
    # Dask logs every worker's start and stop (and a closed comm at shutdown, with its traceback)
    # at INFO, here and in the worker processes (which read this variable): only warnings and errors
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

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
        print(f"machine: {os.cpu_count()} cores shared with other work; times vary by about ±30 %; {load()}\n")

        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_in_memory, args=(str(root), args.cell, args.band, queue))
        child.start()
        memory = queue.get()
        child.join()
        rows = [("single process, in memory", memory["load"] + memory["grid"] + memory["analysis"],
                 f"read x/y {memory['load']:.1f} s + grid {memory['grid']:.1f} s + bin/Gi*/FDR {memory['analysis']:.2f} s",
                 gb(memory["peak"]))]
        clusters = compare(str(root), args.cell, args.band, args.repeat, check=memory["counts"])
        for workers, run in clusters.items():
            rows.append((f"archive, {workers} worker{'s' if workers > 1 else ''}", median(run.times),
                         f"median of {spread(run.times)} s with the grid kept ({median(run.first):.2f} s a first "
                         f"analysis); cluster start {run.start:.1f} s not counted; reading, grid, Gi* and FDR counted",
                         ", ".join(gb(p) for p in run.peak)))
        print(f"{args.events:,} events")
        print(f"{'route':<30}{'time':>9}  {'peak memory per process':<28}note")
        for label, seconds, note, peak in rows:
            print(f"{label:<30}{seconds:>8.2f}s  {peak:<28}{note}")
        summary = [report_speedup(clusters, args.events)]
        print("counts equal to the in-memory counts in every run")
        print(load())

        if args.big_events > 0:
            big = scratch / f"lux_{args.big_events}"
            big_parts = args.big_partitions or max(1, args.big_events // 500_000)
            if not (big / "manifest.json").exists():
                t0 = time.perf_counter()
                write_synthetic_archive(big, n_events=args.big_events, partitions=big_parts, quarters=12, seed=2)
                print(f"\narchive of {args.big_events:,} events in {big_parts} partitions written in "
                      f"{time.perf_counter() - t0:.1f} s")
            print(f"\n{args.big_events:,} events ({args.big_events / big_parts:,.0f} a partition); {load()}")
            big_clusters = compare(str(big), args.cell, args.band, args.big_repeat)
            assert int(big_clusters[2].counts.sum()) <= args.big_events
            for workers, run in big_clusters.items():
                print(f"archive, {workers} worker{'s' if workers > 1 else ''}: {median(run.times):.2f} s with the grid "
                      f"kept (median of {spread(run.times)} s; {median(run.first):.2f} s a first analysis), of which the cluster's part {median(run.binning):.2f} s; peak per worker "
                      f"{', '.join(gb(p) for p in run.peak)} (cluster start {run.start:.1f} s not counted)")
            summary.append(report_speedup(big_clusters, args.big_events))
            scale = args.big_events / args.events
            print(f"single process: not run. Bare x/y arrays in memory would peak near {gb(memory['peak'] * scale)} "
                  f"(the {args.events:,}-event peak x {scale:g}); as the store path holds them (a GeoDataFrame of shapely "
                  f"points, about 250 bytes an event) some {gb(args.big_events * 250)}, over the machine's 24 GB")
            print(load())
        print(f"\nspeedup of 2 workers over 1 (whole analysis, medians; {os.cpu_count()} cores shared with the client "
              "process and any other work):")
        for line in summary:
            print("  " + line)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
