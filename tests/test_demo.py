"""Tests of the synthetic demo event generator and its ground truth."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import shapely
from pandas.testing import assert_frame_equal

from geo_ibm.demo import TRUTH_COLUMNS, generate_events
from geo_ibm.errors import ValidationError
from geo_ibm.events import EVENT_COLUMNS
from geo_ibm.settings import LOCAL_TZ

N = 12_000
SEED = 7

# sha256 of generate_events(2000, seed=1) with the shipped layers and the default period, events and
# truth, as computed by _frame_digest; it pins every random draw and its order.
PINNED_EVENTS_DIGEST = "6b22beeb7e37ccdbf8d2c6d4cf84a42b8267c35347f66a159da427efcbba6eb6"
PINNED_TRUTH_DIGEST = "3deebedf34d8b6b4e5b2fd2fe32fb33ac48ae372d5e2516571da90a7cbe0e47f"


@pytest.fixture(scope="module")
def layers():
    from geo_ibm import layers as shipped

    return {
        "outline": shipped.luxembourg_outline(),
        "corridors": shipped.road_corridors(),
        "crossings": shipped.crossing_points(),
    }


@pytest.fixture(scope="module")
def outline_geom(layers):
    return shapely.union_all(np.asarray(layers["outline"].geometry.values))


@pytest.fixture(scope="module")
def demo(layers):
    return generate_events(N, seed=SEED, **layers)


def test_same_seed_gives_identical_output(layers, demo):
    events, truth = generate_events(N, seed=SEED, **layers)
    assert_frame_equal(events.drop(columns="geometry"), demo[0].drop(columns="geometry"))
    assert events.geometry.geom_equals_exact(demo[0].geometry, tolerance=0).all()
    assert_frame_equal(truth.drop(columns="geometry"), demo[1].drop(columns="geometry"))
    assert truth.geometry.geom_equals_exact(demo[1].geometry, tolerance=0).all()


def _frame_digest(frame) -> str:
    """Digest of a GeoDataFrame's length, CRS, column names and values, geometries as little-endian WKB."""
    h = hashlib.sha256()
    h.update(f"{len(frame)}|{frame.crs.to_epsg()}|".encode())
    for name in frame.columns:
        col = frame[name]
        if name == "geometry":
            kind, data = "wkb", b"".join(shapely.to_wkb(np.asarray(col.values), byte_order=1))
        elif isinstance(col.dtype, pd.DatetimeTZDtype):
            kind, data = f"time {col.dt.tz}", col.dt.as_unit("ns").array.asi8.astype("<i8").tobytes()
        elif pd.api.types.is_integer_dtype(col.dtype):
            kind, data = "int", col.to_numpy(dtype="<i8").tobytes()
        elif pd.api.types.is_float_dtype(col.dtype):
            kind, data = "float", col.to_numpy(dtype="<f8").tobytes()
        else:
            kind, data = "text", "\x1e".join(repr(v) for v in col.tolist()).encode()
        h.update(f"\x1d{name}\x1f{kind}\x1f".encode() + data)
    return h.hexdigest()


def test_output_matches_the_pinned_digest():
    # A deliberate change to the generator, to the shipped layers or to numpy's random streams
    # changes these digests; recompute them then, never to hide an unintended change of the draws.
    events, truth = generate_events(2000, seed=1)
    assert _frame_digest(events) == PINNED_EVENTS_DIGEST
    assert _frame_digest(truth) == PINNED_TRUTH_DIGEST


def test_different_seed_gives_different_output(layers, demo):
    other, _ = generate_events(N, seed=SEED + 1, **layers)
    assert not other["observed_at"].equals(demo[0]["observed_at"])
    assert not np.array_equal(other.geometry.x.to_numpy(), demo[0].geometry.x.to_numpy())


