"""The OpenStreetMap road network installed next to the store (``geo-ibm roads import``).

One GeoPackage, :func:`installed_roads_path`: layer ``roads`` (the road layer, EPSG:2169) whose
layer metadata item ``parameters`` holds where it came from (source, extract date, the ODbL
attribution, when it was installed, roads, length), as ``ogrinfo`` and QGIS show it.

For a GeoPackage store the file is ``<store folder>/roads.gpkg``, like the installed cantons. A
database store (``GEO_IBM_STORE`` a ``postgresql://`` URL) has no folder: the file is then
``<instance folder>/roads.gpkg``, the folder of ``GEO_IBM_INSTANCE`` (else ``instance``). Unlike
the cantons it is not in the database, so every host serving the same database needs the same
import (or a shared instance folder).
"""
from __future__ import annotations

import functools
import os
import secrets
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import io
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import OSM_ATTRIBUTION, WORKING_CRS, store_location

ROADS_FILE = "roads.gpkg"
ROADS_LAYER = "roads"
_DTYPES = {"road_id": object, "ref": object, "name": object, "highway": object, "oneway": np.int8,
           "maxspeed": float}


def installed_roads_path() -> Path:
    """Where :func:`install_roads` writes the road network (see the module's docstring)."""
    location = store_location()
    if isinstance(location, Path):
        return location.parent / ROADS_FILE
    return Path(os.environ.get("GEO_IBM_INSTANCE") or "instance") / ROADS_FILE


