"""Progress and cancellation of a long plan: a ``progress(fraction, message)`` callback and its ``Cancelled`` error.

A caller that runs a plan in the background (the web app's job runner) passes a callable
``progress(fraction, message)``; the callable raises :class:`Cancelled` when the user asked to
stop, so the work ends at the next step boundary. :func:`plan_messages` adapts such a
callable to the one-argument ``progress(message)`` hook of
:func:`~geo_ibm.planning.plan.make_plan`, whose steps (coverage, distances, solve) are known.
A solve that has started runs to its own time limit: HiGHS is not interrupted mid-solve.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from geo_ibm.errors import GeoIbmError

ProgressCallback = Callable[[float, str], None]
"""``progress(fraction, message)``: ``fraction`` in [0, 1]; may raise :class:`Cancelled`."""

PLAN_STEPS: tuple[tuple[str, float], ...] = (
    ("coverage", 0.10),
    ("p-median", 0.20),
    ("space-time", 0.30),
    ("solving", 0.30),
)
"""Message prefixes of :func:`~geo_ibm.planning.plan.make_plan`'s steps and the share of the
plan's work done when each starts (the solve is most of it)."""


class Cancelled(GeoIbmError):
    """The user cancelled the work before it finished; nothing was produced."""

    http_status = 409


def plan_messages(progress: ProgressCallback, *, start: float = 0.0, end: float = 1.0) -> Callable[[str], None]:
    """A ``progress(message)`` hook for ``make_plan`` reporting to ``progress(fraction, message)``.

    Parameters
    ----------
    progress
        Receives each step's message with the fraction of the whole job done when it starts.
    start, end
        The part of the whole job the plan takes (e.g. 0.05 to 0.8 when writing the outputs
        follows it); a step's share (:data:`PLAN_STEPS`) is scaled into it.

    Returns
    -------
    callable
        Passes each message on; an unknown step keeps the last fraction (never going back).
    """
    if not 0.0 <= start <= end <= 1.0:
        raise ValueError(f"start and end must satisfy 0 <= start <= end <= 1, got {start!r}, {end!r}")
    done = [start]

    def say(message: str) -> None:
        share = next((value for prefix, value in PLAN_STEPS if message.startswith(prefix)), None)
        if share is not None:
            done[0] = max(done[0], start + (end - start) * share)
        progress(done[0], message)

    return say


def check_fraction(fraction: object) -> float:
    """``fraction`` as a float clipped to [0, 1] (NaN and non-numbers refused)."""
    try:
        value = float(fraction)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}") from None
    if math.isnan(value):
        raise ValueError("fraction must be a number in [0, 1], got NaN")
    return min(1.0, max(0.0, value))