def test_schema_and_dtypes(demo):
    events, _ = demo
    assert tuple(events.columns) == EVENT_COLUMNS
    assert len(events) == N
    assert events.crs.to_epsg() == 2169
    assert (events.geometry.geom_type == "Point").all()
    assert events["event_id"].is_unique
    assert events["event_id"].iloc[0] == "DEMO-000001"
    assert str(events["observed_at"].dt.tz) == LOCAL_TZ
    assert events["observed_at"].is_monotonic_increasing
    assert (events["observed_at"].dt.second == 0).all()
    assert events["persons"].dtype == np.int64 and events["smugglers"].dtype == np.int64
    assert (events["persons"] >= 1).all()
    assert ((events["smugglers"] >= 0) & (events["smugglers"] <= events["persons"])).all()
    assert set(events["location_kind"]) == {
        "motorway", "rest_area", "border_crossing", "train_station", "bus_station", "urban", "other",
    }
    assert set(events["transport_mode"]) <= {"car", "van", "truck", "bus", "train", "taxi", "on_foot", "other"}
    assert set(events["entry_country"]) == {"BE", "FR", "DE", "unknown"}
    for column in ("operation_id", "notes"):
        values = events[column]
        assert values.isna().any() and values.notna().any()
        assert all(isinstance(v, str) for v in values.dropna())
    assert events["source_unit"].notna().all()
    assert events["operation_id"].dropna().str.fullmatch(r"OP-20\d\d-\d\d").all()
    assert events["notes"].dropna().str.contains("'").any()
    assert events["notes"].dropna().str.contains("é").any()


def test_events_pass_the_event_schema_validation(outline_geom, demo):
    from geo_ibm import events as events_module

    assert tuple(events_module.EVENT_COLUMNS) == EVENT_COLUMNS
    valid, problems = events_module.validate_events(demo[0], file="demo", outline=outline_geom)
    assert problems == []
    assert len(valid) == N
    assert valid["event_id"].tolist() == demo[0]["event_id"].tolist()


def test_points_inside_outline_plus_margin(outline_geom, demo):
    events, truth = demo
    outline = outline_geom
    distance = shapely.distance(outline, np.asarray(events.geometry.values))
    assert distance.max() <= 2000.0
    # Interceptions happen on Luxembourg's side: only jitter right at the border crosses it.
    assert (distance > 0).mean() < 0.02
    assert (shapely.distance(outline, np.asarray(truth.geometry.values)) <= 2000.0).all()


def test_no_future_and_within_period(layers):
    now = pd.Timestamp.now(tz=LOCAL_TZ)
    start = (now - pd.Timedelta(days=20)).strftime("%Y-%m-%d %H:%M")
    events, _ = generate_events(3000, seed=1, start=start, end=now.strftime("%Y-%m-%d %H:%M"), **layers)
    assert events["observed_at"].max() <= now
    assert events["observed_at"].min() >= pd.Timestamp(start, tz=LOCAL_TZ)


def test_default_period_covers_whole_end_day(demo):
    observed = demo[0]["observed_at"]
    assert observed.min() >= pd.Timestamp("2024-01-01", tz=LOCAL_TZ)
    assert observed.max() < pd.Timestamp("2026-10-01", tz=LOCAL_TZ)
    assert observed.max() > pd.Timestamp("2026-09-29", tz=LOCAL_TZ)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be at least 1"),
        ({"n": 2.5}, "n must be a whole number"),
        ({"seed": -1}, "seed must be"),
        ({"start": "2025-01-01", "end": "2024-01-01"}, "start '2025-01-01' must be before end"),
        ({"start": "2025-01-01", "end": "2025-01-01"}, "start .* must be before end"),
        ({"end": "2999-01-01"}, "end '2999-01-01' lies in the future"),
        ({"start": "not a date"}, "start 'not a date' is not a date"),
    ],
)
def test_invalid_arguments(layers, kwargs, match):
    args = {"n": 10, "seed": 1, **kwargs}
    n = args.pop("n")
    with pytest.raises(ValidationError, match=match):
        generate_events(n, **args, **layers)


def test_layer_problems_are_named(layers):
    with pytest.raises(ValidationError, match="corridors lacks column"):
        generate_events(10, seed=1, outline=layers["outline"], corridors=layers["corridors"].drop(columns="ref"),
                        crossings=layers["crossings"])
    far = layers["outline"].translate(500_000, 0)
    with pytest.raises(ValidationError, match="outline does not contain the demo sites"):
        generate_events(10, seed=1, outline=far, corridors=layers["corridors"], crossings=layers["crossings"])


def _near(events, point, radius):
    return shapely.distance(np.asarray(events.geometry.values), point) <= radius


def _quarter(stamps):
    return stamps.dt.tz_localize(None).dt.to_period("Q")


