"""The report's space-time repetition section: the near-repeat (Knox) table and what it says in plain words."""
from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import pandas as pd

from geo_ibm.errors import GeoIbmError
from geo_ibm.nearrepeat import NearRepeatResult, near_repeat
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Block, Paragraph, Table
from geo_ibm.reportdoc.strings import number

MIN_NEAR_REPEAT_EVENTS = 20
"""Fewest interceptions the section computes a near-repeat table for."""

REPORT_PERMUTATIONS = 199
"""Permutations of the report's table (p-values down to 0.005, so a ** mark can be earned)."""

REPORT_SEED = 0
"""Seed of the report's permutations: a report rebuilt from the same store says the same."""

LISTED_CELLS = 5
"""Most further significant cells the text names."""


def _edge(value: float, lang: str) -> str:
    digits = 0 if float(value).is_integer() else (1 if float(value * 10).is_integer() else 2)
    return number(value, lang, digits=digits)


def _days(value: float, lang: str, t: Callable[[str], str]) -> str:
    return t("1 day") if value == 1 else t("%(n)s days") % {"n": _edge(value, lang)}


def _mark(row: pd.Series) -> str:
    if not bool(row["significant"]):
        return ""
    return "**" if float(row["p_value"]) <= 0.01 else "*"


def _shown(row: pd.Series, counts: CountDisplay) -> bool:
    """Whether a cell's ratio may be printed: always for full detail; for aggregates only, not from a few pairs."""
    observed = int(row["observed"])
    return counts.rule is None or observed == 0 or observed >= counts.rule.min_count


def _ratio_cell(row: pd.Series, *, counts: CountDisplay) -> str:
    if float(row["expected"]) == 0 or not _shown(row, counts):
        return "–"
    mark = _mark(row)
    return number(float(row["knox_ratio"]), counts.lang, digits=2) + (f" {mark}" if mark else "")


def _cell_place(row: pd.Series, *, lang: str, t: Callable[[str], str]) -> str:
    """``"100–200 m and 0–7 days"`` in ``lang``."""
    return t("%(distance)s m and %(days)s days") % {
        "distance": f"{_edge(row['distance_from_m'], lang)}–{_edge(row['distance_to_m'], lang)}",
        "days": f"{_edge(row['days_from'], lang)}–{_edge(row['days_to'], lang)}"}


def _p_text(p: float, lang: str, counts: CountDisplay, t: Callable[[str], str]) -> str:
    if counts.rule is not None:
        # Aggregates-only readers get marks, not p-values (geo_ibm.disclosure, rule 4).
        return t("significant at the 1 % level") if p <= 0.01 else t("significant at the 5 % level")
    return f"p = {number(p, lang, digits=3 if p < 0.01 else 2)}"


def _verdict(result: NearRepeatResult, *, lang: str, t: Callable[[str], str], counts: CountDisplay) -> list[Block]:
    table = result.table
    first = table.iloc[0]
    within = {"distance": _edge(result.distance_edges[1], lang), "days": _days(result.time_edges[1], lang, t)}
    observed, ratio, p = int(first["observed"]), float(first["knox_ratio"]), float(first["p_value"])
    if not _shown(first, counts):
        text = t("Fewer than %(min)s pairs of interceptions were within %(distance)s m and %(days)s of each other: too "
                 "few to say whether near repeats are more likely than chance.") % {**within, "min": counts.rule.min_count}
    elif observed == 0:
        text = t("No two interceptions were within %(distance)s m and %(days)s of each other, so no near repeat was "
                 "seen at this range.") % within
    elif bool(first["significant"]):
        text = t("Within %(distance)s m and %(days)s of an interception, another one is %(ratio)s times as likely as "
                 "chance would give (%(p)s).") % {**within, "ratio": number(ratio, lang, digits=1),
                                                  "p": _p_text(p, lang, counts, t)}
    else:
        detail = (t("Knox ratio %(ratio)s, not significant") % {"ratio": number(ratio, lang, digits=2)}
                  if counts.rule is not None else
                  t("Knox ratio %(ratio)s, %(p)s") % {"ratio": number(ratio, lang, digits=2),
                                                      "p": _p_text(p, lang, counts, t)})
        text = t("Within %(distance)s m and %(days)s of an interception, another one is no more likely than chance "
                 "would give (%(detail)s): no near-repeat pattern at this range.") % {**within, "detail": detail}
    blocks: list[Block] = [Paragraph(text, "lead")]
    others = [row for _, row in table.iloc[1:].iterrows() if bool(row["significant"]) and _shown(row, counts)]
    if others:
        places = "; ".join(_cell_place(row, lang=lang, t=t) for row in others[:LISTED_CELLS])
        if len(others) > LISTED_CELLS:
            places += t(" and %(more)s more cells") % {"more": len(others) - LISTED_CELLS}
        sentence = (t("Near repeats are also more frequent than chance at %(places)s.") if bool(first["significant"])
                    else t("Near repeats are more frequent than chance at %(places)s.")) % {"places": places}
        blocks.append(Paragraph(sentence))
    return blocks


