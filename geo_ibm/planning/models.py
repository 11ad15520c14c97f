"""Location models in spopt's shape: maximal covering, set covering (a share of demand) and p-median.

Each model is built from a coverage or cost matrix first (:class:`~geo_ibm.planning.coverage.Coverage`
or a dense distance array), ``solve()`` returns the model with its fitted attributes (ending in
``_``), and ``to_geodataframe()`` turns the chosen sites into a GeoDataFrame.

Exact solves are mixed-integer programs solved by HiGHS (``scipy.optimize.milp``) on a reduced
model: demand no site reaches is dropped, demand already covered by required sites is set
aside, and demand rows with identical covering sets are merged into one row carrying their
summed weight. Heuristic solves are greedy plus one-site swaps and report a valid bound on
the optimum, so a user sees how far from optimal the answer can be; for maximal covering that
bound is Lagrangian (the coverage constraints relaxed, multipliers found by subgradient steps).
An exact maximal covering solve starts from the heuristic: a Lagrangian bound that meets the
heuristic's value proves it optimal, and otherwise the multipliers fix sites in or out before
HiGHS solves what is left.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from geo_ibm.errors import Problem, ValidationError
from geo_ibm.eventframe import as_number
from geo_ibm.planning.coverage import Coverage

Method = Literal["exact", "heuristic"]

MAX_TEAMS = 200
"""Most sites (teams) one plan places."""

MAX_TIME_LIMIT = 3_600.0
"""Longest time limit of an exact solve, in seconds."""

MAX_EXACT_NONZEROS = 6_000_000
"""Most nonzeros of the reduced coverage matrix an exact covering solve takes."""

MAX_EXACT_PMEDIAN_PAIRS = 250_000
"""Most assignment variables (demand x free sites) of an exact p-median solve."""

MAX_LP_FIXING_NONZEROS = 150_000
"""Most nonzeros of a fixed maximal covering model whose LP relaxation is solved for more fixing."""

MAX_LP_BOUND_PAIRS = 60_000
"""Most assignment variables for which the p-median heuristic also solves the LP relaxation as its bound."""

_ONE_MINUS_INV_E = 1.0 - 1.0 / math.e


# --------------------------------------------------------------------------------------------
# argument checks


def check_teams(k: object, *, n_sites: int, n_required: int = 0, name: str = "teams") -> int:
    """``k`` as a whole number of sites in ``[max(1, n_required), min(n_sites, MAX_TEAMS)]``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        try:
            as_float = float(k)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            as_float = math.nan
        if not (math.isfinite(as_float) and as_float == int(as_float)):
            raise ValidationError(f"{name} must be a whole number of teams, got {k!r}",
                                  [Problem("not a whole number", column=name, value=k)])
        k = int(as_float)
    value = int(k)
    if value < 1:
        raise ValidationError(f"{name} must be at least 1, got {value}", [Problem("too few teams", column=name, value=k)])
    if value > MAX_TEAMS:
        raise ValidationError(f"{name}: {value} teams; a plan places at most {MAX_TEAMS}",
                              [Problem("too many teams", column=name, value=k)])
    if value > n_sites:
        raise ValidationError(
            f"{name}: {value} teams but only {n_sites} candidate sites (after exclusions); ask for at most {n_sites}",
            [Problem("more teams than candidates", column=name, value=k)])
    if value < n_required:
        raise ValidationError(f"{name}: {value} teams cannot staff the {n_required} required sites",
                              [Problem("fewer teams than required sites", column=name, value=k)])
    return value


def check_time_limit(seconds: object, *, name: str = "time_limit", maximum: float = MAX_TIME_LIMIT) -> float:
    """``seconds`` in ``(0, maximum]``."""
    value = as_number(seconds)
    if not math.isfinite(value) or value <= 0 or value > maximum:
        raise ValidationError(f"{name} must be a number of seconds in (0, {maximum:g}], got {seconds!r}",
                              [Problem("time limit out of range", column=name, value=seconds)])
    return value


def check_share(share: object, *, name: str = "share") -> float:
    """``share`` in ``(0, 1]``."""
    value = as_number(share)
    if not math.isfinite(value) or value <= 0 or value > 1:
        raise ValidationError(f"{name} must be a fraction of demand in (0, 1], got {share!r}",
                              [Problem("share out of range", column=name, value=share)])
    return value


def _check_weights(weights: Any, n: int, *, name: str = "weights") -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValidationError(f"{name} must have one value per demand point ({n}), got shape {w.shape}")
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValidationError(f"{name} must be finite and >= 0")
    if w.sum() <= 0:
        raise ValidationError(f"{name}: every demand weight is 0; nothing to cover",
                              [Problem("no demand", column="demand")])
    return w


def _site_set(values: Sequence[int] | np.ndarray | None, m: int, *, name: str) -> np.ndarray:
    if values is None:
        return np.zeros(0, dtype=np.int64)
    arr = np.unique(np.asarray(values, dtype=np.int64).ravel())
    if len(arr) and (arr.min() < 0 or arr.max() >= m):
        raise ValidationError(f"{name}: site index outside 0..{m - 1}", [Problem("unknown site", column=name)])
    return arr


def _check_method(method: str) -> Method:
    if method not in ("exact", "heuristic"):
        raise ValidationError(f"method must be 'exact' or 'heuristic', got {method!r}",
                              [Problem("unknown method", column="method", value=method)])
    return method  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# the reduced covering model


@dataclass(frozen=True)
class ReducedCovering:
    """A covering instance with dead and duplicate demand removed.

    Attributes
    ----------
    a
        CSR 0/1 matrix ``(n_rows, n_free)``: merged demand rows against the free sites.
    weight
        Weight of each merged row (the sum of its demand points' weights).
    free
        Original indices of the free (neither required nor excluded) sites, the columns of ``a``.
    base
        Weight already covered by the required sites.
    row_of
        For every original demand point its merged row, ``-1`` when it is uncoverable or
        already covered by a required site.
    """

    a: sp.csr_matrix
    weight: np.ndarray
    free: np.ndarray
    base: float
    row_of: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.a.indptr[-1])


