"""The Dask path over an archive: one task per partition bins its events to small arrays, a tree of tasks sums them.

Each task reads ``x``/``y`` (and ``observed_at``/``persons``) of one partition with pyarrow
and bins them with numpy (``bincount`` on the grid's index arithmetic), so a worker holds one
partition at a time and never decodes WKB. What comes back is a cell vector, a cells x steps
cube, a padded KDE raster or a table of counts: arrays that reduce by sum, after which the
statistics (Gi*, FDR, Mann–Kendall, the emerging categories, the KDE's FFT) run on one machine
as they do for the event store.
"""
from __future__ import annotations

import gc
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from geo_ibm.archive.cluster import cluster_failures, hold, killed_worker_error
from geo_ibm.archive.format import (
    BATCH_ROWS,
    Manifest,
    PartitionColumns,
    PartitionEntry,
    check_partitions,
    iter_partition,
    merge_problems,
)
from geo_ibm.archive.lattice import Lattice
from geo_ibm.errors import Problem, ProblemCount, ValidationError
from geo_ibm.grid import GridSpec, locate_xy
from geo_ibm.settings import LOCAL_TZ

if TYPE_CHECKING:
    from distributed import Client

Kind = Literal["cells", "cube", "kde", "tally"]

FAN_IN = 8
"""Partial results summed by one reduction task."""

GUIDED_SHARE = 2
"""Each binning task takes ``1 / (GUIDED_SHARE x worker threads)`` of the rows not yet given to a task.

The tasks thus shrink as the reduction goes on (guided self-scheduling): the first are large,
so the scheduler, the client and the comms (about a millisecond of CPU per task) see few of
them, and the last are small, so that whichever worker ends its work first takes the next
one instead of waiting for another worker's long last task (measured here at 100M events on
2 workers: the last binning tasks of the two workers ended 5-190 ms apart with 4 equal tasks
a worker, 1-36 ms apart with these, docs/ARCHIVE.md).
"""

EVEN_TASKS_PER_THREAD = 4
"""Binning tasks per worker thread, of about equal rows, on a scheduler that sends every task to a
worker at once (``worker-saturation: inf``): it gives each worker a contiguous run of the tasks by
their number, so shrinking tasks would leave the first worker most of the rows (measured here at
100M events on 2 workers: 1.7-1.9 s of binning on one worker against 0.6-0.8 s on the other)."""

MIN_BATCH_ROWS = 1_000_000
"""Fewest rows a binning task takes (unless fewer are left): about 20 ms of work here, against
about a millisecond of overhead per task."""


@dataclass(frozen=True)
class BinTask:
    """What every partition task computes (sent to each worker once).

    ``spec``: the grid to bin on, or a :class:`~geo_ibm.archive.lattice.Lattice` (a few numbers
    on the wire: each worker builds its lookup once). ``kind``: ``"cells"`` (counts or weight sums per grid cell), ``"cube"`` (per cell and time
    step, ``first`` being the ordinal of the first step and ``n_steps`` their number),
    ``"kde"`` (linear binning onto a raster of ``kde_shape`` cells of ``kde_cell`` metres whose
    first cell centre is half a cell from ``kde_origin``, the north-west corner) or ``"tally"``
    (events and persons per ``group`` value and quarter). ``start``/``end`` keep the events in
    ``[start, end)`` (UTC epoch seconds).
    """

    kind: Kind
    spec: GridSpec | Lattice | None = field(default=None, repr=False)
    weight: str | None = None
    start: int | None = None
    end: int | None = None
    step: Literal["quarter", "month"] = "quarter"
    first: int = 0
    n_steps: int = 0
    kde_origin: tuple[float, float] = (0.0, 0.0)
    kde_cell: float = 0.0
    kde_shape: tuple[int, int] = (0, 0)
    group: str | None = None


@dataclass
class Partial:
    """A sum over some partitions: the binned array and the row accounting, with every bad row found.

    ``hits``: for weighted cells or cubes, the events per grid cell (unweighted), so that the
    events in cells later dropped from the grid can be counted.
    """

    values: np.ndarray
    rows: int = 0
    used: int = 0
    outside: int = 0
    partitions: int = 0
    problems: list[Problem] = field(default_factory=list)
    counts: list[ProblemCount] = field(default_factory=list)
    tally: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    hits: np.ndarray | None = None


