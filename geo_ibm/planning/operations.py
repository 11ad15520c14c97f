"""National operations: a plan saved with its dates and teams, and its evaluation once it has run.

An operation puts ``teams`` teams at the chosen control sites between ``start`` and ``end``
(inclusive local days). A space-time plan says which shifts (hour-of-week blocks of
``shift_hours``) each site is worked; a plan without shifts has every team at its site for
``hours_per_day`` hours a day. Events imported with ``operation_id`` equal to the operation's
name are its results.

The evaluation compares, for the same places and hours (an event is *covered* when it lies within
``radius_m`` of a site and, for shift plans, falls in one of that site's shifts):

- the operation's own interceptions (tagged events of its period): count, persons, per team-hour,
  and their share of every interception in the country in that period;
- every covered event of the period (tagged or not);
- the **forecast**: the covered events per day of the period the plan was made from (the plan's
  ``from``/``to``), times the operation's days — what the plan promised;
- the **baseline**: the covered events per day of the ``baseline_weeks`` weeks just before the
  operation, times its days — the same hours and places without the operation.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from geo_ibm.errors import NotFoundError, Problem, ValidationError
from geo_ibm.periods import is_date_only, to_timestamp
from geo_ibm.planning.coverage import check_radius
from geo_ibm.planning.spacetime import DAY_NAMES, HOURS_PER_WEEK, check_shift_hours, hour_of_week
from geo_ibm.settings import LOCAL_TZ, WORKING_CRS

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$")
MAX_DAYS = 366
"""Longest operation, in days."""
MAX_SITES = 1_000
MAX_BASELINE_WEEKS = 104
MAX_EVALUATED_EVENTS = 5_000_000
"""Most events an evaluation reads (its periods together); refused before they are read."""
BODY_VERSION = 1

SITE_COLUMNS = ["site_id", "rank", "team_hours", "operation_events", "operation_persons", "events_per_team_hour",
                "covered_events", "forecast_events", "baseline_events", "vs_forecast_pct", "vs_baseline_pct"]
"""Columns of :attr:`Evaluation.sites` (besides ``geometry``); see :func:`evaluate_operation`."""


@dataclass(frozen=True)
class Operation:
    """A saved operation.

    Attributes
    ----------
    name
        Its name, also the ``operation_id`` of the events it produced.
    start, end
        First and last day (local, inclusive).
    teams
        Teams deployed.
    radius_m
        Coverage radius of the plan (metres).
    sites
        GeoDataFrame (EPSG:2169): ``site_id``, ``rank``, ``geometry``.
    shifts
        ``site_id``, ``block`` (hour-of-week block of ``shift_hours``, Monday 00:00 first); empty
        for a plan without shifts.
    shift_hours
        Shift length of a space-time plan, else ``None``.
    hours_per_day
        Hours a team works each day at its site in a plan without shifts, else ``None``.
    plan
        The plan's parameters and expected coverage as the plan wrote them.
    created, user
        When and by whom it was saved (set by the store).
    """

    name: str
    start: dt.date
    end: dt.date
    teams: int
    radius_m: float
    sites: gpd.GeoDataFrame
    shifts: pd.DataFrame
    shift_hours: int | None = None
    hours_per_day: float | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    created: pd.Timestamp | None = None
    user: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_operation` found: one row per site plus ``elsewhere``, and the totals."""

    sites: gpd.GeoDataFrame
    summary: dict[str, Any]
    tagged: gpd.GeoDataFrame | None = None
    """The operation's interceptions: ``observed_at``, ``persons``, ``site`` (the covering site, ``''`` when none),
    ``weight`` (1), point geometry."""


def check_name(name: object) -> str:
    """An operation name: 1-80 letters, digits, spaces, dots, dashes or underscores, starting with a letter or digit."""
    text = str(name).strip() if isinstance(name, str) else ""
    if not NAME_PATTERN.match(text):
        raise ValidationError(
            "name: an operation name has 1-80 letters, digits, spaces, '.', '-' or '_' and starts with a letter or "
            f"digit, got {name!r}", [Problem("bad operation name", column="name", value=name)])
    return text


