"""QGIS layer styles: QML and SLD documents built from a small style description, and the
``layer_styles`` table of a GeoPackage that QGIS reads them from when it opens a layer."""
from __future__ import annotations

import os
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from geo_ibm.errors import ValidationError

PathLike = str | os.PathLike[str]
GeometryKind = Literal["point", "line", "polygon"]

QGIS_VERSION = "3.28.0-Firenze"
"""Version written into the QML: the oldest long-term release whose format this follows; later
releases read it unchanged."""

LAYER_STYLES_DDL = """CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    f_table_catalog TEXT(256),
    f_table_schema TEXT(256),
    f_table_name TEXT(256),
    f_geometry_column TEXT(256),
    styleName TEXT(30),
    styleQML TEXT,
    styleSLD TEXT,
    useAsDefault BOOLEAN,
    description TEXT,
    owner TEXT(30),
    ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)"""
"""The table QGIS creates when it saves a style into a GeoPackage (same columns, same names)."""

_GEOMETRY_TYPE = {"point": "0", "line": "1", "polygon": "2"}
_SYMBOL_TYPE = {"point": "marker", "line": "line", "polygon": "fill"}


@dataclass(frozen=True)
class Symbol:
    """One simple symbol: a circle marker, a line or a filled polygon.

    Attributes
    ----------
    colour
        Fill colour (marker, polygon) or line colour, ``#rrggbb``.
    outline
        Outline colour of markers and polygons, ``#rrggbb``.
    opacity
        Opacity of the fill (0..1); outlines stay opaque.
    width
        Outline (or line) width in millimetres.
    size
        Marker diameter in millimetres.
    """

    colour: str
    outline: str = "#444444"
    opacity: float = 1.0
    width: float = 0.26
    size: float = 2.4


@dataclass(frozen=True)
class Category:
    """One class of a categorized style: features whose attribute equals ``value``."""

    value: str | int
    label: str
    symbol: Symbol
    visible: bool = True
    """Drawn when the layer opens (QGIS lets the user tick a hidden class on)."""


@dataclass(frozen=True)
class Band:
    """One class of a graduated style: ``lower <= attribute < upper`` (the last band includes ``upper``)."""

    lower: float
    upper: float
    label: str
    symbol: Symbol


@dataclass(frozen=True)
class LayerStyle:
    """A layer's style: one symbol, or classes on one attribute (categories or bands, not both).

    Attributes
    ----------
    name
        Style name (``styleName``, at most 30 characters as QGIS's column says).
    geometry
        ``"point"``, ``"line"`` or ``"polygon"``.
    symbol
        The symbol of a single-symbol style, and the symbol QGIS starts new classes from.
    attribute
        Field the classes test; a QGIS expression when ``expression`` is true.
    expression
        ``attribute`` is a QGIS expression (the SLD then has the single symbol only: SLD
        filters cannot say what an arbitrary expression does).
    """

    name: str
    geometry: GeometryKind
    symbol: Symbol
    attribute: str | None = None
    categories: tuple[Category, ...] = ()
    bands: tuple[Band, ...] = ()
    description: str = ""
    expression: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.geometry not in _GEOMETRY_TYPE:
            problems.append(f"geometry must be point, line or polygon, got {self.geometry!r}")
        if self.categories and self.bands:
            problems.append("a style has categories or bands, not both")
        if (self.categories or self.bands) and not self.attribute:
            problems.append("classes need an attribute")
        if not 0 < len(self.name) <= 30:
            problems.append(f"name must have 1 to 30 characters, got {self.name!r}")
        for symbol in [self.symbol, *(c.symbol for c in self.categories), *(b.symbol for b in self.bands)]:
            for colour in (symbol.colour, symbol.outline):
                if not _is_hex(colour):
                    problems.append(f"colour must be #rrggbb, got {colour!r}")
            if not 0.0 <= symbol.opacity <= 1.0:
                problems.append(f"opacity must be in 0..1, got {symbol.opacity!r}")
        if problems:
            raise ValidationError("invalid layer style: " + "; ".join(problems))

    @property
    def renderer(self) -> Literal["singleSymbol", "categorizedSymbol", "graduatedSymbol"]:
        """The QGIS renderer the QML uses."""
        if self.categories:
            return "categorizedSymbol"
        if self.bands:
            return "graduatedSymbol"
        return "singleSymbol"


