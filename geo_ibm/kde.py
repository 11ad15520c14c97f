"""Quartic (biweight) kernel density on a regular grid, computed by linear binning and FFT, and its contours."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import geopandas as gpd
import numpy as np
import shapely
from scipy.signal import fftconvolve

from geo_ibm.errors import ValidationError
from geo_ibm.eventframe import check_length, event_weights, event_xy
from geo_ibm.grid import as_area
from geo_ibm.settings import WORKING_CRS

M2_PER_KM2 = 1_000_000.0
MAX_CELLS = 25_000_000
"""Largest padded grid accepted; beyond it the FFT needs gigabytes of memory."""

DEFAULT_CONTOUR_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class KdeResult:
    """A kernel density surface on a north-up grid in EPSG:2169.

    Attributes
    ----------
    density
        2-D array ``(rows, cols)``, row 0 at the north edge, in **events per km²** (or weight
        units per km² when ``weights`` were given). Values are evaluated at cell centres.
    transform
        GDAL-style geotransform ``(x0, cell, 0, y0, 0, -cell)``: ``x0, y0`` is the north-west
        corner of the grid; cell ``(i, j)`` has its centre at
        ``(x0 + (j + 0.5) * cell, y0 - (i + 0.5) * cell)``.
    cell
        Cell size in metres.
    radius
        Search radius (kernel bandwidth) in metres.
    crs
        Always ``"EPSG:2169"``.
    inside
        Boolean array of the grid's shape: cell centre within the study area.
    total_weight
        Number of events (or sum of weights) that entered the estimate.
    """

    density: np.ndarray
    transform: tuple[float, float, float, float, float, float]
    cell: float
    radius: float
    crs: str = WORKING_CRS
    inside: np.ndarray | None = field(default=None, repr=False)
    total_weight: float = 0.0

    @property
    def shape(self) -> tuple[int, int]:
        return self.density.shape  # type: ignore[return-value]

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the x (columns) and y (rows, north to south) coordinates of the cell centres."""
        x0, cell, _, y0, _, _ = self.transform
        rows, cols = self.density.shape
        xs = x0 + (np.arange(cols) + 0.5) * cell
        ys = y0 - (np.arange(rows) + 0.5) * cell
        return xs, ys

    def to_geodataframe(self, *, inside_only: bool = True, min_density: float = 0.0) -> gpd.GeoDataFrame:
        """Return the grid cells as square polygons with their density.

        Columns: ``row``, ``col``, ``density`` (events per km²), ``geometry`` (cell square).
        Only cells inside the study area (``inside_only``) and with ``density > min_density``
        are returned, which keeps the frame small enough for a web map.
        """
        x0, cell, _, y0, _, _ = self.transform
        keep = self.density > min_density
        if inside_only and self.inside is not None:
            keep &= self.inside
        rows, cols = np.nonzero(keep)
        minx = x0 + cols * cell
        maxy = y0 - rows * cell
        geoms = shapely.box(minx, maxy - cell, minx + cell, maxy)
        return gpd.GeoDataFrame(
            {"row": rows, "col": cols, "density": self.density[rows, cols]},
            geometry=geoms,
            crs=self.crs,
        )


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    half = 0.5 * cum[-1]
    i = int(np.searchsorted(cum, half))
    # An exact tie at half the weight averages the two middle values, as np.median does.
    if i + 1 < len(v) and math.isclose(cum[i], half, rel_tol=1e-12):
        return float(0.5 * (v[i] + v[i + 1]))
    return float(v[i])


def default_search_radius(xy: np.ndarray, weights: np.ndarray | None = None) -> float:
    """ArcGIS's default search radius for Kernel Density (ArcGIS 10.2.1 and later).

    ``0.9 · min(SD, sqrt(1/ln 2) · Dm) · n^-0.2`` where ``SD`` is the (weighted) standard
    distance around the (weighted) mean centre, ``Dm`` the (weighted) median distance to the
    mean centre and ``n`` the number of points (or the sum of weights). Returns 0 when all
    points coincide.
    """
    w = np.ones(len(xy)) if weights is None else np.asarray(weights, dtype=float)
    total = float(w.sum())
    centre = (xy * w[:, None]).sum(axis=0) / total
    d2 = ((xy - centre) ** 2).sum(axis=1)
    sd = math.sqrt(float((w * d2).sum()) / total)
    dm = float(np.median(np.sqrt(d2))) if weights is None else _weighted_median(np.sqrt(d2), w)
    return 0.9 * min(sd, math.sqrt(1.0 / math.log(2.0)) * dm) * total ** -0.2


