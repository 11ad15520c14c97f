"""Time geo_ibm's quartic KDE against KDEpy, scikit-learn and a bincount + FFT floor on one grid."""
from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import geopandas as gpd
import numpy as np
import shapely
from scipy.signal import fftconvolve

from geo_ibm.kde import _kernel_stencil, default_search_radius, density_grid, kernel_density

# A box the size of Luxembourg in EPSG:2169 (outline bounds rounded to the kilometre).
STUDY_AREA = shapely.box(48_000, 57_000, 107_000, 139_000)


def synthetic_events(n: int, *, seed: int) -> np.ndarray:
    """Half the events in a few border blobs, half uniform: the skew real interceptions have."""
    rng = np.random.default_rng(seed)
    centres = np.array([[55_000, 75_000], [68_000, 62_000], [98_000, 80_000], [80_000, 100_000], [75_000, 130_000]])
    n_blob = n // 2
    which = rng.integers(0, len(centres), n_blob)
    blob = centres[which] + rng.normal(0, 2_500, (n_blob, 2))
    minx, miny, maxx, maxy = STUDY_AREA.bounds
    uniform = rng.uniform([minx, miny], [maxx, maxy], (n - n_blob, 2))
    return np.r_[blob, uniform]


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def floor_kde(xy: np.ndarray, *, cell: float, radius: float, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-cell bincount and one FFT convolution with a precomputed kernel: the least work possible."""
    minx, _, _, maxy = STUDY_AREA.bounds
    rows, cols = shape
    pad = int(radius // cell) + 1
    pr, pc = rows + 2 * pad, cols + 2 * pad
    ci = ((xy[:, 0] - minx) / cell).astype(np.intp) + pad
    ri = ((maxy - xy[:, 1]) / cell).astype(np.intp) + pad
    ok = (ci >= 0) & (ci < pc) & (ri >= 0) & (ri < pr)
    grid = np.bincount(ri[ok] * pc + ci[ok], minlength=pr * pc).reshape(pr, pc)
    return fftconvolve(grid, STENCIL, mode="same")[pad:-pad, pad:-pad]


def main() -> None:
    global STENCIL
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="number of synthetic events (default 1,000,000)")
    parser.add_argument("--radius", type=float, default=2_000.0, help="search radius in metres (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    parser.add_argument("--sklearn-sample", type=int, default=5_000, help="events fed to sklearn before extrapolating")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    xy = synthetic_events(args.events, seed=args.seed)
    events = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:2169")
    radius = args.radius
    t_ours, kde = best_of(lambda: kernel_density(events, study_area=STUDY_AREA, radius=radius), args.repeat)
    cell = kde.cell
    rows, cols = kde.shape
    STENCIL = _kernel_stencil(radius, cell)
    t_default, kde_default = best_of(lambda: kernel_density(events, study_area=STUDY_AREA), 1)
    t_radius, _ = best_of(lambda: default_search_radius(xy), args.repeat)
    t_floor, floor = best_of(lambda: floor_kde(xy, cell=cell, radius=radius, shape=(rows, cols)), args.repeat)

    def floor_from_frame() -> np.ndarray:
        geoms = np.asarray(events.geometry.values)
        coords = np.column_stack([shapely.get_x(geoms), shapely.get_y(geoms)])
        return floor_kde(coords, cell=cell, radius=radius, shape=(rows, cols))

    t_floor_gdf, _ = best_of(floor_from_frame, args.repeat)

    t_grid, _ = best_of(
        lambda: density_grid(xy, bounds=STUDY_AREA.bounds, cell=cell, radius=radius), args.repeat
    )
    xs, ys = kde.cell_centres()
    results: list[tuple[str, float, str, np.ndarray | None]] = [
        ("geo_ibm kernel_density (GeoDataFrame in)", t_ours, "measured", kde.density),
        ("geo_ibm density_grid (arrays in, linear binning)", t_grid, "measured", None),
        ("floor: bincount + fftconvolve (arrays in)", t_floor, "measured", floor),
        ("floor incl. get_x/get_y (GeoDataFrame in)", t_floor_gdf, "measured", None),
    ]

    try:
        from KDEpy import FFTKDE

        pad = int(radius // cell) + 2
        gx = np.r_[xs[0] - pad * cell + np.arange(pad) * cell, xs, xs[-1] + (np.arange(pad) + 1) * cell]
        gy = np.sort(np.r_[ys, ys[0] + (np.arange(pad) + 1) * cell, ys[-1] - (np.arange(pad) + 1) * cell])
        inside = (xy[:, 0] > gx[0]) & (xy[:, 0] < gx[-1]) & (xy[:, 1] > gy[0]) & (xy[:, 1] < gy[-1])
        mesh = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)

        def kdepy() -> np.ndarray:
            # KDEpy's bw is the 1-D standard deviation; its biweight support is bw * sqrt(7).
            est = FFTKDE(kernel="biweight", bw=radius / math.sqrt(7), norm=2).fit(xy[inside])
            dens = est.evaluate(mesh).reshape(len(gx), len(gy))
            return dens[pad : pad + cols, :][:, ::-1][:, pad : pad + rows].T * inside.sum() * 1e6

        t_kdepy, dens_kdepy = best_of(kdepy, args.repeat)
        results.append(("KDEpy FFTKDE biweight 2-D (same grid, padded)", t_kdepy, "measured", dens_kdepy))
    except ImportError:
        results.append(("KDEpy FFTKDE", math.nan, "not installed", None))

    from sklearn.neighbors import KernelDensity

    m = min(args.sklearn_sample, len(xy))
    sample = xy[np.random.default_rng(args.seed).choice(len(xy), m, replace=False)]
    centres = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)

    def sk() -> np.ndarray:
        est = KernelDensity(kernel="epanechnikov", bandwidth=radius).fit(sample)
        return np.exp(est.score_samples(centres))

    t_sk, _ = best_of(sk, 1)
    results.append(
        (
            f"sklearn KernelDensity epanechnikov (no quartic), {m:,} events",
            t_sk,
            f"measured; x{len(xy) / m:.0f} ~ {t_sk * len(xy) / m:.1f} s extrapolated",
            None,
        )
    )

    print(f"events: {len(xy):,}   grid: {rows} x {cols} cells of {cell:.1f} m   radius: {radius:.0f} m")
    print(f"default ArcGIS radius for these events: {kde_default.radius:.0f} m "
          f"(kernel_density with it: {t_default:.3f} s; the radius alone: {t_radius:.3f} s)")
    print(f"{'method':58s} {'seconds':>9s} {'x floor':>8s}  max |diff| vs geo_ibm / peak   note")
    for name, seconds, note, dens in results:
        diff = ""
        if dens is not None and dens is not kde.density:
            diff = f"{np.abs(dens - kde.density).max() / kde.density.max():.2%}"
        print(f"{name:58s} {seconds:9.3f} {seconds / t_floor:8.2f}  {diff:>10s}   {note}")
    print(f"kernel_density / floor, both from the GeoDataFrame: {t_ours / t_floor_gdf:.2f}x;  "
          f"density_grid / floor, both from arrays: {t_grid / t_floor:.2f}x")


if __name__ == "__main__":
    main()