@lru_cache(maxsize=4)
def _lattice_spec(lattice: Lattice) -> GridSpec:
    return lattice.spec()


def _grid_of(task: BinTask) -> GridSpec:
    assert task.spec is not None
    return _lattice_spec(task.spec) if isinstance(task.spec, Lattice) else task.spec


def _empty(task: BinTask) -> np.ndarray:
    float_sums = task.weight is not None
    if task.kind == "cells":
        return np.zeros(_grid_of(task).n_cells, dtype=np.float64 if float_sums else np.int64)
    if task.kind == "cube":
        return np.zeros(_grid_of(task).n_cells * task.n_steps, dtype=np.float64 if float_sums else np.int64)
    if task.kind == "kde":
        return np.zeros(task.kde_shape, dtype=np.float64)
    return np.zeros(0)


def bin_partition(root: str, entry: PartitionEntry, task: BinTask, *, batch_rows: int = BATCH_ROWS) -> Partial:
    """Bin one partition as ``task`` says (runs on a worker); bad rows are returned, not binned.

    The partition is read and binned ``batch_rows`` rows at a time
    (:func:`~geo_ibm.archive.format.iter_partition`), so a worker holds one batch's columns
    and the result arrays however large the file is.
    """
    group = task.group if task.kind == "tally" and task.group not in (None, "country") else None
    # the times are needed where the window cuts this partition's quarter or for months; persons
    # for weights and tallies (iter_partition may then leave a column its statistics prove good unread)
    cut_start = task.start if task.start is not None and task.start > entry.start_utc else None
    cut_end = task.end if task.end is not None and task.end < entry.end_utc else None
    times = cut_start is not None or cut_end is not None or (task.kind == "cube" and task.step == "month")
    out = Partial(_empty(task), rows=entry.rows, partitions=1)
    if task.weight is not None and task.kind in ("cells", "cube"):
        out.hits = np.zeros(_grid_of(task).n_cells, dtype=np.int64)
    problems: list[Problem] = []
    counts: list[ProblemCount] = []
    for columns in iter_partition(root, entry, text_columns=(group,) if group else (), times=times,
                                  persons=task.weight is not None or task.kind == "tally", batch_rows=batch_rows):
        problems.extend(columns.problems)
        counts.extend(columns.counts)
        _bin_batch(out, columns, entry, task, group, cut_start, cut_end)
    out.problems, out.counts = merge_problems(problems, counts)
    return out


def _bin_batch(out: Partial, columns: PartitionColumns, entry: PartitionEntry, task: BinTask, group: str | None,
               cut_start: int | None, cut_end: int | None) -> None:
    """Add one batch of a partition into ``out``."""
    keep = columns.good
    # whole seconds: floor(micros / 1e6) >= start exactly when micros >= start * 1e6
    if cut_start is not None and columns.micros is not None:
        keep &= columns.micros >= cut_start * 1_000_000
    if cut_end is not None and columns.micros is not None:
        keep &= columns.micros < cut_end * 1_000_000
    selected = np.flatnonzero(keep) if not keep.all() else None
    x, y = (columns.x, columns.y) if selected is None else (columns.x[selected], columns.y[selected])
    weights = None
    if task.weight is not None:
        weights = columns.persons if selected is None else columns.persons[selected]
    used = len(x)
    out.used += used
    if task.kind in ("cells", "cube"):
        spec = _grid_of(task)
        cells = locate_xy(x, y, spec)
        inside = cells >= 0
        out.outside += int(used - inside.sum())
        if out.hits is not None:
            out.hits += np.bincount(cells + 1, minlength=spec.n_cells + 1)[1:]
        if task.kind == "cells":
            binned = np.bincount(cells + 1, weights=weights, minlength=spec.n_cells + 1)[1:]
        else:
            steps = _step_index(columns, selected, entry, task)
            flat = cells[inside] * task.n_steps + steps[inside]
            binned = np.bincount(flat, weights=None if weights is None else weights[inside],
                                 minlength=spec.n_cells * task.n_steps)
        out.values += binned.astype(out.values.dtype, copy=False)
    elif task.kind == "kde":
        from geo_ibm.kde import _linear_bin

        x0, y0 = task.kde_origin
        out.values += _linear_bin(np.column_stack([x, y]), weights, x0=x0, y0=y0, cell=task.kde_cell, shape=task.kde_shape)
    else:
        persons = columns.persons if selected is None else columns.persons[selected]
        if group is None:
            labels = np.full(used, entry.country if entry.country is not None else "", dtype=object)
        else:
            text = columns.text[group]
            labels = text if selected is None else text[selected]
        frame = pd.DataFrame({"group": pd.Series(labels, dtype=object).fillna(""), "persons": persons})
        summed = frame.groupby("group", sort=False)["persons"].agg(["size", "sum"])
        for g, row in summed.iterrows():
            slot = out.tally.setdefault((str(g), entry.quarter), [0.0, 0.0])
            slot[0] += float(row["size"])
            slot[1] += float(row["sum"])