def reduce_covering(coverage: Coverage, weights: np.ndarray, *, required: np.ndarray,
                    excluded: np.ndarray) -> ReducedCovering:
    """Reduce a covering instance (see :class:`ReducedCovering`); exact, no solution is lost."""
    n, m = coverage.shape
    inc = coverage.incidence()
    by_required = np.zeros(n, dtype=bool)
    if len(required):
        by_required = np.asarray(inc[:, required].sum(axis=1)).ravel() > 0
    blocked = np.zeros(m, dtype=bool)
    blocked[required] = True
    blocked[excluded] = True
    free = np.flatnonzero(~blocked)
    a = inc[:, free].tocsr()
    alive = (np.diff(a.indptr) > 0) & ~by_required & (weights > 0)
    base = float(weights[by_required].sum())
    rows = np.flatnonzero(alive)
    a = a[rows].tocsr()
    a.sort_indices()
    # rows with the same covering set are one row: key each row by its column bytes
    keys = [a.indices[a.indptr[r]:a.indptr[r + 1]].tobytes() for r in range(a.shape[0])]
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object))
    codes = np.asarray(codes)
    n_rows = len(uniques)
    first = np.full(n_rows, -1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # the first row of each group
    merged = a[first].tocsr()
    merged.data[:] = 1.0
    weight = np.bincount(codes, weights=weights[rows], minlength=n_rows)
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[rows] = codes
    return ReducedCovering(merged, weight, free, base, row_of)


# --------------------------------------------------------------------------------------------
# solvers on the reduced covering model


@dataclass
class _Solution:
    chosen: np.ndarray  # columns of the reduced model
    value: float  # covered weight of the reduced model (base excluded)
    bound: float  # upper bound (max) / lower bound (min) of the reduced model's optimum
    bound_kind: str
    status: str


def _milp_result(res: Any, time_limit: float) -> None:
    if res.x is None:
        if res.status == 1:
            raise ValidationError(
                f"time_limit: no feasible solution was found within {time_limit:g} s; raise the time limit or use "
                f"the heuristic", [Problem("time limit hit without a solution", column="time_limit", value=time_limit)])
        raise ValidationError(f"the solver found no solution: {res.message}",
                              [Problem("no solution", column="model")])


def _status(res: Any) -> str:
    return "optimal" if res.status == 0 else "time_limit" if res.status == 1 else f"solver status {res.status}"


def _mclp_milp(red: ReducedCovering, k: int, *, time_limit: float, rel_gap: float = 1e-6,
               incumbent: bool = False) -> _Solution | None:
    """Maximal covering MILP: ``max w·z`` s.t. ``z_r <= sum_j a_rj y_j``, ``sum y = k``, ``y`` binary, ``0 <= z <= 1``.

    ``incumbent``: the caller holds a solution already, so ``None`` is returned when HiGHS
    stops at the time limit without one (otherwise that is a :class:`ValidationError`).
    """
    n_rows, n_free = red.a.shape
    if k == 0 or n_rows == 0:
        return _Solution(_fill(np.zeros(0, dtype=np.int64), k, n_free), 0.0, 0.0, "trivial", "optimal")
    if k >= n_free:
        return _Solution(np.arange(n_free), float(red.weight.sum()), float(red.weight.sum()), "trivial", "optimal")
    coupling = sp.hstack([-red.a, sp.identity(n_rows, format="csr")], format="csr")
    cardinality = sp.csr_matrix(np.r_[np.ones(n_free), np.zeros(n_rows)][None, :])
    c = np.r_[np.zeros(n_free), -red.weight]
    constraints = [LinearConstraint(coupling, -np.inf, 0), LinearConstraint(cardinality, k, k)]
    res = milp(c, integrality=np.r_[np.ones(n_free), np.zeros(n_rows)], bounds=Bounds(0, 1), constraints=constraints,
               options={"time_limit": time_limit, "disp": False, "mip_rel_gap": rel_gap})
    if res.x is None:
        if incumbent and res.status == 1:
            return None
        _milp_result(res, time_limit)
    y = res.x[:n_free]
    chosen = np.flatnonzero(y > 0.5)
    value = _covered_value(red, chosen)
    dual = res.mip_dual_bound if res.mip_dual_bound is not None else res.fun
    bound = max(value, -float(dual))
    return _Solution(chosen, value, bound, "milp dual bound", _status(res))


def mclp_exact(red: ReducedCovering, k: int, *, time_limit: float, rel_gap: float = 1e-6,
               lagrangian_iterations: int = 1_000) -> _Solution:
    """The maximal covering optimum of the reduced model, proven by a bound.

    First the heuristic (greedy, swaps, Lagrangian bound, see :func:`mclp_heuristic`): when its
    Lagrangian bound meets its value, that value is the proven optimum. Otherwise the
    multipliers fix sites (:func:`lagrangian_fixing`: sites no better solution uses are
    dropped, sites every better solution uses are required); when what is left is small
    (``MAX_LP_FIXING_NONZEROS``) the duals of its LP relaxation fix more. HiGHS then solves the
    MILP of what is left within the rest of ``time_limit``; the better of its answer and the
    heuristic's is returned, with the bound that holds for both parts.
    """
    started = time.perf_counter()
    n_rows, n_free = red.a.shape
    if k == 0 or n_rows == 0 or k >= n_free:
        sol = _mclp_milp(red, k, time_limit=time_limit)
        assert sol is not None
        return sol
    heur, lag = _mclp_heuristic(red, k, max_passes=4, lagrangian_iterations=lagrangian_iterations,
                                lagrangian_seconds=min(10.0, 0.25 * time_limit), starts=6)
    if heur.status == "optimal":
        return _Solution(heur.chosen, heur.value, heur.bound, heur.bound_kind, "optimal")
    if lag is None:
        full = _mclp_milp(red, k, time_limit=time_limit, rel_gap=rel_gap)
        assert full is not None
        return full
    integral = _integral(red.weight)
    drop, force = lagrangian_fixing(lag, k, heur.value, integral=integral)
    sub = reduce_covering(Coverage(red.a, 1.0), red.weight, required=force, excluded=drop)
    k_sub = k - len(force)
    if 0 < k_sub < sub.a.shape[1] and 0 < sub.nnz <= MAX_LP_FIXING_NONZEROS:
        # the fixed model is small: its LP duals are the best multipliers, and fix more sites
        left = max(time_limit - (time.perf_counter() - started), 0.05)
        lp = _lp_multipliers(sub, k_sub, time_limit=left)
        if lp is not None:
            more_drop, more_force = lagrangian_fixing(lp, k_sub, heur.value - sub.base, integral=integral)
            drop = np.union1d(drop, sub.free[more_drop])
            force = np.union1d(force, sub.free[more_force])
            sub = reduce_covering(Coverage(red.a, 1.0), red.weight, required=force, excluded=drop)
            k_sub = k - len(force)
    if k_sub < 0 or len(drop) + len(force) >= n_free:
        # no solution better than the heuristic's can exist (or only the forced set): it is optimal
        if k_sub == 0:
            forced_value = _covered_value(red, force)
            if forced_value > heur.value:
                return _Solution(force, forced_value, forced_value, "Lagrangian fixing", "optimal")
        return _Solution(heur.chosen, heur.value, heur.value, "Lagrangian fixing", "optimal")
    left = max(time_limit - (time.perf_counter() - started), 0.05)
    sol = _mclp_milp(sub, k_sub, time_limit=left, rel_gap=rel_gap, incumbent=True)
    if sol is None:  # the time limit hit before HiGHS found any solution of the fixed model
        return _Solution(heur.chosen, heur.value, heur.bound, heur.bound_kind, "time_limit")
    sub_value = sub.base + sol.value
    # a solution using a dropped site, or leaving out a forced one, covers no more than the heuristic's
    bound = min(heur.bound, max(sub.base + sol.bound, heur.value))
    if sub_value > heur.value:
        chosen, value = np.r_[force, sub.free[sol.chosen]].astype(np.int64), sub_value
    else:
        chosen, value = heur.chosen, heur.value
    bound = max(bound, value)
    status = "optimal" if bound - value <= rel_gap * max(1.0, bound) else sol.status
    return _Solution(_fill(chosen, k, n_free), value, bound, "milp dual bound after Lagrangian fixing", status)


def _covered_value(red: ReducedCovering, chosen: np.ndarray) -> float:
    if len(chosen) == 0:
        return 0.0
    hit = np.asarray(red.a[:, chosen].sum(axis=1)).ravel() > 0
    return float(red.weight[hit].sum())


def _fill(chosen: np.ndarray, k: int, n_free: int) -> np.ndarray:
    """``chosen`` padded with unused columns up to ``k`` (sites that add nothing still take a team)."""
    if len(chosen) >= k:
        return chosen
    rest = np.setdiff1d(np.arange(n_free), chosen)
    return np.r_[chosen, rest[: k - len(chosen)]].astype(np.int64)


def _integral(weight: np.ndarray) -> bool:
    """Whether every weight is a whole number (then every covered weight is one, and bounds round down)."""
    return bool(np.all(weight == np.round(weight)) and float(weight.sum()) < 2.0**52)


@dataclass(frozen=True)
class LagrangianBound:
    """The Lagrangian bound of a maximal covering model, relaxing ``z_r <= sum_j a_rj y_j``.

    For multipliers ``0 <= lam_r <= w_r`` every solution covers at most
    ``L(lam) = sum_r (w_r - lam_r) + (sum of the k largest site values c_j)`` with
    ``c = A^T lam``: the model's optimum is at most the smallest ``L`` found.

    Attributes
    ----------
    bound
        The smallest ``L`` found, raised by a floating-point allowance, and rounded down when
        every weight is a whole number (every covered weight is then whole too).
    multipliers
        The ``lam`` that gave it.
    constant
        ``sum_r (w_r - lam_r)`` at those multipliers.
    site_value
        ``c = A^T lam`` at those multipliers.
    best_set, best_value
        The best set of ``k`` sites met on the way (the ``k`` largest ``c``) and its coverage.
    pool
        The best few distinct sets met (``best_set`` first), starting points for a local search.
    iterations
        Subgradient steps taken.
    """

    bound: float
    multipliers: np.ndarray
    constant: float
    site_value: np.ndarray
    best_set: np.ndarray
    best_value: float
    iterations: int
    pool: tuple[np.ndarray, ...] = ()


def _allowance(weight: np.ndarray) -> float:
    """Floating-point allowance on sums of ``weight`` (relative 1e-9 of the total)."""
    return 1e-9 * max(1.0, float(weight.sum()))


def _lagrangian(a_csc: sp.csc_matrix, a_t: sp.csr_matrix, w: np.ndarray, k: int, *, start: np.ndarray,
                lower: float, max_iter: int, seconds: float, pool_size: int = 1, deflection: float = 0.5,
                patience: int = 20) -> LagrangianBound:
    """Projected subgradient descent on ``L(lam)``, Polyak steps towards the best coverage met.

    Each direction is the subgradient plus ``deflection`` times the previous direction (less
    zig-zag: at 1,000 x 80,000, k = 20, 200 steps end 0.16 % nearer the LP bound); after
    ``patience`` steps without a better ``L`` the step halves and the search restarts from the
    best multipliers.
    """
    started = time.perf_counter()
    n_rows, n_free = a_csc.shape
    indptr, indices = a_csc.indptr, a_csc.indices
    integral = _integral(w)
    eps = _allowance(w)
    total = float(w.sum())
    counts = np.zeros(n_rows)
    for j in start:
        counts[indices[indptr[j]:indptr[j + 1]]] += 1
    # start where the incumbent says: uncovered rows at full weight, rows covered twice at 0
    lam = np.where(counts == 0, w, np.where(counts == 1, 0.5 * w, 0.0))
    best_lam = lam.copy()
    best_l = math.inf
    best_set, best_value = np.asarray(start, dtype=np.int64), lower
    pool: list[tuple[float, bytes]] = []
    # every vector of the loop lives in a buffer made once: a fresh 100 kB array per step costs
    # more than the step's arithmetic
    hits = np.zeros(n_rows)  # how many of the current top-k sites reach each row
    g = np.empty(n_rows)
    direction = np.zeros(n_rows)
    scratch = np.empty(n_rows)
    in_top = np.zeros(n_free, dtype=bool)
    step, stall, steps = 2.0, 0, 0
    while steps < max_iter:
        steps += 1
        c = a_t @ lam
        top = np.argpartition(c, n_free - k)[n_free - k:]
        value_l = total - float(lam.sum()) + float(c[top].sum())
        if value_l < best_l - 1e-12 * abs(value_l):
            best_l, stall = value_l, 0
            np.copyto(best_lam, lam)
        else:
            stall += 1
            if stall >= patience:  # no progress: halve the step and restart from the best multipliers
                step, stall = 0.5 * step, 0
                np.copyto(lam, best_lam)
                continue
        rounded = math.floor(best_l + eps) if integral else best_l + eps
        if rounded <= best_value or time.perf_counter() - started > seconds or step < 1e-6:
            break
        # the top-k set changes by a few sites a step: update the row counts by those only
        now = np.zeros(n_free, dtype=bool)
        now[top] = True
        for j in np.flatnonzero(now & ~in_top):
            hits[indices[indptr[j]:indptr[j + 1]]] += 1.0
        for j in np.flatnonzero(in_top & ~now):
            hits[indices[indptr[j]:indptr[j + 1]]] -= 1.0
        in_top = now
        covered = float(np.sum(w, where=hits > 0))
        if covered > best_value:
            best_set, best_value = np.sort(top).astype(np.int64), covered
        if len(pool) < pool_size or covered > pool[-1][0]:
            key = np.sort(top).astype(np.int64).tobytes()
            if all(key != known for _, known in pool):
                pool.append((covered, key))
                pool.sort(key=lambda item: -item[0])
                del pool[pool_size:]
        np.subtract(hits, 1.0, out=g)  # the subgradient of L in lam
        if deflection:
            np.multiply(direction, deflection, out=direction)
            np.add(direction, g, out=g)
        g[(lam <= 0) & (g > 0)] = 0.0
        g[(lam >= w) & (g < 0)] = 0.0
        if deflection:
            np.copyto(direction, g)
        norm = float(np.square(g, out=scratch).sum())  # not g @ g: BLAS threads cost more than they save here
        if norm == 0:
            break
        np.multiply(g, step * max(value_l - best_value, eps) / norm, out=scratch)
        np.subtract(lam, scratch, out=lam)
        np.clip(lam, 0.0, w, out=lam)
    bound = math.floor(best_l + eps) if integral else best_l + eps
    sets = tuple(np.frombuffer(key, dtype=np.int64).copy() for _, key in pool)
    return LagrangianBound(float(bound), best_lam, total - float(best_lam.sum()), a_t @ best_lam, best_set,
                           best_value, steps, sets)


def mclp_lagrangian_bound(red: ReducedCovering, k: int, *, start: np.ndarray | None = None, lower: float = 0.0,
                          max_iter: int = 300, seconds: float = 1.0) -> LagrangianBound:
    """The Lagrangian upper bound of the reduced maximal covering model (see :class:`LagrangianBound`).

    Parameters
    ----------
    red
        The reduced model.
    k
        Free sites to choose, ``1 <= k < n_free``.
    start, lower
        A known solution (columns) and its coverage: the first multipliers and the step target.
    max_iter, seconds
        Most subgradient steps, and the time they may take.
    """
    if start is None:
        start = np.zeros(0, dtype=np.int64)
    a_csc = red.a.tocsc()
    return _lagrangian(a_csc, a_csc.T, red.weight, k, start=start, lower=lower,
                       max_iter=max_iter, seconds=seconds)


def _lp_multipliers(red: ReducedCovering, k: int, *, time_limit: float) -> LagrangianBound | None:
    """Multipliers from the LP relaxation's duals (HiGHS interior point), as a :class:`LagrangianBound`.

    The bound is ``L`` recomputed at the duals (clipped into ``[0, w]``), so it holds whatever
    the LP's accuracy; ``None`` when the LP does not finish.
    """
    n_rows, n_free = red.a.shape
    coupling = sp.hstack([-red.a, sp.identity(n_rows, format="csr")], format="csr")
    res = linprog(np.r_[np.zeros(n_free), -red.weight], A_ub=coupling, b_ub=np.zeros(n_rows),
                  A_eq=np.r_[np.ones(n_free), np.zeros(n_rows)][None, :], b_eq=[k], bounds=(0, 1),
                  method="highs-ipm", options={"time_limit": time_limit, "disp": False})
    if res.status != 0 or res.ineqlin is None:
        return None
    lam = np.clip(-np.asarray(res.ineqlin.marginals, dtype=float), 0.0, red.weight)
    c = red.a.T @ lam
    constant = float((red.weight - lam).sum())
    value_l = constant + float(np.sort(c)[::-1][:k].sum()) + _allowance(red.weight)
    bound = math.floor(value_l) if _integral(red.weight) else value_l
    return LagrangianBound(float(bound), lam, constant, c, np.zeros(0, dtype=np.int64), 0.0, 0)


def lagrangian_fixing(lag: LagrangianBound, k: int, lower: float, *, integral: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sites no solution better than ``lower`` uses, and sites every such solution uses.

    With ``y_j`` forced to 1 (or 0) the Lagrangian bound becomes ``L - c_(k) + c_j`` (or
    ``L - c_j + c_(k+1)``), ``c_(i)`` the ``i``-th largest site value. When that is below the
    next coverage that would be better than ``lower`` (``lower + 1`` with whole weights),
    every better solution leaves ``j`` out (or uses it).

    Returns
    -------
    drop, force
        Column indices of the reduced model, sorted.
    """
    c = lag.site_value
    n_free = len(c)
    order = np.argsort(-c, kind="stable")
    in_top = np.zeros(n_free, dtype=bool)
    in_top[order[:k]] = True
    # L at the stored multipliers, recomputed so both tests use the same number
    value_l = lag.constant + float(c[order[:k]].sum())
    kth = float(c[order[k - 1]])
    next_c = float(c[order[k]]) if k < n_free else 0.0
    step = 1.0 if integral else 0.0
    eps = 1e-9 * max(1.0, abs(value_l))  # floating-point allowance, on the safe side
    with_j = value_l - kth + c
    without_j = value_l - c + next_c
    drop = np.flatnonzero(~in_top & (with_j + eps < lower + step))
    force = np.flatnonzero(in_top & (without_j + eps < lower + step))
    return drop, force


def mclp_heuristic(red: ReducedCovering, k: int, *, swaps: bool = True, max_passes: int = 4,
                   lagrangian_iterations: int = 300, lagrangian_seconds: float = 0.3) -> _Solution:
    """Greedy plus one-site swaps for the maximal covering model, with a valid upper bound.

    The bound is the smallest of three valid bounds: the greedy guarantee (the greedy value is
    at least ``1 - 1/e`` of the optimum, coverage being monotone submodular); for every set
    ``S`` the search visits, ``f(S)`` plus the ``k`` largest marginal gains of single sites
    given ``S`` (an optimal set adds at most that much to ``S``); and the Lagrangian bound
    (:class:`LagrangianBound`, at most ``lagrangian_iterations`` subgradient steps within
    ``lagrangian_seconds``; 0 steps leaves it out). With whole weights each is rounded down.
    The best set of sites the subgradient steps meet is swapped too when it covers more.
    """
    return _mclp_heuristic(red, k, swaps=swaps, max_passes=max_passes, lagrangian_iterations=lagrangian_iterations,
                           lagrangian_seconds=lagrangian_seconds)[0]


def _mclp_heuristic(red: ReducedCovering, k: int, *, swaps: bool = True, max_passes: int = 4,
                    lagrangian_iterations: int = 300, lagrangian_seconds: float = 0.3,
                    starts: int = 2) -> tuple[_Solution, LagrangianBound | None]:
    n_rows, n_free = red.a.shape
    w = red.weight
    if k == 0 or n_rows == 0:
        return _Solution(_fill(np.zeros(0, dtype=np.int64), k, n_free), 0.0, 0.0, "trivial", "optimal"), None
    a_csc = red.a.tocsc()
    a_t = a_csc.T  # CSR over the same arrays; gains = a_t @ uncovered weight
    uncovered = w.copy()
    chosen: list[int] = []
    value = 0.0
    bound = math.inf
    kk = min(k, n_free)
    for _step in range(k):
        gains = a_t @ uncovered
        gains[chosen] = -1.0
        top = np.partition(gains, n_free - kk)[n_free - kk:]
        bound = min(bound, value + float(np.clip(top, 0, None).sum()))
        j = int(np.argmax(gains))
        if gains[j] <= 0:
            break
        chosen.append(j)
        value += float(gains[j])
        uncovered[a_csc.indices[a_csc.indptr[j]:a_csc.indptr[j + 1]]] = 0.0
    greedy_value = value
    bound = min(bound, greedy_value / _ONE_MINUS_INV_E) if greedy_value > 0 else bound
    bound_kind = "greedy (1-1/e) and marginal-gain bound"
    sel = np.array(chosen, dtype=np.int64)
    if swaps and len(sel):
        sel, value, swap_bound = _swap_search(red.a, a_csc, a_t, w, sel, k, max_passes=max_passes)
        bound = min(bound, swap_bound)
    integral = _integral(w)
    eps = _allowance(w)
    if integral:
        bound = float(math.floor(bound + eps))
    lag = None
    if lagrangian_iterations > 0 and len(sel) == k < n_free and bound - value > eps:
        lag = _lagrangian(a_csc, a_t, w, k, start=sel, lower=value, max_iter=lagrangian_iterations,
                          seconds=lagrangian_seconds, pool_size=starts if swaps else 1)
        if lag.best_value > value:
            sel, value = lag.best_set, lag.best_value
        # the sets the subgradient steps met are other starting points for the swaps
        for start in lag.pool if swaps and lag.bound > value + eps else ():
            better, better_value, swap_bound = _swap_search(red.a, a_csc, a_t, w, start, k, max_passes=max_passes)
            bound = min(bound, math.floor(swap_bound + eps) if integral else swap_bound)
            if better_value > value:
                sel, value = better, better_value
        if lag.bound < bound:
            bound, bound_kind = lag.bound, "Lagrangian bound"
    bound = max(bound, value)
    sel = _fill(sel, k, n_free)
    status = "optimal" if bound - value <= 1e-9 * max(1.0, bound) else "heuristic"
    return _Solution(sel, value, bound, bound_kind, status), lag


def _row_gains(a_rows: sp.csr_matrix, rows: np.ndarray, w: np.ndarray, n_free: int) -> np.ndarray:
    """``A[rows]^T w[rows]``: per site the weight of ``rows`` it reaches (work in the rows' nonzeros only)."""
    if len(rows) == 0:
        return np.zeros(n_free)
    starts = a_rows.indptr[rows]
    lengths = a_rows.indptr[rows + 1] - starts
    offsets = np.cumsum(lengths) - lengths
    positions = np.arange(int(lengths.sum())) - np.repeat(offsets - starts, lengths)
    return np.bincount(a_rows.indices[positions], weights=np.repeat(w[rows], lengths), minlength=n_free)


def _swap_search(a_rows: sp.csr_matrix, a_csc: sp.csc_matrix, a_t: sp.csr_matrix, w: np.ndarray, sel: np.ndarray,
                 k: int, *, max_passes: int) -> tuple[np.ndarray, float, float]:
    """Best-improvement swaps of one chosen site for one unchosen site until none improves.

    The gains of adding each site are kept up to date from the rows a swap changes: taking
    ``s`` out uncovers the rows only ``s`` covered, putting ``j`` in covers the rows nothing
    covered, and only those rows' sites change gain (no product with the whole matrix).
    """
    n_free = a_csc.shape[1]
    counts = np.zeros(a_csc.shape[0], dtype=np.int64)
    for j in sel:
        counts[a_csc.indices[a_csc.indptr[j]:a_csc.indptr[j + 1]]] += 1
    value = float(w[counts > 0].sum())
    sel = sel.copy()
    gains = a_t @ np.where(counts == 0, w, 0.0)
    for _pass in range(max_passes):
        improved = False
        for pos in range(len(sel)):
            s = int(sel[pos])
            rows_s = a_csc.indices[a_csc.indptr[s]:a_csc.indptr[s + 1]]
            only_s = rows_s[counts[rows_s] == 1]
            loss = float(w[only_s].sum())
            freed = _row_gains(a_rows, only_s, w, n_free)
            after = gains + freed
            candidates = after.copy()
            candidates[sel] = -1.0
            j = int(np.argmax(candidates))
            if candidates[j] > loss + 1e-9 * max(1.0, value):
                counts[rows_s] -= 1
                rows_j = a_csc.indices[a_csc.indptr[j]:a_csc.indptr[j + 1]]
                newly = rows_j[counts[rows_j] == 0]
                counts[rows_j] += 1
                gains = after - _row_gains(a_rows, newly, w, n_free)
                sel[pos] = j
                value = value - loss + float(after[j])
                improved = True
        if not improved:
            break
    # value and gains afresh: no drift from the running updates
    value = float(w[counts > 0].sum())
    gains = a_t @ np.where(counts == 0, w, 0.0)
    gains[sel] = 0.0
    kk = min(k, n_free)
    top = np.partition(gains, n_free - kk)[n_free - kk:]
    bound = value + float(np.clip(top, 0, None).sum())
    return sel, value, bound


def lscp_exact(red: ReducedCovering, target: float, *, max_sites: int | None, time_limit: float) -> _Solution:
    """Fewest free sites covering at least ``target`` weight of the reduced model."""
    n_rows, n_free = red.a.shape
    if target <= 1e-12:
        return _Solution(np.zeros(0, dtype=np.int64), 0.0, 0.0, "trivial", "optimal")
    coupling = sp.hstack([-red.a, sp.identity(n_rows, format="csr")], format="csr")
    reach = sp.csr_matrix(np.r_[np.zeros(n_free), red.weight][None, :])
    constraints = [LinearConstraint(coupling, -np.inf, 0),
                   LinearConstraint(reach, target * (1 - 1e-12), np.inf)]
    if max_sites is not None:
        constraints.append(LinearConstraint(sp.csr_matrix(np.r_[np.ones(n_free), np.zeros(n_rows)][None, :]),
                                            0, max_sites))
    res = milp(np.r_[np.ones(n_free), np.zeros(n_rows)], integrality=np.r_[np.ones(n_free), np.zeros(n_rows)],
               bounds=Bounds(0, 1), constraints=constraints,
               options={"time_limit": time_limit, "disp": False, "mip_rel_gap": 1e-9})
    if res.status == 2 and max_sites is not None:
        raise ValidationError(f"teams: reaching the share needs more than {max_sites} sites",
                              [Problem("share needs more teams", column="teams", value=max_sites)])
    _milp_result(res, time_limit)
    chosen = np.flatnonzero(res.x[:n_free] > 0.5)
    dual = res.mip_dual_bound if res.mip_dual_bound is not None else res.fun
    bound = float(math.ceil(float(dual) - 1e-6))
    return _Solution(chosen, _covered_value(red, chosen), min(bound, len(chosen)), "milp dual bound", _status(res))


def lscp_heuristic(red: ReducedCovering, target: float, *, max_sites: int | None) -> _Solution:
    """Greedy until ``target`` is covered, then drop sites the target does not need.

    Lower bound: the fewest sites whose single coverages, largest first, add up to ``target``
    (no set of fewer sites can cover more than its members' coverages summed).
    """
    n_rows, n_free = red.a.shape
    if target <= 1e-12:
        return _Solution(np.zeros(0, dtype=np.int64), 0.0, 0.0, "trivial", "optimal")
    a_csc = red.a.tocsc()
    a_t = red.a.T.tocsr()
    single = np.sort(a_t @ red.weight)[::-1]
    lower = int(np.searchsorted(np.cumsum(single), target * (1 - 1e-12)) + 1)
    uncovered = red.weight.copy()
    chosen: list[int] = []
    value = 0.0
    while value < target * (1 - 1e-12):
        gains = a_t @ uncovered
        j = int(np.argmax(gains))
        if gains[j] <= 0:
            break
        chosen.append(j)
        value += float(gains[j])
        uncovered[a_csc.indices[a_csc.indptr[j]:a_csc.indptr[j + 1]]] = 0.0
    # redundancy elimination: drop the site that loses least while the target still holds
    sel = list(chosen)
    for j in sorted(chosen, key=lambda c: a_csc.indptr[c + 1] - a_csc.indptr[c]):
        trial = [s for s in sel if s != j]
        if trial and _covered_value(red, np.array(trial)) >= target * (1 - 1e-12):
            sel = trial
    arr = np.array(sel, dtype=np.int64)
    if max_sites is not None and len(arr) > max_sites:
        raise ValidationError(f"teams: the heuristic needs {len(arr)} sites to reach the share, more than {max_sites} "
                              f"(try the exact solve, or more teams)",
                              [Problem("share needs more teams", column="teams", value=max_sites)])
    status = "optimal" if lower >= len(arr) else "heuristic"
    return _Solution(arr, _covered_value(red, arr), float(min(lower, len(arr))), "largest-coverage bound", status)


# --------------------------------------------------------------------------------------------
# models


class _CoveringBase:
    """Shared state and results of the covering models."""

    name = "covering"

    def __init__(self, coverage: Coverage, weights: Any, *, required: Sequence[int] | np.ndarray | None = None,
                 excluded: Sequence[int] | np.ndarray | None = None) -> None:
        n, m = coverage.shape
        self.coverage = coverage
        self.weights = _check_weights(weights, n)
        self.required = _site_set(required, m, name="required")
        self.excluded = _site_set(excluded, m, name="excluded")
        both = np.intersect1d(self.required, self.excluded)
        if len(both):
            raise ValidationError(f"required and excluded both name site index {int(both[0])}",
                                  [Problem("site both required and excluded", column="excluded", value=int(both[0]))])
        self.n_available = m - len(self.excluded)
        self._reduced: ReducedCovering | None = None
        self._csc: sp.csc_matrix | None = None

    def reduced(self) -> ReducedCovering:
        """The reduced model (built once)."""
        if self._reduced is None:
            self._reduced = reduce_covering(self.coverage, self.weights, required=self.required, excluded=self.excluded)
        return self._reduced

    def _finish(self, sol: _Solution, method: str, started: float, *, maximise: bool) -> None:
        red = self.reduced()
        chosen = np.r_[self.required, red.free[sol.chosen]].astype(np.int64)
        self.selected_ = self._rank(chosen)
        self.objective_ = red.base + sol.value
        self.status_ = sol.status
        self.method_ = method
        self.bound_kind_ = sol.bound_kind
        self.seconds_ = time.perf_counter() - started
        self.reduced_shape_ = red.a.shape
        self.reduced_nnz_ = red.nnz
        self.covered_ = self._covered_by(self.selected_)
        total = float(self.weights.sum())
        self.perc_cov_ = 100.0 * float(self.weights[self.covered_].sum()) / total
        if maximise:
            self.bound_ = red.base + sol.bound
            self.gap_ = (self.bound_ - self.objective_) / self.bound_ if self.bound_ > 0 else 0.0
        else:
            self.bound_ = float(len(self.required)) + sol.bound
            self.gap_ = (len(self.selected_) - self.bound_) / len(self.selected_) if len(self.selected_) else 0.0

    def _columns(self) -> sp.csc_matrix:
        """The 0/1 coverage by site (CSC, built once)."""
        if self._csc is None:
            self._csc = self.coverage.incidence().tocsc()
        return self._csc

    def _covered_by(self, sites: np.ndarray) -> np.ndarray:
        inc = self._columns()
        covered = np.zeros(self.coverage.shape[0], dtype=bool)
        for j in sites:
            covered[inc.indices[inc.indptr[j]:inc.indptr[j + 1]]] = True
        return covered

    def _rank(self, chosen: np.ndarray) -> np.ndarray:
        """``chosen`` ordered greedily by marginal gain; sets :attr:`gains_`."""
        inc = self._columns()
        uncovered = self.weights.copy()
        order: list[int] = []
        gains: list[float] = []
        left = list(chosen)
        while left:
            values = [float(uncovered[inc.indices[inc.indptr[j]:inc.indptr[j + 1]]].sum()) for j in left]
            best = int(np.argmax(values))
            j = left.pop(best)
            order.append(j)
            gains.append(values[best])
            uncovered[inc.indices[inc.indptr[j]:inc.indptr[j + 1]]] = 0.0
        self.gains_ = np.array(gains)
        return np.array(order, dtype=np.int64)

    def fac2cli(self) -> list[np.ndarray]:
        """For each selected site (rank order), the demand points it reaches."""
        cost = self.coverage.cost.tocsc()
        return [cost.indices[cost.indptr[j]:cost.indptr[j + 1]] for j in self.selected_]

    def to_geodataframe(self, sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """The chosen rows of ``sites`` (one row per coverage column) in rank order.

        Returns
        -------
        GeoDataFrame
            ``sites``' columns plus ``rank`` (1 = largest marginal gain), ``gain`` (weight the
            site adds to those ranked before it), ``required``.
        """
        if len(sites) != self.coverage.shape[1]:
            raise ValidationError(f"sites has {len(sites)} rows but the coverage matrix {self.coverage.shape[1]} columns")
        out = sites.iloc[self.selected_].copy()
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        out["gain"] = self.gains_
        out["required"] = np.isin(self.selected_, self.required)
        return out.reset_index(drop=True)


class MaximalCovering(_CoveringBase):
    """Maximal covering location problem: the ``k`` sites reaching the most demand weight.

    Parameters
    ----------
    coverage
        Which sites reach which demand (:func:`~geo_ibm.planning.coverage.coverage_by_radius`).
    weights
        Demand weight per row of ``coverage``.
    k
        Sites to open (teams), required sites included.
    required, excluded
        Column indices of sites that must / must not be chosen.

    Attributes
    ----------
    selected_
        Chosen site indices, ranked by marginal gain.
    gains_
        Weight each chosen site adds to those ranked before it.
    objective_
        Covered demand weight.
    bound_
        Upper bound on the optimum (the solver's dual bound, or the heuristic's bound).
    gap_
        ``(bound_ - objective_) / bound_``: how far from optimal the answer can be.
    status_
        ``optimal``, ``time_limit`` (best found when the limit hit) or ``heuristic``.
    covered_
        Boolean per demand point: reached by a chosen site.
    perc_cov_
        Covered weight as a percentage of all demand weight.
    """

    name = "mclp"

    def __init__(self, coverage: Coverage, weights: Any, *, k: int,
                 required: Sequence[int] | np.ndarray | None = None,
                 excluded: Sequence[int] | np.ndarray | None = None) -> None:
        super().__init__(coverage, weights, required=required, excluded=excluded)
        self.k = check_teams(k, n_sites=self.n_available, n_required=len(self.required))

    @classmethod
    def from_coverage(cls, coverage: Coverage, weights: Any, *, k: int, **kwargs: Any) -> MaximalCovering:
        return cls(coverage, weights, k=k, **kwargs)

    def solve(self, *, method: str = "exact", time_limit: float = 30.0, swaps: bool = True) -> MaximalCovering:
        """Solve exactly (HiGHS, within ``time_limit`` seconds) or by greedy + swap; returns ``self``."""
        method = _check_method(method)
        time_limit = check_time_limit(time_limit)
        started = time.perf_counter()
        red = self.reduced()
        k_free = self.k - len(self.required)
        if method == "exact":
            if red.nnz > MAX_EXACT_NONZEROS:
                raise ValidationError(
                    f"method: the reduced model has {red.nnz:,} nonzeros; an exact solve takes at most "
                    f"{MAX_EXACT_NONZEROS:,} (use the heuristic, a smaller radius or fewer candidates)",
                    [Problem("model too large for an exact solve", column="method", value="exact")])
            sol = mclp_exact(red, k_free, time_limit=time_limit)
        else:
            sol = mclp_heuristic(red, k_free, swaps=swaps)
        self._finish(sol, method, started, maximise=True)
        return self


class SetCovering(_CoveringBase):
    """Fewest sites reaching at least ``share`` of all demand weight (location set covering).

    Parameters
    ----------
    share
        Fraction of the total demand weight to reach, in ``(0, 1]``.
    max_sites
        Most sites allowed (teams available); ``None``: no limit.

    Attributes
    ----------
    selected_, gains_, covered_, perc_cov_, status_
        As :class:`MaximalCovering`.
    objective_
        Covered demand weight.
    bound_
        Lower bound on the fewest sites.
    gap_
        ``(sites - bound_) / sites``.
    """

    name = "lscp"

    def __init__(self, coverage: Coverage, weights: Any, *, share: float = 1.0, max_sites: int | None = None,
                 required: Sequence[int] | np.ndarray | None = None,
                 excluded: Sequence[int] | np.ndarray | None = None) -> None:
        super().__init__(coverage, weights, required=required, excluded=excluded)
        self.share = check_share(share)
        self.max_sites = None if max_sites is None else check_teams(
            max_sites, n_sites=self.n_available, n_required=len(self.required))
        total = float(self.weights.sum())
        reachable = _available_reach(self)
        if self.share * total > reachable * (1 + 1e-12):
            raise ValidationError(
                f"share: {self.share:.1%} of demand asked, but all candidate sites together reach only "
                f"{reachable / total:.1%} (lower the share or widen the radius)",
                [Problem("share above what the candidates reach", column="share", value=share)])

    def solve(self, *, method: str = "exact", time_limit: float = 30.0) -> SetCovering:
        """Solve exactly or greedily; returns ``self``."""
        method = _check_method(method)
        time_limit = check_time_limit(time_limit)
        started = time.perf_counter()
        red = self.reduced()
        target = self.share * float(self.weights.sum()) - red.base
        left = None if self.max_sites is None else self.max_sites - len(self.required)
        if method == "exact":
            if red.nnz > MAX_EXACT_NONZEROS:
                raise ValidationError(f"method: the reduced model has {red.nnz:,} nonzeros; an exact solve takes at "
                                      f"most {MAX_EXACT_NONZEROS:,}",
                                      [Problem("model too large for an exact solve", column="method", value="exact")])
            sol = lscp_exact(red, target, max_sites=left, time_limit=time_limit)
        else:
            sol = lscp_heuristic(red, target, max_sites=left)
        self._finish(sol, method, started, maximise=False)
        return self


def _available_reach(model: _CoveringBase) -> float:
    inc = model.coverage.incidence()
    keep = np.setdiff1d(np.arange(model.coverage.shape[1]), model.excluded)
    hit = np.asarray(inc[:, keep].sum(axis=1)).ravel() > 0
    return float(model.weights[hit].sum())


class PMedian:
    """p-median: the ``k`` sites with the least total weighted distance from each demand point to its nearest site.

    Parameters
    ----------
    cost
        Dense ``(n_demand, n_sites)`` cost array (metres or minutes, finite).
    weights
        Demand weight per row.
    k, required, excluded
        As :class:`MaximalCovering`.
    radius
        Optional service radius: :attr:`covered_` marks demand within it of its assigned site.

    Attributes
    ----------
    selected_
        Chosen site indices, ranked by marginal gain (largest reduction of weighted cost first).
    gains_
        Reduction of the weighted cost each chosen site brings after those ranked before it
        (the first against no site: its own weighted cost).
    objective_
        Total weighted cost of the assignment.
    bound_
        Lower bound on the optimum.
    gap_
        ``(objective_ - bound_) / objective_``.
    assignment_
        Per demand point the chosen site index it is assigned to (its nearest).
    distance_
        Per demand point the cost to its assigned site.
    covered_, perc_cov_
        Demand within ``radius`` of its site (all when no radius) and its weight share.
    """

    name = "pmedian"

    def __init__(self, cost: np.ndarray, weights: Any, *, k: int, required: Sequence[int] | np.ndarray | None = None,
                 excluded: Sequence[int] | np.ndarray | None = None, radius: float | None = None) -> None:
        self.cost = np.asarray(cost, dtype=float)
        if self.cost.ndim != 2 or not np.isfinite(self.cost).all():
            raise ValidationError("cost must be a finite 2-D array (demand x sites)")
        n, m = self.cost.shape
        self.weights = _check_weights(weights, n)
        self.required = _site_set(required, m, name="required")
        self.excluded = _site_set(excluded, m, name="excluded")
        if len(np.intersect1d(self.required, self.excluded)):
            raise ValidationError("required and excluded name the same site", [Problem("site both required and excluded",
                                                                                     column="excluded")])
        self.free = np.setdiff1d(np.arange(m), np.r_[self.required, self.excluded])
        self.k = check_teams(k, n_sites=m - len(self.excluded), n_required=len(self.required))
        self.radius = radius

    def solve(self, *, method: str = "exact", time_limit: float = 30.0) -> PMedian:
        """Solve exactly (HiGHS) or by greedy + vertex substitution; returns ``self``."""
        method = _check_method(method)
        time_limit = check_time_limit(time_limit)
        started = time.perf_counter()
        k_free = self.k - len(self.required)
        base = self.cost[:, self.required].min(axis=1) if len(self.required) else np.full(len(self.cost), np.inf)
        d = self.cost[:, self.free]
        if method == "exact":
            pairs = d.shape[0] * d.shape[1]
            if pairs > MAX_EXACT_PMEDIAN_PAIRS:
                raise ValidationError(
                    f"method: an exact p-median has {pairs:,} assignment variables; at most {MAX_EXACT_PMEDIAN_PAIRS:,} "
                    f"(use the heuristic, fewer candidates or a coarser demand cell)",
                    [Problem("model too large for an exact solve", column="method", value="exact")])
            chosen, bound, status = self._exact(d, base, k_free, time_limit)
            kind = "milp dual bound"
        else:
            chosen = self._greedy_swap(d, base, k_free)
            bound, kind = self._heuristic_bound(d, base, k_free, time_limit)
            status = "heuristic"
        sites = np.r_[self.required, self.free[chosen]].astype(np.int64)
        self._set_results(sites)
        self.bound_ = min(bound, self.objective_)
        self.bound_kind_ = kind
        self.gap_ = (self.objective_ - self.bound_) / self.objective_ if self.objective_ > 0 else 0.0
        if method == "heuristic" and self.gap_ <= 1e-9:
            status = "optimal"
        self.status_ = status
        self.method_ = method
        self.seconds_ = time.perf_counter() - started
        return self

    def _value(self, d: np.ndarray, base: np.ndarray, cols: np.ndarray) -> float:
        best = base if len(cols) == 0 else np.minimum(base, d[:, cols].min(axis=1))
        return float((self.weights * best).sum())

    def _program(self, d: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list[LinearConstraint]]:
        """The p-median program: objective, variable upper bounds and constraints (exact solve and LP bound)."""
        n, f = d.shape
        has_base = np.isfinite(base)
        # variables: y_j (f), x_ij (n*f, row-major), x_i0 (n: served by a required site, cost base_i)
        nx = n * f
        c = np.r_[np.zeros(f), (self.weights[:, None] * d).ravel(), np.where(has_base, self.weights * base, 0.0)]
        rows_i = np.repeat(np.arange(n), f)
        assign = sp.csr_matrix(
            (np.ones(nx + n), (np.r_[rows_i, np.arange(n)], np.r_[f + np.arange(nx), f + nx + np.arange(n)])),
            shape=(n, f + nx + n))
        link = sp.csr_matrix(
            (np.r_[np.ones(nx), -np.ones(nx)],
             (np.r_[np.arange(nx), np.arange(nx)], np.r_[f + np.arange(nx), np.tile(np.arange(f), n)])),
            shape=(nx, f + nx + n))
        card = sp.csr_matrix((np.ones(f), (np.zeros(f, dtype=int), np.arange(f))), shape=(1, f + nx + n))
        upper = np.r_[np.ones(f + nx), has_base.astype(float)]
        return c, upper, [LinearConstraint(assign, 1, 1), LinearConstraint(link, -np.inf, 0),
                          LinearConstraint(card, k, k)]

    def _exact(self, d: np.ndarray, base: np.ndarray, k: int, time_limit: float) -> tuple[np.ndarray, float, str]:
        n, f = d.shape
        if k == 0:
            return np.zeros(0, dtype=np.int64), self._value(d, base, np.zeros(0, dtype=np.int64)), "optimal"
        c, upper, constraints = self._program(d, base, k)
        res = milp(c, integrality=np.r_[np.ones(f), np.zeros(n * f + n)], bounds=Bounds(0, upper),
                   constraints=constraints, options={"time_limit": time_limit, "disp": False, "mip_rel_gap": 1e-7})
        _milp_result(res, time_limit)
        chosen = np.flatnonzero(res.x[:f] > 0.5)
        dual = res.mip_dual_bound if res.mip_dual_bound is not None else res.fun
        return chosen, float(dual), _status(res)

    def _greedy_swap(self, d: np.ndarray, base: np.ndarray, k: int, *, max_passes: int = 4) -> np.ndarray:
        w = self.weights
        f = d.shape[1]
        best = base.copy()
        chosen: list[int] = []
        for _ in range(k):
            finite_best = np.where(np.isfinite(best), best, np.inf)
            totals = (w[:, None] * np.minimum(finite_best[:, None], d)).sum(axis=0)
            totals[chosen] = np.inf
            j = int(np.argmin(totals))
            chosen.append(j)
            best = np.minimum(best, d[:, j])
        sel = np.array(chosen, dtype=np.int64)
        if len(sel) == 0:
            return sel
        current = self._value(d, base, sel)
        for _pass in range(max_passes):
            improved = False
            for pos in range(len(sel)):
                others = np.delete(sel, pos)
                without = base if len(others) == 0 else np.minimum(base, d[:, others].min(axis=1))
                totals = (w[:, None] * np.minimum(without[:, None], d)).sum(axis=0)
                totals[sel] = np.inf
                j = int(np.argmin(totals)) if f > len(sel) else -1
                if j >= 0 and totals[j] < current - 1e-9 * max(1.0, current):
                    sel[pos] = j
                    current = float(totals[j])
                    improved = True
            if not improved:
                break
        return sel

    def _heuristic_bound(self, d: np.ndarray, base: np.ndarray, k: int, time_limit: float) -> tuple[float, str]:
        # Every demand point is at least as far as its nearest open-able site: a valid bound.
        nearest = np.minimum(base, d.min(axis=1)) if d.shape[1] else base
        trivial = float((self.weights * nearest).sum())
        if k == 0 or d.shape[0] * d.shape[1] > MAX_LP_BOUND_PAIRS:
            return trivial, "nearest-site bound"
        c, upper, constraints = self._program(d, base, k)  # its LP relaxation: no integrality
        res = milp(c, bounds=Bounds(0, upper), constraints=constraints,
                   options={"time_limit": min(time_limit, 5.0), "disp": False})
        if res.status == 0 and res.fun is not None:
            return max(trivial, float(res.fun)), "LP relaxation"
        return trivial, "nearest-site bound"

    def _set_results(self, sites: np.ndarray) -> None:
        w = self.weights
        sub = self.cost[:, sites]
        self.assignment_ = sites[np.argmin(sub, axis=1)]
        self.distance_ = sub.min(axis=1)
        self.objective_ = float((w * self.distance_).sum())
        # rank: greedy order of cost reduction within the chosen set
        order: list[int] = []
        gains: list[float] = []
        best = np.full(len(w), np.inf)
        left = list(sites)
        while left:
            totals = [float((w * np.minimum(best, self.cost[:, j])).sum()) for j in left]
            pos = int(np.argmin(totals))
            before = float((w * best).sum()) if np.isfinite(best).all() else math.inf
            gains.append(totals[pos] if not math.isfinite(before) else before - totals[pos])
            j = left.pop(pos)
            order.append(j)
            best = np.minimum(best, self.cost[:, j])
        self.selected_ = np.array(order, dtype=np.int64)
        self.gains_ = np.array(gains)
        self.covered_ = np.ones(len(w), dtype=bool) if self.radius is None else self.distance_ <= self.radius
        self.perc_cov_ = 100.0 * float(w[self.covered_].sum()) / float(w.sum())

    def fac2cli(self) -> list[np.ndarray]:
        """For each selected site (rank order), the demand points assigned to it."""
        return [np.flatnonzero(self.assignment_ == j) for j in self.selected_]

    def to_geodataframe(self, sites: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """The chosen rows of ``sites`` in rank order, with ``rank``, ``gain`` (cost reduction), ``required``."""
        if len(sites) != self.cost.shape[1]:
            raise ValidationError(f"sites has {len(sites)} rows but the cost matrix {self.cost.shape[1]} columns")
        out = sites.iloc[self.selected_].copy()
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        out["gain"] = self.gains_
        out["required"] = np.isin(self.selected_, self.required)
        return out.reset_index(drop=True)
