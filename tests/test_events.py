"""Tests for the event schema and its validation (geo_ibm.events)."""
from __future__ import annotations

import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from geo_ibm import events as events_module
from geo_ibm.errors import Problem
from geo_ibm.events import EVENT_COLUMNS, parse_timestamps, validate_events

# A coarse synthetic stand-in for Luxembourg's outline (EPSG:2169), enough for the margin rule.
OUTLINE = shapely.box(50_000, 57_000, 107_000, 139_000)
TO_2169 = Transformer.from_crs("EPSG:4326", "EPSG:2169", always_xy=True)
NOW = pd.Timestamp("2026-01-01T00:00:00Z")


def good_row(**overrides: object) -> dict[str, object]:
    row = {
        "event_id": "E1",
        "observed_at": "2025-07-14T06:30",
        "lat": "49.6116",
        "lon": "6.1319",
        "location_kind": "motorway",
        "persons": "3",
        "smugglers": "1",
        "transport_mode": "car",
        "entry_country": "FR",
        "operation_id": "",
        "source_unit": "",
        "notes": "",
    }
    row.update(overrides)
    return row


def table(*rows: dict[str, object]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), dtype=object)
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="row")  # as read from a CSV
    return frame


def check(frame: pd.DataFrame, **kwargs: object) -> tuple[gpd.GeoDataFrame, list[Problem]]:
    kwargs.setdefault("outline", OUTLINE)
    kwargs.setdefault("now", NOW)
    return validate_events(frame, file="in.csv", **kwargs)


def test_valid_row_gives_documented_columns_crs_and_row_index():
    valid, problems = check(table(good_row(), good_row(event_id="E2", notes=" Zoé ")))
    assert problems == []
    assert list(valid.columns) == list(EVENT_COLUMNS)
    assert valid.crs.to_epsg() == 2169
    assert valid.index.name == "row" and valid.index.tolist() == [2, 3]
    x, y = TO_2169.transform(6.1319, 49.6116)
    assert valid.geometry.iloc[0].x == pytest.approx(x, abs=1e-6)
    assert valid.geometry.iloc[0].y == pytest.approx(y, abs=1e-6)
    assert str(valid["observed_at"].dt.tz) == "Europe/Luxembourg"
    assert valid["observed_at"].iloc[0] == pd.Timestamp("2025-07-14T04:30:00Z")
    assert valid["persons"].dtype == np.int64 and valid["persons"].tolist() == [3, 3]
    assert valid["notes"].tolist() == [None, "Zoé"]
    assert valid["operation_id"].tolist() == [None, None]


def test_projection_on_a_second_thread_gives_the_same_rows_and_problems(monkeypatch):
    rows = [good_row(event_id=f"E{i}", lat=str(49.5 + i / 1000), lon=str(6.0 + i / 2000)) for i in range(40)]
    rows += [good_row(event_id="bad-lat", lat="91"), good_row(event_id="text", lon="east"),
             good_row(event_id="half", lat=""), good_row(event_id="xy", lat="", lon="", x="75000", y="80000"),
             good_row(event_id="both", x="76000", y="81000"), good_row(event_id="far", lat="48.0", lon="2.3")]
    frame = table(*rows)
    inline, inline_problems = check(frame)
    monkeypatch.setattr(events_module, "EARLY_TRANSFORM_ROWS", 1)
    early, early_problems = check(frame)
    assert early_problems == inline_problems and len(inline_problems) == 4
    assert early.index.tolist() == inline.index.tolist()
    assert shapely.equals_exact(early.geometry.to_numpy(), inline.geometry.to_numpy(), 0).all()
    assert early.loc[early["event_id"] == "both"].geometry.iloc[0].x == 76_000  # x/y wins over lat/lon


