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

from geo_ibm.disclosure import DisclosureRule
from geo_ibm.errors import GeoIbmError, Problem, ValidationError
from geo_ibm.periods import parse_quarter, quarter_bounds, shift_quarter
from geo_ibm.reportdoc import charts
from geo_ibm.reportdoc.emergingmap import emerging_blocks
from geo_ibm.reportdoc.figures import (
    CountDisplay,
    QuarterComparison,
    breakdown,
    compare,
    compare_breakdown,
    nationality_rows,
    quarter_days,
    totals,
)
from geo_ibm.reportdoc.model import Block, Document, Image, Paragraph, Section, Table
from geo_ibm.reportdoc.nearrepeat import near_repeat_section
from geo_ibm.reportdoc.outlook import SHARE_STEP_PROTECTED, outlook_section
from geo_ibm.reportdoc.routes import routes_section
from geo_ibm.reportdoc.strings import check_language, code_label, number, translator
from geo_ibm.settings import LOCAL_TZ, OSM_ATTRIBUTION

Progress = Callable[[float, str], None]
"""``progress(fraction, message)``, as the planning jobs take it."""

MIN_ANALYSIS_EVENTS = 30

MAX_REPORT_EVENTS = 3_000_000
"""Most events one area's report reads (its quarter, the quarter before and the one a year before, all columns);
counted before any is read."""


def check_report_size(store: Any, *, quarter: str, region: str | None) -> None:
    """Refuse, before reading them, a report whose three compared quarters hold more than :data:`MAX_REPORT_EVENTS`."""
    quarters = [quarter, shift_quarter(quarter, -1), shift_quarter(quarter, -4)]
    total = sum(store.count(quarter=q, region=region) for q in quarters)
    if total > MAX_REPORT_EVENTS:
        raise ValidationError(
            f"quarter: the report of {quarter} would read {total:,} events ({', '.join(quarters)}), more than "
            f"{MAX_REPORT_EVENTS:,}; report one police region at a time",
            [Problem("too many events", column="quarter", value=quarter)])
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


def _comparison_row(c: QuarterComparison, counts: CountDisplay, events: QuarterComparison | None = None) -> list[str]:
    """A table row of ``c``; persons and smugglers (``events``: the interceptions they were counted in) are
    "–" in a quarter whose interceptions the reader's counts suppress."""
    if events is None or counts.rule is None:
        return [c.label, counts.text(c.current), counts.text(c.previous),
                counts.change(c.current, c.previous, c.p_previous), counts.text(c.year_before),
                counts.change(c.current, c.year_before, c.p_year)]
    now, before, year = (counts.hides(events.current), counts.hides(events.previous), counts.hides(events.year_before))

    def text(value: int, hidden: bool) -> str:
        return "–" if hidden else counts.text(value)

    return [c.label, text(c.current, now), text(c.previous, before),
            "–" if now or before else counts.change(c.current, c.previous, c.p_previous), text(c.year_before, year),
            "–" if now or year else counts.change(c.current, c.year_before, c.p_year)]


def _label(lang: str, value: str) -> str:
    return code_label(value, lang)


