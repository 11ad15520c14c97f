"""Static report maps: valid PNG/SVG/PDF, self-contained and reproducible, legends from the data, large inputs."""
from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
import zlib

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from PIL import Image

from geo_ibm import figures, layers
from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.maps import GI_BIN_COLOURS, NEIGHBOUR_COLOURS
from geo_ibm.settings import OSM_ATTRIBUTION, WORKING_CRS


@pytest.fixture(scope="module")
def ref() -> dict[str, gpd.GeoDataFrame]:
    return {
        "outline": layers.luxembourg_outline(),
        "borders": layers.internal_borders(),
        "crossings": layers.crossing_points(),
    }


def _events(n: int, *, seed: int) -> gpd.GeoDataFrame:
    """``n`` points inside Luxembourg (EPSG:2169), a third of them around one spot, over two quarters."""
    rng = np.random.default_rng(seed)
    area = layers.luxembourg_outline().geometry.iloc[0]
    minx, miny, maxx, maxy = area.bounds
    xy = np.column_stack([rng.uniform(minx, maxx, 3 * n), rng.uniform(miny, maxy, 3 * n)])
    xy = xy[shapely.contains_xy(area, xy[:, 0], xy[:, 1])][:n]
    cluster = n // 3
    xy[:cluster] = np.column_stack([rng.normal(77_000, 400, cluster), rng.normal(75_000, 400, cluster)])
    when = pd.Timestamp("2025-01-01", tz="Europe/Luxembourg") + pd.to_timedelta(rng.uniform(0, 180, n), unit="D")
    return gpd.GeoDataFrame({"observed_at": when, "persons": rng.integers(1, 6, n)},
                            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=WORKING_CRS)


@pytest.fixture(scope="module")
def events() -> gpd.GeoDataFrame:
    return _events(600, seed=7)


@pytest.fixture(scope="module")
def overview(ref, events):
    return figures.static_map(**ref, events=events, title="Interceptions", subtitle="Test selection")


def _svg_text(svg: bytes) -> ET.Element:
    return ET.fromstring(svg)


def _pdf_text(pdf: bytes) -> str:
    """The text drawn in a matplotlib PDF (Type 42 fonts: two-byte codes in TJ strings)."""
    out = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            content = zlib.decompress(match.group(1))
        except zlib.error:
            continue
        for array in re.finditer(rb"\[(.*?)\]\s*TJ", content, re.S):
            for piece in re.finditer(rb"\(((?:\\.|[^\\)])*)\)", array.group(1), re.S):
                raw = re.sub(rb"\\([()\\])", rb"\1", piece.group(1))
                raw = re.sub(rb"\\(\d{1,3})", lambda m: bytes([int(m.group(1), 8)]), raw)
                if len(raw) % 2 == 0:
                    out.append(raw.decode("utf-16-be", errors="replace"))
        out.append(" ")
    return "".join(out)


def test_png_is_a_valid_image_of_the_requested_size(overview):
    data = figures.figure_bytes(overview, format="png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    width_px = round(170 / 25.4 * 200)
    assert abs(image.size[0] - width_px) <= 2
    # Luxembourg is taller than wide: the map (and the figure) is portrait-ish.
    assert image.size[1] > 0.8 * image.size[0]
    pixels = np.asarray(image.convert("RGB"))
    # The LU-FR border colour of the web map is drawn (the borders carry their neighbour colours).
    fr = tuple(int(NEIGHBOUR_COLOURS["FR"][i:i + 2], 16) for i in (1, 3, 5))
    assert (np.abs(pixels.astype(int) - fr).sum(axis=2) < 10).sum() > 500


@pytest.mark.parametrize(("width_mm", "dpi"), [(85, 150), (250, 100)])
def test_png_size_follows_width_and_dpi(ref, width_mm, dpi):
    fig = figures.static_map(**ref, width_mm=width_mm, dpi=dpi)
    image = Image.open(io.BytesIO(figures.figure_bytes(fig, format="png")))
    assert abs(image.size[0] - width_mm / 25.4 * dpi) <= 2


def test_svg_is_self_contained_xml(overview):
    svg = figures.figure_bytes(overview, format="svg")
    root = _svg_text(svg)
    assert root.tag.endswith("svg")
    text = svg.decode("utf-8")
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://purl.org/dc/elements/1.1/",
                  "http://creativecommons.org/ns#", "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
                  "http://matplotlib.org/"}
    assert urls <= namespaces, urls - namespaces
    # No external images, fonts or stylesheets: every href is a fragment or inline data.
    hrefs = re.findall(r'href="([^"]*)"', text)
    assert all(h.startswith("#") or h.startswith("data:") for h in hrefs)
    assert "@font-face" not in text and "<text" not in text  # text is drawn as paths
    assert "<dc:date>" not in text