def test_points_false_gives_x_y_columns_instead_of_geometry():
    frame = table(good_row(), good_row(event_id="E2", persons="0"), good_row(event_id="E3", lat="49.8", lon="6.0"))
    with_points, problems = check(frame)
    plain, same_problems = check(frame, points=False)
    assert problems == same_problems and len(problems) == 1  # E2 refused either way
    assert not isinstance(plain, gpd.GeoDataFrame)
    assert list(plain.columns) == [*EVENT_COLUMNS[:-1], "x", "y"]
    assert plain.index.tolist() == with_points.index.tolist() == [2, 4]
    assert plain["x"].dtype == np.float64
    np.testing.assert_array_equal(plain["x"].to_numpy(), with_points.geometry.x.to_numpy())
    np.testing.assert_array_equal(plain["y"].to_numpy(), with_points.geometry.y.to_numpy())
    x, y = TO_2169.transform(6.0, 49.8)
    assert plain["x"].iloc[1] == pytest.approx(x, abs=1e-6) and plain["y"].iloc[1] == pytest.approx(y, abs=1e-6)
    pd.testing.assert_frame_equal(plain[list(EVENT_COLUMNS[:-1])], pd.DataFrame(with_points[list(EVENT_COLUMNS[:-1])]))


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-07-14T06:30", "2025-07-14T04:30:00Z"),  # summer, naive = local (UTC+2)
        ("2025-01-14 06:30:00", "2025-01-14T05:30:00Z"),  # winter (UTC+1)
        ("2025-07-14T06:30:00+02:00", "2025-07-14T04:30:00Z"),
        ("2025-07-14T06:30:00+0000", "2025-07-14T06:30:00Z"),
        ("2025-07-14T06:30:00Z", "2025-07-14T06:30:00Z"),
        ("2025-07-14 06:30:00.750-01:00", "2025-07-14T07:30:00.750Z"),
        ("14/07/2025 06:30", "2025-07-14T04:30:00Z"),
        ("4/1/2025 06:30:15", "2025-01-04T05:30:15Z"),
        ("14.07.2025 06:30", "2025-07-14T04:30:00Z"),
        ("14/07/2025", "2025-07-13T22:00:00Z"),
        ("2025-07-14", "2025-07-13T22:00:00Z"),
        ("2025-10-26T02:30", "2025-10-26T00:30:00Z"),  # the repeated autumn hour: summer time taken
        ("2025-03-30T02:30", "2025-03-30T01:00:00Z"),  # the skipped spring hour: moved to 03:00
    ],
)
def test_parse_timestamps_formats(text, utc):
    parsed = parse_timestamps(pd.Series([text], dtype=object)).iloc[0]
    assert parsed == pd.Timestamp(utc)
    assert str(parsed.tz) == "Europe/Luxembourg"


def test_parse_timestamps_datetime_values_and_garbage():
    values = pd.Series(
        [datetime.datetime(2025, 7, 14, 6, 30), pd.Timestamp("2025-07-14T06:30Z"), "yesterday", "31/02/2025 10:00", None],
        dtype=object,
    )
    parsed = parse_timestamps(values)
    assert parsed.iloc[0] == pd.Timestamp("2025-07-14T04:30Z")
    assert parsed.iloc[1] == pd.Timestamp("2025-07-14T06:30Z")
    assert parsed.iloc[2:].isna().all()


@pytest.mark.parametrize(
    ("names", "values"),
    [
        (("lat", "lon"), ("49.6116", "6.1319")),
        (("Latitude", "LONGITUDE"), ("49.6116", "6.1319")),
        ((" lat ", "lng"), ("49.6116", "6.1319")),
        (("LAT", "Long"), ("49,6116", "6,1319")),
        (("x", "y"), None),
        (("Easting", "Northing"), None),
        (("X", "y"), None),
    ],
)
def test_location_column_aliases(names, values):
    x, y = TO_2169.transform(6.1319, 49.6116)
    row = good_row()
    del row["lat"], row["lon"]
    row[names[0]], row[names[1]] = values if values else (f"{x:.3f}", f"{y:.3f}")
    valid, problems = check(table(row))
    assert problems == []
    assert valid.geometry.iloc[0].x == pytest.approx(x, abs=1e-3)
    assert valid.geometry.iloc[0].y == pytest.approx(y, abs=1e-3)


def test_codes_are_trimmed_case_insensitive_and_canonical():
    valid, problems = check(
        table(good_row(location_kind=" Rest_Area ", transport_mode="ON_FOOT", entry_country="de")),
        outline=None,
    )
    assert problems == []
    assert valid.iloc[0][["location_kind", "transport_mode", "entry_country"]].tolist() == ["rest_area", "on_foot", "DE"]
    valid, _ = check(table(good_row(entry_country="Unknown")))
    assert valid["entry_country"].iloc[0] == "unknown"


