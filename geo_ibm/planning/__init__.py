"""Control-location planning: candidate sites, demand, coverage, location models and space-time plans."""
from __future__ import annotations
