"""Demand for a plan: events aggregated to cells (weighted by events or persons, optional recency decay), or a user's file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import PathLike
from geo_ibm.planning.candidates import csv_coordinates
from geo_ibm.planning.coverage import MAX_DEMAND
from geo_ibm.planning.files import read_point_file
from geo_ibm.planning.spacetime import hour_of_week
from geo_ibm.settings import WORKING_CRS

WEIGHTS = ("events", "persons")
MIN_CELL_M, MAX_CELL_M = 10.0, 5_000.0


@dataclass(frozen=True)
class Demand:
    """Demand points and, for space-time plans, the events behind them.

    Attributes
    ----------
    points
        GeoDataFrame (EPSG:2169): ``weight`` (what the plan covers), ``events``, ``persons``,
        ``geometry`` (the mean position of the cell's events, or the file's point).
    event_point, event_hour, event_weight
        Per event: its row in ``points``, its hour of the week (0 = Monday 00-01, -1 when
        unknown, as for a demand file) and its weight.
    """

    points: gpd.GeoDataFrame
    event_point: np.ndarray
    event_hour: np.ndarray
    event_weight: np.ndarray

    @property
    def xy(self) -> np.ndarray:
        return np.column_stack([self.points.geometry.x.to_numpy(), self.points.geometry.y.to_numpy()])


def demand_from_events(events: gpd.GeoDataFrame, *, weight: str = "events", cell: float = 100.0,
                       half_life_days: float | None = None) -> Demand:
    """Events aggregated to square cells of ``cell`` metres.

    Parameters
    ----------
    weight
        ``events`` (each event counts 1) or ``persons`` (its persons).
    cell
        Cell side in metres, in ``[10, 5000]``.
    half_life_days
        Recency decay: an event ``t`` days before the latest counts ``0.5 ** (t / half_life_days)``.

    Raises
    ------
    ValidationError
        Naming ``demand`` (no events), ``weight``, ``cell`` or ``half_life_days``.
    """
    if weight not in WEIGHTS:
        raise ValidationError(f"weight must be one of {WEIGHTS}, got {weight!r}",
                              [Problem("unknown weight", column="weight", value=weight)])
    if not (MIN_CELL_M <= float(cell) <= MAX_CELL_M):
        raise ValidationError(f"cell must be {MIN_CELL_M:g}..{MAX_CELL_M:g} m, got {cell!r}",
                              [Problem("cell out of range", column="cell", value=cell)])
    if len(events) == 0:
        raise ValidationError("demand: no events in the period and filter", [Problem("no demand", column="demand")])
    gdf = events.to_crs(WORKING_CRS)
    x, y = gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()
    persons = gdf["persons"].to_numpy(dtype=float) if "persons" in gdf else np.ones(len(gdf))
    w = persons.copy() if weight == "persons" else np.ones(len(gdf))
    if half_life_days is not None:
        if not (np.isfinite(half_life_days) and 0 < half_life_days <= 3_650):
            raise ValidationError(f"half_life_days must be in (0, 3650], got {half_life_days!r}",
                                  [Problem("bad half-life", column="half_life_days", value=half_life_days)])
        stamps = gdf["observed_at"]
        age = (stamps.max() - stamps).dt.total_seconds().to_numpy() / 86_400.0
        w = w * 0.5 ** (age / half_life_days)
    key = pd.MultiIndex.from_arrays([np.floor(x / cell).astype(np.int64), np.floor(y / cell).astype(np.int64)])
    codes, uniques = pd.factorize(key)
    codes = np.asarray(codes)
    n = len(uniques)
    if n > MAX_DEMAND:
        raise ValidationError(f"cell: {n:,} demand cells of {cell:g} m; a plan takes at most {MAX_DEMAND:,} (use a "
                              f"larger cell)", [Problem("too many demand cells", column="cell", value=cell)])
    count = np.bincount(codes, minlength=n).astype(float)
    mx, my = np.bincount(codes, weights=x, minlength=n) / count, np.bincount(codes, weights=y, minlength=n) / count
    points = gpd.GeoDataFrame({
        "weight": np.bincount(codes, weights=w, minlength=n),
        "events": count.astype(np.int64),
        "persons": np.bincount(codes, weights=persons, minlength=n).astype(np.int64),
    }, geometry=gpd.points_from_xy(mx, my), crs=WORKING_CRS)
    hours = hour_of_week(gdf["observed_at"]) if "observed_at" in gdf else np.full(len(gdf), -1, dtype=np.int64)
    return Demand(points, codes.astype(np.int64), hours, w)


def load_demand(path: PathLike, *, weight_column: str = "weight") -> Demand:
    """Demand points from a user's CSV (lat/lon or x/y), GeoJSON or GeoPackage with a weight column.

    Raises
    ------
    ValidationError
        Listing bad rows (file, row, column): a weight that is not a number ``>= 0``, a bad
        coordinate or a geometry that is not a point; naming ``demand`` when the file is empty,
        too large or all weights are 0.
    """
    file = Path(path).name
    frame, spatial = read_point_file(path, what="demand")
    if len(frame) == 0:
        raise ValidationError(f"demand: {file} has no rows", [Problem("no demand", file=file, column="demand")])
    if len(frame) > MAX_DEMAND:
        raise ValidationError(f"demand: {file} has {len(frame):,} rows; a plan takes at most {MAX_DEMAND:,}",
                              [Problem("too much demand", file=file, column="demand", value=len(frame))])
    if weight_column not in frame.columns:
        raise ValidationError(f"demand: {file} has no weight column {weight_column!r}",
                              [Problem("weight column missing", file=file, column=weight_column)])
    problems: list[Problem] = []
    first_row = 1 if spatial else 2
    raw = frame[weight_column]
    w = pd.to_numeric(raw.astype(str).str.strip().str.replace(",", ".", regex=False), errors="coerce").to_numpy(float)
    for pos in np.flatnonzero(~np.isfinite(w) | (w < 0)):
        problems.append(Problem("weight must be a number >= 0", file=file, row=first_row + int(pos),
                                column=weight_column, value=raw.iloc[pos]))
    if spatial:
        geom = frame.geometry
        bad = (geom.isna() | geom.is_empty | (geom.geom_type != "Point")).to_numpy()
        for pos in np.flatnonzero(bad):
            problems.append(Problem("not a point", file=file, row=1 + int(pos), column="geometry"))
        ok = ~bad
        x = np.zeros(len(frame))
        y = np.zeros(len(frame))
        x[ok], y[ok] = geom[ok].x.to_numpy(), geom[ok].y.to_numpy()
    else:
        x, y, _ = csv_coordinates(frame, file=file, what="demand", problems=problems)
    if problems:
        problems.sort(key=lambda p: (p.row or 0, p.column or ""))
        raise ValidationError(f"demand: {file} has {len(problems)} bad value(s)", problems)
    if w.sum() <= 0:
        raise ValidationError(f"demand: every weight in {file} is 0", [Problem("no demand", file=file, column="demand")])
    points = gpd.GeoDataFrame({"weight": w, "events": np.zeros(len(w), dtype=np.int64),
                               "persons": np.zeros(len(w), dtype=np.int64)},
                              geometry=gpd.points_from_xy(x, y), crs=WORKING_CRS)
    n = len(w)
    return Demand(points, np.arange(n, dtype=np.int64), np.full(n, -1, dtype=np.int64), w)
