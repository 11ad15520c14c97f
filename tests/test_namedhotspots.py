"""Tests for geo_ibm.namedhotspots: contiguity, counts, trend, emerging category, names and protection."""
from __future__ import annotations

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy import stats

from geo_ibm.disclosure import DisclosureRule, protect_counts
from geo_ibm.errors import ValidationError
from geo_ibm.grid import hex_grid, square_grid
from geo_ibm.namedhotspots import COLUMNS, hotspot_components, named_hotspots, protect_hotspots
from geo_ibm.settings import WORKING_CRS

CELL = 1000.0


def _gi(hot: dict[tuple[int, int], int], *, counts: dict[tuple[int, int], int] | None = None,
        z: dict[tuple[int, int], float] | None = None, shape: str = "square") -> gpd.GeoDataFrame:
    """A 10 x 10 km grid of 1 km cells, bins ``hot[(row, col)]`` (0 elsewhere), counts and z-scores as given."""
    grid = (square_grid if shape == "square" else hex_grid)(shapely.box(0, 0, 10_000, 10_000), cell=CELL)
    keys = list(zip(grid["row"], grid["col"]))
    counts = counts or {}
    z = z or {}
    out = grid.copy()
    out.insert(4, "count", [counts.get(k, 0) for k in keys])
    out.insert(5, "gi_z", [z.get(k, 3.0 if hot.get(k, 0) else 0.0) for k in keys])
    out.insert(6, "gi_bin_fdr", np.array([hot.get(k, 0) for k in keys], dtype=np.int8))
    out.attrs = {"parameters": {"cell": CELL, "band": 2 * CELL, "shape": shape}}
    return out


def _planted_layers():
    """Commune 'Roeser' west of x = 5 km, 'Bettembourg' east of it; an A3 along x = 1 500; a service area on it."""
    communes = gpd.GeoDataFrame(
        {"commune": ["Roeser", "Bettembourg"], "canton": ["Esch-sur-Alzette"] * 2, "region": ["Sud-Ouest"] * 2},
        geometry=[shapely.box(-1_000, -1_000, 5_000, 11_000), shapely.box(5_000, -1_000, 11_000, 11_000)],
        crs=WORKING_CRS)
    roads = gpd.GeoDataFrame({"ref": ["A3"]}, geometry=[shapely.LineString([(1_500, -2_000), (1_500, 12_000)])],
                             crs=WORKING_CRS)
    marks = gpd.GeoDataFrame({"label_en": ["Aire de Berchem"], "label_fr": ["Aire de Berchem"], "kind": ["service_area"]},
                             geometry=[shapely.Point(1_600, 2_000)], crs=WORKING_CRS)
    return {"roads": roads, "landmark_layer": marks, "commune_layer": communes}


def _events(xy: list[tuple[float, float]], persons: list[int] | None = None) -> gpd.GeoDataFrame:
    pts = gpd.points_from_xy([p[0] for p in xy], [p[1] for p in xy])
    return gpd.GeoDataFrame({"persons": persons if persons is not None else [1] * len(xy)}, geometry=pts,
                            crs=WORKING_CRS)


# --------------------------------------------------------------------------- contiguity


