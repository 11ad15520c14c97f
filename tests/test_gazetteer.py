"""Tests for geo_ibm.gazetteer: the shipped commune file, landmarks and place names."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_ibm import gazetteer, layers
from geo_ibm.errors import CrsError, ValidationError
from geo_ibm.settings import WORKING_CRS

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE = REPO_ROOT / "data" / "sources" / "act_limadmin_communes.geojson"


def _script():
    spec = importlib.util.spec_from_file_location("build_gazetteer", REPO_ROOT / "scripts" / "build_gazetteer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def communes() -> gpd.GeoDataFrame:
    return gazetteer.communes()


# --------------------------------------------------------------------------- the shipped file


def test_100_communes_in_12_cantons_with_their_regions(communes):
    assert len(communes) == 100 and communes["commune"].is_unique and communes["lau2"].is_unique
    assert communes.crs.to_epsg() == 2169
    assert set(communes["canton"]) == set(layers.CANTON_REGION)
    assert (communes["region"] == communes["canton"].map(layers.CANTON_REGION)).all()
    assert communes.groupby("canton").size().to_dict() == {
        "Capellen": 9, "Clervaux": 5, "Diekirch": 10, "Echternach": 7, "Esch-sur-Alzette": 14, "Grevenmacher": 8,
        "Luxembourg": 11, "Mersch": 10, "Redange": 9, "Remich": 7, "Vianden": 3, "Wiltz": 7}
    assert sorted(communes.loc[communes["rank"] == 1, "commune"]) == [
        "Clervaux", "Diekirch", "Echternach", "Esch-sur-Alzette", "Grevenmacher", "Luxembourg", "Mersch",
        "Redange/Attert", "Remich", "Vianden", "Wiltz"]


def test_every_label_point_lies_inside_its_commune(communes):
    points = shapely.points(communes["label_x"].to_numpy(), communes["label_y"].to_numpy())
    assert shapely.contains(communes.geometry.to_numpy(), points).all()
    # Well inside, not on a limit: the pole of inaccessibility of a commune of a few km² is hundreds of metres in.
    depth = shapely.distance(points, shapely.boundary(communes.geometry.to_numpy()))
    assert depth.min() > 200


def test_communes_equal_the_act_source_and_tile_the_country(communes):
    source = gpd.read_file(SOURCE).to_crs(WORKING_CRS)
    assert sorted(source["COMMUNE"]) == sorted(communes["commune"])
    joined = communes.merge(pd.DataFrame({"commune": source["COMMUNE"], "src": source.geometry}), on="commune")
    # Simplified at 5 m: every commune keeps its area within 0.1 % and lies within 5 m of the source.
    ratio = shapely.area(joined.geometry.to_numpy()) / shapely.area(joined["src"].to_numpy())
    assert np.abs(ratio - 1).max() < 1e-3
    assert max(shapely.hausdorff_distance(a, b) for a, b in zip(joined.geometry, joined["src"])) <= 5.0 + 1e-6
    # As one coverage: no overlaps, the union is the source's country (2,586 km² by STATEC).
    overlaps = shapely.area(shapely.union_all(communes.geometry.to_numpy()))
    assert abs(overlaps - communes.geometry.area.sum()) < 1e4  # under 0.01 km² of overlap in all
    assert 2575 < overlaps / 1e6 < 2600


def test_the_build_is_reproducible_and_checks_its_source(tmp_path):
    script = _script()
    out = tmp_path / "communes.geojson"
    assert script.main(["--out", str(out)]) == 0
    assert out.read_bytes() == (REPO_ROOT / "data" / "boundaries" / "communes.geojson").read_bytes()
    broken = gpd.read_file(SOURCE)
    broken.loc[3, "CANTON"] = "Atlantis"
    broken = broken.drop(index=7)
    path = tmp_path / "broken.geojson"
    broken.to_file(path, driver="GeoJSON")
    with pytest.raises(ValidationError, match="bad commune rows") as info:
        script.build(path)
    reasons = [str(p) for p in info.value.problems]
    assert any("row 4" in r and "unknown canton" in r and "Atlantis" in r for r in reasons)
    assert any("99 communes, expected 100" in r for r in reasons)


# --------------------------------------------------------------------------- landmarks


def test_landmarks_carry_every_control_site_with_crossing_kinds():
    marks = gazetteer.landmarks()
    sites = gpd.read_file(REPO_ROOT / "data" / "boundaries" / "control_sites.geojson")
    assert list(marks["landmark_id"]) == list(sites["site_id"]) and marks.crs.to_epsg() == 2169
    crossings = gpd.read_file(REPO_ROOT / "data" / "boundaries" / "crossing_points.geojson")
    kinds = dict(zip(marks["landmark_id"], marks["kind"]))
    assert all(kinds[i] == k for i, k in zip(crossings["crossing_id"], crossings["kind"]))
    labels = dict(zip(marks["landmark_id"], zip(marks["label_en"], marks["label_fr"])))
    assert labels["AIRE-BERCHEM"] == ("Aire de Berchem", "Aire de Berchem")
    assert labels["BE-A6-STERPENICH"] == ("Steinfort – Sterpenich crossing", "passage Steinfort – Sterpenich")
    assert labels["DE-N2-REMICH"] == ("Moselle bridge Remich – Nennig", "Pont de la Moselle Remich – Nennig")
    assert labels["ELLX"] == ("Luxembourg Airport", "Aéroport de Luxembourg")
    assert labels["FR-RAIL-BETTEMBOURG"] == ("Rail crossing Bettembourg – Zoufftgen",
                                             "Passage ferroviaire Bettembourg – Zoufftgen")


# --------------------------------------------------------------------------- place names on planted layers


@pytest.fixture
def planted():
    """A 10 km square commune 'Roeser' (canton Esch-sur-Alzette) west of one 'Bettembourg', an A3 along x = 5 000,
    a service area on it and a station in Bettembourg."""
    commune_layer = gpd.GeoDataFrame(
        {"commune": ["Roeser", "Bettembourg"], "canton": ["Esch-sur-Alzette", "Esch-sur-Alzette"],
         "region": ["Sud-Ouest", "Sud-Ouest"]},
        geometry=[shapely.box(0, 0, 10_000, 10_000), shapely.box(10_000, 0, 20_000, 10_000)], crs=WORKING_CRS)
    roads = gpd.GeoDataFrame({"ref": ["A3;E25", "", "N31"]},
                             geometry=[shapely.LineString([(5_000, -5_000), (5_000, 15_000)]),
                                       shapely.LineString([(14_000, 0), (14_000, 10_000)]),
                                       shapely.LineString([(0, 9_000), (20_000, 9_000)])], crs=WORKING_CRS)
    marks = gpd.GeoDataFrame({"label_en": ["Aire de Berchem", "Gare de Bettembourg"],
                              "label_fr": ["Aire de Berchem", "Gare de Bettembourg"],
                              "kind": ["service_area", "station"]},
                             geometry=[shapely.Point(5_200, 5_000), shapely.Point(15_000, 5_000)], crs=WORKING_CRS)
    return {"roads": roads, "landmark_layer": marks, "commune_layer": commune_layer}


def test_a_point_on_the_a3_near_the_service_area_is_named_by_all_three(planted):
    xy = np.array([[5_100.0, 5_400.0],     # on the A3, 420 m from the service area
                   [14_050.0, 5_000.0],    # by a road without ref, near the station of its commune's name
                   [17_000.0, 1_000.0],    # nothing near in reach
                   [2_000.0, 8_800.0],     # on the N31, no landmark within 3 km
                   [-3_000.0, 5_000.0]])   # 3 km outside every commune, beyond its 2 km
    places = gazetteer.place_name(xy, **planted)
    assert places["name"].tolist() == ["A3 at Aire de Berchem (Roeser)", "Gare de Bettembourg", "Bettembourg",
                                       "N31 (Roeser)", ""]
    assert places["road_ref"].tolist() == ["A3", "", "", "N31", ""]
    assert places["road_distance_m"].iloc[0] == pytest.approx(100.0)
    assert places["landmark_distance_m"].iloc[0] == pytest.approx(np.hypot(100, 400))
    assert places["landmark_kind"].tolist()[:2] == ["service_area", "station"]
    assert places["commune"].tolist()[:4] == ["Roeser", "Bettembourg", "Bettembourg", "Roeser"]
    assert places[["commune", "canton", "region"]].iloc[4].isna().all()
    assert places["canton"].tolist()[:4] == ["Esch-sur-Alzette"] * 4 and places["region"].iloc[0] == "Sud-Ouest"
    french = gazetteer.place_name(xy, lang="fr", **planted)["name"].tolist()
    assert french[0] == "A3, Aire de Berchem (Roeser)" and french[1:4] == ["Gare de Bettembourg", "Bettembourg", "N31 (Roeser)"]


def test_reaches_are_parameters(planted):
    xy = np.array([[5_100.0, 5_400.0], [-1_500.0, 5_000.0]])
    near = gazetteer.place_name(xy, road_distance_m=50, landmark_distance_m=300, **planted)
    assert near["name"].tolist() == ["Roeser", "Roeser"]  # the second: nearest commune, 1.5 km away
    far = gazetteer.place_name(xy, commune_distance_m=1_000, **planted)
    assert far["commune"].iloc[0] == "Roeser" and pd.isna(far["commune"].iloc[1])


def test_points_in_another_crs_keep_their_index(planted):
    points = gpd.GeoSeries([shapely.Point(5_100, 5_400)], index=["x7"], crs=WORKING_CRS).to_crs(4326)
    places = gazetteer.place_name(points, **planted)
    assert list(places.index) == ["x7"] and places.at["x7", "name"] == "A3 at Aire de Berchem (Roeser)"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lang": "de"}, "lang must be one of en, fr"),
    ({"road_distance_m": -1}, "road_distance_m must be a distance"),
    ({"landmark_distance_m": "far"}, "landmark_distance_m must be a distance"),
    ({"commune_distance_m": float("nan")}, "commune_distance_m must be a distance"),
])
def test_bad_options_are_refused_by_name(planted, kwargs, match):
    with pytest.raises(ValidationError, match=match):
        gazetteer.place_name(np.array([[0.0, 0.0]]), **planted, **kwargs)


def test_points_must_be_points_with_a_crs(planted):
    with pytest.raises(ValidationError, match="1 geometries are not points"):
        gazetteer.place_name(gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs=WORKING_CRS), **planted)
    with pytest.raises(CrsError):
        gazetteer.place_name(gpd.GeoSeries([shapely.Point(0, 0)]), **planted)
    with pytest.raises(ValidationError, match=r"\(n, 2\) array"):
        gazetteer.place_name(np.zeros(3), **planted)


def test_unique_names_number_repeats():
    assert gazetteer.unique_names(["Remich", "A3 (Roeser)", "Remich", "Remich"]) == [
        "Remich", "A3 (Roeser)", "Remich #2", "Remich #3"]


# --------------------------------------------------------------------------- place names on the shipped layers


def test_the_shipped_layers_name_the_a3_at_berchem():
    # The service area's own position, and the A3's schematic line 1.2 km east of it.
    point = gpd.GeoSeries.from_xy([6.1335], [49.5465], crs=4326)
    place = gazetteer.place_name(point).iloc[0]
    assert place["name"] == "A3 at Aire de Berchem (Roeser)"
    assert (place["commune"], place["canton"], place["region"]) == ("Roeser", "Esch-sur-Alzette", "Sud-Ouest")


def test_communes_agree_with_a_spatial_join_on_the_source():
    rng = np.random.default_rng(5)
    outline = layers.luxembourg_outline().geometry.iloc[0]
    minx, miny, maxx, maxy = outline.bounds
    xy = np.column_stack([rng.uniform(minx, maxx, 3000), rng.uniform(miny, maxy, 3000)])
    source = gpd.read_file(SOURCE).to_crs(WORKING_CRS)
    probe = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=WORKING_CRS)
    joined = gpd.sjoin(probe, source[["COMMUNE", "CANTON", "geometry"]], predicate="within").sort_index()
    # Points more than 10 m inside their source commune: the simplification (5 m) cannot move them across.
    depth = shapely.distance(joined.geometry.to_numpy(),
                             shapely.boundary(source.geometry.to_numpy()[joined["index_right"].to_numpy()]))
    deep = joined[depth > 10]
    assert len(deep) > 1500
    places = gazetteer.place_name(np.column_stack([deep.geometry.x, deep.geometry.y]))
    assert places["commune"].tolist() == deep["COMMUNE"].tolist()
    assert places["canton"].tolist() == deep["CANTON"].tolist()


# --------------------------------------------------------------------------- place labels on the maps


def test_every_web_map_gets_the_place_labels_as_a_switchable_layer():
    import geopandas as gpd

    from geo_ibm import maps
    from geo_ibm.maps.placelabels import label_records

    ref = {"outline": layers.luxembourg_outline(), "borders": layers.internal_borders()}
    overview = maps.overview_map(gpd.GeoDataFrame(geometry=[], crs=WORKING_CRS), crossings=layers.crossing_points(), **ref)
    hotspot = maps.hotspot_map(**ref)
    for fmap in (overview, hotspot):
        assert maps.layer_names(fmap)[:2] == ["Luxembourg", "Place labels"]
    doc = maps.render_map(overview)
    records = label_records(gazetteer.commune_points())
    assert len(records) == 100 and doc.count('"rank": 1,') == 11
    assert all(f'"name": {json.dumps(r["name"])}' in doc for r in records)
    points = gazetteer.commune_points().to_crs(4326)
    assert [r["lat"] for r in records] == [round(y, 5) for y in points.geometry.y]
    assert "textContent = p.name" in doc  # names become text nodes, never markup


def test_place_label_names_cannot_become_markup():
    import folium

    from geo_ibm.maps import render_map
    from geo_ibm.maps.placelabels import add_place_labels

    hostile = "</script><img src=x onerror=alert(1)>`${x}`"
    places = gpd.GeoDataFrame({"commune": [hostile], "rank": [1]}, geometry=[shapely.Point(77_000, 75_000)],
                              crs=WORKING_CRS)
    fmap = folium.Map(tiles=None)
    group = add_place_labels(fmap, places, t=lambda s: "Noms de lieux" if s == "Place labels" else s, show=False)
    assert group.layer_name == "Noms de lieux" and group.show is False
    doc = render_map(fmap)
    assert "<img src=x" not in doc and "</script><img" not in doc
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in doc


def _drawn_boxes(fig, texts):
    renderer = fig.canvas.get_renderer()
    return [t.get_window_extent(renderer) for t in texts]


def test_print_map_labels_fit_and_never_overlap():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from geo_ibm.figures.labels import MAX_NATIONAL_LABELS, draw_place_labels

    seats = {"Clervaux", "Diekirch", "Echternach", "Esch-sur-Alzette", "Grevenmacher", "Luxembourg", "Mersch",
             "Redange/Attert", "Remich", "Vianden", "Wiltz"}
    drawn = {}
    for name, bounds in [("national", layers.luxembourg_outline().total_bounds),
                         ("Sud-Ouest", layers.police_regions().set_index("region").loc[["Sud-Ouest"]].total_bounds)]:
        fig = Figure(figsize=(4, 5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(bounds[0], bounds[2])
        ax.set_ylim(bounds[1], bounds[3])
        ax.set_aspect("equal")
        texts = draw_place_labels(ax, fontsize=6)
        boxes = _drawn_boxes(fig, texts)
        frame = ax.get_window_extent(fig.canvas.get_renderer())
        assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
        assert not any(a.overlaps(b) for k, a in enumerate(boxes) for b in boxes[k + 1:])
        assert [t.get_text() for t in ax.texts] == [t.get_text() for t in texts]  # the names left out are removed
        drawn[name] = {t.get_text() for t in texts}
    assert seats <= drawn["national"] and len(drawn["national"]) <= MAX_NATIONAL_LABELS
    south_west = set(gazetteer.communes().query("region == 'Sud-Ouest'")["commune"])
    assert len(drawn["Sud-Ouest"] & south_west) >= 15


def test_labels_at_one_spot_give_one_name():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from geo_ibm.figures.labels import draw_place_labels

    places = gpd.GeoDataFrame({"commune": ["Alpha", "Beta", "Gamma"], "rank": [2, 1, 2], "area_km2": [5.0, 1.0, 9.0]},
                              geometry=[shapely.Point(500, 500), shapely.Point(510, 505), shapely.Point(990, 100)],
                              crs=WORKING_CRS)
    fig = Figure(figsize=(3, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1000)
    ax.set_ylim(0, 1000)
    # The seat wins the shared spot; Gamma sits too near the right edge to fit at this size.
    assert [t.get_text() for t in draw_place_labels(ax, places, fontsize=8)] == ["Beta"]


def test_the_print_map_labels_its_communes():
    from geo_ibm.figures import static_map

    ref = {"outline": layers.luxembourg_outline(), "borders": layers.internal_borders(),
           "crossings": layers.crossing_points()}
    names = set(gazetteer.communes()["commune"])
    with_labels = {t.get_text() for t in static_map(**ref).axes[0].texts}
    assert len(with_labels & names) >= 11
    assert not {t.get_text() for t in static_map(**ref, place_labels=False).axes[0].texts} & names
