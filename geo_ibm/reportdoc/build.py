"""The quarterly IBM analysis report of one area (the nation or a police region): its document, then its files.

:func:`build_report` reads one quarter, the quarter before and the same quarter a year before
from the store and assembles a :class:`~geo_ibm.reportdoc.model.Document` and its annex tables;
:func:`write_quarterly_report` renders them as ``report.html`` and ``report.pdf`` with the
tables as CSV files, for the nation, one region or every region.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.periods import parse_quarter, quarter_bounds, shift_quarter
from geo_ibm.reportdoc import charts
from geo_ibm.reportdoc.figures import (
    QuarterComparison,
    breakdown,
    change_text,
    compare,
    compare_breakdown,
    nationality_rows,
    quarter_days,
    significance_mark,
    totals,
)
from geo_ibm.reportdoc.model import Block, Document, Image, Paragraph, Section, Table
from geo_ibm.reportdoc.strings import check_language, code_label, number, translator
from geo_ibm.settings import LOCAL_TZ, OSM_ATTRIBUTION

Progress = Callable[[float, str], None]
"""``progress(fraction, message)``, as the planning jobs take it."""

MIN_ANALYSIS_EVENTS = 30
"""Fewest interceptions of a quarter for maps, hot spots and charts (Gi* needs at least 30 events)."""

TREND_QUARTERS = 12
"""Quarters of history the monthly trend covers (24 months or more give it calendar-month effects)."""

TOP_HOTSPOTS = 10
"""Rows of the top hot spot table."""

NATIONAL = "national"
"""Folder (and area key) of the national report."""


@dataclass(frozen=True)
class AreaReport:
    """One area's report before rendering: the document and its tables for CSV files (file name -> table)."""

    area: str
    document: Document
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    events: int = 0


def _region_names() -> list[str]:
    from geo_ibm.layers import police_regions

    return [str(r) for r in police_regions()["region"]]


def resolve_regions(region: str | None) -> list[str | None]:
    """The areas ``region`` asks for: ``None`` -> the nation; ``"all"`` -> the nation and every police region; a name -> that region.

    Raises
    ------
    ValidationError
        An unknown region (the problem names ``region`` and lists the known ones).
    """
    names = _region_names()
    if region is None:
        return [None]
    if str(region).strip().lower() == "all":
        return [None, *names]
    match = [n for n in names if n.lower() == str(region).strip().lower()]
    if not match:
        raise ValidationError(f"unknown region {region!r}; use one of {', '.join(names)} or 'all'",
                              [Problem("unknown region", column="region", value=region)])
    return [match[0]]


def _area_layer(region: str | None) -> gpd.GeoDataFrame:
    from geo_ibm.layers import luxembourg_outline, police_regions

    if region is None:
        return luxembourg_outline()
    regions = police_regions()
    return regions[regions["region"] == region].reset_index(drop=True)


def _records(frame: pd.DataFrame) -> list[Any]:
    """The rows of ``frame`` as objects with one attribute per column."""
    return [SimpleNamespace(**{str(k): v for k, v in row.items()}) for row in frame.to_dict("records")]


def _comparison_row(c: QuarterComparison, lang: str) -> list[str]:
    return [c.label, number(c.current, lang), number(c.previous, lang),
            change_text(c.current, c.previous, significance_mark(c.p_previous), lang=lang),
            number(c.year_before, lang), change_text(c.current, c.year_before, significance_mark(c.p_year), lang=lang)]


def _label(lang: str, value: str) -> str:
    return code_label(value, lang)