def check_period(start: object, end: object) -> tuple[dt.date, dt.date]:
    """The operation's first and last day (``YYYY-MM-DD``), in order and at most :data:`MAX_DAYS` apart."""
    first = _day(start, "from")
    last = _day(end, "to")
    if last < first:
        raise ValidationError(f"to: the last day {last} is before the first day {first}",
                              [Problem("period ends before it starts", column="to", value=str(end))])
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationError(f"to: an operation lasts at most {MAX_DAYS} days, got {(last - first).days + 1}",
                              [Problem("period too long", column="to", value=str(end))])
    return first, last


def _day(value: object, name: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name}: give the day as YYYY-MM-DD", [Problem("missing day", column=name)])
    return parse_day(value, name=name)


def parse_day(value: str, *, name: str = "day") -> dt.date:
    """``YYYY-MM-DD`` as a date; a :class:`ValidationError` naming ``name`` otherwise."""
    text = value.strip()
    if not is_date_only(text):
        raise ValidationError(f"{name}: give the day as YYYY-MM-DD, got {value!r}",
                              [Problem("not a day", column=name, value=value)])
    return to_timestamp(text, name=name).date()


def parse_window(label: str, shift_hours: int) -> int:
    """The hour-of-week block of a shift label such as ``'Mon 08-12'`` or ``'Sun 20 - Mon 04'``."""
    match = re.match(r"^\s*([A-Z][a-z]{2})\s+(\d{2})", label)
    if not match or match.group(1) not in DAY_NAMES or int(match.group(2)) > 23:
        raise ValidationError(f"windows: not a shift such as 'Mon 08-12': {label!r}",
                              [Problem("bad shift label", column="windows", value=label)])
    start = DAY_NAMES.index(match.group(1)) * 24 + int(match.group(2))
    if start % shift_hours:
        raise ValidationError(f"windows: {label!r} does not start a {shift_hours}-hour shift",
                              [Problem("shift not on a block boundary", column="windows", value=label)])
    return start // shift_hours


def operation_from_plan(sites: gpd.GeoDataFrame, params: dict[str, Any], *, name: str, start: object, end: object,
                        hours_per_day: float | None = None, id_column: str | None = None) -> Operation:
    """An operation from a plan's ranked sites (``Plan.sites`` or a plan file's ``plan_sites`` layer).

    Parameters
    ----------
    sites
        The plan's sites in rank order: an id column, ``rank``, ``windows`` (a space-time plan's
        shifts, ``'Mon 08-12, Tue 16-20'``), point geometry.
    params
        The plan's summary/parameters: ``radius_m``, ``shift_hours``, ``teams`` and the rest (kept).
    hours_per_day
        Plans without shifts: hours each team works a day at its site (default 8).
    """
    name = check_name(name)
    first, last = check_period(start, end)
    if sites.empty:
        raise ValidationError("plan: the plan has no sites", [Problem("no sites", column="plan")])
    if len(sites) > MAX_SITES:
        raise ValidationError(f"plan: at most {MAX_SITES} sites, got {len(sites)}",
                              [Problem("too many sites", column="plan", value=len(sites))])
    radius = check_radius(params.get("radius_m"))
    id_col = id_column or next((c for c in ("site_id", "id", "name") if c in sites.columns), None)
    if id_col is None or id_col not in sites.columns:
        raise ValidationError("plan: the sites have no id column (site_id)", [Problem("no id column", column="plan")])
    points = sites.to_crs(WORKING_CRS) if sites.crs is not None else sites.set_crs(WORKING_CRS)
    ids = points[id_col].astype(str).to_numpy()
    table = gpd.GeoDataFrame({"site_id": ids, "rank": np.arange(1, len(ids) + 1, dtype=np.int64)},
                             geometry=points.geometry.to_numpy(), crs=WORKING_CRS)
    if "rank" in points.columns:
        table["rank"] = pd.to_numeric(points["rank"], errors="coerce").fillna(0).astype(np.int64).to_numpy()
    shift_raw = params.get("shift_hours")
    shift_hours = None if shift_raw in (None, "", "None") else check_shift_hours(shift_raw)
    rows: list[tuple[str, int]] = []
    if shift_hours is not None:
        windows = points["windows"] if "windows" in points.columns else pd.Series([""] * len(points))
        for site, text in zip(ids, windows.fillna("").astype(str), strict=True):
            rows.extend((site, parse_window(label, shift_hours)) for label in text.split(",") if label.strip())
        per_day = None
        teams = len(rows)
    else:
        per_day = 8.0 if hours_per_day is None else float(hours_per_day)
        if not 0 < per_day <= 24:
            raise ValidationError(f"hours_per_day: between 0 and 24 hours, got {hours_per_day!r}",
                                  [Problem("bad hours per day", column="hours_per_day", value=hours_per_day)])
        teams = len(ids)
    shifts = pd.DataFrame(rows, columns=["site_id", "block"]).astype({"block": np.int64})
    kept = {k: v for k, v in params.items() if k not in ("pairs",)}
    return Operation(name, first, last, int(teams), radius, table, shifts, shift_hours, per_day, kept)