@pytest.mark.parametrize(
    ("overrides", "column", "reason"),
    [
        ({"event_id": "  "}, "event_id", "event_id is missing"),
        ({"observed_at": "not a date"}, "observed_at", "not a date and time"),
        ({"observed_at": "32/01/2025 10:00"}, "observed_at", "not a date and time"),
        ({"observed_at": ""}, "observed_at", "observed_at is missing"),
        ({"observed_at": "2027-01-01T00:00"}, "observed_at", "in the future"),
        ({"observed_at": "9999-01-01T00:00Z"}, "observed_at", "in the future"),
        ({"observed_at": "0025-07-14 10:00"}, "observed_at", "before 1990-01-01; check the year"),
        ({"observed_at": "01/01/1200 10:00"}, "observed_at", "before 1990-01-01"),
        ({"lat": "91"}, "lat", r"lat is out of range \[-90, 90\]"),
        ({"lon": "-181"}, "lon", r"lon is out of range \[-180, 180\]"),
        ({"lat": "north"}, "lat", "lat is not a number"),
        ({"lon": ""}, "lon", "lon is missing while lat is given"),
        ({"lat": "", "lon": ""}, "lat", "location is missing"),
        ({"lat": "48.8566", "lon": "2.3522"}, "lat", "outside Luxembourg's outline plus 2000 m"),
        ({"persons": "0"}, "persons", "persons must be at least 1"),
        ({"persons": "-2"}, "persons", "persons must be at least 1"),
        ({"persons": "2.5"}, "persons", "persons must be a whole number"),
        ({"persons": "many"}, "persons", "persons is not a number"),
        ({"persons": ""}, "persons", "persons is missing"),
        ({"smugglers": "-1"}, "smugglers", "smugglers must be at least 0"),
        ({"persons": "1e20"}, "persons", "persons must be at most 100000"),
        ({"persons": "inf"}, "persons", "persons is not a number"),
        ({"lat": "nan"}, "lat", "lat is not a number"),
        ({"smugglers": "0.5"}, "smugglers", "smugglers must be a whole number"),
        ({"location_kind": "harbour"}, "location_kind", "unknown location_kind .allowed: motorway, rest_area, border_crossing"),
        ({"transport_mode": "boat"}, "transport_mode", "allowed: car, van, truck, bus, train, taxi, on_foot, other"),
        ({"entry_country": "NL"}, "entry_country", "allowed: BE, FR, DE, unknown"),
        ({"entry_country": ""}, "entry_country", "entry_country is missing"),
    ],
)
def test_each_rule_names_row_column_and_value(overrides, column, reason):
    frame = table(good_row(event_id="OK"), good_row(**{"event_id": "BAD", **overrides}))
    valid, problems = check(frame)
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file == "in.csv"
    assert problem.row == 3
    assert problem.column == column
    assert pd.Series([problem.reason]).str.contains(reason).iloc[0], problem.reason
    assert valid["event_id"].tolist() == ["OK"]
    given = overrides.get(column)
    if "outside" in reason:
        assert problem.value == "lat 48.8566, lon 2.3522"
    elif given and given.strip():
        assert problem.value == given
    text = str(problem)
    assert "in.csv" in text and "row 3" in text and repr(column) in text


def test_all_problems_reported_at_once():
    frame = table(
        good_row(event_id="A", persons="0", transport_mode="boat"),
        good_row(event_id="B"),
        good_row(event_id="C", observed_at="soon", lat="95"),
    )
    valid, problems = check(frame)
    assert {(p.row, p.column) for p in problems} == {
        (2, "persons"),
        (2, "transport_mode"),
        (4, "observed_at"),
        (4, "lat"),
    }
    assert valid["event_id"].tolist() == ["B"]


def test_duplicate_event_ids_flag_every_occurrence():
    frame = table(good_row(event_id="D"), good_row(event_id="X"), good_row(event_id=" D"))
    valid, problems = check(frame)
    assert [(p.row, p.column, p.value) for p in problems] == [(2, "event_id", "D"), (4, "event_id", "D")]
    assert all("rows 2, 4" in p.reason for p in problems)
    assert valid["event_id"].tolist() == ["X"]


def test_missing_required_columns_is_one_file_level_problem():
    frame = table({"event_id": "E1", "Observed_At": "2025-01-01", "foo": "1"})
    valid, problems = check(frame)
    assert len(valid) == 0
    assert len(problems) == 1 and problems[0].row is None
    reason = problems[0].reason
    for name in ("location_kind", "persons", "smugglers", "transport_mode", "entry_country", "lat and lon (or x and y)"):
        assert name in reason
    assert "columns found: 'event_id', 'Observed_At', 'foo'" in reason


