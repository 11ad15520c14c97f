"""Filters, paging, columns and groupings of event store reads (geo_ibm.store.filters), against every backend."""
from __future__ import annotations

import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from storefixtures import event_rows, filled, store_factory, with_field, write_events  # noqa: F401

from geo_ibm.errors import NotFoundError, ValidationError
from geo_ibm.store import EventStore
from geo_ibm.store.filters import (
    POSTGRESQL,
    SQLITE,
    EventFilter,
    Paging,
    box_clauses,
    check_filter_names,
    paging_sql,
    parse_columns,
    parse_count_keys,
    parse_filters,
    parse_paging,
    where_sql,
)


def brute(store: EventStore) -> gpd.GeoDataFrame:
    return store.events()


FILTER_CASES = [
        ({"start": "2024-07-01"}, lambda g: g["observed_at"] >= pd.Timestamp("2024-07-01", tz="Europe/Luxembourg")),
        ({"end": "2024-03-31"}, lambda g: g["observed_at"] < pd.Timestamp("2024-04-01", tz="Europe/Luxembourg")),
        (
            {"start": "2024-02-01T06:00", "end": "2024-09-01T00:00:00+02:00"},
            lambda g: (g["observed_at"] >= pd.Timestamp("2024-02-01T06:00", tz="Europe/Luxembourg"))
            & (g["observed_at"] < pd.Timestamp("2024-08-31T22:00Z")),
        ),
        ({"quarter": "2024q3"}, lambda g: g["quarter"] == "2024Q3"),
        ({"quarter": "2025-Q1"}, lambda g: (g["observed_at"].dt.year == 2025) & (g["observed_at"].dt.quarter == 1)),
        ({"location_kind": "Motorway"}, lambda g: g["location_kind"] == "motorway"),
        ({"location_kind": ["urban", "rest_area"]}, lambda g: g["location_kind"].isin(["urban", "rest_area"])),
        ({"entry_country": "be"}, lambda g: g["entry_country"] == "BE"),
        ({"transport_mode": ["bus"], "entry_country": "FR"}, lambda g: (g["transport_mode"] == "bus") & (g["entry_country"] == "FR")),
        ({"region": "sud-ouest"}, lambda g: g.geometry.x < 80_000),
        ({"canton": ["Remich"]}, lambda g: g.geometry.x >= 80_000),
        (
            {"bbox": (70_000, 80_000, 85_000, 110_000)},
            lambda g: g.geometry.x.between(70_000, 85_000) & g.geometry.y.between(80_000, 110_000),
        ),
        (   # most of the extent: scanned without the R-tree
            {"bbox": (65_000, 62_000, 100_500, 131_000)},
            lambda g: g.geometry.x.between(65_000, 100_500) & g.geometry.y.between(62_000, 131_000),
        ),
        ({"event_id": ["E00003", "E00399", "E00100", "nope"]}, lambda g: g["event_id"].isin(["E00003", "E00100", "E00399"])),
        ({"event_id": "E00007", "region": "Centre-Est"}, lambda g: (g["event_id"] == "E00007") & (g.geometry.x >= 80_000)),
]
"""Filters with the pandas predicate that selects the same events from the full frame."""


@pytest.mark.parametrize(("filters", "predicate"), FILTER_CASES)
def test_filters_match_brute_force(filled, filters, predicate):
    everything = brute(filled)
    expected = sorted(everything.loc[predicate(everything).to_numpy(), "event_id"])
    assert 0 < len(expected) < len(everything)
    assert sorted(filled.events(**filters)["event_id"]) == expected
    assert filled.count(**filters) == len(expected)


