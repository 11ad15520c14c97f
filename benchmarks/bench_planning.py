"""Benchmark of the location models: our exact MILP (HiGHS on the reduced model), our greedy + swap
heuristic, and spopt's MCLP with CBC, side by side.

Run from the repository root::

    python benchmarks/bench_planning.py              # ours at 1,000 x 80,000; spopt at 200 x 40,000
    python benchmarks/bench_planning.py --spopt-full # spopt at 1,000 x 80,000 too (about 10 minutes, 2 GB)

Demand is synthetic: 80,000 cells drawn around 40 clustered centres (plus a uniform share) in a
57 x 82 km box the size of Luxembourg, weights 1..20; candidates uniform in the box. Coverage
radius 5 km (the reduced model then has about 21,500 rows, as measured for the issue). ``time s``
is coverage, reduction and solve; ``solve s`` the solve alone (the model's ``seconds_``). Memory is
the peak resident set of the process that ran the solve (each solve runs in its own process).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
import warnings
from typing import Any

import numpy as np

BOX = (50_000.0, 57_000.0, 107_000.0, 139_000.0)


def instance(n_sites: int, n_demand: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = BOX
    centres = np.column_stack([rng.uniform(x0, x1, 40), rng.uniform(y0, y1, 40)])
    n_clustered = int(n_demand * 0.7)
    which = rng.integers(0, 40, n_clustered)
    clustered = centres[which] + rng.normal(0, 3_000, (n_clustered, 2))
    uniform = np.column_stack([rng.uniform(x0, x1, n_demand - n_clustered), rng.uniform(y0, y1, n_demand - n_clustered)])
    demand = np.vstack([clustered, uniform])
    sites = np.column_stack([rng.uniform(x0, x1, n_sites), rng.uniform(y0, y1, n_sites)])
    return demand, sites, rng.integers(1, 21, n_demand).astype(float)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ours(n_sites: int, n_demand: int, k: int, method: str, radius: float, queue: Any) -> None:
    from geo_ibm.planning.coverage import coverage_by_radius
    from geo_ibm.planning.models import MaximalCovering

    demand, sites, w = instance(n_sites, n_demand)
    started = time.perf_counter()
    cov = coverage_by_radius(demand, sites, radius=radius)
    model = MaximalCovering(cov, w, k=k)
    red = model.reduced()
    built = time.perf_counter() - started
    model.solve(method=method, time_limit=600)
    queue.put({"objective": model.objective_, "bound": model.bound_, "gap": model.gap_, "status": model.status_,
               "seconds": time.perf_counter() - started, "build_s": built, "solve_s": model.seconds_,
               "bound_kind": model.bound_kind_, "rows": red.a.shape[0], "nnz": red.nnz, "peak_mb": _peak_mb()})


def _spopt(n_sites: int, n_demand: int, k: int, radius: float, queue: Any) -> None:
    import pulp
    from spopt.locate import MCLP

    from geo_ibm.planning.coverage import coverage_by_radius

    demand, sites, w = instance(n_sites, n_demand)
    started = time.perf_counter()
    # spopt takes a dense cost matrix; distances over the radius are set beyond it
    cov = coverage_by_radius(demand, sites, radius=radius)
    dense = np.full(cov.shape, 2 * radius)
    coo = cov.cost.tocoo()
    dense[coo.row, coo.col] = coo.data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MCLP.from_cost_matrix(dense, w, service_radius=radius, p_facilities=k)
        model.solve(pulp.PULP_CBC_CMD(msg=False))
    queue.put({"objective": float(pulp.value(model.problem.objective)), "bound": None, "gap": None,
               "status": pulp.LpStatus[model.problem.status], "seconds": time.perf_counter() - started,
               "peak_mb": _peak_mb()})


def run(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1_000)
    parser.add_argument("--demand", type=int, default=80_000)
    parser.add_argument("--radius", type=float, default=5_000.0)
    parser.add_argument("--k", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--spopt-full", action="store_true", help="Run spopt at the full size too.")
    parser.add_argument("--no-spopt", action="store_true")
    args = parser.parse_args(argv)
    print(f"MCLP, radius {args.radius:g} m; ours at {args.sites:,} sites x {args.demand:,} demand")
    head = (f"{'k':>3} {'solver':<28} {'objective':>12} {'bound':>12} {'gap %':>7} {'vs exact %':>10} {'time s':>8} "
            f"{'solve s':>8} {'peak MB':>8}")
    print(head)
    print("-" * len(head))
    for k in args.k:
        exact = run(_ours, args.sites, args.demand, k, "exact", args.radius)
        heur = run(_ours, args.sites, args.demand, k, "heuristic", args.radius)
        rows = [(f"ours exact ({exact['status']})", exact), ("ours greedy+swap", heur)]
        sizes = [(args.sites, args.demand)] if args.spopt_full else [(200, 40_000)]
        spopt_results = []
        if not args.no_spopt:
            for n_sites, n_demand in sizes:
                spopt_results.append((n_sites, n_demand, run(_spopt, n_sites, n_demand, k, args.radius)))
                if (n_sites, n_demand) != (args.sites, args.demand):
                    small = run(_ours, n_sites, n_demand, k, "exact", args.radius)
                    rows.append((f"ours exact {n_sites}x{n_demand // 1000}k", small))
        for n_sites, n_demand, res in spopt_results:
            rows.append((f"spopt CBC {n_sites}x{n_demand // 1000}k", res))
        for name, res in rows:
            gap = "" if res.get("gap") is None else f"{100 * res['gap']:.3f}"
            bound = "" if res.get("bound") is None else f"{res['bound']:,.0f}"
            versus = f"{100 * (exact['objective'] - res['objective']) / exact['objective']:.3f}" \
                if "x" not in name.split()[-1] else ""
            solve = "" if res.get("solve_s") is None else f"{res['solve_s']:.2f}"
            print(f"{k:>3} {name:<28} {res['objective']:>12,.0f} {bound:>12} {gap:>7} {versus:>10} "
                  f"{res['seconds']:>8.2f} {solve:>8} {res['peak_mb']:>8.0f}")
        print(f"    reduced model: {exact['rows']:,} rows, {exact['nnz']:,} nonzeros (coverage and reduction "
              f"{exact['build_s']:.2f} s); bounds: exact {exact['bound_kind']}, heuristic {heur['bound_kind']}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
