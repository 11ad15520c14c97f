"""The login throttle (geo_ibm.throttle) and the store's counter and audit tally primitives; every backend."""
from __future__ import annotations

import pytest
from storefixtures import store_factory  # noqa: F401

from geo_ibm.store.base import Hits
from geo_ibm.throttle import ACCOUNT, ADDRESS, PAIR, LoginThrottle, client_key


@pytest.fixture
def throttle_store(store_factory):
    """An empty store holding the throttle's counters."""
    store = store_factory("throttle")
    store.init()
    return store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def schedule(throttle: LoginThrottle, name: str, address: str, clock: Clock, failures: int) -> list[int]:
    """Fail ``failures`` times, each as soon as allowed; the wait announced after each failure."""
    waits = []
    for _ in range(failures):
        clock.now += throttle.retry_after(name, address)
        throttle.failed(name, address)
        waits.append(throttle.retry_after(name, address))
    return waits


# --------------------------------------------------------------------------- store primitives


def test_counters_count_restart_after_the_window_and_keep_spaces_apart(throttle_store):
    a, b, other = ("s", "a"), ("s", "b"), ("t", "a")
    assert throttle_store.add_hits([a, b], 10.0, since=0.0, max_keys=10) == {a: Hits(1, 10.0), b: Hits(1, 10.0)}
    assert throttle_store.add_hits([a], 12.0, since=2.0, max_keys=10) == {a: Hits(2, 12.0)}
    assert throttle_store.add_hits([other], 13.0, since=3.0, max_keys=10) == {other: Hits(1, 13.0)}
    assert throttle_store.hits([a, b, other, ("s", "none")], since=0.0) == {
        a: Hits(2, 12.0), b: Hits(1, 10.0), other: Hits(1, 13.0)}
    assert throttle_store.hits([a, b], since=11.0) == {a: Hits(2, 12.0)}
    # A clock a little behind never moves the last hit back; a counter past the window restarts.
    assert throttle_store.add_hits([a], 11.0, since=1.0, max_keys=10) == {a: Hits(3, 12.0)}
    assert throttle_store.add_hits([a], 30.0, since=12.0, max_keys=10) == {a: Hits(1, 30.0)}
    assert throttle_store.hit_keys("s", since=0.0) == 1  # b (last hit 10) went with that upkeep
    assert throttle_store.hit_keys("t", since=0.0) == 1  # another space keeps its counters
    throttle_store.clear_hits([a, other])
    assert throttle_store.hits([a, other], since=0.0) == {}


def test_counters_stay_bounded_per_space_and_keep_the_recent_ones(throttle_store):
    # 5000 keys in 50 transactions of 100: never more than max_keys, the newest kept.
    kept = ("other", "x")
    throttle_store.add_hits([kept], 1.0, since=0.0, max_keys=1)
    for batch in range(50):
        keys = [("flood", f"k{batch}-{i}") for i in range(100)]
        throttle_store.add_hits(keys, 10.0 + batch, since=0.0, max_keys=200)
        assert throttle_store.hit_keys("flood", since=0.0) <= 200
    assert throttle_store.hit_keys("flood", since=0.0) == 200
    newest = [("flood", f"k{batch}-{i}") for batch in (48, 49) for i in range(100)]
    assert len(throttle_store.hits(newest, since=0.0)) == 200
    assert throttle_store.hits([("flood", "k47-99")], since=0.0) == {}
    assert throttle_store.hits([kept], since=0.0) == {kept: Hits(1, 1.0)}


def test_audit_tally_keeps_one_record_per_key_and_window(throttle_store):
    tally = throttle_store.audit_tally
    assert [tally("login_failure", user="ana", key="k1", detail={"ip": "10.0.0.1"}, at=100.0 + i, since=i)
            for i in range(3)] == [1, 2, 3]
    assert tally("login_failure", user="bob", key="k2", detail={"ip": "10.0.0.2"}, at=103.0, since=3.0) == 1
    assert tally("login_throttled", user="ana", key="k1", detail={}, at=104.0, since=4.0) == 1
    # The window of k1 began at 100: a tally after 100 + window opens the next record.
    assert tally("login_failure", user="ana", key="k1", detail={"ip": "10.0.0.1"}, at=205.0, since=105.0) == 1
    log = throttle_store.audit_log()
    rows = [(r["action"], r["user"], r["detail"]["count"]) for r in log.to_dict(orient="records")]
    assert rows == [("login_failure", "ana", 1), ("login_throttled", "ana", 1), ("login_failure", "bob", 1),
                    ("login_failure", "ana", 3)]
    first = log.iloc[-1]["detail"]
    assert first["ip"] == "10.0.0.1" and first["last"] >= log.iloc[-1]["at"].isoformat()[:19]
    throttle_store.audit("export", user="ana", detail={})
    assert tally("login_failure", user="ana", key="k1", detail={"ip": "10.0.0.1"}, at=206.0, since=106.0) == 2
    assert tally("login_failure", user="ana", key="k1", detail={}, at=207.0, since=107.0, count=40) == 42
    assert tally("login_failure", user="ana", key="k3", detail={}, at=207.0, since=107.0, count=7) == 7
    assert len(throttle_store.audit_log()) == 6