def quartic_kernel(d: np.ndarray, radius: float) -> np.ndarray:
    """Quartic kernel ``3/(π r²) · (1 − (d/r)²)²`` for ``d < r``, else 0 (per m², integrates to 1)."""
    u2 = (np.asarray(d, dtype=float) / radius) ** 2
    return np.where(u2 < 1.0, 3.0 / (math.pi * radius**2) * (1.0 - u2) ** 2, 0.0)


def _kernel_stencil(radius: float, cell: float) -> np.ndarray:
    """The kernel sampled at whole-cell offsets, in events per km² per unit weight."""
    k = int(math.floor(radius / cell))
    off = np.arange(-k, k + 1) * cell
    d = np.hypot(off[None, :], off[:, None])
    return quartic_kernel(d, radius) * M2_PER_KM2


def _linear_bin(
    xy: np.ndarray, w: np.ndarray | None, *, x0: float, y0: float, cell: float, shape: tuple[int, int]
) -> np.ndarray:
    """Spread each point over the four nearest cell centres with bilinear weights.

    Unlike nearest-cell binning this keeps the centre of mass of every point, so the binned
    FFT density matches the exact kernel sum to second order in ``cell / radius``. Points
    whose four neighbours are not all on the grid are dropped (callers pad the grid).
    """
    prow, pcol = shape
    inv = 1.0 / cell
    # Position measured from the first cell centre, in cells.
    fc = xy[:, 0] * inv
    fc -= x0 * inv + 0.5
    fr = xy[:, 1] * -inv
    fr += y0 * inv - 0.5
    keep = (fc >= 0) & (fc < pcol - 1) & (fr >= 0) & (fr < prow - 1)
    if not keep.all():
        fc, fr = fc[keep], fr[keep]
        if w is not None:
            w = w[keep]
    c0 = fc.astype(np.intp)  # truncation == floor, fc >= 0
    r0 = fr.astype(np.intp)
    tc = fc
    tc -= c0
    tr = fr
    tr -= r0
    base = r0
    base *= pcol
    base += c0
    if w is not None:
        sc = 1.0 - tc
        sc *= w
        tc *= w
    else:
        sc = 1.0 - tc
    sr = 1.0 - tr
    size = prow * pcol
    # All four corners are binned on the base index and shifted afterwards: shifting a
    # grid is cheaper than building three more million-element index arrays.
    grid = np.bincount(base, weights=sr * sc, minlength=size)
    grid[1:] += np.bincount(base, weights=sr * tc, minlength=size)[:-1]
    grid[pcol:] += np.bincount(base, weights=tr * sc, minlength=size)[:-pcol]
    grid[pcol + 1 :] += np.bincount(base, weights=tr * tc, minlength=size)[: -pcol - 1]
    return grid.reshape(prow, pcol)


