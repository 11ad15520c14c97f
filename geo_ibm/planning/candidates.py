"""Candidate control sites: the shipped layer and user files, validated row by row.

A candidate table is a GeoDataFrame of points in EPSG:2169 with the user's id column (its name
kept, ``site_id`` for the shipped layer), ``required`` and ``excluded`` (bool) and any other
columns the file had; ``attrs["id_column"]`` names the id column so every result carries it.
"""
from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import PathLike
from geo_ibm.planning.coverage import MAX_SITES
from geo_ibm.planning.files import read_point_file, read_shipped_sites
from geo_ibm.settings import WORKING_CRS

ID_COLUMNS = ("site_id", "id", "crossing_id", "name")
"""Id columns looked for, in order, when the caller names none."""

MAX_OUTSIDE_M = 1_000.0
"""Farthest a candidate may lie outside Luxembourg's outline (crossings sit on the border line)."""

_TRUE = {"1", "true", "yes", "y", "x"}
_FALSE = {"", "0", "false", "no", "n"}


def shipped_candidates() -> gpd.GeoDataFrame:
    """The shipped candidate sites (``data/boundaries/control_sites.geojson``).

    Returns
    -------
    GeoDataFrame
        ``site_id``, ``name``, ``kind`` (crossing, service_area, station, bus_hub,
        park_and_ride), ``source``, ``coord_quality``, ``notes``, ``required`` and ``excluded``
        (all False), ``geometry`` (Point, EPSG:2169).
    """
    gdf = read_shipped_sites()
    gdf = gdf[["site_id", "name", "kind", "source", "coord_quality", "notes", "geometry"]].copy()
    gdf["required"] = False
    gdf["excluded"] = False
    gdf.attrs["id_column"] = "site_id"
    return gdf


def _flags(values: pd.Series, *, column: str, file: str, first_row: int, problems: list[Problem]) -> np.ndarray:
    out = np.zeros(len(values), dtype=bool)
    for pos, raw in enumerate(values.to_numpy()):
        text = "" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw).strip().lower()
        if text in _TRUE or raw is True:
            out[pos] = True
        elif text not in _FALSE and raw is not False:
            problems.append(Problem("not a yes/no flag (yes, no, true, false, 1, 0 or empty)", file=file,
                                    row=first_row + pos, column=column, value=raw))
    return out


