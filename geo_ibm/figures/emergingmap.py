"""Print map of emerging hot spot categories (new, intensifying, persistent, diminishing ... hot and cold spots)."""
from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.figures.common import Translate
from geo_ibm.figures.printmap import _MAX_DRAWN_CELLS, _add_polygons, _side_legend, _thematic
from geo_ibm.grid import merge_cells
from geo_ibm.maps.hotspotlayers import EMERGING_COLOURS


def emerging_print_map(
    emerging: gpd.GeoDataFrame,
    *,
    outline: gpd.GeoDataFrame,
    borders: gpd.GeoDataFrame,
    crossings: gpd.GeoDataFrame,
    neighbours: gpd.GeoDataFrame | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    period: str | None = None,
    width_mm: float = 170,
    dpi: int = 200,
    t: Translate = str,
) -> Figure:
    """Cells coloured by emerging hot spot category, in the web map's colours, legend of the categories present.

    Parameters
    ----------
    emerging
        :func:`geo_ibm.emerging.emerging_hotspots`: ``category`` and cell polygons. Cells of
        no pattern are not drawn.
    outline, borders, crossings, neighbours, title, subtitle, period, width_mm, dpi, t
        As :func:`~geo_ibm.figures.printmap.static_map` (which bounds the raster's pixels).
    """
    if "category" not in emerging.columns:
        raise ValidationError("emerging has no column 'category'", [Problem("missing column", column="category")])
    with _thematic(outline=outline, borders=borders, crossings=crossings, neighbours=neighbours, title=title,
                   subtitle=subtitle, period=period, width_mm=width_mm, dpi=dpi, t=t) as (fig, ax, scale):
        categories = emerging["category"].astype(str).to_numpy()
        geoms = emerging.geometry.to_numpy()
        handles: list[Any] = []
        labels: list[str] = []
        for category, colour in EMERGING_COLOURS.items():
            chosen = geoms[categories == category]
            if not len(chosen):
                continue
            if len(chosen) > _MAX_DRAWN_CELLS:
                # the cells of a category merged: the same picture with far fewer vector paths
                merged = merge_cells(gpd.GeoDataFrame({"category": categories[categories == category]},
                                                      geometry=chosen), "category")
                chosen = shapely.get_parts(np.asarray(merged.geometry.values))
            _add_polygons(ax, list(chosen), facecolor=colour, edgecolor=colour, linewidth=0.2, alpha=0.8, zorder=4.5)
            handles.append(Patch(facecolor=colour, edgecolor=colour, alpha=0.8))
            labels.append(t(category[0].upper() + category[1:]))
        if handles:
            _side_legend(fig, handles, labels, title=t("Emerging hot spots"), fontsize=7.0 * scale)
        else:
            x0, x1 = ax.get_xlim()
            y0, y1 = ax.get_ylim()
            ax.text(float(np.mean([x0, x1])), float(np.mean([y0, y1])), t("No emerging pattern detected"),
                    ha="center", va="center", fontsize=9 * scale, color="#444444", zorder=7)
    return fig