def test_two_separate_blobs_are_two_hotspots_ranked_by_events():
    # Blob A: rows 1-2, cols 1-2 (4 cells, 10 events); blob B: row 6, cols 6-8 (3 cells, 21 events).
    hot = {(1, 1): 3, (1, 2): 2, (2, 1): 1, (2, 2): 3, (6, 6): 2, (6, 7): 2, (6, 8): 1}
    counts = {(1, 1): 4, (1, 2): 3, (2, 1): 1, (2, 2): 2, (6, 6): 7, (6, 7): 12, (6, 8): 2}
    z = {(1, 1): 3.1, (1, 2): 2.2, (2, 1): 1.7, (2, 2): 3.4, (6, 6): 2.3, (6, 7): 2.5, (6, 8): 1.8}
    spots = named_hotspots(_gi(hot, counts=counts, z=z), **_planted_layers())
    assert list(spots.columns) == [*COLUMNS, "geometry"] and spots.crs.to_epsg() == 2169
    assert spots["hotspot_id"].tolist() == ["H1", "H2"] and spots["rank"].tolist() == [1, 2]
    assert spots["cells"].tolist() == [3, 4]
    assert spots["events"].tolist() == [21, 10]
    assert spots["max_z"].tolist() == [2.5, 3.4]
    assert spots["confidence"].tolist() == ["95%", "99%"]
    assert spots["persons"].isna().all() and spots["trend"].isna().all() and spots["emerging"].isna().all()
    assert spots.geometry.iloc[0].equals(shapely.box(6_000, 6_000, 9_000, 7_000))
    assert spots.geometry.iloc[1].equals(shapely.box(1_000, 1_000, 3_000, 3_000))
    # Named at the peak cell (most events): B's at (6, 7), east of x = 5 km; A's at (1, 1), on the A3 by the service area.
    assert spots["name"].tolist() == ["Bettembourg", "A3 at Aire de Berchem (Roeser)"]
    assert spots["road_ref"].tolist() == ["", "A3"] and spots["landmark"].tolist() == ["", "Aire de Berchem"]
    assert spots["commune"].tolist() == ["Bettembourg", "Roeser"] and set(spots["canton"]) == {"Esch-sur-Alzette"}
    assert spots["communes"].tolist() == ["Bettembourg", "Roeser"]
    assert named_hotspots(_gi(hot, counts=counts, z=z), lang="fr", **_planted_layers())["name"].tolist() == [
        "Bettembourg", "A3, Aire de Berchem (Roeser)"]


def test_a_diagonal_touch_joins_two_cells_into_one_hotspot():
    spots = named_hotspots(_gi({(3, 3): 2, (4, 4): 1}, counts={(3, 3): 5, (4, 4): 6}), **_planted_layers())
    assert len(spots) == 1 and spots["cells"].iloc[0] == 2 and spots["events"].iloc[0] == 11
    # One cell apart (a gap of one cell) stays two.
    assert len(named_hotspots(_gi({(3, 3): 2, (5, 5): 1}), **_planted_layers())) == 2


def test_cold_spots_and_weak_bins_are_left_out():
    gi = _gi({(1, 1): -3, (1, 2): 1, (5, 5): 3}, counts={(1, 2): 1, (5, 5): 2})
    assert named_hotspots(gi, **_planted_layers())["cells"].tolist() == [1, 1]
    only_99 = named_hotspots(gi, min_bin=3, **_planted_layers())
    assert len(only_99) == 1 and only_99["confidence"].iloc[0] == "99%"


@pytest.mark.parametrize("shape", ["square", "hex"])
def test_lattice_contiguity_equals_the_graph_of_touching_cells(shape):
    rng = np.random.default_rng(11)
    grid = _gi({}, shape=shape)
    # Whole cells only: a clipped cell at the area's edge stays a lattice neighbour where clipping parted the two.
    grid = grid[grid["area_frac"] > 1 - 1e-9]
    hot = grid[rng.random(len(grid)) < 0.3].reset_index(drop=True)
    labels = hotspot_components(hot, shape=shape)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(hot)))
    geoms = hot.geometry.to_numpy()
    for i in range(len(hot)):
        for j in range(i + 1, len(hot)):
            if shapely.dwithin(geoms[i], geoms[j], 1e-6):  # a shared edge or corner (up to rounding)
                graph.add_edge(i, j)
    expected = sorted(sorted(c) for c in nx.connected_components(graph))
    got = sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels))
    assert got == expected and len(expected) > 3
    # Without row/col (a protected result, say) the geometries decide, with the same answer.
    fallback = hotspot_components(hot.drop(columns=["row", "col"]), shape=shape)
    assert sorted(sorted(np.flatnonzero(fallback == k).tolist()) for k in np.unique(fallback)) == expected


# --------------------------------------------------------------------------- events, trend, emerging


def test_events_and_persons_are_counted_in_the_hotspot_cells():
    gi = _gi({(1, 1): 3, (1, 2): 3, (6, 6): 2}, counts={(1, 1): 9})  # counts are ignored when events are given
    rng = np.random.default_rng(3)
    xy = [tuple(p) for p in rng.uniform(0, 10_000, size=(400, 2))]
    persons = rng.integers(1, 6, size=400).tolist()
    events = _events(xy, persons)
    spots = named_hotspots(gi, events=events, **_planted_layers())
    joined = gpd.sjoin(events, spots[["hotspot_id", "geometry"]], predicate="within")
    expected = joined.groupby("hotspot_id").agg(events=("persons", "size"), persons=("persons", "sum"))
    got = spots.set_index("hotspot_id")[["events", "persons"]]
    assert got["events"].to_dict() == expected["events"].to_dict()
    assert got["persons"].to_dict() == expected["persons"].astype(float).to_dict()


