"""Copy a whole event store to another backend (GeoPackage <-> PostGIS), verified by counts and checksums.

What moves: the events with their canton, region and import, the imports table and the audit
trail with their ids and times, the ground truth, the web accounts (password hashes), API
tokens and the saved operations. Login sessions and the login throttle's counters stay behind (they only matter to the
running app; users log in again). The target must be empty; it is written in one transaction
and checked against the source before that transaction commits, so a failed copy leaves it
empty. Each backend is read and written here through its own tables (the store interface
has no primitives for history with its original ids and times).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from geo_ibm.errors import StoreError
from geo_ibm.store import frames, gpkg_schema
from geo_ibm.store.base import EventStore
from geo_ibm.store.geopackage import GeoPackageStore

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage ``read``, ``write``, ``verify`` or ``ground_truth``."""

TABLES: dict[str, list[str]] = {
    "events": list(frames.RECORD_COLUMNS),
    "imports": list(frames.IMPORT_COLUMNS),
    "audit": list(frames.AUDIT_COLUMNS),
    "web_users": ["name", "role", "password_hash", "created", "updated"],
    "web_tokens": ["token_sha256", "name", "created"],
    "operations": ["id", "name", "created", "user", "start_date", "end_date", "body"],
}
"""The tables copied row by row, with their columns (the same names in both backends)."""

_ORDER = {"events": "fid", "imports": "id", "audit": "id", "web_users": "name", "web_tokens": "token_sha256",
          "operations": "id"}
_TIMES = {"imports": ("imported_at",), "audit": ("at",), "web_users": ("created", "updated"),
          "web_tokens": ("created",), "operations": ("created",)}
_SECONDS_ONLY = {"web_users", "web_tokens", "operations"}
_NUMERIC = {"observed_utc", "persons", "smugglers", "x", "y", "id", "rows", "accepted", "rejected", "duplicates"}


@dataclass(frozen=True)
class CopyReport:
    """What :func:`copy_store` copied: rows per table and the checksum both stores agree on."""

    source: str
    target: str
    counts: dict[str, int]
    """Rows per table: ``events``, ``imports``, ``audit``, ``web_users``, ``web_tokens``, ``ground_truth``."""
    checksum: str
    """SHA-256 over every copied table in a backend-neutral form (the same for source and target)."""
    seconds: float
    checksums: dict[str, str] = field(default_factory=dict)
    """The checksum of each table."""


