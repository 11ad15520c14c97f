"""The ``geo-ibm roads`` commands: import an OpenStreetMap extract as the road network, show what is installed."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from geo_ibm.cli.base import cli_user, main, open_cli_store


@main.group("roads")
def roads_group() -> None:
    """The road network routes are computed on: an OpenStreetMap extract, else the shipped corridors."""


@roads_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Where the extract comes from, recorded with it (default: the file name).")
@click.option("--date", "extract_date", default=None,
              help="The extract's date, YYYY-MM-DD (default: from the file's header, when it has one).")
@click.option("--margin", "margin", type=float, default=None,
              help="Keep roads up to this many metres outside Luxembourg (default 5000, or GEO_IBM_MARGIN_M if larger).")
@click.pass_context
def roads_import(ctx: click.Context, file: Path, source: str | None, extract_date: str | None,
                 margin: float | None) -> None:
    """Read FILE (.osm or .osm.pbf), keep motorway ... tertiary roads in and around Luxembourg, install them."""
    from tqdm import tqdm

    from geo_ibm.io.osm import osm_extract_date
    from geo_ibm.network.graph import build_network
    from geo_ibm.network.installed import check_extract_date, install_roads
    from geo_ibm.network.osm import read_osm

    check_extract_date(extract_date)  # before minutes of reading
    with tqdm(total=3, desc="roads", unit="step", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        bar.set_postfix_str(f"reading {file.name}")
        roads = read_osm(file, margin_m=margin)
        bar.update()
        bar.set_postfix_str("building the graph")
        network = build_network(roads)
        bar.update()
        bar.set_postfix_str("installing")
        date = extract_date or osm_extract_date(file)
        path = install_roads(roads, source=source or file.name, extract_date=date)
        bar.update()
    components = network.components()
    length_km = float(roads.geometry.length.sum()) / 1000.0
    click.echo(f"{len(roads):,} roads kept, {length_km:,.1f} km, {network.n_components:,} connected "
               f"component{'' if network.n_components == 1 else 's'} "
               f"(the largest {float(components['length_km'].iloc[0]):,.1f} km) from {file} -> {path}")
    click.echo(f"extract date {date or 'unknown'}; data © OpenStreetMap contributors, ODbL 1.0")
    store = open_cli_store(ctx)
    if store.exists():
        store.audit("roads import", user=cli_user(None),
                    detail={"file": str(file), "source": source or file.name, "date": date, "roads": int(len(roads)),
                            "length_km": round(length_km, 3)})


@roads_group.command("info")
@click.pass_context
def roads_info(ctx: click.Context) -> None:
    """What the road network is: the installed extract (source, date, roads, length) or the shipped corridors."""
    from geo_ibm.network.installed import installed_roads_info, installed_roads_path
    from geo_ibm.network.roads import road_source

    info = installed_roads_info()
    if info is None:
        shipped = road_source()
        click.echo(f"shipped schematic corridors: {shipped['roads']} lines; {shipped['source']}")
        click.echo("import an OpenStreetMap extract with 'geo-ibm roads import FILE.osm.pbf'")
        return
    click.echo(f"OpenStreetMap roads installed in {installed_roads_path()}")
    for key in ("source", "date", "installed_at", "roads", "length_km", "attribution"):
        value = info.get(key)
        if key == "length_km" and value is not None:
            value = f"{float(value):,.1f}"
        click.echo(f"  {key}: {value if value is not None else 'unknown'}")