def kernel_density(
    events: gpd.GeoDataFrame,
    *,
    study_area: Any,
    cell: float | None = None,
    radius: float | None = None,
    weights: str | Sequence[float] | np.ndarray | None = None,
) -> KdeResult:
    """Quartic kernel density of point events, as ArcGIS Kernel Density (planar) computes it.

    The grid covers the bounding box of ``study_area``. Each event spreads its weight with the
    quartic kernel ``K(d) = 3/(π r²) · (1 − (d/r)²)²`` (``d < r``), so the surface integrates to
    the number of events (or the weight total). Events are linearly binned to the four nearest
    cell centres and convolved with the kernel sampled at cell offsets by FFT; this matches the
    exact sum at cell centres to second order in ``cell / radius``: with a radius of 15 cells
    or more the surface is within 1 % of the exact sum wherever the density is at least 5 % of
    its maximum (nearest-cell binning would be off by ~4 %). At ArcGIS's default cell size the
    radius is often only 5–10 cells; expect errors of a few % at the rims of isolated kernels
    there, or pass a smaller ``cell``. Events up to ``radius`` outside the grid still contribute.

    Parameters
    ----------
    events
        Point events in EPSG:2169.
    study_area
        Polygon(s) in EPSG:2169 (GeoDataFrame, GeoSeries or shapely geometry); sets the grid
        extent and the ``inside`` mask.
    cell
        Cell size in metres. Default: the shorter side of the study area's bounding box / 250
        (ArcGIS's default).
    radius
        Search radius in metres. Default: ArcGIS's rule, see :func:`default_search_radius`.
    weights
        ``None`` (each event counts 1), a column name (e.g. ``"persons"``) or one value per event.

    Returns
    -------
    KdeResult
        ``density`` in events (or weight units) per km².

    Raises
    ------
    ValidationError
        Empty ``events``, non-positive ``cell``/``radius``, a grid too large, or a default radius
        that cannot be computed (fewer than 2 distinct points).
    """
    xy = event_xy(events)
    if len(xy) == 0:
        raise ValidationError("events is empty; kernel density needs at least one event")
    area = as_area(study_area)
    w = event_weights(events, weights)
    minx, miny, maxx, maxy = area.bounds
    cell_m = min(maxx - minx, maxy - miny) / 250.0 if cell is None else check_length(cell, name="cell")
    if radius is None:
        radius_m = default_search_radius(xy, w)
        if not radius_m > 0:
            raise ValidationError("radius cannot be derived from fewer than 2 distinct event locations; give radius in metres")
    else:
        radius_m = check_length(radius, name="radius")
    result = density_grid(xy, bounds=(minx, miny, maxx, maxy), cell=cell_m, radius=radius_m, weights=w)
    xs, ys = result.cell_centres()
    gx, gy = np.meshgrid(xs, ys)
    return replace(result, inside=shapely.contains_xy(area, gx, gy))


def density_grid(
    xy: np.ndarray,
    *,
    bounds: tuple[float, float, float, float],
    cell: float,
    radius: float,
    weights: np.ndarray | None = None,
) -> KdeResult:
    """Array core of :func:`kernel_density`: quartic density of ``(n, 2)`` coordinates on a grid.

    The grid starts at the north-west corner ``(bounds[0], bounds[3])`` and has
    ``ceil(width / cell)`` columns and ``ceil(height / cell)`` rows. No input checks beyond the
    grid size; ``inside`` of the result is ``None``.
    """
    minx, miny, maxx, maxy = bounds
    cols = max(1, int(math.ceil((maxx - minx) / cell)))
    rows = max(1, int(math.ceil((maxy - miny) / cell)))
    pad = int(math.floor(radius / cell)) + 1
    prow, pcol = rows + 2 * pad, cols + 2 * pad
    if prow * pcol > MAX_CELLS:
        raise ValidationError(
            f"cell {cell:g} m with radius {radius:g} m gives a {rows} x {cols} grid (padded {prow} x {pcol}), "
            f"above {MAX_CELLS} cells; use a larger cell"
        )
    x0, y0 = float(minx), float(maxy)
    grid = _linear_bin(np.asarray(xy, dtype=float), weights, x0=x0 - pad * cell, y0=y0 + pad * cell, cell=cell, shape=(prow, pcol))
    smooth = fftconvolve(grid, _kernel_stencil(radius, cell), mode="same")
    density = np.ascontiguousarray(smooth[pad : pad + rows, pad : pad + cols])
    # FFT round-off leaves tiny non-zero values where the true density is 0.
    density[density < 1e-12 * max(float(density.max()), 1e-300)] = 0.0
    total = float(len(xy) if weights is None else np.sum(weights))
    return KdeResult(
        density=density,
        transform=(x0, float(cell), 0.0, y0, 0.0, -float(cell)),
        cell=float(cell),
        radius=float(radius),
        total_weight=total,
    )


