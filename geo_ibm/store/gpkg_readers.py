"""Connections of long-running processes (the web app): kept read connections per thread, one write queue per file.

Opening a SQLite connection and setting it up (busy timeout, pragmas, the GeoPackage SQL
functions) costs about half a millisecond, and a web request reads the store several times
(its login, the store's version, the answer): about 40 % of a cached API answer's time went
into opening and closing connections. A store opened with ``serving=True`` reads through a
connection kept by the calling thread instead.

A kept connection is used again only while it still belongs to the same file (device and
inode); each thread keeps at most :data:`PER_THREAD` of them, closing the least recently used.
A store file replaced under a running process is refused (:class:`~geo_ibm.errors.StoreError`)
while a ``-wal`` file with content lies next to it: SQLite would read the old file's WAL into
the new one. Replace or restore a served store only while the app is stopped. A child
process (``fork``) starts with no kept connection and fresh write locks; the parent's
connections are left alone, never closed from the child. Kept
connections are in autocommit mode and hold no transaction between calls, so they see every
commit at once and do not keep a WAL checkpoint from completing. While they are open the
``-wal`` file stays next to the ``.gpkg`` (SQLite removes it when the last connection
closes); back up a served store with SQLite's backup API (``sqlite3 FILE ".backup COPY"``)
or ``geo-ibm store copy``, not by copying the ``.gpkg`` alone.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from geo_ibm.errors import StoreError

PER_THREAD = 4
"""Most kept connections per thread (one per store file a thread reads)."""

READ_CACHE_KIB = 16 * 1024
"""Page cache of a kept connection, KiB: the OS caches the file; each thread's copy stays small."""

_local = threading.local()
_writers: dict[str, threading.RLock] = {}
_writers_guard = threading.Lock()
_inherited: list[object] = []
"""A forked child's references to its parent's connections: kept, so they are never closed here."""


def _after_fork_in_child() -> None:
    global _local, _writers_guard
    _inherited.append(_local)
    _local = threading.local()
    _writers_guard = threading.Lock()
    _writers.clear()  # locks another thread of the parent held stay held in the child: new ones


os.register_at_fork(after_in_child=_after_fork_in_child)


def writer_lock(path: Path) -> threading.RLock:
    """The lock this process's threads take, in turn, before writing to ``path`` (see :func:`queued`)."""
    key = os.path.abspath(path)
    with _writers_guard:
        lock = _writers.get(key)
        if lock is None:
            lock = _writers[key] = threading.RLock()
        return lock


@contextlib.contextmanager
def queued(path: Path, *, timeout_s: float) -> Iterator[None]:
    """Hold ``path``'s write lock for the block, waiting at most ``timeout_s`` for it.

    Raises
    ------
    StoreError
        If another thread of this process kept writing for longer (a long import).
    """
    lock = writer_lock(path)
    if not lock.acquire(timeout=timeout_s):
        raise StoreError(f"{Path(path).name}: another write of this process (an import?) held the store for over "
                         f"{timeout_s:g} s; try again when it has finished")
    try:
        yield
    finally:
        lock.release()


def _kept() -> OrderedDict[str, tuple[sqlite3.Connection, tuple[int, int]]]:
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
    identity = (info.st_dev, info.st_ino)
    kept = _kept()
    entry = kept.get(key)
    if entry is not None:
        if entry[1] == identity:
            kept.move_to_end(key)
            return entry[0]
        del kept[key]
        entry[0].close()
        wal = Path(key + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StoreError(f"{Path(key).name} was replaced while this process had it open, next to the old file's "
                             "write-ahead log; stop the app, then replace or restore the store (geo-ibm store copy, "
                             "or sqlite3's .backup/.restore)")
    conn = connect()
    conn.execute(f"PRAGMA cache_size = -{READ_CACHE_KIB}")
    kept[key] = (conn, identity)
    while len(kept) > PER_THREAD:
        _old_key, (old, _old_identity) = kept.popitem(last=False)
        old.close()
    return conn


def forget(path: Path) -> None:
    """Close this thread's kept connection to ``path``, if any (before the file is removed or replaced)."""
    entry = _kept().pop(os.path.abspath(path), None)
    if entry is not None:
        entry[0].close()


def kept_count() -> int:
    """How many connections this thread keeps (for tests)."""
    return len(_kept())