def load_candidates(path: PathLike, *, id_column: str | None = None,
                    outline: gpd.GeoDataFrame | None = None, max_sites: int = MAX_SITES) -> gpd.GeoDataFrame:
    """Candidate sites from a user's CSV, GeoJSON or GeoPackage file, every row checked.

    Parameters
    ----------
    path
        CSV with ``lat``/``lon`` (WGS84) or ``x``/``y`` (EPSG:2169) columns, or a point layer.
    id_column
        The file's id column, carried through to every result; default: the first of
        :data:`ID_COLUMNS` the file has.
    outline
        Luxembourg's outline; a site farther than :data:`MAX_OUTSIDE_M` outside it is refused.
        Default: the shipped outline.
    max_sites
        Most rows accepted (checked before any row is validated).

    Returns
    -------
    GeoDataFrame
        The file's columns plus ``required`` and ``excluded`` (bool; from optional columns of
        those names), points in EPSG:2169; ``attrs["id_column"]``.

    Raises
    ------
    ValidationError
        Listing every bad row with file, row (CSV line, or feature number) and column: a
        missing or duplicate id, a coordinate that is not a number or lies outside the
        territory, a geometry that is not a point, a bad flag, a site both required and excluded.
    """
    file = Path(path).name
    frame, spatial = read_point_file(path, what="candidates")
    if len(frame) == 0:
        raise ValidationError(f"candidates: {file} has no rows", [Problem("no rows", file=file, column="candidates")])
    if len(frame) > max_sites:
        raise ValidationError(f"candidates: {file} has {len(frame):,} rows; a plan takes at most {max_sites:,} sites",
                              [Problem("too many candidates", file=file, column="candidates", value=len(frame))])
    first_row = 1 if spatial else 2
    columns = [c for c in frame.columns if c != getattr(frame, "_geometry_column_name", None)]
    if id_column is None:
        id_column = next((c for c in ID_COLUMNS if c in columns), None)
        if id_column is None:
            raise ValidationError(f"candidates: {file} has no id column (one of {', '.join(ID_COLUMNS)}); name it with "
                                  f"--id-column", [Problem("no id column", file=file, column="site_id")])
    elif id_column not in columns:
        raise ValidationError(f"candidates: {file} has no column {id_column!r} (columns: {', '.join(map(str, columns))})",
                              [Problem("id column missing", file=file, column=id_column)])
    problems: list[Problem] = []
    ids = frame[id_column].astype(str).str.strip()
    ids = ids.where(frame[id_column].notna(), "")
    for pos in np.flatnonzero((ids == "").to_numpy()):
        problems.append(Problem("empty id", file=file, row=first_row + int(pos), column=id_column))
    dup = ids.duplicated(keep="first") & (ids != "")
    for pos in np.flatnonzero(dup.to_numpy()):
        problems.append(Problem("duplicate id", file=file, row=first_row + int(pos), column=id_column,
                                value=ids.iloc[pos]))
    if spatial:
        gdf = gpd.GeoDataFrame(frame, geometry=frame.geometry.name, crs=frame.crs)
        geom = gdf.geometry
        bad = (geom.isna() | geom.is_empty | (geom.geom_type != "Point")).to_numpy()
        for pos in np.flatnonzero(bad):
            got = None if geom.iloc[pos] is None else geom.iloc[pos].geom_type
            problems.append(Problem("not a point", file=file, row=first_row + int(pos), column="geometry", value=got))
        x = np.zeros(len(geom))
        y = np.zeros(len(geom))
        valid = ~bad
        x[valid], y[valid] = geom[valid].x.to_numpy(), geom[valid].y.to_numpy()
    else:
        x, y, valid = csv_coordinates(frame, file=file, problems=problems)
    required = (_flags(frame["required"], column="required", file=file, first_row=first_row, problems=problems)
                if "required" in columns else np.zeros(len(frame), dtype=bool))
    excluded = (_flags(frame["excluded"], column="excluded", file=file, first_row=first_row, problems=problems)
                if "excluded" in columns else np.zeros(len(frame), dtype=bool))
    for pos in np.flatnonzero(required & excluded):
        problems.append(Problem("both required and excluded", file=file, row=first_row + int(pos), column="excluded"))
    if outline is None:
        from geo_ibm.layers import luxembourg_outline

        outline = luxembourg_outline()
    shape = outline.to_crs(WORKING_CRS).geometry.union_all()
    points = gpd.GeoSeries(gpd.points_from_xy(np.where(valid, x, 0.0), np.where(valid, y, 0.0)), crs=WORKING_CRS)
    outside = points.distance(shape).to_numpy()
    for pos in np.flatnonzero(valid & (outside > MAX_OUTSIDE_M)):
        problems.append(Problem(f"{outside[pos] / 1000:.1f} km outside Luxembourg", file=file, row=first_row + int(pos),
                                column="geometry" if spatial else "lat"))
    if problems:
        problems.sort(key=lambda p: (p.row or 0, p.column or ""))
        raise ValidationError(f"candidates: {file} has {len(problems)} bad value(s); nothing was planned", problems)
    out = gpd.GeoDataFrame(pd.DataFrame(frame[columns]).reset_index(drop=True), geometry=points.to_numpy(),
                           crs=WORKING_CRS)
    out[id_column] = ids.to_numpy()
    out["required"] = required
    out["excluded"] = excluded
    out.attrs["id_column"] = id_column
    return out


def csv_coordinates(frame: pd.DataFrame, *, file: str, what: str = "candidates",
                     problems: list[Problem]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x/y in EPSG:2169 from ``lat``/``lon`` or ``x``/``y`` text columns; bad cells become problems."""
    lower = {str(c).lower(): c for c in frame.columns}
    if "lat" in lower and "lon" in lower:
        names, crs = (lower["lon"], lower["lat"]), 4326
        ranges = ((-180.0, 180.0), (-90.0, 90.0))
    elif "x" in lower and "y" in lower:
        names, crs = (lower["x"], lower["y"]), 2169
        ranges = ((-1e7, 1e7), (-1e7, 1e7))
    else:
        raise ValidationError(f"{what}: {file} needs lat/lon (WGS84) or x/y (EPSG:2169) columns",
                              [Problem("no coordinate columns", file=file, column="lat")])
    values = []
    valid = np.ones(len(frame), dtype=bool)
    for name, (lo, hi) in zip(names, ranges, strict=True):
        raw = frame[name].astype(str).str.strip().str.replace(",", ".", regex=False)
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(num) | (num < lo) | (num > hi)
        for pos in np.flatnonzero(bad):
            problems.append(Problem("not a coordinate number" if not np.isfinite(num[pos]) else "coordinate out of range",
                                    file=file, row=2 + int(pos), column=str(name), value=frame[name].iloc[pos]))
        valid &= ~bad
        values.append(np.where(bad, 0.0, num))
    if crs == 4326:
        pts = gpd.GeoSeries(gpd.points_from_xy(values[0], values[1]), crs=4326).to_crs(WORKING_CRS)
        return pts.x.to_numpy(), pts.y.to_numpy(), valid
    return values[0], values[1], valid
