"""Connections of long-running processes (the web app): kept read connections per thread, one write queue per file.

Opening a SQLite connection and setting it up (busy timeout, pragmas, the GeoPackage SQL
functions) costs about half a millisecond, and a web request reads the store several times
(its login, the store's version, the answer): about 40 % of a cached API answer's time went
into opening and closing connections. A store opened with ``serving=True`` reads through a
connection kept by the calling thread instead.

A kept connection is used again only while it still belongs to this process and to the same
file (device and inode: a store file replaced under the same path gets a new connection);
each thread keeps at most :data:`PER_THREAD` of them, closing the least recently used. Kept
connections are in autocommit mode and hold no transaction between calls, so they see every
commit at once and do not keep a WAL checkpoint from completing. While they are open the
``-wal`` file stays next to the ``.gpkg`` (SQLite removes it when the last connection
closes); back up a served store with SQLite's backup API (``sqlite3 FILE ".backup COPY"``)
or ``geo-ibm store copy``, not by copying the ``.gpkg`` alone.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

PER_THREAD = 4
"""Most kept connections per thread (one per store file a thread reads)."""

READ_CACHE_KIB = 16 * 1024
"""Page cache of a kept connection, KiB: the OS caches the file; each thread's copy stays small."""

_local = threading.local()
_writers: dict[str, threading.RLock] = {}
_writers_guard = threading.Lock()


def writer_lock(path: Path) -> threading.RLock:
    """The lock this process's threads take, in turn, before writing to ``path``."""
    key = os.path.abspath(path)
    with _writers_guard:
        lock = _writers.get(key)
        if lock is None:
            lock = _writers[key] = threading.RLock()
        return lock


def _kept() -> OrderedDict[str, tuple[sqlite3.Connection, tuple[int, int, int]]]:
    kept = getattr(_local, "connections", None)
    if kept is None:
        kept = _local.connections = OrderedDict()
    return kept


def reader(path: Path, connect: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
    """This thread's kept read connection to ``path``, opened with ``connect`` when it has none.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (callers check first).
    """
    key = os.path.abspath(path)
    info = os.stat(key)
    identity = (info.st_dev, info.st_ino, os.getpid())
    kept = _kept()
    entry = kept.get(key)
    if entry is not None:
        if entry[1] == identity:
            kept.move_to_end(key)
            return entry[0]
        del kept[key]
        if entry[1][2] == identity[2]:  # never close a connection inherited from a parent process
            entry[0].close()
    conn = connect()
    conn.execute(f"PRAGMA cache_size = -{READ_CACHE_KIB}")
    kept[key] = (conn, identity)
    while len(kept) > PER_THREAD:
        _old_key, (old, old_identity) = kept.popitem(last=False)
        if old_identity[2] == identity[2]:
            old.close()
    return conn


def forget(path: Path) -> None:
    """Close this thread's kept connection to ``path``, if any (before the file is removed or replaced)."""
    entry = _kept().pop(os.path.abspath(path), None)
    if entry is not None and entry[1][2] == os.getpid():
        entry[0].close()


def kept_count() -> int:
    """How many connections this thread keeps (for tests)."""
    return len(_kept())
