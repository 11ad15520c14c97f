"""The PostGIS event store: the store's tables in a PostgreSQL database (layout in :mod:`~geo_ibm.store.postgis_schema`).

Several processes and hosts share one store. Every write is one PostgreSQL transaction, so an
import is stored whole or not at all, also when its process is killed mid-COPY. Writes that
touch the events (imports, region re-assignment) take one advisory lock of the store first:
two importers of the same file run one after the other and the second finds every event
stored (the unique ``event_id`` is the backstop). Readers never wait for an import, except
while a large first load rebuilds the secondary indexes (see :data:`BULK_MIN_ROWS`).

Connections come from one pool per process and URL (psycopg_pool).
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from geo_ibm import io
from geo_ibm.errors import StoreError
from geo_ibm.store import frames
from geo_ibm.store import postgis_accounts as sql_accounts
from geo_ibm.store import postgis_layers as layers
from geo_ibm.store import postgis_schema as schema
from geo_ibm.store.base import Account, AssignRegions, EventStore, HitKey, Hits, WriteTransaction
from geo_ibm.store.filters import POSTGRESQL, BBox, EventFilter, Paging, box_clauses, paging_sql, parse_paging, where_sql
from geo_ibm.store.gpkg_blobs import SRS_ID
from geo_ibm.store.imports import ImportRecord
from geo_ibm.store.postgis_copy import copy_in, read_floats

DEFAULT_POOL_SIZE = 10
"""Most connections one process keeps to one store unless ``GEO_IBM_PG_POOL`` says otherwise."""

LOCK_TIMEOUT_S = 600
"""How long a write waits for a running import before it gives up."""

BULK_MIN_ROWS = 50_000
"""An import of at least this many new events that more than doubles the table drops the GiST
and time indexes and builds them afresh after the COPY (3x faster than updating them row by
row); readers wait for that import's commit meanwhile."""