def _key_figures(current: pd.DataFrame, previous: pd.DataFrame, year: pd.DataFrame, *, quarters: tuple[str, str, str],
                 counts: CountDisplay, t: Callable[[str], str], full: bool) -> tuple[list[Block], pd.DataFrame]:
    q, pq, yq = quarters
    lang = counts.lang
    days = (quarter_days(q), quarter_days(pq), quarter_days(yq))
    columns = [t("Figure"), q, pq, t("Change"), yq, t("Change")]
    now, before, last_year = totals(current), totals(previous), totals(year)
    rows = [
        compare(t("Interceptions"), now["events"], before["events"], last_year["events"], days=days, tested=True),
        compare(t("Persons"), now["persons"], before["persons"], last_year["persons"], days=days, tested=False),
        compare(t("Suspected smugglers"), now["smugglers"], before["smugglers"], last_year["smugglers"], days=days,
                tested=False),
    ]
    blocks: list[Block] = [Table(columns, [_comparison_row(c, counts, None if i == 0 else rows[0])
                                           for i, c in enumerate(rows)], caption=t("Totals"))]
    records = [{"breakdown": "total", "category": m, "current": c.current, "previous": c.previous,
                "year_before": c.year_before, "p_previous": c.p_previous, "p_year": c.p_year}
               for m, c in zip(("events", "persons", "smugglers"), rows)]
    if counts.rule is not None:
        # the CSV as the table: no persons or smugglers of a quarter whose interceptions are suppressed
        for record in records[1:]:
            for when in ("current", "previous", "year_before"):
                if counts.hides(records[0][when]):
                    record[when] = np.nan
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
                                                            c.p_previous, c.p_year), counts) for c in found]
            blocks.append(Table([t("Category"), *columns[1:]], table_rows, caption=caption))
            records.extend({"breakdown": by, "category": c.label, "current": c.current, "previous": c.previous,
                            "year_before": c.year_before, "p_previous": c.p_previous, "p_year": c.p_year} for c in found)
    if counts.rule is None:
        blocks.append(Paragraph(t("Significance: ** p < 0.01, * p < 0.05, exact conditional test of two Poisson counts "
                                  "(see the methods annex); – not tested."), "note"))
    else:
        blocks.append(Paragraph(t("Counts are protected for readers of aggregates: %(rule)s; no test of change is shown.")
                                % {"rule": _rule_text(counts.rule, t)}, "note"))
    return blocks, pd.DataFrame.from_records(records)


def _rule_text(rule: Any, t: Callable[[str], str]) -> str:
    return t("counts from 1 to %(below)s suppressed, others rounded to multiples of %(rounding)s") % {
        "below": rule.min_count - 1, "rounding": rule.rounding}


def _annex(current: pd.DataFrame, profile_events: pd.DataFrame | None, *, counts: CountDisplay,
           t: Callable[[str], str]) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    lang = counts.lang
    c = counts.text
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
                            [[str(r.nationality), c(r.events), c(r.persons), c(r.persons_single)]
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
    rows = [[code_label(str(r.transport_mode), lang) if r.transport_mode != "total" else t("Totals"), c(r.events),
             c(r.with_smuggler), c(r.smugglers),
             number(r.smugglers / r.events, lang, digits=2) if r.events and counts.rule is None else "–"]
            for r in _records(fac)]
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
        [[str(r.border_section), _label(lang, str(r.entry_country)), c(r.events), c(r.persons),
          c(r.smugglers)] for r in _records(sec)],
        caption=t("By border section and entry country"), numeric=[False, False, True, True, True])], level=2))
    return sections, tables


def _protected(table: pd.DataFrame, rule: DisclosureRule) -> pd.DataFrame:
    """A CSV table as aggregates-only readers may see it: counts protected, p-values and z-scores dropped."""
    from geo_ibm.disclosure import protect_table

    out = table.drop(columns=[c for c in ("p_previous", "p_year", "gi_z", "gi_p") if c in table.columns])
    return protect_table(out, rule, columns=("events", "persons", "smugglers", "with_smuggler", "persons_single",
                                             "current", "previous", "year_before"))


