"""The ``geo-ibm nearrepeat`` command: the near-repeat (Knox) table of the stored events."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import click

from geo_ibm.cli.base import cli_user, main, open_cli_store
from geo_ibm.errors import Problem, ValidationError

if TYPE_CHECKING:
    import pandas as pd

NEAR_REPEAT_SUFFIXES = (".csv", ".xlsx")


def parse_bands(option: str, text: str | None, edges: str | None) -> tuple[float, ...] | None:
    """The bands of ``--distance BAND:N`` / ``--distance-bands 0,100,...`` (``option`` names the pair); ``None``: default.

    Raises
    ------
    ValidationError
        Both forms given, or text that is not ``WIDTH:COUNT`` / comma-separated numbers.
    """
    if text is not None and edges is not None:
        raise ValidationError(f"--{option} and --{option}-bands: give one of them",
                              [Problem("both given", column=f"--{option}", value=text)])
    try:
        if text is not None:
            width, _, count = text.partition(":")
            if not count:
                raise ValueError(text)
            return (float(width), int(count))
        if edges is not None:
            return tuple(float(v) for v in edges.split(","))
    except ValueError:
        form = "WIDTH:COUNT, e.g. 100:5" if text is not None else "comma-separated edges from 0, e.g. 0,100,200"
        name = f"--{option}" if text is not None else f"--{option}-bands"
        raise ValidationError(f"{name} must be {form}, got {text if text is not None else edges!r}",
                              [Problem(f"not {form}", column=name, value=text if text is not None else edges)]) from None
    return None


def _cell(value: float, digits: int) -> str:
    return "–" if not math.isfinite(value) else f"{value:.{digits}f}"


@main.command("nearrepeat")
@click.option("--quarter", default=None, help="A calendar quarter, e.g. 2026Q3.")
@click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
@click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
@click.option("--region", default=None, help="Police region (Capitale, Centre-Est, Nord, Sud-Ouest).")
@click.option("--distance", default=None, metavar="WIDTH:COUNT",
              help="COUNT distance bands of WIDTH metres, e.g. 100:5 (default 0-100, ..., 400-500 m).")
@click.option("--distance-bands", default=None, metavar="EDGES", help="Distance band edges in metres from 0, e.g. 0,50,200,500.")
@click.option("--time", default=None, metavar="WIDTH:COUNT",
              help="COUNT time bands of WIDTH days, e.g. 7:4 (default 0-7, ..., 21-28 days).")
@click.option("--time-bands", default=None, metavar="EDGES", help="Time band edges in days from 0, e.g. 0,1,3,7,14.")
@click.option("--metric", type=click.Choice(["euclidean", "manhattan"]), default="euclidean", show_default=True,
              help="Distance between two events in EPSG:2169 metres.")
@click.option("--permutations", type=int, default=99, show_default=True,
              help="Monte Carlo permutations of the event times (p-values down to 1/(permutations+1)).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the permutations.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table: .csv or .xlsx.")
@click.pass_context
def nearrepeat(ctx: click.Context, quarter: str | None, start: str | None, end: str | None, region: str | None,
               distance: str | None, distance_bands: str | None, time: str | None, time_bands: str | None,
               metric: str, permutations: int, seed: int, out: Path | None) -> None:
    """Near-repeat table: are interceptions near an earlier one within days more frequent than chance?

    Every pair of events is counted in its distance band and time band; the Knox ratio of a
    cell is its count over the mean count when the event times are shuffled among the
    places, with a Monte Carlo p-value (Ratcliffe's Near Repeat Calculator).
    """
    from tqdm import tqdm

    from geo_ibm.nearrepeat import DEFAULT_DISTANCE_BANDS, DEFAULT_TIME_BANDS, near_repeat

    if out is not None and out.suffix.lower() not in NEAR_REPEAT_SUFFIXES:
        raise ValidationError(f"--out must end in {', '.join(NEAR_REPEAT_SUFFIXES)}, got {out.name!r}",
                              [Problem("unsupported output type", column="out", value=out.name)])
    d_bands = parse_bands("distance", distance, distance_bands) or DEFAULT_DISTANCE_BANDS
    t_bands = parse_bands("time", time, time_bands) or DEFAULT_TIME_BANDS
    store = open_cli_store(ctx)
    if not store.exists():
        raise click.ClickException(f"no store at {store.location}; run 'geo-ibm init' or 'geo-ibm demo'")
    events = store.events(start=start, end=end, quarter=quarter, region=region, columns=["observed_at"])
    bar = tqdm(total=permutations, unit="perm", desc="permutations", file=sys.stderr,
               disable=not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = near_repeat(events, distance_bands_m=d_bands, time_bands_days=t_bands, permutations=permutations,
                             seed=seed, metric=cast(Literal["euclidean", "manhattan"], metric), progress=progress)
    finally:
        bar.close()
    filters = {k: v for k, v in {"quarter": quarter, "from": start, "to": end, "region": region}.items() if v}
    said = ", ".join(f"{k} {v}" for k, v in filters.items()) or "all stored events"
    largest = result.distance_edges[-1]
    click.echo(f"near-repeat table of {result.n} events ({said}): {result.pairs} pairs closer than {largest:g} m "
               f"({metric}), {result.permutations} permutations of the times, seed {seed}")
    if result.reason:
        click.echo(f"nothing to test: {result.reason}")
    table = result.table
    ratios = result.matrix("knox_ratio")
    flags = result.matrix("significant").to_numpy()
    text = ratios.copy().astype(object)
    text.iloc[:, :] = [[_cell(float(v), 2) + (" *" if f else "") for v, f in zip(row, flag)]
                       for row, flag in zip(ratios.to_numpy(), flags)]
    click.echo(f"Knox ratios (* p <= {result.alpha:g} and ratio > 1):")
    click.echo(text.to_string())
    click.echo()
    click.echo(table[["distance_band", "time_band", "observed", "expected", "knox_ratio", "p_value", "significant"]]
               .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    significant = table[table["significant"]]
    click.echo(f"{len(significant)} of {len(table)} cells significant")
    if out is not None:
        _write(result.table, out, events=result.n, filters=filters, note=result.reason)
        click.echo(f"table written to {out}")
        store.audit("export", user=cli_user(None), detail={"what": "near-repeat table", "file": str(out),
                                                        "rows": int(result.n), "filters": filters})


def _write(table: pd.DataFrame, out: Path, *, events: int, filters: dict[str, str], note: str | None) -> None:
    from geo_ibm.io import neutralise_formulas, write_table
    from geo_ibm.tables import tables_to_xlsx

    if out.suffix.lower() == ".csv":
        write_table(neutralise_formulas(table), out)
        return
    data = tables_to_xlsx({"near_repeat": table}, period=filters.get("quarter"), filters=filters, events=events,
                          notes=[note] if note else ())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
