"""The backend-neutral import pipeline: read, validate, drop duplicates, assign regions, store in one transaction."""
from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import gc
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm import io
from geo_ibm.errors import Problem, StoreError, ValidationError
from geo_ibm.events import event_ids, validate_events
from geo_ibm.importlimits import ImportLimits, import_limits
from geo_ibm.problems import ProblemLog
from geo_ibm.settings import WORKING_CRS
from geo_ibm.store.frames import CONTENT_COLUMNS, arrow_values, event_records, event_xy, none_for_na, same_values

if TYPE_CHECKING:
    from geo_ibm.store.base import EventStore

MESSAGE_CHARS = 2000
"""Longest failure message kept in the imports table and the audit trail."""


@dataclass(frozen=True)
class ImportReport:
    """What one import did.

    ``rows`` counts the data rows read; ``accepted`` the events newly stored; ``duplicates``
    the rows already in the store with the same content; ``rejected`` the invalid rows left
    out (only with ``skip_invalid``), written with their reasons to ``rejected_path``.
    """

    file: str
    sha256: str | None
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    rejected_path: Path | None = None


@dataclass(frozen=True)
class ImportRecord:
    """One row of a store's imports table: an import attempt, ``ok`` or ``failed`` (with ``message``)."""

    user: str
    file_name: str
    sha256: str | None
    rows: int
    accepted: int
    rejected: int
    duplicates: int
    status: str
    message: str | None = None


@contextlib.contextmanager
def bulk_work() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an import reads, checks and stores its rows.

    A million rows make millions of short-lived objects (row tuples, strings), and each
    allocation threshold reached starts a collection over everything alive: about a tenth
    of a large import's time, collecting nothing (an import makes no reference cycles).
    The previous state is restored; other threads only see collections postponed meanwhile.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_file(
    store: EventStore,
    path: io.PathLike,
    *,
    user: str,
    skip_invalid: bool = False,
    rejected_path: io.PathLike | None = None,
    progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
) -> ImportReport:
    """Import an event file into ``store`` (see :meth:`EventStore.import_file`)."""
    # one second thread for the whole import: the regions' lookup grid while the file is read and
    # validated, then the regions of its rows (store_events)
    with bulk_work(), concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return _import_file(store, Path(path), user=user, skip_invalid=skip_invalid, rejected_path=rejected_path,
                            progress=progress, name=name, pool=pool)


PREPARE_REGIONS_BYTES = 2_000_000
"""From this file size (about 20,000 rows) an import builds the regions' lookup grid while it reads the file."""


def _import_file(store: EventStore, path: Path, *, user: str, skip_invalid: bool, rejected_path: io.PathLike | None,
                 progress: Callable[[int, int], None] | None, name: str | None,
                 pool: concurrent.futures.Executor) -> ImportReport:
    label = name or path.name
    limits = import_limits()
    store.init()
    sha: str | None = None
    try:
        if path.is_file() and path.stat().st_size <= limits.file_bytes:
            sha = io.file_sha256(path)
            known = already_imported(store, path, sha=sha, label=label, user=user, limits=limits)
            if known is not None:
                return known
        if path.is_file() and path.stat().st_size >= PREPARE_REGIONS_BYTES:
            pool.submit(store._prepare_regions)
        frame = io.read_event_table(path, limits=limits)
        if not len(frame):
            raise ValidationError(f"{label}: no data rows (the file has a header only); nothing was imported",
                                  [Problem("no data rows", file=label)])
        log = ProblemLog(per_column=limits.problems_per_column, listed=limits.problems_listed)
        valid, _ = validate_events(frame, file=label, outline=store._outline_geometry(), limits=limits, log=log,
                                   arrow_text=True, points=False)
    except ValidationError as exc:
        if name:
            hide_path(exc, path, label)
        record_failure(store, label, sha, user, rows=0, rejected=0, message=str(exc))
        raise
    bad_rows = log.bad_rows()
    if log.total and (not skip_invalid or log.file_level):
        message = (
            f"{label}: {log.total} problem(s) in {len(bad_rows)} of {len(frame)} row(s); nothing was imported"
            if not log.file_level
            else f"{label}: the file cannot be imported; nothing was imported"
        )
        record_failure(store, label, sha, user, rows=len(frame), rejected=len(bad_rows), message=message)
        raise log.error(message)
    written: Path | None = None
    if len(bad_rows):
        written = Path(rejected_path) if rejected_path else path.with_name(f"{path.name}.rejected.csv")
        io.write_table(rejected_table(frame, log), written)
    return store_events(store, valid, label=label, sha=sha, user=user, rows=len(frame), rejected=len(bad_rows),
                        rejected_path=written, progress=progress, pool=pool)


