"""Read an OpenStreetMap extract (``.osm`` XML or ``.osm.pbf``) into a road layer of the network.

The file is read with GDAL's OSM driver (in the pyogrio wheel), layer ``lines`` (the ways that are
not areas). GDAL gives ``osm_id``, ``name`` and ``highway`` as fields and every other tag in
``other_tags``, a PostgreSQL hstore text such as ``"ref"=>"A3","oneway"=>"yes"``; ``ref``,
``oneway``, ``maxspeed`` and ``junction`` are parsed from it (or taken from fields of those names
when a custom ``OSM_CONFIG_FILE`` makes them fields).

Limits, checked before the file is read: its size (``GEO_IBM_ROADS_MAX_MB``, default
:data:`MAX_OSM_MB` MiB; a Luxembourg extract is a few tens of MiB as ``.osm.pbf``, about ten
times that as XML), and its first bytes (an OSM PBF header block or an ``<osm>`` XML document),
so that GDAL never opens a file of another format given an OSM name; GDAL must then name its
driver OSM. Only ways of the kept classes whose bounds meet Luxembourg plus the margin become
rows, so memory follows the roads kept, not the file. No GDAL configuration option is set: reading
the ``lines`` layer alone needs no interleaved reading, and the driver keeps the node locations in
its own index (in memory up to ``OSM_MAX_TMPFILE_SIZE``, 100 MB, then in a temporary file).
Measured here: a synthetic 17 MiB ``.osm.pbf`` of 300,000 ways and 3 million nodes reads in 3.0 s
(most of it GDAL's parsing) at 0.53 GB peak, 0.23 GB of which the libraries imported.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm import layers
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io.osm import check_osm_file, read_osm_lines
from geo_ibm.network.roads import HIGHWAY_CLASSES, ROAD_COLUMNS
from geo_ibm.settings import WORKING_CRS, env_number, margin_m

MAX_OSM_MB = 2048
"""Largest OpenStreetMap file read, MiB (``GEO_IBM_ROADS_MAX_MB``)."""

ROAD_MARGIN_M = 5000.0
"""Default distance beyond Luxembourg's outline up to which roads are kept, metres.

Events are accepted up to :func:`geo_ibm.settings.margin_m` (2 km by default) outside the outline
and must find a road within the snapping tolerance; roads that leave the country for a few
kilometres (around Schengen, Martelange or Wasserbillig) keep routes between crossings connected.
When ``GEO_IBM_MARGIN_M`` is set above it, that margin is used instead.
"""


MPH_KMH = 1.609344
KNOT_KMH = 1.852
MAX_SPEED_KMH = 300.0
"""A ``maxspeed`` above this is taken as a tagging error (NaN)."""

_ONEWAY = {"yes": 1, "true": 1, "1": 1, "-1": -1, "reverse": -1}
"""``oneway`` values with a direction; any other value (no, alternating, reversible...) is 0."""

ONEWAY_JUNCTIONS: tuple[str, ...] = ("roundabout", "circular")
"""``junction`` values that imply ``oneway=yes`` in OpenStreetMap when the way has no ``oneway`` tag."""

_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*(?:;|$)", re.IGNORECASE)
"""The first of a ``maxspeed``'s ``;``-separated values, a number with an optional unit."""
_TAG_KEYS = ("ref", "oneway", "maxspeed", "junction")


def osm_max_bytes() -> int:
    """Largest OpenStreetMap file :func:`read_osm` reads, in bytes (``GEO_IBM_ROADS_MAX_MB`` MiB)."""
    mib = env_number("GEO_IBM_ROADS_MAX_MB", MAX_OSM_MB, positive=True, what="a number of MiB")
    return int(mib * 2**20)


def road_margin_m() -> float:
    """The default margin of :func:`read_osm`: :data:`ROAD_MARGIN_M`, or ``margin_m()`` when larger."""
    return max(ROAD_MARGIN_M, margin_m())


