"""A small OpenStreetMap extract around Luxembourg written as OSM XML, and as .osm.pbf by libosmium.

Used by the tests of reading extracts (``test_network_osm``) and of the ``roads`` commands
(``test_roads_cli``).
"""
from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

import osmium

# Ways of the standard extract: id -> (tags, (lon, lat) vertices). Shared vertices are shared nodes.
A3 = [(6.12, 49.58), (6.11, 49.52), (6.10, 49.50)]
WAYS: dict[int, tuple[dict[str, str], list[tuple[float, float]]]] = {
    100: ({"highway": "motorway", "ref": "A3", "oneway": "yes", "maxspeed": "130", "name": "Autoroute de Dudelange"},
          A3),
    101: ({"highway": "motorway_link"}, [(6.11, 49.52), (6.115, 49.515)]),  # no oneway tag: nothing implied
    102: ({"highway": "primary", "ref": "N6; E44", "oneway": "-1", "maxspeed": "50 mph", "name": 'Route "d\'Arlon"'},
          [(6.00, 49.64), (5.95, 49.66)]),
    103: ({"highway": "secondary", "maxspeed": "FR:urban", "oneway": "no", "ref": "N7"},
          [(6.10, 49.75), (6.08, 49.85)]),
    104: ({"highway": "tertiary", "maxspeed": "30;50", "oneway": "reverse",
           "description": 'x","maxspeed"=>"999'},  # a look-alike inside another tag's value
          [(6.12, 49.58), (6.13, 49.60)]),
    105: ({"highway": "trunk", "maxspeed": "none", "oneway": "true", "ref": "B7"}, [(6.13, 49.60), (6.15, 49.63)]),
    106: ({"highway": "footway", "name": "Chemin"}, [(6.12, 49.58), (6.125, 49.585)]),
    107: ({"highway": "residential", "name": "Rue"}, [(6.13, 49.60), (6.135, 49.605)]),
    108: ({"highway": "primary", "name": "Boulevard"}, [(2.35, 48.85), (2.36, 48.86)]),  # Paris
    109: ({"highway": "secondary", "maxspeed": "10 knots", "ref": "N10"}, [(6.30, 49.61), (7.00, 49.61)]),  # into DE
}


def write_osm(path: Path, ways: dict[int, tuple[dict[str, str], list[tuple[float, float]]]] = WAYS, *,
              timestamp: str | None = None) -> Path:
    """An OSM XML file of ``ways``; a vertex used twice is one node."""
    nodes: dict[tuple[float, float], int] = {}
    for _, coords in ways.values():
        for xy in coords:
            nodes.setdefault(xy, len(nodes) + 1)
    stamp = f' timestamp="{timestamp}"' if timestamp else ""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', f'<osm version="0.6" generator="test"{stamp}>']
    lines += [f'  <node id="{n}" version="1" lat="{lat}" lon="{lon}"/>' for (lon, lat), n in nodes.items()]
    for way_id, (tags, coords) in ways.items():
        lines.append(f'  <way id="{way_id}" version="1">')
        lines += [f'    <nd ref="{nodes[xy]}"/>' for xy in coords]
        lines += [f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags.items()]
        lines.append("  </way>")
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def to_pbf(xml: Path, pbf: Path, *, replication_timestamp: str | None = None) -> Path:
    """``xml`` rewritten as an .osm.pbf file by libosmium (pyosmium)."""
    header = osmium.io.Header()
    if replication_timestamp:
        header.set("osmosis_replication_timestamp", replication_timestamp)
    writer = osmium.SimpleWriter(str(pbf), header=header)
    try:
        for obj in osmium.FileProcessor(str(xml)):
            writer.add(obj)
    finally:
        writer.close()
    return pbf