def test_trend_against_the_previous_period_is_the_exact_poisson_test():
    gi = _gi({(1, 1): 3, (6, 6): 3, (8, 1): 2})
    inside = {(1, 1): (1_500, 1_500), (6, 6): (6_500, 6_500), (8, 1): (1_500, 8_500)}
    now = _events([inside[(1, 1)]] * 30 + [inside[(6, 6)]] * 12 + [inside[(8, 1)]] * 4)
    before = _events([inside[(1, 1)]] * 10 + [inside[(6, 6)]] * 11)
    spots = named_hotspots(gi, events=now, previous=before, exposure=(92, 91), **_planted_layers())
    assert spots["events"].tolist() == [30, 12, 4] and spots["previous"].tolist() == [10, 11, 0]
    p = stats.binomtest(30, 40, 92 / 183).pvalue
    assert spots["trend_p"].iloc[0] == pytest.approx(p) and p < 0.05
    assert spots["trend"].tolist() == ["up", "stable", "new"]
    assert spots["trend_p"].iloc[1] == pytest.approx(stats.binomtest(12, 23, 92 / 183).pvalue)
    assert spots["change_pct"].iloc[0] == pytest.approx(200.0) and np.isnan(spots["change_pct"].iloc[2])
    fewer = named_hotspots(gi, events=before, previous=now, **_planted_layers())
    assert fewer.set_index("events").loc[10, "trend"] == "down"


def test_each_hotspot_takes_its_cells_most_frequent_emerging_category():
    gi = _gi({(1, 1): 3, (1, 2): 3, (1, 3): 3, (7, 7): 2}, counts={(1, 1): 5, (7, 7): 1})
    emerging = _gi({}).assign(category="no pattern detected")
    key = dict(zip(zip(emerging["row"], emerging["col"]), emerging.index))
    emerging.loc[[key[(1, 1)], key[(1, 2)]], "category"] = "persistent hot spot"
    emerging.loc[key[(1, 3)], "category"] = "new hot spot"
    emerging.loc[key[(7, 7)], "category"] = "new cold spot"
    spots = named_hotspots(gi, emerging=emerging, **_planted_layers())
    assert spots["emerging"].iloc[0] == "persistent hot spot" and spots["emerging"].isna().iloc[1]
    # At equal frequency the more telling category wins (new before persistent).
    emerging.loc[key[(1, 2)], "category"] = "new hot spot"
    emerging.loc[key[(1, 1)], "category"] = "persistent hot spot"
    emerging.loc[key[(1, 3)], "category"] = "no pattern detected"
    assert named_hotspots(gi, emerging=emerging, **_planted_layers())["emerging"].iloc[0] == "new hot spot"


def test_a_hotspot_lists_the_communes_it_covers_most_events_first():
    # Cells (3, 3)..(3, 6) straddle x = 5 km: two in Roeser, two in Bettembourg, most events in Bettembourg.
    hot = {(3, c): 3 for c in range(3, 7)}
    counts = {(3, 3): 1, (3, 4): 2, (3, 5): 9, (3, 6): 1}
    spots = named_hotspots(_gi(hot, counts=counts), **_planted_layers())
    assert spots["communes"].tolist() == ["Bettembourg, Roeser"] and spots["commune"].iloc[0] == "Bettembourg"
    # With no event anywhere the cells decide (two each: then the name).
    assert named_hotspots(_gi(hot), **_planted_layers())["communes"].tolist() == ["Bettembourg, Roeser"]


def test_repeated_names_are_numbered():
    spots = named_hotspots(_gi({(2, 7): 3, (8, 7): 3}, counts={(2, 7): 3, (8, 7): 2}), **_planted_layers())
    assert spots["name"].tolist() == ["Bettembourg", "Bettembourg #2"]


def test_no_significant_cell_gives_an_empty_frame_with_the_columns():
    spots = named_hotspots(_gi({}), **_planted_layers())
    assert len(spots) == 0 and list(spots.columns) == [*COLUMNS, "geometry"]


# --------------------------------------------------------------------------- protection and validation


