"""Tests of geo_ibm.maps.routelayers: intensity classes, flow arrows, escaping, local assets and layers."""
from __future__ import annotations

import json
import math
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely
from mapfixtures import XSS, borders, feature_collections, outline  # noqa: F401  # the maps' test fixtures

from geo_ibm import maps
from geo_ibm.errors import ValidationError
from geo_ibm.maps import routelayers
from geo_ibm.maps.hotspotlayers import GI_BIN_COLOURS


def _segments(per_km: list[float], *, names: list[str] | None = None) -> gpd.GeoDataFrame:
    n = len(per_km)
    lines = [shapely.LineString([(60_000 + 3_000 * i, 80_000), (62_000 + 3_000 * i, 81_000)]) for i in range(n)]
    lengths = np.array([g.length for g in lines])
    events = np.round(np.asarray(per_km) * lengths / 1000).astype(int)
    return gpd.GeoDataFrame({"segment_id": range(n), "ref": [f"A{i}" for i in range(n)],
                             "name": names or [f"road {i}" for i in range(n)], "highway": "motorway",
                             "length_m": lengths, "events": events, "persons": 2 * events,
                             "events_per_km": per_km}, geometry=lines, crs=2169)


def _flows(volumes: list[int], legs: list[str]) -> gpd.GeoDataFrame:
    lines = [shapely.LineString([(60_000, 70_000 + 2_000 * i), (70_000, 70_000 + 2_000 * i)]) for i in range(len(volumes))]
    return gpd.GeoDataFrame({"segment_id": range(len(volumes)), "ref": "A3", "direction": 1, "leg": legs,
                             "events": volumes, "persons": [2 * v for v in volumes]}, geometry=lines, crs=2169)


def _crossings(events: list[int]) -> gpd.GeoDataFrame:
    n = len(events)
    return gpd.GeoDataFrame({"crossing_id": [f"c{i}" for i in range(n)], "name": [f"X{i}" for i in range(n)],
                             "neighbour": "FR", "events": events, "persons": events,
                             "share": np.asarray(events) / max(1, sum(events))},
                            geometry=[shapely.Point(60_000 + 5_000 * i, 57_500) for i in range(n)], crs=2169)


def test_intensity_breaks_are_quantiles_of_the_positive_values():
    values = np.array([0.0, np.nan, 0.5, 1.0, 2.0, 3.0, 4.0, 8.0, 9.5, 12.0, 40.0])
    positive = values[np.isfinite(values) & (values > 0)]
    expected = [float(f"{q:.3g}") for q in np.quantile(positive, [0.2, 0.4, 0.6, 0.8])] + [40.0]
    assert routelayers.intensity_breaks(values) == expected
    classes = routelayers.intensity_class(values, expected)
    for value, got in zip(values, classes, strict=True):
        if not (np.isfinite(value) and value > 0):
            assert got == -1
        else:  # the first class whose upper bound holds the value
            assert got == next(i for i, b in enumerate(expected) if value <= b)
    assert routelayers.intensity_breaks([0, 0, np.nan]) == []
    # Equal values give one class, not five equal bounds.
    assert routelayers.intensity_breaks([2.0, 2.0, 2.0]) == [2.0]


@pytest.mark.parametrize(("end", "angle"), [((70_000, 80_000), 0.0), ((60_000, 90_000), -90.0),
                                            ((50_000, 80_000), 180.0), ((60_000, 70_000), 90.0)])
def test_flow_arrows_point_the_way_the_line_runs(end, angle):
    line = gpd.GeoDataFrame(geometry=[shapely.LineString([(60_000, 80_000), end])], crs=2169).to_crs(4326)
    (arrow,) = routelayers.flow_arrows(line, colours=["#123456"], sizes=[12])
    lat, lon, got, colour, size = arrow
    assert colour == "#123456" and size == 12
    # EPSG:2169's grid is turned by well under a degree from true north in Luxembourg.
    assert abs((got - angle + 180) % 360 - 180) < 1.5
    midpoint = line.geometry.iloc[0].interpolate(routelayers.ARROW_AT, normalized=True)
    assert math.isclose(lat, midpoint.y, abs_tol=1e-6) and math.isclose(lon, midpoint.x, abs_tol=1e-6)


