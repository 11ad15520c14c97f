"""Tables of the PostGIS event store and their migrations, recorded in a schema version table.

Layout (in the connection's current schema, ``public`` unless the URL sets ``search_path``):

- ``events``: one row per event with the stored columns
  (:data:`~geo_ibm.store.frames.RECORD_COLUMNS`); ``geom`` is ``geometry(Point, 2169)``
  generated from ``x``/``y`` (so the two never disagree) with a GiST index. ``event_id`` is
  unique: a second import of an event can never store it twice.
- ``imports``, ``audit``: attribute tables; ``ground_truth``: the demo layer (written whole);
  ``installed_cantons``: the canton layer installed by ``geo-ibm regions`` (empty: the shipped
  one), kept here so that every process and host assigns the same regions.
- ``web_users``, ``web_tokens``, ``web_sessions``: web accounts; ``throttle_hits``: counters
  per (space, key) of the login throttle; ``audit_tallies``: the audit record counting the
  current window of a tallied (action, key); ``geo_ibm_meta``: the store's identity and
  version counter;
  ``geo_ibm_schema``: one row per migration applied.

:func:`migrate` brings a database from any earlier schema version to :data:`SCHEMA_VERSION`
in one transaction, under an advisory lock so that two processes starting at once do not
both migrate.
"""
from __future__ import annotations

import re

import psycopg
from psycopg import sql

from geo_ibm.errors import StoreError
from geo_ibm.store.gpkg_blobs import SRS_ID

VERSION_TABLE = "geo_ibm_schema"
META_TABLE = "geo_ibm_meta"
GROUND_TRUTH = "ground_truth"

LOCK_CLASS = 0x6962  # first key of this store's advisory locks; the second is the schema's hash
LOCK_INIT = 1
LOCK_EVENTS = 2
LOCK_TALLY = 0x6963  # first key of the tally locks; the second is the hash of (action, key)

EVENT_COLUMNS_SQL: tuple[tuple[str, str], ...] = (
    ("event_id", "text NOT NULL UNIQUE"),
    ("observed_at", "text NOT NULL"),
    ("observed_utc", "bigint NOT NULL"),
    ("quarter", "text NOT NULL"),
    ("location_kind", "text NOT NULL"),
    ("persons", "bigint NOT NULL"),
    ("smugglers", "bigint NOT NULL"),
    ("transport_mode", "text NOT NULL"),
    ("entry_country", "text NOT NULL"),
    ("destination_country", "text"),
    ("nationalities", "text"),
    ("operation_id", "text"),
    ("source_unit", "text"),
    ("notes", "text"),
    ("canton", "text"),
    ("region", "text"),
    ("x", "double precision NOT NULL"),
    ("y", "double precision NOT NULL"),
    ("import_id", "bigint"),
)
"""Columns of ``events`` written by an import, in :data:`~geo_ibm.store.frames.RECORD_COLUMNS` order."""

COPY_TYPES: tuple[str, ...] = tuple(
    "int8" if decl.startswith("bigint") else "float8" if decl.startswith("double") else "text"
    for _name, decl in EVENT_COLUMNS_SQL
)
"""Binary COPY type of each column of :data:`EVENT_COLUMNS_SQL`."""

SECONDARY_INDEXES: dict[str, str] = {
    "events_geom": "CREATE INDEX IF NOT EXISTS events_geom ON events USING gist (geom)",
    "events_observed_utc": "CREATE INDEX IF NOT EXISTS events_observed_utc ON events (observed_utc)",
}
"""Indexes a bulk import may drop and build afresh (the key and ``event_id`` stay)."""

ADDED_IN_V2: tuple[str, ...] = ("destination_country", "nationalities")
"""Event columns of schema version 2 (version 1 must stay what it was: a store of version 1 is migrated)."""