def test_date_objects_and_paging(filled):
    day = filled.events(start=datetime.date(2024, 5, 1), end=datetime.date(2024, 5, 31))
    assert day["observed_at"].min() >= pd.Timestamp("2024-05-01", tz="Europe/Luxembourg")
    assert day["observed_at"].max() < pd.Timestamp("2024-06-01", tz="Europe/Luxembourg")
    everything = filled.events()
    assert everything["observed_at"].is_monotonic_increasing
    page = filled.events(limit=10, offset=5)
    assert page["event_id"].tolist() == everything["event_id"].iloc[5:15].tolist()
    assert filled.events(offset=395)["event_id"].tolist() == everything["event_id"].iloc[395:].tolist()


@pytest.mark.parametrize(
    ("filters", "match"),
    [
        ({"start": "last tuesday"}, "start is not a date"),
        ({"end": "2024-13-01"}, "end is not a date"),
        ({"quarter": "2024Q5"}, "quarter must look like '2024Q3'|quarter must look like '2025Q3'"),
        ({"region": "Atlantis"}, "region 'Atlantis' is unknown; known regions: .*Sud-Ouest"),
        ({"canton": "Paris"}, "canton 'Paris' is unknown"),
        ({"location_kind": "harbour"}, "location_kind 'harbour' is unknown; allowed: motorway"),
        ({"entry_country": ["BE", "NL"]}, "entry_country 'NL' is unknown"),
        ({"transport_mode": "boat"}, "transport_mode 'boat' is unknown"),
        ({"bbox": (1, 2, 3)}, "bbox must be four numbers"),
        ({"bbox": (10, 0, 0, 10)}, "bbox must have minx <= maxx"),
        ({"limit": -1}, "limit must be a whole number"),
        ({"offset": 1.5}, "offset must be a whole number"),
        ({"event_id": [1, 2]}, "event_id must be a text or a list"),
    ],
)
def test_bad_filters_name_the_parameter(filled, filters, match):
    with pytest.raises(ValidationError, match=match):
        filled.events(**filters)


def test_count_refuses_unknown_filter(filled):
    with pytest.raises(ValidationError, match="unknown filter.*colour"):
        filled.count(colour="red")


def test_quarter_counts_and_summary_match_pandas(filled):
    everything = filled.events()
    expected = everything.groupby("quarter").agg(events=("event_id", "size"), persons=("persons", "sum")).reset_index()
    got = filled.quarter_counts()
    pd.testing.assert_frame_equal(got, expected.astype({"events": np.int64, "persons": np.int64}), check_dtype=False)
    summary = filled.summary()
    assert summary["events"] == 400 and summary["persons"] == int(everything["persons"].sum())
    assert summary["first_event"] == everything["observed_at"].min().isoformat()
    assert "events" in summary["layers"] and summary["imports"] == 1


@pytest.fixture
def tied(store_factory, tmp_path):
    """400 events on only 7 distinct times, so ordering by time alone would be ambiguous."""
    rows = event_rows(400, seed=5, prefix="T")
    times = ["2024-02-01T08:00", "2024-05-05T12:00", "2024-05-05T12:00:01", "2024-08-01T00:00",
             "2024-11-30T23:59", "2025-01-01T00:00", "2025-06-15T10:00"]
    rng = np.random.default_rng(9)
    rows = [with_field(r, "observed_at", times[k]) for r, k in zip(rows, rng.integers(0, len(times), len(rows)))]
    store = store_factory("tied")
    store.import_file(write_events(tmp_path / "t.csv", rows), user="ana")
    return store


@pytest.mark.parametrize(("filters", "predicate"), FILTER_CASES)
def test_event_points_match_brute_force(filled, filters, predicate):
    everything = brute(filled)
    chosen = everything[predicate(everything).to_numpy()]
    expected = np.column_stack([chosen.geometry.x, chosen.geometry.y])
    got = filled.event_points(**filters)
    assert got.shape == expected.shape and got.dtype == np.float64
    # Same multiset of points (the order is unspecified): compare after a lexicographic sort.
    np.testing.assert_array_equal(got[np.lexsort(got.T[::-1])], expected[np.lexsort(expected.T[::-1])])