def read_osm(path: str | os.PathLike[str], *, margin_m: float | None = None) -> gpd.GeoDataFrame:
    """The roads of an OpenStreetMap extract in and around Luxembourg.

    Keeps the ways whose ``highway`` is one of :data:`~geo_ibm.network.roads.HIGHWAY_CLASSES`
    (motorway ... tertiary and their links), reprojects them to EPSG:2169 and clips them to
    Luxembourg's outline (:func:`geo_ibm.layers.luxembourg_outline`) buffered by ``margin_m``. A way
    the clip cuts into several pieces gives one row per piece, each with the way's ``road_id``.

    Tag values:

    - ``ref``: trimmed, several refs joined by ``;`` without spaces (``"A3;E25"``); ``""`` when none.
    - ``name``: ``""`` when none.
    - ``oneway``: ``yes``/``true``/``1`` -> 1, ``-1``/``reverse`` -> -1, any other value -> 0. No
      tag -> 0, except on roundabouts (``junction=roundabout`` or ``circular``), which are one-way
      along the way as OpenStreetMap implies (:data:`ONEWAY_JUNCTIONS`; ``oneway=no`` makes one
      two-way). Nothing is implied from the class: an untagged motorway is 0, as tagged.
    - ``maxspeed`` in km/h: a number (``"50"``), with a unit (``"50 mph"``, ``"10 knots"``,
      ``"50 km/h"``); of several values (``"90;70"``) the first. Implicit values (``"FR:urban"``,
      ``"DE:motorway"``), ``none``, ``signals``, ``walk``, 0 and values above 300 are NaN: the
      graph then uses its speed per class.

    Parameters
    ----------
    path
        An ``.osm`` (XML) or ``.osm.pbf`` file.
    margin_m
        Distance beyond the outline up to which roads are kept, metres (default
        :func:`road_margin_m`).

    Returns
    -------
    GeoDataFrame
        :data:`~geo_ibm.network.roads.ROAD_COLUMNS` (``road_id`` ``"w<osm way id>"``) and
        ``geometry`` (LineString, EPSG:2169), in the file's order.

    Raises
    ------
    ValidationError
        Naming the file: missing, empty, larger than :func:`osm_max_bytes`, not an OSM file,
        corrupt, without roads of the kept classes, or without any of them within Luxembourg plus
        the margin; or a negative ``margin_m``.
    """
    path = Path(path)
    margin = road_margin_m() if margin_m is None else float(margin_m)
    if not np.isfinite(margin) or margin < 0:
        raise ValidationError(f"margin_m must be a number of metres >= 0, got {margin_m!r}",
                              [Problem("negative margin", column="margin_m", value=margin_m)])
    check_osm_file(path, max_bytes=osm_max_bytes())
    area = luxembourg_area(margin)
    # Only the ways whose bounding box meets the area's are built into a frame: a large extract
    # costs parsing time, not memory.
    lines = read_osm_lines(path, highways=HIGHWAY_CLASSES, tags=_TAG_KEYS, bbox=_lonlat_bounds(area))
    roads = roads_from_lines(lines)
    clipped = _clip(roads, area)
    if clipped.empty:
        if lines.empty and read_osm_lines(path, highways=HIGHWAY_CLASSES, tags=_TAG_KEYS, max_features=1).empty:
            raise ValidationError(f"{path}: no roads of the kept classes ({', '.join(HIGHWAY_CLASSES)})",
                                  [Problem("no roads", file=path.name, column="highway")])
        raise ValidationError(f"{path}: none of its roads of the kept classes is within {margin:,.0f} m of "
                              "Luxembourg", [Problem("no roads in Luxembourg", file=path.name, column="geometry")])
    return clipped


def luxembourg_area(margin_m: float) -> shapely.Geometry:
    """Luxembourg's outline buffered by ``margin_m`` metres (EPSG:2169), prepared for repeated tests."""
    # 32 segments a quarter circle: the buffer's edge is within 0.5 m of margin_m for 5 km
    area = shapely.union_all(layers.luxembourg_outline().geometry.to_numpy()).buffer(margin_m, quad_segs=32)
    shapely.prepare(area)
    return area


