"""The print map of a plan (EPSG:2169): ranked control sites, coverage circles and covered demand over the reference map.

Its bytes come from :func:`geo_ibm.figures.common.figure_bytes`.
"""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.figures.common import Translate
from geo_ibm.figures.printmap import _add_polygons, _checked, _no_points, _side_legend, _thematic
from geo_ibm.maps.planlayers import CIRCLE_COLOUR, COVERED_COLOUR, SITE_COLOUR, UNCOVERED_COLOUR

MAX_DRAWN_DEMAND = 20_000
"""Most demand points drawn (heaviest first); the print map stays a few hundred kilobytes."""


def plan_print_map(
    sites: gpd.GeoDataFrame,
    demand: gpd.GeoDataFrame,
    *,
    radius: float,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    neighbours: gpd.GeoDataFrame | None = None,
    regions: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    period: str | None = None,
    width_mm: float = 170,
    dpi: int = 200,
    t: Translate = str,
) -> Figure:
    """A print map of a plan: the reference map of :func:`~geo_ibm.figures.printmap.static_map`
    with the coverage circles, the demand (covered or not) and the sites labelled by rank.

    Parameters
    ----------
    sites
        :attr:`geo_ibm.planning.plan.Plan.sites` with ``rank`` (EPSG:2169 or converted).
    demand
        :attr:`geo_ibm.planning.plan.Plan.demand` with ``weight`` and ``site`` (empty: not covered).
    radius
        Coverage radius in metres (circles drawn true to scale in EPSG:2169).
    title, subtitle, period, width_mm, dpi, t
        As :func:`~geo_ibm.figures.printmap.static_map`.

    Returns
    -------
    matplotlib.figure.Figure
        The map axes hold the plan layers and a legend of them; the side legend is the reference map's.
    """
    if not (np.isfinite(radius) and radius > 0):
        raise ValidationError(f"radius must be > 0 metres, got {radius!r}", [Problem("bad radius", column="radius")])
    sites = _checked(sites, "sites", ("rank",))
    demand = _checked(demand, "demand", ("weight", "site"))
    with _thematic(outline=outline, borders=borders, crossings=_no_points(), neighbours=neighbours, regions=regions,
                   title=title, subtitle=subtitle, period=period, width_mm=width_mm, dpi=dpi, t=t) as (fig, ax, scale):
        _draw_plan(fig, ax, sites, demand, radius=float(radius), scale=scale, t=t)
    return fig


def _draw_plan(fig: Figure, ax: Any, sites: gpd.GeoDataFrame, demand: gpd.GeoDataFrame, *, radius: float,
               scale: float, t: Translate) -> None:
    fs = 7.0 * scale
    order = np.argsort(-demand["weight"].to_numpy(dtype=float), kind="stable")[:MAX_DRAWN_DEMAND]
    shown = demand.iloc[order]
    xy = shapely.get_coordinates(shown.geometry.to_numpy())[:, :2]
    covered = shown["site"].astype(str).to_numpy() != ""
    weight = shown["weight"].to_numpy(dtype=float)
    size = 1.5 + 10.0 * np.sqrt(weight / weight.max()) if len(weight) and weight.max() > 0 else np.full(len(xy), 2.0)
    for mask, colour in ((~covered, UNCOVERED_COLOUR), (covered, COVERED_COLOUR)):
        # Thousands of dots: one raster layer in PDF/SVG keeps the file small and fast to open.
        ax.scatter(xy[mask, 0], xy[mask, 1], s=size[mask] * scale, c=colour, alpha=0.7, linewidths=0, zorder=5.2,
                   rasterized=True)
    circles = list(sites.geometry.buffer(radius, quad_segs=32))
    _add_polygons(ax, circles, facecolor=CIRCLE_COLOUR, edgecolor="none", alpha=0.08, zorder=5.4)
    _add_polygons(ax, circles, facecolor="none", edgecolor=CIRCLE_COLOUR, linewidth=0.8, linestyle=(0, (4, 3)),
                  zorder=5.5)
    sxy = shapely.get_coordinates(sites.geometry.to_numpy())[:, :2]
    ax.scatter(sxy[:, 0], sxy[:, 1], s=70 * scale * scale, c=SITE_COLOUR, edgecolors="white", linewidths=0.8,
               zorder=6)
    for (x, y), rank in zip(sxy, sites["rank"].to_numpy(), strict=True):
        ax.text(x, y, str(int(rank)), ha="center", va="center", fontsize=fs * 0.8, color="white", fontweight="bold",
                zorder=6.5)
    handles = [Line2D([], [], linestyle="none", marker="o", markersize=6 * scale, markerfacecolor=SITE_COLOUR,
                      markeredgecolor="white"),
               Patch(facecolor=CIRCLE_COLOUR, alpha=0.25, edgecolor=CIRCLE_COLOUR, linestyle="--"),
               Line2D([], [], linestyle="none", marker="o", markersize=3 * scale, markerfacecolor=COVERED_COLOUR,
                      markeredgewidth=0),
               Line2D([], [], linestyle="none", marker="o", markersize=3 * scale, markerfacecolor=UNCOVERED_COLOUR,
                      markeredgewidth=0)]
    labels = [t("Control site (number: rank)"), t("Coverage radius") + f" ({radius / 1000:g} km)",
              t("Covered demand"), t("Demand not covered")]
    _side_legend(fig, handles, labels, title=t("Plan"), fontsize=fs, handlelength=1.6, labelspacing=0.45)