def test_truth_table(demo):
    events, truth = demo
    assert tuple(truth.columns) == TRUTH_COLUMNS
    assert truth["hotspot_id"].is_unique
    assert {"persistent", "emerging", "fading", "seasonal"} <= set(truth["kind"])
    assert (truth["start"] < truth["end"]).all()
    assert truth["share"].sum() < 1.0
    assert np.allclose(truth["expected_events"], truth["share"] * N)
    # Realised counts follow the expected ones (binomial spread, 5 sigma).
    sd = np.sqrt(truth["expected_events"] * (1 - truth["share"]))
    assert (np.abs(truth["events"] - truth["expected_events"]) < 5 * sd + 1).all()
    # Most of each hotspot's events lie within its radius: count them directly.
    for row in truth.itertuples():
        inside = _near(events, row.geometry, row.radius_m).sum()
        assert inside >= 0.8 * row.events


def test_emerging_hotspot(demo):
    events, truth = demo
    row = truth[truth["kind"] == "emerging"].iloc[0]
    near = _near(events, row.geometry, row.radius_m)
    before = near & (events["observed_at"] < row["start"]).to_numpy()
    after = near & (events["observed_at"] >= row["start"]).to_numpy()
    days_before = (row["start"] - events["observed_at"].min()).days
    days_after = (events["observed_at"].max() - row["start"]).days
    # Only the thin A13 corridor scatter passes by before the start.
    assert before.sum() / days_before < 0.1 * after.sum() / days_after
    # In its last quarters it beats every other place of its size except the persistent hotspots.
    last_q = _quarter(events["observed_at"]) >= pd.Period(row["start"].tz_localize(None), "Q")
    late = events[last_q.to_numpy()]
    cells = np.floor(np.column_stack([late.geometry.x, late.geometry.y]) / (2 * row.radius_m))
    _, per_cell = np.unique(cells, axis=0, return_counts=True)
    assert after.sum() > 20 * np.median(per_cell)
    assert after.sum() > np.quantile(per_cell, 0.98)


def test_fading_hotspot(demo):
    events, truth = demo
    row = truth[truth["kind"] == "fading"].iloc[0]
    near = _near(events, row.geometry, row.radius_m)
    late = near & (events["observed_at"] >= row["end"]).to_numpy()
    early = near & (events["observed_at"] < row["end"]).to_numpy()
    days_early = (row["end"] - row["start"]).days
    days_late = (events["observed_at"].max() - row["end"]).days
    assert early.sum() > 100
    # What stays after its end is the road's own thin scatter.
    assert late.sum() / days_late < 0.15 * early.sum() / days_early


def test_seasonal_hotspot(demo):
    events, truth = demo
    row = truth[truth["kind"] == "seasonal"].iloc[0]
    near = events[_near(events, row.geometry, row.radius_m)]
    summer = near["observed_at"].dt.month.between(6, 9).mean()
    assert summer > 0.8


def test_night_and_summer_peaks(demo):
    events, _ = demo
    hours = events["observed_at"].dt.hour
    night = ((hours >= 22) | (hours < 5)).mean()
    assert night > 7 / 24 + 0.1
    months = events["observed_at"].dt.month
    # Jun-Sep hold 4 of 12 months (a bit more of the period's days: 2024-2026 has three summers).
    summer = months.between(6, 9).mean()
    assert summer > 0.45
    weekday = events["observed_at"].dt.day_of_week.value_counts(normalize=True)
    assert weekday[4] > weekday[1] * 1.15


def test_upward_trend(demo):
    events, _ = demo
    year = events["observed_at"].dt.year
    first_q3 = ((year == 2024) & events["observed_at"].dt.month.between(1, 9)).sum()
    last_q3 = ((year == 2026) & events["observed_at"].dt.month.between(1, 9)).sum()
    assert last_q3 > 1.4 * first_q3


def _nearest(points, layer):
    distance = shapely.distance(np.asarray(points.geometry.values)[:, None], np.asarray(layer.geometry.values)[None, :])
    return distance.argmin(axis=1), distance.min(axis=1)


def test_motorway_events_follow_corridors(layers, demo):
    events, _ = demo
    motorway = events[events["location_kind"] == "motorway"]
    corridors = layers["corridors"]
    motorways = corridors[corridors["class"] == "motorway"]
    nearest, distance = _nearest(motorway, motorways)
    assert (distance <= 500).mean() > 0.9
    # Motorway events split over corridors in proportion to their weights, A1 first.
    counts = pd.Series(motorways["ref"].to_numpy()[nearest[distance <= 500]]).value_counts()
    assert list(counts.index[:1]) == ["A1"]
    assert set(counts.index[:4]) == {"A1", "A3", "A6", "A13"}