# --------------------------------------------------------------------------- bounded throttle state


def test_throttle_checks_add_no_entries(throttle_store):
    throttle = LoginThrottle(throttle_store, max_failures=3, window_s=60)
    for i in range(2000):
        assert throttle.retry_after(f"user{i}", "10.0.0.1") == 0
    assert len(throttle) == 0


def test_throttle_forgets_pairs_whose_failures_left_the_window(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, max_failures=3, window_s=60, clock=clock)
    for i in range(500):
        throttle.failed(f"user{i}", "10.0.0.1")
        clock.now += 0.01
    assert len(throttle) == 500
    clock.now = 1061.0  # the failures of the first second (about 100) are now out of the window
    throttle.retry_after("someone", "10.0.0.2")
    assert 395 <= len(throttle) <= 405
    clock.now += 60.0
    throttle.retry_after("someone", "10.0.0.2")
    assert len(throttle) == 0


def test_throttle_caps_the_number_of_pairs_and_keeps_recent_ones(throttle_store):
    # The cap of the store's counters over many transactions is proved above; here the
    # throttle's own spaces under a flood of names (the address limit set out of the way).
    clock = Clock()
    throttle = LoginThrottle(throttle_store, max_failures=2, address_failures=10**6, window_s=900, max_keys=20,
                             clock=clock)
    throttle.failed("target", "10.0.0.1")
    throttle.failed("target", "10.0.0.1")
    for i in range(100):
        clock.now += 0.001
        throttle.failed(f"flood{i}", "10.6.6.6")
        assert len(throttle) <= 20
        assert throttle_store.hit_keys(ACCOUNT, since=0.0) <= 20
    assert len(throttle) == 20
    # The most recent pairs are the ones kept.
    assert throttle.retry_after("flood99", "10.6.6.6") == 0
    throttle.failed("flood99", "10.6.6.6")
    assert throttle.retry_after("flood99", "10.6.6.6") > 0
    assert throttle.retry_after("target", "10.0.0.1") == 0  # the oldest pair went


@pytest.mark.parametrize("kwargs", [{"max_failures": 0}, {"max_keys": 0}, {"window_s": 0}, {"address_failures": 0},
                                    {"account_failures": 0}, {"first_delay_s": 0},
                                    {"first_delay_s": 60, "max_delay_s": 30}, {"refusal_audit_s": -1}])
def test_throttle_refuses_bad_settings(throttle_store, kwargs):
    with pytest.raises(ValueError, match="LoginThrottle needs"):
        LoginThrottle(throttle_store, **kwargs)


# --------------------------------------------------------------------------- the policy


def test_delays_grow_after_the_free_failures_and_are_capped(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, clock=clock)  # 5 free, then 10 s doubling, at most 300 s
    assert schedule(throttle, "Ana", "10.0.0.1", clock, 12) == [0, 0, 0, 0, 10, 20, 40, 80, 160, 300, 300, 300]
    # Waiting counts down from the last failure; a refused attempt counts nothing.
    last = clock.now
    clock.now = last + 299.2
    attempt = throttle.attempt("ana", "10.0.0.1")
    assert (attempt.wait, attempt.limit) == (1, PAIR)
    assert throttle.attempt("ana", "10.0.0.1").counters[PAIR] == Hits(12, last)
    clock.now = last + 300.0
    assert throttle.retry_after("ANA", "10.0.0.1") == 0
    # Another address is not affected; a success forgets the pair.
    assert throttle.retry_after("ana", "10.0.0.2") == 0
    throttle.succeeded(throttle.attempt("ana", "10.0.0.1"))
    assert schedule(throttle, "ana", "10.0.0.1", clock, 5) == [0, 0, 0, 0, 10]


def test_counters_are_forgotten_a_window_after_the_last_failure(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, max_failures=3, window_s=100, first_delay_s=5, max_delay_s=50, clock=clock)
    assert schedule(throttle, "ana", "10.0.0.1", clock, 6) == [0, 0, 5, 10, 20, 40]
    clock.now += 99.0
    assert throttle.retry_after("ana", "10.0.0.1") == 0 and len(throttle) == 1
    clock.now += 1.0
    assert len(throttle) == 0
    assert schedule(throttle, "ana", "10.0.0.1", clock, 3) == [0, 0, 5]


def test_a_delay_is_never_longer_than_the_window(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, max_failures=1, window_s=60, first_delay_s=50, max_delay_s=300, clock=clock)
    # Waiting out a whole window forgets the counter: the third failure starts it again.
    assert schedule(throttle, "ana", "10.0.0.1", clock, 3) == [50, 60, 50]


