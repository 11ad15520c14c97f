"""QGIS styles in the GeoPackages geo_ibm writes: the ``layer_styles`` rows, their QML and SLD, and GDAL reading the files."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from matplotlib.colors import to_rgba
from shapely.geometry import Point, box

from geo_ibm.cli import main
from geo_ibm.demo import generate_events
from geo_ibm.errors import ValidationError
from geo_ibm.exports import export_events
from geo_ibm.io import write_vector
from geo_ibm.io.qgis import Category, LayerStyle, Symbol, qgis_colour, read_layer_styles, style_qml, style_sld
from geo_ibm.maps.hotspotlayers import EMERGING_COLOURS, GI_BIN_COLOURS
from geo_ibm.maps.planlayers import COVERED_COLOUR, SITE_COLOUR, UNCOVERED_COLOUR
from geo_ibm.maps.qgisstyles import KDE_RAMP, LISA_COLOURS, layer_style

SE = "{http://www.opengis.net/se}"
LAYER_STYLES_COLUMNS = ["id", "f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column", "styleName",
                        "styleQML", "styleSLD", "useAsDefault", "description", "owner", "ui", "update_time"]


def rgba(colour: str, opacity: float = 1.0) -> str:
    """The colour as QGIS writes it, computed with matplotlib (an independent parser)."""
    r, g, b, _ = to_rgba(colour)
    return f"{round(r * 255)},{round(g * 255)},{round(b * 255)},{round(opacity * 255)}"


def styles(path: Path) -> list[dict]:
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM layer_styles ORDER BY id")]
    conn.close()
    return rows


def symbol_colours(root: ET.Element) -> dict[str, str]:
    """Symbol name -> fill (or line) colour of a QML renderer, read from its Option maps."""
    out = {}
    for symbol in root.find("renderer-v2/symbols"):
        options = {o.get("name"): o.get("value") for o in symbol.find("layer/Option")}
        out[symbol.get("name")] = options.get("color") or options.get("line_color")
    return out


def categories(qml: str) -> dict[str, tuple[str, str, str]]:
    """Category value -> (label, fill colour, render flag) of a categorized QML."""
    root = ET.fromstring(qml.split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol"
    colours = symbol_colours(root)
    return {c.get("value"): (c.get("label"), colours[c.get("symbol")], c.get("render"))
            for c in renderer.find("categories")}


def gdal_layers(path: Path) -> list[str]:
    """The layer lines ``ogrinfo`` (the system GDAL) prints for a file."""
    done = subprocess.run(["ogrinfo", "-ro", "-q", str(path)], capture_output=True, text=True, timeout=60, check=True)
    return [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line[:1].isdigit()]


# --------------------------------------------------------------------------- QML and SLD builders


def test_qgis_colour_matches_an_independent_parser():
    for colour in ("#b2182b", "#2166ac", "#ffffff", "#000000", *EMERGING_COLOURS.values()):
        assert qgis_colour(colour) == rgba(colour)
    assert qgis_colour("#9c27b0", 0.8) == rgba("#9c27b0", 0.8) == "156,39,176,204"
    with pytest.raises(ValidationError, match="#rrggbb"):
        qgis_colour("red")


def test_invalid_styles_are_refused_naming_the_problem():
    with pytest.raises(ValidationError, match="classes need an attribute"):
        LayerStyle("x", "point", Symbol("#000000"), categories=(Category(1, "one", Symbol("#ffffff")),))
    with pytest.raises(ValidationError, match="geometry"):
        LayerStyle("x", "surface", Symbol("#000000"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="30 characters"):
        LayerStyle("x" * 31, "point", Symbol("#000000"))
    with pytest.raises(ValidationError, match="opacity"):
        LayerStyle("x", "point", Symbol("#000000", opacity=2))


def test_qml_text_is_escaped_and_well_formed():
    style = LayerStyle("a<b", "polygon", Symbol("#000000"), attribute="kind",
                       categories=(Category("x & \"y\"", "<b>label</b>", Symbol("#123456")),))
    found = categories(style_qml(style))
    assert found == {'x & "y"': ("<b>label</b>", rgba("#123456"), "true")}
    sld = ET.fromstring(style_sld(style, layer="t&u").split("\n", 1)[1])
    assert sld.find(f".//{SE}Name").text == "t&u"
    assert sld.find(".//{http://www.opengis.net/ogc}Literal").text == 'x & "y"'


# --------------------------------------------------------------------------- hotspot files of the CLI


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("qgis") / "store.gpkg"
    result = CliRunner().invoke(main, ["--store", str(path), "demo", "--events", "3000", "--seed", "5", "--no-account"])
    assert result.exit_code == 0, result.output
    return path


def _hotspots(store: Path, folder: Path, method: str) -> Path:
    out = folder / f"hot_{method}.gpkg"
    args = ["--store", str(store), "hotspots", "--method", method, "--out", str(out)]
    if method in ("gi", "lisa", "emerging"):
        args += ["--cell", "1000"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("method", ["gi", "lisa", "kde", "clusters", "emerging"])
def test_every_hotspot_layer_has_one_default_style_and_gdal_lists_the_data(demo_store, tmp_path, method):
    out = _hotspots(demo_store, tmp_path, method)
    layer = f"hotspots_{method}"
    rows = styles(out)
    assert len(rows) == 1
    row = rows[0]
    assert list(row) == LAYER_STYLES_COLUMNS
    assert row["f_table_name"] == layer and row["useAsDefault"] == 1 and row["styleName"].startswith("geo_ibm")
    with sqlite3.connect(out) as conn:
        geom_column = conn.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()[0]
        registered = dict(conn.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    conn.close()
    assert row["f_geometry_column"] == geom_column
    assert registered == {layer: "features", "layer_styles": "attributes"}
    root = ET.fromstring(row["styleQML"].split("\n", 1)[1])
    assert root.tag == "qgis" and root.find("layerGeometryType").text == "2"
    assert ET.fromstring(row["styleSLD"].split("\n", 1)[1]).find(f".//{SE}FeatureTypeStyle") is not None
    # GDAL opens the file and reads the data layer as written; the style table is a table without geometry.
    listed = gdal_layers(out)
    assert listed[1:] == ["layer_styles (None)"]
    assert listed[0] in (f"{layer} (Polygon)", f"{layer} (Multi Polygon)")
    frame = gpd.read_file(out, layer=layer)
    assert len(frame) > 0
    json.loads(pyogrio.read_info(out, layer=layer)["layer_metadata"]["parameters"])


def test_gi_style_has_the_web_map_colours_and_every_bin_of_the_data(demo_store, tmp_path):
    out = _hotspots(demo_store, tmp_path, "gi")
    frame = gpd.read_file(out, layer="hotspots_gi")
    row = styles(out)[0]
    root = ET.fromstring(row["styleQML"].split("\n", 1)[1])
    attribute = root.find("renderer-v2").get("attr")
    assert attribute == ("gi_bin_fdr" if "gi_bin_fdr" in frame else "gi_bin")
    found = categories(row["styleQML"])
    for b, colour in GI_BIN_COLOURS.items():
        label, qml_colour, render = found[str(b)]
        assert qml_colour == rgba(colour, 0.65) and render == "true" and "confidence" in label
    assert found["0"][2] == "false"  # not significant: listed, unticked, as the web map leaves it out
    assert {str(v) for v in frame[attribute].astype(int).unique()} <= set(found)
    # SLD: one rule per drawn bin, filtered on the same attribute.
    sld = ET.fromstring(row["styleSLD"].split("\n", 1)[1])
    rules = sld.findall(f".//{SE}Rule")
    assert len(rules) == 6
    assert {r.find(".//{http://www.opengis.net/ogc}PropertyName").text for r in rules} == {attribute}


def test_lisa_and_emerging_styles_cover_every_class_of_the_data(demo_store, tmp_path):
    lisa = _hotspots(demo_store, tmp_path, "lisa")
    found = categories(styles(lisa)[0]["styleQML"])
    assert {k: v[1] for k, v in found.items() if v[2] == "true"} == {k: rgba(c, 0.65) for k, c in LISA_COLOURS.items()}
    assert set(gpd.read_file(lisa)["lisa_class"].astype(str)) <= set(found)
    emerging = _hotspots(demo_store, tmp_path, "emerging")
    found = categories(styles(emerging)[0]["styleQML"])
    assert {k: v[1] for k, v in found.items() if v[2] == "true"} == {k: rgba(c, 0.65) for k, c in EMERGING_COLOURS.items()}
    assert found["no pattern detected"][2] == "false"
    assert set(gpd.read_file(emerging)["category"].astype(str)) <= set(found)


def test_kde_style_is_graduated_on_the_bands_of_the_file(demo_store, tmp_path):
    out = _hotspots(demo_store, tmp_path, "kde")
    frame = gpd.read_file(out)
    root = ET.fromstring(styles(out)[0]["styleQML"].split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "graduatedSymbol" and renderer.get("attr") == "level"
    ranges = renderer.find("ranges").findall("range")
    levels = np.sort(frame["level"].astype(float).unique())
    assert np.allclose([float(r.get("lower")) for r in ranges], levels)
    assert np.allclose([float(r.get("upper")) for r in ranges], frame.groupby("level")["upper"].max().sort_index())
    colours = symbol_colours(root)
    shown = [colours[r.get("symbol")] for r in ranges]
    assert shown[0] == rgba(KDE_RAMP[0], 0.35) and shown[-1] == rgba(KDE_RAMP[int((len(levels) - 1) * 6 / len(levels))], 0.35)
    assert len(set(shown)) == min(len(levels), len(KDE_RAMP))
    # Every feature falls in one band: lower <= level < upper.
    for level in frame["level"].astype(float):
        assert sum(float(r.get("lower")) <= level < float(r.get("upper")) or level == float(r.get("upper"))
                   for r in ranges) >= 1


def test_cluster_style_gives_each_cluster_its_web_colour(demo_store, tmp_path):
    from geo_ibm.maps.base import _FALLBACK_COLOURS

    out = _hotspots(demo_store, tmp_path, "clusters")
    frame = gpd.read_file(out)
    found = categories(styles(out)[0]["styleQML"])
    assert set(found) == {str(int(v)) for v in frame["cluster_id"]}
    for i, v in enumerate(frame["cluster_id"]):
        assert found[str(int(v))][1] == rgba(_FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)], 0.3)


# --------------------------------------------------------------------------- events and plans


def test_events_geopackage_export_is_styled_and_geojson_is_unchanged(tmp_path):
    events, _truth = generate_events(50, seed=2)
    data = export_events(events, "gpkg", scratch=tmp_path)
    path = tmp_path / "events.gpkg"
    path.write_bytes(data)
    rows = read_layer_styles(path)
    assert [r["f_table_name"] for r in rows] == ["events"]
    root = ET.fromstring(rows[0]["styleQML"].split("\n", 1)[1])
    assert root.find("renderer-v2").get("type") == "singleSymbol"
    assert root.find("layerGeometryType").text == "0"
    options = {o.get("name"): o.get("value") for o in root.find("renderer-v2/symbols/symbol/layer/Option")}
    assert options["color"] == rgba("#9c27b0", 0.8) and options["outline_color"] == rgba("#3b0a45")
    assert options["name"] == "circle"
    assert gdal_layers(path) == ["events (Point)", "layer_styles (None)"]
    assert len(gpd.read_file(path, layer="events")) == 50
    geojson = json.loads(export_events(events, "geojson", scratch=tmp_path))
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 50


def test_plan_layers_in_one_file_each_get_their_style_and_rewrites_replace_it(tmp_path):
    sites = gpd.GeoDataFrame({"site": ["A", "B"], "rank": [1, 2]}, geometry=[Point(75000, 75000), Point(80000, 80000)],
                             crs="EPSG:2169")
    demand = gpd.GeoDataFrame({"weight": [1.0, 2.0, 3.0], "site": ["A", None, "B"]},
                              geometry=[Point(75100, 75000), Point(90000, 90000), Point(80100, 80000)], crs="EPSG:2169")
    path = tmp_path / "plan.gpkg"
    write_vector(sites, path, layer="plan_sites", style=layer_style(sites, "plan_sites"))
    write_vector(demand, path, layer="plan_demand", style=layer_style(demand, "plan_demand"))
    write_vector(sites, path, layer="plan_sites", style=layer_style(sites, "plan_sites"))  # written again
    rows = styles(path)
    assert sorted(r["f_table_name"] for r in rows) == ["plan_demand", "plan_sites"]
    assert all(r["useAsDefault"] == 1 for r in rows)
    by_layer = {r["f_table_name"]: r for r in rows}
    site_root = ET.fromstring(by_layer["plan_sites"]["styleQML"].split("\n", 1)[1])
    site_options = {o.get("name"): o.get("value") for o in site_root.find("renderer-v2/symbols/symbol/layer/Option")}
    assert site_options["color"] == rgba(SITE_COLOUR)
    found = categories(by_layer["plan_demand"]["styleQML"])
    assert {k: v[1] for k, v in found.items()} == {"covered": rgba(COVERED_COLOUR, 0.8),
                                                  "not covered": rgba(UNCOVERED_COLOUR, 0.8)}
    assert sorted(gdal_layers(path)) == ["layer_styles (None)", "plan_demand (Point)", "plan_sites (Point)"]


def test_layers_without_a_known_style_and_geojson_get_none(tmp_path):
    frame = gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:2169")
    assert layer_style(frame, "cantons") is None
    out = write_vector(frame, tmp_path / "x.geojson", style=layer_style(frame, "hotspots_kde"))
    assert json.loads(out.read_text())["type"] == "FeatureCollection"
    plain = write_vector(frame, tmp_path / "plain.gpkg", layer="plain")
    assert read_layer_styles(plain) == []
    with pytest.raises(ValidationError, match="no layer 'other'"):
        from geo_ibm.io.qgis import write_layer_style

        write_layer_style(plain, "other", layer_style(frame, "hotspots_kde"))


def test_a_styled_events_export_imports_back(tmp_path):
    from geo_ibm.io import read_event_table

    events, _truth = generate_events(30, seed=4)
    path = tmp_path / "events.gpkg"
    path.write_bytes(export_events(events, "gpkg", scratch=tmp_path))
    # The import reads the first layer with geometry (the events), not the styles table, and says nothing of it.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = read_event_table(path)
    assert len(table) == 30


QGIS_PYTHON = "/usr/bin/python3"
QGIS_SCRIPT = """
import json, os, sys
from qgis.core import QgsApplication, QgsVectorLayer
QgsApplication.setPrefixPath("/usr", True)
app = QgsApplication([], False)
app.initQgis()
out = {}
for path, layer in json.loads(sys.argv[1]):
    vl = QgsVectorLayer(f"{path}|layername={layer}", layer, "ogr")
    r = vl.renderer()
    info = {"valid": vl.isValid(), "type": r.type()}
    if r.type() == "categorizedSymbol":
        info["attr"] = r.classAttribute()
        info["classes"] = [[str(c.value()), c.symbol().color().name(), c.renderState()] for c in r.categories()]
    elif r.type() == "graduatedSymbol":
        info["attr"] = r.classAttribute()
        info["classes"] = [[x.lowerValue(), x.upperValue(), x.symbol().color().name()] for x in r.ranges()]
    else:
        info["colour"] = r.symbol().color().name()
    out[layer] = info
