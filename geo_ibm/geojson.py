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
    return [None if text is None else json.loads(text) for text in _geojson_texts(geometries, decimals=decimals)]


def _geojson_texts(geometries: Any, *, decimals: int, crs: Any = None) -> list[str | None]:
    """The GeoJSON text GEOS writes for each geometry once in EPSG:4326, rounded and oriented; ``None`` if missing or empty.

    ``crs``: the geometries' CRS when it is not EPSG:4326; they are reprojected and rounded
    in one pass over their coordinates.
    """
    geoms = np.asarray(geometries, dtype=object)
    if geoms.size == 0:
        return []
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    geoms = geoms.copy()
    geoms[missing] = None
    if crs is not None:
        to_web = transformer(crs, WEB_CRS)

        def lonlat(xy: np.ndarray) -> np.ndarray:
            return np.round(np.column_stack(to_web.transform(xy[:, 0], xy[:, 1])), decimals)

        geoms = shapely.transform(geoms, lonlat)
    else:
        geoms = shapely.transform(geoms, lambda xy: np.round(xy, decimals))
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    texts: list[str | None] = shapely.to_geojson(geoms).tolist()
    return texts


def geometry_to_geojson(geometry: Any, *, decimals: int = COORD_DECIMALS) -> dict[str, Any] | None:
    """Return one shapely geometry (already in EPSG:4326) as a GeoJSON geometry dict, or ``None`` if empty."""
    return geometries_to_geojson([geometry], decimals=decimals)[0]


def _point_lonlat(gdf: gpd.GeoDataFrame, *, decimals: int) -> tuple[list[float], list[float]] | None:
    """Longitudes and latitudes (rounded) of a layer of points only, none empty; ``None`` for any other layer.

    Points (events, crossings: most of what is served page by page) are transformed as two
    coordinate arrays, several times faster than reprojecting the frame and going through GEOS.
    """
    geoms = gdf.geometry.to_numpy()
    if not len(geoms) or not bool((shapely.get_type_id(geoms) == 0).all()) or bool(shapely.is_empty(geoms).any()):
        return None
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    if gdf.crs.to_epsg() != 4326:
        x, y = transformer(gdf.crs.to_string(), WEB_CRS).transform(x, y)
    return np.round(np.asarray(x, dtype=float), decimals).tolist(), np.round(np.asarray(y, dtype=float), decimals).tolist()


def _web_texts(gdf: gpd.GeoDataFrame, *, decimals: int) -> list[str | None]:
    return _geojson_texts(gdf.geometry.to_numpy(), decimals=decimals,
                          crs=None if gdf.crs.to_epsg() == 4326 else gdf.crs.to_string())


def _geometries(gdf: gpd.GeoDataFrame, *, decimals: int) -> list[dict[str, Any] | None]:
    """The GeoJSON geometries of ``gdf`` in EPSG:4326 (points written as dicts directly, others through GEOS)."""
    points = _point_lonlat(gdf, decimals=decimals)
    if points is not None:
        return [{"type": "Point", "coordinates": [a, b]} for a, b in zip(*points, strict=True)]
    return [None if text is None else json.loads(text) for text in _web_texts(gdf, decimals=decimals)]


def _geometry_texts(gdf: gpd.GeoDataFrame, *, decimals: int) -> list[str]:
    """The JSON text of :func:`_geometries`' geometries: points formatted here, others as GEOS writes them."""
    points = _point_lonlat(gdf, decimals=decimals)
    if points is not None:
        return [f'{{"type": "Point", "coordinates": [{a!r}, {b!r}]}}' for a, b in zip(*points, strict=True)]
    return ["null" if t is None else t for t in _web_texts(gdf, decimals=decimals)]


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def column_texts(series: pd.Series) -> list[str]:
    """The JSON text of each value of one column, as ``json.dumps`` writes :func:`column_values`' values."""
    dtype = series.dtype
    values = column_values(series)
    plain = not isinstance(dtype, pd.CategoricalDtype) and not series.hasnans
    if pd.api.types.is_bool_dtype(dtype) and plain:
        return ["true" if v else "false" for v in values]
    if pd.api.types.is_integer_dtype(dtype) and plain:
        return list(map(str, values))
    if pd.api.types.is_float_dtype(dtype):
        # json.dumps writes a float as its repr; column_values made the non-finite ones None
        return ["null" if v is None else float.__repr__(v) for v in values]
    return [_ENCODE(v) for v in values]


def _property_columns(gdf: gpd.GeoDataFrame, id_column: str | None) -> tuple[list[int], list[str]]:
    """The positions and names of ``gdf``'s columns but its geometry, once the layer is checked to be writable."""
    if gdf.crs is None:
        raise CrsError(f"cannot write GeoJSON: the layer has no CRS; expected one convertible to {WEB_CRS}")
    if id_column is not None and id_column not in gdf.columns:
        raise KeyError(f"id_column {id_column!r} is not a column of the layer (columns: {list(gdf.columns)})")
    geom_name = gdf.geometry.name
    keep = [k for k, c in enumerate(gdf.columns) if c != geom_name]
    return keep, [str(gdf.columns[k]) for k in keep]


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
    keep, columns = _property_columns(gdf, id_column)
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


def feature_texts(
    gdf: gpd.GeoDataFrame,
    *,
    id_column: str | None = None,
    decimals: int = COORD_DECIMALS,
) -> list[str]:
    """The JSON text of each of :func:`to_features`' features, written without making them as dicts.

    Parsed, each is the same as ``json.dumps(feature, ensure_ascii=False, allow_nan=False)``
    of the matching feature; the text of a geometry other than a point is GEOS's (the same
    numbers, without spaces). Columns are turned into text whole (:func:`column_texts`) and
    each feature is one string formatting: about three times faster than making the features
    and serialising them (a grid of 306,000 cells: 3.4 s instead of 11.2 s, docs/ARCHIVE.md).

    Raises
    ------
    CrsError
        If ``gdf`` has no CRS.
    KeyError
        If ``id_column`` is not a column of ``gdf``.
    """
    keep, names = _property_columns(gdf, id_column)
    texts = [column_texts(gdf.iloc[:, k]) for k in keep]
    # one %-template per feature: the keys are fixed text (a % in a name doubled), the values slots
    keys = [_ENCODE(name).replace("%", "%%") for name in names]
    template = '{"type": "Feature", '
    slots = [_geometry_texts(gdf, decimals=decimals)]
    if id_column is not None:
        template += '"id": %s, '
        slots.insert(0, texts[names.index(id_column)])
    template += '"geometry": %s, "properties": {' + ", ".join(f"{key}: %s" for key in keys) + "}}"
    return [template % row for row in zip(*slots, *texts, strict=True)]


def features_text(gdf: gpd.GeoDataFrame, *, id_column: str | None = None, decimals: int = COORD_DECIMALS) -> str:
    """The JSON array of :func:`feature_texts` (a page of features, a collection's ``features``)."""
    return "[" + ", ".join(feature_texts(gdf, id_column=id_column, decimals=decimals)) + "]"


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
    """The text of :func:`to_feature_collection`'s collection, in pieces.

    Parsed, the pieces joined are ``to_feature_collection(gdf, ...)``; the features are written
    ``chunk`` rows at a time by :func:`feature_texts`, so that writing a large layer (a result
    grid of 300,000 cells) holds one chunk's text at a time instead of the whole text at once.

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
        body = ", ".join(feature_texts(gdf.iloc[start:start + chunk], id_column=id_column, decimals=decimals))
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
