"""The job panel shared by every page that runs a background job (``_job.html``): each state's
text, the cancel form and reload link while unfinished, the polling script's URLs, escaping; what
the runner's finished jobs may keep (memory, result files) and the memory estimate it counts."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from webfixtures import app, base_store, store_path  # noqa: F401

from geo_ibm.errors import NotFoundError, Problem
from webapp.jobs import CANCELLED, DONE, FAILED, RUNNING, Job, state_labels

PANEL = ('{% from "_job.html" import job_panel with context %}'
         '{{ job_panel(job, "/s", result_url, "It failed.", "It was cancelled.", "archives.cancel_job", '
         '"archives.job_page") }}')
CALLED = ('{% from "_job.html" import job_panel with context %}'
          '{% call job_panel(job, "/s", none, "It failed.", "It was cancelled.", "routes.cancel_job", '
          '"routes.job_page") %}<h2 id="intro">Intro</h2>{% endcall %}')


def _job(state: str, **kw) -> Job:
    return Job(id="j1", owner="ana", title="T", work=lambda progress: None, created=time.time(), state=state, **kw)


def _render(app, source: str, job: Job, result_url: str | None = "/r") -> str:
    with app.test_request_context("/"):
        return app.jinja_env.from_string(source).render(job=job, result_url=result_url,
                                                        state_labels=state_labels())


def test_a_running_job_shows_its_progress_the_cancel_form_and_the_polling_urls(app):
    page = _render(app, PANEL, _job(RUNNING, fraction=0.426, message="partition 3 of 7"))
    assert '<div id="job" data-status-url="/s" data-result-url="/r">' in page
    assert re.search(r'<progress id="job-progress" max="100" value="43">43 %</progress>', page)
    assert 'id="job-state">running: <span id="job-message">partition 3 of 7</span>' in page
    assert '<form method="post" action="/archives/jobs/j1/cancel"' in page
    assert 'name="csrf_token" value="' in page
    assert '<a href="/archives/jobs/j1" id="job-reload">' in page
    assert "planning.js" in page
    assert "job-error" not in page and "job-cancelled" not in page


def test_a_failed_job_says_why_with_its_problems_escaped_and_no_cancel(app):
    problems = [Problem(f"row {i}: <b>bad</b>", row=i) for i in range(250)]
    page = _render(app, PANEL, _job(FAILED, error="<script>x</script>", problems=problems))
    assert '<div class="error" role="alert" id="job-error"><p>It failed. &lt;script&gt;x&lt;/script&gt;</p>' in page
    assert page.count("<li>") == 200 and "&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad" not in page
    assert "cancel-form" not in page and "job-reload" not in page and "planning.js" not in page


@pytest.mark.parametrize("state, shown", [(CANCELLED, '<p class="flash" id="job-cancelled">It was cancelled.</p>'),
                                          (DONE, 'id="job-state">done')])
def test_a_finished_job_has_no_cancel_form(app, state, shown):
    page = _render(app, PANEL, _job(state))
    assert shown in page
    assert "cancel-form" not in page and "planning.js" not in page


def test_a_caller_block_comes_first_in_the_panel_and_no_result_url_is_left_out(app):
    page = _render(app, CALLED, _job(RUNNING), result_url=None)
    assert '<div id="job" data-status-url="/s">' in page and "data-result-url" not in page
    assert page.index('<h2 id="intro">Intro</h2>') < page.index('<progress')
    assert 'action="/routes/jobs/j1/cancel"' in page and 'href="/routes/jobs/j1"' in page


# --------------------------------------------------------------------------- what finished jobs may keep


class _Kept:
    """A result with files on disk, as an archive analysis's: ``disk_bytes`` and ``release()``."""

    def __init__(self, disk: int, memory: int = 0) -> None:
        self.disk, self.payload, self.released = disk, b"x" * memory, False

    @property
    def disk_bytes(self) -> int:
        return 0 if self.released else self.disk

    def release(self) -> None:
        self.released = True


def _done(jobs, owner: str, result, now: list[float]):
    job = jobs.submit(owner, "t", lambda progress: result)
    for _ in range(500):
        if job.is_finished and (job.nbytes or not getattr(result, "payload", b"")):
            break
        time.sleep(0.01)
    assert job.state == DONE
    now[0] += 1.0
    return job


