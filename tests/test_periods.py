"""Tests of the one date, time and quarter parser."""
from __future__ import annotations

import datetime

import pandas as pd
import pytest

from geo_ibm import periods
from geo_ibm.errors import ValidationError


@pytest.mark.parametrize("raw", ["2025Q3", "2025-Q3", "2025q3", " 2025 - q3 ", pd.Period("2025Q3", freq="Q")])
def test_quarter_spellings(raw):
    assert periods.parse_quarter(raw) == "2025Q3"


@pytest.mark.parametrize("raw", ["2025Q5", "2025", "Q3", "", None, "2025-07"])
def test_bad_quarters_name_the_parameter(raw):
    with pytest.raises(ValidationError, match="^report_quarter must look like '2025Q3'") as info:
        periods.parse_quarter(raw, name="report_quarter")
    assert info.value.problems[0].column == "report_quarter"


def test_shift_and_bounds_cross_years_and_dst():
    assert periods.shift_quarter("2025Q1", -1) == "2024Q4"
    assert periods.shift_quarter("2024Q4", 5) == "2026Q1"
    start, end = periods.quarter_bounds("2025Q4")
    assert start.isoformat() == "2025-10-01T00:00:00+02:00"
    assert end.isoformat() == "2026-01-01T00:00:00+01:00"


def test_quarter_labels_use_local_time():
    stamps = pd.Series(pd.to_datetime(["2025-06-30T22:30:00Z", "2025-06-30T21:59:59Z"], utc=True))
    # 22:30 UTC on 30 June is 00:30 on 1 July in Luxembourg (summer time, UTC+2).
    assert periods.quarter_labels(stamps).tolist() == ["2025Q3", "2025Q2"]


def test_naive_times_are_local_and_dates_name_whole_days():
    assert periods.to_timestamp("2025-07-14 06:30").isoformat() == "2025-07-14T06:30:00+02:00"
    assert periods.to_timestamp(datetime.date(2025, 1, 2)).isoformat() == "2025-01-02T00:00:00+01:00"
    # The clock goes back on 26 October 2025: the day has 25 hours, its end is the next midnight.
    assert periods.period_end("2025-10-26").isoformat() == "2025-10-27T00:00:00+01:00"
    assert periods.period_end(datetime.date(2025, 10, 26)).isoformat() == "2025-10-27T00:00:00+01:00"
    assert periods.period_end("2025-10-26T12:00").isoformat() == "2025-10-26T12:00:00+01:00"
    # The hour skipped in spring moves forward.
    assert periods.to_timestamp("2025-03-30 02:30").isoformat() == "2025-03-30T03:00:00+02:00"


def test_epoch_seconds_against_datetime():
    stamp = periods.to_timestamp("2025-07-14T06:30:15+02:00")
    expected = int(datetime.datetime(2025, 7, 14, 4, 30, 15, tzinfo=datetime.timezone.utc).timestamp())
    assert periods.epoch_seconds(stamp) == expected


@pytest.mark.parametrize("raw", ["last tuesday", "2024-13-01", "", None])
def test_bad_times_name_the_parameter(raw):
    with pytest.raises(ValidationError, match="^start is not a date"):
        periods.to_timestamp(raw, name="start")


def test_local_period_of_a_value_uses_local_time():
    # 23:30 UTC on 30 September is 01:30 on 1 October in Luxembourg (UTC+2).
    assert str(periods.local_period("2025-09-30T23:30:00Z", "Q")) == "2025Q4"
    assert str(periods.local_period("2025-09-30T23:30:00Z", "M")) == "2025-10"
    assert str(periods.local_period("2025-07", "M")) == "2025-07"
    assert str(periods.local_period(datetime.date(2025, 3, 31), "Q")) == "2025Q1"
    with pytest.raises(ValidationError, match="^end is not a date"):
        periods.local_period("soon", "M", name="end")


def test_local_periods_match_a_per_value_conversion():
    stamps = pd.Series(pd.to_datetime(["2025-06-30T22:30:00Z", "2025-12-31T23:00:00Z", "2025-03-01T00:00:00Z"], utc=True))
    for freq in ("Q", "M"):
        expected = [stamp.tz_convert("Europe/Luxembourg").tz_localize(None).to_period(freq) for stamp in stamps]
        assert periods.local_periods(stamps, freq).tolist() == expected
    assert [str(p) for p in periods.local_periods(stamps, "Q")] == ["2025Q3", "2026Q1", "2025Q1"]


