"""Serialise GeoDataFrames as RFC 7946 GeoJSON FeatureCollections (EPSG:4326, rounded)."""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.crs import transformer
from geo_ibm.errors import CrsError
from geo_ibm.settings import WEB_CRS

COORD_DECIMALS = 7
"""Decimal places kept in longitude/latitude: 1e-7 degrees is about 1 cm in Luxembourg."""


def json_value(value: Any) -> Any:
    """Return ``value`` as a plain JSON-serialisable Python value.

    Missing values (``None``, ``NaN``, ``NaT``, ``pd.NA``) become ``None``, timestamps become
    ISO 8601 strings, numpy scalars become Python numbers, non-finite floats become ``None``
    (JSON has no ``NaN``).
    """
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, (pd.Timedelta, dt.timedelta)):
        return None if pd.isna(value) else pd.Timedelta(value).isoformat()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_value(v) for v in value]
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def column_values(series: pd.Series) -> list[Any]:
    """The values of one column as plain JSON values (as :func:`json_value` gives them), vectorised."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype) and not series.hasnans:
        return series.to_numpy(dtype=bool).tolist()
    if pd.api.types.is_integer_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype) and not series.hasnans:
        return series.to_numpy(dtype=np.int64).tolist()
    if pd.api.types.is_float_dtype(dtype):
        numbers = series.to_numpy(dtype=float)
        out: list[Any] = numbers.tolist()
        for i in np.flatnonzero(~np.isfinite(numbers)).tolist():
            out[i] = None
        return out
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        return [None if pd.isna(v) else v.isoformat() for v in series]
    return [json_value(v) for v in series.tolist()]


def geometries_to_geojson(geometries: Any, *, decimals: int = COORD_DECIMALS) -> list[dict[str, Any] | None]:
    """Return shapely geometries (already in EPSG:4326) as GeoJSON geometry dicts.

    Coordinates are rounded to ``decimals`` places and polygon rings are oriented by the
    right-hand rule (exterior counter-clockwise) as RFC 7946 section 3.1.6 asks. Missing and
    empty geometries become ``None``. Vectorised: GEOS writes the JSON of all at once.
    """
    geoms = np.asarray(geometries, dtype=object)
    if geoms.size == 0:
        return []
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    geoms = geoms.copy()
    geoms[missing] = None
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    geoms = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
    texts = shapely.to_geojson(geoms)
    return [None if text is None else json.loads(text) for text in texts]


def geometry_to_geojson(geometry: Any, *, decimals: int = COORD_DECIMALS) -> dict[str, Any] | None:
    """Return one shapely geometry (already in EPSG:4326) as a GeoJSON geometry dict, or ``None`` if empty."""
    return geometries_to_geojson([geometry], decimals=decimals)[0]


def _geometries(gdf: gpd.GeoDataFrame, *, decimals: int) -> list[dict[str, Any] | None]:
    """The GeoJSON geometries of ``gdf`` in EPSG:4326.

    Points (events, crossings: most of what is served page by page) are transformed as two
    coordinate arrays and written as dicts directly, several times faster than reprojecting the
    frame and parsing GEOS's JSON per feature; other geometries go through GEOS.
    """
    geoms = gdf.geometry.to_numpy()
    epsg = gdf.crs.to_epsg()
    if len(geoms) and bool((shapely.get_type_id(geoms) == 0).all()) and not bool(shapely.is_empty(geoms).any()):
        x, y = shapely.get_x(geoms), shapely.get_y(geoms)
        if epsg != 4326:
            x, y = transformer(gdf.crs.to_string(), WEB_CRS).transform(x, y)
        lon = np.round(np.asarray(x, dtype=float), decimals).tolist()
        lat = np.round(np.asarray(y, dtype=float), decimals).tolist()
        return [{"type": "Point", "coordinates": [a, b]} for a, b in zip(lon, lat, strict=True)]
    web = gdf.to_crs(WEB_CRS) if epsg != 4326 else gdf
    return geometries_to_geojson(web.geometry.to_numpy(), decimals=decimals)


def to_features(
    gdf: gpd.GeoDataFrame,
    *,
    id_column: str | None = None,
    decimals: int = COORD_DECIMALS,
) -> list[dict[str, Any]]:
    """Return the rows of ``gdf`` as a list of GeoJSON Feature dicts in EPSG:4326.

    Parameters
    ----------
    gdf
        Any GeoDataFrame with a CRS; it is converted to EPSG:4326.
    id_column
        Column whose value becomes each Feature's ``id`` (it is kept in ``properties`` too).
        Without it, features carry no ``id``.
    decimals
        Decimal places kept in the coordinates.

    Raises
    ------
    CrsError
        If ``gdf`` has no CRS (its coordinates cannot be placed on the globe).
    """
    if gdf.crs is None:
        raise CrsError(f"cannot write GeoJSON: the layer has no CRS; expected one convertible to {WEB_CRS}")
    if id_column is not None and id_column not in gdf.columns:
        raise KeyError(f"id_column {id_column!r} is not a column of the layer (columns: {list(gdf.columns)})")
    geom_name = gdf.geometry.name
    keep = [k for k, c in enumerate(gdf.columns) if c != geom_name]
    columns = [str(gdf.columns[k]) for k in keep]
    geometries = _geometries(gdf, decimals=decimals)
    # Whole columns at once: a page of features is serialised per request, so per-value type
    # tests (json_value) are kept for the columns that need them.
    values = [column_values(gdf.iloc[:, k]) for k in keep]
    features = []
    for geometry, row in zip(geometries, zip(*values, strict=True) if values else ((),) * len(gdf), strict=True):
        properties = dict(zip(columns, row, strict=True))
        feature: dict[str, Any] = {"type": "Feature"}
        if id_column is not None:
            feature["id"] = properties[id_column]
        feature["geometry"] = geometry
        feature["properties"] = properties
        features.append(feature)
    return features


FEATURE_CHUNK = 5_000
"""Features serialised at a time by :func:`iter_feature_collection`."""


def iter_feature_collection(
    gdf: gpd.GeoDataFrame,
    *,
    id_column: str | None = None,
    decimals: int = COORD_DECIMALS,
    members: dict[str, Any] | None = None,
    chunk: int = FEATURE_CHUNK,
) -> Iterator[str]:
    """The text of ``json.dumps(to_feature_collection(gdf, ...), ensure_ascii=False, allow_nan=False)``, in pieces.

    The features are made and serialised ``chunk`` rows at a time, so that writing a large
    layer (a result grid of 300,000 cells) holds one chunk of Python objects at a time instead
    of every feature's dicts and lists and the whole text at once.

    Raises
    ------
    CrsError
        If ``gdf`` has no CRS.
    """
    if gdf.crs is None:
        raise CrsError(f"cannot write GeoJSON: the layer has no CRS; expected one convertible to {WEB_CRS}")
    head: dict[str, Any] = {"type": "FeatureCollection"}
    for key, value in (members or {}).items():
        head[key] = json_value(value)
    head["features"] = []
    text = json.dumps(head, ensure_ascii=False, allow_nan=False)
    yield text[:-2]  # the members, then "features": [
    for start in range(0, len(gdf), max(1, chunk)):
        features = to_features(gdf.iloc[start:start + chunk], id_column=id_column, decimals=decimals)
        body = ", ".join(json.dumps(f, ensure_ascii=False, allow_nan=False) for f in features)
        yield body if start == 0 else ", " + body
    yield "]}"


def to_feature_collection(
    gdf: gpd.GeoDataFrame,
    *,
    id_column: str | None = None,
    decimals: int = COORD_DECIMALS,
    members: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``gdf`` as an RFC 7946 FeatureCollection dict in EPSG:4326.

    Parameters
    ----------
    gdf
        Any GeoDataFrame with a CRS.
    id_column
        Column used as each Feature's ``id``.
    decimals
        Decimal places kept in the coordinates (7 is about 1 cm).
    members
        Extra top-level members (for example ``parameters``, ``links``, ``numberMatched``);
        values are made JSON-safe.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from shapely.geometry import Point
    >>> gdf = gpd.GeoDataFrame({"n": [1]}, geometry=[Point(77000, 75000)], crs="EPSG:2169")
    >>> fc = to_feature_collection(gdf)
    >>> fc["features"][0]["geometry"]["type"]
    'Point'
    """
    collection: dict[str, Any] = {"type": "FeatureCollection"}
    for key, value in (members or {}).items():
        collection[key] = json_value(value)
    collection["features"] = to_features(gdf, id_column=id_column, decimals=decimals)
    return collection