def _rings_to_polygons(points: list[np.ndarray], offsets: list[np.ndarray]) -> list[shapely.Polygon]:
    polys = []
    for pts, offs in zip(points, offsets):
        rings = [pts[offs[i] : offs[i + 1]] for i in range(len(offs) - 1)]
        rings = [r for r in rings if len(r) >= 4]
        if not rings:
            continue
        poly = shapely.Polygon(rings[0], rings[1:])
        if not poly.is_valid:
            poly = shapely.make_valid(poly)
        if not poly.is_empty:
            polys.append(poly)
    return polys


def density_contours(
    kde: KdeResult,
    *,
    levels: Sequence[float] | None = None,
    quantiles: Sequence[float] = DEFAULT_CONTOUR_QUANTILES,
    study_area: Any = None,
) -> gpd.GeoDataFrame:
    """Filled density bands for map display.

    Parameters
    ----------
    kde
        Result of :func:`kernel_density`.
    levels
        Ascending density thresholds (events per km²). Default: the ``quantiles`` of the
        positive density values of cells inside the study area.
    quantiles
        Quantiles used when ``levels`` is ``None``; each in (0, 1).
    study_area
        Optional polygon(s) to clip the bands to.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per band, in EPSG:2169, columns: ``level`` (lower density bound, inclusive),
        ``upper`` (next level, or the maximum density for the top band), ``quantile`` (the
        quantile that gave ``level``, NaN when ``levels`` was given), ``geometry``
        ((Multi)Polygon of the area with ``level <= density < upper``). Bands that would be
        empty are dropped.
    """
    import contourpy

    if not isinstance(kde, KdeResult):
        raise ValidationError(f"kde must be a KdeResult, got {type(kde).__name__}")
    dens = kde.density
    vmax = float(dens.max()) if dens.size else 0.0
    if vmax <= 0:
        raise ValidationError("kde: the density surface is zero everywhere; no contours to draw")
    if levels is None:
        qs = np.asarray(quantiles, dtype=float)
        if qs.ndim != 1 or qs.size == 0 or np.any((qs <= 0) | (qs >= 1)) or np.any(np.diff(qs) <= 0):
            raise ValidationError(f"quantiles must be ascending values in (0, 1), got {list(quantiles)!r}")
        pool = dens[kde.inside] if kde.inside is not None and kde.inside.any() else dens.ravel()
        pool = pool[pool > 0]
        lv = np.quantile(pool, qs)
        lv, first = np.unique(lv, return_index=True)
        qcol = qs[first]
    else:
        lv = np.asarray(levels, dtype=float)
        if lv.ndim != 1 or lv.size == 0 or np.any(~np.isfinite(lv)) or np.any(np.diff(lv) <= 0):
            raise ValidationError(f"levels must be ascending finite numbers, got {list(levels)!r}")
        qcol = np.full(lv.size, np.nan)
    xs, ys = kde.cell_centres()
    # contourpy wants ascending y: flip the north-up rows.
    gen = contourpy.contour_generator(xs, ys[::-1], dens[::-1, :], fill_type=contourpy.FillType.OuterOffset)
    clip = as_area(study_area) if study_area is not None else None
    rows = []
    for i, low in enumerate(lv):
        up = float(lv[i + 1]) if i + 1 < lv.size else vmax
        # The top band is closed at the maximum; nudge its upper bound so the peak cell is kept.
        upper_arg = up if i + 1 < lv.size else np.nextafter(vmax, np.inf) * (1 + 1e-9)
        if up <= low:
            continue
        # FillType.OuterOffset makes filled() return (points, offsets); its annotation covers every fill type.
        filled = cast("tuple[list[np.ndarray], list[np.ndarray]]", gen.filled(float(low), float(upper_arg)))
        points, offsets = filled
        polys = _rings_to_polygons(points, offsets)
        if not polys:
            continue
        geom = shapely.union_all(polys) if len(polys) > 1 else polys[0]
        if clip is not None:
            geom = shapely.intersection(geom, clip)
        if geom.is_empty:
            continue
        rows.append({"level": float(low), "upper": up, "quantile": float(qcol[i]), "geometry": geom})
    return gpd.GeoDataFrame(rows, columns=["level", "upper", "quantile", "geometry"], geometry="geometry", crs=kde.crs)
