"""The report's "Outlook and recommendations" section: next quarter's expected hot spots, how far the
forecast can be trusted (its backtest), and control sites and hours for the next operation.

The forecast is the simplest one the backtests support: next quarter's hot spots are this quarter's
Getis–Ord Gi* hot spots (95 % confidence, FDR). Its trust is measured, not assumed: the same rule
applied to each of the previous quarters (:func:`geo_ibm.forecast.backtest_hotspots`), with the
share of the following quarter's interceptions it caught (hit rate) and its Predictive Accuracy
Index (PAI: hit rate over the share of the area flagged; 1 is what cells picked at random give).
The recommendations are the maximal-covering plan (:func:`geo_ibm.planning.plan.make_plan`) of
the quarter's interceptions, recent ones weighing more, over the shipped candidate sites.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import GeoIbmError
from geo_ibm.periods import quarter_bounds, shift_quarter
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Block, Image, Paragraph, Table
from geo_ibm.reportdoc.strings import number
from geo_ibm.settings import LOCAL_TZ

BACKTEST_QUARTERS = 8
"""Past quarters the forecast rule is tried on (fewer when the data start later)."""
GI_LEVEL = 2
"""Gi* confidence bin a forecast cell must reach (2: 95 %)."""
TEAMS = 5
"""Control sites recommended."""
RADIUS_M = 2_000.0
"""Straight-line reach of a control site for the recommendation (metres)."""
HALF_LIFE_DAYS = 30.0
"""Recency weighting of the quarter's interceptions for the recommendation."""
MIN_EVENTS = 30
"""Fewest interceptions in the quarter for a forecast and recommendations."""


def _pct(value: float, lang: str) -> str:
    return "–" if not np.isfinite(value) else f"{number(100.0 * value, lang, digits=0)} %"


