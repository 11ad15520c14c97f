"""The ``geo-ibm`` planning commands."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from geo_ibm.cli.base import cli_user, main, open_cli_store
from geo_ibm.errors import Problem, ValidationError


@main.command()
@click.option("--teams", type=int, default=None,
              help="Teams k: sites to open (mclp, pmedian), (site, shift) pairs with --shifts, most sites for lscp.")
@click.option("--radius", type=float, required=True, help="Straight-line coverage radius in metres.")
@click.option("--model", type=click.Choice(["mclp", "lscp", "pmedian"]), default="mclp", show_default=True,
              help="Maximal covering, set covering (fewest sites reaching --share) or p-median.")
@click.option("--share", type=float, default=None, help="lscp: fraction of demand to reach, in (0, 1] (default 1).")
@click.option("--shifts", "shift_hours", type=int, default=None,
              help="Plan (site, shift) pairs over the week's hour blocks of this many hours (e.g. 4).")
@click.option("--candidates", "candidates_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Candidate sites (CSV with lat/lon or x/y, GeoJSON, GeoPackage); default: the shipped control sites.")
@click.option("--id-column", default=None, help="The candidate file's id column (default: site_id, id, ...).")
@click.option("--demand", "demand_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Demand points with a weight column instead of the stored events.")
@click.option("--weight", type=click.Choice(["events", "persons"]), default="events", show_default=True,
              help="Weight of stored events.")
@click.option("--cell", type=float, default=100.0, show_default=True, help="Demand cell size in metres (stored events).")
@click.option("--half-life", "half_life", type=float, default=None, help="Recency decay half-life in days.")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--region", default=None, help="Police region (Capitale, Centre-Est, Nord, Sud-Ouest).")
@click.option("--exact/--heuristic", default=True, show_default=True,
              help="Exact MILP (HiGHS) or greedy + swap with a bound.")
@click.option("--time-limit", type=float, default=60.0, show_default=True, help="Seconds for an exact solve.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output: .gpkg (sites and covered demand layers) or .csv (ranked sites).")
@click.pass_context
def plan(ctx: click.Context, teams: int | None, radius: float, model: str, share: float | None,
         shift_hours: int | None, candidates_file: Path | None, id_column: str | None, demand_file: Path | None,
         weight: str, cell: float, half_life: float | None, start: str | None, end: str | None, region: str | None,
         exact: bool, time_limit: float, out: Path) -> None:
    """Plan control locations for k teams: which sites (and shifts) cover most activity; writes the ranked plan."""
    from geo_ibm.planning.candidates import load_candidates, shipped_candidates
    from geo_ibm.planning.demand import demand_from_events, load_demand
    from geo_ibm.planning.files import OUTPUT_SUFFIXES, write_plan
    from geo_ibm.planning.plan import make_plan

    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValidationError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}, got {out.name!r}",
                              [Problem("unsupported output type", column="out", value=out.name)])

    def say(message: str) -> None:
        click.echo(message, err=True)

    candidates = load_candidates(candidates_file, id_column=id_column) if candidates_file else shipped_candidates()
    store = None
    if demand_file is not None:
        demand = load_demand(demand_file)
    else:
        store = open_cli_store(ctx)
        events = store.events(start=start, end=end, region=region)
        if events.empty:
            chosen = {"--from": start, "--to": end, "--region": region}
            said = ", ".join(f"{k} {v}" for k, v in chosen.items() if v) or "no filter"
            raise ValidationError(f"demand: no events in {store.location} match the selection ({said})",
                                  [Problem("no demand", column="demand")])
        demand = demand_from_events(events, weight=weight, cell=cell, half_life_days=half_life)
    say(f"{len(candidates)} candidate sites, {len(demand.points):,} demand points")
    result = make_plan(candidates, demand, teams=teams, radius=radius, model=model, share=share,
                       shift_hours=shift_hours, method="exact" if exact else "heuristic", time_limit=time_limit,
                       progress=say)
    params = dict(result.summary)
    params.update({"from": start, "to": end, "region": region, "weight": weight,
                   "candidates": str(candidates_file) if candidates_file else "data/boundaries/control_sites.geojson",
                   "demand": str(demand_file) if demand_file else "stored events"})
    write_plan(result.sites, out, layer="plan_sites", metadata=params)
    if out.suffix.lower() == ".gpkg":
        write_plan(result.demand, out, layer="plan_demand", metadata=params)
    id_col = str(candidates.attrs.get("id_column", "site_id"))
    for row in result.sites.itertuples():
        say(f"  {row.rank:>3}. {getattr(row, id_col)}  gain {row.gain:,.1f}  cumulative {row.share_events:.1f}% of events"
            if demand_file is None else f"  {row.rank:>3}. {getattr(row, id_col)}  gain {row.gain:,.1f}")
    click.echo(json.dumps(params, indent=2, default=str))
    click.echo(f"{len(result.sites)} sites written to {out}")
    if store is None:
        store = open_cli_store(ctx)
    store.audit("export", user=cli_user(None), detail={"what": f"plan {model}", "file": str(out),
                                                    "teams": teams, "radius_m": radius, "sites": params["sites"]})
    sys.stderr.flush()
