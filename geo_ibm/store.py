"""The embedded event store: a GeoPackage written with sqlite3, behind a small store interface.

File layout (a GeoPackage 1.3 that GDAL and QGIS open):

- ``events``: point layer in EPSG:2169 (``geom`` holds GeoPackage geometry blobs) with the
  event columns of :mod:`geo_ibm.events` plus ``observed_utc`` (UTC epoch seconds, indexed,
  for fast date filters), ``quarter`` (``2025Q3``, local time), ``canton``, ``region``,
  ``x``/``y`` and ``import_id``. ``observed_at`` is ISO 8601 local time with its offset.
  ``events_lean`` is a covering index of the filter columns with ``persons``, ``x`` and ``y``:
  counts per quarter/region and the coordinate reads of maps and hotspots scan it (a tenth of
  the table's bytes) instead of the full rows.
- ``rtree_events_geom``: the GeoPackage R-tree spatial index. Imports fill it in bulk with one
  ``INSERT ... SELECT`` (the standard GeoPackage triggers, which call ``ST_*`` functions that
  plain sqlite lacks, are dropped for the insert and re-created in the same transaction; every
  connection this module opens registers Python ``ST_*`` functions so the triggers also work
  for later single-row edits).
- ``imports`` and ``audit``: attribute tables; ``ground_truth``: demo ground truth layer.

Every import is one SQLite transaction: the store holds all of a file or none of it, also when
the process is killed. The file is in WAL journal mode so the web app can read while an import
writes (GDAL/QGIS read WAL GeoPackages; after each import the WAL is checkpointed into the main
file so a copy of the ``.gpkg`` alone is complete when no one is writing).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import json
import os
import re
import sqlite3
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import io
from geo_ibm.errors import NotFoundError, Problem, StoreError, ValidationError
from geo_ibm.events import CODE_LISTS, EVENT_COLUMNS, parse_timestamps, validate_events
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS, store_path

SRS_ID = 2169
BUSY_TIMEOUT_MS = 30_000
_CHUNK_ROWS = 50_000
_GPKG_APPLICATION_ID = 0x47504B47  # 'GPKG'
_GPKG_USER_VERSION = 10300  # GeoPackage 1.3, read by GDAL >= 2.2
_GP_HEADER = b"GP\x00\x01" + struct.pack("<i", SRS_ID)  # version 0, little endian, no envelope

EVENT_FIELDS: tuple[tuple[str, str], ...] = (
    ("event_id", "TEXT NOT NULL UNIQUE"),
    ("observed_at", "TEXT NOT NULL"),
    ("observed_utc", "INTEGER NOT NULL"),
    ("quarter", "TEXT NOT NULL"),
    ("location_kind", "TEXT NOT NULL"),
    ("persons", "INTEGER NOT NULL"),
    ("smugglers", "INTEGER NOT NULL"),
    ("transport_mode", "TEXT NOT NULL"),
    ("entry_country", "TEXT NOT NULL"),
    ("operation_id", "TEXT"),
    ("source_unit", "TEXT"),
    ("notes", "TEXT"),
    ("canton", "TEXT"),
    ("region", "TEXT"),
    ("x", "DOUBLE NOT NULL"),
    ("y", "DOUBLE NOT NULL"),
    ("import_id", "INTEGER"),
)
"""Attribute columns of the ``events`` table with their SQL declarations (after fid, geom)."""

_CONTENT_COLUMNS = ("observed_utc", *(c for c in EVENT_COLUMNS if c not in ("event_id", "observed_at", "geometry")))
"""What must match for a re-imported event to count as the same event (plus x/y within 1 mm)."""

_RTREE = "rtree_events_geom"

_TIME_INDEX = "CREATE INDEX IF NOT EXISTS events_observed_utc ON events (observed_utc)"

_LEAN_INDEX = (
    "CREATE INDEX IF NOT EXISTS events_lean ON events (quarter, region, canton, location_kind, entry_country, "
    "transport_mode, observed_utc, persons, x, y)"
)
"""Covering index: GROUP BY quarter, region walks it in order; lean reads never touch the table."""

LEAN_COLUMNS: dict[str, str] = {
    "observed_at": "observed_utc",
    "persons": "persons",
    "smugglers": "smugglers",
    "quarter": "quarter",
    "canton": "canton",
    "region": "region",
    "location_kind": "location_kind",
    "entry_country": "entry_country",
    "transport_mode": "transport_mode",
    "event_id": "event_id",
    "operation_id": "operation_id",
    "source_unit": "source_unit",
    "notes": "notes",
}
"""Columns :meth:`GeoPackageStore.events` can return alone (``columns=``) -> their SQL column."""

COUNT_KEYS = ("quarter", "region", "canton", "location_kind", "entry_country", "transport_mode")
"""Columns :meth:`GeoPackageStore.counts` can group by."""


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


class EventStore(Protocol):
    """What the rest of geo_ibm and the web app need from an event store."""

    def init(self) -> None: ...

    def import_file(
        self,
        path: io.PathLike,
        *,
        user: str,
        skip_invalid: bool = False,
        rejected_path: io.PathLike | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportReport: ...

    def import_events(
        self, gdf: gpd.GeoDataFrame, *, source: str, user: str, sha256: str | None = None
    ) -> ImportReport: ...

    def events(self, **filters: Any) -> gpd.GeoDataFrame: ...

    def event_points(self, **filters: Any) -> np.ndarray: ...

    def counts(self, *, by: str | tuple[str, ...] | list[str] = ("quarter",), **filters: Any) -> pd.DataFrame: ...

    def count(self, **filters: Any) -> int: ...

    def quarter_counts(self, **filters: Any) -> pd.DataFrame: ...

    def summary(self) -> dict[str, Any]: ...

    def event(self, event_id: str) -> dict[str, Any]: ...

    def audit(self, action: str, *, user: str, detail: dict[str, Any]) -> None: ...

    def audit_log(self, *, limit: int = 200) -> pd.DataFrame: ...

    def imports(self) -> pd.DataFrame: ...

    def write_ground_truth(self, gdf: gpd.GeoDataFrame) -> None: ...

    def ground_truth(self) -> gpd.GeoDataFrame: ...

    def connect(self, *, immediate: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...


def _hide_path(exc: ValidationError, path: Path, label: str) -> None:
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


def open_store(path: io.PathLike | None = None) -> GeoPackageStore:
    """The event store at ``path``, else ``GEO_IBM_STORE``, else ``instance/geo_ibm.gpkg``."""
    return GeoPackageStore(store_path(path))


# --- GeoPackage geometry blobs and the ST_* functions the R-tree triggers call -------------


_POINT_BLOB = np.dtype(
    [("header", "S8"), ("order", "u1"), ("kind", "<u4"), ("x", "<f8"), ("y", "<f8")]
)


def point_blobs(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    """GeoPackage geometry blobs for 2D points: header without envelope + little-endian WKB.

    Built as one numpy record array (29 bytes a point) rather than through shapely objects;
    the tests check the bytes against ``shapely.to_wkb``.
    """
    records = np.empty(len(x), dtype=_POINT_BLOB)
    records["header"] = _GP_HEADER
    records["order"] = 1
    records["kind"] = 1
    records["x"] = x
    records["y"] = y
    raw = records.tobytes()
    size = _POINT_BLOB.itemsize
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _blob_header_size(blob: bytes) -> int:
    flags = blob[3]
    envelope = (flags >> 1) & 0b111
    return 8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get(envelope, 0)


def geometries_from_blobs(blobs: list[bytes | None]) -> np.ndarray:
    """Shapely geometries from GeoPackage geometry blobs (``None`` stays ``None``)."""
    wkb = [None if b is None else bytes(b[_blob_header_size(b):]) for b in blobs]
    return shapely.from_wkb(np.array(wkb, dtype=object))


def _blob_geometry(blob: bytes | None) -> Any:
    if blob is None:
        return None
    return shapely.from_wkb(bytes(blob[_blob_header_size(blob):]))


def _st_is_empty(blob: bytes | None) -> int | None:
    if blob is None:
        return None
    if (blob[3] >> 4) & 1:
        return 1
    return int(_blob_geometry(blob).is_empty)


def _st_bound(index: int) -> Callable[[bytes | None], float | None]:
    def bound(blob: bytes | None) -> float | None:
        geom = _blob_geometry(blob)
        if geom is None or geom.is_empty:
            return None
        return float(geom.bounds[index])

    return bound


_RTREE_TRIGGERS = {
    "insert": f"""AFTER INSERT ON events WHEN (new.geom NOT NULL AND NOT ST_IsEmpty(NEW.geom))
        BEGIN INSERT OR REPLACE INTO {_RTREE} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom),
        ST_MinY(NEW.geom), ST_MaxY(NEW.geom)); END""",
    "update1": f"""AFTER UPDATE OF geom ON events WHEN OLD.fid = NEW.fid AND
        (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
        BEGIN INSERT OR REPLACE INTO {_RTREE} VALUES (NEW.fid, ST_MinX(NEW.geom), ST_MaxX(NEW.geom),
        ST_MinY(NEW.geom), ST_MaxY(NEW.geom)); END""",
    "update2": f"""AFTER UPDATE OF geom ON events WHEN OLD.fid = NEW.fid AND
        (NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))
        BEGIN DELETE FROM {_RTREE} WHERE id = OLD.fid; END""",
    "update3": f"""AFTER UPDATE ON events WHEN OLD.fid != NEW.fid AND
        (NEW.geom NOTNULL AND NOT ST_IsEmpty(NEW.geom))
        BEGIN DELETE FROM {_RTREE} WHERE id = OLD.fid; INSERT OR REPLACE INTO {_RTREE} VALUES (NEW.fid,
        ST_MinX(NEW.geom), ST_MaxX(NEW.geom), ST_MinY(NEW.geom), ST_MaxY(NEW.geom)); END""",
    "update4": f"""AFTER UPDATE ON events WHEN OLD.fid != NEW.fid AND
        (NEW.geom ISNULL OR ST_IsEmpty(NEW.geom))
        BEGIN DELETE FROM {_RTREE} WHERE id IN (OLD.fid, NEW.fid); END""",
    "delete": f"""AFTER DELETE ON events WHEN old.geom NOT NULL
        BEGIN DELETE FROM {_RTREE} WHERE id = OLD.fid; END""",
}


def _srs_2169_wkt() -> str:
    from pyproj import CRS

    return CRS.from_epsg(SRS_ID).to_wkt("WKT1_GDAL")


def _srs_4326_wkt() -> str:
    from pyproj import CRS

    return CRS.from_epsg(4326).to_wkt("WKT1_GDAL")


def _now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


# --- the store ----------------------------------------------------------------------------


class GeoPackageStore:
    """Event store in one GeoPackage file (see the module docstring for its layout).

    Parameters
    ----------
    path
        The ``.gpkg`` file.
    outline
        Luxembourg's outline (shapely geometry, EPSG:2169) for the location check; ``None``
        loads ``geo_ibm.layers.luxembourg_outline()`` when first needed; ``False`` skips the
        check (tests and special imports only).
    assign_regions
        Callable adding ``canton``/``region`` to a point GeoDataFrame; ``None`` uses
        ``geo_ibm.layers.assign_regions``; ``False`` leaves both columns empty.
    """

    def __init__(self, path: io.PathLike, *, outline: Any = None, assign_regions: Any = None) -> None:
        self.path = Path(path)
        self._outline = outline
        self._assign_regions = assign_regions

    def __repr__(self) -> str:
        return f"GeoPackageStore({str(self.path)!r})"

    # -- connections ------------------------------------------------------------------------

    def _create_private(self) -> None:
        """Create the store file (and its folder) readable by the owner only.

        The store holds password hashes and interception records. SQLite gives the -wal and
        -shm files the mode of the database file, so creating that file 0600 covers them too.
        """
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(folder, 0o700)  # whatever the umask
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        os.close(fd)
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o600)

    def _restrict_modes(self) -> None:
        """Take group and other permissions off an existing store and its -wal/-shm files."""
        for candidate in (self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")):
            with contextlib.suppress(OSError):
                mode = candidate.stat().st_mode & 0o777
                if mode & 0o077:
                    os.chmod(candidate, mode & 0o700)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            self._create_private()
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # WAL + NORMAL keeps every commit atomic (a killed process loses nothing committed);
        # only an OS crash may lose the last commits. A large page cache keeps the random-order
        # index inserts of a big import in memory.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("PRAGMA journal_size_limit = 67108864")  # shrink the WAL file after big imports
        conn.create_function("ST_IsEmpty", 1, _st_is_empty, deterministic=True)
        for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
            conn.create_function(name, 1, _st_bound(i), deterministic=True)
        return conn

    def _require(self) -> None:
        if not self.path.exists():
            raise StoreError(f"no event store at {self.path}; run 'geo-ibm init' first")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self._require()
        conn = self._connect()
        try:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone():
                raise StoreError(f"{self.path} is not an initialised event store; run 'geo-ibm init'")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"{self.path}: cannot start a write ({exc}); another import may be running") from exc
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextlib.contextmanager
    def connect(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """A sqlite3 connection inside a transaction: committed on success, rolled back on error.

        For the web app's own tables (accounts, tokens), kept in the same file. The connection
        has a 30 s busy timeout and is closed afterwards.

        Parameters
        ----------
        immediate
            Take the write lock at once (``BEGIN IMMEDIATE``), waiting for a running import
            to finish. By default the transaction is deferred: reads never wait, but a
            read-then-write sequence can fail with "database is locked" if an import commits
            in between; pass ``immediate=True`` where that must not happen.
        """
        self._require()
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # -- creation ---------------------------------------------------------------------------

    def init(self) -> None:
        """Create the GeoPackage and its tables; does nothing to an existing store's data.

        A new store file is created readable by its owner only (0600), in a folder made 0700
        when the store creates it; an existing store loses any group or other permission.
        """
        self._create_private()
        self._restrict_modes()
        conn = self._connect()
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if app_id == _GPKG_APPLICATION_ID and {"events", "imports", "audit", _RTREE} <= names:
                if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events_lean'").fetchone():
                    # A store made before the covering index existed gets it once.
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(_LEAN_INDEX)
                    conn.execute("COMMIT")
                return  # initialised: no write, so a read-mostly web app never waits here
            has_tables = bool(names)
            if has_tables and app_id != _GPKG_APPLICATION_ID:
                raise StoreError(f"{self.path} exists but is not a GeoPackage; choose another store path")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._create_schema(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA application_id = {_GPKG_APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {_GPKG_USER_VERSION}")
        _execute_script(
            conn,
            """
            CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
                srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
                organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
            CREATE TABLE IF NOT EXISTS gpkg_contents (
                table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
                description TEXT DEFAULT '',
                last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
                CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
            CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
                table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
                srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
                CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
                CONSTRAINT uk_gc_table_name UNIQUE (table_name),
                CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
                CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
            CREATE TABLE IF NOT EXISTS gpkg_extensions (
                table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
                scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
            """
        )
        srs = [
            ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
            ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
            ("WGS 84 geodetic", 4326, "EPSG", 4326, _srs_4326_wkt(), "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid"),
            ("LUREF / Luxembourg TM", SRS_ID, "EPSG", SRS_ID, _srs_2169_wkt(), "Luxembourg national grid (metres)"),
        ]
        conn.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", srs)

        fields = ",\n".join(f"{name} {decl}" for name, decl in EVENT_FIELDS)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS events (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom POINT, {fields})"
        )
        conn.execute(_TIME_INDEX)
        conn.execute(_LEAN_INDEX)
        conn.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) "
            "VALUES ('events', 'features', 'events', 'Interception events', ?)",
            (SRS_ID,),
        )
        conn.execute(
            "INSERT OR IGNORE INTO gpkg_geometry_columns VALUES ('events', 'geom', 'POINT', ?, 0, 0)", (SRS_ID,)
        )
        conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {_RTREE} USING rtree(id, minx, maxx, miny, maxy)")
        conn.execute(
            "INSERT OR IGNORE INTO gpkg_extensions VALUES ('events', 'geom', 'gpkg_rtree_index', "
            "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')"
        )
        self._create_triggers(conn)

        _execute_script(
            conn,
            """
            CREATE TABLE IF NOT EXISTS imports (
                id INTEGER PRIMARY KEY AUTOINCREMENT, imported_at TEXT NOT NULL, user TEXT NOT NULL,
                file_name TEXT NOT NULL, sha256 TEXT, rows INTEGER NOT NULL, accepted INTEGER NOT NULL,
                rejected INTEGER NOT NULL, duplicates INTEGER NOT NULL, status TEXT NOT NULL, message TEXT);
            CREATE TABLE IF NOT EXISTS audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT NOT NULL,
                action TEXT NOT NULL, detail TEXT NOT NULL);
            """
        )
        for table, text in (("imports", "Event file imports"), ("audit", "Audit trail")):
            conn.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description) "
                "VALUES (?, 'attributes', ?, ?)",
                (table, table, text),
            )

    @staticmethod
    def _create_triggers(conn: sqlite3.Connection) -> None:
        for name, body in _RTREE_TRIGGERS.items():
            conn.execute(f"CREATE TRIGGER IF NOT EXISTS rtree_events_geom_{name} {body}")

    # -- imports ----------------------------------------------------------------------------

    def _outline_geometry(self) -> Any:
        if self._outline is False:
            return None
        if self._outline is None:
            from geo_ibm.layers import luxembourg_outline

            self._outline = luxembourg_outline().geometry.union_all()
        return self._outline

    def _regions(self, gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
        n = len(gdf)
        if self._assign_regions is False or n == 0:
            return np.full(n, None, dtype=object), np.full(n, None, dtype=object)
        assign = self._assign_regions
        if assign is None:
            from geo_ibm.layers import assign_regions as assign
        out = assign(gdf[["geometry"]].reset_index(drop=True))
        return _none_for_na(out["canton"]), _none_for_na(out["region"])

    def import_file(
        self,
        path: io.PathLike,
        *,
        user: str,
        skip_invalid: bool = False,
        rejected_path: io.PathLike | None = None,
        progress: Callable[[int, int], None] | None = None,
        name: str | None = None,
    ) -> ImportReport:
        """Import an event file (CSV, XLSX, GeoJSON, GeoPackage) in one transaction.

        Parameters
        ----------
        path
            The file; read with :func:`geo_ibm.io.read_event_table`.
        user
            Who imports, for the audit trail.
        skip_invalid
            Import the valid rows and write the invalid ones, with a ``reason`` column, to
            ``rejected_path``. By default one invalid row stops the whole import.
        rejected_path
            Where rejected rows go (default ``<file name>.rejected.csv`` next to the input).
        progress
            Called as ``progress(done, total)`` while rows are written.
        name
            File name shown in messages and the imports table (default: the path's name; the
            web app passes the uploaded file's name).

        Returns
        -------
        ImportReport

        Raises
        ------
        ValidationError
            If the file cannot be read or has invalid rows (and ``skip_invalid`` is off); every
            problem is listed with file, row, column and value. Nothing is stored.
        StoreError
            If an event_id is already stored with different content. Nothing is stored.
        """
        path = Path(path)
        label = name or path.name
        sha = io.file_sha256(path) if path.is_file() else None
        self.init()
        try:
            frame = io.read_event_table(path)
            valid, problems = validate_events(frame, file=label, outline=self._outline_geometry())
        except ValidationError as exc:
            if name:
                _hide_path(exc, path, label)
            self._record_failure(label, sha, user, rows=0, rejected=0, message=str(exc))
            raise
        file_level = [p for p in problems if p.row is None]
        bad_rows = sorted({p.row for p in problems if p.row is not None})
        if problems and (not skip_invalid or file_level):
            message = (
                f"{label}: {len(problems)} problem(s) in {len(bad_rows)} of {len(frame)} row(s); nothing was imported"
                if not file_level
                else f"{label}: the file cannot be imported; nothing was imported"
            )
            self._record_failure(label, sha, user, rows=len(frame), rejected=len(bad_rows), message=message)
            raise ValidationError(message, problems)
        written: Path | None = None
        if bad_rows:
            written = Path(rejected_path) if rejected_path else path.with_name(f"{path.name}.rejected.csv")
            io.write_table(_rejected_table(frame, problems), written)
        return self._store(
            valid,
            label=label,
            sha=sha,
            user=user,
            rows=len(frame),
            rejected=len(bad_rows),
            rejected_path=written,
            progress=progress,
        )

    def import_events(
        self, gdf: gpd.GeoDataFrame, *, source: str, user: str, sha256: str | None = None
    ) -> ImportReport:
        """Import events held in memory (e.g. from :func:`geo_ibm.demo.generate_events`).

        The frame is validated like a file (all or nothing); ``source`` names it in messages
        and in the imports table.
        """
        self.init()
        valid, problems = validate_events(gdf, file=source, outline=self._outline_geometry())
        if problems:
            bad_rows = {p.row for p in problems if p.row is not None}
            message = f"{source}: {len(problems)} problem(s) in {len(bad_rows)} row(s); nothing was imported"
            self._record_failure(source, sha256, user, rows=len(gdf), rejected=len(bad_rows), message=message)
            raise ValidationError(message, problems)
        return self._store(valid, label=source, sha=sha256, user=user, rows=len(gdf), rejected=0, rejected_path=None, progress=None)

    def _record_failure(self, label: str, sha: str | None, user: str, *, rows: int, rejected: int, message: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO imports (imported_at, user, file_name, sha256, rows, accepted, rejected, duplicates, status, message) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, 0, 'failed', ?)",
                (_now_utc(), user, label, sha, rows, rejected, message[:2000]),
            )
            self._audit(
                conn,
                "import_failed",
                user=user,
                detail={"file": label, "sha256": sha, "rows": rows, "accepted": 0, "rejected": rejected, "error": message[:2000]},
            )

    def _store(
        self,
        valid: gpd.GeoDataFrame,
        *,
        label: str,
        sha: str | None,
        user: str,
        rows: int,
        rejected: int,
        rejected_path: Path | None,
        progress: Callable[[int, int], None] | None,
    ) -> ImportReport:
        table = _event_records(valid)
        total = len(table)
        if progress:
            progress(0, total)
        try:
            with self._write() as conn:
                new = self._without_duplicates(conn, table, label=label)
                duplicates = total - len(new)
                # Regions only for the new rows: a re-import of a known file costs no spatial join.
                points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(new["x"], new["y"]), crs=WORKING_CRS)
                new["canton"], new["region"] = self._regions(points)
                cur = conn.execute(
                    "INSERT INTO imports (imported_at, user, file_name, sha256, rows, accepted, rejected, duplicates, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'ok')",
                    (_now_utc(), user, label, sha, rows, len(new), rejected, duplicates),
                )
                import_id = cur.lastrowid
                new["import_id"] = import_id
                self._insert_events(conn, new, progress=progress, total=total, already=duplicates)
                self._audit(
                    conn,
                    "import",
                    user=user,
                    detail={
                        "file": label,
                        "sha256": sha,
                        "rows": rows,
                        "accepted": len(new),
                        "rejected": rejected,
                        "duplicates": duplicates,
                        "import_id": import_id,
                    },
                )
        except StoreError as exc:
            self._record_failure(label, sha, user, rows=rows, rejected=rejected, message=str(exc))
            raise
        self._checkpoint()
        if progress:
            progress(total, total)
        return ImportReport(
            file=label,
            sha256=sha,
            rows=rows,
            accepted=len(new),
            rejected=rejected,
            duplicates=duplicates,
            rejected_path=rejected_path,
        )

    def _without_duplicates(self, conn: sqlite3.Connection, table: pd.DataFrame, *, label: str) -> pd.DataFrame:
        """Drop rows stored already with the same content; refuse rows whose id holds other content."""
        if not len(table):
            return table
        if not conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            return table
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (event_id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM incoming")
        # Sorted keys append to the temporary index instead of splitting its pages at random.
        conn.executemany("INSERT INTO incoming VALUES (?)", ((v,) for v in sorted(table["event_id"].tolist())))
        cols = ", ".join(f"e.{c}" for c in ("event_id", *_CONTENT_COLUMNS, "x", "y"))
        stored = pd.DataFrame(
            conn.execute(f"SELECT {cols} FROM events e JOIN incoming i ON e.event_id = i.event_id").fetchall(),
            columns=["event_id", *_CONTENT_COLUMNS, "x", "y"],
            dtype=object,
        )
        conn.execute("DELETE FROM incoming")
        if not len(stored):
            return table
        pos = pd.Index(table["event_id"]).get_indexer(stored["event_id"])
        same = np.ones(len(stored), dtype=bool)
        for col in _CONTENT_COLUMNS:
            a = _none_for_na(table[col].to_numpy(dtype=object)[pos])
            b = _none_for_na(stored[col].to_numpy(dtype=object))
            same &= np.asarray(a == b, dtype=bool)
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

    def _insert_events(
        self,
        conn: sqlite3.Connection,
        table: pd.DataFrame,
        *,
        progress: Callable[[int, int], None] | None,
        total: int,
        already: int,
    ) -> None:
        if not len(table):
            return
        names = ["geom", *(name for name, _ in EVENT_FIELDS)]
        sql = f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        first_fid = (conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() or (0,))[0]
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0] + len(table)
        bulk = len(table) > _RTREE_REBUILD_SHARE * stored
        # Per-row ST_* calls from the insert trigger would cost more than the insert itself.
        conn.execute("DROP TRIGGER IF EXISTS rtree_events_geom_insert")
        if bulk:
            # Keeping the secondary indexes up to date row by row (random key order) costs more
            # than sorting them afresh once; all inside the import's transaction.
            conn.execute("DROP INDEX IF EXISTS events_observed_utc")
            conn.execute("DROP INDEX IF EXISTS events_lean")
        for start in range(0, len(table), _CHUNK_ROWS):
            part = table.iloc[start : start + _CHUNK_ROWS]
            blobs = point_blobs(part["x"].to_numpy(), part["y"].to_numpy())
            columns = [blobs, *(_python_values(part[name]) for name, _ in EVENT_FIELDS)]
            conn.executemany(sql, zip(*columns))
            if progress:
                progress(already + start + len(part), total)
        if bulk:
            conn.execute(_TIME_INDEX)
            conn.execute(_LEAN_INDEX)
        if bulk:
            _pack_rtree(conn, _RTREE, "events")
        else:
            conn.execute(
                f"INSERT INTO {_RTREE} (id, minx, maxx, miny, maxy) SELECT fid, x, x, y, y FROM events WHERE fid > ?",
                (first_fid,),
            )
        self._create_triggers(conn)
        conn.execute(
            "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
            "min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = 'events'",
            # One pass (over the covering index) instead of one table scan per bound.
            conn.execute("SELECT min(x), min(y), max(x), max(y) FROM events").fetchone(),
        )

    def _checkpoint(self) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    # -- queries ----------------------------------------------------------------------------

    def _where(self, conn: sqlite3.Connection, filters: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        start, end = filters.get("start"), filters.get("end")
        if start is not None:
            clauses.append("observed_utc >= ?")
            params.append(_epoch(start, "start", end_of_day=False))
        if end is not None:
            clauses.append("observed_utc < ?")
            params.append(_epoch(end, "end", end_of_day=True))
        if filters.get("quarter") is not None:
            clauses.append("quarter = ?")
            params.append(_quarter(filters["quarter"]))
        for column in ("region", "canton"):
            if filters.get(column) is not None:
                values = self._known_names(conn, column, filters[column])
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        for column, allowed in CODE_LISTS.items():
            if filters.get(column) is not None:
                values = _codes(filters[column], column, allowed)
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if filters.get("event_id") is not None:
            ids = [filters["event_id"]] if isinstance(filters["event_id"], str) else list(filters["event_id"])
            # A temporary table would be needed beyond SQLite's 32 766 bound parameters.
            if len(ids) > 30_000 or not all(isinstance(i, str) for i in ids):
                raise ValidationError(f"event_id must be a text or a list of at most 30000 texts, got {len(ids)} value(s)")
            clauses.append(f"event_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if filters.get("bbox") is not None:
            minx, miny, maxx, maxy = _bbox(filters["bbox"])
            if self._box_share(conn, (minx, miny, maxx, maxy)) < _RTREE_BOX_SHARE:
                clauses.append(f"fid IN (SELECT id FROM {_RTREE} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)")
                params.extend([maxx, minx, maxy, miny])
            # A box over most of the events is answered faster by scanning x/y in the covering
            # index than by collecting every fid from the R-tree first.
            clauses.append("x >= ? AND x <= ? AND y >= ? AND y <= ?")
            params.extend([minx, maxx, miny, maxy])
        sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return sql, params

    @staticmethod
    def _box_share(conn: sqlite3.Connection, box: tuple[float, float, float, float]) -> float:
        """Share of the events' extent (``gpkg_contents``) that ``box`` covers; 0 when unknown."""
        row = conn.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = 'events'").fetchone()
        if row is None or None in row:
            return 0.0
        ex0, ey0, ex1, ey1 = (float(v) for v in row)
        area = max(ex1 - ex0, 1.0) * max(ey1 - ey0, 1.0)
        overlap = max(0.0, min(box[2], ex1) - max(box[0], ex0)) * max(0.0, min(box[3], ey1) - max(box[1], ey0))
        return overlap / area

    def _known_names(self, conn: sqlite3.Connection, column: str, value: Any) -> list[str]:
        wanted = [value] if isinstance(value, str) else list(value)
        known: set[str] = set()
        try:
            from geo_ibm.layers import cantons

            known |= set(cantons()[column].dropna().astype(str))
        except Exception:  # layers unavailable: the names in the store are the reference
            pass
        lookup = {k.casefold(): k for k in known}
        if any(str(item).strip().casefold() not in lookup for item in wanted):
            # Names the layers do not know may still be stored (an older canton layer); a full
            # DISTINCT over the events is only worth its cost then.
            stored = {r[0] for r in conn.execute(f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL")}
            known |= stored
            lookup.update({k.casefold(): k for k in stored if k.casefold() not in lookup})
        out: list[str] = []
        for item in wanted:
            match = lookup.get(str(item).strip().casefold())
            if match is None:
                raise ValidationError(
                    f"{column} {item!r} is unknown; known {column}s: {', '.join(sorted(known)) or 'none'}"
                )
            out.append(match)
        return out

    def events(
        self,
        *,
        start: Any = None,
        end: Any = None,
        quarter: str | None = None,
        region: str | list[str] | None = None,
        canton: str | list[str] | None = None,
        location_kind: str | list[str] | None = None,
        entry_country: str | list[str] | None = None,
        transport_mode: str | list[str] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        event_id: str | list[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        columns: list[str] | tuple[str, ...] | None = None,
    ) -> gpd.GeoDataFrame:
        """Stored events matching every given filter, ordered by time.

        Parameters
        ----------
        start, end
            ``start <= observed_at < end``; ISO text, date or datetime, naive = local time. An
            ``end`` given as a date alone includes that whole day.
        quarter
            ``'2025Q3'`` (``'2025-Q3'`` accepted), local time.
        region, canton
            A police region / canton name or a list of them (case-insensitive).
        location_kind, entry_country, transport_mode
            A code or a list of codes (see :mod:`geo_ibm.events`).
        bbox
            ``(minx, miny, maxx, maxy)`` in EPSG:2169 metres.
        event_id
            An event id or a list of at most 30 000 (ids not stored match nothing).
        limit, offset
            Paging.
        columns
            Return only these columns (names of :data:`LEAN_COLUMNS`) and ``geometry``, e.g.
            ``["observed_at", "persons"]`` for the hotspot methods: same rows, same order,
            same values, read without building the text columns of a million rows.

        Returns
        -------
        GeoDataFrame
            EPSG:2169; columns ``event_id``, ``observed_at`` (tz-aware Europe/Luxembourg),
            ``location_kind``, ``persons``, ``smugglers``, ``transport_mode``,
            ``entry_country``, ``operation_id``, ``source_unit``, ``notes``, ``quarter``,
            ``canton``, ``region``, ``geometry`` (Point); with ``columns``, those in the
            order given, then ``geometry``.

        Raises
        ------
        ValidationError
            If a filter value is malformed or unknown, or a column is not one of
            :data:`LEAN_COLUMNS` (the message names the parameter).
        """
        filters = dict(
            start=start, end=end, quarter=quarter, region=region, canton=canton, location_kind=location_kind,
            entry_country=entry_country, transport_mode=transport_mode, bbox=bbox, event_id=event_id,
        )
        page = _paging(limit, offset)
        if columns is not None:
            wanted = _lean_columns(columns)
            with self._read() as conn:
                where, params = self._where(conn, filters)
                return _lean_frame(conn, where, params, wanted, page=page)
        with self._read() as conn:
            where, params = self._where(conn, filters)
            cols = [c for c in EVENT_COLUMNS if c not in ("observed_at", "geometry")]
            select = ", ".join([*cols, "observed_utc", "quarter", "canton", "region", "x", "y"])
            rows = conn.execute(f"SELECT {select} FROM events{where} ORDER BY observed_utc, fid{page}", params).fetchall()
        return _events_frame(rows, cols)

    def event_points(self, **filters: Any) -> np.ndarray:
        """Coordinates of the events matching the filters of :meth:`events` (no paging).

        The fast path for maps and counts per cell: only ``x``/``y`` are read, from the
        covering index when the filters allow.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, 2)``: x, y in EPSG:2169 metres, one row per event, in no particular order.
        """
        _check_filter_names(filters)
        with self._read() as conn:
            where, params = self._where(conn, filters)
            return _numeric_rows(conn.execute(f"SELECT x, y FROM events{where}", params), 2)

    def counts(self, *, by: str | tuple[str, ...] | list[str] = ("quarter",), **filters: Any) -> pd.DataFrame:
        """Events and persons per group, counted in one query (filters as in :meth:`events`).

        Parameters
        ----------
        by
            One or more of :data:`COUNT_KEYS`, e.g. ``("quarter", "region")``.

        Returns
        -------
        DataFrame
            The ``by`` columns, ``events``, ``persons``: one row per combination present,
            sorted by the ``by`` columns (a missing canton/region, ``None``, first).

        Raises
        ------
        ValidationError
            If ``by`` names something else, or a filter is malformed.
        """
        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in COUNT_KEYS]
        if not keys or bad:
            raise ValidationError(f"by must name one or more of {', '.join(COUNT_KEYS)}, got {by!r}")
        _check_filter_names(filters)
        group = ", ".join(keys)
        with self._read() as conn:
            where, params = self._where(conn, filters)
            rows = conn.execute(
                f"SELECT {group}, count(*), coalesce(sum(persons), 0) FROM events{where} GROUP BY {group} ORDER BY {group}",
                params,
            ).fetchall()
        frame = pd.DataFrame(rows, columns=[*keys, "events", "persons"], dtype=object)
        return frame.astype({"events": np.int64, "persons": np.int64})

    def count(self, **filters: Any) -> int:
        """Number of stored events matching the filters of :meth:`events` (no paging)."""
        _check_filter_names(filters)
        with self._read() as conn:
            where, params = self._where(conn, filters)
            return int(conn.execute(f"SELECT count(*) FROM events{where}", params).fetchone()[0])

    def quarter_counts(self, **filters: Any) -> pd.DataFrame:
        """Events and persons per quarter (filters as in :meth:`events`).

        Returns
        -------
        DataFrame
            ``quarter`` (``2025Q3``), ``events``, ``persons``; sorted by quarter.
        """
        _check_filter_names(filters)
        with self._read() as conn:
            where, params = self._where(conn, filters)
            rows = conn.execute(
                f"SELECT quarter, count(*), coalesce(sum(persons), 0) FROM events{where} GROUP BY quarter ORDER BY quarter",
                params,
            ).fetchall()
        frame = pd.DataFrame(rows, columns=["quarter", "events", "persons"])
        return frame.astype({"quarter": object, "events": np.int64, "persons": np.int64})

    def summary(self) -> dict[str, Any]:
        """Layers and counts: ``path``, ``layers``, ``events``, ``persons``, ``first_event``,
        ``last_event``, ``imports``, ``ground_truth``, ``audit_records``."""
        with self._read() as conn:
            layers = [r[0] for r in conn.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name")]
            n, persons, first, last = conn.execute(
                "SELECT count(*), coalesce(sum(persons), 0), min(observed_utc), max(observed_utc) FROM events"
            ).fetchone()
            imports = conn.execute("SELECT count(*) FROM imports WHERE status = 'ok'").fetchone()[0]
            audit = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
            truth = conn.execute("SELECT count(*) FROM ground_truth").fetchone()[0] if "ground_truth" in layers else 0
        return {
            "path": str(self.path),
            "layers": ", ".join(layers),
            "events": int(n),
            "persons": int(persons),
            "first_event": _iso_local(first),
            "last_event": _iso_local(last),
            "imports": int(imports),
            "ground_truth": int(truth),
            "audit_records": int(audit),
        }

    def event(self, event_id: str) -> dict[str, Any]:
        """One stored event as a dict (keys as the columns of :meth:`events`).

        Raises
        ------
        NotFoundError
            If no event has this id.
        """
        with self._read() as conn:
            cols = [c for c in EVENT_COLUMNS if c not in ("observed_at", "geometry")]
            select = ", ".join([*cols, "observed_utc", "quarter", "canton", "region", "x", "y"])
            rows = conn.execute(f"SELECT {select} FROM events WHERE event_id = ?", (str(event_id),)).fetchall()
        if not rows:
            raise NotFoundError(f"event_id {event_id!r} not found in the store")
        frame = _events_frame(rows, cols)
        record = frame.iloc[0].to_dict()
        return record

    # -- audit and imports ------------------------------------------------------------------

    @staticmethod
    def _audit(conn: sqlite3.Connection, action: str, *, user: str, detail: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO audit (at, user, action, detail) VALUES (?, ?, ?, ?)",
            (_now_utc(), str(user), str(action), json.dumps(detail, default=str, ensure_ascii=False)),
        )

    def audit(self, action: str, *, user: str, detail: dict[str, Any]) -> None:
        """Append an audit record (UTC time, user, action, detail as JSON)."""
        if not action or not str(action).strip():
            raise ValidationError("action must be a non-empty text")
        self.init()
        with self._write() as conn:
            self._audit(conn, action, user=user, detail=detail)

    def audit_log(self, *, limit: int = 200) -> pd.DataFrame:
        """The newest audit records first.

        Returns
        -------
        DataFrame
            ``id``, ``at`` (tz-aware UTC), ``user``, ``action``, ``detail`` (dict).
        """
        page = _paging(limit, 0)
        with self._read() as conn:
            rows = conn.execute(f"SELECT id, at, user, action, detail FROM audit ORDER BY id DESC{page}").fetchall()
        frame = pd.DataFrame(rows, columns=["id", "at", "user", "action", "detail"], dtype=object)
        frame["id"] = frame["id"].astype(np.int64)
        frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
        frame["detail"] = [json.loads(d) for d in frame["detail"]]
        return frame

    def imports(self) -> pd.DataFrame:
        """Every import attempt, newest first.

        Returns
        -------
        DataFrame
            ``id``, ``imported_at`` (tz-aware UTC), ``user``, ``file_name``, ``sha256``,
            ``rows``, ``accepted``, ``rejected``, ``duplicates``, ``status`` (``ok`` or
            ``failed``), ``message`` (why it failed).
        """
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, imported_at, user, file_name, sha256, rows, accepted, rejected, duplicates, status, message "
                "FROM imports ORDER BY id DESC"
            ).fetchall()
        columns = ["id", "imported_at", "user", "file_name", "sha256", "rows", "accepted", "rejected", "duplicates", "status", "message"]
        frame = pd.DataFrame(rows, columns=columns, dtype=object)
        for col in ("id", "rows", "accepted", "rejected", "duplicates"):
            frame[col] = frame[col].astype(np.int64)
        frame["imported_at"] = pd.to_datetime(frame["imported_at"], utc=True, format="ISO8601")
        return frame

    # -- ground truth -----------------------------------------------------------------------

    def write_ground_truth(self, gdf: gpd.GeoDataFrame) -> None:
        """Replace the ``ground_truth`` layer with ``gdf`` (converted to EPSG:2169)."""
        self.init()
        gdf = io.ensure_working_crs(gdf, name="ground truth")
        with self._write() as conn:
            _replace_layer(conn, "ground_truth", gdf, description="Planted hotspots of the demo data")

    def ground_truth(self) -> gpd.GeoDataFrame:
        """The ``ground_truth`` layer (EPSG:2169); an empty GeoDataFrame when there is none.

        Columns are those written; datetime columns come back tz-aware (Europe/Luxembourg).
        """
        with self._read() as conn:
            return _read_layer(conn, "ground_truth")


# --- helpers ------------------------------------------------------------------------------


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the open transaction (``executescript`` commits it)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _none_for_na(values: Any) -> np.ndarray:
    arr = np.array(values, dtype=object)
    arr[pd.isna(arr)] = None
    return arr


def _python_values(series: pd.Series) -> list[Any]:
    """Python scalars for sqlite3 (numpy scalars are not accepted), missing values as None."""
    if pd.api.types.is_integer_dtype(series.dtype) or pd.api.types.is_float_dtype(series.dtype):
        return series.to_numpy().tolist()
    arr = series.to_numpy(dtype=object)
    missing = pd.isna(arr)  # vectorised; a per-value test costs more than the insert of a million rows
    if missing.any():
        arr = arr.copy()
        arr[missing] = None
    return arr.tolist()


def _event_records(valid: gpd.GeoDataFrame) -> pd.DataFrame:
    """The validated events as the columns of the ``events`` table (without geom/import_id)."""
    stamps = valid["observed_at"]
    utc = stamps.dt.tz_convert("UTC")
    epoch = (utc.dt.tz_localize(None).astype("datetime64[s]").astype(np.int64)).to_numpy()
    local = stamps.dt.tz_convert(LOCAL_TZ)
    quarter = local.dt.year.astype(str).to_numpy(dtype=object) + "Q" + local.dt.quarter.astype(str).to_numpy(dtype=object)
    iso = _iso_with_offset(local)
    table = pd.DataFrame(
        {
            "event_id": pd.Series(valid["event_id"].to_numpy(dtype=object), dtype=object),
            "observed_at": pd.Series(iso, dtype=object),
            "observed_utc": epoch,
            "quarter": pd.Series(quarter, dtype=object),
            "location_kind": pd.Series(valid["location_kind"].to_numpy(dtype=object), dtype=object),
            "persons": valid["persons"].to_numpy(dtype=np.int64),
            "smugglers": valid["smugglers"].to_numpy(dtype=np.int64),
            **{
                c: pd.Series(_none_for_na(valid[c].to_numpy(dtype=object)), dtype=object)
                for c in ("transport_mode", "entry_country", "operation_id", "source_unit", "notes")
            },
            "x": shapely.get_x(valid.geometry.to_numpy()),
            "y": shapely.get_y(valid.geometry.to_numpy()),
        }
    )
    return table


def _iso_with_offset(local: pd.Series) -> np.ndarray:
    """``2025-07-14T06:30:00+02:00`` for each tz-aware local timestamp, vectorised.

    pandas' ``strftime('%z')`` on tz-aware values runs per element; this formats the wall
    clock with numpy and appends the (few distinct) UTC offsets.
    """
    utc_s = local.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    wall_s = local.dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    offset_min = (wall_s - utc_s).astype(np.int64) // 60
    values, codes = np.unique(offset_min, return_inverse=True)
    suffix = np.array(
        [f"{'+' if v >= 0 else '-'}{abs(int(v)) // 60:02d}:{abs(int(v)) % 60:02d}" for v in values], dtype=object
    )[codes]
    return (np.datetime_as_string(wall_s, unit="s").astype(object) + suffix).astype(object)


def _events_frame(rows: list[tuple], cols: list[str]) -> gpd.GeoDataFrame:
    names = [*cols, "observed_utc", "quarter", "canton", "region", "x", "y"]
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    utc = pd.to_datetime(frame["observed_utc"].to_numpy(dtype=np.int64), unit="s", utc=True)
    out = pd.DataFrame(
        {
            "event_id": frame["event_id"],
            "observed_at": pd.Series(utc.tz_convert(LOCAL_TZ), index=frame.index),
            **{c: frame[c] for c in cols if c != "event_id"},
            "quarter": frame["quarter"],
            "canton": frame["canton"],
            "region": frame["region"],
        }
    )
    out["persons"] = out["persons"].astype(np.int64)
    out["smugglers"] = out["smugglers"].astype(np.int64)
    geometry = gpd.points_from_xy(frame["x"].to_numpy(dtype=float), frame["y"].to_numpy(dtype=float))
    return gpd.GeoDataFrame(out, geometry=geometry, crs=WORKING_CRS)


def _numeric_rows(cursor: sqlite3.Cursor, width: int) -> np.ndarray:
    """All rows of a cursor over numeric columns as a float array ``(n, width)``.

    Streaming the flattened values into ``np.fromiter`` keeps no list of a million tuples
    and converts about twice as fast as ``np.array(cursor.fetchall())``. Integers up to 2**53
    (fids, epoch seconds, counts) are exact in float64.
    """
    flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.float64)
    return flat.reshape(-1, width)


def _lean_columns(columns: Any) -> list[str]:
    wanted = [columns] if isinstance(columns, str) else list(columns)
    bad = [c for c in wanted if c not in LEAN_COLUMNS]
    if bad or len(set(wanted)) != len(wanted):
        raise ValidationError(
            f"columns must be distinct names of {', '.join(LEAN_COLUMNS)} (geometry always comes), got {columns!r}"
        )
    return wanted


_NUMERIC_LEAN = {"observed_utc", "persons", "smugglers"}


def _lean_frame(
    conn: sqlite3.Connection, where: str, params: list[Any], wanted: list[str], *, page: str
) -> gpd.GeoDataFrame:
    """Only ``wanted`` columns of the matching events, ordered as :meth:`GeoPackageStore.events`."""
    sql_cols = [LEAN_COLUMNS[c] for c in wanted]
    numeric = [c for c in dict.fromkeys(["observed_utc", *sql_cols]) if c in _NUMERIC_LEAN]
    text = [c for c in dict.fromkeys(sql_cols) if c not in _NUMERIC_LEAN]
    select = ", ".join(["fid", "x", "y", *numeric, *text])
    if page:
        sql = f"SELECT {select} FROM events{where} ORDER BY observed_utc, fid{page}"
    else:
        # Sorting the few numeric columns in numpy beats ORDER BY, which would walk the
        # time index and fetch every row from the table instead of scanning the covering index.
        sql = f"SELECT {select} FROM events{where}"
    n_num = 3 + len(numeric)
    cursor = conn.execute(sql, params)
    if text:
        table = pd.DataFrame(cursor.fetchall(), columns=["fid", "x", "y", *numeric, *text], dtype=object)
        values = table[["fid", "x", "y", *numeric]].to_numpy(dtype=np.float64).reshape(-1, n_num)
    else:
        table = None
        values = _numeric_rows(cursor, n_num)
    fid = values[:, 0].astype(np.int64)
    utc = values[:, 3].astype(np.int64)
    order = np.lexsort((fid, utc)) if not page else np.arange(len(fid))
    number = {name: values[order, 3 + k] for k, name in enumerate(numeric)}
    out: dict[str, Any] = {}
    for name, sql_name in zip(wanted, sql_cols):
        if sql_name == "observed_utc":
            stamps = pd.to_datetime(number[sql_name].astype(np.int64), unit="s", utc=True).tz_convert(LOCAL_TZ)
            out[name] = pd.Series(stamps)
        elif sql_name in _NUMERIC_LEAN:
            out[name] = pd.Series(number[sql_name].astype(np.int64))
        else:
            assert table is not None
            out[name] = pd.Series(table[sql_name].to_numpy(dtype=object)[order], dtype=object)
    geometry = gpd.points_from_xy(values[order, 1], values[order, 2])
    return gpd.GeoDataFrame(pd.DataFrame(out, index=pd.RangeIndex(len(fid))), geometry=geometry, crs=WORKING_CRS)


def _rejected_table(frame: pd.DataFrame, problems: list[Problem]) -> pd.DataFrame:
    reasons: dict[int, list[str]] = {}
    for p in problems:
        if p.row is not None:
            reasons.setdefault(p.row, []).append(f"{p.column}: {p.reason}" if p.column else p.reason)
    rows = sorted(reasons)
    rejected = frame.loc[rows].copy()
    rejected = rejected.drop(columns=[c for c in rejected.columns if str(c).startswith("_")])
    rejected.insert(0, "row", rows)
    rejected["reason"] = ["; ".join(reasons[r]) for r in rows]
    return rejected.reset_index(drop=True)


_QUARTER_RE = re.compile(r"^\s*(\d{4})\s*-?\s*[qQ]([1-4])\s*$")
_FILTER_NAMES = {
    "start", "end", "quarter", "region", "canton", "location_kind", "entry_country", "transport_mode", "bbox",
    "event_id",
}


def _check_filter_names(filters: dict[str, Any]) -> None:
    unknown = sorted(set(filters) - _FILTER_NAMES)
    if unknown:
        raise ValidationError(f"unknown filter(s) {', '.join(unknown)}; use {', '.join(sorted(_FILTER_NAMES))}")


def _quarter(value: Any) -> str:
    match = _QUARTER_RE.match(str(value))
    if not match:
        raise ValidationError(f"quarter must look like '2025Q3', got {value!r}")
    return f"{match.group(1)}Q{match.group(2)}"


def _epoch(value: Any, name: str, *, end_of_day: bool) -> int:
    date_only = isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)
    if isinstance(value, str) and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", value):
        date_only = True
    if isinstance(value, datetime.date) and date_only:
        value = value.isoformat()
    stamp = parse_timestamps(pd.Series([value], dtype=object)).iloc[0]
    if pd.isna(stamp):
        raise ValidationError(f"{name} is not a date or date and time: {value!r} (use ISO 8601, e.g. 2025-07-14)")
    if date_only and end_of_day:
        # A whole local day: the next local midnight, DST-safe.
        nxt = (stamp.tz_localize(None) + pd.Timedelta(days=1)).tz_localize(LOCAL_TZ, ambiguous=True, nonexistent="shift_forward")
        stamp = nxt
    return int(stamp.tz_convert("UTC").timestamp() // 1)


def _codes(value: Any, name: str, allowed: tuple[str, ...]) -> list[str]:
    wanted = [value] if isinstance(value, str) else list(value)
    lookup = {a.lower(): a for a in allowed}
    out = []
    for item in wanted:
        code = lookup.get(str(item).strip().lower())
        if code is None:
            raise ValidationError(f"{name} {item!r} is unknown; allowed: {', '.join(allowed)}")
        out.append(code)
    return out


def _bbox(value: Any) -> tuple[float, float, float, float]:
    try:
        minx, miny, maxx, maxy = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValidationError(f"bbox must be four numbers (minx, miny, maxx, maxy) in EPSG:2169, got {value!r}") from None
    if not (minx <= maxx and miny <= maxy) or not np.all(np.isfinite([minx, miny, maxx, maxy])):
        raise ValidationError(f"bbox must have minx <= maxx and miny <= maxy, got {value!r}")
    return minx, miny, maxx, maxy


def _paging(limit: int | None, offset: int) -> str:
    if limit is not None and (not isinstance(limit, int | np.integer) or isinstance(limit, bool) or limit < 0):
        raise ValidationError(f"limit must be a whole number >= 0, got {limit!r}")
    if not isinstance(offset, int | np.integer) or isinstance(offset, bool) or offset < 0:
        raise ValidationError(f"offset must be a whole number >= 0, got {offset!r}")
    if limit is None and not offset:
        return ""
    return f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"


def _iso_local(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return pd.Timestamp(int(epoch), unit="s", tz="UTC").tz_convert(LOCAL_TZ).isoformat()


# --- R-tree bulk load -----------------------------------------------------------------------

_RTREE_BOX_SHARE = 0.25
"""A bbox filter uses the R-tree when the box covers less than this share of the events' extent."""

_RTREE_REBUILD_SHARE = 0.2
"""Rebuild the whole R-tree when an import adds more than this share of the stored events."""

_RTREE_CELL = np.dtype([("id", ">i8"), ("minx", ">f4"), ("maxx", ">f4"), ("miny", ">f4"), ("maxy", ">f4")])


def _f32_down(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.float32)
    over = out.astype(np.float64) > values
    out[over] = np.nextafter(out[over], np.float32(-np.inf))
    return out


def _f32_up(values: np.ndarray) -> np.ndarray:
    out = values.astype(np.float32)
    under = out.astype(np.float64) < values
    out[under] = np.nextafter(out[under], np.float32(np.inf))
    return out


def _str_groups(cx: np.ndarray, cy: np.ndarray, capacity: int) -> list[np.ndarray]:
    """Sort-Tile-Recursive packing: slices along x, runs of ``capacity`` along y within each."""
    n = len(cx)
    pages = -(-n // capacity)
    slices = int(np.ceil(np.sqrt(pages)))
    by_x = np.argsort(cx, kind="stable")
    groups = []
    step = slices * capacity
    for s0 in range(0, n, step):
        part = by_x[s0 : s0 + step]
        part = part[np.argsort(cy[part], kind="stable")]
        groups.extend(part[g0 : g0 + capacity] for g0 in range(0, len(part), capacity))
    return groups


def _pack_rtree(conn: sqlite3.Connection, rtree: str, table: str) -> None:
    """Rebuild the R-tree of point table ``table`` by writing packed nodes into its shadow tables.

    SQLite's R-tree inserts one entry at a time (about 10 µs each); a Sort-Tile-Recursive
    bulk load builds the same structure (nodes of 24-byte big-endian cells: rowid and
    float32 minx, maxx, miny, maxy rounded outwards; the root, node 1, holds the depth)
    in a fraction of that. ``rtreecheck()`` confirms the result in the tests.
    """
    node_size = conn.execute(f"SELECT length(data) FROM {rtree}_node WHERE nodeno = 1").fetchone()[0]
    capacity = min(51, (node_size - 4) // _RTREE_CELL.itemsize)
    data = _numeric_rows(conn.execute(f"SELECT fid, x, y FROM {table} WHERE geom IS NOT NULL"), 3)
    ids = data[:, 0].astype(np.int64)
    x, y = data[:, 1], data[:, 2]
    boxes = (_f32_down(x), _f32_up(x), _f32_down(y), _f32_up(y))
    levels: list[tuple[list[np.ndarray], tuple[np.ndarray, ...]]] = []
    cx, cy = x, y
    while True:
        groups = _str_groups(cx, cy, capacity) if len(cx) else [np.zeros(0, dtype=np.int64)]
        levels.append((groups, boxes))
        if len(groups) == 1:
            break
        order = np.concatenate(groups)
        starts = np.cumsum([0, *(len(g) for g in groups[:-1])])
        boxes = tuple(
            reduce.reduceat(boxes[k][order], starts).astype(np.float32)
            for k, reduce in enumerate((np.minimum, np.maximum, np.minimum, np.maximum))
        )
        cx = (boxes[0].astype(np.float64) + boxes[1]) / 2
        cy = (boxes[2].astype(np.float64) + boxes[3]) / 2
    numbers: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(levels)
    next_number = 1
    for level in range(len(levels) - 1, -1, -1):
        count = len(levels[level][0])
        numbers[level] = np.arange(next_number, next_number + count, dtype=np.int64)
        next_number += count
    depth = len(levels) - 1
    nodes: list[tuple[int, bytes]] = []
    links: list[tuple[np.ndarray, np.ndarray]] = []  # (child, node holding it) per level
    size = _RTREE_CELL.itemsize
    for level, (groups, level_boxes) in enumerate(levels):
        child_ids = ids if level == 0 else numbers[level - 1]
        # All cells of a level in one record array, cut into node blobs by byte offsets.
        order = np.concatenate(groups)
        counts = np.array([len(g) for g in groups], dtype=np.int64)
        cells = np.empty(len(order), dtype=_RTREE_CELL)
        cells["id"] = child_ids[order]
        for k, name in enumerate(("minx", "maxx", "miny", "maxy")):
            cells[name] = level_boxes[k][order]
        raw = cells.tobytes()
        ends = np.cumsum(counts) * size
        for number, count, end in zip(numbers[level].tolist(), counts.tolist(), ends.tolist()):
            blob = struct.pack(">HH", depth if number == 1 else 0, count) + raw[end - count * size : end]
            nodes.append((number, blob + bytes(node_size - len(blob))))
        links.append((child_ids[order], np.repeat(numbers[level], counts)))
    conn.execute(f"DELETE FROM {rtree}_node")
    conn.execute(f"DELETE FROM {rtree}_rowid")
    conn.execute(f"DELETE FROM {rtree}_parent")
    # Inserting in key order appends to each shadow table's B-tree instead of splitting pages
    # all over it.
    conn.executemany(f"INSERT INTO {rtree}_node (nodeno, data) VALUES (?, ?)", sorted(nodes))
    for level, (child, node) in enumerate(links):
        by_child = np.argsort(child, kind="stable")
        target = f"{rtree}_rowid (rowid, nodeno)" if level == 0 else f"{rtree}_parent (nodeno, parentnode)"
        conn.executemany(f"INSERT INTO {target} VALUES (?, ?)", zip(child[by_child].tolist(), node[by_child].tolist()))


# --- generic small layers (ground truth) --------------------------------------------------


def _sql_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "INTEGER"
    if pd.api.types.is_float_dtype(series.dtype):
        return "DOUBLE"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "DATETIME"
    return "TEXT"


def _replace_layer(conn: sqlite3.Connection, name: str, gdf: gpd.GeoDataFrame, *, description: str) -> None:
    geom_col = gdf.geometry.name
    attrs = [c for c in gdf.columns if c != geom_col]
    for c in attrs:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(c)) or str(c).lower() in {"fid", "geom"}:
            raise ValidationError(f"{name}: column name {c!r} cannot be stored; use letters, digits and _")
    types = {c: _sql_type(gdf[c]) for c in attrs}
    geoms = gdf.geometry.to_numpy()
    kinds = {g.geom_type.upper() for g in geoms if g is not None and not g.is_empty}
    geom_type = kinds.pop() if len(kinds) == 1 else "GEOMETRY"
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = ?", (name,))
    conn.execute("DELETE FROM gpkg_contents WHERE table_name = ?", (name,))
    fields = "".join(f", {c} {types[c]}" for c in attrs)
    conn.execute(f"CREATE TABLE {name} (fid INTEGER PRIMARY KEY AUTOINCREMENT, geom {geom_type}{fields})")
    minx, miny, maxx, maxy = (None,) * 4 if not len(gdf) else (float(v) for v in gdf.total_bounds)
    conn.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, max_x, max_y, srs_id) "
        "VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)",
        (name, name, description, minx, miny, maxx, maxy, SRS_ID),
    )
    conn.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)", (name, geom_type, SRS_ID))
    wkb = shapely.to_wkb(geoms, byte_order=1, output_dimension=2)
    blobs = [None if w is None else _GP_HEADER + w for w in wkb.tolist()]
    columns: list[list[Any]] = [blobs]
    for c in attrs:
        series = gdf[c]
        if types[c] == "DATETIME":
            utc = series.dt.tz_convert("UTC") if isinstance(series.dtype, pd.DatetimeTZDtype) else series.dt.tz_localize(LOCAL_TZ).dt.tz_convert("UTC")
            text = utc.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_numpy(dtype=object)
            columns.append([None if pd.isna(t) else t[:23] + "Z" for t in text])
        elif types[c] == "BOOLEAN":
            columns.append([None if pd.isna(v) else int(bool(v)) for v in series.tolist()])
        else:
            columns.append(_python_values(series))
    names = ["geom", *attrs]
    conn.executemany(
        f"INSERT INTO {name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", zip(*columns)
    )


def _read_layer(conn: sqlite3.Connection, name: str) -> gpd.GeoDataFrame:
    info = conn.execute(f"PRAGMA table_info({name})").fetchall() if re.fullmatch(r"\w+", name) else []
    if not info:
        return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)
    columns = [(row[1], str(row[2]).upper()) for row in info if row[1] not in ("fid", "geom")]
    select = ", ".join(["geom", *(c for c, _ in columns)])
    rows = conn.execute(f"SELECT {select} FROM {name} ORDER BY fid").fetchall()
    frame = pd.DataFrame(rows, columns=["geom", *(c for c, _ in columns)], dtype=object)
    for col, kind in columns:
        if kind == "DATETIME":
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").dt.tz_convert(LOCAL_TZ)
        elif kind == "BOOLEAN":
            frame[col] = frame[col].astype(bool)
        elif kind == "INTEGER" and frame[col].notna().all():
            frame[col] = frame[col].astype(np.int64)
        elif kind == "DOUBLE":
            frame[col] = frame[col].astype(float)
    geoms = geometries_from_blobs(frame.pop("geom").tolist())
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=WORKING_CRS)
