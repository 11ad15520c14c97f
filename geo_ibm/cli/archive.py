"""The ``geo-ibm`` archive commands."""
from __future__ import annotations
