"""Key figures of a quarter: counts by category, their change against two comparison quarters, and its test."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.periods import quarter_bounds

BREAKDOWNS: tuple[str, ...] = ("entry_country", "transport_mode", "location_kind", "destination_country", "nationality")
"""Categories the key figures are broken down by (``nationality``: one code of ``nationalities``)."""

MEASURES: tuple[str, ...] = ("events", "persons", "smugglers")


def quarter_days(quarter: str) -> int:
    """Number of calendar days of ``quarter`` (``"2026Q3"`` -> 92)."""
    start, end = quarter_bounds(quarter)
    return int(round((end - start).total_seconds() / 86_400))


def poisson_change_p(count: int, other: int, *, exposure: float = 1.0, other_exposure: float = 1.0) -> float:
    """Two-sided p-value that two Poisson counts have the same rate per unit of exposure.

    The exact conditional test: given ``count + other = n``, under equal rates ``count`` is
    binomial with ``n`` trials and success probability ``exposure / (exposure + other_exposure)``;
    the p-value is that binomial test's (:func:`scipy.stats.binomtest`, the "two-sided" rule of
    summing the probabilities no larger than the observed one). 1.0 when both counts are 0.

    Raises
    ------
    ValidationError
        A negative count or a non-positive exposure.
    """
    if count < 0 or other < 0:
        raise ValidationError(f"counts must not be negative, got {count} and {other}",
                              [Problem("negative", column="count", value=min(count, other))])
    if not (exposure > 0 and other_exposure > 0):
        raise ValidationError("exposures must be positive", [Problem("not positive", column="exposure")])
    n = int(count) + int(other)
    if n == 0:
        return 1.0
    share = float(exposure) / (float(exposure) + float(other_exposure))
    return float(stats.binomtest(int(count), n, share, alternative="two-sided").pvalue)


def significance_mark(p: float | None) -> str:
    """``"**"`` below 0.01, ``"*"`` below 0.05, ``""`` otherwise, ``"–"`` when not tested (``None``/NaN)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return ""


