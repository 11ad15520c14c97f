"""Moved to :mod:`geo_ibm.accounts`; this name stays until every caller imports it from there."""
from geo_ibm.accounts import *  # noqa: F403
