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


@main.group()
def operations() -> None:
    """National operations: save a plan with its dates, list, show and evaluate them."""


@operations.command("add")
@click.argument("name")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The plan GeoPackage written by 'geo-ibm plan --out FILE.gpkg'.")
@click.option("--from", "start", required=True, help="First day of the operation (YYYY-MM-DD).")
@click.option("--to", "end", required=True, help="Last day of the operation (YYYY-MM-DD), inclusive.")
@click.option("--hours-per-day", type=float, default=None,
              help="Plans without shifts: hours each team works a day at its site (default 8).")
@click.option("--user", default=None, help="Name recorded in the audit trail (default: login name).")
@click.pass_context
def operations_add(ctx: click.Context, name: str, plan_file: Path, start: str, end: str, hours_per_day: float | None,
                   user: str | None) -> None:
    """Save the plan in PLAN as operation NAME (events imported with operation_id NAME are its results)."""
    from geo_ibm.planning.files import read_plan
    from geo_ibm.planning.operations import operation_from_plan, save_operation

    sites, params = read_plan(plan_file)
    op = operation_from_plan(sites, params, name=name, start=start, end=end, hours_per_day=hours_per_day)
    save_operation(open_cli_store(ctx), op, user=cli_user(user))
    hours = f"shifts of {op.shift_hours} h" if op.shift_hours else f"{op.hours_per_day:g} h a day"
    click.echo(f"operation {op.name!r} saved: {op.start} to {op.end} ({op.days} days), {op.teams} teams at "
               f"{len(op.sites)} sites, {hours}, radius {op.radius_m:g} m")


@operations.command("list")
@click.pass_context
def operations_list(ctx: click.Context) -> None:
    """The saved operations, newest first."""
    listed = open_cli_store(ctx).operations()
    if listed.empty:
        click.echo("no operations saved; 'geo-ibm operations add NAME --plan FILE.gpkg --from D --to D' saves one")
        return
    for row in listed.itertuples():
        click.echo(f"{row.name:<30} {row.start_date} to {row.end_date}  saved {row.created:%Y-%m-%d %H:%M} UTC "
                   f"by {row.user}")


@operations.command("show")
@click.argument("name")
@click.pass_context
def operations_show(ctx: click.Context, name: str) -> None:
    """One saved operation: dates, teams, sites, shifts and the plan's parameters, as JSON."""
    from geo_ibm.planning.operations import load_operation, to_body

    op = load_operation(open_cli_store(ctx), name)
    click.echo(json.dumps({"created": str(op.created), "user": op.user, **json.loads(to_body(op))}, indent=2))


@operations.command("evaluate")
@click.argument("name")
@click.option("--baseline-weeks", type=int, default=8, show_default=True,
              help="Weeks before the operation giving the baseline of the same places and hours.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the evaluation: .csv (per site), .xlsx (sites and summary) or .gpkg (sites layer).")
@click.option("--user", default=None, help="Name recorded in the audit trail (default: login name).")
@click.pass_context
def operations_evaluate(ctx: click.Context, name: str, baseline_weeks: int, out: Path | None,
                        user: str | None) -> None:
    """How operation NAME did: interceptions per team-hour, share of national, against forecast and baseline."""
    from geo_ibm.planning.files import EVALUATION_SUFFIXES, evaluation_bytes
    from geo_ibm.planning.operations import evaluate_operation, evaluation_events, load_operation

    if out is not None and out.suffix.lower() not in EVALUATION_SUFFIXES:
        raise ValidationError(f"--out must end in {', '.join(EVALUATION_SUFFIXES)}, got {out.name!r}",
                              [Problem("unsupported output type", column="out", value=out.name)])
    store = open_cli_store(ctx)
    op = load_operation(store, name)
    result = evaluate_operation(op, evaluation_events(store, op, baseline_weeks=baseline_weeks),
                                baseline_weeks=baseline_weeks)
    s = result.summary

    def num(value: object, fmt: str = ",.1f") -> str:
        return "n/a" if value is None else format(value, fmt)

    click.echo(f"operation {op.name}: {s['start']} to {s['end']} ({s['days']} days), {s['teams']} teams, "
               f"{num(s['team_hours'], ',.0f')} team-hours")
    click.echo(f"  interceptions {s['operation_events']:,} ({num(s['operation_persons'], ',.0f')} persons), "
               f"{num(s['events_per_team_hour'], '.3f')} per team-hour, "
               f"{num(s['share_of_national_pct'])} % of the {s['national_events']:,} in the country")
    click.echo(f"  covered events {num(s['covered_events'], ',.0f')}; forecast {num(s['forecast_events'])} "
               f"({num(s['vs_forecast_pct'], '+.1f')} %); baseline of {baseline_weeks} weeks before "
               f"{num(s['baseline_events'])} ({num(s['vs_baseline_pct'], '+.1f')} %)")
    shown = result.sites.drop(columns="geometry")
    click.echo(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(evaluation_bytes(result.sites, s, suffix=out.suffix.lower(), workdir=out.parent))
        click.echo(f"evaluation written to {out}")
    store.audit("export" if out else "operation", user=cli_user(user),
                detail={"what": "operation evaluation", "name": op.name, "file": str(out) if out else None})