def test_pdf_has_the_attribution_and_embedded_fonts(overview):
    pdf = figures.figure_bytes(overview, format="pdf")
    assert pdf.startswith(b"%PDF-")
    assert b"/CreationDate" not in pdf
    assert b"/FontFile2" in pdf  # TrueType fonts embedded
    text = _pdf_text(pdf).replace(" ", "")
    assert OSM_ATTRIBUTION.replace(" ", "") in text
    assert "Interceptions" in text and "Dataperiod:2025-01-" in text


@pytest.mark.parametrize("fmt", ["svg", "pdf", "png"])
def test_same_input_gives_the_same_bytes(ref, events, fmt):
    first = figures.figure_bytes(figures.static_map(**ref, events=events, title="A"), format=fmt)
    second = figures.figure_bytes(figures.static_map(**ref, events=events, title="A"), format=fmt)
    assert first == second
    other = figures.figure_bytes(figures.static_map(**ref, events=events.iloc[:100], title="A"), format=fmt)
    assert other != first


def _legend_texts(fig) -> list[str]:
    legends = [leg for ax in fig.axes for leg in ([ax.get_legend()] if ax.get_legend() else [])]
    return [t.get_text() for leg in legends for t in leg.get_texts()]


def test_legend_lists_borders_crossings_and_events(ref, overview):
    texts = _legend_texts(overview)
    for name, km in zip(ref["borders"]["name"], ref["borders"]["length_km"]):
        assert f"{name} ({km:.0f} km)" in texts
    counts = ref["crossings"]["kind"].value_counts()
    for kind, n in counts.items():
        assert f"{kind.replace('_', ' ')} ({n})" in texts
    assert "one event (n = 600)" in texts
    footer = [t.get_text() for t in overview.texts]
    assert OSM_ATTRIBUTION in footer
    assert any(t.startswith("Data period: 2025-01-01 – 2025-06-") for t in footer)
    assert "Interceptions" in footer and "Test selection" in footer


def test_many_events_become_hexagons_with_exact_counts(ref):
    # How fast 100k events draw belongs in a benchmark (benchmarks/), not in a timed assertion here.
    many = _events(100_000, seed=3)
    fig = figures.static_map(**ref, events=many)
    png = figures.figure_bytes(fig, format="png")
    assert png[:4] == b"\x89PNG"
    ax = fig.axes[0]
    # No per-event scatter: the only large collection is the hexbin, and it counts every event.
    assert all(len(c.get_offsets()) < 1000 for c in ax.collections if c.__class__.__name__ == "PathCollection")
    hexes = [c for c in ax.collections if c.__class__.__name__ == "PolyCollection"]
    assert len(hexes) == 1
    assert int(np.asarray(hexes[0].get_array()).sum()) == len(many)
    texts = _legend_texts(fig)
    assert "100 000 events in all" in texts
    # Class labels are contiguous integer ranges starting at 1.
    ranges = [t for t in texts if re.fullmatch(r"\d+( – \d+)?", t)]
    assert ranges and ranges[0].split(" – ")[0] == "1"
    svg = figures.figure_bytes(fig, format="svg")
    assert len(svg) < 3_000_000


def test_hotspot_cells_coloured_by_fdr_bin(ref):
    outline = ref["outline"]
    minx, miny, maxx, maxy = outline.total_bounds
    cells = [shapely.box(x, y, x + 2000, y + 2000) for x, y in [(70_000, 70_000), (72_000, 70_000), (80_000, 100_000)]]
    hot = gpd.GeoDataFrame({"gi_bin_fdr": [3, 1, -2], "gi_bin": [3, 3, -3]}, geometry=cells, crs=WORKING_CRS)
    fig = figures.static_map(**ref, hotspots=hot)
    texts = _legend_texts(fig)
    assert texts.count("Hot spot, 99% confidence") == 1
    assert "Hot spot, 90% confidence" in texts and "Cold spot, 95% confidence" in texts
    assert "Cold spot, 99% confidence" not in texts  # gi_bin_fdr, not gi_bin, decides
    facecolours = {tuple(np.round(p.get_facecolor()[:3], 3)) for p in fig.axes[0].patches}
    for b in (3, 1, -2):
        rgb = tuple(round(int(GI_BIN_COLOURS[b][i:i + 2], 16) / 255, 3) for i in (1, 3, 5))
        assert rgb in facecolours


