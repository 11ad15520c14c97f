"""Hotspot backtest: do last quarter's hot cells catch this quarter's events (hit rate, PAI)?"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm import periods
from geo_ibm.errors import ValidationError
from geo_ibm.eventframe import check_probability, event_times, event_xy
from geo_ibm.grid import as_area, bin_counts, locate, square_grid, validate_cell

METHODS = ("top", "gi")

BACKTEST_COLUMNS = [
    "quarter",
    "train_quarter",
    "method",
    "n_train",
    "n_test",
    "predicted_cells",
    "area_share",
    "hits",
    "hit_rate",
    "pai",
    "baseline_hit_rate",
]


def _predict_top(counts: np.ndarray, share: float) -> np.ndarray:
    """The ``ceil(share · n_cells)`` cells with most events (only cells with events; ties by cell_id)."""
    k = int(math.ceil(share * counts.size))
    order = np.lexsort((np.arange(counts.size), -counts))
    chosen = order[:k]
    return np.sort(chosen[counts[chosen] > 0])


def backtest_hotspots(
    events: gpd.GeoDataFrame,
    *,
    study_area: Any,
    cell: float,
    method: Literal["top", "gi"] = "top",
    top_share: float = 0.05,
    band: float | None = None,
    gi_level: int = 2,
    quarters: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Backtest "last quarter's hotspots predict this quarter" on a square grid.

    For each evaluated quarter ``q`` (calendar quarters, Europe/Luxembourg time) the cells
    predicted from the events of ``q − 1`` are scored on the events of ``q``:

    - ``hit_rate`` = share of ``q``'s events (inside the grid) that fall in predicted cells;
    - ``area_share`` = predicted cells' area (clipped to the study area) / study area;
    - ``pai`` = ``hit_rate / area_share``, the Predictive Accuracy Index of Chainey,
      Tompson & Uhlig (2008). Predicting cells at random (or events spread uniformly) gives
      ``hit_rate ≈ area_share``, i.e. PAI 1: that baseline is ``baseline_hit_rate``.

    Parameters
    ----------
    events
        Point events in EPSG:2169 with ``observed_at``.
    study_area
        Polygon(s) in EPSG:2169 (e.g. Luxembourg's outline); the grid covers it.
    cell
        Square cell size in metres.
    method
        ``"top"``: the ``top_share`` of all cells with the most events in ``q − 1`` (cells
        without events are never predicted, so fewer may be chosen; ties broken by
        ``cell_id``). ``"gi"``: the cells that are Getis–Ord Gi* hot spots of ``q − 1`` at
        confidence bin ``gi_level`` or higher with the FDR correction
        (:func:`geo_ibm.hotspots.gi_star_grid`, :func:`geo_ibm.hotspots.fdr_bins`).
    top_share
        Share of cells predicted by ``"top"`` (0 < top_share < 1).
    band
        Gi* neighbourhood distance in metres for ``"gi"``; default
        :func:`geo_ibm.hotspots.auto_band` on each training quarter.
    gi_level
        1, 2 or 3: 90, 95 or 99 % confidence.
    quarters
        Quarters to evaluate, e.g. ``["2025Q2", "2025Q3"]``; default every quarter after the
        first in the data.

    Returns
    -------
    pandas.DataFrame
        One row per evaluated quarter: ``quarter``, ``train_quarter`` (``q − 1``), ``method``,
        ``n_train`` / ``n_test`` (events of ``q − 1`` / ``q`` inside the grid),
        ``predicted_cells``, ``area_share``, ``hits`` (events of ``q`` in predicted cells),
        ``hit_rate``, ``pai`` (NaN when nothing was predicted or ``q`` has no events),
        ``baseline_hit_rate`` (= ``area_share``, the uniform expectation). ``.attrs["cells"]``
        maps each quarter to the predicted ``cell_id`` array; ``.attrs["grid"]`` is the grid.

    Raises
    ------
    ValidationError
        Unknown ``method``, bad ``top_share``/``gi_level``/``cell``, events in one quarter
        only, or a requested quarter outside the data.
    """
    if method not in METHODS:
        raise ValidationError(f"method must be one of {METHODS}, got {method!r}")
    check_probability(top_share, name="top_share")
    if gi_level not in (1, 2, 3):
        raise ValidationError(f"gi_level must be 1, 2 or 3, got {gi_level!r}")
    area = as_area(study_area)
    cell = validate_cell(cell, area)
    xy = event_xy(events)
    q_of = periods.local_periods(event_times(events), "Q").to_numpy()
    q_all = pd.period_range(q_of.min(), q_of.max(), freq="Q")
    if len(q_all) < 2:
        raise ValidationError(f"events span a single quarter ({q_all[0]}); a backtest needs at least two")
    targets = list(q_all[1:]) if quarters is None else [_target(q, q_all) for q in quarters]
    grid = square_grid(area, cell=cell)
    spec = grid.attrs["grid"]
    cell_of = locate(xy, spec)
    cell_area = grid.geometry.area.to_numpy()
    total_area = area.area
    rows, cells = [], {}
    for q in targets:
        train = (q_of == q - 1) & (cell_of >= 0)
        test = (q_of == q) & (cell_of >= 0)
        counts = bin_counts(xy[train], spec)
        if method == "top":
            predicted = _predict_top(counts, top_share)
        else:
            predicted = _predict_gi(counts, spec, band=band, level=gi_level)
        flag = np.zeros(spec.n_cells, dtype=bool)
        flag[predicted] = True
        n_test = int(test.sum())
        hits = int(flag[cell_of[test]].sum())
        a_share = float(cell_area[predicted].sum() / total_area)
        hit_rate = hits / n_test if n_test else math.nan
        pai = hit_rate / a_share if a_share > 0 and n_test else math.nan
        rows.append(
            {
                "quarter": str(q),
                "train_quarter": str(q - 1),
                "method": method,
                "n_train": int(train.sum()),
                "n_test": n_test,
                "predicted_cells": int(predicted.size),
                "area_share": a_share,
                "hits": hits,
                "hit_rate": hit_rate,
                "pai": pai,
                "baseline_hit_rate": a_share,
            }
        )
        cells[str(q)] = predicted
    out = pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
    out.attrs["cells"] = cells
    out.attrs["grid"] = grid
    out.attrs["parameters"] = {"cell": cell, "method": method, "top_share": top_share, "band": band, "gi_level": gi_level}
    return out


def _target(value: object, q_all: pd.PeriodIndex) -> pd.Period:
    """A requested quarter, checked to have events in it and in the quarter before."""
    try:
        target = periods.quarter_period(value, name="quarters")
    except ValidationError:
        raise ValidationError(f"quarters: {value!r} is not a quarter such as '2025Q2'") from None
    if target - 1 < q_all[0] or target > q_all[-1]:
        raise ValidationError(
            f"quarters: {target} needs events in {target - 1} and {target}; the data span {q_all[0]}..{q_all[-1]}"
        )
    return target


def _predict_gi(counts: np.ndarray, spec: Any, *, band: float | None, level: int) -> np.ndarray:
    from geo_ibm.hotspots import auto_band, fdr_bins, gi_star_grid

    if counts.sum() == 0 or np.all(counts == counts[0]):
        return np.zeros(0, dtype=np.int64)
    if band is None:
        band, _ = auto_band(counts, spec)
    gi = gi_star_grid(counts, spec, band=band)
    bins = fdr_bins(gi.z, gi.p, fdr=True)
    return np.flatnonzero(bins >= level)
