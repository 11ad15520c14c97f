"""The GeoPackage event store: one ``.gpkg`` file written with sqlite3 (layout in :mod:`~geo_ibm.store.gpkg_schema`).

Every write is one SQLite transaction: the store holds all of an import or none of it, also
when the process is killed. The file is in WAL journal mode so the web app can read while an
import writes (GDAL/QGIS read WAL GeoPackages; after each import the WAL is checkpointed into
the main file so a copy of the ``.gpkg`` alone is complete when no one is writing). A large
import into an empty store that no other connection has open runs in rollback-journal mode
instead, writing its pages once (:meth:`GeoPackageStore._leave_wal_for_bulk`), and the file
is back in WAL mode when it returns.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm import io
from geo_ibm.errors import StoreError, ValidationError
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS, rtree_bulk_load
from geo_ibm.store import frames, gpkg_accounts, gpkg_readers, gpkg_rtree, gpkg_schema, gpkg_staging
from geo_ibm.store.base import Account, AssignRegions, EventStore, HitKey, Hits, WriteTransaction
from geo_ibm.store.filters import BBox, EventFilter, Paging, box_clauses, paging_sql, parse_paging, where_sql
from geo_ibm.store.gpkg_blobs import point_blobs
from geo_ibm.store.imports import ImportRecord

BUSY_TIMEOUT_MS = 30_000
_CHUNK_ROWS = 50_000

RTREE_BOX_SHARE = 0.25
"""A bbox filter uses the R-tree when the box covers less than this share of the events' extent."""

RTREE_REBUILD_SHARE = 0.2
"""An import adding more than this share of the stored events rebuilds the indexes and the R-tree."""

GROUND_TRUTH = "ground_truth"