def copy_store(
    src: EventStore | str | os.PathLike[str],
    dst: EventStore | str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy the store ``src`` into the empty store ``dst`` (another backend or the same one).

    Parameters
    ----------
    src, dst
        Stores or their locations (a ``.gpkg`` path, a ``postgresql://`` URL). ``dst`` is
        created if needed and must hold no events, imports, audit records or accounts.
    progress
        Called as ``progress(stage, done, total)``.

    Returns
    -------
    CopyReport

    Raises
    ------
    StoreError
        If ``src`` is missing, ``dst`` is not empty, or the target read back differs from the
        source (nothing is kept in ``dst`` then: the transaction is rolled back).
    """
    from geo_ibm.store import open_store

    started = time.perf_counter()
    source = src if isinstance(src, EventStore) else open_store(src, outline=False, assign_regions=False)
    target = dst if isinstance(dst, EventStore) else open_store(dst, outline=False, assign_regions=False)
    if source.location == target.location:
        raise StoreError(f"copy_store: source and target are the same store ({source.location})")
    if not source.exists():
        raise StoreError(f"copy_store: no event store at {source.location}")
    reader, writer = _side(source), _side(target)

    def report(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    tables = reader.read()
    total = sum(len(t) for t in tables.values())
    report("read", total, total)
    expected = {name: checksum(name, frame) for name, frame in tables.items()}
    target.init()
    with writer.writing() as tx:
        tx.check_empty()
        done = 0
        for name, frame in tables.items():
            tx.write(name, frame)
            done += len(frame)
            report("write", done, total)
        back = tx.read()
        got = {name: checksum(name, frame) for name, frame in back.items()}
        differ = [n for n in tables if got[n] != expected[n] or len(back[n]) != len(tables[n])]
        if differ:
            raise StoreError(f"copy_store: {', '.join(differ)} of {target.location} differ from {source.location} "
                             "after the copy; nothing was kept")
        report("verify", total, total)
    truth = source.ground_truth()
    if len(truth):
        target.write_ground_truth(truth)
        back_truth = target.ground_truth()
        if _truth_digest(back_truth) != _truth_digest(truth):
            raise StoreError(f"copy_store: the ground truth of {target.location} differs from {source.location}")
    report("ground_truth", len(truth), len(truth))
    expected["ground_truth"] = _truth_digest(truth)
    counts = {name: len(frame) for name, frame in tables.items()} | {"ground_truth": len(truth)}
    combined = hashlib.sha256("".join(f"{n}={expected[n]}\n" for n in sorted(expected)).encode()).hexdigest()
    target.audit("store_copy", user="geo-ibm", detail={"from": source.location, "counts": counts, "checksum": combined})
    return CopyReport(source=source.location, target=target.location, counts=counts, checksum=combined,
                      seconds=time.perf_counter() - started, checksums=expected)


# --- the backend-neutral form and its checksum --------------------------------------------------


def utc_text(values: Any, *, seconds: bool) -> list[str | None]:
    """Times (text of either backend, or datetimes) as UTC text to the hundredth or the second."""
    stamps = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True, format="ISO8601")
    unit = "s" if seconds else "10ms"
    text = stamps.dt.floor(unit).dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    out = text.str.slice(0, 19) + "+00:00" if seconds else text.str.slice(0, 22) + "Z"
    return [None if pd.isna(v) else str(v) for v in out]


def normalise(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A table as read from either backend in one form: times as :func:`utc_text`, whole numbers int64."""
    out = frame.copy()
    for column in _TIMES.get(name, ()):
        out[column] = pd.Series(utc_text(out[column], seconds=name in _SECONDS_ONLY), dtype=object)
    for column in out.columns:
        if column in ("x", "y"):
            out[column] = out[column].to_numpy(dtype=np.float64)
        elif column in _NUMERIC:
            out[column] = out[column].to_numpy(dtype=np.int64)
        elif column == "import_id" and out[column].notna().all():
            # whole numbers, as the import pipeline hands them to a backend (nullable only in the layout)
            out[column] = out[column].to_numpy(dtype=np.int64)
        else:
            out[column] = pd.Series(frames.none_for_na(out[column].to_numpy(dtype=object)), dtype=object)
    return out.reset_index(drop=True)


def checksum(name: str, frame: pd.DataFrame) -> str:
    """SHA-256 of a normalised table: its name, then each column's values in row order."""
    digest = hashlib.sha256(f"{name}:{len(frame)}".encode())
    for column in frame.columns:
        digest.update(f"\x1d{column}\x1d".encode())
        values = frame[column]
        if column in _NUMERIC:
            kind = "<f8" if column in ("x", "y") else "<i8"
            digest.update(values.to_numpy(dtype=kind).tobytes())
        else:
            digest.update("\x1e".join("\x00" if v is None else str(v) for v in values).encode("utf-8"))
    return digest.hexdigest()


def _truth_digest(gdf: Any) -> str:
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name)) if len(gdf) else pd.DataFrame()
    digest = hashlib.sha256(f"ground_truth:{len(gdf)}:{','.join(map(str, frame.columns))}".encode())
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
        digest.update("\x1e".join("\x00" if pd.isna(v) else repr(v) for v in values.tolist()).encode())
    if len(gdf):
        import shapely

        digest.update(b"".join(shapely.to_wkb(gdf.geometry.to_numpy(), byte_order=1, include_srid=False).tolist()))
    return digest.hexdigest()


# --- each backend's tables ------------------------------------------------------------------------


class _Side:
    """Reads every copied table of a store in one snapshot, or writes them in one transaction."""

    def read(self) -> dict[str, pd.DataFrame]:
        raise NotImplementedError

    def writing(self) -> contextlib.AbstractContextManager[_Writer]:
        raise NotImplementedError


