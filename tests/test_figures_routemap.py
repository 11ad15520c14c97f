"""Tests of geo_ibm.figures.routemap: corridor and flow print maps, their legend, credit line and bounds."""
from __future__ import annotations

import io
import subprocess

import geopandas as gpd
import numpy as np
import pytest
import shapely
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.patches import FancyArrowPatch
from PIL import Image

from geo_ibm import figures, layers
from geo_ibm.errors import ValidationError
from geo_ibm.figures.routemap import corridor_print_map, flow_print_map, route_attribution
from geo_ibm.maps.routelayers import FLOW_COLOURS, INTENSITY_COLOURS, QUIET_COLOUR, intensity_breaks

OSM_SOURCE = {"kind": "osm", "source": "luxembourg-latest.osm.pbf", "date": "2026-11-01",
              "attribution": "© OpenStreetMap contributors, ODbL 1.0"}


@pytest.fixture(scope="module")
def ref() -> dict[str, gpd.GeoDataFrame]:
    return {"outline": layers.luxembourg_outline(), "borders": layers.internal_borders(),
            "neighbours": layers.neighbour_outlines()}


def _segments(per_km: list[float]) -> gpd.GeoDataFrame:
    lines = [shapely.LineString([(60_000 + 3_000 * i, 80_000), (62_000 + 3_000 * i, 90_000)]) for i in range(len(per_km))]
    return gpd.GeoDataFrame({"segment_id": range(len(per_km)), "ref": "A3", "name": "",
                             "events": [int(10 * v) for v in per_km], "events_per_km": per_km},
                            geometry=lines, crs=2169)


def _flows(volumes: list[int], legs: list[str]) -> gpd.GeoDataFrame:
    lines = [shapely.LineString([(60_000, 70_000 + 4_000 * i), (80_000, 70_000 + 4_000 * i)]) for i in range(len(volumes))]
    return gpd.GeoDataFrame({"segment_id": range(len(volumes)), "ref": "A3", "direction": 1, "leg": legs,
                             "events": volumes, "persons": [3 * v for v in volumes]}, geometry=lines, crs=2169)


def _crossings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"crossing_id": ["c1", "c2"], "name": ["A3 Dudelange", "A1 Wasserbillig"],
                             "events": [12, 3], "persons": [20, 4]},
                            geometry=[shapely.Point(70_000, 62_000), shapely.Point(100_000, 100_000)], crs=2169)


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
        for legend in [ax.get_legend(), *[a for a in ax.artists if hasattr(a, "get_texts")]]:
            if legend is not None:
                out += [t.get_text() for t in legend.get_texts()]
                out.append(legend.get_title().get_text())
    return out


def _pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "map.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], check=True, capture_output=True, text=True).stdout


def test_route_attribution_credits_openstreetmap_networks():
    assert route_attribution(OSM_SOURCE).endswith("Road network: © OpenStreetMap contributors, ODbL (2026-11-01)")
    shipped = route_attribution({"kind": "shipped", "source": "schematic corridors"})
    assert "ODbL" in shipped.split("·")[0] and "OpenStreetMap" not in shipped.split("·")[-1]


def test_corridor_map_colours_segments_by_the_web_classes(ref, tmp_path):
    per_km = [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]
    fig = corridor_print_map(_segments(per_km), **ref, crossings=_crossings(), network_source=OSM_SOURCE,
                             title="Corridors", subtitle="Police region Sud-Ouest", period="2025-01-01 – 2025-03-31")
    ax = fig.axes[0]
    drawn: dict[str, int] = {}
    for coll in ax.collections:
        if isinstance(coll, LineCollection) and len(coll.get_segments()):
            colour = to_hex(coll.get_colors()[0])
            drawn[colour] = drawn.get(colour, 0) + len(coll.get_segments())
    breaks = intensity_breaks(per_km)
    palette = INTENSITY_COLOURS[len(INTENSITY_COLOURS) - len(breaks):]
    assert drawn[QUIET_COLOUR] == 1
    for colour in palette:
        assert drawn[colour] == 1  # one segment per class here
    texts = _texts(fig)
    assert "Events per km of road" in texts and "no events" in texts
    assert "Entry crossing (size: attributed events)" in texts
    assert any("Road network: © OpenStreetMap contributors, ODbL" in t for t in texts)
    pdf = figures.figure_bytes(fig, format="pdf")
    text = _pdf_text(pdf, tmp_path)
    assert "Police region Sud-Ouest" in text and "OpenStreetMap contributors, ODbL" in text
    assert "2025-01-01" in text


