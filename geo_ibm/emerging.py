"""Emerging hot spot analysis: space-time cube, space-time Gi*, Mann–Kendall trend, ArcGIS's 17 categories."""
from __future__ import annotations

from typing import Any, Literal, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry.base import BaseGeometry

from geo_ibm import periods
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.eventframe import (
    check_fraction,
    check_length,
    check_probability,
    check_whole,
    event_times,
    event_weights,
    event_xy,
    select_events,
)
from geo_ibm.grid import GridSpec, as_area, grid_spec, locate, make_grid, neighbourhood_sum, subset_grid
from geo_ibm.hotspots import (
    CONFIDENCE_LEVELS,
    MIN_EVENTS,
    auto_band,
    bh_adjusted_below,
    choose_cell,
    confidence_bins,
    gi_z_from_sums,
    two_sided_p,
    validate_band,
)

MIN_STEPS = 6
"""Fewest time steps accepted (ArcGIS asks for ten for a trend; with fewer than ten the
90 % rule means "every step")."""

_STEP_FREQ = {"quarter": "Q", "month": "M"}

CATEGORIES = (
    "new hot spot",
    "consecutive hot spot",
    "intensifying hot spot",
    "persistent hot spot",
    "diminishing hot spot",
    "sporadic hot spot",
    "oscillating hot spot",
    "historical hot spot",
    "new cold spot",
    "consecutive cold spot",
    "intensifying cold spot",
    "persistent cold spot",
    "diminishing cold spot",
    "sporadic cold spot",
    "oscillating cold spot",
    "historical cold spot",
    "no pattern detected",
)
"""The 17 categories of ArcGIS's Emerging Hot Spot Analysis, as :func:`classify_emerging` names them."""


class MannKendall(NamedTuple):
    """Mann–Kendall trend test per series: statistic ``s``, its variance, ``z`` and two-sided ``p``."""

    s: np.ndarray
    var: np.ndarray
    z: np.ndarray
    p: np.ndarray


def mann_kendall(series: np.ndarray, *, continuity: bool = True) -> MannKendall:
    """Mann–Kendall trend test along the last axis, with the tie correction.

    ``S = sum_{i<j} sign(x_j - x_i)``;
    ``Var(S) = [n(n-1)(2n+5) - sum_g t_g(t_g-1)(2t_g+5)] / 18`` over groups of ``t_g`` tied
    values; ``z = (S - sign(S)) / sqrt(Var(S))`` with the continuity correction, else
    ``S / sqrt(Var(S))``; ``p = 2 * (1 - Phi(|z|))``. A series without variance gets ``z = 0``,
    ``p = 1``. Positive ``z`` is an upward trend.
    """
    x = np.asarray(series, dtype=float)
    flat = x.ndim == 1
    x2 = x[None, :] if flat else x.reshape(-1, x.shape[-1])
    n_loc, n = x2.shape
    s = np.zeros(n_loc)
    for lag in range(1, n):
        s += np.sign(x2[:, lag:] - x2[:, :-lag]).sum(axis=1)
    ordered = np.sort(x2, axis=1)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = np.cumsum(starts.ravel()) - 1
    sizes = np.bincount(group).astype(float)
    group_row = np.nonzero(starts.ravel())[0] // n
    tie_term = np.bincount(group_row, weights=sizes * (sizes - 1) * (2 * sizes + 5), minlength=n_loc)
    var = (n * (n - 1) * (2 * n + 5) - tie_term) / 18.0
    numerator = s - np.sign(s) if continuity else s
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(var > 0, numerator / np.sqrt(var), 0.0)
    p = two_sided_p(z)
    shape = x.shape[:-1]
    if flat:
        return MannKendall(s[0], var[0], z[0], p[0])
    return MannKendall(s.reshape(shape), var.reshape(shape), z.reshape(shape), p.reshape(shape))


