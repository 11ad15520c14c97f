"""Shared parts of the print figures: formats and media types, the matplotlib style and its lock, PNG / SVG / PDF bytes.

:mod:`~geo_ibm.figures.printmap` and :mod:`~geo_ibm.figures.reportmap` build on these; the data
period shown in a map's footer (:func:`period_of`) is here too.
"""
from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.settings import LOCAL_TZ

Translate = Callable[[str], str]
FigureFormat = Literal["png", "svg", "pdf"]

FORMATS: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
"""Figure formats and their media types."""

# matplotlib reads these when a figure is built and saved. rcParams are process-global, so
# building and saving hold one lock (the web app serves requests from several threads).
_STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "svg.fonttype": "path",
    "svg.hashsalt": "geo_ibm",
    "pdf.fonttype": 42,
    "pdf.compression": 6,
    "path.simplify": True,
    "axes.unicode_minus": True,
    # names from data (road refs of an OpenStreetMap extract, places, crossings) are plain text: a "$" pair
    # is never matplotlib math markup (an unknown symbol there would fail the whole figure)
    "text.parse_math": False,
}
_lock = threading.RLock()


def period_of(events: gpd.GeoDataFrame | None) -> str | None:
    """The first and last event date (local time) as ``"YYYY-MM-DD – YYYY-MM-DD"``; ``None`` without events."""
    if events is None or len(events) == 0 or "observed_at" not in events.columns:
        return None
    when = pd.to_datetime(events["observed_at"], errors="coerce").dropna()
    if when.empty:
        return None
    when = when.dt.tz_convert(LOCAL_TZ) if when.dt.tz is not None else when
    return f"{when.min():%Y-%m-%d} – {when.max():%Y-%m-%d}"


# --------------------------------------------------------------------------- serialisation


def figure_bytes(fig: Figure, *, format: FigureFormat = "png") -> bytes:
    """The figure as PNG, SVG or PDF bytes, written in memory.

    SVG text is drawn as paths (no font needed to view it) and no external resource is
    referenced; SVG and PDF carry no creation date and fixed element ids, so the same figure
    gives the same bytes. Fonts are embedded in the PDF.

    Raises
    ------
    ValidationError
        Unknown ``format`` (the problem names ``format``).
    """
    if format not in FORMATS:
        raise ValidationError(f"invalid figure format {format!r}; use one of {', '.join(FORMATS)}",
                              [Problem("unknown format", column="format", value=format)])
    metadata: dict[str, Any] = {}
    if format == "svg":
        metadata = {"Date": None, "Type": None, "Creator": "geo_ibm"}
    elif format == "pdf":
        metadata = {"CreationDate": None, "ModDate": None, "Creator": "geo_ibm", "Producer": "geo_ibm (matplotlib)"}
    elif format == "png":
        metadata = {"Software": "geo_ibm (matplotlib)"}
    buffer = io.BytesIO()
    with _lock, rc_context(_STYLE):  # type: ignore[arg-type]
        fig.savefig(buffer, format=format, dpi=fig.dpi, facecolor="white", metadata=metadata)
    data = buffer.getvalue()
    if format == "svg":
        # The DOCTYPE names a DTD by URL; SVG viewers do not need it, and the file stays offline-clean.
        data = re.sub(rb"<!DOCTYPE[^>]*>\s*", b"", data, count=1)
    return data