class _Writer:
    def check_empty(self) -> None:
        counts = self.counts()
        filled = {k: v for k, v in counts.items() if v}
        if filled:
            shown = ", ".join(f"{v} {k}" for k, v in filled.items())
            raise StoreError(f"copy_store: the target store {self.location} is not empty ({shown}); copy into a new store")

    location = ""

    def counts(self) -> dict[str, int]:
        raise NotImplementedError

    def write(self, name: str, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def read(self) -> dict[str, pd.DataFrame]:
        raise NotImplementedError


def _side(store: EventStore) -> _Side:
    if isinstance(store, GeoPackageStore):
        return _GeoPackageSide(store)
    from geo_ibm.store.postgis import PostGISStore

    if isinstance(store, PostGISStore):
        return _PostGISSide(store)
    raise StoreError(f"copy_store cannot copy {type(store).__name__} stores")


def _read_all(fetch: Callable[[str], tuple[list[str], list[tuple[Any, ...]]]]) -> dict[str, pd.DataFrame]:
    out = {}
    for name, columns in TABLES.items():
        _names, rows = fetch(name)
        out[name] = normalise(name, pd.DataFrame(rows, columns=columns, dtype=object))
    return out


def _select(name: str, quote: Callable[[str], str]) -> str:
    return f"SELECT {', '.join(quote(c) for c in TABLES[name])} FROM {name} ORDER BY {_ORDER[name]}"


class _GeoPackageSide(_Side):
    def __init__(self, store: GeoPackageStore) -> None:
        self.store = store

    def read(self) -> dict[str, pd.DataFrame]:
        self.store.init()  # an older layout gets its tables first
        conn = sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True, isolation_level=None)
        try:
            conn.execute("BEGIN")  # one snapshot of every table
            return _read_all(lambda name: (TABLES[name], conn.execute(_select(name, str)).fetchall()))
        finally:
            conn.close()

    @contextlib.contextmanager
    def writing(self) -> Iterator[_Writer]:
        with self.store._write_transaction() as tx:
            writer = _GeoPackageWriter(self.store, tx)
            yield writer
            gpkg_schema.bump_version(writer.conn)


class _GeoPackageWriter(_Writer):
    def __init__(self, store: GeoPackageStore, tx: Any) -> None:
        self.location = store.location
        self.tx = tx
        self.conn: sqlite3.Connection = tx._conn  # the transaction's connection: same snapshot, same commit

    def counts(self) -> dict[str, int]:
        return {name: int(self.conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]) for name in TABLES}

    def write(self, name: str, frame: pd.DataFrame) -> None:
        if not len(frame):
            return
        if name == "events":
            # The GeoPackage's own import path: geometry blobs, R-tree and layer extent.
            self.tx.add_events(frame)
            return
        columns = TABLES[name]
        sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        self.conn.executemany(sql, zip(*(frames.python_values(frame[c]) for c in columns)))

    def read(self) -> dict[str, pd.DataFrame]:
        return _read_all(lambda name: (TABLES[name], self.conn.execute(_select(name, str)).fetchall()))


def _quote(column: str) -> str:
    return '"user"' if column == "user" else column


class _PostGISSide(_Side):
    def __init__(self, store: Any) -> None:
        self.store = store

    def read(self) -> dict[str, pd.DataFrame]:
        with self.store._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return _read_all(lambda name: (TABLES[name], conn.execute(_select(name, _quote)).fetchall()))

    @contextlib.contextmanager
    def writing(self) -> Iterator[_Writer]:
        from geo_ibm.store import postgis_schema

        with self.store._write_transaction() as tx:
            writer = _PostGISWriter(self.store, tx)
            yield writer
            postgis_schema.bump_version(writer.conn)


class _PostGISWriter(_Writer):
    _TYPES = {"id": "int8", "rows": "int8", "accepted": "int8", "rejected": "int8", "duplicates": "int8",
              "imported_at": "timestamptz", "at": "timestamptz", "created": "timestamptz", "updated": "timestamptz"}

    def __init__(self, store: Any, tx: Any) -> None:
        self.location = store.location
        self.tx = tx
        self.conn = tx._conn  # the transaction's connection: same snapshot, same commit

    def counts(self) -> dict[str, int]:
        out = {}
        for name in TABLES:
            row = self.conn.execute(f"SELECT count(*) FROM {name}").fetchone()
            out[name] = int(row[0]) if row else 0
        return out

    def write(self, name: str, frame: pd.DataFrame) -> None:
        from geo_ibm.store.postgis_copy import copy_in

        if not len(frame):
            return
        if name == "events":
            # Locks the events like an import and uses its binary COPY.
            self.tx.add_events(frame)
            return
        table = frame.copy()
        for column in _TIMES.get(name, ()):
            stamps = pd.to_datetime(table[column], utc=True, format="ISO8601")
            table[column] = pd.Series([None if pd.isna(t) else t.to_pydatetime() for t in stamps], dtype=object)
        columns = TABLES[name]
        copy_in(self.conn, name, [_quote(c) for c in columns], [self._TYPES.get(c, "text") for c in columns],
                table.rename(columns={"user": '"user"'}))
        if "id" in columns:  # the next id continues after the copied ones
            self.conn.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")

    def read(self) -> dict[str, pd.DataFrame]:
        return _read_all(lambda name: (TABLES[name], self.conn.execute(_select(name, _quote)).fetchall()))