def _lonlat_bounds(area: shapely.Geometry) -> tuple[float, float, float, float]:
    """Bounds in EPSG:4326 enclosing ``area`` (EPSG:2169), with its edges densified."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(WORKING_CRS, "EPSG:4326", always_xy=True)
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.bounds(area))
    west, south, east, north = to_lonlat.transform_bounds(xmin, ymin, xmax, ymax, densify_pts=21)
    pad = 1e-3  # ~100 m
    return (west - pad, south - pad, east + pad, north + pad)


def roads_from_lines(lines: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """GDAL's OSM ``lines`` (``osm_id``, ``name``, ``highway``, ``other_tags``, any CRS) as a road layer.

    Rows with a highway class outside :data:`~geo_ibm.network.roads.HIGHWAY_CLASSES` or without a
    line geometry are dropped; see :func:`read_osm` for the tag values.

    Returns
    -------
    GeoDataFrame
        :data:`~geo_ibm.network.roads.ROAD_COLUMNS` and ``geometry`` in EPSG:2169, not clipped.
    """
    if lines.crs is None:
        raise ValidationError("OSM lines have no CRS; GDAL's OSM driver gives EPSG:4326")
    kept = lines[lines["highway"].isin(HIGHWAY_CLASSES)]
    geoms = kept.geometry.to_numpy()
    usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    usable &= shapely.get_type_id(geoms) == shapely.GeometryType.LINESTRING
    kept = kept[usable]
    tags = {key: _tag(kept, key) for key in _TAG_KEYS}
    frame = pd.DataFrame({
        "road_id": "w" + kept["osm_id"].astype(str).str.strip(),
        "ref": _clean_ref(tags["ref"]),
        "name": kept["name"].fillna("").astype(str).str.strip() if "name" in kept else "",
        "highway": kept["highway"].astype(str),
        "oneway": parse_oneway(tags["oneway"], junction=tags["junction"]),
        "maxspeed": parse_maxspeed(tags["maxspeed"]),
    }, index=kept.index)
    out = gpd.GeoDataFrame(frame[list(ROAD_COLUMNS)], geometry=kept.geometry.to_numpy(), crs=kept.crs)
    return out.to_crs(WORKING_CRS).reset_index(drop=True)


def clip_to_luxembourg(roads: gpd.GeoDataFrame, *, margin_m: float) -> gpd.GeoDataFrame:
    """The parts of ``roads`` (EPSG:2169) within ``margin_m`` of Luxembourg's outline.

    Lines wholly inside the buffered outline are kept as they are; lines crossing its edge are cut,
    one row per remaining piece (points where a line only touches the edge are dropped).
    """
    return _clip(roads, luxembourg_area(margin_m))


def _clip(roads: gpd.GeoDataFrame, area: shapely.Geometry) -> gpd.GeoDataFrame:
    geoms = roads.geometry.to_numpy()
    inside = shapely.contains_properly(area, geoms)
    crossing = ~inside & shapely.intersects(area, geoms)
    pieces = geoms.copy()
    pieces[crossing] = shapely.intersection(geoms[crossing], area)
    keep = inside | crossing
    cut = gpd.GeoDataFrame(roads.drop(columns=roads.geometry.name)[keep], geometry=pieces[keep], crs=WORKING_CRS)
    parts = cut.explode(index_parts=False)
    parts = parts[(parts.geom_type == "LineString") & ~parts.geometry.is_empty & (parts.geometry.length > 0)]
    out = parts.reset_index(drop=True)
    out["oneway"] = out["oneway"].astype(np.int8)
    out["maxspeed"] = out["maxspeed"].astype(float)
    return out


def parse_oneway(values: pd.Series, *, junction: pd.Series | None = None) -> np.ndarray:
    """OSM ``oneway`` values as int8: 1 along the way, -1 against it, 0 both ways.

    A missing (or empty) value is 0, unless the way's ``junction`` (same index) is one of
    :data:`ONEWAY_JUNCTIONS`: then 1, the direction OpenStreetMap implies.
    """
    key = values.astype(object).fillna("").astype(str).str.strip().str.lower()
    oneway = key.map(_ONEWAY).fillna(0).to_numpy(dtype=np.int8, copy=True)
    if junction is not None:
        kind = junction.astype(object).fillna("").astype(str).str.strip().str.lower()
        oneway[(key == "").to_numpy() & kind.isin(ONEWAY_JUNCTIONS).to_numpy()] = 1
    return oneway


def parse_maxspeed(values: pd.Series) -> np.ndarray:
    """OSM ``maxspeed`` values in km/h, NaN when missing or implicit (see :func:`read_osm`)."""
    speed = np.full(len(values), np.nan)
    present = values.notna().to_numpy()
    if not present.any():
        return speed
    found = values[present].astype(str).str.extract(_SPEED)
    number = pd.to_numeric(found[0], errors="coerce").to_numpy(dtype=float, copy=True)
    unit = found[1].fillna("").str.lower().to_numpy(dtype=object)
    factor = np.where(unit == "mph", MPH_KMH, np.where(unit == "knots", KNOT_KMH, 1.0))
    number *= factor
    number[~((number > 0) & (number <= MAX_SPEED_KMH))] = np.nan
    speed[present] = number
    return speed


def hstore_value(tags: pd.Series, key: str) -> pd.Series:
    """The value of ``key`` in each hstore text of ``tags`` (``"k"=>"v","k2"=>"v2"``); NaN when absent.

    Quotes and backslashes inside keys and values are backslash-escaped, so the match cannot start
    inside another tag's value.
    """
    escaped = re.escape(key.replace("\\", "\\\\").replace('"', '\\"'))
    pattern = rf'(?:^|,)\s*"{escaped}"\s*=>\s*"((?:[^"\\]|\\.)*)"'
    out = np.full(len(tags), np.nan, dtype=object)
    present = tags.notna().to_numpy()
    if present.any():
        found = tags[present].astype(str).str.extract(pattern, expand=False)
        values = found.str.replace(r"\\(.)", r"\1", regex=True)
        out[present] = values.astype(object).where(found.notna(), np.nan).to_numpy(dtype=object)
    return pd.Series(out, index=tags.index, dtype=object)


def _tag(lines: pd.DataFrame, key: str) -> pd.Series:
    """Tag ``key`` of each line: its own field when GDAL made one, else from ``other_tags``/``all_tags``.

    The tags are hstore text by default; with ``tags_format=json`` in GDAL's OSM configuration
    they are JSON, which pyogrio hands over already decoded (as dicts).
    """
    if key in lines.columns:
        return lines[key].astype(object).where(lines[key].notna(), np.nan)
    for column in ("other_tags", "all_tags"):
        if column in lines.columns:
            tags = lines[column]
            present = tags.dropna()
            if len(present) and (isinstance(present.iloc[0], dict) or str(present.iloc[0]).lstrip().startswith("{")):
                return tags.map(lambda t: _json_tag(t, key)).astype(object)
            return hstore_value(tags, key)
    return pd.Series(np.nan, index=lines.index, dtype=object)


def _json_tag(tags: object, key: str) -> object:
    if isinstance(tags, str):
        try:
            tags = json.loads(tags)
        except ValueError:
            return np.nan
    value = tags.get(key) if isinstance(tags, dict) else None
    return np.nan if value is None else str(value)


def _clean_ref(refs: pd.Series) -> np.ndarray:
    out = np.full(len(refs), "", dtype=object)
    present = refs.notna().to_numpy()
    out[present] = [";".join(r.strip() for r in str(v).split(";") if r.strip()) for v in refs[present]]
    return out
