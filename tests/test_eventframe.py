"""Tests for geo_ibm.eventframe: coordinates, weights, times, period selection and argument checks."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.eventframe import (
    check_fraction,
    check_length,
    check_probability,
    check_whole,
    event_times,
    event_weights,
    event_xy,
    select_events,
)

TZ = "Europe/Luxembourg"


def _events(n=6, *, crs=2169):
    xy = np.column_stack([70_000 + 100.0 * np.arange(n), 80_000 + 50.0 * np.arange(n)])
    when = pd.date_range("2025-06-29", periods=n, freq="D", tz=TZ)
    return gpd.GeoDataFrame(
        {"observed_at": when, "persons": np.arange(1, n + 1), "note": ["x"] * n},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=crs,
    )


# --------------------------------------------------------------------------------------------
# coordinates


def test_event_xy_returns_the_point_coordinates():
    events = _events()
    expected = np.column_stack([events.geometry.x, events.geometry.y])
    np.testing.assert_array_equal(event_xy(events), expected)


def test_event_xy_refuses_other_crs_and_non_points():
    with pytest.raises(CrsError, match="EPSG:4326"):
        event_xy(_events().to_crs(4326))
    with pytest.raises(CrsError, match="has no CRS"):
        event_xy(_events().set_crs(None, allow_override=True))
    mixed = _events()
    mixed.loc[2, "geometry"] = shapely.LineString([(0, 0), (1, 1)])
    mixed.loc[4, "geometry"] = shapely.Point()
    with pytest.raises(ValidationError, match=r"only non-empty Point geometries; row 3 is LineString \(2 such rows\)"):
        event_xy(mixed)
    with pytest.raises(ValidationError, match="must be a GeoDataFrame of points, got DataFrame"):
        event_xy(pd.DataFrame({"x": [1]}))


# --------------------------------------------------------------------------------------------
# weights


def test_event_weights_from_a_column_or_values():
    events = _events()
    assert event_weights(events, None) is None
    np.testing.assert_array_equal(event_weights(events, "persons"), np.arange(1, 7, dtype=float))
    np.testing.assert_array_equal(event_weights(events, [0.5] * 6), np.full(6, 0.5))
    # a sum of values may be negative when the caller allows it
    np.testing.assert_array_equal(event_weights(events.assign(persons=-2), "persons", negative=True), np.full(6, -2.0))


def test_event_weights_problems_name_parameter_column_and_rows():
    events = _events()
    with pytest.raises(ValidationError, match=r"weight: column 'nope' not found in events \(columns: ") as info:
        event_weights(events, "nope", name="weight")
    assert "weight column 'nope' not found" in str(info.value)
    assert info.value.problems[0].column == "weight"
    with pytest.raises(ValidationError, match=r"weights must have one value per event \(6\), got shape \(2,\)"):
        event_weights(events, [1.0, 2.0])
    bad = events.assign(persons=["1", "two", "3", None, "-1", "6"])
    with pytest.raises(ValidationError, match=r"weights must be finite and >= 0; event 2 has 'two' \(3 such events\)") as info:
        event_weights(bad, "persons")
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "persons"), (4, "persons"), (5, "persons")]
    assert info.value.problems[0].value == "two" and pd.isna(info.value.problems[1].value)
    with pytest.raises(ValidationError, match="weight must be finite; event 2 has 'two' \\(2 such events\\)"):
        event_weights(bad, "persons", name="weight", negative=True)
    with pytest.raises(ValidationError, match="weights must be finite and >= 0; event 1 has inf"):
        event_weights(events, [np.inf, 1, 1, 1, 1, 1])


# --------------------------------------------------------------------------------------------
# times


def test_event_times_are_local_and_naive_means_local():
    naive = pd.DataFrame({"observed_at": pd.to_datetime(["2025-07-01 12:00", "2025-01-01 00:30"])})
    when = event_times(naive)
    assert [t.isoformat() for t in when] == ["2025-07-01T12:00:00+02:00", "2025-01-01T00:30:00+01:00"]
    utc = pd.DataFrame({"observed_at": pd.to_datetime(["2025-06-30T22:30:00Z"], utc=True)}, index=[7])
    when = event_times(utc)
    assert when.index.tolist() == [7] and when.iloc[0].isoformat() == "2025-07-01T00:30:00+02:00"
    text = pd.DataFrame({"observed_at": ["2025-03-30 02:30", "2025-07-14T06:30:00+02:00"]})
    # the hour skipped in spring moves forward, as everywhere else in geo_ibm
    assert [t.isoformat() for t in event_times(text)] == ["2025-03-30T03:00:00+02:00", "2025-07-14T06:30:00+02:00"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"when": [1]}), "events has no 'observed_at' column"),
        (pd.DataFrame({"observed_at": []}), "events is empty"),
        (pd.DataFrame({"observed_at": ["2025-01-01 10:00", "yesterday"]}), r"observed_at is missing or not a date in row 2 \(value 'yesterday'\)"),
        ([1, 2], "must be a \\(Geo\\)DataFrame, got list"),
    ],
)
def test_event_times_refuse_bad_tables(frame, message):
    with pytest.raises(ValidationError, match=message):
        event_times(frame)


# --------------------------------------------------------------------------------------------
# period selection


def test_select_events_is_half_open_in_local_time():
    events = _events()  # one event at local midnight each day from 29 June 2025
    chosen = select_events(events, start="2025-06-30", end="2025-07-02")
    # a date alone as end is its midnight, excluded, whatever periods.period_end says for filters
    assert [t.isoformat()[:10] for t in chosen["observed_at"]] == ["2025-06-30", "2025-07-01"]
    # the same instants given in UTC
    utc = select_events(events, start=pd.Timestamp("2025-06-29T22:00Z"), end="2025-07-01T22:00:00+00:00")
    assert utc.index.tolist() == chosen.index.tolist()
    assert len(select_events(events)) == len(events)


def test_select_events_converts_drops_empty_and_refuses_non_points():
    events = _events()
    events.loc[1, "geometry"] = None
    events.loc[2, "geometry"] = shapely.Point()
    chosen = select_events(events.to_crs(4326))
    assert chosen.crs.to_epsg() == 2169 and chosen.index.tolist() == [0, 3, 4, 5]
    np.testing.assert_allclose(event_xy(chosen), event_xy(events.loc[[0, 3, 4, 5]]), atol=1e-6)
    lines = _events()
    lines["geometry"] = lines.geometry.buffer(5)
    with pytest.raises(ValidationError, match="events must be points, found Polygon"):
        select_events(lines)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2030-01-01"}, "no events to analyse between start=2030-01-01 and end=None"),
        ({"start": "not a date"}, "start is not a date"),
        ({"end": "2025-13-01"}, "end is not a date"),
    ],
)
def test_select_events_bad_periods(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        select_events(_events(), **kwargs)


def test_select_events_needs_times_only_for_a_period():
    events = _events().drop(columns="observed_at")
    assert len(select_events(events)) == 6
    with pytest.raises(ValidationError, match="has no 'observed_at' column to select by start/end"):
        select_events(events, end="2025-07-01")
    with pytest.raises(ValidationError, match="no events to analyse"):
        select_events(events.iloc[:0])
    with pytest.raises(CrsError, match="has no CRS"):
        select_events(_events().set_crs(None, allow_override=True))


# --------------------------------------------------------------------------------------------
# argument checks


def test_check_length():
    assert check_length(250, name="cell") == 250.0
    assert check_length("1500", name="band") == 1500.0
    for bad in (0, -3, float("nan"), float("inf"), True):
        with pytest.raises(ValidationError, match="band must be a positive number of metres, got") as info:
            check_length(bad, name="band")
        assert info.value.problems[0].column == "band"
    with pytest.raises(ValidationError, match="radius must be a number of metres, got 'far'"):
        check_length("far", name="radius")


def test_check_fraction_and_probability():
    assert check_fraction(0) == 0.0 and check_fraction(1) == 1.0 and check_fraction("0.5") == 0.5
    for bad in (-0.1, 1.5, "half", None, True):
        with pytest.raises(ValidationError, match="min_area_frac must be between 0 and 1, got"):
            check_fraction(bad)
    assert check_probability(0.05) == 0.05
    for bad in (0, 1, 2, "x", None):
        with pytest.raises(ValidationError, match=r"top_share must be between 0 and 1 \(exclusive\), got"):
            check_probability(bad, name="top_share")


def test_check_whole():
    assert check_whole(0, name="permutations") == 0
    assert check_whole(np.int64(5), name="k", minimum=1) == 5
    for bad in (-1, 2.5, "3", True):
        with pytest.raises(ValidationError, match="permutations must be a whole number >= 0, got"):
            check_whole(bad, name="permutations")
    with pytest.raises(ValidationError, match="k must be a whole number >= 1, got 0"):
        check_whole(0, name="k", minimum=1)
