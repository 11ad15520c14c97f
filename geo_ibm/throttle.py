"""The login throttle: growing delays after failed logins per (account, address), address and account, counted in the store."""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import math
import threading
import time
from collections.abc import Callable

from geo_ibm.store.base import EventStore, HitKey, Hits

PAIR = "login-pair"
"""Counter space of the failures of one account name from one client address."""
ADDRESS = "login-address"
"""Counter space of the failures from one client address, whatever the name (password spraying)."""
ACCOUNT = "login-account"
"""Counter space of the failures of one account name from every address (at most the free ones of each)."""

def client_key(address: str | None) -> str:
    """The client an address stands for: an IPv4 address, or the /64 network of an IPv6 one.

    One IPv6 host usually holds a whole /64, so counting single IPv6 addresses would let it
    start afresh with every request. An IPv4-mapped IPv6 address counts as its IPv4 address;
    text that is no IP address (a test client, a Unix socket) is kept as it is.
    """
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return address or ""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _digest(*parts: str) -> str:
    # A digest keeps every key the same small size, however long a name a client sends.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One login attempt as the throttle sees it before the password is checked.

    ``wait`` is 0 when the password may be checked now, else the seconds to wait (the
    answer's ``Retry-After``); ``limit`` then names the counter space that refuses
    (:data:`PAIR`, :data:`ADDRESS` or :data:`ACCOUNT`). ``address`` is the client as counted
    (:func:`client_key`). Report the outcome with :meth:`LoginThrottle.failed` or
    :meth:`LoginThrottle.succeeded`.
    """

    name: str
    address: str
    keys: dict[str, HitKey]
    counters: dict[str, Hits]
    wait: int
    limit: str | None


class LoginThrottle:
    """Growing delays after failed logins, per (account, address), per address and per account.

    Three counters see each failed password check: the pair of account name and client
    address, the client address alone (many names from one address: password spraying), and
    the account name from every address, where one address counts with at most
    ``max_failures`` failures (so a scanner at one address never delays the account's owner
    elsewhere). A counter allows its first failures freely: ``max_failures`` for a pair,
    ``address_failures`` for an address, ``account_failures`` for an account. After that each
    further attempt must wait ``first_delay_s`` after the counter's last failure, doubling with
    each failure, at most ``max_delay_s``; while it waits an attempt is refused without checking
    the password, and that refusal counts nothing. A counter is forgotten ``window_s`` seconds
    after its last failure; a successful login forgets its pair (not its address or account, so
    a valid login between guesses does not buy new free ones).

    The counters live in ``store``, so every process of the web app sees the same counts and a
    restart forgets nothing. The state stays bounded: checks add nothing, each counter is one
    row, and beyond ``max_keys`` counters in a space the least recently failed go. ``clock``
    gives the time in seconds; the wall clock by default, which all processes share.
    """

    def __init__(self, store: EventStore, *, max_failures: int = 5, address_failures: int = 20,
                 account_failures: int = 20, first_delay_s: float = 10.0, max_delay_s: float = 300.0,
                 window_s: float = 900.0, max_keys: int = 10_000, refusal_audit_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        if (max_failures < 1 or address_failures < 1 or account_failures < 1 or max_keys < 1 or not window_s > 0
                or not first_delay_s > 0 or not max_delay_s >= first_delay_s or refusal_audit_s < 0):
            raise ValueError(
                "LoginThrottle needs max_failures, address_failures, account_failures and max_keys >= 1, "
                "window_s > 0, 0 < first_delay_s <= max_delay_s and refusal_audit_s >= 0, got "
                f"max_failures={max_failures!r}, address_failures={address_failures!r}, "
                f"account_failures={account_failures!r}, max_keys={max_keys!r}, window_s={window_s!r}, "
                f"first_delay_s={first_delay_s!r}, max_delay_s={max_delay_s!r}, refusal_audit_s={refusal_audit_s!r}")
        self.store = store
        self.max_failures = max_failures
        self.free = {PAIR: max_failures, ADDRESS: address_failures, ACCOUNT: account_failures}
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.window_s = window_s
        self.max_keys = max_keys
        self.refusal_audit_s = refusal_audit_s
        self._clock = clock
        # Refusals counted in this process and not yet written: (action, key) -> [count, last written].
        self._refusals: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Number of (name, address) pairs with a failure still remembered."""
        return self.store.hit_keys(PAIR, since=self._clock() - self.window_s)

    def delay(self, failures: int, free: int) -> float:
        """Seconds a counter with ``failures`` makes the next attempt wait after its last failure (0: none)."""
        if failures < free:
            return 0.0
        # Capped at the window too: a counter forgotten sooner cannot make anyone wait longer.
        return min(self.first_delay_s * 2.0 ** min(failures - free, 64), self.max_delay_s, self.window_s)

    def keys(self, name: str, address: str | None) -> dict[str, HitKey]:
        """The counters an attempt of ``name`` from ``address`` concerns, by space."""
        account, client = name.casefold(), client_key(address)
        return {PAIR: (PAIR, _digest(account, client)), ADDRESS: (ADDRESS, _digest(client)),
                ACCOUNT: (ACCOUNT, _digest(account))}

    def attempt(self, name: str, address: str | None) -> Attempt:
        """Look up the counters of an attempt (one store read); ``wait`` says whether to check the password."""
        now = self._clock()
        keys = self.keys(name, address)
        stored = self.store.hits(list(keys.values()), since=now - self.window_s)
        counters = {space: stored[key] for space, key in keys.items() if key in stored}
        wait, limit = 0.0, None
        for space, hits in counters.items():
            left = hits.last + self.delay(hits.count, self.free[space]) - now
            if left > wait:
                wait, limit = left, space
        seconds = max(1, math.ceil(wait)) if wait > 0 else 0
        return Attempt(name=name, address=client_key(address), keys=keys, counters=counters, wait=seconds,
                       limit=limit)

    def failed(self, attempt: Attempt | str, address: str | None = None) -> Attempt:
        """Count a failed password check of ``attempt`` (or of a name and address); returns the attempt after it.

        The account's counter moves only while the pair has fewer than ``max_failures``
        failures: one address alone never reaches an account's limit.
        """
        if not isinstance(attempt, Attempt):
            attempt = self.attempt(attempt, address)
        now = self._clock()
        pair = attempt.counters.get(PAIR)
        spaces = [PAIR, ADDRESS]
        if pair is None or pair.count < self.max_failures:
            spaces.append(ACCOUNT)
        counted = self.store.add_hits([attempt.keys[s] for s in spaces], now, since=now - self.window_s,
                                      max_keys=self.max_keys)
        counters = {**attempt.counters, **{space: counted[attempt.keys[space]] for space in spaces}}
        return dataclasses.replace(attempt, counters=counters)

    def succeeded(self, attempt: Attempt) -> None:
        """A right password: forget the pair's failures (the address and the account keep theirs)."""
        if PAIR in attempt.counters:
            self.store.clear_hits([attempt.keys[PAIR]])

    def retry_after(self, name: str, address: str | None) -> int:
        """Seconds until ``name`` may try again from ``address`` (0: allowed now)."""
        return self.attempt(name, address).wait

    def reset(self, name: str, address: str | None) -> None:
        """Forget the failures of the pair (name, address)."""
        self.store.clear_hits([self.keys(name, address)[PAIR]])

    def audit(self, action: str, attempt: Attempt, *, via: str) -> int | None:
        """Tally ``action`` of ``attempt`` in the audit trail; the count of its record, or ``None`` if not written yet.

        One record per key and window (``window_s`` from its first event) holds the count, so a
        flood of failures costs a few records, not one each. The key is the attempt's pair, or
        for a refused attempt the counter that refused it: an address refused for many names
        gives one record (user ``-``), not one per name. ``via`` (``form``, ``basic``, ...) is
        part of the key and of the record's detail with the client ``ip`` and the ``limit``.

        A failure is written at once. A refusal costs no store write most of the time: the
        first refusal of a key is written at once, later ones at most every
        ``refusal_audit_s`` seconds with the count gathered meanwhile in this process (so the
        refusals of a key's last seconds before a process stops may go unrecorded).
        """
        space = attempt.limit or PAIR
        key = f"{attempt.keys[space][1]}:{via}"
        now = self._clock()
        count = 1 if attempt.limit is None else self._gather(action, key, now)
        if not count:
            return None
        detail: dict[str, object] = {"ip": attempt.address, "via": via}
        if attempt.limit:
            detail["limit"] = attempt.limit
        return self.store.audit_tally(action, user="-" if space == ADDRESS else attempt.name, key=key, detail=detail,
                                      at=now, since=now - self.window_s, count=count)

    def _gather(self, action: str, key: str, now: float) -> int:
        """Count a refusal; the refusals to write now (0: keep them for later)."""
        with self._lock:
            entry = self._refusals.get((action, key))
            if entry is None:
                if len(self._refusals) >= self.max_keys:  # bounded: the keys with nothing pending go first
                    self._refusals = {k: e for k, e in self._refusals.items() if e[0]}
                    if len(self._refusals) >= self.max_keys:
                        self._refusals.clear()
                entry = self._refusals[(action, key)] = [0, -math.inf]
            entry[0] += 1
            if now - entry[1] < self.refusal_audit_s:
                return 0
            count = int(entry[0])
            entry[0], entry[1] = 0, now
            return count