def test_colliding_alias_columns_are_reported():
    row = good_row()
    row["latitude"] = "49.6"
    _, problems = check(table(row))
    assert any("both give 'lat'" in p.reason for p in problems)


@pytest.mark.parametrize(("offset_m", "ok"), [(-500, True), (1500, True), (2500, False), (10_000, False)])
def test_margin_around_outline(offset_m, ok):
    # x/y just left of the synthetic outline's west edge (x = 50 000)
    row = good_row(x=str(50_000 - offset_m), y="90000")
    valid, problems = check(table(row))
    assert (problems == []) is ok
    assert len(valid) == int(ok)


def test_margin_from_environment(monkeypatch):
    monkeypatch.setenv("GEO_IBM_MARGIN_M", "5000")
    row = good_row(x="46000", y="90000")  # 4 km outside
    _, problems = check(table(row))
    assert problems == []
    _, problems = check(table(row), margin_m=1000)
    assert "plus 1000 m" in problems[0].reason


def test_no_outline_skips_location_check():
    _, problems = check(table(good_row(lat="48.8566", lon="2.3522")), outline=None)
    assert problems == []


def test_xy_wins_over_latlon_when_both_given():
    valid, problems = check(table(good_row(x="80000", y="100000", lat="48.85", lon="2.35")))
    assert problems == []
    assert (valid.geometry.iloc[0].x, valid.geometry.iloc[0].y) == (80000.0, 100000.0)


