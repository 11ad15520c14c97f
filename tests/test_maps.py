"""Tests of geo_ibm.maps: local assets, escaping, bounded page size, layers and legends."""
from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pytest
import shapely
from mapfixtures import XSS, borders, crossings, feature_collections, outline, synthetic_events  # noqa: F401  # fixtures

from geo_ibm import maps
from geo_ibm.errors import CrsError, ValidationError


def test_overview_map_loads_only_local_assets(outline, borders, crossings):
    doc = maps.render_map(maps.overview_map(synthetic_events(50, seed=1), outline=outline, borders=borders, crossings=crossings))
    assert re.findall(r"https?://", doc) == []
    urls = maps.asset_urls(doc)
    assert "/assets/leaflet/leaflet.js" in urls
    assert all(u.startswith("/assets/") or u == "data:," for u in urls), urls
    assert "bootstrap" not in doc.lower() and "awesome-markers" not in doc.lower() and "jquery" not in doc.lower()
    assert "OpenStreetMap contributors, ODbL 1.0" in doc


def test_configured_tile_server_is_the_only_remote_url(outline, borders, crossings):
    url = "https://tiles.example.lu/{z}/{x}/{y}.png"
    fmap = maps.overview_map(synthetic_events(10, seed=2), outline=outline, borders=borders, crossings=crossings,
                             tiles_url=url, tile_attribution="Example <tiles>")
    doc = maps.render_map(fmap)
    remote = set(re.findall(r"https?://[^\"'\s)]+", doc))
    assert remote == {url}
    # Folium writes options as JSON with "&" as \u0026: the attribution is HTML-escaped once.
    assert "Example \\u0026lt;tiles\\u0026gt;" in doc and "Example <tiles>" not in doc


def test_borders_coloured_by_neighbour_with_length_tooltips(outline, borders, crossings):
    doc = maps.render_map(maps.overview_map(synthetic_events(5, seed=3), outline=outline, borders=borders, crossings=crossings))
    lines = [f for fc in feature_collections(doc) for f in fc["features"] if f["geometry"]["type"] == "LineString"]
    by_neighbour = {f["properties"]["neighbour"]: f["properties"] for f in lines}
    assert set(by_neighbour) == {"BE", "FR", "DE"}
    for code, props in by_neighbour.items():
        assert props["colour"] == maps.NEIGHBOUR_COLOURS[code]
    assert by_neighbour["DE"]["length"] == "82.0 km"
    # Lines are in EPSG:4326 now: Luxembourg lies between 5.7-6.6 E and 49.4-50.2 N.
    lon, lat = lines[0]["geometry"]["coordinates"][0]
    assert 5.5 < lon < 6.8 and 49.3 < lat < 50.3


def test_crossings_by_kind_with_escaped_names(outline, borders, crossings):
    doc = maps.render_map(maps.overview_map(synthetic_events(5, seed=4), outline=outline, borders=borders, crossings=crossings))
    points = [f for fc in feature_collections(doc) for f in fc["features"] if "kind" in f["properties"]]
    assert {p["properties"]["kind"] for p in points} == {"motorway", "rail", "ferry"}
    colours = {p["properties"]["kind"]: p["properties"]["colour"] for p in points}
    assert colours["motorway"] == maps.CROSSING_COLOURS["motorway"] and colours["rail"] == maps.CROSSING_COLOURS["rail"]
    assert len(set(colours.values())) == 3
    names = {p["properties"]["name"] for p in points}
    assert "A3 Dudelange &lt;b&gt;x&lt;/b&gt;" in names
    assert "Weird &#96;&#36;{1}&#96;" in names
    assert "<b>x</b>" not in doc


def test_event_notes_are_escaped_everywhere(outline, borders, crossings):
    events = synthetic_events(20, seed=5, notes=XSS)
    doc = maps.render_map(maps.overview_map(events, outline=outline, borders=borders, crossings=crossings))
    assert "<img src=x" not in doc
    assert "${window" not in doc
    assert "\\ </script>" not in doc and XSS not in doc
    notes = {f["properties"]["notes"] for fc in feature_collections(doc) for f in fc["features"] if "notes" in f["properties"]}
    assert notes == {maps.text(XSS)}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>", "&lt;b&gt;"),
        ('"q"', "&quot;q&quot;"),
        ("`${x}`", "&#96;&#36;{x}&#96;"),
        ("a\\b", "a&#92;b"),
        (None, ""),
        (float("nan"), ""),
        (3, "3"),
    ],
)
def test_text_escapes_html_and_template_literals(raw, expected):
    assert maps.text(raw) == expected


def test_page_stays_small_for_100k_events(outline, borders, crossings):
    events = synthetic_events(100_000, seed=6)
    doc = maps.render_map(maps.overview_map(events, outline=outline, borders=borders, crossings=crossings))
    assert len(doc.encode("utf-8")) < 2 * 1024 * 1024
    # No individual markers above the threshold; cells stay bounded.
    cells = [f for fc in feature_collections(doc) for f in fc["features"] if "count" in f["properties"]]
    assert 0 < len(cells) <= 1500
    assert sum(f["properties"]["count"] for f in cells) == 100_000
    assert "E99999" not in doc