def _step_index(columns: PartitionColumns, selected: np.ndarray | None, entry: PartitionEntry, task: BinTask) -> np.ndarray:
    if task.step == "quarter":
        # every row of a partition lies in its quarter (read_partition drops the others)
        n = len(columns.x) if selected is None else len(selected)
        return np.full(n, pd.Period(entry.quarter, freq="Q").ordinal - task.first, dtype=np.int64)
    seconds = columns.seconds if selected is None else columns.seconds[selected]
    stamps = pd.to_datetime(seconds, unit="s", utc=True).tz_convert(LOCAL_TZ).tz_localize(None)
    return np.asarray(stamps.to_period("M").asi8, dtype=np.int64) - task.first


def bin_partitions(root: str, entries: Sequence[PartitionEntry], task: BinTask) -> Partial:
    """Bin ``entries`` one after the other into one sum (one task on a worker).

    Each partition's result is added into the running sum as soon as it is binned, so a worker
    holds one partition's columns and two result arrays at a time, however many partitions
    the task has.
    """
    total = bin_partition(root, entries[0], task)
    for entry in entries[1:]:
        _add_into(total, bin_partition(root, entry, task))
    return total


def _add_into(total: Partial, part: Partial) -> None:
    total.values += part.values
    if total.hits is not None and part.hits is not None:
        total.hits += part.hits
    total.rows += part.rows
    total.used += part.used
    total.outside += part.outside
    total.partitions += part.partitions
    total.problems.extend(part.problems)
    total.counts.extend(part.counts)
    for key, (events, persons) in part.tally.items():
        slot = total.tally.setdefault(key, [0.0, 0.0])
        slot[0] += events
        slot[1] += persons


def add_partials(*parts: Partial) -> Partial:
    """The sum of partial results (a reduction task; also usable on one machine)."""
    first = parts[0]
    total = Partial(first.values.copy(), first.rows, first.used, first.outside, first.partitions,
                    list(first.problems), list(first.counts), {k: list(v) for k, v in first.tally.items()},
                    None if first.hits is None else first.hits.copy())
    for part in parts[1:]:
        _add_into(total, part)
    return total


def batch_partitions(entries: Sequence[PartitionEntry], threads: int, *, smallest: int = MIN_BATCH_ROWS,
                     shrinking: bool = True) -> list[list[PartitionEntry]]:
    """``entries`` in runs of consecutive partitions that shrink: one binning task each, for ``threads`` worker threads.

    Each run takes ``1 / (GUIDED_SHARE x threads)`` of the rows not yet in a run, but at least
    ``smallest`` rows; a partition goes to the run in which its middle row falls, and none is
    split (a partition larger than a run's share makes a run of its own). Every run holds at
    least one partition. With ``s = GUIDED_SHARE x threads`` there are about
    ``s x (1 + ln(rows / (s x smallest)))`` runs when ``rows > s x smallest`` (15 for 100M rows
    on 2 threads, 93 on 32), else about ``rows / smallest``. With ``shrinking=False`` there are
    ``EVEN_TASKS_PER_THREAD x threads`` runs of about equal rows instead (fewer if that would
    make them smaller than ``smallest``), each partition in the run where its middle row falls.
    """
    sizes = np.array([max(e.rows, 1) for e in entries], dtype=float)
    if not shrinking:
        return _even_runs(entries, sizes, EVEN_TASKS_PER_THREAD * max(1, threads), smallest)
    share = GUIDED_SHARE * max(1, threads)
    remaining = float(sizes.sum())
    out: list[list[PartitionEntry]] = []
    at = 0
    while at < len(entries):
        want = max(remaining / share, float(smallest))
        taken = 0.0
        run: list[PartitionEntry] = []
        while at < len(entries) and (not run or taken + sizes[at] / 2 <= want):
            run.append(entries[at])
            taken += sizes[at]
            at += 1
        out.append(run)
        remaining -= taken
    return out