def nationality_rows(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (interception, recorded nationality): ``nationality``, ``persons``, ``smugglers``, ``single``.

    ``single`` is true where the interception records that one nationality only (its persons
    can then be attributed to it).
    """
    if "nationalities" not in events.columns or len(events) == 0:
        return pd.DataFrame({"nationality": pd.Series(dtype=object), "persons": pd.Series(dtype=np.int64),
                             "smugglers": pd.Series(dtype=np.int64), "single": pd.Series(dtype=bool)})
    codes = events["nationalities"].astype(object).where(events["nationalities"].notna(), None)
    lists = codes.map(lambda v: [c for c in str(v).split(";") if c.strip()] if v is not None else [])
    frame = pd.DataFrame({
        "nationality": lists,
        "persons": pd.to_numeric(events["persons"]).to_numpy(dtype=np.int64),
        "smugglers": pd.to_numeric(events["smugglers"]).to_numpy(dtype=np.int64),
        "single": lists.map(len).to_numpy() == 1,
    }).explode("nationality")
    return frame.dropna(subset=["nationality"]).reset_index(drop=True)


def breakdown(events: pd.DataFrame, by: str) -> pd.DataFrame:
    """Interceptions, persons and suspected smugglers per category of ``by`` (one of :data:`BREAKDOWNS`).

    Events without a value (destination or nationalities not recorded) are left out.

    Returns
    -------
    pandas.DataFrame
        Index: the categories (sorted by interceptions, then name); columns ``events``,
        ``persons``, ``smugglers``.
    """
    if by not in BREAKDOWNS:
        raise ValidationError(f"by must be one of {', '.join(BREAKDOWNS)}, got {by!r}",
                              [Problem("unknown breakdown", column="by", value=by)])
    if by == "nationality":
        frame = nationality_rows(events)[["nationality", "persons", "smugglers"]]
    elif by in events.columns:
        frame = pd.DataFrame({
            by: events[by].astype(object).where(events[by].notna(), None).to_numpy(),
            "persons": pd.to_numeric(events["persons"]).to_numpy(dtype=np.int64),
            "smugglers": pd.to_numeric(events["smugglers"]).to_numpy(dtype=np.int64),
        }).dropna(subset=[by])
    else:
        frame = pd.DataFrame({by: pd.Series(dtype=object), "persons": pd.Series(dtype=np.int64),
                              "smugglers": pd.Series(dtype=np.int64)})
    grouped = frame.groupby(by).agg(events=("persons", "size"), persons=("persons", "sum"), smugglers=("smugglers", "sum"))
    grouped = grouped.astype(np.int64)
    grouped.index = grouped.index.astype(str)
    per_category = {str(k): int(v) for k, v in grouped["events"].items()}
    order = sorted(grouped.index, key=lambda k: (-per_category[k], k))
    return grouped.loc[order]


def totals(events: pd.DataFrame) -> dict[str, int]:
    """``events``, ``persons``, ``smugglers`` of the whole selection."""
    if len(events) == 0:
        return {"events": 0, "persons": 0, "smugglers": 0}
    return {"events": int(len(events)), "persons": int(pd.to_numeric(events["persons"]).sum()),
            "smugglers": int(pd.to_numeric(events["smugglers"]).sum())}


@dataclass(frozen=True)
class QuarterComparison:
    """A count in the report quarter against the previous quarter and the same quarter a year before.

    ``p_previous``/``p_year`` are :func:`poisson_change_p` (per day of each quarter) for counts
    of interceptions, ``None`` for persons and smugglers (counted in groups, not tested).
    """

    label: str
    current: int
    previous: int
    year_before: int
    p_previous: float | None
    p_year: float | None


def compare(label: str, current: int, previous: int, year_before: int, *, days: tuple[int, int, int],
            tested: bool) -> QuarterComparison:
    """One :class:`QuarterComparison`; ``days``: the lengths of the current, previous and year-before quarters."""
    p_prev = poisson_change_p(current, previous, exposure=days[0], other_exposure=days[1]) if tested else None
    p_year = poisson_change_p(current, year_before, exposure=days[0], other_exposure=days[2]) if tested else None
    return QuarterComparison(label, int(current), int(previous), int(year_before), p_prev, p_year)


def compare_breakdown(by: str, current: pd.DataFrame, previous: pd.DataFrame, year_before: pd.DataFrame, *,
                      days: tuple[int, int, int]) -> list[QuarterComparison]:
    """Interceptions per category of ``by`` compared across the three quarters (categories of the report quarter first)."""
    now, prev, year = breakdown(current, by), breakdown(previous, by), breakdown(year_before, by)
    labels = list(now.index) + [k for k in list(prev.index) + list(year.index) if k not in now.index]
    labels = list(dict.fromkeys(labels))

    def get(table: pd.DataFrame, key: str) -> int:
        return int(table["events"].get(key, 0))

    return [compare(k, get(now, k), get(prev, k), get(year, k), days=days, tested=True) for k in labels]


def change_text(current: int, other: int, mark: str, *, lang: str) -> str:
    """``"+12 (+8 %) **"``: the difference, the relative change when ``other`` > 0, and the mark."""
    from geo_ibm.reportdoc.strings import number

    diff = current - other
    sign = "+" if diff > 0 else ("−" if diff < 0 else "±")
    text = f"{sign}{number(abs(diff), lang)}"
    if other > 0:
        pct = 100.0 * diff / other
        psign = "+" if pct > 0 else ("−" if pct < 0 else "±")
        text += f" ({psign}{number(abs(pct), lang)} %)"
    if mark and mark != "–":
        text += f" {mark}"
    return text


@dataclass(frozen=True)
class CountDisplay:
    """How the report prints counts: exact, or protected for aggregates-only readers.

    With a :class:`geo_ibm.disclosure.DisclosureRule` every count goes through
    :func:`geo_ibm.disclosure.protect_counts` (1 … ``min_count − 1`` printed as ``< min_count``,
    others rounded), changes are differences of protected counts and no significance mark is
    printed (a p-value of two exact counts would tell more than the rounded counts do).
    """

    lang: str
    rule: Any = None

    def value(self, count: Any) -> float | None:
        """``count`` as shown (``None`` when suppressed)."""
        if self.rule is None:
            return float(count)
        from geo_ibm.disclosure import protect_counts

        shown = float(protect_counts([float(count)], self.rule)[0])
        return None if math.isnan(shown) else shown

    def text(self, count: Any) -> str:
        """``count`` as printed."""
        from geo_ibm.reportdoc.strings import number

        shown = self.value(count)
        return f"< {self.rule.min_count}" if shown is None else number(shown, self.lang)

    def hides(self, events: Any) -> bool:
        """Whether a count of ``events`` interceptions is suppressed for this reader (then so are the persons
        and smugglers counted with them: they would tell the size of a few interceptions)."""
        return self.rule is not None and self.value(events) is None

    def all_at_least(self, count: Any, least: int) -> bool:
        """Whether every count this reader could have behind ``count``'s printed value is at least ``least``.

        With exact counts, ``count >= least``. A protected count printed as ``v`` stands for every
        count rounding to ``v``: deciding by ``count`` itself would show on which side of ``least``
        the exact count lies (a report that is full at 30 interceptions and short at 29 tells a
        printed "30" apart), so the decision is the same for all of them.
        """
        if self.rule is None:
            return int(count) >= least
        shown = self.value(count)
        if shown is None:
            return False
        lowest = shown if shown <= self.rule.min_count else math.ceil(shown - self.rule.rounding / 2)
        return lowest >= least

    def change(self, count: int, other: int, p: float | None) -> str:
        """The change from ``other`` to ``count`` as printed, with its mark when counts are exact."""
        if self.rule is None:
            return change_text(count, other, significance_mark(p), lang=self.lang)
        a, b = self.value(count), self.value(other)
        if a is None or b is None:
            return "–"
        return change_text(int(a), int(b), "", lang=self.lang)
