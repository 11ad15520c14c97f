"""Getis–Ord Gi* hot spots on a grid, FDR-corrected bins, and automatic cell size and distance band."""
from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import geopandas as gpd
import numpy as np
from scipy import sparse, stats
from scipy.spatial import cKDTree
from shapely.geometry.base import BaseGeometry

from geo_ibm import periods
from geo_ibm.errors import Problem, ValidationError
from geo_ibm.eventframe import check_fraction, check_length, event_weights, event_xy, select_events
from geo_ibm.grid import (
    GridSpec,
    as_area,
    bin_counts,
    grid_spec,
    locate,
    make_grid,
    neighbourhood_sum,
    subset_grid,
    validate_cell,
)

MIN_EVENTS = 30
"""Fewest events a hot spot analysis accepts (ArcGIS refuses fewer than 30 features too)."""

CONFIDENCE_LEVELS = (0.10, 0.05, 0.01)
"""Significance levels of bins ±1, ±2, ±3 (90, 95 and 99 % confidence)."""

INCREMENTS = 10
"""Number of distances tried when searching the distance band (as ArcGIS's Incremental Spatial
Autocorrelation default)."""


class GiStar(NamedTuple):
    """Gi* result per feature: z-score, two-sided normal p-value, number of neighbours (self included)."""

    z: np.ndarray
    p: np.ndarray
    neighbours: np.ndarray


# --------------------------------------------------------------------------------------------
# statistics


def distance_band_weights(coords: np.ndarray, band: float, *, include_self: bool) -> sparse.csr_matrix:
    """Binary weights ``w_ij = 1`` when ``0 < d_ij <= band`` (and ``w_ii = 1`` if ``include_self``).

    Distances within a relative 1e-12 of ``band`` count as inside, so that lattice neighbours
    exactly ``band`` apart are not lost to rounding (as in :func:`geo_ibm.grid.neighbourhood_sum`).
    """
    xy = np.asarray(coords, dtype=float)
    n = xy.shape[0]
    pairs = cKDTree(xy).query_pairs(band * (1 + 1e-12), output_type="ndarray")
    i = np.concatenate([pairs[:, 0], pairs[:, 1]])
    j = np.concatenate([pairs[:, 1], pairs[:, 0]])
    if include_self:
        i = np.concatenate([i, np.arange(n)])
        j = np.concatenate([j, np.arange(n)])
    return sparse.csr_matrix((np.ones(i.size), (i, j)), shape=(n, n))


