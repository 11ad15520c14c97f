"""Saved operations and their evaluation (geo_ibm.planning.operations), on every store backend."""
from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from storefixtures import raw_rows, store_factory  # noqa: F401  (fixture)

from geo_ibm.errors import NotFoundError, ValidationError
from geo_ibm.planning import operations as ops
from geo_ibm.settings import LOCAL_TZ

SITES = gpd.GeoDataFrame({"site_id": ["A", "B"], "rank": [1, 2], "windows": ["Mon 08-12", "Tue 16-20, Sat 00-04"]},
                         geometry=[shapely.Point(70_000, 80_000), shapely.Point(90_000, 100_000)], crs=2169)
PARAMS = {"radius_m": 1000.0, "model": "mclp", "teams": 2, "from": "2024-06-01", "to": "2024-06-30",
          "covered_share_events": 61.5}
HEADER = "event_id;observed_at;x;y;location_kind;persons;smugglers;transport_mode;entry_country;operation_id"


def _row(k: int, when: str, x: float, y: float, persons: int = 1, op: str = "") -> str:
    return f"V{k:04d};{when};{x:.1f};{y:.1f};motorway;{persons};0;car;FR;{op}"


def _events() -> list[str]:
    rows = []
    k = 0

    def add(when: str, x: float, y: float, persons: int = 1, op: str = "") -> None:
        nonlocal k
        rows.append(_row(k, when, x, y, persons, op))
        k += 1

    # During the operation (Mon 3 to Sun 9 March 2025).
    for hours, persons in ((9, 2), (13, 3), (20, 4)):  # Monday 09:00, 13:00, 20:00 near A, tagged
        add(f"2025-03-03T{hours:02d}:00", 70_300, 80_200, persons, "OP-X")
    add("2025-03-05T10:00", 60_000, 120_000, 5, "op-x")  # tagged, out of every site's reach (case differs)
    add("2025-03-04T17:00", 90_100, 99_900)  # Tuesday 17:00 near B, untagged
    add("2025-03-08T02:00", 89_500, 100_400)  # Saturday 02:00 near B, untagged
    add("2025-03-06T12:00", 100_000, 130_000)  # elsewhere, untagged
    # Baseline: the 8 weeks before (6 January to 2 March 2025).
    for day in range(4):
        add(f"2025-01-{6 + 7 * day:02d}T09:30", 70_100, 79_900)  # Mondays 09:30 near A
    for day in range(8):
        add(f"2025-02-{4 + day:02d}T18:00", 90_000, 100_300)  # near B, every day 18:00
    # The plan's period (June 2024): six events near A on Monday mornings and evenings.
    for day, hour in ((3, 8), (10, 9), (17, 10), (24, 11), (3, 20), (10, 21)):
        add(f"2024-06-{day:02d}T{hour:02d}:15", 69_800, 80_100)
    add("2024-05-20T09:00", 70_000, 80_000)  # before every period: ignored
    return rows


@pytest.fixture
def events_store(store_factory, tmp_path):
    store = store_factory("ops")
    path = tmp_path / "ops.csv"
    path.write_text("\n".join([HEADER, *_events()]) + "\n", encoding="utf-8")
    store.import_file(path, user="ana")
    return store


def test_names_periods_and_windows_are_checked():
    assert ops.check_name(" OP Nord-2025.1 ") == "OP Nord-2025.1"
    for bad in ("", " ", "-start", "x" * 81, "semi;colon", None, 3):
        with pytest.raises(ValidationError, match="name"):
            ops.check_name(bad)
    assert ops.check_period("2025-03-03", "2025-03-09") == (dt.date(2025, 3, 3), dt.date(2025, 3, 9))
    with pytest.raises(ValidationError, match="to: the last day"):
        ops.check_period("2025-03-09", "2025-03-03")
    with pytest.raises(ValidationError, match="at most 366 days"):
        ops.check_period("2025-01-01", "2026-06-01")
    with pytest.raises(ValidationError, match="from: give the day"):
        ops.check_period("2025-03-03T10:00", "2025-03-09")
    assert ops.parse_window("Mon 08-12", 4) == 2
    assert ops.parse_window("Sun 20 - Mon 00", 4) == 41
    assert ops.parse_window("Sat 00-04", 4) == 5 * 6
    with pytest.raises(ValidationError, match="windows"):
        ops.parse_window("Mon 09-13", 4)
    with pytest.raises(ValidationError, match="windows"):
        ops.parse_window("Someday", 4)


