"""The ``geo-ibm routes`` command: corridors, entry attribution, flows and network hotspots as layers."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from geo_ibm.cli.base import main, open_cli_store


@main.command("routes")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output: .gpkg (one layer each: route_segments, route_corridors, ...) or .geojson/.csv "
                   "(one file per layer, <stem>_<layer>.<suffix>).")
@click.option("--quarter", default=None, help="A quarter, e.g. 2026Q3; the previous quarter is compared.")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--region", default=None, help="Police region (Capitale, Centre-Est, Nord, Sud-Ouest).")
@click.option("--entry-country", default=None, help="Only events entering from BE, FR or DE.")
@click.option("--tolerance", type=float, default=250.0, show_default=True,
              help="Snapping tolerance in metres: events farther from every road are listed, not placed.")
@click.option("--network-hotspots/--no-network-hotspots", default=False, show_default=True,
              help="Also compute lixel network kernel density and network Gi*.")
@click.option("--lixel", type=float, default=100.0, show_default=True, help="Lixel length in metres.")
@click.option("--band", type=float, default=1000.0, show_default=True,
              help="Network bandwidth in metres (kernel radius and Gi* neighbourhood along the roads).")
@click.pass_context
def routes(ctx: click.Context, out: Path, quarter: str | None, start: str | None, end: str | None,
           region: str | None, entry_country: str | None, tolerance: float, network_hotspots: bool,
           lixel: float, band: float) -> None:
    """Route analysis of the stored events on the road network; writes its layers to --out."""
    from tqdm import tqdm

    from geo_ibm.network.files import OUTPUT_SUFFIXES, write_routes
    from geo_ibm.network.requests import RouteQuery, route_analysis

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        from geo_ibm.errors import Problem, ValidationError

        raise ValidationError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}, got {out.name!r}",
                              [Problem("unsupported output type", column="out", value=out.name)])
    query = RouteQuery(start=start, end=end, quarter=quarter, region=region, entry_country=entry_country,
                       tolerance_m=tolerance, network_hotspots=network_hotspots, lixel_m=lixel, band_m=band)
    store = open_cli_store(ctx)
    bar = tqdm(total=100, unit="%", desc="routes", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(step: str, done: float) -> None:
        bar.set_postfix_str(step)
        bar.update(round(done * 100) - bar.n)

    try:
        analysis = route_analysis(store, query, progress=progress)
        files = write_routes(analysis, out)
    finally:
        bar.close()
    for warning in analysis.warnings:
        click.echo(f"warning: {warning}", err=True)
    source = analysis.network_source
    click.echo(f"{analysis.n_events} events, {analysis.n_snapped} on the network "
               f"({source['kind']}: {source['source']})")
    if source.get("attribution"):
        click.echo(f"road data {source['attribution']}")
    top = analysis.corridors.head(5)
    for row in top.itertuples():
        click.echo(f"  {row.rank}. {row.ref or '(other roads)'}: {row.events} events, {row.events_per_km:.1f}/km")
    for path in files:
        click.echo(f"wrote {path}")