def classify_emerging(
    bins: np.ndarray, trend_z: np.ndarray, trend_p: np.ndarray, *, alpha: float = 0.05
) -> np.ndarray:
    """ArcGIS Emerging Hot Spot Analysis category of each location.

    Parameters
    ----------
    bins
        ``(n_locations, n_steps)`` significance of each space-time bin: > 0 a statistically
        significant hot spot, < 0 a significant cold spot, 0 neither (``gi_bin``-style −3..+3
        values work; any non-zero value counts as significant).
    trend_z, trend_p
        Mann–Kendall trend of each location's Gi* z-scores over time.
    alpha
        A trend is significant when ``trend_p < alpha``.

    Returns
    -------
    Array of category names (:data:`CATEGORIES`).

    Notes
    -----
    With ``n`` steps, "90 %" means at least ``0.9 n`` significant steps. The definitions,
    following ESRI's "How Emerging Hot Spot Analysis works" (cold spots mirror hot spots):

    - **new**: hot in the final step and never significant (hot or cold) before.
    - **consecutive**: one uninterrupted run of at least two hot steps ending at the final step,
      never hot before that run, less than 90 % hot, never cold.
    - **intensifying**: hot in at least 90 % of steps including the final one, significant
      upward trend.
    - **persistent**: hot in at least 90 % of steps including the final one, no significant trend.
    - **diminishing**: hot in at least 90 % of steps including the final one, significant
      downward trend.
    - **sporadic**: hot in the final step, on and off before (neither new nor consecutive),
      less than 90 % hot, never cold.
    - **oscillating**: hot in the final step, cold in some earlier step, less than 90 % hot.
    - **historical**: not significant in the final step, but hot in at least 90 % of steps.
    - **no pattern detected**: anything else.

    Where ESRI's wording lets two categories apply, the state of the final step decides: a
    location that was cold before is "oscillating" rather than "new"/"consecutive" (ESRI's
    "new" says only "never hot before"), and a location cold in the final step after 90 %
    hot steps is an "oscillating cold spot" rather than a "historical hot spot". Persistent,
    intensifying and diminishing all need the final step significant, so that they and
    "historical" split the ≥ 90 % locations by the final step.
    """
    b = np.asarray(bins)
    if b.ndim != 2:
        raise ValidationError(f"bins must be a 2-D array (locations x steps), got shape {b.shape}")
    n_loc, n_steps = b.shape
    tz = np.asarray(trend_z, dtype=float).reshape(-1)
    tp = np.asarray(trend_p, dtype=float).reshape(-1)
    if tz.size != n_loc or tp.size != n_loc:
        raise ValidationError(f"trend_z and trend_p need one value per location ({n_loc})")
    hot, cold = b > 0, b < 0
    significant_trend = tp < alpha
    up, down = significant_trend & (tz > 0), significant_trend & (tz < 0)
    out = np.full(n_loc, "no pattern detected", dtype=object)
    for side, this, other, rising, falling in (("hot", hot, cold, up, down), ("cold", cold, hot, down, up)):
        n_this = this.sum(axis=1)
        n_other = other.sum(axis=1)
        mostly = n_this >= 0.9 * n_steps
        last = this[:, -1]
        trailing = np.cumprod(this[:, ::-1], axis=1).sum(axis=1)
        # "intensifying" means a strengthening pattern: rising z for hot spots, falling for cold
        rules = [
            (last & mostly & rising, "intensifying"),
            (last & mostly & falling, "diminishing"),
            (last & mostly & ~significant_trend, "persistent"),
            (last & ~mostly & (n_other > 0), "oscillating"),
            (last & ~mostly & (n_this == 1), "new"),
            (last & ~mostly & (trailing >= 2) & (trailing == n_this), "consecutive"),
            (last & ~mostly, "sporadic"),
            (~last & ~b[:, -1].astype(bool) & mostly, "historical"),
        ]
        taken = np.zeros(n_loc, dtype=bool)
        for mask, name in rules:
            pick = mask & ~taken
            out[pick] = f"{name} {side} spot"
            taken |= pick
    return out


def space_time_cube(
    events: gpd.GeoDataFrame,
    grid: gpd.GeoDataFrame | GridSpec,
    *,
    step: Literal["quarter", "month"] = "quarter",
    start: object = None,
    end: object = None,
    weight: str | None = None,
) -> tuple[np.ndarray, pd.PeriodIndex]:
    """Event counts per grid cell and calendar step (Europe/Luxembourg time).

    Returns
    -------
    ``(cube, steps)``: ``cube`` of shape ``(n_cells, n_steps)`` (int64 counts, or float sums of
    ``weight``) and the ``PeriodIndex`` of the steps, from the step holding ``start`` (or the
    first event) to the one holding the last instant before ``end`` (or the last event).
    """
    if step not in _STEP_FREQ:
        raise ValidationError(
            f"step must be 'quarter' or 'month', got {step!r}", [Problem("unknown", column="step", value=step)]
        )
    spec = grid_spec(grid)
    selected = select_events(events, start=start, end=end)
    return _cube(selected, event_xy(selected), spec, step=step, start=start, end=end, weight=weight)