def test_operation_from_plan_and_back_through_json():
    op = ops.operation_from_plan(SITES, {**PARAMS, "shift_hours": 4}, name="OP-X", start="2025-03-03", end="2025-03-16")
    assert op.days == 14 and op.shift_hours == 4 and op.hours_per_day is None
    assert op.shifts.to_dict("records") == [{"site_id": "A", "block": 2}, {"site_id": "B", "block": 10},
                                           {"site_id": "B", "block": 30}]
    assert op.teams == 3  # one team per (site, shift)
    back = ops.from_body({"name": "OP-X"}, ops.to_body(op))
    assert back.start == op.start and back.end == op.end and back.radius_m == 1000.0
    assert back.shifts.equals(op.shifts) and list(back.sites["site_id"]) == ["A", "B"]
    assert back.sites.geometry.equals(op.sites.geometry) and back.plan["covered_share_events"] == 61.5
    # Every Monday 08-12 of two weeks: 8 team-hours at A; B works Tuesday 16-20 and Saturday 00-04 twice: 16.
    assert ops.team_hours(op).tolist() == [8.0, 16.0]
    plain = ops.operation_from_plan(SITES, PARAMS, name="OP-Y", start="2025-03-03", end="2025-03-09", hours_per_day=6)
    assert plain.shifts.empty and plain.teams == 2 and ops.team_hours(plain).tolist() == [42.0, 42.0]
    with pytest.raises(ValidationError, match="radius"):
        ops.operation_from_plan(SITES, {**PARAMS, "radius_m": 0}, name="OP-Z", start="2025-03-03", end="2025-03-09")
    with pytest.raises(ValidationError, match="hours_per_day"):
        ops.operation_from_plan(SITES, PARAMS, name="OP-Z", start="2025-03-03", end="2025-03-09", hours_per_day=25)
    with pytest.raises(ValidationError, match="no sites"):
        ops.operation_from_plan(SITES.iloc[:0], PARAMS, name="OP-Z", start="2025-03-03", end="2025-03-09")


