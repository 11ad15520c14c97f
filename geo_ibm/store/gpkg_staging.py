"""Bulk insert of new events into a GeoPackage store through a staging database written by the ADBC SQLite driver.

Binding a million rows of 18 values from Python costs several times more than the insert
itself. The ADBC driver writes the Arrow columns from C into a private temporary database;
attached to the import's connection, one ``INSERT ... SELECT`` moves the rows inside the
import's transaction, so a killed process leaves the store as it was (and at most the
temporary file behind). The staging table is declared as ``events`` is, with the fids its
rows get and a unique ``event_id`` index of the same conflict rule as
:data:`~geo_ibm.store.gpkg_schema.EVENT_ID_INDEX` (built once after the rows, sorted): into an
empty ``events`` table SQLite then copies the records and that index whole instead of
decoding each row and inserting its id into the index in random order. A store made before
that index (a ``UNIQUE`` column) takes the row-by-row copy.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geo_ibm.store import gpkg_blobs, gpkg_rtree, gpkg_schema

STAGING_MIN_ROWS = 20_000
"""Imports of at least this many new events are staged; fewer are bound row by row."""


STAGING_PRAGMAS = ("PRAGMA journal_mode = OFF", "PRAGMA synchronous = OFF")
"""The staging file is thrown away whatever happens (the store's transaction is what keeps the rows), so it
needs no rollback journal and no flush to disk: its commit wrote 250 MB through ``fsync`` for 1M events, and
with neither its pages mostly stay in the page cache until the file is deleted."""


def _driver() -> Any:
    """The ADBC SQLite driver's DB-API module, or ``None`` when it is not installed."""
    try:
        import adbc_driver_sqlite.dbapi as driver
    except ImportError:
        return None
    return driver


def can_stage(rows: int) -> bool:
    """Whether ``rows`` new events go through a staging database (enough of them, and the driver is there)."""
    return rows >= STAGING_MIN_ROWS and _driver() is not None


def _arrow_column(series: pd.Series) -> Any:
    """A stored column as an Arrow array: numbers as they are, text with missing values as null."""
    import pyarrow as pa

    if isinstance(series.dtype, pd.ArrowDtype) or (
            isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow"):
        # Taken whole, no Python string per value (pandas makes columns of str objects such
        # strings when they are assigned, as the regions are).
        return pa.array(series.array).cast(pa.string())
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        return pa.array(series.to_numpy())
    return pa.array(series.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def _point_blob_array(x: np.ndarray, y: np.ndarray) -> Any:
    """The points' GeoPackage blobs (those of :func:`~geo_ibm.store.gpkg_blobs.point_blobs`) as one Arrow binary
    array over a single buffer: no Python bytes object per point (0.4 s for 1M)."""
    import pyarrow as pa

    records = np.empty(len(x), dtype=gpkg_blobs.POINT_RECORD)
    records["header"] = gpkg_blobs.HEADER
    records["order"] = 1
    records["kind"] = 1
    records["x"] = x
    records["y"] = y
    size = gpkg_blobs.POINT_RECORD.itemsize
    offsets = np.arange(0, (len(x) + 1) * size, size, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_binary(), len(x), [None, pa.py_buffer(offsets), pa.py_buffer(records)])


def insert_staged(conn: sqlite3.Connection, table: pd.DataFrame, *, first_fid: int, folder: Path) -> None:
    """Insert ``table`` (:data:`~geo_ibm.store.frames.RECORD_COLUMNS`) into ``events`` with fids after ``first_fid``.

    ``conn`` is in the import's write transaction; the staging database is written in
    ``folder`` (private, removed by the caller once ``conn`` is closed: closing detaches it,
    as DETACH is refused inside a transaction). The R-tree triggers are dropped (the copy
    needs a table without triggers); the caller re-creates them.
    """
    import pyarrow as pa

    driver = _driver()
    staged = folder / "events.sqlite"
    fields = ", ".join(f"{name} {decl}" for name, decl in gpkg_schema.EVENT_FIELDS)
    arrow = pa.table({
        "fid": pa.array(np.arange(first_fid + 1, first_fid + 1 + len(table), dtype=np.int64)),
        "geom": _point_blob_array(table["x"].to_numpy(dtype=float), table["y"].to_numpy(dtype=float)),
        **{name: _arrow_column(table[name]) for name, _ in gpkg_schema.EVENT_FIELDS},
    })
    # Autocommit, so that the pragmas can be set before the one transaction of the rows.
    with driver.connect(str(staged), autocommit=True) as staging:
        with staging.cursor() as cur:
            for pragma in STAGING_PRAGMAS:
                cur.execute(pragma)
            # No AUTOINCREMENT (the rows bring their fids): SQLite would update sqlite_sequence after
            # each row the driver inserts (0.3 s for 1M); the copy into ``events`` moves its sequence.
            cur.execute(f"CREATE TABLE events (fid INTEGER PRIMARY KEY, geom POINT, {fields})")
            cur.execute("BEGIN")
            cur.adbc_ingest("events", arrow, mode="append")
            # Sorted once after the rows rather than kept up to date row by row.
            cur.execute("CREATE UNIQUE INDEX staged_event_id ON events (event_id)")
            cur.execute("COMMIT")
    del arrow
    conn.execute("ATTACH DATABASE ? AS staging", (str(staged),))
    for name in gpkg_rtree.TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {gpkg_rtree.RTREE}_{name}")
    conn.execute("INSERT INTO events SELECT * FROM staging.events")
