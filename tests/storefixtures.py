"""Event store test fixtures: synthetic event files and ``store_factory``, one store per backend.

Tests of the store interface take ``store_factory`` (or ``filled``), so they run against every
backend in :data:`BACKENDS`; a new backend adds its name there and a branch in
:func:`_make` and :func:`raw_rows`. Tests of the GeoPackage file format open the file
directly instead. PostGIS stores are new databases of the session's server (``pg_server`` in
:mod:`pgserver`), started the first time a PostGIS store is made.
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pgserver import new_database

from geo_ibm.store import EventStore, GeoPackageStore
from geo_ibm.store.postgis import PostGISStore

OUTLINE = shapely.box(50_000, 57_000, 107_000, 139_000)
HEADER = "event_id;observed_at;x;y;location_kind;persons;smugglers;transport_mode;entry_country;notes"

BACKENDS = ["gpkg", "postgis"]
"""Backends every interface test runs against."""


def half_regions(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A stand-in region layer for speed: west and east of x = 80 000."""
    out = gdf.copy()
    west = out.geometry.x.to_numpy() < 80_000
    out["canton"] = np.where(west, "Capellen", "Remich")
    out["region"] = np.where(west, "Sud-Ouest", "Centre-Est")
    return out


def event_rows(n: int, *, seed: int = 0, prefix: str = "E") -> list[str]:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01T00:00:00")
    rows = []
    kinds = ["motorway", "urban", "rest_area"]
    modes = ["car", "van", "bus"]
    countries = ["BE", "FR", "DE"]
    for i in range(n):
        stamp = (start + pd.Timedelta(hours=int(rng.integers(0, 2 * 365 * 24)))).strftime("%Y-%m-%dT%H:%M")
        x, y = rng.uniform(60_000, 100_000), rng.uniform(60_000, 130_000)
        rows.append(
            f"{prefix}{i:05d};{stamp};{x:.2f};{y:.2f};{kinds[i % 3]};{1 + i % 4};{i % 2};{modes[(i // 3) % 3]};"
            f"{countries[(i // 9) % 3]};n{i}"
        )
    return rows


def with_field(row: str, column: str, value: str) -> str:
    cells = row.split(";")
    cells[HEADER.split(";").index(column)] = value
    return ";".join(cells)


def write_events(path, rows: list[str]):
    path.write_bytes(("\n".join([HEADER, *rows]) + "\n").encode("latin-1"))
    return path


def _make(backend: str, request, folder, name: str, options: dict[str, Any]) -> EventStore:
    if backend == "gpkg":
        return GeoPackageStore(folder / f"{name}.gpkg", **options)
    if backend == "postgis":
        store = PostGISStore(new_database(request.getfixturevalue("pg_server"), name), **options)
        request.addfinalizer(store.close)  # no idle connections pile up over the session
        return store
    raise ValueError(f"no test store for backend {backend!r}")


StoreFactory = Callable[..., EventStore]


@pytest.fixture(params=BACKENDS)
def store_factory(request, tmp_path) -> StoreFactory:
    """``store_factory(name="s", **options)``: a new, empty store of the backend under test.

    By default the store checks locations against :data:`OUTLINE` and assigns regions with
    :func:`half_regions`; pass ``outline=``/``assign_regions=`` (``None`` for the shipped
    layers) to change that.
    """

    def make(name: str = "s", **options: Any) -> EventStore:
        options.setdefault("outline", OUTLINE)
        options.setdefault("assign_regions", half_regions)
        return _make(request.param, request, tmp_path, name, options)

    make.backend = request.param  # type: ignore[attr-defined]
    return make


@pytest.fixture
def filled(store_factory, tmp_path):
    """A store holding 400 events of :func:`event_rows` (seed 3), imported from one file."""
    store = store_factory()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(400, seed=3)), user="ana")
    return store


def raw_rows(store: EventStore, sql: str, params: tuple = ()) -> list[tuple]:
    """Run ``sql`` on the store's own database, bypassing the interface (to check what is stored)."""
    if isinstance(store, GeoPackageStore):
        with sqlite3.connect(store.path) as conn:
            return conn.execute(sql, params).fetchall()
    if isinstance(store, PostGISStore):
        import psycopg

        with psycopg.connect(store._conninfo) as conn:
            return [tuple(r) for r in conn.execute(re.sub(r"\?", "%s", sql), params).fetchall()]
    raise NotImplementedError(f"raw_rows for {store!r}")
