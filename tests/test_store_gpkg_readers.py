"""Kept read connections (geo_ibm.store.gpkg_readers) of a GeoPackage store opened with ``serving=True``."""
from __future__ import annotations

import shutil
import threading
import time

from storefixtures import OUTLINE, event_rows, half_regions, write_events

from geo_ibm.store import GeoPackageStore, gpkg_readers


def serving(path) -> GeoPackageStore:
    return GeoPackageStore(path, outline=OUTLINE, assign_regions=half_regions, serving=True)


def writer(path) -> GeoPackageStore:
    return GeoPackageStore(path, outline=OUTLINE, assign_regions=half_regions)


def test_one_connection_per_thread_and_file_is_kept_across_handles(tmp_path):
    path = tmp_path / "s.gpkg"
    writer(path).init()
    first = serving(path)
    with first._read() as a:
        pass
    with serving(path)._read() as b:  # a new handle, as each web request opens one
        assert b is a
    assert not a.in_transaction
    seen = []
    thread = threading.Thread(target=lambda: seen.append(serving(path)._read().__enter__()))
    thread.start()
    thread.join()
    assert seen[0] is not a  # sqlite3 connections stay in the thread that made them
    gpkg_readers.forget(path)


def test_a_kept_connection_sees_every_commit_at_once(tmp_path):
    path = tmp_path / "s.gpkg"
    store = writer(path)
    store.init()
    reader = serving(path)
    assert reader.count() == 0
    before = reader.version()
    store.import_file(write_events(tmp_path / "e.csv", event_rows(40, seed=1)), user="ana")
    assert reader.count() == 40 and reader.version() != before
    store.import_file(write_events(tmp_path / "f.csv", event_rows(5, seed=2, prefix="F")), user="ana")
    assert reader.count() == 45
    gpkg_readers.forget(path)


def test_a_replaced_file_gets_a_new_connection(tmp_path):
    path, other = tmp_path / "s.gpkg", tmp_path / "t.gpkg"
    writer(path).init()
    filled = writer(other)
    filled.import_file(write_events(tmp_path / "e.csv", event_rows(30, seed=3)), user="ana")
    reader = serving(path)
    with reader._read() as old:
        pass
    assert reader.count() == 0
    shutil.copyfile(other, tmp_path / "copy.gpkg")
    (tmp_path / "copy.gpkg").replace(path)  # a restore: same path, another file
    with reader._read() as new:
        assert new is not old
    assert serving(path).count() == 30
    gpkg_readers.forget(path)


def test_a_file_replaced_next_to_a_live_write_ahead_log_is_refused(tmp_path):
    # SQLite would read the old file's WAL into the new one (seen: the new file's table
    # showed the old one's rows): refused, never served mixed.
    import time

    import pytest

    from geo_ibm.errors import StoreError

    path, other = tmp_path / "s.gpkg", tmp_path / "t.gpkg"
    writer(path).init()
    writer(other).init()
    reader = serving(path)
    assert reader.count() == 0
    now = time.time()
    writer(path).audit_tally("record_read", user="u", key="k", detail={}, at=now, since=now - 60)
    assert (tmp_path / "s.gpkg-wal").stat().st_size > 0  # the kept reader keeps the log alive
    shutil.copyfile(other, tmp_path / "copy.gpkg")
    (tmp_path / "copy.gpkg").replace(path)
    with pytest.raises(StoreError, match="was replaced while this process had it open"):
        reader.count()


def test_a_forked_child_keeps_no_connection_and_never_closes_the_parents(tmp_path):
    import os

    path = tmp_path / "s.gpkg"
    store = writer(path)
    store.import_file(write_events(tmp_path / "e.csv", event_rows(20, seed=4)), user="ana")
    reader = serving(path)
    assert reader.count() == 20
    pid = os.fork()
    if pid == 0:  # the child: a fresh connection of its own, fresh write locks
        code = 0
        try:
            code = 0 if gpkg_readers.kept_count() == 0 and serving(path).count() == 20 else 3
            now = time.time()
            serving(path).audit_tally("record_read", user="c", key="c", detail={}, at=now, since=now - 60)
        except BaseException:
            code = 4
        os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert reader.count() == 20  # the parent's kept connection still works
    gpkg_readers.forget(path)


def test_each_thread_keeps_a_bounded_number_of_connections(tmp_path):
    paths = [tmp_path / f"s{i}.gpkg" for i in range(gpkg_readers.PER_THREAD + 3)]

    def read_all() -> int:
        for path in paths:
            serving(path).count()
        kept = gpkg_readers.kept_count()
        for path in paths:
            gpkg_readers.forget(path)
        return kept

    for path in paths:
        writer(path).init()
    counts: list[int] = []
    thread = threading.Thread(target=lambda: counts.append(read_all()))
    thread.start()
    thread.join()
    assert counts == [gpkg_readers.PER_THREAD]


def test_threads_writing_at_once_queue_and_lose_nothing(tmp_path):
    # Eight threads of one process tally and read at once (what the web app's readers do on
    # every page): the per-file write queue lets each write in turn, none fails or is lost.
    import time

    path = tmp_path / "s.gpkg"
    writer(path).init()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        store = serving(path)
        try:
            for _ in range(25):
                now = time.time()
                store.audit_tally("record_read", user=f"u{k}", key=f"k{k}", detail={}, at=now, since=now - 300)
                store.count()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    log = writer(path).audit_log(limit=100)
    tallies = log[log["action"] == "record_read"]
    assert len(tallies) == 8
    assert sorted(d["count"] for d in tallies["detail"]) == [25] * 8
    assert gpkg_readers.writer_lock(path) is gpkg_readers.writer_lock(tmp_path / "." / "s.gpkg")
