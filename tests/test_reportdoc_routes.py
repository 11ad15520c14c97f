"""The report's corridors and flows section: figures equal the route analysis, maps drawn, protected edition."""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image as PILImage

from geo_ibm.disclosure import DisclosureRule
from geo_ibm.layers import police_regions
from geo_ibm.network.requests import RouteQuery, route_analysis
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Document, Image, Paragraph, Section, Table
from geo_ibm.reportdoc.pdf import render_pdf
from geo_ibm.reportdoc.routes import routes_section
from geo_ibm.reportdoc.strings import translator

QUARTER = "2026Q2"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store

    events, _truth = generate_events(4000, seed=7, start="2025-07-01", end="2026-06-30")
    s = open_store(tmp_path_factory.mktemp("reportroutes") / "s.gpkg")
    s.init()
    s.import_events(events, source="demo", user="test")
    return s


def section(store, region=None, *, lang="en", rule=None):
    regions = police_regions()
    area = regions[regions["region"] == region] if region else regions.dissolve()
    return routes_section(store, quarter=QUARTER, region=region, area=area, area_name=region or "Luxembourg",
                          footer_period=QUARTER, counts=CountDisplay(lang, rule), t=translator(lang))


def test_tables_equal_the_route_analysis_and_both_maps_are_drawn(store):
    blocks, tables = section(store)
    analysis = route_analysis(store, RouteQuery(quarter=QUARTER))
    images = [b for b in blocks if isinstance(b, Image)]
    # corridor and flow maps, corridor ranking and entry crossing charts
    assert [i.caption.split(" – ")[0] for i in images] == [
        "Corridors: interceptions per km of road", "Flows: entry crossing to interception and on to the exit",
        "Corridors by interceptions per km, this quarter and the previous one",
        "Interceptions attributed to each entry crossing"]
    for image in images:
        pixels = np.asarray(PILImage.open(io.BytesIO(image.png)).convert("L"))
        assert (pixels < 200).mean() > 0.01  # not blank
    corridor_table, crossing_table = [b for b in blocks if isinstance(b, Table)]
    top = analysis.corridors.head(10)
    assert [r[1] for r in corridor_table.rows] == [ref or "other roads" for ref in top["ref"]]
    assert [int(r[3].replace(",", "")) for r in corridor_table.rows] == top["events"].tolist()
    attributed = analysis.crossings[analysis.crossings["events"] > 0].head(10)
    assert [int(r[2].replace(",", "")) for r in crossing_table.rows] == attributed["events"].tolist()
    assert tables["corridors.csv"]["events"].sum() == analysis.corridors["events"].sum()
    lead = blocks[0]
    assert isinstance(lead, Paragraph)
    assert f"{analysis.n_snapped:,} of {analysis.n_events:,} interceptions lie within 250 m" in lead.text


def test_pdf_of_the_section_has_the_busiest_corridor(store, tmp_path):
    if shutil.which("pdftotext") is None:
        pytest.fail("poppler-utils (pdftotext) is needed")
    blocks, _ = section(store, "Sud-Ouest", lang="fr")
    analysis = route_analysis(store, RouteQuery(quarter=QUARTER, region="Sud-Ouest"))
    doc = Document(title="t", subtitle="s", lang="fr", footer="f", contents_title="Sommaire", page_label="Page %(page)s",
                   sections=[Section("Corridors", blocks)])
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(render_pdf(doc))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    first = analysis.corridors.iloc[0]
    assert f"Corridor le plus fréquenté : {first['ref']}" in text
    assert "Corridors par interceptions au km" in text


def test_the_protected_edition_has_no_map_and_no_small_exact_count(store):
    rule = DisclosureRule()
    blocks, tables = section(store, "Nord", rule=rule)
    assert not [b for b in blocks if isinstance(b, Image)]
    corridor_table, crossing_table = [b for b in blocks if isinstance(b, Table)]
    for row in corridor_table.rows + crossing_table.rows:
        for cell in row:
            if cell.replace(",", "").isdigit() and cell not in (row[0],):
                value = int(cell.replace(",", ""))
                assert value == 0 or value >= rule.min_count
    assert "p_value" not in tables["corridors.csv"] and "mean_confidence" not in tables["entry_crossings.csv"]
    small = tables["corridors.csv"]["previous_events"].dropna()
    assert ((small == 0) | (small >= rule.min_count)).all()


def test_an_empty_quarter_gives_empty_tables_and_no_map(tmp_path):
    from geo_ibm.store import open_store

    s = open_store(tmp_path / "empty.gpkg")
    s.init()
    blocks, tables = section(s)
    assert not [b for b in blocks if isinstance(b, Image)]
    assert "0 of 0 interceptions" in blocks[0].text
    assert tables["corridors.csv"]["events"].sum() == 0