def _even_runs(entries: Sequence[PartitionEntry], sizes: np.ndarray, most: int, smallest: int) -> list[list[PartitionEntry]]:
    """At most ``most`` runs of about equal rows (none below ``smallest`` but the last): each partition goes to the run
    in whose share of all the rows its middle row falls, so the runs' totals stay even whatever the partitions' sizes."""
    total = float(sizes.sum())
    count = max(1, min(most, math.ceil(total / max(float(smallest), 1.0))))
    middles = np.cumsum(sizes) - sizes / 2
    index = np.minimum((middles * (count / total)).astype(np.int64), count - 1)
    out: list[list[PartitionEntry]] = []
    for position, entry in enumerate(entries):
        if position == 0 or index[position] != index[position - 1]:
            out.append([])
        out[-1].append(entry)
    return out


def select_partitions(manifest: Manifest, *, start: int | None = None, end: int | None = None) -> list[PartitionEntry]:
    """The partitions whose quarter overlaps ``[start, end)`` (UTC epoch seconds; ``None``: open)."""
    return [
        p for p in manifest.partitions
        if (start is None or p.end_utc > start) and (end is None or p.start_utc < end)
    ]


class PendingReduction:
    """Partition tasks and their tree of sums, submitted to the cluster; :meth:`result` waits for the total."""

    def __init__(self, manifest: Manifest, leaves: list[Any], sums: list[Any],
                 batches: Sequence[Sequence[PartitionEntry]]) -> None:
        self.manifest = manifest
        self.leaves = leaves
        self.sums = sums
        self.total = sums[-1] if sums else leaves[0]
        # the partitions each leaf bins: progress by partition, and the files of a task that killed its workers
        self.paths = {f.key: [e.path for e in batch] for f, batch in zip(leaves, batches, strict=True)}
        self.sizes = {key: len(paths) for key, paths in self.paths.items()}

    def result(self, progress: Callable[[int, int], None] | None = None) -> Partial:
        """The sum over every partition, once the cluster has it.

        Raises
        ------
        ValidationError
            Bad rows in any partition: one error listing each bad row by file and row (the
            first of each file and column, every one counted).
        ClusterError
            Workers kept dying on a task (naming its partitions), or the cluster went away.
        """
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        where = f"archive {self.manifest.root}"
        try:
            with cluster_failures(where):
                try:
                    if progress is not None:
                        done, whole = 0, sum(self.sizes.values())
                        for future in as_completed(self.leaves):
                            done += self.sizes[future.key]
                            progress(done, whole)
                    result: Partial = self.total.result()
                except KilledWorker as exc:
                    raise killed_worker_error(exc, where, self.paths.get(exc.task)) from None
        except BaseException:
            self.cancel()
            raise
        if result.problems or result.counts:
            total = sum(c.count for c in result.counts)
            files = len({p.file for p in result.problems})
            raise ValidationError(
                f"archive {self.manifest.root}: {total} bad rows in {files} partitions; nothing was analysed",
                result.problems, counts=result.counts,
            )
        return result

    def cancel(self) -> None:
        """Drop every task of the reduction still queued or running."""
        self.total.client.cancel([*self.leaves, *self.sums])