@pytest.mark.parametrize(
    "columns",
    [["observed_at", "persons"], ["persons"], ["observed_at"], ["region", "observed_at", "smugglers", "notes"],
     ["event_id", "quarter", "canton", "location_kind", "entry_country", "transport_mode", "operation_id", "source_unit"]],
)
@pytest.mark.parametrize("filters", [{}, {"region": "centre-est"}, {"start": "2024-05-05", "end": "2024-12-31"}])
def test_lean_columns_equal_the_full_frame(tied, columns, filters):
    full = tied.events(**filters)
    lean = tied.events(**filters, columns=columns)
    assert 0 < len(lean) < 400 or not filters
    assert list(lean.columns) == [*columns, "geometry"] and lean.crs == full.crs
    pd.testing.assert_frame_equal(pd.DataFrame(lean), pd.DataFrame(full[[*columns, "geometry"]]))


def test_lean_columns_keep_the_time_order_and_paging(tied):
    full = tied.events()
    assert full["observed_at"].nunique() == 7
    lean = tied.events(columns=["event_id"])
    assert lean["event_id"].tolist() == full["event_id"].tolist()
    page = tied.events(columns=["event_id", "persons"], limit=25, offset=190)
    pd.testing.assert_frame_equal(pd.DataFrame(page), pd.DataFrame(full[["event_id", "persons", "geometry"]].iloc[190:215].reset_index(drop=True)))
    empty = tied.events(columns=["observed_at", "persons", "notes"], quarter="2023Q1")
    assert len(empty) == 0 and list(empty.columns) == ["observed_at", "persons", "notes", "geometry"]


@pytest.mark.parametrize("columns", [["geometry"], ["observed_at", "observed_at"], ["colour"], "x"])
def test_lean_columns_refuse_unknown_names(filled, columns):
    with pytest.raises(ValidationError, match="columns must be distinct names of observed_at"):
        filled.events(columns=columns)


@pytest.mark.parametrize(
    "by", ["quarter", ("quarter", "region"), ["region"], ("canton", "entry_country", "transport_mode"), ("location_kind",)]
)
@pytest.mark.parametrize(("filters", "predicate"), [FILTER_CASES[0], FILTER_CASES[5], FILTER_CASES[9], FILTER_CASES[11]])
def test_counts_match_pandas_groupby(filled, by, filters, predicate):
    everything = brute(filled)
    chosen = everything[predicate(everything).to_numpy()]
    keys = [by] if isinstance(by, str) else list(by)
    expected = (chosen.groupby(keys).agg(events=("event_id", "size"), persons=("persons", "sum")).reset_index()
                .astype({"events": np.int64, "persons": np.int64}))
    got = filled.counts(by=by, **filters)
    assert list(got.columns) == [*keys, "events", "persons"]
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["events"].sum() == filled.count(**filters)


def test_counts_keep_events_without_region(store_factory, tmp_path):
    store = store_factory("nr", assign_regions=False)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(50, seed=1)), user="ana")
    got = store.counts(by=("region", "quarter"))
    assert got["region"].isna().all() and got["events"].sum() == 50
    quarters = store.quarter_counts()
    assert got["events"].tolist() == quarters["events"].tolist()


@pytest.mark.parametrize("by", ["persons", ("quarter", "x"), (), "observed_at"])
def test_counts_refuse_other_groupings(filled, by):
    with pytest.raises(ValidationError, match="by must name one or more of quarter, region"):
        filled.counts(by=by)


def test_counts_and_points_refuse_unknown_filters(filled):
    with pytest.raises(ValidationError, match="unknown filter.*colour"):
        filled.counts(colour="red")
    with pytest.raises(ValidationError, match="unknown filter.*limit"):
        filled.event_points(limit=3)


def test_event_lookup_and_not_found(filled):
    event = filled.event("E00007")
    assert event["event_id"] == "E00007" and event["notes"] == "n7"
    assert isinstance(event["geometry"], shapely.Point)
    with pytest.raises(NotFoundError, match="event_id 'nope' not found"):
        filled.event("nope")


# --- the backend-neutral parts alone ----------------------------------------------------------