_CHUNK_ROWS = 50_000
_POOLS: dict[tuple[int, str], ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()
_CANTONS: dict[tuple[int, str], tuple[str, gpd.GeoDataFrame | None]] = {}


def public_url(url: str) -> str:
    """``url`` without its password (in the address or as a ``password=`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _at, hosts = netloc.rpartition("@")
        netloc = f"{credentials.partition(':')[0]}@{hosts}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def pool_size() -> int:
    """Most connections per process and store: ``GEO_IBM_PG_POOL`` (read when a pool opens), default 10, at least 2."""
    raw = os.environ.get("GEO_IBM_PG_POOL") or str(DEFAULT_POOL_SIZE)
    try:
        return max(2, int(raw))
    except ValueError:
        raise StoreError(f"GEO_IBM_PG_POOL must be a whole number of connections, got {raw!r}") from None


def _conninfo(url: str) -> str:
    # libpq reads postgresql:// URLs itself; postgres:// is its other spelling.
    return "postgresql://" + url.split("://", 1)[1]


def _close_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close(timeout=2)


atexit.register(_close_pools)


class PostGISStore(EventStore):
    """Event store in a PostgreSQL database with PostGIS.

    Parameters
    ----------
    url
        ``postgresql://user[:password]@host[:port]/database[?param=value...]`` (libpq's URL;
        ``postgres://`` too). The password may also come from ``~/.pgpass`` or ``PGPASSWORD``;
        ``?options=-csearch_path%3Dname`` keeps the store in schema ``name``.
    outline, assign_regions
        See :class:`~geo_ibm.store.base.EventStore`.
    """

    def __init__(self, url: str, *, outline: Any = None, assign_regions: AssignRegions | bool | None = None,
                 serving: bool = False) -> None:
        super().__init__(outline=outline, assign_regions=assign_regions, serving=serving)
        if not re.match(r"^postgres(ql)?://", str(url), flags=re.IGNORECASE):
            raise StoreError(f"a PostGIS store needs a postgresql:// URL, got {public_url(str(url))!r}")
        self._conninfo = _conninfo(str(url))
        self._location = public_url(self._conninfo)
        self._current = False
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"PostGISStore({self._location!r})"

    @property
    def location(self) -> str:
        return self._location

    # -- connections ------------------------------------------------------------------------

    def _pool(self) -> ConnectionPool:
        key = (os.getpid(), self._conninfo)
        with _POOLS_LOCK:
            pool = _POOLS.get(key)
            if pool is not None and not pool.closed:
                return pool
            # One direct connection first: a wrong URL fails at once with libpq's reason
            # instead of after the pool's wait.
            try:
                psycopg.connect(self._conninfo, connect_timeout=10).close()
            except psycopg.OperationalError as exc:
                raise StoreError(f"cannot connect to the store {self._location}: {_reason(exc)}") from None
            pool = ConnectionPool(self._conninfo, min_size=0, max_size=pool_size(), open=True, num_workers=1,
                                  kwargs={"autocommit": True, "application_name": "geo_ibm"}, max_idle=120,
                                  check=ConnectionPool.check_connection, name=f"geo_ibm {self._location}")
            _POOLS[key] = pool
            return pool

    def close(self) -> None:
        """Close this process's connections to the store (the next use opens new ones)."""
        with _POOLS_LOCK:
            pool = _POOLS.pop((os.getpid(), self._conninfo), None)
        if pool is not None:
            pool.close(timeout=5)

    @contextlib.contextmanager
    def _raw(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit) without the store checks."""
        try:
            with self._pool().connection(timeout=60) as conn:
                yield conn
        except PoolTimeout:
            raise StoreError(f"{self._location}: no free database connection within 60 s "
                             f"(GEO_IBM_PG_POOL={pool_size()} per process)") from None
        except psycopg.OperationalError as exc:
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                raise StoreError(f"{self._location}: cannot start a write within {LOCK_TIMEOUT_S} s; another import "
                                 "may be running") from None
            raise StoreError(f"{self._location}: {_reason(exc)}") from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A connection to an initialised, current store (an older one is migrated first)."""
        with self._raw() as conn:
            if not self._current:
                found = schema.schema_version(conn)
                if found is None:
                    raise StoreError(f"no event store at {self._location}; run 'geo-ibm init' first")
                if found != schema.SCHEMA_VERSION:
                    self.init()
                self._current = True
            yield conn

    @contextlib.contextmanager
    def _changing(self) -> Iterator[psycopg.Connection]:
        """A write transaction that moves the version at commit."""
        with self._connection() as conn, conn.transaction():
            yield conn
            schema.bump_version(conn)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[psycopg.Connection]:
        with self._connection() as conn, conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _write_transaction(self, *, new_rows: int = 0) -> Iterator[WriteTransaction]:
        with self._connection() as conn, conn.transaction():
            tx = _Transaction(conn)
            self._local.conn = conn  # for a before_commit hook of this thread (install_cantons)
            try:
                yield tx
                if tx.changed:
                    schema.bump_version(conn)
            finally:
                self._local.conn = None

    # -- creation and version ---------------------------------------------------------------

    def exists(self) -> bool:
        try:
            with self._raw() as conn:
                return schema.schema_version(conn) is not None
        except StoreError as exc:
            if re.search(r'database ".*" does not exist', str(exc)):
                return False
            raise

    def init(self) -> None:
        """Create the store's tables in the database, or migrate an older store; keeps all data.

        The database must exist (``createdb``) and have PostGIS, or the role must be allowed to
        add it. A current store is left alone without any write.

        Raises
        ------
        StoreError
            If the database is unreachable or missing, has foreign tables of the same names,
            or the role lacks the rights (the message says which).
        """
        with self._raw() as conn:
            if schema.schema_version(conn) != schema.SCHEMA_VERSION:
                schema.migrate(conn, self._location)
        self._current = True

    def version(self) -> str:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT (SELECT system_identifier FROM pg_control_system()), current_database(), current_schema(), "
                f"store_id, generation, stamp FROM {schema.META_TABLE}"
            ).fetchone()
        if row is None:
            raise StoreError(f"{self._location}: the store's version row is missing; run 'geo-ibm init'")
        system, database, where, store_id, generation, stamp = row
        # The server, database and schema are part of the identity (a restored dump is another
        # store), hashed so that the version shows none of them.
        identity = hashlib.sha256(f"{system}\0{database}\0{where}\0{store_id}".encode()).hexdigest()[:16]
        return f"pg-{identity}-{generation}-{stamp}"

    # -- queries ----------------------------------------------------------------------------

    @staticmethod
    def _spatial(box: BBox) -> tuple[list[str], list[Any]]:
        clauses, params = box_clauses(box, POSTGRESQL)
        # The GiST index finds the candidates; the exact test on x/y keeps the bounds included.
        return [f"geom && ST_MakeEnvelope(%s, %s, %s, %s, {SRS_ID})", *clauses], [*box, *params]

    def _where(self, flt: EventFilter) -> tuple[str, list[Any]]:
        return where_sql(flt, dialect=POSTGRESQL, spatial=self._spatial)

    def _stored_names(self, column: str) -> list[str]:
        if column not in ("region", "canton"):
            raise ValueError(f"no stored names for column {column!r}")
        with self._connection() as conn:
            return [r[0] for r in conn.execute(f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL")]

    def _select_events(self, flt: EventFilter, *, paging: Paging, columns: list[str] | None) -> gpd.GeoDataFrame:
        page = paging_sql(paging, POSTGRESQL)
        where, params = self._where(flt)
        with self._connection() as conn:
            if columns is not None:
                numeric, text = frames.lean_layout(columns)
                order = " ORDER BY observed_utc, fid" if page else ""
                if not text:
                    values = read_floats(conn, ["fid", "x", "y", *numeric], f"events{where}", params,
                                         order=("observed_utc", "fid") if page else (), page=page)
                    return frames.lean_frame(values, columns, ordered=bool(page))
                select = ", ".join(["fid", "x", "y", *numeric, *text])
                rows = conn.execute(f"SELECT {select} FROM events{where}{order}{page}", params).fetchall()
                return frames.lean_frame(rows, columns, ordered=bool(page))
            select = ", ".join(frames.EVENT_SELECT)
            found = conn.execute(f"SELECT {select} FROM events{where} ORDER BY observed_utc, fid{page}", params).fetchall()
        return frames.events_frame(found)

    def _select_points(self, flt: EventFilter) -> np.ndarray:
        where, params = self._where(flt)
        with self._connection() as conn:
            return read_floats(conn, ["x", "y"], f"events{where}", params)

    def _select_counts(self, flt: EventFilter, keys: list[str]) -> pd.DataFrame:
        group = ", ".join(keys)
        # Code point order with missing names first, as the other backends sort, whatever the
        # database's collation.
        order = ", ".join(f'{k} COLLATE "C" NULLS FIRST' for k in keys)
        where, params = self._where(flt)
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {group}, count(*), coalesce(sum(persons), 0)::bigint FROM events{where} "
                f"GROUP BY {group} ORDER BY {order}",
                params,
            ).fetchall()
        return frames.counts_frame(rows, keys)

    def _select_count(self, flt: EventFilter) -> int:
        where, params = self._where(flt)
        with self._connection() as conn:
            row = conn.execute(f"SELECT count(*) FROM events{where}", params).fetchone()
        return int(row[0]) if row else 0

    def summary(self) -> dict[str, Any]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for every count
            layers = [r[0] for r in conn.execute(
                "SELECT t FROM unnest(ARRAY['audit', 'events', 'ground_truth', 'imports']) AS t "
                "WHERE to_regclass(t) IS NOT NULL ORDER BY t")]
            n, persons, first, last = conn.execute(  # type: ignore[misc]
                "SELECT count(*), coalesce(sum(persons), 0), min(observed_utc), max(observed_utc) FROM events"
            ).fetchone()
            imports = _scalar(conn, "SELECT count(*) FROM imports WHERE status = 'ok'")
            audit = _scalar(conn, "SELECT count(*) FROM audit")
            truth = _scalar(conn, f"SELECT count(*) FROM {schema.GROUND_TRUTH}") if schema.GROUND_TRUTH in layers else 0
        return {
            "path": self._location,
            "layers": ", ".join(layers),
            "events": int(n),
            "persons": int(persons),
            "first_event": frames.iso_local(first),
            "last_event": frames.iso_local(last),
            "imports": imports,
            "ground_truth": truth,
            "audit_records": audit,
        }

    def audit_log(self, *, limit: int = 200) -> pd.DataFrame:
        page = paging_sql(parse_paging(limit, 0), POSTGRESQL)
        with self._connection() as conn:
            rows = conn.execute(f'SELECT id, at, "user", action, detail FROM audit ORDER BY id DESC{page}').fetchall()
        return frames.audit_frame(rows)

    def imports(self) -> pd.DataFrame:
        select = ", ".join('"user"' if c == "user" else c for c in frames.IMPORT_COLUMNS)
        with self._connection() as conn:
            rows = conn.execute(f"SELECT {select} FROM imports ORDER BY id DESC").fetchall()
        return frames.imports_frame(rows)

    # -- ground truth and the installed canton layer ------------------------------------------

    def write_ground_truth(self, gdf: gpd.GeoDataFrame) -> None:
        self.init()
        table, declared = layers.ground_truth_rows(gdf)
        with self._changing() as conn:
            layers.replace_ground_truth(conn, table, declared)

    def ground_truth(self) -> gpd.GeoDataFrame:
        with self._connection() as conn:
            return layers.read_ground_truth(conn)

    def installed_cantons(self) -> gpd.GeoDataFrame | None:
        """The canton layer installed in the store (``canton``, ``region``, ``geometry``), or ``None``.

        Read again only when the store's version moved (an install moves it).
        """
        with self._raw() as conn:
            if schema.schema_version(conn) is None:
                return None
        version = self.version()
        key = (os.getpid(), self._conninfo)
        cached = _CANTONS.get(key)
        if cached is None or cached[0] != version:
            with self._connection() as conn:
                cached = _CANTONS[key] = (version, layers.read_cantons(conn))
        return None if cached[1] is None else cached[1].copy()

    def install_cantons(self, layer: gpd.GeoDataFrame, *, assign: AssignRegions) -> int:
        """Make ``layer`` (``canton``, ``region``, polygons) the installed canton layer and give every
        event the canton and region ``assign`` finds, in one transaction.

        Returns
        -------
        int
            The number of events whose canton or region changed.
        """
        layer = io.ensure_working_crs(layer, name="cantons")
        return self.reassign_regions(assign=assign, before_commit=lambda: layers.replace_cantons(self._local.conn, layer))

    # -- saved operations --------------------------------------------------------------------

    def add_operation(self, name: str, body: str, *, user: str, created: datetime.datetime, start_date: str,
                      end_date: str) -> bool:
        with self._changing() as conn:
            cur = conn.execute(
                'INSERT INTO operations (name, created, "user", start_date, end_date, body) '
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (name, created, user, start_date, end_date, body),
            )
            return cur.rowcount == 1

    def operations(self) -> pd.DataFrame:
        select = ", ".join('"user"' if c == "user" else c for c in frames.OPERATION_COLUMNS)
        with self._connection() as conn:
            rows = conn.execute(f"SELECT {select} FROM operations ORDER BY id DESC").fetchall()
        return frames.operations_frame(rows)

    def operation(self, name: str) -> tuple[dict[str, Any], str] | None:
        select = ", ".join('"user"' if c == "user" else c for c in frames.OPERATION_COLUMNS)
        with self._connection() as conn:
            row = conn.execute(f"SELECT {select}, body FROM operations WHERE lower(name) = lower(%s)",
                               (name,)).fetchone()
        return None if row is None else frames.operation_record(row)

    # -- web accounts, tokens, sessions ------------------------------------------------------

    def add_account(self, name: str, role: str, password_hash: str, *, created: datetime.datetime) -> bool:
        with self._changing() as conn:
            return sql_accounts.add_account(conn, name, role, password_hash, created)

    def account(self, name: str) -> Account | None:
        with self._connection() as conn:
            return sql_accounts.account(conn, name)

    def list_accounts(self) -> list[Account]:
        with self._connection() as conn:
            return sql_accounts.list_accounts(conn)

    def update_account(
        self, name: str, *, updated: datetime.datetime, role: str | None = None, password_hash: str | None = None,
        end_sessions: bool = False,
    ) -> bool:
        with self._changing() as conn:
            return sql_accounts.update_account(conn, name, updated=updated, role=role, password_hash=password_hash,
                                               end_sessions=end_sessions)

    def delete_account(self, name: str) -> bool:
        with self._changing() as conn:
            return sql_accounts.delete_account(conn, name)

    def add_token(self, name: str, token_sha256: str, *, created: datetime.datetime) -> str | None:
        with self._changing() as conn:
            return sql_accounts.add_token(conn, name, token_sha256, created)

    def token_owner(self, token_sha256: str) -> str | None:
        with self._connection() as conn:
            return sql_accounts.token_owner(conn, token_sha256)

    def delete_tokens(self, name: str) -> int:
        with self._changing() as conn:
            return sql_accounts.delete_tokens(conn, name)

    def add_session(self, name: str, sid_sha256: str, *, created: datetime.datetime,
                    expires: datetime.datetime) -> str | None:
        with self._writing() as conn:
            return sql_accounts.add_session(conn, name, sid_sha256, created, expires)

    def session_account(self, sid_sha256: str, *, now: datetime.datetime) -> Account | None:
        with self._connection() as conn:
            return sql_accounts.session_account(conn, sid_sha256, now)

    def delete_session(self, sid_sha256: str) -> bool:
        with self._writing() as conn:
            return sql_accounts.delete_session(conn, sid_sha256)

    def delete_sessions(self, name: str) -> int:
        with self._writing() as conn:
            return sql_accounts.delete_sessions(conn, name)

    # -- counters and audit tallies ---------------------------------------------------------

    def hits(self, keys: Sequence[HitKey], *, since: float) -> dict[HitKey, Hits]:
        with self._connection() as conn:
            return sql_accounts.hits(conn, keys, since)

    def add_hits(self, keys: Sequence[HitKey], at: float, *, since: float, max_keys: int) -> dict[HitKey, Hits]:
        with self._writing() as conn:
            return sql_accounts.add_hits(conn, keys, at, since=since, max_keys=max_keys)

    def clear_hits(self, keys: Sequence[HitKey]) -> None:
        with self._writing() as conn:
            sql_accounts.clear_hits(conn, keys)

    def hit_keys(self, space: str, *, since: float) -> int:
        with self._connection() as conn:
            return sql_accounts.hit_keys(conn, space, since)

    def audit_tally(self, action: str, *, user: str, key: str, detail: dict[str, Any], at: float,
                    since: float, count: int = 1) -> int:
        with self._writing() as conn:
            return sql_accounts.audit_tally(conn, action, user=user, key=key, detail=detail, at=at, since=since,
                                            count=count)


def _reason(exc: psycopg.Error) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _scalar(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class _Transaction(WriteTransaction):
    """The write primitives of one PostgreSQL transaction of a :class:`PostGISStore`."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        self._locked = False
        self.changed = False

    def _lock_events(self) -> None:
        """Wait for any other write of events (imports, re-assignment), then hold them off until commit."""
        if self._locked:
            return
        self._conn.execute(f"SET LOCAL lock_timeout = '{int(LOCK_TIMEOUT_S)}s'")
        schema.lock_key(self._conn, schema.LOCK_EVENTS)
        self._conn.execute("SET LOCAL lock_timeout = 0")
        self._locked = True

    def stored_events(self, event_ids: Sequence[str] | pd.Series) -> pd.DataFrame:
        self._lock_events()
        columns = ["event_id", *frames.CONTENT_COLUMNS, "x", "y"]
        if not len(event_ids) or not self._conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            return pd.DataFrame(columns=columns, dtype=object)
        rows = self._conn.execute(
            f"SELECT {', '.join('e.' + c for c in columns)} FROM events e "
            "JOIN unnest(%s::text[]) AS i(event_id) ON e.event_id = i.event_id",
            (frames.id_values(event_ids),),
        ).fetchall()
        return pd.DataFrame(rows, columns=columns, dtype=object)

    def count_of_import(self, import_id: int) -> int | None:
        self._lock_events()
        return _scalar(self._conn, f"SELECT count(*) FROM events WHERE import_id = {int(import_id)}")

    def count_stored(self, event_ids: Sequence[str]) -> int:
        self._lock_events()
        ids = frames.id_values(event_ids)
        if not ids:
            return 0
        row = self._conn.execute(
            "SELECT count(*) FROM events e JOIN unnest(%s::text[]) AS i(event_id) ON e.event_id = i.event_id", (ids,)
        ).fetchone()
        return int(row[0]) if row else 0

    def add_import(self, record: ImportRecord) -> int:
        self.changed = True
        row = self._conn.execute(
            'INSERT INTO imports ("user", file_name, sha256, rows, accepted, rejected, duplicates, status, message) '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (record.user, record.file_name, record.sha256, record.rows, record.accepted, record.rejected,
             record.duplicates, record.status, record.message),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def add_events(self, table: pd.DataFrame, *, progress: Callable[[int], None] | None = None) -> None:
        if not len(table):
            return
        self._lock_events()
        self.changed = True
        conn = self._conn
        stored = _scalar(conn, "SELECT count(*) FROM events")
        # Only the owner may drop indexes; a role with row rights alone adds the rows to them.
        bulk = len(table) >= BULK_MIN_ROWS and len(table) > stored and schema.owns(conn, "events")
        if bulk:
            for name in schema.SECONDARY_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        names = [name for name, _decl in schema.EVENT_COLUMNS_SQL]
        copy_in(conn, "events", names, schema.COPY_TYPES, table, chunk_rows=_CHUNK_ROWS, progress=progress)
        if bulk:
            for statement in schema.SECONDARY_INDEXES.values():
                conn.execute(statement)
            conn.execute("ANALYZE events")

    def event_places(self) -> pd.DataFrame:
        self._lock_events()
        rows = self._conn.execute("SELECT fid, x, y, canton, region FROM events").fetchall()
        return pd.DataFrame(rows, columns=["key", "x", "y", "canton", "region"], dtype=object)

    def set_places(self, keys: np.ndarray, canton: np.ndarray, region: np.ndarray) -> None:
        self._lock_events()
        self.changed = True
        if not len(keys):
            return
        conn = self._conn
        conn.execute("CREATE TEMP TABLE places (fid bigint PRIMARY KEY, canton text, region text) ON COMMIT DROP")
        places = pd.DataFrame({"fid": np.asarray(keys, dtype=np.int64), "canton": frames.none_for_na(canton),
                               "region": frames.none_for_na(region)})
        copy_in(conn, "places", ["fid", "canton", "region"], ["int8", "text", "text"], places)
        conn.execute("UPDATE events e SET canton = p.canton, region = p.region FROM places p WHERE e.fid = p.fid")

    def audit(self, action: str, *, user: str, detail: dict[str, Any]) -> None:
        self._conn.execute('INSERT INTO audit ("user", action, detail) VALUES (%s, %s, %s)',
                           (str(user), str(action), frames.audit_detail(detail)))
