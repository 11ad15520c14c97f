"""SQL of the web account, API token, login session, counter and audit tally tables of the GeoPackage store.

Each function runs inside a transaction the store opens; account times are kept as ISO 8601 UTC
text to the second (``2025-07-14T06:30:00+00:00``), which sorts as it compares; counter times
as epoch seconds.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from geo_ibm.store import frames
from geo_ibm.store.base import Account, HitKey, Hits


def _text(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _account(row: tuple) -> Account:
    name, role, password_hash, created, *rest = row
    return Account(name=name, role=role, password_hash=password_hash, created=datetime.fromisoformat(created),
                   tokens=int(rest[0]) if rest else 0)


def _owner(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT name FROM web_users WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def add_account(conn: sqlite3.Connection, name: str, role: str, password_hash: str, created: datetime) -> bool:
    if _owner(conn, name) is not None:
        return False
    conn.execute(
        "INSERT INTO web_users (name, role, password_hash, created, updated) VALUES (?, ?, ?, ?, ?)",
        (name, role, password_hash, _text(created), _text(created)),
    )
    return True


def account(conn: sqlite3.Connection, name: str) -> Account | None:
    row = conn.execute("SELECT name, role, password_hash, created FROM web_users WHERE name = ?", (name,)).fetchone()
    return None if row is None else _account(row)


def list_accounts(conn: sqlite3.Connection) -> list[Account]:
    rows = conn.execute(
        "SELECT u.name, u.role, u.password_hash, u.created, (SELECT COUNT(*) FROM web_tokens t WHERE t.name = u.name) "
        "FROM web_users u ORDER BY u.name COLLATE NOCASE"
    ).fetchall()
    return [_account(r) for r in rows]


def update_account(conn: sqlite3.Connection, name: str, *, updated: datetime, role: str | None,
                   password_hash: str | None, end_sessions: bool) -> bool:
    changes = {k: v for k, v in (("role", role), ("password_hash", password_hash)) if v is not None}
    sets = "".join(f"{column} = ?, " for column in changes)
    cur = conn.execute(f"UPDATE web_users SET {sets}updated = ? WHERE name = ?", (*changes.values(), _text(updated), name))
    if cur.rowcount == 0:
        return False
    if end_sessions:
        conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))
    return True


def delete_account(conn: sqlite3.Connection, name: str) -> bool:
    conn.execute("DELETE FROM web_tokens WHERE name = ?", (name,))
    conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))
    return conn.execute("DELETE FROM web_users WHERE name = ?", (name,)).rowcount > 0


def add_token(conn: sqlite3.Connection, name: str, token_sha256: str, created: datetime) -> str | None:
    owner = _owner(conn, name)
    if owner is not None:
        conn.execute("INSERT INTO web_tokens (token_sha256, name, created) VALUES (?, ?, ?)",
                     (token_sha256, owner, _text(created)))
    return owner


def token_owner(conn: sqlite3.Connection, token_sha256: str) -> str | None:
    row = conn.execute("SELECT name FROM web_tokens WHERE token_sha256 = ?", (token_sha256,)).fetchone()
    return None if row is None else str(row[0])


def delete_tokens(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute("DELETE FROM web_tokens WHERE name = ?", (name,)).rowcount)


def add_session(conn: sqlite3.Connection, name: str, sid_sha256: str, created: datetime, expires: datetime) -> str | None:
    conn.execute("DELETE FROM web_sessions WHERE expires <= ?", (_text(created),))
    owner = _owner(conn, name)
    if owner is not None:
        conn.execute("INSERT INTO web_sessions (sid_sha256, name, created, expires) VALUES (?, ?, ?, ?)",
                     (sid_sha256, owner, _text(created), _text(expires)))
    return owner


def session_account(conn: sqlite3.Connection, sid_sha256: str, now: datetime) -> Account | None:
    row = conn.execute(
        "SELECT u.name, u.role, u.password_hash, u.created FROM web_sessions s "
        "JOIN web_users u ON u.name = s.name WHERE s.sid_sha256 = ? AND s.expires > ?",
        (sid_sha256, _text(now)),
    ).fetchone()
    return None if row is None else _account(row)


def delete_session(conn: sqlite3.Connection, sid_sha256: str) -> bool:
    return conn.execute("DELETE FROM web_sessions WHERE sid_sha256 = ?", (sid_sha256,)).rowcount > 0


def delete_sessions(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,)).rowcount)


# --- counters and audit tallies --------------------------------------------------------------


def hits(conn: sqlite3.Connection, keys: Sequence[HitKey], since: float) -> dict[HitKey, Hits]:
    found: dict[HitKey, Hits] = {}
    for space, key in dict.fromkeys(keys):
        row = conn.execute("SELECT count, last FROM throttle_hits WHERE space = ? AND key = ? AND last > ?",
                           (space, key, since)).fetchone()
        if row is not None:
            found[(space, key)] = Hits(int(row[0]), float(row[1]))
    return found


def add_hits(conn: sqlite3.Connection, keys: Sequence[HitKey], at: float, *, since: float,
             max_keys: int) -> dict[HitKey, Hits]:
    counted: dict[HitKey, Hits] = {}
    for space, key in dict.fromkeys(keys):
        count, last = conn.execute(
            "INSERT INTO throttle_hits (space, key, count, last) VALUES (?, ?, 1, ?) "
            "ON CONFLICT (space, key) DO UPDATE SET count = CASE WHEN last <= ? THEN 1 ELSE count + 1 END, "
            "last = max(last, excluded.last) RETURNING count, last",
            (space, key, at, since),
        ).fetchone()
        counted[(space, key)] = Hits(int(count), float(last))
    for space in {space for space, _key in counted}:
        conn.execute("DELETE FROM throttle_hits WHERE space = ? AND last <= ?", (space, since))
        excess = int(conn.execute("SELECT count(*) FROM throttle_hits WHERE space = ?", (space,)).fetchone()[0]) - max_keys
        if excess > 0:
            conn.execute(
                "DELETE FROM throttle_hits WHERE rowid IN "
                "(SELECT rowid FROM throttle_hits WHERE space = ? ORDER BY last, rowid LIMIT ?)",
                (space, excess),
            )
    return counted


def clear_hits(conn: sqlite3.Connection, keys: Sequence[HitKey]) -> None:
    conn.executemany("DELETE FROM throttle_hits WHERE space = ? AND key = ?", list(keys))


def hit_keys(conn: sqlite3.Connection, space: str, since: float) -> int:
    return int(conn.execute("SELECT count(*) FROM throttle_hits WHERE space = ? AND last > ?",
                            (space, since)).fetchone()[0])


def _audit_now() -> str:
    # The same text as the other audit records (hundredths of a second, "Z").
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-4] + "Z"


def audit_tally(conn: sqlite3.Connection, action: str, *, user: str, key: str, detail: dict[str, Any], at: float,
                since: float, count: int = 1) -> int:
    now = _audit_now()
    conn.execute("DELETE FROM audit_tallies WHERE action = ? AND opened <= ?", (action, since))
    row = conn.execute("SELECT audit_id FROM audit_tallies WHERE action = ? AND key = ?", (action, key)).fetchone()
    if row is not None:
        updated = conn.execute(
            "UPDATE audit SET detail = json_set(detail, '$.count', coalesce(json_extract(detail, '$.count'), 0) + ?, "
            "'$.last', ?) WHERE id = ? RETURNING json_extract(detail, '$.count')",
            (count, now, row[0]),
        ).fetchone()
        if updated is not None:
            return int(updated[0])
    cur = conn.execute("INSERT INTO audit (at, user, action, detail) VALUES (?, ?, ?, ?)",
                       (now, user, action, frames.audit_detail({**detail, "count": count, "last": now})))
    conn.execute("INSERT OR REPLACE INTO audit_tallies (action, key, audit_id, opened) VALUES (?, ?, ?, ?)",
                 (action, key, cur.lastrowid, at))
    return count
