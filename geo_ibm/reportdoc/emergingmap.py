"""The report's emerging hot spot map: which hot spots are new, intensifying, persistent or fading over two years."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import shapely

from geo_ibm.errors import GeoIbmError
from geo_ibm.periods import quarter_bounds, shift_quarter
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Block, Image, Paragraph

QUARTERS = 8
"""Quarters of the space-time cube, the report's quarter last."""

SUMMARY_CATEGORIES: tuple[str, ...] = ("new hot spot", "intensifying hot spot", "persistent hot spot",
                                       "diminishing hot spot")


def emerging_blocks(store: Any, *, quarter: str, region: str | None, area: gpd.GeoDataFrame, area_name: str,
                    footer_period: str, counts: CountDisplay, t: Callable[[str], str]) -> list[Block]:
    """The emerging hot spot map of the :data:`QUARTERS` quarters ending with ``quarter`` and a sentence
    counting the cells of each hot spot pattern.

    Aggregates-only readers get the map on the disclosure rule's cell over the whole country,
    clipped to the area (categories only: no count is drawn), as for their Gi* map.
    """
    from geo_ibm import layers
    from geo_ibm.emerging import emerging_hotspots
    from geo_ibm.figures import figure_bytes
    from geo_ibm.figures.emergingmap import emerging_print_map

    first = shift_quarter(quarter, -(QUARTERS - 1))
    start, _ = quarter_bounds(first)
    _, end = quarter_bounds(quarter)
    protected = counts.rule is not None
    events = store.events(start=start, end=end, region=None if protected else region, columns=["observed_at"])
    study = layers.luxembourg_outline() if protected else area
    try:
        result = emerging_hotspots(events, study_area=study, cell=float(counts.rule.cell_m) if protected else None,
                                   start=start, end=end)
    except GeoIbmError as exc:
        return [Paragraph(t("Emerging hot spot map not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note")]
    if protected:
        result = result[result.intersects(area.geometry.union_all())]
    bounds = area.total_bounds
    view = shapely.box(bounds[0] - 15_000, bounds[1] - 15_000, bounds[2] + 15_000, bounds[3] + 15_000)
    neighbours = layers.neighbour_outlines().clip(view)
    title = f"{t('Emerging hot spots')} {first}–{quarter} – {area_name}"
    fig = emerging_print_map(result, outline=area, borders=layers.internal_borders(),
                             crossings=layers.crossing_points().iloc[:0], neighbours=neighbours[~neighbours.is_empty],
                             title=title, period=footer_period, dpi=170, t=t)
    found = result["category"].astype(str).value_counts()
    parts = [t("%(n)s cells: %(category)s") % {"n": int(found.get(c, 0)), "category": t(c)}
             for c in SUMMARY_CATEGORIES if found.get(c, 0)]
    text = (t("Over %(first)s–%(last)s (space-time Gi*, Mann–Kendall trend): %(parts)s.") % {
        "first": first, "last": quarter, "parts": "; ".join(parts)}) if parts else \
        t("No hot spot pattern over %(first)s–%(last)s.") % {"first": first, "last": quarter}
    return [Paragraph(text), Image(figure_bytes(fig, format="png"), caption=title)]
