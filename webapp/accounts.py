"""Web accounts in the event store: users with roles, scrypt password hashes, hashed API tokens and sessions."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from geo_ibm.errors import NotFoundError, StoreError, ValidationError

ROLES: tuple[str, ...] = ("viewer", "analyst", "planner", "admin")
"""Roles from least to most rights; each role has every right of the roles before it."""

MIN_PASSWORD_LENGTH = 8
DEMO_USER = "demo"
DEMO_ROLE = "admin"
TOKEN_PREFIX = "gib_"

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# Verified when a name is unknown so that a login costs the same whether or not the user exists.
_DUMMY_HASH: str | None = None

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS web_users (
        name TEXT PRIMARY KEY COLLATE NOCASE,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS web_tokens (
        token_sha256 TEXT PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE,
        created TEXT NOT NULL
    )""",
    # Login sessions: the cookie only carries a random id, so logging out (deleting the row)
    # ends the session even for a copy of the cookie taken before.
    """CREATE TABLE IF NOT EXISTS web_sessions (
        sid_sha256 TEXT PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE,
        created TEXT NOT NULL,
        expires TEXT NOT NULL
    )""",
)


def _now(offset_s: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset_s)).isoformat(timespec="seconds")


def _ensure_tables(conn: Any) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def role_rank(role: str) -> int:
    """Position of ``role`` in :data:`ROLES` (viewer 0 ... admin 3)."""
    try:
        return ROLES.index(role)
    except ValueError:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, got {role!r}") from None