def test_flow_map_widths_follow_volume_and_arrows_the_direction(ref):
    flows = _flows([2, 8, 32], ["entry", "exit", "entry"])
    fig = flow_print_map(flows, **ref, title="Flows", max_arrows=2)
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments()) == 3]
    widths = np.asarray(lines.get_linewidths())
    # Smallest drawn first; width - 0.4 grows as the square root of the volume.
    assert np.all(np.diff(widths) > 0)
    np.testing.assert_allclose((widths - 0.4) / (widths[-1] - 0.4), np.sqrt([2 / 32, 8 / 32, 1.0]), rtol=1e-9)
    assert [to_hex(c) for c in lines.get_colors()] == [FLOW_COLOURS["entry"], FLOW_COLOURS["exit"],
                                                      FLOW_COLOURS["entry"]]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 2  # the two largest flows
    for arrow in arrows:
        (x0, _y0), (x1, _y1) = arrow._posA_posB  # type: ignore[attr-defined]
        assert x1 > x0  # every line runs west to east, so does every arrow
    assert "Direction of travel" in _texts(fig) and "Widest line: 32 events" in _texts(fig)
    persons = flow_print_map(flows, **ref, weight="persons")
    assert "Widest line: 96 persons" in _texts(persons)


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_both_maps_in_every_format(ref, fmt):
    for fig in (corridor_print_map(_segments([1.0, 3.0]), **ref), flow_print_map(_flows([1, 4], ["entry", "exit"]), **ref)):
        data = figures.figure_bytes(fig, format=fmt)
        assert data[:4] in (b"\x89PNG", b"<?xm", b"%PDF")
        if fmt == "png":
            width, height = Image.open(io.BytesIO(data)).size
            assert width == int(170 / 25.4 * 200)  # matplotlib truncates the pixel size
            assert 0.8 * width < height < 1.2 * width


def test_empty_layers_still_draw_the_reference_map(ref):
    empty = _segments([]).iloc[:0]
    fig = corridor_print_map(empty, **ref, title="Nothing")
    assert "Events per km of road" in _texts(fig)
    flows = flow_print_map(_flows([], []), **ref)
    assert "Direction of travel" in _texts(flows)


def test_pixels_are_bounded(ref):
    with pytest.raises(ValidationError, match="dpi") as info:
        corridor_print_map(_segments([1.0]), **ref, width_mm=600, dpi=1200)
    assert info.value.problems[0].column == "dpi"


@pytest.mark.parametrize(("call", "match"), [
    (lambda r: corridor_print_map("x", **r), "segments must be a GeoDataFrame"),
    (lambda r: corridor_print_map(_segments([1.0]).drop(columns="events_per_km"), **r), "events_per_km"),
    (lambda r: flow_print_map(_flows([1], ["entry"]), **r, weight="kg"), "weight"),
    (lambda r: flow_print_map(_flows([1], ["entry"]).drop(columns="leg"), **r), "leg"),
])
def test_bad_arguments(ref, call, match):
    with pytest.raises(ValidationError, match=match):
        call(ref)


def test_labels_are_translated(ref):
    french = {"Events per km of road": "Événements par km de route", "no events": "aucun événement"}
    fig = corridor_print_map(_segments([1.0]), **ref, t=lambda s: french.get(s, s))
    assert "Événements par km de route" in _texts(fig) and "aucun événement" in _texts(fig)