def to_body(op: Operation) -> str:
    """The operation as the JSON document the store keeps."""
    return json.dumps({
        "version": BODY_VERSION, "name": op.name, "start": op.start.isoformat(), "end": op.end.isoformat(),
        "teams": op.teams, "radius_m": op.radius_m, "shift_hours": op.shift_hours, "hours_per_day": op.hours_per_day,
        "sites": [{"site_id": s, "rank": int(r), "x": float(g.x), "y": float(g.y)}
                  for s, r, g in zip(op.sites["site_id"], op.sites["rank"], op.sites.geometry, strict=True)],
        "shifts": [{"site_id": str(s), "block": int(b)} for s, b in zip(op.shifts["site_id"], op.shifts["block"],
                                                                       strict=True)],
        "plan": op.plan,
    }, default=str, allow_nan=False)


def from_body(listed: dict[str, Any], body: str) -> Operation:
    """The operation a store row holds (:meth:`EventStore.operation`)."""
    doc = json.loads(body)
    sites = gpd.GeoDataFrame(
        {"site_id": [s["site_id"] for s in doc["sites"]], "rank": [int(s["rank"]) for s in doc["sites"]]},
        geometry=gpd.points_from_xy([s["x"] for s in doc["sites"]], [s["y"] for s in doc["sites"]]), crs=WORKING_CRS)
    shifts = pd.DataFrame(doc["shifts"], columns=["site_id", "block"]).astype({"block": np.int64})
    return Operation(str(listed.get("name", doc["name"])), dt.date.fromisoformat(doc["start"]),
                     dt.date.fromisoformat(doc["end"]), int(doc["teams"]), float(doc["radius_m"]), sites, shifts,
                     doc.get("shift_hours"), doc.get("hours_per_day"), dict(doc.get("plan") or {}),
                     listed.get("created"), listed.get("user"))


def save_operation(store: Any, op: Operation, *, user: str) -> None:
    """Save ``op`` in ``store`` and audit it; a taken name is a :class:`ValidationError` naming ``name``."""
    created = dt.datetime.now(dt.timezone.utc)
    if not store.add_operation(op.name, to_body(op), user=user, created=created, start_date=op.start.isoformat(),
                               end_date=op.end.isoformat()):
        raise ValidationError(f"name: an operation named {op.name!r} exists already",
                              [Problem("name taken", column="name", value=op.name)])
    store.audit("operation", user=user, detail={"what": "saved", "name": op.name, "start": op.start.isoformat(),
                                                "end": op.end.isoformat(), "teams": op.teams,
                                                "sites": [str(s) for s in op.sites["site_id"]]})


