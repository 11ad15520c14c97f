"""Tests of webapp.params: query-parameter parsing and validation."""
from __future__ import annotations

import pandas as pd
import pytest
from pyproj import Transformer
from werkzeug.datastructures import MultiDict

from geo_ibm.errors import NotFoundError, ValidationError
from webapp.params import (
    bbox_to_working_crs,
    check_known,
    parse_bbox,
    parse_choice,
    parse_date_range,
    parse_datetime,
    parse_event_filters,
    parse_float,
    parse_int,
    parse_limit,
    parse_offset,
    parse_quarter,
    single,
)
from webapp.responses import error_body

LUX = "Europe/Luxembourg"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5.9,49.5,6.4,50.1", (5.9, 49.5, 6.4, 50.1)),
        (" 5.9 , 49.5 , 6.4 , 50.1 ", (5.9, 49.5, 6.4, 50.1)),
        ("5.9,49.5,0,6.4,50.1,100", (5.9, 49.5, 6.4, 50.1)),
        ("-180,-90,180,90", (-180.0, -90.0, 180.0, 90.0)),
        ("6,49.6,6,49.6", (6.0, 49.6, 6.0, 49.6)),
    ],
)
def test_parse_bbox_accepts(raw, expected):
    assert parse_bbox(raw) == expected


def test_parse_bbox_absent():
    assert parse_bbox(None) is None


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("5.9,49.5,6.4", "4 comma-separated numbers.*got 3"),
        ("5.9,49.5,6.4,50.1,7", "got 5"),
        ("", "got 1"),
        ("a,49.5,6.4,50.1", "'a' is not a number"),
        ("5.9,49.5,nan,50.1", "not a finite number"),
        ("5.9,49.5,inf,50.1", "not a finite number"),
        ("6.4,49.5,5.9,50.1", "lon_min 6.4 is greater than lon_max 5.9"),
        ("5.9,50.1,6.4,49.5", "lat_min 50.1 is greater than lat_max 49.5"),
        ("-181,49.5,6.4,50.1", r"longitude -181 is outside \[-180, 180\]"),
        ("5.9,49.5,6.4,91", r"latitude 91 is outside \[-90, 90\]"),
    ],
)
def test_parse_bbox_refuses(raw, match):
    with pytest.raises(ValidationError, match=match) as info:
        parse_bbox(raw)
    assert "'bbox'" in str(info.value)
    assert info.value.problems[0].column == "bbox"


def test_bbox_to_working_crs_encloses_every_edge_point():
    bbox = (5.9, 49.5, 6.4, 50.1)
    xmin, ymin, xmax, ymax = bbox_to_working_crs(bbox)
    to_2169 = Transformer.from_crs("EPSG:4326", "EPSG:2169", always_xy=True)
    # Walk the lon/lat box edges finely: every point must fall inside the returned box.
    steps = [i / 2000 for i in range(2001)]
    edge = [(bbox[0] + t * (bbox[2] - bbox[0]), y) for t in steps for y in (bbox[1], bbox[3])]
    edge += [(x, bbox[1] + t * (bbox[3] - bbox[1])) for t in steps for x in (bbox[0], bbox[2])]
    xs, ys = to_2169.transform(*zip(*edge))
    assert min(xs) >= xmin - 1e-6 and max(xs) <= xmax + 1e-6
    assert min(ys) >= ymin - 1e-6 and max(ys) <= ymax + 1e-6
    # ...and it is tight: the extreme edge points are within the 1 m padding of it.
    assert min(xs) - xmin < 1.1 and xmax - max(xs) < 1.1 and min(ys) - ymin < 1.1 and ymax - max(ys) < 1.1


@pytest.mark.parametrize(("raw", "expected"), [(None, 100), ("", 100), ("1", 1), ("10000", 10000), (" 25 ", 25)])
def test_parse_limit(raw, expected):
    assert parse_limit(raw) == expected


@pytest.mark.parametrize(
    ("raw", "match"),
    [("0", "at least 1"), ("-3", "at least 1"), ("10001", "at most 10000"), ("ten", "must be an integer"),
     ("2.5", "must be an integer"), ("1e3", "must be an integer"), ("9" * 20, "must be an integer")],
)
def test_parse_limit_refuses(raw, match):
    with pytest.raises(ValidationError, match=f"'limit'.*{match}"):
        parse_limit(raw)