def test_epoch_window_is_half_open_in_utc_seconds():
    # Luxembourg is UTC+1 in January: local midnight is 23:00 UTC the day before
    first, after = periods.epoch_window("2025-01-01", "2025-01-02")
    assert first == int(pd.Timestamp("2024-12-31T23:00Z").timestamp()) and after - first == 86_400
    assert periods.epoch_window(None, None) == (None, None)
    assert periods.epoch_window("2025-07-01T12:00:00", None)[1] is None
    with pytest.raises(ValidationError, match="--from must come before --to") as caught:
        periods.epoch_window("2025-01-02", "2025-01-02", start_name="--from", end_name="--to")
    assert caught.value.problems[0].column == "--to"
    with pytest.raises(ValidationError, match="start"):
        periods.epoch_window("not a time", None)


@pytest.mark.parametrize("raw", ["0000Q1", "1000Q1", "1899Q4", "2200Q1", "9999Q4", pd.Period("1850Q2", freq="Q")])
def test_quarters_outside_the_years_a_user_may_name_are_refused_naming_the_parameter(raw):
    for call in (periods.parse_quarter, periods.quarter_period):
        with pytest.raises(ValidationError, match="^quarters must be a quarter of the years 1900-2199") as caught:
            call(raw, name="quarters")
        assert caught.value.problems[0].column == "quarters"
        assert caught.value.problems[0].value == raw


@pytest.mark.parametrize("raw", ["0000Q1", "1000Q1", "9999Q4"])
def test_bounds_and_shifts_of_an_impossible_quarter_are_refused_naming_it(raw):
    # the quarters a user names reach these directly (network/requests.py calls quarter_bounds)
    for call in (periods.quarter_bounds, lambda v, name: periods.shift_quarter(v, -1, name=name)):
        with pytest.raises(ValidationError, match="^quarter must be a quarter of the years 1900-2199") as caught:
            call(raw, name="quarter")
        assert caught.value.problems[0].value == raw


def test_the_boundary_quarters_and_those_a_report_looks_back_to_have_bounds():
    assert periods.parse_quarter("1900Q1") == "1900Q1" and periods.parse_quarter("2199-q4") == "2199Q4"
    start, end = periods.quarter_bounds("2199Q4")
    assert (start.isoformat(), end.isoformat()) == ("2199-10-01T00:00:00+02:00", "2200-01-01T00:00:00+01:00")
    # the quarter before the first one: a previous-quarter comparison, no error naming 1899Q4
    assert periods.shift_quarter("1900Q1", -1) == "1899Q4"
    assert periods.shift_quarter("1900Q1", -12) == "1897Q1"
    assert periods.shift_quarter(periods.shift_quarter("1900Q1", -1), -1) == "1899Q3"
    start, end = periods.quarter_bounds("1899Q4")
    # Luxembourg kept local mean time (UTC+0:24:36) until 1904
    assert (start.isoformat(), end.isoformat()) == ("1899-10-01T00:00:00+00:24:36", "1900-01-01T00:00:00+00:24:36")
    assert periods.epoch_seconds(start) == int(datetime.datetime(1899, 9, 30, 23, 35, 24, tzinfo=datetime.timezone.utc).timestamp())


def test_a_shift_past_the_computable_years_names_the_quarter_given():
    with pytest.raises(ValidationError, match="^quarter shifted by -1 quarters leaves the years 1600-2999") as caught:
        periods.shift_quarter("1600Q1", -1)
    assert caught.value.problems[0].value == "1600Q1"


@pytest.mark.parametrize("raw", ["9999-12-31", "0001-01-01", "1599-12-31T23:00", "3000-01-01",
                                 datetime.date(9999, 12, 31), datetime.datetime(1, 1, 1)])
def test_dates_pandas_cannot_compute_with_are_refused_naming_the_parameter(raw):
    # period_end('9999-12-31') failed with "year 10000 is out of range", year 1 on toordinal
    for call in (periods.to_timestamp, periods.period_start, periods.period_end):
        with pytest.raises(ValidationError, match="^to is outside the years 1600-2999") as caught:
            call(raw, name="to")
        assert caught.value.problems[0].column == "to"


def test_the_windows_derived_from_the_web_date_range_stay_computable():
    # the web takes MIN_YEAR-MAX_YEAR; the window of the same length before the widest one
    # (network/requests.py compares with it) reaches 1600
    from webapp.params import MAX_YEAR, MIN_YEAR

    assert (MIN_YEAR, MAX_YEAR) == (periods.MIN_YEAR, periods.MAX_YEAR)
    first = periods.period_start(f"{MIN_YEAR}-01-01", name="from")
    after = periods.period_end(f"{MAX_YEAR}-12-31", name="to")
    assert after.isoformat() == f"{MAX_YEAR + 1}-01-01T00:00:00+01:00"
    before = periods.to_timestamp(first - (after - first), name="from")
    assert before.year == 1600
    assert periods.epoch_window(before, first) == (periods.epoch_seconds(before), periods.epoch_seconds(first))
    # the widest window the library takes: the one before it still holds instants
    first, after = periods.to_timestamp("1600-01-01"), periods.period_end("2999-12-31")
    assert (first - (after - first)).year == 199