def already_imported(store: EventStore, path: Path, *, sha: str, label: str, user: str,
                     limits: ImportLimits) -> ImportReport | None:
    """The report of re-importing a file already imported whole, or ``None`` when it must be read.

    A file whose bytes (SHA-256) are those of an earlier ``ok`` import that rejected no row
    held only valid events, each stored then or found stored with the same content; stored
    events never change content. When every one of its ids is still stored, nothing in it
    can be new: the import is recorded with every row a duplicate. If that earlier import
    stored every row itself, counting its events tells; otherwise the file's ids are read
    (that column alone) and looked up.
    """
    done = store.imports()
    done = done[(done["status"] == "ok") & (done["sha256"] == sha) & (done["rejected"] == 0)]
    if not len(done):
        return None
    rows = int(done["rows"].iloc[0])
    whole = done[(done["accepted"] == rows) & (done["duplicates"] == 0)]

    def read_ids() -> list[str | None] | None:
        ids = event_ids(io.read_event_table(path, limits=limits, columns=("event_id",)))
        return ids if ids is not None and len(ids) == rows and len(set(ids)) == rows else None

    ids = None if len(whole) else read_ids()
    if ids is None and not len(whole):
        return None
    with store._write_transaction() as tx:
        stored = tx.count_of_import(int(whole["id"].iloc[-1])) if ids is None else None
        if stored is None:
            ids = ids if ids is not None else read_ids()
            stored = tx.count_stored([str(i) for i in ids]) if ids is not None else -1
        if stored != rows:
            return None
        import_id = tx.add_import(ImportRecord(user=user, file_name=label, sha256=sha, rows=rows, accepted=0,
                                               rejected=0, duplicates=rows, status="ok"))
        tx.audit("import", user=user, detail={
            "file": label, "sha256": sha, "rows": rows, "accepted": 0, "rejected": 0, "duplicates": rows,
            "import_id": import_id, "same_file_as_import": int(done["id"].iloc[-1]),
        })
    return ImportReport(file=label, sha256=sha, rows=rows, accepted=0, rejected=0, duplicates=rows)


def import_events(
    store: EventStore, gdf: gpd.GeoDataFrame, *, source: str, user: str, sha256: str | None = None
) -> ImportReport:
    """Import events held in memory into ``store`` (see :meth:`EventStore.import_events`)."""
    with bulk_work():
        return _import_events(store, gdf, source=source, user=user, sha256=sha256)


def _import_events(store: EventStore, gdf: gpd.GeoDataFrame, *, source: str, user: str,
                   sha256: str | None) -> ImportReport:
    store.init()
    limits = import_limits()
    log = ProblemLog(per_column=limits.problems_per_column, listed=limits.problems_listed)
    valid, _ = validate_events(gdf, file=source, outline=store._outline_geometry(), limits=limits, log=log)
    if log.total:
        bad_rows = log.bad_rows()
        message = f"{source}: {log.total} problem(s) in {len(bad_rows)} row(s); nothing was imported"
        record_failure(store, source, sha256, user, rows=len(gdf), rejected=len(bad_rows), message=message)
        raise log.error(message)
    return store_events(store, valid, label=source, sha=sha256, user=user, rows=len(gdf), rejected=0,
                        rejected_path=None, progress=None)


def record_failure(store: EventStore, label: str, sha: str | None, user: str, *, rows: int, rejected: int,
                   message: str) -> None:
    """Note a failed import in the imports table and the audit trail (one transaction)."""
    message = message[:MESSAGE_CHARS]
    with store._write_transaction() as tx:
        tx.add_import(ImportRecord(user=user, file_name=label, sha256=sha, rows=rows, accepted=0, rejected=rejected,
                                   duplicates=0, status="failed", message=message))
        tx.audit("import_failed", user=user, detail={"file": label, "sha256": sha, "rows": rows, "accepted": 0,
                                                     "rejected": rejected, "error": message})