def test_parse_limit_clamped():
    assert parse_limit("50000", clamp=True) == 10000
    assert parse_limit("10000", clamp=True) == 10000
    assert parse_limit("7", clamp=True) == 7
    with pytest.raises(ValidationError, match="at least 1"):
        parse_limit("0", clamp=True)
    with pytest.raises(ValidationError, match="must be an integer"):
        parse_limit("lots", clamp=True)


def test_parse_limit_custom_maximum():
    assert parse_limit("500", maximum=500) == 500
    with pytest.raises(ValidationError, match="at most 500"):
        parse_limit("501", maximum=500)


@pytest.mark.parametrize(("raw", "expected"), [(None, 0), ("0", 0), ("42", 42)])
def test_parse_offset(raw, expected):
    assert parse_offset(raw) == expected


@pytest.mark.parametrize("raw", ["-1", "x", "1.0"])
def test_parse_offset_refuses(raw):
    with pytest.raises(ValidationError, match="'offset'"):
        parse_offset(raw)


def test_parse_int_and_float_ranges():
    assert parse_int("7", name="seed", default=0, minimum=0, maximum=9) == 7
    assert parse_float("250.5", name="cell", default=None, minimum=50) == 250.5
    assert parse_float(None, name="cell", default=None) is None
    with pytest.raises(ValidationError, match="'cell'.*at least 50"):
        parse_float("10", name="cell", default=None, minimum=50)
    with pytest.raises(ValidationError, match="'band'.*must be a number"):
        parse_float("wide", name="band", default=None)
    with pytest.raises(ValidationError, match="'band'.*finite"):
        parse_float("inf", name="band", default=None)


def ts(text: str, tz: str = LUX) -> pd.Timestamp:
    stamp = pd.Timestamp(text)
    return stamp if stamp.tzinfo else stamp.tz_localize(tz)


@pytest.mark.parametrize(
    ("raw", "start", "end"),
    [
        # A date names its whole local day; the end is exclusive.
        ("2025-01-31", ts("2025-01-31"), ts("2025-02-01")),
        ("2025-01-31T08:00:00Z", ts("2025-01-31T08:00:00Z"), ts("2025-01-31T08:00:01Z")),
        ("2025-01-31T08:00:00.750+01:00", ts("2025-01-31T07:00:00Z"), ts("2025-01-31T07:00:01Z")),
        ("2025-01-31T08:00", ts("2025-01-31T08:00"), ts("2025-01-31T08:00:01")),
        ("2025-01-01/2025-03-31", ts("2025-01-01"), ts("2025-04-01")),
        ("2025-01-01T00:00:00+01:00/2025-01-02T00:00:00+01:00", ts("2024-12-31T23:00Z"), ts("2025-01-01T23:00:01Z")),
        ("../2025-01-01", None, ts("2025-01-02")),
        ("/2025-01-01", None, ts("2025-01-02")),
        ("2025-01-01/..", ts("2025-01-01"), None),
        ("2025-01-01/", ts("2025-01-01"), None),
        # Summer time: local midnight is 22:00 UTC the day before.
        ("2025-07-01", ts("2025-06-30T22:00Z"), ts("2025-07-01T22:00Z")),
    ],
)
def test_parse_datetime(raw, start, end):
    interval = parse_datetime(raw)
    assert interval.start == start
    assert interval.end == end
    filters = interval.as_filters()
    assert set(filters) == {k for k, v in (("start", start), ("end", end)) if v is not None}


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "is empty"),
        ("../..", "at least one end"),
        ("/", "at least one end"),
        ("2025-13-01", "not a valid date"),
        ("2025-02-30", "not a valid date"),
        ("yesterday", "not an RFC 3339"),
        ("2025-01-01/2025-02-01/2025-03-01", "exactly one '/'"),
        ("2025-03-01/2025-01-01", "start is after the end"),
        ("31/01/2025", "exactly one '/'"),
        ("9999-12-31", "outside the years 1900-2199"),
        ("0001-01-01/..", "outside the years"),
        ("../2200-01-01T00:00Z", "outside the years"),
    ],
)
def test_parse_datetime_refuses(raw, match):
    with pytest.raises(ValidationError, match=match) as info:
        parse_datetime(raw)
    assert info.value.problems[0].column == "datetime"


