"""The report's emerging hot spot map: the sentence's counts equal the library's categories; the protected edition."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from geo_ibm.disclosure import DisclosureRule
from geo_ibm.emerging import emerging_hotspots
from geo_ibm.layers import police_regions
from geo_ibm.periods import quarter_bounds
from geo_ibm.reportdoc.emergingmap import emerging_blocks
from geo_ibm.reportdoc.figures import CountDisplay
from geo_ibm.reportdoc.model import Image, Paragraph
from geo_ibm.reportdoc.strings import translator


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from geo_ibm.demo import generate_events
    from geo_ibm.store import open_store

    events, _truth = generate_events(4000, seed=3, start="2024-07-01", end="2026-06-30")
    s = open_store(tmp_path_factory.mktemp("emerging") / "s.gpkg")
    s.init()
    s.import_events(events, source="demo", user="test")
    return s


def test_counts_in_the_sentence_equal_the_categories_and_the_map_is_drawn(store):
    regions = police_regions()
    area = regions[regions["region"] == "Sud-Ouest"]
    blocks = emerging_blocks(store, quarter="2026Q2", region="Sud-Ouest", area=area, area_name="Sud-Ouest",
                             footer_period="2026Q2", counts=CountDisplay("en"), t=translator("en"))
    text, image = blocks
    assert isinstance(text, Paragraph) and isinstance(image, Image)
    start, _ = quarter_bounds("2024Q3")
    _, end = quarter_bounds("2026Q2")
    events = store.events(start=start, end=end, region="Sud-Ouest", columns=["observed_at"])
    expected = emerging_hotspots(events, study_area=area, start=start, end=end)["category"].value_counts()
    assert expected.get("persistent hot spot", 0) > 0
    for category in ("new hot spot", "intensifying hot spot", "persistent hot spot", "diminishing hot spot"):
        if expected.get(category, 0):
            assert f"{int(expected[category])} cells: {category}" in text.text
    pixels = np.asarray(PILImage.open(io.BytesIO(image.png)).convert("L"))
    assert (pixels < 200).mean() > 0.02
    assert image.caption == "Emerging hot spots 2024Q3–2026Q2 – Sud-Ouest"


def test_the_protected_edition_uses_the_rule_cell_over_the_country(store):
    from geo_ibm.layers import luxembourg_outline

    rule = DisclosureRule()
    regions = police_regions()
    area = regions[regions["region"] == "Nord"]
    blocks = emerging_blocks(store, quarter="2026Q2", region="Nord", area=area, area_name="Nord",
                             footer_period="2026Q2", counts=CountDisplay("fr", rule), t=translator("fr"))
    start, _ = quarter_bounds("2024Q3")
    _, end = quarter_bounds("2026Q2")
    national = emerging_hotspots(store.events(start=start, end=end, columns=["observed_at"]),
                                 study_area=luxembourg_outline(), cell=float(rule.cell_m), start=start, end=end)
    clipped = national[national.intersects(area.geometry.union_all())]["category"].value_counts()
    if clipped.get("persistent hot spot", 0):
        assert f"{int(clipped['persistent hot spot'])} " in blocks[0].text
    assert isinstance(blocks[1], Image)