_V1 = f"""
CREATE TABLE {META_TABLE} (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id uuid NOT NULL DEFAULT gen_random_uuid(),
    generation bigint NOT NULL DEFAULT 0,
    stamp text NOT NULL DEFAULT substr(md5(random()::text), 1, 16));
INSERT INTO {META_TABLE} DEFAULT VALUES;
CREATE TABLE imports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    imported_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    "user" text NOT NULL, file_name text NOT NULL, sha256 text, rows bigint NOT NULL,
    accepted bigint NOT NULL, rejected bigint NOT NULL, duplicates bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('ok', 'failed')), message text);
CREATE TABLE audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    "user" text NOT NULL, action text NOT NULL, detail text NOT NULL);
CREATE TABLE events (
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    {", ".join(f"{name} {decl}" for name, decl in EVENT_COLUMNS_SQL if name not in ADDED_IN_V2)},
    geom geometry(Point, {SRS_ID}) GENERATED ALWAYS AS (ST_SetSRID(ST_MakePoint(x, y), {SRS_ID})) STORED);
{";".join(SECONDARY_INDEXES.values())};
COMMENT ON TABLE events IS 'Interception events of geo_ibm: geom follows x and y, written by geo-ibm imports only';
CREATE TABLE web_users (
    name text PRIMARY KEY, role text NOT NULL, password_hash text NOT NULL,
    created timestamptz NOT NULL, updated timestamptz NOT NULL);
CREATE UNIQUE INDEX web_users_name_nocase ON web_users (lower(name));
CREATE TABLE web_tokens (
    token_sha256 text PRIMARY KEY, name text NOT NULL REFERENCES web_users (name) ON DELETE CASCADE,
    created timestamptz NOT NULL);
CREATE INDEX web_tokens_name ON web_tokens (name);
CREATE TABLE web_sessions (
    sid_sha256 text PRIMARY KEY, name text NOT NULL REFERENCES web_users (name) ON DELETE CASCADE,
    created timestamptz NOT NULL, expires timestamptz NOT NULL);
CREATE INDEX web_sessions_name ON web_sessions (name);
CREATE INDEX web_sessions_expires ON web_sessions (expires);
CREATE TABLE throttle_hits (
    space text NOT NULL, key text NOT NULL, count bigint NOT NULL, last double precision NOT NULL,
    PRIMARY KEY (space, key));
CREATE INDEX throttle_hits_last ON throttle_hits (space, last);
CREATE TABLE installed_cantons (
    canton text PRIMARY KEY, region text NOT NULL, geom geometry(MultiPolygon, {SRS_ID}) NOT NULL);
CREATE TABLE audit_tallies (
    action text NOT NULL, key text NOT NULL, audit_id bigint NOT NULL, opened double precision NOT NULL,
    PRIMARY KEY (action, key))
"""

MIGRATIONS: dict[int, tuple[str, str]] = {
    1: ("events, imports, audit, installed cantons, web accounts, throttle counters, audit tallies, meta", _V1),
    2: ("events: destination_country and nationalities", ";".join(
        f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {name} text" for name in ADDED_IN_V2)),
    3: ("operations: saved plans of national operations", """
CREATE TABLE operations (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL,
    "user" text NOT NULL, start_date text NOT NULL, end_date text NOT NULL, body text NOT NULL);
CREATE UNIQUE INDEX operations_name_nocase ON operations (lower(name))"""),
}
"""Schema version -> (what it brings, its SQL). A new version appends here; none is ever edited."""

SCHEMA_VERSION = max(MIGRATIONS)


WRITTEN_TABLES = ("events", "imports", "audit", "web_users", "web_tokens", "web_sessions", "throttle_hits",
                  "audit_tallies", "installed_cantons", META_TABLE)
"""Tables the web app and the importers write (rows only: no DDL)."""

READ_TABLES = ("events", "imports", "installed_cantons", GROUND_TRUTH)
"""Tables a read-only role (a GIS client) sees: no accounts, sessions, counters or audit trail."""


def grant_statements(role: str, *, read_only: bool = False, schema: str = "public") -> list[str]:
    """SQL giving ``role`` the rights it needs on a store the owner created (run by the owner).

    Parameters
    ----------
    role
        An existing login role, e.g. ``geo_ibm_web`` for the app processes and importers
        (rows of every store table, nothing else: no DDL, no other schema) or
        ``geo_ibm_reader`` with ``read_only`` for QGIS (:data:`READ_TABLES` only).
    schema
        The schema holding the store.

    The ground truth is replaced whole (``DROP``/``CREATE``), which only the owner may do:
    run ``geo-ibm demo`` as the owner. Whoever may read the events may read the new table.
    """
    for name, value in (("role", role), ("schema", schema)):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
            raise ValueError(f"{name} must be a lowercase SQL name, got {value!r}")
    out = [f"GRANT USAGE ON SCHEMA {schema} TO {role}"]
    if read_only:
        out += [f"GRANT SELECT ON {schema}.{t} TO {role}" for t in READ_TABLES if t != GROUND_TRUTH]
        out.append(f"GRANT SELECT ON {schema}.spatial_ref_sys TO {role}")
    else:
        out.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(f'{schema}.{t}' for t in WRITTEN_TABLES)} "
                   f"TO {role}")
        out.append(f"GRANT SELECT ON {schema}.{VERSION_TABLE} TO {role}")
    return out