def submit_reduction(
    manifest: Manifest,
    task: BinTask,
    *,
    client: Client,
    entries: Sequence[PartitionEntry] | None = None,
    smallest: int = MIN_BATCH_ROWS,
) -> PendingReduction:
    """Send ``task`` for every partition (or ``entries``) and the sums of the results to the cluster; do not wait.

    Every partition is checked to be there first (a listed partition missing is an error);
    a task on a grid is sent to each worker once (its lookup can be megabytes). The partitions
    are binned by tasks of consecutive partitions that shrink as the reduction goes on
    (:func:`batch_partitions` for the cluster's worker threads, none below ``smallest`` rows),
    each summing its own; the scheduler hands them out in that order as the workers free up
    (a scheduler that sends every task at once, ``worker-saturation: inf``, gets
    :data:`EVEN_TASKS_PER_THREAD` tasks of equal rows per thread instead), and the sums of the
    tasks' results run as soon as their inputs are ready, so a worker holds few partial arrays
    at a time.

    Raises
    ------
    ValidationError
        A missing or altered partition, or no partition selected.
    """
    chosen = list(manifest.partitions if entries is None else entries)
    if not chosen:
        raise ValidationError(f"archive {manifest.root}: no partition lies in the selected period",
                              [Problem("no partition selected", column="start")])
    check_partitions(manifest, entries=chosen)
    sent: Any = task
    if isinstance(task.spec, GridSpec):
        # a grid's lookup can be megabytes: fetched by each worker once (a lattice is a few numbers
        # and goes with each task); held by a task of its own, not scattered, so that it is rebuilt
        # if the worker holding it dies
        sent = hold(client, task)
    root = manifest.root
    batches = batch_partitions(chosen, _threads(client), smallest=smallest, shrinking=queues_tasks(client))
    leaves = client.map(bin_partitions, [root] * len(batches), batches, task=sent, pure=False)
    level, sums = leaves, []
    try:
        while len(level) > 1:
            level = [client.submit(add_partials, *level[i : i + FAN_IN], pure=False, priority=1)
                     for i in range(0, len(level), FAN_IN)]
            sums.extend(level)
    except BaseException:
        client.cancel([*leaves, *sums])
        raise
    return PendingReduction(manifest, leaves, sums, batches)


def reduce_archive(
    manifest: Manifest,
    task: BinTask,
    *,
    client: Client,
    entries: Sequence[PartitionEntry] | None = None,
    progress: Callable[[int, int], None] | None = None,
    smallest: int = MIN_BATCH_ROWS,
) -> Partial:
    """Run ``task`` on every partition (or ``entries``) on the cluster and sum the results.

    :func:`submit_reduction` (no binning task below ``smallest`` rows), then :meth:`PendingReduction.result`
    (``progress`` is called with the partitions done and their number).

    Raises
    ------
    ValidationError
        A missing or altered partition, or bad rows in any partition: one error listing each
        bad row by file and row (the first of each file and column, every one counted).
    """
    return submit_reduction(manifest, task, client=client, entries=entries, smallest=smallest).result(progress)


WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": 64 << 20, "MALLOC_MMAP_THRESHOLD_": 32 << 20}
"""glibc's allocator settings of the worker processes :func:`dask_client` starts.

Dask starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand freed memory back to the
system at once); a partition's arrays (4 MB each for 500,000 events) are then mapped and
faulted in afresh by every task, which measured here doubled the CPU time of binning 40
partitions (2.1 s against 1.05 s, the same as in the client process). Keeping up to 64 MiB of
freed memory and serving arrays below 32 MiB from the heap takes that cost away; a worker's
peak memory is what one partition's task needs either way. Set the same variables on the
workers of an existing cluster (docs/ARCHIVE.md).
"""


WORKER_SATURATION = 1.1
"""Tasks a local cluster's worker holds per thread, rounded up (``ceil(1.1 x threads)``: for one thread the task it
runs and the next); the rest queue at the scheduler."""


LOCAL_WORKERS_PER_CORE = 4
"""Most workers of a local cluster per CPU core: each is a process of its own (about 100 MB before any
work), and more workers than cores only share the same cores."""


def max_local_workers() -> int:
    """The most workers :func:`dask_client` starts on this machine (:data:`LOCAL_WORKERS_PER_CORE` per core)."""
    return LOCAL_WORKERS_PER_CORE * max(1, os.cpu_count() or 1)