def install_roads(roads: gpd.GeoDataFrame, *, source: str, extract_date: str | None = None) -> Path | str:
    """Make ``roads`` the road network :func:`installed_roads` (and so ``road_layer()``) gives.

    All or nothing: the layer is written to a temporary file beside the installed one and renamed
    over it, so a failure at any point leaves the installed network (or its absence) unchanged.

    Parameters
    ----------
    roads
        A road layer: :data:`~geo_ibm.network.roads.ROAD_COLUMNS` and non-empty LineString
        geometries, in any CRS convertible to EPSG:2169 (e.g. from
        :func:`geo_ibm.network.osm.read_osm`).
    source
        What the roads were read from (a file name, a mirror's extract name).
    extract_date
        The extract's date, ``YYYY-MM-DD`` (``None``: unknown).

    Returns
    -------
    Path
        The installed file, :func:`installed_roads_path`.

    Raises
    ------
    ValidationError
        Naming the column and the first rows at fault: a missing column, an empty layer, a highway
        class outside :data:`~geo_ibm.network.roads.HIGHWAY_CLASSES`, a ``oneway`` other than
        -1/0/1, a geometry that is not a non-empty LineString; a blank ``source`` or a malformed
        ``extract_date``.
    """
    layer = _validated(roads, source=source, extract_date=extract_date)
    length_km = float(layer.geometry.length.sum()) / 1000.0
    metadata = {"source": source.strip(), "date": extract_date, "attribution": OSM_ATTRIBUTION,
                "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "roads": int(len(layer)), "length_km": round(length_km, 3)}
    path = installed_roads_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.new{path.suffix}")
    try:
        io.write_vector(layer, staged, layer=ROADS_LAYER, metadata=metadata)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return path


def installed_roads() -> gpd.GeoDataFrame | None:
    """The installed road layer (:data:`geo_ibm.network.roads.ROAD_COLUMNS`), ``None`` when none is installed.

    Read once per version of the file (its modification time and size), then served from memory.
    """
    found = _installed()
    return None if found is None else found[0].copy()


def installed_roads_info() -> dict[str, Any] | None:
    """What is installed: ``source``, ``date``, ``attribution``, ``installed_at``, ``roads``, ``length_km``.

    ``None`` when no road network is installed.
    """
    found = _installed()
    return None if found is None else dict(found[1])


def check_extract_date(extract_date: str | None) -> None:
    """Refuse an ``extract_date`` that is not ``None`` or a ``YYYY-MM-DD`` date, naming it."""
    if extract_date is None:
        return
    try:
        date.fromisoformat(str(extract_date))
    except ValueError:
        raise ValidationError(f"extract_date must be YYYY-MM-DD, got {extract_date!r}",
                              [Problem("not a date", column="extract_date", value=extract_date)]) from None


def _installed() -> tuple[gpd.GeoDataFrame, dict[str, Any]] | None:
    path = installed_roads_path()
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    # mtime_ns and size are part of the key only: a replaced file is read again, an unchanged one is not
    from geo_ibm.network.roads import ROAD_COLUMNS

    layer = io.read_vector(path, layer=ROADS_LAYER)
    missing = [c for c in ROAD_COLUMNS if c not in layer.columns]
    if missing:
        raise ValidationError(f"{path}: missing columns {missing}; import the roads again with "
                              "`geo-ibm roads import FILE`")
    frame = pd.DataFrame({c: layer[c].fillna("") if _DTYPES[c] is object else layer[c] for c in ROAD_COLUMNS})
    frame = frame.astype({c: t for c, t in _DTYPES.items() if t is not object})
    roads = gpd.GeoDataFrame(frame, geometry=layer.geometry.to_numpy(), crs=WORKING_CRS)
    info = {"source": None, "date": None, "attribution": OSM_ATTRIBUTION, "installed_at": None,
            "roads": int(len(roads)), "length_km": float(roads.geometry.length.sum()) / 1000.0}
    info.update(io.read_parameters(path, layer=ROADS_LAYER))
    return roads, info


def _validated(roads: gpd.GeoDataFrame, *, source: str, extract_date: str | None) -> gpd.GeoDataFrame:
    from geo_ibm.network.roads import HIGHWAY_CLASSES, ROAD_COLUMNS

    what = "install_roads(roads)"
    if not isinstance(source, str) or not source.strip():
        raise ValidationError(f"source must name where the roads come from, got {source!r}",
                              [Problem("blank source", column="source", value=source)])
    check_extract_date(extract_date)
    missing = [c for c in ROAD_COLUMNS if c not in roads.columns]
    if missing:
        raise ValidationError(f"{what}: missing columns {missing}; columns are {list(roads.columns)}",
                              [Problem("missing column", file=what, column=c) for c in missing])
    if roads.empty:
        raise ValidationError(f"{what}: no roads to install", [Problem("empty layer", file=what)])
    layer = io.ensure_working_crs(roads, name="roads")
    problems: list[Problem] = []

    def refuse(bad: np.ndarray, column: str, reason: str, values: Any) -> None:
        for k in np.flatnonzero(bad)[:20]:
            problems.append(Problem(reason, file=what, row=int(k) + 1, column=column, value=values[k]))

    highway = layer["highway"].to_numpy(dtype=object)
    refuse(~np.isin(highway, HIGHWAY_CLASSES), "highway", f"highway must be one of {list(HIGHWAY_CLASSES)}", highway)
    oneway = pd.to_numeric(layer["oneway"], errors="coerce").to_numpy(dtype=float)
    refuse(~np.isin(oneway, (-1.0, 0.0, 1.0)), "oneway", "oneway must be -1, 0 or 1", layer["oneway"].to_numpy())
    road_id = layer["road_id"].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    refuse(road_id == "", "road_id", "road_id must not be blank", road_id)
    geoms = layer.geometry.to_numpy()
    bad_geom = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    bad_geom |= shapely.get_type_id(geoms) != shapely.GeometryType.LINESTRING
    refuse(bad_geom, "geometry", "geometry must be a non-empty LineString",
           np.array([None if g is None else g.geom_type for g in geoms], dtype=object))
    if problems:
        raise ValidationError(f"{what}: not a valid road layer", problems)
    maxspeed = pd.to_numeric(layer["maxspeed"], errors="coerce").to_numpy(dtype=float)
    frame = pd.DataFrame({
        "road_id": road_id,
        "ref": layer["ref"].fillna("").astype(str).to_numpy(dtype=object),
        "name": layer["name"].fillna("").astype(str).to_numpy(dtype=object),
        "highway": highway,
        "oneway": oneway.astype(np.int8),
        "maxspeed": maxspeed,
    })
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=WORKING_CRS)