def test_protected_hotspots_show_protected_counts_and_no_z_or_test():
    gi = _gi({(1, 1): 3, (6, 6): 3, (8, 1): 2})
    inside = [(1_500, 1_500)] * 23 + [(6_500, 6_500)] * 3 + [(1_500, 8_500)] * 12
    before = [(1_500, 1_500)] * 8 + [(6_500, 6_500)] * 9 + [(1_500, 8_500)] * 12
    spots = named_hotspots(gi, events=_events(inside), previous=_events(before), **_planted_layers())
    rule = DisclosureRule()
    shown = protect_hotspots(spots, rule)
    assert not {"max_z", "trend_p", "change_pct"} & set(shown.columns)
    for column in ("events", "persons", "previous"):
        np.testing.assert_array_equal(shown[column].to_numpy(), protect_counts(spots[column].to_numpy(), rule))
    assert shown["events"].tolist()[:2] == [25.0, 10.0] and np.isnan(shown["events"].iloc[2])
    # Trends of the released values only: 25 against 10 is up, 10 against 10 stable, a suppressed count none.
    assert shown["trend"].tolist()[0] == "up" and shown["trend"].tolist()[1] == "stable"
    assert pd.isna(shown["trend"].iloc[2])
    assert shown.attrs["parameters"]["disclosure"] == rule.describe()


@pytest.mark.parametrize(("call", "match"), [
    (lambda: named_hotspots(pd.DataFrame({"cell_id": [0]})), "must be a GeoDataFrame"),
    (lambda: named_hotspots(_gi({}).drop(columns=["gi_bin_fdr"])), r"missing columns \['gi_bin_fdr'\]"),
    (lambda: named_hotspots(_gi({}).drop(columns=["count"])), r"missing columns \['count'\]"),
    (lambda: named_hotspots(_gi({}), min_bin=0), "min_bin must be 1, 2 or 3"),
    (lambda: named_hotspots(_gi({}), exposure=(1.0, 0.0)), "exposure must be two positive lengths"),
    (lambda: named_hotspots(_gi({(1, 1): 3}), emerging=_gi({})), "emerging: no 'category' column"),
])
def test_bad_inputs_are_refused_by_name(call, match):
    with pytest.raises(ValidationError, match=match):
        call()


# --------------------------------------------------------------------------- from the store


def test_the_viewer_gets_the_analysts_hotspots_with_protected_counts(tmp_path):
    from geo_ibm.analysis import HotspotQuery
    from geo_ibm.demo import generate_events
    from geo_ibm.namedhotspots import named_hotspots_for_query
    from geo_ibm.store import open_store

    events, _truth = generate_events(2500, seed=4, start="2025-10-01", end="2026-06-30")
    store = open_store(tmp_path / "s.gpkg")
    store.init()
    store.import_events(events, source="demo", user="test")
    rule = DisclosureRule()
    query = HotspotQuery(method="gi", quarter="2026Q2", cell=rule.cell_m)
    analyst = named_hotspots_for_query(store, query)
    viewer = named_hotspots_for_query(store, query, disclosure=rule)
    assert len(analyst) >= 2 and analyst["name"].is_unique
    assert viewer["name"].tolist() == analyst["name"].tolist()
    np.testing.assert_array_equal(viewer["events"].to_numpy(), protect_counts(analyst["events"].to_numpy(), rule))
    # Events are the quarter's, counted in the cells; the previous quarter's are the trend's.
    quarter = store.events(quarter="2026Q2")
    joined = gpd.sjoin(quarter, analyst[["hotspot_id", "geometry"]], predicate="intersects")
    assert joined.drop_duplicates("event_id").groupby("hotspot_id").size().reindex(analyst["hotspot_id"]).fillna(0) \
        .astype(int).tolist() == analyst["events"].tolist()
    assert analyst["previous"].notna().all() and set(analyst["trend"]) <= {"new", "up", "down", "stable"}
    assert analyst.attrs["parameters"]["cell"] == rule.cell_m