def _is_hex(colour: str) -> bool:
    return len(colour) == 7 and colour.startswith("#") and all(c in "0123456789abcdefABCDEF" for c in colour[1:])


def qgis_colour(colour: str, opacity: float = 1.0) -> str:
    """``#rrggbb`` with an opacity as QGIS writes colours: ``"r,g,b,a"`` with 0..255 components."""
    if not _is_hex(colour):
        raise ValidationError(f"colour must be #rrggbb, got {colour!r}")
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"{r},{g},{b},{round(opacity * 255)}"


# --------------------------------------------------------------------------- QML


def _options(parent: ET.Element, values: dict[str, str]) -> None:
    # QGIS 3.26+ writes an Option map; older 3.x releases read the prop elements.
    options = ET.SubElement(parent, "Option", type="Map")
    for key, value in values.items():
        ET.SubElement(options, "Option", name=key, value=value, type="QString")
    for key, value in values.items():
        ET.SubElement(parent, "prop", k=key, v=value)


def _symbol_element(parent: ET.Element, symbol: Symbol, *, geometry: GeometryKind, name: str,
                    tag: str = "symbol") -> ET.Element:
    element = ET.SubElement(parent, tag, type=_SYMBOL_TYPE[geometry], name=name, alpha="1",
                            clip_to_extent="1", force_rhr="0")
    if geometry == "point":
        layer = ET.SubElement(element, "layer", {"class": "SimpleMarker", "pass": "0", "locked": "0", "enabled": "1"})
        _options(layer, {"name": "circle", "color": qgis_colour(symbol.colour, symbol.opacity),
                         "outline_color": qgis_colour(symbol.outline), "outline_style": "solid",
                         "outline_width": f"{symbol.width:g}", "outline_width_unit": "MM",
                         "size": f"{symbol.size:g}", "size_unit": "MM", "scale_method": "diameter"})
    elif geometry == "line":
        layer = ET.SubElement(element, "layer", {"class": "SimpleLine", "pass": "0", "locked": "0", "enabled": "1"})
        _options(layer, {"line_color": qgis_colour(symbol.colour, symbol.opacity), "line_style": "solid",
                         "line_width": f"{symbol.width:g}", "line_width_unit": "MM", "capstyle": "round",
                         "joinstyle": "round"})
    else:
        layer = ET.SubElement(element, "layer", {"class": "SimpleFill", "pass": "0", "locked": "0", "enabled": "1"})
        _options(layer, {"color": qgis_colour(symbol.colour, symbol.opacity), "style": "solid",
                         "outline_color": qgis_colour(symbol.outline), "outline_style": "solid",
                         "outline_width": f"{symbol.width:g}", "outline_width_unit": "MM", "joinstyle": "bevel"})
    return element


