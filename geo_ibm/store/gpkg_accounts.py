"""SQL of the web account, API token, login session and login throttle tables of the GeoPackage store.

Each function runs inside a transaction the store opens; times are kept as ISO 8601 UTC text
to the second (``2025-07-14T06:30:00+00:00``), which sorts as it compares.
"""
from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from geo_ibm.store.base import Account


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


# --- login throttle -------------------------------------------------------------------------


def login_failures(conn: sqlite3.Connection, key: str, since: float) -> list[float]:
    rows = conn.execute("SELECT at FROM login_failures WHERE key = ? AND at > ? ORDER BY at", (key, since))
    return [float(r[0]) for r in rows]


def login_failure_keys(conn: sqlite3.Connection, since: float) -> int:
    return int(conn.execute("SELECT count(DISTINCT key) FROM login_failures WHERE at > ?", (since,)).fetchone()[0])


def add_login_failure(conn: sqlite3.Connection, key: str, at: float, *, since: float, keep: int, max_keys: int) -> None:
    conn.execute("DELETE FROM login_failures WHERE at <= ?", (since,))
    conn.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, at))
    conn.execute(
        "DELETE FROM login_failures WHERE key = ? AND rowid NOT IN "
        "(SELECT rowid FROM login_failures WHERE key = ? ORDER BY at DESC, rowid DESC LIMIT ?)",
        (key, key, keep),
    )
    keys = int(conn.execute("SELECT count(DISTINCT key) FROM login_failures").fetchone()[0])
    if keys > max_keys:
        conn.execute(
            "DELETE FROM login_failures WHERE key IN "
            "(SELECT key FROM login_failures GROUP BY key ORDER BY max(at), max(rowid) LIMIT ?)",
            (keys - max_keys,),
        )


def clear_login_failures(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM login_failures WHERE key = ?", (key,))
