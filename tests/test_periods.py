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
