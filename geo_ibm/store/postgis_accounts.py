"""SQL of the web account, API token, login session, counter and audit tally tables of the PostGIS store.

Each function runs on a connection inside a transaction the store opens. Names compare
without letter case through the unique index on ``lower(name)`` (account names are ASCII);
account times are ``timestamptz``, counter times epoch seconds (``double precision``).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import psycopg

from geo_ibm.store.base import Account, HitKey, Hits
from geo_ibm.store.frames import audit_detail
from geo_ibm.store.postgis_schema import LOCK_TALLY

_ACCOUNT = "u.name, u.role, u.password_hash, u.created"


def _account(row: tuple[Any, ...]) -> Account:
    name, role, password_hash, created, *rest = row
    return Account(name=name, role=role, password_hash=password_hash, created=created.astimezone(timezone.utc),
                   tokens=int(rest[0]) if rest else 0)


def _owner(conn: psycopg.Connection, name: str, *, lock: bool = False) -> str | None:
    # FOR SHARE keeps the account from going away before the token or session row refers to it.
    row = conn.execute(f"SELECT name FROM web_users WHERE lower(name) = lower(%s){' FOR SHARE' if lock else ''}",
                       (name,)).fetchone()
    return None if row is None else str(row[0])


def add_account(conn: psycopg.Connection, name: str, role: str, password_hash: str, created: datetime) -> bool:
    cur = conn.execute(
        "INSERT INTO web_users (name, role, password_hash, created, updated) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (name, role, password_hash, created, created),
    )
    return cur.rowcount == 1


def account(conn: psycopg.Connection, name: str) -> Account | None:
    row = conn.execute(f"SELECT {_ACCOUNT} FROM web_users u WHERE lower(u.name) = lower(%s)", (name,)).fetchone()
    return None if row is None else _account(row)


def list_accounts(conn: psycopg.Connection) -> list[Account]:
    rows = conn.execute(
        f"SELECT {_ACCOUNT}, (SELECT count(*) FROM web_tokens t WHERE t.name = u.name) FROM web_users u "
        'ORDER BY lower(u.name) COLLATE "C"'
    ).fetchall()
    return [_account(r) for r in rows]


def update_account(conn: psycopg.Connection, name: str, *, updated: datetime, role: str | None,
                   password_hash: str | None, end_sessions: bool) -> bool:
    changes = {k: v for k, v in (("role", role), ("password_hash", password_hash)) if v is not None}
    sets = "".join(f"{column} = %s, " for column in changes)
    row = conn.execute(f"UPDATE web_users SET {sets}updated = %s WHERE lower(name) = lower(%s) RETURNING name",
                       (*changes.values(), updated, name)).fetchone()
    if row is None:
        return False
    if end_sessions:
        conn.execute("DELETE FROM web_sessions WHERE name = %s", (row[0],))
    return True


def delete_account(conn: psycopg.Connection, name: str) -> bool:
    # Tokens and sessions go with the account (ON DELETE CASCADE).
    return conn.execute("DELETE FROM web_users WHERE lower(name) = lower(%s)", (name,)).rowcount > 0


def add_token(conn: psycopg.Connection, name: str, token_sha256: str, created: datetime) -> str | None:
    owner = _owner(conn, name, lock=True)
    if owner is not None:
        conn.execute("INSERT INTO web_tokens (token_sha256, name, created) VALUES (%s, %s, %s)",
                     (token_sha256, owner, created))
    return owner


def token_owner(conn: psycopg.Connection, token_sha256: str) -> str | None:
    row = conn.execute("SELECT name FROM web_tokens WHERE token_sha256 = %s", (token_sha256,)).fetchone()
    return None if row is None else str(row[0])


def delete_tokens(conn: psycopg.Connection, name: str) -> int:
    return int(conn.execute("DELETE FROM web_tokens WHERE lower(name) = lower(%s)", (name,)).rowcount)


def add_session(conn: psycopg.Connection, name: str, sid_sha256: str, created: datetime,
                expires: datetime) -> str | None:
    conn.execute("DELETE FROM web_sessions WHERE expires <= %s", (created,))
    owner = _owner(conn, name, lock=True)
    if owner is not None:
        conn.execute("INSERT INTO web_sessions (sid_sha256, name, created, expires) VALUES (%s, %s, %s, %s)",
                     (sid_sha256, owner, created, expires))
    return owner


def session_account(conn: psycopg.Connection, sid_sha256: str, now: datetime) -> Account | None:
    row = conn.execute(
        f"SELECT {_ACCOUNT} FROM web_sessions s JOIN web_users u ON u.name = s.name "
        "WHERE s.sid_sha256 = %s AND s.expires > %s",
        (sid_sha256, now),
    ).fetchone()
    return None if row is None else _account(row)


def delete_session(conn: psycopg.Connection, sid_sha256: str) -> bool:
    return conn.execute("DELETE FROM web_sessions WHERE sid_sha256 = %s", (sid_sha256,)).rowcount > 0


def delete_sessions(conn: psycopg.Connection, name: str) -> int:
    return int(conn.execute("DELETE FROM web_sessions WHERE lower(name) = lower(%s)", (name,)).rowcount)


# --- counters and audit tallies --------------------------------------------------------------


def hits(conn: psycopg.Connection, keys: Sequence[HitKey], since: float) -> dict[HitKey, Hits]:
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT h.space, h.key, h.count, h.last FROM throttle_hits h "
        "JOIN unnest(%s::text[], %s::text[]) AS k(space, key) ON h.space = k.space AND h.key = k.key "
        "WHERE h.last > %s",
        ([s for s, _k in wanted], [k for _s, k in wanted], since),
    ).fetchall()
    return {(space, key): Hits(int(count), float(last)) for space, key, count, last in rows}


def add_hits(conn: psycopg.Connection, keys: Sequence[HitKey], at: float, *, since: float,
             max_keys: int) -> dict[HitKey, Hits]:
    counted: dict[HitKey, Hits] = {}
    # Keys in one order in every process: two transactions never wait for each other's rows crosswise.
    for space, key in sorted(dict.fromkeys(keys)):
        row = conn.execute(
            "INSERT INTO throttle_hits AS h (space, key, count, last) VALUES (%s, %s, 1, %s) "
            "ON CONFLICT (space, key) DO UPDATE SET count = CASE WHEN h.last <= %s THEN 1 ELSE h.count + 1 END, "
            "last = greatest(h.last, excluded.last) RETURNING count, last",
            (space, key, at, since),
        ).fetchone()
        assert row is not None
        counted[(space, key)] = Hits(int(row[0]), float(row[1]))
    for space in sorted({space for space, _key in counted}):
        conn.execute("DELETE FROM throttle_hits WHERE space = %s AND last <= %s", (space, since))
        row = conn.execute("SELECT count(*) FROM throttle_hits WHERE space = %s", (space,)).fetchone()
        excess = (int(row[0]) if row else 0) - max_keys
        if excess > 0:
            conn.execute(
                "DELETE FROM throttle_hits WHERE (space, key) IN "
                "(SELECT space, key FROM throttle_hits WHERE space = %s ORDER BY last, key LIMIT %s)",
                (space, excess),
            )
    return {k: counted[k] for k in dict.fromkeys(keys)}


def clear_hits(conn: psycopg.Connection, keys: Sequence[HitKey]) -> None:
    wanted = list(dict.fromkeys(keys))
    if wanted:
        conn.execute(
            "DELETE FROM throttle_hits h USING unnest(%s::text[], %s::text[]) AS k(space, key) "
            "WHERE h.space = k.space AND h.key = k.key",
            ([s for s, _k in wanted], [k for _s, k in wanted]),
        )


def hit_keys(conn: psycopg.Connection, space: str, since: float) -> int:
    row = conn.execute("SELECT count(*) FROM throttle_hits WHERE space = %s AND last > %s", (space, since)).fetchone()
    return int(row[0]) if row else 0


def _audit_now() -> str:
    # The text of the GeoPackage store's audit times (hundredths of a second, "Z").
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


def audit_tally(conn: psycopg.Connection, action: str, *, user: str, key: str, detail: dict[str, Any], at: float,
                since: float, count: int = 1) -> int:
    # One tally of (action, key) at a time, so that two processes never open two records for it.
    conn.execute("SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))", (LOCK_TALLY, f"{action}\n{key}"))
    now = _audit_now()
    conn.execute("DELETE FROM audit_tallies WHERE action = %s AND opened <= %s", (action, since))
    row = conn.execute("SELECT audit_id FROM audit_tallies WHERE action = %s AND key = %s", (action, key)).fetchone()
    if row is not None:
        updated = conn.execute(
            "UPDATE audit SET detail = jsonb_set(jsonb_set(detail::jsonb, '{count}', "
            "to_jsonb(coalesce((detail::jsonb ->> 'count')::bigint, 0) + %s)), '{last}', to_jsonb(%s::text))::text "
            "WHERE id = %s RETURNING (detail::jsonb ->> 'count')::bigint",
            (count, now, row[0]),
        ).fetchone()
        if updated is not None:
            return int(updated[0])
    inserted = conn.execute('INSERT INTO audit ("user", action, detail) VALUES (%s, %s, %s) RETURNING id',
                            (user, action, audit_detail({**detail, "count": count, "last": now}))).fetchone()
    assert inserted is not None
    conn.execute(
        "INSERT INTO audit_tallies (action, key, audit_id, opened) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (action, key) DO UPDATE SET audit_id = excluded.audit_id, opened = excluded.opened",
        (action, key, inserted[0], at),
    )
    return count