@pytest.mark.parametrize("kind", ["hotspots", "kde"])
def test_report_map_runs_the_analysis(ref, events, kind):
    fig = figures.report_map(events, kind=kind, **ref, cell=500.0)
    texts = _legend_texts(fig)
    if kind == "hotspots":
        assert "Hot spot, 99% confidence" in texts  # the planted cluster
        assert any("Cell 500 m" in t.get_text() for t in fig.texts)
    else:
        levels = [t for t in texts if re.fullmatch(r"[\d.e+-]+ – [\d.e+-]+", t)]
        assert 3 <= len(levels) <= 5
    assert figures.figure_bytes(fig, format="png")[:4] == b"\x89PNG"


def test_report_map_cell_defaults_to_the_one_rule(ref, events):
    from geo_ibm.eventframe import event_xy
    from geo_ibm.hotspots import default_cell_size

    fig = figures.report_map(events, kind="hotspots", **ref)
    cell, _how = default_cell_size(event_xy(events), ref["outline"].geometry.union_all())
    assert any(f"Cell {cell:.0f} m" in t.get_text() for t in fig.texts)


def test_report_map_translates_labels(ref, events):
    fig = figures.report_map(events, kind="overview", **ref, t=lambda s: f"<{s}>")
    assert "<Internal Schengen borders>" in _legend_texts(fig)
    assert any(t.get_text() == "<Interceptions near the internal Schengen borders>" for t in fig.texts)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda ref: figures.figure_bytes(figures.static_map(**ref), format="jpg"), ValidationError, "invalid figure format 'jpg'"),
        (lambda ref: figures.static_map(**ref, width_mm=20), ValidationError, "width_mm must be between"),
        (lambda ref: figures.static_map(**ref, dpi=5000), ValidationError, "dpi must be"),
        (lambda ref: figures.report_map(_events(50, seed=1), kind="heat", **ref), ValidationError, "invalid map kind 'heat'"),
        (lambda ref: figures.report_map(_events(10, seed=1), kind="hotspots", **ref), ValidationError, "too few events"),
        (lambda ref: figures.static_map(**{**ref, "borders": ref["borders"].set_crs(None, allow_override=True)}), CrsError, "borders has no CRS"),
    ],
)
def test_bad_arguments(ref, call, error, match):
    with pytest.raises(error, match=match):
        call(ref)


def test_empty_selection_still_draws_the_reference_map(ref):
    empty = _events(10, seed=2).iloc[:0]
    fig = figures.report_map(empty, kind="overview", **ref)
    assert any(t.get_text().startswith("No events in the selection") for t in fig.texts)
    assert figures.figure_bytes(fig, format="pdf").startswith(b"%PDF")


def test_narrow_figure_keeps_footer_and_legend_on_the_page(ref, events):
    fig = figures.report_map(events, kind="overview", **ref, width_mm=85, dpi=150, neighbours=layers.neighbour_outlines())
    figures.figure_bytes(fig, format="png")
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in fig.texts}
    credit = boxes[OSM_ATTRIBUTION]
    period = next(b for text, b in boxes.items() if text.startswith("Data period"))
    assert credit.y1 < period.y0 or credit.x0 > period.x1  # on its own line, or beside without overlap
    for box in boxes.values():
        assert 0 <= box.x0 and box.x1 <= width + 1
    legend = fig.axes[1].get_legend().get_window_extent(renderer)
    assert legend.x1 <= width + 1


def test_dollar_signs_from_data_are_text_not_math(ref):
    """A '$' pair in a name from data (an OpenStreetMap ref, a crossing, a title) is drawn as it is:
    matplotlib's math parser would fail the whole figure on the unknown symbol."""
    from geo_ibm.reportdoc.charts import corridor_ranking_png, entry_crossings_png

    hostile = r"A$\foo{$ $x^$"
    fig = figures.static_map(**ref, title=hostile, subtitle=hostile)
    svg = figures.figure_bytes(fig, format="svg")
    assert svg.startswith(b"<?xml")
    corridors = pd.DataFrame({"ref": [hostile, "A3"], "length_km": [2.0, 3.0], "events_per_km": [4.0, 1.0],
                              "previous_events": [1.0, 2.0]})
    crossings = pd.DataFrame({"name": [hostile, "Wasserbillig"], "neighbour": ["DE", "DE"], "events": [3, 1]})
    for png in (corridor_ranking_png(corridors), entry_crossings_png(crossings)):
        assert Image.open(io.BytesIO(png)).size[0] > 100