def forecast_blocks(events: gpd.GeoDataFrame, *, quarter: str, area: gpd.GeoDataFrame, area_name: str,
                    footer_period: str, counts: CountDisplay, t: Callable[[str], str]
                    ) -> tuple[list[Block], pd.DataFrame | None]:
    """Backtest table, trust sentence and the map of the expected hot spots (analysts)."""
    from geo_ibm import layers
    from geo_ibm.figures import figure_bytes, static_map
    from geo_ibm.forecast import backtest_hotspots
    from geo_ibm.hotspots import default_cell_size, hotspots_from_events

    lang = counts.lang
    xy = np.column_stack([events.geometry.x.to_numpy(), events.geometry.y.to_numpy()])
    cell, _ = default_cell_size(xy, area)
    quarters = [shift_quarter(quarter, -k) for k in range(BACKTEST_QUARTERS - 1, -1, -1)]
    present = set(pd.PeriodIndex(events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None),
                                 freq="Q").astype(str))
    tried = [q for q in quarters if q in present and shift_quarter(q, -1) in present]
    if not tried:
        return [Paragraph(t("No earlier quarter to test the forecast on: the data start in this quarter."), "note")], None
    backtest = backtest_hotspots(events, study_area=area, cell=cell, method="gi", gi_level=GI_LEVEL, quarters=tried)
    scored = backtest[np.isfinite(backtest["pai"])]
    rows = [[str(r["quarter"]), str(r["train_quarter"]), str(r["predicted_cells"]), _pct(float(r["area_share"]), lang),
             _pct(float(r["hit_rate"]), lang), number(float(r["pai"]), lang, digits=1) if np.isfinite(r["pai"]) else "–"]
            for r in backtest.to_dict("records")]
    table = Table([t("Quarter"), t("Forecast from"), t("Cells"), t("Area"), t("Hit rate"), "PAI"], rows,
                  caption=t("How the forecast did in past quarters"),
                  numeric=[False, False, True, True, True, True])
    blocks: list[Block] = []
    if len(scored):
        blocks.append(Paragraph(t(
            "Next quarter's expected hot spots are this quarter's Gi* hot spots (95 %% confidence, FDR, %(cell)s m "
            "cells). Tried on the %(k)s previous quarters, this forecast caught on average %(hit)s of the next "
            "quarter's interceptions (from %(low)s to %(high)s) on %(area)s of the area: a PAI of %(pai)s, i.e. "
            "%(pai)s times what cells picked at random would catch.") % {
            "cell": number(cell, lang), "k": len(scored), "hit": _pct(float(scored["hit_rate"].mean()), lang),
            "low": _pct(float(scored["hit_rate"].min()), lang), "high": _pct(float(scored["hit_rate"].max()), lang),
            "area": _pct(float(scored["area_share"].mean()), lang),
            "pai": number(float(scored["pai"].mean()), lang, digits=1)}))
    else:
        blocks.append(Paragraph(t("The forecast found no hot spot in the past quarters, so its accuracy is unknown."),
                                "note"))
    blocks.append(table)
    if counts.rule is None:
        current = events[pd.PeriodIndex(events["observed_at"].dt.tz_convert("Europe/Luxembourg").dt.tz_localize(None),
                                        freq="Q").astype(str) == quarter]
        try:
            gi = hotspots_from_events(current, study_area=area, cell=cell)
        except GeoIbmError as exc:
            blocks.append(Paragraph(t("Forecast map not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note"))
            return blocks, backtest
        column = "gi_bin_fdr" if "gi_bin_fdr" in gi.columns else "gi_bin"
        expected = gi[gi[column] >= GI_LEVEL]
        title = f"{t('Expected hot spots next quarter')} – {area_name}"
        fig = static_map(outline=area, borders=layers.internal_borders(), crossings=layers.crossing_points().iloc[:0],
                         hotspots=expected, title=title, period=footer_period, dpi=170, t=t)
        blocks.append(Image(figure_bytes(fig, format="png"), caption=title))
    return blocks, backtest


def recommendation_blocks(events: gpd.GeoDataFrame, *, area: gpd.GeoDataFrame, counts: CountDisplay,
                          t: Callable[[str], str]) -> tuple[list[Block], pd.DataFrame | None]:
    """The recommended control sites and their busiest hours."""
    from geo_ibm.planning.candidates import shipped_candidates
    from geo_ibm.planning.demand import demand_from_events
    from geo_ibm.planning.plan import make_plan

    lang = counts.lang
    candidates = shipped_candidates()
    near = candidates.geometry.distance(area.geometry.union_all()) <= RADIUS_M
    candidates = candidates[near.to_numpy()].reset_index(drop=True)
    candidates.attrs["id_column"] = "site_id"
    if len(candidates) == 0:
        return [Paragraph(t("No candidate control site lies in or near the area."), "note")], None
    teams = min(TEAMS, len(candidates))
    try:
        demand = demand_from_events(events, weight="events", cell=100.0, half_life_days=HALF_LIFE_DAYS)
        plan = make_plan(candidates, demand, teams=teams, radius=RADIUS_M, model="mclp", method="heuristic")
    except GeoIbmError as exc:
        return [Paragraph(t("No recommendation: %(why)s") % {"why": str(exc).splitlines()[0]}, "note")], None
    sites = plan.sites
    share = plan.summary.get("covered_share_events")
    if counts.rule is not None:
        sites = protected_sites(sites, events, min_count=int(counts.rule.min_count))
        share = None if share is None else _coarse_share(float(share))
    blocks: list[Block] = [Paragraph(t(
        "Recommended for the next operation: %(k)s control sites that together are within %(radius)s km of "
        "%(share)s of this quarter's interceptions (recent ones weighing more), with the hours when most of them "
        "happened.") % {"k": teams, "radius": number(RADIUS_M / 1000, lang),
                        "share": "–" if share is None else f"{number(float(share), lang)} %"})]
    rows = [[str(r.rank), str(r.name), t(str(r.kind)), f"{number(float(r.share_events), lang)} %",
             str(r.windows) or "–"] for r in sites.itertuples()]
    blocks.append(Table([t("Rank"), t("Site"), t("Kind"), t("Cumulative share"), t("Busiest hours")], rows,
                        caption=t("Recommended control sites and hours"), numeric=[True, False, False, True, False]))
    keep = [c for c in ("rank", "site_id", "name", "kind", "coord_quality", "share_events", "windows") if c in sites]
    out = pd.DataFrame(sites[keep]).rename(columns={"share_events": "cumulative_share_pct"})
    return blocks, out


SHARE_STEP_PROTECTED = 10.0
"""Percentage step of the shares an aggregates-only reader sees (whole percents of a small area are counts)."""


def _coarse_share(share: float) -> float:
    return float(np.round(share / SHARE_STEP_PROTECTED) * SHARE_STEP_PROTECTED)


def protected_sites(sites: gpd.GeoDataFrame, events: gpd.GeoDataFrame, *, min_count: int) -> gpd.GeoDataFrame:
    """The recommended sites as an aggregates-only reader may see them.

    A site's busiest hours (``windows``, labels such as ``'Mon 08-12'``) keep only the slots in which
    at least ``min_count`` of ``events`` (unweighted, within :data:`RADIUS_M` of the site) happened:
    a slot of one or two interceptions near a named site would date them. Cumulative shares are
    rounded to :data:`SHARE_STEP_PROTECTED` percent.
    """
    from geo_ibm.planning.spacetime import block_label, hour_of_week

    out = sites.copy()
    if len(events) and "windows" in out:
        blocks = hour_of_week(events["observed_at"].dt.tz_convert(LOCAL_TZ)) // 4
        kept = []
        for site, text in zip(out.geometry, out["windows"].fillna("").astype(str), strict=True):
            near = (events.geometry.distance(site) <= RADIUS_M).to_numpy()
            labels, tally = np.unique(blocks[near], return_counts=True)
            enough = {block_label(int(b), 4) for b, n in zip(labels, tally, strict=True) if n >= min_count}
            kept.append(", ".join(w for w in text.split(", ") if w and w in enough))
        out["windows"] = kept
    elif "windows" in out:
        out["windows"] = ""
    if "share_events" in out:
        out["share_events"] = [_coarse_share(float(v)) for v in out["share_events"]]
    return out


def outlook_section(store: Any, *, quarter: str, region: str | None, area: gpd.GeoDataFrame, area_name: str,
                    footer_period: str, counts: CountDisplay, t: Callable[[str], str],
                    ) -> tuple[list[Block], dict[str, pd.DataFrame]]:
    """Forecast and recommendations as report blocks, and their tables (``forecast_backtest.csv``,
    ``recommended_sites.csv``).

    Aggregates-only readers (``counts.rule`` set) get the backtest's rates and the recommended sites
    with their shares in steps of 10 % and only the hours of at least ``min_count`` interceptions
    (:func:`protected_sites`), no map and no count.
    """
    first, _ = quarter_bounds(shift_quarter(quarter, -BACKTEST_QUARTERS))
    _, last = quarter_bounds(quarter)
    events = store.events(start=first, end=last, region=region, columns=["observed_at", "persons"])
    this_start, _ = quarter_bounds(quarter)
    current = events[events["observed_at"] >= this_start]
    if len(current) < MIN_EVENTS:
        return [Paragraph(t("Only %(n)s interceptions in the quarter: too few for a forecast or recommendations "
                            "(at least %(min)s).") % {"n": counts.text(len(current)), "min": MIN_EVENTS})], {}
    tables: dict[str, pd.DataFrame] = {}
    blocks, backtest = forecast_blocks(events, quarter=quarter, area=area, area_name=area_name,
                                       footer_period=footer_period, counts=counts, t=t)
    if backtest is not None:
        table = pd.DataFrame(backtest)
        if counts.rule is not None:
            table = table.drop(columns=["n_train", "n_test", "hits"])
        tables["forecast_backtest.csv"] = table
    more, sites = recommendation_blocks(current, area=area, counts=counts, t=t)
    blocks.extend(more)
    if sites is not None:
        tables["recommended_sites.csv"] = sites
    return blocks, tables