def store_events(
    store: EventStore,
    valid: pd.DataFrame,
    *,
    label: str,
    sha: str | None,
    user: str,
    rows: int,
    rejected: int,
    rejected_path: Path | None,
    progress: Callable[[int, int], None] | None,
    pool: concurrent.futures.Executor | None = None,
) -> ImportReport:
    """Store validated events in one transaction: new ones with their regions, the import record, the audit entry.

    ``pool`` is an executor of one thread for the regions of a large import into an empty
    store (default: one of its own).
    """
    if pool is not None:
        return _store_events(store, valid, label=label, sha=sha, user=user, rows=rows, rejected=rejected,
                             rejected_path=rejected_path, progress=progress, pool=pool)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as own:
        return _store_events(store, valid, label=label, sha=sha, user=user, rows=rows, rejected=rejected,
                             rejected_path=rejected_path, progress=progress, pool=own)


PARALLEL_REGIONS_ROWS = 20_000
"""From this many valid rows into a store without events, regions are assigned on a second thread."""


def _store_events(store: EventStore, valid: pd.DataFrame, *, label: str, sha: str | None, user: str, rows: int,
                  rejected: int, rejected_path: Path | None, progress: Callable[[int, int], None] | None,
                  pool: concurrent.futures.Executor) -> ImportReport:
    x, y = event_xy(valid)
    # Into a store without events every row is new: the regions of all of them are assigned on a
    # second thread (shapely lets go of the GIL) while the stored columns are built here. Should
    # events arrive meanwhile, the rows found stored are taken out of that answer as out of the
    # points; otherwise regions come only for the new rows, inside the transaction, so that a
    # re-import of a known file costs no spatial join.
    early = (pool.submit(store._regions_xy, x, y)
             if len(x) >= PARALLEL_REGIONS_ROWS and store.count() == 0 else None)
    table = event_records(valid)
    total = len(table)
    if progress:
        progress(0, total)
    try:
        with store._write_transaction(new_rows=total) as tx:
            stored = tx.stored_events(table["event_id"]) if total else None
            positions = stored_positions(table, stored) if stored is not None and len(stored) else None
            new = new_events(table, stored, label=label, positions=positions)
            duplicates = total - len(new)
            fresh = None
            if duplicates and positions is not None:
                fresh = np.ones(total, dtype=bool)
                fresh[positions] = False
            if early is not None:
                canton, region = early.result()
                new["canton"], new["region"] = (canton, region) if fresh is None else (canton[fresh], region[fresh])
            else:
                new["canton"], new["region"] = store._regions_xy(x, y) if fresh is None else store._regions_xy(x[fresh], y[fresh])
            import_id = tx.add_import(ImportRecord(user=user, file_name=label, sha256=sha, rows=rows, accepted=len(new),
                                                   rejected=rejected, duplicates=duplicates, status="ok"))
            new["import_id"] = import_id

            def written(done: int) -> None:
                if progress:
                    progress(duplicates + done, total)

            tx.add_events(new, progress=written)
            tx.audit("import", user=user, detail={
                "file": label, "sha256": sha, "rows": rows, "accepted": len(new), "rejected": rejected,
                "duplicates": duplicates, "import_id": import_id,
            })
    except StoreError as exc:
        record_failure(store, label, sha, user, rows=rows, rejected=rejected, message=str(exc))
        raise
    if progress:
        progress(total, total)
    return ImportReport(file=label, sha256=sha, rows=rows, accepted=len(new), rejected=rejected, duplicates=duplicates,
                        rejected_path=rejected_path)


