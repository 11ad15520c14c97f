"""The event store: :func:`open_store` picks the backend for a location; the interface is :class:`EventStore`.

A file path (``.gpkg``) opens the GeoPackage backend. A URL (``scheme://...``) opens the
backend registered for its scheme in :data:`BACKENDS`: ``postgresql://`` (or ``postgres://``)
the PostGIS backend. :func:`copy_store` copies a store between backends.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from geo_ibm.errors import StoreError
from geo_ibm.settings import store_location
from geo_ibm.store.base import Account, AssignRegions, EventStore, WriteTransaction
from geo_ibm.store.filters import COUNT_KEYS, LEAN_COLUMNS, EventFilter, parse_filters
from geo_ibm.store.geopackage import BUSY_TIMEOUT_MS, GeoPackageStore
from geo_ibm.store.gpkg_blobs import SRS_ID, geometries_from_blobs, point_blobs
from geo_ibm.store.gpkg_schema import EVENT_FIELDS
from geo_ibm.store.imports import ImportRecord, ImportReport

__all__ = [
    "BACKENDS", "BUSY_TIMEOUT_MS", "COUNT_KEYS", "EVENT_FIELDS", "LEAN_COLUMNS", "SRS_ID", "Account", "AssignRegions",
    "CopyReport", "EventFilter", "EventStore", "GeoPackageStore", "ImportRecord", "ImportReport", "PostGISStore",
    "WriteTransaction", "copy_store", "geometries_from_blobs", "open_store", "parse_filters", "point_blobs",
]

BACKENDS: dict[str, str] = {
    "file": "geo_ibm.store.geopackage:GeoPackageStore",
    "postgresql": "geo_ibm.store.postgis:PostGISStore",
}
"""Backend of each location scheme as ``"module:class"``; ``file`` also serves plain paths.

The class is called as ``cls(location, **options)``: a :class:`~pathlib.Path` for files, the
URL text otherwise.
"""

_SCHEME_ALIASES = {"postgres": "postgresql"}

_LAZY = {
    "PostGISStore": "geo_ibm.store.postgis",
    "CopyReport": "geo_ibm.store.copy",
    "copy_store": "geo_ibm.store.copy",
}
"""Names imported on first use: the PostgreSQL driver loads only for a PostGIS store."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _scheme(location: str | os.PathLike[str]) -> str:
    text = os.fspath(location)
    if isinstance(location, os.PathLike) or "://" not in text:
        return "file"
    scheme = urlsplit(text).scheme.lower()
    return _SCHEME_ALIASES.get(scheme, scheme)


def open_store(location: str | os.PathLike[str] | None = None, **options: Any) -> EventStore:
    """The event store at ``location``, else ``GEO_IBM_STORE``, else ``instance/geo_ibm.gpkg``.

    Parameters
    ----------
    location
        A file path (GeoPackage) or a URL of a registered backend.
    options
        Passed to the backend (e.g. ``outline=``, ``assign_regions=`` of :class:`EventStore`).

    Raises
    ------
    StoreError
        If no backend serves the location's scheme (the message names the scheme only, never
        credentials in the URL).
    """
    where = store_location(location)
    scheme = _scheme(where)
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(["file paths (.gpkg)", *(f"{s}://" for s in sorted(BACKENDS) if s != "file")])
        raise StoreError(f"store location {scheme}://... needs the {scheme!r} store backend, which is not available "
                         f"in this installation; use one of: {known}")
    module, _sep, name = target.partition(":")
    backend = getattr(importlib.import_module(module), name)
    if scheme == "file":
        text = os.fspath(where)
        return backend(Path(text[len("file://"):] if text.startswith("file://") else text), **options)
    return backend(os.fspath(where), **options)
