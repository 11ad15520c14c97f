"""The ``geo-ibm`` planning commands."""
from __future__ import annotations