def test_parse_filters_gives_stored_spellings_and_utc_bounds():
    flt = parse_filters({"start": "2024-07-01", "end": datetime.date(2024, 7, 31), "quarter": "2024-q3",
                         "location_kind": ["Motorway", "urban"], "entry_country": "be", "bbox": [1, 2, 3, 4],
                         "event_id": "E1", "transport_mode": None})
    assert flt == EventFilter(
        start=int(pd.Timestamp("2024-07-01", tz="Europe/Luxembourg").timestamp()),
        end=int(pd.Timestamp("2024-08-01", tz="Europe/Luxembourg").timestamp()),
        quarter="2024Q3", location_kind=("motorway", "urban"), entry_country=("BE",), bbox=(1.0, 2.0, 3.0, 4.0),
        event_id=("E1",),
    )
    assert parse_filters({}) == EventFilter()


def test_region_names_come_from_the_layers_then_from_the_store():
    asked = []

    def stored(column):
        asked.append(column)
        return ["Old-Region", None]

    assert parse_filters({"region": "capitale"}, stored_names=stored).region == ("Capitale",)
    assert asked == []  # known to the canton layer: the store is not asked
    assert parse_filters({"region": ["old-region", "Nord"]}, stored_names=stored).region == ("Old-Region", "Nord")
    assert asked == ["region"]
    with pytest.raises(ValidationError, match="canton 'Paris' is unknown; known cantons: .*Wiltz"):
        parse_filters({"canton": "Paris"}, stored_names=lambda column: [])


@pytest.mark.parametrize(("dialect", "mark"), [(SQLITE, "?"), (POSTGRESQL, "%s")])
def test_where_sql_in_each_placeholder_style(dialect, mark):
    flt = EventFilter(start=10, end=20, quarter="2024Q1", region=("Nord",), canton=(), location_kind=("urban", "other"),
                      event_id=("A",), bbox=(1.0, 2.0, 3.0, 4.0))
    sql, params = where_sql(flt, dialect=dialect)
    assert sql == (
        f" WHERE observed_utc >= {mark} AND observed_utc < {mark} AND quarter = {mark} AND region IN ({mark})"
        f" AND 0 = 1 AND location_kind IN ({mark}, {mark}) AND event_id IN ({mark})"
        f" AND x >= {mark} AND x <= {mark} AND y >= {mark} AND y <= {mark}"
    )
    assert params == [10, 20, "2024Q1", "Nord", "urban", "other", "A", 1.0, 3.0, 2.0, 4.0]
    assert where_sql(EventFilter(), dialect=dialect) == ("", [])


def test_where_sql_takes_the_backends_spatial_clauses():
    def spatial(box):
        clauses, params = box_clauses(box)
        return ["fid IN (SELECT id FROM idx WHERE minx <= ?)", *clauses], [box[2], *params]

    sql, params = where_sql(EventFilter(quarter="2024Q1", bbox=(1.0, 2.0, 3.0, 4.0)), spatial=spatial)
    assert sql == " WHERE quarter = ? AND fid IN (SELECT id FROM idx WHERE minx <= ?) AND x >= ? AND x <= ? AND y >= ? AND y <= ?"
    assert params == ["2024Q1", 3.0, 1.0, 3.0, 2.0, 4.0]


def test_paging_and_query_options():
    assert paging_sql(Paging()) == ""
    assert paging_sql(parse_paging(None, 5)) == " LIMIT -1 OFFSET 5"
    assert paging_sql(parse_paging(None, 5), POSTGRESQL) == " LIMIT ALL OFFSET 5"
    assert paging_sql(parse_paging(10, 0)) == " LIMIT 10 OFFSET 0"
    assert parse_columns("persons") == ["persons"]
    assert parse_count_keys(("quarter", "region")) == ["quarter", "region"]
    with pytest.raises(ValidationError, match="unknown filter.*colour"):
        check_filter_names({"colour": "red", "quarter": None})