print(json.dumps(out), flush=True)
os._exit(0)  # PyQGIS may crash tearing down a standalone application; the answer is out
"""


def _qgis_available() -> bool:
    try:
        return subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _qgis_available(), reason="QGIS's Python bindings (Debian python3-qgis) are not installed")
def test_qgis_opens_the_layers_with_their_default_styles(demo_store, tmp_path):
    """QGIS itself (its Python bindings, offscreen) loads each layer's default style from layer_styles."""
    files = [(str(_hotspots(demo_store, tmp_path, m)), f"hotspots_{m}") for m in ("gi", "lisa", "kde", "emerging")]
    events, _truth = generate_events(20, seed=3)
    (tmp_path / "events.gpkg").write_bytes(export_events(events, "gpkg", scratch=tmp_path))
    files.append((str(tmp_path / "events.gpkg"), "events"))
    done = subprocess.run([QGIS_PYTHON, "-c", QGIS_SCRIPT, json.dumps(files)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(info["valid"] for info in loaded.values())
    gi = loaded["hotspots_gi"]
    assert gi["type"] == "categorizedSymbol" and gi["attr"] in ("gi_bin", "gi_bin_fdr")
    assert {v: c for v, c, shown in gi["classes"] if shown} == {str(b): c for b, c in GI_BIN_COLOURS.items()}
    emerging = loaded["hotspots_emerging"]
    assert {v: c for v, c, shown in emerging["classes"] if shown} == EMERGING_COLOURS
    assert {v: c for v, c, shown in loaded["hotspots_lisa"]["classes"] if shown} == LISA_COLOURS
    kde = loaded["hotspots_kde"]
    assert kde["type"] == "graduatedSymbol" and kde["attr"] == "level"
    assert kde["classes"][0][2] == KDE_RAMP[0]
    assert loaded["events"] == {"valid": True, "type": "singleSymbol", "colour": "#9c27b0"}


# --------------------------------------------------------------------------- route layers of geo-ibm routes


@pytest.fixture(scope="module")
def route_file(demo_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("routes") / "routes.gpkg"
    result = CliRunner().invoke(main, ["--store", str(demo_store), "routes", "--out", str(out), "--network-hotspots"])
    assert result.exit_code == 0, result.output
    return out


ROUTE_LAYERS = ("route_segments", "route_corridors", "route_lixels", "route_attribution", "route_crossings",
                "route_flows", "route_unsnapped")


def test_every_route_layer_has_its_default_style(route_file):
    rows = {r["f_table_name"]: r for r in styles(route_file)}
    assert set(rows) == set(ROUTE_LAYERS)
    assert all(r["useAsDefault"] == 1 and r["styleName"].startswith("geo_ibm") for r in rows.values())
    # segments: graduated on events per km; every segment's value falls in exactly one band
    segments = gpd.read_file(route_file, layer="route_segments")
    root = ET.fromstring(rows["route_segments"]["styleQML"].split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "graduatedSymbol" and renderer.get("attr") == "events_per_km"
    bands = [(float(r.get("lower")), float(r.get("upper"))) for r in renderer.find("ranges")]
    for value in segments["events_per_km"]:
        inside = [lo <= value < hi or (value == hi and (lo, hi) == bands[-1]) for lo, hi in bands]
        assert sum(inside) == 1, (value, bands)
    # roads without an event are the quiet first band
    assert bands[0][0] == 0.0 and bands[0][1] < 1e-6
    flows = categories(rows["route_flows"]["styleQML"])
    assert set(flows) == {"entry", "exit"}
    lixels = categories(rows["route_lixels"]["styleQML"])
    assert lixels["0"][2] == "false" and lixels["3"][2] == "true"


@pytest.mark.skipif(not _qgis_available(), reason="QGIS's Python bindings (Debian python3-qgis) are not installed")
def test_qgis_opens_the_route_layers_styled(route_file):
    from geo_ibm.maps.routelayers import FLOW_COLOURS

    files = [(str(route_file), layer) for layer in ROUTE_LAYERS]
    done = subprocess.run([QGIS_PYTHON, "-c", QGIS_SCRIPT, json.dumps(files)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(loaded[layer]["valid"] for layer in ROUTE_LAYERS)
    assert loaded["route_segments"]["type"] == "graduatedSymbol"
    assert {v: c for v, c, shown in loaded["route_flows"]["classes"]} == FLOW_COLOURS
    assert {v: c for v, c, shown in loaded["route_lixels"]["classes"] if shown} == {
        str(b): c for b, c in GI_BIN_COLOURS.items()}