def test_route_map_draws_every_layer_with_local_assets_only(outline, borders):
    segments = _segments([0.0, 0.4, 1.5, 3.0, 7.0, 15.0])
    lixels = segments.assign(gi_bin=[3, 0, 0, -2, 1, 0], gi_z=[3.2, 0.1, 0.0, -2.1, 1.7, 0.2], density=1.0)
    flows = _flows([1, 5, 20], ["entry", "exit", "entry"])
    fmap = routelayers.route_map(outline=outline, borders=borders, segments=segments, lixels=lixels, flows=flows,
                                 crossings=_crossings([10, 0, 3]), notes=["12 events beyond the tolerance"])
    assert maps.layer_names(fmap) == ["Luxembourg", "Place labels", "Internal Schengen borders", "Events per km of road",
                                      "Network hot and cold spots", "Flows (direction of travel)",
                                      "Entry crossings (attributed events)"]
    doc = maps.render_map(fmap)
    assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", doc) == []
    assert all(u.startswith("/assets/") or u == "data:," for u in maps.asset_urls(doc))
    assert "12 events beyond the tolerance" in doc
    collections = feature_collections(doc)
    # Segments: the zero segment quiet and thin, the others in rising classes and widths.
    seg = next(c for c in collections if c["features"] and "per_km" in c["features"][0]["properties"])
    props = [f["properties"] for f in seg["features"]]
    assert props[0]["colour"] == routelayers.QUIET_COLOUR
    widths = [p["width"] for p in props[1:]]
    assert widths == sorted(widths) and widths[-1] == routelayers.INTENSITY_WIDTHS[-1]
    assert props[-1]["colour"] == routelayers.INTENSITY_COLOURS[-1]
    # Lixels: only the three significant ones, in the hotspot map's colours.
    lix = next(c for c in collections if c["features"] and "verdict" in c["features"][0]["properties"])
    assert [f["properties"]["colour"] for f in lix["features"]] == [GI_BIN_COLOURS[3], GI_BIN_COLOURS[-2],
                                                                      GI_BIN_COLOURS[1]]
    # Flows: widths grow with volume (drawn smallest first), one arrow per flow.
    flow = next(c for c in collections if c["features"] and "leg" in c["features"][0]["properties"])
    assert [f["properties"]["events"] for f in flow["features"]] == ["1", "5", "20"]
    flow_widths = [f["properties"]["width"] for f in flow["features"]]
    assert flow_widths == sorted(flow_widths) and flow_widths[-1] == routelayers.FLOW_MAX_PX
    assert math.isclose(flow_widths[1], routelayers.FLOW_MIN_PX
                        + (routelayers.FLOW_MAX_PX - routelayers.FLOW_MIN_PX) * math.sqrt(5 / 20), abs_tol=0.01)
    assert doc.count("geo-ibm-arrow") == 1 and '"arrows": [[' in doc
    arrows = json.loads(re.search(r'(\{"arrows": .*?\]\]\})', doc).group(1))["arrows"]
    assert len(arrows) == 3
    # Crossings: sized by attributed events (square root), the empty one smallest.
    cross = next(c for c in collections if c["features"] and "share" in c["features"][0]["properties"])
    sizes = [f["properties"]["size"] for f in cross["features"]]
    assert sizes[0] == routelayers.CROSSING_MAX_PX and sizes[1] == routelayers.CROSSING_MIN_PX
    assert math.isclose(sizes[2], routelayers.CROSSING_MIN_PX + (routelayers.CROSSING_MAX_PX
                                                                 - routelayers.CROSSING_MIN_PX) * math.sqrt(0.3),
                        abs_tol=0.01)


def test_text_is_escaped_in_tooltips_and_legend(outline, borders):
    segments = _segments([1.0, 2.0], names=[XSS, "ok"])
    doc = maps.render_map(routelayers.route_map(outline=outline, borders=borders, segments=segments, notes=[XSS]))
    assert XSS not in doc and "\\ </script>" not in doc
    names = {f["properties"].get("name") for c in feature_collections(doc) for f in c["features"]}
    assert maps.text(XSS) in names