def style_qml(style: LayerStyle) -> str:
    """The QGIS QML document of ``style`` (symbology only: single, categorized or graduated renderer).

    Examples
    --------
    >>> qml = style_qml(LayerStyle("events", "point", Symbol("#9c27b0")))
    >>> qml.startswith("<!DOCTYPE qgis")
    True
    """
    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology")
    attrs = {"type": style.renderer, "symbollevels": "0", "enableorderby": "0", "forceraster": "0"}
    if style.attribute:
        attrs["attr"] = style.attribute
    if style.renderer == "graduatedSymbol":
        attrs["graduatedMethod"] = "GraduatedColor"
    renderer = ET.SubElement(root, "renderer-v2", attrs)
    symbols = ET.Element("symbols")
    if style.categories:
        categories = ET.SubElement(renderer, "categories")
        for i, cat in enumerate(style.categories):
            ET.SubElement(categories, "category", value=str(cat.value), label=cat.label, symbol=str(i),
                          render="true" if cat.visible else "false")
            _symbol_element(symbols, cat.symbol, geometry=style.geometry, name=str(i))
        renderer.append(symbols)
    elif style.bands:
        ranges = ET.SubElement(renderer, "ranges")
        for i, band in enumerate(style.bands):
            ET.SubElement(ranges, "range", lower=repr(float(band.lower)), upper=repr(float(band.upper)),
                          label=band.label, symbol=str(i), render="true")
            _symbol_element(symbols, band.symbol, geometry=style.geometry, name=str(i))
        renderer.append(symbols)
        ET.SubElement(renderer, "mode", name="custom")
    else:
        _symbol_element(symbols, style.symbol, geometry=style.geometry, name="0")
        renderer.append(symbols)
    if style.categories or style.bands:
        source = ET.SubElement(renderer, "source-symbol")
        _symbol_element(source, style.symbol, geometry=style.geometry, name="0")
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerGeometryType").text = _GEOMETRY_TYPE[style.geometry]
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


# --------------------------------------------------------------------------- SLD

_SLD = "http://www.opengis.net/sld"
_SE = "http://www.opengis.net/se"
_OGC = "http://www.opengis.net/ogc"


