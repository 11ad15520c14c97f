"""Place labels on the print maps: commune names at their label points, drawn without overlaps (matplotlib)."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
from matplotlib import patheffects

from geo_ibm.io import ensure_working_crs

ALL_COMMUNES_BELOW_KM2 = 900.0
"""A map extent smaller than this (a police region, say) labels every commune that fits; larger
ones (the whole country) at most :data:`MAX_NATIONAL_LABELS`, canton seats (``rank`` 1) first."""

MAX_NATIONAL_LABELS = 40

LABEL_COLOUR = "#3a3a3a"
_HALO = [patheffects.withStroke(linewidth=2.2, foreground="white")]


def draw_place_labels(
    ax: Any,
    places: gpd.GeoDataFrame | None = None,
    *,
    fontsize: float = 6.0,
    zorder: float = 6.0,
    avoid: list[Any] | None = None,
    all_below_km2: float = ALL_COMMUNES_BELOW_KM2,
) -> list[Any]:
    """Write commune names on ``ax`` (an EPSG:2169 map) where they fit, and return the texts drawn.

    Names are placed at the label points of :func:`geo_ibm.gazetteer.commune_points` (or
    ``places``: points with ``commune`` or ``name`` and optionally ``rank`` and ``area_km2``),
    most important first: canton seats, then larger communes. A name whose box would overlap
    a name already drawn, a text already on the axes, one of ``avoid`` (display-space boxes,
    e.g. of the scale bar) or the axes' edge is left out, so the map never shows names on top
    of each other. Extents over ``all_below_km2`` get at most :data:`MAX_NATIONAL_LABELS` names.

    Parameters
    ----------
    ax
        The map axes, its limits already set.
    places
        The places to label (default: every commune).
    fontsize, zorder
        Type size of ordinary names (canton seats are 15 % larger and bold) and drawing order.
    avoid
        Display-space bounding boxes (``matplotlib.transforms.Bbox``) to keep clear.
    all_below_km2
        See :data:`ALL_COMMUNES_BELOW_KM2`.
    """
    if places is None:
        from geo_ibm.gazetteer import commune_points

        places = commune_points()
    points = ensure_working_crs(places, name="places")
    xmin, xmax = sorted(ax.get_xlim())
    ymin, ymax = sorted(ax.get_ylim())
    xy = np.column_stack([points.geometry.x.to_numpy(), points.geometry.y.to_numpy()])
    inside = (xy[:, 0] > xmin) & (xy[:, 0] < xmax) & (xy[:, 1] > ymin) & (xy[:, 1] < ymax)
    names = (points["commune"] if "commune" in points.columns else points["name"]).astype(str).to_numpy()
    ranks = points["rank"].to_numpy(dtype=float) if "rank" in points.columns else np.ones(len(points))
    sizes = points["area_km2"].to_numpy(dtype=float) if "area_km2" in points.columns else np.zeros(len(points))
    view_km2 = (xmax - xmin) * (ymax - ymin) / 1e6
    # Canton seats first, then the larger communes: the names a reader looks for first win a place.
    order = [int(i) for i in np.lexsort((names, -sizes, ranks)) if inside[i]]
    limit = None if view_km2 <= all_below_km2 else MAX_NATIONAL_LABELS
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    # Names already on the map (neighbour countries, the scale bar's figures) stay readable too.
    taken = [t.get_window_extent(renderer) for t in ax.texts] + list(avoid or [])
    drawn: list[Any] = []
    for i in order:
        if limit is not None and len(drawn) >= limit:
            break
        major = ranks[i] <= 1
        text = ax.text(xy[i, 0], xy[i, 1], names[i], ha="center", va="center", fontsize=fontsize * (1.15 if major else 1.0),
                       fontweight="bold" if major else "normal", color=LABEL_COLOUR, zorder=zorder, path_effects=_HALO,
                       clip_on=True)
        box = text.get_window_extent(renderer).expanded(1.08, 1.15)
        fits = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        if not fits or any(box.overlaps(other) for other in taken):
            text.remove()
            continue
        taken.append(box)
        drawn.append(text)
    return drawn


__all__ = ["ALL_COMMUNES_BELOW_KM2", "LABEL_COLOUR", "MAX_NATIONAL_LABELS", "draw_place_labels"]