def load_operation(store: Any, name: str) -> Operation:
    """The saved operation ``name``; :class:`NotFoundError` when there is none."""
    found = store.operation(name)
    if found is None:
        raise NotFoundError(f"no operation named {name!r}; 'geo-ibm operations list' shows them")
    return from_body(*found)


def periods(op: Operation, *, baseline_weeks: int = 8) -> dict[str, tuple[dt.date, dt.date] | None]:
    """The days an evaluation reads: ``operation``, ``baseline`` (the weeks before it) and ``forecast``
    (the plan's own period, ``None`` when the plan did not say)."""
    weeks = _baseline_weeks(baseline_weeks)
    out: dict[str, tuple[dt.date, dt.date] | None] = {
        "operation": (op.start, op.end),
        "baseline": (op.start - dt.timedelta(days=7 * weeks), op.start - dt.timedelta(days=1)),
        "forecast": None,
    }
    plan_from, plan_to = op.plan.get("from"), op.plan.get("to")
    if plan_from and plan_to:
        try:
            out["forecast"] = (parse_day(str(plan_from)), parse_day(str(plan_to)))
        except ValidationError:
            out["forecast"] = None
    return out


def _baseline_weeks(weeks: object) -> int:
    if isinstance(weeks, bool) or not isinstance(weeks, int | np.integer) or not 1 <= int(weeks) <= MAX_BASELINE_WEEKS:
        raise ValidationError(f"baseline_weeks: a whole number of weeks from 1 to {MAX_BASELINE_WEEKS}, got {weeks!r}",
                              [Problem("bad baseline", column="baseline_weeks", value=weeks)])
    return int(weeks)