def test_individual_events_only_below_threshold(outline, borders, crossings):
    events = synthetic_events(30, seed=7)
    shown = maps.render_map(maps.overview_map(events, outline=outline, borders=borders, crossings=crossings, max_markers=30))
    hidden = maps.render_map(maps.overview_map(events, outline=outline, borders=borders, crossings=crossings, max_markers=29))
    assert '"event_id": "E29"' in shown
    assert '"event_id": "E29"' not in hidden


@pytest.mark.parametrize("max_cells", [1, 7, 50, 400])
def test_aggregate_events_matches_brute_force(max_cells):
    events = synthetic_events(3_000, seed=8)
    cells = maps.aggregate_events(events, max_cells=max_cells)
    assert len(cells) <= max_cells
    size = float(cells["cell_m"].iloc[0])
    xy = shapely.get_coordinates(events.geometry.values)
    expected: dict[tuple[int, int], int] = {}
    for x, y in xy:
        key = (int(np.floor(x / size)), int(np.floor(y / size)))
        expected[key] = expected.get(key, 0) + 1
    got = {}
    for geom, count in zip(cells.geometry, cells["count"]):
        minx, miny, _, _ = geom.bounds
        got[(int(round(minx / size)), int(round(miny / size)))] = int(count)
    assert got == expected
    # The smallest size (doubling from 500 m) that fits: half of it would not.
    if size > 500:
        half = size / 2
        keys = {(int(np.floor(x / half)), int(np.floor(y / half))) for x, y in xy}
        assert len(keys) > max_cells


@pytest.mark.parametrize("max_cells", [1, 3, 40, 900, 100_000])
@pytest.mark.parametrize("min_cell_m", [250.0, 500.0, 1000.0 / 3])
def test_aggregate_events_equals_rebinning_at_every_size(max_cells, min_cell_m):
    # Reference: re-bin every event at each doubled size, as a plain loop would.
    rng = np.random.default_rng(11)
    xy = np.column_stack([rng.uniform(52_000, 104_000, 5_000), rng.uniform(58_000, 138_000, 5_000)])
    xy[:50] = np.floor(xy[:50] / 4000) * 4000  # points on cell corners of several sizes
    size = min_cell_m
    while True:
        cells, counts = np.unique(np.floor(xy / size).astype(np.int64), axis=0, return_counts=True)
        if len(cells) <= max_cells:
            break
        size *= 2
    got = maps.aggregate_events(xy, max_cells=max_cells, min_cell_m=min_cell_m)
    assert float(got["cell_m"].iloc[0]) == size and got.crs == "EPSG:2169"
    np.testing.assert_array_equal(got["count"].to_numpy(), counts)
    np.testing.assert_array_equal(shapely.bounds(got.geometry.values), np.column_stack([cells * size, (cells + 1) * size]))


def test_coordinates_draw_the_same_cells_as_the_frame(outline, borders, crossings):
    events = synthetic_events(2_000, seed=12)
    xy = shapely.get_coordinates(events.geometry.values)
    from_frame = maps.aggregate_events(events, max_cells=300)
    from_array = maps.aggregate_events(xy, max_cells=300)
    assert from_frame.equals(from_array)
    doc_frame = maps.render_map(maps.overview_map(events, outline=outline, borders=borders, crossings=crossings, max_markers=10))
    doc_array = maps.render_map(maps.overview_map(xy, outline=outline, borders=borders, crossings=crossings, max_markers=10))
    cells = [sorted((json.dumps(f["geometry"]), f["properties"]["count"]) for fc in feature_collections(doc)
                    for f in fc["features"] if "count" in f["properties"]) for doc in (doc_frame, doc_array)]
    assert cells[0] == cells[1] and sum(c for _g, c in cells[1]) == 2_000
    # An array has no attributes: never individual markers, whatever max_markers says.
    few = maps.render_map(maps.overview_map(xy[:5], outline=outline, borders=borders, crossings=crossings, max_markers=10))
    assert "Individual events are shown when at most" in few and "Individual events\"" not in few


@pytest.mark.parametrize("bad", [np.zeros((4, 3)), np.zeros(6)])
def test_coordinate_arrays_must_be_n_by_2(bad):
    with pytest.raises(ValidationError, match=r"shape \(n, 2\)"):
        maps.aggregate_events(bad)


def test_aggregate_events_refuses_missing_crs_and_bad_limit():
    events = synthetic_events(5, seed=9).set_crs(None, allow_override=True)
    with pytest.raises(CrsError, match="no CRS"):
        maps.aggregate_events(events)
    with pytest.raises(ValidationError, match="max_cells must be at least 1"):
        maps.aggregate_events(synthetic_events(5, seed=9), max_cells=0)