@pytest.mark.parametrize(("ref", "country"), [("A1", "DE"), ("A3", "FR"), ("A6", "BE"), ("A13", "DE")])
def test_entry_country_follows_corridor(layers, demo, ref, country):
    events, _ = demo
    motorway = events[events["location_kind"] == "motorway"]
    corridors = layers["corridors"]
    motorways = corridors[corridors["class"] == "motorway"]
    nearest, distance = _nearest(motorway, motorways)
    on_ref = (motorways["ref"].to_numpy()[nearest] == ref) & (distance <= 500)
    shares = motorway.loc[on_ref, "entry_country"].value_counts(normalize=True)
    assert on_ref.sum() > 300
    assert shares.index[0] == country
    assert shares[country] > 0.5


def test_crossing_events_come_from_the_crossing_neighbour(layers, demo):
    events, _ = demo
    at = events[events["location_kind"] == "border_crossing"]
    crossings = layers["crossings"].reset_index(drop=True)
    internal = crossings[crossings["kind"] != "airport"]
    nearest, distance = _nearest(at, crossings)
    assert "airport" not in set(crossings["kind"].to_numpy()[nearest])
    assert distance.max() < 1000
    # Judge only events whose crossing has no crossing toward another neighbour nearby.
    gap = shapely.distance(np.asarray(internal.geometry.values)[:, None], np.asarray(internal.geometry.values)[None, :])
    other = internal["neighbour"].to_numpy()[:, None] != internal["neighbour"].to_numpy()[None, :]
    isolated_ids = set(internal.index[np.where(other, gap, np.inf).min(axis=1) > 1500])
    judged = np.isin(nearest, list(isolated_ids))
    neighbour = crossings["neighbour"].to_numpy()[nearest][judged]
    country = at["entry_country"].to_numpy()[judged]
    known = country != "unknown"
    assert judged.sum() > 500
    assert (country[known] == neighbour[known]).mean() > 0.98
    assert 0.03 < (~known).mean() < 0.15


def test_layers_given_as_arguments_are_used(layers):
    corridors = layers["corridors"][layers["corridors"]["ref"] == "A6"]
    crossings = layers["crossings"][layers["crossings"]["crossing_id"].isin(["BE-A6-STERPENICH", "FR-RAIL-BETTEMBOURG"])]
    events, truth = generate_events(4000, seed=3, outline=layers["outline"], corridors=corridors, crossings=crossings)
    motorway = events[events["location_kind"] == "motorway"]
    # Only A6 remains as a corridor; the A13 emerging site keeps its own estimated position.
    _, to_a6 = _nearest(motorway, corridors)
    emerging = truth[truth["kind"] == "emerging"].geometry.iloc[0]
    near_emerging = shapely.distance(np.asarray(motorway.geometry.values), emerging) < 2000
    assert (to_a6[~near_emerging] <= 600).mean() > 0.99
    at = events[events["location_kind"] == "border_crossing"]
    nearest, distance = _nearest(at, crossings)
    assert distance.max() < 1000
    assert set(at["transport_mode"].to_numpy()[crossings["kind"].to_numpy()[nearest] == "rail"]) <= {"train", "on_foot"}
    assert len(truth[truth["location_kind"] == "border_crossing"]) == 1


def test_default_layers_are_the_shipped_ones(layers):
    given, given_truth = generate_events(500, seed=11, **layers)
    default, default_truth = generate_events(500, seed=11)
    assert_frame_equal(given.drop(columns="geometry"), default.drop(columns="geometry"))
    assert given.geometry.geom_equals_exact(default.geometry, tolerance=0).all()
    assert_frame_equal(given_truth.drop(columns="geometry"), default_truth.drop(columns="geometry"))


@pytest.mark.parametrize(
    ("kind", "top", "modes"),
    [
        ("train_station", "train", {"train", "taxi", "on_foot"}),
        ("bus_station", "bus", {"bus", "taxi", "on_foot"}),
        ("rest_area", "car", {"car", "van", "truck", "bus", "taxi", "on_foot", "other"}),
    ],
)
def test_transport_mode_follows_location_kind(demo, kind, top, modes):
    events, _ = demo
    chosen = events.loc[events["location_kind"] == kind, "transport_mode"]
    assert len(chosen) > 50
    assert set(chosen) <= modes
    assert chosen.value_counts().index[0] == top


def test_group_sizes_by_mode(demo):
    events, _ = demo
    mean = events.groupby("transport_mode")["persons"].mean()
    assert mean["truck"] > 2 * mean["car"]
    assert mean["van"] > 2 * mean["car"]
    assert events["persons"].max() > 10