@contextmanager
def dask_client(scheduler: str | None = None, *, workers: int = 2, processes: bool = True,
                memory_limit: str | float | None = "auto", timeout: str = "10s") -> Iterator[Client]:
    """A Dask client: on the cluster at ``scheduler`` (``tcp://HOST:8786``), else on a LocalCluster started here.

    The local cluster has ``workers`` workers of one thread each (separate processes unless
    ``processes=False``), started with :data:`WORKER_MALLOC`, without Dask's sampling profiler
    and with two tasks at a time on each worker (:data:`WORKER_SATURATION`), and is closed on
    exit; a remote cluster is left running. While the client is open, the objects alive in this
    process when it opened are left out of the garbage collector's passes (``gc.freeze``).
    ``timeout`` bounds the wait for the scheduler to answer.

    Raises
    ------
    ValidationError
        Naming ``scheduler`` when it cannot be reached, or ``workers`` when it is not >= 1 or more
        than :func:`max_local_workers`.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise ValidationError(f"scheduler: cannot reach the Dask scheduler at {scheduler} ({exc})",
                                  [Problem("unreachable", column="scheduler", value=scheduler)]) from None
        try:
            with _long_lived_frozen():
                yield client
        finally:
            client.close()
        return
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValidationError(f"workers must be a whole number >= 1, got {workers!r}",
                              [Problem("must be >= 1", column="workers", value=workers)])
    most = max_local_workers()
    if workers > most:
        raise ValidationError(f"workers: {workers} local workers is more than the limit of {most} "
                              f"({LOCAL_WORKERS_PER_CORE} per core of this machine); use a running cluster (scheduler) "
                              "for more", [Problem("too many workers", column="workers", value=workers)])
    import dask

    # loopback only, and any free port for the status page (8787 may be another cluster's)
    where: dict[str, Any] = {"host": "127.0.0.1"} if processes else {}
    settings: dict[str, Any] = {f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in WORKER_MALLOC.items()}
    # Dask's sampling profiler of the task threads (the dashboard's profile page) costs a worker
    # about 0.1 s of CPU per 20M-event analysis, some 7 % of its work here
    settings["distributed.worker.profile.enabled"] = False
    # each worker (one thread) holds the task it runs and the next one; the other binning tasks
    # wait at the scheduler, which hands them out in order to whichever worker frees a slot first
    # (Dask's default; set here over any other configuration; Dask queues a group of tasks only
    # when it has more than twice as many as the cluster has threads): the shrinking tasks need
    # that to even out the workers' loads. With every task sent to a worker at once ("inf"), the scheduler gave
    # each worker a contiguous run of them, and a worker slowed by other work on the machine
    # kept its share (the last tasks of 2 workers ended up to 190 ms apart at 100M events)
    settings["distributed.scheduler.worker-saturation"] = WORKER_SATURATION
    # the scheduler's and the nannies' monitors run in this process too: the system monitors
    # (for the dashboard) read /proc every 0.5 s and the nannies check their worker's memory
    # every 0.1 s, some 12 and 4 % of this process's event loop during an analysis here; and
    # every server (scheduler, nannies, workers) timed its event loop every 20 ms (only to warn
    # of a loop blocked for seconds): with all three less often an idle 2-worker cluster takes
    # 0.009 s of CPU a second in this process and 0.005 s in its workers, against 0.035 and 0.03
    settings["distributed.admin.system-monitor.interval"] = "2s"
    settings["distributed.worker.memory.monitor-interval"] = "500ms"
    settings["distributed.admin.tick.interval"] = "500ms"
    with dask.config.set(settings):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                               dashboard_address="127.0.0.1:0", memory_limit=memory_limit, **where)
    client = Client(cluster)
    try:
        with _long_lived_frozen():
            yield client
    finally:
        client.close()
        cluster.close()


@contextmanager
def _long_lived_frozen() -> Iterator[None]:
    # The client process holds some 150,000 objects of the imported libraries and of the
    # cluster (its scheduler and nannies run here), and the garbage collector's full
    # collections walk them all: about one per analysis, 80 ms of CPU each here, on a core the
    # workers need. Frozen, they are left out of every collection until the client closes;
    # what an analysis allocates afterwards is collected as usual.
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def worker_count(client: Client) -> int:
    """Workers connected to ``client``'s scheduler."""
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))