def test_future_uses_current_time_by_default():
    future = (pd.Timestamp.now(tz="Europe/Luxembourg") + pd.Timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    _, problems = validate_events(table(good_row(observed_at=future)), file="f.csv", outline=OUTLINE)
    assert [p.column for p in problems] == ["observed_at"]


def test_typed_frame_and_numbering_without_row_index():
    frame = pd.DataFrame(
        {
            "event_id": [101.0, 102.0],
            "observed_at": pd.to_datetime(["2025-07-14 06:30", "2025-07-14 07:00"]),
            "x": [80000.0, 80100.0],
            "y": [100000.0, 100100.0],
            "location_kind": ["urban", "urban"],
            "persons": [2, 0],
            "smugglers": [0, 0],
            "transport_mode": ["car", "car"],
            "entry_country": ["BE", "BE"],
        }
    )
    valid, problems = check(frame)
    assert [(p.row, p.column) for p in problems] == [(2, "persons")]
    assert valid["event_id"].tolist() == ["101"]
    assert valid["observed_at"].iloc[0] == pd.Timestamp("2025-07-14T04:30Z")


def test_point_geodataframe_input_and_non_point_geometry():
    gdf = gpd.GeoDataFrame(
        {k: [v, v] for k, v in good_row().items() if k not in ("lat", "lon")},
        geometry=[shapely.Point(6.1319, 49.6116), shapely.LineString([(6.0, 49.6), (6.1, 49.7)])],
        crs="EPSG:4326",
    )
    gdf["event_id"] = ["G1", "G2"]
    valid, problems = check(gdf)
    assert valid["event_id"].tolist() == ["G1"]
    assert valid.geometry.iloc[0].x == pytest.approx(TO_2169.transform(6.1319, 49.6116)[0])
    assert [(p.row, p.column) for p in problems] == [(2, "geometry")]
    assert "LineString" in problems[0].reason


def test_observed_at_kept_to_the_second():
    valid, _ = check(table(good_row(observed_at="2025-07-14T06:30:12.9")))
    assert valid["observed_at"].iloc[0] == pd.Timestamp("2025-07-14T04:30:12Z")


def test_large_table_keeps_every_good_row_and_names_the_bad_one():
    # Its speed is measured by benchmarks/bench_import.py (which validates every row), not asserted here.
    n = 200_000
    rng = np.random.default_rng(7)
    stamps = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")
    frame = pd.DataFrame(
        {
            "event_id": [f"E{i}" for i in range(n)],
            "observed_at": stamps.strftime("%Y-%m-%dT%H:%M:%S"),
            "x": rng.uniform(55_000, 100_000, n).round(1).astype(str),
            "y": rng.uniform(60_000, 135_000, n).round(1).astype(str),
            "location_kind": rng.choice(["Motorway", "urban"], n),
            "persons": rng.integers(1, 9, n).astype(str),
            "smugglers": rng.integers(0, 2, n).astype(str),
            "transport_mode": rng.choice(["car", "van"], n),
            "entry_country": rng.choice(["BE", "fr", "DE"], n),
        },
        dtype=object,
    )
    frame.loc[123, "persons"] = "0"
    valid, problems = check(frame)
    assert len(valid) == n - 1 and [p.row for p in problems] == [124]


def test_stored_text_lengths_and_control_characters_are_checked():
    from geo_ibm.importlimits import ImportLimits

    limits = ImportLimits(field_chars={"notes": 10}, default_field_chars=8)
    frame = table(
        good_row(event_id="OK", notes="tab\tand\nnew"),  # 11 characters: too long, but the controls are allowed
        good_row(event_id="E2", operation_id="OP\x1b[31m"),
        good_row(event_id="E3", source_unit="123456789"),
        good_row(event_id="E4", notes="fine\r\n"),
        good_row(event_id="E\u00e9\u00e9\u00e9\u00e9\u00e95", notes="é" * 10),  # 7 characters, 13 bytes
    )
    valid, problems = check(frame, limits=limits)
    assert [(p.row, p.column, p.reason) for p in problems] == [
        (2, "notes", "notes is longer than 10 characters"),
        (3, "operation_id", "operation_id holds a control character"),
        (4, "source_unit", "source_unit is longer than 8 characters"),
    ]
    assert problems[1].value == "OP\\x1b[31m"  # shown escaped
    assert valid["event_id"].tolist() == ["E4", "Eééééé5"] and valid["notes"].tolist() == ["fine", "é" * 10]


def test_odd_numbers_and_mixed_date_formats_take_the_long_way_to_the_same_values():
    frame = table(
        good_row(event_id="A", persons="+4", observed_at="2025-07-14T06:30", lat="49,6116"),
        good_row(event_id="B", persons="1e1", observed_at="14/07/2025 06:30", lat=" 49.6116 "),
        good_row(event_id="C", persons="3", observed_at="2025-07-14T04:30:00Z"),
    )
    valid, problems = check(frame)
    assert problems == []
    assert valid["persons"].tolist() == [4, 10, 3]
    assert valid["observed_at"].tolist() == [pd.Timestamp("2025-07-14T04:30Z")] * 3
    assert valid.geometry.y.round(3).nunique() == 1


def test_destination_and_nationalities_are_iso_codes_in_canonical_spelling():
    rows = [
        good_row(event_id="E1", destination_country=" de ", nationalities="sy; af;SY"),
        good_row(event_id="E2", destination_country="Unknown", nationalities=""),
        good_row(event_id="E3", destination_country="", nationalities="XK"),
        good_row(event_id="E4", destination_country="gb", nationalities="ER;SO;sd"),
    ]
    valid, problems = check(table(*rows))
    assert problems == []
    assert valid["destination_country"].tolist() == ["DE", "unknown", None, "GB"]
    assert valid["nationalities"].tolist() == ["SY;AF", None, "XK", "ER;SO;SD"]


@pytest.mark.parametrize(
    ("overrides", "column", "reason"),
    [
        ({"destination_country": "Germany"}, "destination_country", "unknown destination_country (use an ISO 3166-1"),
        ({"destination_country": "UK"}, "destination_country", "unknown destination_country"),
        ({"nationalities": "SY,AF"}, "nationalities", "nationalities holds 'SY,AF', not ISO 3166-1 alpha-2 codes"),
        ({"nationalities": "SY;;AF"}, "nationalities", "nationalities holds an empty code"),
        ({"nationalities": "SY;QQ;ZZ"}, "nationalities", "nationalities holds 'QQ', 'ZZ'"),
        ({"nationalities": "SY;AF;IQ;ER", "persons": "3"}, "nationalities", "lists more codes than persons"),
        ({"nationalities": "SY;" * 200}, "nationalities", "longer than 400 characters"),
    ],
)
def test_bad_destination_or_nationalities_name_row_column_and_value(overrides, column, reason):
    valid, problems = check(table(good_row(), good_row(event_id="E2", **overrides)))
    assert valid["event_id"].tolist() == ["E1"]
    (problem,) = problems
    assert (problem.row, problem.column) == (3, column)
    assert reason in problem.reason
    assert overrides[column].startswith(str(problem.value).rstrip("…"))  # long values are shown shortened