def test_parse_date_range():
    interval = parse_date_range({"from": "2025-01-01", "to": "2025-01-31"})
    assert (interval.start, interval.end) == (ts("2025-01-01"), ts("2025-02-01"))
    assert parse_date_range({}) is None
    assert parse_date_range({"to": "2025-01-31"}).start is None
    with pytest.raises(ValidationError, match="'from'.*is after 'to'"):
        parse_date_range({"from": "2025-02-01", "to": "2025-01-01"})
    with pytest.raises(ValidationError, match="'to'.*not an RFC 3339"):
        parse_date_range({"to": "Jan 2025"})


@pytest.mark.parametrize(("raw", "expected"), [("2025-Q1", "2025Q1"), ("2025q4", "2025Q4"), (" 2024-q2 ", "2024Q2")])
def test_parse_quarter(raw, expected):
    assert parse_quarter(raw) == expected


@pytest.mark.parametrize("raw", ["2025-Q5", "Q1-2025", "2025", "25-Q1"])
def test_parse_quarter_refuses(raw):
    with pytest.raises(ValidationError, match="'quarter'.*like 2025Q1"):
        parse_quarter(raw)


CHOICES = {"entry_country": ["BE", "FR", "DE", "unknown"], "region": ["Capitale", "Nord", "Sud-Ouest", "Centre-Est"]}


def test_parse_event_filters_normalises_codes():
    args = MultiDict({"quarter": "2025q2", "entry_country": "fr", "region": "sud-ouest", "transport_mode": "car", "bbox": "ignored"})
    assert parse_event_filters(args, choices=CHOICES) == {
        "quarter": "2025Q2", "region": "Sud-Ouest", "entry_country": "FR", "transport_mode": "car",
    }
    assert parse_event_filters(MultiDict({"entry_country": "UNKNOWN"}), choices=CHOICES) == {"entry_country": "unknown"}
    assert parse_event_filters(MultiDict({"region": ""}), choices=CHOICES) == {}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"entry_country": "LU"}, "'entry_country'.*unknown value; known: BE, DE, FR, unknown"),
        ({"region": "Mars"}, "'region'.*unknown value"),
        ({"canton": "<script>"}, "'canton'.*characters"),
        ({"quarter": "2025-Q9"}, "'quarter'"),
    ],
)
def test_parse_event_filters_refuses(args, match):
    with pytest.raises(ValidationError, match=match):
        parse_event_filters(MultiDict(args), choices=CHOICES)


def test_check_known_names_the_typo():
    check_known(MultiDict({"limit": "1"}), ["limit", "offset"])
    with pytest.raises(ValidationError, match="'regoin'.*unknown parameter; allowed: limit, region") as info:
        check_known(MultiDict({"regoin": "Nord", "limit": "2"}), ["limit", "region"])
    assert info.value.problems[0].column == "regoin"


def test_single_refuses_repeated_parameter():
    assert single(MultiDict([("limit", "5")]), "limit") == "5"
    assert single(MultiDict(), "limit") is None
    with pytest.raises(ValidationError, match="'limit'.*more than once"):
        single(MultiDict([("limit", "5"), ("limit", "6")]), "limit")


def test_parse_choice():
    assert parse_choice("KDE", name="method", choices=["gi", "kde"]) == "kde"
    assert parse_choice(None, name="method", choices=["gi"], default="gi") == "gi"
    with pytest.raises(ValidationError, match="'method'.*one of gi, kde"):
        parse_choice("idw", name="method", choices=["gi", "kde"])


def test_error_body():
    with pytest.raises(ValidationError) as info:
        parse_limit("0")
    body, status = error_body(info.value)
    assert status == 400
    assert body["code"] == "InvalidParameterValue"
    assert body["parameter"] == "limit"
    assert "limit" in body["description"]
    body, status = error_body(NotFoundError("unknown collection 'x'"))
    assert (status, body["code"]) == (404, "NotFound")
    assert "parameter" not in body
    body, status = error_body(RuntimeError("secret path /etc"))
    assert status == 500 and "/etc" not in body["description"]
