"""The ``geo-ibm`` command line: one module per domain registers its commands on :func:`main`."""
from __future__ import annotations

# each module registers its commands on main when imported
from geo_ibm.cli import archive, commands, nearrepeat, planning, reports, roads, routes  # noqa: F401
from geo_ibm.cli.base import main

__all__ = ["main"]