def grant_like_events(conn: psycopg.Connection, table: str) -> None:
    """Let every role that may read ``events`` read ``table`` too (a table created anew loses its grants)."""
    rows = conn.execute(
        "SELECT DISTINCT grantee FROM information_schema.role_table_grants WHERE table_name = 'events' "
        "AND table_schema = current_schema() AND privilege_type = 'SELECT' AND grantee <> current_user"
    ).fetchall()
    for (grantee,) in rows:
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), sql.Identifier(grantee)))


def owns(conn: psycopg.Connection, table: str) -> bool:
    """Whether the current role owns ``table`` (and so may drop and build its indexes)."""
    row = conn.execute("SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)",
                       (table,)).fetchone()
    return bool(row and row[0])


def lock_key(conn: psycopg.Connection, which: int) -> None:
    """Take the transaction-scoped advisory lock ``which`` of this schema (waits for its holder)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s::int, hashtext(current_schema()) # %s::int)", (LOCK_CLASS, which))


def schema_version(conn: psycopg.Connection) -> int | None:
    """The schema version of the store in ``conn``'s current schema; ``None`` if there is none."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,)).fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def ensure_postgis(conn: psycopg.Connection, where: str) -> None:
    """Create the PostGIS extension if the database lacks it (needs rights a DBA may keep to itself)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.errors.InsufficientPrivilege:
        raise StoreError(f"{where}: the database has no PostGIS and this role may not add it; ask the database "
                         "administrator to run CREATE EXTENSION postgis in it") from None


def migrate(conn: psycopg.Connection, where: str) -> int:
    """Bring the store to :data:`SCHEMA_VERSION` (one transaction); returns the version found before (0: none).

    Raises
    ------
    StoreError
        If the store was made by a newer geo_ibm, or the role may not create tables.
    """
    ensure_postgis(conn, where)
    with conn.transaction():
        lock_key(conn, LOCK_INIT)
        found = schema_version(conn)
        if found is None:
            if (conn.execute("SELECT to_regclass('events') IS NOT NULL").fetchone() or (False,))[0]:
                raise StoreError(f"{where} has an 'events' table that is not a geo_ibm store; choose another "
                                 "database or schema")
            conn.execute(f"CREATE TABLE {VERSION_TABLE} (version integer PRIMARY KEY, "
                         "applied_at timestamptz NOT NULL DEFAULT now(), description text NOT NULL)")
            found = 0
        if found > SCHEMA_VERSION:
            raise StoreError(f"{where} has schema version {found}, newer than this geo_ibm knows "
                             f"({SCHEMA_VERSION}); upgrade geo_ibm")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            description, script = MIGRATIONS[version]
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise StoreError(f"{where}: this role may not create the store's tables ({exc.diag.message_primary}); "
                                 "run 'geo-ibm init' once as the role owning the schema") from None
            conn.execute(f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (%s, %s)", (version, description))
    return found


def bump_version(conn: psycopg.Connection) -> None:
    """Move the version inside the caller's transaction: the counter and a fresh random stamp.

    The stamp keeps the version new even when a database restored from a dump reaches the
    same count again.
    """
    conn.execute(f"UPDATE {META_TABLE} SET generation = generation + 1, stamp = substr(md5(random()::text), 1, 16)")