def test_no_significant_lixel_says_so(outline, borders):
    segments = _segments([1.0, 2.0])
    fmap = routelayers.route_map(outline=outline, borders=borders, segments=segments,
                                 lixels=segments.assign(gi_bin=0))
    assert "No significant stretch of road" in maps.render_map(fmap)


def test_the_two_directions_of_a_segment_get_arrows_apart():
    line = shapely.LineString([(60_000, 80_000), (70_000, 80_000)])
    both = gpd.GeoDataFrame(geometry=[line, line.reverse()], crs=2169).to_crs(4326)
    forward, backward = routelayers.flow_arrows(both, colours=["#000000"] * 2, sizes=[10, 10])
    assert abs(abs(forward[2] - backward[2]) - 180) < 1e-6
    # 20 % of the 10 km segment apart (a road segment's two flows share one line).
    apart = gpd.GeoSeries([shapely.Point(forward[1], forward[0]), shapely.Point(backward[1], backward[0])],
                          crs=4326).to_crs(2169)
    assert abs(apart.iloc[0].distance(apart.iloc[1]) - 2_000) < 5


def test_arrows_are_bounded(outline, borders):
    flows = _flows(list(range(1, 31)), ["entry"] * 30)
    doc = maps.render_map(routelayers.route_map(outline=outline, borders=borders, segments=_segments([1.0]),
                                                flows=flows.assign(geometry=flows.geometry)))
    fmap = maps.base_map()
    routelayers.add_flows(fmap, flows, max_arrows=4)
    small = maps.render_map(fmap)
    big = json.loads(re.search(r'(\{"arrows": .*?\]\]\})', doc).group(1))["arrows"]
    few = json.loads(re.search(r'(\{"arrows": .*?\]\]\})', small).group(1))["arrows"]
    assert len(big) == 30 and len(few) == 4
    # The four arrows are those of the largest flows (the lines placed 2 km apart, largest last).
    lats = sorted(a[0] for a in few)
    all_lats = sorted(a[0] for a in big)
    assert lats == all_lats[-4:]


def test_network_attribution_is_added_when_not_already_shown(outline, borders):
    doc = maps.render_map(routelayers.route_map(outline=outline, borders=borders, segments=_segments([1.0]),
                                                network_attribution="Our own <roads>", t=lambda s: s))
    # Escaped for HTML, then embedded as JSON with "&" written \u0026.
    assert "Road network: Our own \\u0026lt;roads\\u0026gt;" in doc and "<roads>" not in doc


@pytest.mark.parametrize(("call", "match"), [
    (lambda m: routelayers.add_segments(m, "not a frame"), "segments must be a GeoDataFrame"),
    (lambda m: routelayers.add_segments(m, _segments([1.0]).drop(columns="events_per_km")), "events_per_km"),
    (lambda m: routelayers.add_flows(m, _flows([1], ["entry"]), weight="kg"), "weight"),
    (lambda m: routelayers.add_lixels(m, _segments([1.0])), "gi_bin"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValidationError, match=match):
        call(maps.base_map())


def test_flows_start_switched_off_unless_asked(outline, borders):
    def flow_group(fmap):
        return next(c for c in fmap._children.values()
                    if getattr(c, "layer_name", None) == "Flows (direction of travel)")

    flows = _flows([1, 2], ["entry", "exit"])
    quiet = routelayers.route_map(outline=outline, borders=borders, segments=_segments([1.0]), flows=flows)
    assert flow_group(quiet).show is False
    shown = routelayers.route_map(outline=outline, borders=borders, segments=_segments([1.0]), flows=flows,
                                  show_flows=True)
    assert flow_group(shown).show is True
    # The segments, lixels and crossings layers are on at first.
    assert all(getattr(c, "show", True) for c in quiet._children.values()
               if getattr(c, "layer_name", None) not in (None, "Flows (direction of travel)"))