def new_events(table: pd.DataFrame, stored: pd.DataFrame | None, *, label: str,
               positions: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of ``table`` not stored yet; refuse rows whose id is stored with other content.

    Parameters
    ----------
    table
        Incoming events as :func:`~geo_ibm.store.frames.event_records` gives them.
    stored
        The stored events among the incoming ids (``event_id``, the content columns, ``x``,
        ``y``; any order), ``None`` or empty when there are none.
    positions
        :func:`stored_positions` of the two, when the caller has them already.

    Raises
    ------
    StoreError
        Listing (up to 20 of) the ids stored with different content.
    """
    if stored is None or not len(stored) or not len(table):
        return table
    pos = stored_positions(table, stored) if positions is None else positions
    same = np.ones(len(stored), dtype=bool)
    for col in CONTENT_COLUMNS:
        same &= same_values(table[col], pos, stored[col])
    for col in ("x", "y"):
        a = table[col].to_numpy(dtype=float)[pos]
        same &= np.abs(a - stored[col].to_numpy(dtype=float)) <= 1e-3
    if not same.all():
        ids = stored["event_id"][~same].tolist()
        shown = ", ".join(ids[:20]) + (f" ... ({len(ids)} in all)" if len(ids) > 20 else "")
        raise StoreError(
            f"{label}: {len(ids)} event_id(s) are already stored with different content: {shown}; "
            "nothing was imported (give corrected events new ids or fix the file)"
        )
    keep = np.ones(len(table), dtype=bool)
    keep[pos] = False
    return table.loc[keep].reset_index(drop=True)


def stored_positions(table: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """Position in ``table`` of each stored event's id (every one is there: they were looked up by it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.index_in(pa.array(stored["event_id"].to_numpy(dtype=object), type=pa.string()),
                        value_set=arrow_values(table["event_id"]).cast(pa.string()))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)


def rejected_table(frame: pd.DataFrame, log: ProblemLog) -> pd.DataFrame:
    """The invalid rows of ``frame`` (every one, listed or not) with their row number first and a ``reason`` column last."""
    rows, reasons = log.row_reasons()
    rejected = frame.loc[rows].copy()
    rejected = rejected.drop(columns=[c for c in rejected.columns if str(c).startswith("_")])
    rejected.insert(0, "row", rows)
    rejected["reason"] = reasons
    return rejected.reset_index(drop=True)


def hide_path(exc: ValidationError, path: Path, label: str) -> None:
    """Put ``label`` in place of ``path`` (and its folder) in ``exc``'s message and problems.

    The web app imports uploads from a temporary file: users must see their file's name,
    never a path on the server.
    """
    variants = sorted({str(path), path.as_posix(), str(path.absolute()), str(path.resolve())}, key=len, reverse=True)
    folders = sorted({f for f in (str(path.parent), str(path.parent.absolute()), str(path.parent.resolve()))
                      if Path(f).is_absolute() and len(f) > 1}, key=len, reverse=True)
    # One pass, longest first: the label itself may contain the on-disk name.
    pattern = re.compile(
        "|".join([*(re.escape(v) for v in variants), rf"(?<![\w.-]){re.escape(path.name)}(?![\w.-])",
                  *(re.escape(f) + r"/?" for f in folders)])
    )

    def scrub(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return pattern.sub(lambda m: "" if m.group(0).rstrip("/") in folders else label, value)

    exc.args = tuple(scrub(a) for a in exc.args)
    exc.problems = [
        dataclasses.replace(p, reason=scrub(p.reason), file=scrub(p.file), value=scrub(p.value)) for p in exc.problems
    ]


def reassign_regions(
    store: EventStore,
    *,
    assign: Callable[[gpd.GeoDataFrame], gpd.GeoDataFrame] | None = None,
    before_commit: Callable[[], None] | None = None,
) -> int:
    """Assign canton and region afresh to every stored event, in one transaction (see :meth:`EventStore.reassign_regions`)."""
    with store._write_transaction() as tx:
        places = tx.event_places()
        points = gpd.GeoDataFrame(
            geometry=gpd.points_from_xy(places["x"].to_numpy(dtype=float), places["y"].to_numpy(dtype=float)),
            crs=WORKING_CRS,
        )
        canton, region = store._regions(points, assign=assign)
        old_canton = none_for_na(places["canton"].to_numpy(dtype=object))
        old_region = none_for_na(places["region"].to_numpy(dtype=object))
        changed = np.asarray(canton != old_canton, dtype=bool) | np.asarray(region != old_region, dtype=bool)
        keys = places["key"].to_numpy()[changed]
        tx.set_places(keys, canton[changed], region[changed])
        if before_commit is not None:
            before_commit()
    return int(changed.sum())
