"""Local Moran's I (LISA) cluster and outlier analysis with seeded conditional permutation inference."""
from __future__ import annotations

from typing import Any, Literal, NamedTuple

import geopandas as gpd
import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.eventframe import (
    check_fraction,
    check_length,
    check_probability,
    check_whole,
    event_weights,
    event_xy,
    select_events,
)
from geo_ibm.grid import GridSpec, H3Spec, as_area, bin_counts, grid_spec, make_grid, subset_grid
from geo_ibm.hotspots import (
    MIN_EVENTS,
    auto_band,
    benjamini_hochberg,
    choose_cell,
    distance_band_weights,
    validate_band,
)

QUADRANT_NAMES = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}
"""Quadrant codes as esda's ``Moran_Local.q``: 1 high-high, 2 low-high, 3 low-low, 4 high-low."""

_CHUNK_ELEMENTS = 4_000_000  # bounds the (cells x permutations x neighbours) work array


class LocalMoran(NamedTuple):
    """Local Moran's I per feature.

    ``i``: the statistic ``(n-1) z_i lag_i / sum z**2`` (esda's ``Is``) with row-standardised
    weights; ``lag``: mean of the neighbours' deviations; ``quadrant``: 1..4 as
    :data:`QUADRANT_NAMES`; ``p_sim``: folded pseudo p-value ``(min(larger, perms-larger)+1) /
    (perms+1)``; ``z_sim``: ``(i - mean(sim)) / std(sim)``; ``neighbours``: neighbour count.
    Features without neighbours get ``i = 0`` and ``p_sim = z_sim = nan``.
    """

    i: np.ndarray
    lag: np.ndarray
    quadrant: np.ndarray
    p_sim: np.ndarray
    z_sim: np.ndarray
    neighbours: np.ndarray


def neighbour_weights(coords: np.ndarray, *, band: float | None = None, k: int | None = None) -> sparse.csr_matrix:
    """Binary neighbour matrix (no self-neighbours): within ``band`` metres, or the ``k`` nearest."""
    xy = np.asarray(coords, dtype=float)
    if (band is None) == (k is None):
        raise ValidationError("give exactly one of band or k", [Problem("need one", column="band/k", value=(band, k))])
    if band is not None:
        return distance_band_weights(xy, check_length(band, name="band"), include_self=False)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 or k >= len(xy):
        raise ValidationError(
            f"k must be a whole number between 1 and {len(xy) - 1}, got {k!r}",
            [Problem("out of range", column="k", value=k)],
        )
    _, idx = cKDTree(xy).query(xy, k=int(k) + 1)
    n = len(xy)
    rows = np.repeat(np.arange(n), k)
    # drop each point itself (normally column 0; with coincident points it can be elsewhere)
    cols = np.where(idx[:, 1:] == np.arange(n)[:, None], idx[:, :1], idx[:, 1:]).ravel()
    return sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))