def _key_figures(current: pd.DataFrame, previous: pd.DataFrame, year: pd.DataFrame, *, quarters: tuple[str, str, str],
                 lang: str, t: Callable[[str], str], full: bool) -> tuple[list[Block], pd.DataFrame]:
    q, pq, yq = quarters
    days = (quarter_days(q), quarter_days(pq), quarter_days(yq))
    columns = [t("Figure"), q, pq, t("Change"), yq, t("Change")]
    now, before, last_year = totals(current), totals(previous), totals(year)
    rows = [
        compare(t("Interceptions"), now["events"], before["events"], last_year["events"], days=days, tested=True),
        compare(t("Persons"), now["persons"], before["persons"], last_year["persons"], days=days, tested=False),
        compare(t("Suspected smugglers"), now["smugglers"], before["smugglers"], last_year["smugglers"], days=days,
                tested=False),
    ]
    blocks: list[Block] = [Table(columns, [_comparison_row(c, lang) for c in rows], caption=t("Totals"))]
    records = [{"breakdown": "total", "category": m, "current": c.current, "previous": c.previous,
                "year_before": c.year_before, "p_previous": c.p_previous, "p_year": c.p_year}
               for m, c in zip(("events", "persons", "smugglers"), rows)]
    if full:
        captions = {
            "entry_country": t("By entry country"), "transport_mode": t("By transport mode"),
            "location_kind": t("By location kind"), "destination_country": t("By destination country (where recorded)"),
            "nationality": t("By nationality (where recorded)"),
        }
        for by, caption in captions.items():
            found = compare_breakdown(by, current, previous, year, days=days)
            if not found:
                continue
            if by == "nationality":
                found = found[:15]
            table_rows = [_comparison_row(QuarterComparison(_label(lang, c.label), c.current, c.previous, c.year_before,
                                                            c.p_previous, c.p_year), lang) for c in found]
            blocks.append(Table([t("Category"), *columns[1:]], table_rows, caption=caption))
            records.extend({"breakdown": by, "category": c.label, "current": c.current, "previous": c.previous,
                            "year_before": c.year_before, "p_previous": c.p_previous, "p_year": c.p_year} for c in found)
    blocks.append(Paragraph(t("Significance: ** p < 0.01, * p < 0.05, exact conditional test of two Poisson counts "
                              "(see the methods annex); – not tested."), "note"))
    return blocks, pd.DataFrame.from_records(records)


def _annex(current: pd.DataFrame, profile_events: pd.DataFrame | None, *, lang: str,
           t: Callable[[str], str]) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    tables: dict[str, pd.DataFrame] = {}
    blocks: list[Block] = []
    nat = nationality_rows(current)
    if len(nat):
        grouped = nat.groupby("nationality").agg(
            events=("persons", "size"), persons=("persons", "sum"),
            persons_single=("persons", lambda s: int(s[nat.loc[s.index, "single"]].sum())),
        ).astype(np.int64).sort_values(["events", "persons"], ascending=False)
        table = grouped.reset_index()
        tables["persons_by_nationality.csv"] = table
        blocks.append(Table([t("Nationality"), t("Interceptions with this nationality"), t("Persons in those interceptions"),
                             t("Persons, single-nationality groups")],
                            [[str(r.nationality), number(r.events, lang), number(r.persons, lang), number(r.persons_single, lang)]
                             for r in _records(table)], caption=t("Persons by nationality")))
    else:
        blocks.append(Paragraph(t("No nationality was recorded in this quarter.")))
    sections = [Section(t("Persons by nationality"), blocks, level=2)]

    frame = pd.DataFrame({"transport_mode": current["transport_mode"].astype(str).to_numpy(),
                          "persons": pd.to_numeric(current["persons"]).to_numpy(dtype=np.int64),
                          "smugglers": pd.to_numeric(current["smugglers"]).to_numpy(dtype=np.int64)})
    fac = frame.groupby("transport_mode").agg(events=("persons", "size"),
                                              with_smuggler=("smugglers", lambda s: int((s > 0).sum())),
                                              smugglers=("smugglers", "sum"), persons=("persons", "sum")).astype(np.int64)
    fac = fac.sort_values("smugglers", ascending=False).reset_index()
    total = pd.DataFrame([{"transport_mode": "total", "events": int(fac["events"].sum()),
                           "with_smuggler": int(fac["with_smuggler"].sum()), "smugglers": int(fac["smugglers"].sum()),
                           "persons": int(fac["persons"].sum())}])
    fac = pd.concat([fac, total], ignore_index=True)
    tables["facilitators.csv"] = fac
    rows = [[code_label(str(r.transport_mode), lang) if r.transport_mode != "total" else t("Totals"), number(r.events, lang),
             number(r.with_smuggler, lang), number(r.smugglers, lang),
             number(r.smugglers / r.events, lang, digits=2) if r.events else "–"] for r in _records(fac)]
    sections.append(Section(t("Suspected facilitators (smugglers)"), [Table(
        [t("Transport mode"), t("Interceptions"), t("Interceptions with a suspected smuggler"), t("Suspected smugglers"),
         t("Smugglers per interception")], rows, caption=t("Suspected facilitators (smugglers)"),
        bold_rows=(len(rows) - 1,))], level=2))

    by_entry = pd.DataFrame({
        "border_section": (profile_events["nearest_border"].astype(str).to_numpy() if profile_events is not None
                           else np.full(len(current), "–", dtype=object)),
        "entry_country": current["entry_country"].astype(str).to_numpy(),
        "persons": pd.to_numeric(current["persons"]).to_numpy(dtype=np.int64),
        "smugglers": pd.to_numeric(current["smugglers"]).to_numpy(dtype=np.int64),
    })
    sec = by_entry.groupby(["border_section", "entry_country"]).agg(
        events=("persons", "size"), persons=("persons", "sum"), smugglers=("smugglers", "sum")).astype(np.int64).reset_index()
    sec["border_section"] = sec["border_section"].map(lambda c: f"LU–{c}" if c in ("BE", "FR", "DE") else c)
    tables["border_sections.csv"] = sec
    sections.append(Section(t("By border section and entry country"), [Table(
        [t("Nearest border section"), t("Entry country"), t("Interceptions"), t("Persons"), t("Suspected smugglers")],
        [[str(r.border_section), _label(lang, str(r.entry_country)), number(r.events, lang), number(r.persons, lang),
          number(r.smugglers, lang)] for r in _records(sec)],
        caption=t("By border section and entry country"), numeric=[False, False, True, True, True])], level=2))
    return sections, tables


