"""What an event source is, and the attributes its events draw: transport mode, entry country, group, notes, unit."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geo_ibm.events import ENTRY_COUNTRIES, TRANSPORT_MODES

# The probability vectors below follow the order of these code lists.
MODES = TRANSPORT_MODES
COUNTRIES = ENTRY_COUNTRIES

# Where groups on each motorway came from: the corridor's direction decides it.
REF_COUNTRY: dict[str, tuple[float, float, float, float]] = {  # BE, FR, DE, unknown
    "A1": (0.02, 0.03, 0.83, 0.12),
    "A13": (0.04, 0.18, 0.63, 0.15),
    "A6": (0.84, 0.04, 0.02, 0.10),
    "A3": (0.03, 0.84, 0.03, 0.10),
    "A4": (0.03, 0.70, 0.02, 0.25),
    "A7": (0.25, 0.10, 0.15, 0.50),
}
OTHER_ROAD_COUNTRY = (0.20, 0.20, 0.20, 0.40)
MIXED_COUNTRY = (0.22, 0.30, 0.18, 0.30)
LOCAL_COUNTRY = (0.12, 0.15, 0.10, 0.63)

MODE_BY_KIND: dict[str, tuple[float, ...]] = {  # car, van, truck, bus, train, taxi, on_foot, other
    "road": (0.52, 0.24, 0.16, 0.04, 0.00, 0.02, 0.01, 0.01),
    "rest_area": (0.38, 0.24, 0.30, 0.05, 0.00, 0.01, 0.01, 0.01),
    "bridge": (0.55, 0.15, 0.08, 0.02, 0.00, 0.03, 0.15, 0.02),
    "rail": (0.00, 0.00, 0.00, 0.00, 0.92, 0.00, 0.08, 0.00),
    "train_station": (0.00, 0.00, 0.00, 0.00, 0.85, 0.05, 0.10, 0.00),
    "bus_station": (0.00, 0.00, 0.00, 0.82, 0.00, 0.05, 0.13, 0.00),
    "urban": (0.34, 0.10, 0.02, 0.02, 0.00, 0.10, 0.34, 0.08),
    "other": (0.45, 0.15, 0.05, 0.01, 0.00, 0.04, 0.20, 0.10),
}

# Mean extra persons on top of the first one, and the chance that the group includes a smuggler.
_PERSONS_EXTRA = np.array([1.4, 5.5, 7.5, 1.8, 0.9, 1.2, 0.8, 1.0])
_PERSONS_OVERDISPERSION = np.array([2.0, 1.5, 1.2, 2.0, 2.0, 2.0, 2.0, 2.0])  # negative binomial shape
_SMUGGLER_P = np.array([0.40, 0.75, 0.70, 0.08, 0.05, 0.25, 0.15, 0.20])

_NOTES: dict[str, tuple[str, ...]] = {
    "car": (
        "Véhicule immatriculé à l'étranger, passagers sans titre de séjour",
        "Contrôle routier de nuit",
        "Conducteur soupçonné de transport de personnes contre rémunération",
        "Voiture suivie depuis la frontière",
    ),
    "van": (
        "Camionnette surchargée, personnes à l'arrière",
        "Fourgon de location, chauffeur interpellé",
        "Personnes cachées derrière des cartons",
    ),
    "truck": (
        "Personnes découvertes dans la remorque d'un poids lourd",
        "Camion frigorifique contrôlé à l'aire",
        "Bâche de la remorque découpée",
    ),
    "bus": (
        "Contrôle d'un autocar longue distance",
        "Passagers sans documents dans un bus international",
    ),
    "train": (
        "Contrôle à bord du train transfrontalier",
        "Personnes interpellées sur le quai",
    ),
    "taxi": ("Taxi venu de l'étranger, course payée en espèces",),
    "on_foot": (
        "Groupe à pied le long de la route",
        "Personnes signalées par un témoin",
    ),
    "other": (
        "Signalement transmis par la police fédérale",
        "Contrôle conjoint avec la douane",
    ),
}
_NOTES_SHARE = 0.65

_ROAD_UNIT = "Unité centrale de police de la route"
_CUSTOMS_UNIT = "Administration des douanes et accises"
_REGION_UNITS: tuple[str, ...] = (
    "Police grand-ducale Région Capitale",
    "Police grand-ducale Région Centre-Est",
    "Police grand-ducale Région Nord",
    "Police grand-ducale Région Sud-Ouest",
)


@dataclass
class Component:
    """One source of events: where they happen, how, when, and whether it is a planted hotspot."""

    key: str
    location_kind: str
    weight: float
    hours: np.ndarray
    mode_profile: str
    countries: tuple[float, ...] | None = None  # None: per point (crossings)
    xy: np.ndarray | None = None  # anchor point(s), shape (k, 2)
    point_weights: np.ndarray | None = None
    point_modes: np.ndarray | None = None  # per-anchor mode profile names (crossings)
    point_countries: np.ndarray | None = None  # per-anchor entry country (crossings)
    lines: np.ndarray | None = None  # line geometries to scatter along
    sigma_m: float = 150.0
    activity: str = "persistent"
    name: str = ""
    truth: bool = False
    radius_m: float = 0.0
    road_unit_share: float = 0.0
    customs_share: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def normalised(weights: Any) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


def draw_modes_per_anchor(rng: np.random.Generator, profiles: np.ndarray) -> np.ndarray:
    out = np.empty(len(profiles), dtype=np.int64)
    for profile in np.unique(profiles):
        sel = np.flatnonzero(profiles == profile)
        out[sel] = rng.choice(len(MODES), size=sel.size, p=normalised(MODE_BY_KIND[profile]))
    return out


def draw_groups(rng: np.random.Generator, mode_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group size as 1 + negative binomial by transport mode; smugglers among them."""
    mean = _PERSONS_EXTRA[mode_idx]
    shape = _PERSONS_OVERDISPERSION[mode_idx]
    extra = rng.negative_binomial(shape, shape / (shape + mean))
    persons = np.minimum(1 + extra, 80).astype(np.int64)
    has = rng.random(len(mode_idx)) < _SMUGGLER_P[mode_idx]
    second = (persons >= 6) & (rng.random(len(mode_idx)) < 0.2)
    smugglers = (has.astype(np.int64) + (has & second)).astype(np.int64)
    return persons, np.minimum(smugglers, persons)