def queues_tasks(client: Client) -> bool:
    """Whether ``client``'s scheduler keeps tasks queued until a worker frees up (a finite ``worker-saturation``)."""
    saturation = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
    return bool(math.isfinite(float(saturation)))


def _threads(client: Client) -> int:
    return max(1, sum(client.nthreads().values()))


TALLY_COLUMNS = ("region", "canton", "country", "entry_country", "location_kind", "transport_mode")
"""The columns :func:`tally_archive` counts by (besides the quarter): few values each, so the table stays small
(``event_id``, one value an event, would make a row per event on every worker and in the client)."""


def tally_choices(manifest: Manifest) -> tuple[str, ...]:
    """What :func:`tally_archive` can count by in this archive: ``quarter``, ``country`` (its partition
    key, ``""`` when the archive is not partitioned by country) and the :data:`TALLY_COLUMNS` it has."""
    return ("quarter", "country") + tuple(c for c in TALLY_COLUMNS if c != "country" and c in manifest.columns)


def check_tally_by(manifest: Manifest, by: str) -> None:
    """Refuse a ``by`` that :func:`tally_archive` cannot count by, from the manifest alone.

    Raises
    ------
    ValidationError
        Naming ``by`` when it is not one of :data:`TALLY_COLUMNS` or the archive has no such column.
    """
    if by != "quarter" and by not in TALLY_COLUMNS:
        raise ValidationError(f"by: counts go per quarter or per one of {', '.join(TALLY_COLUMNS)}, got {by!r}",
                              [Problem("not a column to count by", column="by", value=by)])
    if by not in tally_choices(manifest):
        raise ValidationError(f"by: the archive has no column {by!r} (columns: {', '.join(manifest.columns)})",
                              [Problem("unknown column", column="by", value=by)])


def tally_archive(manifest: Manifest, *, client: Client, by: str = "quarter", start: int | None = None,
                  end: int | None = None, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Events and persons per quarter, or per one of :data:`TALLY_COLUMNS` and quarter.

    Returns
    -------
    DataFrame with the ``by`` column (unless ``by="quarter"``), ``quarter``, ``events``,
    ``persons``, sorted; a missing value of the ``by`` column counts as ``""``.

    Raises
    ------
    ValidationError
        Naming ``by`` when it is not one of :data:`TALLY_COLUMNS` or the archive has no such column.
    """
    check_tally_by(manifest, by)
    group = None if by == "quarter" else by
    task = BinTask("tally", group=group, start=start, end=end)
    result = reduce_archive(manifest, task, client=client, entries=select_partitions(manifest, start=start, end=end),
                            progress=progress)
    rows = [(g, q, int(v[0]), int(v[1])) for (g, q), v in result.tally.items()]
    frame = pd.DataFrame(rows, columns=["group", "quarter", "events", "persons"])
    if group is None:
        frame = frame.groupby("quarter", as_index=False)[["events", "persons"]].sum()
        return frame.sort_values("quarter").reset_index(drop=True)
    frame = frame.groupby(["group", "quarter"], as_index=False)[["events", "persons"]].sum()
    return frame.rename(columns={"group": by}).sort_values([by, "quarter"]).reset_index(drop=True)


def check_bytes(n_values: int, *, what: str, parameter: str, limit: float = 2e9) -> None:
    """Refuse a reduction array larger than ``limit`` bytes before any work is sent, naming ``parameter``."""
    size = 8.0 * n_values
    if not math.isfinite(size) or size > limit:
        raise ValidationError(f"{parameter}: the {what} would take {size / 1e9:.1f} GB per task; at most {limit / 1e9:.0f} GB",
                              [Problem("result too large", column=parameter, value=n_values)])


__all__ = [
    "EVEN_TASKS_PER_THREAD", "FAN_IN", "GUIDED_SHARE", "MIN_BATCH_ROWS", "WORKER_MALLOC", "WORKER_SATURATION", "BinTask",
    "Partial", "PendingReduction", "TALLY_COLUMNS", "add_partials", "batch_partitions", "bin_partition", "bin_partitions", "check_bytes", "check_tally_by",
    "dask_client", "queues_tasks", "reduce_archive", "select_partitions", "submit_reduction", "tally_archive", "tally_choices", "worker_count",
]
