"""The report's charts (matplotlib, Agg): monthly trend with its seasonal baseline, hour × weekday, distance to the border."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from geo_ibm.figures.common import figure_bytes
from geo_ibm.maps import NEIGHBOUR_COLOURS

Translate = Callable[[str], str]

_WIDTH_IN = 170 / 25.4
_DPI = 200
_BAR = "#31688e"
_HIGHLIGHT = "#bd0026"


def _figure(height_in: float) -> Figure:
    fig = Figure(figsize=(_WIDTH_IN, height_in), dpi=_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _tidy(ax: object) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)  # type: ignore[attr-defined]
    ax.tick_params(labelsize=7)  # type: ignore[attr-defined]


def monthly_trend_png(series: pd.DataFrame, *, quarter: str, seasonal: bool, t: Translate = str) -> bytes:
    """Bars of interceptions per month, the fitted trend and (``seasonal``) the seasonal baseline; the report quarter in red.

    ``series`` is :attr:`geo_ibm.trends.MonthlySeries.series`.
    """
    fig = _figure(2.6)
    ax = fig.add_axes((0.08, 0.2, 0.9, 0.72))
    months = pd.PeriodIndex(series["month"], freq="M")
    in_quarter = np.asarray(months.asfreq("Q").astype(str) == quarter.upper())
    x = np.arange(len(series))
    ax.bar(x, series["count"], color=np.where(in_quarter, _HIGHLIGHT, _BAR), width=0.8,
           label=t("interceptions per month"))
    ax.plot(x, series["trend"], color="#222222", linewidth=1.0, linestyle="--", label=t("linear trend"))
    if seasonal:
        baseline = series["trend"].to_numpy() * series["seasonal_index"].to_numpy()
        ax.plot(x, baseline, color="#f28e2b", linewidth=1.4, label=t("seasonal baseline"))
    ax.bar([np.nan], [np.nan], color=_HIGHLIGHT, label=t("report quarter"))
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], [str(m) for m in series["month"]][::step], rotation=45, ha="right")
    ax.set_ylabel(t("interceptions per month"), fontsize=7)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.legend(fontsize=6.5, frameon=False, loc="upper left", ncols=4)
    _tidy(ax)
    return figure_bytes(fig, format="png")


def hour_weekday_png(grid: pd.DataFrame, *, t: Translate = str) -> bytes:
    """Heat map of :func:`geo_ibm.trends.hour_weekday` (7 × 24 counts), each cell labelled with its count when it fits.

    NaN cells (counts suppressed for aggregates-only readers) stay blank.
    """
    fig = _figure(2.5)
    ax = fig.add_axes((0.07, 0.2, 0.86, 0.72))
    values = grid.to_numpy(dtype=float)  # NaN (a suppressed count) is left blank
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    image = ax.imshow(values, aspect="auto", cmap="YlOrRd", interpolation="nearest", vmin=0, vmax=max(1.0, top))
    ax.set_yticks(range(7), [t(str(d)) for d in grid.index])
    ax.set_xticks(range(24), [str(h) for h in grid.columns])
    ax.set_xlabel(t("hour (local time)"), fontsize=7)
    if top < 1000:
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v) and v:
                ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=4.5,
                        color="white" if v > 0.6 * top else "#333333")
    bar = fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    bar.ax.tick_params(labelsize=6)
    ax.tick_params(labelsize=6.5)
    return figure_bytes(fig, format="png")


def border_distance_png(by_neighbour: pd.DataFrame, *, names: dict[str, str] | None = None, t: Translate = str) -> bytes:
    """Stacked bars of interceptions per distance band, one colour per nearest internal border.

    ``by_neighbour`` is :attr:`geo_ibm.bordergeo.BorderProfile.by_neighbour`.
    """
    fig = _figure(2.4)
    ax = fig.add_axes((0.08, 0.22, 0.9, 0.7))
    bands = list(dict.fromkeys(by_neighbour["band"]))
    x = np.arange(len(bands))
    bottom = np.zeros(len(bands))
    for code, rows in by_neighbour.groupby("neighbour", sort=False):
        values = rows.set_index("band")["events"].reindex(bands, fill_value=0).to_numpy(dtype=float)
        label = (names or {}).get(str(code), str(code))
        ax.bar(x, values, bottom=bottom, color=NEIGHBOUR_COLOURS.get(str(code), "#777777"), width=0.75, label=label)
        bottom += values
    ax.set_xticks(x, bands, rotation=30, ha="right")
    ax.set_xlabel(t("distance band"), fontsize=7)
    ax.set_ylabel(t("Interceptions"), fontsize=7)
    ax.legend(fontsize=6.5, frameon=False)
    _tidy(ax)
    return figure_bytes(fig, format="png")


def corridor_ranking_png(corridors: pd.DataFrame, *, n: int = 10, t: Translate = str) -> bytes:
    """Horizontal bars of interceptions per km for the ``n`` first corridors, with the previous period's as ticks.

    ``corridors`` is :func:`geo_ibm.network.corridors.corridor_ranking` (``ref``, ``length_km``,
    ``events_per_km``, ``previous_events``); the busiest corridor on top.
    """
    top = corridors.head(n).iloc[::-1]
    height = 0.7 + 0.22 * max(len(top), 1)
    fig = _figure(height)
    ax = fig.add_axes((0.16, 0.45 / height, 0.8, 1 - 0.55 / height))
    y = np.arange(len(top))
    labels = [str(r) or t("other roads") for r in top["ref"]]
    ax.barh(y, top["events_per_km"].to_numpy(dtype=float), color=_BAR, height=0.7, label=t("this quarter"))
    previous = top["previous_events"].to_numpy(dtype=float) / np.maximum(top["length_km"].to_numpy(dtype=float), 1e-9)
    ax.scatter(previous, y, marker="|", s=120, color=_HIGHLIGHT, linewidths=1.6, zorder=3, label=t("previous period"))
    ax.set_yticks(y, labels, parse_math=False)  # road refs from data: never math markup
    ax.set_xlabel(t("interceptions per km of road"), fontsize=7)
    ax.legend(fontsize=6.5, frameon=False, loc="lower right")
    _tidy(ax)
    return figure_bytes(fig, format="png")


def entry_crossings_png(crossings: pd.DataFrame, *, n: int = 10, t: Translate = str) -> bytes:
    """Horizontal bars of attributed interceptions for the ``n`` busiest entry crossings, coloured by neighbour.

    ``crossings`` is :func:`geo_ibm.network.attribution.crossing_table` (``name``, ``neighbour``, ``events``).
    """
    top = crossings[crossings["events"] > 0].head(n).iloc[::-1]
    height = 0.7 + 0.22 * max(len(top), 1)
    fig = _figure(height)
    ax = fig.add_axes((0.42, 0.45 / height, 0.54, 1 - 0.55 / height))
    y = np.arange(len(top))
    colours = [NEIGHBOUR_COLOURS.get(str(c), "#777777") for c in top["neighbour"]]
    ax.barh(y, top["events"].to_numpy(dtype=float), color=colours, height=0.7)
    names = [str(name) if len(str(name)) <= 38 else str(name)[:36] + "…" for name in top["name"]]
    ax.set_yticks(y, [f"{name} ({code})" for name, code in zip(names, top["neighbour"], strict=True)], parse_math=False)
    ax.set_xlabel(t("attributed interceptions"), fontsize=7)
    _tidy(ax)
    return figure_bytes(fig, format="png")
