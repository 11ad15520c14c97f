"""Tests of geo_ibm.figures.planmap: the plan's print map checks its layers, draws sites, circles and demand, and
puts its legend under the reference legend."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from matplotlib.colors import to_hex

from geo_ibm import layers
from geo_ibm.errors import ValidationError
from geo_ibm.figures.planmap import plan_print_map
from geo_ibm.maps.planlayers import COVERED_COLOUR, SITE_COLOUR, UNCOVERED_COLOUR


@pytest.fixture(scope="module")
def ref() -> dict[str, gpd.GeoDataFrame]:
    return {"outline": layers.luxembourg_outline(), "borders": layers.internal_borders()}


def _sites() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"site_id": ["A", "B"], "rank": [1, 2]},
                            geometry=[shapely.Point(70_000, 80_000), shapely.Point(90_000, 100_000)], crs=2169)


def _demand() -> gpd.GeoDataFrame:
    # Three covered by A, two by nobody.
    xy = [(70_500, 80_000), (70_000, 81_000), (69_000, 80_500), (60_000, 120_000), (100_000, 70_000)]
    return gpd.GeoDataFrame({"weight": [3.0, 2.0, 1.0, 4.0, 0.5], "site": ["A", "A", "A", "", ""]},
                            geometry=[shapely.Point(p) for p in xy], crs=2169)


@pytest.mark.parametrize(("sites", "demand", "match"), [
    ("not a frame", _demand(), "sites must be a GeoDataFrame"),
    (_sites().drop(columns="rank"), _demand(), "sites has no column 'rank'"),
    (_sites(), _demand().drop(columns="site"), "demand has no column 'site'"),
    (_sites(), _demand().drop(columns="weight"), "demand has no column 'weight'"),
])
def test_layers_are_checked(ref, sites, demand, match):
    with pytest.raises(ValidationError, match=match):
        plan_print_map(sites, demand, radius=3000, **ref)


def test_radius_must_be_positive(ref):
    with pytest.raises(ValidationError, match="radius must be > 0") as info:
        plan_print_map(_sites(), _demand(), radius=0, **ref)
    assert info.value.problems[0].column == "radius"


def test_sites_demand_and_legend(ref):
    fig = plan_print_map(_sites(), _demand().to_crs(4326), radius=3000, **ref, t=lambda s: s.upper())
    ax, side = fig.axes[0], fig.axes[1]
    # The demand dots: covered and not covered in their colours, at their EPSG:2169 positions.
    dots = {to_hex(c.get_facecolor()[0]): c.get_offsets() for c in ax.collections
            if len(c.get_offsets()) and c.get_zorder() == 5.2}
    assert len(dots[COVERED_COLOUR]) == 3 and len(dots[UNCOVERED_COLOUR]) == 2
    np.testing.assert_allclose(sorted(map(tuple, dots[UNCOVERED_COLOUR])), [(60_000, 120_000), (100_000, 70_000)],
                               atol=0.01)
    sites = next(c for c in ax.collections if c.get_zorder() == 6)
    assert to_hex(sites.get_facecolor()[0]) == SITE_COLOUR and len(sites.get_offsets()) == 2
    assert sorted(t.get_text() for t in ax.texts if t.get_zorder() == 6.5) == ["1", "2"]
    # The plan's legend is the side column's, with the reference legend kept above it.
    legend = side.get_legend()
    assert legend.get_title().get_text() == "PLAN"
    assert [t.get_text() for t in legend.get_texts()] == [
        "CONTROL SITE (NUMBER: RANK)", "COVERAGE RADIUS (3 km)", "COVERED DEMAND", "DEMAND NOT COVERED"]
    assert any(a is not legend and hasattr(a, "get_texts") for a in side.artists)
