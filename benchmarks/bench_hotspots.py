"""Time grid binning, Gi* + FDR, the esda route and emerging hot spots on synthetic events over Luxembourg."""
from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from geo_ibm.emerging import mann_kendall, space_time_gi
from geo_ibm.grid import bin_counts, grid_spec, locate, make_grid
from geo_ibm.hotspots import fdr_bins, gi_star_grid

Timing = tuple[str, float, str]
"""(label, seconds, note) of one measured step."""

EXTRA_BENCHMARKS: list[Callable[[np.ndarray, BaseGeometry, int], list[Timing]]] = []
"""Further timings printed after the hot spot ones, each called as ``fn(xy, study_area, repeat)``.

This is where the kernel density timings go (ours vs KDEpy vs scikit-learn vs a bincount + FFT
floor, see ``bench_kde.py``): append a function returning ``[(label, seconds, note), ...]``.
"""


def kde_timings(xy: np.ndarray, area: BaseGeometry, repeat: int) -> list[Timing]:
    """Quartic KDE on the same events: ours, a bincount + FFT floor, KDEpy (see bench_kde.py for all)."""
    import geopandas as gpd
    from bench_kde import best_of  # same folder; run as a script
    from scipy.signal import fftconvolve

    from geo_ibm.kde import _kernel_stencil, kernel_density

    radius = 2_000.0
    events = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169")
    t_ours, kde = best_of(lambda: kernel_density(events, study_area=area, radius=radius), repeat)
    rows, cols = kde.shape
    x0, cell, _, y0 = kde.transform[0], kde.transform[1], kde.transform[2], kde.transform[3]
    stencil = _kernel_stencil(radius, cell)

    def floor() -> np.ndarray:
        # The least work possible: nearest-cell bincount, one FFT convolution, precomputed kernel.
        pad = int(radius // cell) + 1
        pr, pc = rows + 2 * pad, cols + 2 * pad
        ci = ((xy[:, 0] - x0) / cell).astype(np.intp) + pad
        ri = ((y0 - xy[:, 1]) / cell).astype(np.intp) + pad
        ok = (ci >= 0) & (ci < pc) & (ri >= 0) & (ri < pr)
        grid = np.bincount(ri[ok] * pc + ci[ok], minlength=pr * pc).reshape(pr, pc)
        return fftconvolve(grid, stencil, mode="same")[pad:-pad, pad:-pad]

    t_floor, _ = best_of(floor, repeat)

    def floor_from_frame() -> np.ndarray:
        geoms = np.asarray(events.geometry.values)
        nonlocal xy_frame
        xy_frame = np.column_stack([shapely.get_x(geoms), shapely.get_y(geoms)])
        return floor()

    xy_frame = xy
    t_floor_frame, _ = best_of(floor_from_frame, repeat)
    from geo_ibm.kde import density_grid

    t_grid, _ = best_of(lambda: density_grid(xy, bounds=area.bounds, cell=kde.cell, radius=radius), repeat)
    out: list[Timing] = [
        (f"KDE quartic r={radius:.0f} m, {rows}x{cols} cells of {kde.cell:.0f} m (ours, GeoDataFrame in)", t_ours,
         f"{t_ours / t_floor_frame:.2f}x the floor with the same input (target <= 1.5x)"),
        ("KDE floor incl. coordinates from the GeoDataFrame", t_floor_frame, "nearest-cell bincount + FFT"),
        ("KDE ours, arrays in (density_grid, linear binning)", t_grid,
         f"{t_grid / t_floor:.2f}x the arrays-in floor; linear binning costs 4 weighted bincounts"),
        ("KDE floor: bincount + fftconvolve (arrays in)", t_floor, "no binning correction, no GeoDataFrame"),
    ]
    try:
        from KDEpy import FFTKDE

        def kdepy() -> np.ndarray:
            est = FFTKDE(kernel="biweight", bw=radius / math.sqrt(7), norm=2).fit(xy)
            return est.evaluate((cols + 20, rows + 20))

        t_kdepy, _ = best_of(kdepy, repeat)
        out.append(("KDE KDEpy FFTKDE biweight 2-D (similar grid)", t_kdepy, "reference"))
    except ImportError:
        out.append(("KDE KDEpy FFTKDE", math.nan, "KDEpy not installed"))
    from sklearn.neighbors import KernelDensity

    m = min(5_000, len(xy))
    sample = xy[:m]
    centres = np.stack(np.meshgrid(np.linspace(*area.bounds[::2], cols), np.linspace(*area.bounds[1::2], rows)), axis=-1).reshape(-1, 2)
    t_sk, _ = best_of(lambda: KernelDensity(kernel="epanechnikov", bandwidth=radius).fit(sample).score_samples(centres), 1)
    out.append((f"KDE sklearn KernelDensity epanechnikov, {m:,} events", t_sk,
                f"reference; ~{t_sk * len(xy) / m:.0f} s extrapolated to {len(xy):,}"))
    return out


EXTRA_BENCHMARKS.append(kde_timings)


def study_area() -> tuple[BaseGeometry, str]:
    """Luxembourg's outline if the shipped layer can be read, else a box of its extent."""
    try:
        from geo_ibm.layers import luxembourg_outline

        return luxembourg_outline().geometry.union_all(), "Luxembourg outline (data/boundaries)"
    except Exception as exc:  # the layer may be missing in a bare checkout
        return shapely.box(48_000, 57_000, 107_000, 139_000), f"box of Luxembourg's extent ({type(exc).__name__})"


def synthetic_events(n: int, area: BaseGeometry, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points in ``area`` (60 % uniform, 40 % in border-side blobs) and quarter indices 0..11."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = area.bounds
    blobs = np.array([[55_000, 75_000], [68_000, 62_000], [98_000, 80_000], [80_000, 100_000], [75_000, 130_000]])
    parts, have = [], 0
    while have < n:
        k = n - have
        uniform = rng.uniform([minx, miny], [maxx, maxy], (int(k * 0.6) + 1, 2))
        blob = blobs[rng.integers(0, len(blobs), int(k * 0.4) + 1)] + rng.normal(0, 2_000, (int(k * 0.4) + 1, 2))
        cand = np.vstack([uniform, blob])
        cand = cand[shapely.contains_xy(area, cand[:, 0], cand[:, 1])]
        parts.append(cand)
        have += len(cand)
    xy = np.vstack(parts)[:n]
    # later quarters put more weight on the first blob, so the cube has a trend to find
    quarter = np.minimum((rng.uniform(0, 1, n) ** 0.8 * 12).astype(int), 11)
    return xy, quarter


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bare_binning(xy: np.ndarray, x0: float, y0: float, cell: float, shape: tuple[int, int]) -> np.ndarray:
    """Scale, truncate and one bincount over the full lattice: the least work binning can be.

    Truncation equals flooring only for points right of and above the origin, which holds for
    these events; there is no look-up of kept cells.
    """
    inv = 1.0 / cell
    col = ((xy[:, 0] - x0) * inv).astype(np.intp)
    row = ((xy[:, 1] - y0) * inv).astype(np.intp)
    np.clip(col, 0, shape[1] - 1, out=col)
    np.clip(row, 0, shape[0] - 1, out=row)
    return np.bincount(row * shape[1] + col, minlength=shape[0] * shape[1])


def esda_route(counts: np.ndarray, centres: np.ndarray, band: float) -> tuple[float, float, np.ndarray]:
    import esda
    import libpysal

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        # lattice neighbours exactly `band` away are inside for us; a hair more keeps them inside
        # for libpysal too, whatever the last bit of their computed distance
        w = libpysal.weights.DistanceBand(centres, threshold=band * (1 + 1e-9), binary=True, silence_warnings=True)
        t_weights = time.perf_counter() - start
        start = time.perf_counter()
        g = esda.G_Local(counts.astype(float), w, star=True, transform="B", permutations=0)
        t_stat = time.perf_counter() - start
    return t_weights, t_stat, g.Zs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="synthetic events (default 1,000,000)")
    parser.add_argument("--cell", type=float, default=200.0, help="grid cell in metres (default 200)")
    parser.add_argument("--band", type=float, default=600.0, help="Gi* distance band in metres (default 600)")
    parser.add_argument("--esda-cell", type=float, default=None, help="coarser cell for the esda route if it is too slow")
    parser.add_argument("--shape", choices=["square", "hex"], default="square")
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    area, area_name = study_area()
    xy, quarter = synthetic_events(args.events, area, seed=args.seed)
    print(f"{args.events:,} events in {area_name}; {args.shape} cells of {args.cell:g} m, band {args.band:g} m")

    t_grid, grid = best_of(lambda: make_grid(area, cell=args.cell, shape=args.shape), 1)
    spec = grid_spec(grid)
    print(f"grid: {spec.n_cells:,} cells kept of a {spec.n_rows} x {spec.n_cols} lattice, built in {t_grid * 1e3:.0f} ms (once per cell size)")

    rows: list[Timing] = []
    t_bare, _ = best_of(lambda: bare_binning(xy, spec.x0, spec.y0, spec.cell, (spec.n_rows, spec.n_cols)), args.repeat)
    rows.append(("bare numpy binning (scale + truncate + bincount)", t_bare, "reference floor"))
    t_bin, counts = best_of(lambda: bin_counts(xy, spec), args.repeat)
    rows.append(("our bin_counts", t_bin, f"{t_bin / t_bare:.2f}x bare"))

    def gi_step():
        gi = gi_star_grid(counts, spec, band=args.band)
        return gi, fdr_bins(gi.z, gi.p)

    t_gi, (gi, bins) = best_of(gi_step, args.repeat)
    rows.append(("our Gi* + FDR bins (on the counts)", t_gi, f"{t_gi / t_bare:.2f}x bare binning (target <= 2x)"))
    rows.append(("our binning + Gi* + FDR", t_bin + t_gi, f"{(t_bin + t_gi) / t_bare:.2f}x bare"))

    # the esda route on the same grid, unless a coarser one was asked for
    if args.esda_cell and args.esda_cell != args.cell:
        egrid = make_grid(area, cell=args.esda_cell, shape=args.shape)
        espec = grid_spec(egrid)
        ecounts = bin_counts(xy, espec)
        eband = args.band * args.esda_cell / args.cell
        t_ours_e, egi = best_of(lambda: gi_star_grid(ecounts, espec, band=eband), args.repeat)
        note = f" on a coarser {args.esda_cell:g} m grid ({espec.n_cells:,} cells, band {eband:g} m)"
    else:
        espec, ecounts, eband, t_ours_e, egi, note = spec, counts, args.band, None, gi, ""
    t_w, t_stat, esda_z = esda_route(ecounts, espec.centres(), eband)
    if t_ours_e is None:
        t_ours_e, _ = best_of(lambda: gi_star_grid(ecounts, espec, band=eband), args.repeat)
    max_dz = float(np.abs(esda_z - egi.z).max())
    rows.append((f"esda route: DistanceBand weights{note}", t_w, ""))
    rows.append(("esda route: G_Local(star, 'B', permutations=0)", t_stat, ""))
    rows.append(
        ("esda route total vs our Gi* on that grid", t_w + t_stat, f"{(t_w + t_stat) / t_ours_e:.0f}x slower than ours "
         f"({t_ours_e * 1e3:.1f} ms; target >= 20x); max |dz| = {max_dz:.1e}")
    )

    # emerging hot spots: 12 quarters on the same grid
    def cube():
        ids = locate(xy, spec)
        ok = ids >= 0
        return np.bincount(ids[ok] * 12 + quarter[ok], minlength=spec.n_cells * 12).reshape(spec.n_cells, 12)

    t_cube, st_cube = best_of(cube, args.repeat)

    def emerging_core():
        z, p = space_time_gi(st_cube, spec, band=args.band, neighborhood_time_step=1)
        return mann_kendall(z), fdr_bins(z.ravel(), p.ravel())

    t_em, _ = best_of(emerging_core, args.repeat)
    rows.append(("emerging: space-time cube, 12 quarters", t_cube, f"{spec.n_cells * 12:,} bins"))
    rows.append(("emerging: space-time Gi* + FDR + Mann-Kendall", t_em, ""))
    t_full = _time_emerging_pipeline(xy, quarter, area, args)
    rows.append(("emerging_hotspots() end to end (incl. grid build)", t_full, "GeoDataFrame in, categories out"))

    for fn in EXTRA_BENCHMARKS:
        rows.extend(fn(xy, area, args.repeat))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'step':<{width}}  {'time':>10}  note")
    for label, seconds, extra in rows:
        print(f"{label:<{width}}  {seconds * 1e3:>8.1f} ms  {extra}")
    hot = int((bins > 0).sum())
    print(f"\n{hot:,} hot and {int((bins < 0).sum()):,} cold cells (FDR) of {spec.n_cells:,}")


def _time_emerging_pipeline(xy: np.ndarray, quarter: np.ndarray, area: BaseGeometry, args: argparse.Namespace) -> float:
    import geopandas as gpd

    from geo_ibm.emerging import emerging_hotspots

    starts = pd.period_range("2022Q1", periods=12, freq="Q").start_time
    when = pd.DatetimeIndex(starts[quarter]).tz_localize("Europe/Luxembourg") + pd.Timedelta(days=10)
    events = gpd.GeoDataFrame({"observed_at": when}, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=2169)
    start = time.perf_counter()
    emerging_hotspots(events, study_area=area, cell=args.cell, band=args.band, shape=args.shape)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