def test_the_report_tables_named_variant_is_the_named_hotspots_of_the_gi_cells():
    from geo_ibm import layers
    from geo_ibm.demo import generate_events
    from geo_ibm.hotspots import hotspots_from_events
    from geo_ibm.tables import TABLE_NAMES, named_hotspot_table, top_hotspot_cells

    events, _truth = generate_events(600, seed=9, start="2026-01-01", end="2026-03-31")
    before, _truth = generate_events(500, seed=10, start="2025-10-01", end="2025-12-31")
    outline = layers.luxembourg_outline()
    table = named_hotspot_table(events, study_area=outline, cell=1000, n=5, previous=before)
    gi = hotspots_from_events(events, study_area=outline, cell=1000)
    expected = named_hotspots(gi, events=events, previous=before).head(5)
    assert "named_hotspots" in TABLE_NAMES and len(table) == len(expected) >= 2
    assert table["name"].tolist() == expected["name"].tolist()
    assert table["events"].tolist() == expected["events"].tolist() and table["trend"].tolist() == expected["trend"].tolist()
    inside = gpd.GeoSeries(gpd.points_from_xy(table["x"], table["y"]), crs=WORKING_CRS).within(expected.geometry.reset_index(drop=True))
    assert inside.all() and (table["cell_m"] == 1000).all()
    # The cell table keeps working for its callers, and ranks cells that the named table merges.
    cells = top_hotspot_cells(events, study_area=outline, cantons=layers.cantons(), cell=1000, n=5)
    assert len(cells) == 5 and expected["cells"].iloc[0] >= 1


def test_events_equal_the_gi_counts_of_the_cells_also_across_a_clipped_border():
    from geo_ibm import layers
    from geo_ibm.demo import generate_events
    from geo_ibm.hotspots import hotspots_from_events

    events, _truth = generate_events(1500, seed=12, start="2026-01-01", end="2026-03-31")
    gi = hotspots_from_events(events, study_area=layers.luxembourg_outline(), cell=1000)
    spots = named_hotspots(gi, events=events)
    hot = gi[gi["gi_bin_fdr"] > 0]
    owner = gpd.sjoin(gpd.GeoDataFrame(hot[["count"]], geometry=hot.geometry.representative_point(), crs=WORKING_CRS),
                      spots[["hotspot_id", "geometry"]], predicate="within")
    expected = owner.groupby("hotspot_id")["count"].sum().reindex(spots["hotspot_id"]).fillna(0).astype(int)
    assert spots["events"].tolist() == expected.tolist() and spots["events"].sum() > 100


def test_an_event_across_the_limit_of_a_clipped_cell_counts_as_the_gi_grid_counts_it():
    triangle = shapely.Polygon([(0, 0), (10_000, 0), (0, 10_000)])
    grid = square_grid(triangle, cell=CELL)
    key = dict(zip(zip(grid["row"], grid["col"]), grid.index))
    gi = grid.copy()
    gi.insert(4, "count", 0)
    gi.insert(5, "gi_bin_fdr", 0)
    gi.loc[key[(4, 5)], ["count", "gi_bin_fdr"]] = [2, 3]  # the square 5-6 km east, 4-5 km north, cut by the diagonal
    gi.attrs = {"parameters": {"cell": CELL, "shape": "square"}}
    assert gi.loc[key[(4, 5)], "area_frac"] < 1
    # One event inside the triangle, one in the same lattice square beyond its diagonal.
    events = _events([(5_100, 4_100), (5_900, 4_900)])
    assert named_hotspots(gi, events=events, **_planted_layers())["events"].tolist() == [2]
    # Without the cell size only the clipped polygon is known: the event beyond it is not counted.
    gi.attrs = {"parameters": {"shape": "square"}}
    assert named_hotspots(gi, events=events, **_planted_layers())["events"].tolist() == [1]


@pytest.mark.parametrize(("filters", "expected"), [
    # Lengths in days of local time: 2026Q1 loses the hour of the change to summer time.
    ({"quarter": "2026Q1", "region": "Nord"}, ({"quarter": "2025Q4", "region": "Nord"}, (90 - 1 / 24, 92 + 1 / 24))),
    ({"start": pd.Timestamp("2026-03-01", tz="UTC"), "end": pd.Timestamp("2026-03-11", tz="UTC")},
     ({"start": pd.Timestamp("2026-02-19", tz="UTC"), "end": pd.Timestamp("2026-03-01", tz="UTC")}, (10.0, 10.0))),
    ({"start": pd.Timestamp("2026-03-01", tz="UTC")}, None),
    ({"quarter": "2026Q1", "start": pd.Timestamp("2026-03-01", tz="UTC"), "end": pd.Timestamp("2026-03-11", tz="UTC")}, None),
    ({}, None),
])
def test_the_period_before_a_query(filters, expected):
    from geo_ibm.namedhotspots import _previous_filters

    got = _previous_filters(filters)
    if expected is None:
        assert got is None
    else:
        assert got[0] == expected[0] and got[1] == pytest.approx(expected[1])