def _maps(current: gpd.GeoDataFrame, area: gpd.GeoDataFrame, *, area_name: str, footer_period: str,
          t: Callable[[str], str]) -> tuple[list[Block], dict[str, Any]]:
    from geo_ibm import layers
    from geo_ibm.figures import figure_bytes, report_map

    bounds = area.total_bounds
    crossings = layers.crossing_points()
    crossings = crossings.cx[bounds[0] - 3000:bounds[2] + 3000, bounds[1] - 3000:bounds[3] + 3000]
    # Only what falls on the map is drawn: the neighbours' outlines clipped near the extent cost
    # a fraction of the whole countries' rings to draw.
    view = shapely.box(bounds[0] - 15_000, bounds[1] - 15_000, bounds[2] + 15_000, bounds[3] + 15_000)
    neighbours = layers.neighbour_outlines().clip(view)
    common = dict(outline=area, borders=layers.internal_borders(), crossings=crossings,
                  neighbours=neighbours[~neighbours.is_empty], regions=layers.police_regions(), period=footer_period,
                  dpi=170, t=t)
    blocks: list[Block] = []
    fig = report_map(current, kind="overview", title=f"{t('Overview of the interceptions')} – {area_name}", **common)
    blocks.append(Image(figure_bytes(fig, format="png"), caption=f"{t('Overview of the interceptions')} – {area_name}"))
    params: dict[str, Any] = {}
    try:
        fig = report_map(current, kind="hotspots", title=f"{t('Hot and cold spots (Getis–Ord Gi*, FDR)')} – {area_name}",
                         **common)
        blocks.append(Image(figure_bytes(fig, format="png"),
                            caption=f"{t('Hot and cold spots (Getis–Ord Gi*, FDR)')} – {area_name}"))
    except GeoIbmError as exc:
        blocks.append(Paragraph(t("Hot spot map not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note"))
    return blocks, params


def _top_hotspots(current: gpd.GeoDataFrame, area: gpd.GeoDataFrame, *, lang: str,
                  t: Callable[[str], str]) -> tuple[list[Block], pd.DataFrame | None, dict[str, float]]:
    from geo_ibm.layers import cantons
    from geo_ibm.tables import top_hotspot_cells

    try:
        top = top_hotspot_cells(current, study_area=area, cantons=cantons(), n=TOP_HOTSPOTS)
    except GeoIbmError as exc:
        return [Paragraph(t("Hot spot map not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note")], None, {}
    params = {"cell": float(top["cell_m"].iloc[0]), "band": float(top["band_m"].iloc[0])} if len(top) else {}
    if not len(top):
        return [Paragraph(t("No cell is a significant hot spot after the FDR correction."))], top, params
    rows = [[str(r.rank), str(r.cell_id), str(r.canton), str(r.region), number(r.events, lang),
             number(r.gi_z, lang, digits=2), str(r.confidence)] for r in _records(top)]
    table = Table([t("Rank"), t("Cell"), t("Canton"), t("Region"), t("Events"), "Gi* z", t("Confidence")], rows,
                  caption=t("Top hot spot cells"), numeric=[True, False, False, False, True, True, True])
    return [table], top, params


def _charts(store: Any, current: gpd.GeoDataFrame, *, quarter: str, region: str | None, lang: str,
            t: Callable[[str], str]) -> tuple[list[Section], Any]:
    from geo_ibm import layers
    from geo_ibm.bordergeo import border_distance_profile
    from geo_ibm.trends import hour_weekday, monthly_series

    sections: list[Section] = []
    first = shift_quarter(quarter, -(TREND_QUARTERS - 1))
    start, _ = quarter_bounds(first)
    _, end = quarter_bounds(quarter)
    history = store.events(start=start, end=end, region=region, columns=["observed_at"])
    blocks: list[Block] = []
    try:
        first_month = start.tz_convert(LOCAL_TZ).strftime("%Y-%m")
        last_month = (end - pd.Timedelta(days=1)).strftime("%Y-%m")
        with_history = history if len(history) else current
        monthly = monthly_series(with_history, start=first_month, end=last_month)
        blocks.append(Image(charts.monthly_trend_png(monthly.series, quarter=quarter, seasonal=monthly.seasonal_adjusted, t=t),
                            caption=t("Monthly interceptions")))
        blocks.append(Paragraph(t("Trend over %(months)s months: %(slope)s interceptions per month per year (p = %(p)s)%(seasonal)s.") % {
            "months": len(monthly.series), "slope": number(monthly.slope_per_year, lang, digits=1),
            "p": number(monthly.p_value, lang, digits=3),
            "seasonal": t(", calendar-month effects removed") if monthly.seasonal_adjusted else ""}, "note"))
    except GeoIbmError as exc:
        blocks.append(Paragraph(t("Monthly trend not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note"))
    sections.append(Section(t("Monthly trend"), blocks, level=2))
    sections.append(Section(t("Hour × weekday"), [Image(charts.hour_weekday_png(hour_weekday(current), t=t),
                                                         caption=t("Interceptions by local hour and weekday"))], level=2))
    profile = None
    try:
        borders = layers.internal_borders()
        profile = border_distance_profile(current, borders=borders, crossings=layers.crossing_points())
        names = {str(r.neighbour): str(r.name) for r in _records(borders)}
        sections.append(Section(t("Distance to the border"), [Image(
            charts.border_distance_png(profile.by_neighbour, names=names, t=t),
            caption=t("Interceptions by distance to the nearest internal border"))], level=2))
    except GeoIbmError as exc:
        sections.append(Section(t("Distance to the border"), [Paragraph(str(exc).splitlines()[0], "note")], level=2))
    return sections, profile


def _highlights(current: pd.DataFrame, *, lang: str, t: Callable[[str], str]) -> str:
    """One sentence naming the main entry country, transport mode and kind of place of the quarter."""
    n = len(current)
    parts = []
    for by, label in (("entry_country", t("Main entry country")), ("transport_mode", t("main transport mode")),
                      ("location_kind", t("main kind of place"))):
        table = breakdown(current, by)
        if len(table):
            key = str(table.index[0])
            count = int(table["events"].iloc[0])
            colon = " : " if lang == "fr" else ": "
            parts.append(f"{label}{colon}{code_label(key, lang)} ({number(count, lang)}, {_share(count, n, lang)})")
    return (" ; " if lang == "fr" else "; ").join(parts) + "."


def _share(part: int, whole: int, lang: str) -> str:
    return f"{number(100.0 * part / whole, lang)} %" if whole else "–"


def _methods(current: pd.DataFrame, *, lang: str, t: Callable[[str], str], params: dict[str, float]) -> list[Section]:
    from geo_ibm.tables import DATA_SOURCES

    blocks: list[Block] = []
    if len(current):
        when = pd.to_datetime(current["observed_at"]).dt.tz_convert(LOCAL_TZ)
        blocks.append(Paragraph(t("First and last interception of the quarter: %(first)s – %(last)s.") % {
            "first": f"{when.min():%Y-%m-%d %H:%M}", "last": f"{when.max():%Y-%m-%d %H:%M}"}))
        n = len(current)
        dest = int(current["destination_country"].notna().sum()) if "destination_country" in current else 0
        nat = int(current["nationalities"].notna().sum()) if "nationalities" in current else 0
        reg = int(current["region"].notna().sum()) if "region" in current else 0
        blocks.append(Paragraph(t("Recorded: destination country for %(dest)s of the interceptions, nationalities for "
                                  "%(nat)s, a police region for %(reg)s.") % {
            "dest": _share(dest, n, lang), "nat": _share(nat, n, lang), "reg": _share(reg, n, lang)}))
    sections = [Section(t("Data period and completeness"), blocks, level=2)]
    par: list[Block] = []
    if params:
        par.append(Paragraph(t("Gi* hot spots: square cells of %(cell)s m, distance band %(band)s m, significance by the "
                               "Benjamini–Hochberg false discovery rate at 10/5/1 %%.") % {
            "cell": number(params["cell"], lang), "band": number(params["band"], lang)}))
    par.append(Paragraph(t("The change of a count of interceptions between two quarters is tested with the exact conditional "
                           "test of two Poisson counts: given the total of both quarters, the report quarter's count is "
                           "binomial with the share of days that quarter has; the two-sided p-value is the binomial test's. "
                           "Persons and smugglers come in groups (their variance exceeds their mean), so their totals are "
                           "not tested.")))
    sections.append(Section(t("Parameters"), par, level=2))
    sections.append(Section(t("Caveats"), [Paragraph(t(
        "Interceptions measure police activity as much as migration: a rise can follow more controls. Nationalities are "
        "recorded once per code per interception, so groups of mixed nationality count under each of their nationalities. "
        "Many tests are made in one report; a single * at 5 % is expected by chance now and then. Positions of the "
        "schematic road network and of crossing points are approximate (about 1 km)."))], level=2))
    sources: list[Block] = [Paragraph(f"• {t(s)}") for s in DATA_SOURCES]
    sources.append(Paragraph(t("Map data: %(osm)s.") % {"osm": OSM_ATTRIBUTION}))
    sections.append(Section(t("Data sources and licences"), sources, level=2))
    return sections


def build_report(store: Any, *, quarter: str, region: str | None = None, lang: str = "en",
                 generated_at: datetime | None = None, progress: Progress | None = None) -> AreaReport:
    """The report of one area (``region=None``: the nation) for ``quarter``, not yet rendered.

    Parameters
    ----------
    store
        The event store.
    quarter
        ``"2026Q3"``; compared with the quarter before and the same quarter a year before.
    region
        A police region name, or ``None`` for the whole country.
    lang
        ``"en"`` or ``"fr"``.
    generated_at
        Time printed on the title page (default: now).
    progress
        ``progress(fraction, message)`` between steps.

    Returns
    -------
    AreaReport
        With fewer than :data:`MIN_ANALYSIS_EVENTS` interceptions the document holds the key
        figures and methods only (and says why); with none, a short statement and the
        comparison counts.
    """
    q = parse_quarter(quarter)
    lang = check_language(lang)
    t = translator(lang)
    pq, yq = shift_quarter(q, -1), shift_quarter(q, -4)
    step = progress or (lambda _f, _m: None)
    area_name = t("Luxembourg (national)") if region is None else t("Police region %(region)s") % {"region": region}
    # In sentences: "recorded for Luxembourg" / "for police region Nord" ("pour la région de police Nord").
    area_phrase = t("Luxembourg") if region is None else t("police region %(region)s") % {"region": region}
    start, end = quarter_bounds(q)
    step(0.0, f"{area_name}: reading events")
    current = store.events(quarter=q, region=region)
    previous = store.events(quarter=pq, region=region)
    year = store.events(quarter=yq, region=region)
    when = generated_at or datetime.now(timezone.utc)
    quarter_text = t("Quarter %(quarter)s (%(start)s – %(end)s)") % {
        "quarter": q, "start": f"{start:%Y-%m-%d}", "end": f"{end - pd.Timedelta(days=1):%Y-%m-%d}"}
    footer = f"{t('Quarterly IBM analysis report')} · {area_name} · {q}"
    n = len(current)
    now = totals(current)
    intro: list[Block] = []
    sections: list[Section] = []
    tables: dict[str, pd.DataFrame] = {}
    params: dict[str, float] = {}
    days = (quarter_days(q), quarter_days(pq), quarter_days(yq))
    if n == 0:
        intro.append(Paragraph(t("No interceptions were recorded for %(area)s in %(quarter)s.") % {"area": area_phrase, "quarter": q},
                               "lead"))
        intro.append(Paragraph(t("For comparison: %(previous)s interceptions in %(pq)s and %(year)s in %(yq)s.") % {
            "previous": number(len(previous), lang), "pq": pq, "year": number(len(year), lang), "yq": yq}))
        intro.append(Paragraph(t("This short report therefore holds no maps, charts or tables of the quarter.")))
    else:
        intro.append(Paragraph(t("%(n)s interceptions of %(persons)s persons, among them %(smugglers)s suspected smugglers, "
                                 "were recorded for %(area)s in %(quarter)s.") % {
            "n": number(n, lang), "persons": number(now["persons"], lang), "smugglers": number(now["smugglers"], lang),
            "area": area_phrase, "quarter": q}, "lead"))
        main = compare("", n, len(previous), len(year), days=days, tested=True)

        def verdict(p: float | None) -> str:
            return t(" (significant)") if p is not None and p < 0.05 else t(" (not significant)")

        intro.append(Paragraph(t("Against the previous quarter (%(pq)s): %(change)s interceptions%(mark)s; against %(yq)s: "
                                 "%(ychange)s%(ymark)s.") % {
            "pq": pq, "yq": yq, "change": change_text(n, len(previous), "", lang=lang), "mark": verdict(main.p_previous),
            "ychange": change_text(n, len(year), "", lang=lang), "ymark": verdict(main.p_year)}))
    full = n >= MIN_ANALYSIS_EVENTS
    if 0 < n < MIN_ANALYSIS_EVENTS:
        intro.append(Paragraph(t("Only %(n)s interceptions were recorded for %(area)s in %(quarter)s; maps, hot spots and "
                                 "charts need at least %(min)s, so this report gives the key figures only.") % {
            "n": number(n, lang), "area": area_phrase, "quarter": q, "min": MIN_ANALYSIS_EVENTS}))
    if n:
        intro.append(Paragraph(_highlights(current, lang=lang, t=t)))
    step(0.1, f"{area_name}: key figures")
    key_blocks, key_table = _key_figures(current, previous, year, quarters=(q, pq, yq), lang=lang, t=t, full=n > 0)
    sections.append(Section(t("Key figures"), key_blocks))
    tables["key_figures.csv"] = key_table
    if full:
        area = _area_layer(region)
        step(0.25, f"{area_name}: maps")
        map_blocks, _ = _maps(current, area, area_name=area_name, footer_period=f"{quarter_text} · {area_name}", t=t)
        sections.append(Section(t("Maps"), map_blocks))
        step(0.5, f"{area_name}: hot spots")
        hot_blocks, top, params = _top_hotspots(current, area, lang=lang, t=t)
        sections.append(Section(t("Hot spots"), hot_blocks))
        if top is not None and len(top):
            tables["top_hotspots.csv"] = top
            first = top.iloc[0]
            intro.append(Paragraph(t("Strongest hot spot cell: canton %(canton)s (%(region)s), %(events)s interceptions, "
                                     "%(confidence)s confidence (section 3).") % {
                "canton": first["canton"], "region": first["region"], "events": number(first["events"], lang),
                "confidence": first["confidence"]}))
        step(0.65, f"{area_name}: charts")
        chart_sections, profile = _charts(store, current, quarter=q, region=region, lang=lang, t=t)
        sections.append(Section(t("Charts")))
        sections.extend(chart_sections)
        step(0.85, f"{area_name}: annex")
        annex, annex_tables = _annex(current, profile.events if profile is not None else None, lang=lang, t=t)
        tables.update(annex_tables)
        names = ", ".join(sorted(tables))
        sections.append(Section(t("Statistics annex"), [Paragraph(
            t("Each table is also a CSV file next to this document: %(files)s.") % {"files": names}, "note")]))
        sections.extend(annex)
    sections.append(Section(t("Methods annex")))
    sections.extend(_methods(current, lang=lang, t=t, params=params))
    document = Document(
        title=t("Quarterly IBM analysis report"),
        subtitle=f"{area_name} · {quarter_text}\n" + t("Generated %(when)s from the geo_ibm event store") % {
            "when": f"{when:%Y-%m-%d %H:%M} UTC"},
        lang=lang, footer=footer, contents_title=t("Contents"), page_label=t("Page %(page)s"),
        intro=intro, sections=sections,
    )
    return AreaReport(area=NATIONAL if region is None else region, document=document, tables=tables, events=n)


def _folder_name(area: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in area)


def write_quarterly_report(store: Any, *, quarter: str, region: str | None = None, lang: str = "en",
                           out_dir: str | Path, progress: Progress | None = None) -> list[Path]:
    """Write the quarterly report as ``report.html`` and ``report.pdf`` (and its CSV tables) per area.

    Parameters
    ----------
    store
        The event store.
    quarter
        ``"2026Q3"`` (``"2026-Q3"`` accepted).
    region
        ``None``: the nation, in ``out_dir/national/``; a police region name: that region, in
        ``out_dir/<region>/``; ``"all"``: the nation and every police region.
    lang
        ``"en"`` or ``"fr"``.
    out_dir
        Folder the area folders are made in.
    progress
        ``progress(fraction, message)`` between steps (fraction over all areas).

    Returns
    -------
    list of Path
        Every file written, per area: ``report.html``, ``report.pdf``, then the CSV tables.

    Raises
    ------
    ValidationError
        Bad ``quarter``, ``lang`` or ``region`` (the problem names it), before anything is written.
    """
    from geo_ibm.io import neutralise_formulas, write_table
    from geo_ibm.reportdoc.html import render_html
    from geo_ibm.reportdoc.pdf import render_pdf

    parse_quarter(quarter)
    check_language(lang)
    areas = resolve_regions(region)
    out = Path(out_dir)
    written: list[Path] = []
    when = datetime.now(timezone.utc)
    for index, area in enumerate(areas):
        def sub(fraction: float, message: str, _i: int = index) -> None:
            if progress is not None:
                progress((_i + 0.9 * fraction) / len(areas), message)

        built = build_report(store, quarter=quarter, region=area, lang=lang, generated_at=when, progress=sub)
        folder = out / _folder_name(built.area)
        folder.mkdir(parents=True, exist_ok=True)
        sub(0.95, f"{built.area}: rendering")
        html_path = folder / "report.html"
        html_path.write_text(render_html(built.document), encoding="utf-8")
        pdf_path = folder / "report.pdf"
        pdf_path.write_bytes(render_pdf(built.document))
        written.extend([html_path, pdf_path])
        for name, table in built.tables.items():
            written.append(write_table(neutralise_formulas(table), folder / name))
    if progress is not None:
        progress(1.0, "done")
    return written