def team_hours(op: Operation) -> np.ndarray:
    """Team-hours worked at each site of ``op.sites`` over the operation's days."""
    if op.shift_hours is None:
        return np.full(len(op.sites), float(op.hours_per_day or 0.0) * op.days)
    hours = pd.date_range(pd.Timestamp(op.start, tz=LOCAL_TZ), pd.Timestamp(op.end + dt.timedelta(days=1), tz=LOCAL_TZ),
                          freq="h", inclusive="left")
    per_block = np.bincount(hour_of_week(pd.Series(hours)) // op.shift_hours,
                            minlength=HOURS_PER_WEEK // op.shift_hours).astype(float)
    worked = op.shifts.assign(hours=per_block[op.shifts["block"].to_numpy(np.int64)])
    by_site = worked.groupby("site_id")["hours"].sum()
    return op.sites["site_id"].map(by_site).fillna(0.0).to_numpy(float)


def _covered_site(op: Operation, xy: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Per event the row in ``op.sites`` of the nearest site covering it (in reach and, for shifts, in a shift), or -1."""
    site_xy = np.column_stack([op.sites.geometry.x.to_numpy(), op.sites.geometry.y.to_numpy()])
    out = np.full(len(xy), -1, dtype=np.int64)
    if not len(xy):
        return out
    tree = cKDTree(site_xy)
    if op.shift_hours is None:
        dist, nearest = tree.query(xy, distance_upper_bound=op.radius_m)
        ok = np.isfinite(dist)
        out[ok] = nearest[ok]
        return out
    row_of = {s: k for k, s in enumerate(op.sites["site_id"])}
    worked = np.zeros((len(site_xy), HOURS_PER_WEEK // op.shift_hours), dtype=bool)
    worked[[row_of[s] for s in op.shifts["site_id"]], op.shifts["block"].to_numpy(np.int64)] = True
    block = hours // op.shift_hours
    best = np.full(len(xy), np.inf)
    for event, sites in enumerate(tree.query_ball_point(xy, op.radius_m)):
        for site in sites:
            if worked[site, block[event]]:
                d = float(np.hypot(*(xy[event] - site_xy[site])))
                if d < best[event]:
                    best[event], out[event] = d, site
    return out


def _in_days(times: pd.Series, days: tuple[dt.date, dt.date] | None) -> np.ndarray:
    if days is None:
        return np.zeros(len(times), dtype=bool)
    local = times.dt.tz_convert(LOCAL_TZ).dt.date
    return ((local >= days[0]) & (local <= days[1])).to_numpy(bool)


def evaluate_operation(op: Operation, events: gpd.GeoDataFrame, *, baseline_weeks: int = 8) -> Evaluation:
    """How well ``op`` did: per site and in total (see the module docstring).

    Parameters
    ----------
    events
        Every event of the :func:`periods` (more is ignored): ``observed_at`` (tz-aware),
        ``persons``, ``operation_id``, point geometry in EPSG:2169.

    Returns
    -------
    Evaluation
        ``sites``: :data:`SITE_COLUMNS` and ``geometry`` per site in rank order, then a row
        ``site_id = 'elsewhere'`` (no geometry) for tagged events out of every site's reach or
        shifts. ``team_hours``; ``operation_events``/``operation_persons``: tagged events of the
        period (attributed to the site covering them); ``events_per_team_hour``;
        ``covered_events``: every covered event of the period; ``forecast_events`` and
        ``baseline_events``: covered events per day in the plan's period and in the baseline
        weeks, times the operation's days (NaN when that period is unknown or empty);
        ``vs_forecast_pct``/``vs_baseline_pct``: ``covered_events`` against them, in %.
        ``summary``: the totals, ``national_events`` (every event of the period) and
        ``share_of_national_pct`` (the tagged events' share), the periods used.
    """
    spans = periods(op, baseline_weeks=baseline_weeks)
    if events.empty:
        times = pd.Series(pd.DatetimeIndex([], tz=LOCAL_TZ))
        xy = np.zeros((0, 2))
        persons = np.zeros(0)
        tagged = np.zeros(0, dtype=bool)
    else:
        times = pd.to_datetime(events["observed_at"]).reset_index(drop=True)
        if times.dt.tz is None:
            times = times.dt.tz_localize(LOCAL_TZ)
        xy = np.column_stack([events.geometry.x.to_numpy(), events.geometry.y.to_numpy()])
        persons = pd.to_numeric(events["persons"], errors="coerce").fillna(0).to_numpy(float)
        tagged = events["operation_id"].fillna("").astype(str).str.strip().str.lower().to_numpy() == op.name.lower()
    hours = hour_of_week(times.dt.tz_convert(LOCAL_TZ)) if len(times) else np.zeros(0, dtype=np.int64)
    site = _covered_site(op, xy, hours)
    during = _in_days(times, spans["operation"])
    n_sites = len(op.sites)

    def per_site(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        hit = mask & (site >= 0)
        return np.bincount(site[hit], weights=None if weights is None else weights[hit], minlength=n_sites)

    def rate(span: str) -> tuple[np.ndarray, float]:
        days = spans[span]
        if days is None:
            return np.full(n_sites, np.nan), float("nan")
        length = (days[1] - days[0]).days + 1
        return per_site(_in_days(times, days)) / length * op.days, float(length)

    hours_worked = team_hours(op)
    op_events = per_site(during & tagged).astype(float)
    op_persons = per_site(during & tagged, persons)
    covered = per_site(during).astype(float)
    forecast, forecast_days = rate("forecast")
    baseline, _ = rate("baseline")
    with np.errstate(divide="ignore", invalid="ignore"):
        table = pd.DataFrame({
            "site_id": op.sites["site_id"].to_numpy(), "rank": op.sites["rank"].to_numpy(),
            "team_hours": hours_worked, "operation_events": op_events, "operation_persons": op_persons,
            "events_per_team_hour": np.where(hours_worked > 0, op_events / hours_worked, np.nan),
            "covered_events": covered, "forecast_events": forecast, "baseline_events": baseline,
            "vs_forecast_pct": np.where(forecast > 0, 100.0 * (covered - forecast) / forecast, np.nan),
            "vs_baseline_pct": np.where(baseline > 0, 100.0 * (covered - baseline) / baseline, np.nan),
        })
    away = during & tagged & (site < 0)
    elsewhere = {c: np.nan for c in SITE_COLUMNS} | {"site_id": "elsewhere", "rank": 0, "team_hours": 0.0,
                                                     "operation_events": float(away.sum()),
                                                     "operation_persons": float(persons[away].sum())}
    geometry = [*op.sites.geometry.to_numpy(), None]
    table = pd.concat([table, pd.DataFrame([elsewhere])], ignore_index=True)
    out = gpd.GeoDataFrame(table, geometry=geometry, crs=WORKING_CRS)
    total_hours = float(hours_worked.sum())
    n_tagged = int((during & tagged).sum())
    national = int(during.sum())
    sum_forecast, sum_baseline, sum_covered = float(np.nansum(forecast)), float(np.nansum(baseline)), float(covered.sum())
    summary: dict[str, Any] = {
        "name": op.name, "start": op.start.isoformat(), "end": op.end.isoformat(), "days": op.days,
        "teams": op.teams, "team_hours": total_hours, "operation_events": n_tagged,
        "operation_persons": float(persons[during & tagged].sum()),
        "events_per_team_hour": n_tagged / total_hours if total_hours else None,
        "persons_per_team_hour": float(persons[during & tagged].sum()) / total_hours if total_hours else None,
        "national_events": national,
        "share_of_national_pct": 100.0 * n_tagged / national if national else None,
        "covered_events": sum_covered,
        "forecast_events": sum_forecast if spans["forecast"] is not None else None,
        "baseline_events": sum_baseline,
        "vs_forecast_pct": 100.0 * (sum_covered - sum_forecast) / sum_forecast
        if spans["forecast"] is not None and sum_forecast else None,
        "vs_baseline_pct": 100.0 * (sum_covered - sum_baseline) / sum_baseline if sum_baseline else None,
        "tagged_elsewhere": int(away.sum()),
        "baseline_period": [d.isoformat() for d in spans["baseline"] or ()],
        "forecast_period": [d.isoformat() for d in spans["forecast"] or ()],
        "forecast_days": forecast_days,
        "radius_m": op.radius_m, "shift_hours": op.shift_hours, "hours_per_day": op.hours_per_day,
    }
    mine = np.flatnonzero(during & tagged)
    ids = op.sites["site_id"].astype(str).to_numpy()
    points = gpd.GeoDataFrame(
        {"observed_at": times.iloc[mine].to_numpy() if len(mine) else times.iloc[:0].to_numpy(),
         "persons": persons[mine], "site": np.where(site[mine] >= 0, ids[np.maximum(site[mine], 0)], ""),
         "weight": np.ones(len(mine))},
        geometry=gpd.points_from_xy(xy[mine, 0], xy[mine, 1]) if len(mine) else [], crs=WORKING_CRS)
    return Evaluation(out, summary, points)


def evaluation_events(store: Any, op: Operation, *, baseline_weeks: int = 8) -> gpd.GeoDataFrame:
    """The events :func:`evaluate_operation` needs from ``store``, counted before they are read."""
    spans = [s for s in periods(op, baseline_weeks=baseline_weeks).values() if s is not None]
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    count = store.count(start=first.isoformat(), end=last.isoformat())
    if count > MAX_EVALUATED_EVENTS:
        raise ValidationError(
            f"baseline_weeks: the evaluation would read {count:,} events ({first} to {last}), more than "
            f"{MAX_EVALUATED_EVENTS:,}; shorten the baseline", [Problem("too many events", column="baseline_weeks",
                                                                        value=baseline_weeks)])
    return store.events(start=first.isoformat(), end=last.isoformat(),
                        columns=["observed_at", "persons", "operation_id"])