def _cube(
    selected: gpd.GeoDataFrame,
    xy: np.ndarray,
    spec: GridSpec,
    *,
    step: str,
    start: object,
    end: object,
    weight: str | None,
) -> tuple[np.ndarray, pd.PeriodIndex]:
    freq = _STEP_FREQ[step]
    steps_of = periods.local_periods(event_times(selected), freq)
    first = periods.local_period(start, freq, name="start") if start is not None else steps_of.min()
    # the last step is the one holding the last instant before the (exclusive) end
    last = (
        periods.local_period(periods.to_timestamp(end, name="end") - pd.Timedelta(1, "ns"), freq, name="end")
        if end is not None
        else steps_of.max()
    )
    steps = pd.period_range(first, last, freq=freq)
    if len(steps) == 0:
        raise ValidationError(
            f"no {step} lies between start={start} and end={end}", [Problem("empty period", column="start")]
        )
    t = steps_of.array.asi8 - first.ordinal
    cells = locate(xy, spec)
    keep = cells >= 0
    flat = cells[keep] * len(steps) + t[keep]
    w = event_weights(selected, weight, name="weight", negative=True)
    size = spec.n_cells * len(steps)
    if w is None:
        cube = np.bincount(flat, minlength=size).astype(np.int64)
    else:
        cube = np.bincount(flat, weights=w[keep], minlength=size)
    return cube.reshape(spec.n_cells, len(steps)), steps