def gi_z_from_sums(
    y: np.ndarray, lag: np.ndarray, weight_sum: np.ndarray, weight_sq_sum: np.ndarray, *, n: int | None = None
) -> np.ndarray:
    """Getis–Ord Gi* z-score from neighbourhood sums (the ArcGIS form of the formula).

    ``z_i = (sum_j w_ij y_j - ybar * W_i) / (S * sqrt((n * sum_j w_ij**2 - W_i**2) / (n - 1)))``
    with ``ybar`` and ``S = sqrt(mean(y**2) - ybar**2)`` taken over all ``n`` features and
    ``W_i = sum_j w_ij`` (self included). For binary weights this equals esda's
    ``G_Local(star=True, transform='B').Zs``. Features whose neighbourhood is everything, or a
    constant ``y``, get ``z = 0``.
    """
    y = np.asarray(y, dtype=float)
    n = y.size if n is None else n
    mean = y.mean()
    spread = math.sqrt(max(float(np.mean(y * y) - mean * mean), 0.0))
    denom_sq = (n * weight_sq_sum - weight_sum**2) / (n - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (lag - mean * weight_sum) / (spread * np.sqrt(denom_sq))
    return np.where(np.isfinite(z) & (denom_sq > 0) & (spread > 0), z, 0.0)


def two_sided_p(z: np.ndarray) -> np.ndarray:
    """Two-sided p-value of a standard normal z-score."""
    return 2.0 * stats.norm.sf(np.abs(np.asarray(z, dtype=float)))


def gi_star(counts: np.ndarray, coords: np.ndarray, *, band: float) -> GiStar:
    """Getis–Ord Gi* with binary distance-band weights, each feature its own neighbour.

    Parameters
    ----------
    counts
        Value per feature (event counts per cell), shape ``(n,)``.
    coords
        Feature locations (cell centres), shape ``(n, 2)``, metres.
    band
        Neighbours are the features within ``band`` metres (inclusive), self included.

    Returns
    -------
    GiStar with ``z`` (identical to esda ``G_Local(y, w, star=True, transform='B').Zs``),
    two-sided normal ``p`` (esda's ``p_norm`` is one-sided) and ``neighbours`` (self included).
    """
    y = np.asarray(counts, dtype=float)
    xy = np.asarray(coords, dtype=float)
    if xy.shape != (y.size, 2):
        raise ValidationError(f"coords must have shape ({y.size}, 2) to match counts, got {xy.shape}")
    band = check_length(band, name="band")
    w = distance_band_weights(xy, band, include_self=True)
    card = np.asarray(w.sum(axis=1)).ravel()
    z = gi_z_from_sums(y, w @ y, card, card)
    return GiStar(z, two_sided_p(z), card.astype(np.int64))


def gi_star_grid(counts: np.ndarray, grid: gpd.GeoDataFrame | GridSpec, *, band: float) -> GiStar:
    """:func:`gi_star` on a grid's cell centres, with neighbourhood sums done by lattice convolution.

    Same result as ``gi_star(counts, grid_spec(grid).centres(), band=band)``, much faster on
    large grids because the distance band is a fixed stencil of the lattice.
    """
    spec = grid_spec(grid)
    y = np.asarray(counts, dtype=float)
    if y.shape != (spec.n_cells,):
        raise ValidationError(f"counts must have one value per grid cell ({spec.n_cells}), got shape {y.shape}")
    band = check_length(band, name="band")
    lag = neighbourhood_sum(y, spec, radius=band)
    card = neighbourhood_sum(np.ones(spec.n_cells), spec, radius=band)
    z = gi_z_from_sums(y, lag, card, card)
    return GiStar(z, two_sided_p(z), card.astype(np.int64))


def bh_adjusted_p(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (``scipy.stats.false_discovery_control``).

    A p-value is a discovery of the step-up procedure at false discovery rate ``a`` exactly
    when its adjusted value is ``<= a``, so one adjustment serves every level. NaNs are left
    out of the count ``m`` and stay NaN (never significant).
    """
    pv = np.asarray(p, dtype=float)
    out = np.full(pv.shape, np.nan)
    ok = np.isfinite(pv)
    if ok.any():
        out[ok] = stats.false_discovery_control(pv[ok], method="bh")
    return out


def bh_adjusted_below(p: np.ndarray, limit: float) -> np.ndarray:
    """:func:`bh_adjusted_p` where it can be ``<= limit``; ``inf`` elsewhere (NaN stays NaN).

    An adjusted p-value is at least the raw one, so only the p-values ``<= limit`` can reach
    it, and being the smallest they hold the same ranks among themselves as among all ``m``:
    they alone are sorted (a few thousand of a grid's cells instead of all of them) and adjusted
    with the same arithmetic as ``scipy.stats.false_discovery_control``, so a decision
    ``adjusted <= a`` for any ``a <= limit`` is the same to the bit.
    """
    pv = np.asarray(p, dtype=float)
    flat = pv.ravel()  # any shape (a cube's cells x steps): one family of tests over every value
    out = np.where(np.isnan(flat), np.nan, np.inf)
    m = int(np.isfinite(flat).sum())
    few = np.flatnonzero(flat <= limit)
    if few.size:
        order = few[np.argsort(flat[few], kind="quicksort")]
        adjusted = flat[order] * (m / np.arange(1, few.size + 1, dtype=float))
        np.minimum.accumulate(adjusted[::-1], out=adjusted[::-1])
        out[order] = np.clip(adjusted, 0.0, 1.0)
    return out.reshape(pv.shape)


def benjamini_hochberg(p: np.ndarray, alpha: float) -> np.ndarray:
    """``True`` where a p-value is a Benjamini–Hochberg discovery at FDR ``alpha`` (NaN never is)."""
    return bh_adjusted_below(p, alpha) <= alpha


def confidence_bins(
    z: np.ndarray, p: np.ndarray, *, levels: tuple[float, float, float] = CONFIDENCE_LEVELS
) -> np.ndarray:
    """Bins −3..+3: the sign of ``z`` times the number of ``levels`` (largest first) that ``p`` meets.

    ``p`` may be raw or already adjusted (:func:`bh_adjusted_p`); NaN meets no level.
    """
    zv = np.asarray(z, dtype=float)
    pv = np.asarray(p, dtype=float)
    level = np.zeros(zv.shape, dtype=np.int8)
    for rank, a in enumerate(sorted(levels, reverse=True), start=1):
        level[pv <= a] = rank
    return (np.sign(zv) * level).astype(np.int8)


def fdr_bins(
    z: np.ndarray,
    p: np.ndarray,
    *,
    fdr: bool = True,
    levels: tuple[float, float, float] = CONFIDENCE_LEVELS,
) -> np.ndarray:
    """Confidence bins −3..+3 as ArcGIS's Hot Spot Analysis ``Gi_Bin``.

    Bin ``±1``, ``±2``, ``±3`` mark a hot (``z > 0``) or cold (``z < 0``) spot significant at
    the 90, 95 and 99 % confidence levels (``levels`` = significance 0.10, 0.05, 0.01); 0 is
    not significant. A feature's bin is the highest level at which it is significant.

    With ``fdr=True`` (ArcGIS's "Apply False Discovery Rate (FDR) correction"), significance at
    each level ``a`` is decided by the Benjamini–Hochberg procedure at FDR ``a`` over all
    features instead of ``p <= a``: the p-values are adjusted once (:func:`bh_adjusted_p`) and
    each level compares the adjusted values, so the three levels stay nested (only those that
    can meet a level are computed: :func:`bh_adjusted_below`).

    Returns
    -------
    int8 array of bins.
    """
    pv = np.asarray(p, dtype=float)
    # only the adjusted values that can meet a level are needed: no sort of every cell
    return confidence_bins(z, bh_adjusted_below(pv, max(levels)) if fdr else pv, levels=levels)


# --------------------------------------------------------------------------------------------
# automatic parameters


def auto_cell_size(xy: np.ndarray) -> tuple[float, dict[str, Any]]:
    """Cell size from the points' nearest-neighbour distances, in the manner of ArcGIS's
    Optimized Hot Spot Analysis (fishnet aggregation).

    Points farther than three standard distances from their mean centre are set aside as
    locational outliers; of the remaining points the mean and the median nearest-neighbour
    distance are computed (coincident points count with distance 0) and the larger of the two
    is used, rounded up to a whole metre. ArcGIS documents the use of the average and median
    nearest-neighbour distances; the outlier rule and rounding are ours.

    Returns
    -------
    (cell, details) where details holds the statistics for ``.attrs['parameters']``.
    """
    pts = np.asarray(xy, dtype=float)
    centre = pts.mean(axis=0)
    offsets = np.hypot(*(pts - centre).T)
    standard_distance = math.sqrt(float(np.mean(offsets**2)))
    keep = offsets <= 3 * standard_distance if standard_distance > 0 else np.ones(len(pts), bool)
    core = pts[keep]
    dist, _ = cKDTree(core).query(core, k=2, workers=-1)
    nn = dist[:, 1]
    mean_nn, median_nn = float(nn.mean()), float(np.median(nn))
    cell = float(math.ceil(max(mean_nn, median_nn)))
    details = {
        "method": "max(mean, median) nearest-neighbour distance of events, outliers (> 3 standard distances) removed",
        "mean_nn_distance": mean_nn,
        "median_nn_distance": median_nn,
        "n_outliers": int((~keep).sum()),
    }
    return cell, details


MAX_AUTO_CELLS = 250_000
"""An automatic cell size is never so small that the study area holds more cells than this
(dense data would otherwise ask for metre-scale cells)."""

MIN_AUTO_CELLS = 30
"""An automatic cell size leaves at least this many cells (ArcGIS wants 30 features for Gi*)."""

EVENTS_PER_CELL = 2.0
"""An automatic cell holds at least about this many events on average: finer grids make maps
of mostly empty cells, with single events showing as significant spots."""

MIN_CELL = 200.0
"""Smallest automatic cell in metres, the finest the web page draws over Luxembourg."""

CELL_STEP = 50.0
"""Automatic cells are rounded to a multiple of this many metres."""


def default_cell_size(
    xy: np.ndarray, area: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries
) -> tuple[float, str]:
    """The cell size grid statistics use when none is given, and how it was chosen.

    The larger of the nearest-neighbour cell of Optimized Hot Spot Analysis
    (:func:`auto_cell_size`) and the cell holding :data:`EVENTS_PER_CELL` events on average,
    ``sqrt(EVENTS_PER_CELL * area / n_events)``, and at least :data:`MIN_CELL`; rounded to the
    nearest multiple of :data:`CELL_STEP`, then kept between :data:`MAX_AUTO_CELLS` and
    :data:`MIN_AUTO_CELLS` cells over ``area``.

    For events inside ``area`` the average-density cell decides in practice: discs of half the
    nearest-neighbour distance around the events do not overlap, which keeps the mean
    nearest-neighbour distance below about ``1.13 sqrt(area / n)``, under the
    ``1.41 sqrt(area / n)`` of two events per cell (the median passes it only for patterns more
    regular than a lattice over most of the area). The nearest-neighbour cell wins when the
    events reach well beyond ``area``. Hexagons of the same centre spacing are 13 % smaller
    than squares, so they hold about 1.7 events each.

    Parameters
    ----------
    xy
        ``(n, 2)`` coordinates (EPSG:2169) of the events to be mapped, at least two.
    area
        The study area the grid covers.

    Returns
    -------
    ``(cell, method)``: the size in metres and a sentence saying how it was chosen (as
    ``cell_method`` in the results' ``parameters``).
    """
    cell, method, _ = _default_cell(np.asarray(xy, dtype=float), as_area(area))
    return cell, method


def _default_cell(xy: np.ndarray, area: BaseGeometry) -> tuple[float, str, dict[str, Any]]:
    n = len(xy)
    if n < 2:
        raise ValidationError(
            f"an automatic cell size needs at least 2 events, got {n}",
            [Problem("too few events", column="events", value=n)],
        )
    nn_cell, details = auto_cell_size(xy)
    details.pop("method")
    density_cell = math.sqrt(EVENTS_PER_CELL * area.area / n)
    chosen = max(nn_cell, density_cell, MIN_CELL)
    rounded = max(math.floor(chosen / CELL_STEP + 0.5) * CELL_STEP, MIN_CELL)
    if chosen == nn_cell:
        method = (
            f"{rounded:g} m: the nearest-neighbour cell of Optimized Hot Spot Analysis (max of mean and median "
            f"nearest-neighbour distance, {nn_cell:.0f} m) rounded to {CELL_STEP:g} m; coarser than "
            f"{EVENTS_PER_CELL:g} events per cell ({density_cell:.0f} m)"
        )
    elif chosen == density_cell:
        method = (
            f"{rounded:g} m: about {EVENTS_PER_CELL:g} events per cell, sqrt({EVENTS_PER_CELL:g} x area / "
            f"{n:,} events) = {density_cell:.0f} m rounded to {CELL_STEP:g} m (the nearest-neighbour cell "
            f"of Optimized Hot Spot Analysis, {nn_cell:.0f} m, is finer)"
        )
    else:
        method = (
            f"{rounded:g} m: the smallest automatic cell ({EVENTS_PER_CELL:g} events per cell would be "
            f"{density_cell:.0f} m, the nearest-neighbour cell {nn_cell:.0f} m)"
        )
    smallest = math.ceil(math.sqrt(area.area / MAX_AUTO_CELLS))
    largest = math.floor(math.sqrt(area.area / MIN_AUTO_CELLS))
    cell = rounded
    if cell < smallest:
        cell = float(smallest)
        method += f"; raised to {smallest} m to stay within {MAX_AUTO_CELLS:,} cells"
    elif cell > largest:
        cell = float(largest)
        method += f"; lowered to {largest} m to give at least {MIN_AUTO_CELLS} cells"
    details.update(
        nearest_neighbour_cell=nn_cell,
        density_cell=density_cell,
        events_per_cell=n * cell**2 / area.area,
    )
    return cell, method, details


def choose_cell(cell: object, xy: np.ndarray, area: BaseGeometry, params: dict[str, Any]) -> float:
    """``cell`` validated, or :func:`default_cell_size` of ``xy`` over ``area``; records
    ``cell_method`` (and, when automatic, ``cell_details``) in ``params``."""
    if cell is not None:
        params["cell_method"] = "given"
        return validate_cell(cell, area)
    value, method, details = _default_cell(np.asarray(xy, dtype=float), area)
    params["cell_method"] = method
    params["cell_details"] = details
    return validate_cell(value, area)


def global_moran_z(y: np.ndarray, grid: gpd.GeoDataFrame | GridSpec, *, band: float) -> tuple[float, float]:
    """Global Moran's I and its z-score (randomisation assumption) with binary band weights.

    Weights are ``w_ij = 1`` for distinct cells within ``band``. Matches esda
    ``Moran(y, w, transformation='B').I`` and ``.z_rand``.
    """
    spec = grid_spec(grid)
    yv = np.asarray(y, dtype=float)
    n = yv.size
    zc = yv - yv.mean()
    lag = neighbourhood_sum(zc, spec, radius=band, include_self=False)
    k = neighbourhood_sum(np.ones(n), spec, radius=band, include_self=False)
    s0 = k.sum()
    m2 = float((zc * zc).sum())
    if s0 == 0 or m2 == 0:
        return float("nan"), float("nan")
    moran_i = n / s0 * float(zc @ lag) / m2
    s1 = 2.0 * s0
    s2 = float(np.sum((2.0 * k) ** 2))
    b2 = n * float(np.sum(zc**4)) / m2**2
    expected = -1.0 / (n - 1)
    a_term = n * ((n * n - 3 * n + 3) * s1 - n * s2 + 3 * s0 * s0)
    b_term = b2 * ((n * n - n) * s1 - 2 * n * s2 + 6 * s0 * s0)
    e_sq = (a_term - b_term) / ((n - 1) * (n - 2) * (n - 3) * s0 * s0)
    var = e_sq - expected**2
    return moran_i, (moran_i - expected) / math.sqrt(var) if var > 0 else float("nan")


def auto_band(counts: np.ndarray, grid: gpd.GeoDataFrame | GridSpec) -> tuple[float, dict[str, Any]]:
    """Distance band by incremental spatial autocorrelation, as ArcGIS's Optimized Hot Spot Analysis.

    Global Moran's I z-scores (:func:`global_moran_z`) of the cell counts are computed for
    ``INCREMENTS`` distances ``d_k = d_0 + k * cell`` starting at ``d_0``, the smallest distance
    giving every cell at least one neighbour. The band is the first peak: the first ``d_k``
    whose z-score is significant (> 1.96), larger than at the previous distance and not smaller
    than at the next (a z-score still rising at the last distance is no peak). Without a peak,
    the band is the mean distance from each non-empty cell to its ``K`` nearest non-empty cells,
    ``K = clip(round(0.05 * n_nonempty), 3, 30)``, but at least ``d_0``. ArcGIS documents the first-peak rule and a K-nearest-neighbour fallback; the
    constants here are ours.
    """
    spec = grid_spec(grid)
    centres = spec.centres()
    y = np.asarray(counts, dtype=float)
    d_nn, _ = cKDTree(centres).query(centres, k=2)
    start = float(d_nn[:, 1].max()) if len(centres) > 1 else spec.cell
    distances = start + spec.cell * np.arange(INCREMENTS)
    zs = np.array([global_moran_z(y, spec, band=d)[1] for d in distances])
    peak = None
    for k in range(1, INCREMENTS - 1):
        if zs[k] > 1.96 and zs[k] > zs[k - 1] and zs[k] >= zs[k + 1]:
            peak = k
            break
    details: dict[str, Any] = {
        "distances": distances.tolist(),
        "moran_z": [None if not np.isfinite(v) else float(v) for v in zs],
    }
    if peak is not None:
        details["method"] = "first peak of Global Moran's I z-score (incremental spatial autocorrelation)"
        return float(distances[peak]), details
    occupied = centres[y > 0]
    k_nn = int(np.clip(round(0.05 * len(occupied)), 3, 30))
    if len(occupied) > k_nn:
        dist, _ = cKDTree(occupied).query(occupied, k=k_nn + 1)
        band = max(float(dist[:, 1:].mean()), start)
    else:
        band = start
    details["method"] = f"no Moran's I peak; mean distance to {k_nn} nearest non-empty cells"
    details["k"] = k_nn
    return band, details


# --------------------------------------------------------------------------------------------
# events -> hot spots


def hotspots_from_events(
    events: gpd.GeoDataFrame,
    *,
    study_area: BaseGeometry | gpd.GeoDataFrame | gpd.GeoSeries,
    cell: float | None = None,
    band: float | None = None,
    shape: Literal["square", "hex"] = "square",
    start: object = None,
    end: object = None,
    weight: str | None = None,
    fdr: bool = True,
    min_area_frac: float = 0.0,
) -> gpd.GeoDataFrame:
    """Gi* hot and cold spots of events aggregated to a grid over the study area.

    Parameters
    ----------
    events
        Point events (EPSG:2169 or convertible) with ``observed_at`` when ``start``/``end`` are used.
    study_area
        Polygon the grid covers (e.g. Luxembourg's outline); cells are clipped to it.
    cell
        Cell size in metres (square side, or hexagon centre spacing). ``None``: :func:`default_cell_size`.
    band
        Neighbourhood distance in metres between cell centres, at least one cell.
        ``None``: :func:`auto_band`.
    shape
        ``"square"`` or ``"hex"``.
    start, end
        Keep events observed in ``[start, end)``.
    weight
        Column to sum per cell (e.g. ``"persons"``) instead of counting events.
    fdr
        Apply the FDR correction in ``gi_bin_fdr`` (default); ``False`` makes it equal ``gi_bin``.
    min_area_frac
        Drop cells of which less than this share lies inside the study area. Clipped slivers
        along the border collect few events and can show up as cold spots for that reason
        alone; ``0`` (default) keeps every cell touching the area.

    Returns
    -------
    GeoDataFrame (EPSG:2169), one row per grid cell, with columns

    - ``cell_id``, ``row``, ``col``, ``area_frac``: as in :func:`geo_ibm.grid.square_grid`
    - ``count``: events (or the sum of ``weight``) in the cell
    - ``neighbours``: cells in the neighbourhood, itself included
    - ``gi_z``: Gi* z-score; ``gi_p``: two-sided p-value
    - ``gi_bin``: −3..+3 confidence bin without correction (``p <= 0.10/0.05/0.01``)
    - ``gi_bin_fdr``: −3..+3 confidence bin with the FDR correction (:func:`fdr_bins`)
    - ``geometry``: the cell clipped to the study area

    ``.attrs["parameters"]`` records ``cell``, ``band`` and how each was chosen, ``shape``,
    ``n_events``, ``n_outside_grid``, ``start``, ``end``, ``weight`` and ``fdr``;
    ``.attrs["grid"]`` keeps the :class:`geo_ibm.grid.GridSpec` (not JSON), so the result can
    go straight to :func:`geo_ibm.lisa.local_moran` or :func:`geo_ibm.grid.locate`.

    Raises
    ------
    ValidationError
        Empty selection, fewer than 30 events, bad ``cell``/``band``/``shape``/``weight``.
    """
    area = as_area(study_area)
    if shape not in ("square", "hex"):
        raise ValidationError(
            f"shape must be 'square' or 'hex', got {shape!r}", [Problem("unknown", column="shape", value=shape)]
        )
    selected = select_events(events, start=start, end=end)
    n_events = len(selected)
    if n_events < MIN_EVENTS:
        raise ValidationError(
            f"too few events for a hot spot analysis: {n_events} selected, at least {MIN_EVENTS} needed",
            [Problem("too few events", column="events", value=n_events)],
        )
    weights = event_weights(selected, weight, name="weight", negative=True)
    xy = event_xy(selected)
    params: dict[str, Any] = {
        "shape": shape,
        "n_events": n_events,
        "start": periods.iso_or_none(start, name="start"),
        "end": periods.iso_or_none(end, name="end"),
        "weight": weight,
    }
    cell_value = choose_cell(cell, xy, area, params)
    grid = make_grid(area, cell=cell_value, shape=shape)
    min_frac = check_fraction(min_area_frac)
    if min_frac > 0:
        grid = subset_grid(grid, grid["area_frac"].to_numpy() >= min_frac)
        if len(grid) < 2:
            raise ValidationError(
                f"min_area_frac={min_frac:g} leaves {len(grid)} cells",
                [Problem("too large", column="min_area_frac", value=min_area_frac)],
            )
    spec = grid_spec(grid)
    counts = bin_counts(xy, spec, weights=weights)
    params["n_outside_grid"] = int((locate(xy, spec) < 0).sum())
    if band is None:
        band_value, details = auto_band(counts, spec)
        params["band_method"] = details.pop("method")
        params["band_details"] = details
    else:
        band_value = validate_band(band, cell=cell_value, area=area)
        params["band_method"] = "given"
    gi = gi_star_grid(counts, spec, band=band_value)
    params.update(
        cell=cell_value,
        band=band_value,
        n_cells=spec.n_cells,
        min_area_frac=min_frac,
        fdr="Benjamini-Hochberg at 0.10/0.05/0.01 over all cells" if fdr else "none",
    )
    out = gi_frame(grid, counts, gi, fdr=fdr)
    out.attrs["parameters"] = params
    return out


def gi_frame(grid: gpd.GeoDataFrame, counts: np.ndarray, gi: GiStar, *, fdr: bool) -> gpd.GeoDataFrame:
    """``grid`` with the Gi* result columns after its own: ``count``, ``neighbours``, ``gi_z``, ``gi_p``,
    ``gi_bin`` (confidence bins) and ``gi_bin_fdr`` (the same under Benjamini-Hochberg when ``fdr``).

    The one layout of a Gi* grid, whether the counts were binned here or summed over an archive's partitions.
    """
    out = grid.copy()
    out.insert(4, "count", counts)
    out.insert(5, "neighbours", gi.neighbours)
    out.insert(6, "gi_z", gi.z)
    out.insert(7, "gi_p", gi.p)
    out.insert(8, "gi_bin", fdr_bins(gi.z, gi.p, fdr=False))
    out.insert(9, "gi_bin_fdr", fdr_bins(gi.z, gi.p, fdr=fdr))
    return out


def validate_band(band: object, *, cell: float, area: BaseGeometry) -> float:
    """Return ``band`` as float, or raise ValidationError naming ``band``.

    A band shorter than the cell spacing leaves every cell alone with itself; one longer than
    the study area's diagonal makes every cell a neighbour of every other (Gi* undefined).
    """
    value = check_length(band, name="band")
    if value < cell:
        raise ValidationError(
            f"band={value:g} m is smaller than the cell size ({cell:g} m): no cell would have a neighbour",
            [Problem("smaller than a cell", column="band", value=band)],
        )
    minx, miny, maxx, maxy = area.bounds
    diagonal = math.hypot(maxx - minx, maxy - miny)
    if value >= diagonal:
        raise ValidationError(
            f"band={value:g} m spans the whole study area (diagonal {diagonal:.0f} m)",
            [Problem("larger than the study area", column="band", value=band)],
        )
    return value


__all__ = [
    "GiStar",
    "auto_band",
    "auto_cell_size",
    "benjamini_hochberg",
    "bh_adjusted_below",
    "bh_adjusted_p",
    "choose_cell",
    "confidence_bins",
    "default_cell_size",
    "distance_band_weights",
    "fdr_bins",
    "gi_star",
    "gi_star_grid",
    "global_moran_z",
    "hotspots_from_events",
    "validate_band",
]