def _se(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{_SE}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _sld_symbolizer(rule: ET.Element, symbol: Symbol, geometry: GeometryKind) -> None:
    def stroke(parent: ET.Element, colour: str, width_mm: float) -> None:
        element = _se(parent, "Stroke")
        _se(element, "SvgParameter", colour, name="stroke")
        _se(element, "SvgParameter", f"{width_mm * 3.78:.2f}", name="stroke-width")  # mm to pixels at 96 dpi

    def fill(parent: ET.Element) -> None:
        element = _se(parent, "Fill")
        _se(element, "SvgParameter", symbol.colour, name="fill")
        _se(element, "SvgParameter", f"{symbol.opacity:g}", name="fill-opacity")

    if geometry == "point":
        graphic = _se(_se(rule, "PointSymbolizer"), "Graphic")
        mark = _se(graphic, "Mark")
        _se(mark, "WellKnownName", "circle")
        fill(mark)
        stroke(mark, symbol.outline, symbol.width)
        _se(graphic, "Size", f"{symbol.size * 3.78:.2f}")
    elif geometry == "line":
        stroke(_se(rule, "LineSymbolizer"), symbol.colour, symbol.width)
    else:
        polygon = _se(rule, "PolygonSymbolizer")
        fill(polygon)
        stroke(polygon, symbol.outline, symbol.width)


def _comparison(parent: ET.Element, op: str, attribute: str, value: str) -> None:
    element = ET.SubElement(parent, f"{{{_OGC}}}{op}")
    ET.SubElement(element, f"{{{_OGC}}}PropertyName").text = attribute
    ET.SubElement(element, f"{{{_OGC}}}Literal").text = value


def style_sld(style: LayerStyle, *, layer: str) -> str:
    """The OGC Styled Layer Descriptor (1.1.0, Symbology Encoding) of ``style`` for layer ``layer``.

    Hidden categories get no rule (an SLD has no unticked classes); a style classed on an
    expression is written with its single symbol.
    """
    ET.register_namespace("", _SLD)
    ET.register_namespace("se", _SE)
    ET.register_namespace("ogc", _OGC)
    root = ET.Element(f"{{{_SLD}}}StyledLayerDescriptor", version="1.1.0")
    named = ET.SubElement(root, f"{{{_SLD}}}NamedLayer")
    _se(named, "Name", layer)
    user = ET.SubElement(named, f"{{{_SLD}}}UserStyle")
    _se(user, "Name", style.name)
    fts = _se(user, "FeatureTypeStyle")
    attribute = style.attribute or ""

    def rule(label: str) -> ET.Element:
        element = _se(fts, "Rule")
        _se(element, "Name", label)
        _se(_se(element, "Description"), "Title", label)
        return element

    if style.categories and not style.expression:
        for cat in style.categories:
            if not cat.visible:
                continue
            element = rule(cat.label)
            _comparison(ET.SubElement(element, f"{{{_OGC}}}Filter"), "PropertyIsEqualTo", attribute, str(cat.value))
            _sld_symbolizer(element, cat.symbol, style.geometry)
    elif style.bands:
        for i, band in enumerate(style.bands):
            element = rule(band.label)
            both = ET.SubElement(ET.SubElement(element, f"{{{_OGC}}}Filter"), f"{{{_OGC}}}And")
            _comparison(both, "PropertyIsGreaterThanOrEqualTo", attribute, repr(float(band.lower)))
            last = i == len(style.bands) - 1
            _comparison(both, "PropertyIsLessThanOrEqualTo" if last else "PropertyIsLessThan", attribute,
                        repr(float(band.upper)))
            _sld_symbolizer(element, band.symbol, style.geometry)
    else:
        _sld_symbolizer(rule(style.name), style.symbol, style.geometry)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- GeoPackage


def write_layer_style(path: PathLike, layer: str, style: LayerStyle, *, default: bool = True) -> None:
    """Store ``style`` for ``layer`` of the GeoPackage ``path`` in its ``layer_styles`` table.

    The table is made as QGIS makes it, registered in ``gpkg_contents`` as ``attributes`` as
    QGIS registers it: GDAL lists it as a table without geometry beside the data layers, as it
    would list it unregistered too (GDAL lists unregistered tables of a file that has no
    registered attribute table). A style of the same name for the same layer is replaced; with ``default`` it becomes
    the style QGIS applies when the layer opens (any other default of the layer is cleared).

    Raises
    ------
    ValidationError
        If ``path`` has no layer ``layer`` with a geometry column.
    """
    path = Path(path)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchone()
        if row is None:
            raise ValidationError(f"{path.name}: no layer {layer!r} with a geometry column to style")
        conn.execute(LAYER_STYLES_DDL)
        conn.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
            "SELECT 'layer_styles', 'attributes', 'layer_styles', 'QGIS layer styles', "
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
            "WHERE NOT EXISTS (SELECT 1 FROM gpkg_contents WHERE table_name = 'layer_styles')"
        )
        if default:
            conn.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (layer,))
        conn.execute("DELETE FROM layer_styles WHERE f_table_name = ? AND styleName = ?", (layer, style.name))
        conn.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
            "styleQML, styleSLD, useAsDefault, description, owner, ui) VALUES ('', '', ?, ?, ?, ?, ?, ?, ?, '', NULL)",
            (layer, row[0], style.name, style_qml(style), style_sld(style, layer=layer), 1 if default else 0,
             style.description),
        )
    conn.close()


def read_layer_styles(path: PathLike) -> list[dict[str, object]]:
    """The rows of the GeoPackage's ``layer_styles`` table (empty when it has none), in insertion order."""
    with sqlite3.connect(Path(path)) as conn:
        conn.row_factory = sqlite3.Row
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'layer_styles'").fetchone() is None:
            rows: Sequence[sqlite3.Row] = []
        else:
            rows = conn.execute("SELECT * FROM layer_styles ORDER BY id").fetchall()
        out = [dict(r) for r in rows]
    conn.close()
    return out


__all__ = ["Band", "Category", "LAYER_STYLES_DDL", "LayerStyle", "Symbol", "qgis_colour", "read_layer_styles",
           "style_qml", "style_sld", "write_layer_style"]