def test_finished_jobs_are_forgotten_oldest_first_past_the_disk_and_memory_budgets():
    from webapp.jobs import JobRunner

    now = [0.0]
    jobs = JobRunner(workers=1, per_user=8, keep_s=1000.0, kept_mb=3.0, kept_disk_mb=2.0, clock=lambda: now[0])
    try:
        first, second, third = _Kept(900_000), _Kept(900_000), _Kept(900_000)
        one, two = _done(jobs, "u", first, now), _done(jobs, "u", second, now)
        assert [j.id for j in jobs.jobs_of("u")] == [two.id, one.id] and not first.released
        three = _done(jobs, "u", third, now)
        # the newest is always kept; the two before it hold 1.8 MB of files, within 2 MB: the oldest goes
        # only once a fourth arrives
        assert {j.id for j in jobs.jobs_of("u")} == {one.id, two.id, three.id}
        _done(jobs, "u", _Kept(10), now)
        assert one.id not in {j.id for j in jobs.jobs_of("u")} and first.released and one.result is None
        assert not second.released and not third.released
        # a result larger than the whole budget is kept while it is the newest: its owner is looking at it
        huge = _Kept(50_000_000)
        big = _done(jobs, "v", huge, now)
        assert jobs.get(big.id, owner="v").result is huge
        assert not second.released and not third.released
        # once it is not the newest it goes, and the smaller older ones stay
        heavy = [_done(jobs, "w", _Kept(0, memory=2_000_000), now) for _ in range(3)]
        assert huge.released and not second.released and {two.id, three.id} <= {j.id for j in jobs.jobs_of("u")}
        # memory counts as well: 2 MB results, 3 MB allowed besides the newest
        assert all(j.nbytes >= 2_000_000 for j in heavy)
        assert [j.id for j in jobs.jobs_of("w")] == [heavy[2].id, heavy[1].id]
    finally:
        jobs.close()


def test_expired_cancelled_and_closed_results_are_released():
    from webapp.jobs import JobRunner

    now = [0.0]
    jobs = JobRunner(workers=1, per_user=8, keep_s=10.0, clock=lambda: now[0])
    old = _Kept(1)
    job = _done(jobs, "u", old, now)
    now[0] = 20.0
    with pytest.raises(NotFoundError):
        jobs.get(job.id, owner="u")
    assert old.released
    # work that ends after its job was cancelled: nobody will see its result
    gate, late = threading.Event(), _Kept(1)

    def slow(progress):
        progress(0.1, "started")
        gate.wait(10)
        return late

    cancelled = jobs.submit("u", "slow", slow)
    for _ in range(500):
        if cancelled.state == RUNNING:
            break
        time.sleep(0.01)
    jobs.cancel(cancelled.id, owner="u")
    gate.set()
    for _ in range(500):
        if late.released:
            break
        time.sleep(0.01)
    assert cancelled.state == CANCELLED and late.released
    kept = _Kept(1)
    _done(jobs, "u", kept, now)
    jobs.close()
    assert kept.released


def test_the_memory_estimate_of_a_result_against_what_a_process_holds(tmp_path):
    """approximate_nbytes of a frame of 100,000 grid cells against the resident growth of a child process
    building the same frame, and exact for bytes, text and arrays."""
    import subprocess
    import sys

    import numpy as np

    from webapp.jobs import approximate_nbytes

    code = """
import gc, os, numpy as np, geopandas as gpd, shapely
from webapp.jobs import approximate_nbytes
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
n = 100_000
x, y = (np.arange(n) % 400) * 200.0, (np.arange(n) // 400) * 200.0
before = rss()
frame = gpd.GeoDataFrame({"gi_z": np.linspace(-3, 3, n), "gi_bin": np.zeros(n, np.int64),
                          "category": np.array(["persistent hot spot", "new hot spot"] * (n // 2), dtype=object)},
                         geometry=shapely.box(x, y, x + 200, y + 200), crs=2169)
del x, y
gc.collect()
print(rss() - before, approximate_nbytes(frame))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"MALLOC_ARENA_MAX": "2", "PATH": "/usr/bin:/bin"}, cwd=Path(__file__).parents[1])
    grown, estimated = (int(v) for v in out.stdout.split())
    assert 0.7 * grown < estimated < 1.4 * grown, (grown, estimated)
    assert approximate_nbytes(b"x" * 1000) == 1000 and approximate_nbytes(np.zeros(500)) == 4000
    assert approximate_nbytes({"a": b"x" * 100, "b": [b"y" * 50, (b"z" * 25,)]}) > 175
    shared = b"q" * 10_000
    assert approximate_nbytes([shared, shared]) < 15_000  # each object once
    assert approximate_nbytes(tmp_path) == 0
