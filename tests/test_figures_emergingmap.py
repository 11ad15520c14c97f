"""Tests of geo_ibm.figures.emergingmap: cells in the web map's category colours, a legend of the categories present,
a note when there is no pattern."""
from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from matplotlib.colors import to_hex

from geo_ibm import layers
from geo_ibm.errors import ValidationError
from geo_ibm.figures.emergingmap import emerging_print_map
from geo_ibm.maps.hotspotlayers import EMERGING_COLOURS


@pytest.fixture(scope="module")
def ref() -> dict[str, gpd.GeoDataFrame]:
    return {"outline": layers.luxembourg_outline(), "borders": layers.internal_borders(),
            "crossings": layers.crossing_points()}


def _cells(categories: list[str]) -> gpd.GeoDataFrame:
    boxes = [shapely.box(60_000 + 2_000 * i, 80_000, 62_000 + 2_000 * i, 82_000) for i in range(len(categories))]
    return gpd.GeoDataFrame({"category": categories}, geometry=boxes, crs=2169)


def _legends(side) -> list:
    return [a for a in [side.get_legend(), *side.artists] if a is not None and hasattr(a, "get_texts")]


def test_legend_lists_the_categories_present_in_the_web_colours(ref):
    cells = _cells(["persistent cold spot", "new hot spot", "no pattern detected", "new hot spot"])
    fig = emerging_print_map(cells, **ref)
    ax, side = fig.axes[0], fig.axes[1]
    legend = side.get_legend()
    assert legend.get_title().get_text() == "Emerging hot spots"
    # In the web map's order, only those present, first letter upper-cased; no pattern is not drawn.
    assert [t.get_text() for t in legend.get_texts()] == ["New hot spot", "Persistent cold spot"]
    assert [to_hex(h.get_facecolor()) for h in legend.legend_handles] == [
        EMERGING_COLOURS["new hot spot"], EMERGING_COLOURS["persistent cold spot"]]
    drawn = {to_hex(p.get_facecolor()) for p in ax.patches if p.get_zorder() == 4.5}
    assert drawn == {EMERGING_COLOURS["new hot spot"], EMERGING_COLOURS["persistent cold spot"]}
    assert len(_legends(side)) == 2  # the reference legend stays above it


def test_no_pattern_is_said_on_the_map(ref):
    fig = emerging_print_map(_cells(["no pattern detected"]), **ref, t=lambda s: s.upper())
    ax = fig.axes[0]
    assert "NO EMERGING PATTERN DETECTED" in [t.get_text() for t in ax.texts]
    assert not [p for p in ax.patches if p.get_zorder() == 4.5]
    assert len(_legends(fig.axes[1])) == 1


def test_category_column_is_needed(ref):
    with pytest.raises(ValidationError, match="no column 'category'"):
        emerging_print_map(_cells(["new hot spot"]).rename(columns={"category": "kind"}), **ref)