def near_repeat_section(events: gpd.GeoDataFrame, *, lang: str, t: Callable[[str], str],
                        counts: CountDisplay) -> list[Block]:
    """The blocks of the report's near-repeat section for ``events`` (one area's quarter).

    A plain-words verdict on the nearest cell (within the first distance and time band, as
    :data:`geo_ibm.nearrepeat.DEFAULT_DISTANCE_BANDS` and ``DEFAULT_TIME_BANDS`` set them),
    the further significant cells, the table of Knox ratios with ``*``/``**`` marks
    (:data:`REPORT_PERMUTATIONS` permutations, seed :data:`REPORT_SEED`) and a note on the
    method. With full detail (``counts.rule`` is ``None``) a second table gives the pairs
    observed and expected and the text gives p-values. For aggregates-only readers
    (``counts.rule`` set) no pair count is printed, marks replace p-values, and a cell built
    from 1 to ``min_count − 1`` pairs shows no ratio (a pair of interceptions close in space
    and time is as telling as a count of one).

    Parameters
    ----------
    events
        The area's interceptions of the quarter (EPSG:2169, ``observed_at``).
    lang
        ``"en"`` or ``"fr"`` (number formats).
    t
        The report's translator (:func:`geo_ibm.reportdoc.strings.translator`).
    counts
        How counts are shown (:class:`~geo_ibm.reportdoc.figures.CountDisplay`).

    Returns
    -------
    list of Block
        With fewer than :data:`MIN_NEAR_REPEAT_EVENTS` interceptions, no pair within the
        largest band, or a table over the cost limits, one short paragraph saying so.
    """
    n = len(events)
    if n < MIN_NEAR_REPEAT_EVENTS:
        return [Paragraph(t("Only %(n)s interceptions: too few for a near-repeat analysis, which needs at least "
                            "%(min)s.") % {"n": counts.text(n), "min": MIN_NEAR_REPEAT_EVENTS})]
    try:
        result = near_repeat(events, permutations=REPORT_PERMUTATIONS, seed=REPORT_SEED)
    except GeoIbmError as exc:
        return [Paragraph(t("The near-repeat table was not computed: %(why)s.") % {
            "why": str(exc).splitlines()[0]}, "note")]
    if result.reason is not None:
        return [Paragraph(t("No two interceptions were less than %(distance)s m apart, so no near repeat can be "
                            "measured.") % {"distance": _edge(result.distance_edges[-1], lang)})]
    table = result.table
    n_t = len(result.time_edges) - 1
    time_labels = [t("%(from)s–%(to)s days") % {"from": _edge(a, lang), "to": _edge(b, lang)}
                   for a, b in zip(result.time_edges[:-1], result.time_edges[1:])]
    distance_labels = [f"{_edge(a, lang)}–{_edge(b, lang)} m"
                       for a, b in zip(result.distance_edges[:-1], result.distance_edges[1:])]
    cells = [_ratio_cell(row, counts=counts) for _, row in table.iterrows()]
    blocks = _verdict(result, lang=lang, t=t, counts=counts)
    blocks.append(Table([t("Distance"), *time_labels],
                        [[label, *cells[k * n_t:(k + 1) * n_t]] for k, label in enumerate(distance_labels)],
                        caption=t("Knox ratios of pairs of interceptions by distance and time apart")))
    if counts.rule is None:
        pairs = [f"{number(o, lang)} ({number(e, lang, digits=1)})"
                 for o, e in zip(table["observed"].to_numpy(), table["expected"].to_numpy())]
        blocks.append(Table([t("Distance"), *time_labels],
                            [[label, *pairs[k * n_t:(k + 1) * n_t]] for k, label in enumerate(distance_labels)],
                            caption=t("Pairs of interceptions observed (expected by chance)")))
    note = t("Knox ratio: the pairs of interceptions observed in a distance and time band over the pairs expected "
             "when the dates are shuffled among the places (%(permutations)s permutations, as Ratcliffe's Near Repeat "
             "Calculator); ** p ≤ 0.01, * p ≤ 0.05 for ratios above 1; a band holds its lower edge, not its upper "
             "one. With %(cells)s cells, about one in twenty is marked by chance alone.") % {
        "permutations": number(REPORT_PERMUTATIONS, lang), "cells": len(table)}
    if counts.rule is not None:
        note += " " + t("Cells of fewer than %(min)s pairs show no ratio (–).") % {"min": counts.rule.min_count}
    blocks.append(Paragraph(note, "note"))
    return blocks