def test_many_names_from_one_address_are_limited_per_address(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, address_failures=20, clock=clock)
    for i in range(20):
        assert throttle.retry_after(f"user{i}", "10.0.0.9") == 0
        throttle.failed(f"user{i}", "10.0.0.9")
    attempt = throttle.attempt("vic", "10.0.0.9")  # any name, also one never tried
    assert (attempt.wait, attempt.limit) == (10, ADDRESS)
    assert throttle.retry_after("vic", "10.0.0.10") == 0
    clock.now += 10.0
    throttle.failed("user20", "10.0.0.9")
    assert throttle.retry_after("vic", "10.0.0.9") == 20


def test_one_address_alone_never_delays_the_account_elsewhere(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, max_delay_s=300, account_failures=20, clock=clock)
    schedule(throttle, "admin", "10.6.6.6", clock, 11)  # a scanner at one address, as fast as allowed
    assert throttle.retry_after("admin", "10.6.6.6") == 300
    assert throttle.retry_after("admin", "192.0.2.1") == 0
    # Guesses from many addresses reach the account's limit: 4 addresses with their 5 free failures.
    for host in range(1, 4):
        for _ in range(5):
            throttle.failed("admin", f"198.51.100.{host}")
    attempt = throttle.attempt("admin", "192.0.2.1")
    assert (attempt.wait, attempt.limit) == (10, ACCOUNT)


@pytest.mark.parametrize(("address", "client"), [
    ("10.0.0.1", "10.0.0.1"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("localhost", "localhost"),
    (None, ""),
])
def test_client_key_counts_an_ipv6_network_as_one_client(address, client):
    assert client_key(address) == client


def test_ipv6_hosts_of_one_network_share_their_counters(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, clock=clock)
    for i in range(5):
        throttle.failed("ana", f"2001:db8::{i + 1}")
    assert throttle.retry_after("ana", "2001:db8::ffff") == 10
    assert throttle.retry_after("ana", "2001:db8:0:1::1") == 0


def test_throttle_audit_tallies_failures_per_pair_and_refusals_per_limit(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, address_failures=3, refusal_audit_s=0, clock=clock)
    for name in ("ana", "ana", "bob"):
        throttle.audit("login_failure", throttle.failed(throttle.attempt(name, "10.0.0.1")), via="form")
    for name in ("ana", "bob", "eve", "zoe"):  # refused by the address limit: one record, whatever the name
        refused = throttle.attempt(name, "10.0.0.1")
        assert refused.limit == ADDRESS
        throttle.audit("login_throttled", refused, via="form")
    rows = {(r["action"], r["user"]): r["detail"] for r in throttle_store.audit_log().to_dict(orient="records")}
    assert set(rows) == {("login_failure", "ana"), ("login_failure", "bob"), ("login_throttled", "-")}
    assert rows[("login_failure", "ana")]["count"] == 2 and rows[("login_failure", "bob")]["count"] == 1
    assert rows[("login_throttled", "-")] | {"last": None} == {"ip": "10.0.0.1", "via": "form", "limit": ADDRESS,
                                                             "count": 4, "last": None}


def test_refusals_are_written_at_most_every_few_seconds_with_their_count(throttle_store):
    clock = Clock()
    throttle = LoginThrottle(throttle_store, refusal_audit_s=10, clock=clock)
    for _ in range(5):
        throttle.failed("ana", "10.0.0.1")
    counts = []
    for _ in range(25):  # one refused attempt a second
        counts.append(throttle.audit("login_throttled", throttle.attempt("ana", "10.0.0.1"), via="basic"))
        clock.now += 1.0
        throttle.failed("ana", "10.0.0.1")  # keeps the pair waiting
    assert counts == [1] + [None] * 9 + [11] + [None] * 9 + [21] + [None] * 4
    (record,) = throttle_store.audit_log().to_dict(orient="records")
    assert (record["action"], record["user"], record["detail"]["count"]) == ("login_throttled", "ana", 21)
    # Another key is written at once.
    assert throttle.audit("login_throttled", throttle.attempt("ana", "10.0.0.1"), via="form") == 1


def test_a_geopackage_of_the_per_failure_layout_gets_the_counters(tmp_path):
    import sqlite3

    from geo_ibm.store import GeoPackageStore

    store = GeoPackageStore(tmp_path / "old.gpkg", outline=False, assign_regions=False)
    store.init()
    with sqlite3.connect(store.path) as conn:  # the throttle tables of earlier releases
        conn.execute("DROP TABLE throttle_hits")
        conn.execute("DROP TABLE audit_tallies")
        conn.execute("CREATE TABLE login_failures (key TEXT NOT NULL, at DOUBLE NOT NULL)")
    again = GeoPackageStore(store.path, outline=False, assign_regions=False)
    assert LoginThrottle(again).retry_after("ana", "10.0.0.1") == 0
    with sqlite3.connect(store.path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"throttle_hits", "audit_tallies"} <= names and "login_failures" not in names