def test_count_classes_single_value():
    assert maps.count_classes(np.array([1, 1, 1])) == [(1, 1)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_classes", [1, 3, 5])
def test_count_classes_partition_the_range(seed, n_classes):
    counts = np.random.default_rng(seed).integers(1, 500, size=200)
    classes = maps.count_classes(counts, n=n_classes)
    assert 1 <= len(classes) <= n_classes
    assert classes[0][0] == counts.min() and classes[-1][1] == counts.max()
    for (lo, hi), (next_lo, _next_hi) in zip(classes, classes[1:]):
        assert lo <= hi and next_lo == hi + 1
    # Quantile classes: the first class holds about 1/n of the cells (ties aside).
    first = np.mean(counts <= classes[0][1])
    assert first == pytest.approx(1 / n_classes, abs=0.05)


def test_no_events_gives_a_map_with_a_notice(outline, borders, crossings):
    doc = maps.render_map(maps.overview_map(synthetic_events(0, seed=1), outline=outline, borders=borders, crossings=crossings))
    assert "No events match the filter." in doc


def test_hotspot_map_draws_significant_cells_only(outline, borders):
    cells = [shapely.box(60_000 + i * 1000, 80_000, 61_000 + i * 1000, 81_000) for i in range(7)]
    gi = gpd.GeoDataFrame({"gi_bin": [3, 2, 1, 0, -1, -2, -3], "gi_z": np.linspace(3, -3, 7), "count": range(7)},
                          geometry=cells, crs=2169)
    emerging = gpd.GeoDataFrame({"category": ["new hot spot", "no pattern detected"]}, geometry=cells[:2], crs=2169)
    fmap = maps.hotspot_map(outline=outline, borders=borders, gi=gi, emerging=emerging, notes=["KDE: <b>too few</b>"])
    doc = maps.render_map(fmap)
    drawn = [f["properties"] for fc in feature_collections(doc) for f in fc["features"] if "gi_bin" in f["properties"]]
    assert sorted(int(p["gi_bin"]) for p in drawn) == [-3, -2, -1, 1, 2, 3]
    assert {p["colour"] for p in drawn} == set(maps.GI_BIN_COLOURS.values())
    categories = [f["properties"]["category"] for fc in feature_collections(doc) for f in fc["features"] if "category" in f["properties"]]
    assert categories == ["new hot spot"]
    assert "KDE: &lt;b&gt;too few&lt;/b&gt;" in doc or "KDE: \\u0026lt;b\\u0026gt;too few" in doc
    assert "<b>too few</b>" not in doc
    assert "Gi* hot and cold spots" in maps.layer_names(fmap)
    assert re.findall(r"https?://", doc) == []


def test_hotspot_map_merges_cells_above_the_limit(outline, borders):
    cells = [shapely.box(60_000 + i * 100, 80_000, 60_100 + i * 100, 80_100) for i in range(50)]
    gi = gpd.GeoDataFrame({"gi_bin": [3] * 25 + [-2] * 25}, geometry=cells, crs=2169)
    few = maps.render_map(maps.hotspot_map(outline=outline, borders=borders, gi=gi))
    merged = maps.render_map(maps.hotspot_map(outline=outline, borders=borders, gi=gi, max_cells=10))
    count = lambda doc: len([f for fc in feature_collections(doc) for f in fc["features"] if "gi_bin" in f["properties"]])  # noqa: E731
    assert count(few) == 50 and count(merged) == 2
    assert len(merged) < len(few)


@pytest.mark.parametrize("details", [True, False])
def test_overview_without_details_draws_aggregates_only(outline, borders, crossings, details):
    events = synthetic_events(30, seed=5, notes="secret-note-31")
    doc = maps.render_map(maps.overview_map(events, outline=outline, borders=borders, crossings=crossings,
                                            max_markers=100, details=details))
    collections = feature_collections(doc)
    point_ids = [f["properties"].get("event_id") for fc in collections for f in fc["features"]
                 if f["geometry"]["type"] == "Point" and "event_id" in f["properties"]]
    counted = sum(f["properties"]["count"] for fc in collections for f in fc["features"] if "count" in f["properties"])
    assert counted == 30  # the cells hold every event either way
    assert ("secret-note-31" in doc) == details
    assert len(point_ids) == (30 if details else 0)
    assert ("Individual events need the analyst role." in doc) == (not details)


def test_map_documents_have_a_language_title_main_landmark_and_zoomable_viewport():
    import folium

    doc = maps.render_map(folium.Map(tiles=None), title='Carte <"x">', lang="fr")
    assert doc.count('<html lang="fr">') == 1 and "<title>Carte &lt;&#x27;x&#x27;&gt;</title>" not in doc
    assert "<title>Carte &lt;&quot;x&quot;&gt;</title>" in doc
    main = doc[doc.index("<main "): doc.index("</main>")]
    assert '<div class="folium-map"' in main and "<h1" in main and "Carte &lt;&quot;x&quot;&gt;</h1>" in main
    assert "user-scalable=no" not in doc and "maximum-scale" not in doc
    assert 'content="width=device-width, initial-scale=1.0"' in doc
    assert maps.render_map(folium.Map(tiles=None), lang="x<y").count('<html lang="xy">') == 1
