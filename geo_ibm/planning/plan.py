"""One plan from candidates and demand: coverage, model, solve, and the ranked result tables.

:func:`make_plan` is what the ``geo-ibm plan`` command and the Planning page run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.planning.coverage import Coverage, check_radius, coverage_by_radius, distance_matrix
from geo_ibm.planning.demand import Demand
from geo_ibm.planning.models import MaximalCovering, PMedian, SetCovering, check_share
from geo_ibm.planning.spacetime import best_windows, check_shift_hours, demand_blocks, plan_shifts

MODELS = ("mclp", "lscp", "pmedian")
Progress = Callable[[str], None]


@dataclass
class Plan:
    """A solved plan.

    Attributes
    ----------
    sites
        The chosen sites in rank order (GeoDataFrame, EPSG:2169): ``rank``, the candidates' id
        column and other columns, ``gain`` (weight the site adds to those ranked before it;
        p-median: weighted metres it saves), ``events``, ``persons`` (events and persons
        first reached by this site in rank order; p-median: assigned to it),
        ``share_events``, ``share_persons`` (cumulative shares of all demand, in %),
        ``required``, ``windows`` (space-time plans: the site's shifts; otherwise its three
        busiest 'day hh-hh' windows) .
    demand
        Every demand point (GeoDataFrame): ``weight``, ``events``, ``persons``, ``site``
        (id of the chosen site covering it first or serving it, empty when none),
        ``distance_m`` (to that site; NaN when none).
    summary
        Parameters and results: model, method, objective, bound, gap, status, seconds,
        covered shares, reduced model size.
    """

    sites: gpd.GeoDataFrame
    demand: gpd.GeoDataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def make_plan(candidates: gpd.GeoDataFrame, demand: Demand, *, teams: int | None, radius: float,
              model: str = "mclp", share: float | None = None, shift_hours: int | None = None,
              method: str = "exact", time_limit: float = 30.0, progress: Progress | None = None) -> Plan:
    """Plan control sites (see the module docstring); every parameter is checked before work.

    Parameters
    ----------
    candidates
        From :func:`~geo_ibm.planning.candidates.load_candidates` or ``shipped_candidates``.
    teams
        ``k``: sites (mclp, pmedian) or (site, shift) pairs (with ``shift_hours``); for lscp the
        most sites allowed (``None``: no limit).
    radius
        Straight-line coverage radius in metres.
    share
        lscp: fraction of demand to reach.
    shift_hours
        Plan (site, shift) pairs over hour-of-week blocks of this length (mclp only).
    """
    say = progress or (lambda _msg: None)
    if model not in MODELS:
        raise ValidationError(f"model must be one of {', '.join(MODELS)}, got {model!r}",
                              [Problem("unknown model", column="model", value=model)])
    radius = check_radius(radius)
    if model == "lscp":
        share = check_share(1.0 if share is None else share)
    if shift_hours is not None:
        shift_hours = check_shift_hours(shift_hours)
        if model != "mclp":
            raise ValidationError("shifts: space-time plans use the maximal covering model (--model mclp)",
                                  [Problem("shifts need mclp", column="shifts", value=shift_hours)])
        if (demand.event_hour < 0).any():
            raise ValidationError("shifts: the demand has no hours (a demand file); plan shifts from stored events",
                                  [Problem("no hours", column="shifts")])
    if model != "lscp" and teams is None:
        raise ValidationError("teams: give the number of teams", [Problem("missing", column="teams")])
    id_col = str(candidates.attrs.get("id_column", "site_id"))
    excluded = np.flatnonzero(candidates["excluded"].to_numpy(bool))
    required = np.flatnonzero(candidates["required"].to_numpy(bool))
    site_xy = np.column_stack([candidates.geometry.x.to_numpy(), candidates.geometry.y.to_numpy()])
    xy = demand.xy
    weights = demand.points["weight"].to_numpy(float)
    say(f"coverage: {len(xy):,} demand points x {len(site_xy):,} candidate sites within {radius:g} m")
    coverage = coverage_by_radius(xy, site_xy, radius=radius)
    summary: dict[str, Any] = {"model": model, "method": method, "radius_m": radius, "teams": teams,
                               "share": share, "shift_hours": shift_hours, "time_limit_s": time_limit,
                               "n_candidates": int(len(site_xy)), "n_demand": int(len(xy)),
                               "demand_weight": float(weights.sum()), "coverage_pairs": coverage.nnz}
    windows: list[str]
    if shift_hours is not None:
        assert teams is not None
        blocks = demand_blocks(demand.event_point, demand.event_hour, demand.event_weight, shift_hours=shift_hours,
                               n_points=len(xy))
        say(f"space-time plan: {teams} team-shifts of {shift_hours} h")
        st = plan_shifts(coverage, blocks, k=teams, shift_hours=shift_hours, excluded=excluded, method=method,
                         time_limit=time_limit)
        chosen = np.asarray(pd.unique(st.pairs["site"].to_numpy()), dtype=np.int64)
        per = st.windows().set_index("site")
        windows = [str(per.at[j, "windows"]) for j in chosen]
        gains = per.loc[chosen, "gain"].to_numpy(dtype=float)
        summary.update(objective=st.objective, bound=st.bound, gap=st.gap, status=st.status, seconds=st.seconds,
                       covered_share_hours=100.0 * st.objective / st.total if st.total else 0.0,
                       pairs=[{"site": str(candidates[id_col].iloc[site]), "window": str(window), "gain": gain}
                              for site, window, gain in zip(st.pairs["site"].to_numpy(dtype=np.int64).tolist(),
                                                            st.pairs["window"], st.pairs["gain"].to_numpy(float).tolist(),
                                                            strict=True)])
        assigned, dist = _first_cover(coverage, chosen)
    elif model == "pmedian":
        assert teams is not None
        say("p-median: dense distances")
        cost = distance_matrix(xy, site_xy)
        pm = PMedian(cost, weights, k=teams, required=required, excluded=excluded, radius=radius)
        say(f"solving p-median ({method})")
        pm.solve(method=method, time_limit=time_limit)
        chosen, gains = pm.selected_, pm.gains_
        assigned = pm.assignment_.copy()
        dist = pm.distance_.copy()
        summary.update(_fitted(pm))
        windows = []
    else:
        fitted: MaximalCovering | SetCovering
        if model == "mclp":
            assert teams is not None
            fitted = MaximalCovering(coverage, weights, k=teams, required=required, excluded=excluded)
        else:
            fitted = SetCovering(coverage, weights, share=float(share or 1.0), max_sites=teams, required=required,
                                 excluded=excluded)
        say(f"solving {model} ({method}); reduced model {fitted.reduced().a.shape[0]:,} rows x "
            f"{fitted.reduced().a.shape[1]:,} sites, {fitted.reduced().nnz:,} nonzeros")
        fitted.solve(method=method, time_limit=time_limit)
        chosen, gains = fitted.selected_, fitted.gains_
        summary.update(_fitted(fitted))
        summary.update(reduced_rows=int(fitted.reduced_shape_[0]), reduced_nnz=int(fitted.reduced_nnz_))
        assigned, dist = _first_cover(coverage, chosen)
        windows = []
    events = demand.points["events"].to_numpy(float)
    persons = demand.points["persons"].to_numpy(float)
    ev_site = np.array([events[assigned == j].sum() for j in chosen])
    pe_site = np.array([persons[assigned == j].sum() for j in chosen])
    sites = candidates.iloc[chosen].drop(columns=["excluded"]).copy().reset_index(drop=True)
    sites.insert(0, "rank", np.arange(1, len(sites) + 1))
    sites["gain"] = gains
    sites["events"] = ev_site.astype(np.int64)
    sites["persons"] = pe_site.astype(np.int64)
    sites["share_events"] = 100.0 * np.cumsum(ev_site) / events.sum() if events.sum() else np.nan
    sites["share_persons"] = 100.0 * np.cumsum(pe_site) / persons.sum() if persons.sum() else np.nan
    if not windows and (demand.event_hour >= 0).all():
        blocks = demand_blocks(demand.event_point, demand.event_hour, demand.event_weight, shift_hours=4,
                               n_points=len(xy))
        windows = [", ".join(label for label, _ in best) for best in best_windows(coverage, blocks, chosen,
                                                                                   shift_hours=4)]
    sites["windows"] = windows if windows else ""
    covered = assigned >= 0
    summary.update(covered_share_events=100.0 * float(events[covered].sum()) / events.sum() if events.sum() else None,
                   covered_share_persons=100.0 * float(persons[covered].sum()) / persons.sum() if persons.sum() else None,
                   sites=[str(s) for s in sites[id_col]])
    ids = candidates[id_col].astype(str).to_numpy()
    dem = demand.points.copy()
    dem["site"] = np.where(covered, ids[np.maximum(assigned, 0)], "")
    dem["distance_m"] = np.where(covered, dist, np.nan)
    return Plan(sites, dem, summary)


def _fitted(model: MaximalCovering | SetCovering | PMedian) -> dict[str, Any]:
    return {"objective": float(model.objective_), "bound": float(model.bound_), "gap": float(model.gap_),
            "bound_kind": model.bound_kind_, "status": model.status_, "seconds": round(float(model.seconds_), 3),
            "covered_share_weight": float(model.perc_cov_)}


def _first_cover(coverage: Coverage, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per demand point the first chosen site (rank order) reaching it and its distance; ``-1``/NaN when none."""
    n = coverage.shape[0]
    assigned = np.full(n, -1, dtype=np.int64)
    dist = np.full(n, np.nan)
    csc = coverage.cost.tocsc()
    for j in chosen:
        rows = csc.indices[csc.indptr[j]:csc.indptr[j + 1]]
        vals = csc.data[csc.indptr[j]:csc.indptr[j + 1]]
        new = assigned[rows] < 0
        assigned[rows[new]] = j
        dist[rows[new]] = vals[new]
    return assigned, dist