def _reference(op: ops.Operation, events: gpd.GeoDataFrame, site: str, days: tuple[dt.date, dt.date],
               *, tagged: bool | None = None) -> int:
    """Covered events of one site counted one by one (the nearest covering site wins)."""
    xy = {s: (g.x, g.y) for s, g in zip(op.sites["site_id"], op.sites.geometry, strict=True)}
    worked = {(s, int(b)) for s, b in zip(op.shifts["site_id"], op.shifts["block"], strict=True)}
    n = 0
    for row in events.itertuples():
        local = row.observed_at.tz_convert(LOCAL_TZ)
        if not days[0] <= local.date() <= days[1]:
            continue
        if tagged is not None and (str(row.operation_id or "").lower() == op.name.lower()) != tagged:
            continue
        hour = local.day_of_week * 24 + local.hour
        reach = []
        for s, (x, y) in xy.items():
            d = float(np.hypot(row.geometry.x - x, row.geometry.y - y))
            if d <= op.radius_m and (op.shift_hours is None or (s, hour // op.shift_hours) in worked):
                reach.append((d, s))
        if reach and min(reach)[1] == site:
            n += 1
    return n


@pytest.mark.parametrize("shifts", [False, True], ids=["all-day", "shifts"])
def test_evaluation_against_counting_event_by_event(events_store, shifts):
    params = {**PARAMS, "shift_hours": 4} if shifts else PARAMS
    op = ops.operation_from_plan(SITES, params, name="OP-X", start="2025-03-03", end="2025-03-09", hours_per_day=8)
    events = ops.evaluation_events(events_store, op, baseline_weeks=8)
    result = ops.evaluate_operation(op, events, baseline_weeks=8)
    table = result.sites.set_index("site_id")
    assert list(result.sites.columns) == [*ops.SITE_COLUMNS, "geometry"]
    assert list(table.index) == ["A", "B", "elsewhere"]
    period = (dt.date(2025, 3, 3), dt.date(2025, 3, 9))
    baseline = (dt.date(2025, 1, 6), dt.date(2025, 3, 2))
    plan_days = (dt.date(2024, 6, 1), dt.date(2024, 6, 30))
    for site in ("A", "B"):
        assert table.at[site, "covered_events"] == _reference(op, events, site, period)
        assert table.at[site, "operation_events"] == _reference(op, events, site, period, tagged=True)
        assert table.at[site, "baseline_events"] == pytest.approx(_reference(op, events, site, baseline) / 56 * 7)
        assert table.at[site, "forecast_events"] == pytest.approx(_reference(op, events, site, plan_days) / 30 * 7)
    if shifts:
        # Only the Monday 09:00 event falls in A's Monday 08-12 shift; B's Tuesday 16-20 and Saturday 00-04 catch both.
        assert table.at["A", "operation_events"] == 1 and table.at["A", "operation_persons"] == 2
        assert table.at["A", "team_hours"] == 4 and table.at["B", "team_hours"] == 8
        assert result.summary["tagged_elsewhere"] == 3  # Monday 13:00 and 20:00 are out of A's shift
        assert table.at["A", "baseline_events"] == pytest.approx(4 / 56 * 7)  # the Mondays 09:30
        assert table.at["A", "forecast_events"] == pytest.approx(4 / 30 * 7)  # 08:15, 09:15, 10:15, 11:15
    else:
        assert table.at["A", "operation_events"] == 3 and table.at["A", "operation_persons"] == 9
        assert table.at["A", "team_hours"] == 56 and table.at["A", "events_per_team_hour"] == pytest.approx(3 / 56)
        assert table.at["B", "covered_events"] == 2 and table.at["B", "operation_events"] == 0
        assert table.at["B", "baseline_events"] == pytest.approx(8 / 56 * 7)
        assert table.at["A", "forecast_events"] == pytest.approx(6 / 30 * 7)
        assert table.at["A", "vs_baseline_pct"] == pytest.approx(100 * (3 - 0.5) / 0.5)
        assert result.summary["tagged_elsewhere"] == 1
    assert table.at["elsewhere", "operation_events"] == result.summary["tagged_elsewhere"]
    summary = result.summary
    assert summary["operation_events"] == 4 and summary["operation_persons"] == 14  # 2 + 3 + 4 + 5, any case of the id
    assert summary["national_events"] == 7
    assert summary["share_of_national_pct"] == pytest.approx(400 / 7)
    assert summary["events_per_team_hour"] == pytest.approx(4 / summary["team_hours"])
    assert summary["baseline_period"] == ["2025-01-06", "2025-03-02"]
    assert summary["forecast_period"] == ["2024-06-01", "2024-06-30"]
    json.dumps(summary, allow_nan=False, default=str)


def test_saved_operations_round_trip_are_unique_and_audited(events_store):
    op = ops.operation_from_plan(SITES, {**PARAMS, "shift_hours": 4}, name="OP-X", start="2025-03-03",
                                 end="2025-03-09")
    ops.save_operation(events_store, op, user="pia")
    with pytest.raises(ValidationError, match="name: an operation named 'op-x' exists"):
        ops.save_operation(events_store, ops.operation_from_plan(SITES, PARAMS, name="op-x", start="2025-03-03",
                                                                 end="2025-03-04"), user="pia")
    listed = events_store.operations()
    assert listed[["name", "user", "start_date", "end_date"]].to_dict("records") == [
        {"name": "OP-X", "user": "pia", "start_date": "2025-03-03", "end_date": "2025-03-09"}]
    assert isinstance(listed["created"].dtype, pd.DatetimeTZDtype)
    back = ops.load_operation(events_store, "op-x")
    assert back.name == "OP-X" and back.user == "pia" and back.shifts.equals(op.shifts) and back.teams == 3
    with pytest.raises(NotFoundError, match="no operation named 'nope'"):
        ops.load_operation(events_store, "nope")
    audit = events_store.audit_log()
    saved = audit[audit["action"] == "operation"]
    assert len(saved) == 1 and saved.iloc[0]["detail"]["name"] == "OP-X" and saved.iloc[0]["user"] == "pia"
    assert raw_rows(events_store, "SELECT count(*) FROM operations")[0][0] == 1


def test_evaluation_refuses_reading_too_many_events(events_store, monkeypatch):
    op = ops.operation_from_plan(SITES, PARAMS, name="OP-X", start="2025-03-03", end="2025-03-09")
    monkeypatch.setattr(ops, "MAX_EVALUATED_EVENTS", 5)
    with pytest.raises(ValidationError, match="baseline_weeks: the evaluation would read"):
        ops.evaluation_events(events_store, op)
    with pytest.raises(ValidationError, match="baseline_weeks"):
        ops.periods(op, baseline_weeks=0)


def test_the_operation_interceptions_come_with_their_covering_site(events_store):
    op = ops.operation_from_plan(SITES, PARAMS, name="OP-X", start="2025-03-03", end="2025-03-09")
    result = ops.evaluate_operation(op, ops.evaluation_events(events_store, op))
    tagged = result.tagged
    assert tagged is not None and len(tagged) == 4 and tagged.crs.to_epsg() == 2169
    assert sorted(tagged["site"]) == ["", "A", "A", "A"] and tagged["persons"].sum() == 14
    empty = ops.evaluate_operation(op, events_store.events(event_id="none"))
    assert empty.tagged is not None and empty.tagged.empty and empty.summary["operation_events"] == 0