def draw_notes(rng: np.random.Generator, mode_idx: np.ndarray) -> np.ndarray:
    out = np.full(len(mode_idx), None, dtype=object)
    written = rng.random(len(mode_idx)) < _NOTES_SHARE
    pick = rng.integers(0, 1 << 30, len(mode_idx))
    for m, mode in enumerate(MODES):
        texts = np.asarray(_NOTES[mode], dtype=object)
        sel = np.flatnonzero((mode_idx == m) & written)
        out[sel] = texts[pick[sel] % len(texts)]
    return out


def _region_units(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # A coarse split of the country into the four police regions, in EPSG:2169 metres; the
    # real region polygons are not needed for plausible demo labels.
    capital = np.hypot(x - 77400.0, y - 75200.0) < 7000.0
    north = y > 98000.0
    south_west = (x < 78000.0) & (y < 92000.0)
    idx = np.where(capital, 0, np.where(north, 2, np.where(south_west, 3, 1)))
    return np.asarray(_REGION_UNITS, dtype=object)[idx]


def draw_units(rng: np.random.Generator, comp: Component, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    labels = _region_units(x, y)
    u = rng.random(len(x))
    labels[u < comp.road_unit_share] = _ROAD_UNIT
    labels[(u >= comp.road_unit_share) & (u < comp.road_unit_share + comp.customs_share)] = _CUSTOMS_UNIT
    return labels


# Secondary movements: where groups said they were heading, by the neighbour they came from
# (a group entering from France mostly moves on towards Germany, the Netherlands or Belgium).
DESTINATIONS: tuple[str, ...] = ("DE", "NL", "BE", "GB", "FR", "DK", "SE", "unknown")
_DESTINATION_BY_ENTRY: dict[str, tuple[float, ...]] = {  # order of DESTINATIONS
    "BE": (0.46, 0.08, 0.02, 0.04, 0.14, 0.05, 0.04, 0.17),
    "FR": (0.38, 0.18, 0.14, 0.07, 0.01, 0.04, 0.03, 0.15),
    "DE": (0.03, 0.22, 0.26, 0.18, 0.12, 0.01, 0.01, 0.17),
    "unknown": (0.26, 0.14, 0.12, 0.06, 0.06, 0.02, 0.02, 0.32),
}
_DESTINATION_RECORDED = 0.85

# Nationalities of intercepted persons: a mix whose weights drift from the first to the last
# day of the period (one nationality falls, another rises), as such mixes do over quarters.
NATIONALITIES: tuple[str, ...] = ("SY", "AF", "IQ", "ER", "TR", "MA", "DZ", "PK", "UA", "GE", "VN", "IN")
_NATIONALITY_START = np.array([0.26, 0.20, 0.10, 0.08, 0.07, 0.07, 0.06, 0.05, 0.04, 0.03, 0.02, 0.02])
_NATIONALITY_END = np.array([0.14, 0.16, 0.07, 0.10, 0.15, 0.08, 0.08, 0.06, 0.03, 0.03, 0.05, 0.05])
_NATIONALITY_RECORDED = 0.9
_MIXED_GROUP = 0.25  # chance that a group of two or more holds a second nationality


def draw_destinations(rng: np.random.Generator, entry: np.ndarray) -> np.ndarray:
    """A destination code per event given its entry country (``None`` where not recorded)."""
    out = np.full(len(entry), None, dtype=object)
    recorded = rng.random(len(entry)) < _DESTINATION_RECORDED
    codes = np.asarray(DESTINATIONS, dtype=object)
    for country, weights in _DESTINATION_BY_ENTRY.items():
        sel = np.flatnonzero((entry == country) & recorded)
        out[sel] = codes[rng.choice(len(codes), size=sel.size, p=normalised(weights))]
    return out


def draw_nationalities(rng: np.random.Generator, persons: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """``;``-separated nationality codes per event (``None`` where not recorded).

    ``phase`` runs from 0 (first day of the period) to 1 (last day) and moves the mix from
    its start weights to its end weights; groups of two or more sometimes hold a second code.
    """
    n = len(persons)
    out = np.full(n, None, dtype=object)
    weights = (1.0 - phase[:, None]) * _NATIONALITY_START + phase[:, None] * _NATIONALITY_END
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    first = np.minimum((cumulative < rng.random(n)[:, None]).sum(axis=1), len(NATIONALITIES) - 1)
    second = (first + 1 + rng.integers(0, len(NATIONALITIES) - 1, n)) % len(NATIONALITIES)
    mixed = (persons >= 2) & (rng.random(n) < _MIXED_GROUP)
    recorded = rng.random(n) < _NATIONALITY_RECORDED
    codes = np.asarray(NATIONALITIES, dtype=object)
    single = recorded & ~mixed
    out[single] = codes[first[single]]
    both = recorded & mixed
    out[both] = codes[first[both]] + ";" + codes[second[both]]
    return out
