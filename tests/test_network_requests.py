"""One route analysis of a store (geo_ibm.network.requests): counts, layers, unsnapped events, refused queries."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from geo_ibm.demo import generate_events
from geo_ibm.errors import ValidationError
from geo_ibm.network.requests import LAYER_NAMES, RouteQuery, check_route_query, current_network, route_analysis
from geo_ibm.network.roads import shipped_roads
from geo_ibm.network.snap import snap_events
from geo_ibm.periods import period_end, period_start
from geo_ibm.store import open_store

N_EVENTS = 3000
QUARTER, PREVIOUS = "2026Q2", "2026Q1"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("routes") / "store.gpkg")
    store.init()
    events, _ = generate_events(N_EVENTS, seed=4)
    assert store.import_events(events, source="demo", user="test").accepted == N_EVENTS
    return store


@pytest.fixture(scope="module")
def analysis(store):
    return route_analysis(store, RouteQuery(quarter=QUARTER))


def road_distance(points) -> np.ndarray:
    """Distance of each point to the shipped roads, from the road lines themselves."""
    roads = shapely.union_all(shipped_roads().geometry.to_numpy())
    return shapely.distance(points, roads)


def test_a_quarter_query_counts_the_quarter_and_the_previous_one(store, analysis):
    assert analysis.n_events == store.count(quarter=QUARTER) > 100
    assert analysis.n_previous == store.count(quarter=PREVIOUS) > 100
    events = store.events(quarter=QUARTER)
    near = road_distance(events.geometry.to_numpy()) <= 250.0
    assert analysis.n_snapped == int(near.sum())
    assert int(analysis.segments["events"].sum()) == analysis.n_snapped
    assert int(analysis.segments["persons"].sum()) == int(events.loc[near, "persons"].sum())
    before = store.events(quarter=PREVIOUS)
    assert int(analysis.segments["previous_events"].sum()) == int(
        (road_distance(before.geometry.to_numpy()) <= 250.0).sum())
    assert analysis.parameters["quarter"] == QUARTER


def test_the_layers_by_name_in_order(store, analysis):
    assert list(analysis.layers()) == ["segments", "corridors", "attribution", "crossings", "flows", "unsnapped"]
    with_lixels = route_analysis(store, RouteQuery(quarter=QUARTER, network_hotspots=True, lixel_m=200, band_m=2000))
    assert list(with_lixels.layers()) == list(LAYER_NAMES)
    lixels = with_lixels.lixels
    assert lixels is not None and int(lixels["events"].sum()) == with_lixels.n_snapped
    for layer in with_lixels.layers().values():
        assert str(layer.crs) == "EPSG:2169"


def test_every_event_is_attributed_or_given_a_reason(store, analysis):
    attribution = analysis.attribution
    assert len(attribution) == analysis.n_events
    done = attribution["crossing_id"].notna()
    assert (done != attribution["reason"].notna()).all()
    assert int(analysis.crossings["events"].sum()) == int(done.sum()) > 0
    assert int(analysis.crossings["persons"].sum()) == int(attribution.loc[done, "persons"].sum())
    network, crossings, _, _ = current_network()
    assert sorted(analysis.crossings["crossing_id"]) == sorted(crossings.frame["crossing_id"])
    assert len(network.segments) == len(analysis.segments)
    # an attributed event's entry leg ends on its own segment: at least its events flow there
    snapped = snap_events(store.events(quarter=QUARTER), network).events.set_index("event_id")
    own = snapped.loc[attribution.loc[done, "event_id"], "segment_id"].value_counts()
    entry = analysis.flows[analysis.flows["leg"] == "entry"].groupby("segment_id")["events"].sum()
    assert (entry.reindex(own.index, fill_value=0) >= own).all()
    assert int(entry.max()) <= int(done.sum())


def test_unsnapped_events_are_listed_with_their_distance(store, analysis):
    events = store.events(quarter=QUARTER)
    distance = road_distance(events.geometry.to_numpy())
    far = distance > 250.0
    assert 0 < far.sum() < len(events)
    unsnapped = analysis.unsnapped
    assert sorted(unsnapped["event_id"]) == sorted(events.loc[far, "event_id"])
    expected = dict(zip(events["event_id"], distance, strict=True))
    np.testing.assert_allclose(unsnapped["distance_m"], [expected[e] for e in unsnapped["event_id"]], atol=1e-6)
    assert (unsnapped["distance_m"] > 250.0).all()
    assert any(f"{int(far.sum())} of {len(events)} events" in w for w in analysis.warnings)
    assert analysis.n_snapped + len(unsnapped) == analysis.n_events


def test_a_from_to_query_with_a_region(store):
    query = RouteQuery(start="2025-07-01", end="2025-12-31", region="Sud-Ouest", tolerance_m=500)
    result = route_analysis(store, query)
    start, end = period_start("2025-07-01"), period_end("2025-12-31")
    assert result.n_events == store.count(start=start, end=end, region="Sud-Ouest") > 0
    assert result.n_previous == store.count(start=start - (end - start), end=start, region="Sud-Ouest")
    assert result.parameters["tolerance_m"] == 500
    assert (result.unsnapped["distance_m"] > 500).all()


@pytest.mark.parametrize(("changes", "column"), [
    ({"tolerance_m": 0}, "tolerance"),
    ({"tolerance_m": 10**6}, "tolerance"),
    ({"network_hotspots": True, "lixel_m": 1}, "lixel"),
    ({"network_hotspots": True, "band_m": 10**7}, "band"),
    ({"start": "2026-01-01"}, "quarter"),
])
def test_hostile_queries_are_refused_before_any_event_is_read(store, changes, column):
    steps: list[tuple[str, float]] = []
    with pytest.raises(ValidationError, match=column) as info:
        route_analysis(store, RouteQuery(quarter=QUARTER, **changes), progress=lambda s, f: steps.append((s, f)))
    assert [p.column for p in info.value.problems] == [column]
    assert steps == [("network", 0.0)]  # the events step never came


def test_check_route_query_refuses_too_many_events():
    network, _, _, _ = current_network()
    with pytest.raises(ValidationError, match="too many"):
        check_route_query(RouteQuery(quarter=QUARTER), 10**9, network)
    check_route_query(RouteQuery(quarter=QUARTER), 10, network)


def test_an_empty_quarter_gives_empty_layers(store):
    result = route_analysis(store, RouteQuery(quarter="2023Q1", network_hotspots=True))
    assert result.n_events == result.n_snapped == result.n_previous == 0
    assert int(result.segments["events"].sum()) == 0 and len(result.segments) > 0
    assert len(result.attribution) == len(result.flows) == len(result.unsnapped) == 0
    assert int(result.crossings["events"].sum()) == 0
    assert result.lixels is not None and int(result.lixels["events"].sum()) == 0
    assert (result.lixels["gi_bin"] == 0).all()
    assert result.warnings == []


def test_an_open_window_compares_with_nothing(store):
    result = route_analysis(store, RouteQuery())
    assert result.n_events == store.count() == N_EVENTS
    assert result.n_previous is None
    assert result.segments["p_value"].isna().all() and (result.segments["previous_events"] == 0).all()


def test_an_entry_country_filter_attributes_to_its_crossings(store):
    result = route_analysis(store, RouteQuery(quarter=QUARTER, entry_country="DE"))
    assert result.n_events == store.count(quarter=QUARTER, entry_country="DE") > 0
    assert set(result.attribution["entry_country"]) == {"DE"}
    _, crossings, _, _ = current_network()
    de = set(crossings.of_country("DE")["crossing_id"])
    assert set(result.attribution["crossing_id"].dropna()) <= de
    table = result.crossings.set_index("crossing_id")
    assert int(table.loc[sorted(de), "events"].sum()) == int(result.attribution["crossing_id"].notna().sum())
