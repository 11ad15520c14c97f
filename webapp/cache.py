"""Answers kept between requests: one size-bounded LRU cache per app, keyed on the store's ``version()``.

Stored data changes only through the store (imports, region installs, account changes), and
each such write changes ``store.version()``, also when another process wrote. So an entry is
valid exactly as long as the version in its key, and nothing is ever invalidated by hand.
Concurrent requests for the same missing entry build it once; the others wait for it.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import cachetools
import pandas as pd
from flask import Flask, current_app, g, has_request_context

T = TypeVar("T")

DEFAULT_CACHE_MB = 256


def _size(value: Any) -> int:
    """Approximate bytes an entry holds (the LRU bound counts these).

    An entry that knows its size says so in a ``cache_bytes`` attribute.
    """
    known = getattr(value, "cache_bytes", None)
    if isinstance(known, int):
        return known
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if isinstance(value, pd.DataFrame):
        # Geometries live outside the frame's arrays: about 200 bytes a point or small polygon.
        return int(value.memory_usage(index=True, deep=False).sum()) + 200 * len(value)
    if isinstance(value, tuple):
        return sum(_size(v) for v in value) + 64
    if isinstance(value, list):
        # A list of ids: its pointers, and about 60 bytes per short string (sampled, not summed).
        sample = value[:100]
        each = sum(sys.getsizeof(v) for v in sample) / len(sample) if sample else 0
        return sys.getsizeof(value) + int(each * len(value))
    return sys.getsizeof(value)


class VersionedCache:
    """A thread-safe LRU cache bounded in bytes, with one build per missing key at a time."""

    def __init__(self, *, max_bytes: int) -> None:
        self._cache: cachetools.LRUCache[Hashable, Any] = cachetools.LRUCache(maxsize=max_bytes, getsizeof=_size)
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)

    def get_or_build(self, key: Hashable, build: Callable[[], T]) -> T:
        """The entry of ``key``, built by ``build()`` when missing (once, however many ask)."""
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            gate = self._building.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            try:
                value = build()
                with self._lock:
                    try:
                        self._cache[key] = value
                    except ValueError:  # larger than the whole cache: serve it, keep nothing
                        pass
                return value
            finally:
                with self._lock:
                    self._building.pop(key, None)

    def keys(self, kind: str | None = None) -> list[Hashable]:
        """The keys held, optionally of one ``kind`` only (the first part of :func:`cached`'s key)."""
        with self._lock:
            keys = list(self._cache.keys())
        return [k for k in keys if kind is None or (isinstance(k, tuple) and k and k[0] == kind)]

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def init_app(app: Flask) -> None:
    """Give ``app`` its cache (``CACHE_MB`` config, default 256 MB)."""
    max_bytes = int(float(app.config.get("CACHE_MB", DEFAULT_CACHE_MB)) * 1024 * 1024)
    app.extensions["geo_ibm_cache"] = VersionedCache(max_bytes=max_bytes)


def cached(store: Any, kind: str, key: Hashable, build: Callable[[], T]) -> T:
    """The answer ``kind``/``key`` for the current version of ``store``, built once per version.

    Parameters
    ----------
    store
        The request's event store; its ``version()`` is part of the key.
    kind
        What is cached (``"map"``, ``"ogc-hotspots"``, ``"reference"``, ...).
    key
        Everything else the answer depends on (filters, options, language, role), hashable.
    build
        Makes the answer when it is not cached.
    """
    cache: VersionedCache = current_app.extensions["geo_ibm_cache"]
    return cache.get_or_build((kind, request_version(store), key), build)


def request_version(store: Any) -> str:
    """``store.version()``, asked once per request (a request sees one version of the store)."""
    if not has_request_context():
        return str(store.version())
    versions: dict[int, str] = g.setdefault("geo_ibm_versions", {})
    if id(store) not in versions:
        versions[id(store)] = str(store.version())
    return versions[id(store)]

