"""Time the print map of many events against plotting every point with geopandas.

Usage::

    python benchmarks/bench_figures.py                     # 100,000 and 1,000,000 events
    python benchmarks/bench_figures.py --events 50000 --repeat 3

For each size, one seeded set of events inside Luxembourg (EPSG:2169, a third of them around
one spot, over two quarters) is drawn in one run by:

- ``geo_ibm``: :func:`geo_ibm.figures.static_map` (outline, internal borders, crossings, legend,
  scale bar, north arrow; above ``max_points`` the events become hexagons with exact counts)
  and :func:`geo_ibm.figures.figure_bytes` to PNG at 200 dpi, and to PDF;
- ``naive``: the same three layers and every event as a point with ``GeoDataFrame.plot`` on one
  matplotlib axis of the same size, saved to PNG at 200 dpi and to PDF.

Each figure is drawn ``--repeat`` times after one uncounted run; the median wall time and the
file sizes are printed side by side. The machine may be shared: compare the routes of one run.
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shapely

from geo_ibm import figures, layers
from geo_ibm.figures import FigureFormat
from geo_ibm.settings import WORKING_CRS


def make_events(n: int, *, seed: int) -> gpd.GeoDataFrame:
    """``n`` points inside Luxembourg, a third of them around one spot, over two quarters."""
    rng = np.random.default_rng(seed)
    area = layers.luxembourg_outline().geometry.iloc[0]
    minx, miny, maxx, maxy = area.bounds
    xy = np.empty((0, 2))
    while len(xy) < n:
        draw = np.column_stack([rng.uniform(minx, maxx, 2 * n), rng.uniform(miny, maxy, 2 * n)])
        xy = np.vstack([xy, draw[shapely.contains_xy(area, draw[:, 0], draw[:, 1])]])
    xy = xy[:n]
    cluster = n // 3
    xy[:cluster] = np.column_stack([rng.normal(77_000, 400, cluster), rng.normal(75_000, 400, cluster)])
    when = pd.Timestamp("2025-01-01", tz="Europe/Luxembourg") + pd.to_timedelta(rng.uniform(0, 180, n), unit="D")
    return gpd.GeoDataFrame({"observed_at": when, "persons": rng.integers(1, 6, n)},
                            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=WORKING_CRS)


def ours(ref: dict[str, gpd.GeoDataFrame], events: gpd.GeoDataFrame, fmt: FigureFormat) -> int:
    fig = figures.static_map(**ref, events=events)
    try:
        return len(figures.figure_bytes(fig, format=fmt))
    finally:
        plt.close(fig)


def naive(ref: dict[str, gpd.GeoDataFrame], events: gpd.GeoDataFrame, fmt: FigureFormat) -> int:
    fig, ax = plt.subplots(figsize=(170 / 25.4, 170 / 25.4 * 1.25))
    try:
        ref["outline"].plot(ax=ax, facecolor="#f4f4f0", edgecolor="#555555")
        ref["borders"].plot(ax=ax, column="neighbour", linewidth=2)
        ref["crossings"].plot(ax=ax, column="kind", markersize=12)
        events.plot(ax=ax, markersize=1, color="#b2182b")
        ax.set_axis_off()
        out = io.BytesIO()
        fig.savefig(out, format=fmt, dpi=200)
        return len(out.getvalue())
    finally:
        plt.close(fig)


def timed(draw: Callable[..., int], ref: dict[str, gpd.GeoDataFrame], events: gpd.GeoDataFrame, fmt: FigureFormat,
          repeat: int) -> tuple[float, int]:
    draw(ref, events, fmt)  # uncounted: fonts, caches
    times, size = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        size = draw(ref, events, fmt)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    ref = {"outline": layers.luxembourg_outline(), "borders": layers.internal_borders(),
           "crossings": layers.crossing_points()}
    print(f"{'events':>10}  {'route':<38}{'PNG s':>7}{'PNG KB':>9}{'PDF s':>7}{'PDF KB':>9}")
    for n in args.events:
        events = make_events(n, seed=args.seed)
        rows = []
        for label, draw in (("geo_ibm static_map (hexagons)", ours), ("naive GeoDataFrame.plot, every point", naive)):
            png_s, png = timed(draw, ref, events, "png", args.repeat)
            pdf_s, pdf = timed(draw, ref, events, "pdf", args.repeat)
            rows.append((png_s, pdf_s))
            print(f"{n:>10,}  {label:<38}{png_s:>7.2f}{png / 1e3:>9.0f}{pdf_s:>7.2f}{pdf / 1e3:>9.0f}")
        (our_png, our_pdf), (naive_png, naive_pdf) = rows
        print(f"{'':>10}  naive / ours: PNG {naive_png / our_png:.1f}x, PDF {naive_pdf / our_pdf:.1f}x")


if __name__ == "__main__":
    main()