def local_moran_values(
    values: np.ndarray,
    coords: np.ndarray,
    *,
    band: float | None = None,
    k: int | None = None,
    permutations: int = 999,
    seed: int | None = None,
) -> LocalMoran:
    """Local Moran's I with row-standardised binary weights and conditional permutations.

    Parameters
    ----------
    values
        One value per feature, shape ``(n,)``.
    coords
        Feature locations, shape ``(n, 2)`` metres.
    band, k
        Neighbours within ``band`` metres, or the ``k`` nearest (exactly one of them).
    permutations
        Number of conditional permutations (0 skips inference).
    seed
        Seed of the permutations; the same seed gives the same p-values.

    Notes
    -----
    Conditional permutation holds ``y_i`` fixed and draws its neighbours' values at random
    from the other ``n - 1`` features. As in esda, one set of ``permutations`` index draws
    (of as many indices as the largest neighbour count) is made in bulk and shared by all
    features, each mapping it onto "everyone but me"; features are then processed in
    vectorised chunks.
    """
    y = np.asarray(values, dtype=float)
    xy = np.asarray(coords, dtype=float)
    if xy.shape != (y.size, 2):
        raise ValidationError(f"coords must have shape ({y.size}, 2) to match values, got {xy.shape}")
    permutations = check_whole(permutations, name="permutations")
    n = y.size
    w = neighbour_weights(xy, band=band, k=k)
    card = np.asarray(w.sum(axis=1)).ravel()
    z = y - y.mean()
    den = float(z @ z)
    if den == 0:
        raise ValidationError(
            "values are all equal: Local Moran's I is undefined", [Problem("constant", column="values")]
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        lag = np.where(card > 0, (w @ z) / card, 0.0)
    moran_i = (n - 1) * z * lag / den
    quadrant = np.where(z > 0, np.where(lag > 0, 1, 4), np.where(lag > 0, 2, 3)).astype(np.int8)
    p_sim = np.full(n, np.nan)
    z_sim = np.full(n, np.nan)
    if permutations and n > 1:
        p_sim, z_sim = _conditional_permutations(z, moran_i, card.astype(np.int64), den, permutations, seed)
    return LocalMoran(moran_i, lag, quadrant, p_sim, z_sim, card.astype(np.int64))


def _conditional_permutations(
    z: np.ndarray, observed: np.ndarray, card: np.ndarray, den: float, permutations: int, seed: int | None
) -> tuple[np.ndarray, np.ndarray]:
    n = z.size
    kmax = int(card.max(initial=0))
    p_sim = np.full(n, np.nan)
    z_sim = np.full(n, np.nan)
    if kmax == 0:
        return p_sim, z_sim
    if kmax > n - 1:
        raise ValidationError(f"a feature has {kmax} neighbours but there are only {n - 1} others")
    rng = np.random.default_rng(seed)
    draws = np.empty((permutations, kmax), dtype=np.int64)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(n - 1, 1))
    for lo in range(0, permutations, rows_per_chunk):
        hi = min(permutations, lo + rows_per_chunk)
        keys = rng.random((hi - lo, n - 1))
        # the kmax smallest keys of a row are a uniform sample without replacement
        part = np.argpartition(keys, kmax - 1, axis=1)[:, :kmax] if kmax < n - 1 else np.argsort(keys, axis=1)
        draws[lo:hi] = part[:, :kmax]
    scale = (n - 1) / den
    focal = np.nonzero(card > 0)[0]
    per_chunk = max(1, _CHUNK_ELEMENTS // (permutations * kmax))
    for lo in range(0, focal.size, per_chunk):
        ids = focal[lo : lo + per_chunk]
        # index j >= i means "the (j+1)-th feature", skipping the focal feature itself
        picked = draws[None, :, :] + (draws[None, :, :] >= ids[:, None, None])
        sums = np.cumsum(z[picked], axis=2)
        k_i = card[ids]
        lag_sim = sums[np.arange(ids.size), :, k_i - 1] / k_i[:, None]
        sims = scale * z[ids, None] * lag_sim
        obs = observed[ids, None]
        # The observed I and the simulated ones sum the same values in different orders, so a
        # tie (e.g. an empty cell among empty cells drawing only empty neighbours) can differ in
        # the last bit; without a tolerance such ties would all count as "smaller" and make
        # empty areas look like highly significant low-low clusters.
        tol = 1e-9 * np.maximum(np.abs(obs), np.abs(sims).max(axis=1, keepdims=True))
        larger = (sims >= obs - tol).sum(axis=1)
        larger = np.minimum(larger, permutations - larger)
        p_sim[ids] = (larger + 1.0) / (permutations + 1.0)
        spread = sims.std(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z_sim[ids] = (observed[ids] - sims.mean(axis=1)) / spread
    return p_sim, z_sim


def local_moran(
    grid: gpd.GeoDataFrame,
    *,
    column: str = "count",
    band: float | None = None,
    k: int | None = None,
    permutations: int = 999,
    seed: int | None = None,
    alpha: float = 0.05,
    fdr: bool = True,
) -> gpd.GeoDataFrame:
    """Local Moran's I clusters (HH, LL) and outliers (HL, LH) of ``grid[column]``.

    Parameters
    ----------
    grid
        Polygons with a value column: a grid from :mod:`geo_ibm.grid` (cell centres are used),
        or any polygon layer in EPSG:2169 (centroids are used).
    column
        Column holding the values (event counts by default).
    band, k
        Neighbours within ``band`` metres, or the ``k`` nearest (exactly one).
    permutations, seed
        Conditional permutation inference (:func:`local_moran_values`).
    alpha
        Significance level of the pseudo p-values.
    fdr
        Decide significance by Benjamini–Hochberg at FDR ``alpha`` instead of ``p <= alpha``.
        The smallest pseudo p-value is ``1/(permutations+1)``, so under FDR a cluster of ``m``
        cells among ``n`` can only be found when ``1/(permutations+1) <= m/n * alpha``: raise
        ``permutations`` on large grids (``.attrs['parameters']['min_detectable_cells']``).

    Returns
    -------
    GeoDataFrame with the input's ``cell_id`` (or a new 0-based one), ``column`` as ``count``, and

    - ``lisa_i``: Local Moran's I; ``lisa_z``: its permutation z-score
    - ``lisa_p``: folded pseudo p-value
    - ``lisa_q``: quadrant 1 HH, 2 LH, 3 LL, 4 HL (esda's coding)
    - ``lisa_class``: ``'HH'``, ``'LL'``, ``'HL'``, ``'LH'`` where significant, else ``'not significant'``
    - ``neighbours``: neighbour count; ``geometry``

    ``.attrs["parameters"]`` records the weights, permutations, seed, alpha and FDR use.
    """
    if column not in grid.columns:
        raise ValidationError(f"column {column!r} not found in grid", [Problem("missing column", column=column)])
    check_probability(alpha, name="alpha")
    spec = grid.attrs.get("grid")
    if isinstance(spec, GridSpec) and spec.n_cells == len(grid):
        coords = spec.centres()
    else:
        coords = np.column_stack([grid.geometry.centroid.x, grid.geometry.centroid.y])
    values = grid[column].to_numpy(dtype=float)
    result = local_moran_values(values, coords, band=band, k=k, permutations=permutations, seed=seed)
    p = np.where(np.isfinite(result.p_sim), result.p_sim, 1.0)
    significant = benjamini_hochberg(p, alpha) if fdr else p <= alpha
    significant &= np.isfinite(result.p_sim)
    classes = np.array([QUADRANT_NAMES[q] for q in result.quadrant.tolist()], dtype=object)
    classes[~significant] = "not significant"
    out = gpd.GeoDataFrame(
        {
            "cell_id": grid["cell_id"].to_numpy() if "cell_id" in grid.columns else np.arange(len(grid)),
            "count": values,
            "neighbours": result.neighbours,
            "lisa_i": result.i,
            "lisa_z": result.z_sim,
            "lisa_p": result.p_sim,
            "lisa_q": result.quadrant,
            "lisa_class": classes,
        },
        geometry=grid.geometry.to_numpy(),
        crs=grid.crs,
    )
    out.attrs["parameters"] = {
        "weights": (
            f"distance band {band} m, row-standardised"
            if band is not None
            else f"{k} nearest neighbours, row-standardised"
        ),
        "band": band,
        "k": k,
        "permutations": permutations,
        "seed": seed,
        "alpha": alpha,
        "fdr": "Benjamini-Hochberg over all features" if fdr else "none",
        "n_significant": int(significant.sum()),
        "min_detectable_cells": (
            int(np.ceil(len(grid) / ((permutations + 1) * alpha))) if fdr and permutations else None
        ),
    }
    if isinstance(spec, GridSpec) and spec.n_cells == len(grid):
        out.attrs["grid"] = spec
    return out


def lisa_from_events(
    events: gpd.GeoDataFrame,
    *,
    study_area: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries,
    cell: float | None = None,
    band: float | None = None,
    k: int | None = None,
    shape: Literal["square", "hex"] = "square",
    start: object = None,
    end: object = None,
    weight: str | None = None,
    permutations: int = 999,
    seed: int | None = None,
    alpha: float = 0.05,
    fdr: bool = True,
    min_area_frac: float = 0.0,
    max_draws: float | None = None,
) -> gpd.GeoDataFrame:
    """Events aggregated to a grid over ``study_area``, then :func:`local_moran` of the counts.

    ``max_draws`` bounds the permutation test's work, ``cells x neighbours x permutations``:
    over it, a ``ValidationError`` naming ``band`` (or ``cell`` for an automatic band) is
    raised once the sizes are known and before any permutation is drawn.

    ``cell`` and ``band`` default to the automatic choices of :mod:`geo_ibm.hotspots` (band
    only when ``k`` is not given either). Columns as :func:`local_moran` plus ``area_frac``;
    ``.attrs["parameters"]`` adds ``cell``, ``shape``, ``n_events`` and how ``cell``/``band``
    were chosen.
    """
    area = as_area(study_area)
    selected = select_events(events, start=start, end=end)
    if len(selected) < MIN_EVENTS:
        raise ValidationError(
            f"too few events for a cluster analysis: {len(selected)} selected, at least {MIN_EVENTS} needed",
            [Problem("too few events", column="events", value=len(selected))],
        )
    xy = event_xy(selected)
    params: dict[str, Any] = {"shape": shape, "n_events": len(selected)}
    cell = choose_cell(cell, xy, area, params)
    grid = make_grid(area, cell=cell, shape=shape)
    frac = check_fraction(min_area_frac)
    if frac > 0:
        grid = subset_grid(grid, grid["area_frac"].to_numpy() >= frac)
    grid["count"] = bin_counts(xy, grid, weights=event_weights(selected, weight, name="weight", negative=True))
    if band is None and k is None:
        band, details = auto_band(grid["count"].to_numpy(), grid)
        params["band_method"] = details["method"]
    elif band is not None:
        band = validate_band(band, cell=cell, area=area)
        params["band_method"] = "given"
    if max_draws is not None:
        _check_draws(grid, band=band, k=k, permutations=permutations, limit=max_draws,
                     band_given=params["band_method"] == "given")
    out = local_moran(grid, band=band, k=k, permutations=permutations, seed=seed, alpha=alpha, fdr=fdr)
    out.insert(2, "area_frac", grid["area_frac"].to_numpy())
    out.attrs["parameters"] = {**out.attrs["parameters"], **params, "cell": cell, "band": band}
    return out


def _check_draws(grid: gpd.GeoDataFrame, *, band: float | None, k: int | None, permutations: int, limit: float,
                 band_given: bool) -> None:
    """Refuse a permutation test of more than ``limit`` neighbour draws (cells x neighbours x permutations)."""
    if band is not None:
        spec = grid_spec(grid)
        neighbours = spec.stencil(band, include_self=False)[0].size if not isinstance(spec, H3Spec) else 6
    else:
        neighbours = int(k or 0)
    draws = float(len(grid)) * neighbours * permutations
    if draws > limit:
        name = "band" if band_given or band is None else "cell"
        raise ValidationError(
            f"{name}: {len(grid):,} cells with {neighbours:,} neighbours each and {permutations} permutations make "
            f"{draws:,.0f} draws; at most {limit:,.0f} (use a larger cell, a smaller band or a smaller region)",
            [Problem("permutation test too large", column=name, value=band if name == "band" else None)],
        )
