"""The ``geo-ibm`` routes commands."""
from __future__ import annotations