def space_time_gi(
    cube: np.ndarray,
    grid: gpd.GeoDataFrame | GridSpec,
    *,
    band: float,
    neighborhood_time_step: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Space-time Gi* z-scores and two-sided p-values of every bin of ``cube``.

    A bin's neighbours are the bins of the cells within ``band`` metres (itself included) in
    the same step and in the ``neighborhood_time_step`` previous steps (fewer at the start of
    the series), with binary weights; mean and spread are taken over the whole cube, as
    ArcGIS's space-time Gi* does.
    """
    spec = grid_spec(grid)
    y = np.asarray(cube, dtype=float)
    if y.ndim != 2 or y.shape[0] != spec.n_cells:
        raise ValidationError(f"cube must have shape ({spec.n_cells}, n_steps), got {y.shape}")
    k = check_whole(neighborhood_time_step, name="neighborhood_time_step")
    band = check_length(band, name="band")
    n_steps = y.shape[1]
    spatial = neighbourhood_sum(y, spec, radius=band)
    card_space = neighbourhood_sum(np.ones(spec.n_cells), spec, radius=band)
    running = np.cumsum(spatial, axis=1)
    lag = running.copy()
    if k + 1 < n_steps:
        lag[:, k + 1 :] -= running[:, : n_steps - k - 1]
    depth = np.minimum(np.arange(n_steps), k) + 1
    card = card_space[:, None] * depth[None, :]
    z = gi_z_from_sums(y.ravel(), lag.ravel(), card.ravel(), card.ravel()).reshape(y.shape)
    return z, two_sided_p(z)


def emerging_frame(grid: gpd.GeoDataFrame, cube: np.ndarray, z: np.ndarray, p: np.ndarray, *, alpha: float,
                   fdr: bool) -> gpd.GeoDataFrame:
    """The emerging hot spot layer from a cube's space-time Gi* (``z``, ``p``: cells x steps).

    Columns: ``cell_id``, ``area_frac``, ``count``, ``category``, ``trend_z``, ``trend_p``
    (Mann-Kendall of the z-scores), ``n_steps_hot``, ``n_steps_cold``, ``last_step_bin``. The FDR
    correction is made once over every bin of the cube; the final step's bins come from it too.
    The one layout, whether the cube was binned here or summed over an archive's partitions.
    """
    # adjusted only where a value can meet alpha or a level of the last step's bins
    decided = bh_adjusted_below(p, max(alpha, *CONFIDENCE_LEVELS)) if fdr else p
    bins = np.sign(z).astype(np.int8) * (decided <= alpha)
    trend = mann_kendall(z)
    categories = classify_emerging(bins, trend.z, trend.p, alpha=alpha)
    return gpd.GeoDataFrame(
        {
            "cell_id": grid["cell_id"].to_numpy(),
            "area_frac": grid["area_frac"].to_numpy(),
            "count": cube.sum(axis=1),
            "category": categories,
            "trend_z": trend.z,
            "trend_p": trend.p,
            "n_steps_hot": (bins > 0).sum(axis=1),
            "n_steps_cold": (bins < 0).sum(axis=1),
            "last_step_bin": confidence_bins(z[:, -1], decided[:, -1]),
        },
        geometry=grid.geometry.to_numpy(),
        crs=grid.crs,
    )


def emerging_hotspots(
    events: gpd.GeoDataFrame,
    *,
    study_area: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries,
    cell: float | None = None,
    band: float | None = None,
    step: Literal["quarter", "month"] = "quarter",
    start: object = None,
    end: object = None,
    neighborhood_time_step: int = 1,
    alpha: float = 0.05,
    fdr: bool = True,
    shape: Literal["square", "hex"] = "square",
    weight: str | None = None,
    min_area_frac: float = 0.0,
    max_cube_cells: int | None = None,
) -> gpd.GeoDataFrame:
    """Emerging hot spot categories of the grid cells over ``study_area``.

    Steps: events are counted per cell and calendar ``step`` (:func:`space_time_cube`); each
    bin gets a space-time Gi* z-score (:func:`space_time_gi`); a bin is a significant hot/cold
    spot when its p-value passes ``alpha`` (Benjamini–Hochberg over all bins when ``fdr``, as
    ArcGIS applies FDR here); each cell's Gi* z-series gets a Mann–Kendall trend
    (:func:`mann_kendall`); :func:`classify_emerging` names the pattern.

    Parameters
    ----------
    cell, band
        Grid cell size and spatial neighbourhood in metres; ``None`` picks them as
        :func:`geo_ibm.hotspots.hotspots_from_events` does, from all selected events.
    step
        ``"quarter"`` or ``"month"``.
    start, end
        Keep events observed in ``[start, end)``; they also fix the first and last step.
    neighborhood_time_step
        Previous steps included in a bin's neighbourhood.
    alpha
        Significance level of the bins and of the trend.
    max_cube_cells
        Most space-time bins (cells x steps) to analyse; more raise a ``ValidationError``
        naming ``cell`` before any Gi* is computed.

    Returns
    -------
    GeoDataFrame, one row per cell, with columns

    - ``cell_id``, ``area_frac``: as in :func:`geo_ibm.grid.square_grid`
    - ``count``: events over all steps
    - ``category``: one of :data:`CATEGORIES`
    - ``trend_z``, ``trend_p``: Mann–Kendall trend of the cell's Gi* z-scores
    - ``n_steps_hot``, ``n_steps_cold``: steps in which the cell was a significant hot/cold spot
    - ``last_step_bin``: −3..+3 Gi* confidence bin of the final step (FDR-corrected when ``fdr``)
    - ``geometry``: the cell clipped to the study area

    ``.attrs["parameters"]`` records cell, band (and how chosen), step, the step labels,
    neighborhood_time_step, alpha, FDR, n_events and the count of each category.
    """
    area = as_area(study_area)
    check_probability(alpha, name="alpha")
    selected = select_events(events, start=start, end=end)
    if len(selected) < MIN_EVENTS:
        raise ValidationError(
            f"too few events for an emerging hot spot analysis: {len(selected)} selected, at least {MIN_EVENTS} needed",
            [Problem("too few events", column="events", value=len(selected))],
        )
    params: dict[str, Any] = {"n_events": len(selected), "shape": shape, "step": step}
    xy = event_xy(selected)
    cell = choose_cell(cell, xy, area, params)
    grid = make_grid(area, cell=cell, shape=shape)
    frac = check_fraction(min_area_frac)
    if frac > 0:
        grid = subset_grid(grid, grid["area_frac"].to_numpy() >= frac)
    spec = grid_spec(grid)
    if step not in _STEP_FREQ:
        raise ValidationError(
            f"step must be 'quarter' or 'month', got {step!r}", [Problem("unknown", column="step", value=step)]
        )
    cube, steps = _cube(selected, xy, spec, step=step, start=start, end=end, weight=weight)
    if max_cube_cells is not None and cube.size > max_cube_cells:
        # Each bin of the cube gets its own Gi* over space and time: refuse before any of them.
        raise ValidationError(
            f"cell: {cube.shape[0]:,} cells x {len(steps)} {step}s make {cube.size:,} space-time bins; at most "
            f"{max_cube_cells:,} (use a larger cell, a shorter period or a smaller region)",
            [Problem("space-time cube too large", column="cell", value=cell)],
        )
    if len(steps) < MIN_STEPS:
        raise ValidationError(
            f"only {len(steps)} {step}s to analyse, at least {MIN_STEPS} needed",
            [Problem("too few time steps", column="step", value=len(steps))],
        )
    if band is None:
        band, details = auto_band(cube.sum(axis=1), spec)
        params["band_method"] = details["method"]
    else:
        band = validate_band(band, cell=cell, area=area)
        params["band_method"] = "given"
    z, p = space_time_gi(cube, spec, band=band, neighborhood_time_step=neighborhood_time_step)
    out = emerging_frame(grid, cube, z, p, alpha=alpha, fdr=fdr)
    categories = out["category"].to_numpy()
    params.update(
        cell=cell,
        band=band,
        steps=[str(s) for s in steps],
        neighborhood_time_step=neighborhood_time_step,
        alpha=alpha,
        fdr="Benjamini-Hochberg over all space-time bins" if fdr else "none",
        categories={name: int((categories == name).sum()) for name in CATEGORIES if (categories == name).any()},
    )
    out.attrs["parameters"] = params
    out.attrs["grid"] = spec
    return out