def _maps(current: gpd.GeoDataFrame, area: gpd.GeoDataFrame, *, area_name: str, footer_period: str,
          t: Callable[[str], str], gi_events: gpd.GeoDataFrame, gi_area: gpd.GeoDataFrame, cell: float | None,
          dots: bool) -> list[Block]:
    from geo_ibm import layers
    from geo_ibm.figures import figure_bytes, report_map, static_map
    from geo_ibm.hotspots import hotspots_from_events

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
    if dots:
        fig = report_map(current, kind="overview", title=f"{t('Overview of the interceptions')} – {area_name}", **common)
        blocks.append(Image(figure_bytes(fig, format="png"), caption=f"{t('Overview of the interceptions')} – {area_name}"))
    else:
        blocks.append(Paragraph(t("The map of single interceptions is for analysts only."), "note"))
    title = f"{t('Hot and cold spots (Getis–Ord Gi*, FDR)')} – {area_name}"
    try:
        if gi_events is current and cell is None:
            fig = report_map(current, kind="hotspots", title=title, **common)
        else:
            gi = hotspots_from_events(gi_events, study_area=gi_area, cell=cell)
            gi = gi[gi.intersects(area.geometry.union_all())]
            used = gi.attrs.get("parameters", {})
            subtitle = t("Cell %(cell)s m, distance band %(band)s m, false discovery rate corrected") % {
                "cell": f"{float(used.get('cell', 0)):.0f}", "band": f"{float(used.get('band', 0)):.0f}"}
            fig = static_map(hotspots=gi, title=title, subtitle=subtitle, **common)
        blocks.append(Image(figure_bytes(fig, format="png"),
                            caption=f"{t('Hot and cold spots (Getis–Ord Gi*, FDR)')} – {area_name}"))
    except GeoIbmError as exc:
        blocks.append(Paragraph(t("Hot spot map not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note"))
    return blocks


_TREND_WORDS = {"new": "new", "up": "up", "down": "down", "stable": "stable"}


def _top_hotspots(store: Any, current: gpd.GeoDataFrame, area: gpd.GeoDataFrame, *, previous: gpd.GeoDataFrame,
                  quarter: str, counts: CountDisplay, cell: float | None, region: str | None,
                  t: Callable[[str], str]) -> tuple[list[Block], pd.DataFrame | None, dict[str, float]]:
    """The named hotspots of the quarter (:func:`geo_ibm.namedhotspots.named_hotspots`), ranked by interceptions.

    Contiguous significant Gi* hot cells form one hotspot, named by road, landmark and commune;
    the trend compares the previous quarter's interceptions in the same cells, the emerging
    category comes from an emerging hot spot analysis of the last :data:`TREND_QUARTERS`
    quarters on the same cells (left out when it cannot run).
    """
    lang = counts.lang
    from geo_ibm.emerging import emerging_hotspots
    from geo_ibm.hotspots import hotspots_from_events
    from geo_ibm.namedhotspots import named_hotspots, protect_hotspots

    national = counts.rule is not None and region is not None
    try:
        gi = hotspots_from_events(current, study_area=area, cell=cell)
        used = gi.attrs.get("parameters", {})
        emerging = None
        try:
            from geo_ibm.analysis.budget import MAX_CUBE_CELLS, check_event_count

            first, _ = quarter_bounds(shift_quarter(quarter, -(TREND_QUARTERS - 1)))
            _, last = quarter_bounds(quarter)
            history = store.events(start=first, end=last, region=None if national else region,
                                   columns=["observed_at", "persons"])
            check_event_count("emerging", len(history))
            emerging = emerging_hotspots(history, study_area=area, cell=float(used["cell"]), band=float(used["band"]),
                                         step="quarter", max_cube_cells=MAX_CUBE_CELLS)
        except GeoIbmError:
            emerging = None
        days = (quarter_days(quarter), quarter_days(shift_quarter(quarter, -1)))
        named = named_hotspots(gi, events=current, emerging=emerging, previous=previous, exposure=days, lang=lang)
    except GeoIbmError as exc:
        return [Paragraph(t("Hot spot map not drawn: %(why)s") % {"why": str(exc).splitlines()[0]}, "note")], None, {}
    params = {"cell": float(used["cell"]), "band": float(used["band"])}
    if national:
        # Hotspots of the national lattice named in the region, ranked again within it.
        named = named[named["region"] == region].reset_index(drop=True)
    named = named.head(TOP_HOTSPOTS).reset_index(drop=True)
    named["rank"] = np.arange(1, len(named) + 1, dtype=np.int64)
    if counts.rule is not None:
        named = protect_hotspots(named, counts.rule)
    spot = gpd.GeoSeries(named.geometry.representative_point(), crs=named.crs)
    web = spot.to_crs("EPSG:4326")
    top = pd.DataFrame(named.drop(columns="geometry")).assign(
        x=spot.x.round(1).to_numpy(), y=spot.y.round(1).to_numpy(), lon=web.x.round(6).to_numpy(),
        lat=web.y.round(6).to_numpy(), cell_m=params["cell"], band_m=params["band"])
    if not len(top):
        return [Paragraph(t("No cell is a significant hot spot after the FDR correction."))], top, params

    def trend(r: Any) -> str:
        if r.trend is None or (isinstance(r.trend, float) and np.isnan(r.trend)):
            return "–"
        word = t(_TREND_WORDS[str(r.trend)])
        change = getattr(r, "change_pct", None)
        if counts.rule is None and change is not None and np.isfinite(change):
            return f"{word} ({'+' if change > 0 else ''}{number(change, lang, digits=0)} %)"
        return word

    def emerging_text(value: Any) -> str:
        # "intensifying hot spot" -> "intensifying": the column says what kind of category it is.
        return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else \
            t(str(value).removesuffix(" hot spot"))

    intro = Paragraph(t("Contiguous significant hot cells (Getis–Ord Gi*, FDR) form one hotspot, named by road, nearest "
                        "landmark and commune; ranked by interceptions. Trend: against %(previous)s in the same cells; "
                        "emerging category: the last %(quarters)s quarters.") % {
        "previous": shift_quarter(quarter, -1), "quarters": TREND_QUARTERS}, "note")
    def name(r: Any) -> str:
        # A large hotspot is more than the place it is named after: the other communes it covers.
        others = [c for c in str(r.communes or "").split(", ") if c and c != r.commune]
        return f"{r.name} · {t('also %(communes)s') % {'communes': ', '.join(others)}}" if others else str(r.name)

    records = _records(top)
    if counts.rule is not None:
        rows = [[str(r.rank), name(r), str(r.canton), counts.text(r.events), counts.text(r.persons),
                 str(r.confidence), trend(r), emerging_text(r.emerging)] for r in records]
        table = Table([t("Rank"), t("Hotspot"), t("Canton"), t("Events"), t("Persons"), t("Confidence"), t("Trend"),
                       t("Emerging hot spot")], rows, caption=t("Named hotspots"),
                      numeric=[True, False, False, True, True, True, False, False])
        return [intro, table], top, params
    # The z-score of a merged hotspot's best cell is in the CSV; the page keeps room for the names.
    rows = [[str(r.rank), name(r), str(r.canton), number(r.events, lang), number(r.persons, lang), str(r.confidence),
             trend(r), emerging_text(r.emerging)] for r in records]
    table = Table([t("Rank"), t("Hotspot"), t("Canton"), t("Events"), t("Persons"), t("Confidence"), t("Trend"),
                   t("Emerging hot spot")], rows, caption=t("Named hotspots"),
                  numeric=[True, False, False, True, True, True, False, False])
    return [intro, table], top, params


def _charts(store: Any, current: gpd.GeoDataFrame, *, quarter: str, region: str | None, counts: CountDisplay,
            t: Callable[[str], str]) -> tuple[list[Section], Any]:
    from geo_ibm import layers
    from geo_ibm.bordergeo import border_distance_profile
    from geo_ibm.disclosure import protect_counts
    from geo_ibm.trends import hour_weekday, monthly_series

    lang = counts.lang
    rule = counts.rule
    sections: list[Section] = []
    first = shift_quarter(quarter, -(TREND_QUARTERS - 1))
    start, _ = quarter_bounds(first)
    _, end = quarter_bounds(quarter)
    history = store.events(start=start, end=end, region=region, columns=["observed_at"])
    blocks: list[Block] = []
    try:
        if rule is not None:
            # Time blocks finer than the rule's are not shown to aggregates-only readers.
            raise ValidationError(t("months are finer than the time blocks of aggregates-only readers"))
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
    grid = hour_weekday(current)
    if rule is not None:
        grid = pd.DataFrame(protect_counts(grid.to_numpy(), rule), index=grid.index, columns=grid.columns)
    sections.append(Section(t("Hour × weekday"), [Image(charts.hour_weekday_png(grid, t=t),
                                                         caption=t("Interceptions by local hour and weekday"))], level=2))
    profile = None
    try:
        borders = layers.internal_borders()
        profile = border_distance_profile(current, borders=borders, crossings=layers.crossing_points())
        names = {str(r.neighbour): str(r.name) for r in _records(borders)}
        by_neighbour = profile.by_neighbour
        if rule is not None:
            # Suppressed counts are drawn as empty bars.
            by_neighbour = by_neighbour.assign(events=np.nan_to_num(protect_counts(by_neighbour["events"].to_numpy(), rule)))
        sections.append(Section(t("Distance to the border"), [Image(
            charts.border_distance_png(by_neighbour, names=names, t=t),
            caption=t("Interceptions by distance to the nearest internal border"))], level=2))
    except GeoIbmError as exc:
        sections.append(Section(t("Distance to the border"), [Paragraph(str(exc).splitlines()[0], "note")], level=2))
    return sections, profile


def _highlights(current: pd.DataFrame, *, counts: CountDisplay, t: Callable[[str], str]) -> str:
    """One sentence naming the main entry country, transport mode and kind of place of the quarter."""
    n = len(current)
    lang = counts.lang
    parts = []
    for by, label in (("entry_country", t("Main entry country")), ("transport_mode", t("main transport mode")),
                      ("location_kind", t("main kind of place"))):
        table = breakdown(current, by)
        if len(table):
            key = str(table.index[0])
            count = int(table["events"].iloc[0])
            colon = " : " if lang == "fr" else ": "
            share = _share(count, n, lang) if counts.rule is None else ""
            parts.append(f"{label}{colon}{code_label(key, lang)} ({counts.text(count)}{', ' + share if share else ''})")
    return (" ; " if lang == "fr" else "; ").join(parts) + "."


def _share(part: int, whole: int, lang: str) -> str:
    return f"{number(100.0 * part / whole, lang)} %" if whole else "–"


def _coarse_share_text(part: int, whole: int, lang: str) -> str:
    if not whole:
        return "–"
    return f"{number(float(np.round(100.0 * part / whole / SHARE_STEP_PROTECTED) * SHARE_STEP_PROTECTED), lang)} %"


def _methods(current: pd.DataFrame, *, lang: str, t: Callable[[str], str], params: dict[str, float],
             disclosure: DisclosureRule | None = None, counts: CountDisplay | None = None) -> list[Section]:
    from geo_ibm.tables import DATA_SOURCES

    blocks: list[Block] = []
    if len(current) and disclosure is None:
        when = pd.to_datetime(current["observed_at"]).dt.tz_convert(LOCAL_TZ)
        blocks.append(Paragraph(t("First and last interception of the quarter: %(first)s – %(last)s.") % {
            "first": f"{when.min():%Y-%m-%d %H:%M}", "last": f"{when.max():%Y-%m-%d %H:%M}"}))
    if len(current) and not (counts is not None and counts.hides(len(current))):
        n = len(current)
        dest = int(current["destination_country"].notna().sum()) if "destination_country" in current else 0
        nat = int(current["nationalities"].notna().sum()) if "nationalities" in current else 0
        reg = int(current["region"].notna().sum()) if "region" in current else 0
        # exact shares of a protected count would give it away (27 of 28 is 96 %): in steps of 10 % then
        share = _share if disclosure is None else _coarse_share_text
        blocks.append(Paragraph(t("Recorded: destination country for %(dest)s of the interceptions, nationalities for "
                                  "%(nat)s, a police region for %(reg)s.") % {
            "dest": share(dest, n, lang), "nat": share(nat, n, lang), "reg": share(reg, n, lang)}))
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
    if disclosure is not None:
        par.append(Paragraph(t("This edition is for readers of aggregates (geo_ibm.disclosure): %(rule)s; hot spots on "
                               "one %(cell)s m lattice over the whole country, shown as classes; no single interception, "
                               "z-score or test of change is shown.") % {
            "rule": _rule_text(disclosure, t), "cell": number(disclosure.cell_m, lang)}))
    sections.append(Section(t("Parameters"), par, level=2))
    sections.append(Section(t("Caveats"), [Paragraph(t(
        "Interceptions measure police activity as much as migration: a rise can follow more controls. Nationalities are "
        "recorded once per code per interception, so groups of mixed nationality count under each of their nationalities. "
        "Many tests are made in one report; a single * at 5 % is expected by chance now and then. Positions of the "
        "schematic road network and of crossing points are approximate (about 1 km)."))], level=2))
    # The event store's line speaks of the workbook's filters; here the filters are the area and the quarter.
    sources: list[Block] = [Paragraph(f"• {t(s).replace(' (filters above)', '')}") for s in DATA_SOURCES]
    sources.append(Paragraph(t("Map data: %(osm)s.") % {"osm": OSM_ATTRIBUTION}))
    sections.append(Section(t("Data sources and licences"), sources, level=2))
    return sections


def build_report(store: Any, *, quarter: str, region: str | None = None, lang: str = "en",
                 disclosure: DisclosureRule | None = None, generated_at: datetime | None = None,
                 progress: Progress | None = None) -> AreaReport:
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
    disclosure
        For readers entitled to aggregates only (:mod:`geo_ibm.disclosure`): every count
        protected, no test marks or z-scores, no event dots (the overview map and the monthly
        trend are left out), Gi* on the rule's one cell size over the whole country (a regional
        map clips it), CSV tables protected alike. ``None``: full detail.
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
    counts = CountDisplay(lang, disclosure)
    c = counts.text
    pq, yq = shift_quarter(q, -1), shift_quarter(q, -4)
    step = progress or (lambda _f, _m: None)
    area_name = t("Luxembourg (national)") if region is None else t("Police region %(region)s") % {"region": region}
    # In sentences: "recorded for Luxembourg" / "for police region Nord" ("pour la région de police Nord").
    area_phrase = t("Luxembourg") if region is None else t("police region %(region)s") % {"region": region}
    start, end = quarter_bounds(q)
    step(0.0, f"{area_name}: reading events")
    check_report_size(store, quarter=q, region=region)
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
            "previous": c(len(previous)), "pq": pq, "year": c(len(year)), "yq": yq}))
        intro.append(Paragraph(t("This short report therefore holds no maps, charts or tables of the quarter.")))
    elif counts.hides(n):
        # no persons or smugglers of so few interceptions: they would tell their size
        intro.append(Paragraph(t("Fewer than %(min)s interceptions were recorded for %(area)s in %(quarter)s.") % {
            "min": counts.rule.min_count, "area": area_phrase, "quarter": q}, "lead"))
    else:
        intro.append(Paragraph(t("%(n)s interceptions of %(persons)s persons, among them %(smugglers)s suspected smugglers, "
                                 "were recorded for %(area)s in %(quarter)s.") % {
            "n": c(n), "persons": c(now["persons"]), "smugglers": c(now["smugglers"]),
            "area": area_phrase, "quarter": q}, "lead"))
        main = compare("", n, len(previous), len(year), days=days, tested=True)

        def verdict(p: float | None) -> str:
            if disclosure is not None:
                return ""
            return t(" (significant)") if p is not None and p < 0.05 else t(" (not significant)")

        intro.append(Paragraph(t("Against the previous quarter (%(pq)s): %(change)s interceptions%(mark)s; against %(yq)s: "
                                 "%(ychange)s%(ymark)s.") % {
            "pq": pq, "yq": yq, "change": counts.change(n, len(previous), None).rstrip(" *"), "mark": verdict(main.p_previous),
            "ychange": counts.change(n, len(year), None).rstrip(" *"), "ymark": verdict(main.p_year)}))
    # decided on the count as printed: a protected reader cannot tell on which side of the minimum it lies
    full = counts.all_at_least(n, MIN_ANALYSIS_EVENTS)
    if n and not full:
        intro.append(Paragraph(t("Only %(n)s interceptions were recorded for %(area)s in %(quarter)s; maps, hot spots and "
                                 "charts need at least %(min)s, so this report gives the key figures only.") % {
            "n": c(n), "area": area_phrase, "quarter": q, "min": MIN_ANALYSIS_EVENTS}))
    if n and not counts.hides(n):
        # (the main entry country, mode and place of fewer than min_count interceptions are theirs)
        intro.append(Paragraph(_highlights(current, counts=counts, t=t)))
    step(0.1, f"{area_name}: key figures")
    key_blocks, key_table = _key_figures(current, previous, year, quarters=(q, pq, yq), counts=counts, t=t,
                                         full=n > 0 and not counts.hides(n))
    sections.append(Section(t("Key figures"), key_blocks))
    tables["key_figures.csv"] = key_table
    if full:
        area = _area_layer(region)
        step(0.25, f"{area_name}: maps")
        # Aggregates-only readers: one fixed lattice over the whole country, clipped to the region
        # (a regional map then shows the same cells as the national one).
        gi_events = current if disclosure is None or region is None else store.events(quarter=q)
        gi_area = area if disclosure is None else _area_layer(None)
        cell = None if disclosure is None else float(disclosure.cell_m)
        footer_period = f"{quarter_text} · {area_name}"
        map_blocks = _maps(current, area, area_name=area_name, footer_period=footer_period, t=t,
                           gi_events=gi_events, gi_area=gi_area, cell=cell, dots=disclosure is None)
        step(0.4, f"{area_name}: emerging hot spots")
        map_blocks.extend(emerging_blocks(store, quarter=q, region=region, area=area, area_name=area_name,
                                          footer_period=footer_period, counts=counts, t=t))
        sections.append(Section(t("Maps"), map_blocks))
        step(0.5, f"{area_name}: hot spots")
        gi_previous = previous if disclosure is None or region is None else store.events(quarter=pq)
        hot_blocks, top, params = _top_hotspots(store, gi_events, gi_area, previous=gi_previous, quarter=q,
                                                counts=counts, cell=cell, region=region, t=t)
        sections.append(Section(t("Hot spots"), hot_blocks))
        if top is not None and len(top):
            tables["named_hotspots.csv"] = top
            first = top.iloc[0]
            intro.append(Paragraph(t("Main hotspot (most interceptions): %(name)s, canton %(canton)s (%(region)s), "
                                     "%(confidence)s confidence (section 3).") % {
                "name": first["name"], "canton": first["canton"], "region": first["region"],
                "confidence": first["confidence"]}))
        step(0.55, f"{area_name}: corridors and flows")
        route_blocks, route_tables = routes_section(store, quarter=q, region=region, area=area, area_name=area_name,
                                                    footer_period=footer_period, counts=counts, t=t)
        sections.append(Section(t("Corridors and flows"), route_blocks))
        tables.update(route_tables)
        step(0.65, f"{area_name}: charts")
        chart_sections, profile = _charts(store, current, quarter=q, region=region, counts=counts, t=t)
        sections.append(Section(t("Charts")))
        sections.extend(chart_sections)
        step(0.75, f"{area_name}: near repeats")
        sections.append(Section(t("Space-time repetition (near repeats)"),
                                near_repeat_section(current, lang=lang, t=t, counts=counts)))
        step(0.8, f"{area_name}: outlook")
        outlook_blocks, outlook_tables = outlook_section(store, quarter=q, region=region, area=area,
                                                         area_name=area_name, footer_period=footer_period,
                                                         counts=counts, t=t)
        sections.append(Section(t("Outlook and recommendations"), outlook_blocks))
        tables.update(outlook_tables)
        step(0.85, f"{area_name}: annex")
        annex, annex_tables = _annex(current, profile.events if profile is not None else None, counts=counts, t=t)
        tables.update(annex_tables)
        names = ", ".join(sorted(tables))
        sections.append(Section(t("Statistics annex"), [Paragraph(
            t("Each table is also a CSV file next to this document: %(files)s.") % {"files": names}, "note")]))
        sections.extend(annex)
    sections.append(Section(t("Methods annex")))
    sections.extend(_methods(current, lang=lang, t=t, params=params, disclosure=disclosure, counts=counts))
    if disclosure is not None:
        tables = {name: _protected(table, disclosure) for name, table in tables.items()}
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
                           out_dir: str | Path, disclosure: DisclosureRule | None = None,
                           progress: Progress | None = None) -> list[Path]:
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
    disclosure
        Protect the edition for readers entitled to aggregates only (see :func:`build_report`).
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

        built = build_report(store, quarter=quarter, region=area, lang=lang, disclosure=disclosure, generated_at=when,
                             progress=sub)
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