def _now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class GeoPackageStore(EventStore):
    """Event store in one GeoPackage file.

    Parameters
    ----------
    path
        The ``.gpkg`` file.
    outline, assign_regions
        See :class:`~geo_ibm.store.base.EventStore`.
    serving
        Read through a connection kept open by each thread (:mod:`~geo_ibm.store.gpkg_readers`).
    rtree_bulk
        Rebuild the R-tree with the bulk loader when an import brings many events (``True``)
        or always use SQLite's own R-tree inserts (``False``); ``None`` follows
        :func:`geo_ibm.settings.rtree_bulk_load` at each import.
    """

    def __init__(self, path: io.PathLike, *, outline: Any = None, assign_regions: AssignRegions | bool | None = None,
                 rtree_bulk: bool | None = None, serving: bool = False) -> None:
        super().__init__(outline=outline, assign_regions=assign_regions, serving=serving)
        self.path = Path(path)
        self.rtree_bulk = rtree_bulk
        self._current = False

    def __repr__(self) -> str:
        return f"GeoPackageStore({str(self.path)!r})"

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

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
        gpkg_rtree.register_functions(conn)
        return conn

    def _require(self) -> None:
        if not self.path.exists():
            raise StoreError(f"no event store at {self.path}; run 'geo-ibm init' first")

    def _ensure_current(self, conn: sqlite3.Connection) -> None:
        """Refuse an uninitialised file; bring an older store's tables up to date (once per instance)."""
        if self._current:
            return
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "events" not in names:
            raise StoreError(f"{self.path} is not an initialised event store; run 'geo-ibm init'")
        if not gpkg_schema.is_current(names, conn):
            self.init()
        self._current = True

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self._require()
        if self.serving:  # this thread's kept connection (gpkg_readers): no open/close per read
            kept = gpkg_readers.reader(self.path, self._connect)
            try:
                self._ensure_current(kept)
                yield kept
            finally:
                if kept.in_transaction:  # reads never begin one; never leave one open on a kept connection
                    kept.rollback()
            return
        conn = self._connect()
        try:
            self._ensure_current(conn)
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection in a write transaction (``BEGIN IMMEDIATE``: it waits for a running import).

        Threads of one process queue for the file's write lock on a Python lock first: SQLite's
        busy handler would make them sleep in growing steps (up to 100 ms) while another thread
        commits, and under load those sleeps were the slowest web answers (a reader's audit
        tally). Other processes still wait through the busy handler.
        """
        self._require()
        with (gpkg_readers.queued(self.path, timeout_s=BUSY_TIMEOUT_MS / 1000),
              self._write_unqueued(kept=self.serving) as conn):
            yield conn

    @contextlib.contextmanager
    def _write_unqueued(self, *, new_rows: int = 0, kept: bool = False) -> Iterator[sqlite3.Connection]:
        # ``kept``: a served store's small writes (audit tallies, sessions, counters) use this
        # thread's kept connection; a fresh one costs about 1 ms of CPU (open, pragmas, functions,
        # SQLite parsing the schema at its first statement), more than such a write itself.
        # Imports keep a connection of their own, with its large page cache.
        conn = gpkg_readers.reader(self.path, self._connect) if kept else self._connect()
        journal = False
        try:
            self._ensure_current(conn)
            journal = new_rows > 0 and self._leave_wal_for_bulk(conn, new_rows)
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
            try:
                if journal:
                    # Committed or rolled back already: should a reader hold the file beyond the busy
                    # timeout, the next init() (every import starts with one) puts WAL back.
                    with contextlib.suppress(sqlite3.OperationalError):
                        _return_to_wal(conn)
            finally:
                if not kept:
                    conn.close()

    @staticmethod
    def _leave_wal_for_bulk(conn: sqlite3.Connection, new_rows: int) -> bool:
        """Put the file in rollback-journal mode for one import into an empty ``events`` table, if no one else has it open.

        In WAL mode every page of such an import is written twice, into the WAL at commit and
        into the file by the checkpoint (290 MB each for 1M events). A rollback journal keeps
        only the pages that existed before the transaction, a few: the new pages are written
        once, past the old end of the file, and a rollback or a killed process truncates them
        off. Commits are then durable on return (``synchronous = FULL``: the small journal
        and the file are flushed), not only atomic as in WAL with ``NORMAL``.

        Leaving WAL needs the file's exclusive lock: while any other connection has the file
        open (the web app's readers, another import) this does nothing, at once, and the import
        runs in WAL mode. A process that opens the store during such an import waits (its busy
        timeout) while the import commits. The caller returns the file to WAL after the
        transaction; :meth:`init` does so too if a killed process left it in this mode.
        """
        if not gpkg_staging.can_stage(new_rows) or conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            return False
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            mode = conn.execute("PRAGMA main.journal_mode = DELETE").fetchone()[0]
        except sqlite3.OperationalError:  # another connection has the file open
            mode = "wal"
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if str(mode).lower() != "delete":
            return False
        conn.execute("PRAGMA main.synchronous = FULL")
        return True

    @contextlib.contextmanager
    def _changing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that moves the version at commit."""
        with self._write() as conn:
            yield conn
            gpkg_schema.bump_version(conn)

    @contextlib.contextmanager
    def _write_transaction(self, *, new_rows: int = 0) -> Iterator[WriteTransaction]:
        """A write transaction of the store; ``new_rows`` is the number of events an import may add (see
        :meth:`_leave_wal_for_bulk`)."""
        folders: list[str] = []
        try:
            self._require()
            with (gpkg_readers.queued(self.path, timeout_s=BUSY_TIMEOUT_MS / 1000),
                  self._write_unqueued(new_rows=new_rows) as conn):
                tx = _Transaction(self, conn)
                folders = tx.cleanup
                yield tx
                if tx.changed:
                    gpkg_schema.bump_version(conn)
        finally:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)
        if tx.wrote_events:
            self._checkpoint()

    def _checkpoint(self) -> None:
        conn = self._connect()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _bulk_rtree(self) -> bool:
        return rtree_bulk_load() if self.rtree_bulk is None else bool(self.rtree_bulk)

    # -- creation and version ---------------------------------------------------------------

    def init(self) -> None:
        """Create the GeoPackage and its tables; does nothing to an existing store's data.

        A new store file is created readable by its owner only (0600), in a folder made 0700
        when the store creates it; an existing store loses any group or other permission. A
        store of an older layout gets the tables and indexes it lacks.
        """
        self._create_private()
        self._restrict_modes()
        conn = self._connect()
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if app_id == gpkg_schema.APPLICATION_ID and gpkg_schema.ORIGINAL <= names:
                if not gpkg_schema.is_current(names, conn):
                    conn.execute("BEGIN IMMEDIATE")
                    gpkg_schema.upgrade(conn)
                    conn.execute("COMMIT")
                if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    # A process killed during an import in rollback-journal mode (_leave_wal_for_bulk)
                    _return_to_wal(conn)
                self._current = True
                return  # initialised: no write, so a read-mostly web app never waits here
            if names and app_id != gpkg_schema.APPLICATION_ID:
                raise StoreError(f"{self.path} exists but is not a GeoPackage; choose another store path")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                gpkg_schema.create(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._current = True
        finally:
            conn.close()

    def version(self) -> str:
        with self._read() as conn:
            meta = dict(conn.execute(f"SELECT key, value FROM {gpkg_schema.META_TABLE}").fetchall())
        # The file's path is part of the identity (a copied file is another store), hashed so
        # the version shows no path.
        identity = hashlib.sha256(f"{self.path.resolve()}\0{meta['store_id']}".encode()).hexdigest()[:16]
        return f"gpkg-{identity}-{meta['generation']}-{meta['stamp']}"

    # -- queries ----------------------------------------------------------------------------

    def _spatial(self, conn: sqlite3.Connection) -> Callable[[BBox], tuple[list[str], list[Any]]]:
        def clauses(box: BBox) -> tuple[list[str], list[Any]]:
            minx, miny, maxx, maxy = box
            out, params = box_clauses(box)
            if self._box_share(conn, box) < RTREE_BOX_SHARE:
                # A box over most of the events is answered faster by scanning x/y in the
                # covering index than by collecting every fid from the R-tree first.
                out.insert(0, f"fid IN (SELECT id FROM {gpkg_rtree.RTREE} WHERE minx <= ? AND maxx >= ? "
                              "AND miny <= ? AND maxy >= ?)")
                params[:0] = [maxx, minx, maxy, miny]
            return out, params

        return clauses

    @staticmethod
    def _box_share(conn: sqlite3.Connection, box: BBox) -> float:
        """Share of the events' extent (``gpkg_contents``) that ``box`` covers; 0 when unknown."""
        row = conn.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = 'events'").fetchone()
        if row is None or None in row:
            return 0.0
        ex0, ey0, ex1, ey1 = (float(v) for v in row)
        area = max(ex1 - ex0, 1.0) * max(ey1 - ey0, 1.0)
        overlap = max(0.0, min(box[2], ex1) - max(box[0], ex0)) * max(0.0, min(box[3], ey1) - max(box[1], ey0))
        return overlap / area

    def _where(self, conn: sqlite3.Connection, flt: EventFilter) -> tuple[str, list[Any]]:
        return where_sql(flt, spatial=self._spatial(conn))

    def _stored_names(self, column: str) -> list[str]:
        if column not in ("region", "canton"):
            raise ValueError(f"no stored names for column {column!r}")
        with self._read() as conn:
            return [r[0] for r in conn.execute(f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL")]

    def _select_events(self, flt: EventFilter, *, paging: Paging, columns: list[str] | None) -> gpd.GeoDataFrame:
        page = paging_sql(paging)
        with self._read() as conn:
            where, params = self._where(conn, flt)
            if columns is not None:
                numeric, text = frames.lean_layout(columns)
                select = ", ".join(["fid", "x", "y", *numeric, *text])
                order = " ORDER BY observed_utc, fid" if page else ""
                rows = conn.execute(f"SELECT {select} FROM events{where}{order}{page}", params)
                return frames.lean_frame(rows, columns, ordered=bool(page))
            select = ", ".join(frames.EVENT_SELECT)
            found = conn.execute(f"SELECT {select} FROM events{where} ORDER BY observed_utc, fid{page}", params).fetchall()
        return frames.events_frame(found)

    def _select_points(self, flt: EventFilter) -> np.ndarray:
        with self._read() as conn:
            where, params = self._where(conn, flt)
            return frames.numeric_rows(conn.execute(f"SELECT x, y FROM events{where}", params), 2)

    def _select_counts(self, flt: EventFilter, keys: list[str]) -> pd.DataFrame:
        group = ", ".join(keys)
        with self._read() as conn:
            where, params = self._where(conn, flt)
            rows = conn.execute(
                f"SELECT {group}, count(*), coalesce(sum(persons), 0) FROM events{where} GROUP BY {group} ORDER BY {group}",
                params,
            ).fetchall()
        return frames.counts_frame(rows, keys)

    def _select_count(self, flt: EventFilter) -> int:
        with self._read() as conn:
            where, params = self._where(conn, flt)
            return int(conn.execute(f"SELECT count(*) FROM events{where}", params).fetchone()[0])

    def summary(self) -> dict[str, Any]:
        with self._read() as conn:
            layers = [r[0] for r in conn.execute("SELECT table_name FROM gpkg_contents ORDER BY table_name")]
            n, persons, first, last = conn.execute(
                "SELECT count(*), coalesce(sum(persons), 0), min(observed_utc), max(observed_utc) FROM events"
            ).fetchone()
            imports = conn.execute("SELECT count(*) FROM imports WHERE status = 'ok'").fetchone()[0]
            audit = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
            truth = conn.execute(f"SELECT count(*) FROM {GROUND_TRUTH}").fetchone()[0] if GROUND_TRUTH in layers else 0
        return {
            "path": str(self.path),
            "layers": ", ".join(layers),
            "events": int(n),
            "persons": int(persons),
            "first_event": frames.iso_local(first),
            "last_event": frames.iso_local(last),
            "imports": int(imports),
            "ground_truth": int(truth),
            "audit_records": int(audit),
        }

    def audit_log(self, *, limit: int = 200) -> pd.DataFrame:
        page = paging_sql(parse_paging(limit, 0))
        with self._read() as conn:
            rows = conn.execute(f"SELECT id, at, user, action, detail FROM audit ORDER BY id DESC{page}").fetchall()
        return frames.audit_frame(rows)

    def imports(self) -> pd.DataFrame:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {', '.join(frames.IMPORT_COLUMNS)} FROM imports ORDER BY id DESC").fetchall()
        return frames.imports_frame(rows)

    # -- ground truth (written and read by GDAL) ---------------------------------------------

    def write_ground_truth(self, gdf: gpd.GeoDataFrame) -> None:
        self.init()
        gdf = io.ensure_working_crs(gdf, name="ground truth")
        attrs = [c for c in gdf.columns if c != gdf.geometry.name]
        for c in attrs:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(c)) or str(c).lower() in {"fid", "geom"}:
                raise ValidationError(f"{GROUND_TRUTH}: column name {c!r} cannot be stored; use letters, digits and _")
        layer = gdf.copy()
        for c in attrs:
            if pd.api.types.is_datetime64_dtype(layer[c].dtype):
                layer[c] = layer[c].dt.tz_localize(LOCAL_TZ)
        # GDAL replaces the layer in its own transaction; the version moves right after.
        io.write_vector(layer, self.path, layer=GROUND_TRUTH)
        with self._changing():
            pass

    def ground_truth(self) -> gpd.GeoDataFrame:
        with self._read() as conn:
            present = conn.execute("SELECT 1 FROM gpkg_contents WHERE table_name = ?", (GROUND_TRUTH,)).fetchone()
        if not present:
            return gpd.GeoDataFrame(geometry=gpd.GeoSeries([], crs=WORKING_CRS), crs=WORKING_CRS)
        gdf = io.read_vector(self.path, layer=GROUND_TRUTH)
        for c in gdf.columns:
            if isinstance(gdf[c].dtype, pd.DatetimeTZDtype):
                gdf[c] = gdf[c].astype(pd.DatetimeTZDtype("ns", LOCAL_TZ))
        return gdf

    # -- saved operations --------------------------------------------------------------------

    def add_operation(self, name: str, body: str, *, user: str, created: datetime.datetime, start_date: str,
                      end_date: str) -> bool:
        with self._changing() as conn:
            if conn.execute("SELECT 1 FROM operations WHERE lower(name) = lower(?)", (name,)).fetchone():
                return False
            conn.execute(
                "INSERT INTO operations (name, created, user, start_date, end_date, body) VALUES (?, ?, ?, ?, ?, ?)",
                (name, created.astimezone(datetime.timezone.utc).isoformat(timespec="seconds"), user, start_date,
                 end_date, body),
            )
            return True

    def operations(self) -> pd.DataFrame:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {', '.join(frames.OPERATION_COLUMNS)} FROM operations ORDER BY id DESC")
            return frames.operations_frame(rows.fetchall())

    def operation(self, name: str) -> tuple[dict[str, Any], str] | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {', '.join(frames.OPERATION_COLUMNS)}, body FROM operations "
                               "WHERE lower(name) = lower(?)", (name,)).fetchone()
        return None if row is None else frames.operation_record(row)

    # -- web accounts, tokens, sessions ------------------------------------------------------

    def add_account(self, name: str, role: str, password_hash: str, *, created: datetime.datetime) -> bool:
        with self._changing() as conn:
            return gpkg_accounts.add_account(conn, name, role, password_hash, created)

    def account(self, name: str) -> Account | None:
        with self._read() as conn:
            return gpkg_accounts.account(conn, name)

    def list_accounts(self) -> list[Account]:
        with self._read() as conn:
            return gpkg_accounts.list_accounts(conn)

    def update_account(
        self, name: str, *, updated: datetime.datetime, role: str | None = None, password_hash: str | None = None,
        end_sessions: bool = False,
    ) -> bool:
        with self._changing() as conn:
            return gpkg_accounts.update_account(conn, name, updated=updated, role=role, password_hash=password_hash,
                                                end_sessions=end_sessions)

    def delete_account(self, name: str) -> bool:
        with self._changing() as conn:
            return gpkg_accounts.delete_account(conn, name)

    def add_token(self, name: str, token_sha256: str, *, created: datetime.datetime) -> str | None:
        with self._changing() as conn:
            return gpkg_accounts.add_token(conn, name, token_sha256, created)

    def token_owner(self, token_sha256: str) -> str | None:
        with self._read() as conn:
            return gpkg_accounts.token_owner(conn, token_sha256)

    def delete_tokens(self, name: str) -> int:
        with self._changing() as conn:
            return gpkg_accounts.delete_tokens(conn, name)

    def add_session(self, name: str, sid_sha256: str, *, created: datetime.datetime,
                    expires: datetime.datetime) -> str | None:
        with self._write() as conn:
            return gpkg_accounts.add_session(conn, name, sid_sha256, created, expires)

    def session_account(self, sid_sha256: str, *, now: datetime.datetime) -> Account | None:
        with self._read() as conn:
            return gpkg_accounts.session_account(conn, sid_sha256, now)

    def delete_session(self, sid_sha256: str) -> bool:
        with self._write() as conn:
            return gpkg_accounts.delete_session(conn, sid_sha256)

    def delete_sessions(self, name: str) -> int:
        with self._write() as conn:
            return gpkg_accounts.delete_sessions(conn, name)

    # -- counters and audit tallies ---------------------------------------------------------

    def hits(self, keys: Sequence[HitKey], *, since: float) -> dict[HitKey, Hits]:
        with self._read() as conn:
            return gpkg_accounts.hits(conn, keys, since)

    def add_hits(self, keys: Sequence[HitKey], at: float, *, since: float, max_keys: int) -> dict[HitKey, Hits]:
        with self._write() as conn:
            return gpkg_accounts.add_hits(conn, keys, at, since=since, max_keys=max_keys)

    def clear_hits(self, keys: Sequence[HitKey]) -> None:
        with self._write() as conn:
            gpkg_accounts.clear_hits(conn, keys)

    def hit_keys(self, space: str, *, since: float) -> int:
        with self._read() as conn:
            return gpkg_accounts.hit_keys(conn, space, since)

    def audit_tally(self, action: str, *, user: str, key: str, detail: dict[str, Any], at: float,
                    since: float, count: int = 1) -> int:
        with self._write() as conn:
            return gpkg_accounts.audit_tally(conn, action, user=user, key=key, detail=detail, at=at, since=since,
                                             count=count)


def _return_to_wal(conn: sqlite3.Connection) -> None:
    """Put the store file back in WAL mode (the readers' mode) with the store's usual sync level."""
    conn.execute("PRAGMA main.journal_mode = WAL")
    conn.execute("PRAGMA main.synchronous = NORMAL")


INDEX_THREADS = 2
"""Worker threads SQLite may use to sort the keys of the indexes rebuilt by a bulk import."""

_INCOMING = "json_each(?) j"
"""The incoming event ids, one JSON array parameter: SQLite parses it in C, faster than binding each id."""


def _id_list(event_ids: Sequence[str] | pd.Series, *, distinct: bool = False) -> str:
    """The ids as a JSON array, each once (``distinct``: they are already)."""
    return json.dumps(frames.id_values(event_ids, distinct=distinct), ensure_ascii=False)


class _Transaction(WriteTransaction):
    """The write primitives of one SQLite transaction of a :class:`GeoPackageStore`."""

    def __init__(self, store: GeoPackageStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn
        self.changed = False
        self.wrote_events = False
        self.cleanup: list[str] = []
        """Temporary folders to remove once the connection is closed."""

    def stored_events(self, event_ids: Sequence[str] | pd.Series) -> pd.DataFrame:
        conn = self._conn
        columns = ["event_id", *frames.CONTENT_COLUMNS, "x", "y"]
        if not len(event_ids) or not conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            return pd.DataFrame(columns=columns, dtype=object)
        select = ", ".join(f"e.{c}" for c in columns)
        rows = conn.execute(f"SELECT {select} FROM {_INCOMING} JOIN events e ON e.event_id = j.value",
                            (_id_list(event_ids),)).fetchall()
        return pd.DataFrame(rows, columns=columns, dtype=object)

    def count_of_import(self, import_id: int) -> int | None:
        found = self._conn.execute("SELECT count(*) FROM events WHERE import_id = ?", (int(import_id),)).fetchone()
        return int(found[0])

    def count_stored(self, event_ids: Sequence[str]) -> int:
        if not len(event_ids):
            return 0
        found = self._conn.execute(f"SELECT count(*) FROM {_INCOMING} JOIN events e ON e.event_id = j.value",
                                   (_id_list(event_ids, distinct=True),)).fetchone()
        return int(found[0])

    def add_import(self, record: ImportRecord) -> int:
        self.changed = True
        cur = self._conn.execute(
            "INSERT INTO imports (imported_at, user, file_name, sha256, rows, accepted, rejected, duplicates, status, "
            "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_now_utc(), record.user, record.file_name, record.sha256, record.rows, record.accepted, record.rejected,
             record.duplicates, record.status, record.message),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def add_events(self, table: pd.DataFrame, *, progress: Callable[[int], None] | None = None) -> None:
        self.wrote_events = True
        if not len(table):
            return
        self.changed = True
        conn = self._conn
        first_fid = (conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() or (0,))[0]
        stored = conn.execute("SELECT count(*) FROM events").fetchone()[0] + len(table)
        bulk = len(table) > RTREE_REBUILD_SHARE * stored
        # Per-row ST_* calls from the insert trigger would cost more than the insert itself.
        gpkg_rtree.drop_insert_trigger(conn)
        if bulk:
            # Keeping the secondary indexes up to date row by row (random key order) costs more
            # than sorting them afresh once; all inside the import's transaction.
            conn.execute("DROP INDEX IF EXISTS events_lean")
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            tree = None
            if bulk and self._store._bulk_rtree() and stored == len(table):
                # The store was empty: its points are the new ones, here already. Their R-tree is
                # packed in numpy on a second thread while SQLite copies the rows and builds the
                # index (both let go of the GIL most of the time).
                every = (np.arange(first_fid + 1, first_fid + 1 + len(table), dtype=np.int64),
                         table["x"].to_numpy(dtype=float), table["y"].to_numpy(dtype=float))
                folder = tempfile.mkdtemp(prefix=".import-rtree-", dir=self._store.path.parent)
                self.cleanup.append(folder)
                # written to a file of its own on that thread, then copied whole into the store
                tree = pool.submit(gpkg_rtree.stage_packed, every, Path(folder) / "rtree.sqlite",
                                   node_size=gpkg_rtree.node_bytes(conn), schema=gpkg_rtree.shadow_schema(conn))
            self._insert(table, first_fid=first_fid, progress=progress)
            if bulk:
                # SQLite sorts a new index's keys on worker threads when allowed to (about half the time).
                conn.execute(f"PRAGMA threads = {INDEX_THREADS}")
                conn.execute(gpkg_schema.LEAN_INDEX)
            if tree is not None:
                gpkg_rtree.copy_staged(conn, tree.result())
            elif bulk and self._store._bulk_rtree():
                gpkg_rtree.pack(conn)
            else:
                gpkg_rtree.insert_rows(conn, after_fid=first_fid)
        gpkg_rtree.create_triggers(conn)
        if stored == len(table):  # the store was empty: the extent is the new events'
            x, y = table["x"].to_numpy(dtype=float), table["y"].to_numpy(dtype=float)
            bounds = (float(x.min()), float(y.min()), float(x.max()), float(y.max()))
        else:  # one pass over the covering index instead of one table scan per bound
            bounds = conn.execute("SELECT min(x), min(y), max(x), max(y) FROM events").fetchone()
        conn.execute(
            "UPDATE gpkg_contents SET last_change = strftime('%Y-%m-%dT%H:%M:%fZ','now'), "
            "min_x = ?, min_y = ?, max_x = ?, max_y = ? WHERE table_name = 'events'",
            bounds,
        )

    def _insert(self, table: pd.DataFrame, *, first_fid: int, progress: Callable[[int], None] | None) -> None:
        """Insert ``table``'s rows into ``events`` (staged when many, else bound row by row), R-tree triggers aside."""
        conn = self._conn
        if gpkg_staging.can_stage(len(table)):
            folder = tempfile.mkdtemp(prefix=".import-", dir=self._store.path.parent)
            self.cleanup.append(folder)
            gpkg_staging.insert_staged(conn, table, first_fid=first_fid, folder=Path(folder))
            if progress:
                progress(len(table))
            return
        names = ["geom", *(name for name, _ in gpkg_schema.EVENT_FIELDS)]
        sql = f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        for start in range(0, len(table), _CHUNK_ROWS):
            part = table.iloc[start : start + _CHUNK_ROWS]
            blobs = point_blobs(part["x"].to_numpy(), part["y"].to_numpy())
            columns = [blobs, *(frames.python_values(part[name]) for name, _ in gpkg_schema.EVENT_FIELDS)]
            conn.executemany(sql, zip(*columns))
            if progress:
                progress(start + len(part))

    def event_places(self) -> pd.DataFrame:
        rows = self._conn.execute("SELECT fid, x, y, canton, region FROM events").fetchall()
        return pd.DataFrame(rows, columns=["key", "x", "y", "canton", "region"], dtype=object)

    def set_places(self, keys: np.ndarray, canton: np.ndarray, region: np.ndarray) -> None:
        self.changed = True
        self._conn.executemany(
            "UPDATE events SET canton = ?, region = ? WHERE fid = ?",
            zip(frames.none_for_na(canton).tolist(), frames.none_for_na(region).tolist(),
                np.asarray(keys, dtype=np.int64).tolist()),
        )

    def audit(self, action: str, *, user: str, detail: dict[str, Any]) -> None:
        self._conn.execute("INSERT INTO audit (at, user, action, detail) VALUES (?, ?, ?, ?)",
                           (_now_utc(), str(user), str(action), frames.audit_detail(detail)))