def has_role(user_role: str, needed: str) -> bool:
    """Whether an account with ``user_role`` may do what needs ``needed``."""
    return role_rank(user_role) >= role_rank(needed)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid account name (1-64 letters, digits, ``_.@-``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(f"user name must be 1-64 letters, digits or _.@-, got {name!r}")
    return name


def check_password(password: str) -> str:
    """Return ``password`` if it is acceptable (at least 8 characters)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _hash(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def add_user(store: Any, name: str, role: str, password: str) -> None:
    """Create an account.

    Raises
    ------
    ValidationError
        Bad name, unknown role or too short a password.
    StoreError
        An account of that name (case-insensitive) exists.
    """
    check_name(name)
    role_rank(role)
    check_password(password)
    hashed = _hash(password)
    with store.connect() as conn:
        _ensure_tables(conn)
        if conn.execute("SELECT 1 FROM web_users WHERE name = ?", (name,)).fetchone():
            raise StoreError(f"user {name!r} exists already")
        now = _now()
        conn.execute(
            "INSERT INTO web_users (name, role, password_hash, created, updated) VALUES (?, ?, ?, ?, ?)",
            (name, role, hashed, now, now),
        )


def set_password(store: Any, name: str, password: str) -> None:
    """Replace the password of ``name``; every session of ``name`` ends (see :func:`open_session`)."""
    check_password(password)
    hashed = _hash(password)
    with store.connect() as conn:
        _ensure_tables(conn)
        cur = conn.execute("UPDATE web_users SET password_hash = ?, updated = ? WHERE name = ?", (hashed, _now(), name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")
        conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))


def set_role(store: Any, name: str, role: str) -> None:
    """Give ``name`` another role."""
    role_rank(role)
    with store.connect() as conn:
        _ensure_tables(conn)
        cur = conn.execute("UPDATE web_users SET role = ?, updated = ? WHERE name = ?", (role, _now(), name))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")


def list_users(store: Any) -> list[dict[str, Any]]:
    """All accounts as dicts with ``name``, ``role``, ``created``, ``tokens`` (count), sorted by name."""
    with store.connect() as conn:
        _ensure_tables(conn)
        rows = conn.execute(
            "SELECT u.name, u.role, u.created, (SELECT COUNT(*) FROM web_tokens t WHERE t.name = u.name) "
            "FROM web_users u ORDER BY u.name COLLATE NOCASE"
        ).fetchall()
    return [{"name": r[0], "role": r[1], "created": r[2], "tokens": int(r[3])} for r in rows]


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def get_user(store: Any, name: str) -> dict[str, Any] | None:
    """The account ``name`` as ``{"name", "role", "stamp"}`` or ``None``.

    ``stamp`` changes whenever the password changes; a session remembers it so that a new
    password ends the sessions opened with the old one.
    """
    with store.connect() as conn:
        _ensure_tables(conn)
        row = conn.execute("SELECT name, role, password_hash FROM web_users WHERE name = ?", (name,)).fetchone()
    if row is None:
        return None
    return {"name": row[0], "role": row[1], "stamp": _stamp(row[2])}


def verify_password(store: Any, name: str, password: str) -> dict[str, Any] | None:
    """The account if ``password`` is right for ``name``, else ``None`` (same cost either way)."""
    global _DUMMY_HASH
    with store.connect() as conn:
        _ensure_tables(conn)
        row = conn.execute("SELECT name, password_hash FROM web_users WHERE name = ?", (name,)).fetchone()
    if row is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = _hash(secrets.token_urlsafe(16))
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(row[1], password or ""):
        return None
    return get_user(store, row[0])


def _token_digest(token: str) -> str:
    # Tokens carry 256 random bits, so a plain SHA-256 suffices (no slow hash needed).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(store: Any, name: str) -> str:
    """Create a personal API token for ``name`` and return it; only its SHA-256 is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.connect() as conn:
        _ensure_tables(conn)
        row = conn.execute("SELECT name FROM web_users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no user {name!r}")
        conn.execute(
            "INSERT INTO web_tokens (token_sha256, name, created) VALUES (?, ?, ?)",
            (_token_digest(token), row[0], _now()),
        )
    return token


def user_for_token(store: Any, token: str) -> dict[str, Any] | None:
    """The account a token belongs to, or ``None`` for an unknown token."""
    if not token or len(token) > 200:
        return None
    digest = _token_digest(token)
    with store.connect() as conn:
        _ensure_tables(conn)
        row = conn.execute("SELECT token_sha256, name FROM web_tokens WHERE token_sha256 = ?", (digest,)).fetchone()
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    return get_user(store, row[1])


def revoke_tokens(store: Any, name: str) -> int:
    """Delete every API token of ``name``; returns how many there were."""
    with store.connect() as conn:
        _ensure_tables(conn)
        cur = conn.execute("DELETE FROM web_tokens WHERE name = ?", (name,))
        return int(cur.rowcount)


def delete_user(store: Any, name: str) -> None:
    """Remove an account, its tokens and its sessions."""
    with store.connect() as conn:
        _ensure_tables(conn)
        conn.execute("DELETE FROM web_tokens WHERE name = ?", (name,))
        conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))
        cur = conn.execute("DELETE FROM web_users WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise NotFoundError(f"no user {name!r}")


def _session_digest(sid: str) -> str:
    # Session ids carry 256 random bits: a plain SHA-256 keeps a leaked table from being replayed.
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def open_session(store: Any, name: str, *, lifetime_s: float) -> str:
    """Start a login session for ``name`` lasting at most ``lifetime_s`` seconds; returns its id.

    Only the SHA-256 of the id is stored. Expired sessions of every account are removed here,
    so the table holds only live sessions.

    Raises
    ------
    ValidationError
        ``lifetime_s`` is not positive.
    NotFoundError
        No account ``name``.
    """
    if not lifetime_s > 0:
        raise ValidationError(f"session lifetime_s must be positive, got {lifetime_s!r}")
    sid = secrets.token_urlsafe(32)
    with store.connect() as conn:
        _ensure_tables(conn)
        conn.execute("DELETE FROM web_sessions WHERE expires <= ?", (_now(),))
        row = conn.execute("SELECT name FROM web_users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no user {name!r}")
        conn.execute(
            "INSERT INTO web_sessions (sid_sha256, name, created, expires) VALUES (?, ?, ?, ?)",
            (_session_digest(sid), row[0], _now(), _now(lifetime_s)),
        )
    return sid


def session_user(store: Any, sid: str | None) -> dict[str, Any] | None:
    """The account (as :func:`get_user` gives it) of a live session id, else ``None``.

    ``None`` for an unknown, closed or expired id, and for an id whose account is gone.
    """
    if not sid or not isinstance(sid, str) or len(sid) > 200:
        return None
    digest = _session_digest(sid)
    with store.connect() as conn:
        _ensure_tables(conn)
        row = conn.execute(
            "SELECT s.sid_sha256, u.name, u.role, u.password_hash FROM web_sessions s "
            "JOIN web_users u ON u.name = s.name WHERE s.sid_sha256 = ? AND s.expires > ?",
            (digest, _now()),
        ).fetchone()
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    return {"name": row[1], "role": row[2], "stamp": _stamp(row[3])}


def close_session(store: Any, sid: str | None) -> bool:
    """End one session (logout); returns whether it was live."""
    if not sid or not isinstance(sid, str):
        return False
    with store.connect() as conn:
        _ensure_tables(conn)
        cur = conn.execute("DELETE FROM web_sessions WHERE sid_sha256 = ?", (_session_digest(sid),))
        return cur.rowcount > 0


def close_sessions(store: Any, name: str) -> int:
    """End every session of ``name``; returns how many there were."""
    with store.connect() as conn:
        _ensure_tables(conn)
        cur = conn.execute("DELETE FROM web_sessions WHERE name = ?", (name,))
        return int(cur.rowcount)


def ensure_demo_account(store: Any) -> tuple[str, str | None]:
    """Create the demo account (role admin) unless it exists.

    The password is ``GEO_IBM_DEMO_PASSWORD`` if set, else random. Returns ``(name, password)``
    for a new account and ``(name, None)`` when it existed (its password is left alone).
    """
    if get_user(store, DEMO_USER) is not None:
        return DEMO_USER, None
    password = os.environ.get("GEO_IBM_DEMO_PASSWORD") or secrets.token_urlsafe(12)
    add_user(store, DEMO_USER, DEMO_ROLE, password)
    return DEMO_USER, password
